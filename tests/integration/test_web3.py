"""web3.py, unmodified, is a client of a live testnet node over HTTP."""

from __future__ import annotations

import os
from typing import Any

import pytest
from eth_account import Account
from web3 import Web3
from web3.types import TxParams, Wei

from tests.integration.conftest import CHAIN_ID, VALIDATORS, Testnet

pytestmark = pytest.mark.integration

ETHER = 10**18
RECEIPT_TIMEOUT = 30


def web3_of(testnet: Testnet, node: int) -> Web3:
    return Web3(Web3.HTTPProvider(testnet.urls[node], request_kwargs={"timeout": 10}))


def test_web3_transfer_round_trips(testnet: Testnet) -> None:
    """A transfer signed with eth-account and sent raw through web3.py gets a receipt, moves
    exactly its value to the recipient and value + gasUsed * effectiveGasPrice from the
    sender, and reads back through get_block (with and without bodies) and get_transaction."""
    w3 = web3_of(testnet, 1)
    assert w3.is_connected()
    assert w3.eth.chain_id == CHAIN_ID
    sender = Account.from_key(testnet.accounts[9].key)
    recipient = Account.from_key(os.urandom(32)).address
    sender_before = w3.eth.get_balance(sender.address)
    assert sender_before > 0
    assert w3.eth.get_balance(recipient) == 0

    value = Wei(ETHER // 7)
    call: TxParams = {"from": sender.address, "to": recipient, "value": value}
    tx: dict[str, Any] = {
        "to": recipient,
        "value": value,
        "gas": w3.eth.estimate_gas(call),
        "maxFeePerGas": Wei(w3.eth.gas_price * 2),
        "maxPriorityFeePerGas": w3.eth.max_priority_fee,
        "nonce": w3.eth.get_transaction_count(sender.address, "pending"),
        "chainId": w3.eth.chain_id,
        "type": 2,
    }
    signed = sender.sign_transaction(tx)
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    assert tx_hash == signed.hash
    receipt = w3.eth.wait_for_transaction_receipt(
        tx_hash, timeout=RECEIPT_TIMEOUT, poll_latency=0.05
    )

    assert receipt["status"] == 1
    assert receipt["transactionHash"] == tx_hash
    assert receipt["from"] == sender.address
    assert receipt["to"] == recipient
    assert receipt["gasUsed"] == 21_000
    fee = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert 0 < receipt["effectiveGasPrice"] <= tx["maxFeePerGas"]
    assert w3.eth.get_balance(recipient) == value
    assert w3.eth.get_balance(sender.address) == sender_before - value - fee
    assert w3.eth.get_transaction_count(sender.address) == tx["nonce"] + 1

    block = w3.eth.get_block(receipt["blockNumber"])
    assert block["hash"] == receipt["blockHash"]
    assert block["number"] == receipt["blockNumber"]
    assert tx_hash in block["transactions"]
    full = w3.eth.get_block(receipt["blockNumber"], full_transactions=True)
    assert full["hash"] == block["hash"]
    [mined] = [t for t in full["transactions"] if not isinstance(t, bytes) and t["hash"] == tx_hash]
    assert mined["from"] == sender.address
    assert mined["to"] == recipient
    assert mined["value"] == value
    assert mined["blockNumber"] == receipt["blockNumber"]
    assert w3.eth.get_block(receipt["blockHash"])["number"] == receipt["blockNumber"]

    got = w3.eth.get_transaction(tx_hash)
    assert got["hash"] == tx_hash
    assert got["nonce"] == tx["nonce"]
    assert got["value"] == value
    assert got["blockHash"] == receipt["blockHash"]
    assert got["transactionIndex"] == receipt["transactionIndex"]


def test_every_node_reports_the_web3_transfer_alike(testnet: Testnet) -> None:
    """A transfer sent through one node is seen, with the same receipt and balances, through
    web3.py on every other node once they have executed its block."""
    sender = Account.from_key(testnet.accounts[8].key)
    recipient = Account.from_key(os.urandom(32)).address
    w3 = web3_of(testnet, 3)
    tx: dict[str, Any] = {
        "to": recipient,
        "value": Wei(12345),
        "gas": 21_000,
        "gasPrice": w3.eth.gas_price,
        "nonce": w3.eth.get_transaction_count(sender.address, "pending"),
        "chainId": CHAIN_ID,
    }
    tx_hash = w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(
        tx_hash, timeout=RECEIPT_TIMEOUT, poll_latency=0.05
    )
    assert receipt["status"] == 1
    assert receipt["effectiveGasPrice"] == tx["gasPrice"]
    testnet.wait_until(
        lambda: min(testnet.heights()) >= receipt["blockNumber"],
        f"every node to execute block {receipt['blockNumber']}",
        timeout=30,
    )
    for i in range(VALIDATORS):
        other = web3_of(testnet, i)
        assert other.eth.get_transaction_receipt(tx_hash) == receipt
        assert other.eth.get_balance(recipient) == 12345
