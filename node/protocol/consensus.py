"""Autobahn consensus over cuts of lane tips: slots, views, fast and slow paths, view change.

Per slot (shared/reference/autobahn.md §a.3): the leader of (slot, view) sends Prepare(cut,
ticket); replicas answer PrepareVotes to the leader. All n votes make a fast CommitQC (the
leader waits ``fast_path_timeout_ms`` for them after the first 2f+1); otherwise 2f+1 votes form
a PrepareQC, the leader sends Confirm, 2f+1 ConfirmAcks form a slow CommitQC, and Commit
spreads it. A replica whose view timer expires broadcasts Timeout(high_qc, high_prop); f+1
timeouts make it join, 2f+1 form a TC that moves the slot to the next view, whose leader must
re-propose the winning cut (``viewchange.compute_winner``). Up to k slots run in parallel:
slot s opens once a Prepare of s-1 is known and s-k has committed.

A leader's Prepare also carries the latest execution certificate it holds (``execution``); a
receiver rejects the Prepare if that certificate is invalid, and otherwise checks its own
execution result against it.

Every own vote, timeout, proposal, lock and certificate is emitted as ``Persist`` before the
``Send`` that reveals it, and restored on restart, so a replica never signs two different
things for one (slot, view, phase).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from node.crypto.signing import Signer
from node.protocol.config import ProtocolConfig
from node.protocol.effects import (
    Broadcast,
    CancelTimer,
    Committed,
    Effect,
    Ignore,
    Persist,
    PersistKey,
    Reject,
    Send,
    SetTimer,
)
from node.protocol.events import Timer
from node.protocol.execution import ExecutionCheck
from node.protocol.lanes import Lanes
from node.protocol.ordering import Ordering
from node.protocol.validation import MessageChecker
from node.protocol.viewchange import compute_winner, highest_prepare_qc
from node.types.committee import Committee
from node.types.messages import (
    QC,
    TC,
    Commit,
    CommitSyncRequest,
    Confirm,
    Cut,
    MsgKind,
    Prepare,
    Proposal,
    Ticket,
    Timeout,
    Vote,
    genesis_cut,
    signing_bytes,
)

COMMIT_SYNC_TIMER = Timer("commit_sync")
COMMIT_SYNC_BATCH = 64
SLOT_KEYS = ("prepare_vote", "confirm_ack", "timeout", "high_prop", "high_qc", "tc", "proposal")
MAX_VIEW_LEAD = 64


def view_timer(slot: int, view: int) -> Timer:
    return Timer("view", slot, view)


def fast_timer(slot: int, view: int) -> Timer:
    return Timer("fast", slot, view)


@dataclass(slots=True)
class SlotState:
    """Everything one replica knows and has done in one slot."""

    view: int = 0
    timer_view: int = -1
    proposals: dict[int, Proposal] = field(default_factory=dict)
    voted_prepare: int = -1
    voted_confirm: int = -1
    timed_out: int = -1
    my_timeout: Timeout | None = None
    high_prop: Proposal | None = None
    high_qc: QC | None = None
    high_qc_cut: Cut | None = None
    tc: TC | None = None
    proposed: set[int] = field(default_factory=set)
    prepare_votes: dict[int, dict[int, bytes]] = field(default_factory=dict)
    confirm_acks: dict[int, dict[int, bytes]] = field(default_factory=dict)
    confirmed: set[int] = field(default_factory=set)
    fast_armed: set[int] = field(default_factory=set)
    timeouts: dict[int, dict[int, Timeout]] = field(default_factory=dict)


class Consensus:
    def __init__(
        self,
        committee: Committee,
        me: int,
        signer: Signer,
        checks: MessageChecker,
        config: ProtocolConfig,
        lanes: Lanes,
        ordering: Ordering,
        execution: ExecutionCheck,
    ) -> None:
        self.committee = committee
        self.me = me
        self.signer = signer
        self.checks = checks
        self.config = config
        self.lanes = lanes
        self.ordering = ordering
        self.execution = execution
        self.k = config.parallel_slots
        self.slots: dict[int, SlotState] = {}
        self.commits: dict[int, Commit] = {}
        self.known_commit_slots: set[int] = set()
        self.latest_proposal: dict[int, Proposal] = {}
        self.top = 0
        self.commit_sync_active = False
        self.unsent_proposals: list[Prepare] = []

    # ------------------------------------------------------------ small helpers

    def is_committed(self, slot: int) -> bool:
        return slot < self.ordering.next_slot or slot in self.commits

    def _slot(self, slot: int) -> SlotState:
        state = self.slots.get(slot)
        if state is None:
            state = self.slots[slot] = SlotState()
        return state

    def _sign(self, kind: MsgKind, slot: int, view: int, digest: bytes) -> bytes:
        return self.signer.sign(signing_bytes(kind, self.committee.chain_id, slot, view, digest))

    def _horizon(self) -> int:
        """Slots above this are too far ahead to hold state for."""
        known = max(self.top, max(self.known_commit_slots, default=0), self.ordering.next_slot)
        return known + 2 * self.k

    def _note_proposal(self, proposal: Proposal) -> None:
        latest = self.latest_proposal.get(proposal.slot)
        if latest is None or proposal.view > latest.view:
            self.latest_proposal[proposal.slot] = proposal
        self.top = max(self.top, proposal.slot)
        for tip in proposal.cut.tips:
            if tip.poa is not None:
                self.lanes.learn_poa(tip.poa)

    def _to_leader(self, leader: int, vote: Vote) -> list[Effect]:
        if leader == self.me:
            return self.on_vote(self.me, vote)
        return [Send(leader, vote)]

    # ------------------------------------------------------------ start and timers

    def on_start(self) -> list[Effect]:
        effects: list[Effect] = []
        for slot, state in sorted(self.slots.items()):
            if not self.is_committed(slot):
                effects += self._arm_view_timer(slot, state)
        # Own proposals persisted before a crash may never have left: send them (again).
        for prepare in self.unsent_proposals:
            if not self.is_committed(prepare.proposal.slot):
                effects.append(Broadcast(prepare))
        self.unsent_proposals = []
        if self.committee.size > 1:
            effects.append(Broadcast(CommitSyncRequest(self.ordering.next_slot)))
        return effects + self.poke()

    def _arm_view_timer(self, slot: int, state: SlotState) -> list[Effect]:
        if state.timer_view == state.view:
            return []
        effects: list[Effect] = []
        if state.timer_view >= 0:
            effects.append(CancelTimer(view_timer(slot, state.timer_view)))
        state.timer_view = state.view
        effects.append(SetTimer(view_timer(slot, state.view), self.config.view_timeout(state.view)))
        return effects

    def on_timer(self, timer: Timer) -> list[Effect]:
        if timer.kind == "view":
            return self._on_view_timer(timer.slot, timer.view)
        if timer.kind == "fast":
            return self._on_fast_timer(timer.slot, timer.view)
        if timer.kind == "commit_sync":
            self.commit_sync_active = False
            return []
        return [Ignore(f"unknown timer {timer.kind}")]

    # ------------------------------------------------------------ proposing

    def _previous_cut(self, slot: int) -> Cut:
        if slot <= 1:
            return genesis_cut(self.committee.size)
        commit = self.commits.get(slot - 1)
        if commit is not None:
            return commit.cut
        prop = self.latest_proposal.get(slot - 1)
        return prop.cut if prop is not None else genesis_cut(self.committee.size)

    def _has_new_data(self, slot: int) -> bool:
        prev = self._previous_cut(slot).tips
        for tip in self.lanes.tips():
            floor = max(prev[tip.lane].pos, self.ordering.positions[tip.lane][0])
            if tip.pos > floor:
                return True
        return False

    def _ticket(self, slot: int) -> Ticket | None:
        """The view-0 ticket for ``slot`` if this replica holds one."""
        prev = self.latest_proposal.get(slot - 1) if slot > 1 else None
        if slot > 1 and prev is None and not self.is_committed(slot - 1):
            return None
        commit_qc = None
        if slot > self.k:
            if not self.is_committed(slot - self.k):
                return None
            commit = self.commits.get(slot - self.k)
            commit_qc = commit.commit_qc if commit is not None else None
        return Ticket(prev=prev, commit_qc=commit_qc)

    def poke(self) -> list[Effect]:
        """Open the next slot if its ticket and new data are here: arm its timer, and propose
        when this replica leads it."""
        effects: list[Effect] = []
        for open_slot in range(self.ordering.next_slot, self.top + 1):
            if not self.is_committed(open_slot):
                effects += self._arm_view_timer(open_slot, self._slot(open_slot))
        slot = max(self.top, self.ordering.next_slot - 1) + 1
        if self.is_committed(slot):
            return effects
        ticket = self._ticket(slot)
        if ticket is None or not self._has_new_data(slot):
            return effects
        state = self._slot(slot)
        effects += self._arm_view_timer(slot, state)
        if self.committee.leader(slot, 0) == self.me and 0 not in state.proposed:
            cut = Cut(self.lanes.tips())
            effects += self._propose(slot, 0, cut, ticket)
        return effects

    def _propose(self, slot: int, view: int, cut: Cut, ticket: Ticket) -> list[Effect]:
        state = self._slot(slot)
        state.proposed.add(view)
        sig = self._sign(MsgKind.PROPOSAL, slot, view, cut.digest)
        proposal = Proposal(slot, view, cut, self.me, sig)
        prepare = Prepare(proposal, ticket, self.execution.latest_cert)
        effects: list[Effect] = [Persist(("proposal", slot), prepare), Broadcast(prepare)]
        return effects + self.on_prepare(self.me, prepare)

    # ------------------------------------------------------------ Prepare

    def _validate_ticket(self, proposal: Proposal, ticket: Ticket) -> str | None:
        """Check every part the ticket carries (all of them are acted on), and that the parts
        this (slot, view) needs are there."""
        slot, view = proposal.slot, proposal.view
        tc, prev, qc = ticket.tc, ticket.prev, ticket.commit_qc
        if tc is not None:
            if view == 0 or tc.slot != slot or tc.view != view - 1:
                return "ticket TC is not for the previous view of this slot"
            reason = self.checks.validate_tc(tc)
            if reason is not None:
                return reason
            winner = compute_winner(tc, self.committee)
            if winner is not None and winner.digest != proposal.cut.digest:
                return "proposal ignores the winning cut of its TC"
        elif view > 0:
            return "view change proposal without a TC for the previous view"
        if prev is not None:
            if prev.slot != slot - 1:
                return "ticket Prepare is not for the previous slot"
            reason = self.checks.validate_proposal(prev)
            if reason is not None:
                return f"ticket: {reason}"
        elif view == 0 and slot > 1 and not self.is_committed(slot - 1):
            return "ticket lacks the Prepare of the previous slot"
        if qc is not None:
            if not slot - self.k <= qc.slot < slot:
                return "ticket CommitQC is not for a slot in [slot - k, slot)"
            if not self.checks.is_valid_commit_qc(qc):
                return "ticket holds an invalid CommitQC"
        elif view == 0 and slot > self.k and not self.is_committed(slot - self.k):
            return "ticket lacks the CommitQC of slot - k"
        return None

    def on_prepare(self, sender: int, prepare: Prepare) -> list[Effect]:
        proposal, ticket = prepare.proposal, prepare.ticket
        slot, view = proposal.slot, proposal.view
        if self.is_committed(slot):
            return self._commit_hint(sender, slot)
        if slot > self._horizon():
            return [Ignore("prepare too far ahead"), *self._request_commits(sender)]
        state = self.slots.get(slot)
        if state is not None and (view < state.view or view in state.proposals):
            return [Ignore("stale or duplicate prepare")]
        if view > (state.view if state is not None else 0) + MAX_VIEW_LEAD:
            return [Ignore("prepare view too far ahead")]
        cert = prepare.exec_cert
        reason = (
            self.checks.validate_proposal(proposal)
            or self._validate_ticket(proposal, ticket)
            or (self.execution.validate_cert(cert) if cert is not None else None)
        )
        if reason is not None:
            return [Reject(sender, reason)]
        effects: list[Effect] = self.execution.on_cert(cert) if cert is not None else []
        if ticket.prev is not None:
            self._note_proposal(ticket.prev)
        if ticket.commit_qc is not None:
            self.known_commit_slots.add(ticket.commit_qc.slot)
            if not self.is_committed(ticket.commit_qc.slot):
                effects += self._request_commits(sender)
        if ticket.tc is not None:
            effects += self._on_valid_tc(ticket.tc)
        state = self._slot(slot)
        if view < state.view:
            return effects + [Ignore("prepare for a view this replica left")]
        if view > state.view:
            state.view = view
        state.proposals[view] = proposal
        self._note_proposal(proposal)
        effects += self._arm_view_timer(slot, state)
        if state.timed_out >= view or state.voted_prepare >= view:
            return effects + [Ignore("already voted or timed out in this view")]
        state.voted_prepare = view
        if state.high_prop is None or view >= state.high_prop.view:
            state.high_prop = proposal
            effects.append(Persist(("high_prop", slot), proposal))
        sig = self._sign(MsgKind.PREPARE_VOTE, slot, view, proposal.cut.digest)
        vote = Vote(MsgKind.PREPARE_VOTE, slot, view, proposal.cut.digest, self.me, sig)
        effects.append(Persist(("prepare_vote", slot), vote))
        return effects + self._to_leader(proposal.leader, vote)

    # ------------------------------------------------------------ votes (leader side)

    def on_vote(self, sender: int, vote: Vote) -> list[Effect]:
        slot, view = vote.slot, vote.view
        if self.committee.leader(slot, view) != self.me:
            return [Reject(sender, "vote sent to a replica that does not lead its view")]
        if self.is_committed(slot):
            return [Ignore("vote for a committed slot")]
        state = self.slots.get(slot)
        proposal = state.proposals.get(view) if state is not None else None
        if state is None or proposal is None or view not in state.proposed:
            return [Ignore("vote for a proposal this leader did not make")]
        if vote.cut_digest != proposal.cut.digest:
            return [Reject(sender, "vote for a cut this leader did not propose")]
        book = state.prepare_votes if vote.phase == MsgKind.PREPARE_VOTE else state.confirm_acks
        if vote.voter in book.get(view, {}):
            return [Ignore("duplicate vote")]
        if not self.checks.is_valid_vote(vote):
            return [Reject(sender, "bad vote signature or phase")]
        votes = book.setdefault(view, {})
        votes[vote.voter] = vote.signature
        weight = self.committee.weight_of(votes)
        if vote.phase == MsgKind.CONFIRM_ACK:
            if weight >= self.committee.quorum:
                return self._lead_commit(slot, view, proposal.cut, MsgKind.CONFIRM_ACK, votes)
            return []
        if weight >= self.committee.fast_quorum:
            return self._lead_commit(slot, view, proposal.cut, MsgKind.PREPARE_VOTE, votes)
        if weight < self.committee.quorum or view in state.confirmed or view in state.fast_armed:
            return []
        if self.config.fast_path_timeout_ms == 0:
            return self._send_confirm(slot, view)
        state.fast_armed.add(view)
        return [SetTimer(fast_timer(slot, view), self.config.fast_path_timeout_ms)]

    def _on_fast_timer(self, slot: int, view: int) -> list[Effect]:
        state = self.slots.get(slot)
        if self.is_committed(slot) or state is None or view in state.confirmed:
            return []
        return self._send_confirm(slot, view)

    def _qc(
        self, phase: MsgKind, slot: int, view: int, digest: bytes, votes: dict[int, bytes]
    ) -> QC:
        signers = tuple(sorted(votes))
        return QC(phase, slot, view, digest, signers, tuple(votes[s] for s in signers))

    def _send_confirm(self, slot: int, view: int) -> list[Effect]:
        state = self.slots[slot]
        proposal = state.proposals[view]
        state.confirmed.add(view)
        votes = state.prepare_votes[view]
        qc = self._qc(MsgKind.PREPARE_VOTE, slot, view, proposal.cut.digest, votes)
        confirm = Confirm(qc, proposal.cut)
        return [Broadcast(confirm), *self.on_confirm(self.me, confirm)]

    def _lead_commit(
        self, slot: int, view: int, cut: Cut, phase: MsgKind, votes: dict[int, bytes]
    ) -> list[Effect]:
        commit = Commit(self._qc(phase, slot, view, cut.digest, votes), cut)
        return [Broadcast(commit), *self._commit(commit)]

    # ------------------------------------------------------------ Confirm and Commit

    def on_confirm(self, sender: int, confirm: Confirm) -> list[Effect]:
        qc, cut = confirm.prepare_qc, confirm.cut
        slot, view = qc.slot, qc.view
        if self.is_committed(slot):
            return self._commit_hint(sender, slot)
        if slot > self._horizon():
            return [Ignore("confirm too far ahead"), *self._request_commits(sender)]
        state = self.slots.get(slot)
        if state is not None and state.voted_confirm >= view:
            return [Ignore("already acknowledged this view")]
        reason = self.checks.validate_cut(cut)
        if reason is not None:
            return [Reject(sender, f"confirm carries a bad cut: {reason}")]
        if qc.cut_digest != cut.digest or not self.checks.is_valid_prepare_qc(qc):
            return [Reject(sender, "invalid PrepareQC in confirm")]
        state = self._slot(slot)
        effects = self._adopt_lock(slot, state, qc, cut)
        if view < state.view or state.timed_out >= view:
            return effects + [Ignore("confirm for a view this replica left")]
        if view > state.view:
            state.view = view
            effects += self._arm_view_timer(slot, state)
        state.voted_confirm = view
        sig = self._sign(MsgKind.CONFIRM_ACK, slot, view, cut.digest)
        ack = Vote(MsgKind.CONFIRM_ACK, slot, view, cut.digest, self.me, sig)
        effects.append(Persist(("confirm_ack", slot), ack))
        return effects + self._to_leader(self.committee.leader(slot, view), ack)

    def _adopt_lock(self, slot: int, state: SlotState, qc: QC, cut: Cut) -> list[Effect]:
        """Raise this replica's lock (highest PrepareQC) for ``slot``; locks never go down."""
        if state.high_qc is not None and state.high_qc.view >= qc.view:
            return []
        state.high_qc, state.high_qc_cut = qc, cut
        return [Persist(("high_qc", slot), Confirm(qc, cut))]

    def on_commit(self, sender: int, commit: Commit) -> list[Effect]:
        qc = commit.commit_qc
        if self.is_committed(qc.slot):
            return [Ignore("slot already committed")]
        reason = self.checks.validate_cut(commit.cut)
        if reason is not None:
            return [Reject(sender, f"commit carries a bad cut: {reason}")]
        if qc.slot < 1 or qc.cut_digest != commit.cut.digest:
            return [Reject(sender, "commit certificate does not match its cut")]
        if not self.checks.is_valid_commit_qc(qc):
            return [Reject(sender, "invalid CommitQC")]
        return self._commit(commit)

    def _commit(self, commit: Commit) -> list[Effect]:
        qc = commit.commit_qc
        slot = qc.slot
        self.commits[slot] = commit
        self.known_commit_slots.add(slot)
        self.top = max(self.top, slot)
        effects: list[Effect] = [Persist(("commit", slot), commit)]
        state = self.slots.get(slot)
        if state is not None:
            if state.timer_view >= 0:
                effects.append(CancelTimer(view_timer(slot, state.timer_view)))
            effects += [CancelTimer(fast_timer(slot, v)) for v in sorted(state.fast_armed)]
        for tip in commit.cut.tips:
            if tip.poa is not None:
                self.lanes.learn_poa(tip.poa)
        fast = qc.phase == MsgKind.PREPARE_VOTE
        effects.append(Committed(slot, qc.view, commit.cut, fast))
        effects += self.ordering.on_committed(slot, commit.cut)
        return effects + self.collect_garbage()

    def collect_garbage(self) -> list[Effect]:
        """Drop state of delivered slots (never of later ones) and of commits past retention."""
        effects: list[Effect] = []
        done = self.ordering.next_slot
        for slot in [s for s in self.slots if s < done]:
            del self.slots[slot]
            effects += [Persist((key, slot), None) for key in SLOT_KEYS]
        for slot in [s for s in self.latest_proposal if s < done - 1]:
            del self.latest_proposal[slot]
        self.known_commit_slots = {s for s in self.known_commit_slots if s >= done}
        horizon = done - self.config.commit_retention
        if horizon > 0 and len(self.commits) > self.config.commit_retention:
            for slot in [s for s in self.commits if s < horizon]:
                del self.commits[slot]
                effects.append(Persist(("commit", slot), None))
        return effects

    def _commit_hint(self, sender: int, slot: int) -> list[Effect]:
        commit = self.commits.get(slot)
        if commit is not None and sender != self.me:
            return [Send(sender, commit)]
        return [Ignore("message for a committed slot")]

    # ------------------------------------------------------------ commit sync

    def _request_commits(self, peer: int) -> list[Effect]:
        if self.commit_sync_active or peer == self.me:
            return []
        self.commit_sync_active = True
        return [
            Send(peer, CommitSyncRequest(self.ordering.next_slot)),
            SetTimer(COMMIT_SYNC_TIMER, self.config.sync_retry_ms),
        ]

    def on_commit_sync_request(self, sender: int, req: CommitSyncRequest) -> list[Effect]:
        slots = sorted(s for s in self.commits if s >= req.from_slot)[:COMMIT_SYNC_BATCH]
        return [Send(sender, self.commits[s]) for s in slots]

    # ------------------------------------------------------------ view change

    def _on_view_timer(self, slot: int, view: int) -> list[Effect]:
        state = self.slots.get(slot)
        if self.is_committed(slot) or state is None or state.view != view:
            return []
        delay = self.config.view_timeout(view)
        if state.timed_out >= view and state.my_timeout is not None:
            # Still stuck in this view: repeat the same timeout, in case it was lost.
            return [Broadcast(state.my_timeout), SetTimer(view_timer(slot, view), delay)]
        return self._time_out(slot, state)

    def _time_out(self, slot: int, state: SlotState) -> list[Effect]:
        view = state.view
        state.timed_out = view
        placeholder = Timeout(
            slot, view, state.high_qc, state.high_qc_cut, state.high_prop, self.me, b""
        )
        sig = self._sign(MsgKind.TIMEOUT, slot, view, placeholder.content_digest)
        timeout = Timeout(
            slot, view, state.high_qc, state.high_qc_cut, state.high_prop, self.me, sig
        )
        state.my_timeout = timeout
        state.timer_view = view
        effects: list[Effect] = [
            Persist(("timeout", slot), timeout),
            Broadcast(timeout),
            SetTimer(view_timer(slot, view), self.config.view_timeout(view)),
        ]
        return effects + self._add_timeout(slot, state, timeout)

    def on_timeout(self, sender: int, timeout: Timeout) -> list[Effect]:
        slot, view = timeout.slot, timeout.view
        if self.is_committed(slot):
            return self._commit_hint(sender, slot)
        if slot > self._horizon():
            return [Ignore("timeout too far ahead"), *self._request_commits(sender)]
        state = self.slots.get(slot)
        current = state.view if state is not None else 0
        if view < current:
            if state is not None and state.tc is not None and sender != self.me:
                return [Send(sender, state.tc)]
            return [Ignore("timeout for a view this replica left")]
        if view > current + MAX_VIEW_LEAD:
            return [Ignore("timeout view too far ahead")]
        if state is not None and timeout.voter in state.timeouts.get(view, {}):
            return [Ignore("duplicate timeout")]
        reason = self.checks.validate_timeout(timeout)
        if reason is not None:
            return [Reject(sender, reason)]
        return self._add_timeout(slot, self._slot(slot), timeout)

    def _add_timeout(self, slot: int, state: SlotState, timeout: Timeout) -> list[Effect]:
        view = timeout.view
        book = state.timeouts.setdefault(view, {})
        book[timeout.voter] = timeout
        weight = self.committee.weight_of(book)
        effects: list[Effect] = []
        if weight >= self.committee.poa_quorum and state.view == view and state.timed_out < view:
            return self._time_out(slot, state)  # join: it re-enters here with our own timeout
        if weight >= self.committee.quorum and (state.tc is None or state.tc.view < view):
            voters = sorted(book)
            tc = TC(slot, view, tuple(book[v] for v in voters))
            effects += self._on_valid_tc(tc)
        return effects

    def on_tc(self, sender: int, tc: TC) -> list[Effect]:
        if self.is_committed(tc.slot):
            return [Ignore("TC for a committed slot")]
        if tc.slot > self._horizon():
            return [Ignore("TC too far ahead")]
        state = self.slots.get(tc.slot)
        if state is not None and tc.view < state.view:
            return [Ignore("stale TC")]
        reason = self.checks.validate_tc(tc)
        if reason is not None:
            return [Reject(sender, reason)]
        return self._on_valid_tc(tc)

    def _on_valid_tc(self, tc: TC) -> list[Effect]:
        """Enter view tc.view + 1: inherit the TC's lock, re-arm the timer, lead if it is ours."""
        slot = tc.slot
        state = self._slot(slot)
        if state.view > tc.view:
            return []
        state.tc = tc
        effects: list[Effect] = [Persist(("tc", slot), tc)]
        best = highest_prepare_qc(tc)
        if best is not None:
            effects += self._adopt_lock(slot, state, *best)
        state.view = tc.view + 1
        effects += self._arm_view_timer(slot, state)
        leader = self.committee.leader(slot, state.view)
        if leader == self.me and state.view not in state.proposed:
            winner = compute_winner(tc, self.committee)
            cut = winner if winner is not None else Cut(self.lanes.tips())
            effects += self._propose(slot, state.view, cut, Ticket(tc=tc))
        return effects

    # ------------------------------------------------------------ restart

    def restore(self, key: PersistKey, value: object) -> None:
        kind = key[0]
        if kind == "commit" and isinstance(value, Commit):
            self.commits[value.commit_qc.slot] = value
            self.known_commit_slots.add(value.commit_qc.slot)
            self.top = max(self.top, value.commit_qc.slot)
            return
        slot = key[1]
        if not isinstance(slot, int):
            return
        state = self._slot(slot)
        if kind == "prepare_vote" and isinstance(value, Vote):
            state.voted_prepare = max(state.voted_prepare, value.view)
        elif kind == "confirm_ack" and isinstance(value, Vote):
            state.voted_confirm = max(state.voted_confirm, value.view)
        elif kind == "timeout" and isinstance(value, Timeout):
            state.timed_out = max(state.timed_out, value.view)
            state.my_timeout = value
            state.view = max(state.view, value.view)
        elif kind == "high_prop" and isinstance(value, Proposal):
            # Persisted just before the vote: count it as a vote in its view, so a crash
            # between the two writes cannot lead to a second, different vote in that view.
            state.high_prop = value
            state.voted_prepare = max(state.voted_prepare, value.view)
            state.view = max(state.view, value.view)
            self._note_proposal(value)
        elif kind == "high_qc" and isinstance(value, Confirm):
            state.high_qc, state.high_qc_cut = value.prepare_qc, value.cut
        elif kind == "tc" and isinstance(value, TC):
            state.tc = value
            state.view = max(state.view, value.view + 1)
        elif kind == "proposal" and isinstance(value, Prepare):
            prop = value.proposal
            self.unsent_proposals.append(value)
            state.proposed.add(prop.view)
            state.proposals[prop.view] = prop
            self._note_proposal(prop)
