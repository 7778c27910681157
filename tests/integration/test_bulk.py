"""Bulk indexing on Ray Data (issue 15): the same collection as the local engine."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from imsearch.engine import open_engine
from imsearch.indexing import folder_files, index_files
from imsearch.settings import Settings
from tests.conftest import MINI

ray = pytest.importorskip("ray", reason="the bulk extra (pip install -e '.[bulk]')")


@pytest.fixture(scope="module")
def local_ray():  # type: ignore[no-untyped-def]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _settings(root: Path) -> Settings:
    return Settings(
        data_dir=root, backbone="efficientnet_lite0", max_side=256, scales=(1.0,), device="cpu",
        batch_size=4,
    )  # fmt: skip


def test_ray_indexes_what_the_local_engine_does(tmp_path: Path, local_ray) -> None:  # type: ignore[no-untyped-def]
    from imsearch.bulk import index_on_ray

    source = tmp_path / "photos"
    (source / "covers").mkdir(parents=True)
    for path in (MINI / "images").glob("*.jpg"):
        if path.stem.startswith(("ref_", "wall_")):
            shutil.copy(path, source / "covers" / path.name)
    (source / "broken.jpg").write_bytes(b"not an image")
    files = folder_files(source)
    local = open_engine(_settings(tmp_path / "local"))
    index_files(files, local.store, local.extractor, local.settings.image_limits(), 4, False,
                local.sift)  # fmt: skip
    bulk = open_engine(_settings(tmp_path / "ray"))
    report = index_on_ray(files, bulk.store, bulk.settings, progress=False)
    assert report.added == 10 and [f for f, _ in report.failed] == ["broken.jpg"]

    ids_a, vectors_a = local.store.all_vectors()
    ids_b, vectors_b = bulk.store.all_vectors()
    order = {i: n for n, i in enumerate(ids_b)}
    assert sorted(ids_a) == sorted(ids_b)
    cosines = np.einsum("ij,ij->i", vectors_a, vectors_b[[order[i] for i in ids_a]])
    assert cosines.min() >= 0.9999
    assert local.store.catalog.info(ids_a) == bulk.store.catalog.info(ids_a)  # hashes, metadata
    int_a, int_b = local.store.catalog.int_ids_of(ids_a), bulk.store.catalog.int_ids_of(ids_a)
    features_a = local.store.local_features(list(int_a.values()))
    features_b = bulk.store.local_features(list(int_b.values()))
    assert all(features_a[int_a[i]] == features_b[int_b[i]] for i in ids_a)

    again = index_on_ray(files, bulk.store, bulk.settings, progress=False)  # resumable
    assert again.added == 0 and again.skipped == 10
    found = bulk.pipeline.search((MINI / "images" / "droid_002.jpg").read_bytes(), 3)
    assert found.hits[0].id == "covers/ref_002" and found.hits[0].verified
    local.close()
    bulk.close()
