"""Fixtures for the indexer tests: a clean Redis db and real Celery worker processes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.indexer.helpers import REDIS_URL, Workers, worker_env


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
