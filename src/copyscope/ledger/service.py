"""The workspace's ledger: turns registrations, drafts, labels and revocations into
signed log entries, and hands out receipts.

The workspace calls :meth:`Ledger.append_in` inside the same transaction that
inserts the works, so a work is registered if and only if its entry is logged.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ContextManager, Sequence

import sqlalchemy as sa

from copyscope.errors import CopyscopeError, InputError, NotFoundError
from copyscope.ledger.entries import Entry, content_of, make_entry
from copyscope.ledger.keys import KeyStore, new_workspace_id
from copyscope.ledger.log import Checkpoint, Log
from copyscope.ledger.verifier import VKey, VerificationError, verify_receipt
from copyscope.storage import schema as t


@dataclass(frozen=True)
class WorkClaim:
    """What the ledger needs to know about a work being registered."""

    work_id: str
    content: dict[str, Any]
    owner: str
    license: str
    title: str
    record_sha256: str | None = None
    parents: tuple[str, ...] = ()
    private: bool = False


def directory_content(files: Sequence[tuple[str, str, int]]) -> dict[str, Any]:
    """A directory work's content: SHA-256 of its sorted ``sha256  path`` manifest."""
    lines = "".join(f"{sha}  {path}\n" for path, sha, _ in sorted(files))
    return {"sha256": hashlib.sha256(lines.encode()).hexdigest(), "size": sum(s for _, _, s in files),
            "media_type": "inode/directory", "files": len(files)}


