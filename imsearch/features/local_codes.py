"""Compact local features: RootSIFT stored as product-quantisation codes (issue 28).

Raw SIFT is 128 bytes per keypoint, ~132 kB of a collection's ~136 kB per image. A product
quantiser (Jégou et al. 2011) splits the 128 dimensions into ``m`` sub-vectors and stores the
index of each one's nearest of 256 centroids: ``m`` bytes per keypoint. Only the collection's
side is coded; the query keeps full precision and is matched against the candidate's
reconstructions (an *asymmetric* comparison, as in Jégou et al.; the reconstructions scaled to
unit length, see :meth:`Codebook.decode`), so verification runs unchanged.

The codebooks are generic and ship with the package (``make generic-codebooks``: learned from
the images of two Debian packages, as the generic vocabulary is), so a rerank worker needs
nothing of the collection to decode it. Each stored record names its codebook by the first
8 bytes of the codebook's SHA-256: a record is never decoded with centroids it was not coded
with.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from imsearch.errors import ConfigError, LocalFeatureError

#: How a collection stores its local features: raw SIFT bytes, or ``m``-byte PQ codes.
LocalEncoding = Literal["sift8", "pq16", "pq32"]
ENCODINGS: tuple[str, ...] = ("sift8", "pq16", "pq32")
DIM = 128
CENTROIDS = 256
DATA = Path(__file__).resolve().parent.parent / "data"


def codebook_path(m: int) -> Path:
    return DATA / f"local-pq{m}-generic.npy"


@dataclass(frozen=True)
class Codebook:
    """``centroids``: (m, 256, 128 / m) float32 — sub-vector centroids of RootSIFT."""

    centroids: np.ndarray

    @property
    def m(self) -> int:
        return int(self.centroids.shape[0])

    @functools.cached_property
    def digest(self) -> bytes:
        return hashlib.sha256(np.ascontiguousarray(self.centroids).tobytes()).digest()[:8]

    @functools.cached_property
    def _quantizer(self) -> Any:
        import faiss

        pq = faiss.ProductQuantizer(DIM, self.m, 8)
        faiss.copy_array_to_vector(np.ascontiguousarray(self.centroids).ravel(), pq.centroids)
        return pq

    def encode(self, rootsift: np.ndarray) -> np.ndarray:
        """(n, m) uint8: the nearest centroid of each sub-vector (FAISS's SIMD search: a few ms
        for 1,000 keypoints, where numpy took ~50)."""
        x = np.ascontiguousarray(rootsift, dtype=np.float32).reshape(-1, DIM)
        return self._quantizer.compute_codes(x).reshape(len(x), self.m)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """(n, 128) float32 reconstructions of ``codes``, scaled back to unit length.

        The matcher ranks by cosine, which is the L2 ranking only for unit rows, as RootSIFT
        rows are; raw reconstructions are not (norms 0.86–1.05 with pq16), and unscaled they
        lost a fifth of the inliers of a true match (247 → 196 on a bundled cover; scaled: 232).
        """
        parts = [self.centroids[j][codes[:, j]] for j in range(self.m)]
        if not parts:
            return np.zeros((0, DIM), np.float32)
        rows = np.concatenate(parts, axis=1)
        rows /= np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-7)
        return rows


def encoding_bytes(encoding: str) -> int:
    """``m`` of a PQ encoding (``pq16`` → 16); ConfigError for an unknown one."""
    if encoding not in ENCODINGS or encoding == "sift8":
        raise ConfigError(f"unknown local encoding {encoding!r}; choose one of {ENCODINGS}")
    return int(encoding[2:])


@functools.cache
def shipped_codebook(m: int) -> Codebook:
    path = codebook_path(m)
    if not path.is_file():
        raise ConfigError(f"no shipped codebook for pq{m} ({path}): make generic-codebooks")
    return Codebook(np.load(path).astype(np.float32))


def codebook_for(m: int, digest: bytes) -> Codebook:
    """The shipped codebook a record names; LocalFeatureError if it is not this package's."""
    try:
        book = shipped_codebook(m)
    except ConfigError as exc:
        raise LocalFeatureError(f"stored local features need a codebook: {exc}") from exc
    if book.digest != digest:
        raise LocalFeatureError(
            f"stored local features were coded with codebook {digest.hex()}, this package ships "
            f"{book.digest.hex()} for pq{m}: re-index the collection"
        )
    return book


def learn_codebook(rootsift: np.ndarray, m: int, seed: int = 0) -> np.ndarray:
    """(m, 256, 128 / m) centroids learned by k-means on each sub-vector (FAISS's PQ)."""
    import faiss

    if DIM % m:
        raise ConfigError(f"pq{m}: m must divide {DIM}")
    pq = faiss.ProductQuantizer(DIM, m, 8)
    pq.cp.seed = seed
    pq.train(np.ascontiguousarray(rootsift, dtype=np.float32))
    return faiss.vector_to_array(pq.centroids).reshape(m, CENTROIDS, DIM // m)
