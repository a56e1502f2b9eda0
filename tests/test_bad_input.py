"""Hostile and broken input: every refusal is a documented exit code and one line on
stderr (``error:`` plus an optional ``hint:``, or ``warning:`` lines), never a traceback
and never a hang.

Most tests run in a scratch directory (``monkeypatch.chdir``) with short relative
names. Long ``warning:`` lines are hard-wrapped by Rich at the console width, a separate
bug with its own test (``test_long_path_warning_is_wrapped``); conftest pins a wide
console so that bug does not mask the others.
"""
from __future__ import annotations

import builtins
import hashlib
import json
import os
import random
import shutil
import stat
from html.parser import HTMLParser
from pathlib import Path

import pytest

from copyscope.storage.blobs import BlobStore

import copyscope.ingest
from conftest import assert_clean_failure, stderr_lines


@pytest.fixture
def ws(cli, registered_home, tmp_path, monkeypatch) -> Path:
    """A workspace with the sample works registered; cwd is a scratch directory."""
    work = tmp_path / "in"
    work.mkdir()
    monkeypatch.chdir(work)
    return registered_home


def _rng(name: str) -> random.Random:
    return random.Random(hashlib.sha256(name.encode()).digest())


def _check_refused(cli, name: str, *extra: str) -> str:
    rc, out, err = cli(*extra, "check", name)
    assert rc == 2, (out, err)
    (line,) = assert_clean_failure(err, want="warning")
    assert name in line
    assert "No copies found" in out
    rc, out, err = cli(*extra, "--quiet", "register", name, "--owner", "o")
    assert rc == 2, (out, err)
    (line,) = assert_clean_failure(err, want="warning")
    assert out == ""
    return line


# --- unusable bytes -------------------------------------------------------------

