"""Code scores as likelihood ratios (the strength-of-evidence measure forensic
examiners report): LR = P(score | copied) / P(score | independent).

The table ships with the code (``calibration-v8.json``, written by
``benchmarks/code_calibrate.py``), so an exhibit's LR never depends on the
registry it was found in. Any prior turns it into a probability:
``p = LR·π / (LR·π + 1 − π)``.
"""
from __future__ import annotations

import bisect
import functools
import json
from importlib import resources


@functools.cache
def _table() -> tuple[str, list[float], list[float]]:
    raw = json.loads(resources.files("copyscope.code").joinpath("calibration-v8.json").read_text("utf-8"))
    knots = raw["knots"]
    return raw["table"], [k["score"] for k in knots], [k["likelihood_ratio"] for k in knots]


def likelihood_ratio(score: float) -> float:
    _, lows, lrs = _table()
    i = bisect.bisect_right(lows, score) - 1
    return lrs[max(0, i)]


def probability(score: float, prior: float = 0.5) -> float:
    """P(copied | score) for a case where a share ``prior`` of pairs are copies."""
    lr = likelihood_ratio(score)
    return lr * prior / (lr * prior + 1.0 - prior)


def describe(score: float) -> dict:
    return {"likelihood_ratio": likelihood_ratio(score), "table": _table()[0]}
