"""Archives as directories: zip/jar/war/aar/whl and tar (plain, gz, bz2, xz).

Members are read in memory and never extracted, so a hostile name cannot write
anywhere; such names are still refused and reported, because a member called
``../../etc/passwd`` is not part of the work. Every read is capped three ways —
members per archive, bytes per member (``max_file_bytes``) and bytes per archive
(``max_archive_bytes``) — and a zip member compressed more than ``MAX_RATIO``:1
is refused before it is inflated, so a zip bomb costs nothing. Sizes declared in
headers are not trusted: reads stop at the cap whatever the header says.

A member is named ``archive.zip!/path/in/archive`` (the ``jar:`` URL convention).
"""
from __future__ import annotations

import bz2
import gzip
import lzma
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import IO, Iterator

from copyscope.errors import InputError, LimitError
from copyscope.settings import Settings

SEP = "!/"
ZIP_SUFFIXES = (".zip", ".jar", ".war", ".ear", ".aar", ".whl")
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
MAX_RATIO = 200          # deflate reaches ~1000:1 only on degenerate data such as zeros
_CHUNK = 1 << 20


def is_archive(path: Path | str) -> bool:
    name = str(path).lower()
    return name.endswith(ZIP_SUFFIXES + TAR_SUFFIXES)


def split_member(path: str) -> tuple[str, str] | None:
    """``'a.zip!/x/y.c'`` → ``('a.zip', 'x/y.c')`` when the outer part is an archive."""
    if SEP not in path:
        return None
    outer, member = path.split(SEP, 1)
    return (outer, member) if is_archive(outer) and member else None


def unsafe_name(name: str) -> str | None:
    """Why a member name may not be used, or None. Backslashes count as separators
    (zips made on Windows), so ``..\\x`` is traversal too."""
    norm = name.replace("\\", "/")
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":"):
        return "absolute path"
    if ".." in PurePosixPath(norm).parts:
        return "path traversal"
    if "\0" in norm or any(ord(c) < 32 for c in norm):
        return "control characters in name"
    return None


class _Capped:
    """A read-only stream that fails once more than ``limit`` bytes came out of it:
    a compressed tar cannot be walked past the archive budget."""

    def __init__(self, raw: IO[bytes], limit: int, name: str) -> None:
        self.raw, self.limit, self.name, self.seen = raw, limit, name, 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n if n is not None and n >= 0 else self.limit + 1 - self.seen)
        self.seen += len(data)
        if self.seen > self.limit:
            raise LimitError(f"{self.name}: expands to more than {self.limit} bytes "
                             "(--max-archive-bytes; a compression bomb?)")
        return data

    def close(self) -> None:
        self.raw.close()


def _open_tar_stream(path: Path, settings: Settings) -> tarfile.TarFile:
    name = str(path).lower()
    raw: IO[bytes]
    if name.endswith((".gz", ".tgz")):
        raw = gzip.open(path, "rb")
    elif name.endswith((".bz2", ".tbz2")):
        raw = bz2.open(path, "rb")
    elif name.endswith((".xz", ".txz")):
        raw = lzma.open(path, "rb")
    else:
        raw = open(path, "rb")  # noqa: SIM115 - closed with the tar stream
    capped = _Capped(raw, settings.max_archive_bytes, str(path))
    # Stream mode ("r|"): members in order, no seeking back through a compressed stream.
    return tarfile.open(fileobj=capped, mode="r|")  # type: ignore[arg-type]


