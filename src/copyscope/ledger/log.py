"""The append-only log: entries, Merkle nodes and signed checkpoints in the registry DB.

Appends run inside the caller's transaction, so a work and its ledger entry
become durable together (SQLite ``synchronous=FULL``: durable at commit). Every
append ends with a new checkpoint, signed only after the new tree is proven
consistent with the previous checkpoint from the stored nodes; a tampered or
corrupt database therefore stops the log instead of being signed over.
Writers are serialised by the workspace lock, so indices are never duplicated
(the primary key would refuse it anyway).
"""
from __future__ import annotations

import base64
import json
from collections import OrderedDict
from dataclasses import dataclass

import sqlalchemy as sa

from copyscope.errors import StorageError
from copyscope.ledger import merkle
from copyscope.ledger.entries import Entry
from copyscope.ledger.keys import KeyRing, KeyStore, sign_note
from copyscope.ledger.verifier import (PROOF_HEADER, VerificationError, parse_checkpoint, split_note,
                                       verify_consistency)
from copyscope.storage import schema as t
from copyscope.storage.registry import lock_writers, now, storage_error


@dataclass(frozen=True)
class Checkpoint:
    gen: int
    size: int
    root: bytes
    note: str


def _stored_checkpoint(gen: int, size: int, note: str) -> Checkpoint:
    """A checkpoint read back from the database; damage is a storage error, not a crash."""
    try:
        _, parsed, root = parse_checkpoint(split_note(note)[0])
    except VerificationError as exc:
        raise StorageError(f"stored checkpoint {size} of log generation {gen} is damaged ({exc})") from None
    if parsed != size:
        raise StorageError(f"stored checkpoint {size} of log generation {gen} is damaged (it says size {parsed})")
    return Checkpoint(gen, size, root, note)


def checkpoint_text(origin: str, size: int, root: bytes) -> str:
    return f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n"


def tlog_proof(index: int, proof: list[bytes], note: str, extra: bytes | None = None) -> str:
    lines = [PROOF_HEADER]
    if extra is not None:
        lines.append("extra " + base64.b64encode(extra).decode())
    lines.append(f"index {index}")
    lines += [base64.b64encode(h).decode() for h in proof]
    return "\n".join(lines) + "\n\n" + note


