"""``imsearch bench soak``: minutes of mixed traffic against a running gateway.

Many clients search (some photos repeated, so the cache is exercised; the rest made unique),
add new images and delete their own earlier ones, while a sampler records the server
processes' resident memory, the collection size and each window's throughput and errors.
The report says whether memory grows faster than the collection explains: the "no unbounded
growth" check of a soak. Needs httpx (the ``serve`` extra); memory comes from /proc (Linux).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from imsearch.bench.load import percentiles
from imsearch.images import list_images

OPS = ("search", "add", "delete")


@dataclass
class SoakConfig:
    url: str
    images: Path
    clients: int = 16
    duration_s: float = 300.0
    #: Share of requests that add a new image, and that delete one this client added.
    add_share: float = 0.15
    delete_share: float = 0.05
    #: Share of searches that send a photo byte for byte again (cache hits).
    repeat_share: float = 0.3
    api_key: str | None = None
    #: Server processes whose memory (with their children) is sampled.
    pids: Sequence[int] = ()
    sample_s: float = 5.0
    rerank: str | None = None


@dataclass
class _Tally:
    latencies: dict[str, list[float]] = field(default_factory=lambda: {op: [] for op in OPS})
    statuses: dict[str, dict[str, int]] = field(default_factory=lambda: {op: {} for op in OPS})
    done: int = 0
    server_errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, op: str, status: str, seconds: float) -> None:
        with self.lock:
            self.done += 1
            counts = self.statuses[op]
            counts[status] = counts.get(status, 0) + 1
            if status.startswith("5") or not status[0].isdigit():
                self.server_errors += 1
            elif status.startswith("2"):
                self.latencies[op].append(seconds)


def rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` and all its descendants (0 once it is gone)."""
    total = 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
        for task in Path(f"/proc/{pid}/task").iterdir():
            children = (task / "children").read_text().split()
            total += sum(rss_bytes(int(child)) for child in children)
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return total


def run_soak(config: SoakConfig) -> dict[str, Any]:
    """Run the soak; returns totals, per-operation latencies and the samples over time."""
    import httpx

    photos = [p.read_bytes() for p in list_images(config.images)]
    if not photos:
        raise ValueError(f"no images under {config.images}")
    tally = _Tally()
    started = time.monotonic()
    deadline = started + config.duration_s
    stop = threading.Event()
    headers = {"X-API-Key": config.api_key} if config.api_key else {}
    params = {"rerank": config.rerank} if config.rerank else {}

    def send(http: httpx.Client, op: str, photo: bytes, image_id: str) -> httpx.Response:
        if op == "add":  # new bytes after the JPEG's end: a new image to the engine
            files = {"image": ("a.jpg", photo + os.urandom(16))}
            return http.post("/v1/images", files=files, data={"id": image_id})
        if op == "delete":
            return http.delete(f"/v1/images/{image_id}")
        return http.post("/v1/search", files={"image": ("q.jpg", photo)}, params=params)

    def client(worker: int) -> None:
        rng = np.random.default_rng(worker)
        mine: list[str] = []
        with httpx.Client(base_url=config.url, timeout=120, headers=headers) as http:
            n = 0
            while time.monotonic() < deadline:
                n += 1
                draw = rng.random()
                photo = photos[int(rng.integers(len(photos)))]
                op, image_id = "search", ""
                if draw < config.add_share:
                    op, image_id = "add", f"soak/{worker}/{n}"
                elif draw < config.add_share + config.delete_share and mine:
                    op, image_id = "delete", mine.pop(0)
                elif rng.random() >= config.repeat_share:
                    photo += os.urandom(16)  # a cache miss
                t0 = time.perf_counter()
                try:
                    status = str(send(http, op, photo, image_id).status_code)
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                tally.record(op, status, time.perf_counter() - t0)
                if op == "add" and status == "201":
                    mine.append(image_id)

    samples: list[dict[str, Any]] = []

    def sampler() -> None:
        last_done = last_errors = 0
        last_t = started
        with httpx.Client(base_url=config.url, timeout=30, headers=headers) as http:
            while not stop.is_set():
                now = time.monotonic()
                try:
                    count = float(http.get("/v1/stats").json().get("count", 0))
                except (httpx.HTTPError, ValueError):
                    count = float("nan")
                with tally.lock:
                    done, errors = tally.done, tally.server_errors
                by_pid = {str(pid): rss_bytes(pid) / 2**20 for pid in config.pids}
                samples.append(
                    {
                        "t_s": now - started,
                        "rss_mb": sum(by_pid.values()),
                        "rss_mb_by_pid": by_pid,
                        "count": count,
                        "rps": (done - last_done) / max(now - last_t, 1e-9),
                        "server_errors": float(errors - last_errors),
                    }
                )
                last_done, last_errors, last_t = done, errors, now
                stop.wait(config.sample_s)

    threads = [threading.Thread(target=client, args=(w,)) for w in range(config.clients)]
    watcher = threading.Thread(target=sampler)
    watcher.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stop.set()
    watcher.join()
    wall = time.monotonic() - started
    return {
        "url": config.url,
        "clients": config.clients,
        "duration_s": wall,
        "requests": tally.done,
        "throughput_rps": tally.done / wall,
        "server_errors": tally.server_errors,
        "ops": {
            op: {
                "statuses": tally.statuses[op],
                "latency_ms": percentiles(np.array(tally.latencies[op]) * 1e3),
            }
            for op in OPS
        },
        "memory": memory_trend(samples),
        "samples": samples,
        "config": {k: v for k, v in vars(config).items() if k not in {"api_key", "pids", "images"}},
    }


