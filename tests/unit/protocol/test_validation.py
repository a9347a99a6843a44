"""MessageChecker: the stateless yes/no checks of signatures, certificates, cars and cuts."""

from __future__ import annotations

from dataclasses import replace

import pytest

from node.crypto.hashing import ZERO_DIGEST
from node.protocol.validation import MessageChecker
from node.types.messages import TC, Cut, CutTip, MsgKind, PoA
from tests.unit.protocol.helpers import Keys

MAX_TXS, MAX_BYTES = 100, 10_000


@pytest.fixture(params=[False, True], ids=["keyed", "ed25519"])
def keys(request: pytest.FixtureRequest) -> Keys:
    return Keys(4, ed25519=request.param)


def checker(keys: Keys) -> MessageChecker:
    return MessageChecker(keys.committee, keys.verifier)


# ---------------------------------------------------------------- chain id binding


def test_certificates_from_another_chain_do_not_verify(keys: Keys) -> None:
    """A QC, PoA, car and timeout signed for chain 7 are invalid under chain 8's committee."""
    other_checker = MessageChecker(replace(keys.committee, chain_id=8), keys.verifier)
    car = keys.car(1, 1)
    cut = keys.cut(keys.tip(car))
    qc = keys.prepare_qc(1, 0, cut)
    timeout = keys.timeout(1, 0, 2)
    ok = checker(keys)
    assert ok.is_valid_poa(keys.poa(car))
    assert ok.is_valid_prepare_qc(qc)
    assert ok.validate_car(car, MAX_TXS, MAX_BYTES) is None
    assert ok.validate_timeout(timeout) is None
    assert not other_checker.is_valid_poa(keys.poa(car))
    assert not other_checker.is_valid_prepare_qc(qc)
    assert other_checker.validate_car(car, MAX_TXS, MAX_BYTES) == "bad car signature"
    assert other_checker.validate_timeout(timeout) == "bad timeout signature"


def test_votes_do_not_transfer_across_slot_view_phase_or_cut(keys: Keys) -> None:
    """A vote's signature is valid only for its own phase, slot, view and cut digest."""
    ok = checker(keys)
    cut_a = keys.cut(keys.tip(keys.car(0, 1)))
    cut_b = keys.cut(keys.tip(keys.car(1, 1)))
    vote = keys.vote(MsgKind.PREPARE_VOTE, 2, 1, cut_a, 3)
    assert ok.is_valid_vote(vote)
    for moved in (
        replace(vote, slot=3),
        replace(vote, view=2),
        replace(vote, slot=1, view=2),
        replace(vote, phase=MsgKind.CONFIRM_ACK),
        replace(vote, cut_digest=cut_b.digest),
        replace(vote, voter=2),
        replace(vote, phase=MsgKind.TIMEOUT),
    ):
        assert not ok.is_valid_vote(moved), moved


def test_a_proposal_signature_does_not_make_a_vote(keys: Keys) -> None:
    """The leader's PROPOSAL signature over a cut is not a PREPARE_VOTE for it."""
    ok = checker(keys)
    prop = keys.proposal(1, 0, keys.cut())
    vote = keys.vote(MsgKind.PREPARE_VOTE, 1, 0, prop.cut, prop.leader)
    assert ok.is_valid_vote(vote)
    assert not ok.is_valid_vote(replace(vote, signature=prop.signature))


# ---------------------------------------------------------------- PoAs and cars


def test_poa_needs_f_plus_one_distinct_ascending_valid_signers(keys: Keys) -> None:
    """A PoA is valid with f+1 distinct ascending signers, and not with fewer or duplicates."""
    ok = checker(keys)
    car = keys.car(2, 1)
    assert ok.is_valid_poa(keys.poa(car, (0, 1)))
    assert ok.is_valid_poa(keys.poa(car, (0, 1, 2, 3)))
    assert not ok.is_valid_poa(keys.poa(car, (1,)))
    dup = keys.poa(car, (1, 1))
    assert not ok.is_valid_poa(dup)
    unordered = keys.poa(car, (2, 1))
    assert not ok.is_valid_poa(unordered)
    poa = keys.poa(car, (0, 1))
    assert not ok.is_valid_poa(replace(poa, signatures=poa.signatures[:1]))
    assert not ok.is_valid_poa(replace(poa, signers=(0, 4), signatures=poa.signatures))
    assert not ok.is_valid_poa(replace(poa, signatures=(poa.signatures[1], poa.signatures[0])))
    assert not ok.is_valid_poa(replace(poa, pos=2))
    assert not ok.is_valid_poa(replace(poa, pos=0))
    assert not ok.is_valid_poa(replace(poa, lane=7))
    assert not ok.is_valid_poa(replace(poa, car_digest=b"\x01" * 31))
    assert not ok.is_valid_poa(replace(poa, signers=(), signatures=()))


