"""The embedded server as a real process over HTTP: search, errors as JSON, still serving."""

from __future__ import annotations

import io
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from PIL import Image

from imsearch.engine import make_sift
from imsearch.index.store import IndexStore
from imsearch.indexing import index_source
from imsearch.rerank.confidence import shipped_model
from imsearch.settings import Settings
from tests.conftest import FAST_ENV, MINI, phone_photo, png_claiming
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
    sift = make_sift(settings)
    index_source(root, store, fast_extractor, settings.image_limits(), progress=False, sift=sift)
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
    missing = httpx.post(f"{server}/v1/search", files={"x": ("x", b"1")}, timeout=10)
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


def test_a_photo_of_two_covers_lists_both_each_with_its_box(server: str) -> None:
    # Two phone photos side by side on a grey wall: each cover is found, verified, and placed.
    left = Image.open(MINI / "images" / "canon_001.jpg").convert("RGB")
    right = Image.open(MINI / "images" / "droid_002.jpg").convert("RGB")
    left.thumbnail((480, 480))
    right.thumbnail((480, 480))
    wall = Image.new("RGB", (1040, 560), (128, 128, 120))
    wall.paste(left, (20, 20))
    wall.paste(right, (540, 20))
    body = upload(server, _encoded(wall, "JPEG", quality=90), k=5).json()
    top = {r["id"]: r for r in body["results"][:2]}
    assert set(top) == {"ref_001", "ref_002"}, body["results"]
    assert body["no_confident_match"] is False
    for result in top.values():
        assert result["verified"] and 0.5 < result["confidence"] <= 1.0
    assert all(not r["verified"] for r in body["results"][2:])
    x1, _, x2, _ = top["ref_001"]["box"]
    assert x1 >= 0.0 and x2 <= 0.55  # the left cover: the left half of the photo
    x1, _, x2, _ = top["ref_002"]["box"]
    assert x1 >= 0.45 and x2 <= 1.0


def test_a_photo_of_something_else_is_no_confident_match(server: str) -> None:
    from skimage import data as samples

    photo = Image.fromarray(samples.astronaut())
    body = upload(server, _encoded(photo, "JPEG", quality=90), k=5).json()
    assert body["no_confident_match"] is True
    assert not any(r["verified"] for r in body["results"])
    threshold = body["rerank"]["min_confidence"]
    assert threshold == shipped_model().threshold  # the calibrated one, reported
    assert all(r["confidence"] is None or r["confidence"] < threshold for r in body["results"])


