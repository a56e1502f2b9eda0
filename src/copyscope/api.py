"""``copyscope.api``: the one entry point for every shell (CLI, HTTP, notebooks).

>>> from copyscope import api
>>> settings = api.Settings.resolve("/tmp/cs-doctest-home")   # doctest: +SKIP
>>> ws = api.init(settings)                                    # doctest: +SKIP
>>> ws.register(["article.md"], owner="Ann", license="CC-BY-4.0")  # doctest: +SKIP
>>> result = ws.check(["suspect.html"])                        # doctest: +SKIP
>>> api.write_report(result.bundle(), "report.html")           # doctest: +SKIP
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import datetime as dt
from pathlib import Path
from typing import Any

from copyscope.comparing import PairScore, compare_all, compare_pairs, read_pairs_file
from copyscope.comparing import compare as _compare
from copyscope.errors import CopyscopeError, InputError, UsageError, VerificationFailed
from copyscope.evidence import Result, canonical_bytes, read_bundle, write_bundle
from copyscope.plugins import Modality, load_modalities
from copyscope.settings import Settings

if TYPE_CHECKING:  # the workspace pulls in SQLAlchemy and the ledger: imported on first use
    from copyscope.workspace import RegisterOutcome, Workspace


def __getattr__(name: str):  # noqa: ANN202 - lazy ``api.Workspace`` / ``api.RegisterOutcome``
    if name in ("Workspace", "RegisterOutcome"):
        import copyscope.workspace as ws  # noqa: PLC0415
        return getattr(ws, name)
    raise AttributeError(name)


__all__ = [
    "CopyscopeError", "PairScore", "RegisterOutcome", "Result", "Settings", "Workspace",
    "canonical_bytes", "check", "compare", "compare_all", "compare_pairs", "init", "open_workspace",
    "read_bundle", "read_pairs_file", "register", "write_bundle", "write_report", "load_modalities",
]


def init(settings: Settings, modalities: dict[str, Modality] | None = None) -> Workspace:
    """Create (or upgrade) the workspace at ``settings.home``; idempotent."""
    from copyscope.workspace import Workspace  # noqa: PLC0415
    return Workspace.init(settings, modalities)


def open_workspace(settings: Settings, modalities: dict[str, Modality] | None = None) -> Workspace:
    from copyscope.workspace import Workspace  # noqa: PLC0415
    return Workspace.open(settings, modalities)


def register(settings: Settings, paths: list[str], **kwargs: Any) -> RegisterOutcome:
    with open_workspace(settings) as ws:
        return ws.register(paths, **kwargs)


def check(settings: Settings, paths: list[str], **kwargs: Any) -> Result:
    with open_workspace(settings) as ws:
        return ws.check(paths, **kwargs)


def compare(a: str | Path, b: str | Path, settings: Settings,
            modalities: dict[str, Modality] | None = None) -> Result:
    return _compare(a, b, settings, modalities or load_modalities(settings))


def write_report(bundle: dict[str, Any], out: str | Path, *, generated_at: str | None = None) -> Path:
    """Render the HTML evidence report of a bundle to ``out`` (one offline file)."""
    from copyscope.report import render_html  # noqa: PLC0415 - jinja only when needed
    out = Path(out)
    if out.is_dir():
        raise UsageError(f"{out}: is a directory; give a file name for the report")
    stamp = generated_at or dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
    tmp = out.with_name(out.name + ".tmp")
    try:
        tmp.write_text(render_html(bundle, generated_at=stamp), encoding="utf-8")
        tmp.replace(out)
    except OSError as exc:
        raise InputError(f"{out}: cannot write report ({exc.strerror})") from None
    return out


def report_from_file(bundle_path: str | Path, out: str | Path) -> Path:
    return write_report(read_bundle(Path(bundle_path)), out)


# -- ledger: receipts, drafts, evidence packages, keys, tiles ------------------------------
def add_draft(ws: Workspace, work_id: str, path: str | Path, note: str | None = None) -> dict:
    """Log a draft of ``work_id`` (its hash, time and note); returns its receipt."""
    from copyscope.ingest import read_artifact  # noqa: PLC0415
    art = read_artifact(Path(path), ws.settings)
    index = ws.ledger.draft(work_id, art.data, _media_type(Path(path)), note)
    with ws.engine.connect() as conn:
        return ws.ledger.receipts_at(conn, [index])[0]


def _media_type(path: Path) -> str:
    import mimetypes  # noqa: PLC0415
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def label_work(ws: Workspace, work_id: str, label: str) -> dict:
    index = ws.ledger.label(work_id, label)
    with ws.engine.connect() as conn:
        return ws.ledger.receipts_at(conn, [index])[0]


def revoke_work(ws: Workspace, work_id: str, reason: str | None = None) -> dict:
    index = ws.ledger.revoke(work_id, reason)
    with ws.engine.connect() as conn:
        return ws.ledger.receipts_at(conn, [index])[0]


def receipts(ws: Workspace, work_id: str) -> list[dict]:
    return ws.ledger.receipts_for(work_id)


def read_receipt(path: str | Path) -> dict:
    import json  # noqa: PLC0415
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        from copyscope.errors import NotFoundError  # noqa: PLC0415
        raise NotFoundError(f"{p}: no such receipt") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{p}: not a readable receipt ({exc})") from None
    if not isinstance(data, dict) or data.get("schema") != "copyscope.receipt/v1":
        raise InputError(f"{p}: not a copyscope receipt (expected schema copyscope.receipt/v1)")
    return data


def verify_receipt(receipt: dict, *, data: bytes | None = None, ws: Workspace | None = None,
                   log_keys: list[str] = (), clock_keys: list[str] = ()) -> dict:
    """Verify offline. With a workspace: its pinned keys, plus consistency up to its
    newest checkpoint; without: the keys given (required)."""
    from copyscope.ledger.verifier import VKey, VerificationError  # noqa: PLC0415
    try:
        if ws is not None:
            return ws.ledger.verify(receipt, data, log_keys)
        if not log_keys:
            raise UsageError("no workspace: pass the log's verifier key with --log-key")
        from copyscope.ledger.verifier import verify_receipt as _verify  # noqa: PLC0415
        return _verify(receipt, [VKey(k) for k in log_keys], [VKey(k) for k in clock_keys], data)
    except VerificationError as exc:
        raise VerificationFailed(str(exc), check=exc.check) from None


def export_package(ws: Workspace, work_id: str, out: str | Path) -> Path:
    from copyscope.ledger.package import build_package  # noqa: PLC0415
    return build_package(ws.ledger, ws.blobs, work_id, Path(out))


def export_log(ws: Workspace, out: str | Path) -> dict:
    from copyscope.ledger.tiles import export_tiles  # noqa: PLC0415
    return export_tiles(ws.ledger.log, Path(out))


def keys_show(ws: Workspace) -> dict:
    return ws.ledger.keys.verifier_keys()


def rotate_keys(ws: Workspace) -> str:
    with ws._lock():
        return ws.ledger.rotate()
