"""Real LevelDB on disk: crash safety under kill -9, restart from disk, and storage failures
(full disk, read-only directory, lock held, corruption) stopping the node with a clear message."""

from __future__ import annotations

import glob
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from node.crypto.signing import Signer, Verifier
from node.protocol.config import ProtocolConfig
from node.protocol.effects import Effect, Persist, PersistKey
from node.protocol.events import Event
from node.protocol.ordering import OrderingCheckpoint
from node.protocol.replica import Replica
from node.sim.harness import run_scenario
from node.sim.scenarios import build
from node.storage.consensus_store import ConsensusStore
from node.storage.kv import LevelDBKV
from node.types.committee import Committee
from node.types.errors import FatalError
from node.types.messages import Car, Vote
from tests.integration.crash_writer import KEEP

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = 8
SEED = 20261121

pytestmark = pytest.mark.slow


def spawn(*args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # unbuffered pipes: communicate() reads the raw pipe, so nothing may sit in a buffer
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,
    )


def run_and_kill(path: Path, rng: random.Random) -> tuple[int | None, list[int]]:
    """Start the writer, SIGKILL it at a random moment; return (resumed-from pos, acked seqs)."""
    proc = spawn("-m", "tests.integration.crash_writer", str(path))
    assert proc.stdout is not None
    head = b""
    if rng.random() < 0.25:
        time.sleep(rng.uniform(0.0, 0.3))  # anywhere from start-up through recovery
    else:
        head = proc.stdout.readline()  # "ready": the writer saves batches from here on
        time.sleep(rng.uniform(0.01, 0.4))
    proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate(timeout=30)
    out = head + out
    assert proc.returncode == -signal.SIGKILL, err.decode()
    lines = out.decode().split("\n")[:-1]  # the last piece is "" or a line cut by the kill
    resumed = int(lines[0].split()[1]) if lines and lines[0].startswith("ready") else None
    acked = [int(line) for line in lines if not line.startswith("ready")]
    return resumed, acked


def check_consistent(path: Path) -> int:
    """The store holds exactly one whole batch's state: return the last applied sequence."""
    with LevelDBKV(path) as kv:
        records = ConsensusStore(kv).load_all()
    if not records:
        return 0
    lane_pos, checkpoint = records[("lane_pos", 0)], records[("ordering",)]
    assert isinstance(lane_pos, tuple) and isinstance(checkpoint, OrderingCheckpoint)
    pos, digest = lane_pos
    assert (checkpoint.height, checkpoint.last_block) == (pos, digest)
    cars = {k[2]: v for k, v in records.items() if k[0] == "car" and isinstance(v, Car)}
    votes = {k[1]: v for k, v in records.items() if k[0] == "prepare_vote" and isinstance(v, Vote)}
    expected = set(range(max(1, pos - KEEP + 1), pos + 1))
    assert set(cars) == expected, f"cars {sorted(cars, key=str)} after batch {pos}"
    assert set(votes) == expected, f"votes {sorted(votes, key=str)} after batch {pos}"
    assert len(records) == 2 + 2 * len(expected), "nothing but whole batches"
    for seq in expected:
        assert votes[seq].cut_digest == cars[seq].digest
        if seq - 1 in cars:
            assert cars[seq].parent == cars[seq - 1].digest
    assert cars[pos].digest == digest
    return int(pos)


def test_kill_9_never_loses_an_acknowledged_batch_nor_half_applies_one(tmp_path: Path) -> None:
    """After SIGKILL at random moments, every acknowledged batch is there and none is partial."""
    rng = random.Random(SEED)
    path = tmp_path / "db"
    last = 0
    total_acked = 0
    for _round in range(ROUNDS):
        resumed, acked = run_and_kill(path, rng)
        if resumed is not None:
            assert resumed == last, "the writer resumed from what the previous run left"
        assert acked == list(range(last + 1, last + 1 + len(acked))), "acks in order, no repeats"
        applied = check_consistent(path)
        high = acked[-1] if acked else last
        assert high <= applied <= high + 1, f"acked up to {high}, store holds {applied}"
        last = applied
        total_acked += len(acked)
    assert total_acked > 0, "the writer never got to save a batch"


