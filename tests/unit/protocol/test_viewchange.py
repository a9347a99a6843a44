"""The winning-proposal rule of a TC, and lock inheritance across views."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from node.protocol.consensus import view_timer
from node.protocol.events import Start
from node.protocol.viewchange import compute_winner, highest_prepare_qc
from node.types.messages import TC, Confirm, Cut, Ticket, Timeout
from tests.unit.protocol.helpers import Keys, fire, messages, own_votes, receive

KEYS4 = Keys(4)
KEYS7 = Keys(7)
SLOT = 3


def cut_of(keys: Keys, name: int) -> Cut:
    """A distinct, well-formed cut per ``name`` (lane 0 certified at pos ``name``)."""
    cars = keys.lane(0, name, tag=b"c")
    return keys.cut(keys.tip(cars[-1]))


def locked(keys: Keys, voter: int, qc_view: int, cut: Cut, view: int = 5) -> Timeout:
    return keys.timeout(SLOT, view, voter, keys.prepare_qc(SLOT, qc_view, cut), cut)


def voted(keys: Keys, voter: int, prop_view: int, cut: Cut, view: int = 5) -> Timeout:
    return keys.timeout(SLOT, view, voter, high_prop=keys.proposal(SLOT, prop_view, cut))


def bare(keys: Keys, voter: int, view: int = 5) -> Timeout:
    return keys.timeout(SLOT, view, voter)


def tc(*timeouts: Timeout) -> TC:
    ordered = tuple(sorted(timeouts, key=lambda t: t.voter))
    return TC(SLOT, ordered[0].view, ordered)


A, B, C = (cut_of(KEYS4, i) for i in (1, 2, 3))


def test_no_lock_and_no_repeated_vote_leaves_the_leader_free() -> None:
    """A TC of bare timeouts has no winner."""
    assert (
        compute_winner(tc(bare(KEYS4, 0), bare(KEYS4, 1), bare(KEYS4, 2)), KEYS4.committee) is None
    )


def test_prepare_qc_alone_wins() -> None:
    """With one PrepareQC and no f+1 matching last votes, the QC's cut wins."""
    t = tc(locked(KEYS4, 0, 2, A), bare(KEYS4, 1), voted(KEYS4, 2, 3, B))
    assert compute_winner(t, KEYS4.committee) == A


def test_f_plus_one_matching_last_votes_alone_win() -> None:
    """f+1 timeouts whose last vote is the same (view, cut) make that cut win."""
    t = tc(voted(KEYS4, 0, 1, B), voted(KEYS4, 1, 1, B), bare(KEYS4, 2))
    assert compute_winner(t, KEYS4.committee) == B


def test_f_matching_last_votes_do_not_win() -> None:
    """f timeouts with the same last vote are not enough."""
    t = tc(voted(KEYS4, 0, 1, B), voted(KEYS4, 1, 1, C), bare(KEYS4, 2))
    assert compute_winner(t, KEYS4.committee) is None


def test_last_votes_for_one_cut_across_views_keep_it_winning() -> None:
    """Last votes (0, X), (1, X), (2, X) from three voters of a 4-node TC must yield X: X may
    have been committed on the fast path in view 0, and no other cut can have been."""
    t = tc(voted(KEYS4, 0, 0, A), voted(KEYS4, 2, 1, A), voted(KEYS4, 3, 2, A))
    assert compute_winner(t, KEYS4.committee) == A


def test_f_late_votes_cannot_lift_a_cut_above_a_prepare_qc() -> None:
    """A cut's view is the highest view f+1 weight of its last votes reach: one (Byzantine)
    vote in view 5 plus one in view 1 give view 1, so a PrepareQC of view 2 still wins."""
    t = tc(locked(KEYS4, 0, 2, A), voted(KEYS4, 1, 5, B, view=6), voted(KEYS4, 2, 1, B, view=6))
    assert compute_winner(t, KEYS4.committee) == A
    t = tc(locked(KEYS4, 0, 2, A), voted(KEYS4, 1, 5, B, view=6), voted(KEYS4, 2, 3, B, view=6))
    assert compute_winner(t, KEYS4.committee) == B


def test_higher_prepare_qc_beats_lower_repeated_vote() -> None:
    """PrepareQC view 2 beats f+1 last votes of view 1."""
    t = tc(locked(KEYS4, 0, 2, A), voted(KEYS4, 1, 1, B), voted(KEYS4, 2, 1, B))
    assert compute_winner(t, KEYS4.committee) == A


def test_higher_repeated_vote_beats_lower_prepare_qc() -> None:
    """f+1 last votes of view 3 beat a PrepareQC of view 2 (the QC view counts, not the
    timeout's)."""
    t = tc(locked(KEYS4, 0, 2, A, view=5), voted(KEYS4, 1, 3, B), voted(KEYS4, 2, 3, B))
    assert compute_winner(t, KEYS4.committee) == B


