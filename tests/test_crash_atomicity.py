"""``kill -9`` in the middle of a bulk registration leaves a consistent workspace.

workspace.py promises: "A ``kill -9`` at any point leaves every work either fully
registered and indexed, or absent." These tests register ~600 small distinct files
in a real child process with a small batch size (there is no CLI flag or environment
variable for it, so the child is a tiny ``python -c`` that calls ``copyscope.api``
with ``Settings(batch_size=20)``), SIGKILL it at a chosen moment, and then check:

* every work in the registry has all its artifacts, and every artifact's blob is
  present with the right SHA-256;
* every artifact id is in exactly one live index segment, every live segment file
  exists and passes ``Segment(path, verify=True)``;
* ``copyscope check`` finds the work of registered files, and finds nothing for files
  that were not (yet) registered, including the batch that was being written;
* registering again completes, and ``gc`` removes exactly the orphans, after which
  the workspace is still consistent.

The moments are made deterministic without timing: the child wraps one internal
step (blob write, segment write, merge, segment swap) so that, at the chosen
occurrence, it writes a marker file and sleeps; the parent waits for the marker and
for committed works to be visible through a read-only SQLite connection, then sends
SIGKILL. One more case kills the real ``copyscope register`` binary as soon as the
first batch is committed, wherever it happens to be.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import sqlite3
import string
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from copyscope.storage.blobs import BlobStore
from copyscope.workspace import MAX_SEGMENTS

import pytest

from conftest import copyscope_command

N_FILES = 600
BATCH = 20
N_BATCHES = N_FILES // BATCH

CHILD = r"""
import sys, time
from pathlib import Path
home, src, batch, phase, marker = sys.argv[1:6]
batch = int(batch)

import copyscope.workspace as wsmod
from copyscope import api
from copyscope.storage.blobs import BlobStore
from copyscope.storage.registry import SqlRegistry

seen = {"n": 0}

def stall(what):
    Path(marker + ".tmp").write_text(what)
    Path(marker + ".tmp").replace(marker)
    time.sleep(600)                 # the parent kills us here

def hook(owner, attr, at, before=False):
    orig = getattr(owner, attr)
    def wrapper(*args, **kwargs):
        seen["n"] += 1
        if before and seen["n"] == at:
            stall(attr)
        out = orig(*args, **kwargs)
        if not before and seen["n"] == at:
            stall(attr)
        return out
    setattr(owner, attr, wrapper)

