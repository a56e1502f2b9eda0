"""Creation records (``copyscope.creation-record/v1``): how a work was made.

Prompts, parameters, seed, model hashes, software and dated drafts of a (possibly
AI-assisted) work; the ledger stores the SHA-256 of the record's RFC 8785 canonical
bytes (``record_sha256``). See docs/creation-record.md. The validator interprets the
JSON Schema subset used by ``RECORD_SCHEMA`` (so they cannot drift apart) plus limits
JSON Schema cannot express, and names the JSON path of the first problem.
docs/creation-record.schema.json: ``python -m copyscope.ledger.record > FILE``.
"""
from __future__ import annotations

import codecs
import copy
import difflib
import hashlib
import json
import math
import re
import stat
from pathlib import Path
from typing import Any

import rfc8785

from copyscope.errors import InputError, LimitError

RECORD_SCHEMA_ID = "copyscope.creation-record/v1"
MAX_BYTES = 1 << 20          # file size and canonical size
MAX_STRING = 100_000         # characters, keys included
MAX_ITEMS = 10_000           # array items
MAX_DEPTH = 32               # the record itself is level 1
SAFE_INT = 2**53 - 1         # RFC 8785 / I-JSON: larger integers are not exact
SEED_MAX = 2**64 - 1


def _str(**kw: Any) -> dict[str, Any]:
    return {"type": "string", "maxLength": MAX_STRING, **kw}


def _obj(props: dict[str, Any], *required: str, **kw: Any) -> dict[str, Any]:
    req = {"required": list(required)} if required else {}
    return {"type": "object", "properties": props, **req, "additionalProperties": False, **kw}


def _arr(items: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return {"type": "array", "items": items, "maxItems": MAX_ITEMS, **kw}


_SHA = {"$ref": "#/$defs/sha256"}
_TIME = {"$ref": "#/$defs/dateTime"}
_NAME = {"$ref": "#/$defs/name"}
_TEXT = {"$ref": "#/$defs/text"}
_MEDIA = r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*(\s*;.*)?$"

RECORD_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "urn:copyscope:creation-record:v1",
    "title": "copyscope creation record v1",
    "description": (
        "How a work was made. Also enforced by copyscope: strings (and keys) at most "
        f"{MAX_STRING} characters, arrays at most {MAX_ITEMS} items, nesting depth at most "
        f"{MAX_DEPTH}, no NaN/Infinity, integers within +/-{SAFE_INT} (RFC 8785), unique "
        f"keys, no lone surrogates, unique sha256 among drafts (x-uniqueKey), seed strings at "
        f"most {SEED_MAX} (x-decimalMax), at most {MAX_BYTES} bytes as RFC 8785 canonical JSON."),
    "type": "object",
    "required": ["schema"],
    "additionalProperties": False,
    "properties": {
        "schema": {"const": RECORD_SCHEMA_ID},
        "title": _TEXT,
        "description": _TEXT,
        "authors": _arr(_obj({"name": _NAME, "role": _TEXT, "contact": _TEXT}, "name")),
        "created": _TIME,
        "software": _arr(_obj({"name": _NAME, "version": _TEXT}, "name")),
        "generation": _obj({
            "prompt": _TEXT,
            "negative_prompt": _TEXT,
            "seed": {"anyOf": [{"type": "integer", "minimum": 0, "maximum": SAFE_INT},
                               _str(pattern="^(0|[1-9][0-9]{0,19})$", **{"x-decimalMax": str(SEED_MAX)})],
                     "x-expected": f"an integer 0..{SAFE_INT}, or a decimal string up to {SEED_MAX}"},
            "sampler": _NAME,
            "steps": {"type": "integer", "exclusiveMinimum": 0, "maximum": SAFE_INT},
            "cfg_scale": {"type": "number"},
            "width": {"type": "integer", "exclusiveMinimum": 0, "maximum": SAFE_INT},
            "height": {"type": "integer", "exclusiveMinimum": 0, "maximum": SAFE_INT},
            "parameters": {"type": "object", "additionalProperties": {
                "type": ["string", "number", "boolean", "null"], "maxLength": MAX_STRING}},
            "models": _arr(_obj({
                "name": _NAME,
                "kind": {"enum": ["checkpoint", "lora", "vae", "embedding", "controlnet", "other"]},
                "sha256": _SHA, "weight": {"type": "number"}, "source": _TEXT},
                "name", "kind", "sha256")),
        }),
        "drafts": _arr(_obj({
            "sha256": _SHA, "time": _TIME, "note": _TEXT, "selected": {"type": "boolean"},
            "media_type": _str(pattern=_MEDIA, **{"x-expected": "a media type such as image/png"}),
            "path": _TEXT}, "sha256", "time"), **{"x-uniqueKey": "sha256"}),
        "inputs": _arr(_obj({
            "sha256": _SHA,
            "role": {"enum": ["reference", "source", "mask", "init-image", "other"]},
            "note": _TEXT}, "sha256", "role")),
        "extensions": {"type": "object", "description": "free-form, tool-specific data"},
    },
    "$defs": {
        "sha256": _str(pattern="^[0-9a-f]{64}$",
                       **{"x-expected": "a SHA-256 digest (64 lowercase hex digits)"}),
        "dateTime": _str(format="date-time"),
        "name": _str(minLength=1),
        "text": _str(),
    },
}


