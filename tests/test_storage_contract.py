"""The storage contract: one set of tests, run on SQLite and on a real PostgreSQL.

Each test takes the ``backend`` fixture (parametrised ``sqlite`` and
``postgresql``; the PostgreSQL server comes from tests/pgserver.py and these
variants are skipped where PostgreSQL is not installed) and goes through the
same code a user does: ``copyscope.api``, ``Workspace``, the CLI. The registry
layer's own contract (``RegistryContract``, tests/test_storage_registry.py) runs
here against PostgreSQL too. A few tests are PostgreSQL only: schemas (one
registry per tenant in one database), the driver and URL handling.
"""
from __future__ import annotations

import hashlib
import json
import re
import threading
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import sqlalchemy as sa

from conftest import assert_clean_failure
from copyscope import api
from copyscope.errors import InputError, StorageError, UsageError
from copyscope.evidence import canonical_bytes
from copyscope.storage import schema as t
from copyscope.storage.registry import HEAD, NewArtifact, SqlRegistry, make_engine, migrate
from copyscope.workspace import Workspace
from test_storage_registry import TABLES, RegistryContract, art, sha, work
from test_workspace import SAMPLES, synthetic_text

CODE_SAMPLES = Path(__file__).resolve().parent / "code_samples"
RECORD = Path(str(SAMPLES)).parent / "records" / "article.json"
LEDGER_TABLES = ("ledger_entries", "ledger_nodes", "ledger_checkpoints", "ledger_openings")


# --- backends ---------------------------------------------------------------------------------

@dataclass
class Backend:
    name: str
    new_url: Callable[[], str] | None = None          # PostgreSQL: a fresh database per call
    urls: dict[Path, str] = field(default_factory=dict)

    def url(self, home: Path) -> str | None:
        """The database of the workspace at ``home`` (one per home, made on first use)."""
        if self.new_url is None:
            return None
        if home not in self.urls:
            self.urls[home] = self.new_url()
        return self.urls[home]

    def settings(self, home: Path, **overrides: Any) -> api.Settings:
        return api.Settings(home=home, db_url=self.url(home), **overrides)

    def engine(self, home: Path) -> sa.Engine:
        return make_engine(self.url(home) or f"sqlite:///{home / 'registry.db'}")


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request) -> Backend:
    if request.param == "sqlite":
        return Backend("sqlite")
    return Backend("postgresql", request.getfixturevalue("pg_database_url"))


@pytest.fixture
def open_ws(backend, tmp_path):
    """``open_ws(name="ws", **settings)``: an initialised workspace, closed after the test."""
    opened: list[Workspace] = []

    def make(name: str = "ws", **overrides: Any) -> Workspace:
        ws = api.init(backend.settings(tmp_path / name, **overrides))
        opened.append(ws)
        return ws

    yield make
    for ws in opened:
        ws.close()


def copy_tree(src, dst: Path) -> Path:
    """Copy a (resources) directory tree of samples; returns ``dst``."""
    dst.mkdir(parents=True, exist_ok=True)
    for item in src.iterdir():
        if item.is_dir():
            copy_tree(item, dst / item.name)
        else:
            (dst / item.name).write_bytes(item.read_bytes())
    return dst


def table_rows(engine: sa.Engine, names: tuple[str, ...]) -> dict[str, list]:
    with engine.connect() as conn:
        return {n: sorted(tuple(r) for r in conn.execute(sa.select(t.metadata.tables[n]))) for n in names}


def strip_times(obj: Any) -> Any:
    """A bundle without the ledger's wall-clock times (the only part that differs run to run)."""
    if isinstance(obj, dict):
        return {k: strip_times(v) for k, v in obj.items() if k != "time"}
    if isinstance(obj, list):
        return [strip_times(v) for v in obj]
    return obj


# --- the registry layer's contract, on PostgreSQL ----------------------------------------------

class TestPostgresRegistry(RegistryContract):
    """Every check of tests/test_storage_registry.py (SQLite runs them there)."""

    @pytest.fixture
    def engine(self, pg_database_url):
        engine = make_engine(pg_database_url())
        yield engine
        engine.dispose()


# --- migrations -------------------------------------------------------------------------------

