"""``imsearch bench ann``: recall, speed, memory and build time of every index family.

Vectors are real descriptors (``--vectors file.npy``) or synthetic ones from
:func:`synthetic_descriptors`. For each size N the exact top-100 of held-out queries is the
ground truth; every preset is built through :class:`~imsearch.index.vectors.VectorIndex` (the
engine's own wrapper), then swept over its search knobs. Per row:

* ``recall@k`` = |ANN top-k ∩ exact top-k| / k, averaged over queries;
* ``qps_single`` = queries per second one at a time on one thread; ``qps_batch`` = all queries
  in one call on every core;
* ``qps_single_raw`` = the same FAISS object called directly with the same parameters, so
  ``wrapper_overhead`` = 1 − qps_single / qps_single_raw is what the wrapper costs;
* ``bytes_per_vector`` = size of the serialized index / N; ``build_s`` = train + add.

hnswlib runs beside FAISS's HNSW with the same graph degree and construction depth as an
outside reference.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from imsearch.index.specs import resolve
from imsearch.index.vectors import SearchKnobs, VectorIndex, search_params

log = logging.getLogger(__name__)

#: Preset → knob settings swept at search time.
SWEEPS: dict[str, list[SearchKnobs]] = {
    "exact": [SearchKnobs()],
    "sq8": [SearchKnobs()],
    "pq": [SearchKnobs()],
    "ivf-flat": [SearchKnobs(nprobe=p) for p in (1, 4, 16, 64)],
    "ivf-sq8": [SearchKnobs(nprobe=p) for p in (4, 16, 64)],
    "ivf-pq": [SearchKnobs(nprobe=p) for p in (4, 16, 64)],
    "opq-ivf-pq": [SearchKnobs(nprobe=p) for p in (4, 16, 64)],
    "ivf-pq-refine": [SearchKnobs(nprobe=p, k_factor=f) for p in (16, 64) for f in (2, 8)],
    "hnsw": [SearchKnobs(ef_search=e) for e in (16, 32, 64, 128, 256)],
    "hnsw-sq8": [SearchKnobs(ef_search=e) for e in (32, 64, 128, 256)],
    "hnsw-pq": [SearchKnobs(ef_search=e) for e in (32, 64, 128, 256)],
    "ivf-hnsw-pq": [SearchKnobs(nprobe=p, ef_search=64) for p in (16, 64)],
    "ivf-hnsw-pq-refine": [SearchKnobs(nprobe=p, ef_search=64, k_factor=8) for p in (16, 64)],
}
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 40  # FAISS's default for HNSW32, used for hnswlib too
SINGLE_QUERIES = 200


def synthetic_descriptors(n: int, d: int, seed: int = 0, clusters: int | None = None) -> np.ndarray:
    """Unit vectors that look like image descriptors to an index.

    * **Decaying spectrum**: coordinate i has scale ``(i + 1)^-0.7``, so a few directions hold
      most of the variance, as after PCA-whitening with shrinkage or in raw CNN activations.
    * **Clusters**: ``√n`` centres (sizes Zipf-distributed: a few large groups, many small ones,
      like near-duplicate sets and object categories); each point is its centre plus noise of
      the same spectrum at 0.6× the centres' spread.
    """
    rng = np.random.default_rng(seed)
    scale = (np.arange(d) + 1.0) ** -0.7
    k = clusters or max(8, int(np.sqrt(n)))
    centres = rng.normal(size=(k, d)) * scale
    weights = 1.0 / np.arange(1, k + 1)
    labels = rng.choice(k, size=n, p=weights / weights.sum())
    out = np.empty((n, d), dtype=np.float32)
    for start in range(0, n, 100_000):
        chunk = labels[start : start + 100_000]
        noise = rng.normal(size=(len(chunk), d)) * scale * 0.6
        block = centres[chunk] + noise
        out[start : start + len(chunk)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def exact_neighbours(base: np.ndarray, queries: np.ndarray, k: int = 100) -> np.ndarray:
    index = faiss.IndexFlatIP(base.shape[1])
    index.add(base)
    return index.search(queries, k)[1]


def recall_at(found: np.ndarray, truth: np.ndarray, k: int) -> float:
    return float(
        np.mean(
            [
                len(set(f[:k].tolist()) & set(t[:k].tolist())) / k
                for f, t in zip(found, truth, strict=True)
            ]
        )
    )


@dataclass
class _Timed:
    ids: np.ndarray
    qps_single: float
    qps_single_raw: float
    qps_batch: float


def _time_search(index: VectorIndex, queries: np.ndarray, knobs: SearchKnobs) -> _Timed:
    """Batch-1 timings of the wrapper and of the raw FAISS call, interleaved query by query.

    Interleaving (and alternating which goes first) exposes both to the same machine state,
    so the overhead estimate survives a noisy, shared machine; each side's time is the sum of
    its per-call times.
    """
    threads = faiss.omp_get_max_threads()
    single = queries[:SINGLE_QUERIES]
    raw = index._index  # the very FAISS object the wrapper calls
    params = search_params(index._base, knobs)
    wrapped_ns = direct_ns = 0
    faiss.omp_set_num_threads(1)
    try:
        index.search(single[:5], 100, knobs)  # warm caches
        for i, q in enumerate(single):
            row = q[None]
            for wrapper_first in (True, False) if i % 2 else (False, True):
                begin = time.perf_counter_ns()
                if wrapper_first:
                    index.search(row, 100, knobs)
                    wrapped_ns += time.perf_counter_ns() - begin
                else:
                    raw.search(row, 100, params=params)
                    direct_ns += time.perf_counter_ns() - begin
        wrapped = len(single) / (wrapped_ns / 1e9)
        direct = len(single) / (direct_ns / 1e9)
    finally:
        faiss.omp_set_num_threads(threads)
    started = time.perf_counter()
    _, ids = index.search(queries, 100, knobs)
    batch = len(queries) / (time.perf_counter() - started)
    return _Timed(ids, wrapped, direct, batch)


def _index_bytes(index: VectorIndex) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "index.faiss"
        index.save(path)
        return path.stat().st_size


def bench_family(
    preset: str, base: np.ndarray, queries: np.ndarray, truth: np.ndarray
) -> Iterator[dict[str, Any]]:
    """Build ``preset`` over ``base`` and yield one row per knob setting."""
    n, d = base.shape
    factory = resolve(preset, n, d).factory
    started = time.perf_counter()
    index = VectorIndex(d, factory)
    if not index.is_trained:
        rng = np.random.default_rng(0)
        sample = base[rng.choice(n, size=min(n, 200_000), replace=False)]
        index.train(sample)
    index.add(np.arange(n), base)
    build_s = time.perf_counter() - started
    size = _index_bytes(index)
    for knobs in SWEEPS[preset]:
        timed = _time_search(index, queries, knobs)
        yield {
            "index": preset,
            "factory": factory,
            "params": {k: v for k, v in vars(knobs).items() if v is not None},
            "n": n,
            "d": d,
            **{f"recall@{k}": recall_at(timed.ids, truth, k) for k in (1, 10, 100)},
            "qps_single": timed.qps_single,
            "qps_single_raw": timed.qps_single_raw,
            "wrapper_overhead": 1.0 - timed.qps_single / timed.qps_single_raw,
            "qps_batch": timed.qps_batch,
            "bytes_per_vector": size / n,
            "build_s": build_s,
        }


def bench_hnswlib(base: np.ndarray, queries: np.ndarray, truth: np.ndarray) -> Iterator[dict]:
    """hnswlib with FAISS HNSW's graph settings, as an outside reference."""
    try:
        import hnswlib
    except ImportError:
        log.warning("hnswlib is not installed: skipping the outside reference")
        return
    n, d = base.shape
    started = time.perf_counter()
    graph = hnswlib.Index(space="ip", dim=d)
    graph.init_index(max_elements=n, M=HNSW_M, ef_construction=HNSW_EF_CONSTRUCTION)
    graph.add_items(base, np.arange(n))
    build_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        graph.save_index(str(Path(tmp) / "g.bin"))
        size = (Path(tmp) / "g.bin").stat().st_size
    for ef in (16, 32, 64, 128, 256):
        graph.set_ef(max(ef, 100))
        graph.set_num_threads(1)
        started = time.perf_counter()
        for q in queries[:SINGLE_QUERIES]:
            graph.knn_query(q[None], k=100)
        single = SINGLE_QUERIES / (time.perf_counter() - started)
        graph.set_num_threads(-1)
        started = time.perf_counter()
        ids, _ = graph.knn_query(queries, k=100)
        batch = len(queries) / (time.perf_counter() - started)
        yield {
            "index": "hnswlib",
            "factory": f"hnswlib M={HNSW_M}",
            "params": {"ef_search": ef},
            "n": n,
            "d": d,
            **{f"recall@{k}": recall_at(ids.astype(np.int64), truth, k) for k in (1, 10, 100)},
            "qps_single": single,
            "qps_single_raw": single,
            "wrapper_overhead": 0.0,
            "qps_batch": batch,
            "bytes_per_vector": size / n,
            "build_s": build_s,
        }


