"""Signing Ethereum transactions with coincurve, for tests, the spammer and benchmarks.

Validators never sign transactions; this is the client side of ``tx.decode_tx``. libsecp256k1
always produces low-s signatures, which is what ``decode_tx`` demands.
"""

from __future__ import annotations

from coincurve import PrivateKey

from node.execution import rlp
from node.execution.keccak import keccak256
from node.execution.tx import DYNAMIC_FEE_TX, TRANSFER_GAS, AccessList


def address_of(private_key: bytes) -> bytes:
    """The 20-byte Ethereum address of a 32-byte secp256k1 private key."""
    public_key = PrivateKey(private_key).public_key.format(compressed=False)
    return keccak256(public_key[1:])[12:]


def sign_legacy(
    private_key: bytes,
    *,
    chain_id: int,
    nonce: int,
    gas_price: int,
    to: bytes | None,
    value: int,
    gas_limit: int = TRANSFER_GAS,
    data: bytes = b"",
) -> bytes:
    """A raw legacy transaction signed with an EIP-155 chain id."""
    fields: list[rlp.Encodable] = [nonce, gas_price, gas_limit, to or b"", value, data]
    signing_hash = keccak256(rlp.encode([*fields, chain_id, 0, 0]))
    r, s, parity = _sign(private_key, signing_hash)
    return rlp.encode([*fields, chain_id * 2 + 35 + parity, r, s])


def sign_1559(
    private_key: bytes,
    *,
    chain_id: int,
    nonce: int,
    max_fee_per_gas: int,
    max_priority_fee_per_gas: int,
    to: bytes | None,
    value: int,
    gas_limit: int = TRANSFER_GAS,
    data: bytes = b"",
    access_list: AccessList = (),
) -> bytes:
    """A raw EIP-1559 (type 2) transaction."""
    encoded_access_list: list[rlp.Encodable] = [
        [address, list(keys)] for address, keys in access_list
    ]
    fields: list[rlp.Encodable] = [
        chain_id,
        nonce,
        max_priority_fee_per_gas,
        max_fee_per_gas,
        gas_limit,
        to or b"",
        value,
        data,
        encoded_access_list,
    ]
    prefix = bytes((DYNAMIC_FEE_TX,))
    signing_hash = keccak256(prefix + rlp.encode(fields))
    r, s, parity = _sign(private_key, signing_hash)
    return prefix + rlp.encode([*fields, parity, r, s])


def _sign(private_key: bytes, signing_hash: bytes) -> tuple[int, int, int]:
    signature = PrivateKey(private_key).sign_recoverable(signing_hash, hasher=None)
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    return r, s, signature[64]
