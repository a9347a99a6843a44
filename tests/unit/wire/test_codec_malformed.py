"""Bad bytes from a peer raise MalformedMessage, and never any other exception."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.types.errors import MalformedMessage
from node.types.messages import Car, Message
from node.wire.codec import (
    DEFAULT_MAX_MESSAGE_SIZE,
    MAX_SIGNATURE_SIZE,
    decode_block,
    decode_message,
    encode_block,
    encode_message,
)
from node.wire.gen.lanenet.v1 import messages_pb2 as pb
from tests.strategies import blocks, messages

DIGEST = b"\x11" * 32
SIG = b"\x22" * 64


def envelope(**body: Any) -> bytes:
    return pb.PeerMessage(**body).SerializeToString()


def pb_poa(**overrides: Any) -> pb.PoA:
    fields: dict[str, Any] = {
        "lane": 1,
        "pos": 3,
        "car_digest": DIGEST,
        "signers": b"\x05",  # validators 0 and 2
        "signatures": [SIG, SIG],
    }
    return pb.PoA(**(fields | overrides))


def pb_vote(**overrides: Any) -> pb.Vote:
    fields: dict[str, Any] = {
        "phase": pb.PHASE_PREPARE_VOTE,
        "slot": 7,
        "view": 1,
        "cut_digest": DIGEST,
        "voter": 2,
        "signature": SIG,
    }
    return pb.Vote(**(fields | overrides))


def pb_car(**overrides: Any) -> pb.Car:
    fields: dict[str, Any] = {
        "lane": 1,
        "pos": 4,
        "parent": DIGEST,
        "parent_poa": pb_poa(),
        "txs": [b"tx-1", b"tx-2"],
        "signature": SIG,
    }
    return pb.Car(**(fields | overrides))


def pb_cut(*lanes: int) -> pb.Cut:
    return pb.Cut(tips=[pb.CutTip(lane=lane, pos=0, car_digest=DIGEST) for lane in lanes])


def pb_qc(**overrides: Any) -> pb.QC:
    fields: dict[str, Any] = {
        "phase": pb.PHASE_CONFIRM_ACK,
        "slot": 7,
        "view": 1,
        "cut_digest": DIGEST,
        "signers": b"\x07",
        "signatures": [SIG, SIG, SIG],
    }
    return pb.QC(**(fields | overrides))


def test_hand_built_baselines_decode() -> None:
    """The valid messages the malformed cases below are derived from do decode."""
    for body in (
        {"poa": pb_poa()},
        {"vote": pb_vote()},
        {"car": pb_car()},
        {"commit": pb.Commit(commit_qc=pb_qc(), cut=pb_cut(0, 1, 2, 3))},
        {"sync_request": pb.SyncRequest(lane=1, from_pos=2, to_pos=2, to_digest=DIGEST)},
    ):
        decode_message(envelope(**body))


MALFORMED: dict[str, tuple[bytes, str]] = {
    "empty": (b"", "no body"),
    "unknown oneof field": (b"\xfa\x01\x00", "no body"),
    "garbage": (b"\xff\xff\xff\xff", "not a valid protobuf"),
    "short digest": (envelope(vote=pb_vote(cut_digest=b"\x11" * 31)), "vote.cut_digest"),
    "long digest": (envelope(poa=pb_poa(car_digest=b"\x11" * 33)), "poa.car_digest"),
    "missing digest": (envelope(vote=pb_vote(cut_digest=b"")), "digest of 0 bytes"),
    "empty signature": (envelope(vote=pb_vote(signature=b"")), "vote.signature"),
    "long signature": (
        envelope(vote=pb_vote(signature=b"s" * (MAX_SIGNATURE_SIZE + 1))),
        "vote.signature",
    ),
    "unspecified phase": (envelope(vote=pb_vote(phase=pb.PHASE_UNSPECIFIED)), "unknown phase"),
    "unknown phase": (envelope(vote=pb_vote(phase=9)), "unknown phase 9"),
    "voter index too large": (envelope(vote=pb_vote(voter=1024)), "vote.voter"),
    "more signers than signatures": (
        envelope(poa=pb_poa(signers=b"\x07")),
        "3 signers in the bitmap but 2 signatures",
    ),
    "fewer signers than signatures": (
        envelope(poa=pb_poa(signers=b"\x01")),
        "1 signers in the bitmap but 2 signatures",
    ),
    "no signers": (envelope(poa=pb_poa(signers=b"", signatures=[])), "no signers"),
    "bitmap trailing zero": (envelope(poa=pb_poa(signers=b"\x05\x00")), "trailing zero"),
    "bitmap too long": (
        envelope(poa=pb_poa(signers=b"\x00" * 128 + b"\x01", signatures=[SIG])),
        "too long",
    ),
    "bad signature inside a certificate": (
        envelope(poa=pb_poa(signatures=[SIG, b""])),
        r"poa.signatures\[1\]",
    ),
    "bad nested parent poa": (
        envelope(car=pb_car(parent_poa=pb_poa(car_digest=b"x"))),
        "car.parent_poa.car_digest",
    ),
    "empty transaction": (envelope(car=pb_car(txs=[b"ok", b""])), r"car.txs\[1\]"),
    "too many transactions": (envelope(car=pb_car(txs=[b"t"] * 65537)), "car.txs: 65537"),
    "empty cut": (envelope(commit=pb.Commit(commit_qc=pb_qc(), cut=pb.Cut())), "commit.cut.tips"),
    "cut lanes out of order": (
        envelope(commit=pb.Commit(commit_qc=pb_qc(), cut=pb_cut(0, 2, 1))),
        "lanes must ascend",
    ),
    "cut lane repeated": (
        envelope(commit=pb.Commit(commit_qc=pb_qc(), cut=pb_cut(0, 0))),
        "lanes must ascend",
    ),
    "commit without qc": (envelope(commit=pb.Commit(cut=pb_cut(0))), "missing commit_qc"),
    "prepare without ticket": (
        envelope(
            prepare=pb.Prepare(proposal=pb.Proposal(slot=1, cut=pb_cut(0), leader=1, signature=SIG))
        ),
        "missing ticket",
    ),
    "proposal without cut": (
        envelope(
            prepare=pb.Prepare(
                proposal=pb.Proposal(slot=1, leader=1, signature=SIG), ticket=pb.Ticket()
            )
        ),
        "prepare.proposal: missing cut",
    ),
    "tc without timeouts": (envelope(tc=pb.TC(slot=1, view=2)), "tc.timeouts"),
    "deep bad qc in a ticket": (
        envelope(
            prepare=pb.Prepare(
                proposal=pb.Proposal(slot=1, cut=pb_cut(0), leader=1, signature=SIG),
                ticket=pb.Ticket(commit_qc=pb_qc(phase=3)),
            )
        ),
        "prepare.ticket.commit_qc.phase",
    ),
    "sync range reversed": (
        envelope(sync_request=pb.SyncRequest(lane=1, from_pos=5, to_pos=4, to_digest=DIGEST)),
        "from_pos 5 > to_pos 4",
    ),
    "sync reply car of another lane": (
        envelope(sync_reply=pb.SyncReply(lane=2, cars=[pb_car(lane=1)])),
        r"sync_reply.cars\[0\]: car of lane 1 in lane 2",
    ),
}


@pytest.mark.parametrize(("data", "reason"), MALFORMED.values(), ids=list(MALFORMED))
def test_malformed_message_is_rejected_with_its_reason(data: bytes, reason: str) -> None:
    """Each structural defect raises MalformedMessage naming the defect."""
    with pytest.raises(MalformedMessage, match=reason):
        decode_message(data)


def test_oversized_message_is_rejected_before_parsing() -> None:
    """Bytes over the size limit are refused by length alone, even if they would parse."""
    data = envelope(vote=pb_vote())
    decode_message(data, max_size=len(data))
    with pytest.raises(MalformedMessage, match="exceeds the limit"):
        decode_message(data, max_size=len(data) - 1)
    with pytest.raises(MalformedMessage, match="exceeds the limit"):
        decode_message(b"\x00" * (DEFAULT_MAX_MESSAGE_SIZE + 1))


def test_car_digest_is_recomputed_from_content() -> None:
    """A car's digest is never taken from the sender: decoding derives it from the content."""
    good = Car.create(1, 4, DIGEST, None, (b"tx",), SIG)
    forged = Car(good.lane, good.pos, good.parent, None, good.txs, SIG, b"\x00" * 32)
    decoded = decode_message(encode_message(forged))
    assert decoded == good


