"""FAISS backend: flat (exact), HNSW or IVF inner-product index, persisted with ids, vectors and payloads.

Filtered search never does "top-k then filter": the filter becomes a row mask (from integer-coded payload
columns, so a mask over 1M items costs about a millisecond); small or very selective match sets are ranked
exactly, large ones through the ANN index with an ``IDSelectorBitmap`` and ef/nprobe widened for the
selectivity, falling back to exact ranking of the matching rows if the ANN pass comes back with fewer than k.

Rows are stored grouped by articleType. With an ANN structure, every articleType block too large to scan
exactly (> ``PARTITION_MIN_ROWS`` rows) also gets its own small ANN index (a partition, like Qdrant's
payload-aware sub-graphs): a filter on that articleType searches its partition, where the matches are all
or most of the items, instead of walking the global graph past 95% non-matching nodes (measured recall@10
~0.7 at 5% selectivity with a selector, even with ef widened 4.5x). With sq8/pq, a block of at most
``SCAN_PARTITION_MAX_SHARE`` of the index is a scan of its codes rather than a graph (recall ~1.0 after the
re-rank, where a graph over an off-centre type fell to 0.82 at 1M). Fields scattered over those blocks
(``VALUE_PARTITION_FIELDS``: baseColour) get the same code scan per value. Broad values of fields that follow
the embedding (``BROAD_PARTITION_FIELDS``: gender) get an ANN partition each, walked with a wider ef: a walk of
the global graph with a selector misses much of a correlated filter's true top-k. Partitions cost extra memory
for the rows they cover (their own vectors or codes, and links for graphs).

``index_type="auto"`` and unset ``hnsw_m``/``ef_search``/``nprobe`` take size-based defaults from
``ann_params``. ``quantization`` ("sq8" or "pq") shrinks the ANN structure; its candidates
(``rescore_factor * k``) are re-ranked exactly against the stored float32 vectors.

Beside the vectors, each save writes a BM25 lexicon of the payloads' text (``lexical.Bm25Lexicon``, in
``lexical/``) for ``search_lexical``: every write path that saves (in-process indexing, the indexer's jobs, a
re-index's new version) keeps it current, and a lexicon that does not match the saved rows is rebuilt.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from fashion_core.catalog.schema import KEYWORD_FIELDS
from fashion_core.errors import InvalidInputError, NotFoundError
from fashion_core.stores import ann_params
from fashion_core.stores.base import IndexMeta, SearchHit, check_batch, check_query
from fashion_core.stores.filters import SearchFilter
from fashion_core.stores.lexical import LEXICAL_DIR, Bm25Lexicon

log = logging.getLogger(__name__)

META_FILE, IDS_FILE, VECTORS_FILE, PAYLOADS_FILE, ANN_FILE, PARTITIONS_FILE = (
    "meta.json", "ids.npy", "vectors.npy", "payloads.jsonl", "index.faiss", "partitions.npz")
# Below this many matching rows an exact scan of the matches costs under a millisecond: cheaper than any ANN
# walk with a selector.
EXACT_SUBSET_MAX = 5_000
# articleType blocks larger than this get an ANN partition of their own; smaller ones are contiguous rows
# scanned exactly (a 5k-row partition gave recall@10 0.87-0.89 where the scan gives 1.0 at ~30x brute force).
PARTITION_MIN_ROWS = 20_000
GATHER_COST = 4  # per-row cost of gathering scattered rows over reading them in sequence (see _exact)
# A selector walk widens ef by 1/sqrt(selectivity), at most this much. At 1M, a scattered 4.4% filter
# (baseColour) with ef 192 x 4.8 gave recall 0.960 at 27x brute force, with ef 320 x 4.8 0.974 at 15x; capped
# at 2x, ef 448 x 2 gave 0.960 at 49x: past ~2x the unfiltered ef the extra width buys recall no one needs.
HNSW_FILTER_BOOST_MAX = 2
# With sq8/pq, a block of more than VALUE_PARTITION_MIN_ROWS rows and at most this share of the index is a
# partition of its codes scanned whole (no graph), then re-ranked: recall ~1.0, and an sq8 scan reads a quarter
# of float32's bytes, so a 10% block costs ~1/26 of a brute-force pass. Measured at 1M, a 54k-row type: HNSW
# partition 76x brute force at recall 0.82, sq8 code scan ~33x at recall ~1.0. Larger blocks keep an HNSW
# partition (over PARTITION_MIN_ROWS); at 100k a 5.4k-row type's float32 slice scan ran 14.6x-46x by the day.
SCAN_PARTITION_MAX_SHARE = 0.10
# Fields whose values are scattered across the articleType-grouped rows get, with sq8/pq, a code scan of every
# value with more than VALUE_PARTITION_MIN_ROWS rows (and at most SCAN_PARTITION_MAX_SHARE of the index): like
# Qdrant's per-value graph links, it costs one more code per row. At 100k a scattered 4.4% colour was 3-5x
# brute force as an exact gather, 0.78-0.85 recall as a selector walk, 25-35x at recall 1.0 as a code scan.
VALUE_PARTITION_FIELDS = ("baseColour",)
PQ_TRAIN_ROWS = 10_000
VALUE_PARTITION_MIN_ROWS = 1_000
CLUSTER_FIELD = "articleType"  # rows are stored grouped by it (see FaissIndex._cluster)
# Below this fraction of the index, a graph/list walk with a selector visits mostly non-matching items
# (slow, and recall drops), so the matches are ranked exactly unless there are very many of them.
EXACT_SELECTIVITY = 0.02
EXACT_SUBSET_HARD_MAX = 200_000
# A filter keeping at least this share is searched in the global structure with a selector (recall@10 0.96 at
# 50%); an articleType filter keeping less searches its types' blocks instead.
GLOBAL_WALK_SELECTIVITY = 0.5
# Fields whose broad values follow the embedding (men's and women's products sit in different regions of the
# space) get an ANN partition per value holding at least BROAD_VALUE_MIN_SHARE of the rows, like Qdrant's
# per-value graph links: a walk of the global graph with a selector stays in the query's region, where a
# correlated filter has few matches (measured at 44k, gender=Men keeping 55%: recall@10 0.86, 0.53 on another
# data set), while the value's own graph holds only matches. A query far from the value's region (a woman's
# dress, gender=Men) meets near-ties there, so these walks search with BROAD_EF_FACTOR x the ef (HNSW) or
# nprobe (IVF) in force (measured at 44k synthetic: recall@10 0.85 at ef 64, 0.90 at 128, 0.95 at 256).
# Each partition costs the memory of its rows' vectors (or codes) and links again.
BROAD_PARTITION_FIELDS = ("gender",)
BROAD_VALUE_MIN_SHARE = 0.2
BROAD_EF_FACTOR = 4


@dataclass(frozen=True)
class Partition:
    """The ANN index of one articleType block, rows ``lo:hi`` of the index."""

    lo: int
    hi: int
    ann: faiss.Index

    @property
    def kind(self) -> str:
        """"hnsw", "ivf" or "flat" (every code scanned), read off the FAISS structure (it survives reloads)."""
        ann = faiss.downcast_index(self.ann)
        return "hnsw" if isinstance(ann, faiss.IndexHNSW) else "ivf" if isinstance(ann, faiss.IndexIVF) else "flat"


@dataclass(frozen=True)
class ValuePartition:
    """The quantized codes of the rows holding one value of a field (rows ascending), scanned whole."""

    rows: np.ndarray
    ann: faiss.Index


class _BitmapSelector:
    """A FAISS selector over a row mask; holds the packed bits, which FAISS reads but does not own."""

    def __init__(self, mask: np.ndarray) -> None:
        self.bits = np.packbits(mask, bitorder="little")
        self.faiss = faiss.IDSelectorBitmap(len(mask), faiss.swig_ptr(self.bits))


def _partition_selector(rows: np.ndarray, mask: np.ndarray) -> tuple[int, _BitmapSelector | None]:
    """How many of a partition's ``rows`` the filter ``mask`` (bool, one per index row) keeps, and a selector over
    the partition's local positions (None when it keeps all of them: no selector needed)."""
    local = mask[rows]
    matches = int(np.count_nonzero(local))
    return matches, (_BitmapSelector(local) if 0 < matches < len(rows) else None)


