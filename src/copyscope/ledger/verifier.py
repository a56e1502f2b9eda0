#!/usr/bin/env python3
"""copyscope standalone verifier: checks registration receipts and evidence packages offline.

Needs only the Python standard library and ``cryptography``. copyscope itself uses
this very file for ``copyscope verify``; every evidence package ships a copy.

    python verify.py PACKAGE.zip|DIR [--log-key VKEY ...] [--clock-key VKEY ...]
    python verify.py --receipt RECEIPT.json [--file ORIGINAL] --log-key VKEY

Checks, each named when it fails: manifest, file-hash, entry-signature,
inclusion, checkpoint-signature, cosignature, consistency.
Formats: RFC 9162 Merkle trees; C2SP signed-note, tlog-checkpoint,
tlog-cosignature (cosignature/v1) and tlog-proof.
"""
from __future__ import annotations

import base64
import hashlib
import json
import sys
import zipfile
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

ENTRY_DOMAIN = b"copyscope-entry/v1\n"
COMMIT_DOMAIN = b"copyscope-commit/v1\n"
PROOF_HEADER = "c2sp.org/tlog-proof@v1"
ED25519, COSIGNATURE_V1 = 0x01, 0x04


class VerificationError(Exception):
    """A failed check; ``check`` names which one."""

    def __init__(self, check: str, message: str) -> None:
        super().__init__(f"{check}: {message}")
        self.check = check