class ArchiveReader:
    """Lists and reads the members of one archive within the limits.

    ``members`` holds the usable member names; everything refused is described,
    one line each, in ``skipped``. Tar members are read during the single pass
    that lists them (a compressed tar cannot be seeked cheaply), and kept only
    for the archive being read."""

    def __init__(self, path: Path, settings: Settings) -> None:
        self.path, self.settings = path, settings
        self.members: list[str] = []
        self.skipped: list[str] = []
        self._zip: zipfile.ZipFile | None = None
        self._tar_data: dict[str, bytes] = {}
        try:
            if str(path).lower().endswith(ZIP_SUFFIXES):
                self._list_zip()
            else:
                self._list_tar()
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, lzma.LZMAError,
                gzip.BadGzipFile, ValueError, NotImplementedError) as exc:
            self.close()
            raise InputError(f"{path}: not a readable archive ({_why(exc)})") from None
        except LimitError:
            self.close()
            raise

    def _refused(self, name: str, why: str | None, size: int) -> bool:
        """Record why a member is skipped (unsafe, or over ``--max-bytes``)."""
        if not why and size > self.settings.max_file_bytes:
            why = f"{size} bytes is over the {self.settings.max_file_bytes}-byte limit, --max-bytes"
        if why:
            self.skipped.append(f"{self.path}{SEP}{name}: skipped ({why})")
        return why is not None

    # -- zip -------------------------------------------------------------------
    def _list_zip(self) -> None:
        zf = self._zip = zipfile.ZipFile(self.path)
        infos = zf.infolist()
        limit = self.settings
        if len(infos) > limit.max_files:
            raise LimitError(f"{self.path}: {len(infos)} members, over the {limit.max_files} limit")
        declared = 0
        for info in infos:
            if info.is_dir():
                continue
            why = unsafe_name(info.filename) or _odd_zip_entry(info)
            if self._refused(info.filename, why, info.file_size):
                continue
            where = f"{self.path}{SEP}{info.filename}"
            if info.file_size > _CHUNK and info.file_size > MAX_RATIO * max(1, info.compress_size):
                self.skipped.append(f"{where}: skipped (compression ratio "
                                    f"{info.file_size // max(1, info.compress_size)}:1, a zip bomb?)")
                continue
            declared += info.file_size
            if declared > limit.max_archive_bytes:
                raise LimitError(f"{self.path}: expands to more than {limit.max_archive_bytes} bytes "
                                 "(--max-archive-bytes; a zip bomb?)")
            self.members.append(info.filename)

    # -- tar -------------------------------------------------------------------
    def _list_tar(self) -> None:
        limit = self.settings
        with _open_tar_stream(self.path, limit) as tf:
            for info in tf:
                if info.isdir():
                    continue
                why = unsafe_name(info.name)
                if not why and not info.isreg():
                    why = "link or special file" if (info.issym() or info.islnk()) else "not a regular file"
                if self._refused(info.name, why, info.size):
                    continue
                where = f"{self.path}{SEP}{info.name}"
                if len(self.members) >= limit.max_files:
                    raise LimitError(f"{self.path}: more than {limit.max_files} members")
                fh = tf.extractfile(info)
                data = fh.read(limit.max_file_bytes + 1) if fh else b""
                if info.name in self._tar_data:
                    self.skipped.append(f"{where}: skipped (duplicate member name; the first one is used)")
                    continue
                self._tar_data[info.name] = data
                self.members.append(info.name)

    # -- reading ---------------------------------------------------------------
    def read(self, member: str) -> bytes:
        where = f"{self.path}{SEP}{member}"
        if member not in self.members:
            raise InputError(f"{where}: no such member")
        if self._zip is None:
            return self._tar_data[member]
        cap = self.settings.max_file_bytes
        try:
            with self._zip.open(member) as fh:
                data = fh.read(cap + 1)           # the header's size is not trusted
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError,
                zipfile.LargeZipFile, ValueError) as exc:
            raise InputError(f"{where}: cannot read member ({_why(exc)})") from None
        if len(data) > cap:
            raise LimitError(f"{where}: over the {cap}-byte limit (--max-bytes)")
        return data

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
            self._zip = None
        self._tar_data = {}


def _odd_zip_entry(info: zipfile.ZipInfo) -> str | None:
    mode = info.external_attr >> 16
    if mode and stat.S_ISLNK(mode):
        return "symbolic link"
    if info.flag_bits & 0x1:
        return "encrypted"
    return None


def _why(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


class ArchiveCache:
    """Keeps the last archive open: files are read in order, so the members of one
    archive are read one after another and each archive is opened once."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._path: str | None = None
        self._reader: ArchiveReader | None = None

    def get(self, path: Path) -> ArchiveReader:
        if self._path != str(path) or self._reader is None:
            self.close()
            self._reader = ArchiveReader(path, self.settings)
            self._path = str(path)
        return self._reader

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
        self._path, self._reader = None, None


def iter_members(path: Path, settings: Settings, skipped: list[str]) -> Iterator[str]:
    reader = ArchiveReader(path, settings)
    try:
        skipped.extend(reader.skipped)
        yield from reader.members
    finally:
        reader.close()
