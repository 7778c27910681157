"""Local features: SIFT keypoints with RootSIFT descriptors (OpenCV), stored compactly.

Stored per image: up to ``max_keypoints`` keypoints (the strongest by detector response), their
coordinates in the pixels of the *resized* image as float32, and the raw SIFT descriptors as
uint8 (OpenCV's SIFT values are integers in 0..255 already, so nothing is lost). RootSIFT
(Arandjelović & Zisserman 2012: L1-normalise, then square root) is computed when matching.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
from PIL import Image

from imsearch.errors import LocalFeatureError
from imsearch.images import resize_max_side
from imsearch.optional import require

_HEADER = struct.Struct("<4sIff")  # magic, count, width, height
_MAGIC = b"LSF1"


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
        xy = np.ascontiguousarray(self.xy, dtype=np.float32).tobytes()
        return header + xy + np.ascontiguousarray(self.sift, dtype=np.uint8).tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> LocalFeatures:
        magic, count, width, height = _HEADER.unpack_from(data)
        if magic != _MAGIC or len(data) != _HEADER.size + count * (8 + 128):
            raise LocalFeatureError("stored local features are corrupt")
        offset = _HEADER.size
        xy = np.frombuffer(data, np.float32, count * 2, offset).reshape(count, 2)
        sift = np.frombuffer(data, np.uint8, count * 128, offset + count * 8).reshape(count, 128)
        return cls(xy, sift, width, height)


class SiftExtractor:
    """SIFT on the grey image resized to ``max_side``; keeps the strongest ``max_keypoints``."""

    def __init__(self, max_side: int = 800, max_keypoints: int = 1000) -> None:
        self.max_side = max_side
        self.max_keypoints = max_keypoints

    @property
    def config_id(self) -> str:
        return f"sift{self.max_keypoints}@{self.max_side}"

    def extract(self, image: Image.Image) -> LocalFeatures:
        small = resize_max_side(image, self.max_side) if max(image.size) > self.max_side else image
        grey = np.asarray(small.convert("L"))
        # A detector per call: creating one costs microseconds, sharing one across the
        # indexing threads is not documented as safe.
        detector = require("cv2").SIFT.create(nfeatures=self.max_keypoints)
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
