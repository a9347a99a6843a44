"""Invariant checkers over honest nodes, and the monitor that feeds them from traffic.

The checkers are pure functions of recorded facts (ledgers, committed cuts, signed votes,
certificates seen), so tests can hand them planted violations and see them fail:

* agreement: every honest node has the same block at every height it reached, and the same
  committed cut for every slot it committed;
* no transaction (and no lane position) is ordered twice;
* every ordered car has a proof of availability seen in traffic, or is an ancestor, in the
  same lane and the same block, of a car that has one;
* honest nodes never sign conflicting statements (one car of their own lane and one LaneVote
  per (lane, pos), one vote per (phase, slot, view), one Timeout and one Proposal per (slot,
  view), no vote in a view after timing out of it), remembered across restarts;
* execution: no honest node halts on a diverged state commitment, and every execution
  certificate carried in a Prepare certifies the honest commitment of its height;
* liveness: after the last fault heals, every honest node that is up commits within a bound,
  and transactions given to honest, never-crashed nodes are ordered.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from node.crypto.signing import Verifier
from node.types.committee import Committee
from node.types.messages import (
    TC,
    Block,
    Car,
    Commit,
    Confirm,
    Cut,
    ExecCert,
    ExecVote,
    LaneVote,
    Message,
    MsgKind,
    PoA,
    Prepare,
    SyncReply,
    Timeout,
    Vote,
    signing_bytes,
)


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken invariant: a short stable ``kind`` and a human-readable ``detail``."""

    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}"


# ---------------------------------------------------------------- safety over ledgers


def check_agreement(ledgers: Mapping[int, Sequence[Block]]) -> list[Violation]:
    """Every pair of honest ledgers agrees at every height both reached."""
    found: list[Violation] = []
    reference: dict[int, tuple[int, bytes]] = {}
    for node in sorted(ledgers):
        for index, block in enumerate(ledgers[node]):
            height = index + 1
            if block.height != height:
                found.append(
                    Violation(
                        "height", f"node {node} has height {block.height} at position {height}"
                    )
                )
                break
            digest = block.digest
            first = reference.setdefault(height, (node, digest))
            if first[1] != digest:
                found.append(
                    Violation(
                        "agreement",
                        f"height {height}: node {first[0]} has "
                        f"{first[1].hex()[:12]}, node {node} has "
                        f"{digest.hex()[:12]}",
                    )
                )
                break
    return found


def check_slot_agreement(commits: Mapping[int, Mapping[int, bytes]]) -> list[Violation]:
    """Honest nodes commit the same cut digest for every slot (``commits[node][slot]``)."""
    found: list[Violation] = []
    reference: dict[int, tuple[int, bytes]] = {}
    for node in sorted(commits):
        for slot in sorted(commits[node]):
            digest = commits[node][slot]
            first = reference.setdefault(slot, (node, digest))
            if first[1] != digest:
                found.append(
                    Violation(
                        "slot-agreement",
                        f"slot {slot}: node {first[0]} "
                        f"committed {first[1].hex()[:12]}, node {node} "
                        f"{digest.hex()[:12]}",
                    )
                )
    return found


def check_no_duplicates(
    ledgers: Mapping[int, Sequence[Block]], honest_lanes: Collection[int] | None = None
) -> list[Violation]:
    """No honest ledger orders a (lane, pos) twice, or a transaction twice in the cars of
    ``honest_lanes`` (all lanes if None): a Byzantine owner may repeat any bytes in its own
    cars, which only execution-level dedup can catch."""
    found: list[Violation] = []
    for node in sorted(ledgers):
        txs: dict[bytes, int] = {}
        positions: dict[tuple[int, int], int] = {}
        for block in ledgers[node]:
            for car in block.cars:
                where = positions.get((car.lane, car.pos))
                positions[(car.lane, car.pos)] = block.height
                if where is not None:
                    found.append(
                        Violation(
                            "duplicate-car",
                            f"node {node}: lane {car.lane} pos {car.pos} ordered at heights "
                            f"{where} and {block.height}",
                        )
                    )
                if honest_lanes is not None and car.lane not in honest_lanes:
                    continue
                for tx in car.txs:
                    if tx in txs:
                        found.append(
                            Violation(
                                "duplicate-tx",
                                f"node {node}: tx {tx[:24]!r} ordered at heights {txs[tx]} "
                                f"and {block.height}",
                            )
                        )
                    else:
                        txs[tx] = block.height
    return _dedupe(found)


