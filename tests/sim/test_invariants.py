"""The invariant checkers catch planted violations (and stay quiet on clean evidence)."""

from __future__ import annotations

import dataclasses

from node.crypto.hashing import ZERO_DIGEST
from node.crypto.signing import KeyedHashSigner, KeyedHashVerifier
from node.sim.hosts import make_keys
from node.sim.invariants import (
    PoaBook,
    VoteBook,
    check_agreement,
    check_inclusion,
    check_liveness,
    check_no_duplicates,
    check_poas,
    check_slot_agreement,
)
from node.types.committee import Committee
from node.types.messages import (
    Block,
    Car,
    Cut,
    CutTip,
    LaneVote,
    MsgKind,
    PoA,
    Prepare,
    Proposal,
    Ticket,
    Timeout,
    Vote,
    signing_bytes,
)

COMMITTEE, SECRETS = make_keys(4, seed=0)
VERIFIER = KeyedHashVerifier(SECRETS)


def _car(lane: int, pos: int, parent: bytes, txs: tuple[bytes, ...]) -> Car:
    return Car.create(lane, pos, parent, None, txs, b"sig")


def _poa(car: Car, committee: Committee = COMMITTEE, signers: tuple[int, ...] = (0, 1)) -> PoA:
    message = signing_bytes(MsgKind.LANE_VOTE, committee.chain_id, car.lane, car.pos, car.digest)
    sigs = tuple(KeyedHashSigner(SECRETS[s]).sign(message) for s in signers)
    return PoA(car.lane, car.pos, car.digest, signers, sigs)


def _block(height: int, cars: tuple[Car, ...], parent: bytes = ZERO_DIGEST) -> Block:
    return Block(height, height, parent, ZERO_DIGEST, cars)


def _ledger(*txs_per_block: tuple[bytes, ...], lane: int = 0) -> list[Block]:
    blocks, parent = [], ZERO_DIGEST
    for i, txs in enumerate(txs_per_block):
        car = _car(lane, i + 1, parent, txs)
        parent = car.digest
        blocks.append(_block(i + 1, (car,)))
    return blocks


def test_agreement_accepts_prefixes_and_catches_a_fork() -> None:
    """Ledgers that are prefixes of each other agree; a different block at one height is caught."""
    good = _ledger((b"a",), (b"b",), (b"c",))
    assert check_agreement({0: good, 1: good[:2], 2: []}) == []
    forked = [*good[:1], *_ledger((b"a",), (b"X",))[1:]]
    found = check_agreement({0: good, 1: forked})
    assert [v.kind for v in found] == ["agreement"]
    assert "height 2" in found[0].detail


def test_agreement_catches_a_height_out_of_place() -> None:
    """A ledger whose block heights skip is reported."""
    blocks = _ledger((b"a",), (b"b",))
    skipped = [blocks[0], dataclasses.replace(blocks[1], height=3)]
    assert [v.kind for v in check_agreement({0: skipped})] == ["height"]


def test_slot_agreement_catches_different_cuts_for_one_slot() -> None:
    """Two honest nodes committing different cuts for slot 5 is a violation."""
    assert check_slot_agreement({0: {5: b"A"}, 1: {5: b"A", 6: b"B"}}) == []
    found = check_slot_agreement({0: {5: b"A"}, 1: {5: b"B"}})
    assert [v.kind for v in found] == ["slot-agreement"]


def test_duplicate_tx_in_an_honest_lane_is_caught() -> None:
    """A transaction ordered twice in honest lanes is reported."""
    assert check_no_duplicates({0: _ledger((b"a",), (b"b",))}) == []
    found = check_no_duplicates({0: _ledger((b"a",), (b"b", b"a"))})
    assert [v.kind for v in found] == ["duplicate-tx"]


def test_duplicate_tx_in_a_byzantine_lane_is_not_blamed_on_the_protocol() -> None:
    """A Byzantine owner repeating bytes in its own cars is outside consensus' power."""
    ledger = _ledger((b"a",), (b"a",), lane=3)
    assert check_no_duplicates({0: ledger}, honest_lanes={0, 1, 2}) == []
    assert check_no_duplicates({0: ledger}, honest_lanes={0, 1, 2, 3}) != []


def test_a_lane_position_ordered_twice_is_caught() -> None:
    """The same (lane, pos) in two blocks is reported even if the cars differ."""
    first = _ledger((b"a",))
    again = _block(2, (_car(0, 1, ZERO_DIGEST, (b"z",)),))
    found = check_no_duplicates({0: [*first, again]})
    assert "duplicate-car" in [v.kind for v in found]


def test_every_ordered_car_needs_a_poa_or_a_certified_descendant_in_its_block() -> None:
    """A certified tip covers its ancestors in the block; an uncertified car is reported."""
    c1 = _car(1, 1, ZERO_DIGEST, (b"a",))
    c2 = _car(1, 2, c1.digest, (b"b",))
    block = _block(1, (c1, c2))
    book = PoaBook(COMMITTEE, VERIFIER)
    assert [v.kind for v in check_poas({0: [block]}, book)] == ["no-poa", "no-poa"]
    book.add(_poa(c2))
    assert check_poas({0: [block]}, book) == []


