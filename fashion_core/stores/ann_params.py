"""ANN settings chosen by catalog size, shared by the FAISS and Qdrant backends.

The figures behind the defaults are measured by ``benchmarks/ann_scale.py`` (512-d CLIP-like vectors):
- below ~20k items an exact scan costs well under a millisecond per query, so no ANN structure is built;
- up to ~2M items HNSW; ``m`` and ``ef`` grow with size because recall at a fixed ``ef`` drops as the graph
  grows (SQ8, clustered synthetic vectors: recall@10 0.958 at 100k with m=16 ef=64; at 1M with m=32, 0.858 at
  ef=96, 0.948 at ef=320 and 0.954 at ef=448, still 100x the QPS of a brute-force scan). Sizes past 1M are
  not measured;
- past that, HNSW build time and its ~m*8 bytes of links per item dominate, so FAISS switches to IVF
  (k-means lists, ``nlist ~ 4 sqrt(n)``) with product quantization and an exact re-rank.

Quantization cuts the bytes the ANN structure holds per item (512-d float32 = 2048 B):
``sq8`` 512 B (4x less; re-ranking 4k candidates on the float32 vectors makes the loss unmeasurable),
``pq`` ``dim/4`` bytes (128 B, 16x less; re-ranking 10k candidates brings recall@10 back to ~0.95).
The float32 vectors stay on disk (``vectors.npy``) for the re-rank; see the benchmark for measured figures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from fashion_core.stores.filters import SearchFilter

IndexType = Literal["flat", "hnsw", "ivf", "auto"]
Quantization = Literal["none", "sq8", "pq"]

EXACT_MAX_ITEMS = 20_000
HNSW_MAX_ITEMS = 2_000_000
# Fields whose broad values follow the embedding: men's and women's products sit in different regions of the
# space, so a filtered walk of one global graph stays in the query's region, where the filter has few matches.
# Both backends give each broad value a structure of its own: FAISS an ANN partition (faiss/tuning.py), a Qdrant
# server a companion collection (qdrant/index.py; ACORN where companions are off). Measured on the real model's
# embeddings grown to 100k / 1M (README "ANN at scale"): Qdrant's plain walk found 0.809 / 0.926 of the true top
# 10 for gender=Men, ACORN 0.968 / 0.988, a graph of the men's products alone 0.996 / 0.981.
BROAD_FIELDS: tuple[str, ...] = ("gender",)


# Every field whose filters follow the embedding, the broad ones included: a season or a usage (summer dresses and
# winter jackets, sports shoes and ethnic wear sit in their own regions) and the year (photography and ranges
# change by year). Qdrant searches a filter naming one of them (or a year range) with ACORN; FAISS answers those no
# partition covers by its scan of every row's codes (faiss/planner.py). Measured on the real model's embeddings
# grown to 100k (Qdrant engine, int8, ef 64, 60 image queries): season=Summer (49%) plain walk recall@10 0.802
# (worst query 0.0), ACORN 1.000 (0.24 -> 0.56 ms); year ranges and the other seasons (19-33%) 1.000 either way.
FOLLOWING_FIELDS: tuple[str, ...] = (*BROAD_FIELDS, "season", "usage")


def broad_field(flt: SearchFilter | None) -> str | None:
    """The first field of ``BROAD_FIELDS`` that ``flt`` names (a filter on it follows the embedding), else None."""
    if flt is None:
        return None
    return next((name for name in BROAD_FIELDS if flt.equals.get(name)), None)


def follows_embedding(flt: SearchFilter | None) -> bool:
    """Whether ``flt`` names a field of ``FOLLOWING_FIELDS`` or a year range: its matches sit in some regions of
    the space more than in others, so a filtered walk of one graph may miss them."""
    if flt is None:
        return False
    return any(flt.equals.get(name) for name in FOLLOWING_FIELDS) or flt.year_min is not None \
        or flt.year_max is not None


@dataclass(frozen=True)
class AnnParams:
    index_type: Literal["flat", "hnsw", "ivf"]
    hnsw_m: int
    ef_construct: int
    ef_search: int
    nlist: int
    nprobe: int


def hnsw_params(n: int) -> tuple[int, int, int]:
    """(m, ef_construct, ef_search) for an HNSW graph of ``n`` items."""
    if n < 200_000:
        return 16, 100, 64
    if n < 2_000_000:
        return 32, 128, 448
    return 48, 200, 512  # not measured: kept above the 1M setting, since recall at a fixed ef falls with size


@dataclass(frozen=True)
class QdrantParams:
    """A Qdrant collection's ANN settings: what ``QdrantIndex`` gives a server collection and searches it with, and
    what ``benchmarks/ann_scale.py`` builds Qdrant's engine with, so that the benchmark measures what users get."""

    hnsw_m: int
    ef_construct: int
    hnsw_ef: int  # query time
    full_scan_threshold_kb: int  # per segment: fewer vectors' KB than this (a filter's matches, or the segment) are
    # scanned exactly
    oversampling: float  # quantized search: candidates rescored on the original vectors = oversampling * k


