"""Bulk indexing on Ray Data: what ``imsearch index`` does, spread over a Ray cluster.

    driver: list the files (the ids of imsearch.indexing), hold the data directory's lock
      → ray.data.from_items
      → map_batches(_prepare)            CPU tasks: read, hash, skip what is indexed with the
                                         same content, decode, thumbnail, RootSIFT
      → map_batches(_Embed, concurrency) an actor pool, the network loaded once per actor
                                         (one GPU each when the cluster has GPUs)
      → iter_batches in the driver       store.add per batch: durable before the next batch
                                         is taken, so a run killed at any point resumes

The driver is the collection's one writer; workers only read source files and return
results. The decoding, the network and SIFT are the local engine's own functions, so the ids,
descriptors and local features are the same as ``imsearch index`` gives for the same files.
Ray is imported here only (the ``bulk`` extra): nothing else in the core or the services
needs it.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image
from tqdm import tqdm

from imsearch.errors import InvalidImage
from imsearch.index.catalog import Item
from imsearch.index.store import IndexStore
from imsearch.indexing import IndexReport, Loaded, read_source, screen
from imsearch.optional import require
from imsearch.settings import Settings
from imsearch.sources import SourceFile, is_url, shown

log = logging.getLogger(__name__)

#: Images per Ray batch between stages (and per durable write in the driver).
BATCH = 16
#: CPUs Ray reserves per preparing task and per network actor. Different values keep Ray
#: from fusing the two stages into the actor (decoding would then wait for the network).
#: A whole CPU per preparing task bounds how many decode at once beside the network (whose
#: own threads use every core whatever Ray reserves): on 2 cores, 0.5 gave 3.7 images/s,
#: 1.0 gave 4.1, end to end over 300 images.
PREPARE_CPUS = 1.0
EMBED_CPUS = 0.25


class Sink(Protocol):
    """Where finished batches go: the collection's store here, or the search service that
    owns it (services/search/client.py's ``RemoteSink``) while it runs — one writer either
    way."""

    def known(self, ids: Sequence[str]) -> dict[str, str | None]:
        """Content hashes of those of ``ids`` the collection holds (to skip them)."""
        ...

    def add(self, items: Sequence[Item]) -> None:
        """Write ``items`` durably before returning."""
        ...

    def finish(self) -> None: ...


class StoreSink:
    """The collection's store opened by this process (no server runs on it)."""

    def __init__(self, store: IndexStore) -> None:
        self.store = store

    def known(self, ids: Sequence[str]) -> dict[str, str | None]:
        return self.store.catalog.hashes_by_id()  # all of it: cheap here, and covers hash ids

    def add(self, items: Sequence[Item]) -> None:
        self.store.add(items)

    def finish(self) -> None:
        self.store.snapshot()


def index_on_ray(
    files: Sequence[SourceFile],
    sink: Sink | IndexStore,
    settings: Settings,
    address: str | None = None,
    actors: int | None = None,
    batch_size: int = BATCH,
    progress: bool = True,
) -> IndexReport:
    """Index ``files`` into ``sink`` on the Ray cluster at ``address`` (None: a local one
    started for this run). ``actors``: network actors (default: one per GPU, else one)."""
    require("ray")
    import ray

    if isinstance(sink, IndexStore):
        sink = StoreSink(sink)
    started = time.perf_counter()
    report = IndexReport(found=len(files))
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    gpus = int(ray.cluster_resources().get("GPU", 0))
    pool = actors or max(1, gpus)
    # What is indexed already (files with content-hash ids are read to know theirs).
    indexed = sink.known([i for _, i, _ in files if i])
    config = settings.model_dump(mode="json")
    rows = [{"path": str(p), "id": i or "", "shown": shown(s)} for p, i, s in files]
    dataset = (
        _data(ray)
        .from_items(rows)
        .map_batches(
            _prepare,
            batch_size=batch_size,
            fn_kwargs={"config": config, "indexed_ref": ray.put(indexed)},
            num_cpus=PREPARE_CPUS,
        )
        .map_batches(
            _Embed,
            batch_size=batch_size,
            compute=_data(ray).ActorPoolStrategy(size=pool),
            num_gpus=1 if gpus else 0,
            num_cpus=EMBED_CPUS,
            fn_constructor_kwargs={"config": config},
        )
    )
    seen: set[str] = set()
    bar = tqdm(total=len(files), unit="img", disable=not progress, desc="indexing (ray)")
    # Each batch as the network finishes it: prefetching held every batch back until the next
    # one was done (the first write came 4 s later on two cores).
    for batch in dataset.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=0):
        items = [item for item in _items(batch, seen, indexed, report) if item is not None]
        if items:
            sink.add(items)
            report.added += len(items)
        bar.update(len(batch["id"]))
    bar.close()
    sink.finish()
    report.seconds = time.perf_counter() - started
    return report


def _data(ray: Any) -> Any:
    import ray.data

    return ray.data


