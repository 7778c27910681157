"""docker-compose.yml for real: the five containers, driven over HTTP as a user would.

    python tests/compose_smoke.py        (make compose-smoke: builds the images first)

1. ``compose up`` with the images of ``make images``; each container's cold start is timed
   (from ``up`` to its own ``/readyz`` answering 200, checked inside the container).
2. Ten SMVS covers (the bundled mini set without ../shared) are added through the gateway,
   with an API key and the internal token on, as deployed.
3. A phone photo of one of them finds it first; the same photo again is a Redis cache hit.
4. The search container is stopped: a search gets a JSON 503 within 5 s.
5. It is removed and created again: searches work, the ten images are still there (only the
   volume could keep them).
6. Everything is torn down with its volumes.

It prints one summary line and exits non-zero on the first failure (after printing the
containers' last log lines). No step is mocked.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "imsearch-smoke"
SERVICES = ("redis", "extractor", "search", "rerank", "gateway")
#: Cold starts allowed before the run is a failure (issue 13's targets are checked by the
#: numbers it prints: 20 s per container, 60 s for the extractor).
READY_TIMEOUT_S = 300


class SmokeFailure(Exception):
    pass


def engine() -> str:
    found = os.environ.get("ENGINE") or shutil.which("podman") or shutil.which("docker")
    if not found:
        raise SmokeFailure("no container engine (podman or docker) on PATH")
    return found


def compose_command(engine_path: str) -> list[str]:
    if Path(engine_path).name == "docker":
        return [engine_path, "compose"]
    local = Path(sys.executable).parent / "podman-compose"
    return [str(local) if local.exists() else "podman-compose"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def photos() -> tuple[list[Path], Path, str]:
    """Ten database images, a phone photo and the cover it shows."""
    shared = ROOT.parent / "shared" / "data" / "smvs-dvd" / "images"
    if shared.is_dir():
        covers = [shared / f"ref_{i:03d}.jpg" for i in range(1, 11)]
        return covers, shared / "canon_004.jpg", "ref_004"
    mini = ROOT / "tests" / "data" / "mini" / "images"
    covers = sorted(p for p in mini.glob("*.jpg") if p.stem.startswith(("ref_", "wall_")))
    return covers[:10], mini / "canon_004.jpg", "ref_004"


class Stack:
    def __init__(self) -> None:
        self.engine = engine()
        self.compose = [*compose_command(self.engine), "-p", PROJECT, "-f", "docker-compose.yml"]
        self.port = free_port()
        self.key = secrets.token_hex(16)
        self.env = {
            **os.environ,
            "IMSEARCH_GATEWAY_PORT": str(self.port),
            "IMSEARCH_API_KEYS": f"smoke:{self.key}",
            "IMSEARCH_INTERNAL_TOKEN": secrets.token_hex(16),
            "IMSEARCH_REDIS_IMAGE": os.environ.get(
                "IMSEARCH_REDIS_IMAGE", "imsearch-redis:bookworm"
            ),
        }
        self.url = f"http://127.0.0.1:{self.port}"

    def run(self, *args: str, timeout: float = 600) -> str:
        proc = subprocess.run(
            [*self.compose, *args], cwd=ROOT, env=self.env, capture_output=True, text=True,
            timeout=timeout,
        )  # fmt: skip
        if proc.returncode != 0:
            raise SmokeFailure(f"compose {' '.join(args)}: {proc.stderr.strip()[-1500:]}")
        return proc.stdout

    def containers(self) -> dict[str, str]:
        """Service → container name, from the labels compose puts on them."""
        out = subprocess.run(
            [self.engine, "ps", "-a", "--format", "json",
             "--filter", f"label=com.docker.compose.project={PROJECT}"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        rows = (
            json.loads(out or "[]")
            if out.lstrip().startswith("[")
            else [json.loads(line) for line in out.splitlines() if line.strip()]
        )
        found = {}
        for row in rows:
            labels = row.get("Labels") or {}
            if isinstance(labels, str):  # docker: "k=v,k=v"
                labels = dict(kv.split("=", 1) for kv in labels.split(",") if "=" in kv)
            names = row.get("Names") or row.get("Name")
            found[labels.get("com.docker.compose.service", "")] = (
                names[0] if isinstance(names, list) else names
            )
        return found

    def ready_inside(self, container: str, service: str) -> bool:
        """The service's own readiness, asked from inside its container."""
        probe = (
            ["redis-cli", "ping"]
            if service == "redis"
            else ["python", "-c", "import urllib.request as u; "
                  "u.urlopen('http://127.0.0.1:8080/readyz', timeout=2)"]
        )  # fmt: skip
        return (
            subprocess.run(
                [self.engine, "exec", container, *probe], capture_output=True, timeout=30
            ).returncode
            == 0
        )

    def logs(self) -> str:
        out = []
        for service, container in self.containers().items():
            proc = subprocess.run(
                [self.engine, "logs", "--tail", "15", container], capture_output=True, text=True
            )
            out.append(f"--- {service} ---\n{proc.stdout}{proc.stderr}")
        return "\n".join(out)

    def down(self) -> None:
        subprocess.run(
            [*self.compose, "down", "-v"], cwd=ROOT, env=self.env, capture_output=True, timeout=300
        )


