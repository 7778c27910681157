"""Bulk indexing on Ray Data (issue 15): the same collection as the local engine."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from imsearch.engine import open_engine
from imsearch.indexing import index_files
from imsearch.settings import Settings
from imsearch.sources import folder_files
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


@pytest.fixture
def http_root(tmp_path: Path):  # type: ignore[no-untyped-def]
    """``tmp_path`` served over HTTP on 127.0.0.1 (a manifest of URLs, read through fsspec)."""
    import functools
    import http.server
    import threading

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_ray_indexes_what_the_local_engine_does(tmp_path: Path, local_ray, http_root) -> None:  # type: ignore[no-untyped-def]
    """The local engine reads a folder; Ray reads the same images through a manifest served
    over HTTP, with the folder's ids: the collections are the same."""
    from imsearch.bulk import index_on_ray
    from imsearch.sources import manifest_files

    source = tmp_path / "photos"
    (source / "covers").mkdir(parents=True)
    for path in (MINI / "images").glob("*.jpg"):
        if path.stem.startswith(("ref_", "wall_")):
            shutil.copy(path, source / "covers" / path.name)
    (source / "broken.jpg").write_bytes(b"not an image")
    files = folder_files(source)
    lines = [f"{shown}\t{ext_id}" for _, ext_id, shown in files] + ["missing.jpg"]
    (source / "list.txt").write_text("\n".join(lines) + "\n")
    listed = manifest_files(f"{http_root}/photos/list.txt")
    assert all(str(location).startswith("http://") for location, _, _ in listed)
    local = open_engine(_settings(tmp_path / "local"))
    index_files(files, local.store, local.extractor, local.settings.image_limits(), 4, False,
                local.sift)  # fmt: skip
    bulk = open_engine(_settings(tmp_path / "ray"))
    report = index_on_ray(listed, bulk.store, bulk.settings, progress=False)
    assert report.added == 10
    assert sorted(f for f, _ in report.failed) == ["broken.jpg", "missing.jpg"]
    assert "unreadable" in dict(report.failed)["missing.jpg"]  # a 404, reported

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

    again = index_on_ray(listed, bulk.store, bulk.settings, progress=False)  # resumable
    assert again.added == 0 and again.skipped == 10
    found = bulk.pipeline.search((MINI / "images" / "droid_002.jpg").read_bytes(), 3)
    assert found.hits[0].id == "covers/ref_002" and found.hits[0].verified
    local.close()
    bulk.close()


