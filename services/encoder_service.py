"""gRPC encoder service: a thin adapter over the core's ClipEncoder with dynamic batching."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence

import grpc
import numpy as np
from fashionsearch.v1 import common_pb2, encoder_pb2, encoder_pb2_grpc
from PIL import Image

from fashion_core.errors import FashionSearchError, InvalidInputError
from fashion_core.images import decode_image
from fashion_core.model.base import Encoder, check_texts
from fashion_core.settings import Settings
from services.batcher import DynamicBatcher
from services.convert import model_info_to_proto
from services.rpc import record, rpc
from services.server import GrpcServer
from services.status import status_of
from services.wiring import local_encoder

log = logging.getLogger(__name__)
SERVICE = encoder_pb2.DESCRIPTOR.services_by_name["EncoderService"].full_name


class EncoderServicer(encoder_pb2_grpc.EncoderServiceServicer):
    def __init__(self, encoder: Encoder, settings: Settings) -> None:
        self.encoder = encoder
        self.max_items = settings.encoder_max_items
        max_batch, max_wait_ms = settings.encoder_max_batch, settings.encoder_max_wait_ms
        queue_size = settings.encoder_queue_size
        self.texts = DynamicBatcher[str](encoder.encode_texts, "text", max_batch=max_batch,
                                         max_wait_ms=max_wait_ms, queue_size=queue_size)
        self.images = DynamicBatcher[Image.Image](encoder.encode_images, "image", max_batch=max_batch,
                                                  max_wait_ms=max_wait_ms, queue_size=queue_size)

    def close(self) -> None:
        self.texts.close()
        self.images.close()

    def _check_count(self, n: int, what: str) -> None:
        if n == 0:
            raise InvalidInputError(f"no {what} given")
        if n > self.max_items:
            raise InvalidInputError(f"{n} {what} in one call; the limit is {self.max_items}")

    def _reply(self, vectors: np.ndarray, tag: str = "") -> encoder_pb2.EncodeResponse:
        info = self.encoder.info
        return encoder_pb2.EncodeResponse(count=int(vectors.shape[0]), dim=int(vectors.shape[1]),
                                          vectors=np.ascontiguousarray(vectors, dtype="<f4").tobytes(),
                                          model_id=info.model_id, model_version=info.version, tag=tag)

    def _texts(self, texts: Sequence[str], context: grpc.ServicerContext) -> np.ndarray:
        self._check_count(len(texts), "texts")
        return self.texts.submit(check_texts(texts), timeout=context.time_remaining())

    def _images(self, images: Sequence[bytes], context: grpc.ServicerContext) -> np.ndarray:
        self._check_count(len(images), "images")
        decoded = [decode_image(data, name=f"image #{i}") for i, data in enumerate(images)]
        return self.images.submit(decoded, timeout=context.time_remaining())

    @rpc("encoder")
    def EncodeTexts(self, request: encoder_pb2.EncodeTextsRequest,  # noqa: N802 - gRPC method names
                    context: grpc.ServicerContext) -> encoder_pb2.EncodeResponse:
        return self._reply(self._texts(request.texts, context))

    @rpc("encoder")
    def EncodeImages(self, request: encoder_pb2.EncodeImagesRequest,  # noqa: N802
                     context: grpc.ServicerContext) -> encoder_pb2.EncodeResponse:
        return self._reply(self._images(request.images, context))

    @rpc("encoder")
    def GetModelInfo(self, request: encoder_pb2.GetModelInfoRequest,  # noqa: N802
                     context: grpc.ServicerContext) -> common_pb2.ModelInfo:
        return model_info_to_proto(self.encoder.info)

    def StreamEncode(self, request_iterator: Iterator[encoder_pb2.EncodeRequest],  # noqa: N802
                     context: grpc.ServicerContext) -> Iterator[encoder_pb2.EncodeResponse]:
        # A bad message ends the stream with its status, naming the message's tag; replies already sent stand.
        start, code, message = time.perf_counter(), grpc.StatusCode.OK, ""
        try:
            for request in request_iterator:
                try:
                    if request.WhichOneof("payload") == "texts":
                        vectors = self._texts(request.texts.texts, context)
                    elif request.WhichOneof("payload") == "images":
                        vectors = self._images(request.images.images, context)
                    else:
                        raise InvalidInputError("stream message without texts or images")
                except FashionSearchError as exc:
                    code, message = status_of(exc), f"stream item {request.tag!r}: {exc}"
                    break
                yield self._reply(vectors, request.tag)
        finally:
            record("encoder", "StreamEncode", code, time.perf_counter() - start, context, message)
        if code != grpc.StatusCode.OK:
            context.abort(code, message)


def start_encoder_server(settings: Settings, address: str = "127.0.0.1:0", encoder: Encoder | None = None,
                         metrics_port: int | None = None) -> tuple[GrpcServer, EncoderServicer]:
    if encoder is None:
        encoder = local_encoder(settings, batch_size=settings.encoder_max_batch)
    servicer = EncoderServicer(encoder, settings)

    def add(server: grpc.Server) -> list[str]:
        encoder_pb2_grpc.add_EncoderServiceServicer_to_server(servicer, server)
        return [SERVICE]

    return GrpcServer(add, address, metrics_port=metrics_port,
                      max_message_bytes=settings.grpc_max_message_bytes), servicer
