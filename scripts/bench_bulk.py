"""make bench-bulk: images per second of the local engine and of Ray Data on the same cores,
and a two-node local Ray cluster checked for correctness (issue 15).

    python scripts/bench_bulk.py --images ../shared/data/smvs-dvd/images --n 300 --json out.json

Each run indexes the same files into a fresh collection (default model and settings); the
Ray runs' time excludes starting Ray. The two-node cluster (ray.cluster_utils: a head and a
worker process of one CPU each) shares this machine's cores, so its time says nothing of
scaling: what it shows is that the result equals the local engine's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import ray
from ray.cluster_utils import Cluster

from imsearch.bulk import index_on_ray
from imsearch.engine import Engine, open_engine
from imsearch.indexing import folder_files, index_files
from imsearch.settings import Settings


def engine(root: Path) -> Engine:
    return open_engine(Settings(data_dir=root))


def same(a: Engine, b: Engine) -> dict[str, Any]:
    ids_a, vectors_a = a.store.all_vectors()
    ids_b, vectors_b = b.store.all_vectors()
    position = {image_id: i for i, image_id in enumerate(ids_b)}
    if sorted(ids_a) != sorted(ids_b):
        return {"same_ids": False}
    cosines = np.einsum("ij,ij->i", vectors_a, vectors_b[[position[i] for i in ids_a]])
    return {"same_ids": True, "min_cosine": float(cosines.min())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-bulk-"))
    source = work / "source"
    source.mkdir()
    for path in sorted(args.images.iterdir())[: args.n]:
        os.symlink(path.resolve(), source / path.name)
    files = folder_files(source)
    cores = len(os.sched_getaffinity(0))
    rows: dict[str, Any] = {"images": len(files), "cores": cores}

    local = engine(work / "local")
    started = time.perf_counter()
    index_files(files, local.store, local.extractor, local.settings.image_limits(),
                local.settings.batch_size, False, local.sift)  # fmt: skip
    rows["local_images_per_s"] = len(files) / (time.perf_counter() - started)

    ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False)
    on_ray = engine(work / "ray")
    started = time.perf_counter()
    index_on_ray(files, on_ray.store, on_ray.settings, progress=False)
    rows["ray_images_per_s"] = len(files) / (time.perf_counter() - started)
    rows["ratio"] = rows["ray_images_per_s"] / rows["local_images_per_s"]
    rows["ray_equals_local"] = same(local, on_ray)
    ray.shutdown()

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
    two = engine(work / "two-nodes")
    started = time.perf_counter()
    index_on_ray(files, two.store, two.settings, progress=False)
    rows["two_nodes_images_per_s"] = len(files) / (time.perf_counter() - started)
    rows["two_nodes_equal_local"] = same(local, two)
    ray.shutdown()
    cluster.shutdown()

    for opened in (local, on_ray, two):
        opened.close()
    shutil.rmtree(work, ignore_errors=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=2))
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
