"""The winning-proposal rule: which cut a new view must re-propose, derived from a TC.

shared/reference/autobahn.md §a.3.2: candidate A is the highest-view PrepareQC in the TC;
candidate B is the highest view in which one cut appears as the last voted proposal in
timeouts of at least f+1 weight (what a fast commit with all votes leaves behind). The higher
view wins, a tie goes to the PrepareQC, and with neither the leader is free.
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


def compute_winner(tc: TC, committee: Committee) -> Cut | None:
    """The cut a proposal justified by ``tc`` must carry, or None if the leader is free."""
    qc_candidate = highest_prepare_qc(tc)
    weights: dict[tuple[int, bytes], int] = {}
    cuts: dict[tuple[int, bytes], Cut] = {}
    for t in tc.timeouts:
        prop = t.high_prop
        if prop is None:
            continue
        key = (prop.view, prop.cut.digest)
        weights[key] = weights.get(key, 0) + committee.validators[t.voter].weight
        cuts[key] = prop.cut
    prop_keys = [k for k, w in weights.items() if w >= committee.poa_quorum]
    # Highest view first; between two cuts of one view (only possible with a Byzantine leader
    # and no fast commit) the smaller digest, so every replica picks the same one.
    prop_key = max(prop_keys, key=lambda k: (k[0], [-b for b in k[1]]), default=None)
    if qc_candidate is not None and (prop_key is None or qc_candidate[0].view >= prop_key[0]):
        return qc_candidate[1]
    if prop_key is not None:
        return cuts[prop_key]
    return None
