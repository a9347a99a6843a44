"""web3.py, unmodified, drives the JSON-RPC server over real HTTP on 127.0.0.1."""

from __future__ import annotations

from typing import Any

from web3 import Web3
from web3.types import TxParams, Wei

from node.rpc.jsonrpc import JsonRpcServer
from tests.unit.rpc.helpers import ALICE, CAROL, CHAIN_ID, ETHER, funded_chain, served_in_thread


def test_web3_sends_a_transfer_and_sees_balances_move() -> None:
    """A web3.py client signs a transfer, sends it raw, waits for the receipt and reads balances."""
    chain = funded_chain()
    with served_in_thread(JsonRpcServer(chain, host="127.0.0.1", port=0)) as url:
        w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 10}))
        assert w3.is_connected()
        assert w3.eth.chain_id == CHAIN_ID
        start_alice = w3.eth.get_balance(ALICE.address)
        assert start_alice == 100 * ETHER
        assert w3.eth.get_balance(CAROL.address) == 0

        value = Wei(3 * ETHER)
        call: TxParams = {"from": ALICE.address, "to": CAROL.address, "value": value}
        tx: dict[str, Any] = {
            "to": CAROL.address,
            "value": value,
            "gas": w3.eth.estimate_gas(call),
            "maxFeePerGas": Wei(w3.eth.gas_price * 2),
            "maxPriorityFeePerGas": w3.eth.max_priority_fee,
            "nonce": w3.eth.get_transaction_count(ALICE.address, "pending"),
            "chainId": w3.eth.chain_id,
            "type": 2,
        }
        signed = ALICE.sign_transaction(tx)
        tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=10, poll_latency=0.05)

        assert receipt["status"] == 1
        assert receipt["transactionHash"] == tx_hash
        assert receipt["from"] == ALICE.address
        assert receipt["to"] == CAROL.address
        assert receipt["gasUsed"] == 21_000
        fee = receipt["gasUsed"] * receipt["effectiveGasPrice"]
        assert w3.eth.get_balance(CAROL.address) == value
        assert w3.eth.get_balance(ALICE.address) == start_alice - value - fee
        assert w3.eth.get_transaction_count(ALICE.address) == 1

        block = w3.eth.get_block(receipt["blockNumber"], full_transactions=True)
        assert block["hash"] == receipt["blockHash"]
        [mined] = block["transactions"]
        assert not isinstance(mined, bytes)
        assert mined["hash"] == tx_hash
        assert w3.eth.get_transaction(tx_hash)["blockNumber"] == receipt["blockNumber"]
        assert w3.eth.block_number == receipt["blockNumber"]


def test_web3_sends_a_legacy_transfer_with_gas_price() -> None:
    """A legacy (EIP-155) transfer priced with eth_gasPrice goes through web3.py as well."""
    chain = funded_chain()
    with served_in_thread(JsonRpcServer(chain, host="127.0.0.1", port=0)) as url:
        w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 10}))
        tx: dict[str, Any] = {
            "to": CAROL.address,
            "value": Wei(ETHER),
            "gas": 21_000,
            "gasPrice": w3.eth.gas_price,
            "nonce": 0,
            "chainId": CHAIN_ID,
        }
        tx_hash = w3.eth.send_raw_transaction(ALICE.sign_transaction(tx).raw_transaction)
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=10, poll_latency=0.05)
        assert receipt["status"] == 1
        assert receipt["effectiveGasPrice"] == w3.eth.gas_price
        assert w3.eth.get_balance(CAROL.address) == ETHER
        history = w3.eth.fee_history(2, "latest", [10, 90])
        assert history["baseFeePerGas"][-1] == chain.base_fee()
