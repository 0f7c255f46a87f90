"""Session fixtures: a synthetic catalog and a tiny random CLIP checkpoint, built once and shared."""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a model hub
# The model cache the demo and `fashion-search prepare-models` use (read before any test isolates FASHION_*):
# trained recipes are shared with the tests, never trained twice on one machine.
SHARED_HOME = Path(os.environ.get("FASHION_HOME") or Path.home() / ".cache" / "fashion-search")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.architectures import build_tiny_clip

    return build_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture(scope="session")
def tiny_encoder(tiny_model_dir: Path):
    from fashion_core.model.encoder import ClipEncoder

    return ClipEncoder.from_pretrained(tiny_model_dir, device="cpu")


@pytest.fixture(scope="session")
def synthetic_catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """140 clean products (every article type x 10) plus the dirty rows of the real file."""
    from training.synthetic_catalog import generate_catalog

    return generate_catalog(tmp_path_factory.mktemp("catalog"), n=140, seed=1, dirty=True)


@pytest.fixture(autouse=True)
def _isolated_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads the developer's FASHION_* environment or writes to their cache."""
    for key in list(os.environ):
        if key.startswith("FASHION_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("FASHION_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FASHION_INDEX_DIR", str(tmp_path / "index"))


def shared_settings():
    from fashion_core.settings import Settings

    return Settings(home=SHARED_HOME)


@pytest.fixture(scope="session")
def bootstrap_model_dir() -> Path:
    """The synthetic recipe's model (training/bootstrap.py) from the shared cache ($FASHION_HOME/models).

    `scripts/test.sh` trains it before pytest starts (`fashion-search prepare-models`), outside any test's
    timeout; run directly, pytest trains it here on the first use. Cached by the recipe's fingerprint, so a
    changed recipe trains anew instead of reusing a stale model.
    """
    from training.bootstrap import bootstrap_model

    return bootstrap_model(shared_settings(), progress=False)


BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@contextlib.contextmanager
def benchmark_module(name: str) -> Iterator[ModuleType]:
    """The script ``benchmarks/<name>.py`` imported as a module, with benchmarks/ on ``sys.path`` while it is used
    (the scripts import their ``_common`` sibling)."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCHMARKS))
