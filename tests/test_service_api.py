"""The /v1 HTTP API, in process: auth, tenants, uploads, checks, sets, audit, jobs."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from copyscope.service import create_app  # noqa: E402
from copyscope.service.config import ServiceSettings  # noqa: E402
from copyscope.service.jobs import JobRunner  # noqa: E402

SAMPLES = Path(__file__).resolve().parents[1] / "src" / "copyscope" / "samples" / "text"
ARTICLE = (SAMPLES / "registered" / "en_lighthouse.md").read_bytes()
OTHER = sorted(p for p in (SAMPLES / "registered").iterdir() if p.name != "en_lighthouse.md")[0].read_bytes()


def _copy_of(data: bytes) -> bytes:
    """A reworded repost: the first paragraph dropped, a sentence appended."""
    paragraphs = data.decode().split("\n\n")
    return ("\n\n".join(paragraphs[1:-1]) + "\n\nReposted without permission.\n").encode()


@pytest.fixture(params=["sqlite", "postgresql"])
def client(request, tmp_path):
    """The same API tests on both storage backends (PostgreSQL: a real server)."""
    db_url = request.getfixturevalue("pg_database_url")() if request.param == "postgresql" else None
    app = create_app(ServiceSettings(home=tmp_path / "svc", db_url=db_url, max_upload_bytes=256 * 1024),
                     run_jobs=False)
    with TestClient(app) as c:
        c.svc = app.state.service
        tenant, key = c.svc.create_tenant("acme")
        c.tenant, c.key = tenant, key
        c.h = {"Authorization": f"Bearer {key}"}
        yield c


def _register(c, name="lighthouse.md", data=ARTICLE, headers=None, **form) -> str:
    r = c.post("/v1/works", headers=headers or c.h, files=[("files", (name, data, "text/markdown"))],
               data={"owner": "Ann", "license": "CC-BY-4.0", **form})
    assert r.status_code == 201, r.text
    return r.json()["works"][0]["work_id"]


def _check(c, data=None, name="post.md", headers=None, **form):
    return c.post("/v1/check", headers=headers or c.h, files={"file": (name, _copy_of(ARTICLE) if data is None else data)},
                  data=form)


# -- auth ---------------------------------------------------------------------------
def test_requests_without_a_valid_key_get_401(client):
    assert client.get("/v1/works").status_code == 401
    r = client.get("/v1/works", headers={"Authorization": "Bearer cs_k000000000000_" + "x" * 32})
    assert r.status_code == 401 and r.json()["error"] == "invalid or revoked API key"
    assert r.headers["www-authenticate"] == "Bearer"
    assert client.get("/v1/works", headers={"X-API-Key": "garbage"}).status_code == 401
    assert client.get("/v1/works", headers={"X-API-Key": client.key}).status_code == 200


def test_scopes_are_enforced_with_403(client):
    key, secret = client.svc.store.create_key(client.tenant.id, "bot", ["check"])
    h = {"X-API-Key": secret}
    assert _check(client, headers=h).status_code == 200
    r = client.post("/v1/works", headers=h, files=[("files", ("a.md", ARTICLE))], data={"owner": "x"})
    assert r.status_code == 403 and "register" in r.json()["error"]
    assert client.get("/v1/audit", headers=h).status_code == 403
    assert client.post("/v1/sets", headers=h, json={"name": "x"}).status_code == 403


def test_keys_are_stored_hashed_and_revocation_takes_effect(client):
    r = client.post("/v1/keys", headers=client.h, json={"name": "ci", "scopes": ["check"]})
    assert r.status_code == 201
    secret, key_id = r.json()["key"], r.json()["id"]
    import sqlalchemy as sa
    from copyscope.service.schema import api_keys
    with client.svc.engine.connect() as conn:
        stored = " ".join(str(v) for row in conn.execute(sa.select(api_keys)) for v in row)
    assert secret not in stored and secret.split("_", 2)[2] not in stored     # the secret may contain "_"
    assert _check(client, headers={"X-API-Key": secret}).status_code == 200
    assert client.delete(f"/v1/keys/{key_id}", headers=client.h).json()["revoked_at"]
    assert _check(client, headers={"X-API-Key": secret}).status_code == 401


def test_rate_limit_answers_429_with_retry_after(client):
    _, secret = client.svc.store.create_key(client.tenant.id, "slow", ["check"], rate_per_s=0.01, burst=2)
    h = {"X-API-Key": secret}
    codes = [client.get("/v1/works", headers=h).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    r = client.get("/v1/works", headers=h)
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1


def test_a_recently_verified_key_is_answered_without_the_store(client, monkeypatch):
    assert client.get("/v1/works", headers=client.h).status_code == 200
    assert client.svc.auth.remembers(client.key)

    def unreachable(key_id):
        raise AssertionError("a remembered key must not be read again")
    monkeypatch.setattr(client.svc.store, "key", unreachable)
    assert client.get("/v1/works", headers=client.h).status_code == 200
    assert _check(client).status_code == 200
    monkeypatch.undo()
    client.svc.auth.forget(client.svc.auth.authenticate(client.key, "any").key_id)
    assert not client.svc.auth.remembers(client.key)
    assert client.get("/v1/works", headers=client.h).status_code == 200      # read from the store again


def test_checks_compute_one_item_at_a_time_per_process(tmp_path, monkeypatch):
    """Concurrent checks take turns (CPU-bound under the GIL), an item at a time,
    so a long batch does not hold up a single check behind it."""
    import threading
    import time

    from copyscope.service.auth import Principal
    from copyscope.service.core import Service, Upload
    from copyscope.workspace import Workspace
    svc = Service(ServiceSettings(home=tmp_path / "svc"))
    tenant, _ = svc.create_tenant("acme")
    who = Principal(tenant.id, "k", ("check",))
    running, most, finished = [0], [0], []
    lock, real = threading.Lock(), Workspace.check_artifacts

    def slow(self, artifacts, **kw):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.15)
        with lock:
            running[0] -= 1
        return real(self, artifacts, **kw)
    monkeypatch.setattr(Workspace, "check_artifacts", slow)

    def run(name, n):
        svc.check(who, [Upload(f"{name}{i}.txt", b"a short text to check") for i in range(n)])
        finished.append(name)
    batch = threading.Thread(target=run, args=("batch", 4))
    batch.start()
    time.sleep(0.05)
    single = threading.Thread(target=run, args=("single", 1))
    single.start()
    batch.join()
    single.join()
    svc.close()
    assert most[0] == 1
    assert finished == ["single", "batch"]


def test_single_checks_run_on_a_few_threads_and_the_rest_wait_on_the_loop(tmp_path, monkeypatch):
    """Ten concurrent checks with ``check_threads=2``: every one is answered, and
    no more than two threads ever run the check code at once."""
    import asyncio
    import threading
    import time

    import httpx

    from copyscope.service.core import Service
    app = create_app(ServiceSettings(home=tmp_path / "svc", check_threads=2), run_jobs=False)
    _, key = app.state.service.create_tenant("acme")
    threads, running, most = set(), [0], [0]
    lock, real = threading.Lock(), Service.check

    def counted(self, who, uploads, **kw):
        with lock:
            threads.add(threading.get_ident())
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            time.sleep(0.05)            # outside the turn: only the thread limit bounds this
            return real(self, who, uploads, **kw)
        finally:
            with lock:
                running[0] -= 1
    monkeypatch.setattr(Service, "check", counted)

    async def many() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as c:
            h = {"Authorization": f"Bearer {key}"}
            rs = await asyncio.gather(
                *[c.post("/v1/check", files={"file": (f"q{i}.md", OTHER)}, headers=h) for i in range(5)],
                *[c.post("/v1/check/text", json={"text": OTHER.decode(), "name": f"t{i}.md"}, headers=h)
                  for i in range(5)])
            return [r.status_code for r in rs]
    try:
        assert asyncio.run(many()) == [200] * 10
    finally:
        app.state.service.close()
    assert most[0] == 2 and len(threads) <= 2
    assert app.state.check_limiter.total_tokens == 2


def test_a_tenants_hot_files_are_read_ahead_once_per_process(tmp_path, monkeypatch):
    """The index segments and sketch rows a check reads at random are read front
    to back when the tenant's first check opens it, once, on a thread of its own."""
    import threading

    from copyscope.processes import read_ahead
    from copyscope.service import tenants as T
    from copyscope.service.auth import Principal
    from copyscope.service.core import Service, Upload
    calls, done = [], threading.Event()

    def spy(paths, budget):
        calls.append((threading.current_thread().name, [Path(p).name for p in paths], read_ahead(paths, budget)))
        done.set()
    monkeypatch.setattr(T, "read_ahead", spy)
    svc = Service(ServiceSettings(home=tmp_path / "svc"))
    tenant, _ = svc.create_tenant("acme")
    who = Principal(tenant.id, "k", ("check", "register"))
    svc.register(who, [Upload("lighthouse.md", ARTICLE)], owner="Ann")
    for i in range(3):
        svc.check(who, [Upload(f"post{i}.md", _copy_of(ARTICLE))])
    assert done.wait(10)
    svc.close()
    assert len(calls) == 1
    name, files, read = calls[0]
    assert name == f"read-ahead-{tenant.id}"
    assert any(f.startswith("seg-") for f in files) and read > 0


