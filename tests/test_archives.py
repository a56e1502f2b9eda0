"""Archives are read like directories, in memory, within limits.

Hostile archives (path traversal, absolute names, links, zip bombs, gzip bombs,
lying headers, junk) cost a warning line each and the scan goes on.
"""
from __future__ import annotations

import gzip
import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from copyscope.archives import ArchiveReader, is_archive, split_member, unsafe_name
from copyscope.errors import InputError, LimitError
from copyscope.ingest import expand_paths, read_found, read_path
from copyscope.settings import Settings
from conftest import stderr_lines

SAMPLES = Path(__file__).parent / "code_samples"
C_SRC = (SAMPLES / "c" / "stats.c").read_bytes()
GO_SRC = (SAMPLES / "go" / "stats.go").read_bytes()


def _settings(tmp_path: Path, **kw) -> Settings:
    return Settings(home=tmp_path / "home", **kw)


def _zip(path: Path, members: dict[str, bytes], *, compress: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compress) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _tar(path: Path, members: dict[str, bytes], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("name,why", [
    ("../../etc/passwd", "path traversal"),
    ("a/../../b.c", "path traversal"),
    ("..\\..\\win.c", "path traversal"),
    ("/etc/passwd", "absolute path"),
    ("C:\\Windows\\x.c", "absolute path"),
    ("a\nb.c", "control characters in name"),
    ("src/ok.c", None),
    ("src/..ok.c", None),
])
def test_unsafe_names(name, why):
    assert unsafe_name(name) == why


def test_archive_names_and_member_paths():
    assert is_archive("x.ZIP") and is_archive("lib.jar") and is_archive("a.tar.gz") and is_archive("a.tgz")
    assert not is_archive("a.gz") and not is_archive("stats.c")
    assert split_member("a.zip!/src/x.c") == ("a.zip", "src/x.c")
    assert split_member("weird!/name.c") is None          # outer part is not an archive
    assert split_member("a.zip!/") is None


def test_zip_members_are_listed_and_read(tmp_path):
    z = _zip(tmp_path / "p.zip", {"src/stats.c": C_SRC, "src/stats.go": GO_SRC, "dir/": b""})
    files = expand_paths([z], _settings(tmp_path))
    assert [f.relative for f in files] == [f"{z}!/src/stats.c", f"{z}!/src/stats.go"]
    assert read_found(files[0], _settings(tmp_path)).data == C_SRC
    assert read_path(files[1].source, _settings(tmp_path)).data == GO_SRC


def test_hostile_zip_members_are_skipped_and_the_rest_is_read(tmp_path):
    z = tmp_path / "evil.zip"
    with zipfile.ZipFile(z, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("../../escape.c", C_SRC)
        zf.writestr("/abs.c", C_SRC)
        link = zipfile.ZipInfo("link.c")
        link.external_attr = (0o120777 << 16)
        zf.writestr(link, "/etc/passwd")
        zf.writestr("bomb.c", b"\0" * (8 << 20))            # ~8000:1 deflate ratio
        zf.writestr("ok.c", C_SRC)
    skipped: list[str] = []
    files = expand_paths([z], _settings(tmp_path), skipped)
    assert [f.member for f in files] == ["ok.c"]
    text = "\n".join(skipped)
    assert "escape.c: skipped (path traversal)" in text
    assert "abs.c: skipped (absolute path)" in text
    assert "link.c: skipped (symbolic link)" in text
    assert "bomb.c: skipped (compression ratio" in text and "zip bomb" in text
    assert not (tmp_path.parent / "escape.c").exists()       # nothing is ever extracted


def test_zip_whose_members_declare_too_much_is_refused_whole(tmp_path):
    z = _zip(tmp_path / "big.zip", {f"f{i}.c": C_SRC * 40 for i in range(6)}, compress=zipfile.ZIP_STORED)
    with pytest.raises(LimitError, match="expands to more than"):
        ArchiveReader(z, _settings(tmp_path, max_archive_bytes=100_000))
    skipped: list[str] = []
    assert expand_paths([z], _settings(tmp_path, max_archive_bytes=100_000), skipped) == []
    assert len(skipped) == 1 and "max-archive-bytes" in skipped[0]


def test_zip_member_over_the_file_limit_is_skipped(tmp_path):
    z = _zip(tmp_path / "p.zip", {"huge.c": C_SRC * 20, "ok.c": C_SRC}, compress=zipfile.ZIP_STORED)
    skipped: list[str] = []
    files = expand_paths([z], _settings(tmp_path, max_file_bytes=len(C_SRC) * 2), skipped)
    assert [f.member for f in files] == ["ok.c"]
    assert "huge.c: skipped" in skipped[0] and "--max-bytes" in skipped[0]


def test_zip_header_that_lies_about_the_size_is_still_capped(tmp_path):
    z = _zip(tmp_path / "lie.zip", {"x.c": C_SRC * 20}, compress=zipfile.ZIP_STORED)
    raw = bytearray(z.read_bytes())
    small = (100).to_bytes(4, "little")
    real = (len(C_SRC) * 20).to_bytes(4, "little")
    raw = raw.replace(real, small)                       # both headers now claim 100 bytes
    z.write_bytes(bytes(raw))
    s = _settings(tmp_path, max_file_bytes=len(C_SRC) * 4)
    reader = ArchiveReader(z, s)
    with pytest.raises((InputError, LimitError)):        # never the full member, never a crash
        reader.read("x.c")
    reader.close()


def test_gzip_bomb_tar_is_refused_within_the_budget(tmp_path):
    t = tmp_path / "bomb.tar.gz"
    with tarfile.open(t, "w:gz") as tf:
        info = tarfile.TarInfo("zeros.c")
        info.size = 32 << 20
        tf.addfile(info, io.BytesIO(b"\0" * info.size))
    assert t.stat().st_size < 100_000
    skipped: list[str] = []
    assert expand_paths([t], _settings(tmp_path, max_archive_bytes=4 << 20), skipped) == []
    assert "expands to more than" in skipped[0] and "bomb" in skipped[0]


def test_tar_links_devices_and_traversal_are_skipped(tmp_path):
    t = tmp_path / "evil.tar"
    with tarfile.open(t, "w") as tf:
        for name, kind in (("sym.c", tarfile.SYMTYPE), ("hard.c", tarfile.LNKTYPE), ("fifo.c", tarfile.FIFOTYPE)):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, "/etc/passwd"
            tf.addfile(info)
        for name in ("../up.c", "/abs.c", "ok.c"):
            info = tarfile.TarInfo(name)
            info.size = len(C_SRC)
            tf.addfile(info, io.BytesIO(C_SRC))
    skipped: list[str] = []
    files = expand_paths([t], _settings(tmp_path), skipped)
    assert [f.member for f in files] == ["ok.c"]
    assert read_found(files[0], _settings(tmp_path)).data == C_SRC
    text = "\n".join(skipped)
    for frag in ("sym.c: skipped (link", "hard.c: skipped (link", "fifo.c: skipped (not a regular",
                 "up.c: skipped (path traversal", "abs.c: skipped (absolute"):
        assert frag in text


@pytest.mark.parametrize("name,data", [
    ("junk.zip", b"PK\x03\x04 this is not really a zip"),
    ("junk.tar.gz", gzip.compress(b"not a tar header" * 10, mtime=0)),
    ("trunc.tar.gz", gzip.compress(b"x" * 5000, mtime=0)[:40]),
    ("empty.jar", b""),
])
def test_corrupt_archives_are_one_line_each(tmp_path, name, data):
    p = tmp_path / name
    p.write_bytes(data)
    skipped: list[str] = []
    files = expand_paths([p], _settings(tmp_path), skipped)
    assert files == [] or all(f.member for f in files)
    if not files:
        assert len(skipped) == 1 and str(p) in skipped[0] and "\n" not in skipped[0]


def test_archives_inside_a_walked_directory_are_expanded(tmp_path):
    root = tmp_path / "proj"
    (root / "lib").mkdir(parents=True)
    (root / "main.c").write_bytes(C_SRC)
    _zip(root / "lib" / "vendor.jar", {"a/stats.go": GO_SRC})
    files = expand_paths([root], _settings(tmp_path))
    assert [f.relative for f in files] == [f"{root}/lib/vendor.jar!/a/stats.go", f"{root}/main.c"]


# --- end to end through the CLI ---------------------------------------------------

def test_register_an_archive_as_one_work_and_find_its_members(cli, tmp_path):
    z = _zip(tmp_path / "sdk.zip", {"sdk/stats.c": C_SRC, "sdk/stats.go": GO_SRC, "../evil.c": C_SRC})
    assert cli("init")[0] == 0
    rc, out, err = cli("register", str(z), "--owner", "Vendor", "--license", "MIT")
    assert rc == 2                                   # registered, with a warning for the hostile member
    assert out.count("\n") == 1 and "sdk.zip" in out
    assert any("evil.c: skipped (path traversal)" in line for line in stderr_lines(err))
    copy = tmp_path / "copy.tar.gz"
    _tar(copy, {"app/renamed.c": C_SRC})
    rc, out, err = cli("--json", "check", str(copy))
    assert rc == 1, err
    assert f"{copy}!/app/renamed.c" in out and "sdk.zip" in out


def test_all_pairs_dir_units_treat_archives_as_units(cli, tmp_path):
    root = tmp_path / "subs"
    (root / "alice").mkdir(parents=True)
    (root / "alice" / "stats.c").write_bytes(C_SRC)
    _zip(root / "bob.zip", {"x/stats.c": C_SRC})
    (root / "carol").mkdir()
    (root / "carol" / "main.go").write_bytes(GO_SRC)
    rc, out, err = cli("compare", "--all-pairs", str(root), "--unit", "dir", "--format", "tsv")
    rows = {tuple(line.split("\t")[:2]): float(line.split("\t")[2]) for line in out.splitlines() if line}
    assert rows[(str(root / "alice"), str(root / "bob.zip"))] == pytest.approx(1.0)
    assert rows[(str(root / "alice"), str(root / "carol"))] < 0.5


def test_max_archive_bytes_option(cli, tmp_path):
    z = _zip(tmp_path / "p.zip", {"a.c": C_SRC, "b.c": C_SRC + b"\n"}, compress=zipfile.ZIP_STORED)
    assert cli("init")[0] == 0
    rc, out, err = cli("--max-archive-bytes", "100", "check", str(z))
    assert rc == 2
    (line,) = stderr_lines(err)
    assert "expands to more than 100 bytes" in line
    rc, out, err = cli("--max-archive-bytes", "0", "check", str(z))
    assert rc == 2 and "--max-archive-bytes must be at least 1" in err
