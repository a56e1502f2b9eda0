"""The df memo answers a registered document's keys from memory, and lets go of
an entry as soon as its key array is freed (a query's arrays are never seen twice)."""
from __future__ import annotations

import gc

import numpy as np

from copyscope.stats import CachedStats


class CountingStats:
    n_docs = 10

    def __init__(self) -> None:
        self.calls = 0

    def key_df(self, keys: np.ndarray) -> np.ndarray:
        self.calls += 1
        return np.ones(keys.shape[0], np.int64)

    def stat_df(self, keys: np.ndarray) -> np.ndarray:
        self.calls += 1
        return np.full(keys.shape[0], 2, np.int64)


def test_the_same_key_array_is_looked_up_once():
    inner = CountingStats()
    stats = CachedStats(inner)
    keys = np.arange(5, dtype=np.uint64)
    assert stats.stat_df(keys).tolist() == [2] * 5
    assert stats.stat_df(keys).tolist() == [2] * 5
    assert stats.key_df(keys).tolist() == [1] * 5       # another kind, its own entry
    assert inner.calls == 2
    stats.stat_df(keys.copy())                           # equal values, another array: looked up
    assert inner.calls == 3


def test_an_entry_goes_when_its_key_array_is_freed():
    inner = CountingStats()
    stats = CachedStats(inner)
    kept = np.arange(3, dtype=np.uint64)
    stats.stat_df(kept)
    for n in range(100):                                 # a hundred queries, each seen once
        stats.stat_df(np.arange(n + 1, dtype=np.uint64))
    gc.collect()
    assert len(stats._memo) == 1                         # only the array still alive
    calls = inner.calls
    stats.stat_df(kept)
    assert inner.calls == calls                          # and it still hits


def test_the_memo_stays_bounded_while_arrays_live():
    stats = CachedStats(CountingStats(), limit=8)
    alive = [np.arange(3, dtype=np.uint64) for _ in range(20)]
    for keys in alive:
        stats.key_df(keys)
    assert len(stats._memo) == 8
