"""Every value that crosses the wire between validators, plus the ordered Block.

Each signed value binds (chain id, message kind, two position numbers, content digest) through
``signing_bytes``: (lane, pos) for cars and lane votes, (slot, view) for consensus messages,
(first, last height) for execution votes.
Digests are computed from the canonical encoding in ``node.types.encoding``, never from the
wire bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from node.crypto.hashing import ZERO_DIGEST, hash_tagged
from node.types.encoding import encode_bytes_list, encode_ints, encode_u64

SIGNING_DOMAIN = b"lanenet/v1"


class MsgKind(IntEnum):
    """What a signature is about; part of every signed byte string."""

    CAR = 1
    LANE_VOTE = 2
    PROPOSAL = 3
    PREPARE_VOTE = 4
    CONFIRM_ACK = 5
    TIMEOUT = 6
    EXEC_VOTE = 7


def signing_bytes(kind: MsgKind, chain_id: int, first: int, second: int, digest: bytes) -> bytes:
    """The exact bytes a validator signs: domain, chain, kind, positions and content digest."""
    return (
        SIGNING_DOMAIN
        + encode_u64(chain_id)
        + bytes([kind])
        + encode_u64(first)
        + encode_u64(second)
        + digest
    )


def compute_payload_hash(txs: tuple[bytes, ...]) -> bytes:
    return hash_tagged(b"payload", encode_bytes_list(txs))


def compute_car_digest(lane: int, pos: int, parent: bytes, payload_hash: bytes) -> bytes:
    return hash_tagged(b"car", encode_u64(lane) + encode_u64(pos) + parent + payload_hash)


# ---------------------------------------------------------------- data layer (lanes)


@dataclass(frozen=True, slots=True)
class LaneVote:
    """A validator's statement that it stored car (lane, pos, car_digest) and its whole prefix."""

    lane: int
    pos: int
    car_digest: bytes
    voter: int
    signature: bytes


@dataclass(frozen=True, slots=True)
class PoA:
    """Proof of availability: f+1 weight of lane votes for one car. Signers ascend."""

    lane: int
    pos: int
    car_digest: bytes
    signers: tuple[int, ...]
    signatures: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class Car:
    """A batch of transactions in a lane at ``pos``, chained to its parent by digest.

    ``digest`` is derived from the content: build cars with ``Car.create``.
    """

    lane: int
    pos: int
    parent: bytes
    parent_poa: PoA | None
    txs: tuple[bytes, ...]
    signature: bytes
    digest: bytes

    @staticmethod
    def create(
        lane: int,
        pos: int,
        parent: bytes,
        parent_poa: PoA | None,
        txs: tuple[bytes, ...],
        signature: bytes,
    ) -> Car:
        digest = compute_car_digest(lane, pos, parent, compute_payload_hash(txs))
        return Car(lane, pos, parent, parent_poa, txs, signature, digest)

    def has_valid_digest(self) -> bool:
        expected = compute_car_digest(
            self.lane, self.pos, self.parent, compute_payload_hash(self.txs)
        )
        return expected == self.digest

    @property
    def size_bytes(self) -> int:
        return sum(len(tx) for tx in self.txs)


# ---------------------------------------------------------------- consensus


@dataclass(frozen=True, slots=True)
class CutTip:
    """The certified tip of one lane in a cut; pos 0 means the lane is empty (no PoA)."""

    lane: int
    pos: int
    car_digest: bytes
    poa: PoA | None


@dataclass(frozen=True, slots=True)
class Cut:
    """One tip per lane, in lane order. Its digest covers (lane, pos, car digest) only."""

    tips: tuple[CutTip, ...]

    @property
    def digest(self) -> bytes:
        body = b"".join(encode_u64(t.lane) + encode_u64(t.pos) + t.car_digest for t in self.tips)
        return hash_tagged(b"cut", encode_u64(len(self.tips)) + body)


def genesis_cut(size: int) -> Cut:
    return Cut(tuple(CutTip(lane, 0, ZERO_DIGEST, None) for lane in range(size)))


@dataclass(frozen=True, slots=True)
class Proposal:
    """A leader's signed cut for (slot, view)."""

    slot: int
    view: int
    cut: Cut
    leader: int
    signature: bytes

    @property
    def digest(self) -> bytes:
        return hash_tagged(
            b"proposal",
            encode_u64(self.slot)
            + encode_u64(self.view)
            + self.cut.digest
            + encode_u64(self.leader),
        )


@dataclass(frozen=True, slots=True)
class QC:
    """A quorum certificate: votes of ``phase`` for (slot, view, cut_digest). Signers ascend.

    phase PREPARE_VOTE with quorum weight is a PrepareQC, with all weight a fast CommitQC;
    phase CONFIRM_ACK with quorum weight is a slow CommitQC.
    """

    phase: MsgKind
    slot: int
    view: int
    cut_digest: bytes
    signers: tuple[int, ...]
    signatures: tuple[bytes, ...]

    @property
    def claim_digest(self) -> bytes:
        """What the certificate claims, independent of which signatures prove it."""
        return hash_tagged(
            b"qc",
            bytes([self.phase]) + encode_u64(self.slot) + encode_u64(self.view) + self.cut_digest,
        )


