"""Transactions decode to the same sender and hash as eth-account, and bad ones are refused."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from eth_account import Account as EthAccount
from eth_utils.address import to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from node.execution import rlp
from node.execution.keccak import keccak256
from node.execution.signing import address_of, sign_1559, sign_legacy
from node.execution.tx import (
    DYNAMIC_FEE_TX,
    LEGACY_TX,
    MAX_TX_BYTES,
    SECP256K1_N,
    InvalidTransaction,
    UndecodableTx,
    decode_tx,
    recover_batch,
)
from node.types.errors import InvalidInput
from tests.eth import CHAIN_ID, GWEI, address, private_key

private_keys = st.binary(min_size=32, max_size=32).filter(
    lambda k: 0 < int.from_bytes(k, "big") < SECP256K1_N
)
addresses = st.binary(min_size=20, max_size=20)
u256 = st.integers(0, 2**256 - 1)
nonces = st.integers(0, 2**64 - 2)
gas_limits = st.integers(0, 2**64 - 1)
chain_ids = st.integers(1, 2**60)


def hex_address(raw: bytes) -> str:
    """The checksummed form eth-account insists on."""
    return str(to_checksum_address(raw))


@settings(max_examples=60, deadline=None)
@given(
    key=private_keys,
    chain_id=chain_ids,
    nonce=nonces,
    gas_price=u256,
    gas=gas_limits,
    to=st.none() | addresses,
    value=u256,
    data=st.binary(max_size=100),
)
def test_legacy_from_eth_account(
    key: bytes,
    chain_id: int,
    nonce: int,
    gas_price: int,
    gas: int,
    to: bytes | None,
    value: int,
    data: bytes,
) -> None:
    """A legacy transaction signed by eth-account decodes to its sender, hash and fields."""
    fields: dict[str, Any] = {
        "chainId": chain_id,
        "nonce": nonce,
        "gasPrice": gas_price,
        "gas": gas,
        "value": value,
        "data": data,
    }
    if to is not None:
        fields["to"] = hex_address(to)
    signed = EthAccount.sign_transaction(fields, key)
    tx = decode_tx(signed.raw_transaction, chain_id)
    assert tx.sender == bytes.fromhex(EthAccount.from_key(key).address[2:])
    assert tx.hash == bytes(signed.hash)
    assert (tx.tx_type, tx.nonce, tx.gas_price, tx.gas_limit) == (LEGACY_TX, nonce, gas_price, gas)
    assert (tx.to, tx.value, tx.data, tx.chain_id) == (to, value, data, chain_id)


@settings(max_examples=60, deadline=None)
@given(
    key=private_keys,
    chain_id=chain_ids,
    nonce=nonces,
    fees=st.tuples(u256, u256).map(sorted),
    gas=gas_limits,
    to=st.none() | addresses,
    value=u256,
    data=st.binary(max_size=100),
    access_list=st.lists(
        st.tuples(addresses, st.lists(st.binary(min_size=32, max_size=32), max_size=2)),
        max_size=2,
    ),
)
def test_dynamic_fee_from_eth_account(
    key: bytes,
    chain_id: int,
    nonce: int,
    fees: list[int],
    gas: int,
    to: bytes | None,
    value: int,
    data: bytes,
    access_list: list[tuple[bytes, list[bytes]]],
) -> None:
    """An EIP-1559 transaction signed by eth-account decodes to its sender, hash and fields."""
    priority, max_fee = fees
    fields: dict[str, Any] = {
        "type": 2,
        "chainId": chain_id,
        "nonce": nonce,
        "maxFeePerGas": max_fee,
        "maxPriorityFeePerGas": priority,
        "gas": gas,
        "value": value,
        "data": data,
        "accessList": [
            {"address": hex_address(a), "storageKeys": ["0x" + k.hex() for k in keys]}
            for a, keys in access_list
        ],
    }
    if to is not None:
        fields["to"] = hex_address(to)
    signed = EthAccount.sign_transaction(fields, key)
    tx = decode_tx(signed.raw_transaction, chain_id)
    assert tx.sender == bytes.fromhex(EthAccount.from_key(key).address[2:])
    assert tx.hash == bytes(signed.hash)
    assert (tx.tx_type, tx.max_fee_per_gas, tx.max_priority_fee_per_gas) == (
        DYNAMIC_FEE_TX,
        max_fee,
        priority,
    )
    assert (tx.nonce, tx.gas_limit, tx.to, tx.value, tx.data) == (nonce, gas, to, value, data)
    assert tx.access_list == tuple((a, tuple(keys)) for a, keys in access_list)


@settings(max_examples=40, deadline=None)
@given(
    key=private_keys,
    chain_id=chain_ids,
    nonce=nonces,
    price=u256,
    to=st.none() | addresses,
    value=u256,
    data=st.binary(max_size=64),
    dynamic=st.booleans(),
)
def test_our_signatures_recover_in_eth_account(
    key: bytes,
    chain_id: int,
    nonce: int,
    price: int,
    to: bytes | None,
    value: int,
    data: bytes,
    dynamic: bool,
) -> None:
    """Transactions from node.execution.signing recover to the signer in eth-account and here."""
    if dynamic:
        raw = sign_1559(
            key,
            chain_id=chain_id,
            nonce=nonce,
            max_fee_per_gas=price,
            max_priority_fee_per_gas=price // 2,
            to=to,
            value=value,
            data=data,
        )
    else:
        raw = sign_legacy(
            key, chain_id=chain_id, nonce=nonce, gas_price=price, to=to, value=value, data=data
        )
    expected = EthAccount.from_key(key).address
    assert EthAccount.recover_transaction(raw) == expected
    assert address_of(key) == bytes.fromhex(expected[2:])
    tx = decode_tx(raw, chain_id)
    assert tx.sender == address_of(key)
    assert tx.hash == keccak256(raw)


def legacy_fields(raw: bytes) -> list[rlp.RlpItem]:
    fields, _ = rlp.decode_list(raw)
    return fields


def transfer(**overrides: Any) -> bytes:
    fields: dict[str, Any] = {
        "chain_id": CHAIN_ID,
        "nonce": 0,
        "gas_price": GWEI,
        "to": address(1),
        "value": 5,
    }
    fields.update(overrides)
    return sign_legacy(private_key(0), **fields)


def transfer_1559(**overrides: Any) -> bytes:
    fields: dict[str, Any] = {
        "chain_id": CHAIN_ID,
        "nonce": 0,
        "max_fee_per_gas": 2 * GWEI,
        "max_priority_fee_per_gas": GWEI,
        "to": address(1),
        "value": 5,
    }
    fields.update(overrides)
    return sign_1559(private_key(0), **fields)


def test_wrong_chain_id_rejected() -> None:
    """A transaction signed for another chain is refused, legacy or EIP-1559."""
    with pytest.raises(InvalidTransaction, match="chain id 7 is not this chain's"):
        decode_tx(transfer(chain_id=7), CHAIN_ID)
    with pytest.raises(InvalidTransaction, match="chain id 7 is not this chain's"):
        decode_tx(transfer_1559(chain_id=7), CHAIN_ID)


def test_pre_eip155_legacy_rejected() -> None:
    """A legacy signature without a chain id (v = 27/28) is replayable and refused."""
    signed = EthAccount.sign_transaction(
        {"nonce": 0, "gasPrice": GWEI, "gas": 21000, "to": hex_address(address(1)), "value": 1},
        private_key(0),
    )
    with pytest.raises(InvalidTransaction, match="without EIP-155"):
        decode_tx(signed.raw_transaction, CHAIN_ID)


def with_high_s(raw: bytes) -> bytes:
    """The same legacy signature in its malleable form: s' = n - s, parity flipped."""
    fields = legacy_fields(raw)
    v = rlp.decode_uint(fields[6])
    s = rlp.decode_uint(fields[8])
    fields[6] = rlp.encode_uint(v + 1 if (v - 35) % 2 == 0 else v - 1)
    fields[8] = rlp.encode_uint(SECP256K1_N - s)
    return rlp.encode(fields)