@pytest.mark.slow  # minutes of CPU: make test-all
def test_a_killed_driver_resumes_to_the_same_collection(tmp_path: Path) -> None:
    """SIGKILL `imsearch index --engine ray` once some batches are committed, run it again:
    the collection equals a clean run's (every committed batch kept, nothing twice)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from imsearch.index.catalog import Catalog

    source = tmp_path / "photos"
    for copy in range(6):  # 60 files: four Ray batches of 16
        (source / f"c{copy}").mkdir(parents=True)
        for path in (MINI / "images").glob("*.jpg"):
            if path.stem.startswith(("ref_", "wall_")):
                shutil.copy(path, source / f"c{copy}" / path.name)
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMSEARCH_")}
    env |= {"IMSEARCH_BACKBONE": "efficientnet_lite0", "IMSEARCH_MAX_SIDE": "256",
            "IMSEARCH_SCALES": "1", "IMSEARCH_DEVICE": "cpu"}  # fmt: skip
    command = [sys.executable, "-m", "imsearch.cli", "index", str(source), "--engine", "ray",
               "--no-progress"]  # fmt: skip

    def index(data_dir: Path, kill_after: int | None = None) -> None:
        run_env = env | {"IMSEARCH_DATA_DIR": str(data_dir)}
        proc = subprocess.Popen(command, env=run_env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        catalog_path = data_dir / "catalog.sqlite"
        while kill_after is not None and proc.poll() is None:
            if catalog_path.exists() and _count(catalog_path) >= kill_after:
                os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray it started
                break
            time.sleep(0.05)
        assert proc.wait(timeout=600) == (-signal.SIGKILL if kill_after else 0)

    def _count(path: Path) -> int:
        import sqlite3

        catalog = Catalog(path, readonly=True)
        try:
            return catalog.count()
        except sqlite3.OperationalError:  # the file exists, its schema not yet
            return 0
        finally:
            catalog.close()

    index(tmp_path / "killed", kill_after=16)
    assert 16 <= _count(tmp_path / "killed" / "catalog.sqlite") < 60
    index(tmp_path / "killed")
    index(tmp_path / "clean")
    killed = Catalog(tmp_path / "killed" / "catalog.sqlite", readonly=True)
    clean = Catalog(tmp_path / "clean" / "catalog.sqlite", readonly=True)
    assert killed.count() == clean.count() == 60
    assert killed.hashes_by_id() == clean.hashes_by_id()
    ids = list(clean.hashes_by_id())
    assert killed.info(ids) == clean.info(ids)


@pytest.mark.slow  # two Ray runs in subprocesses, ~90 s: make test-all
def test_with_a_search_service_running_the_bulk_job_writes_through_it(tmp_path: Path) -> None:
    """The search service owns the data directory (its one writer): --engine ray with
    IMSEARCH_SEARCH_URL sends the finished batches to it, into a collection it creates."""
    import os
    import subprocess
    import sys

    import httpx

    from tests.procs import INTERNAL_TOKEN, TOKEN, Server, running

    source = tmp_path / "photos"
    source.mkdir()
    for path in (MINI / "images").glob("*.jpg"):
        if path.stem.startswith(("ref_", "wall_")):
            shutil.copy(path, source / path.name)
    common = {"IMSEARCH_INTERNAL_TOKEN": INTERNAL_TOKEN}
    with running(
        Server({**common, "IMSEARCH_DATA_DIR": str(tmp_path / "data")}, "search")
    ) as search:
        env = {k: v for k, v in os.environ.items() if not k.startswith("IMSEARCH_")}
        env |= {"IMSEARCH_BACKBONE": "efficientnet_lite0", "IMSEARCH_MAX_SIDE": "256",
                "IMSEARCH_SCALES": "1", "IMSEARCH_DEVICE": "cpu", **common,
                "IMSEARCH_SEARCH_URL": search.url,
                "IMSEARCH_DATA_DIR": str(tmp_path / "unused")}  # fmt: skip
        command = [sys.executable, "-m", "imsearch.cli", "index", str(source), "--engine", "ray",
                   "--collection", "bulk", "--no-progress"]  # fmt: skip
        first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        assert first.returncode == 0, first.stderr[-2000:]
        assert "added 10" in first.stdout
        again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        assert "added 0" in again.stdout and "skipped 10" in again.stdout, again.stdout
        stats = httpx.get(f"{search.url}/v1/stats?collection=bulk", headers=TOKEN).json()
        assert stats["count"] == 10
    assert (tmp_path / "data" / "collections" / "bulk" / "catalog.sqlite").exists()
    assert not (tmp_path / "unused").exists()  # the job never opened a data directory


@pytest.mark.slow  # minutes of CPU: make test-all
def test_a_killed_worker_is_retried_and_the_result_is_complete(tmp_path: Path, local_ray) -> None:  # type: ignore[no-untyped-def]
    """SIGKILL the network actor's process mid-run: Ray restarts it and retries its batches;
    every image is indexed once."""
    import os
    import signal
    import threading
    import time

    from imsearch.bulk import index_on_ray

    source = tmp_path / "photos"
    for copy in range(6):
        (source / f"c{copy}").mkdir(parents=True)
        for path in (MINI / "images").glob("*.jpg"):
            if path.stem.startswith(("ref_", "wall_")):
                shutil.copy(path, source / f"c{copy}" / path.name)
    files = folder_files(source)
    bulk = open_engine(_settings(tmp_path / "ray"))
    killed: list[int] = []

    def kill_the_actor() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            if bulk.store.catalog.count() >= 16:  # a batch is in; the actor is at work
                for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
                    try:
                        text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
                    except OSError:
                        continue
                    if "_Embed" in text:  # Ray names the actor's process after it
                        pid = int(cmdline.parent.name)
                        os.kill(pid, signal.SIGKILL)
                        killed.append(pid)
                        return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_the_actor)
    killer.start()
    report = index_on_ray(files, bulk.store, bulk.settings, progress=False)
    killer.join()
    assert killed, "no network actor process was found to kill"
    assert report.added == 60 and not report.failed
    assert bulk.store.catalog.count() == 60
    bulk.close()
