"""Throughput of the transaction path: decode + sender recovery, execution, mempool.

Run: ``.venv/bin/python bench/execution.py [--txs N]``. Prints figures; asserts nothing.
Figures on a shared 2-core machine vary by ±20-40% between runs: take the median of a few.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from coincurve import PrivateKey, PublicKey

from node.execution.executor import execute_block
from node.execution.keccak import BACKEND, keccak256
from node.execution.signing import address_of, sign_1559, sign_legacy
from node.execution.state import Account, genesis_state
from node.execution.tx import EthTx, decode_tx, recover_batch
from node.mempool.mempool import Mempool, MempoolLimits

CHAIN_ID = 4242
GWEI = 10**9
SENDERS = 500


def best_rate(count: int, run: Callable[[], object], repeats: int = 5) -> tuple[float, float]:
    """(median, best) operations per second over ``repeats`` runs of ``count`` operations."""
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        rates.append(count / (time.perf_counter() - start))
    return statistics.median(rates), max(rates)


def report(name: str, count: int, run: Callable[[], object]) -> None:
    median, best = best_rate(count, run)
    print(f"{name:<46} {median:>11,.0f}/s  (best {best:,.0f}/s, {1e6 / median:.1f} µs each)")


def make_raws(count: int) -> tuple[list[bytes], list[bytes]]:
    """``count`` signed transfers from SENDERS accounts, alternating legacy and EIP-1559."""
    keys = [keccak256(b"bench %d" % i) for i in range(SENDERS)]
    raws = []
    for i in range(count):
        key, nonce, to = keys[i % SENDERS], i // SENDERS, b"\x11" * 20
        if i % 2:
            raw = sign_legacy(key, chain_id=CHAIN_ID, nonce=nonce, gas_price=GWEI, to=to, value=1)
        else:
            raw = sign_1559(
                key,
                chain_id=CHAIN_ID,
                nonce=nonce,
                max_fee_per_gas=2 * GWEI,
                max_priority_fee_per_gas=GWEI,
                to=to,
                value=1,
            )
        raws.append(raw)
    return raws, keys


def bench_references(n: int) -> None:
    """The C primitives alone: how busy the machine is, and the floor under recovery."""
    key = PrivateKey(b"\x01" * 32)
    digest = b"\x02" * 32
    signature = key.sign_recoverable(digest, hasher=None)
    report(
        "reference: bare coincurve recover",
        n,
        lambda: [
            PublicKey.from_signature_and_message(signature, digest, hasher=None) for _ in range(n)
        ],
    )
    report("reference: keccak256 of 32 bytes", n, lambda: [keccak256(digest) for _ in range(n)])

    def recover_half() -> None:
        for _ in range(n // 2):
            PublicKey.from_signature_and_message(signature, digest, hasher=None)

    with ThreadPoolExecutor(2) as pool:
        report(
            "reference: bare coincurve recover, 2 threads",
            n,
            lambda: [f.result() for f in [pool.submit(recover_half) for _ in range(2)]],
        )


def bench_recovery(raws: list[bytes]) -> list[EthTx]:
    n = len(raws)
    report(
        "decode + recover, decode_tx loop, 1 thread",
        n,
        lambda: [decode_tx(r, CHAIN_ID) for r in raws],
    )
    report("decode + recover, recover_batch, no executor", n, lambda: recover_batch(raws, CHAIN_ID))
    with ThreadPoolExecutor(2) as pool:
        report(
            "decode + recover, recover_batch, 2 threads",
            n,
            lambda: recover_batch(raws, CHAIN_ID, pool),
        )
    return [decode_tx(r, CHAIN_ID) for r in raws]


def bench_execution(txs: list[EthTx], keys: list[bytes]) -> None:
    state = genesis_state({address_of(k): 10**21 for k in keys})
    result = execute_block(state, 1, txs, GWEI, b"\xfe" * 20)
    assert len(result.receipts) == len(txs), result.skipped[:3]
    report(
        "execute_block, plain transfers",
        len(txs),
        lambda: execute_block(state, 1, txs, GWEI, b"\xfe" * 20),
    )


def bench_mempool(txs: list[EthTx]) -> None:
    rich = Account(0, 10**21)
    limits = MempoolLimits(max_txs=len(txs), max_per_sender=len(txs) // SENDERS + 1)

    def fill() -> Mempool:
        pool = Mempool(limits, chain_id=CHAIN_ID, base_fee=GWEI)
        for tx in txs:
            pool.add(tx, rich)
        return pool

    report("mempool add", len(txs), fill)
    pool = fill()
    assert pool.size == len(txs)
    report("mempool select (cars of 500 txs, read-only)", 500, lambda: pool.select(500, 1 << 20))

    def drain() -> None:
        drained = fill()
        while batch := drained.select(500, 1 << 20):
            drained.mark_selected(batch)
        drained.on_executed({tx.sender: tx.nonce + 1 for tx in txs})

    start = time.perf_counter()
    fill()
    fill_time = time.perf_counter() - start
    median, _ = best_rate(len(txs), drain)
    drain_only = len(txs) / (len(txs) / median - fill_time)
    name = "mempool select + mark_selected + on_executed"
    print(f"{name:<46} {drain_only:>11,.0f}/s  (fill subtracted)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--txs", type=int, default=10_000, help="transactions per run")
    args = parser.parse_args()
    print(f"keccak backend: {BACKEND}; {args.txs} txs from {SENDERS} senders")
    print("half legacy, half EIP-1559; machine load shows in the bare references below")
    raws, keys = make_raws(args.txs)
    bench_references(args.txs)
    txs = bench_recovery(raws)
    bench_execution(txs, keys)
    bench_mempool(txs)


if __name__ == "__main__":
    main()
