"""Document frequencies: how common a key is in the corpus a match is judged against.

Rarity is what turns "these texts share words" into evidence. Two sources:

* :class:`MemoryStats` over the documents of one ``compare`` run (every unit),
* the registry's index segments (``copyscope.index.inverted.IndexReader``).

Both answer the same two questions, so the plugins never know which one they got.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Protocol, Sequence

import numpy as np


class CorpusStats(Protocol):
    n_docs: int

    def key_df(self, keys: np.ndarray) -> np.ndarray:
        """How many documents hold each indexed key (winnowed k-gram)."""

    def stat_df(self, keys: np.ndarray) -> np.ndarray:
        """How many documents hold each statistics key (word / bigram)."""


def _counts(key_sets: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    if not key_sets:
        return np.zeros(0, np.uint64), np.zeros(0, np.int64)
    keys, counts = np.unique(np.concatenate(key_sets), return_counts=True)
    return keys, counts.astype(np.int64)


def lookup(sorted_keys: np.ndarray, counts: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Counts for ``keys`` in a sorted key table (0 where absent)."""
    if sorted_keys.shape[0] == 0:
        return np.zeros(keys.shape[0], np.int64)
    pos = np.searchsorted(sorted_keys, keys)
    pos = np.minimum(pos, sorted_keys.shape[0] - 1)
    return np.where(sorted_keys[pos] == keys, counts[pos], 0)


class MemoryStats:
    """Frequencies over in-memory fingerprinted documents.

    ``reference`` plays the registry: its k-grams decide what is common
    boilerplate. ``corpus`` (default: the reference) gives the vocabulary IDF.
    Keeping them apart matters: when many queries copy one source, the copied
    text must not become "common" just because it was copied often.
    """

    def __init__(self, reference: Sequence, corpus: Sequence | None = None) -> None:
        corpus = reference if corpus is None else corpus
        self.n_docs = len(corpus)
        self._keys, self._kc = _counts([d.index_keys() for d in reference])
        self._stats, self._sc = _counts([d.stat_keys() for d in corpus])

    def key_df(self, keys: np.ndarray) -> np.ndarray:
        return lookup(self._keys, self._kc, keys)

    def stat_df(self, keys: np.ndarray) -> np.ndarray:
        return lookup(self._stats, self._sc, keys)


class CachedStats:
    """Memoises document-frequency lookups by the identity of the key array.

    Fingerprints cache their key arrays, so the same registered document's keys
    arrive as the same array object in every check: its df values are looked up
    in the index once per index generation instead of once per candidate. The
    memo holds the arrays it saw (ids stay unique) and is bounded (LRU).
    """

    def __init__(self, inner: CorpusStats, limit: int = 4096) -> None:
        self.inner = inner
        self.n_docs = inner.n_docs
        self.limit = limit
        self._memo: OrderedDict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = OrderedDict()

    def _cached(self, kind: str, keys: np.ndarray, fn) -> np.ndarray:  # noqa: ANN001
        slot = (kind, id(keys))
        hit = self._memo.get(slot)
        if hit is not None and hit[0] is keys:
            self._memo.move_to_end(slot)
            return hit[1]
        out = fn(keys)
        self._memo[slot] = (keys, out)
        if len(self._memo) > self.limit:
            self._memo.popitem(last=False)
        return out

    def key_df(self, keys: np.ndarray) -> np.ndarray:
        return self._cached("key", keys, self.inner.key_df)

    def stat_df(self, keys: np.ndarray) -> np.ndarray:
        return self._cached("stat", keys, self.inner.stat_df)
