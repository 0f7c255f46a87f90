"""Who runs a job's chunks: Celery workers through Redis, or this process when no Redis is configured.

Both run the same ``run_chunk`` and ``finalize``; only the distribution differs (clip-retrieval's
"distributor"). Jobs are started, followed and cancelled through the functions at the bottom.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from fashion_core.model.encoder import Encoder
from fashion_core.settings import Settings
from indexer.jobs import FileJobStore, JobSpec, JobStatus, JobStore, RedisJobStore
from indexer.pipeline import TRANSIENT_ERRORS, backoff_s, fail_chunk, finalize, plan_job, run_chunk

log = logging.getLogger(__name__)


def open_store(settings: Settings) -> JobStore:
    if settings.redis_url:
        return RedisJobStore(settings.redis_url)
    return FileJobStore(settings.home / "jobs")


class Distributor(Protocol):
    def submit(self, spec: JobSpec, chunks: list[list[int]]) -> None: ...

    def request_finalize(self, job_id: str) -> None: ...


class CeleryDistributor:
    """Enqueue one task per chunk; the worker that completes the last chunk enqueues the finalize."""

    def __init__(self, settings: Settings) -> None:
        from indexer.celery_app import make_app

        self.app = make_app(settings)

    def submit(self, spec: JobSpec, chunks: list[list[int]]) -> None:
        from indexer.celery_app import CHUNK_TASK, QUEUE

        for i, ids in enumerate(chunks):
            self.app.send_task(CHUNK_TASK, queue=QUEUE, kwargs={
                "job_id": spec.job_id, "chunk": i, "chunks_total": spec.chunks_total,
                "catalog_dir": spec.catalog_dir, "staging_dir": spec.staging_dir, "ids": ids})
        if not chunks:
            self.request_finalize(spec.job_id)

    def request_finalize(self, job_id: str) -> None:
        from indexer.celery_app import FINALIZE_TASK, QUEUE

        self.app.send_task(FINALIZE_TASK, args=[job_id], queue=QUEUE)


_local_encoders: dict[tuple[object, ...], Encoder] = {}
_local_lock = threading.Lock()


def local_encoder(settings: Settings) -> Encoder:
    """The in-process encoder, loaded once per process and settings."""
    key = (settings.encoder_address, settings.model, str(settings.home), settings.device)
    with _local_lock:
        if key not in _local_encoders:
            from fashion_cli.runtime import open_encoder

            _local_encoders[key] = open_encoder(settings)
        return _local_encoders[key]


class InProcessDistributor:
    """Run the chunks here, one after another (in a thread when ``background``), with the same retries."""

    def __init__(self, settings: Settings, store: JobStore, background: bool = False,
                 encoder: Encoder | None = None) -> None:
        self.settings, self.store, self.background = settings, store, background
        self.encoder = encoder

    def submit(self, spec: JobSpec, chunks: list[list[int]]) -> None:
        if self.background:
            threading.Thread(target=self._run, args=(spec, chunks), name=f"index-{spec.job_id}", daemon=True).start()
        else:
            self._run(spec, chunks)

    def _run(self, spec: JobSpec, chunks: list[list[int]]) -> None:
        encoder = self.encoder or local_encoder(self.settings)
        for i, ids in enumerate(chunks):
            for attempt in range(self.settings.indexer_max_retries + 1):
                try:
                    run_chunk(self.store, encoder, spec.job_id, i, spec.chunks_total, spec.catalog_dir,
                              spec.staging_dir, ids)
                    break
                except TRANSIENT_ERRORS as exc:
                    if attempt == self.settings.indexer_max_retries:
                        fail_chunk(self.store, spec.job_id, i, spec.chunks_total, ids, exc)
                    else:
                        time.sleep(backoff_s(attempt))
                except Exception as exc:
                    fail_chunk(self.store, spec.job_id, i, spec.chunks_total, ids, exc)
                    break
        self.request_finalize(spec.job_id)

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


def distributor_for(settings: Settings, store: JobStore, background: bool = False,
                    encoder: Encoder | None = None) -> Distributor:
    if settings.redis_url:
        return CeleryDistributor(settings)
    return InProcessDistributor(settings, store, background=background, encoder=encoder)


# -- job API (CLI and admin service) -----------------------------------------------------------------------
def start_job(settings: Settings, catalog_dir: Path | str, index: str, kind: str = "reindex",
              chunk_size: int | None = None, upsert_ids: Iterable[int] | None = None, delete_ids: Iterable[int] = (),
              background: bool = False, store: JobStore | None = None, encoder: Encoder | None = None) -> JobSpec:
    """Plan and submit a job. In-process without ``background`` it has finished when this returns."""
    store = store or open_store(settings)
    spec, chunks = plan_job(settings, store, catalog_dir, index, kind, chunk_size, upsert_ids, delete_ids)
    store.set_state(spec.job_id, "running")
    distributor_for(settings, store, background, encoder).submit(spec, chunks)
    return spec


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
    from indexer.jobs import TERMINAL_STATES

    store = store or open_store(settings)
    deadline = time.monotonic() + timeout_s
    while True:
        status = store.get(job_id)
        if status.state in TERMINAL_STATES or time.monotonic() > deadline:
            return status
        time.sleep(poll_s)
