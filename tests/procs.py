"""Real processes for the tests: imsearch servers and a redis-server, on free loopback ports."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.conftest import FAST_ENV

#: An operator's deployment: writes need a key, internal services a shared token.
API_KEY = "test-key-0123456789abcdef"
INTERNAL_TOKEN = "internal-token-0123456789abcdef"
KEYED = {"X-API-Key": API_KEY}
TOKEN = {"X-Internal-Token": INTERNAL_TOKEN}


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(
    url: str, proc: subprocess.Popen, seconds: float = 120, log: Path | None = None
) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = log.read_text(errors="replace") if log else ""
            raise AssertionError(f"{url} exited early:\n{out[-3000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} not ready in {seconds} s")


@dataclass
class Server:
    """``imsearch serve`` as a child process; ``start`` again reuses the port.

    Its output goes to a file, never to a pipe nobody reads: a full pipe would block the
    server on its next log line.
    """

    env: dict[str, str]
    role: str = "all"
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    log: Path = field(default_factory=lambda: Path(tempfile.mkstemp(suffix=".log")[1]))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Server:
        self.launch()
        assert self.proc is not None
        wait_ready(self.url, self.proc, log=self.log)
        return self

    def launch(self) -> Server:
        """Start the process without waiting for it to be ready."""
        command = [sys.executable, "-m", "imsearch.cli", "serve", "--role", self.role]
        with self.log.open("a") as out:
            self.proc = subprocess.Popen(
                [*command, "--port", str(self.port)],
                env={**FAST_ENV, "PATH": "/usr/bin:/bin", **self.env},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        assert self.proc is not None
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        """Stop it (if running) and remove its log."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a paused process cannot hear SIGTERM
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.unlink(missing_ok=True)


@contextmanager
def running(server: Server) -> Iterator[Server]:
    try:
        yield server.start()
    finally:
        server.stop()


@contextmanager
def redis_server(directory: Path, port: int | None = None) -> Iterator[str]:
    """A throw-away redis-server (no persistence); yields its URL."""
    import redis

    binary = shutil.which("redis-server")
    assert binary, "redis-server is missing: `apt-get install redis-server` (make test does it)"
    port = port or free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(directory)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    try:
        for _ in range(100):
            try:
                if client.ping():
                    break
            except redis.ConnectionError:
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@dataclass
class Cluster:
    """The four services, wired as in docker-compose."""

    root: Path
    redis_url: str
    timeout_s: float = 5.0
    #: More environment per role, e.g. {"gateway": {"IMSEARCH_RATE_LIMIT_PER_MIN": "0"}}.
    extra_env: dict[str, dict[str, str]] = field(default_factory=dict)
    servers: dict[str, Server] = field(default_factory=dict)

    @property
    def urls(self) -> dict[str, str]:
        return {role: server.url for role, server in self.servers.items()}

    def env(self, role: str) -> dict[str, str]:
        env = {
            "IMSEARCH_SERVICE_TIMEOUT_S": str(self.timeout_s),
            "IMSEARCH_DATA_DIR": str(self.root / role),
            "IMSEARCH_INTERNAL_TOKEN": INTERNAL_TOKEN,
        }
        if role == "rerank":  # the search primary's feature store, as on a shared volume
            env["IMSEARCH_FEATURE_STORE"] = str(self.root / "search" / "features")
        if role == "gateway":
            env |= {
                "IMSEARCH_EXTRACTOR_URL": self.urls["extractor"],
                "IMSEARCH_SEARCH_URL": self.urls["search"],
                "IMSEARCH_RERANK_URL": self.urls["rerank"],
                "IMSEARCH_REDIS_URL": self.redis_url,
                "IMSEARCH_API_KEYS": f"tests:{API_KEY}",
            }
        return env | self.extra_env.get(role, {})

    def start(self, role: str) -> None:
        server = self.servers.get(role) or Server(self.env(role), role)
        self.servers[role] = server.start()

    def kill(self, role: str) -> None:
        self.servers[role].kill()

    def stop_all(self) -> None:
        for server in self.servers.values():
            server.stop()


@contextmanager
def cluster(
    root: Path,
    redis_url: str,
    timeout_s: float = 5.0,
    extra_env: dict[str, dict[str, str]] | None = None,
) -> Iterator[Cluster]:
    services = Cluster(root, redis_url, timeout_s, extra_env or {})
    try:
        for role in ("extractor", "search", "rerank", "gateway"):
            services.start(role)
        yield services
    finally:
        services.stop_all()
