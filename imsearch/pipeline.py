"""The query and add flows, over small interfaces so embedded mode and services share them.

    search(image bytes, k):
        hash → cache.get(model id, hash) → miss: extractor.extract → cache.put
             → searcher.candidates(top-K, global re-ranking, visual words, fusion)
             → reranker.rerank (geometric verification) → hits + per-stage timings

    add(id, image bytes): extractor.extract → searcher.add: descriptor, metadata, thumbnail
        and local features in one durable write (the collection's one system of record)

The embedded implementations (in-process extractor, the on-disk index, an LRU cache) live here
too; the services issue adds HTTP clients and a Redis cache behind the same protocols.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from PIL import Image

from imsearch.collection import DEFAULT, Collections
from imsearch.errors import IndexNotReady
from imsearch.features.local import LocalFeatures, SiftExtractor
from imsearch.ids import normalize_id
from imsearch.images import BBox, ImageLimits, crop_box, decode_image, make_thumbnail, sha256_hex
from imsearch.index.catalog import Item
from imsearch.index.filters import Filter
from imsearch.index.vectors import SearchKnobs
from imsearch.rerank.reranker import (
    Candidates,
    QueryFeatures,
    RankedHit,
    RerankConfig,
    RerankResult,
    SpatialReranker,
)

if TYPE_CHECKING:
    from imsearch.features.extractor import Extractor


@dataclass(frozen=True)
class Extracted:
    """Descriptors of a batch of images: global rows, and local features when asked for."""

    vectors: np.ndarray | None
    local: list[LocalFeatures] | None = None
    thumbnails: list[bytes] | None = None


class DescriptorExtractor(Protocol):
    """Decodes image bytes; returns raw global descriptors and, on request, local features."""

    @property
    def model_id(self) -> str: ...

    @property
    def dim(self) -> int: ...

    @property
    def local_id(self) -> str: ...

    def extract(
        self,
        images: Sequence[bytes],
        boxes: Sequence[BBox | None] | None = None,
        global_: bool = True,
        local: bool = False,
        thumbnails: bool = False,
        query: bool = False,
    ) -> Extracted: ...


class Searcher(Protocol):
    """The collections: where images are written, and where candidates come from. A
    ``collection`` of None is the searcher's own default one."""

    def add(self, items: Sequence[Item], collection: str | None = None) -> list[int]: ...

    def delete(self, ext_ids: Sequence[str], collection: str | None = None) -> int: ...

    def candidates(
        self,
        query: QueryFeatures,
        k: int,
        config: RerankConfig,
        knobs: SearchKnobs | None = None,
        where: Filter | None = None,
        collection: str | None = None,
    ) -> Candidates: ...


class DescriptorCache(Protocol):
    def get(self, key: str) -> Any | None: ...

    def put(self, key: str, value: Any) -> None: ...


class Reranker(Protocol):
    @property
    def config(self) -> RerankConfig: ...

    def rerank(
        self,
        query: LocalFeatures | None,
        candidates: Candidates,
        k: int,
        config: RerankConfig | None = None,
    ) -> RerankResult: ...


# -- embedded implementations ------------------------------------------------------------------


