"""What both gRPC servers share: thread pool, health, reflection, metrics, graceful shutdown."""

from __future__ import annotations

import errno
import logging
import signal
import socket
import threading
from collections.abc import Callable, Sequence
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from fashion_core.errors import UnavailableError
from services.channel import MAX_MESSAGE_BYTES, message_options
from services.metrics import serve_metrics

log = logging.getLogger(__name__)

# gRPC turns SO_REUSEPORT on by default: a second server on a taken port then binds it too, silently, and the
# kernel splits the connections between the two. Off, binding a taken port fails, and the server refuses to start.
SERVER_OPTIONS: list[tuple[str, int]] = [("grpc.so_reuseport", 0)]
IN_USE = "address already in use (another server listens on that port)"


def _bind_errors(address: str) -> list[OSError]:
    """What binding each address ``address`` (host:port) resolves to fails with, tried with plain sockets the way
    gRPC binds (SO_REUSEADDR, no SO_REUSEPORT) and released at once; [] when all of them bind."""
    host, _, port = address.rpartition(":")
    if not port.isdigit():
        return []  # not host:port (gRPC also takes unix: addresses): gRPC alone decides
    try:
        infos = socket.getaddrinfo(host.strip("[]") or None, int(port), type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except OSError as exc:  # socket.gaierror: a host this machine cannot resolve
        return [exc]
    errors = []
    for family, kind, proto, _, sockaddr in infos:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(sockaddr)
            except OSError as exc:
                errors.append(exc)
    return errors


def bind(server: grpc.Server, address: str) -> int:
    """Listen on ``address`` (host:port; port 0 = a free one) and return the port, or raise UnavailableError
    naming the address. With ``SERVER_OPTIONS`` gRPC refuses a taken port, but a host that resolves to several
    addresses (localhost: 127.0.0.1 and ::1) is bound when ANY of them binds, so a port taken on one of them is
    checked first. gRPC raises RuntimeError when nothing binds (older versions return port 0)."""
    if not address.endswith(":0") and any(exc.errno == errno.EADDRINUSE for exc in _bind_errors(address)):
        raise UnavailableError(f"cannot listen on {address}: {IN_USE}")
    try:
        port = server.add_insecure_port(address)
    except RuntimeError:
        port = 0
    if not port:
        errors = _bind_errors(address)
        in_use = any(exc.errno == errno.EADDRINUSE for exc in errors)
        why = IN_USE if in_use else (errors[0].strerror or str(errors[0])) if errors else "gRPC could not bind it"
        raise UnavailableError(f"cannot listen on {address}: {why}")
    return port


class GrpcServer:
    """A started gRPC server on ``address`` (port 0 = a free port; see ``.port``)."""

    def __init__(self, add_servicers: Callable[[grpc.Server], Sequence[str]], address: str,
                 max_workers: int = 32, metrics_port: int | None = None,
                 max_message_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers),
                                  options=[*message_options(max_message_bytes), *SERVER_OPTIONS])
        service_names = list(add_servicers(self.server))
        self.health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        for name in ["", *service_names]:
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        reflection.enable_server_reflection([*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME],
                                            self.server)
        host = address.rsplit(":", 1)[0]
        self.port = bind(self.server, address)
        self.address = f"{host}:{self.port}"
        serve_metrics(metrics_port, host)
        self.server.start()
        log.info("serving %s on %s", ", ".join(service_names), self.address)

    def stop(self, grace: float = 5.0) -> None:
        """Graceful: report NOT_SERVING, refuse new calls, let running ones finish within ``grace``."""
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()

    def wait_for_termination(self, grace: float = 5.0) -> None:
        """Block until SIGTERM/SIGINT, then stop gracefully."""
        stopping = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stopping.set())
        stopping.wait()
        log.info("shutting down (grace %.1fs)", grace)
        self.stop(grace)
