"""Receipts end to end, through the CLI (and the standalone verifier.py):
register / private / draft / label / revoke / derive, key rotation, encrypted
keys, verifying without a workspace, checkpoints and consistency over time."""
from __future__ import annotations

import base64
import hashlib
import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import assert_clean_failure
from copyscope.ledger import verifier
from copyscope.ledger.verifier import VerificationError, VKey

VERIFIER = Path(verifier.__file__).resolve()
ALL_CHECKS = "checked: entry-signature, inclusion, checkpoint-signature, cosignature, file-hash, consistency"
WORDS = ("river stone lantern harbor meadow copper window orchard signal thread winter basket "
         "candle silver garden ladder marble pocket quiet rocket saddle timber velvet whistle "
         "anchor bridge cellar dragon ember falcon glacier hollow island jungle kettle lemon").split()


def make_text(path: Path, seed: int, words: int = 150) -> Path:
    rng = random.Random(seed)
    lines = [" ".join(rng.choice(WORDS) for _ in range(15)) for _ in range(words // 15)]
    path.write_text(f"Document {seed}\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def receipt_of(home: Path, work: str) -> Path:
    return home / "receipts" / f"{work}.json"


def body_of(receipt: dict) -> dict:
    return json.loads(receipt["entry"])["body"]


def load(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def keys_show(cli) -> dict[str, list[str]]:
    rc, out, err = cli("keys", "show")
    assert rc == 0, err
    keys: dict[str, list[str]] = {}
    for line in out.splitlines():
        role, vkey = line.split("\t")
        keys.setdefault(role, []).append(vkey)
    return keys


def run_verifier(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(VERIFIER), *map(str, args)], capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)


@pytest.fixture
def files(tmp_path, samples) -> dict[str, Path]:
    d = tmp_path / "in"
    d.mkdir()
    out = {}
    for name in ("en_soil.txt", "zh_tea.txt", "en_lighthouse.md", "zh_bridge.txt"):
        out[name] = Path(shutil.copy(samples / "registered" / name, d / name))
    return out


@pytest.fixture
def ws(cli, home, files) -> Path:
    """A workspace with en_soil.txt registered as W0000001."""
    rc, _, err = cli("init")
    assert rc == 0, err
    rc, out, err = cli("register", files["en_soil.txt"], "--owner", "Ann Writer", "--license", "CC-BY-4.0",
                       "--title", "Soil")
    assert rc == 0, err
    assert out.startswith("W0000001\tSoil\t")
    return home


# --- register, verify ------------------------------------------------------------------

def test_register_gives_a_receipt_that_verifies(cli, ws, files):
    path = receipt_of(ws, "W0000001")
    receipt = load(path)
    assert receipt["schema"] == "copyscope.receipt/v1" and receipt["index"] == 0 and receipt["work"] == "W0000001"
    body = body_of(receipt)
    assert body["kind"] == "register" and body["work"] == "W0000001"
    assert body["content"]["sha256"] == hashlib.sha256(files["en_soil.txt"].read_bytes()).hexdigest()
    assert (body["owner"], body["license"], body["title"]) == ("Ann Writer", "CC-BY-4.0", "Soil")
    rc, out, err = cli("verify", path, files["en_soil.txt"])
    assert rc == 0, err
    assert out.startswith("OK W0000001 (register) is entry 0 of copyscope.local/ws-")
    assert ALL_CHECKS in out and "log consistent up to size 1" in out
    rc, out, err = cli("--json", "verify", path, files["en_soil.txt"])
    assert rc == 0, err
    result = json.loads(out)
    assert result["ok"] is True and result["kind"] == "register" and result["tree_size"] == 1
    assert result["cosigned_time"] > 1_600_000_000


def test_a_wrong_file_fails_the_file_hash_check(cli, ws, files):
    rc, out, err = cli("verify", receipt_of(ws, "W0000001"), files["zh_tea.txt"])
    assert rc == 6 and out == ""
    (line,) = assert_clean_failure(err, want="error")
    assert "file-hash" in line


def test_the_receipt_verifies_with_the_standalone_verifier(cli, ws, files):
    keys = keys_show(cli)
    proc = run_verifier("--receipt", receipt_of(ws, "W0000001"), "--file", files["en_soil.txt"],
                        "--log-key", keys["log"][0], "--clock-key", keys["clock"][0])
    assert proc.returncode == 0, proc.stderr
    (line,) = proc.stdout.splitlines()
    result = json.loads(line.removeprefix("OK "))
    assert result["kind"] == "register" and result["index"] == 0 and result["cosigned_time"]
    proc = run_verifier("--receipt", receipt_of(ws, "W0000001"), "--file", files["zh_tea.txt"],
                        "--log-key", keys["log"][0])
    assert proc.returncode == 1 and proc.stderr.startswith("FAILED file-hash:")


# --- private registrations ---------------------------------------------------------------

def test_private_registration_logs_only_a_commitment(cli, ws, files, tmp_path):
    secret = files["zh_tea.txt"]
    sha = hashlib.sha256(secret.read_bytes()).hexdigest()
    rc, out, err = cli("register", secret, "--owner", "Secret Owner", "--license", "Secret-Licence",
                       "--title", "Secret Title", "--private")
    assert rc == 0, err
    receipt = load(receipt_of(ws, "W0000002"))
    body = body_of(receipt)
    assert set(body) == {"v", "kind", "claimant", "time", "work", "commitment"}
    for secret_text in (sha, "Secret Owner", "Secret-Licence", "Secret Title", "zh_tea"):
        assert secret_text not in receipt["entry"] and secret_text not in receipt["tlog_proof"]
    salt = base64.b64decode(receipt["opening"]["salt"])
    assert len(salt) == 32 and receipt["opening"]["content"]["sha256"] == sha
    assert body["commitment"] == hashlib.sha256(b"copyscope-commit/v1\n" + salt + bytes.fromhex(sha)).hexdigest()
    rc, out, err = cli("verify", receipt_of(ws, "W0000002"), secret)
    assert rc == 0, err
    assert "file-hash" in out
    rc, out, err = cli("verify", receipt_of(ws, "W0000002"), files["en_soil.txt"])
    assert rc == 6 and "file-hash" in err
    # the published log (tiles) reveals nothing either
    rc, _, err = cli("log", "export", tmp_path / "tiles")
    assert rc == 0, err
    blob = b"".join(p.read_bytes() for p in (tmp_path / "tiles").rglob("*") if p.is_file())
    for secret_text in (sha, "Secret Owner", "Secret-Licence", "Secret Title"):
        assert secret_text.encode() not in blob
    assert b"Ann Writer" in blob                            # the public entry is there


# --- draft, label, revoke, derive ------------------------------------------------------------

def test_drafts_labels_revocations_and_derivations(cli, ws, files, tmp_path):
    draft = make_text(tmp_path / "draft1.txt", 1)
    rc, out, err = cli("draft", "add", "W0000001", draft, "--note", "chose seed 1234")
    assert rc == 0, err
    assert out.strip() == "W0000001\tdraft\tledger index 1"
    rc, out, err = cli("label", "W0000001", "AI-assisted")
    assert (rc, out.strip()) == (0, "W0000001\tlabel\tledger index 2"), err
    rc, out, err = cli("register", files["en_lighthouse.md"], "--owner", "Ann Writer", "--derived-from", "W0000001")
    assert rc == 0 and out.startswith("W0000002\t"), err
    rc, out, err = cli("revoke", "W0000001", "--reason", "withdrawn")
    assert (rc, out.strip()) == (0, "W0000001\trevoke\tledger index 4"), err

    rc, out, err = cli("receipt", "W0000001", "-o", tmp_path / "r")
    assert rc == 0, err
    assert out.splitlines() == ["W0000001\tregister\tledger index 0", "W0000001\tdraft\tledger index 1",
                                "W0000001\tlabel\tledger index 2", "W0000001\trevoke\tledger index 4"]
    got = {p.name: load(p) for p in sorted((tmp_path / "r").glob("*.json"))}
    assert list(got) == [f"W0000001-{i:08d}.json" for i in (0, 1, 2, 4)]
    bodies = [body_of(r) for r in got.values()]
    assert [b["kind"] for b in bodies] == ["register", "draft", "label", "revoke"]
    assert bodies[1]["content"] == {"sha256": hashlib.sha256(draft.read_bytes()).hexdigest(),
                                    "size": draft.stat().st_size, "media_type": "text/plain"}
    assert bodies[1]["note"] == "chose seed 1234"
    assert bodies[2]["label"] == "AI-assisted" and bodies[3]["reason"] == "withdrawn"
    derived = body_of(load(receipt_of(ws, "W0000002")))
    assert derived["kind"] == "derive" and derived["parents"] == ["W0000001"]
    for name, kind in zip(got, ["register", "draft", "label", "revoke"]):
        rc, out, err = cli("verify", tmp_path / "r" / name)
        assert rc == 0, err
        assert f"({kind})" in out and "log consistent up to size 5" in out
    rc, out, err = cli("verify", receipt_of(ws, "W0000002"), files["en_lighthouse.md"])
    assert rc == 0 and "W0000002 (derive)" in out, err
    rc, out, err = cli("verify", tmp_path / "r" / "W0000001-00000001.json", draft)
    assert rc == 0 and "file-hash" in out, err              # a draft receipt opens with its draft


def test_draft_label_revoke_of_an_unknown_work(cli, ws, files):
    for args in (("draft", "add", "W0000009", files["zh_tea.txt"]), ("label", "W0000009", "x"),
                 ("revoke", "W0000009"),
                 ("register", files["zh_tea.txt"], "--owner", "A", "--derived-from", "W0000009")):
        rc, out, err = cli(*args)
        assert rc == 4, (args, err)
        assert_clean_failure(err, want="error")


# --- key rotation ------------------------------------------------------------------------------

def test_rotation_starts_a_new_log_and_old_receipts_still_verify(cli, ws, files, tmp_path):
    old = tmp_path / "old.json"
    shutil.copy(receipt_of(ws, "W0000001"), old)
    old_origin = body_of(load(old))["claimant"].split("/claimant")[0]
    assert old_origin.endswith("/log1")
    rc, out, err = cli("keys", "rotate")
    assert rc == 0, err
    new_origin = out.strip().removeprefix("new log origin ")
    assert new_origin == old_origin[:-1] + "2"
    keys = keys_show(cli)
    assert [k.split("+")[0] for k in keys["log"]] == [old_origin, new_origin]
    assert len(keys["clock"]) == len(keys["claimant"]) == 2

    rc, out, err = cli("register", files["zh_tea.txt"], "--owner", "Ann Writer")
    assert rc == 0, err
    new = load(receipt_of(ws, "W0000002"))
    assert new["index"] == 0 and verifier.parse_tlog_proof(new["tlog_proof"])[3].startswith(new_origin + "\n1\n")
    rc, out, err = cli("verify", receipt_of(ws, "W0000002"), files["zh_tea.txt"])
    assert rc == 0 and f"entry 0 of {new_origin};" in out, err

    # the old receipt: through the workspace ...
    rc, out, err = cli("verify", old, files["en_soil.txt"])
    assert rc == 0 and f"of {old_origin};" in out and ALL_CHECKS in out, err
    # ... and through the standalone verifier with the old log key from `keys show`
    proc = run_verifier("--receipt", old, "--file", files["en_soil.txt"], "--log-key", keys["log"][0],
                        "--clock-key", keys["clock"][0])
    assert proc.returncode == 0 and proc.stdout.startswith("OK "), proc.stderr
    proc = run_verifier("--receipt", old, "--log-key", keys["log"][1])          # only the new key
    assert proc.returncode == 1 and "checkpoint-signature" in proc.stderr
    # new entries of the old work go to the new log
    rc, out, err = cli("label", "W0000001", "after rotation")
    assert rc == 0 and out.strip() == "W0000001\tlabel\tledger index 1", err
    rc, out, err = cli("receipt", "W0000001")
    assert rc == 0, err
    origins = [verifier.parse_tlog_proof(r["tlog_proof"])[3].split("\n")[0] for r in json.loads(out)]
    assert origins == [old_origin, new_origin]


# --- encrypted keys ------------------------------------------------------------------------------

def test_encrypted_keys(cli, home, files, monkeypatch):
    monkeypatch.setenv("COPYSCOPE_PASSPHRASE", "correct horse battery staple")
    rc, _, err = cli("init")
    assert rc == 0, err
    pems = sorted((home / "keys").glob("*.pem"))
    assert [p.name for p in pems] == ["claimant-1.pem", "clock-1.pem", "log-1.pem"]
    for p in pems:
        text = p.read_text(encoding="ascii")
        assert text.startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----\n") and "BEGIN PRIVATE KEY" not in text
    assert load(home / "keys" / "keys.json")["generations"][0]["encrypted"] is True
    rc, _, err = cli("register", files["en_soil.txt"], "--owner", "Ann")
    assert rc == 0, err

    monkeypatch.setenv("COPYSCOPE_PASSPHRASE", "wrong")
    rc, out, err = cli("register", files["zh_tea.txt"], "--owner", "Ann")
    assert rc == 3 and out == ""
    (line,) = assert_clean_failure(err, want="error")
    assert "cannot unlock the ledger key" in line and "log-1.pem" in line
    monkeypatch.delenv("COPYSCOPE_PASSPHRASE")
    for args in (("register", files["zh_tea.txt"], "--owner", "Ann"), ("label", "W0000001", "x"),
                 ("keys", "rotate")):
        rc, out, err = cli(*args)
        assert rc == 3, (args, err)
        (line,) = assert_clean_failure(err, want="error")
        assert "wrong or missing passphrase" in line and "hint: set COPYSCOPE_PASSPHRASE" in err
    # verifying needs no private key
    rc, out, err = cli("verify", receipt_of(home, "W0000001"), files["en_soil.txt"])
    assert rc == 0, err
    rc, _, err = cli("keys", "show")
    assert rc == 0, err


def test_read_only_ledger_commands_need_no_passphrase(cli, home, files, monkeypatch, tmp_path):
    monkeypatch.setenv("COPYSCOPE_PASSPHRASE", "pw")
    assert cli("init")[0] == 0
    assert cli("register", files["en_soil.txt"], "--owner", "Ann")[0] == 0
    monkeypatch.delenv("COPYSCOPE_PASSPHRASE")
    rc, out, err = cli("log", "checkpoint")
    assert rc == 0, err
    rc, out, err = cli("export", "W0000001", "-o", tmp_path / "e.zip")
    assert rc == 0, err


# --- verify without a workspace -------------------------------------------------------------------

def test_verify_without_a_workspace_needs_pinned_keys(cli, ws, files, tmp_path):
    keys = keys_show(cli)
    receipt = receipt_of(ws, "W0000001")
    nows = tmp_path / "no-workspace"
    rc, out, err = cli("verify", receipt, files["en_soil.txt"], home=nows)
    assert rc == 2 and out == ""
    (line,) = assert_clean_failure(err, want="error")
    assert "--log-key" in line
    rc, out, err = cli("verify", receipt, files["en_soil.txt"], "--log-key", keys["log"][0], home=nows)
    assert rc == 0, err
    assert "checked: entry-signature, inclusion, checkpoint-signature, file-hash;" in out
    rc, out, err = cli("verify", receipt, files["en_soil.txt"], "--log-key", keys["log"][0],
                       "--clock-key", keys["clock"][0], home=nows)
    assert rc == 0 and "cosignature" in out, err
    assert not nows.exists()                                  # verifying created no workspace
    # someone else's log key is not this log's key
    rc, _, err = cli("init", home=tmp_path / "other")
    assert rc == 0, err
    rc, out, _ = cli("keys", "show", home=tmp_path / "other")
    other_log = [ln.split("\t")[1] for ln in out.splitlines() if ln.startswith("log\t")][0]
    rc, out, err = cli("verify", receipt, "--log-key", other_log, home=nows)
    assert rc == 6 and "checkpoint-signature" in err
    rc, out, err = cli("verify", receipt, "--log-key", "not a key", home=nows)
    assert rc == 6 and "key" in err
    assert_clean_failure(err, want="error")


# --- checkpoints and consistency ---------------------------------------------------------------

def test_log_checkpoint_prints_a_signed_note(cli, ws):
    rc, out, err = cli("log", "checkpoint")
    assert rc == 0, err
    keys = keys_show(cli)
    origin, size, root, when = verifier.open_checkpoint(out, [VKey(k) for k in keys["log"]],
                                                        [VKey(k) for k in keys["clock"]])
    assert origin == keys["log"][0].split("+")[0] and size == 1 and len(root) == 32 and when
    text, sigs = verifier.split_note(out)
    assert text.count("\n") == 3 and [n for n, _ in sigs] == [origin, origin + "/clock"]
    receipt = load(receipt_of(ws, "W0000001"))
    assert verifier.parse_tlog_proof(receipt["tlog_proof"])[3] == out


def test_an_old_receipt_stays_consistent_with_a_growing_log(cli, ws, files, tmp_path):
    old_path = tmp_path / "old.json"
    shutil.copy(receipt_of(ws, "W0000001"), old_path)
    old = load(old_path)
    for batch in range(5):                                   # 50 more registrations, 5 checkpoints
        d = tmp_path / f"batch{batch}"
        d.mkdir()
        for i in range(10):
            make_text(d / f"doc{i}.txt", 1000 + 10 * batch + i)
        rc, out, err = cli("register", d, "--each", "--owner", "Ann")
        assert rc == 0, err
        assert len(out.splitlines()) == 10
    rc, out, err = cli("verify", old_path, files["en_soil.txt"])
    assert rc == 0, err
    assert ALL_CHECKS in out and "log consistent up to size 51" in out

    from copyscope import api
    keys = keys_show(cli)
    logs, clocks = [VKey(k) for k in keys["log"]], [VKey(k) for k in keys["clock"]]
    with api.open_workspace(api.Settings.resolve(ws)) as w:
        step = w.ledger.consistency_to_latest(1, 1)
        with w.engine.connect() as conn:
            cps = w.ledger.log.checkpoints(conn, 1)
            assert [cp.size for cp in cps] == [1, 11, 21, 31, 41, 51]
            chain = [{"checkpoint": b.note, "proof": [base64.b64encode(h).decode()
                                                      for h in w.ledger.log.consistency(conn, 1, a.size, b.size)]}
                     for a, b in zip(cps, cps[1:])]
    assert verifier.verify_receipt(old, logs, clocks, files["en_soil.txt"].read_bytes(), [step])["tree_size"] == 51
    assert verifier.verify_receipt(old, logs, clocks, None, chain)["tree_size"] == 51
    # a doctored consistency proof, or a checkpoint of another log, fails the consistency check
    bad = dict(step, proof=[base64.b64encode(bytes(32)).decode()] + step["proof"][1:])
    with pytest.raises(VerificationError) as info:
        verifier.verify_receipt(old, logs, clocks, None, [bad])
    assert info.value.check == "consistency"
    with pytest.raises(VerificationError) as info:
        verifier.verify_receipt(old, logs, clocks, None, chain[:1] + chain[2:])    # a gap in the chain
    assert info.value.check == "consistency"
    with pytest.raises(VerificationError) as info:
        verifier.verify_receipt(old, logs, clocks, None, [chain[1]])              # starts at 11, not 1
    assert info.value.check == "consistency"
