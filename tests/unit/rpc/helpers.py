"""Shared fixtures for the client API tests: funded keys, signed transfers, a served chain."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount

from node.rpc.fake_chain import GWEI, FakeChain
from node.rpc.jsonrpc import JsonRpcHandler, JsonRpcServer

CHAIN_ID = 4242
ETHER = 10**18
ALICE: LocalAccount = Account.from_key(b"\x11" * 32)
BOB: LocalAccount = Account.from_key(b"\x22" * 32)
CAROL: LocalAccount = Account.from_key(b"\x33" * 32)


def address_bytes(account: LocalAccount) -> bytes:
    return bytes.fromhex(account.address[2:])


def funded_chain(**kwargs: Any) -> FakeChain:
    """A FakeChain where Alice and Bob hold 100 ether each."""
    balances = {address_bytes(ALICE): 100 * ETHER, address_bytes(BOB): 100 * ETHER}
    return FakeChain(chain_id=CHAIN_ID, balances=balances, **kwargs)


def signed_transfer(
    sender: LocalAccount = ALICE,
    to: LocalAccount = CAROL,
    *,
    nonce: int = 0,
    value: int = ETHER,
    dynamic_fee: bool = True,
    chain_id: int = CHAIN_ID,
    gas: int = 21_000,
    data: bytes = b"",
) -> bytes:
    """Raw bytes of a signed value transfer (EIP-1559 by default, else legacy EIP-155)."""
    tx: dict[str, Any] = {
        "to": to.address,
        "value": value,
        "gas": gas,
        "nonce": nonce,
        "chainId": chain_id,
        "data": data,
    }
    if dynamic_fee:
        tx.update(type=2, maxFeePerGas=3 * GWEI, maxPriorityFeePerGas=GWEI)
    else:
        tx["gasPrice"] = 2 * GWEI
    return bytes(sender.sign_transaction(tx).raw_transaction)


@contextmanager
def served_in_thread(server: JsonRpcServer) -> Iterator[str]:
    """Run ``server`` on its own event loop in a thread (for blocking clients such as web3)."""
    loop = asyncio.new_event_loop()
    started = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.start())
        started.set()
        loop.run_forever()
        loop.run_until_complete(server.stop())
        loop.close()

    thread = threading.Thread(target=run, name="jsonrpc-test-server", daemon=True)
    thread.start()
    if not started.wait(timeout=10):
        raise RuntimeError("JSON-RPC test server did not start")
    try:
        yield server.url
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)


def rpc(handler: JsonRpcHandler, method: str, *params: object) -> dict[str, Any]:
    """One JSON-RPC call through ``handler``; returns the whole response object."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
    response = asyncio.run(handler.handle_body(body.encode()))
    assert isinstance(response, dict)
    return response


def result(handler: JsonRpcHandler, method: str, *params: object) -> Any:
    """The result of a call that must succeed."""
    response = rpc(handler, method, *params)
    assert "error" not in response, response
    return response["result"]


def error(handler: JsonRpcHandler, method: str, *params: object) -> tuple[int, str]:
    """The (code, message) of a call that must fail."""
    response = rpc(handler, method, *params)
    assert "result" not in response, response
    return response["error"]["code"], response["error"]["message"]


def raw_body(handler: JsonRpcHandler, body: bytes | str) -> Any:
    data = body.encode() if isinstance(body, str) else body
    return asyncio.run(handler.handle_body(data))
