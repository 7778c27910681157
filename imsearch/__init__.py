"""Image-query search engine core: descriptors, collections, search and evaluation.

The public surface is re-exported here; submodules starting with an underscore and anything
not listed in ``__all__`` may change without notice.
"""

from imsearch.errors import ImsearchError
from imsearch.features import Extractor, ModelConfig
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
