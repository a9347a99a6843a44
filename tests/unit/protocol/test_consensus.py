"""Consensus on cuts: fast path, slow path, the fast-path wait, and view change."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from node.protocol.config import ProtocolConfig
from node.protocol.consensus import fast_timer, view_timer
from node.protocol.effects import Broadcast, Committed, Effect, Persist, Send, SetTimer
from node.protocol.events import Start
from node.protocol.replica import Replica
from node.types.messages import (
    TC,
    Commit,
    Confirm,
    Message,
    MsgKind,
    Prepare,
    Timeout,
    Vote,
)
from tests.unit.protocol.helpers import (
    Keys,
    Net,
    Step,
    drops,
    fire,
    messages,
    own_votes,
    receive,
    sends_to,
)


def run_net(net: Net, until: int, txs_until: int = 300) -> Net:
    net.start(until=txs_until)
    net.run(until)
    return net


def assert_agreement(net: Net) -> None:
    """Every live replica committed the same cut for every slot both committed."""
    cuts: dict[int, bytes] = {}
    for i in range(net.keys.n):
        for c in net.committed[i]:
            assert cuts.setdefault(c.slot, c.cut.digest) == c.cut.digest, (i, c.slot)
    heights = [len(net.delivered[i]) for i in range(net.keys.n) if i not in net.silent]
    h = min(heights)
    for i in range(net.keys.n):
        if i not in net.silent:
            assert [b.digest for b in net.delivered[i][:h]] == [
                b.digest for b in net.delivered[0 if 0 not in net.silent else 1][:h]
            ]


def steps_with(net: Net, node: int, predicate: Callable[[Effect], bool]) -> list[Step]:
    return [s for s in net.steps if s.node == node and any(predicate(e) for e in s.effects)]


# ---------------------------------------------------------------- normal case


@pytest.mark.parametrize("ed25519", [False, True], ids=["keyed", "ed25519"])
def test_fault_free_run_commits_every_slot_on_the_fast_path(ed25519: bool) -> None:
    """With 4 live replicas every committed slot commits in view 0 with a fast CommitQC."""
    net = run_net(Net(Keys(4, ed25519=ed25519)), until=400, txs_until=200)
    for i in range(4):
        committed = net.committed[i]
        assert len(committed) >= 4
        assert sorted(c.slot for c in committed) == list(range(1, len(committed) + 1))
        assert all(c.fast and c.view == 0 for c in committed)
        assert len(net.delivered[i]) == len(committed)
    assert_agreement(net)
    confirms = [m for s in net.steps for m in messages(s.effects, Confirm)]
    assert confirms == []


def test_fault_free_run_orders_every_submitted_transaction_once() -> None:
    """All transactions submitted to a fault-free network are delivered, each exactly once."""
    net = run_net(Net(Keys(4)), until=600, txs_until=200)
    submitted = {tx for s in net.steps if hasattr(s.event, "txs") for tx in s.event.txs}
    for i in range(4):
        delivered = [tx for b in net.delivered[i] for car in b.cars for tx in car.txs]
        assert len(delivered) == len(set(delivered))
        assert set(delivered) == submitted
        assert [b.height for b in net.delivered[i]] == list(range(1, len(net.delivered[i]) + 1))


def test_one_silent_replica_forces_the_slow_path() -> None:
    """With one silent replica, slots commit in view 0 via Confirm then a ConfirmAck QC."""
    net = run_net(Net(Keys(4), silent=frozenset({3})), until=400, txs_until=200)
    view0 = [c for c in net.committed[0] if c.view == 0]
    assert len(view0) >= 2
    assert all(not c.fast for c in view0)
    assert_agreement(net)
    for slot in (c.slot for c in view0):
        leader = net.keys.committee.leader(slot, 0)
        effects = net.effects_of(leader)
        confirm_at = next(
            i
            for i, e in enumerate(effects)
            if isinstance(e, Broadcast)
            and isinstance(e.message, Confirm)
            and e.message.prepare_qc.slot == slot
        )
        commit_at = next(
            i
            for i, e in enumerate(effects)
            if isinstance(e, Broadcast)
            and isinstance(e.message, Commit)
            and e.message.commit_qc.slot == slot
        )
        assert confirm_at < commit_at
        commit = effects[commit_at].message
        assert commit.commit_qc.phase == MsgKind.CONFIRM_ACK
        assert len(commit.commit_qc.signers) == 3


def test_slow_path_waits_for_the_fast_path_timeout_first() -> None:
    """The leader arms the fast timer at 2f+1 PrepareVotes and sends Confirm only when it fires."""
    net = run_net(Net(Keys(4), silent=frozenset({3})), until=200, txs_until=100)
    leader = net.keys.committee.leader(1, 0)
    armed = steps_with(
        net, leader, lambda e: isinstance(e, SetTimer) and e.timer == fast_timer(1, 0)
    )
    confirmed = steps_with(
        net,
        leader,
        lambda e: (
            isinstance(e, Broadcast)
            and isinstance(e.message, Confirm)
            and e.message.prepare_qc.slot == 1
        ),
    )
    assert len(armed) == 1 and len(confirmed) == 1
    assert confirmed[0].time - armed[0].time == ProtocolConfig().fast_path_timeout_ms


def test_zero_fast_path_timeout_sends_confirm_without_waiting() -> None:
    """With fast_path_timeout_ms = 0 no fast timer is armed and Confirm goes out at 2f+1 votes."""
    config = ProtocolConfig(fast_path_timeout_ms=0)
    net = run_net(Net(Keys(4), config=config, silent=frozenset({3})), until=300, txs_until=150)
    effects = [e for s in net.steps for e in s.effects]
    assert not [e for e in effects if isinstance(e, SetTimer) and e.timer.kind == "fast"]
    leader = net.keys.committee.leader(1, 0)
    (quorum_step,) = steps_with(
        net,
        leader,
        lambda e: (
            isinstance(e, Broadcast)
            and isinstance(e.message, Confirm)
            and e.message.prepare_qc.slot == 1
        ),
    )
    assert isinstance(quorum_step.event.message, Vote)
    assert any(not c.fast for c in net.committed[0])
    assert_agreement(net)


def test_zero_fast_path_timeout_commits_sooner_than_waiting() -> None:
    """Disabling the fast-path wait commits slot 1 exactly fast_path_timeout_ms earlier."""

    def commit_time(config: ProtocolConfig) -> int:
        net = run_net(Net(Keys(4), config=config, silent=frozenset({3})), until=200, txs_until=50)
        return min(
            s.time
            for s in net.steps
            if s.node == 0 and any(isinstance(e, Committed) and e.slot == 1 for e in s.effects)
        )

    waited = commit_time(ProtocolConfig(fast_path_timeout_ms=20))
    assert commit_time(ProtocolConfig(fast_path_timeout_ms=0)) == waited - 20


@pytest.mark.parametrize(("n", "weights"), [(1, None), (7, None), (4, [1, 1, 1, 2])])
def test_other_committees_commit_and_agree(n: int, weights: list[int] | None) -> None:
    """Committees of 1 and 7 validators and a weighted one commit and agree."""
    net = run_net(Net(Keys(n, weights=weights)), until=400, txs_until=150)
    for i in range(n):
        assert len(net.committed[i]) >= 2
        assert all(c.fast for c in net.committed[i])
    assert_agreement(net)


def test_weighted_committee_survives_losing_a_light_validator() -> None:
    """With weights [1, 1, 1, 2] (Q = 4) losing a weight-1 validator still commits, slowly."""
    net = run_net(
        Net(Keys(4, weights=[1, 1, 1, 2]), silent=frozenset({0})), until=3000, txs_until=150
    )
    assert len(net.committed[1]) >= 2
    assert not any(c.fast for c in net.committed[1])
    assert_agreement(net)


# ---------------------------------------------------------------- one replica, by hand


def test_follower_votes_once_for_a_valid_prepare_and_sends_to_the_leader() -> None:
    """A valid Prepare yields one persisted PrepareVote sent to the leader; a re-send, none."""
    keys = Keys(4)
    replica = keys.replica(0)
    replica.step(Start(0))
    prepare = keys.prepare(1, 0, keys.cut())
    effects = receive(replica, 1, prepare)
    vote = keys.vote(MsgKind.PREPARE_VOTE, 1, 0, keys.cut(), 0)
    assert sends_to(effects, Vote) == [(1, vote)]
    assert Persist(("prepare_vote", 1), vote) in effects
    assert SetTimer(view_timer(1, 0), 1000) in effects
    assert own_votes(receive(replica, 2, prepare), 0) == []


def leader_with_prepare(keys: Keys) -> tuple[Replica, Prepare]:
    """Replica 1 (leader of slot 1, view 0) after it proposed slot 1 with the empty cut."""
    leader = keys.replica(1)
    leader.step(Start(0))
    # Have the leader propose: give it a certified car of its own so it has new data.
    car = keys.lane(2, 1)[0]
    effects = receive(leader, 2, keys.poa(car))
    (prepare,) = messages(effects, Prepare)
    return leader, prepare


def test_leader_commits_fast_with_all_votes() -> None:
    """The leader commits on the fast path exactly when the n-th PrepareVote arrives."""
    keys = Keys(4)
    leader, prepare = leader_with_prepare(keys)
    cut = prepare.proposal.cut
    e0 = receive(leader, 0, keys.vote(MsgKind.PREPARE_VOTE, 1, 0, cut, 0))
    e2 = receive(leader, 2, keys.vote(MsgKind.PREPARE_VOTE, 1, 0, cut, 2))
    assert not [e for e in e0 + e2 if isinstance(e, Committed)]
    assert SetTimer(fast_timer(1, 0), 20) in e2
    e3 = receive(leader, 3, keys.vote(MsgKind.PREPARE_VOTE, 1, 0, cut, 3))
    (commit,) = messages(e3, Commit)
    assert commit.commit_qc.signers == (0, 1, 2, 3)
    assert commit.commit_qc.phase == MsgKind.PREPARE_VOTE
    assert Committed(1, 0, cut, True) in e3
    assert messages(fire(leader, fast_timer(1, 0)), Confirm) == []


def test_leader_goes_slow_when_the_fast_timer_fires() -> None:
    """With 2f+1 votes the fast timer's expiry sends Confirm; 2f+1 acks then commit slowly."""
    keys = Keys(4)
    leader, prepare = leader_with_prepare(keys)
    cut = prepare.proposal.cut
    receive(leader, 0, keys.vote(MsgKind.PREPARE_VOTE, 1, 0, cut, 0))
    receive(leader, 2, keys.vote(MsgKind.PREPARE_VOTE, 1, 0, cut, 2))
    effects = fire(leader, fast_timer(1, 0))
    (confirm,) = messages(effects, Confirm)
    assert confirm.cut == cut and confirm.prepare_qc.signers == (0, 1, 2)
    own_ack = keys.vote(MsgKind.CONFIRM_ACK, 1, 0, cut, 1)
    assert Persist(("confirm_ack", 1), own_ack) in effects
    receive(leader, 0, keys.vote(MsgKind.CONFIRM_ACK, 1, 0, cut, 0))
    effects = receive(leader, 3, keys.vote(MsgKind.CONFIRM_ACK, 1, 0, cut, 3))
    (commit,) = messages(effects, Commit)
    assert commit.commit_qc.phase == MsgKind.CONFIRM_ACK
    assert Committed(1, 0, cut, False) in effects


