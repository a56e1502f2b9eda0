"""SQL registry: works, artifacts and live index segments in one database.

One writer at a time (a file lock held by the workspace). Every registration
batch is one transaction: artifacts, works, their links and the new index
segment become visible together or not at all.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import sqlalchemy as sa

from copyscope import __version__
from copyscope.errors import StorageError, WorkspaceError
from copyscope.model import WorkInfo
from copyscope.storage import schema as t

HEAD = "0003_artifact_codes"


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


def _alembic_config(conn: sa.Connection):  # noqa: ANN202 - alembic.config.Config
    from alembic.config import Config  # noqa: PLC0415 - only when migrating (slow import)
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
    cfg.attributes["connection"] = conn
    return cfg


def make_engine(url: str) -> sa.Engine:
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")   # a commit is on disk when we say so
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()
        return engine
    return sa.create_engine(url, pool_pre_ping=True)


def migrate(engine: sa.Engine) -> None:
    """Bring the schema to head; refuse a database written by a newer copyscope."""
    try:
        _migrate(engine)
    except sa.exc.DatabaseError as exc:
        raise StorageError(f"the registry database is damaged or unreadable: {exc.orig}") from exc
    except sa.exc.OperationalError as exc:  # pragma: no cover - e.g. a server that is down
        raise StorageError(f"cannot reach the registry database: {exc.orig}") from exc


def _migrate(engine: sa.Engine) -> None:
    from alembic import command  # noqa: PLC0415
    from alembic.runtime.migration import MigrationContext  # noqa: PLC0415
    from alembic.script import ScriptDirectory  # noqa: PLC0415
    with engine.begin() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
        known = {s.revision for s in ScriptDirectory.from_config(_alembic_config(conn)).walk_revisions()}
        if current is not None and current not in known:
            raise WorkspaceError(f"the registry was written by a newer copyscope (schema {current})",
                                 hint="upgrade copyscope")
        command.upgrade(_alembic_config(conn), "head")
        conn.execute(sa.delete(t.meta).where(t.meta.c.key == "tool_version"))
        conn.execute(sa.insert(t.meta).values(key="tool_version", value=__version__))


@dataclass(frozen=True)
class NewArtifact:
    sha256: str
    size: int
    media_type: str
    modality: str
    encoding: str | None
    codes: bytes | None = None      # global descriptors (little-endian uint64s), when the modality has them


@dataclass(frozen=True)
class NewWork:
    title: str
    owner: str
    license: str
    kind: str
    root_path: str
    files: Sequence[tuple[str, str]]          # (path, sha256)
    record: dict[str, Any] | None = None
    record_sha256: str | None = None


class SqlRegistry:
    """Implements ArtifactStore, WorkStore and SegmentStore."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def _read(self, stmt) -> list[sa.Row]:  # noqa: ANN001
        try:
            with self.engine.connect() as conn:
                return list(conn.execute(stmt))
        except sa.exc.DatabaseError as exc:
            raise StorageError(f"the registry database is unreadable: {exc.orig}") from exc

    # -- ArtifactStore -------------------------------------------------------
    def artifact_ids(self, sha256s: Sequence[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        uniq = sorted(set(sha256s))
        for i in range(0, len(uniq), 500):
            rows = self._read(sa.select(t.artifacts.c.sha256, t.artifacts.c.id)
                              .where(t.artifacts.c.sha256.in_(uniq[i:i + 500])))
            out.update({r.sha256: r.id for r in rows})
        return out

    def artifact_sha256(self, artifact_ids: Sequence[int]) -> dict[int, str]:
        out: dict[int, str] = {}
        ids = sorted(set(int(i) for i in artifact_ids))
        for i in range(0, len(ids), 500):
            rows = self._read(sa.select(t.artifacts.c.id, t.artifacts.c.sha256)
                              .where(t.artifacts.c.id.in_(ids[i:i + 500])))
            out.update({r.id: r.sha256 for r in rows})
        return out

    def global_codes(self, modality: str, width: int) -> tuple[np.ndarray, np.ndarray]:
        """Every artifact's global descriptors for one modality: (ids, codes[n, width])."""
        rows = self._read(sa.select(t.artifacts.c.id, t.artifacts.c.codes)
                          .where(t.artifacts.c.modality == modality, t.artifacts.c.codes.is_not(None))
                          .order_by(t.artifacts.c.id))
        # Rows written with another width (a model added or removed later) are
        # padded with zeros or cut, so every registered image stays searchable.
        size = 8 * width
        good = [(r.id, (r.codes + bytes(size))[:size]) for r in rows if len(r.codes) % 8 == 0 and r.codes]
        ids = np.fromiter((i for i, _ in good), dtype=np.int64, count=len(good))
        codes = (np.frombuffer(b"".join(c for _, c in good), dtype="<u8").reshape(len(good), width)
                 if good else np.zeros((0, width), np.uint64))
        return ids, codes.astype(np.uint64)

    def artifact_count(self, modality: str) -> int:
        rows = self._read(sa.select(sa.func.count()).select_from(t.artifacts)
                          .where(t.artifacts.c.modality == modality))
        return int(rows[0][0])

    def referenced_blobs(self) -> set[str]:
        return {r.sha256 for r in self._read(sa.select(t.artifacts.c.sha256))}

    # -- WorkStore -----------------------------------------------------------
    def works_for_artifacts(self, artifact_ids: Sequence[int]) -> dict[int, list[WorkInfo]]:
        ids = sorted(set(int(i) for i in artifact_ids))
        out: dict[int, list[WorkInfo]] = {}
        for i in range(0, len(ids), 500):
            q = (sa.select(t.work_artifacts.c.artifact_id, t.work_artifacts.c.path, t.works)
                 .join(t.works, t.works.c.id == t.work_artifacts.c.work_pk)
                 .where(t.work_artifacts.c.artifact_id.in_(ids[i:i + 500]))
                 .order_by(t.works.c.id))
            for r in self._read(q):
                out.setdefault(r.artifact_id, []).append(
                    WorkInfo(r.work_id, r.title, r.owner, r.license, r.path))
        return out

    def list_works(self, limit: int | None = None) -> list[WorkInfo]:
        q = sa.select(t.works).order_by(t.works.c.id)
        if limit:
            q = q.limit(limit)
        return [WorkInfo(r.work_id, r.title, r.owner, r.license, r.root_path) for r in self._read(q)]

    def work_record(self, work_id: str) -> tuple[dict[str, Any] | None, str | None]:
        """The creation record a work was registered with, and its SHA-256."""
        rows = self._read(sa.select(t.works.c.record_json, t.works.c.record_sha256).where(t.works.c.work_id == work_id))
        if not rows or rows[0].record_json is None:
            return None, None
        return json.loads(rows[0].record_json), rows[0].record_sha256

    def work_count(self) -> int:
        return int(self._read(sa.select(sa.func.count()).select_from(t.works))[0][0])

    # -- SegmentStore --------------------------------------------------------
    def live_segments(self, modality: str) -> list[str]:
        rows = self._read(sa.select(t.index_segments.c.name)
                          .where(t.index_segments.c.modality == modality)
                          .order_by(t.index_segments.c.id))
        return [r.name for r in rows]

    def all_segment_names(self) -> set[str]:
        return {r.name for r in self._read(sa.select(t.index_segments.c.name))}

    def swap_segments(self, modality: str, old: Sequence[str], new: str, n_docs: int, n_postings: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.delete(t.index_segments).where(t.index_segments.c.name.in_(list(old))))
            conn.execute(sa.insert(t.index_segments).values(
                modality=modality, name=new, n_docs=n_docs, n_postings=n_postings, created_at=now()))

    # -- the one write path ----------------------------------------------------
    def commit_batch(self, artifacts: Sequence[NewArtifact], works: Sequence[NewWork],
                     segments: Sequence[tuple[str, str, int, int]], planned_ids: dict[str, int],
                     on_commit: Callable[[sa.Connection, list[str]], None] | None = None) -> list[str]:
        """Insert a batch atomically; return the new work ids in order.

        ``planned_ids`` are the artifact ids the segment was written with; the
        transaction checks they are still free, so the index and the table agree.
        """
        stamp = now()
        with self.engine.begin() as conn:
            if artifacts:
                conn.execute(sa.insert(t.artifacts), [
                    {"id": planned_ids[a.sha256], "sha256": a.sha256, "size": a.size,
                     "media_type": a.media_type, "modality": a.modality, "encoding": a.encoding,
                     "codes": a.codes, "created_at": stamp} for a in artifacts])
            for modality, name, n_docs, n_post in segments:
                conn.execute(sa.insert(t.index_segments).values(
                    modality=modality, name=name, n_docs=n_docs, n_postings=n_post, created_at=stamp))
            shas = sorted({s for w in works for _, s in w.files})
            ids: dict[str, int] = {}
            for i in range(0, len(shas), 500):
                ids.update({r.sha256: r.id for r in conn.execute(
                    sa.select(t.artifacts.c.sha256, t.artifacts.c.id).where(t.artifacts.c.sha256.in_(shas[i:i + 500])))})
            # Work keys are assigned here, under the workspace's writer lock, so the
            # whole batch goes in as three bulk statements.
            first = int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(t.works.c.id), 0))).scalar()) + 1
            rows, links, work_ids = [], [], []
            for pk, w in enumerate(works, first):
                wid = f"W{pk:07d}"
                work_ids.append(wid)
                rows.append({"id": pk, "work_id": wid, "title": w.title, "owner": w.owner, "license": w.license,
                             "kind": w.kind, "root_path": w.root_path,
                             "record_json": None if w.record is None else json.dumps(
                                 w.record, ensure_ascii=False, sort_keys=True),
                             "record_sha256": w.record_sha256, "created_at": stamp})
                links.extend({"work_pk": pk, "artifact_id": a, "path": p}
                             for p, a in sorted({(p, ids[s]) for p, s in w.files}))
            if rows:
                conn.execute(sa.insert(t.works), rows)
            if links:
                conn.execute(sa.insert(t.work_artifacts), links)
            if on_commit is not None:
                on_commit(conn, work_ids)     # e.g. the ledger entries, in this same transaction
        return work_ids

    def next_artifact_id(self) -> int:
        return int(self._read(sa.select(sa.func.coalesce(sa.func.max(t.artifacts.c.id), 0)))[0][0]) + 1
