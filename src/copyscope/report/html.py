"""Render a ``copyscope.evidence/v1`` bundle as one self-contained HTML document.

The report is a *view* of the bundle: everything shown comes from the bundle (plus
an optional ``generated_at`` stamp). Input text is hostile, so the template runs
with autoescape on and highlighting is passed to it as plain ``(text, is_matched)``
segments; this module never builds HTML from input text.
"""
from __future__ import annotations

import json
import math
import re
from typing import Any

import jinja2

from copyscope.model import SIDE_CHANNEL_ITEMS, SIDE_CHANNELS

__all__ = ["MAX_CONTEXT_CHARS", "MAX_IMAGE_LINES", "MAX_PASSAGE_CHARS", "render_html", "segments"]

MAX_PASSAGE_CHARS = 20_000  # passage text rendered per side; the rest is noted as truncated
MAX_CONTEXT_CHARS = 2_000  # before/after context is "up to 150 chars"; cap hostile bundles
_VERDICT_CLASS = {"copy": "v-copy", "below-threshold": "v-below"}

# Image evidence (an SVG figure per image match; see _image()).
MAX_IMAGE_LINES = 200  # keypoint match lines drawn per match
MAX_ALTERED = 400  # difference boxes drawn per match (the image plugin keeps at most 400)
MAX_DATA_URI_CHARS = 8_000_000  # the plugin embeds ~480 px JPEGs (tens of KB); refuse absurd ones
MAX_IMAGE_SIDE = 1_000_000  # original pixel sizes beyond this are not believed
_DISPLAY_H = 360  # common display height of the two panels (CSS px)
_MAX_PANEL_W = 600  # ... unless that makes a panel wider than this
_GAP = 28  # between the panels
_LABEL_H = 20  # room above the panels for their labels
_DATA_URI = re.compile(r"data:image/(?:jpeg|png);base64,[A-Za-z0-9+/]+={0,2}")


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
    if not isinstance(x, (int, float)) or isinstance(x, bool):
        return False
    try:
        return math.isfinite(x)
    except OverflowError:  # an int too large for a float: not a number we can show
        return False


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


def _f(x: Any) -> float | None:
    """A finite number of sane size as a float, else None (hostile bundles carry NaN,
    strings, huge ints; 1e300 would overflow the arithmetic done on coordinates)."""
    return float(x) if _is_num(x) and abs(x) <= 1e12 else None


def _c(x: float) -> str:
    """An SVG coordinate: at most 2 decimals, never "-0" or an exponent."""
    out = f"{x:.2f}".rstrip("0").rstrip(".")
    return "0" if out in ("-0", "") else out


def _clamp(x: float, lo: float, hi: float) -> float:
    return max(lo, min(hi, x))


def _nums(x: Any, n: int) -> list[float] | None:
    """``x`` as exactly ``n`` finite numbers, else None."""
    if not isinstance(x, (list, tuple)) or len(x) != n:
        return None
    out = [_f(v) for v in x]
    return None if any(v is None for v in out) else out  # type: ignore[return-value]


def _data_uri(x: Any) -> str | None:
    """A base64 JPEG/PNG data URI, or None: anything else (javascript:, http:, SVG, stray
    characters) is dropped, so only inert pixels ever reach an href."""
    if isinstance(x, str) and len(x) <= MAX_DATA_URI_CHARS and _DATA_URI.fullmatch(x):
        return x
    return None


def _size(x: Any) -> tuple[float, float] | None:
    wh = _nums(x, 2)
    if wh is None or not all(1 <= v <= MAX_IMAGE_SIDE for v in wh):
        return None
    return wh[0], wh[1]


def _deg(x: float) -> str:
    return f"{_num(round(x, 2))}°"