@dataclass(frozen=True, slots=True)
class Vote:
    """A PrepareVote (phase PREPARE_VOTE) or ConfirmAck (phase CONFIRM_ACK), sent to the leader."""

    phase: MsgKind
    slot: int
    view: int
    cut_digest: bytes
    voter: int
    signature: bytes


@dataclass(frozen=True, slots=True)
class Timeout:
    """A validator gives up on (slot, view), carrying its lock (high_qc) and last vote (high_prop).

    ``high_qc_cut`` is the cut the PrepareQC certifies, so a new leader can re-propose it.
    """

    slot: int
    view: int
    high_qc: QC | None
    high_qc_cut: Cut | None
    high_prop: Proposal | None
    voter: int
    signature: bytes

    @property
    def content_digest(self) -> bytes:
        qc = self.high_qc.claim_digest if self.high_qc is not None else ZERO_DIGEST
        prop = self.high_prop.digest if self.high_prop is not None else ZERO_DIGEST
        return hash_tagged(b"timeout", qc + prop)


@dataclass(frozen=True, slots=True)
class TC:
    """Timeout certificate: quorum weight of Timeouts for (slot, view)."""

    slot: int
    view: int
    timeouts: tuple[Timeout, ...]


@dataclass(frozen=True, slots=True)
class Ticket:
    """Why a leader may propose: view 0 needs ``prev`` (the Prepare of slot-1, any view) and,
    beyond the first k slots, ``commit_qc`` of slot-k; view v > 0 needs ``tc`` for (slot, v-1).
    """

    prev: Proposal | None = None
    commit_qc: QC | None = None
    tc: TC | None = None


@dataclass(frozen=True, slots=True)
class Prepare:
    """A leader's proposal with its ticket; ``exec_cert`` is the latest execution certificate
    the leader holds (self-authenticating, so not covered by the proposal signature)."""

    proposal: Proposal
    ticket: Ticket
    exec_cert: ExecCert | None = None


@dataclass(frozen=True, slots=True)
class Confirm:
    """Slow path: the leader shows the PrepareQC and asks for ConfirmAcks."""

    prepare_qc: QC
    cut: Cut


@dataclass(frozen=True, slots=True)
class Commit:
    """Any replica that accepts a valid CommitQC for the cut commits the slot."""

    commit_qc: QC
    cut: Cut


# ---------------------------------------------------------------- execution results


def compute_exec_digest(first: int, last: int, commitment: bytes) -> bytes:
    """What an execution vote signs: the height range and the state commitment after ``last``."""
    return hash_tagged(b"exec", encode_u64(first) + encode_u64(last) + commitment)


@dataclass(frozen=True, slots=True)
class ExecVote:
    """A validator executed blocks ``first..last`` and its state commitment after ``last`` is
    ``commitment``; sent at every checkpoint height (a multiple of ``exec_cert_interval``)."""

    first: int
    last: int
    commitment: bytes
    voter: int
    signature: bytes

    @property
    def digest(self) -> bytes:
        return compute_exec_digest(self.first, self.last, self.commitment)


@dataclass(frozen=True, slots=True)
class ExecCert:
    """Execution certificate: quorum weight of matching ExecVotes. Signers ascend."""

    first: int
    last: int
    commitment: bytes
    signers: tuple[int, ...]
    signatures: tuple[bytes, ...]

    @property
    def digest(self) -> bytes:
        return compute_exec_digest(self.first, self.last, self.commitment)


# ---------------------------------------------------------------- sync


@dataclass(frozen=True, slots=True)
class SyncRequest:
    """Ask for the cars of ``lane`` from ``from_pos`` up to the car (to_pos, to_digest)."""

    lane: int
    from_pos: int
    to_pos: int
    to_digest: bytes


@dataclass(frozen=True, slots=True)
class SyncReply:
    """Cars of one lane, ascending and hash-chained, answering a SyncRequest."""

    lane: int
    cars: tuple[Car, ...]


@dataclass(frozen=True, slots=True)
class CommitSyncRequest:
    """A replica that fell behind asks for the Commits of slots from ``from_slot`` on."""

    from_slot: int


Message = (
    Car
    | LaneVote
    | PoA
    | Prepare
    | Vote
    | Confirm
    | Commit
    | Timeout
    | TC
    | SyncRequest
    | SyncReply
    | CommitSyncRequest
    | ExecVote
)


# ---------------------------------------------------------------- ordered output


@dataclass(frozen=True, slots=True)
class Block:
    """One committed slot turned into an ordered list of cars. Heights are consecutive from 1."""

    height: int
    slot: int
    parent: bytes
    cut_digest: bytes
    cars: tuple[Car, ...]

    @property
    def digest(self) -> bytes:
        body = (
            encode_u64(self.height)
            + encode_u64(self.slot)
            + self.parent
            + self.cut_digest
            + encode_ints(c.lane for c in self.cars)
            + b"".join(c.digest for c in self.cars)
        )
        return hash_tagged(b"block", body)

    @property
    def tx_count(self) -> int:
        return sum(len(c.txs) for c in self.cars)
