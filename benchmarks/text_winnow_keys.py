#!/usr/bin/env python3
"""How many indexed keys a copied passage of L tokens shares with its source.

The text engine indexes winnowed k-grams, and a registry check verifies only
candidates sharing ``min_shared_keys`` of them with the query
(docs/text-engine.md). This simulates the rule's cost: a run of L identical
tokens (random hashes) sits inside two otherwise different documents, both
sides are winnowed with the engine's own parameters and ``winnow``, and the
shared keys are counted. It prints, per L, the chance that the passage
carries at most 1, 2 or 3 keys (a check would then not verify it at
``min_shared_keys`` 2, 3 or 4).

    python benchmarks/text_winnow_keys.py [--trials 20000]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from copyscope.text.analysis import TextParams  # noqa: E402
from copyscope.text.fingerprint import winnow  # noqa: E402


def shared_keys(rng: np.random.Generator, length: int, k: int, w: int, margin: int = 40) -> int:
    run = rng.integers(0, 2**63, length - k + 1, dtype=np.uint64)     # the shared k-grams
    sides = [np.concatenate([rng.integers(0, 2**63, margin, dtype=np.uint64), run,
                             rng.integers(0, 2**63, margin, dtype=np.uint64)]) for _ in range(2)]
    a, b = (set(s[winnow(s, w)].tolist()) for s in sides)
    return len(a & b)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=20000)
    args = ap.parse_args()
    p = TextParams()
    rng = np.random.default_rng(1)
    for stream, lengths in (("word", (15, 17, 19, 21, 23, 25, 30)), ("cjk", (24, 27, 30, 33, 36))):
        k, w = p.k(stream), p.window(stream)
        # the shortest passage that reaches the threshold alone, at full rarity
        needed = p.coincidence(stream) + p.scale(stream) * np.log(1 / (1 - p.threshold))
        print(f"{stream} stream: k={k}, window={w}, min_shared_keys={p.min_shared_keys}, "
              f"a passage needs ~{needed:.0f} tokens to pass alone; {args.trials} trials per length")
        print(f"{'tokens':>6} {'P(<=1)':>8} {'P(<=2)':>8} {'P(<=3)':>8} {'mean keys':>10}")
        for length in lengths:
            n = np.array([shared_keys(rng, length, k, w) for _ in range(args.trials)])
            print(f"{length:6d} {np.mean(n <= 1):8.4f} {np.mean(n <= 2):8.4f} {np.mean(n <= 3):8.4f} {n.mean():10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
