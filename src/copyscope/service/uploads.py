"""Uploads: safe file names, durable staging, and the request size limit."""
from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path

from fastapi import HTTPException

CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def safe_name(name: str | None, default: str = "upload") -> str:
    """The last component of a client's file name, without directory tricks
    (``../../etc/passwd``, ``C:\\x``, NUL bytes): it names a work or a query,
    never a path we trust."""
    raw = unicodedata.normalize("NFC", name or "")
    base = re.split(r"[\\/]", raw)[-1]
    base = CONTROL.sub("", base).strip().lstrip(".") or default
    if len(base) > 200:
        stem, dot, ext = base.rpartition(".")
        base = (stem[:180] + dot + ext[:19]) if dot and len(ext) < 20 else base[:200]
    return base


def write_durable(path: Path, data: bytes) -> None:
    """Write then fsync, so a staged upload survives a crash once it is acknowledged."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)


class TooLarge(HTTPException):
    """An HTTPException so FastAPI's body parsing lets it through as a 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body over the {limit}-byte upload limit")


class BodyLimit:
    """ASGI middleware: refuse bodies over ``limit`` bytes, whether the client
    declared the length or streams it chunked, before they are buffered."""

    def __init__(self, app, limit: int) -> None:  # noqa: ANN001
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > self.limit or declared < 0:
                    await _send_json(send, 413 if declared > self.limit else 400,
                                     f"request body over the {self.limit}-byte upload limit"
                                     if declared > self.limit else "invalid Content-Length")
                    return
        seen = 0
        started = False

        async def limited_receive():  # noqa: ANN202
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise TooLarge(self.limit)
            return message

        async def tracking_send(message) -> None:  # noqa: ANN001
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except TooLarge:
            if not started:
                await _send_json(send, 413, f"request body over the {self.limit}-byte upload limit")


async def _send_json(send, status: int, message: str) -> None:  # noqa: ANN001
    import json  # noqa: PLC0415
    body = json.dumps({"error": message, "status": status}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
