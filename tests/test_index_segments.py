"""Tests for copyscope.index.inverted: segment files, merging and the index reader."""
from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from copyscope.errors import StorageError
from copyscope.index.inverted import (HEADER, MAGIC, VERSION, DocKeys, IndexReader, Segment,
                                      merge_segments, write_segment)

U64 = st.integers(0, 2**64 - 1)


def dk(doc_id: int, keys, stat_keys=()) -> DocKeys:
    return DocKeys(doc_id, np.unique(np.array(list(keys), dtype=np.uint64)),
                   np.unique(np.array(list(stat_keys), dtype=np.uint64)))


DOCS = st.lists(
    st.tuples(st.integers(0, 2**32 - 1), st.sets(U64 | st.integers(0, 40), max_size=30),
              st.sets(U64 | st.integers(0, 40), max_size=30)),
    max_size=8, unique_by=lambda t: t[0],
).map(lambda ds: [dk(i, k, s) for i, k, s in ds])


def expected_postings(docs):
    return sorted((int(k), d.doc_id) for d in docs for k in d.keys.tolist())


def expected_stats(docs):
    c = Counter(int(k) for d in docs for k in d.stat_keys.tolist())
    return sorted(c.items())


def assert_segment_holds(seg: Segment, docs) -> None:
    assert list(zip(seg.post_keys.tolist(), seg.post_docs.tolist())) == expected_postings(docs)
    assert list(zip(seg.stat_keys.tolist(), seg.stat_counts.tolist())) == expected_stats(docs)
    assert seg.docs.tolist() == [d.doc_id for d in docs]
    assert seg.doc_sizes.tolist() == [int(d.keys.shape[0]) for d in docs]
    assert seg.n_docs == len(docs)
    assert seg.post_keys.dtype == np.dtype("<u8") and seg.post_docs.dtype == np.dtype("<u4")


# --- round trip -------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(DOCS)
def test_write_then_read_round_trip(docs):
    with tempfile.TemporaryDirectory() as d:
        name = write_segment(Path(d), docs)
        assert name.startswith("seg-") and name.endswith(".csx")
        assert sorted(p.name for p in Path(d).iterdir()) == [name]      # no .tmp left behind
        seg = Segment(Path(d) / name, verify=True)
        assert_segment_holds(seg, docs)


def test_empty_segment_round_trip(tmp_path):
    seg = Segment(tmp_path / write_segment(tmp_path, []), verify=True)
    assert seg.n_docs == 0 and seg.post_keys.shape == (0,) and seg.stat_keys.shape == (0,)
    assert (tmp_path / seg.path.name).stat().st_size == HEADER + 8


def test_write_segment_creates_the_directory(tmp_path):
    d = tmp_path / "index" / "text"
    name = write_segment(d, [dk(1, [1, 2])])
    assert (d / name).is_file()


# --- byte layout --------------------------------------------------------------------------

def test_header_and_array_layout_is_little_endian(tmp_path):
    docs = [dk(7, [0x0102030405060708, 3]), dk(9, [3], [5, 6])]
    path = tmp_path / write_segment(tmp_path, docs)
    raw = path.read_bytes()
    assert raw[:8] == MAGIC == b"CSIDX\x00v1"
    assert raw[8:12] == VERSION.to_bytes(4, "little") == b"\x01\x00\x00\x00"
    assert raw[12:16] == b"\x00\x00\x00\x00"                      # reserved
    assert raw[16:24] == (3).to_bytes(8, "little")                # n_postings
    assert raw[24:32] == (2).to_bytes(8, "little")                # n_stats
    assert raw[32:40] == (2).to_bytes(8, "little")                # n_docs
    off = HEADER
    # post_keys sorted by (key, doc): (3, 7), (3, 9), (0x0102..., 7)
    assert raw[off:off + 24] == b"".join(k.to_bytes(8, "little") for k in (3, 3, 0x0102030405060708))
    off += 24
    assert raw[off:off + 12] == b"".join(d.to_bytes(4, "little") for d in (7, 9, 7))
    assert raw[off + 12:off + 16] == b"\x00" * 4                  # padding to 8 bytes
    off += 16
    assert raw[off:off + 16] == (5).to_bytes(8, "little") + (6).to_bytes(8, "little")   # stat keys
    off += 16
    assert raw[off:off + 8] == (1).to_bytes(4, "little") * 2     # stat counts (+ no pad needed)
    off += 8
    assert raw[off:off + 8] == (7).to_bytes(4, "little") + (9).to_bytes(4, "little")    # doc ids
    off += 8
    assert raw[off:off + 8] == (2).to_bytes(4, "little") + (1).to_bytes(4, "little")    # doc sizes
    off += 8
    assert len(raw) == off + 8
    assert raw[off:] == xxhash.xxh64(raw[:off]).intdigest().to_bytes(8, "little")


# --- damage ---------------------------------------------------------------------------------

