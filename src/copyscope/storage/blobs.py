"""Content-addressed blob store: ``blobs/ab/cd/<sha256>``.

Blobs are written before the registry transaction that references them and are
immutable afterwards, so a crash can only leave an unreferenced blob (harmless,
removed by ``BlobStore.collect``), never a referenced blob that is missing.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from copyscope.errors import StorageError


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put(self, sha256: str, data: bytes) -> None:
        dest = self.path(sha256)
        if dest.exists():
            return
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{sha256}.{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, dest)

    def get(self, sha256: str) -> bytes:
        try:
            data = self.path(sha256).read_bytes()
        except FileNotFoundError:
            raise StorageError(f"blob {sha256[:12]}… is missing from the workspace") from None
        if hashlib.sha256(data).hexdigest() != sha256:
            raise StorageError(f"blob {sha256[:12]}… is corrupt (hash mismatch)")
        return data

    def collect(self, referenced: set[str]) -> int:
        """Delete blobs no artifact references (left by an interrupted register)."""
        removed = 0
        if not self.root.exists():
            return 0
        for p in self.root.glob("*/*/*"):
            if p.name.endswith(".tmp") or p.name not in referenced:
                p.unlink(missing_ok=True)
                removed += 1
        return removed
