"""The generated clients (issue 17): in step with the API, and working against real servers —
the Python client in this process, the TypeScript client under Node — embedded and as the
four services, including the answers to hostile inputs."""

from __future__ import annotations

import filecmp
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from imsearch_client import AuthenticatedClient, Client
from imsearch_client.api.collection import (
    add_image,
    add_image_in_collection,
    delete_image,
    get_image,
    get_stats,
    get_stats_in_collection,
    get_thumbnail,
)
from imsearch_client.api.collections import (
    create_collection,
    drop_collection,
    list_collections,
)
from imsearch_client.api.search import search, search_in_collection
from imsearch_client.models import (
    AddResponse,
    BodyAddImage,
    BodyAddImageInCollection,
    BodySearch,
    BodySearchInCollection,
    CollectionCreate,
    CollectionInfo,
    CollectionList,
    ErrorBody,
    ImageInfo,
    SearchResponse,
    Stats,
)
from imsearch_client.types import File

from services.gateway.openapi import public_spec, render
from tests.conftest import MINI
from tests.procs import API_KEY, Server, cluster, redis_server

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = ROOT / "clients"
TS = CLIENTS / "typescript"
COVER, PHOTO, OTHER = (MINI / "images" / f"{n}.jpg" for n in ("ref_002", "droid_002", "ref_005"))
#: Small enough to try an oversized upload cheaply; real photos stay under it.
UPLOAD_LIMIT = 1_500_000


def test_the_committed_openapi_description_is_the_code_s() -> None:
    assert (CLIENTS / "openapi.json").read_text() == render(public_spec()), (
        "the public API changed: run `make clients` and commit clients/"
    )


