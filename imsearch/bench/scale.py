"""``imsearch bench scale``: a collection of N items, served by real processes, measured.

1. **Build** N items through the bulk path a user's ``imsearch index`` takes
   (:meth:`IndexStore.add` in batches, the vocabulary learned once the collection has
   ``vocabulary_min_images``, visual words computed by the words worker): descriptors of the
   default model's size (synthetic, clustered like real ones: :mod:`.ann_bench`), local
   features of the real size and distribution — the SIFT features of real photos, each item a
   perturbed copy (keypoints jittered by ~1.5 px, descriptor bins by ±3) of one of them.
2. **Serve** it: the search service (primary) and one rerank worker, each started as a real
   process; ``restart_s`` is the time from its start to ``/readyz`` 200.
3. **Query**: search calls with k = 100 (``latency_ms.search``); candidate calls (search with
   the spatial configuration: the visual-word shortlist and the fusion,
   ``latency_ms.candidates``) followed by rerank calls verifying M = 20 of them by reference
   (``latency_ms.rerank``); resident memory of both processes after the queries
   (``rss_mb``).
4. **Add** 1,000 more items over HTTP (descriptors and features given: extraction excluded)
   from 4 clients while one more searches (``add_per_s``).
5. **Snapshot**: what the upkeep writes after those 1,000 adds under the default policy
   (``snapshot_s``, ``snapshot_bytes``), and the full rewrite it does every
   ``IMSEARCH_SNAPSHOT_OPS`` entries (``snapshot_full_s``, ``snapshot_full_bytes``); and the
   restart that replays the 1,000 logged adds (``restart_s.search_after_adds``).

``disk_bytes_per_item`` counts everything in the data directory after the build.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from imsearch.bench.ann import synthetic_descriptors
from imsearch.engine import make_sift
from imsearch.features.local import LocalFeatures
from imsearch.images import list_images, load_image
from imsearch.index.catalog import Item
from imsearch.index.store import IndexStore
from imsearch.indexing import maybe_learn_vocabulary
from imsearch.rerank.visual_words import VisualWords
from imsearch.settings import Settings

MODEL_ID = "bench-scale"


@dataclass
class ScaleConfig:
    items: int
    work: Path
    features_from: Path
    dim: int = 320
    queries: int = 1000
    rerank_queries: int = 300
    adds: int = 1000
    batch: int = 256
    port: int = 0
    rerank_port: int = 0
    keep: bool = False

    def __post_init__(self) -> None:
        # 0 = a port the OS says is free now; "search port + 1" collided with other
        # processes on a busy machine (CI, two parallel test workers).
        self.port = self.port or free_port()
        self.rerank_port = self.rerank_port or free_port()
        if self.rerank_port == self.port:
            raise ValueError("the search and rerank ports must differ")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ItemSource:
    """Deterministic items: item i's descriptor and perturbed copy of a real photo's features."""

    def __init__(self, config: ScaleConfig, settings: Settings) -> None:
        sift = make_sift(settings)
        paths = list_images(config.features_from)[:64]
        if not paths:
            raise SystemExit(f"no images in {config.features_from} to take local features from")
        self.sources = [sift.extract(load_image(p)) for p in paths]
        total = config.items + config.adds + config.queries
        self.vectors = synthetic_descriptors(total, config.dim, seed=7)

    def features(self, i: int) -> LocalFeatures:
        rng = np.random.default_rng(i)
        base = self.sources[i % len(self.sources)]
        xy = base.xy + rng.normal(0, 1.5, base.xy.shape).astype(np.float32)
        noise = rng.integers(-3, 4, base.sift.shape)
        sift = np.clip(base.sift.astype(np.int16) + noise, 0, 255).astype(np.uint8)
        return LocalFeatures(xy, sift, base.width, base.height)

    def item(self, i: int) -> Item:
        return Item(
            f"item/{i:08d}", self.vectors[i], f"{i:064x}", {"n": i}, self.features(i).to_bytes()
        )


def build(
    config: ScaleConfig, settings: Settings, source: ItemSource, log: Callable[[str], None]
) -> dict[str, Any]:
    """The collection, through the bulk path; returns build timings and the vocabulary used."""
    data = config.work / "data"
    shutil.rmtree(data, ignore_errors=True)
    store = IndexStore(
        data, MODEL_ID, config.dim, settings.index_spec, local_encoding=settings.local_encoding
    )
    words = VisualWords(store)
    started = time.perf_counter()
    vocabulary_s, vocabulary = 0.0, "none"
    for start in range(0, config.items, config.batch):
        store.add([source.item(i) for i in range(start, min(start + config.batch, config.items))])
        if words.quantizer is None and start + config.batch >= settings.vocabulary_min_images:
            began = time.perf_counter()  # as `imsearch index` does (IMSEARCH_VOCABULARY)
            vocabulary = maybe_learn_vocabulary(words, settings)
            vocabulary_s = time.perf_counter() - began
            log(f"vocabulary: {vocabulary} in {vocabulary_s:.0f} s")
        if (start // config.batch) % 40 == 0:
            log(f"built {min(start + config.batch, config.items)}/{config.items}")
    words.flush()
    store.snapshot()
    words.save()
    store.close()
    return {
        "build_s": time.perf_counter() - started,
        "vocabulary_s": vocabulary_s,
        "vocabulary": vocabulary,
    }


def disk_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@contextmanager
def service(
    role: str, port: int, env: dict[str, str], log_path: Path
) -> Iterator[tuple[Any, float]]:
    """``imsearch serve --role ROLE`` as a process; yields it with its seconds to ready."""
    import httpx

    command = [sys.executable, "-m", "imsearch.cli", "serve", "--role", role, "--port", str(port)]
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            raise RuntimeError(f"port {port} is taken: choose another (--port, --rerank-port)")
    started = time.perf_counter()
    with open(log_path, "w") as out:
        proc = subprocess.Popen(
            command, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{role} exited: {log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        yield proc, time.perf_counter() - started
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=600)
        except subprocess.TimeoutExpired:
            proc.kill()


def percentiles(values: Sequence[float]) -> dict[str, float]:
    array = np.asarray(values)
    return {
        "p50": float(np.percentile(array, 50)),
        "p99": float(np.percentile(array, 99)),
        "mean": float(array.mean()),
        "n": len(array),
    }


def run_scale(
    config: ScaleConfig, settings: Settings, log: Callable[[str], None] = print
) -> dict[str, Any]:
    import httpx

    from services.common.codec import (
        candidates_from_pb,
        candidates_to_pb,
        item_to_pb,
        local_to_pb,
        rerank_config_to_pb,
        vector_to_pb,
    )
    from services.contracts.v1 import messages_pb2 as pb

    config.work.mkdir(parents=True, exist_ok=True)
    source = ItemSource(config, settings)
    timings = build(config, settings, source, log)
    data = config.work / "data"
    result: dict[str, Any] = {"items": config.items, "dim": config.dim, **timings}
    result["disk_bytes_per_item"] = disk_bytes(data) / config.items
    result["disk_bytes"] = {
        "catalog": disk_bytes(data)
        - disk_bytes(data / "features")
        - sum(disk_bytes(p) for p in data.glob("bow-*"))
        - sum(p.stat().st_size for p in data.glob("vectors-*.faiss")),
        "features": disk_bytes(data / "features"),
        "faiss": sum(p.stat().st_size for p in data.glob("vectors-*.faiss")),
        "visual_words": sum(disk_bytes(p) for p in data.glob("bow-*")),
    }
    log(f"built {config.items} items in {timings['build_s']:.0f} s; "
        f"{result['disk_bytes_per_item'] / 1000:.1f} kB per item")  # fmt: skip
    env = {"IMSEARCH_DATA_DIR": str(data), "IMSEARCH_RATE_LIMIT_PER_MIN": "0"}
    rerank_env = {**env, "IMSEARCH_DATA_DIR": str(config.work / "rerank"),
                  "IMSEARCH_FEATURE_STORE": str(data / "features")}  # fmt: skip
    search_url = f"http://127.0.0.1:{config.port}"
    rerank_url = f"http://127.0.0.1:{config.rerank_port}"
    headers = {"content-type": "application/x-protobuf"}
    rng = np.random.default_rng(11)
    queries = [int(i) for i in rng.integers(0, config.items, config.queries)]
    spatial = rerank_config_to_pb(settings.rerank_config())

    def query_vector(i: int) -> np.ndarray:
        noisy = source.vectors[i] + rng.normal(0, 0.02, config.dim).astype(np.float32)
        return noisy / np.linalg.norm(noisy)

    with (
        service("search", config.port, env, config.work / "search.log") as (search, search_s),
        service("rerank", config.rerank_port, rerank_env, config.work / "rerank.log") as (
            rerank,
            rerank_s,
        ),
        httpx.Client(timeout=120) as http,
    ):
        result["restart_s"] = {"search": search_s, "rerank": rerank_s}
        log(f"ready: search {search_s:.1f} s, rerank {rerank_s:.1f} s")
        search_ms = []
        for i in queries:
            body = pb.SearchRequest(
                queries=[vector_to_pb(query_vector(i))], k=100
            ).SerializeToString()
            began = time.perf_counter()
            reply = http.post(f"{search_url}/v1/search", content=body, headers=headers)
            search_ms.append((time.perf_counter() - began) * 1e3)
            reply.raise_for_status()
        candidates_ms, rerank_ms, verified = [], [], 0
        for i in queries[: config.rerank_queries]:
            local = local_to_pb(source.features(i))
            body = pb.SearchRequest(
                queries=[vector_to_pb(query_vector(i))], k=settings.rerank_shortlist,
                config=spatial, local=local,
            ).SerializeToString()  # fmt: skip
            began = time.perf_counter()
            reply = http.post(f"{search_url}/v1/search", content=body, headers=headers)
            candidates_ms.append((time.perf_counter() - began) * 1e3)
            reply.raise_for_status()
            found = pb.SearchResponse.FromString(reply.content).results[0].hits
            request = pb.RerankRequest(
                local=local, hits=candidates_to_pb(candidates_from_pb(found)), k=10, config=spatial
            ).SerializeToString()
            began = time.perf_counter()
            reply = http.post(f"{rerank_url}/v1/rerank", content=request, headers=headers)
            rerank_ms.append((time.perf_counter() - began) * 1e3)
            reply.raise_for_status()
            hits = pb.RerankResponse.FromString(reply.content).hits
            verified += bool(hits) and hits[0].verified and hits[0].id == f"item/{i:08d}"
        result["latency_ms"] = {
            "search": percentiles(search_ms),
            "candidates": percentiles(candidates_ms),
            "rerank": percentiles(rerank_ms),
        }
        result["rerank_found_own_item"] = verified / max(1, len(rerank_ms))
        result["rss_mb"] = {"search": rss_mb(search.pid), "rerank": rss_mb(rerank.pid)}
        log(f"queries: search p50 {result['latency_ms']['search']['p50']:.1f} ms, rerank p50 "
            f"{result['latency_ms']['rerank']['p50']:.1f} ms; rss {result['rss_mb']}")  # fmt: skip

        stop = threading.Event()

        def keep_searching() -> None:
            with httpx.Client(timeout=120) as client:
                while not stop.is_set():
                    body = pb.SearchRequest(queries=[vector_to_pb(query_vector(1))], k=100)
                    client.post(
                        f"{search_url}/v1/search", content=body.SerializeToString(), headers=headers
                    )

        def add_one(i: int) -> None:
            body = pb.AddRequest(model_id=MODEL_ID, items=[item_to_pb(source.item(i))])
            http.post(
                f"{search_url}/v1/add", content=body.SerializeToString(), headers=headers
            ).raise_for_status()

        searcher = threading.Thread(target=keep_searching)
        searcher.start()
        began = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(add_one, range(config.items, config.items + config.adds)))
        result["add_per_s"] = config.adds / (time.perf_counter() - began)
        stop.set()
        searcher.join()
        log(f"adds: {result['add_per_s']:.0f}/s")
    # The service stopped (SIGTERM): its upkeep policy decided whether to snapshot.
    after = snapshots(data, settings, env, config, log)
    result["restart_s"]["search_after_adds"] = after.pop("restart_s_after_adds")
    result.update(after)
    if not config.keep:
        shutil.rmtree(config.work, ignore_errors=True)
    return result


def snapshots(
    data: Path,
    settings: Settings,
    env: dict[str, str],
    config: ScaleConfig,
    log: Callable[[str], None],
) -> dict[str, Any]:
    with service("search", config.port, env, config.work / "search-2.log") as (_, after_s):
        pass
    store = IndexStore(data)
    pending = store.pending_ops()
    before = disk_bytes(data)
    began = time.perf_counter()
    store.checkpoint(settings.snapshot_ops)
    upkeep_s = time.perf_counter() - began
    upkeep_bytes = disk_bytes(data) - before
    began = time.perf_counter()
    store.snapshot()
    full_s = time.perf_counter() - began
    full_bytes = sum(p.stat().st_size for p in data.glob("vectors-*.faiss"))
    store.close()
    log(f"snapshot after {pending} adds: upkeep {upkeep_s:.2f} s, full rewrite {full_s:.2f} s")
    return {
        "restart_s_after_adds": after_s,
        "snapshot_pending_ops": pending,
        "snapshot_s": upkeep_s,
        "snapshot_bytes": max(0, upkeep_bytes),
        "snapshot_full_s": full_s,
        "snapshot_full_bytes": full_bytes,
    }
