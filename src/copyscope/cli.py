"""The ``copyscope`` command line: parses arguments, calls ``copyscope.api``, renders.

Exit codes (docs/cli.md): 0 no match · 1 matches found · 2 usage or input error ·
3 workspace/storage error · 4 not found · 5 plugin error · 70 internal error ·
130 interrupted.
"""
from __future__ import annotations

import sys
from enum import Enum
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from copyscope import __version__, api
from copyscope.errors import EXIT_INTERNAL, EXIT_MATCH, EXIT_NO_MATCH, CopyscopeError, UsageError
from copyscope.render import (RichProgress, check_tsv, emit_json, pairs_table, pairs_tsv,
                              print_check_table, print_passages)

if TYPE_CHECKING:
    from rich.console import Console

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="copyscope: register works, find copies, explain them with aligned evidence.")


class Format(str, Enum):
    table = "table"
    json = "json"
    tsv = "tsv"
    sarif = "sarif"


class Unit(str, Enum):
    file = "file"
    dir = "dir"


class Ctx:
    def __init__(self, home: Optional[Path], quiet: bool, json_out: bool, max_bytes: Optional[int],
                 tsa_url: Optional[str] = None, max_archive_bytes: Optional[int] = None,
                 image_model: Optional[Path] = None) -> None:
        overrides: dict = {"max_file_bytes": max_bytes} if max_bytes else {}
        if image_model:
            overrides["image_model"] = image_model
        if max_archive_bytes:
            overrides["max_archive_bytes"] = max_archive_bytes
        if tsa_url:
            overrides["tsa_url"] = tsa_url
        self.settings = api.Settings.resolve(home, **overrides)
        self.quiet = quiet
        self.json = json_out

    # The consoles are made on first use: Rich costs ~25 ms to import, and a
    # quiet TSV or JSON run never prints through it.
    @cached_property
    def out(self) -> Console:
        from rich.console import Console  # noqa: PLC0415
        return Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)

    @cached_property
    def err(self) -> Console:
        from rich.console import Console  # noqa: PLC0415
        # soft_wrap: a warning stays one line (grep-able) whatever the terminal width.
        return Console(stderr=True, highlight=False, soft_wrap=True)

    def progress(self) -> RichProgress:
        return RichProgress(None if self.quiet else self.err)

    def fmt(self, fmt: Format) -> Format:
        return Format.json if self.json else fmt

    def note(self, text: str) -> None:
        if not self.quiet:
            self.err.print(text, markup=False)

    def warn_errors(self, errors) -> None:  # noqa: ANN001
        for e in errors:
            self.err.print(f"warning: {e}", highlight=False, markup=False)


def _ctx(ctx: typer.Context) -> Ctx:
    return ctx.obj


def _with_threshold(settings: api.Settings, threshold: Optional[float]) -> api.Settings:
    if threshold is None:
        return settings
    if not 0.0 <= threshold <= 1.0:
        raise UsageError(f"--threshold must be between 0 and 1, not {threshold}")
    return settings.with_(threshold=threshold)


@app.callback()
def main_options(
    ctx: typer.Context,
    home: Optional[Path] = typer.Option(None, "--home", help="Workspace directory (default $COPYSCOPE_HOME or ~/.copyscope)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or notes on stderr."),
    json_out: bool = typer.Option(False, "--json", help="Machine-readable JSON on stdout."),
    max_bytes: Optional[int] = typer.Option(None, "--max-bytes", help="Refuse input files larger than this (default 64 MiB)."),
    max_archive_bytes: Optional[int] = typer.Option(None, "--max-archive-bytes", help="Read at most this many uncompressed bytes from one archive (default 512 MiB)."),
    tsa_url: Optional[str] = typer.Option(None, "--tsa-url", help="RFC 3161 timestamp authority for new checkpoints (or $COPYSCOPE_TSA_URL)."),
    image_model: Optional[Path] = typer.Option(None, "--image-model", help="Local ONNX image encoder for semantic matching of re-drawn images (or $COPYSCOPE_IMAGE_MODEL)."),
    db: Optional[str] = typer.Option(None, "--db", metavar="URL", help="registry database: default SQLite inside --home; postgresql://user@host/db for a server"),
) -> None:
    if max_bytes is not None and max_bytes < 1:
        raise UsageError("--max-bytes must be at least 1")
    if max_archive_bytes is not None and max_archive_bytes < 1:
        raise UsageError("--max-archive-bytes must be at least 1")
    ctx.obj = Ctx(home, quiet, json_out, max_bytes, tsa_url, max_archive_bytes, image_model)
    if db:
        ctx.obj.settings = ctx.obj.settings.with_(db_url=db)