def _atomic_write(path: Path, write: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


class FaissIndex:
    backend = "faiss"

    def __init__(self, directory: Path | str, index_type: str = "flat", hnsw_m: int | None = None,
                 ef_search: int | None = None, nprobe: int | None = None, quantization: str = "none",
                 rescore_factor: int | None = None, ef_construct: int | None = None) -> None:
        if index_type not in {"flat", "hnsw", "ivf", "auto"}:
            raise InvalidInputError(f"unknown FAISS index type {index_type!r}: flat, hnsw, ivf or auto")
        if quantization not in {"none", "sq8", "pq"}:
            raise InvalidInputError(f"unknown FAISS quantization {quantization!r}: none, sq8 or pq")
        self.dir = Path(directory)
        self.name = self.dir.name
        self.index_type = index_type
        self.quantization = quantization
        self._rescore_factor = rescore_factor
        # None = chosen by size when the ANN structure is built (ann_params.choose).
        self.hnsw_m, self.ef_search, self.nprobe, self.ef_construct = hnsw_m, ef_search, nprobe, ef_construct
        self._params: ann_params.AnnParams | None = None
        self._meta: IndexMeta | None = None
        self.ids = np.zeros(0, dtype=np.int64)
        self.vectors = np.zeros((0, 0), dtype=np.float32)
        self.payloads: list[dict[str, Any]] = []
        self._row: dict[int, int] = {}
        self._ann: faiss.Index | None = None
        self._partitions: dict[str, Partition] = {}
        self._value_parts: dict[tuple[str, str], ValuePartition] = {}
        self._pq_codebook: faiss.Index | None = None  # shared by pq code scans of one build
        self._blocks: dict[str, tuple[int, int]] = {}  # articleType -> rows lo:hi, set by _cluster
        self._columns: dict[str, np.ndarray] | None = None
        self._clustered = False
        self._cluster_lock = threading.Lock()
        self._codes: dict[str, dict[str, int]] = {}
        self._lexicon: Bm25Lexicon | None = None  # BM25 over the payloads' text, rows aligned (see lexical.py)
        if (self.dir / META_FILE).is_file():
            self._load()

    # -- persistence -------------------------------------------------------------------------------
    def _load(self) -> None:
        meta = json.loads((self.dir / META_FILE).read_text())
        extra = meta.get("extra", {})
        self.index_type = extra.get("index_type", self.index_type)
        self.quantization = extra.get("quantization", self.quantization)
        self._meta = IndexMeta(**meta)
        self.ids = np.load(self.dir / IDS_FILE)
        self.vectors = np.load(self.dir / VECTORS_FILE)
        with (self.dir / PAYLOADS_FILE).open(encoding="utf-8") as fh:
            self.payloads = [json.loads(line) for line in fh]
        self._row = {int(i): r for r, i in enumerate(self.ids)}
        self._columns = None  # rebuilt from these payloads when first needed
        self._lexicon = Bm25Lexicon.load(self.dir / LEXICAL_DIR, self.ids)  # None: rebuilt when first searched
        ann_path = self.dir / ANN_FILE
        self._ann = faiss.read_index(str(ann_path)) if ann_path.is_file() and len(self.ids) else None
        self._partitions, self._value_parts = {}, {}
        if self._ann is not None and (self.dir / PARTITIONS_FILE).is_file():
            self._cluster()  # the saved rows are already grouped: this only finds the blocks
            with np.load(self.dir / PARTITIONS_FILE) as saved:
                for i, (name, (lo, hi)) in enumerate(zip(saved["names"].tolist(), saved["bounds"].tolist(),
                                                        strict=True)):
                    if self._blocks.get(name) == (lo, hi):
                        self._partitions[name] = Partition(lo, hi, faiss.deserialize_index(saved[f"ann{i}"]))
                for i, key in enumerate(saved["value_keys"].tolist() if "value_keys" in saved else []):
                    field, value = key.split("=", 1)
                    rows = saved[f"vrows{i}"]
                    if np.array_equal(rows, self._value_rows(field, value)):  # still the rows holding it
                        self._value_parts[(field, value)] = ValuePartition(rows, faiss.deserialize_index(
                            saved[f"vann{i}"]))

    def save(self) -> None:
        meta = self._require()
        self._cluster()
        self.dir.mkdir(parents=True, exist_ok=True)
        _atomic_write(self.dir / IDS_FILE, lambda p: np.save(p.open("wb"), self.ids))
        _atomic_write(self.dir / VECTORS_FILE, lambda p: np.save(p.open("wb"), self.vectors))
        _atomic_write(self.dir / PAYLOADS_FILE, lambda p: p.write_text(
            "".join(json.dumps(pl, ensure_ascii=False) + "\n" for pl in self.payloads), encoding="utf-8"))
        if len(self.ids):
            self._ensure_lexicon().save(self.dir / LEXICAL_DIR)
        ann = self._ensure_ann()
        if ann is not None:
            _atomic_write(self.dir / ANN_FILE, lambda p: faiss.write_index(ann, str(p)))
        if self._partitions or self._value_parts:
            parts, values = list(self._partitions.items()), list(self._value_parts.items())
            _atomic_write(self.dir / PARTITIONS_FILE, lambda p: np.savez(
                p.open("wb"), names=np.array([name for name, _ in parts], dtype=str),
                bounds=np.array([(part.lo, part.hi) for _, part in parts], dtype=np.int64).reshape(-1, 2),
                **{f"ann{i}": faiss.serialize_index(part.ann) for i, (_, part) in enumerate(parts)},
                value_keys=np.array([f"{field}={value}" for (field, value), _ in values], dtype=str),
                **{f"vrows{i}": part.rows for i, (_, part) in enumerate(values)},
                **{f"vann{i}": faiss.serialize_index(part.ann) for i, (_, part) in enumerate(values)}))
        else:
            (self.dir / PARTITIONS_FILE).unlink(missing_ok=True)
        # meta.json last: readers treat it as the commit marker of a complete index.
        _atomic_write(self.dir / META_FILE, lambda p: p.write_text(json.dumps(asdict(meta), indent=2)))

    # -- interface ---------------------------------------------------------------------------------
    @property
    def meta(self) -> IndexMeta | None:
        return self._meta

    def _require(self) -> IndexMeta:
        if self._meta is None:
            raise NotFoundError(f"no FAISS index in {self.dir}: run `fashion-search index` first")
        return self._meta

    def create(self, meta: IndexMeta) -> None:
        if self._meta is not None:
            if self._meta.dim != meta.dim:
                raise InvalidInputError(f"index in {self.dir} has dim {self._meta.dim}, vectors have {meta.dim}")
            return
        meta.backend = self.backend
        meta.extra = {**meta.extra, "index_type": self.index_type, "quantization": self.quantization}
        self._meta = meta
        self.vectors = np.zeros((0, meta.dim), dtype=np.float32)
        self.save()

    def upsert(self, ids: Sequence[int], vectors: np.ndarray, payloads: Sequence[dict[str, Any]]) -> None:
        meta = self._require()
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(ids), -1) if len(ids) else vectors
        check_batch(ids, vectors, payloads, meta.dim)
        new_ids, new_rows = [], []
        for i, (pid, vec, payload) in enumerate(zip(ids, vectors, payloads, strict=True)):
            row = self._row.get(int(pid))
            if row is None:
                new_ids.append(int(pid))
                new_rows.append(i)
                self.payloads.append(dict(payload))
            else:
                self.vectors[row] = vec
                self.payloads[row] = dict(payload)
        if new_ids:
            start = len(self.ids)
            self.ids = np.concatenate([self.ids, np.asarray(new_ids, dtype=np.int64)])
            self.vectors = np.concatenate([self.vectors, vectors[new_rows]])
            self._row.update({pid: start + j for j, pid in enumerate(new_ids)})
        self._invalidate()

    def delete(self, ids: Sequence[int]) -> None:
        self._require()
        rows = {self._row[int(i)] for i in ids if int(i) in self._row}
        if not rows:
            return
        keep = np.array([r not in rows for r in range(len(self.ids))], dtype=bool)
        self.ids, self.vectors = self.ids[keep], self.vectors[keep]
        self.payloads = [p for p, k in zip(self.payloads, keep, strict=True) if k]
        self._row = {int(i): r for r, i in enumerate(self.ids)}
        self._invalidate()

    def flush(self) -> None:
        self.save()

    def search(self, vector: np.ndarray, k: int, flt: SearchFilter | None = None,
               exact: bool = False) -> list[SearchHit]:
        q = check_query(vector, k, self._require().dim)
        if not len(self.ids):
            return []
        self._cluster()
        n = len(self.ids)
        if flt is None or flt.is_empty:
            if self._kind() == "flat":
                return self._hits(q, self._flat_search(q, k, None))
            rows = None if exact else self._ann_search(q, k, None, n)
            if rows is None or len(rows) < min(k, n):
                rows = self._exact(q, k, None)
            return self._hits(q, rows)
        mask = self._mask(flt)
        matches = int(np.count_nonzero(mask))
        if not matches:
            return []
        if not exact and self._kind() != "flat" and matches > VALUE_PARTITION_MIN_ROWS \
                and not flt.equals.get(CLUSTER_FIELD):  # articleType filters have their blocks, below
            self._ensure_ann()
            rows = self._search_values(q, k, mask, flt)
            if rows is not None and len(rows) >= min(k, matches):
                return self._hits(q, rows)
        if self._kind() == "flat" and matches > EXACT_SUBSET_MAX:
            return self._hits(q, self._flat_search(q, k, mask))
        if exact or self._kind() == "flat" or self._exact_is_cheaper(matches, n):
            return self._hits(q, self._exact(q, k, np.flatnonzero(mask)))
        self._ensure_ann()  # builds the partitions too: the first query after an update must find them
        types = flt.equals.get(CLUSTER_FIELD)
        if types and matches < n * GLOBAL_WALK_SELECTIVITY:
            rows = self._search_blocks(q, k, mask, types)
        else:
            broad = self._search_broad(q, k, mask, flt)
            rows = broad if broad is not None else self._ann_search(q, k, mask, matches)
        if len(rows) < min(k, matches):  # never short: rank the matches exactly instead
            rows = self._exact(q, k, np.flatnonzero(mask))
        return self._hits(q, rows)

    def search_lexical(self, query: str, k: int, flt: SearchFilter | None = None) -> list[SearchHit]:
        """True top-k by BM25 score (``lexical.Bm25Lexicon``) among items matching ``flt``; items sharing no term
        with ``query`` are left out, so fewer than k may come back. Raises InvalidInputError for k <= 0."""
        if k <= 0:
            raise InvalidInputError(f"k must be positive, got {k}")
        self._require()
        if not len(self.ids):
            return []
        self._cluster()
        mask = None if flt is None or flt.is_empty else self._mask(flt)
        rows, scores = self._ensure_lexicon().top(query, k, mask)
        return [SearchHit(id=int(self.ids[r]), score=float(s), payload=self.payloads[r])
                for r, s in zip(rows, scores, strict=True)]

    def retrieve(self, ids: Sequence[int], with_vectors: bool = False) -> dict[int, tuple[dict[str, Any],
                                                                                       np.ndarray | None]]:
        out = {}
        for pid in ids:
            row = self._row.get(int(pid))
            if row is not None:
                out[int(pid)] = (self.payloads[row], self.vectors[row].copy() if with_vectors else None)
        return out

    def count(self) -> int:
        return len(self.ids)

    def all_ids(self) -> set[int]:
        return {int(i) for i in self.ids}

    def facets(self) -> dict[str, list[str]]:
        return {name: sorted({str(p[name]) for p in self.payloads if p.get(name)}) for name in KEYWORD_FIELDS}

    def close(self) -> None:
        pass

    # -- internals ---------------------------------------------------------------------------------
    def _invalidate(self) -> None:
        self._ann = None
        self._lexicon = None
        self._partitions, self._value_parts = {}, {}
        self._params = None
        self._columns = None
        self._clustered = False

    def _cluster(self) -> None:
        """Store rows grouped by articleType (then id): the matches of the commonest filters become one
        contiguous block, which ``_exact`` scores as a slice view instead of gathering scattered rows."""
        if self._clustered:
            return
        with self._cluster_lock:  # concurrent searches wait for the regrouping instead of reading half of it
            if self._clustered:
                return
            keys = [str(p.get(CLUSTER_FIELD, "")) for p in self.payloads]
            names, inverse = np.unique(keys, return_inverse=True) if keys else (np.zeros(0, str), np.zeros(0, int))
            order = np.lexsort((self.ids, inverse)) if keys else np.zeros(0, int)
            if not np.array_equal(order, np.arange(len(order))):
                self.ids, self.vectors = self.ids[order], self.vectors[order]
                self.payloads = [self.payloads[i] for i in order]
                self._row = {int(i): r for r, i in enumerate(self.ids)}
                self._ann = None
                self._partitions, self._value_parts = {}, {}
                self._columns = None
                self._lexicon = None
            sizes = np.bincount(inverse, minlength=len(names))
            self._blocks = {str(name): (int(end - size), int(end))
                            for name, end, size in zip(names, np.cumsum(sizes), sizes, strict=True)}
            self._clustered = True

    @property
    def rescore_factor(self) -> int:
        """Candidates re-ranked per result; from the quantization in force, which a reopened index reads from
        disk. PQ codes are coarser than SQ8: a wider list gets recall@10 back to ~0.95+."""
        return max(1, self._rescore_factor or (10 if self.quantization == "pq" else 4))

    def params(self) -> ann_params.AnnParams:
        """The ANN parameters in force: explicit ones, else the size-based defaults."""
        if self._params is None:
            self._params = self._params_for(len(self.ids), self.index_type)
        return self._params

    def set_search_params(self, ef_search: int | None = None, nprobe: int | None = None) -> None:
        """Query-time settings (None = by size); the structures already built are kept."""
        self.ef_search, self.nprobe = ef_search, nprobe
        self._params = None

    def _params_for(self, n: int, index_type: str | None = None) -> ann_params.AnnParams:
        """Parameters for a structure over ``n`` rows; a partition keeps the kind of the whole index."""
        base = ann_params.choose(n, index_type or self.params().index_type)  # type: ignore[arg-type]
        return ann_params.AnnParams(
            index_type=base.index_type, hnsw_m=self.hnsw_m or base.hnsw_m,
            ef_construct=self.ef_construct or base.ef_construct, ef_search=self.ef_search or base.ef_search,
            nlist=base.nlist, nprobe=self.nprobe or base.nprobe)

    def _search_blocks(self, q: np.ndarray, k: int, mask: np.ndarray, types: Sequence[str]) -> np.ndarray:
        """Top rows of a filter on articleType(s): each type's block searched through its partition, or ranked
        exactly when it has none or few matches, and the candidates merged."""
        found = []
        for name in types:
            lo, hi = self._blocks.get(name, (0, 0))
            matches = int(np.count_nonzero(mask[lo:hi]))
            part = self._partitions.get(name)
            if part is not None and matches > (PARTITION_MIN_ROWS if part.kind == "hnsw" else VALUE_PARTITION_MIN_ROWS):
                found.append(self._ann_search(q, k, mask, matches, part))
            elif matches:
                found.append(lo + np.flatnonzero(mask[lo:hi]))
        return self._exact(q, k, np.concatenate(found)) if found else np.zeros(0, dtype=np.int64)

    def _search_values(self, q: np.ndarray, k: int, mask: np.ndarray, flt: SearchFilter) -> np.ndarray | None:
        """Top rows of a filter on a partitioned field's value(s): each value's codes scanned (with the rest of
        the filter as a selector), small values' rows taken as they are, the candidates re-ranked exactly.
        None when the filter names no such field, or a value too large to have a partition."""
        field = next((f for f in VALUE_PARTITION_FIELDS if flt.equals.get(f)), None)
        if field is None:
            return None
        found = []
        for value in flt.equals[field]:
            part = self._value_parts.get((field, value))
            if part is None:
                rows = self._value_rows(field, value)
                if len(rows) > VALUE_PARTITION_MIN_ROWS:
                    return None
                found.append(rows[mask[rows]])
                continue
            matches, selector = _partition_selector(part.rows, mask)
            if not matches:
                continue
            sel = selector.faiss if selector else None
            ivf = isinstance(faiss.downcast_index(part.ann), faiss.IndexIVF)  # a pq scan: one list
            params = faiss.SearchParametersIVF(nprobe=1, sel=sel) if ivf else faiss.SearchParameters(sel=sel)
            _, got = part.ann.search(q.reshape(1, -1), k * self.rescore_factor, params=params)
            found.append(part.rows[got[0][got[0] >= 0]])
        rows = np.concatenate(found) if found else np.zeros(0, dtype=np.int64)
        return self._exact(q, k, rows) if len(rows) else rows

    def _search_broad(self, q: np.ndarray, k: int, mask: np.ndarray, flt: SearchFilter) -> np.ndarray | None:
        """Top rows of a filter on broad values of a ``BROAD_PARTITION_FIELDS`` field: each value's own ANN
        partition walked (the rest of the filter as a selector) with a widened ef/nprobe, the candidates re-ranked
        exactly. None when the filter names no such field, or a value without a partition."""
        field = next((f for f in BROAD_PARTITION_FIELDS if flt.equals.get(f)), None)
        if field is None or any((field, v) not in self._value_parts for v in flt.equals[field]):
            return None
        p = self.params()
        fetch = k * self.rescore_factor if self.quantization != "none" else k
        found = []
        for value in flt.equals[field]:
            part = self._value_parts[(field, value)]
            matches, selector = _partition_selector(part.rows, mask)
            if not matches:
                continue
            sel = selector.faiss if selector else None
            selectivity = matches / len(part.rows)
            own = self._params_for(len(part.rows))
            if isinstance(faiss.downcast_index(part.ann), faiss.IndexIVF):
                nprobe = ann_params.boost_for_selectivity(max(own.nprobe, p.nprobe) * BROAD_EF_FACTOR, selectivity)
                params: faiss.SearchParameters = faiss.SearchParametersIVF(nprobe=min(own.nlist, nprobe), sel=sel)
            else:
                ef = ann_params.boost_for_selectivity(max(p.ef_search * BROAD_EF_FACTOR, 2 * fetch), selectivity,
                                                      HNSW_FILTER_BOOST_MAX)
                params = faiss.SearchParametersHNSW(efSearch=ef, sel=sel)
            _, got = part.ann.search(q.reshape(1, -1), fetch, params=params)
            found.append(part.rows[got[0][got[0] >= 0]])
        rows = np.concatenate(found) if found else np.zeros(0, dtype=np.int64)
        return self._exact(q, k, rows) if len(rows) else rows

    def _kind(self) -> str:
        return self.params().index_type

    @staticmethod
    def _exact_is_cheaper(matches: int, n: int) -> bool:
        return matches <= EXACT_SUBSET_MAX or (matches / n < EXACT_SELECTIVITY and matches <= EXACT_SUBSET_HARD_MAX)

    def _build_columns(self) -> dict[str, np.ndarray]:
        """Each keyword field as int32 codes (-1 = missing) and year as int64 (-1 = missing)."""
        columns: dict[str, np.ndarray] = {}
        self._codes = {}
        for name in KEYWORD_FIELDS:
            codes: dict[str, int] = {}
            values = [p.get(name) or "" for p in self.payloads]
            col = np.fromiter((codes.setdefault(v, len(codes)) if v else -1 for v in values),
                              dtype=np.int32, count=len(values))
            columns[name], self._codes[name] = col, codes
        columns["year"] = np.fromiter((p["year"] if p.get("year") is not None else -1 for p in self.payloads),
                                      dtype=np.int64, count=len(self.payloads))
        return columns

    def _mask(self, flt: SearchFilter) -> np.ndarray:
        if self._columns is None:
            self._columns = self._build_columns()
        mask = np.ones(len(self.ids), dtype=bool)
        for name, allowed in flt.equals.items():
            codes = [c for v in allowed if (c := self._codes[name].get(v)) is not None]
            column = self._columns[name]
            if not codes:
                return np.zeros(len(self.ids), dtype=bool)
            if len(codes) == 1:
                mask &= column == codes[0]
            else:  # lookup table: one gather instead of a comparison per allowed value
                lut = np.zeros(len(self._codes[name]) + 1, dtype=bool)
                lut[codes] = True
                mask &= lut[column]  # code -1 reads the last slot, always False
        years = self._columns["year"]
        if flt.year_min is not None:
            mask &= (years >= flt.year_min)
        if flt.year_max is not None:
            mask &= (years >= 0) & (years <= flt.year_max)
        return mask

    def _exact(self, q: np.ndarray, k: int, rows: np.ndarray | None) -> np.ndarray:
        """Top-k rows by exact score among ``rows`` (None = all rows, scored without a gather copy)."""
        if rows is None:
            scores = self.vectors @ q
            top = min(k, len(scores))
            part = np.argpartition(-scores, top - 1)[:top]
            return part[np.lexsort((self.ids[part], -scores[part]))]
        lo, hi = int(rows.min()), int(rows.max()) + 1
        # Scoring the view over rows[lo:hi] reads every row of the span but copies nothing; a gather copies the
        # matches, ~4.6x the cost per row measured at 100k x 512-d. So a dense enough span (an articleType block,
        # or a filter keeping most rows) is cheaper scored whole than gathered.
        dense = hi - lo <= GATHER_COST * len(rows)
        scores = (self.vectors[lo:hi] @ q)[rows - lo] if dense else self.vectors[rows] @ q
        top = min(k, len(rows))
        part = np.argpartition(-scores, top - 1)[:top]
        return rows[part[np.lexsort((self.ids[rows[part]], -scores[part]))]]

    def _flat_search(self, q: np.ndarray, k: int, mask: np.ndarray | None) -> np.ndarray:
        """Exact top-k rows (int64, best first) among ``mask`` (None = all) by FAISS's flat scan, the filter as a
        bitmap selector. With a selector FAISS scores one query in one thread with its SIMD kernels, where a
        numpy product goes through a multi-threaded BLAS: measured at 40k x 128-d while the 2 cores were busy,
        ~1,000-1,400 queries/s against ~80-400."""
        ann = self._ensure_ann()
        assert ann is not None
        bitmap = _BitmapSelector(mask) if mask is not None else None
        selector = bitmap.faiss if bitmap is not None else faiss.IDSelectorAll()
        _, rows = ann.search(q.reshape(1, -1), min(k, len(self.ids)), params=faiss.SearchParameters(sel=selector))
        return rows[0][rows[0] >= 0]

    def _ensure_ann(self) -> faiss.Index | None:
        if self._ann is not None or not len(self.ids):
            return self._ann
        self._cluster()  # regrouping rows afterwards would drop the structures built here
        p = self.params()
        ann = self._new_ann(self.vectors, p)
        log.info("built FAISS %s (%s) over %d items: %s", p.index_type, self.quantization, len(self.ids), p)
        partitions, self._pq_codebook = {}, None
        if p.index_type != "flat":
            for name, (lo, hi) in self._blocks.items():
                block = self.vectors[lo:hi]
                if self._scans_codes(hi - lo):
                    partitions[name] = Partition(lo, hi, self._new_code_scan(block))
                elif hi - lo > PARTITION_MIN_ROWS:
                    partitions[name] = Partition(lo, hi, self._new_ann(block, self._params_for(hi - lo)))
            if partitions:
                log.info("built %d articleType partitions over %d items", len(partitions),
                         sum(part.hi - part.lo for part in partitions.values()))
        values = {}
        if p.index_type != "flat":
            for field in BROAD_PARTITION_FIELDS:
                for value in self._column_codes(field):
                    rows = self._value_rows(field, value)
                    if len(rows) > EXACT_SUBSET_MAX and len(rows) >= BROAD_VALUE_MIN_SHARE * len(self.ids):
                        values[(field, value)] = ValuePartition(rows, self._new_ann(self.vectors[rows],
                                                                                    self._params_for(len(rows))))
        if p.index_type != "flat" and self.quantization != "none":
            for field in VALUE_PARTITION_FIELDS:
                for value in self._column_codes(field):
                    rows = self._value_rows(field, value)
                    if self._scans_codes(len(rows)):
                        values[(field, value)] = ValuePartition(rows, self._new_code_scan(self.vectors[rows]))
        if values:
            log.info("built %d value partitions (%s) over %d rows", len(values),
                     ", ".join(sorted({f for f, _ in values})), sum(len(v.rows) for v in values.values()))
        self._ann, self._partitions, self._value_parts, self._pq_codebook = ann, partitions, values, None
        return ann

    def _ensure_lexicon(self) -> Bm25Lexicon:
        """The BM25 lexicon of the current rows, built from the payloads if there is none (grouped rows first: a
        regrouping afterwards would drop it)."""
        self._cluster()
        if self._lexicon is None:
            self._lexicon = Bm25Lexicon.build(self.ids, self.payloads)
            log.info("built the lexical index over %d items", len(self.ids))
        return self._lexicon

    def _scans_codes(self, rows: int) -> bool:
        """Whether a block or value of this many rows gets a code-scan partition (sq8/pq indexes only)."""
        return self.quantization != "none" and VALUE_PARTITION_MIN_ROWS < rows <= SCAN_PARTITION_MAX_SHARE * len(
            self.ids)

    def _column_codes(self, field: str) -> dict[str, int]:
        if self._columns is None:
            self._columns = self._build_columns()
        return self._codes[field]

    def _value_rows(self, field: str, value: str) -> np.ndarray:
        code = self._column_codes(field).get(value)
        return np.zeros(0, dtype=np.int64) if code is None else np.flatnonzero(self._columns[field] == code)

    def _new_code_scan(self, vectors: np.ndarray) -> faiss.Index:
        """The rows' quantized codes alone, searched by scanning them all (a scan partition)."""
        dim, ip = self._require().dim, faiss.METRIC_INNER_PRODUCT
        if self.quantization == "sq8":
            ann = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_8bit, ip)
            ann.train(vectors)
        else:
            if self._pq_codebook is None:  # trained once per build on the whole index, then copied: training
                # 128 sub-quantizers per partition took minutes, and small partitions lack the ~10k rows it needs
                # one inverted list holding every code: unlike IndexPQ, IVF search takes a selector
                book = faiss.IndexIVFPQ(faiss.IndexFlatIP(dim), dim, 1, _pq_subquantizers(dim), 8, ip)
                pick = np.random.default_rng(0).choice(len(self.vectors), size=min(len(self.vectors), PQ_TRAIN_ROWS),
                                                       replace=False)
                book.train(np.ascontiguousarray(self.vectors[np.sort(pick)]))
                self._pq_codebook = book
            ann = faiss.clone_index(self._pq_codebook)
        ann.add(vectors)
        return ann

    def _new_ann(self, vectors: np.ndarray, p: ann_params.AnnParams) -> faiss.Index:
        dim = self._require().dim
        ip = faiss.METRIC_INNER_PRODUCT
        if p.index_type == "hnsw":
            if self.quantization == "sq8":
                ann = faiss.IndexHNSWSQ(dim, faiss.ScalarQuantizer.QT_8bit, p.hnsw_m, ip)
            elif self.quantization == "pq":
                ann = faiss.IndexHNSWPQ(dim, _pq_subquantizers(dim), p.hnsw_m, 8, ip)
            else:
                ann = faiss.IndexHNSWFlat(dim, p.hnsw_m, ip)
            ann.hnsw.efConstruction = p.ef_construct
        elif p.index_type == "ivf":
            coarse = faiss.IndexFlatIP(dim)
            if self.quantization == "sq8":
                ann = faiss.IndexIVFScalarQuantizer(coarse, dim, p.nlist, faiss.ScalarQuantizer.QT_8bit, ip)
            elif self.quantization == "pq":
                ann = faiss.IndexIVFPQ(coarse, dim, p.nlist, _pq_subquantizers(dim), 8, ip)
            else:
                ann = faiss.IndexIVFFlat(coarse, dim, p.nlist, ip)
            ann.cp.min_points_per_centroid = 5  # quiet the warning on small test indexes
            # k-means on a sample: 256 points per list is plenty and keeps 1M-item builds in seconds.
            sample = min(len(vectors), max(p.nlist * 64, 50_000))
            rows = np.random.default_rng(0).choice(len(vectors), size=sample, replace=False)
            ann.train(np.ascontiguousarray(vectors[np.sort(rows)]))
        else:
            ann = faiss.IndexFlatIP(dim)
        if not ann.is_trained:
            ann.train(vectors)
        ann.add(vectors)
        return ann

    def _ann_search(self, q: np.ndarray, k: int, mask: np.ndarray | None, matches: int,
                    part: Partition | None = None) -> np.ndarray:
        """Rows of the top candidates from the global structure, or from ``part`` (matches outside it are
        not searched)."""
        ann = self._ensure_ann()
        assert ann is not None
        lo, size, p = 0, len(self.ids), self.params()
        kind = p.index_type
        if part is not None:
            ann, lo, size, kind = part.ann, part.lo, part.hi - part.lo, part.kind
            # nlist/nprobe follow the partition's size; ef stays the global one: recall inside a partition is no
            # easier than in the whole graph (measured at 1M: 0.71 at ef=96, 0.82 at ef=320 on a 54k-item type)
            own = self._params_for(size)
            p = replace(own, ef_search=max(own.ef_search, p.ef_search))
            mask = mask[part.lo:part.hi]
        selectivity = matches / max(1, size)
        selector = None
        if mask is not None and matches < size:
            bitmap = _BitmapSelector(mask)
            selector = bitmap.faiss
        fetch = k * self.rescore_factor if self.quantization != "none" else k
        if kind == "hnsw":
            ef = ann_params.boost_for_selectivity(max(p.ef_search, 2 * fetch), selectivity, HNSW_FILTER_BOOST_MAX)
            params = faiss.SearchParametersHNSW(efSearch=ef, sel=selector)
        elif kind == "ivf":
            nprobe = min(p.nlist, ann_params.boost_for_selectivity(p.nprobe, selectivity))
            params = faiss.SearchParametersIVF(nprobe=nprobe, sel=selector)
        else:
            params = faiss.SearchParameters(sel=selector)
        _, rows = ann.search(q.reshape(1, -1), fetch, params=params)
        rows = rows[0]
        rows = rows[rows >= 0] + lo
        if self.quantization != "none" and len(rows):
            rows = self._exact(q, k, rows)  # re-rank quantized candidates on the float32 vectors
        return rows

    def _hits(self, q: np.ndarray, rows: np.ndarray) -> list[SearchHit]:
        scores = self.vectors[rows] @ q
        order = np.lexsort((self.ids[rows], -scores))
        return [SearchHit(id=int(self.ids[rows[i]]), score=float(scores[i]), payload=self.payloads[rows[i]])
                for i in order]


def _pq_subquantizers(dim: int) -> int:
    """8-bit codes over 4-wide sub-vectors (128 bytes for 512-d, 16x less than float32); must divide ``dim``."""
    for m in (dim // 4, dim // 2, dim):
        if m and dim % m == 0:
            return m
    return dim
