"""``FaissIndex``: the FAISS backend of ``VectorIndex``, coordinating the package's parts.

It owns the index's state and hands each job to the part that does it: the rows (``rows.Rows``), the settings
(``tuning.Tuning``), the payload columns (``columns.Columns``), the FAISS structures (``structures``), the files
(``files.IndexFiles``), the query plan (``planner.Planner``) and the BM25 lexicon (``lexical.Bm25Lexicon``).
Columns, structures and lexicon are derived from the rows in their current order: built when first needed,
dropped when the rows change or are regrouped.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fashion_core.errors import InvalidInputError, NotFoundError
from fashion_core.stores import ann_params
from fashion_core.stores.base import IndexMeta, SearchHit, check_batch, check_query
from fashion_core.stores.faiss.columns import Columns, facets
from fashion_core.stores.faiss.files import IndexFiles
from fashion_core.stores.faiss.planner import Planner
from fashion_core.stores.faiss.rows import Rows
from fashion_core.stores.faiss.structures import Structures, build, with_scan
from fashion_core.stores.faiss.tuning import Tuning
from fashion_core.stores.filters import SearchFilter
from fashion_core.stores.lexical import Bm25Lexicon

log = logging.getLogger(__name__)


class FaissIndex:
    """A FAISS index persisted in ``directory`` (opened if it holds one; its saved index type and quantization
    then win over the arguments). ``index_type`` "flat", "hnsw", "ivf" or "auto" (by size), ``quantization``
    "none", "sq8" or "pq": see ``tuning.Tuning``, which raises InvalidInputError for unknown ones."""

    backend = "faiss"

    def __init__(self, directory: Path | str, index_type: str = "flat", hnsw_m: int | None = None,
                 ef_search: int | None = None, nprobe: int | None = None, quantization: str = "none",
                 rescore_factor: int | None = None, ef_construct: int | None = None) -> None:
        self.tuning = Tuning(index_type, quantization, hnsw_m=hnsw_m, ef_search=ef_search, nprobe=nprobe,
                             ef_construct=ef_construct, rescore_factor=rescore_factor)
        self.dir = Path(directory)
        self.name = self.dir.name
        self._files = IndexFiles(self.dir)
        self._meta: IndexMeta | None = None
        self._rows = Rows()
        self._columns: Columns | None = None
        self._structures: Structures | None = None
        self._lexicon: Bm25Lexicon | None = None  # BM25 over the payloads' text, rows aligned (see lexical.py)
        self._planner = Planner(self._rows, self.tuning, self.columns, self._built)
        if self._files.exists():
            self._load()

    # -- persistence -------------------------------------------------------------------------------
    def _load(self) -> None:
        meta = self._files.read_meta()
        self.tuning.restore(meta.extra)
        self._meta = meta
        self._rows.replace(*self._files.read_rows())
        self._drop_derived()
        self._lexicon = self._files.read_lexicon(self._rows.ids)  # None: rebuilt when first searched
        ann = self._files.read_ann() if len(self._rows) else None
        if ann is None:
            return
        self._structures = Structures(ann)
        self._group()  # the saved rows are already grouped: this only finds the blocks
        if self._structures is None:  # a regrouping dropped it: rebuilt when first needed
            return
        if self._files.has_partitions():
            self._structures = Structures(ann, *self._files.read_partitions(
                self._rows.blocks, lambda field, value: self.columns().value_rows(field, value), len(self._rows)))
        self._structures = with_scan(self._structures, self._rows, self.tuning.quantization, meta.dim)

    def save(self) -> None:
        """Write the index's files (building its lexicon and structures first if missing), ``meta.json`` last.
        Raises NotFoundError before ``create``."""
        meta = self._require()
        self._group()
        lexicon = self._lexicon_now() if len(self._rows) else None
        self._files.write(meta, self._rows, lexicon, self.structures())

    # -- interface ---------------------------------------------------------------------------------
    @property
    def meta(self) -> IndexMeta | None:
        return self._meta

    def _require(self) -> IndexMeta:
        if self._meta is None:
            raise NotFoundError(f"no FAISS index in {self.dir}: run `fashion-search index` first")
        return self._meta

    def create(self, meta: IndexMeta) -> None:
        """Create and save an empty index for ``meta`` (its backend and ``extra`` get this index's settings);
        an existing index is kept. Raises InvalidInputError when an existing index has another dim."""
        if self._meta is not None:
            if self._meta.dim != meta.dim:
                raise InvalidInputError(f"index in {self.dir} has dim {self._meta.dim}, vectors have {meta.dim}")
            return
        meta.backend = self.backend
        meta.extra = {**meta.extra, **self.tuning.extra()}
        self._meta = meta
        self._rows.replace(np.zeros(0, dtype=np.int64), np.zeros((0, meta.dim), dtype=np.float32), [])
        self.save()

    def upsert(self, ids: Sequence[int], vectors: np.ndarray, payloads: Sequence[dict[str, Any]]) -> None:
        """Add or overwrite items: ``vectors`` (len(ids), dim), cast to float32. Raises NotFoundError before
        ``create``, InvalidInputError for mismatched sizes, another dim or a bad product id (``check_batch``)."""
        meta = self._require()
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(ids), -1) if len(ids) else vectors
        check_batch(ids, vectors, payloads, meta.dim)
        self._rows.upsert(ids, vectors, payloads)
        self._drop_derived()

    def delete(self, ids: Sequence[int]) -> None:
        """Remove the items of ``ids`` (unknown ids are ignored). Raises NotFoundError before ``create``."""
        self._require()
        if self._rows.delete(ids):
            self._drop_derived()

    def flush(self) -> None:
        self.save()

    def search(self, vector: np.ndarray, k: int, flt: SearchFilter | None = None,
               exact: bool = False) -> list[SearchHit]:
        """True top-k by inner product with ``vector`` (dim floats) among items matching ``flt``: k hits whenever
        k match, best first (ties by id); ranked exactly when ``exact``. Raises NotFoundError before ``create``,
        InvalidInputError for k <= 0 or another dim."""
        q = check_query(vector, k, self._require().dim)
        if not len(self._rows):
            return []
        self._group()
        return self._rows.hits(q, self._planner.top(q, k, flt, exact))

    def search_lexical(self, query: str, k: int, flt: SearchFilter | None = None) -> list[SearchHit]:
        """True top-k by BM25 score (``lexical.Bm25Lexicon``) among items matching ``flt``, each with its
        ``coverage`` of the query (``Bm25Lexicon.coverage``); items sharing no term with ``query`` are left out, so
        fewer than k may come back. Raises InvalidInputError for k <= 0."""
        if k <= 0:
            raise InvalidInputError(f"k must be positive, got {k}")
        self._require()
        if not len(self._rows):
            return []
        self._group()
        mask = None if flt is None or flt.is_empty else self.columns().mask(flt)
        lexicon = self._lexicon_now()
        rows, scores = lexicon.top(query, k, mask)
        return self._rows.scored(rows, scores, lexicon.coverage(query, rows))

    def retrieve(self, ids: Sequence[int], with_vectors: bool = False) -> dict[int, tuple[dict[str, Any],
                                                                                       np.ndarray | None]]:
        return self._rows.retrieve(ids, with_vectors)

    def count(self) -> int:
        return len(self._rows)

    def all_ids(self) -> set[int]:
        return {int(i) for i in self._rows.ids}

    def facets(self) -> dict[str, list[str]]:
        return facets(self._rows.payloads)

    def close(self) -> None:
        pass

    # -- the rows and settings, read-only ------------------------------------------------------------
    @property
    def ids(self) -> np.ndarray:
        """The product ids (int64, shape (n,)) in row order (grouped by articleType once searched or saved)."""
        return self._rows.ids

    @property
    def vectors(self) -> np.ndarray:
        """The vectors (float32, shape (n, dim)) in row order."""
        return self._rows.vectors

    @property
    def payloads(self) -> list[dict[str, Any]]:
        """The payloads (n dicts) in row order."""
        return self._rows.payloads

    @property
    def index_type(self) -> str:
        return self.tuning.index_type

    @property
    def quantization(self) -> str:
        return self.tuning.quantization

    @property
    def hnsw_m(self) -> int | None:
        return self.tuning.hnsw_m

    @property
    def ef_construct(self) -> int | None:
        return self.tuning.ef_construct

    @property
    def ef_search(self) -> int | None:
        return self.tuning.ef_search

    @property
    def nprobe(self) -> int | None:
        return self.tuning.nprobe

    @property
    def rescore_factor(self) -> int:
        return self.tuning.rescore_factor

    def params(self) -> ann_params.AnnParams:
        """The ANN parameters in force: explicit ones, else the size-based defaults."""
        return self.tuning.params(len(self._rows))

    def set_search_params(self, ef_search: int | None = None, nprobe: int | None = None) -> None:
        """Query-time settings (None = by size); the structures already built are kept."""
        self.tuning.set_search_params(ef_search, nprobe)

    # -- derived state -----------------------------------------------------------------------------
    def columns(self) -> Columns:
        """The payload columns of the current rows, built now if missing (a filtered search builds them)."""
        if self._columns is None:
            self._columns = Columns(self._rows.payloads)
        return self._columns

    def structures(self) -> Structures | None:
        """The FAISS structures of the current rows, built now if missing (searches and ``save`` build them when
        first needed); None for an empty index."""
        if self._structures is not None or not len(self._rows):
            return self._structures
        self._group()  # regrouping rows afterwards would drop the structures built here
        self._structures = build(self._rows, self.columns, self.tuning, self._require().dim)
        return self._structures

    def _built(self) -> Structures:
        built = self.structures()
        assert built is not None, "the planner searches non-empty indexes"
        return built

    def _lexicon_now(self) -> Bm25Lexicon:
        """The BM25 lexicon of the current rows, built from the payloads if there is none (grouped rows first: a
        regrouping afterwards would drop it)."""
        self._group()
        if self._lexicon is None:
            self._lexicon = Bm25Lexicon.build(self._rows.ids, self._rows.payloads)
            log.info("built the lexical index over %d items", len(self._rows))
        return self._lexicon

    def _group(self) -> None:
        self._rows.group(on_reorder=self._drop_derived)

    def _drop_derived(self) -> None:
        self._structures, self._lexicon, self._columns = None, None, None
