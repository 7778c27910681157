"""Shared fixtures: a small, fast model configuration and the bundled test data."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import pytest

from imsearch.features.extractor import Extractor, ModelConfig
from imsearch.settings import Settings

DATA = Path(__file__).parent / "data"
MINI = DATA / "mini"

#: The cheapest real model: every test that extracts uses it (CPU, 256 px, one scale), in
#: eager PyTorch — a process starts 2–4 s sooner without the ONNX export and OpenVINO compile,
#: and tests start many. The runtimes' own tests (tests/unit/test_runtime.py) check that
#: OpenVINO and ONNX Runtime give the same descriptors; the container smoke runs the default.
FAST_ENV = {
    "IMSEARCH_BACKBONE": "efficientnet_lite0",
    "IMSEARCH_MAX_SIDE": "256",
    "IMSEARCH_SCALES": "1",
    "IMSEARCH_DEVICE": "cpu",
    "IMSEARCH_BATCH_SIZE": "4",
    "IMSEARCH_RUNTIME": "torch",
}


@pytest.fixture(scope="session")
def fast_config() -> ModelConfig:
    return ModelConfig(backbone="efficientnet_lite0", max_side=256, scales=(1.0,))


@pytest.fixture(scope="session")
def fast_extractor(fast_config: ModelConfig) -> Extractor:
    return Extractor(fast_config, device="cpu", batch_size=4)


@pytest.fixture()
def fast_settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        backbone="efficientnet_lite0",
        max_side=256,
        scales=(1.0,),
        device="cpu",
        batch_size=4,
    )


@pytest.fixture()
def fast_env(tmp_path: Path) -> dict[str, str]:
    """Environment for subprocesses running the CLI or a server with the fast model."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMSEARCH_")}
    env.update(FAST_ENV)
    env["IMSEARCH_DATA_DIR"] = str(tmp_path / "data")
    return env


def phone_photo(path: Path, fmt: str, rotated: bool = False) -> bytes:
    """``path`` re-encoded as a phone sends it: ``fmt`` HEIF (HEIC) or AVIF. ``rotated``: as a
    phone held upright stores it — the pixels turned a quarter to the sensor's landscape, the
    turn back recorded for the viewer (EXIF orientation 6; pillow-heif writes it as the HEIF's
    own ``irot``, as an iPhone does)."""
    import io

    from PIL import Image

    img = Image.open(path).convert("RGB")
    exif = Image.Exif()
    exif[0x010F] = "Apple"
    if rotated:
        img = img.rotate(90, expand=True)
        exif[0x0112] = 6
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, quality=85, exif=exif.tobytes())
    return buffer.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A tiny, valid PNG that declares ``width`` × ``height`` pixels: a decompression bomb
    must be refused from its header."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )
