"""The real recipe's machinery at toy size on a synthetic catalog: fingerprint, cache, card, the study.

The full-size recipe on the real catalog is measured in tests/real (trained by `fashion-search prepare-models`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fashion_core.model.card import CARD_FILE
from fashion_core.model.encoder import ClipEncoder
from fashion_core.model.onnx_encoder import OnnxEncoder
from fashion_core.model.resolve import resolve_model
from fashion_core.settings import Settings
from training.architectures import DualEncoderSpec
from training.real import STUDY_METRICS, RealConfig, RealRecipe, recipe_for, run_study, variant
from training.recipes import ensure_trained

TOY = RealConfig(spec=DualEncoderSpec(image_size=32, resize_edge=24, patch_size=4, dims=(8, 16, 24, 32),
                                      depths=(1, 1, 1, 1), text_width=32, text_layers=1, projection_dim=32,
                                      vocab_size=500),
                 epochs=1, batch_size=32, warmup_steps=2, threads=1)


def test_the_recipe_trains_once_into_the_cache_with_its_card(train_catalog: Path, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    recipe = RealRecipe(train_catalog, TOY)
    assert recipe.fingerprint() == RealRecipe(train_catalog, TOY).fingerprint()
    assert recipe.fingerprint() != RealRecipe(train_catalog, variant(TOY, epochs=2)).fingerprint()
    # the CPU threads change rounding, not the recipe: one cache folder, whichever ran it (the test command trains
    # on one thread beside the suite, FASHION_TRAIN_THREADS=1; the demo on the recipe's two)
    assert recipe.fingerprint() == RealRecipe(train_catalog, variant(TOY, threads=2)).fingerprint()
    assert recipe_for(train_catalog, Settings(train_threads=3)).config.threads == 3
    assert recipe_for(train_catalog, Settings()).config == RealConfig()
    out = ensure_trained(recipe, settings, progress=False)
    assert out.name == f"real-{recipe.fingerprint()}" and resolve_model(settings) == str(out)
    card = json.loads((out / CARD_FILE).read_text())
    assert card["recipe"]["name"] == "real" and card["recipe"]["fingerprint"] == recipe.fingerprint()
    assert card["architecture"]["dims"] == [8, 16, 24, 32]
    assert card["catalog"]["products"] > 400 and card["data"]["split"]["by"] == "sha256 of product id"
    assert set(card["losses"]) >= {"clip_infonce", "supcon", "label_prompts", "class_proxies"}
    encoder = ClipEncoder.from_pretrained(out, device="cpu")
    assert encoder.encode_texts(["red dress for women"]).shape == (1, 32)
    # exported right after training: the cached model comes with its ONNX export, for the same weights
    onnx = OnnxEncoder.from_checkpoint(out, settings.home)
    assert onnx.export.path == out / "onnx" and onnx.info == encoder.info
    query = ["red dress for women"]
    assert np.abs(onnx.encode_texts(query) - encoder.encode_texts(query)).max() < 1e-4
    (out / "marker").write_text("kept")
    assert ensure_trained(RealRecipe(train_catalog, TOY), settings) == out and (out / "marker").is_file()


def test_the_study_compares_variants_on_validation(train_catalog: Path, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    served = ensure_trained(RealRecipe(train_catalog, TOY), settings, progress=False)
    # the study's variants (and its recipe at another epoch count) are cached, never served: the model that
    # served before the study serves after it (the study once re-pointed real.json at its last variant)
    base = variant(TOY, epochs=2)
    rows = run_study(train_catalog, settings, ["recipe", "raw"], tmp_path / "study", base=base, progress=False)
    assert resolve_model(settings) == str(served)
    assert {r["fingerprint"] for r in rows}.isdisjoint({RealRecipe(train_catalog, TOY).fingerprint()})
    assert all((settings.models_dir / f"real-{r['fingerprint']}").is_dir() for r in rows)
    assert [r["variant"] for r in rows] == ["recipe", "raw"]
    assert rows[0]["fingerprint"] != rows[1]["fingerprint"] and rows[1]["changes"] == {"caption_modes": ["raw"]}
    measured = ("zero_shot.articleType.weighted_f1", "image_to_image.precision@10_articleType",
                "name_queries.whole_split.R@10")  # the toy validation split is too small for the others
    assert set(measured) <= set(STUDY_METRICS)
    assert all(r[m] is not None and 0 <= r[m] <= 1 for r in rows for m in measured)
    assert "| raw |" in (tmp_path / "study" / "study.md").read_text()
    assert (tmp_path / "study" / "study.png").stat().st_size > 10_000
    with pytest.raises(ValueError, match="unknown variant"):
        run_study(train_catalog, Settings(home=tmp_path / "home"), ["nope"], tmp_path / "study", base=TOY)


def test_every_study_variant_is_a_distinct_recipe_its_report_can_write(train_catalog: Path) -> None:
    """Each variant changes the recipe (its own fingerprint, so its own cache folder) and its changes go into
    study.json, an architecture change included."""
    from training.real import STUDY, _jsonable

    fingerprints = {name: RealRecipe(train_catalog, variant(RealConfig(), **changes)).fingerprint()
                    for name, changes in STUDY.items()}
    assert len(set(fingerprints.values())) == len(STUDY)
    changes = json.loads(json.dumps({name: {k: _jsonable(v) for k, v in c.items()} for name, c in STUDY.items()}))
    assert changes["projection-256+proxies-2"]["spec"]["projection_dim"] == 256
    assert changes["raw"] == {"caption_modes": ["raw"]}
