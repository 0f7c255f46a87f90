"""Fusing a dense (embedding) ranking with a lexical (BM25) ranking into one hybrid ranking.

Both inputs are the true top-n of the same filtered item set, best first, so every fused hit matches the filter
and the fused top-k is drawn from the union of the two top-n lists. Two methods, measured side by side by
``benchmarks/hybrid_search.py``:

- ``rrf``: reciprocal rank fusion (Cormack, Clarke & Büttcher 2009, "Reciprocal Rank Fusion outperforms
  Condorcet and individual Rank Learning Methods"): score = sum over rankings of w / (c + rank), rank from 1.
  Scale-free: cosine similarities and BM25 scores never meet.
- ``blend``: normalised score blending (after Weaviate's "relativeScoreFusion"): each list's scores scaled to
  [0, 1], then ``w_dense * dense + w_lexical * lexical`` (0 where absent). Dense (cosine) scores are min-max
  normalised over their own hits; lexical (BM25) scores are divided by their list's best, BM25's own zero
  (a product sharing no query word) being the floor. Min-max on BM25 gave a deep list of near-equal scores
  (a brand with hundreds of matching products, each name a few words longer or shorter) the spread of the whole
  range: its last hits scored 0, as if absent, and other brands' dense hits ranked above most true matches.

Either way a lexical hit's contribution is also multiplied by ``coverage ** coverage_power``, its coverage being
the share of the query's IDF mass its text holds (``SearchHit.coverage``, from the lexical index; None = 1).
Scaled by its list's best alone, the best lexical hit weighed as a full match however little of the query it
matched: every hit of "addidas shoes" (misspelt: no text holds it) matches "shoe" alone, coverage 0.14 on the
catalog, yet took the full lexical weight. A full match (coverage 1) weighs as before; how much a partial one
still weighs is the power and weight selected on validation (``benchmarks/hybrid_search.py``; README, "Hybrid
search").

Each fused hit's ``matched`` is "dense", "lexical" or "dense+lexical": which lists held it; a hit the lexical list
held keeps its ``coverage``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import get_args

from fashion_core.errors import InvalidInputError
from fashion_core.settings import FusionMethod
from fashion_core.stores.base import SearchHit

FUSION_METHODS: tuple[str, ...] = get_args(FusionMethod)
RRF_C = 60  # Cormack et al.'s constant: damps the head of each list


def fuse(dense: Sequence[SearchHit], lexical: Sequence[SearchHit], k: int, method: FusionMethod = "rrf",
         dense_weight: float = 1.0, lexical_weight: float = 1.0, rrf_c: int = RRF_C,
         coverage_power: float = 0.0) -> list[SearchHit]:
    """The top ``k`` of the two rankings fused (each best first, ids unique within a list). Scores are the
    fused scores (unitless, higher is better); ties are broken by id. Each lexical hit's contribution is
    multiplied by its ``coverage`` (0..1, None = 1) to the power ``coverage_power`` (0 = coverage ignored).
    Raises InvalidInputError for an unknown method or negative weights or power."""
    if method not in FUSION_METHODS:
        raise InvalidInputError(f"unknown fusion method {method!r}: rrf or blend")
    if dense_weight < 0 or lexical_weight < 0 or coverage_power < 0:
        raise InvalidInputError("fusion weights and the coverage power must be >= 0")
    scores: dict[int, float] = {}
    payloads: dict[int, dict] = {}
    found: dict[int, set[str]] = {}
    for name, hits, weight in (("dense", dense, dense_weight), ("lexical", lexical, lexical_weight)):
        contribution = _rrf(hits, rrf_c) if method == "rrf" else _scaled(hits, 0.0 if name == "lexical" else None)
        if name == "lexical" and coverage_power:
            contribution = [value * _share(hit) ** coverage_power for hit, value in zip(hits, contribution,
                                                                                          strict=True)]
        for hit, value in zip(hits, contribution, strict=True):
            scores[hit.id] = scores.get(hit.id, 0.0) + weight * value
            payloads.setdefault(hit.id, hit.payload)
            found.setdefault(hit.id, set()).add(name)
    order = sorted(scores, key=lambda i: (-scores[i], i))[:k]
    coverage = {h.id: h.coverage for h in lexical}
    return [SearchHit(id=i, score=scores[i], payload=payloads[i],
                      matched="+".join(n for n in ("dense", "lexical") if n in found[i]), coverage=coverage.get(i))
            for i in order]


def _share(hit: SearchHit) -> float:
    return 1.0 if hit.coverage is None else min(1.0, max(0.0, hit.coverage))


def _rrf(hits: Sequence[SearchHit], c: int) -> list[float]:
    return [1.0 / (c + rank) for rank in range(1, len(hits) + 1)]


def _scaled(hits: Sequence[SearchHit], floor: float | None) -> list[float]:
    """Scores mapped to [0, 1]: (s - lo) / (hi - lo), hi the list's best, lo ``floor`` (a score's natural zero)
    or, when None, the list's lowest (min-max). A list whose scores are all equal maps to 1."""
    if not hits:
        return []
    values = [h.score for h in hits]
    hi = max(values)
    lo = min(values) if floor is None else min(floor, *values)
    return [1.0 if hi == lo else (v - lo) / (hi - lo) for v in values]
