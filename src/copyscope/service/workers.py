"""``serve --workers N``: N uvicorn processes, each with a listening socket of its own.

uvicorn's own ``--workers`` binds one socket in the parent and hands it to every
worker; whichever worker's event loop wakes first accepts a connection, and a
keep-alive connection stays with the worker that accepted it. Under load that
piled most connections onto one worker: measured at 200 checks/s offered, one
worker at 98 % of a core and the other at 38 %, each refusing work (503) past
its own in-flight limit while the other had room. Here every worker binds the
address itself with ``SO_REUSEPORT``, and the kernel spreads new connections
evenly over the workers' sockets.

The parent only supervises: it forwards SIGINT/SIGTERM, and starts a new worker
when one dies unexpectedly. Workers end with the parent, even on SIGKILL.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from typing import Any

from copyscope.errors import UsageError, WorkspaceError

log = logging.getLogger("copyscope.service")

RESTART_PAUSE_S = 1.0          # a worker that dies at once is not restarted in a tight loop
EARLY_EXIT_S = 10.0            # a worker that ends this soon after its start failed to start...
MAX_EARLY_EXITS = 5            # ...and this many such failures in a row stop the server


def listening_socket(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    """A bound TCP socket (not yet listening: asyncio calls ``listen``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def _worker(host: str, port: int, uvicorn_options: dict[str, Any], parent: int) -> None:
    from copyscope.processes import die_with_parent, keep_freed_memory  # noqa: PLC0415
    die_with_parent(parent)
    keep_freed_memory()
    import uvicorn  # noqa: PLC0415
    sock = listening_socket(host, port, reuse_port=True)
    config = uvicorn.Config("copyscope.service.app:app_from_environment", factory=True, **uvicorn_options)
    uvicorn.Server(config).run(sockets=[sock])


def serve_workers(host: str, port: int, workers: int, uvicorn_options: dict[str, Any]) -> None:
    """Run ``workers`` server processes until SIGINT or SIGTERM (the settings
    reach them through ``COPYSCOPE_SERVICE_SETTINGS``, set by the caller)."""
    if not hasattr(socket, "SO_REUSEPORT"):
        raise UsageError("--workers above 1 needs SO_REUSEPORT (Linux, BSD, macOS)")
    # Fail here, with one clear line, when the address is taken by another program.
    listening_socket(host, port, reuse_port=True).close()
    ctx = multiprocessing.get_context("spawn")
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}

    started: dict[int, float] = {}

    def start() -> multiprocessing.process.BaseProcess:
        p = ctx.Process(target=_worker, args=(host, port, uvicorn_options, os.getpid()), daemon=False)
        p.start()
        started[p.pid] = time.monotonic()
        return p

    procs = [start() for _ in range(workers)]
    early = 0
    try:
        while not stop.wait(0.5):
            for i, p in enumerate(procs):
                if p.is_alive() or stop.is_set():
                    continue
                early = early + 1 if time.monotonic() - started.pop(p.pid, 0.0) < EARLY_EXIT_S else 0
                if early >= MAX_EARLY_EXITS:
                    raise WorkspaceError(f"service workers keep exiting as they start (last exit code "
                                         f"{p.exitcode}); see the messages above")
                log.warning("worker %s exited with %s; starting another", p.pid, p.exitcode)
                time.sleep(RESTART_PAUSE_S)
                procs[i] = start()
    finally:
        for p in procs:
            if p.is_alive():
                os.kill(p.pid, signal.SIGTERM)        # uvicorn shuts down gracefully on SIGTERM
        deadline = time.monotonic() + float(uvicorn_options.get("timeout_graceful_shutdown") or 10) + 5
        for p in procs:
            p.join(max(0.0, deadline - time.monotonic()))
            if p.is_alive():
                p.kill()
                p.join()
        for s, handler in previous.items():
            signal.signal(s, handler)
