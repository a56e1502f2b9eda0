"""``copyscope demo``: the built-in samples are registered and checked, and the result
agrees with the ground truth in samples/text/MANIFEST.tsv."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from conftest import read_manifest

INNOCENT = ("suspects/innocent_en.txt", "suspects/innocent_zh.txt")


def _rel(path: str, out: Path) -> str:
    """A bundle path (``OUT/samples/suspects/x``) as a manifest path (``suspects/x``)."""
    return Path(path).resolve().relative_to((out / "samples").resolve()).as_posix()


@pytest.fixture
def demo_run(cli, tmp_path, clean_env):
    out = tmp_path / "demo out"
    rc, stdout, err = cli("demo", "--out", out, home=None)
    assert rc == 0, err
    assert "Traceback" not in err
    return out, stdout


def test_demo_writes_report_and_bundle(demo_run):
    out, stdout = demo_run
    assert (out / "report.html").is_file()
    assert (out / "evidence.json").is_file()
    assert (out / "workspace" / "registry.db").is_file()
    assert "registered 4 works" in stdout
    assert str((out / "report.html").resolve()) in stdout


def test_demo_bundle_matches_manifest(demo_run, samples):
    out, _ = demo_run
    bundle = json.loads((out / "evidence.json").read_bytes())
    assert bundle["schema"] == "copyscope.evidence/v1" and bundle["operation"] == "check"
    assert bundle["errors"] == []
    found = {(_rel(m["query"]["path"], out), _rel(m["registered"]["path"], out)): m for m in bundle["matches"]}
    rows = read_manifest(samples)
    expected = [(r["suspect"], r["source"]) for r in rows if r["expected"] == "copy"]
    assert expected, rows
    for pair in expected:
        assert pair in found, f"missing match {pair}; found {sorted(found)}"
        m = found[pair]
        assert m["verdict"] == "copy" and m["score"] >= 0.5 and m["passages"], pair
        assert m["registered"]["work_id"] and m["registered"]["license"] == "CC-BY-4.0"
    assert {r["suspect"] for r in rows if r["expected"] == "none"} == set(INNOCENT)
    for suspect in INNOCENT:
        assert not [p for p in found if p[0] == suspect], f"{suspect} must not match: {found.keys()}"
    queries = {_rel(i["path"], out) for i in bundle["inputs"] if i["role"] == "query"}
    assert {r["suspect"] for r in rows} <= queries             # every suspect was checked
    for rec in bundle["inputs"]:
        assert rec["sha256"] == hashlib.sha256(Path(rec["path"]).read_bytes()).hexdigest()


def test_demo_report_mentions_every_copied_suspect(demo_run, samples):
    out, _ = demo_run
    html = (out / "report.html").read_text(encoding="utf-8")
    rows = read_manifest(samples)
    for r in rows:
        if r["expected"] == "copy":
            assert r["suspect"] in html, r["suspect"]
            assert Path(r["source"]).name in html, r["source"]
    bundle = json.loads((out / "evidence.json").read_bytes())
    for m in bundle["matches"]:
        assert m["query"]["sha256"] in html and m["registered"]["sha256"] in html


def test_demo_is_repeatable(cli, demo_run, clean_env):
    out, _ = demo_run
    first = (out / "evidence.json").read_bytes()
    rc, stdout, err = cli("--json", "demo", "--out", out, home=None)    # same directory again
    assert rc == 0, err
    info = json.loads(stdout)
    assert Path(info["bundle"]) == out / "evidence.json" and Path(info["report"]) == out / "report.html"
    assert info["matches"] == len(json.loads(first)["matches"])
    # Everything but the ledger's clock is the same: each run registers the samples anew.
    assert _timeless(json.loads((out / "evidence.json").read_bytes())) == _timeless(json.loads(first))


def _timeless(bundle: dict) -> dict:
    for work in bundle.get("provenance", {}).values():
        for entry in work.get("ledger", []):
            entry.pop("time", None)
    return bundle


def test_demo_via_binary(cli, tmp_path, clean_env, samples):
    out = tmp_path / "d"
    rc, stdout, err = cli("--quiet", "demo", "-o", out, home=None, subprocess=True, timeout=120)
    assert rc == 0, err
    assert err == ""
    bundle = json.loads((out / "evidence.json").read_bytes())
    copies = {r["suspect"] for r in read_manifest(samples) if r["expected"] == "copy"}
    assert {_rel(m["query"]["path"], out) for m in bundle["matches"]} == copies
