"""`fashion-search serve-admin` as a real process stopped by SIGTERM while an in-process job runs: the job stops at
a chunk boundary, is left failed and resumable (not "running" forever), the process exits cleanly (no native
abort), and `fashion-search resume` finishes the job."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import grpc
from fashionsearch.v1 import admin_pb2, admin_pb2_grpc

from deploy.local.stack import grpc_serving
from fashion_core.settings import load_settings
from fashion_core.stores.backends import open_index
from indexer.admin_service import SERVICE_NAME
from indexer.jobs import FileJobStore
from services.channel import free_ports
from tests.indexer.helpers import ROOT, loadable_ids, wait_until, worker_env
from training.synthetic_catalog import generate_catalog


def test_sigterm_stops_an_in_process_job_resumably_and_resume_finishes_it(tiny_model_dir: Path,
                                                                          tmp_path: Path) -> None:
    catalog = generate_catalog(tmp_path / "catalog", n=240, seed=3)
    home, index_dir = tmp_path / "home", tmp_path / "index"
    env = worker_env("", tiny_model_dir, index_dir, home)
    del env["FASHION_REDIS_URL"]  # jobs in-process
    (port,) = free_ports(1)
    address = f"127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "fashion_cli.main", "serve-admin", "--address", address],
                              env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    jobs = FileJobStore(home / "jobs")
    try:
        wait_until(lambda: server.poll() is not None or grpc_serving(address, SERVICE_NAME)(), timeout_s=60)
        assert server.poll() is None
        with grpc.insecure_channel(address) as channel:
            stub = admin_pb2_grpc.AdminServiceStub(channel)
            waiting = stub.StartReindex.future(admin_pb2.StartReindexRequest(
                catalog_dir=str(catalog), index="shop", chunk_size=2, wait=True), timeout=120)
            job_id = str(wait_until(lambda: [p.stem for p in (home / "jobs").glob("*.json") if "." not in p.stem],
                                    timeout_s=30)[0])  # type: ignore[index]
            wait_until(lambda: jobs.get(job_id).chunks_done >= 3, timeout_s=60)
            server.send_signal(signal.SIGTERM)
            reply = waiting.result(timeout=60)  # the waiting call answers the state the job was left in
        out, _ = server.communicate(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
    assert server.returncode == 0, out
    assert "terminate called" not in out and "Traceback" not in out, out
    status = jobs.get(job_id)
    assert status.state == "failed" and status.resumable, status
    assert f"`fashion-search resume {job_id}` continues it" in status.error
    assert 3 <= status.chunks_done < status.spec.chunks_total == 120
    assert (reply.state, reply.error) == ("failed", status.error)
    assert Path(status.spec.staging_dir).is_dir()  # the completed chunks' shards, kept for the resume

    resumed = subprocess.run([sys.executable, "-m", "fashion_cli.main", "resume", job_id], env=env, cwd=ROOT,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    status = jobs.get(job_id)
    assert status.state == "succeeded", status.error
    assert status.chunks_done == 120 and status.items_indexed == len(loadable_ids(catalog)) == 240
    assert not Path(status.spec.staging_dir).exists()
    settings = load_settings(model=str(tiny_model_dir), index_backend="faiss", index_dir=str(index_dir),
                             home=str(home), device="cpu")
    assert open_index(settings, "shop").count() == 240
