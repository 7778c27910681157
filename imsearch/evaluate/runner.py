"""``imsearch eval``: index a dataset's database, run its queries, measure quality and time.

The queries go through the same :class:`~imsearch.pipeline.SearchPipeline` as the API (with the
descriptor cache off, so every query pays for its extraction), and each returns a ranking of the
whole database so mAP is exact.

Options that change the benchmark, all recorded in the report:

* ``exclude_db``: glob patterns of database ids left out; queries whose positives are all left
  out become *no-match* queries (their object is not in the collection);
* ``only_db`` / ``only_queries``: glob patterns of the database ids / query ids kept (a
  held-out split: e.g. evaluate on covers 051-100 only after training on 001-050);
* ``distractors``: a folder of extra database images, none of them a positive;
* ``rotate``: rotate every query photo by 90, 180 or 270 degrees (counter-clockwise).

Besides the totals the report has ``per_set`` (the same metrics for each ``set`` of gt.json)
and, when the method verifies, ``no_match_curve``: for each confidence threshold, the share of
photos of absent objects answered "no confident match" (no-match recall) against the share of
photos of present ones answered so (false no-match). Each query's score on that curve is its
best verified candidate's confidence.
"""

from __future__ import annotations

import fnmatch
import io
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from imsearch.engine import Engine, open_engine
from imsearch.errors import ConfigError
from imsearch.evaluate.datasets import Dataset, Query
from imsearch.evaluate.metrics import GroundTruth, evaluate_rankings
from imsearch.images import decode_image, list_images
from imsearch.indexing import (
    IndexReport,
    index_files,
    maybe_learn_vocabulary,
    maybe_learn_whitening,
)
from imsearch.optional import require
from imsearch.pipeline import SearchResult
from imsearch.rerank.confidence import no_match_curve
from imsearch.rerank.reranker import RerankConfig
from imsearch.settings import Settings
from imsearch.sources import SourceFile

KAPPAS = (1, 5, 10)
RECALL_KS = (1, 10, 100)
_STAGES = ("extract", "search", "rerank", "total")
#: Thresholds of the no-match curve.
CURVE_THRESHOLDS = tuple(round(x, 2) for x in np.linspace(0.0, 1.0, 101))


@dataclass(frozen=True)
class EvalOptions:
    rerank: RerankConfig = field(default_factory=RerankConfig)
    data_dir: Path | None = None
    exclude_db: tuple[str, ...] = ()
    only_db: tuple[str, ...] = ()
    only_queries: tuple[str, ...] = ()
    distractors: Path | None = None
    rotate: int = 0
    #: The collection of ``data_dir`` the dataset is indexed into (created if needed).
    collection: str = "default"


def _matches(image_id: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(image_id, p) for p in patterns)


def select(
    dataset: Dataset,
    exclude_db: tuple[str, ...] = (),
    only_db: tuple[str, ...] = (),
    only_queries: tuple[str, ...] = (),
) -> Dataset:
    """The part of ``dataset`` the options keep (ground truth re-indexed)."""
    if not (exclude_db or only_db or only_queries):
        return dataset
    keep = [
        i
        for i, image_id in enumerate(dataset.database_ids)
        if (not only_db or _matches(image_id, only_db)) and not _matches(image_id, exclude_db)
    ]
    new_index = {old: new for new, old in enumerate(keep)}

    def remap(ids: Any) -> list[int]:
        return [new_index[i] for i in ids if i in new_index]

    queries = [
        replace(q, gt=GroundTruth(ok=remap(q.gt.ok), junk=remap(q.gt.junk)))
        for q in dataset.queries
        if not only_queries or _matches(q.id, only_queries)
    ]
    return replace(
        dataset,
        database_ids=[dataset.database_ids[i] for i in keep],
        database_paths=[dataset.database_paths[i] for i in keep],
        queries=queries,
    )


