"""Global re-ranking on descriptors: α-query expansion, database-side augmentation, diffusion.

All three work in the index's space (whitened when the collection is) on unit vectors.

* **α-QE** (Radenović et al.): the query becomes ``q + Σ_{i≤n} max(s_i, 0)^α d_i`` over its top
  ``n`` hits, re-normalised, and is searched again.
* **DBA**: every database vector is replaced, offline, by the same weighted sum over its own top
  neighbours; the shortlist is re-scored against those augmented vectors.
* **Diffusion** (Yang et al. 2018, decoupled): offline, a truncated k-NN affinity graph
  ``A_ij = max(s_ij, 0)^γ`` over the database, symmetrically normalised to ``S``, and
  ``L = (1 − α)(I − αS)^-1``; online, the query's k-NN weights ``w_j = s_j^γ`` give every image
  the score ``Σ_j w_j L_j·``. The offline part is exact (a dense inverse), so it is built for
  collections up to ``DIFFUSION_MAX_N`` images and rebuilt lazily after adds or deletes.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import faiss
import numpy as np

from imsearch.errors import ConfigError

DIFFUSION_MAX_N = 20_000


def l2n(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def expand_query(
    query: np.ndarray, neighbours: np.ndarray, scores: np.ndarray, n: int, alpha: float
) -> np.ndarray:
    """α-QE: the query plus its top-``n`` neighbours weighted by ``score^α``."""
    weights = np.maximum(scores[:n], 0.0) ** alpha
    return l2n(query + (weights[:, None] * neighbours[:n]).sum(axis=0))


class DatabaseGraph:
    """k-NN structure of the database vectors, shared by DBA and diffusion, built lazily."""

    def __init__(self, k: int = 30) -> None:
        self.k = k
        self._lock = threading.Lock()
        self.ids: list[str] = []
        self.vectors = np.zeros((0, 0), np.float32)
        self._dba: np.ndarray | None = None
        self._diffusion: np.ndarray | None = None
        self.dirty = True

    def mark_dirty(self) -> None:
        with self._lock:
            self.dirty = True

    def load(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        with self._lock:
            self.ids = list(ids)
            self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
            self._dba = self._diffusion = None
            self.dirty = False

    def _knn(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        index = faiss.IndexFlatIP(self.vectors.shape[1])
        index.add(self.vectors)
        return index.search(self.vectors, min(k, len(self.vectors)))

    def dba_vectors(self, n: int, alpha: float) -> np.ndarray:
        """Database-side augmentation of every vector (self included in its neighbours)."""
        with self._lock:
            if self._dba is None:
                scores, idx = self._knn(n)
                weights = np.maximum(scores, 0.0) ** alpha
                self._dba = l2n(np.einsum("nk,nkd->nd", weights, self.vectors[idx]))
            return self._dba

    def diffusion_matrix(self, alpha: float, gamma: float) -> np.ndarray:
        """``(1 − α)(I − αS)^-1`` over the truncated affinity graph (dense, N ≤ DIFFUSION_MAX_N)."""
        with self._lock:
            if self._diffusion is None:
                n = len(self.vectors)
                if n > DIFFUSION_MAX_N:
                    raise ConfigError(
                        f"diffusion is built for up to {DIFFUSION_MAX_N} images; this collection "
                        f"has {n}: use qe, dba or spatial re-ranking"
                    )
                scores, idx = self._knn(self.k)
                affinity = np.zeros((n, n), dtype=np.float64)
                rows = np.repeat(np.arange(n), idx.shape[1])
                affinity[rows, idx.ravel()] = np.maximum(scores.ravel(), 0.0) ** gamma
                affinity = np.minimum(affinity, affinity.T)  # mutual neighbours only
                np.fill_diagonal(affinity, 0.0)
                degree = affinity.sum(axis=1)
                inv_sqrt = 1.0 / np.sqrt(np.maximum(degree, 1e-12))
                normalised = affinity * inv_sqrt[:, None] * inv_sqrt[None, :]
                system = np.eye(n) - alpha * normalised
                self._diffusion = ((1 - alpha) * np.linalg.inv(system)).astype(np.float32)
            return self._diffusion


def diffuse(
    matrix: np.ndarray, query_scores: np.ndarray, query_idx: np.ndarray, gamma: float
) -> np.ndarray:
    """Online diffusion: database scores from the query's k-NN (indices into the graph)."""
    weights = np.maximum(query_scores, 0.0) ** gamma
    return weights @ matrix[query_idx]