def test_read_ahead_skips_what_it_cannot_read_and_keeps_to_its_budget(tmp_path):
    from copyscope.processes import read_ahead
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"x" * 3000)
    b.write_bytes(b"y" * 5000)
    assert read_ahead([tmp_path / "gone.bin", a, tmp_path, b]) == 8000
    assert read_ahead([a, b], budget_bytes=4000, chunk=1024) == 3000 + 1024      # stops after the chunk that crosses it


# -- tenants --------------------------------------------------------------------------
def test_one_tenant_never_reaches_another_tenants_data(client, tmp_path, monkeypatch):
    wid = _register(client)
    set_id = client.post("/v1/sets", headers=client.h, json={"name": "hero", "work_ids": [wid]}).json()["id"]
    check_id = _check(client).json()["check_id"]
    _, other_key = client.svc.create_tenant("globex")
    o = {"Authorization": f"Bearer {other_key}"}
    # Same work id space in another workspace: W0000001 is not acme's work there.
    assert client.get(f"/v1/works/{wid}", headers=o).status_code == 404
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    assert client.get(f"/v1/works/{wid}/package", headers=o).status_code == 404
    assert not list(scratch.iterdir())  # a refused package leaves no directory behind
    assert client.get("/v1/works", headers=o).json()["total"] == 0
    assert client.get(f"/v1/sets/{set_id}", headers=o).status_code == 404
    assert client.patch(f"/v1/sets/{set_id}", headers=o, json={"threshold": 0.1}).status_code == 404
    assert client.delete(f"/v1/sets/{set_id}", headers=o).status_code == 404
    assert client.get(f"/v1/checks/{check_id}", headers=o).status_code == 404
    assert client.get(f"/v1/checks/{check_id}/report", headers=o).status_code == 404
    assert client.get("/v1/audit", headers=o).json() == []
    assert _check(client, headers=o).json()["decision"] == "allow"       # acme's work is not globex's
    assert _check(client, headers=o, sets=set_id).status_code == 404
    r = client.post("/v1/sets", headers=o, json={"name": "steal", "work_ids": [wid]})
    assert r.status_code == 404                                         # no such work in globex