def test_init_migrates_from_empty_and_again_is_a_no_op(backend, tmp_path):
    home = tmp_path / "ws"
    with api.init(backend.settings(home)) as ws:
        names = set(sa.inspect(ws.engine).get_table_names())
        assert set(TABLES) | set(LEDGER_TABLES) | {"alembic_version"} <= names
        ws.register([SAMPLES.joinpath("registered/en_soil.txt")], owner="Ann", license="CC0-1.0")
        before = table_rows(ws.engine, TABLES + LEDGER_TABLES)
    for _ in range(2):            # init and open migrate again: nothing changes
        with api.init(backend.settings(home)) as ws:
            pass
        with api.open_workspace(backend.settings(home)) as ws:
            assert table_rows(ws.engine, TABLES + LEDGER_TABLES) == before
            with ws.engine.connect() as conn:
                assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all() == [HEAD]


# --- register and check -------------------------------------------------------------------------

def register_and_check(ws: Workspace, src: Path, suspects: Path) -> dict:
    """Register the text samples (one work per file) and a code work, check the
    suspects; the bundle, without wall-clock times."""
    out = ws.register([src / "text"], owner="Ann Writer", license="CC-BY-4.0", each=True)
    code = ws.register([src / "code"], owner="Bo Coder", license="MIT", title="stats")
    assert out.errors == [] and code.errors == [] and len(out.works) == 4 and len(code.works) == 1
    return strip_times(ws.check([suspects]).bundle())


@pytest.fixture
def corpus(tmp_path) -> tuple[Path, Path]:
    """(registered sources: text/ and code/, suspects): copies, so paths match across backends."""
    src = tmp_path / "src"
    copy_tree(SAMPLES.joinpath("registered"), src / "text")
    for lang, name in (("python", "stats.py"), ("java", "Stats.java")):
        (src / "code").mkdir(parents=True, exist_ok=True)
        (src / "code" / name).write_bytes((CODE_SAMPLES / lang / name).read_bytes())
    suspects = copy_tree(SAMPLES.joinpath("suspects"), tmp_path / "suspects")
    py = (CODE_SAMPLES / "python" / "stats.py").read_text(encoding="utf-8")
    (suspects / "copied_stats.py").write_text("# copied\n" + py.replace("\n\n\n", "\n\n"), encoding="utf-8")
    return src, suspects


def test_register_and_check_finds_the_samples(open_ws, corpus):
    src, suspects = corpus
    ws = open_ws()
    bundle = register_and_check(ws, src, suspects)
    found = {(Path(m["query"]["path"]).name, Path(m["registered"]["path"]).name) for m in bundle["matches"]}
    expected = {(Path(r["suspect"]).name, Path(r["source"]).name)
                for r in (dict(zip(("suspect", "source", "expected"), ln.split("\t")[:3]))
                          for ln in SAMPLES.joinpath("MANIFEST.tsv").read_text(encoding="utf-8").splitlines()[1:])
                if r["expected"] == "copy"}
    assert expected <= found
    assert ("copied_stats.py", "stats.py") in found
    assert not {q for q, _ in found} & {"innocent_en.txt", "innocent_zh.txt"}
    by_id = {w.work_id: w for w in ws.works()}
    assert len(by_id) == 5 and all(m["registered"]["work_id"] in by_id for m in bundle["matches"])


def test_both_backends_give_identical_results(tmp_path, corpus, pg_database_url):
    src, suspects = corpus
    bundles = []
    for backend in (Backend("sqlite"), Backend("postgresql", pg_database_url)):
        with api.init(backend.settings(tmp_path / backend.name)) as ws:
            bundles.append(canonical_bytes(register_and_check(ws, src, suspects)))
    assert bundles[0] == bundles[1]
    assert b'"matches":[{' in bundles[0]


def test_artifacts_are_shared_across_batches_and_calls(open_ws, tmp_path):
    ws = open_ws(batch_size=1)
    d = tmp_path / "docs"
    d.mkdir()
    for i in range(3):
        (d / f"doc{i}.txt").write_text(synthetic_text(i), encoding="utf-8")
    (d / "doc0-again.txt").write_bytes((d / "doc0.txt").read_bytes())     # same bytes, later batch
    first = ws.register([d], owner="Ann", license="CC0-1.0", each=True)
    assert [w.new_artifacts for w in first.works] == [1, 0, 1, 1]          # doc0, doc0-again, doc1, doc2
    again = ws.register([d / "doc1.txt"], owner="Bo", license="CC0-1.0")
    assert again.works[0].new_artifacts == 0
    assert ws.stats()["text"] == {"artifacts": 3, "segments": 3}
    assert ws.registry.next_artifact_id() == 4
    shas = [hashlib.sha256((d / f"doc{i}.txt").read_bytes()).hexdigest() for i in range(3)]
    assert ws.registry.artifact_ids(shas) == {s: i + 1 for i, s in enumerate(shas)}
    found = ws.check([d / "doc1.txt"])
    assert sorted(m.work.owner for m in found.copies) == ["Ann", "Bo"]


