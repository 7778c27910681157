"""make bench-bulk: images per second of the local engine and of Ray Data on the same cores,
and a two-node local Ray cluster checked for correctness (issue 15).

    python -m imsearch.bench.bulk --dataset ../shared/data/smvs-dvd \
        --distractors ../shared/data/distractors-4k/images --n 1000 --check-n 300 --json out.json

The images: the dataset's database, then its queries, then distractors, up to ``--n``, listed
in a manifest (path TAB id) that every run reads. Speed: the local engine and Ray on this
machine's cores index all ``--n`` into fresh collections; ``end_to_end`` counts from the
start (loading the network; for Ray, starting Ray too) to the last durable write,
``steady`` from the first durable write to the last (what a long bulk load runs at).
Correctness: a two-node local Ray cluster (ray.cluster_utils: a head and a worker node of one
CPU each, sharing this machine's cores, so its speed says nothing of scaling) indexes the
first ``--check-n``; its descriptors must equal the local engine's, and every query photo not
indexed must find its cover first.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import ray
from ray.cluster_utils import Cluster

from imsearch.bulk import index_on_ray
from imsearch.engine import Engine, open_engine
from imsearch.evaluate.datasets import load_dataset
from imsearch.images import list_images
from imsearch.index.catalog import Item
from imsearch.indexing import index_files, maybe_learn_vocabulary, maybe_learn_whitening
from imsearch.settings import Settings
from imsearch.sources import manifest_files


class Clock:
    """When each durable write of a run finished."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.writes: list[tuple[float, int]] = []
        self.writing = 0.0

    def wrap(self, add: Callable[[Sequence[Item]], Any]) -> Callable[[Sequence[Item]], Any]:
        def timed(items: Sequence[Item]) -> Any:
            began = time.perf_counter()
            out = add(items)
            self.writes.append((time.perf_counter(), len(items)))
            self.writing += self.writes[-1][0] - began
            return out

        return timed

    def rates(self) -> dict[str, float]:
        total = sum(n for _, n in self.writes)
        first, last = self.writes[0][0], self.writes[-1][0]
        return {
            "end_to_end_images_per_s": total / (last - self.start),
            "steady_images_per_s": (total - self.writes[0][1]) / (last - first),
            "first_write_s": first - self.start,
            "write_ms_per_image": 1000 * self.writing / total,
        }


def stage_costs(files: Sequence[Any], settings: Settings, n: int = 48) -> dict[str, float]:
    """Milliseconds per image of the two Ray stages, run here one after the other on this
    process (all cores for the network, as its actor has): what a GPU estimate starts from."""
    from imsearch.bulk import _Embed, _prepare

    rows = [{"path": str(p), "id": i or "", "shown": str(s)} for p, i, s in files[:n]]
    batch = {k: np.array([r[k] for r in rows], dtype=object) for k in rows[0]}
    config = settings.model_dump(mode="json")
    embed = _Embed(config)
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    empty = ray.put({})  # type: ignore[var-annotated]
    _prepare({k: v[:4] for k, v in batch.items()}, config, empty)  # warm up both stages
    began = time.perf_counter()
    prepared = _prepare(batch, config, empty)
    prepare = time.perf_counter() - began
    embed({k: v[:4] for k, v in prepared.items()})
    began = time.perf_counter()
    embed(prepared)
    network = time.perf_counter() - began
    ray.shutdown()
    return {"prepare_ms": 1000 * prepare / n, "network_cpu_ms": 1000 * network / n}


