"""Same seed, same weights; the bootstrap is skipped when its checkpoint exists."""

from __future__ import annotations

import time
from pathlib import Path

from fashion_core.catalog.reader import read_catalog
from fashion_core.model.encoder import ClipEncoder
from fashion_core.model.factory import build_tiny_clip
from fashion_core.model.resolve import bootstrap_dir, resolve_model
from fashion_core.settings import Settings
from training.bootstrap import bootstrap_model
from training.optim import OptimConfig
from training.trainer import TrainConfig, train


def test_training_is_deterministic_given_the_seed(tiny_model_dir: Path, synthetic_catalog: Path,
                                                   tmp_path: Path) -> None:
    products = read_catalog(synthetic_catalog).products
    versions = []
    for run in ("a", "b"):
        cfg = TrainConfig(base=str(tiny_model_dir), out_dir=tmp_path / run, epochs=1, batch_size=16, seed=5,
                          optim=OptimConfig(lr=1e-3), progress=False, patience=1, early_stop_metric="val_R@10")
        train(cfg, products)
        versions.append(ClipEncoder.from_pretrained(tmp_path / run, device="cpu").info.version)
    assert versions[0] == versions[1]


def test_bootstrap_is_skipped_when_the_checkpoint_exists(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    existing = build_tiny_clip(bootstrap_dir(settings))
    start = time.perf_counter()
    assert bootstrap_model(settings) == existing
    assert time.perf_counter() - start < 1.0
    assert resolve_model(settings) == str(existing)
