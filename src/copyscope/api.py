"""``copyscope.api``: the one entry point for every shell (CLI, HTTP, notebooks).

>>> from copyscope import api
>>> settings = api.Settings.resolve("/tmp/cs-doctest-home")   # doctest: +SKIP
>>> ws = api.init(settings)                                    # doctest: +SKIP
>>> ws.register(["article.md"], owner="Ann", license="CC-BY-4.0")  # doctest: +SKIP
>>> result = ws.check(["suspect.html"])                        # doctest: +SKIP
>>> api.write_report(result.bundle(), "report.html")           # doctest: +SKIP
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from copyscope.comparing import PairScore, compare_all, compare_pairs, read_pairs_file
from copyscope.comparing import compare as _compare
from copyscope.errors import CopyscopeError, InputError, UsageError
from copyscope.evidence import Result, canonical_bytes, read_bundle, write_bundle
from copyscope.plugins import Modality, load_modalities
from copyscope.settings import Settings
from copyscope.workspace import RegisterOutcome, Workspace

__all__ = [
    "CopyscopeError", "PairScore", "RegisterOutcome", "Result", "Settings", "Workspace",
    "canonical_bytes", "check", "compare", "compare_all", "compare_pairs", "init", "open_workspace",
    "read_bundle", "read_pairs_file", "register", "write_bundle", "write_report", "load_modalities",
]


def init(settings: Settings, modalities: dict[str, Modality] | None = None) -> Workspace:
    """Create (or upgrade) the workspace at ``settings.home``; idempotent."""
    return Workspace.init(settings, modalities)


def open_workspace(settings: Settings, modalities: dict[str, Modality] | None = None) -> Workspace:
    return Workspace.open(settings, modalities)


def register(settings: Settings, paths: list[str], **kwargs: Any) -> RegisterOutcome:
    with Workspace.open(settings) as ws:
        return ws.register(paths, **kwargs)


def check(settings: Settings, paths: list[str], **kwargs: Any) -> Result:
    with Workspace.open(settings) as ws:
        return ws.check(paths, **kwargs)


def compare(a: str | Path, b: str | Path, settings: Settings,
            modalities: dict[str, Modality] | None = None) -> Result:
    return _compare(a, b, settings, modalities or load_modalities())


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