def record_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a creation record (a fresh copy)."""
    return copy.deepcopy(RECORD_SCHEMA)


class _Bad(Exception):
    def __init__(self, path: str, message: str, *, limit: bool = False) -> None:
        super().__init__(f"{path}: {message}")
        self.limit = limit


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DT = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?"
                 r"([Zz]|[+-]([0-9]{2}):([0-9]{2}))?")
_ARTICLE = {"object": "an object", "array": "an array", "string": "a string", "integer": "an integer",
            "number": "a number", "boolean": "a boolean", "null": "null"}


def _join(path: str, key: str) -> str:
    if _IDENT.fullmatch(key):
        return f"{path}.{key}"
    return f"{path}[{json.dumps(key if len(key) <= 60 else key[:60] + '...')}]"


def _short(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return _ARTICLE["object" if isinstance(value, dict) else "array"]
    if not isinstance(value, (str, int, float)) and value is not None:
        return f"a Python {type(value).__name__}"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > SAFE_INT:
        return "a very large integer"
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:40] + "..."


def _jtype(v: Any, path: str) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    for kind, name in ((int, "integer"), (float, "number"), (str, "string"), (dict, "object"), (list, "array")):
        if isinstance(v, kind):
            return name
    raise _Bad(path, f"not a JSON value (a Python {type(v).__name__})")


def _datetime_problem(s: str) -> str | None:
    m = _DT.fullmatch(s)
    if m:
        y, mo, d, h, mi, sec = (int(g) for g in m.groups()[:6])
        leap = y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)
        days = [31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        oh, om = m.group(9), m.group(10)
        if (1 <= mo <= 12 and 1 <= d <= days[mo - 1] and h <= 23 and mi <= 59 and sec <= 60
                and (oh is None or (int(oh) <= 23 and int(om) <= 59))):
            if m.group(8) is None:
                return "not an RFC 3339 date-time: no time zone (add Z or an offset such as +08:00)"
            return None
    return "not an RFC 3339 date-time (e.g. 2024-05-01T14:30:00Z)"


def _keywords(v: Any, t: str, s: dict[str, Any], path: str) -> None:
    """The non-recursive keywords of schema ``s`` for one value of JSON type ``t``."""
    if "anyOf" in s:
        for alt in s["anyOf"]:
            try:
                _keywords(v, t, alt, path)
                break
            except _Bad:
                pass
        else:
            raise _Bad(path, f"expected {s['x-expected']} (got {_short(v)})")
    want = s.get("type")
    if want is not None:
        wants = [want] if isinstance(want, str) else want
        if not (t in wants or (t == "integer" and "number" in wants)):
            names = [_ARTICLE[w] for w in wants]
            names = ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0]
            raise _Bad(path, f"expected {names}, got {_ARTICLE[t]}")
    if "const" in s and (v != s["const"] or t != _jtype(s["const"], path)):
        raise _Bad(path, f"must be {_short(s['const'])} (got {_short(v)})")
    if "enum" in s and (t != "string" or v not in s["enum"]):
        raise _Bad(path, f"must be one of {', '.join(s['enum'])} (got {_short(v)})")
    if t == "string":
        if len(v) > s.get("maxLength", MAX_STRING):
            raise _Bad(path, f"string longer than {MAX_STRING} characters", limit=True)
        if len(v) < s.get("minLength", 0):
            raise _Bad(path, "must not be empty")
        if "pattern" in s and not re.fullmatch(s["pattern"].removeprefix("^").removesuffix("$"), v):
            raise _Bad(path, f"not {s.get('x-expected', 'in the expected form')} (got {_short(v)})")
        if "x-decimalMax" in s and int(v) > int(s["x-decimalMax"]):
            raise _Bad(path, f"out of range (at most {s['x-decimalMax']})")
        if s.get("format") == "date-time" and (problem := _datetime_problem(v)):
            raise _Bad(path, problem)
    elif t in ("integer", "number"):
        if "minimum" in s and v < s["minimum"]:
            raise _Bad(path, f"must be at least {s['minimum']} (got {v})")
        if "exclusiveMinimum" in s and v <= s["exclusiveMinimum"]:
            raise _Bad(path, f"must be greater than {s['exclusiveMinimum']} (got {v})")
        if "maximum" in s and v > s["maximum"]:
            raise _Bad(path, f"must be at most {s['maximum']} (got {v})")


def _check_string(v: str, path: str, what: str = "string") -> str:
    if len(v) > MAX_STRING:
        raise _Bad(path, f"{what} longer than {MAX_STRING} characters", limit=True)
    if not v.isascii():
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:
            raise _Bad(path, f"{what} is not valid Unicode (lone surrogate)") from None
    return str.__str__(v)


def _walk(v: Any, s: dict[str, Any] | None, path: str, depth: int, budget: list[int]) -> Any:
    """Check ``v`` against ``s`` (None: free-form JSON) and return a plain-typed copy."""
    t = _jtype(v, path)
    if t == "number" and not math.isfinite(v):
        raise _Bad(path, "NaN and Infinity are not allowed in JSON")
    if t == "integer" and abs(v) > SAFE_INT:
        raise _Bad(path, f"integer outside +/-{SAFE_INT} cannot be hashed exactly (RFC 8785); "
                         "write it as a decimal string")
    if s is not None:
        while "$ref" in s:
            s = RECORD_SCHEMA["$defs"][s["$ref"].rsplit("/", 1)[1]]
        _keywords(v, t, s, path)
    # A lower bound of the canonical size, so that huge inputs fail fast (exact check later).
    if t in ("string", "integer"):
        budget[0] += len(v) + 2 if t == "string" else len(str(int(v)))
    elif t in ("object", "array"):
        budget[0] += 1 + max(len(v), 1)                  # brackets and commas
        if depth > MAX_DEPTH:
            raise _Bad(path, f"nested deeper than {MAX_DEPTH} levels", limit=True)
    else:
        budget[0] += 1 if t == "number" else 4
    if budget[0] > MAX_BYTES:
        raise _Bad("$", f"record larger than {MAX_BYTES} bytes (1 MiB) as canonical JSON", limit=True)
    if t == "array":
        if len(v) > MAX_ITEMS:
            raise _Bad(path, f"more than {MAX_ITEMS} items", limit=True)
        items, unique = (s.get("items"), s.get("x-uniqueKey")) if s else (None, None)
        out, seen = [], {}
        for i, x in enumerate(v):
            out.append(_walk(x, items, f"{path}[{i}]", depth + 1, budget))
            if unique and out[i][unique] in seen:
                raise _Bad(f"{path}[{i}].{unique}", f"duplicate of {path}[{seen[out[i][unique]]}].{unique}")
            if unique:
                seen[out[i][unique]] = i
        return out
    if t == "object":
        props = s.get("properties", {}) if s else {}
        extra = s.get("additionalProperties", True) if s else True
        required = s.get("required", []) if s else []
        for key in required:
            if key not in v:
                raise _Bad(_join(path, key), "missing (required)")
        done: dict[str, Any] = {}
        for key in required + [k for k in v if k not in required]:   # required keys first
            if not isinstance(key, str):
                raise _Bad(f"{path}[{_short(key)}]", "object keys must be strings")
            kpath = _join(path, key)
            _check_string(key, kpath, "key")
            budget[0] += len(key) + 3
            if key in props:
                child = props[key]
            elif extra is False:
                hint = difflib.get_close_matches(key, list(props), n=1)
                raise _Bad(kpath, "unknown key" + (f' (did you mean "{hint[0]}"?)' if hint else "")
                           + ("; put tool-specific data under $.extensions" if path == "$" else ""))
            else:
                child = extra if isinstance(extra, dict) else None
            done[key] = _walk(v[key], child, kpath, depth + 1, budget)
        return {str.__str__(k): done[k] for k in v}
    if t == "string":
        return _check_string(v, path)
    return None if t == "null" else {"boolean": bool, "integer": int, "number": float}[t](v)


def _validate(record: object, source: str) -> tuple[dict[str, Any], bytes]:
    try:
        if not isinstance(record, dict):
            raise _Bad("$", f"expected an object, got {_ARTICLE.get(_jtype(record, '$'))}")
        out = _walk(record, RECORD_SCHEMA, "$", 1, [0])
        try:
            canonical = rfc8785.dumps(out)
        except (rfc8785.CanonicalizationError, UnicodeError) as exc:   # should be unreachable
            raise _Bad("$", f"cannot be canonicalised ({exc})") from None
        if len(canonical) > MAX_BYTES:
            raise _Bad("$", f"record larger than {MAX_BYTES} bytes (1 MiB) as canonical JSON", limit=True)
    except _Bad as bad:
        raise (LimitError if bad.limit else InputError)(f"{source}: {bad}") from None
    return out, canonical


def validate_record(record: object, *, source: str = "record") -> dict[str, Any]:
    """Check a creation record; return a plain-typed copy with the same content and key order.

    Raises InputError (LimitError for size limits) naming the JSON path of the first problem,
    e.g. ``record: $.drafts[2].time: not an RFC 3339 date-time (...)``."""
    return _validate(record, source)[0]


def record_sha256(record: object) -> str:
    """SHA-256 (hex) of the RFC 8785 canonical bytes of a valid record (validates it first)."""
    return hashlib.sha256(_validate(record, "record")[1]).hexdigest()


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return out


def load_record_file(path: Path) -> tuple[dict[str, Any], str]:
    """Read, parse and validate a creation record file; return (record, record_sha256)."""
    path, src = Path(path), str(path)
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            raise InputError(f"{src}: creation record is not a regular file")
        with path.open("rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise InputError(f"{src}: cannot read creation record ({exc.strerror or exc})") from None
    if len(raw) > MAX_BYTES:
        raise LimitError(f"{src}: creation record larger than 1 MiB ({MAX_BYTES} bytes)")
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8):]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise InputError(f"{src}: not UTF-8 text (invalid byte at line {line}, column {col})") from None
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        raise InputError(f"{src}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except _DuplicateKey as exc:
        raise InputError(f"{src}: duplicate key {_short(exc.args[0])} in a JSON object") from None
    except RecursionError:
        raise LimitError(f"{src}: JSON nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:                       # e.g. an integer with thousands of digits
        raise InputError(f"{src}: invalid JSON ({exc})") from None
    record, canonical = _validate(data, src)
    return record, hashlib.sha256(canonical).hexdigest()


if __name__ == "__main__":                          # regenerate docs/creation-record.schema.json
    print(json.dumps(RECORD_SCHEMA, indent=2, ensure_ascii=False))
