"""Signing the plan ahead of the schedule, in a background thread.

Every transaction carries its send time: its value is the wall-clock millisecond its batch
is due (``start_ms + offset_ms``), so the start must be fixed before the first signature.
``estimate_sign_seconds`` times a few signatures to choose a start late enough that the
first ``ahead`` seconds of the plan are signed by then; the thread then stays up to that
far ahead (its queue is bounded), so memory does not grow with the length of the run.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from coincurve import PrivateKey

from node.tools.spam.keys import SINK, TransferSigner
from node.tools.spam.plan import PlannedBatch

_CALIBRATION_TXS = 200
_PUT_POLL_S = 0.1


@dataclass(frozen=True, slots=True)
class SignedBatch:
    """A planned batch, signed: ``send_ms`` is due time and value of every transaction."""

    plan: PlannedBatch
    send_ms: int
    raws: list[bytes]
    hashes: list[bytes]

    @property
    def target(self) -> int:
        return self.plan.target


def sign_batch(
    signer: TransferSigner, keys: list[PrivateKey], batch: PlannedBatch, start_ms: int
) -> SignedBatch:
    send_ms = start_ms + batch.offset_ms
    raws: list[bytes] = []
    hashes: list[bytes] = []
    for account, nonce in batch.txs:
        raw, tx_hash = signer.sign(keys[account], nonce, SINK, send_ms)
        raws.append(raw)
        hashes.append(tx_hash)
    return SignedBatch(batch, send_ms, raws, hashes)


def estimate_sign_seconds(signer: TransferSigner, txs: int) -> float:
    """How long signing ``txs`` transfers takes here, from a short timed sample."""
    key = PrivateKey(b"\x01" * 32)
    started = time.perf_counter()
    for nonce in range(_CALIBRATION_TXS):
        signer.sign(key, nonce, SINK, nonce)
    return (time.perf_counter() - started) / _CALIBRATION_TXS * txs


class SigningThread:
    """Signs ``batches`` in order into a bounded queue; ``None`` marks the end."""

    def __init__(
        self,
        batches: Iterator[PlannedBatch],
        signer: TransferSigner,
        keys: list[PrivateKey],
        start_ms: int,
        max_batches: int,
    ) -> None:
        self._batches = batches
        self._signer = signer
        self._keys = keys
        self._start_ms = start_ms
        self.queue: queue.Queue[SignedBatch | None] = queue.Queue(maxsize=max(1, max_batches))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="spam-signer", daemon=True)
        self.signed = 0
        self.busy_s = 0.0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        for planned in self._batches:
            started = time.perf_counter()
            batch = sign_batch(self._signer, self._keys, planned, self._start_ms)
            self.busy_s += time.perf_counter() - started
            self.signed += len(batch.raws)
            if not self._put(batch):
                return
        self._put(None)

    def _put(self, item: SignedBatch | None) -> bool:
        while not self._stop.is_set():
            try:
                self.queue.put(item, timeout=_PUT_POLL_S)
                return True
            except queue.Full:
                continue
        return False