def _dedupe(found: list[Violation]) -> list[Violation]:
    return list(dict.fromkeys(found))


# ---------------------------------------------------------------- proofs of availability


class PoaBook:
    """Every valid proof of availability seen anywhere in traffic, by (lane, pos, digest).

    Certificates are checked when first seen, so damaged copies (a Byzantine sender flipping
    signature bytes) never hide a valid one.
    """

    def __init__(self, committee: Committee, verifier: Verifier) -> None:
        self.committee = committee
        self.verifier = verifier
        self.valid: dict[tuple[int, int, bytes], PoA] = {}
        self.invalid = 0

    def add(self, poa: PoA) -> None:
        key = (poa.lane, poa.pos, poa.car_digest)
        if key in self.valid:
            return
        if is_valid_poa(poa, self.committee, self.verifier):
            self.valid[key] = poa
        else:
            self.invalid += 1

    def add_cut(self, cut: Cut | None) -> None:
        if cut is None:
            return
        for tip in cut.tips:
            if tip.poa is not None:
                self.add(tip.poa)

    def has_valid(self, car: Car) -> bool:
        return (car.lane, car.pos, car.digest) in self.valid


def is_valid_poa(poa: PoA, committee: Committee, verifier: Verifier) -> bool:
    """f+1 weight of distinct signers, each signature over (LANE_VOTE, lane, pos, digest)."""
    if len(poa.signers) != len(poa.signatures) or len(set(poa.signers)) != len(poa.signers):
        return False
    if committee.weight_of(poa.signers) < committee.poa_quorum:
        return False
    message = signing_bytes(
        MsgKind.LANE_VOTE, committee.chain_id, poa.lane, poa.pos, poa.car_digest
    )
    pairs = zip(poa.signers, poa.signatures, strict=True)
    return all(verifier.verify(signer, message, sig) for signer, sig in pairs)


def check_poas(ledgers: Mapping[int, Sequence[Block]], book: PoaBook) -> list[Violation]:
    """Every ordered car is certified, or is a same-block ancestor of a certified car."""
    found: list[Violation] = []
    done: set[bytes] = set()
    for node in sorted(ledgers):
        for block in ledgers[node]:
            digest = block.digest
            if digest in done:
                continue
            done.add(digest)
            for car in uncertified_cars(block, book):
                found.append(
                    Violation(
                        "no-poa",
                        f"node {node} height {block.height}: lane "
                        f"{car.lane} pos {car.pos} has no PoA",
                    )
                )
    return found


def uncertified_cars(block: Block, book: PoaBook) -> list[Car]:
    by_lane: dict[int, list[Car]] = {}
    for car in block.cars:
        by_lane.setdefault(car.lane, []).append(car)
    missing: list[Car] = []
    for cars in by_lane.values():
        cars.sort(key=lambda c: c.pos)
        child: Car | None = None
        for car in reversed(cars):
            covered = child is not None and child.parent == car.digest
            if not covered and not book.has_valid(car):
                missing.append(car)
                child = None
            else:
                child = car
    return missing


# ---------------------------------------------------------------- honest signatures


VoteKey = tuple[int, str, int, int]


