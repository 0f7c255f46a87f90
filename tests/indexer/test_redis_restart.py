"""Indexing survives a Redis restart. Each test runs its own redis-server (persisting to disk, as in production)
and restarts it: mid-job under real Celery worker processes, and while the CLI is queueing a job's chunks. A job
completes with every item exactly once, or ends failed with a clear reason and can be resumed or cancelled; the
CLI prints one line and exits 2; the serving index is untouched meanwhile."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest
import redis
from celery import Celery

from fashion_cli.main import main
from fashion_core.settings import Settings, load_settings
from fashion_core.stores.backends import open_index, open_store
from indexer.distributors import get_job, start_job, wait_job
from indexer.jobs import RedisJobStore
from tests.indexer.helpers import RedisServer, loadable_ids, wait_until

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def _settings(own_redis: RedisServer, model: Path, **overrides: object) -> Settings:
    return load_settings(redis_url=own_redis.url(), model=str(model), index_backend="faiss", device="cpu",
                         **overrides)


def _serve_first_version(settings: Settings, catalog: Path, encoder) -> tuple[str, set[int]]:
    """A serving ``shop`` built in-process, to check that nothing touches it while Redis comes and goes."""
    spec = start_job(settings.model_copy(update={"redis_url": None}), catalog, "shop", chunk_size=100,
                     encoder=encoder)
    return spec.version, open_index(settings, "shop").all_ids()


def _exactly_once(settings: Settings, job_id: str, catalog: Path) -> None:
    status = get_job(settings, job_id)
    assert status.state == "succeeded", (status.state, status.error)
    expected = loadable_ids(catalog)
    index = open_index(settings, "shop")
    assert index.dir.name == status.spec.version
    assert len(index.ids) == len(set(index.ids.tolist())) == len(expected) == status.index_count
    assert index.all_ids() == expected and status.items_indexed == len(expected)
    assert status.chunks_done == status.spec.chunks_total and status.chunks_failed == 0
    assert not Path(status.spec.staging_dir).exists()


@pytest.mark.parametrize("worker_wait_s", [600, 2], ids=["store-rides-it-out", "message-handed-back"])
def test_redis_restarts_mid_job_every_item_exactly_once(own_redis, own_workers, tiny_model_dir, tiny_encoder,
                                                        synthetic_catalog, worker_wait_s) -> None:
    """Redis goes away for 8 s while a chunk is in a worker's hands, and again later. With a long worker wait
    the job store retries through it; with a 2 s wait the chunk's message is handed back and redelivered."""
    settings = _settings(own_redis, tiny_model_dir)
    serving, serving_ids = _serve_first_version(settings, synthetic_catalog, tiny_encoder)
    own_workers.env["FASHION_INDEXER_WORKER_REDIS_WAIT_S"] = str(worker_wait_s)
    own_workers.start("w1")
    store = RedisJobStore(own_redis.url(), retry_s=60)
    spec = start_job(settings, synthetic_catalog, "shop", chunk_size=4, store=store)

    def chunk_in_flight(done: int) -> bool:
        broker = redis.Redis(port=own_redis.port)
        return store.get(spec.job_id).chunks_done >= done and broker.hlen("unacked") > 0

    for done, down_s in ((3, 8.0), (spec.chunks_total // 2, 3.0)):
        wait_until(lambda done=done: chunk_in_flight(done), timeout_s=120, poll_s=0.005)
        own_redis.stop()
        time.sleep(down_s / 2)
        assert open_store(settings).serving_version("shop") == serving  # untouched while Redis is away
        assert open_index(settings, "shop").all_ids() == serving_ids
        time.sleep(down_s / 2)
        own_redis.start()
    status = wait_job(settings, spec.job_id, timeout_s=240)
    assert status.state == "succeeded", (status.state, status.error, (own_workers.log_dir / "worker-w1.log")
                                         .read_text()[-3000:])
    _exactly_once(settings, spec.job_id, synthetic_catalog)


class QueueingFault:
    """Stops the test's Redis as the CLI publishes its ``nth`` task, and starts it again ``down_s`` later."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, server: RedisServer, nth: int, down_s: float) -> None:
        self.server, self.nth, self.down_s, self.calls = server, nth, down_s, 0
        self.restarted = threading.Event()
        original = Celery.send_task

        def send_task(app: Celery, *args, **kwargs):
            self.calls += 1
            if self.calls == self.nth:
                server.stop()
                threading.Timer(down_s, self._start).start()
            return original(app, *args, **kwargs)

        monkeypatch.setattr(Celery, "send_task", send_task)

    def _start(self) -> None:
        self.server.start()
        self.restarted.set()


def _cli_env(monkeypatch: pytest.MonkeyPatch, own_redis: RedisServer, model: Path, retry_s: float) -> None:
    for key, value in {"FASHION_REDIS_URL": own_redis.url(), "FASHION_MODEL": str(model),
                       "FASHION_INDEX_BACKEND": "faiss", "FASHION_DEVICE": "cpu",
                       "FASHION_INDEXER_REDIS_RETRY_S": str(retry_s)}.items():
        monkeypatch.setenv(key, value)


def _job_id(out: str) -> str:
    return out.split("job ", 1)[1].split(":", 1)[0].split()[0].strip()


def test_a_chunk_message_lost_by_the_broker_is_queued_again(own_redis, own_workers, tiny_model_dir,
                                                             synthetic_catalog) -> None:
    """kombu's Redis transport loses a message taken off the queue in the instant Redis goes away (before it is
    recorded as unacked). Here one chunk is never queued at all: the workers' sweep queues it again once the job
    made no progress for FASHION_INDEXER_STALL_S, and the job completes exactly once."""
    from indexer.distributors import CeleryDistributor
    from indexer.pipeline import plan_job

    settings = _settings(own_redis, tiny_model_dir)
    store = RedisJobStore(own_redis.url())
    spec, chunks = plan_job(settings, store, synthetic_catalog, "shop", chunk_size=20)
    CeleryDistributor(settings).submit(spec, list(enumerate(chunks))[:-1])  # the last one "lost"
    store.set_state(spec.job_id, "running")
    own_workers.start("w1")
    wait_until(lambda: store.get(spec.job_id).chunks_done == spec.chunks_total - 1, timeout_s=120)
    status = wait_job(settings, spec.job_id, timeout_s=120)
    assert "no progress for" in (own_workers.log_dir / "worker-w1.log").read_text()
    _exactly_once(settings, spec.job_id, synthetic_catalog)
    assert status.state == "succeeded"


def test_cli_queueing_rides_out_a_short_restart(own_redis, own_workers, tiny_model_dir, synthetic_catalog,
                                                monkeypatch, capsys) -> None:
    _cli_env(monkeypatch, own_redis, tiny_model_dir, retry_s=15)
    own_workers.start("w1")
    fault = QueueingFault(monkeypatch, own_redis, nth=3, down_s=2.0)
    assert main(["reindex", str(synthetic_catalog), "--index", "shop", "--chunk-size", "10"]) == 0
    assert fault.restarted.is_set()
    job_id = _job_id(capsys.readouterr().out)
    settings = load_settings()
    assert get_job(settings, job_id).state in {"running", "succeeded"}  # queued in full, then marked running
    wait_job(settings, job_id, timeout_s=180)
    _exactly_once(settings, job_id, synthetic_catalog)


def test_cli_queueing_failure_is_one_line_and_the_job_failed_resumable_or_cancellable(
        own_redis, own_workers, tiny_model_dir, tiny_encoder, synthetic_catalog, monkeypatch, capsys) -> None:
    _cli_env(monkeypatch, own_redis, tiny_model_dir, retry_s=1.5)
    settings = load_settings()
    serving, _ = _serve_first_version(settings, synthetic_catalog, tiny_encoder)

    job_ids = []
    for _ in range(2):  # one to resume, one to cancel
        fault = QueueingFault(monkeypatch, own_redis, nth=3, down_s=4.0)
        capsys.readouterr()
        assert main(["reindex", str(synthetic_catalog), "--index", "shop", "--chunk-size", "10"]) == 2
        err = capsys.readouterr().err
        assert fault.restarted.wait(30)
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        assert err.startswith("error: could not queue job ")
        assert re.search(r"2 of \d+ chunks queued", err) and "fashion-search resume" in err, err
        job_id = err.split("could not queue job ", 1)[1].split(":", 1)[0]
        status = get_job(settings, job_id)
        assert status.state == "failed" and status.resumable and "2 of " in status.error
        assert open_store(settings).serving_version("shop") == serving
        job_ids.append(job_id)
        monkeypatch.undo()
        _cli_env(monkeypatch, own_redis, tiny_model_dir, retry_s=1.5)

    own_workers.start("w1")
    assert main(["resume", job_ids[0], "--wait"]) == 0
    _exactly_once(settings, job_ids[0], synthetic_catalog)

    assert main(["cancel", job_ids[1]]) == 0
    cancelled = wait_until(lambda: (s := get_job(settings, job_ids[1])).state == "cancelled"
                           and not Path(s.spec.staging_dir).exists() and s, timeout_s=60)
    assert cancelled.state == "cancelled"
    assert open_store(settings).serving_version("shop") == get_job(settings, job_ids[0]).spec.version
    capsys.readouterr()
    assert main(["resume", job_ids[1]]) == 2  # over: a one-line error
    err = capsys.readouterr().err
    assert "is cancelled" in err and "can be resumed" in err and len(err.strip().splitlines()) == 1


def test_redis_down_is_one_line_and_exit_2(tiny_model_dir, synthetic_catalog, monkeypatch, capsys,
                                           own_redis) -> None:
    url = own_redis.url()
    own_redis.stop()
    monkeypatch.setenv("FASHION_INDEXER_REDIS_RETRY_S", "0.5")
    for argv in (["reindex", str(synthetic_catalog), "--index", "shop"], ["status", "abc"], ["cancel", "abc"],
                 ["resume", "abc"]):
        assert main([*argv, "--redis-url", url, "--model", str(tiny_model_dir)]) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: Redis at 127.0.0.1:") and "is unavailable" in err, (argv, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
