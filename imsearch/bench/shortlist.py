"""``imsearch bench shortlist``: what a posting budget keeps of the candidates (issue 28).

The dataset's database (and distractors) is indexed as ``eval`` does (an indexed
``--data-dir`` is reused), then each query's features are computed once and its candidates
found under each budget, expressed in **postings per image of the collection** ``p``: the
budget of a collection of N images is ``p * N`` postings. Posting lists grow in proportion to
N, so walking the rarest words up to ``p * N`` postings selects the same words at any size:
the recall measured here at ``p`` is what a collection of N images keeps under an absolute
budget of ``p * N`` (``IMSEARCH_SHORTLIST_MAX_POSTINGS``).

For each budget: recall@m of the fused candidates (a positive among the first ``m``, the
verified ones), the share of all positives among them, the same two for the visual-word
shortlist alone, the postings walked per shortlist and the milliseconds of the candidate call.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from tqdm import tqdm

from imsearch.evaluate.datasets import Dataset
from imsearch.evaluate.runner import EvalOptions, prepare_engine, query_bytes
from imsearch.pipeline import InProcessExtractor
from imsearch.rerank.reranker import QueryFeatures
from imsearch.settings import Settings

#: Postings per image of the collection; 0 = no budget (every posting).
DEFAULT_BUDGETS = (0.0, 16.0, 8.0, 4.0, 2.0, 1.0, 0.5)


def run_shortlist(
    dataset: Dataset,
    settings: Settings,
    options: EvalOptions,
    budgets: Sequence[float] = DEFAULT_BUDGETS,
    progress: bool = True,
) -> dict[str, Any]:
    config = options.rerank
    with prepare_engine(dataset, settings, options, progress) as prepared:
        engine = prepared.engine
        words = engine.words
        if words is None or words.bow is None:
            raise SystemExit("the collection has no visual words to shortlist with")
        size = len(words.bow)
        inproc = engine.pipeline.extractor
        assert isinstance(inproc, InProcessExtractor)
        features = []
        for query in tqdm(dataset.queries, desc="queries", unit="q", disable=not progress):
            image = inproc.decode(query_bytes(query, options.rotate), query.bbox)
            vector = engine.extractor.describe([image])[0]
            features.append(QueryFeatures(vector, inproc.query_sift.extract(image)))
        positives = [{dataset.database_ids[i] for i in query.gt.ok} for query in dataset.queries]
        rows = []
        for budget in budgets:
            words.max_postings = max(1, round(budget * size)) if budget > 0 else 0
            rows.append(_measure(engine, words, features, positives, config, budget))
    return {
        "dataset": dataset.name,
        "images": size,
        "n_queries": len(dataset.queries),
        "m": config.m,
        "regions": config.regions,
        "rows": rows,
    }


def _measure(
    engine: Any,
    words: Any,
    features: list[QueryFeatures],
    positives: list[set[str]],
    config: Any,
    budget: float,
) -> dict[str, Any]:
    fused_hit, fused_share, visual_hit, visual_share, ms, walked = [], [], [], [], [], []
    searcher = engine.pipeline.searcher
    names = engine.store.catalog
    for query, ok in zip(features, positives, strict=True):
        if not ok:
            continue
        started = time.perf_counter()
        found = searcher.candidates(query, max(config.m, config.shortlist), config)
        ms.append((time.perf_counter() - started) * 1e3)
        first = {c.id for c in found.hits[: config.m]}
        fused_hit.append(bool(first & ok))
        fused_share.append(len(first & ok) / len(ok))
        shortlist = words.shortlist(query.local, config.m)
        ids = set(names.ext_ids([i for i, _ in shortlist]).values())
        visual_hit.append(bool(ids & ok))
        visual_share.append(len(ids & ok) / len(ok))
        walked.append(_postings_walked(words, query))
    return {
        "postings_per_image": budget,
        "max_postings": words.max_postings,
        "recall_candidates": float(np.mean(fused_hit)),
        "positives_kept_candidates": float(np.mean(fused_share)),
        "recall_visual": float(np.mean(visual_hit)),
        "positives_kept_visual": float(np.mean(visual_share)),
        "postings_walked": {"mean": float(np.mean(walked)), "max": int(np.max(walked))},
        "candidates_ms": {
            "p50": float(np.percentile(ms, 50)),
            "p99": float(np.percentile(ms, 99)),
        },
    }


def _postings_walked(words: Any, query: QueryFeatures) -> int:
    """Postings the whole photo's shortlist walks under the current budget."""
    assert query.local is not None
    return words.bow.walked(words.quantizer.assign(query.local.rootsift()), words.max_postings)


def format_shortlist(report: dict[str, Any]) -> str:
    m = report["m"]
    lines = [
        f"{report['dataset']}: {report['images']} images, {report['n_queries']} queries",
        f"| postings per image | max postings | candidates recall@{m} | positives kept | "
        f"visual recall@{m} | positives kept | postings walked (mean) | candidates p50 / p99 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        budget = "all" if r["postings_per_image"] == 0 else f"{r['postings_per_image']:g}"
        lines.append(
            f"| {budget} | {r['max_postings']} | {100 * r['recall_candidates']:.1f} | "
            f"{100 * r['positives_kept_candidates']:.1f} | {100 * r['recall_visual']:.1f} | "
            f"{100 * r['positives_kept_visual']:.1f} | {r['postings_walked']['mean']:.0f} | "
            f"{r['candidates_ms']['p50']:.1f} / {r['candidates_ms']['p99']:.1f} |"
        )
    return "\n".join(lines)
