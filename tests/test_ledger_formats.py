"""C2SP formats: signed-note (keys, signatures, notes), tlog-checkpoint,
tlog-cosignature (cosignature/v1), tlog-proof and tlog-tiles.

Published vectors (tests/data/ledger/README.md): the golang.org/x/mod
sumdb/note test key and note (the reference implementation of C2SP
signed-note), and the examples of the C2SP signed-note, tlog-cosignature and
tlog-proof specifications.
"""
from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from copyscope.ledger import merkle, tiles, verifier
from copyscope.ledger.entries import make_entry
from copyscope.ledger.keys import KeyStore, Signer, sign_note
from copyscope.ledger.log import Log, checkpoint_text, tlog_proof
from copyscope.ledger.verifier import COSIGNATURE_V1, ED25519, VerificationError, VKey
from copyscope.storage import schema as t
from copyscope.storage.registry import make_engine, migrate

DATA = Path(__file__).resolve().parent / "data" / "ledger"
V = json.loads((DATA / "signed_note_vectors.json").read_text(encoding="utf-8"))
TEXT = V["text"]
PETER_SIG, ENOCH_SIG = V["peter"]["sig_line"], V["enoch"]["sig_line"]


def check_of(fn, *args) -> str | None:
    """The name of the failed check, or None when ``fn`` passes."""
    try:
        fn(*args)
    except VerificationError as exc:
        return exc.check
    return None


def new_signer(name: str, kind: int = ED25519) -> Signer:
    return Signer(name, kind, Ed25519PrivateKey.generate())


def peter_signer() -> Signer:
    # PRIVATE+KEY+<name>+<hash>+<base64(0x01 || seed)>; the base64 may hold '+'
    _, _, name, khash, blob = V["peter"]["skey"].split("+", 4)
    raw = base64.b64decode(blob)
    assert raw[0] == ED25519 and len(raw) == 33
    signer = Signer(name, ED25519, Ed25519PrivateKey.from_private_bytes(raw[1:]))
    assert signer.key_id.hex() == khash
    return signer


# --- verifier keys and key IDs --------------------------------------------------------

@pytest.mark.parametrize("kind", [ED25519, COSIGNATURE_V1])
def test_key_id_is_sha256_of_name_newline_type_key(kind):
    s = new_signer("example.com/log", kind)
    want = hashlib.sha256(b"example.com/log" + b"\x0a" + bytes([kind]) + s.public).digest()[:4]
    assert s.key_id == verifier.key_id("example.com/log", kind, s.public) == want
    name, kid, blob = s.vkey().split("+", 2)
    assert (name, kid) == ("example.com/log", want.hex())
    assert base64.b64decode(blob) == bytes([kind]) + s.public


@pytest.mark.parametrize("who,kid", [("peter", "c74f20a3"), ("enoch", "af0cfe78")])
def test_published_verifier_keys(who, kid):
    k = VKey(V[who]["vkey"])
    assert k.id.hex() == kid and k.kind == ED25519 and len(k.public) == 32
    assert verifier.key_id(k.name, ED25519, k.public).hex() == kid
    assert k.text == V[who]["vkey"]


def test_vkey_round_trip_with_plus_in_the_base64():
    """Names hold no '+'; the base64 key material may (the parser splits twice only)."""
    for _ in range(500):
        s = new_signer("copyscope.local/ws-test/log1")
        if "+" in s.vkey().split("+", 2)[2]:
            break
    else:                                                      # pragma: no cover - p ~ 1e-100
        pytest.fail("no key with '+' in its base64 in 500 tries")
    k = VKey(s.vkey())
    assert (k.name, k.kind, k.public, k.id, k.text) == (s.name, ED25519, s.public, s.key_id, s.vkey())
    c = new_signer("copyscope.local/ws-test/log1/clock", COSIGNATURE_V1)
    kc = VKey(c.vkey())
    assert (kc.name, kc.kind, kc.public) == (c.name, COSIGNATURE_V1, c.public)
    assert c.vkey().split("+", 2)[2].startswith("B")            # base64 of 0x04 ...


