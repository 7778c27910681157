"""Safe image decoding for files and uploads.

Every image that enters the engine goes through :func:`decode_image`: it checks the byte size,
reads only the header to check the format and the pixel count (so a decompression bomb is
rejected before a single pixel is decoded), decodes large JPEGs in draft mode (the decoder
scales by 1/2, 1/4 or 1/8 for free), applies the EXIF orientation and converts every mode
(grayscale, palette, alpha, CMYK, 16-bit, float) to 8-bit RGB.

Phones send HEIC (an iPhone's camera default) and AVIF: HEIF through ``pillow-heif`` (libheif),
AVIF through Pillow's own plugin (libavif). libheif applies a HEIF's rotation and mirroring
(``irot``/``imir``) while opening and resets the EXIF orientation, so no photo is turned twice;
an AVIF keeps its EXIF orientation, applied like a JPEG's.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pillow_heif
from PIL import Image, ImageFile, ImageOps

from imsearch.errors import (
    ConfigError,
    EmptyImage,
    ImageDecodeError,
    ImageTooLarge,
    UnsupportedImageFormat,
)

# Pillow's own bomb guard fires only at 2x its limit and as a warning below that; the engine
# enforces its own limit from the header instead, so switch Pillow's off to keep one rule.
Image.MAX_IMAGE_PIXELS = None
# A truncated file must be an error, never a half-grey picture indexed as if it were whole.
ImageFile.LOAD_TRUNCATED_IMAGES = False
# HEIC/HEIF as a Pillow format ("HEIF"); the thumbnails the files carry are not wanted.
pillow_heif.register_heif_opener(thumbnails=False)

#: Pillow format names accepted; MPO is the multi-picture JPEG some phones write.
ALLOWED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP", "TIFF", "HEIF", "AVIF"})
#: File extensions treated as images when walking a folder.
IMAGE_EXTENSIONS = frozenset(
    {
        ".jpg", ".jpeg", ".jpe", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff",
        ".heic", ".heif", ".hif", ".avif",
    }
)  # fmt: skip

#: A box ``(x1, y1, x2, y2)`` in pixels of the upright image.
BBox = tuple[float, float, float, float]


@dataclass(frozen=True)
class ImageLimits:
    """Upper bounds an image must respect before it is decoded."""

    max_bytes: int = 25 * 1024 * 1024
    max_pixels: int = 50_000_000
    #: Smallest accepted side; tiny images carry no retrievable content.
    min_side: int = 8


def sha256_hex(data: bytes) -> str:
    """Content hash used for de-duplication and as cache key."""
    return hashlib.sha256(data).hexdigest()


def decode_image(
    data: bytes,
    limits: ImageLimits | None = None,
    target_max_side: int | None = None,
) -> Image.Image:
    """Decode ``data`` into an 8-bit RGB image, upright per its EXIF orientation.

    ``target_max_side`` is a hint: JPEGs larger than about twice that are decoded at a reduced
    scale (never below the target), which saves most of the decoding time for phone photos.
    Raises a subclass of :class:`~imsearch.errors.InvalidImage` on any problem.
    """
    limits = limits or ImageLimits()
    if not data:
        raise EmptyImage("the image is empty (0 bytes)")
    if len(data) > limits.max_bytes:
        raise ImageTooLarge(f"the image has {len(data)} bytes; the limit is {limits.max_bytes}")
    img = _open_header(data)
    _check_header(img, limits)
    if target_max_side and img.format in ("JPEG", "MPO"):
        # draft() picks the largest power-of-two reduction that keeps both sides >= the
        # requested box; a box of the image's own aspect keeps the longer side >= the target.
        img.draft("RGB", _draft_box(img.size, target_max_side))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # a HEIF opens at its primary image, which need not be the first one
            if getattr(img, "is_animated", False) and img.format != "HEIF":
                img.seek(0)
            img.load()
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        raise ImageDecodeError(f"the image data is corrupt or truncated ({exc})") from exc
    # A broken EXIF block must not lose an otherwise good image: keep it as stored.
    with contextlib.suppress(Exception):
        img = ImageOps.exif_transpose(img)
    return to_rgb(img)


def _draft_box(size: tuple[int, int], target: int) -> tuple[int, int]:
    width, height = size
    if width >= height:
        return target, max(1, -(-target * height // width))
    return max(1, -(-target * width // height)), target


def load_image(
    path: str | Path, limits: ImageLimits | None = None, target_max_side: int | None = None
) -> Image.Image:
    """Read and decode an image file (see :func:`decode_image`)."""
    return decode_image(Path(path).read_bytes(), limits, target_max_side)


def _open_header(data: bytes) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(str(exc)) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageDecodeError("the data is not an image in a known format") from exc


def _check_header(img: Image.Image, limits: ImageLimits) -> None:
    if img.format not in ALLOWED_FORMATS:
        allowed = ", ".join(sorted(ALLOWED_FORMATS - {"MPO"}))
        raise UnsupportedImageFormat(f"format {img.format} is not accepted; use one of {allowed}")
    width, height = img.size
    if width * height > limits.max_pixels:
        raise ImageTooLarge(
            f"the image is {width}x{height} = {width * height} pixels; "
            f"the limit is {limits.max_pixels}"
        )
    if min(width, height) < limits.min_side:
        raise ImageDecodeError(
            f"the image is {width}x{height}; both sides must be at least {limits.min_side} px"
        )


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB; transparent areas become white."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return Image.fromarray(_to_uint8(np.asarray(img)), mode="L").convert("RGB")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if img.mode == "CMYK":
        # Pillow's CMYK->RGB ignores embedded profiles; good enough for retrieval features.
        return img.convert("RGB")
    return img.convert("RGB")


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype in (np.uint16, np.int32, np.uint32) and arr.max(initial=0) <= 65535:
        return (arr.astype(np.uint32) >> 8).astype(np.uint8)
    arr = arr.astype(np.float64)
    lo, hi = float(arr.min(initial=0.0)), float(arr.max(initial=0.0))
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    return ((arr - lo) * scale).astype(np.uint8)


def resize_max_side(img: Image.Image, max_side: int) -> Image.Image:
    """Resize so the longer side is ``max_side`` (up or down), keeping the aspect ratio."""
    width, height = img.size
    ratio = max_side / max(width, height)
    size = (max(1, round(width * ratio)), max(1, round(height * ratio)))
    if size == img.size:
        return img
    return img.resize(size, Image.Resampling.BILINEAR, reducing_gap=None if ratio > 0.5 else 2.0)


#: Longer side of stored thumbnails, in pixels.
THUMBNAIL_SIDE = 320


def make_thumbnail(img: Image.Image, side: int = THUMBNAIL_SIDE) -> bytes:
    """A small JPEG of ``img`` (already upright RGB) for result lists."""
    small = img.copy()
    small.thumbnail((side, side), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=80, optimize=True)
    return buffer.getvalue()


def crop_box(img: Image.Image, bbox: BBox) -> Image.Image:
    """Crop to ``(x1, y1, x2, y2)`` in pixels, clamped to the image."""
    width, height = img.size
    if not np.isfinite(bbox).all():
        raise ConfigError(f"the box {bbox} must be four finite numbers")
    x1, y1, x2, y2 = bbox
    box = (
        max(0, int(np.floor(x1))),
        max(0, int(np.floor(y1))),
        min(width, int(np.ceil(x2))),
        min(height, int(np.ceil(y2))),
    )
    if box[2] <= box[0] or box[3] <= box[1]:
        raise ImageDecodeError(f"the box {bbox} is empty inside a {width}x{height} image")
    return img.crop(box)


def list_images(root: str | Path) -> list[Path]:
    """Every image file under ``root`` (recursive, by extension), in a stable order."""
    root = Path(root)
    return sorted(
        p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
    )