def run_eval(
    dataset: Dataset, settings: Settings, options: EvalOptions | None = None, progress: bool = True
) -> dict[str, Any]:
    """Evaluate ``settings`` on ``dataset``; returns the report written by ``eval --json``."""
    options = options or EvalOptions()
    if options.rotate not in (0, 90, 180, 270):
        raise ConfigError("rotate must be 0, 90, 180 or 270")
    dataset = select(dataset, options.exclude_db, options.only_db, options.only_queries)
    with prepare_engine(dataset, settings, options, progress) as prepared:
        engine = prepared.engine
        ids = list(dataset.database_ids)
        index = {image_id: i for i, image_id in enumerate(ids)}
        results = _run_queries(engine, dataset, options, len(engine.store), progress)
        stats = engine.store.stats()
        rerank = options.rerank.describe()
        if "min_confidence" in rerank and rerank["min_confidence"] is None:
            rerank["min_confidence"] = engine.reranker.model.threshold  # the calibrated one
    report, n_distractors = prepared.report, prepared.n_distractors
    whitening, vocabulary = prepared.whitening, prepared.vocabulary
    rankings = [
        np.array([index.get(h.id, len(ids) + j) for j, h in enumerate(r.hits)], dtype=np.int64)
        for r in results
    ]
    metrics = evaluate_rankings(rankings, [q.gt for q in dataset.queries], KAPPAS, RECALL_KS)
    scores = [best_confidence(r, options.rerank) for r in results]
    timings = [r.timings_ms for r in results]
    total = np.array([t["total"] for t in timings])
    return {
        "dataset": dataset.name,
        "protocol": dataset.protocol or None,
        "n_database": len(ids) + n_distractors,
        "n_distractors": n_distractors,
        "n_queries": metrics.n_queries,
        "map": metrics.map,
        **{f"mp@{k}": metrics.mp[k] for k in KAPPAS},
        **{f"recall@{k}": metrics.recall[k] for k in RECALL_KS},
        **_no_match_scores(dataset.queries, results),
        "per_set": _per_set(dataset.queries, rankings, results),
        "no_match_curve": _curve(dataset.queries, scores),
        "ms_per_query": {
            **{stage: float(np.mean([t[stage] for t in timings])) for stage in _STAGES},
            "total_p95": float(np.percentile(total, 95)) if len(total) else 0.0,
        },
        "extract_images_per_s": report.images_per_s,
        "index_failed": report.failed,
        "model_id": engine.extractor.model_id,
        "runtime": engine.extractor.runtime,
        "index": stats["index"]["factory"],
        "index_build": stats["index"],
        "whitening": whitening,
        "vocabulary": vocabulary,
        "rerank": rerank,
        "rotate": options.rotate,
        "exclude_db": list(options.exclude_db),
        "only_db": list(options.only_db),
        "only_queries": list(options.only_queries),
        "settings": _settings_summary(settings),
        "ap_per_query": {
            q.id: (None if np.isnan(ap) else float(ap))
            for q, ap in zip(dataset.queries, metrics.aps, strict=True)
        },
    }


@dataclass
class Prepared:
    """An engine over a dataset's indexed database, and what indexing it reported."""

    engine: Engine
    report: IndexReport
    n_distractors: int
    whitening: Any
    vocabulary: Any


@contextmanager
def prepare_engine(
    dataset: Dataset, settings: Settings, options: EvalOptions, progress: bool = True
) -> Iterator[Prepared]:
    """Index ``dataset``'s database (and distractors) into ``options.data_dir`` (a temporary
    directory when unset), learn whitening and vocabulary, and yield the open engine."""
    with ExitStack() as stack:
        data_dir = options.data_dir or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="imsearch-eval-"))
        )
        # Local features are stored whatever the method, so one indexed --data-dir serves
        # every method's run; queries extract them only when the method verifies.
        engine = open_engine(
            settings.model_copy(
                update={"data_dir": data_dir, "cache_size": 0, "rerank": options.rerank.method}
            ),
            collection=options.collection,
            create=True,
        )
        stack.callback(engine.close)
        report, n_distractors = _index(engine, dataset, options, progress)
        whitening = maybe_learn_whitening(engine.store, settings)
        vocabulary = maybe_learn_vocabulary(engine.words, settings)
        if engine.words is not None:
            engine.words.flush()  # queries see every database image's visual words
        yield Prepared(engine, report, n_distractors, whitening, vocabulary)


