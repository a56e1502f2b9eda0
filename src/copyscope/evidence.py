"""Evidence bundles: the canonical JSON record of a check or compare.

A bundle holds the inputs (path, SHA-256, size, media type, encoding), the tool
version, every parameter, and the matches with their aligned passages. It is
serialised as RFC 8785 canonical JSON, so the same inputs and version give the
same bytes (no timestamps inside). Reports are views of a bundle.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rfc8785

from copyscope import __version__
from copyscope.errors import InputError, NotFoundError
from copyscope.model import Match

SCHEMA = "copyscope.evidence/v1"


@dataclass(frozen=True)
class InputRecord:
    role: str              # "query" | "registered" | "a" | "b" | "unit"
    path: str
    sha256: str
    size: int
    media_type: str
    encoding: str | None = None
    work_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        d = {"role": self.role, "path": self.path, "sha256": self.sha256, "size": self.size,
             "media_type": self.media_type, "encoding": self.encoding}
        if self.work_id:
            d["work_id"] = self.work_id
        return d


@dataclass
class Result:
    """What ``check`` and ``compare`` return to every shell."""

    operation: str
    parameters: dict[str, Any]
    inputs: list[InputRecord] = field(default_factory=list)
    matches: list[Match] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)   # one line per input that failed
    triaged: list[dict] = field(default_factory=list)  # generated / minified / vendored inputs
    provenance: dict[str, dict] = field(default_factory=dict)  # work id → creation record and ledger history

    @property
    def copies(self) -> list[Match]:
        return [m for m in self.matches if m.verdict == "copy"]

    def bundle(self) -> dict[str, Any]:
        seen: set[tuple[str, str]] = set()
        inputs = []
        for rec in self.inputs:
            key = (rec.role, rec.sha256 + rec.path)
            if key not in seen:
                seen.add(key)
                inputs.append(rec.to_json())
        matches = sorted((m.to_json() for m in self.matches),
                         key=lambda m: (m["query"]["path"], -m["score"], m["registered"]["path"]))
        return {
            "schema": SCHEMA,
            "tool": {"name": "copyscope", "version": __version__},
            "operation": self.operation,
            "parameters": self.parameters,
            "inputs": sorted(inputs, key=lambda d: (d["role"], d["path"])),
            "matches": matches,
            "errors": list(self.errors),
            **({"triaged": sorted(self.triaged, key=lambda t: t["path"])} if self.triaged else {}),
            **({"provenance": {k: self.provenance[k] for k in sorted(self.provenance)}} if self.provenance else {}),
        }


def canonical_bytes(bundle: dict[str, Any]) -> bytes:
    return rfc8785.dumps(bundle)


def write_bundle(bundle: dict[str, Any], path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_bytes(canonical_bytes(bundle))
        tmp.replace(path)
    except OSError as exc:
        raise InputError(f"{path}: cannot write bundle ({exc.strerror})") from None


def read_bundle(path: Path) -> dict[str, Any]:
    """Load and sanity-check a bundle written by ``check``/``compare --bundle``."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise NotFoundError(f"{path}: no such file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise InputError(f"{path}: not a copyscope evidence bundle (expected schema {SCHEMA})")
    for key, kind in (("inputs", list), ("matches", list), ("parameters", dict)):
        if not isinstance(data.get(key), kind):
            raise InputError(f"{path}: bundle field {key!r} is missing or malformed")
    for m in data["matches"]:
        if not isinstance(m, dict) or not isinstance(m.get("passages", []), list):
            raise InputError(f"{path}: a match in the bundle is malformed")
    return data
