"""The four services as real processes over HTTP, with a real redis-server."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import MINI
from tests.procs import KEYED, Cluster, Server, cluster, redis_server

DATABASE = sorted(p for p in (MINI / "images").glob("*.jpg") if p.stem.startswith(("ref", "wall")))


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture(scope="module", name="cluster")
def cluster_fixture(tmp_path_factory, redis_url: str) -> Iterator[Cluster]:
    # Query photos get smaller SIFT features than the collection's images (issue 14).
    query_side = {"extractor": {"IMSEARCH_QUERY_LOCAL_MAX_SIDE": "320"}}
    with cluster(tmp_path_factory.mktemp("cluster"), redis_url, extra_env=query_side) as services:
        yield services


def add(url: str, path: Path, image_id: str | None = None, **fields: str) -> httpx.Response:
    data = {"id": image_id or path.stem, **fields}
    return httpx.post(
        f"{url}/v1/images",
        files={"image": (path.name, path.read_bytes())},
        data=data,
        headers=KEYED,
        timeout=60,
    )


def search(url: str, path: Path, **params: object) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/search",
        files={"image": (path.name, path.read_bytes())},
        params=params,
        timeout=60,
    )


def test_add_search_cache_get_delete(cluster: Cluster) -> None:
    gateway = cluster.urls["gateway"]
    for path in DATABASE:
        reply = add(gateway, path, metadata=f'{{"title": "{path.stem}"}}')
        assert reply.status_code == 201, reply.text
    again = add(gateway, DATABASE[0], metadata=f'{{"title": "{DATABASE[0].stem}"}}')
    assert again.status_code == 200 and again.json()["created"] is False

    query = MINI / "images" / "droid_002.jpg"
    first = search(gateway, query, k=3)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["results"][0]["id"] == "ref_002" and body["results"][0]["verified"]
    assert body["results"][0]["metadata"] == {"title": "ref_002"}
    assert body["cache"] == "miss" and body["no_confident_match"] is False
    assert search(gateway, query, k=3).json()["cache"] == "hit"

    info = httpx.get(f"{gateway}/v1/images/ref_002").json()
    assert info["metadata"] == {"title": "ref_002"} and len(info["sha256"]) == 64
    assert httpx.delete(f"{gateway}/v1/images/wall_altai", headers=KEYED).json()["deleted"] is True
    missing = httpx.get(f"{gateway}/v1/images/wall_altai")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_id"
    assert httpx.get(f"{gateway}/v1/stats").json()["count"] == len(DATABASE) - 1
    assert "imsearch_cache_total" in httpx.get(f"{gateway}/metrics").text


def test_writes_need_the_key_and_services_the_token(cluster: Cluster) -> None:
    gateway = cluster.urls["gateway"]
    path = DATABASE[0]
    anonymous = httpx.post(
        f"{gateway}/v1/images", files={"image": (path.name, path.read_bytes())}, data={"id": "x"}
    )
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "unauthorized"
    assert httpx.delete(f"{gateway}/v1/images/ref_001").status_code == 401
    # Reaching an internal service directly, without the token, gets nothing either.
    direct = httpx.post(f"{cluster.urls['search']}/v1/delete", content=b"")
    assert direct.status_code == 401
    assert httpx.get(f"{cluster.urls['search']}/readyz").status_code == 200  # probes stay open


def test_per_request_rerank_and_knobs(cluster: Cluster) -> None:
    gateway = cluster.urls["gateway"]
    query = MINI / "images" / "canon_001.jpg"
    plain = search(gateway, query, k=2, rerank="none").json()
    assert plain["rerank"]["method"] == "none" and plain["no_confident_match"] is None
    assert plain["results"][0]["inliers"] is None
    bad = search(gateway, query, rerank="magic")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "config_error"


def test_a_dead_service_is_a_prompt_503_and_restart_loses_nothing(cluster: Cluster) -> None:
    gateway = cluster.urls["gateway"]
    before = httpx.get(f"{gateway}/v1/stats").json()["count"]
    cluster.kill("search")
    started = time.monotonic()
    reply = search(gateway, MINI / "images" / "canon_004.jpg", k=2)
    assert reply.status_code == 503 and reply.json()["error"]["code"] == "dependency_unavailable"
    assert time.monotonic() - started < 5
    ready = httpx.get(f"{gateway}/readyz")
    assert ready.status_code == 503 and ready.json()["detail"]["search"] == "down"

    cluster.start("search")  # SIGKILLed: no snapshot was written; the log replays
    assert httpx.get(f"{gateway}/v1/stats").json()["count"] == before
    found = search(gateway, MINI / "images" / "canon_004.jpg", k=1).json()
    assert found["results"][0]["id"] == "ref_004"


def test_redis_down_only_costs_speed(cluster: Cluster, redis_url: str, tmp_path: Path) -> None:
    import redis

    gateway = cluster.urls["gateway"]
    query = MINI / "images" / "e63_003.jpg"
    search(gateway, query, k=1)
    assert search(gateway, query, k=1).json()["cache"] == "hit"
    redis.Redis.from_url(redis_url).flushall()
    assert search(gateway, query, k=1).json()["cache"] == "miss"  # flushed: recomputed
    redis.Redis.from_url(redis_url).shutdown(nosave=True)
    down = search(gateway, query, k=1)
    assert down.status_code == 200 and down.json()["results"][0]["id"] == "ref_003"
    ready = httpx.get(f"{gateway}/readyz").json()
    assert ready["status"] == "degraded" and ready["detail"]["cache"] == "degraded"

    # Redis comes back (empty, on the same port): the gateway uses it again by itself.
    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    with redis_server(tmp_path, port):
        deadline = time.monotonic() + 20
        while search(gateway, query, k=1).json()["cache"] != "hit":
            assert time.monotonic() < deadline, "the cache was not used again after a restart"
            time.sleep(0.5)
        assert httpx.get(f"{gateway}/readyz").json()["status"] == "ready"


def test_a_hung_service_times_out_and_recovers_by_itself(cluster: Cluster) -> None:
    """SIGSTOP the extractor (it accepts connections, answers nothing): searches get a 503
    once the per-call timeout fires, and work again when it resumes — nothing restarted."""
    gateway = cluster.urls["gateway"]
    query = MINI / "images" / "droid_005.jpg"
    assert add(gateway, MINI / "images" / "ref_005.jpg").status_code in (200, 201)
    cluster.servers["extractor"].signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        reply = search(gateway, query, k=1, rerank="none")
        waited = time.monotonic() - started
        assert reply.status_code == 503, reply.text
        assert reply.json()["error"]["code"] == "dependency_unavailable"
        assert "in time" in reply.json()["error"]["message"]
        # One timeout, not one per retry: a timed-out call is never repeated.
        assert cluster.timeout_s - 0.5 <= waited < 2 * cluster.timeout_s
        assert httpx.get(f"{gateway}/healthz").status_code == 200  # the gateway still serves
    finally:
        cluster.servers["extractor"].signal(signal.SIGCONT)
    recovered = search(gateway, query, k=1, rerank="none")
    assert recovered.status_code == 200 and recovered.json()["results"][0]["id"] == "ref_005"


def test_search_killed_during_a_batch_of_adds_loses_no_acknowledged_image(
    cluster: Cluster,
) -> None:
    """Clients add images while the search service is SIGKILLed: every add the gateway
    acknowledged (201) is there after the restart; the others got a clear 503."""
    gateway = cluster.urls["gateway"]
    photos = sorted((MINI / "images").glob("*.jpg"))
    before = httpx.get(f"{gateway}/v1/stats").json()["count"]
    acked: dict[str, Path] = {}
    refused: list[str] = []
    refused_ids: list[str] = []

    def client(worker: int) -> None:
        for i in range(12):
            image_id, photo = f"batch/{worker}/{i}", photos[(worker * 5 + i) % len(photos)]
            reply = add(gateway, photo, image_id)
            if reply.status_code == 201:
                acked[image_id] = photo
            else:  # anything but a clear 503 fails the test below
                refused.append(f"{reply.status_code} {reply.json()['error']['code']}")
                refused_ids.append(image_id)

    threads = [threading.Thread(target=client, args=(w,)) for w in range(3)]
    for thread in threads:
        thread.start()
    while len(acked) < 6:
        time.sleep(0.05)
    cluster.kill("search")
    time.sleep(1.0)  # adds now meet the dead service
    cluster.start("search")
    for thread in threads:
        thread.join(timeout=300)
    assert refused and set(refused) == {"503 dependency_unavailable"}
    assert len(acked) + len(refused) == 36
    for image_id in acked:
        assert httpx.get(f"{gateway}/v1/images/{image_id}").status_code == 200, image_id
    # A 503 means "not known to be stored": an add the service committed just before it was
    # killed (its answer lost) may be there. Nothing else may: no image appears from nowhere.
    stored = [i for i in refused_ids if httpx.get(f"{gateway}/v1/images/{i}").status_code == 200]
    count = httpx.get(f"{gateway}/v1/stats").json()["count"]
    assert count == before + len(acked) + len(stored), (count, before, len(acked), stored)
    assert len(stored) <= 3  # at most the adds in flight when it died: one per client
    # The index is whole: a photo finds every acknowledged copy of itself.
    photo = next(iter(acked.values()))
    hits = search(gateway, photo, k=100, rerank="none").json()["results"]
    assert {i for i, p in acked.items() if p == photo} <= {hit["id"] for hit in hits}


def test_services_start_in_any_order_gateway_first(tmp_path: Path, redis_url: str) -> None:
    """The gateway starts alone: /healthz answers, /readyz is a 503 naming every service that
    is down; as they come up (in reverse order) it becomes ready without a restart."""
    roles = ("extractor", "search", "rerank")
    features = {"IMSEARCH_FEATURE_STORE": str(tmp_path / "search" / "features")}
    servers = {r: Server({"IMSEARCH_DATA_DIR": str(tmp_path / r), **features}, r) for r in roles}
    gateway = Server(
        {
            "IMSEARCH_DATA_DIR": str(tmp_path / "gateway"),
            "IMSEARCH_EXTRACTOR_URL": servers["extractor"].url,
            "IMSEARCH_SEARCH_URL": servers["search"].url,
            "IMSEARCH_RERANK_URL": servers["rerank"].url,
            "IMSEARCH_REDIS_URL": redis_url,
            "IMSEARCH_SERVICE_TIMEOUT_S": "5",
        },
        "gateway",
    )
    try:
        gateway.launch()
        wait_healthy(gateway.url)
        wait_composed(gateway.url)
        for started in ("rerank", "search", "extractor"):
            reply = httpx.get(f"{gateway.url}/readyz")
            assert reply.status_code == 503 and reply.json()["error"]["code"] == "not_ready"
            down = {name for name, state in reply.json()["detail"].items() if state == "down"}
            assert down == {r for r in roles if servers[r].proc is None}
            early = search(gateway.url, DATABASE[0])
            assert early.status_code == 503
            assert early.json()["error"]["code"] == "dependency_unavailable"
            servers[started].start()
        assert httpx.get(f"{gateway.url}/readyz").status_code == 200
        assert add(gateway.url, DATABASE[0]).status_code == 201
        assert search(gateway.url, DATABASE[0]).json()["results"][0]["id"] == DATABASE[0].stem
    finally:
        for server in (gateway, *servers.values()):
            server.stop()


def wait_composed(url: str, seconds: float = 60) -> None:
    """Until the gateway has composed its pipeline: /readyz then names each service's state
    (before that it answers 503 'the engine is loading', without a per-service detail)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if "detail" in httpx.get(f"{url}/readyz", timeout=5).json():
            return
        time.sleep(0.2)
    raise AssertionError(f"{url} never composed its pipeline")


def wait_healthy(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} never answered /healthz")


def test_the_extractor_gives_queries_their_own_sift_side(cluster: Cluster) -> None:
    from services.contracts.v1 import messages_pb2 as pb
    from tests.procs import INTERNAL_TOKEN

    image = (MINI / "images" / "canon_001.jpg").read_bytes()
    widths = {}
    for query in (False, True):
        request = pb.ExtractRequest(image=image, want_local=True, query=query)
        reply = httpx.post(
            f"{cluster.urls['extractor']}/v1/extract",
            content=request.SerializeToString(),
            headers={
                "Content-Type": "application/x-protobuf",
                "X-Internal-Token": INTERNAL_TOKEN,
            },
            timeout=60,
        )
        assert reply.status_code == 200, reply.text
        message = pb.ExtractResponse.FromString(reply.content)
        widths[query] = max(message.local.width, message.local.height)
        assert message.local.count > 50
    # (test_add_search_cache_get_delete verifies a photo against its cover at this setting)
    assert widths == {False: 480, True: 320}  # the bundled photos are 480 px wide
