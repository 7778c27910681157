"""`imsearch bench scale` for the code before the one-system-of-record change ("today's code"
of issue 12), so the two stand side by side in docs/BENCHMARKS.md.

That code keeps two copies: the search service's data directory (descriptors, metadata) and
the rerank service's (descriptors again, local features as catalog BLOBs, a visual-word index
rebuilt at every start by quantizing every stored feature). The same items are built (same
generator, same seeds) through its own API, its own services are started as processes, and
the same JSON keys are measured. The old protobuf contract differs, so this runs entirely
under the old checkout — which is why it runs as a file, not with ``python -m`` (that would
import today's ``imsearch`` package first).

    git worktree add var/baseline 5cae098
    .venv/bin/python imsearch/bench/scale_baseline.py var/baseline 10000 \
        ../shared/data/smvs-dvd/images var/bench-scale-base docs/results/bench-scale-base-10000.json
"""
# ruff: noqa: E402 - the old checkout's modules are imported after the path is set

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

CHECKOUT = Path(sys.argv[1]).resolve()
# Run the old checkout's modules, not the editable install of the current one.
BOOTSTRAP = (
    "import sys; sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f)]; "
    f"sys.path.insert(0, {str(CHECKOUT)!r}); "
)
exec(BOOTSTRAP)

import httpx
import numpy as np

from imsearch.bench.ann import synthetic_descriptors
from imsearch.features.local import LocalFeatures, SiftExtractor
from imsearch.images import list_images, load_image
from imsearch.index.catalog import Item
from imsearch.index.store import IndexStore
from imsearch.rerank.local_index import LocalIndex
from imsearch.settings import Settings
from services.common.codec import item_to_pb, local_to_pb, rerank_config_to_pb, vector_to_pb
from services.contracts.v1 import messages_pb2 as pb

MODEL_ID = "bench-scale"
READY_CAP_S = float(os.environ.get("READY_CAP_S", "1800"))
HEADERS = {"content-type": "application/x-protobuf"}


