"""The query service's request fields out of range or out of bounds: index names that are paths or not served,
product ids and years no index holds, a stored id no message can carry. Real servers over loopback gRPC."""

from __future__ import annotations

import shutil
from pathlib import Path

import grpc
import numpy as np
import pytest
from fashionsearch.v1 import common_pb2, query_pb2, query_pb2_grpc

from fashion_core.errors import NotFoundError
from fashion_core.settings import Settings
from fashion_core.stores.backends import open_store
from services.query_client import QueryClient
from services.query_service import start_query_server


@pytest.fixture(scope="module")
def served_store(service_settings: Settings) -> dict[str, Path]:
    """Next to the service's ``products`` index: a plain ``other`` index, a re-indexed ``shop`` (pointer to a
    version), and a private index outside the index dir."""
    faiss = service_settings.index_dir / "faiss"
    shutil.copytree(faiss / "products", faiss / "other", dirs_exist_ok=True)
    version = "shop__v20260101000000000000"
    shutil.copytree(faiss / "products", faiss / version, dirs_exist_ok=True)
    open_store(service_settings).switch("shop", version)
    secret = service_settings.index_dir.parent / "private" / "faiss" / "secret"
    shutil.copytree(faiss / "products", secret, dirs_exist_ok=True)
    return {"secret": secret, "version": Path(version)}


@pytest.fixture()
def served(service_settings, served_store, tiny_encoder):
    server, servicer = start_query_server(service_settings, encoder=tiny_encoder)
    stub = query_pb2_grpc.QueryServiceStub(grpc.insecure_channel(server.address))
    yield server, servicer, stub
    server.stop(0)
    servicer.indexes.close()


def _code(call, request) -> grpc.StatusCode:
    try:
        call(request, timeout=30)
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def test_index_is_a_served_name_never_a_path(served, served_store, service_settings) -> None:
    _, servicer, stub = served
    secret = served_store["secret"]
    relative = "../../" + str(secret.relative_to(service_settings.index_dir.parent))
    assert (service_settings.index_dir / "faiss" / relative).resolve() == secret.resolve()

    def search(index: str) -> grpc.StatusCode:
        return _code(stub.SearchText, query_pb2.SearchTextRequest(query="red dress", k=3, index=index))

    for path in (str(secret), relative, "..", "a/b", ".hidden", "products\0", "x" * 300):
        assert search(path) == grpc.StatusCode.INVALID_ARGUMENT, path
    for unknown in ("nope", str(served_store["version"])):  # a version is built, not served
        assert search(unknown) == grpc.StatusCode.NOT_FOUND, unknown
    for name in ("", "products", "other", "shop"):
        assert search(name) == grpc.StatusCode.OK, name
    for bad in (str(secret), "nope"):
        assert _code(stub.GetFacets, query_pb2.GetFacetsRequest(index=bad)) != grpc.StatusCode.OK

    listed = stub.ListIndexes(query_pb2.ListIndexesRequest(), timeout=30).indexes
    assert [i.name for i in listed] == ["products", "other", "shop"]  # default first, then the store's names
    assert listed[0].size > 100 and all(i.size == listed[0].size for i in listed)  # copies of one index
    assert [i.is_default for i in listed] == [True, False, False]
    assert set(servicer.indexes.open_names()) <= {"products", "other", "shop"}


def test_open_indexes_are_bounded(service_settings, served_store, tiny_encoder) -> None:
    from services.query_service import QueryServicer

    servicer = QueryServicer(service_settings, tiny_encoder)
    servicer.indexes.max_open = 2
    try:
        for name in ["other", "shop", "products", "other", *[f"nope{i}" for i in range(20)]]:
            try:
                servicer.indexes.engine(name).search_text("red dress", 3)
            except NotFoundError as exc:  # the unknown names
                assert "does not exist" in str(exc)
            assert len(servicer.indexes.open_names()) <= 2
        assert servicer.indexes.open_names() == ["products", "other"]  # the least recently used was closed
    finally:
        servicer.indexes.close()


def test_ids_and_years_out_of_range_are_invalid_argument(served) -> None:
    _, _, stub = served
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    for pid in (0, -1, -(2**63)):
        assert _code(stub.SearchSimilar, query_pb2.SearchSimilarRequest(product_id=pid, k=3)) == invalid
        assert _code(stub.GetProduct, query_pb2.GetProductRequest(product_id=pid)) == invalid
        assert _code(stub.Localize, query_pb2.LocalizeRequest(product_id=pid, query="dress")) == invalid
    assert _code(stub.GetProduct, query_pb2.GetProductRequest(product_id=2**63 - 1)) == grpc.StatusCode.NOT_FOUND
    for flt in (common_pb2.Filter(year_min=-1), common_pb2.Filter(year_max=10_000),
                common_pb2.Filter(year_min=2**31 - 1)):
        assert _code(stub.SearchText, query_pb2.SearchTextRequest(query="dress", k=3, filter=flt)) == invalid
    assert _code(stub.SearchText, query_pb2.SearchTextRequest(
        query="dress", k=3, filter=common_pb2.Filter(year_min=2000, year_max=2100))) == grpc.StatusCode.OK


def test_a_stored_id_no_message_can_carry_does_not_break_searches(tmp_path, tiny_encoder) -> None:
    """An index built before ids were checked (Qdrant takes u64 ids) may hold an id over 2^63-1 or a year over
    int32: searches that rank them answer without them instead of INTERNAL for everyone."""
    from qdrant_client import models

    from fashion_core.stores.backends import open_index
    from fashion_core.stores.base import IndexMeta

    settings = Settings(index_backend="qdrant", index_dir=tmp_path / "index", home=tmp_path / "home")
    index = open_index(settings)
    info = tiny_encoder.info
    index.create(IndexMeta(name="products", backend="qdrant", dim=info.dim, model_id=info.model_id,
                           model_version=info.version))
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(5, info.dim)).astype(np.float32)
    payload = {"gender": "Women", "masterCategory": "Apparel", "articleType": "Dresses", "baseColour": "Red",
               "productDisplayName": "Red Dress", "year": 2012, "image": ""}
    index.upsert([1, 2, 3, 4, 5], vectors, [payload] * 5)
    query = tiny_encoder.encode_texts(["red dress"])[0]
    index.client.upsert("products", points=[  # as the old indexer wrote them
        models.PointStruct(id=2**63 + 5, vector=query.tolist(), payload=payload),
        models.PointStruct(id=6, vector=(query * 0.99).tolist(), payload={**payload, "year": 10**12}),
    ])
    index.close()
    server, servicer = start_query_server(settings, encoder=tiny_encoder)
    client = QueryClient(server.address)
    try:
        hits = client.search_text("red dress", 4, mode="dense")  # the picture's ranking: 6 is nearest
        assert [h.id for h in hits][:1] == [6] and 2**63 + 5 not in [h.id for h in hits]
        assert hits[0].payload["year"] is None
    finally:
        client.close()
        server.stop(0)
        servicer.indexes.close()
