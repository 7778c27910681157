"""Collections: layout, names, create/drop on disk, lazy opening within bounds, upgrades."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from imsearch import collection as C
from imsearch.errors import (
    CollectionExists,
    IndexNotReady,
    InvalidCollectionName,
    ModelMismatch,
    UnknownCollection,
)
from imsearch.index.catalog import Catalog, Item
from imsearch.index.features import FeatureWriter
from imsearch.index.store import IndexStore
from imsearch.settings import Settings
from tests.conftest import DATA


def _settings(root: Path, **extra: object) -> Settings:
    return Settings(data_dir=root, local_features=False, **extra)  # type: ignore[arg-type]


def _items(prefix: str, n: int, dim: int = 8) -> list[Item]:
    rng = np.random.default_rng(len(prefix))
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return [Item(f"{prefix}{i}", vectors[i], None, {"i": i}) for i in range(n)]


@pytest.mark.parametrize("name", ["", "A", "-x", "a/b", "a" * 64, "..", "é", "a b"])
def test_names_follow_one_rule(name: str) -> None:
    with pytest.raises(InvalidCollectionName):
        C.check_name(name)
    assert C.check_name("shop-a_2") == "shop-a_2"


def test_default_is_the_data_directory_others_live_beside_it(tmp_path: Path) -> None:
    assert C.collection_dir(tmp_path, "default") == tmp_path
    assert C.collection_dir(tmp_path, "shop") == tmp_path / "collections" / "shop"
    remote = Settings(data_dir=tmp_path, feature_store="s3://bucket/data/features")
    assert C.feature_location(remote, "default") == "s3://bucket/data/features"
    assert C.feature_location(remote, "shop") == "s3://bucket/data/collections/shop/features"


def test_collections_are_separate_and_dropping_removes_the_files(tmp_path: Path) -> None:
    registry = C.Collections(_settings(tmp_path), "model-x", 8)
    registry.create("shop-a")
    registry.create("shop-b", "hnsw")
    with pytest.raises(CollectionExists):
        registry.create("shop-a")
    with registry.use("shop-a") as a, registry.use("shop-b") as b:
        a.store.add(_items("a", 5))
        b.store.add(_items("b", 3))
        query = _items("a", 5)[0].vector[None]
        assert {h.id for h in a.store.search(query, 10)[0]} == {f"a{i}" for i in range(5)}
        assert {h.id for h in b.store.search(query, 10)[0]} == {f"b{i}" for i in range(3)}
    assert [c["name"] for c in registry.describe_all()] == ["default", "shop-a", "shop-b"]
    assert registry.describe("shop-b")["index_spec"] == "hnsw"
    assert registry.describe("shop-a")["count"] == 5
    registry.drop("shop-a")
    assert not (tmp_path / "collections" / "shop-a").exists()
    assert registry.names() == ["default", "shop-b"]
    with pytest.raises(UnknownCollection):
        registry.use("shop-a").__enter__()
    with pytest.raises(CollectionExists):
        registry.drop("default")
    registry.close()


def test_a_name_created_again_is_a_new_generation(tmp_path: Path) -> None:
    registry = C.Collections(_settings(tmp_path), "model-x", 8)
    registry.create("shop")
    with registry.use("shop") as first:
        generation = first.generation
        first.store.add(_items("old", 2))
    registry.drop("shop")
    registry.create("shop")
    with registry.use("shop") as second:
        assert second.generation and second.generation != generation
        assert len(second.store) == 0  # nothing of the dropped one
    registry.close()


def test_another_model_is_refused(tmp_path: Path) -> None:
    C.Collections(_settings(tmp_path), "model-x", 8).create("shop")
    other = C.Collections(_settings(tmp_path), "model-y", 8)
    with pytest.raises(ModelMismatch):
        other.use("shop").__enter__()


def test_open_collections_stay_within_bounds(tmp_path: Path) -> None:
    registry = C.Collections(_settings(tmp_path, max_open_collections=2), "model-x", 8)
    for name in ("a", "b", "c"):
        registry.create(name)
        with registry.use(name) as opened:
            opened.store.add(_items(name, 2))
    assert len(registry.open_names()) == 2 and "a" not in registry.open_names()
    with registry.use("a") as opened:  # reopened from disk, all there
        assert len(opened.store) == 2
        with registry.use("b"), registry.use("c"):  # three in use at once: none is closed
            assert len(registry.open_names()) == 3
    registry.upkeep(lambda _: None)
    assert len(registry.open_names()) == 2
    idle = C.Collections(_settings(tmp_path, collection_idle_s=0.01), "model-x", 8)
    with idle.use("a"):
        pass
    time.sleep(0.05)
    idle.upkeep(lambda _: None)
    assert idle.open_names() == []
    registry.close()


def test_dropping_waits_for_the_requests_using_it(tmp_path: Path) -> None:
    registry = C.Collections(_settings(tmp_path), "model-x", 8)
    registry.create("shop")
    entered, release = threading.Event(), threading.Event()

    def request() -> None:
        with registry.use("shop") as opened:
            entered.set()
            release.wait(5)
            opened.store.search(_items("q", 1)[0].vector[None], 1)  # still open: no error

    worker = threading.Thread(target=request)
    worker.start()
    entered.wait(5)
    dropper = threading.Thread(target=registry.drop, args=("shop",))
    dropper.start()
    time.sleep(0.1)
    assert (tmp_path / "collections" / "shop").exists()  # waiting for the request
    release.set()
    worker.join(5)
    dropper.join(5)
    assert not (tmp_path / "collections" / "shop").exists()


def test_crash_leftovers_are_swept(tmp_path: Path) -> None:
    (tmp_path / "collections" / ".new-x-1234").mkdir(parents=True)
    (tmp_path / "collections" / ".drop-y-5678").mkdir()
    C.Collections(_settings(tmp_path), "model-x", 8)
    assert list((tmp_path / "collections").iterdir()) == []


def test_a_data_directory_of_today_is_the_default_collection(tmp_path: Path) -> None:
    """Upgrade: what an earlier version wrote at the top of the data directory is served as
    ``default``, nothing moved and nothing lost."""
    store = IndexStore(tmp_path, "model-x", 8)
    store.add(_items("old", 7))
    FeatureWriter(tmp_path / "features").append([b"keypoints"])
    store.close()
    before = sorted(p.name for p in tmp_path.iterdir())
    registry = C.Collections(_settings(tmp_path), "model-x", 8)
    with registry.use("default") as opened:
        assert len(opened.store) == 7
        assert opened.store.catalog.info(["old3"])["old3"][1] == {"i": 3}
    registry.create("new")
    assert [c["name"] for c in registry.describe_all()] == ["default", "new"]
    registry.close()
    after = sorted(p.name for p in tmp_path.iterdir() if p.name != "collections")
    assert set(before) <= set(after)


def test_a_first_version_data_directory_is_the_default_collection(tmp_path: Path) -> None:
    shutil.copytree(DATA / "legacy-v1", tmp_path / "data")
    expected = Catalog(tmp_path / "data" / "catalog.sqlite", readonly=True).count()
    registry = C.Collections(_settings(tmp_path / "data"))
    assert registry.describe("default")["count"] == expected > 0
    with registry.use("default") as opened:
        assert len(opened.store) == expected
    registry.close()


def test_default_without_images_reads_as_empty(tmp_path: Path) -> None:
    registry = C.Collections(_settings(tmp_path), readonly=True)
    assert registry.read("default", lambda o: len(o.store), -1) == -1
    with pytest.raises(IndexNotReady):
        registry.use("default").__enter__()
    with pytest.raises(UnknownCollection):
        registry.read("nope", lambda o: 0, -1)
