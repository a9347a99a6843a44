"""Peer messages and blocks ⇄ protobuf bytes (proto/lanenet/v1/messages.proto).

This is the only module that imports generated code. Encoding trusts its input (values
built by this node) and raises ``ValueError`` for a value the wire cannot carry. Decoding
trusts nothing: the size is checked before parsing, every field is checked structurally
(digest and signature lengths, signer bitmaps, index and count bounds, known enums) and
any problem raises ``MalformedMessage`` naming the field. Whether signatures verify and
whether a message fits the protocol state is for the layers above.

Cars are rebuilt with ``Car.create``, so a car's digest always comes from its content.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final, TypeVar

from google.protobuf.message import DecodeError

from node.crypto.hashing import DIGEST_SIZE
from node.types.errors import MalformedMessage
from node.types.messages import (
    QC,
    TC,
    Block,
    Car,
    Commit,
    CommitSyncRequest,
    Confirm,
    Cut,
    CutTip,
    ExecCert,
    ExecVote,
    LaneVote,
    Message,
    MsgKind,
    PoA,
    Prepare,
    Proposal,
    SyncReply,
    SyncRequest,
    Ticket,
    Timeout,
    Vote,
)
from node.wire.bitmap import MAX_VALIDATORS, decode_signers, encode_signers
from node.wire.gen.lanenet.v1 import messages_pb2 as pb

DEFAULT_MAX_MESSAGE_SIZE: Final = 16 << 20
"""Largest peer message accepted: several full cars in one sync reply."""
DEFAULT_MAX_BLOCK_SIZE: Final = 256 << 20
MAX_SIGNATURE_SIZE: Final = 96
"""ed25519 signatures are 64 bytes, the simulator's MACs 32; 96 leaves room for BLS."""
MAX_TX_SIZE: Final = 1 << 20
MAX_CAR_TXS: Final = 1 << 16
MAX_SYNC_CARS: Final = 4096
MAX_BLOCK_CARS: Final = 1 << 16

_PHASE_TO_WIRE: Final = {
    MsgKind.PREPARE_VOTE: pb.PHASE_PREPARE_VOTE,
    MsgKind.CONFIRM_ACK: pb.PHASE_CONFIRM_ACK,
}
_PHASE_FROM_WIRE: Final = {int(wire): kind for kind, wire in _PHASE_TO_WIRE.items()}

_T = TypeVar("_T")


# ============================================================================ encoding


def encode_message(msg: Message) -> bytes:
    """Serialize a peer message as a ``PeerMessage`` envelope."""
    encoder = _MESSAGE_ENCODERS.get(type(msg))
    if encoder is None:
        raise ValueError(f"not a peer message: {type(msg).__name__}")
    field, encode = encoder
    return pb.PeerMessage(**{field: encode(msg)}).SerializeToString()


def encode_block(block: Block) -> bytes:
    return _encode_block(block).SerializeToString()


def _encode_poa(poa: PoA) -> pb.PoA:
    return pb.PoA(
        lane=poa.lane,
        pos=poa.pos,
        car_digest=poa.car_digest,
        signers=encode_signers(poa.signers),
        signatures=poa.signatures,
    )


def _encode_car(car: Car) -> pb.Car:
    return pb.Car(
        lane=car.lane,
        pos=car.pos,
        parent=car.parent,
        parent_poa=_encode_poa(car.parent_poa) if car.parent_poa is not None else None,
        txs=car.txs,
        signature=car.signature,
    )


def _encode_lane_vote(vote: LaneVote) -> pb.LaneVote:
    return pb.LaneVote(
        lane=vote.lane,
        pos=vote.pos,
        car_digest=vote.car_digest,
        voter=vote.voter,
        signature=vote.signature,
    )


def _encode_cut(cut: Cut) -> pb.Cut:
    return pb.Cut(
        tips=[
            pb.CutTip(
                lane=tip.lane,
                pos=tip.pos,
                car_digest=tip.car_digest,
                poa=_encode_poa(tip.poa) if tip.poa is not None else None,
            )
            for tip in cut.tips
        ]
    )


def _encode_proposal(proposal: Proposal) -> pb.Proposal:
    return pb.Proposal(
        slot=proposal.slot,
        view=proposal.view,
        cut=_encode_cut(proposal.cut),
        leader=proposal.leader,
        signature=proposal.signature,
    )


