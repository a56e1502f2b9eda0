"""Small fixed-width summaries of registered artifacts, one row per artifact id,
read by ``pread`` in one pass over a query's candidates.

An image check re-ranks dozens of index candidates by their strongest
descriptors before it verifies a few. Reading those from the per-artifact
feature files costs a file open, a checksum and a parse each (~0.15 ms); a row
here costs a few microseconds. A row is only a ranking hint, never evidence:
verification always works from the checksummed feature file. So a row that is
missing, torn by a crash, or stale (its id reused after an aborted
registration) is detected by its tag (the artifact's SHA-256 prefix) and the
caller falls back to the feature file.
"""
from __future__ import annotations

import os
from pathlib import Path

TAG = 8             # bytes of the artifact's SHA-256 that open each row


class SketchStore:
    def __init__(self, path: Path, width: int) -> None:
        self.path = path
        self.width = width
        self.row = TAG + width

    def put_many(self, rows: list[tuple[int, str, bytes]], *, sync: bool = True, best_effort: bool = False) -> None:
        """Write ``(artifact id, sha256, payload)`` rows in place. The file is
        sparse: ids never written read back as zeros, which no tag matches.
        ``best_effort``: a row written back by a reader (a read-only workspace,
        a full disk) may fail silently; the reader falls back again next time."""
        if not rows:
            return
        try:
            self._write(rows, sync)
        except OSError:
            if not best_effort:
                raise

    def _write(self, rows: list[tuple[int, str, bytes]], sync: bool) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            for art_id, sha256, payload in rows:
                body = payload[:self.width].ljust(self.width, b"\0")
                os.pwrite(fd, bytes.fromhex(sha256[:2 * TAG]) + body, art_id * self.row)
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)

    def get_many(self, shas: dict[int, str]) -> dict[int, bytes]:
        """The rows whose tag matches the given artifacts; the rest are absent."""
        if not shas:
            return {}
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return {}
        out = {}
        try:
            for art_id, sha256 in shas.items():
                raw = os.pread(fd, self.row, art_id * self.row)
                if len(raw) == self.row and raw[:TAG] == bytes.fromhex(sha256[:2 * TAG]):
                    out[art_id] = raw[TAG:]
        except OSError:
            return out
        finally:
            os.close(fd)
        return out
