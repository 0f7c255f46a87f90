"""The vector-index interface, the store interface and their two backends (Qdrant, FAISS), chosen by settings."""

from fashion_core.stores.backends import open_index, open_store
from fashion_core.stores.base import IndexMeta, SearchHit, VectorIndex
from fashion_core.stores.filters import SearchFilter
from fashion_core.stores.store import IndexStore

__all__ = ["IndexMeta", "IndexStore", "SearchFilter", "SearchHit", "VectorIndex", "open_index", "open_store"]