def test_mangled_verifier_keys_are_rejected():
    """golang.org/x/mod note_test.go TestNewVerifier: every proper substring and every
    single-byte increment of the vkey, and two published bad keys, are refused."""
    vkey = V["peter"]["vkey"]
    bad = {vkey[i:j] for i in range(len(vkey) + 1) for j in range(i + 1, len(vkey) + 1)} - {vkey}
    bad |= {vkey[:i] + chr(ord(vkey[i]) + 1) + vkey[i + 1:] for i in range(len(vkey))}
    bad |= set(V["bad_vkeys"])
    for k in sorted(bad):
        with pytest.raises(VerificationError) as info:
            VKey(k)
        assert info.value.check == "key", k


def test_a_name_with_a_plus_cannot_be_a_vkey():
    s = new_signer("a+b")
    with pytest.raises(VerificationError) as info:
        VKey(s.vkey())
    assert info.value.check == "key"


# --- signed notes ----------------------------------------------------------------------

def test_signing_reproduces_the_published_note_byte_for_byte():
    signer = peter_signer()
    assert signer.vkey() == V["peter"]["vkey"]
    assert sign_note(TEXT, [signer]) == V["signed_note"] == TEXT + "\n" + PETER_SIG


def test_the_published_note_verifies():
    text, sigs = verifier.split_note(V["signed_note"])
    assert text == TEXT and [n for n, _ in sigs] == ["PeterNeumann"]
    assert verifier.check_signature(text, sigs, VKey(V["peter"]["vkey"]), "x") is None


def test_signature_over_a_modified_text_fails():
    for changed in (V["signed_note"].replace("cryptography", "cryptographY"),
                    V["signed_note"].replace("problem,", "problem;"),
                    "X" + V["signed_note"]):
        text, sigs = verifier.split_note(changed)
        assert check_of(verifier.check_signature, text, sigs, VKey(V["peter"]["vkey"]), "sig") == "sig"


def test_unknown_keys_are_ignored_and_the_pinned_key_is_required():
    """note_test.go TestOpen: verified and unverified signatures, unknown keys."""
    peter, enoch = VKey(V["peter"]["vkey"]), VKey(V["enoch"]["vkey"])
    text, sigs = verifier.split_note(TEXT + "\n" + PETER_SIG + ENOCH_SIG)
    assert verifier.check_signature(text, sigs, peter, "x") is None        # enoch: ignored
    assert verifier.check_signature(text, sigs, enoch, "x") is None        # both verify
    # duplicated verified and unverified signatures (one of enoch's is garbage)
    enoch_abcd = ENOCH_SIG[:60] + "ABCD" + ENOCH_SIG[60:]
    text, sigs = verifier.split_note(TEXT + "\n" + PETER_SIG + PETER_SIG + ENOCH_SIG + ENOCH_SIG + enoch_abcd)
    assert verifier.check_signature(text, sigs, peter, "x") is None
    # only an unknown key signed: the pinned key's signature is missing
    text, sigs = verifier.split_note(TEXT + "\n" + ENOCH_SIG)
    assert check_of(verifier.check_signature, text, sigs, peter, "x") == "x"
    # the same name with another key id (and the same id under another name) are unknown keys
    for line in (PETER_SIG.replace("PeterNeumann", "CarmenSandiego"), PETER_SIG.replace("x08g", "xxxx")):
        text, sigs = verifier.split_note(TEXT + "\n" + line)
        assert check_of(verifier.check_signature, text, sigs, peter, "x") == "x"
    # a known key whose signature does not verify: rejected
    text, sigs = verifier.split_note(TEXT + "\n" + PETER_SIG[:60] + "ABCD" + PETER_SIG[60:])
    assert check_of(verifier.check_signature, text, sigs, peter, "x") == "x"


