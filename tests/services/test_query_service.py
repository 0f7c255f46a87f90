"""The query service over real gRPC channels, with the encoder service behind it."""

from __future__ import annotations

import io
import json
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest
from fashionsearch.v1 import common_pb2, query_pb2, query_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from PIL import Image

from fashion_core.catalog import read_catalog
from fashion_core.errors import DeadlineExceededError, InvalidInputError, NotFoundError, UnavailableError
from fashion_core.stores.backends import open_index
from fashion_core.stores.filters import SearchFilter
from services.query_client import QueryClient
from services.query_service import start_query_server


@pytest.fixture()
def client(query_server):
    c = QueryClient(query_server.address)
    yield c
    c.close()


def test_text_search_matches_the_in_process_engine(client, service_settings, tiny_encoder) -> None:
    index = open_index(service_settings)
    flt = SearchFilter.build(gender="Women", year_min=2012)
    want = index.search(tiny_encoder.encode_texts(["red dress"])[0], 7, flt)
    index.close()
    got = client.search_text("red dress", 7, flt, mode="dense")
    assert [h.id for h in got] == [h.id for h in want]
    assert {h.matched for h in got} == {"dense"}
    np.testing.assert_allclose([h.score for h in got], [h.score for h in want], atol=1e-4)
    assert all(h.payload["gender"] == "Women" and h.payload["year"] >= 2012 for h in got)


def test_text_modes_over_grpc_match_the_in_process_engine(client, service_settings, tiny_encoder) -> None:
    from fashion_core.search import SearchEngine, TextSearchConfig

    index = open_index(service_settings)
    engine = SearchEngine(tiny_encoder, index, text=TextSearchConfig.from_settings(service_settings))
    flt = SearchFilter.build(gender="Men", articleType="Casual Shoes,Sports Shoes")
    try:
        for mode in ("lexical", "hybrid"):
            want = engine.search_text("puma black shoes", 8, flt, mode)
            got = client.search_text("puma black shoes", 8, flt, mode=mode)
            assert [(h.id, h.matched) for h in got] == [(h.id, h.matched) for h in want]
            # Same ranking; scores to float32 noise: the two encoders run matmuls with different thread counts and
            # the blend's min-max scaling magnifies a 1e-7 difference in a query vector (seen: 1.9e-5 relative).
            np.testing.assert_allclose([h.score for h in got], [h.score for h in want], rtol=1e-4, atol=1e-6)
            assert all(h.payload["gender"] == "Men" and "Shoes" in h.payload["articleType"] for h in got)
        assert all("Puma" in h.payload["productDisplayName"] for h in client.search_text("puma", 3, mode="lexical"))
        default = client.search_text("puma black shoes", 8, flt)  # unspecified: the server's default (hybrid)
        assert [h.id for h in default] == [h.id for h in engine.search_text("puma black shoes", 8, flt, "hybrid")]
        assert {h.matched for h in default} <= {"dense", "lexical", "dense+lexical"}
    finally:
        index.close()


