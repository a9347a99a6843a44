"""The invariant checker of `lanenet perturb` finds planted violations in what fake nodes
answer (forks, broken links, duplicates, lost and misplaced transactions, a stalled node)
and passes a healthy chain."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from node.tools.invariants import (
    Accepted,
    Block,
    Crash,
    Receipt,
    check_agreement,
    check_all,
    check_exactly_once,
    check_liveness,
    render_verdict,
    verdict_to_dict,
)


def tx(i: int) -> str:
    return "0x" + f"{i:064x}"


def chain(length: int, txs: dict[int, list[str]] | None = None, fork_at: int | None = None):
    """Blocks 0..length-1 linked by parent hash; from ``fork_at`` on, hashes differ."""
    txs = txs or {}
    blocks: list[Block | None] = []
    for h in range(length):
        tag = "f" if fork_at is not None and h >= fork_at else "a"
        blocks.append(
            {
                "number": hex(h),
                "hash": f"0x{tag}{h:063x}",
                "parentHash": "0x" + "0" * 64 if h == 0 else blocks[h - 1]["hash"],  # type: ignore[index]
                "transactions": txs.get(h, []),
            }
        )
    return blocks


def receipt(height: int) -> Receipt:
    return {"blockNumber": hex(height), "status": "0x1"}


class FakeNode:
    """A node answering from a fixed chain; ``committed`` yields one height per status call."""

    def __init__(
        self,
        name: str,
        blocks: list[Block | None],
        receipts: dict[str, Receipt] | None = None,
        committed: Sequence[int] | None = None,
    ) -> None:
        self.name = name
        self._blocks = blocks
        self._receipts = receipts or {}
        self._committed = list(committed) if committed is not None else None
        self.executed_nonces: dict[str, int] = {}

    def status(self) -> dict[str, Any] | None:
        top = len(self._blocks) - 1
        committed = top
        if self._committed is not None:
            committed = self._committed.pop(0) if len(self._committed) > 1 else self._committed[0]
        return {"committed_height": committed, "executed_height": top}

    def blocks(self, first: int, last: int) -> list[Block | None]:
        return self._blocks[first : last + 1]

    def receipts(self, tx_hashes: Sequence[str]) -> list[Receipt | None]:
        return [self._receipts.get(h) for h in tx_hashes]

    def nonces(self, addresses: Sequence[str]) -> list[int]:
        return [self.executed_nonces.get(a, 0) for a in addresses]


# ------------------------------------------------------------------------------ (a)


def test_identical_chains_agree_and_count_every_shared_height() -> None:
    """Four nodes with the same 10 blocks: no violation, 10 heights compared."""
    chains = {f"node{i}": chain(10) for i in range(4)}
    violations, shared = check_agreement(chains)
    assert violations == []
    assert shared == 10


def test_a_fork_is_reported_at_its_first_height_naming_both_sides() -> None:
    """node2 lists other hashes from height 6: a violation at height 6 names node2 and one
    of the others."""
    chains = {f"node{i}": chain(10) for i in range(4)}
    chains["node2"] = chain(10, fork_at=6)
    violations, _ = check_agreement(chains)
    messages = [v.message for v in violations if v.invariant == "agreement"]
    assert messages[0].startswith("height 6: nodes disagree")
    assert "node2" in messages[0]
    assert len(messages) == 4  # heights 6..9


def test_a_lagging_node_is_compared_on_the_heights_it_has() -> None:
    """A node 3 blocks behind with the same prefix is no violation."""
    chains = {"node0": chain(10), "node1": chain(7)}
    violations, shared = check_agreement(chains)
    assert violations == []
    assert shared == 7


def test_a_block_that_does_not_link_to_its_parent_is_a_violation() -> None:
    """One node's block 4 names a parent hash that is not block 3's hash."""
    blocks = chain(8)
    broken = dict(blocks[4] or {})
    broken["parentHash"] = "0x" + "9" * 64
    blocks[4] = broken
    violations, _ = check_agreement({"node0": blocks, "node1": blocks})
    assert any("block 4 does not link to 3" in v.message for v in violations)


def test_a_height_a_node_claims_but_does_not_list_is_a_violation() -> None:
    """eth_getBlockByNumber answers null below the node's own executed height."""
    holed = chain(5)
    holed[3] = None
    violations, _ = check_agreement({"node0": chain(5), "node1": holed})
    assert [v.message for v in violations] == ["height 3: not listed by node1"]


