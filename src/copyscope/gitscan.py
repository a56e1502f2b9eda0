"""Check a git repository's *history* against the registry.

Code that was copied in and later deleted is still in the history; a compliance
check must find it and name the commit. :func:`iter_history` yields every
distinct file content (git blob) ever committed in a revision range, attributed
to the first commit that contained it; :func:`check_history` runs each one
through :meth:`Workspace.check_one` and tags the matches with that commit.

How the history is read (a constant number of ``git`` processes, whatever the
number of commits or blobs; every argv is a fixed list, never a shell):

1. ``git rev-parse`` checks the repository, the range (``git rev-list
   --boundary``) is validated and its boundary commits (those it excludes, e.g.
   ``A`` in ``A..B``) listed;
2. each boundary commit's tree (``git ls-tree -r -z``, one process per boundary
   commit; none for a plain ``HEAD`` scan): blobs already there were not
   introduced in the range and are not reported;
3. one ``git log --reverse --topo-order --raw -z --diff-merges=first-parent
   --root`` lists, commit by commit (parents before children), what each commit
   added or changed against its first parent. The first commit in that order
   whose tree holds a blob always shows it in that diff (its first parent either
   comes earlier in the order or is a boundary commit), so the first time a blob
   sha is seen there is the commit that introduced it, exactly as a
   ``git ls-tree`` of every commit would find it, at a fraction of the cost;
4. one ``git cat-file --batch-check`` for the sizes (blobs over the limit are
   never read) and one long-running ``git cat-file --batch`` for the contents.

Needs git >= 2.31 (``--diff-merges``). Only regular files (modes 100644/100755) are read: submodules (gitlinks, mode
160000) and symlinks (120000) are skipped, and a symlink whose target text
happens to equal a file's content does not hide that file (dedup is over
regular-file occurrences only). ``git replace`` refs are ignored
(``--no-replace-objects``): the scan sees the objects actually committed.
"""
from __future__ import annotations

import os
import subprocess
import tempfile
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Callable, Iterator

from copyscope.errors import CopyscopeError, InputError, LimitError
from copyscope.evidence import Result
from copyscope.model import Artifact
from copyscope.plugins import Modality, fingerprint
from copyscope.progress import NullProgress, Progress

if TYPE_CHECKING:
    from copyscope.workspace import Workspace

GIT = "git"                   # the executable (tests point it elsewhere to simulate "git missing")
MAX_BLOBS = 2_000_000
BINARY_SNIFF = 8192           # a NUL in the first 8 KiB means binary (as git itself decides)

_ZERO_SHA = {"0" * 40, "0" * 64}
_S_IFMT, _S_IFREG = 0o170000, 0o100000
# Variables that would point git at another repository, object store, config or
# history than the one we were asked to scan (a caller running inside a git hook
# has several of these set).
_REPO_ENV = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY",
             "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_COMMON_DIR", "GIT_NAMESPACE", "GIT_PREFIX",
             "GIT_CONFIG", "GIT_CONFIG_PARAMETERS", "GIT_CONFIG_COUNT", "GIT_GRAFT_FILE",
             "GIT_REPLACE_REF_BASE", "GIT_SHALLOW_FILE", "GIT_IMPLICIT_WORK_TREE",
             "GIT_INTERNAL_SUPER_PREFIX", "GIT_CEILING_DIRECTORIES", "GIT_PAGER", "GIT_EXTERNAL_DIFF")


@dataclass(frozen=True)
class HistoricalFile:
    """One distinct file content of the history, where it first appeared."""

    commit: str          # full sha of the first commit (rev-list --reverse --topo-order) holding this blob
    path: str            # its path in the repository at that commit ('/'-separated)
    blob: str            # git blob sha
    data: bytes
    commit_time: str     # ISO 8601 committer date (%cI)
    author: str          # "Name <email>"

    @property
    def origin(self) -> str:
        """How results name it: ``<12-hex commit>:<path>``."""
        return f"{self.commit[:12]}:{self.path}"


@dataclass(frozen=True)
class SkippedBlob:
    """A blob :func:`iter_history` did not yield (appended to its ``skipped`` list)."""

    commit: str
    path: str
    blob: str
    size: int
    reason: str          # "too-large" | "binary" | "missing" (object absent, e.g. a partial clone)
    limit: int = 0       # the byte limit, for "too-large"

    @property
    def origin(self) -> str:
        return f"{self.commit[:12]}:{self.path}"

    def message(self) -> str:
        if self.reason == "too-large":
            return (f"{self.origin}: skipped ({self.size} bytes is over the {self.limit}-byte "
                    f"limit (--max-bytes))")
        if self.reason == "binary":
            return f"{self.origin}: skipped (binary, {self.size} bytes)"
        return f"{self.origin}: skipped (blob {self.blob} is missing from the repository)"


