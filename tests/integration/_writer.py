"""Helper process for the crash test: adds batches, prints each acknowledged batch's ids.

Usage: python -m tests.integration._writer DATA_DIR SPEC BATCHES
A line "ack i j" is printed (and flushed) only after ``store.add`` returned for ids i..j-1.
"""

from __future__ import annotations

import sys

import numpy as np

from imsearch.index.catalog import Item
from imsearch.index.store import IndexStore

DIM = 16
BATCH = 40


def vector(i: int) -> np.ndarray:
    v = np.random.default_rng(i).normal(size=DIM)
    return (v / np.linalg.norm(v)).astype(np.float32)


def main() -> None:
    data_dir, spec, batches = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = IndexStore(data_dir, "crash-model", DIM, spec)
    start = store.catalog.count()
    for b in range(batches):
        lo, hi = start + b * BATCH, start + (b + 1) * BATCH
        store.add([Item(f"id{i}", vector(i)) for i in range(lo, hi)])
        print(f"ack {lo} {hi}", flush=True)
        if b % 5 == 4:
            store.snapshot()


if __name__ == "__main__":
    main()
