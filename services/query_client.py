"""Typed client of the query service, used by the CLI, the web gateway and the tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from fashionsearch.v1 import query_pb2, query_pb2_grpc

from fashion_core.model.base import ModelInfo
from fashion_core.stores.base import SearchHit
from fashion_core.stores.filters import SearchFilter
from fashion_core.zeroshot import LabelScore
from services.channel import MAX_MESSAGE_BYTES, insecure_channel
from services.convert import filter_to_proto, mode_to_proto, model_info_from_proto, product_from_proto
from services.status import raise_for_rpc_error

SERVICE_NAME = "query service"
R = TypeVar("R")  # a stub method's reply


@dataclass(frozen=True)
class ServedIndex:
    name: str
    backend: str
    size: int
    dim: int
    model_id: str
    model_version: str
    is_default: bool


@dataclass(frozen=True)
class LocalizeResult:
    heatmap_png: bytes
    box: tuple[int, int, int, int]


class QueryClient:
    def __init__(self, address: str, timeout_s: float = 30.0, max_message_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self.address = address
        self.timeout_s = timeout_s
        self.channel = insecure_channel(address, max_message_bytes)
        self.stub = query_pb2_grpc.QueryServiceStub(self.channel)

    def _call(self, method: Callable[..., R], request: object, timeout: float | None) -> R:  # a stub method
        try:
            return method(request, timeout=timeout or self.timeout_s)
        except grpc.RpcError as exc:
            raise_for_rpc_error(exc, SERVICE_NAME, self.address)

    @staticmethod
    def _hits(reply: query_pb2.SearchResponse) -> list[SearchHit]:
        return [SearchHit(h.id, h.score, product_from_proto(h.product), h.matched) for h in reply.hits]

    def search_text(self, query: str, k: int = 10, flt: SearchFilter | None = None, index: str = "",
                    timeout: float | None = None, mode: str | None = None) -> list[SearchHit]:
        """Top ``k`` hits for a text query; ``mode`` is "dense", "lexical", "hybrid" or None (the server's
        default). Each hit's ``matched`` names the ranking(s) that found it."""
        request = query_pb2.SearchTextRequest(query=query, k=k, filter=filter_to_proto(flt), index=index,
                                              mode=mode_to_proto(mode))
        return self._hits(self._call(self.stub.SearchText, request, timeout))

    def search_image(self, image: bytes, k: int = 10, flt: SearchFilter | None = None, index: str = "",
                     timeout: float | None = None) -> list[SearchHit]:
        request = query_pb2.SearchImageRequest(image=image, k=k, filter=filter_to_proto(flt), index=index)
        return self._hits(self._call(self.stub.SearchImage, request, timeout))

    def search_similar(self, product_id: int, k: int = 10, flt: SearchFilter | None = None, index: str = "",
                       timeout: float | None = None) -> list[SearchHit]:
        request = query_pb2.SearchSimilarRequest(product_id=product_id, k=k, filter=filter_to_proto(flt),
                                                 index=index)
        return self._hits(self._call(self.stub.SearchSimilar, request, timeout))

    def classify(self, image: bytes, labels: Sequence[str], templates: Sequence[str] = (),
                 timeout: float | None = None) -> list[LabelScore]:
        request = query_pb2.ClassifyRequest(image=image, labels=list(labels), templates=list(templates))
        reply = self._call(self.stub.Classify, request, timeout)
        return [LabelScore(s.label, s.probability) for s in reply.scores]

    def get_product(self, product_id: int, index: str = "", timeout: float | None = None) -> dict[str, Any]:
        reply = self._call(self.stub.GetProduct, query_pb2.GetProductRequest(product_id=product_id, index=index),
                           timeout)
        return product_from_proto(reply)

    def list_models(self, timeout: float | None = None) -> list[ModelInfo]:
        reply = self._call(self.stub.ListModels, query_pb2.ListModelsRequest(), timeout)
        return [model_info_from_proto(m) for m in reply.models]

    def list_indexes(self, timeout: float | None = None) -> list[ServedIndex]:
        reply = self._call(self.stub.ListIndexes, query_pb2.ListIndexesRequest(), timeout)
        return [ServedIndex(i.name, i.backend, i.size, i.dim, i.model_id, i.model_version, i.is_default)
                for i in reply.indexes]

    def facets(self, index: str = "", timeout: float | None = None) -> dict[str, list[str]]:
        reply = self._call(self.stub.GetFacets, query_pb2.GetFacetsRequest(index=index), timeout)
        return {name: list(values.values) for name, values in reply.facets.items()}

    def localize(self, product_id: int, query: str, index: str = "", timeout: float | None = None) -> LocalizeResult:
        reply = self._call(self.stub.Localize, query_pb2.LocalizeRequest(product_id=product_id, query=query,
                                                                         index=index), timeout)
        return LocalizeResult(reply.heatmap_png, (reply.box_x0, reply.box_y0, reply.box_x1, reply.box_y1))

    def close(self) -> None:
        self.channel.close()
