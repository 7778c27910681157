"""Image-query search engine core: descriptors, collections, search and evaluation.

The public surface is re-exported here; submodules starting with an underscore and anything
not listed in ``__all__`` may change without notice.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from imsearch.errors import ImsearchError
    from imsearch.features.config import ModelConfig
    from imsearch.features.extractor import Extractor
    from imsearch.index import Hit, IndexStore, Item
    from imsearch.pipeline import SearchPipeline, SearchResult
    from imsearch.settings import Settings

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

#: Where each public name lives. Imported on first use: a process that only re-ranks never
#: loads FAISS or torch, and one that only extracts never loads FAISS.
_HOMES = {
    "Extractor": "imsearch.features.extractor",
    "Hit": "imsearch.index",
    "ImsearchError": "imsearch.errors",
    "IndexStore": "imsearch.index",
    "Item": "imsearch.index",
    "ModelConfig": "imsearch.features.config",
    "SearchPipeline": "imsearch.pipeline",
    "SearchResult": "imsearch.pipeline",
    "Settings": "imsearch.settings",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(name)
    return getattr(import_module(home), name)
