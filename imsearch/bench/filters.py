"""``imsearch bench filter``: what a metadata filter costs, and what a collection costs.

A store of N synthetic descriptors (:func:`~imsearch.bench.ann.synthetic_descriptors`)
is built per index family, every image tagged ``{"shop": i % 100}``; a filter
``{"shop": {"in": [0 … s-1]}}`` then matches s % of the collection. Per family and share:

* ``recall@10``: |filtered top-10 ∩ exhaustive filtered top-10| / 10 (the truth is the exact
  inner product over the matching images' descriptors);
* ``mean_ms`` / ``p95_ms``: one filtered search, one query at a time, the filter's ids cached
  (as they are between two writes); ``filter_ms``: evaluating the filter in the catalog once;
* ``post_filter_recall@10``: what trimming an unfiltered top-100 would find instead — the
  approach the engine does not take, for contrast.

Memory: the resident size a process gains by opening one collection of N images (and one
that is empty), measured in a fresh process around :class:`~imsearch.collection.Collections`.
Share 1 is the search without a filter (the reference).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from imsearch.bench.ann import synthetic_descriptors
from imsearch.collection import Collections
from imsearch.index.catalog import Item
from imsearch.index.filters import parse_filter
from imsearch.index.store import IndexStore
from imsearch.index.vectors import SearchKnobs
from imsearch.settings import Settings

SHOPS = 100
K = 10
BATCH = 5000


def _build(root: Path, spec: str, base: np.ndarray) -> IndexStore:
    store = IndexStore(root, "bench-filter", base.shape[1], spec)
    for start in range(0, len(base), BATCH):
        rows = range(start, min(start + BATCH, len(base)))
        store.add([Item(f"i{i}", base[i], None, {"shop": i % SHOPS}) for i in rows])
    store.snapshot()  # builds the requested family (trained ones once big enough)
    return store


def _truth(base: np.ndarray, queries: np.ndarray, keep: np.ndarray) -> list[set[int]]:
    scores = queries @ base[keep].T
    top = np.argsort(-scores, axis=1)[:, :K]
    return [set(keep[row].tolist()) for row in top]


def _ids(hits: Sequence[Any]) -> set[int]:
    return {int(h.id[1:]) for h in hits}


def bench_share(
    store: IndexStore,
    base: np.ndarray,
    queries: np.ndarray,
    share: float,
    knobs: SearchKnobs,
) -> dict[str, Any]:
    shops = max(1, round(share * SHOPS))
    where = None if shops >= SHOPS else parse_filter({"shop": {"in": list(range(shops))}})
    keep = np.flatnonzero(np.arange(len(base)) % SHOPS < shops)
    started = time.perf_counter()
    if where is not None:
        store.catalog.matching(where)
    filter_ms = (time.perf_counter() - started) * 1e3
    store.search(queries[:1], K, knobs, where)  # warm: the ids are cached until a write
    times, found = [], []
    for q in queries:
        t0 = time.perf_counter()
        hits = store.search(q[None], K, knobs, where)[0]
        times.append((time.perf_counter() - t0) * 1e3)
        found.append(_ids(hits))
    truth = _truth(base, queries, keep)
    allowed = set(keep.tolist())
    post = [
        [int(h.id[1:]) for h in store.search(q[None], 100, knobs)[0] if int(h.id[1:]) in allowed]
        for q in queries
    ]
    return {
        "share": shops / SHOPS,
        "matching": len(keep),
        "recall@10": float(np.mean([len(f & t) / K for f, t in zip(found, truth, strict=True)])),
        "post_filter_recall@10": float(
            np.mean([len(set(p[:K]) & t) / K for p, t in zip(post, truth, strict=True)])
        ),
        "only_matching": all(f <= allowed for f in found),
        "mean_ms": float(np.mean(times)),
        "p95_ms": float(np.percentile(times, 95)),
        "filter_ms": filter_ms,
    }


def run_filter_bench(
    n: int,
    dim: int,
    specs: Sequence[str],
    shares: Sequence[float],
    queries: int = 200,
    work: Path | None = None,
) -> list[dict[str, Any]]:
    """One row per (family, share); share 1.0 is the unfiltered search."""
    data = synthetic_descriptors(n + queries, dim)
    base, held_out = data[:n], data[n:]
    knobs = Settings().search_knobs()  # what a served search uses
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-filter-", dir=work) as tmp:
        for spec in specs:
            started = time.perf_counter()
            store = _build(Path(tmp) / spec, spec, base)
            build_s = time.perf_counter() - started
            for share in shares:
                row = bench_share(store, base, held_out, share, knobs)
                if share >= 1:  # the reference: no filter at all
                    row["label"] = "none"
                rows.append({"spec": spec, "factory": store.build.factory, "n": n, **row,
                             "build_s": build_s})  # fmt: skip
            store.close()
    return rows


#: Run in a fresh process, so that nothing the build allocated blurs the measure.
_MEASURE = """
import json, sys
from pathlib import Path
from imsearch.collection import Collections
from imsearch.settings import Settings

def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

root, dim, empties = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
registry = Collections(Settings(data_dir=root, local_features=False), "bench-filter", dim)
with registry.use("empty-0"):
    pass  # the first open pays for imports
before = rss()
with registry.use("full"):
    full = rss() - before
before = rss()
for i in range(1, empties + 1):
    with registry.use(f"empty-{i}"):
        pass
print(json.dumps({"open_mb": full, "empty_open_mb": (rss() - before) / empties}))
"""


def collection_memory(n: int, dim: int, spec: str, empties: int = 20) -> dict[str, Any]:
    """Resident MB a process gains by opening a collection of ``n`` images, and an empty one
    (measured in a fresh process; the default LRU bound keeps all of them open)."""
    with tempfile.TemporaryDirectory(prefix="bench-collections-") as tmp:
        settings = Settings(data_dir=Path(tmp), local_features=False, index_spec=spec)
        registry = Collections(settings, "bench-filter", dim)
        registry.create("full", spec)
        for i in range(empties + 1):
            registry.create(f"empty-{i}", spec)
        with registry.use("full") as opened:
            base = synthetic_descriptors(n, dim)
            for start in range(0, n, BATCH):
                rows = range(start, min(start + BATCH, n))
                opened.store.add([Item(f"i{i}", base[i], None, {"shop": i % SHOPS}) for i in rows])
            opened.store.snapshot()
        registry.close()
        env = {**os.environ, "IMSEARCH_MAX_OPEN_COLLECTIONS": str(empties + 2)}
        out = subprocess.run(
            [sys.executable, "-c", _MEASURE, tmp, str(dim), str(empties)],
            check=True, capture_output=True, text=True, env=env,
        )  # fmt: skip
        measured = json.loads(out.stdout.strip().splitlines()[-1])
    return {"spec": spec, "n": n, "dim": dim, **measured}


def format_rows(rows: Sequence[dict[str, Any]]) -> str:
    lines = [
        f"{'family':<10} {'share':>6} {'matching':>8} {'recall@10':>9} {'post-filter':>11} "
        f"{'mean ms':>8} {'p95 ms':>7} {'filter ms':>9}"
    ]
    for r in rows:
        lines.append(
            f"{r['spec']:<10} {100 * r['share']:>5.0f}% {r['matching']:>8} {r['recall@10']:>9.3f} "
            f"{r['post_filter_recall@10']:>11.3f} {r['mean_ms']:>8.2f} {r['p95_ms']:>7.2f} "
            f"{r['filter_ms']:>9.1f}"
        )
    return "\n".join(lines)
