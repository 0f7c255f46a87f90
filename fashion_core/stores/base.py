"""The vector-index interface every backend implements."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from fashion_core.catalog.schema import MAX_PRODUCT_ID, product_id_problem
from fashion_core.errors import InvalidInputError
from fashion_core.stores.filters import SearchFilter


@dataclass(frozen=True)
class SearchHit:
    """One result. ``matched`` says which ranking found it: "dense" (the embedding), "lexical" (BM25 over the
    text), "dense+lexical" (both, in a hybrid search); empty when not recorded. ``coverage``, on lexical hits: the
    share (0..1) of the query's IDF mass the item's text holds (``fashion_core.stores.lexical``), which the
    hybrid fusion weighs the hit by (a fused hit keeps it); None where not computed (dense hits)."""

    id: int
    score: float
    payload: dict[str, Any]
    matched: str = ""
    coverage: float | None = None


@dataclass
class IndexMeta:
    """What made the vectors: a query must be encoded by the same model to be meaningful."""

    name: str
    backend: str
    dim: int
    model_id: str = ""
    model_version: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def built_by_another_model(self, model_version: str) -> bool:
        """Whether these vectors come from a model other than ``model_version``, so that its embeddings would
        not match them. An index that records no version (built before versions were kept) is taken as its."""
        return bool(self.model_version) and self.model_version != model_version


class VectorIndex(Protocol):
    backend: str
    name: str

    @property
    def meta(self) -> IndexMeta | None: ...

    def create(self, meta: IndexMeta) -> None:
        """Create the index if missing; an existing one must have the same dim."""

    def upsert(self, ids: Sequence[int], vectors: np.ndarray, payloads: Sequence[dict[str, Any]]) -> None: ...

    def delete(self, ids: Sequence[int]) -> None: ...

    def flush(self) -> None:
        """Make upserts and deletes durable (FAISS writes its files; Qdrant already has)."""

    def search(self, vector: np.ndarray, k: int, flt: SearchFilter | None = None,
               exact: bool = False) -> list[SearchHit]:
        """True top-k by inner product among items matching ``flt`` (k hits whenever k match)."""

    def retrieve(self, ids: Sequence[int], with_vectors: bool = False) -> dict[int, tuple[dict[str, Any],
                                                                                       np.ndarray | None]]: ...

    def count(self) -> int: ...

    def all_ids(self) -> set[int]: ...

    def facets(self) -> dict[str, list[str]]:
        """Distinct values of each keyword field in the index (for validation and UI filter lists)."""

    def close(self) -> None: ...


def check_query(vector: np.ndarray, k: int, dim: int) -> np.ndarray:
    if k <= 0:
        raise InvalidInputError(f"k must be positive, got {k}")
    q = np.asarray(vector, dtype=np.float32).reshape(-1)
    if q.shape[0] != dim:
        raise InvalidInputError(f"query vector has dim {q.shape[0]}, index has {dim}: built by another model?")
    return q


def check_batch(ids: Sequence[int], vectors: np.ndarray, payloads: Sequence[dict[str, Any]], dim: int) -> None:
    """Raises InvalidInputError for mismatched sizes, another dim, or an id that is not a product id."""
    _check_ids(ids)
    if not (len(ids) == len(vectors) == len(payloads)):
        raise InvalidInputError(f"upsert sizes differ: {len(ids)} ids, {len(vectors)} vectors, "
                                f"{len(payloads)} payloads")
    if len(ids) and vectors.shape[1] != dim:
        raise InvalidInputError(f"vectors have dim {vectors.shape[1]}, index has {dim}")


def _check_ids(ids: Sequence[int]) -> None:
    """Raises InvalidInputError unless every id is a product id (1..2^63-1): one bad row must not make the
    whole batch overflow (FAISS int64) or become a point no gRPC message can carry (Qdrant takes u64)."""
    if isinstance(ids, np.ndarray) and ids.dtype.kind in "iu":
        if len(ids) and (int(ids.min()) < 1 or int(ids.max()) > MAX_PRODUCT_ID):
            raise InvalidInputError(f"bad product id in upsert: ids must be in 1..{MAX_PRODUCT_ID}")
        return
    bad = next((problem for i in ids if (problem := product_id_problem(i)) is not None), None)
    if bad is not None:
        raise InvalidInputError(f"bad product id in upsert: {bad}")


def stored_vector(row: tuple[dict[str, Any], np.ndarray | None]) -> np.ndarray:
    """The vector of a row from ``retrieve(..., with_vectors=True)``: every store returns one there (None is
    the type of a row retrieved without vectors)."""
    _, vector = row
    if vector is None:
        raise RuntimeError("a row retrieved with vectors has none")
    return vector
