"""A live node's JSON-RPC answers malformed input with the right error code and a message
naming the problem: bad bodies, bad envelopes, unknown methods, bad parameters of every
method, refused transactions, and mixed batches."""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from node.execution.signing import address_of, sign_1559
from node.mempool.routing import lane_of
from node.rpc.eth_api import EthApi
from node.rpc.fake_chain import FakeChain
from node.rpc.hexjson import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    RESOURCE_NOT_FOUND,
    TX_REJECTED,
)
from node.tools import testnet as tn
from tests.integration.conftest import (
    CHAIN_ID,
    GWEI,
    VALIDATORS,
    DevAccount,
    Testnet,
    post,
    sink_address,
)

pytestmark = pytest.mark.integration

ADDRESS = "0x" + "11" * 20
HASH = "0x" + "22" * 32
METHODS = EthApi(FakeChain()).methods  # the method table the node serves


def request(method: str, *params: object, request_id: object = 1) -> dict[str, object]:
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": list(params)}


def send(testnet: Testnet, body: object, node: int = 0) -> tuple[int, Any]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return post(testnet.urls[node], raw)


def error_of(testnet: Testnet, body: object, node: int = 0) -> dict[str, Any]:
    status, reply = send(testnet, body, node)
    assert status == 200, reply
    assert isinstance(reply, dict) and "error" in reply, f"expected an error, got {reply}"
    assert set(reply["error"]) >= {"code", "message"}
    return reply


def unfunded_key(lane: int, other_than: bool = False) -> bytes:
    """A private key of an account with no funds whose lane is (or is not) ``lane``."""
    for i in range(1000):
        key = hashlib.sha256(b"lanenet-test/unfunded/%d" % i).digest()
        if (lane_of(address_of(key), VALIDATORS) == lane) != other_than:
            return key
    raise AssertionError("no such key in 1000 tries")


# ------------------------------------------------------------------------ bodies, envelopes


@pytest.mark.parametrize(
    "body",
    [
        b'{"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"',
        b"not json",
        b"\xff\xfe",
        b"",
        b'{"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"} trailing',
        b'{"jsonrpc": "2.0", "id": NaN, "method": "eth_chainId"}',
    ],
    ids=["truncated", "not-json", "not-utf8", "empty", "trailing-garbage", "nan"],
)
def test_malformed_json_body_is_a_parse_error(testnet: Testnet, body: bytes) -> None:
    """A body that is not JSON answers -32700 with id null and says it could not parse it."""
    reply = error_of(testnet, body)
    assert reply["error"]["code"] == PARSE_ERROR
    assert reply["id"] is None
    assert reply["error"]["message"].startswith("parse error")


def test_deeply_nested_json_is_a_parse_error(testnet: Testnet) -> None:
    """JSON nested deeper than the parser can follow is a parse error, not a server crash."""
    status, text = _raw_post(testnet, b"[" * 100_000 + b"]" * 100_000)
    assert status == 200, f"HTTP {status}: {text[:80]!r}"
    assert json.loads(text)["error"]["code"] == PARSE_ERROR


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("a string", "expected an object"),
        (None, "expected an object"),
        (
            {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": {}},
            "params must be an array",
        ),
        ({"id": 1, "method": "eth_chainId"}, 'jsonrpc must be "2.0"'),
        ({"jsonrpc": "1.0", "id": 1, "method": "eth_chainId"}, 'jsonrpc must be "2.0"'),
        ({"jsonrpc": "2.0", "id": 1, "method": 5}, "method must be a string"),
        ({"jsonrpc": "2.0", "id": [1], "method": "eth_chainId"}, "bad id type"),
        ({"jsonrpc": "2.0", "id": True, "method": "eth_chainId"}, "bad id type"),
        ([], "empty batch"),
        ([request("eth_chainId", request_id=i) for i in range(1001)], "exceeds the limit of 1000"),
    ],
    ids=[
        "string",
        "null",
        "params-object",
        "no-jsonrpc",
        "jsonrpc-1.0",
        "method-number",
        "id-list",
        "id-bool",
        "empty-batch",
        "batch-too-big",
    ],
)
def test_malformed_envelope_is_an_invalid_request(
    testnet: Testnet, body: object, needle: str
) -> None:
    """A JSON value that is not a JSON-RPC request answers -32600 saying what is wrong."""
    reply = error_of(testnet, body)
    assert reply["error"]["code"] == INVALID_REQUEST
    assert needle in reply["error"]["message"]


def test_unknown_method_is_named_in_the_error(testnet: Testnet) -> None:
    """An unknown method answers -32601 naming the method, with the request's id."""
    reply = error_of(testnet, request("eth_mine", request_id="abc"))
    assert reply["id"] == "abc"
    assert reply["error"]["code"] == METHOD_NOT_FOUND
    assert "eth_mine" in reply["error"]["message"]


