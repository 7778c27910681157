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

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from imsearch.collection import Collections, check_name, verification
from imsearch.errors import ConfigError, UnknownCollection
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
from imsearch.settings import Settings
from services.common.access import internal_token
from services.common.cache import RedisCache
from services.common.client import ServiceClient
from services.extractor.client import RemoteExtractor
from services.rerank.client import RemoteReranker
from services.search.client import RemoteSearcher

log = logging.getLogger(__name__)

#: Content hash and metadata per id of a collection.
Info = Callable[[Sequence[str], str], dict[str, tuple[str | None, dict[str, Any]]]]
#: A stored thumbnail (JPEG) and its image's content hash, or None.
Thumbnail = Callable[[str, str], "tuple[bytes, str | None] | None"]
Task = Callable[[], object]


class CollectionAdmin(Protocol):
    """Lists, creates and drops collections, wherever they live."""

    def describe_all(self) -> list[dict[str, Any]]: ...

    def describe(self, name: str) -> dict[str, Any]: ...

    def create(self, name: str, spec: str | None = None) -> dict[str, Any]: ...

    def drop(self, name: str) -> None: ...


class RemoteCollections:
    """The search primary's collections, created for the extractor's model."""

    def __init__(self, searcher: RemoteSearcher, extractor: DescriptorExtractor) -> None:
        self.searcher = searcher
        self.extractor = extractor

    def describe_all(self) -> list[dict[str, Any]]:
        return self.searcher.collections()

    def describe(self, name: str) -> dict[str, Any]:
        check_name(name)
        found = [c for c in self.describe_all() if c.get("name") == name]
        if not found:
            raise UnknownCollection(f"no collection named {name!r}")
        return found[0]

    def create(self, name: str, spec: str | None = None) -> dict[str, Any]:
        check_name(name)
        self.searcher.create_collection(name, spec, self.extractor.model_id, self.extractor.dim)
        return self.describe(name)

    def drop(self, name: str) -> None:
        self.searcher.drop_collection(check_name(name))


def _local_reads(
    collections: Collections,
) -> tuple[Info, Callable[[str], dict[str, Any]], Thumbnail]:
    """Info, stats and thumbnails of the collections held in this process."""

    def info(ids: Sequence[str], name: str) -> dict[str, tuple[str | None, dict[str, Any]]]:
        return collections.read(name, lambda o: o.store.catalog.info(ids), {})

    def stats(name: str) -> dict[str, Any]:
        return {
            **collections.read(name, lambda o: o.store.stats(), {"count": 0}),
            "collection": name,
        }

    def thumbnail(image_id: str, name: str) -> tuple[bytes, str | None] | None:
        return collections.read(name, lambda o: o.store.catalog.thumbnail(image_id), None)

    return info, stats, thumbnail


@dataclass
class Gateway:
    """The composed pipeline plus what the public API needs around it."""

    pipeline: SearchPipeline
    cache: DescriptorCache
    #: Content hash and metadata per id, from wherever the collection lives.
    info: Info
    stats: Callable[[str], dict[str, Any]]
    thumbnail: Thumbnail = lambda image_id, name: None
    collections: CollectionAdmin | None = None
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
    gateway = Gateway(None, _cache(settings), lambda ids, name: {}, dict, clients=clients)  # type: ignore[arg-type]
    gateway.closers += [client.close for client in clients.values()]
    try:
        extractor = _extractor(settings, clients)
        searcher, held = _searcher(settings, clients, extractor, gateway)
        reranker = _reranker(settings, clients, held, gateway)
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
) -> tuple[Searcher, Collections | None]:
    if "search" in clients:
        remote = RemoteSearcher(
            clients["search"], lambda: extractor.model_id, clients.get("search-read")
        )
        gateway.info, gateway.stats, gateway.thumbnail = remote.info, remote.stats, remote.thumbnail
        gateway.collections = RemoteCollections(remote, extractor)
        return remote, None
    # Collections held here need the model's identity now (a remote extractor must answer).
    collections = Collections(settings, extractor.model_id, extractor.dim)
    _hold_here(gateway, collections, settings)
    return LocalSearcher(collections), collections


def _hold_here(gateway: Gateway, collections: Collections, settings: Settings) -> None:
    """Reads, administration, upkeep and closing of the collections in this process."""
    gateway.info, gateway.stats, gateway.thumbnail = _local_reads(collections)
    gateway.collections = collections
    gateway.closers.append(collections.close)
    gateway.maintainers.append(
        lambda: collections.upkeep(lambda o: maintain_collection(o.store, o.words, settings))
    )


def _reranker(
    settings: Settings,
    clients: dict[str, ServiceClient],
    held: Collections | None,
    gateway: Gateway,
) -> Reranker:
    """Verification: in the rerank workers, or here over the feature stores."""
    if "rerank" in clients:
        return RemoteReranker(clients["rerank"], settings.rerank_config())
    if held is None and not settings.feature_store and settings.rerank_config().needs_local:
        raise ConfigError(
            "verifying here while the search service is remote needs IMSEARCH_FEATURE_STORE: "
            "the search primary's features folder (a shared volume) or URL"
        )
    reranker = verification(settings, local=held is not None)
    gateway.closers.append(reranker.close)
    return reranker


def _embedded(settings: Settings) -> Gateway:
    from imsearch.engine import open_engine  # torch: only when extracting here

    engine = open_engine(settings)
    if settings.redis_url:
        engine.pipeline.cache = RedisCache(settings.redis_url, settings.cache_ttl_s)
    info, stats, thumbnail = _local_reads(engine.collections)
    gateway = Gateway(engine.pipeline, engine.pipeline.cache, info, stats, thumbnail)
    _hold_here(gateway, engine.collections, settings)
    gateway.closers[:] = [engine.close]  # the engine closes its collections and reranker
    return gateway


def _cache(settings: Settings) -> DescriptorCache:
    if settings.redis_url:
        return RedisCache(settings.redis_url, settings.cache_ttl_s)
    return LRUCache(settings.cache_size)
