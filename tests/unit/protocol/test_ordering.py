"""From committed cuts to blocks: lane-major order, monotone tips, forks, sync and slot order."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from node.crypto.hashing import ZERO_DIGEST
from node.protocol.effects import Deliver, Effect, Persist
from node.protocol.events import Start
from node.protocol.ordering import OrderingCheckpoint
from node.protocol.replica import Replica
from node.types.messages import (
    Block,
    Car,
    Commit,
    Cut,
    CutTip,
    LaneVote,
    MsgKind,
    SyncReply,
    SyncRequest,
)
from tests.unit.protocol.helpers import Keys, receive, sends_to

KEYS = Keys(4)
ME = 0
LANES = {lane: KEYS.lane(lane, 6, poas=False) for lane in range(4)}
FORK = KEYS.lane(1, 4, tag=b"fork", first_parent=LANES[1][0].digest, first_pos=2, poas=False)


def replica_holding(*chains: list[Car]) -> Replica:
    replica = KEYS.replica(ME)
    replica.step(Start(0))
    for chain in chains:
        for car in chain:  # stored (e.g. synced), not voted for
            replica.lanes.store[car.lane].setdefault(car.pos, {})[car.digest] = car
    return replica


def cut(**tips: int) -> Cut:
    """A cut with lane ``l`` at position ``tips[f"l{l}"]`` of the honest lanes."""
    return KEYS.cut(
        *(KEYS.tip(LANES[int(k[1:])][pos - 1], (2, 3)) for k, pos in tips.items() if pos > 0)
    )


def commit(slot: int, c: Cut) -> Commit:
    return Commit(KEYS.qc(MsgKind.CONFIRM_ACK, slot, 0, c), c)


def blocks(effects: list[Effect]) -> list[Block]:
    return [e.block for e in effects if isinstance(e, Deliver)]


def positions(block: Block) -> list[tuple[int, int]]:
    return [(c.lane, c.pos) for c in block.cars]


def test_committed_cut_becomes_a_lane_major_ascending_block() -> None:
    """Cars after the last ordered position are ordered lane by lane, ascending in each lane."""
    replica = replica_holding(*LANES.values())
    effects = receive(replica, 1, commit(1, cut(l0=3, l1=2, l3=1)))
    (block,) = blocks(effects)
    assert positions(block) == [(0, 1), (0, 2), (0, 3), (1, 1), (1, 2), (3, 1)]
    assert (block.height, block.slot, block.parent) == (1, 1, ZERO_DIGEST)
    assert block.cut_digest == cut(l0=3, l1=2, l3=1).digest
    commit_at = effects.index(next(e for e in effects if isinstance(e, Persist)))
    deliver_at = effects.index(next(e for e in effects if isinstance(e, Deliver)))
    assert effects[commit_at].key == ("commit", 1)
    assert commit_at < deliver_at  # the commit is durable before its block goes out


def test_next_block_starts_after_the_last_ordered_position() -> None:
    """A later cut orders only the cars above each lane's last ordered position, and blocks
    chain by digest."""
    replica = replica_holding(*LANES.values())
    (first,) = blocks(receive(replica, 1, commit(1, cut(l0=2, l2=1))))
    (second,) = blocks(receive(replica, 1, commit(2, cut(l0=4, l1=1, l2=1))))
    assert positions(second) == [(0, 3), (0, 4), (1, 1)]
    assert (second.height, second.parent) == (2, first.digest)


def test_non_monotonic_tips_add_nothing() -> None:
    """A tip at or below the last ordered position of its lane adds no car."""
    replica = replica_holding(*LANES.values())
    receive(replica, 1, commit(1, cut(l0=4, l1=2)))
    (block,) = blocks(receive(replica, 1, commit(2, cut(l0=2, l1=3))))
    assert positions(block) == [(1, 3)]
    (empty,) = blocks(receive(replica, 1, commit(3, cut(l0=4, l1=1))))
    assert empty.cars == ()
    assert replica.ordering.positions[0][0] == 4


def test_forked_lane_orders_only_the_committed_branch() -> None:
    """With two branches stored, the committed tip's ancestors are ordered, never the other
    branch's cars."""
    replica = replica_holding(LANES[1], FORK)
    fork_tip = KEYS.tip(FORK[2], (2, 3))  # pos 4 on the fork
    (block,) = blocks(receive(replica, 1, commit(1, KEYS.cut(fork_tip))))
    assert [c.digest for c in block.cars] == [LANES[1][0].digest] + [c.digest for c in FORK[:3]]
    assert not {c.digest for c in block.cars} & {c.digest for c in LANES[1][1:]}


def test_missing_cars_trigger_one_sync_request_and_delivery_waits() -> None:
    """Missing cars produce one SyncRequest to the lane owner or the tip's PoA signers; the
    block is delivered only when the reply arrives."""
    replica = replica_holding(LANES[0])
    lane2 = LANES[2]
    effects = receive(replica, 1, commit(1, cut(l0=1, l2=3)))
    assert blocks(effects) == []
    ((peer, request),) = sends_to(effects, SyncRequest)
    assert peer in {2, 3}  # owner 2 or signers (2, 3)
    assert request == SyncRequest(2, 1, 3, lane2[2].digest)
    # a duplicate commit or another event does not re-request
    assert sends_to(receive(replica, 1, commit(1, cut(l0=1, l2=3))), SyncRequest) == []
    effects = receive(replica, peer, SyncReply(2, tuple(lane2[:3])))
    (block,) = blocks(effects)
    assert positions(block) == [(0, 1), (2, 1), (2, 2), (2, 3)]


