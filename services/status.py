"""Project errors -> gRPC status codes and HTTP statuses: one table for the servers, their clients and the web
gateway."""

from __future__ import annotations

from typing import NoReturn

import grpc

from fashion_core.errors import (
    DeadlineExceededError,
    FashionSearchError,
    InvalidInputError,
    ModelMismatchError,
    NotFoundError,
    ResourceExhaustedError,
    TooLargeError,
    UnavailableError,
)

# Project error -> (gRPC status, HTTP status). First match wins, so a subclass comes before its base; anything
# else is INTERNAL / 500. The gateway never had a status of its own for a passed deadline or a model mismatch:
# both stay 500 there.
ERRORS: tuple[tuple[type[FashionSearchError], grpc.StatusCode, int], ...] = (
    (TooLargeError, grpc.StatusCode.INVALID_ARGUMENT, 413),  # never fits, so never retried: INVALID_ARGUMENT
    (InvalidInputError, grpc.StatusCode.INVALID_ARGUMENT, 400),
    (NotFoundError, grpc.StatusCode.NOT_FOUND, 404),
    (UnavailableError, grpc.StatusCode.UNAVAILABLE, 503),
    (ResourceExhaustedError, grpc.StatusCode.RESOURCE_EXHAUSTED, 429),
    (DeadlineExceededError, grpc.StatusCode.DEADLINE_EXCEEDED, 500),
    (ModelMismatchError, grpc.StatusCode.FAILED_PRECONDITION, 500),
)
# Client side: a status code -> the most general error mapped to it (bases come later in ERRORS, so they win).
FROM_STATUS: dict[grpc.StatusCode, type[FashionSearchError]] = {code: kind for kind, code, _ in ERRORS}


def _entry(exc: Exception) -> tuple[grpc.StatusCode, int]:
    return next(((code, http) for kind, code, http in ERRORS if isinstance(exc, kind)),
                (grpc.StatusCode.INTERNAL, 500))


def status_of(exc: Exception) -> grpc.StatusCode:
    """The gRPC status a server answers ``exc`` with."""
    return _entry(exc)[0]


def http_status_of(exc: Exception) -> int:
    """The HTTP status the web gateway answers ``exc`` with."""
    return _entry(exc)[1]


def raise_for_rpc_error(exc: grpc.RpcError, service: str, address: str) -> NoReturn:
    """Client side: turn a failed call into the project error for its status, naming the dependency."""
    code = exc.code()
    details = exc.details() or code.name
    if code == grpc.StatusCode.UNAVAILABLE:
        raise UnavailableError(f"{service} at {address} is unavailable: {details}") from exc
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        raise DeadlineExceededError(f"{service} at {address}: deadline exceeded ({details})") from exc
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in details:
        # gRPC's own message-size limit (either side): the same request never fits, so it is no "retry later"
        raise TooLargeError(f"{service} at {address}: {details}") from exc
    raise FROM_STATUS.get(code, FashionSearchError)(details) from exc
