"""The HTTP protocol ``copyscope serve`` hands uvicorn.

uvicorn binds the listening socket of ``--workers N`` itself, as
``socket.socket(AF_INET)``: protocol number 0, not ``IPPROTO_TCP``. asyncio
sets ``TCP_NODELAY`` on an accepted connection only when that number says TCP,
so every worker's connections kept Nagle's algorithm on. A response goes out in
two writes (head, then body); the body then waited for the client's delayed
ACK of the head, 40 ms on Linux, so every request took at least ~44 ms,
``/v1/health`` included, and two workers answered fewer checks than one. Setting
the option on each connection ourselves covers every way the socket was made.
"""
from __future__ import annotations

import asyncio
import socket

try:                                   # httptools parses in C: a few hundred microseconds less per request
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _Protocol
except ImportError:                    # pragma: no cover - it is a pinned dependency
    from uvicorn.protocols.http.h11_impl import H11Protocol as _Protocol  # type: ignore[assignment]


def set_nodelay(transport: asyncio.BaseTransport) -> bool:
    """``TCP_NODELAY`` on a transport's socket; False where it is not TCP (a Unix socket)."""
    sock = transport.get_extra_info("socket")
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return False
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        return False
    return True


class NoDelayHttpProtocol(_Protocol):
    """uvicorn's HTTP/1.1 protocol with ``TCP_NODELAY`` on every connection."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # type: ignore[override]
        set_nodelay(transport)
        super().connection_made(transport)  # type: ignore[arg-type]