# ------------------------------------------------------------------------------ (b)


def test_every_accepted_transaction_in_one_block_with_its_receipt_passes() -> None:
    blocks = chain(6, {2: [tx(1), tx(2)], 4: [tx(3)]})
    receipts = {tx(1): receipt(2), tx(2): receipt(2), tx(3): receipt(4)}
    violations, counts = check_exactly_once(blocks, receipts, [Accepted(tx(i)) for i in (1, 2, 3)])
    assert violations == []
    assert (counts.accepted, counts.committed_once, counts.missing) == (3, 3, 0)


def test_a_transaction_in_two_blocks_is_a_violation() -> None:
    """The same hash included at heights 2 and 5."""
    blocks = chain(6, {2: [tx(1)], 5: [tx(1)]})
    violations, counts = check_exactly_once(blocks, {tx(1): receipt(2)}, [Accepted(tx(1))])
    assert any("is in blocks [2, 5]" in v.message for v in violations)
    assert counts.duplicated == 1
    assert counts.committed_once == 0


def test_a_duplicate_of_a_transaction_nobody_recorded_is_still_a_violation() -> None:
    """Inclusion twice is wrong whoever sent the transaction."""
    blocks = chain(6, {1: [tx(9)], 3: [tx(9)]})
    violations, _ = check_exactly_once(blocks, {}, [])
    assert [v.invariant for v in violations] == ["exactly_once"]


def test_an_accepted_transaction_that_never_commits_is_a_violation() -> None:
    blocks = chain(4, {1: [tx(1)]})
    accepted = [Accepted(tx(1)), Accepted(tx(2), node="node1", at=100.0)]
    violations, counts = check_exactly_once(blocks, {tx(1): receipt(1)}, accepted)
    assert len(violations) == 1
    assert violations[0].message.startswith(f"tx {tx(2)} (accepted by node1 at 00:01:40.000")
    assert violations[0].message.endswith(": accepted, never committed")
    assert counts.missing == 1


SENDER = "0x" + "ab" * 20


def test_a_transaction_whose_nonce_another_took_is_counted_as_replaced() -> None:
    """tx 2 (nonce 5) never commits, but the sender's executed nonce is 7: another
    transaction with nonce 5 committed. One of two same-nonce transactions must drop; that
    is counted as replaced, not a violation; --strict makes it one. With the sender's nonce
    still at 5, it is a plain loss."""
    accepted = [Accepted(tx(2), "node1", 100.0, SENDER, 5)]
    violations, counts = check_exactly_once(chain(3), {}, accepted, nonces={SENDER: 7})
    assert violations == [] and counts.replaced == 1
    strict, _ = check_exactly_once(chain(3), {}, accepted, strict=True, nonces={SENDER: 7})
    assert len(strict) == 1
    lost, counts = check_exactly_once(chain(3), {}, accepted, nonces={SENDER: 5})
    assert len(lost) == 1 and counts.missing == 1


def test_check_all_asks_for_the_nonces_of_missing_transactions_senders() -> None:
    node = FakeNode("node0", chain(3, {1: [tx(1)]}), {tx(1): receipt(1)})
    node.executed_nonces = {SENDER: 9}
    accepted = [Accepted(tx(1), "node0", 1.0, "0x" + "cd" * 20, 0)]
    accepted.append(Accepted(tx(2), "node0", 1.0, SENDER.upper().replace("0X", "0x"), 3))
    verdict = check_all([node], accepted, liveness_bound_s=None)
    assert verdict.ok
    assert verdict.txs is not None and verdict.txs.replaced == 1


def test_a_transaction_lost_with_a_node_crashed_after_accepting_it_is_a_violation() -> None:
    """node1 accepted tx 2 at t=100 and was killed at t=101. Nodes keep accepted
    transactions on disk, so the loss is a violation, and the message says the node
    crashed after accepting it."""
    accepted = [Accepted(tx(2), node="node1", at=100.0)]
    crashes = [Crash("node1", 101.0)]
    violations, counts = check_exactly_once(chain(3), {}, accepted, crashes)
    assert len(violations) == 1 and "crashed after accepting it" in violations[0].message
    assert (counts.missing, counts.lost_in_crash) == (1, 1)