def test_every_response_is_strict_json(testnet: Testnet) -> None:
    """Whatever id a request carries, the response is standard JSON (no NaN or Infinity)."""
    status, text = _raw_post(testnet, b'{"jsonrpc": "2.0", "id": 1e400, "method": "eth_chainId"}')
    assert status == 200
    json.loads(text, parse_constant=_reject_constant)


# ------------------------------------------------------------------------------ parameters


def _arity_cases() -> list[tuple[str, list[object], str]]:
    """For every method: one argument too many; for those with required ones: none at all."""
    cases = []
    for name, method in sorted(METHODS.items()):
        surplus: list[object] = ["0x0"] * (len(method.params) + 1)
        cases.append((name, surplus, f"too many arguments, want at most {len(method.params)}"))
        if method.required:
            cases.append((name, [], f"missing value for required argument 0 ({method.params[0]})"))
    return cases


@pytest.mark.parametrize(
    ("method", "params", "needle"), _arity_cases(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_every_method_checks_its_argument_count(
    testnet: Testnet, method: str, params: list[object], needle: str
) -> None:
    """Every method answers -32602 to a missing required argument or a surplus one, naming
    the argument or the allowed count."""
    reply = error_of(testnet, request(method, *params))
    assert reply["error"]["code"] == INVALID_PARAMS
    assert needle in reply["error"]["message"]


# (method, params, "<position> (<name>): <problem>" as the message states it)
BAD_PARAMS: list[tuple[str, list[object], str]] = [
    ("eth_getBalance", ["0xzz"], "0 (address): invalid hex string"),
    ("eth_getBalance", ["0x" + "11" * 19], "0 (address): expected 20 bytes"),
    ("eth_getBalance", ["11" * 20], "0 (address): hex string without 0x prefix"),
    ("eth_getBalance", [12], "0 (address): expected a hex string"),
    ("eth_getBalance", [ADDRESS, "0x01"], "1 (block): hex number with leading zero"),
    ("eth_getBalance", [ADDRESS, True], "1 (block): expected a hex quantity"),
    ("eth_getBalance", [ADDRESS, "newest"], "1 (block): expected a block number"),
    ("eth_getTransactionCount", ["0x123", "latest"], "0 (address): hex string of odd length"),
    ("eth_getTransactionCount", [ADDRESS, "pendingx"], "1 (block)"),
    ("eth_getTransactionCount", ["0xzz", "pending"], "0 (address)"),
    (
        "eth_feeHistory",
        ["0x", "latest"],
        '0 (blockCount): hex string "0x" has no digits',
    ),
    ("eth_feeHistory", [-1, "latest"], "0 (blockCount): must not be negative"),
    ("eth_feeHistory", ["0x2", "lates"], "1 (newestBlock)"),
    ("eth_feeHistory", ["0x2", "latest", "x"], "2 (rewardPercentiles): expected a list"),
    (
        "eth_feeHistory",
        ["0x2", "latest", [90, 10]],
        "2 (rewardPercentiles): percentiles must be ascending",
    ),
    (
        "eth_feeHistory",
        ["0x2", "latest", [10, 101]],
        "2 (rewardPercentiles): each percentile must be within",
    ),
    ("eth_estimateGas", ["x"], "0 (call): expected a transaction call object"),
    ("eth_estimateGas", [{"to": "0x12"}], "0 (call.to): expected 20 bytes"),
    ("eth_estimateGas", [{"to": ADDRESS, "value": 5}], "0 (call.value): expected a hex quantity"),
    (
        "eth_estimateGas",
        [{"to": ADDRESS, "data": "0xabc"}],
        "0 (call.data): hex string of odd length",
    ),
    ("eth_estimateGas", [{"to": ADDRESS, "from": "0xzz"}], "0 (call.from)"),
    ("eth_estimateGas", [{"to": ADDRESS, "gas": "0x0g"}], "0 (call.gas)"),
    ("eth_sendRawTransaction", ["0xzz"], "0 (data): invalid hex string"),
    ("eth_sendRawTransaction", ["abcd"], "0 (data): hex string without 0x prefix"),
    ("eth_sendRawTransaction", [12], "0 (data): expected a hex string"),
    ("eth_sendRawTransaction", ["0x"], "0 (data): empty transaction"),
    ("eth_getTransactionByHash", ["0x" + "11" * 31], "0 (hash): expected 32 bytes"),
    ("eth_getTransactionByHash", [None], "0 (hash): expected a hex string"),
    ("eth_getTransactionReceipt", ["0x123"], "0 (hash): hex string of odd length"),
    ("eth_getTransactionReceipt", [[HASH]], "0 (hash): expected a hex string"),
    ("eth_getBlockByNumber", [1, False], "0 (block): expected a hex quantity"),
    ("eth_getBlockByNumber", ["0x1", "yes"], "1 (fullTransactions): expected true or false"),
    (
        "eth_getBlockByNumber",
        ["0x" + "f" * 65, False],
        "0 (block): hex number larger than 256 bits",
    ),
    (
        "eth_getBlockByNumber",
        [{"blockNumber": "0x0", "blockHash": HASH}, False],
        "0 (block): a block object needs exactly one",
    ),
    ("eth_getBlockByHash", ["0x11", False], "0 (hash): expected 32 bytes"),
    ("eth_getBlockByHash", [HASH, 1], "1 (fullTransactions): expected true or false"),
]


@pytest.mark.parametrize(
    ("method", "params", "needle"),
    BAD_PARAMS,
    ids=[f"{method}-{i}" for i, (method, _, _) in enumerate(BAD_PARAMS)],
)
def test_bad_parameter_is_named_in_the_error(
    testnet: Testnet, method: str, params: list[object], needle: str
) -> None:
    """A parameter of the wrong type, bad hex, the wrong size or out of range answers -32602
    naming the argument's position and name and what was expected."""
    reply = error_of(testnet, request(method, *params, request_id=42))
    assert reply["id"] == 42
    assert reply["error"]["code"] == INVALID_PARAMS
    assert f"invalid argument {needle}" in reply["error"]["message"]


def test_every_method_with_parameters_has_a_bad_parameter_case() -> None:
    """The table above covers every method that takes parameters (so a new one gets a case)."""
    with_params = {name for name, m in METHODS.items() if m.params}
    assert with_params <= {method for method, _, _ in BAD_PARAMS}


def test_estimate_gas_rejects_a_malformed_block(testnet: Testnet) -> None:
    """eth_estimateGas checks its block argument even for a call without a sender."""
    reply = error_of(testnet, request("eth_estimateGas", {"to": ADDRESS}, "garbage"))
    assert reply["error"]["code"] == INVALID_PARAMS
    assert "invalid argument 1 (block)" in reply["error"]["message"]


@pytest.mark.parametrize(
    ("block", "needle"),
    [("0xffffff", "block 0xffffff not found"), ({"blockHash": HASH}, f"block {HASH} not found")],
    ids=["number", "hash"],
)
def test_state_query_of_a_missing_block_is_not_found(
    testnet: Testnet, block: object, needle: str
) -> None:
    """A balance at a block that does not exist answers -32001 naming the block."""
    reply = error_of(testnet, request("eth_getBalance", ADDRESS, block))
    assert reply["error"]["code"] == RESOURCE_NOT_FOUND
    assert needle in reply["error"]["message"]


# ---------------------------------------------------------------------------- transactions


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ("0x1234", "unsupported transaction type 18"),
        ("0xf8", "malformed RLP"),
        ("0xc0", "legacy transaction has 0 fields, not 9"),
        ("0x02c0", "EIP-1559 transaction has 0 fields, not 12"),
        (
            "0x"
            + sign_1559(
                b"\x01" * 32,
                chain_id=1,
                nonce=0,
                max_fee_per_gas=10 * GWEI,
                max_priority_fee_per_gas=GWEI,
                to=b"\x02" * 20,
                value=1,
            ).hex(),
            f"chain id 1 is not this chain's ({CHAIN_ID})",
        ),
    ],
    ids=["unknown-type", "bad-rlp", "empty-legacy", "empty-1559", "wrong-chain"],
)
@pytest.mark.parametrize("node", range(VALIDATORS))
def test_undecodable_transaction_is_refused_by_every_node(
    testnet: Testnet, raw: str, needle: str, node: int
) -> None:
    """Bytes that do not decode to a transaction for this chain answer -32000 with the
    reason, on every node (lane owner or not)."""
    reply = error_of(testnet, request("eth_sendRawTransaction", raw), node)
    assert reply["error"]["code"] == TX_REJECTED
    assert needle in reply["error"]["message"]


