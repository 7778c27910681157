"""Local features: SIFT keypoints with RootSIFT descriptors (OpenCV), stored compactly.

Stored per image: up to ``max_keypoints`` keypoints (the strongest by detector response), their
coordinates in the pixels of the *resized* image as float16 (0.5 px steps at 1024 px, far below
the 8 px tolerance of verification), and the raw SIFT descriptors as uint8 (OpenCV's SIFT values
are integers in 0..255 already, so nothing is lost): 132 bytes per keypoint. RootSIFT
(Arandjelović & Zisserman 2012: L1-normalise, then square root) is computed when matching.
Features written with float32 coordinates (format ``LSF1``) are still read.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from imsearch.errors import LocalFeatureError
from imsearch.images import resize_max_side
from imsearch.optional import require

_HEADER = struct.Struct("<4sIff")  # magic, count, width, height
#: Coordinate type per format: LSF2 (written) float16, LSF1 (older collections) float32.
_XY_TYPES: dict[bytes, np.dtype[Any]] = {b"LSF2": np.dtype("<f2"), b"LSF1": np.dtype("<f4")}
_MAGIC = b"LSF2"


@dataclass(frozen=True)
class LocalFeatures:
    """Keypoints of one image: ``xy`` (K, 2) float32 and ``sift`` (K, 128) uint8."""

    xy: np.ndarray
    sift: np.ndarray
    #: Size of the image the coordinates refer to (after resizing).
    width: float = 0.0
    height: float = 0.0

    def __len__(self) -> int:
        return len(self.xy)

    def rootsift(self) -> np.ndarray:
        """RootSIFT descriptors as float32, ready for L2 matching."""
        d = self.sift.astype(np.float32)
        d /= np.maximum(d.sum(axis=1, keepdims=True), 1e-7)
        return np.sqrt(d)

    def to_bytes(self) -> bytes:
        header = _HEADER.pack(_MAGIC, len(self), self.width, self.height)
        xy = np.ascontiguousarray(self.xy, dtype=_XY_TYPES[_MAGIC]).tobytes()
        return header + xy + np.ascontiguousarray(self.sift, dtype=np.uint8).tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> LocalFeatures:
        if len(data) < _HEADER.size:
            raise LocalFeatureError("stored local features are corrupt")
        magic, count, width, height = _HEADER.unpack_from(data)
        xy_type = _XY_TYPES.get(magic)
        if xy_type is None or len(data) != _HEADER.size + count * (2 * xy_type.itemsize + 128):
            raise LocalFeatureError("stored local features are corrupt")
        offset = _HEADER.size
        xy = np.frombuffer(data, xy_type, count * 2, offset).reshape(count, 2).astype(np.float32)
        sift_at = offset + count * 2 * xy_type.itemsize
        sift = np.frombuffer(data, np.uint8, count * 128, sift_at).reshape(count, 128)
        return cls(xy, sift, width, height)


#: OpenCV's SIFT contrast threshold: what its detector keeps by default.
OPENCV_CONTRAST = 0.04


class SiftExtractor:
    """SIFT on the grey image resized to ``max_side``; keeps the strongest ``max_keypoints``.

    ``clahe`` equalises the grey image's contrast locally first (OpenCV's CLAHE, 8×8 tiles)
    and ``contrast_threshold`` below OpenCV's 0.04 keeps weaker extrema: a pale painting
    behind glass, small in a street or museum photo, otherwise yields a few dozen keypoints
    (docs/BENCHMARKS.md §14). The strongest ``max_keypoints`` are kept either way.
    """

    def __init__(
        self,
        max_side: int = 800,
        max_keypoints: int = 1000,
        contrast_threshold: float = OPENCV_CONTRAST,
        clahe: bool = False,
    ) -> None:
        self.max_side = max_side
        self.max_keypoints = max_keypoints
        self.contrast_threshold = contrast_threshold
        self.clahe = clahe

    @property
    def config_id(self) -> str:
        base = f"sift{self.max_keypoints}@{self.max_side}"
        if self.contrast_threshold != OPENCV_CONTRAST:
            base += f"/c{self.contrast_threshold:g}"
        return base + ("/clahe" if self.clahe else "")

    def extract(self, image: Image.Image) -> LocalFeatures:
        small = resize_max_side(image, self.max_side) if max(image.size) > self.max_side else image
        cv2 = require("cv2")
        grey = np.asarray(small.convert("L"))
        if self.clahe:
            grey = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(grey)
        # A detector per call: creating one costs microseconds, sharing one across the
        # indexing threads is not documented as safe.
        detector = cv2.SIFT.create(
            nfeatures=self.max_keypoints, contrastThreshold=self.contrast_threshold
        )
        keypoints, descriptors = detector.detectAndCompute(grey, None)
        if descriptors is None or not keypoints:
            return LocalFeatures(
                np.zeros((0, 2), np.float32), np.zeros((0, 128), np.uint8), *small.size
            )
        # nfeatures keeps the strongest, but ties at the cut can return a few more.
        order = np.argsort([-k.response for k in keypoints])[: self.max_keypoints]
        xy = np.array([keypoints[i].pt for i in order], dtype=np.float32)
        sift = np.clip(np.rint(descriptors[order]), 0, 255).astype(np.uint8)
        return LocalFeatures(xy, sift, float(small.size[0]), float(small.size[1]))
