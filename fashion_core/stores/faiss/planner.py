"""How one query is answered: exact ranking, the global structure, or partitions, by filter and selectivity.

Filtered search never does "top-k then filter": the filter becomes a row mask (``Columns.mask``), built only where
needed (``FilterRows``: a filter on one field alone is counted from per-value counts, and a partition of its values
is searched whole, without a mask); small or very selective match sets are ranked exactly; an articleType filter
searches its types' blocks (their partitions, or an exact scan of a small block), and so does a filter on a coarser
field (masterCategory, subCategory: the blocks of the types its rows hold); a scattered value (baseColour) scans its
own codes; a broad value (gender) alone walks its own graph at the width calibrated when it was built (with
other conditions, or where no width finds its far queries' top-k, the scan of every row answers); other match sets
(a year range, a season, a usage) keeping
less than ``GLOBAL_WALK_SELECTIVITY`` scan the codes of every row with the filter as a selector, and larger ones
walk the global structure with an ``IDSelectorBitmap`` and ef/nprobe widened for the selectivity. A pass that comes
back with fewer than k rows falls back to exact ranking of the matching rows: the answer is never short. A global
walk misses an articleType filter's matches in other regions of the space (measured recall@10 ~0.7 at 5% selectivity
with a selector, even with ef widened 4.5x), hence the partitions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import faiss
import numpy as np

from fashion_core.stores import ann_params
from fashion_core.stores.faiss import structures, tuning
from fashion_core.stores.faiss.columns import BitmapSelector, Columns, FilterRows
from fashion_core.stores.faiss.rows import Rows
from fashion_core.stores.faiss.structures import Partition, Structures
from fashion_core.stores.faiss.tuning import Tuning
from fashion_core.stores.filters import SearchFilter

NO_ROWS = np.zeros(0, dtype=np.int64)


class Planner:
    """Chooses and runs the search of one query over an index's rows. It holds no index data: it reads the
    rows, and the columns and structures of the moment through ``columns()`` and ``structures()`` (each built
    when first asked for), so it always sees the current ones."""

    def __init__(self, rows: Rows, settings: Tuning, columns: Callable[[], Columns],
                 structures: Callable[[], Structures]) -> None:
        self.rows, self.tuning = rows, settings
        self._columns, self._structures = columns, structures

    def top(self, q: np.ndarray, k: int, flt: SearchFilter | None, exact: bool) -> np.ndarray:
        """The top-k rows (int64, best first) for query ``q`` (float32, (dim,)) among those ``flt`` keeps (None
        or empty = all): k of them whenever k match; ranked exactly when ``exact``. The rows must be non-empty
        and grouped (``Rows.group``)."""
        rows, n = self.rows, len(self.rows)
        flat = self._kind() == "flat"
        if flt is None or flt.is_empty:
            if flat:
                return self._flat_search(q, k, None)
            found = None if exact else self._ann_search(q, k, None, n)
            if found is None or len(found) < min(k, n):
                found = rows.exact(q, k, None)
            return found
        rule = FilterRows(self._columns(), flt)
        matches = rule.matches
        if not matches:
            return NO_ROWS
        if not exact and not flat and matches > tuning.VALUE_PARTITION_MIN_ROWS \
                and not flt.equals.get(tuning.CLUSTER_FIELD):  # articleType filters have their blocks, below
            self._structures()
            found = self._search_values(q, k, rule)
            if found is not None and len(found) >= min(k, matches):
                return found
        if flat and matches > tuning.EXACT_SUBSET_MAX:
            return self._flat_search(q, k, rule.mask())
        if exact or flat or tuning.exact_is_cheaper(matches, n):
            return rows.exact(q, k, rule.rows())
        self._structures()  # builds the partitions too: the first query after an update must find them
        types = flt.equals.get(tuning.CLUSTER_FIELD)
        covering = [] if types else self._covering_types(flt)  # a masterCategory's / subCategory's types
        if (types and matches < n * tuning.GLOBAL_WALK_SELECTIVITY) or covering:
            found = self._search_blocks(q, k, rule, types or covering)
        else:
            broad = self._search_broad(q, k, rule)
            if broad is not None:
                found = broad
            elif matches < n * tuning.GLOBAL_WALK_SELECTIVITY and self._structures().scan is not None:
                found = self._search_scan(q, k, rule)
            else:
                found = self._ann_search(q, k, rule.mask(), matches)
        if len(found) < min(k, matches):  # never short: rank the matches exactly instead
            found = rows.exact(q, k, rule.rows())
        return found

    def _covering_types(self, flt: SearchFilter) -> list[str]:
        """The articleTypes whose blocks hold every row of a filter on a ``BLOCK_UNION_FIELDS`` field (a
        masterCategory's or subCategory's types); empty when the filter names none."""
        field = next((f for f in tuning.BLOCK_UNION_FIELDS if flt.equals.get(f)), None)
        if field is None:
            return []
        return self._columns().cluster_values(field, flt.equals[field], tuning.CLUSTER_FIELD)

    def _fetch(self, ann: faiss.Index, k: int, size: int) -> int:
        """Candidates a search of ``ann`` (over ``size`` rows) fetches for ``k`` results before the exact re-rank:
        a fast-scan code partition's wider list (``Tuning.scan_fetch``), else the quantization's (``fetch``)."""
        return self.tuning.scan_fetch(k, size) if structures.is_fast_scan(ann) else self.tuning.fetch(k)

    def _kind(self) -> str:
        return self.tuning.params(len(self.rows)).index_type

    def _flat_search(self, q: np.ndarray, k: int, mask: np.ndarray | None) -> np.ndarray:
        """Exact top-k rows among ``mask`` (None = all) by FAISS's flat scan (see ``structures.flat_top``)."""
        selector = BitmapSelector(mask) if mask is not None else None
        return structures.flat_top(self._structures().ann, q, min(k, len(self.rows)), selector)

    def _search_blocks(self, q: np.ndarray, k: int, rule: FilterRows, types: Sequence[str]) -> np.ndarray:
        """Top rows of a filter on articleType(s): each type's block searched through its partition, or ranked
        exactly when it has none or few matches, and the candidates merged. A partition walk that comes back with
        fewer than min(k, its matches) rows (an IVF probe holding too few rows for a deep k) has its block's
        matches ranked exactly instead: the other blocks' rows must not hide what it missed."""
        found = []
        partitions = self._structures().partitions
        for name in types:
            lo, hi = self.rows.blocks.get(name, (0, 0))
            local = None if rule.whole(tuning.CLUSTER_FIELD) else rule.mask()[lo:hi]  # None: every row matches
            matches = hi - lo if local is None else int(np.count_nonzero(local))
            part = partitions.get(name)
            if part is not None and matches > (tuning.PARTITION_MIN_ROWS if part.kind == "hnsw"
                                               else tuning.VALUE_PARTITION_MIN_ROWS):
                got = self._ann_search(q, k, local, matches, part)
                if len(got) >= min(k, matches):
                    found.append(got)
                    continue
            if matches:
                found.append(lo + (np.arange(hi - lo) if local is None else np.flatnonzero(local)))
        return self.rows.exact(q, k, np.concatenate(found)) if found else NO_ROWS

    def _search_values(self, q: np.ndarray, k: int, rule: FilterRows) -> np.ndarray | None:
        """Top rows of a filter on a ``VALUE_PARTITION_FIELDS`` field's value(s): each value's codes scanned (with
        the rest of the filter as a selector), small values' rows taken as they are, the candidates re-ranked
        exactly. None when the filter names no such field, or a value too large to have a partition."""
        flt = rule.flt
        field = next((f for f in tuning.VALUE_PARTITION_FIELDS if flt.equals.get(f)), None)
        if field is None:
            return None
        values, found = self._structures().values, []
        for value in flt.equals[field]:
            part = values.get((field, value))
            if part is None:
                rows = self._columns().value_rows(field, value)
                if len(rows) > tuning.VALUE_PARTITION_MIN_ROWS:
                    return None
                found.append(rows if rule.whole(field) else rows[rule.mask()[rows]])
                continue
            matches, selector = rule.partition(field, part.rows)
            if not matches:
                continue
            kind = "ivf" if part.kind == "ivf" else "flat"  # a pq or fast-scan code scan is a one-list IVF
            got = structures.top(part.ann, q, self._fetch(part.ann, k, len(part.rows)), selector, kind=kind, nprobe=1)
            found.append(part.rows[got])
        rows = np.concatenate(found) if found else NO_ROWS
        return self.rows.exact(q, k, rows) if len(rows) else rows

    def _search_broad(self, q: np.ndarray, k: int, rule: FilterRows) -> np.ndarray | None:
        """Top rows of a filter on broad values of a ``BROAD_PARTITION_FIELDS`` field: each value's own ANN
        partition walked at the ef/nprobe calibrated when it was built (``ValuePartition.walk``), a value too small
        for one (at most ``EXACT_SUBSET_MAX`` rows) ranked exactly, the candidates re-ranked exactly. When the rest
        of the filter would be a selector inside a value's graph, or a graph's calibration found its walks missing
        too much (``walk`` < 0), the scan of every row answers (``_search_scan``) where the index has one: a walk
        with a selector stays in the query's region (real catalog, 40k: gender=Men with a year range that follows
        the embedding found 0.86 of the true top 10; gender=Men,Women with a usage and a year range 0.91), where the
        scan found 1.000 at about the same cost; and so it does for a value too large to rank exactly and too small
        for a graph. A walk that comes back short ranks the filter's rows exactly. None when the filter names no
        such field, or the index has no scan and a value needs it."""
        structs = self._structures()
        flt = rule.flt
        field = ann_params.broad_field(flt)
        if field is None:
            return None
        n, fetch = len(self.rows), self.tuning.fetch(k)
        walks, found = [], []
        for value in flt.equals[field]:
            part = structs.values.get((field, value))
            if part is None:
                rows = self._columns().value_rows(field, value)
                if len(rows) > tuning.EXACT_SUBSET_MAX:  # too large to rank exactly, too small for a graph
                    return None if structs.scan is None else self._search_scan(q, k, rule)
                found.append(rows if rule.whole(field) else rows[rule.mask()[rows]])
                continue
            matches, selector = rule.partition(field, part.rows)
            if matches:
                walks.append((part, matches, selector))
        if structs.scan is not None and any(selector is not None or part.walk < 0 for part, _, selector in walks):
            return self._search_scan(q, k, rule)
        for part, matches, selector in walks:
            kind = part.kind
            ef, nprobe = self.tuning.broad_walk(len(part.rows), n, kind, fetch, matches / len(part.rows), part.walk)
            got = structures.top(part.ann, q, fetch, selector, kind=kind, ef=ef, nprobe=nprobe)
            if len(got) < min(fetch, matches):  # a short walk (an IVF probe holds too few rows): rank exactly
                return self.rows.exact(q, k, rule.rows())
            found.append(part.rows[got])
        rows = np.concatenate(found) if found else NO_ROWS
        return self.rows.exact(q, k, rows) if len(rows) else rows

    def _search_scan(self, q: np.ndarray, k: int, rule: FilterRows) -> np.ndarray:
        """Top rows of a filter no partition covers: the code scan of every row (``Structures.scan``) with the
        filter as a selector, ``MATCH_SCAN_RERANK_SHARE`` of the matches (at most ``MATCH_SCAN_RERANK_MAX``, at
        least k) re-ranked exactly."""
        scan = self._structures().scan
        assert scan is not None, "only indexes with a scan of every row are searched by it"
        fetch = max(k, min(tuning.MATCH_SCAN_RERANK_MAX,
                           self.tuning.scan_fetch(k, rule.matches, tuning.MATCH_SCAN_RERANK_SHARE)))
        got = structures.top(scan, q, fetch, BitmapSelector(rule.mask()), kind="ivf", nprobe=1)
        return self.rows.exact(q, k, got) if len(got) else got

    def _ann_search(self, q: np.ndarray, k: int, mask: np.ndarray | None, matches: int,
                    part: Partition | None = None) -> np.ndarray:
        """Rows of the top candidates from the global structure, or from ``part`` (matches outside it are not
        searched): ef/nprobe widened for the selectivity, quantized candidates re-ranked exactly. ``mask`` (bool)
        covers the structure searched (every row, or the partition's rows ``part.lo:part.hi``); None keeps all."""
        n = len(self.rows)
        ann, lo, size, p = self._structures().ann, 0, n, self.tuning.params(n)
        kind: str = p.index_type
        if part is not None:
            ann, lo, size, kind = part.ann, part.lo, part.hi - part.lo, part.kind
            # nlist/nprobe follow the partition's size; ef stays the global one: recall inside a partition is no
            # easier than in the whole graph (measured at 1M: 0.71 at ef=96, 0.82 at ef=320 on a 54k-item type)
            own = self.tuning.params_for(size, n)
            p = replace(own, ef_search=max(own.ef_search, p.ef_search))
        selectivity = matches / max(1, size)
        selector = BitmapSelector(mask) if mask is not None and matches < size else None
        fetch = self._fetch(ann, k, size)
        ef, nprobe = self.tuning.walk(p, fetch, selectivity)
        found = structures.top(ann, q, fetch, selector, kind=kind, ef=ef, nprobe=nprobe) + lo
        if self.tuning.quantization != "none" and len(found):
            found = self.rows.exact(q, k, found)  # re-rank quantized candidates on the float32 vectors
        return found
