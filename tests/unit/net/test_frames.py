"""Stream frames and the handshake: round trips, MACs, key agreement, defensive decoding."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.crypto.signing import Ed25519Signer
from node.net.frames import (
    MAC_SIZE,
    Ack,
    BatchLimits,
    Hello,
    check_ack_mac,
    check_batch_limits,
    check_batch_mac,
    compute_ack_mac,
)
from node.net.grpc_codec import (
    decode_batch,
    decode_frame,
    decode_hello,
    decode_tx_batch,
    encode_ack,
    encode_batch,
    encode_batch_with_mac,
    encode_hello,
)
from node.net.handshake import Handshake, compute_hello_digest
from node.types.committee import Committee
from node.types.errors import InvalidInput, InvalidSignature, MalformedMessage
from tests.unit.net.helpers import make_keys, verifier_of

LIMITS = BatchLimits(max_messages=16, max_txs=16, max_message_size=1000, max_tx_size=100)
KEY = b"k" * 32
NOW = 1_700_000_000_000


def open_frame(data: bytes, key: bytes, index: int) -> tuple[list[bytes], list[bytes]]:
    batch = decode_batch(data, 1 << 20)
    check_batch_mac(key, index, batch)
    check_batch_limits(batch, LIMITS)
    return batch.messages, batch.txs


def test_a_batch_round_trips_and_its_mac_binds_key_and_index() -> None:
    """A batch frame opens with the same key and index, and with no other."""
    frame = encode_batch([b"m1", b"m2"], [b"tx"], KEY, 7)
    assert open_frame(frame, KEY, 7) == ([b"m1", b"m2"], [b"tx"])
    with pytest.raises(InvalidSignature):
        open_frame(frame, KEY, 8)
    with pytest.raises(InvalidSignature):
        open_frame(frame, b"x" * 32, 7)


def test_any_change_to_a_batch_frame_is_detected() -> None:
    """Flipping any byte of a batch frame makes it fail to parse or fail its MAC."""
    frame = encode_batch([b"message"], [b"transaction"], KEY, 1)
    for i in range(len(frame)):
        mutated = frame[:i] + bytes([frame[i] ^ 0x01]) + frame[i + 1 :]
        with pytest.raises(InvalidInput):
            open_frame(mutated, KEY, 1)


def test_batch_limits_are_enforced_after_the_mac() -> None:
    """Too many or too large items are malformed, even when correctly MACed."""
    for messages, txs, reason in [
        ([b"m"] * 17, [], "items"),
        ([b"m" * 1001], [], "bytes"),
        ([], [b"t" * 101], "bytes"),
    ]:
        with pytest.raises(MalformedMessage, match=reason):
            open_frame(encode_batch(messages, txs, KEY, 1), KEY, 1)


def test_an_ack_round_trips_and_a_forged_one_fails() -> None:
    """An ack decodes to its count and verifies only under the right key."""
    ack = decode_frame(encode_ack(41, KEY), 1024)
    assert ack == Ack(41, compute_ack_mac(KEY, 41))
    check_ack_mac(KEY, ack)
    with pytest.raises(InvalidSignature):
        check_ack_mac(b"y" * 32, ack)
    with pytest.raises(InvalidSignature):
        check_ack_mac(KEY, Ack(42, ack.mac))


@given(st.binary(max_size=300))
def test_random_bytes_only_ever_raise_malformed(data: bytes) -> None:
    """No byte string makes frame, batch or gossip decoding raise anything but MalformedMessage."""
    for decode in (
        lambda: decode_frame(data, 1 << 20),
        lambda: decode_batch(data, 1 << 20),
        lambda: decode_tx_batch(data, 1 << 20, 16, 100),
        lambda: decode_hello(data),
    ):
        with contextlib.suppress(MalformedMessage):
            decode()


def test_frames_larger_than_the_limit_are_refused_before_parsing() -> None:
    """decode_frame checks the size first."""
    with pytest.raises(MalformedMessage, match="exceeds"):
        decode_frame(encode_batch_with_mac([b"x" * 100], [], b"m" * MAC_SIZE), 50)


def handshakes(
    committee: Committee, signers: list[Ed25519Signer], a: int, b: int
) -> tuple[Handshake, Handshake]:
    verifier = verifier_of(committee)
    return Handshake(committee, a, signers[a], verifier), Handshake(
        committee, b, signers[b], verifier
    )


def test_both_sides_of_a_handshake_derive_crossed_keys() -> None:
    """The dialer's send key is the listener's receive key and vice versa; another stream
    between the same validators gets different keys."""
    committee, signers = make_keys(3)

    def connect() -> tuple[bytes, bytes, bytes, bytes]:
        dialer, listener = handshakes(committee, signers, 0, 1)
        hello = dialer.make_hello(1, NOW)
        received = decode_hello(hello)
        listener.check_hello(received, NOW, 1000)
        reply = listener.make_hello(0, NOW, compute_hello_digest(hello))
        answer = decode_hello(reply)
        dialer.check_hello(answer, NOW, 1000, expected_sender=1, echo=compute_hello_digest(hello))
        d = dialer.derive_keys(answer.ephemeral, hello, reply, dialer=True)
        listener_keys = listener.derive_keys(received.ephemeral, hello, reply, dialer=False)
        assert (d.send, d.receive) == (listener_keys.receive, listener_keys.send)
        assert d.send != d.receive
        return d.send, d.receive, hello, reply

    first, second = connect(), connect()
    assert first[0] != second[0] and first[1] != second[1]


def test_check_hello_names_what_is_wrong() -> None:
    """Each way a hello can be wrong is refused with its reason."""
    committee, signers = make_keys(3)
    dialer, listener = handshakes(committee, signers, 1, 0)
    good = decode_hello(dialer.make_hello(0, NOW))
    listener.check_hello(good, NOW, 1000)
    cases = [
        (Hello(9, 1, 0, NOW, good.ephemeral, good.echo, good.signature), 1000, "chain"),
        (decode_hello(dialer.make_hello(2, NOW)), 1000, "addressed to 2"),
        (good, 10, "timestamp"),
        (
            Hello(good.chain_id, 2, 0, NOW, good.ephemeral, good.echo, good.signature),
            10**6,
            "signature",
        ),
        (
            Hello(good.chain_id, 0, 0, NOW, good.ephemeral, good.echo, good.signature),
            10**6,
            "not a peer",
        ),
        (
            Hello(good.chain_id, 5, 0, NOW, good.ephemeral, good.echo, good.signature),
            10**6,
            "not a peer",
        ),
    ]
    for hello, skew, reason in cases:
        with pytest.raises(InvalidInput, match=reason):
            listener.check_hello(hello, NOW + 500 if skew == 10 else NOW, skew)
    with pytest.raises(InvalidInput, match="echo"):
        listener.check_hello(good, NOW, 1000, echo=b"\x01" * 32)
    with pytest.raises(InvalidInput, match="expected 2"):
        listener.check_hello(good, NOW, 1000, expected_sender=2)


def test_a_degenerate_ephemeral_key_is_refused() -> None:
    """An all-zero X25519 point (low order) cannot produce a session key."""
    committee, signers = make_keys(2)
    dialer, _ = handshakes(committee, signers, 0, 1)
    with pytest.raises(MalformedMessage, match="degenerate"):
        dialer.derive_keys(b"\x00" * 32, b"a", b"b", dialer=True)


def test_hello_fields_of_the_wrong_size_are_malformed() -> None:
    """A hello with a short key, echo or signature, or another version, does not decode."""
    committee, signers = make_keys(2)
    dialer, _ = handshakes(committee, signers, 0, 1)
    good = decode_hello(dialer.make_hello(1, NOW))
    for bad, reason in [
        (Hello(1, 0, 1, NOW, b"e" * 31, good.echo, good.signature), "ephemeral"),
        (Hello(1, 0, 1, NOW, good.ephemeral, b"", good.signature), "echo"),
        (Hello(1, 0, 1, NOW, good.ephemeral, good.echo, b"s" * 63), "signature"),
        (Hello(1, 0, 1, NOW, good.ephemeral, good.echo, good.signature, version=2), "version"),
    ]:
        with pytest.raises(MalformedMessage, match=reason):
            decode_hello(encode_hello(bad))
    with pytest.raises(MalformedMessage, match="expected a hello"):
        decode_hello(encode_ack(1, KEY))
