"""``/v1``: the HTTP API. Each route parses, calls ``Service``, and renders."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import anyio
from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from copyscope import __version__
from copyscope.errors import InputError, LimitError, UsageError
from copyscope.service import models as m
from copyscope.service.auth import Principal
from copyscope.service.core import Service, Upload

bearer = HTTPBearer(auto_error=False, description="an API key: `Authorization: Bearer cs_k…`")
header_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="an API key")
ID = r"^[a-z][0-9a-f]{12}$"


# Dependencies that do no I/O are ``async def``: FastAPI runs a plain ``def``
# dependency in its thread pool, and at a few hundred checks a second those
# hand-offs (and the GIL contention they bring) cost more than the work.
async def service(request: Request) -> Service:
    return request.app.state.service


def scope(name: str):  # noqa: ANN201 - a FastAPI dependency
    async def principal(request: Request,
                        cred: Annotated[Optional[HTTPAuthorizationCredentials], Depends(bearer)] = None,
                        key: Annotated[Optional[str], Depends(header_key)] = None) -> Principal:
        auth = request.app.state.service.auth
        secret = one_key(cred, key)
        if auth.remembers(secret):
            return auth.authenticate(secret, name)
        # A key not seen lately is read from the store, which may block: not on the event loop.
        return await run_in_threadpool(auth.authenticate, secret, name)
    return principal


def one_key(cred: Optional[HTTPAuthorizationCredentials], key: Optional[str]) -> Optional[str]:
    """The key from either header; two different keys in one request are refused."""
    bearer_key = cred.credentials if cred else None
    if key and bearer_key and key.strip() != bearer_key.strip():
        from copyscope.service.auth import AuthError  # noqa: PLC0415
        raise AuthError(401, "two different API keys in one request (Authorization and X-API-Key)")
    return key or bearer_key


async def multipart(request: Request) -> None:
    ctype = request.headers.get("content-type", "")
    if not ctype.startswith("multipart/form-data"):
        raise UnsupportedMedia("this endpoint takes multipart/form-data uploads")


async def json_body(request: Request) -> None:
    ctype = request.headers.get("content-type", "")
    if ctype.split(";")[0].strip() != "application/json":
        raise UnsupportedMedia("this endpoint takes application/json")


class UnsupportedMedia(UsageError):
    status = 415


def read_upload(svc: Service, f: UploadFile) -> Upload:
    data = f.file.read(svc.settings.max_upload_bytes + 1)
    if len(data) > svc.settings.max_upload_bytes:
        raise LimitError(f"{f.filename}: over the {svc.settings.max_upload_bytes}-byte upload limit")
    return Upload(f.filename or "upload", data)


def rendered(model: type[BaseModel], data: dict) -> Response:
    """``data`` validated against ``model`` and serialised on the route's own
    worker thread. FastAPI validates a plain ``def`` route's return value in its
    thread pool, a second hand-off per request that the checks, the hot path,
    need not pay; their routes keep ``response_model`` for the OpenAPI spec."""
    return Response(model.model_validate(data).model_dump_json(), media_type="application/json")


async def on_check_thread(request: Request, run: Callable[[], Response]) -> Response:
    """``run()`` on one of the few threads single checks have, not the 40 of the
    shared pool. A process computes one check at a time (``Service``'s turn),
    so more threads only wait there, each with its stack and its share of the
    GIL hand-offs; the requests beyond them wait on the event loop instead,
    where admission control still counts them. The limiter is made on first
    use, inside the loop."""
    limiter = getattr(request.app.state, "check_limiter", None)
    if limiter is None:
        limiter = request.app.state.check_limiter = anyio.CapacityLimiter(
            request.app.state.settings.check_threads)
    return await anyio.to_thread.run_sync(run, limiter=limiter)


def parse_list(value: Optional[str]) -> list[str]:
    return [x.strip() for x in (value or "").split(",") if x.strip()]


def parse_record(value: Optional[str]) -> Optional[dict[str, Any]]:
    """A creation record sent as a JSON form field; validated by the ledger's schema."""
    if not value:
        return None
    try:
        record = json.loads(value)
    except json.JSONDecodeError as exc:
        raise InputError(f"record: not valid JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(record, dict):
        raise InputError("record: a creation record is a JSON object")
    from copyscope.ledger.record import validate_record  # noqa: PLC0415
    validate_record(record)
    return record


Svc = Annotated[Service, Depends(service)]
CheckKey = Annotated[Principal, Depends(scope("check"))]
RegisterKey = Annotated[Principal, Depends(scope("register"))]
AdminKey = Annotated[Principal, Depends(scope("admin"))]
AnyKey = Annotated[Principal, Depends(scope("any"))]
Multipart = Depends(multipart)
Json = Depends(json_body)


def build_router() -> APIRouter:
    r = APIRouter(prefix="/v1")

    @r.get("/health", response_model=m.Health, tags=["service"])
    def health() -> dict:
        return {"status": "ok", "version": __version__}

    # -- checks --------------------------------------------------------------------
    @r.post("/check", response_model=m.CheckOut, tags=["check"], dependencies=[Multipart],
            summary="Check one uploaded item (image, text or code): allow, flag or block")
    async def check(request: Request, svc: Svc, who: CheckKey,
                    file: UploadFile = File(..., description="the item to check"),
                    sets: Optional[str] = Form(None, description="comma-separated protected set ids; only these apply")
                    ) -> Response:
        def run() -> Response:
            return rendered(m.CheckOut, svc.check(who, [read_upload(svc, file)], only_sets=parse_list(sets))[0])
        return await on_check_thread(request, run)

    @r.post("/check/text", response_model=m.CheckOut, tags=["check"], dependencies=[Json],
            summary="Check text or code sent as JSON")
    async def check_text(request: Request, svc: Svc, who: CheckKey, body: m.TextCheckIn) -> Response:
        def run() -> Response:      # (encoding up to 32 MiB of text is work: not on the event loop)
            data = body.text.encode("utf-8")
            if len(data) > svc.settings.max_upload_bytes:
                raise LimitError(f"text over the {svc.settings.max_upload_bytes}-byte upload limit")
            return rendered(m.CheckOut, svc.check(who, [Upload(body.name, data)], only_sets=body.sets)[0])
        return await on_check_thread(request, run)

    @r.post("/check/batch", response_model=m.BatchOut, tags=["check"], dependencies=[Multipart],
            summary="Check several uploaded items in one request")
    def check_batch(svc: Svc, who: CheckKey, files: list[UploadFile] = File(..., min_length=1),
                    sets: Optional[str] = Form(None)) -> Response:
        if len(files) > svc.settings.max_batch_files:
            raise LimitError(f"{len(files)} files is over the {svc.settings.max_batch_files}-file batch limit")
        return rendered(m.BatchOut, {"results": svc.check(who, [read_upload(svc, f) for f in files],
                                                          only_sets=parse_list(sets))})

    @r.get("/checks/{check_id}", response_model=m.AuditOut, tags=["check"])
    def check_record(svc: Svc, who: AnyKey, check_id: str) -> dict:
        return svc.check_record(who, check_id)

    @r.get("/checks/{check_id}/report", response_class=HTMLResponse, tags=["check"],
           summary="The HTML evidence report of a check that matched")
    def check_report(svc: Svc, who: AnyKey, check_id: str) -> HTMLResponse:
        return HTMLResponse(svc.report_html(who, check_id))

    @r.get("/checks/{check_id}/bundle", tags=["check"], summary="The evidence bundle (canonical JSON)")
    def check_bundle(svc: Svc, who: AnyKey, check_id: str) -> JSONResponse:
        return JSONResponse(svc.evidence_bundle(who, check_id))

    # -- works ---------------------------------------------------------------------
    @r.post("/works", response_model=m.RegisterOut, status_code=201, tags=["works"], dependencies=[Multipart],
            summary="Register works now (up to the batch limit); each file is one work")
    def register(svc: Svc, who: RegisterKey, files: list[UploadFile] = File(..., min_length=1),
                 owner: str = Form(..., min_length=1, max_length=200),
                 license: Optional[str] = Form(None, max_length=200, description="SPDX id; detected when absent"),
                 title: Optional[str] = Form(None, max_length=500, description="for a single file"),
                 record: Optional[str] = Form(None, description="creation record, JSON (docs/creation-record.md)"),
                 derived_from: Optional[str] = Form(None, description="comma-separated parent work ids"),
                 private: bool = Form(False)) -> dict:
        return svc.register(who, [read_upload(svc, f) for f in files], owner=owner, license=license,
                            title=title, record=parse_record(record), derived_from=parse_list(derived_from),
                            private=private)

    @r.get("/works", response_model=m.WorkList, tags=["works"])
    def works(svc: Svc, who: AnyKey, q: str = Query("", max_length=200),
              limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0, le=10_000_000)) -> dict:
        return svc.works(who, q=q, limit=limit, offset=offset)

    @r.get("/works/{work_id}", response_model=m.WorkDetail, tags=["works"])
    def work(svc: Svc, who: AnyKey, work_id: str) -> dict:
        return svc.work(who, work_id)

    @r.get("/works/{work_id}/package", response_class=FileResponse, tags=["works"],
           summary="The work's evidence package (zip, verifiable offline)")
    def package(svc: Svc, who: AnyKey, work_id: str) -> FileResponse:
        from copyscope.service.tenants import remove_tree  # noqa: PLC0415
        tmp = Path(tempfile.mkdtemp(prefix="copyscope-pkg-"))
        try:
            out = svc.package(who, work_id, tmp / f"{work_id}.zip")
        except BaseException:
            remove_tree(tmp)  # an unknown or foreign work id must not leave a directory behind
            raise
        return FileResponse(out, media_type="application/zip", filename=out.name,
                            background=BackgroundTask(remove_tree, tmp))

    # -- protected sets ----------------------------------------------------------------
    @r.get("/sets", response_model=list[m.SetOut], tags=["sets"])
    def sets(svc: Svc, who: AnyKey) -> list:
        return [x.public() for x in svc.store.protected_sets(who.tenant_id)]

    @r.post("/sets", response_model=m.SetOut, status_code=201, tags=["sets"], dependencies=[Json])
    def create_set(svc: Svc, who: AdminKey, body: m.SetIn) -> dict:
        return svc.create_set(who, body.name, action=body.action, threshold=body.threshold,
                              description=body.description, work_ids=body.work_ids)

    @r.get("/sets/{set_id}", response_model=m.SetOut, tags=["sets"])
    def get_set(svc: Svc, who: AnyKey, set_id: str) -> dict:
        return svc.store.protected_set(who.tenant_id, set_id).public()

    @r.patch("/sets/{set_id}", response_model=m.SetOut, tags=["sets"], dependencies=[Json])
    def patch_set(svc: Svc, who: AdminKey, set_id: str, body: m.SetPatch) -> dict:
        return svc.update_set(who, set_id, action=body.action, threshold=body.threshold,
                              description=body.description, add=body.add, remove=body.remove)

    @r.delete("/sets/{set_id}", status_code=204, tags=["sets"])
    def delete_set(svc: Svc, who: AdminKey, set_id: str) -> None:
        svc.store.delete_set(who.tenant_id, set_id)

    # -- jobs --------------------------------------------------------------------------
    @r.post("/jobs", response_model=m.JobOut, status_code=202, tags=["jobs"], dependencies=[Multipart],
            summary="Start a background job: bulk registration or a bulk check")
    def submit_job(request: Request, svc: Svc, files: list[UploadFile] = File(..., min_length=1),
                   kind: str = Form(..., pattern="^(register|check)$"),
                   owner: Optional[str] = Form(None, max_length=200),
                   license: Optional[str] = Form(None, max_length=200),
                   record: Optional[str] = Form(None), derived_from: Optional[str] = Form(None),
                   private: bool = Form(False), sets: Optional[str] = Form(None),
                   cred: Annotated[Optional[HTTPAuthorizationCredentials], Depends(bearer)] = None,
                   key: Annotated[Optional[str], Depends(header_key)] = None) -> dict:
        who = svc.auth.authenticate(one_key(cred, key), kind)
        if kind == "register" and not owner:
            raise UsageError("a registration job needs an owner")
        params = ({"owner": owner, "license": license, "record": parse_record(record),
                   "derived_from": parse_list(derived_from), "private": private}
                  if kind == "register" else {"only_sets": parse_list(sets)})
        return svc.submit_job(who, kind, [read_upload(svc, f) for f in files], params)

    @r.get("/jobs", response_model=list[m.JobOut], tags=["jobs"])
    def jobs(svc: Svc, who: AnyKey, limit: int = Query(50, ge=1, le=500)) -> list:
        return svc.jobs_list(who, limit)

    @r.get("/jobs/{job_id}", response_model=m.JobOut, tags=["jobs"])
    def job(svc: Svc, who: AnyKey, job_id: str, items: bool = Query(False, description="list every item")) -> dict:
        return svc.job(who, job_id, items=items)

    @r.post("/jobs/{job_id}/cancel", response_model=m.JobOut, tags=["jobs"])
    def cancel(svc: Svc, who: AnyKey, job_id: str) -> dict:
        return svc.cancel_job(who, job_id)

    # -- audit ---------------------------------------------------------------------------
    @r.get("/audit", response_model=list[m.AuditOut], tags=["audit"])
    def audit(svc: Svc, who: AdminKey, after: int = Query(0, ge=0), limit: int = Query(100, ge=1, le=1000),
              since: Optional[str] = Query(None, max_length=40), until: Optional[str] = Query(None, max_length=40)
              ) -> list:
        return svc.store.audit(who.tenant_id, after=after, limit=limit, since=since, until=until)

    @r.get("/audit/export", tags=["audit"], response_class=StreamingResponse,
           summary="Every audit record as JSON Lines (oldest first)")
    def audit_export(svc: Svc, who: AdminKey, since: Optional[str] = Query(None, max_length=40),
                     until: Optional[str] = Query(None, max_length=40)) -> StreamingResponse:
        lines = (json.dumps(rec, sort_keys=True) + "\n"
                 for rec in svc.store.iter_audit(who.tenant_id, since=since, until=until))
        return StreamingResponse(lines, media_type="application/jsonl",
                                 headers={"Content-Disposition": 'attachment; filename="audit.jsonl"'})

    # -- keys ----------------------------------------------------------------------------
    @r.get("/keys", response_model=list[m.KeyOut], tags=["keys"])
    def keys(svc: Svc, who: AdminKey) -> list:
        return [k.public() for k in svc.store.keys(who.tenant_id)]

    @r.post("/keys", response_model=m.NewKeyOut, status_code=201, tags=["keys"], dependencies=[Json])
    def create_key(svc: Svc, who: AdminKey, body: m.KeyIn) -> dict:
        key, secret = svc.create_key(who, body.name, body.scopes, body.rate_per_s, body.burst)
        return {**key, "key": secret}

    @r.delete("/keys/{key_id}", response_model=m.KeyOut, tags=["keys"])
    def revoke_key(svc: Svc, who: AdminKey, key_id: str) -> dict:
        return svc.revoke_key(who, key_id)

    return r
