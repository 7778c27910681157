"""Linear whitening of global descriptors: PCA whitening from a collection, or learned
whitening from matching pairs (Radenović et al., "Lw"), both with shrinkage.

Plain PCA whitening divides each principal direction by the square root of its eigenvalue. On a
collection of a few hundred images the trailing eigenvalues are tiny and noisy, and dividing by
them amplifies noise until retrieval collapses. Two guards:

* the output dimension is capped at ``n - 1`` (rank of the centred data);
* eigenvalues are shrunk toward their mean: ``λ_i + α·mean(λ)``; α=0 is plain whitening, large
  α approaches a plain PCA rotation (no whitening at all).

Learned whitening needs labels (pairs of descriptors of the same object) and no training of
the network: it whitens the *within-pair* covariance — the differences photos of one object show
(viewpoint, light, clutter) — then keeps the directions along which the whole collection varies
most. Both produce the same :class:`PCAWhitening` (mean + projection), stored the same way.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from imsearch.errors import ConfigError
from imsearch.fsutil import write_atomic


@dataclass(frozen=True)
class PCAWhitening:
    """``y = l2n((x - mean) @ projection)``."""

    mean: np.ndarray  # (D,)
    projection: np.ndarray  # (D, d)
    info: dict[str, str] = field(default_factory=dict)

    @property
    def input_dim(self) -> int:
        return int(self.projection.shape[0])

    @property
    def output_dim(self) -> int:
        return int(self.projection.shape[1])

    def apply(self, x: np.ndarray) -> np.ndarray:
        if x.shape[-1] != self.input_dim:
            raise ConfigError(
                f"whitening expects {self.input_dim}-d descriptors, got {x.shape[-1]}-d"
            )
        y = (x.astype(np.float32) - self.mean) @ self.projection
        return y / np.maximum(np.linalg.norm(y, axis=-1, keepdims=True), 1e-6)

    def sha256(self) -> str:
        """Content hash (part of the model id)."""
        digest = hashlib.sha256()
        digest.update(np.ascontiguousarray(self.mean, dtype=np.float32).tobytes())
        digest.update(np.ascontiguousarray(self.projection, dtype=np.float32).tobytes())
        return digest.hexdigest()

    def save(self, path: str | Path) -> None:
        buffer = io.BytesIO()
        np.savez(
            buffer,
            mean=self.mean.astype(np.float32),
            projection=self.projection.astype(np.float32),
            info_keys=np.array(list(self.info.keys()), dtype=str),
            info_values=np.array(list(self.info.values()), dtype=str),
        )
        write_atomic(path, buffer.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> PCAWhitening:
        try:
            with np.load(Path(path), allow_pickle=False) as data:
                info = dict(
                    zip(data["info_keys"].tolist(), data["info_values"].tolist(), strict=True)
                )
                return cls(data["mean"], data["projection"], info)
        except (OSError, KeyError, ValueError) as exc:
            raise ConfigError(f"cannot read whitening file {path}: {exc}") from exc


def learn_pca_whitening(
    x: np.ndarray, dim: int | None = None, shrinkage: float = 1.0, source: str = ""
) -> PCAWhitening:
    """Learn PCA whitening from descriptors ``x`` of shape ``(n, D)``.

    ``dim`` defaults to ``min(D, n - 1)`` and is capped there.
    """
    x = np.asarray(x, dtype=np.float64)
    n, d_in = x.shape
    if n < 3:
        raise ConfigError(f"whitening needs at least 3 descriptors, got {n}")
    if shrinkage < 0:
        raise ConfigError("shrinkage must be >= 0")
    cap = min(d_in, n - 1)
    dim = cap if dim is None else min(dim, cap)
    mean = x.mean(axis=0)
    centred = x - mean
    cov = centred.T @ centred / n
    eigvals, eigvecs = np.linalg.eigh(cov)
    order = np.argsort(eigvals)[::-1][:dim]
    eigvals = np.clip(eigvals[order], 0.0, None)
    eigvecs = eigvecs[:, order]
    denominator = np.sqrt(eigvals + shrinkage * eigvals.mean() + 1e-12)
    projection = eigvecs / denominator
    info = {"n": str(n), "dim": str(dim), "shrinkage": str(shrinkage), "source": source}
    return PCAWhitening(mean.astype(np.float32), projection.astype(np.float32), info)


#: Lw's default shrinkage, chosen inside the training split (docs/BENCHMARKS.md §5): 0 (plain
#: Lw) collapses with a few hundred pairs; 0.1 and 1 both work, 0.1 best.
LW_SHRINKAGE = 0.1


def learn_lw_whitening(
    x: np.ndarray,
    pairs: np.ndarray,
    dim: int | None = None,
    shrinkage: float = LW_SHRINKAGE,
    source: str = "",
) -> PCAWhitening:
    """Learn whitening from descriptors ``x`` (n, D) and matching ``pairs`` (p, 2) of row indices.

    0. A few hundred pairs do not span a 320-d space, and a direction no pair varies along
       would be amplified without bound: the data is first restricted to its top
       ``r = min(D, p - 1, n - 1)`` principal directions.
    1. ``C_S`` = covariance of the pair differences there (eigenvalues shrunk by
       ``shrinkage · mean`` as in PCA whitening); ``P1 = C_S^-1/2``.
    2. ``C_D`` = covariance of the collection seen through ``P1``; its top ``dim`` eigenvectors
       ``R`` give ``projection = basis @ P1 @ R``.
    """
    x = np.asarray(x, dtype=np.float64)
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    n, d_in = x.shape
    if len(pairs) < 3:
        raise ConfigError(f"learned whitening needs at least 3 matching pairs, got {len(pairs)}")
    if shrinkage < 0:
        raise ConfigError("shrinkage must be >= 0")
    if pairs.min() < 0 or pairs.max() >= n:
        raise ConfigError("a matching pair refers to a descriptor that is not there")
    mean = x.mean(axis=0)
    rank = min(d_in, len(pairs) - 1, n - 1)
    basis = _top_eigenvectors((x - mean).T @ (x - mean) / n, rank)
    z = (x - mean) @ basis
    diff = z[pairs[:, 0]] - z[pairs[:, 1]]
    eigvals, eigvecs = np.linalg.eigh(diff.T @ diff / len(diff))
    eigvals = np.clip(eigvals, 0.0, None)
    p1 = eigvecs / np.sqrt(eigvals + shrinkage * eigvals.mean() + 1e-12)
    dim = rank if dim is None else min(dim, rank)
    rotation = _top_eigenvectors((z @ p1).T @ (z @ p1) / n, dim)
    info = {
        "method": "lw",
        "n": str(n),
        "pairs": str(len(pairs)),
        "dim": str(dim),
        "shrinkage": str(shrinkage),
        "source": source,
    }
    projection = basis @ p1 @ rotation
    return PCAWhitening(mean.astype(np.float32), projection.astype(np.float32), info)


def _top_eigenvectors(symmetric: np.ndarray, count: int) -> np.ndarray:
    values, vectors = np.linalg.eigh(symmetric)
    return vectors[:, np.argsort(values)[::-1][:count]]
