"""Committee quorums (unit and weighted stake), leader rotation and configuration errors."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.types.committee import Committee, Validator
from node.types.errors import ConfigError


def committee(weights: list[int], chain_id: int = 1) -> Committee:
    validators = tuple(Validator(i, f"v{i}", b"k" * 32, w) for i, w in enumerate(weights))
    return Committee(chain_id, validators)


@pytest.mark.parametrize(
    ("n", "f"),
    [(1, 0), (4, 1), (7, 2), (10, 3)],
)
def test_unit_weight_quorums(n: int, f: int) -> None:
    """With unit weights the quorums are f, 2f+1 (PrepareQC/TC), f+1 (PoA) and n (fast)."""
    c = committee([1] * n)
    assert c.size == n
    assert c.total_weight == n
    assert c.max_faulty == f
    assert c.quorum == 2 * f + 1
    assert c.poa_quorum == f + 1
    assert c.fast_quorum == n


@pytest.mark.parametrize(
    ("weights", "faulty", "quorum", "poa"),
    [
        ([1, 1, 1, 10], 4, 9, 5),  # W=13
        ([2, 2, 2, 2], 2, 6, 3),  # W=8
        ([5], 1, 4, 2),  # W=5, one validator: its own weight is every quorum
        ([1, 2, 3, 4, 5, 6, 7], 9, 19, 10),  # W=28
    ],
)
def test_weighted_quorums_follow_sei(
    weights: list[int], faulty: int, quorum: int, poa: int
) -> None:
    """Weighted quorums are F = floor((W-1)/3), Q = W - F, PoA = F + 1, fast = W."""
    c = committee(weights)
    assert c.max_faulty == faulty
    assert c.quorum == quorum
    assert c.poa_quorum == poa
    assert c.fast_quorum == sum(weights)


@settings(derandomize=True)
@given(st.lists(st.integers(1, 50), min_size=1, max_size=12))
def test_quorums_intersect_in_a_correct_validator(weights: list[int]) -> None:
    """Any two quorums overlap by more than F weight, and a PoA always outweighs F."""
    c = committee(weights)
    assert 2 * c.quorum - c.total_weight > c.max_faulty
    assert c.poa_quorum > c.max_faulty
    assert c.quorum <= c.fast_quorum
    assert 3 * c.max_faulty < c.total_weight


def test_weight_of_counts_distinct_known_signers() -> None:
    """weight_of counts each signer once and ignores indices outside the committee."""
    c = committee([1, 2, 3, 4])
    assert c.weight_of([]) == 0
    assert c.weight_of([3]) == 4
    assert c.weight_of([1, 1, 1]) == 2
    assert c.weight_of([0, 3, 3, 7, -1]) == 5


def test_membership() -> None:
    """is_member accepts exactly the indices 0..n-1."""
    c = committee([1] * 4)
    assert [i for i in range(-2, 7) if c.is_member(i)] == [0, 1, 2, 3]
    assert list(c.indices()) == [0, 1, 2, 3]


@pytest.mark.parametrize("n", [1, 4, 7])
def test_leader_rotates_round_robin_over_slot_and_view(n: int) -> None:
    """Leader(s, v) = (s + v) mod n: every validator leads once in n consecutive views."""
    c = committee([1] * n)
    for slot in range(1, 6):
        leaders = [c.leader(slot, view) for view in range(n)]
        assert sorted(leaders) == list(range(n))
        assert leaders[0] == slot % n
    assert c.leader(3, 2) == c.leader(2, 3) == c.leader(5, 0)


def test_empty_committee_is_a_config_error() -> None:
    """A committee without validators is rejected."""
    with pytest.raises(ConfigError, match="at least one"):
        Committee(1, ())


def test_out_of_order_indices_are_a_config_error() -> None:
    """Validator indices must equal their position."""
    with pytest.raises(ConfigError, match="index"):
        Committee(1, (Validator(0, "a", b""), Validator(2, "b", b"")))


@pytest.mark.parametrize("weight", [0, -3])
def test_non_positive_weight_is_a_config_error(weight: int) -> None:
    """Every validator must have positive weight."""
    with pytest.raises(ConfigError, match="weight"):
        Committee(1, (Validator(0, "a", b""), Validator(1, "b", b"", weight)))


def test_committee_is_frozen_and_hashable() -> None:
    """Committees are immutable values that compare by content."""
    a, b = committee([1, 2]), committee([1, 2])
    assert a == b
    assert hash(a) == hash(b)
    with pytest.raises(AttributeError):
        a.chain_id = 2  # type: ignore[misc]
