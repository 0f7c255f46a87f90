"""One server per port: a second gRPC server on a port another one listens on fails at start, naming the address,
instead of sharing the port (gRPC's default SO_REUSEPORT) and answering half of the first one's clients."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from fashionsearch.v1 import query_pb2, query_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from fashion_core.errors import UnavailableError
from fashion_core.settings import Settings
from services.query_service import SERVICE as QUERY_SERVICE
from services.server import GrpcServer


def _serving(address: str, service: str = "") -> bool:
    with grpc.insecure_channel(address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def test_a_second_server_on_a_taken_port_fails_and_the_first_keeps_every_client(query_server) -> None:
    port = query_server.address.rsplit(":", 1)[1]
    for address in (query_server.address, f"0.0.0.0:{port}", f"localhost:{port}"):
        with pytest.raises(UnavailableError, match=f"cannot listen on {address}: address already in use"):
            GrpcServer(lambda s: [], address)
    # every connection still reaches the query service (a port-sharing second server would answer some of them)
    for _ in range(20):
        assert _serving(query_server.address, QUERY_SERVICE)
        with grpc.insecure_channel(query_server.address) as channel:
            info = query_pb2_grpc.QueryServiceStub(channel).ListIndexes(query_pb2.ListIndexesRequest(), timeout=5)
        assert info.indexes[0].size == 143


def test_a_freed_port_can_be_served_again() -> None:
    first = GrpcServer(lambda s: [], "127.0.0.1:0")
    address = first.address
    first.stop(0)
    second = GrpcServer(lambda s: [], address)
    try:
        assert second.address == address and _serving(address)
    finally:
        second.stop(0)


def test_serve_query_on_a_taken_port_exits_with_a_clear_error(query_server, service_settings: Settings,
                                                              tmp_path: Path) -> None:
    """The reviewer's case: `serve-query` over an empty index on the port a running query service holds."""
    port = query_server.address.rsplit(":", 1)[1]
    env = {**os.environ, "FASHION_MODEL": str(service_settings.model), "FASHION_HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "fashion_cli.main", "serve-query", "--host", "127.0.0.1",
                             "--port", port, "--index-dir", str(tmp_path / "emptyidx"), "--backend", "faiss"],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert f"error: cannot listen on 127.0.0.1:{port}: address already in use" in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr
    assert _serving(query_server.address, QUERY_SERVICE)
