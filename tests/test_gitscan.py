"""Git-history scanning (copyscope.gitscan) on real temporary repositories."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from copyscope import api, gitscan
from copyscope.errors import InputError, LimitError
from copyscope.gitscan import HistoricalFile, SkippedBlob, check_history, iter_history

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "src" / "copyscope" / "samples" / "text"
SOIL = (SAMPLES / "registered" / "en_soil.txt").read_bytes()
TEA = (SAMPLES / "registered" / "zh_tea.txt").read_bytes()
STATS_JAVA = (ROOT / "tests" / "code_samples" / "java" / "Stats.java").read_bytes()
INNOCENT = (SAMPLES / "suspects" / "innocent_en.txt").read_bytes()
MiB = 1024 * 1024


@pytest.fixture(autouse=True)
def quiet_git(tmp_path_factory, monkeypatch):
    """No user/system git config in the scanner's git either (deterministic runs)."""
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("HOME", str(tmp_path_factory.mktemp("git-home")))


class Repo:
    """A throw-away repository driven by the real git binary."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.n = 0
        subprocess.run(["git", "-c", "init.defaultBranch=main", "init", "-q", str(path)],
                       check=True, env=self.env())

    def env(self) -> dict[str, str]:
        date = f"2024-01-{1 + self.n % 28:02d}T12:00:{self.n // 28 % 60:02d}+00:00"
        return {**os.environ, "GIT_AUTHOR_NAME": "Ann Author", "GIT_AUTHOR_EMAIL": "ann@example.org",
                "GIT_COMMITTER_NAME": "Cy Committer", "GIT_COMMITTER_EMAIL": "cy@example.org",
                "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date,
                "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}

    def git(self, *args: str, input: bytes | None = None) -> str:
        out = subprocess.run(["git", "-C", str(self.path), *args], check=True, capture_output=True,
                             input=input, env=self.env())
        return out.stdout.decode().strip()

    def commit(self, files: dict[str, bytes] | None = None, delete: tuple[str, ...] = (),
               message: str = "change") -> str:
        for name, data in (files or {}).items():
            p = self.path / name
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
        for name in delete:
            self.git("rm", "-q", "--", name)
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        self.n += 1
        return self.git("rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path) -> Repo:
    return Repo(tmp_path / "repo")


@pytest.fixture
def ws(tmp_path):
    w = api.init(api.Settings(home=tmp_path / "ws"))
    out = w.register([SAMPLES / "registered" / "en_soil.txt", SAMPLES / "registered" / "zh_tea.txt"],
                     owner="o", license="x", each=True)
    assert not out.errors and len(out.works) == 2
    yield w
    w.close()


def history(repo: Repo, rev_range: str | None = None, **kw) -> list[HistoricalFile]:
    kw.setdefault("max_file_bytes", 64 * MiB)
    return list(iter_history(repo.path, rev_range, **kw))


# -- the use case: copied, then deleted --------------------------------------------------
def test_copied_then_deleted_text_is_found_and_names_its_commit(repo, ws):
    c1 = repo.commit({"README.md": INNOCENT}, message="start")
    c2 = repo.commit({"docs/garden notes.txt": SOIL}, message="copy")
    c3 = repo.commit(delete=("docs/garden notes.txt",), message="delete")
    assert not (repo.path / "docs" / "garden notes.txt").exists()
    assert ws.check([str(repo.path)]).copies == []          # today's tree is clean

    result = check_history(ws, repo.path)
    assert result.operation == "check" and result.parameters == ws.parameters()
    assert result.errors == []
    assert len(result.copies) == 1
    m = result.copies[0]
    assert m.extra["commit"] == c2 and c2 not in (c1, c3)
    assert m.extra["path"] == "docs/garden notes.txt"
    assert m.extra["author"] == "Ann Author <ann@example.org>"
    assert m.extra["commit_time"] == "2024-01-02T12:00:00+00:00"
    assert m.query_path == f"{c2[:12]}:docs/garden notes.txt"
    assert m.work is not None and m.work.title == "en_soil.txt"
    queries = {i.path for i in result.inputs if i.role == "query"}
    assert queries == {f"{c1[:12]}:README.md", f"{c2[:12]}:docs/garden notes.txt"}
    bundle = result.bundle()                                 # serialisable, commit in the query path
    assert bundle["matches"][0]["query"]["path"].startswith(c2[:12])
    assert {i["role"] for i in bundle["inputs"]} == {"query", "registered"}
    api.canonical_bytes(bundle)


def test_copied_code_in_history_is_found(repo, tmp_path):
    w = api.init(api.Settings(home=tmp_path / "ws-code"))
    (tmp_path / "Stats.java").write_bytes(STATS_JAVA)
    assert not w.register([tmp_path / "Stats.java"], owner="o", license="x").errors
    repo.commit({"src/Main.java": b"public class Main { public static void main(String[] a) {} }\n"})
    copied = STATS_JAVA.replace(b"class Stats", b"class Numbers")
    c2 = repo.commit({"src/Numbers.java": copied})
    repo.commit(delete=("src/Numbers.java",))
    result = check_history(w, repo.path)
    w.close()
    assert [m.extra["commit"] for m in result.copies] == [c2]
    assert result.copies[0].modality == "code"
    assert result.copies[0].extra["path"] == "src/Numbers.java"


def test_extra_keeps_the_plugins_own_keys(repo, tmp_path):
    w = api.init(api.Settings(home=tmp_path / "ws-code"))
    (tmp_path / "Stats.java").write_bytes(STATS_JAVA)
    w.register([tmp_path / "Stats.java"], owner="o", license="x")
    repo.commit({"Stats.java": STATS_JAVA})
    (m,) = check_history(w, repo.path).copies
    w.close()
    assert "language" in m.extra and "commit" in m.extra


# -- attribution and dedup ------------------------------------------------------------
def test_a_renamed_file_is_reported_once_for_the_commit_that_added_it(repo, ws):
    c1 = repo.commit({"a/copy.txt": SOIL})
    (repo.path / "b").mkdir()
    repo.git("mv", "a/copy.txt", "b/renamed.txt")
    repo.commit()
    repo.commit({"c/again.txt": SOIL})                      # a second copy of the same bytes
    files = history(repo)
    assert [(f.commit, f.path) for f in files] == [(c1, "a/copy.txt")]
    result = check_history(ws, repo.path)
    assert [(m.extra["commit"], m.extra["path"]) for m in result.copies] == [(c1, "a/copy.txt")]
    assert len([i for i in result.inputs if i.role == "query"]) == 1


def test_every_version_of_a_file_is_yielded_oldest_first(repo):
    c1 = repo.commit({"f.txt": b"version one of the file\n"})
    c2 = repo.commit({"f.txt": b"version two of the file\n"})
    c3 = repo.commit({"f.txt": b"version one of the file\n"})          # a revert: seen already
    c4 = repo.commit({"f.txt": b"version three\n", "g.txt": b"other\n"})
    got = history(repo)
    assert [(f.commit, f.path, f.data) for f in got] == [
        (c1, "f.txt", b"version one of the file\n"),
        (c2, "f.txt", b"version two of the file\n"),
        (c4, "f.txt", b"version three\n"),
        (c4, "g.txt", b"other\n"),
    ]
    assert c3 not in {f.commit for f in got}
    blob = repo.git("rev-parse", f"{c1}:f.txt")
    assert got[0].blob == blob and got[0].author == "Ann Author <ann@example.org>"
    assert got[0].commit_time == "2024-01-01T12:00:00+00:00"


def test_branches_and_merges(repo):
    base = repo.commit({"base.txt": b"base\n"})
    repo.git("checkout", "-q", "-b", "side")
    side = repo.commit({"side.txt": b"from the side branch\n"})
    repo.git("checkout", "-q", "main")
    main = repo.commit({"main.txt": b"on main\n"})
    repo.git("merge", "-q", "--no-commit", "side")
    (repo.path / "evil.txt").write_bytes(b"only in the merge commit\n")
    merge = repo.commit(message="merge")
    got = {f.path: f.commit for f in history(repo)}
    assert got == {"base.txt": base, "side.txt": side, "main.txt": main, "evil.txt": merge}
    order = repo.git("rev-list", "--reverse", "--topo-order", "HEAD").split()
    assert [order.index(c) for c in (f.commit for f in history(repo))] == sorted(
        order.index(c) for c in (f.commit for f in history(repo)))


def test_include_filters_paths_and_a_later_included_copy_is_found(repo):
    repo.commit({"vendor/lib.txt": b"shared bytes\n", "keep.txt": b"keep\n"})
    c2 = repo.commit({"src/lib.txt": b"shared bytes\n"})
    got = history(repo, include=lambda p: not p.startswith("vendor/"))
    assert [(f.path, f.commit) for f in got if f.data == b"shared bytes\n"] == [("src/lib.txt", c2)]
    assert {f.path for f in got} == {"keep.txt", "src/lib.txt"}


# -- ranges -----------------------------------------------------------------------------
def test_rev_range_limits_the_scan(repo, ws):
    c1 = repo.commit({"old.txt": SOIL, "common.txt": b"unchanged all along\n"})
    c2 = repo.commit({"mid.txt": b"middle\n"})
    c3 = repo.commit({"new.txt": TEA})
    c4 = repo.commit({"later.txt": b"after the range\n"})
    got = history(repo, f"{c1}..{c3}")
    assert [(f.commit, f.path) for f in got] == [(c2, "mid.txt"), (c3, "new.txt")]
    # A..B: what A already had (old.txt, common.txt) was not introduced in the range
    result = check_history(ws, repo.path, f"{c1}..{c3}")
    assert [(m.extra["commit"], m.extra["path"]) for m in result.copies] == [(c3, "new.txt")]
    assert [f.path for f in history(repo, f"{c3}..main")] == ["later.txt"]
    assert [f.commit for f in history(repo, "main~1..main")] == [c4]
    assert history(repo, f"{c2}..{c2}") == []
    assert {f.path for f in history(repo, c2)} == {"old.txt", "common.txt", "mid.txt"}
    full = check_history(ws, repo.path)
    assert sorted(m.extra["path"] for m in full.copies) == ["new.txt", "old.txt"]


def test_a_blob_restored_in_the_range_that_the_boundary_had_is_not_reported(repo):
    c1 = repo.commit({"f.txt": b"original\n"})
    repo.commit({"f.txt": b"changed\n"})
    repo.commit({"f.txt": b"original\n"})
    assert [f.data for f in history(repo, f"{c1}..main")] == [b"changed\n"]


@pytest.mark.parametrize("bad", ["nope..main", "main..nope", "--all", "--output={out}", "", "a\nb"])
def test_bad_range_is_an_input_error(repo, tmp_path, bad):
    repo.commit({"a.txt": b"a\n"})
    out = tmp_path / "written-by-git"
    with pytest.raises(InputError, match="bad revision range") as err:
        history(repo, bad.format(out=out))
    assert "\n" not in str(err.value)
    assert not out.exists()


# -- what is skipped --------------------------------------------------------------------
def test_gitlinks_and_symlinks_are_skipped(repo):
    repo.commit({"real.txt": b"real\n"})
    (repo.path / "link").symlink_to("plain.txt")
    sub = repo.git("rev-parse", "HEAD")
    repo.git("update-index", "--add", "--cacheinfo", f"160000,{sub},vendor/submodule")
    repo.git("add", "link")
    repo.git("commit", "-q", "-m", "link and submodule")
    tree = repo.git("ls-tree", "-r", "HEAD")
    assert "160000 commit" in tree and "120000 blob" in tree
    (repo.path / "plain.txt").write_bytes(b"plain.txt")     # same blob as the symlink's target
    repo.git("add", "plain.txt")
    repo.git("commit", "-q", "-m", "plain file")
    c3 = repo.git("rev-parse", "HEAD")
    got = history(repo)
    assert {f.path for f in got} == {"real.txt", "plain.txt"}
    assert [f.commit for f in got if f.path == "plain.txt"] == [c3]
    assert "160000 commit" in repo.git("ls-tree", "-r", "HEAD")


def test_large_blobs_are_skipped_unread_and_recorded(repo, ws, tmp_path):
    c1 = repo.commit({"small.txt": b"small\n", "big.txt": SOIL})
    skipped: list[SkippedBlob] = []
    got = list(iter_history(repo.path, max_file_bytes=1000, skipped=skipped))
    assert [f.path for f in got] == ["small.txt"]
    assert skipped == [SkippedBlob(c1, "big.txt", repo.git("rev-parse", "HEAD:big.txt"), len(SOIL),
                                   "too-large", 1000)]
    small_ws = api.open_workspace(api.Settings(home=tmp_path / "ws", max_file_bytes=1000))
    skips: list[SkippedBlob] = []
    result = check_history(small_ws, repo.path, skipped=skips)
    small_ws.close()
    assert result.copies == []
    assert result.errors[0] == f"{c1[:12]}:big.txt: skipped ({len(SOIL)} bytes is over the 1000-byte limit (--max-bytes))"
    assert [s.reason for s in skips] == ["too-large"]


def test_binary_blobs_are_skipped_silently_but_utf16_text_is_checked(repo, ws):
    utf16 = SOIL.decode().encode("utf-16-le")                # no BOM: only the text modality knows
    c1 = repo.commit({"libfoo.so": b"\x7fELF\x02\x01\x01\0" + bytes(range(256)) * 4,
                      "notes-utf16.txt": utf16})
    skipped: list[SkippedBlob] = []
    got = history(repo, skipped=skipped)
    assert {f.path for f in got} == set()                    # the default sniff: both have NULs
    assert sorted(s.path for s in skipped) == ["libfoo.so", "notes-utf16.txt"]
    assert {s.reason for s in skipped} == {"binary"}
    assert {f.path for f in history(repo, is_binary=None)} == {"libfoo.so", "notes-utf16.txt"}
    skips: list[SkippedBlob] = []
    result = check_history(ws, repo.path, skipped=skips)
    assert result.errors == []                               # the shared library is not an error
    assert [s.path for s in skips] == ["libfoo.so"]
    assert [(m.extra["commit"], m.extra["path"]) for m in result.copies] == [(c1, "notes-utf16.txt")]


def test_unusable_blobs_are_errors_not_failures(repo, ws):
    c1 = repo.commit({"empty.txt": b"", "copy.txt": SOIL})
    result = check_history(ws, repo.path)
    assert len(result.errors) == 1 and result.errors[0].startswith(f"{c1[:12]}:empty.txt: ")
    assert len(result.copies) == 1


def test_max_blobs_is_enforced_before_anything_is_yielded(repo):
    repo.commit({f"f{i}.txt": f"file {i}\n".encode() for i in range(5)})
    with pytest.raises(LimitError, match="more than 4 distinct"):
        iter_history(repo.path, max_file_bytes=MiB, max_blobs=4)
    assert len(history(repo, max_blobs=5)) == 5


# -- repository errors -------------------------------------------------------------------
def test_a_directory_that_is_not_a_repository(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(InputError, match="not a git repository"):
        list(iter_history(plain, max_file_bytes=1))
    with pytest.raises(InputError, match="no such directory"):
        list(iter_history(tmp_path / "missing", max_file_bytes=1))


def test_a_subdirectory_of_a_repository_is_not_the_repository(repo):
    repo.commit({"sub/a.txt": b"a\n"})
    with pytest.raises(InputError, match="not a git repository"):
        list(iter_history(repo.path / "sub", max_file_bytes=MiB))


def test_an_empty_repository_has_no_commits(repo, ws):
    with pytest.raises(InputError, match="has no commits"):
        history(repo)
    with pytest.raises(InputError, match="has no commits"):
        check_history(ws, repo.path)


def test_git_missing_is_an_input_error(repo, monkeypatch):
    repo.commit({"a.txt": b"a\n"})
    monkeypatch.setattr(gitscan, "GIT", "/nonexistent/bin/git")
    with pytest.raises(InputError, match="git is not installed"):
        history(repo)


def test_git_environment_of_the_caller_is_ignored(repo, tmp_path, monkeypatch):
    other = Repo(tmp_path / "other")
    other.commit({"other.txt": b"from the other repo\n"})
    repo.commit({"mine.txt": b"mine\n"})
    monkeypatch.setenv("GIT_DIR", str(other.path / ".git"))     # as inside a git hook
    assert [f.path for f in history(repo)] == ["mine.txt"]


# -- odd paths ----------------------------------------------------------------------------
def test_paths_with_spaces_unicode_and_newlines(repo, ws):
    names = ["dir with space/file name.txt", "ünïcödé/文件.txt", "line\nbreak.txt", "tab\there.txt",
             ":colon.txt", "\x01odd.txt", "-dash.txt"]
    c1 = repo.commit({n: f"content of {i}\n".encode() for i, n in enumerate(names)})
    c2 = repo.commit({"新 目录/copy of soil.txt": SOIL})
    got = history(repo)
    assert {f.path: f.commit for f in got} == {**{n: c1 for n in names}, "新 目录/copy of soil.txt": c2}
    for f in got:
        if f.commit == c1:
            assert f.data == f"content of {names.index(f.path)}\n".encode()
    result = check_history(ws, repo.path)
    assert [m.query_path for m in result.copies] == [f"{c2[:12]}:新 目录/copy of soil.txt"]


# -- scale: a constant number of git processes ------------------------------------------------
def test_a_long_history_spawns_a_constant_number_of_processes(repo, monkeypatch):
    n = 1000
    stream = []
    for i in range(n):
        body = f"revision {i} of the counter file\n".encode()
        stream.append(b"commit refs/heads/main\n"
                      + f"committer C <c@x> {1_700_000_000 + i} +0000\n".encode()
                      + b"data 2\nc\n"
                      + f"M 100644 inline counter.txt\ndata {len(body)}\n".encode() + body
                      + f"M 100644 inline files/f{i % 50}.txt\ndata {len(body)}\n".encode() + body
                      + b"\n")
    repo.git("fast-import", "--quiet", input=b"".join(stream))
    spawned: list[list[str]] = []
    real = subprocess.Popen

    class Counting(real):  # type: ignore[misc, valid-type]
        def __init__(self, args, *a, **kw):
            spawned.append(list(args))
            super().__init__(args, *a, **kw)

    monkeypatch.setattr(gitscan.subprocess, "Popen", Counting)
    got = history(repo)
    assert len(got) == n                                     # counter.txt and f*.txt share each blob
    assert len({f.commit for f in got}) == n
    assert len(spawned) <= 6, [a[3:5] for a in spawned]
    spawned.clear()
    assert len(history(repo, "main~10..main")) == 10
    assert len(spawned) <= 7                                 # + one ls-tree for the boundary commit


def test_an_abandoned_iterator_ends_its_git_process(repo, monkeypatch):
    repo.commit({f"f{i}.txt": f"file {i}\n".encode() * 1000 for i in range(50)})
    procs: list[subprocess.Popen] = []
    real = subprocess.Popen

    class Tracking(real):  # type: ignore[misc, valid-type]
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            procs.append(self)

    monkeypatch.setattr(gitscan.subprocess, "Popen", Tracking)
    it = iter_history(repo.path, max_file_bytes=MiB)
    next(it)
    it.close()
    assert procs and all(p.returncode is not None for p in procs)


# -- equivalence with the obvious (slow) algorithm -----------------------------------------
def brute_force(repo: Repo, revision: str) -> list[tuple[str, str, str]]:
    """`git ls-tree` of every commit in rev-list order; blobs of boundary commits pre-seen."""
    seen: set[str] = set()
    lines = repo.git("rev-list", "--boundary", "--reverse", "--topo-order", revision).split()
    for line in lines:
        if line.startswith("-"):
            seen.update(_tree(repo, line[1:]).values())
    out = []
    for commit in (c for c in lines if not c.startswith("-")):
        for path, blob in sorted(_tree(repo, commit).items()):
            if blob not in seen:
                seen.add(blob)
                out.append((commit, path, blob))
    return out


def _tree(repo: Repo, commit: str) -> dict[str, str]:
    out = subprocess.run(["git", "-C", str(repo.path), "ls-tree", "-r", "-z", commit],
                         check=True, capture_output=True).stdout
    tree = {}
    for rec in filter(None, out.split(b"\0")):
        meta, _, path = rec.partition(b"\t")
        mode, kind, sha = meta.decode().split()
        if mode in ("100644", "100755"):
            tree[path.decode()] = sha
    return tree


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_same_answer_as_ls_tree_of_every_commit(repo, seed):
    import random
    rnd = random.Random(seed)
    repo.commit({"seed.txt": b"seed\n"})
    branches = ["main"]
    for step in range(40):
        action = rnd.random()
        if action < 0.15 and len(branches) < 4:
            name = f"b{step}"
            repo.git("checkout", "-q", "-b", name)
            branches.append(name)
        elif action < 0.3 and len(branches) > 1:
            other = rnd.choice([b for b in branches if b != repo.git("branch", "--show-current")])
            try:
                repo.git("merge", "-q", "--no-ff", "--no-edit", "-X", "theirs", other)
            except subprocess.CalledProcessError:
                repo.git("merge", "--abort")
            else:
                repo.n += 1
        elif action < 0.4:
            repo.git("checkout", "-q", rnd.choice(branches))
        else:
            files = {f"d{rnd.randrange(3)}/f{rnd.randrange(8)}.txt": f"v{rnd.randrange(12)}\n".encode()
                     for _ in range(rnd.randrange(1, 4))}
            tracked = repo.git("ls-files").split()
            delete = tuple(rnd.sample(tracked, 1)) if tracked and rnd.random() < 0.3 else ()
            delete = tuple(d for d in delete if d not in files)
            repo.commit(files, delete)
    repo.git("checkout", "-q", "main")
    for b in branches[1:]:
        try:
            repo.git("merge", "-q", "--no-ff", "--no-edit", "-X", "theirs", b)
        except subprocess.CalledProcessError:
            repo.git("merge", "--abort")
    assert int(repo.git("rev-list", "--merges", "--count", "HEAD")) > 0
    revisions = ["HEAD", *[f"{b}..main" for b in branches[1:]], "main~3..main", "main~5...main"]
    checked = 0
    for rev in revisions:
        if subprocess.run(["git", "-C", str(repo.path), "rev-parse", "-q", "--verify",
                           rev.split(".")[0]], capture_output=True).returncode != 0:
            continue
        got = [(f.commit, f.path, f.blob) for f in history(repo, None if rev == "HEAD" else rev)]
        assert got == brute_force(repo, rev), rev
        checked += 1
    assert checked >= 3
