"""Jobs under faults other than a Redis restart: a gRPC message the encoder service refuses (final, not retried),
a duplicate chunk delivered while its job finishes (no staging shard left behind), a job interrupted part way
(resumed to exactly once)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest

from fashion_core.errors import InvalidInputError
from fashion_core.settings import Settings, load_settings
from fashion_core.stores.backends import open_index
from indexer.distributors import cancel_job, get_job, resume_job, start_job, wait_job
from indexer.jobs import FileJobStore
from indexer.pipeline import finalize, plan_job, run_chunk
from tests.indexer.helpers import loadable_ids


class GatedEncoder:
    """The real encoder, whose image encoding waits until the test opens the gate."""

    def __init__(self, inner) -> None:
        self.inner, self.entered, self.gate = inner, threading.Event(), threading.Event()

    @property
    def info(self):
        return self.inner.info

    def encode_texts(self, texts):
        return self.inner.encode_texts(texts)

    def encode_images(self, images) -> np.ndarray:
        self.entered.set()
        assert self.gate.wait(60)
        return self.inner.encode_images(images)


def _in_process(model: Path) -> Settings:
    return load_settings(model=str(model), index_backend="faiss", device="cpu")


def test_duplicate_chunk_finishing_after_its_job_leaves_no_staging_shard(tiny_model_dir, tiny_encoder,
                                                                         synthetic_catalog) -> None:
    settings = _in_process(tiny_model_dir)
    store = FileJobStore(settings.home / "jobs")
    spec, chunks = plan_job(settings, store, synthetic_catalog, "shop", chunk_size=50)
    store.set_state(spec.job_id, "running")
    last = len(chunks) - 1
    args = (spec.job_id, last, spec.chunks_total, spec.catalog_dir, spec.staging_dir, chunks[last])

    gated = GatedEncoder(tiny_encoder)  # a second delivery of the last chunk, slower than the first
    duplicate = threading.Thread(target=run_chunk, args=(settings, store, gated, *args))
    duplicate.start()
    assert gated.entered.wait(60)
    for i, ids in enumerate(chunks):
        run_chunk(settings, store, tiny_encoder, spec.job_id, i, spec.chunks_total, spec.catalog_dir,
                  spec.staging_dir, ids)
    assert finalize(settings, store, spec.job_id).state == "succeeded"
    assert not Path(spec.staging_dir).exists()
    gated.gate.set()  # the duplicate now writes its shard into a job that has ended
    duplicate.join(60)
    assert not Path(spec.staging_dir).exists()
    assert not run_chunk(settings, store, tiny_encoder, *args)  # a later delivery: skipped, nothing written
    assert not Path(spec.staging_dir).exists()
    assert get_job(settings, spec.job_id).chunks_done == spec.chunks_total


def test_interrupted_in_process_job_is_resumed_exactly_once_or_cancelled(tiny_model_dir, tiny_encoder,
                                                                          synthetic_catalog) -> None:
    """An in-process run killed after two of its chunks: resume runs the rest; a finished job is not resumed."""
    settings = _in_process(tiny_model_dir)
    store = FileJobStore(settings.home / "jobs")
    for cancel in (False, True):
        spec, chunks = plan_job(settings, store, synthetic_catalog, "shop", chunk_size=30)
        store.set_state(spec.job_id, "running")
        for i in (0, 2):
            run_chunk(settings, store, tiny_encoder, spec.job_id, i, spec.chunks_total, spec.catalog_dir,
                      spec.staging_dir, chunks[i])
        if cancel:
            assert cancel_job(settings, spec.job_id, store).state == "cancelled"
            assert not Path(spec.staging_dir).exists()
            with pytest.raises(InvalidInputError, match="is cancelled"):
                resume_job(settings, spec.job_id, store=store, encoder=tiny_encoder)
            continue
        status = resume_job(settings, spec.job_id, store=FileJobStore(settings.home / "jobs"), encoder=tiny_encoder)
        assert status.state == "succeeded", status.error
        expected = loadable_ids(synthetic_catalog)
        index = open_index(settings, "shop")
        assert index.all_ids() == expected and len(index.ids) == len(expected) == status.items_indexed
        assert status.chunks_done == spec.chunks_total
        with pytest.raises(InvalidInputError, match="is succeeded"):
            resume_job(settings, spec.job_id, store=store, encoder=tiny_encoder)


@pytest.mark.redis
@pytest.mark.slow
def test_a_message_the_encoder_service_refuses_fails_the_chunk_without_retries(own_redis, own_workers, tiny_encoder,
                                                                               synthetic_catalog, tmp_path) -> None:
    """Photos sent to an encoder service whose gRPC limit is below one photo: the chunk fails at once with the
    reason (before: RESOURCE_EXHAUSTED, retried as transient with backoff, five times)."""
    from services.encoder_service import start_encoder_server
    from tests.services.test_encoder_limits import photo_catalog

    catalog = photo_catalog(synthetic_catalog, tmp_path / "photos", n=4)
    server, servicer = start_encoder_server(Settings(grpc_max_message_mb=0.1, home=tmp_path / "h"),
                                            encoder=tiny_encoder)
    try:
        own_workers.env.update(FASHION_ENCODER_ADDRESS=server.address, FASHION_GRPC_MAX_MESSAGE_MB="64")
        own_workers.start("w1")
        settings = load_settings(redis_url=own_redis.url(), index_backend="faiss", device="cpu",
                                 index_dir=os.environ["FASHION_INDEX_DIR"])
        spec = start_job(settings, catalog, "shop", chunk_size=4)
        status = wait_job(settings, spec.job_id, timeout_s=120)
    finally:
        server.stop(0)
        servicer.close()
    log = (own_workers.log_dir / "worker-w1.log").read_text()
    assert status.state == "failed" and "1 of 1 chunks failed" in status.error
    assert all("TooLargeError" in f.reason and "larger than max" in f.reason for f in status.failures), \
        status.failures
    assert "retry 1" not in log
