"""Service commands: ``serve`` and ``tenant`` (create tenants, issue keys).

Installed onto the main Typer app by ``copyscope.cli``; they parse, call
``copyscope.service`` and render, like every command.
"""
from __future__ import annotations

from typing import Callable, Optional

import typer

from copyscope.errors import UsageError
from copyscope.render import emit_json


def service_settings(c, **overrides):  # noqa: ANN001, ANN201 - the CLI's Ctx → ServiceSettings
    from copyscope.service.config import ServiceSettings  # noqa: PLC0415
    s = c.settings
    return ServiceSettings(home=s.home, db_url=s.db_url, passphrase=s.passphrase, image_model=s.image_model,
                           **{k: v for k, v in overrides.items() if v is not None})


def install(app: typer.Typer, ctx_of: Callable) -> None:
    tenant_app = typer.Typer(help="Tenants of the service and their API keys.", no_args_is_help=True)
    app.add_typer(tenant_app, name="tenant")

    @app.command()
    def serve(
        ctx: typer.Context,
        host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on (0.0.0.0 for every one)."),
        port: int = typer.Option(8321, "--port", help="TCP port."),
        max_upload_mb: Optional[int] = typer.Option(None, "--max-upload-mb", help="Largest request body in MiB (default 32; larger answers 413)."),
        rate: Optional[float] = typer.Option(None, "--rate", help="Default rate limit of new keys, requests/s (default 100)."),
        burst: Optional[int] = typer.Option(None, "--burst", help="Default burst of new keys (default 200)."),
        log_level: str = typer.Option("warning", "--log-level", help="uvicorn log level: debug, info, warning, error."),
        workers: int = typer.Option(1, "--workers", help="Processes serving requests (one per core; default 1)."),
        max_inflight: Optional[int] = typer.Option(None, "--max-inflight", help="Checks in flight per process before 503 (default 128; 0 = no limit)."),
        max_wait_ms: Optional[float] = typer.Option(None, "--max-wait-ms", help="A check that would wait longer than this for its turn answers 503 once such waits have stood for 0.5 s, or at once past 4 times it (default 250; 0 = no limit)."),
        check_threads: Optional[int] = typer.Option(None, "--check-threads", help="Threads per process that run single checks (default 4; more requests wait their turn without a thread)."),
        candidate_limit: Optional[int] = typer.Option(None, "--candidate-limit", help="Registered docs verified per check and ranking (default 6; the CLI uses 25)."),
    ) -> None:
        """Start the HTTP service: the /v1 API (OpenAPI at /v1/openapi.json) and the web UI at /."""
        import os  # noqa: PLC0415

        import uvicorn  # noqa: PLC0415
        c = ctx_of(ctx)
        if max_upload_mb is not None and max_upload_mb < 1:
            raise UsageError("--max-upload-mb must be at least 1")
        if not 1 <= workers <= 64:
            raise UsageError("--workers must be between 1 and 64")
        if max_inflight is not None and max_inflight < 0:
            raise UsageError("--max-inflight must be 0 or more")
        if max_wait_ms is not None and not 0 <= max_wait_ms <= 3_600_000:
            raise UsageError("--max-wait-ms must be between 0 and 3600000")
        if check_threads is not None and not 1 <= check_threads <= 256:
            raise UsageError("--check-threads must be between 1 and 256")
        if candidate_limit is not None and not 1 <= candidate_limit <= 1000:
            raise UsageError("--candidate-limit must be between 1 and 1000")
        settings = service_settings(c, rate_per_s=rate, burst=burst, max_inflight_checks=max_inflight,
                                    max_wait_ms=max_wait_ms, check_threads=check_threads,
                                    candidate_limit=candidate_limit,
                                    max_upload_bytes=max_upload_mb * 1024 * 1024 if max_upload_mb else None)
        c.note(f"copyscope service on http://{host}:{port}/ (API /v1, docs /v1/docs); home {settings.home}")
        from copyscope.service.transport import NoDelayHttpProtocol  # noqa: PLC0415
        common = {"host": host, "port": port, "log_level": log_level, "access_log": False,
                  "timeout_graceful_shutdown": 10, "http": NoDelayHttpProtocol}
        if workers == 1:
            from copyscope.service import create_app  # noqa: PLC0415
            from copyscope.service.app import limit_malloc_arenas  # noqa: PLC0415
            from copyscope.service.workers import listening_socket  # noqa: PLC0415
            listening_socket(host, port, reuse_port=False).close()    # a taken port: one line, exit 2
            limit_malloc_arenas()           # workers > 1: each worker does it (app_from_environment)
            uvicorn.run(create_app(settings), **common)
            return
        from copyscope.service.core import Service  # noqa: PLC0415
        from copyscope.service.workers import serve_workers  # noqa: PLC0415
        Service(settings).close()           # migrate once, before the workers race to
        os.environ["COPYSCOPE_SERVICE_SETTINGS"] = settings.to_json()
        serve_workers(host, port, workers, {k: v for k, v in common.items() if k not in ("host", "port")})

    @tenant_app.command("create")
    def tenant_create(
        ctx: typer.Context,
        name: str = typer.Argument(..., help="The tenant's name (unique)."),
        unlisted: str = typer.Option("flag", "--unlisted", help="Decision for a match outside every protected set: flag or allow."),
    ) -> None:
        """Create a tenant and print its first API key (every scope). The key is shown once."""
        from copyscope.service.core import Service  # noqa: PLC0415
        c = ctx_of(ctx)
        svc = Service(service_settings(c))
        try:
            tenant, secret = svc.create_tenant(name, unlisted)
        finally:
            svc.close()
        if c.json:
            emit_json({"tenant": tenant.id, "name": tenant.name, "key": secret})
        else:
            typer.echo(f"tenant {tenant.id} ({tenant.name})\nadmin key: {secret}")

    @tenant_app.command("list")
    def tenant_list(ctx: typer.Context) -> None:
        """List the tenants."""
        from copyscope.service.core import Service  # noqa: PLC0415
        c = ctx_of(ctx)
        svc = Service(service_settings(c))
        try:
            tenants = svc.store.tenants()
        finally:
            svc.close()
        if c.json:
            emit_json([{"id": t.id, "name": t.name, "created_at": t.created_at} for t in tenants])
        for t in [] if c.json else tenants:
            typer.echo(f"{t.id}\t{t.name}\t{t.created_at}")

    @tenant_app.command("key")
    def tenant_key(
        ctx: typer.Context,
        name: str = typer.Argument(..., help="The tenant's name."),
        scopes: str = typer.Option("check", "--scopes", help="Comma-separated: check, register, admin."),
        label: str = typer.Option("cli", "--label", help="A name for the key."),
        rate: Optional[float] = typer.Option(None, "--rate", help="Requests/s for this key (default 100)."),
        burst: Optional[int] = typer.Option(None, "--burst", help="Burst for this key (default 200)."),
    ) -> None:
        """Issue another API key for a tenant; the key is shown once."""
        from copyscope.service.core import Service  # noqa: PLC0415
        c = ctx_of(ctx)
        svc = Service(service_settings(c))
        try:
            tenant = svc.store.tenant_by_name(name)
            key, secret = svc.store.create_key(tenant.id, label, [s.strip() for s in scopes.split(",") if s.strip()],
                                               rate_per_s=rate or svc.settings.rate_per_s,
                                               burst=burst or svc.settings.burst)
        finally:
            svc.close()
        if c.json:
            emit_json({**key.public(), "key": secret})
        else:
            typer.echo(f"key {key.id} ({','.join(key.scopes)}): {secret}")
