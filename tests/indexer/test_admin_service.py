"""AdminService over a real gRPC channel (jobs in-process: no Redis needed)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import grpc
import pytest
from fashionsearch.v1 import admin_pb2, admin_pb2_grpc

from fashion_core.settings import Settings, load_settings
from fashion_core.stores.backends import open_index
from indexer.admin_service import start_admin_server
from tests.indexer.helpers import loadable_ids, wait_until


@contextmanager
def admin_stub(settings: Settings) -> Iterator[admin_pb2_grpc.AdminServiceStub]:
    """A real AdminService on a free port and a stub over a real channel to it; stopped afterwards."""
    server = start_admin_server(settings, "127.0.0.1:0")
    try:
        with grpc.insecure_channel(server.address) as channel:
            yield admin_pb2_grpc.AdminServiceStub(channel)
    finally:
        server.stop(0)


def _tiny(tiny_model_dir) -> Settings:
    return load_settings(model=str(tiny_model_dir), index_backend="faiss", device="cpu")


def _count(method: str, code: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("fashion_rpc_requests_total",
                                     {"service": "admin", "method": method, "code": code}) or 0.0


def _bad_requests(stub: admin_pb2_grpc.AdminServiceStub) -> grpc.RpcError:
    """An unknown job id is NOT_FOUND and a StartReindex without a catalog INVALID_ARGUMENT; returns the latter."""
    with pytest.raises(grpc.RpcError) as missing:
        stub.GetJob(admin_pb2.GetJobRequest(job_id="nope"), timeout=10)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as bad:
        stub.StartReindex(admin_pb2.StartReindexRequest(index="shop"), timeout=10)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    return bad.value


def test_admin_start_get_cancel_over_grpc(tiny_model_dir, synthetic_catalog):
    settings = _tiny(tiny_model_dir)
    with admin_stub(settings) as stub:
        job = stub.StartReindex(admin_pb2.StartReindexRequest(catalog_dir=str(synthetic_catalog), index="shop",
                                                              chunk_size=30), timeout=30)
        assert job.state == "running" and job.version.startswith("shop__v") and job.chunks_total == 5

        done = wait_until(lambda: (j := stub.GetJob(admin_pb2.GetJobRequest(job_id=job.job_id), timeout=10))
                          .state in {"succeeded", "failed"} and j, timeout_s=120)
        assert done.state == "succeeded", done.error
        expected = loadable_ids(synthetic_catalog)
        assert done.items_indexed == len(expected) == open_index(settings, "shop").count()
        assert any(f.reason.startswith("unreadable image") for f in done.failures)

        # Cancelling a finished job changes nothing; unknown ids and bad requests get proper codes.
        assert stub.CancelJob(admin_pb2.CancelJobRequest(job_id=job.job_id), timeout=10).state == "succeeded"
        _bad_requests(stub)


def test_admin_calls_are_counted_and_logged_like_the_other_services(caplog):
    """AdminService goes through services.rpc.rpc: a status per call in the RPC metrics and the access log."""
    before = {key: _count(*key) for key in (("GetJob", "NOT_FOUND"), ("StartReindex", "INVALID_ARGUMENT"))}
    with admin_stub(load_settings(index_backend="faiss", device="cpu")) as stub, \
            caplog.at_level("INFO", "services.access"):
        assert "catalog_dir is required" in _bad_requests(stub).details()
    assert {key: _count(*key) - value for key, value in before.items()} == {("GetJob", "NOT_FOUND"): 1.0,
                                                                          ("StartReindex", "INVALID_ARGUMENT"): 1.0}
    access = [(r.rpc, r.code) for r in caplog.records if r.name == "services.access"]
    assert access == [("GetJob", "NOT_FOUND"), ("StartReindex", "INVALID_ARGUMENT")]


def test_admin_serves_its_metrics_over_http():
    """`serve-admin --metrics-port` (the chart's scrape target): the admin RPCs' counts over a real HTTP GET."""
    import urllib.request

    from services.channel import free_ports

    (metrics_port,) = free_ports(1)
    server = start_admin_server(load_settings(index_backend="faiss", device="cpu"), "127.0.0.1:0", metrics_port)
    try:
        with grpc.insecure_channel(server.address) as channel, pytest.raises(grpc.RpcError):
            admin_pb2_grpc.AdminServiceStub(channel).GetJob(admin_pb2.GetJobRequest(job_id="nope"), timeout=10)
        page = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
        assert 'fashion_rpc_requests_total{code="NOT_FOUND",method="GetJob",service="admin"}' in page
    finally:
        server.stop(0)


def test_start_reindex_wait_replies_once_the_job_has_ended(tiny_model_dir, synthetic_catalog):
    """The proto: with wait=true StartReindex replies only when the job has finished, with its final state."""
    settings = _tiny(tiny_model_dir)
    with admin_stub(settings) as stub:
        job = stub.StartReindex(admin_pb2.StartReindexRequest(catalog_dir=str(synthetic_catalog), index="shop",
                                                              chunk_size=30, wait=True), timeout=120)
    assert job.state == "succeeded", job.error
    assert job.chunks_done == job.chunks_total == 5 and job.eta_s == 0.0
    assert job.items_indexed == len(loadable_ids(synthetic_catalog)) == open_index(settings, "shop").count()


def test_start_reindex_wait_past_the_deadline_is_deadline_exceeded_and_the_job_goes_on(tiny_model_dir,
                                                                                      synthetic_catalog):
    """A deadline shorter than the job: the call ends DEADLINE_EXCEEDED, answered by the server a second before
    the deadline so the caller reads which job to follow (rather than holding a thread to the job's end), and the
    job goes on to succeed."""
    from indexer.jobs import FileJobStore

    settings = _tiny(tiny_model_dir)
    before = _count("StartReindex", "DEADLINE_EXCEEDED")
    with admin_stub(settings) as stub:
        with pytest.raises(grpc.RpcError) as late:
            stub.StartReindex(admin_pb2.StartReindexRequest(catalog_dir=str(synthetic_catalog), index="shop",
                                                            chunk_size=1, wait=True), timeout=1.2)
        assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        # the server answered before the client's own timer, naming the job the caller can follow
        (job_id,) = [p.stem for p in (settings.home / "jobs").glob("*.json") if "." not in p.stem]
        assert f"job {job_id} is still" in late.value.details() and "GetJob" in late.value.details()
        wait_until(lambda: _count("StartReindex", "DEADLINE_EXCEEDED") == before + 1, timeout_s=5)
        assert FileJobStore(settings.home / "jobs").get(job_id).state == "running"
        done = wait_until(lambda: (j := stub.GetJob(admin_pb2.GetJobRequest(job_id=job_id), timeout=10))
                          .state in {"succeeded", "failed"} and j, timeout_s=120)
        assert isinstance(done, admin_pb2.Job) and done.state == "succeeded", done
        assert done.chunks_done == done.chunks_total > 100
