"""Retrieval metrics as defined by the Revisited Oxford/Paris evaluation (Radenović et al. 2018).

* AP is the trapezoidal average precision of the reference code: for the i-th positive (0-based)
  at position r (0-based, junk removed), it adds ``(i/r + (i+1)/(r+1)) / 2`` per positive
  (``i/r`` is taken as 1 at r = 0), divided by the number of positives. With one positive at
  rank r > 0 this is ``1 / (2(r+1))``: stricter than the un-interpolated 1/(r+1).
* Junk images are removed from the ranking before anything is counted.
* mP@k follows the reference too: precision at ``min(k, position of the last positive)``.
* Queries without positives are skipped (AP is NaN and they do not count in the means).
* recall@k (ours): the share of queries with at least one positive in the top k, junk removed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GroundTruth:
    """Database indices that count as positives, and those ignored, for one query."""

    ok: Sequence[int]
    junk: Sequence[int] = ()


@dataclass
class MetricResult:
    map: float
    aps: np.ndarray  # (nq,), NaN for queries without positives
    mp: dict[int, float]  # k -> mean precision@k
    recall: dict[int, float]  # k -> share of queries with a positive in the top k
    n_queries: int  # queries that count (with positives)


def positive_positions(ranking: np.ndarray, gt: GroundTruth) -> np.ndarray:
    """0-based positions of the positives in ``ranking`` after removing junk entries."""
    ranking = np.asarray(ranking)
    keep = ~np.isin(ranking, np.asarray(gt.junk, dtype=ranking.dtype))
    return np.flatnonzero(np.isin(ranking[keep], np.asarray(gt.ok, dtype=ranking.dtype)))


def average_precision(positions: np.ndarray, n_positives: int) -> float:
    """Trapezoidal AP of positives found at sorted 0-based ``positions``."""
    if n_positives == 0:
        return float("nan")
    found = np.arange(len(positions), dtype=np.float64)
    ranks = positions.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        before = np.where(ranks == 0, 1.0, found / np.where(ranks == 0, 1.0, ranks))
    after = (found + 1) / (ranks + 1)
    return float(np.sum((before + after) / 2.0) / n_positives)


def precision_at(positions: np.ndarray, k: int) -> float:
    """Reference mP@k: precision at ``min(k, 1-based position of the last positive)``."""
    if len(positions) == 0:
        return 0.0
    one_based = positions + 1
    cut = min(int(one_based.max()), k)
    return float(np.sum(one_based <= cut) / cut)


def evaluate_rankings(
    rankings: Sequence[np.ndarray],
    ground_truth: Sequence[GroundTruth],
    kappas: Sequence[int] = (1, 5, 10),
    recall_ks: Sequence[int] = (1, 10, 100),
) -> MetricResult:
    """Metrics of ``rankings[i]`` (database indices, best first) against ``ground_truth[i]``.

    A ranking may be shorter than the database (a top-K list): positives it misses count as
    not retrieved.
    """
    if len(rankings) != len(ground_truth):
        raise ValueError("one ranking per query is required")
    aps = np.full(len(rankings), np.nan)
    precisions: dict[int, list[float]] = {k: [] for k in kappas}
    recalls: dict[int, list[bool]] = {k: [] for k in recall_ks}
    for i, (ranking, gt) in enumerate(zip(rankings, ground_truth, strict=True)):
        if len(gt.ok) == 0:
            continue
        positions = positive_positions(np.asarray(ranking), gt)
        aps[i] = average_precision(positions, len(gt.ok))
        for k in kappas:
            precisions[k].append(precision_at(positions, k))
        for k in recall_ks:
            recalls[k].append(bool(len(positions)) and int(positions[0]) < k)
    counted = int(np.sum(~np.isnan(aps)))
    return MetricResult(
        map=float(np.nanmean(aps)) if counted else float("nan"),
        aps=aps,
        mp={k: float(np.mean(v)) if v else float("nan") for k, v in precisions.items()},
        recall={k: float(np.mean(v)) if v else float("nan") for k, v in recalls.items()},
        n_queries=counted,
    )
