"""Render a ``copyscope.evidence/v1`` bundle as one self-contained HTML document.

The report is a *view* of the bundle: everything shown comes from the bundle (plus
an optional ``generated_at`` stamp). Input text is hostile, so the template runs
with autoescape on and highlighting is passed to it as plain ``(text, is_matched)``
segments; this module never builds HTML from input text.
"""
from __future__ import annotations

import json
import math
from typing import Any

import jinja2

__all__ = ["MAX_CONTEXT_CHARS", "MAX_PASSAGE_CHARS", "render_html", "segments"]

MAX_PASSAGE_CHARS = 20_000  # passage text rendered per side; the rest is noted as truncated
MAX_CONTEXT_CHARS = 2_000  # before/after context is "up to 150 chars"; cap hostile bundles
_VERDICT_CLASS = {"copy": "v-copy", "below-threshold": "v-below"}


def segments(text: str, matched: Any) -> list[tuple[str, bool]]:
    """Split ``text`` into consecutive ``(piece, is_matched)`` runs.

    ``matched`` is a list of ``[start, end)`` char ranges into ``text``. Ranges are
    clamped to ``[0, len(text)]``, sorted and merged (overlapping or touching ranges
    become one run); empty, inverted or malformed ranges are ignored. Joining the
    pieces always gives back ``text``.
    """
    text = "" if text is None else str(text)
    n = len(text)
    spans: list[tuple[int, int]] = []
    for r in matched or ():
        try:
            s, e = int(r[0]), int(r[1])
        except (TypeError, ValueError, IndexError, KeyError, OverflowError):
            continue
        s, e = max(0, min(s, n)), max(0, min(e, n))
        if e > s:
            spans.append((s, e))
    merged: list[list[int]] = []
    for s, e in sorted(spans):
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    out: list[tuple[str, bool]] = []
    pos = 0
    for s, e in merged:
        if s > pos:
            out.append((text[pos:s], False))
        out.append((text[s:e], True))
        pos = e
    if pos < n:
        out.append((text[pos:], False))
    return out


def _is_num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _num(x: Any) -> str:
    """0.97 -> "0.97", 1.0 -> "1", None -> "—" (at most 4 decimals, so 0.4996 never reads 0.5)."""
    if x is None:
        return "—"
    if not _is_num(x):
        return str(x)
    return f"{x:.4f}".rstrip("0").rstrip(".")


def _pct(x: Any) -> str:
    return f"{x * 100:.1f}".rstrip("0").rstrip(".") + "%" if _is_num(x) else _num(x)


def _int(x: Any) -> str:
    return f"{x:,}" if isinstance(x, int) and not isinstance(x, bool) else _num(x)


def _bar(x: Any) -> float | None:
    return round(max(0.0, min(1.0, float(x))) * 100, 1) if _is_num(x) else None


def _d(x: Any) -> dict:
    return x if isinstance(x, dict) else {}


def _l(x: Any) -> list:
    return x if isinstance(x, list) else []


def _s(x: Any) -> str:
    return "" if x is None else str(x)


def _flatten(d: dict, prefix: str = "") -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            rows += _flatten(v, key + ".")
        else:
            rows.append((key, v if isinstance(v, str) else
                         json.dumps(v, ensure_ascii=False, sort_keys=True, default=str)))
    return rows


def _span(label: str, a: Any, b: Any) -> str | None:
    if a is None and b is None:
        return None
    if label == "lines" and a == b:
        return f"line {_int(a)}"
    return f"{label} {_int(a)}–{_int(b)}"


def _side(side: Any, path: str) -> dict:
    side = _d(side)
    text = _s(side.get("text"))
    shown = text[:MAX_PASSAGE_CHARS]
    where = [_span("lines", side.get("line_start"), side.get("line_end")),
             _span("chars", side.get("start"), side.get("end")),
             _span("bytes", side.get("byte_start"), side.get("byte_end"))]
    omitted = len(text) - len(shown)
    return {
        "path": path,
        "where": " · ".join(w for w in where if w),
        "before": _s(side.get("before"))[-MAX_CONTEXT_CHARS:],
        "after": "" if omitted else _s(side.get("after"))[:MAX_CONTEXT_CHARS],
        "segments": segments(shown, side.get("matched")),
        "total": len(text),
        "omitted": omitted,
    }


def _match(m: Any, index: int) -> dict:
    m = _d(m)
    q, r, cov = _d(m.get("query")), _d(m.get("registered")), _d(m.get("coverage"))
    qpath, rpath = _s(q.get("path")), _s(r.get("path"))
    passages = [p for p in _l(m.get("passages")) if isinstance(p, dict)]
    verdict = _s(m.get("verdict")) or "—"
    extra = _d(m.get("extra"))
    return {
        "anchor": f"match-{index}",
        "index": index,
        "query": {k: _s(q.get(k)) for k in ("path", "sha256")},
        "reg": {k: _s(r.get(k)) for k in
                ("path", "sha256", "work_id", "title", "owner", "license")},
        "modality": _s(m.get("modality")),
        "score": _num(m.get("score")),
        "bar": _bar(m.get("score")),
        "verdict": verdict,
        "vclass": _VERDICT_CLASS.get(verdict, "v-other"),
        "cov_reg": _pct(cov.get("registered")),
        "cov_query": _pct(cov.get("query")),
        "signals": [(_s(k), "n/a" if v is None else _num(v))
                    for k, v in _d(m.get("signals")).items()],
        "lr": _num(extra.get("likelihood_ratio")) if _is_num(extra.get("likelihood_ratio")) else None,
        # side-channel evidence: verbatim strings a renamed copy still carries
        "literals": [_s(x) for x in _l(extra.get("shared_literals"))[:200]],
        "passages": [{
            "stream": _s(p.get("stream")),
            "tokens": _int(p.get("tokens")),
            "rarity": _num(p.get("rarity")),
            "query": _side(p.get("query"), qpath),
            "reg": _side(p.get("registered"), rpath),
        } for p in passages],
    }


def render_html(bundle: dict, *, generated_at: str | None = None) -> str:
    """Return the evidence report for ``bundle`` as one offline HTML document."""
    bundle = _d(bundle)
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("copyscope.report", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(num=_num, pct=_pct, int_=_int)
    inputs = [i for i in _l(bundle.get("inputs")) if isinstance(i, dict)]
    tool = _d(bundle.get("tool"))
    return env.get_template("report.html.j2").render(
        schema=_s(bundle.get("schema")),
        tool_name=_s(tool.get("name")) or "copyscope",
        version=_s(tool.get("version")) or "—",
        operation=_s(bundle.get("operation")) or "—",
        generated_at=generated_at,
        inputs=[{k: _s(i.get(k)) for k in
                 ("role", "path", "media_type", "encoding", "sha256", "work_id")}
                | {"size": _int(i.get("size")) if i.get("size") is not None else "—"}
                for i in inputs],
        parameters=_flatten(_d(bundle.get("parameters"))),
        matches=[_match(m, n) for n, m in enumerate(_l(bundle.get("matches")), 1)],
    )