@pytest.mark.parametrize("note", [
    TEXT,                                                    # no signatures
    TEXT + "\n",                                             # a blank line, no signatures
    "\x01" + TEXT + "\n" + PETER_SIG,                        # control character (and wrong text)
    TEXT + "\n" + "\u2014 Bad Name " + PETER_SIG.split(" ")[2].rstrip("\n"),
    TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
], ids=["text-only", "blank-line-only", "control-char", "bad-name", "unexpected-line"])
def test_malformed_notes_are_rejected(note):
    """note_test.go TestOpen badMsgs (rejected here by parsing or by the signature)."""
    def open_note():
        text, sigs = verifier.split_note(note)
        verifier.check_signature(text, sigs, VKey(V["peter"]["vkey"]), "checkpoint-signature")
    assert check_of(open_note) == "checkpoint-signature"


def test_a_signature_line_without_its_newline_is_malformed():
    with pytest.raises(VerificationError):
        verifier.split_note(TEXT + "\n" + PETER_SIG[:-1])


def test_the_c2sp_example_note_parses_and_its_unknown_key_is_ignored():
    """signed-note.md: the text may contain blank lines; the last one separates the
    signatures. The spec publishes no key, so a key of the same name but another
    id is an unknown key: ignored, and then the pinned key's signature is missing."""
    text, sigs = verifier.split_note(V["c2sp_example_note"])
    assert text == "Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n\ned \u00e8 subito sera.\n"
    assert [(n, len(s)) for n, s in sigs] == [("quasimodo.example/salvatore", 4 + 64)]
    impostor = VKey(new_signer("quasimodo.example/salvatore").vkey())
    assert check_of(verifier.check_signature, text, sigs, impostor, "x") == "x"


# --- checkpoints (tlog-checkpoint) ----------------------------------------------------

ORIGIN = "copyscope.local/ws-test/log1"
ROOT = hashlib.sha256(b"some root").digest()


def signed_checkpoint(size: int = 42, root: bytes = ROOT, when: int = 1_700_000_000):
    log = new_signer(ORIGIN)
    clock = new_signer(ORIGIN + "/clock", COSIGNATURE_V1)
    note = sign_note(checkpoint_text(ORIGIN, size, root), [log, clock], when=when)
    return note, VKey(log.vkey()), VKey(clock.vkey())


def test_checkpoint_text_layout():
    assert checkpoint_text(ORIGIN, 42, ROOT) == f"{ORIGIN}\n42\n{base64.b64encode(ROOT).decode()}\n"
    with pytest.raises(ValueError):
        sign_note("no final newline", [new_signer("x")])
    with pytest.raises(ValueError):
        sign_note("a\n\nb\n", [new_signer("x")])


def test_a_signed_checkpoint_parses():
    note, logk, clockk = signed_checkpoint()
    assert verifier.open_checkpoint(note, [logk], [clockk]) == (ORIGIN, 42, ROOT, 1_700_000_000)
    assert verifier.open_checkpoint(note, [logk], []) == (ORIGIN, 42, ROOT, None)
    lines = note.split("\n")
    assert lines[3] == "" and lines[4].startswith(f"\u2014 {ORIGIN} ")
    assert lines[5].startswith(f"\u2014 {ORIGIN}/clock ")


@pytest.mark.parametrize("old,new", [("\n42\n", "\n43\n"), (ORIGIN + "\n", ORIGIN + "x\n")])
def test_a_modified_checkpoint_fails_its_signature(old, new):
    note, logk, clockk = signed_checkpoint()
    bad = note.replace(old, new, 1)
    keys = [logk, VKey(new_signer(ORIGIN + "x").vkey())]       # pin a key for the renamed origin too
    assert check_of(verifier.open_checkpoint, bad, keys, [clockk]) == "checkpoint-signature"


def test_a_modified_checkpoint_root_fails_its_signature():
    note, logk, clockk = signed_checkpoint()
    b64 = base64.b64encode(ROOT).decode()
    other = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    assert check_of(verifier.open_checkpoint, note.replace(b64, other), [logk], [clockk]) == "checkpoint-signature"


