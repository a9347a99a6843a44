"""Signed Ethereum transactions: strict decoding and sender recovery on the fast path.

Accepted: legacy transactions signed with an EIP-155 chain id (``v = 35 + 2·chain_id +
parity``) and EIP-1559 typed transactions (``0x02 || rlp([...])``). Everything else raises
``InvalidTransaction`` with a reason: malformed or non-canonical RLP, a wrong chain id,
pre-EIP-155 legacy signatures (``v`` of 27/28, replayable across chains), other typed
transactions (access-list, blob, set-code), high-s or out-of-range signatures, and
signatures from which no public key can be recovered.

The sender is recovered with coincurve over a keccak of the signing payload, and the
payload is built by slicing the raw bytes rather than decoding and re-encoding every field
(reference/costs.md: ~41 µs against ~240 µs for eth-account). coincurve releases the GIL,
so ``recover_batch`` gains from a thread pool.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from coincurve import PublicKey

try:  # the library coincurve wraps, called directly: ~6 µs less per recovery than PublicKey
    from coincurve._libsecp256k1 import ffi as _ffi
    from coincurve._libsecp256k1 import lib as _lib
    from coincurve.context import GLOBAL_CONTEXT as _CONTEXT
except ImportError:  # pragma: no cover - another coincurve layout: the public API below
    _lib = None

from node.execution import rlp
from node.execution.keccak import keccak256
from node.types.errors import InvalidInput

if TYPE_CHECKING:
    from concurrent.futures import Executor

LEGACY_TX = 0
DYNAMIC_FEE_TX = 2

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
# geth's txMaxSize: no honest transaction is larger, and decoding stays cheap
MAX_TX_BYTES = 128 * 1024
# EIP-2681: a nonce must stay below 2**64 - 1 so it can always be incremented
MAX_NONCE = 2**64 - 2
ADDRESS_SIZE = 20
# the intrinsic gas of a plain value transfer, and all it is charged here
TRANSFER_GAS = 21_000

AccessList = tuple[tuple[bytes, tuple[bytes, ...]], ...]


class InvalidTransaction(InvalidInput):
    """A transaction that cannot be decoded, is for another chain, or is badly signed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class EthTx:
    """A decoded transaction with its recovered sender.

    ``gas_price`` is the price a legacy transaction offers, and the fee cap
    (``max_fee_per_gas``) of an EIP-1559 one; a legacy transaction has
    ``max_fee_per_gas == max_priority_fee_per_gas == gas_price``.
    """

    hash: bytes
    sender: bytes
    nonce: int
    gas_limit: int
    gas_price: int
    max_fee_per_gas: int
    max_priority_fee_per_gas: int
    to: bytes | None
    value: int
    data: bytes
    chain_id: int
    tx_type: int
    raw: bytes
    access_list: AccessList = ()

    @property
    def size(self) -> int:
        return len(self.raw)

    @property
    def is_plain_transfer(self) -> bool:
        """True for a value transfer to an address with no calldata and no access list."""
        return self.to is not None and not self.data and not self.access_list

    def effective_gas_price(self, base_fee: int) -> int:
        """What one unit of gas costs the sender under ``base_fee`` (EIP-1559 rule)."""
        if self.tx_type == LEGACY_TX:
            return self.gas_price
        return min(self.max_fee_per_gas, base_fee + self.max_priority_fee_per_gas)

    def max_cost(self, base_fee: int) -> int:
        """The most this transaction can take from its sender: value plus all its gas."""
        return self.value + self.gas_limit * self.effective_gas_price(base_fee)


@dataclass(frozen=True, slots=True)
class UndecodableTx:
    """A transaction in a committed block that failed decoding; execution skips it."""

    raw: bytes
    reason: str

    @property
    def hash(self) -> bytes:
        return keccak256(self.raw)


def decode_tx(raw: bytes, chain_id: int) -> EthTx:
    """Decode a signed transaction for ``chain_id`` and recover its sender."""
    raw = bytes(raw)
    if not raw:
        raise InvalidTransaction("empty transaction")
    if len(raw) > MAX_TX_BYTES:
        raise InvalidTransaction(f"transaction of {len(raw)} bytes exceeds {MAX_TX_BYTES}")
    first = raw[0]
    try:
        if first >= 0xC0:
            return _decode_legacy(raw, chain_id)
        if first == DYNAMIC_FEE_TX:
            return _decode_dynamic_fee(raw, chain_id)
    except rlp.RlpError as error:
        raise InvalidTransaction(f"malformed RLP: {error}") from None
    if first < 0x80:
        raise InvalidTransaction(f"unsupported transaction type {first}")
    raise InvalidTransaction("malformed RLP: a transaction must be a list or a typed envelope")


