"""``imsearch bench calibrate``: fit the match model and choose its threshold on dev sets.

For every query of every development set, the first ``m`` candidates of the default pipeline
are verified and each verification is recorded with its label (a positive of the query, or
not; junk is left out). A query's photo of an *absent* object is the query itself with its
positives taken out of the candidates (its best remaining candidate is what the engine would
answer if the object were not in the collection), besides the sets' own no-match queries.

The logistic weights (:mod:`imsearch.rerank.confidence`) are fitted with every set weighing
the same and, within a set, both classes the same. The threshold is chosen on held-out
confidences (k-fold over queries): the one with the best mean no-match recall over the sets
among those whose false no-match stays within each set's bound. The weights shipped are then
fitted on all queries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm import tqdm

from imsearch.evaluate.datasets import Dataset
from imsearch.evaluate.runner import EvalOptions, prepare_engine, query_bytes
from imsearch.rerank.confidence import MatchModel, fit_logistic, no_match_curve, signals
from imsearch.rerank.spatial import VerifyParams
from imsearch.settings import Settings

THRESHOLDS = tuple(round(x, 3) for x in np.linspace(0.0, 1.0, 201))


@dataclass(frozen=True)
class QueryRecord:
    dataset: str
    query: str
    has_positives: bool
    inliers: np.ndarray
    matches: np.ndarray
    #: 1 for a positive of the query, 0 otherwise.
    labels: np.ndarray


def collect(
    dataset: Dataset, settings: Settings, options: EvalOptions, progress: bool = True
) -> list[QueryRecord]:
    """Verify the first ``m`` candidates of every query; one record per query."""
    config = options.rerank
    records = []
    with prepare_engine(dataset, settings, options, progress) as prepared:
        engine = prepared.engine
        verifier = engine.reranker.verifier
        assert verifier is not None, "calibration needs local features"
        params = VerifyParams(ratio=config.ratio, min_inliers=config.min_inliers)
        for query in tqdm(dataset.queries, desc="queries", unit="q", disable=not progress):
            features, _ = engine.pipeline.describe(query_bytes(query, 0), query.bbox, local=True)
            assert features.local is not None
            found = engine.pipeline.searcher.candidates(features, config.shortlist, config)
            chosen = [c for c in found.hits[: config.m] if c.ref is not None]
            checks = verifier.verify(features.local, [c.ref for c in chosen if c.ref], params)
            positives = {dataset.database_ids[i] for i in query.gt.ok}
            junk = {dataset.database_ids[i] for i in query.gt.junk}
            kept = [
                (c, v)
                for c, v in zip(chosen, checks, strict=True)
                if v is not None and c.id not in junk
            ]
            records.append(
                QueryRecord(
                    dataset.name,
                    query.id,
                    bool(positives),
                    np.array([v.inliers for _, v in kept], dtype=np.float64),
                    np.array([v.matches for _, v in kept], dtype=np.float64),
                    np.array([c.id in positives for c, _ in kept], dtype=np.float64),
                )
            )
    return records


def fit(records: Sequence[QueryRecord]) -> np.ndarray:
    """Logistic weights with every data set, and both classes within it, weighing the same."""
    names = sorted({r.dataset for r in records})
    xs, ys, ws = [], [], []
    for name in names:
        chosen = [r for r in records if r.dataset == name]
        inliers = np.concatenate([r.inliers for r in chosen])
        matches = np.concatenate([r.matches for r in chosen])
        labels = np.concatenate([r.labels for r in chosen])
        keep = inliers > 0  # no homography: confidence 0 by definition, not a sample
        inliers, matches, labels = inliers[keep], matches[keep], labels[keep]
        n_pos, n_neg = max(labels.sum(), 1.0), max((1 - labels).sum(), 1.0)
        xs.append(signals(inliers, matches))
        ys.append(labels)
        ws.append(np.where(labels == 1, 1.0 / n_pos, 1.0 / n_neg) / len(names))
    weights = np.concatenate(ws)
    return fit_logistic(np.concatenate(xs), np.concatenate(ys), weights * len(weights))


def query_scores(
    records: Sequence[QueryRecord], model: MatchModel, min_inliers: int
) -> dict[str, dict[str, list[float]]]:
    """Per data set: the best confidence of each photo of a present object, and of each photo
    of an absent one (no-match queries, and every query with its positives taken out)."""
    out: dict[str, dict[str, list[float]]] = {}
    for r in records:
        conf = model.confidences(r.inliers, r.matches) * (r.inliers >= min_inliers)
        sets = out.setdefault(r.dataset, {"present": [], "absent": []})
        if r.has_positives:
            sets["present"].append(float(conf.max(initial=0.0)))
        sets["absent"].append(float(conf[r.labels == 0].max(initial=0.0)))
    return out


def choose_threshold(
    scores: dict[str, dict[str, list[float]]], max_false_no_match: dict[str, float]
) -> tuple[float, dict[str, list[dict[str, float]]]]:
    """The threshold with the best mean no-match recall whose false no-match stays within
    each set's bound (the lowest threshold when none does), and the curves."""
    curves = {
        name: no_match_curve(s["present"], s["absent"], THRESHOLDS) for name, s in scores.items()
    }
    best, best_recall = THRESHOLDS[0], -1.0
    for i, threshold in enumerate(THRESHOLDS):
        if all(curves[n][i]["false_no_match"] <= max_false_no_match[n] for n in curves):
            recall = float(np.mean([curves[n][i]["no_match_recall"] for n in curves]))
            if recall > best_recall:
                best, best_recall = threshold, recall
    return best, curves


