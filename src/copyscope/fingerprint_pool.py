"""Fingerprint a direct comparison's files on several cores (``compare --all-pairs``, ``--pairs``).

A direct comparison has no workspace for a spawned worker to reopen, and a
spawned worker costs an interpreter and its imports (about 0.3 s) before its
first file: more than fingerprinting all of IR-Plag's 467 files takes. So the
workers are forked from the parent, which has its modalities loaded already.

Forking a process that may run a progress thread is safe only if the child
touches nothing that thread may hold: the child reads files, fingerprints them
and returns the fingerprints (pickled) and one-line errors; its standard
streams are swapped for /dev/null, and it leaves with ``os._exit``, so it never
flushes or runs what the parent registered. A plain ``os.fork`` and a pipe, not
a process pool: a pool's threads, queues and task pickling cost more than the
half of IR-Plag a child fingerprints (about 0.09 s). Work a child cannot
finish (it dies, a fingerprint does not pickle) is done by the parent
afterwards, so the result is always that of a single-process run.
"""
from __future__ import annotations

import gc
import os
import pickle
import signal
import sys
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, BinaryIO

from copyscope.processes import become_worker
from copyscope.progress import Progress

if TYPE_CHECKING:
    from copyscope.comparing import _Docs

MIN_FILES = 128         # below this, forking and pickling cost more than they save


def can_fork() -> bool:
    return sys.platform.startswith("linux") and hasattr(os, "fork")


def _fingerprint_stripe(docs: _Docs, paths: Sequence[str]) -> bytes:
    """In a forked child: the stripe's fingerprints and errors, pickled.
    Modalities stay in the parent: a fingerprint travels with its modality's name."""
    from copyscope.comparing import _Docs as Docs  # noqa: PLC0415 - imported by the parent already
    mine = Docs(docs.settings, docs.modalities)
    for p in paths:
        mine.get(p)
    found = {p: (m.name, fp) for p, (m, fp) in mine.docs.items()}
    return pickle.dumps((found, mine.errors), protocol=pickle.HIGHEST_PROTOCOL)


def _fork_stripe(docs: _Docs, paths: Sequence[str]) -> tuple[int, BinaryIO]:
    """Start a child on ``paths``; returns (pid, read end of its pipe)."""
    parent = os.getpid()
    read, write = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns about fork in a threaded process; see the module docstring.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid:
        os.close(write)
        return pid, os.fdopen(read, "rb")
    status = 1
    try:
        os.close(read)
        become_worker(parent)
        sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - the child ends with os._exit
        with os.fdopen(write, "wb") as out:
            out.write(_fingerprint_stripe(docs, paths))
        status = 0
    finally:
        os._exit(status)     # no atexit handlers, no flushing of the parent's buffers


def _collect(pid: int, pipe: BinaryIO) -> tuple[dict[str, tuple[str, Any]], dict[str, str]] | None:
    """The child's results, or None when it died or sent something unreadable."""
    with pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    if status != 0:
        return None
    try:
        return pickle.loads(data)
    except Exception:  # noqa: BLE001 - truncated or foreign data: the parent redoes the stripe
        return None


def fingerprint_all(docs: _Docs, paths: Sequence[str], jobs: int, progress: Progress) -> None:
    """Fill ``docs`` with the fingerprint (or error) of every path, in ``jobs``
    processes when there are enough paths to be worth it. The parent takes the
    first contiguous stripe, each forked child one of the others (an archive's
    members are neighbours in sorted order, so mostly one process opens it)."""
    jobs = min(jobs, len(paths) // (MIN_FILES // 2))      # at least 64 files a process
    if jobs < 2 or len(paths) < MIN_FILES or not can_fork():
        _fingerprint_here(docs, paths, progress)
        return
    size = -(-len(paths) // jobs)
    stripes = [paths[i:i + size] for i in range(0, len(paths), size)]
    children: list[tuple[Sequence[str], int, BinaryIO]] = []
    try:
        # A child's garbage collector must not write to every inherited object
        # (each write copies a shared page): it sees them as permanent.
        gc.freeze()
        try:
            for stripe in stripes[1:]:
                children.append((stripe, *_fork_stripe(docs, stripe)))
        finally:
            gc.unfreeze()
        _fingerprint_here(docs, stripes[0], progress)
        while children:
            stripe, pid, pipe = children[0]
            got = _collect(pid, pipe)
            children.pop(0)                  # reaped: nothing left to clean up for it
            if got is None:                  # killed, out of memory, an unpicklable fingerprint
                _fingerprint_here(docs, stripe, progress)
                continue
            found, errors = got
            docs.docs.update({p: (docs.modalities[name], fp) for p, (name, fp) in found.items()})
            docs.errors.update(errors)
            progress.advance(len(stripe))
    finally:
        for _, pid, pipe in children:        # interrupted: end and reap the children left
            pipe.close()                     # a no-op if _collect closed it
            try:
                os.kill(pid, signal.SIGTERM)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass


def _fingerprint_here(docs: _Docs, paths: Sequence[str], progress: Progress) -> None:
    for p in paths:
        docs.get(p)
        progress.advance(1)
