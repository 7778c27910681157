"""FAISS vector indexes keyed by int64 ids, built from a spec string.

A spec is a FAISS index-factory string (``Flat`` for exact inner-product search). The index is
always wrapped in an ``IndexIDMap2`` so that ids are the catalog's int64 ids and vectors can be
removed by id. The approximate families (PQ, HNSW, IVF…) plug in here through the same spec.
"""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np

from imsearch.errors import ConfigError, DimensionMismatch
from imsearch.fsutil import replace_atomic


class VectorIndex:
    """Inner-product search over L2-normalised descriptors (cosine similarity)."""

    def __init__(self, dim: int, spec: str = "Flat") -> None:
        self.dim = dim
        self.spec = spec
        try:
            base = faiss.index_factory(dim, spec, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as exc:
            raise ConfigError(f"invalid index spec {spec!r}: {exc}") from exc
        self._index: faiss.Index = faiss.IndexIDMap2(base)

    @classmethod
    def _wrap(cls, index: faiss.Index, spec: str) -> VectorIndex:
        obj = cls.__new__(cls)
        obj.dim = index.d
        obj.spec = spec
        obj._index = index
        return obj

    @property
    def ntotal(self) -> int:
        return int(self._index.ntotal)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        vectors = self._check(vectors)
        if len(ids) != len(vectors):
            raise ValueError("ids and vectors differ in length")
        if len(ids):
            self._index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))

    def remove(self, ids: np.ndarray) -> int:
        if len(ids) == 0:
            return 0
        selector = faiss.IDSelectorBatch(np.ascontiguousarray(ids, dtype=np.int64))
        return int(self._index.remove_ids(selector))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` ``(scores, ids)``, each ``(n, k)``; missing slots have id -1."""
        queries = self._check(queries)
        k = max(1, min(k, max(self.ntotal, 1)))
        scores, ids = self._index.search(queries, k)
        return scores, ids

    def _check(self, vectors: np.ndarray) -> np.ndarray:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise DimensionMismatch(
                f"expected vectors of dimension {self.dim}, got shape {vectors.shape}"
            )
        return vectors

    def save(self, path: str | Path) -> None:
        """Write atomically: a temporary file, fsync, then rename over ``path``."""
        replace_atomic(path, lambda tmp: faiss.write_index(self._index, str(tmp)))

    @classmethod
    def load(cls, path: str | Path, spec: str, mmap: bool = False) -> VectorIndex:
        flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if mmap else 0
        index = faiss.read_index(str(path), flags)
        return cls._wrap(index, spec)
