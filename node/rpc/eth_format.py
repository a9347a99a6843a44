"""Blocks, transactions and receipts in the JSON shapes geth returns.

web3.py and ethers parse these objects field by field, so every field geth sends is here,
with lanenet's values where Ethereum's do not apply: there are no uncles, no proof of
work and no Merkle-Patricia tries, so ``sha3Uncles`` is the empty-list hash, difficulty,
nonce and mixHash are zero, and ``transactionsRoot``/``receiptsRoot`` are the zero hash.
``miner`` is the zero address (validators sign with ed25519 and have no Ethereum address)
and ``timestamp`` is the commit time this node recorded, in seconds.
"""

from __future__ import annotations

from typing import Final

from node.rpc.chain_view import (
    ACCESS_LIST_TX,
    DYNAMIC_FEE_TX,
    EMPTY_BLOOM,
    ZERO_HASH,
    BlockInfo,
    LogInfo,
    ReceiptInfo,
    TxInfo,
)
from node.rpc.hexjson import encode_data, encode_optional_data, encode_quantity

Json = dict[str, object]

EMPTY_UNCLES_HASH: Final = bytes.fromhex(
    "1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347"
)
ZERO_ADDRESS: Final = b"\x00" * 20


def effective_gas_price(tx: TxInfo, base_fee: int) -> int:
    """What a mined transaction pays per gas: its price, or min(fee cap, base fee + tip)."""
    if tx.gas_price is not None:
        return tx.gas_price
    return min(tx.max_fee_per_gas or 0, base_fee + (tx.max_priority_fee_per_gas or 0))


def format_tx(tx: TxInfo, block_base_fee: int | None) -> Json:
    """A transaction object; ``block_base_fee`` is None for a pending (or unlisted) one."""
    mined = tx.location is not None and block_base_fee is not None
    location = tx.location if mined else None
    if tx.gas_price is not None:
        gas_price = tx.gas_price
    elif block_base_fee is not None and mined:
        gas_price = effective_gas_price(tx, block_base_fee)
    else:
        gas_price = tx.max_fee_per_gas or 0
    out: Json = {
        "blockHash": encode_data(location.block_hash) if location else None,
        "blockNumber": encode_quantity(location.height) if location else None,
        "transactionIndex": encode_quantity(location.index) if location else None,
        "hash": encode_data(tx.hash),
        "from": encode_data(tx.sender),
        "to": encode_optional_data(tx.to),
        "nonce": encode_quantity(tx.nonce),
        "value": encode_quantity(tx.value),
        "gas": encode_quantity(tx.gas),
        "gasPrice": encode_quantity(gas_price),
        "input": encode_data(tx.data),
        "type": encode_quantity(tx.tx_type),
        "v": encode_quantity(tx.v),
        "r": encode_quantity(tx.r),
        "s": encode_quantity(tx.s),
    }
    if tx.chain_id is not None:
        out["chainId"] = encode_quantity(tx.chain_id)
    if tx.tx_type in (ACCESS_LIST_TX, DYNAMIC_FEE_TX):
        out["accessList"] = []
        out["yParity"] = encode_quantity(tx.v)
    if tx.tx_type == DYNAMIC_FEE_TX:
        out["maxFeePerGas"] = encode_quantity(tx.max_fee_per_gas or 0)
        out["maxPriorityFeePerGas"] = encode_quantity(tx.max_priority_fee_per_gas or 0)
    return out


def format_log(log: LogInfo, receipt: ReceiptInfo) -> Json:
    return {
        "address": encode_data(log.address),
        "topics": [encode_data(t) for t in log.topics],
        "data": encode_data(log.data),
        "blockNumber": encode_quantity(receipt.location.height),
        "blockHash": encode_data(receipt.location.block_hash),
        "transactionHash": encode_data(receipt.tx_hash),
        "transactionIndex": encode_quantity(receipt.location.index),
        "logIndex": encode_quantity(log.log_index),
        "removed": False,
    }


def format_receipt(receipt: ReceiptInfo) -> Json:
    return {
        "transactionHash": encode_data(receipt.tx_hash),
        "transactionIndex": encode_quantity(receipt.location.index),
        "blockHash": encode_data(receipt.location.block_hash),
        "blockNumber": encode_quantity(receipt.location.height),
        "from": encode_data(receipt.sender),
        "to": encode_optional_data(receipt.to),
        "cumulativeGasUsed": encode_quantity(receipt.cumulative_gas_used),
        "gasUsed": encode_quantity(receipt.gas_used),
        "effectiveGasPrice": encode_quantity(receipt.effective_gas_price),
        "contractAddress": encode_optional_data(receipt.contract_address),
        "logs": [format_log(log, receipt) for log in receipt.logs],
        "logsBloom": encode_data(receipt.logs_bloom),
        "status": encode_quantity(receipt.status),
        "type": encode_quantity(receipt.tx_type),
    }


def format_block(block: BlockInfo) -> Json:
    """A block object: full transaction objects if ``block.txs`` is set, else their hashes."""
    transactions: list[object]
    if block.txs is not None:
        transactions = [format_tx(tx, block.base_fee) for tx in block.txs]
    else:
        transactions = [encode_data(h) for h in block.tx_hashes]
    return {
        "number": encode_quantity(block.height),
        "hash": encode_data(block.hash),
        "parentHash": encode_data(block.parent_hash),
        "nonce": "0x0000000000000000",
        "mixHash": encode_data(ZERO_HASH),
        "sha3Uncles": encode_data(EMPTY_UNCLES_HASH),
        "logsBloom": encode_data(EMPTY_BLOOM),
        "transactionsRoot": encode_data(ZERO_HASH),
        "stateRoot": encode_data(block.state_root or ZERO_HASH),
        "receiptsRoot": encode_data(ZERO_HASH),
        "miner": encode_data(ZERO_ADDRESS),
        "difficulty": "0x0",
        "totalDifficulty": "0x0",
        "extraData": "0x",
        "size": encode_quantity(block.size),
        "gasLimit": encode_quantity(block.gas_limit),
        "gasUsed": encode_quantity(block.gas_used or 0),
        "timestamp": encode_quantity(block.timestamp_ms // 1000),
        "baseFeePerGas": encode_quantity(block.base_fee),
        "transactions": transactions,
        "uncles": [],
    }
