"""Fixtures for the indexer tests: a clean Redis db and real Celery worker processes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.indexer.helpers import REDIS_URL, RedisServer, Workers, worker_env


@pytest.fixture
def redis_url() -> Iterator[str]:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.fail("no Redis on 127.0.0.1:6379 (scripts/ensure-redis.sh starts one)")
    client.flushdb()
    yield REDIS_URL
    client.flushdb()


@pytest.fixture
def workers(redis_url: str, tiny_model_dir: Path, tmp_path: Path) -> Iterator[Workers]:
    """Workers that share this test's settings (FAISS under the test's index dir, the tiny model)."""
    env = worker_env(redis_url, tiny_model_dir, Path(os.environ["FASHION_INDEX_DIR"]),
                     Path(os.environ["FASHION_HOME"]))
    pool = Workers(env, tmp_path)
    yield pool
    pool.stop_all()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test alone, which the test may stop and restart (the shared one never is)."""
    server = RedisServer(tmp_path / "redis")
    yield server
    server.stop()


@pytest.fixture
def own_workers(own_redis: RedisServer, tiny_model_dir: Path, tmp_path: Path) -> Iterator[Workers]:
    """Worker processes on the test's own Redis (stalled jobs swept after 10 s)."""
    env = worker_env(own_redis.url(), tiny_model_dir, Path(os.environ["FASHION_INDEX_DIR"]),
                     Path(os.environ["FASHION_HOME"]), FASHION_INDEXER_STALL_S="10")
    pool = Workers(env, tmp_path)
    yield pool
    pool.stop_all()
