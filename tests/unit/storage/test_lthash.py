"""The LtHash state commitment: pinned test vectors, agreement with a plain reference
implementation, order independence and incremental updates equal to hashing from scratch."""

from __future__ import annotations

import random

import blake3
import pytest

from node.storage.lthash import EMPTY, LtHash, hash_pair

EMPTY_DIGEST = "be2a8de3dcf46c94ce85cdc8e07ac308f4d8a95490d956c38d780fd610db0813"
SMALL_STATE_DIGEST = "08f1d1d863baac2c109cf7cedd16b0bd5e87bb4a2f8e3b6359e4b3c76fc93652"
# three accounts as the state store encodes them: ACCOUNT key, then nonce u64 + balance u256
SMALL_STATE = [
    (b"\x07" + bytes([i]) * 20, i.to_bytes(8, "big") + (10**18 * i).to_bytes(32, "big"))
    for i in range(1, 4)
]


def reference_lthash(pairs: list[tuple[bytes, bytes]]) -> bytes:
    """The spec, written out plainly: keyed BLAKE3 of (len(key) u32 BE, key, value) to 2048
    bytes, read as 1024 little-endian uint16, summed lane by lane mod 2^16; digest = BLAKE3
    of the lanes as little-endian bytes."""
    key = blake3.blake3(b"lanenet/state-lthash/v1").digest()
    lanes = [0] * 1024
    for k, v in pairs:
        out = blake3.blake3(len(k).to_bytes(4, "big") + k + v, key=key).digest(2048)
        for i in range(1024):
            lanes[i] = (lanes[i] + out[2 * i] + 256 * out[2 * i + 1]) % 65536
    return blake3.blake3(b"".join(x.to_bytes(2, "little") for x in lanes)).digest()


def test_the_empty_state_is_all_zero_lanes() -> None:
    """No pairs: 1024 zero lanes, whose digest is BLAKE3 of 2 KiB of zeros (pinned)."""
    assert EMPTY.lanes() == [0] * 1024
    assert EMPTY.to_bytes() == bytes(2048)
    assert EMPTY.digest().hex() == EMPTY_DIGEST
    assert blake3.blake3(bytes(2048)).hexdigest() == EMPTY_DIGEST
    assert LtHash.of([]) == EMPTY


def test_a_small_state_matches_its_pinned_digest_and_the_reference() -> None:
    """Three accounts hash to the pinned digest, and the plain implementation agrees."""
    assert LtHash.of(SMALL_STATE).digest().hex() == SMALL_STATE_DIGEST
    assert reference_lthash(SMALL_STATE).hex() == SMALL_STATE_DIGEST


def test_the_order_of_pairs_does_not_matter() -> None:
    """Any permutation of the same pairs, added at once or one by one, gives the same hash."""
    rng = random.Random(7)
    pairs = [(rng.randbytes(21), rng.randbytes(40)) for _ in range(50)]
    expected = LtHash.of(pairs)
    shuffled = pairs[:]
    rng.shuffle(shuffled)
    one_by_one = EMPTY
    for pair in shuffled:
        one_by_one = one_by_one.update(added=[pair])
    assert LtHash.of(shuffled) == expected
    assert one_by_one == expected


def test_incremental_writes_equal_hashing_the_final_state_from_scratch() -> None:
    """Writes key by key (subtract the old pair, add the new) end where a from-scratch hash
    of the final state is, including deletions."""
    rng = random.Random(3)
    state: dict[bytes, bytes] = {}
    lthash = EMPTY
    keys = [rng.randbytes(21) for _ in range(20)]
    for _ in range(300):
        key = rng.choice(keys)
        new = None if rng.random() < 0.2 else rng.randbytes(40)
        old = state.get(key)
        removed = [] if old is None else [(key, old)]
        added = [] if new is None else [(key, new)]
        lthash = lthash.update(added, removed)
        if new is None:
            state.pop(key, None)
        else:
            state[key] = new
    assert lthash == LtHash.of(state.items())
    assert lthash.digest() == reference_lthash(list(state.items()))


def test_removing_everything_returns_to_the_empty_hash() -> None:
    """Subtracting each added pair (mod 2^16 wraps both ways) gives all zeros again."""
    full = LtHash.of(SMALL_STATE)
    assert full != EMPTY
    assert full.update(removed=SMALL_STATE) == EMPTY
    assert full.combine(full, subtract=True) == EMPTY
    assert EMPTY.update(removed=SMALL_STATE).combine(full) == EMPTY


def test_key_and_value_boundaries_are_not_ambiguous() -> None:
    """(b"ab", b"c") and (b"a", b"bc") hash differently: the key length is hashed first."""
    assert hash_pair(b"ab", b"c") != hash_pair(b"a", b"bc")
    assert len(hash_pair(b"k", b"v")) == 2048


def test_lanes_round_trip_through_bytes() -> None:
    """to_bytes/from_bytes round-trip; a wrong length is a ValueError."""
    value = LtHash.of(SMALL_STATE)
    assert LtHash.from_bytes(value.to_bytes()) == value
    assert hash(LtHash.from_bytes(value.to_bytes())) == hash(value)
    with pytest.raises(ValueError, match="2048"):
        LtHash.from_bytes(b"\x00" * 10)
