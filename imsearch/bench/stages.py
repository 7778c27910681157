"""``imsearch bench stages``: where a query's time goes, stage by stage.

The dataset's database is indexed as ``eval`` does, then each query runs twice:

1. stage by stage, one after the other on the calling thread, each stage timed alone:
   ``decode`` (bytes to pixels at the side both descriptors need), ``cnn`` (the global
   descriptor on the configured runtime), ``sift`` (the query's RootSIFT), ``search`` (the
   index, the visual-word shortlist and the fusion: the candidates), ``read`` (the candidates'
   local features from the feature store), ``matching`` (ratio-test matches of the ``m``
   candidates, summed) and ``ransac`` (their homographies, summed);
2. through the pipeline as the API runs it (verification in parallel waves), timed end to end
   (``end_to_end``): what a user waits for, which is less than the sum of the stages.

The descriptor cache is off; the feature reader's cache is warm after the first query, as in
a serving process.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
from tqdm import tqdm

from imsearch.engine import Engine
from imsearch.evaluate.datasets import Dataset
from imsearch.evaluate.runner import EvalOptions, prepare_engine, query_bytes
from imsearch.features.local import LocalFeatures
from imsearch.pipeline import InProcessExtractor
from imsearch.rerank.reranker import QueryFeatures
from imsearch.rerank.spatial import VerifyParams, fit, ratio_matches
from imsearch.settings import Settings

STAGES = ("decode", "cnn", "sift", "search", "read", "matching", "ransac")
T = TypeVar("T")


def run_stages(
    dataset: Dataset,
    settings: Settings,
    options: EvalOptions | None = None,
    limit: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Per-stage milliseconds per query (mean, p50, p95) and the end-to-end time."""
    options = options or EvalOptions(rerank=settings.rerank_config())
    queries = dataset.queries[:limit] if limit else dataset.queries
    rows: list[dict[str, float]] = []
    with prepare_engine(dataset, settings, options, progress) as prepared:
        engine = prepared.engine
        for query in tqdm(queries, desc="stages", unit="q", disable=not progress):
            data = query_bytes(query, options.rotate)
            row = _time_stages(engine, data, query.bbox, options)
            started = time.perf_counter()
            engine.pipeline.search(data, k=10, bbox=query.bbox, rerank=options.rerank)
            row["end_to_end"] = (time.perf_counter() - started) * 1e3
            rows.append(row)
        describe = engine.extractor
        runtime, model_id = describe.runtime, describe.model_id
    names = (*STAGES, "end_to_end")
    summary = {name: _summary([r[name] for r in rows]) for name in names}
    summary["sum_of_stages"] = _summary([sum(r[s] for s in STAGES) for r in rows])
    return {
        "dataset": dataset.name,
        "n_queries": len(rows),
        "model_id": model_id,
        "runtime": runtime,
        "matcher": settings.rerank_matcher,
        "rerank": options.rerank.describe(),
        "rerank_workers": settings.rerank_workers,
        "threads": settings.threads,
        "local_max_side": settings.local_max_side,
        "query_local_max_side": settings.query_local_max_side,
        "ms": summary,
    }


def _time_stages(engine: Engine, data: bytes, bbox: Any, options: EvalOptions) -> dict[str, float]:
    row: dict[str, float] = {}
    clock = _Clock(row)
    inproc = engine.pipeline.extractor
    assert isinstance(inproc, InProcessExtractor)
    image = clock("decode", lambda: inproc.decode(data, bbox))
    vector = clock("cnn", lambda: engine.extractor.describe([image])[0])
    config = options.rerank
    sift = inproc.query_sift
    local = clock("sift", lambda: sift.extract(image)) if config.needs_local else None
    shortlist = max(10, config.shortlist if config.stages else 10)
    query = QueryFeatures(vector, local)
    found = clock("search", lambda: engine.pipeline.searcher.candidates(query, shortlist, config))
    verifier = getattr(engine.reranker, "verifier", None)
    refs = [c.ref for c in found.hits[: config.m] if c.ref is not None]
    row.update(read=0.0, matching=0.0, ransac=0.0)
    if local is None or verifier is None or not refs:
        return row
    feats = [f for f in clock("read", lambda: verifier.features(refs)) if f is not None]
    params = VerifyParams(ratio=config.ratio, min_inliers=config.min_inliers)
    rootsift = local.rootsift()

    def match_all() -> list[np.ndarray]:
        return [
            ratio_matches(rootsift, f.rootsift(), params.ratio, verifier.matcher) for f in feats
        ]

    pairs = clock("matching", match_all)
    clock("ransac", lambda: [_fit(local, f, p, params) for f, p in zip(feats, pairs, strict=True)])
    return row


def _fit(query: LocalFeatures, cand: LocalFeatures, pairs: np.ndarray, params: VerifyParams) -> int:
    return fit(query, cand, pairs, params).inliers


class _Clock:
    """Runs a stage and adds its milliseconds to the row."""

    def __init__(self, row: dict[str, float]) -> None:
        self.row = row

    def __call__(self, name: str, work: Callable[[], T]) -> T:
        started = time.perf_counter()
        out = work()
        self.row[name] = self.row.get(name, 0.0) + (time.perf_counter() - started) * 1e3
        return out


def _summary(values: list[float]) -> dict[str, float]:
    data = np.asarray(values, dtype=np.float64)
    if not len(data):
        return {"mean": 0.0, "p50": 0.0, "p95": 0.0}
    return {
        "mean": float(data.mean()),
        "p50": float(np.percentile(data, 50)),
        "p95": float(np.percentile(data, 95)),
    }


def format_stages(report: dict[str, Any]) -> str:
    """The breakdown as a table: one row per stage, mean / p50 / p95 and share of the sum."""
    ms = report["ms"]
    total = ms["sum_of_stages"]["mean"] or 1.0
    head = (
        f"{report['dataset']}: {report['n_queries']} queries, runtime {report['runtime']}, "
        f"matcher {report['matcher']}"
    )
    lines = [head, f"{'stage':<14}{'mean ms':>10}{'p50':>10}{'p95':>10}{'share':>8}"]
    for name in (*STAGES, "sum_of_stages", "end_to_end"):
        row = ms[name]
        share = f"{100 * row['mean'] / total:.0f}%" if name in STAGES else ""
        lines.append(
            f"{name:<14}{row['mean']:>10.1f}{row['p50']:>10.1f}{row['p95']:>10.1f}{share:>8}"
        )
    return "\n".join(lines)
