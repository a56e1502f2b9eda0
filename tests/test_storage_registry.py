"""The registry storage contract, run against SQLite.

``RegistryContract`` holds every check; a backend subclasses it and provides
``make_engine(tmp_path)`` returning a fresh, empty database. A PostgreSQL
backend later only needs::

    class TestPostgresRegistry(RegistryContract):
        def make_engine(self, tmp_path):
            return make_engine(create_scratch_database())     # e.g. from $COPYSCOPE_TEST_PG
"""
from __future__ import annotations

import hashlib

import pytest
import sqlalchemy as sa

from copyscope import __version__
from copyscope.errors import StorageError, WorkspaceError
from copyscope.model import WorkInfo
from copyscope.storage import schema as t
from copyscope.storage.registry import HEAD, NewArtifact, NewWork, SqlRegistry, make_engine, migrate

TABLES = ("meta", "artifacts", "works", "work_artifacts", "index_segments")


def sha(tag: str) -> str:
    return hashlib.sha256(tag.encode()).hexdigest()


def art(tag: str) -> NewArtifact:
    return NewArtifact(sha(tag), size=len(tag), media_type="text/plain", modality="text", encoding="utf-8")


def work(title: str, *files: tuple[str, str], kind: str = "file", record=None) -> NewWork:
    return NewWork(title, "Ann Owner", "CC-BY-4.0", kind, files[0][0] if files else title,
                   list(files), record, None if record is None else sha(repr(record)))


def snapshot(engine: sa.Engine) -> dict[str, list]:
    with engine.connect() as conn:
        return {name: sorted(tuple(r) for r in conn.execute(sa.select(t.metadata.tables[name])))
                for name in TABLES}


