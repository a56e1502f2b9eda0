"""Child process for tests/test_ledger_reliability.py (not a test module itself).

    python ledger_reliability_child.py MODE CONFIG_JSON

Modes:

``writer``   appends to the ledger in a tight, bounded loop: ``ws.ledger.append`` of
             label entries (batches of ``batch_min..batch_max``) and, with probability
             ``register_p``, ``ws.register([one new small file])``. After each append
             returns (committed, i.e. acknowledged) it prints one JSON line
             ``{"ack": [[index, leaf_hash_hex], ...], "kind": ..., "work": ...}`` and flushes.
             Before a registration it prints ``{"begin": "register"}``. With ``stall`` set
             (``"label"`` or ``"register"``), the ``stall_at``-th append of that kind stops
             *inside* its transaction (entries inserted, checkpoint signed, not committed),
             prints ``{"stalled": [indices], "kind": ..., "work": ...}`` and sleeps until killed.
``labels``   like ``writer`` with labels only, but an append that raises is recorded
             (``{"error": ...}``) and the loop goes on; waits for a barrier file first.
``reader``   until a stop file appears (bounded): picks a registered work, issues its
             receipts (``ws.ledger.receipts_for``) and verifies some of them against the
             workspace's pinned keys; prints one JSON summary line at the end.
"""
from __future__ import annotations

import json
import random
import sys
import time
import traceback
from pathlib import Path


def emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def wait_for(path: str | None, limit: float = 120.0) -> None:
    if not path:
        return
    deadline = time.monotonic() + limit
    while not Path(path).exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"barrier {path} never appeared")
        time.sleep(0.002)


def text_for(rng: random.Random, tag: str) -> str:
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = ["".join(rng.choice(letters) for _ in range(rng.randint(4, 9))) for _ in range(rng.randint(40, 70))]
    words.insert(rng.randrange(len(words)), tag)
    return "\n".join(" ".join(words[i:i + 10]) + "." for i in range(0, len(words), 10)) + "\n"


def install_stall(kind: str, at: int) -> None:
    """Stop inside the ``at``-th ``Log.append`` of entries of ``kind``, before the commit."""
    from copyscope.ledger.log import Log

    orig = Log.append
    seen = {"n": 0}

    def append(self, conn, entries):  # noqa: ANN001, ANN202
        out = orig(self, conn, entries)           # inserted and checkpoint signed, not committed
        if entries and entries[0].kind == kind:
            seen["n"] += 1
            if seen["n"] == at:
                emit({"stalled": out, "kind": kind, "work": entries[0].work_id})
                time.sleep(600)                   # the parent SIGKILLs us here
        return out

    Log.append = append


def writer(cfg: dict, *, tolerate_errors: bool = False) -> int:
    from copyscope import api
    from copyscope.ledger import merkle
    from copyscope.ledger.entries import make_entry

    rng = random.Random(cfg["seed"])
    if cfg.get("stall"):
        install_stall(cfg["stall"], cfg["stall_at"])
    files = Path(cfg.get("files", "."))
    works = list(cfg["works"])
    errors = 0
    with api.open_workspace(api.Settings(home=Path(cfg["home"]))) as ws:
        emit({"ready": True})
        wait_for(cfg.get("barrier"))
        claimant = ws.ledger.log.ring.claimant
        for k in range(cfg["ops"]):
            if rng.random() < cfg.get("register_p", 0.0):
                path = files / f"{cfg['tag']}-{k:05d}.txt"
                path.write_text(text_for(rng, f"{cfg['tag']}x{k}"), encoding="utf-8")
                emit({"begin": "register"})
                out = ws.register([path], owner=f"owner-{cfg['tag']}", license="CC0-1.0")
                if out.errors or len(out.works) != 1:
                    emit({"fatal": f"registration refused: {out.errors}"})
                    return 2
                w = out.works[0]
                receipt = json.loads(Path(w.receipt).read_text(encoding="utf-8"))
                emit({"ack": [[w.ledger_index, merkle.leaf_hash(receipt["entry"].encode()).hex()]],
                      "kind": "register", "work": w.work_id})
                works.append(w.work_id)
                continue
            n = rng.randint(cfg.get("batch_min", 1), cfg.get("batch_max", 200))
            target = rng.choice(works)
            entries = [make_entry("label", claimant, work_id=target, label=f"{cfg['tag']}-{k}-{j}")
                       for j in range(n)]
            try:
                got = ws.ledger.append(entries)
            except Exception as exc:  # noqa: BLE001 - recorded, the parent judges
                if not tolerate_errors:
                    raise
                errors += 1
                emit({"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"})
                continue
            emit({"ack": [[i, merkle.leaf_hash(e.leaf).hex()] for i, e in zip(got, entries)],
                  "kind": "label", "work": target})
    emit({"done": True, "errors": errors})
    return 0


def reader(cfg: dict) -> int:
    from copyscope import api
    from copyscope.ledger.verifier import parse_checkpoint, parse_tlog_proof, split_note

    rng = random.Random(cfg["seed"])
    stop = Path(cfg["stop"])
    stats = {"iterations": 0, "receipts": 0, "verified": 0, "errors": [], "n_errors": 0, "max_size": 0}
    with api.open_workspace(api.Settings(home=Path(cfg["home"]))) as ws:
        Path(cfg["ready"]).touch()
        last_size = 0
        for _ in range(cfg["max_iterations"]):
            if stop.exists() and stats["iterations"] >= cfg.get("min_iterations", 1):
                break
            try:
                works = [w.work_id for w in ws.works()]
                work = rng.choice(works)
                receipts = ws.ledger.receipts_for(work)
                stats["receipts"] += len(receipts)
                for r in rng.sample(receipts, min(len(receipts), cfg.get("verify_per_work", 6))):
                    res = api.verify_receipt(r, ws=ws)
                    if res["work"] != work or r["work"] != work:
                        raise AssertionError(f"receipt for {work} names {res['work']}")
                    size = parse_checkpoint(split_note(parse_tlog_proof(r["tlog_proof"])[3])[0])[1]
                    stats["max_size"] = max(stats["max_size"], size, res["tree_size"])
                    stats["verified"] += 1
                # the reader's view of the log never goes back
                latest = ws.ledger.latest()
                if latest.size < last_size:
                    raise AssertionError(f"latest checkpoint went back from {last_size} to {latest.size}")
                last_size = latest.size
            except Exception as exc:  # noqa: BLE001 - every failure is reported to the parent
                stats["n_errors"] += 1
                if len(stats["errors"]) < 5:
                    stats["errors"].append(f"{type(exc).__name__}: {exc}"[:500] + "\n"
                                           + "".join(traceback.format_exc(limit=4))[-1500:])
            stats["iterations"] += 1
    emit(stats)
    return 0


def main() -> int:
    mode, cfg = sys.argv[1], json.loads(sys.argv[2])
    if mode == "writer":
        return writer(cfg)
    if mode == "labels":
        return writer(cfg, tolerate_errors=True)
    if mode == "reader":
        return reader(cfg)
    raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    sys.exit(main())
