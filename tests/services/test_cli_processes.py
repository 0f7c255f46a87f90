"""`fashion-search serve-query` as a real process: CLI client, Prometheus metrics, JSON logs, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from fashion_core.settings import Settings
from services.channel import free_ports


def _wait_serving(address: str, process: subprocess.Popen, timeout: float = 60) -> None:
    channel = grpc.insecure_channel(address)
    stub = health_pb2_grpc.HealthStub(channel)
    end = time.monotonic() + timeout
    try:
        while time.monotonic() < end:
            assert process.poll() is None, process.stderr.read() if process.stderr else "server exited"
            try:
                if stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == \
                        health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                time.sleep(0.2)
        raise AssertionError(f"{address} not serving after {timeout}s")
    finally:
        channel.close()


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    """The client side in-process (a fresh interpreter per command would spend seconds importing torch)."""
    from fashion_cli.main import main

    capsys.readouterr()
    rc = main(list(args))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_serve_query_process_answers_cli_exposes_metrics_and_stops_on_sigterm(service_settings: Settings, capsys,
                                                                                monkeypatch) -> None:
    port, metrics_port = free_ports(2)
    env = {**os.environ, "FASHION_MODEL": str(service_settings.model), "FASHION_INDEX_BACKEND": "faiss",
           "FASHION_INDEX_DIR": str(service_settings.index_dir), "FASHION_HOME": str(service_settings.home),
           "FASHION_QUERY_ADDRESS": f"127.0.0.1:{port}"}
    server = subprocess.Popen([sys.executable, "-m", "fashion_cli.main", "serve-query", "--host", "127.0.0.1",
                               "--port", str(port), "--metrics-port", str(metrics_port)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    monkeypatch.setenv("FASHION_QUERY_ADDRESS", f"127.0.0.1:{port}")
    try:
        _wait_serving(f"127.0.0.1:{port}", server)
        rc, out, err = _cli(capsys, "query", "text", "red dress", "-k", "3", "--gender", "Women", "--json")
        assert rc == 0, err
        hits = json.loads(out)
        assert len(hits) == 3 and all(h["gender"] == "Women" for h in hits)
        rc, out, err = _cli(capsys, "query", "text", "red dress", "-k", "3", "--colour", "Plaid")
        assert rc == 2 and "unknown baseColour value 'Plaid'" in err
        rc, out, _ = _cli(capsys, "query", "info", "--json")
        assert json.loads(out)["indexes"][0]["size"] == 143

        metrics = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
        assert 'fashion_rpc_requests_total{code="OK",method="SearchText",service="query"} 1.0' in metrics
        assert 'fashion_rpc_requests_total{code="INVALID_ARGUMENT",method="SearchText",service="query"} 1.0' \
            in metrics
        assert 'fashion_rpc_latency_seconds_count{method="SearchText",service="query"} 2.0' in metrics
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            _, stderr = server.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            raise
    assert server.returncode == 0, stderr
    logs = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    access = [r for r in logs if r["logger"] == "services.access"]
    assert {(r["rpc"], r["code"]) for r in access} >= {("SearchText", "OK"), ("SearchText", "INVALID_ARGUMENT")}
    assert all({"ts", "level", "ms", "peer"} <= r.keys() for r in access)
    assert any("shutting down" in r["msg"] for r in logs)