class RegistryContract:
    """Inherit as ``class TestXRegistry(RegistryContract)`` and define ``make_engine``."""

    def make_engine(self, tmp_path) -> sa.Engine:  # noqa: ANN001
        raise NotImplementedError

    @pytest.fixture
    def engine(self, tmp_path):
        engine = self.make_engine(tmp_path)
        yield engine
        engine.dispose()

    @pytest.fixture
    def registry(self, engine) -> SqlRegistry:
        migrate(engine)
        return SqlRegistry(engine)

    def _seed(self, registry: SqlRegistry) -> list[str]:
        """Two artifacts, two works (one a directory sharing an artifact), one segment."""
        return registry.commit_batch(
            [art("a"), art("b")],
            [work("Alpha", ("a.txt", sha("a"))),
             work("Dir", ("d/a.txt", sha("a")), ("d/b.txt", sha("b")), kind="directory", record={"x": 1})],
            [("text", "seg-one.csx", 2, 30)],
            {sha("a"): 1, sha("b"): 2})

    # -- migrations ---------------------------------------------------------------------
    def test_migrate_creates_schema_at_head(self, engine):
        migrate(engine)
        names = set(sa.inspect(engine).get_table_names())
        assert set(TABLES) | {"alembic_version"} <= names
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all() == [HEAD]
            assert conn.execute(sa.select(t.meta.c.value).where(t.meta.c.key == "tool_version")).scalar_one() \
                == __version__

    def test_migrate_is_idempotent_and_keeps_data(self, registry, engine):
        self._seed(registry)
        before = snapshot(engine)
        migrate(engine)
        migrate(engine)
        assert snapshot(engine) == before
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
            assert conn.execute(sa.select(sa.func.count()).select_from(t.meta)).scalar_one() == 1

    def test_newer_alembic_revision_is_refused(self, registry, engine):
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
        with pytest.raises(WorkspaceError, match="newer copyscope") as exc:
            migrate(engine)
        assert not isinstance(exc.value, StorageError) and exc.value.exit_code == 3
        assert exc.value.hint == "upgrade copyscope"
        with engine.connect() as conn:       # refused without touching the stamp
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one() \
                == "9999_from_the_future"

    def test_unknown_revision_on_an_otherwise_empty_database_is_refused(self, engine):
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)"))
            conn.execute(sa.text("INSERT INTO alembic_version VALUES ('0002_not_yet_written')"))
        with pytest.raises(WorkspaceError):
            migrate(engine)
        assert "artifacts" not in sa.inspect(engine).get_table_names()

    # -- reads on an empty registry ------------------------------------------------------------
    def test_empty_registry(self, registry):
        assert registry.next_artifact_id() == 1
        assert registry.list_works() == [] and registry.work_count() == 0
        assert registry.live_segments("text") == [] and registry.all_segment_names() == set()
        assert registry.artifact_ids([sha("a")]) == {} and registry.artifact_sha256([1]) == {}
        assert registry.works_for_artifacts([]) == {} and registry.referenced_blobs() == set()
        assert registry.artifact_count("text") == 0

    # -- the write path ------------------------------------------------------------------------
    def test_commit_batch_inserts_artifacts_works_links_and_segments(self, registry, engine):
        ids = self._seed(registry)
        assert ids == ["W0000001", "W0000002"]
        assert registry.artifact_ids([sha("a"), sha("b"), sha("zzz")]) == {sha("a"): 1, sha("b"): 2}
        assert registry.artifact_sha256([2, 1, 99]) == {1: sha("a"), 2: sha("b")}
        assert registry.artifact_count("text") == 2 and registry.artifact_count("image") == 0
        assert registry.referenced_blobs() == {sha("a"), sha("b")}
        assert registry.next_artifact_id() == 3
        assert registry.live_segments("text") == ["seg-one.csx"] and registry.live_segments("image") == []
        assert registry.work_count() == 2
        snap = snapshot(engine)
        assert sorted((r[1], r[2]) for r in snap["work_artifacts"]) == [(1, "a.txt"), (1, "d/a.txt"), (2, "d/b.txt")]
        seg = snap["index_segments"][0]
        assert seg[1:5] == ("text", "seg-one.csx", 2, 30)
        with engine.connect() as conn:
            row = conn.execute(sa.select(t.works).where(t.works.c.work_id == "W0000002")).one()
        assert (row.kind, row.record_json, row.owner) == ("directory", '{"x": 1}', "Ann Owner")

    def test_commit_batch_reusing_known_artifacts_adds_only_works(self, registry):
        self._seed(registry)
        ids = registry.commit_batch([], [work("Again", ("again.txt", sha("a")))], [], {})
        assert ids == ["W0000003"]
        assert registry.next_artifact_id() == 3 and registry.live_segments("text") == ["seg-one.csx"]

    @pytest.mark.parametrize("failure", [
        "planned_id_already_taken", "sha256_already_registered", "segment_name_reused",
        "work_references_unknown_artifact",
    ])
    def test_commit_batch_is_atomic(self, registry, engine, failure):
        self._seed(registry)
        before = snapshot(engine)
        arts = [art("c"), art("d")]
        planned = {sha("c"): 3, sha("d"): 4}
        segs = [("text", "seg-two.csx", 2, 10)]
        works = [work("Gamma", ("c.txt", sha("c"))), work("Delta", ("d.txt", sha("d")))]
        expected: tuple[type[BaseException], ...] = (sa.exc.IntegrityError, StorageError)
        if failure == "planned_id_already_taken":
            planned[sha("d")] = 2                      # second insert collides, the first already ran
        elif failure == "sha256_already_registered":
            arts.append(art("a"))
            planned[sha("a")] = 5
        elif failure == "segment_name_reused":
            segs.append(("text", "seg-one.csx", 1, 1))  # after every artifact insert
        else:
            works.append(work("Broken", ("x.txt", sha("never registered"))))   # after works rows
            expected = (KeyError, StorageError)
        with pytest.raises(expected):
            registry.commit_batch(arts, works, segs, planned)
        assert snapshot(engine) == before
        assert registry.next_artifact_id() == 3
        assert registry.live_segments("text") == ["seg-one.csx"]
        # The registry is still writable and work ids continue without a visible hole in order.
        ids = registry.commit_batch([art("c")], [work("Gamma", ("c.txt", sha("c")))], [], {sha("c"): 3})
        assert len(ids) == 1 and ids[0] > "W0000002"

    def test_works_for_artifacts(self, registry):
        self._seed(registry)
        got = registry.works_for_artifacts([1, 2, 1, 42])
        assert got == {
            1: [WorkInfo("W0000001", "Alpha", "Ann Owner", "CC-BY-4.0", "a.txt"),
                WorkInfo("W0000002", "Dir", "Ann Owner", "CC-BY-4.0", "d/a.txt")],
            2: [WorkInfo("W0000002", "Dir", "Ann Owner", "CC-BY-4.0", "d/b.txt")],
        }

    def test_works_for_many_artifacts_crosses_the_500_chunk(self, registry):
        n = 1203
        arts = [art(f"n{i}") for i in range(n)]
        planned = {a.sha256: i + 1 for i, a in enumerate(arts)}
        registry.commit_batch(arts, [work("Big", *[(f"f{i}.txt", a.sha256) for i, a in enumerate(arts)],
                                          kind="directory")], [], planned)
        got = registry.works_for_artifacts(list(range(1, n + 1)))
        assert len(got) == n and all(len(v) == 1 for v in got.values())
        assert len(registry.artifact_ids([a.sha256 for a in arts])) == n
        assert len(registry.artifact_sha256(list(range(1, n + 1)))) == n

    def test_list_works_order_and_limit(self, registry):
        self._seed(registry)
        registry.commit_batch([], [work("Zed", ("z.txt", sha("b")))], [], {})
        registry.commit_batch([], [work("Aardvark", ("aa.txt", sha("a")))], [], {})
        got = registry.list_works()
        assert [w.work_id for w in got] == ["W0000001", "W0000002", "W0000003", "W0000004"]
        assert [w.title for w in got] == ["Alpha", "Dir", "Zed", "Aardvark"]     # registration order, not title
        assert got[1].path == "d/a.txt"                                          # root_path of the work
        assert [w.work_id for w in registry.list_works(limit=2)] == ["W0000001", "W0000002"]

    def test_swap_segments(self, registry):
        for i in range(3):
            registry.commit_batch([art(f"s{i}")], [], [("text", f"seg-{i}.csx", 1, 5)], {sha(f"s{i}"): i + 1})
        registry.commit_batch([art("img")], [], [("image", "seg-img.csx", 1, 5)], {sha("img"): 4})
        registry.swap_segments("text", ["seg-0.csx", "seg-1.csx"], "seg-merged.csx", 2, 10)
        assert registry.live_segments("text") == ["seg-2.csx", "seg-merged.csx"]
        assert registry.live_segments("image") == ["seg-img.csx"]
        assert registry.all_segment_names() == {"seg-2.csx", "seg-merged.csx", "seg-img.csx"}


class TestSqliteRegistry(RegistryContract):
    def make_engine(self, tmp_path) -> sa.Engine:  # noqa: ANN001
        return make_engine(f"sqlite:///{tmp_path / 'registry.db'}")

    def test_sqlite_pragmas(self, engine):
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2      # FULL

    def test_damaged_database_file_is_a_storage_error(self, tmp_path):
        path = tmp_path / "registry.db"
        path.write_bytes(b"this is not an SQLite database" * 100)
        engine = make_engine(f"sqlite:///{path}")
        try:
            with pytest.raises(StorageError, match="unreadable"):
                SqlRegistry(engine).list_works()
        finally:
            engine.dispose()
