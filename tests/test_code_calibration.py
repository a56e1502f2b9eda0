"""The shipped calibration table turns code scores into likelihood ratios."""
from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest

from copyscope.code.calibration import likelihood_ratio, probability
from copyscope.code.plugin import CodeModality
from copyscope.model import Artifact
from copyscope.report.html import render_html

SAMPLE = (Path(__file__).parent / "code_samples" / "c" / "stats.c").read_bytes()


def test_table_is_sorted_and_monotone():
    knots = json.loads(resources.files("copyscope.code").joinpath("calibration-v8.json").read_text())["knots"]
    scores = [k["score"] for k in knots]
    lrs = [k["likelihood_ratio"] for k in knots]
    assert scores == sorted(scores) and len(knots) >= 3
    assert lrs == sorted(lrs) and lrs[0] < 1 < lrs[-1]
    assert all(k["pairs"] > 0 for k in knots)


def test_lr_rises_with_the_score_and_stays_finite():
    grid = [i / 100 for i in range(101)]
    lrs = [likelihood_ratio(s) for s in grid]
    assert lrs == sorted(lrs)
    assert likelihood_ratio(0.0) < 0.5 and likelihood_ratio(1.0) > 10
    assert all(0 < lr < 1e6 for lr in lrs)


@pytest.mark.parametrize("prior", [0.01, 0.5, 0.9])
def test_probability_follows_bayes(prior):
    lr = likelihood_ratio(0.95)
    p = probability(0.95, prior)
    assert p / (1 - p) == pytest.approx(lr * prior / (1 - prior))
    assert probability(0.95, 0.01) < probability(0.95, 0.5) < probability(0.95, 0.9)


def test_match_and_report_carry_the_lr_and_the_shared_literals():
    m = CodeModality()
    a = m.fingerprint(Artifact(data=SAMPLE, origin="a.c"))
    b = m.fingerprint(Artifact(data=SAMPLE.replace(b"summarize", b"digest"), origin="b.c"))
    match = m.verify(a, b)
    assert match.extra["likelihood_ratio"] == likelihood_ratio(match.score) > 1
    html = render_html({"format": "copyscope.evidence/v1", "operation": "check", "matches": [match.to_json()]})
    assert "Likelihood ratio" in html and "Shared string literals" in html
    assert '"Mean of the values: %f\\n"' in match.extra["shared_literals"]
    assert "Mean of the values" in html
