from fashionsearch.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EncodeTextsRequest(_message.Message):
    __slots__ = ("texts",)
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    texts: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, texts: _Optional[_Iterable[str]] = ...) -> None: ...

class EncodeImagesRequest(_message.Message):
    __slots__ = ("images",)
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    images: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, images: _Optional[_Iterable[bytes]] = ...) -> None: ...

class EncodeRequest(_message.Message):
    __slots__ = ("texts", "images", "tag")
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    texts: EncodeTextsRequest
    images: EncodeImagesRequest
    tag: str
    def __init__(self, texts: _Optional[_Union[EncodeTextsRequest, _Mapping]] = ..., images: _Optional[_Union[EncodeImagesRequest, _Mapping]] = ..., tag: _Optional[str] = ...) -> None: ...

class EncodeResponse(_message.Message):
    __slots__ = ("count", "dim", "vectors", "model_id", "model_version", "tag")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    count: int
    dim: int
    vectors: bytes
    model_id: str
    model_version: str
    tag: str
    def __init__(self, count: _Optional[int] = ..., dim: _Optional[int] = ..., vectors: _Optional[bytes] = ..., model_id: _Optional[str] = ..., model_version: _Optional[str] = ..., tag: _Optional[str] = ...) -> None: ...

class GetModelInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
