"""Two collections behind one deployment, through the public API: the embedded server and the
four services as real processes. Searches stay in their collection, filters hold exactly, keys
limited to a collection are refused elsewhere, and dropping one removes its files."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import MINI
from tests.procs import API_KEY, Server, cluster, redis_server, running

ADMIN = {"X-API-Key": API_KEY}
ACME = {"X-API-Key": "acme-key-0123456789abcdef"}  # write on shop-a only
GLOBEX = {"X-API-Key": "globex-key-0123456789abcdef"}  # read on shop-b only
KEYS = {
    "IMSEARCH_API_KEYS": f"tests:{API_KEY},acme:{ACME['X-API-Key']},globex:{GLOBEX['X-API-Key']}",
    "IMSEARCH_API_KEY_SCOPES": "acme=shop-a:write;globex=shop-b:read",
    "IMSEARCH_SEARCH_REQUIRES_KEY": "1",
}
SHOP_A = ["ref_001", "ref_002", "ref_003", "wall_altai"]
SHOP_B = ["ref_004", "ref_005", "ref_006", "wall_autumn"]


@pytest.fixture(scope="module", params=["embedded", "services"])
def deployment(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[tuple[str, Path]]:  # type: ignore[no-untyped-def]
    """The gateway's URL and the data directory that holds the collections."""
    root = tmp_path_factory.mktemp(request.param)
    if request.param == "embedded":
        env = {"IMSEARCH_DATA_DIR": str(root / "data"), **KEYS}
        with running(Server(env)) as served:
            yield served.url, root / "data"
        return
    with (
        redis_server(tmp_path_factory.mktemp("redis")) as redis_url,
        cluster(root, redis_url, extra_env={"gateway": KEYS}) as services,
    ):
        yield services.urls["gateway"], root / "search"


def _add(
    url: str, collection: str, image_id: str, meta: dict[str, object], key: dict[str, str]
) -> httpx.Response:
    path = MINI / "images" / f"{image_id}.jpg"
    return httpx.post(
        f"{url}/v1/collections/{collection}/images",
        files={"image": (path.name, path.read_bytes())},
        data={"id": image_id, "metadata": json.dumps(meta)},
        headers=key,
        timeout=60,
    )


def _search(
    url: str, collection: str, query: str, key: dict[str, str], **params: object
) -> httpx.Response:
    path = MINI / "images" / f"{query}.jpg"
    data = {"filter": params.pop("form_filter")} if "form_filter" in params else None
    return httpx.post(
        f"{url}/v1/collections/{collection}/search",
        files={"image": (path.name, path.read_bytes())},
        data=data,
        params=params,
        headers=key,
        timeout=60,
    )


def _ids(reply: httpx.Response) -> list[str]:
    assert reply.status_code == 200, reply.text
    return [hit["id"] for hit in reply.json()["results"]]