# -- checks, policy, evidence --------------------------------------------------------
def test_check_flags_a_copy_of_an_unlisted_work_and_allows_unrelated_text(client):
    wid = _register(client)
    r = _check(client)
    assert r.status_code == 200
    body = r.json()
    assert body["decision"] == "flag" and body["matches"][0]["work_id"] == wid
    assert body["matches"][0]["action"] == "flag" and body["matches"][0]["sets"] == []
    assert body["input"]["name"] == "post.md" and body["input"]["size"] == len(_copy_of(ARTICLE))
    assert _check(client, data=OTHER).json()["decision"] == "allow"


def test_protected_sets_block_at_their_threshold(client):
    wid = _register(client)
    s = client.post("/v1/sets", headers=client.h,
                    json={"name": "Franchise", "action": "block", "threshold": 0.2, "work_ids": [wid]}).json()
    body = _check(client).json()
    assert body["decision"] == "block"
    assert body["matches"][0]["sets"] == [{"set_id": s["id"], "set": "Franchise", "action": "block",
                                           "threshold": 0.2}]
    # A post quoting two paragraphs among other text scores below a whole copy.
    quote = ("\n\n".join(ARTICLE.decode().split("\n\n")[:2]) + "\n\n" + OTHER.decode()).encode()
    score = _check(client, data=quote).json()["matches"][0]["score"]
    assert score < 0.999
    # Above the score: the set does not apply, and a work in a set is not "unlisted".
    client.patch(f"/v1/sets/{s['id']}", headers=client.h, json={"threshold": round(score + 0.0002, 4)})
    assert _check(client, data=quote).json()["decision"] == "allow"
    assert _check(client).json()["decision"] == "block"
    client.patch(f"/v1/sets/{s['id']}", headers=client.h, json={"threshold": 0.2, "action": "flag"})
    assert _check(client).json()["decision"] == "flag"
    client.patch(f"/v1/sets/{s['id']}", headers=client.h, json={"remove": [wid]})
    assert client.get(f"/v1/sets/{s['id']}", headers=client.h).json()["work_ids"] == []
    assert client.delete(f"/v1/sets/{s['id']}", headers=client.h).status_code == 204
    assert client.get(f"/v1/sets/{s['id']}", headers=client.h).status_code == 404


