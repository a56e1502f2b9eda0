"""Evidence packages: layout, manifest, the standalone verify.py (run with copyscope
made unimportable), determinism, and file names that try to escape original/."""
from __future__ import annotations

import ast
import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import SAMPLES
from copyscope import api
from copyscope.ledger import verifier
from copyscope.ledger.package import FIXED_TIME
from copyscope.ledger.verifier import VKey

RECORD = SAMPLES.parent / "records" / "ai-image.json"
VERIFIER_SRC = Path(verifier.__file__).resolve()

# Runs verify.py as `python verify.py ARGS` would, after making sure copyscope cannot be
# imported (a meta-path blocker, and any copy already imported dropped).
BLOCKED_RUN = r"""
import runpy, sys

class BlockCopyscope:
    def find_spec(self, name, path=None, target=None):
        if name == "copyscope" or name.startswith("copyscope."):
            raise ImportError("copyscope is blocked in this test")
        return None

for name in [m for m in sys.modules if m == "copyscope" or m.startswith("copyscope.")]:
    del sys.modules[name]
sys.meta_path.insert(0, BlockCopyscope())
try:
    import copyscope  # noqa: F401
except ImportError:
    pass
else:
    raise SystemExit("copyscope is still importable")
sys.argv = ["verify.py"] + sys.argv[1:]
runpy.run_path("verify.py", run_name="__main__")
"""