def _image(ev: Any, cov: dict) -> dict:
    """Template variables for one image match's visual evidence.

    Every number is checked (finite, in range) and every data URI validated before it
    reaches the template; coordinates are formatted here, so the template only places
    them. Overlays are drawn in each image's ORIGINAL pixel coordinates: each panel is a
    nested ``<svg>`` whose viewBox is ``0 0 width height``. Match lines join the two
    panels, so they are computed in the outer figure's display coordinates.
    """
    ev = _d(ev)
    media = _d(ev.get("media"))
    uri_q, uri_r = _data_uri(media.get("query")), _data_uri(media.get("registered"))
    size_q, size_r = _size(ev.get("query_size")), _size(ev.get("registered_size"))
    raw_t = ev.get("transform")
    t = raw_t if isinstance(raw_t, dict) else None

    # keypoint pairs [qx, qy, rx, ry]; malformed ones are dropped
    kps = [k for k in (_nums(k, 4) for k in _l(ev.get("keypoints"))) if k is not None]
    # difference boxes [x, y, w, h] in registered original pixels
    alts = [a for a in (_nums(a, 4) for a in _l(ev.get("altered_regions"))[:MAX_ALTERED])
            if a is not None and a[2] > 0 and a[3] > 0]
    quad_pts = None
    if t and isinstance(t.get("query_quad_on_registered"), list):
        pts = [_nums(p, 2) for p in t["query_quad_on_registered"]]
        if len(pts) == 4 and all(p is not None for p in pts):
            quad_pts = pts

    fig = None
    if size_q and size_r:
        def panel(size: tuple[float, float], x: float, uri: str | None) -> dict:
            w, h = size
            s = min(_DISPLAY_H / h, _MAX_PANEL_W / w)
            return {"x": x, "y": _LABEL_H, "w": w * s, "h": h * s, "s": s, "vw": w, "vh": h, "uri": uri}

        pq = panel(size_q, 0.0, uri_q)
        pr = panel(size_r, pq["w"] + _GAP, uri_r)
        (qw, qh), (rw, rh) = size_q, size_r
        lines = []
        for n, (qx, qy, rx, ry) in enumerate(kps[:MAX_IMAGE_LINES]):
            lines.append((n % 4,) + tuple(_c(v) for v in (
                pq["x"] + _clamp(qx, 0, qw) * pq["s"], pq["y"] + _clamp(qy, 0, qh) * pq["s"],
                pr["x"] + _clamp(rx, 0, rw) * pr["s"], pr["y"] + _clamp(ry, 0, rh) * pr["s"])))
        rects = []
        for x, y, w, h in alts:
            x0, y0 = _clamp(x, 0, rw), _clamp(y, 0, rh)
            x1, y1 = _clamp(x + w, 0, rw), _clamp(y + h, 0, rh)
            if x1 > x0 and y1 > y0:
                rects.append(tuple(_c(v) for v in (x0, y0, x1 - x0, y1 - y0)))
        polygon = None
        if quad_pts:  # may reach outside the original (the copy shows more); the panel clips it
            polygon = " ".join(f"{_c(_clamp(x, -4 * rw, 5 * rw))},{_c(_clamp(y, -4 * rh, 5 * rh))}"
                               for x, y in quad_pts)
        for p in (pq, pr):
            p["note_x"], p["note_y"] = _c(p["x"] + 8), _c(p["y"] + 18)  # "not embedded" caption
            for k in ("x", "y", "w", "h", "vw", "vh"):
                p[k] = _c(p[k])
        fig = {
            "w": _c(float(pr["x"]) + float(pr["w"])),
            "h": _c(_LABEL_H + max(float(pq["h"]), float(pr["h"]))),
            "q": pq, "r": pr, "lines": lines, "rects": rects, "polygon": polygon,
        }

    # the transformation in words
    rows: list[tuple[str, str]] = []
    ins, tent = ev.get("inliers"), ev.get("tentative_matches")
    if t:
        box = _nums(t.get("crop_box"), 4)
        if box:
            x0, y0, x1, y1 = box
            where = f"x {_int(_iv(x0))}–{_int(_iv(x1))}, y {_int(_iv(y0))}–{_int(_iv(y1))}"
            dims = f"{_int(_iv(x1 - x0))} × {_int(_iv(y1 - y0))} px"
            if size_r:
                dims += f" of the original's {_int(_iv(size_r[0]))} × {_int(_iv(size_r[1]))} px"
            rows.append(("Region of the original shown", f"{where} ({dims})"))
        sc = _f(t.get("scale"))
        if sc is not None:
            rows.append(("Scale", f"{_num(sc)} (the copy is {_pct(sc)} of the original's size)"))
        rot = _f(t.get("rotation_degrees"))
        if rot is not None:
            rows.append(("Rotation", "none" if abs(rot) < 0.005 else _deg(rot)))
        mir = t.get("mirrored")
        if isinstance(mir, bool):
            rows.append(("Mirrored", "yes (the copy is flipped left–right)" if mir else "no"))
    cr = _f(t.get("registered_covered")) if t else None
    cq = _f(t.get("query_covered")) if t else None
    cr = cr if cr is not None else _f(cov.get("registered"))
    cq = cq if cq is not None else _f(cov.get("query"))
    if cr is not None or cq is not None:
        rows.append(("Coverage", f"original {_pct(cr)} · query {_pct(cq)}"))
    if _is_num(ins):
        kp = f"{_int(_iv(ins))}"
        if _is_num(tent):
            kp += f" of {_int(_iv(tent))} tentative matches agree on one transformation"
        rows.append(("Matched keypoints", kp))
    agr, blocks = _f(ev.get("photometric_agreement")), ev.get("compared_blocks")
    if agr is not None:
        val = _pct(agr)
        if _is_num(blocks):
            val += f" of {_int(_iv(blocks))} compared blocks agree"
        rows.append(("Photometric agreement", val))
    if alts or t:
        rows.append(("Areas that differ", f"{len(alts):,} block{'s' if len(alts) != 1 else ''}"))
    hd = _f(ev.get("hash_distance"))
    if hd is not None:
        rows.append(("Hash distance", f"{_int(_iv(hd))} of 64 bits differ (0: identical; 8 or fewer: near-identical)"))
    by = ev.get("explained_by")
    if isinstance(by, dict) and _is_num(by.get("score")) and _is_num(by.get("score_alone")):
        rows.append(("Explained by a better fit",
                     f"{by.get('registered_path') or by.get('registered_sha256') or '?'} (score {_num(by['score'])}) "
                     f"covers the same part of the query and fits it better; this match alone scored "
                     f"{_num(by['score_alone'])}"))
    hom = _l(ev.get("homography"))
    mat = [_nums(r, 3) for r in hom] if len(hom) == 3 else []
    if mat and all(r is not None for r in mat):
        rows.append(("Homography (query → original pixels)",
                     " / ".join(" ".join(_num(v) for v in r) for r in mat)))  # type: ignore[union-attr]

    return {
        "recorded": bool(ev),
        "transform": t is not None,
        "embedded": bool(uri_q and uri_r),
        "missing_media": [name for name, uri in (("query", uri_q), ("registered", uri_r)) if not uri],
        "fig": fig,
        "lines_total": len(kps),
        "lines_shown": min(len(kps), MAX_IMAGE_LINES) if fig else 0,
        "n_rects": len(fig["rects"]) if fig else 0,
        "has_polygon": bool(fig and fig["polygon"]),
        "rows": rows,
    }


