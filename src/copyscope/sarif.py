"""SARIF 2.1.0 view of an evidence bundle, for CI code-scanning systems.

``to_sarif(bundle)`` turns a ``copyscope.evidence/v1`` bundle into a SARIF log with
one run: a rule per modality (``copyscope/<modality>-copy``), a result per match
located at the query file (region from the match's primary passage), the
registered side as related locations, and every input as a run artifact with its
SHA-256. No timestamps or absolute tool paths: the same bundle gives the same log.
"""
from __future__ import annotations

import hashlib
import re
from typing import Any
from urllib.parse import quote

SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
REGISTERED_BASE = "COPYSCOPE_REGISTERED"   # registered paths are not paths in the scanned tree
FINGERPRINT = "copyscope/v1"
_DRIVE = re.compile(r"^[A-Za-z]:/")


def path_to_uri(path: str) -> str:
    """A bundle path as an RFC 3986 URI reference: forward slashes, spaces and
    non-ASCII percent-encoded (UTF-8); relative stays relative, absolute -> file:."""
    p = path.replace("\\", "/")
    if _DRIVE.match(p):
        return "file:///" + p[:2] + quote(p[2:], safe="/")
    if p.startswith("/"):
        return "file://" + quote(p, safe="/")
    return quote(p, safe="/")


def _location(path: str, registered: bool, index: int | None) -> dict[str, Any]:
    loc: dict[str, Any] = {"uri": path_to_uri(path)}
    if registered and not loc["uri"].startswith("file:"):     # SARIF: no base for an absolute uri
        loc["uriBaseId"] = REGISTERED_BASE
    if index is not None:
        loc["index"] = index
    return loc


def _lines(span: dict[str, Any]) -> dict[str, int]:
    start = max(1, int(span["line_start"]))
    return {"startLine": start, "endLine": max(start, int(span["line_end"]))}


