"""What the client APIs need from a node: the ``ChainView`` port and the values it returns.

The node (``runtime/node.py``) implements ``ChainView`` over its stores, mempool and
consensus state; ``node.rpc.memory_chain.MemoryChain`` is the in-memory twin the tests
serve. The JSON-RPC server, the gRPC client service and the health endpoints read the
chain only through this port, so none of them imports storage, mempool or consensus.

Heights: block 1 is the first committed slot; height 0 is genesis (the state before any
block, and a block with no transactions). A block is *committed* when consensus has
ordered it and *executed* once its state writes and receipts exist; execution trails
consensus. State reads and receipts exist only up to the executed height.

Query methods are synchronous and must answer quickly (they run on the event loop);
``submit_raw_txs`` and ``wait_for_execution`` are the only coroutines.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Protocol

from node.types.errors import InvalidInput

HASH_SIZE: Final = 32
ADDRESS_SIZE: Final = 20
BLOOM_SIZE: Final = 256
ZERO_HASH: Final = b"\x00" * HASH_SIZE
EMPTY_BLOOM: Final = b"\x00" * BLOOM_SIZE

LEGACY_TX: Final = 0
ACCESS_LIST_TX: Final = 1
DYNAMIC_FEE_TX: Final = 2


class HistoryUnavailable(InvalidInput):
    """A state read at a height this node cannot serve: pruned, or not executed yet."""


# -------------------------------------------------------------------------- transactions


@dataclass(frozen=True, slots=True)
class TxLocation:
    """Where a committed transaction sits: block height, block hash, index in the block."""

    height: int
    block_hash: bytes
    index: int


@dataclass(frozen=True, slots=True)
class TxInfo:
    """A decoded signed Ethereum transaction; ``location`` is None while it is pending.

    ``gas_price`` is set for legacy and access-list transactions, ``max_fee_per_gas`` and
    ``max_priority_fee_per_gas`` for dynamic-fee ones. ``v`` is the signature's v as sent
    (27/28 or EIP-155 ``chain_id * 2 + 35 + parity`` for legacy, the y parity 0/1 for typed).
    """

    hash: bytes
    raw: bytes
    tx_type: int
    chain_id: int | None
    nonce: int
    sender: bytes
    to: bytes | None
    value: int
    gas: int
    gas_price: int | None
    max_fee_per_gas: int | None
    max_priority_fee_per_gas: int | None
    data: bytes
    v: int
    r: int
    s: int
    location: TxLocation | None = None


@dataclass(frozen=True, slots=True)
class LogInfo:
    """One event log of a receipt (empty for native transfers; the EVM adds them later)."""

    address: bytes
    topics: tuple[bytes, ...]
    data: bytes
    log_index: int


@dataclass(frozen=True, slots=True)
class ReceiptInfo:
    """The outcome of an executed transaction; ``status`` is 1 for success, 0 for revert."""

    tx_hash: bytes
    location: TxLocation
    tx_type: int
    sender: bytes
    to: bytes | None
    status: int
    gas_used: int
    cumulative_gas_used: int
    effective_gas_price: int
    contract_address: bytes | None = None
    logs: tuple[LogInfo, ...] = ()
    logs_bloom: bytes = EMPTY_BLOOM


# -------------------------------------------------------------------------------- blocks


@dataclass(frozen=True, slots=True)
class BlockInfo:
    """A committed block as clients see it.

    ``timestamp_ms`` is the wall-clock time at which this node recorded the commit (slots
    carry no time). ``gas_used`` and ``state_root`` are None until the block is executed.
    ``txs`` holds the full transactions only when they were asked for (``full_txs=True``);
    ``tx_hashes`` is always complete and in block order.
    """

    height: int
    hash: bytes
    parent_hash: bytes
    slot: int
    timestamp_ms: int
    tx_hashes: tuple[bytes, ...]
    gas_limit: int
    base_fee: int
    size: int
    gas_used: int | None = None
    state_root: bytes | None = None
    txs: tuple[TxInfo, ...] | None = None

    @property
    def is_executed(self) -> bool:
        return self.gas_used is not None


# ------------------------------------------------------------------------ submit, status


@dataclass(frozen=True, slots=True)
class SubmitResult:
    """The fate of one submitted raw transaction.

    ``tx_hash`` is set whenever the bytes decoded far enough to hash them (also for most
    rejections). ``reason`` is empty when accepted; otherwise it uses geth's wording where
    geth has one (``nonce too low``, ``already known``,
    ``insufficient funds for gas * price + value``, ``intrinsic gas too low``,
    ``invalid sender``, ``transaction type not supported``, ``max fee per gas less than
    block base fee``, ``txpool is full``, ``oversized data``, ...), because ethers and
    web3.py classify errors by these strings.
    """

    accepted: bool
    tx_hash: bytes | None
    reason: str = ""

    @classmethod
    def ok(cls, tx_hash: bytes) -> SubmitResult:
        return cls(accepted=True, tx_hash=tx_hash)

    @classmethod
    def rejected(cls, reason: str, tx_hash: bytes | None = None) -> SubmitResult:
        return cls(accepted=False, tx_hash=tx_hash, reason=reason)


@dataclass(frozen=True, slots=True)
class ChainStatus:
    """A snapshot of the node for status queries and readiness.

    ``peers`` counts connected validator peers (not this node); ``quorum`` is the number of
    validators, this node included, whose votes make a quorum (2f+1). ``last_commit_ms``
    is the wall-clock time of the latest commit (None before the first one).
    """

    node_id: str
    chain_id: int
    committed_height: int
    executed_height: int
    archived_height: int
    slot: int
    view: int
    peers: int
    validators: int
    quorum: int
    mempool_txs: int
    last_commit_ms: int | None
    version: str
    certified_height: int = 0
    """The last height an execution certificate covers (2f+1 validators signed the same
    state commitment after it); 0 if none is known (a full node does not see them)."""


# ---------------------------------------------------------------------------------- port


class ChainView(Protocol):
    """The node as seen by its client APIs (JSON-RPC, gRPC client service, health)."""

    @property
    def chain_id(self) -> int:
        """The EIP-155 chain id every transaction must be signed for."""
        ...

    def committed_height(self) -> int:
        """Height of the latest committed block (0 before the first commit)."""
        ...

    def executed_height(self) -> int:
        """Height of the latest executed block; never above ``committed_height()``."""
        ...

    def get_block(self, height: int, *, full_txs: bool = False) -> BlockInfo | None:
        """The committed block at ``height`` (0 is genesis), or None if there is none yet."""
        ...

    def get_block_by_hash(self, block_hash: bytes, *, full_txs: bool = False) -> BlockInfo | None:
        """The committed block with this hash, or None."""
        ...

    def get_account(self, address: bytes, height: int | None = None) -> tuple[int, int]:
        """``(nonce, balance)`` after executing block ``height`` (None: the executed height).

        Unknown accounts are ``(0, 0)``. Raises ``HistoryUnavailable`` for a height above
        the executed height or below the oldest state this node keeps.
        """
        ...

    def pending_nonce(self, address: bytes) -> int:
        """The next nonce to use: the executed nonce, advanced past this node's mempool."""
        ...

    def get_tx(self, tx_hash: bytes) -> TxInfo | None:
        """A committed transaction (with its location) or a pending one in the mempool."""
        ...

    def get_receipt(self, tx_hash: bytes) -> ReceiptInfo | None:
        """The receipt of an executed transaction, or None (unknown, pending, not executed)."""
        ...

    def base_fee(self) -> int:
        """The base fee per gas that the next block charges, in wei."""
        ...

    def suggested_priority_fee(self) -> int:
        """A priority fee per gas (tip) that gets a transaction included promptly, in wei."""
        ...

    async def submit_raw_txs(self, raws: list[bytes]) -> list[SubmitResult]:
        """Admit signed transactions to the mempool: one result per input, in order."""
        ...

    async def wait_for_execution(self, above: int) -> int:
        """Wait until the executed height exceeds ``above``; return the executed height.
        Block streams follow it: a block is readable (with receipts) once executed."""
        ...

    def status(self) -> ChainStatus:
        """Heights, consensus position, peers and load of this node, right now."""
        ...
