"""Hashed k-grams and winnowing over token streams.

The registry side stores *winnowed* k-grams (Schleimer et al. 2003, robust
variant: the rightmost minimum of each window), which guarantees that any shared
run of ``k + w - 1`` tokens is found while storing only ~2/(w+1) of the k-grams.
The query side looks up *all* of its k-grams, so that guarantee holds from either
side. Every k-gram keeps its token index, hence its character span: evidence
needs locations, not just hashes.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from copyscope.text.normalize import TokenStream, mix64

_KGRAM_MULT = np.uint64(0xC6A4A7935BD1E995)
_STREAM_SALT = {"word": np.uint64(0x5157_4F52_4453_0001), "cjk": np.uint64(0x434A_4B43_4841_0002)}


@dataclass(frozen=True)
class KGrams:
    """The k-grams of one stream: ``hashes[i]`` covers tokens ``i .. i+k-1``."""

    kind: str
    k: int
    hashes: np.ndarray        # uint64, one per k-gram position
    tokens: TokenStream

    def __len__(self) -> int:
        return int(self.hashes.shape[0])

    @functools.cached_property
    def sorted_index(self) -> tuple[np.ndarray, np.ndarray]:
        """(order, sorted hashes): computed once, reused against every candidate."""
        order = np.argsort(self.hashes, kind="stable")
        return order, self.hashes[order]

    def span(self, i: int, j: int | None = None) -> tuple[int, int]:
        """Character span from k-gram ``i`` to k-gram ``j`` (inclusive)."""
        j = i if j is None else j
        last = min(j + self.k - 1, len(self.tokens) - 1)
        return int(self.tokens.starts[i]), int(self.tokens.ends[last])


def kgrams(tokens: TokenStream, k: int) -> KGrams:
    """Hash every run of ``k`` consecutive tokens (or the whole stream if shorter)."""
    n = len(tokens)
    salt = _STREAM_SALT[tokens.kind] ^ np.uint64(k)
    if n == 0:
        return KGrams(tokens.kind, k, np.zeros(0, dtype=np.uint64), tokens)
    span = min(k, n)
    m = n - span + 1
    h = tokens.hashes
    acc = h[:m].copy()
    for t in range(1, span):                  # uint64 array arithmetic wraps mod 2**64
        acc *= _KGRAM_MULT
        acc += h[t:t + m]
    acc ^= salt
    return KGrams(tokens.kind, k, mix64(acc), tokens)


def winnow(hashes: np.ndarray, w: int) -> np.ndarray:
    """Indices of the winnowed k-grams (rightmost minimum per window of ``w``)."""
    n = hashes.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if n <= w:
        return np.array([n - 1 - int(np.argmin(hashes[::-1]))], dtype=np.int64)
    windows = sliding_window_view(hashes, w)
    picks = np.arange(n - w + 1) + (w - 1 - np.argmin(windows[:, ::-1], axis=1))
    keep = np.ones(picks.shape[0], dtype=bool)
    keep[1:] = picks[1:] != picks[:-1]
    return picks[keep].astype(np.int64)
