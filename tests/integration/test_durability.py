"""SIGKILL a writer mid-batch: every acknowledged id survives and the index loads cleanly."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from imsearch.index.store import IndexStore
from imsearch.index.vectors import SearchKnobs
from tests.conftest import MINI
from tests.integration._writer import DIM, vector
from tests.procs import Server, running


@pytest.mark.parametrize("spec", ["exact", "hnsw", "ivf-flat"])
def test_acknowledged_writes_survive_sigkill(tmp_path, spec: str) -> None:
    data_dir = tmp_path / "store"
    acked: list[int] = []
    for round_ in range(2):  # kill twice: the second run starts from a recovered store
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.integration._writer", str(data_dir), spec, "400"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            _, lo, hi = line.split()
            acked.extend(range(int(lo), int(hi)))
            if len(acked) >= 800 * (round_ + 1):
                proc.send_signal(signal.SIGKILL)  # mid-batch: the next add is under way
                break
        proc.wait(timeout=60)
        assert proc.returncode == -signal.SIGKILL, proc.stderr.read() if proc.stderr else ""

    store = IndexStore(data_dir, "crash-model", DIM, spec)
    assert len(store) >= len(acked)
    knobs = SearchKnobs(nprobe=64, ef_search=128)
    for i in acked[:: max(1, len(acked) // 200)] + acked[-40:]:
        top = store.search(vector(i), 1, knobs)[0][0]
        assert top.id == f"id{i}" and top.score == pytest.approx(1.0, abs=1e-4)
    count = len(store)
    store.snapshot()
    store.close()
    reopened = IndexStore(data_dir, "crash-model", DIM, spec)
    assert len(reopened) == count and reopened.pending_ops() == 0
    # The requested family is really in use (the IVF one was trained during the run).
    assert reopened.stats()["index"]["fallback"] is None


def test_server_killed_during_api_adds_keeps_every_acknowledged_image(tmp_path) -> None:
    """The embedded server, SIGKILLed while clients add images over HTTP: after a restart
    every image it acknowledged (201) is there, searchable, and the index opens cleanly."""
    photos = sorted((MINI / "images").glob("*.jpg"))
    server = Server({"IMSEARCH_DATA_DIR": str(tmp_path / "data")})
    acked: dict[str, Path] = {}
    failed: list[str] = []

    def client(worker: int) -> None:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            for i in range(40):
                image_id, photo = f"w{worker}/{i}", photos[(worker * 7 + i) % len(photos)]
                try:
                    reply = http.post(
                        "/v1/images",
                        files={"image": (photo.name, photo.read_bytes())},
                        data={"id": image_id},
                    )
                except httpx.TransportError:
                    return  # the server is gone: this add was never acknowledged
                if reply.status_code == 201:
                    acked[image_id] = photo
                else:
                    failed.append(reply.text)

    with running(server):
        threads = [threading.Thread(target=client, args=(w,)) for w in range(3)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 120
        while len(acked) < 15:
            assert time.monotonic() < deadline and not failed, failed
            time.sleep(0.02)
        server.kill()  # three adds are in flight
        for thread in threads:
            thread.join(timeout=60)
        assert not failed and len(acked) < 120

        server.start()
        count = httpx.get(f"{server.url}/v1/stats").json()["count"]
        assert len(acked) <= count <= len(acked) + 3  # at most the in-flight ones besides
        for image_id in acked:
            assert httpx.get(f"{server.url}/v1/images/{image_id}").status_code == 200, image_id
        photo = next(iter(acked.values()))
        reply = httpx.post(
            f"{server.url}/v1/search",
            files={"image": (photo.name, photo.read_bytes())},
            params={"k": 120, "rerank": "none"},
            timeout=60,
        )
        found = {hit["id"] for hit in reply.json()["results"]}
        assert {i for i, p in acked.items() if p == photo} <= found


@pytest.mark.parametrize(
    ("step", "kept"),
    [
        ("features-unsynced", False),
        ("features-synced", False),
        ("committed", True),
        ("applied", True),
    ],
)
def test_an_add_killed_at_any_step_is_all_or_nothing(tmp_path: Path, step: str, kept: bool) -> None:
    """SIGKILL between the steps of one add — features written, fsynced, catalog committed,
    index applied: after a restart the image is either fully there (searchable, its features
    readable, its visual words indexed) or not there at all."""
    from imsearch.features.local import LocalFeatures
    from imsearch.index.catalog import Item
    from imsearch.rerank.visual_words import VisualWords
    from tests.unit.test_feature_store import DIM as FDIM
    from tests.unit.test_feature_store import features, image_features, vector

    data = tmp_path / "data"
    store = IndexStore(data, "crash-model", FDIM)
    words = VisualWords(store)
    base = ["ref_001", "ref_003", "wall_altai"]
    store.add([Item(n, vector(i), n, {}, image_features(n)) for i, n in enumerate(base)])
    words.learn_vocabulary(words=64, min_images=3)
    assert words.flush(30)
    store.close()

    proc = subprocess.run(
        [sys.executable, "-m", "tests.integration._crash_add", str(data), step],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert "returned" not in proc.stdout

    store = IndexStore(data, "crash-model", FDIM)
    words = VisualWords(store)
    assert words.flush(30)  # words of an image the crash left without them: computed now
    ids = store.catalog.int_ids_of(["victim"])
    assert bool(ids) == kept and len(store) == 3 + kept
    if kept:
        victim = ids["victim"]
        assert store.search(vector(99), 1)[0][0].id == "victim"
        assert store.local_features([victim]) == {victim: image_features("ref_002")}
        assert victim in store.catalog.words([victim])
        own = words.shortlist(LocalFeatures.from_bytes(image_features("ref_002")), 1)
        assert own[0][0] == victim and own[0][1] == pytest.approx(1.0, abs=1e-3)
    assert store.catalog.local_count() == 3 + kept
    store.add([Item("after", vector(7), "ha", {}, features(7))])  # and the store goes on
    after = store.catalog.int_ids_of(["after"])["after"]
    assert store.local_features([after]) == {after: features(7)}