def test_unfunded_transfer_is_refused_by_its_lane_owner(testnet: Testnet) -> None:
    """The node that owns a sender's lane refuses a transfer it cannot pay for with geth's
    wording, -32000 'insufficient funds'."""
    owner = 0
    account = DevAccount(key := unfunded_key(owner), address_of(key))
    raw = "0x" + account.transfer(0, sink_address(0), 1).hex()
    reply = error_of(testnet, request("eth_sendRawTransaction", raw), owner)
    assert reply["error"]["code"] == TX_REJECTED
    assert "insufficient funds" in reply["error"]["message"]


def test_unfunded_transfer_is_refused_by_a_node_that_does_not_own_its_lane(
    testnet: Testnet,
) -> None:
    """A node that forwards a sender's transactions still refuses one the sender cannot pay
    for, instead of answering a hash that will never commit."""
    account = DevAccount(key := unfunded_key(0, other_than=True), address_of(key))
    raw = "0x" + account.transfer(0, sink_address(0), 1).hex()
    reply = error_of(testnet, request("eth_sendRawTransaction", raw), 0)
    assert reply["error"]["code"] == TX_REJECTED


# --------------------------------------------------------------------------------- batches


def test_batch_with_valid_and_invalid_entries_answers_each(testnet: Testnet) -> None:
    """A batch mixing good calls, bad calls, a notification and a good and a bad transaction
    answers every non-notification entry in order with its own id and result or error, and
    the good transaction commits."""
    node = 0
    sender = next(a for a in testnet.accounts if lane_of(a.address, VALIDATORS) != node)
    nonce = int(testnet.call(node, "eth_getTransactionCount", sender.hex, "pending"), 16)
    good_tx = "0x" + sender.transfer(nonce, sink_address(5), 777).hex()
    entries: list[object] = [
        request("eth_chainId", request_id=1),
        5,
        request("eth_nope", request_id=3),
        {"jsonrpc": "2.0", "method": "eth_chainId", "params": []},  # notification
        request("eth_getBalance", "0x1", request_id=4),
        request("eth_sendRawTransaction", good_tx, request_id=5),
        request("eth_sendRawTransaction", "0xf8", request_id=6),
        request("eth_getBalance", ADDRESS, request_id="seven"),
    ]
    status, replies = send(testnet, entries, node)
    assert status == 200
    assert [r.get("id") for r in replies] == [1, None, 3, 4, 5, 6, "seven"]
    by_id = {r["id"]: r for r in replies}
    assert by_id[1]["result"] == hex(CHAIN_ID)
    assert replies[1]["error"]["code"] == INVALID_REQUEST
    assert by_id[3]["error"]["code"] == METHOD_NOT_FOUND
    assert by_id[4]["error"]["code"] == INVALID_PARAMS
    assert "invalid argument 0 (address)" in by_id[4]["error"]["message"]
    tx_hash = by_id[5]["result"]
    assert isinstance(tx_hash, str) and len(tx_hash) == 66
    assert by_id[6]["error"]["code"] == TX_REJECTED
    assert "malformed RLP" in by_id[6]["error"]["message"]
    assert by_id["seven"]["result"] == "0x0"

    testnet.wait_until(
        lambda: testnet.call(node, "eth_getTransactionReceipt", tx_hash) is not None,
        "the batched transfer's receipt",
        timeout=30,
    )
    receipt = testnet.call(node, "eth_getTransactionReceipt", tx_hash)
    assert receipt["status"] == "0x1"
    # history is kept: at genesis the sender still holds its whole dev balance
    at_genesis = testnet.call(node, "eth_getBalance", sender.hex, "0x0")
    assert int(at_genesis, 16) == tn.DEV_BALANCE
    assert int(testnet.call(node, "eth_getBalance", sender.hex, "latest"), 16) < tn.DEV_BALANCE


