"""Funding the pool from the dev accounts, over JSON-RPC, before the run.

Each pool account short of ``need`` wei is topped up to twice that by one transfer from a
dev account (dev accounts take turns). A dev account sends at most ``WAVE`` transfers at a
time, in nonce order, to the node owning its lane, then waits for them to execute: the
mempool holds at most 64 pending transactions per sender. Every pool account's balance is
checked at the end, and its executed nonce becomes its first nonce in the plan.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from coincurve import PrivateKey

from node.execution.signing import address_of
from node.tools.spam.endpoints import JsonRpc
from node.tools.spam.keys import PoolAccount, TransferSigner
from node.types.errors import ConfigError

WAVE = 32
FUND_TIMEOUT_S = 60.0
_POLL_S = 0.1
_ACCOUNTS_PER_QUERY = 250

Say = Callable[[str], None]
RouteRpc = Callable[[bytes], JsonRpc]


class FundingFailed(ConfigError):
    """The pool could not be funded (a transfer was refused or never executed)."""


async def read_accounts(rpc: JsonRpc, addresses: Sequence[bytes]) -> list[tuple[int, int]]:
    """(executed nonce, balance) of each address."""
    out: list[tuple[int, int]] = []
    for start in range(0, len(addresses), _ACCOUNTS_PER_QUERY):
        chunk = addresses[start : start + _ACCOUNTS_PER_QUERY]
        calls: list[tuple[str, list[object]]] = []
        for address in chunk:
            calls.append(("eth_getTransactionCount", ["0x" + address.hex(), "latest"]))
            calls.append(("eth_getBalance", ["0x" + address.hex(), "latest"]))
        replies = await rpc.batch(calls)
        for i in range(len(chunk)):
            (nonce, e1), (balance, e2) = replies[2 * i], replies[2 * i + 1]
            if e1 is not None or e2 is not None:
                raise FundingFailed(f"reading account 0x{chunk[i].hex()}: {e1 or e2}")
            out.append((int(str(nonce), 16), int(str(balance), 16)))
    return out


async def fund_pool(
    rpc: JsonRpc,
    route: RouteRpc,
    dev_keys: Sequence[bytes],
    pool: Sequence[PoolAccount],
    need: int,
    signer: TransferSigner,
    say: Say,
) -> list[int]:
    """Make every pool account hold at least ``need`` wei; return their executed nonces."""
    if not dev_keys:
        raise FundingFailed("no dev accounts to fund the pool from")
    states = await read_accounts(rpc, [a.address for a in pool])
    short = [
        (a.address, 2 * need - bal) for a, (_, bal) in zip(pool, states, strict=True) if bal < need
    ]
    if short:
        say(f"funding {len(short)} of {len(pool)} accounts with {2 * need / 1e18:.4f} ETH each")
        started = time.monotonic()
        plans = [short[d :: len(dev_keys)] for d in range(len(dev_keys))]
        await asyncio.gather(
            *(
                _fund_from(rpc, route(address_of(key)), key, transfers, signer)
                for key, transfers in zip(dev_keys, plans, strict=True)
                if transfers
            )
        )
        say(f"funded in {time.monotonic() - started:.1f} s")
    final = await _wait_funded(rpc, pool, need)
    return [nonce for nonce, _ in final]


async def _wait_funded(
    rpc: JsonRpc, pool: Sequence[PoolAccount], need: int
) -> list[tuple[int, int]]:
    """The pool's (nonce, balance) once ``rpc``'s node shows every account funded."""
    deadline = time.monotonic() + FUND_TIMEOUT_S
    while True:
        final = await read_accounts(rpc, [a.address for a in pool])
        poor = sum(1 for _, balance in final if balance < need)
        if not poor:
            return final
        if time.monotonic() > deadline:
            raise FundingFailed(
                f"{poor} pool accounts still hold less than {need} wei after {FUND_TIMEOUT_S:.0f} s"
            )
        await asyncio.sleep(_POLL_S)


async def _fund_from(
    rpc: JsonRpc,
    owner: JsonRpc,
    key: bytes,
    transfers: Sequence[tuple[bytes, int]],
    signer: TransferSigner,
) -> None:
    """Send ``transfers`` from the dev account ``key`` to ``owner`` (its lane's node) in
    waves, each executed (as ``rpc``'s node sees it) before the next."""
    address = address_of(key)
    loaded = PrivateKey(key)
    [(nonce, balance)] = await read_accounts(rpc, [address])
    total = sum(signer.max_cost(amount) for _, amount in transfers)
    if balance < total:
        raise FundingFailed(f"dev account 0x{address.hex()} holds {balance} wei, needs {total}")
    for start in range(0, len(transfers), WAVE):
        wave = transfers[start : start + WAVE]
        raws = [
            "0x" + signer.sign(loaded, nonce + i, to, amount)[0].hex()
            for i, (to, amount) in enumerate(wave)
        ]
        replies = await owner.batch([("eth_sendRawTransaction", [raw]) for raw in raws])
        refused = [error for _, error in replies if error is not None]
        if refused:
            raise FundingFailed(f"dev account 0x{address.hex()}: transfer refused: {refused[0]}")
        nonce += len(wave)
        await _wait_nonce(rpc, address, nonce)


async def _wait_nonce(rpc: JsonRpc, address: bytes, nonce: int) -> None:
    deadline = time.monotonic() + FUND_TIMEOUT_S
    while True:
        [(current, _)] = await read_accounts(rpc, [address])
        if current >= nonce:
            return
        if time.monotonic() > deadline:
            raise FundingFailed(
                f"dev account 0x{address.hex()}: nonce {current} after {FUND_TIMEOUT_S:.0f} s, "
                f"expected {nonce} (transfers not executed)"
            )
        await asyncio.sleep(_POLL_S)
