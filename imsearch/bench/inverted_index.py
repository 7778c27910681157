"""The visual-word inverted file: our persisted CSR (imsearch.rerank.bow.BowIndex) against
tantivy, a maintained inverted-index library (issue 12, item 4).

Both index the same N "images", each a bag of visual words drawn like real ones (a Zipf-like
word frequency over the vocabulary, ~1000 keypoints, repeated words), and answer the same
queries (an image's words, 40 % of them replaced by random ones: another photo of it) for the
top 100. Measured: build time, bytes on disk, query latency, one-image adds, reopen time, and
how often each ranks the query's own image first. tantivy scores with BM25, ours with tf-idf
cosine; both are ranked shortlists ahead of geometric verification.

    pip install -e ".[bench]"   # tantivy
    python -m imsearch.bench.inverted_index --items 10000 \
        --json docs/results/bench-inverted-10000.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from imsearch.rerank.bow import BowIndex

WORDS, KEYPOINTS, QUERIES, ADDS = 16384, 1000, 300, 200


def image_words(rng: np.random.Generator, popularity: np.ndarray) -> np.ndarray:
    return rng.choice(WORDS, KEYPOINTS, p=popularity)


def query_words(rng: np.random.Generator, words: np.ndarray, popularity: np.ndarray) -> np.ndarray:
    replaced = rng.random(len(words)) < 0.4
    out = words.copy()
    out[replaced] = rng.choice(WORDS, int(replaced.sum()), p=popularity)
    return out


def pct(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {"p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99))}


def run_queries(
    search: Callable[[np.ndarray], list[int]], queries: list[tuple[int, np.ndarray]]
) -> dict:
    """Latency of each query (the top 100 ranked; the query's words built before timing) and
    how often its own image comes first."""
    ms, first = [], 0
    for own, words in queries:
        t = time.perf_counter()
        ranked = search(words)
        ms.append((time.perf_counter() - t) * 1e3)
        first += bool(ranked) and ranked[0] == own
    return {"ms": pct(ms), "own_first": first / len(queries)}


def size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def bench_csr(docs: list[np.ndarray], queries: list[tuple[int, np.ndarray]], work: Path) -> dict:
    started = time.perf_counter()
    index = BowIndex(WORDS)
    for i, words in enumerate(docs[:-ADDS]):
        index.add(i, words)
    index.consolidate()
    index.save(work)
    build_s = time.perf_counter() - started
    started = time.perf_counter()
    index = BowIndex.load(work)
    reopen_s = time.perf_counter() - started
    before = run_queries(lambda words: [h[0] for h in index.search(words, 100)], queries)
    add_ms = []
    for i in range(len(docs) - ADDS, len(docs)):  # adds while serving go to the delta
        t = time.perf_counter()
        index.add(i, docs[i])
        add_ms.append((time.perf_counter() - t) * 1e3)
    after = run_queries(lambda words: [h[0] for h in index.search(words, 100)], queries)
    return {"build_s": build_s, "disk_bytes": size(work), "reopen_s": reopen_s,
            "add_ms": pct(add_ms), "query": before, "query_after_adds": after}  # fmt: skip


def bench_tantivy(
    docs: list[np.ndarray], queries: list[tuple[int, np.ndarray]], work: Path
) -> dict:
    import tantivy

    builder = tantivy.SchemaBuilder()
    builder.add_integer_field("id", stored=True, indexed=True, fast=True)
    builder.add_text_field("words", stored=False, tokenizer_name="raw_words")
    schema = builder.build()
    text = lambda words: " ".join(f"w{w}" for w in words)  # noqa: E731
    started = time.perf_counter()
    index = tantivy.Index(schema, path=str(work))
    index.register_tokenizer(
        "raw_words", tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.whitespace()).build()
    )
    writer = index.writer(heap_size=200_000_000, num_threads=2)
    for i, words in enumerate(docs[:-ADDS]):
        writer.add_document(tantivy.Document(id=i, words=text(words)))
    writer.commit()
    writer.wait_merging_threads()
    build_s = time.perf_counter() - started
    started = time.perf_counter()
    index = tantivy.Index(schema, path=str(work))
    index.register_tokenizer(
        "raw_words", tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.whitespace()).build()
    )
    index.reload()
    reopen_s = time.perf_counter() - started

    def top(searcher: tantivy.Searcher, words: np.ndarray) -> list[int]:
        terms = [
            (tantivy.Occur.Should, tantivy.Query.term_query(schema, "words", f"w{w}"))
            for w in np.unique(words)
        ]
        hits = searcher.search(tantivy.Query.boolean_query(terms), 100).hits
        return [searcher.doc(address)["id"][0] for _, address in hits[:1]]

    before = run_queries(lambda words: top(index.searcher(), words), queries)
    writer = index.writer(heap_size=50_000_000, num_threads=1)
    add_ms = []
    for i in range(len(docs) - ADDS, len(docs)):  # searchable only after a commit
        t = time.perf_counter()
        writer.add_document(tantivy.Document(id=i, words=text(docs[i])))
        writer.commit()
        add_ms.append((time.perf_counter() - t) * 1e3)
    index.reload()
    after = run_queries(lambda words: top(index.searcher(), words), queries)
    return {"build_s": build_s, "disk_bytes": size(work), "reopen_s": reopen_s,
            "add_ms": pct(add_ms), "query": before, "query_after_adds": after}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    popularity = 1.0 / np.arange(1, WORDS + 1) ** 0.8
    popularity = rng.permutation(popularity / popularity.sum())
    docs = [image_words(rng, popularity) for _ in range(args.items)]
    owners = rng.integers(0, args.items - ADDS, QUERIES)  # in the index before the adds
    queries = [(int(i), query_words(rng, docs[i], popularity)) for i in owners]
    result: dict = {"items": args.items, "words": WORDS, "keypoints": KEYPOINTS}
    for name, bench in (("csr", bench_csr), ("tantivy", bench_tantivy)):
        work = Path(tempfile.mkdtemp(prefix=f"inv-{name}-"))
        try:
            result[name] = bench(docs, queries, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print(name, json.dumps(result[name]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
