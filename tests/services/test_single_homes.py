"""Each shared decision in its one home: error -> gRPC / HTTP status, the gRPC message limits, ModelInfo and the
filter fields <-> proto. No servers of the services' conftest: these run in a second."""

from __future__ import annotations

import asyncio
import inspect

import grpc
import httpx
import pytest
from fashionsearch.v1 import common_pb2

import fashion_core.errors as errors
from fashion_core.catalog.schema import KEYWORD_FIELDS, KEYWORDS
from fashion_core.model.encoder import ModelInfo
from fashion_core.stores.filters import SearchFilter
from services import status
from services.gateway.port import ServingInfo

# What users see, pinned: the gRPC code and HTTP status of every project error.
EXPECTED = {
    errors.TooLargeError: (grpc.StatusCode.INVALID_ARGUMENT, 413),
    errors.InvalidInputError: (grpc.StatusCode.INVALID_ARGUMENT, 400),
    errors.ConfigError: (grpc.StatusCode.INVALID_ARGUMENT, 400),  # an InvalidInputError: a setting's value
    errors.NotFoundError: (grpc.StatusCode.NOT_FOUND, 404),
    errors.UnavailableError: (grpc.StatusCode.UNAVAILABLE, 503),
    errors.ResourceExhaustedError: (grpc.StatusCode.RESOURCE_EXHAUSTED, 429),
    errors.DeadlineExceededError: (grpc.StatusCode.DEADLINE_EXCEEDED, 500),
    errors.ModelMismatchError: (grpc.StatusCode.FAILED_PRECONDITION, 500),
    errors.FashionSearchError: (grpc.StatusCode.INTERNAL, 500),
}
PROJECT_ERRORS = [cls for _, cls in inspect.getmembers(errors, inspect.isclass)
                  if issubclass(cls, errors.FashionSearchError)]


def test_every_project_error_lives_in_errors_and_has_its_statuses() -> None:
    assert set(PROJECT_ERRORS) == set(EXPECTED)
    import fashion_core.search

    assert fashion_core.search.ModelMismatchError is errors.ModelMismatchError  # imported, not defined there
    for cls, (code, http) in EXPECTED.items():
        exc = cls("boom")
        assert (status.status_of(exc), status.http_status_of(exc)) == (code, http), cls
    assert (status.status_of(ValueError("x")), status.http_status_of(ValueError("x"))) == (
        grpc.StatusCode.INTERNAL, 500)


def test_the_table_has_no_shadowed_rows_and_clients_get_the_general_error_back() -> None:
    kinds = [kind for kind, _, _ in status.ERRORS]
    for i, kind in enumerate(kinds):
        assert not any(issubclass(kind, earlier) for earlier in kinds[:i]), f"{kind} is shadowed"
    for cls in PROJECT_ERRORS:
        code = status.status_of(cls("x"))
        if code == grpc.StatusCode.INTERNAL:
            continue
        assert isinstance(cls("x"), status.FROM_STATUS[code])  # the client's error is the same kind or a base
    assert status.FROM_STATUS[grpc.StatusCode.INVALID_ARGUMENT] is errors.InvalidInputError


class _Failed(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


@pytest.mark.parametrize(("code", "kind"), [
    (grpc.StatusCode.INVALID_ARGUMENT, errors.InvalidInputError),
    (grpc.StatusCode.NOT_FOUND, errors.NotFoundError),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, errors.ResourceExhaustedError),
    (grpc.StatusCode.FAILED_PRECONDITION, errors.ModelMismatchError),
    (grpc.StatusCode.UNAVAILABLE, errors.UnavailableError),
    (grpc.StatusCode.DEADLINE_EXCEEDED, errors.DeadlineExceededError),
    (grpc.StatusCode.INTERNAL, errors.FashionSearchError),
])
def test_a_failed_call_becomes_the_error_of_its_status(code, kind) -> None:
    with pytest.raises(kind) as raised:
        status.raise_for_rpc_error(_Failed(code, "went wrong"), "query service", "host:1")
    assert type(raised.value) is kind and "went wrong" in str(raised.value)


