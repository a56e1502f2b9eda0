#!/usr/bin/env python3
"""Ledger figures (issue #3): durable appends/s, inclusion-proof time, receipt verification.

    python benchmarks/ledger_bench.py                 # 300,000 entries, batches of 1,000
    python benchmarks/ledger_bench.py --entries 50000 --batch 500

* **Appends**: claimant-signed entries are appended in batches; every batch is
  one durable transaction (SQLite WAL, synchronous=FULL) that also stores the
  Merkle nodes and a checkpoint signed by the log key and cosigned by the clock
  key, after a consistency check against the previous checkpoint. Reported with
  and without the time to build and sign the entries themselves.
* **Inclusion proof**: ``Log.inclusion`` for random indices of the full log
  (stored nodes fetched in one query; upper levels cached).
* **Receipt verification**: the standalone verifier's ``verify_receipt``
  (entry signature, inclusion, checkpoint signature, cosignature).

Targets: ≥ 20,000 appends/s sustained; inclusion proof < 100 µs; receipt < 5 ms.
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from copyscope.ledger.entries import content_of, make_entry
from copyscope.ledger.keys import KeyStore, new_workspace_id
from copyscope.ledger.log import Log
from copyscope.ledger.verifier import VKey, verify_receipt
from copyscope.storage.registry import make_engine, migrate


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", type=int, default=300_000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--proofs", type=int, default=5000)
    ap.add_argument("--receipts", type=int, default=500)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="copyscope-ledger-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    engine = make_engine(f"sqlite:///{work / 'registry.db'}")
    migrate(engine)
    keys = KeyStore(work)
    ring = keys.create(new_workspace_id())
    log = Log(engine, keys)
    claimant = ring.claimant

    t_sign = t_append = 0.0
    done = 0
    per_batch = []
    while done < args.entries:
        n = min(args.batch, args.entries - done)
        t0 = time.perf_counter()
        entries = [make_entry("register", claimant, work_id=f"W{done + i:09d}",
                              content=content_of(f"{done + i:064x}", 1000 + i, "text/plain"),
                              owner="bench", license="CC0-1.0") for i in range(n)]
        t1 = time.perf_counter()
        log.append_entries(entries)
        t2 = time.perf_counter()
        t_sign += t1 - t0
        t_append += t2 - t1
        per_batch.append(n / (t2 - t1))
        done += n
        if done % (args.batch * 50) == 0:
            print(f"  {done:,} entries, {done / t_append:,.0f} appends/s so far", file=sys.stderr)
    appends = args.entries / t_append
    end_to_end = args.entries / (t_append + t_sign)
    slowest = min(per_batch[len(per_batch) // 10:] or per_batch)

    rng = random.Random(1)
    with engine.connect() as conn:
        size = log.size(conn)
        for _ in range(200):                              # warm the node cache
            log.inclusion(conn, ring.generation, rng.randrange(size), size)
        times = []
        for _ in range(args.proofs):
            i = rng.randrange(size)
            t0 = time.perf_counter()
            log.inclusion(conn, ring.generation, i, size)
            times.append(time.perf_counter() - t0)
        receipts = [log.receipt(conn, ring.generation, rng.randrange(size)) for _ in range(args.receipts)]
    vk = keys.verifier_keys()
    logs, clocks = [VKey(k) for k in vk["log"]], [VKey(k) for k in vk["clock"]]
    vtimes = []
    for r in receipts:
        t0 = time.perf_counter()
        verify_receipt(r, logs, clocks)
        vtimes.append(time.perf_counter() - t0)

    def pct(xs: list[float], q: float) -> float:
        return sorted(xs)[min(len(xs) - 1, int(q * len(xs)))]

    incl_p50, incl_p99 = statistics.median(times) * 1e6, pct(times, 0.99) * 1e6
    ver_p50, ver_p99 = statistics.median(vtimes) * 1e3, pct(vtimes, 0.99) * 1e3
    ok_append, ok_incl, ok_ver = appends >= 20_000, incl_p50 < 100, ver_p50 < 5
    print(f"log: {args.entries:,} entries in batches of {args.batch}, {work}")
    print(f"appends (durable batches, entries pre-signed): {appends:,.0f}/s "
          f"[slowest 90% batch {slowest:,.0f}/s]  target >= 20,000/s  {'PASS' if ok_append else 'FAIL'}")
    print(f"appends including building + claimant-signing each entry: {end_to_end:,.0f}/s")
    print(f"inclusion proof ({args.proofs} random indices): p50 {incl_p50:.1f} us, p99 {incl_p99:.1f} us  "
          f"target < 100 us  {'PASS' if ok_incl else 'FAIL'}")
    print(f"receipt verification ({len(vtimes)} receipts): p50 {ver_p50:.2f} ms, p99 {ver_p99:.2f} ms  "
          f"target < 5 ms  {'PASS' if ok_ver else 'FAIL'}")
    return 0 if ok_append and ok_incl and ok_ver else 1


if __name__ == "__main__":
    sys.exit(main())
