"""The service's operations, shared by the HTTP API and the web UI.

Routes parse a request into these calls and render what they return; this
module calls ``copyscope.api``/the workspace and the service store, and holds no
HTTP types. Every call takes the authenticated ``Principal``: its tenant picks
the workspace and filters every service record.
"""
from __future__ import annotations

import collections
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from copyscope.errors import LimitError, NotFoundError, StorageError, UsageError
from copyscope.evidence import Result
from copyscope.model import Artifact
from copyscope.service.auth import Authenticator, Principal
from copyscope.service.config import ServiceSettings
from copyscope.service.policy import decide
from copyscope.service.store import ServiceStore, Tenant, migrate, new_id, now
from copyscope.service.tenants import TenantWorkspaces, remove_tree
from copyscope.service.uploads import safe_name, write_durable
from copyscope.storage.durable import fsync_dir


TENANT_CACHE_S = 5.0


@dataclass(frozen=True)
class Upload:
    name: str
    data: bytes


MIN_TURNS = 8       # turns seen before their median estimates a wait: a fresh process's first are cold


class Turns:
    """A lock whose waiters are served in arrival order. ``threading.Lock`` lets
    the thread that releases it take it straight back, so a batch could keep it
    from a single check queued behind its first item."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._queue: collections.deque[threading.Event] = collections.deque()
        self._held = False
        self._since = 0.0
        self._holds: collections.deque[float] = collections.deque(maxlen=32)

    def __enter__(self) -> None:
        with self._guard:
            if not self._held:
                self._held = True
                self._since = time.perf_counter()
                return
            turn = threading.Event()
            self._queue.append(turn)
        turn.wait()                              # handed over by __exit__, still held
        self._since = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        held = time.perf_counter() - self._since
        with self._guard:
            self._holds.append(held)
            if self._queue:
                self._queue.popleft().set()
            else:
                self._held = False

    def typical_hold_s(self) -> float:
        """The median of the last 32 turns: what a waiter waits per check ahead of
        it. A median, because one turn stretched by a stall of the machine says
        nothing about the turns queued behind it. 0 (no estimate) until
        ``MIN_TURNS`` turns are seen: a fresh process's first turns open the
        workspace and read cold pages, and a median of three of them refused
        2-16 checks of a burst at start-up (benchmarks/README.md)."""
        with self._guard:
            holds = sorted(self._holds)
        return holds[len(holds) // 2] if len(holds) >= MIN_TURNS else 0.0


class Service:
    def __init__(self, settings: ServiceSettings) -> None:
        from copyscope.storage.registry import make_engine  # noqa: PLC0415
        self.settings = settings
        settings.home.mkdir(parents=True, exist_ok=True)
        self.engine = make_engine(settings.service_db_url)
        migrate(self.engine)
        self.store = ServiceStore(self.engine)
        self.auth = Authenticator(self.store)
        self.tenants = TenantWorkspaces(settings)
        self.jobs = None              # a JobRunner, started by the app's lifespan
        self._tenant_cache: dict[str, tuple[float, Tenant]] = {}
        # One check computes at a time in this process. A check is CPU-bound under
        # the GIL: two at once take as long as one after the other, plus the cost
        # of the threads fighting for the lock. Waiting threads sleep in the OS.
        self._computing = Turns()

    def close(self) -> None:
        if self.jobs is not None:
            self.jobs.stop()
        self.tenants.close()
        self.engine.dispose()

    # -- tenants and keys (the CLI bootstraps; admins manage their own tenant) --------
    def create_tenant(self, name: str, unlisted_action: str = "flag") -> tuple[Tenant, str]:
        """A tenant, its workspace, and a first key with every scope (returned once)."""
        tenant = self.store.create_tenant(name, unlisted_action)
        self.tenants.create(tenant.id)
        _, secret = self.store.create_key(tenant.id, "admin", ["admin", "check", "register"],
                                          rate_per_s=self.settings.rate_per_s, burst=self.settings.burst)
        return tenant, secret

    def create_key(self, who: Principal, name: str, scopes: Sequence[str], rate_per_s: float | None = None,
                   burst: int | None = None) -> tuple[dict[str, Any], str]:
        key, secret = self.store.create_key(who.tenant_id, name, scopes,
                                            rate_per_s=rate_per_s or self.settings.rate_per_s,
                                            burst=burst or self.settings.burst)
        return key.public(), secret

    def revoke_key(self, who: Principal, key_id: str) -> dict[str, Any]:
        key = self.store.revoke_key(who.tenant_id, key_id)
        self.auth.forget(key_id)
        return key.public()

    # -- check ---------------------------------------------------------------------
    def turn_s(self) -> float:
        """How long one check typically computes here (the median of the last 32):
        a new check waits about this long per check ahead of it (admission
        control uses it)."""
        return self._computing.typical_hold_s()

    def check(self, who: Principal, uploads: Sequence[Upload], *, only_sets: Sequence[str] = (),
              keep_evidence: bool | None = None) -> list[dict[str, Any]]:
        """One decision per upload, each audited before it is returned."""
        started = time.perf_counter()
        for set_id in only_sets:
            self.store.protected_set(who.tenant_id, set_id)       # 404 for another tenant's set
        tenant = self._tenant(who.tenant_id)
        keep = self.settings.keep_evidence if keep_evidence is None else keep_evidence
        outcomes = []
        for up in uploads:
            art = Artifact(up.data, origin=safe_name(up.name))
            outcomes.append((art, *self._check_item(who.tenant_id, art, media=False)))
        matched = {m.work.work_id for _, r, _ in outcomes for m in r.copies if m.work}
        sets = self.store.sets_for_works(who.tenant_id, sorted(matched))
        out, rows = [], []
        for art, result, took in outcomes:
            query = next((i for i in result.inputs if i.role == "query"), None)
            item: dict[str, Any] = {"input": {"name": art.origin, "sha256": art.sha256, "size": art.size,
                                              "media_type": query.media_type if query else None}}
            if query is None:
                item.update(decision=None, error=result.errors[0] if result.errors else "not checkable")
                out.append(item)
                continue
            d = decide(_best_per_work(result.copies), sets, tenant.unlisted_action, only_sets)
            check_id = new_id("c")
            evidence = bool(keep and d.matches)
            if evidence:
                self._keep_query(who.tenant_id, check_id, art)
            for m in d.matches:
                m["report"] = f"/v1/checks/{check_id}/report" if evidence else None
            item.update(check_id=check_id, decision=d.decision, policy=d.policy, matches=d.matches,
                        took_ms=round(took * 1000, 2))
            out.append(item)
            rows.append({"check_id": check_id, "tenant_id": who.tenant_id, "key_id": who.key_id, "time": now(),
                         "input_sha256": art.sha256, "input_name": art.origin, "input_size": art.size,
                         "decision": d.decision, "policy_json": d.policy,
                         "matches_json": [{k: m[k] for k in ("work_id", "score", "action", "sets")}
                                          for m in d.matches],
                         "evidence": int(evidence)})
        if rows:
            self.store.append_audit(rows)
        if len(out) == 1:
            out[0]["total_ms"] = round((time.perf_counter() - started) * 1000, 2)
        return out

    def _tenant(self, tenant_id: str) -> Tenant:
        """The tenant's policy, re-read at most every ``TENANT_CACHE_S`` (a check
        is a few milliseconds; a query per check is a visible share of it)."""
        now_s = time.monotonic()
        hit = self._tenant_cache.get(tenant_id)
        if hit is None or now_s - hit[0] > TENANT_CACHE_S:
            hit = self._tenant_cache[tenant_id] = (now_s, self.store.tenant(tenant_id))
        return hit[1]

    def _keep_query(self, tenant_id: str, check_id: str, art: Artifact) -> None:
        # Its name and SHA-256 are in the audit record; the file is the only copy of the bytes.
        write_durable(self.tenants.evidence_dir(tenant_id, check_id) / "query.bin", art.data)

    def check_record(self, who: Principal, check_id: str) -> dict[str, Any]:
        return self.store.audit_record(who.tenant_id, check_id)

    def report_html(self, who: Principal, check_id: str) -> str:
        """The evidence report of a check: the kept query checked again with the
        renderings (side-by-side images, passages), then cached."""
        record, d = self._evidence(who, check_id)
        cached = d / "report.html"
        if cached.exists():
            return cached.read_text(encoding="utf-8")
        from copyscope.report import render_html  # noqa: PLC0415
        html = render_html(self._bundle(who, check_id, record, d), generated_at=record["time"])
        write_durable(cached, html.encode("utf-8"))
        return html

    def evidence_bundle(self, who: Principal, check_id: str) -> dict[str, Any]:
        return self._bundle(who, check_id, *self._evidence(who, check_id))

    def _evidence(self, who: Principal, check_id: str) -> tuple[dict[str, Any], Path]:
        """The check's audit record and the directory of its kept query (404 when none was kept)."""
        record = self.store.audit_record(who.tenant_id, check_id)
        d = self.tenants.evidence_dir(who.tenant_id, check_id)
        if not record["evidence"] or not (d / "query.bin").exists():
            raise NotFoundError(f"check {check_id} kept no evidence (decision {record['decision']})")
        return record, d

    def _bundle(self, who: Principal, check_id: str, record: dict[str, Any], d: Path) -> dict[str, Any]:
        art = Artifact((d / "query.bin").read_bytes(), origin=record["input"]["name"])
        if art.sha256 != record["input"]["sha256"]:
            raise StorageError(f"the kept query of check {check_id} is damaged (hash mismatch)")
        return self._check_item(who.tenant_id, art, media=True)[0].bundle()

    def _check_item(self, tenant_id: str, art: Artifact, *, media: bool) -> tuple[Result, float]:
        """One item checked in this process's turn, and the seconds the check took.
        The turn is per item, so a batch or a background scan never holds it long;
        the workspace is borrowed inside it, so one warm workspace (caches, mapped
        segments) serves the process instead of one per waiting thread."""
        with self._computing, self.tenants.reader(tenant_id) as ws:
            t0 = time.perf_counter()
            return ws.check_artifacts([art], media=media), time.perf_counter() - t0

    # -- works ---------------------------------------------------------------------
    def register(self, who: Principal, uploads: Sequence[Upload], *, owner: str, license: str | None = None,
                 title: str | None = None, record: dict[str, Any] | None = None,
                 derived_from: Sequence[str] = (), private: bool = False) -> dict[str, Any]:
        """Register now (a few files); a bulk load goes through ``submit_job``."""
        if not uploads:
            raise UsageError("no files to register")
        if len(uploads) > self.settings.max_batch_files:
            raise LimitError(f"{len(uploads)} files is over the {self.settings.max_batch_files}-file limit "
                             "of a direct registration; submit a registration job")
        stage = self.tenants.staging(who.tenant_id) / new_id("r")
        try:
            paths = self._stage(stage, uploads)
            record_path = self._stage_record(stage, record)
            staged = [(p, p.name, upload_key(stage.name, i, p.name)) for i, p in enumerate(paths)]
            with self.tenants.writer(who.tenant_id) as ws:
                outcome = ws.register_uploads(staged, owner=owner, license=license or None, title=title,
                                              record=record_path, derived_from=list(derived_from), private=private)
                receipts = {w.work_id: json.loads(Path(w.receipt).read_text(encoding="utf-8"))
                            for w in outcome.works if w.receipt}
            names = {key: name for _, name, key in staged}
            return {"works": [{"work_id": w.work_id, "title": w.title, "name": names.get(w.path, w.title),
                               "files": w.files, "ledger_index": w.ledger_index,
                               "receipt": receipts.get(w.work_id)} for w in outcome.works],
                    "errors": outcome.errors, "warnings": outcome.warnings}
        finally:
            remove_tree(stage)

    def _stage(self, stage: Path, uploads: Sequence[Upload]) -> list[Path]:
        paths = []
        for i, up in enumerate(uploads):
            p = stage / f"{i:05d}" / safe_name(up.name)
            write_durable(p, up.data)
            paths.append(p)
        stage.mkdir(parents=True, exist_ok=True)
        fsync_dir(stage)
        return paths

    def _stage_record(self, stage: Path, record: dict[str, Any] | None) -> Path | None:
        if record is None:
            return None
        p = stage / "record.json"
        write_durable(p, json.dumps(record).encode())
        return p

    def works(self, who: Principal, *, q: str = "", limit: int = 50, offset: int = 0) -> dict[str, Any]:
        with self.tenants.reader(who.tenant_id) as ws:
            total, works = ws.registry.search_works(q, limit=limit, offset=offset)
        return {"total": total, "limit": limit, "offset": offset,
                "works": [_work_json(w) for w in works]}

    def work(self, who: Principal, work_id: str) -> dict[str, Any]:
        from copyscope import api  # noqa: PLC0415
        with self.tenants.reader(who.tenant_id) as ws:
            info = ws.registry.work_info(work_id)
            record, record_sha = ws.registry.work_record(work_id)
            receipts = api.receipts(ws, work_id)
        sets = self.store.sets_for_works(who.tenant_id, [work_id]).get(work_id, [])
        return {**_work_json(info), "record": record, "record_sha256": record_sha,
                "sets": [{"id": x.id, "name": x.name, "action": x.action} for x in sets],
                "receipts": receipts}

    def package(self, who: Principal, work_id: str, out: Path) -> Path:
        from copyscope import api  # noqa: PLC0415
        with self.tenants.reader(who.tenant_id) as ws:
            ws.registry.work_info(work_id)
            return api.export_package(ws, work_id, out)

    # -- protected sets --------------------------------------------------------------
    def create_set(self, who: Principal, name: str, *, action: str, threshold: float, description: str = "",
                   work_ids: Sequence[str] = ()) -> dict[str, Any]:
        self._require_works(who, work_ids)
        return self.store.create_set(who.tenant_id, name, action=action, threshold=threshold,
                                     description=description, work_ids=work_ids).public()

    def update_set(self, who: Principal, set_id: str, **changes: Any) -> dict[str, Any]:
        self._require_works(who, changes.get("add") or ())
        return self.store.update_set(who.tenant_id, set_id, **changes).public()

    def _require_works(self, who: Principal, work_ids: Sequence[str]) -> None:
        if not work_ids:
            return
        with self.tenants.reader(who.tenant_id) as ws:
            missing = sorted(set(work_ids) - ws.registry.existing_work_ids(work_ids))
        if missing:
            raise NotFoundError(f"no work {missing[0]} in this tenant"
                                + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))

    # -- background jobs ----------------------------------------------------------------
    def submit_job(self, who: Principal, kind: str, uploads: Sequence[Upload],
                   params: dict[str, Any]) -> dict[str, Any]:
        """Stage every upload durably, then commit the job: once this returns, a
        crash or restart resumes the job where it stopped."""
        if kind not in ("register", "check"):
            raise UsageError(f"a job kind is register or check (got {kind!r})")
        if not uploads:
            raise UsageError("a job needs at least one file")
        if len(uploads) > self.settings.max_job_files:
            raise LimitError(f"{len(uploads)} files is over the {self.settings.max_job_files}-file job limit")
        for set_id in params.get("only_sets") or ():
            self.store.protected_set(who.tenant_id, set_id)
        self._require_works(who, params.get("derived_from") or ())
        stage_name = new_id("s")
        stage = self.tenants.staging(who.tenant_id) / stage_name
        paths = self._stage(stage, uploads)
        if params.get("record") is not None:
            params = {**params, "record_path": str(self._stage_record(stage, params["record"]))}
            params.pop("record")
        job = self.store.create_job(who.tenant_id, who.key_id, kind, {**params, "stage": stage_name},
                                    [(safe_name(up.name), str(p)) for up, p in zip(uploads, paths)])
        if self.jobs is not None:
            self.jobs.wake()
        return job.public()

    def job(self, who: Principal, job_id: str, *, items: bool = False) -> dict[str, Any]:
        job = self.store.job(who.tenant_id, job_id)
        out = job.public()
        if items:
            out["items"] = [i.public() for i in self.store.job_items(job_id)]
        return out

    def jobs_list(self, who: Principal, limit: int = 50) -> list[dict[str, Any]]:
        return [j.public() for j in self.store.jobs(who.tenant_id, limit)]

    def cancel_job(self, who: Principal, job_id: str) -> dict[str, Any]:
        job = self.store.request_cancel(who.tenant_id, job_id)
        if self.jobs is not None:
            self.jobs.wake()
        return job.public()