def test_tie_goes_to_the_prepare_qc() -> None:
    """A PrepareQC and f+1 matching last votes of the same view: the PrepareQC wins."""
    t = tc(locked(KEYS4, 0, 2, A), voted(KEYS4, 1, 2, B), voted(KEYS4, 2, 2, B))
    assert compute_winner(t, KEYS4.committee) == A


def test_highest_of_several_prepare_qcs_wins() -> None:
    """Among PrepareQCs the highest view wins, wherever it sits in the TC."""
    t = tc(locked(KEYS4, 0, 1, A), locked(KEYS4, 1, 3, C), locked(KEYS4, 3, 2, B))
    assert highest_prepare_qc(t) is not None
    assert highest_prepare_qc(t)[1] == C
    assert compute_winner(t, KEYS4.committee) == C


def test_highest_of_several_repeated_votes_wins() -> None:
    """With n = 7 (f+1 = 3) two cuts each with 3 matching last votes: the higher view wins."""
    a7, b7 = cut_of(KEYS7, 1), cut_of(KEYS7, 2)
    t = tc(
        *(voted(KEYS7, v, 1, a7) for v in (0, 1, 2)), *(voted(KEYS7, v, 2, b7) for v in (3, 4, 5))
    )
    assert compute_winner(t, KEYS7.committee) == b7


def test_repeated_votes_count_by_weight() -> None:
    """With weights [1, 1, 1, 4] (f+1 = 3 weight) the heavy voter's last vote alone wins,
    while three light voters' matching votes also reach it."""
    keys = Keys(4, weights=[1, 1, 1, 4])
    a, b = cut_of(keys, 1), cut_of(keys, 2)
    heavy = tc(bare(keys, 0), bare(keys, 1), voted(keys, 3, 1, a))
    assert compute_winner(heavy, keys.committee) == a
    light = tc(voted(keys, 0, 1, b), voted(keys, 1, 1, b), bare(keys, 2))
    assert compute_winner(light, keys.committee) is None
    three = tc(voted(keys, 0, 1, b), voted(keys, 1, 1, b), voted(keys, 2, 1, b))
    assert compute_winner(three, keys.committee) == b


# ---------------------------------------------------------------- against a slow twin


def reference_winner(t: TC, weights: list[int], poa_quorum: int) -> Cut | None:
    """The rule written without shortcuts: the highest PrepareQC; for each cut the highest
    view w such that last votes for it in views >= w reach f+1 weight; the higher of the two
    wins, a tie goes to the PrepareQC, a tie between cuts to the smaller digest."""
    best_qc = None
    for x in t.timeouts:
        if x.high_qc is not None and (best_qc is None or x.high_qc.view > best_qc[0]):
            best_qc = (x.high_qc.view, x.high_qc_cut)
    cuts = {x.high_prop.cut.digest: x.high_prop.cut for x in t.timeouts if x.high_prop}
    best_prop = None
    for digest, cut in cuts.items():
        for w in range(max(x.view for x in t.timeouts), -1, -1):
            weight = sum(
                weights[x.voter]
                for x in t.timeouts
                if x.high_prop is not None
                and x.high_prop.cut.digest == digest
                and x.high_prop.view >= w
            )
            if weight >= poa_quorum:
                if (
                    best_prop is None
                    or w > best_prop[0]
                    or (w == best_prop[0] and digest < best_prop[1].digest)
                ):
                    best_prop = (w, cut)
                break
    if best_qc is not None and (best_prop is None or best_qc[0] >= best_prop[0]):
        return best_qc[1]
    return best_prop[1] if best_prop is not None else None


CUTS7 = [cut_of(KEYS7, i) for i in (1, 2, 3)]


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.integers(0, 3)),  # PrepareQC view (one cut per view)
            st.one_of(st.none(), st.tuples(st.integers(0, 3), st.integers(0, 2))),  # last vote
        ),
        min_size=5,
        max_size=7,
    ),
)
def test_compute_winner_agrees_with_the_reference_rule(
    entries: list[tuple[int | None, tuple[int, int] | None]],
) -> None:
    """compute_winner equals a plain re-statement of the rule on random TCs (n = 7)."""
    timeouts = []
    for voter, (qc_view, prop) in enumerate(entries):
        qc_cut = CUTS7[qc_view % 3] if qc_view is not None else None
        qc = KEYS7.prepare_qc(SLOT, qc_view, qc_cut) if qc_cut is not None else None
        high_prop = KEYS7.proposal(SLOT, prop[0], CUTS7[prop[1]]) if prop is not None else None
        timeouts.append(KEYS7.timeout(SLOT, 4, voter, qc, qc_cut, high_prop))
    t = TC(SLOT, 4, tuple(timeouts))
    expected = reference_winner(t, [1] * 7, KEYS7.committee.poa_quorum)
    assert compute_winner(t, KEYS7.committee) == expected


