"""The encoder service as a fashion_core ``Encoder``: what the query service and indexer use remotely."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

import grpc
import numpy as np
from fashionsearch.v1 import encoder_pb2, encoder_pb2_grpc

from fashion_core.errors import DeadlineExceededError, InvalidInputError, TooLargeError
from fashion_core.images import SourceImage, to_rgb
from fashion_core.model.base import ImageInput, ModelInfo
from fashion_core.settings import Settings
from services.channel import MAX_MESSAGE_BYTES, insecure_channel
from services.convert import model_info_from_proto
from services.status import raise_for_rpc_error

SERVICE_NAME = "encoder service"
R = TypeVar("R")  # a stub method's reply

# The deadline of the call being served, so nested calls to the encoder inherit what is left of it.
_deadline_s: ContextVar[float | None] = ContextVar("encoder_deadline_s", default=None)


@contextmanager
def call_deadline(seconds: float | None) -> Iterator[None]:
    token = _deadline_s.set(seconds)
    try:
        yield
    finally:
        _deadline_s.reset(token)


def _as_bytes(image: ImageInput) -> bytes:
    """The file bytes of an image as they are (the service decodes them as this process would); only an image
    made in memory is encoded, as lossless PNG of what the decoder makes of it."""
    if isinstance(image, bytes):
        return image
    if isinstance(image, SourceImage):
        return image.data
    buf = io.BytesIO()
    to_rgb(image).save(buf, format="PNG")
    return buf.getvalue()


def _message_cost(item: bytes) -> int:
    """Bytes an item adds to a request message: the data, its field tag and length prefix."""
    return len(item) + 1 + (len(item).bit_length() + 6) // 7


def vectors_of(reply: encoder_pb2.EncodeResponse) -> np.ndarray:
    return np.frombuffer(reply.vectors, dtype="<f4").reshape(reply.count, reply.dim).astype(np.float32)


class EncoderClient:
    """Calls the encoder service; image batches are split into requests of at most ``max_items`` images and
    ``max_message_bytes`` (the services' gRPC message limit, ``FASHION_GRPC_MAX_MESSAGE_MB``)."""

    def __init__(self, address: str, timeout_s: float = 30.0, max_items: int = 256,
                 max_message_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self.address = address
        self.timeout_s = timeout_s
        self.max_items = max_items
        self.max_message_bytes = max_message_bytes
        self.channel = insecure_channel(address, max_message_bytes)
        self.stub = encoder_pb2_grpc.EncoderServiceStub(self.channel)
        self._info: ModelInfo | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> EncoderClient:
        if not settings.encoder_address:
            raise InvalidInputError("no encoder service address configured (FASHION_ENCODER_ADDRESS)")
        return cls(settings.encoder_address, timeout_s=settings.rpc_timeout_s, max_items=settings.encoder_max_items,
                   max_message_bytes=settings.grpc_max_message_bytes)

    def _timeout(self) -> float:
        remaining = _deadline_s.get()
        if remaining is None:
            return self.timeout_s
        if remaining <= 0:
            raise DeadlineExceededError("deadline passed before calling the encoder service")
        return min(self.timeout_s, remaining)

    def _call(self, method: Callable[..., R], request: object) -> R:  # a stub method and its request message
        try:
            return method(request, timeout=self._timeout())
        except grpc.RpcError as exc:
            raise_for_rpc_error(exc, SERVICE_NAME, self.address)

    @property
    def info(self) -> ModelInfo:
        with self._lock:
            if self._info is None:
                self._info = model_info_from_proto(self._call(self.stub.GetModelInfo,
                                                              encoder_pb2.GetModelInfoRequest()))
            return self._info

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        parts = [vectors_of(self._call(self.stub.EncodeTexts,
                                       encoder_pb2.EncodeTextsRequest(texts=list(texts[i:i + self.max_items]))))
                 for i in range(0, len(texts), self.max_items)]
        return np.concatenate(parts) if parts else np.zeros((0, self.info.dim), np.float32)

    def encode_images(self, images: Sequence[ImageInput]) -> np.ndarray:
        """Vectors of ``images``, in order, over as many requests as the limits need. Raises TooLargeError for
        an image that alone exceeds a message, or when the service's limit is lower than this client's."""
        parts = [vectors_of(self._call(self.stub.EncodeImages, encoder_pb2.EncodeImagesRequest(images=request)))
                 for request in self._requests([_as_bytes(img) for img in images])]
        return np.concatenate(parts) if parts else np.zeros((0, self.info.dim), np.float32)

    def _requests(self, items: list[bytes]) -> Iterator[list[bytes]]:
        budget = self.max_message_bytes - 1024  # room for the rest of the message
        request: list[bytes] = []
        size = 0
        for i, item in enumerate(items):
            cost = _message_cost(item)
            if cost > budget:
                raise TooLargeError(f"image #{i}: {len(item)} bytes do not fit a {self.max_message_bytes}-byte "
                                    f"gRPC message to the {SERVICE_NAME}")
            if request and (len(request) == self.max_items or size + cost > budget):
                yield request
                request, size = [], 0
            request.append(item)
            size += cost
        if request:
            yield request

    def close(self) -> None:
        self.channel.close()
