#!/usr/bin/env python3
"""Text-reuse accuracy on the shared labelled datasets, at copyscope's fixed threshold.

Runs ``copyscope compare --pairs FILE --format tsv`` (the real CLI path) on
``../shared/bench_data/text/<dataset>`` and prints precision, recall and F1 at
the documented threshold (0.5, chosen once), recall per reuse category, and
wall time. ``--adapter`` turns this script into the ``--ours-cmd`` of
``shared/bench/text/run_peers.py``, so copyscope can be ranked beside the peers:

    python benchmarks/text_accuracy.py                      # both datasets, our figures
    python ../shared/bench/text/run_peers.py --dataset zh_news_reuse \\
        --ours-cmd 'python benchmarks/text_accuracy.py --adapter {pairs} {docs}'
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("COPYSCOPE_BENCH_DATA", REPO.parent / "shared/bench_data/text"))
THRESHOLD = 0.5
TARGETS = {"clough_stevenson": {"f1": 0.97}, "zh_news_reuse": {"f1": 0.995, "fragment": 0.98, "partial": 0.98}}


def copyscope_bin() -> list[str]:
    exe = Path(sys.executable).with_name("copyscope")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "copyscope.cli"]


def score_pairs(pairs: list[tuple[str, str]], docs: Path) -> dict[tuple[str, str], float]:
    """ids → scores through the CLI; paths are docs/<id>.txt."""
    with tempfile.NamedTemporaryFile("w", suffix=".tsv", delete=False, encoding="utf-8") as fh:
        for a, b in pairs:
            fh.write(f"{docs / (a + '.txt')}\t{docs / (b + '.txt')}\n")
        name = fh.name
    try:
        proc = subprocess.run([*copyscope_bin(), "--quiet", "compare", "--pairs", name, "--format", "tsv"],
                              capture_output=True, text=True)
    finally:
        os.unlink(name)
    if proc.returncode not in (0, 1):
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"copyscope failed with exit code {proc.returncode}")
    out = {}
    for line in proc.stdout.splitlines():
        pa, pb, s = line.split("\t")
        out[(Path(pa).stem, Path(pb).stem)] = float(s)
    return out


def load_pairs(dataset: str) -> list[tuple[str, str, int, str]]:
    rows = []
    with open(DATA / dataset / "pairs.tsv", encoding="utf-8") as fh:
        next(fh)
        for line in fh:
            a, b, y, c = line.rstrip("\n").split("\t")
            rows.append((a, b, int(y), c))
    return rows


def evaluate(dataset: str) -> dict:
    rows = load_pairs(dataset)
    t0 = time.perf_counter()
    scores = score_pairs([(a, b) for a, b, _, _ in rows], DATA / dataset / "docs")
    elapsed = time.perf_counter() - t0
    tp = fp = fn = 0
    per = defaultdict(lambda: [0, 0])
    for a, b, y, c in rows:
        pred = scores.get((a, b), 0.0) >= THRESHOLD
        tp += pred and y == 1
        fp += pred and y == 0
        fn += (not pred) and y == 1
        per[c][0] += pred
        per[c][1] += 1
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return {"dataset": dataset, "pairs": len(rows), "threshold": THRESHOLD, "precision": p, "recall": r,
            "f1": f1, "flag_rate": {c: a / n for c, (a, n) in sorted(per.items())}, "seconds": elapsed}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", action="append", choices=sorted(TARGETS))
    ap.add_argument("--adapter", nargs=2, metavar=("PAIRS", "DOCS"), help="run_peers.py --ours-cmd mode")
    args = ap.parse_args()
    if args.adapter:
        pairs_file, docs = args.adapter
        pairs = [tuple(line.rstrip("\n").split("\t")[:2]) for line in open(pairs_file, encoding="utf-8") if line.strip()]
        for (a, b), s in score_pairs(pairs, Path(docs)).items():
            print(f"{a}\t{b}\t{s:.6f}")
        return
    failed = False
    for ds in args.dataset or sorted(TARGETS):
        res = evaluate(ds)
        print(f"## {ds}: {res['pairs']} pairs, threshold {THRESHOLD} (fixed), {res['seconds']:.1f} s")
        print(f"precision {res['precision']:.4f}  recall {res['recall']:.4f}  F1 {res['f1']:.4f}")
        print("flag rate by category: " + ", ".join(f"{c} {v:.3f}" for c, v in res["flag_rate"].items()))
        for key, target in TARGETS[ds].items():
            got = res["f1"] if key == "f1" else res["flag_rate"].get(key, 0.0)
            ok = got >= target
            failed |= not ok
            print(f"target {key} >= {target}: {got:.4f} {'PASS' if ok else 'FAIL'}")
        print()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
