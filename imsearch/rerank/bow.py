"""Bag of visual words over RootSIFT: a second first stage that finds what global CNN
descriptors miss (small, rotated or cluttered objects), with an inverted-file style search.

* **Vocabulary**: k-means (FAISS) on RootSIFT descriptors sampled from the collection itself,
  learned once, like the whitening; stored as ``vocabulary.npy`` in the data directory.
* **Weights**: tf-idf with square-rooted term frequencies (burstiness: a repeated pattern
  should not dominate), L2-normalised per image.
* **Search**: a sparse image × word matrix; a query's score against every image is one sparse
  product, i.e. a walk over the posting lists of the query's words only.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any

import faiss
import numpy as np

from imsearch.optional import require

log = logging.getLogger(__name__)


def learn_vocabulary(descriptors: np.ndarray, words: int, seed: int = 0) -> np.ndarray:
    """k-means centroids ``(words, 128)`` of RootSIFT ``descriptors``."""
    words = min(words, max(1, len(descriptors) // 10))
    kmeans = faiss.Kmeans(
        descriptors.shape[1],
        words,
        niter=15,
        seed=seed,
        max_points_per_centroid=64,
        verbose=False,
    )
    kmeans.train(np.ascontiguousarray(descriptors, dtype=np.float32))
    return np.asarray(kmeans.centroids, dtype=np.float32)


class Quantizer:
    """Nearest visual word of each descriptor."""

    def __init__(self, vocabulary: np.ndarray) -> None:
        self.vocabulary = vocabulary
        self._index = faiss.IndexFlatL2(vocabulary.shape[1])
        self._index.add(vocabulary)

    @property
    def size(self) -> int:
        return int(self.vocabulary.shape[0])

    def assign(self, descriptors: np.ndarray) -> np.ndarray:
        if len(descriptors) == 0:
            return np.zeros(0, dtype=np.int64)
        return self._index.search(np.ascontiguousarray(descriptors, np.float32), 1)[1][:, 0]


class BowIndex:
    """tf-idf search over visual-word histograms, keyed by int64 ids."""

    def __init__(self, vocabulary_size: int) -> None:
        self.size = vocabulary_size
        self._counts: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._lock = threading.Lock()
        self._matrix: Any = None  # a scipy.sparse CSC matrix, built lazily
        self._ids = np.zeros(0, dtype=np.int64)
        self._idf = np.zeros(vocabulary_size, dtype=np.float32)

    def __len__(self) -> int:
        return len(self._counts)

    def add(self, int_id: int, words: np.ndarray) -> None:
        unique, counts = np.unique(words, return_counts=True)
        with self._lock:
            self._counts[int(int_id)] = (unique.astype(np.int32), counts.astype(np.float32))
            self._matrix = None

    def remove(self, int_ids: Iterable[int]) -> None:
        with self._lock:
            for int_id in int_ids:
                self._counts.pop(int(int_id), None)
            self._matrix = None

    def _build(self) -> None:
        """(Re)build the weighted sparse matrix; lazily, after writes."""
        sparse = require("scipy.sparse")
        ids = np.array(sorted(self._counts), dtype=np.int64)
        rows, cols, vals = [], [], []
        for row, int_id in enumerate(ids):
            words, counts = self._counts[int(int_id)]
            rows.append(np.full(len(words), row))
            cols.append(words)
            vals.append(np.sqrt(counts))
        n = len(ids)
        if n == 0:
            self._matrix, self._ids = sparse.csr_matrix((0, self.size), dtype=np.float32), ids
            return
        matrix = sparse.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(n, self.size),
            dtype=np.float32,
        )
        df = np.bincount(matrix.indices, minlength=self.size)
        self._idf = np.log((n + 1) / (df + 1)).astype(np.float32)
        matrix = matrix @ sparse.diags(self._idf)
        norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
        self._matrix = sparse.diags(1.0 / np.maximum(norms, 1e-12)) @ matrix
        self._matrix = self._matrix.tocsc()
        self._ids = ids

    def search(self, words: np.ndarray, n: int) -> list[tuple[int, float]]:
        """Top-``n`` ``(int_id, cosine)`` for a query's visual words."""
        with self._lock:
            if self._matrix is None:
                self._build()
            matrix, ids, idf = self._matrix, self._ids, self._idf
        if len(ids) == 0 or len(words) == 0:
            return []
        unique, counts = np.unique(words, return_counts=True)
        weights = np.sqrt(counts.astype(np.float32)) * idf[unique]
        norm = float(np.linalg.norm(weights))
        if norm == 0:
            return []
        assert matrix is not None
        scores = np.asarray(matrix[:, unique] @ (weights / norm)).ravel()
        top = np.argsort(-scores)[:n]
        return [(int(ids[i]), float(scores[i])) for i in top if scores[i] > 0]