def test_check_text_json_and_batch(client):
    _register(client)
    r = client.post("/v1/check/text", headers=client.h, json={"text": _copy_of(ARTICLE).decode(), "name": "gen.txt"})
    assert r.status_code == 200 and r.json()["decision"] == "flag"
    r = client.post("/v1/check/batch", headers=client.h,
                    files=[("files", ("a.md", _copy_of(ARTICLE))), ("files", ("b.md", OTHER)),
                           ("files", ("c.bin", b"\x00\x01\x02" * 100))])
    results = r.json()["results"]
    assert [x["decision"] for x in results] == ["flag", "allow", None]
    assert results[2]["error"]


def test_evidence_report_and_bundle_of_a_matched_check(client):
    wid = _register(client)
    check_id = _check(client).json()["check_id"]
    r = client.get(f"/v1/checks/{check_id}/report", headers=client.h)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert wid in r.text and "Reposted" not in r.text.split("<body", 1)[0]
    bundle = client.get(f"/v1/checks/{check_id}/bundle", headers=client.h).json()
    assert bundle["schema"] == "copyscope.evidence/v1"
    assert bundle["matches"][0]["registered"]["work_id"] == wid and bundle["matches"][0]["passages"]
    allowed = _check(client, data=OTHER).json()["check_id"]
    r = client.get(f"/v1/checks/{allowed}/report", headers=client.h)
    assert r.status_code == 404 and "no evidence" in r.json()["error"]


def test_audit_log_records_every_decision_and_exports_jsonl(client):
    wid = _register(client)
    ids = [_check(client).json()["check_id"], _check(client, data=OTHER).json()["check_id"]]
    rows = client.get("/v1/audit", headers=client.h).json()
    assert [r["check_id"] for r in rows] == ids
    assert rows[0]["decision"] == "flag" and rows[0]["matches"][0]["work_id"] == wid
    assert rows[1]["decision"] == "allow" and rows[1]["matches"] == []
    assert rows[0]["input"]["sha256"] and rows[0]["time"] and rows[0]["key_id"]
    r = client.get("/v1/audit/export", headers=client.h)
    lines = [json.loads(x) for x in r.text.splitlines()]
    assert [x["check_id"] for x in lines] == ids
    assert client.get(f"/v1/checks/{ids[0]}", headers=client.h).json()["decision"] == "flag"


# -- works and registration ----------------------------------------------------------
def test_register_with_a_creation_record_gives_a_verifiable_receipt(client):
    record = {"schema": "copyscope.creation-record/v1", "authors": [{"name": "Ann"}],
              "generation": {"prompt": "a lighthouse at dusk", "seed": 7}}
    r = client.post("/v1/works", headers=client.h, files=[("files", ("l.md", ARTICLE))],
                    data={"owner": "Ann", "title": "Lighthouse", "record": json.dumps(record)})
    if r.status_code == 422:      # the record schema is the ledger's: show what it wants
        pytest.fail(r.json()["error"])
    work = r.json()["works"][0]
    assert work["title"] == "Lighthouse" and work["receipt"]["schema"] == "copyscope.receipt/v1"
    from copyscope import api
    with client.svc.tenants.reader(client.tenant.id) as ws:
        assert api.verify_receipt(work["receipt"], data=ARTICLE, ws=ws)["work"] == work["work_id"]
    detail = client.get(f"/v1/works/{work['work_id']}", headers=client.h).json()
    assert detail["record"]["generation"]["prompt"] == "a lighthouse at dusk"
    assert detail["receipts"] and detail["files"] == 1
    r = client.get(f"/v1/works/{work['work_id']}/package", headers=client.h)
    assert r.status_code == 200 and r.content[:2] == b"PK"


