"""Who runs a job's chunks: Celery workers through Redis, or this process when no Redis is configured.

Both run the same ``run_chunk`` and ``finalize``; only the distribution differs (clip-retrieval's
"distributor"). Jobs are started, followed, resumed and cancelled through the functions at the bottom.

A job is ``pending`` while its chunks are being queued and ``running`` once all are. If Redis cannot be
reached while queueing (after retrying for ``indexer_redis_retry_s``), the job is marked ``failed`` with the
reason and as resumable: ``resume_job`` queues the chunks not yet complete, ``cancel_job`` drops it. A job
whose chunks were not all queued is never left ``running``; the serving index is not touched until a finalize
switches it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol

from fashion_core.errors import InvalidInputError, NotFoundError, UnavailableError
from fashion_core.model.base import Encoder
from fashion_core.settings import Settings
from indexer.jobs import TERMINAL_STATES, FileJobStore, JobSpec, JobStatus, JobStore, RedisJobStore, redis_display
from indexer.pipeline import (
    TRANSIENT_ERRORS,
    backoff_s,
    fail_chunk,
    finalize,
    plan_job,
    run_chunk,
    runner_settings,
)

log = logging.getLogger(__name__)

Chunks = Sequence[tuple[int, list[int]]]  # (chunk number, its product ids)


class QueueingError(UnavailableError):
    """The broker could not be reached while queueing a job's chunks; ``queued`` of them went out."""

    def __init__(self, message: str, queued: int) -> None:
        super().__init__(message)
        self.queued = queued


def in_process_jobs_dir(settings: Settings) -> Path:
    """Where this machine keeps its in-process jobs (the store of a run without Redis)."""
    return settings.home / "jobs"


def open_store(settings: Settings) -> JobStore:
    if settings.redis_url:
        return RedisJobStore(settings.redis_url, retry_s=settings.indexer_redis_retry_s)
    return FileJobStore(in_process_jobs_dir(settings))


def is_in_process_job(settings: Settings, job_id: str) -> bool:
    """Whether ``job_id`` is one of this machine's in-process jobs, whatever ``settings.redis_url`` says: a file
    check, without opening a store."""
    return FileJobStore.holds(in_process_jobs_dir(settings), job_id)


class Distributor(Protocol):
    def submit(self, spec: JobSpec, chunks: Chunks) -> None:
        """Run or queue ``chunks`` of the job. Raises QueueingError when the broker cannot be reached."""

    def request_finalize(self, job_id: str) -> None: ...


