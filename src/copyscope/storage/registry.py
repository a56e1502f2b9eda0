"""SQL registry: works, artifacts and live index segments in one database.

One writer at a time (a file lock held by the workspace). Every registration
batch is one transaction: artifacts, works, their links and the new index
segment become visible together or not at all.
"""
from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import sqlalchemy as sa

from copyscope import __version__
from copyscope.errors import InputError, NotFoundError, StorageError, UsageError, WorkspaceError
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


SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
URL_HELP = "use sqlite:///PATH or postgresql://USER@HOST/DATABASE"


def make_engine(url: str, *, schema: str | None = None) -> sa.Engine:
    """The registry's engine: SQLite (WAL, ``synchronous=FULL``) or PostgreSQL.

    ``postgresql://`` and ``postgres://`` URLs run on psycopg 3; the server is
    reached once here, so an unreachable server or a bad URL is one clear
    :class:`StorageError` instead of a traceback later. ``schema`` (PostgreSQL
    only) puts every connection in that schema, created when missing: one
    registry per tenant inside one database. SQLite takes one file per tenant
    instead, so a schema there is a usage error.
    """
    try:
        parsed = sa.engine.make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        raise StorageError(f"the registry database URL is malformed: {URL_HELP}") from None
    backend, _, driver = parsed.drivername.partition("+")
    if backend == "sqlite" and driver in ("", "pysqlite"):
        if schema is not None:
            raise UsageError("a database schema needs PostgreSQL: with SQLite, give each tenant its own home")
        return _sqlite_engine(url)
    if backend in ("postgresql", "postgres") and driver in ("", "psycopg"):
        if schema is not None and (not SCHEMA_NAME.fullmatch(schema) or schema.startswith("pg_")):
            raise UsageError(f"not a usable database schema name: {schema!r} (lowercase letters, digits and _, "
                             "at most 63, not starting with a digit or pg_)")
        return _postgres_engine(parsed.set(drivername="postgresql+psycopg"), schema)
    raise StorageError(f"unsupported registry database {parsed.drivername!r}: {URL_HELP}")


def _sqlite_engine(url: str) -> sa.Engine:
    engine = sa.create_engine(url, connect_args={"timeout": 30})

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")   # a commit is on disk when we say so
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()
    return engine


def _postgres_engine(url: sa.URL, schema: str | None) -> sa.Engine:
    # Text travels as UTF-8 whatever the server's default; a server that does not
    # answer fails the connection in seconds rather than hanging a command.
    connect_args: dict[str, Any] = {"client_encoding": "utf8"}
    if "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = 10
    engine = sa.create_engine(url, pool_pre_ping=True, connect_args=connect_args)
    where = _describe(url)
    driver_error = engine.dialect.loaded_dbapi.Error
    cargs, cparams = engine.dialect.create_connect_args(url)
    try:
        # A bare driver connection (no pool events): the schema must exist before
        # the first pooled connection, whose search path SQLAlchemy reads once.
        raw = engine.dialect.connect(*cargs, **{**cparams, **connect_args})
    except driver_error as exc:
        raise StorageError(f"cannot reach the registry database {where}: {_first_line(exc)}") from None
    if schema is None:
        raw.close()
        return engine
    quoted = engine.dialect.identifier_preparer.quote_identifier(schema)
    try:
        _ensure_schema(raw, schema, quoted, driver_error)
    except driver_error as exc:
        raise StorageError(f"cannot create schema {schema} in {where}: {_first_line(exc)}") from None
    finally:
        raw.close()

        # insert=True: before SQLAlchemy's first-connect set-up, which records the
        # default schema (table reflection, Alembic's version table use it).
        @sa.event.listens_for(engine, "connect", insert=True)
        def _search_path(dbapi_conn, _record) -> None:  # noqa: ANN001
            with dbapi_conn.cursor() as cur:
                cur.execute(f"SET search_path TO {quoted}")
            dbapi_conn.commit()              # SET is transactional: a rollback would undo it
    return engine


def _describe(url: sa.URL) -> str:
    """Where a URL points, for messages: no password, no query (it may hold one)."""
    host = url.host or url.query.get("host") or "localhost"
    return f"postgresql://{url.username + '@' if url.username else ''}{host}" \
           f"{':' + str(url.port) if url.port else ''}/{url.database or ''}"