def test_unknown_signers_are_ignored_but_the_log_key_must_sign():
    note, logk, clockk = signed_checkpoint()
    text, _ = verifier.split_note(note)
    stranger = new_signer("witness.example/w1").note_line(text)
    impostor = new_signer(ORIGIN).note_line(text)            # the log's name, another key
    extended = note + stranger + impostor
    assert verifier.open_checkpoint(extended, [logk], [clockk])[:3] == (ORIGIN, 42, ROOT)
    without_log = text + "\n" + "".join(line + "\n" for line in note.split("\n")[5:6]) + stranger + impostor
    assert check_of(verifier.open_checkpoint, without_log, [logk], [clockk]) == "checkpoint-signature"
    assert check_of(verifier.open_checkpoint, note, [VKey(new_signer("another.example/log").vkey())], []) \
        == "checkpoint-signature"                              # no pinned key for this origin


# --- cosignature/v1 (tlog-cosignature) --------------------------------------------------

def test_cosignature_v1_message_and_timestamp_layout():
    """tlog-cosignature.md: signature = u64 big-endian timestamp || Ed25519 over
    "cosignature/v1\\ntime <t>\\n" + the checkpoint body; reproduce the spec's example
    message exactly (its example checkpoint and time)."""
    body = V["c2sp_cosigned_checkpoint"].split("\n\n")[0] + "\n"
    when = 1679315147
    assert f"cosignature/v1\ntime {when}\n{body}" == V["c2sp_cosignature_message"]
    w = new_signer("witness.example.com/w1", COSIGNATURE_V1)
    line = w.note_line(body, when=when)
    assert line.startswith("\u2014 witness.example.com/w1 ") and line.endswith("\n")
    raw = base64.b64decode(line.split(" ")[2])
    assert len(raw) == 4 + 8 + 64
    assert raw[:4] == w.key_id == hashlib.sha256(b"witness.example.com/w1\n\x04" + w.public).digest()[:4]
    assert raw[4:12] == when.to_bytes(8, "big") == bytes.fromhex("00000000641850cb")
    Ed25519PublicKey.from_public_bytes(w.public).verify(raw[12:], V["c2sp_cosignature_message"].encode())
    text, sigs = verifier.split_note(body + "\n" + line)
    assert verifier.check_signature(text, sigs, VKey(w.vkey()), "cosignature") == when


def test_the_published_cosignature_carries_its_time_big_endian():
    """In the spec's example cosigned checkpoint, bytes 4..12 of the witness signature are
    the time of the spec's example message (1679315147)."""
    text, sigs = verifier.split_note(V["c2sp_cosigned_checkpoint"])
    assert verifier.parse_checkpoint(text)[:2] == ("example.com/behind-the-sofa", 20852163)
    witness = dict(sigs)["witness.example.com/w1"]
    assert len(witness) == 4 + 8 + 64
    assert int.from_bytes(witness[4:12], "big") == 1679315147
    assert len(dict(sigs)["example.com/behind-the-sofa"]) == 4 + 64


@pytest.mark.parametrize("when", [0, 1, 2**32 + 5, 2**63 - 1])
def test_cosignature_times_round_trip(when):
    note, logk, clockk = signed_checkpoint(when=when)
    assert verifier.open_checkpoint(note, [logk], [clockk])[3] == when


def test_a_cosignature_with_another_time_fails():
    note, logk, clockk = signed_checkpoint(when=1_700_000_000)
    text, sigs = verifier.split_note(note)
    name, sig = sigs[1]
    forged = sig[:4] + (1_800_000_000).to_bytes(8, "big") + sig[12:]       # move the clock
    line = f"\u2014 {name} {base64.b64encode(forged).decode()}\n"
    bad = text + "\n" + note.split("\n")[4] + "\n" + line
    assert check_of(verifier.open_checkpoint, bad, [logk], [clockk]) == "cosignature"


