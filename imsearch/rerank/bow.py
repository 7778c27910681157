"""Bag of visual words over RootSIFT: a second first stage that finds what global CNN
descriptors miss (small, rotated or cluttered objects), with an inverted-file search.

* **Vocabulary**: k-means (FAISS) on RootSIFT descriptors, learned once like the whitening;
  stored as ``vocabulary.npy`` in the data directory.
* **Words** of an image: its unique visual words and their counts, computed once when the
  image is added and stored with it (:func:`encode_words`), so the index never quantizes a
  stored image again.
* **Weights**: tf-idf with square-rooted term frequencies (burstiness: a repeated pattern
  should not dominate), L2-normalised per image.
* **Index**: an inverted file in CSR form — per word, the rows (images) that contain it and
  their term weights — that can be saved and memory-mapped, plus the rows added since
  (per-word lists) and a liveness mask for deletions. A query walks the posting lists of its
  own words only. :meth:`BowIndex.consolidate` folds the additions into a new CSR, drops
  deleted rows and recomputes document frequencies and norms; the owner calls it when the
  additions are a sizeable share, so its O(postings) cost is paid once per such share.
* **A posting budget** (``max_postings``): a query walks its words rarest first and stops
  before the postings walked pass the budget, so the call does not grow with the collection
  once the budget binds. Common words are long lists of low idf: they cost most and decide
  least (docs/BENCHMARKS.md §16 measures what the budget keeps).
"""

from __future__ import annotations

import json
import logging
import struct
import threading
from collections.abc import Iterable
from pathlib import Path

import faiss
import numpy as np

from imsearch.errors import LocalFeatureError
from imsearch.fsutil import fsync_path, write_atomic

log = logging.getLogger(__name__)

_WORDS_HEADER = struct.Struct("<I")
_ARRAYS = ("indptr", "rows", "tf", "row_ids", "norms")


#: The vocabulary shipped with the package: learned once from images outside every benchmark
#: (make generic-vocabulary; docs/BENCHMARKS.md says from what and how it compares).
GENERIC_VOCABULARY = Path(__file__).resolve().parent.parent / "data" / "vocabulary-generic.npy"


def generic_vocabulary() -> np.ndarray:
    """The packaged generic vocabulary (RootSIFT words) as float32."""
    return np.load(GENERIC_VOCABULARY).astype(np.float32)


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


#: From this vocabulary size on, words are assigned through an HNSW graph over the words.
HNSW_FROM_WORDS = 4096
#: Candidate list of that graph: 16 assigns 99 % of RootSIFT descriptors to the exact nearest
#: word (measured on SMVS photos against a 16,384-word vocabulary) at ~1/6 of the cost.
HNSW_EF = 16


class Quantizer:
    """Nearest visual word of each descriptor: exact for small vocabularies, through an HNSW
    graph over the words for large ones (quantizing is most of what an add costs)."""

    def __init__(self, vocabulary: np.ndarray) -> None:
        self.vocabulary = vocabulary
        dim = vocabulary.shape[1]
        if len(vocabulary) >= HNSW_FROM_WORDS:
            graph = faiss.IndexHNSWFlat(dim, 32)
            graph.hnsw.efConstruction = 40
            graph.hnsw.efSearch = HNSW_EF
            self._index: faiss.Index = graph
        else:
            self._index = faiss.IndexFlatL2(dim)
        self._index.add(vocabulary)

    @property
    def size(self) -> int:
        return int(self.vocabulary.shape[0])

    def assign(self, descriptors: np.ndarray) -> np.ndarray:
        if len(descriptors) == 0:
            return np.zeros(0, dtype=np.int64)
        return self._index.search(np.ascontiguousarray(descriptors, np.float32), 1)[1][:, 0]


def encode_words(assigned: np.ndarray) -> bytes:
    """An image's visual words (one per descriptor) as stored: unique words and counts."""
    unique, counts = np.unique(np.asarray(assigned, dtype=np.int64), return_counts=True)
    return (
        _WORDS_HEADER.pack(len(unique))
        + unique.astype("<u4").tobytes()
        + np.minimum(counts, 65535).astype("<u2").tobytes()
    )


