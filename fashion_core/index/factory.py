"""Opens the index backend the settings choose."""

from __future__ import annotations

from fashion_core.index.base import VectorIndex
from fashion_core.settings import Settings


def open_index(settings: Settings, name: str | None = None) -> VectorIndex:
    """The index (or version) ``name`` of the configured backend, default ``settings.collection``.

    Raises InvalidInputError when ``name`` is not an index name (a path, "..", ...)."""
    from fashion_core.index.alias import check_index_name

    collection = check_index_name(name or settings.collection)
    if settings.index_backend == "faiss":
        from fashion_core.index.alias import resolve_faiss
        from fashion_core.index.faiss_index import FaissIndex

        # A re-indexed name is a pointer to its serving version (Qdrant resolves its aliases itself).
        return FaissIndex(settings.index_dir / "faiss" / resolve_faiss(settings, collection),
                          index_type=settings.faiss_index_type, quantization=settings.faiss_quantization,
                          ef_search=settings.index_search_ef)
    from fashion_core.index.qdrant_index import QdrantIndex

    return QdrantIndex(collection, path=settings.index_dir / "qdrant", url=settings.qdrant_url,
                       api_key=settings.qdrant_api_key, shards=settings.qdrant_shards,
                       replicas=settings.qdrant_replicas, quantization=settings.qdrant_quantization,
                       hnsw_ef=settings.index_search_ef, expected_size=settings.index_expected_size)
