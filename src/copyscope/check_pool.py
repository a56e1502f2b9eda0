"""A large check on several cores.

Each worker process opens the same workspace for reading only (checks take no
lock, and the parent has already migrated it) and checks slices of the file
list; the parent merges the partial results in input order, so the output is the
same as a single-process check. Workers are spawned, not forked: the parent
holds database connections and perhaps a progress thread.
"""
from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from copyscope.evidence import Result
from copyscope.ingest import FoundFile
from copyscope.processes import become_worker, keep_freed_memory, no_helper_thread
from copyscope.progress import Progress
from copyscope.settings import Settings

MIN_FILES = 64          # below this, starting processes costs more than it saves
SLICE_MAX = 16          # files per task: small enough for a live progress bar

_worker = None          # (workspace, base fingerprints, media) in a worker process


def _init(settings: Settings, base: list[str], media: bool, parent: int) -> None:
    global _worker
    become_worker(parent)
    keep_freed_memory()
    no_helper_thread()            # one check per core already
    from copyscope.workspace import Workspace  # noqa: PLC0415
    ws = Workspace(settings)
    _worker = (ws, ws._base_fingerprints(base), media)


def _check_slice(files: list[FoundFile]) -> Result:
    ws, base_fps, media = _worker
    result = Result("check", {})
    ws._check_files(result, files, base_fps, media)
    return result


def _slices(files: Sequence[FoundFile], jobs: int) -> Iterator[list[FoundFile]]:
    size = max(1, min(SLICE_MAX, len(files) // (jobs * 8)))
    for i in range(0, len(files), size):
        yield list(files[i:i + size])


def check_in_pool(settings: Settings, files: Sequence[FoundFile], base: Sequence[str | Path], media: bool,
                  jobs: int, result: Result, progress: Progress) -> None:
    """Check ``files`` in ``jobs`` processes, adding to ``result`` in input order.
    A worker that dies (killed, out of memory) is reported as one error line per
    file it left unchecked; the rest of the scan goes on. An error that stops a
    single-process check (a damaged workspace) stops this one too."""
    ctx = multiprocessing.get_context("spawn")
    slices = list(_slices(files, jobs))
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init,
                             initargs=(settings, [str(b) for b in base], media, os.getpid())) as pool:
        futures = [pool.submit(_check_slice, s) for s in slices]
        try:
            for chunk, fut in zip(slices, futures):
                try:
                    part = fut.result()
                except BrokenProcessPool:
                    result.errors += [f"{f.relative}: not checked (a worker process died)" for f in chunk]
                else:
                    result.inputs += part.inputs
                    result.matches += part.matches
                    result.errors += part.errors
                    result.triaged += part.triaged
                progress.advance(len(chunk))
        except BaseException:
            # Interrupted: drop the slices not started; those in flight end in a second or two.
            pool.shutdown(wait=True, cancel_futures=True)
            raise