def test_two_collections_filters_keys_and_drop(deployment: tuple[str, Path]) -> None:
    url, data_dir = deployment
    for name in ("shop-a", "shop-b"):
        created = httpx.post(f"{url}/v1/collections", json={"name": name}, headers=ADMIN)
        assert created.status_code == 201, created.text
        assert created.json()["name"] == name and created.json()["count"] == 0
    again = httpx.post(f"{url}/v1/collections", json={"name": "shop-a"}, headers=ADMIN)
    assert again.status_code == 409 and again.json()["error"]["code"] == "collection_exists"
    bad = httpx.post(f"{url}/v1/collections", json={"name": "Shop A"}, headers=ADMIN)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_collection_name"

    for year, image_id in enumerate(SHOP_A, 1990):
        brand = "acme" if image_id.startswith("ref") else "other"
        assert (
            _add(url, "shop-a", image_id, {"brand": brand, "year": year}, ACME).status_code == 201
        )
    for image_id in SHOP_B:
        assert _add(url, "shop-b", image_id, {"brand": "globex"}, ADMIN).status_code == 201

    # Each collection answers with its own images only.
    in_a = _ids(_search(url, "shop-a", "droid_002", ACME, k=10))
    assert in_a[0] == "ref_002" and set(in_a) <= set(SHOP_A)
    reply_b = _search(url, "shop-b", "droid_002", GLOBEX, k=10)
    assert set(_ids(reply_b)) <= set(SHOP_B) and reply_b.json()["no_confident_match"] is True
    assert _ids(_search(url, "shop-b", "canon_004", GLOBEX, k=3))[0] == "ref_004"
    default = httpx.get(f"{url}/v1/stats", headers=ADMIN).json()
    assert default["count"] == 0  # the old routes are the collection "default"
    stats_a = httpx.get(f"{url}/v1/collections/shop-a/stats", headers=ACME).json()
    assert stats_a["count"] == len(SHOP_A)

    # Filters: exactly the matching images, from the query string or the form.
    where = json.dumps({"brand": "acme", "year": {"gte": 1991}})
    filtered = _ids(_search(url, "shop-a", "droid_002", ACME, k=10, filter=where))
    assert filtered[0] == "ref_002" and set(filtered) == {"ref_002", "ref_003"}
    by_form = _ids(_search(url, "shop-a", "droid_002", ACME, k=10, form_filter=where))
    assert by_form == filtered
    none = _search(url, "shop-a", "droid_002", ACME, filter='{"year": {"lt": 1990}}')
    assert _ids(none) == [] and none.json()["no_confident_match"] is True
    broken = _search(url, "shop-a", "droid_002", ACME, filter='{"year": {"about": 3}}')
    assert broken.status_code == 400 and broken.json()["error"]["code"] == "config_error"

    # Keys limited to a collection: 403 anywhere else; read-only keys cannot write.
    forbidden = [
        _search(url, "shop-b", "droid_002", ACME),
        _add(url, "shop-b", "ref_001", {}, ACME),
        _add(url, "shop-b", "ref_001", {}, GLOBEX),
        httpx.get(f"{url}/v1/stats", headers=ACME),
        httpx.post(f"{url}/v1/collections", json={"name": "mine"}, headers=ACME),
        httpx.delete(f"{url}/v1/collections/shop-a", headers=ACME),
    ]
    for reply in forbidden:
        assert reply.status_code == 403 and reply.json()["error"]["code"] == "forbidden", reply.text
    assert _search(url, "shop-a", "droid_002", {}).status_code == 401
    listed = httpx.get(f"{url}/v1/collections", headers=ACME).json()["collections"]
    assert [c["name"] for c in listed] == ["shop-a"]
    everything = httpx.get(f"{url}/v1/collections", headers=ADMIN).json()["collections"]
    assert [c["name"] for c in everything] == ["default", "shop-a", "shop-b"]

    # Dropping a collection removes its data from disk; the other one is untouched.
    assert (data_dir / "collections" / "shop-a" / "catalog.sqlite").exists()
    dropped = httpx.delete(f"{url}/v1/collections/shop-a", headers=ADMIN)
    assert dropped.status_code == 200 and dropped.json()["dropped"] is True
    assert not (data_dir / "collections" / "shop-a").exists()
    gone = _search(url, "shop-a", "droid_002", ADMIN)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "unknown_collection"
    assert httpx.get(f"{url}/v1/collections/shop-b", headers=ADMIN).json()["count"] == len(SHOP_B)
    assert _ids(_search(url, "shop-b", "canon_004", ADMIN, k=1)) == ["ref_004"]

    # The same name again is a new, empty collection (no cached features of the old one).
    assert (
        httpx.post(f"{url}/v1/collections", json={"name": "shop-a"}, headers=ADMIN).status_code
        == 201
    )
    assert _add(url, "shop-a", "ref_005", {}, ACME).status_code == 201
    assert _ids(_search(url, "shop-a", "droid_002", ACME, k=5)) == ["ref_005"]
    assert _search(url, "shop-a", "droid_005", ACME, k=1).json()["results"][0]["verified"]
