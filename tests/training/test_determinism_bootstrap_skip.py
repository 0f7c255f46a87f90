"""Same seed, same weights; the bootstrap is skipped when its checkpoint exists."""

from __future__ import annotations

import time
from pathlib import Path

from fashion_core.catalog.reader import read_catalog
from fashion_core.model.encoder import ClipEncoder
from fashion_core.model.resolve import cached_recipe_model, resolve_model
from fashion_core.settings import Settings
from training.architectures import build_tiny_clip
from training.bootstrap import SyntheticRecipe, bootstrap_model
from training.optim import OptimConfig
from training.recipes import ensure_trained, is_trained, recipe_dir
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
    existing = build_tiny_clip(recipe_dir(settings, SyntheticRecipe()))  # writes config.json + model_card.json
    start = time.perf_counter()
    assert bootstrap_model(settings) == existing
    assert time.perf_counter() - start < 1.0
    assert resolve_model(settings) == str(existing)


def test_a_recipe_trains_once_and_a_changed_recipe_trains_anew(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    calls: list[str] = []

    class Counting:
        name = "counting"

        def __init__(self, version: str) -> None:
            self.version = version

        def fingerprint(self) -> str:
            return f"fp-{self.version}"

        def train(self, out: Path, progress: bool) -> Path:
            calls.append(self.version)
            return build_tiny_clip(out)

    first = ensure_trained(Counting("a"), settings)
    assert ensure_trained(Counting("a"), settings) == first and calls == ["a"]
    second = ensure_trained(Counting("b"), settings)
    assert second != first and calls == ["a", "b"] and is_trained(first) and is_trained(second)
    assert cached_recipe_model(settings, "counting") == second  # the pointer names the newest
    assert (first / "onnx" / "export.json").is_file()  # exported right after training, moved with the model
    ensure_trained(Counting("a"), settings, force=True)
    assert calls == ["a", "b", "a"] and not list(settings.models_dir.glob(".counting-*"))  # no temp left
