"""Seeds → aligned passages, in the style of PAN text alignment.

1. **Seeds**: every k-gram the two documents share (both sides use *all* their
   k-grams here; winnowing is only for the index). K-grams that repeat many times
   inside a document (boilerplate, lists) are skipped: they align with everything.
2. **Clusters**: seeds are split recursively wherever two neighbours are more than
   ``gap`` tokens apart along the query axis, the source axis or the diagonal,
   until no cluster splits (after Sanchez-Perez et al., PAN 2014). Small edits leave gaps shorter
   than ``gap``, so a lightly edited paragraph stays one passage; reordered
   sentences become separate passages, which is what a reader wants to see.
3. **Passages**: clusters with enough matched tokens become passages, reported as
   k-gram index ranges on both sides plus how many tokens really matched.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from copyscope.text.fingerprint import KGrams


@dataclass(frozen=True)
class RawPassage:
    """One aligned region in k-gram index space (inclusive ranges)."""

    kind: str
    q_first: int
    q_last: int
    r_first: int
    r_last: int
    seeds: int
    q_tokens: int      # query tokens covered by matching k-grams
    r_tokens: int      # source tokens covered by matching k-grams
    weight: float      # r_tokens discounted by how common the seeds are in the registry
    q_seeds: np.ndarray = field(repr=False, default=None)   # k-gram indices of the seeds
    r_seeds: np.ndarray = field(repr=False, default=None)


def seed_pairs(q: np.ndarray, r: np.ndarray, max_occ: int = 8,
               q_sorted: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """All (i, j) with ``q[i] == r[j]``, skipping hashes repeated > ``max_occ`` times.

    The query side is searched by binary search, so a long query sorted once
    (``q_sorted = (order, q[order])``) is aligned against many short
    registered documents in O(|r| log |q|) each. Pairs come sorted by (i, j).
    """
    if q.shape[0] == 0 or r.shape[0] == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    if q_sorted is None:
        order = np.argsort(q, kind="stable")
        qs = q[order]
    else:
        order, qs = q_sorted
    lo = np.searchsorted(qs, r, "left")
    hi = np.searchsorted(qs, r, "right")
    cnt = hi - lo                                   # occurrences in q of each r[j]
    ok = (cnt > 0) & (cnt <= max_occ)
    if ok.any():
        _, inv, rcnt = np.unique(r, return_inverse=True, return_counts=True)
        ok &= rcnt[inv] <= max_occ
    c = cnt[ok]
    total = int(c.sum())
    rj = np.repeat(np.nonzero(ok)[0], c)
    within = np.arange(total) - np.repeat(np.cumsum(c) - c, c)
    qi = order[np.repeat(lo[ok], c) + within]
    o = np.lexsort((rj, qi))
    return qi[o].astype(np.int64), rj[o].astype(np.int64)


def resolve_repeats(qi: np.ndarray, rj: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keep, for a k-gram that occurs more than once, only the pairing closest to
    the diagonal of its unambiguous neighbours.

    A phrase repeated in a document (a title echoed in the first sentence) pairs
    with every occurrence on the other side; the wrong pairings would stretch a
    passage into text that was not copied. Seeds that are unique on both sides
    are anchors; every other seed is judged against the nearest anchor.
    """
    if qi.shape[0] == 0:
        return qi, rj
    _, q_inv, q_cnt = np.unique(qi, return_inverse=True, return_counts=True)
    _, r_inv, r_cnt = np.unique(rj, return_inverse=True, return_counts=True)
    anchor = (q_cnt[q_inv] == 1) & (r_cnt[r_inv] == 1)
    if anchor.all() or not anchor.any():
        return qi, rj
    aq, ad = qi[anchor], (qi - rj)[anchor]          # qi is sorted, so aq is too
    pos = np.searchsorted(aq, qi)
    left = np.clip(pos - 1, 0, aq.shape[0] - 1)
    right = np.clip(pos, 0, aq.shape[0] - 1)
    nearest = np.where(np.abs(qi - aq[left]) <= np.abs(aq[right] - qi), left, right)
    dev = np.abs((qi - rj) - ad[nearest])
    keep = anchor.copy()
    amb = ~anchor
    # Per query position and per source position, keep the least deviating pairing.
    for inv in (q_inv, r_inv):
        best = np.full(inv.max() + 1, np.iinfo(np.int64).max)
        np.minimum.at(best, inv[amb], dev[amb])
        amb &= dev <= best[inv]
    keep |= amb
    return qi[keep], rj[keep]


def _split(order_vals: np.ndarray, members: np.ndarray, gap: int) -> list[np.ndarray]:
    o = members[np.argsort(order_vals[members], kind="stable")]
    v = order_vals[o]
    cuts = np.nonzero(np.diff(v) > gap)[0] + 1
    return np.split(o, cuts) if cuts.shape[0] else [o]


def cluster(qi: np.ndarray, rj: np.ndarray, gap: int) -> list[np.ndarray]:
    """Split seeds into clusters that are dense along the query, the source and
    the diagonal (``qi - rj``). The diagonal axis separates two paragraphs that
    were swapped while staying adjacent, and detaches a stray seed from a phrase
    repeated elsewhere in the document (e.g. a title echoed in the first line)."""
    if qi.shape[0] == 0:
        return []
    # Edits shift the diagonal by their length; a swapped paragraph by its whole
    # length. Twice the axis gap keeps edited passages whole and still splits swaps.
    axes = ((qi, gap), (rj, gap), (qi - rj, 2 * gap))
    pending = [np.arange(qi.shape[0])]
    done: list[np.ndarray] = []
    while pending:
        members = pending.pop()
        for axis, limit in axes:
            parts = _split(axis, members, limit)
            if len(parts) > 1:
                pending.extend(parts)
                break
        else:
            done.append(members)
    done.sort(key=lambda m: (int(qi[m].min()), int(rj[m].min())))
    return done


def covered(starts: np.ndarray, k: int) -> int:
    """How many tokens the k-grams starting at ``starts`` cover together."""
    if starts.shape[0] == 0:
        return 0
    s = np.unique(starts)
    steps = np.minimum(np.diff(s), k)
    return int(steps.sum()) + k


def align(q: KGrams, r: KGrams, *, gap: int, min_tokens: int,
          weights: np.ndarray | None = None, max_occ: int = 8) -> list[RawPassage]:
    """Aligned passages between query ``q`` and source ``r`` of one stream.

    ``weights`` (optional, one per source k-gram, in [0, 1]) discounts k-grams that
    are common across the registry, such as site banners and legal footers.
    """
    qi, rj = resolve_repeats(*seed_pairs(q.hashes, r.hashes, max_occ, q.sorted_index))
    k_q = min(q.k, max(1, len(q.tokens)))
    k_r = min(r.k, max(1, len(r.tokens)))
    out = []
    for m in cluster(qi, rj, gap):
        q_tok = covered(qi[m], k_q)
        r_tok = covered(rj[m], k_r)
        if min(q_tok, r_tok) < min_tokens:
            continue
        weight = float(r_tok)
        if weights is not None:
            # Mean discount of the seeds the corpus knows (the index holds winnowed
            # k-grams only), scaled to tokens so the weight stays in token units.
            w = weights[np.unique(rj[m])]
            w = w[~np.isnan(w)]
            if w.shape[0]:
                weight *= float(w.mean())
        out.append(RawPassage(q.kind, int(qi[m].min()), int(qi[m].max()), int(rj[m].min()),
                              int(rj[m].max()), int(m.shape[0]), q_tok, r_tok, weight,
                              qi[m], rj[m]))
    return out
