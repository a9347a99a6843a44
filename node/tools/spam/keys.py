"""The spammer's account pool and a transfer signer that keeps each key loaded.

Pool keys derive from a seed (``sha256("lanenet-spam/" + seed + "/" + i)``), so a run can
be repeated against the same accounts. ``TransferSigner`` produces exactly the bytes of
``node.execution.signing.sign_1559`` (a unit test checks it) but reuses a loaded
``coincurve.PrivateKey``: building one derives the public key, which costs more than the
signature itself.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from coincurve import PrivateKey

from node.execution import rlp
from node.execution.keccak import keccak256
from node.execution.signing import address_of
from node.execution.tx import DYNAMIC_FEE_TX, TRANSFER_GAS
from node.mempool.routing import lane_of
from node.types.errors import ConfigError

GWEI = 10**9
# Every spam transfer goes to this address; its value is the send time in milliseconds.
SINK = bytes.fromhex("5e4d000000000000000000000000000000005e4d")
_PREFIX = bytes((DYNAMIC_FEE_TX,))
# derivation stops if lanes are this lopsided (it cannot happen with a uniform lane hash)
_MAX_DERIVE_FACTOR = 64


@dataclass(frozen=True, slots=True)
class PoolAccount:
    key: bytes
    address: bytes
    lane: int


def pool_key(seed: bytes, index: int) -> bytes:
    return hashlib.sha256(b"lanenet-spam/" + seed + b"/%d" % index).digest()


def derive_pool(seed: bytes, count: int, lanes: int, balanced: bool) -> list[PoolAccount]:
    """``count`` accounts; with ``balanced``, exactly ``count / lanes`` in every lane
    (keys whose lane is already full are skipped), grouped lane after lane."""
    if balanced and count % lanes:
        raise ConfigError(f"{count} accounts do not split evenly over {lanes} lanes")
    quota = count // lanes if balanced else count
    by_lane: list[list[PoolAccount]] = [[] for _ in range(lanes)]
    taken = 0
    index = 0
    while taken < count:
        if index > _MAX_DERIVE_FACTOR * count + 1000:
            raise ConfigError("could not balance the account pool over the lanes")
        key = pool_key(seed, index)
        index += 1
        address = address_of(key)
        lane = lane_of(address, lanes)
        bucket = by_lane[lane] if balanced else by_lane[0]
        if len(bucket) < quota:
            bucket.append(PoolAccount(key, address, lane))
            taken += 1
    return [account for bucket in by_lane for account in bucket]


def lane_groups(pool: list[PoolAccount], lanes: int) -> list[list[int]]:
    """Indices of ``pool`` by lane."""
    groups: list[list[int]] = [[] for _ in range(lanes)]
    for i, account in enumerate(pool):
        groups[account.lane].append(i)
    return groups


class TransferSigner:
    """Signs EIP-1559 value transfers of one chain at one fee."""

    __slots__ = ("chain_id", "max_fee", "priority_fee")

    def __init__(self, chain_id: int, max_fee: int = 2 * GWEI, priority_fee: int = GWEI) -> None:
        self.chain_id = chain_id
        self.max_fee = max_fee
        self.priority_fee = priority_fee

    def max_cost(self, value: int) -> int:
        """What the mempool reserves from the sender's balance for one transfer."""
        return value + TRANSFER_GAS * self.max_fee

    def sign(self, key: PrivateKey, nonce: int, to: bytes, value: int) -> tuple[bytes, bytes]:
        """The raw transaction and its hash."""
        fields: list[rlp.Encodable] = [
            self.chain_id,
            nonce,
            self.priority_fee,
            self.max_fee,
            TRANSFER_GAS,
            to,
            value,
            b"",
            [],
        ]
        signature = key.sign_recoverable(keccak256(_PREFIX + rlp.encode(fields)), hasher=None)
        r = int.from_bytes(signature[:32], "big")
        s = int.from_bytes(signature[32:64], "big")
        raw = _PREFIX + rlp.encode([*fields, signature[64], r, s])
        return raw, keccak256(raw)
