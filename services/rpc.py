"""One decorator for every unary servicer method: error -> status, metrics and a structured access log."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import TypeVar

import grpc

from fashion_core.errors import FashionSearchError
from services.metrics import LATENCY, REQUESTS
from services.status import status_of

log = logging.getLogger("services.access")
S = TypeVar("S")  # the servicer
Req = TypeVar("Req")  # the request message
Rep = TypeVar("Rep")  # the reply message


def record(service: str, method: str, code: grpc.StatusCode, seconds: float, context: grpc.ServicerContext,
           error: str = "") -> None:
    LATENCY.labels(service, method).observe(seconds)
    REQUESTS.labels(service, method, code.name).inc()
    fields = {"service": service, "rpc": method, "code": code.name, "ms": round(seconds * 1000, 2),
              "peer": context.peer()}
    if code == grpc.StatusCode.OK:
        log.info("%s.%s ok", service, method, extra=fields)
    else:
        log.warning("%s.%s %s: %s", service, method, code.name, error, extra=fields)


def rpc(service: str) -> Callable[[Callable[[S, Req, grpc.ServicerContext], Rep]],
                                  Callable[[S, Req, grpc.ServicerContext], Rep]]:
    """Wrap a unary gRPC method of ``service``: project errors abort with their status code and message;
    anything else is a bug, logged whole and answered INTERNAL without details."""

    def decorate(method: Callable[[S, Req, grpc.ServicerContext], Rep]) -> Callable[[S, Req, grpc.ServicerContext],
                                                                                     Rep]:
        name = method.__name__

        @functools.wraps(method)
        def wrapper(self: S, request: Req, context: grpc.ServicerContext) -> Rep:
            start = time.perf_counter()
            try:
                reply = method(self, request, context)
            except FashionSearchError as exc:
                code, message = status_of(exc), str(exc)
            except Exception as exc:
                log.exception("%s.%s failed", service, name)
                code, message = grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}"
            else:
                record(service, name, grpc.StatusCode.OK, time.perf_counter() - start, context)
                return reply
            record(service, name, code, time.perf_counter() - start, context, message)
            context.abort(code, message)

        return wrapper

    return decorate
