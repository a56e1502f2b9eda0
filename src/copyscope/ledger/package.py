"""Evidence packages: one zip a third party can verify offline with ``verify.py``.

Layout::

    README.md              what this is and how to verify it (English and Chinese)
    MANIFEST.sha256        SHA-256 of every other file (sha256sum format)
    verify.py              the standalone verifier (stdlib + cryptography)
    keys.json              the log's and clock's verifier keys, every generation
    original/…             the registered file(s)
    record.json            the creation record, canonical JSON (when there is one)
    drafts.json            the drafts logged for the work: hash, time, note
    receipts/<n>-<kind>.json         a receipt per ledger entry about the work
    receipts/<n>-<kind>.tlog-proof   the same proofs as C2SP tlog-proof files
    checkpoints/latest.txt           the newest signed checkpoint of the log
    consistency.json       per receipt: consistency proof up to checkpoints/latest.txt

Zip members get a fixed timestamp and sorted order, so the same content gives
the same bytes.
"""
from __future__ import annotations

import hashlib
import json
import zipfile
from importlib import resources
from pathlib import Path

import sqlalchemy as sa

from copyscope.errors import InputError, NotFoundError
from copyscope.ledger.service import Ledger
from copyscope.ledger.verifier import parse_checkpoint, parse_tlog_proof, split_note
from copyscope.storage import schema as t
from copyscope.storage.blobs import BlobStore

FIXED_TIME = (2000, 1, 1, 0, 0, 0)

README = """# Evidence package / 证据包

**Work {work_id}: {title}**, registered by {owner} (licence {license}).

This package proves what was registered, when, and by which key, and that the
registration log was never rewritten afterwards. Check it yourself, offline,
without copyscope:

    pip install cryptography
    python verify.py .                      # or: python verify.py package.zip
    python verify.py . --log-key '<the registrant's published log key>'

`verify.py` checks, and names any check that fails: the manifest (no file
changed), the file hash (the original is what was registered), the entry
signature (the claimant signed it), the inclusion proof (the entry is in the
log), the checkpoint signature (the log operator's key signed the tree head),
the cosignature (a clock key signed the time) and consistency (later
checkpoints extend the earlier one: the log was only appended to).

Pin the keys: `keys.json` comes inside the package, so compare it with the
keys the registrant published (`copyscope keys show`) before trusting it.

## 中文说明

本证据包证明登记的内容、登记时间和签名密钥，并证明登记日志此后从未被改写。
无需安装 copyscope，即可离线自行核验：

    pip install cryptography
    python verify.py .

`verify.py` 逐项检查：清单（文件未被改动）、文件哈希（原件即登记内容）、条目签名
（登记人签名）、包含证明（条目在日志中）、检查点签名（日志运营方密钥签署树根）、
时间副署（时钟密钥签署时间）以及一致性（之后的检查点只是追加，日志未被改写）。
任何一项失败都会注明失败的检查项。请将 keys.json 中的公钥与登记人公开的公钥
（`copyscope keys show`）核对后再予以信任。

## Files / 文件

{files}
"""


def _kind_name(receipt: dict) -> str:
    return json.loads(receipt["entry"])["body"]["kind"]


