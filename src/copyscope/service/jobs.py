"""Background jobs: bulk registration and bulk checks, resumable after a crash.

A job's uploads are staged durably and its items committed before the client
gets the job id. The runner works through pending items in chunks; after each
chunk commits in the tenant's registry, the items are marked done in the service
database. A crash between the two is repaired on restart: a pending item whose
staged path is already a registered work's root is marked done with that work
(never registered twice). Cancelling stops at the next chunk; the items left
pending are listed as such.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

from copyscope.errors import CopyscopeError
from copyscope.service.core import Service, upload_key
from copyscope.service.store import Job, JobItem
from copyscope.service.tenants import remove_tree

log = logging.getLogger("copyscope.service.jobs")
CHUNK = 16


class JobRunner:
    def __init__(self, service: Service) -> None:
        self.service = service
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock_fd: int | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="copyscope-jobs", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self._lock_fd is not None:
            os.close(self._lock_fd)         # closing drops the flock
            self._lock_fd = None

    def _hold_runner_lock(self) -> bool:
        """One runner per home: with ``serve --workers N`` the other processes
        wait here, and take over if the holder dies (the kernel drops its lock)."""
        if self._lock_fd is not None:
            return True
        fd = os.open(self.service.settings.home / "jobs.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._lock_fd = fd
        return True

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            if not self._hold_runner_lock():
                self._wake.wait(timeout=2.0)
                continue
            try:
                worked = self.run_pending()
            except Exception:  # noqa: BLE001 - a runner must outlive one bad job
                log.exception("job runner")
                worked = False
            if not worked:
                self._wake.wait(timeout=2.0)

    def run_pending(self) -> bool:
        """Run every queued or interrupted job once; True if any was found."""
        jobs = self.service.store.unfinished_jobs()
        for job in jobs:
            if self._stop.is_set():
                break
            self.run(job)
        return bool(jobs)

    def run(self, job: Job) -> None:
        store = self.service.store
        store.set_job_state(job.id, "running")
        try:
            if job.kind == "register":
                finished = self._register(job)
            else:
                finished = self._check(job)
        except CopyscopeError as exc:
            store.set_job_state(job.id, "failed", exc.message)
            return
        if finished == "stopped":
            return                      # the server is stopping: the job stays running, resumed next start
        store.set_job_state(job.id, finished)
        if finished == "done":
            stage = job.params.get("stage")
            if stage:
                remove_tree(self.service.tenants.staging(job.tenant_id) / stage)

    def _chunks(self, job: Job):  # noqa: ANN202 - yields lists of pending items, or a final state
        store = self.service.store
        after = -1
        while True:
            if self._stop.is_set():
                yield "stopped"
                return
            if store.job(job.tenant_id, job.id).cancel_requested:
                yield "cancelled"
                return
            items = store.job_items(job.id, state="pending", limit=CHUNK, after=after)
            if not items:
                return
            after = items[-1].seq
            yield items

    def _register(self, job: Job) -> str:
        p: dict[str, Any] = job.params
        store = self.service.store
        with self.service.tenants.writer(job.tenant_id) as ws:
            for items in self._chunks(job):
                if isinstance(items, str):
                    return items
                keys = {i.seq: upload_key(p["stage"], i.seq, i.name) for i in items}
                already = ws.registry.work_ids_by_root(list(keys.values()))
                results = [(i.seq, "done", already[keys[i.seq]], None) for i in items if keys[i.seq] in already]
                todo = [i for i in items if keys[i.seq] not in already and Path(i.staged).exists()]
                results += [(i.seq, "failed", None, "staged upload is missing") for i in items
                            if keys[i.seq] not in already and not Path(i.staged).exists()]
                if todo:
                    outcome = ws.register_uploads(
                        [(Path(i.staged), i.name, keys[i.seq]) for i in todo], owner=p["owner"],
                        license=p.get("license"), record=Path(p["record_path"]) if p.get("record_path") else None,
                        derived_from=p.get("derived_from") or (), private=bool(p.get("private")))
                    done = {w.path: w.work_id for w in outcome.works}
                    for i in todo:
                        if keys[i.seq] in done:
                            results.append((i.seq, "done", done[keys[i.seq]], None))
                        else:
                            results.append((i.seq, "failed", None, _error_for(i, outcome.errors)))
                store.finish_items(job.id, results)
        return "done"

    def _check(self, job: Job) -> str:
        from copyscope.service.auth import Principal  # noqa: PLC0415
        from copyscope.service.core import Upload  # noqa: PLC0415
        who = Principal(job.tenant_id, job.key_id, ("check",))
        only = job.params.get("only_sets") or ()
        for items in self._chunks(job):
            if isinstance(items, str):
                return items
            uploads, results = [], []
            for i in items:
                try:
                    uploads.append((i, Upload(i.name, Path(i.staged).read_bytes())))
                except OSError:
                    results.append((i.seq, "failed", None, "staged upload is missing"))
            decided = self.service.check(who, [u for _, u in uploads], only_sets=only) if uploads else []
            for (i, _), d in zip(uploads, decided):
                if d.get("decision") is None:
                    results.append((i.seq, "failed", None, d.get("error")))
                else:
                    results.append((i.seq, "done", json.dumps({"check_id": d["check_id"], "decision": d["decision"],
                                                               "works": [m["work_id"] for m in d["matches"]]}), None))
            self.service.store.finish_items(job.id, results)
        return "done"


def _error_for(item: JobItem, errors: list[str]) -> str:
    return next((e for e in errors if e.startswith(item.name + ":")), "not registered")