def _encode_phase(phase: MsgKind) -> pb.Phase:
    wire = _PHASE_TO_WIRE.get(phase)
    if wire is None:
        raise ValueError(f"not a vote phase: {phase!r}")
    return wire


def _encode_qc(qc: QC) -> pb.QC:
    return pb.QC(
        phase=_encode_phase(qc.phase),
        slot=qc.slot,
        view=qc.view,
        cut_digest=qc.cut_digest,
        signers=encode_signers(qc.signers),
        signatures=qc.signatures,
    )


def _encode_vote(vote: Vote) -> pb.Vote:
    return pb.Vote(
        phase=_encode_phase(vote.phase),
        slot=vote.slot,
        view=vote.view,
        cut_digest=vote.cut_digest,
        voter=vote.voter,
        signature=vote.signature,
    )


def _encode_timeout(timeout: Timeout) -> pb.Timeout:
    return pb.Timeout(
        slot=timeout.slot,
        view=timeout.view,
        high_qc=_optional(_encode_qc, timeout.high_qc),
        high_qc_cut=_optional(_encode_cut, timeout.high_qc_cut),
        high_prop=_optional(_encode_proposal, timeout.high_prop),
        voter=timeout.voter,
        signature=timeout.signature,
    )


def _encode_tc(tc: TC) -> pb.TC:
    return pb.TC(slot=tc.slot, view=tc.view, timeouts=[_encode_timeout(t) for t in tc.timeouts])


def _encode_prepare(prepare: Prepare) -> pb.Prepare:
    ticket = prepare.ticket
    return pb.Prepare(
        proposal=_encode_proposal(prepare.proposal),
        ticket=pb.Ticket(
            prev=_optional(_encode_proposal, ticket.prev),
            commit_qc=_optional(_encode_qc, ticket.commit_qc),
            tc=_optional(_encode_tc, ticket.tc),
        ),
        exec_cert=_optional(_encode_exec_cert, prepare.exec_cert),
    )


def _encode_exec_vote(vote: ExecVote) -> pb.ExecVote:
    return pb.ExecVote(
        first=vote.first,
        last=vote.last,
        commitment=vote.commitment,
        voter=vote.voter,
        signature=vote.signature,
    )


def _encode_exec_cert(cert: ExecCert) -> pb.ExecCert:
    return pb.ExecCert(
        first=cert.first,
        last=cert.last,
        commitment=cert.commitment,
        signers=encode_signers(cert.signers),
        signatures=cert.signatures,
    )


def _encode_confirm(confirm: Confirm) -> pb.Confirm:
    return pb.Confirm(prepare_qc=_encode_qc(confirm.prepare_qc), cut=_encode_cut(confirm.cut))


def _encode_commit(commit: Commit) -> pb.Commit:
    return pb.Commit(commit_qc=_encode_qc(commit.commit_qc), cut=_encode_cut(commit.cut))


def _encode_sync_request(request: SyncRequest) -> pb.SyncRequest:
    return pb.SyncRequest(
        lane=request.lane,
        from_pos=request.from_pos,
        to_pos=request.to_pos,
        to_digest=request.to_digest,
    )


def _encode_sync_reply(reply: SyncReply) -> pb.SyncReply:
    return pb.SyncReply(lane=reply.lane, cars=[_encode_car(c) for c in reply.cars])


def _encode_commit_sync_request(request: CommitSyncRequest) -> pb.CommitSyncRequest:
    return pb.CommitSyncRequest(from_slot=request.from_slot)


def _encode_block(block: Block) -> pb.Block:
    return pb.Block(
        height=block.height,
        slot=block.slot,
        parent=block.parent,
        cut_digest=block.cut_digest,
        cars=[_encode_car(c) for c in block.cars],
    )


def _optional(encode: Callable[[_T], Any], value: _T | None) -> Any:
    return encode(value) if value is not None else None


