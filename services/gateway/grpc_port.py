"""QueryPort over the query service's gRPC client: what `serve-web` runs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fashion_core.stores.base import SearchHit
from fashion_core.stores.filters import SearchFilter
from fashion_core.zeroshot import LabelScore
from services.gateway.port import IndexSummary, ServingInfo
from services.query_client import QueryClient


class GrpcQueryPort:
    def __init__(self, address: str, timeout_s: float = 10.0) -> None:
        self.client = QueryClient(address, timeout_s=timeout_s)

    def serving(self) -> ServingInfo:
        model = self.client.list_models()[0]
        indexes = [IndexSummary(i.name, i.size, i.backend) for i in self.client.list_indexes()]
        return ServingInfo(model.model_id, model.version, model.card, indexes)

    def facets(self, index: str) -> dict[str, list[str]]:
        return self.client.facets(index)

    def search_text(self, query: str, k: int, flt: SearchFilter, index: str, mode: str = "") -> list[SearchHit]:
        return self.client.search_text(query, k, flt, index, mode=mode)

    def search_image(self, image: bytes, k: int, flt: SearchFilter, index: str) -> list[SearchHit]:
        return self.client.search_image(image, k, flt, index)

    def similar(self, product_id: int, k: int, flt: SearchFilter, index: str) -> list[SearchHit]:
        return self.client.search_similar(product_id, k, flt, index)

    def product(self, product_id: int, index: str) -> dict[str, Any]:
        return self.client.get_product(product_id, index)

    def classify(self, image: bytes, labels: Sequence[str]) -> list[LabelScore]:
        return self.client.classify(image, labels)

    def localize(self, product_id: int, query: str, index: str) -> bytes:
        return self.client.localize(product_id, query, index).heatmap_png
