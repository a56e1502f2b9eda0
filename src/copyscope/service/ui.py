"""The web UI: server-rendered pages at ``/`` and ``/ui/…`` (Jinja2, htmx).

Pages call ``Service`` and the ``svc.store`` readers exactly as the /v1 routes
do; nothing here touches SQL or the matching code. The API key a user signs in
with is kept in an HttpOnly, SameSite=Strict cookie and checked on every
request; every state-changing form is a POST carrying a CSRF token (double
submit: a random token in a cookie and in a hidden field, compared in constant
time). Errors are shown as pages or, for htmx requests, as an alert fragment;
no JSON reaches the browser from these routes. See docs/web-ui.md.
"""
from __future__ import annotations

import hmac
import json
import logging
import re
import secrets
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from copyscope import __version__
from copyscope.errors import CopyscopeError, LimitError, UsageError
from copyscope.service.auth import AuthError, Principal
from copyscope.service.core import Service, Upload
from copyscope.service.ui_forms import MODEL_KINDS, id_list, is_file, number, record_from_form, record_values, text

log = logging.getLogger("copyscope.service.ui")
HERE = Path(__file__).parent
KEY_COOKIE, CSRF_COOKIE = "cs_ui_key", "cs_ui_csrf"
CSRF_RE = re.compile(r"[A-Za-z0-9_-]{43}")
ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
NEXT_RE = re.compile(r"/ui/[A-Za-z0-9/_.?=&%+-]{0,400}")
PAGE = 25               # works per page
BULK = 20               # more files than this register as a background job
SHOWN_ITEMS = 500       # job items listed on a job's page
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; object-src 'none'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
REPORT_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
              "form-action 'none'; frame-ancestors 'none'")
NAV = (("/ui/works", "Works", "works"), ("/ui/register", "Register", "register"), ("/ui/check", "Check", "check"),
       ("/ui/sets", "Sets", "sets"), ("/ui/jobs", "Jobs", "jobs"))
Handler = Callable[["Ctx"], Awaitable[Response]]
ROUTES: list[tuple[str, tuple[str, ...], Handler, bool]] = []


def page(path: str, *methods: str, public: bool = False) -> Callable[[Handler], Handler]:
    def add(fn: Handler) -> Handler:
        ROUTES.append((path, methods or ("GET",), fn, public))
        return fn
    return add


def human_bytes(n: int | None) -> str:
    if n is None:
        return ""
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def make_env() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True, trim_blocks=True,
                      lstrip_blocks=True)
    env.filters["bytes"] = human_bytes
    env.filters["pretty"] = lambda v: json.dumps(v, indent=2, ensure_ascii=False, sort_keys=True)
    return env


@dataclass
class Ctx:
    request: Request
    svc: Service
    env: Environment
    csrf: str
    htmx: bool
    who: Principal | None = None
    tenant: str = ""
    form: FormData | None = None
    cookies: list[tuple[str, str | None]] = field(default_factory=list)   # (name, value or None to clear)

    def param(self, name: str) -> str:
        return self.request.path_params[name]

    def id(self, name: str = "id") -> str:
        value = self.request.path_params[name]
        if not ID_RE.fullmatch(value):
            raise UsageError(f"not an id: {value[:70]!r}")
        return value

    def field(self, name: str, label: str, max_len: int = 200) -> str:
        return text(self.form, name, label, max_len) if self.form is not None else ""

    def can(self, scope: str) -> bool:
        return self.who is not None and self.who.allows(scope)

    def require(self, scope: str) -> None:
        if not self.can(scope):
            has = ", ".join(self.who.scopes) if self.who else "none"
            raise AuthError(403, f"This API key lacks the '{scope}' scope that this action needs (it has: {has}). "
                                 "Sign in with a key that has it, or ask an administrator of this tenant.")

    def render(self, template: str, code: int = 200, **values: Any) -> HTMLResponse:
        s = self.svc.settings
        base = {"tenant": self.tenant, "csrf": self.csrf, "nav": NAV, "version": __version__,
                "scopes": self.who.scopes if self.who else (), "max_bytes": s.max_upload_bytes,
                "max_job_files": s.max_job_files, "bulk": BULK, "can": self.can}
        html = self.env.get_template(template).render(**base, **values)
        return HTMLResponse(html, status_code=code)

    def redirect(self, url: str) -> Response:
        if self.htmx:                      # htmx follows this with a full page load
            return Response(status_code=200, headers={"HX-Redirect": url})
        return RedirectResponse(url, status_code=303)

    def error(self, status: int, message: str) -> Response:
        if self.htmx:
            return self.render("_alert.html", status, message=message, kind="error")
        return self.render("error.html", status, status=status, message=message)