def test_a_plain_signature_is_not_a_cosignature():
    """Key types are not interchangeable: the same key pinned as type 0x04 does not
    accept a 0x01 signature line (the key ids differ, so the line is unknown)."""
    k = Ed25519PrivateKey.generate()
    plain, cosig = Signer(ORIGIN + "/clock", ED25519, k), Signer(ORIGIN + "/clock", COSIGNATURE_V1, k)
    assert plain.key_id != cosig.key_id
    body = checkpoint_text(ORIGIN, 1, ROOT)
    text, sigs = verifier.split_note(body + "\n" + plain.note_line(body))
    assert check_of(verifier.check_signature, text, sigs, VKey(cosig.vkey()), "cosignature") == "cosignature"


# --- tlog-proof ----------------------------------------------------------------------------

def test_tlog_proof_round_trip_with_and_without_extra():
    note, _, _ = signed_checkpoint(size=5)
    hashes = [hashlib.sha256(bytes([i])).digest() for i in range(3)]
    plain = tlog_proof(4, hashes, note)
    lines = plain.split("\n")
    assert lines[0] == "c2sp.org/tlog-proof@v1" and lines[1] == "index 4"
    assert lines[2:5] == [base64.b64encode(h).decode() for h in hashes] and lines[5] == ""
    assert plain.endswith("\n\n" + note)
    assert verifier.parse_tlog_proof(plain) == (None, 4, hashes, note)
    with_extra = tlog_proof(4, hashes, note, extra=b"the entry \x00\xff")
    assert with_extra.split("\n")[1] == "extra " + base64.b64encode(b"the entry \x00\xff").decode()
    assert verifier.parse_tlog_proof(with_extra) == (b"the entry \x00\xff", 4, hashes, note)
    empty = tlog_proof(0, [], note, extra=b"")
    assert verifier.parse_tlog_proof(empty) == (b"", 0, [], note)


def test_the_c2sp_tlog_proof_example_round_trips():
    example = V["c2sp_tlog_proof_example"]
    extra, index, hashes, checkpoint = verifier.parse_tlog_proof(example)
    assert extra == base64.b64decode("YWdlLXYxLjIuMS1kYXJ3aW4tYXJtNjQudGFyLmd6kYXJ3aW4tYXJ")
    assert extra.startswith(b"age-v1.2.1-darwin-arm64.tar.gz")
    assert index == 73894 and len(hashes) == 5 and all(len(h) == 32 for h in hashes)
    assert checkpoint.startswith("example.com/fancylog\n109482\nsFodV/vSp5O8n9a8QpW6PRY97tfOSW5bsc2Xl/EQi08=\n\n")
    assert tlog_proof(index, hashes, checkpoint, extra=extra) == example


@pytest.mark.parametrize("mangle", [
    lambda p: p.replace("c2sp.org/tlog-proof@v1", "c2sp.org/tlog-proof@v2"),
    lambda p: "\n" + p,
    lambda p: p.replace("index 4\n", ""),
    lambda p: p.replace("index 4", "index four"),
    lambda p: p.replace("index 4", "index -4"),
    lambda p: p.replace("\n\n", "\n", 1),
    lambda p: p.replace("extra ", "extra !"),
], ids=["header", "leading-blank", "no-index", "index-word", "index-negative", "no-blank-line", "bad-extra"])
def test_malformed_tlog_proofs_are_rejected(mangle):
    note, _, _ = signed_checkpoint(size=5)
    good = tlog_proof(4, [hashlib.sha256(b"x").digest()], note, extra=b"e")
    assert check_of(verifier.parse_tlog_proof, mangle(good)) == "inclusion"


# --- tlog-tiles ------------------------------------------------------------------------------

@pytest.mark.parametrize("n,path", [(0, "000"), (5, "005"), (999, "999"), (1000, "x001/000"),
                                    (1234067, "x001/x234/067"), (1000000, "x001/x000/000")])
def test_tile_path(n, path):
    assert tiles.tile_path(n) == path


@pytest.fixture
def fresh_log(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'registry.db'}")
    migrate(engine)
    keys = KeyStore(tmp_path / "home")
    ring = keys.create("ws-tiles")
    yield Log(engine, keys), ring
    engine.dispose()


