"""The encoder service over real gRPC channels: correctness under concurrency, batching, bad input, limits."""

from __future__ import annotations

import io
import threading
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest
from fashionsearch.v1 import encoder_pb2, encoder_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from PIL import Image

from fashion_core.errors import InvalidInputError, UnavailableError
from fashion_core.settings import Settings
from services.encoder_client import EncoderClient, vectors_of
from services.encoder_service import start_encoder_server


def _png(width: int, height: int, colour=(200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buf, format="PNG")
    return buf.getvalue()


def test_many_concurrent_clients_get_their_own_vectors(encoder_server, tiny_encoder, synthetic_catalog) -> None:
    client = EncoderClient(encoder_server.address)
    texts = [f"a {c} {t} for {g}" for c in ("red", "blue", "green", "black") for t in ("dress", "watch")
             for g in ("men", "women")]
    images = [(synthetic_catalog / "images" / f"{10000 + i}.jpg").read_bytes() for i in range(16)]
    want_texts = tiny_encoder.encode_texts(texts)
    want_images = tiny_encoder.encode_images(images)

    def call(i: int) -> tuple[int, np.ndarray, np.ndarray]:
        return i, client.encode_texts([texts[i]]), client.encode_images([images[i]])

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(call, range(16)))
    for i, text_vec, image_vec in results:
        np.testing.assert_allclose(text_vec[0], want_texts[i], atol=1e-5)
        np.testing.assert_allclose(image_vec[0], want_images[i], atol=1e-5)
    assert client.info.version == tiny_encoder.info.version and client.info.dim == 64
    client.close()


def test_concurrent_requests_are_merged_into_batches(service_settings, tiny_encoder) -> None:
    settings = service_settings.model_copy(update={"encoder_max_wait_ms": 200.0, "encoder_max_batch": 64})
    sizes: list[int] = []
    lock = threading.Lock()

    class Recording:
        info = tiny_encoder.info

        def encode_texts(self, texts):
            with lock:
                sizes.append(len(texts))
            return tiny_encoder.encode_texts(texts)

        def encode_images(self, images):
            return tiny_encoder.encode_images(images)

    server, servicer = start_encoder_server(settings, encoder=Recording())
    try:
        client = EncoderClient(server.address)
        barrier = threading.Barrier(12)

        def call(i: int) -> np.ndarray:
            barrier.wait()
            return client.encode_texts([f"query number {i}"])

        with ThreadPoolExecutor(max_workers=12) as pool:
            out = list(pool.map(call, range(12)))
        assert sum(sizes) == 12
        assert max(sizes) > 1, f"no request was batched with another: {sizes}"
        assert len(sizes) < 12
        np.testing.assert_allclose(out[3][0], tiny_encoder.encode_texts(["query number 3"])[0], atol=1e-5)
    finally:
        server.stop(0)
        servicer.close()


BAD_IMAGES = {
    "corrupt bytes": b"\xff\xd8\xff\xe0 truncated",
    "not an image": b"hello, I am text",
    "decompression bomb": _png(9000, 9000),
}


@pytest.mark.parametrize("case", list(BAD_IMAGES))
def test_bad_images_are_invalid_argument_and_do_not_hurt_others(encoder_server, channel_to, case) -> None:
    stub = encoder_pb2_grpc.EncoderServiceStub(channel_to(encoder_server.address))
    good = _png(40, 40)
    with ThreadPoolExecutor(max_workers=4) as pool:
        goods = [pool.submit(stub.EncodeImages, encoder_pb2.EncodeImagesRequest(images=[good]), timeout=30)
                 for _ in range(3)]
        with pytest.raises(grpc.RpcError) as err:
            stub.EncodeImages(encoder_pb2.EncodeImagesRequest(images=[good, BAD_IMAGES[case]]), timeout=30)
        assert all(vectors_of(f.result()).shape == (1, 64) for f in goods)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "image #1" in err.value.details()


