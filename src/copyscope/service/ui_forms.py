"""Form parsing for the web UI: text fields, id lists, and the creation record
built from the register form's fields (``copyscope.creation-record/v1``,
docs/creation-record.md). The record is validated by the ledger's own
``validate_record``; this module only turns form strings into JSON values."""
from __future__ import annotations

import json
import re
from typing import Any

from starlette.datastructures import FormData, UploadFile

from copyscope.errors import InputError, UsageError

SAFE_INT = 2**53 - 1
SEED_MAX = 2**64 - 1
INT_RE = re.compile(r"[+-]?[0-9]+")
FLOAT_RE = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
MODEL_KINDS = ("checkpoint", "lora", "vae", "embedding", "controlnet", "other")
# every form field of the creation record (the JSON text area is "rec_json")
RECORD_FIELDS = ("rec_description", "rec_author", "rec_author_role", "rec_created", "rec_software",
                 "rec_software_version", "rec_prompt", "rec_negative_prompt", "rec_seed", "rec_sampler",
                 "rec_steps", "rec_cfg_scale", "rec_width", "rec_height", "rec_parameters", "rec_drafts")
MODEL_FIELDS = ("rec_model_name", "rec_model_kind", "rec_model_sha256", "rec_model_weight")


def text(form: FormData, name: str, label: str, max_len: int = 200) -> str:
    """A text field, stripped; '' when absent (a file part counts as absent)."""
    value = form.get(name)
    if not isinstance(value, str):
        return ""
    value = value.strip()
    if len(value) > max_len:
        raise UsageError(f"{label}: at most {max_len} characters")
    return value


