"""Code feature store: a registered file's statement, comment and literal bags are
stored at registration, so a check scores candidates without re-tokenizing them."""
from __future__ import annotations

import hashlib
import json
import zlib

import pytest

from copyscope import api, check_pool
from copyscope.code.plugin import ALGORITHM, CodeDoc, CodeModality, score_matrix
from copyscope.model import Artifact

ORIGINAL = b'''import java.util.Scanner;

public class Cylinder {
    // radius and height come from the user, volume goes to the console
    public static void main(String[] args) {
        Scanner in = new Scanner(System.in);
        double radius = in.nextDouble();
        double height = in.nextDouble();
        double volume = Math.PI * radius * radius * height;   /* 3.14159 times r squared */
        System.out.println("The volume of the cylinder is " + volume);
        if (volume > 1000.0) {
            System.out.println("That is a big cylinder");
        }
    }
}
'''
COPY = ORIGINAL.replace(b"Cylinder", b"Tabung").replace(b"radius", b"r").replace(b"volume", b"v")


def _doc(name: str, data: bytes) -> CodeDoc:
    return CodeModality().fingerprint(Artifact(data, origin=name))


def test_loaded_bags_score_and_verify_exactly_like_a_fresh_analysis():
    plugin = CodeModality()
    fresh = _doc("Cylinder.java", ORIGINAL)
    loaded = plugin.loads(plugin.dumps(fresh), Artifact(ORIGINAL, origin="Cylinder.java"))
    assert (loaded.language, loaded.segments, loaded.comments, loaded.literals) == \
        (fresh.language, fresh.segments, fresh.comments, fresh.literals)
    query = _doc("Tabung.java", COPY)
    assert score_matrix([query], [loaded], plugin.params)[0, 0] == score_matrix([query], [fresh], plugin.params)[0, 0]
    assert "tokens" not in loaded.__dict__          # the cheap score never tokenized the registered file
    a, b = plugin.verify(query, fresh), plugin.verify(query, loaded)
    assert a.score == b.score and a.verdict == "copy"
    assert [(p.query.line_start, p.registered.line_end) for p in a.passages] == \
        [(p.query.line_start, p.registered.line_end) for p in b.passages]
    assert a.extra["side_channels"] == b.extra["side_channels"]


@pytest.mark.parametrize("data", [
    b"",
    b"CSCODEF1" + b"not zlib",
    b"CSCODEF1" + zlib.compress(b"{not json"),
    b"CSCODEF1" + zlib.compress(b"[1, 2]"),
    b"CSCODEF1" + zlib.compress(json.dumps(["code.segments/v0", "java", "java", [], [], []]).encode()),
])
def test_damaged_or_outdated_features_are_refused(data):
    with pytest.raises(ValueError):
        CodeModality().loads(data, Artifact(ORIGINAL, origin="Cylinder.java"))


def test_undecodable_text_survives_the_round_trip():
    data = b'class A { String s = "caf\xe9 \xff"; } // na\xefve comment here\n'
    plugin = CodeModality()
    fresh = _doc("A.java", data)
    loaded = plugin.loads(plugin.dumps(fresh), Artifact(data, origin="A.java"))
    assert loaded.literals == fresh.literals and loaded.comments == fresh.comments


def test_checks_read_the_stored_bags_and_heal_a_missing_or_outdated_file(tmp_path):
    reg = tmp_path / "Cylinder.java"
    reg.write_bytes(ORIGINAL)
    query = tmp_path / "Tabung.java"
    query.write_bytes(COPY)
    with api.init(api.Settings(home=tmp_path / "ws")) as ws:
        ws.register([reg], owner="Author", license="MIT")
    stored = list((tmp_path / "ws" / "features" / "code").rglob("*"))
    stored = [p for p in stored if p.is_file()]
    assert len(stored) == 1
    good = stored[0].read_bytes()

    def check() -> float:
        with api.open_workspace(api.Settings(home=tmp_path / "ws")) as ws:
            found = ws.check([query]).copies
        assert len(found) == 1
        return found[0].score

    score = check()
    stored[0].unlink()                                          # a workspace from before code features
    assert check() == score and stored[0].read_bytes() == good
    stored[0].write_bytes(b"\0" * 32 + good[32:])               # damaged: the checksum fails
    assert check() == score and stored[0].read_bytes() == good
    outdated = b"CSCODEF1" + zlib.compress(json.dumps(["code.segments/v0", "java", "java", [], [], []]).encode())
    stored[0].write_bytes(hashlib.sha256(outdated).digest() + outdated)   # intact, but another algorithm's
    assert check() == score and stored[0].read_bytes() == good
    assert ALGORITHM != "code.segments/v0"


def test_a_large_check_in_two_processes_reports_what_one_process_does(tmp_path, monkeypatch):
    pooled = []
    in_pool = check_pool.check_in_pool
    monkeypatch.setattr(check_pool, "check_in_pool", lambda *a, **k: pooled.append(a[4]) or in_pool(*a, **k))
    reg = tmp_path / "Cylinder.java"
    reg.write_bytes(ORIGINAL)
    scan = tmp_path / "scan"
    scan.mkdir()
    for i in range(70):
        body = COPY if i % 7 == 0 else ORIGINAL.replace(b"Cylinder", b"Unrelated%d" % i).replace(b"volume", b"w%d" % i)
        (scan / f"F{i:02d}.java").write_bytes(body if i % 5 else b"class Empty%d { }\n" % i)
    (scan / "binary.c").write_bytes(b"\x00\x01" * 50)          # not code: an error line, the scan goes on
    with api.init(api.Settings(home=tmp_path / "ws")) as ws:
        ws.register([reg], owner="Author", license="MIT")
        one = ws.check([scan]).bundle()
        two = ws.check([scan], jobs=2).bundle()
    assert pooled == [2] and one["matches"] and one["errors"]
    for key in ("matches", "errors", "inputs", "triaged"):
        assert one.get(key) == two.get(key), key
