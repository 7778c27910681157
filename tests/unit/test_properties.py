"""Property-based tests (hypothesis): the image decoder and the id rules, on any input."""

from __future__ import annotations

import io
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from imsearch.errors import InvalidId, InvalidImage
from imsearch.ids import MAX_ID_CHARS, normalize_id
from imsearch.images import ImageLimits, decode_image

LIMITS = ImageLimits(max_bytes=2_000_000, max_pixels=4_000_000)


def _encoded(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.linear_gradient("L").convert("RGB").resize((64, 48)).save(buffer, format=fmt)
    return buffer.getvalue()


VALID = {fmt: _encoded(fmt) for fmt in ("JPEG", "PNG", "WEBP", "GIF")}


def decodes_or_refuses(data: bytes) -> None:
    """The decoder's whole contract: an RGB image within the limits, or an InvalidImage."""
    try:
        img = decode_image(data, LIMITS)
    except InvalidImage:
        return
    assert img.mode == "RGB"
    assert min(img.size) >= LIMITS.min_side and img.width * img.height <= LIMITS.max_pixels


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4096))
def test_any_bytes_decode_or_are_refused_cleanly(data: bytes) -> None:
    decodes_or_refuses(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(sorted(VALID)),
    st.integers(min_value=0, max_value=10_000),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=8),
)
def test_truncated_and_corrupted_images_decode_or_are_refused_cleanly(
    fmt: str, cut: int, flips: list[tuple[int, int]]
) -> None:
    data = bytearray(VALID[fmt][: max(1, cut)])
    for position, value in flips:
        data[position % len(data)] = value
    decodes_or_refuses(bytes(data))


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=600))
def test_any_text_is_a_canonical_id_or_refused(raw: str) -> None:
    try:
        image_id = normalize_id(raw)
    except InvalidId:
        return
    assert image_id == unicodedata.normalize("NFC", image_id) == normalize_id(image_id)
    assert 1 <= len(image_id) <= MAX_ID_CHARS and image_id == image_id.strip()
    assert all(unicodedata.category(c)[0] != "C" or unicodedata.category(c) == "Cn"
               for c in image_id)  # fmt: skip
    assert not {"", ".", ".."} & set(image_id.split("/")) and "\\" not in image_id


@pytest.mark.parametrize(
    "raw",
    ["a\nb", "nul\x00", "zero\u200bwidth", "\u202eevil.jpg", "../etc/passwd", "/abs", "dir/",
     "a//b", "a/./b", "win\\path", " padded", "x" * 513, ""],
)  # fmt: skip
def test_ids_that_are_refused(raw: str) -> None:
    with pytest.raises(InvalidId):
        normalize_id(raw)


def test_ids_that_are_kept_or_made_canonical() -> None:
    assert normalize_id("sub/photo_12") == "sub/photo_12"
    assert normalize_id("caf\u0065\u0301") == "caf\u00e9"  # e + combining accent → é
    assert normalize_id("日本/写真 1") == "日本/写真 1"