def test_compact_swaps_the_segments_atomically(open_ws, tmp_path):
    ws = open_ws(batch_size=1)
    d = tmp_path / "docs"
    d.mkdir()
    for i in range(5):
        (d / f"doc{i}.txt").write_text(synthetic_text(100 + i), encoding="utf-8")
    ws.register([d], owner="Ann", license="CC0-1.0", each=True)
    before = ws.registry.live_segments("text")
    assert len(before) == 5
    assert ws.compact() == 5
    live = ws.registry.live_segments("text")
    assert len(live) == 1 and live[0] not in before
    assert {p.name for p in (ws.home / "index" / "text").glob("seg-*")} == set(live)
    assert ws.reader("text").n_docs == 5
    result = ws.check([d])
    assert sorted((Path(m.query_path).name, Path(m.registered_path).name) for m in result.copies) == \
        [(f"doc{i}.txt", f"doc{i}.txt") for i in range(5)]
    assert ws.collect_garbage() == {"segments": 0, "blobs": 0}
    assert ws.compact() == 0                                   # one segment: nothing to merge


def test_list_works_and_creation_records(open_ws, tmp_path):
    ws = open_ws()
    d = copy_tree(SAMPLES.joinpath("registered"), tmp_path / "docs")
    ws.register([d / "zh_tea.txt"], owner="Zoë", license="CC0-1.0", title="Tea ☕")
    ws.register([d / "en_soil.txt"], owner="ann", license="MIT", record=RECORD)
    ws.register([d], owner="Ann", license="CC-BY-4.0", title="All")
    works = ws.works()
    assert [(w.work_id, w.title, w.owner) for w in works] == [
        ("W0000001", "Tea ☕", "Zoë"), ("W0000002", "en_soil.txt", "ann"), ("W0000003", "All", "Ann")]
    assert [w.work_id for w in ws.works(limit=2)] == ["W0000001", "W0000002"]
    record, digest = ws.registry.work_record("W0000002")
    assert record == json.loads(RECORD.read_text(encoding="utf-8")) and len(digest) == 64
    assert ws.registry.work_record("W0000001") == (None, None)
    assert ws.registry.work_record("W9999999") == (None, None)
    assert ws.stats()["works"] == 3 and ws.registry.work_count() == 3


def test_paths_come_back_in_code_point_order(open_ws, tmp_path):
    """A collation (PostgreSQL's locale) must not order what SQLite orders by bytes."""
    ws = open_ws()
    d = tmp_path / "dir"
    d.mkdir()
    text = synthetic_text(7)
    for name in ("b.txt", "B.txt", "_a.txt", "a.txt"):           # one artifact at four paths
        (d / name).write_text(text, encoding="utf-8")
    (work_,) = ws.register([d], owner="Ann", license="CC0-1.0").works
    paths = [w.path for w in ws.registry.works_for_artifacts([1])[1]]
    assert [Path(p).name for p in paths] == ["B.txt", "_a.txt", "a.txt", "b.txt"]
    out = api.export_package(ws, work_.work_id, tmp_path / "evidence.zip")
    originals = [n for n in zipfile.ZipFile(out).namelist() if n.startswith("original/")]
    assert [Path(n).name for n in originals] == ["B.txt", "_a.txt", "a.txt", "b.txt"]


def test_global_codes_round_trip_as_bytes(backend, tmp_path):
    engine = backend.engine(tmp_path)
    try:
        migrate(engine)
        reg = SqlRegistry(engine)
        codes = {i: np.array([i, 2**64 - 1 - i], dtype="<u8") for i in (1, 2)}
        arts = [NewArtifact(sha(f"img{i}"), 10, "image/png", "image", None, codes[i].tobytes()) for i in (1, 2)]
        reg.commit_batch(arts + [art("plain")], [], [], {a.sha256: i for i, a in enumerate(arts + [art("plain")], 1)})
        ids, got = reg.global_codes("image", 2)
        assert ids.tolist() == [1, 2] and got.dtype == np.uint64
        assert got.tolist() == [codes[1].tolist(), codes[2].tolist()]
        assert reg.global_codes("image", 3)[1][:, 2].tolist() == [0, 0]      # wider: zero padded
        assert reg.artifact_shas("image") == [(1, sha("img1")), (2, sha("img2"))]
        assert reg.artifact_shas("audio") == []
    finally:
        engine.dispose()


