#!/usr/bin/env python3
"""Calibrate code scores into likelihood ratios, on IR-Plag's labelled pairs.

A forensic examiner reports the strength of evidence as a likelihood ratio,
LR = P(score | copied) / P(score | independent), which does not depend on how
common copying is in the case at hand; any prior turns it into a probability.
This script scores IR-Plag's 460 labelled pairs with the code engine, fits an
isotonic (pool-adjacent-violators) map score → P(copied) with add-one smoothing
per block, divides out the dataset's prior odds, and writes the knots to
``src/copyscope/code/calibration-v8.json``. It also reports how well the map
generalises, fitting on six cases and testing on the seventh (Brier score and
expected calibration error, raw score vs calibrated).

    python benchmarks/code_calibrate.py            # print the figures
    python benchmarks/code_calibrate.py --write    # also rewrite the shipped table
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("COPYSCOPE_SHARED", REPO.parent / "shared"))
DATASET = SHARED / "bench_data/code/ir_plag/IR-Plag-Dataset"
OUT = REPO / "src/copyscope/code/calibration-v8.json"


def labelled_pairs() -> tuple[list[str], list[tuple[int, int, int, str]]]:
    """Files, and (original, other, label, case) pairs as IR-Plag defines them."""
    files: list[str] = []
    pairs = []
    for case in sorted(DATASET.glob("case-*")):
        orig = next((case / "original").glob("*.java"))
        files.append(str(orig))
        o = len(files) - 1
        for label, sub in ((0, "non-plagiarized"), (1, "plagiarized")):
            for f in sorted((case / sub).rglob("*.java")):
                files.append(str(f))
                pairs.append((o, len(files) - 1, label, case.name))
    return files, pairs


def scores(files: list[str]) -> np.ndarray:
    sys.path.insert(0, str(REPO / "src"))
    from copyscope.code.plugin import CodeModality, score_matrix  # noqa: PLC0415
    from copyscope.model import Artifact  # noqa: PLC0415
    m = CodeModality()
    docs = [m.fingerprint(Artifact(data=Path(f).read_bytes(), origin=f)) for f in files]
    s = score_matrix(docs, docs, m.params)
    return np.maximum(s, s.T)


def pav(x: np.ndarray, y: np.ndarray) -> list[tuple[float, float, int]]:
    """Isotonic blocks (lowest score, smoothed P(copied), count), by increasing score."""
    blocks: list[list[float]] = []                 # [min x, positives, n]
    # Tied scores are one block from the start: a table cannot tell them apart.
    for xi in np.unique(x).tolist():
        tied = x == xi
        blocks.append([xi, float(y[tied].sum()), int(tied.sum())])
        while len(blocks) > 1 and blocks[-2][1] / blocks[-2][2] >= blocks[-1][1] / blocks[-1][2]:
            lo, hi = blocks[-2], blocks.pop()
            lo[1] += hi[1]
            lo[2] += hi[2]
    # Smoothing can break monotonicity between small blocks: pool those too.
    smooth = lambda b: (b[1] + 1) / (b[2] + 2)  # noqa: E731
    i = 1
    while i < len(blocks):
        if smooth(blocks[i - 1]) >= smooth(blocks[i]):
            blocks[i - 1][1] += blocks[i][1]
            blocks[i - 1][2] += blocks[i][2]
            del blocks[i]
            i = max(1, i - 1)
        else:
            i += 1
    return [(b[0], smooth(b), int(b[2])) for b in blocks]


def apply(blocks: list[tuple[float, float, int]], x: np.ndarray) -> np.ndarray:
    lows = np.array([b[0] for b in blocks])
    probs = np.array([b[1] for b in blocks])
    return probs[np.clip(np.searchsorted(lows, x, side="right") - 1, 0, len(blocks) - 1)]


def ece(p: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    idx = np.minimum((p * bins).astype(int), bins - 1)
    return float(sum(abs(p[idx == b].mean() - y[idx == b].mean()) * (idx == b).sum()
                     for b in range(bins) if (idx == b).any()) / len(p))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--write", action="store_true", help=f"rewrite {OUT.relative_to(REPO)}")
    args = ap.parse_args()
    files, pairs = labelled_pairs()
    s = scores(files)
    x = np.array([s[a, b] for a, b, _, _ in pairs])
    y = np.array([lab for _, _, lab, _ in pairs], dtype=float)
    cases = np.array([c for *_, c in pairs])
    held = np.zeros_like(x)
    for c in sorted(set(cases)):
        train = cases != c
        held[~train] = apply(pav(x[train], y[train]), x[~train])
    raw = np.clip(x, 0, 1)
    print(f"pairs {len(y)} (positives {int(y.sum())}), leave-one-case-out:")
    print(f"  raw score as probability: Brier {np.mean((raw - y) ** 2):.3f}  ECE {ece(raw, y):.3f}")
    print(f"  calibrated:               Brier {np.mean((held - y) ** 2):.3f}  ECE {ece(held, y):.3f}")
    blocks = pav(x, y)
    prior_odds = y.mean() / (1 - y.mean())
    knots = [{"score": round(lo, 6), "likelihood_ratio": round(p / (1 - p) / prior_odds, 4), "pairs": n}
             for lo, p, n in blocks]
    print(f"\n{'score ≥':>8} {'LR':>8} {'pairs':>6}")
    for k in knots:
        print(f"{k['score']:8.3f} {k['likelihood_ratio']:8.3f} {k['pairs']:6d}")
    if args.write:
        OUT.write_text(json.dumps({
            "table": "code.segments/v8 on IR-Plag (460 labelled Java pairs)",
            "method": "isotonic regression (PAV), add-one smoothing per block, prior odds divided out",
            "knots": knots}, indent=1) + "\n")
        print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