def build_package(ledger: Ledger, blobs: BlobStore, work_id: str, out: Path) -> Path:
    """Write the evidence package of ``work_id`` to ``out`` (a .zip)."""
    with ledger.engine.connect() as conn:
        work = conn.execute(sa.select(t.works).where(t.works.c.work_id == work_id)).first()
        if work is None:
            raise NotFoundError(f"no work {work_id} in this workspace")
        # Sorted here by code point, not by the database: PostgreSQL's collation
        # orders paths unlike SQLite's bytes, and member names must not depend on it.
        files = sorted(tuple(r) for r in conn.execute(
            sa.select(t.work_artifacts.c.path, t.artifacts.c.sha256)
            .join(t.artifacts, t.artifacts.c.id == t.work_artifacts.c.artifact_id)
            .join(t.works, t.works.c.id == t.work_artifacts.c.work_pk)
            .where(t.works.c.work_id == work_id)))
    members: dict[str, bytes] = {}
    originals = {}
    for path, sha in files:
        name = _unique("original/" + _safe(_within_work(work, path)), members)
        members[name] = blobs.get(sha)
        originals[sha] = name
    if work.record_json:
        import rfc8785  # noqa: PLC0415
        # The exact canonical bytes whose SHA-256 the signed entry holds.
        members["record.json"] = rfc8785.dumps(json.loads(work.record_json))
    receipts = ledger.receipts_for(work_id, original=True)
    latest = ledger.latest()
    consistency: dict[str, list] = {}
    drafts = []
    for receipt in receipts:
        body = json.loads(receipt["entry"])["body"]
        name = f"receipts/{receipt['index']:08d}-{body['kind']}"
        sha = body.get("content", {}).get("sha256") or receipt.get("opening", {}).get("content", {}).get("sha256")
        if body["kind"] in ("register", "derive") and sha in originals:
            receipt = {**receipt, "file": originals[sha]}
        if body["kind"] == "draft":
            drafts.append({"sha256": body["content"]["sha256"], "size": body["content"]["size"],
                           "time": body["time"], "note": body.get("note"), "ledger_index": receipt["index"]})
        members[name + ".json"] = json.dumps(receipt, indent=2, sort_keys=True, ensure_ascii=False).encode()
        members[name + ".tlog-proof"] = receipt["tlog_proof"].encode()
        _, _, _, note = parse_tlog_proof(receipt["tlog_proof"])
        origin, size, _ = parse_checkpoint(split_note(note)[0])
        gen = ledger.generation_of(origin)
        step = ledger.consistency_to_latest(size, gen) if gen is not None else None
        consistency[name + ".json"] = [step] if step else []
    if drafts:
        members["drafts.json"] = json.dumps(drafts, indent=2, ensure_ascii=False).encode()
    if latest is not None:
        members["checkpoints/latest.txt"] = latest.note.encode()
    members["consistency.json"] = json.dumps(consistency, indent=2, sort_keys=True).encode()
    vk = ledger.keys.verifier_keys()
    members["keys.json"] = json.dumps({"log": vk["log"], "clock": vk["clock"]}, indent=2).encode()
    members["verify.py"] = resources.files("copyscope.ledger").joinpath("verifier.py").read_bytes()
    listing = "\n".join(f"- `{n}`" for n in sorted(members))
    members["README.md"] = README.format(work_id=work.work_id, title=work.title, owner=work.owner,
                                         license=work.license, files=listing).encode()
    manifest = "".join(f"{hashlib.sha256(d).hexdigest()}  {n}\n" for n, d in sorted(members.items()))
    members["MANIFEST.sha256"] = manifest.encode()
    _write_zip(out, members)
    return out


def _within_work(work, path: str) -> str:  # noqa: ANN001
    """A file work's original keeps its file name; a directory work's files keep
    their paths inside the directory."""
    if work.kind == "file":
        return Path(path).name
    root = str(work.root_path).rstrip("/") + "/"
    return path[len(root):] if path.startswith(root) else path


def _unique(name: str, taken: dict[str, bytes]) -> str:
    """Two files whose names sanitise alike must not overwrite each other."""
    if name not in taken:
        return name
    stem, dot, ext = name.rpartition(".")
    base, suffix = (stem, f".{ext}") if dot and "/" not in ext else (name, "")
    n = 2
    while f"{base} ({n}){suffix}" in taken:
        n += 1
    return f"{base} ({n}){suffix}"


def _safe(path: str) -> str:
    """A member name that cannot escape the package (no absolute or '..' parts)."""
    parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".", "..")]
    return "/".join(parts) or "file"


def _write_zip(out: Path, members: dict[str, bytes]) -> None:
    tmp = out.with_name(out.name + ".tmp")
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as z:
            for name in sorted(members):
                info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                z.writestr(info, members[name])
        tmp.replace(out)
    except OSError as exc:
        raise InputError(f"{out}: cannot write evidence package ({exc.strerror})") from None
