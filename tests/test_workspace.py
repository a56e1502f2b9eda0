"""Workspace end to end on a temporary home, with the real (entry-point) plugins."""
from __future__ import annotations

import hashlib
import random
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from copyscope.errors import InputError, WorkspaceError
from copyscope.index.inverted import DocKeys, Segment, write_segment
from copyscope.settings import Settings
from copyscope.workspace import MAX_SEGMENTS, Workspace

SAMPLES = resources.files("copyscope").joinpath("samples/text")


def synthetic_text(seed: int, n_words: int = 80) -> str:
    """Deterministic pseudo-English: distinct per seed, no shared phrases between seeds."""
    rnd = random.Random(seed)
    syll = ["ka", "lo", "mi", "ne", "su", "ta", "ri", "po", "ve", "zu", "an", "el", "or", "ish", "ut", "ber"]
    words = ["".join(rnd.choice(syll) for _ in range(rnd.randint(2, 4))) for _ in range(n_words)]
    lines = [" ".join(words[i:i + 12]).capitalize() + "." for i in range(0, n_words, 12)]
    return f"Document {seed}\n" + "\n".join(lines) + "\n"


@pytest.fixture
def ws(tmp_path):
    w = Workspace.init(Settings(home=tmp_path / "home"))
    yield w
    w.close()


@pytest.fixture
def docs(tmp_path) -> Path:
    d = tmp_path / "docs"
    d.mkdir()
    for rel in ("registered/en_soil.txt", "registered/zh_tea.txt", "registered/en_lighthouse.md"):
        (d / Path(rel).name).write_bytes(SAMPLES.joinpath(rel).read_bytes())
    return d


def sample_path(tmp_path: Path, rel: str) -> Path:
    p = tmp_path / "suspects" / Path(rel).name
    p.parent.mkdir(exist_ok=True)
    p.write_bytes(SAMPLES.joinpath(rel).read_bytes())
    return p


def live_segment_files(ws: Workspace) -> set[str]:
    return {p.name for p in (ws.home / "index" / "text").glob("seg-*")}


# --- lifecycle --------------------------------------------------------------------------------

def test_init_creates_layout_and_is_idempotent(tmp_path):
    home = tmp_path / "home"
    Workspace.init(Settings(home=home)).close()
    assert (home / "registry.db").is_file() and (home / "blobs").is_dir() and (home / "index").is_dir()
    with Workspace.init(Settings(home=home)) as again:
        assert "text" in again.modalities
        assert again.stats() == {"home": str(home), "works": 0,
                                 **{name: {"artifacts": 0, "segments": 0} for name in again.modalities}}


def test_open_without_workspace_is_refused(tmp_path):
    with pytest.raises(WorkspaceError, match="no workspace"):
        Workspace.open(Settings(home=tmp_path / "nowhere"))


def test_open_refuses_a_registry_from_a_newer_copyscope(ws, tmp_path):
    with ws.engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0099_future'"))
    ws.close()
    with pytest.raises(WorkspaceError, match="newer"):
        Workspace.open(Settings(home=tmp_path / "home"))


# --- register ---------------------------------------------------------------------------------

def test_register_same_file_twice_reuses_the_artifact(ws, docs):
    f = docs / "en_soil.txt"
    first = ws.register([f], owner="Ann", license="CC0-1.0")
    second = ws.register([f], owner="Bob", license="CC-BY-4.0", title="Soil, again")
    assert first.errors == [] and second.errors == []
    (w1,), (w2,) = first.works, second.works
    assert (w1.files, w1.new_artifacts) == (1, 1)
    assert (w2.files, w2.new_artifacts) == (1, 0)
    assert w1.work_id != w2.work_id and (w1.title, w2.title) == ("en_soil.txt", "Soil, again")
    assert ws.stats()["works"] == 2 and ws.stats()["text"] == {"artifacts": 1, "segments": 1}
    sha = hashlib.sha256(f.read_bytes()).hexdigest()
    assert ws.blobs.get(sha) == f.read_bytes()
    # A check of the same bytes reports both works.
    result = ws.check([f])
    assert sorted(m.work.work_id for m in result.copies) == sorted([w1.work_id, w2.work_id])
    assert {m.work.owner for m in result.copies} == {"Ann", "Bob"}