def wait_for(what: str, check: Callable[[], bool], timeout_s: float, step_s: float = 0.5) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        try:
            if check():
                return time.monotonic() - started
        except (httpx.HTTPError, subprocess.SubprocessError):
            pass
        time.sleep(step_s)
    raise SmokeFailure(f"{what}: not within {timeout_s:.0f} s")


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise SmokeFailure(message)


def search(http: httpx.Client, photo: Path) -> httpx.Response:
    return http.post("/v1/search", files={"image": (photo.name, photo.read_bytes())})


def cold_starts(stack: Stack) -> dict[str, float]:
    """Seconds from `compose up` to each container's own readiness."""
    started = time.monotonic()
    stack.run("up", "-d", "--no-build")
    containers = stack.containers()
    expect(set(SERVICES) <= set(containers), f"containers missing: {containers}")
    ready: dict[str, float] = {}
    while len(ready) < len(SERVICES):
        late = set(SERVICES) - set(ready)
        expect(time.monotonic() - started < READY_TIMEOUT_S, f"not ready: {late}")
        for service in SERVICES:
            if service not in ready and stack.ready_inside(containers[service], service):
                ready[service] = time.monotonic() - started
        time.sleep(0.25)
    return ready


def exercise(stack: Stack) -> dict[str, Any]:
    covers, photo, cover = photos()
    ready = cold_starts(stack)
    facts: dict[str, Any] = {"ready_s": ready}
    with httpx.Client(base_url=stack.url, timeout=120) as http:
        wait_for("gateway /readyz", lambda: http.get("/readyz").status_code == 200, 60)
        keyed = {"X-API-Key": stack.key}
        for path in covers:
            files = {"image": (path.name, path.read_bytes())}
            reply = http.post("/v1/images", files=files, data={"id": path.stem}, headers=keyed)
            expect(reply.status_code == 201, f"add {path.stem}: {reply.status_code} {reply.text}")
        first = search(http, photo)
        expect(first.status_code == 200, f"search: {first.status_code} {first.text}")
        body = first.json()
        expect(body["results"][0]["id"] == cover, f"search found {body['results'][:2]}")
        expect(body["cache"] == "miss", f"first search: cache {body['cache']}")
        again = search(http, photo).json()
        expect(again["cache"] == "hit", f"second search: cache {again['cache']}")
        facts["collection"] = named_collection(http, keyed, covers, photo, cover)

        subprocess.run([stack.engine, "stop", stack.containers()["search"]], check=True,
                       capture_output=True, timeout=120)  # fmt: skip
        started = time.monotonic()
        down = search(http, photo)
        facts["search_down_s"] = time.monotonic() - started
        expect(down.status_code == 503, f"search service stopped: {down.status_code} {down.text}")
        expect(down.json()["error"]["code"] == "dependency_unavailable", down.text)
        expect(facts["search_down_s"] <= 5.0, f"the 503 took {facts['search_down_s']:.1f} s")

        # A new container, not the stopped one restarted: only the volume can keep the data.
        subprocess.run([stack.engine, "rm", stack.containers()["search"]], check=True,
                       capture_output=True, timeout=120)  # fmt: skip
        stack.run("up", "-d", "--no-build", "search")
        facts["search_restart_s"] = wait_for(
            "search after restart", lambda: search(http, photo).status_code == 200, 120
        )
        back = search(http, photo).json()
        expect(back["results"][0]["id"] == cover, f"after restart: {back['results'][:2]}")
        count = http.get("/v1/stats").json()["count"]
        expect(count == len(covers), f"after restart the collection holds {count} images")
        facts["kept"] = count
        shop = http.get("/v1/collections/shop").json()
        expect(shop.get("count") == 3, f"after restart the collection 'shop' is {shop}")
        dropped = http.delete("/v1/collections/shop", headers=keyed)
        expect(dropped.status_code == 200, f"drop: {dropped.status_code} {dropped.text}")
    return facts


