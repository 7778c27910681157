"""Geometric verification of candidate images with RootSIFT matches and a robust homography.

For a query and a candidate: each query RootSIFT descriptor is matched to its nearest
candidate descriptor when it passes Lowe's ratio test, then a homography is fitted with
OpenCV's USAC MAGSAC++; the number of inliers is the verification score.

Two matchers give the same pairs: ``opencv`` (``BFMatcher.knnMatch``, the first wave's) and
``matmul`` (the default): RootSIFT vectors have unit length, so squared distances are
``2 - 2 * cosine`` and all of them come from one BLAS matrix product, about five times faster
than the brute-force matcher on this machine (docs/BENCHMARKS.md §9).

A homography that folds the image (negative determinant) or shrinks/stretches it beyond
``max_scale`` is rejected: it is how random matches masquerade as a fit.
A candidate counts as *verified* with at least ``min_inliers`` inliers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from imsearch.features.local import LocalFeatures
from imsearch.optional import require


@dataclass(frozen=True)
class VerifyParams:
    ratio: float = 0.8
    min_inliers: int = 15
    reproj_threshold: float = 8.0
    max_scale: float = 10.0
    max_iters: int = 2000
    #: ``matmul`` or ``opencv``: see the module's docstring.
    matcher: str = "matmul"


@dataclass(frozen=True)
class Verification:
    inliers: int
    matches: int
    #: Inlier correspondences ``(n, 4)``: query x, y then candidate x, y, each divided by its
    #: image's width or height (0..1), so they can be drawn over any rendering of the images.
    pairs: np.ndarray | None = None
    #: Where the candidate lies in the query photo: ``(x1, y1, x2, y2)``, fractions of the
    #: query's width and height — the candidate's outline mapped through the homography.
    box: tuple[float, float, float, float] | None = None

    def verified(self, params: VerifyParams) -> bool:
        return self.inliers >= params.min_inliers


_NONE = Verification(0, 0)


MATCHERS = ("matmul", "opencv")


def ratio_matches(
    query: np.ndarray, candidate: np.ndarray, ratio: float, matcher: str = "matmul"
) -> np.ndarray:
    """``(n, 2)`` index pairs (query, candidate) that pass Lowe's ratio test.

    Both arguments hold RootSIFT rows (unit length, float32).
    """
    if len(query) < 2 or len(candidate) < 2:
        return np.zeros((0, 2), dtype=np.int64)
    if matcher == "matmul":
        return _matmul_matches(query, candidate, ratio)
    if matcher != "opencv":
        raise ValueError(f"unknown matcher {matcher!r}; choose one of {', '.join(MATCHERS)}")
    cv2 = require("cv2")
    pairs = cv2.BFMatcher(cv2.NORM_L2).knnMatch(query, candidate, k=2)
    good = [
        (m.queryIdx, m.trainIdx)
        for m, n in (p for p in pairs if len(p) == 2)
        if m.distance < ratio * n.distance
    ]
    return np.array(good, dtype=np.int64).reshape(-1, 2)


def _matmul_matches(query: np.ndarray, candidate: np.ndarray, ratio: float) -> np.ndarray:
    similarity = query @ candidate.T
    rows = np.arange(len(query))
    best = similarity.argmax(axis=1)
    first = similarity[rows, best].copy()
    similarity[rows, best] = -np.inf
    second = similarity.max(axis=1)
    # d1 < ratio * d2 with d^2 = 2 - 2 cos, compared squared (both sides are non-negative).
    d1 = np.maximum(2.0 - 2.0 * first, 0.0)
    d2 = np.maximum(2.0 - 2.0 * second, 0.0)
    good = np.flatnonzero(d1 < ratio * ratio * d2)
    return np.stack([good, best[good]], axis=1).astype(np.int64)


def verify(
    query: LocalFeatures,
    candidate: LocalFeatures,
    params: VerifyParams,
    query_rootsift: np.ndarray | None = None,
) -> Verification:
    """Inliers of the best homography from ``query`` to ``candidate``."""
    q_desc = query.rootsift() if query_rootsift is None else query_rootsift
    pairs = ratio_matches(q_desc, candidate.rootsift(), params.ratio, params.matcher)
    return fit(query, candidate, pairs, params)


def fit(
    query: LocalFeatures, candidate: LocalFeatures, pairs: np.ndarray, params: VerifyParams
) -> Verification:
    """Inliers of the best plausible homography over the tentative ``pairs``."""
    if len(pairs) < 4:
        return Verification(0, len(pairs))
    src = query.xy[pairs[:, 0]].reshape(-1, 1, 2)
    dst = candidate.xy[pairs[:, 1]].reshape(-1, 1, 2)
    cv2 = require("cv2")
    homography, mask = cv2.findHomography(
        src,
        dst,
        cv2.USAC_MAGSAC,
        params.reproj_threshold,
        maxIters=params.max_iters,
        confidence=0.999,
    )
    if homography is None or mask is None or not plausible(homography, params.max_scale):
        return Verification(0, len(pairs))
    keep = mask.ravel().astype(bool)
    scale_q = np.array([max(query.width, 1.0), max(query.height, 1.0)], dtype=np.float32)
    scale_c = np.array([max(candidate.width, 1.0), max(candidate.height, 1.0)], dtype=np.float32)
    inlier_pairs = np.hstack(
        [src.reshape(-1, 2)[keep] / scale_q, dst.reshape(-1, 2)[keep] / scale_c]
    )
    box = query_box(homography, query, candidate, inlier_pairs[:, :2])
    return Verification(int(keep.sum()), len(pairs), inlier_pairs, box)


def query_box(
    homography: np.ndarray,
    query: LocalFeatures,
    candidate: LocalFeatures,
    inlier_xy: np.ndarray,
) -> tuple[float, float, float, float]:
    """The candidate's outline in the query photo (fractions of its size), clipped to it.

    The homography maps query to candidate; its inverse maps the candidate's corners back.
    When that is degenerate (a corner behind the camera), the inliers' bounding box is used.
    """
    w, h = max(candidate.width, 1.0), max(candidate.height, 1.0)
    corners = np.array([[0, 0, 1], [w, 0, 1], [w, h, 1], [0, h, 1]], dtype=np.float64)
    try:
        mapped = corners @ np.linalg.inv(homography).T
    except np.linalg.LinAlgError:
        mapped = np.zeros((4, 3))
    if np.all(mapped[:, 2] > 1e-9):
        xy = mapped[:, :2] / mapped[:, 2:3]
        xy /= np.array([max(query.width, 1.0), max(query.height, 1.0)])
    else:
        xy = inlier_xy.astype(np.float64)
    lo = np.clip(xy.min(axis=0), 0.0, 1.0)
    hi = np.clip(xy.max(axis=0), 0.0, 1.0)
    return (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]))


def plausible(homography: np.ndarray, max_scale: float) -> bool:
    """Reject folding or wildly scaling homographies (the usual shape of a false fit)."""
    det = float(np.linalg.det(homography[:2, :2]))
    return 1.0 / max_scale**2 < det < max_scale**2
