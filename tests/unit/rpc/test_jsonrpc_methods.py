"""Every Ethereum JSON-RPC method answers in geth's shape over a FakeChain."""

from __future__ import annotations

import asyncio
import sys

import pytest

from node import __version__
from node.rpc.fake_chain import GWEI, FakeChain
from node.rpc.jsonrpc import JsonRpcHandler
from tests.unit.rpc.helpers import (
    ALICE,
    BOB,
    CAROL,
    CHAIN_ID,
    ETHER,
    address_bytes,
    funded_chain,
    result,
    signed_transfer,
)


@pytest.fixture
def chain() -> FakeChain:
    return funded_chain(auto_commit=False)


@pytest.fixture
def handler(chain: FakeChain) -> JsonRpcHandler:
    return JsonRpcHandler(chain)


def _mine(chain: FakeChain, *raws: bytes) -> list[bytes]:
    """Submit, commit and execute ``raws``; return their hashes."""
    results = asyncio.run(chain.submit_raw_txs(list(raws)))
    assert all(r.accepted for r in results), results
    chain.commit()
    chain.execute()
    return [r.tx_hash for r in results if r.tx_hash is not None]


def test_identity_methods(handler: JsonRpcHandler) -> None:
    """chainId is hex, net_version decimal, web3_clientVersion names lanenet and Python."""
    assert result(handler, "eth_chainId") == hex(CHAIN_ID)
    assert result(handler, "net_version") == str(CHAIN_ID)
    version = result(handler, "web3_clientVersion")
    assert version.startswith(f"lanenet/v{__version__}/python{sys.version_info.major}.")
    assert result(handler, "net_listening") is True
    assert result(handler, "net_peerCount") == "0x3"
    assert result(handler, "eth_syncing") is False
    assert result(handler, "eth_accounts") == []


def test_block_number_is_the_executed_height(chain: FakeChain, handler: JsonRpcHandler) -> None:
    """eth_blockNumber reports the executed height, not a committed-but-unexecuted one."""
    assert result(handler, "eth_blockNumber") == "0x0"
    _mine(chain, signed_transfer(nonce=0))
    assert result(handler, "eth_blockNumber") == "0x1"
    chain.commit()
    assert chain.committed_height() == 2
    assert result(handler, "eth_blockNumber") == "0x1"


def test_fees(chain: FakeChain, handler: JsonRpcHandler) -> None:
    """gasPrice is base fee + tip; maxPriorityFeePerGas the tip; feeHistory has n+1 base fees."""
    assert result(handler, "eth_gasPrice") == hex(2 * GWEI)
    assert result(handler, "eth_maxPriorityFeePerGas") == hex(GWEI)
    _mine(chain, signed_transfer(nonce=0))
    _mine(chain, signed_transfer(nonce=1))
    history = result(handler, "eth_feeHistory", "0x2", "latest", [25, 75])
    assert history["oldestBlock"] == "0x1"
    assert history["baseFeePerGas"] == [hex(GWEI)] * 3
    assert history["gasUsedRatio"] == [21_000 / 30_000_000] * 2
    assert history["reward"] == [[hex(GWEI), hex(GWEI)]] * 2
    clipped = result(handler, "eth_feeHistory", 100, "0x1")
    assert clipped["oldestBlock"] == "0x0"
    assert len(clipped["gasUsedRatio"]) == 2
    assert "reward" not in clipped