class InProcessExtractor:
    """The extractor in this process: safe decoding, then the network and SIFT."""

    def __init__(
        self,
        extractor: Extractor,
        limits: ImageLimits,
        sift: SiftExtractor | None = None,
        concurrency: int = 2,
        query_sift: SiftExtractor | None = None,
    ) -> None:
        self.extractor = extractor
        self.limits = limits
        self.sift = sift or SiftExtractor()
        #: Local features of query photos (a smaller side costs less; the collection's stay).
        self.query_sift = query_sift or self.sift
        # Requests beyond this wait their turn: on CPU, more extractions at once only share
        # the same cores while each holds its own full-size buffers (memory grows with them).
        self._slots = threading.BoundedSemaphore(concurrency)

    @property
    def model_id(self) -> str:
        return self.extractor.model_id

    @property
    def dim(self) -> int:
        return self.extractor.dim

    @property
    def local_id(self) -> str:
        """What a query's local features depend on (their cache key)."""
        return self.query_sift.config_id

    def decode(self, data: bytes, box: BBox | None = None) -> Image.Image:
        """Safe decoding at the resolution both descriptors need, cropped to ``box``."""
        if box is None:
            return decode_image(
                data, self.limits, max(self.extractor.decode_side, self.sift.max_side)
            )
        # No draft decoding: the box is in the coordinates of the full-size image.
        return crop_box(decode_image(data, self.limits), box)

    def extract(
        self,
        images: Sequence[bytes],
        boxes: Sequence[BBox | None] | None = None,
        global_: bool = True,
        local: bool = False,
        thumbnails: bool = False,
        query: bool = False,
    ) -> Extracted:
        """Decode each image once (cropped to its box, if any) and describe it; ``query``
        photos get the query side's local features."""
        boxes = boxes or [None] * len(images)
        sift = self.query_sift if query else self.sift
        with self._slots:
            decoded = [self.decode(data, box) for data, box in zip(images, boxes, strict=True)]
            vectors = self.extractor.describe(decoded) if global_ else None
            local_features = [sift.extract(img) for img in decoded] if local else None
            small = [make_thumbnail(img) for img in decoded] if thumbnails else None
        return Extracted(vectors, local_features, small)


class LRUCache:
    """A bounded in-process cache of query descriptors (Redis replaces it in services)."""

    def __init__(self, capacity: int = 1024) -> None:
        self.capacity = capacity
        self._data: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> Any | None:
        with self._lock:
            value = self._data.get(key)
            if value is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: str, value: Any) -> None:
        if self.capacity <= 0:
            return
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.capacity:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


class LocalSearcher:
    """The collections in this process: each one's index, then the stages that need it."""

    def __init__(self, collections: Collections, default: str = DEFAULT) -> None:
        self.collections = collections
        self.default = default

    def add(self, items: Sequence[Item], collection: str | None = None) -> list[int]:
        with self.collections.use(collection or self.default) as opened:
            return opened.store.add(items)

    def delete(self, ext_ids: Sequence[str], collection: str | None = None) -> int:
        with self.collections.use(collection or self.default) as opened:
            return opened.store.delete(ext_ids)

    def candidates(
        self,
        query: QueryFeatures,
        k: int,
        config: RerankConfig,
        knobs: SearchKnobs | None = None,
        where: Filter | None = None,
        collection: str | None = None,
    ) -> Candidates:
        name = collection or self.default
        try:
            with self.collections.use(name) as opened:
                hits = opened.store.search(query.vector[None, :], k, knobs, where)[0]
                found = opened.finder.find(query, hits, config, knobs, where)
        except IndexNotReady:  # nothing added to it yet: nothing to find
            return Candidates([], collection=name)
        found.collection, found.generation = name, opened.generation
        return found


# -- flows ----------------------------------------------------------------------------------------


@dataclass
class SearchResult:
    hits: list[RankedHit]
    model_id: str
    cached: bool
    no_confident_match: bool | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    rerank: dict[str, Any] = field(default_factory=dict)


def cache_key(kind: str, model_id: str, sha256: str, bbox: BBox | None = None) -> str:
    """Descriptors are cached per (kind, model, image content, crop): no other model reads them."""
    crop = "" if bbox is None else ":" + ",".join(f"{v:g}" for v in bbox)
    return f"{kind}:{model_id}:{sha256}{crop}"