class CeleryDistributor:
    """Enqueue one task per chunk; the worker that completes the last chunk enqueues the finalize. Publishing
    is retried through broker outages for ``indexer_redis_retry_s`` (Celery's publish retry policy)."""

    def __init__(self, settings: Settings) -> None:
        from indexer.celery_app import make_app

        self.app = make_app(settings)
        self.display = redis_display(settings.redis_url or "")

    def _send(self, *args: object, **kwargs: object) -> None:
        import kombu.exceptions
        import redis

        try:  # no result subscription: nothing waits for task results
            self.app.send_task(*args, ignore_result=True, **kwargs)
        except (kombu.exceptions.OperationalError, redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            raise UnavailableError(f"Redis at {self.display} is unavailable: {exc}") from exc

    def submit(self, spec: JobSpec, chunks: Chunks) -> None:
        from indexer.celery_app import CHUNK_TASK, QUEUE

        for queued, (i, ids) in enumerate(chunks):
            try:
                self._send(CHUNK_TASK, queue=QUEUE, kwargs={
                    "job_id": spec.job_id, "chunk": i, "chunks_total": spec.chunks_total,
                    "catalog_dir": spec.catalog_dir, "staging_dir": spec.staging_dir, "ids": ids})
            except UnavailableError as exc:
                raise QueueingError(str(exc), queued) from exc
        if not chunks:
            try:
                self.request_finalize(spec.job_id)
            except UnavailableError as exc:
                raise QueueingError(str(exc), 0) from exc

    def request_finalize(self, job_id: str) -> None:
        """Queue the job's finalize. Raises UnavailableError when the broker cannot be reached."""
        from indexer.celery_app import FINALIZE_TASK, QUEUE

        self._send(FINALIZE_TASK, args=[job_id], queue=QUEUE)


_local_encoders: dict[tuple[object, ...], Encoder] = {}
_local_lock = threading.Lock()


def local_encoder(settings: Settings) -> Encoder:
    """The in-process encoder, loaded once per process and settings."""
    key = (settings.encoder_address, settings.model, str(settings.home), settings.device)
    with _local_lock:
        if key not in _local_encoders:
            from services.wiring import open_encoder

            _local_encoders[key] = open_encoder(settings)
        return _local_encoders[key]


@dataclass
class _BackgroundJob:
    thread: threading.Thread
    stop: threading.Event
    store: JobStore


class InProcessDistributor:
    """Run the chunks here, one after another (in a thread when ``background``), with the same retries.

    Background jobs are registered so that the server that started them can stop them (``shutdown``): a job
    stops at its next chunk boundary and is left failed and resumable, never half-running in a dead process.
    """

    _background: ClassVar[dict[str, _BackgroundJob]] = {}
    _background_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, settings: Settings, store: JobStore, background: bool = False,
                 encoder: Encoder | None = None) -> None:
        self.settings, self.store, self.background = settings, store, background
        self.encoder = encoder

    def submit(self, spec: JobSpec, chunks: Chunks) -> None:
        if not self.background:
            self._run(spec, chunks, threading.Event())
            return
        stop = threading.Event()
        thread = threading.Thread(target=self._run_background, args=(spec, chunks, stop),
                                  name=f"index-{spec.job_id}", daemon=True)
        with self._background_lock:
            self._background[spec.job_id] = _BackgroundJob(thread, stop, self.store)
        thread.start()

    def _run_background(self, spec: JobSpec, chunks: Chunks, stop: threading.Event) -> None:
        try:
            self._run(spec, chunks, stop)
        except Exception:
            log.exception("job %s: the in-process run failed", spec.job_id)
        finally:
            with self._background_lock:
                self._background.pop(spec.job_id, None)

    def _run(self, spec: JobSpec, chunks: Chunks, stop: threading.Event) -> None:
        encoder = self.encoder or local_encoder(self.settings)
        for i, ids in chunks:
            if stop.is_set():
                _mark_interrupted(self.store, spec.job_id, "at a chunk boundary")
                return
            for attempt in range(self.settings.indexer_max_retries + 1):
                try:
                    run_chunk(self.settings, self.store, encoder, spec.job_id, i, spec.chunks_total,
                              spec.catalog_dir, spec.staging_dir, ids)
                    break
                except TRANSIENT_ERRORS as exc:
                    if attempt == self.settings.indexer_max_retries:
                        fail_chunk(self.store, spec.job_id, i, spec.chunks_total, ids, exc)
                    elif stop.wait(backoff_s(attempt)):  # stopped while backing off: the chunk stays to do
                        _mark_interrupted(self.store, spec.job_id, "while retrying a chunk")
                        return
                except Exception as exc:
                    fail_chunk(self.store, spec.job_id, i, spec.chunks_total, ids, exc)
                    break
        self.request_finalize(spec.job_id)

    @classmethod
    def shutdown(cls, store: JobStore, timeout_s: float) -> list[str]:
        """Stop the background jobs that run on ``store`` (a server's own store) at their next chunk boundary and
        wait up to ``timeout_s`` for their threads. Each stopped job is left failed and resumable (its completed
        chunks' shards stay in its staging dir for ``fashion-search resume``); one still in a chunk after the wait
        is marked so too (the chunk, if it completes, is recorded). Returns the ids of the jobs stopped."""
        with cls._background_lock:
            jobs = {job_id: job for job_id, job in cls._background.items() if job.store is store}
        for job in jobs.values():
            job.stop.set()
        deadline = time.monotonic() + timeout_s
        for job_id, job in jobs.items():
            job.thread.join(max(deadline - time.monotonic(), 0.0))
            if job.thread.is_alive():
                log.warning("job %s: still in a chunk after %.0fs", job_id, timeout_s)
                _mark_interrupted(store, job_id, "in the middle of a chunk")
        return list(jobs)

    @classmethod
    def running(cls, store: JobStore) -> list[str]:
        """The ids of the background jobs on ``store`` whose thread still runs."""
        with cls._background_lock:
            return [job_id for job_id, job in cls._background.items()
                    if job.store is store and job.thread.is_alive()]

    def request_finalize(self, job_id: str) -> None:
        for attempt in range(self.settings.indexer_max_retries + 1):
            try:
                finalize(self.settings, self.store, job_id)
                return
            except TRANSIENT_ERRORS as exc:
                if attempt == self.settings.indexer_max_retries:
                    self.store.set_state(job_id, "failed", f"finalize gave up: {exc}")
                    return
                time.sleep(backoff_s(attempt))


