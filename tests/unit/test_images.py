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


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF", "HEIF", "AVIF"])
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


def two_colours(width: int = 96, height: int = 48) -> Image.Image:
    """Left half red, right half blue: which way an image was turned is visible."""
    img = Image.new("RGB", (width, height), (255, 0, 0))
    img.paste((0, 0, 255), (width // 2, 0, width, height))
    return img


def is_upright_portrait(img: Image.Image) -> bool:
    """``two_colours`` turned 90° clockwise: red on top, blue at the bottom."""
    width, height = img.size
    top = img.getpixel((width // 2, height // 8))
    bottom = img.getpixel((width // 2, height * 7 // 8))
    return height > width and top[0] > 200 > top[2] and bottom[2] > 200 > bottom[0]


def iphone_like_heic() -> bytes:
    """As an iPhone stores a portrait photo: the sensor's landscape pixels, a rotation the
    HEIF container applies (``irot``), and the EXIF orientation tag (6) beside it."""
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "Apple"
    data = encode(two_colours(), "HEIF", exif=exif.tobytes(), quality=90)
    assert b"irot" in data[:4096]  # the rotation is the container's, as in a camera's file
    return data


def test_iphone_like_heic_arrives_upright_and_is_not_turned_twice() -> None:
    assert is_upright_portrait(decode_image(iphone_like_heic()))


@pytest.mark.parametrize("fmt", ["JPEG", "AVIF"])
def test_exif_orientation_is_applied_to_avif_as_to_jpeg(fmt: str) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    assert is_upright_portrait(decode_image(encode(two_colours(), fmt, exif=exif.tobytes())))


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_broken_phone_formats_get_the_same_errors(fmt: str) -> None:
    data = encode(gradient(400, 300), fmt, quality=80)
    with pytest.raises(ImageDecodeError):
        decode_image(data[: len(data) // 2])
    with pytest.raises(ImageDecodeError):
        decode_image(data[:40])
    with pytest.raises(ImageTooLarge, match="pixels"):
        decode_image(data, ImageLimits(max_pixels=400 * 300 - 1))
    with pytest.raises(ImageTooLarge):
        decode_image(data, ImageLimits(max_bytes=len(data) - 1))
    with pytest.raises(ImageDecodeError, match="at least"):
        decode_image(encode(Image.new("RGB", (4, 4)), fmt))


def test_heic_with_several_images_gives_the_primary() -> None:
    import pillow_heif

    heif = pillow_heif.from_pillow(Image.new("RGB", (64, 48), (0, 0, 255)))
    heif.add_from_pillow(Image.new("RGB", (64, 48), (255, 0, 0)))
    buffer = io.BytesIO()
    heif.save(buffer, quality=90, primary_index=1)  # a burst whose chosen shot is the second
    pixel = decode_image(buffer.getvalue()).getpixel((10, 10))
    assert pixel[0] > 200 and pixel[2] < 50


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
