"""The calibrated confidence of a verification, the no-match curve and the threshold choice."""

from __future__ import annotations

import itertools

import numpy as np

from imsearch.bench.calibrate import QueryRecord, calibrate, choose_threshold, fit
from imsearch.rerank.confidence import (
    FEATURES,
    MatchModel,
    fit_logistic,
    no_match_curve,
    shipped_model,
    signals,
)


def test_the_shipped_model_loads_and_is_monotone_in_inliers() -> None:
    model = shipped_model()
    assert len(model.weights) == len(FEATURES) and 0.0 < model.threshold < 1.0
    assert model.source.startswith("imsearch bench calibrate")
    confidences = [model.confidence(i, 60) for i in (0, 5, 10, 20, 40, 60)]
    assert confidences[0] == 0.0  # no homography, no confidence
    assert all(a <= b for a, b in itertools.pairwise(confidences))
    # What chance gives: a handful of inliers among many tentative matches is not a match;
    # a painting among others keeps most of its fewer matches and is one.
    assert model.confidence(8, 70) < model.threshold < model.confidence(15, 25)
    assert model.confidence(200, 220) > 0.99


def test_logistic_fit_separates_what_is_separable() -> None:
    rng = np.random.default_rng(0)
    inliers = np.concatenate([rng.integers(4, 10, 300), rng.integers(25, 200, 100)])
    matches = inliers + rng.integers(5, 60, 400)
    labels = np.concatenate([np.zeros(300), np.ones(100)])
    weights = fit_logistic(signals(inliers, matches), labels)
    model = MatchModel(tuple(weights), 0.5)
    predicted = model.confidences(inliers, matches) >= 0.5
    assert (predicted == labels.astype(bool)).mean() > 0.97


def test_no_match_curve_counts_both_sides() -> None:
    curve = no_match_curve(present=[0.9, 0.8, 0.1], absent=[0.0, 0.2, 0.95], thresholds=[0.5])
    assert curve == [{"threshold": 0.5, "no_match_recall": 2 / 3, "false_no_match": 1 / 3}]


def _records(name: str, rng: np.random.Generator, n: int) -> list[QueryRecord]:
    out = []
    for i in range(n):
        wrong_inliers = rng.integers(0, 12, 19).astype(float)
        right = float(rng.integers(12, 150))
        inliers = np.concatenate([[right], wrong_inliers])
        matches = inliers + rng.integers(5, 50, 20)
        labels = np.zeros(20)
        labels[0] = 1.0
        out.append(QueryRecord(name, f"{name}{i}", True, inliers, matches, labels))
    return out


def test_calibration_keeps_false_no_match_within_each_bound() -> None:
    rng = np.random.default_rng(3)
    records = _records("a", rng, 120) + _records("b", rng, 80)
    bounds = {"a": 0.01, "b": 0.05}
    report = calibrate(records, bounds, min_inliers=4, folds=4)
    for name, point in report["held_out_at_threshold"].items():
        assert point["false_no_match"] <= bounds[name]
    assert report["held_out_at_threshold"]["a"]["no_match_recall"] > 0.8
    assert report["n_absent"] == {"a": 120, "b": 80}
    # The shipped weights are fitted on everything and score like the held-out ones.
    assert np.allclose(report["model"]["weights"], fit(records))


def test_threshold_choice_prefers_recall_within_the_bounds() -> None:
    scores = {"x": {"present": [0.9, 0.95, 0.6], "absent": [0.1, 0.3, 0.5, 0.7]}}
    threshold, curves = choose_threshold(scores, {"x": 0.0})
    assert 0.5 < threshold <= 0.6  # the highest that still answers every present photo
    assert curves["x"][0]["threshold"] == 0.0


def test_cross_domain_rows_fit_on_one_set_and_measure_on_the_other() -> None:
    from imsearch.bench.calibrate import cross_domain

    rng = np.random.default_rng(5)
    # "b" is harder: its right images verify with fewer inliers than "a"'s
    records = _records("a", rng, 100) + [
        QueryRecord(r.dataset, r.query, True, np.where(r.labels == 1, r.inliers / 4, r.inliers),
                    r.matches, r.labels)
        for r in _records("b", rng, 100)
    ]  # fmt: skip
    rows = cross_domain(records, {"a": 0.02, "b": 0.02}, min_inliers=4)
    assert [(r["fitted_on"], r["measured_on"]) for r in rows] == [("a", "b"), ("b", "a")]
    a_to_b, b_to_a = rows
    # fitted on the easy set, the harder one loses more of its present photos than it did
    assert a_to_b["false_no_match"] > b_to_a["false_no_match"]
    assert all(0.0 <= r["no_match_recall"] <= 1.0 for r in rows)
