"""Each tenant's workspace, opened once and shared by the requests of a process.

A tenant owns a whole workspace (``home/tenants/<id>``: its own registry file or
PostgreSQL schema, blobs, index and ledger keys), so isolation does not depend on
every query remembering a WHERE clause. Checks are answered by a small pool of
workspaces per tenant (a workspace keeps caches that are not thread-safe);
registrations open their own, and the pool sees new index segments on its next
check.
"""
from __future__ import annotations

import queue
import shutil
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from copyscope.errors import NotFoundError
from copyscope.plugins import Modality, load_modalities
from copyscope.processes import read_ahead
from copyscope.service.config import ServiceSettings
from copyscope.settings import Settings

if TYPE_CHECKING:
    from copyscope.workspace import Workspace


class TenantWorkspaces:
    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self._pools: dict[str, queue.LifoQueue] = {}
        self._all: list[Workspace] = []
        self._lock = threading.Lock()
        self._modalities: dict[str, Modality] | None = None
        self._warmed: set[str] = set()

    def modalities(self) -> dict[str, Modality]:
        # One set of plugin objects for every tenant: they are stateless analysers.
        if self._modalities is None:
            self._modalities = load_modalities(Settings(home=self.settings.home, image_model=self.settings.image_model))
        return self._modalities

    def create(self, tenant_id: str) -> None:
        from copyscope import api  # noqa: PLC0415
        api.init(self.settings.tenant_settings(tenant_id), self.modalities()).close()

    def _open(self, tenant_id: str) -> Workspace:
        from copyscope import api  # noqa: PLC0415
        settings = self.settings.tenant_settings(tenant_id)
        if not settings.home.exists():
            raise NotFoundError(f"no workspace for tenant {tenant_id}")
        return api.open_workspace(settings, self.modalities())

    @contextmanager
    def reader(self, tenant_id: str) -> Iterator[Workspace]:
        """A workspace for checks and reads, borrowed from the tenant's pool."""
        with self._lock:
            pool = self._pools.get(tenant_id)
            if pool is None:
                pool = self._pools[tenant_id] = queue.LifoQueue()
                for _ in range(self.settings.readers_per_tenant):
                    pool.put(None)          # opened lazily, on first use
        ws = pool.get()
        try:
            if ws is None:
                ws = self._open(tenant_id)
                with self._lock:
                    self._all.append(ws)
                    warm = tenant_id not in self._warmed and self.settings.read_ahead_bytes > 0
                    self._warmed.add(tenant_id)
                if warm:
                    # The first check of a tenant pays for cold pages; the next
                    # ones should not (a restarted server is slow for minutes else).
                    threading.Thread(target=read_ahead, args=(ws.hot_files(), self.settings.read_ahead_bytes),
                                     name=f"read-ahead-{tenant_id}", daemon=True).start()
            yield ws
        finally:
            pool.put(ws)

    @contextmanager
    def writer(self, tenant_id: str) -> Iterator[Workspace]:
        """A workspace of its own, for a registration (the workspace file lock
        makes writers of one tenant take turns, across processes too)."""
        ws = self._open(tenant_id)
        try:
            yield ws
        finally:
            ws.close()

    def staging(self, tenant_id: str) -> Path:
        path = self.settings.tenant_home(tenant_id) / "staging"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def evidence_dir(self, tenant_id: str, check_id: str) -> Path:
        return self.settings.tenant_home(tenant_id) / "checks" / check_id[-2:] / check_id

    def close(self) -> None:
        with self._lock:
            for ws in self._all:
                ws.close()
            self._all.clear()
            self._pools.clear()


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