if phase == "blob":            # batch 3: half of its blobs written, no segment, no commit
    hook(BlobStore, "put", 2 * batch + batch // 2)
elif phase == "segment":       # batch 3: blobs and segment file written, not committed
    hook(wsmod, "write_segment", 3)
elif phase == "merge-written": # first merge: merged segment written, not swapped in
    hook(wsmod, "merge_segments", 1)
elif phase == "merge-swapped": # merged segment live; the merged-away files not deleted yet
    hook(SqlRegistry, "swap_segments", 1)

settings = api.Settings(home=Path(home), batch_size=batch)
out = api.register(settings, [src], owner="o", license="x", each=True)
print(len(out.works), len(out.errors))
"""

# phase -> minimum committed works that must be visible before the kill
# Merges run as batches land: the first one follows the batch that takes the
# workspace past MAX_SEGMENTS live segments.
FIRST_MERGE_WORKS = (MAX_SEGMENTS + 1) * BATCH
PHASES = {
    "blob": 2 * BATCH,
    "segment": 2 * BATCH,
    "merge-written": FIRST_MERGE_WORKS,
    "merge-swapped": FIRST_MERGE_WORKS,
}


# --- helpers ------------------------------------------------------------------------

def _vocabulary(seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(4, 10)))
            for _ in range(5000)]


def _text(rng: random.Random, vocab: list[str]) -> str:
    words = [rng.choice(vocab) for _ in range(rng.randint(70, 110))]
    lines = [" ".join(words[i:i + 12]) + "." for i in range(0, len(words), 12)]
    return "\n".join(lines) + "\n"


def make_corpus(root: Path, n: int = N_FILES) -> Path:
    root.mkdir(parents=True)
    vocab = _vocabulary(1)
    rng = random.Random(2)
    texts: set[str] = set()
    for i in range(n):
        t = _text(rng, vocab)
        assert t not in texts
        texts.add(t)
        (root / f"doc{i:04d}.txt").write_text(t, encoding="utf-8")
    return root


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def committed_works(db: Path) -> int:
    """Works visible to a read-only reader (0 while the database is not there yet)."""
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.2)
        try:
            return int(con.execute("SELECT count(*) FROM works").fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def wait_until(proc: subprocess.Popen, ready, what: str, limit: float = 120.0) -> bool:
    """Poll ``ready()``; False if the child exited first. The limit only guards a hang."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if ready():
            return True
        if proc.poll() is not None:
            return ready()
        time.sleep(0.005)
    proc.kill()
    raise AssertionError(f"timed out waiting for {what}")


def kill9(proc: subprocess.Popen) -> int:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    return proc.wait(timeout=60)


def inspect(home: Path) -> dict:
    """Check the workspace invariants; return what the later steps need."""
    from copyscope import api
    from copyscope.index.inverted import Segment

    with api.open_workspace(api.Settings(home=home)) as ws:        # takes the lock, recovers the WAL
        stats = ws.stats()
    con = sqlite3.connect(home / "registry.db", timeout=5)
    try:
        works = con.execute("SELECT id, work_id FROM works").fetchall()
        links = con.execute("SELECT wa.work_pk, wa.path, a.id, a.sha256 FROM work_artifacts wa "
                            "JOIN artifacts a ON a.id = wa.artifact_id").fetchall()
        artifacts = dict(con.execute("SELECT id, sha256 FROM artifacts").fetchall())
        segments = con.execute("SELECT name, n_docs FROM index_segments WHERE modality = 'text' "
                               "ORDER BY id").fetchall()
        dangling = con.execute("SELECT count(*) FROM work_artifacts wa LEFT JOIN artifacts a "
                               "ON a.id = wa.artifact_id WHERE a.id IS NULL").fetchone()[0]
    finally:
        con.close()
    assert stats["works"] == len(works) and stats["text"]["artifacts"] == len(artifacts)
    assert dangling == 0

    # every work has its artifacts; every artifact belongs to a work and has its blob
    by_work = Counter(pk for pk, _, _, _ in links)
    assert all(by_work[pk] >= 1 for pk, _ in works), "a work without artifacts"
    assert {a for _, _, a, _ in links} == set(artifacts), "an artifact no work uses"
    for aid, sha in artifacts.items():
        blob = BlobStore(home / "blobs").path(sha)
        assert blob.is_file(), f"artifact {aid}: blob missing"
        assert sha256(blob) == sha, f"artifact {aid}: blob content does not match its sha256"

    # every artifact in exactly one live segment; live segments intact
    docs: Counter[int] = Counter()
    seg_dir = home / "index" / "text"
    for name, n_docs in segments:
        path = seg_dir / name
        assert path.is_file(), f"live segment {name} is missing"
        seg = Segment(path, verify=True)
        assert seg.n_docs == n_docs
        docs.update(int(d) for d in seg.docs)
        del seg
    assert set(docs) == set(artifacts), "index and artifacts table disagree"
    assert all(c == 1 for c in docs.values()), {d: c for d, c in docs.items() if c != 1}

    wid = dict(works)
    registered: dict[str, set[str]] = {}
    for pk, path, _, _ in links:
        registered.setdefault(path, set()).add(wid[pk])
    live = {name for name, _ in segments}
    orphans = sorted([p for p in seg_dir.iterdir() if p.name not in live] if seg_dir.exists() else [])
    blob_files = [p for p in (home / "blobs").rglob("*") if p.is_file()]
    stray_blobs = sorted(p for p in blob_files if p.name not in set(artifacts.values()))
    return {"works": len(works), "artifact_shas": set(artifacts.values()), "registered": registered,
            "orphan_segments": orphans, "stray_blobs": stray_blobs}


def check_json(cli, paths: list[Path]) -> dict:
    rc, out, err = cli("--quiet", "check", *paths, "--format", "json")
    assert "Traceback" not in err, err
    assert rc in (0, 1), err
    bundle = json.loads(out)
    assert bundle["errors"] == []
    found: dict[str, set[str]] = {str(p): set() for p in paths}
    for m in bundle["matches"]:
        found[m["query"]["path"]].add(m["registered"]["work_id"])
    assert rc == (1 if any(found.values()) else 0)
    return found


def assert_checks(cli, state: dict, corpus: Path, outsider: Path) -> None:
    reg = sorted(state["registered"])
    sample = [Path(reg[i]) for i in sorted({0, len(reg) // 3, len(reg) // 2, (2 * len(reg)) // 3, len(reg) - 1})]
    unregistered = [p for p in sorted(corpus.iterdir()) if sha256(p) not in state["artifact_shas"]][:4]
    found = check_json(cli, sample + unregistered + [outsider])
    for p in sample:
        assert state["registered"][str(p)] <= found[str(p)], f"{p.name}: its work was not found"
    for p in unregistered + [outsider]:
        assert found[str(p)] == set(), f"{p.name} is not registered but matched {found[str(p)]}"


# --- the tests ------------------------------------------------------------------------

@pytest.fixture
def crash_setup(cli, home, tmp_path):
    corpus = make_corpus(tmp_path / "corpus")
    outsider = tmp_path / "outsider.txt"
    outsider.write_text(_text(random.Random(99), _vocabulary(1)), encoding="utf-8")
    rc, _, err = cli("init")
    assert rc == 0, err
    return corpus, outsider


def _finish(cli, home: Path, corpus: Path, outsider: Path, state: dict, expect_orphans: int | None) -> None:
    if expect_orphans is not None:
        assert len(state["orphan_segments"]) + len(state["stray_blobs"]) >= expect_orphans

    # registering again completes
    rc, out, err = cli("--quiet", "register", corpus, "--each", "--owner", "o")
    assert rc == 0, err
    assert len(out.splitlines()) == N_FILES
    after = inspect(home)
    assert after["works"] == state["works"] + N_FILES
    assert {sha256(p) for p in corpus.iterdir()} <= after["artifact_shas"]

    # gc removes exactly the orphans, and nothing live
    rc, out, err = cli("--json", "gc")
    assert rc == 0, err
    removed = json.loads(out)
    assert removed == {"segments": len(after["orphan_segments"]), "blobs": len(after["stray_blobs"])}
    final = inspect(home)
    assert final["orphan_segments"] == [] and final["stray_blobs"] == []
    assert final["works"] == after["works"]
    assert_checks(cli, final, corpus, outsider)
    rc, out, _ = cli("--json", "gc")
    assert json.loads(out) == {"segments": 0, "blobs": 0}


@pytest.mark.slow
@pytest.mark.parametrize("phase", sorted(PHASES))
def test_kill9_during_registration(cli, home, tmp_path, crash_setup, phase):
    corpus, outsider = crash_setup
    marker = tmp_path / "stalled"
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(home), str(corpus), str(BATCH), phase, str(marker)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        reached = wait_until(proc, lambda: marker.exists() and committed_works(home / "registry.db") >= PHASES[phase],
                             f"the child to reach {phase!r}")
        assert reached, f"child exited before {phase!r}: {proc.communicate()}"
        rc = kill9(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert rc == -signal.SIGKILL, proc.communicate()

    state = inspect(home)
    if phase in ("blob", "segment"):
        assert state["works"] == 2 * BATCH         # batches 1 and 2 only: batch 3 is absent as a whole
    else:
        assert state["works"] == FIRST_MERGE_WORKS  # the batches up to the first merge, all committed
    assert_checks(cli, state, corpus, outsider)
    expect = {"blob": BATCH // 2, "segment": 1, "merge-written": 1,
              "merge-swapped": MAX_SEGMENTS + 1 - MAX_SEGMENTS // 2}[phase]   # merged-away files left
    _finish(cli, home, corpus, outsider, state, expect)


@pytest.mark.slow
def test_kill9_of_cli_binary_after_first_commit(cli, home, crash_setup):
    """The real ``copyscope register`` (default batch size), killed as soon as any
    work is visible: wherever the kill lands, the workspace is consistent."""
    corpus, outsider = crash_setup
    cmd = copyscope_command() + ["--home", str(home), "--quiet", "register", str(corpus), "--each", "--owner", "o"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        wait_until(proc, lambda: committed_works(home / "registry.db") >= 1, "the first committed batch")
        kill9(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    state = inspect(home)
    assert state["works"] >= 1
    assert_checks(cli, state, corpus, outsider)
    _finish(cli, home, corpus, outsider, state, None)