def test_batch_of_calls_that_are_all_notifications_answers_nothing(testnet: Testnet) -> None:
    """A batch of notifications only (no ids), even malformed ones, gets an empty reply."""
    status, reply = send(
        testnet,
        [
            {"jsonrpc": "2.0", "method": "eth_chainId"},
            {"jsonrpc": "2.0", "method": "eth_getBalance", "params": ["0xzz"]},
        ],
    )
    assert status == 200
    assert reply is None


# ------------------------------------------------------------------------------------ HTTP


def test_get_is_refused_with_405(testnet: Testnet) -> None:
    """JSON-RPC is POST only; a GET answers 405 and says to use POST."""
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(testnet.urls[0], timeout=5)
    assert caught.value.code == 405
    assert b"use POST" in caught.value.read()


def test_body_over_the_limit_is_refused_with_413(testnet: Testnet) -> None:
    """A body over the 5 MiB limit answers HTTP 413 with a -32600 naming the limit."""
    status, reply = post(testnet.urls[0], b" " * (5 * 1024 * 1024 + 1))
    assert status == 413
    assert reply["error"]["code"] == INVALID_REQUEST
    assert "exceeds the limit of 5242880 bytes" in reply["error"]["message"]


def test_large_body_under_the_limit_is_read_whole(testnet: Testnet) -> None:
    """A valid request of 2 MB (under the 5 MiB limit) is read whole and answered."""
    body = request("web3_clientVersion")
    body["padding"] = "x" * 2_000_000
    status, reply = send(testnet, body)
    assert status == 200
    assert "result" in reply, reply["error"]


# ---------------------------------------------------------------------------------- helpers


def _raw_post(testnet: Testnet, body: bytes) -> tuple[int, bytes]:
    req = urllib.request.Request(testnet.urls[0], body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")