def test_bad_creation_record_is_a_readable_422(client):
    r = client.post("/v1/works", headers=client.h, files=[("files", ("l.md", ARTICLE))],
                    data={"owner": "Ann", "record": "{not json"})
    assert r.status_code == 422 and r.json()["error"].startswith("record: not valid JSON")


def test_list_and_search_works(client):
    _register(client, "lighthouse.md")
    _register(client, "other.md", OTHER)
    listed = client.get("/v1/works", headers=client.h).json()
    assert listed["total"] == 2 and [w["title"] for w in listed["works"]] == ["other.md", "lighthouse.md"]
    found = client.get("/v1/works", headers=client.h, params={"q": "LIGHT"}).json()
    assert [w["title"] for w in found["works"]] == ["lighthouse.md"]
    assert client.get("/v1/works", headers=client.h, params={"q": "%"}).json()["total"] == 0


# -- bad input -------------------------------------------------------------------------
def test_oversized_upload_is_413(client):
    big = b"a" * (client.svc.settings.max_upload_bytes + 128 * 1024)
    r = client.post("/v1/check", headers=client.h, files={"file": ("big.txt", big)})
    assert r.status_code == 413 and "limit" in r.json()["error"]

    def chunks():        # no Content-Length: the limit holds while the body streams
        for _ in range(40):
            yield b"b" * 10_000
    r = client.post("/v1/check/text", headers={**client.h, "content-type": "application/json"}, content=chunks())
    assert r.status_code == 413


def test_wrong_content_type_is_415_and_schema_mismatch_is_422(client):
    assert client.post("/v1/check", headers=client.h, json={"text": "x"}).status_code == 415
    assert client.post("/v1/check/text", headers=client.h, data={"text": "x"}).status_code == 415
    r = client.post("/v1/check/text", headers=client.h, json={"text": ""})
    assert r.status_code == 422 and r.json()["error"].startswith("text:")
    r = client.post("/v1/sets", headers=client.h, json={"name": "x", "threshold": 7})
    assert r.status_code == 422 and "threshold" in r.json()["error"] and r.json()["detail"]
    r = client.post("/v1/sets", headers=client.h, content=b"{broken", )
    assert r.status_code in (415, 422)
    r = client.post("/v1/sets", headers={**client.h, "content-type": "application/json"}, content=b"{broken")
    assert r.status_code == 422 and "JSON" in r.json()["error"]


def test_malformed_multipart_is_400(client):
    r = client.post("/v1/check", headers={**client.h, "content-type": "multipart/form-data; boundary=zzz"},
                    content=b"--zzz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\nabc")
    assert r.status_code in (400, 422) and r.json()["error"]


def test_path_tricks_in_file_names_never_escape(client, tmp_path):
    for name in ["../../../etc/passwd.md", "..\\..\\win.md", "/abs/path.md", "a\x00b.md", "...", ""]:
        r = client.post("/v1/works", headers=client.h, files=[("files", (name, ARTICLE))], data={"owner": "x"})
        assert r.status_code in (201, 422), (name, r.text)
    home = client.svc.settings.home
    escaped = [p for p in tmp_path.rglob("*") if home not in p.parents and p != home]
    assert escaped == []
    titles = [w["title"] for w in client.get("/v1/works", headers=client.h).json()["works"]]
    assert all("/" not in t and "\\" not in t and "\x00" not in t for t in titles)


def test_binary_junk_is_a_422_not_a_crash(client):
    r = _check(client, data=bytes(range(256)) * 50, name="x.png")
    assert r.status_code == 200 and r.json()["decision"] is None and r.json()["error"]