# --- the ledger -------------------------------------------------------------------------------

def test_ledger_receipts_history_rotation_and_annotations(open_ws, tmp_path):
    ws = open_ws()
    d = copy_tree(SAMPLES.joinpath("registered"), tmp_path / "docs")
    out = ws.register([d / "en_soil.txt", d / "zh_tea.txt"], owner="Ann", license="CC0-1.0")
    soil, tea = (w.work_id for w in out.works)
    first = api.read_receipt(ws.home / "receipts" / f"{soil}.json")
    assert api.verify_receipt(first, data=(d / "en_soil.txt").read_bytes(), ws=ws)["index"] == 0

    draft = d / "draft.txt"
    draft.write_text("an early draft of the soil essay\n", encoding="utf-8")
    api.add_draft(ws, soil, draft, note="first draft")
    api.label_work(ws, soil, "ai-assisted")
    revoked = api.revoke_work(ws, tea, reason="registered by mistake")
    assert api.verify_receipt(revoked, ws=ws)["index"] == 4
    assert [body["kind"] for _, body in ws.ledger.history(soil)] == ["register", "draft", "label"]
    assert [i for i, _ in ws.ledger.history(soil)] == [0, 2, 3]
    assert [body["kind"] for _, body in ws.ledger.history(tea)] == ["register", "revoke"]

    old_origin = ws.ledger.latest().note.splitlines()[0]
    new_origin = api.rotate_keys(ws)
    assert new_origin != old_origin
    (later,) = ws.register([d / "en_lighthouse.md"], owner="Ann", license="CC0-1.0").works
    with ws.engine.connect() as conn:
        assert ws.ledger.log.size(conn, 1) == 5 and ws.ledger.log.size(conn, 2) == 1
    new = api.read_receipt(ws.home / "receipts" / f"{later.work_id}.json")
    assert api.verify_receipt(new, data=(d / "en_lighthouse.md").read_bytes(), ws=ws)["index"] == 0
    # An old receipt still verifies, with consistency up to its generation's newest checkpoint.
    assert api.verify_receipt(first, data=(d / "en_soil.txt").read_bytes(), ws=ws)["index"] == 0
    for receipt in api.receipts(ws, soil):
        api.verify_receipt(receipt, ws=ws)
    assert api.export_log(ws, tmp_path / "tiles")["tree_size"] == 1


def test_a_failed_batch_leaves_nothing_half_registered(open_ws, tmp_path, monkeypatch):
    ws = open_ws()
    d = copy_tree(SAMPLES.joinpath("registered"), tmp_path / "docs")
    ws.register([d / "en_soil.txt"], owner="Ann", license="CC0-1.0")
    tables = TABLES + LEDGER_TABLES
    before = table_rows(ws.engine, tables)
    segments = ws.registry.live_segments("text")
    real = ws.ledger.append_in

    def append_then_fail(conn, entries):  # noqa: ANN001 - the ledger rows are written, then it fails
        real(conn, entries)
        raise RuntimeError("simulated crash inside the registration transaction")

    monkeypatch.setattr(ws.ledger, "append_in", append_then_fail)
    with pytest.raises(RuntimeError, match="simulated crash"):
        ws.register([d / "zh_tea.txt", d / "en_lighthouse.md"], owner="Ann", license="CC0-1.0")
    monkeypatch.undo()
    assert table_rows(ws.engine, tables) == before
    assert ws.registry.live_segments("text") == segments
    assert ws.check([d / "zh_tea.txt"]).copies == []
    assert not (ws.home / "receipts" / "W0000002.json").exists()
    assert ws.collect_garbage() == {"segments": 1, "blobs": 2}     # the batch's files, never referenced
    out = ws.register([d / "zh_tea.txt"], owner="Ann", license="CC0-1.0")
    assert [w.work_id for w in out.works] == ["W0000002"] and ws.registry.next_artifact_id() == 3
    receipt = api.read_receipt(ws.home / "receipts" / "W0000002.json")
    assert api.verify_receipt(receipt, data=(d / "zh_tea.txt").read_bytes(), ws=ws)["index"] == 1