_MESSAGE_ENCODERS: Final[dict[type, tuple[str, Callable[[Any], Any]]]] = {
    Car: ("car", _encode_car),
    LaneVote: ("lane_vote", _encode_lane_vote),
    PoA: ("poa", _encode_poa),
    Prepare: ("prepare", _encode_prepare),
    Vote: ("vote", _encode_vote),
    Confirm: ("confirm", _encode_confirm),
    Commit: ("commit", _encode_commit),
    Timeout: ("timeout", _encode_timeout),
    TC: ("tc", _encode_tc),
    SyncRequest: ("sync_request", _encode_sync_request),
    SyncReply: ("sync_reply", _encode_sync_reply),
    CommitSyncRequest: ("commit_sync_request", _encode_commit_sync_request),
    ExecVote: ("exec_vote", _encode_exec_vote),
}


# ============================================================================ decoding


def decode_message(data: bytes, max_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> Message:
    """Parse and structurally validate a ``PeerMessage``; raise ``MalformedMessage`` if bad."""
    envelope = _parse(pb.PeerMessage, data, max_size)
    field = envelope.WhichOneof("body")
    if field is None:
        raise MalformedMessage("peer message: no body set (unknown or missing message type)")
    return _MESSAGE_DECODERS[field](getattr(envelope, field), field)


def decode_block(data: bytes, max_size: int = DEFAULT_MAX_BLOCK_SIZE) -> Block:
    """Parse and structurally validate a ``Block``; raise ``MalformedMessage`` if bad."""
    return _decode_block(_parse(pb.Block, data, max_size), "block")


_M = TypeVar("_M", pb.PeerMessage, pb.Block)


def _parse(message_type: type[_M], data: bytes, max_size: int) -> _M:
    if len(data) > max_size:
        raise MalformedMessage(f"message of {len(data)} bytes exceeds the limit of {max_size}")
    try:
        return message_type.FromString(data)
    except DecodeError as exc:
        raise MalformedMessage(f"not a valid protobuf {message_type.__name__}: {exc}") from exc


def _check_digest(value: bytes, where: str) -> bytes:
    if len(value) != DIGEST_SIZE:
        raise MalformedMessage(f"{where}: digest of {len(value)} bytes, expected {DIGEST_SIZE}")
    return value


def _check_signature(value: bytes, where: str) -> bytes:
    if not 0 < len(value) <= MAX_SIGNATURE_SIZE:
        raise MalformedMessage(f"{where}: signature of {len(value)} bytes")
    return value


def _check_index(value: int, where: str) -> int:
    if value >= MAX_VALIDATORS:
        raise MalformedMessage(f"{where}: validator index {value} >= {MAX_VALIDATORS}")
    return value


def _check_count(items: Sequence[object], low: int, high: int, where: str) -> None:
    if not low <= len(items) <= high:
        raise MalformedMessage(f"{where}: {len(items)} items, expected {low}..{high}")


def _decode_phase(value: int, where: str) -> MsgKind:
    phase = _PHASE_FROM_WIRE.get(value)
    if phase is None:
        raise MalformedMessage(f"{where}: unknown phase {value}")
    return phase


def _required(message: Any, field: str, where: str) -> Any:
    if not message.HasField(field):
        raise MalformedMessage(f"{where}: missing {field}")
    return getattr(message, field)


def _decode_signed_set(
    bitmap: bytes, signatures: Sequence[bytes], where: str
) -> tuple[tuple[int, ...], tuple[bytes, ...]]:
    signers = decode_signers(bitmap, f"{where}.signers")
    if len(signers) != len(signatures):
        raise MalformedMessage(
            f"{where}: {len(signers)} signers in the bitmap but {len(signatures)} signatures"
        )
    checked = tuple(
        _check_signature(s, f"{where}.signatures[{i}]") for i, s in enumerate(signatures)
    )
    return signers, checked


def _decode_poa(m: pb.PoA, where: str) -> PoA:
    signers, signatures = _decode_signed_set(m.signers, m.signatures, where)
    return PoA(
        lane=_check_index(m.lane, f"{where}.lane"),
        pos=m.pos,
        car_digest=_check_digest(m.car_digest, f"{where}.car_digest"),
        signers=signers,
        signatures=signatures,
    )


def _decode_car(m: pb.Car, where: str) -> Car:
    _check_count(m.txs, 0, MAX_CAR_TXS, f"{where}.txs")
    for i, tx in enumerate(m.txs):
        if not 0 < len(tx) <= MAX_TX_SIZE:
            raise MalformedMessage(f"{where}.txs[{i}]: transaction of {len(tx)} bytes")
    return Car.create(
        lane=_check_index(m.lane, f"{where}.lane"),
        pos=m.pos,
        parent=_check_digest(m.parent, f"{where}.parent"),
        parent_poa=_decode_optional(_decode_poa, m, "parent_poa", where),
        txs=tuple(m.txs),
        signature=_check_signature(m.signature, f"{where}.signature"),
    )


def _decode_lane_vote(m: pb.LaneVote, where: str) -> LaneVote:
    return LaneVote(
        lane=_check_index(m.lane, f"{where}.lane"),
        pos=m.pos,
        car_digest=_check_digest(m.car_digest, f"{where}.car_digest"),
        voter=_check_index(m.voter, f"{where}.voter"),
        signature=_check_signature(m.signature, f"{where}.signature"),
    )


def _decode_cut_tip(m: pb.CutTip, where: str) -> CutTip:
    return CutTip(
        lane=_check_index(m.lane, f"{where}.lane"),
        pos=m.pos,
        car_digest=_check_digest(m.car_digest, f"{where}.car_digest"),
        poa=_decode_optional(_decode_poa, m, "poa", where),
    )


def _decode_cut(m: pb.Cut, where: str) -> Cut:
    _check_count(m.tips, 1, MAX_VALIDATORS, f"{where}.tips")
    tips = tuple(_decode_cut_tip(t, f"{where}.tips[{i}]") for i, t in enumerate(m.tips))
    for i in range(1, len(tips)):
        if tips[i].lane <= tips[i - 1].lane:
            raise MalformedMessage(f"{where}.tips[{i}]: lanes must ascend strictly")
    return Cut(tips)


def _decode_proposal(m: pb.Proposal, where: str) -> Proposal:
    return Proposal(
        slot=m.slot,
        view=m.view,
        cut=_decode_cut(_required(m, "cut", where), f"{where}.cut"),
        leader=_check_index(m.leader, f"{where}.leader"),
        signature=_check_signature(m.signature, f"{where}.signature"),
    )


def _decode_qc(m: pb.QC, where: str) -> QC:
    signers, signatures = _decode_signed_set(m.signers, m.signatures, where)
    return QC(
        phase=_decode_phase(m.phase, f"{where}.phase"),
        slot=m.slot,
        view=m.view,
        cut_digest=_check_digest(m.cut_digest, f"{where}.cut_digest"),
        signers=signers,
        signatures=signatures,
    )


def _decode_vote(m: pb.Vote, where: str) -> Vote:
    return Vote(
        phase=_decode_phase(m.phase, f"{where}.phase"),
        slot=m.slot,
        view=m.view,
        cut_digest=_check_digest(m.cut_digest, f"{where}.cut_digest"),
        voter=_check_index(m.voter, f"{where}.voter"),
        signature=_check_signature(m.signature, f"{where}.signature"),
    )


def _decode_optional(
    decode: Callable[[Any, str], _T], message: Any, field: str, where: str
) -> _T | None:
    if not message.HasField(field):
        return None
    return decode(getattr(message, field), f"{where}.{field}")


def _decode_timeout(m: pb.Timeout, where: str) -> Timeout:
    return Timeout(
        slot=m.slot,
        view=m.view,
        high_qc=_decode_optional(_decode_qc, m, "high_qc", where),
        high_qc_cut=_decode_optional(_decode_cut, m, "high_qc_cut", where),
        high_prop=_decode_optional(_decode_proposal, m, "high_prop", where),
        voter=_check_index(m.voter, f"{where}.voter"),
        signature=_check_signature(m.signature, f"{where}.signature"),
    )


def _decode_tc(m: pb.TC, where: str) -> TC:
    _check_count(m.timeouts, 1, MAX_VALIDATORS, f"{where}.timeouts")
    timeouts = tuple(_decode_timeout(t, f"{where}.timeouts[{i}]") for i, t in enumerate(m.timeouts))
    return TC(slot=m.slot, view=m.view, timeouts=timeouts)


def _decode_ticket(m: pb.Ticket, where: str) -> Ticket:
    return Ticket(
        prev=_decode_optional(_decode_proposal, m, "prev", where),
        commit_qc=_decode_optional(_decode_qc, m, "commit_qc", where),
        tc=_decode_optional(_decode_tc, m, "tc", where),
    )


def _decode_prepare(m: pb.Prepare, where: str) -> Prepare:
    return Prepare(
        proposal=_decode_proposal(_required(m, "proposal", where), f"{where}.proposal"),
        ticket=_decode_ticket(_required(m, "ticket", where), f"{where}.ticket"),
        exec_cert=_decode_optional(_decode_exec_cert, m, "exec_cert", where),
    )


def _check_exec_range(first: int, last: int, where: str) -> None:
    if first < 1 or first > last:
        raise MalformedMessage(f"{where}: execution range {first}..{last} is empty or starts at 0")


def _decode_exec_vote(m: pb.ExecVote, where: str) -> ExecVote:
    _check_exec_range(m.first, m.last, where)
    return ExecVote(
        first=m.first,
        last=m.last,
        commitment=_check_digest(m.commitment, f"{where}.commitment"),
        voter=_check_index(m.voter, f"{where}.voter"),
        signature=_check_signature(m.signature, f"{where}.signature"),
    )


def _decode_exec_cert(m: pb.ExecCert, where: str) -> ExecCert:
    _check_exec_range(m.first, m.last, where)
    signers, signatures = _decode_signed_set(m.signers, m.signatures, where)
    return ExecCert(
        first=m.first,
        last=m.last,
        commitment=_check_digest(m.commitment, f"{where}.commitment"),
        signers=signers,
        signatures=signatures,
    )


def _decode_confirm(m: pb.Confirm, where: str) -> Confirm:
    return Confirm(
        prepare_qc=_decode_qc(_required(m, "prepare_qc", where), f"{where}.prepare_qc"),
        cut=_decode_cut(_required(m, "cut", where), f"{where}.cut"),
    )


def _decode_commit(m: pb.Commit, where: str) -> Commit:
    return Commit(
        commit_qc=_decode_qc(_required(m, "commit_qc", where), f"{where}.commit_qc"),
        cut=_decode_cut(_required(m, "cut", where), f"{where}.cut"),
    )


def _decode_sync_request(m: pb.SyncRequest, where: str) -> SyncRequest:
    if m.from_pos > m.to_pos:
        raise MalformedMessage(f"{where}: from_pos {m.from_pos} > to_pos {m.to_pos}")
    return SyncRequest(
        lane=_check_index(m.lane, f"{where}.lane"),
        from_pos=m.from_pos,
        to_pos=m.to_pos,
        to_digest=_check_digest(m.to_digest, f"{where}.to_digest"),
    )


def _decode_cars(cars: Sequence[pb.Car], limit: int, where: str) -> tuple[Car, ...]:
    _check_count(cars, 0, limit, where)
    return tuple(_decode_car(c, f"{where}[{i}]") for i, c in enumerate(cars))


def _decode_sync_reply(m: pb.SyncReply, where: str) -> SyncReply:
    lane = _check_index(m.lane, f"{where}.lane")
    cars = _decode_cars(m.cars, MAX_SYNC_CARS, f"{where}.cars")
    for i, car in enumerate(cars):
        if car.lane != lane:
            raise MalformedMessage(f"{where}.cars[{i}]: car of lane {car.lane} in lane {lane}")
    return SyncReply(lane=lane, cars=cars)


def _decode_commit_sync_request(m: pb.CommitSyncRequest, where: str) -> CommitSyncRequest:
    return CommitSyncRequest(from_slot=m.from_slot)


def _decode_block(m: pb.Block, where: str) -> Block:
    return Block(
        height=m.height,
        slot=m.slot,
        parent=_check_digest(m.parent, f"{where}.parent"),
        cut_digest=_check_digest(m.cut_digest, f"{where}.cut_digest"),
        cars=_decode_cars(m.cars, MAX_BLOCK_CARS, f"{where}.cars"),
    )


_MESSAGE_DECODERS: Final[dict[str, Callable[[Any, str], Message]]] = {
    "car": _decode_car,
    "lane_vote": _decode_lane_vote,
    "poa": _decode_poa,
    "prepare": _decode_prepare,
    "vote": _decode_vote,
    "confirm": _decode_confirm,
    "commit": _decode_commit,
    "timeout": _decode_timeout,
    "tc": _decode_tc,
    "sync_request": _decode_sync_request,
    "sync_reply": _decode_sync_reply,
    "commit_sync_request": _decode_commit_sync_request,
    "exec_vote": _decode_exec_vote,
}
