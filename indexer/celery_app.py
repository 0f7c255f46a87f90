"""The Celery app and its two tasks: ``indexer.run_chunk`` and ``indexer.finalize``.

Run a worker with ``fashion-search worker`` (or ``celery -A indexer.celery_app worker -Q indexer``); it reads
``FASHION_*`` settings (``FASHION_REDIS_URL``, ``FASHION_MODEL`` or ``FASHION_ENCODER_ADDRESS``, the index
backend and dir). Delivery is at-least-once: late acks, prefetch 1 and reject-on-worker-lost mean a killed
worker's chunk goes back to the queue (after ``indexer_visibility_timeout_s`` when the whole worker died),
and the tasks are idempotent, so a redelivery changes nothing but time.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, Task

from fashion_core.model.encoder import Encoder
from fashion_core.settings import Settings, load_settings
from indexer.jobs import RedisJobStore
from indexer.pipeline import TRANSIENT_ERRORS, backoff_s, fail_chunk, finalize, run_chunk

log = logging.getLogger(__name__)

QUEUE = "indexer"
CHUNK_TASK = "indexer.run_chunk"
FINALIZE_TASK = "indexer.finalize"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def make_app(settings: Settings) -> Celery:
    url = settings.redis_url or DEFAULT_REDIS_URL
    app = Celery("fashion_indexer", broker=url, backend=url)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],  # no pickle anywhere: payloads are ids and paths
        result_accept_content=["json"],
        task_acks_late=True,
        worker_prefetch_multiplier=1,
        task_reject_on_worker_lost=True,
        task_default_queue=QUEUE,
        result_expires=24 * 3600,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": settings.indexer_visibility_timeout_s,
            # How often a worker looks for unacked messages of dead workers to restore; kombu >= 5.7 only scans
            # on every Nth look unless the throttle is 1.
            "unacked_restore_interval": max(1, min(60, settings.indexer_visibility_timeout_s // 2)),
            "unacked_restore_throttle": 1,
            # A worker killed inside a restore sweep leaves the sweep's mutex held: with kombu's default expiry
            # (300 s) nobody restores anything for 5 minutes. Chunks are idempotent, so an overlapping sweep
            # after a shorter expiry costs at most a duplicate delivery.
            "unacked_mutex_expire": max(1, min(300, settings.indexer_visibility_timeout_s)),
        },
        worker_hijack_root_logger=False,
    )
    return app


settings = load_settings()
app = make_app(settings)
_encoder: Encoder | None = None
_store: RedisJobStore | None = None


def worker_encoder() -> Encoder:
    """One encoder per worker process: the encoder service client, or the model loaded once."""
    global _encoder
    if _encoder is None:
        from fashion_cli.runtime import open_encoder

        _encoder = open_encoder(settings)
    return _encoder


def worker_store() -> RedisJobStore:
    global _store
    if _store is None:
        _store = RedisJobStore(settings.redis_url or DEFAULT_REDIS_URL)
    return _store


@app.task(name=CHUNK_TASK, bind=True, max_retries=None)
def run_chunk_task(self: Task, job_id: str, chunk: int, chunks_total: int, catalog_dir: str, staging_dir: str,
                   ids: list[int]) -> dict[str, Any]:
    store = worker_store()
    try:
        last = run_chunk(store, worker_encoder(), job_id, chunk, chunks_total, catalog_dir, staging_dir, ids)
    except TRANSIENT_ERRORS as exc:
        if self.request.retries < settings.indexer_max_retries:
            log.warning("job %s chunk %d: %s; retry %d", job_id, chunk, exc, self.request.retries + 1)
            raise self.retry(exc=exc, countdown=backoff_s(self.request.retries)) from exc
        last = fail_chunk(store, job_id, chunk, chunks_total, ids, exc)
    except Exception as exc:  # a bug or a broken catalog: fail this chunk, not the worker
        last = fail_chunk(store, job_id, chunk, chunks_total, ids, exc)
    if last:
        app.send_task(FINALIZE_TASK, args=[job_id], queue=QUEUE)
    return {"job_id": job_id, "chunk": chunk, "last": last}


@app.task(name=FINALIZE_TASK, bind=True, max_retries=None)
def finalize_task(self: Task, job_id: str) -> dict[str, Any]:
    try:
        status = finalize(settings, worker_store(), job_id, owner=self.request.id or "")
    except TRANSIENT_ERRORS as exc:  # e.g. embedded Qdrant locked by a reader: wait and try again
        if self.request.retries < settings.indexer_max_retries:
            raise self.retry(exc=exc, countdown=backoff_s(self.request.retries)) from exc
        worker_store().set_state(job_id, "failed", f"finalize gave up: {exc}")
        raise
    return {"job_id": job_id, "state": status.state}
