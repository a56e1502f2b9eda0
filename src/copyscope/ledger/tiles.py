"""Export the log as static C2SP tlog-tiles, for mirrors and auditors.

``DIR/checkpoint``, ``DIR/tile/<L>/<N>[.p/<W>]`` and ``DIR/tile/entries/<N>[.p/<W>]``,
exactly as a tiles log serves them over HTTP, so the directory can be published
on any static web server. Tile ``(l, n)`` holds stored Merkle nodes of level
``8 * l`` (complete subtrees of ``256**l`` leaves) ``n * 256 .. n * 256 + 255``.
"""
from __future__ import annotations

import os
from pathlib import Path

import sqlalchemy as sa

from copyscope.errors import InputError, NotFoundError
from copyscope.ledger.log import Log
from copyscope.storage import schema as t

WIDTH = 256


def tile_path(n: int) -> str:
    """Index → zero-padded 3-digit path elements, all but the last prefixed ``x``."""
    parts = []
    while True:
        parts.append(f"{n % 1000:03d}")
        n //= 1000
        if n == 0:
            break
    return "/".join([f"x{p}" for p in reversed(parts[1:])] + [parts[0]])


def _name(kind: str, n: int, width: int) -> str:
    base = f"tile/{kind}/{tile_path(n)}"
    return base if width == WIDTH else f"{base}.p/{width}"


def _write(root: Path, rel: str, data: bytes) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def export_tiles(log: Log, out: Path, gen: int | None = None) -> dict[str, int]:
    """Write every tile and entry bundle of the latest checkpoint; returns counts."""
    gen = log.generation if gen is None else gen
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{out}: cannot create ({exc.strerror})") from None
    with log.engine.connect() as conn:
        cp = log.latest(conn, gen)
        if cp is None:
            raise NotFoundError("the log is empty: nothing to export")
        size = cp.size
        tiles = bundles = 0
        level = 0
        while size >> (8 * level):
            count = size >> (8 * level)
            rows = conn.execute(sa.select(t.ledger_nodes.c.idx, t.ledger_nodes.c.hash)
                                .where(t.ledger_nodes.c.gen == gen, t.ledger_nodes.c.level == 8 * level,
                                       t.ledger_nodes.c.idx < count).order_by(t.ledger_nodes.c.idx))
            hashes = [bytes(r.hash) for r in rows]
            if len(hashes) != count:
                raise NotFoundError(f"log generation {gen} is missing nodes at level {8 * level}")
            for n in range(0, (count + WIDTH - 1) // WIDTH):
                chunk = hashes[n * WIDTH:(n + 1) * WIDTH]
                _write(out, _name(str(level), n, len(chunk)), b"".join(chunk))
                tiles += 1
            level += 1
        for n in range(0, (size + WIDTH - 1) // WIDTH):
            rows = conn.execute(sa.select(t.ledger_entries.c.leaf)
                                .where(t.ledger_entries.c.gen == gen, t.ledger_entries.c.idx >= n * WIDTH,
                                       t.ledger_entries.c.idx < min(size, (n + 1) * WIDTH))
                                .order_by(t.ledger_entries.c.idx))
            leaves = [bytes(r.leaf) for r in rows]
            if any(len(leaf) > 0xFFFF for leaf in leaves):
                raise InputError("an entry is over 64 KiB and cannot go in an entry bundle")
            data = b"".join(len(leaf).to_bytes(2, "big") + leaf for leaf in leaves)
            _write(out, _name("entries", n, len(leaves)), data)
            bundles += 1
    _write(out, "checkpoint", cp.note.encode())
    return {"tree_size": size, "tiles": tiles, "entry_bundles": bundles}
