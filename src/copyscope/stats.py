"""Document frequencies: how common a key is in the corpus a match is judged against.

Rarity is what turns "these texts share words" into evidence. Two sources:

* :class:`MemoryStats` over the documents of one ``compare`` run (every unit),
* the registry's index segments (``copyscope.index.inverted.IndexReader``).

Both answer the same two questions, so the plugins never know which one they got.
"""
from __future__ import annotations

import weakref
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


def passage_rarities(passages: Sequence, hashes: np.ndarray, keys: np.ndarray,
                     stats: CorpusStats | None, common_df: int) -> list[float]:
    """Per aligned passage: mean of ``min(1, common_df / df)`` over its seed
    k-grams that the corpus counts (the index holds winnowed k-grams only); 1 when
    none is. ``hashes`` are the registered document's k-gram hashes (indexed by the
    passages' ``r_seeds``), ``keys`` its sorted indexed keys.

    df is looked up for the registered document's indexed keys as one array, so
    ``CachedStats`` answers it from memory after the first check that needs it.
    """
    if stats is None or not passages or keys.shape[0] == 0:
        return [1.0] * len(passages)
    key_df = stats.key_df(keys).astype(np.float64)
    out = []
    for rp in passages:
        h = hashes[np.unique(rp.r_seeds)]
        pos = np.minimum(np.searchsorted(keys, h), keys.shape[0] - 1)
        d = np.where(keys[pos] == h, key_df[pos], 0.0)
        d = d[d > 0]
        out.append(float(weights(d, common_df).mean()) if d.shape[0] else 1.0)
    return out


def weights(df: np.ndarray, common_df: int) -> np.ndarray:
    """``min(1, common_df / df)``: a key held by more documents than ``common_df``
    counts less, in proportion; one the corpus does not hold counts fully."""
    return np.minimum(1.0, common_df / np.maximum(df.astype(np.float64), 1.0))


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
    in the index once per index generation instead of once per candidate.

    An entry lives exactly as long as its key array (a weak reference drops it
    when the array is freed). A query's arrays, which no later check sees
    again, and the arrays of a registered document the workspace's reference
    cache let go, would otherwise stay here as dead weight until the LRU bound
    pushed them out: ~14 MiB a serving process, most of the memo.
    """

    def __init__(self, inner: CorpusStats, limit: int = 4096) -> None:
        self.inner = inner
        self.n_docs = inner.n_docs
        self.limit = limit
        self._memo: OrderedDict[tuple[str, int], tuple[weakref.ref, np.ndarray]] = OrderedDict()

    def _cached(self, kind: str, keys: np.ndarray, fn) -> np.ndarray:  # noqa: ANN001
        slot = (kind, id(keys))
        hit = self._memo.get(slot)
        if hit is not None and hit[0]() is keys:
            self._memo.move_to_end(slot)
            return hit[1]
        out = fn(keys)
        memo = self._memo

        def forget(ref: weakref.ref, slot: tuple[str, int] = slot) -> None:
            if memo.get(slot, (None,))[0] is ref:      # not a newer array that reused the id
                memo.pop(slot, None)
        memo[slot] = (weakref.ref(keys, forget), out)
        if len(memo) > self.limit:
            memo.popitem(last=False)
        return out

    def key_df(self, keys: np.ndarray) -> np.ndarray:
        return self._cached("key", keys, self.inner.key_df)

    def stat_df(self, keys: np.ndarray) -> np.ndarray:
        return self._cached("stat", keys, self.inner.stat_df)
