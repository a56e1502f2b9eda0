#!/usr/bin/env python3
"""Image copy detection on the DISC21-style public bench, through the shared
harness, beside the peers.

Build the bench first (about 10 minutes; README of ../shared/bench/image):

    python3 -m venv /tmp/img-venv && /tmp/img-venv/bin/pip install numpy pillow \\
        opencv-python-headless imagehash pdqhash iscc-core scikit-image scikit-learn matplotlib
    bash ../shared/bench/image/fetch_corpus.sh /tmp/copyscope-corpus
    /tmp/img-venv/bin/python ../shared/bench/image/make_bench.py --src /tmp/copyscope-corpus/src \\
        --split public --out /tmp/copyscope-imgbench-public

Then:

    python benchmarks/image_accuracy.py                      # copyscope + sift, orb, pdq8, pdq, phash
    python benchmarks/image_accuracy.py --peers ''           # copyscope only
    python benchmarks/image_accuracy.py --bench /tmp/copyscope-imgbench-seed11

copyscope runs as a plug-in of ``run_peers.py``: ``--adapter`` registers every
reference (``copyscope register --each``) in a fresh workspace, then checks every
query with ``--threshold 0.000001 --format tsv`` (every verified candidate, so the
harness can rank them), printing ``query<TAB>reference<TAB>score``.

Targets (issue #5): μAP ≥ 0.95, recall at precision 0.9 ≥ 0.90, hard-negative
false alarms at the P90 threshold ≤ 5 %.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("COPYSCOPE_SHARED", REPO.parent / "shared"))
HARNESS = SHARED / "bench/image/run_peers.py"
PEERS_PY = Path(os.environ.get("IMG_VENV", "/tmp/img-venv")) / "bin/python"


def adapter(refs_list: Path, queries_list: Path, out: Path) -> int:
    exe = str(Path(sys.executable).with_name("copyscope"))
    refs = [line.strip() for line in refs_list.read_text().splitlines() if line.strip()]
    queries = [line.strip() for line in queries_list.read_text().splitlines() if line.strip()]
    with tempfile.TemporaryDirectory(prefix="cs-img-") as home:
        base = [exe, "--home", home, "--quiet"]
        subprocess.run(base + ["init"], check=True, stdout=subprocess.DEVNULL)
        rc = subprocess.run(base + ["register", "--each", "--owner", "bench", *refs], stdout=subprocess.DEVNULL).returncode
        if rc not in (0, 2):
            return rc
        with open(out, "w") as fh:
            rc = subprocess.run(base + ["check", "--threshold", "0.000001", "--format", "tsv", *queries], stdout=fh).returncode
    return 0 if rc in (0, 1, 2) else rc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", default="/tmp/copyscope-imgbench-public")
    ap.add_argument("--out", default=None, help="results folder (default /tmp/imgbench-results-<bench name>)")
    ap.add_argument("--peers", default="sift,orb,pdq8,pdq,phash", help="peer methods ('' for none)")
    ap.add_argument("--workers", default="1", help="harness workers (1: timings per core)")
    ap.add_argument("--max-queries", default="0")
    ap.add_argument("--adapter", nargs=3, metavar=("REFS_LIST", "QUERIES_LIST", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.adapter:
        return adapter(*(Path(a) for a in args.adapter))
    bench = Path(args.bench)
    if not (bench / "refs").is_dir():
        print(f"no bench at {bench}: build it first (see this script's docstring)", file=sys.stderr)
        return 2
    out = args.out or f"/tmp/imgbench-results-{bench.name}"
    python = str(PEERS_PY if PEERS_PY.exists() else sys.executable)
    me = f"{sys.executable} {Path(__file__).resolve()} --adapter {{refs_list}} {{queries_list}} {{out}}"
    cmd = [python, str(HARNESS), "--bench", str(bench), "--out", out, "--methods", args.peers,
           "--workers", args.workers, "--max-queries", args.max_queries, "--plugin", f"copyscope={me}"]
    rc = subprocess.run(cmd).returncode
    results = Path(out) / "results.md"
    if results.exists():
        print(results.read_text())
    return rc


if __name__ == "__main__":
    sys.exit(main())
