"""``create_app(settings)``: the FastAPI application. Nothing is created at
import time; everything hangs off ``app.state.service``, made here."""
from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import AsyncIterator, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from copyscope import __version__
from copyscope.errors import (CopyscopeError, LimitError, NotFoundError, PluginError, UsageError,
                              VerificationFailed, WorkspaceError)
from copyscope.processes import KEPT_FREE_HEAP
from copyscope.service.auth import AuthError
from copyscope.service.config import ServiceSettings
from copyscope.service.core import Service
from copyscope.service.models import ErrorOut
from copyscope.service.admission import Admission
from copyscope.service.uploads import BodyLimit

log = logging.getLogger("copyscope.service")

ERRORS = {code: {"model": ErrorOut, "description": text} for code, text in (
    (400, "bad request: malformed multipart data or a bad argument"),
    (401, "no API key, or an invalid or revoked one"),
    (403, "the key lacks the scope this call needs"),
    (404, "no such work, set, job or check in this tenant"),
    (413, "the upload is over the limit"),
    (415, "wrong content type"),
    (422, "the input does not match the schema, or the file cannot be used"),
    (409, "a protected set or tenant with that name exists already"),
    (429, "rate limit exceeded (Retry-After says when to retry)"),
    (503, "busy (too many checks in flight) or the tenant's storage is unavailable; retry after Retry-After"),
)}

DESCRIPTION = """Register works, check items against them (allow / flag / block), and fetch the evidence.

Authenticate with an API key: `Authorization: Bearer cs_k…` or `X-API-Key: cs_k…`.
Scopes: `check`, `register`, `admin` (admin implies the others). Each tenant sees only its own
works, protected sets, jobs and audit log. See docs/service.md."""


def status_of(exc: CopyscopeError) -> int:
    if isinstance(exc, LimitError):
        return 413
    if getattr(exc, "status", None):
        return int(exc.status)
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, UsageError):
        return 400
    if isinstance(exc, VerificationFailed):
        return 422
    if isinstance(exc, (WorkspaceError, PluginError)):
        return 503
    return 422              # InputError: a file that cannot be used


def error(status: int, message: str, detail: list | None = None, headers: dict | None = None) -> JSONResponse:
    body = {"error": message, "status": status}
    if detail is not None:
        body["detail"] = detail
    return JSONResponse(body, status_code=status, headers=headers)


def create_app(settings: ServiceSettings, *, run_jobs: bool = True) -> FastAPI:
    """The service for ``settings``; ``run_jobs=False`` leaves background jobs
    queued (tests that drive the runner by hand)."""
    service = Service(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if run_jobs:
            from copyscope.service.jobs import JobRunner  # noqa: PLC0415
            service.jobs = JobRunner(service)
            service.jobs.start()
        try:
            yield
        finally:
            service.close()

    app = FastAPI(title="copyscope", version=__version__, description=DESCRIPTION, lifespan=lifespan,
                  responses=ERRORS, openapi_url="/v1/openapi.json", docs_url="/v1/docs", redoc_url=None)
    app.state.service = service
    app.state.settings = settings

    @app.exception_handler(CopyscopeError)
    async def copyscope_error(_: Request, exc: CopyscopeError) -> JSONResponse:
        return error(status_of(exc), exc.message)

    @app.exception_handler(AuthError)
    async def auth_error(_: Request, exc: AuthError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        if exc.retry_after is not None:
            headers = {"Retry-After": str(max(1, round(exc.retry_after + 0.5)))}
        return error(exc.status, str(exc), headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [{"loc": [str(x) for x in e.get("loc", ())], "msg": str(e.get("msg", "")),
                     "type": str(e.get("type", ""))} for e in exc.errors()]
        first = problems[0] if problems else {"loc": [], "msg": "invalid request"}
        where = ".".join(x for x in first["loc"] if x not in ("body",)) or "request"
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        return error(422, f"{where}: {first['msg']}{more}", problems)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def internal(_: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error")
        return error(500, "internal error (logged on the server)")

    from copyscope.service.routes import build_router  # noqa: PLC0415
    from copyscope.service.ui import build_ui  # noqa: PLC0415
    app.include_router(build_router())
    build_ui(app)
    app.add_middleware(BodyLimit, limit=settings.max_upload_bytes + 64 * 1024)
    app.add_middleware(Admission, limit=settings.max_inflight_checks, max_wait_ms=settings.max_wait_ms,
                       turn_s=service.turn_s, standing_ms=settings.standing_ms)
    return app


def app_from_environment() -> FastAPI:
    """uvicorn's factory for ``serve --workers N``: settings come from the parent."""
    import os  # noqa: PLC0415
    limit_malloc_arenas()
    return create_app(ServiceSettings.from_json(os.environ["COPYSCOPE_SERVICE_SETTINGS"]))


TRIM_GROWTH = KEPT_FREE_HEAP
"""Anonymous memory a serving process may gain past its size after the last
hand-back before it hands freed memory back again: glibc keeps up to this much
free heap for reuse (``processes.keep_freed_memory``), so only growth beyond
it is memory that reuse will not take back."""


def limit_malloc_arenas(arenas: int = 2, trim_every_s: float = 2.0, growth: int = TRIM_GROWTH) -> bool:
    """Keep a serving process's resident memory at its working set (glibc).

    Checks run in threads, and glibc gives each thread that contends for the
    heap an arena of its own, up to 8 per core; memory freed there is kept for
    reuse, not handed back, so after a burst of checks in flight at once the
    resident size stays at the burst's peak although nothing leaks (the
    engine's caches are bounded: a process checking 3,000 texts in a row stays
    flat). So: two arenas (``mallopt(M_ARENA_MAX)``), and a daemon thread that
    looks every ``trim_every_s`` and hands freed memory back
    (``malloc_trim(0)``) once the process has grown ``growth`` bytes past its
    size after the last hand-back (:class:`GrowthTrim`). Trimming every 2 s
    whatever the size, as before, cost CPU at a steady load: each trim
    returned the free pages that the next checks faulted back in (6.82 → 6.55
    ms of server CPU per text check over six alternating pairs of runs). No-op
    (False) off glibc, and no trim where ``RssAnon`` cannot be read."""
    import ctypes  # noqa: PLC0415
    import ctypes.util  # noqa: PLC0415
    import threading  # noqa: PLC0415
    import time  # noqa: PLC0415
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-8, arenas)                        # M_ARENA_MAX
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return False
    watch = GrowthTrim(lambda: trim(0), anonymous_bytes, growth)

    def trimmer() -> None:
        while True:
            time.sleep(trim_every_s)
            watch.tick()

    threading.Thread(target=trimmer, name="malloc-trim", daemon=True).start()
    return True


class GrowthTrim:
    """Calls ``trim`` when ``resident()`` has grown more than ``growth`` past its
    lowest value since the last call (the working set after the last trim)."""

    def __init__(self, trim: Callable[[], object], resident: Callable[[], int], growth: int) -> None:
        self.trim, self.resident, self.growth = trim, resident, growth
        self.floor = resident()

    def tick(self) -> bool:
        """Whether it trimmed."""
        now = self.resident()
        if now <= self.floor + self.growth:
            self.floor = min(self.floor, now)
            return False
        self.trim()
        self.floor = self.resident()
        return True


def anonymous_bytes() -> int:
    """This process's resident anonymous memory (``RssAnon``; 0 where unknown):
    the heap, not the mapped index files the page cache may drop."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"RssAnon:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0
