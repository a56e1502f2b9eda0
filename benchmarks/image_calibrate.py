#!/usr/bin/env python3
"""Fit the image score (a logistic model on the verification's features) on a
benchmark built with ANOTHER seed than the one figures are reported on.

    /tmp/img-venv/bin/python ../shared/bench/image/make_bench.py --src /tmp/copyscope-corpus/src \\
        --split public --seed 11 --out /tmp/copyscope-imgbench-seed11
    python benchmarks/image_calibrate.py --bench /tmp/copyscope-imgbench-seed11 --write

Every reference is registered in a fresh workspace; every query is checked with
threshold 0, so each verified candidate yields (inliers, photometric agreement,
hash distance) and a label (is it the query's true source?). The model
``σ(w·f + b)`` (features in ``copyscope.image.calibration.features``) is fitted
by L2-regularised logistic regression (Newton's method), every weight kept
≥ 0 (``fit_monotone``), and written to
``src/copyscope/image/calibration-v1.json``. A second model, on the structure
similarity and colour agreement (``copyscope.image.structure``), is fitted on the
pairs whose layout was compared while their pixels explained little: it scores
re-drawn copies.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "src/copyscope/image/calibration-v1.json"
sys.path.insert(0, str(REPO / "src"))
from copyscope.image.calibration import FINE_PASS_ENV, features, structure_features  # noqa: E402
from copyscope.image.geometry import MIN_INLIERS  # noqa: E402


def collect(bench: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(pixel features, labels) of every pair the pixels alone would report, and
    (structure features, labels) of every pair whose layout was compared while
    its pixels explained little (pixel score < ``LAYOUT_FIT_BELOW``): the pairs
    where the structure score can decide."""
    exe = str(Path(sys.executable).with_name("copyscope"))
    gt = {}
    with open(bench / "gt.csv") as fh:
        for row in csv.DictReader(fh):
            gt[Path(row["query_id"]).stem] = Path(row["reference_id"]).stem if row["reference_id"] else None
    refs = sorted(str(p) for p in (bench / "refs").iterdir())
    queries = sorted(str(p) for p in (bench / "queries").iterdir())
    # The 512-pixel agreement is measured whatever the shipped model weighs it.
    env = {**os.environ, FINE_PASS_ENV: "1"}
    with tempfile.TemporaryDirectory(prefix="cs-imgcal-") as home:
        base = [exe, "--home", home, "--quiet"]
        subprocess.run(base + ["init"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(base + ["register", "--each", "--owner", "bench", *refs], stdout=subprocess.DEVNULL)
        out = subprocess.run(base + ["--json", "check", "--threshold", "0", *queries],
                             capture_output=True, text=True, env=env).stdout
    X, y, XS, ys = [], [], [], []
    for m in json.loads(out)["matches"]:
        q = Path(m["query"]["path"]).stem
        r = Path(m["registered"]["path"]).stem
        s = m["signals"]
        label = 1.0 if gt.get(q) == r else 0.0
        if "structure" in s and s["pixel_score"] < LAYOUT_FIT_BELOW:
            XS.append(structure_features(float(s["structure"]), float(s["colour_agreement"])))
            ys.append(label)
        if s["pixel_score"] <= 1e-6 and s["inliers"] < MIN_INLIERS:
            continue            # kept only because its layout was compared
        X.append(features(int(s["inliers"]), float(s["photometric"]), int(s["hash_distance"]), float(s.get("fine_photometric") or 0.0)))
        y.append(label)
    return np.array(X), np.array(y), np.array(XS).reshape(-1, 3), np.array(ys)


LAYOUT_FIT_BELOW = 0.3
LAYOUT_L2 = 1.0


def fit(X: np.ndarray, y: np.ndarray, l2: float = 1e-2, iters: int = 50) -> tuple[np.ndarray, float]:
    A = np.hstack([X, np.ones((X.shape[0], 1))])
    w = np.zeros(A.shape[1])
    for _ in range(iters):
        p = 1 / (1 + np.exp(-np.clip(A @ w, -40, 40)))
        grad = A.T @ (p - y) + l2 * np.r_[w[:-1], 0]
        H = (A * (p * (1 - p))[:, None]).T @ A + l2 * np.diag(np.r_[np.ones(len(w) - 1), 0])
        step = np.linalg.solve(H + 1e-9 * np.eye(len(w)), grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w[:-1], float(w[-1])


def fit_monotone(X: np.ndarray, y: np.ndarray, l2: float = 1e-2) -> tuple[np.ndarray, float]:
    """The fit with every weight ≥ 0 (an active set: the most negative weight is
    dropped and the rest refitted). Every feature is one where more means "more
    like a copy", so the score must not fall when one rises. Unconstrained, the
    fit gave the fine agreement a negative weight: the bench labels as non-copies
    some pixel-identical variants of distractor references, whose fine agreement
    is as high as a copy's, and the fit learned that noise (the stereo-pair hard
    negative, fine agreement 0.53, then outranked most true copies)."""
    active = list(range(X.shape[1]))
    while True:
        w, b = fit(X[:, active], y, l2)
        if (w >= 0).all() or not active:
            out = np.zeros(X.shape[1])
            out[active] = w
            return out, b
        active.pop(int(np.argmin(w)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", default="/tmp/copyscope-imgbench-seed11")
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    X, y, XS, ys = collect(Path(args.bench))
    print(f"{len(y)} verified candidates, {int(y.sum())} true sources")
    w, b = fit_monotone(X, y)
    report(X, y, w, b)
    print(f"layout only (pixel score < {LAYOUT_FIT_BELOW}): {len(ys)} compared pairs, {int(ys.sum())} true sources")
    # Few true sources agree only in layout (11 on the seed-11 bench): a weakly
    # regularised fit puts its top at 0.99 where its precision is 0.5, so the
    # structure model is fitted with a strong prior towards "not sure".
    ws, bs = fit_monotone(XS, ys, l2=LAYOUT_L2)
    report(XS, ys, ws, bs)
    if args.write:
        name = Path(args.bench).name
        OUT.write_text(json.dumps({
            "fitted_on": f"{name}: {len(y)} verified candidates, {int(y.sum())} true sources",
            "features": ["log1p(inliers)", "photometric agreement", "log1p(inliers) * agreement",
                         "1 - hash distance / 32", "fine agreement", "fine * agreement"],
            "weights": [round(float(v), 5) for v in w], "bias": round(b, 5),
            "structure": {
                "fitted_on": f"{name}: {len(ys)} pairs compared by layout with pixel score < {LAYOUT_FIT_BELOW}, "
                             f"{int(ys.sum())} true sources",
                "features": ["structure similarity", "colour agreement", "similarity * colour agreement"],
                "weights": [round(float(v), 5) for v in ws], "bias": round(bs, 5)}}, indent=1) + "\n")
        print(f"wrote {OUT}")
    return 0


def report(X: np.ndarray, y: np.ndarray, w: np.ndarray, b: float) -> None:
    p = 1 / (1 + np.exp(-(X @ w + b)))
    print("weights", np.round(w, 3).tolist(), "bias", round(b, 3))
    print(f"log loss {float(-np.mean(y * np.log(p + 1e-12) + (1 - y) * np.log(1 - p + 1e-12))):.4f}")
    for t in (0.1, 0.3, 0.5, 0.7, 0.9):
        sel = p >= t
        prec = y[sel].mean() if sel.any() else float("nan")
        print(f"  p ≥ {t}: {int(sel.sum())} candidates, precision {prec:.3f}, recall {y[sel].sum() / max(1, y.sum()):.3f}")


if __name__ == "__main__":
    sys.exit(main())