def named_collection(
    http: httpx.Client, keyed: dict[str, str], covers: list[Path], photo: Path, cover: str
) -> dict[str, Any]:
    """A second collection beside 'default': its own images, a filter inside the search."""
    created = http.post("/v1/collections", json={"name": "shop"}, headers=keyed)
    expect(created.status_code == 201, f"create: {created.status_code} {created.text}")
    chosen = [p for p in covers if p.stem == cover] + [p for p in covers if p.stem != cover][:2]
    for shelf, path in zip(("top", "bottom", "bottom"), chosen, strict=True):
        files = {"image": (path.name, path.read_bytes())}
        data = {"id": path.stem, "metadata": json.dumps({"shelf": shelf})}
        reply = http.post("/v1/collections/shop/images", files=files, data=data, headers=keyed)
        expect(reply.status_code == 201, f"add to shop: {reply.status_code} {reply.text}")
    files = {"image": (photo.name, photo.read_bytes())}
    found = http.post(
        "/v1/collections/shop/search", files=files, params={"filter": '{"shelf": "top"}'}
    )
    ids = [h["id"] for h in found.json()["results"]]
    expect(ids == [cover], f"filtered search in 'shop' found {ids}")
    none = http.post("/v1/collections/shop/search", files=files, data={"filter": '{"shelf": "x"}'})
    expect(none.json()["results"] == [], f"a filter matching nothing found {none.json()}")
    return {"filtered": ids, "verified": found.json()["results"][0]["verified"]}


def main() -> int:
    started = time.monotonic()
    try:
        stack = Stack()
    except SmokeFailure as exc:
        print(f"compose smoke: FAILED: {exc}")
        return 1
    stack.down()  # what an interrupted run left
    try:
        facts = exercise(stack)
    except (SmokeFailure, httpx.HTTPError, subprocess.SubprocessError, KeyError) as exc:
        print(stack.logs(), file=sys.stderr)
        stack.down()
        print(f"compose smoke: FAILED: {type(exc).__name__}: {exc}")
        return 1
    stack.down()
    ready = ", ".join(f"{s} {t:.0f} s" for s, t in facts["ready_s"].items())
    down, back = facts["search_down_s"], facts["search_restart_s"]
    print(
        f"compose smoke: passed in {time.monotonic() - started:.0f} s — ready after up: {ready}; "
        f"10 adds, search right and cached; search stopped → 503 in {down:.1f} s; "
        f"recreated, searching in {back:.0f} s with {facts['kept']} images kept; collection "
        f"'shop': filtered search found {facts['collection']['filtered']}, kept, dropped"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