# -- jobs ------------------------------------------------------------------------------
def _files(n: int) -> list:
    return [("files", (f"doc{i:03d}.txt", (f"Document {i}. " + " ".join(f"w{i}x{j}" for j in range(120))).encode()))
            for i in range(n)]


def test_registration_job_runs_and_reports_each_item(client):
    files = _files(20) + [("files", ("junk.txt", b"\x00" * 500))]
    r = client.post("/v1/jobs", headers=client.h, files=files, data={"kind": "register", "owner": "Ann"})
    assert r.status_code == 202 and r.json()["state"] == "queued" and r.json()["total"] == 21
    job_id = r.json()["id"]
    JobRunner(client.svc).run_pending()
    job = client.get(f"/v1/jobs/{job_id}", headers=client.h, params={"items": True}).json()
    assert job["state"] == "done" and job["done"] == 20 and job["failed"] == 1
    assert job["items"][-1]["state"] == "failed" and "junk.txt" in job["items"][-1]["error"]
    assert client.get("/v1/works", headers=client.h).json()["total"] == 20


def test_job_resumes_after_a_crash_without_registering_twice(client):
    r = client.post("/v1/jobs", headers=client.h, files=_files(40), data={"kind": "register", "owner": "Ann"})
    job_id = r.json()["id"]
    svc = client.svc
    job = svc.store.job(client.tenant.id, job_id)
    # The crash window: a chunk committed in the registry, the process died before
    # marking its items done in the service database.
    from copyscope.service.core import upload_key
    first = svc.store.job_items(job_id, limit=16)
    with svc.tenants.writer(client.tenant.id) as ws:
        committed = ws.register_uploads([(Path(i.staged), i.name, upload_key(job.params["stage"], i.seq, i.name))
                                         for i in first], owner="Ann")
    svc.store.set_job_state(job_id, "running")
    JobRunner(svc).run_pending()
    done = client.get(f"/v1/jobs/{job_id}", headers=client.h, params={"items": True}).json()
    assert done["state"] == "done" and done["done"] == 40
    assert [i["result"] for i in done["items"][:16]] == [w.work_id for w in committed.works]
    assert client.get("/v1/works", headers=client.h).json()["total"] == 40


def test_cancel_stops_a_job_and_lists_what_is_left(client):
    job_id = client.post("/v1/jobs", headers=client.h, files=_files(5),
                         data={"kind": "register", "owner": "Ann"}).json()["id"]
    r = client.post(f"/v1/jobs/{job_id}/cancel", headers=client.h)
    assert r.json()["cancel_requested"] is True
    JobRunner(client.svc).run_pending()
    job = client.get(f"/v1/jobs/{job_id}", headers=client.h).json()
    assert job["state"] == "cancelled" and job["pending"] == 5


def test_check_job_audits_every_item(client):
    _register(client)
    files = [("files", ("a.md", _copy_of(ARTICLE))), ("files", ("b.md", OTHER))]
    job_id = client.post("/v1/jobs", headers=client.h, files=files, data={"kind": "check"}).json()["id"]
    JobRunner(client.svc).run_pending()
    items = client.get(f"/v1/jobs/{job_id}", headers=client.h, params={"items": True}).json()["items"]
    assert [json.loads(i["result"])["decision"] for i in items] == ["flag", "allow"]
    assert len(client.get("/v1/audit", headers=client.h).json()) == 2


def test_openapi_spec_is_served_and_versioned(client):
    spec = client.get("/v1/openapi.json").json()
    assert spec["info"]["title"] == "copyscope"
    for path in ["/v1/check", "/v1/check/text", "/v1/check/batch", "/v1/works", "/v1/sets", "/v1/jobs",
                 "/v1/audit/export", "/v1/checks/{check_id}/report", "/v1/keys"]:
        assert path in spec["paths"], path
    assert {"401", "403", "413", "422", "429"} <= set(spec["paths"]["/v1/check"]["post"]["responses"])


