"""ServiceStore: the service's own records (tenants, keys, sets, audit, jobs).

Every method that reads or changes a tenant's data takes the tenant id and puts
it in the WHERE clause: an id from another tenant is simply "not found".
SQLite (default) or PostgreSQL, through one SQLAlchemy Core code path.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import sqlalchemy as sa

from copyscope.errors import NotFoundError, StorageError, UsageError, WorkspaceError
from copyscope.service import schema as s

SCOPES = ("register", "check", "admin")
ACTIONS = ("block", "flag")
HEAD = "svc_0001"


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(6)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class Tenant:
    id: str
    name: str
    unlisted_action: str
    created_at: str


@dataclass(frozen=True)
class ApiKey:
    id: str
    tenant_id: str
    name: str
    scopes: tuple[str, ...]
    rate_per_s: float
    burst: int
    created_at: str
    revoked_at: str | None
    key_hash: str = ""

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "scopes": list(self.scopes), "rate_per_s": self.rate_per_s,
                "burst": self.burst, "created_at": self.created_at, "revoked_at": self.revoked_at}


@dataclass(frozen=True)
class ProtectedSet:
    id: str
    tenant_id: str
    name: str
    description: str
    action: str
    threshold: float
    created_at: str
    work_ids: tuple[str, ...] = ()

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "description": self.description, "action": self.action,
                "threshold": self.threshold, "created_at": self.created_at, "work_ids": list(self.work_ids)}


@dataclass(frozen=True)
class Job:
    id: str
    tenant_id: str
    key_id: str
    kind: str
    state: str
    params: dict[str, Any]
    total: int
    done: int
    failed: int
    cancel_requested: bool
    error: str | None
    created_at: str
    updated_at: str

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "state": self.state, "total": self.total, "done": self.done,
                "failed": self.failed, "pending": self.total - self.done - self.failed,
                "cancel_requested": self.cancel_requested, "error": self.error,
                "created_at": self.created_at, "updated_at": self.updated_at}


@dataclass(frozen=True)
class JobItem:
    seq: int
    name: str
    staged: str
    state: str
    result: str | None
    error: str | None

    def public(self) -> dict[str, Any]:
        return {"seq": self.seq, "name": self.name, "state": self.state, "result": self.result, "error": self.error}


def migrate(engine: sa.Engine) -> None:
    from alembic import command  # noqa: PLC0415 - slow import, only at start-up
    from alembic.config import Config  # noqa: PLC0415
    from alembic.runtime.migration import MigrationContext  # noqa: PLC0415
    try:
        with engine.begin() as conn:
            current = MigrationContext.configure(conn, opts={"version_table": "svc_alembic_version"}
                                                 ).get_current_revision()
            if current is not None and current != HEAD and not current.startswith("svc_"):
                raise WorkspaceError(f"the service database was written by a newer copyscope ({current})")
            cfg = Config()
            cfg.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    except sa.exc.OperationalError as exc:
        raise StorageError(f"cannot reach the service database: {exc.orig}") from exc
    except sa.exc.DatabaseError as exc:
        raise StorageError(f"the service database is damaged or unreadable: {exc.orig}") from exc


class Conflict(UsageError):
    """A name that must be unique is taken (HTTP 409)."""

    status = 409


# Built once: every check with a match asks this (see storage/registry.py on why).
_SETS_OF_WORKS = (sa.select(s.set_members.c.work_id, s.protected_sets)
                  .join(s.protected_sets, s.protected_sets.c.id == s.set_members.c.set_id)
                  .where(s.protected_sets.c.tenant_id == sa.bindparam("tenant_id"),
                         s.set_members.c.work_id.in_(sa.bindparam("work_ids", expanding=True)))
                  .order_by(s.protected_sets.c.name))
_AUDIT_INSERT = sa.insert(s.audit_log)


class ServiceStore:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        # SQLite has one writer; threads of one process queue here instead of
        # waiting on the busy timeout (PostgreSQL would not need it, and does not mind).
        self._write = threading.Lock()

    def _tx(self):  # noqa: ANN202 - a context manager yielding a connection in a transaction
        return _Tx(self)

    def _rows(self, stmt: sa.Executable, params: dict[str, Any] | None = None) -> list[sa.Row]:
        try:
            with self.engine.connect() as conn:
                return list(conn.execute(stmt, params))
        except sa.exc.DatabaseError as exc:
            raise StorageError(f"the service database is unreadable: {exc.orig}") from exc

    # -- tenants -------------------------------------------------------------
    def create_tenant(self, name: str, unlisted_action: str = "flag") -> Tenant:
        name = " ".join(name.split())
        if not name or len(name) > 200:
            raise UsageError("a tenant name is 1 to 200 characters")
        if unlisted_action not in ("flag", "allow"):
            raise UsageError("unlisted action is flag or allow")
        if self._rows(sa.select(s.tenants.c.id).where(s.tenants.c.name == name)):
            raise Conflict(f"a tenant named {name!r} exists already")
        tenant = Tenant(new_id("t"), name, unlisted_action, now())
        with self._tx() as conn:
            conn.execute(sa.insert(s.tenants).values(id=tenant.id, name=tenant.name,
                                                     unlisted_action=unlisted_action, created_at=tenant.created_at))
        return tenant

    def tenant(self, tenant_id: str) -> Tenant:
        return self._one_tenant(s.tenants.c.id == tenant_id, f"no tenant {tenant_id}")

    def tenant_by_name(self, name: str) -> Tenant:
        return self._one_tenant(s.tenants.c.name == name, f"no tenant named {name!r}")

    def _one_tenant(self, cond: sa.ColumnElement, missing: str) -> Tenant:
        rows = self._rows(sa.select(s.tenants).where(cond))
        if not rows:
            raise NotFoundError(missing)
        r = rows[0]
        return Tenant(r.id, r.name, r.unlisted_action, r.created_at)

    def tenants(self) -> list[Tenant]:
        return [Tenant(r.id, r.name, r.unlisted_action, r.created_at)
                for r in self._rows(sa.select(s.tenants).order_by(s.tenants.c.created_at, s.tenants.c.id))]

    def set_unlisted_action(self, tenant_id: str, action: str) -> None:
        if action not in ("flag", "allow"):
            raise UsageError("unlisted action is flag or allow")
        with self._tx() as conn:
            conn.execute(sa.update(s.tenants).where(s.tenants.c.id == tenant_id).values(unlisted_action=action))

    # -- API keys --------------------------------------------------------------
    def create_key(self, tenant_id: str, name: str, scopes: Sequence[str], *,
                   rate_per_s: float = 100.0, burst: int = 200) -> tuple[ApiKey, str]:
        """A new key; the secret is returned once and only its hash is kept."""
        self.tenant(tenant_id)
        scopes = tuple(sorted(set(scopes)))
        bad = [x for x in scopes if x not in SCOPES]
        if bad or not scopes:
            raise UsageError(f"scopes are one or more of {', '.join(SCOPES)} (got {', '.join(bad) or 'none'})")
        if not 0 < rate_per_s <= 100_000 or not 1 <= burst <= 1_000_000:
            raise UsageError("rate must be in (0, 100000] requests/s and burst in [1, 1000000]")
        key_id = new_id("k")
        secret = f"cs_{key_id}_{secrets.token_urlsafe(24)}"
        key = ApiKey(key_id, tenant_id, " ".join(name.split())[:200] or key_id, scopes, float(rate_per_s),
                     int(burst), now(), None, hash_key(secret))
        with self._tx() as conn:
            conn.execute(sa.insert(s.api_keys).values(
                id=key.id, tenant_id=tenant_id, name=key.name, key_hash=key.key_hash, scopes=",".join(scopes),
                rate_per_s=key.rate_per_s, burst=key.burst, created_at=key.created_at))
        return key, secret

    def key(self, key_id: str) -> ApiKey | None:
        rows = self._rows(sa.select(s.api_keys).where(s.api_keys.c.id == key_id))
        return _key(rows[0]) if rows else None

    def keys(self, tenant_id: str) -> list[ApiKey]:
        return [_key(r) for r in self._rows(sa.select(s.api_keys).where(s.api_keys.c.tenant_id == tenant_id)
                                            .order_by(s.api_keys.c.created_at, s.api_keys.c.id))]

    def revoke_key(self, tenant_id: str, key_id: str) -> ApiKey:
        with self._tx() as conn:
            n = conn.execute(sa.update(s.api_keys)
                             .where(s.api_keys.c.id == key_id, s.api_keys.c.tenant_id == tenant_id,
                                    s.api_keys.c.revoked_at.is_(None))
                             .values(revoked_at=now())).rowcount
        key = self.key(key_id)
        if key is None or key.tenant_id != tenant_id or (n == 0 and key.revoked_at is None):
            raise NotFoundError(f"no key {key_id}")
        return key

    # -- protected sets ----------------------------------------------------------
    def create_set(self, tenant_id: str, name: str, *, action: str, threshold: float,
                   description: str = "", work_ids: Sequence[str] = ()) -> ProtectedSet:
        name = " ".join(name.split())
        _check_set(name, action, threshold)
        if self._rows(sa.select(s.protected_sets.c.id).where(s.protected_sets.c.tenant_id == tenant_id,
                                                             s.protected_sets.c.name == name)):
            raise Conflict(f"a protected set named {name!r} exists already")
        set_id = new_id("s")
        with self._tx() as conn:
            conn.execute(sa.insert(s.protected_sets).values(
                id=set_id, tenant_id=tenant_id, name=name, description=description[:2000], action=action,
                threshold=float(threshold), created_at=now()))
            _add_members(conn, set_id, work_ids)
        return self.protected_set(tenant_id, set_id)

    def protected_set(self, tenant_id: str, set_id: str) -> ProtectedSet:
        rows = self._rows(sa.select(s.protected_sets).where(s.protected_sets.c.id == set_id,
                                                            s.protected_sets.c.tenant_id == tenant_id))
        if not rows:
            raise NotFoundError(f"no protected set {set_id}")
        members = [r.work_id for r in self._rows(sa.select(s.set_members.c.work_id)
                                                 .where(s.set_members.c.set_id == set_id)
                                                 .order_by(s.set_members.c.work_id))]
        return _set(rows[0], members)

    def protected_sets(self, tenant_id: str) -> list[ProtectedSet]:
        sets = self._rows(sa.select(s.protected_sets).where(s.protected_sets.c.tenant_id == tenant_id)
                          .order_by(s.protected_sets.c.name))
        members: dict[str, list[str]] = {}
        for r in self._rows(sa.select(s.set_members).join(s.protected_sets)
                            .where(s.protected_sets.c.tenant_id == tenant_id).order_by(s.set_members.c.work_id)):
            members.setdefault(r.set_id, []).append(r.work_id)
        return [_set(r, members.get(r.id, [])) for r in sets]

    def update_set(self, tenant_id: str, set_id: str, *, action: str | None = None,
                   threshold: float | None = None, description: str | None = None,
                   add: Sequence[str] = (), remove: Sequence[str] = ()) -> ProtectedSet:
        current = self.protected_set(tenant_id, set_id)
        action = action or current.action
        threshold = current.threshold if threshold is None else threshold
        _check_set(current.name, action, threshold)
        with self._tx() as conn:
            conn.execute(sa.update(s.protected_sets).where(s.protected_sets.c.id == set_id,
                                                           s.protected_sets.c.tenant_id == tenant_id)
                         .values(action=action, threshold=float(threshold),
                                 description=current.description if description is None else description[:2000]))
            _add_members(conn, set_id, [w for w in add if w not in current.work_ids])
            if remove:
                conn.execute(sa.delete(s.set_members).where(s.set_members.c.set_id == set_id,
                                                            s.set_members.c.work_id.in_(list(remove))))
        return self.protected_set(tenant_id, set_id)

    def delete_set(self, tenant_id: str, set_id: str) -> None:
        self.protected_set(tenant_id, set_id)
        with self._tx() as conn:
            conn.execute(sa.delete(s.set_members).where(s.set_members.c.set_id == set_id))
            conn.execute(sa.delete(s.protected_sets).where(s.protected_sets.c.id == set_id,
                                                           s.protected_sets.c.tenant_id == tenant_id))

    def sets_for_works(self, tenant_id: str, work_ids: Sequence[str]) -> dict[str, list[ProtectedSet]]:
        if not work_ids:
            return {}
        out: dict[str, list[ProtectedSet]] = {}
        for r in self._rows(_SETS_OF_WORKS, {"tenant_id": tenant_id, "work_ids": sorted(set(work_ids))}):
            out.setdefault(r.work_id, []).append(_set(r, []))
        return out

    # -- audit -------------------------------------------------------------------
    def append_audit(self, rows: Sequence[dict[str, Any]]) -> None:
        """One transaction for a check or a batch: a decision is returned only
        after its audit record is committed."""
        with self._tx() as conn:
            conn.execute(_AUDIT_INSERT, [{**r, "policy_json": json.dumps(r["policy_json"], sort_keys=True),
                                                   "matches_json": json.dumps(r["matches_json"], sort_keys=True)}
                                                  for r in rows])

    def audit(self, tenant_id: str, *, after: int = 0, limit: int = 1000,
              since: str | None = None, until: str | None = None) -> list[dict[str, Any]]:
        q = (sa.select(s.audit_log).where(s.audit_log.c.tenant_id == tenant_id, s.audit_log.c.seq > after)
             .order_by(s.audit_log.c.seq).limit(limit))
        if since:
            q = q.where(s.audit_log.c.time >= since)
        if until:
            q = q.where(s.audit_log.c.time < until)
        return [_audit(r) for r in self._rows(q)]

    def iter_audit(self, tenant_id: str, **filters: Any) -> Iterator[dict[str, Any]]:
        """Every matching record, oldest first, read in pages (an export of millions)."""
        after = 0
        while True:
            page = self.audit(tenant_id, after=after, limit=1000, **filters)
            yield from page
            if len(page) < 1000:
                return
            after = page[-1]["seq"]

    def audit_record(self, tenant_id: str, check_id: str) -> dict[str, Any]:
        rows = self._rows(sa.select(s.audit_log).where(s.audit_log.c.check_id == check_id,
                                                       s.audit_log.c.tenant_id == tenant_id))
        if not rows:
            raise NotFoundError(f"no check {check_id}")
        return _audit(rows[0])

    # -- jobs --------------------------------------------------------------------
    def create_job(self, tenant_id: str, key_id: str, kind: str, params: dict[str, Any],
                   items: Sequence[tuple[str, str]]) -> Job:
        """``items``: (name, staged path) for uploads already durable on disk."""
        job_id = new_id("j")
        stamp = now()
        with self._tx() as conn:
            conn.execute(sa.insert(s.jobs).values(
                id=job_id, tenant_id=tenant_id, key_id=key_id, kind=kind, state="queued",
                params_json=json.dumps(params, sort_keys=True), total=len(items), cancel_requested=0,
                created_at=stamp, updated_at=stamp))
            if items:
                conn.execute(sa.insert(s.job_items), [
                    {"job_id": job_id, "seq": i, "name": name, "staged": staged, "state": "pending"}
                    for i, (name, staged) in enumerate(items)])
        return self.job(tenant_id, job_id)

    def job(self, tenant_id: str | None, job_id: str) -> Job:
        q = sa.select(s.jobs).where(s.jobs.c.id == job_id)
        if tenant_id is not None:
            q = q.where(s.jobs.c.tenant_id == tenant_id)
        rows = self._rows(q)
        if not rows:
            raise NotFoundError(f"no job {job_id}")
        counts = {r.state: r.n for r in self._rows(
            sa.select(s.job_items.c.state, sa.func.count().label("n")).where(s.job_items.c.job_id == job_id)
            .group_by(s.job_items.c.state))}
        return _job(rows[0], counts)

    def jobs(self, tenant_id: str, limit: int = 100) -> list[Job]:
        rows = self._rows(sa.select(s.jobs.c.id).where(s.jobs.c.tenant_id == tenant_id)
                          .order_by(s.jobs.c.created_at.desc(), s.jobs.c.id).limit(limit))
        return [self.job(tenant_id, r.id) for r in rows]

    def unfinished_jobs(self) -> list[Job]:
        rows = self._rows(sa.select(s.jobs.c.id).where(s.jobs.c.state.in_(["queued", "running"]))
                          .order_by(s.jobs.c.created_at, s.jobs.c.id))
        return [self.job(None, r.id) for r in rows]

    def job_items(self, job_id: str, *, state: str | None = None, limit: int | None = None,
                  after: int = -1) -> list[JobItem]:
        q = sa.select(s.job_items).where(s.job_items.c.job_id == job_id, s.job_items.c.seq > after)
        if state:
            q = q.where(s.job_items.c.state == state)
        q = q.order_by(s.job_items.c.seq)
        if limit:
            q = q.limit(limit)
        return [JobItem(r.seq, r.name, r.staged, r.state, r.result, r.error) for r in self._rows(q)]

    def set_job_state(self, job_id: str, state: str, error: str | None = None) -> None:
        with self._tx() as conn:
            conn.execute(sa.update(s.jobs).where(s.jobs.c.id == job_id)
                         .values(state=state, error=error, updated_at=now()))

    def finish_items(self, job_id: str, results: Sequence[tuple[int, str, str | None, str | None]]) -> None:
        """(seq, state, result, error) for items a runner has finished, in one transaction."""
        if not results:
            return
        with self._tx() as conn:
            for seq, state, result, error in results:
                conn.execute(sa.update(s.job_items)
                             .where(s.job_items.c.job_id == job_id, s.job_items.c.seq == seq)
                             .values(state=state, result=result, error=error))
            conn.execute(sa.update(s.jobs).where(s.jobs.c.id == job_id).values(updated_at=now()))

    def request_cancel(self, tenant_id: str, job_id: str) -> Job:
        job = self.job(tenant_id, job_id)
        if job.state in ("queued", "running"):
            with self._tx() as conn:
                conn.execute(sa.update(s.jobs).where(s.jobs.c.id == job_id, s.jobs.c.tenant_id == tenant_id)
                             .values(cancel_requested=1, updated_at=now()))
        return self.job(tenant_id, job_id)


class _Tx:
    def __init__(self, store: ServiceStore) -> None:
        self.store = store

    def __enter__(self) -> sa.Connection:
        self.store._write.acquire()
        try:
            self.ctx = self.store.engine.begin()
            return self.ctx.__enter__()
        except BaseException:
            self.store._write.release()
            raise

    def __exit__(self, *exc: Any) -> None:
        try:
            self.ctx.__exit__(*exc)
        except sa.exc.DatabaseError as err:
            raise StorageError(f"the service database refused a write: {err.orig}") from err
        finally:
            self.store._write.release()


def _check_set(name: str, action: str, threshold: float) -> None:
    if not name or len(name) > 200:
        raise UsageError("a protected set name is 1 to 200 characters")
    if action not in ACTIONS:
        raise UsageError(f"a protected set's action is block or flag (got {action!r})")
    if not 0.0 <= float(threshold) <= 1.0:
        raise UsageError("a protected set's threshold is a score between 0 and 1")


def _add_members(conn: sa.Connection, set_id: str, work_ids: Sequence[str]) -> None:
    ids = sorted({w for w in work_ids})
    if ids:
        conn.execute(sa.insert(s.set_members), [{"set_id": set_id, "work_id": w} for w in ids])


def _key(r: sa.Row) -> ApiKey:
    return ApiKey(r.id, r.tenant_id, r.name, tuple(r.scopes.split(",")), r.rate_per_s, r.burst,
                  r.created_at, r.revoked_at, r.key_hash)


def _set(r: sa.Row, members: Sequence[str]) -> ProtectedSet:
    return ProtectedSet(r.id, r.tenant_id, r.name, r.description, r.action, float(r.threshold),
                        r.created_at, tuple(members))


def _job(r: sa.Row, counts: dict[str, int]) -> Job:
    return Job(r.id, r.tenant_id, r.key_id, r.kind, r.state, json.loads(r.params_json), r.total,
               counts.get("done", 0), counts.get("failed", 0), bool(r.cancel_requested), r.error,
               r.created_at, r.updated_at)


def _audit(r: sa.Row) -> dict[str, Any]:
    return {"seq": r.seq, "check_id": r.check_id, "time": r.time, "key_id": r.key_id,
            "input": {"sha256": r.input_sha256, "name": r.input_name, "size": r.input_size},
            "decision": r.decision, "policy": json.loads(r.policy_json), "matches": json.loads(r.matches_json),
            "evidence": bool(r.evidence)}