def test_high_s_rejected() -> None:
    """The high-s twin of a valid signature recovers the same key, yet is refused."""
    raw = transfer()
    malleated = with_high_s(raw)
    assert EthAccount.recover_transaction(malleated) == EthAccount.recover_transaction(raw)
    with pytest.raises(InvalidTransaction, match="high-s"):
        decode_tx(malleated, CHAIN_ID)


def replace_field(raw: bytes, index: int, value: rlp.RlpItem) -> bytes:
    fields = legacy_fields(raw)
    fields[index] = value
    return rlp.encode(fields)


def replace_field_1559(raw: bytes, index: int, value: rlp.RlpItem) -> bytes:
    fields, _ = rlp.decode_list(raw[1:])
    fields[index] = value
    return raw[:1] + rlp.encode(fields)


@pytest.mark.parametrize(
    ("make_raw", "message"),
    [
        (lambda: b"", "empty"),
        (lambda: b"\x01" + transfer_1559()[1:], "unsupported transaction type 1"),
        (lambda: b"\x03" + transfer_1559()[1:], "unsupported transaction type 3"),
        (lambda: b"\x83abc", "malformed RLP"),
        (lambda: transfer() + b"\x00", "malformed RLP: 1 trailing"),
        (lambda: transfer()[:-1], "malformed RLP"),
        (lambda: transfer_1559() + b"\x80", "malformed RLP: 1 trailing"),
        (lambda: rlp.encode(legacy_fields(transfer())[:8]), "8 fields, not 9"),
        (lambda: b"\x02" + rlp.encode([b""] * 11), "11 fields, not 12"),
        (lambda: replace_field(transfer(), 6, rlp.encode_uint(30)), "invalid signature v 30"),
        (lambda: replace_field(transfer(), 7, b""), "r out of range"),
        (lambda: replace_field(transfer(), 8, b""), "s out of range"),
        (lambda: replace_field(transfer(), 7, rlp.encode_uint(SECP256K1_N)), "r out of range"),
        (lambda: replace_field(transfer(), 3, b"\x01" * 19), "recipient of 19 bytes"),
        (lambda: replace_field(transfer(), 3, []), "recipient is a list"),
        (lambda: replace_field(transfer(), 5, [b""]), "data is a list"),
        (lambda: replace_field(transfer(), 0, b"\x00\x01"), "leading zero"),
        (lambda: replace_field(transfer(), 0, b"\xff" * 8), "above the maximum"),
        (lambda: replace_field(transfer(), 2, b"\x01" * 9), "longer than 8 bytes"),
        (lambda: replace_field(transfer(), 4, b"\x01" * 33), "longer than 32 bytes"),
        (lambda: replace_field_1559(transfer_1559(), 9, b"\x02"), "y parity 2"),
        (lambda: replace_field_1559(transfer_1559(), 8, b""), "access list is not a list"),
        (lambda: replace_field_1559(transfer_1559(), 8, [[b"\x01" * 20]]), "entry"),
        (lambda: replace_field_1559(transfer_1559(), 8, [[b"\x01" * 19, []]]), "address"),
        (lambda: replace_field_1559(transfer_1559(), 8, [[b"\x01" * 20, [b"k"]]]), "keys"),
        (lambda: transfer_1559(max_priority_fee_per_gas=3 * GWEI), "priority fee per gas exceeds"),
        (lambda: transfer(data=b"\x00" * MAX_TX_BYTES), "exceeds"),
    ],
)
def test_bad_transactions_rejected(make_raw: Any, message: str) -> None:
    """Each kind of bad transaction raises InvalidTransaction with a reason saying why."""
    with pytest.raises(InvalidTransaction, match=message) as caught:
        decode_tx(make_raw(), CHAIN_ID)
    assert isinstance(caught.value, InvalidInput)
    assert message.lower() in caught.value.reason.lower()