def test_slots_are_delivered_in_order_even_when_committed_out_of_order() -> None:
    """A commit for slot 2 waits for slot 1; then both blocks come out, 1 before 2."""
    replica = replica_holding(*LANES.values())
    assert blocks(receive(replica, 1, commit(2, cut(l0=2)))) == []
    assert blocks(receive(replica, 1, commit(3, cut(l0=3)))) == []
    out = blocks(receive(replica, 1, commit(1, cut(l0=1))))
    assert [(b.height, b.slot) for b in out] == [(1, 1), (2, 2), (3, 3)]
    assert [positions(b) for b in out] == [[(0, 1)], [(0, 2)], [(0, 3)]]


def test_checkpoint_is_persisted_right_after_each_block() -> None:
    """Each Deliver is followed, in the same effect list, by the Persist of the checkpoint
    that counts it (so a crash in between re-delivers the block rather than losing it)."""
    replica = replica_holding(*LANES.values())
    effects = receive(replica, 1, commit(1, cut(l1=2)))
    (block,) = blocks(effects)
    deliver_at = next(i for i, e in enumerate(effects) if isinstance(e, Deliver))
    after = effects[deliver_at + 1]
    assert isinstance(after, Persist)
    assert after.key == ("ordering",)
    checkpoints = [e.value for e in effects if isinstance(e, Persist) and e.key == ("ordering",)]
    assert checkpoints == [
        OrderingCheckpoint(
            2,
            1,
            block.digest,
            ((0, ZERO_DIGEST), (2, LANES[1][1].digest), (0, ZERO_DIGEST), (0, ZERO_DIGEST)),
        )
    ]


def test_ordered_cars_raise_lane_votes_forward() -> None:
    """Ordering a lane's cars moves this replica's voted position on that lane to the tip,
    and it goes on voting (only) for the stored cars above it."""
    replica = replica_holding(*LANES.values())
    effects = receive(replica, 1, commit(1, cut(l3=4)))
    assert replica.lanes.ordered_pos[3] == 4
    assert replica.lanes.last_voted[3] == (6, LANES[3][5].digest)
    votes = [(m.lane, m.pos) for _, m in sends_to(effects, LaneVote)]
    assert votes == [(3, 5), (3, 6)]


@settings(max_examples=80, deadline=None, derandomize=True)
@given(
    st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), min_size=1, max_size=8),
    st.permutations(range(8)),
)
def test_ordering_matches_the_plain_rule(tips: list[tuple[int, int]], order: list[int]) -> None:
    """For any sequence of committed cuts, committed in any order, the delivered cars equal a
    plain re-statement of the rule: per slot, per lane, the positions above the last one."""
    replica = replica_holding(*LANES.values())
    cuts = {slot: cut(l0=a, l1=b) for slot, (a, b) in enumerate(tips, start=1)}
    delivered: list[Block] = []
    for slot in [s + 1 for s in order if s < len(tips)]:
        delivered += blocks(receive(replica, 1, commit(slot, cuts[slot])))
    expected: list[list[tuple[int, int]]] = []
    last = [0, 0]
    for a, b in tips:
        block = []
        for lane, pos in ((0, a), (1, b)):
            block += [(lane, p) for p in range(last[lane] + 1, pos + 1)]
            last[lane] = max(last[lane], pos)
        expected.append(block)
    assert [positions(b) for b in delivered] == expected
    assert [b.slot for b in delivered] == list(range(1, len(tips) + 1))
    seen = [(c.lane, c.pos) for b in delivered for c in b.cars]
    assert len(seen) == len(set(seen))


def test_empty_tip_is_not_a_missing_car() -> None:
    """A cut whose lanes are all empty delivers an empty block without any sync."""
    replica = replica_holding()
    empty = Cut(tuple(CutTip(i, 0, ZERO_DIGEST, None) for i in range(4)))
    effects = receive(replica, 1, commit(1, empty))
    (block,) = blocks(effects)
    assert block.cars == ()
    assert sends_to(effects, SyncRequest) == []


def test_crash_between_deliver_and_checkpoint_redelivers_the_block() -> None:
    """A replica that crashed after Deliver but before persisting the checkpoint delivers the
    same block (same height and digest) again after restart."""
    replica = replica_holding(*LANES.values())
    effects = receive(replica, 1, commit(1, cut(l0=2, l3=1)))
    (block,) = blocks(effects)
    records = {}
    for e in effects:
        if isinstance(e, Deliver):
            break
        if isinstance(e, Persist) and e.value is not None:
            records[e.key] = e.value
    restored = KEYS.replica(ME)
    restored.restore(records)
    for lane in (0, 3):
        for car in LANES[lane]:
            restored.lanes.store[lane].setdefault(car.pos, {})[car.digest] = car
    again = blocks(restored.step(Start(1)))
    assert again == [block]