def recover_batch(
    raws: Sequence[bytes], chain_id: int, executor: Executor | None = None
) -> list[EthTx | UndecodableTx]:
    """Decode every transaction of a block, in order; failures become ``UndecodableTx``.

    With an executor the work is split into chunks run concurrently; the result is the same
    list either way.
    """
    if executor is None or len(raws) < 2 * _CHUNK:
        return _decode_chunk(raws, chain_id)
    chunks = [raws[i : i + _CHUNK] for i in range(0, len(raws), _CHUNK)]
    results: list[EthTx | UndecodableTx] = []
    for part in executor.map(_decode_chunk, chunks, [chain_id] * len(chunks)):
        results.extend(part)
    return results


# large enough to amortise the executor's per-task cost (~20 µs), small enough to balance
_CHUNK = 64


def _decode_chunk(raws: Sequence[bytes], chain_id: int) -> list[EthTx | UndecodableTx]:
    results: list[EthTx | UndecodableTx] = []
    for raw in raws:
        try:
            results.append(decode_tx(raw, chain_id))
        except InvalidTransaction as error:
            results.append(UndecodableTx(bytes(raw), error.reason))
    return results


def _decode_legacy(raw: bytes, chain_id: int) -> EthTx:
    fields, offsets = rlp.decode_list(raw)
    if len(fields) != 9:
        raise InvalidTransaction(f"legacy transaction has {len(fields)} fields, not 9")
    v = rlp.decode_uint(fields[6])
    if v in (27, 28):
        raise InvalidTransaction("legacy transaction without EIP-155 chain id (replayable)")
    if v < 35:
        raise InvalidTransaction(f"invalid signature v {v}")
    tx_chain_id, parity = divmod(v - 35, 2)
    _check_chain_id(tx_chain_id, chain_id)
    # every field is checked before the costly recovery
    nonce = _decode_nonce(fields[0])
    gas_price = rlp.decode_uint(fields[1])
    gas_limit = rlp.decode_uint(fields[2], 8)
    to, value, data = _decode_to(fields[3]), rlp.decode_uint(fields[4]), _decode_data(fields[5])
    r, s = _signature_values(fields[7], fields[8])
    # signing payload: the six fields as sent, then chain_id, 0, 0 (EIP-155)
    payload = (
        raw[offsets[0] : offsets[6]] + rlp.encode_bytes(rlp.encode_uint(chain_id)) + b"\x80\x80"
    )
    signing_hash = keccak256(rlp.encode_list_header(len(payload)) + payload)
    return EthTx(
        hash=keccak256(raw),
        sender=_recover_sender(signing_hash, r, s, parity),
        nonce=nonce,
        gas_limit=gas_limit,
        gas_price=gas_price,
        max_fee_per_gas=gas_price,
        max_priority_fee_per_gas=gas_price,
        to=to,
        value=value,
        data=data,
        chain_id=chain_id,
        tx_type=LEGACY_TX,
        raw=raw,
    )


def _decode_dynamic_fee(raw: bytes, chain_id: int) -> EthTx:
    fields, offsets = rlp.decode_list(raw[1:])
    if len(fields) != 12:
        raise InvalidTransaction(f"EIP-1559 transaction has {len(fields)} fields, not 12")
    _check_chain_id(rlp.decode_uint(fields[0]), chain_id)
    max_priority = rlp.decode_uint(fields[2])
    max_fee = rlp.decode_uint(fields[3])
    if max_priority > max_fee:
        raise InvalidTransaction("max priority fee per gas exceeds max fee per gas")
    nonce, gas_limit = _decode_nonce(fields[1]), rlp.decode_uint(fields[4], 8)
    to, value, data = _decode_to(fields[5]), rlp.decode_uint(fields[6]), _decode_data(fields[7])
    access_list = _decode_access_list(fields[8])
    parity = rlp.decode_uint(fields[9], 1)
    if parity > 1:
        raise InvalidTransaction(f"invalid signature y parity {parity}")
    r, s = _signature_values(fields[10], fields[11])
    payload = raw[1 + offsets[0] : 1 + offsets[9]]
    signing_hash = keccak256(b"\x02" + rlp.encode_list_header(len(payload)) + payload)
    return EthTx(
        hash=keccak256(raw),
        sender=_recover_sender(signing_hash, r, s, parity),
        nonce=nonce,
        gas_limit=gas_limit,
        gas_price=max_fee,
        max_fee_per_gas=max_fee,
        max_priority_fee_per_gas=max_priority,
        to=to,
        value=value,
        data=data,
        chain_id=chain_id,
        tx_type=DYNAMIC_FEE_TX,
        raw=raw,
        access_list=access_list,
    )