def test_poa_quorum_is_by_weight() -> None:
    """With stake weights one heavy signer can reach f+1 weight while two light ones cannot."""
    keys = Keys(4, weights=[1, 1, 1, 4])  # W = 7, F = 2, PoA = 3
    ok = checker(keys)
    car = keys.car(0, 1)
    assert ok.is_valid_poa(keys.poa(car, (3,)))
    assert not ok.is_valid_poa(keys.poa(car, (0, 1)))
    assert ok.is_valid_poa(keys.poa(car, (0, 1, 2)))


def test_car_checks(keys: Keys) -> None:
    """validate_car names the first broken rule of a car, and None for an honest one."""
    ok = checker(keys)
    first, second = keys.lane(1, 2)
    assert ok.validate_car(first, MAX_TXS, MAX_BYTES) is None
    assert ok.validate_car(second, MAX_TXS, MAX_BYTES) is None
    cases = {
        "unknown lane": replace(first, lane=4),
        "car position below 1": replace(first, pos=0),
        "car too large": keys.car(1, 1, txs=(b"x",) * (MAX_TXS + 1)),
        "first car must have the zero parent and no parent PoA": keys.car(1, 1, b"\x01" * 32),
        "bad parent digest": keys.car(1, 2, b"\x01" * 31),
        "car digest does not match its content": replace(first, txs=(b"other",)),
        "bad car signature": keys.car(1, 1, signer=2),
        "bad parent PoA": keys.car(1, 2, first.digest, parent_poa=keys.poa(first, (0,))),
    }
    for reason, car in cases.items():
        assert ok.validate_car(car, MAX_TXS, MAX_BYTES) == reason
    big = keys.car(1, 1, txs=(b"x" * (MAX_BYTES + 1),))
    assert ok.validate_car(big, MAX_TXS, MAX_BYTES) == "car too large"
    wrong_poa = keys.car(1, 2, first.digest, parent_poa=keys.poa(keys.car(1, 1, txs=(b"y",))))
    assert ok.validate_car(wrong_poa, MAX_TXS, MAX_BYTES) == "bad parent PoA"


# ---------------------------------------------------------------- cuts and proposals


def test_cut_checks(keys: Keys) -> None:
    """A cut needs one tip per lane in order, empty tips bare, others with a matching PoA."""
    ok = checker(keys)
    car = keys.car(2, 1)
    good = keys.cut(keys.tip(car))
    assert ok.validate_cut(good) is None
    assert ok.validate_cut(keys.cut()) is None
    tips = list(good.tips)
    empty = CutTip(3, 0, ZERO_DIGEST, None)
    bad_cuts = [
        Cut(tuple(tips[:3])),
        Cut((*tips, CutTip(4, 0, ZERO_DIGEST, None))),
        Cut((tips[1], tips[0], tips[2], tips[3])),
        Cut((*tips[:3], replace(empty, car_digest=b"\x01" * 32))),
        Cut((*tips[:3], replace(empty, poa=keys.poa(keys.car(3, 1))))),
        Cut((*tips[:2], replace(tips[2], poa=None), tips[3])),
        Cut((*tips[:2], replace(tips[2], pos=2), tips[3])),
        Cut((*tips[:2], replace(tips[2], poa=keys.poa(car, (0,))), tips[3])),
        Cut((*tips[:2], replace(tips[2], poa=keys.poa(keys.car(1, 1))), tips[3])),
    ]
    for cut in bad_cuts:
        assert ok.validate_cut(cut) is not None, cut


def test_proposal_checks(keys: Keys) -> None:
    """A proposal must come from Leader(slot, view), be signed by it and carry a valid cut."""
    ok = checker(keys)
    cut = keys.cut()
    assert ok.validate_proposal(keys.proposal(1, 0, cut)) is None
    assert ok.validate_proposal(keys.proposal(1, 0, cut, leader=2)) is not None
    assert ok.validate_proposal(keys.proposal(1, 0, cut, signer=2)) == "bad proposal signature"
    assert ok.validate_proposal(keys.proposal(0, 0, cut)) == "bad slot or view"
    assert ok.validate_proposal(keys.proposal(1, 0, Cut(cut.tips[:3]))) is not None


# ---------------------------------------------------------------- QCs, timeouts and TCs