def test_duplicate_set_name_is_409_and_two_different_keys_are_401(client):
    assert client.post("/v1/sets", headers=client.h, json={"name": "hero"}).status_code == 201
    r = client.post("/v1/sets", headers=client.h, json={"name": "hero"})
    assert r.status_code == 409 and "exists already" in r.json()["error"]
    _, other = client.svc.store.create_key(client.tenant.id, "other", ["check"])
    r = client.get("/v1/works", headers={**client.h, "X-API-Key": other})
    assert r.status_code == 401 and "two different" in r.json()["error"]
    assert client.get("/v1/works", headers={**client.h, "X-API-Key": client.key}).status_code == 200


def test_admission_answers_503_past_the_checks_in_flight():
    import asyncio

    from copyscope.service.admission import Admission

    release = asyncio.Event()

    async def slow_app(scope, receive, send):
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def call(app, path):
        sent = []

        async def send(message):
            sent.append(message)
        await app({"type": "http", "path": path}, None, send)
        return sent[0]["status"], dict(sent[0].get("headers", []))

    async def scenario():
        app = Admission(slow_app, limit=2)
        first = [asyncio.create_task(call(app, "/v1/check")) for _ in range(2)]
        await asyncio.sleep(0)
        status, headers = await call(app, "/v1/check/text")          # the third in flight
        other = asyncio.create_task(call(app, "/v1/works"))          # not a check: never refused
        await asyncio.sleep(0)
        release.set()
        done = [await t for t in first] + [await other]
        after = await call(app, "/v1/check")
        return status, headers, [s for s, _ in done], after[0], app.in_flight

    status, headers, done, after, in_flight = asyncio.run(scenario())
    assert status == 503 and headers[b"retry-after"] == b"1"
    assert headers[b"connection"] == b"close"          # the retry may reach another worker
    assert done == [200, 200, 200] and after == 200 and in_flight == 0


def test_admission_refuses_a_check_that_would_wait_too_long_for_its_turn():
    """The bound is a wait: with 100-ms turns and a 250-ms budget, a check behind
    two others is admitted and one behind three is refused, far below the count cap."""
    import asyncio
    from types import SimpleNamespace

    from copyscope.service.admission import Admission

    release = asyncio.Event()

    async def slow_app(scope, receive, send):
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    service = SimpleNamespace(turn_s=lambda: 0.1)

    async def call(app):
        sent = []

        async def send(message):
            sent.append(message)
        await app({"type": "http", "path": "/v1/check"}, None, send)
        return sent[0]["status"], json.loads(sent[1]["body"]) if sent[0]["status"] != 200 else None

    async def scenario():
        app = Admission(slow_app, limit=64, max_wait_ms=250, turn_s=lambda: service.turn_s())
        ahead = [asyncio.create_task(call(app)) for _ in range(3)]   # the third waits ~0.2 s: admitted
        await asyncio.sleep(0)
        refused = await call(app)                                    # would wait ~0.3 s
        service.turn_s = lambda: 0.01                                # short turns: room again
        fourth = asyncio.create_task(call(app))
        await asyncio.sleep(0)
        release.set()
        return refused, [await t for t in ahead + [fourth]]

    refused, done = asyncio.run(scenario())
    assert refused[0] == 503 and "300 ms of waiting" in refused[1]["error"]
    assert [status for status, _ in done] == [200] * 4


def test_admission_lets_a_passing_queue_drain_and_refuses_a_standing_one():
    """With ``standing_ms``, a wait over the bound is admitted until it has stood
    that long (a stall queues checks for a moment; overload keeps them queued),
    and a wait over four times the bound is refused at once."""
    import asyncio

    from copyscope.service.admission import Admission

    now = [100.0]

    async def call(app):
        sent = []

        async def send(message):
            sent.append(message)
        await app({"type": "http", "path": "/v1/check"}, None, send)
        return sent[0]["status"]

    async def refused_at_once(app):
        try:            # an admitted check would wait for its release: not answered within a second
            return await asyncio.wait_for(call(app), 1.0) == 503
        except asyncio.TimeoutError:
            return False

    def admission(release):
        async def slow_app(scope, receive, send):
            await release.wait()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
        return Admission(slow_app, limit=64, max_wait_ms=250, turn_s=lambda: 0.1, standing_ms=500,
                         clock=lambda: now[0])

    async def standing():
        release = asyncio.Event()
        app = admission(release)
        queued = [asyncio.create_task(call(app)) for _ in range(4)]    # the 4th would wait 0.3 s: over
        await asyncio.sleep(0)
        now[0] += 0.4
        queued.append(asyncio.create_task(call(app)))                  # over for 0.4 s: still admitted
        await asyncio.sleep(0)
        now[0] += 0.2
        refused = await refused_at_once(app)                           # over for 0.6 s: refused
        release.set()
        done = [await t for t in queued]
        return refused, done, await call(app), app.over_since          # drained: admitted, and reset

    async def hard():
        release = asyncio.Event()
        app = admission(release)
        queued = [asyncio.create_task(call(app)) for _ in range(11)]   # up to 1.0 s, never standing
        await asyncio.sleep(0)
        refused = await refused_at_once(app)                           # 1.1 s > 4 x 0.25 s: at once
        release.set()
        return refused, [await t for t in queued]

    refused, done, drained, over_since = asyncio.run(standing())
    assert refused and done == [200] * 5 and drained == 200 and over_since is None
    refused, done = asyncio.run(hard())
    assert refused and done == [200] * 11


