"""Execution certificates: votes at checkpoints form a certificate, leaders carry it, bad
certificates are rejected, and a validator whose own state commitment diverges halts."""

from __future__ import annotations

from dataclasses import replace

from node.protocol.config import ProtocolConfig
from node.protocol.effects import Effect, Halt
from node.protocol.events import Executed
from node.protocol.replica import Replica
from node.types.messages import (
    ExecCert,
    ExecVote,
    MsgKind,
    Prepare,
    Vote,
    compute_exec_digest,
)
from tests.unit.protocol.helpers import Keys, Net, messages, receive, rejects

GOOD = b"\x01" * 32
BAD = b"\x02" * 32
INTERVAL = ProtocolConfig().exec_cert_interval


def exec_vote(keys: Keys, voter: int, last: int, commitment: bytes) -> ExecVote:
    first = last - INTERVAL + 1
    digest = compute_exec_digest(first, last, commitment)
    sig = keys.sign(voter, MsgKind.EXEC_VOTE, first, last, digest)
    return ExecVote(first, last, commitment, voter, sig)


def exec_cert(keys: Keys, last: int, commitment: bytes, signers: tuple[int, ...]) -> ExecCert:
    votes = [exec_vote(keys, s, last, commitment) for s in signers]
    return ExecCert(
        last - INTERVAL + 1, last, commitment, signers, tuple(v.signature for v in votes)
    )


def executed(replica: Replica, height: int, commitment: bytes) -> list[Effect]:
    return replica.step(Executed(0, height, commitment))


def halts(effects: list[Effect]) -> list[Halt]:
    return [e for e in effects if isinstance(e, Halt)]


def with_cert(keys: Keys, cert: ExecCert) -> Prepare:
    """A valid first-slot Prepare of its leader carrying ``cert``."""
    prepare = keys.prepare(1, 0, keys.cut())
    return Prepare(prepare.proposal, prepare.ticket, cert)


def test_validator_votes_only_at_checkpoints_and_forms_a_cert_at_quorum() -> None:
    """A vote goes out after every checkpoint height; 2f+1 matching votes make a valid cert."""
    keys = Keys(4)
    replica = keys.replica(0)
    for height in range(1, INTERVAL):
        assert messages(executed(replica, height, GOOD)) == []
    (own,) = messages(executed(replica, INTERVAL, GOOD), ExecVote)
    assert isinstance(own, ExecVote)
    assert (own.first, own.last, own.commitment, own.voter) == (1, INTERVAL, GOOD, 0)
    assert replica.checks.validate_exec_vote(own, INTERVAL) is None
    receive(replica, 1, exec_vote(keys, 1, INTERVAL, GOOD))
    assert replica.execution.latest_cert is None  # 2 of 4: below quorum
    receive(replica, 2, exec_vote(keys, 2, INTERVAL, GOOD))
    cert = replica.execution.latest_cert
    assert cert is not None and cert.signers == (0, 1, 2) and cert.commitment == GOOD
    assert replica.checks.validate_exec_cert(cert, INTERVAL) is None


def test_votes_from_peers_before_own_execution_count_toward_the_cert() -> None:
    """A validator that executes late still forms the cert from votes it got earlier."""
    keys = Keys(4)
    replica = keys.replica(3)
    for voter in (0, 1):
        assert rejects(receive(replica, voter, exec_vote(keys, voter, INTERVAL, GOOD))) == []
    executed(replica, INTERVAL, GOOD)
    cert = replica.execution.latest_cert
    assert cert is not None and cert.signers == (0, 1, 3)


def test_forged_relayed_or_off_checkpoint_votes_are_rejected() -> None:
    """A vote with a bad signature, for another voter, or for a non-checkpoint range is refused."""
    keys = Keys(4)
    replica = keys.replica(0)
    executed(replica, INTERVAL, GOOD)
    vote = exec_vote(keys, 1, INTERVAL, GOOD)
    forged = replace(vote, signature=bytes(32))
    assert [r.reason for r in rejects(receive(replica, 1, forged))] == [
        "bad execution vote signature"
    ]
    assert rejects(receive(replica, 2, vote))[0].reason.startswith("execution vote relayed")
    odd = replace(vote, first=2)
    assert rejects(receive(replica, 1, odd))[0].reason.startswith("execution range is not")
    assert replica.execution.votes[INTERVAL].keys() == {0}


def test_leaders_carry_the_latest_cert_in_their_prepares() -> None:
    """Once validators have voted on a checkpoint, later Prepares carry its certificate."""
    keys = Keys(4)
    net = Net(keys)
    net.start(until=200)
    net.run(150)
    before = len(net.steps)
    assert all(m.exec_cert is None for s in net.steps for m in messages(s.effects, Prepare))
    for node in range(4):
        net.step(node, Executed(net.now, INTERVAL, GOOD))
    net.run(600)
    carried = [
        m.exec_cert
        for s in net.steps[before:]
        for m in messages(s.effects, Prepare)
        if isinstance(m, Prepare) and m.exec_cert is not None
    ]
    assert carried, "no Prepare carried the execution certificate"
    assert {(c.last, c.commitment) for c in carried} == {(INTERVAL, GOOD)}
    assert all(keys.replica(0).checks.validate_exec_cert(c, INTERVAL) is None for c in carried)
    assert max(len(net.committed[i]) for i in range(4)) > 2


