"""The embedded engine: extractor, collection, re-ranker and query pipeline in one process.

This is what ``imsearch serve`` (no service URLs) and the CLI commands run; the services issue
composes the same pipeline from HTTP clients instead.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass

from imsearch.collection import (
    DEFAULT,
    Collections,
    Opened,
    check_name,
    collection_dir,
    exists,
    index_spec,
    verification,
)
from imsearch.errors import ConfigError, UnknownCollection
from imsearch.features.extractor import Extractor
from imsearch.features.local import SiftExtractor
from imsearch.index.store import IndexStore
from imsearch.index.writer_lock import acquire_writer
from imsearch.pipeline import InProcessExtractor, LocalSearcher, LRUCache, SearchPipeline
from imsearch.rerank.reranker import RerankConfig, SpatialReranker
from imsearch.rerank.visual_words import VisualWords
from imsearch.settings import Settings


@dataclass
class Engine:
    """The pipeline over this process's collections; ``store``/``words`` are those of the
    collection it was opened on (the CLI's ``--collection``), held open until :meth:`close`."""

    settings: Settings
    extractor: Extractor
    sift: SiftExtractor | None
    collections: Collections
    opened: Opened
    reranker: SpatialReranker
    pipeline: SearchPipeline
    _held: AbstractContextManager[Opened] | None = None

    @property
    def collection(self) -> str:
        return self.opened.name

    @property
    def store(self) -> IndexStore:
        return self.opened.store

    @property
    def words(self) -> VisualWords | None:
        return self.opened.words

    def close(self) -> None:
        self.reranker.close()
        if self._held is not None:
            self._held.__exit__(None, None, None)
            self._held = None
        self.collections.close()


def open_engine(
    settings: Settings, readonly: bool = False, collection: str = DEFAULT, create: bool = False
) -> Engine:
    """Open ``collection`` of ``settings.data_dir`` with the model the settings describe;
    ``create``: create it first if it does not exist (a named one, with the settings'
    index spec).

    A collection built by another model raises :class:`~imsearch.errors.ModelMismatch`.
    """
    rerank = settings.rerank_config()
    if rerank.needs_local and not settings.local_features:
        raise ConfigError(
            f"re-ranking {rerank.method!r} needs local features: set IMSEARCH_LOCAL_FEATURES=1 "
            "or choose a method without 'spatial'"
        )
    check_name(collection)
    if not create and collection != DEFAULT and not exists(settings.data_dir, collection):
        raise UnknownCollection(f"no collection named {collection!r} in {settings.data_dir}")
    # Refuse a second writer before the seconds spent loading the network; the store keeps
    # its own claim on the directory.
    claim = None if readonly else acquire_writer(settings.data_dir)
    try:
        return _open(settings, rerank, readonly, collection, create)
    finally:
        if claim is not None:
            claim.release()


def make_extractors(settings: Settings) -> tuple[Extractor, SiftExtractor, SiftExtractor]:
    """The network (on the settings' device and runtime), the SIFT extractor of the
    collection's images and the one of query photos."""
    network = Extractor(
        settings.model(), settings.device, settings.batch_size, settings.runtime, settings.threads
    )
    return network, make_sift(settings), make_sift(settings, query=True)


def make_sift(settings: Settings, query: bool = False) -> SiftExtractor:
    """The SIFT extractor of the collection's images, or (``query``) of query photos."""
    side = settings.local_max_side
    if query:
        side = min(settings.query_local_max_side or side, side)
    return SiftExtractor(
        side,
        settings.local_max_keypoints,
        settings.local_contrast,
        settings.local_clahe,
    )


def _open(
    settings: Settings, rerank: RerankConfig, readonly: bool, collection: str, create: bool
) -> Engine:
    extractor, sift, query_sift = make_extractors(settings)
    collections = Collections(settings, extractor.model_id, extractor.dim, readonly)
    if create and collection != DEFAULT and not exists(settings.data_dir, collection):
        collections.create(collection)
    held = collections.use(collection)
    opened = held.__enter__()
    reranker = verification(settings, local=True)
    pipeline = SearchPipeline(
        InProcessExtractor(
            extractor, settings.image_limits(), sift, settings.extract_concurrency, query_sift
        ),
        LocalSearcher(collections, collection),
        LRUCache(settings.cache_size),
        reranker,
        knobs=settings.search_knobs(),
        local_features=settings.local_features,
    )
    return Engine(
        settings,
        extractor,
        sift if settings.local_features else None,
        collections,
        opened,
        reranker,
        pipeline,
        held,
    )


def open_store(settings: Settings, readonly: bool = False, collection: str = DEFAULT) -> IndexStore:
    """Open only a collection (stats, whitening), whatever model built it."""
    if collection != DEFAULT and not exists(settings.data_dir, collection):
        raise UnknownCollection(f"no collection named {collection!r} in {settings.data_dir}")
    folder = collection_dir(settings.data_dir, collection)
    spec = index_spec(settings.data_dir, collection, settings.index_spec)
    return IndexStore(folder, spec=spec, readonly=readonly, lock_dir=settings.data_dir)
