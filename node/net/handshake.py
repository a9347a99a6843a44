"""Stream authentication: signed hellos with ephemeral X25519 keys, and the session keys.

The dialer sends a hello signed with its validator key naming (chain, itself, the peer,
time, a fresh X25519 public key). The listener checks it against the committee's keys and
answers with its own signed hello, echoing the digest of the dialer's. Both then derive one
key per direction from the X25519 shared secret and both hellos, and MAC every later frame
with it (node/net/frames.py); the dialer's first frame, an empty batch, confirms it holds
the key. So each frame is attributable to a validator key, and a hello replayed from an
earlier stream is useless: the replayer cannot compute the session key, its stream is
refused at the confirmation and never displaces the validator's real one.

Frames are authenticated, not encrypted: everything validators exchange is public anyway.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import nacl.bindings
import nacl.exceptions
import nacl.public

from node.crypto.signing import Signer, Verifier
from node.net.frames import ECHO_SIZE, EPHEMERAL_SIZE, Hello
from node.net.grpc_codec import encode_hello
from node.types.committee import Committee
from node.types.errors import InvalidSignature, MalformedMessage

ZERO_ECHO = b"\x00" * ECHO_SIZE


def compute_hello_digest(hello_frame: bytes) -> bytes:
    return hashlib.blake2b(hello_frame, digest_size=ECHO_SIZE, person=b"lanenet/hello").digest()


@dataclass(frozen=True, slots=True)
class SessionKeys:
    send: bytes
    receive: bytes


class Handshake:
    """One side of one stream's handshake: holds the ephemeral key until keys are derived."""

    def __init__(self, committee: Committee, me: int, signer: Signer, verifier: Verifier) -> None:
        self._committee = committee
        self._me = me
        self._signer = signer
        self._verifier = verifier
        self._ephemeral = nacl.public.PrivateKey.generate()

    def make_hello(self, peer: int, now_ms: int, echo: bytes = ZERO_ECHO) -> bytes:
        unsigned = Hello(
            chain_id=self._committee.chain_id,
            sender=self._me,
            receiver=peer,
            timestamp_ms=now_ms,
            ephemeral=bytes(self._ephemeral.public_key),
            echo=echo,
            signature=b"\x00" * 64,
        )
        signature = self._signer.sign(unsigned.signing_bytes())
        return encode_hello(replace(unsigned, signature=signature))

    def check_hello(
        self,
        hello: Hello,
        now_ms: int,
        max_skew_ms: int,
        expected_sender: int | None = None,
        echo: bytes = ZERO_ECHO,
    ) -> None:
        """Raise ``InvalidInput`` unless ``hello`` is a fresh hello to this node from a
        committee member (``expected_sender`` if given) on this chain."""
        if hello.chain_id != self._committee.chain_id:
            raise MalformedMessage(f"hello: chain {hello.chain_id} is not ours")
        if hello.receiver != self._me:
            raise MalformedMessage(f"hello: addressed to {hello.receiver}, not {self._me}")
        if not self._committee.is_member(hello.sender) or hello.sender == self._me:
            raise MalformedMessage(f"hello: sender {hello.sender} is not a peer")
        if expected_sender is not None and hello.sender != expected_sender:
            raise MalformedMessage(f"hello: from {hello.sender}, expected {expected_sender}")
        if abs(hello.timestamp_ms - now_ms) > max_skew_ms:
            raise MalformedMessage(f"hello: timestamp {hello.timestamp_ms - now_ms} ms off")
        if hello.echo != echo:
            raise MalformedMessage("hello: echo does not match our hello")
        if not self._verifier.verify(hello.sender, hello.signing_bytes(), hello.signature):
            raise InvalidSignature(f"hello: bad signature for validator {hello.sender}")

    def derive_keys(
        self, peer_ephemeral: bytes, dialer_hello: bytes, listener_hello: bytes, dialer: bool
    ) -> SessionKeys:
        if len(peer_ephemeral) != EPHEMERAL_SIZE:
            raise MalformedMessage("hello: bad ephemeral key size")
        try:
            shared = nacl.bindings.crypto_scalarmult(bytes(self._ephemeral), peer_ephemeral)
        except nacl.exceptions.RuntimeError:
            # libsodium refuses low-order points (an all-zero shared secret)
            raise MalformedMessage("hello: degenerate ephemeral key") from None
        transcript = compute_hello_digest(dialer_hello) + compute_hello_digest(listener_hello)
        to_listener = _kdf(shared, transcript, b"dialer->listener")
        to_dialer = _kdf(shared, transcript, b"listener->dialer")
        if dialer:
            return SessionKeys(send=to_listener, receive=to_dialer)
        return SessionKeys(send=to_dialer, receive=to_listener)


def _kdf(shared: bytes, transcript: bytes, label: bytes) -> bytes:
    return hashlib.blake2b(
        transcript + label, key=shared, digest_size=32, person=b"lanenet/net-key"
    ).digest()
