"""Helpers for the processes copyscope runs in (the CLI, ``check --jobs``, ``serve --workers``)."""
from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

A = TypeVar("A")
B = TypeVar("B")

# glibc mallopt(3) parameters
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MALLOC_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")
KEPT_FREE_HEAP = 128 << 20       # free heap glibc keeps for reuse (keep_freed_memory)


def auto_jobs() -> int:
    """The cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:          # not Linux
        return max(1, os.cpu_count() or 1)


def read_ahead(paths: list[str | os.PathLike], budget_bytes: int = 2 << 30, chunk: int = 1 << 20) -> int:
    """Read ``paths`` front to back, up to ``budget_bytes`` in all, so their pages
    are in the page cache before checks touch them at random (here a sequential
    read ran at ~400 MB/s, a cold page read at random took ~0.13 ms). ``posix_fadvise``
    (WILLNEED) was tried first: it returns at once and, on this kernel, reads
    almost nothing. Returns the bytes read; files that vanish (a compaction
    swapped a segment) or cannot be read are skipped."""
    buf = bytearray(chunk)
    done = 0
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            offset = 0
            while done < budget_bytes:
                n = os.preadv(fd, [buf], offset)      # releases the GIL: checks go on meanwhile
                if n <= 0:
                    break
                offset += n
                done += n
        except OSError:
            pass
        finally:
            os.close(fd)
        if done >= budget_bytes:
            break
    return done


_helper: tuple[int, ThreadPoolExecutor] | None = None
_helper_lock = threading.Lock()
_helper_off = False


def helper_thread() -> ThreadPoolExecutor | None:
    """One background thread a single image check overlaps its independent
    steps on: the mirror's and the insets' ORB beside the query's own, the
    global-code scan beside the index lookup, half of the re-ranking search,
    and the keypoint fits of the candidates after the one being verified.
    Those steps are numerical code that releases the GIL, so a check runs on
    two cores when it has them: a guard API answers one request faster,
    instead of leaving a core idle between requests.

    None on a one-core machine and in ``check --jobs`` workers
    (:func:`no_helper_thread`), where every core already runs a check of its
    own. A fresh thread after a fork: a pool does not survive one."""
    global _helper
    if _helper_off:
        return None
    pid = os.getpid()
    if _helper is None or _helper[0] != pid:
        if auto_jobs() < 2:
            return None
        from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415 - it imports logging: not at start-up
        with _helper_lock:
            if _helper is None or _helper[0] != pid:
                _helper = (pid, ThreadPoolExecutor(1, thread_name_prefix="copyscope-helper"))
    return _helper[1]


def both(first: Callable[[], A], second: Callable[[], B]) -> tuple[A, B]:
    """``first()`` on this thread while the helper thread runs ``second()``.
    When the helper has not started ``second`` by the time ``first`` is done
    (it is busy with another check's work), this thread runs it too: a check
    never waits for work queued behind someone else's, and a call from the
    helper thread itself cannot deadlock."""
    helper = helper_thread()
    if helper is None:
        return first(), second()
    later = helper.submit(second)
    a = first()
    return a, (second() if later.cancel() else later.result())


def no_helper_thread() -> None:
    """Checks in this process run on one thread (see :func:`helper_thread`)."""
    global _helper_off
    _helper_off = True


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
        libc.mallopt(_M_TRIM_THRESHOLD, KEPT_FREE_HEAP)
    except (OSError, AttributeError):
        pass                       # not glibc: its allocator keeps its own policy