def test_prepare_with_a_bad_cert_is_rejected_and_not_voted_for() -> None:
    """A forged, under-signed or misaligned certificate makes its Prepare invalid."""
    keys = Keys(4)
    good = exec_cert(keys, INTERVAL, GOOD, (0, 1, 2))
    bad_certs = {
        "forged": replace(good, signatures=(good.signatures[0], bytes(32), good.signatures[2])),
        "below quorum": exec_cert(keys, INTERVAL, GOOD, (0, 1)),
        "misaligned": replace(good, first=3),
        "claims another commitment": replace(good, commitment=BAD),
        "signers out of order": replace(
            good, signers=(1, 0, 2), signatures=(good.signatures[1], *good.signatures[::2])
        ),
        "a signer twice": replace(
            good, signers=(0, 0, 1, 2), signatures=(good.signatures[0], *good.signatures)
        ),
    }
    for name, cert in bad_certs.items():
        replica = keys.replica(3)
        effects = receive(replica, 0, with_cert(keys, cert))
        assert rejects(effects), name
        assert messages(effects, Vote) == [], name
        assert replica.execution.latest_cert is None, name


def test_an_older_valid_cert_does_not_make_a_prepare_invalid() -> None:
    """A leader behind on certificates still gets votes; the replica keeps its newer cert."""
    keys = Keys(4)
    replica = keys.replica(3)
    newer = exec_cert(keys, 2 * INTERVAL, GOOD, (0, 1, 2))
    replica.execution.on_cert(newer)
    older = exec_cert(keys, INTERVAL, GOOD, (0, 1, 3))
    effects = receive(replica, 0, with_cert(keys, older))
    assert rejects(effects) == []
    assert messages(effects, Vote), "the replica did not vote for the Prepare"
    assert replica.execution.latest_cert == newer


def test_a_cert_for_another_commitment_halts_the_validator_for_good() -> None:
    """Own commitment ≠ certified one: one Halt naming both, then the replica does nothing."""
    keys = Keys(4)
    replica = keys.replica(3)
    executed(replica, INTERVAL, BAD)
    effects = receive(replica, 0, with_cert(keys, exec_cert(keys, INTERVAL, GOOD, (0, 1, 2))))
    (halt,) = halts(effects)
    assert effects == [halt], "a halting step must not send anything"
    assert (halt.height, halt.own, halt.certified) == (INTERVAL, BAD, GOOD)
    assert BAD.hex() in halt.reason and GOOD.hex() in halt.reason
    assert receive(replica, 0, keys.prepare(2, 0, keys.cut())) == []
    assert executed(replica, 2 * INTERVAL, BAD) == []


def test_a_cert_learned_before_executing_halts_on_execution_without_voting() -> None:
    """The check also runs when the own result arrives after the cert; no divergent vote."""
    keys = Keys(4)
    replica = keys.replica(3)
    cert = exec_cert(keys, INTERVAL, GOOD, (0, 1, 2))
    assert halts(receive(replica, 0, with_cert(keys, cert))) == []
    effects = executed(replica, INTERVAL, BAD)
    assert len(halts(effects)) == 1 and messages(effects, ExecVote) == []


def test_f_plus_one_votes_for_another_commitment_halt_but_f_do_not() -> None:
    """f+1 weight includes a correct validator, so it is evidence; f alone is not."""
    keys = Keys(4)  # f = 1
    replica = keys.replica(3)
    executed(replica, INTERVAL, BAD)
    assert halts(receive(replica, 0, exec_vote(keys, 0, INTERVAL, GOOD))) == []
    assert replica.execution.halted is None
    (halt,) = halts(receive(replica, 1, exec_vote(keys, 1, INTERVAL, GOOD)))
    assert "validators [0, 1] voted for" in halt.reason


def test_honest_validator_ignores_f_byzantine_votes_for_another_commitment() -> None:
    """f Byzantine votes for a fake commitment neither halt a correct validator nor certify."""
    keys = Keys(7)  # f = 2
    replica = keys.replica(0)
    executed(replica, INTERVAL, GOOD)
    for voter in (5, 6):
        assert halts(receive(replica, voter, exec_vote(keys, voter, INTERVAL, BAD))) == []
    for voter in (1, 2, 3, 4):
        receive(replica, voter, exec_vote(keys, voter, INTERVAL, GOOD))
    cert = replica.execution.latest_cert
    assert replica.execution.halted is None
    assert cert is not None and cert.commitment == GOOD and cert.signers == (0, 1, 2, 3, 4)


def test_restarted_replica_relearns_its_checkpoint_and_votes_again() -> None:
    """After a restart the runtime reports the latest executed checkpoint: the same vote."""
    keys = Keys(4)
    first = messages(executed(keys.replica(1), INTERVAL, GOOD), ExecVote)
    again = messages(executed(keys.replica(1), INTERVAL, GOOD), ExecVote)
    assert first == again and len(first) == 1