def _ensure_schema(raw, schema: str, quoted: str, driver_error: type[Exception]) -> None:  # noqa: ANN001
    """Create ``schema`` unless it exists (checked first: a tenant's role may own
    its schema yet lack the right to create one). A concurrent creator is fine."""
    with raw.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
        if cur.fetchone() is not None:
            return
    try:
        with raw.cursor() as cur:
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {quoted}")
        raw.commit()
    except driver_error:
        raw.rollback()
        with raw.cursor() as cur:        # lost a race with another process: fine if it now exists
            cur.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
            if cur.fetchone() is None:
                raise


def _first_line(exc: BaseException) -> str:
    """A driver message without libpq's indented detail lines."""
    lines = [ln.strip() for ln in str(getattr(exc, "orig", None) or exc).splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__


def storage_error(exc: sa.exc.DBAPIError, what: str = "the registry database is unreadable") -> StorageError:
    """A driver failure as one line (libpq's detail lines dropped)."""
    return StorageError(f"{what}: {_first_line(exc)}")


def _advance_sequences(conn: sa.Connection, artifact_id: int, work_pk: int) -> None:
    """PostgreSQL: copyscope picks artifact ids (a segment is written with them
    before the commit) and work keys itself, so the columns' sequences would
    stay at 1; move them to the highest id, so that a plain insert by another
    tool or a later migration cannot collide."""
    if conn.dialect.name != "postgresql":
        return
    for table, value in (("artifacts", artifact_id), ("works", work_pk)):
        if value:
            conn.execute(sa.text("SELECT setval(pg_get_serial_sequence(:t, 'id'), :v)"), {"t": table, "v": value})


def lock_writers(conn: sa.Connection) -> None:
    """PostgreSQL: serialise writers of this registry (schema) until ``conn``'s
    transaction ends. The workspace's file lock already does on one host; this
    also holds for processes that share the database but not the lock file.
    SQLite needs nothing: it has one writer per file by construction."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('copyscope.registry'), "
                             "hashtext(coalesce(current_schema(), '')))"))


def migrate(engine: sa.Engine) -> None:
    """Bring the schema to head; refuse a database written by a newer copyscope."""
    try:
        _migrate(engine)
    except sa.exc.DBAPIError as exc:
        raise storage_error(exc, "the registry database is damaged or unreadable") from exc


def _migrate(engine: sa.Engine) -> None:
    from alembic import command  # noqa: PLC0415
    from alembic.runtime.migration import MigrationContext  # noqa: PLC0415
    from alembic.script import ScriptDirectory  # noqa: PLC0415
    with engine.begin() as conn:
        lock_writers(conn)          # two processes opening a new registry at once: one migrates
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


# The reads every check makes, built once: building a select and its cache key
# cost ~0.3 ms a call, several times the query itself, which at a few hundred
# checks a second was a tenth of the service's CPU.
_SHA256_OF_IDS = (sa.select(t.artifacts.c.id, t.artifacts.c.sha256)
                  .where(t.artifacts.c.id.in_(sa.bindparam("ids", expanding=True))))
_WORKS_OF_ARTIFACTS = (sa.select(t.work_artifacts.c.artifact_id, t.work_artifacts.c.path, t.works)
                       .join(t.works, t.works.c.id == t.work_artifacts.c.work_pk)
                       .where(t.work_artifacts.c.artifact_id.in_(sa.bindparam("ids", expanding=True))))
_LIVE_SEGMENTS = (sa.select(t.index_segments.c.name).where(t.index_segments.c.modality == sa.bindparam("modality"))
                  .order_by(t.index_segments.c.id))


class SqlRegistry:
    """Implements ArtifactStore, WorkStore and SegmentStore."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def _read(self, stmt, params: dict[str, Any] | None = None) -> list[sa.Row]:  # noqa: ANN001
        try:
            with self.engine.connect() as conn:
                return list(conn.execute(stmt, params))
        except sa.exc.DBAPIError as exc:
            raise storage_error(exc) from exc

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
            rows = self._read(_SHA256_OF_IDS, {"ids": ids[i:i + 500]})
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
        good = [(r.id, (bytes(r.codes) + bytes(size))[:size]) for r in rows if len(r.codes) % 8 == 0 and r.codes]
        ids = np.fromiter((i for i, _ in good), dtype=np.int64, count=len(good))
        codes = (np.frombuffer(b"".join(c for _, c in good), dtype="<u8").reshape(len(good), width)
                 if good else np.zeros((0, width), np.uint64))
        return ids, codes.astype(np.uint64)

    def codes_to_fill(self, modality: str, width: int) -> list[tuple[int, str]]:
        """``(id, sha256)`` of the artifacts whose stored global codes are
        narrower than ``width`` or end in zeros: written before the modality's
        last code existed (a workspace from an older version)."""
        rows = self._read(sa.select(t.artifacts.c.id, t.artifacts.c.sha256, t.artifacts.c.codes)
                          .where(t.artifacts.c.modality == modality).order_by(t.artifacts.c.id))
        size = 8 * width
        return [(int(r.id), r.sha256) for r in rows
                if len(r.codes or b"") < size or bytes(r.codes)[size - 8:size] == bytes(8)]

    def set_codes(self, rows: Sequence[tuple[int, bytes]]) -> None:
        """Replace the global codes of existing artifacts (derived data: what the
        feature files say, so a crash in between loses nothing)."""
        if not rows:
            return
        try:
            with self.engine.begin() as conn:
                conn.execute(sa.update(t.artifacts).where(t.artifacts.c.id == sa.bindparam("_id"))
                             .values(codes=sa.bindparam("_codes")),
                             [{"_id": i, "_codes": c} for i, c in rows])
        except sa.exc.DBAPIError as exc:
            raise storage_error(exc, "the registry database refused the code update") from exc

    def artifact_shas(self, modality: str) -> list[tuple[int, str]]:
        """Every artifact of one modality as ``(id, sha256)``, by id."""
        rows = self._read(sa.select(t.artifacts.c.id, t.artifacts.c.sha256)
                          .where(t.artifacts.c.modality == modality).order_by(t.artifacts.c.id))
        return [(int(r.id), r.sha256) for r in rows]

    def artifact_count(self, modality: str) -> int:
        rows = self._read(sa.select(sa.func.count()).select_from(t.artifacts)
                          .where(t.artifacts.c.modality == modality))
        return int(rows[0][0])

    def referenced_blobs(self) -> set[str]:
        return {r.sha256 for r in self._read(sa.select(t.artifacts.c.sha256))}

    # -- WorkStore -----------------------------------------------------------
    def works_for_artifacts(self, artifact_ids: Sequence[int]) -> dict[int, list[WorkInfo]]:
        ids = sorted(set(int(i) for i in artifact_ids))
        found: dict[int, list[tuple[int, str, WorkInfo]]] = {}
        for i in range(0, len(ids), 500):
            for r in self._read(_WORKS_OF_ARTIFACTS, {"ids": ids[i:i + 500]}):
                found.setdefault(r.artifact_id, []).append(
                    (r.id, r.path, WorkInfo(r.work_id, r.title, r.owner, r.license, r.path)))
        # Oldest work first, then paths by code point: sorted here, not by the
        # database, whose text collation differs (PostgreSQL's locale vs SQLite's bytes).
        return {a: [w for _, _, w in sorted(rows, key=lambda x: x[:2])] for a, rows in found.items()}

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

    def search_works(self, query: str = "", *, limit: int = 50, offset: int = 0) -> tuple[int, list[WorkSummary]]:
        """Works whose id, title or owner contains ``query`` (case-insensitive), newest first."""
        cond = sa.true()
        if query.strip():
            like = "%" + query.strip().lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            cond = sa.or_(*(sa.func.lower(c).like(like, escape="\\")
                            for c in (t.works.c.work_id, t.works.c.title, t.works.c.owner)))
        total = int(self._read(sa.select(sa.func.count()).select_from(t.works).where(cond))[0][0])
        rows = self._read(sa.select(t.works, _n_files()).where(cond)
                          .order_by(t.works.c.id.desc()).limit(limit).offset(offset))
        return total, [_summary(r) for r in rows]

    def work_info(self, work_id: str) -> WorkSummary:
        rows = self._read(sa.select(t.works, _n_files()).where(t.works.c.work_id == work_id))
        if not rows:
            raise NotFoundError(f"no work {work_id}")
        return _summary(rows[0])

    def existing_work_ids(self, work_ids: Sequence[str]) -> set[str]:
        ids = sorted(set(work_ids))
        out: set[str] = set()
        for i in range(0, len(ids), 500):
            out |= {r.work_id for r in self._read(sa.select(t.works.c.work_id)
                                                  .where(t.works.c.work_id.in_(ids[i:i + 500])))}
        return out

    def work_ids_by_root(self, roots: Sequence[str]) -> dict[str, str]:
        """Registered root path → work id: a resumed bulk registration uses it to
        see which of its staged files a crash had already committed."""
        uniq = sorted(set(roots))
        out: dict[str, str] = {}
        for i in range(0, len(uniq), 500):
            out.update({r.root_path: r.work_id for r in self._read(
                sa.select(t.works.c.root_path, t.works.c.work_id).where(t.works.c.root_path.in_(uniq[i:i + 500])))})
        return out

    # -- SegmentStore --------------------------------------------------------
    def live_segments(self, modality: str) -> list[str]:
        return [r.name for r in self._read(_LIVE_SEGMENTS, {"modality": modality})]

    def all_segment_names(self) -> set[str]:
        return {r.name for r in self._read(sa.select(t.index_segments.c.name))}

    def swap_segments(self, modality: str, old: Sequence[str], new: str, n_docs: int, n_postings: int) -> None:
        try:
            with self.engine.begin() as conn:
                lock_writers(conn)
                conn.execute(sa.delete(t.index_segments).where(t.index_segments.c.name.in_(list(old))))
                conn.execute(sa.insert(t.index_segments).values(
                    modality=modality, name=new, n_docs=n_docs, n_postings=n_postings, created_at=now()))
        except sa.exc.DBAPIError as exc:
            raise storage_error(exc, "the registry database refused the segment swap") from exc

    # -- the one write path ----------------------------------------------------
    def commit_batch(self, artifacts: Sequence[NewArtifact], works: Sequence[NewWork],
                     segments: Sequence[tuple[str, str, int, int]], planned_ids: dict[str, int],
                     on_commit: Callable[[sa.Connection, list[str]], None] | None = None) -> list[str]:
        """Insert a batch atomically; return the new work ids in order.

        ``planned_ids`` are the artifact ids the segment was written with; the
        transaction checks they are still free, so the index and the table agree.
        """
        stamp = now()
        try:
            with self.engine.begin() as conn:
                lock_writers(conn)
                work_ids = self._insert_batch(conn, stamp, artifacts, works, segments, planned_ids)
                if on_commit is not None:
                    on_commit(conn, work_ids)     # e.g. the ledger entries, in this same transaction
        except sa.exc.DataError as exc:
            # PostgreSQL refuses some text SQLite stores (a NUL character in a title):
            # the batch is refused as input, and nothing of it is written.
            raise InputError(f"the registry database refused this batch: {_first_line(exc)}") from exc
        except sa.exc.DBAPIError as exc:      # e.g. a planned id taken (damage), a lost server
            raise storage_error(exc, "the registry database refused this batch") from exc
        return work_ids

    def _insert_batch(self, conn: sa.Connection, stamp: str, artifacts: Sequence[NewArtifact],
                      works: Sequence[NewWork], segments: Sequence[tuple[str, str, int, int]],
                      planned_ids: dict[str, int]) -> list[str]:
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
        _advance_sequences(conn, max((planned_ids[a.sha256] for a in artifacts), default=0),
                           first + len(works) - 1 if works else 0)
        return work_ids

    def next_artifact_id(self) -> int:
        return int(self._read(sa.select(sa.func.coalesce(sa.func.max(t.artifacts.c.id), 0)))[0][0]) + 1


@dataclass(frozen=True)
class WorkSummary:
    """A work as listed (the service's works page, ``GET /v1/works``)."""

    work_id: str
    title: str
    owner: str
    license: str
    kind: str
    path: str
    files: int
    created_at: str


def _n_files() -> sa.Label:
    """A works query's extra column: how many files the work has."""
    return (sa.select(sa.func.count()).select_from(t.work_artifacts)
            .where(t.work_artifacts.c.work_pk == t.works.c.id).scalar_subquery().label("n_files"))


def _summary(r: sa.Row) -> WorkSummary:
    return WorkSummary(r.work_id, r.title, r.owner, r.license, r.kind, r.root_path, int(r.n_files), r.created_at)
