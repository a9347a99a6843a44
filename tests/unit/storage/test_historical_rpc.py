"""JSON-RPC block parameters over the node's store: eth_getBalance and
eth_getTransactionCount at an older block answer from history (hot tier or archive), and a
pruned block is EIP-1474's -32002 with the earliest height the node still holds."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

import pytest

from node.rpc.eth_api import EthApi
from node.rpc.hexjson import RESOURCE_UNAVAILABLE, RpcError
from node.runtime.chain_view import NodeChainView
from node.storage.archive import Archive
from node.storage.archiver import Archiver
from node.storage.chain_store import ChainStore
from node.storage.kv import LevelDBKV
from tests.unit.storage.history_helpers import ADDRESSES, Model, grow


def rpc_over(chain: ChainStore) -> EthApi:
    node = SimpleNamespace(chain=chain, genesis=SimpleNamespace(to_json=lambda: "{}"))
    return EthApi(NodeChainView(node))  # type: ignore[arg-type]


def call(api: EthApi, method: str, *params: object) -> object:
    return asyncio.run(api.call(api.methods[method], list(params)))


@pytest.mark.parametrize("mode", ["keep", "prune"])
def test_balances_at_old_blocks(tmp_path: Path, mode: str) -> None:
    """With history archived (keep) every block answers; with it dropped (prune) blocks
    below the hot floor answer -32002 naming the earliest kept height."""
    archive = Archive(tmp_path / "archive") if mode == "keep" else None
    chain = ChainStore(LevelDBKV(tmp_path / "db"), archive)
    model = Model()
    grow(chain, model, 30)
    archiver = Archiver(chain, hot_blocks=5, mode=mode, segment_blocks=10)  # type: ignore[arg-type]
    while archiver.step().action != "idle":
        pass
    api = rpc_over(chain)
    address = "0x" + ADDRESSES[1].hex()
    for height in (25, 20) if mode == "prune" else (25, 20, 3, 0):
        account = model.account(ADDRESSES[1], height)
        assert call(api, "eth_getBalance", address, hex(height)) == hex(account.balance)
        assert call(api, "eth_getTransactionCount", address, hex(height)) == hex(account.nonce)
    assert call(api, "eth_getBalance", address, "latest") == hex(
        model.account(ADDRESSES[1], 30).balance
    )
    if mode == "prune":
        with pytest.raises(RpcError) as info:
            call(api, "eth_getBalance", address, "0x10")
        assert info.value.code == RESOURCE_UNAVAILABLE
        assert "height 16 is pruned" in info.value.message
        assert "from height 20 on" in info.value.message
