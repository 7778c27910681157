"""Collections on disk: the SQLite catalog, FAISS indexes and the durable store."""

from imsearch.index.catalog import Catalog, Item
from imsearch.index.store import Hit, IndexStore
from imsearch.index.vectors import VectorIndex

__all__ = ["Catalog", "Hit", "IndexStore", "Item", "VectorIndex"]
