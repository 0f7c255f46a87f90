"""The Celery app and its two tasks: ``indexer.run_chunk`` and ``indexer.finalize``.

Run a worker with ``fashion-search worker`` (or ``celery -A indexer.celery_app worker -Q indexer``); it reads
``FASHION_*`` settings (``FASHION_REDIS_URL``, ``FASHION_MODEL`` or ``FASHION_ENCODER_ADDRESS``, the index
backend and dir). Delivery is at-least-once: late acks, prefetch 1 and reject-on-worker-lost mean a killed
worker's chunk goes back to the queue (after ``indexer_visibility_timeout_s`` when the whole worker died),
and the tasks are idempotent, so a redelivery changes nothing but time.

Redis restarts: the job store and every publish (a retry, the finalize) are retried while Redis is away, for
up to ``indexer_worker_redis_wait_s``; the worker's consumer reconnects by itself. Past that wait the task
hands its message back (``Reject(requeue=True)``; if Redis is still away the message stays in the unacked set
and is restored after the visibility timeout), never acks a chunk it could not record. Celery's own
``retry()`` drops the message when the retry cannot be published; the tasks turn that into a requeue too.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, NoReturn

import kombu.exceptions
from celery import Celery, Task, bootsteps
from celery.exceptions import Reject

from fashion_core.errors import UnavailableError
from fashion_core.model.base import Encoder
from fashion_core.settings import Settings, load_settings
from indexer.jobs import RedisJobStore, StoreUnavailableError
from indexer.pipeline import TRANSIENT_ERRORS, backoff_s, fail_chunk, finalize, run_chunk

log = logging.getLogger(__name__)

QUEUE = "indexer"
CHUNK_TASK = "indexer.run_chunk"
FINALIZE_TASK = "indexer.finalize"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
# Redis away for longer than the worker waits: hand the message back rather than lose it.
REDIS_AWAY = (StoreUnavailableError, kombu.exceptions.OperationalError)


def publish_retry_policy(retry_s: float, step: float = 0.5, cap: float = 2.0) -> dict[str, float]:
    """kombu's publish retry policy that keeps retrying for about ``retry_s`` seconds (kombu sleeps 0, then
    ``step`` more each time, at most ``cap``)."""
    retries, total = 0, 0.0
    while total < retry_s:
        total += min(step * retries, cap)
        retries += 1
    return {"max_retries": retries, "interval_start": 0.0, "interval_step": step, "interval_max": cap}


def make_app(settings: Settings, publish_retry_s: float | None = None) -> Celery:
    """The Celery app; publishing retries broker outages for ``publish_retry_s`` (default
    ``indexer_redis_retry_s``: what a CLI or the admin service waits before answering UNAVAILABLE)."""
    url = settings.redis_url or DEFAULT_REDIS_URL
    app = Celery("fashion_indexer", broker=url, backend=url)
    retry_s = publish_retry_s or settings.indexer_redis_retry_s
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],  # no pickle anywhere: payloads are ids and paths
        result_accept_content=["json"],
        task_acks_late=True,
        worker_prefetch_multiplier=1,
        task_reject_on_worker_lost=True,
        task_default_queue=QUEUE,
        task_ignore_result=True,  # nothing reads results: no backend write that could fail after the work
        result_expires=24 * 3600,
        result_backend_always_retry=True,
        broker_connection_retry_on_startup=True,
        broker_connection_retry=True,
        broker_connection_max_retries=None,  # a worker's consumer waits for Redis however long it is away
        broker_connection_timeout=5,
        task_publish_retry=True,
        task_publish_retry_policy=publish_retry_policy(retry_s),
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
            # the producer's connection retries (kombu's failover options) within the same time
            **{k: v for k, v in publish_retry_policy(retry_s).items()},
            "socket_connect_timeout": 5,
        },
        worker_hijack_root_logger=False,
    )
    return app


settings = load_settings()
app = make_app(settings, publish_retry_s=settings.indexer_worker_redis_wait_s)
_encoder: Encoder | None = None
_store: RedisJobStore | None = None


def worker_encoder() -> Encoder:
    """One encoder per worker process: the encoder service client, or the model loaded once."""
    global _encoder
    if _encoder is None:
        from services.wiring import open_encoder

        _encoder = open_encoder(settings)
    return _encoder


def worker_store() -> RedisJobStore:
    global _store
    if _store is None:
        _store = RedisJobStore(settings.redis_url or DEFAULT_REDIS_URL, retry_s=settings.indexer_worker_redis_wait_s)
    return _store


def _retry(task: Task, exc: Exception) -> NoReturn:
    """``task.retry`` with backoff, but a retry that cannot be published requeues the message instead of
    dropping it (Celery turns a failed publish into ``Reject(requeue=False)``)."""
    try:
        raise task.retry(exc=exc, countdown=backoff_s(task.request.retries))
    except Reject as rejected:
        raise Reject(rejected.reason, requeue=True) from exc


def _hand_back(what: str, exc: Exception) -> NoReturn:
    log.error("%s: Redis unreachable for %.0fs (%s); handing the message back to the queue", what,
              settings.indexer_worker_redis_wait_s, exc)
    raise Reject(str(exc), requeue=True) from exc


@app.task(name=CHUNK_TASK, bind=True, max_retries=None)
def run_chunk_task(self: Task, job_id: str, chunk: int, chunks_total: int, catalog_dir: str, staging_dir: str,
                   ids: list[int]) -> dict[str, Any]:
    try:
        store = worker_store()
        try:
            last = run_chunk(settings, store, worker_encoder(), job_id, chunk, chunks_total, catalog_dir, staging_dir,
                             ids)
        except REDIS_AWAY:
            raise
        except TRANSIENT_ERRORS as exc:
            if self.request.retries < settings.indexer_max_retries:
                log.warning("job %s chunk %d: %s; retry %d", job_id, chunk, exc, self.request.retries + 1)
                _retry(self, exc)
            last = fail_chunk(store, job_id, chunk, chunks_total, ids, exc)
        except Exception as exc:  # a bug or a broken catalog: fail this chunk, not the worker
            last = fail_chunk(store, job_id, chunk, chunks_total, ids, exc)
        if last:
            app.send_task(FINALIZE_TASK, args=[job_id], queue=QUEUE, ignore_result=True)
    except REDIS_AWAY as exc:
        _hand_back(f"job {job_id} chunk {chunk}", exc)
    return {"job_id": job_id, "chunk": chunk, "last": last}


class StalledJobSweep(bootsteps.StartStopStep):
    """A thread in each worker that queues again the chunks of jobs with no progress for ``indexer_stall_s``
    (see ``indexer.distributors.recover_stalled_jobs``)."""

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.stopping = threading.Event()

    def start(self, parent: Any) -> None:
        threading.Thread(target=sweep_stalled_jobs, args=(self.stopping,), name="stalled-job-sweep",
                         daemon=True).start()

    def stop(self, parent: Any) -> None:
        self.stopping.set()


def sweep_stalled_jobs(stopping: threading.Event) -> None:
    from indexer.distributors import CeleryDistributor, recover_stalled_jobs

    stall_s = settings.indexer_stall_s or settings.indexer_visibility_timeout_s
    interval = max(1.0, min(60.0, stall_s / 2))
    # short Redis retries: a sweep skipped while Redis is away is no loss
    store = RedisJobStore(settings.redis_url or DEFAULT_REDIS_URL, retry_s=interval)
    distributor = CeleryDistributor(settings)
    while not stopping.wait(interval):
        try:
            recover_stalled_jobs(settings, store, stall_s, distributor)
        except UnavailableError as exc:
            log.info("stalled-job sweep skipped: %s", exc)
        except Exception:  # never let the sweep thread die
            log.exception("stalled-job sweep failed")


app.steps["worker"].add(StalledJobSweep)


@app.task(name=FINALIZE_TASK, bind=True, max_retries=None)
def finalize_task(self: Task, job_id: str) -> dict[str, Any]:
    try:
        try:
            status = finalize(settings, worker_store(), job_id, owner=self.request.id or "")
        except REDIS_AWAY:
            raise
        except TRANSIENT_ERRORS as exc:  # e.g. embedded Qdrant locked by a reader: wait and try again
            if self.request.retries < settings.indexer_max_retries:
                _retry(self, exc)
            worker_store().set_state(job_id, "failed", f"finalize gave up: {exc}")
            raise
    except REDIS_AWAY as exc:
        _hand_back(f"job {job_id} finalize", exc)
    return {"job_id": job_id, "state": status.state}
