"""SARIF 2.1.0 output (``copyscope.sarif.to_sarif``) for CI code scanning.

Bundles are built from the real model types and ``Result.bundle()``, so they have
exactly the shape ``check`` writes. The structure of every log is checked against
the SARIF 2.1.0 rules that can be checked offline (``check_sarif``). The golden
file pins the whole output; regenerate it deliberately with
``COPYSCOPE_REGEN=1 pytest tests/test_sarif.py``.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import replace
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

import copyscope
from copyscope.evidence import InputRecord, Result, read_bundle, write_bundle
from copyscope.model import Match, Passage, Span, WorkInfo
from copyscope.sarif import FINGERPRINT, REGISTERED_BASE, SCHEMA_URI, path_to_uri, to_sarif

GOLDEN = Path(__file__).resolve().parent / "golden" / "sarif_example.json"
REGEN = os.environ.get("COPYSCOPE_REGEN") == "1"
HEX64 = re.compile(r"[0-9a-f]{64}")
LEVELS = {"none", "note", "warning", "error"}

Q_TEXT = "docs/My Notes/étude 1.txt"      # space and non-ASCII
Q_CODE = "src/app/util.py"
Q_ZERO = "src/app/zero.py"


def sha(s: str) -> str:
    return hashlib.sha256(s.encode()).hexdigest()


def span(start: int, end: int, line_start: int, line_end: int, text: str = "x") -> Span:
    return Span(start=start, end=end, byte_start=start, byte_end=end, line_start=line_start,
                line_end=line_end, text=text, matched=((0, end - start),), before="b", after="a")


def work(n: int, title: str, path: str, owner: str = "Ann Writer", lic: str = "CC-BY-4.0") -> WorkInfo:
    return WorkInfo(work_id=f"W{n:07d}", title=title, owner=owner, license=lic, path=path)


def sample_result() -> Result:
    text = Match(
        modality="text", algorithm="text.winnow/v1", score=0.91234, verdict="copy",
        coverage_registered=0.5, coverage_query=0.25, signals={"vocabulary_overlap": None, "passage_evidence": 0.9},
        passages=(Passage(span(10, 40, 2, 3), span(0, 30, 1, 2), "word", 12, 0.8),        # first, smaller
                  Passage(span(100, 220, 9, 12), span(50, 170, 4, 7), "word", 40, 1.0)),  # best
        query_sha256=sha("q-text"), registered_sha256=sha("r-text"), query_path=Q_TEXT,
        registered_path="works/essay.md", work=work(1, "An Essay", "works/essay.md"))
    code = Match(
        modality="code", algorithm="code.winnow/v1", score=0.75, verdict="copy",
        coverage_registered=0.6, coverage_query=0.3, signals={"passage_evidence": 0.75},
        passages=(Passage(span(5, 80, 3, 9), span(7, 82, 10, 16), "code", 30, 1.0),),
        query_sha256=sha("q-code"), registered_sha256=sha("r-code"), query_path=Q_CODE,
        registered_path="lib/helpers.py", work=work(2, "Helpers", "lib/helpers.py", "Bob Coder", "GPL-3.0-only"),
        extra={"commit": "0123abcd", "language": "python", "shared_literals": ["'hello'"],
               "side_channels": {"identifiers": [], "constants": [
                   {"text": "0x5f3759df", "query_text": "0x5F3759DF", "query_line": 4, "registered_line": 11}],
                   "typos": []}})
    zero = Match(
        modality="code", algorithm="code.winnow/v1", score=0.31, verdict="below-threshold",
        coverage_registered=0.0, coverage_query=0.0, signals={"passage_evidence": None},
        query_sha256=sha("q-zero"), registered_sha256=sha("r-code"), query_path=Q_ZERO,
        registered_path="lib/helpers.py", work=work(2, "Helpers", "lib/helpers.py", "Bob Coder", "GPL-3.0-only"))
    inputs = [InputRecord("query", Q_TEXT, sha("q-text"), 300, "text/plain", "utf-8"),
              InputRecord("query", Q_CODE, sha("q-code"), 200, "text/x-python", "utf-8"),
              InputRecord("query", Q_ZERO, sha("q-zero"), 90, "text/x-python", "utf-8"),
              InputRecord("registered", "works/essay.md", sha("r-text"), 400, "text/markdown", "utf-8", "W0000001"),
              InputRecord("registered", "lib/helpers.py", sha("r-code"), 500, "text/x-python", "utf-8", "W0000002")]
    params = {"code": {"algorithm": "code.winnow/v1", "threshold": 0.5},
              "text": {"algorithm": "text.winnow/v1", "threshold": 0.5}}
    # Deliberately unsorted: Result.bundle() sorts, as check's output does.
    return Result("check", params, inputs=inputs[::-1], matches=[zero, text, code],
                  errors=["bad/file.bin: cannot decode"])


def sample_bundle() -> dict:
    b = sample_result().bundle()
    b["tool"]["version"] = "0.0.0-test"      # the golden file must not change with every release
    return b


# --- offline structural validation -------------------------------------------------

def check_uri(uri: str) -> None:
    assert uri and uri.isascii() and not re.search(r"[\s\\]", uri), uri
    assert not re.search(r"%(?![0-9A-F]{2})", uri), uri
    parts = urlsplit(uri)
    assert not parts.query and not parts.fragment, uri
    assert parts.scheme in ("", "file"), uri


def check_artifact_location(loc: dict, run: dict) -> None:
    check_uri(loc["uri"])
    if "uriBaseId" in loc:
        assert loc["uriBaseId"] in run.get("originalUriBaseIds", {}), loc
        assert not urlsplit(loc["uri"]).scheme, "a uriBaseId only goes with a relative uri"
    if "index" in loc:
        art = run["artifacts"][loc["index"]]["location"]
        assert {k: v for k, v in loc.items() if k != "index"} == art, (loc, art)


def check_region(region: dict) -> None:
    assert isinstance(region["startLine"], int) and region["startLine"] >= 1, region
    assert region.get("endLine", region["startLine"]) >= region["startLine"], region
    for k in ("charOffset", "charLength"):
        assert k not in region or (isinstance(region[k], int) and region[k] >= 0), region


def check_location(loc: dict, run: dict) -> None:
    phys = loc["physicalLocation"]
    check_artifact_location(phys["artifactLocation"], run)
    if "region" in phys:
        check_region(phys["region"])
    if "message" in loc:
        assert isinstance(loc["message"]["text"], str) and loc["message"]["text"]


def check_sarif(log: dict) -> None:
    """The SARIF 2.1.0 requirements checkable without the schema download."""
    json.loads(json.dumps(log, ensure_ascii=False, allow_nan=False))     # plain JSON, no NaN
    assert log["$schema"] == SCHEMA_URI and log["version"] == "2.1.0"
    assert isinstance(log["runs"], list) and log["runs"]
    for run in log["runs"]:
        driver = run["tool"]["driver"]
        assert isinstance(driver["name"], str) and driver["name"]
        ids = [r["id"] for r in driver.get("rules", [])]
        assert len(ids) == len(set(ids)), "rule ids are unique"
        for rule in driver.get("rules", []):
            for k in ("shortDescription", "fullDescription", "help"):
                assert rule[k]["text"]
            assert rule.get("defaultConfiguration", {}).get("level", "warning") in LEVELS
        for inv in run.get("invocations", []):
            assert isinstance(inv["executionSuccessful"], bool)
        for art in run.get("artifacts", []):
            check_artifact_location(art["location"], run)
            assert HEX64.fullmatch(art["hashes"]["sha-256"]), art
            assert "mimeType" not in art or re.fullmatch(r"[^/]+/.+", art["mimeType"])
        for res in run.get("results", []):
            assert isinstance(res["message"]["text"], str) and res["message"]["text"]
            assert res["ruleId"] in ids, res["ruleId"]
            assert ids[res["ruleIndex"]] == res["ruleId"]
            assert res["level"] in LEVELS
            assert res["locations"], "every finding is located"
            for loc in res["locations"] + res.get("relatedLocations", []):
                check_location(loc, run)
            rel_ids = [loc["id"] for loc in res.get("relatedLocations", [])]
            assert len(rel_ids) == len(set(rel_ids)) and all(i >= 0 for i in rel_ids)
            assert all(isinstance(v, str) for v in res["partialFingerprints"].values())


# --- tests ---------------------------------------------------------------------

def test_log_is_structurally_valid_sarif():
    check_sarif(to_sarif(sample_bundle()))


def test_driver_rules_and_version():
    log = to_sarif(sample_result().bundle())
    run, = log["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "copyscope" and driver["version"] == copyscope.__version__
    assert "informationUri" not in driver
    assert [r["id"] for r in driver["rules"]] == ["copyscope/code-copy", "copyscope/text-copy"]
    for rule in driver["rules"]:
        assert "registered work" in rule["help"]["text"] and "copyscope report" in rule["help"]["text"]
        assert "owner" in rule["help"]["text"] and "licence" in rule["help"]["text"]


def test_one_result_per_match_in_bundle_order():
    bundle = sample_bundle()
    results = to_sarif(bundle)["runs"][0]["results"]
    assert len(results) == len(bundle["matches"]) == 3
    assert [r["properties"]["query_sha256"] for r in results] == [m["query"]["sha256"] for m in bundle["matches"]]
    assert [r["ruleId"] for r in results] == [f"copyscope/{m['modality']}-copy" for m in bundle["matches"]]


def _by_query(log: dict) -> dict[str, dict]:
    return {unquote(r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]): r
            for r in log["runs"][0]["results"]}


def test_text_result_location_message_properties():
    res = _by_query(to_sarif(sample_bundle()))[Q_TEXT]
    assert res["ruleId"] == "copyscope/text-copy" and res["level"] == "error"
    msg = res["message"]["text"]
    for part in ("An Essay", "W0000001", "Ann Writer", "CC-BY-4.0", "0.9123", "2 aligned passages"):
        assert part in msg, (part, msg)
    phys = res["locations"][0]["physicalLocation"]
    assert phys["artifactLocation"]["uri"] == "docs/My%20Notes/%C3%A9tude%201.txt"
    # region from the best passage (most tokens), not merely the first in the list
    assert phys["region"] == {"startLine": 9, "endLine": 12, "charOffset": 100, "charLength": 120}
    related = res["relatedLocations"]
    assert [r["message"]["text"] for r in related] == ["registered work lines 1-2", "registered work lines 4-7"]
    for r in related:
        assert r["physicalLocation"]["artifactLocation"]["uri"] == "works/essay.md"
        assert r["physicalLocation"]["artifactLocation"]["uriBaseId"] == REGISTERED_BASE
    assert [r["physicalLocation"]["region"] for r in related] == [{"startLine": 1, "endLine": 2},
                                                                   {"startLine": 4, "endLine": 7}]
    props = res["properties"]
    assert props["score"] == 0.9123 and props["coverage"] == {"query": 0.25, "registered": 0.5}
    assert props["signals"] == {"passage_evidence": 0.9, "vocabulary_overlap": None}
    assert (props["work_id"], props["owner"], props["license"]) == ("W0000001", "Ann Writer", "CC-BY-4.0")
    assert props["registered_sha256"] == sha("r-text") and props["query_sha256"] == sha("q-text")
    assert "commit" not in props
    want = hashlib.sha256((sha("q-text") + sha("r-text") + "100" + ":W0000001").encode()).hexdigest()
    assert res["partialFingerprints"] == {FINGERPRINT: want}


def test_code_result_carries_commit_from_extra():
    res = _by_query(to_sarif(sample_bundle()))[Q_CODE]
    assert res["ruleId"] == "copyscope/code-copy" and res["level"] == "error"
    assert res["properties"]["commit"] == "0123abcd"
    # the side-channel evidence travels with the result; empty channels are left out
    assert res["properties"]["shared_literals"] == ["'hello'"]
    assert res["properties"]["side_channels"] == {"constants": [
        {"text": "0x5f3759df", "query_text": "0x5F3759DF", "query_line": 4, "registered_line": 11}]}
    assert "shared_comments" not in res["properties"]
    assert "Bob Coder" in res["message"]["text"] and "GPL-3.0-only" in res["message"]["text"]
    assert "1 aligned passage." in res["message"]["text"]


def test_zero_passage_match_is_located_at_the_file():
    res = _by_query(to_sarif(sample_bundle()))[Q_ZERO]
    assert res["level"] == "note"                                      # below threshold
    phys = res["locations"][0]["physicalLocation"]
    assert phys["artifactLocation"]["uri"] == Q_ZERO and "region" not in phys
    assert "relatedLocations" not in res and "0 aligned passages" in res["message"]["text"]
    want = hashlib.sha256((sha("q-zero") + sha("r-code") + ":W0000002").encode()).hexdigest()
    assert res["partialFingerprints"][FINGERPRINT] == want


def test_artifacts_list_every_input_with_hashes_and_indices_agree():
    bundle = sample_bundle()
    run = to_sarif(bundle)["runs"][0]
    arts = run["artifacts"]
    assert [a["hashes"]["sha-256"] for a in arts] == [i["sha256"] for i in bundle["inputs"]]
    assert [unquote(a["location"]["uri"]) for a in arts] == [i["path"] for i in bundle["inputs"]]
    assert [a["length"] for a in arts] == [i["size"] for i in bundle["inputs"]]
    for a, rec in zip(arts, bundle["inputs"]):
        assert a["properties"]["role"] == rec["role"]
        assert ("uriBaseId" in a["location"]) == (rec["role"] == "registered")
        assert ("roles" in a) == (rec["role"] != "registered")
    for res in run["results"]:           # every location points at its artifact
        for loc in res["locations"] + res.get("relatedLocations", []):
            assert "index" in loc["physicalLocation"]["artifactLocation"]


def test_errors_become_tool_notifications():
    inv, = to_sarif(sample_bundle())["runs"][0]["invocations"]
    assert inv["executionSuccessful"] is False
    assert [n["message"]["text"] for n in inv["toolExecutionNotifications"]] == ["bad/file.bin: cannot decode"]
    clean = sample_bundle() | {"errors": []}
    assert to_sarif(clean)["runs"][0]["invocations"][0]["executionSuccessful"] is True


def test_identical_registered_bytes_under_two_works_keep_distinct_fingerprints():
    r = sample_result()
    m = r.matches[2]                                   # the code match
    r.matches.append(replace(m, work=work(3, "Fork", "fork/helpers.py"), registered_path="fork/helpers.py"))
    log = to_sarif(r.bundle())
    check_sarif(log)
    fps = [res["partialFingerprints"][FINGERPRINT] for res in log["runs"][0]["results"]]
    assert len(fps) == len(set(fps)) == 4


@pytest.mark.parametrize("path, uri", [
    ("a/b.py", "a/b.py"),
    ("dir with space/ü.py", "dir%20with%20space/%C3%BC.py"),
    ("src\\win\\file.c", "src/win/file.c"),
    ("日本/文書.txt", "%E6%97%A5%E6%9C%AC/%E6%96%87%E6%9B%B8.txt"),
    ("weird#name?.txt", "weird%23name%3F.txt"),
    ("50%.txt", "50%25.txt"),
    ("../up/x.txt", "../up/x.txt"),
    ("/abs/p q.txt", "file:///abs/p%20q.txt"),
    ("C:\\Users\\é\\x.py", "file:///C:/Users/%C3%A9/x.py"),
])
def test_path_to_uri(path, uri):
    assert path_to_uri(path) == uri
    check_uri(uri)
    if not uri.startswith("file:"):
        assert unquote(uri) == path.replace("\\", "/")


def test_compare_bundle_keeps_both_sides_local():
    r = sample_result()
    m = r.matches[1]                                   # the text match
    b = Result("compare", r.parameters,
               inputs=[InputRecord("a", Q_TEXT, m.query_sha256, 300, "text/plain", "utf-8"),
                       InputRecord("b", "other.txt", m.registered_sha256, 400, "text/plain", "utf-8")],
               matches=[replace(m, work=None, registered_path="other.txt")]).bundle()
    log = to_sarif(b)
    check_sarif(log)
    res, = log["runs"][0]["results"]
    rel = res["relatedLocations"][0]["physicalLocation"]["artifactLocation"]
    assert rel == {"uri": "other.txt", "index": 1}
    assert "other.txt" in res["message"]["text"] and "work_id" not in res["properties"]


def test_deterministic_and_survives_a_bundle_round_trip(tmp_path):
    a = to_sarif(sample_bundle())
    r = sample_result()
    r.matches.reverse()
    r.inputs.reverse()
    b = r.bundle()
    b["tool"]["version"] = "0.0.0-test"
    assert json.dumps(to_sarif(b)) == json.dumps(a)
    write_bundle(sample_bundle(), tmp_path / "b.json")                 # canonical JSON on disk
    assert to_sarif(read_bundle(tmp_path / "b.json")) == a


def test_empty_bundle_still_declares_rules():
    b = Result("check", {"code": {}, "text": {}}).bundle()
    log = to_sarif(b)
    check_sarif(log)
    run = log["runs"][0]
    assert run["results"] == [] and run["artifacts"] == []
    assert len(run["tool"]["driver"]["rules"]) == 2


def test_real_check_bundle_converts(cli, registered_home, samples):
    rc, out, err = cli("check", samples / "suspects" / "mixed_en_zh.html", "--format", "json")
    assert rc == 1, err
    bundle = json.loads(out)
    log = to_sarif(bundle)
    check_sarif(log)
    results = log["runs"][0]["results"]
    assert len(results) == len(bundle["matches"]) >= 1
    assert all(r["level"] == "error" and r["locations"][0]["physicalLocation"]["region"] for r in results)


def test_golden_example():
    now = json.dumps(to_sarif(sample_bundle()), indent=2, ensure_ascii=False) + "\n"
    if REGEN:
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(now, encoding="utf-8")
    assert GOLDEN.exists(), f"{GOLDEN} missing: run with COPYSCOPE_REGEN=1 to create it"
    assert GOLDEN.read_text(encoding="utf-8") == now, (
        "SARIF output changed; if intended, regenerate with COPYSCOPE_REGEN=1 pytest tests/test_sarif.py")