def calibrate(
    records: Sequence[QueryRecord],
    max_false_no_match: dict[str, float],
    min_inliers: int,
    folds: int = 5,
    seed: int = 0,
) -> dict[str, Any]:
    """Cross-validated threshold, final weights and the held-out curves (the report)."""
    rng = np.random.default_rng(seed)
    fold_of = rng.integers(0, folds, len(records))
    held_out: list[QueryRecord] = []
    held_models: list[MatchModel] = []
    for k in range(folds):
        train = [r for r, f in zip(records, fold_of, strict=True) if f != k]
        model = MatchModel(tuple(fit(train)), 0.5)
        test = [r for r, f in zip(records, fold_of, strict=True) if f == k]
        held_out += test
        held_models += [model] * len(test)
    # Score each held-out query with the model that did not see it.
    scores: dict[str, dict[str, list[float]]] = {}
    for record, model in zip(held_out, held_models, strict=True):
        for name, s in query_scores([record], model, min_inliers).items():
            merged = scores.setdefault(name, {"present": [], "absent": []})
            merged["present"] += s["present"]
            merged["absent"] += s["absent"]
    threshold, curves = choose_threshold(scores, max_false_no_match)
    weights = fit(records)
    at = THRESHOLDS.index(threshold)
    return {
        "model": MatchModel(tuple(float(w) for w in weights), threshold).to_json(),
        "folds": folds,
        "min_inliers": min_inliers,
        "max_false_no_match": max_false_no_match,
        "held_out_at_threshold": {name: curve[at] for name, curve in curves.items()},
        "n_queries": {name: len(s["present"]) for name, s in scores.items()},
        "n_absent": {name: len(s["absent"]) for name, s in scores.items()},
        "curves": curves,
    }


def cross_domain(
    records: Sequence[QueryRecord],
    max_false_no_match: dict[str, float],
    min_inliers: int,
    margin: float = 0.5,
) -> list[dict[str, Any]]:
    """Does a calibration carry over? For each set: weights fitted on it alone, the threshold
    chosen on it with its false no-match bound tightened by ``margin`` (a 2 % bound becomes
    1 %), then measured on every *other* set, which it never saw — one row per direction."""
    names = list(dict.fromkeys(r.dataset for r in records))
    rows = []
    for source in names:
        mine = [r for r in records if r.dataset == source]
        model = MatchModel(tuple(fit(mine)), 0.5)
        bound = {source: max_false_no_match[source] * (1 - margin)}
        threshold, _ = choose_threshold(query_scores(mine, model, min_inliers), bound)
        tuned = MatchModel(model.weights, threshold)
        for target in names:
            if target == source:
                continue
            scores = query_scores([r for r in records if r.dataset == target], tuned, min_inliers)
            point = no_match_curve(
                scores[target]["present"], scores[target]["absent"], (threshold,)
            )[0]
            rows.append(
                {
                    "fitted_on": source,
                    "measured_on": target,
                    "threshold": threshold,
                    "false_no_match": point["false_no_match"],
                    "no_match_recall": point["no_match_recall"],
                }
            )
    return rows


def records_to_json(records: Sequence[QueryRecord]) -> list[dict[str, Any]]:
    return [
        {
            "dataset": r.dataset,
            "query": r.query,
            "has_positives": r.has_positives,
            "inliers": r.inliers.astype(int).tolist(),
            "matches": r.matches.astype(int).tolist(),
            "labels": r.labels.astype(int).tolist(),
        }
        for r in records
    ]


def records_from_json(rows: Sequence[dict[str, Any]]) -> list[QueryRecord]:
    return [
        QueryRecord(
            str(r["dataset"]),
            str(r["query"]),
            bool(r["has_positives"]),
            np.array(r["inliers"], dtype=np.float64),
            np.array(r["matches"], dtype=np.float64),
            np.array(r["labels"], dtype=np.float64),
        )
        for r in rows
    ]
