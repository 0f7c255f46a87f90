"""Opens the index store the settings choose: the one home of that choice.

``index_backend="auto"`` (the default) is a Qdrant server when ``qdrant_url`` is set, else FAISS files under
``index_dir``: an exact flat scan with exact filters, persisted, and reopened in about half a second at the real
catalog's size (40k items). qdrant-client's embedded local mode, the old default, stays available as
``index_backend="qdrant"`` with no URL: at 40k items it answered ~14 queries/s unfiltered and ~1/s filtered,
and a CLI search on it took 14-18 s, mostly reopening the store (figures in README, "Index backends").

Everything past the choice goes through the store (``store.IndexStore``): its indexes, versions and serving
names, and the capabilities a caller needs; nothing outside ``fashion_core/stores`` asks which backend it is.
"""

from __future__ import annotations

from typing import Literal

from fashion_core.settings import Settings
from fashion_core.stores.base import VectorIndex
from fashion_core.stores.store import IndexStore

Backend = Literal["faiss", "qdrant"]


def backend(settings: Settings) -> Backend:
    """The backend in force: the explicit ``index_backend``, or for ``auto`` Qdrant when a server URL is set and
    FAISS files otherwise."""
    if settings.index_backend == "auto":
        return "qdrant" if settings.qdrant_url else "faiss"
    return settings.index_backend


def open_store(settings: Settings) -> IndexStore:
    """The configured store. Cheap: a Qdrant store connects on first use, a FAISS store is files. Close it."""
    if backend(settings) == "faiss":
        from fashion_core.stores.faiss.store import FaissStore

        return FaissStore(settings.index_dir / "faiss", index_type=settings.faiss_index_type,
                          quantization=settings.faiss_quantization, ef_search=settings.index_search_ef)
    from fashion_core.stores.qdrant.store import QdrantStore

    return QdrantStore(path=settings.index_dir / "qdrant", url=settings.qdrant_url, api_key=settings.qdrant_api_key,
                       shards=settings.qdrant_shards, replicas=settings.qdrant_replicas,
                       quantization=settings.qdrant_quantization, hnsw_ef=settings.index_search_ef,
                       expected_size=settings.index_expected_size,
                       acorn_max_selectivity=settings.qdrant_acorn_max_selectivity,
                       oversampling=settings.qdrant_oversampling,
                       full_scan_threshold_kb=settings.qdrant_full_scan_threshold_kb,
                       companions=settings.qdrant_companions)


def open_index(settings: Settings, name: str | None = None) -> VectorIndex:
    """The index (or version) ``name`` of the configured store, default ``settings.index_name``, for a caller
    that opens just this one: ``open_store(settings).open(name)``, and closing the index closes the store.

    Raises InvalidInputError when ``name`` is not an index name (a path, "..", ...)."""
    store = open_store(settings)
    try:
        return store.open(name or settings.index_name, closes_store=True)
    except BaseException:
        store.close()
        raise