@app.command()
def version() -> None:
    """Print the copyscope version."""
    typer.echo(__version__)


@app.command()
def init(ctx: typer.Context) -> None:
    """Create the workspace (registry database and fingerprint index)."""
    c = _ctx(ctx)
    with api.init(c.settings) as ws:
        info = ws.stats()
    if c.json:
        emit_json(info)
    else:
        typer.echo(f"workspace ready at {c.settings.home}")


@app.command()
def register(
    ctx: typer.Context,
    paths: list[Path] = typer.Argument(..., help="Files or directories to register."),
    owner: str = typer.Option(..., "--owner", help="Who holds the rights."),
    title: Optional[str] = typer.Option(None, "--title", help="Work title (default: the file or directory name)."),
    license: Optional[str] = typer.Option(None, "--license", help="Licence, e.g. an SPDX id (default: detected from LICENSE files and SPDX headers, else All-Rights-Reserved)."),
    record: Optional[Path] = typer.Option(None, "--record", help="Creation record (JSON object) stored with the work."),
    each: bool = typer.Option(False, "--each", help="One work per file instead of one work per directory."),
    private: bool = typer.Option(False, "--private", help="Log only a salted commitment: the log reveals nothing."),
    derived_from: list[str] = typer.Option([], "--derived-from", help="Parent work id (repeatable): logs a 'derive' entry."),
    receipts: Optional[Path] = typer.Option(None, "--receipts", help="Also write each receipt into this directory."),
) -> None:
    """Register works and log them; prints work id, title and path per line (receipts go to HOME/receipts)."""
    c = _ctx(ctx)
    with api.open_workspace(c.settings) as ws:
        outcome = ws.register([str(p) for p in paths], owner=owner, license=license, title=title,
                              record=record, each=each, private=private, derived_from=derived_from,
                              receipts_dir=receipts, progress=c.progress())
    c.warn_errors(outcome.errors)
    c.warn_errors(outcome.warnings)
    if c.json:
        emit_json({"works": [w.__dict__ for w in outcome.works], "errors": outcome.errors,
                   "warnings": outcome.warnings})
    else:
        for w in outcome.works:
            typer.echo(f"{w.work_id}\t{w.title}\t{w.path}")
        reused = sum(w.files - w.new_artifacts for w in outcome.works)
        c.note(f"registered {len(outcome.works)} work(s)" + (f"; {reused} file(s) already known, reused" if reused else ""))
        if outcome.works:
            c.note(f"receipts: {Path(outcome.works[0].receipt).parent}/<work id>.json (verify with `copyscope verify`)")
    if outcome.errors:
        raise typer.Exit(2)


def _write_lines(lines) -> None:  # noqa: ANN001
    """One write for many lines: 100,000 pairs must not cost 100,000 echo calls."""
    text = "\n".join(lines)
    if text:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()


