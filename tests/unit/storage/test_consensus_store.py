"""ConsensusStore: a step's Persist effects become one synced batch and load back unchanged."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from node.crypto.hashing import ZERO_DIGEST
from node.protocol.effects import Persist, PersistKey
from node.protocol.ordering import OrderingCheckpoint
from node.protocol.replica import Replica
from node.sim.harness import run_scenario
from node.sim.scenarios import build
from node.storage import schema
from node.storage.consensus_store import ConsensusStore
from node.storage.kv import Batch, KeyValueStore, LevelDBKV, MemoryKV
from node.types.errors import FatalError
from node.types.messages import Car, MsgKind, Vote


class RecordingKV(MemoryKV):
    """A MemoryKV that remembers every write call and its sync flag."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[tuple[int, bool]] = []

    def write(self, batch: Batch, sync: bool = False) -> None:
        self.writes.append((len(batch), sync))
        super().write(batch, sync)


@pytest.fixture(params=["memory", "leveldb"])
def kv(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KeyValueStore]:
    store: KeyValueStore = MemoryKV() if request.param == "memory" else LevelDBKV(tmp_path)
    yield store
    store.close()


def vote(slot: int, view: int = 0) -> Vote:
    return Vote(MsgKind.PREPARE_VOTE, slot, view, bytes([slot % 256]) * 32, 1, b"s" * 64)


def sample_effects() -> list[Persist]:
    car = Car.create(0, 1, ZERO_DIGEST, None, (b"tx1", b"tx2"), b"c" * 64)
    checkpoint = OrderingCheckpoint(3, 2, b"\x05" * 32, ((1, car.digest), (0, ZERO_DIGEST)))
    return [
        Persist(("car", 0, 1), car),
        Persist(("lane_pos", 0), (1, car.digest)),
        Persist(("prepare_vote", 7), vote(7)),
        Persist(("ordering",), checkpoint),
    ]


def test_saved_records_load_back_equal(kv: KeyValueStore) -> None:
    """load_all returns exactly the saved keys and values, with protocol-shaped keys."""
    store = ConsensusStore(kv)
    effects = sample_effects()
    store.save(effects)
    assert store.load_all() == {e.key: e.value for e in effects}


def test_none_deletes_and_later_effects_win(kv: KeyValueStore) -> None:
    """A None value deletes; within one list the last effect for a key wins."""
    store = ConsensusStore(kv)
    store.save(sample_effects())
    store.save(
        [
            Persist(("prepare_vote", 7), None),
            Persist(("prepare_vote", 8), vote(8, 0)),
            Persist(("prepare_vote", 8), vote(8, 1)),
            Persist(("car", 0, 99), None),
        ]
    )
    records = store.load_all()
    assert ("prepare_vote", 7) not in records
    assert records[("prepare_vote", 8)] == vote(8, 1)
    assert ("car", 0, 1) in records


def test_one_synced_write_per_effect_list() -> None:
    """save writes the whole list as one batch with sync=True; an empty list writes nothing."""
    kv = RecordingKV()
    store = ConsensusStore(kv)
    store.save(sample_effects())
    store.save([])
    assert kv.writes == [(4, True)]


def test_an_unencodable_record_fails_the_whole_list() -> None:
    """A value of the wrong type is a FatalError and none of the list's records are written."""
    kv = RecordingKV()
    store = ConsensusStore(kv)
    with pytest.raises(FatalError, match="cannot persist"):
        store.save([Persist(("prepare_vote", 1), vote(1)), Persist(("commit", 1), vote(1))])
    with pytest.raises(FatalError, match="unknown persist key"):
        store.save([Persist(("mystery", 1), vote(1))])
    assert kv.writes == []
    assert store.load_all() == {}


def test_a_corrupt_record_is_fatal_on_load() -> None:
    """Bytes under a consensus key that do not decode stop the node with a clear message."""
    kv = MemoryKV()
    kv.put(schema.persist_key(("prepare_vote", 1)), b"\xff\xfe garbage")
    with pytest.raises(FatalError, match="corrupt consensus record"):
        ConsensusStore(kv).load_all()


def test_other_tables_are_not_loaded() -> None:
    """Keys outside the CONSENSUS table (blocks, meta) are not part of load_all."""
    kv = MemoryKV()
    kv.put(schema.block_key(1), b"block")
    kv.put(schema.meta_key(schema.Meta.COMMITTED_HEIGHT), b"\x00" * 8)
    assert ConsensusStore(kv).load_all() == {}


@pytest.mark.parametrize("seed", [1, 2])
def test_every_record_a_simulated_validator_persisted_round_trips(seed: int) -> None:
    """What real replicas persisted in a crash scenario loads back equal through the store."""
    seen: list[Mapping[PersistKey, object]] = []

    class RecordingReplica(Replica):
        def restore(self, records: Mapping[PersistKey, object]) -> None:
            seen.append(records)
            super().restore(records)

    result = run_scenario(build("crash", 4, seed), RecordingReplica)
    assert not result.violations
    assert seen, "the crash scenario restarted no validator"
    kinds: set[str | int] = set()
    for records in seen:
        store = ConsensusStore(MemoryKV())
        store.save([Persist(k, v) for k, v in records.items()])
        assert store.load_all() == dict(records)
        kinds |= {k[0] for k in records}
    assert kinds <= set(schema.PERSIST_KINDS)
    assert {"car", "ordering", "commit"} <= kinds, "the restarts carried real consensus state"