class Ledger:
    def __init__(self, engine: sa.Engine, home: Path, passphrase: bytes | None = None,
                 lock: Callable[[], ContextManager] | None = None) -> None:
        self.engine = engine
        self.home = home
        # The workspace's writer lock: appends read the log size and then insert,
        # so two processes must never interleave them.
        self._lock = lock or contextlib.nullcontext
        self.keys = KeyStore(home, passphrase)
        self.log = Log(engine, self.keys)

    def ensure_keys(self) -> None:
        if not self.keys.exists():
            self.keys.create(new_workspace_id())

    def rotate(self) -> str:
        """New keys and a new log origin; old keys stay listed so old receipts verify."""
        ws_id = self.keys.current().origin.split("/")[1]
        ring = self.keys.create(ws_id)
        self.log = Log(self.engine, self.keys, ring)
        return ring.origin

    # -- writing ------------------------------------------------------------------------
    def claim_entries(self, claims: Sequence[WorkClaim]) -> list[Entry]:
        claimant = self.log.ring.claimant
        out = []
        for c in claims:
            kind = "derive" if c.parents else "register"
            out.append(make_entry(kind, claimant, work_id=c.work_id, content=c.content, private=c.private,
                                  owner=c.owner, license=c.license, title=c.title,
                                  record_sha256=c.record_sha256, parents=list(c.parents) or None))
        return out

    def append_in(self, conn: sa.Connection, entries: list[Entry]) -> list[int]:
        return self.log.append(conn, entries)

    def append(self, entries: list[Entry]) -> list[int]:
        """Append outside a registration (drafts, labels, revocations), under the lock."""
        with self._lock():
            return self.log.append_entries(entries)

    def draft(self, work_id: str, data: bytes, media_type: str, note: str | None) -> int:
        self._require_work(work_id)
        sha = hashlib.sha256(data).hexdigest()
        entry = make_entry("draft", self.log.ring.claimant, work_id=work_id,
                           content=content_of(sha, len(data), media_type), note=note)
        return self.append([entry])[0]

    def label(self, work_id: str, label: str) -> int:
        self._require_work(work_id)
        return self.append([make_entry("label", self.log.ring.claimant, work_id=work_id, label=label)])[0]

    def revoke(self, work_id: str, reason: str | None) -> int:
        self._require_work(work_id)
        return self.append([make_entry("revoke", self.log.ring.claimant, work_id=work_id, reason=reason)])[0]

    def _require_work(self, work_id: str) -> None:
        with self.engine.connect() as conn:
            if conn.execute(sa.select(t.works.c.id).where(t.works.c.work_id == work_id)).first() is None:
                raise NotFoundError(f"no work {work_id} in this workspace")

    # -- reading ------------------------------------------------------------------------
    def receipts_for(self, work_id: str, *, original: bool = False) -> list[dict]:
        """Receipts for every entry about a work (register/derive, drafts, labels…),
        against the newest checkpoint, or with ``original`` against the checkpoint
        signed when each entry was appended (its time; consistency proves the rest)."""
        with self.engine.connect() as conn:
            found = self.log.entries_for_work(conn, work_id)
            if not found:
                raise NotFoundError(f"no ledger entry for work {work_id}")
            return [self.log.receipt(conn, gen, idx, at=self.log.first_covering(conn, gen, idx) if original else None)
                    for gen, idx, _ in found]

    def history(self, work_id: str) -> list[tuple[int, dict]]:
        """(ledger index, entry body) for every entry about a work, oldest first;
        an unreadable entry is left out (``verify`` is where damage is reported)."""
        with self.engine.connect() as conn:
            leaves = self.log.leaves_for_work(conn, work_id)
        out = []
        for index, leaf in leaves:
            try:
                out.append((index, json.loads(leaf)["body"]))
            except (KeyError, TypeError, ValueError):
                continue
        return out

    def receipts_at(self, conn: sa.Connection, indices: Sequence[int]) -> list[dict]:
        return self.log.receipts(conn, self.log.generation, list(indices))

    def consistency_to_latest(self, receipt_note_size: int, gen: int) -> dict | None:
        with self.engine.connect() as conn:
            latest = self.log.latest(conn, gen)
            if latest is None or latest.size <= receipt_note_size:
                return None
            proof = self.log.consistency(conn, gen, receipt_note_size, latest.size)
        import base64  # noqa: PLC0415
        return {"checkpoint": latest.note, "proof": [base64.b64encode(h).decode() for h in proof]}

    def timestamp_latest(self, url: str) -> dict:
        """Get an RFC 3161 token for the newest checkpoint (its signed note bytes)."""
        from copyscope.ledger.tsa import request_timestamp  # noqa: PLC0415
        cp = self.latest()
        if cp is None:
            raise NotFoundError("the log is empty: nothing to timestamp")
        token = request_timestamp(cp.note.encode(), url).to_json()
        with self.engine.begin() as conn:
            conn.execute(sa.update(t.ledger_checkpoints)
                         .where(t.ledger_checkpoints.c.gen == cp.gen, t.ledger_checkpoints.c.size == cp.size)
                         .values(timestamp_token=json.dumps(token, sort_keys=True)))
        return token

    def latest(self) -> Checkpoint | None:
        with self.engine.connect() as conn:
            return self.log.latest(conn)

    def generation_of(self, origin: str) -> int | None:
        for g in self.keys.index()["generations"]:
            if g["origin"] == origin:
                return g["generation"]
        return None

    def verify(self, receipt: dict, data: bytes | None = None, extra_log_keys: Sequence[str] = ()) -> dict:
        """Verify a receipt against this workspace's pinned keys, and check the log
        has stayed consistent from the receipt's checkpoint up to now."""
        from copyscope.ledger.verifier import parse_checkpoint, parse_tlog_proof, split_note  # noqa: PLC0415
        vk = self.keys.verifier_keys()
        logs = [VKey(k) for k in [*vk["log"], *extra_log_keys]]
        clocks = [VKey(k) for k in vk["clock"]]
        newer = []
        try:
            _, _, _, note = parse_tlog_proof(receipt["tlog_proof"])
            origin, size, _ = parse_checkpoint(split_note(note)[0])
        except (VerificationError, KeyError, TypeError):
            origin, size = None, 0
        gen = self.generation_of(origin) if origin else None
        if gen is not None:
            step = self.consistency_to_latest(size, gen)
            if step is not None:
                newer.append(step)
        result = verify_receipt(receipt, logs, clocks, data, newer)
        if receipt.get("timestamp"):
            from copyscope.ledger.tsa import TimestampToken, verify_timestamp  # noqa: PLC0415
            from copyscope.ledger.verifier import parse_tlog_proof as _p  # noqa: PLC0415
            note = _p(receipt["tlog_proof"])[3]
            try:
                result["timestamp_time"] = verify_timestamp(note.encode(), TimestampToken.from_json(receipt["timestamp"]))
            except CopyscopeError as exc:
                raise VerificationError("timestamp", exc.message) from None
        return result


def write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise InputError(f"{path}: cannot write ({exc.strerror})") from None
