"""Peer penalties (a window of penalties bans, bans double and expire) and reconnect backoff."""

from __future__ import annotations

import random

import pytest

from node.net.peers import Backoff, PeerScore
from node.net.transport import NetCounters, TransportLimits

LIMITS = TransportLimits(
    penalty_threshold=3, penalty_window=10.0, ban_duration=30.0, max_ban_duration=100.0
)


def test_threshold_penalties_within_the_window_ban_the_peer() -> None:
    """Three penalties inside ten seconds ban; the third call reports it; others unaffected."""
    counters = NetCounters()
    score = PeerScore(LIMITS, counters)
    assert not score.penalize(1, now=0.0)
    assert not score.penalize(1, now=5.0)
    assert score.penalize(1, now=9.0)
    assert score.is_banned(1, now=9.0)
    assert not score.is_banned(2, now=9.0)
    assert (counters.penalties, counters.bans) == (3, 1)


def test_penalties_older_than_the_window_are_forgotten() -> None:
    """Penalties spread wider than the window never add up to a ban."""
    score = PeerScore(LIMITS, NetCounters())
    assert not any(score.penalize(1, now=t * 6.0) for t in range(10))


def test_a_ban_expires_and_each_further_ban_lasts_twice_as_long_up_to_the_cap() -> None:
    """Ban periods are 30 s, 60 s, then capped at 100 s; a banned peer stays banned."""
    score = PeerScore(LIMITS, NetCounters())
    now = 0.0
    for expected in (30.0, 60.0, 100.0, 100.0):
        for _ in range(3):
            score.penalize(7, now)
        assert score.banned_until(7) == now + expected
        assert score.penalize(7, now + 1)  # while banned, still banned
        now += expected
        assert not score.is_banned(7, now)


def test_backoff_grows_exponentially_with_jitter_and_is_capped() -> None:
    """Attempt k waits within [d/2, d] for d = min(cap, base * 2^k); reset starts over."""
    backoff = Backoff(0.1, 1.0, random.Random(5))
    for k in range(8):
        ceiling = min(1.0, 0.1 * 2**k)
        assert ceiling / 2 <= backoff.next_delay() <= ceiling
    backoff.reset()
    assert backoff.attempt == 0
    assert 0.05 <= backoff.next_delay() <= 0.1


def test_backoff_jitter_is_reproducible_from_the_seed() -> None:
    """The same seed gives the same delays; another seed gives others."""

    def delays(seed: int) -> list[float]:
        backoff = Backoff(0.05, 5.0, random.Random(seed))
        return [backoff.next_delay() for _ in range(10)]

    assert delays(1) == delays(1)
    assert delays(1) != delays(2)


def test_backoff_rejects_nonsense_bounds() -> None:
    """A zero base or a cap below the base is a configuration error."""
    with pytest.raises(ValueError, match="backoff"):
        Backoff(0.0, 1.0, random.Random(0))
    with pytest.raises(ValueError, match="backoff"):
        Backoff(2.0, 1.0, random.Random(0))
