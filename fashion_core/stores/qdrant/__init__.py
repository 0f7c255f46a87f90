"""Qdrant backend: a server when a URL is configured, the embedded local mode on a path otherwise.

One module per job:
- ``index``: ``QdrantIndex``, the ``VectorIndex`` over one collection, and the collection settings a server gets
  (``hnsw_config``, ``quantization_config``, ``PAYLOAD_INDEXES``; ``benchmarks/ann_scale.py`` builds Qdrant's
  engine from the same objects);
- ``lexical``: BM25 and hybrid (reciprocal rank fusion) queries computed by Qdrant itself;
- ``store``: ``QdrantStore``, the ``IndexStore``: collections as versions, aliases as names, one client.
"""

from fashion_core.stores.qdrant.index import QdrantIndex
from fashion_core.stores.qdrant.store import QdrantStore

__all__ = ["QdrantIndex", "QdrantStore"]
