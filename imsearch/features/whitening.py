"""PCA whitening learned from a collection of descriptors, with shrinkage.

Plain PCA whitening divides each principal direction by the square root of its eigenvalue. On a
collection of a few hundred images the trailing eigenvalues are tiny and noisy, and dividing by
them amplifies noise until retrieval collapses. Two guards:

* the output dimension is capped at ``n - 1`` (rank of the centred data);
* eigenvalues are shrunk toward their mean: ``λ_i + α·mean(λ)``; α=0 is plain whitening, large
  α approaches a plain PCA rotation (no whitening at all).
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