def test_restarting_from_leveldb_never_double_votes(tmp_path: Path) -> None:
    """Simulated validators that persist through LevelDB and restart from it never equivocate."""

    class DiskReplica(Replica):
        """A replica that writes every Persist through a ConsensusStore on LevelDB and, after a
        crash, restores from that store instead of the simulator's in-memory copy."""

        def __init__(
            self,
            committee: Committee,
            me: int,
            signer: Signer,
            verifier: Verifier,
            config: ProtocolConfig,
        ) -> None:
            super().__init__(committee, me, signer, verifier, config)
            if me not in stores:
                stores[me] = ConsensusStore(LevelDBKV(tmp_path / str(me)))
            self.store = stores[me]

        def restore(self, records: Mapping[PersistKey, object]) -> None:
            loaded = self.store.load_all()
            restores.append(len(loaded))
            super().restore(loaded)

        def step(self, event: Event) -> list[Effect]:
            effects = super().step(event)
            self.store.save([e for e in effects if isinstance(e, Persist)])
            return effects

    stores: dict[int, ConsensusStore] = {}
    restores: list[int] = []
    try:
        result = run_scenario(build("crash", 4, 3), DiskReplica)
    finally:
        for store in stores.values():
            store.kv.close()
    assert restores and all(n > 0 for n in restores), "a validator restarted from disk"
    assert not result.violations, [str(v) for v in result.violations]


def test_a_database_locked_by_another_process_is_fatal(tmp_path: Path) -> None:
    """Opening a database another live process holds fails with 'locked by another process'."""
    holder = spawn(
        "-c",
        "import sys, time\n"
        "from node.storage.kv import LevelDBKV\n"
        "kv = LevelDBKV(sys.argv[1]); print('ready', flush=True); time.sleep(60)",
        str(tmp_path / "db"),
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == b"ready\n"
        with pytest.raises(FatalError, match=f"database at {tmp_path / 'db'} is locked by another"):
            LevelDBKV(tmp_path / "db")
    finally:
        holder.kill()
        holder.communicate()
    with LevelDBKV(tmp_path / "db") as kv:  # the lock dies with its process
        kv.put(b"k", b"v")


def test_a_corrupted_database_is_fatal(tmp_path: Path) -> None:
    """A database whose manifest is overwritten with garbage fails to open as 'corrupted'."""
    with LevelDBKV(tmp_path) as kv:
        kv.write([(b"k%d" % i, b"v" * 100) for i in range(100)], sync=True)
    manifest = glob.glob(str(tmp_path / "MANIFEST-*"))[0]
    with open(manifest, "r+b") as f:
        f.write(b"garbage!" * 16)
    with pytest.raises(FatalError, match="is corrupted"):
        LevelDBKV(tmp_path)


# ---------------------------------------------------------------- full disk, read-only disk


def mount_tmpfs(where: Path, options: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill or freeze needs root")
    if shutil.which("mount") is None:
        pytest.skip("no mount command to create a small tmpfs")
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (container without CAP_SYS_ADMIN?): {done.stderr}")


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    where = tmp_path / "tiny"
    mount_tmpfs(where, "size=1m")
    yield where
    subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.fixture
def frozen_dir(tmp_path: Path) -> Iterator[Path]:
    where = tmp_path / "frozen"
    if os.geteuid() == 0:
        mount_tmpfs(where, "size=1m,ro")
        yield where
        subprocess.run(["umount", "-l", str(where)], check=False)
    else:
        where.mkdir()
        where.chmod(0o500)
        yield where
        where.chmod(0o700)


def fill(kv: LevelDBKV, chunks: int) -> None:
    for i in range(chunks):
        kv.write([(b"k%d" % i, os.urandom(64 << 10))], sync=True)


def test_a_full_disk_is_fatal_with_a_clear_message(tiny_disk: Path) -> None:
    """Writing past the end of a 1 MiB filesystem raises FatalError saying the disk is full."""
    with (
        LevelDBKV(tiny_disk / "db", write_buffer_bytes=64 << 10) as kv,
        pytest.raises(FatalError, match=r"disk full while writing to the database at .*/db"),
    ):
        fill(kv, chunks=64)


def test_a_read_only_directory_is_fatal_with_a_clear_message(frozen_dir: Path) -> None:
    """Opening a database where nothing can be written raises FatalError saying so."""
    with pytest.raises(FatalError, match="not writable"):
        LevelDBKV(frozen_dir / "db")


def test_persist_key_types_stay_protocol_shaped(tmp_path: Path) -> None:
    """Keys loaded from disk are tuples of str and int, usable as the protocol's PersistKey."""
    with LevelDBKV(tmp_path) as kv:
        store = ConsensusStore(kv)
        store.save([Persist(("lane_pos", 2), (5, b"\x01" * 32))])
    with LevelDBKV(tmp_path) as kv:
        keys: list[PersistKey] = list(ConsensusStore(kv).load_all())
    assert keys == [("lane_pos", 2)]
    assert [type(x) for x in keys[0]] == [str, int]
