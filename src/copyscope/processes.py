"""Helpers for the worker processes copyscope starts (``check --jobs``, ``serve --workers``)."""
from __future__ import annotations

import os
import signal


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
