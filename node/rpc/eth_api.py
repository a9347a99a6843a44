"""The Ethereum JSON-RPC methods lanenet serves, over a ``ChainView``.

Each method declares its parameter names; ``EthApi.call`` checks the count (missing or
extra arguments are ``-32602`` naming the argument) and the method parses each value
strictly (``hexjson``). Queries see the chain up to the *executed* height: ``latest``,
``pending``, ``safe`` and ``finalized`` all name the latest executed block (a committed
block is final, and a block has state and receipts only once executed), and blocks
committed but not yet executed are not listed. ``pending`` differs only for
``eth_getTransactionCount``, where it counts this node's mempool.

Fees are fixed: ``eth_gasPrice`` is base fee + suggested tip, and ``eth_feeHistory``
reports the base fee for every block. ``eth_estimateGas`` covers native transfers (21000
gas) and refuses calls with data or without a recipient until the EVM lands.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from node import __version__
from node.rpc.chain_view import ChainView, HistoryUnavailable, SubmitResult
from node.rpc.eth_format import Json, format_block, format_receipt, format_tx
from node.rpc.hexjson import (
    INVALID_PARAMS,
    RESOURCE_NOT_FOUND,
    RESOURCE_UNAVAILABLE,
    TX_REJECTED,
    BlockId,
    RpcError,
    encode_data,
    encode_quantity,
    invalid_param,
    parse_address,
    parse_block_id,
    parse_bool,
    parse_count,
    parse_data,
    parse_hash,
    parse_quantity,
)

TRANSFER_GAS: Final = 21_000
MAX_FEE_HISTORY_BLOCKS: Final = 1024
MAX_RAW_TX_BYTES: Final = 128 * 1024
CLIENT_VERSION: Final = (
    f"lanenet/v{__version__}/python{sys.version_info.major}.{sys.version_info.minor}"
)

Params = list[object]
Runner = Callable[[Params], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class Method:
    """One JSON-RPC method: its parameter names, how many are required, and its body."""

    name: str
    params: tuple[str, ...]
    required: int
    run: Runner

    def check_arity(self, params: Params) -> None:
        if len(params) > len(self.params):
            raise RpcError(INVALID_PARAMS, f"too many arguments, want at most {len(self.params)}")
        if len(params) < self.required:
            missing = len(params)
            raise RpcError(
                INVALID_PARAMS,
                f"missing value for required argument {missing} ({self.params[missing]})",
            )


def submit_result_json(result: SubmitResult) -> str:
    """The JSON-RPC result for one submitted transaction, or its rejection as ``-32000``."""
    if not result.accepted or result.tx_hash is None:
        raise RpcError(TX_REJECTED, result.reason or "transaction rejected")
    return encode_data(result.tx_hash)


def parse_raw_tx(params: Params) -> bytes:
    raw = parse_data(params[0], 0, "data")
    if not raw:
        raise invalid_param(0, "data", "empty transaction")
    if len(raw) > MAX_RAW_TX_BYTES:
        raise invalid_param(
            0, "data", f"transaction of {len(raw)} bytes exceeds {MAX_RAW_TX_BYTES}"
        )
    return raw


class EthApi:
    """The method table and the method bodies, over one ``ChainView``."""

    SEND_RAW: Final = "eth_sendRawTransaction"

    def __init__(self, chain: ChainView, client_version: str = CLIENT_VERSION) -> None:
        self._chain = chain
        self._client_version = client_version
        specs: list[tuple[str, tuple[str, ...], int, Runner]] = [
            ("web3_clientVersion", (), 0, self._client_version_),
            ("net_version", (), 0, self._net_version),
            ("net_listening", (), 0, self._net_listening),
            ("net_peerCount", (), 0, self._net_peer_count),
            ("eth_chainId", (), 0, self._chain_id),
            ("eth_syncing", (), 0, self._syncing),
            ("eth_accounts", (), 0, self._accounts),
            ("eth_blockNumber", (), 0, self._block_number),
            ("eth_gasPrice", (), 0, self._gas_price),
            ("eth_maxPriorityFeePerGas", (), 0, self._max_priority_fee),
            (
                "eth_feeHistory",
                ("blockCount", "newestBlock", "rewardPercentiles"),
                2,
                self._fee_history,
            ),
            ("eth_getBalance", ("address", "block"), 1, self._get_balance),
            ("eth_getTransactionCount", ("address", "block"), 1, self._get_tx_count),
            ("eth_estimateGas", ("call", "block"), 1, self._estimate_gas),
            (self.SEND_RAW, ("data",), 1, self._send_raw),
            ("eth_getTransactionByHash", ("hash",), 1, self._get_tx),
            ("eth_getTransactionReceipt", ("hash",), 1, self._get_receipt),
            ("eth_getBlockByNumber", ("block", "fullTransactions"), 2, self._block_by_number),
            ("eth_getBlockByHash", ("hash", "fullTransactions"), 2, self._block_by_hash),
            ("lanenet_status", (), 0, self._lanenet_status),
        ]
        self.methods: dict[str, Method] = {
            name: Method(name, params, required, run) for name, params, required, run in specs
        }

    async def call(self, method: Method, params: Params) -> object:
        method.check_arity(params)
        return await method.run(params)

    # -------------------------------------------------------------------- block lookup

    def _state_height(self, block: BlockId) -> int:
        """The executed height a state query at ``block`` reads; errors if it has none."""
        executed = self._chain.executed_height()
        if block.hash is not None:
            info = self._chain.get_block_by_hash(block.hash)
            if info is None or info.height > executed:
                raise RpcError(RESOURCE_NOT_FOUND, f"block {encode_data(block.hash)} not found")
            return info.height
        if block.number is not None:
            if block.number > executed:
                raise RpcError(
                    RESOURCE_NOT_FOUND,
                    f"block {encode_quantity(block.number)} not found: the latest executed "
                    f"block is {encode_quantity(executed)}",
                )
            return block.number
        return 0 if block.tag == "earliest" else executed

    def _account(self, params: Params) -> tuple[int, int]:
        address = parse_address(params[0], 0, "address")
        return self._read_account(address, _optional_block(params, 1))

    def _read_account(self, address: bytes, block: BlockId) -> tuple[int, int]:
        height = self._state_height(block)
        try:
            return self._chain.get_account(address, height)
        except HistoryUnavailable as exc:
            raise RpcError(RESOURCE_UNAVAILABLE, str(exc)) from exc

    # ----------------------------------------------------------------- simple values

    async def _client_version_(self, params: Params) -> object:
        return self._client_version

    async def _net_version(self, params: Params) -> object:
        return str(self._chain.chain_id)

    async def _net_listening(self, params: Params) -> object:
        return True

    async def _net_peer_count(self, params: Params) -> object:
        return encode_quantity(self._chain.status().peers)

    async def _lanenet_status(self, params: Params) -> object:
        """The node's status (heights, slot, view, peers) as plain JSON numbers."""
        st = self._chain.status()
        return {
            "node_id": st.node_id,
            "chain_id": st.chain_id,
            "committed_height": st.committed_height,
            "executed_height": st.executed_height,
            "archived_height": st.archived_height,
            "slot": st.slot,
            "view": st.view,
            "peers": st.peers,
            "validators": st.validators,
            "quorum": st.quorum,
            "mempool_txs": st.mempool_txs,
            "last_commit_ms": st.last_commit_ms,
            "version": st.version,
            "certified_height": st.certified_height,
        }

    async def _chain_id(self, params: Params) -> object:
        return encode_quantity(self._chain.chain_id)

    async def _syncing(self, params: Params) -> object:
        return False

    async def _accounts(self, params: Params) -> object:
        return []

    async def _block_number(self, params: Params) -> object:
        return encode_quantity(self._chain.executed_height())

    async def _gas_price(self, params: Params) -> object:
        return encode_quantity(self._chain.base_fee() + self._chain.suggested_priority_fee())

    async def _max_priority_fee(self, params: Params) -> object:
        return encode_quantity(self._chain.suggested_priority_fee())

    # ------------------------------------------------------------------------ accounts

    async def _get_balance(self, params: Params) -> object:
        return encode_quantity(self._account(params)[1])

    async def _get_tx_count(self, params: Params) -> object:
        if len(params) > 1 and params[1] == "pending":
            address = parse_address(params[0], 0, "address")
            return encode_quantity(self._chain.pending_nonce(address))
        return encode_quantity(self._account(params)[0])

    # ------------------------------------------------------------------------------ fees

    async def _fee_history(self, params: Params) -> object:
        count = parse_count(params[0], 0, "blockCount")
        newest = self._state_height(parse_block_id(params[1], 1, "newestBlock"))
        percentiles = _parse_percentiles(params[2] if len(params) > 2 else None)
        count = min(count, MAX_FEE_HISTORY_BLOCKS, newest + 1)
        oldest = newest - count + 1
        blocks = [self._chain.get_block(h) for h in range(oldest, newest + 1)]
        base_fees = [b.base_fee if b else self._chain.base_fee() for b in blocks]
        out: Json = {
            "oldestBlock": encode_quantity(oldest if count else newest),
            "baseFeePerGas": [encode_quantity(f) for f in [*base_fees, self._chain.base_fee()]]
            if count
            else [],
            "gasUsedRatio": [
                (b.gas_used or 0) / b.gas_limit if b and b.gas_limit else 0.0 for b in blocks
            ],
        }
        if percentiles is not None:
            tip = encode_quantity(self._chain.suggested_priority_fee())
            out["reward"] = [[tip] * len(percentiles) for _ in blocks]
        return out

    async def _estimate_gas(self, params: Params) -> object:
        call = params[0]
        if not isinstance(call, dict):
            raise invalid_param(0, "call", "expected a transaction call object")
        if call.get("to") is None:
            raise RpcError(TX_REJECTED, "gas estimation of contract creation is not supported yet")
        parse_address(call["to"], 0, "call.to")
        data = call.get("data", call.get("input"))
        if data is not None and parse_data(data, 0, "call.data"):
            raise RpcError(TX_REJECTED, "gas estimation of contract calls is not supported yet")
        value = parse_quantity(call["value"], 0, "call.value") if "value" in call else 0
        gas_cap = parse_quantity(call["gas"], 0, "call.gas") if call.get("gas") else None
        if gas_cap is not None and gas_cap < TRANSFER_GAS:
            raise RpcError(TX_REJECTED, f"gas required exceeds allowance ({gas_cap})")
        block = _optional_block(params, 1)
        if call.get("from") is not None:
            sender = parse_address(call["from"], 0, "call.from")
            _, balance = self._read_account(sender, block)
            if balance < value:
                raise RpcError(TX_REJECTED, "insufficient funds for transfer")
        return encode_quantity(TRANSFER_GAS)

    # ---------------------------------------------------------------------- transactions

    async def _send_raw(self, params: Params) -> object:
        [result] = await self._chain.submit_raw_txs([parse_raw_tx(params)])
        return submit_result_json(result)

    async def _get_tx(self, params: Params) -> object:
        tx = self._chain.get_tx(parse_hash(params[0], 0, "hash"))
        if tx is None:
            return None
        base_fee = None
        if tx.location is not None and tx.location.height <= self._chain.executed_height():
            block = self._chain.get_block(tx.location.height)
            base_fee = block.base_fee if block else None
        return format_tx(tx, base_fee)

    async def _get_receipt(self, params: Params) -> object:
        receipt = self._chain.get_receipt(parse_hash(params[0], 0, "hash"))
        return None if receipt is None else format_receipt(receipt)

    # ---------------------------------------------------------------------------- blocks

    async def _block_by_number(self, params: Params) -> object:
        block_id = parse_block_id(params[0], 0)
        full = parse_bool(params[1], 1, "fullTransactions")
        if block_id.hash is not None:
            return await self._block_by_hash([encode_data(block_id.hash), full])
        executed = self._chain.executed_height()
        if block_id.number is None:
            height = 0 if block_id.tag == "earliest" else executed
        else:
            height = block_id.number
        if height > executed:
            return None
        block = self._chain.get_block(height, full_txs=full)
        return None if block is None else format_block(block)

    async def _block_by_hash(self, params: Params) -> object:
        block_hash = parse_hash(params[0], 0, "hash")
        full = parse_bool(params[1], 1, "fullTransactions")
        block = self._chain.get_block_by_hash(block_hash, full_txs=full)
        if block is None or block.height > self._chain.executed_height():
            return None
        return format_block(block)


def _optional_block(params: Params, index: int) -> BlockId:
    """The block argument at ``index``, ``latest`` when it is left out."""
    return parse_block_id(params[index], index) if len(params) > index else BlockId(tag="latest")


def _parse_percentiles(value: object) -> list[float] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(
        isinstance(p, int | float) and not isinstance(p, bool) for p in value
    ):
        raise invalid_param(2, "rewardPercentiles", "expected a list of numbers")
    if any(not 0 <= p <= 100 for p in value):
        raise invalid_param(2, "rewardPercentiles", "each percentile must be within [0, 100]")
    if any(a > b for a, b in zip(value, value[1:], strict=False)):
        raise invalid_param(2, "rewardPercentiles", "percentiles must be ascending")
    return [float(p) for p in value]