@dataclass(slots=True)
class VoteBook:
    """Every signed statement an honest node emitted, across restarts; flags conflicts."""

    signed: dict[VoteKey, bytes] = field(default_factory=dict)
    timed_out: set[tuple[int, int, int]] = field(default_factory=set)
    violations: list[Violation] = field(default_factory=list)

    def record(self, node: int, message: Message) -> None:
        if isinstance(message, Car):
            if message.lane == node:
                self._sign(node, "car", message.lane, message.pos, message.digest)
        elif isinstance(message, LaneVote):
            if message.voter == node:
                self._sign(node, "lane-vote", message.lane, message.pos, message.car_digest)
        elif isinstance(message, Vote):
            if message.voter == node:
                self._record_vote(node, message)
        elif isinstance(message, Timeout):
            if message.voter == node:
                self._sign(node, "timeout", message.slot, message.view, message.content_digest)
                self.timed_out.add((node, message.slot, message.view))
        elif isinstance(message, Prepare):
            proposal = message.proposal
            if proposal.leader == node:
                self._sign(node, "proposal", proposal.slot, proposal.view, proposal.cut.digest)
        elif isinstance(message, ExecVote) and message.voter == node:
            self._sign(node, "exec-vote", message.first, message.last, message.digest)

    def _record_vote(self, node: int, vote: Vote) -> None:
        kind = "prepare-vote" if vote.phase == MsgKind.PREPARE_VOTE else "confirm-ack"
        key = (node, kind, vote.slot, vote.view)
        if key not in self.signed and (node, vote.slot, vote.view) in self.timed_out:
            self.violations.append(
                Violation(
                    "vote-after-timeout",
                    f"node {node} sent {kind} "
                    f"for slot {vote.slot} view {vote.view} after "
                    f"its Timeout",
                )
            )
        self._sign(node, kind, vote.slot, vote.view, vote.cut_digest)

    def _sign(self, node: int, kind: str, first: int, second: int, digest: bytes) -> None:
        key = (node, kind, first, second)
        previous = self.signed.setdefault(key, digest)
        if previous != digest:
            self.violations.append(
                Violation(
                    "conflicting-vote",
                    f"node {node} signed two "
                    f"{kind}s at ({first}, {second}): "
                    f"{previous.hex()[:12]} and {digest.hex()[:12]}",
                )
            )


# ---------------------------------------------------------------- execution results


@dataclass(slots=True)
class ExecBook:
    """The honest state commitment per height, every execution certificate carried in a
    Prepare, and every halt; ``check_execution`` judges them at the end of a run (a
    certificate may be seen before the honest commitment of its height is recorded)."""

    reference: dict[int, bytes] = field(default_factory=dict)
    certs: dict[tuple[int, bytes], ExecCert] = field(default_factory=dict)
    halts: dict[int, tuple[bool, str]] = field(default_factory=dict)

    def on_commitment(self, height: int, commitment: bytes) -> None:
        self.reference.setdefault(height, commitment)

    def on_cert(self, cert: ExecCert) -> None:
        self.certs.setdefault((cert.last, cert.commitment), cert)

    def on_halt(self, node: int, honest: bool, reason: str) -> None:
        self.halts.setdefault(node, (honest, reason))


def check_execution(book: ExecBook) -> list[Violation]:
    """No honest validator halts, and every certificate certifies the honest commitment."""
    found = [
        Violation("honest-halt", f"node {node}: {reason}")
        for node, (honest, reason) in sorted(book.halts.items())
        if honest
    ]
    for (height, commitment), cert in sorted(book.certs.items()):
        honest = book.reference.get(height)
        if honest != commitment:
            found.append(
                Violation(
                    "bad-exec-cert",
                    f"certificate for height {height} by {list(cert.signers)} certifies "
                    f"{commitment.hex()[:12]}, honest nodes have "
                    f"{honest.hex()[:12] if honest else 'not executed it'}",
                )
            )
    return found


# ---------------------------------------------------------------- the monitor


@dataclass(slots=True)
class CommitRecord:
    slot: int
    view: int
    cut_digest: bytes
    fast: bool
    time: int