def test_a_crash_before_acceptance_or_of_another_node_does_not_excuse_a_loss() -> None:
    accepted = [Accepted(tx(2), node="node1", at=100.0)]
    for crash in (Crash("node1", 99.0), Crash("node2", 101.0)):
        violations, counts = check_exactly_once(chain(3), {}, accepted, [crash])
        assert counts.missing == 1 and len(violations) == 1


def test_a_receipt_that_names_another_block_is_a_violation() -> None:
    blocks = chain(6, {2: [tx(1)]})
    violations, _ = check_exactly_once(blocks, {tx(1): receipt(3)}, [Accepted(tx(1))])
    assert any("receipt says block 0x3" in v.message for v in violations)


def test_an_included_transaction_without_a_receipt_is_a_violation() -> None:
    blocks = chain(6, {2: [tx(1)]})
    violations, _ = check_exactly_once(blocks, {}, [Accepted(tx(1))])
    assert [v.message for v in violations] == [f"tx {tx(1)}: in block 2, no receipt"]


def test_many_missing_transactions_are_summarised_not_listed() -> None:
    accepted = [Accepted(tx(i)) for i in range(20)]
    violations, counts = check_exactly_once(chain(2), {}, accepted)
    assert counts.missing == 20
    assert len(violations) == 6
    assert "20 accepted transactions" in violations[-1].message


# ------------------------------------------------------------------------------ (c)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_liveness_holds_when_every_node_commits_above_the_mark() -> None:
    """Committed heights 10 at the start (the mark), then 10, 11: recovered after polls."""
    clock = FakeClock()
    nodes = [FakeNode(f"node{i}", chain(3), committed=[10, 10, 11]) for i in range(4)]
    violations, took = check_liveness(nodes, 5.0, clock, clock.sleep, poll_s=1.0)
    assert violations == []
    assert took == 1.0


def test_a_node_that_stays_at_the_mark_breaks_liveness_and_is_named() -> None:
    clock = FakeClock()
    nodes = [FakeNode("node0", chain(3), committed=[10, 11]), FakeNode("node3", chain(3), [], [10])]
    violations, took = check_liveness(nodes, 5.0, clock, clock.sleep, poll_s=1.0)
    assert took is None
    assert [v.message for v in violations] == ["node3 did not commit above height 10 within 5 s"]


# ------------------------------------------------------------------------------ all


def test_check_all_passes_a_healthy_net_and_reports_counts() -> None:
    blocks = chain(5, {3: [tx(1)]})
    nodes = [FakeNode(f"node{i}", blocks, {tx(1): receipt(3)}) for i in range(4)]
    verdict = check_all(nodes, [Accepted(tx(1))], liveness_bound_s=None)
    assert verdict.ok
    assert verdict.common_height == 4
    assert verdict.txs is not None and verdict.txs.committed_once == 1
    assert verdict_to_dict(verdict)["ok"] is True
    assert "result: ok" in render_verdict(verdict)


def test_check_all_fails_on_a_forked_node_and_a_silent_one() -> None:
    good = chain(5)

    class Silent(FakeNode):
        def status(self) -> dict[str, Any] | None:
            return None

    nodes = [FakeNode("node0", good), FakeNode("node1", chain(5, fork_at=2)), Silent("node2", good)]
    verdict = check_all(nodes, [], liveness_bound_s=None)
    assert not verdict.ok
    text = render_verdict(verdict)
    assert "(a) agreement     VIOLATED" in text
    assert "node2: does not answer" in text
    assert verdict_to_dict(verdict)["heights"] == {"node0": 4, "node1": 4, "node2": None}


def test_check_all_passes_crashes_through_to_exactly_once() -> None:
    nodes = [FakeNode(f"node{i}", chain(3)) for i in range(2)]
    accepted = [Accepted(tx(7), node="node1", at=5.0)]
    verdict = check_all(nodes, accepted, [Crash("node1", 6.0)], None)
    assert not verdict.ok
    assert verdict.txs is not None and verdict.txs.lost_in_crash == 1