def decode_words(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """``(unique words, counts)`` of :func:`encode_words`'s bytes."""
    (n,) = _WORDS_HEADER.unpack_from(data)
    if len(data) != _WORDS_HEADER.size + 6 * n:
        raise LocalFeatureError("stored visual words are corrupt")
    words = np.frombuffer(data, "<u4", n, _WORDS_HEADER.size).astype(np.int64)
    counts = np.frombuffer(data, "<u2", n, _WORDS_HEADER.size + 4 * n).astype(np.float32)
    return words, counts


class BowIndex:
    """tf-idf search over visual-word histograms, keyed by int64 ids."""

    def __init__(self, vocabulary_size: int) -> None:
        self.size = vocabulary_size
        self._lock = threading.RLock()
        # The consolidated part (CSR over rows), possibly memory-mapped and then read-only.
        self._indptr = np.zeros(vocabulary_size + 1, np.int64)
        self._rows = np.zeros(0, np.int32)
        self._tf = np.zeros(0, np.float16)
        # Per row (consolidated rows first, then added ones); arrays grown by doubling.
        self._row_ids = np.zeros(0, np.int64)
        self._used_rows = 0
        self._row_of: dict[int, int] = {}
        self._alive = np.zeros(0, bool)
        self._norms = np.zeros(0, np.float32)
        self._base_rows = 0
        # Added since the consolidation: word -> (rows, term weights).
        self._added: dict[int, tuple[list[int], list[float]]] = {}
        self._df = np.zeros(vocabulary_size, np.int64)
        self._live = 0
        #: The live count when the norms were last computed for everyone.
        self._norms_live = 0

    def __len__(self) -> int:
        return self._live

    @property
    def pending(self) -> int:
        """Rows added or deleted since the last consolidation (what it would fold in)."""
        return (self._used_rows - self._base_rows) + int(
            self._base_rows - self._alive[: self._base_rows].sum()
        )

    def _used(self) -> int:
        return self._used_rows

    @property
    def consolidated_rows(self) -> int:
        return self._base_rows

    # -- writes ----------------------------------------------------------------------------------

    def add(self, int_id: int, words: np.ndarray) -> None:
        """Add an image from its assigned words (one per descriptor)."""
        unique, counts = np.unique(np.asarray(words, dtype=np.int64), return_counts=True)
        self.add_counts(int_id, unique, counts.astype(np.float32))

    def add_counts(self, int_id: int, unique: np.ndarray, counts: np.ndarray) -> None:
        """Add (or replace) an image from its unique words and their counts."""
        weights = np.sqrt(counts).astype(np.float32)
        with self._lock:
            self.remove([int_id])
            row = self._used_rows
            self._grow(row)
            self._row_ids[row] = int(int_id)
            self._used_rows += 1
            self._row_of[int(int_id)] = row
            for word, weight in zip(unique.tolist(), weights.tolist(), strict=True):
                rows, tf = self._added.setdefault(word, ([], []))
                rows.append(row)
                tf.append(weight)
            self._df[unique] += 1
            self._live += 1
            idf = self._idf()
            self._alive[row] = True
            self._norms[row] = np.linalg.norm(weights * idf[unique]) if len(unique) else 0.0

    def _grow(self, row: int) -> None:
        """Room for ``row`` in the per-row arrays: doubling, amortised O(1) per add."""
        if row >= len(self._alive):
            grown = max(16, 2 * len(self._alive)) - len(self._alive)
            self._alive = np.concatenate([self._alive, np.zeros(grown, bool)])
            self._norms = np.concatenate([self._norms, np.zeros(grown, np.float32)])
        if row >= len(self._row_ids):
            grown = max(16, 2 * len(self._row_ids)) - len(self._row_ids)
            self._row_ids = np.concatenate([self._row_ids, np.zeros(grown, np.int64)])
        if not self._alive.flags.writeable:
            self._alive = self._alive.copy()

    def remove(self, int_ids: Iterable[int]) -> None:
        with self._lock:
            for int_id in int_ids:
                row = self._row_of.pop(int(int_id), None)
                if row is not None and self._alive[row]:
                    if not self._alive.flags.writeable:
                        self._alive = self._alive.copy()
                    self._alive[row] = False
                    self._live -= 1

    # -- search ----------------------------------------------------------------------------------

    def _idf(self) -> np.ndarray:
        return np.log((self._live + 1) / (self._df + 1)).astype(np.float32)

    def search(
        self,
        words: np.ndarray,
        n: int,
        allowed: np.ndarray | None = None,
        max_postings: int = 0,
    ) -> list[tuple[int, float]]:
        """Top-``n`` ``(int_id, cosine)`` for a query's assigned words; with ``allowed``
        (sorted int ids), among those only; with ``max_postings``, walking the query's words
        rarest first until the next would pass that many postings (the rarest always)."""
        if self._live == 0 or len(words) == 0:
            return []
        unique, counts = np.unique(np.asarray(words, dtype=np.int64), return_counts=True)
        with self._lock:
            self._refresh_norms()
            idf = self._idf()
            query = np.sqrt(counts.astype(np.float32)) * idf[unique]
            norm = float(np.linalg.norm(query))
            if norm == 0:
                return []
            weights = query * idf[unique] / norm
            if max_postings > 0:
                unique, weights = self._within_budget(unique, weights, max_postings)
            rows, values = self._postings(unique, weights)
            # Only the rows the walked postings touch are scored: O(postings), not O(N).
            dense = np.bincount(rows, values, minlength=self._used())
            touched = np.flatnonzero(dense)
            scores = dense[touched].astype(np.float32)
            scores /= np.maximum(self._norms[touched], 1e-12)
            scores[~self._alive[touched]] = 0
            ids = self._row_ids[touched]
        if allowed is not None:
            scores[~np.isin(ids, allowed)] = 0
        if len(scores) == 0:
            return []
        top = np.argpartition(-scores, min(n, len(scores) - 1))[:n]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(ids[r]), float(scores[r])) for r in top if scores[r] > 0]

    def walked(self, words: np.ndarray, max_postings: int = 0) -> int:
        """Postings a search of ``words`` walks under ``max_postings`` (0 = all)."""
        unique = np.unique(np.asarray(words, dtype=np.int64))
        with self._lock:
            if max_postings > 0:
                unique, _ = self._within_budget(unique, np.ones(len(unique)), max_postings)
            return int(self._df[unique].sum())

    def _within_budget(
        self, words: np.ndarray, weights: np.ndarray, max_postings: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The rarest of ``words`` whose posting lists fit in ``max_postings`` together."""
        df = self._df[words]
        order = np.argsort(df, kind="stable")
        keep = max(1, int(np.searchsorted(np.cumsum(df[order]), max_postings, side="right")))
        chosen = order[:keep]
        return words[chosen], weights[chosen]

    def _postings(self, words: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows and weighted term values of every posting of ``words``."""
        starts, ends = self._indptr[words], self._indptr[words + 1]
        rows = [self._rows[s:e] for s, e in zip(starts.tolist(), ends.tolist(), strict=True)]
        vals = [
            self._tf[s:e].astype(np.float32) * w
            for s, e, w in zip(starts.tolist(), ends.tolist(), weights.tolist(), strict=True)
        ]
        for word, weight in zip(words.tolist(), weights.tolist(), strict=True):
            added = self._added.get(word)
            if added:
                rows.append(np.asarray(added[0], np.int32))
                vals.append(np.asarray(added[1], np.float32) * weight)
        if not rows:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        return np.concatenate(rows).astype(np.int64), np.concatenate(vals)

    # -- consolidation and persistence ------------------------------------------------------------

    def consolidate(self) -> None:
        """Fold the added rows into the CSR, drop deleted rows, recompute df and norms."""
        with self._lock:
            words_b = np.repeat(np.arange(self.size), np.diff(self._indptr))
            keep = self._alive[self._rows] if len(self._rows) else np.zeros(0, bool)
            words_list = [words_b[keep]]
            rows_list = [self._rows[keep].astype(np.int64)]
            tf_list = [self._tf[keep].astype(np.float32)]
            self._alive = self._alive[: self._used()]
            for word, (rows, tf) in self._added.items():
                alive = self._alive[np.asarray(rows, np.int64)]
                words_list.append(np.full(int(alive.sum()), word, np.int64))
                rows_list.append(np.asarray(rows, np.int64)[alive])
                tf_list.append(np.asarray(tf, np.float32)[alive])
            words_all = np.concatenate(words_list)
            order = np.argsort(words_all, kind="stable")
            old_rows = np.concatenate(rows_list)[order]
            tf_all = np.concatenate(tf_list)[order]
            live_rows = np.flatnonzero(self._alive)
            renumber = np.full(self._used_rows, -1, np.int64)
            renumber[live_rows] = np.arange(len(live_rows))
            self._indptr = np.concatenate(
                [[0], np.cumsum(np.bincount(words_all, minlength=self.size))]
            )
            self._rows = renumber[old_rows].astype(np.int32)
            self._tf = tf_all.astype(np.float16)
            self._row_ids = self._row_ids[live_rows]
            self._used_rows = len(live_rows)
            self._row_of = dict(zip(self._row_ids.tolist(), range(self._used_rows), strict=True))
            self._alive = np.ones(self._used_rows, bool)
            self._base_rows = self._used_rows
            self._added = {}
            self._live = self._used_rows
            self._df = np.diff(self._indptr).astype(np.int64)
            self._recompute_norms()

    def _recompute_norms(self) -> None:
        """Every row's norm under the current idf (base and added rows)."""
        idf = self._idf()
        words = [np.repeat(np.arange(self.size), np.diff(self._indptr))]
        rows = [self._rows.astype(np.int64)]
        tf = [self._tf.astype(np.float32)]
        for word, (added_rows, added_tf) in self._added.items():
            words.append(np.full(len(added_rows), word, np.int64))
            rows.append(np.asarray(added_rows, np.int64))
            tf.append(np.asarray(added_tf, np.float32))
        weighted = (np.concatenate(tf) * idf[np.concatenate(words)]) ** 2
        used = self._used()
        norms = np.sqrt(np.bincount(np.concatenate(rows), weighted, minlength=used))
        self._norms = np.concatenate(
            [norms.astype(np.float32), np.zeros(len(self._alive) - used, np.float32)]
        )
        self._norms_live = self._live

    def _refresh_norms(self) -> None:
        """Norms follow the idf, which moves with the collection: recompute them once it has
        grown or shrunk by a tenth since they were (amortised O(1) per add)."""
        if abs(self._live - self._norms_live) > 0.1 * self._norms_live:
            self._recompute_norms()

    def save(self, directory: Path) -> None:
        """Write the consolidated index (consolidating first) as .npy files, fsynced."""
        with self._lock:
            if self.pending:
                self.consolidate()
            directory.mkdir(parents=True, exist_ok=True)
            arrays = {
                "indptr": self._indptr,
                "rows": self._rows,
                "tf": self._tf,
                "row_ids": self._row_ids[: self._used()],
                "norms": self._norms[: self._used()],
            }
            for name, array in arrays.items():
                with open(directory / f"{name}.npy", "wb") as fh:
                    np.save(fh, np.ascontiguousarray(array))
                fsync_path(directory / f"{name}.npy")
            write_atomic(directory / "meta.json", json.dumps({"size": self.size}).encode())

    @classmethod
    def load(cls, directory: Path, mmap: bool = True) -> BowIndex:
        """An index saved by :meth:`save`; its CSR memory-mapped (read-only) by default."""
        meta = json.loads((directory / "meta.json").read_text())
        index = cls(int(meta["size"]))
        arrays = {
            name: np.load(directory / f"{name}.npy", mmap_mode="r" if mmap else None)
            for name in _ARRAYS
        }
        index._indptr = np.asarray(arrays["indptr"], np.int64)
        index._rows, index._tf = arrays["rows"], arrays["tf"]
        index._row_ids = np.array(arrays["row_ids"], np.int64)
        used = index._used_rows = len(index._row_ids)
        index._row_of = dict(zip(index._row_ids.tolist(), range(used), strict=True))
        index._alive = np.ones(used, bool)
        index._norms = np.array(arrays["norms"], np.float32)
        index._base_rows = index._live = index._norms_live = used
        index._df = np.diff(index._indptr).astype(np.int64)
        return index

    def ids(self) -> np.ndarray:
        """The int ids of the live rows."""
        with self._lock:
            used = self._used()
            return self._row_ids[:used][self._alive[:used]]