# --- concurrency --------------------------------------------------------------------------------

def test_readers_see_whole_batches_while_a_writer_registers(backend, tmp_path):
    """Readers in other threads (own engines) never see a work without its ledger
    entry, its artifacts or its index segment, and counts never go backwards."""
    d = tmp_path / "docs"
    d.mkdir()
    n = 10
    for i in range(n):
        (d / f"doc{i:02d}.txt").write_text(synthetic_text(300 + i), encoding="utf-8")
    home = tmp_path / "ws"
    api.init(backend.settings(home)).close()
    writer = Workspace(backend.settings(home, batch_size=1))
    readers = [Workspace(backend.settings(home)) for _ in range(2)]
    done = threading.Event()
    failures: list[BaseException] = []
    rounds = [0] * len(readers)

    def read(k: int, ws: Workspace) -> None:
        seen = 0
        try:
            while True:
                finished = done.is_set()
                works = ws.works()
                assert len(works) >= seen
                seen = len(works)
                for w in works:
                    assert [b["kind"] for _, b in ws.ledger.history(w.work_id)] == ["register"]
                found = {m.work.work_id for m in ws.check([d / Path(w.path).name for w in works]).copies}
                assert found >= {w.work_id for w in works}
                rounds[k] += 1
                if finished:
                    return
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            failures.append(exc)

    threads = [threading.Thread(target=read, args=(k, ws)) for k, ws in enumerate(readers)]
    for th in threads:
        th.start()
    try:
        out = writer.register([d], owner="Ann", license="CC0-1.0", each=True)
    finally:
        done.set()
        for th in threads:
            th.join()
        for ws in (writer, *readers):
            ws.close()
    assert not failures, failures[0]
    assert len(out.works) == n and all(r >= 1 for r in rounds)


# --- the CLI ------------------------------------------------------------------------------------

def test_cli_with_db(cli, backend, home, samples):
    db = ["--db", backend.url(home)] if backend.name == "postgresql" else []
    rc, _, err = cli(*db, "init")
    assert rc == 0, err
    rc, out, err = cli(*db, "register", samples / "registered", "--each", "--owner", "Ann", "--license", "CC0-1.0")
    assert rc == 0 and len(out.splitlines()) == 4, err
    rc, out, err = cli(*db, "check", samples / "suspects" / "en_light_edit.txt", "--format", "tsv")
    assert rc == 1 and "en_soil.txt" in out, err
    assert (home / "registry.db").exists() == (backend.name == "sqlite")


@pytest.mark.parametrize("url, message", [
    ("postgresql://nobody@127.0.0.1:1/none", "cannot reach the registry database postgresql://nobody@127.0.0.1:1/none"),
    ("mysql://nobody@127.0.0.1/none", "unsupported registry database 'mysql'"),
    ("postgresql://:::", "malformed"),
])
def test_cli_bad_db_is_one_error_line(cli, home, url, message):
    rc, _, err = cli("--db", url, "init")
    assert rc == 3
    (line,) = assert_clean_failure(err, want="error")
    assert message in line


# --- PostgreSQL only: URLs, driver, schemas ---------------------------------------------------------

@pytest.mark.parametrize("url, message", [
    ("not a url", "malformed"),
    ("postgresql://u@h:notaport/db", "malformed"),
    ("mysql://u@h/db", "unsupported registry database 'mysql'"),
    ("postgresql+psycopg2://u@h/db", "unsupported registry database 'postgresql+psycopg2'"),
])
def test_bad_urls_are_storage_errors(url, message):
    with pytest.raises(StorageError, match=re.escape(message)):
        make_engine(url)


def test_unreachable_server_hides_the_password():
    with pytest.raises(StorageError, match="cannot reach") as exc:
        make_engine("postgresql://ann:s3cret@127.0.0.1:1/db?password=s3cret")
    assert "s3cret" not in str(exc.value) and "\n" not in str(exc.value)


def test_schema_needs_postgresql_and_a_plain_name(tmp_path, postgres_server):
    with pytest.raises(UsageError, match="needs PostgreSQL"):
        make_engine(f"sqlite:///{tmp_path / 'r.db'}", schema="tenant_a")
    for bad in ("Tenant", "1abc", "a-b", 'x"; DROP SCHEMA public; --', "pg_catalog", "a" * 64, ""):
        with pytest.raises(UsageError, match="schema name"):
            make_engine(postgres_server.url(), schema=bad)


