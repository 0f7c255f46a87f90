"""Project errors <-> gRPC status codes, mapped in one place for servers and clients."""

from __future__ import annotations

import grpc

from fashion_core.errors import (
    DeadlineExceededError,
    FashionSearchError,
    InvalidInputError,
    NotFoundError,
    ResourceExhaustedError,
    TooLargeError,
    UnavailableError,
)

TO_STATUS: tuple[tuple[type[Exception], grpc.StatusCode], ...] = (
    (InvalidInputError, grpc.StatusCode.INVALID_ARGUMENT),
    (NotFoundError, grpc.StatusCode.NOT_FOUND),
    (UnavailableError, grpc.StatusCode.UNAVAILABLE),
    (ResourceExhaustedError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (DeadlineExceededError, grpc.StatusCode.DEADLINE_EXCEEDED),
)
FROM_STATUS: dict[grpc.StatusCode, type[FashionSearchError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidInputError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
}
# ModelMismatchError <-> FAILED_PRECONDITION is mapped in the functions: fashion_core.search imports the
# search stack (numpy, the stores' interface, fusion), which a client (the web gateway) need not pay for at
# import time.


def status_of(exc: Exception) -> grpc.StatusCode:
    from fashion_core.search import ModelMismatchError

    if isinstance(exc, ModelMismatchError):
        return grpc.StatusCode.FAILED_PRECONDITION
    return next((code for kind, code in TO_STATUS if isinstance(exc, kind)), grpc.StatusCode.INTERNAL)


def raise_for_rpc_error(exc: grpc.RpcError, service: str, address: str) -> None:
    """Client side: turn a failed call into the project error for its status, naming the dependency."""
    code = exc.code()  # type: ignore[attr-defined]
    details = exc.details() or code.name  # type: ignore[attr-defined]
    if code == grpc.StatusCode.UNAVAILABLE:
        raise UnavailableError(f"{service} at {address} is unavailable: {details}") from exc
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        raise DeadlineExceededError(f"{service} at {address}: deadline exceeded ({details})") from exc
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in details:
        # gRPC's own message-size limit (either side): the same request never fits, so it is no "retry later"
        raise TooLargeError(f"{service} at {address}: {details}") from exc
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        from fashion_core.search import ModelMismatchError

        raise ModelMismatchError(details) from exc
    raise FROM_STATUS.get(code, FashionSearchError)(details) from exc
