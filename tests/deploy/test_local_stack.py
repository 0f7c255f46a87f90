"""`fashion-search local-stack` end to end: encoder, query service, a Celery worker and the admin service as real
processes on loopback with Redis; a catalog indexed through the worker, then queried over gRPC."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from fashionsearch.v1 import admin_pb2, admin_pb2_grpc

from deploy.local.stack import LocalStack, StackConfig, grpc_serving
from fashion_core.catalog.reader import read_catalog
from fashion_core.errors import InvalidInputError
from fashion_core.stores.filters import SearchFilter
from services.query_client import QueryClient
from tests.indexer.helpers import loadable_ids, wait_until, worker_env
from training.synthetic_catalog import generate_catalog

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def _group_gone(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_local_stack_indexes_through_the_worker_and_serves_queries(tiny_model_dir: Path, tmp_path: Path,
                                                                   redis_url: str) -> None:
    started = time.monotonic()
    catalog = generate_catalog(tmp_path / "catalog", n=60, seed=5)
    products = {p.id: p for p in read_catalog(catalog).products}
    assert set(products) == loadable_ids(catalog) and len(products) == 60

    env = worker_env(redis_url, tiny_model_dir, Path(os.environ["FASHION_INDEX_DIR"]),
                     Path(os.environ["FASHION_HOME"]))
    config = StackConfig(redis_url=redis_url, encoder_port=0, query_port=0, admin_port=0,
                         log_dir=tmp_path / "logs", ready_timeout_s=90)
    stack = LocalStack(config, env)
    try:
        parts = {part.name: part for part in stack.start()}
        assert list(parts) == ["encoder", "query", "worker", "admin"]

        # Re-index through the admin service: it plans the job, the Celery worker embeds (with the encoder
        # service) and finalizes it, then the serving name switches to the new version.
        with grpc.insecure_channel(parts["admin"].address) as channel:
            admin = admin_pb2_grpc.AdminServiceStub(channel)
            job = admin.StartReindex(admin_pb2.StartReindexRequest(catalog_dir=str(catalog), index="products",
                                                                   chunk_size=16), timeout=30)
            assert job.chunks_total == 4
            done = wait_until(lambda: (j := admin.GetJob(admin_pb2.GetJobRequest(job_id=job.job_id), timeout=10))
                              .state in {"succeeded", "failed", "cancelled"} and j, timeout_s=60)
        assert done.state == "succeeded", done.error
        assert done.items_indexed == 60 and done.items_skipped == 0
        worker_log = parts["worker"].log_path.read_text()
        assert worker_log.count("Task indexer.run_chunk[") >= 4 and "Task indexer.finalize[" in worker_log

        client = QueryClient(parts["query"].address, timeout_s=30)
        try:
            (index,) = [i for i in client.list_indexes() if i.name == "products"]
            assert (index.size, index.backend, index.is_default) == (60, "faiss", True)
            (model,) = client.list_models()
            assert index.model_version == model.version  # built and served by the same encoder service

            for pid in sorted(products)[::20]:
                hits = client.search_image((catalog / "images" / f"{pid}.jpg").read_bytes(), 5)
                assert hits[0].id == pid and hits[0].score == pytest.approx(1.0, abs=1e-3)

            # Filters never leak: k covers the whole catalog, so the hits are exactly the matching products.
            women = {pid for pid, p in products.items() if p.gender == "Women"}
            hits = client.search_text("a dress", 60, SearchFilter.build(gender="Women"))
            assert {h.id for h in hits} == women and 0 < len(women) < 60
            probe = products[min(products)]
            other = sorted({p.articleType for p in products.values()} - {probe.articleType})[:2]
            hits = client.search_image((catalog / "images" / f"{probe.id}.jpg").read_bytes(), 10,
                                       SearchFilter.build(articleType=",".join(other)))
            assert hits and probe.id not in {h.id for h in hits}
            assert {h.payload["articleType"] for h in hits} <= set(other)
        finally:
            client.channel.close()
    finally:
        stack.stop()

    for part in parts.values():  # every process and its whole group is gone
        assert part.proc.returncode is not None and _group_gone(part.proc.pid), part.name
    # The gRPC services stopped gracefully on SIGTERM rather than being killed.
    assert [parts[name].proc.returncode for name in ("encoder", "query", "admin")] == [0, 0, 0]
    assert time.monotonic() - started < 60


def test_readiness_asks_for_the_part_by_name_and_ports_are_distinct(tmp_path: Path) -> None:
    """A part is ready when ITS service answers SERVING: another server on the port (the stack's own encoder, when
    two free ports coincided) is not taken for it; and the free ports chosen for one stack are distinct."""
    from fashion_core.settings import load_settings
    from indexer.admin_service import SERVICE_NAME, start_admin_server
    from services.channel import free_ports
    from services.query_service import SERVICE as QUERY_SERVICE

    ports = free_ports(64)
    assert len(set(ports)) == 64
    server = start_admin_server(load_settings(index_backend="faiss", home=str(tmp_path)), "127.0.0.1:0")
    try:
        assert grpc_serving(server.address, SERVICE_NAME)() and grpc_serving(server.address)()
        assert not grpc_serving(server.address, QUERY_SERVICE)()  # the admin service is not a query service
    finally:
        server.stop(0)
    assert not grpc_serving(server.address, SERVICE_NAME)()  # nobody there any more


def test_local_stack_refuses_embedded_qdrant(tmp_path: Path) -> None:
    env = {"FASHION_INDEX_BACKEND": "qdrant", "FASHION_HOME": str(tmp_path)}
    with pytest.raises(InvalidInputError, match="embedded Qdrant allows one process"):
        LocalStack(StackConfig(), env)


# SIGINT: Ctrl-C; SIGHUP: the terminal closed or the ssh session dropped; SIGQUIT: Ctrl-\\. The children run in
# their own sessions, so none of these reaches them: the command must stop them.
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGHUP, signal.SIGQUIT], ids=lambda sig: sig.name)
def test_local_stack_command_prints_addresses_and_stops_everything_on_a_stop_signal(
        tiny_model_dir: Path, tmp_path: Path, redis_url: str, sig: signal.Signals) -> None:
    env = worker_env(redis_url, tiny_model_dir, tmp_path / "index", tmp_path / "home")
    cmd = [sys.executable, "-m", "fashion_cli.main", "local-stack", "--redis-url", redis_url, "--no-admin",
           "--encoder-port", "0", "--query-port", "0", "--ready-timeout", "60"]
    stack = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    out, parts = "", {}
    try:
        for line in stack.stdout:  # type: ignore[union-attr]
            lines.append(line)
            if "fashion-search query text" in line:
                break
        out = "".join(lines)
        parts = {m[0]: (m[1], int(m[2])) for m in re.findall(r"│ (encoder|query|worker)\s*│ (\S+)\s*│ (\d+)", out)}
        assert set(parts) == {"encoder", "query", "worker"}, out
        query = parts["query"][0]
        assert f"FASHION_QUERY_ADDRESS={query}" in out and f"FASHION_REDIS_URL={redis_url}" in out
        assert f"FASHION_INDEX_DIR={tmp_path / 'index'}" in out and "FASHION_INDEX_BACKEND=faiss" in out
        assert grpc_serving(query)()
    finally:
        stack.send_signal(sig)
        rest, _ = stack.communicate(timeout=60)
    try:
        assert stack.returncode == 0, out + rest
        assert "stopping the local stack" in rest
        assert all(_group_gone(pid) for _, pid in parts.values())
    finally:  # nothing outlives a failed test
        for _, pid in parts.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
