"""``imsearch bench words``: the visual-word shortlist alone at 10k, 100k and 1M images.

``bench scale`` measures the whole candidate call through real services, but its build
(real-size local features for every item) does not reach a million images on this machine.
The part of the call that grows with N is the inverted file, and that can be built at any
size from words alone: the rows are the stored words of a real collection (an indexed data
directory, e.g. SMVS + distractors-4k) resampled — row ``r`` keeps each word of source image
``r mod S`` with probability 0.8 and gets 20 % more drawn from the collection's word
frequencies — written straight to the CSR that :class:`BowIndex` memory-maps, as a served
collection does. The queries are real photos' words under the same vocabulary. For each
budget the shortlist (n = 100) is timed per query; the walked postings are counted.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from imsearch.index.catalog import Catalog
from imsearch.rerank.bow import BowIndex, decode_words
from imsearch.rerank.visual_words import VOCABULARY_FILE

CHUNK = 20_000
KEEP = 0.8
EXTRA = 0.2


class Sources:
    """The stored words of a real collection, and how often each word occurs in it."""

    def __init__(self, data_dir: Path) -> None:
        catalog = Catalog(data_dir / "catalog.sqlite", readonly=True)
        try:
            stored = catalog.words(catalog.int_ids().tolist())
        finally:
            catalog.close()
        if not stored:
            raise SystemExit(f"{data_dir} holds no stored visual words")
        self.size = int(np.load(data_dir / VOCABULARY_FILE, mmap_mode="r").shape[0])
        self.rows = [decode_words(b) for b in stored.values()]
        freq = np.zeros(self.size)
        for words, _ in self.rows:
            freq[words] += 1
        self.cdf = np.cumsum(freq) / freq.sum()

    def chunk(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows ``start..stop``: (row of each posting, word, tf weight), deterministic."""
        rng = np.random.default_rng(start)
        rows, words, tf = [], [], []
        for r in range(start, stop):
            src_words, src_counts = self.rows[r % len(self.rows)]
            kept = rng.random(len(src_words)) < KEEP
            extra = np.searchsorted(self.cdf, rng.random(int(EXTRA * len(src_words))))
            w = np.concatenate([src_words[kept], extra])
            c = np.concatenate([src_counts[kept], np.ones(len(extra), np.float32)])
            w, first = np.unique(w, return_index=True)
            rows.append(np.full(len(w), r, np.int32))
            words.append(w)
            tf.append(np.sqrt(c[first]))
        return np.concatenate(rows), np.concatenate(words), np.concatenate(tf)


def build(sources: Sources, items: int, out: Path, log: Callable[[str], None]) -> None:
    """The CSR of ``items`` rows under ``out`` (as :meth:`BowIndex.save` writes it)."""
    out.mkdir(parents=True, exist_ok=True)
    df = np.zeros(sources.size, np.int64)
    for start in range(0, items, CHUNK):
        df += np.bincount(sources.chunk(start, min(items, start + CHUNK))[1], minlength=len(df))
    indptr = np.concatenate([[0], np.cumsum(df)])
    idf = np.log((items + 1) / (df + 1)).astype(np.float32)
    total = int(indptr[-1])
    rows = np.lib.format.open_memmap(out / "rows.npy", "w+", np.int32, (total,))
    tf = np.lib.format.open_memmap(out / "tf.npy", "w+", np.float16, (total,))
    norms = np.zeros(items, np.float64)
    cursor = indptr[:-1].copy()
    for start in range(0, items, CHUNK):
        r, w, t = sources.chunk(start, min(items, start + CHUNK))
        norms += np.bincount(r, (t * idf[w]) ** 2, minlength=items)
        order = np.argsort(w, kind="stable")
        w, r, t = w[order], r[order], t[order]
        first = np.searchsorted(w, w, side="left")  # rank of each posting within its word
        at = cursor[w] + (np.arange(len(w)) - first)
        rows[at], tf[at] = r, t
        cursor += np.bincount(w, minlength=len(cursor))
        log(f"built {min(items, start + CHUNK)}/{items}")
    rows.flush()
    tf.flush()
    np.save(out / "indptr.npy", indptr)
    np.save(out / "row_ids.npy", np.arange(items, dtype=np.int64))
    np.save(out / "norms.npy", np.sqrt(norms).astype(np.float32))
    (out / "meta.json").write_text(json.dumps({"size": sources.size}))


def run_words(
    data_dir: Path,
    query_words: Sequence[np.ndarray],
    items: Sequence[int],
    budgets: Sequence[int],
    work: Path,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    sources = Sources(data_dir)
    report: dict[str, Any] = {"source_images": len(sources.rows), "queries": len(query_words)}
    report["sizes"] = []
    for n in items:
        began = time.perf_counter()
        build(sources, n, work / f"bow-{n}", log)
        build_s = time.perf_counter() - began
        index = BowIndex.load(work / f"bow-{n}")
        postings = int(index._indptr[-1])
        row: dict[str, Any] = {"items": n, "postings": postings, "build_s": build_s}
        row["budgets"] = [_time(index, query_words, b) for b in budgets]
        report["sizes"].append(row)
        log(json.dumps(row))
        del index
    return report


def _time(index: BowIndex, query_words: Sequence[np.ndarray], budget: int) -> dict[str, Any]:
    for words in query_words[:5]:  # page in what the queries touch, as a served index has
        index.search(words, 100, max_postings=budget)
    ms, walked = [], []
    for words in query_words:
        began = time.perf_counter()
        index.search(words, 100, max_postings=budget)
        ms.append((time.perf_counter() - began) * 1e3)
        walked.append(index.walked(words, budget))
    return {
        "max_postings": budget,
        "ms": {"p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99))},
        "postings_walked": float(np.mean(walked)),
    }