def _mark_interrupted(store: JobStore, job_id: str, where: str) -> None:
    """Leave a job stopped by its server's shutdown failed and resumable, saying how far it got."""
    try:
        done, total = len(store.completed_chunks(job_id)), store.get(job_id).spec.chunks_total
        store.set_state(job_id, "failed", f"interrupted {where}: the server shut down after {done} of {total} "
                                          f"chunks; `fashion-search resume {job_id}` continues it",
                        resumable=True)
    except Exception:  # the store itself failing must not hide the others' shutdown
        log.exception("job %s: could not record its interruption", job_id)
        return
    log.warning("job %s: interrupted %s after %d of %d chunks (resumable)", job_id, where, done, total)


def distributor_for(settings: Settings, store: JobStore, background: bool = False,
                    encoder: Encoder | None = None) -> Distributor:
    if settings.redis_url:
        return CeleryDistributor(settings)
    return InProcessDistributor(settings, store, background=background, encoder=encoder)


# -- job API (CLI and admin service) -----------------------------------------------------------------------
def _submit(settings: Settings, store: JobStore, spec: JobSpec, chunks: Chunks, background: bool,
            encoder: Encoder | None) -> None:
    """Queue (or run) ``chunks``, then mark the job running. When queueing fails, mark the job failed and
    resumable and raise UnavailableError with one line saying what happened and what to do."""
    try:
        distributor_for(settings, store, background, encoder).submit(spec, chunks)
    except KeyboardInterrupt:
        _record_failure(settings, store, spec.job_id, "queueing interrupted; the serving index is untouched")
        raise
    except QueueingError as exc:
        reason = (f"{exc.queued} of {len(chunks)} chunks queued, then the broker was unreachable ({exc}); "
                  "the serving index is untouched")
        recorded = _record_failure(settings, store, spec.job_id, reason)
        hint = (f"job {spec.job_id} is failed: `fashion-search resume {spec.job_id}` queues the rest, "
                f"`fashion-search cancel {spec.job_id}` drops it" if recorded else
                f"job {spec.job_id} could not be marked failed and stays pending: resume or cancel it once "
                "Redis is back")
        raise UnavailableError(f"could not queue job {spec.job_id}: {reason}; {hint}") from exc
    try:
        store.set_state(spec.job_id, "running")
    except UnavailableError as exc:  # every chunk is queued: the workers finish the job regardless
        log.warning("job %s: all chunks queued, state not updated: %s", spec.job_id, exc)


def _record_failure(settings: Settings, store: JobStore, job_id: str, reason: str) -> bool:
    """Mark the job failed and resumable, retrying through a Redis restart for 5x the usual retry time."""
    deadline = time.monotonic() + 5 * settings.indexer_redis_retry_s
    while True:
        try:
            store.set_state(job_id, "failed", reason, resumable=True)
            return True
        except UnavailableError as exc:
            if time.monotonic() > deadline:
                log.error("job %s: could not record its failure: %s", job_id, exc)
                return False
            time.sleep(0.5)


def start_job(settings: Settings, catalog_dir: Path | str, index: str, kind: str = "reindex",
              chunk_size: int | None = None, upsert_ids: Iterable[int] | None = None, delete_ids: Iterable[int] = (),
              background: bool = False, store: JobStore | None = None, encoder: Encoder | None = None) -> JobSpec:
    """Plan and submit a job. In-process without ``background`` it has finished when this returns.

    Raises UnavailableError when Redis cannot be reached (the job, if planned, is then failed and resumable)."""
    store = store or open_store(settings)
    spec, chunks = plan_job(settings, store, catalog_dir, index, kind, chunk_size, upsert_ids, delete_ids,
                            model=encoder.info if encoder is not None else None)
    _submit(settings, store, spec, list(enumerate(chunks)), background, encoder)
    return spec