def test_block_with_bad_car_is_rejected() -> None:
    """decode_block applies the same checks to the cars inside a block."""
    block = pb.Block(height=1, slot=1, parent=DIGEST, cut_digest=DIGEST, cars=[pb_car(parent=b"")])
    with pytest.raises(MalformedMessage, match=r"block.cars\[0\].parent"):
        decode_block(block.SerializeToString())
    with pytest.raises(MalformedMessage, match=r"block\.parent"):
        decode_block(pb.Block(cut_digest=DIGEST).SerializeToString())


# deadline=None: drawing a large message is slow on a busy machine; speed is not tested here
@settings(deadline=None)
@given(messages, st.data())
def test_every_truncation_is_rejected(message: Message, data: st.DataObject) -> None:
    """Any strict prefix of a valid encoding raises MalformedMessage."""
    encoded = encode_message(message)
    cut = data.draw(st.integers(0, len(encoded) - 1))
    with pytest.raises(MalformedMessage):
        decode_message(encoded[:cut])


def decodes_or_is_malformed(data: bytes) -> None:
    with contextlib.suppress(MalformedMessage):
        decode_message(data)


@given(st.binary(max_size=4096))
def test_random_bytes_only_raise_malformed(data: bytes) -> None:
    """Arbitrary bytes either decode or raise MalformedMessage."""
    decodes_or_is_malformed(data)


@settings(deadline=None)
@given(messages, st.data())
def test_mutated_encodings_only_raise_malformed(message: Message, data: st.DataObject) -> None:
    """Valid encodings with bytes overwritten, inserted or deleted decode or raise Malformed."""
    buffer = bytearray(encode_message(message))
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, len(buffer)))
        action = data.draw(st.sampled_from(["set", "insert", "delete"]))
        byte = data.draw(st.integers(0, 255))
        if action == "insert" or at == len(buffer):
            buffer.insert(at, byte)
        elif action == "set":
            buffer[at] = byte
        else:
            del buffer[at]
    decodes_or_is_malformed(bytes(buffer))


@given(st.one_of(st.binary(max_size=2048), blocks.map(encode_block).map(lambda b: b[:-1])))
def test_random_block_bytes_only_raise_malformed(data: bytes) -> None:
    """Arbitrary or truncated block bytes either decode or raise MalformedMessage."""
    with contextlib.suppress(MalformedMessage):
        decode_block(data)
