"""Opens the index backend the settings choose: the one home of that choice.

``index_backend="auto"`` (the default) is a Qdrant server when ``qdrant_url`` is set, else FAISS files under
``index_dir``: an exact flat scan with exact filters, persisted, and reopened in about half a second at the real
catalog's size (40k items). qdrant-client's embedded local mode, the old default, stays available as
``index_backend="qdrant"`` with no URL: at 40k items it answered ~14 queries/s unfiltered and ~1/s filtered,
and a CLI search on it took 14-18 s, mostly reopening the store (figures in README, "Index backends").
"""

from __future__ import annotations

from typing import Literal

from fashion_core.settings import Settings
from fashion_core.stores.base import VectorIndex

Backend = Literal["faiss", "qdrant"]


def backend(settings: Settings) -> Backend:
    """The backend in force: the explicit ``index_backend``, or for ``auto`` Qdrant when a server URL is set and
    FAISS files otherwise."""
    if settings.index_backend == "auto":
        return "qdrant" if settings.qdrant_url else "faiss"
    return settings.index_backend


def open_index(settings: Settings, name: str | None = None) -> VectorIndex:
    """The index (or version) ``name`` of the configured backend, default ``settings.index_name``.

    Raises InvalidInputError when ``name`` is not an index name (a path, "..", ...)."""
    from fashion_core.stores.versions import check_index_name

    collection = check_index_name(name or settings.index_name)
    if backend(settings) == "faiss":
        from fashion_core.stores.faiss import FaissIndex
        from fashion_core.stores.versions import resolve_faiss

        # A re-indexed name is a pointer to its serving version (Qdrant resolves its aliases itself).
        return FaissIndex(settings.index_dir / "faiss" / resolve_faiss(settings, collection),
                          index_type=settings.faiss_index_type, quantization=settings.faiss_quantization,
                          ef_search=settings.index_search_ef)
    from fashion_core.stores.qdrant_index import QdrantIndex

    return QdrantIndex(collection, path=settings.index_dir / "qdrant", url=settings.qdrant_url,
                       api_key=settings.qdrant_api_key, shards=settings.qdrant_shards,
                       replicas=settings.qdrant_replicas, quantization=settings.qdrant_quantization,
                       hnsw_ef=settings.index_search_ef, expected_size=settings.index_expected_size,
                       acorn_max_selectivity=settings.qdrant_acorn_max_selectivity)