def resume_job(settings: Settings, job_id: str, background: bool = False, store: JobStore | None = None,
               encoder: Encoder | None = None) -> JobStatus:
    """Queue again every chunk of the job not yet complete (chunks are idempotent, so one still queued or
    running only costs a duplicate), or its finalize when all are. For a job that failed while queueing, or
    one stuck pending/running. Raises InvalidInputError for a job that is over, UnavailableError as start_job."""
    store = store or open_store(settings)
    status = store.get(job_id)
    if not store.reopen(job_id):
        raise InvalidInputError(f"job {job_id} is {status.state}" + (f" ({status.error})" if status.error else "")
                                + ": only a pending or running job, or one that failed while queueing, can be "
                                "resumed; start a new one")
    if background:  # this process runs it: the job's own index location, whatever the working directory
        settings = runner_settings(settings, status.spec)
    plan, done = store.plan(job_id), store.completed_chunks(job_id)
    todo = [(i, ids) for i, ids in enumerate(plan) if i not in done]
    log.info("job %s: resuming, %d of %d chunks to queue", job_id, len(todo), len(plan))
    if todo:
        _submit(settings, store, status.spec, todo, background, encoder)
    else:
        store.set_state(job_id, "running")
        distributor_for(settings, store, background, encoder).request_finalize(job_id)
    return store.get(job_id)


def recover_stalled_jobs(settings: Settings, store: RedisJobStore, stall_s: float,
                         distributor: CeleryDistributor | None = None) -> list[str]:
    """Queue again the chunks not yet complete (or the finalize, when all are) of every pending or running job
    with no progress for ``stall_s``: a chunk message the broker lost (kombu's Redis transport loses one taken
    off the queue in the instant Redis goes away, before it is recorded as unacked) would otherwise leave the job
    running forever. Chunks are idempotent, so a chunk merely slow costs a duplicate. One worker per job per
    ``stall_s`` does it. Returns the ids of the jobs queued again; raises UnavailableError when Redis is away."""
    now, recovered = time.time(), []
    for job_id in store.active_jobs():
        try:
            status = store.get(job_id)
        except NotFoundError:  # expired
            store.deactivate(job_id)
            continue
        if status.state in TERMINAL_STATES or now - status.progress_at < stall_s:
            continue
        if not store.claim_recovery(job_id, stall_s):
            continue
        done = store.completed_chunks(job_id)
        todo = [(i, ids) for i, ids in enumerate(store.plan(job_id)) if i not in done]
        log.warning("job %s: no progress for %.0fs; queueing again %s", job_id, now - status.progress_at,
                    f"{len(todo)} chunks not complete" if todo else "its finalize")
        distributor = distributor or CeleryDistributor(settings)
        if todo:
            distributor.submit(status.spec, todo)
        else:
            distributor.request_finalize(job_id)
        store.touch(job_id)
        recovered.append(job_id)
    return recovered


def get_job(settings: Settings, job_id: str, store: JobStore | None = None) -> JobStatus:
    return (store or open_store(settings)).get(job_id)


def cancel_job(settings: Settings, job_id: str, store: JobStore | None = None) -> JobStatus:
    """Mark the job cancelled (chunks not yet run are skipped) and drop what it built; serving is untouched."""
    store = store or open_store(settings)
    store.set_state(job_id, "cancelled", "cancelled by request")
    distributor_for(settings, store).request_finalize(job_id)
    return store.get(job_id)


def wait_job(settings: Settings, job_id: str, timeout_s: float = 600.0, poll_s: float = 0.2,
             store: JobStore | None = None) -> JobStatus:
    store = store or open_store(settings)
    deadline = time.monotonic() + timeout_s
    while True:
        status = store.get(job_id)
        if status.state in TERMINAL_STATES or time.monotonic() > deadline:
            return status
        time.sleep(poll_s)
