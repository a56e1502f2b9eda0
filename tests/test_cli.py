"""End-to-end tests of the ``copyscope`` command line (commands, flags, formats, exit codes)."""
from __future__ import annotations

import hashlib
import json
import re
import shutil
import sqlite3
from html.parser import HTMLParser
from pathlib import Path

import pytest

from copyscope.storage.blobs import BlobStore
import rfc8785

import copyscope
from conftest import assert_clean_failure, read_manifest, stderr_lines

WORK_LINE = re.compile(r"^(W\d+)\t([^\t]+)\t([^\t]+)$")
REGISTERED = ("en_lighthouse.md", "en_soil.txt", "zh_bridge.txt", "zh_tea.txt")


def sha256_file(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def works_in(home: Path) -> list[tuple]:
    con = sqlite3.connect(f"file:{home / 'registry.db'}?mode=ro", uri=True, timeout=5)
    try:
        return con.execute("SELECT work_id, title, owner, license, kind, root_path, record_json, "
                           "record_sha256 FROM works ORDER BY id").fetchall()
    finally:
        con.close()


# --- init and workspace selection ---------------------------------------------

def test_init_creates_workspace_and_is_idempotent(cli, home, samples):
    rc, out, err = cli("init")
    assert rc == 0, err
    assert (home / "registry.db").is_file()
    assert (home / "blobs").is_dir() and (home / "index").is_dir()
    assert "workspace ready" in out

    rc, out, err = cli("register", samples / "registered" / "en_soil.txt", "--owner", "Ann")
    assert rc == 0, err
    before = (home / "registry.db").stat().st_size
    for _ in range(2):                         # init again: still fine, nothing lost
        rc, out, err = cli("init")
        assert rc == 0, err
    assert (home / "registry.db").stat().st_size >= before
    rc, out, _ = cli("works")
    assert rc == 0 and len(out.splitlines()) == 1 and "en_soil.txt" in out


def test_home_flag_creates_workspace_there(cli, tmp_path):
    target = tmp_path / "nested" / "place"
    rc, out, err = cli("init", home=target)
    assert rc == 0, err
    assert (target / "registry.db").is_file()


def test_copyscope_home_env_var_selects_workspace(cli, tmp_path, monkeypatch, samples):
    env_home = tmp_path / "from-env"
    monkeypatch.setenv("COPYSCOPE_HOME", str(env_home))
    rc, _, err = cli("init", home=None)
    assert rc == 0, err
    assert (env_home / "registry.db").is_file()
    rc, out, err = cli("register", samples / "registered" / "zh_tea.txt", "--owner", "O", home=None)
    assert rc == 0, err
    rc, out, _ = cli("works", home=None)
    assert rc == 0 and "zh_tea.txt" in out


def test_home_flag_overrides_env_var(cli, tmp_path, monkeypatch):
    env_home, flag_home = tmp_path / "env", tmp_path / "flag"
    monkeypatch.setenv("COPYSCOPE_HOME", str(env_home))
    rc, _, err = cli("init", home=flag_home)
    assert rc == 0, err
    assert (flag_home / "registry.db").is_file()
    assert not env_home.exists()


def test_default_home_is_under_user_home(cli, clean_env):
    rc, _, err = cli("init", home=None)
    assert rc == 0, err
    assert (Path.home() / ".copyscope" / "registry.db").is_file()   # $HOME is a tmp dir here


# --- register -------------------------------------------------------------------

def test_register_each_prints_one_work_line_per_file(cli, home, samples):
    cli("init")
    rc, out, err = cli("register", samples / "registered", "--each", "--owner", "Ann")
    assert rc == 0, err
    lines = out.splitlines()
    assert len(lines) == len(REGISTERED)
    parsed = [WORK_LINE.match(ln) for ln in lines]
    assert all(parsed), lines
    ids = [m.group(1) for m in parsed]
    assert len(set(ids)) == len(ids)
    assert sorted(m.group(2) for m in parsed) == sorted(REGISTERED)
    for m in parsed:
        assert Path(m.group(3)).name == m.group(2)
        assert Path(m.group(3)).is_file()
    rc, out, _ = cli("works")
    assert [ln.split("\t")[0] for ln in out.splitlines()] == ids


def test_register_directory_without_each_is_one_work(cli, home, samples):
    cli("init")
    d = samples / "registered"
    rc, out, err = cli("register", d, "--owner", "Ann", "--title", "My collection")
    assert rc == 0, err
    lines = out.splitlines()
    assert len(lines) == 1
    m = WORK_LINE.match(lines[0])
    assert m and m.group(2) == "My collection" and Path(m.group(3)) == d
    rows = works_in(home)
    assert len(rows) == 1 and rows[0][4] == "directory"
    rc, out, err = cli("--json", "status")
    assert json.loads(out)["text"]["artifacts"] == len(REGISTERED)


def test_register_identical_content_reuses_artifact(cli, home, samples, tmp_path):
    cli("init")
    original = samples / "registered" / "en_soil.txt"
    rc, out, err = cli("--json", "register", original, "--owner", "Ann")
    assert rc == 0, err
    first = json.loads(out)
    assert first["errors"] == [] and first["works"][0]["new_artifacts"] == 1

    copy = tmp_path / "renamed copy.txt"
    shutil.copyfile(original, copy)
    rc, out, err = cli("--json", "register", copy, "--owner", "Bob")
    assert rc == 0, err
    again = json.loads(out)
    assert len(again["works"]) == 1
    assert again["works"][0]["files"] == 1
    assert again["works"][0]["new_artifacts"] == 0
    assert again["works"][0]["work_id"] != first["works"][0]["work_id"]
    rc, out, _ = cli("--json", "status")
    info = json.loads(out)
    assert info["works"] == 2 and info["text"]["artifacts"] == 1
    blobs = [p for p in (home / "blobs").rglob("*") if p.is_file()]
    assert [b.name for b in blobs] == [sha256_file(original)]


def test_register_reused_content_is_noted_in_plain_output(cli, home, samples):
    cli("init")
    cli("register", samples / "registered", "--each", "--owner", "Ann")
    rc, out, err = cli("register", samples / "registered", "--owner", "Ann")
    assert rc == 0
    assert "4 file(s) already known, reused" in err


def test_register_with_record_json_object(cli, home, samples, tmp_path):
    cli("init")
    record = {"schema": "copyscope.creation-record/v1", "created": "2024-05-01T09:30:00+08:00",
              "software": [{"name": "pen"}], "description": "初稿",
              "drafts": [{"sha256": "ab" * 32, "time": "2024-05-01T09:00:00+08:00", "note": "first"}]}
    rec = tmp_path / "record.json"
    rec.write_text(json.dumps(record, ensure_ascii=False), encoding="utf-8")
    rc, out, err = cli("register", samples / "registered" / "zh_bridge.txt", "--owner", "Ann",
                       "--record", rec)
    assert rc == 0, err
    (row,) = works_in(home)
    assert json.loads(row[6]) == record
    assert row[7] == hashlib.sha256(rfc8785.dumps(record)).hexdigest()


def test_register_with_invalid_record_names_the_json_path(cli, home, samples, tmp_path):
    cli("init")
    rec = tmp_path / "record.json"
    rec.write_text(json.dumps({"schema": "copyscope.creation-record/v1", "promt": "a cat"}), encoding="utf-8")
    rc, out, err = cli("register", samples / "registered" / "zh_bridge.txt", "--owner", "Ann", "--record", rec)
    assert rc == 2
    assert "$.promt" in err and works_in(home) == []


@pytest.mark.parametrize("content", [b'{"created": "2024-05-01",', b"[1, 2, 3]", b'"just a string"', b"\x80\xff{}"],
                         ids=["malformed-json", "json-array", "json-string", "not-utf8"])
def test_register_rejects_bad_record(cli, home, samples, tmp_path, content):
    cli("init")
    rec = tmp_path / "record.json"
    rec.write_bytes(content)
    rc, out, err = cli("register", samples / "registered" / "en_soil.txt", "--owner", "Ann",
                       "--record", rec)
    assert rc == 2
    (line,) = assert_clean_failure(err, want="error")
    assert "record" in line and str(rec) in line
    assert out == ""
    assert works_in(home) == []


def test_register_empty_owner_is_refused(cli, home, samples):
    cli("init")
    rc, out, err = cli("register", samples / "registered" / "en_soil.txt", "--owner", "  ")
    assert rc == 2
    assert_clean_failure(err, want="error")


# --- check ----------------------------------------------------------------------

def test_check_exit_code_1_with_matches_0_without(cli, registered_home, samples):
    rc, out, err = cli("check", samples / "suspects" / "en_partial.txt")
    assert rc == 1, err
    rc, out, err = cli("check", samples / "suspects" / "innocent_en.txt")
    assert rc == 0, err
    assert "No copies found" in out
    rc, out, err = cli("check", samples / "suspects" / "innocent_en.txt", samples / "suspects" / "innocent_zh.txt")
    assert rc == 0, err


def test_check_tsv_lines(cli, registered_home, samples):
    rc, out, err = cli("check", samples / "suspects", "--format", "tsv")
    assert rc == 1, err
    lines = out.splitlines()
    assert lines
    pairs = set()
    for line in lines:
        fields = line.split("\t")
        assert len(fields) == 3, repr(line)
        query, registered, score = fields
        assert Path(query).is_file() and Path(query).parent == samples / "suspects"
        assert Path(registered).is_file() and Path(registered).parent == samples / "registered"
        assert re.fullmatch(r"\d\.\d{4}", score), score
        assert 0.0 <= float(score) <= 1.0
        pairs.add((f"suspects/{Path(query).name}", f"registered/{Path(registered).name}"))
    expected = {(r["suspect"], r["source"]) for r in read_manifest(samples) if r["expected"] == "copy"}
    assert expected <= pairs
    assert not any("innocent" in q for q, _ in pairs)


def test_check_json_is_a_valid_evidence_bundle(cli, registered_home, samples):
    q = samples / "suspects" / "mixed_en_zh.html"
    rc, out, err = cli("check", q, "--format", "json")
    assert rc == 1, err
    bundle = json.loads(out)
    assert bundle["schema"] == "copyscope.evidence/v1"
    assert bundle["tool"] == {"name": "copyscope", "version": copyscope.__version__}
    assert bundle["operation"] == "check"
    assert isinstance(bundle["parameters"], dict) and "text" in bundle["parameters"]
    assert bundle["errors"] == []
    roles = {i["role"] for i in bundle["inputs"]}
    assert roles == {"query", "registered"}
    for rec in bundle["inputs"]:
        assert re.fullmatch(r"[0-9a-f]{64}", rec["sha256"])
        assert rec["sha256"] == sha256_file(rec["path"]), rec
        assert rec["size"] == Path(rec["path"]).stat().st_size
    assert {Path(m["registered"]["path"]).name for m in bundle["matches"]} == {"en_soil.txt", "zh_tea.txt"}
    for m in bundle["matches"]:
        assert m["query"]["sha256"] == sha256_file(q)
        assert m["registered"]["sha256"] == sha256_file(m["registered"]["path"])
        assert re.fullmatch(r"W\d+", m["registered"]["work_id"])
        assert m["registered"]["owner"] == "Ann Writer" and m["registered"]["license"] == "CC-BY-4.0"
        assert m["verdict"] == "copy" and 0.5 <= m["score"] <= 1.0
        assert m["passages"], m


def test_check_table_names_work_owner_licence_and_passage(cli, registered_home, samples, monkeypatch):
    monkeypatch.chdir(samples)                    # short relative query path: a narrow table
    rc, out, err = cli("check", "suspects/en_partial.txt")
    assert rc == 1, err
    rc2, js, _ = cli("check", "suspects/en_partial.txt", "--format", "json")
    (match,) = json.loads(js)["matches"]
    for text in (match["registered"]["work_id"], "Ann Writer", "CC-BY-4.0", "en_lighthouse.md",
                 "licence", "owner", "suspects/en_partial.txt"):
        assert text in out, text
    passage = match["passages"][0]
    snippet = " ".join(passage["registered"]["text"].split())[:80]
    assert snippet in out
    line_start = passage["registered"]["line_start"]
    assert re.search(rf"registered lines? {line_start}\b", out), out


def test_check_report_is_one_offline_html_file(cli, registered_home, samples, tmp_path):
    outdir = tmp_path / "report-dir"
    outdir.mkdir()
    report = outdir / "out.html"
    q = samples / "suspects" / "blog_repost.html"
    rc, out, err = cli("check", q, "--report", report)
    assert rc == 1, err
    assert [p.name for p in outdir.iterdir()] == ["out.html"]      # one file, no assets, no .tmp
    html = report.read_text(encoding="utf-8")
    assert html.lstrip().lower().startswith("<!doctype html")
    assert sha256_file(q) in html
    assert sha256_file(samples / "registered" / "en_lighthouse.md") in html

    class Refs(HTMLParser):
        refs: list[tuple[str, str, str]] = []

        def handle_starttag(self, tag, attrs):
            for name, value in attrs:
                if name in ("src", "href", "action", "srcset", "data", "poster") and value:
                    self.refs.append((tag, name, value))

    parser = Refs()
    parser.refs = []
    parser.feed(html)
    external = [r for r in parser.refs if re.match(r"\s*(https?:)?//", r[2], re.I)]
    assert not external, external
    assert not re.search(r"url\(\s*['\"]?\s*(https?:)?//", html, re.I)
    assert not re.search(r"<(script|link|img|iframe)\b[^>]*\b(src|href)\s*=\s*['\"]?\s*(https?:)?//", html, re.I)


def test_bundle_then_report_round_trip(cli, registered_home, samples, tmp_path):
    bundle = tmp_path / "evidence.json"
    q = samples / "suspects" / "zh_light_edit.txt"
    rc, out, err = cli("check", q, "--bundle", bundle)
    assert rc == 1, err
    data = json.loads(bundle.read_bytes())
    assert data["schema"] == "copyscope.evidence/v1" and data["matches"]
    html_path = tmp_path / "x.html"
    rc, out, err = cli("report", bundle, "-o", html_path)
    assert rc == 0, err
    assert out.strip() == str(html_path)
    html = html_path.read_text(encoding="utf-8")
    for rec in data["inputs"]:
        assert rec["sha256"] in html
    assert data["matches"][0]["registered"]["work_id"] in html
    # --format json output is a bundle too
    rc, js, _ = cli("check", q, "--format", "json")
    (tmp_path / "stdout.json").write_text(js, encoding="utf-8")
    rc, out, err = cli("report", tmp_path / "stdout.json", "--out", tmp_path / "y.html")
    assert rc == 0, err
    assert (tmp_path / "y.html").is_file()


def test_bundle_is_deterministic(cli, registered_home, samples, tmp_path):
    b1, b2 = tmp_path / "b1.json", tmp_path / "b2.json"
    rc1, _, err1 = cli("check", samples / "suspects", "--bundle", b1)
    rc2, _, err2 = cli("check", samples / "suspects", "--bundle", b2)
    assert rc1 == rc2 == 1, (err1, err2)
    raw = b1.read_bytes()
    assert raw == b2.read_bytes()
    assert raw == rfc8785.dumps(json.loads(raw))          # canonical JSON (RFC 8785)
    rc, js, _ = cli("check", samples / "suspects", "--format", "json")
    assert json.loads(js) == json.loads(raw)


def test_check_threshold_flag(cli, registered_home, samples):
    q = samples / "suspects" / "zh_fragment_gbk.txt"
    rc, out, err = cli("check", q, "--format", "tsv")
    assert rc == 1, err
    (line,) = out.splitlines()
    score = float(line.split("\t")[2])
    assert score < 1.0
    rc, out, err = cli("check", q, "--format", "tsv", "--threshold", f"{min(1.0, score + 0.002):.4f}")
    assert (rc, out) == (0, ""), err
    rc, out, err = cli("check", q, "--format", "tsv", "--threshold", f"{score - 0.002:.4f}")
    assert rc == 1 and out.splitlines() == [line], err


# --- compare --------------------------------------------------------------------

def test_compare_two_files_shows_passages_with_line_numbers(cli, samples, clean_env):
    a, b = samples / "suspects" / "en_partial.txt", samples / "registered" / "en_lighthouse.md"
    rc, out, err = cli("compare", a, b, home=None)
    assert rc == 1, err
    assert re.search(r"^score \d\.\d{3} \(copy\)", out, re.M), out
    where = re.findall(r"query lines? (\d+)(?:-(\d+))?, chars \d+-\d+\s+⇄\s+registered lines? (\d+)(?:-(\d+))?, chars",
                       out)
    assert where, out
    rc, js, _ = cli("compare", a, b, "--format", "json", home=None)
    bundle = json.loads(js)
    assert bundle["operation"] == "compare"
    assert {i["role"] for i in bundle["inputs"]} == {"a", "b"}
    p = bundle["matches"][0]["passages"][0]
    q_start, q_end, r_start, r_end = where[0]
    assert int(q_start) == p["query"]["line_start"] and int(q_end or q_start) == p["query"]["line_end"]
    assert int(r_start) == p["registered"]["line_start"] and int(r_end or r_start) == p["registered"]["line_end"]
    lines_a = a.read_text(encoding="utf-8").splitlines()
    first_line = lines_a[p["query"]["line_start"] - 1]
    assert " ".join(p["query"]["text"].split())[:40] in " ".join(first_line.split())


def test_compare_unrelated_files_exit_0(cli, samples, clean_env):
    rc, out, err = cli("compare", samples / "suspects" / "innocent_zh.txt",
                       samples / "registered" / "zh_tea.txt", home=None)
    assert rc == 0, err
    assert out.strip() == "no aligned passages" or "(below-threshold)" in out, out


def test_compare_pairs_tsv_in_input_order(cli, samples, tmp_path, clean_env):
    s, r = samples / "suspects", samples / "registered"
    pairs = [(s / "innocent_en.txt", r / "en_lighthouse.md"),
             (s / "en_partial.txt", r / "en_lighthouse.md"),
             (s / "zh_light_edit.txt", r / "zh_bridge.txt"),
             (s / "innocent_zh.txt", r / "zh_tea.txt"),
             (r / "en_soil.txt", s / "en_light_edit.txt")]
    text = "# pairs to score\n\n" + "\n".join(f"{a}\t{b}" for a, b in pairs[:3]) + "\n\n# more\n" + \
        "\n".join(f"{a}\t{b}" for a, b in pairs[3:]) + "\n"
    pf = tmp_path / "pairs.tsv"
    pf.write_text(text, encoding="utf-8")
    rc, out, err = cli("compare", "--pairs", pf, "--format", "tsv", home=None)
    assert rc == 1, err
    lines = out.splitlines()
    assert len(lines) == len(pairs)
    scores = []
    for line, (a, b) in zip(lines, pairs):
        fa, fb, score = line.split("\t")
        assert (fa, fb) == (str(a), str(b))
        assert 0.0 <= float(score) <= 1.0
        scores.append(float(score))
    assert scores[1] >= 0.5 and scores[2] >= 0.5 and scores[4] >= 0.5
    assert scores[0] < 0.5 and scores[3] < 0.5


def test_compare_all_pairs_counts_every_pair_once(cli, samples, tmp_path, clean_env):
    d = tmp_path / "set"
    d.mkdir()
    names = ["en_partial.txt", "en_light_edit.txt", "innocent_en.txt", "innocent_zh.txt", "zh_light_edit.txt"]
    for n in names:
        shutil.copyfile(samples / "suspects" / n, d / n)
    shutil.copyfile(samples / "registered" / "en_soil.txt", d / "en_soil.txt")
    n = len(names) + 1
    rc, out, err = cli("compare", "--all-pairs", d, "--format", "tsv", home=None)
    assert rc in (0, 1), err
    lines = out.splitlines()
    assert len(lines) == n * (n - 1) // 2
    seen = set()
    for line in lines:
        a, b, score = line.split("\t")
        assert a < b and (a, b) not in seen
        seen.add((a, b))
        assert 0.0 <= float(score) <= 1.0
    best = max(lines, key=lambda ln: float(ln.split("\t")[2]))
    assert {Path(x).name for x in best.split("\t")[:2]} == {"en_soil.txt", "en_light_edit.txt"}


def test_compare_all_pairs_unit_dir(cli, samples, tmp_path, clean_env):
    root = tmp_path / "submissions"
    for unit, files in {"alice": [("registered", "en_soil.txt"), ("suspects", "innocent_zh.txt")],
                        "bob": [("suspects", "en_light_edit.txt")],
                        "carol": [("suspects", "innocent_en.txt"), ("registered", "zh_bridge.txt")],
                        "dave": [("suspects", "en_partial.txt")]}.items():
        (root / unit / "src").mkdir(parents=True)
        for i, (sub, name) in enumerate(files):
            shutil.copyfile(samples / sub / name, root / unit / ("src" if i else "") / name)
    rc, out, err = cli("compare", "--all-pairs", root, "--unit", "dir", "--format", "tsv", home=None)
    assert rc == 1, err
    lines = [ln.split("\t") for ln in out.splitlines()]
    assert len(lines) == 4 * 3 // 2
    units = {Path(a).name for a, _, _ in lines} | {Path(b).name for _, b, _ in lines}
    assert units == {"alice", "bob", "carol", "dave"}
    for a, b, _ in lines:
        assert Path(a).parent == root and Path(b).parent == root
    scores = {frozenset((Path(a).name, Path(b).name)): float(s) for a, b, s in lines}
    assert scores[frozenset(("alice", "bob"))] >= 0.5
    assert max(scores, key=scores.get) == frozenset(("alice", "bob"))
    assert scores[frozenset(("bob", "carol"))] < 0.5


def test_compare_all_pairs_min_score_drops_only_lower_pairs(cli, samples, tmp_path, clean_env):
    d = tmp_path / "mixed"
    d.mkdir()
    for sub in ("registered", "suspects"):
        for f in sorted((samples / sub).glob("*.txt"))[:4]:
            shutil.copyfile(f, d / f"{sub}_{f.name}")
    rc, out, err = cli("compare", "--all-pairs", d, "--format", "tsv", home=None)
    rc_min, out_min, err_min = cli("compare", "--all-pairs", d, "--format", "tsv", "--min-score", "0.05", home=None)
    assert rc_min == rc, err_min                      # the exit code still reads every pair
    kept = [ln for ln in out.splitlines() if float(ln.split("\t")[2]) >= 0.05]
    assert out_min.splitlines() == kept and 0 < len(kept) < len(out.splitlines())
    rc, _, err = cli("compare", "--all-pairs", d, "--min-score", "1.5", home=None)
    assert rc == 2 and "--min-score" in err


def test_compare_pairs_and_all_pairs_together_is_usage_error(cli, samples, tmp_path, clean_env):
    pf = tmp_path / "p.tsv"
    pf.write_text(f"{samples / 'registered' / 'en_soil.txt'}\t{samples / 'registered' / 'zh_tea.txt'}\n")
    rc, out, err = cli("compare", "--pairs", pf, "--all-pairs", samples / "registered", home=None)
    assert rc == 2
    assert_clean_failure(err, want="error")


def test_compare_needs_two_files(cli, samples, clean_env):
    rc, out, err = cli("compare", samples / "registered" / "en_soil.txt", home=None)
    assert rc == 2
    (line,) = assert_clean_failure(err, want="error")
    assert "two files" in line


# --- works / status / gc / version ---------------------------------------------

def test_works_lists_registered_works(cli, registered_home, samples):
    rc, out, err = cli("works")
    assert rc == 0, err
    rows = [ln.split("\t") for ln in out.splitlines()]
    assert len(rows) == 4
    for wid, title, owner, lic, path in rows:
        assert re.fullmatch(r"W\d+", wid) and owner == "Ann Writer" and lic == "CC-BY-4.0"
        assert Path(path).name == title
    rc, out, _ = cli("works", "--limit", "2")
    assert len(out.splitlines()) == 2
    rc, out, _ = cli("--json", "works")
    items = json.loads(out)
    assert [w["work_id"] for w in items] == [r[0] for r in rows]


def test_status_reports_counts(cli, registered_home):
    rc, out, err = cli("status")
    assert rc == 0, err
    assert "works: 4" in out.splitlines()
    rc, out, _ = cli("--json", "status")
    info = json.loads(out)
    assert info["works"] == 4 and info["text"]["artifacts"] == 4 and info["text"]["segments"] >= 1
    assert Path(info["home"]) == registered_home


def test_gc_on_clean_workspace_removes_nothing(cli, registered_home, samples):
    blobs_before = sorted(p for p in (registered_home / "blobs").rglob("*") if p.is_file())
    rc, out, err = cli("gc")
    assert rc == 0, err
    assert out.strip() == "removed 0 segment(s), 0 blob(s)"
    assert sorted(p for p in (registered_home / "blobs").rglob("*") if p.is_file()) == blobs_before
    rc, _, _ = cli("check", samples / "suspects" / "en_partial.txt")
    assert rc == 1


def test_gc_removes_orphans(cli, registered_home, samples):
    seg_dir = registered_home / "index" / "text"
    orphan_seg = seg_dir / "seg-0123456789abcdef0123456789abcdef.csx"
    orphan_seg.write_bytes(b"left by a crash")
    fake = "ab" * 32
    orphan_blob = BlobStore(registered_home / "blobs").path(fake)
    orphan_blob.parent.mkdir(parents=True, exist_ok=True)
    orphan_blob.write_bytes(b"unreferenced")
    rc, out, err = cli("--json", "gc")
    assert rc == 0, err
    assert json.loads(out) == {"segments": 1, "blobs": 1}
    assert not orphan_seg.exists() and not orphan_blob.exists()
    rc, _, _ = cli("check", samples / "suspects" / "en_partial.txt")
    assert rc == 1


def test_version(cli, clean_env):
    rc, out, err = cli("version", home=None)
    assert rc == 0, err
    assert out.strip() == copyscope.__version__


def test_help_exits_0(cli, clean_env):
    rc, out, err = cli("--help", home=None)
    assert rc == 0, err
    for command in ("init", "register", "check", "compare", "report", "works", "status", "gc", "demo"):
        assert command in out


# --- errors and global flags ------------------------------------------------------

def test_check_without_workspace_is_exit_3_with_hint(cli, home, samples):
    rc, out, err = cli("check", samples / "suspects" / "en_partial.txt")
    assert rc == 3
    lines = stderr_lines(err)
    assert_clean_failure(err, want="error")
    assert lines[0] == f"error: no workspace at {home}"
    assert len(lines) == 2 and lines[1].startswith("hint: ") and "copyscope init" in lines[1]
    assert not home.exists()          # check never creates a workspace


def test_check_missing_input_is_exit_4(cli, registered_home, tmp_path):
    rc, out, err = cli("check", tmp_path / "does-not-exist.txt")
    assert rc == 4
    (line,) = assert_clean_failure(err, want="error")
    assert "does-not-exist.txt" in line



@pytest.mark.parametrize("argv", [
    pytest.param(["frobnicate"], id="unknown-command"),
    pytest.param([], id="no-command"),
    pytest.param(["check"], id="check-without-paths"),
    pytest.param(["register", "{file}"], id="register-without-owner"),
    pytest.param(["check", "--format", "xml", "{file}"], id="bad-format-choice"),
    pytest.param(["check", "--no-such-flag", "{file}"], id="unknown-option"),
    pytest.param(["--max-bytes", "0", "check", "{file}"], id="max-bytes-zero"),
    pytest.param(["check", "--threshold", "1.5", "{file}"], id="threshold-out-of-range"),
])
def test_usage_errors_exit_2(cli, registered_home, samples, argv):
    args = [a.replace("{file}", str(samples / "suspects" / "en_partial.txt")) for a in argv]
    rc, out, err = cli(*args)
    assert "Traceback" not in err, err
    assert rc == 2, err
    assert err.strip(), "a usage error must say what is wrong"


def test_quiet_check_prints_nothing_on_stderr(cli, registered_home, samples, tmp_path):
    q = samples / "suspects" / "en_partial.txt"
    args = ("check", q, "--bundle", tmp_path / "b.json", "--report", tmp_path / "r.html")
    rc, out, err = cli(*args)
    assert rc == 1 and err.strip(), "without --quiet, notes about written files go to stderr"
    rc, out, err = cli("--quiet", *args)
    assert rc == 1
    assert err == ""
    assert out.strip()
    rc, out, err = cli("-q", "check", samples / "suspects" / "innocent_en.txt")
    assert rc == 0 and err == ""


def test_json_global_flag(cli, home, samples):
    rc, out, err = cli("--json", "init")
    assert rc == 0, err
    assert json.loads(out)["works"] == 0
    rc, out, err = cli("--json", "register", samples / "registered", "--each", "--owner", "Ann")
    assert rc == 0, err
    reg = json.loads(out)
    assert reg["errors"] == [] and len(reg["works"]) == 4
    assert all(w["files"] == 1 and w["new_artifacts"] == 1 for w in reg["works"])
    rc, out, err = cli("--json", "check", samples / "suspects" / "en_partial.txt")   # no --format
    assert rc == 1, err
    bundle = json.loads(out)
    assert bundle["schema"] == "copyscope.evidence/v1" and len(bundle["matches"]) == 1
    rc, out, err = cli("--json", "check", samples / "suspects" / "en_partial.txt", "--format", "tsv")
    assert json.loads(out)["schema"] == "copyscope.evidence/v1"      # --json wins over --format
    rc, out, err = cli("--json", "compare", samples / "suspects" / "en_partial.txt",
                       samples / "registered" / "en_lighthouse.md")
    assert rc == 1 and json.loads(out)["operation"] == "compare"
    rc, out, err = cli("--json", "gc")
    assert rc == 0 and json.loads(out) == {"segments": 0, "blobs": 0}


def test_subprocess_binary_round_trip(cli, home, samples, tmp_path):
    """The installed script behaves as the in-process entry point does."""
    rc, out, err = cli("init", subprocess=True)
    assert rc == 0, err
    rc, out, err = cli("register", samples / "registered", "--each", "--owner", "Ann", subprocess=True)
    assert rc == 0, err
    assert len(out.splitlines()) == 4
    rc, out, err = cli("check", samples / "suspects" / "en_partial.txt", "-f", "tsv", subprocess=True)
    assert rc == 1, err
    (line,) = out.splitlines()
    assert line.split("\t")[:2] == [str(samples / "suspects" / "en_partial.txt"),
                                    str(samples / "registered" / "en_lighthouse.md")]
    rc, out, err = cli("check", samples / "suspects" / "innocent_zh.txt", subprocess=True)
    assert rc == 0, err


def test_quiet_tsv_compare_loads_neither_rich_nor_pydantic(tmp_path):
    """Start-up is half of a harness's `compare --all-pairs` call (docs/code-engine.md):
    a quiet TSV run must not pay for Rich (drawing only) or pydantic (typer 0.29+)."""
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415
    for i in range(3):
        (tmp_path / f"f{i}.py").write_text(f"def f{i}(x):\n    return x * {i} + 1\n")
    probe = ("import sys\nfrom copyscope.cli import main\n"
             f"sys.argv = ['copyscope', '--quiet', 'compare', '--all-pairs', {str(tmp_path)!r}, '--format', 'tsv']\n"
             "try:\n    main()\nexcept SystemExit:\n    pass\n"
             "print('LOADED', sorted(m for m in ('rich', 'pydantic') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.stdout.count("\t") == 6          # three pairs were printed
    assert "LOADED []" in out.stdout, out.stdout + out.stderr
