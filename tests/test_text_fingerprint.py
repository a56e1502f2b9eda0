"""Tests for copyscope.text.fingerprint: hashed k-grams and (robust) winnowing."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from copyscope.model import Artifact
from copyscope.text.analysis import TextParams
from copyscope.text.fingerprint import kgrams, winnow
from copyscope.text.normalize import TokenStream, tokenize
from copyscope.text.plugin import TextModality

U64 = st.integers(min_value=0, max_value=2**64 - 1)


def stream(hashes, kind: str = "word") -> TokenStream:
    h = np.array(hashes, dtype=np.uint64)
    starts = np.arange(h.shape[0], dtype=np.int64) * 2
    return TokenStream(kind, h, starts, starts + 1)


# --- k-grams ----------------------------------------------------------------------------

@pytest.mark.parametrize("n,k,expected", [(0, 3, 0), (1, 3, 1), (2, 3, 1), (3, 3, 1), (4, 3, 2), (10, 3, 8),
                                          (10, 1, 10), (5, 5, 1), (6, 5, 2)])
def test_kgram_count(n, k, expected):
    g = kgrams(stream(range(1, n + 1)), k)
    assert len(g) == expected
    assert g.hashes.dtype == np.uint64 and g.k == k and g.kind == "word"


def test_kgram_span_covers_k_tokens():
    text = "one two three four five"
    g = kgrams(tokenize(text)["word"], 3)
    assert len(g) == 3
    assert text[slice(*g.span(0))] == "one two three"
    assert text[slice(*g.span(2))] == "three four five"
    assert text[slice(*g.span(0, 2))] == text
    short = kgrams(tokenize("just two")["word"], 3)          # shorter than k: one gram, clamped span
    assert len(short) == 1 and short.span(0) == (0, 8)


@settings(max_examples=200, deadline=None)
@given(st.lists(U64, min_size=1, max_size=30), st.integers(1, 6), st.integers(0, 10))
def test_kgram_hash_depends_only_on_its_tokens(tokens, k, shift):
    """Shifting a run to another position (other prefix) keeps its k-gram hashes."""
    prefix = [(7919 * (i + 1)) % 2**64 for i in range(shift)]
    a = kgrams(stream(tokens), k).hashes
    b = kgrams(stream(prefix + tokens), k).hashes
    if len(tokens) >= k:
        np.testing.assert_array_equal(a, b[shift:])


def test_kgram_hash_is_order_sensitive_and_salted_by_kind_and_k():
    ab = kgrams(stream([11, 22, 33]), 3).hashes[0]
    ba = kgrams(stream([33, 22, 11]), 3).hashes[0]
    assert ab != ba
    assert kgrams(stream([11, 22, 33], "cjk"), 3).hashes[0] != ab
    assert kgrams(stream([11, 22, 33]), 4).hashes[0] != ab    # same tokens, different k


def test_kgrams_deterministic():
    s = tokenize("a b c d e f g h 漢 字 汉 字")
    for kind in ("word", "cjk"):
        np.testing.assert_array_equal(kgrams(s[kind], 3).hashes, kgrams(s[kind], 3).hashes)


# --- winnowing -------------------------------------------------------------------------

def brute_winnow(h: list[int], w: int) -> list[int]:
    """Reference robust winnowing: rightmost minimum of each window, recorded when it changes."""
    n = len(h)
    if n == 0:
        return []
    if n <= w:
        m = min(h)
        return [max(i for i in range(n) if h[i] == m)]
    out: list[int] = []
    for s in range(n - w + 1):
        win = h[s:s + w]
        m = min(win)
        pick = s + max(i for i in range(w) if win[i] == m)
        if not out or out[-1] != pick:
            out.append(pick)
    return out


HASHES = st.lists(st.integers(0, 2**64 - 1) | st.integers(0, 5), max_size=60)   # small ints force ties


@settings(max_examples=300, deadline=None)
@given(HASHES, st.integers(1, 10))
def test_winnow_every_window_has_a_selected_index(h, w):
    picks = set(winnow(np.array(h, dtype=np.uint64), w).tolist())
    n = len(h)
    if n == 0:
        assert not picks
        return
    for s in range(max(1, n - w + 1)):
        assert picks & set(range(s, min(s + w, n))), f"window {s}..{s + w - 1} has no fingerprint"


@settings(max_examples=300, deadline=None)
@given(HASHES, st.integers(1, 10))
def test_winnow_selection_is_sorted_unique_in_range_and_deterministic(h, w):
    arr = np.array(h, dtype=np.uint64)
    picks = winnow(arr, w)
    assert picks.dtype == np.int64
    lst = picks.tolist()
    assert lst == sorted(set(lst))
    assert all(0 <= i < len(h) for i in lst)
    np.testing.assert_array_equal(picks, winnow(arr.copy(), w))


@settings(max_examples=300, deadline=None)
@given(HASHES, st.integers(1, 10))
def test_winnow_matches_reference_implementation(h, w):
    assert winnow(np.array(h, dtype=np.uint64), w).tolist() == brute_winnow(h, w)


@settings(max_examples=100, deadline=None)
@given(HASHES, st.integers(2, 10))
def test_winnow_picks_are_window_minima(h, w):
    arr = np.array(h, dtype=np.uint64)
    n = len(h)
    windows = [(0, n)] if n <= w else [(s, s + w) for s in range(n - w + 1)]
    for i in winnow(arr, w).tolist():
        assert any(s <= i < e and arr[i] == arr[s:e].min() for s, e in windows), i


def test_winnow_density_on_random_hashes():
    """~2/(w+1) of the k-grams are kept (Schleimer et al.); a loose bound, no timing."""
    rng = np.random.default_rng(3)
    h = rng.integers(0, 2**63, size=20000, dtype=np.uint64)
    for w in (4, 6, 8):
        density = winnow(h, w).shape[0] / h.shape[0]
        assert 1.5 / (w + 1) < density < 2.5 / (w + 1), (w, density)


def test_winnow_known_small_case():
    #                 0  1  2  3  4  5  6  7
    h = np.array([77, 74, 42, 17, 98, 50, 17, 98], dtype=np.uint64)
    # windows of 4: [0..3]→3, [1..4]→3, [2..5]→3, [3..6]→6 (rightmost 17), [4..7]→6
    assert winnow(h, 4).tolist() == [3, 6]
    assert winnow(h[:3], 4).tolist() == [2]        # fewer grams than w: one global (rightmost) minimum
    assert winnow(np.zeros(0, np.uint64), 4).tolist() == []


# --- shared-substring guarantee ---------------------------------------------------------

def indexed(tokens: list[int], k: int, w: int) -> set[int]:
    g = kgrams(stream(tokens), k)
    return set(g.hashes[winnow(g.hashes, w)].tolist())


@settings(max_examples=200, deadline=None)
@given(st.lists(U64, max_size=25), st.lists(U64, max_size=25), st.lists(U64, max_size=25),
       st.integers(0, 8), st.integers(1, 5), st.integers(1, 8))
def test_shared_run_of_k_plus_w_minus_1_tokens_shares_an_index_key(a_pre, b_pre, post, extra, k, w):
    run = [(0x9E3779B97F4A7C15 * (i + 13)) % 2**64 for i in range(k + w - 1 + extra)]
    a = a_pre + run + post
    b = b_pre + run
    assert indexed(a, k, w) & indexed(b, k, w)


WORDS = ["amber", "basalt", "cobalt", "delta", "ember", "fjord", "granite", "harbour", "indigo", "juniper",
         "kelp", "lantern", "meadow", "nettle", "ochre", "pewter", "quartz", "reef", "slate", "thistle"]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(WORDS), max_size=30), st.lists(st.sampled_from(WORDS), max_size=30),
       st.lists(st.sampled_from(WORDS), min_size=8, max_size=20))
def test_texts_sharing_a_word_run_share_an_index_key(pre_a, pre_b, shared):
    p = TextParams()
    assert len(shared) >= p.word_k + p.word_window - 1
    plugin = TextModality()
    a = plugin.fingerprint(Artifact(" ".join(pre_a + shared).encode(), origin="a.txt"))
    b = plugin.fingerprint(Artifact(("Intro: " + " ".join(pre_b) + ". " + " ".join(shared).upper()).encode(),
                                    origin="b.txt"))
    assert np.intersect1d(a.index_keys(), b.index_keys()).shape[0] > 0


def test_cjk_run_of_k_plus_w_minus_1_chars_shares_an_index_key():
    p = TextParams()
    shared = "永宁桥是一座单孔石拱桥始建"[: p.cjk_k + p.cjk_window - 1]
    plugin = TextModality()
    a = plugin.fingerprint(Artifact(("马拉松比赛今天举行" + shared + "选手们冲过终点").encode(), origin="a.txt"))
    b = plugin.fingerprint(Artifact(("据报道" + shared).encode(), origin="b.txt"))
    assert np.intersect1d(a.index_keys(), b.index_keys()).shape[0] > 0
