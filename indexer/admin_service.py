"""gRPC AdminService: start a full re-index, read a job, cancel it (``fashion-search serve-admin``).

Jobs go to the Celery workers when Redis is configured; otherwise they run in a thread of this server.

``StartReindex(wait=true)`` replies once the job has ended, with its final state. Should the call's deadline pass
first, it ends DEADLINE_EXCEEDED and the job goes on (GetJob follows it); a call the client cancels stops
waiting at once. On SIGTERM/SIGINT the server refuses new jobs, stops its in-process jobs at their next chunk
boundary (each is left failed and resumable: ``fashion-search resume JOB`` continues it), waits for them up to
``JOB_GRACE_S``, then stops gracefully; a waiting StartReindex answers the job's state as it was left.
"""

from __future__ import annotations

import logging
import os
import threading
import time

import grpc
from fashionsearch.v1 import admin_pb2, admin_pb2_grpc

from fashion_core.errors import DeadlineExceededError, InvalidInputError, UnavailableError
from fashion_core.settings import Settings
from indexer.distributors import InProcessDistributor, cancel_job, get_job, open_store, start_job
from indexer.jobs import TERMINAL_STATES, JobStatus
from services.rpc import rpc
from services.server import GrpcServer

log = logging.getLogger(__name__)
SERVICE_NAME = admin_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name
JOB_GRACE_S = 30.0  # how long a shutdown waits for in-process jobs to reach a chunk boundary
WAIT_POLL_S = 0.2  # how often StartReindex(wait=true) reads the job
# StartReindex(wait=true) answers this long before the call's deadline when the job is still running, so the
# client reads the server's DEADLINE_EXCEEDED with the job id (its own timer would say only "Deadline Exceeded").
WAIT_REPLY_MARGIN_S = 1.0


def job_message(status: JobStatus, max_failures: int = 1000) -> admin_pb2.Job:
    spec = status.spec
    return admin_pb2.Job(
        job_id=spec.job_id, state=status.state, index=spec.index, version=spec.version,
        chunks_total=spec.chunks_total, chunks_done=status.chunks_done, chunks_failed=status.chunks_failed,
        items_indexed=status.items_indexed, items_skipped=status.items_skipped, rate_per_s=status.rate_per_s,
        eta_s=status.eta_s, error=status.error,
        failures=[admin_pb2.FailedItem(product_id=f.product_id, reason=f.reason)
                  for f in status.failures[:max_failures]])


