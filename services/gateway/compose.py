"""Assemble the gateway's pipeline: each stage in this process or behind its service URL.

    IMSEARCH_EXTRACTOR_URL  unset → the network runs in the gateway
    IMSEARCH_SEARCH_URL     unset → the index lives in the gateway's data directory
    IMSEARCH_RERANK_URL     unset → verification runs in the gateway, reading local features
                            from the feature store (the in-process index's, or
                            IMSEARCH_FEATURE_STORE when the search service is remote)
    IMSEARCH_REDIS_URL      unset → an in-process LRU caches query descriptors

With none of them set this is the embedded engine: one process, one data directory.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from imsearch.collection import collection_stages, verification
from imsearch.errors import ConfigError
from imsearch.index.store import IndexStore
from imsearch.indexing import maintain_collection
from imsearch.pipeline import (
    DescriptorCache,
    DescriptorExtractor,
    InProcessExtractor,
    LocalSearcher,
    LRUCache,
    Reranker,
    Searcher,
    SearchPipeline,
)
from imsearch.rerank.visual_words import VisualWords
from imsearch.settings import Settings
from services.common.access import internal_token
from services.common.cache import RedisCache
from services.common.client import ServiceClient
from services.contracts.v1 import messages_pb2 as pb
from services.extractor.client import RemoteExtractor
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
        reranker = _reranker(settings, clients, store, gateway)
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
    )
    return gateway


def _extractor(settings: Settings, clients: dict[str, ServiceClient]) -> DescriptorExtractor:
    if "extractor" in clients:
        return RemoteExtractor(clients["extractor"])
    from imsearch.engine import make_extractors  # torch: only when extracting here

    network, sift, query_sift = make_extractors(settings)
    return InProcessExtractor(
        network, settings.image_limits(), sift, settings.extract_concurrency, query_sift
    )


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
    words, finder = collection_stages(store, settings.local_features)
    gateway.info, gateway.stats = store.catalog.info, store.stats
    gateway.thumbnail = store.catalog.thumbnail
    gateway.closers.append(lambda: _close_store(store, words, settings))
    gateway.maintainers.append(lambda: maintain_collection(store, words, settings))
    return LocalSearcher(store, finder), store


def _reranker(
    settings: Settings,
    clients: dict[str, ServiceClient],
    store: IndexStore | None,
    gateway: Gateway,
) -> Reranker:
    """Verification: in the rerank workers, or here over the feature store."""
    if "rerank" in clients:
        return RemoteReranker(clients["rerank"], settings.rerank_config())
    if store is None and not settings.feature_store and settings.rerank_config().needs_local:
        raise ConfigError(
            "verifying here while the search service is remote needs IMSEARCH_FEATURE_STORE: "
            "the search primary's features folder (a shared volume) or URL"
        )
    reranker = verification(settings, store.features.root if store else None)
    gateway.closers.append(reranker.close)
    return reranker


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
        maintainers=[lambda: maintain_collection(engine.store, engine.words, settings)],
        closers=[engine.close],
    )


def _cache(settings: Settings) -> DescriptorCache:
    if settings.redis_url:
        return RedisCache(settings.redis_url, settings.cache_ttl_s)
    return LRUCache(settings.cache_size)


def _close_store(store: IndexStore, words: VisualWords | None, settings: Settings) -> None:
    store.checkpoint(settings.snapshot_ops)
    if words is not None:
        words.maintain()
    store.close()


def _remote_info(client: ServiceClient) -> Info:
    def info(ids: Sequence[str]) -> dict[str, tuple[str | None, dict[str, Any]]]:
        if not ids:
            return {}
        reply = client.call("/v1/info", pb.InfoRequest(ids=list(ids)), pb.InfoResponse, True)
        return {i.id: (i.sha256 or None, json.loads(i.metadata_json or "{}")) for i in reply.items}

    return info