def write_manifest(args: argparse.Namespace, path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """The manifest of the run's images; returns the cover each of the first --check-n ids
    shows (a query photo shows its cover) and, for each query left out of them, its cover."""
    data = load_dataset(args.dataset)
    rows = list(zip(data.database_paths, data.database_ids, strict=True))
    rows += [(q.path, f"query/{q.id}") for q in data.queries]
    if args.distractors:
        rows += [(p, f"distractor/{p.stem}") for p in list_images(args.distractors)]
    rows = rows[: args.n]
    path.write_text("".join(f"{p.resolve()}\t{i}\n" for p, i in rows))
    cover = {f"query/{q.id}": data.database_ids[q.gt.ok[0]] for q in data.queries if q.gt.ok}
    checked = {i: cover.get(i, i) for _, i in rows[: args.check_n]}
    held_out = {
        str(q.path): cover[f"query/{q.id}"]
        for q in data.queries
        if f"query/{q.id}" not in checked and q.gt.ok
    }
    return checked, held_out


def remote_write_cost(local: Engine, work: Path, n: int = 320) -> dict[str, float]:
    """Milliseconds per image of writing through a search service (what a bulk job does
    while one runs: RemoteSink, batches of 16 as the driver sends them) and of writing to the
    store directly, for ``n`` of the local collection's images (local features, thumbnails)."""
    import socket
    import subprocess
    import sys

    import httpx

    from services.common.client import ServiceClient
    from services.search.client import RemoteSearcher, RemoteSink

    ids = local.store.all_vectors()[0][:n]
    ints = local.store.catalog.int_ids_of(ids)
    features = local.store.local_features(list(ints.values()))
    items = []
    for image_id in ids:
        item, thumb = local.store.get(image_id), local.store.catalog.thumbnail(image_id)
        assert item is not None
        items.append(
            dataclasses.replace(
                item, local=features.get(ints[image_id]), thumbnail=thumb[0] if thumb else None
            )
        )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "imsearch.cli", "serve", "--role", "search",
               "--data-dir", str(work / "service"), "--port", str(port)]  # fmt: skip
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        client = ServiceClient("search", url, 60.0, 0)
        searcher = RemoteSearcher(client, lambda: local.extractor.model_id)
        searcher.create_collection("bulk", None, local.extractor.model_id, local.extractor.dim)
        sink = RemoteSink(searcher, "bulk")
        began = time.perf_counter()
        for start in range(0, len(items), 16):
            sink.add(items[start : start + 16])
        remote = time.perf_counter() - began
        client.close()
    finally:
        server.terminate()
        server.wait(timeout=60)
    direct = opened(work / "direct")
    began = time.perf_counter()
    for start in range(0, len(items), 16):
        direct.store.add(items[start : start + 16])
    local_s = time.perf_counter() - began
    direct.close()
    return {
        "images": len(items),
        "through_search_service_ms": 1000 * remote / len(items),
        "to_the_store_ms": 1000 * local_s / len(items),
    }


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (the local engine's, when it ran first)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def opened(root: Path) -> Engine:
    return open_engine(Settings(data_dir=root))


def same(a: Engine, b: Engine) -> dict[str, Any]:
    """Whether ``b`` holds the ids of ``a``'s it should, with the same descriptors."""
    ids_b, vectors_b = b.store.all_vectors()
    position = {image_id: i for i, image_id in enumerate(ids_b)}
    ids_a, vectors_a = a.store.all_vectors()
    rows = [n for n, image_id in enumerate(ids_a) if image_id in position]
    if len(rows) != len(ids_b):
        return {"same_ids": False}
    picked = [position[ids_a[n]] for n in rows]
    cosines = np.einsum("ij,ij->i", vectors_a[rows], vectors_b[picked])
    return {"same_ids": True, "images": len(rows), "min_cosine": float(cosines.min())}


def found_first(engine: Engine, shows: dict[str, str], held_out: dict[str, str]) -> dict[str, Any]:
    """How many held-out query photos find their cover (or a photo of it) first."""
    hits = sum(
        shows.get(engine.pipeline.search(Path(path).read_bytes(), 1).hits[0].id) == cover
        for path, cover in held_out.items()
    )
    return {"queries": len(held_out), "cover_first": hits}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--distractors", type=Path)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--check-n", type=int, default=300)
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-bulk-"))
    manifest = work / "images.tsv"
    shows, held_out = write_manifest(args, manifest)
    files = manifest_files(str(manifest))
    cores = len(os.sched_getaffinity(0))
    rows: dict[str, Any] = {"images": len(files), "cores": cores}

    clock = Clock()
    local = opened(work / "local")
    local.store.add = clock.wrap(local.store.add)  # type: ignore[method-assign,assignment]
    index_files(files, local.store, local.extractor, local.settings.image_limits(),
                local.settings.batch_size, False, local.sift)  # fmt: skip
    rows["local"] = clock.rates() | {"peak_rss_mb": peak_rss_mb()}

    clock = Clock()
    ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False)
    on_ray = opened(work / "ray")
    on_ray.store.add = clock.wrap(on_ray.store.add)  # type: ignore[method-assign,assignment]
    index_on_ray(files, on_ray.store, on_ray.settings, progress=False)
    rows["ray"] = clock.rates()
    ray.shutdown()
    rows["ratio"] = {k: rows["ray"][k] / rows["local"][k] for k in rows["ray"] if "per_s" in k}
    rows["ray_equals_local"] = same(local, on_ray)

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
    two = opened(work / "two-nodes")
    clock = Clock()
    two.store.add = clock.wrap(two.store.add)  # type: ignore[method-assign,assignment]
    index_on_ray(files[: args.check_n], two.store, two.settings, progress=False)
    rows["two_nodes"] = clock.rates() | {"images": len(two.store)}
    ray.shutdown()
    cluster.shutdown()
    rows["two_nodes_equal_local"] = same(local, two)
    # What `imsearch index` does after either engine, before the collection is queried.
    maybe_learn_whitening(two.store, two.settings)
    maybe_learn_vocabulary(two.words, two.settings)
    rows["two_nodes_queries"] = found_first(two, shows, held_out)

    for engine in (local, on_ray, two):
        engine.close()
    rows["stages_per_image"] = stage_costs(files, Settings(data_dir=work / "stages"))
    rows["write_per_image"] = remote_write_cost(opened(work / "local"), work)
    shutil.rmtree(work, ignore_errors=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=2))
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