def looks_binary(data: bytes) -> bool:
    """git's own test (a NUL in the first 8 KiB), except that UTF-16/UTF-32 text
    with a byte-order mark is text. :func:`check_history` refines this with the
    modalities, so BOM-less UTF-16 that the text modality decodes is still checked."""
    head = data[:BINARY_SNIFF]
    if b"\0" not in head:
        return False
    return not head.startswith((b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff"))


# -- the public iterator ----------------------------------------------------------------
def iter_history(repo: Path, rev_range: str | None = None, *, max_file_bytes: int,
                 max_blobs: int = MAX_BLOBS, include: Callable[[str], bool] | None = None,
                 skipped: list[SkippedBlob] | None = None,
                 is_binary: Callable[[bytes], bool] | None = looks_binary) -> Iterator[HistoricalFile]:
    """Every distinct blob committed in ``rev_range``, oldest commit first.

    ``rev_range`` is one revision argument as ``git rev-list`` takes it:
    ``A..B``, ``A...B``, a branch or commit (all of its history); default
    ``HEAD``. With a range, blobs already present in the excluded (boundary)
    commits' trees (``A``'s tree in ``A..B``) were introduced before the range
    and are not yielded. Each blob is yielded once, for the first commit (in
    ``git rev-list --reverse --topo-order`` order) whose tree holds it at a path
    passing ``include`` (default: every path); a rename or a copy elsewhere is
    the same blob and is not yielded again.

    Blobs not yielded are appended to ``skipped`` (when given) as
    :class:`SkippedBlob`: over ``max_file_bytes`` (``too-large``, never read),
    ``binary`` (``is_binary(data)`` true; pass ``None`` to yield everything),
    ``missing``. Symlinks, submodules and excluded paths are not blobs of
    interest and are not listed.

    Raises :class:`InputError` when called (before anything is yielded) if git is missing,
    ``repo`` is not a repository, it has no commits, or the range is bad;
    :class:`LimitError` when the range holds more than ``max_blobs`` distinct
    blobs. Nothing is run through a shell; the number of ``git`` processes does
    not grow with the number of commits or blobs (one extra per boundary commit).
    """
    plan = _plan(Path(repo), rev_range, include, max_blobs)
    return _read(plan, max_file_bytes, skipped, is_binary)


# -- check ---------------------------------------------------------------------------
def check_history(ws: "Workspace", repo: Path, rev_range: str | None = None,
                  progress: Progress | None = None, *, include: Callable[[str], bool] | None = None,
                  skipped: list[SkippedBlob] | None = None, max_blobs: int = MAX_BLOBS) -> Result:
    """Check every distinct file content of ``repo``'s history (see :func:`iter_history`).

    Returns a ``Result("check", ws.parameters())`` shaped like
    :meth:`Workspace.check`'s: one ``query`` input per checked blob, named
    ``<12-hex commit>:<path>``, a ``registered`` input per matched work, and the
    matches, each with ``extra["commit"]`` (full sha), ``["commit_time"]``,
    ``["author"]``, ``["path"]`` and ``["blob"]``.

    ``result.errors`` gets one line per blob that could not be fingerprinted
    (``CopyscopeError``, e.g. an empty file) and per blob over
    ``ws.settings.max_file_bytes``, as ``check`` reports an over-limit file.
    Binary blobs (a NUL in the first 8 KiB that no modality accepts) are skipped
    silently; every skip, too-large ones included, is also appended to
    ``skipped`` when given. Repository and range problems raise ``InputError``.
    """
    from copyscope.workspace import _input_record  # noqa: PLC0415 - the workspace is imported lazily

    progress = progress or NullProgress()
    plan = _plan(Path(repo), rev_range, include, max_blobs)
    skips: list[SkippedBlob] = []
    readers = {name: ws.reader(name) for name in ws.modalities}
    result = Result("check", ws.parameters())
    progress.start(len(plan.entries), "checking history")
    reported = 0
    try:
        for hf in _read(plan, ws.settings.max_file_bytes, skips, _binary_for(ws.modalities)):
            reported = _note_skips(skips, reported, result, progress)
            progress.advance(1)
            try:
                modality, fp = fingerprint(ws.modalities, Artifact(hf.data, origin=hf.origin))
            except CopyscopeError as exc:
                result.errors.append(exc.message)
                continue
            result.inputs.append(_input_record("query", fp))
            tag = {"commit": hf.commit, "commit_time": hf.commit_time, "author": hf.author,
                   "path": hf.path, "blob": hf.blob}
            for match, ref in ws.check_one(modality, fp, readers[modality.name]):
                result.matches.append(replace(match, extra={**match.extra, **tag}))
                result.inputs.append(_input_record("registered", ref, match.work.work_id if match.work else None,
                                                   path=match.registered_path))
        _note_skips(skips, reported, result, progress)
    finally:
        progress.stop()
        if skipped is not None:
            skipped.extend(skips)
    return result


def _note_skips(skips: list[SkippedBlob], reported: int, result: Result, progress: Progress) -> int:
    for s in skips[reported:]:
        progress.advance(1)
        if s.reason != "binary":
            result.errors.append(s.message())
    return len(skips)


def _binary_for(modalities: dict[str, Modality]) -> Callable[[bytes], bool]:
    def is_binary(data: bytes) -> bool:
        if b"\0" not in data[:BINARY_SNIFF]:
            return False
        probe = Artifact(data, origin="blob", sha256="-")       # origin/sha unused by accepts()
        return not any(m.accepts(probe) for m in modalities.values())
    return is_binary


# -- step 1-3: which blobs, first seen where --------------------------------------------
@dataclass(frozen=True)
class _Commit:
    sha: str
    time: str
    author: str


@dataclass(frozen=True)
class _Entry:
    blob: str
    path: str
    commit: _Commit


@dataclass
class _Plan:
    git: "_Git"
    entries: list[_Entry]


def _plan(repo: Path, rev_range: str | None, include: Callable[[str], bool] | None,
          max_blobs: int) -> _Plan:
    git = _Git(repo)
    git.check_repository()
    revision = git.resolve_range(rev_range)
    seen: set[str] = set()
    for commit in git.boundary(revision):
        seen.update(git.tree_blobs(commit, include))
    entries: list[_Entry] = []
    for commit, mode, blob, path in git.log_changes(revision):
        if blob in seen or not _is_regular(mode) or blob in _ZERO_SHA:
            continue
        if include is not None and not include(path):
            continue
        seen.add(blob)
        entries.append(_Entry(blob, path, commit))
        if len(entries) > max_blobs:
            git.stop()
            raise LimitError(f"{repo}: history holds more than {max_blobs} distinct files "
                             f"(blobs); narrow it with a revision range")
    return _Plan(git, entries)


def _is_regular(mode: int) -> bool:
    return mode & _S_IFMT == _S_IFREG


# -- step 4: sizes, then contents ----------------------------------------------------------
def _read(plan: _Plan, max_file_bytes: int, skipped: list[SkippedBlob] | None,
          is_binary: Callable[[bytes], bool] | None) -> Iterator[HistoricalFile]:
    skipped = skipped if skipped is not None else []
    git = plan.git
    sizes = git.sizes([e.blob for e in plan.entries])
    wanted: list[_Entry] = []
    for e in plan.entries:
        size = sizes.get(e.blob)
        if size is None:
            skipped.append(SkippedBlob(e.commit.sha, e.path, e.blob, 0, "missing"))
        elif size > max_file_bytes:
            skipped.append(SkippedBlob(e.commit.sha, e.path, e.blob, size, "too-large", max_file_bytes))
        else:
            wanted.append(e)
    return _contents(git, wanted, skipped, is_binary)


def _contents(git: "_Git", wanted: list[_Entry], skipped: list[SkippedBlob],
              is_binary: Callable[[bytes], bool] | None) -> Iterator[HistoricalFile]:
    if not wanted:
        return
    for e, data in git.cat_blobs(wanted):
        if data is None:
            skipped.append(SkippedBlob(e.commit.sha, e.path, e.blob, 0, "missing"))
        elif is_binary is not None and is_binary(data):
            skipped.append(SkippedBlob(e.commit.sha, e.path, e.blob, len(data), "binary"))
        else:
            yield HistoricalFile(e.commit.sha, e.path, e.blob, data, e.commit.time, e.commit.author)


# -- the git processes ----------------------------------------------------------------------
def _decode_path(raw: bytes) -> str:
    return raw.decode("utf-8", errors="backslashreplace")


def _first_line(text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return "no message from git"


class _Git:
    """``git --no-replace-objects -C <repo> ...`` with a scrubbed environment."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self.env = {k: v for k, v in os.environ.items() if k not in _REPO_ENV}
        self.env.update(LC_ALL="C", LANGUAGE="C", GIT_TERMINAL_PROMPT="0", GIT_OPTIONAL_LOCKS="0")
        try:
            parent = repo.resolve().parent
        except OSError:
            parent = None
        if parent is not None and parent != repo.resolve():
            # `repo` itself must be the repository: never scan an enclosing one.
            self.env["GIT_CEILING_DIRECTORIES"] = str(parent)
        self._proc: subprocess.Popen | None = None

    def argv(self, *args: str) -> list[str]:
        return [GIT, "--no-replace-objects", "-C", str(self.repo), *args]

    def popen(self, *args: str, stdin: int | None = subprocess.DEVNULL,
              stderr: IO[bytes] | int = subprocess.PIPE) -> subprocess.Popen:
        try:
            return subprocess.Popen(self.argv(*args), stdin=stdin, stdout=subprocess.PIPE,
                                    stderr=stderr, env=self.env)
        except FileNotFoundError:
            raise InputError(f"git is not installed (no {GIT!r} on PATH); it is needed to scan "
                             f"{self.repo}") from None
        except OSError as exc:
            raise InputError(f"cannot run git: {exc.strerror}") from None

    def run(self, *args: str, input: bytes | None = None) -> tuple[int, bytes, bytes]:
        proc = self.popen(*args, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL)
        out, err = proc.communicate(input)
        return proc.returncode, out, err

    # -- checks ---------------------------------------------------------------------------
    def check_repository(self) -> None:
        if not self.repo.is_dir():
            what = "no such directory" if not self.repo.exists() else "not a directory"
            raise InputError(f"{self.repo}: {what}; expected a git repository")
        rc, _, err = self.run("rev-parse", "--git-dir")
        if rc != 0:
            raise InputError(f"{self.repo}: not a git repository ({_first_line(err)})")

    def resolve_range(self, rev_range: str | None) -> str:
        if rev_range is None:
            rc, _, _ = self.run("rev-parse", "--verify", "--quiet", "HEAD^{commit}")
            if rc != 0:
                rc_any, out, _ = self.run("rev-list", "-n", "1", "--all")
                if rc_any != 0 or not out.strip():
                    raise InputError(f"{self.repo}: git repository has no commits")
                raise InputError(f"{self.repo}: HEAD has no commits (unborn branch); "
                                 f"pass a revision range")
            return "HEAD"
        rev = rev_range.strip()
        if not rev or rev.startswith("-") or any(c in rev for c in "\0\n"):
            raise InputError(f"{self.repo}: bad revision range {rev_range!r} "
                             f"(expected e.g. A..B, A...B or a branch)")
        return rev

    def boundary(self, revision: str) -> list[str]:
        """Validates ``revision``; returns the commits it excludes (``A`` in ``A..B``)."""
        with tempfile.TemporaryFile() as err:
            proc = self.popen("rev-list", "--boundary", "--end-of-options", revision, "--", stderr=err)
            out = proc.stdout.read()
            proc.stdout.close()
            rc = proc.wait()
            if rc != 0:
                err.seek(0)
                raise InputError(f"{self.repo}: bad revision range {revision!r} "
                                 f"({_first_line(err.read())})")
        return [line[1:].decode() for line in out.splitlines() if line.startswith(b"-")]

    # -- trees and history ----------------------------------------------------------------
    def tree_blobs(self, commit: str, include: Callable[[str], bool] | None) -> set[str]:
        rc, out, err = self.run("ls-tree", "-r", "-z", "--full-tree", commit)
        if rc != 0:
            raise InputError(f"{self.repo}: cannot list the tree of {commit} ({_first_line(err)})")
        blobs: set[str] = set()
        for rec in out.split(b"\0"):
            if not rec:
                continue
            meta, _, raw_path = rec.partition(b"\t")
            mode, kind, sha = meta.split(b" ")
            if kind != b"blob" or not _is_regular(int(mode, 8)):
                continue
            if include is None or include(_decode_path(raw_path)):
                blobs.add(sha.decode())
        return blobs

    def log_changes(self, revision: str) -> Iterator[tuple[_Commit, int, str, str]]:
        """(commit, new mode, new blob, path) for every file each commit added or
        changed against its first parent (roots: their whole tree), commits in
        ``rev-list --reverse --topo-order`` order, paths in git's order."""
        with tempfile.TemporaryFile() as err:
            proc = self.popen(
                "log", "--reverse", "--topo-order", "--no-color", "--no-show-signature",
                "--encoding=UTF-8", "--no-ext-diff", "--no-textconv", "--no-renames",
                "--diff-merges=first-parent", "--root", "--raw", "-z", "--no-abbrev",
                "--format=%x01%H %cI %an <%ae>", "--end-of-options", revision, "--", stderr=err)
            self._proc = proc
            try:
                yield from self._parse_log(_tokens(proc.stdout))
                rc = proc.wait()
            finally:
                self.stop()
            if rc != 0:
                err.seek(0)
                raise InputError(f"{self.repo}: git log failed ({_first_line(err.read())})")

    def _parse_log(self, tokens: Iterator[bytes]) -> Iterator[tuple[_Commit, int, str, str]]:
        commit: _Commit | None = None
        for tok in tokens:
            tok = tok.lstrip(b"\n")
            if not tok:
                continue
            if tok.startswith(b"\x01"):
                sha, when, author = tok[1:].decode("utf-8", errors="replace").split(" ", 2)
                commit = _Commit(sha, when, author.rstrip("\n"))
            elif tok.startswith(b":") and commit is not None:
                # ":<old mode> <new mode> <old sha> <new sha> <status>" then 1 path (2 for R/C)
                fields = tok[1:].split(b" ")
                if len(fields) != 5:
                    raise InputError(f"{self.repo}: unexpected `git log --raw` output: {tok[:80]!r}")
                new_mode, new_sha, status = fields[1], fields[3], fields[4]
                path = next(tokens, None)
                if status[:1] in (b"R", b"C"):
                    path = next(tokens, None)
                if path is None:
                    raise InputError(f"{self.repo}: truncated `git log --raw` output")
                yield commit, int(new_mode, 8), new_sha.decode(), _decode_path(path)
            else:
                raise InputError(f"{self.repo}: unexpected `git log --raw` output: {tok[:80]!r}")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            _reap(proc)

    # -- objects ------------------------------------------------------------------------
    def sizes(self, blobs: list[str]) -> dict[str, int]:
        """Blob sizes from one ``git cat-file --batch-check``; missing ones absent."""
        if not blobs:
            return {}
        rc, out, err = self.run("cat-file", "--batch-check", "--buffer",
                                input="".join(f"{b}\n" for b in blobs).encode())
        if rc != 0:
            raise InputError(f"{self.repo}: git cat-file failed ({_first_line(err)})")
        sizes: dict[str, int] = {}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1] == b"blob":
                sizes[parts[0].decode()] = int(parts[2])
        return sizes

    def cat_blobs(self, entries: list[_Entry]) -> Iterator[tuple[_Entry, bytes | None]]:
        """Contents in order from ONE ``git cat-file --batch``: a thread feeds the
        shas while this generator reads the answers, so neither side can block
        the other whatever the pipe sizes; closing the generator early ends git."""
        with tempfile.TemporaryFile() as err:
            proc = self.popen("cat-file", "--batch", "--buffer", stdin=subprocess.PIPE, stderr=err)
            feeder = threading.Thread(target=_feed, args=(proc.stdin, [e.blob for e in entries]),
                                      daemon=True)
            feeder.start()
            try:
                out = proc.stdout
                for e in entries:
                    header = out.readline()
                    parts = header.split()
                    if len(parts) == 2 and parts[1] == b"missing":
                        yield e, None
                        continue
                    if len(parts) != 3 or parts[0].decode() != e.blob:
                        err.seek(0)
                        raise InputError(f"{self.repo}: git cat-file stopped at blob {e.blob} "
                                         f"({_first_line(err.read()) if header == b'' else repr(header[:80])})")
                    size = int(parts[2])
                    data = out.read(size)
                    if len(data) != size or out.read(1) != b"\n":
                        raise InputError(f"{self.repo}: git cat-file returned a truncated blob {e.blob}")
                    if parts[1] != b"blob":
                        yield e, None
                        continue
                    yield e, data
            finally:
                _reap(proc)
                feeder.join(timeout=5)


def _feed(stdin: IO[bytes], shas: list[str]) -> None:
    try:
        for i in range(0, len(shas), 1024):
            stdin.write("".join(f"{s}\n" for s in shas[i:i + 1024]).encode())
        stdin.close()
    except (BrokenPipeError, OSError, ValueError):
        pass                    # git ended (killed by an early close): nothing left to feed


def _reap(proc: subprocess.Popen) -> None:
    """End a git child we started: done already, or killed (an abandoned iterator)."""
    if proc.poll() is None:
        proc.kill()
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            try:
                stream.close()
            except OSError:
                pass
    proc.wait()


def _tokens(stream: IO[bytes], chunk: int = 1 << 20) -> Iterator[bytes]:
    """NUL-separated tokens of a stream, read in chunks (never the whole output at once)."""
    rest = b""
    while True:
        block = stream.read(chunk)
        if not block:
            break
        parts = (rest + block).split(b"\0")
        rest = parts.pop()
        yield from parts
    if rest:
        yield rest