def test_tampered_payload_recovers_another_sender() -> None:
    """Changing a signed field changes the recovered sender (the signature covers it)."""
    raw = transfer()
    tampered = replace_field(raw, 4, rlp.encode_uint(10**18))
    assert decode_tx(tampered, CHAIN_ID).sender != address(0)


def test_unrecoverable_signature_rejected() -> None:
    """An r that is not the x coordinate of any curve point yields no public key."""
    # x = 5 has no y on secp256k1 (5**3 + 7 = 132 is not a square mod p)
    raw = replace_field(transfer(), 7, rlp.encode_uint(5))
    with pytest.raises(InvalidTransaction, match="no public key"):
        decode_tx(raw, CHAIN_ID)


def test_effective_gas_price() -> None:
    """Legacy pays its gas price; EIP-1559 pays min(max fee, base fee + priority)."""
    legacy = decode_tx(transfer(gas_price=3 * GWEI), CHAIN_ID)
    assert legacy.effective_gas_price(GWEI) == 3 * GWEI
    dynamic = decode_tx(transfer_1559(max_fee_per_gas=5 * GWEI), CHAIN_ID)
    assert dynamic.effective_gas_price(GWEI) == 2 * GWEI
    assert dynamic.effective_gas_price(4 * GWEI) == 5 * GWEI
    assert dynamic.max_cost(GWEI) == 5 + 21_000 * 2 * GWEI


def test_recover_batch_marks_failures_in_place() -> None:
    """A bad transaction in a batch becomes an UndecodableTx at its position; others decode."""
    raws = [transfer(nonce=i) for i in range(3)]
    raws.insert(1, with_high_s(raws[0]))
    result = recover_batch(raws, CHAIN_ID)
    assert isinstance(result[1], UndecodableTx)
    assert "high-s" in result[1].reason
    assert result[1].hash == keccak256(raws[1])
    assert [tx.nonce for tx in result if not isinstance(tx, UndecodableTx)] == [0, 1, 2]


def test_recover_batch_with_threads_matches_sequential() -> None:
    """Splitting a large batch across a thread pool returns the same list in the same order."""
    raws = [transfer(nonce=i) for i in range(300)]
    raws[150] = b"\xc0"
    with ThreadPoolExecutor(2) as pool:
        assert recover_batch(raws, CHAIN_ID, pool) == recover_batch(raws, CHAIN_ID)
