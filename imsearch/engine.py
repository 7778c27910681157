"""The embedded engine: extractor, collection and query pipeline in one process.

This is what ``imsearch serve`` (no service URLs) and the CLI commands run; the services issue
composes the same pipeline from HTTP clients instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from imsearch.features.extractor import Extractor
from imsearch.index.store import IndexStore
from imsearch.pipeline import LocalExtractor, LRUCache, SearchPipeline
from imsearch.settings import Settings


@dataclass
class Engine:
    settings: Settings
    extractor: Extractor
    store: IndexStore
    pipeline: SearchPipeline

    def close(self) -> None:
        if not self.store.readonly:
            self.store.snapshot()
        self.store.close()


def open_engine(settings: Settings, readonly: bool = False) -> Engine:
    """Open the collection in ``settings.data_dir`` with the model the settings describe.

    A collection built by another model raises :class:`~imsearch.errors.ModelMismatch`.
    """
    extractor = Extractor(settings.model(), settings.device, settings.batch_size)
    store = IndexStore(
        settings.data_dir, extractor.model_id, extractor.dim, settings.index_spec, readonly
    )
    pipeline = SearchPipeline(
        LocalExtractor(extractor, settings.image_limits()),
        store,
        LRUCache(settings.cache_size),
        knobs=settings.search_knobs(),
    )
    return Engine(settings, extractor, store, pipeline)


def open_store(settings: Settings, readonly: bool = False) -> IndexStore:
    """Open only the collection (stats, whitening), whatever model built it."""
    return IndexStore(settings.data_dir, spec=settings.index_spec, readonly=readonly)