@dataclass(slots=True)
class Monitor:
    """Watches every emitted message and every commit; owns the evidence the checkers read."""

    poas: PoaBook
    votes: VoteBook = field(default_factory=VoteBook)
    byzantine_votes: VoteBook = field(default_factory=VoteBook)
    """The same bookkeeping for Byzantine senders: evidence that their behaviours bite."""
    first_prepare: dict[int, int] = field(default_factory=dict)
    first_leader: dict[int, int] = field(default_factory=dict)
    commits: dict[int, dict[int, CommitRecord]] = field(default_factory=dict)
    last_commit: dict[int, int] = field(default_factory=dict)
    max_slot_prepared: int = 0
    execution: ExecBook = field(default_factory=ExecBook)

    def on_send(self, node: int, honest: bool, message: Message, now: int) -> None:
        (self.votes if honest else self.byzantine_votes).record(node, message)
        self._collect_poas(message)
        if isinstance(message, Prepare):
            slot = message.proposal.slot
            if slot not in self.first_prepare:
                self.first_prepare[slot] = now
                self.first_leader[slot] = message.proposal.leader
            self.max_slot_prepared = max(self.max_slot_prepared, slot)
            if message.exec_cert is not None:
                self.execution.on_cert(message.exec_cert)

    def on_commit(self, node: int, record: CommitRecord) -> None:
        self.commits.setdefault(node, {}).setdefault(record.slot, record)
        self.last_commit[node] = record.time

    def _collect_poas(self, message: Message) -> None:
        book = self.poas
        if isinstance(message, Car):
            if message.parent_poa is not None:
                book.add(message.parent_poa)
        elif isinstance(message, PoA):
            book.add(message)
        elif isinstance(message, Prepare):
            book.add_cut(message.proposal.cut)
            if message.ticket.tc is not None:
                self._collect_tc(message.ticket.tc)
        elif isinstance(message, (Commit, Confirm)):
            book.add_cut(message.cut)
        elif isinstance(message, Timeout):
            self._collect_timeout(message)
        elif isinstance(message, TC):
            self._collect_tc(message)
        elif isinstance(message, SyncReply):
            for car in message.cars:
                if car.parent_poa is not None:
                    book.add(car.parent_poa)

    def _collect_timeout(self, timeout: Timeout) -> None:
        self.poas.add_cut(timeout.high_qc_cut)
        if timeout.high_prop is not None:
            self.poas.add_cut(timeout.high_prop.cut)

    def _collect_tc(self, tc: TC) -> None:
        for timeout in tc.timeouts:
            self._collect_timeout(timeout)

    def committed_cuts(self, nodes: Iterable[int]) -> dict[int, dict[int, bytes]]:
        return {
            node: {slot: rec.cut_digest for slot, rec in self.commits.get(node, {}).items()}
            for node in nodes
        }


# ---------------------------------------------------------------- liveness


def check_liveness(
    commit_times: Mapping[int, Sequence[int]], since: int, bound: int
) -> list[Violation]:
    """Every listed node commits some slot in [since, since + bound] (clock ticks)."""
    found: list[Violation] = []
    for node in sorted(commit_times):
        if not any(since <= t <= since + bound for t in commit_times[node]):
            found.append(
                Violation(
                    "liveness",
                    f"node {node} committed nothing within "
                    f"{bound // 1000} ms after {since // 1000} ms",
                )
            )
    return found


def check_inclusion(
    submitted: Mapping[bytes, int], ledgers: Mapping[int, Sequence[Block]], limit: int = 3
) -> list[Violation]:
    """Every transaction in ``submitted`` (tx -> lane) is ordered by some honest node."""
    ordered: set[bytes] = set()
    for ledger in ledgers.values():
        for block in ledger:
            for car in block.cars:
                ordered.update(car.txs)
    missing = [tx for tx in submitted if tx not in ordered]
    if not missing:
        return []
    lanes = sorted({submitted[tx] for tx in missing})
    sample = ", ".join(repr(tx[:24]) for tx in missing[:limit])
    return [
        Violation(
            "inclusion", f"{len(missing)} txs of honest lanes {lanes} never ordered, e.g. {sample}"
        )
    ]
