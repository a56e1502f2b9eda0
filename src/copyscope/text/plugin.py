"""The text modality: plain text, HTML and Markdown, English and Chinese.

Score model (all parameters in :class:`~copyscope.text.analysis.TextParams`):

* **passage evidence**: each aligned passage contributes only the tokens it has
  *beyond* what two independent texts plausibly share (names, dates, stock
  phrases), discounted by how common its k-grams are in the corpus; the sum maps
  to ``1 - exp(-x)``. A single copied 3-sentence fragment is strong evidence even
  when it is 2 % of a long page, which containment ratios alone would miss.
* **vocabulary overlap**: IDF-weighted share of distinct words (CJK bigrams)
  shared in both directions. It catches heavy paraphrase, where few k-grams
  survive, and is only used when the corpus has enough documents for IDF.

``score = 1 - (1 - passage) * (1 - vocabulary)``; a pair is a copy at
``score >= threshold`` (0.5 by default, chosen once; see docs/text-engine.md).
"""
from __future__ import annotations

import math

import numpy as np

from copyscope.model import Artifact, Match, Passage, Span
from copyscope.plugins import params_dict
from copyscope.stats import CorpusStats, passage_rarities
from copyscope.text.align import RawPassage, align
from copyscope.text.analysis import STREAMS, UNIT, TextDoc, TextParams
from copyscope.text.decode import decode_bytes
from copyscope.errors import InputError

ALGORITHM = "text.winnow/v1"


class TextModality:
    """Modality plugin for text (entry point ``copyscope.modalities: text``)."""

    name = "text"
    version = ALGORITHM

    def __init__(self, params: TextParams | None = None) -> None:
        self.params = params or TextParams()

    def accepts(self, artifact: Artifact) -> bool:
        try:
            decode_bytes(artifact.data[:65536], name=artifact.origin)
        except InputError:
            return False
        return True

    def fingerprint(self, artifact: Artifact) -> TextDoc:
        return TextDoc(artifact, self.params)

    def parameters(self) -> dict:
        return params_dict(ALGORITHM, self.params)

    def verify(self, query: TextDoc, ref: TextDoc, stats: CorpusStats | None = None) -> Match | None:
        """Align ``query`` against registered ``ref``; ``None`` when nothing aligns."""
        p = self.params
        raws: list[tuple[RawPassage, float]] = []
        for s in STREAMS:
            qg, rg = query.grams[s], ref.grams[s]
            if len(qg) == 0 or len(rg) == 0:
                continue
            found = align(qg, rg, gap=p.gap(s), min_tokens=p.min_tokens(s), max_occ=p.max_occ)
            if found:       # (winnowing the registered text is only needed to weigh passages)
                raws.extend(zip(found, passage_rarities(found, rg.hashes, ref.index_keys(), stats, p.common_df)))
        vocab = _vocabulary_overlap(query, ref, stats, p)
        if not raws and not vocab:
            return None
        evidence = 0.0
        for rp, rarity in raws:
            excess = max(0, rp.r_tokens - p.coincidence(rp.kind))
            evidence += excess * rarity / p.scale(rp.kind)
        s_passage = 1.0 - math.exp(-evidence)
        s_vocab = 0.0 if vocab is None else 1.0 / (1.0 + math.exp(-(vocab - p.vocab_center) / p.vocab_width))
        score = 1.0 - (1.0 - s_passage) * (1.0 - s_vocab)
        cov_r = sum(rp.r_tokens * UNIT[rp.kind] for rp, _ in raws) / max(ref.units, 1e-9)
        cov_q = sum(rp.q_tokens * UNIT[rp.kind] for rp, _ in raws) / max(query.units, 1e-9)
        passages = tuple(_passage(query, ref, rp, rarity, p.context_chars) for rp, rarity in raws)
        passages = tuple(sorted(passages, key=lambda x: (x.registered.start, x.query.start)))
        return Match(
            modality="text", algorithm=ALGORITHM, score=score,
            verdict="copy" if score >= p.threshold else "below-threshold",
            coverage_registered=min(1.0, cov_r), coverage_query=min(1.0, cov_q),
            signals={"passage_evidence": s_passage, "vocabulary_overlap": vocab},
            passages=passages,
            query_sha256=query.artifact.sha256, registered_sha256=ref.artifact.sha256,
            query_path=query.artifact.origin, registered_path=ref.artifact.origin,
        )


def _vocabulary_overlap(q: TextDoc, r: TextDoc, stats: CorpusStats | None, p: TextParams) -> float | None:
    if stats is None or stats.n_docs < p.vocab_min_docs:
        return None
    qv, rv = q.stat_keys(), r.stat_keys()
    if qv.shape[0] == 0 or rv.shape[0] == 0:
        return 0.0
    n = stats.n_docs
    # The query may not be in the corpus: count it once so no df is 0.
    idf_q = np.log((n + 1) / (stats.stat_df(qv) + 1.0))
    idf_r = np.log((n + 1) / (stats.stat_df(rv) + 1.0))
    pos = np.minimum(np.searchsorted(qv, rv), qv.shape[0] - 1)   # both sorted and unique
    inter = float(idf_q[pos[qv[pos] == rv]].sum())
    tq, tr = float(idf_q.sum()), float(idf_r.sum())
    if tq <= 0 or tr <= 0:
        return 0.0
    return 0.5 * (inter / tq + inter / tr)


def _passage(q: TextDoc, r: TextDoc, rp: RawPassage, rarity: float, ctx: int) -> Passage:
    return Passage(
        query=_span(q, rp.kind, rp.q_first, rp.q_last, rp.q_seeds, ctx),
        registered=_span(r, rp.kind, rp.r_first, rp.r_last, rp.r_seeds, ctx),
        stream=rp.kind, tokens=int(rp.r_tokens), rarity=float(rarity),
    )


def _span(doc: TextDoc, stream: str, first: int, last: int, seeds: np.ndarray, ctx: int) -> Span:
    g = doc.grams[stream]
    start, end = g.span(first, last)
    # Exact-match ranges: union of the seed k-grams' character spans.
    seeds = np.unique(seeds)
    k_last = np.minimum(seeds + g.k - 1, len(g.tokens) - 1)
    s = g.tokens.starts[seeds] - start
    e = g.tokens.ends[k_last] - start
    merged: list[list[int]] = []
    for a, b in zip(s.tolist(), e.tolist()):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    byte_start, byte_end = (int(x) for x in doc.decoded.byte_offsets(np.array([start, end])))
    src = doc.source
    return Span(
        start=start, end=end, byte_start=byte_start, byte_end=byte_end,
        line_start=doc.line_of(start), line_end=doc.line_of(max(start, end - 1)),
        text=src[start:end], matched=tuple((a, b) for a, b in merged),
        before=src[max(0, start - ctx):start], after=src[end:end + ctx],
    )
