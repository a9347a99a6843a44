"""Hypothesis strategies for every wire value in node.types.messages.

They draw structurally valid values (what the codec must carry unchanged), not protocol-valid
ones: signatures are random bytes and positions need not chain.
"""

from __future__ import annotations

from hypothesis import strategies as st

from node.crypto.hashing import DIGEST_SIZE
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
from node.wire.bitmap import MAX_VALIDATORS
from node.wire.codec import MAX_SIGNATURE_SIZE

U64_MAX = 2**64 - 1

u64s = st.integers(0, U64_MAX)
# mostly small committees, sometimes the largest index the wire allows
indices = st.integers(0, 15) | st.integers(0, MAX_VALIDATORS - 1)
digests = st.binary(min_size=DIGEST_SIZE, max_size=DIGEST_SIZE)
signatures = st.sampled_from([32, 64, 1, MAX_SIGNATURE_SIZE]).flatmap(
    lambda n: st.binary(min_size=n, max_size=n)
)
phases = st.sampled_from([MsgKind.PREPARE_VOTE, MsgKind.CONFIRM_ACK])
txs = st.lists(st.binary(min_size=1, max_size=64), max_size=5).map(tuple)


@st.composite
def signed_sets(draw: st.DrawFn) -> tuple[tuple[int, ...], tuple[bytes, ...]]:
    signers = sorted(draw(st.sets(indices, min_size=1, max_size=8)))
    sigs = draw(st.lists(signatures, min_size=len(signers), max_size=len(signers)))
    return tuple(signers), tuple(sigs)


@st.composite
def poas(draw: st.DrawFn) -> PoA:
    signers, sigs = draw(signed_sets())
    return PoA(draw(indices), draw(u64s), draw(digests), signers, sigs)


@st.composite
def cars(draw: st.DrawFn, lane: int | None = None) -> Car:
    return Car.create(
        lane=draw(indices) if lane is None else lane,
        pos=draw(u64s),
        parent=draw(digests),
        parent_poa=draw(st.none() | poas()),
        txs=draw(txs),
        signature=draw(signatures),
    )


lane_votes = st.builds(LaneVote, indices, u64s, digests, indices, signatures)


@st.composite
def cuts(draw: st.DrawFn) -> Cut:
    lanes = sorted(draw(st.sets(indices, min_size=1, max_size=6)))
    tips = tuple(
        CutTip(lane, draw(u64s), draw(digests), draw(st.none() | poas())) for lane in lanes
    )
    return Cut(tips)


proposals = st.builds(Proposal, u64s, u64s, cuts(), indices, signatures)


@st.composite
def qcs(draw: st.DrawFn) -> QC:
    signers, sigs = draw(signed_sets())
    return QC(draw(phases), draw(u64s), draw(u64s), draw(digests), signers, sigs)


votes = st.builds(Vote, phases, u64s, u64s, digests, indices, signatures)
timeouts = st.builds(
    Timeout,
    u64s,
    u64s,
    st.none() | qcs(),
    st.none() | cuts(),
    st.none() | proposals,
    indices,
    signatures,
)
tcs = st.builds(TC, u64s, u64s, st.lists(timeouts, min_size=1, max_size=4).map(tuple))
tickets = st.builds(Ticket, st.none() | proposals, st.none() | qcs(), st.none() | tcs)


@st.composite
def exec_ranges(draw: st.DrawFn) -> tuple[int, int]:
    low, high = sorted((draw(st.integers(1, U64_MAX)), draw(st.integers(1, U64_MAX))))
    return low, high


@st.composite
def exec_votes(draw: st.DrawFn) -> ExecVote:
    first, last = draw(exec_ranges())
    return ExecVote(first, last, draw(digests), draw(indices), draw(signatures))


@st.composite
def exec_certs(draw: st.DrawFn) -> ExecCert:
    first, last = draw(exec_ranges())
    signers, sigs = draw(signed_sets())
    return ExecCert(first, last, draw(digests), signers, sigs)


prepares = st.builds(Prepare, proposals, tickets, st.none() | exec_certs())
confirms = st.builds(Confirm, qcs(), cuts())
commits = st.builds(Commit, qcs(), cuts())


@st.composite
def sync_requests(draw: st.DrawFn) -> SyncRequest:
    low, high = sorted((draw(u64s), draw(u64s)))
    return SyncRequest(draw(indices), low, high, draw(digests))


@st.composite
def sync_replies(draw: st.DrawFn) -> SyncReply:
    lane = draw(indices)
    return SyncReply(lane, tuple(draw(st.lists(cars(lane=lane), max_size=4))))


commit_sync_requests = st.builds(CommitSyncRequest, u64s)

MESSAGE_STRATEGIES: dict[type, st.SearchStrategy[Message]] = {
    Car: cars(),
    LaneVote: lane_votes,
    PoA: poas(),
    Prepare: prepares,
    Vote: votes,
    Confirm: confirms,
    Commit: commits,
    Timeout: timeouts,
    TC: tcs,
    SyncRequest: sync_requests(),
    SyncReply: sync_replies(),
    CommitSyncRequest: commit_sync_requests,
    ExecVote: exec_votes(),
}
"""One strategy per member of the ``Message`` union."""

messages: st.SearchStrategy[Message] = st.one_of(*MESSAGE_STRATEGIES.values())

blocks = st.builds(Block, u64s, u64s, digests, digests, st.lists(cars(), max_size=4).map(tuple))
