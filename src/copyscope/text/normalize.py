"""Text → token streams, vectorised, with every token's span in the source text.

Normalisation is one table lookup per code point (see ``scripts/build_fold_table.py``):
NFKC, case folding, accent folding, Cyrillic/Greek homoglyphs, traditional →
simplified Chinese, and whitespace/punctuation folding all happen in that one
step, so the whole pipeline runs in numpy and keeps ≥10 MB/s per core.

Two streams come out of every document, because mixed-language pages need both:

* ``word``: runs of letters/digits (English, Russian, code identifiers, numbers);
* ``cjk``: single characters of scripts written without spaces (Chinese, Japanese
  kana, Hangul, Thai...).

Zero-width and format characters (ZWSP, soft hyphen, ZWJ) and combining marks are
*removed* before tokenising, so ``co\u200bpy`` still reads as ``copy``: inserting
invisible characters is a known trick to defeat copy detectors.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources

import numpy as np

SEP, WORD, CJK, SKIP = 0, 1, 2, 3
_HASH_BASE = np.uint64(0x100000001B3)          # odd, so it has an inverse mod 2**64
_HASH_BASE_INV = np.uint64(pow(0x100000001B3, -1, 2**64))
_CJK_SALT = np.uint64(0x9E3779B97F4A7C15)


@dataclass(frozen=True)
class FoldTable:
    table: np.ndarray          # uint32 per code point: class << 24 | folded code point
    expand_cp: np.ndarray      # sorted code points whose fold is several characters
    expansions: tuple[np.ndarray, ...]   # folded code points for each of expand_cp
    expand_mask: np.ndarray    # bool per code point: has a multi-character fold


@functools.lru_cache(maxsize=1)
def fold_table() -> FoldTable:
    """Load the shipped table once per process (lazily: no import-time work)."""
    with resources.files("copyscope.text").joinpath("data/fold-v1.npz").open("rb") as fh:
        z = np.load(fh, allow_pickle=False)
        table = z["table"].astype(np.uint32)
        expand_cp = z["expand_cp"].astype(np.uint32)
        flat = z["expand_to"].astype(np.uint32)
    parts = np.split(flat, np.nonzero(flat == 0)[0])
    expansions = tuple(p[p != 0] for p in parts)
    order = np.argsort(expand_cp, kind="stable")
    mask = np.zeros(table.shape[0], dtype=bool)
    mask[expand_cp] = True
    return FoldTable(table, expand_cp[order], tuple(expansions[i] for i in order), mask)


@dataclass(frozen=True)
class TokenStream:
    """Tokens of one kind. ``starts``/``ends`` are offsets into the analysed text."""

    kind: str
    hashes: np.ndarray   # uint64 per token
    starts: np.ndarray   # int64
    ends: np.ndarray     # int64

    def __len__(self) -> int:
        return int(self.hashes.shape[0])


_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: spreads polynomial hashes so winnowing minima are fair.

    Array arithmetic on uint64 wraps silently (no overflow checks, unlike numpy
    scalars), so no ``errstate`` is needed; the work is done in place on a copy.
    """
    x = np.array(x, dtype=np.uint64, copy=True)
    x ^= x >> _S30
    x *= _M1
    x ^= x >> _S27
    x *= _M2
    x ^= x >> _S31
    return x


def _code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4").astype(np.uint32)


def _expand(cps: np.ndarray, src: np.ndarray, ft: FoldTable) -> tuple[np.ndarray, np.ndarray]:
    """Replace characters with multi-character folds (ﬁ → f i); ``src`` follows along."""
    # A table lookup, not np.isin: this runs once per document, however short.
    hit = ft.expand_mask[np.minimum(cps, ft.expand_mask.shape[0] - 1)]
    if not hit.any():
        return cps, src
    where = np.nonzero(hit)[0]
    lengths = np.ones(cps.shape[0], dtype=np.int64)
    which = np.searchsorted(ft.expand_cp, cps[where])
    lengths[where] = [len(ft.expansions[i]) for i in which]
    new_src = np.repeat(src, lengths)
    new_cps = np.repeat(cps, lengths)
    starts = np.cumsum(lengths) - lengths
    for w, i in zip(where.tolist(), which.tolist()):
        exp = ft.expansions[i]
        new_cps[starts[w]:starts[w] + len(exp)] = exp
    return new_cps, new_src


def tokenize(text: str) -> dict[str, TokenStream]:
    """Split ``text`` into the ``word`` and ``cjk`` token streams.

    >>> s = tokenize("Ｃopy 漢字 ﬁne")
    >>> len(s["word"]), len(s["cjk"])
    (2, 2)
    """
    ft = fold_table()
    cps = _code_points(text)
    src = np.arange(cps.shape[0], dtype=np.int64)
    cps, src = _expand(cps, src, ft)
    size = ft.table.shape[0]
    val = ft.table[np.minimum(cps, size - 1)]
    if cps.shape[0] and int(cps.max()) >= size:
        # Above the table only separators, except plane-14 tag characters and
        # variation selectors: invisible, so removed like other format characters.
        val = val.copy()
        val[(cps >= 0xE0000) & (cps <= 0xE0FFF)] = np.uint32(SKIP << 24)
    cls = val >> np.uint32(24)
    keep = cls != SKIP
    if not keep.all():
        val, cls, src = val[keep], cls[keep], src[keep]
    folded = (val & np.uint32(0xFFFFFF)).astype(np.uint64)
    return {"word": _word_stream(folded, cls, src), "cjk": _cjk_stream(folded, cls, src)}


def _word_stream(folded: np.ndarray, cls: np.ndarray, src: np.ndarray) -> TokenStream:
    is_word = cls == WORD
    n = is_word.shape[0]
    if not is_word.any():
        return _empty("word")
    prev = np.concatenate(([False], is_word[:-1]))
    nxt = np.concatenate((is_word[1:], [False]))
    run_s = np.nonzero(is_word & ~prev)[0]
    run_e = np.nonzero(is_word & ~nxt)[0] + 1
    # Polynomial hash of each run from prefix sums (arithmetic wraps mod 2**64).
    with np.errstate(over="ignore"):
        pw = np.empty(n, dtype=np.uint64)
        pw[0] = 1
        pw[1:] = _HASH_BASE
        pw = np.cumprod(pw)
        inv = np.empty(n, dtype=np.uint64)
        inv[0] = 1
        inv[1:] = _HASH_BASE_INV
        inv = np.cumprod(inv)
        prefix = np.zeros(n + 1, dtype=np.uint64)
        np.cumsum((folded + np.uint64(1)) * pw, out=prefix[1:])
        raw = (prefix[run_e] - prefix[run_s]) * inv[run_s]
    hashes = mix64(raw ^ (run_e - run_s).astype(np.uint64))
    return TokenStream("word", hashes, src[run_s], src[run_e - 1] + 1)


def _cjk_stream(folded: np.ndarray, cls: np.ndarray, src: np.ndarray) -> TokenStream:
    idx = np.nonzero(cls == CJK)[0]
    if idx.shape[0] == 0:
        return _empty("cjk")
    return TokenStream("cjk", mix64(folded[idx] ^ _CJK_SALT), src[idx], src[idx] + 1)


def _empty(kind: str) -> TokenStream:
    z = np.zeros(0, dtype=np.int64)
    return TokenStream(kind, np.zeros(0, dtype=np.uint64), z, z)
