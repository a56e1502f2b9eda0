"""Flip any byte: receipts, stored checkpoints, the ledger tables and evidence
packages. Every flip must make verification fail and name the check (or make the
input unreadable, or make the log refuse to sign) - never pass silently, never crash.

A flip that still verifies is accepted only when it changes nothing that is
verified: base64 is malleable in its unused trailing bits, so a flipped last
character may decode to the very same bytes (checked explicitly).
"""
from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import sqlalchemy as sa

from conftest import SAMPLES, assert_clean_failure
from copyscope import api
from copyscope.errors import CopyscopeError, StorageError
from copyscope.ledger import merkle, verifier
from copyscope.ledger.entries import make_entry
from copyscope.ledger.keys import KeyStore
from copyscope.ledger.log import Log
from copyscope.ledger.service import write_json
from copyscope.ledger.verifier import VerificationError, VKey
from copyscope.storage import schema as t
from copyscope.storage.registry import make_engine, migrate

CHECKS = {"entry-signature", "inclusion", "checkpoint-signature", "cosignature", "receipt", "key"}


def flip(data: bytes, pos: int, mask: int = 0x01) -> bytes:
    b = bytearray(data)
    b[pos] ^= mask
    return bytes(b)


def spread(start: int, end: int, k: int = 16) -> list[int]:
    """Up to k byte positions spread over [start, end), ends included."""
    n = end - start
    if n <= k:
        return list(range(start, end))
    return sorted({start + (i * (n - 1)) // (k - 1) for i in range(k)})


# --- (a) receipts ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A workspace with three registered works and two labels (a tree of 5), and the
    receipt of W0000002 as written to disk."""
    home = tmp_path_factory.mktemp("tamper") / "ws"
    settings = api.Settings(home=home)
    with api.init(settings) as ws:
        ws.register([SAMPLES / "registered" / n for n in ("en_soil.txt", "zh_tea.txt", "en_lighthouse.md")],
                    owner="Ann Writer", license="CC-BY-4.0", each=True)
        api.label_work(ws, "W0000001", "first label")
        api.label_work(ws, "W0000003", "second label")
        receipt = api.receipts(ws, "W0000002")[0]
        keys = api.keys_show(ws)
    path = home.parent / "receipt.json"
    write_json(path, receipt)
    return {"home": home, "path": path, "raw": path.read_bytes(), "keys": keys,
            "data": (SAMPLES / "registered" / "zh_tea.txt").read_bytes()}


def semantics(receipt: dict) -> tuple:
    """Everything verification depends on, decoded."""
    extra, index, proof, note = verifier.parse_tlog_proof(receipt["tlog_proof"])
    text, sigs = verifier.split_note(note)
    keys = tuple((k.name, k.kind, k.public) for role in ("log", "clock")
                 for k in map(VKey, receipt.get("keys", {}).get(role, [])))
    return receipt["entry"], extra, index, tuple(proof), text, tuple(sigs), keys, json.dumps(receipt.get("opening"))


def outcome(raw: bytes, world: dict, embedded_keys: bool = False) -> str:
    """unreadable | failed:<check> | passed | crash:<exception>"""
    try:
        receipt = json.loads(raw.decode("utf-8"))
        if not isinstance(receipt, dict) or receipt.get("schema") != "copyscope.receipt/v1":
            return "unreadable"
    except (UnicodeDecodeError, ValueError):
        return "unreadable"
    try:
        if embedded_keys:                      # verify.py --receipt R (no --log-key): the receipt's keys
            logs = [VKey(k) for k in receipt.get("keys", {}).get("log", [])]
            clocks = [VKey(k) for k in receipt.get("keys", {}).get("clock", [])]
        else:                                  # pinned keys (copyscope keys show)
            logs = [VKey(k) for k in world["keys"]["log"]]
            clocks = [VKey(k) for k in world["keys"]["clock"]]
        verifier.verify_receipt(receipt, logs, clocks, world["data"])
    except VerificationError as exc:
        return f"failed:{exc.check}"
    except Exception as exc:  # noqa: BLE001 - a crash is what we look for
        return f"crash:{type(exc).__name__}: {exc}"
    return "passed"


def regions(world: dict) -> dict[str, list[tuple[int, int]]]:
    """Byte ranges of the receipt file, by what they hold."""
    text = world["raw"].decode("utf-8")
    receipt = json.loads(text)

    def value_start(key: str) -> int:
        marker = f'"{key}": '
        return text.index(marker) + len(marker)

    def span(key: str, value: str, a: int, b: int) -> tuple[int, int]:
        """Bytes of the JSON encoding of value[a:b] inside the file."""
        start = value_start(key) + 1                      # after the opening quote
        enc = lambda s: len(json.dumps(s, ensure_ascii=False)) - 2      # noqa: E731
        assert text[start - 1:start + enc(value) + 1] == json.dumps(value, ensure_ascii=False)
        to_bytes = lambda i: len(text[:i].encode("utf-8"))              # noqa: E731
        return to_bytes(start + enc(value[:a])), to_bytes(start + enc(value[:b]))

    out: dict[str, list[tuple[int, int]]] = {}
    entry = receipt["entry"]
    out["entry-body"] = [span("entry", entry, 0, entry.index(',"sig":'))]
    out["entry-sig"] = [span("entry", entry, entry.index(',"sig":'), len(entry))]
    proof = receipt["tlog_proof"]
    lines = proof.split("\n")
    starts = [sum(len(x) + 1 for x in lines[:i]) for i in range(len(lines))]

    def line(i: int, a: int = 0, b: int | None = None) -> tuple[int, int]:
        end = starts[i] + (len(lines[i]) if b is None else b)
        return span("tlog_proof", proof, starts[i] + a, end)

    assert lines[0] == "c2sp.org/tlog-proof@v1" and lines[1].startswith("extra ") and lines[2] == "index 1"
    blank = lines.index("")
    out["proof-header"] = [line(0)]
    out["proof-index"] = [line(2)]
    out["proof-hashes"] = [line(i) for i in range(3, blank)]
    out["separators"] = [span("tlog_proof", proof, starts[blank] - 1, starts[blank] + 1)]
    out["checkpoint-text"] = [line(i) for i in range(blank + 1, blank + 4)]
    log_line, clock_line = blank + 5, blank + 6
    assert lines[blank + 4] == "" and lines[log_line].startswith("\u2014 ") and "/clock " in lines[clock_line]
    out["log-signature"] = [line(log_line)]
    name_end = lines[clock_line].index(" ", 2)
    out["clock-signature-base64"] = [line(clock_line, name_end + 1)]
    out["clock-signature-dash"] = [line(clock_line, 0, 2)]
    # also tested on their own below: the extra line and the clock's key name
    out["_extra"] = [line(1, len("extra "))]
    out["_clock-name"] = [line(clock_line, 2, name_end)]
    out["keys"] = [(world["raw"].index(k.encode()), world["raw"].index(k.encode()) + len(k))
                   for role in ("log", "clock") for k in receipt["keys"][role]]
    return out


PINNED = ["entry-body", "entry-sig", "proof-header", "proof-index", "proof-hashes", "separators",
          "checkpoint-text", "log-signature", "clock-signature-base64", "clock-signature-dash"]


def test_the_untampered_receipt_verifies(world):
    assert outcome(world["raw"], world) == "passed"
    assert outcome(world["raw"], world, embedded_keys=True) == "passed"
    assert set(regions(world)) == set(PINNED) | {"keys", "_extra", "_clock-name"}


@pytest.mark.parametrize("region", PINNED + ["keys"])
def test_flipping_any_byte_of_a_receipt_fails_verification(world, region):
    original = json.loads(world["raw"])
    embedded = region == "keys"
    bad = []
    for a, b in regions(world)[region]:
        for pos in spread(a, b):
            raw = flip(world["raw"], pos)
            got = outcome(raw, world, embedded_keys=embedded)
            if got == "unreadable" or (got.startswith("failed:") and got[7:] in CHECKS):
                continue
            if got == "passed" and semantics(json.loads(raw)) == semantics(original):
                continue                                   # a base64 spelling of the same bytes
            bad.append((pos, chr(world["raw"][pos]), got))
    assert not bad, bad


@pytest.mark.parametrize("pos_kind", ["first", "middle", "last"])
def test_tampered_receipts_through_the_cli_fail_cleanly(cli, world, tmp_path, pos_kind):
    """`copyscope verify` on tampered receipts: exit 2 (unreadable) or 6 (a named
    check), one error line, never a traceback."""
    data_file = SAMPLES / "registered" / "zh_tea.txt"
    pick = {"first": 0, "middle": None, "last": -1}[pos_kind]
    for region in PINNED:
        a, b = regions(world)[region][0 if pick is not None else len(regions(world)[region]) // 2]
        pos = a if pick == 0 else (b - 1 if pick == -1 else (a + b) // 2)
        path = tmp_path / f"{region}.json"
        path.write_bytes(flip(world["raw"], pos))
        rc, out, err = cli("verify", path, data_file, home=world["home"])
        if rc == 0:                                        # only a same-bytes base64 spelling may pass
            assert semantics(json.loads(path.read_bytes())) == semantics(json.loads(world["raw"])), region
            continue
        assert rc in (2, 6), (region, rc, err)
        (line,) = assert_clean_failure(err, want="error")
        if rc == 6:
            assert any(f"{c}:" in line for c in CHECKS), line


def test_tampering_with_the_extra_line_fails(world):
    (a, b), = regions(world)["_extra"]
    results = {pos: outcome(flip(world["raw"], pos), world) for pos in spread(a, b)}
    assert all(r != "passed" for r in results.values()), results


def test_stripping_the_clock_cosignature_fails(world):
    receipt = json.loads(world["raw"])
    head, _, note = receipt["tlog_proof"].partition("\n\n")
    stripped = note[:note.index("\u2014 ", note.index("\n\n") + 3)]      # drop the clock's line
    renamed = note.replace("/clock ", "/clocK ")
    assert outcome(json.dumps(dict(receipt, tlog_proof=head + "\n\n" + stripped)).encode(), world) != "passed"
    assert outcome(json.dumps(dict(receipt, tlog_proof=head + "\n\n" + renamed)).encode(), world) != "passed"


def test_the_receipt_size_and_root_are_bound_by_the_checkpoint_signature(world):
    """The Merkle proof alone does not pin the tree size (RFC 9162; see test_ledger_merkle):
    the size a receipt claims comes from the signed checkpoint."""
    receipt = json.loads(world["raw"])
    for old, new in (("\n5\n", "\n6\n"), ("\n5\n", "\n4\n")):
        tp = receipt["tlog_proof"]
        cut = tp.index("\n\n") + 2
        doctored = dict(receipt, tlog_proof=tp[:cut] + tp[cut:].replace(old, new, 1))
        assert outcome(json.dumps(doctored).encode(), world) == "failed:checkpoint-signature"


# --- a small log in SQLite, for the database tampering ----------------------------------------

class Ledger:
    def __init__(self, root: Path) -> None:
        self.db = root / "registry.db"
        self.engine = make_engine(f"sqlite:///{self.db}")
        migrate(self.engine)
        self.keys = KeyStore(root / "home")
        self.ring = self.keys.create("ws-tamper")
        self.log = Log(self.engine, self.keys, self.ring)
        vk = self.keys.verifier_keys()
        self.logs, self.clocks = [VKey(k) for k in vk["log"]], [VKey(k) for k in vk["clock"]]
        self.next_entry = self.entry(999)          # the entry every trial append adds

    def fresh_log(self) -> Log:                  # no cached nodes
        return Log(self.engine, self.keys, self.ring)

    def entry(self, n: int):
        return make_entry("label", self.ring.claimant, work_id=f"W{n:07d}", label=f"label {n}")

    def receipt(self, index: int) -> dict:
        with self.engine.connect() as conn:
            return self.fresh_log().receipt(conn, 1, index)

    def check(self, receipt: dict) -> str | None:
        try:
            verifier.verify_receipt(receipt, self.logs, self.clocks)
        except VerificationError as exc:
            return exc.check
        return None

    def try_append(self) -> str:
        """Append one entry in a transaction that is rolled back: 'appended' (and the
        new checkpoint), or the refusal."""
        with self.engine.connect() as conn:
            trans = conn.begin()
            try:
                self.fresh_log().append(conn, [self.next_entry])
                note = conn.execute(sa.select(t.ledger_checkpoints.c.note)
                                    .order_by(t.ledger_checkpoints.c.size.desc()).limit(1)).scalar()
                return "appended\n" + note
            except StorageError:
                return "StorageError"
            finally:
                trans.rollback()

    def sql(self, query: str, *args):
        con = sqlite3.connect(self.db)
        try:
            rows = con.execute(query, args).fetchall()
            con.commit()
            return rows
        finally:
            con.close()


@pytest.fixture
def ledger(tmp_path):
    led = Ledger(tmp_path)
    led.log.append_entries([led.entry(i) for i in range(5)])
    led.log.append_entries([led.entry(i) for i in range(5, 10)])     # checkpoints at 5 and 10
    yield led
    led.engine.dispose()


def true_root(led: Ledger, extra_entries: int = 1) -> bytes:
    with led.engine.connect() as conn:
        leaves = [bytes(r.leaf) for r in conn.execute(sa.select(t.ledger_entries.c.leaf)
                                                       .order_by(t.ledger_entries.c.idx))]
    return merkle.root_of_leaves(leaves + [led.next_entry.leaf] * extra_entries)


# --- (b) the stored checkpoint --------------------------------------------------------------

def _note_flips(led: Ledger) -> tuple[str, list[tuple[int, str, bool]]]:
    """(original note, [(position, flipped note, still parseable with a size > 0)]) for the
    latest checkpoint."""
    (note,), = led.sql("SELECT note FROM ledger_checkpoints WHERE size = 10")
    raw = note.encode()
    out = []
    for pos in range(len(raw)):
        try:
            bad = flip(raw, pos).decode("utf-8")
        except UnicodeDecodeError:
            continue                                       # not storable as TEXT
        try:
            parseable = verifier.parse_checkpoint(verifier.split_note(bad)[0])[1] > 0
        except VerificationError:
            parseable = False
        out.append((pos, bad, parseable))
    return note, out


def test_a_tampered_checkpoint_is_caught(ledger):
    """Parseable tampering of the newest stored checkpoint: a receipt issued against it
    fails checkpoint-signature (or cosignature), or the next append refuses to sign; if
    the log does sign again, the new checkpoint extends the true tree."""
    note, flips = _note_flips(ledger)
    clock_line = note.split("\n")[5]
    clock_name = (note.index(clock_line) + 2, note.index(clock_line) + clock_line.index(" ", 2))
    bad = []
    for pos, tampered, parseable in flips:
        char_pos = len(note.encode()[:pos].decode("utf-8", "ignore"))
        if not parseable or clock_name[0] <= char_pos < clock_name[1]:
            continue                                       # the two known bugs, tested below
        if verifier.split_note(tampered) == verifier.split_note(note):
            continue                                       # a base64 spelling of the same signature
        ledger.sql("UPDATE ledger_checkpoints SET note = ? WHERE size = 10", tampered)
        try:
            try:
                check = ledger.check(ledger.receipt(3))
            except StorageError:
                check = "StorageError"                     # e.g. a size the stored nodes cannot serve
            appended = ledger.try_append()
        except Exception as exc:  # noqa: BLE001
            bad.append((pos, f"crash {type(exc).__name__}: {exc}"))
            continue
        finally:
            ledger.sql("UPDATE ledger_checkpoints SET note = ? WHERE size = 10", note)
        if appended.startswith("appended"):
            new = appended.split("\n", 1)[1]
            _, size, root, _ = verifier.open_checkpoint(new, ledger.logs, ledger.clocks)
            if (size, root) != (11, true_root(ledger)):
                bad.append((pos, "signed a wrong tree"))
            if check not in ("checkpoint-signature", "cosignature", "StorageError"):
                bad.append((pos, f"receipt check {check}, append went on"))
        elif appended != "StorageError":
            bad.append((pos, appended))
    assert not bad, bad
    assert ledger.check(ledger.receipt(3)) is None        # restored


def test_an_unparseable_checkpoint_is_a_storage_error(ledger):
    note, flips = _note_flips(ledger)
    broken = [(pos, tampered) for pos, tampered, parseable in flips if not parseable]
    assert broken
    for pos, tampered in broken:
        ledger.sql("UPDATE ledger_checkpoints SET note = ? WHERE size = 10", tampered)
        try:
            with pytest.raises(StorageError):
                ledger.fresh_log().append_entries([ledger.entry(999)])
            with pytest.raises(CopyscopeError):
                ledger.receipt(3)
        finally:
            ledger.sql("UPDATE ledger_checkpoints SET note = ? WHERE size = 10", note)


# --- (c) the ledger tables ----------------------------------------------------------------

def test_a_tampered_node_fails_inclusion_and_is_never_signed_over(ledger):
    nodes = ledger.sql("SELECT level, idx, hash FROM ledger_nodes WHERE gen = 1 ORDER BY level, idx")
    assert len(nodes) == 10 + 5 + 2 + 1
    for level, idx, h in nodes:
        for byte in (0, 17, 31):
            ledger.sql("UPDATE ledger_nodes SET hash = ? WHERE level = ? AND idx = ?", flip(h, byte), level, idx)
            try:
                for index in range(10):
                    got = ledger.check(ledger.receipt(index))
                    needs = (level, idx) in merkle.needed_inclusion(index, 10)
                    assert got == ("inclusion" if needs else None), ((level, idx), index, got)
                appended = ledger.try_append()
                if appended != "StorageError":
                    _, size, root, _ = verifier.open_checkpoint(appended.split("\n", 1)[1],
                                                                ledger.logs, ledger.clocks)
                    assert (size, root) == (11, true_root(ledger)), (level, idx)
            finally:
                ledger.sql("UPDATE ledger_nodes SET hash = ? WHERE level = ? AND idx = ?", h, level, idx)
    for index in range(10):
        assert ledger.check(ledger.receipt(index)) is None


def test_tampered_frontier_nodes_stop_the_log(ledger):
    """The nodes that the next root is built from: the log refuses to sign."""
    for level, idx in merkle.frontier(10):
        (h,), = ledger.sql("SELECT hash FROM ledger_nodes WHERE level = ? AND idx = ?", level, idx)
        ledger.sql("UPDATE ledger_nodes SET hash = ? WHERE level = ? AND idx = ?", flip(h, 5), level, idx)
        try:
            assert ledger.try_append() == "StorageError"
            with pytest.raises(StorageError, match="refusing to sign checkpoint 11"):
                ledger.fresh_log().append_entries([ledger.entry(999)])
        finally:
            ledger.sql("UPDATE ledger_nodes SET hash = ? WHERE level = ? AND idx = ?", h, level, idx)
    assert ledger.try_append().startswith("appended")


def test_a_missing_node_is_a_storage_error(ledger):
    ledger.sql("DELETE FROM ledger_nodes WHERE level = 1 AND idx = 4")
    with pytest.raises(StorageError, match="missing"):
        ledger.receipt(0)
    with pytest.raises(StorageError, match="missing"):
        ledger.fresh_log().append_entries([ledger.entry(999)])


def test_a_tampered_leaf_fails_its_receipt(ledger):
    (leaf,), = ledger.sql("SELECT leaf FROM ledger_entries WHERE idx = 6")
    positions = spread(0, len(leaf), 40)
    for pos in positions:
        ledger.sql("UPDATE ledger_entries SET leaf = ? WHERE idx = 6", flip(leaf, pos))
        try:
            assert ledger.check(ledger.receipt(6)) in ("entry-signature", "key", "inclusion"), pos
            assert ledger.check(ledger.receipt(7)) is None          # others are unaffected
        finally:
            ledger.sql("UPDATE ledger_entries SET leaf = ? WHERE idx = 6", leaf)
    assert ledger.check(ledger.receipt(6)) is None


def test_a_swapped_leaf_fails_inclusion(ledger):
    """A validly signed entry moved to another index: its signature holds, inclusion fails."""
    (a,), = ledger.sql("SELECT leaf FROM ledger_entries WHERE idx = 2")
    (b,), = ledger.sql("SELECT leaf FROM ledger_entries WHERE idx = 3")
    ledger.sql("UPDATE ledger_entries SET leaf = ? WHERE idx = 2", b)
    assert ledger.check(ledger.receipt(2)) == "inclusion"


def test_a_leaf_that_is_not_utf8_is_a_clean_error(ledger):
    (leaf,), = ledger.sql("SELECT leaf FROM ledger_entries WHERE idx = 6")
    ledger.sql("UPDATE ledger_entries SET leaf = ? WHERE idx = 6", flip(leaf, 10, 0x80))
    try:
        receipt = ledger.receipt(6)
    except CopyscopeError:
        return
    assert ledger.check(receipt) == "entry-signature"


def test_database_tampering_through_the_cli(cli, home, samples, tmp_path):
    assert cli("init")[0] == 0
    rc, out, err = cli("register", samples / "registered", "--each", "--owner", "Ann")
    assert rc == 0 and len(out.splitlines()) == 4, err
    con = sqlite3.connect(home / "registry.db")
    (h,), = con.execute("SELECT hash FROM ledger_nodes WHERE level = 0 AND idx = 1").fetchall()
    con.execute("UPDATE ledger_nodes SET hash = ? WHERE level = 0 AND idx = 1", (flip(h, 3),))
    con.commit()
    # entry 0's inclusion proof reads leaf hash 1: a fresh receipt fails inclusion
    rc, out, err = cli("receipt", "W0000001", "-o", tmp_path / "r")
    assert rc == 0, err
    rc, out, err = cli("verify", tmp_path / "r" / "W0000001-00000000.json", samples / "registered" / "en_lighthouse.md")
    assert rc == 6
    (line,) = assert_clean_failure(err, want="error")
    assert "inclusion" in line
    # a frontier node: the next registration is refused, and nothing of it is kept
    con.execute("UPDATE ledger_nodes SET hash = ? WHERE level = 0 AND idx = 1", (h,))
    (h2,), = con.execute("SELECT hash FROM ledger_nodes WHERE level = 2 AND idx = 0").fetchall()
    con.execute("UPDATE ledger_nodes SET hash = ? WHERE level = 2 AND idx = 0", (flip(h2, 0),))
    con.commit()
    con.close()
    new = tmp_path / "new.txt"
    new.write_text("A new text about lanterns and harbours, long enough to register.\n" * 5, encoding="utf-8")
    rc, out, err = cli("register", new, "--owner", "Ann")
    assert rc == 3 and out == ""
    (line,) = assert_clean_failure(err, want="error")
    assert "refusing to sign checkpoint 5" in line
    rc, out, err = cli("works")
    assert rc == 0 and len(out.splitlines()) == 4                # the refused work is not registered
    con = sqlite3.connect(home / "registry.db")
    assert con.execute("SELECT count(*) FROM ledger_entries").fetchone() == (4,)
    con.close()


# --- (d) evidence packages -------------------------------------------------------------------

@pytest.fixture(scope="module")
def package(tmp_path_factory):
    root = tmp_path_factory.mktemp("pkg")
    home = root / "ws"
    settings = api.Settings(home=home)
    draft = root / "draft.txt"
    draft.write_text("a first draft of the soil essay\n", encoding="utf-8")
    with api.init(settings) as ws:
        ws.register([SAMPLES / "registered" / "en_soil.txt"], owner="Ann Writer", license="CC-BY-4.0",
                    record=SAMPLES.parent / "records" / "ai-image.json")
        api.add_draft(ws, "W0000001", draft, "seed 1")
        ws.register([SAMPLES / "registered" / "zh_tea.txt"], owner="Ann Writer", license="CC-BY-4.0")
        out = api.export_package(ws, "W0000001", root / "evidence.zip")
    tool = root / "tool"
    tool.mkdir()
    with zipfile.ZipFile(out) as z:
        (tool / "verify.py").write_bytes(z.read("verify.py"))
        members = [(i, z.read(i)) for i in z.infolist()]
    return {"zip": out, "verify": tool / "verify.py", "members": members, "root": root}


def rewrite(package: dict, path: Path, change: dict[str, bytes], remanifest: bool = False) -> Path:
    files = {i.filename: data for i, data in package["members"]}
    files.update(change)
    if remanifest:
        files["MANIFEST.sha256"] = "".join(f"{hashlib.sha256(d).hexdigest()}  {n}\n"
                                           for n, d in sorted(files.items()) if n != "MANIFEST.sha256").encode()
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for info, _ in package["members"]:
            z.writestr(info, files[info.filename])
    return path


def run_verify(package: dict, target: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(package["verify"]), str(target), *args], capture_output=True,
                          text=True, timeout=120, cwd=package["root"], stdin=subprocess.DEVNULL)


def in_process_verify(package: dict, target: Path) -> tuple[int, str]:
    """verify.py's main() in this process: (exit status, the failed check or 'input')."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = verifier.main([str(target)])
    last = err.getvalue().splitlines()[-1] if rc else ""
    assert rc == 0 or last.startswith("FAILED "), err.getvalue()
    return rc, last.removeprefix("FAILED ").split(":")[0]


def breaks_json(name: str, data: bytes) -> bool:
    try:
        json.loads(data)
    except ValueError:
        return name.endswith(".json")
    return False


def test_the_package_verifies_untouched(package):
    proc = run_verify(package, package["zip"])
    assert proc.returncode == 0, proc.stderr
    assert len([ln for ln in proc.stdout.splitlines() if ln.startswith("OK ")]) == 2


def test_flipping_a_byte_of_any_member_fails_the_manifest(package, tmp_path):
    names = [i.filename for i, _ in package["members"]]
    assert len(names) >= 12
    for name, data in package["members"]:
        positions = [0, len(data) // 2, len(data) - 1]
        if name.filename == "MANIFEST.sha256":                 # a digest, a separator, a name
            positions = [0, 64, 66]
        for k, pos in enumerate(positions):
            if name.filename == "keys.json" and breaks_json("keys.json", flip(data, pos)):
                continue                                   # a known bug, tested below
            target = rewrite(package, tmp_path / f"t{k}.zip", {name.filename: flip(data, pos)})
            if k == 1:                                         # one per member through `python verify.py`
                proc = run_verify(package, target)
                assert proc.returncode == 1, (name.filename, proc.stdout)
                assert proc.stderr.splitlines()[-1].startswith("FAILED manifest:"), (name.filename, proc.stderr)
            else:
                assert in_process_verify(package, target) == (1, "manifest"), (name.filename, pos)


def test_a_corrupted_keys_json_names_the_manifest(package, tmp_path):
    data = dict((i.filename, d) for i, d in package["members"])["keys.json"]
    target = rewrite(package, tmp_path / "t.zip", {"keys.json": flip(data, 0)})
    assert in_process_verify(package, target) == (1, "manifest")


@pytest.mark.parametrize("member,check", [
    ("original/en_soil.txt", "file-hash"),
    ("receipts/00000000-register.json", None),
    ("receipts/00000001-draft.json", None),
    ("consistency.json", "consistency"),
    ("keys.json", None),
])
def test_a_remanifested_package_still_fails_the_specific_check(package, tmp_path, member, check):
    """An attacker who also rewrites MANIFEST.sha256: the signed data still catches it."""
    data = dict((i.filename, d) for i, d in package["members"])[member]
    if member == "consistency.json":               # claim the log was rewritten after the receipt
        doc = json.loads(data)
        latest = dict((i.filename, d) for i, d in package["members"])["checkpoints/latest.txt"].decode()
        doc["receipts/00000000-register.json"] = [{"checkpoint": latest,
                                                   "proof": [base64.b64encode(bytes(32)).decode()]}]
        changed = json.dumps(doc).encode()
    elif member.endswith(".json") and member.startswith("receipts/"):
        changed = data.replace(b"Ann Writer", b"Bob Writer") if b"Ann Writer" in data else \
            data.replace(b"seed 1", b"seed 2")
        assert changed != data
    elif member == "keys.json":
        keys = json.loads(data)
        keys["log"] = [k[:-2] + ("A" if k[-2] != "A" else "B") + k[-1] for k in keys["log"]]
        changed = json.dumps(keys).encode()
    else:
        changed = flip(data, len(data) // 2)
    target = rewrite(package, tmp_path / "t.zip", {member: changed}, remanifest=True)
    got = in_process_verify(package, target)
    assert got[0] == 1
    if check:
        assert got[1] == check
    else:
        assert got[1] in CHECKS
    proc = run_verify(package, target)
    assert proc.returncode == 1 and proc.stderr.splitlines()[-1].startswith("FAILED ")


@pytest.mark.parametrize("member", ["record.json", "checkpoints/latest.txt", "drafts.json",
                                    "receipts/00000000-register.tlog-proof"])
def test_a_remanifested_package_with_a_doctored_evidence_member_fails(package, tmp_path, member):
    data = dict((i.filename, d) for i, d in package["members"])[member]
    if member == "record.json":
        record = json.loads(data)
        record["title"] = "Somebody else's work"
        changed = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
    elif member == "drafts.json":
        changed = data.replace(b"seed 1", b"seed 9")
    elif member.endswith(".tlog-proof"):
        head, sep, rest = data.partition(b"\n")
        changed = head + sep + b"extra " + base64.b64encode(b'{"body":{},"sig":""}') + rest[rest.index(b"\n"):]
    else:                                          # checkpoints/latest.txt: claim a bigger tree
        lines = data.split(b"\n")
        lines[1] = str(int(lines[1]) + 1).encode()
        changed = b"\n".join(lines)
    assert changed != data
    target = rewrite(package, tmp_path / "t.zip", {member: changed}, remanifest=True)
    assert in_process_verify(package, target)[0] == 1


def test_a_package_with_a_member_removed_or_added_fails(package, tmp_path):
    files = dict((i.filename, d) for i, d in package["members"])
    path = tmp_path / "less.zip"
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            if name != "drafts.json":
                z.writestr(name, data)
    assert in_process_verify(package, path) == (1, "manifest")
    path = tmp_path / "more.zip"
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
        z.writestr("original/extra.txt", b"smuggled in")
    assert in_process_verify(package, path) == (1, "manifest")
    proc = run_verify(package, tmp_path / "missing.zip")
    assert proc.returncode == 2 and proc.stderr.startswith("FAILED input:")
    (tmp_path / "garbage.zip").write_bytes(b"PK\x03\x04 not really a zip")
    proc = run_verify(package, tmp_path / "garbage.zip")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
