"""The stored items, row by row, grouped by articleType, and their exact ranking.

Row ``r`` is ``ids[r]``, ``vectors[r]`` and ``payloads[r]``. Rows are stored grouped by articleType (then id), so
the matches of the commonest filters are one contiguous block, which ``Rows.exact`` scores as a slice view
instead of gathering scattered rows; every structure built over the rows (``columns``, ``structures``, the
lexicon) assumes that order, so a regrouping tells its owner to drop them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from fashion_core.stores.base import SearchHit
from fashion_core.stores.faiss import tuning


class Rows:
    """Ids (int64, shape (n,)), vectors (float32, shape (n, dim)) and payloads (n dicts) in row order, the row
    of each id, and the articleType blocks (``blocks``: name -> rows ``lo:hi``, set by :meth:`group`)."""

    def __init__(self) -> None:
        self.ids = np.zeros(0, dtype=np.int64)
        self.vectors = np.zeros((0, 0), dtype=np.float32)
        self.payloads: list[dict[str, Any]] = []
        self._row: dict[int, int] = {}
        self.blocks: dict[str, tuple[int, int]] = {}
        self.grouped = False
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.ids)

    def replace(self, ids: np.ndarray, vectors: np.ndarray, payloads: list[dict[str, Any]]) -> None:
        """All rows at once: ``ids`` int64 (n,), ``vectors`` float32 (n, dim), ``payloads`` n dicts (a loaded
        index, or none with the vectors' width for a new one)."""
        self.ids, self.vectors, self.payloads = ids, vectors, payloads
        self._row = {int(i): r for r, i in enumerate(self.ids)}
        self.grouped = False

    def upsert(self, ids: Sequence[int], vectors: np.ndarray, payloads: Sequence[dict[str, Any]]) -> None:
        """Overwrite the rows of known ids and append new ones (checked input: ``vectors`` float32
        (len(ids), dim)). New rows come last, ungrouped."""
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
        self.grouped = False

    def delete(self, ids: Sequence[int]) -> bool:
        """Remove the rows of ``ids`` (unknown ids are ignored); whether any row went."""
        rows = {self._row[int(i)] for i in ids if int(i) in self._row}
        if not rows:
            return False
        keep = np.array([r not in rows for r in range(len(self.ids))], dtype=bool)
        self.ids, self.vectors = self.ids[keep], self.vectors[keep]
        self.payloads = [p for p, k in zip(self.payloads, keep, strict=True) if k]
        self._row = {int(i): r for r, i in enumerate(self.ids)}
        self.grouped = False
        return True

    def group(self, on_reorder: Callable[[], None]) -> None:
        """Store rows grouped by articleType (then id) and find the blocks; ``on_reorder`` runs (under the lock,
        before anyone sees the rows grouped) when rows moved. Concurrent callers wait for the regrouping instead
        of reading half of it."""
        if self.grouped:
            return
        with self._lock:
            if self.grouped:
                return
            keys = [str(p.get(tuning.CLUSTER_FIELD, "")) for p in self.payloads]
            names, inverse = np.unique(keys, return_inverse=True) if keys else (np.zeros(0, str), np.zeros(0, int))
            order = np.lexsort((self.ids, inverse)) if keys else np.zeros(0, int)
            if not np.array_equal(order, np.arange(len(order))):
                self.ids, self.vectors = self.ids[order], self.vectors[order]
                self.payloads = [self.payloads[i] for i in order]
                self._row = {int(i): r for r, i in enumerate(self.ids)}
                on_reorder()
            sizes = np.bincount(inverse, minlength=len(names))
            self.blocks = {str(name): (int(end - size), int(end))
                           for name, end, size in zip(names, np.cumsum(sizes), sizes, strict=True)}
            self.grouped = True

    def exact(self, q: np.ndarray, k: int, rows: np.ndarray | None) -> np.ndarray:
        """The top-k rows (int64, best first; ties by id) by exact inner product with ``q`` (float32, (dim,))
        among ``rows`` (int64, non-empty; None = all rows, scored without a gather copy)."""
        if rows is None:
            scores = self.vectors @ q
            top = min(k, len(scores))
            part = np.argpartition(-scores, top - 1)[:top]
            return part[np.lexsort((self.ids[part], -scores[part]))]
        lo, hi = int(rows.min()), int(rows.max()) + 1
        # Scoring the view over rows[lo:hi] reads every row of the span but copies nothing; a gather copies the
        # matches, ~4.6x the cost per row measured at 100k x 512-d. So a dense enough span (an articleType block,
        # or a filter keeping most rows) is cheaper scored whole than gathered.
        dense = hi - lo <= tuning.GATHER_COST * len(rows)
        scores = (self.vectors[lo:hi] @ q)[rows - lo] if dense else self.vectors[rows] @ q
        top = min(k, len(rows))
        part = np.argpartition(-scores, top - 1)[:top]
        return rows[part[np.lexsort((self.ids[rows[part]], -scores[part]))]]

    def hits(self, q: np.ndarray, rows: np.ndarray) -> list[SearchHit]:
        """``rows`` (int64) as hits scored by inner product with ``q`` (float32, (dim,)), best first, ties by id."""
        scores = self.vectors[rows] @ q
        ids = self.ids[rows]
        order = np.lexsort((ids, -scores))
        # converted once as lists: per-element numpy scalars cost ~4 us a hit, most of a fast search's overhead
        payloads = self.payloads
        return [SearchHit(i, s, payloads[r]) for i, s, r in
                zip(ids[order].tolist(), scores[order].tolist(), rows[order].tolist(), strict=True)]

    def scored(self, rows: np.ndarray, scores: np.ndarray, coverage: np.ndarray | None = None) -> list[SearchHit]:
        """``rows`` (int64) as hits with the given ``scores`` (float, one per row), in that order, and each row's
        ``coverage`` (float, lexical hits) when given."""
        shares = [None] * len(rows) if coverage is None else [float(c) for c in coverage]
        return [SearchHit(id=int(self.ids[r]), score=float(s), payload=self.payloads[r], coverage=c)
                for r, s, c in zip(rows, scores, shares, strict=True)]

    def retrieve(self, ids: Sequence[int], with_vectors: bool = False) -> dict[int, tuple[dict[str, Any],
                                                                                       np.ndarray | None]]:
        """Payload and (a copy of the float32 (dim,) vector, or None) of each stored id; unknown ids left out."""
        out = {}
        for pid in ids:
            row = self._row.get(int(pid))
            if row is not None:
                out[int(pid)] = (self.payloads[row], self.vectors[row].copy() if with_vectors else None)
        return out