class _FailingPort:
    """A QueryPort whose meta answer fails with a given error."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def serving(self) -> ServingInfo:
        raise self.error

    def facets(self, index: str) -> dict[str, list[str]]:
        return {}


@pytest.mark.parametrize("cls", sorted(EXPECTED, key=lambda c: c.__name__))
def test_the_gateway_answers_each_error_with_the_tables_http_status(cls, tmp_path) -> None:
    from services.gateway.app import create_app

    async def get() -> httpx.Response:
        app = create_app(_FailingPort(cls("it failed")), catalog_roots=[tmp_path])
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as client:
            return await client.get("/api/meta")

    response = asyncio.run(get())
    assert response.status_code == EXPECTED[cls][1]
    assert response.json() == {"error": "it failed"}


def test_servers_and_clients_get_the_same_message_limits(monkeypatch) -> None:
    from services.channel import MAX_MESSAGE_BYTES, message_options
    from services.encoder_client import EncoderClient
    from services.query_client import QueryClient
    from services.server import GrpcServer

    seen: list[tuple[str, list[tuple[str, int]]]] = []
    real_server, real_channel = grpc.server, grpc.insecure_channel
    monkeypatch.setattr(grpc, "server", lambda pool, options: seen.append(("server", options))
                        or real_server(pool, options=options))
    monkeypatch.setattr(grpc, "insecure_channel", lambda address, options: seen.append(("channel", options))
                        or real_channel(address, options=options))
    server = GrpcServer(lambda s: [], "127.0.0.1:0")
    try:
        QueryClient(server.address).close()
        EncoderClient(server.address).close()
    finally:
        server.stop(0)
    assert [kind for kind, _ in seen] == ["server", "channel", "channel"]
    limits = {"grpc.max_send_message_length": MAX_MESSAGE_BYTES, "grpc.max_receive_message_length": MAX_MESSAGE_BYTES}
    assert dict(seen[0][1]) == {**limits, "grpc.so_reuseport": 0}  # a server never shares its port
    assert all(dict(options) == limits for _, options in seen[1:])
    assert MAX_MESSAGE_BYTES == 64 * 1024 * 1024
    assert dict(message_options(1000)) == {"grpc.max_send_message_length": 1000,
                                           "grpc.max_receive_message_length": 1000}


def test_model_info_round_trips_through_its_message() -> None:
    from services.convert import model_info_from_proto, model_info_to_proto

    info = ModelInfo(model_id="/models/x", version="abc123", dim=64, device="cpu", logit_scale=100.0,
                     card={"recipe": "tiny", "metrics": {"r@10": 0.5}})
    assert model_info_from_proto(model_info_to_proto(info)) == info
    assert model_info_from_proto(common_pb2.ModelInfo(model_id="m", version="v")).card == {}


def test_filter_fields_have_one_list_and_match_the_messages() -> None:
    from services.convert import FILTER_FIELDS, PRODUCT_FIELDS, filter_from_proto, filter_to_proto

    assert tuple(f.name for f in KEYWORDS) == KEYWORD_FIELDS
    assert list(FILTER_FIELDS.values()) == list(KEYWORD_FIELDS)
    assert set(FILTER_FIELDS) == set(common_pb2.Filter.DESCRIPTOR.fields_by_name) - {"year_min", "year_max"}
    assert set(PRODUCT_FIELDS) <= set(common_pb2.Product.DESCRIPTOR.fields_by_name)
    flt = SearchFilter.build(year_min=2010, **{name: [f"{name}-value"] for name in KEYWORD_FIELDS})
    assert filter_from_proto(filter_to_proto(flt)) == flt


def test_the_cli_filter_options_come_from_the_same_list() -> None:
    import argparse

    from fashion_cli.options import add_filter_options, filter_from

    parser = argparse.ArgumentParser()
    add_filter_options(parser)
    argv = [arg for f in KEYWORDS for arg in (f"--{f.flag}", f"{f.name}-value")]
    flt = filter_from(parser.parse_args(argv))
    assert dict(flt.equals) == {f.name: (f"{f.name}-value",) for f in KEYWORDS}
    assert parser.parse_args(["--colour", "Red"]).f_baseColour == "Red"
