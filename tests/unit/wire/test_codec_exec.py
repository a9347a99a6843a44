"""Execution votes and certificates cross the wire unchanged; malformed ones are refused by
the decoder with the field that is wrong."""

from __future__ import annotations

import pytest

from node.types.errors import MalformedMessage
from node.types.messages import ExecCert, ExecVote, Prepare
from node.wire.codec import decode_message, encode_message
from node.wire.gen.lanenet.v1 import messages_pb2 as pb
from tests.unit.protocol.helpers import Keys

COMMITMENT = b"\x33" * 32
SIG = b"\x22" * 64


def test_exec_vote_and_prepare_with_cert_round_trip() -> None:
    """A vote and a Prepare carrying a certificate decode to the same values."""
    keys = Keys(4)
    vote = ExecVote(11, 20, COMMITMENT, 3, SIG)
    assert decode_message(encode_message(vote)) == vote
    cert = ExecCert(11, 20, COMMITMENT, (0, 1, 3), (SIG, SIG, SIG))
    prepare = keys.prepare(1, 0, keys.cut())
    carried = Prepare(prepare.proposal, prepare.ticket, cert)
    decoded = decode_message(encode_message(carried))
    assert isinstance(decoded, Prepare) and decoded.exec_cert == cert
    assert decode_message(encode_message(prepare)) == prepare  # no cert stays no cert


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"first": 0, "last": 10}, "starts at 0"),
        ({"first": 11, "last": 10}, "is empty"),
        ({"commitment": b"\x01" * 31}, "commitment: digest of 31 bytes"),
        ({"voter": 1 << 20}, "voter: validator index"),
        ({"signature": b""}, "signature of 0 bytes"),
    ],
)
def test_malformed_exec_vote_is_refused(fields: dict[str, object], reason: str) -> None:
    """Each broken field of an ExecVote is named in the decoding error."""
    body = {"first": 1, "last": 10, "commitment": COMMITMENT, "voter": 1, "signature": SIG}
    body.update(fields)
    data = pb.PeerMessage(exec_vote=pb.ExecVote(**body)).SerializeToString()
    with pytest.raises(MalformedMessage, match=reason):
        decode_message(data)


def test_exec_cert_with_more_signatures_than_signers_is_refused() -> None:
    """A certificate's bitmap and signature list must agree."""
    keys = Keys(4)
    prepare = keys.prepare(1, 0, keys.cut())
    cert = ExecCert(1, 10, COMMITMENT, (0, 1), (SIG, SIG))
    carried = Prepare(prepare.proposal, prepare.ticket, cert)
    message = pb.PeerMessage.FromString(encode_message(carried))
    message.prepare.exec_cert.signatures.append(SIG)
    with pytest.raises(MalformedMessage, match="exec_cert: 2 signers in the bitmap but 3"):
        decode_message(message.SerializeToString())
