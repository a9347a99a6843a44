"""The KeyValueStore port, its in-memory twin and its LevelDB adapter (plyvel).

Contract (tests/unit/storage/test_kv_contract.py runs it against both):
- keys and values are ``bytes``; ``get`` of a missing key is None; deleting a missing key is
  a no-op;
- ``write`` applies a batch atomically and in order (a later entry for the same key wins);
  a None value deletes; ``sync=True`` returns only once the batch is on stable storage;
- ``iterate(start, stop)`` yields ``(key, value)`` for ``start <= key < stop`` in byte order
  (descending with ``reverse``), as the store was when ``iterate`` was called;
- ``compact_range(start, stop)`` rewrites the keys in that range so space freed by deletes
  is returned (LevelDB); it changes no observable content;
- any storage failure (disk full, corruption, a lock held by another process, a closed
  store) raises ``FatalError`` with a message naming the database: the node must stop.
"""

from __future__ import annotations

import os
from bisect import bisect_left, insort
from collections.abc import Iterator, Sequence
from typing import Any, Final, Protocol

import plyvel

from node.types.errors import FatalError

Batch = Sequence[tuple[bytes, bytes | None]]

DEFAULT_CACHE_BYTES: Final = 64 << 20
DEFAULT_BLOOM_BITS: Final = 10
DEFAULT_WRITE_BUFFER_BYTES: Final = 16 << 20


class KeyValueStore(Protocol):
    """An ordered map of bytes to bytes with atomic batches (the storage port)."""

    def get(self, key: bytes) -> bytes | None: ...

    def put(self, key: bytes, value: bytes) -> None: ...

    def delete(self, key: bytes) -> None: ...

    def write(self, batch: Batch, sync: bool = False) -> None: ...

    def iterate(
        self, start: bytes, stop: bytes, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]: ...

    def compact_range(self, start: bytes, stop: bytes) -> None: ...

    def close(self) -> None: ...


def _check_batch(batch: Batch) -> None:
    for key, value in batch:
        if type(key) is not bytes or (value is not None and type(value) is not bytes):
            raise TypeError(f"batch entries must be (bytes, bytes | None), got {key!r}")


