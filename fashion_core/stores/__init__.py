"""The vector-index interface and its two backends (Qdrant, FAISS), chosen by settings."""

from fashion_core.stores.backends import open_index
from fashion_core.stores.base import IndexMeta, SearchHit, VectorIndex
from fashion_core.stores.filters import SearchFilter

__all__ = ["IndexMeta", "SearchFilter", "SearchHit", "VectorIndex", "open_index"]
