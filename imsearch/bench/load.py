"""``imsearch bench load``: throughput and latency of a running gateway under concurrent clients.

Each client thread posts photos from a folder to ``/v1/search`` in a loop for ``duration_s``.
With ``cache_bust`` a few random bytes are appended after each JPEG's end marker (decoders
ignore them), so every request is a cache miss and pays for extraction — the realistic worst
case; without it, repeated photos hit the cache. The core has no web code: this module only
needs httpx, which the ``serve`` extra installs.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from imsearch.images import list_images


@dataclass
class _Tally:
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    stages: dict[str, list[float]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def run_load(
    url: str,
    images: Path,
    concurrency: int,
    duration_s: float,
    params: dict[str, Any] | None = None,
    cache_bust: bool = True,
) -> dict[str, Any]:
    """One load level; returns throughput, latency percentiles and error counts."""
    import httpx  # imported here: the core itself never needs it

    photos = [p.read_bytes() for p in list_images(images)]
    if not photos:
        raise ValueError(f"no images under {images}")
    tally = _Tally()
    deadline = time.monotonic() + duration_s

    def client(worker: int) -> None:
        rng = np.random.default_rng(worker)
        with httpx.Client(base_url=url, timeout=120) as http:
            i = worker
            while time.monotonic() < deadline:
                data = photos[i % len(photos)]
                i += concurrency
                if cache_bust:
                    data += os.urandom(8) + bytes(rng.integers(0, 255, 4, dtype=np.uint8))
                started = time.perf_counter()
                try:
                    reply = http.post(
                        "/v1/search", files={"image": ("q.jpg", data)}, params=params or {}
                    )
                    key = "ok" if reply.status_code == 200 else str(reply.status_code)
                except httpx.HTTPError as exc:
                    reply, key = None, type(exc).__name__
                elapsed = time.perf_counter() - started
                with tally.lock:
                    if key == "ok" and reply is not None:
                        tally.latencies.append(elapsed)
                        for stage, ms in reply.json()["timings_ms"].items():
                            tally.stages.setdefault(stage, []).append(ms)
                    else:
                        tally.errors[key] = tally.errors.get(key, 0) + 1

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(w,)) for w in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - started
    ms = np.array(tally.latencies) * 1e3
    return {
        "url": url,
        "concurrency": concurrency,
        "duration_s": wall,
        "requests": len(ms),
        "throughput_rps": len(ms) / wall if wall else 0.0,
        "latency_ms": percentiles(ms),
        "server_stage_ms_p50": {
            stage: statistics.median(values) for stage, values in tally.stages.items()
        },
        "errors": tally.errors,
        "cache_bust": cache_bust,
        "params": params or {},
    }


def percentiles(ms: np.ndarray) -> dict[str, float]:
    if len(ms) == 0:
        return {}
    return {f"p{q}": float(np.percentile(ms, q)) for q in (50, 95, 99)} | {"mean": float(ms.mean())}


def format_load(rows: Sequence[dict[str, Any]]) -> str:
    lines = [
        "| mode | clients | req/s | p50 ms | p95 ms | p99 ms | errors |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lat = r["latency_ms"]
        lines.append(
            f"| {r.get('mode', r['url'])} | {r['concurrency']} | {r['throughput_rps']:.2f} "
            f"| {lat.get('p50', 0):.0f} | {lat.get('p95', 0):.0f} | {lat.get('p99', 0):.0f} "
            f"| {sum(r['errors'].values())} |"
        )
    return "\n".join(lines)
