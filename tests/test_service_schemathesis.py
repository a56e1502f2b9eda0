"""Property-based API tests: schemathesis drives every operation of the
service's OpenAPI spec (``/v1/openapi.json``) in-process, over ASGI.

Two runs over the whole spec:

* with a valid admin key (every scope) in ``X-API-Key``: no 5xx anywhere, every
  status code is one the spec documents for that operation, and every response
  body matches its documented schema;
* with no key at all: the same checks, and no operation but ``/v1/health``
  answers 2xx (each one needs a key).

The tenant has works (the text samples), a protected set, a check with kept
evidence and a finished job before the run, so the GET operations have data.
Bounded and reproducible: a fixed seed, deterministic generation, a few
examples per operation, no deadline, no example database, no network.
"""
from __future__ import annotations

import zlib
from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")

from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    response_schema_conformance,
    status_code_conformance,
)

SAMPLES = Path(__file__).resolve().parents[1] / "src" / "copyscope" / "samples" / "text"
MAX_EXAMPLES = 20                 # per operation and test; the whole file takes ~30 s on 2 cores
SEED = 20240611
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]

CONFIG = {
    "seed": SEED,
    "suppress-health-check": ["too_slow", "filter_too_much", "data_too_large"],
    "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
}


def _served_spec():
    """The spec as the app serves it, read over ASGI from a throw-away app
    (the tests run against a fresh one, made by the ``service_env`` fixture;
    schemathesis' fixture-based lazy loading does not work with pytest 9)."""
    import shutil
    import tempfile

    from schemathesis.python import asgi

    from copyscope.service.app import create_app
    from copyscope.service.config import ServiceSettings

    home = Path(tempfile.mkdtemp(prefix="copyscope-spec-"))
    try:
        app = create_app(ServiceSettings(home=home), run_jobs=False)
        loaded = schemathesis.openapi.from_asgi("/v1/openapi.json", app, config=schemathesis.Config.from_dict(CONFIG))
        asgi.shutdown_lifespans()
        app.state.service.close()
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return loaded


schema = _served_spec()


@pytest.fixture(scope="module")
def service_env(tmp_path_factory):
    """The app under test, an admin key, and data for the GET operations:
    four registered works, a protected set, a check that kept evidence, a
    check that matched nothing, and a finished check job."""
    from schemathesis.python import asgi

    from copyscope.service.app import create_app
    from copyscope.service.config import ServiceSettings
    from copyscope.service.core import Upload
    from copyscope.service.jobs import JobRunner

    home = tmp_path_factory.mktemp("service")
    # A high default rate so the fuzzer's bursts do not turn into 429s.
    app = create_app(ServiceSettings(home=home, rate_per_s=100_000.0, burst=1_000_000))
    svc = app.state.service
    tenant, key = svc.create_tenant("acme")
    with svc.tenants.writer(tenant.id) as ws:
        outcome = ws.register(sorted((SAMPLES / "registered").iterdir()), owner="Acme Press",
                              license="CC-BY-4.0", each=True)
    assert len(outcome.works) == 4, outcome.errors
    work_ids = [w.work_id for w in outcome.works]
    who = svc.auth.authenticate(key, "admin")
    svc.create_set(who, "protected", action="block", threshold=0.3, work_ids=work_ids[:2])
    suspect = (SAMPLES / "suspects" / "en_light_edit.txt").read_bytes()
    matched, _ = svc.check(who, [Upload("suspect.txt", suspect),
                                         Upload("other.txt", b"nothing like anything registered here")])
    assert matched["matches"] and matched["check_id"], matched
    job = svc.submit_job(who, "check", [Upload("a.txt", suspect)], {"only_sets": []})
    JobRunner(svc).run_pending()
    assert svc.job(who, job["id"])["state"] == "done"
    protected = svc.store.protected_sets(tenant.id)[0].id
    doomed_set = svc.create_set(who, "to delete", action="flag", threshold=0.9)["id"]
    doomed_key = svc.create_key(who, "to revoke", ["check"])[0]["id"]
    # Real ids, put in place of the generated ones in about half the cases of
    # an operation with a path parameter (a DELETE gets a victim of its own).
    real = {"work_id": work_ids[0], "check_id": matched["check_id"], "job_id": job["id"],
            "set_id": protected, "key_id": doomed_key}
    real_for_delete = {"set_id": doomed_set, "key_id": doomed_key}
    yield {"app": app, "service": svc, "key": key, "real": real, "real_for_delete": real_for_delete}
    asgi.shutdown_lifespans()        # the app's lifespan (its job runner), started by the first request
    svc.close()


def use_real_ids(case, env) -> None:
    """Let about half the cases name things that exist, so the 2xx answers and
    their schemas are tested too: path parameters (a work, check, job, set or
    key; a DELETE gets a victim of its own) and the fields that name protected
    sets or works. Which half is picked by a hash of the generated case, so the
    run stays reproducible."""
    seen = repr((sorted(case.path_parameters.items()) if case.path_parameters else None, case.query, case.body))
    if zlib.crc32(seen.encode("utf-8", "surrogatepass")) % 2:
        return
    real = env["real_for_delete"] if case.method.upper() == "DELETE" else env["real"]
    for name in list(case.path_parameters or ()):
        if name in real:
            case.path_parameters[name] = real[name]
    if isinstance(case.body, dict):
        fields = {"sets": env["real"]["set_id"], "derived_from": env["real"]["work_id"],
                  "work_ids": env["real"]["work_id"], "add": env["real"]["work_id"]}
        for name, value in fields.items():
            if name in case.body:
                # keep the generated shape: a JSON list, or one (comma-separated) form field
                case.body[name] = [value] if isinstance(case.body[name], list) else value


@schema.parametrize()
def test_api_with_admin_key(case, service_env):
    """No 5xx; documented status codes and response bodies, with a valid admin key."""
    use_real_ids(case, service_env)
    case.call_and_validate(app=service_env["app"], headers={"X-API-Key": service_env["key"]}, checks=CHECKS)


@schema.parametrize()
def test_api_without_key(case, service_env):
    """The same checks with no key: nothing but the health check succeeds."""
    for name in ("Authorization", "X-API-Key"):
        if case.headers:
            case.headers.pop(name, None)
    response = case.call_and_validate(app=service_env["app"], checks=CHECKS)
    if case.path != "/v1/health":
        assert response.status_code >= 400, (case.method, case.path, response.status_code, response.content[:300])
