"""Conversions between protobuf messages and the core's types (filters, products, model info, search modes)."""

from __future__ import annotations

import json
import re
from typing import Any

from fashionsearch.v1 import common_pb2, query_pb2

from fashion_core.catalog.schema import KEYWORD_FIELDS, year_problem
from fashion_core.errors import InvalidInputError
from fashion_core.model.base import ModelInfo
from fashion_core.stores.filters import SearchFilter


def proto_field(catalog_field: str) -> str:
    """The Filter and Product message field of a keyword field: its name in snake_case (baseColour ->
    base_colour)."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", catalog_field).lower()


# proto field -> catalog field
FILTER_FIELDS = {proto_field(name): name for name in KEYWORD_FIELDS}
PRODUCT_FIELDS = {**FILTER_FIELDS, "display_name": "productDisplayName", "image": "image"}


def filter_from_proto(msg: common_pb2.Filter) -> SearchFilter:
    values = {catalog: list(getattr(msg, proto)) for proto, catalog in FILTER_FIELDS.items()}
    return SearchFilter.build(year_min=msg.year_min if msg.HasField("year_min") else None,
                              year_max=msg.year_max if msg.HasField("year_max") else None, **values)


def filter_to_proto(flt: SearchFilter | None) -> common_pb2.Filter:
    msg = common_pb2.Filter()
    if flt is None:
        return msg
    for proto, catalog in FILTER_FIELDS.items():
        getattr(msg, proto).extend(flt.equals.get(catalog, ()))
    if flt.year_min is not None:
        msg.year_min = flt.year_min
    if flt.year_max is not None:
        msg.year_max = flt.year_max
    return msg


def product_to_proto(product_id: int, payload: dict[str, Any]) -> common_pb2.Product:
    msg = common_pb2.Product(id=product_id)
    for proto, catalog in PRODUCT_FIELDS.items():  # the string fields
        setattr(msg, proto, str(payload.get(catalog) or ""))
    year = payload.get("year")
    if year is not None and year_problem(year) is None:  # an out-of-range year (old index) is left unset
        msg.year = int(year)
    return msg


def product_from_proto(msg: common_pb2.Product) -> dict[str, Any]:
    payload: dict[str, Any] = {"id": msg.id, **{catalog: getattr(msg, proto)
                                                for proto, catalog in PRODUCT_FIELDS.items()}}
    payload["year"] = msg.year if msg.HasField("year") else None
    return payload


def model_info_to_proto(info: ModelInfo) -> common_pb2.ModelInfo:
    return common_pb2.ModelInfo(model_id=info.model_id, version=info.version, dim=info.dim, device=info.device,
                                logit_scale=info.logit_scale, card_json=json.dumps(info.card))


def model_info_from_proto(msg: common_pb2.ModelInfo) -> ModelInfo:
    return ModelInfo(model_id=msg.model_id, version=msg.version, dim=msg.dim, device=msg.device,
                     logit_scale=msg.logit_scale, card=json.loads(msg.card_json or "{}"))


# SearchMode enum value <-> the core's mode name ("" = the server's default)
MODES = {query_pb2.SEARCH_MODE_UNSPECIFIED: "", query_pb2.SEARCH_MODE_DENSE: "dense",
         query_pb2.SEARCH_MODE_LEXICAL: "lexical", query_pb2.SEARCH_MODE_HYBRID: "hybrid"}


def mode_from_proto(value: query_pb2.SearchMode) -> str:
    """The mode name of a SearchMode value; raises InvalidInputError for a value this server does not know."""
    if value not in MODES:
        raise InvalidInputError(f"unknown search mode {value}")
    return MODES[value]


def mode_to_proto(mode: str | None) -> query_pb2.SearchMode:
    """The SearchMode value of a mode name (None or "" = unspecified); raises InvalidInputError for another."""
    for value, name in MODES.items():
        if name == (mode or ""):
            return value
    raise InvalidInputError(f"unknown search mode {mode!r}: dense, lexical or hybrid")