def test_balance_and_nonce_latest_pending_and_historical(
    chain: FakeChain, handler: JsonRpcHandler
) -> None:
    """Balances and nonces read executed state at a tag or number; pending counts the mempool."""
    assert result(handler, "eth_getBalance", ALICE.address, "latest") == hex(100 * ETHER)
    assert result(handler, "eth_getBalance", CAROL.address.lower()) == "0x0"
    _mine(chain, signed_transfer(nonce=0, value=ETHER))
    assert result(handler, "eth_getBalance", CAROL.address, "latest") == hex(ETHER)
    assert result(handler, "eth_getBalance", CAROL.address, "0x0") == "0x0"
    assert result(handler, "eth_getBalance", CAROL.address, "earliest") == "0x0"
    assert result(handler, "eth_getBalance", CAROL.address, {"blockNumber": "0x1"}) == hex(ETHER)
    block_hash = result(handler, "eth_getBlockByNumber", "0x1", False)["hash"]
    assert result(handler, "eth_getBalance", CAROL.address, {"blockHash": block_hash}) == hex(ETHER)
    assert result(handler, "eth_getTransactionCount", ALICE.address, "latest") == "0x1"
    assert result(handler, "eth_getTransactionCount", ALICE.address, "0x0") == "0x0"
    asyncio.run(chain.submit_raw_txs([signed_transfer(nonce=1)]))
    assert result(handler, "eth_getTransactionCount", ALICE.address, "latest") == "0x1"
    assert result(handler, "eth_getTransactionCount", ALICE.address, "pending") == "0x2"
    for tag in ("safe", "finalized"):
        assert result(handler, "eth_getTransactionCount", ALICE.address, tag) == "0x1"


def test_estimate_gas_for_transfers(handler: JsonRpcHandler) -> None:
    """A plain transfer (as web3.py and ethers send it) costs 21000 gas."""
    call = {"from": ALICE.address, "to": CAROL.address, "value": hex(ETHER), "data": "0x"}
    assert result(handler, "eth_estimateGas", call) == hex(21_000)
    assert result(handler, "eth_estimateGas", {"to": CAROL.address}, "latest") == hex(21_000)
    ethers_style = {
        "from": ALICE.address.lower(),
        "to": CAROL.address.lower(),
        "value": "0x1",
        "type": "0x2",
        "maxFeePerGas": "0x3b9aca00",
        "nonce": "0x0",
        "chainId": hex(CHAIN_ID),
    }
    assert result(handler, "eth_estimateGas", ethers_style) == hex(21_000)


def test_send_raw_transaction_returns_the_hash(chain: FakeChain, handler: JsonRpcHandler) -> None:
    """eth_sendRawTransaction admits the bytes and returns keccak(raw) as data."""
    raw = signed_transfer(nonce=0)
    tx_hash = result(handler, "eth_sendRawTransaction", "0x" + raw.hex())
    assert len(tx_hash) == 66
    assert chain.get_tx(bytes.fromhex(tx_hash[2:])) is not None


def test_pending_transaction_has_null_location(chain: FakeChain, handler: JsonRpcHandler) -> None:
    """A transaction in the mempool is found with null blockHash/blockNumber/index."""
    [submitted] = asyncio.run(chain.submit_raw_txs([signed_transfer(nonce=0)]))
    assert submitted.tx_hash is not None
    tx = result(handler, "eth_getTransactionByHash", "0x" + submitted.tx_hash.hex())
    assert tx["blockHash"] is None
    assert tx["blockNumber"] is None
    assert tx["transactionIndex"] is None
    assert result(handler, "eth_getTransactionReceipt", "0x" + submitted.tx_hash.hex()) is None


def test_dynamic_fee_transaction_and_receipt_shapes(
    chain: FakeChain, handler: JsonRpcHandler
) -> None:
    """A mined EIP-1559 transfer and its receipt carry every field web3.py and ethers read."""
    [tx_hash] = _mine(chain, signed_transfer(nonce=0, value=5))
    tx = result(handler, "eth_getTransactionByHash", "0x" + tx_hash.hex())
    block = result(handler, "eth_getBlockByNumber", "latest", False)
    assert tx["hash"] == "0x" + tx_hash.hex()
    assert tx["blockHash"] == block["hash"]
    assert tx["blockNumber"] == "0x1"
    assert tx["transactionIndex"] == "0x0"
    assert tx["from"] == ALICE.address.lower()
    assert tx["to"] == CAROL.address.lower()
    assert tx["value"] == "0x5"
    assert tx["nonce"] == "0x0"
    assert tx["gas"] == hex(21_000)
    assert tx["type"] == "0x2"
    assert tx["chainId"] == hex(CHAIN_ID)
    assert tx["maxFeePerGas"] == hex(3 * GWEI)
    assert tx["maxPriorityFeePerGas"] == hex(GWEI)
    assert tx["gasPrice"] == hex(2 * GWEI)  # min(fee cap, base fee + tip)
    assert tx["accessList"] == []
    assert tx["yParity"] == tx["v"]
    assert tx["input"] == "0x"

    receipt = result(handler, "eth_getTransactionReceipt", "0x" + tx_hash.hex())
    assert receipt == {
        "transactionHash": "0x" + tx_hash.hex(),
        "transactionIndex": "0x0",
        "blockHash": block["hash"],
        "blockNumber": "0x1",
        "from": ALICE.address.lower(),
        "to": CAROL.address.lower(),
        "cumulativeGasUsed": hex(21_000),
        "gasUsed": hex(21_000),
        "effectiveGasPrice": hex(2 * GWEI),
        "contractAddress": None,
        "logs": [],
        "logsBloom": "0x" + "00" * 256,
        "status": "0x1",
        "type": "0x2",
    }