def test_a_turn_reports_its_typical_length_whatever_one_stall_took():
    import time as _time

    from copyscope.service.core import MIN_TURNS, Turns

    turns = Turns()
    assert turns.typical_hold_s() == 0.0
    for pause in (0.3, 0.02, 0.5) + (0.02,) * (MIN_TURNS - 4):      # a cold first turn, one stall
        with turns:
            _time.sleep(pause)
    # Too few turns to tell a fresh process's cold ones from its usual: no estimate
    # yet (admission then waits for the count cap), instead of refusing on them.
    assert turns.typical_hold_s() == 0.0
    with turns:
        _time.sleep(0.02)
    assert 0.015 < turns.typical_hold_s() < 0.2


def test_one_job_runner_per_home_and_another_takes_over(client):
    first, second = JobRunner(client.svc), JobRunner(client.svc)
    assert first._hold_runner_lock() is True
    assert second._hold_runner_lock() is False      # `serve --workers 2`: the other process waits
    first.stop()                                    # the holder goes away (or dies: the kernel drops the flock)
    assert second._hold_runner_lock() is True
    second.stop()


def test_settings_travel_to_worker_processes_as_json(tmp_path):
    s = ServiceSettings(home=tmp_path, db_url="postgresql://u@h/db", candidate_limit=7, image_model=tmp_path / "m.onnx")
    assert ServiceSettings.from_json(s.to_json()) == s


def test_a_damaged_kept_query_is_named_not_rendered(client):
    _register(client)
    check_id = _check(client).json()["check_id"]
    kept = client.svc.tenants.evidence_dir(client.tenant.id, check_id) / "query.bin"
    kept.write_bytes(kept.read_bytes()[:-1] + b"!")
    r = client.get(f"/v1/checks/{check_id}/bundle", headers=client.h)
    assert r.status_code == 503 and "damaged" in r.json()["error"]


def test_serving_processes_hand_freed_memory_back():
    """``serve`` caps malloc arenas and trims freed memory in a daemon thread (glibc)."""
    import threading

    from copyscope.service.app import limit_malloc_arenas
    assert limit_malloc_arenas(trim_every_s=0.05) is True
    assert any(t.name == "malloc-trim" and t.daemon for t in threading.enumerate())


def test_freed_memory_is_handed_back_only_after_growth_past_the_working_set():
    """A steady process is left alone (a trim returns pages the next checks fault
    back in); growth past the margin over the lowest size since the last trim
    trims once, and that trim's result is the new base."""
    from copyscope.service.app import GrowthTrim, anonymous_bytes
    sizes = iter([300, 310, 290, 330, 420, 305, 350, 395, 396])
    trims = []
    watch = GrowthTrim(lambda: trims.append(1), lambda: next(sizes), growth=100)   # base 300
    assert [watch.tick() for _ in range(3)] == [False, False, False]    # 310, 290 (new base), 330
    assert watch.tick() is True and watch.floor == 305                  # 420 > 290 + 100: trimmed to 305
    assert [watch.tick() for _ in range(2)] == [False, False] and len(trims) == 1   # 350, 395 ≤ 405
    assert anonymous_bytes() > 1 << 20          # this test process's own heap (Linux)
