from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Filter(_message.Message):
    __slots__ = ("gender", "master_category", "sub_category", "article_type", "base_colour", "season", "usage", "year_min", "year_max")
    GENDER_FIELD_NUMBER: _ClassVar[int]
    MASTER_CATEGORY_FIELD_NUMBER: _ClassVar[int]
    SUB_CATEGORY_FIELD_NUMBER: _ClassVar[int]
    ARTICLE_TYPE_FIELD_NUMBER: _ClassVar[int]
    BASE_COLOUR_FIELD_NUMBER: _ClassVar[int]
    SEASON_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    YEAR_MIN_FIELD_NUMBER: _ClassVar[int]
    YEAR_MAX_FIELD_NUMBER: _ClassVar[int]
    gender: _containers.RepeatedScalarFieldContainer[str]
    master_category: _containers.RepeatedScalarFieldContainer[str]
    sub_category: _containers.RepeatedScalarFieldContainer[str]
    article_type: _containers.RepeatedScalarFieldContainer[str]
    base_colour: _containers.RepeatedScalarFieldContainer[str]
    season: _containers.RepeatedScalarFieldContainer[str]
    usage: _containers.RepeatedScalarFieldContainer[str]
    year_min: int
    year_max: int
    def __init__(self, gender: _Optional[_Iterable[str]] = ..., master_category: _Optional[_Iterable[str]] = ..., sub_category: _Optional[_Iterable[str]] = ..., article_type: _Optional[_Iterable[str]] = ..., base_colour: _Optional[_Iterable[str]] = ..., season: _Optional[_Iterable[str]] = ..., usage: _Optional[_Iterable[str]] = ..., year_min: _Optional[int] = ..., year_max: _Optional[int] = ...) -> None: ...

class Product(_message.Message):
    __slots__ = ("id", "gender", "master_category", "sub_category", "article_type", "base_colour", "season", "year", "usage", "display_name", "image")
    ID_FIELD_NUMBER: _ClassVar[int]
    GENDER_FIELD_NUMBER: _ClassVar[int]
    MASTER_CATEGORY_FIELD_NUMBER: _ClassVar[int]
    SUB_CATEGORY_FIELD_NUMBER: _ClassVar[int]
    ARTICLE_TYPE_FIELD_NUMBER: _ClassVar[int]
    BASE_COLOUR_FIELD_NUMBER: _ClassVar[int]
    SEASON_FIELD_NUMBER: _ClassVar[int]
    YEAR_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    id: int
    gender: str
    master_category: str
    sub_category: str
    article_type: str
    base_colour: str
    season: str
    year: int
    usage: str
    display_name: str
    image: str
    def __init__(self, id: _Optional[int] = ..., gender: _Optional[str] = ..., master_category: _Optional[str] = ..., sub_category: _Optional[str] = ..., article_type: _Optional[str] = ..., base_colour: _Optional[str] = ..., season: _Optional[str] = ..., year: _Optional[int] = ..., usage: _Optional[str] = ..., display_name: _Optional[str] = ..., image: _Optional[str] = ...) -> None: ...

class Hit(_message.Message):
    __slots__ = ("id", "score", "product", "matched")
    ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    MATCHED_FIELD_NUMBER: _ClassVar[int]
    id: int
    score: float
    product: Product
    matched: str
    def __init__(self, id: _Optional[int] = ..., score: _Optional[float] = ..., product: _Optional[_Union[Product, _Mapping]] = ..., matched: _Optional[str] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("model_id", "version", "dim", "device", "logit_scale", "card_json")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    LOGIT_SCALE_FIELD_NUMBER: _ClassVar[int]
    CARD_JSON_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    version: str
    dim: int
    device: str
    logit_scale: float
    card_json: str
    def __init__(self, model_id: _Optional[str] = ..., version: _Optional[str] = ..., dim: _Optional[int] = ..., device: _Optional[str] = ..., logit_scale: _Optional[float] = ..., card_json: _Optional[str] = ...) -> None: ...