def _read_tile(out: Path, level: str, n: int, width: int) -> bytes:
    name = f"tile/{level}/{tiles.tile_path(n)}" + ("" if width == 256 else f".p/{width}")
    return (out / name).read_bytes()


def tile_hashes(out: Path, level: int, count: int) -> list[bytes]:
    """The hashes 0..count-1 of a tile level, read as a tiles client would."""
    out_hashes = []
    for n in range((count + 255) // 256):
        width = min(256, count - n * 256)
        data = _read_tile(out, str(level), n, width)
        assert len(data) == 32 * width
        out_hashes += [data[i:i + 32] for i in range(0, len(data), 32)]
    return out_hashes


def _fold(hashes: list[bytes]) -> bytes:
    """MTH of 2**k consecutive node hashes."""
    while len(hashes) > 1:
        hashes = [merkle.node_hash(hashes[i], hashes[i + 1]) for i in range(0, len(hashes), 2)]
    return hashes[0]


def mth_of_hashes(hashes: list[bytes]) -> bytes:
    """RFC 9162 MTH over leaf hashes (split at the largest power of two below n)."""
    if len(hashes) == 1:
        return hashes[0]
    k = 1 << ((len(hashes) - 1).bit_length() - 1)
    return merkle.node_hash(mth_of_hashes(hashes[:k]), mth_of_hashes(hashes[k:]))


def root_from_tiles(out: Path, size: int) -> bytes:
    """tlog-tiles client: each complete subtree of the tree's frontier is read from
    the tile level holding its height (level 8*L) or folded from the level below."""
    levels: dict[int, list[bytes]] = {}
    subtrees, start = [], 0
    frontier = []                                  # the complete subtrees of the tree, left to right
    for height in range(size.bit_length() - 1, -1, -1):
        if size >> height & 1:
            frontier.append((height, start >> height))
            start += 1 << height
    for height, idx in frontier:
        tl, r = divmod(height, 8)
        if tl not in levels:
            levels[tl] = tile_hashes(out, tl, size >> (8 * tl))
        subtrees.append(_fold(levels[tl][idx << r:(idx + 1) << r]))
    root = subtrees[-1]
    for h in reversed(subtrees[:-1]):
        root = merkle.node_hash(h, root)
    return root


def entry_bundle(out: Path, n: int, width: int) -> list[bytes]:
    data, entries, i = _read_tile(out, "entries", n, width), [], 0
    while i < len(data):
        length = int.from_bytes(data[i:i + 2], "big")
        entries.append(data[i + 2:i + 2 + length])
        i += 2 + length
    assert i == len(data) and len(entries) == width
    return entries


def listing(out: Path) -> set[str]:
    return {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}


def test_export_600_entries_and_recompute_the_checkpoint(fresh_log, tmp_path):
    log, ring = fresh_log
    for b in range(6):
        log.append_entries([make_entry("label", ring.claimant, work_id=f"W{b:03d}{i:03d}", label=f"l{i}")
                            for i in range(100)])
    out = tmp_path / "tiles"
    info = tiles.export_tiles(log, out)
    assert info == {"tree_size": 600, "tiles": 4, "entry_bundles": 3}
    assert listing(out) == {"checkpoint", "tile/0/000", "tile/0/001", "tile/0/002.p/88", "tile/1/000.p/2",
                            "tile/entries/000", "tile/entries/001", "tile/entries/002.p/88"}
    vk = log.keys.verifier_keys()
    origin, size, root, when = verifier.open_checkpoint((out / "checkpoint").read_text(encoding="utf-8"),
                                                       [VKey(k) for k in vk["log"]], [VKey(k) for k in vk["clock"]])
    assert (origin, size) == (ring.origin, 600) and when is not None
    level0 = tile_hashes(out, 0, 600)
    entries = [e for n, w in ((0, 256), (1, 256), (2, 88)) for e in entry_bundle(out, n, w)]
    assert [merkle.leaf_hash(e) for e in entries] == level0
    for e in entries:
        verifier.verify_entry(e)                             # the entries are the signed leaves
    assert tile_hashes(out, 1, 2) == [_fold(level0[:256]), _fold(level0[256:512])]
    assert root_from_tiles(out, 600) == root == merkle.root_of_leaves(entries)


def test_export_256_entries_is_one_full_tile_and_a_level_1_tile_of_width_1(fresh_log, tmp_path):
    """tlog-tiles: "a tree of size 256 will be represented by a full level 0 tile and a
    partial level 1 tile of width 1"."""
    log, ring = fresh_log
    log.append_entries([make_entry("label", ring.claimant, work_id=f"W{i:07d}", label="x") for i in range(256)])
    out = tmp_path / "tiles"
    assert tiles.export_tiles(log, out) == {"tree_size": 256, "tiles": 2, "entry_bundles": 1}
    assert listing(out) == {"checkpoint", "tile/0/000", "tile/1/000.p/1", "tile/entries/000"}
    root = verifier.parse_checkpoint(verifier.split_note((out / "checkpoint").read_text(encoding="utf-8"))[0])[2]
    assert root_from_tiles(out, 256) == root == (out / "tile/1/000.p/1").read_bytes()


def test_export_the_spec_example_of_70000_entries(fresh_log, tmp_path):
    """tlog-tiles: "a tree of size 70,000 will be represented by 273 full level 0 tiles,
    one partial level 0 tile of width 112, one full level 1 tile, one partial level 1
    tile of width 17, and one partial level 2 tile of width 1". Appending 70,000
    signed entries is too slow for the suite, so the stored tree (the leaves and the
    level 0/8/16 nodes the exporter reads) is written directly, with a real signed
    checkpoint over its RFC 9162 root."""
    log, ring = fresh_log
    size = 70_000
    leaves = [b"entry %d" % i for i in range(size)]
    h0 = [merkle.leaf_hash(x) for x in leaves]
    h8 = [_fold(h0[i:i + 256]) for i in range(0, size - size % 256, 256)]
    h16 = [_fold(h8[:256])]
    root = mth_of_hashes(h0)
    with log.engine.begin() as conn:
        conn.execute(sa.insert(t.ledger_entries), [
            {"gen": ring.generation, "idx": i, "leaf": x, "kind": "label", "work_id": None,
             "created_at": "2000-01-01T00:00:00Z"} for i, x in enumerate(leaves)])
        conn.execute(sa.insert(t.ledger_nodes), [
            {"gen": ring.generation, "level": lv, "idx": i, "hash": h}
            for lv, row in ((0, h0), (8, h8), (16, h16)) for i, h in enumerate(row)])
        conn.execute(sa.insert(t.ledger_checkpoints).values(
            gen=ring.generation, size=size, note=sign_note(checkpoint_text(ring.origin, size, root),
                                                           [ring.log, ring.clock]),
            created_at="2000-01-01T00:00:00Z"))
    out = tmp_path / "tiles"
    info = tiles.export_tiles(log, out)
    files = listing(out)
    full0 = {f"tile/0/{tiles.tile_path(n)}" for n in range(273)}
    assert {f for f in files if f.startswith("tile/0/")} == full0 | {"tile/0/273.p/112"}
    assert {f for f in files if f.startswith("tile/1/")} == {"tile/1/000", "tile/1/001.p/17"}
    assert {f for f in files if f.startswith("tile/2/")} == {"tile/2/000.p/1"}
    assert {f for f in files if f.startswith("tile/entries/")} == \
        {f"tile/entries/{tiles.tile_path(n)}" for n in range(273)} | {"tile/entries/273.p/112"}
    assert not any(f.startswith("tile/3/") for f in files)
    assert info == {"tree_size": size, "tiles": 274 + 2 + 1, "entry_bundles": 274}
    assert root_from_tiles(out, size) == root
    assert entry_bundle(out, 273, 112) == leaves[273 * 256:]


def test_export_refuses_an_empty_log(fresh_log, tmp_path):
    from copyscope.errors import NotFoundError
    log, _ = fresh_log
    with pytest.raises(NotFoundError):
        tiles.export_tiles(log, tmp_path / "tiles")
