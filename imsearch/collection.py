"""What runs beside a collection, wherever that is (embedded engine, search service, rerank
workers): its visual words and candidate stages next to the index, and geometric verification
next to the feature store. No model here: services without torch build these too.
"""

from __future__ import annotations

from pathlib import Path

from imsearch.index.features import FEATURES_DIR, FeatureReader
from imsearch.index.store import IndexStore
from imsearch.rerank.reranker import CandidateFinder, SpatialReranker
from imsearch.rerank.verifier import Verifier
from imsearch.rerank.visual_words import VisualWords
from imsearch.settings import Settings


def collection_stages(
    store: IndexStore, local_features: bool
) -> tuple[VisualWords | None, CandidateFinder]:
    """What runs beside a collection's index: its visual words and the candidate stages."""
    words = VisualWords(store) if local_features else None
    return words, CandidateFinder(store, words)


def verification(settings: Settings, features: str | Path | None = None) -> SpatialReranker:
    """Geometric verification over a feature store (default: the data directory's)."""
    root = features or settings.feature_store or Path(settings.data_dir) / FEATURES_DIR
    verifier = Verifier(
        FeatureReader(root), settings.rerank_workers, matcher=settings.rerank_matcher
    )
    return SpatialReranker(verifier, settings.rerank_config())
