"""Canonical encoding, content digests and the bytes every signature covers."""

from __future__ import annotations

import itertools
import struct
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.crypto.hashing import DIGEST_SIZE, ZERO_DIGEST, hash_tagged
from node.crypto.signing import (
    Ed25519Signer,
    Ed25519Verifier,
    KeyedHashSigner,
    KeyedHashVerifier,
)
from node.types.encoding import (
    encode_bytes,
    encode_bytes_list,
    encode_ints,
    encode_u32,
    encode_u64,
)
from node.types.messages import (
    QC,
    Block,
    Car,
    Cut,
    CutTip,
    MsgKind,
    PoA,
    Proposal,
    Timeout,
    compute_car_digest,
    compute_payload_hash,
    genesis_cut,
    signing_bytes,
)

digests = st.binary(min_size=DIGEST_SIZE, max_size=DIGEST_SIZE)
u64s = st.integers(0, 2**64 - 1)
small = st.integers(0, 50)


# ---------------------------------------------------------------- primitive encodings


def test_integers_are_fixed_width_big_endian() -> None:
    """u64 and u32 encode as 8 and 4 big-endian bytes."""
    assert encode_u64(1) == b"\x00" * 7 + b"\x01"
    assert encode_u64(2**64 - 1) == b"\xff" * 8
    assert encode_u32(258) == b"\x00\x00\x01\x02"
    assert encode_ints([1, 2]) == encode_u32(2) + encode_u64(1) + encode_u64(2)


def test_out_of_range_integers_do_not_encode() -> None:
    """Negative or too-wide integers are refused rather than silently wrapped."""
    for bad in (-1, 2**64):
        with pytest.raises(struct.error):
            encode_u64(bad)


@settings(derandomize=True)
@given(st.lists(st.binary(max_size=8), max_size=5), st.lists(st.binary(max_size=8), max_size=5))
def test_bytes_lists_encode_injectively(a: list[bytes], b: list[bytes]) -> None:
    """Two different lists of byte strings never share an encoding (length prefixes)."""
    assert (encode_bytes_list(a) == encode_bytes_list(b)) == (a == b)


def test_length_prefix_separates_concatenations() -> None:
    """(b"ab",) and (b"a", b"b") and (b"", b"ab") encode differently."""
    encodings = {
        encode_bytes_list([b"ab"]),
        encode_bytes_list([b"a", b"b"]),
        encode_bytes_list([b"", b"ab"]),
        encode_bytes_list([b"ab", b""]),
    }
    assert len(encodings) == 4
    assert encode_bytes(b"xy") == b"\x00\x00\x00\x02xy"


def test_hash_tags_separate_domains() -> None:
    """The same bytes hashed under two tags give different 32-byte digests."""
    a, b = hash_tagged(b"car", b"data"), hash_tagged(b"cut", b"data")
    assert a != b
    assert len(a) == len(b) == DIGEST_SIZE


# ---------------------------------------------------------------- car digests


@settings(derandomize=True)
@given(small, small, digests, st.lists(st.binary(max_size=4), max_size=3).map(tuple))
def test_car_digest_binds_lane_pos_parent_and_payload(
    lane: int, pos: int, parent: bytes, txs: tuple[bytes, ...]
) -> None:
    """Changing the lane, position, parent or any transaction changes the car digest."""
    base = compute_car_digest(lane, pos, parent, compute_payload_hash(txs))
    flipped = bytes([parent[0] ^ 1]) + parent[1:]
    variants = [
        compute_car_digest(lane + 1, pos, parent, compute_payload_hash(txs)),
        compute_car_digest(lane, pos + 1, parent, compute_payload_hash(txs)),
        compute_car_digest(lane, pos, flipped, compute_payload_hash(txs)),
        compute_car_digest(lane, pos, parent, compute_payload_hash((*txs, b""))),
        compute_car_digest(lane, pos, parent, compute_payload_hash((*txs, b"x"))),
    ]
    assert base not in variants
    # lane and pos are not interchangeable
    if lane != pos:
        assert base != compute_car_digest(pos, lane, parent, compute_payload_hash(txs))


