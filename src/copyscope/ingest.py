"""Bytes in: read files within limits, walk directories safely, hash everything.

Hostile input is normal here: 2 GB files, FIFOs, /dev/zero, symlink loops and
unreadable files all end in a one-line ``InputError``/``LimitError``; nothing
is read half-way into the registry.
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from copyscope.archives import SEP, ArchiveCache, is_archive, iter_members, split_member
from copyscope.errors import CopyscopeError, InputError, LimitError, NotFoundError
from copyscope.model import Artifact
from copyscope.settings import Settings

SKIP_DIRS = {".git", ".hg", ".svn", "__pycache__", ".copyscope"}


def read_artifact(path: Path, settings: Settings, *, origin: str | None = None) -> Artifact:
    """Read one regular file, refusing anything over ``settings.max_file_bytes``."""
    name = origin or str(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise NotFoundError(f"{name}: no such file") from None
    except OSError as exc:
        raise InputError(f"{name}: cannot read ({exc.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"{name}: is a directory")
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{name}: not a regular file")
    limit = settings.max_file_bytes
    if st.st_size > limit:
        raise LimitError(f"{name}: {st.st_size} bytes is over the {limit}-byte limit (--max-bytes)")
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)          # a file growing while we read is still capped
    except OSError as exc:
        raise InputError(f"{name}: cannot read ({exc.strerror})") from None
    if len(data) > limit:
        raise LimitError(f"{name}: over the {limit}-byte limit (--max-bytes)")
    return Artifact(data=data, origin=name)


@dataclass(frozen=True)
class FoundFile:
    path: Path          # real location (the archive, for an archive member)
    relative: str       # path relative to the walked root, '/'-separated
    member: str | None = None   # name inside the archive at ``path``

    @property
    def source(self) -> str:
        """A string that :func:`read_path` reads back (``a.zip!/m`` for a member)."""
        return f"{self.path}{SEP}{self.member}" if self.member else str(self.path)


def read_found(f: FoundFile, settings: Settings, archives: ArchiveCache | None = None) -> Artifact:
    """Read a walked file or archive member within the limits."""
    if f.member is None:
        return read_artifact(f.path, settings, origin=f.relative)
    cache = archives or ArchiveCache(settings)
    try:
        return Artifact(data=cache.get(f.path).read(f.member), origin=f.relative)
    finally:
        if archives is None:
            cache.close()


def read_path(path: str, settings: Settings, archives: ArchiveCache | None = None) -> Artifact:
    """Like :func:`read_artifact` for a path string that may name an archive member."""
    parts = split_member(path) if not Path(path).exists() else None
    if parts is None:
        return read_artifact(Path(path), settings, origin=path)
    return read_found(FoundFile(Path(parts[0]), path, parts[1]), settings, archives)


def archive_members(path: Path, rel: str, settings: Settings, skipped: list[str]) -> list[FoundFile]:
    """An archive's usable members; an archive that cannot be used at all, and every
    refused member, is one line in ``skipped`` and the scan goes on."""
    try:
        return [FoundFile(path, f"{rel}{SEP}{m}", m) for m in iter_members(path, settings, skipped)]
    except CopyscopeError as exc:
        skipped.append(f"skipped {exc.message}")
        return []


def walk(root: Path, settings: Settings, skipped: list[str] | None = None) -> Iterator[FoundFile]:
    """Regular files under ``root`` in sorted order; symlinked directories are
    followed once (a loop is detected by device/inode and skipped). FIFOs,
    sockets, devices and dangling links are never opened: they are named in
    ``skipped`` (one line each) so the caller can warn."""
    skipped = skipped if skipped is not None else []
    seen: set[tuple[int, int]] = set()
    count = 0

    def visit(directory: Path, rel: str, depth: int) -> Iterator[FoundFile]:
        nonlocal count
        if depth > settings.max_depth:
            raise LimitError(f"{directory}: nested deeper than {settings.max_depth} directories")
        try:
            st = directory.stat()
        except OSError as exc:
            raise InputError(f"{directory}: cannot read ({exc.strerror})") from None
        key = (st.st_dev, st.st_ino)
        if key in seen:
            return                                  # symlink loop or second link: skip
        seen.add(key)
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            raise InputError(f"{directory}: cannot list ({exc.strerror})") from None
        for entry in entries:
            child_rel = f"{rel}/{entry.name}" if rel else entry.name
            try:
                is_dir = entry.is_dir(follow_symlinks=True)
                is_file = entry.is_file(follow_symlinks=True)
            except OSError:
                is_dir = is_file = False
            if not (is_dir or is_file):
                what = "dangling or looping link" if entry.is_symlink() else "not a regular file"
                skipped.append(f"{Path(directory) / entry.name}: skipped ({what})")
                continue
            if is_dir:
                if entry.name not in SKIP_DIRS:
                    yield from visit(Path(entry.path), child_rel, depth + 1)
            elif is_file:
                found = (archive_members(Path(entry.path), child_rel, settings, skipped)
                         if is_archive(entry.name) else [FoundFile(Path(entry.path), child_rel)])
                count += len(found)
                if count > settings.max_files:
                    raise LimitError(f"{root}: more than {settings.max_files} files (the limit)")
                yield from found

    yield from visit(root, "", 0)


def expand_paths(paths: list[str | Path], settings: Settings,
                 skipped: list[str] | None = None) -> list[FoundFile]:
    """Command-line paths → files (directories walked, archives listed), in a stable order."""
    skipped = skipped if skipped is not None else []
    out: list[FoundFile] = []
    for p in paths:
        path = Path(p)
        if not path.exists():
            raise NotFoundError(f"{p}: no such file or directory")
        if path.is_dir():
            out.extend(FoundFile(f.path, str(Path(p) / f.relative), f.member) for f in walk(path, settings, skipped))
        elif is_archive(path) and path.is_file():
            out.extend(archive_members(path, str(p), settings, skipped))
        else:
            out.append(FoundFile(path, str(p)))
        if len(out) > settings.max_files:
            raise LimitError(f"more than {settings.max_files} input files (the limit)")
    return out
