"""``imsearch eval``: index a dataset's database, run its queries, measure quality and time.

The queries go through the same :class:`~imsearch.pipeline.SearchPipeline` as the API (with the
descriptor cache off, so every query pays for its extraction), and each returns a ranking of the
whole database so mAP is exact.
"""

from __future__ import annotations

import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from imsearch.evaluate.datasets import Dataset
from imsearch.evaluate.metrics import evaluate_rankings
from imsearch.features.extractor import Extractor
from imsearch.index.store import IndexStore
from imsearch.indexing import index_files, maybe_learn_whitening
from imsearch.pipeline import LocalExtractor, SearchPipeline, make_reranker
from imsearch.settings import Settings

KAPPAS = (1, 5, 10)
RECALL_KS = (1, 10, 100)


def run_eval(
    dataset: Dataset,
    settings: Settings,
    data_dir: Path | None = None,
    rerank: str = "none",
    extractor: Extractor | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate ``settings`` on ``dataset``; returns the report written by ``eval --json``."""
    extractor = extractor or Extractor(settings.model(), settings.device, settings.batch_size)
    with ExitStack() as stack:
        if data_dir is None:
            data_dir = Path(
                stack.enter_context(tempfile.TemporaryDirectory(prefix="imsearch-eval-"))
            )
        store = IndexStore(data_dir, extractor.model_id, extractor.dim, settings.index_spec)
        stack.callback(store.close)
        files = [
            (path, image_id, path.relative_to(dataset.root))
            for path, image_id in zip(dataset.database_paths, dataset.database_ids, strict=True)
        ]
        report = index_files(
            files, store, extractor, settings.image_limits(), settings.batch_size, progress
        )
        whitening = maybe_learn_whitening(store, settings)
        pipeline = SearchPipeline(
            LocalExtractor(extractor, settings.image_limits()),
            store,
            reranker=make_reranker(rerank),
            knobs=settings.search_knobs(),
        )
        rankings, timings = _run_queries(dataset, pipeline, len(store), progress)
        stats = store.stats()
    metrics = evaluate_rankings(rankings, [q.gt for q in dataset.queries], KAPPAS, RECALL_KS)
    total = np.array([t["total"] for t in timings])
    return {
        "dataset": dataset.name,
        "protocol": dataset.protocol or None,
        "n_database": len(dataset.database_ids),
        "n_queries": metrics.n_queries,
        "map": metrics.map,
        **{f"mp@{k}": metrics.mp[k] for k in KAPPAS},
        **{f"recall@{k}": metrics.recall[k] for k in RECALL_KS},
        "ms_per_query": {
            **{stage: float(np.mean([t[stage] for t in timings])) for stage in _STAGES},
            "total_p95": float(np.percentile(total, 95)) if len(total) else 0.0,
        },
        "extract_images_per_s": report.images_per_s,
        "index_failed": report.failed,
        "model_id": extractor.model_id,
        "index": stats["index"],
        "whitening": whitening,
        "rerank": rerank,
        "settings": _settings_summary(settings),
        "ap_per_query": {
            q.id: (None if np.isnan(ap) else float(ap))
            for q, ap in zip(dataset.queries, metrics.aps, strict=True)
        },
    }


_STAGES = ("extract", "search", "rerank", "total")


def _run_queries(
    dataset: Dataset, pipeline: SearchPipeline, n_database: int, progress: bool
) -> tuple[list[np.ndarray], list[dict[str, float]]]:
    index = {image_id: i for i, image_id in enumerate(dataset.database_ids)}
    rankings: list[np.ndarray] = []
    timings: list[dict[str, float]] = []
    for query in tqdm(dataset.queries, desc="queries", unit="q", disable=not progress):
        data = query.path.read_bytes()
        started = time.perf_counter()
        result = pipeline.search(data, k=n_database, bbox=query.bbox)
        # Reading the file is part of a query's cost in the API too (the upload).
        result.timings_ms["total"] = (time.perf_counter() - started) * 1e3
        rankings.append(np.array([index[h.id] for h in result.hits], dtype=np.int64))
        timings.append(result.timings_ms)
    return rankings, timings


def _settings_summary(settings: Settings) -> dict[str, Any]:
    keep = (
        "backbone",
        "cut",
        "pooling",
        "gem_p",
        "max_side",
        "scales",
        "regions",
        "index_spec",
        "whitening",
        "whitening_shrinkage",
        "whitening_dim",
        "device",
    )
    dumped = settings.model_dump(mode="json")
    return {key: dumped[key] for key in keep}


def format_table(result: dict[str, Any]) -> str:
    """A readable summary of an eval report."""
    ms = result["ms_per_query"]
    rows = [
        (
            "dataset",
            f"{result['dataset']} ({result['n_queries']} queries, "
            f"{result['n_database']} database images)",
        ),
        ("model", result["model_id"]),
        (
            "index / whitening / rerank",
            f"{result['index']} / {result['whitening']} / {result['rerank']}",
        ),
        ("mAP", f"{100 * result['map']:.2f}"),
        ("mP@1 / @5 / @10", " / ".join(f"{100 * result[f'mp@{k}']:.2f}" for k in KAPPAS)),
        (
            "recall@1 / @10 / @100",
            " / ".join(f"{100 * result[f'recall@{k}']:.2f}" for k in RECALL_KS),
        ),
        (
            "ms per query (extract / search / rerank)",
            f"{ms['extract']:.1f} / {ms['search']:.2f} / {ms['rerank']:.2f}",
        ),
        ("ms per query total (mean / p95)", f"{ms['total']:.1f} / {ms['total_p95']:.1f}"),
        ("database extraction", f"{result['extract_images_per_s']:.2f} images/s"),
    ]
    if result["index_failed"]:
        rows.append(("unreadable database images", str(len(result["index_failed"]))))
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)