@pytest.fixture
def segment_file(tmp_path) -> Path:
    docs = [dk(i, range(i * 10, i * 10 + 12), range(i, i + 5)) for i in range(1, 5)]
    return tmp_path / write_segment(tmp_path, docs)


@pytest.mark.parametrize("where", ["post_keys", "post_docs", "stat_counts", "doc_sizes", "checksum"])
def test_flipped_byte_fails_checksum(segment_file, where):
    raw = bytearray(segment_file.read_bytes())
    n_post, n_stat = 48, 8
    offsets = {"post_keys": HEADER + 5, "post_docs": HEADER + 8 * n_post + 1,
               "stat_counts": HEADER + 12 * n_post + 8 * n_stat + 2, "doc_sizes": len(raw) - 8 - 4,
               "checksum": len(raw) - 3}
    Segment(segment_file, verify=True)                  # intact: fine
    raw[offsets[where]] ^= 0x40
    segment_file.write_bytes(bytes(raw))
    Segment(segment_file)                               # without verify the damage goes unnoticed...
    with pytest.raises(StorageError, match="checksum"):
        Segment(segment_file, verify=True)              # ...with verify it is refused


def test_bad_magic_is_refused_even_without_verify(segment_file):
    raw = bytearray(segment_file.read_bytes())
    raw[0:5] = b"XXXXX"
    segment_file.write_bytes(bytes(raw))
    with pytest.raises(StorageError, match="magic"):
        Segment(segment_file)


def test_unknown_version_is_refused(segment_file):
    raw = bytearray(segment_file.read_bytes())
    raw[8:12] = (2).to_bytes(4, "little")
    segment_file.write_bytes(bytes(raw))
    with pytest.raises(StorageError, match="version 2"):
        Segment(segment_file)


def test_every_truncation_is_refused(segment_file):
    raw = segment_file.read_bytes()
    cut = segment_file.with_name("cut.csx")
    for n in range(len(raw)):
        cut.write_bytes(raw[:n])
        with pytest.raises(StorageError):
            Segment(cut)


def test_header_claiming_more_postings_than_the_file_holds_is_refused(segment_file):
    raw = bytearray(segment_file.read_bytes())
    raw[16:24] = (10**6).to_bytes(8, "little")
    segment_file.write_bytes(bytes(raw))
    with pytest.raises(StorageError, match="truncated"):
        Segment(segment_file)


def test_trailing_garbage_is_refused(segment_file):
    segment_file.write_bytes(segment_file.read_bytes() + b"\0" * 8)
    with pytest.raises(StorageError):
        Segment(segment_file)


def test_missing_file_is_a_storage_error(tmp_path):
    with pytest.raises(StorageError, match="cannot open"):
        Segment(tmp_path / "seg-missing.csx")


# --- merge ----------------------------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(DOCS, st.lists(st.integers(0, 8), max_size=3))
def test_merge_equals_writing_all_docs_at_once(docs, cuts):
    bounds = sorted({0, len(docs), *[min(c, len(docs)) for c in cuts]})
    groups = [docs[a:b] for a, b in zip(bounds, bounds[1:])] or [[]]
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        parts = [Segment(d / write_segment(d, g)) for g in groups]
        merged = Segment(d / merge_segments(d, parts), verify=True)
        whole = Segment(d / write_segment(d, docs), verify=True)
        assert_segment_holds(merged, docs)
        for field in ("post_keys", "post_docs", "stat_keys", "stat_counts", "docs", "doc_sizes"):
            np.testing.assert_array_equal(getattr(merged, field), getattr(whole, field), err_msg=field)
        assert merged.path.read_bytes() == whole.path.read_bytes()   # byte-identical files


def test_merge_adds_stat_counts(tmp_path):
    a = Segment(tmp_path / write_segment(tmp_path, [dk(1, [1], [100, 200]), dk(2, [1], [100])]))
    b = Segment(tmp_path / write_segment(tmp_path, [dk(3, [2], [100, 300])]))
    m = Segment(tmp_path / merge_segments(tmp_path, [a, b]))
    assert list(zip(m.stat_keys.tolist(), m.stat_counts.tolist())) == [(100, 3), (200, 1), (300, 1)]
    assert list(zip(m.post_keys.tolist(), m.post_docs.tolist())) == [(1, 1), (1, 2), (2, 3)]


# --- reader ---------------------------------------------------------------------------------

@pytest.fixture
def reader(tmp_path) -> IndexReader:
    common = [9000, 9001]                                    # in every doc: a banner
    docs1 = [dk(1, [*range(1, 41), *common], [1, 2, 3]),     # the doc the query copies
             dk(2, [*range(30, 200), *common], [2, 3, 4])]   # a long doc with a little overlap
    docs2 = [dk(3, [*range(500, 520), *common], [3, 5]),
             dk(4, [*range(1, 6), *common], [3])]            # a short doc: 5 keys shared
    d = tmp_path / "index"
    return IndexReader([Segment(d / write_segment(d, docs1)), Segment(d / write_segment(d, docs2))])


