"""The four services as real processes over HTTP, with a real redis-server."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.conftest import FAST_ENV, MINI

DATABASE = sorted(p for p in (MINI / "images").glob("*.jpg") if p.stem.startswith(("ref", "wall")))
#: The cluster runs as an operator would deploy it: writes need a key, services a shared token.
API_KEY = "test-key-0123456789abcdef"
INTERNAL_TOKEN = "internal-token-0123456789abcdef"
KEYED = {"X-API-Key": API_KEY}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(f"{url} exited early:\n{out[-3000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} not ready in {seconds} s")


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory) -> Iterator[str]:
    binary = shutil.which("redis-server")
    assert binary, "redis-server is missing: `apt-get install redis-server` (make test does it)"
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path_factory.mktemp("redis")),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import redis

    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            if client.ping():
                break
        except redis.ConnectionError:
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(timeout=10)


@dataclass
class Cluster:
    root: Path
    redis_url: str
    urls: dict[str, str] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    def env(self, role: str) -> dict[str, str]:
        env = {
            **FAST_ENV,
            "PATH": "/usr/bin:/bin",
            "IMSEARCH_SERVICE_TIMEOUT_S": "5",
            "IMSEARCH_DATA_DIR": str(self.root / role),
            "IMSEARCH_INTERNAL_TOKEN": INTERNAL_TOKEN,
        }
        if role == "gateway":
            env |= {
                "IMSEARCH_EXTRACTOR_URL": self.urls["extractor"],
                "IMSEARCH_SEARCH_URL": self.urls["search"],
                "IMSEARCH_RERANK_URL": self.urls["rerank"],
                "IMSEARCH_REDIS_URL": self.redis_url,
                "IMSEARCH_API_KEYS": f"tests:{API_KEY}",
            }
        return env

    def start(self, role: str) -> None:
        port = int(self.urls[role].rsplit(":", 1)[1]) if role in self.urls else free_port()
        self.urls[role] = f"http://127.0.0.1:{port}"
        self.procs[role] = subprocess.Popen(
            [sys.executable, "-m", "imsearch.cli", "serve", "--role", role, "--port", str(port)],
            env=self.env(role),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        wait_ready(self.urls[role], self.procs[role])

    def kill(self, role: str) -> None:
        self.procs[role].send_signal(signal.SIGKILL)
        self.procs[role].wait(timeout=10)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, redis_url: str) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path_factory.mktemp("cluster"), redis_url)
    try:
        for role in ("extractor", "search", "rerank", "gateway"):
            cluster.start(role)
        yield cluster
    finally:
        cluster.stop_all()


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


def test_redis_down_only_costs_speed(cluster: Cluster, redis_url: str) -> None:
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
    port = redis_url.rsplit(":", 1)[1].split("/")[0]
    binary = shutil.which("redis-server")
    assert binary
    revived = subprocess.Popen(
        [binary, "--port", port, "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while search(gateway, query, k=1).json()["cache"] != "hit":
            assert time.monotonic() < deadline, "the cache was not used again after a restart"
            time.sleep(0.5)
        assert httpx.get(f"{gateway}/readyz").json()["status"] == "ready"
    finally:
        revived.terminate()
        revived.wait(timeout=10)
