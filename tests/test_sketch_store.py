"""The sketch store: fixed-width ranking hints per artifact id, never trusted blindly."""
from __future__ import annotations

import hashlib
import os

import pytest

from copyscope.storage.sketches import SketchStore


def sha(i: int) -> str:
    return hashlib.sha256(str(i).encode()).hexdigest()


def test_rows_round_trip_and_are_padded(tmp_path):
    store = SketchStore(tmp_path / "s" / "image-w16.bin", 16)
    store.put_many([(3, sha(3), b"abc"), (1, sha(1), b"x" * 40)])
    got = store.get_many({1: sha(1), 3: sha(3), 2: sha(2)})
    assert got == {1: b"x" * 16, 3: b"abc".ljust(16, b"\0")}      # id 2 was never written: absent


def test_a_stale_or_torn_row_is_not_returned(tmp_path):
    path = tmp_path / "image-w16.bin"
    store = SketchStore(path, 16)
    store.put_many([(0, sha(0), b"a" * 16), (1, sha(1), b"b" * 16)])
    # Id 1 reused by another artifact (an aborted registration): the tag says so.
    assert store.get_many({1: sha(99)}) == {}
    # A crash tore the last row: it is short, so it is not returned.
    os.truncate(path, store.row + 10)
    assert store.get_many({0: sha(0), 1: sha(1)}) == {0: b"a" * 16}


def test_a_missing_file_reads_as_no_rows(tmp_path):
    assert SketchStore(tmp_path / "none.bin", 8).get_many({0: sha(0)}) == {}


def test_a_write_back_that_cannot_be_written_is_skipped(tmp_path):
    path = tmp_path / "image-w8.bin"
    path.mkdir()                        # unwritable as a file, even for root
    store = SketchStore(path, 8)
    store.put_many([(0, sha(0), b"z")], best_effort=True)     # a reader's write-back: no error
    with pytest.raises(OSError):
        store.put_many([(0, sha(0), b"z")])                   # a registration's write: an error
    assert store.get_many({0: sha(0)}) == {}