class SearchPipeline:
    """Search and add, independent of where each stage runs."""

    def __init__(
        self,
        extractor: DescriptorExtractor,
        searcher: Searcher,
        cache: DescriptorCache | None = None,
        reranker: Reranker | None = None,
        knobs: SearchKnobs | None = None,
        local_features: bool = False,
    ) -> None:
        self.extractor = extractor
        self.searcher = searcher
        self.cache = cache if cache is not None else LRUCache(0)
        self.reranker: Reranker = (
            reranker if reranker is not None else SpatialReranker(config=RerankConfig("none"))
        )
        self.knobs = knobs or SearchKnobs()
        #: Extract and store local features when adding images.
        self.local_features = local_features

    def describe(
        self, data: bytes, bbox: BBox | None = None, local: bool = False
    ) -> tuple[QueryFeatures, bool]:
        """The query's features and whether they all came from the cache."""
        sha = sha256_hex(data)
        global_key = cache_key("desc", self.extractor.model_id, sha, bbox)
        local_key = cache_key("local", self.extractor.local_id, sha, bbox)
        vector = self.cache.get(global_key)
        local_bytes = self.cache.get(local_key) if local else None
        need_global, need_local = vector is None, local and local_bytes is None
        if need_global or need_local:
            got = self.extractor.extract(
                [data], [bbox], global_=need_global, local=need_local, query=True
            )
            if got.vectors is not None:
                vector = got.vectors[0]
                self.cache.put(global_key, vector)
            if got.local is not None:
                local_bytes = got.local[0].to_bytes()
                self.cache.put(local_key, local_bytes)
        local_features = LocalFeatures.from_bytes(local_bytes) if local_bytes else None
        assert vector is not None
        return QueryFeatures(vector, local_features), not (need_global or need_local)

    def search(
        self,
        data: bytes,
        k: int,
        bbox: BBox | None = None,
        knobs: SearchKnobs | None = None,
        rerank: RerankConfig | None = None,
        where: Filter | None = None,
        collection: str | None = None,
    ) -> SearchResult:
        """Top-``k`` for an uploaded image, optionally cropped to ``bbox``, among the images
        of ``collection`` (None: the searcher's default) whose metadata satisfy ``where``.

        ``knobs`` and ``rerank`` override the pipeline's defaults for this request.
        """
        config = rerank or self.reranker.config
        t0 = time.perf_counter()
        query, cached = self.describe(data, bbox, local=config.needs_local)
        t1 = time.perf_counter()
        shortlist = max(k, config.shortlist if config.stages else k)
        candidates = self.searcher.candidates(
            query, shortlist, config, _merge(self.knobs, knobs), where, collection
        )
        t2 = time.perf_counter()
        result = self.reranker.rerank(query.local, candidates, k, config)
        t3 = time.perf_counter()
        timings = {
            "extract": (t1 - t0) * 1e3,
            "search": (t2 - t1) * 1e3,
            "rerank": (t3 - t2) * 1e3,
            "total": (t3 - t0) * 1e3,
        }
        return SearchResult(
            result.hits,
            self.extractor.model_id,
            cached,
            result.no_confident_match,
            timings,
            {**config.describe(), **result.details},
        )

    def add(
        self,
        ext_id: str,
        data: bytes,
        metadata: dict[str, Any] | None = None,
        collection: str | None = None,
    ) -> Item:
        """Describe ``data`` and add (or replace) it under ``ext_id``; durable on return."""
        ext_id = normalize_id(ext_id)
        got = self.extractor.extract([data], local=self.local_features, thumbnails=True)
        assert got.vectors is not None
        local = got.local[0].to_bytes() if got.local else None
        thumbnail = got.thumbnails[0] if got.thumbnails else None
        item = Item(ext_id, got.vectors[0], sha256_hex(data), metadata or {}, local, thumbnail)
        self.searcher.add([item], collection)
        return item

    def delete(self, ext_id: str, collection: str | None = None) -> bool:
        """Delete ``ext_id``; True when the collection had it."""
        return bool(self.searcher.delete([normalize_id(ext_id)], collection))


def _merge(base: SearchKnobs, override: SearchKnobs | None) -> SearchKnobs:
    if override is None:
        return base
    return SearchKnobs(
        nprobe=override.nprobe or base.nprobe,
        ef_search=override.ef_search or base.ef_search,
        k_factor=override.k_factor or base.k_factor,
    )