def test_follower_acks_a_confirm_once_and_adopts_the_lock() -> None:
    """A valid Confirm yields one persisted ConfirmAck to the leader and raises high_qc."""
    keys = Keys(4)
    replica = keys.replica(0)
    replica.step(Start(0))
    cut = keys.cut()
    qc = keys.prepare_qc(1, 0, cut)
    effects = receive(replica, 1, Confirm(qc, cut))
    ack = keys.vote(MsgKind.CONFIRM_ACK, 1, 0, cut, 0)
    assert sends_to(effects, Vote) == [(1, ack)]
    assert Persist(("high_qc", 1), Confirm(qc, cut)) in effects
    assert replica.consensus.slots[1].high_qc == qc
    assert own_votes(receive(replica, 2, Confirm(qc, cut)), 0) == []


def test_valid_commit_commits_and_delivers() -> None:
    """A Commit with a valid slow CommitQC commits the slot and delivers its (empty) block."""
    keys = Keys(4)
    replica = keys.replica(0)
    replica.step(Start(0))
    cut = keys.cut()
    effects = receive(replica, 1, Commit(keys.qc(MsgKind.CONFIRM_ACK, 1, 0, cut), cut))
    assert Committed(1, 0, cut, False) in effects
    assert replica.ordering.height == 1
    assert drops(receive(replica, 1, Commit(keys.qc(MsgKind.CONFIRM_ACK, 1, 0, cut), cut)))


