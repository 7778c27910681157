"""Local features: SIFT keypoints with RootSIFT descriptors (OpenCV), stored compactly.

Stored per image: up to ``max_keypoints`` keypoints (the strongest by detector response), their
coordinates in the pixels of the *resized* image as float16 (0.5 px steps at 1024 px, far below
the 8 px tolerance of verification), and the raw SIFT descriptors as uint8 (OpenCV's SIFT values
are integers in 0..255 already, so nothing is lost): 132 bytes per keypoint. RootSIFT
(Arandjelović & Zisserman 2012: L1-normalise, then square root) is computed when matching.
Features written with float32 coordinates (format ``LSF1``) are still read. A collection may
store its features as product-quantisation codes instead (format ``LSQ1``, ``m`` + 4 bytes per
keypoint, :mod:`imsearch.features.local_codes`): they are decoded to RootSIFT when read.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from imsearch.errors import LocalFeatureError
from imsearch.features.local_codes import codebook_for, encoding_bytes, shipped_codebook
from imsearch.images import resize_max_side
from imsearch.optional import require

_HEADER = struct.Struct("<4sIff")  # magic, count, width, height
#: Coordinate type per format: LSF2 (written) float16, LSF1 (older collections) float32.
_XY_TYPES: dict[bytes, np.dtype[Any]] = {b"LSF2": np.dtype("<f2"), b"LSF1": np.dtype("<f4")}
_MAGIC = b"LSF2"
_CODED_MAGIC = b"LSQ1"
_CODED = struct.Struct("<H8s")  # bytes per keypoint (m), the codebook's digest


@dataclass(frozen=True)
class LocalFeatures:
    """Keypoints of one image: ``xy`` (K, 2) float32 and ``sift`` (K, 128) uint8 — or, read
    from codes, ``decoded`` (K, 128) float32 RootSIFT reconstructions and ``sift`` empty."""

    xy: np.ndarray
    sift: np.ndarray
    #: Size of the image the coordinates refer to (after resizing).
    width: float = 0.0
    height: float = 0.0
    decoded: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.xy)

    def rootsift(self) -> np.ndarray:
        """RootSIFT descriptors as float32, ready for L2 matching."""
        if self.decoded is not None:
            return self.decoded
        d = self.sift.astype(np.float32)
        d /= np.maximum(d.sum(axis=1, keepdims=True), 1e-7)
        return np.sqrt(d)

    def to_bytes(self, encoding: str = "sift8") -> bytes:
        """Serialized as raw SIFT (``sift8``) or as ``pqM`` codes of the shipped codebook."""
        xy = np.ascontiguousarray(self.xy, dtype=_XY_TYPES[_MAGIC]).tobytes()
        if encoding != "sift8":
            book = shipped_codebook(encoding_bytes(encoding))
            header = _HEADER.pack(_CODED_MAGIC, len(self), self.width, self.height)
            codes = book.encode(self.rootsift()).tobytes()
            return header + _CODED.pack(book.m, book.digest) + xy + codes
        if self.decoded is not None:
            raise LocalFeatureError("features read from codes cannot be stored as raw SIFT")
        header = _HEADER.pack(_MAGIC, len(self), self.width, self.height)
        return header + xy + np.ascontiguousarray(self.sift, dtype=np.uint8).tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> LocalFeatures:
        if len(data) < _HEADER.size:
            raise LocalFeatureError("stored local features are corrupt")
        magic, count, width, height = _HEADER.unpack_from(data)
        if magic == _CODED_MAGIC:
            return cls._from_codes(data, count, width, height)
        xy_type = _XY_TYPES.get(magic)
        if xy_type is None or len(data) != _HEADER.size + count * (2 * xy_type.itemsize + 128):
            raise LocalFeatureError("stored local features are corrupt")
        offset = _HEADER.size
        xy = np.frombuffer(data, xy_type, count * 2, offset).reshape(count, 2).astype(np.float32)
        sift_at = offset + count * 2 * xy_type.itemsize
        sift = np.frombuffer(data, np.uint8, count * 128, sift_at).reshape(count, 128)
        return cls(xy, sift, width, height)

    @classmethod
    def _from_codes(cls, data: bytes, count: int, width: float, height: float) -> LocalFeatures:
        if len(data) < _HEADER.size + _CODED.size:
            raise LocalFeatureError("stored local features are corrupt")
        m, digest = _CODED.unpack_from(data, _HEADER.size)
        offset = _HEADER.size + _CODED.size
        if m == 0 or len(data) != offset + count * (4 + m):
            raise LocalFeatureError("stored local features are corrupt")
        book = codebook_for(m, digest)
        xy = np.frombuffer(data, "<f2", count * 2, offset).reshape(count, 2).astype(np.float32)
        codes = np.frombuffer(data, np.uint8, count * m, offset + count * 4).reshape(count, m)
        return cls(xy, np.zeros((0, 128), np.uint8), width, height, book.decode(codes))


def rootsift_sample(
    folder: Path, sift: SiftExtractor, max_images: int, max_sample: int, progress: bool = True
) -> tuple[np.ndarray, int]:
    """RootSIFT of at most ``max_images`` images of ``folder`` (spread evenly), at most
    ``max_sample`` descriptors drawn from them (seeded), and how many images were read."""
    from tqdm import tqdm

    from imsearch.errors import ConfigError, ImsearchError
    from imsearch.images import list_images, load_image

    paths = list_images(folder)
    if not paths:
        raise ConfigError(f"no images in {folder}")
    chosen = paths[:: max(1, len(paths) // max_images)][:max_images]
    descriptors = []
    for path in tqdm(chosen, unit="img", disable=not progress, desc="features"):
        try:
            descriptors.append(sift.extract(load_image(path)).rootsift())
        except ImsearchError:
            continue  # an unreadable file does not stop the run
    sample = np.concatenate(descriptors)
    if len(sample) > max_sample:
        sample = sample[np.random.default_rng(0).choice(len(sample), max_sample, False)]
    return sample, len(descriptors)


def stored_form(payload: bytes, encoding: str) -> bytes:
    """``payload`` (serialized features) as a collection of ``encoding`` stores it."""
    if encoding == "sift8" or payload[:4] == _CODED_MAGIC:
        return payload
    return LocalFeatures.from_bytes(payload).to_bytes(encoding)


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