def _finish(c: Ctx, result: api.Result, fmt: Format, report: Optional[Path], bundle: Optional[Path]) -> None:
    if bundle:
        api.write_bundle(result.bundle(), bundle)
        c.note(f"evidence bundle: {bundle}")
    if report:
        api.write_report(result.bundle(), report)
        c.note(f"report: {report}")
    c.warn_errors(result.errors)
    fmt = c.fmt(fmt)
    if fmt is Format.json:
        emit_json(result.bundle())
    elif fmt is Format.sarif:
        from copyscope.sarif import to_sarif  # noqa: PLC0415
        emit_json(to_sarif(result.bundle()))
    elif fmt is Format.tsv:
        _write_lines(check_tsv(result))
    elif result.operation == "compare" and result.matches:
        for m in result.matches:
            typer.echo(f"score {m.score:.3f} ({m.verdict}); {m.coverage_registered:.0%} of B and "
                       f"{m.coverage_query:.0%} of A in {len(m.passages)} passage(s)")
            print_passages(c.out, m, limit=100)
    elif result.operation == "compare":
        typer.echo("no aligned passages")
    else:
        print_check_table(c.out, result)
    if result.errors:
        raise typer.Exit(2)
    raise typer.Exit(EXIT_MATCH if result.copies else EXIT_NO_MATCH)


@app.command()
def check(
    ctx: typer.Context,
    paths: list[Path] = typer.Argument(None, help="Files or directories to check against the registry."),
    fmt: Format = typer.Option(Format.table, "--format", "-f", help="table, json (the evidence bundle), tsv or sarif."),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="Report pairs scoring at least this, in [0, 1] (default 0.5)."),
    report: Optional[Path] = typer.Option(None, "--report", help="Also write the HTML evidence report here."),
    bundle: Optional[Path] = typer.Option(None, "--bundle", help="Also write the evidence bundle (canonical JSON) here."),
    base: list[Path] = typer.Option([], "--base", help="Template/starter code that never counts as copied (repeatable)."),
    git: Optional[Path] = typer.Option(None, "--git", help="Also scan every file version in this git repository's history."),
    rev_range: Optional[str] = typer.Option(None, "--rev-range", help="With --git: only this revision range, e.g. v1.0..main."),
    jobs: int = typer.Option(0, "--jobs", "-j", min=0, help="Processes for a large check (64 files or more); 0: one per core."),
) -> None:
    """Find registered works copied into the given files. Exit 1 when copies are found."""
    c = _ctx(ctx)
    paths = paths or []
    if rev_range and git is None:
        raise UsageError("--rev-range needs --git REPO")
    if not paths and git is None:
        raise UsageError("check needs PATH... or --git REPO")
    settings = _with_threshold(c.settings, threshold)
    from copyscope.processes import auto_jobs  # noqa: PLC0415
    with api.open_workspace(settings) as ws:
        result = ws.check([str(p) for p in paths], base=[str(b) for b in base], progress=c.progress(),
                          media=bool(report or bundle) or c.fmt(fmt) == Format.json,
                          jobs=jobs or auto_jobs())
        if git is not None:
            from copyscope.gitscan import check_history  # noqa: PLC0415
            history = check_history(ws, git, rev_range, progress=c.progress())
            result.inputs += history.inputs
            result.matches += history.matches
            result.errors += history.errors
    _finish(c, result, fmt, report, bundle)