def test_car_create_derives_digest_and_detects_tampering() -> None:
    """Car.create computes the digest; changing content without it is detected."""
    car = Car.create(1, 2, ZERO_DIGEST, None, (b"a", b"b"), b"sig")
    assert car.has_valid_digest()
    assert car.size_bytes == 2
    assert not replace(car, txs=(b"a",)).has_valid_digest()
    assert not replace(car, pos=3).has_valid_digest()
    assert not replace(car, lane=0).has_valid_digest()
    assert not replace(car, parent=b"\x01" * 32).has_valid_digest()
    # signature and parent PoA are deliberately not part of the digest
    poa = PoA(1, 1, ZERO_DIGEST, (0,), (b"",))
    assert replace(car, signature=b"other", parent_poa=poa).has_valid_digest()


# ---------------------------------------------------------------- cut digests


def tips(n: int) -> tuple[CutTip, ...]:
    return tuple(CutTip(i, i + 1, bytes([i]) * 32, None) for i in range(n))


@pytest.mark.parametrize("field", ["lane", "pos", "car_digest"])
@pytest.mark.parametrize("index", [0, 2])
def test_cut_digest_changes_with_any_tip_field(field: str, index: int) -> None:
    """Changing one tip's lane, position or car digest changes the cut digest."""
    base = Cut(tips(3))
    tip = base.tips[index]
    new_value = b"\xee" * 32 if field == "car_digest" else getattr(tip, field) + 7
    changed = list(base.tips)
    changed[index] = replace(tip, **{field: new_value})
    assert Cut(tuple(changed)).digest != base.digest


def test_cut_digest_depends_on_tip_count_and_order() -> None:
    """Dropping, adding or reordering tips changes the cut digest."""
    base = Cut(tips(3))
    assert Cut(base.tips[:2]).digest != base.digest
    assert Cut((*base.tips, CutTip(3, 0, ZERO_DIGEST, None))).digest != base.digest
    assert Cut(tuple(reversed(base.tips))).digest != base.digest


def test_cut_digest_ignores_poas() -> None:
    """The cut digest covers (lane, pos, car digest) only: attaching a PoA keeps it."""
    base = Cut(tips(2))
    poa = PoA(0, 1, base.tips[0].car_digest, (0, 1), (b"a", b"b"))
    with_poa = Cut((replace(base.tips[0], poa=poa), base.tips[1]))
    assert with_poa.digest == base.digest
    assert with_poa != base


@settings(derandomize=True)
@given(
    st.lists(st.tuples(small, small, digests), min_size=1, max_size=4),
    st.lists(st.tuples(small, small, digests), min_size=1, max_size=4),
)
def test_cut_digest_is_injective_on_tip_triples(
    a: list[tuple[int, int, bytes]], b: list[tuple[int, int, bytes]]
) -> None:
    """Two cuts share a digest exactly when their (lane, pos, digest) lists are equal."""
    cut_a = Cut(tuple(CutTip(lane, pos, d, None) for lane, pos, d in a))
    cut_b = Cut(tuple(CutTip(lane, pos, d, None) for lane, pos, d in b))
    assert (cut_a.digest == cut_b.digest) == (a == b)


def test_genesis_cut_is_all_empty_tips() -> None:
    """genesis_cut(n) has n empty tips in lane order and a size-dependent digest."""
    cut = genesis_cut(4)
    assert [t.lane for t in cut.tips] == [0, 1, 2, 3]
    assert all(t.pos == 0 and t.car_digest == ZERO_DIGEST and t.poa is None for t in cut.tips)
    assert genesis_cut(4).digest != genesis_cut(5).digest


# ---------------------------------------------------------------- other digests


def test_proposal_digest_binds_slot_view_cut_and_leader() -> None:
    """Proposal.digest changes with slot, view, cut and leader but not the signature."""
    cut = Cut(tips(2))
    p = Proposal(3, 1, cut, 0, b"sig")
    for other in (
        replace(p, slot=4),
        replace(p, view=2),
        replace(p, leader=1),
        replace(p, cut=Cut(tips(3))),
    ):
        assert other.digest != p.digest
    assert replace(p, signature=b"x").digest == p.digest