def test_commit_qc_is_fast_with_all_prepare_votes_or_slow_with_a_quorum_of_acks(
    keys: Keys,
) -> None:
    """Commit QCs: n PrepareVotes (fast) or 2f+1 ConfirmAcks (slow); 2f+1 PrepareVotes is not."""
    ok = checker(keys)
    cut = keys.cut()
    prep3 = keys.qc(MsgKind.PREPARE_VOTE, 1, 0, cut, (0, 1, 2))
    prep4 = keys.qc(MsgKind.PREPARE_VOTE, 1, 0, cut, (0, 1, 2, 3))
    ack3 = keys.qc(MsgKind.CONFIRM_ACK, 1, 0, cut, (0, 2, 3))
    ack2 = keys.qc(MsgKind.CONFIRM_ACK, 1, 0, cut, (0, 2))
    assert ok.is_valid_prepare_qc(prep3)
    assert not ok.is_valid_prepare_qc(ack3)
    assert ok.is_valid_commit_qc(prep4)
    assert not ok.is_valid_commit_qc(prep3)
    assert ok.is_valid_commit_qc(ack3)
    assert not ok.is_valid_commit_qc(ack2)
    assert not ok.is_valid_commit_qc(replace(ack3, phase=MsgKind.TIMEOUT))
    assert not ok.is_valid_commit_qc(replace(ack3, cut_digest=b"\x01" * 32))
    assert not ok.is_valid_commit_qc(replace(ack3, signers=(0, 2, 2)))


def test_timeout_checks(keys: Keys) -> None:
    """A timeout's lock must be a valid PrepareQC for its slot, not later, with its cut."""
    ok = checker(keys)
    cut = keys.cut(keys.tip(keys.car(0, 1)))
    other = keys.cut()
    qc = keys.prepare_qc(1, 0, cut)
    prop = keys.proposal(1, 0, cut)
    assert ok.validate_timeout(keys.timeout(1, 0, 2, qc, cut, prop)) is None
    assert ok.validate_timeout(keys.timeout(1, 3, 2, qc, cut, prop)) is None
    bad = {
        "high QC and its cut must come together": keys.timeout(1, 0, 2, qc, None),
        "high QC for another slot or a later view": keys.timeout(2, 0, 2, qc, cut),
        "invalid high QC": keys.timeout(1, 0, 2, qc, other),
        "high proposal for another slot or a later view": keys.timeout(
            1, 0, 2, high_prop=keys.proposal(1, 1, cut)
        ),
    }
    for reason, timeout in bad.items():
        assert ok.validate_timeout(timeout) == reason
    later_qc = keys.timeout(1, 0, 2, keys.prepare_qc(1, 1, cut), cut)
    assert ok.validate_timeout(later_qc) == "high QC for another slot or a later view"
    weak_qc = keys.prepare_qc(1, 0, cut, (0, 1))
    assert ok.validate_timeout(keys.timeout(1, 0, 2, weak_qc, cut)) == "invalid high QC"
    forged_prop = keys.proposal(1, 0, cut, signer=3)
    reason = ok.validate_timeout(keys.timeout(1, 0, 2, high_prop=forged_prop))
    assert reason is not None and reason.startswith("invalid high proposal")
    signed = keys.timeout(1, 0, 2, qc, cut)
    assert ok.validate_timeout(replace(signed, high_qc=None, high_qc_cut=None)) is not None
    assert ok.validate_timeout(replace(signed, voter=3)) == "bad timeout signature"


def test_tc_checks(keys: Keys) -> None:
    """A TC needs a quorum of distinct ascending voters, all for its (slot, view), all valid."""
    ok = checker(keys)
    t = {v: keys.timeout(1, 2, v) for v in range(4)}
    assert ok.validate_tc(TC(1, 2, (t[0], t[1], t[3]))) is None
    assert ok.validate_tc(TC(1, 2, (t[0], t[1]))) == "TC below quorum"
    assert ok.validate_tc(TC(1, 2, (t[0], t[1], t[1]))) is not None
    assert ok.validate_tc(TC(1, 2, (t[1], t[0], t[3]))) is not None
    mixed = TC(1, 2, (t[0], t[1], keys.timeout(1, 1, 3)))
    assert ok.validate_tc(mixed) == "TC mixes slots or views"
    assert ok.validate_tc(TC(1, 3, (t[0], t[1], t[3]))) == "TC mixes slots or views"
    forged = TC(1, 2, (t[0], t[1], replace(t[3], signature=b"\x00" * len(t[3].signature))))
    reason = ok.validate_tc(forged)
    assert reason is not None and reason.startswith("TC holds an invalid timeout")
    assert ok.validate_tc(TC(1, 2, ())) == "TC below quorum"


def test_unknown_signers_never_count(keys: Keys) -> None:
    """Signer indices outside the committee make a certificate invalid instead of raising."""
    ok = checker(keys)
    poa = keys.poa(keys.car(0, 1), (0, 1))
    assert not ok.is_valid_poa(PoA(0, 1, poa.car_digest, (0, 1, 99), (*poa.signatures, b"")))
    assert not ok.is_valid_vote(
        replace(keys.vote(MsgKind.PREPARE_VOTE, 1, 0, keys.cut(), 0), voter=99)
    )
