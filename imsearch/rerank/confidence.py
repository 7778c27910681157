"""How sure a geometric verification is: a calibrated probability instead of an inlier count.

A fixed inlier count does not carry over between domains: a painting photographed among
three others keeps 15 of its 40 tentative matches, random matches against a busy catalogue
page leave 8 of 70. What tells them apart is the inlier count *against what chance gives
for that many tentative matches* — the a contrario idea. The model is a logistic regression
over three signals of one (query, candidate) verification:

* ``log(1 + inliers)``;
* the inlier ratio ``inliers / matches`` (random matches rarely agree on one homography);
* ``log(1 + matches)``, the tentative matches that passed the ratio test (the more there
  are, the more inliers chance alone produces).

Its output is the ``confidence`` of a verified result: the probability, on the development
sets, that the candidate shows the same object. A candidate counts as a confident match when
its confidence reaches the threshold; a query whose candidates all stay below it is answered
"no confident match". Weights and threshold come from ``imsearch bench calibrate`` (logistic
fit and threshold chosen by cross-validation over queries of SMVS and museum-dev, both
weighted equally) and ship in ``imsearch/data/match-model.json``; docs/BENCHMARKS.md §10 has
the command and the curves.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from typing import Any

import numpy as np

FEATURES = ("bias", "log1p_inliers", "inlier_ratio", "log1p_matches")


def signals(inliers: np.ndarray, matches: np.ndarray) -> np.ndarray:
    """The model's inputs, one row per verification (see :data:`FEATURES`)."""
    inliers = np.asarray(inliers, dtype=np.float64)
    matches = np.asarray(matches, dtype=np.float64)
    ratio = inliers / np.maximum(matches, 1.0)
    return np.stack([np.ones_like(inliers), np.log1p(inliers), ratio, np.log1p(matches)], axis=1)


@dataclass(frozen=True)
class MatchModel:
    """Logistic weights over :func:`signals` and the confident-match threshold."""

    weights: tuple[float, ...]
    threshold: float
    #: Where the numbers come from (the command and data that produced them).
    source: str = ""

    def confidence(self, inliers: int, matches: int) -> float:
        """P(same object) for one verification; 0 without a homography."""
        if inliers <= 0:
            return 0.0
        return float(self.confidences(np.array([inliers]), np.array([matches]))[0])

    def confidences(self, inliers: np.ndarray, matches: np.ndarray) -> np.ndarray:
        z = signals(inliers, matches) @ np.asarray(self.weights)
        p = 1.0 / (1.0 + np.exp(-z))
        return np.where(np.asarray(inliers) > 0, p, 0.0)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "features": list(FEATURES)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MatchModel:
        if list(data.get("features", FEATURES)) != list(FEATURES):
            raise ValueError(f"match model features {data.get('features')} != {FEATURES}")
        return cls(
            tuple(float(w) for w in data["weights"]),
            float(data["threshold"]),
            str(data.get("source", "")),
        )


def shipped_model() -> MatchModel:
    """The model calibrated on the development sets (``imsearch/data/match-model.json``)."""
    text = resources.files("imsearch").joinpath("data/match-model.json").read_text()
    return MatchModel.from_json(json.loads(text))


def fit_logistic(
    x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None, l2: float = 1e-3
) -> np.ndarray:
    """Weighted logistic regression by Newton's method (IRLS); the bias is not penalised."""
    w = np.zeros(x.shape[1])
    sample = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=np.float64)
    penalty = np.full(x.shape[1], l2)
    penalty[0] = 0.0
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-(x @ w)))
        gradient = x.T @ (sample * (p - y)) + penalty * w
        hessian = (x * (sample * p * (1 - p))[:, None]).T @ x + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def no_match_curve(
    present: Sequence[float], absent: Sequence[float], thresholds: Sequence[float]
) -> list[dict[str, float]]:
    """For each threshold: the share of photos of absent objects answered "no confident match"
    (no-match recall) and the share of photos of present ones answered so (false no-match).

    ``present`` / ``absent`` hold each query's best confidence (0 when nothing verified)."""
    p = np.asarray(present, dtype=np.float64)
    a = np.asarray(absent, dtype=np.float64)
    return [
        {
            "threshold": float(t),
            "no_match_recall": float(np.mean(a < t)) if len(a) else float("nan"),
            "false_no_match": float(np.mean(p < t)) if len(p) else float("nan"),
        }
        for t in thresholds
    ]
