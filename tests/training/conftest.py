"""A larger synthetic catalog than the shared one, so the held-out split has enough products to measure."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def train_catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.synthetic_catalog import generate_catalog

    return generate_catalog(tmp_path_factory.mktemp("train-catalog"), n=420, seed=3)
