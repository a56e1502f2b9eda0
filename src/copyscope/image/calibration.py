"""Image scores as calibrated probabilities.

``score = σ(w · features + b)`` with features built from the verification:
log inlier count, photometric agreement (thumbnail and full analysis size) and
global-hash distance. A pair that agrees only in layout (a re-drawing) is
scored by a second model on the structure similarity and colour agreement. The weights
ship with the code (``calibration-v1.json``), fitted by
``benchmarks/image_calibrate.py`` on a benchmark built with another seed than
the one the figures are reported on, so the reported figures are held out.
"""
from __future__ import annotations

import functools
import json
import math
import os
from importlib import resources


@functools.cache
def _model() -> dict:
    return json.loads(resources.files("copyscope.image").joinpath("calibration-v1.json").read_text("utf-8"))


def features(inliers: int, agreement: float, hash_distance: int, fine: float = 0.0) -> list[float]:
    geo = math.log1p(inliers)
    return [geo, agreement, geo * agreement, max(0.0, 1.0 - hash_distance / 32.0), fine, fine * agreement]


FINE_FEATURES = (4, 5)          # the features that read the fine agreement
FINE_PASS_ENV = "COPYSCOPE_IMAGE_FINE_PASS"   # "1": compute it anyway (benchmarks/image_calibrate.py)


def uses_fine() -> bool:
    """Whether the fine agreement moves the score at all. The monotone fit gives
    it no weight on the shipped benches (blurred copies lose their fine detail
    as surely as another photograph does), and computing it decodes the
    registered file: a check skips it then. The calibration run sets
    ``FINE_PASS_ENV``, so a refit still sees the feature's real values and can
    give it weight again (else the model's zero would decide its own refit)."""
    return calibrating() or any(_model()["weights"][i] != 0 for i in FINE_FEATURES)


def calibrating() -> bool:
    """A calibration run (``FINE_PASS_ENV``): every feature is measured, whatever
    the shipped model would skip."""
    return os.environ.get(FINE_PASS_ENV) == "1"


def score_of(inliers: int, agreement: float, hash_distance: int, fine: float = 0.0) -> float:
    m = _model()
    z = m["bias"] + sum(w * f for w, f in zip(m["weights"], features(inliers, agreement, hash_distance, fine)))
    return _sigmoid(z)


def structure_features(similarity: float, colour: float) -> list[float]:
    return [similarity, colour, similarity * colour]


def structure_score(similarity: float, colour: float) -> float:
    """The chance that a pair agreeing only in layout (``image.structure``) is a
    re-drawn copy: its own model, fitted like the pixel one, because the same
    layout is also what two different flags or icons share."""
    m = _model()["structure"]
    return _sigmoid(m["bias"] + sum(w * f for w, f in zip(m["weights"],
                                                           structure_features(similarity, colour))))


@functools.cache
def structure_ceiling() -> float:
    """The most a layout alone can score: a pair whose pixel score is already
    higher is not worth the comparison."""
    return structure_score(1.0, 1.0)


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-40.0, min(40.0, z))))
