"""The embedded engine: extractor, collection, re-ranker and query pipeline in one process.

This is what ``imsearch serve`` (no service URLs) and the CLI commands run; the services issue
composes the same pipeline from HTTP clients instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from imsearch.collection import collection_stages, verification
from imsearch.errors import ConfigError
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
    settings: Settings
    extractor: Extractor
    sift: SiftExtractor | None
    store: IndexStore
    words: VisualWords | None
    reranker: SpatialReranker
    pipeline: SearchPipeline

    def close(self) -> None:
        self.reranker.close()
        self.store.checkpoint(self.settings.snapshot_ops)
        if self.words is not None:
            self.words.maintain()
        self.store.close()


def open_engine(settings: Settings, readonly: bool = False) -> Engine:
    """Open the collection in ``settings.data_dir`` with the model the settings describe.

    A collection built by another model raises :class:`~imsearch.errors.ModelMismatch`.
    """
    rerank = settings.rerank_config()
    if rerank.needs_local and not settings.local_features:
        raise ConfigError(
            f"re-ranking {rerank.method!r} needs local features: set IMSEARCH_LOCAL_FEATURES=1 "
            "or choose a method without 'spatial'"
        )
    # Refuse a second writer before the seconds spent loading the network; the store keeps
    # its own claim on the directory.
    claim = None if readonly else acquire_writer(settings.data_dir)
    try:
        return _open(settings, rerank, readonly)
    finally:
        if claim is not None:
            claim.release()


def make_extractors(settings: Settings) -> tuple[Extractor, SiftExtractor, SiftExtractor]:
    """The network (on the settings' device and runtime), the SIFT extractor of the
    collection's images and the one of query photos."""
    network = Extractor(
        settings.model(), settings.device, settings.batch_size, settings.runtime, settings.threads
    )
    sift = SiftExtractor(settings.local_max_side, settings.local_max_keypoints)
    query_side = min(settings.query_local_max_side or settings.local_max_side, sift.max_side)
    return network, sift, SiftExtractor(query_side, settings.local_max_keypoints)


def _open(settings: Settings, rerank: RerankConfig, readonly: bool) -> Engine:
    extractor, sift, query_sift = make_extractors(settings)
    store = IndexStore(
        settings.data_dir, extractor.model_id, extractor.dim, settings.index_spec, readonly
    )
    words, finder = collection_stages(store, settings.local_features)
    reranker = verification(settings, store.features.root)
    pipeline = SearchPipeline(
        InProcessExtractor(
            extractor, settings.image_limits(), sift, settings.extract_concurrency, query_sift
        ),
        LocalSearcher(store, finder),
        LRUCache(settings.cache_size),
        reranker,
        knobs=settings.search_knobs(),
        local_features=settings.local_features,
    )
    return Engine(
        settings,
        extractor,
        sift if settings.local_features else None,
        store,
        words,
        reranker,
        pipeline,
    )


def open_store(settings: Settings, readonly: bool = False) -> IndexStore:
    """Open only the collection (stats, whitening), whatever model built it."""
    return IndexStore(settings.data_dir, spec=settings.index_spec, readonly=readonly)