def explain(exc: CopyscopeError | AuthError) -> tuple[int, str]:
    """(HTTP status, message) of an error shown on a page."""
    if isinstance(exc, AuthError):
        return exc.status, str(exc)
    from copyscope.service.app import status_of  # noqa: PLC0415 - app imports this module lazily
    return status_of(exc), exc.message


def readable(exc: HTTPException, svc: Service) -> str:
    if exc.status_code == 413:
        return (f"The upload is over the {human_bytes(svc.settings.max_upload_bytes)} limit. "
                "Send fewer or smaller files (a large bulk load can be split into several jobs).")
    if exc.status_code == 400:
        return f"The form could not be read ({exc.detail})."
    return str(exc.detail)


def to_signin(ctx: Ctx) -> Response:
    path = ctx.request.url.path
    query = ("?" + urlencode({"next": path + (f"?{ctx.request.url.query}" if ctx.request.url.query else "")})
             if ctx.request.method == "GET" and not ctx.htmx and path.startswith("/ui/") else "")
    ctx.cookies.append((KEY_COOKIE, None))
    if ctx.htmx:
        return Response(status_code=401, headers={"HX-Redirect": "/ui/signin"})
    return RedirectResponse("/ui/signin" + query, status_code=303)


async def dispatch(request: Request, fn: Handler, public: bool) -> Response:
    svc: Service = request.app.state.service
    cookie = request.cookies.get(CSRF_COOKIE, "")
    fresh = not CSRF_RE.fullmatch(cookie)
    ctx = Ctx(request, svc, request.app.state.ui_env, secrets.token_urlsafe(32) if fresh else cookie,
              htmx=request.headers.get("HX-Request") == "true")
    try:
        if not public:
            ctx.who = svc.auth.authenticate(request.cookies.get(KEY_COOKIE), "any")
            ctx.tenant = svc.store.tenant(ctx.who.tenant_id).name
        if request.method == "POST":
            ctx.form = await request.form(max_files=svc.settings.max_job_files + 1, max_fields=200)
            sent = ctx.form.get("csrf")
            if fresh or not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), cookie.encode()):
                raise AuthError(403, "This form has expired or did not come from this site (CSRF check failed). "
                                     "Reload the page and try again.")
        response = await fn(ctx)
    except AuthError as exc:
        if exc.status == 401 and not public:
            response = to_signin(ctx)
        elif exc.status == 429:
            wait = max(1, round((exc.retry_after or 1) + 0.5))
            response = ctx.error(429, f"Too many requests with this key: try again in {wait} s.")
            response.headers["Retry-After"] = str(wait)
        else:
            response = ctx.error(exc.status, str(exc))
    except CopyscopeError as exc:
        response = ctx.error(*explain(exc))
    except HTTPException as exc:                        # 413 from the body limit, 400 bad multipart
        response = ctx.error(exc.status_code, readable(exc, svc))
    except Exception:  # noqa: BLE001 - show a page, log the cause
        log.exception("web UI")
        response = ctx.error(500, "Internal error (logged on the server).")
    finally:
        if ctx.form is not None:
            await ctx.form.close()
    secure = request.url.scheme == "https"
    if fresh and all(name != CSRF_COOKIE for name, _ in ctx.cookies):
        ctx.cookies.append((CSRF_COOKIE, ctx.csrf))
    for name, value in ctx.cookies:
        if value is None:
            response.delete_cookie(name, path="/ui", secure=secure, httponly=True, samesite="strict")
        else:
            response.set_cookie(name, value, path="/ui", secure=secure, httponly=True, samesite="strict")
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers.update({"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
                             "X-Frame-Options": "DENY"})
    return response


def build_ui(app: Any) -> None:
    """Add the web UI to ``app``: static files at /ui/static, pages at / and /ui/…"""
    app.state.ui_env = make_env()
    app.mount("/ui/static", StaticFiles(directory=HERE / "static"), name="ui-static")
    app.add_route("/", lambda request: RedirectResponse("/ui/works", status_code=303), include_in_schema=False)
    app.add_route("/ui", lambda request: RedirectResponse("/ui/works", status_code=303), include_in_schema=False)
    for path, methods, fn, public in ROUTES:
        async def endpoint(request: Request, fn: Handler = fn, public: bool = public) -> Response:
            return await dispatch(request, fn, public)
        app.add_route(path, endpoint, methods=list(methods), name=f"ui-{fn.__name__}", include_in_schema=False)


