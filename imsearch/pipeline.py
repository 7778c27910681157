"""The query and add flows, over small interfaces so embedded mode and services share them.

    search(image bytes, k):
        hash → cache.get(model id, hash) → miss: extractor.describe → cache.put
             → searcher.search(top-K) → reranker.rerank → hits + per-stage timings

The embedded implementations (in-process extractor, the on-disk index, an LRU cache) live here
too; the services issue adds HTTP clients and a Redis cache behind the same protocols.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from imsearch.errors import ConfigError
from imsearch.features.extractor import Extractor
from imsearch.images import BBox, ImageLimits, crop_box, decode_image, sha256_hex
from imsearch.index.catalog import Item
from imsearch.index.store import Hit
from imsearch.index.vectors import SearchKnobs


class DescriptorExtractor(Protocol):
    """Decodes image bytes and returns raw global descriptors."""

    @property
    def model_id(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def describe(
        self, images: Sequence[bytes], boxes: Sequence[BBox | None] | None = None
    ) -> np.ndarray: ...


class Searcher(Protocol):
    def search(
        self, vectors: np.ndarray, k: int, knobs: SearchKnobs | None = None
    ) -> list[list[Hit]]: ...

    def add(self, items: Sequence[Item]) -> list[int]: ...

    def delete(self, ext_ids: Sequence[str]) -> int: ...


class DescriptorCache(Protocol):
    def get(self, key: str) -> np.ndarray | None: ...

    def put(self, key: str, value: np.ndarray) -> None: ...


class Reranker(Protocol):
    def rerank(self, query: np.ndarray, hits: list[Hit], k: int) -> list[Hit]: ...


# -- embedded implementations ------------------------------------------------------------------


class LocalExtractor:
    """The extractor in this process: safe decoding, then the network."""

    def __init__(self, extractor: Extractor, limits: ImageLimits) -> None:
        self.extractor = extractor
        self.limits = limits

    @property
    def model_id(self) -> str:
        return self.extractor.model_id

    @property
    def dim(self) -> int:
        return self.extractor.dim

    def describe(
        self, images: Sequence[bytes], boxes: Sequence[BBox | None] | None = None
    ) -> np.ndarray:
        """Descriptors of ``images``; a box ``(x1, y1, x2, y2)`` crops its image first."""
        boxes = boxes or [None] * len(images)
        decoded = []
        for data, box in zip(images, boxes, strict=True):
            if box is None:
                decoded.append(decode_image(data, self.limits, self.extractor.decode_side))
            else:
                # No draft decoding: the box is in the coordinates of the full-size image.
                decoded.append(crop_box(decode_image(data, self.limits), box))
        return self.extractor.describe(decoded)


class LRUCache:
    """A bounded in-process cache of query descriptors (Redis replaces it in services)."""

    def __init__(self, capacity: int = 1024) -> None:
        self.capacity = capacity
        self._data: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> np.ndarray | None:
        with self._lock:
            value = self._data.get(key)
            if value is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: str, value: np.ndarray) -> None:
        if self.capacity <= 0:
            return
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.capacity:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


class NoRerank:
    """Stage three switched off: keep the ANN order."""

    def rerank(self, query: np.ndarray, hits: list[Hit], k: int) -> list[Hit]:
        return hits[:k]


# -- flows ----------------------------------------------------------------------------------------


@dataclass
class SearchResult:
    hits: list[Hit]
    model_id: str
    cached: bool
    timings_ms: dict[str, float] = field(default_factory=dict)


def cache_key(model_id: str, sha256: str, bbox: BBox | None = None) -> str:
    """Descriptors are cached per (model, image content, crop): another model never reads them."""
    crop = "" if bbox is None else ":" + ",".join(f"{v:g}" for v in bbox)
    return f"desc:{model_id}:{sha256}{crop}"


class SearchPipeline:
    """Search and add, independent of where each stage runs."""

    def __init__(
        self,
        extractor: DescriptorExtractor,
        searcher: Searcher,
        cache: DescriptorCache | None = None,
        reranker: Reranker | None = None,
        knobs: SearchKnobs | None = None,
    ) -> None:
        self.extractor = extractor
        self.searcher = searcher
        self.knobs = knobs or SearchKnobs()
        self.cache = cache if cache is not None else LRUCache(0)
        self.reranker = reranker if reranker is not None else NoRerank()

    def describe(self, data: bytes, bbox: BBox | None = None) -> tuple[np.ndarray, bool]:
        """The query descriptor of ``data`` and whether it came from the cache."""
        key = cache_key(self.extractor.model_id, sha256_hex(data), bbox)
        cached = self.cache.get(key)
        if cached is not None:
            return cached, True
        vector = self.extractor.describe([data], [bbox])[0]
        self.cache.put(key, vector)
        return vector, False

    def search(
        self,
        data: bytes,
        k: int,
        bbox: BBox | None = None,
        shortlist: int | None = None,
        knobs: SearchKnobs | None = None,
    ) -> SearchResult:
        """Top-``k`` for an uploaded image, optionally cropped to ``bbox``.

        ``shortlist`` is how many ANN hits the reranker sees (at least ``k``); ``knobs``
        override the pipeline's default search knobs for this request.
        """
        t0 = time.perf_counter()
        vector, cached = self.describe(data, bbox)
        t1 = time.perf_counter()
        knobs = _merge(self.knobs, knobs)
        hits = self.searcher.search(vector[None, :], max(k, shortlist or k), knobs)[0]
        t2 = time.perf_counter()
        hits = self.reranker.rerank(vector, hits, k)
        t3 = time.perf_counter()
        timings = {
            "extract": (t1 - t0) * 1e3,
            "search": (t2 - t1) * 1e3,
            "rerank": (t3 - t2) * 1e3,
            "total": (t3 - t0) * 1e3,
        }
        return SearchResult(hits, self.extractor.model_id, cached, timings)

    def add(self, ext_id: str, data: bytes, metadata: dict[str, Any] | None = None) -> Item:
        """Describe ``data`` and add (or replace) it under ``ext_id``; durable on return."""
        vector = self.extractor.describe([data])[0]
        item = Item(ext_id, vector, sha256_hex(data), metadata or {})
        self.searcher.add([item])
        return item


def _merge(base: SearchKnobs, override: SearchKnobs | None) -> SearchKnobs:
    if override is None:
        return base
    return SearchKnobs(
        nprobe=override.nprobe or base.nprobe,
        ef_search=override.ef_search or base.ef_search,
        k_factor=override.k_factor or base.k_factor,
    )


#: Re-ranking methods ``eval --rerank`` and the API accept (the re-ranking issue adds more).
RERANK_METHODS = ("none",)


def make_reranker(name: str) -> Reranker:
    if name == "none":
        return NoRerank()
    raise ConfigError(f"unknown re-ranking method {name!r}; choose one of {RERANK_METHODS}")