def test_same_file_twice_in_one_call_counts_one_new_artifact(ws, docs):
    f = docs / "en_soil.txt"
    out = ws.register([f, f], owner="Ann", license="CC0-1.0")
    assert ws.stats()["text"]["artifacts"] == 1
    assert [w.new_artifacts for w in out.works] == [1, 0]


def test_same_file_twice_in_one_call_with_batch_size_1(tmp_path, docs):
    with Workspace.init(Settings(home=tmp_path / "h1", batch_size=1)) as w:
        out = w.register([docs / "en_soil.txt", docs / "en_soil.txt"], owner="Ann", license="CC0-1.0")
        assert [x.new_artifacts for x in out.works] == [1, 0]
        assert w.stats()["text"] == {"artifacts": 1, "segments": 1}


def test_directory_is_one_work_unless_each(ws, docs):
    out = ws.register([docs], owner="Ann", license="CC0-1.0")
    assert len(out.works) == 1
    (w,) = out.works
    assert (w.title, w.files, w.new_artifacts, w.path) == ("docs", 3, 3, str(docs))
    each = ws.register([docs], owner="Ann", license="CC0-1.0", each=True)
    assert [x.title for x in each.works] == ["en_lighthouse.md", "en_soil.txt", "zh_tea.txt"]
    assert all(x.files == 1 and x.new_artifacts == 0 for x in each.works)
    assert ws.stats()["works"] == 4 and ws.stats()["text"]["artifacts"] == 3


def test_directory_work_skips_unusable_files(ws, docs):
    (docs / "blob.bin").write_bytes(b"\x00\x01\x02\x03" * 100)
    (docs / "empty.txt").write_bytes(b"")
    out = ws.register([docs], owner="Ann", license="CC0-1.0")
    assert len(out.works) == 1 and out.works[0].files == 3
    assert len(out.errors) == 2 and all(e.startswith("skipped ") for e in out.errors)


def test_unusable_single_file_registers_nothing(ws, tmp_path):
    bad = tmp_path / "junk.bin"
    bad.write_bytes(bytes(range(256)) * 4)
    out = ws.register([bad], owner="Ann", license="CC0-1.0")
    assert out.works == [] and len(out.errors) == 1
    assert ws.stats()["works"] == 0 and live_segment_files(ws) == set()


def test_register_requires_an_owner(ws, docs):
    with pytest.raises(InputError, match="owner"):
        ws.register([docs], owner="  ", license="CC0-1.0")


# --- check ----------------------------------------------------------------------------------------

def test_check_finds_the_registered_work(ws, docs, tmp_path):
    reg = ws.register([docs], owner="Ann", license="CC0-1.0", each=True)
    ids = {w.title: w.work_id for w in reg.works}
    suspect = sample_path(tmp_path, "suspects/en_light_edit.txt")
    innocent = sample_path(tmp_path, "suspects/innocent_zh.txt")
    result = ws.check([suspect, innocent])
    assert result.errors == []
    assert [(m.query_path, m.work.work_id) for m in result.copies] == [(str(suspect), ids["en_soil.txt"])]
    m = result.copies[0]
    assert m.verdict == "copy" and m.score >= 0.9 and m.registered_path.endswith("en_soil.txt")
    assert m.passages and all(p.registered.text for p in m.passages)
    roles = sorted(r.role for r in result.inputs)
    assert roles == ["query", "query", "registered"]


def test_check_mixed_page_finds_both_sources(ws, docs, tmp_path):
    reg = ws.register([docs], owner="Ann", license="CC0-1.0", each=True)
    ids = {w.title: w.work_id for w in reg.works}
    page = sample_path(tmp_path, "suspects/mixed_en_zh.html")
    found = {m.work.work_id for m in ws.check([page]).copies}
    assert found == {ids["en_soil.txt"], ids["zh_tea.txt"]}


MD_WITH_LINK = (
    "# Restoring the lens\n\n"
    "Volunteers scraped forty years of salt from the brass frame before [the new lens]"
    "(https://example.org/archive/records/lighthouse/lens/installation/photographs/gallery/page/two) "
    "could be fitted. Each pane was numbered in pencil so the glaziers could return it to the same "
    "slot in the frame.\n")
PLAIN_COPY = ("Volunteers scraped forty years of salt from the brass frame before the new lens could be "
              "fitted. Each pane was numbered in pencil so the glaziers could return it to the same slot "
              "in the frame.\n")