# -- sign in and out ---------------------------------------------------------------------------
def safe_next(value: object) -> str:
    return value if isinstance(value, str) and NEXT_RE.fullmatch(value) and "//" not in value \
        and not value.startswith("/ui/static") else "/ui/works"


@page("/ui/signin", "GET", "POST", public=True)
async def signin(ctx: Ctx) -> Response:
    if ctx.form is None:
        return ctx.render("signin.html", next=safe_next(ctx.request.query_params.get("next")),
                          signed_out=ctx.request.query_params.get("signed_out") == "1")
    nxt = safe_next(ctx.form.get("next"))
    key = ctx.field("key", "API key", 200)
    try:
        ctx.svc.auth.authenticate(key, "any")
    except AuthError as exc:
        message = ("That API key is not valid (or it was revoked). Check it and try again."
                   if exc.status == 401 else str(exc))
        return ctx.render("signin.html", exc.status, next=nxt, error=message)
    ctx.cookies += [(KEY_COOKIE, key), (CSRF_COOKIE, secrets.token_urlsafe(32))]     # a new token per session
    return RedirectResponse(nxt, status_code=303)


@page("/ui/signout", "POST", public=True)
async def signout(ctx: Ctx) -> Response:
    ctx.cookies.append((KEY_COOKIE, None))
    return RedirectResponse("/ui/signin?signed_out=1", status_code=303)


