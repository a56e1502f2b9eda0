"""``compare --all-pairs`` / ``--pairs`` fingerprint their files in forked workers:
the scores and errors are those of a single-process run, whatever a worker does."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from copyscope import api, comparing, fingerprint_pool
from copyscope.settings import Settings

pytestmark = pytest.mark.skipif(not fingerprint_pool.can_fork(), reason="forked workers are used on Linux only")

N_FILES = fingerprint_pool.MIN_FILES + 12


def _corpus(root: Path) -> Path:
    """N_FILES small Java programs, a few of them copies, plus two files no modality reads."""
    root.mkdir()
    for i in range(N_FILES):
        family = i % 9      # files of one family share their body, under other names
        body = "\n".join(f"        total{family} += values[{k}] * {family + k};" for k in range(family + 3))
        (root / f"p{i:03d}.java").write_text(
            f"class C{i} {{\n    static int f{family}(int[] values) {{\n        int total{family} = {i % 4};\n"
            f"{body}\n        return total{family};\n    }}\n}}\n")
    (root / "junk.c").write_bytes(bytes(range(256)) * 40)           # binary named .c
    (root / "empty.java").write_bytes(b"")
    return root


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return _corpus(tmp_path_factory.mktemp("pool") / "src")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    settings = Settings(home=tmp_path_factory.mktemp("home"))
    return settings, api.load_modalities(settings)


def test_forked_fingerprints_give_the_single_process_scores_and_errors(corpus, setup):
    settings, modalities = setup
    one, errors_one = api.compare_all([corpus], settings, modalities, jobs=1)
    two, errors_two = api.compare_all([corpus], settings, modalities, jobs=2)
    assert [(s.a, s.b, s.score) for s in two] == [(s.a, s.b, s.score) for s in one]
    assert errors_two == errors_one
    assert any("junk.c" in k for k in errors_one)
    assert max(s.score for s in one) > 0.9          # the families are found, not an all-zero run


def test_listed_pairs_use_the_workers_too(corpus, setup):
    settings, modalities = setup
    files = sorted(str(p) for p in corpus.glob("p*.java"))
    pairs = list(zip(files, files[1:] + files[:1]))
    one, _ = api.compare_pairs(pairs, settings, modalities, jobs=1)
    two, _ = api.compare_pairs(pairs, settings, modalities, jobs=2)
    assert [(s.a, s.b, s.score) for s in two] == [(s.a, s.b, s.score) for s in one]


@pytest.mark.parametrize("death", ["killed", "unpicklable"])
def test_work_of_a_child_that_fails_is_done_by_the_parent(corpus, setup, monkeypatch, death):
    settings, modalities = setup
    parent = os.getpid()
    real = fingerprint_pool._fingerprint_stripe

    def failing(docs, paths):
        if os.getpid() != parent:
            if death == "killed":
                os._exit(9)                                 # as by the OOM killer
            return b"not a pickle"
        return real(docs, paths)

    monkeypatch.setattr(fingerprint_pool, "_fingerprint_stripe", failing)
    redone: list[str] = []
    real_get = comparing._Docs.get

    def get(self, path):
        if os.getpid() == parent:
            redone.append(path)
        return real_get(self, path)

    monkeypatch.setattr(comparing._Docs, "get", get)
    survived, errors = api.compare_all([corpus], settings, modalities, jobs=2)
    monkeypatch.undo()
    assert len(redone) == N_FILES + 2                       # the parent read the child's stripe too
    one, errors_one = api.compare_all([corpus], settings, modalities, jobs=1)
    assert [(s.a, s.b, s.score) for s in survived] == [(s.a, s.b, s.score) for s in one]
    assert errors == errors_one


def _children() -> set[str]:
    """This process's children, zombies included (other tests may have their own)."""
    return {pid for task in Path("/proc/self/task").iterdir()
            for pid in (task / "children").read_text().split()}


def test_no_child_is_left_behind(corpus, setup):
    settings, modalities = setup
    before = _children()
    api.compare_all([corpus], settings, modalities, jobs=2)
    assert _children() <= before                            # every child was reaped


def test_small_runs_stay_in_one_process(tmp_path, setup, monkeypatch):
    settings, modalities = setup
    for i in range(3):
        (tmp_path / f"f{i}.py").write_text(f"def f{i}(x):\n    return x * {i} + 1\n")
    monkeypatch.setattr(fingerprint_pool, "_fork_stripe", None)     # would fail if used
    scores, errors = api.compare_all([tmp_path], settings, modalities, jobs=2)
    assert len(scores) == 3 and not errors


def test_cli_jobs_flag(cli, corpus):
    code_one, out_one, _ = cli("compare", "-j", "1", "--all-pairs", corpus, "--format", "tsv")
    code_two, out_two, err = cli("compare", "-j", "2", "--all-pairs", corpus, "--format", "tsv")
    assert code_one == code_two == 2                    # junk.c is reported: exit 2
    assert "junk.c" in err
    assert out_two == out_one and len(out_one.splitlines()) == (N_FILES + 2) * (N_FILES + 1) // 2    # with junk.c, empty.java


def test_an_interrupted_run_ends_and_reaps_its_children(corpus, setup, monkeypatch):
    settings, modalities = setup
    before = _children()

    def interrupted(docs, paths, progress):
        raise KeyboardInterrupt             # Ctrl-C while the parent reads its own stripe

    monkeypatch.setattr(fingerprint_pool, "_fingerprint_here", interrupted)
    with pytest.raises(KeyboardInterrupt):
        api.compare_all([corpus], settings, modalities, jobs=2)
    assert _children() <= before