def _iv(x: float) -> int | float:
    """Whole numbers as ints (thousands separators); others keep their decimals."""
    return int(round(x)) if abs(x - round(x)) < 1e-9 else x


def _side_channels(v: Any) -> list[dict]:
    """Code side-channel evidence as display rows: the item as registered, as
    found in the query, and the first line of each (``intended`` for typos)."""
    v = _d(v)
    out = []
    for key, label in SIDE_CHANNELS:
        rows = [{"text": _s(x.get("text")), "query_text": _s(x.get("query_text")),
                 "reg_line": _s(x.get("registered_line")), "query_line": _s(x.get("query_line")),
                 "intended": _s(x.get("intended"))}
                for x in map(_d, _l(v.get(key))[:SIDE_CHANNEL_ITEMS])]
        if rows:
            out.append({"title": f"Shared {label}", "rows": rows})
    return out


def _match(m: Any, index: int) -> dict:
    m = _d(m)
    q, r, cov = _d(m.get("query")), _d(m.get("registered")), _d(m.get("coverage"))
    qpath, rpath = _s(q.get("path")), _s(r.get("path"))
    passages = [p for p in _l(m.get("passages")) if isinstance(p, dict)]
    verdict = _s(m.get("verdict")) or "—"
    extra = _d(m.get("extra"))
    modality = _s(m.get("modality"))
    image = (_image(extra.get("image"), cov)
             if modality == "image" or isinstance(extra.get("image"), dict) else None)
    return {
        "anchor": f"match-{index}",
        "index": index,
        "query": {k: _s(q.get(k)) for k in ("path", "sha256")},
        "reg": {k: _s(r.get(k)) for k in
                ("path", "sha256", "work_id", "title", "owner", "license")},
        "modality": modality,
        "image": image,
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
        "comments": [_s(x) for x in _l(extra.get("shared_comments"))[:200]],
        "side_channels": _side_channels(extra.get("side_channels")),
        "passages": [{
            "stream": _s(p.get("stream")),
            "tokens": _int(p.get("tokens")),
            "rarity": _num(p.get("rarity")),
            "query": _side(p.get("query"), qpath),
            "reg": _side(p.get("registered"), rpath),
        } for p in passages],
    }