# -- works -------------------------------------------------------------------------------------------
@page("/ui/works")
async def works(ctx: Ctx) -> Response:
    q = ctx.request.query_params.get("q", "").strip()[:200]
    try:
        number_ = max(1, min(int(ctx.request.query_params.get("page", "1")), 1_000_000))
    except ValueError:
        number_ = 1
    found = await run_in_threadpool(ctx.svc.works, ctx.who, q=q, limit=PAGE, offset=(number_ - 1) * PAGE)
    last = max(1, -(-found["total"] // PAGE))
    link = lambda n: "/ui/works?" + urlencode({**({"q": q} if q else {}), "page": n})  # noqa: E731
    return ctx.render("works.html", active="works", q=q, found=found, page=number_, last=last,
                      prev_url=link(number_ - 1) if number_ > 1 else None,
                      next_url=link(number_ + 1) if number_ < last else None)


def receipt_summary(receipt: dict[str, Any]) -> dict[str, Any]:
    """What a person reads in a receipt: its ledger index and the signed entry's body."""
    try:
        body = json.loads(receipt.get("entry") or "{}").get("body", {})
    except (TypeError, ValueError, AttributeError):
        body = {}
    return {"index": receipt.get("index"), "time": body.get("time"), "kind": body.get("kind"),
            "sha256": (body.get("content") or {}).get("sha256"), "raw": receipt}


@page("/ui/works/{id}")
async def work(ctx: Ctx) -> Response:
    info = await run_in_threadpool(ctx.svc.work, ctx.who, ctx.id())
    return ctx.render("work.html", active="works", work=info,
                      receipts=[receipt_summary(r) for r in info.get("receipts") or []])


@page("/ui/works/{id}/package")
async def package(ctx: Ctx) -> Response:
    work_id = ctx.id()
    tmp = Path(tempfile.mkdtemp(prefix="copyscope-ui-pkg-"))
    from copyscope.service.tenants import remove_tree  # noqa: PLC0415
    try:
        out = await run_in_threadpool(ctx.svc.package, ctx.who, work_id, tmp / "package.zip")
    except BaseException:
        remove_tree(tmp)
        raise
    return FileResponse(out, media_type="application/zip", filename=f"{work_id}.zip",
                        background=BackgroundTask(remove_tree, tmp))


# -- register and check -------------------------------------------------------------------------------
async def read_files(ctx: Ctx, name: str = "files") -> list[Upload]:
    limit = ctx.svc.settings.max_upload_bytes
    uploads = []
    for f in ctx.form.getlist(name):
        if not is_file(f):
            continue
        data = await f.read(limit + 1)
        if len(data) > limit:
            raise LimitError(f"The file is over the {human_bytes(limit)} upload limit.")
        uploads.append(Upload(f.filename, data))     # the name labels the work; it is never a path here
    if not uploads:
        raise UsageError("Choose at least one file (drop it on the area or use the file chooser).")
    return uploads


@page("/ui/register", "GET", "POST")
async def register(ctx: Ctx) -> Response:
    values = record_values(ctx.form)
    if ctx.form is None:
        return ctx.render("register.html", active="register", values=values, kinds=MODEL_KINDS)
    try:
        ctx.require("register")
        owner = ctx.field("owner", "Owner")
        if not owner:
            raise UsageError("Owner: who owns the work (a person or an organisation) is required.")
        license_ = ctx.field("license", "Licence") or None
        title = ctx.field("title", "Title", 500) or None
        record = record_from_form(ctx.form)
        derived_from = id_list(ctx.field("derived_from", "Derived from", 2000))
        private = ctx.form.get("private") in ("1", "on", "true")
        uploads = await read_files(ctx)
        if len(uploads) > BULK:
            params = {"owner": owner, "license": license_, "record": record, "derived_from": derived_from,
                      "private": private}
            job = await run_in_threadpool(ctx.svc.submit_job, ctx.who, "register", uploads, params)
            return ctx.redirect(f"/ui/jobs/{job['id']}")
        result = await run_in_threadpool(lambda: ctx.svc.register(
            ctx.who, uploads, owner=owner, license=license_, title=title if len(uploads) == 1 else None,
            record=record, derived_from=derived_from, private=private))
    except (CopyscopeError, AuthError) as exc:
        if ctx.htmx:
            raise
        status, message = explain(exc)
        return ctx.render("register.html", status, active="register", values=values, kinds=MODEL_KINDS,
                          error=message)
    if ctx.htmx:
        return ctx.render("_register_result.html", result=result)
    return ctx.render("register.html", active="register", values={}, kinds=MODEL_KINDS, result=result)


@page("/ui/check", "GET", "POST")
async def check(ctx: Ctx) -> Response:
    sets = await run_in_threadpool(ctx.svc.store.protected_sets, ctx.who.tenant_id)
    if ctx.form is None:
        return ctx.render("check.html", active="check", sets=sets)
    ctx.require("check")
    only = [v for v in ctx.form.getlist("sets") if isinstance(v, str) and v][:1000]
    uploads = await read_files(ctx)
    if len(uploads) > ctx.svc.settings.max_batch_files:
        raise LimitError(f"{len(uploads)} files is over the {ctx.svc.settings.max_batch_files}-file limit "
                         "of one check.")
    results = await run_in_threadpool(lambda: ctx.svc.check(ctx.who, uploads, only_sets=only))
    if ctx.htmx:
        return ctx.render("_check_result.html", results=results)
    return ctx.render("check.html", active="check", results=results, sets=sets)


@page("/ui/checks/{id}/report")
async def report(ctx: Ctx) -> Response:
    html = await run_in_threadpool(ctx.svc.report_html, ctx.who, ctx.id())
    return HTMLResponse(html, headers={"Content-Security-Policy": REPORT_CSP})


@page("/ui/checks/{id}/bundle")
async def bundle(ctx: Ctx) -> Response:
    check_id = ctx.id()
    data = await run_in_threadpool(ctx.svc.evidence_bundle, ctx.who, check_id)
    return JSONResponse(data, headers={"Content-Disposition": f'attachment; filename="evidence-{check_id}.json"'})


# -- protected sets -----------------------------------------------------------------------------
def set_fields(ctx: Ctx) -> dict[str, Any]:
    action = ctx.field("action", "Action")
    if action not in ("block", "flag"):
        raise UsageError("Action: block or flag.")
    return {"action": action, "threshold": number(ctx.field("threshold", "Threshold", 40) or "0.5", "Threshold"),
            "description": ctx.field("description", "Description", 2000)}


@page("/ui/sets", "GET", "POST")
async def sets(ctx: Ctx) -> Response:
    error, status, values = None, 200, {}
    if ctx.form is not None:
        values = {k: v for k, v in ctx.form.items() if isinstance(v, str) and k != "csrf"}
        try:
            ctx.require("admin")
            created = await run_in_threadpool(lambda: ctx.svc.create_set(
                ctx.who, ctx.field("name", "Name"), **set_fields(ctx),
                work_ids=id_list(ctx.field("work_ids", "Work ids", 1_000_000))))
            return ctx.redirect(f"/ui/sets/{created['id']}?done=created")
        except (CopyscopeError, AuthError) as exc:
            status, error = explain(exc)
    listed = await run_in_threadpool(ctx.svc.store.protected_sets, ctx.who.tenant_id)
    return ctx.render("sets.html", status, active="sets", sets=listed, error=error, values=values)


DONE = {"created": "Protected set created.", "added": "Works added.", "removed": "Work removed.",
        "saved": "Settings saved."}


@page("/ui/sets/{id}", "GET")
async def protected_set(ctx: Ctx, error: str | None = None, status: int = 200) -> Response:
    found = await run_in_threadpool(ctx.svc.store.protected_set, ctx.who.tenant_id, ctx.id())
    done = DONE.get(ctx.request.query_params.get("done", ""))
    return ctx.render("set.html", status, active="sets", set=found, done=None if error else done, error=error)


@page("/ui/sets/{id}/{op}", "POST")
async def change_set(ctx: Ctx) -> Response:
    set_id, op = ctx.id(), ctx.param("op")
    try:
        ctx.require("admin")
        if op == "delete":
            if ctx.field("confirm", "Confirm") != "yes":
                raise UsageError("Tick the box to confirm that the set should be deleted.")
            await run_in_threadpool(ctx.svc.store.delete_set, ctx.who.tenant_id, set_id)
            return ctx.redirect("/ui/sets")
        if op == "add":
            ids = id_list(ctx.field("work_ids", "Work ids", 1_000_000))
            if not ids:
                raise UsageError("Type one or more work ids to add.")
            changes, done = {"add": ids}, "added"
        elif op == "remove":
            changes, done = {"remove": id_list(ctx.field("work_id", "Work id", 64))}, "removed"
        elif op == "settings":
            changes, done = set_fields(ctx), "saved"
        else:
            raise UsageError(f"unknown action on a set: {op[:40]!r}")
        await run_in_threadpool(lambda: ctx.svc.update_set(ctx.who, set_id, **changes))
        return ctx.redirect(f"/ui/sets/{set_id}?done={done}")
    except (CopyscopeError, AuthError) as exc:
        status, message = explain(exc)
        if status in (400, 403) or (status == 404 and op != "delete"):    # e.g. an unknown work id
            return await protected_set(ctx, message, status)
        raise


# -- jobs ---------------------------------------------------------------------------------------------
@page("/ui/jobs")
async def jobs(ctx: Ctx) -> Response:
    listed = await run_in_threadpool(ctx.svc.jobs_list, ctx.who, 100)
    return ctx.render("jobs.html", active="jobs", jobs=listed)


def job_view(job: dict[str, Any]) -> dict[str, Any]:
    finished = job["done"] + job["failed"]
    job["finished"] = job["state"] not in ("queued", "running")
    job["percent"] = 100 if job["total"] == 0 else int(100 * finished / job["total"])
    items = job.pop("items", None) or []
    for item in items:
        if job["kind"] == "check" and item.get("result"):
            try:
                item["check"] = json.loads(item["result"])
            except ValueError:
                item["check"] = None
    job["failed_items"] = [i for i in items if i["state"] == "failed"][:SHOWN_ITEMS]
    job["done_items"] = [i for i in items if i["state"] == "done"][:SHOWN_ITEMS]
    job["pending_items"] = sum(1 for i in items if i["state"] == "pending")
    return job


async def load_job(ctx: Ctx) -> dict[str, Any]:
    job = await run_in_threadpool(ctx.svc.job, ctx.who, ctx.id())
    if job["state"] not in ("queued", "running"):        # finished: list what was done and what failed
        job = await run_in_threadpool(lambda: ctx.svc.job(ctx.who, job["id"], items=True))
    return job_view(job)


@page("/ui/jobs/{id}")
async def job(ctx: Ctx) -> Response:
    return ctx.render("job.html", active="jobs", job=await load_job(ctx))


@page("/ui/jobs/{id}/progress")
async def job_progress(ctx: Ctx) -> Response:
    return ctx.render("_job_progress.html", job=await load_job(ctx))


@page("/ui/jobs/{id}/cancel", "POST")
async def cancel_job(ctx: Ctx) -> Response:
    job_id = ctx.id()
    await run_in_threadpool(ctx.svc.cancel_job, ctx.who, job_id)
    return ctx.redirect(f"/ui/jobs/{job_id}")
