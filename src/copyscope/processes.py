"""Helpers for the processes copyscope runs in (the CLI, ``check --jobs``, ``serve --workers``)."""
from __future__ import annotations

import os
import signal
import sys

# glibc mallopt(3) parameters
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MALLOC_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")


def auto_jobs() -> int:
    """The cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:          # not Linux
        return max(1, os.cpu_count() or 1)


def die_with_parent(parent: int) -> None:
    """Ask the kernel to end this worker when the parent process dies (killed,
    even with SIGKILL): workers must not run on as orphans."""
    try:
        import ctypes  # noqa: PLC0415
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)     # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass                       # not Linux: the parent's own shutdown still ends its workers
    if os.getppid() != parent:     # it died before the request took effect
        os._exit(1)


def become_worker(parent: int) -> None:
    """A worker that computes for ``parent`` (``check --jobs``, a compare's
    forked child): ends with it, and leaves Ctrl-C, which reaches the whole
    process group, to it."""
    die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def keep_freed_memory() -> None:
    """Let glibc's malloc keep and reuse freed blocks of up to 32 MiB (and up to
    128 MiB of free heap) instead of handing each back to the kernel.

    A check allocates megabytes of short-lived arrays (an image check at
    100,000 images: postings, weights, decoded pixels, descriptors). By default
    blocks that large are fresh mappings, and every page of every one is a page
    fault when first written: 1,200 a query, against 35 with this (p99 113 →
    102 ms in paired runs; benchmarks/README.md). Called by copyscope's own
    entry points only, never on import: a library must not retune its host
    process. A user's own MALLOC_* settings win."""
    if not sys.platform.startswith("linux") or any(k in os.environ for k in _MALLOC_ENV):
        return
    try:
        import ctypes  # noqa: PLC0415
        libc = ctypes.CDLL(None)
        libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)
        libc.mallopt(_M_TRIM_THRESHOLD, 128 << 20)
    except (OSError, AttributeError):
        pass                       # not glibc: its allocator keeps its own policy
