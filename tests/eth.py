"""Deterministic keys, addresses and transactions for execution and mempool tests."""

from __future__ import annotations

from functools import cache

from node.execution.keccak import keccak256
from node.execution.signing import address_of, sign_1559, sign_legacy
from node.execution.tx import DYNAMIC_FEE_TX, LEGACY_TX, TRANSFER_GAS, EthTx, decode_tx

CHAIN_ID = 4242
GWEI = 10**9
BASE_FEE = GWEI
FEE_SINK = b"\xfe" * 20


@cache
def private_key(index: int) -> bytes:
    """The private key of test account ``index`` (valid: far below the curve order)."""
    return b"\x00" + keccak256(b"lanenet test key %d" % index)[1:]


@cache
def address(index: int) -> bytes:
    return address_of(private_key(index))


def signed_transfer(
    sender: int,
    nonce: int,
    *,
    to: bytes | None = None,
    value: int = 1,
    gas_price: int = GWEI,
    priority: int | None = None,
    data: bytes = b"",
    gas_limit: int = TRANSFER_GAS,
    chain_id: int = CHAIN_ID,
) -> EthTx:
    """A signed and decoded transfer: legacy, or EIP-1559 when ``priority`` is given."""
    recipient = address(sender + 1) if to is None else to
    if priority is None:
        raw = sign_legacy(
            private_key(sender),
            chain_id=chain_id,
            nonce=nonce,
            gas_price=gas_price,
            to=recipient,
            value=value,
            gas_limit=gas_limit,
            data=data,
        )
    else:
        raw = sign_1559(
            private_key(sender),
            chain_id=chain_id,
            nonce=nonce,
            max_fee_per_gas=gas_price,
            max_priority_fee_per_gas=priority,
            to=recipient,
            value=value,
            gas_limit=gas_limit,
            data=data,
        )
    return decode_tx(raw, chain_id)


def fake_tx(
    sender: bytes,
    nonce: int,
    *,
    fee: int = GWEI,
    value: int = 1,
    size: int = 110,
    to: bytes = b"\x01" * 20,
    data: bytes = b"",
    gas_limit: int = TRANSFER_GAS,
    chain_id: int = CHAIN_ID,
    dynamic: bool = False,
) -> EthTx:
    """An unsigned transaction value, for mempool tests where signatures play no part."""
    tag = b"%d/%d/%d/%d/%d" % (nonce, fee, value, size, dynamic)
    tx_hash = keccak256(sender + tag + data)
    return EthTx(
        hash=tx_hash,
        sender=sender,
        nonce=nonce,
        gas_limit=gas_limit,
        gas_price=fee,
        max_fee_per_gas=fee,
        max_priority_fee_per_gas=fee,
        to=to,
        value=value,
        data=data,
        chain_id=chain_id,
        tx_type=DYNAMIC_FEE_TX if dynamic else LEGACY_TX,
        raw=tx_hash + b"\x00" * max(0, size - 32),
    )
