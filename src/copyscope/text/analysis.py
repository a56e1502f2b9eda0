"""One text document, analysed once: decoded, stripped, tokenised, k-grammed.

A :class:`TextDoc` is the text plugin's ``Fingerprints``: it carries the keys the
index stores and the token spans the aligner needs, all in coordinates of the
*decoded source* (markup included), so evidence points into the real file.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from copyscope.model import Artifact
from copyscope.text.decode import Decoded, decode_bytes
from copyscope.text.fingerprint import KGrams, kgrams, winnow
from copyscope.text.markup import sniff_markup, to_plain
from copyscope.text.normalize import TokenStream, tokenize

STREAMS = ("word", "cjk")


@dataclass(frozen=True)
class TextParams:
    """Every knob of the text engine; recorded in each evidence bundle."""

    word_k: int = 3              # words per k-gram
    cjk_k: int = 5               # CJK characters per k-gram
    word_window: int = 6         # winnowing windows: any shared run of k+w-1 tokens is indexed
    cjk_window: int = 8
    word_gap: int = 8            # max tokens between seeds inside one passage
    cjk_gap: int = 20
    word_min_tokens: int = 4     # smallest passage reported
    cjk_min_tokens: int = 8
    word_coincidence: int = 5    # passage length (tokens) that two independent texts may share
    cjk_coincidence: int = 16
    word_scale: float = 20.0     # tokens beyond coincidence that make evidence ~63 % certain
    cjk_scale: float = 20.0
    common_df: int = 3           # k-grams in more registered works than this are down-weighted
    vocab_center: float = 0.25   # IDF-weighted vocabulary overlap that counts as 50 % evidence
    vocab_width: float = 0.05
    vocab_min_docs: int = 20     # below this corpus size IDF is meaningless: signal off
    max_occ: int = 8             # k-grams repeated more often inside one document are ignored
    # A registry check does not verify a registered document that shares fewer
    # distinct indexed k-grams with the query. The default threshold needs a
    # ~19-token passage of rare text; winnowing guarantees such a passage two
    # keys, and in simulation it carries three or more in 99.8 % of cases (a
    # 21-token one in all). On Clough & Stevenson and zh_news_reuse every
    # reported copy shares five or more, while 93 % of the chance candidates of
    # a 100,000-work registry share exactly two (docs/text-engine.md).
    # Weighting the keys by rarity instead would drop real matches in redundant
    # corpora, where a reused passage's keys are common and the vocabulary
    # overlap carries the score.
    min_shared_keys: int = 3
    threshold: float = 0.5       # score at which a pair is reported as a copy
    context_chars: int = 150

    def k(self, stream: str) -> int:
        return self.word_k if stream == "word" else self.cjk_k

    def window(self, stream: str) -> int:
        return self.word_window if stream == "word" else self.cjk_window

    def gap(self, stream: str) -> int:
        return self.word_gap if stream == "word" else self.cjk_gap

    def min_tokens(self, stream: str) -> int:
        return self.word_min_tokens if stream == "word" else self.cjk_min_tokens

    def coincidence(self, stream: str) -> int:
        return self.word_coincidence if stream == "word" else self.cjk_coincidence

    def scale(self, stream: str) -> float:
        return self.word_scale if stream == "word" else self.cjk_scale


#: how much one token of each stream weighs when streams are combined (a CJK
#: character carries about half the information of an English word).
UNIT = {"word": 1.0, "cjk": 0.5}


def media_type_for(kind: str) -> str:
    return {"html": "text/html", "markdown": "text/markdown"}.get(kind, "text/plain")


class TextDoc:
    """The analysed document. Cheap attributes are eager, evidence helpers lazy."""

    modality = "text"

    def __init__(self, artifact: Artifact, params: TextParams) -> None:
        self.artifact = artifact
        self.params = params
        self.decoded: Decoded = decode_bytes(artifact.data, name=artifact.origin)
        self.source = self.decoded.text
        self.markup = sniff_markup(self.source, artifact.origin)
        plain = to_plain(self.source, self.markup)
        self.grams: dict[str, KGrams] = {}
        for name, stream in tokenize(plain.text).items():
            mapped = _to_source(stream, plain.offsets)
            self.grams[name] = kgrams(mapped, params.k(name))
        self.units = sum(len(self.grams[s].tokens) * UNIT[s] for s in STREAMS)

    @property
    def media_type(self) -> str:
        return media_type_for(self.markup)

    @functools.cached_property
    def _index_keys(self) -> np.ndarray:
        parts = [g.hashes[winnow(g.hashes, self.params.window(s))] for s, g in self.grams.items()]
        return np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.uint64)

    def index_keys(self) -> np.ndarray:
        """Winnowed k-grams: what the registry stores with postings."""
        return self._index_keys

    def query_keys(self) -> np.ndarray:
        """All distinct k-grams: what a check looks up."""
        return self._query_keys

    @functools.cached_property
    def _vocab(self) -> np.ndarray:
        word = kgrams(self.grams["word"].tokens, 1).hashes
        cjk = kgrams(self.grams["cjk"].tokens, 2).hashes
        return np.unique(np.concatenate([word, cjk]))

    def stat_keys(self) -> np.ndarray:
        """Distinct words and CJK bigrams: counted per document for IDF weights."""
        return self._vocab

    @functools.cached_property
    def _query_keys(self) -> np.ndarray:
        return np.unique(np.concatenate([g.hashes for g in self.grams.values()]))

    def is_empty(self) -> bool:
        return all(len(g) == 0 for g in self.grams.values())

    @functools.cached_property
    def newlines(self) -> np.ndarray:
        cps = np.frombuffer(self.source.encode("utf-32-le", "surrogatepass"), dtype="<u4")
        return np.nonzero(cps == 10)[0]

    def line_of(self, offset: int) -> int:
        """1-based line number of a character offset."""
        return int(np.searchsorted(self.newlines, offset, side="left")) + 1


def _to_source(stream: TokenStream, offsets: np.ndarray) -> TokenStream:
    """Map token spans from stripped-text coordinates back into the source text."""
    if len(stream) == 0:
        return stream
    starts = offsets[stream.starts]
    ends = offsets[stream.ends - 1] + 1
    return TokenStream(stream.kind, stream.hashes, starts.astype(np.int64), ends.astype(np.int64))
