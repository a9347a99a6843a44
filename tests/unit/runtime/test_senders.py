"""The sender cache hands a recovered transaction to execution once, and stays bounded."""

from __future__ import annotations

from node.execution.tx import UndecodableTx
from node.runtime.senders import SenderCache


def undecodable(i: int) -> UndecodableTx:
    return UndecodableTx(b"raw-%d" % i, "bad")


def test_take_returns_cached_decodings_once_and_reports_the_missing() -> None:
    cache = SenderCache()
    cache.put([undecodable(1), undecodable(2)])
    found, missing = cache.take([b"raw-1", b"raw-3", b"raw-2"])
    assert [tx.raw if tx else None for tx in found] == [b"raw-1", None, b"raw-2"]
    assert missing == [1]
    again, missing_again = cache.take([b"raw-1"])
    assert again == [None] and missing_again == [0]  # taken: a duplicate is recovered anew
    assert (cache.hits, cache.misses) == (2, 2)


def test_the_oldest_entries_go_first_beyond_capacity() -> None:
    cache = SenderCache(capacity=3)
    cache.put(undecodable(i) for i in range(5))
    assert len(cache) == 3
    found, missing = cache.take([b"raw-0", b"raw-1", b"raw-4"])
    assert missing == [0, 1]
    assert found[2] is not None and found[2].raw == b"raw-4"