def _check_chain_id(tx_chain_id: int, chain_id: int) -> None:
    if tx_chain_id != chain_id:
        raise InvalidTransaction(f"chain id {tx_chain_id} is not this chain's ({chain_id})")


def _signature_values(r_field: rlp.RlpItem, s_field: rlp.RlpItem) -> tuple[int, int]:
    r = rlp.decode_uint(r_field)
    s = rlp.decode_uint(s_field)
    if not 0 < r < SECP256K1_N:
        raise InvalidTransaction("signature r out of range")
    if not 0 < s <= SECP256K1_N // 2:
        raise InvalidTransaction("signature s out of range (high-s signatures are malleable)")
    return r, s


def _recover_sender(signing_hash: bytes, r: int, s: int, parity: int) -> bytes:
    rs = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    if _lib is not None:
        return _recover_sender_direct(signing_hash, rs, parity)
    signature = rs + bytes((parity,))
    try:
        public_key = PublicKey.from_signature_and_message(signature, signing_hash, hasher=None)
    except ValueError:
        raise InvalidTransaction("no public key recovers from the signature") from None
    return keccak256(public_key.format(compressed=False)[1:])[12:]


def _recover_sender_direct(signing_hash: bytes, rs: bytes, parity: int) -> bytes:
    """What ``_recover_sender`` does through coincurve's objects, in three calls into
    libsecp256k1 (the parse, the recovery and the uncompressed serialization)."""
    ctx, new = _CONTEXT.ctx, _ffi.new
    signature = new("secp256k1_ecdsa_recoverable_signature *")
    public_key = new("secp256k1_pubkey *")
    if not _lib.secp256k1_ecdsa_recoverable_signature_parse_compact(
        ctx, signature, rs, parity
    ) or not _lib.secp256k1_ecdsa_recover(ctx, public_key, signature, signing_hash):
        raise InvalidTransaction("no public key recovers from the signature")
    out = new("unsigned char[65]")
    _lib.secp256k1_ec_pubkey_serialize(
        ctx, out, new("size_t *", 65), public_key, _lib.SECP256K1_EC_UNCOMPRESSED
    )
    return keccak256(_ffi.buffer(out, 65)[1:])[12:]


def _decode_nonce(field: rlp.RlpItem) -> int:
    nonce = rlp.decode_uint(field, 8)
    if nonce > MAX_NONCE:
        raise InvalidTransaction(f"nonce {nonce} above the maximum {MAX_NONCE}")
    return nonce


def _decode_to(field: rlp.RlpItem) -> bytes | None:
    if not isinstance(field, bytes):
        raise InvalidTransaction("recipient is a list, not an address")
    if not field:
        return None
    if len(field) != ADDRESS_SIZE:
        raise InvalidTransaction(f"recipient of {len(field)} bytes, not {ADDRESS_SIZE}")
    return field


def _decode_data(field: rlp.RlpItem) -> bytes:
    if not isinstance(field, bytes):
        raise InvalidTransaction("data is a list, not bytes")
    return field


def _decode_access_list(field: rlp.RlpItem) -> AccessList:
    if not isinstance(field, list):
        raise InvalidTransaction("access list is not a list")
    entries = []
    for entry in field:
        if not isinstance(entry, list) or len(entry) != 2:
            raise InvalidTransaction("access list entry is not [address, storage keys]")
        address, keys = entry
        if not isinstance(address, bytes) or len(address) != ADDRESS_SIZE:
            raise InvalidTransaction("access list address is not 20 bytes")
        if not isinstance(keys, list) or not all(
            isinstance(key, bytes) and len(key) == 32 for key in keys
        ):
            raise InvalidTransaction("access list storage keys are not 32-byte strings")
        entries.append((address, tuple(key for key in keys if isinstance(key, bytes))))
    return tuple(entries)