def main() -> None:
    items, source_dir, work, out = (
        int(sys.argv[2]),
        Path(sys.argv[3]),
        Path(sys.argv[4]),
        Path(sys.argv[5]),
    )
    port = int(os.environ.get("PORT", "8740"))
    queries_n, rerank_n, adds_n, dim = 1000, 300, 1000, 320
    settings = Settings()
    sift = SiftExtractor(settings.local_max_side, settings.local_max_keypoints)
    sources = [sift.extract(load_image(p)) for p in list_images(source_dir)[:64]]
    vectors = synthetic_descriptors(items + adds_n + queries_n, dim, seed=7)

    def features(i: int) -> LocalFeatures:
        rng = np.random.default_rng(i)
        base = sources[i % len(sources)]
        xy = base.xy + rng.normal(0, 1.5, base.xy.shape).astype(np.float32)
        noise = rng.integers(-3, 4, base.sift.shape)
        sift_ = np.clip(base.sift.astype(np.int16) + noise, 0, 255).astype(np.uint8)
        return LocalFeatures(xy, sift_, base.width, base.height)

    def item(i: int, local: bool) -> Item:
        return Item(f"item/{i:08d}", vectors[i], f"{i:064x}", {"n": i},
                    features(i).to_bytes() if local else None)  # fmt: skip

    shutil.rmtree(work, ignore_errors=True)
    search_dir, rerank_dir = work / "search", work / "rerank"
    began = time.perf_counter()
    search = IndexStore(search_dir, MODEL_ID, dim, settings.index_spec)
    rerank = IndexStore(rerank_dir, MODEL_ID, dim, "exact")
    local = LocalIndex(rerank.catalog, rerank_dir)
    rerank.subscribe(local)
    vocabulary_s = 0.0
    for start in range(0, items, 256):
        batch = range(start, min(start + 256, items))
        search.add([item(i, False) for i in batch])  # the gateway wrote twice: search…
        rerank.add([item(i, True) for i in batch])  # …then the rerank copy
        if local.quantizer is None and start + 256 >= settings.vocabulary_min_images:
            t = time.perf_counter()
            local.learn_vocabulary(settings.vocabulary_words, settings.vocabulary_min_images)
            vocabulary_s = time.perf_counter() - t
        if (start // 256) % 40 == 0:
            print(f"built {min(start + 256, items)}/{items}", file=sys.stderr, flush=True)
    for store in (search, rerank):
        store.snapshot()
        store.close()
    result: dict = {"items": items, "dim": dim, "code": "before issue 12"}
    result.update(build_s=time.perf_counter() - began, vocabulary_s=vocabulary_s)
    size = lambda p: sum(f.stat().st_size for f in p.rglob("*") if f.is_file())  # noqa: E731
    result["disk_bytes_per_item"] = (size(search_dir) + size(rerank_dir)) / items
    result["disk_bytes"] = {"search": size(search_dir), "rerank": size(rerank_dir)}
    print(f"built in {result['build_s']:.0f} s", file=sys.stderr, flush=True)

    procs = {}
    result["restart_s"] = {}
    for role, data, p in (("search", search_dir, port), ("rerank", rerank_dir, port + 1)):
        procs[role], result["restart_s"][role] = serve(role, data, p, work)
        print(f"{role} ready in {result['restart_s'][role]}", file=sys.stderr, flush=True)
    rng = np.random.default_rng(11)
    queries = [int(i) for i in rng.integers(0, items, queries_n)]

    def query_vector(i: int) -> np.ndarray:
        noisy = vectors[i] + rng.normal(0, 0.02, dim).astype(np.float32)
        return noisy / np.linalg.norm(noisy)

    url = f"http://127.0.0.1:{port}"
    rurl = f"http://127.0.0.1:{port + 1}"
    with httpx.Client(timeout=600) as http:
        search_ms = []
        for i in queries:
            body = pb.SearchRequest(
                queries=[vector_to_pb(query_vector(i))], k=100
            ).SerializeToString()
            t = time.perf_counter()
            http.post(f"{url}/v1/search", content=body, headers=HEADERS).raise_for_status()
            search_ms.append((time.perf_counter() - t) * 1e3)
        result["latency_ms"] = {"search": pct(search_ms)}
        if result["restart_s"]["rerank"] is not None:
            rerank_ms, found = [], 0
            config = rerank_config_to_pb(settings.rerank_config())
            for i in queries[:rerank_n]:
                q = vector_to_pb(query_vector(i))
                body = pb.SearchRequest(
                    queries=[q], k=settings.rerank_shortlist
                ).SerializeToString()
                reply = http.post(f"{url}/v1/search", content=body, headers=HEADERS)
                hits = pb.SearchResponse.FromString(reply.content).results[0].hits
                request = pb.RerankRequest(query=q, local=local_to_pb(features(i)), hits=hits,
                                           k=10, config=config).SerializeToString()  # fmt: skip
                t = time.perf_counter()
                reply = http.post(f"{rurl}/v1/rerank", content=request, headers=HEADERS)
                rerank_ms.append((time.perf_counter() - t) * 1e3)
                reply.raise_for_status()
                top = pb.RerankResponse.FromString(reply.content).hits
                found += bool(top) and top[0].verified and top[0].id == f"item/{i:08d}"
            # Its rerank call did the visual-word shortlist, fusion and verification at once.
            result["latency_ms"]["rerank"] = pct(rerank_ms)
            result["rerank_found_own_item"] = found / len(rerank_ms)
        result["rss_mb"] = {role: rss_mb(proc.pid) for role, proc in procs.items()}

        stop = threading.Event()

        def keep_searching() -> None:
            with httpx.Client(timeout=600) as client:
                while not stop.is_set():
                    body = pb.SearchRequest(queries=[vector_to_pb(query_vector(1))], k=100)
                    client.post(
                        f"{url}/v1/search", content=body.SerializeToString(), headers=HEADERS
                    )

        def add_one(i: int) -> None:  # what the gateway did per image: two writes
            for target, with_local in ((url, False), (rurl, True)):
                body = pb.AddRequest(
                    model_id=MODEL_ID, items=[item_to_pb(item(i, True), with_local)]
                )
                http.post(
                    f"{target}/v1/add", content=body.SerializeToString(), headers=HEADERS
                ).raise_for_status()

        if result["restart_s"]["rerank"] is not None:
            searcher = threading.Thread(target=keep_searching)
            searcher.start()
            t = time.perf_counter()
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(add_one, range(items, items + adds_n)))
            result["add_per_s"] = adds_n / (time.perf_counter() - t)
            stop.set()
            searcher.join()
    for proc in procs.values():
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:  # a rerank service still rebuilding its index
            proc.kill()
            proc.wait()
    # Its upkeep rewrote the whole snapshot whenever anything changed: time one such rewrite.
    snap_s, snap_bytes = 0.0, 0
    for data in (search_dir, rerank_dir):
        store = IndexStore(data)
        t = time.perf_counter()
        store.snapshot()
        snap_s += time.perf_counter() - t
        snap_bytes += sum(p.stat().st_size for p in data.glob("vectors-*.faiss"))
        store.close()
    result.update(snapshot_s=snap_s, snapshot_bytes=snap_bytes)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    shutil.rmtree(work, ignore_errors=True)


def serve(role: str, data: Path, port: int, work: Path) -> tuple[subprocess.Popen, float | None]:
    code = BOOTSTRAP + (
        "from imsearch.cli import app; "
        f"sys.argv = ['imsearch', 'serve', '--role', {role!r}, '--port', '{port}']; app()"
    )
    try:  # a server left behind would answer for this one
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
        raise RuntimeError(f"port {port} is already served")
    except httpx.TransportError:
        pass
    log = open(work / f"{role}.log", "w")  # noqa: SIM115 - open for the process's life
    env = {**os.environ, "IMSEARCH_DATA_DIR": str(data), "IMSEARCH_RATE_LIMIT_PER_MIN": "0"}
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    STARTED.append(proc)
    while time.perf_counter() - started < READY_CAP_S:
        if proc.poll() is not None:
            raise RuntimeError((work / f"{role}.log").read_text()[-2000:])
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return proc, time.perf_counter() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return proc, None  # not ready within the cap: recorded as such


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pct(values: list[float]) -> dict[str, float]:
    a = np.asarray(values)
    return {"p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)),
            "mean": float(a.mean()), "n": len(a)}  # fmt: skip


#: Every server started, stopped on the way out whatever happened.
STARTED: list[subprocess.Popen] = []

if __name__ == "__main__":
    try:
        main()
    finally:
        for leftover in STARTED:
            if leftover.poll() is None:
                leftover.kill()
