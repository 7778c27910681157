"""The embedded server as a real process over HTTP: search, errors as JSON, still serving."""

from __future__ import annotations

import io
from collections.abc import Iterator

import httpx
import pytest
from PIL import Image

from imsearch.features.local import SiftExtractor
from imsearch.index.store import IndexStore
from imsearch.indexing import index_directory
from imsearch.settings import Settings
from tests.conftest import FAST_ENV, MINI
from tests.procs import Server, running


@pytest.fixture(scope="module")
def server(tmp_path_factory, fast_extractor) -> Iterator[str]:
    data_dir = tmp_path_factory.mktemp("served")
    settings = Settings(
        data_dir=data_dir, **{k.removeprefix("IMSEARCH_").lower(): v for k, v in FAST_ENV.items()}
    )
    store = IndexStore(data_dir, fast_extractor.model_id, fast_extractor.dim)
    root = tmp_path_factory.mktemp("db")
    for path in (MINI / "images").glob("*.jpg"):
        if path.stem.startswith(("ref_", "wall_")):
            (root / path.name).write_bytes(path.read_bytes())
    sift = SiftExtractor(settings.local_max_side, settings.local_max_keypoints)
    index_directory(root, store, fast_extractor, settings.image_limits(), progress=False, sift=sift)
    store.close()

    env = {"IMSEARCH_DATA_DIR": str(data_dir), "IMSEARCH_MAX_UPLOAD_BYTES": "300000"}
    with running(Server(env)) as served:
        yield served.url


def upload(url: str, data: bytes, name: str = "q.jpg", **params) -> httpx.Response:
    return httpx.post(f"{url}/v1/search", files={"image": (name, data)}, params=params, timeout=60)


def test_search_finds_the_cover(server: str) -> None:
    data = (MINI / "images" / "droid_002.jpg").read_bytes()
    response = upload(server, data, k=3)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["results"][0]["id"] == "ref_002"
    assert len(body["results"]) == 3 and body["k"] == 3
    assert body["results"][0]["metadata"]["path"] == "ref_002.jpg"
    assert set(body["timings_ms"]) == {"extract", "search", "rerank", "total"}
    assert body["cache"] == "miss"
    assert upload(server, data, k=3).json()["cache"] == "hit"  # same bytes: descriptors cached


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        (b"", 400, "empty_image"),
        (b"definitely not an image", 400, "image_decode_error"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 100, 400, "image_decode_error"),
        (b"x" * 300_001, 413, "image_too_large"),
    ],
)
def test_bad_uploads_get_json_errors(server: str, payload: bytes, status: int, code: str) -> None:
    response = upload(server, payload)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]


def test_unsupported_format_and_bad_parameters(server: str) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32)).save(buffer, format="PPM")
    assert upload(server, buffer.getvalue()).json()["error"]["code"] == "unsupported_format"
    data = (MINI / "images" / "ref_001.jpg").read_bytes()
    assert upload(server, data, k=0).json()["error"]["code"] == "validation_error"
    too_many = upload(server, data, k=10_000)
    assert too_many.status_code == 400 and too_many.json()["error"]["code"] == "config_error"
    missing = httpx.post(f"{server}/v1/search", data={"x": "1"}, timeout=10)
    assert missing.status_code == 422 and missing.json()["error"]["code"] == "validation_error"
    assert httpx.get(f"{server}/v1/nothing").json()["error"]["code"] == "not_found"


def test_health_docs_and_still_serving_after_errors(server: str) -> None:
    for _ in range(3):
        upload(server, b"garbage")
    assert httpx.get(f"{server}/healthz").json()["status"] == "ok"
    assert httpx.get(f"{server}/readyz").status_code == 200
    assert httpx.get(f"{server}/docs").status_code == 200
    spec = httpx.get(f"{server}/openapi.json").json()
    assert "/v1/search" in spec["paths"]
    data = (MINI / "images" / "canon_001.jpg").read_bytes()
    assert upload(server, data).json()["results"][0]["id"] == "ref_001"


def test_k_larger_than_the_collection_returns_it_all(server: str) -> None:
    body = upload(server, (MINI / "images" / "ref_005.jpg").read_bytes(), k=100).json()
    assert len(body["results"]) == 10