@app.command()
def compare(
    ctx: typer.Context,
    paths: list[Path] = typer.Argument(None, help="Two files (A B), or the paths for --all-pairs."),
    pairs: Optional[Path] = typer.Option(None, "--pairs", help="File of 'pathA<TAB>pathB' lines to score."),
    all_pairs: bool = typer.Option(False, "--all-pairs", help="Score every pair of units among PATHS."),
    unit: Unit = typer.Option(Unit.file, "--unit", help="With --all-pairs: every file, or every top-level directory."),
    background: bool = typer.Option(True, "--background/--no-background",
                                    help="With --all-pairs (code, 20+ units): score pairs relative to what the run's pairs typically share."),
    fmt: Format = typer.Option(Format.table, "--format", "-f", help="table, json or tsv."),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="Decision threshold in [0, 1] (default 0.5)."),
    report: Optional[Path] = typer.Option(None, "--report", help="A B only: write the HTML evidence report."),
    bundle: Optional[Path] = typer.Option(None, "--bundle", help="A B only: write the evidence bundle."),
    jobs: int = typer.Option(0, "--jobs", "-j", min=0, help="With --pairs/--all-pairs: processes that read and fingerprint the files (128 or more); 0: one per core."),
    min_score: float = typer.Option(0.0, "--min-score", help="With --pairs/--all-pairs: print only pairs whose score, as printed (4 decimals), is at least this; 0 prints every pair."),
) -> None:
    """Compare files directly, without the registry."""
    c = _ctx(ctx)
    paths = paths or []
    settings = _with_threshold(c.settings, threshold)
    if not 0.0 <= min_score <= 1.0:
        raise UsageError(f"--min-score must be between 0 and 1, not {min_score}")
    modalities = api.load_modalities(c.settings)
    if pairs is not None or all_pairs:
        if pairs is not None and all_pairs:
            raise UsageError("use either --pairs or --all-pairs, not both")
        from copyscope.processes import auto_jobs  # noqa: PLC0415
        jobs = jobs or auto_jobs()
        if pairs is not None:
            scores, errors = api.compare_pairs(api.read_pairs_file(pairs), settings, modalities, c.progress(), jobs=jobs)
        else:
            scores, errors = api.compare_all(paths, settings, modalities, unit=unit.value, progress=c.progress(),
                                             background=background, jobs=jobs)
        c.warn_errors(errors.values())
        thr = settings.threshold if settings.threshold is not None else 0.5
        exit_code = 2 if errors else (EXIT_MATCH if any(s.score >= thr for s in scores) else EXIT_NO_MATCH)
        if min_score > 0:
            # A 100,000-pair run is mostly pairs that share nothing; a tool reading
            # the output treats a pair it does not see as 0. Compared as printed
            # (rounded to 4 decimals), so --min-score 0.0001 drops exactly the 0.0000s.
            cut = min_score - 0.00005
            scores = [s for s in scores if s.score >= cut]
        fmt = c.fmt(fmt)
        if fmt is Format.tsv:
            _write_lines(pairs_tsv(scores))
        elif fmt is Format.json:
            emit_json({"pairs": [{"a": s.a, "b": s.b, "score": round(s.score, 4)} for s in scores],
                       "errors": errors})
        else:
            pairs_table(c.out, scores, thr)
        raise typer.Exit(exit_code)
    if len(paths) != 2:
        raise UsageError("compare takes two files (A B), or --pairs FILE, or --all-pairs PATH...")
    result = api.compare(paths[0], paths[1], settings, modalities)
    _finish(c, result, fmt, report, bundle)


@app.command("report")
def report_cmd(
    ctx: typer.Context,
    bundle: Path = typer.Argument(..., help="Evidence bundle from check/compare --bundle (or --format json)."),
    out: Path = typer.Option(Path("copyscope-report.html"), "--out", "-o", help="HTML file to write."),
) -> None:
    """Write the self-contained HTML evidence report for a saved result."""
    c = _ctx(ctx)
    path = api.report_from_file(bundle, out)
    typer.echo(str(path)) if not c.json else emit_json({"report": str(path)})


@app.command()
def works(ctx: typer.Context, limit: int = typer.Option(0, "--limit", help="Show at most this many (0 = all).")) -> None:
    """List registered works."""
    c = _ctx(ctx)
    if limit < 0:
        raise UsageError("--limit must be 0 or more")
    with api.open_workspace(c.settings) as ws:
        items = ws.works(limit or None)
    if c.json:
        emit_json([w.__dict__ for w in items])
    else:
        for w in items:
            typer.echo(f"{w.work_id}\t{w.title}\t{w.owner}\t{w.license}\t{w.path}")