def _best_per_work(copies: Sequence[Any]) -> list[dict[str, Any]]:
    best: dict[str, dict[str, Any]] = {}
    for m in copies:
        if m.work is None:
            continue
        cur = best.get(m.work.work_id)
        if cur is None or m.score > cur["score"]:
            best[m.work.work_id] = {
                "work_id": m.work.work_id, "title": m.work.title, "owner": m.work.owner,
                "license": m.work.license, "registered_path": m.registered_path, "modality": m.modality,
                "score": round(float(m.score), 4),
                "likelihood_ratio": m.extra.get("likelihood_ratio"),
                "coverage": {"query": round(m.coverage_query, 4), "registered": round(m.coverage_registered, 4)},
            }
    return sorted(best.values(), key=lambda m: (-m["score"], m["work_id"]))


def _work_json(w: Any) -> dict[str, Any]:
    return {"work_id": w.work_id, "title": w.title, "owner": w.owner, "license": w.license,
            "created_at": getattr(w, "created_at", None), "files": getattr(w, "files", None),
            "kind": getattr(w, "kind", None)}


def upload_key(stage: str, seq: int, name: str) -> str:
    """The root path an uploaded work is registered under: unique per upload,
    so a resumed job finds what a crash had already committed."""
    return f"upload:{stage}/{seq:05d}/{name}"

