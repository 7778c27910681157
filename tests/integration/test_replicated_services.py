"""Every service replicable (issue 12): one gateway, a search primary and a read replica,
three stateless rerank workers; clients add and search while one rerank worker is SIGKILLed.
No 5xx, nothing acknowledged lost, every image found first by its own photo."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx

from tests.conftest import MINI
from tests.procs import INTERNAL_TOKEN, TOKEN, Server, redis_server

IMAGES = sorted((MINI / "images").glob("*.jpg"))


def test_rerank_workers_are_stateless_and_one_can_die_under_load(tmp_path: Path) -> None:
    data = tmp_path / "search"
    common = {"IMSEARCH_INTERNAL_TOKEN": INTERNAL_TOKEN, "IMSEARCH_SERVICE_TIMEOUT_S": "20"}
    extractor = Server({**common, "IMSEARCH_DATA_DIR": str(tmp_path / "x")}, "extractor")
    primary = Server({**common, "IMSEARCH_DATA_DIR": str(data)}, "search")
    replica = Server(
        {**common, "IMSEARCH_DATA_DIR": str(data), "IMSEARCH_REPLICA": "1",
         "IMSEARCH_REPLICA_POLL_S": "0.5"},
        "search",
    )  # fmt: skip
    # Stateless workers: each sees only the primary's feature store (a shared volume).
    shared = {**common, "IMSEARCH_FEATURE_STORE": str(data / "features")}
    workers = [
        Server({**shared, "IMSEARCH_DATA_DIR": str(tmp_path / f"r{i}")}, "rerank") for i in range(3)
    ]
    servers = [extractor, primary, *workers]
    try:
        with redis_server(tmp_path) as redis_url:
            servers.append(replica)
            for server in servers:
                server.start()
            gateway = Server(
                {
                    **common,
                    "IMSEARCH_DATA_DIR": str(tmp_path / "g"),
                    "IMSEARCH_EXTRACTOR_URL": extractor.url,
                    "IMSEARCH_SEARCH_URL": primary.url,
                    "IMSEARCH_SEARCH_READ_URL": replica.url,
                    "IMSEARCH_RERANK_URL": ",".join(w.url for w in workers),
                    "IMSEARCH_REDIS_URL": redis_url,
                    "IMSEARCH_RATE_LIMIT_PER_MIN": "0",
                },
                "gateway",
            ).start()
            servers.append(gateway)
            run_load(gateway.url, workers[1], replica.url)
    finally:
        for server in servers:
            server.stop()


def run_load(url: str, victim: Server, replica_url: str) -> None:
    acked: dict[str, Path] = {}
    failures: list[str] = []
    stop = threading.Event()

    def adder(images: list[Path]) -> None:
        with httpx.Client(base_url=url, timeout=120) as http:
            for path in images:
                reply = http.post("/v1/images", files={"image": (path.name, path.read_bytes())},
                                  data={"id": f"img/{path.stem}"})  # fmt: skip
                if reply.status_code == 201:
                    acked[f"img/{path.stem}"] = path
                else:
                    failures.append(f"add {path.stem}: {reply.status_code} {reply.text}")

    def searcher() -> None:
        with httpx.Client(base_url=url, timeout=120) as http:
            while not stop.is_set():
                path = IMAGES[int(time.monotonic() * 1000) % len(IMAGES)]
                reply = http.post("/v1/search", files={"image": (path.name, path.read_bytes())})
                if reply.status_code >= 500:
                    failures.append(f"search: {reply.status_code} {reply.text}")

    adders = [threading.Thread(target=adder, args=(IMAGES[i::3],)) for i in range(3)]
    searchers = [threading.Thread(target=searcher) for _ in range(2)]
    for thread in adders + searchers:
        thread.start()
    deadline = time.monotonic() + 120
    while len(acked) < 5:
        assert time.monotonic() < deadline and not failures, failures
        time.sleep(0.05)
    victim.kill()  # a rerank worker dies with requests in flight
    for thread in adders:
        thread.join(timeout=300)
    time.sleep(2)  # searches go on against the two workers left
    stop.set()
    for thread in searchers:
        thread.join(timeout=120)
    assert not failures, failures
    assert len(acked) == len(IMAGES)

    with httpx.Client(base_url=url, timeout=120) as http:
        assert http.get("/v1/stats").json()["count"] == len(acked)  # the primary's count
        deadline = time.monotonic() + 30  # the read replica follows the primary's log
        while (seen := httpx.get(f"{replica_url}/v1/stats", headers=TOKEN).json())["count"] != len(
            acked
        ):
            assert time.monotonic() < deadline, (len(acked), seen)
            time.sleep(0.2)
        for image_id, path in acked.items():
            reply = http.post("/v1/search", files={"image": (path.name, path.read_bytes())},
                              params={"k": 3})  # fmt: skip
            assert reply.status_code == 200, reply.text
            top = reply.json()["results"][0]
            assert top["id"] == image_id and top["verified"], (image_id, reply.json()["results"])

    # A collection created on the primary: the replica opens it at its first search and
    # follows its log; the workers read its features beside the default collection's.
    with httpx.Client(base_url=url, timeout=120) as http:
        assert http.post("/v1/collections", json={"name": "late"}).status_code == 201
        for path in IMAGES[:2]:
            reply = http.post("/v1/collections/late/images", data={"id": path.stem},
                              files={"image": (path.name, path.read_bytes())})  # fmt: skip
            assert reply.status_code == 201, reply.text
        query = IMAGES[1]
        deadline = time.monotonic() + 30
        while True:
            reply = http.post("/v1/collections/late/search",
                              files={"image": (query.name, query.read_bytes())})  # fmt: skip
            assert reply.status_code == 200, reply.text
            results = reply.json()["results"]
            if results and results[0]["id"] == query.stem and results[0]["verified"]:
                break
            assert time.monotonic() < deadline, results
            time.sleep(0.2)
        assert {h["id"] for h in results} == {p.stem for p in IMAGES[:2]}
        assert http.delete("/v1/collections/late").status_code == 200
        deadline = time.monotonic() + 30  # the replica notices at its next poll
        photo = {"image": (query.name, query.read_bytes())}
        while (gone := http.post("/v1/collections/late/search", files=photo)).status_code != 404:
            assert time.monotonic() < deadline, gone.text
            time.sleep(0.2)
        assert gone.json()["error"]["code"] == "unknown_collection"
