from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StartReindexRequest(_message.Message):
    __slots__ = ("catalog_dir", "index", "chunk_size", "wait")
    CATALOG_DIR_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    CHUNK_SIZE_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    catalog_dir: str
    index: str
    chunk_size: int
    wait: bool
    def __init__(self, catalog_dir: _Optional[str] = ..., index: _Optional[str] = ..., chunk_size: _Optional[int] = ..., wait: _Optional[bool] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class CancelJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class FailedItem(_message.Message):
    __slots__ = ("product_id", "reason")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    reason: str
    def __init__(self, product_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("job_id", "state", "index", "version", "chunks_total", "chunks_done", "chunks_failed", "items_indexed", "items_skipped", "rate_per_s", "eta_s", "failures", "error")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_DONE_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FAILED_FIELD_NUMBER: _ClassVar[int]
    ITEMS_INDEXED_FIELD_NUMBER: _ClassVar[int]
    ITEMS_SKIPPED_FIELD_NUMBER: _ClassVar[int]
    RATE_PER_S_FIELD_NUMBER: _ClassVar[int]
    ETA_S_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    state: str
    index: str
    version: str
    chunks_total: int
    chunks_done: int
    chunks_failed: int
    items_indexed: int
    items_skipped: int
    rate_per_s: float
    eta_s: float
    failures: _containers.RepeatedCompositeFieldContainer[FailedItem]
    error: str
    def __init__(self, job_id: _Optional[str] = ..., state: _Optional[str] = ..., index: _Optional[str] = ..., version: _Optional[str] = ..., chunks_total: _Optional[int] = ..., chunks_done: _Optional[int] = ..., chunks_failed: _Optional[int] = ..., items_indexed: _Optional[int] = ..., items_skipped: _Optional[int] = ..., rate_per_s: _Optional[float] = ..., eta_s: _Optional[float] = ..., failures: _Optional[_Iterable[_Union[FailedItem, _Mapping]]] = ..., error: _Optional[str] = ...) -> None: ...
