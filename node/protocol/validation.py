"""Stateless checks of signed values: signatures, certificates and well-formed cuts.

Every function answers a yes/no question and never raises on bad input.
"""

from __future__ import annotations

from node.crypto.hashing import DIGEST_SIZE, ZERO_DIGEST
from node.crypto.signing import Verifier
from node.types.committee import Committee
from node.types.messages import (
    QC,
    TC,
    Car,
    Cut,
    ExecCert,
    ExecVote,
    LaneVote,
    MsgKind,
    PoA,
    Proposal,
    Timeout,
    Vote,
    signing_bytes,
)

U64_LIMIT = 1 << 64
COMMITMENT_SIZE = DIGEST_SIZE
POA_CACHE = 16384


def fits_u64(*values: int) -> bool:
    """Numbers that can be encoded: every signed and hashed position is a u64."""
    return all(isinstance(v, int) and 0 <= v < U64_LIMIT for v in values)


class MessageChecker:
    """Binds a committee and a verifier; the replica's sub-machines share one instance."""

    def __init__(self, committee: Committee, verifier: Verifier) -> None:
        self.committee = committee
        self.verifier = verifier
        self.chain_id = committee.chain_id
        self._good_poas: dict[tuple[int, int, bytes, tuple[int, ...], tuple[bytes, ...]], None] = {}

    def _signed(
        self, kind: MsgKind, first: int, second: int, digest: bytes, signer: int, sig: bytes
    ) -> bool:
        if not self.committee.is_member(signer) or not fits_u64(first, second):
            return False
        if len(digest) != DIGEST_SIZE:
            return False
        message = signing_bytes(kind, self.chain_id, first, second, digest)
        return self.verifier.verify(signer, message, sig)

    def _quorum_signed(
        self,
        kind: MsgKind,
        first: int,
        second: int,
        digest: bytes,
        signers: tuple[int, ...],
        signatures: tuple[bytes, ...],
        threshold: int,
    ) -> bool:
        if len(signers) != len(signatures) or not signers or not fits_u64(first, second):
            return False
        if any(b <= a for a, b in zip(signers, signers[1:], strict=False)):
            return False  # signers must ascend strictly: no duplicates, one canonical form
        if not all(self.committee.is_member(s) for s in signers):
            return False
        if self.committee.weight_of(signers) < threshold:
            return False
        message = signing_bytes(kind, self.chain_id, first, second, digest)
        return all(
            self.verifier.verify(s, message, sig)
            for s, sig in zip(signers, signatures, strict=True)
        )

    # ------------------------------------------------------------ data layer

    def is_valid_lane_vote(self, vote: LaneVote) -> bool:
        return len(vote.car_digest) == DIGEST_SIZE and self._signed(
            MsgKind.LANE_VOTE, vote.lane, vote.pos, vote.car_digest, vote.voter, vote.signature
        )

    def is_valid_poa(self, poa: PoA) -> bool:
        """Checked once: the same PoA rides in many cuts, cars and timeouts."""
        key = (poa.lane, poa.pos, poa.car_digest, poa.signers, poa.signatures)
        if key in self._good_poas:
            return True
        if not self._check_poa(poa):
            return False
        self._good_poas[key] = None
        if len(self._good_poas) > POA_CACHE:
            del self._good_poas[next(iter(self._good_poas))]
        return True

    def _check_poa(self, poa: PoA) -> bool:
        return (
            self.committee.is_member(poa.lane)
            and poa.pos >= 1
            and len(poa.car_digest) == DIGEST_SIZE
            and self._quorum_signed(
                MsgKind.LANE_VOTE,
                poa.lane,
                poa.pos,
                poa.car_digest,
                poa.signers,
                poa.signatures,
                self.committee.poa_quorum,
            )
        )

    def validate_car(self, car: Car, max_txs: int, max_bytes: int) -> str | None:
        """Return why ``car`` is invalid, or None when it is well-formed and owner-signed."""
        if not self.committee.is_member(car.lane):
            return "unknown lane"
        if not fits_u64(car.pos):
            return "car position out of range"
        if car.pos < 1:
            return "car position below 1"
        if len(car.txs) > max_txs or car.size_bytes > max_bytes:
            return "car too large"
        if car.pos == 1 and (car.parent != ZERO_DIGEST or car.parent_poa is not None):
            return "first car must have the zero parent and no parent PoA"
        if len(car.parent) != DIGEST_SIZE:
            return "bad parent digest"
        if not car.has_valid_digest():
            return "car digest does not match its content"
        if not self._signed(MsgKind.CAR, car.lane, car.pos, car.digest, car.lane, car.signature):
            return "bad car signature"
        poa = car.parent_poa
        if poa is not None and (
            poa.lane != car.lane
            or poa.pos != car.pos - 1
            or poa.car_digest != car.parent
            or not self.is_valid_poa(poa)
        ):
            return "bad parent PoA"
        return None

    # ------------------------------------------------------------ consensus

    def validate_cut(self, cut: Cut) -> str | None:
        if len(cut.tips) != self.committee.size:
            return "cut does not have one tip per lane"
        for lane, tip in enumerate(cut.tips):
            if tip.lane != lane:
                return "cut tips out of lane order"
            if not fits_u64(tip.pos) or len(tip.car_digest) != DIGEST_SIZE:
                return "cut tip position or digest malformed"
            if tip.pos == 0:
                if tip.car_digest != ZERO_DIGEST or tip.poa is not None:
                    return "empty tip must have the zero digest and no PoA"
                continue
            poa = tip.poa
            if (
                poa is None
                or poa.lane != lane
                or poa.pos != tip.pos
                or poa.car_digest != tip.car_digest
                or not self.is_valid_poa(poa)
            ):
                return "cut tip without a valid PoA"
        return None

    def validate_proposal(self, proposal: Proposal) -> str | None:
        if not fits_u64(proposal.slot, proposal.view) or proposal.slot < 1:
            return "bad slot or view"
        if proposal.leader != self.committee.leader(proposal.slot, proposal.view):
            return "proposal not from the leader of its slot and view"
        reason = self.validate_cut(proposal.cut)
        if reason is not None:
            return reason
        if not self._signed(
            MsgKind.PROPOSAL,
            proposal.slot,
            proposal.view,
            proposal.cut.digest,
            proposal.leader,
            proposal.signature,
        ):
            return "bad proposal signature"
        return None

    def is_valid_vote(self, vote: Vote) -> bool:
        return vote.phase in (MsgKind.PREPARE_VOTE, MsgKind.CONFIRM_ACK) and self._signed(
            vote.phase, vote.slot, vote.view, vote.cut_digest, vote.voter, vote.signature
        )

    def is_valid_qc(self, qc: QC, threshold: int) -> bool:
        return (
            qc.phase in (MsgKind.PREPARE_VOTE, MsgKind.CONFIRM_ACK)
            and len(qc.cut_digest) == DIGEST_SIZE
            and self._quorum_signed(
                qc.phase, qc.slot, qc.view, qc.cut_digest, qc.signers, qc.signatures, threshold
            )
        )

    def is_valid_prepare_qc(self, qc: QC) -> bool:
        return qc.phase == MsgKind.PREPARE_VOTE and self.is_valid_qc(qc, self.committee.quorum)

    def is_valid_commit_qc(self, qc: QC) -> bool:
        """A fast CommitQC (all weight of PrepareVotes) or a slow one (quorum of ConfirmAcks)."""
        if qc.phase == MsgKind.PREPARE_VOTE:
            return self.is_valid_qc(qc, self.committee.fast_quorum)
        return qc.phase == MsgKind.CONFIRM_ACK and self.is_valid_qc(qc, self.committee.quorum)

    def validate_timeout(self, timeout: Timeout) -> str | None:
        qc, qc_cut, prop = timeout.high_qc, timeout.high_qc_cut, timeout.high_prop
        if not fits_u64(timeout.slot, timeout.view):
            return "bad slot or view"
        if (qc is None) != (qc_cut is None):
            return "high QC and its cut must come together"
        if qc is not None and qc_cut is not None:
            if qc.slot != timeout.slot or not fits_u64(qc.view) or qc.view > timeout.view:
                return "high QC for another slot or a later view"
            if self.validate_cut(qc_cut) is not None:
                return "high QC's cut is malformed or lacks valid PoAs"
            if qc.cut_digest != qc_cut.digest or not self.is_valid_prepare_qc(qc):
                return "invalid high QC"
        if prop is not None:
            if prop.slot != timeout.slot or not fits_u64(prop.view) or prop.view > timeout.view:
                return "high proposal for another slot or a later view"
            reason = self.validate_proposal(prop)
            if reason is not None:
                return f"invalid high proposal: {reason}"
        if not self._signed(
            MsgKind.TIMEOUT,
            timeout.slot,
            timeout.view,
            timeout.content_digest,
            timeout.voter,
            timeout.signature,
        ):
            return "bad timeout signature"
        return None

    def validate_tc(self, tc: TC) -> str | None:
        if not fits_u64(tc.slot, tc.view):
            return "bad slot or view"
        voters = [t.voter for t in tc.timeouts]
        if any(b <= a for a, b in zip(voters, voters[1:], strict=False)):
            return "timeouts in a TC must come from distinct voters in ascending order"
        if self.committee.weight_of(voters) < self.committee.quorum:
            return "TC below quorum"
        for t in tc.timeouts:
            if t.slot != tc.slot or t.view != tc.view:
                return "TC mixes slots or views"
            reason = self.validate_timeout(t)
            if reason is not None:
                return f"TC holds an invalid timeout: {reason}"
        return None

    # ------------------------------------------------------------ execution results

    def validate_exec_range(
        self, first: int, last: int, commitment: bytes, interval: int
    ) -> str | None:
        """A checkpoint range: ``last`` a positive multiple of ``interval``, ``first`` the
        height after the previous checkpoint, and a 32-byte commitment."""
        if not fits_u64(first, last) or first > last:
            return "execution range out of order or out of range"
        if last % interval != 0 or first != last - interval + 1:
            return "execution range is not a checkpoint interval"
        if len(commitment) != COMMITMENT_SIZE:
            return "state commitment of the wrong size"
        return None

    def validate_exec_vote(self, vote: ExecVote, interval: int) -> str | None:
        reason = self.validate_exec_range(vote.first, vote.last, vote.commitment, interval)
        if reason is not None:
            return reason
        if not self._signed(
            MsgKind.EXEC_VOTE, vote.first, vote.last, vote.digest, vote.voter, vote.signature
        ):
            return "bad execution vote signature"
        return None

    def validate_exec_cert(self, cert: ExecCert, interval: int) -> str | None:
        reason = self.validate_exec_range(cert.first, cert.last, cert.commitment, interval)
        if reason is not None:
            return reason
        if not self._quorum_signed(
            MsgKind.EXEC_VOTE,
            cert.first,
            cert.last,
            cert.digest,
            cert.signers,
            cert.signatures,
            self.committee.quorum,
        ):
            return "execution certificate without a valid quorum of signatures"
        return None
