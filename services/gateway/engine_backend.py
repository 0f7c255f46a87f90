"""SearchBackend over an in-process SearchEngine: the page without any server behind it (demo, dev)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from fashion_core.index.filters import SearchFilter
from fashion_core.search import SearchEngine
from services.gateway.backend import Hit, IndexSummary, LabelProbability, ServingInfo


class EngineBackend:
    def __init__(self, engine: SearchEngine) -> None:
        self.engine = engine
        self._lock = threading.Lock()  # embedded Qdrant and the torch model are not shared across threads

    def serving(self) -> ServingInfo:
        info = self.engine.encoder.info
        index = self.engine.index
        with self._lock:
            size = index.count()
        return ServingInfo(info.model_id, info.version, info.card, [IndexSummary(index.name, size, index.backend)])

    def facets(self, index: str) -> dict[str, list[str]]:
        with self._lock:
            return self.engine.facets(refresh=True)

    def _hits(self, hits: list[Any]) -> list[Hit]:
        return [Hit(h.id, h.score, h.payload) for h in hits]

    def search_text(self, query: str, k: int, flt: SearchFilter, index: str) -> list[Hit]:
        with self._lock:
            return self._hits(self.engine.search_text(query, k, flt))

    def search_image(self, image: bytes, k: int, flt: SearchFilter, index: str) -> list[Hit]:
        with self._lock:
            return self._hits(self.engine.search_image(image, k, flt))

    def similar(self, product_id: int, k: int, flt: SearchFilter, index: str) -> list[Hit]:
        with self._lock:
            return self._hits(self.engine.more_like_this(product_id, k, flt))

    def product(self, product_id: int, index: str) -> dict[str, Any]:
        with self._lock:
            return self.engine.get_product(product_id)

    def classify(self, image: bytes, labels: Sequence[str]) -> list[LabelProbability]:
        with self._lock:
            return [LabelProbability(s.label, s.probability) for s in self.engine.classify(image, labels)]

    def localize(self, product_id: int, query: str, index: str) -> bytes:
        from fashion_core.errors import UnavailableError

        raise UnavailableError("localization maps are not available in this build")
