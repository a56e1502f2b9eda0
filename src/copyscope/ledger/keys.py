"""Keys of a workspace ledger, and the C2SP signed-note signing side.

Three Ed25519 keys, stored as PKCS#8 PEM under ``home/keys/`` (encrypted with
``BestAvailableEncryption`` when a passphrase is given):

* ``log``: signs checkpoints (C2SP signed-note, key type 0x01); its name is the
  log origin;
* ``clock``: adds a C2SP ``cosignature/v1`` (key type 0x04) carrying the time;
* ``claimant``: signs entries on behalf of the registrant.

Rotation retires the keys (kept, so old receipts stay verifiable) and starts a
new log origin. ``keys.json`` lists every generation's verifier keys.
"""
from __future__ import annotations

import base64
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from copyscope.errors import WorkspaceError
from copyscope.ledger.verifier import COSIGNATURE_V1, ED25519, key_id

ROLES = ("log", "clock", "claimant")


@dataclass(frozen=True)
class Signer:
    name: str
    kind: int                      # ED25519 (0x01) or COSIGNATURE_V1 (0x04)
    key: Ed25519PrivateKey

    @property
    def public(self) -> bytes:
        return self.key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.kind, self.public)

    def vkey(self) -> str:
        blob = base64.b64encode(bytes([self.kind]) + self.public).decode()
        return f"{self.name}+{self.key_id.hex()}+{blob}"

    def sign(self, message: bytes) -> bytes:
        return self.key.sign(message)

    def note_line(self, text: str, *, when: int | None = None) -> str:
        """One signature line for note ``text`` (cosignature/v1 carries ``when``)."""
        if self.kind == COSIGNATURE_V1:
            when = int(time.time()) if when is None else when
            sig = when.to_bytes(8, "big") + self.sign(f"cosignature/v1\ntime {when}\n{text}".encode())
        else:
            sig = self.sign(text.encode())
        return f"\u2014 {self.name} {base64.b64encode(self.key_id + sig).decode()}\n"


def sign_note(text: str, signers: list[Signer], *, when: int | None = None) -> str:
    if not text.endswith("\n") or "\n\n" in text:
        raise ValueError("note text must be non-empty lines ending in a newline")
    return text + "\n" + "".join(s.note_line(text, when=when) for s in signers)


@dataclass(frozen=True)
class KeyRing:
    generation: int
    origin: str
    log: Signer
    clock: Signer
    claimant: Signer


class KeyStore:
    """``home/keys``: current generation's private keys plus every public key."""

    def __init__(self, home: Path, passphrase: bytes | None = None) -> None:
        self.dir = home / "keys"
        self.passphrase = passphrase

    def _index_path(self) -> Path:
        return self.dir / "keys.json"

    def index(self) -> dict:
        try:
            return json.loads(self._index_path().read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"generations": []}
        except (OSError, ValueError) as exc:
            raise WorkspaceError(f"{self._index_path()}: unreadable key index ({exc})") from None

    def exists(self) -> bool:
        return bool(self.index()["generations"])

    def create(self, workspace_id: str) -> KeyRing:
        """A new generation: new keys and a new log origin (first use or rotation)."""
        idx = self.index()
        gen = len(idx["generations"]) + 1
        origin = f"copyscope.local/{workspace_id}/log{gen}"
        names = {"log": origin, "clock": f"{origin}/clock", "claimant": f"{origin}/claimant"}
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        ring = {}
        for role in ROLES:
            key = Ed25519PrivateKey.generate()
            enc = (serialization.BestAvailableEncryption(self.passphrase) if self.passphrase
                   else serialization.NoEncryption())
            pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)
            path = self.dir / f"{role}-{gen}.pem"
            tmp = path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(pem)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
            ring[role] = Signer(names[role], COSIGNATURE_V1 if role == "clock" else ED25519, key)
        idx["generations"].append({"generation": gen, "origin": origin,
                                   "encrypted": bool(self.passphrase),
                                   **{role: ring[role].vkey() for role in ROLES}})
        tmp = self._index_path().with_suffix(".tmp")
        tmp.write_text(json.dumps(idx, indent=2, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self._index_path())
        return KeyRing(gen, origin, ring["log"], ring["clock"], ring["claimant"])

    def current(self) -> KeyRing:
        idx = self.index()
        if not idx["generations"]:
            raise WorkspaceError("the workspace has no ledger keys", hint="run `copyscope init`")
        g = idx["generations"][-1]
        signers = {}
        for role in ROLES:
            path = self.dir / f"{role}-{g['generation']}.pem"
            try:
                key = serialization.load_pem_private_key(path.read_bytes(), password=self.passphrase)
            except FileNotFoundError:
                raise WorkspaceError(f"{path}: ledger key is missing") from None
            except (TypeError, ValueError):
                hint = "set COPYSCOPE_PASSPHRASE" if g.get("encrypted") else None
                raise WorkspaceError(f"{path}: cannot unlock the ledger key (wrong or missing passphrase)",
                                     hint=hint) from None
            signers[role] = Signer(g[role].split("+", 1)[0], COSIGNATURE_V1 if role == "clock" else ED25519, key)
            if signers[role].vkey() != g[role]:
                raise WorkspaceError(f"{path}: ledger key does not match keys.json")
        return KeyRing(g["generation"], g["origin"], signers["log"], signers["clock"], signers["claimant"])

    def current_generation(self) -> tuple[int, str]:
        """(generation, origin) from the public index: no private key is unlocked,
        so read-only commands work without the passphrase."""
        gens = self.index()["generations"]
        if not gens:
            raise WorkspaceError("the workspace has no ledger keys", hint="run `copyscope init`")
        return gens[-1]["generation"], gens[-1]["origin"]

    def verifier_keys(self) -> dict[str, list[str]]:
        """Every generation's public keys, for verification (``keys show``)."""
        gens = self.index()["generations"]
        return {role: [g[role] for g in gens] for role in ROLES}


def new_workspace_id() -> str:
    return "ws-" + secrets.token_hex(4)
