"""Client API values ⇄ protobuf (proto/lanenet/v1/client.proto).

The one module of ``node.rpc`` that imports generated code (as ``node.wire.codec`` is for
the peer protocol). Encoding takes ``chain_view`` values built by the node; decoding (on
the client side) takes replies from a node and checks lengths, raising
``MalformedMessage`` naming the field.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import grpc

from node.rpc.chain_view import (
    ADDRESS_SIZE,
    HASH_SIZE,
    BlockInfo,
    ChainStatus,
    ReceiptInfo,
    SubmitResult,
    TxInfo,
    TxLocation,
)
from node.types.errors import MalformedMessage
from node.wire.gen.lanenet.v1 import client_pb2 as pb
from node.wire.gen.lanenet.v1 import client_pb2_grpc as pb_grpc

TxBatchMsg = pb.TxBatch
SubmitResultsMsg = pb.SubmitResults
GetBlockRequestMsg = pb.GetBlockRequest
BlockMsg = pb.ClientBlock
GetTransactionRequestMsg = pb.GetTransactionRequest
TxMsg = pb.ClientTx
GetReceiptRequestMsg = pb.GetReceiptRequest
ReceiptMsg = pb.ClientReceipt
StatusRequestMsg = pb.StatusRequest
StatusMsg = pb.NodeStatus
StreamRequestMsg = pb.StreamRequest
BlockSummaryMsg = pb.BlockSummary
SnapshotManifestRequestMsg = pb.SnapshotManifestRequest
SnapshotManifestMsg = pb.SnapshotManifest
SnapshotChunkRequestMsg = pb.SnapshotChunkRequest
SnapshotChunkMsg = pb.SnapshotChunk
CommittedBlocksRequestMsg = pb.CommittedBlocksRequest
CommittedBlockMsg = pb.CommittedBlock
CommittedBlocksMsg = pb.CommittedBlocks

MAX_AMOUNT_BYTES: Final = 32


# ------------------------------------------------------------------ client-side values


@dataclass(frozen=True, slots=True)
class BlockSummary:
    """One committed block as the stream delivers it."""

    height: int
    hash: bytes
    slot: int
    timestamp_ms: int
    tx_hashes: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class RawBlock:
    """A block from ``GetBlock``: its header values, and its raw transactions if asked for."""

    info: BlockInfo
    raw_txs: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class TxRecord:
    """A transaction from ``GetTransaction``; ``location`` is None while it is pending."""

    hash: bytes
    raw: bytes
    sender: bytes
    to: bytes | None
    nonce: int
    value: int
    location: TxLocation | None


# ----------------------------------------------------------------------- service glue


def add_servicer(servicer: Any, server: grpc.aio.Server) -> None:
    """Register an object with the ``Client`` service's methods on ``server``."""
    # generated gRPC glue carries no annotations
    pb_grpc.add_ClientServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]


def make_stub(channel: grpc.aio.Channel) -> Any:
    return pb_grpc.ClientStub(channel)  # type: ignore[no-untyped-call]  # generated, unannotated


# ---------------------------------------------------------------------------- amounts


