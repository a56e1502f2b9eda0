"""Content-addressed blob store: ``blobs/ab/<sha256>`` (256 fan-out directories).

Blobs are written before the registry transaction that references them and are
immutable afterwards, so a crash can only leave an unreferenced blob (harmless,
removed by ``BlobStore.collect``), never a referenced blob that is missing.
"""
from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

from copyscope.errors import StorageError


def _load_syncfs():  # noqa: ANN202
    """libc's syncfs(2) when available (Linux); None elsewhere (falls back to sync)."""
    try:
        import ctypes  # noqa: PLC0415
        import ctypes.util  # noqa: PLC0415
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.syncfs
    except (OSError, AttributeError):
        return None


_syncfs = _load_syncfs()


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def put(self, sha256: str, data: bytes, *, sync: bool = True) -> None:
        """Write a blob atomically. With ``sync=False`` the caller must call
        :meth:`sync` before committing anything that references it."""
        dest = self.path(sha256)
        if dest.exists():
            return
        self._write(dest, data, sync)

    @staticmethod
    def _write(dest: Path, data: bytes, sync: bool) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        # per process and thread: a server's threads may write the same file at once
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        with open(tmp, "wb") as fh:
            fh.write(data)
            if sync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, dest)

    def sync(self) -> None:
        """Make every blob written so far durable: one ``syncfs`` of the store's
        filesystem instead of an fsync per file (a batch holds hundreds)."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root, os.O_RDONLY)
        try:
            if _syncfs is None or _syncfs(fd) != 0:
                os.sync()
        finally:
            os.close(fd)

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
        for p in sorted(self.root.rglob("*")):
            if p.is_file() and (p.name.endswith(".tmp") or p.name not in referenced):
                p.unlink(missing_ok=True)
                removed += 1
        return removed


class FeatureStore(BlobStore):
    """Derived data per artifact (an image's keypoints and descriptors), so a check
    never re-decodes registered files: ``features/<modality>/ab/<sha256>``.

    Each file starts with the SHA-256 of its payload. A missing or damaged file is
    not an error: the caller re-analyses the registered blob instead."""

    def put(self, sha256: str, data: bytes, *, sync: bool = True) -> None:
        super().put(sha256, _checksummed(data), sync=sync)

    def rewrite(self, sha256: str, data: bytes) -> None:
        """Replace a missing, damaged or outdated file, best effort and unsynced:
        a check heals the store as it reads it, and a lost write only means the
        next check analyses that file again."""
        try:
            self._write(self.path(sha256), _checksummed(data), False)
        except OSError:
            pass

    def get(self, sha256: str) -> bytes:
        try:
            raw = self.path(sha256).read_bytes()
        except OSError:
            raise StorageError(f"features for {sha256[:12]}… are missing") from None
        if len(raw) < 32 or hashlib.sha256(raw[32:]).digest() != raw[:32]:
            raise StorageError(f"features for {sha256[:12]}… are damaged")
        return raw[32:]


def _checksummed(data: bytes) -> bytes:
    """A feature file: the payload's SHA-256, then the payload."""
    return hashlib.sha256(data).digest() + data
