"""What the gateway needs from the query service, as a protocol (the gRPC client implements it)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from fashion_core.stores.base import SearchHit
from fashion_core.stores.filters import SearchFilter
from fashion_core.zeroshot import LabelScore


@dataclass(frozen=True)
class IndexSummary:
    name: str
    size: int
    backend: str


@dataclass(frozen=True)
class ServingInfo:
    model_id: str
    version: str
    card: dict[str, Any]
    indexes: list[IndexSummary] = field(default_factory=list)


class QueryPort(Protocol):
    def serving(self) -> ServingInfo: ...

    def facets(self, index: str) -> dict[str, list[str]]: ...

    def search_text(self, query: str, k: int, flt: SearchFilter, index: str, mode: str = "") -> list[SearchHit]:
        """``mode``: "dense", "lexical", "hybrid" or "" (the query service's default); each hit's ``matched``
        names the ranking(s) that found it. Raises InvalidInputError for another mode."""

    def search_image(self, image: bytes, k: int, flt: SearchFilter, index: str) -> list[SearchHit]: ...

    def similar(self, product_id: int, k: int, flt: SearchFilter, index: str) -> list[SearchHit]: ...

    def product(self, product_id: int, index: str) -> dict[str, Any]: ...

    def classify(self, image: bytes, labels: Sequence[str]) -> list[LabelScore]: ...

    def localize(self, product_id: int, query: str, index: str) -> bytes:
        """A PNG heatmap of where the product's image matches the text query."""
