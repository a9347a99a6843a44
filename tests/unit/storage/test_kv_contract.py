"""The KeyValueStore contract, run against every implementation (MemoryKV, LevelDBKV).

A new implementation or wrapper joins by adding a factory to ``FACTORIES``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from node.storage.kv import KeyValueStore, LevelDBKV, MemoryKV
from node.types.errors import FatalError

Factory = Callable[[Path], KeyValueStore]

FACTORIES: dict[str, Factory] = {
    "memory": lambda _path: MemoryKV(),
    "leveldb": lambda path: LevelDBKV(path / "db"),
}


@pytest.fixture(params=list(FACTORIES))
def kv(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KeyValueStore]:
    store = FACTORIES[request.param](tmp_path)
    yield store
    store.close()


def scan(kv: KeyValueStore) -> list[tuple[bytes, bytes]]:
    return list(kv.iterate(b"", b"\xff" * 8))


def test_get_of_missing_key_is_none(kv: KeyValueStore) -> None:
    """A key never written reads as None."""
    assert kv.get(b"missing") is None


def test_put_then_get_and_overwrite(kv: KeyValueStore) -> None:
    """A put is visible to the next get, and a second put replaces the value."""
    kv.put(b"k", b"one")
    assert kv.get(b"k") == b"one"
    kv.put(b"k", b"two")
    assert kv.get(b"k") == b"two"


def test_empty_key_and_value_are_allowed(kv: KeyValueStore) -> None:
    """The empty byte string is a valid key and a valid value, distinct from missing."""
    kv.put(b"", b"")
    assert kv.get(b"") == b""
    assert scan(kv) == [(b"", b"")]


def test_delete_removes_and_missing_delete_is_a_no_op(kv: KeyValueStore) -> None:
    """Deleting a key removes it; deleting a missing key changes nothing."""
    kv.put(b"a", b"1")
    kv.delete(b"a")
    kv.delete(b"never")
    assert kv.get(b"a") is None
    assert scan(kv) == []


@pytest.mark.parametrize("sync", [False, True])
def test_write_applies_puts_and_deletes_in_order(kv: KeyValueStore, sync: bool) -> None:
    """A batch applies in order: the later entry for a key wins, None deletes."""
    kv.put(b"gone", b"x")
    kv.write(
        [(b"a", b"1"), (b"b", b"2"), (b"a", b"3"), (b"gone", None), (b"b", None), (b"b", b"4")],
        sync=sync,
    )
    assert scan(kv) == [(b"a", b"3"), (b"b", b"4")]


def test_empty_batch_changes_nothing(kv: KeyValueStore) -> None:
    """Writing an empty batch is allowed and leaves the store as it was."""
    kv.put(b"a", b"1")
    kv.write([], sync=True)
    assert scan(kv) == [(b"a", b"1")]


def test_batch_with_a_bad_entry_changes_nothing(kv: KeyValueStore) -> None:
    """A batch holding a non-bytes entry is refused as a whole with TypeError."""
    kv.put(b"a", b"1")
    with pytest.raises(TypeError):
        kv.write([(b"a", b"2"), ("text", b"3")])  # type: ignore[list-item]
    assert scan(kv) == [(b"a", b"1")]


def test_iterate_is_half_open_and_in_byte_order(kv: KeyValueStore) -> None:
    """iterate(start, stop) yields start <= key < stop ascending, or descending with reverse."""
    keys = [b"\x01\x00", b"\x00\xff", b"\x01", b"\x02", b"\x01\x00\x00", b"\x00"]
    kv.write([(k, k + b"!") for k in keys])
    got = [k for k, _ in kv.iterate(b"\x00\xff", b"\x02")]
    assert got == [b"\x00\xff", b"\x01", b"\x01\x00", b"\x01\x00\x00"]
    assert [k for k, _ in kv.iterate(b"\x00\xff", b"\x02", reverse=True)] == got[::-1]
    assert all(v == k + b"!" for k, v in kv.iterate(b"", b"\xff"))


def test_iterate_with_empty_or_inverted_range_yields_nothing(kv: KeyValueStore) -> None:
    """A range whose stop is not above its start is empty, in both directions."""
    kv.write([(b"a", b"1"), (b"b", b"2")])
    for reverse in (False, True):
        assert list(kv.iterate(b"b", b"b", reverse=reverse)) == []
        assert list(kv.iterate(b"b", b"a", reverse=reverse)) == []


def test_iterate_reads_the_store_as_of_the_call(kv: KeyValueStore) -> None:
    """Writes made after iterate() is called are not seen by that iteration."""
    kv.write([(b"a", b"1"), (b"b", b"2"), (b"c", b"3")])
    it = kv.iterate(b"a", b"z")
    kv.write([(b"b", None), (b"bb", b"new"), (b"c", b"changed")])
    assert list(it) == [(b"a", b"1"), (b"b", b"2"), (b"c", b"3")]


def test_writes_during_iteration_do_not_disturb_it(kv: KeyValueStore) -> None:
    """Deleting every key while walking a scan still visits each key once."""
    kv.write([(bytes([i]), b"v") for i in range(50)])
    seen = []
    for key, _ in kv.iterate(b"", b"\xff"):
        kv.delete(key)
        seen.append(key)
    assert seen == [bytes([i]) for i in range(50)]
    assert scan(kv) == []


def test_large_values_round_trip(kv: KeyValueStore) -> None:
    """A multi-megabyte value is stored and read back intact."""
    big = bytes(range(256)) * 16_384
    kv.write([(b"big", big)], sync=True)
    assert kv.get(b"big") == big


def test_use_after_close_is_fatal(kv: KeyValueStore) -> None:
    """Every operation on a closed store raises FatalError; closing twice is harmless."""
    kv.close()
    kv.close()
    with pytest.raises(FatalError, match="closed"):
        kv.get(b"a")
    with pytest.raises(FatalError, match="closed"):
        kv.put(b"a", b"1")
    with pytest.raises(FatalError, match="closed"):
        kv.write([(b"a", None)], sync=True)
    with pytest.raises(FatalError, match="closed"):
        kv.iterate(b"", b"\xff")


def test_leveldb_keeps_data_across_reopen(tmp_path: Path) -> None:
    """What a LevelDBKV wrote is there when the directory is opened again."""
    with LevelDBKV(tmp_path / "db") as kv:
        kv.write([(b"a", b"1"), (b"b", b"2")], sync=True)
        kv.put(b"c", b"3")
        kv.delete(b"a")
    with LevelDBKV(tmp_path / "db") as kv:
        assert scan(kv) == [(b"b", b"2"), (b"c", b"3")]


def test_leveldb_second_open_of_one_directory_is_fatal(tmp_path: Path) -> None:
    """Opening a directory that is already open fails with a message about the lock."""
    with LevelDBKV(tmp_path / "db"), pytest.raises(FatalError, match="is locked"):
        LevelDBKV(tmp_path / "db")


def test_leveldb_creates_missing_parent_directories(tmp_path: Path) -> None:
    """A database path whose parents do not exist yet is created."""
    with LevelDBKV(tmp_path / "a" / "b" / "db") as kv:
        kv.put(b"k", b"v")
    assert (tmp_path / "a" / "b" / "db" / "CURRENT").exists()


def test_reverse_scan_includes_a_lone_start_key(kv: KeyValueStore) -> None:
    """A reverse scan whose only key in range is ``start`` yields it (plyvel 1.5.1 drops it)."""
    kv.write([(b"", b"e"), (b"\x01", b"1"), (b"\x03", b"3")])
    assert list(kv.iterate(b"\x01", b"\x02", reverse=True)) == [(b"\x01", b"1")]
    assert list(kv.iterate(b"", b"\x01", reverse=True)) == [(b"", b"e")]
    assert list(kv.iterate(b"\x02", b"\x03", reverse=True)) == []