def test_check_analyses_registered_markdown_as_markdown(ws, tmp_path):
    """Regression: the registered blob must be re-analysed under its registered name, so the
    link URL (stripped from Markdown) does not split the passage at check time."""
    from copyscope.model import Artifact
    from copyscope.text.plugin import TextModality

    (tmp_path / "article.md").write_text(MD_WITH_LINK, encoding="utf-8")
    (tmp_path / "copy.txt").write_text(PLAIN_COPY, encoding="utf-8")
    ws.register([tmp_path / "article.md"], owner="Ann", license="CC0-1.0")
    (checked,) = ws.check([tmp_path / "copy.txt"]).copies
    plugin = TextModality()
    direct = plugin.verify(plugin.fingerprint(Artifact(PLAIN_COPY.encode(), origin="copy.txt")),
                           plugin.fingerprint(Artifact(MD_WITH_LINK.encode(), origin="article.md")))
    assert len(checked.passages) == len(direct.passages) == 1
    assert checked.score == pytest.approx(direct.score)
    assert (checked.passages[0].registered.start, checked.passages[0].registered.end) == \
        (direct.passages[0].registered.start, direct.passages[0].registered.end) == (22, 310)


# --- many small batches: segment merging --------------------------------------------------------

def test_small_batches_trigger_segment_merging(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    n_files = MAX_SEGMENTS + 4
    for i in range(n_files):
        (corpus / f"doc{i:02d}.txt").write_text(synthetic_text(i), encoding="utf-8")
    settings = Settings(home=tmp_path / "home", batch_size=1)
    with Workspace.init(settings) as ws:
        out = ws.register([corpus], owner="Ann", license="CC0-1.0", each=True)
        assert out.errors == [] and len(out.works) == n_files
        live = ws.registry.live_segments("text")
        assert len(live) <= MAX_SEGMENTS
        assert len(live) < n_files                                # a merge really happened
        assert live_segment_files(ws) == set(live)                # merged-away files are deleted
        reader = ws.reader("text")
        assert reader.n_docs == n_files
        assert sorted(np.concatenate([s.docs for s in reader.segments]).tolist()) == list(range(1, n_files + 1))
        for name in live:
            Segment(ws.home / "index" / "text" / name, verify=True)

        # A second register call merges again.
        more = tmp_path / "more"
        more.mkdir()
        for i in range(n_files, n_files + 9):
            (more / f"doc{i:02d}.txt").write_text(synthetic_text(i), encoding="utf-8")
        ws.register([more], owner="Ann", license="CC0-1.0", each=True)
        assert len(ws.registry.live_segments("text")) <= MAX_SEGMENTS
        assert ws.reader("text").n_docs == n_files + 9

        ids = {w.work_id for w in ws.works()}
        result = ws.check([corpus, more])
        assert result.errors == []
        by_query = {}
        for m in result.copies:
            by_query.setdefault(Path(m.query_path).name, []).append(m)
        assert len(by_query) == n_files + 9                        # every file is found...
        for name, matches in by_query.items():
            assert [Path(m.registered_path).name for m in matches] == [name]   # ...as itself only
            assert matches[0].score >= 0.99 and matches[0].work.work_id in ids


# --- garbage collection -------------------------------------------------------------------------

def test_collect_garbage_removes_orphans_but_never_live_files(ws, docs, tmp_path):
    ws.register([docs], owner="Ann", license="CC0-1.0", each=True)
    index_dir = ws.home / "index" / "text"
    live = set(ws.registry.live_segments("text"))
    assert live and live_segment_files(ws) == live
    live_blobs = {p.name for p in (ws.home / "blobs").rglob("*") if p.is_file()}
    assert len(live_blobs) == 3

    orphan_seg = write_segment(index_dir, [DocKeys(999, np.array([1, 2], np.uint64), np.array([3], np.uint64))])
    orphan_data = b"a blob an interrupted register left behind"
    orphan_sha = hashlib.sha256(orphan_data).hexdigest()
    ws.blobs.put(orphan_sha, orphan_data)
    assert ws.blobs.path(orphan_sha).exists()

    assert ws.collect_garbage() == {"segments": 1, "blobs": 1}
    assert not (index_dir / orphan_seg).exists() and not ws.blobs.path(orphan_sha).exists()
    assert live_segment_files(ws) == live
    assert {p.name for p in (ws.home / "blobs").rglob("*") if p.is_file()} == live_blobs
    for sha in live_blobs:
        ws.blobs.get(sha)                                         # intact, hash verified
    assert ws.collect_garbage() == {"segments": 0, "blobs": 0}
    # Still fully usable afterwards.
    assert ws.check([sample_path(tmp_path, "suspects/zh_repost_traditional.txt")]).copies


def test_collect_garbage_removes_interrupted_temp_files(ws, docs):
    ws.register([docs / "en_soil.txt"], owner="Ann", license="CC0-1.0")
    index_dir = ws.home / "index" / "text"
    (index_dir / "seg-deadbeef.csx.tmp").write_bytes(b"half a segment")
    live_sha = next(iter(ws.registry.referenced_blobs()))
    tmp_blob = ws.blobs.path(live_sha).with_name(f".{live_sha}.12345.tmp")
    tmp_blob.write_bytes(b"half a blob")
    assert ws.collect_garbage() == {"segments": 1, "blobs": 1}
    assert not tmp_blob.exists() and ws.blobs.path(live_sha).exists()
    assert live_segment_files(ws) == set(ws.registry.live_segments("text"))


def test_collect_garbage_on_a_fresh_workspace(ws):
    assert ws.collect_garbage() == {"segments": 0, "blobs": 0}


def test_blob_corruption_is_detected_on_check(ws, docs, tmp_path):
    from copyscope.errors import StorageError
    ws.register([docs / "en_soil.txt"], owner="Ann", license="CC0-1.0")
    sha = next(iter(ws.registry.referenced_blobs()))
    path = ws.blobs.path(sha)
    path.chmod(0o644)
    path.write_bytes(path.read_bytes().replace(b"soil", b"s0il", 1))
    with pytest.raises(StorageError, match="corrupt"):
        ws.check([sample_path(tmp_path, "suspects/en_light_edit.txt")])


def test_a_check_skips_chance_candidates_but_finds_a_short_copied_passage(ws, tmp_path, monkeypatch):
    """A registered text sharing two chance phrases with the query (fewer
    indexed k-grams than ``min_shared_keys``) is not verified; one from which
    the query copies a single 21-word sentence, about the shortest passage the
    default threshold reports, is, and is reported."""
    from copyscope.model import Artifact
    from copyscope.text.plugin import TextModality

    reg = tmp_path / "reg"
    reg.mkdir()
    for seed in range(30):
        (reg / f"d{seed:02d}.txt").write_text(synthetic_text(seed, 120), encoding="utf-8")
    ws.register([reg], owner="Ann", each=True)
    chance = synthetic_text(100, 120).split()
    source = synthetic_text(101, 120).split()
    (reg / "chance.txt").write_text(" ".join(chance), encoding="utf-8")
    (reg / "source.txt").write_text(" ".join(source), encoding="utf-8")
    ws.register([reg / "chance.txt"], owner="Bea")
    ws.register([reg / "source.txt"], owner="Cy")
    query = synthetic_text(500, 60).split() + chance[40:44] + synthetic_text(501, 60).split() \
        + chance[80:84] + synthetic_text(503, 40).split() + source[30:51] + synthetic_text(502, 30).split()
    q = tmp_path / "query.txt"
    q.write_text(" ".join(query), encoding="utf-8")

    # The premise: the chance document is a candidate, sharing a key or two.
    text = ws.modalities["text"]
    fp = text.fingerprint(Artifact(q.read_bytes(), origin=q.name))
    cands = ws.reader("text").candidates(fp.query_keys(), common_df=3, max_df=100, limit=25, count_shared=True)
    by_id = dict(zip(cands.doc_ids.tolist(), cands.shared.tolist()))
    ids = ws.registry.artifact_ids([hashlib.sha256((reg / n).read_bytes()).hexdigest()
                                    for n in ("chance.txt", "source.txt")])
    chance_id, source_id = ids.values()
    assert 0 < by_id[chance_id] < text.params.min_shared_keys <= by_id[source_id]

    verified = []
    real_verify = TextModality.verify
    monkeypatch.setattr(TextModality, "verify",
                        lambda self, a, b, stats=None: verified.append(b.artifact.sha256) or real_verify(self, a, b, stats))
    result = ws.check([q])
    shas = {n: hashlib.sha256((reg / n).read_bytes()).hexdigest() for n in ("chance.txt", "source.txt")}
    assert shas["source.txt"] in verified and shas["chance.txt"] not in verified
    assert [m.work.owner for m in result.copies] == ["Cy"]