def _index(
    engine: Engine, dataset: Dataset, options: EvalOptions, progress: bool
) -> tuple[IndexReport, int]:
    files: list[SourceFile] = [
        (path, image_id, path.relative_to(dataset.root))
        for path, image_id in zip(dataset.database_paths, dataset.database_ids, strict=True)
    ]
    n_distractors = 0
    if options.distractors:
        extra = list_images(options.distractors)
        n_distractors = len(extra)
        files += [
            (
                p,
                f"distractor/{p.relative_to(options.distractors).with_suffix('').as_posix()}",
                p.relative_to(options.distractors),
            )
            for p in extra
        ]
    settings = engine.settings
    report = index_files(
        files,
        engine.store,
        engine.extractor,
        settings.image_limits(),
        settings.batch_size,
        progress,
        engine.sift,
    )
    return report, n_distractors


def _run_queries(
    engine: Engine, dataset: Dataset, options: EvalOptions, n_database: int, progress: bool
) -> list[SearchResult]:
    results = []
    for query in tqdm(dataset.queries, desc="queries", unit="q", disable=not progress):
        data = query_bytes(query, options.rotate)  # the upload: not timed
        started = time.perf_counter()
        result = engine.pipeline.search(data, k=n_database, bbox=query.bbox, rerank=options.rerank)
        # End to end from the bytes: decoding, extraction, search, re-ranking, bookkeeping.
        result.timings_ms["total"] = (time.perf_counter() - started) * 1e3
        results.append(result)
    return results


def query_bytes(query: Query, rotate: int) -> bytes:
    """What the user uploads for ``query`` (rotated when asked)."""
    data = query.path.read_bytes()
    if not rotate:
        return data
    if query.bbox is not None:
        raise ConfigError("rotating queries that have a box is not supported")
    buffer = io.BytesIO()
    decode_image(data).rotate(rotate, expand=True, resample=Image.Resampling.NEAREST).save(
        buffer, format="JPEG", quality=95
    )
    return buffer.getvalue()


def best_confidence(result: SearchResult, config: RerankConfig) -> float | None:
    """A query's score for the no-match decision: its best verified candidate's confidence
    (0 when none was verified, None when the method does not verify)."""
    if result.no_confident_match is None:
        return None
    return max(
        (
            h.confidence
            for h in result.hits
            if h.confidence is not None and (h.inliers or 0) >= config.min_inliers
        ),
        default=0.0,
    )


def _curve(queries: list[Query], scores: list[float | None]) -> list[dict[str, float]] | None:
    if any(s is None for s in scores):
        return None
    present = [s for q, s in zip(queries, scores, strict=True) if q.gt.ok and s is not None]
    absent = [s for q, s in zip(queries, scores, strict=True) if not q.gt.ok and s is not None]
    return no_match_curve(present, absent, CURVE_THRESHOLDS)


def _per_set(
    queries: list[Query], rankings: list[np.ndarray], results: list[SearchResult]
) -> dict[str, dict[str, Any]]:
    """The headline metrics of each query set (gt.json's ``set``); empty without sets."""
    sets = sorted({q.set for q in queries if q.set})
    out: dict[str, dict[str, Any]] = {}
    for name in sets:
        chosen = [i for i, q in enumerate(queries) if q.set == name]
        metrics = evaluate_rankings(
            [rankings[i] for i in chosen], [queries[i].gt for i in chosen], KAPPAS, RECALL_KS
        )
        out[name] = {
            "n_queries": metrics.n_queries,
            "map": None if np.isnan(metrics.map) else metrics.map,
            **{f"mp@{k}": metrics.mp[k] for k in KAPPAS},
            **_no_match_scores([queries[i] for i in chosen], [results[i] for i in chosen]),
        }
    return out


