"""The metrics reproduce the Revisited Oxford/Paris reference evaluation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from imsearch.evaluate.datasets import read_revisited_gnd, revisited_ground_truth
from imsearch.evaluate.metrics import (
    GroundTruth,
    average_precision,
    evaluate_rankings,
    positive_positions,
    precision_at,
)
from tests.conftest import DATA

VECTORS = DATA / "revisited"
CASES = [
    (dataset, ranking, protocol)
    for dataset in ("roxford5k", "rparis6k")
    for ranking in ("random", "noisy", "ideal_medium")
    for protocol in ("easy", "medium", "hard")
]


@pytest.fixture(scope="module")
def expected() -> dict:
    return json.loads((VECTORS / "revisited_expected.json").read_text())


@pytest.fixture(scope="module")
def rankings() -> np.lib.npyio.NpzFile:
    return np.load(VECTORS / "revisited_rankings.npz")


@pytest.mark.parametrize(("dataset", "ranking", "protocol"), CASES)
def test_reproduces_reference_numbers(expected, rankings, dataset, ranking, protocol) -> None:
    gnd = read_revisited_gnd(VECTORS / f"gnd_{dataset}.pkl")["gnd"]
    result = evaluate_rankings(
        list(rankings[f"{dataset}__{ranking}"]), revisited_ground_truth(gnd, protocol)
    )
    want = expected[dataset][ranking][protocol]
    assert result.map == pytest.approx(want["mAP"], abs=1e-6)
    for k in (1, 5, 10):
        assert result.mp[k] == pytest.approx(want[f"mP@{k}"], abs=1e-6)
    want_aps = np.array([np.nan if a is None else a for a in want["AP_per_query"]])
    np.testing.assert_array_equal(np.isnan(result.aps), np.isnan(want_aps))
    np.testing.assert_allclose(result.aps, want_aps, atol=1e-6, equal_nan=True)


def test_single_positive_ap_is_trapezoidal() -> None:
    assert average_precision(np.array([0]), 1) == 1.0
    for rank in (1, 4, 99):
        assert average_precision(np.array([rank]), 1) == pytest.approx(1 / (2 * (rank + 1)))


def test_junk_is_removed_before_counting() -> None:
    ranking = np.array([7, 3, 5, 9])
    gt = GroundTruth(ok=[5], junk=[7, 3])
    assert positive_positions(ranking, gt).tolist() == [0]
    result = evaluate_rankings([ranking], [gt])
    assert result.map == 1.0 and result.mp[1] == 1.0 and result.recall[1] == 1.0


def test_missing_positives_count_as_not_retrieved() -> None:
    # Two positives, only one in a truncated top-3 list at position 0: AP = 1/2.
    result = evaluate_rankings([np.array([4, 1, 2])], [GroundTruth(ok=[4, 8])])
    assert result.map == pytest.approx(0.5)
    assert result.recall[1] == 1.0
    none_found = evaluate_rankings([np.array([1, 2])], [GroundTruth(ok=[9])])
    assert none_found.map == 0.0 and none_found.mp[5] == 0.0 and none_found.recall[100] == 0.0


def test_precision_uses_last_positive_cutoff() -> None:
    # Positives at 1-based ranks 1 and 2: P@10 is precision at min(10, 2) = 1.0.
    assert precision_at(np.array([0, 1]), 10) == 1.0
    assert precision_at(np.array([0, 4]), 5) == pytest.approx(2 / 5)


def test_queries_without_positives_are_skipped() -> None:
    result = evaluate_rankings(
        [np.array([0, 1]), np.array([1, 0])], [GroundTruth(ok=[]), GroundTruth(ok=[1])]
    )
    assert np.isnan(result.aps[0])
    assert result.n_queries == 1 and result.map == 1.0
