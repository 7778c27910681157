"""Assemble the gateway's pipeline: each stage in this process or behind its service URL.

    IMSEARCH_EXTRACTOR_URL  unset → the network runs in the gateway
    IMSEARCH_SEARCH_URL     unset → the index lives in the gateway's data directory
    IMSEARCH_RERANK_URL     unset → re-ranking runs in the gateway (sharing the in-process
                            index when there is one, else keeping its own copy)
    IMSEARCH_REDIS_URL      unset → an in-process LRU caches query descriptors

With none of them set this is the embedded engine: one process, one data directory.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from imsearch.features.local import SiftExtractor
from imsearch.index.store import IndexStore
from imsearch.indexing import maintain_collection
from imsearch.pipeline import (
    DescriptorCache,
    DescriptorExtractor,
    InProcessExtractor,
    LRUCache,
    Reranker,
    Searcher,
    SearchPipeline,
    Writer,
)
from imsearch.rerank.local_index import LocalIndex
from imsearch.rerank.reranker import Reranker as LocalReranker
from imsearch.settings import Settings
from services.common.access import internal_token
from services.common.cache import RedisCache
from services.common.client import ServiceClient
from services.contracts.v1 import messages_pb2 as pb
from services.extractor.client import RemoteExtractor
from services.rerank.app import RerankState
from services.rerank.client import RemoteReranker
from services.search.client import RemoteSearcher

log = logging.getLogger(__name__)

Info = Callable[[Sequence[str]], dict[str, tuple[str | None, dict[str, Any]]]]
#: A stored thumbnail (JPEG) and its image's content hash, or None.
Thumbnail = Callable[[str], "tuple[bytes, str | None] | None"]
Task = Callable[[], object]


@dataclass
class Gateway:
    """The composed pipeline plus what the public API needs around it."""

    pipeline: SearchPipeline
    cache: DescriptorCache
    #: Content hash and metadata per id, from wherever the index lives.
    info: Info
    stats: Callable[[], dict[str, Any]]
    thumbnail: Thumbnail = lambda image_id: None
    clients: dict[str, ServiceClient] = field(default_factory=dict)
    #: Periodic upkeep (whitening, vocabulary, snapshots) of collections held in this process.
    maintainers: list[Task] = field(default_factory=list)
    closers: list[Task] = field(default_factory=list)

    def readiness(self) -> dict[str, str]:
        """``ok``/``down`` per remote service; the cache is ``ok``/``degraded``."""
        status = {name: "ok" if client.ready() else "down" for name, client in self.clients.items()}
        if isinstance(self.cache, RedisCache):
            status["cache"] = "ok" if self.cache.ping() else "degraded"
        return status

    def maintain(self) -> None:
        for task in self.maintainers:
            task()

    def close(self) -> None:
        for close in reversed(self.closers):
            try:
                close()
            except Exception:
                log.exception("closing the gateway")


def compose(settings: Settings) -> Gateway:
    if not (settings.extractor_url or settings.search_url or settings.rerank_url):
        return _embedded(settings)
    token = internal_token(settings)
    clients = {
        name: ServiceClient(
            name,
            url,
            settings.service_timeout_s,
            settings.service_retries,
            token,
            settings.service_max_in_flight,
            settings.service_queue_timeout_s,
        )
        for name, url in (
            ("extractor", settings.extractor_url),
            ("search", settings.search_url),
            ("search-read", settings.search_read_url),
            ("rerank", settings.rerank_url),
        )
        if url
    }
    gateway = Gateway(None, _cache(settings), lambda ids: {}, dict, clients=clients)  # type: ignore[arg-type]
    gateway.closers += [client.close for client in clients.values()]
    try:
        extractor = _extractor(settings, clients)
        searcher, store = _searcher(settings, clients, extractor, gateway)
        reranker, writers = _reranker(settings, clients, extractor, store, gateway)
    except BaseException:
        gateway.close()  # what was opened so far: the caller may try again
        raise
    gateway.pipeline = SearchPipeline(
        extractor,
        searcher,
        gateway.cache,
        reranker,
        settings.search_knobs(),
        local_features=settings.local_features,
        writers=[searcher, *writers],
    )
    return gateway


def _extractor(settings: Settings, clients: dict[str, ServiceClient]) -> DescriptorExtractor:
    if "extractor" in clients:
        return RemoteExtractor(clients["extractor"])
    from imsearch.features.extractor import Extractor  # torch: only when extracting here

    network = Extractor(settings.model(), settings.device, settings.batch_size)
    sift = SiftExtractor(settings.local_max_side, settings.local_max_keypoints)
    return InProcessExtractor(network, settings.image_limits(), sift, settings.extract_concurrency)


def _searcher(
    settings: Settings,
    clients: dict[str, ServiceClient],
    extractor: DescriptorExtractor,
    gateway: Gateway,
) -> tuple[Searcher, IndexStore | None]:
    if "search" in clients:
        remote = RemoteSearcher(
            clients["search"], lambda: extractor.model_id, clients.get("search-read")
        )
        gateway.info, gateway.stats = _remote_info(clients["search"]), remote.stats
        gateway.thumbnail = remote.thumbnail
        return remote, None
    # An index held here needs the model's identity now (a remote extractor must answer).
    store = IndexStore(settings.data_dir, extractor.model_id, extractor.dim, settings.index_spec)
    gateway.info, gateway.stats = store.catalog.info, store.stats
    gateway.thumbnail = store.catalog.thumbnail
    gateway.closers.append(lambda: _close_store(store))
    if "rerank" in clients:  # nothing else in this process looks after the index
        gateway.maintainers.append(lambda: maintain_collection(store, None, settings))
    return store, store


def _reranker(
    settings: Settings,
    clients: dict[str, ServiceClient],
    extractor: DescriptorExtractor,
    store: IndexStore | None,
    gateway: Gateway,
) -> tuple[Reranker, list[Writer]]:
    """The re-ranker and the extra stores an added image must reach."""
    if "rerank" in clients:
        config = settings.rerank_config()
        remote = RemoteReranker(clients["rerank"], config, lambda: extractor.model_id)
        return remote, [remote]
    if store is not None:  # share the in-process index
        local = LocalIndex(store.catalog, settings.data_dir)
        store.subscribe(local)
        reranker = LocalReranker(store, local, settings.rerank_config(), settings.rerank_workers)
        gateway.closers.append(reranker.close)
        gateway.maintainers.append(lambda: maintain_collection(store, local, settings))
        return reranker, []
    copy = RerankState(settings)
    copy.open(extractor.model_id, extractor.dim)
    assert copy.reranker is not None and copy.store is not None
    copy_store, copy_local = copy.store, copy.local
    gateway.closers.append(copy.close)
    gateway.maintainers.append(lambda: maintain_collection(copy_store, copy_local, settings))
    return copy.reranker, [copy_store]


def _embedded(settings: Settings) -> Gateway:
    from imsearch.engine import open_engine  # torch: only when extracting here

    engine = open_engine(settings)
    if settings.redis_url:
        engine.pipeline.cache = RedisCache(settings.redis_url, settings.cache_ttl_s)
    return Gateway(
        engine.pipeline,
        engine.pipeline.cache,
        engine.store.catalog.info,
        engine.store.stats,
        engine.store.catalog.thumbnail,
        maintainers=[lambda: maintain_collection(engine.store, engine.local, settings)],
        closers=[engine.close],
    )


def _cache(settings: Settings) -> DescriptorCache:
    if settings.redis_url:
        return RedisCache(settings.redis_url, settings.cache_ttl_s)
    return LRUCache(settings.cache_size)


def _close_store(store: IndexStore) -> None:
    store.snapshot()
    store.close()


def _remote_info(client: ServiceClient) -> Info:
    def info(ids: Sequence[str]) -> dict[str, tuple[str | None, dict[str, Any]]]:
        if not ids:
            return {}
        reply = client.call("/v1/info", pb.InfoRequest(ids=list(ids)), pb.InfoResponse, True)
        return {i.id: (i.sha256 or None, json.loads(i.metadata_json or "{}")) for i in reply.items}

    return info