def _items(
    batch: dict[str, np.ndarray],
    seen: set[str],
    indexed: dict[str, str | None],
    report: IndexReport,
) -> list[Item | None]:
    """The batch's rows as items to add (None for a row screened out: counted in ``report``)."""
    out: list[Item | None] = []
    for row in range(len(batch["id"])):
        loaded = Loaded(str(batch["id"][row]), str(batch["sha256"][row]), str(batch["shown"][row]))
        loaded.error = str(batch["error"][row])
        if not screen(loaded, seen, indexed, report):
            out.append(None)
            continue
        vector = np.frombuffer(batch["vector"][row], dtype=np.float32).copy()
        local = bytes(batch["local"][row]) or None
        thumbnail = bytes(batch["thumbnail"][row]) or None
        metadata = {"path": loaded.shown}
        out.append(Item(loaded.ext_id, vector, loaded.sha256, metadata, local, thumbnail))
    return out


# -- the stages (run in Ray workers) -------------------------------------------------------------


#: What the collection held when the run started, fetched once per worker process.
_indexed: dict[str, dict[str, str | None]] = {}


def _known(ref: Any) -> dict[str, str | None]:
    import ray

    key = ref.hex()
    if key not in _indexed:
        _indexed.clear()
        _indexed[key] = ray.get(ref)
    return _indexed[key]


def _prepare(
    batch: dict[str, np.ndarray], config: dict[str, Any], indexed_ref: Any
) -> dict[str, np.ndarray]:
    """Read, screen, decode, thumbnail and SIFT each file; the decoded pixels travel on to
    the network as raw RGB bytes with their shape."""
    from imsearch.engine import make_sift

    indexed = _known(indexed_ref)

    settings = Settings.model_validate(config)
    limits = settings.image_limits()
    sift = make_sift(settings) if settings.local_features else None
    model = settings.model()
    side = max(math.ceil(model.max_side * max(model.scales)), sift.max_side if sift else 0)
    columns: dict[str, list[Any]] = {
        k: [] for k in ("id", "sha256", "shown", "error", "pixels", "shape", "local", "thumbnail")
    }
    for path, ext_id, label in zip(batch["path"], batch["id"], batch["shown"], strict=True):
        location = str(path)
        loaded, data = read_source(
            location if is_url(location) else Path(location), str(ext_id) or None, str(label)
        )
        pixels, shape = b"", (0, 0)
        if not loaded.error and indexed.get(loaded.ext_id) != loaded.sha256:
            try:
                image = _decode(data, limits, side)
                pixels, shape = image.tobytes(), (image.height, image.width)
                from imsearch.images import make_thumbnail

                loaded.thumbnail = make_thumbnail(image)
                if sift is not None:
                    loaded.local = sift.extract(image).to_bytes()
            except InvalidImage as exc:
                loaded.error = f"{exc.code}: {exc.message}"
        for key, value in (
            ("id", loaded.ext_id), ("sha256", loaded.sha256), ("shown", loaded.shown),
            ("error", loaded.error), ("pixels", pixels), ("shape", np.array(shape)),
            ("local", loaded.local or b""), ("thumbnail", loaded.thumbnail or b""),
        ):  # fmt: skip
            columns[key].append(value)
    return {key: _column(values) for key, values in columns.items()}


def _decode(data: bytes, limits: Any, side: int) -> Image.Image:
    from imsearch.images import decode_image

    return decode_image(data, limits, side).convert("RGB")


def _column(values: list[Any]) -> np.ndarray:
    if values and isinstance(values[0], np.ndarray):
        return np.stack(values)
    column = np.empty(len(values), dtype=object)
    column[:] = values
    return column


class _Embed:
    """The network, loaded once per actor; describes the decoded images of a batch."""

    def __init__(self, config: dict[str, Any]) -> None:
        from imsearch.features.extractor import Extractor

        settings = Settings.model_validate(config)
        # Ray sets OMP_NUM_THREADS to the CPUs it reserved for the actor (1 here): the network
        # would then run on one thread. It gets the cores this process may use, as in the
        # local engine, unless IMSEARCH_THREADS says otherwise.
        threads = settings.threads or len(os.sched_getaffinity(0))
        import torch

        torch.set_num_threads(threads)  # pooling and whitening stay in PyTorch
        self.extractor = Extractor(
            settings.model(), settings.device, settings.batch_size, settings.runtime, threads
        )

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        todo = [i for i, pixels in enumerate(batch["pixels"]) if len(pixels)]
        images = [
            Image.frombytes("RGB", (int(batch["shape"][i][1]), int(batch["shape"][i][0])),
                            bytes(batch["pixels"][i]))
            for i in todo
        ]  # fmt: skip
        vectors = self.extractor.describe(images)  # (0, dim) for none
        out: list[bytes] = [b""] * len(batch["pixels"])
        for i, vector in zip(todo, vectors, strict=True):
            out[i] = np.ascontiguousarray(vector, dtype=np.float32).tobytes()
        result = {k: v for k, v in batch.items() if k not in ("pixels", "shape")}
        result["vector"] = _column(out)
        return result