class AdminServicer(admin_pb2_grpc.AdminServiceServicer):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = open_store(settings)  # one store, so in-process jobs and GetJob see the same state
        self._starts = threading.Condition()
        self._starting = 0  # StartReindex calls between the closing check and their job's submission
        self._closing = False
        self._closed = threading.Event()  # jobs stopped: waiting calls answer the state as it is

    @rpc("admin")
    def StartReindex(self, request: admin_pb2.StartReindexRequest,  # noqa: N802 - gRPC method name
                     context: grpc.ServicerContext) -> admin_pb2.Job:
        if not request.catalog_dir:
            raise InvalidInputError("catalog_dir is required")
        if request.chunk_size < 0:
            raise InvalidInputError(f"chunk_size must be positive, got {request.chunk_size}")
        with self._starts:
            if self._closing:
                raise UnavailableError("the admin service is shutting down: no new jobs")
            self._starting += 1
        try:
            spec = start_job(self.settings, request.catalog_dir, request.index or self.settings.index_name,
                             chunk_size=request.chunk_size or None, background=True, store=self.store)
        finally:
            with self._starts:
                self._starting -= 1
                self._starts.notify_all()
        if request.wait:
            return job_message(self._wait(spec.job_id, context))
        return job_message(get_job(self.settings, spec.job_id, self.store))

    def _wait(self, job_id: str, context: grpc.ServicerContext) -> JobStatus:
        """The job once it has ended. DeadlineExceededError, naming the job, when the call's deadline comes first
        (raised WAIT_REPLY_MARGIN_S before it, so the client reads it); the status as
        it is when the client cancelled the call (nobody reads the reply) or this server has stopped its jobs."""
        while True:
            status = get_job(self.settings, job_id, self.store)
            if status.state in TERMINAL_STATES or self._closed.is_set():
                return status
            remaining = context.time_remaining()
            if remaining is not None and remaining <= WAIT_REPLY_MARGIN_S:
                raise DeadlineExceededError(f"job {job_id} is still {status.state} "
                                            f"({status.chunks_complete} of {status.spec.chunks_total} chunks) at "
                                            "the call's deadline; it goes on: GetJob follows it")
            if not context.is_active():
                log.info("job %s: StartReindex cancelled by the client; the job goes on", job_id)
                return status
            self._closed.wait(min(WAIT_POLL_S, remaining - WAIT_REPLY_MARGIN_S) if remaining is not None
                              else WAIT_POLL_S)

    def close(self, timeout_s: float = JOB_GRACE_S) -> list[str]:
        """Refuse new jobs, stop the in-process ones at their next chunk boundary and wait up to ``timeout_s``
        for them (each is left failed and resumable). Returns the ids of the jobs stopped. Celery jobs are the
        workers': they go on."""
        deadline = time.monotonic() + timeout_s
        with self._starts:
            self._closing = True
            self._starts.wait_for(lambda: self._starting == 0, timeout_s)  # jobs being submitted register
        stopped = InProcessDistributor.shutdown(self.store, max(deadline - time.monotonic(), 0.0))
        self._closed.set()
        return stopped

    @rpc("admin")
    def GetJob(self, request: admin_pb2.GetJobRequest,  # noqa: N802
               context: grpc.ServicerContext) -> admin_pb2.Job:
        return job_message(get_job(self.settings, request.job_id, self.store))

    @rpc("admin")
    def CancelJob(self, request: admin_pb2.CancelJobRequest,  # noqa: N802
                  context: grpc.ServicerContext) -> admin_pb2.Job:
        return job_message(cancel_job(self.settings, request.job_id, self.store))


class AdminServer(GrpcServer):
    """The admin service's server: stopping it also stops the jobs it runs in-process (``AdminServicer.close``)."""

    def __init__(self, servicer: AdminServicer, address: str, metrics_port: int | None = None) -> None:
        self.servicer = servicer

        def add(server: grpc.Server) -> list[str]:
            admin_pb2_grpc.add_AdminServiceServicer_to_server(servicer, server)
            return [SERVICE_NAME]

        super().__init__(add, address, max_workers=8, metrics_port=metrics_port)

    def stop(self, grace: float = 5.0, job_grace_s: float = JOB_GRACE_S) -> None:
        """NOT_SERVING, no new jobs, the in-process jobs stopped at a chunk boundary (up to ``job_grace_s``), then
        a graceful stop: calls waiting for a job answer its state as it was left."""
        self.health.enter_graceful_shutdown()
        stopped = self.servicer.close(job_grace_s)
        if stopped:
            log.warning("stopped %d in-process job(s), resumable with `fashion-search resume JOB`: %s",
                        len(stopped), ", ".join(stopped))
        super().stop(grace)


def start_admin_server(settings: Settings, address: str = "127.0.0.1:50053", metrics_port: int | None = None
                       ) -> AdminServer:
    """AdminService on ``address`` (port 0: any free one), Prometheus metrics on ``metrics_port`` when given."""
    return AdminServer(AdminServicer(settings), address, metrics_port)


def serve_admin(settings: Settings, address: str, metrics_port: int | None = None) -> None:
    server = start_admin_server(settings, address, metrics_port)
    log.info("admin service on %s (%s jobs)", server.address, "Celery" if settings.redis_url else "in-process")
    # A second SIGTERM/SIGINT while jobs wind down is ignored (GrpcServer installs handlers that only set a flag).
    server.wait_for_termination()
    stuck = InProcessDistributor.running(server.servicer.store)
    if stuck:  # a thread still in native code when the interpreter finalizes aborts the process
        log.warning("job thread(s) still in a chunk: %s; exiting without waiting (jobs marked resumable)",
                    ", ".join(stuck))
        logging.shutdown()
        os._exit(0)