def _no_match_scores(queries: list[Query], results: list[SearchResult]) -> dict[str, float | None]:
    """How well "no confident match" separates absent objects from present ones."""
    if any(r.no_confident_match is None for r in results):
        return {"no_match_recall": None, "false_no_match_rate": None, "n_no_match_queries": 0}
    answered = [bool(r.no_confident_match) for r in results]
    absent = [a for q, a in zip(queries, answered, strict=True) if not q.gt.ok]
    present = [a for q, a in zip(queries, answered, strict=True) if q.gt.ok]
    return {
        "no_match_recall": float(np.mean(absent)) if absent else None,
        "false_no_match_rate": float(np.mean(present)) if present else None,
        "n_no_match_queries": len(absent),
    }


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
        "runtime",
        "threads",
        "local_features",
        "local_max_side",
        "query_local_max_side",
        "local_max_keypoints",
        "vocabulary_words",
        "rerank_matcher",
        "rerank_workers",
    )
    dumped = settings.model_dump(mode="json")
    return {key: dumped[key] for key in keep}


def format_table(result: dict[str, Any]) -> str:
    """A readable summary of an eval report."""
    ms = result["ms_per_query"]
    rerank = ", ".join(f"{k}={v}" for k, v in result["rerank"].items())
    rows = [
        (
            "dataset",
            f"{result['dataset']} ({result['n_queries']} queries with positives, "
            f"{result['n_database']} database images)",
        ),
        ("model", result["model_id"]),
        ("index / whitening", f"{result['index']} / {result['whitening']}"),
        ("re-ranking", rerank),
        ("mAP", f"{100 * result['map']:.2f}"),
        ("mP@1 / @5 / @10", " / ".join(f"{100 * result[f'mp@{k}']:.2f}" for k in KAPPAS)),
        (
            "recall@1 / @10 / @100",
            " / ".join(f"{100 * result[f'recall@{k}']:.2f}" for k in RECALL_KS),
        ),
        (
            "ms per query (extract / search / rerank)",
            f"{ms['extract']:.1f} / {ms['search']:.2f} / {ms['rerank']:.1f}",
        ),
        ("ms per query total (mean / p95)", f"{ms['total']:.1f} / {ms['total_p95']:.1f}"),
        ("database extraction", f"{result['extract_images_per_s']:.2f} images/s"),
    ]
    if result.get("no_match_recall") is not None or result.get("false_no_match_rate") is not None:
        recall = result["no_match_recall"]
        rows.append(
            (
                "no-match recall / false no-match rate",
                f"{'–' if recall is None else f'{100 * recall:.1f}'} / "
                f"{100 * (result['false_no_match_rate'] or 0):.1f}",
            )
        )
    for name, row in (result.get("per_set") or {}).items():
        rows.append((f"  set {name}", _set_line(row)))
    if result["index_failed"]:
        rows.append(("unreadable database images", str(len(result["index_failed"]))))
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def _set_line(row: dict[str, Any]) -> str:
    """One query set in the table: mAP, mP@1 and the no-match rates where they apply."""
    parts = [f"{row['n_queries']} queries"]
    if row["map"] is not None:
        parts.append(f"mAP {100 * row['map']:.2f}, mP@1 {100 * row['mp@1']:.2f}")
    if row.get("n_no_match_queries"):
        parts.append(f"no-match recall {100 * (row['no_match_recall'] or 0):.1f}")
    if row.get("false_no_match_rate") is not None:
        parts.append(f"false no-match {100 * row['false_no_match_rate']:.1f}")
    return ", ".join(parts)


def plot_no_match_curve(results: dict[str, dict[str, Any]], threshold: float, path: Path) -> None:
    """No-match recall against false no-match, one line per eval report (``name: report``),
    with each line's point at ``threshold`` marked."""
    matplotlib = require("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 5))
    for name, report in results.items():
        curve = report.get("no_match_curve") or []
        if not curve:
            continue
        xs = [100 * p["false_no_match"] for p in curve]
        ys = [100 * p["no_match_recall"] for p in curve]
        (line,) = ax.plot(xs, ys, label=name)
        at = min(curve, key=lambda p: abs(p["threshold"] - threshold))
        ax.plot(
            [100 * at["false_no_match"]], [100 * at["no_match_recall"]], "o", color=line.get_color()
        )
    ax.set_xlabel("false no-match (% of photos of collection objects)")
    ax.set_ylabel("no-match recall (% of photos of absent objects)")
    ax.set_xlim(0, 20)
    ax.set_title(f"'no confident match' over its threshold (dots: {threshold:.3g})")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