def test_the_python_client_is_what_the_generator_makes_of_it(tmp_path: Path) -> None:
    out = tmp_path / "python"
    bin_dir = Path(sys.executable).parent
    generator = str(bin_dir / "openapi-python-client")
    subprocess.run(
        [generator, "generate", "--path", str(CLIENTS / "openapi.json"),
         "--output-path", str(out), "--meta", "setup", "--config",
         str(CLIENTS / "python-config.yaml"), "--custom-template-path",
         str(CLIENTS / "python-templates"), "--fail-on-warning"],
        check=True, capture_output=True, env={**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin"},
    )  # fmt: skip
    assert _differences(out, CLIENTS / "python") == []


def test_the_typescript_client_is_what_the_generator_makes_of_it(tmp_path: Path) -> None:
    schema = tmp_path / "schema.d.ts"
    subprocess.run(
        [str(TS / "node_modules" / ".bin" / "openapi-typescript"), "../openapi.json",
         "--output", str(schema)],
        cwd=TS, check=True, capture_output=True,
    )  # fmt: skip
    assert schema.read_text() == (TS / "src" / "schema.d.ts").read_text()
    shutil.copytree(TS, tmp_path / "ts", ignore=shutil.ignore_patterns("node_modules", "dist"))
    (tmp_path / "ts" / "node_modules").symlink_to(TS / "node_modules")
    subprocess.run(["npm", "run", "--silent", "build"], cwd=tmp_path / "ts", check=True,
                   capture_output=True)  # fmt: skip
    assert _differences(tmp_path / "ts" / "dist", TS / "dist") == []


def _differences(left: Path, right: Path) -> list[str]:
    """Files that differ or exist on one side only (caches and build metadata aside)."""
    ignore = [".ruff_cache", "__pycache__", "imsearch_client.egg-info", "node_modules"]
    found: list[str] = []

    def walk(cmp: filecmp.dircmp) -> None:
        found.extend(f"{cmp.left}: {name}" for name in cmp.left_only + cmp.right_only)
        found.extend(f"{cmp.left}/{name} differs" for name in cmp.diff_files)
        for sub in cmp.subdirs.values():
            walk(sub)

    walk(filecmp.dircmp(left, right, ignore=ignore))
    return found


# -- against real servers ----------------------------------------------------------------------


@pytest.fixture(scope="module", params=["embedded", "services"])
def gateway(request, tmp_path_factory) -> Iterator[str]:
    limits = {"IMSEARCH_MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT)}
    root = tmp_path_factory.mktemp(request.param)
    if request.param == "embedded":
        server = Server({"IMSEARCH_DATA_DIR": str(root), "IMSEARCH_API_KEYS": API_KEY, **limits})
        yield server.start().url
        server.stop()
        return
    with (
        redis_server(root) as redis_url,
        cluster(root, redis_url, extra_env={"gateway": limits}) as services,
    ):
        yield services.urls["gateway"]


def _file(path: Path) -> File:
    return File(payload=path.open("rb"), file_name=path.name, mime_type="image/jpeg")


def test_python_client_search_add_get_delete_stats(gateway: str) -> None:
    client = AuthenticatedClient(
        base_url=gateway, token=API_KEY, auth_header_name="X-API-Key", prefix="", timeout=120
    )
    before = get_stats.sync(client=client)
    assert isinstance(before, Stats)

    added = add_image.sync(
        client=client,
        body=BodyAddImage(id="py/cover", image=_file(COVER), metadata='{"title": "cover"}'),
    )
    assert isinstance(added, AddResponse) and added.created and len(added.sha256 or "") == 64
    info = get_image.sync("py/cover", client=client)
    assert isinstance(info, ImageInfo) and info.metadata.additional_properties == {"title": "cover"}

    found = search.sync(client=client, body=BodySearch(image=_file(PHOTO)), k=3)
    assert isinstance(found, SearchResponse)
    assert found.results[0].id == "py/cover" and found.results[0].verified
    assert found.results[0].metadata.additional_properties == {"title": "cover"}

    thumbnail = get_thumbnail.sync_detailed("py/cover", client=client)
    assert thumbnail.status_code == 200 and thumbnail.content[:3] == b"\xff\xd8\xff"

    stats = get_stats.sync(client=client)
    assert isinstance(stats, Stats) and stats.count == before.count + 1
    assert "index" in stats.additional_properties  # the untyped details come through

    deleted = delete_image.sync("py/cover", client=client)
    assert deleted is not None and not isinstance(deleted, ErrorBody) and deleted.deleted
    gone = get_image.sync_detailed("py/cover", client=client)
    assert gone.status_code == 404
    assert isinstance(gone.parsed, ErrorBody) and gone.parsed.error.code == "unknown_id"


def test_python_client_collections_and_filters(gateway: str) -> None:
    client = AuthenticatedClient(
        base_url=gateway, token=API_KEY, auth_header_name="X-API-Key", prefix="", timeout=120
    )
    created = create_collection.sync(client=client, body=CollectionCreate(name="py-shop"))
    assert isinstance(created, CollectionInfo) and created.name == "py-shop" and created.count == 0
    for image_id, path, shelf in (("cover", COVER, "top"), ("other", OTHER, "bottom")):
        body = BodyAddImageInCollection(
            id=image_id, image=_file(path), metadata=json.dumps({"shelf": shelf})
        )
        assert add_image_in_collection.sync("py-shop", client=client, body=body).created  # type: ignore[union-attr]
    found = search_in_collection.sync(
        "py-shop", client=client, body=BodySearchInCollection(image=_file(PHOTO)), k=5
    )
    assert isinstance(found, SearchResponse) and found.results[0].id == "cover"
    bottom = search_in_collection.sync(
        "py-shop",
        client=client,
        body=BodySearchInCollection(image=_file(PHOTO), filter_='{"shelf": "bottom"}'),
        k=5,
    )
    assert isinstance(bottom, SearchResponse) and [h.id for h in bottom.results] == ["other"]
    stats = get_stats_in_collection.sync("py-shop", client=client)
    assert isinstance(stats, Stats) and stats.count == 2
    listed = list_collections.sync(client=client)
    assert isinstance(listed, CollectionList)
    assert "py-shop" in [c.name for c in listed.collections]
    dropped = drop_collection.sync("py-shop", client=client)
    assert dropped is not None and not isinstance(dropped, ErrorBody) and dropped.dropped
    gone = get_stats_in_collection.sync_detailed("py-shop", client=client)
    assert isinstance(gone.parsed, ErrorBody) and gone.parsed.error.code == "unknown_collection"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (lambda: BodySearch(image=File(payload=b"\x00" * 100, file_name="x.jpg")), 400,
         "image_decode_error"),
        (lambda: BodySearch(image=File(payload=b"", file_name="empty.jpg")), 400, "empty_image"),
        (lambda: BodySearch(image=File(payload=os.urandom(UPLOAD_LIMIT + 1), file_name="big.jpg")),
         413, "image_too_large"),
        (lambda: BodySearch(image=File(payload=b"<html></html>", file_name="p.html")), 400,
         "image_decode_error"),
    ],
)  # fmt: skip
def test_python_client_hostile_uploads_get_the_documented_codes(
    gateway: str, body, status: int, code: str
) -> None:
    client = Client(base_url=gateway, timeout=120)
    reply = search.sync_detailed(client=client, body=body())
    assert reply.status_code == status
    assert isinstance(reply.parsed, ErrorBody) and reply.parsed.error.code == code