class MemoryKV:
    """The in-memory twin: a dict plus a sorted key list. Not durable; for tests and the sim."""

    def __init__(self) -> None:
        self._data: dict[bytes, bytes] = {}
        self._keys: list[bytes] = []
        self._closed = False

    def get(self, key: bytes) -> bytes | None:
        self._check_open()
        return self._data.get(key)

    def put(self, key: bytes, value: bytes) -> None:
        self.write([(key, value)])

    def delete(self, key: bytes) -> None:
        self.write([(key, None)])

    def write(self, batch: Batch, sync: bool = False) -> None:
        self._check_open()
        _check_batch(batch)
        for key, value in batch:
            if value is None:
                if self._data.pop(key, None) is not None:
                    del self._keys[bisect_left(self._keys, key)]
            else:
                if key not in self._data:
                    insort(self._keys, key)
                self._data[key] = value

    def iterate(
        self, start: bytes, stop: bytes, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        self._check_open()
        keys = self._keys[bisect_left(self._keys, start) : bisect_left(self._keys, stop)]
        # copy now: the contract reads the store as it was when ``iterate`` was called
        items = [(k, self._data[k]) for k in (reversed(keys) if reverse else keys)]
        return iter(items)

    def compact_range(self, start: bytes, stop: bytes) -> None:
        self._check_open()

    def close(self) -> None:
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise FatalError("in-memory database is closed")

    def __enter__(self) -> MemoryKV:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LevelDBKV:
    """A LevelDB database at ``path`` (created if missing) with a bloom filter and LRU cache.

    Only one process may open a database at a time: LevelDB holds a lock file.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        bloom_bits: int = DEFAULT_BLOOM_BITS,
        write_buffer_bytes: int = DEFAULT_WRITE_BUFFER_BYTES,
    ) -> None:
        self.path = os.fspath(path)
        try:
            os.makedirs(self.path, exist_ok=True)
            self._db: Any = plyvel.DB(
                self.path,
                create_if_missing=True,
                bloom_filter_bits=bloom_bits,
                lru_cache_size=cache_bytes,
                write_buffer_size=write_buffer_bytes,
            )
        except (plyvel.Error, OSError) as exc:
            raise FatalError(describe_error(self.path, "opening", exc)) from exc

    def get(self, key: bytes) -> bytes | None:
        db = self._open_db()
        try:
            value: bytes | None = db.get(key)
        except plyvel.Error as exc:
            raise FatalError(describe_error(self.path, "reading", exc)) from exc
        return value

    def put(self, key: bytes, value: bytes) -> None:
        db = self._open_db()
        try:
            db.put(key, value)
        except plyvel.Error as exc:
            raise FatalError(describe_error(self.path, "writing to", exc)) from exc

    def delete(self, key: bytes) -> None:
        db = self._open_db()
        try:
            db.delete(key)
        except plyvel.Error as exc:
            raise FatalError(describe_error(self.path, "writing to", exc)) from exc

    def write(self, batch: Batch, sync: bool = False) -> None:
        db = self._open_db()
        # a bad entry raises TypeError before wb.write(), so the batch is dropped whole
        try:
            wb = db.write_batch(sync=sync)
            for key, value in batch:
                if value is None:
                    wb.delete(key)
                else:
                    wb.put(key, value)
            wb.write()
        except plyvel.Error as exc:
            raise FatalError(describe_error(self.path, "writing to", exc)) from exc

    def iterate(
        self, start: bytes, stop: bytes, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        db = self._open_db()
        if stop <= start:
            return iter(())
        try:
            # created here, not lazily: LevelDB's iterator reads an implicit snapshot taken now.
            # Reverse scans get no lower bound from plyvel (1.5.1 yields nothing when the only
            # key in range equals ``start``): _drain applies it instead.
            lower = None if reverse else start
            it = db.iterator(start=lower, stop=stop, reverse=reverse)
        except plyvel.Error as exc:
            raise FatalError(describe_error(self.path, "scanning", exc)) from exc
        return self._drain(it, start if reverse else None)

    def _drain(self, it: Any, lower: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        try:
            with it:
                for key, value in it:
                    if lower is not None and key < lower:
                        return
                    yield key, value
        except plyvel.Error as exc:
            raise FatalError(describe_error(self.path, "scanning", exc)) from exc
        except RuntimeError as exc:
            # plyvel raises RuntimeError when the database was closed under the iterator
            raise FatalError(f"database at {self.path} was closed during a scan") from exc

    def compact_range(self, start: bytes, stop: bytes) -> None:
        db = self._open_db()
        try:
            db.compact_range(start=start, stop=stop)
        except plyvel.Error as exc:
            raise FatalError(describe_error(self.path, "compacting", exc)) from exc

    def close(self) -> None:
        self._db.close()

    def _open_db(self) -> Any:
        if self._db.closed:
            raise FatalError(f"database at {self.path} is closed")
        return self._db

    def __enter__(self) -> LevelDBKV:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def describe_error(path: str, action: str, exc: BaseException) -> str:
    """An operator-facing sentence for a storage failure while ``action`` ("writing to"):
    what happened, and where."""
    raw = exc.args[0] if exc.args else exc
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(exc)
    lower = text.lower()
    if "lock" in lower and ("held" in lower or "unavailable" in lower):
        return (
            f"database at {path} is locked by another process "
            f"(is another node running on this data directory?): {text}"
        )
    if "no space left" in lower:
        return f"disk full while {action} the database at {path}: {text}"
    if "read-only file system" in lower or "permission denied" in lower:
        return f"database at {path} is not writable: {text}"
    if isinstance(exc, plyvel.CorruptionError) or "corrupt" in lower:
        return f"database at {path} is corrupted (restore it or resync the node): {text}"
    return f"storage failure while {action} the database at {path}: {text}"
