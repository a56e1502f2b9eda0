"""Terminal rendering for the CLI: tables, TSV, JSON and progress bars (Rich).

Rich is imported where a table, bar or markup is first drawn, not with this
module: TSV and JSON output never need it."""
from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING, Any, Iterable

from copyscope.comparing import PairScore
from copyscope.evidence import Result
from copyscope.model import SIDE_CHANNELS, Match, Span

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

SNIPPET = 240


def escape(text: str) -> str:
    from rich.markup import escape as rich_escape  # noqa: PLC0415
    return rich_escape(text)


def _table(**kw: Any):  # noqa: ANN202
    from rich.table import Table  # noqa: PLC0415
    return Table(**kw)


class RichProgress:
    """A progress bar that appears only when work runs longer than ``delay`` seconds
    and only on a terminal, so scripts and logs stay clean."""

    def __init__(self, console: Console | None, *, delay: float = 1.0) -> None:
        self.console = console      # None: never a bar (--quiet)
        self.enabled = console is not None and console.is_terminal
        self.delay = delay
        self._bar: Progress | None = None
        self._task = None
        self._done = 0
        self._total: int | None = None
        self._desc = ""
        self._t0 = 0.0

    def start(self, total: int | None, description: str) -> None:
        self._total, self._desc, self._done, self._t0 = total, description, 0, time.monotonic()

    def advance(self, n: int = 1) -> None:
        self._done += n
        if not self.enabled:
            return
        if self._bar is None and time.monotonic() - self._t0 > self.delay:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn  # noqa: PLC0415
            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeRemainingColumn(), console=self.console, transient=True)
            self._bar.start()
            self._task = self._bar.add_task(self._desc, total=self._total, completed=self._done)
        elif self._bar is not None:
            self._bar.update(self._task, completed=self._done)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def _clip(text: str, n: int = SNIPPET) -> str:
    one = " ".join(text.split())
    return one if len(one) <= n else one[: n - 1] + "…"


def _where(s: Span) -> str:
    lines = f"line {s.line_start}" if s.line_start == s.line_end else f"lines {s.line_start}-{s.line_end}"
    return f"{lines}, chars {s.start}-{s.end}"


def print_check_table(console: Console, result: Result, *, passages: bool = True) -> None:
    every = sorted(result.matches, key=lambda m: (m.query_path, -m.score))
    matches = [m for m in every if "triage" not in m.extra]
    apart = [m for m in every if "triage" in m.extra]
    if result.triaged:
        console.print(f"{len(result.triaged)} generated, minified or vendored file(s) are reported apart:")
        for t in result.triaged:
            hits = sum(1 for m in apart if m.query_path == t["path"])
            console.print(f"  {escape(t['path'])}: {t['kind']} ({escape(t['reason'])}); {hits} match(es)")
    if not matches:
        console.print("No copies found above the threshold" + (" outside those files." if apart else "."))
        return
    table = _table(title="Matches", show_lines=False)
    for col in ("query", "work", "title", "owner", "licence", "score", "coverage", "passages"):
        table.add_column(col, overflow="fold")
    for m in matches:
        w = m.work
        table.add_row(escape(m.query_path), w.work_id if w else "-", escape(w.title) if w else escape(m.registered_path),
                      escape(w.owner) if w else "-", escape(w.license) if w else "-", f"{m.score:.3f}",
                      f"{m.coverage_registered:.0%} of work", _evidence_count(m))
    console.print(table)
    print_by_work(console, matches)
    if passages:
        for m in matches:
            print_passages(console, m)


def print_by_work(console: Console, matches: list[Match]) -> None:
    """Findings grouped by registered work: what an audit of a large codebase needs."""
    groups: dict[str, list[Match]] = {}
    for m in matches:
        groups.setdefault(m.work.work_id if m.work else m.registered_path, []).append(m)
    if len(groups) < 2 and len(matches) < 2:
        return
    table = _table(title="Findings by registered work")
    for col in ("work", "title", "owner", "licence", "files", "best score"):
        table.add_column(col, overflow="fold")
    for key, ms in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        w = ms[0].work
        table.add_row(escape(key), escape(w.title) if w else "-", escape(w.owner) if w else "-",
                      escape(w.license) if w else "-", str(len({m.query_path for m in ms})),
                      f"{max(m.score for m in ms):.3f}")
    console.print(table)


def _evidence_count(m: Match) -> str:
    image = m.extra.get("image")
    return f"{image['inliers']} keypoints" if image else str(len(m.passages))