class Log:
    def __init__(self, engine: sa.Engine, keys: KeyStore, ring: KeyRing | None = None,
                 cache_nodes: int = 65536) -> None:
        self.engine = engine
        self.keys = keys
        self._ring = ring
        self._cache: OrderedDict[tuple[int, int, int], bytes] = OrderedDict()
        self._cache_limit = cache_nodes

    @property
    def generation(self) -> int:
        """The current generation, without unlocking keys (reads need no passphrase)."""
        return self._ring.generation if self._ring is not None else self.keys.current_generation()[0]

    @property
    def ring(self) -> KeyRing:
        if self._ring is None:
            self._ring = self.keys.current()
        return self._ring

    # -- reading --------------------------------------------------------------------
    def _nodes(self, conn: sa.Connection, gen: int, coords: list[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        out, missing = {}, []
        for c in dict.fromkeys(coords):
            h = self._cache.get((gen, *c))
            if h is None:
                missing.append(c)
            else:
                out[c] = h
        for i in range(0, len(missing), 200):
            # One plain driver query per chunk: proofs are on the hot path, and the
            # ORM-free statement costs tens of microseconds instead of hundreds.
            chunk = missing[i:i + 200]
            # A VALUES list joined on the primary key: one index probe per node.
            values = ", ".join(["(?, ?)"] * len(chunk))
            params = tuple(x for c in chunk for x in c)
            sql = (f"WITH want(l, i) AS (VALUES {values}) SELECT n.level, n.idx, n.hash FROM want "
                   f"JOIN ledger_nodes n ON n.gen = {int(gen)} AND n.level = want.l AND n.idx = want.i")
            if conn.dialect.paramstyle != "qmark":
                sql = sql.replace("?", "%s")
            for level, idx, h in conn.exec_driver_sql(sql, params):
                out[(level, idx)] = bytes(h)
                self._remember((gen, level, idx), bytes(h))
        absent = [c for c in coords if c not in out]
        if absent:
            raise StorageError(f"ledger node {absent[0]} of log generation {gen} is missing (damaged database)")
        return out

    def _remember(self, key: tuple[int, int, int], h: bytes) -> None:
        if key[1] >= 4:          # only upper levels: shared by many proofs, few in number
            self._cache[key] = h
            if len(self._cache) > self._cache_limit:
                self._cache.popitem(last=False)

    def _reader(self, conn: sa.Connection, gen: int, coords: list[tuple[int, int]]):  # noqa: ANN202
        got = self._nodes(conn, gen, coords)
        return lambda level, idx: got[(level, idx)]

    def size(self, conn: sa.Connection, gen: int | None = None) -> int:
        gen = self.generation if gen is None else gen
        return int(conn.execute(sa.select(sa.func.count()).select_from(t.ledger_entries)
                                .where(t.ledger_entries.c.gen == gen)).scalar())

    def latest(self, conn: sa.Connection, gen: int | None = None) -> Checkpoint | None:
        gen = self.generation if gen is None else gen
        row = conn.execute(sa.select(t.ledger_checkpoints.c.size, t.ledger_checkpoints.c.note)
                           .where(t.ledger_checkpoints.c.gen == gen)
                           .order_by(t.ledger_checkpoints.c.size.desc()).limit(1)).first()
        return None if row is None else _stored_checkpoint(gen, row.size, row.note)

    def first_covering(self, conn: sa.Connection, gen: int, index: int) -> Checkpoint | None:
        """The checkpoint signed when entry ``index`` was appended (the oldest covering it)."""
        row = conn.execute(sa.select(t.ledger_checkpoints.c.size, t.ledger_checkpoints.c.note)
                           .where(t.ledger_checkpoints.c.gen == gen, t.ledger_checkpoints.c.size > index)
                           .order_by(t.ledger_checkpoints.c.size).limit(1)).first()
        return None if row is None else _stored_checkpoint(gen, row.size, row.note)

    # -- appending --------------------------------------------------------------------
    def append(self, conn: sa.Connection, entries: list[Entry]) -> list[int]:
        """Append ``entries`` and sign a checkpoint, in ``conn``'s transaction."""
        if not entries:
            return []
        ring = self.ring
        gen = ring.generation
        lock_writers(conn)       # PostgreSQL: the size read below stays the size until commit
        size = self.size(conn, gen)
        front = self._nodes(conn, gen, merkle.frontier(size)) if size else {}
        new: dict[tuple[int, int], bytes] = {}
        stamp = now()
        rows = []
        for i, e in enumerate(entries, size):
            h = merkle.leaf_hash(e.leaf)
            level, idx = 0, i
            new[(0, i)] = h
            while idx & 1:
                left = new.get((level, idx - 1)) or front[(level, idx - 1)]
                h = merkle.node_hash(left, h)
                level, idx = level + 1, idx >> 1
                new[(level, idx)] = h
            rows.append({"gen": gen, "idx": i, "leaf": e.leaf, "kind": e.kind, "work_id": e.work_id,
                         "created_at": stamp})
        conn.execute(sa.insert(t.ledger_entries), rows)
        conn.execute(sa.insert(t.ledger_nodes),
                     [{"gen": gen, "level": lv, "idx": ix, "hash": h} for (lv, ix), h in new.items()])
        openings = [{"gen": gen, "idx": i, "opening": json.dumps(e.opening, sort_keys=True)}
                    for i, e in enumerate(entries, size) if e.opening is not None]
        if openings:
            conn.execute(sa.insert(t.ledger_openings), openings)
        new_size = size + len(entries)
        known = {**front, **new}
        root = merkle.root(lambda lv, ix: known[(lv, ix)], new_size)
        self._sign_checkpoint(conn, ring, new_size, root, known)
        return list(range(size, new_size))

    def _sign_checkpoint(self, conn: sa.Connection, ring: KeyRing, size: int, root: bytes,
                         known: dict[tuple[int, int], bytes]) -> None:
        prev = self.latest(conn, ring.generation)
        if prev is not None and prev.size > size:
            raise StorageError(f"refusing to sign checkpoint {size}: the log already has a checkpoint of size "
                               f"{prev.size} (damaged database)")
        if prev is not None:
            coords = [c for c in merkle.needed_consistency(prev.size, size) if c not in known]
            nodes = {**known, **self._nodes(conn, ring.generation, coords)}
            proof = merkle.consistency_proof(lambda lv, ix: nodes[(lv, ix)], prev.size, size)
            try:
                verify_consistency(prev.size, size, prev.root, root, proof)
            except VerificationError as exc:
                raise StorageError(f"refusing to sign checkpoint {size}: {exc}") from None
        note = sign_note(checkpoint_text(ring.origin, size, root), [ring.log, ring.clock])
        conn.execute(sa.insert(t.ledger_checkpoints).values(gen=ring.generation, size=size, note=note,
                                                            created_at=now()))

    def append_entries(self, entries: list[Entry]) -> list[int]:
        try:
            with self.engine.begin() as conn:
                return self.append(conn, entries)
        except sa.exc.DBAPIError as exc:
            raise storage_error(exc, "the ledger could not be written") from exc

    # -- proofs and receipts ----------------------------------------------------------
    def inclusion(self, conn: sa.Connection, gen: int, index: int, size: int) -> list[bytes]:
        read = self._reader(conn, gen, merkle.needed_inclusion(index, size))
        return merkle.inclusion_proof(read, index, size)

    def consistency(self, conn: sa.Connection, gen: int, size1: int, size2: int) -> list[bytes]:
        read = self._reader(conn, gen, merkle.needed_consistency(size1, size2))
        return merkle.consistency_proof(read, size1, size2)

    def receipt(self, conn: sa.Connection, gen: int, index: int, *, at: Checkpoint | None = None) -> dict:
        """A receipt for entry ``index``: the entry, a tlog-proof against ``at`` (or
        the latest checkpoint) and the verifier keys of every generation."""
        return self.receipts(conn, gen, [index], at=at)[0]

    def receipts(self, conn: sa.Connection, gen: int, indices: list[int], *,
                 at: Checkpoint | None = None) -> list[dict]:
        """Receipts for many entries with a handful of queries (a bulk registration
        issues one per work): leaves, openings and proof nodes are fetched in batches."""
        cp = at or self.latest(conn, gen)
        if not indices:
            return []
        if cp is None or cp.size <= max(indices):
            raise StorageError(f"no checkpoint covers ledger entry {max(indices)} yet")
        leaves: dict[int, tuple[bytes, str | None]] = {}
        openings: dict[int, dict] = {}
        uniq = sorted(set(indices))
        for i in range(0, len(uniq), 500):
            chunk = uniq[i:i + 500]
            for r in conn.execute(sa.select(t.ledger_entries.c.idx, t.ledger_entries.c.leaf, t.ledger_entries.c.work_id)
                                  .where(t.ledger_entries.c.gen == gen, t.ledger_entries.c.idx.in_(chunk))):
                leaves[r.idx] = (bytes(r.leaf), r.work_id)
            for r in conn.execute(sa.select(t.ledger_openings.c.idx, t.ledger_openings.c.opening)
                                  .where(t.ledger_openings.c.gen == gen, t.ledger_openings.c.idx.in_(chunk))):
                openings[r.idx] = json.loads(r.opening)
        missing = [i for i in uniq if i not in leaves]
        if missing:
            raise StorageError(f"ledger entry {missing[0]} of generation {gen} does not exist")
        coords = [c for i in uniq for c in merkle.needed_inclusion(i, cp.size)]
        nodes = self._nodes(conn, gen, coords)
        read = lambda lv, ix: nodes[(lv, ix)]  # noqa: E731
        token = conn.execute(sa.select(t.ledger_checkpoints.c.timestamp_token)
                             .where(t.ledger_checkpoints.c.gen == gen, t.ledger_checkpoints.c.size == cp.size)).scalar()
        vk = self.keys.verifier_keys()
        keys = {"log": vk["log"], "clock": vk["clock"]}
        out = []
        for index in indices:
            leaf, work_id = leaves[index]
            try:
                text = leaf.decode()
            except UnicodeDecodeError:
                raise StorageError(f"ledger entry {index} is damaged (not UTF-8)") from None
            receipt = {"schema": "copyscope.receipt/v1", "index": index, "work": work_id, "entry": text,
                       "tlog_proof": tlog_proof(index, merkle.inclusion_proof(read, index, cp.size), cp.note,
                                                extra=leaf),
                       "keys": keys}
            if token:
                receipt["timestamp"] = json.loads(token)
            if index in openings:
                receipt["opening"] = openings[index]
            out.append(receipt)
        return out

    def checkpoints(self, conn: sa.Connection, gen: int) -> list[Checkpoint]:
        rows = conn.execute(sa.select(t.ledger_checkpoints.c.size, t.ledger_checkpoints.c.note)
                            .where(t.ledger_checkpoints.c.gen == gen).order_by(t.ledger_checkpoints.c.size))
        return [_stored_checkpoint(gen, r.size, r.note) for r in rows]

    def leaves_for_work(self, conn: sa.Connection, work_id: str) -> list[tuple[int, bytes]]:
        """(index, entry bytes) of every entry about a work, oldest first: the
        history without building proofs."""
        rows = conn.execute(sa.select(t.ledger_entries.c.idx, t.ledger_entries.c.leaf)
                            .where(t.ledger_entries.c.work_id == work_id)
                            .order_by(t.ledger_entries.c.gen, t.ledger_entries.c.idx))
        return [(r.idx, bytes(r.leaf)) for r in rows]

    def entries_for_work(self, conn: sa.Connection, work_id: str) -> list[tuple[int, int, str]]:
        rows = conn.execute(sa.select(t.ledger_entries.c.gen, t.ledger_entries.c.idx, t.ledger_entries.c.kind)
                            .where(t.ledger_entries.c.work_id == work_id)
                            .order_by(t.ledger_entries.c.gen, t.ledger_entries.c.idx))
        return [(r.gen, r.idx, r.kind) for r in rows]