def b64d(text: str, check: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (ValueError, TypeError):
        raise VerificationError(check, "malformed base64") from None


# -- RFC 9162 Merkle tree hashes and proofs ---------------------------------------
def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: list[bytes]) -> bytes:
    """RFC 9162 §2.1.3.2: the root implied by an inclusion proof."""
    if not 0 <= index < size:
        raise VerificationError("inclusion", f"index {index} outside tree of size {size}")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise VerificationError("inclusion", "proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise VerificationError("inclusion", "proof is too short")
    return r


def _hashes_ok(check: str, *hashes: bytes) -> None:
    if any(len(h) != 32 for h in hashes):
        raise VerificationError(check, "a hash is not 32 bytes")


def verify_inclusion(index: int, size: int, leaf: bytes, proof: list[bytes], root: bytes) -> None:
    _hashes_ok("inclusion", leaf, root, *proof)
    if root_from_inclusion(index, size, leaf, proof) != root:
        raise VerificationError("inclusion", f"entry {index} is not in the tree of size {size}")


def verify_consistency(size1: int, size2: int, root1: bytes, root2: bytes, proof: list[bytes]) -> None:
    """RFC 9162 §2.1.4.2: the tree of size2 extends the tree of size1."""
    if not 0 < size1 <= size2:
        raise VerificationError("consistency", f"cannot prove {size1} -> {size2}")
    if size1 == size2:             # nothing is hashed: the roots must simply be equal
        if proof or root1 != root2:
            raise VerificationError("consistency", "same size but different roots")
        return
    _hashes_ok("consistency", root1, root2, *proof)
    if size1 & (size1 - 1) == 0:        # a power of two: the old root is the first node
        proof = [root1] + proof
    if not proof:
        raise VerificationError("consistency", "empty proof")
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            raise VerificationError("consistency", "proof is too long")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise VerificationError("consistency", "proof is too short")
    if fr != root1 or sr != root2:
        raise VerificationError("consistency", f"the log was rewritten between sizes {size1} and {size2}")


# -- C2SP signed notes, checkpoints, cosignatures ---------------------------------
def key_id(name: str, kind: int, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([kind]) + public).digest()[:4]


class VKey:
    """A verifier key ``name+hex(key id)+base64(type || public key)``."""

    def __init__(self, text: str) -> None:
        parts = text.strip().split("+", 2)       # names hold no '+'; base64 may
        if len(parts) != 3:
            raise VerificationError("key", f"malformed verifier key {text[:40]!r}")
        self.name, kid, blob = parts
        raw = b64d(blob, "key")
        if len(raw) != 33 or raw[0] not in (ED25519, COSIGNATURE_V1):
            raise VerificationError("key", f"unsupported key type in {self.name}")
        self.kind, self.public = raw[0], raw[1:]
        self.id = key_id(self.name, self.kind, self.public)
        if self.id.hex() != kid:
            raise VerificationError("key", f"key id mismatch for {self.name}")
        self.text = text.strip()


def split_note(note: str) -> tuple[str, list[tuple[str, bytes]]]:
    text, sep, sigs = note.rpartition("\n\n")
    if not sep or not text or not note.endswith("\n"):
        raise VerificationError("checkpoint-signature", "not a signed note")
    out = []
    for line in sigs.rstrip("\n").split("\n"):
        if not line.startswith("\u2014 ") or line.count(" ") != 2:
            raise VerificationError("checkpoint-signature", f"malformed signature line {line[:40]!r}")
        _, name, sig = line.split(" ")
        out.append((name, b64d(sig, "checkpoint-signature")))
    return text + "\n", out


def check_signature(text: str, sigs: list[tuple[str, bytes]], key: VKey, check: str) -> int | None:
    """Verify ``key``'s line; returns the cosignature time (None for a plain signature)."""
    for name, sig in sigs:
        if name != key.name or sig[:4] != key.id:
            continue
        pub = Ed25519PublicKey.from_public_bytes(key.public)
        try:
            if key.kind == COSIGNATURE_V1:
                t = int.from_bytes(sig[4:12], "big")
                pub.verify(sig[12:], f"cosignature/v1\ntime {t}\n{text}".encode())
                return t
            pub.verify(sig[4:], text.encode())
            return None
        except (InvalidSignature, ValueError):
            raise VerificationError(check, f"bad signature by {key.name}") from None
    raise VerificationError(check, f"no signature by the pinned key {key.name}")


def _decimal(text: str) -> bool:
    """ASCII decimal with no leading zeros, as C2SP formats require."""
    return text.isascii() and text.isdigit() and (text == "0" or not text.startswith("0"))


def parse_checkpoint(text: str) -> tuple[str, int, bytes]:
    lines = text.split("\n")
    if len(lines) < 4 or not _decimal(lines[1]):
        raise VerificationError("checkpoint-signature", "malformed checkpoint")
    root = b64d(lines[2], "checkpoint-signature")
    if len(root) != 32:
        raise VerificationError("checkpoint-signature", "root hash is not 32 bytes")
    return lines[0], int(lines[1]), root


def open_checkpoint(note: str, log_keys: list[VKey], clock_keys: list[VKey]) -> tuple[str, int, bytes, int | None]:
    """Verify a checkpoint against pinned keys: (origin, size, root, cosigned time)."""
    text, sigs = split_note(note)
    origin, size, root = parse_checkpoint(text)
    mine = [k for k in log_keys if k.name == origin]
    if not mine:
        raise VerificationError("checkpoint-signature", f"no pinned key for log {origin}")
    check_signature(text, sigs, mine[0], "checkpoint-signature")
    when = None
    clocks = [ck for ck in clock_keys if ck.name.startswith(origin + "/")] or list(clock_keys)
    if clocks:             # a pinned clock must have cosigned: the time cannot be stripped
        present = [ck for ck in clocks if any(n == ck.name and s[:4] == ck.id for n, s in sigs)]
        if not present:
            raise VerificationError("cosignature", f"no cosignature by the pinned clock key {clocks[0].name}")
        when = check_signature(text, sigs, present[0], "cosignature")
    return origin, size, root, when


def parse_tlog_proof(text: str) -> tuple[bytes | None, int, list[bytes], str]:
    head, sep, checkpoint = text.partition("\n\n")
    lines = head.split("\n")
    if not sep or lines[0] != PROOF_HEADER:
        raise VerificationError("inclusion", "not a c2sp.org/tlog-proof@v1 proof")
    extra = None
    i = 1
    if len(lines) > i and lines[i].startswith("extra "):
        extra, i = b64d(lines[i][6:], "inclusion"), i + 1
    if len(lines) <= i or not lines[i].startswith("index ") or not _decimal(lines[i][6:]):
        raise VerificationError("inclusion", "proof has no index line")
    return extra, int(lines[i][6:]), [b64d(h, "inclusion") for h in lines[i + 1:]], checkpoint


# -- entries and receipts -------------------------------------------------------------
def canonical(obj: object) -> bytes:
    """RFC 8785 for copyscope entries (ASCII keys, strings and integers only)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def verify_entry(leaf: bytes) -> dict:
    """Check the claimant's signature over the entry body; return the body."""
    try:
        entry = json.loads(leaf)
        body, sig = entry["body"], b64d(entry["sig"], "entry-signature")
        claimant = VKey(body["claimant"])
    except (ValueError, KeyError, TypeError):
        raise VerificationError("entry-signature", "malformed ledger entry") from None
    if canonical(entry) != leaf:
        raise VerificationError("entry-signature", "entry is not in canonical form")
    try:
        Ed25519PublicKey.from_public_bytes(claimant.public).verify(sig, ENTRY_DOMAIN + canonical(body))
    except InvalidSignature:
        raise VerificationError("entry-signature", f"bad claimant signature ({claimant.name})") from None
    return body


def verify_receipt(receipt: dict, log_keys: list[VKey], clock_keys: list[VKey] = (),
                   data: bytes | None = None, newer: list[dict] = ()) -> dict:
    """Every check on one receipt; returns a summary. Raises VerificationError."""
    try:
        leaf = receipt["entry"].encode()
        extra, index, proof, note = parse_tlog_proof(receipt["tlog_proof"])
    except (KeyError, AttributeError, TypeError):
        raise VerificationError("receipt", "malformed receipt") from None
    if extra is not None and extra != leaf:
        raise VerificationError("inclusion", "the proof's extra line is not the receipt's entry")
    body = verify_entry(leaf)
    if data is not None:
        sha = hashlib.sha256(data).hexdigest()
        if "commitment" in body:
            salt = b64d(receipt.get("opening", {}).get("salt", ""), "file-hash")
            got = hashlib.sha256(COMMIT_DOMAIN + salt + bytes.fromhex(sha)).hexdigest()
            if got != body["commitment"]:
                raise VerificationError("file-hash", "file does not open the private commitment")
        elif body.get("content", {}).get("sha256") != sha:
            raise VerificationError("file-hash", "file's SHA-256 differs from the registered one")
    origin, size, root, when = open_checkpoint(note, log_keys, clock_keys)
    verify_inclusion(index, size, leaf_hash(leaf), proof, root)
    latest = (size, root)
    for step in newer:                  # each: {"checkpoint": note, "proof": [b64, ...]}
        o2, s2, r2, w2 = open_checkpoint(step["checkpoint"], log_keys, clock_keys)
        if o2 != origin:
            raise VerificationError("consistency", f"checkpoint of another log ({o2})")
        verify_consistency(latest[0], s2, latest[1], r2, [b64d(h, "consistency") for h in step["proof"]])
        latest, when = (s2, r2), w2 or when
    return {"origin": origin, "index": index, "kind": body.get("kind"), "work": body.get("work"),
            "tree_size": latest[0], "cosigned_time": when, "claimant": VKey(body["claimant"]).name}


# -- evidence packages -------------------------------------------------------------------
def read_package(path: Path) -> dict[str, bytes]:
    if path.is_dir():
        return {str(p.relative_to(path)).replace("\\", "/"): p.read_bytes()
                for p in sorted(path.rglob("*")) if p.is_file()}
    with zipfile.ZipFile(path) as z:
        return {i.filename: z.read(i) for i in z.infolist() if not i.is_dir() and i.file_size < 1 << 30}


def verify_package(files: dict[str, bytes], log_keys: list[str], clock_keys: list[str]) -> list[dict]:
    """Manifest first, then every receipt and every member a receipt vouches for."""
    manifest = files.get("MANIFEST.sha256")
    if manifest is None:
        raise VerificationError("manifest", "MANIFEST.sha256 is missing")
    listed = {}
    for line in manifest.decode(errors="replace").splitlines():
        digest, _, name = line.partition("  ")
        listed[name] = digest
    for name, data in files.items():
        if name != "MANIFEST.sha256" and listed.get(name) != hashlib.sha256(data).hexdigest():
            raise VerificationError("manifest", f"{name} does not match MANIFEST.sha256")
    missing = set(listed) - set(files)
    if missing:
        raise VerificationError("manifest", f"{sorted(missing)[0]} is listed but missing")
    try:
        keys = json.loads(files.get("keys.json", b"{}"))
        logs = [VKey(k) for k in log_keys or keys.get("log", [])]
        clocks = [VKey(k) for k in clock_keys or keys.get("clock", [])]
        steps = json.loads(files.get("consistency.json", b"{}"))
        drafts = json.loads(files.get("drafts.json", b"[]"))
    except (ValueError, AttributeError):
        raise VerificationError("manifest", "keys.json, consistency.json or drafts.json is malformed") from None
    latest = files.get("checkpoints/latest.txt")
    latest_head = open_checkpoint(latest.decode(), logs, clocks)[:3] if latest else None
    results, seen_drafts = [], set()
    for name in sorted(n for n in files if n.startswith("receipts/") and n.endswith(".json")):
        receipt = json.loads(files[name])
        proof_file = files.get(name[:-5] + ".tlog-proof")
        if proof_file is not None and proof_file.decode() != receipt.get("tlog_proof"):
            raise VerificationError("inclusion", f"{name[:-5]}.tlog-proof differs from {name}")
        r = verify_receipt(receipt, logs, clocks, files.get(receipt.get("file", "")), steps.get(name, []))
        body = json.loads(receipt["entry"])["body"]
        if body.get("record_sha256") and "record.json" in files:
            if hashlib.sha256(files["record.json"]).hexdigest() != body["record_sha256"]:
                raise VerificationError("file-hash", "record.json is not the registered creation record")
        if body["kind"] == "draft":
            seen_drafts.add((body["content"]["sha256"], body["time"], body.get("note")))
        if latest_head and r["origin"] == latest_head[0]:
            head = steps[name][-1]["checkpoint"] if steps.get(name) else parse_tlog_proof(receipt["tlog_proof"])[3]
            if (r["tree_size"], _root_of(head)) != latest_head[1:]:
                raise VerificationError("consistency", f"{name} is not proven up to checkpoints/latest.txt")
        results.append({"receipt": name, **r})
    for d in drafts:
        if (d.get("sha256"), d.get("time"), d.get("note")) not in seen_drafts:
            raise VerificationError("entry-signature", "drafts.json lists a draft no receipt vouches for")
    if not results:
        raise VerificationError("receipt", "the package holds no receipts")
    return results


def _root_of(note: str) -> bytes:
    return parse_checkpoint(split_note(note)[0])[2]


def main(argv: list[str]) -> int:
    import argparse  # noqa: PLC0415
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("package", nargs="?", help="evidence package (.zip or directory)")
    ap.add_argument("--receipt", help="a receipt JSON file instead of a package")
    ap.add_argument("--file", help="with --receipt: the registered file")
    ap.add_argument("--log-key", action="append", default=[], help="pinned log verifier key (repeatable)")
    ap.add_argument("--clock-key", action="append", default=[], help="pinned clock cosigner key")
    args = ap.parse_args(argv)
    try:
        if args.receipt:
            receipt = json.loads(Path(args.receipt).read_text(encoding="utf-8"))
            data = Path(args.file).read_bytes() if args.file else None
            logs = [VKey(k) for k in args.log_key or receipt.get("keys", {}).get("log", [])]
            clocks = [VKey(k) for k in args.clock_key or receipt.get("keys", {}).get("clock", [])]
            results = [verify_receipt(receipt, logs, clocks, data)]
        else:
            files = read_package(Path(args.package))
            if not args.log_key:
                print("note: using the keys inside the package; compare them with the keys the "
                      "registrant published (copyscope keys show)", file=sys.stderr)
            results = verify_package(files, args.log_key, args.clock_key)
    except VerificationError as exc:
        print(f"FAILED {exc}", file=sys.stderr)
        return 1
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        print(f"FAILED input: {exc}", file=sys.stderr)
        return 2
    for r in results:
        print("OK " + json.dumps(r, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