def memory_trend(samples: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Memory over the run: start (after the first tenth, once models and caches are warm),
    end, peak, the medians of the first and last thirds after warm-up (robust to the swings
    of a busy allocator), and the growth rate over the second half against the collection's."""
    if len(samples) < 4:
        return {}
    t = np.array([s["t_s"] for s in samples])
    rss = np.array([s["rss_mb"] for s in samples])
    count = np.array([s["count"] for s in samples])
    warm = t >= t[-1] * 0.1
    half = t >= t[-1] * 0.5
    rss_slope = float(np.polyfit(t[half] / 60, rss[half], 1)[0]) if half.sum() >= 2 else 0.0
    ok = half & np.isfinite(count)
    count_slope = float(np.polyfit(t[ok] / 60, count[ok], 1)[0]) if ok.sum() >= 2 else 0.0
    thirds = np.array_split(rss[warm], 3)
    return {
        "rss_median_first_third_mb": float(np.median(thirds[0])),
        "rss_median_last_third_mb": float(np.median(thirds[-1])),
        "rss_start_mb": float(rss[warm][0]),
        "rss_end_mb": float(rss[-1]),
        "rss_peak_mb": float(rss.max()),
        "rss_mb_per_min_second_half": rss_slope,
        "images_per_min_second_half": count_slope,
        "count_start": float(count[warm][0]),
        "count_end": float(count[-1]),
    }


def format_soak(report: dict[str, Any]) -> str:
    lines = [
        f"{report['requests']} requests in {report['duration_s']:.0f} s "
        f"({report['throughput_rps']:.2f}/s) from {report['clients']} clients; "
        f"server errors (5xx or no answer): {report['server_errors']}",
        "",
        "| operation | answers by status | p50 ms | p95 ms | p99 ms |",
        "|---|---|---|---|---|",
    ]
    for op, row in report["ops"].items():
        lat = row["latency_ms"]
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(row["statuses"].items()))
        lines.append(
            f"| {op} | {statuses or '-'} | {lat.get('p50', 0):.0f} | {lat.get('p95', 0):.0f} "
            f"| {lat.get('p99', 0):.0f} |"
        )
    memory = report["memory"]
    if memory:
        lines += [
            "",
            f"memory: {memory['rss_start_mb']:.0f} MB after warm-up → {memory['rss_end_mb']:.0f} MB"
            f" at the end (peak {memory['rss_peak_mb']:.0f} MB; median of the first third "
            f"{memory['rss_median_first_third_mb']:.0f} MB, of the last "
            f"{memory['rss_median_last_third_mb']:.0f} MB); second half: "
            f"{memory['rss_mb_per_min_second_half']:+.1f} MB/min while the collection grew "
            f"{memory['images_per_min_second_half']:+.1f} images/min "
            f"({memory['count_start']:.0f} → {memory['count_end']:.0f})",
        ]
    return "\n".join(lines)