def run_ann_bench(
    sizes: Sequence[int],
    dim: int,
    presets: Sequence[str] = tuple(SWEEPS),
    vectors: np.ndarray | None = None,
    n_queries: int = 1000,
    with_hnswlib: bool = True,
) -> list[dict[str, Any]]:
    """Every preset at every size; see the module docstring for the columns."""
    rows: list[dict[str, Any]] = []
    for n in sizes:
        if vectors is not None:
            if len(vectors) < n + n_queries:
                raise ValueError(f"{len(vectors)} vectors given; {n} + {n_queries} queries needed")
            base, queries = vectors[:n], vectors[n : n + n_queries]
        else:
            data = synthetic_descriptors(n + n_queries, dim, seed=n)
            base, queries = data[:n], data[n:]
        truth = exact_neighbours(base, queries)
        for preset in presets:
            log.info("n=%d %s", n, preset)
            rows.extend(bench_family(preset, base, queries, truth))
        if with_hnswlib:
            rows.extend(bench_hnswlib(base, queries, truth))
    return rows


def pareto_front(rows: Sequence[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """Rows at size ``n`` not beaten on both recall@10 and single-query QPS by another row."""
    at_n = [r for r in rows if r["n"] == n]
    front = [
        r
        for r in at_n
        if not any(
            (o["recall@10"] >= r["recall@10"] and o["qps_single"] > r["qps_single"])
            or (o["recall@10"] > r["recall@10"] and o["qps_single"] >= r["qps_single"])
            for o in at_n
        )
    ]
    return sorted(front, key=lambda r: r["recall@10"])


def choose_presets(rows: Sequence[dict[str, Any]], n: int) -> dict[str, dict[str, Any] | None]:
    """The fastest row at recall@10 ≥ 0.95 and the smallest at recall@10 ≥ 0.90, at size n."""
    engine_rows = [r for r in rows if r["n"] == n and r["index"] != "hnswlib"]
    fast = [r for r in engine_rows if r["recall@10"] >= 0.95]
    small = [r for r in engine_rows if r["recall@10"] >= 0.90]
    return {
        "fastest_at_recall10_0.95": max(fast, key=lambda r: r["qps_single"]) if fast else None,
        "smallest_at_recall10_0.90": (
            min(small, key=lambda r: (r["bytes_per_vector"], -r["qps_single"])) if small else None
        ),
    }


def plot(rows: Sequence[dict[str, Any]], n: int, path: Path) -> None:
    """Recall@10 against single-query QPS (log scale), one line per family."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    at_n = [r for r in rows if r["n"] == n]
    families = list(dict.fromkeys(r["index"] for r in at_n))
    colours = plt.get_cmap("tab20")
    for i, family in enumerate(families):
        pts = sorted((r["recall@10"], r["qps_single"]) for r in at_n if r["index"] == family)
        ax.plot(
            [p[0] for p in pts],
            [p[1] for p in pts],
            marker="os^vD<>"[i % 7],
            color=colours(i % 20),
            label=family,
        )
    ax.set_yscale("log")
    ax.set_xlabel("recall@10")
    ax.set_ylabel("queries/s (batch 1, one thread)")
    ax.set_title(f"ANN families, N = {n:,}, d = {at_n[0]['d'] if at_n else '?'}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def format_rows(rows: Sequence[dict[str, Any]]) -> str:
    lines = [
        "| N | index | params | R@1 | R@10 | R@100 | QPS 1×1 | QPS batch | overhead "
        "| bytes/vec | build s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        params = ", ".join(f"{k}={v}" for k, v in r["params"].items()) or "–"
        lines.append(
            f"| {r['n']:,} | {r['index']} | {params} | {r['recall@1']:.3f} | {r['recall@10']:.3f} "
            f"| {r['recall@100']:.3f} | {r['qps_single']:.0f} | {r['qps_batch']:.0f} "
            f"| {100 * r['wrapper_overhead']:.1f}% | {r['bytes_per_vector']:.0f} "
            f"| {r['build_s']:.1f} |"
        )
    return "\n".join(lines)