_RECORD_FIELDS = ("title", "description", "authors", "created", "software")
_GENERATION_FIELDS = ("prompt", "negative_prompt", "seed", "sampler", "steps", "cfg_scale", "width", "height", "models")


def _field(v: Any) -> str:
    if isinstance(v, (dict, list)):
        return json.dumps(v, ensure_ascii=False, sort_keys=True)[:600]
    return _s(v)[:600]


def _provenance(bundle: dict) -> list[dict]:
    """Each matched work's creation record and ledger history, as plain strings
    (the bundle may be hostile: nothing is trusted to be the right type)."""
    out = []
    for work_id, item in sorted(_d(bundle.get("provenance")).items(), key=lambda kv: _s(kv[0])):
        item = _d(item)
        record = _d(item.get("record"))
        gen = _d(record.get("generation"))
        fields = [(k, _field(src.get(k))) for src, keys in ((record, _RECORD_FIELDS), (gen, _GENERATION_FIELDS))
                  for k in keys if src.get(k) not in (None, "", [], {})]
        drafts = [{k: _s(_d(d).get(k)) for k in ("time", "sha256", "path", "note")}
                  | {"selected": "yes" if _d(d).get("selected") is True else ""}
                  for d in _l(record.get("drafts"))[:200]]
        ledger = [{k: _s(_d(e).get(k)) for k in ("index", "kind", "time", "sha256", "note")}
                  for e in _l(item.get("ledger"))[:200]]
        out.append({"work_id": _s(work_id), "record_sha256": _s(item.get("record_sha256")),
                    "fields": fields, "drafts": drafts, "ledger": ledger})
    return out


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
    matches = [_match(m, n) for n, m in enumerate(_l(bundle.get("matches")), 1)]
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
        matches=matches,
        provenance=_provenance(bundle),
        has_image=any(m["image"] is not None for m in matches),
        # embedded pictures need img-src data: in the CSP; text-only reports keep the stricter policy
        has_media=any(m["image"] is not None and m["image"]["fig"] is not None and
                      (m["image"]["fig"]["q"]["uri"] or m["image"]["fig"]["r"]["uri"]) for m in matches),
    )