def test_unknown_search_mode_is_invalid_argument(query_server, channel_to) -> None:
    stub = query_pb2_grpc.QueryServiceStub(channel_to(query_server.address))
    with pytest.raises(grpc.RpcError) as err:
        stub.SearchText(query_pb2.SearchTextRequest(query="dress", k=3, mode=7), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "unknown search mode 7" in err.value.details()


def test_image_search_similar_product_and_classify(client, synthetic_catalog) -> None:
    image = (synthetic_catalog / "images" / "10007.jpg").read_bytes()
    hits = client.search_image(image, 5)
    assert hits[0].id == 10007 and hits[0].score == pytest.approx(1.0, abs=1e-3)
    similar = client.search_similar(10007, 5, SearchFilter.build(articleType="Sandals,Heels"))
    assert 10007 not in [h.id for h in similar] and len(similar) == 5
    assert all(h.payload["articleType"] in {"Sandals", "Heels"} for h in similar)
    product = client.get_product(10007)
    truth = {p.id: p for p in read_catalog(synthetic_catalog).products}[10007]
    assert product["productDisplayName"] == truth.productDisplayName and product["year"] == truth.year
    scores = client.classify(image, ["sandals", "heels", "watch"], ["a photo of {}"])
    assert sorted(s.label for s in scores) == ["heels", "sandals", "watch"]
    assert sum(s.probability for s in scores) == pytest.approx(1.0, abs=1e-4)


def test_listing_facets_and_localize(client, tiny_encoder) -> None:
    (model,) = client.list_models()
    assert model.version == tiny_encoder.info.version and model.card["base"] == "random init"
    (index,) = client.list_indexes()
    assert (index.name, index.backend, index.size, index.is_default) == ("products", "faiss", 143, True)
    assert index.model_version == tiny_encoder.info.version
    facets = client.facets()
    assert "Heels" in facets["articleType"] and "Men" in facets["gender"]
    result = client.localize(10002, "a jeans")
    image = Image.open(io.BytesIO(result.heatmap_png))
    assert image.format == "PNG" and image.size == (128, 128)
    x0, y0, x1, y1 = result.box
    assert 0 <= x0 < x1 <= 128 and 0 <= y0 < y1 <= 128


def test_errors_have_clear_status_codes(client, query_server, channel_to) -> None:
    with pytest.raises(InvalidInputError, match="k must be positive"):
        client.search_text("dress", 0)
    with pytest.raises(InvalidInputError, match="k must be between 1 and 1000, got 1001"):
        client.search_similar(10001, 1001)
    with pytest.raises(InvalidInputError, match="unknown baseColour value 'Plaid'"):
        client.search_text("dress", 5, SearchFilter.build(baseColour="Plaid"))
    with pytest.raises(InvalidInputError, match="empty"):
        client.search_text("   ", 5)
    with pytest.raises(InvalidInputError, match="query image"):
        client.search_image(b"not an image", 5)
    with pytest.raises(NotFoundError, match="not in the index"):
        client.search_similar(1, 5)
    with pytest.raises(NotFoundError, match="index 'nope' does not exist"):
        client.search_text("dress", 5, index="nope")
    stub = query_pb2_grpc.QueryServiceStub(channel_to(query_server.address))
    with pytest.raises(grpc.RpcError) as err:
        stub.SearchText(query_pb2.SearchTextRequest(query="dress", k=5,
                                                    filter=common_pb2.Filter(year_min=2016, year_max=2010)))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_concurrent_clients_get_their_own_results(client, service_settings, tiny_encoder) -> None:
    queries = ["red dress", "blue jeans", "black watch", "white sports shoes", "green cap", "pink handbag"] * 3
    index = open_index(service_settings)
    want = {q: [h.id for h in index.search(tiny_encoder.encode_texts([q])[0], 5)] for q in queries}
    index.close()
    with ThreadPoolExecutor(max_workers=18) as pool:
        got = list(pool.map(lambda q: (q, [h.id for h in client.search_text(q, 5, mode="dense")]), queries))
    assert all(ids == want[q] for q, ids in got)


def test_deadline_is_propagated_to_the_encoder(service_settings, tiny_encoder, channel_to) -> None:
    from services.encoder_service import start_encoder_server

    slow = service_settings.model_copy(update={"encoder_max_wait_ms": 2000.0, "encoder_max_batch": 1000})
    encoder, encoder_servicer = start_encoder_server(slow, encoder=tiny_encoder)
    query, query_servicer = start_query_server(slow.model_copy(update={"encoder_address": encoder.address}))
    try:
        client = QueryClient(query.address)
        client.list_models()  # warm: model info is fetched once
        with pytest.raises(DeadlineExceededError):
            client.search_text("red dress", 5, timeout=0.5)
        assert len(client.search_text("red dress", 5, timeout=10)) == 5  # waits out the batch window
    finally:
        query.stop(0)
        encoder.stop(0)
        encoder_servicer.close()
        query_servicer.indexes.close()


def test_encoder_down_is_unavailable_naming_the_encoder(service_settings, channel_to) -> None:
    settings = service_settings.model_copy(update={"encoder_address": "127.0.0.1:1", "rpc_timeout_s": 3.0})
    server, servicer = start_query_server(settings)
    try:
        client = QueryClient(server.address)
        with pytest.raises(UnavailableError, match=r"encoder service at 127\.0\.0\.1:1 is unavailable"):
            client.search_text("red dress", 5)
        health = health_pb2_grpc.HealthStub(channel_to(server.address))
        assert health.Check(health_pb2.HealthCheckRequest(service="fashionsearch.v1.QueryService"),
                            timeout=5).status == health_pb2.HealthCheckResponse.SERVING
    finally:
        server.stop(0)
        servicer.indexes.close()


def test_model_card_is_served_as_json(client) -> None:
    card = client.list_models()[0].card
    assert json.loads(json.dumps(card))["architecture"]["projection_dim"] == 64


def test_concurrent_queries_share_encoder_batches(service_settings, tiny_encoder) -> None:
    """Only index calls are serialised in the query service: queries reach the encoder together and batch."""
    import threading

    from services.encoder_service import start_encoder_server

    sizes: list[int] = []

    class Recording:
        info = tiny_encoder.info

        def encode_texts(self, texts):
            sizes.append(len(texts))
            return tiny_encoder.encode_texts(texts)

        def encode_images(self, images):
            return tiny_encoder.encode_images(images)

    batching = service_settings.model_copy(update={"encoder_max_wait_ms": 300.0, "encoder_max_batch": 64})
    encoder, encoder_servicer = start_encoder_server(batching, encoder=Recording())
    query, query_servicer = start_query_server(batching.model_copy(update={"encoder_address": encoder.address}))
    try:
        client = QueryClient(query.address)
        client.list_indexes()  # open the index and fetch model info before the burst
        barrier = threading.Barrier(8)

        def search(q: str) -> list[int]:
            barrier.wait()
            return [h.id for h in client.search_text(q, 5, mode="dense")]

        queries = [f"{c} dress" for c in ("red", "blue", "green", "black", "white", "pink", "grey", "navy")]
        with ThreadPoolExecutor(max_workers=8) as pool:
            got = list(pool.map(search, queries))
        assert max(sizes) > 1, f"queries were encoded one at a time: {sizes}"
        index = open_index(service_settings)
        assert got[2] == [h.id for h in index.search(tiny_encoder.encode_texts([queries[2]])[0], 5)]
        index.close()
    finally:
        query.stop(0)
        encoder.stop(0)
        encoder_servicer.close()
        query_servicer.indexes.close()
