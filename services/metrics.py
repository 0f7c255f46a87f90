"""Prometheus metrics of both services (request counts, latencies, batch sizes, queue depth)."""

from __future__ import annotations

import logging

from prometheus_client import Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

REQUESTS = Counter("fashion_rpc_requests_total", "RPCs handled", ["service", "method", "code"])
LATENCY = Histogram("fashion_rpc_latency_seconds", "RPC latency", ["service", "method"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
BATCH_SIZE = Histogram("fashion_encoder_batch_size", "items per model batch", ["modality"],
                       buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))
QUEUE_DEPTH = Gauge("fashion_encoder_queue_depth", "requests waiting for a model batch", ["modality"])


def serve_metrics(port: int | None, host: str = "127.0.0.1") -> None:
    """/metrics over HTTP on ``host``:``port`` (none without a port): the host its gRPC server listens on, so a
    loopback service keeps its metrics on loopback too, and one on 0.0.0.0 (a container) is scraped from outside."""
    if port:
        start_http_server(port, addr=host.strip("[]"))
        log.info("prometheus metrics on %s:%d/metrics", host, port)