def test_postgres_urls_use_psycopg_3(postgres_server):
    for url in (postgres_server.url(), postgres_server.url().replace("postgresql://", "postgres://"),
                postgres_server.url().replace("postgresql://", "postgresql+psycopg://")):
        engine = make_engine(url)
        try:
            assert engine.dialect.driver == "psycopg"
            with engine.connect() as conn:
                assert conn.execute(sa.text("SELECT 1")).scalar() == 1
        finally:
            engine.dispose()


def test_schemas_in_one_database_are_isolated(pg_schema_url, tmp_path):
    (url, a), (url_b, b) = pg_schema_url(), pg_schema_url()
    assert url == url_b and a != b
    d = copy_tree(SAMPLES.joinpath("registered"), tmp_path / "docs")
    ws_a = api.init(api.Settings(home=tmp_path / "a", db_url=url, db_schema=a))
    ws_b = api.init(api.Settings(home=tmp_path / "b", db_url=url, db_schema=b))
    try:
        assert ws_a.engine.dialect.default_schema_name == a
        (wa,) = ws_a.register([d / "en_soil.txt"], owner="Ann", license="CC0-1.0").works
        assert ws_b.works() == [] and ws_b.stats()["text"]["artifacts"] == 0
        assert ws_b.check([d / "en_soil.txt"]).copies == []
        (wb,) = ws_b.register([d / "zh_tea.txt"], owner="Bo", license="CC0-1.0").works
        assert wa.work_id == wb.work_id == "W0000001"         # each tenant numbers its own works
        assert [w.title for w in ws_a.works()] == ["en_soil.txt"]
        assert [w.title for w in ws_b.works()] == ["zh_tea.txt"]
        assert [m.work.owner for m in ws_a.check([d / "en_soil.txt"]).copies] == ["Ann"]
        with ws_a.engine.connect() as conn:
            assert ws_a.ledger.log.size(conn) == 1
        receipt = api.read_receipt(ws_b.home / "receipts" / "W0000001.json")
        api.verify_receipt(receipt, data=(d / "zh_tea.txt").read_bytes(), ws=ws_b)
    finally:
        ws_a.close()
        ws_b.close()
    engine = make_engine(url)
    try:
        inspector = sa.inspect(engine)
        for schema in (a, b):
            assert set(TABLES) | set(LEDGER_TABLES) <= set(inspector.get_table_names(schema=schema))
        assert inspector.get_table_names(schema="public") == []
    finally:
        engine.dispose()
    # Reopened with the same schema, a tenant finds its registry again.
    with api.open_workspace(api.Settings(home=tmp_path / "a", db_url=url, db_schema=a)) as again:
        assert [w.title for w in again.works()] == ["en_soil.txt"]


def test_postgres_refuses_what_sqlite_stores_as_input_error(pg_database_url, tmp_path):
    """A NUL character cannot be stored in PostgreSQL text: the batch is refused
    as input, and nothing is left behind."""
    with api.init(api.Settings(home=tmp_path / "ws", db_url=pg_database_url())) as ws:
        before = table_rows(ws.engine, TABLES + LEDGER_TABLES)
        with pytest.raises(InputError, match="refused this batch"):
            ws.register([SAMPLES.joinpath("registered/en_soil.txt")], owner="Ann", license="CC0-1.0",
                        title="bad\x00title")
        assert table_rows(ws.engine, TABLES + LEDGER_TABLES) == before


def test_sequences_follow_the_ids_copyscope_chooses(pg_database_url):
    engine = make_engine(pg_database_url())
    try:
        migrate(engine)
        reg = SqlRegistry(engine)
        reg.commit_batch([art("a"), art("b")], [work("A", ("a.txt", sha("a")))], [], {sha("a"): 1, sha("b"): 2})
        with engine.begin() as conn:         # a plain insert (another tool) takes the next free id
            new_id = conn.execute(sa.insert(t.artifacts).values(
                sha256=sha("c"), size=1, media_type="text/plain", modality="text", created_at="x")
                .returning(t.artifacts.c.id)).scalar_one()
        assert new_id == 3 and reg.next_artifact_id() == 4
    finally:
        engine.dispose()
