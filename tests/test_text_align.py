"""Tests for copyscope.text.align: seeds, clustering, coverage, passages."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from copyscope.text.align import align, cluster, covered, seed_pairs
from copyscope.text.fingerprint import kgrams
from copyscope.text.normalize import tokenize

# --- seed_pairs vs brute force ----------------------------------------------------------

def brute_seeds(q: list[int], r: list[int], max_occ: int) -> list[tuple[int, int]]:
    cq, cr = Counter(q), Counter(r)
    return sorted((i, j) for i, a in enumerate(q) for j, b in enumerate(r)
                  if a == b and cq[a] <= max_occ and cr[b] <= max_occ)


SMALL = st.lists(st.integers(0, 6), max_size=25)


@settings(max_examples=400, deadline=None)
@given(SMALL, SMALL, st.integers(1, 5))
def test_seed_pairs_equals_brute_force(q, r, max_occ):
    qi, rj = seed_pairs(np.array(q, dtype=np.uint64), np.array(r, dtype=np.uint64), max_occ)
    assert qi.dtype == np.int64 and rj.dtype == np.int64
    got = list(zip(qi.tolist(), rj.tolist()))
    assert sorted(got) == brute_seeds(q, r, max_occ)
    assert len(set(got)) == len(got)                      # no duplicate pairs
    assert qi.tolist() == sorted(qi.tolist())             # grouped by query position


@settings(max_examples=200, deadline=None)
@given(SMALL, SMALL, st.integers(1, 5))
def test_seed_pairs_respects_max_occ(q, r, max_occ):
    qi, rj = seed_pairs(np.array(q, dtype=np.uint64), np.array(r, dtype=np.uint64), max_occ)
    cq, cr = Counter(q), Counter(r)
    for i, j in zip(qi.tolist(), rj.tolist()):
        assert q[i] == r[j]
        assert cq[q[i]] <= max_occ and cr[r[j]] <= max_occ


def test_seed_pairs_known_case():
    q = np.array([5, 9, 5, 7, 1], dtype=np.uint64)
    r = np.array([7, 5, 3, 9, 9, 9], dtype=np.uint64)
    qi, rj = seed_pairs(q, r, max_occ=2)
    # 9 occurs 3× in r (> max_occ=2): skipped; 5 occurs twice in q (== max_occ): kept.
    assert list(zip(qi.tolist(), rj.tolist())) == [(0, 1), (2, 1), (3, 0)]
    qi, rj = seed_pairs(q, r, max_occ=1)
    assert list(zip(qi.tolist(), rj.tolist())) == [(3, 0)]


def test_seed_pairs_large_hashes_and_empty_inputs():
    big = np.array([2**64 - 1, 2**63, 1], dtype=np.uint64)
    qi, rj = seed_pairs(big, big[::-1].copy())
    assert sorted(zip(qi.tolist(), rj.tolist())) == [(0, 2), (1, 1), (2, 0)]
    for a, b in ((big[:0], big), (big, big[:0])):
        qi, rj = seed_pairs(a, b)
        assert qi.shape == rj.shape == (0,)


# --- cluster --------------------------------------------------------------------------

def as_sets(clusters, qi, rj):
    return [sorted(zip(qi[m].tolist(), rj[m].tolist())) for m in clusters]


def test_cluster_splits_on_query_axis_gap():
    qi = np.array([0, 1, 2, 3, 20, 21, 22, 23])
    rj = np.array([0, 1, 2, 3, 4, 5, 6, 7])
    out = cluster(qi, rj, gap=8)
    assert as_sets(out, qi, rj) == [[(0, 0), (1, 1), (2, 2), (3, 3)], [(20, 4), (21, 5), (22, 6), (23, 7)]]


def test_cluster_splits_on_source_axis_gap():
    qi = np.array([0, 1, 2, 3, 4, 5, 6, 7])
    rj = np.array([0, 1, 2, 3, 50, 51, 52, 53])
    out = cluster(qi, rj, gap=8)
    assert as_sets(out, qi, rj) == [[(0, 0), (1, 1), (2, 2), (3, 3)], [(4, 50), (5, 51), (6, 52), (7, 53)]]


def test_cluster_gap_boundary():
    qi = np.array([0, 8, 17])           # 8 apart: together; 9 apart: split
    rj = np.array([0, 8, 17])
    assert as_sets(cluster(qi, rj, gap=8), qi, rj) == [[(0, 0), (8, 8)], [(17, 17)]]


def test_cluster_needs_both_axes_alternately():
    # q axis is one block; r splits into {a, b} and {c}; inside {a, b} the q axis then splits.
    qi = np.array([0, 1, 2, 3, 4, 5, 30, 31])
    rj = np.array([0, 1, 100, 101, 60, 61, 2, 3])
    out = as_sets(cluster(qi, rj, gap=5), qi, rj)
    assert sorted(out) == sorted([[(0, 0), (1, 1)], [(30, 2), (31, 3)], [(2, 100), (3, 101)], [(4, 60), (5, 61)]])
    assert out == sorted(out, key=lambda c: (min(p[0] for p in c), min(p[1] for p in c)))


def test_cluster_empty():
    assert cluster(np.zeros(0, np.int64), np.zeros(0, np.int64), gap=8) == []


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 60), st.integers(0, 60)), max_size=40), st.integers(0, 10))
def test_cluster_partitions_seeds_into_dense_clusters(pairs, gap):
    qi = np.array([p[0] for p in pairs], dtype=np.int64)
    rj = np.array([p[1] for p in pairs], dtype=np.int64)
    out = cluster(qi, rj, gap)
    members = np.concatenate(out).tolist() if out else []
    assert sorted(members) == list(range(len(pairs)))          # a partition: every seed exactly once
    for m in out:
        assert m.shape[0] > 0
        for axis in (qi, rj):
            v = np.sort(axis[m])
            assert np.all(np.diff(v) <= gap)                  # dense along both axes
    keys = [(int(qi[m].min()), int(rj[m].min())) for m in out]
    assert keys == sorted(keys)


# --- covered -----------------------------------------------------------------------------

@pytest.mark.parametrize("starts,k,expected", [
    ([], 3, 0),
    ([0], 3, 3),
    ([0, 1, 2], 3, 5),
    ([0, 10], 3, 6),
    ([0, 2], 3, 5),
    ([2, 0, 1, 1, 0], 3, 5),       # order and duplicates don't matter
    ([0, 3, 6], 3, 9),
    ([5], 1, 1),
])
def test_covered(starts, k, expected):
    assert covered(np.array(starts, dtype=np.int64), k) == expected


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 50), max_size=20), st.integers(1, 6))
def test_covered_equals_union_of_kgram_token_ranges(starts, k):
    union = set()
    for s in starts:
        union.update(range(s, s + k))
    assert covered(np.array(starts, dtype=np.int64), k) == len(union)


# --- align on real text -----------------------------------------------------------------

P1 = ("Volunteers scraped forty years of salt from the brass frame before the new lens could be fitted. "
      "Each pane was numbered in pencil so the glaziers could return it to the same slot.")
P2 = ("By late autumn the generator had been replaced with a bank of batteries charged by a small wind "
      "turbine on the gallery rail. The keeper's logbook, found in a tin under the stairs, records every "
      "storm since 1931.")
FILLER_A = ("Cargo bikes now carry most parcels through the old town, where delivery vans cannot turn in the "
            "narrow lanes. Riders say hills matter less than potholes.")
FILLER_B = "A municipal survey counted twelve hundred trips per week last summer, mostly bread, medicine and office paper."
N1, N2, NA = 33, 39, 26          # word tokens in P1, P2, FILLER_A


def grams(text: str):
    return kgrams(tokenize(text)["word"], 3)


def test_fixture_token_counts():
    assert (len(tokenize(P1)["word"]), len(tokenize(P2)["word"]), len(tokenize(FILLER_A)["word"])) == (N1, N2, NA)


def test_unrelated_texts_align_nothing():
    assert align(grams(FILLER_A + " " + FILLER_B), grams(P1 + " " + P2), gap=8, min_tokens=4) == []


def test_align_embedded_paragraph_is_one_passage():
    query = f"{FILLER_A} {P1} {FILLER_B}"
    q, r = grams(query), grams(P1)
    out = align(q, r, gap=8, min_tokens=4)
    assert len(out) == 1
    p = out[0]
    assert (p.kind, p.q_first, p.q_last, p.r_first, p.r_last) == ("word", NA, NA + N1 - 3, 0, N1 - 3)
    assert (p.seeds, p.q_tokens, p.r_tokens, p.weight) == (N1 - 2, N1, N1, float(N1))
    start, end = q.span(p.q_first, p.q_last)
    assert query[start:end] == P1[:-1]                      # up to the last word, not the final '.'


def test_align_reordered_paragraphs_are_separate_passages():
    registered = f"{P1}\n\n{P2}"
    query = f"{P2} {FILLER_A} {P1}"
    out = align(grams(query), grams(registered), gap=8, min_tokens=4)
    got = [(p.q_first, p.q_last, p.r_first, p.r_last, p.q_tokens) for p in out]
    assert got == [(0, N2 - 3, N1, N1 + N2 - 3, N2),
                   (N2 + NA, N2 + NA + N1 - 3, 0, N1 - 3, N1)]


def test_align_adjacent_swapped_paragraphs_are_separate_passages():
    out = align(grams(f"{P2}\n\n{P1}"), grams(f"{P1}\n\n{P2}"), gap=8, min_tokens=4)
    assert [(p.q_first, p.r_first) for p in out] == [(0, N1), (N2, 0)]


def test_align_min_tokens_drops_short_coincidences():
    query = "the brass frame before lunch"           # 4 shared tokens "the brass frame before"
    assert [p.r_tokens for p in align(grams(query), grams(P1), gap=8, min_tokens=4)] == [4]
    assert align(grams(query), grams(P1), gap=8, min_tokens=5) == []


def test_align_small_edit_stays_one_passage_and_weights_scale():
    edited = P1.replace("brass", "bronze")
    q, r = grams(edited), grams(P1)
    out = align(q, r, gap=8, min_tokens=4)
    assert len(out) == 1 and out[0].r_first == 0 and out[0].r_last == N1 - 3
    weights = np.full(len(r), 0.5)
    weighted = align(q, r, gap=8, min_tokens=4, weights=weights)
    assert weighted[0].weight == pytest.approx(0.5 * out[0].r_tokens)
    unknown = align(q, r, gap=8, min_tokens=4, weights=np.full(len(r), np.nan))
    assert unknown[0].weight == float(out[0].r_tokens)       # NaN = not in corpus: no discount