def print_image_evidence(console: Console, m: Match) -> None:
    """What was done to the image, in words a reader can check against the report."""
    e = m.extra["image"]
    label = m.work.work_id if m.work else m.registered_path
    console.print(f"\n[bold]{escape(m.query_path)}[/] ↔ [bold]{escape(label)}[/] (score {m.score:.3f}, "
                  f"{e['inliers']} matched keypoints, photometric agreement {e['photometric_agreement']:.0%}, "
                  f"hash distance {e['hash_distance']}/64)")
    by = e.get("explained_by")
    if by:
        console.print(f"  explained by a better fit: {escape(str(by.get('registered_path') or by['registered_sha256']))} "
                      f"(score {by['score']:.3f}) covers the same part of the query; alone this scored {by['score_alone']:.3f}")
    t = e.get("transform")
    if not t:
        console.print("  no geometric alignment: matched on the global hash only (blur, re-draw or re-encode)")
        return
    x0, y0, x1, y1 = t["crop_box"]
    parts = [f"shows region ({x0},{y0})-({x1},{y1}) of the original ({t['registered_covered']:.0%} of it)",
             f"at scale {t['scale']:.2f}"]
    if abs(t["rotation_degrees"]) >= 1:
        parts.append(f"rotated {t['rotation_degrees']:.1f}°")
    if t["mirrored"]:
        parts.append("mirrored")
    if t["query_covered"] < 0.9:
        parts.append(f"the original fills {t['query_covered']:.0%} of the query (padding, inset or screenshot)")
    console.print("  " + ", ".join(parts))
    if e["altered_regions"]:
        console.print(f"  {len(e['altered_regions'])} altered block(s) inside the matched region "
                      "(overlays, removed marks or retouching; see the report's difference overlay)")


def print_passages(console: Console, m: Match, limit: int = 20) -> None:
    if "image" in m.extra:
        print_image_evidence(console, m)
        return
    label = m.work.work_id if m.work else m.registered_path
    console.print(f"\n[bold]{escape(m.query_path)}[/] ↔ [bold]{escape(label)}[/] "
                  f"(score {m.score:.3f}, {len(m.passages)} passage(s))")
    for i, p in enumerate(m.passages[:limit], 1):
        console.print(f"  [{i}] query {_where(p.query)}  ⇄  registered {_where(p.registered)}  "
                      f"({p.tokens} tokens, rarity {p.rarity:.2f})")
        console.print(f"      query:      {escape(_clip(p.query.text))}", highlight=False)
        console.print(f"      registered: {escape(_clip(p.registered.text))}", highlight=False)
    if len(m.passages) > limit:
        console.print(f"  … {len(m.passages) - limit} more passage(s) in --format json / the report")
    print_side_channels(console, m)


def print_side_channels(console: Console, m: Match, limit: int = 8) -> None:
    """Code evidence beyond structure: the strings, names, magic numbers and typos
    both files share (a renamed copy keeps them)."""
    lits = m.extra.get("shared_literals") or []
    if lits:
        shown = ", ".join(escape(_clip(x, 40)) for x in lits[:limit])
        console.print(f"  shared string literals ({len(lits)}): {shown}", highlight=False)
    side = m.extra.get("side_channels") or {}
    for key, label in SIDE_CHANNELS:
        items = side.get(key) or []
        if not items:
            continue
        shown = ", ".join(f"{escape(x['text'])}" + (f"→{escape(x['intended'])}" if x.get("intended") else "")
                          + f" (lines {x['registered_line']}/{x['query_line']})" for x in items[:limit])
        more = f", … {len(items) - limit} more" if len(items) > limit else ""
        console.print(f"  shared {label} ({len(items)}): {shown}{more}", highlight=False)


def check_tsv(result: Result) -> Iterable[str]:
    for m in sorted(result.matches, key=lambda m: (m.query_path, -m.score, m.registered_path)):
        yield f"{m.query_path}\t{m.registered_path}\t{m.score:.4f}"


def pairs_tsv(scores: Iterable[PairScore]) -> Iterable[str]:
    for s in scores:
        yield f"{s.a}\t{s.b}\t{s.score:.4f}"


def pairs_table(console: Console, scores: list[PairScore], threshold: float) -> None:
    table = _table(title="Pair scores")
    for col in ("A", "B", "score", "verdict", "passages"):
        table.add_column(col, overflow="fold")
    for s in sorted(scores, key=lambda s: -s.score):
        verdict = "copy" if s.score >= threshold else "-"
        table.add_row(escape(s.a), escape(s.b), f"{s.score:.3f}", verdict,
                      str(len(s.match.passages)) if s.match else "0")
    console.print(table)


def emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True) + "\n")
