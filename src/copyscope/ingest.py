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

from copyscope.errors import InputError, LimitError, NotFoundError
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
    path: Path          # real location
    relative: str       # path relative to the walked root, '/'-separated


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
                count += 1
                if count > settings.max_files:
                    raise LimitError(f"{root}: more than {settings.max_files} files (--max-files)")
                yield FoundFile(Path(entry.path), child_rel)

    yield from visit(root, "", 0)


def expand_paths(paths: list[str | Path], settings: Settings,
                 skipped: list[str] | None = None) -> list[FoundFile]:
    """Command-line paths → files (directories walked), in a stable order."""
    out: list[FoundFile] = []
    for p in paths:
        path = Path(p)
        if not path.exists():
            raise NotFoundError(f"{p}: no such file or directory")
        if path.is_dir():
            out.extend(FoundFile(f.path, str(Path(p) / f.relative)) for f in walk(path, settings, skipped))
        else:
            out.append(FoundFile(path, str(p)))
        if len(out) > settings.max_files:
            raise LimitError(f"more than {settings.max_files} input files (--max-files)")
    return out