def test_reader_counts(reader):
    assert reader.n_docs == 4
    keys = np.array([1, 35, 9000, 777, 510], dtype=np.uint64)
    assert reader.key_df(keys).tolist() == [2, 2, 4, 0, 1]
    assert reader.stat_df(np.array([3, 2, 5, 99], dtype=np.uint64)).tolist() == [4, 2, 1, 0]
    assert reader.doc_size(np.array([1, 2, 3, 4, 99])).tolist() == [42.0, 172.0, 22.0, 7.0, 1.0]


def test_candidates_rank_the_doc_containing_the_query_first(reader):
    query = np.array([*range(1, 41), 9000], dtype=np.uint64)
    c = reader.candidates(query, common_df=3, max_df=100, limit=10)
    assert c.doc_ids[0] == 1
    assert set(c.doc_ids.tolist()) == {1, 2, 3, 4}
    assert c.hits.dtype == np.float64
    assert c.hits[0] == pytest.approx(40 + 3 / 4)             # 40 rare keys + the banner at 3/4
    assert c.containment[0] == pytest.approx(c.hits[0] / 42)


def test_candidates_of_a_fragment_of_a_long_doc(reader):
    c = reader.candidates(np.arange(100, 180, dtype=np.uint64), common_df=3, max_df=100, limit=10)
    assert c.doc_ids.tolist() == [2]
    assert c.hits.tolist() == [80.0]


def test_max_df_skips_common_keys(reader):
    banner = np.array([9000, 9001], dtype=np.uint64)
    assert reader.candidates(banner, common_df=3, max_df=3, limit=10).doc_ids.shape == (0,)
    c = reader.candidates(banner, common_df=3, max_df=4, limit=10)
    assert sorted(c.doc_ids.tolist()) == [1, 2, 3, 4]
    assert c.hits.tolist() == pytest.approx([2 * 3 / 4] * 4)   # down-weighted: common_df / df
    # Mixed query: the banner is skipped, the rare keys still find doc 3.
    c = reader.candidates(np.array([9000, 9001, 505], dtype=np.uint64), common_df=3, max_df=3, limit=10)
    assert c.doc_ids.tolist() == [3] and c.hits.tolist() == [1.0]


def test_candidates_limit_and_empty_reader(reader):
    c = reader.candidates(np.array([9000], dtype=np.uint64), common_df=3, max_df=10, limit=1)
    assert 1 <= c.doc_ids.shape[0] <= 2                        # best by hits ∪ best by containment
    empty = IndexReader([])
    assert empty.n_docs == 0
    assert empty.key_df(np.array([1], dtype=np.uint64)).tolist() == [0]
    assert empty.candidates(np.array([1], dtype=np.uint64), common_df=3, max_df=10, limit=5).doc_ids.shape == (0,)


# --- fenced lookups ---------------------------------------------------------------------------

@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(0, 60), min_size=1, max_size=400), st.lists(U64 | st.integers(0, 61), max_size=40),
       st.sampled_from([1, 2, 3, 4, 7, 16]))
def test_fenced_ranges_equal_a_plain_binary_search(key_pool, needles, fence):
    """Runs of one key crossing fence boundaries, needles below, between and
    above the keys: the fenced search answers as np.searchsorted does."""
    import copyscope.index.inverted as inv
    docs = [dk(i, {k for k in key_pool[i::5]}) for i in range(5)]
    with tempfile.TemporaryDirectory() as d:
        seg = Segment(Path(d) / write_segment(Path(d), docs))
        saved = inv.FENCE
        inv.FENCE = fence
        try:
            keys = np.array(sorted(set(needles) | {0, 2**64 - 1}), dtype=np.uint64)
            lo, hi = seg.ranges(keys)
            assert lo.tolist() == np.searchsorted(seg.post_keys, keys, "left").tolist()
            assert hi.tolist() == np.searchsorted(seg.post_keys, keys, "right").tolist()
            unsorted = keys[::-1].copy()
            lo, hi = seg.ranges(unsorted)
            assert lo.tolist() == np.searchsorted(seg.post_keys, unsorted, "left").tolist()
            assert hi.tolist() == np.searchsorted(seg.post_keys, unsorted, "right").tolist()
        finally:
            inv.FENCE = saved


def test_doc_size_with_sparse_ids(tmp_path):
    """Ids far apart (no dense table) and ids past the largest are answered too."""
    d = tmp_path / "index"
    reader = IndexReader([Segment(d / write_segment(d, [dk(5, [1, 2]), dk(2**32 - 2, [1, 2, 3])]))])
    assert reader._size_by_id is None
    assert reader.doc_size(np.array([5, 2**32 - 2, 7, 2**32 - 1])).tolist() == [2.0, 3.0, 1.0, 1.0]
    dense = IndexReader([Segment(d / write_segment(d, [dk(3, [1]), dk(9, [1, 2])]))])
    assert dense._size_by_id is not None
    assert dense.doc_size(np.array([3, 9, 4, 10, 10**9])).tolist() == [1.0, 2.0, 1.0, 1.0, 1.0]