def test_legacy_transaction_shape(chain: FakeChain, handler: JsonRpcHandler) -> None:
    """A legacy EIP-155 transaction shows gasPrice, v = chain_id * 2 + 35/36, no 1559 fields."""
    [tx_hash] = _mine(chain, signed_transfer(nonce=0, dynamic_fee=False))
    tx = result(handler, "eth_getTransactionByHash", "0x" + tx_hash.hex())
    assert tx["type"] == "0x0"
    assert tx["gasPrice"] == hex(2 * GWEI)
    assert int(tx["v"], 16) in (CHAIN_ID * 2 + 35, CHAIN_ID * 2 + 36)
    assert "maxFeePerGas" not in tx
    assert "accessList" not in tx


def test_blocks_by_number_and_hash_with_and_without_full_txs(
    chain: FakeChain, handler: JsonRpcHandler
) -> None:
    """Blocks list tx hashes or full objects, and the same block comes back by hash."""
    hashes = _mine(chain, signed_transfer(nonce=0), signed_transfer(BOB, nonce=0))
    block = result(handler, "eth_getBlockByNumber", "0x1", False)
    assert block["number"] == "0x1"
    assert block["transactions"] == ["0x" + h.hex() for h in hashes]
    assert block["gasUsed"] == hex(42_000)
    assert block["baseFeePerGas"] == hex(GWEI)
    assert block["parentHash"] == result(handler, "eth_getBlockByNumber", "earliest", False)["hash"]
    for field in (
        "miner",
        "difficulty",
        "extraData",
        "nonce",
        "gasLimit",
        "timestamp",
        "size",
        "stateRoot",
        "logsBloom",
        "sha3Uncles",
        "uncles",
        "mixHash",
    ):
        assert field in block, field
    full = result(handler, "eth_getBlockByHash", block["hash"], True)
    assert [t["hash"] for t in full["transactions"]] == block["transactions"]
    assert full["transactions"][1]["from"] == BOB.address.lower()
    assert full["transactions"][1]["transactionIndex"] == "0x1"
    assert result(handler, "eth_getBlockByNumber", "pending", False)["number"] == "0x1"


def test_unknown_things_are_null(chain: FakeChain, handler: JsonRpcHandler) -> None:
    """Unknown transactions, receipts and blocks (also committed but unexecuted ones) are null."""
    missing = "0x" + "ab" * 32
    assert result(handler, "eth_getTransactionByHash", missing) is None
    assert result(handler, "eth_getTransactionReceipt", missing) is None
    assert result(handler, "eth_getBlockByHash", missing, False) is None
    assert result(handler, "eth_getBlockByNumber", "0x5", False) is None
    chain.commit()
    assert result(handler, "eth_getBlockByNumber", "0x1", False) is None
    unexecuted = chain.get_block(1)
    assert unexecuted is not None
    assert result(handler, "eth_getBlockByHash", "0x" + unexecuted.hash.hex(), True) is None


def test_failed_call_has_status_zero(chain: FakeChain, handler: JsonRpcHandler) -> None:
    """A transaction with calldata fails in the fake (no EVM) and its receipt says status 0."""
    [tx_hash] = _mine(chain, signed_transfer(nonce=0, data=b"\x01\x02", gas=30_000))
    receipt = result(handler, "eth_getTransactionReceipt", "0x" + tx_hash.hex())
    assert receipt["status"] == "0x0"
    assert chain.get_account(address_bytes(CAROL)) == (0, 0)
