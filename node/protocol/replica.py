"""One validator's protocol core: lanes, consensus and ordering behind a single ``step``.

This is the map of the pure part of the system: the node runtime and the simulator both feed
it events and carry out the effects it returns.
"""

from __future__ import annotations

from collections.abc import Mapping

from node.crypto.signing import Signer, Verifier
from node.protocol.config import ProtocolConfig
from node.protocol.consensus import Consensus
from node.protocol.effects import Effect, Ignore, PersistKey, Reject
from node.protocol.events import (
    Event,
    Executed,
    MessageReceived,
    Start,
    TimerFired,
    TxsSubmitted,
)
from node.protocol.execution import ExecutionCheck
from node.protocol.lanes import Lanes
from node.protocol.ordering import Ordering, OrderingCheckpoint
from node.protocol.validation import MessageChecker
from node.types.committee import Committee
from node.types.messages import (
    TC,
    Car,
    Commit,
    CommitSyncRequest,
    Confirm,
    ExecVote,
    LaneVote,
    Message,
    PoA,
    Prepare,
    SyncReply,
    SyncRequest,
    Timeout,
    Vote,
)


class Replica:
    """The deterministic state machine of validator ``me``."""

    def __init__(
        self,
        committee: Committee,
        me: int,
        signer: Signer,
        verifier: Verifier,
        config: ProtocolConfig,
    ) -> None:
        self.committee = committee
        self.me = me
        self.config = config
        self.checks = MessageChecker(committee, verifier)
        self.lanes = Lanes(committee, me, signer, self.checks, config)
        self.ordering = Ordering(self.lanes)
        self.execution = ExecutionCheck(committee, me, signer, self.checks, config)
        self.consensus = Consensus(
            committee, me, signer, self.checks, config, self.lanes, self.ordering, self.execution
        )

    def restore(self, records: Mapping[PersistKey, object]) -> None:
        """Rebuild from what an earlier incarnation persisted; call before ``Start``."""
        checkpoint = records.get(("ordering",))
        if isinstance(checkpoint, OrderingCheckpoint):
            self.ordering.restore(checkpoint)
            # every lane (this one's too) continues after its last ordered car at least; a
            # validator restored from a snapshot holds no car or lane_pos record of its own
            for lane, (pos, digest) in enumerate(checkpoint.lane_positions):
                self.lanes.restore_lane_pos(lane, pos, digest)
        for key, value in sorted(records.items(), key=lambda kv: repr(kv[0])):
            kind = key[0]
            if kind == "car" and isinstance(value, Car):
                self.lanes.restore_car(value)
            elif kind == "lane_pos" and isinstance(value, tuple) and isinstance(key[1], int):
                self.lanes.restore_lane_pos(key[1], value[0], value[1])
            elif kind == "poa" and isinstance(value, PoA):
                self.lanes.restore_poa(value)
            elif kind != "ordering":
                self.consensus.restore(key, value)
        for slot, commit in self.consensus.commits.items():
            if slot >= self.ordering.next_slot:
                self.ordering.pending[slot] = commit.cut  # delivered by Start's advance()

    def step(self, event: Event) -> list[Effect]:
        """One event in, effects out. After a ``Halt`` (own execution diverged) the replica
        is inert: it answers nothing, so it neither votes nor proposes again."""
        if self.execution.halted is not None:
            return []
        effects = self._step(event)
        if self.execution.halted is not None:
            return [self.execution.halted]  # nothing of the diverging step goes out
        return effects

    def _step(self, event: Event) -> list[Effect]:
        if isinstance(event, Executed):
            return self.execution.on_executed(event.height, event.commitment)
        if isinstance(event, MessageReceived):
            effects = self._on_message(event.sender, event.message)
        elif isinstance(event, TimerFired):
            effects = self._on_timer(event)
        elif isinstance(event, TxsSubmitted):
            effects = self.lanes.on_txs(event.txs)
        elif isinstance(event, Start):
            effects = self.lanes.on_start() + self.ordering.advance() + self.consensus.on_start()
            return effects
        else:
            return [Ignore("unknown event")]
        return effects + self.consensus.poke() + self.consensus.collect_garbage()

    def _on_timer(self, event: TimerFired) -> list[Effect]:
        timer = event.timer
        if timer.kind == "car":
            return self.lanes.on_car_timer()
        if timer.kind == "sync":
            return self.lanes.on_sync_timer(timer.slot) + self.ordering.advance()
        return self.consensus.on_timer(timer)

    def _on_message(self, sender: int, message: Message) -> list[Effect]:
        if not self.committee.is_member(sender) or sender == self.me:
            return [Ignore("message from outside the committee")]
        if isinstance(message, Car):
            # A car may be the one a committed slot waits for: retry ordering at once.
            effects = self.lanes.on_car(sender, message)
            return effects + self.ordering.advance() if self.ordering.pending else effects
        if isinstance(message, LaneVote):
            return self.lanes.on_lane_vote(sender, message)
        if isinstance(message, PoA):
            return self.lanes.on_poa(sender, message)
        if isinstance(message, ExecVote):
            return self.execution.on_vote(sender, message)
        if isinstance(message, SyncRequest):
            return self.lanes.on_sync_request(sender, message)
        if isinstance(message, SyncReply):
            return self.lanes.on_sync_reply(sender, message) + self.ordering.advance()
        return self._on_consensus_message(sender, message)

    def _on_consensus_message(self, sender: int, message: Message) -> list[Effect]:
        c = self.consensus
        if isinstance(message, Prepare):
            return c.on_prepare(sender, message)
        if isinstance(message, Vote):
            return c.on_vote(sender, message)
        if isinstance(message, Confirm):
            return c.on_confirm(sender, message)
        if isinstance(message, Commit):
            return c.on_commit(sender, message)
        if isinstance(message, Timeout):
            return c.on_timeout(sender, message)
        if isinstance(message, TC):
            return c.on_tc(sender, message)
        if isinstance(message, CommitSyncRequest):
            return c.on_commit_sync_request(sender, message)
        return [Reject(sender, f"unexpected message {type(message).__name__}")]
