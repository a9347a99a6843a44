"""The winning-proposal rule: which cut a new view must re-propose, derived from a TC.

shared/reference/autobahn.md §a.3.2: candidate A is the highest-view PrepareQC in the TC;
candidate B is the cut whose last votes (high_prop) of at least f+1 weight reach the highest
view, counting one cut's votes across views (what a fast commit with all votes leaves behind,
even after re-proposals that reached few replicas). The higher view wins, a tie goes to the
PrepareQC, and with neither the leader is free.
"""

from __future__ import annotations

from node.types.committee import Committee
from node.types.messages import QC, TC, Cut


def highest_prepare_qc(tc: TC) -> tuple[QC, Cut] | None:
    """The highest-view PrepareQC carried by the TC's timeouts, with its cut."""
    best: tuple[QC, Cut] | None = None
    for t in tc.timeouts:
        if t.high_qc is None or t.high_qc_cut is None:
            continue
        if best is None or t.high_qc.view > best[0].view:
            best = (t.high_qc, t.high_qc_cut)
    return best


def _supported_view(views: list[tuple[int, int]], threshold: int) -> int:
    """The highest view w such that votes of at least ``threshold`` weight were cast in view w
    or later; -1 if the votes never reach it. ``views`` holds (view, weight) pairs."""
    total = 0
    for view, weight in sorted(views, reverse=True):
        total += weight
        if total >= threshold:
            return view
    return -1


def compute_winner(tc: TC, committee: Committee) -> Cut | None:
    """The cut a proposal justified by ``tc`` must carry, or None if the leader is free.

    Candidate B is counted per cut across views: after a fast commit every correct replica's
    last vote is for the committed cut, but re-proposals that reached few replicas leave those
    votes in different views. B's view is the highest view that f+1 weight of its votes reach,
    so f Byzantine timeouts quoting a late proposal cannot lift it above a real PrepareQC.
    """
    qc_candidate = highest_prepare_qc(tc)
    votes: dict[bytes, list[tuple[int, int]]] = {}
    cuts: dict[bytes, Cut] = {}
    for t in tc.timeouts:
        prop = t.high_prop
        if prop is None:
            continue
        digest = prop.cut.digest
        votes.setdefault(digest, []).append((prop.view, committee.validators[t.voter].weight))
        cuts[digest] = prop.cut
    best: tuple[int, bytes] | None = None
    for digest in sorted(votes):
        view = _supported_view(votes[digest], committee.poa_quorum)
        if view >= 0 and (best is None or view > best[0]):
            best = (view, digest)
    if qc_candidate is not None and (best is None or qc_candidate[0].view >= best[0]):
        return qc_candidate[1]
    if best is not None:
        return cuts[best[1]]
    return None
