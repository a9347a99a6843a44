"""MemoryKV and LevelDBKV agree on every random sequence of puts, deletes, batches, scans
and reopenings (the in-memory twin is a faithful model of the real store)."""

from __future__ import annotations

import os
import shutil
import tempfile

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from node.storage.kv import LevelDBKV, MemoryKV

SHM = "/dev/shm"

# a small alphabet, so keys collide, share prefixes and sit next to each other in order
keys = st.binary(max_size=3).map(lambda b: bytes(x % 4 for x in b)) | st.sampled_from(
    [b"", b"\x00", b"\xff", b"\x00\xff", b"\xff\x00"]
)
# now and then a value larger than a LevelDB block (4 KiB)
values = st.binary(max_size=16) | st.integers(4000, 9000).map(lambda n: b"v" * n)
batches = st.lists(st.tuples(keys, st.none() | values), max_size=8)


class KVAgreement(RuleBasedStateMachine):
    """Drive both stores with the same operations and compare every observable result."""

    def __init__(self) -> None:
        super().__init__()
        # on tmpfs when there is one: this compares results, and fsync would only add minutes
        self.dir = tempfile.mkdtemp(prefix="kv-agreement-", dir=SHM if os.path.isdir(SHM) else None)
        self.real = LevelDBKV(self.dir, cache_bytes=1 << 20)
        self.model = MemoryKV()

    @rule(key=keys, value=values)
    def put(self, key: bytes, value: bytes) -> None:
        self.real.put(key, value)
        self.model.put(key, value)

    @rule(key=keys)
    def delete(self, key: bytes) -> None:
        self.real.delete(key)
        self.model.delete(key)

    @rule(batch=batches, sync=st.booleans())
    def write(self, batch: list[tuple[bytes, bytes | None]], sync: bool) -> None:
        self.real.write(batch, sync=sync)
        self.model.write(batch, sync=sync)

    @rule(key=keys)
    def get(self, key: bytes) -> None:
        assert self.real.get(key) == self.model.get(key)

    @rule(start=keys, stop=keys, reverse=st.booleans())
    def iterate(self, start: bytes, stop: bytes, reverse: bool) -> None:
        got = list(self.real.iterate(start, stop, reverse=reverse))
        assert got == list(self.model.iterate(start, stop, reverse=reverse))

    @rule(start=keys, stop=keys, batch=batches)
    def iterate_across_a_write(
        self, start: bytes, stop: bytes, batch: list[tuple[bytes, bytes | None]]
    ) -> None:
        real_it = self.real.iterate(start, stop)
        model_it = self.model.iterate(start, stop)
        self.real.write(batch)
        self.model.write(batch)
        assert list(real_it) == list(model_it)

    @rule()
    def reopen(self) -> None:
        self.real.close()
        self.real = LevelDBKV(self.dir, cache_bytes=1 << 20)

    @invariant()
    def same_contents(self) -> None:
        everything = (b"", b"\xff" * 4)
        assert list(self.real.iterate(*everything)) == list(self.model.iterate(*everything))

    def teardown(self) -> None:
        self.real.close()
        shutil.rmtree(self.dir, ignore_errors=True)


KVAgreement.TestCase.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
test_memory_and_leveldb_agree = KVAgreement.TestCase