def test_python_client_refused_writes_are_typed_errors(gateway: str) -> None:
    anonymous = Client(base_url=gateway, timeout=120)
    refused = add_image.sync_detailed(
        client=anonymous, body=BodyAddImage(id="x", image=_file(COVER))
    )
    assert refused.status_code == 401
    assert isinstance(refused.parsed, ErrorBody) and refused.parsed.error.code == "unauthorized"

    keyed = AuthenticatedClient(
        base_url=gateway, token=API_KEY, auth_header_name="X-API-Key", prefix="", timeout=120
    )
    bad_id = add_image.sync_detailed(
        client=keyed, body=BodyAddImage(id="../up", image=_file(COVER))
    )
    bad_meta = add_image.sync_detailed(
        client=keyed, body=BodyAddImage(id="ok", image=_file(COVER), metadata="[1, 2]")
    )
    bad_k = search.sync_detailed(client=keyed, body=BodySearch(image=_file(PHOTO)), k=0)
    answers = [(r.status_code, r.parsed.error.code) for r in (bad_id, bad_meta, bad_k)]  # type: ignore[union-attr]
    assert answers == [(400, "invalid_id"), (400, "config_error"), (422, "validation_error")]


def test_typescript_client_under_node(gateway: str) -> None:
    node = shutil.which("node")
    assert node, "Node.js 18+ is needed for the TypeScript client's test"
    photo = MINI / "images" / "droid_005.jpg"
    proc = subprocess.run(
        [node, "test/calls.mjs", gateway, API_KEY, str(OTHER), str(photo)],
        cwd=TS, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    assert seen["added"]["created"] is True and seen["again"] is False
    assert seen["info"]["metadata"] == {"source": "node", "year": 2024}
    assert seen["top"] == "ts/cover" and seen["verified"] is True
    assert seen["thumbnail"] == "image/jpeg"
    assert seen["no_key"] == {"status": 401, "code": "unauthorized"}
    assert seen["garbage"] == {"status": 400, "code": "image_decode_error"}
    assert seen["bad_k"] == {"status": 422, "code": "validation_error"}
    assert seen["deleted"] is True and seen["gone"] == {"status": 404, "code": "unknown_id"}
    assert seen["after"] == seen["before"]
    assert seen["shop_top"] == ["cover"] and seen["shop_none"] == 0
    assert seen["shop_default"] is False  # the default collection never saw it
    assert "ts-shop" in seen["collections"] and seen["dropped"] is True
    assert seen["shop_gone"] == {"status": 404, "code": "unknown_collection"}


def test_the_kotlin_client_is_what_the_generator_makes_of_it(tmp_path: Path) -> None:
    out = tmp_path / "kotlin"
    out.mkdir()
    shutil.copy(CLIENTS / "kotlin" / ".openapi-generator-ignore", out)
    script = (ROOT / "scripts" / "generate-clients.sh").read_text()
    properties = next(w for w in script.split() if w.startswith("--additional-properties="))
    subprocess.run(
        [str(Path(sys.executable).parent / "openapi-generator-cli"), "generate",
         "--input-spec", str(CLIENTS / "openapi.json"), "--generator-name", "kotlin",
         "--output", str(out), "--skip-validate-spec", properties],
        check=True, capture_output=True,
    )  # fmt: skip
    (out / "README.md").write_text((CLIENTS / "kotlin" / "README.md").read_text())  # ours
    assert _differences(out, CLIENTS / "kotlin") == []