def test_size_limits_and_text_validation(encoder_server, channel_to) -> None:
    stub = encoder_pb2_grpc.EncoderServiceStub(channel_to(encoder_server.address))
    cases = [
        (encoder_pb2.EncodeImagesRequest(images=[b"\0" * (21 * 1024 * 1024)]), stub.EncodeImages, "bytes"),
        (encoder_pb2.EncodeTextsRequest(texts=["fine", ""]), stub.EncodeTexts, "text #1 is empty"),
        (encoder_pb2.EncodeTextsRequest(texts=["x" * 2000]), stub.EncodeTexts, "characters"),
        (encoder_pb2.EncodeTextsRequest(texts=["a"] * 300), stub.EncodeTexts, "300 texts in one call"),
        (encoder_pb2.EncodeTextsRequest(texts=[]), stub.EncodeTexts, "no texts"),
    ]
    for request, method, message in cases:
        with pytest.raises(grpc.RpcError) as err:
            method(request, timeout=30)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert message in err.value.details()


def test_client_maps_status_to_project_errors(encoder_server) -> None:
    client = EncoderClient(encoder_server.address)
    with pytest.raises(InvalidInputError, match="empty"):
        client.encode_texts([" "])
    with pytest.raises(UnavailableError, match=r"encoder service at 127\.0\.0\.1:1 is unavailable"):
        EncoderClient("127.0.0.1:1", timeout_s=5).encode_texts(["red dress"])


def test_stream_encode_answers_each_message_in_order(encoder_server, channel_to, tiny_encoder) -> None:
    stub = encoder_pb2_grpc.EncoderServiceStub(channel_to(encoder_server.address))
    messages = [encoder_pb2.EncodeRequest(texts=encoder_pb2.EncodeTextsRequest(texts=[f"item {i}", "dress"]),
                                          tag=f"t{i}") for i in range(5)]
    messages.append(encoder_pb2.EncodeRequest(images=encoder_pb2.EncodeImagesRequest(images=[_png(30, 30)]),
                                              tag="img"))
    replies = list(stub.StreamEncode(iter(messages), timeout=60))
    assert [r.tag for r in replies] == ["t0", "t1", "t2", "t3", "t4", "img"]
    np.testing.assert_allclose(vectors_of(replies[2]), tiny_encoder.encode_texts(["item 2", "dress"]), atol=1e-5)
    assert replies[0].model_version == tiny_encoder.info.version


def test_deadline_exceeded_and_queue_full(service_settings, tiny_encoder) -> None:
    slow = service_settings.model_copy(update={"encoder_max_wait_ms": 3000.0, "encoder_max_batch": 1000,
                                               "encoder_queue_size": 2})
    server, servicer = start_encoder_server(slow, encoder=tiny_encoder)
    try:
        stub = encoder_pb2_grpc.EncoderServiceStub(grpc.insecure_channel(server.address))
        with pytest.raises(grpc.RpcError) as err:
            stub.EncodeTexts(encoder_pb2.EncodeTextsRequest(texts=["red dress"]), timeout=0.3)
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        # the batcher now waits 3 s to fill its batch: a burst overflows the 2-request queue
        with ThreadPoolExecutor(max_workers=8) as pool:
            futures = [pool.submit(stub.EncodeTexts, encoder_pb2.EncodeTextsRequest(texts=[f"q{i}"]), timeout=20)
                       for i in range(8)]
            codes = []
            for f in futures:
                try:
                    f.result()
                    codes.append(grpc.StatusCode.OK)
                except grpc.RpcError as exc:
                    codes.append(exc.code())
        assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes
        assert grpc.StatusCode.OK in codes
    finally:
        server.stop(0)
        servicer.close()


def test_health_and_reflection(encoder_server, channel_to) -> None:
    channel = channel_to(encoder_server.address)
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "fashionsearch.v1.EncoderService"):
        status = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status
        assert status == health_pb2.HealthCheckResponse.SERVING
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    replies = reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    names = {s.name for r in replies for s in r.list_services_response.service}
    assert {"fashionsearch.v1.EncoderService", "grpc.health.v1.Health"} <= names


def test_graceful_shutdown_reports_not_serving(service_settings, tiny_encoder) -> None:
    server, servicer = start_encoder_server(Settings(**service_settings.model_dump()), encoder=tiny_encoder)
    channel = grpc.insecure_channel(server.address)
    health = health_pb2_grpc.HealthStub(channel)
    assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == health_pb2.HealthCheckResponse.SERVING
    server.health.enter_graceful_shutdown()
    assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == \
        health_pb2.HealthCheckResponse.NOT_SERVING
    server.stop(0)
    servicer.close()
    channel.close()


