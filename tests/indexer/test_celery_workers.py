"""Jobs through Redis and real Celery worker processes (FAISS, the single-writer finalize)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import redis

from fashion_core.settings import Settings, load_settings
from fashion_core.stores.backends import open_index
from indexer.diff import diff_catalog
from indexer.distributors import get_job, start_job, wait_job
from indexer.jobs import RedisJobStore
from tests.indexer.helpers import loadable_ids, wait_until
from training.synthetic_catalog import generate_catalog

pytestmark = pytest.mark.redis


def _settings(redis_url: str, model) -> Settings:
    return load_settings(redis_url=redis_url, model=str(model), index_backend="faiss", device="cpu")


def test_workers_index_exact_count_with_failure_report(redis_url, workers, tiny_model_dir, synthetic_catalog):
    settings = _settings(redis_url, tiny_model_dir)
    workers.start("w1", pool="prefork", concurrency=1)
    spec = start_job(settings, synthetic_catalog, "shop", chunk_size=20)
    status = wait_job(settings, spec.job_id, timeout_s=180)
    assert status.state == "succeeded", status.error

    expected = loadable_ids(synthetic_catalog)
    index = open_index(settings, "shop")
    assert index.dir.name == spec.version
    assert len(index.ids) == len(set(index.ids.tolist())) == len(expected) == status.index_count
    assert index.all_ids() == expected
    assert status.chunks_done == spec.chunks_total and status.chunks_failed == 0
    reasons = {f.product_id: f.reason for f in status.failures}
    broken = {p for p, r in reasons.items() if r.startswith("unreadable image")}
    assert broken and all(int(p) not in expected for p in broken)
    assert status.items_indexed + len(broken) == spec.items_total


def test_killed_worker_job_finished_by_another_every_item_once(redis_url, workers, tiny_model_dir,
                                                                synthetic_catalog):
    settings = _settings(redis_url, tiny_model_dir)
    store = RedisJobStore(redis_url)
    first = workers.start("doomed")  # solo pool: the task runs in the process we kill
    spec = start_job(settings, synthetic_catalog, "shop", chunk_size=2)
    broker = redis.Redis.from_url(redis_url)
    # Kill while a chunk is reserved (in kombu's "unacked" hash). Between the BRPOP that takes a message and that
    # hash, a SIGKILL loses the message in kombu's Redis transport whatever the settings; killing right after a
    # chunk completes hit that window in CI on a slow day.
    wait_until(lambda: store.get(spec.job_id).chunks_done >= 3 and broker.hlen("unacked") > 0, timeout_s=120,
               poll_s=0.001)
    workers.kill(first)
    killed_at = store.get(spec.job_id)
    assert killed_at.chunks_complete < spec.chunks_total, "job finished before the kill: make chunks smaller"

    workers.start("rescuer")  # restores the dead worker's unacked chunk after the visibility timeout
    status = wait_job(settings, spec.job_id, timeout_s=180)
    assert status.state == "succeeded", status.error
    assert status.chunks_done == spec.chunks_total  # counted once each, redelivered or not
    index = open_index(settings, "shop")
    expected = loadable_ids(synthetic_catalog)
    assert len(index.ids) == len(set(index.ids.tolist())) == len(expected)
    assert index.all_ids() == expected and status.items_indexed == len(expected)


def test_reindex_while_querying_never_shows_half_built_index(redis_url, workers, tiny_model_dir, tmp_path,
                                                             synthetic_catalog):
    settings = _settings(redis_url, tiny_model_dir)
    workers.start("w1")
    old = start_job(settings, synthetic_catalog, "shop", chunk_size=40)
    assert wait_job(settings, old.job_id, timeout_s=180).state == "succeeded"
    old_ids = open_index(settings, "shop").all_ids()
    new_catalog = generate_catalog(tmp_path / "new", n=30, seed=7, start_id=50_000)
    new_ids = loadable_ids(new_catalog)

    seen: list[frozenset[int]] = []
    stop = threading.Event()
    query = np.ones(open_index(settings, "shop").meta.dim, dtype=np.float32)

    def read_loop() -> None:  # a reader re-opening the serving name, as the query service does
        while not stop.is_set():
            index = open_index(settings, "shop")
            hits = index.search(query, k=200)
            seen.append(frozenset(h.id for h in hits))
            stop.wait(0.02)  # leave the 2 cores to the worker

    reader = threading.Thread(target=read_loop)
    reader.start()
    try:
        new = start_job(settings, new_catalog, "shop", chunk_size=3)
        status = wait_job(settings, new.job_id, timeout_s=180)
        wait_until(lambda: seen and seen[-1] == new_ids, timeout_s=30)
    finally:
        stop.set()
        reader.join(30)
    assert status.state == "succeeded"
    # Every answer came entirely from one complete version: the old one until the switch, then the new one.
    assert set(seen) == {frozenset(old_ids), frozenset(new_ids)}
    switch = seen.index(frozenset(new_ids))
    assert all(s == frozenset(old_ids) for s in seen[:switch]) and all(s == frozenset(new_ids) for s in seen[switch:])


def test_incremental_update_through_workers(redis_url, workers, tiny_model_dir, tmp_path, synthetic_catalog):
    import shutil

    from tests.indexer.helpers import edit_catalog

    settings = _settings(redis_url, tiny_model_dir)
    workers.start("w1")
    catalog = shutil.copytree(synthetic_catalog, tmp_path / "catalog")
    full = start_job(settings, catalog, "shop", chunk_size=50)
    assert wait_job(settings, full.job_id, timeout_s=180).state == "succeeded"
    ids = sorted(open_index(settings, "shop").all_ids())
    new_id = max(ids) + 500
    edit_catalog(catalog, catalog, drop={ids[5]}, rename={ids[6]: "Glittery Moon Boots"}, copies={new_id: ids[7]})

    diff = diff_catalog(settings, catalog, "shop")
    update = start_job(settings, catalog, "shop", kind="update", upsert_ids=diff.upserts, delete_ids=diff.delete)
    status = wait_job(settings, update.job_id, timeout_s=180)
    assert status.state == "succeeded", status.error
    index = open_index(settings, "shop")
    assert index.all_ids() == (set(ids) - {ids[5]}) | {new_id}
    assert index.retrieve([ids[6]])[ids[6]][0]["productDisplayName"] == "Glittery Moon Boots"
    assert index._lexicon is not None  # saved by the worker that finalized the update
    assert [h.id for h in index.search_lexical("glittery moon boots", 2)][:1] == [ids[6]]
    vector = index.retrieve([ids[7]], with_vectors=True)[ids[7]][1]
    assert {h.id for h in index.search(vector, k=2)} == {ids[7], new_id}
    assert get_job(settings, update.job_id).index_count == len(ids)


def test_dead_workers_messages_are_restored_within_the_visibility_timeout():
    """A worker SIGKILLed inside kombu's restore sweep leaves the sweep mutex held for its expiry; kombu's
    default (300 s) would stall every restore for 5 minutes, and kombu 5.7 scans only every 10th sweep."""
    from indexer.celery_app import make_app

    options = make_app(load_settings(indexer_visibility_timeout_s=4)).conf.broker_transport_options
    assert options["unacked_mutex_expire"] <= 4
    assert options["unacked_restore_throttle"] == 1 and options["unacked_restore_interval"] <= 2
