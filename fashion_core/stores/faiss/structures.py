"""The FAISS structures over the rows, how they are built, and the kernels that search them.

One build (``build``) makes, over the rows as grouped by ``Rows.group``:
- the global structure: flat (exact), HNSW or IVF inner-product index, raw or quantized (sq8, pq);
- with an ANN structure, a ``Partition`` for every articleType block too large to scan exactly (like Qdrant's
  payload-aware sub-graphs): with sq8/pq a block of at most ``SCAN_PARTITION_MAX_SHARE`` of the index is a scan
  of its codes (no graph), a larger one (over ``PARTITION_MIN_ROWS``) an ANN index of its own;
- ``ValuePartition``s: an ANN index per broad value of ``BROAD_PARTITION_FIELDS`` (gender) and, with sq8/pq, a
  fast-scan code scan per value of ``VALUE_PARTITION_FIELDS`` (baseColour), whose rows are scattered over
  the blocks;
- the ``scan``: a fast-scan code scan of every row, for the filters no partition covers (a year range, a season,
  a usage) and that keep too little of the index for a walk of the global structure with a selector.
Partitions cost extra memory for the rows they cover (their own vectors or codes, and links for graphs); the scan
``dim / 4`` bytes a row.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import faiss
import numpy as np

from fashion_core.stores import ann_params
from fashion_core.stores.faiss import tuning
from fashion_core.stores.faiss.columns import BitmapSelector, Columns
from fashion_core.stores.faiss.rows import Rows
from fashion_core.stores.faiss.tuning import Tuning

log = logging.getLogger(__name__)


def kind_of(ann: faiss.Index) -> str:
    """"hnsw", "ivf" or "flat" (every vector or code scanned), read off the FAISS structure (it survives
    reloads). A code scan is a one-list IVF (fast-scan PQ; one saved before fast scans: sq8 "flat" or pq IVF)."""
    ann = faiss.downcast_index(ann)
    return "hnsw" if isinstance(ann, faiss.IndexHNSW) else "ivf" if isinstance(ann, faiss.IndexIVF) else "flat"


@dataclass(frozen=True)
class Partition:
    """The structure of one articleType block, rows ``lo:hi`` of the index (its positions are ``row - lo``)."""

    lo: int
    hi: int
    ann: faiss.Index

    @property
    def kind(self) -> str:
        """"hnsw", "ivf" or "flat" (see :func:`kind_of`)."""
        return kind_of(self.ann)


@dataclass(frozen=True)
class ValuePartition:
    """The structure of the rows holding one value of a field: ``rows`` (int64, ascending; position i of ``ann``
    is row ``rows[i]``), an ANN index (broad values) or a scan of their quantized codes (scattered values).
    ``walk``: the least ef (HNSW) or nprobe (IVF) a broad value's walks search with, found when it was built
    (:func:`calibrate_broad`); 0 for one saved before calibration (``Tuning.broad_walk``); -1 when its walks miss
    too much at any width: its filters are answered by the scan of every row."""

    rows: np.ndarray
    ann: faiss.Index
    walk: int = 0

    @property
    def kind(self) -> str:
        """"hnsw", "ivf" or "flat" (see :func:`kind_of`)."""
        return kind_of(self.ann)


@dataclass(frozen=True)
class Structures:
    """Everything built over one row set: the global structure (``ann``), the articleType partitions by type
    name, the value partitions by (field, value), the code scan of every row (``scan``, position = row; None
    for a flat index, or one saved before it). Drop it when the rows change or move."""

    ann: faiss.Index
    partitions: dict[str, Partition] = field(default_factory=dict)
    values: dict[tuple[str, str], ValuePartition] = field(default_factory=dict)
    scan: faiss.Index | None = None


class Builder:
    """Builds the structures of one index (``dim``-wide float32 vectors, one quantization); holds the
    fast-scan codebook its code scans share, trained once on a sample of ``vectors`` (all the index's rows)."""

    def __init__(self, dim: int, quantization: str, vectors: np.ndarray) -> None:
        self.dim, self.quantization, self._vectors = dim, quantization, vectors
        self._scan_codebook: faiss.Index | None = None

    def ann(self, vectors: np.ndarray, p: ann_params.AnnParams) -> faiss.Index:
        """A flat, HNSW or IVF index (``p.index_type``) over ``vectors`` (float32, (rows, dim)), positions in
        row order."""
        dim, ip = self.dim, faiss.METRIC_INNER_PRODUCT
        ann: faiss.Index
        if p.index_type == "hnsw":
            hnsw: faiss.IndexHNSW
            # faiss's shipped stubs give these two the (d, quantizer object, M) constructors; the SWIG ones
            # called here take (d, QuantizerType, M, metric) and (d, pq_m, M, pq_nbits, metric)
            if self.quantization == "sq8":
                hnsw = faiss.IndexHNSWSQ(dim, faiss.ScalarQuantizer.QT_8bit, p.hnsw_m, ip)  # type: ignore[arg-type]
            elif self.quantization == "pq":
                hnsw = faiss.IndexHNSWPQ(dim, pq_subquantizers(dim), p.hnsw_m, 8, ip)  # type: ignore[call-arg, arg-type]
            else:
                hnsw = faiss.IndexHNSWFlat(dim, p.hnsw_m, ip)
            hnsw.hnsw.efConstruction = p.ef_construct
            ann = hnsw
        elif p.index_type == "ivf":
            coarse = faiss.IndexFlatIP(dim)
            ivf: faiss.IndexIVF
            if self.quantization == "sq8":
                ivf = faiss.IndexIVFScalarQuantizer(coarse, dim, p.nlist, faiss.ScalarQuantizer.QT_8bit, ip)
            elif self.quantization == "pq":
                ivf = faiss.IndexIVFPQ(coarse, dim, p.nlist, pq_subquantizers(dim), 8, ip)
            else:
                ivf = faiss.IndexIVFFlat(coarse, dim, p.nlist, ip)
            ivf.cp.min_points_per_centroid = 5  # quiet the warning on small test indexes
            # k-means on a sample: 256 points per list is plenty and keeps 1M-item builds in seconds.
            sample = min(len(vectors), max(p.nlist * 64, 50_000))
            rows = np.random.default_rng(0).choice(len(vectors), size=sample, replace=False)
            ivf.train(np.ascontiguousarray(vectors[np.sort(rows)]))
            ann = ivf
        else:
            ann = faiss.IndexFlatIP(dim)
        if not ann.is_trained:
            ann.train(vectors)
        ann.add(vectors)
        return ann

    def code_scan(self, vectors: np.ndarray) -> faiss.Index:
        """The quantized codes of ``vectors`` (float32, (rows, dim)) alone, searched by scanning them all (a
        scan partition): FAISS's fast-scan PQ (4-bit codes over 2-wide sub-vectors, ``dim / 4`` bytes a vector,
        scored 32 codes at a time from SIMD-register lookup tables: André et al. 2017, "Accelerated Nearest
        Neighbor Search with Quick ADC") as a one-list IVF, whose search takes a selector (IndexPQFastScan's does
        not). Its scores are coarse, so a search fetches ``scan_fetch`` candidates for the exact re-rank.
        Measured on the real model's 128-d embeddings grown to 100k / 1M (README "ANN at scale"): a 4.9k-row
        colour scanned in ~60 us against ~150 us for SQ8 codes, a 48k-row one in ~0.4 ms against ~1.6 ms,
        recall@10 after the re-rank 0.99-1.00. One codebook per build, trained on a sample of the whole index
        (small partitions lack the rows), copied into each partition."""
        if self._scan_codebook is None:
            dim = self.dim
            book = faiss.IndexIVFPQFastScan(faiss.IndexFlatIP(dim), dim, 1, fast_scan_subquantizers(dim), 4,
                                            faiss.METRIC_INNER_PRODUCT)
            pick = np.random.default_rng(0).choice(len(self._vectors), size=min(len(self._vectors),
                                                                               tuning.PQ_TRAIN_ROWS),
                                                   replace=False)
            book.train(np.ascontiguousarray(self._vectors[np.sort(pick)]))
            self._scan_codebook = book
        ann = faiss.clone_index(self._scan_codebook)
        ann.add(vectors)
        return ann


def is_fast_scan(ann: faiss.Index) -> bool:
    """Whether ``ann`` is a fast-scan code partition (see ``Builder.code_scan``), whose candidates need the
    wider re-rank of ``Tuning.scan_fetch``; partitions saved before it (sq8 / pq code scans) are not."""
    if isinstance(ann, faiss.IndexIVFFastScan):  # built, read and cloned indexes come downcast already
        return True
    return type(ann) is faiss.Index and isinstance(faiss.downcast_index(ann), faiss.IndexIVFFastScan)


def fast_scan_subquantizers(dim: int) -> int:
    """Sub-quantizers of a fast-scan code: one per 2 dimensions (``dim / 4`` bytes at 4 bits each; 32 B for
    128-d, 128 B for 512-d, against ``dim`` bytes for sq8); every dimension alone for an odd ``dim``."""
    return dim // 2 if dim % 2 == 0 else dim


def build(rows: Rows, columns: Callable[[], Columns], settings: Tuning, dim: int) -> Structures:
    """The structures over ``rows`` (non-empty, grouped: see ``Rows.group``) of ``dim``-wide vectors, with the
    kind, quantization and parameters of ``settings``; ``columns()`` gives each value's rows (called only when
    an ANN structure is built: a flat index needs no columns)."""
    n = len(rows)
    p = settings.params(n)
    make = Builder(dim, settings.quantization, rows.vectors)
    ann = make.ann(rows.vectors, p)
    log.info("built FAISS %s (%s) over %d items: %s", p.index_type, settings.quantization, n, p)
    if p.index_type == "flat":
        return Structures(ann)
    partitions = {}
    for name, (lo, hi) in rows.blocks.items():
        block = rows.vectors[lo:hi]
        if settings.scans_codes(hi - lo, n):
            partitions[name] = Partition(lo, hi, make.code_scan(block))
        elif hi - lo > tuning.PARTITION_MIN_ROWS:
            partitions[name] = Partition(lo, hi, make.ann(block, settings.params_for(hi - lo, n)))
    if partitions:
        log.info("built %d articleType partitions over %d items", len(partitions),
                 sum(part.hi - part.lo for part in partitions.values()))
    values, cols = {}, columns()
    for name in tuning.BROAD_PARTITION_FIELDS:
        for value in cols.codes(name):
            found = cols.value_rows(name, value)
            if len(found) > tuning.EXACT_SUBSET_MAX and len(found) >= tuning.BROAD_VALUE_MIN_SHARE * n:
                part = make.ann(rows.vectors[found], settings.params_for(len(found), n))
                walk = calibrate_broad(part, rows.vectors, found, settings, ann)
                log.info("%s=%s: %d rows, %s", name, value, len(found),
                         f"walked at ef/nprobe >= {walk}" if walk > 0 else "answered by the scan of every row")
                values[(name, value)] = ValuePartition(found, part, walk)
    if settings.quantization != "none":
        for name in tuning.VALUE_PARTITION_FIELDS:
            for value in cols.codes(name):
                found = cols.value_rows(name, value)
                if settings.scans_codes(len(found), n, tuning.VALUE_SCAN_MAX_SHARE):
                    values[(name, value)] = ValuePartition(found, make.code_scan(rows.vectors[found]))
    if values:
        log.info("built %d value partitions (%s) over %d rows", len(values),
                 ", ".join(sorted({f for f, _ in values})), sum(len(v.rows) for v in values.values()))
    return Structures(ann, partitions, values, make.code_scan(rows.vectors) if tuning.scans_every_row(n) else None)


def calibrate_broad(ann: faiss.Index, vectors: np.ndarray, rows: np.ndarray, settings: Tuning,
                    whole: faiss.Index) -> int:
    """The least ef (HNSW) or nprobe (IVF) for walks of ``ann``, the partition of ``rows`` (int64, ascending) of an
    index of ``vectors`` (float32, (n, dim), unit norm): the smallest of ``tuning.BROAD_EF_FACTORS`` x the one in
    force (``Tuning.broad_walk_base``) at which, walked and re-ranked exactly as the planner searches it,
    ``BROAD_CALIBRATION_QUERIES`` rows drawn (seeded) from outside the partition, the queries far from its region
    that meet its near-ties, find at each depth k of ``BROAD_CALIBRATION_DEPTHS`` ``BROAD_CALIBRATION_RECALL`` of
    their true top-k on average (a tie with the k-th true score counts: catalogs hold duplicate images; or what an
    unfiltered walk of ``whole``, the global structure, finds of their top-k among every row, less 0.01, when that
    is lower: a filter should cost no recall, not buy more than the index gives), with at most
    ``BROAD_CALIBRATION_POOR_SHARE`` of them finding under half (or the unfiltered walk's share, if more); -1 when
    none does (not walked: the scan of every row answers its filters). Costs two exact scans per query (the
    partition, every row) and a few walks (~0.1-0.3 s at 50k rows)."""
    n = len(vectors)
    outside = np.setdiff1d(np.arange(n), rows, assume_unique=True)
    pool = outside if len(outside) else rows
    picked = np.random.default_rng(0).choice(pool, size=min(len(pool), tuning.BROAD_CALIBRATION_QUERIES),
                                             replace=False)
    queries, own = vectors[np.sort(picked)], vectors[rows]
    depths = [k for k in tuning.BROAD_CALIBRATION_DEPTHS if k < len(rows)]
    bars, everywhere = _kth_scores(queries, own, depths), _kth_scores(queries, vectors, depths)
    p = settings.params(n)
    need = []  # (recall, poor share) asked at each depth
    for k in depths:
        unfiltered = _walk_recalls(whole, vectors, queries, everywhere[k], k, settings.fetch(k),
                                   settings.walk(p, settings.fetch(k), 1.0), kind_of(whole))
        need.append((min(tuning.BROAD_CALIBRATION_RECALL, unfiltered.mean() - 0.01),
                     max(tuning.BROAD_CALIBRATION_POOR_SHARE, float(np.mean(unfiltered < 0.5)))))
    kind = kind_of(ann)
    base = settings.broad_walk_base(len(rows), n, kind)
    found = {}
    for factor in tuning.BROAD_EF_FACTORS:
        found[factor] = [_walk_recalls(ann, own, queries, bars[k], k, settings.fetch(k),
                                       settings.broad_walk(len(rows), n, kind, settings.fetch(k), 1.0, base * factor),
                                       kind) for k in depths]
        if all(r.mean() >= recall and np.mean(r < 0.5) <= poor for r, (recall, poor) in zip(found[factor], need,
                                                                                          strict=True)):
            return base * factor
    widest = tuning.BROAD_EF_FACTORS[-1]
    log.warning("a broad partition of %d rows: its walks find %s of their far queries' top-k even at %dx the "
                "ef/nprobe; its filters will scan every row instead", len(rows),
                " / ".join(f"{r.mean():.3f}" for r in found[widest]), widest)
    return -1


def _kth_scores(queries: np.ndarray, vectors: np.ndarray, depths: list[int]) -> dict[int, np.ndarray]:
    """Each query's k-th best inner product (float64, (queries,)) with ``vectors`` for each k of ``depths`` (each
    below ``len(vectors)``), scored 32 queries at a time ((32, rows) float32) and once for every depth."""
    last = len(vectors)
    chunks: dict[int, list[np.ndarray]] = {k: [] for k in depths}
    for start in range(0, len(queries), 32):
        scores = queries[start:start + 32] @ vectors.T
        for k in depths:
            chunks[k].append(np.partition(scores, last - k, axis=1)[:, last - k])
    return {k: np.concatenate(parts).astype(np.float64) for k, parts in chunks.items()}


def _walk_recalls(ann: faiss.Index, own: np.ndarray, queries: np.ndarray, bars: np.ndarray, k: int, fetch: int,
                  walk: tuple[int, int], kind: str) -> np.ndarray:
    """Each query's recall@``k`` (float64, (queries,)) by walks of ``ann`` (over the rows ``own``) at ``walk`` (ef,
    nprobe), fetching ``fetch`` candidates re-ranked exactly: the share of its k best found scoring at least its
    k-th true score ``bars[i]`` (so ties count)."""
    ef, nprobe = walk
    recalls = np.empty(len(queries))
    for i, (q, bar) in enumerate(zip(queries, bars, strict=True)):
        got = top(ann, q, fetch, kind=kind, ef=ef, nprobe=nprobe)
        best = np.sort(own[got] @ q)[::-1][:k]
        recalls[i] = np.count_nonzero(best >= bar - 1e-6) / k
    log.debug("calibration walk %s at depth %d: recall %.3f, %.3f under half", walk, k, recalls.mean(),
              np.mean(recalls < 0.5))
    return recalls


def with_scan(built: Structures, rows: Rows, quantization: str, dim: int) -> Structures:
    """``built`` with the code scan of every row of ``rows`` when it lacks one it should have (an index saved
    before scans existed: its filters no partition covers would walk the global graph); else ``built`` itself."""
    if built.scan is not None or kind_of(built.ann) == "flat" or not tuning.scans_every_row(len(rows)):
        return built
    log.info("building the code scan of every row (%d rows), which this saved index lacks", len(rows))
    return replace(built, scan=Builder(dim, quantization, rows.vectors).code_scan(rows.vectors))


def top(ann: faiss.Index, q: np.ndarray, fetch: int, selector: BitmapSelector | None = None, *,
        kind: str = "flat", ef: int = 0, nprobe: int = 0) -> np.ndarray:
    """Positions (int64, best first) of the ``fetch`` best vectors of ``ann`` for query ``q`` (float32, (dim,))
    by inner product, among those ``selector`` keeps (None = all); fewer when fewer are found. A ``kind``
    "hnsw" walk uses ``ef``, an "ivf" one probes ``nprobe`` lists; "flat" scans everything."""
    if selector is None:
        params = _unselected_params(kind, ef, nprobe)
    else:
        params = _search_params(kind, ef, nprobe)
        params.sel = selector.faiss
    _, got = ann.search(q.reshape(1, -1), fetch, params=params)
    return got[0][got[0] >= 0]


@functools.lru_cache(maxsize=256)
def _unselected_params(kind: str, ef: int, nprobe: int) -> faiss.SearchParameters:
    """The search parameters of a walk without a selector, made once per (kind, ef, nprobe): FAISS only reads
    them during a search, and building them (SWIG objects, their fields set one by one) cost ~15 us a query."""
    return _search_params(kind, ef, nprobe)


def _search_params(kind: str, ef: int, nprobe: int) -> faiss.SearchParameters:
    """FAISS search parameters of a ``kind`` ("hnsw", "ivf", else flat) walk at ``ef`` / ``nprobe``, no selector."""
    # Fields set after construction: what faiss's keyword constructors do (their stubs take no arguments).
    params: faiss.SearchParameters
    if kind == "hnsw":
        # the stubs lack SearchParametersHNSW (faiss has it: SearchParameters with efSearch, check_relative_distance)
        params = hnsw = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]
        hnsw.efSearch = ef
    elif kind == "ivf":
        params = ivf = faiss.SearchParametersIVF()
        ivf.nprobe = nprobe
    else:
        params = faiss.SearchParameters()
    return params


def flat_top(ann: faiss.Index, q: np.ndarray, k: int, selector: BitmapSelector | None) -> np.ndarray:
    """Exact top-``k`` positions (int64, best first) of a flat ``ann`` among those ``selector`` keeps (None =
    all) by FAISS's flat scan. With a selector FAISS scores one query in one thread with its SIMD kernels, where
    a numpy product goes through a multi-threaded BLAS: measured at 40k x 128-d while the 2 cores were busy,
    ~1,000-1,400 queries/s against ~80-400."""
    sel = selector.faiss if selector is not None else faiss.IDSelectorAll()
    params = faiss.SearchParameters()
    params.sel = sel
    _, got = ann.search(q.reshape(1, -1), k, params=params)
    return got[0][got[0] >= 0]


def pq_subquantizers(dim: int) -> int:
    """8-bit codes over 4-wide sub-vectors (128 bytes for 512-d, 16x less than float32); must divide ``dim``."""
    for m in (dim // 4, dim // 2, dim):
        if m and dim % m == 0:
            return m
    return dim