# ---------------------------------------------------------------- view change


def test_silent_leader_is_replaced_through_timeouts_and_a_tc() -> None:
    """If the leader of slot 1 is silent, the others time out, form a TC, and the leader of
    view 1 proposes with that TC as ticket; the slot then commits in view 1."""
    net = run_net(Net(Keys(4), silent=frozenset({1})), until=3000, txs_until=100)
    for i in (0, 2, 3):
        timeouts = [m for m in messages(net.effects_of(i), Timeout) if m.voter == i]
        assert [(t.slot, t.view) for t in timeouts][:1] == [(1, 0)]
    new_leader = net.keys.committee.leader(1, 1)
    prepares = [m for m in messages(net.effects_of(new_leader), Prepare) if m.proposal.slot == 1]
    assert len(prepares) == 1
    tc = prepares[0].ticket.tc
    assert isinstance(tc, TC) and (tc.slot, tc.view) == (1, 0)
    assert len(tc.timeouts) >= 3
    for i in (0, 2, 3):
        assert [(c.slot, c.view) for c in net.committed[i]][:1] == [(1, 1)]
    assert_agreement(net)


def test_f_plus_one_timeouts_make_a_replica_join() -> None:
    """A replica that has not timed out broadcasts its own Timeout after f+1 others."""
    keys = Keys(4)
    replica = keys.replica(0)
    replica.step(Start(0))
    receive(replica, 1, keys.prepare(1, 0, keys.cut()))
    first = receive(replica, 2, keys.timeout(1, 0, 2))
    assert messages(first, Timeout) == []
    second = receive(replica, 3, keys.timeout(1, 0, 3))
    (mine,) = messages(second, Timeout)
    assert mine.voter == 0 and (mine.slot, mine.view) == (1, 0)
    assert mine.high_prop is not None and mine.high_prop.cut == keys.cut()
    # with its own timeout that is 2f+1: the replica moves to view 1
    assert replica.consensus.slots[1].view == 1
    assert isinstance(replica.consensus.slots[1].tc, TC)


