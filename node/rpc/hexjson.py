"""Ethereum JSON-RPC value encoding: hex quantities and data, and strict parameter parsing.

Per the Ethereum JSON-RPC spec a *quantity* is ``0x`` + lowercase hex with no leading
zeros (``0x0`` for zero) and *data* is ``0x`` + two hex digits per byte. Parsing is as
strict as geth's: a bad parameter raises ``RpcError(INVALID_PARAMS)`` whose message names
the argument (position and name) and says what was expected and what came.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from node.types.errors import InvalidInput

PARSE_ERROR: Final = -32700
INVALID_REQUEST: Final = -32600
METHOD_NOT_FOUND: Final = -32601
INVALID_PARAMS: Final = -32602
INTERNAL_ERROR: Final = -32603
TX_REJECTED: Final = -32000
"""geth's code for a transaction the pool refused (and other server-side refusals)."""
RESOURCE_NOT_FOUND: Final = -32001
"""EIP-1474: the block a state query names does not exist (yet)."""
RESOURCE_UNAVAILABLE: Final = -32002
"""EIP-1474: the state asked for is pruned from this node."""
LIMIT_EXCEEDED: Final = -32005

MAX_QUANTITY_BITS: Final = 256

_QUANTITY = re.compile(r"0x(0|[1-9a-fA-F][0-9a-fA-F]*)")
_DATA = re.compile(r"0x([0-9a-fA-F]{2})*")

BlockTag = Literal["latest", "pending", "earliest", "safe", "finalized"]
BLOCK_TAGS: Final[frozenset[str]] = frozenset(
    ["latest", "pending", "earliest", "safe", "finalized"]
)


class RpcError(InvalidInput):
    """A JSON-RPC error response: ``code``, a message a person can act on, optional data."""

    def __init__(self, code: int, message: str, data: object = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_json(self) -> dict[str, object]:
        error: dict[str, object] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


def invalid_param(index: int, name: str, problem: str) -> RpcError:
    return RpcError(INVALID_PARAMS, f"invalid argument {index} ({name}): {problem}")


# ------------------------------------------------------------------------------- encode


def encode_quantity(value: int) -> str:
    if value < 0:
        raise ValueError(f"quantities are unsigned, got {value}")
    return hex(value)


def encode_data(value: bytes) -> str:
    return "0x" + value.hex()


def encode_optional_data(value: bytes | None) -> str | None:
    return None if value is None else encode_data(value)


# -------------------------------------------------------------------------------- parse


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def parse_quantity(value: object, index: int, name: str) -> int:
    """A hex quantity string such as ``0x1a``."""
    if isinstance(value, bool) or not isinstance(value, str):
        raise invalid_param(
            index, name, f"expected a hex quantity string like 0x1a, got {_shown(value)}"
        )
    if not value.startswith("0x"):
        raise invalid_param(index, name, f"hex string without 0x prefix: {_shown(value)}")
    if value == "0x":
        raise invalid_param(index, name, 'hex string "0x" has no digits')
    if not _QUANTITY.fullmatch(value):
        if re.fullmatch(r"0x0[0-9a-fA-F]+", value):
            raise invalid_param(
                index, name, f"hex number with leading zero digits: {_shown(value)}"
            )
        raise invalid_param(index, name, f"invalid hex quantity {_shown(value)}")
    if len(value) - 2 > MAX_QUANTITY_BITS // 4:
        raise invalid_param(index, name, f"hex number larger than {MAX_QUANTITY_BITS} bits")
    return int(value, 16)


def parse_count(value: object, index: int, name: str) -> int:
    """A count given either as a JSON integer or as a hex quantity (as geth accepts)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise invalid_param(index, name, f"must not be negative, got {value}")
        return value
    if isinstance(value, str) and value.isdecimal():
        return int(value)
    return parse_quantity(value, index, name)


def parse_data(value: object, index: int, name: str, size: int | None = None) -> bytes:
    """Hex data ``0x...`` with an even number of digits, of exactly ``size`` bytes if given."""
    if not isinstance(value, str):
        raise invalid_param(index, name, f"expected a hex string, got {_shown(value)}")
    if not value.startswith("0x"):
        raise invalid_param(index, name, f"hex string without 0x prefix: {_shown(value)}")
    if len(value) % 2:
        raise invalid_param(index, name, f"hex string of odd length: {_shown(value)}")
    if not _DATA.fullmatch(value):
        raise invalid_param(index, name, f"invalid hex string {_shown(value)}")
    data = bytes.fromhex(value[2:])
    if size is not None and len(data) != size:
        raise invalid_param(index, name, f"expected {size} bytes of hex, got {len(data)} bytes")
    return data


def parse_address(value: object, index: int, name: str) -> bytes:
    return parse_data(value, index, name, size=20)


def parse_hash(value: object, index: int, name: str) -> bytes:
    return parse_data(value, index, name, size=32)


def parse_bool(value: object, index: int, name: str) -> bool:
    if not isinstance(value, bool):
        raise invalid_param(index, name, f"expected true or false, got {_shown(value)}")
    return value


@dataclass(frozen=True, slots=True)
class BlockId:
    """A block named by tag, number or hash (exactly one of them is set)."""

    tag: BlockTag | None = None
    number: int | None = None
    hash: bytes | None = None


def parse_block_id(value: object, index: int, name: str = "block") -> BlockId:
    """A tag (latest, pending, earliest, safe, finalized), a hex number or an EIP-1898 object."""
    if isinstance(value, str) and value in BLOCK_TAGS:
        return BlockId(tag=value)  # type: ignore[arg-type]  # checked against BLOCK_TAGS
    if isinstance(value, dict):
        return _parse_block_object(value, index, name)
    if isinstance(value, str) and not value.startswith("0x"):
        raise invalid_param(
            index,
            name,
            f"expected a block number or one of {sorted(BLOCK_TAGS)}, got {_shown(value)}",
        )
    return BlockId(number=parse_quantity(value, index, name))


def _parse_block_object(value: dict[str, object], index: int, name: str) -> BlockId:
    keys = set(value) - {"requireCanonical"}
    if keys == {"blockNumber"}:
        inner = parse_block_id(value["blockNumber"], index, name)
        if inner.hash is not None:
            raise invalid_param(index, name, "blockNumber must be a number or a tag")
        return inner
    if keys == {"blockHash"}:
        return BlockId(hash=parse_hash(value["blockHash"], index, name))
    raise invalid_param(index, name, "a block object needs exactly one of blockNumber, blockHash")