def _encoded(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def _cover(size: tuple[int, int] = (200, 150)) -> Image.Image:
    return Image.open(MINI / "images" / "ref_004.jpg").convert("RGB").resize(size)


def _animated(fmt: str) -> bytes:
    frames = [_cover(), _cover().rotate(180)]
    return _encoded(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100)


def _sixteen_bit() -> bytes:
    grey = np.asarray(_cover().convert("L"), dtype=np.uint16) * 257
    return _encoded(Image.fromarray(grey), "PNG")


#: Odd but real images: each must be read (any format the engine reads, any mode, any frame
#: count) and searched like any photo.
ACCEPTED = {
    "animated GIF": _animated("GIF"),
    "animated WebP": _animated("WEBP"),
    "CMYK JPEG": _encoded(_cover().convert("CMYK"), "JPEG"),
    "16-bit PNG": _sixteen_bit(),
    "palette PNG with transparency": _encoded(
        _cover().convert("P", palette=Image.Palette.ADAPTIVE), "PNG", transparency=0
    ),
    "RGBA PNG": _encoded(_cover().convert("RGBA"), "PNG"),
    "extreme aspect ratio": _encoded(_cover((4000, 8)), "PNG"),
    "JPEG with an HTML page appended (polyglot)": _encoded(_cover(), "JPEG")
    + b"<html><script>alert(1)</script></html>",
    "PNG named .jpg": _encoded(_cover(), "PNG"),
}

#: Hostile or broken input: each a 4xx JSON error with a stable code.
REFUSED = {
    "1x1 image": (_encoded(Image.new("RGB", (1, 1)), "PNG"), 400, "image_decode_error"),
    "decompression bomb": (png_claiming(100_000, 100_000), 413, "image_too_large"),
    "truncated PNG": (_encoded(_cover(), "PNG")[:300], 400, "image_decode_error"),
    "truncated HEIC": (_encoded(_cover(), "HEIF")[:600], 400, "image_decode_error"),
    "truncated AVIF": (_encoded(_cover(), "AVIF")[:600], 400, "image_decode_error"),
    "HTML only": (b"<html><script>alert(1)</script></html>", 400, "image_decode_error"),
    "GIF header then script (polyglot)": (
        b"GIF89a/*" + b"*/=alert(1)//" * 10,
        400,
        "image_decode_error",
    ),
}


@pytest.mark.parametrize("name", ACCEPTED)
def test_odd_but_real_images_are_searched(server: str, name: str) -> None:
    reply = upload(server, ACCEPTED[name], k=3)
    assert reply.status_code == 200, reply.text
    assert len(reply.json()["results"]) == 3


@pytest.mark.parametrize("name", REFUSED)
@pytest.mark.parametrize("route", ["search", "add"])
def test_hostile_uploads_get_a_stable_code_on_every_route(
    server: str, name: str, route: str
) -> None:
    data, status, code = REFUSED[name]
    if route == "search":
        reply = upload(server, data)
    else:
        reply = httpx.post(
            f"{server}/v1/images", files={"image": ("x.jpg", data)}, data={"id": "h"}, timeout=60
        )
    assert reply.status_code == status, reply.text
    assert reply.json()["error"]["code"] == code


def test_an_exif_rotated_photo_is_searched_upright(server: str) -> None:
    photo = Image.open(MINI / "images" / "canon_004.jpg").convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 8  # "rotate 90° clockwise to display": stored turned the other way
    data = _encoded(photo.rotate(-90, expand=True), "JPEG", exif=exif.tobytes(), quality=92)
    assert upload(server, data, k=1).json()["results"][0]["id"] == "ref_004"


@pytest.mark.parametrize(("fmt", "rotated"), [("HEIF", True), ("AVIF", False), ("AVIF", True)])
def test_phone_formats_find_their_cover(server: str, fmt: str, rotated: bool) -> None:
    """An iPhone's HEIC (held upright: stored turned, rotation in the container) and AVIF."""
    data = phone_photo(MINI / "images" / "canon_004.jpg", fmt, rotated)
    best = upload(server, data, name=f"IMG_0001.{fmt.lower()}", k=1).json()["results"][0]
    assert best["id"] == "ref_004" and best["verified"]


def test_a_heic_image_is_added_to_the_collection(server: str) -> None:
    cover = phone_photo(MINI / "images" / "ref_006.jpg", "HEIF", rotated=True)
    added = httpx.post(
        f"{server}/v1/images", files={"image": ("c.heic", cover)}, data={"id": "heic6"}, timeout=60
    )
    assert added.status_code == 201, added.text
    try:
        photo = (MINI / "images" / "canon_006.jpg").read_bytes()
        top = {hit["id"] for hit in upload(server, photo, k=2).json()["results"]}
        assert top == {"ref_006", "heic6"}  # the HEIC copy is stored upright, like the JPEG
        thumb = httpx.get(f"{server}/v1/images/heic6/thumbnail")
        assert thumb.content[:2] == b"\xff\xd8"
    finally:
        assert httpx.delete(f"{server}/v1/images/heic6").status_code == 200


def test_a_polyglot_is_stored_as_an_image_only(server: str) -> None:
    polyglot = ACCEPTED["JPEG with an HTML page appended (polyglot)"]
    added = httpx.post(
        f"{server}/v1/images", files={"image": ("p.jpg", polyglot)}, data={"id": "poly"}, timeout=60
    )
    assert added.status_code == 201, added.text
    thumb = httpx.get(f"{server}/v1/images/poly/thumbnail")
    # What is served back is the engine's own re-encoded JPEG, never the uploaded bytes.
    assert thumb.headers["content-type"] == "image/jpeg" and thumb.content[:2] == b"\xff\xd8"
    assert b"<script>" not in thumb.content
    assert httpx.delete(f"{server}/v1/images/poly").status_code == 200


@pytest.mark.parametrize(
    ("image_id", "status"),
    [
        ("../../etc/passwd", 400),
        ("a/./b", 400),
        ("a\\b", 400),
        ("nul\x00byte", 400),
        ("new\nline", 400),
        ("\u202eevil.jpg", 400),  # right-to-left override: shows as "gpj.live"
        ("zero\u200bwidth", 400),
        (" padded", 400),
        ("x" * 513, 422),
    ],
)
def test_hostile_ids_are_refused(server: str, image_id: str, status: int) -> None:
    data = (MINI / "images" / "ref_001.jpg").read_bytes()
    reply = httpx.post(
        f"{server}/v1/images", files={"image": ("x.jpg", data)}, data={"id": image_id}, timeout=60
    )
    assert reply.status_code == status, reply.text
    assert reply.json()["error"]["code"] in {"invalid_id", "validation_error"}


@pytest.mark.parametrize(
    ("metadata", "fragment"),
    [
        ("[" * 5000 + "]" * 5000, "nested"),
        ('{"a": "' + "x" * 20_000 + '"}', "larger"),
        ("[1, 2]", "object"),
        ("{not json", "JSON"),
    ],
)
def test_bad_metadata_is_refused(server: str, metadata: str, fragment: str) -> None:
    data = (MINI / "images" / "ref_001.jpg").read_bytes()
    reply = httpx.post(
        f"{server}/v1/images",
        files={"image": ("x.jpg", data)},
        data={"id": "meta", "metadata": metadata},
        timeout=60,
    )
    assert reply.status_code == 400 and reply.json()["error"]["code"] == "config_error"
    assert fragment in reply.json()["error"]["message"]


@pytest.mark.parametrize(
    "params",
    [
        {"k": 0},
        {"k": -1},
        {"k": "ten"},
        {"m": 0},
        {"m": 5000},
        {"min_inliers": 1},
        {"nprobe": 0},
        {"ef_search": 10**9},
        {"k_factor": 0.5},
        {"matches": "maybe"},
    ],
)
def test_parameters_out_of_range(server: str, params: dict) -> None:
    reply = upload(server, (MINI / "images" / "ref_001.jpg").read_bytes(), **params)
    assert reply.status_code == 422 and reply.json()["error"]["code"] == "validation_error"


def test_bodies_of_the_wrong_type_are_415(server: str) -> None:
    for kwargs in (
        {"json": {"image": "aGVsbG8="}},
        {"data": {"image": "x"}},
        {
            "content": (MINI / "images" / "ref_001.jpg").read_bytes(),
            "headers": {"content-type": "image/jpeg"},
        },
        {},
    ):
        reply = httpx.post(f"{server}/v1/search", timeout=10, **kwargs)
        assert reply.status_code == 415, (kwargs.keys(), reply.text)
        assert reply.json()["error"]["code"] == "unsupported_media_type"


def test_a_chunked_upload_over_the_limit_is_cut_off(server: str) -> None:
    """No Content-Length: the limit is enforced on the bytes as they stream in."""
    sent = 0

    def body() -> Iterator[bytes]:
        nonlocal sent
        yield b'--b\r\nContent-Disposition: form-data; name="image"; filename="q.jpg"\r\n\r\n'
        for _ in range(200):  # 12.5 MiB offered, against a 300 kB limit
            sent += 65536
            yield b"\xff" * 65536
        yield b"\r\n--b--\r\n"

    reply = httpx.post(
        f"{server}/v1/search",
        content=body(),
        headers={"content-type": "multipart/form-data; boundary=b"},
        timeout=60,
    )
    assert reply.status_code == 413 and reply.json()["error"]["code"] == "image_too_large"
    assert "300000" in reply.json()["error"]["message"]


def test_still_serving_after_the_hostile_input(server: str) -> None:
    data = (MINI / "images" / "droid_002.jpg").read_bytes()
    assert upload(server, data, k=1).json()["results"][0]["id"] == "ref_002"