def test_a_car_off_the_certified_chain_is_not_covered() -> None:
    """A car whose child in the block does not name it as parent needs its own PoA."""
    c1 = _car(1, 1, ZERO_DIGEST, (b"a",))
    c2 = _car(1, 2, b"\x01" * 32, (b"b",))
    book = PoaBook(COMMITTEE, VERIFIER)
    book.add(_poa(c2))
    found = check_poas({0: [_block(1, (c1, c2))]}, book)
    assert [v.detail.split(": ")[1] for v in found] == ["lane 1 pos 1 has no PoA"]


def test_forged_or_undersized_poas_do_not_count() -> None:
    """A PoA with a damaged signature or too few signers does not certify a car."""
    car = _car(2, 1, ZERO_DIGEST, (b"a",))
    book = PoaBook(COMMITTEE, VERIFIER)
    good = _poa(car)
    book.add(dataclasses.replace(good, signatures=(good.signatures[0], b"\x00" * 32)))
    book.add(_poa(car, signers=(0,)))
    assert not book.has_valid(car)
    assert book.invalid == 2
    book.add(good)
    assert book.has_valid(car)


def test_conflicting_honest_lane_votes_are_caught() -> None:
    """An honest node voting for two cars at one lane position is reported; repeats are not."""
    book = VoteBook()
    book.record(1, LaneVote(0, 3, b"A", 1, b"s"))
    book.record(1, LaneVote(0, 3, b"A", 1, b"s"))
    assert book.violations == []
    book.record(1, LaneVote(0, 3, b"B", 1, b"s"))
    assert [v.kind for v in book.violations] == ["conflicting-vote"]


def test_conflicting_consensus_votes_timeouts_and_proposals_are_caught() -> None:
    """Two PrepareVotes, Timeouts or Proposals of one honest node for one (slot, view) conflict."""
    book = VoteBook()
    book.record(2, Vote(MsgKind.PREPARE_VOTE, 4, 0, b"A", 2, b"s"))
    book.record(2, Vote(MsgKind.CONFIRM_ACK, 4, 0, b"A", 2, b"s"))
    book.record(2, Vote(MsgKind.PREPARE_VOTE, 4, 1, b"B", 2, b"s"))
    assert book.violations == []
    book.record(2, Vote(MsgKind.PREPARE_VOTE, 4, 0, b"B", 2, b"s"))
    cut_a, cut_b = Cut((CutTip(0, 0, ZERO_DIGEST, None),)), Cut((CutTip(0, 1, b"x" * 32, None),))
    book.record(3, Prepare(Proposal(9, 0, cut_a, 3, b"s"), Ticket()))
    book.record(3, Prepare(Proposal(9, 0, cut_b, 3, b"s"), Ticket()))
    prop = Proposal(9, 0, cut_a, 3, b"s")
    book.record(1, Timeout(9, 0, None, None, None, 1, b"s"))
    book.record(1, Timeout(9, 0, None, None, prop, 1, b"s"))
    assert [v.kind for v in book.violations] == ["conflicting-vote"] * 3


def test_a_vote_after_own_timeout_in_that_view_is_caught() -> None:
    """An honest node must not vote in a view after it timed out of it."""
    book = VoteBook()
    book.record(0, Timeout(5, 1, None, None, None, 0, b"s"))
    book.record(0, Vote(MsgKind.PREPARE_VOTE, 5, 2, b"A", 0, b"s"))
    assert book.violations == []
    book.record(0, Vote(MsgKind.PREPARE_VOTE, 5, 1, b"A", 0, b"s"))
    assert [v.kind for v in book.violations] == ["vote-after-timeout"]


def test_votes_relayed_for_other_voters_are_not_attributed_to_the_relay() -> None:
    """Only a node's own signatures count against it."""
    book = VoteBook()
    book.record(1, LaneVote(0, 3, b"A", 2, b"s"))
    book.record(1, LaneVote(0, 3, b"B", 2, b"s"))
    assert book.violations == []


def test_liveness_requires_a_commit_in_the_window_after_heal() -> None:
    """A node without a commit between heal and heal + bound is reported."""
    times = {0: [100, 1500], 1: [100, 2600]}
    found = check_liveness(times, since=1000, bound=1000)
    assert [v.detail.split()[1] for v in found] == ["1"]


def test_inclusion_reports_transactions_never_ordered() -> None:
    """Transactions given to honest lanes must show up in some honest ledger."""
    ledgers = {0: _ledger((b"a",), (b"b",))}
    assert check_inclusion({b"a": 0, b"b": 0}, ledgers) == []
    found = check_inclusion({b"a": 0, b"lost": 2}, ledgers)
    assert [v.kind for v in found] == ["inclusion"]
    assert "[2]" in found[0].detail


def test_an_honest_owner_signing_two_cars_at_one_position_is_caught() -> None:
    """Correct lanes never fork: two own cars at one position is a violation."""
    book = VoteBook()
    book.record(1, _car(1, 4, ZERO_DIGEST, (b"a",)))
    book.record(2, _car(1, 4, ZERO_DIGEST, (b"b",)))  # relayed: not node 2's lane
    assert book.violations == []
    book.record(1, _car(1, 4, ZERO_DIGEST, (b"b",)))
    assert [v.kind for v in book.violations] == ["conflicting-vote"]
