"""``TCP_NODELAY`` on every connection the service accepts, however its socket was made."""
from __future__ import annotations

import socket

import pytest

pytest.importorskip("uvicorn")

from copyscope.service.transport import NoDelayHttpProtocol, set_nodelay  # noqa: E402


class _Transport:
    def __init__(self, sock: socket.socket | None) -> None:
        self.sock = sock

    def get_extra_info(self, name: str, default=None):  # noqa: ANN001, ANN201
        return self.sock if name == "socket" else default


def _accepted_from_proto0_listener() -> tuple[socket.socket, socket.socket, socket.socket]:
    # The way uvicorn binds for several workers: protocol number 0, which asyncio
    # does not recognise as TCP, so it leaves Nagle's algorithm on.
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    client = socket.create_connection(listener.getsockname())
    accepted, _ = listener.accept()
    return listener, client, accepted


def test_a_connection_accepted_on_a_protocol_0_socket_gets_nodelay():
    listener, client, accepted = _accepted_from_proto0_listener()
    with listener, client, accepted:
        assert accepted.proto == 0
        assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
        assert set_nodelay(_Transport(accepted)) is True
        assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1


def test_a_unix_socket_or_no_socket_is_left_alone():
    a, b = socket.socketpair()
    with a, b:
        assert set_nodelay(_Transport(a)) is False
    assert set_nodelay(_Transport(None)) is False


def test_the_protocol_sets_nodelay_before_uvicorn_takes_the_connection(monkeypatch):
    listener, client, accepted = _accepted_from_proto0_listener()
    with listener, client, accepted:
        seen = []
        # Only the hook under test: uvicorn's own set-up needs a running server.
        base = NoDelayHttpProtocol.__mro__[1]
        monkeypatch.setattr(base, "connection_made",
                            lambda self, t: seen.append(accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)))
        NoDelayHttpProtocol.__new__(NoDelayHttpProtocol).connection_made(_Transport(accepted))
        assert seen == [1]