def encode_amount(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def decode_amount(data: bytes, name: str) -> int:
    if len(data) > MAX_AMOUNT_BYTES:
        raise MalformedMessage(f"{name}: amount of {len(data)} bytes exceeds {MAX_AMOUNT_BYTES}")
    return int.from_bytes(data, "big")


def _exact(data: bytes, size: int, name: str) -> bytes:
    if len(data) != size:
        raise MalformedMessage(f"{name}: expected {size} bytes, got {len(data)}")
    return bytes(data)


def _optional(data: bytes, size: int, name: str) -> bytes | None:
    return None if not data else _exact(data, size, name)


# ---------------------------------------------------------------------------- encoding


def encode_submit_results(results: Sequence[SubmitResult]) -> pb.SubmitResults:
    return pb.SubmitResults(
        results=[
            pb.SubmitResult(accepted=r.accepted, tx_hash=r.tx_hash or b"", reason=r.reason)
            for r in results
        ]
    )


def encode_block(block: BlockInfo) -> pb.ClientBlock:
    return pb.ClientBlock(
        height=block.height,
        hash=block.hash,
        parent_hash=block.parent_hash,
        slot=block.slot,
        timestamp_ms=block.timestamp_ms,
        tx_hashes=block.tx_hashes,
        raw_txs=[tx.raw for tx in block.txs] if block.txs is not None else [],
        executed=block.is_executed,
        gas_used=block.gas_used or 0,
        gas_limit=block.gas_limit,
        base_fee=encode_amount(block.base_fee),
        state_root=block.state_root or b"",
        size=block.size,
    )


def encode_tx(tx: TxInfo) -> pb.ClientTx:
    msg = pb.ClientTx(
        hash=tx.hash,
        raw=tx.raw,
        sender=tx.sender,
        to=tx.to or b"",
        nonce=tx.nonce,
        value=encode_amount(tx.value),
        pending=tx.location is None,
    )
    if tx.location is not None:
        msg.height = tx.location.height
        msg.block_hash = tx.location.block_hash
        msg.index = tx.location.index
    return msg


def encode_receipt(receipt: ReceiptInfo) -> pb.ClientReceipt:
    return pb.ClientReceipt(
        tx_hash=receipt.tx_hash,
        height=receipt.location.height,
        block_hash=receipt.location.block_hash,
        index=receipt.location.index,
        status=receipt.status,
        gas_used=receipt.gas_used,
        cumulative_gas_used=receipt.cumulative_gas_used,
        effective_gas_price=encode_amount(receipt.effective_gas_price),
        tx_type=receipt.tx_type,
        sender=receipt.sender,
        to=receipt.to or b"",
        contract_address=receipt.contract_address or b"",
    )


def encode_status(status: ChainStatus) -> pb.NodeStatus:
    return pb.NodeStatus(
        node_id=status.node_id,
        chain_id=status.chain_id,
        committed_height=status.committed_height,
        executed_height=status.executed_height,
        archived_height=status.archived_height,
        slot=status.slot,
        view=status.view,
        peers=status.peers,
        validators=status.validators,
        quorum=status.quorum,
        mempool_txs=status.mempool_txs,
        last_commit_ms=status.last_commit_ms or 0,
        version=status.version,
    )


def encode_summary(block: BlockInfo) -> pb.BlockSummary:
    return pb.BlockSummary(
        height=block.height,
        hash=block.hash,
        slot=block.slot,
        timestamp_ms=block.timestamp_ms,
        tx_hashes=block.tx_hashes,
    )


def stream_start(request: pb.StreamRequest) -> int | None:
    return request.start_height if request.HasField("start_height") else None


def block_selector(request: pb.GetBlockRequest) -> int | bytes | None:
    """The height or hash a ``GetBlockRequest`` names; None for the latest block."""
    which = request.WhichOneof("block")
    if which == "height":
        return int(request.height)
    if which == "hash":
        return _exact(request.hash, HASH_SIZE, "hash")
    return None


def request_hash(data: bytes, name: str) -> bytes:
    return _exact(data, HASH_SIZE, name)


# ------------------------------------------------------------------------- client side


def encode_block_request(block: int | bytes | None, full_txs: bool) -> pb.GetBlockRequest:
    if isinstance(block, int):
        return pb.GetBlockRequest(height=block, full_txs=full_txs)
    if isinstance(block, bytes):
        return pb.GetBlockRequest(hash=block, full_txs=full_txs)
    return pb.GetBlockRequest(latest=True, full_txs=full_txs)


def encode_stream_request(start_height: int | None) -> pb.StreamRequest:
    if start_height is None:
        return pb.StreamRequest()
    return pb.StreamRequest(start_height=start_height)


def decode_submit_results(msg: pb.SubmitResults, expected: int) -> list[SubmitResult]:
    if len(msg.results) != expected:
        raise MalformedMessage(f"results: expected {expected}, got {len(msg.results)}")
    return [
        SubmitResult(
            accepted=r.accepted,
            tx_hash=_optional(r.tx_hash, HASH_SIZE, "tx_hash"),
            reason=r.reason,
        )
        for r in msg.results
    ]


def decode_block(msg: pb.ClientBlock) -> RawBlock:
    info = BlockInfo(
        height=msg.height,
        hash=_exact(msg.hash, HASH_SIZE, "hash"),
        parent_hash=_exact(msg.parent_hash, HASH_SIZE, "parent_hash"),
        slot=msg.slot,
        timestamp_ms=msg.timestamp_ms,
        tx_hashes=tuple(_exact(h, HASH_SIZE, "tx_hashes") for h in msg.tx_hashes),
        gas_limit=msg.gas_limit,
        base_fee=decode_amount(msg.base_fee, "base_fee"),
        size=msg.size,
        gas_used=msg.gas_used if msg.executed else None,
        state_root=_optional(msg.state_root, HASH_SIZE, "state_root"),
    )
    return RawBlock(info=info, raw_txs=tuple(bytes(t) for t in msg.raw_txs))


def decode_tx(msg: pb.ClientTx) -> TxRecord:
    location = None
    if not msg.pending:
        location = TxLocation(
            height=msg.height,
            block_hash=_exact(msg.block_hash, HASH_SIZE, "block_hash"),
            index=msg.index,
        )
    return TxRecord(
        hash=_exact(msg.hash, HASH_SIZE, "hash"),
        raw=bytes(msg.raw),
        sender=_exact(msg.sender, ADDRESS_SIZE, "sender"),
        to=_optional(msg.to, ADDRESS_SIZE, "to"),
        nonce=msg.nonce,
        value=decode_amount(msg.value, "value"),
        location=location,
    )


def decode_receipt(msg: pb.ClientReceipt) -> ReceiptInfo:
    return ReceiptInfo(
        tx_hash=_exact(msg.tx_hash, HASH_SIZE, "tx_hash"),
        location=TxLocation(
            height=msg.height,
            block_hash=_exact(msg.block_hash, HASH_SIZE, "block_hash"),
            index=msg.index,
        ),
        tx_type=msg.tx_type,
        sender=_exact(msg.sender, ADDRESS_SIZE, "sender"),
        to=_optional(msg.to, ADDRESS_SIZE, "to"),
        status=msg.status,
        gas_used=msg.gas_used,
        cumulative_gas_used=msg.cumulative_gas_used,
        effective_gas_price=decode_amount(msg.effective_gas_price, "effective_gas_price"),
        contract_address=_optional(msg.contract_address, ADDRESS_SIZE, "contract_address"),
    )


def decode_status(msg: pb.NodeStatus) -> ChainStatus:
    return ChainStatus(
        node_id=msg.node_id,
        chain_id=msg.chain_id,
        committed_height=msg.committed_height,
        executed_height=msg.executed_height,
        archived_height=msg.archived_height,
        slot=msg.slot,
        view=msg.view,
        peers=msg.peers,
        validators=msg.validators,
        quorum=msg.quorum,
        mempool_txs=msg.mempool_txs,
        last_commit_ms=msg.last_commit_ms or None,
        version=msg.version,
    )


def decode_summary(msg: pb.BlockSummary) -> BlockSummary:
    return BlockSummary(
        height=msg.height,
        hash=_exact(msg.hash, HASH_SIZE, "hash"),
        slot=msg.slot,
        timestamp_ms=msg.timestamp_ms,
        tx_hashes=tuple(_exact(h, HASH_SIZE, "tx_hashes") for h in msg.tx_hashes),
    )