def id_list(value: str, limit: int = 10_000) -> list[str]:
    """Work ids typed as a list: commas, spaces or new lines between them."""
    ids = [x for x in re.split(r"[\s,;]+", value) if x]
    if len(ids) > limit:
        raise UsageError(f"at most {limit} work ids at once")
    bad = next((x for x in ids if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", x)), None)
    if bad is not None:
        raise UsageError(f"not a work id: {bad[:70]!r}")
    return list(dict.fromkeys(ids))


def number(value: str, label: str, lo: float = 0.0, hi: float = 1.0) -> float:
    if not FLOAT_RE.fullmatch(value):
        raise UsageError(f"{label}: a number between {lo:g} and {hi:g}")
    x = float(value)
    if not lo <= x <= hi:
        raise UsageError(f"{label}: a number between {lo:g} and {hi:g}")
    return x


def _int(value: str, label: str) -> int:
    if not INT_RE.fullmatch(value) or abs(int(value)) > SAFE_INT:
        raise InputError(f"record: {label}: a whole number (e.g. 30)")
    return int(value)


def _float(value: str, label: str) -> float | int:
    if INT_RE.fullmatch(value) and abs(int(value)) <= SAFE_INT:
        return int(value)
    if not FLOAT_RE.fullmatch(value):
        raise InputError(f"record: {label}: a number (e.g. 6.5)")
    return float(value)


def _seed(value: str) -> int | str:
    if not value.isdigit() or int(value) > SEED_MAX:
        raise InputError(f"record: seed: a whole number from 0 to {SEED_MAX}")
    n = int(value)
    return n if n <= SAFE_INT else str(n)     # larger seeds are decimal strings (RFC 8785 doubles)


def _scalar(value: str) -> Any:
    low = value.lower()
    if low in ("true", "false"):
        return low == "true"
    if low == "null":
        return None
    if INT_RE.fullmatch(value) and abs(int(value)) <= SAFE_INT:
        return int(value)
    if FLOAT_RE.fullmatch(value):
        return float(value)
    return value


def _parameters(block: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for n, line in enumerate(block.splitlines(), 1):
        if not line.strip():
            continue
        key, eq, value = line.partition("=")
        if not eq or not key.strip():
            raise InputError(f"record: parameters line {n}: write name = value")
        out[key.strip()] = _scalar(value.strip())
    return out


def _drafts(block: str) -> list[dict[str, Any]]:
    out = []
    for n, line in enumerate(block.splitlines(), 1):
        parts = line.split(maxsplit=2)
        if not parts:
            continue
        if len(parts) < 2:
            raise InputError(f"record: drafts line {n}: write sha256, time, then an optional note")
        draft: dict[str, Any] = {"sha256": parts[0].lower(), "time": parts[1]}
        if len(parts) == 3:
            draft["note"] = parts[2].strip()
        out.append(draft)
    return out


def _models(form: FormData) -> list[dict[str, Any]]:
    rows = zip(*([v if isinstance(v, str) else "" for v in form.getlist(f)] for f in MODEL_FIELDS))
    out = []
    for n, (name, kind, sha, weight) in enumerate(rows, 1):
        name, sha, weight = name.strip(), sha.strip().lower(), weight.strip()
        if not (name or sha or weight):
            continue
        model: dict[str, Any] = {"name": name, "kind": kind.strip() or "checkpoint"}
        if sha:
            model["sha256"] = sha
        if weight:
            model["weight"] = _float(weight, f"model {n} weight")
        out.append(model)
    return out


def record_from_form(form: FormData) -> dict[str, Any] | None:
    """The creation record the form describes (validated), or None when every
    record field is empty. Raises InputError with a one-line message."""
    from copyscope.ledger.record import RECORD_SCHEMA_ID, validate_record  # noqa: PLC0415
    raw = text(form, "rec_json", "creation record JSON", 1 << 20)
    f = {name: text(form, name, name.removeprefix("rec_").replace("_", " "), 100_000) for name in RECORD_FIELDS}
    models = _models(form)
    if raw:
        if any(f.values()) or models:
            raise InputError("record: fill in either the record fields or the JSON, not both")
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise InputError(f"record: not valid JSON ({exc.msg} at character {exc.pos})") from None
        return validate_record(record)
    if not any(f.values()) and not models:
        return None
    record: dict[str, Any] = {"schema": RECORD_SCHEMA_ID}
    if f["rec_description"]:
        record["description"] = f["rec_description"]
    if f["rec_author"] or f["rec_author_role"]:
        record["authors"] = [{"name": f["rec_author"], **({"role": f["rec_author_role"]}
                                                           if f["rec_author_role"] else {})}]
    if f["rec_created"]:
        record["created"] = f["rec_created"]
    if f["rec_software"] or f["rec_software_version"]:
        record["software"] = [{"name": f["rec_software"], **({"version": f["rec_software_version"]}
                                                              if f["rec_software_version"] else {})}]
    gen: dict[str, Any] = {}
    for key in ("prompt", "negative_prompt", "sampler"):
        if f[f"rec_{key}"]:
            gen[key] = f[f"rec_{key}"]
    if f["rec_seed"]:
        gen["seed"] = _seed(f["rec_seed"])
    for key in ("steps", "width", "height"):
        if f[f"rec_{key}"]:
            gen[key] = _int(f[f"rec_{key}"], key)
    if f["rec_cfg_scale"]:
        gen["cfg_scale"] = _float(f["rec_cfg_scale"], "CFG scale")
    if f["rec_parameters"]:
        gen["parameters"] = _parameters(f["rec_parameters"])
    if models:
        gen["models"] = models
    if gen:
        record["generation"] = gen
    if f["rec_drafts"]:
        record["drafts"] = _drafts(f["rec_drafts"])
    return validate_record(record)


def record_values(form: FormData | None) -> dict[str, Any]:
    """The record fields as typed, to fill the form again after an error."""
    if form is None:
        return {}
    out: dict[str, Any] = {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf"}
    out["models"] = list(zip(*([v if isinstance(v, str) else "" for v in form.getlist(f)] for f in MODEL_FIELDS)))
    return out


def is_file(value: object) -> bool:
    return isinstance(value, UploadFile) and bool(value.filename)
