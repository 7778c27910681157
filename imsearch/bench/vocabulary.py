"""The visual-word shortlist with the collection's own vocabulary against the generic one
shipped with the package (issue 12, item 5): learning time and shortlist recall on a dataset.

For each vocabulary the dataset's database images go into a collection through the product's
path (IndexStore + VisualWords: SIFT as served, words by the words worker), then every query
photo's shortlist (tf-idf over visual words, as `spatial` re-ranking builds it) is compared
with its ground truth: recall@k = share of queries with a positive in the first k. The final
mAP of each is `imsearch eval` with IMSEARCH_VOCABULARY set (docs/BENCHMARKS.md §8).

    python -m imsearch.bench.vocabulary ../shared/data/smvs-dvd \
        --json docs/results/bench-vocabulary-smvs.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from imsearch.engine import make_sift
from imsearch.evaluate.datasets import load_dataset
from imsearch.images import load_image
from imsearch.index.catalog import Item
from imsearch.index.store import IndexStore
from imsearch.indexing import maybe_learn_vocabulary
from imsearch.rerank.visual_words import VisualWords
from imsearch.settings import Settings

DEPTHS = (1, 10, 20, 50, 100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    dataset = load_dataset(args.dataset)
    base = Settings()
    sift = make_sift(base)
    extract = lambda p: sift.extract(load_image(p))  # noqa: E731
    database = [extract(p).to_bytes() for p in tqdm(dataset.database_paths, desc="database")]
    queries = [extract(q.path) for q in tqdm(dataset.queries, desc="queries")]
    result: dict = {"dataset": dataset.name, "database": len(database), "queries": len(queries)}
    for source in ("collection", "generic"):
        with tempfile.TemporaryDirectory() as tmp:
            store = IndexStore(Path(tmp), "vocabulary-bench", 4)
            words = VisualWords(store)
            unit = np.ones(4, np.float32) / 2
            store.add([Item(f"db/{i}", unit, f"{i:064x}", {}, features)
                       for i, features in enumerate(database)])  # fmt: skip
            started = time.perf_counter()
            report = maybe_learn_vocabulary(words, Settings(vocabulary=source))
            learn_s = time.perf_counter() - started
            words.flush()
            names = store.catalog.ext_ids(store.catalog.int_ids().tolist())
            found = {k: 0 for k in DEPTHS}
            for query, features in zip(dataset.queries, queries, strict=True):
                ranked = [int(names[i].split("/")[1]) for i, _ in words.shortlist(features, 100)]
                first = next((r for r, i in enumerate(ranked) if i in set(query.gt.ok)), None)
                for k in DEPTHS:
                    found[k] += first is not None and first < k
            store.close()
        result[source] = {
            "vocabulary": report,
            "learn_s": learn_s,
            "recall": {f"@{k}": 100 * found[k] / len(queries) for k in DEPTHS},
        }
        print(source, json.dumps(result[source]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