def test_no_prepare_vote_after_timing_out_in_that_view() -> None:
    """After its view timer fired, a replica ignores the Prepare of that view."""
    keys = Keys(4)
    replica = keys.replica(0)
    replica.step(Start(0))
    car = keys.lane(2, 1)[0]
    receive(replica, 2, keys.poa(car))  # opens slot 1, arms its view timer
    effects = fire(replica, view_timer(1, 0))
    assert len(messages(effects, Timeout)) == 1
    effects = receive(replica, 1, keys.prepare(1, 0, keys.cut(keys.tip(car))))
    assert own_votes(effects, 0) == []


def test_view_timer_repeats_the_same_timeout_when_stuck() -> None:
    """If the view timer fires again in the same view, the identical Timeout is re-sent."""
    keys = Keys(4)
    replica = keys.replica(0)
    replica.step(Start(0))
    receive(replica, 1, keys.prepare(1, 0, keys.cut()))
    (first,) = messages(fire(replica, view_timer(1, 0)), Timeout)
    again = fire(replica, view_timer(1, 0))
    assert messages(again, Timeout) == [first]
    assert not [e for e in again if isinstance(e, Persist)]


def test_stale_timeout_is_answered_with_the_tc() -> None:
    """A Timeout for a view the replica already left is answered with the TC that left it."""
    keys = Keys(4)
    replica = keys.replica(0)
    replica.step(Start(0))
    tc = keys.tc(1, 0, (1, 2, 3))
    receive(replica, 1, tc)
    assert replica.consensus.slots[1].view == 1
    effects = receive(replica, 2, keys.timeout(1, 0, 2))
    assert effects[:1] == [Send(2, tc)]


def test_leader_of_next_view_proposes_on_a_tc() -> None:
    """The replica leading (slot, v+1) proposes once it holds a TC for (slot, v)."""
    keys = Keys(4)
    new_leader = keys.committee.leader(1, 1)
    replica = keys.replica(new_leader)
    replica.step(Start(0))
    tc = keys.tc(1, 0, (0, 1, 3))
    effects = receive(replica, 0, tc)
    (prepare,) = messages(effects, Prepare)
    assert prepare.proposal.view == 1 and prepare.ticket.tc == tc
    assert Persist(("proposal", 1), prepare) in effects
    assert replica.checks.validate_proposal(prepare.proposal) is None


def test_fast_commit_survives_view_changes_that_reach_one_replica_each() -> None:
    """Slot agreement: replica 1 fast-commits slot 1 in view 0 and falls silent holding its
    Commit; the view-1 and view-2 re-proposals each reach only their own leader; the held
    Commit finally reaches replica 3. All replicas must still commit one cut for slot 1."""
    state: dict[str, object] = {"mute": False, "held": None, "released": False}

    def schedule(sender: int, to: int, message: Message) -> Message | None:
        if sender == 1:
            if isinstance(message, Commit) and message.commit_qc.slot == 1:
                state["mute"] = True
                if to == 3:
                    state["held"] = message
                return None
            return None if state["mute"] else message
        if isinstance(message, Prepare) and message.proposal.slot == 1:
            view = message.proposal.view
            if (view, sender) in ((1, 2), (2, 3)) and to != 1:
                return None  # the re-proposal of view 1 (2) reaches no other live replica
        if (
            sender == 3
            and isinstance(message, Vote)
            and message.slot == 1
            and message.phase == MsgKind.CONFIRM_ACK
            and not state["released"]
        ):
            state["released"] = True
            net.deliver(net.now + 1, 1, 3, state["held"])
        return message

    net = Net(Keys(4), tamper=schedule)
    net.start(until=8000, txs_every=20)
    net.run(9000)
    assert net.committed[1][0].slot == 1 and net.committed[1][0].fast
    slot1 = {i: c.cut.digest for i in range(4) for c in net.committed[i] if c.slot == 1}
    assert len(slot1) == 4, "every replica committed slot 1"
    assert len(set(slot1.values())) == 1, "two cuts committed in slot 1"