def run_isolated(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-I", "-c", BLOCKED_RUN, *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)


def members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {i.filename: z.read(i) for i in z.infolist()}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """W0000001 (en_soil.txt with a creation record and two drafts) exported twice, plus
    a later registration so the log has moved on."""
    root = tmp_path_factory.mktemp("package")
    settings = api.Settings(home=root / "ws")
    drafts = []
    for i, note in enumerate(("chose seed 1234", "final colour pass")):
        d = root / f"draft{i + 1}.txt"
        d.write_text(f"draft {i + 1} of the soil essay\n", encoding="utf-8")
        drafts.append((d, note))
    with api.init(settings) as ws:
        ws.register([SAMPLES / "registered" / "en_soil.txt"], owner="Ann Writer", license="CC-BY-4.0",
                    title="Soil", record=RECORD)
        for d, note in drafts:
            api.add_draft(ws, "W0000001", d, note)
        ws.register([SAMPLES / "registered" / "zh_tea.txt"], owner="Bo Li", license="CC-BY-4.0")
        first = api.export_package(ws, "W0000001", root / "evidence.zip")
        second = api.export_package(ws, "W0000001", root / "again.zip")
        keys = api.keys_show(ws)
        latest = ws.ledger.latest()
    return {"root": root, "zip": first, "again": second, "files": members(first), "keys": keys,
            "drafts": drafts, "latest": latest}


RECEIPTS = ["receipts/00000000-register", "receipts/00000001-draft", "receipts/00000002-draft"]


def test_layout(exported):
    names = set(exported["files"])
    assert names == {"README.md", "MANIFEST.sha256", "verify.py", "keys.json", "original/en_soil.txt",
                     "record.json", "drafts.json", "checkpoints/latest.txt", "consistency.json",
                     *(r + ".json" for r in RECEIPTS), *(r + ".tlog-proof" for r in RECEIPTS)}
    with zipfile.ZipFile(exported["zip"]) as z:
        infos = z.infolist()
    assert [i.filename for i in infos] == sorted(names)
    assert all(i.date_time == FIXED_TIME for i in infos)


def test_readme_is_bilingual_and_lists_the_files(exported):
    readme = exported["files"]["README.md"].decode("utf-8")
    assert "中文说明" in readme and "证据包" in readme and "python verify.py" in readme
    assert "Work W0000001: Soil" in readme and "Ann Writer" in readme and "CC-BY-4.0" in readme
    for name in exported["files"]:
        if name not in ("README.md", "MANIFEST.sha256"):
            assert f"`{name}`" in readme


def test_manifest_covers_every_member(exported):
    files = exported["files"]
    lines = files["MANIFEST.sha256"].decode("ascii").splitlines()
    listed = {}
    for line in lines:
        digest, sep, name = line.partition("  ")
        assert sep and len(digest) == 64 and name not in listed
        listed[name] = digest
    assert set(listed) == set(files) - {"MANIFEST.sha256"}
    for name, digest in listed.items():
        assert hashlib.sha256(files[name]).hexdigest() == digest, name
    assert [line.split("  ", 1)[1] for line in lines] == sorted(listed)


def test_contents(exported):
    files = exported["files"]
    assert files["original/en_soil.txt"] == (SAMPLES / "registered" / "en_soil.txt").read_bytes()
    assert files["verify.py"] == VERIFIER_SRC.read_bytes()
    assert json.loads(files["keys.json"]) == {"log": exported["keys"]["log"], "clock": exported["keys"]["clock"]}
    receipts = {r: json.loads(files[r + ".json"]) for r in RECEIPTS}
    bodies = {r: json.loads(rec["entry"])["body"] for r, rec in receipts.items()}
    assert [b["kind"] for b in bodies.values()] == ["register", "draft", "draft"]
    record = json.loads(RECORD.read_text(encoding="utf-8"))
    assert json.loads(files["record.json"]) == record
    assert hashlib.sha256(files["record.json"]).hexdigest() == bodies[RECEIPTS[0]]["record_sha256"]
    assert receipts[RECEIPTS[0]]["file"] == "original/en_soil.txt"
    drafts = json.loads(files["drafts.json"])
    assert [(d["sha256"], d["note"], d["ledger_index"]) for d in drafts] == [
        (hashlib.sha256(p.read_bytes()).hexdigest(), note, i + 1) for i, (p, note) in enumerate(exported["drafts"])]
    for r in RECEIPTS:
        proof = files[r + ".tlog-proof"].decode("utf-8")
        assert proof == receipts[r]["tlog_proof"] and proof.split("\n", 1)[0] == "c2sp.org/tlog-proof@v1"
    latest = files["checkpoints/latest.txt"].decode("utf-8")
    assert latest == exported["latest"].note
    logs, clocks = [VKey(k) for k in exported["keys"]["log"]], [VKey(k) for k in exported["keys"]["clock"]]
    assert verifier.open_checkpoint(latest, logs, clocks)[1] == 4
    assert set(json.loads(files["consistency.json"])) == {r + ".json" for r in RECEIPTS}


def test_verify_py_is_small_and_needs_only_the_stdlib_and_cryptography(exported):
    source = exported["files"]["verify.py"].decode("utf-8")
    assert len(source.splitlines()) <= 400
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative import"
            imported.add(node.module.split(".")[0])
    assert "cryptography" in imported and "copyscope" not in imported
    assert imported - {"cryptography"} <= set(sys.stdlib_module_names), imported
    assert "__future__" in imported


def test_export_is_deterministic(exported):
    assert exported["zip"].read_bytes() == exported["again"].read_bytes()


def _ok_lines(out: str) -> list[dict]:
    return [json.loads(line[3:]) for line in out.splitlines() if line.startswith("OK ")]


def test_verify_py_without_copyscope_on_the_zip(exported, tmp_path):
    clean = tmp_path / "clean"
    clean.mkdir()
    shutil.copy(exported["zip"], clean / "evidence.zip")
    (clean / "verify.py").write_bytes(exported["files"]["verify.py"])
    proc = run_isolated(clean, "evidence.zip")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ok = _ok_lines(proc.stdout)
    assert len(proc.stdout.splitlines()) == len(ok) == 3
    assert [r["receipt"] for r in ok] == [r + ".json" for r in RECEIPTS]
    assert [r["kind"] for r in ok] == ["register", "draft", "draft"]
    assert all(r["tree_size"] == 4 and r["cosigned_time"] and r["work"] == "W0000001" for r in ok)
    assert "using the keys inside the package" in proc.stderr
    pinned = run_isolated(clean, "evidence.zip", "--log-key", exported["keys"]["log"][0],
                          "--clock-key", exported["keys"]["clock"][0])
    assert pinned.returncode == 0 and len(_ok_lines(pinned.stdout)) == 3, pinned.stderr
    assert "using the keys inside" not in pinned.stderr
    assert sorted(p.name for p in clean.iterdir()) == ["evidence.zip", "verify.py"]     # wrote nothing


def test_verify_py_without_copyscope_on_the_extracted_directory(exported, tmp_path):
    pkg = tmp_path / "evidence"
    with zipfile.ZipFile(exported["zip"]) as z:
        z.extractall(pkg)
    proc = run_isolated(pkg, ".")                              # as the README says: python verify.py .
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [r["receipt"] for r in _ok_lines(proc.stdout)] == [r + ".json" for r in RECEIPTS]
    assert len(proc.stdout.splitlines()) == 3
    (pkg / "original" / "en_soil.txt").write_bytes(b"not the registered text\n")
    proc = run_isolated(pkg, ".")
    assert proc.returncode == 1 and proc.stderr.splitlines()[-1].startswith("FAILED manifest:")


def test_the_blocker_really_blocks(tmp_path):
    (tmp_path / "verify.py").write_text("import copyscope\n", encoding="utf-8")
    proc = run_isolated(tmp_path)
    assert proc.returncode != 0 and "copyscope is blocked in this test" in proc.stderr


def test_package_receipts_keep_the_checkpoint_of_registration(exported):
    files = exported["files"]
    receipt = json.loads(files["receipts/00000000-register.json"])
    note = verifier.parse_tlog_proof(receipt["tlog_proof"])[3]
    assert verifier.parse_checkpoint(verifier.split_note(note)[0])[1] == 1
    assert json.loads(files["consistency.json"])["receipts/00000000-register.json"]


# --- file names that try to escape original/ ----------------------------------------------------

def _safe_member(name: str) -> bool:
    parts = name.split("/")
    return not name.startswith("/") and "\\" not in name and ".." not in parts and "" not in parts \
        and ":" not in parts[0]


def test_file_names_cannot_escape_original(tmp_path):
    src = tmp_path / "src"
    (src / "d" / "sub").mkdir(parents=True)
    (src / "d2").mkdir()
    shutil.copy(SAMPLES / "registered" / "en_soil.txt", src / "..\\evil.txt")
    shutil.copy(SAMPLES / "registered" / "zh_tea.txt", src / "d" / "..\\..\\up.txt")
    shutil.copy(SAMPLES / "registered" / "zh_bridge.txt", src / "d" / "sub" / "..\\..\\..\\deep.txt")
    shutil.copy(SAMPLES / "registered" / "en_lighthouse.md", src / "d" / "\\abs.txt")
    settings = api.Settings(home=tmp_path / "ws")
    with api.init(settings) as ws:
        ws.register([src / "..\\evil.txt"], owner="Eve", license="none")                   # W0000001
        ws.register([str(src / "d2") + "/../d"], owner="Eve", license="none")            # W0000002
        one = api.export_package(ws, "W0000001", tmp_path / "one.zip")
        two = api.export_package(ws, "W0000002", tmp_path / "two.zip")
    for pkg, want in ((one, {"original/evil.txt"}),
                      (two, {"original/up.txt", "original/sub/deep.txt", "original/abs.txt"})):
        names = set(members(pkg))
        assert all(_safe_member(n) for n in names), names
        assert {n for n in names if n.startswith("original/")} == want
        out = tmp_path / f"x-{pkg.stem}"
        with zipfile.ZipFile(pkg) as z:
            z.extractall(out)
        assert all(p.resolve().is_relative_to(out.resolve()) for p in out.rglob("*"))
        assert verifier.main([str(pkg)]) == 0
    assert members(one)["original/evil.txt"] == (SAMPLES / "registered" / "en_soil.txt").read_bytes()
    assert json.loads(members(one)["receipts/00000000-register.json"])["file"] == "original/evil.txt"


def test_every_file_of_a_directory_work_gets_its_own_member(tmp_path):
    d = tmp_path / "dd"
    d.mkdir()
    shutil.copy(SAMPLES / "registered" / "en_soil.txt", d / "x.txt")
    shutil.copy(SAMPLES / "registered" / "zh_tea.txt", d / "..\\x.txt")
    with api.init(api.Settings(home=tmp_path / "ws")) as ws:
        ws.register([d], owner="Eve", license="none")
        pkg = api.export_package(ws, "W0000001", tmp_path / "p.zip")
    originals = {n: b for n, b in members(pkg).items() if n.startswith("original/")}
    assert sorted(hashlib.sha256(b).hexdigest() for b in originals.values()) == sorted(
        hashlib.sha256(p.read_bytes()).hexdigest() for p in d.iterdir())