def primary_passage(passages: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The passage that locates a result: most aligned tokens, earliest on ties."""
    return max(passages, key=lambda p: p.get("tokens", 0), default=None)


def fingerprint(match: dict[str, Any]) -> str:
    """sha256(query sha256 + registered sha256 + primary passage query start [+ ':' work id]).
    The work id keeps apart two works registered with identical bytes."""
    p = primary_passage(match.get("passages", []))
    key = match["query"]["sha256"] + match["registered"]["sha256"] + (str(p["query"]["start"]) if p else "")
    if match["registered"].get("work_id"):
        key += ":" + match["registered"]["work_id"]
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _rule(modality: str) -> dict[str, Any]:
    what = "source code" if modality == "code" else modality
    return {
        "id": f"copyscope/{modality}-copy",
        "name": f"{modality.title()}Copy",
        "shortDescription": {"text": f"{what.capitalize()} copied from a registered work"},
        "fullDescription": {"text": f"copyscope found {what} in this file that aligns with a work in its "
                                    f"registry ({modality} modality), with passage-level evidence."},
        "help": {"text": f"This finding means content matching a registered work was found: the {what} here "
                         "aligns with the registered work named in the message (its owner and licence are "
                         "given). Check that the licence permits this use and its terms are met, or remove "
                         "the copied content. For the aligned evidence, write a bundle with `copyscope check "
                         "--bundle FILE` and run `copyscope report FILE`."},
        "defaultConfiguration": {"level": "error"},
    }


def _message(m: dict[str, Any]) -> str:
    reg, n = m["registered"], len(m.get("passages", []))
    work = (f"registered work \"{reg.get('title', '')}\" ({reg['work_id']}, owner {reg.get('owner', '?')}, "
            f"licence {reg.get('license', '?')})") if reg.get("work_id") else reg["path"]
    verdict = "copies" if m["verdict"] == "copy" else "partly matches (below threshold)"
    return (f"This {m['modality']} {verdict} {work}: score {m['score']:.4f}, "
            f"{n} aligned passage{'' if n == 1 else 's'}. See `copyscope report` for the evidence.")


def _result(m: dict[str, Any], rule_index: dict[str, int], art_index: dict[tuple, int],
            in_registry: bool) -> dict[str, Any]:
    q, reg, passages = m["query"], m["registered"], m.get("passages", [])
    q_index = art_index.get((False, q["path"], q["sha256"]))
    phys: dict[str, Any] = {"artifactLocation": _location(q["path"], False, q_index)}
    best = primary_passage(passages)
    if best is not None:
        s = best["query"]
        phys["region"] = {**_lines(s), "charOffset": int(s["start"]),
                          "charLength": max(0, int(s["end"]) - int(s["start"]))}
    reg_loc = _location(reg["path"], in_registry, art_index.get((in_registry, reg["path"], reg["sha256"])))
    related = []
    for i, p in enumerate(passages):
        lines = _lines(p["registered"])
        related.append({"id": i, "physicalLocation": {"artifactLocation": dict(reg_loc), "region": lines},
                        "message": {"text": f"registered work lines {lines['startLine']}-{lines['endLine']}"}})
    extra = m.get("extra") or {}
    props = {"score": m["score"], "coverage": m.get("coverage"), "signals": m.get("signals"),
             "work_id": reg.get("work_id"), "owner": reg.get("owner"), "license": reg.get("license"),
             "registered_sha256": reg["sha256"], "query_sha256": q["sha256"],
             "commit": extra.get("commit"), "triage": extra.get("triage"),
             # what a renamed copy still carries (code): strings, comments, names, numbers, typos
             "shared_literals": extra.get("shared_literals") or None,
             "shared_comments": extra.get("shared_comments") or None,
             "side_channels": {k: v for k, v in (extra.get("side_channels") or {}).items() if v} or None}
    rule_id = f"copyscope/{m['modality']}-copy"
    out = {"ruleId": rule_id, "ruleIndex": rule_index[rule_id],
           "level": "error" if m["verdict"] == "copy" else "note",
           "message": {"text": _message(m)}, "locations": [{"physicalLocation": phys}]}
    if related:
        out["relatedLocations"] = related
    out["partialFingerprints"] = {FINGERPRINT: fingerprint(m)}
    out["properties"] = {k: v for k, v in props.items() if v is not None}
    return out


def _artifact(rec: dict[str, Any]) -> dict[str, Any]:
    registered = rec["role"] == "registered"
    art: dict[str, Any] = {"location": _location(rec["path"], registered, None), "length": rec["size"]}
    if not registered:
        art["roles"] = ["analysisTarget"]
    if re.match(r"^[^/]+/.+$", rec.get("media_type") or ""):
        art["mimeType"] = rec["media_type"]
    if rec.get("encoding"):
        art["encoding"] = rec["encoding"]
    art["hashes"] = {"sha-256": rec["sha256"]}
    art["properties"] = {"role": rec["role"], **({"work_id": rec["work_id"]} if rec.get("work_id") else {})}
    return art


def to_sarif(bundle: dict[str, Any]) -> dict[str, Any]:
    """Convert an evidence bundle (``copyscope.evidence/v1``) into a SARIF 2.1.0 log."""
    matches, inputs = bundle.get("matches", []), bundle.get("inputs", [])
    modalities = {m["modality"] for m in matches}
    modalities |= {k for k, v in (bundle.get("parameters") or {}).items() if isinstance(v, dict)}
    rules = [_rule(mod) for mod in sorted(modalities)]
    rule_index = {r["id"]: i for i, r in enumerate(rules)}
    art_index = {(r["role"] == "registered", r["path"], r["sha256"]): i
                 for i, r in reversed(list(enumerate(inputs)))}      # first input wins
    in_registry = bundle.get("operation") != "compare"   # compare's "registered" side is a local file
    errors = list(bundle.get("errors", []))
    run = {
        "tool": {"driver": {"name": "copyscope", "version": str(bundle["tool"]["version"]), "rules": rules}},
        "invocations": [{"executionSuccessful": not errors,
                         "toolExecutionNotifications": [{"level": "error", "message": {"text": e}} for e in errors]}],
        "originalUriBaseIds": {REGISTERED_BASE: {"description": {
            "text": "Paths of registered works as recorded in the copyscope registry (not in this tree)."}}},
        "artifacts": [_artifact(r) for r in inputs],
        "columnKind": "unicodeCodePoints",
        "results": [_result(m, rule_index, art_index, in_registry) for m in matches],
    }
    return {"$schema": SCHEMA_URI, "version": "2.1.0", "runs": [run]}
