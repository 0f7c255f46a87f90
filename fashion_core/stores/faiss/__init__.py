"""FAISS backend: flat (exact), HNSW or IVF inner-product index, persisted with ids, vectors and payloads.

Filtered search never does "top-k then filter": the filter becomes a row mask over integer-coded payload
columns; few or very selective matches are ranked exactly, large match sets go through the ANN index with an
``IDSelectorBitmap``, through partitions (per articleType block, per broad gender, per scattered colour) or,
when a pass comes back short, through exact ranking again. ``index_type="auto"`` and unset
``hnsw_m``/``ef_search``/``nprobe`` take size-based defaults from ``fashion_core.stores.ann_params``;
``quantization`` ("sq8" or "pq") shrinks the ANN structures, whose candidates (``rescore_factor * k``) are
re-ranked exactly against the stored float32 vectors. Beside the vectors, each save writes a BM25 lexicon of the
payloads' text (``fashion_core.stores.lexical``) for ``search_lexical``; a lexicon that does not match the saved
rows is rebuilt.

One module per job, each holding its own state:
- ``tuning``: the measured thresholds, and an index's settings and ANN parameters (``Tuning``);
- ``rows``: ids, vectors and payloads in row order, grouped by articleType, and exact ranking (``Rows``);
- ``columns``: payload columns, filter masks, FAISS bitmaps, facets (``Columns``);
- ``structures``: the global structure and the partitions, their builder and search kernels (``Structures``);
- ``files``: the index directory's files, written atomically, ``meta.json`` last (``IndexFiles``);
- ``planner``: exact scan, global walk or partitions, by filter and selectivity (``Planner``);
- ``index``: ``FaissIndex``, the ``VectorIndex`` that coordinates them;
- ``store``: ``FaissStore``, the ``IndexStore``: version directories and the pointer files that switch them.
"""

from fashion_core.stores.faiss.index import FaissIndex
from fashion_core.stores.faiss.store import FaissStore

__all__ = ["FaissIndex", "FaissStore"]
