"""Malformed JSON-RPC input gets the right error code and a message naming the problem."""

from __future__ import annotations

import asyncio
import json

import pytest

from node.rpc.fake_chain import FakeChain
from node.rpc.hexjson import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    RESOURCE_NOT_FOUND,
    RESOURCE_UNAVAILABLE,
    TX_REJECTED,
)
from node.rpc.jsonrpc import JsonRpcHandler
from tests.unit.rpc.helpers import (
    ALICE,
    CAROL,
    ETHER,
    error,
    funded_chain,
    raw_body,
    result,
    signed_transfer,
)


@pytest.fixture
def chain() -> FakeChain:
    return funded_chain()


@pytest.fixture
def handler(chain: FakeChain) -> JsonRpcHandler:
    return JsonRpcHandler(chain, max_batch=5)


@pytest.mark.parametrize(
    "body",
    ['{"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"', "not json", "\xff", "NaN"],
)
def test_unparsable_body_is_a_parse_error(handler: JsonRpcHandler, body: str) -> None:
    """A body that is not JSON answers -32700 with id null."""
    response = raw_body(handler, body.encode("latin-1"))
    assert response["error"]["code"] == PARSE_ERROR
    assert response["id"] is None
    assert "parse error" in response["error"]["message"]


@pytest.mark.parametrize(
    ("request_obj", "needle"),
    [
        ("a string", "expected an object"),
        (42, "expected an object"),
        ({"id": 1, "method": "eth_chainId"}, 'jsonrpc must be "2.0"'),
        ({"jsonrpc": "1.0", "id": 1, "method": "eth_chainId"}, 'jsonrpc must be "2.0"'),
        ({"jsonrpc": "2.0", "id": 1}, "method must be a string"),
        ({"jsonrpc": "2.0", "id": 1, "method": 7}, "method must be a string"),
        ({"jsonrpc": "2.0", "id": [1], "method": "eth_chainId"}, "bad id type"),
        ({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": {}}, "must be an array"),
    ],
)
def test_invalid_request_objects(handler: JsonRpcHandler, request_obj: object, needle: str) -> None:
    """Objects that are not JSON-RPC 2.0 requests answer -32600 saying what is wrong."""
    response = raw_body(handler, json.dumps(request_obj))
    assert response["error"]["code"] == INVALID_REQUEST
    assert needle in response["error"]["message"]


def test_unknown_method(handler: JsonRpcHandler) -> None:
    """An unknown method answers -32601 naming it."""
    code, message = error(handler, "eth_mine")
    assert code == METHOD_NOT_FOUND
    assert "eth_mine" in message


@pytest.mark.parametrize(
    ("method", "params", "needle"),
    [
        ("eth_getBalance", [], "missing value for required argument 0 (address)"),
        ("eth_getBalance", ["0x12", "latest"], "argument 0 (address): expected 20 bytes"),
        ("eth_getBalance", [ALICE.address[2:], "latest"], "without 0x prefix"),
        ("eth_getBalance", [ALICE.address, "newest"], "argument 1 (block): expected a block"),
        ("eth_getBalance", [ALICE.address, "0x01"], "leading zero digits"),
        ("eth_getBalance", [ALICE.address, "0xzz"], "invalid hex quantity"),
        ("eth_getBalance", [ALICE.address, "0x"], "no digits"),
        ("eth_getBalance", [ALICE.address, 5], "expected a hex quantity"),
        ("eth_getBalance", [ALICE.address, {"blockHash": "0x12"}], "expected 32 bytes"),
        ("eth_getBalance", [ALICE.address, {}], "exactly one of blockNumber, blockHash"),
        ("eth_getBalance", [ALICE.address, "latest", 1], "too many arguments, want at most 2"),
        ("eth_getBalance", [12, "latest"], "argument 0 (address): expected a hex string"),
        ("eth_getTransactionCount", ["0x" + "gg" * 20], "invalid hex string"),
        ("eth_getTransactionByHash", ["0xabc"], "odd length"),
        ("eth_getTransactionByHash", ["0x" + "00" * 31], "expected 32 bytes"),
        ("eth_getTransactionReceipt", [None], "argument 0 (hash): expected a hex string"),
        ("eth_getBlockByNumber", ["latest"], "missing value for required argument 1"),
        ("eth_getBlockByNumber", ["latest", "yes"], "(fullTransactions): expected true or false"),
        ("eth_getBlockByHash", ["latest", False], "argument 0 (hash)"),
        ("eth_sendRawTransaction", [], "missing value for required argument 0 (data)"),
        ("eth_sendRawTransaction", ["0x"], "empty transaction"),
        ("eth_sendRawTransaction", ["f86b"], "without 0x prefix"),
        ("eth_feeHistory", ["0x2"], "missing value for required argument 1 (newestBlock)"),
        ("eth_feeHistory", ["two", "latest"], "argument 0 (blockCount)"),
        ("eth_feeHistory", [2, "latest", [90, 10]], "ascending"),
        ("eth_feeHistory", [2, "latest", [101]], "within [0, 100]"),
        ("eth_feeHistory", [2, "latest", "50"], "list of numbers"),
        ("eth_estimateGas", ["0x1"], "argument 0 (call): expected a transaction call object"),
        ("eth_estimateGas", [{"to": "0x1234"}], "argument 0 (call.to)"),
        ("eth_estimateGas", [{"to": CAROL.address, "value": 5}], "(call.value)"),
        ("eth_chainId", [1], "too many arguments, want at most 0"),
    ],
)
def test_invalid_params_name_the_argument(
    handler: JsonRpcHandler, method: str, params: list[object], needle: str
) -> None:
    """Wrong types, bad hex and missing or extra params answer -32602 naming the argument."""
    code, message = error(handler, method, *params)
    assert code == INVALID_PARAMS
    assert needle in message


def test_quantities_over_256_bits_are_refused(handler: JsonRpcHandler) -> None:
    """A block number wider than 256 bits is refused rather than parsed."""
    code, message = error(handler, "eth_getBalance", ALICE.address, "0x1" + "0" * 64)
    assert code == INVALID_PARAMS
    assert "256 bits" in message


def test_rejected_transaction_carries_the_reason(chain: FakeChain, handler: JsonRpcHandler) -> None:
    """A transaction the pool refuses answers -32000 with geth's wording of the reason."""
    raw = "0x" + signed_transfer(nonce=0).hex()
    result(handler, "eth_sendRawTransaction", raw)  # accepted (and committed: auto_commit)
    code, message = error(handler, "eth_sendRawTransaction", raw)
    assert (code, message) == (TX_REJECTED, "already known")
    code, message = error(
        handler, "eth_sendRawTransaction", "0x" + signed_transfer(nonce=0, value=2 * ETHER).hex()
    )
    assert (code, message) == (TX_REJECTED, "nonce too low")
    code, message = error(
        handler, "eth_sendRawTransaction", "0x" + signed_transfer(nonce=1, chain_id=1).hex()
    )
    assert code == TX_REJECTED
    assert message == f"chain id 1 is not this chain's ({chain.chain_id})"
    code, message = error(
        handler, "eth_sendRawTransaction", "0x" + signed_transfer(nonce=1, value=10**30).hex()
    )
    assert (code, message) == (TX_REJECTED, "insufficient funds for gas * price + value")
    code, message = error(handler, "eth_sendRawTransaction", "0xc0ffee")
    assert code == TX_REJECTED
    assert message.startswith("malformed RLP")


def test_estimate_gas_refusals(handler: JsonRpcHandler) -> None:
    """Contract calls, creations, too little gas and unaffordable values are refused clearly."""
    code, message = error(handler, "eth_estimateGas", {"to": CAROL.address, "data": "0x1234"})
    assert (code, message) == (TX_REJECTED, "gas estimation of contract calls is not supported yet")
    code, message = error(handler, "eth_estimateGas", {"data": "0x6000"})
    assert code == TX_REJECTED
    assert "contract creation" in message
    code, message = error(handler, "eth_estimateGas", {"to": CAROL.address, "gas": "0x5207"})
    assert (code, message) == (TX_REJECTED, "gas required exceeds allowance (20999)")
    poor = {"from": CAROL.address, "to": ALICE.address, "value": hex(ETHER)}
    assert error(handler, "eth_estimateGas", poor) == (
        TX_REJECTED,
        "insufficient funds for transfer",
    )


def test_state_at_missing_or_pruned_blocks(chain: FakeChain, handler: JsonRpcHandler) -> None:
    """State queries above the executed height answer -32001; pruned heights -32002."""
    code, message = error(handler, "eth_getBalance", ALICE.address, "0x9")
    assert code == RESOURCE_NOT_FOUND
    assert "block 0x9 not found" in message
    code, _ = error(handler, "eth_getBalance", ALICE.address, {"blockHash": "0x" + "11" * 32})
    assert code == RESOURCE_NOT_FOUND
    result(handler, "eth_sendRawTransaction", "0x" + signed_transfer(nonce=0).hex())
    chain.prune_state_below(1)
    code, message = error(handler, "eth_getBalance", ALICE.address, "0x0")
    assert code == RESOURCE_UNAVAILABLE
    assert "pruned" in message


def test_internal_errors_do_not_leak(chain: FakeChain, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug in a method answers -32603 "internal error" and keeps serving."""
    handler = JsonRpcHandler(chain)

    def broken() -> int:
        raise KeyError("boom")

    monkeypatch.setattr(chain, "executed_height", broken)
    assert error(handler, "eth_blockNumber") == (INTERNAL_ERROR, "internal error")
    assert result(handler, "eth_chainId") == hex(chain.chain_id)


def test_batch_with_mixed_valid_and_invalid_entries(handler: JsonRpcHandler) -> None:
    """A batch answers each entry in order, errors beside results; notifications get nothing."""
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"},
        {"jsonrpc": "2.0", "id": 2, "method": "eth_nope"},
        "garbage",
        {"jsonrpc": "2.0", "method": "eth_blockNumber"},
        {"jsonrpc": "2.0", "id": "x", "method": "eth_getBalance", "params": ["0x1"]},
    ]
    responses = raw_body(handler, json.dumps(batch))
    assert [r["id"] for r in responses] == [1, 2, None, "x"]
    assert "result" in responses[0]
    assert responses[1]["error"]["code"] == METHOD_NOT_FOUND
    assert responses[2]["error"]["code"] == INVALID_REQUEST
    assert responses[3]["error"]["code"] == INVALID_PARAMS


def test_batch_limits(handler: JsonRpcHandler) -> None:
    """An empty batch and one over the entry limit answer a single -32600."""
    assert raw_body(handler, "[]")["error"]["code"] == INVALID_REQUEST
    call = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}
    response = raw_body(handler, json.dumps([call] * 6))
    assert response["error"]["code"] == INVALID_REQUEST
    assert "exceeds the limit of 5" in response["error"]["message"]


def test_batched_submissions_reach_the_chain_in_one_call(chain: FakeChain) -> None:
    """All eth_sendRawTransaction entries of a batch are submitted together, in order."""
    handler = JsonRpcHandler(chain)
    raws = [signed_transfer(nonce=n) for n in range(3)]
    batch = [
        {"jsonrpc": "2.0", "id": n, "method": "eth_sendRawTransaction", "params": ["0x" + r.hex()]}
        for n, r in enumerate(raws)
    ]
    batch.insert(1, {"jsonrpc": "2.0", "id": 99, "method": "eth_sendRawTransaction", "params": []})
    batch.append(
        {
            "jsonrpc": "2.0",
            "id": 7,
            "method": "eth_getTransactionCount",
            "params": [ALICE.address, "latest"],
        }
    )
    responses = raw_body(handler, json.dumps(batch))
    assert chain.submitted_batches == [raws]
    assert [r["id"] for r in responses] == [0, 99, 1, 2, 7]
    assert responses[1]["error"]["code"] == INVALID_PARAMS
    assert all(r["result"].startswith("0x") for r in (responses[0], responses[2], responses[3]))
    assert responses[4]["result"] == "0x3"


def test_single_notification_gets_no_response(handler: JsonRpcHandler) -> None:
    """A request without an id is a notification: it runs and nothing is returned."""
    assert raw_body(handler, '{"jsonrpc": "2.0", "method": "eth_chainId"}') is None
    batch = [{"jsonrpc": "2.0", "method": "eth_chainId"}] * 2
    assert raw_body(handler, json.dumps(batch)) is None


def test_handler_is_reusable_across_event_loops(handler: JsonRpcHandler) -> None:
    """The handler keeps no loop-bound state between requests."""
    for _ in range(2):
        body = b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}'
        assert "result" in asyncio.run(handler.handle_body(body))  # type: ignore[operator]