# Measured at 100k (README, "Qdrant's collection settings"; 512-d, int8, 2 segments of 50k):
# - a filter below the threshold is scanned exactly on the payload index's matches (int8 codes, rescored).
#   Qdrant's default, 10,000 KB, is 5k float32 vectors of 512-d: a 5% articleType filter (2.7k items a segment)
#   then walked the graph, at recall 0.888 (ef 64) / 0.957 (ef 128), 1.5x brute force with ACORN. At 20,000 KB
#   (10k vectors, ~20% of a 50k segment) it is a scan at recall 1.000; a broader filter still walks the graph,
#   where a scan would cost more than the walk. Qdrant builds its per-value graph links only for values above
#   this threshold. It counts KB, so it is set as that many vectors of the collection's dimension: at 20,000 KB
#   for any dimension, 128-d vectors (the real recipe's) made it 40k vectors, and every segment of the real
#   catalog's 40k-item index (2 of 20k) was below it: every search an exact scan, unfiltered ones at 2.5-3.4x
#   brute force (README, "Qdrant's collection settings").
# - oversampling 4 (40 int8 candidates rescored for k=10, against 20): ~20 float32 dot products more per segment,
#   a margin against int8's near-ties among a tight cluster's items (not measured apart from the threshold).
# - at 1M items, 10k vectors were too few: a filter on three fields (0.12%, 600 items a segment) was planned from
#   its fields' separate counts (each above 10k), walked, and found 0.869 of its true top 10; and the 4.6%
#   articleType walked its value's links at 0.948-0.964. At 40k vectors (1M / 25) the same data read 1.000 and 0.959
#   (real-derived 1M, 128-d, two builds back to back on 2026-12-02; README, "Qdrant's collection settings").
QDRANT_FULL_SCAN_VECTORS = 10_000
QDRANT_FULL_SCAN_SHARE = 25  # above 250k expected items the threshold is 1/25 of them
QDRANT_OVERSAMPLING = 4.0


def full_scan_vectors_for(n: int) -> int:
    """Vectors a filter's matches in a segment stay under to be scanned exactly, for ``n`` expected items:
    ``QDRANT_FULL_SCAN_VECTORS`` up to 250k items, then n / ``QDRANT_FULL_SCAN_SHARE`` (40k at 1M)."""
    return max(QDRANT_FULL_SCAN_VECTORS, n // QDRANT_FULL_SCAN_SHARE)


def full_scan_kb_for(dim: int, n: int = 0) -> int:
    """Qdrant's full-scan threshold (KB of float32 vectors: what Qdrant counts) holding
    :func:`full_scan_vectors_for` ``n`` vectors of ``dim`` dimensions: 20,000 KB at 512-d and 5,000 KB at 128-d up
    to 250k items, 20,000 KB at 128-d for 1M."""
    return max(1, math.ceil(full_scan_vectors_for(n) * dim * 4 / 1024))


def qdrant_params(n: int, hnsw_ef: int | None = None, full_scan_threshold_kb: int | None = None,
                  oversampling: float | None = None, dim: int = 512) -> QdrantParams:
    """Qdrant collection settings for ``n`` expected items of ``dim`` dimensions; a given value overrides its
    default."""
    m, ef_construct, ef = hnsw_params(n)
    return QdrantParams(hnsw_m=m, ef_construct=ef_construct, hnsw_ef=hnsw_ef or ef,
                        full_scan_threshold_kb=full_scan_threshold_kb or full_scan_kb_for(dim, n),
                        oversampling=oversampling or QDRANT_OVERSAMPLING)


def ivf_lists(n: int) -> int:
    """k-means lists: ~4 sqrt(n), with at least 39 training points per list (FAISS warns below)."""
    return max(1, min(int(4 * math.sqrt(n)), n // 39 or 1))


def ivf_probes(nlist: int) -> int:
    """Lists scanned per query: ~1/32 of them, at least 16 (recall@10 ~0.95 on clustered data)."""
    return min(nlist, max(16, nlist // 32))


def choose(n: int, index_type: IndexType = "auto") -> AnnParams:
    """Parameters for ``n`` items; ``auto`` picks the structure too."""
    if index_type == "auto":
        index_type = "flat" if n <= EXACT_MAX_ITEMS else "hnsw" if n <= HNSW_MAX_ITEMS else "ivf"
    m, ef_construct, ef_search = hnsw_params(n)
    nlist = ivf_lists(max(n, 1))
    return AnnParams(index_type=index_type, hnsw_m=m, ef_construct=ef_construct, ef_search=ef_search,
                     nlist=nlist, nprobe=ivf_probes(nlist))


def boost_for_selectivity(value: int, selectivity: float, limit: int = 8) -> int:
    """Widen ef/nprobe when a filter keeps a small fraction: fewer matches per visited node or list."""
    if selectivity >= 1.0 or selectivity <= 0:
        return value
    return int(value * min(limit, max(1.0, 1.0 / math.sqrt(selectivity))))
