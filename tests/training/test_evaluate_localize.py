"""`evaluate` side by side on one test split, occlusion maps, and the CLI commands."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from fashion_cli.main import main as cli
from fashion_core.catalog.reader import read_catalog
from fashion_core.localization import heatmap_png, occlusion_map
from training.evaluate import EvalConfig, evaluate_checkpoints


def test_evaluate_two_checkpoints(tiny_model_dir: Path, train_catalog: Path, tmp_path: Path) -> None:
    products = read_catalog(train_catalog).products
    results = evaluate_checkpoints([str(tiny_model_dir), str(tiny_model_dir)], products, tmp_path,
                                   EvalConfig(split=(0.7, 0.1)))
    assert len(results) == 2
    first, second = results
    assert first["n_test"] == second["n_test"] > 50
    assert first["text_to_image"] == second["text_to_image"]  # same model, same split, same numbers
    for key in ("R@1", "R@5", "R@10", "R@50", "MRR", "NDCG@10"):
        assert 0.0 <= first["text_to_image"][key] <= 1.0
    assert first["text_to_image"]["R@1"] <= first["text_to_image"]["R@5"] <= first["text_to_image"]["R@50"]
    assert set(first["zero_shot"]) == {"articleType", "baseColour", "gender", "masterCategory"}
    assert first["zero_shot"]["articleType"]["per_class"]["Dresses"]["support"] > 0
    assert 0 <= first["linear_probe"]["articleType"]["accuracy"] <= 1
    md = (tmp_path / "results.md").read_text()
    assert "### Text -> image retrieval" in md and md.count("| tiny-clip") >= 2 * 4
    assert json.loads((tmp_path / "results.json").read_text())[0]["n_test"] == first["n_test"]
    assert len(list(tmp_path.glob("similarity_*.png"))) == 2


def test_occlusion_map_finds_the_changed_region(tiny_encoder) -> None:
    # a black square on grey: only occluding the square changes the image, so only there can similarity move
    image = Image.new("RGB", (64, 64), (128, 128, 128))
    image.paste((0, 0, 0), (40, 8, 56, 24))
    loc = occlusion_map(tiny_encoder, image, "a black square", grid=8, patch=1.0)
    assert loc.heatmap.shape == (8, 8) and loc.heatmap.max() <= 1.0
    changed = np.zeros((8, 8), dtype=bool)
    changed[1:3, 5:7] = True
    assert loc.heatmap[~changed].max() < 0.01  # hiding grey on grey changes nothing
    x0, y0, x1, y1 = loc.box
    assert 0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 64
    png = heatmap_png(image, loc)
    assert png.startswith(b"\x89PNG")


def test_cli_train_tagger_evaluate_localize(tiny_model_dir: Path, train_catalog: Path, tmp_path: Path) -> None:
    assert cli(["train-tagger", str(train_catalog), "--out", str(tmp_path / "tagger.json"), "--epochs", "2"]) == 0
    assert (tmp_path / "tagger.json").is_file()
    assert cli(["evaluate", str(tiny_model_dir), "--catalog", str(train_catalog), "--out", str(tmp_path / "ev"),
                "--no-probe"]) == 0
    assert (tmp_path / "ev" / "results.md").is_file()
    image = next(p for p in read_catalog(train_catalog).products if p.articleType == "Dresses").image_path
    assert cli(["localize", str(image), "red dress", "--model", str(tiny_model_dir), "--out",
                str(tmp_path / "loc.png"), "--grid", "4"]) == 0
    assert Image.open(tmp_path / "loc.png").size == Image.open(image).size
    assert cli(["localize", str(tmp_path / "missing.jpg"), "red dress", "--model", str(tiny_model_dir)]) == 2
    assert cli(["train", str(train_catalog), "--base", str(tiny_model_dir), "--out", str(tmp_path / "m"),
                "--captions", "structured"]) == 2  # structured captions need a tagger: one-line error
