"""Image-query search engine core: descriptors, collections, search and evaluation.

The public surface is re-exported here; submodules starting with an underscore and anything
not listed in ``__all__`` may change without notice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from imsearch.errors import ImsearchError
from imsearch.features.config import ModelConfig
from imsearch.index import Hit, IndexStore, Item
from imsearch.pipeline import SearchPipeline, SearchResult
from imsearch.settings import Settings

if TYPE_CHECKING:
    from imsearch.features.extractor import Extractor

__all__ = [
    "Extractor",
    "Hit",
    "ImsearchError",
    "IndexStore",
    "Item",
    "ModelConfig",
    "SearchPipeline",
    "SearchResult",
    "Settings",
]


def __getattr__(name: str) -> Any:
    # torch is imported only by what extracts descriptors.
    if name == "Extractor":
        from imsearch.features.extractor import Extractor

        return Extractor
    raise AttributeError(name)
