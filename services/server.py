"""What both gRPC servers share: thread pool, health, reflection, metrics, graceful shutdown."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Sequence
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from services.channel import MAX_MESSAGE_BYTES, message_options
from services.metrics import serve_metrics

log = logging.getLogger(__name__)


class GrpcServer:
    """A started gRPC server on ``address`` (port 0 = a free port; see ``.port``)."""

    def __init__(self, add_servicers: Callable[[grpc.Server], Sequence[str]], address: str,
                 max_workers: int = 32, metrics_port: int | None = None,
                 max_message_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers),
                                  options=message_options(max_message_bytes))
        service_names = list(add_servicers(self.server))
        self.health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        for name in ["", *service_names]:
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        reflection.enable_server_reflection([*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME],
                                            self.server)
        host = address.rsplit(":", 1)[0]
        self.port = self.server.add_insecure_port(address)
        self.address = f"{host}:{self.port}"
        serve_metrics(metrics_port)
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
