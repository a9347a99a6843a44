"""Child process for the crash test: resumes from what its ConsensusStore holds, then saves one
consensus batch after another (fsynced) and prints each sequence number once it is saved.

Usage: python -m tests.integration.crash_writer DB_PATH [BATCH_TXS]

Batch ``s`` writes car (0, s), the lane position and ordering checkpoint pointing at it, and a
prepare vote for slot ``s``; it deletes car and vote ``s - KEEP``. So the store after batch
``s`` holds exactly cars and votes ``max(1, s - KEEP + 1) .. s``, which the test checks.
"""

from __future__ import annotations

import sys

from node.crypto.hashing import ZERO_DIGEST
from node.protocol.effects import Persist
from node.protocol.ordering import OrderingCheckpoint
from node.storage.consensus_store import ConsensusStore
from node.storage.kv import LevelDBKV
from node.types.messages import Car, MsgKind, Vote

KEEP = 3
TX = b"t" * 200


def make_car(seq: int, parent: bytes, txs: int) -> Car:
    return Car.create(0, seq, parent, None, tuple(TX + b"%d" % i for i in range(txs)), b"s" * 64)


def make_vote(seq: int, digest: bytes) -> Vote:
    return Vote(MsgKind.PREPARE_VOTE, seq, 0, digest, 1, b"v" * 64)


def batch(seq: int, car: Car) -> list[Persist]:
    effects = [
        Persist(("car", 0, seq), car),
        Persist(("lane_pos", 0), (seq, car.digest)),
        Persist(("prepare_vote", seq), make_vote(seq, car.digest)),
        Persist(("ordering",), OrderingCheckpoint(seq + 1, seq, car.digest, ((seq, car.digest),))),
    ]
    if seq > KEEP:
        effects += [
            Persist(("car", 0, seq - KEEP), None),
            Persist(("prepare_vote", seq - KEEP), None),
        ]
    return effects


def main() -> None:
    path = sys.argv[1]
    txs = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    kv = LevelDBKV(path)
    store = ConsensusStore(kv)
    records = store.load_all()
    lane_pos = records.get(("lane_pos", 0), (0, ZERO_DIGEST))
    assert isinstance(lane_pos, tuple)
    pos, parent = lane_pos
    print(f"ready {pos}", flush=True)
    seq = pos + 1
    while True:
        car = make_car(seq, parent, txs)
        store.save(batch(seq, car))
        print(seq, flush=True)
        parent = car.digest
        seq += 1


if __name__ == "__main__":
    main()
