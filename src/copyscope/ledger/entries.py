"""Ledger entries: what a leaf of the log says, signed by the claimant.

An entry is the canonical JSON (RFC 8785) object ``{"body": {...}, "sig": b64}``
where ``sig`` is the claimant's Ed25519 signature over ``copyscope-entry/v1\\n``
followed by the canonical body. The body names the claimant by its verifier key,
so anyone can check the signature; the log then proves when it was included.

Kinds: ``register`` (a work), ``draft`` (a draft of a work, as it is made),
``derive`` (a work made from earlier works), ``label`` (a statement about a
work), ``revoke`` (the claimant withdraws a work's registration).

A private registration logs only ``commitment = SHA-256(copyscope-commit/v1\\n ||
salt || SHA-256(content))``; the salt stays with the registrant (the receipt's
``opening``), so the log reveals nothing until the registrant shows the file.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from copyscope.ledger.keys import Signer
from copyscope.ledger.verifier import COMMIT_DOMAIN, ENTRY_DOMAIN, canonical

KINDS = ("register", "draft", "derive", "label", "revoke")


@dataclass(frozen=True)
class Entry:
    leaf: bytes                         # the exact bytes hashed into the log
    kind: str
    work_id: str | None
    opening: dict[str, Any] | None = None   # private registrations: what opens the commitment


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def content_of(sha256: str, size: int, media_type: str) -> dict[str, Any]:
    return {"sha256": sha256, "size": size, "media_type": media_type}


def commitment(salt: bytes, sha256: str) -> str:
    return hashlib.sha256(COMMIT_DOMAIN + salt + bytes.fromhex(sha256)).hexdigest()


def make_entry(kind: str, claimant: Signer, *, work_id: str | None = None,
               content: dict[str, Any] | None = None, private: bool = False,
               when: str | None = None, **fields: Any) -> Entry:
    """Build and sign an entry. ``fields`` (owner, license, record_sha256, parents,
    note, label, reason, ...) are included when not None."""
    if kind not in KINDS:
        raise ValueError(f"unknown entry kind {kind!r}")
    body: dict[str, Any] = {"v": 1, "kind": kind, "claimant": claimant.vkey(), "time": when or utc_now()}
    if work_id is not None:
        body["work"] = work_id
    opening = None
    if private:
        if content is None:
            raise ValueError("a private entry needs the content it commits to")
        salt = secrets.token_bytes(32)
        body["commitment"] = commitment(salt, content["sha256"])
        public = {k: v for k, v in fields.items() if v is not None}
        opening = {"salt": base64.b64encode(salt).decode(), "content": content, **public}
    else:
        if content is not None:
            body["content"] = content
        body.update({k: v for k, v in fields.items() if v is not None})
    sig = claimant.sign(ENTRY_DOMAIN + canonical(body))
    leaf = canonical({"body": body, "sig": base64.b64encode(sig).decode()})
    return Entry(leaf, kind, work_id, opening)
