"""gRPC AdminService: start a full re-index, read a job, cancel it (``fashion-search serve-admin``).

Jobs go to the Celery workers when Redis is configured; otherwise they run in a thread of this server.
"""

from __future__ import annotations

import logging

import grpc
from fashionsearch.v1 import admin_pb2, admin_pb2_grpc

from fashion_core.errors import InvalidInputError
from fashion_core.settings import Settings
from indexer.distributors import cancel_job, get_job, open_store, start_job
from indexer.jobs import JobStatus
from services.rpc import rpc
from services.server import GrpcServer

log = logging.getLogger(__name__)
SERVICE_NAME = admin_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name


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

    @rpc("admin")
    def StartReindex(self, request: admin_pb2.StartReindexRequest,  # noqa: N802 - gRPC method name
                     context: grpc.ServicerContext) -> admin_pb2.Job:
        if not request.catalog_dir:
            raise InvalidInputError("catalog_dir is required")
        if request.chunk_size < 0:
            raise InvalidInputError(f"chunk_size must be positive, got {request.chunk_size}")
        spec = start_job(self.settings, request.catalog_dir, request.index or self.settings.index_name,
                         chunk_size=request.chunk_size or None, background=True, store=self.store)
        return job_message(get_job(self.settings, spec.job_id, self.store))

    @rpc("admin")
    def GetJob(self, request: admin_pb2.GetJobRequest,  # noqa: N802
               context: grpc.ServicerContext) -> admin_pb2.Job:
        return job_message(get_job(self.settings, request.job_id, self.store))

    @rpc("admin")
    def CancelJob(self, request: admin_pb2.CancelJobRequest,  # noqa: N802
                  context: grpc.ServicerContext) -> admin_pb2.Job:
        return job_message(cancel_job(self.settings, request.job_id, self.store))


def start_admin_server(settings: Settings, address: str = "127.0.0.1:50053", metrics_port: int | None = None
                       ) -> GrpcServer:
    """AdminService on ``address`` (port 0: any free one), Prometheus metrics on ``metrics_port`` when given."""
    servicer = AdminServicer(settings)

    def add(server: grpc.Server) -> list[str]:
        admin_pb2_grpc.add_AdminServiceServicer_to_server(servicer, server)
        return [SERVICE_NAME]

    return GrpcServer(add, address, max_workers=8, metrics_port=metrics_port)


def serve_admin(settings: Settings, address: str, metrics_port: int | None = None) -> None:
    server = start_admin_server(settings, address, metrics_port)
    log.info("admin service on %s (%s jobs)", server.address, "Celery" if settings.redis_url else "in-process")
    server.wait_for_termination()