@settings(max_examples=100, deadline=None, derandomize=True)
@given(st.data())
def test_weighted_compute_winner_agrees_with_the_reference_rule(data: st.DataObject) -> None:
    """The same agreement with random stake weights (last votes count by weight)."""
    weights = data.draw(st.lists(st.integers(1, 5), min_size=4, max_size=4))
    keys = Keys(4, weights=weights)
    cuts = [cut_of(keys, i) for i in (1, 2)]
    timeouts = []
    for voter in range(4):
        if data.draw(st.booleans()):
            prop = keys.proposal(
                SLOT, data.draw(st.integers(0, 3)), data.draw(st.sampled_from(cuts))
            )
        else:
            prop = None
        qc_view = data.draw(st.one_of(st.none(), st.integers(0, 3)))
        qc_cut = cuts[qc_view % 2] if qc_view is not None else None
        qc = keys.prepare_qc(SLOT, qc_view, qc_cut) if qc_cut is not None else None
        timeouts.append(keys.timeout(SLOT, 4, voter, qc, qc_cut, prop))
    t = TC(SLOT, 4, tuple(timeouts))
    expected = reference_winner(t, weights, keys.committee.poa_quorum)
    assert compute_winner(t, keys.committee) == expected


# ---------------------------------------------------------------- lock inheritance


def test_tc_raises_the_lock_to_its_highest_prepare_qc() -> None:
    """A replica with no lock adopts the highest PrepareQC carried by a TC it accepts."""
    replica = KEYS4.replica(0)
    replica.step(Start(0))
    t = TC(
        SLOT,
        1,
        (
            KEYS4.timeout(SLOT, 1, 1, KEYS4.prepare_qc(SLOT, 0, A), A),
            KEYS4.timeout(SLOT, 1, 2, KEYS4.prepare_qc(SLOT, 1, B), B),
            KEYS4.timeout(SLOT, 1, 3),
        ),
    )
    receive(replica, 1, t)
    state = replica.consensus.slots[SLOT]
    assert state.view == 2
    assert state.high_qc == KEYS4.prepare_qc(SLOT, 1, B)
    assert state.high_qc_cut == B


def test_lock_never_goes_down() -> None:
    """A TC whose best PrepareQC is older than the replica's lock leaves the lock alone."""
    replica = KEYS4.replica(0)
    replica.step(Start(0))
    receive(replica, 1, KEYS4.tc(SLOT, 0, (1, 2, 3)))
    receive(replica, 1, Confirm(KEYS4.prepare_qc(SLOT, 1, B), B))
    t = TC(
        SLOT,
        1,
        (
            KEYS4.timeout(SLOT, 1, 1, KEYS4.prepare_qc(SLOT, 0, A), A),
            KEYS4.timeout(SLOT, 1, 2),
            KEYS4.timeout(SLOT, 1, 3),
        ),
    )
    receive(replica, 1, t)
    assert replica.consensus.slots[SLOT].high_qc == KEYS4.prepare_qc(SLOT, 1, B)


def test_inherited_lock_is_carried_by_the_next_timeout() -> None:
    """A replica that entered view 1 through a TC with a PrepareQC, and saw nothing else,
    puts that PrepareQC into its Timeout for view 1 (consecutive empty views keep the lock)."""
    replica = KEYS4.replica(0)
    replica.step(Start(0))
    qc = KEYS4.prepare_qc(SLOT, 0, A)
    t = TC(
        SLOT,
        0,
        (KEYS4.timeout(SLOT, 0, 1, qc, A), KEYS4.timeout(SLOT, 0, 2), KEYS4.timeout(SLOT, 0, 3)),
    )
    receive(replica, 1, t)
    (mine,) = messages(fire(replica, view_timer(SLOT, 1)), Timeout)
    assert (mine.view, mine.high_qc, mine.high_qc_cut) == (1, qc, A)


def test_view_change_proposal_must_carry_the_winner() -> None:
    """A Prepare for view 1 whose TC has a winner is voted only if it proposes that cut."""
    leader = KEYS4.committee.leader(SLOT, 1)
    t = TC(
        SLOT,
        0,
        (
            KEYS4.timeout(SLOT, 0, 0, KEYS4.prepare_qc(SLOT, 0, A), A),
            KEYS4.timeout(SLOT, 0, 1),
            KEYS4.timeout(SLOT, 0, 2),
        ),
    )
    for cut, votes in ((B, 0), (A, 1)):
        replica = KEYS4.replica(3)
        replica.step(Start(0))
        effects = receive(replica, leader, KEYS4.prepare(SLOT, 1, cut, Ticket(tc=t)))
        assert len(own_votes(effects, 3)) == votes