def test_qc_claim_binds_phase_slot_view_and_cut_not_signers() -> None:
    """QC.claim_digest names what is certified; who signed does not change the claim."""
    qc = QC(MsgKind.PREPARE_VOTE, 1, 0, b"\x01" * 32, (0, 1, 2), (b"a", b"b", b"c"))
    for other in (
        replace(qc, phase=MsgKind.CONFIRM_ACK),
        replace(qc, slot=2),
        replace(qc, view=1),
        replace(qc, cut_digest=b"\x02" * 32),
    ):
        assert other.claim_digest != qc.claim_digest
    assert replace(qc, signers=(1, 2, 3)).claim_digest == qc.claim_digest


def test_timeout_content_binds_lock_and_last_vote() -> None:
    """Timeout.content_digest changes with its high QC and its high proposal."""
    cut = Cut(tips(2))
    qc = QC(MsgKind.PREPARE_VOTE, 1, 0, cut.digest, (0, 1, 2), (b"", b"", b""))
    prop = Proposal(1, 0, cut, 1, b"")
    bare = Timeout(1, 2, None, None, None, 0, b"")
    with_qc = replace(bare, high_qc=qc, high_qc_cut=cut)
    with_prop = replace(bare, high_prop=prop)
    contents = {
        bare.content_digest,
        with_qc.content_digest,
        with_prop.content_digest,
        replace(with_qc, high_qc=replace(qc, view=1)).content_digest,
        replace(with_prop, high_prop=replace(prop, view=1)).content_digest,
    }
    assert len(contents) == 5


def test_block_digest_binds_height_parent_and_cars() -> None:
    """Block.digest changes with height, slot, parent, cut digest and the car list."""
    car_a = Car.create(0, 1, ZERO_DIGEST, None, (b"a",), b"")
    car_b = Car.create(1, 1, ZERO_DIGEST, None, (b"b", b"c"), b"")
    block = Block(1, 1, ZERO_DIGEST, b"\x05" * 32, (car_a, car_b))
    assert block.tx_count == 3
    for other in (
        replace(block, height=2),
        replace(block, slot=2),
        replace(block, parent=b"\x01" * 32),
        replace(block, cut_digest=b"\x06" * 32),
        replace(block, cars=(car_b, car_a)),
        replace(block, cars=(car_a,)),
    ):
        assert other.digest != block.digest


# ---------------------------------------------------------------- signing bytes


SIGNED_FIELDS = {
    "kind": [MsgKind.PREPARE_VOTE, MsgKind.CONFIRM_ACK, MsgKind.PROPOSAL, MsgKind.TIMEOUT],
    "chain_id": [7, 8],
    "first": [1, 2],
    "second": [0, 1],
    "digest": [b"\x01" * 32, b"\x02" * 32],
}


def all_signed_statements() -> list[tuple[MsgKind, int, int, int, bytes]]:
    return list(itertools.product(*SIGNED_FIELDS.values()))


def test_signing_bytes_are_distinct_for_every_field_combination() -> None:
    """signing_bytes is injective over (kind, chain id, first, second, digest)."""
    statements = all_signed_statements()
    encoded = {signing_bytes(*s) for s in statements}
    assert len(encoded) == len(statements)


def test_signing_bytes_do_not_confuse_slot_and_view() -> None:
    """(slot 1, view 2) and (slot 2, view 1) sign different bytes."""
    d = b"\x03" * 32
    assert signing_bytes(MsgKind.PREPARE_VOTE, 7, 1, 2, d) != signing_bytes(
        MsgKind.PREPARE_VOTE, 7, 2, 1, d
    )


@pytest.mark.parametrize("ed25519", [False, True], ids=["keyed", "ed25519"])
def test_a_signature_verifies_only_for_its_exact_statement(ed25519: bool) -> None:
    """A signature over one (kind, chain, slot, view, digest) never verifies for another."""
    if ed25519:
        ed = Ed25519Signer(b"\x09" * 32)
        signer, verifier = ed, Ed25519Verifier([ed.public_key])
    else:
        signer, verifier = KeyedHashSigner(b"\x09" * 32), KeyedHashVerifier([b"\x09" * 32])
    statements = all_signed_statements()
    signed = statements[5]
    sig = signer.sign(signing_bytes(*signed))
    for statement in statements:
        ok = verifier.verify(0, signing_bytes(*statement), sig)
        assert ok == (statement == signed), statement
    # and only for its signer
    assert not verifier.verify(1, signing_bytes(*signed), sig)