@app.command()
def status(ctx: typer.Context) -> None:
    """Show the workspace: works, artifacts and index segments per modality."""
    c = _ctx(ctx)
    with api.open_workspace(c.settings) as ws:
        info = ws.stats()
    emit_json(info) if c.json else [typer.echo(f"{k}: {v}") for k, v in info.items()]


@app.command()
def gc(ctx: typer.Context,
       compact: bool = typer.Option(False, "--compact", help="Also merge each modality's index into one segment and write missing image sketch rows and global codes (fastest lookups after a bulk load; needed after an upgrade).")) -> None:
    """Delete files an interrupted registration left behind (never live data)."""
    c = _ctx(ctx)
    with api.open_workspace(c.settings) as ws:
        removed = ws.collect_garbage()
        if compact:
            removed["merged_segments"] = ws.compact()
            removed["sketch_rows"] = ws.fill_sketches()
            removed["code_rows"] = ws.fill_codes()
    if c.json:
        emit_json(removed)
    else:
        typer.echo(f"removed {removed['segments']} segment(s), {removed['blobs']} blob(s)"
                   + (f"; merged {removed['merged_segments']} segment(s), wrote {removed['sketch_rows']} sketch row(s)"
                      f" and {removed['code_rows']} code row(s)"
                      if compact else ""))


@app.command()
def demo(ctx: typer.Context, out: Path = typer.Option(Path("demo-out"), "--out", "-o", help="Where to put the workspace, samples and report.")) -> None:
    """Register the built-in English and Chinese samples, check the derived copies, write a report."""
    from copyscope.demo import run_demo  # noqa: PLC0415
    c = _ctx(ctx)
    outcome = run_demo(out, progress=c.progress())
    if c.json:
        emit_json({"report": str(outcome.report), "bundle": str(outcome.bundle),
                   "matches": len(outcome.result.matches)})
        return
    typer.echo(f"registered {len(outcome.registered.works)} works from {outcome.samples / 'registered'}")
    print_check_table(c.out, outcome.result, passages=False)
    typer.echo(f"\nevidence bundle: {outcome.bundle}\nreport: {outcome.report.resolve()}")
    typer.echo(f"registration receipts: {(outcome.bundle.parent / 'workspace' / 'receipts').resolve()} "
               f"(check one with: copyscope --home {outcome.bundle.parent / 'workspace'} verify RECEIPT FILE)")


def _click_exception() -> type:
    """The pinned typer (0.26 and later) vendors Click privately; usage errors derive from this class."""
    try:
        from typer._click.exceptions import ClickException  # noqa: PLC0415
    except ImportError:  # pragma: no cover - older typer with a real click
        from click.exceptions import ClickException  # noqa: PLC0415
    return ClickException


def _install_ledger_commands() -> None:
    from copyscope.cli_ledger import install  # noqa: PLC0415
    install(app, _ctx)
    from copyscope.cli_service import install as install_service  # noqa: PLC0415
    install_service(app, _ctx)


_install_ledger_commands()


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point: every failure becomes one line on stderr and a documented exit code."""
    from copyscope.processes import keep_freed_memory  # noqa: PLC0415
    keep_freed_memory()
    try:
        rc = app(args=argv, standalone_mode=False)
        return rc if isinstance(rc, int) else 0
    except typer.Exit as exc:
        return exc.exit_code
    except CopyscopeError as exc:
        sys.stderr.write(f"error: {exc.message}\n")
        if exc.hint:
            sys.stderr.write(f"hint: {exc.hint}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    except typer.Abort:
        sys.stderr.write("aborted\n")
        return 130
    except Exception as exc:  # noqa: BLE001
        if isinstance(exc, _click_exception()):
            exc.show()                       # click's own usage message
            return 2
        sys.stderr.write(f"internal error: {type(exc).__name__}: {exc} (please report this)\n")
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
