"""The FAISS backend's tuning: thresholds measured at scale, and the settings of one index (``Tuning``).

The thresholds decide which rows get a structure of their own (``structures``) and how a query is answered
(``planner``); every other module reads them as ``tuning.NAME`` when it runs, so a test can set one with
``monkeypatch.setattr(tuning, NAME, value)``. The size-based ANN defaults (m, ef, nlist, nprobe) come from
``fashion_core.stores.ann_params``, which the Qdrant backend shares, so it stays beside both backends.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, TypeGuard

from fashion_core.errors import InvalidInputError
from fashion_core.stores import ann_params

INDEX_TYPES = ("flat", "hnsw", "ivf", "auto")
QUANTIZATIONS = ("none", "sq8", "pq")


def _is_index_type(value: str) -> TypeGuard[ann_params.IndexType]:
    return value in INDEX_TYPES


# Below this many matching rows an exact scan of the matches costs under a millisecond: cheaper than any ANN
# walk with a selector.
EXACT_SUBSET_MAX = 5_000
# articleType blocks larger than this get an ANN partition of their own; smaller ones are contiguous rows
# scanned exactly (a 5k-row partition gave recall@10 0.87-0.89 where the scan gives 1.0 at ~30x brute force).
PARTITION_MIN_ROWS = 20_000
GATHER_COST = 4  # per-row cost of gathering scattered rows over reading them in sequence (see Rows.exact)
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
# A value of those fields keeping up to this share of the index gets a code scan too (an articleType block keeps
# SCAN_PARTITION_MAX_SHARE: a larger one has a graph of its own, a colour has no other structure). Over 10%, a
# colour's filter walked the global graph with a selector: on the real catalog's 40k items (HNSW + SQ8, 60 image
# queries) baseColour=Black (22%) reached recall@10 0.947 (worst query 0.4), Red,Blue 0.943 (0.5).
VALUE_SCAN_MAX_SHARE = 0.30
# A code scan is a fast-scan PQ partition (structures.Builder.code_scan): 4-bit codes rank coarsely, so its exact
# re-rank takes this share of the partition's rows. Measured on the real model's 128-d embeddings grown to 100k
# and 1M, recall@10 after the re-rank: a 4.9k-row colour 0.996 at 100 candidates (2%), a 21.8k-row one 0.982 at
# 200 (0.9%) and 0.997 at 400 (1.8%), a 48k-row one 0.991 at 400 (0.8%) and 1.000 at 800 (1.7%).
SCAN_RERANK_SHARE = 0.015
# ... and at least this many candidates per result: 40 for k=10 gave 0.956 on the 4.9k-row colour, and 0.92 on
# the tests' noisy 64-d clusters (queries from other types' regions); 100 gave 0.996 and >= 0.95. On the real
# catalog's 40k items (60 image queries) 200 lifted the worst query of a colour or masterCategory filter from
# 0.6-0.7 to 0.8-1.0 (means 0.987-0.995 -> 0.997-1.000) for ~0.03 ms.
SCAN_RERANK_MIN_FACTOR = 20
# A filter that no partition covers (a year range, a season, a usage: fields that follow the embedding too) and
# that keeps less than GLOBAL_WALK_SELECTIVITY of the index is answered by the code scan of every row
# (``Structures.scan``) with the filter as a selector, re-ranking this share of its matches (at least
# SCAN_RERANK_MIN_FACTOR per result): a walk of the global graph with a selector stays in the query's region,
# where such a filter has few matches. Measured on the real model's embeddings of the real catalog grown to 100k
# (HNSW + SQ8, 60 image queries), recall@10 mean / worst query, year 2015-2017 (26%) and season=Winter (19%):
# the walk 0.908 / 0.1 and 0.887 / 0.2 at 1.3-1.6 ms a query; the scan re-ranking 1.5% of the matches 0.985 / 0.5
# and 0.973 / 0.4, 3% 0.998 / 0.9 and 0.990 / 0.7, 6% 1.000 / 1.0 for both at 0.6-1.0 ms (brute force ~5 ms).
MATCH_SCAN_RERANK_SHARE = 0.06
# ... and at most this many candidates: at 1M (the same data grown, four filters keeping 19-48%; in the index, one
# codebook) 4,000 gave recall@10 0.968-1.000 (worst query 0.3-1.0), 8,000 0.995-1.000 (0.7-1.0) at 9-11 ms a
# query against 8-9 ms (brute force ~50 ms); re-ranking 6% of 260k matches would gather 15k rows.
MATCH_SCAN_RERANK_MAX = 8_000
# The scan of every row exists only where a filter can reach it: over EXACT_SUBSET_MAX rows (at or under it every
# filter is ranked exactly) and never under this many (its 4-bit codebook trains 16 centroids per sub-vector: an
# index shrunk to 10 rows could neither be searched nor saved).
SCAN_MIN_ROWS = 256
PQ_TRAIN_ROWS = 10_000
VALUE_PARTITION_MIN_ROWS = 1_000
CLUSTER_FIELD = "articleType"  # rows are stored grouped by it (see Rows.group)
# Fields coarser than CLUSTER_FIELD (each articleType lies in one masterCategory and one subCategory): a filter on
# them searches the blocks of the articleTypes its rows hold, whatever its share. A global walk with a selector
# followed the query's region instead: on the real catalog's 40k items (HNSW + SQ8, 60 image queries)
# masterCategory=Accessories reached recall@10 0.885 (worst query 0.0), Footwear 0.950 (0.3), subCategory=Topwear
# 0.965 (0.5); in the tests' clustered data a category holding 50% of the items, 0.49.
BLOCK_UNION_FIELDS = ("masterCategory", "subCategory")
# A filter of several conditions whose narrowest field keeps at most this share of the rows is evaluated on that
# field's posting lists (the rest checked on those rows by gather, ~GATHER_COST per row) instead of a mask over
# every row (one pass per condition).
POSTINGS_MAX_SHARE = 0.25
# Below this fraction of the index, a graph/list walk with a selector visits mostly non-matching items
# (slow, and recall drops), so the matches are ranked exactly unless there are very many of them.
EXACT_SELECTIVITY = 0.02
EXACT_SUBSET_HARD_MAX = 200_000
# A filter keeping at least this share is searched in the global structure with a selector (recall@10 0.96 at
# 50%); an articleType filter keeping less searches its types' blocks instead, and one no partition covers the
# code scan of every row (MATCH_SCAN_RERANK_SHARE).
GLOBAL_WALK_SELECTIVITY = 0.5
# Fields whose broad values follow the embedding (men's and women's products sit in different regions of the
# space) get an ANN partition per value holding at least BROAD_VALUE_MIN_SHARE of the rows, like Qdrant's
# per-value graph links: a walk of the global graph with a selector stays in the query's region, where a
# correlated filter has few matches (measured at 44k, gender=Men keeping 55%: recall@10 0.86, 0.53 on another
# data set), while the value's own graph holds only matches. Each partition costs the memory of its rows' vectors
# (or codes) and links again.
BROAD_PARTITION_FIELDS = ann_params.BROAD_FIELDS
BROAD_VALUE_MIN_SHARE = 0.2
# A query far from the value's region (a woman's dress, gender=Men) may meet near-ties in its graph, or not: on
# synthetic clusters with no structure between them recall@10 was 0.85 at ef 64, 0.90 at 128, 0.95 at 256 (44k),
# on the real model's embeddings grown to 100k 1.000 at 1x. So each broad partition is calibrated when built
# (``structures.calibrate_broad``): its walks search at least the smallest of BROAD_EF_FACTORS x the ef (HNSW) or
# nprobe (IVF) in force at which BROAD_CALIBRATION_QUERIES rows from outside the value (the far queries) find at
# each depth of BROAD_CALIBRATION_DEPTHS (10, and the hybrid search's dense depth 100) BROAD_CALIBRATION_RECALL of
# their true top-k on average (or what the global structure's unfiltered walk finds for them, less 0.01, when that
# is lower), with at most BROAD_CALIBRATION_POOR_SHARE of them under half of theirs. When none does, the partition
# is not walked: its filters are answered by the scan of every row (``ValuePartition.walk`` -1). Queries off the
# rows' manifold (blends of unrelated rows) are hard for every walk, filtered or not (real catalog, 40k, HNSW ef
# 64: an unfiltered search found 0.887 of their top 10, gender-filtered 0.870-0.947), and are not what a filter
# makes harder, so they do not widen it. One saved before calibration walks at BROAD_EF_FACTOR x the ef/nprobe in
# force.
BROAD_EF_FACTORS = (1, 2, 4)
BROAD_EF_FACTOR = BROAD_EF_FACTORS[-1]
BROAD_CALIBRATION_QUERIES = 100
BROAD_CALIBRATION_DEPTHS = (10, 100)
BROAD_CALIBRATION_RECALL = 0.97
BROAD_CALIBRATION_POOR_SHARE = 0.01


def exact_is_cheaper(matches: int, n: int) -> bool:
    """Whether ranking ``matches`` rows exactly beats an ANN walk with a selector in an index of ``n`` rows."""
    return matches <= EXACT_SUBSET_MAX or (matches / n < EXACT_SELECTIVITY and matches <= EXACT_SUBSET_HARD_MAX)


def scans_every_row(n: int) -> bool:
    """Whether an ANN index of ``n`` rows gets the code scan of every row (``Structures.scan``)."""
    return n > max(EXACT_SUBSET_MAX, SCAN_MIN_ROWS)


class Tuning:
    """The settings of one FAISS index: its structure, its quantization and the ANN parameters in force.

    ``index_type`` is "flat", "hnsw", "ivf" or "auto" (chosen by size); ``quantization`` "none", "sq8" or "pq".
    ``hnsw_m``, ``ef_search``, ``nprobe`` and ``ef_construct`` left None take the size-based defaults of
    ``ann_params``; ``rescore_factor`` None takes the quantization's (see :attr:`rescore_factor`). Raises
    InvalidInputError for an unknown index type or quantization.
    """

    def __init__(self, index_type: str = "flat", quantization: str = "none", hnsw_m: int | None = None,
                 ef_search: int | None = None, nprobe: int | None = None, ef_construct: int | None = None,
                 rescore_factor: int | None = None) -> None:
        if not _is_index_type(index_type):
            raise InvalidInputError(f"unknown FAISS index type {index_type!r}: flat, hnsw, ivf or auto")
        if quantization not in QUANTIZATIONS:
            raise InvalidInputError(f"unknown FAISS quantization {quantization!r}: none, sq8 or pq")
        self.index_type: ann_params.IndexType = index_type
        self.quantization = quantization
        self.hnsw_m, self.ef_search, self.nprobe, self.ef_construct = hnsw_m, ef_search, nprobe, ef_construct
        self._rescore_factor = rescore_factor
        self._params: tuple[int, ann_params.AnnParams] | None = None  # (rows, the parameters for that many)

    def extra(self) -> dict[str, str]:
        """What an index records of its tuning in its meta's ``extra``: its index type and quantization."""
        return {"index_type": self.index_type, "quantization": self.quantization}

    def restore(self, extra: dict[str, Any]) -> None:
        """Take the index type and quantization a saved index was built with (its meta's ``extra``) over the
        constructor's."""
        self.index_type = extra.get("index_type", self.index_type)
        self.quantization = extra.get("quantization", self.quantization)
        self._params = None

    @property
    def rescore_factor(self) -> int:
        """Candidates re-ranked per result; from the quantization in force, which a reopened index reads from
        disk. PQ codes are coarser than SQ8: a wider list gets recall@10 back to ~0.95+."""
        return max(1, self._rescore_factor or (10 if self.quantization == "pq" else 4))

    def scan_fetch(self, k: int, rows: int, share: float | None = None) -> int:
        """Candidates a fast-scan code scan of ``rows`` rows (a partition, or the matches of a filter over the
        scan of every row) fetches for ``k`` results: its 4-bit codes rank coarsely, so the exact re-rank takes
        ``share`` of the rows (None: ``SCAN_RERANK_SHARE``), and at least ``SCAN_RERANK_MIN_FACTOR * k``."""
        return max(SCAN_RERANK_MIN_FACTOR * k, math.ceil((SCAN_RERANK_SHARE if share is None else share) * rows))

    def fetch(self, k: int) -> int:
        """Candidates an ANN pass fetches for ``k`` results: ``k * rescore_factor`` when quantized (the re-rank
        on the float32 vectors keeps the best k), else ``k``."""
        return k * self.rescore_factor if self.quantization != "none" else k

    def params(self, n: int) -> ann_params.AnnParams:
        """The ANN parameters in force for an index of ``n`` rows: explicit ones, else the size-based defaults."""
        if self._params is None or self._params[0] != n:
            self._params = (n, self._choose(n, self.index_type))
        return self._params[1]

    def params_for(self, rows: int, n: int) -> ann_params.AnnParams:
        """Parameters for a structure over ``rows`` of an index of ``n`` rows (a partition): sized for its own
        rows, of the kind of the whole index."""
        return self._choose(rows, self.params(n).index_type)

    def walk(self, p: ann_params.AnnParams, fetch: int, selectivity: float) -> tuple[int, int]:
        """(ef, nprobe) of a walk of a structure with parameters ``p`` fetching ``fetch`` candidates among the
        ``selectivity`` share of its rows a selector keeps: ef at least twice the fetch, both widened for the
        selectivity (``boost_for_selectivity``; ef at most HNSW_FILTER_BOOST_MAX x)."""
        ef = ann_params.boost_for_selectivity(max(p.ef_search, 2 * fetch), selectivity, HNSW_FILTER_BOOST_MAX)
        return ef, min(p.nlist, ann_params.boost_for_selectivity(p.nprobe, selectivity))

    def broad_walk_base(self, part_rows: int, n: int, kind: str) -> int:
        """The ef (``kind`` "hnsw") or nprobe ("ivf") in force for a broad value's partition of ``part_rows`` rows
        in an index of ``n``: what its calibration multiplies."""
        p = self.params(n)
        return max(self.params_for(part_rows, n).nprobe, p.nprobe) if kind == "ivf" else p.ef_search

    def broad_walk(self, part_rows: int, n: int, kind: str, fetch: int, selectivity: float,
                   least: int) -> tuple[int, int]:
        """The walk of a broad value's partition (``part_rows`` rows of an index of ``n``, of ``kind`` "hnsw" or
        "ivf"), fetching ``fetch`` candidates among the ``selectivity`` share of its rows a filter keeps: (ef,
        nprobe) for ``structures.top``, the other one 0. It searches at least the ef / nprobe in force and
        ``least`` (its calibration, ``ValuePartition.walk``; 0 or less = none: BROAD_EF_FACTOR x the one in force,
        as for an IVF fetch deeper than the calibration's); an HNSW ef at least twice the fetch; both widened for
        the selectivity (``boost_for_selectivity``)."""
        base = self.broad_walk_base(part_rows, n, kind)
        if kind == "ivf" and fetch > self.fetch(max(BROAD_CALIBRATION_DEPTHS)):
            least = 0  # deeper than calibrated, and an IVF probe does not widen with the fetch as HNSW's ef does
        wanted = max(base, least) if least > 0 else base * BROAD_EF_FACTOR
        ef, nprobe = self.walk(replace(self.params_for(part_rows, n), ef_search=wanted, nprobe=wanted), fetch,
                               selectivity)
        return (0, nprobe) if kind == "ivf" else (ef, 0)

    def set_search_params(self, ef_search: int | None = None, nprobe: int | None = None) -> None:
        """Query-time settings (None = by size); the structures already built are kept."""
        self.ef_search, self.nprobe = ef_search, nprobe
        self._params = None

    def scans_codes(self, rows: int, n: int, max_share: float | None = None) -> bool:
        """Whether a block or value of ``rows`` rows, in an index of ``n``, gets a code-scan partition (sq8/pq
        indexes only): over VALUE_PARTITION_MIN_ROWS rows and at most ``max_share`` (None: SCAN_PARTITION_MAX_SHARE)
        of the index."""
        share = SCAN_PARTITION_MAX_SHARE if max_share is None else max_share
        return self.quantization != "none" and VALUE_PARTITION_MIN_ROWS < rows <= share * n

    def _choose(self, n: int, index_type: ann_params.IndexType) -> ann_params.AnnParams:
        base = ann_params.choose(n, index_type)
        return ann_params.AnnParams(
            index_type=base.index_type, hnsw_m=self.hnsw_m or base.hnsw_m,
            ef_construct=self.ef_construct or base.ef_construct, ef_search=self.ef_search or base.ef_search,
            nlist=base.nlist, nprobe=self.nprobe or base.nprobe)