def test_binary_png_file_is_refused(cli, ws):
    Path("image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(_rng("png").randbytes(4096)))
    line = _check_refused(cli, "image.png")
    assert "not a readable image" in line or "cannot decode" in line
    rc, out, _ = cli("works")
    assert len(out.splitlines()) == 4            # nothing was registered


def test_undecodable_bytes_are_refused(cli, ws):
    rng = _rng("undecodable")
    data = bytes(rng.choice([0x81, 0x8D, 0x8F, 0x90, 0x9D, 0x00, 0x01, 0x7F, 0xFF, 0xFE]) for _ in range(3000))
    Path("garbage.txt").write_bytes(data)
    _check_refused(cli, "garbage.txt")


def test_empty_file_is_refused(cli, ws):
    Path("empty.txt").write_bytes(b"")
    _check_refused(cli, "empty.txt")


def test_whitespace_only_file_is_refused(cli, ws):
    Path("blank.txt").write_text(" \n\t\r\n   \u3000\n\n", encoding="utf-8")
    _check_refused(cli, "blank.txt")


def test_file_over_max_bytes_is_refused(cli, ws, samples):
    data = (samples / "registered" / "en_soil.txt").read_bytes()
    Path("big.txt").write_bytes((data * 10)[:5000])
    line = _check_refused(cli, "big.txt", "--max-bytes", "1000")
    assert "5000 bytes" in line and "1000-byte limit" in line
    rc, out, err = cli("check", "big.txt", "-f", "tsv")       # fine under the default limit
    assert rc == 1 and "Traceback" not in err


def test_sparse_2gib_file_is_refused_without_reading(cli, ws, monkeypatch):
    name = "2g.txt"
    with open(name, "wb") as fh:
        fh.truncate(2**31 + 1)
    if os.stat(name).st_blocks * 512 > 1 << 20:
        pytest.skip("filesystem has no sparse files")
    opened: list[str] = []
    real_open = builtins.open

    def spy(file, *args, **kwargs):
        opened.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(copyscope.ingest, "open", spy, raising=False)
    for argv in (("check", name), ("--quiet", "register", name, "--owner", "o")):
        rc, out, err = cli(*argv)
        assert rc == 2, err
        (line,) = assert_clean_failure(err, want="warning")
        assert f"{name}: {2**31 + 1} bytes is over the {64 * 1024 * 1024}-byte limit" in line
    rc, out, err = cli("compare", name, name, home=None)
    assert rc == 2
    (line,) = assert_clean_failure(err, want="error")
    assert "byte limit" in line
    assert not any(Path(p).name == name for p in opened), "the oversized file was opened for reading"


def test_sparse_2gib_file_subprocess_does_not_read(cli, ws):
    """Same through the real binary; the timeout only guards against a hang."""
    with open("huge.txt", "wb") as fh:
        fh.truncate(2**31 + 1)
    rc, out, err = cli("--quiet", "check", "huge.txt", subprocess=True, timeout=60)
    assert rc == 2
    assert "Traceback" not in err
    assert "huge.txt: 2147483649 bytes is over the 67108864-byte limit" in " ".join(err.split())


# --- directory trees ------------------------------------------------------------

def _tree(root: Path, samples: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    shutil.copyfile(samples / "registered" / "en_soil.txt", root / "a.txt")
    shutil.copyfile(samples / "registered" / "zh_tea.txt", root / "sub" / "b.txt")
    return root


def test_symlink_loop_registers_and_checks_without_hanging(cli, home, samples, tmp_path):
    d = _tree(tmp_path / "tree", samples)
    os.symlink(d, d / "loop")
    os.symlink(d, d / "sub" / "back")
    rc, _, err = cli("init")
    assert rc == 0, err
    rc, out, err = cli("--json", "register", d, "--owner", "o", subprocess=True, timeout=60)
    assert rc == 0, err
    (work,) = json.loads(out)["works"]
    assert work["files"] == 2
    rc, out, err = cli("--json", "register", d, "--each", "--owner", "o", subprocess=True, timeout=60)
    assert rc == 0, err
    assert sorted(Path(w["path"]).name for w in json.loads(out)["works"]) == ["a.txt", "b.txt"]
    rc, out, err = cli("check", d, "-f", "tsv", subprocess=True, timeout=60)
    assert rc == 1, err
    queries = {line.split("\t")[0] for line in out.splitlines()}
    assert queries == {str(d / "a.txt"), str(d / "sub" / "b.txt")}
    assert "Traceback" not in err


def test_dangling_symlink(cli, ws, samples, tmp_path):
    d = _tree(tmp_path / "tree", samples)
    os.symlink(tmp_path / "nowhere.txt", d / "dangling.txt")
    rc, out, err = cli("--quiet", "register", d, "--each", "--owner", "o", subprocess=True, timeout=60)
    assert rc == 2, err
    assert len(out.splitlines()) == 2
    (line,) = assert_clean_failure(err, want="warning")
    assert "dangling.txt: skipped (dangling or looping link)" in line
    os.symlink(tmp_path / "nowhere.txt", "link.txt")
    rc, out, err = cli("check", "link.txt")
    assert rc == 4
    (line,) = assert_clean_failure(err, want="error")
    assert "link.txt" in line and "no such file" in line


def test_fifo_in_registered_directory_does_not_hang(cli, home, samples, tmp_path, monkeypatch):
    d = _tree(tmp_path / "tree", samples)
    os.mkfifo(d / "pipe")
    os.mkfifo(d / "sub" / "pipe2")
    cli("init")
    rc, out, err = cli("--json", "register", d, "--owner", "o", subprocess=True, timeout=60)
    assert rc == 2, err                                   # skipped inputs → warning + exit 2
    assert json.loads(out)["works"][0]["files"] == 2      # ... but the work is registered
    assert sum("skipped (not a regular file)" in ln for ln in stderr_lines(err)) == 2
    rc, out, err = cli("-q", "check", d, "-f", "tsv", subprocess=True, timeout=60)
    assert rc == 2, err
    assert len({line.split("\t")[0] for line in out.splitlines()}) == 2
    monkeypatch.chdir(d)
    rc, out, err = cli("check", "pipe", subprocess=True, timeout=60)      # named directly
    assert rc == 2
    (line,) = assert_clean_failure(err, want="warning")
    assert "pipe: not a regular file" in line


def test_fifo_in_registered_directory_is_reported_with_warning(cli, home, samples, tmp_path):
    d = _tree(tmp_path / "tree", samples)
    os.mkfifo(d / "pipe")
    cli("init")
    rc, out, err = cli("--quiet", "register", d, "--owner", "o", subprocess=True, timeout=60)
    assert any(ln.startswith("warning: ") and "pipe" in ln for ln in stderr_lines(err)), err


def test_device_file_is_refused(cli, ws):
    if not Path("/dev/zero").exists() or not stat.S_ISCHR(os.stat("/dev/zero").st_mode):
        pytest.skip("no /dev/zero")
    rc, out, err = cli("check", "/dev/zero", subprocess=True, timeout=60)
    assert rc == 2
    (line,) = assert_clean_failure(err, want="warning")
    assert "/dev/zero: not a regular file" in line


def test_directory_without_usable_files_is_not_registered(cli, ws):
    d = Path("junk")
    d.mkdir()
    (d / "empty.txt").write_bytes(b"")
    (d / "bin.dat").write_bytes(b"\x00\x01\x02\x03" * 100)
    rc, out, err = cli("--quiet", "register", "junk", "--owner", "o")
    assert rc == 2
    lines = assert_clean_failure(err, want="warning")
    assert any("no usable files" in ln for ln in lines)
    assert out == ""
    rc, out, _ = cli("works")
    assert len(out.splitlines()) == 4


def test_empty_directory_is_refused(cli, ws):
    Path("void").mkdir()
    rc, out, err = cli("register", "void", "--owner", "o")
    assert rc == 2
    (line,) = assert_clean_failure(err, want="error")
    assert "void" in line


# --- pairs files and bundles ----------------------------------------------------

@pytest.mark.parametrize("bad_line", ["only-one-path.txt", "a.txt\t", "\tb.txt", "a.txt b.txt"],
                         ids=["no-tab", "empty-second", "empty-first", "space-not-tab"])
def test_malformed_pairs_file_line(cli, ws, samples, bad_line):
    good = f"{samples / 'registered' / 'en_soil.txt'}\t{samples / 'suspects' / 'en_light_edit.txt'}"
    Path("pairs.tsv").write_text(f"# header\n{good}\n\n{bad_line}\n{good}\n", encoding="utf-8")
    rc, out, err = cli("compare", "--pairs", "pairs.tsv", "-f", "tsv", home=None)
    assert rc == 2
    (line,) = assert_clean_failure(err, want="error")
    assert line.startswith("error: pairs.tsv:4:")
    assert out == ""


def test_pairs_file_naming_missing_and_binary_files(cli, ws, samples):
    Path("bin.dat").write_bytes(b"\x89PNG\r\n\x1a\n" + _rng("pairs").randbytes(1000))
    good = samples / "registered" / "en_soil.txt"
    Path("pairs.tsv").write_text(f"{good}\tmissing.txt\nbin.dat\t{good}\n{good}\t{good}\n", encoding="utf-8")
    rc, out, err = cli("compare", "--pairs", "pairs.tsv", "-f", "tsv", home=None)
    assert rc == 2
    lines = assert_clean_failure(err, want="warning")
    assert len(lines) == 2
    rows = [ln.split("\t") for ln in out.splitlines()]
    assert [float(r[2]) for r in rows][:2] == [0.0, 0.0] and float(rows[2][2]) >= 0.5


def test_missing_pairs_file(cli, ws):
    rc, out, err = cli("compare", "--pairs", "nope.tsv", home=None)
    assert rc == 2
    assert_clean_failure(err, want="error")


@pytest.mark.parametrize("content", [b'{"hello": "world"}', b'{"schema": "copyscope.evidence/v2", "inputs": []}',
                                     b"[1, 2, 3]", b"{not json", b"", b"\xff\xfe\x00junk"],
                         ids=["other-json", "wrong-schema", "json-array", "malformed-json", "empty", "binary"])
def test_report_refuses_non_bundle(cli, ws, content):
    Path("thing.json").write_bytes(content)
    rc, out, err = cli("report", "thing.json", "-o", "out.html", home=None)
    assert rc == 2
    (line,) = assert_clean_failure(err, want="error")
    assert line.startswith("error: thing.json:")
    assert not Path("out.html").exists()


@pytest.mark.parametrize("cut", [0.5, 0.99])
def test_report_refuses_truncated_bundle(cli, ws, samples, cut):
    rc, _, err = cli("check", samples / "suspects" / "en_partial.txt", "--bundle", "full.json")
    assert rc == 1, err
    raw = Path("full.json").read_bytes()
    Path("cut.json").write_bytes(raw[: int(len(raw) * cut)])
    rc, out, err = cli("report", "cut.json", "-o", "out.html")
    assert rc == 2
    (line,) = assert_clean_failure(err, want="error")
    assert "cut.json" in line and "JSON" in line
    assert not Path("out.html").exists()


def test_report_refuses_bundle_with_malformed_fields(cli, ws, samples):
    cli("check", samples / "suspects" / "en_partial.txt", "--bundle", "full.json")
    bundle = json.loads(Path("full.json").read_bytes())
    for key, value in (("inputs", {}), ("matches", "x"), ("parameters", []), ("matches", [1])):
        broken = dict(bundle, **{key: value})
        Path("broken.json").write_text(json.dumps(broken), encoding="utf-8")
        rc, out, err = cli("report", "broken.json", "-o", "out.html")
        assert rc == 2, (key, err)
        assert_clean_failure(err, want="error")


def test_report_missing_bundle_is_exit_4(cli, ws):
    rc, out, err = cli("report", "absent.json", "-o", "out.html")
    assert rc == 4
    assert_clean_failure(err, want="error")


HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def test_report_escapes_hostile_bundle_text(cli, ws, samples):
    rc, _, err = cli("check", samples / "suspects" / "en_partial.txt", "--bundle", "full.json")
    assert rc == 1, err
    bundle = json.loads(Path("full.json").read_bytes())
    m = bundle["matches"][0]
    m["query"]["path"] = f"evil{HOSTILE}.txt"
    m["registered"].update(title=HOSTILE, owner='"><svg onload=alert(2)>', license=HOSTILE)
    p = m["passages"][0]
    for side in ("query", "registered"):
        p[side]["text"] = HOSTILE + p[side]["text"]
        p[side]["before"] = "</pre></div>" + HOSTILE
        p[side]["after"] = HOSTILE + "<!--"
    bundle["inputs"][0]["path"] = f"javascript:alert(3)//{HOSTILE}"
    bundle["parameters"]["text"]["note"] = HOSTILE
    Path("hostile.json").write_text(json.dumps(bundle), encoding="utf-8")
    rc, out, err = cli("report", "hostile.json", "-o", "hostile.html")
    assert rc == 0, err
    html = Path("hostile.html").read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(" in html                  # shown, as text
    for raw in ("<script>alert", "<img src=x", "<svg onload", "</pre></div><script"):
        assert raw not in html, raw

    class Tags(HTMLParser):
        def __init__(self):
            super().__init__()
            self.tags, self.attrs = [], []

        def handle_starttag(self, tag, attrs):
            self.tags.append(tag)
            self.attrs += attrs

    parser = Tags()
    parser.feed(html)
    assert not {"script", "img", "svg", "iframe", "object", "embed"} & set(parser.tags)
    assert not [a for a, _ in parser.attrs if a.startswith("on")]
    assert not [v for a, v in parser.attrs if a in ("href", "src") and v and "javascript:" in v.lower()]


# --- awkward file names and encodings ---------------------------------------------

@pytest.mark.parametrize("name", ["-dash.txt", "--help", "my copy (final).txt", "ünïcödé 文件 📄.txt",
                                  "-rf ü 文件 with spaces.txt", "[bold red]not markup.txt"])
def test_awkward_file_names(cli, ws, samples, name):
    shutil.copyfile(samples / "registered" / "en_soil.txt", name)
    rc, out, err = cli("register", "--owner", "o", "--", name)
    assert rc == 0, err
    (line,) = out.splitlines()
    assert line.split("\t")[1:] == [name, name]
    rc, out, err = cli("check", "-f", "tsv", "--", name)
    assert rc == 1, err
    assert f"{name}\t{name}\t" in out
    rc, out, err = cli("check", "--", name)                         # table output
    assert rc == 1, err
    assert name in out.replace("\n", "")
    rc, out, err = cli("compare", "--", name, str(samples / "suspects" / "en_light_edit.txt"), home=None)
    assert rc == 1, err


def test_awkward_name_in_refusal_message(cli, ws):
    name = "-x [red]ü[link=y].png"
    Path(name).write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)
    rc, out, err = cli("check", "--", name)
    assert rc == 2
    (line,) = assert_clean_failure(err, want="warning")
    assert name in line


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-be", "utf-8-sig"])
def test_utf16_with_bom_is_checked(cli, ws, samples, codec):
    text = (samples / "suspects" / "en_partial.txt").read_text(encoding="utf-8")
    data = text.encode(codec) if codec != "utf-16-be" else b"\xfe\xff" + text.encode("utf-16-be")
    Path("wide.txt").write_bytes(data)
    rc, out, err = cli("check", "wide.txt", "-f", "json")
    assert rc == 1, err
    bundle = json.loads(out)
    (match,) = bundle["matches"]
    assert Path(match["registered"]["path"]).name == "en_lighthouse.md"
    (q,) = [i for i in bundle["inputs"] if i["role"] == "query"]
    assert q["sha256"] == hashlib.sha256(data).hexdigest() and q["size"] == len(data)
    assert q["encoding"] == {"utf-16": "utf-16-le", "utf-16-be": "utf-16-be", "utf-8-sig": "utf-8-sig"}[codec]
    p = match["passages"][0]["query"]
    chunk = data[p["byte_start"]:p["byte_end"]]
    enc = {"utf-16": "utf-16-le", "utf-16-be": "utf-16-be", "utf-8-sig": "utf-8"}[codec]
    assert chunk.decode(enc) == p["text"]


# --- damaged workspace --------------------------------------------------------------

@pytest.mark.parametrize("command", ["check", "works", "register"])
def test_corrupted_registry_db(cli, ws, samples, command):
    db = ws / "registry.db"
    for extra in ("registry.db-wal", "registry.db-shm"):
        (ws / extra).unlink(missing_ok=True)
    db.write_bytes(b"this is not a database\n" * 200)
    args = {"check": ("check", samples / "suspects" / "en_partial.txt"),
            "works": ("works",),
            "register": ("register", samples / "suspects" / "en_partial.txt", "--owner", "o")}[command]
    rc, out, err = cli(*args)
    assert "Traceback" not in err, err[-600:]
    assert rc == 3, err
    (line,) = assert_clean_failure(err, want="error")


def test_deleted_blob_is_an_error_not_a_crash(cli, ws, samples):
    sha = hashlib.sha256((samples / "registered" / "en_lighthouse.md").read_bytes()).hexdigest()
    blob = BlobStore(ws / "blobs").path(sha)
    assert blob.is_file()
    blob.unlink()
    rc, out, err = cli("check", samples / "suspects" / "en_partial.txt")
    assert rc in (2, 3), (rc, err)
    assert "Traceback" not in err
    lines = assert_clean_failure(err)
    assert any(sha[:12] in ln for ln in lines)
    rc, out, err = cli("check", samples / "suspects" / "zh_light_edit.txt", "-f", "tsv")   # other works fine
    assert rc == 1, err


def test_corrupt_blob_is_an_error_not_a_crash(cli, ws, samples):
    sha = hashlib.sha256((samples / "registered" / "en_lighthouse.md").read_bytes()).hexdigest()
    blob = BlobStore(ws / "blobs").path(sha)
    blob.write_bytes(b"tampered")
    rc, out, err = cli("check", samples / "suspects" / "en_partial.txt")
    assert rc in (2, 3), (rc, err)
    (line,) = assert_clean_failure(err, want="error")
    assert "corrupt" in line


def test_truncated_index_segment_is_storage_error(cli, ws, samples):
    (seg,) = (ws / "index" / "text").glob("seg-*.csx")
    seg.write_bytes(seg.read_bytes()[:30])
    rc, out, err = cli("check", samples / "suspects" / "en_partial.txt")
    assert rc == 3, err
    (line,) = assert_clean_failure(err, want="error")
    assert seg.name in line


# --- output paths ----------------------------------------------------------------------

@pytest.mark.parametrize("flag", ["--report", "--bundle"])
def test_output_into_missing_directory(cli, ws, samples, flag):
    rc, out, err = cli("check", samples / "suspects" / "en_partial.txt", flag, "no/such/dir/out")
    assert "Traceback" not in err, err[-600:]
    assert rc == 2
    assert_clean_failure(err, want="error")


def test_report_onto_a_directory_is_refused(cli, ws, samples):
    Path("adir").mkdir()
    rc, out, err = cli("check", samples / "suspects" / "en_partial.txt", "--report", "adir")
    assert rc == 2
    (line,) = assert_clean_failure(err, want="error")
    assert "is a directory" in line


def test_bundle_path_with_brackets_is_echoed_verbatim(cli, ws, samples):
    Path("x[").mkdir()
    bundle, report = "x[/]y.json", "[bold]r.html"
    rc, out, err = cli("check", samples / "suspects" / "en_partial.txt", "--bundle", bundle, "--report", report)
    assert "Traceback" not in err, err[-600:]
    assert rc == 1
    assert Path(bundle).is_file() and Path(report).is_file()
    assert f"evidence bundle: {bundle}" in err and f"report: {report}" in err


def test_long_path_warning_is_wrapped(cli, registered_home, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")          # what Rich uses when nothing sets the width
    d = tmp_path / "a-fairly-long-directory-name-as-found-in-real-projects"
    d.mkdir()
    f = d / "scanned-page-0001.png"
    f.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    rc, out, err = cli("check", f)
    assert rc == 2
    (line,) = assert_clean_failure(err, want="warning")
    assert str(f) in line
