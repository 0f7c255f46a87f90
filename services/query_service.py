"""gRPC query service: a thin adapter over the core's SearchEngine, one engine per served index.

The encoder is in-process (embedded default) or the encoder service through EncoderClient; either way the
caller's deadline is handed down, and a dead encoder comes back as UNAVAILABLE naming it.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from typing import Any

import grpc
from fashionsearch.v1 import common_pb2, query_pb2, query_pb2_grpc
from PIL import Image

from fashion_core.catalog.schema import KEYWORD_FIELDS, parse_product_id, product_id_problem
from fashion_core.errors import NotFoundError
from fashion_core.images import SourceImage, decode_image, load_image
from fashion_core.localization import heatmap_png, occlusion_map
from fashion_core.model.base import Encoder
from fashion_core.search import SearchEngine, TextSearchConfig
from fashion_core.settings import Settings
from fashion_core.stores.backends import open_store
from fashion_core.stores.base import SearchHit, VectorIndex
from fashion_core.stores.versions import check_index_name
from fashion_core.zeroshot import DEFAULT_TEMPLATES
from services.convert import filter_from_proto, mode_from_proto, model_info_to_proto, product_to_proto
from services.encoder_client import call_deadline
from services.rpc import rpc
from services.server import GrpcServer
from services.wiring import open_encoder

log = logging.getLogger(__name__)
SERVICE = query_pb2.DESCRIPTOR.services_by_name["QueryService"].full_name
MAX_OPEN_INDEXES = 8


class LockedIndex:
    """Every call to the wrapped index under one lock: embedded Qdrant and FAISS are not built for concurrent
    callers. Only index calls are serialised (milliseconds); encoding, the slow part, stays concurrent so the
    encoder service can batch the queries of many callers."""

    def __init__(self, index: VectorIndex) -> None:
        self._index = index
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        with self._lock:
            value = getattr(self._index, name)
        if not callable(value):
            return value

        def locked(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return value(*args, **kwargs)

        return locked


class IndexRegistry:
    """The indexes this service answers for, opened on first use from one store (``backends.open_store``, which
    lives as long as the registry: embedded Qdrant allows one client per store, the store's).

    A requested name must be an index name (never a path: INVALID_ARGUMENT) that the store serves (a plain index
    or a re-indexed name, not a version: else NOT_FOUND). At most ``max_open`` are open at a time; the least
    recently used one is closed to make room.

    A re-index reaches a running service: before each request the store's stamp of the name is checked
    (``IndexStore.stamp``; for FAISS the pointer and the serving version's ``meta.json``, one small read and one
    stat), and when it changed the index is opened again (complete: the pointer only moves to a flushed version)
    and replaces the old one, which answers until then. A store that resolves names itself (Qdrant aliases) has
    no stamp: its indexes follow a switch by themselves."""

    def __init__(self, settings: Settings, encoder: Encoder, max_open: int = MAX_OPEN_INDEXES) -> None:
        self.settings = settings
        self.encoder = encoder
        self.max_open = max_open
        self.store = open_store(settings)  # connects on first use
        # name -> (engine, stamp of the version it serves)
        self._engines: OrderedDict[str, tuple[SearchEngine, Hashable | None]] = OrderedDict()
        self._guard = threading.Lock()
        self._opening = threading.Lock()  # one load at a time: two requests after a switch load it once
        # A store whose indexes do not take concurrent calls (files, embedded Qdrant) gets a lock per index.
        self._serialise = not self.store.concurrent

    def name(self, requested: str) -> str:
        return requested or self.settings.index_name

    def served(self) -> list[str]:
        """The names the store serves (plain indexes and re-indexed names, never versions), sorted."""
        return self.store.serving_names()

    def _cached(self, name: str, stamp: Hashable | None) -> SearchEngine | None:
        with self._guard:
            entry = self._engines.get(name)
            if entry is None or entry[1] != stamp:
                return None
            self._engines.move_to_end(name)
            return entry[0]

    def engine(self, requested: str) -> SearchEngine:
        """The engine of ``requested`` (empty = the default index), of the version serving it now. Raises
        InvalidInputError for a name that is not one, NotFoundError for an index this service does not serve."""
        name = check_index_name(self.name(requested))
        stamp = self.store.stamp(name)
        engine = self._cached(name, stamp)
        if engine is not None:
            return engine
        with self._guard:
            known = name in self._engines
        if not known and name != self.settings.index_name and name not in self.served():
            raise NotFoundError(f"index {name!r} does not exist")
        with self._opening:
            engine = self._cached(name, stamp)  # loaded by the request this one waited for
            if engine is not None:
                return engine
            # Stamped before opening: a switch in between re-opens once more, never serves a stale version.
            index: VectorIndex = self.store.open(name)
            if index.meta is None:
                index.close()
                raise NotFoundError(f"index {name!r} does not exist")
            served = LockedIndex(index) if self._serialise else index
            engine = SearchEngine(self.encoder, served,
                                  text=TextSearchConfig.from_settings(self.settings))
            closing: list[tuple[str, SearchEngine]] = []
            with self._guard:
                old = self._engines.pop(name, None)
                if old is not None:
                    log.info("index %r: serving %s now (was %s)", name, stamp, old[1])
                    closing.append((name, old[0]))
                self._engines[name] = (engine, stamp)
                while len(self._engines) > self.max_open:
                    evicted, (old_engine, _) = self._engines.popitem(last=False)
                    log.info("closing index %r: more than %d open", evicted, self.max_open)
                    closing.append((evicted, old_engine))
            # Requests already running on an old engine finish on it (FAISS close frees nothing they use).
            for _, old_engine in closing:
                old_engine.index.close()
            return engine

    def open_names(self) -> list[str]:
        with self._guard:
            return list(self._engines)

    def close(self) -> None:
        with self._guard:
            for engine, _ in self._engines.values():
                engine.index.close()
            self._engines.clear()
        self.store.close()


class QueryServicer(query_pb2_grpc.QueryServiceServicer):
    def __init__(self, settings: Settings, encoder: Encoder) -> None:
        self.settings = settings
        self.encoder = encoder
        self.indexes = IndexRegistry(settings, encoder)

    @contextmanager
    def _engine(self, requested: str, context: grpc.ServicerContext) -> Iterator[SearchEngine]:
        engine = self.indexes.engine(requested)
        with call_deadline(context.time_remaining()):
            yield engine

    def _response(self, hits: list[SearchHit], index: str) -> query_pb2.SearchResponse:
        # An index built before ids were checked may hold one no message can carry: leave it out, and let
        # everyone else's searches work.
        bad = [h.id for h in hits if product_id_problem(h.id) is not None]
        if bad:
            log.warning("index %r holds ids outside 1..2^63-1, left out of results: %s", index, bad)
        return query_pb2.SearchResponse(
            hits=[common_pb2.Hit(id=h.id, score=h.score, product=product_to_proto(h.id, h.payload), matched=h.matched)
                  for h in hits if h.id not in bad],
            index=self.indexes.name(index), model_version=self.encoder.info.version)

    @rpc("query")
    def SearchText(self, request: query_pb2.SearchTextRequest,  # noqa: N802 - gRPC method names
                   context: grpc.ServicerContext) -> query_pb2.SearchResponse:
        flt = filter_from_proto(request.filter)
        with self._engine(request.index, context) as engine:
            hits = engine.search_text(request.query, request.k, flt, mode_from_proto(request.mode))
        return self._response(hits, request.index)

    @rpc("query")
    def SearchImage(self, request: query_pb2.SearchImageRequest,  # noqa: N802
                    context: grpc.ServicerContext) -> query_pb2.SearchResponse:
        flt = filter_from_proto(request.filter)
        image = SourceImage(request.image, decode_image(request.image, name="query image"))
        with self._engine(request.index, context) as engine:
            hits = engine.search_image(image, request.k, flt)
        return self._response(hits, request.index)

    @rpc("query")
    def SearchSimilar(self, request: query_pb2.SearchSimilarRequest,  # noqa: N802
                      context: grpc.ServicerContext) -> query_pb2.SearchResponse:
        flt = filter_from_proto(request.filter)
        with self._engine(request.index, context) as engine:
            hits = engine.more_like_this(parse_product_id(request.product_id), request.k, flt)
        return self._response(hits, request.index)

    @rpc("query")
    def Classify(self, request: query_pb2.ClassifyRequest,  # noqa: N802
                 context: grpc.ServicerContext) -> query_pb2.ClassifyResponse:
        from fashion_core.zeroshot import classify

        with call_deadline(context.time_remaining()):
            image = SourceImage(request.image, decode_image(request.image, name="image"))
            scores = classify(self.encoder, image, list(request.labels),
                              list(request.templates) or list(DEFAULT_TEMPLATES))
            return query_pb2.ClassifyResponse(scores=[query_pb2.LabelScore(label=s.label, probability=s.probability)
                                                      for s in scores])

    @rpc("query")
    def GetProduct(self, request: query_pb2.GetProductRequest,  # noqa: N802
                   context: grpc.ServicerContext) -> common_pb2.Product:
        product_id = parse_product_id(request.product_id)
        with self._engine(request.index, context) as engine:
            return product_to_proto(product_id, engine.get_product(product_id))

    @rpc("query")
    def ListModels(self, request: query_pb2.ListModelsRequest,  # noqa: N802
                   context: grpc.ServicerContext) -> query_pb2.ListModelsResponse:
        with call_deadline(context.time_remaining()):
            return query_pb2.ListModelsResponse(models=[model_info_to_proto(self.encoder.info)])

    @rpc("query")
    def ListIndexes(self, request: query_pb2.ListIndexesRequest,  # noqa: N802
                    context: grpc.ServicerContext) -> query_pb2.ListIndexesResponse:
        # what the store serves, by name: never a path, never a name someone merely asked for
        names = list(dict.fromkeys([self.settings.index_name, *self.indexes.served()]))
        infos = []
        for name in names:
            try:
                engine = self.indexes.engine(name)
            except NotFoundError:
                continue
            meta, size = engine.index.meta, engine.index.count()
            infos.append(query_pb2.IndexInfo(
                name=name, backend=engine.index.backend, size=size, dim=meta.dim if meta else 0,
                model_id=meta.model_id if meta else "", model_version=meta.model_version if meta else "",
                is_default=name == self.settings.index_name))
        return query_pb2.ListIndexesResponse(indexes=infos)

    @rpc("query")
    def GetFacets(self, request: query_pb2.GetFacetsRequest,  # noqa: N802
                  context: grpc.ServicerContext) -> query_pb2.GetFacetsResponse:
        with self._engine(request.index, context) as engine:
            facets = engine.facets(refresh=True)
        return query_pb2.GetFacetsResponse(facets={name: query_pb2.FacetValues(values=facets.get(name, []))
                                                   for name in KEYWORD_FIELDS})

    @rpc("query")
    def Localize(self, request: query_pb2.LocalizeRequest,  # noqa: N802
                 context: grpc.ServicerContext) -> query_pb2.LocalizeResponse:
        product_id = parse_product_id(request.product_id)
        with self._engine(request.index, context) as engine:
            payload = engine.get_product(product_id)
            if not payload.get("image"):
                raise NotFoundError(f"product {product_id} has no image")
            image: Image.Image = load_image(payload["image"])
            loc = occlusion_map(self.encoder, image, request.query)
        x0, y0, x1, y1 = loc.box
        return query_pb2.LocalizeResponse(heatmap_png=heatmap_png(image, loc), box_x0=x0, box_y0=y0, box_x1=x1,
                                          box_y1=y1)


def start_query_server(settings: Settings, address: str = "127.0.0.1:0", encoder: Encoder | None = None,
                       metrics_port: int | None = None) -> tuple[GrpcServer, QueryServicer]:
    servicer = QueryServicer(settings, encoder or open_encoder(settings))

    def add(server: grpc.Server) -> list[str]:
        query_pb2_grpc.add_QueryServiceServicer_to_server(servicer, server)
        return [SERVICE]

    return GrpcServer(add, address, metrics_port=metrics_port,
                      max_message_bytes=settings.grpc_max_message_bytes), servicer

