"""Ledger commands: verify, receipt, draft, label, revoke, export, keys, log.

Installed onto the main Typer app by ``copyscope.cli``; like every command they
only parse, call ``copyscope.api`` and render.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Optional

import typer

from copyscope import api
from copyscope.errors import WorkspaceError
from copyscope.render import emit_json


def _receipt_summary(r: dict) -> str:
    body = json.loads(r["entry"])["body"]
    return f"{body.get('work', '-')}\t{body['kind']}\tledger index {r['index']}"


def install(app: typer.Typer, ctx_of: Callable) -> None:  # noqa: C901 - a list of small commands
    draft_app = typer.Typer(help="Log drafts of a work as they are made.", no_args_is_help=True)
    keys_app = typer.Typer(help="The ledger's signing keys.", no_args_is_help=True)
    log_app = typer.Typer(help="The transparency log itself.", no_args_is_help=True)
    app.add_typer(draft_app, name="draft")
    app.add_typer(keys_app, name="keys")
    app.add_typer(log_app, name="log")

    @app.command()
    def verify(
        ctx: typer.Context,
        receipt: Path = typer.Argument(..., help="Receipt JSON (from register or `copyscope receipt`)."),
        file: Optional[Path] = typer.Argument(None, help="The registered file, to check its hash."),
        log_key: list[str] = typer.Option([], "--log-key", help="Pinned log verifier key (vkey); repeatable."),
        clock_key: list[str] = typer.Option([], "--clock-key", help="Pinned clock cosigner key (without a workspace)."),
    ) -> None:
        """Verify a receipt offline; each failure names the check. Exit 6 when a check fails."""
        c = ctx_of(ctx)
        rec = api.read_receipt(receipt)
        data = file.read_bytes() if file is not None else None
        try:
            ws = api.open_workspace(c.settings)
        except WorkspaceError:
            ws = None                     # no workspace here: keys must be given
        try:
            result = api.verify_receipt(rec, data=data, ws=ws, log_keys=log_key, clock_keys=clock_key)
        finally:
            if ws is not None:
                ws.close()
        if c.json:
            emit_json({"ok": True, **result})
            return
        checks = ["entry-signature", "inclusion", "checkpoint-signature"]
        checks += ["cosignature"] if result.get("cosigned_time") else []
        checks += ["file-hash"] if data is not None else []
        checks += ["consistency"] if ws is not None else []
        typer.echo(f"OK {result['work']} ({result['kind']}) is entry {result['index']} of {result['origin']}; "
                   f"checked: {', '.join(checks)}; log consistent up to size {result['tree_size']}")

    @app.command()
    def receipt(
        ctx: typer.Context,
        work: str = typer.Argument(..., help="Work id, e.g. W0000001."),
        out: Optional[Path] = typer.Option(None, "--out", "-o", help="Directory to write the receipts to."),
    ) -> None:
        """Issue fresh receipts for every ledger entry of a work (against the newest checkpoint)."""
        c = ctx_of(ctx)
        with api.open_workspace(c.settings) as ws:
            items = api.receipts(ws, work)
        if out is not None:
            from copyscope.ledger.service import write_json  # noqa: PLC0415
            for r in items:
                write_json(out / f"{work}-{r['index']:08d}.json", r)
        if c.json or out is None:
            emit_json(items)
        else:
            for r in items:
                typer.echo(_receipt_summary(r))

    @draft_app.command("add")
    def draft_add(
        ctx: typer.Context,
        work: str = typer.Argument(..., help="Work id the draft belongs to."),
        file: Path = typer.Argument(..., help="The draft file (only its hash and size are logged)."),
        note: Optional[str] = typer.Option(None, "--note", help="Selection note, e.g. 'chose seed 1234'."),
    ) -> None:
        """Log a draft of WORK with the time and an optional note."""
        c = ctx_of(ctx)
        with api.open_workspace(c.settings) as ws:
            r = api.add_draft(ws, work, file, note)
        emit_json(r) if c.json else typer.echo(_receipt_summary(r))

    @app.command()
    def label(ctx: typer.Context, work: str = typer.Argument(...), text: str = typer.Argument(..., help="The statement.")) -> None:
        """Log a labelled statement about a work (e.g. 'AI-assisted', 'licensed to X')."""
        c = ctx_of(ctx)
        with api.open_workspace(c.settings) as ws:
            r = api.label_work(ws, work, text)
        emit_json(r) if c.json else typer.echo(_receipt_summary(r))

    @app.command()
    def revoke(ctx: typer.Context, work: str = typer.Argument(...),
               reason: Optional[str] = typer.Option(None, "--reason", help="Why the registration is withdrawn.")) -> None:
        """Log the withdrawal of a work's registration (the original entry stays, as history)."""
        c = ctx_of(ctx)
        with api.open_workspace(c.settings) as ws:
            r = api.revoke_work(ws, work, reason)
        emit_json(r) if c.json else typer.echo(_receipt_summary(r))

    @app.command()
    def export(
        ctx: typer.Context,
        work: str = typer.Argument(..., help="Work id."),
        out: Path = typer.Option(..., "--out", "-o", help="The evidence package to write (.zip)."),
    ) -> None:
        """Write an evidence package that anyone can verify offline with its verify.py."""
        c = ctx_of(ctx)
        with api.open_workspace(c.settings) as ws:
            path = api.export_package(ws, work, out)
        emit_json({"package": str(path)}) if c.json else typer.echo(str(path))

    @keys_app.command("show")
    def keys_show(ctx: typer.Context) -> None:
        """Print the public keys (C2SP signed-note vkeys), every generation."""
        c = ctx_of(ctx)
        with api.open_workspace(c.settings) as ws:
            keys = api.keys_show(ws)
        if c.json:
            emit_json(keys)
            return
        for role, vkeys in keys.items():
            for k in vkeys:
                typer.echo(f"{role}\t{k}")

    @keys_app.command("rotate")
    def keys_rotate(ctx: typer.Context) -> None:
        """New keys and a new log origin; old receipts stay verifiable with the old keys."""
        c = ctx_of(ctx)
        with api.open_workspace(c.settings) as ws:
            origin = api.rotate_keys(ws)
        emit_json({"origin": origin}) if c.json else typer.echo(f"new log origin {origin}")

    @log_app.command("export")
    def log_export(ctx: typer.Context, out: Path = typer.Argument(..., help="Directory for the static tiles.")) -> None:
        """Write the log as static C2SP tlog-tiles (checkpoint, tiles, entry bundles)."""
        c = ctx_of(ctx)
        with api.open_workspace(c.settings) as ws:
            info = api.export_log(ws, out)
        emit_json(info) if c.json else typer.echo(
            f"tree size {info['tree_size']}: {info['tiles']} tiles, {info['entry_bundles']} entry bundles in {out}")

    @log_app.command("checkpoint")
    def log_checkpoint(ctx: typer.Context) -> None:
        """Print the newest signed checkpoint."""
        c = ctx_of(ctx)
        with api.open_workspace(c.settings) as ws:
            cp = ws.ledger.latest()
        if cp is None:
            typer.echo("the log is empty")
        else:
            typer.echo(cp.note, nl=False)
