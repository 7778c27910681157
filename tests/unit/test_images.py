"""Safe decoding: formats, orientation, modes, limits and typed errors."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from imsearch.errors import (
    EmptyImage,
    ImageDecodeError,
    ImageTooLarge,
    InvalidImage,
    UnsupportedImageFormat,
)
from imsearch.images import ImageLimits, crop_box, decode_image, list_images, resize_max_side
from tests.conftest import png_claiming


def encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def gradient(width: int = 64, height: int = 48) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.uint8)[None, :].repeat(height, 0)
    y = np.linspace(0, 255, height, dtype=np.uint8)[:, None].repeat(width, 1)
    return Image.fromarray(np.stack([x, y, 255 - x], axis=-1), "RGB")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF"])
def test_common_formats_decode_to_rgb(fmt: str) -> None:
    out = decode_image(encode(gradient(), fmt))
    assert out.mode == "RGB" and out.size == (64, 48)


def test_gif_first_frame() -> None:
    frames = [Image.new("RGB", (32, 32), c) for c in ((255, 0, 0), (0, 0, 255))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    pixel = decode_image(data).getpixel((5, 5))
    assert pixel[0] > 200 and pixel[2] < 50


def test_exif_orientation_is_applied() -> None:
    img = gradient(80, 40)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    out = decode_image(encode(img, "JPEG", exif=exif.tobytes()))
    assert out.size == (40, 80)


@pytest.mark.parametrize(
    ("mode", "fmt"),
    [("L", "PNG"), ("CMYK", "JPEG"), ("P", "PNG"), ("RGBA", "PNG"), ("LA", "PNG"), ("1", "BMP")],
)
def test_modes_are_converted(mode: str, fmt: str) -> None:
    out = decode_image(encode(gradient().convert(mode), fmt))
    assert out.mode == "RGB" and out.size == (64, 48)


def test_transparent_pixels_become_white() -> None:
    img = Image.new("RGBA", (16, 16), (255, 0, 0, 0))
    assert decode_image(encode(img, "PNG")).getpixel((3, 3)) == (255, 255, 255)


def test_sixteen_bit_grayscale_keeps_its_range() -> None:
    arr = np.linspace(0, 65535, 64 * 48).reshape(48, 64).astype(np.uint16)
    out = np.asarray(decode_image(encode(Image.fromarray(arr), "PNG")))
    assert out.dtype == np.uint8 and out.min() == 0 and out.max() == 255


def test_draft_mode_reduces_large_jpegs_but_not_below_target() -> None:
    data = encode(gradient(2000, 1500), "JPEG")
    out = decode_image(data, target_max_side=400)
    assert 400 <= max(out.size) < 2000


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", EmptyImage),
        (b"this is not an image at all", ImageDecodeError),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, ImageDecodeError),
    ],
)
def test_garbage_raises_typed_errors(data: bytes, error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        decode_image(data)
    assert isinstance(info.value, InvalidImage) and info.value.message


def test_truncated_jpeg_is_an_error_not_a_grey_picture() -> None:
    data = encode(gradient(400, 300), "JPEG")
    with pytest.raises(ImageDecodeError):
        decode_image(data[: len(data) // 2])


def test_byte_limit() -> None:
    data = encode(gradient(), "PNG")
    with pytest.raises(ImageTooLarge):
        decode_image(data, ImageLimits(max_bytes=len(data) - 1))


def test_decompression_bomb_rejected_before_decoding() -> None:
    with pytest.raises(ImageTooLarge, match="pixels"):
        decode_image(png_claiming(100_000, 100_000))


def test_unsupported_format() -> None:
    with pytest.raises(UnsupportedImageFormat):
        decode_image(encode(gradient(), "PPM"))


def test_tiny_images_are_refused() -> None:
    with pytest.raises(ImageDecodeError, match="at least"):
        decode_image(encode(Image.new("RGB", (4, 4)), "PNG"))


def test_resize_and_crop() -> None:
    img = gradient(200, 100)
    assert resize_max_side(img, 50).size == (50, 25)
    assert crop_box(img, (10, 10, 60.5, 40)).size == (51, 30)
    with pytest.raises(ImageDecodeError):
        crop_box(img, (300, 300, 400, 400))


def test_list_images_recursive(tmp_path) -> None:
    (tmp_path / "sub").mkdir()
    for name in ("a.jpg", "sub/b.PNG", "notes.txt", "sub/c.webp"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)] == [
        "a.jpg",
        "sub/b.PNG",
        "sub/c.webp",
    ]
