"""`evaluate` side by side on one test split, occlusion maps, and the CLI commands."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from fashion_cli.main import main as cli
from fashion_core.catalog.reader import read_catalog
from fashion_core.localization import heatmap_png, occlusion_map
from training.evaluate import BARS, EvalConfig, evaluate_checkpoints


def test_evaluate_two_checkpoints(tiny_model_dir: Path, train_catalog: Path, tmp_path: Path) -> None:
    products = read_catalog(train_catalog).products
    results = evaluate_checkpoints([str(tiny_model_dir), str(tiny_model_dir)], products, tmp_path,
                                   EvalConfig(split=(0.6, 0.1), attribute_min_products=2,
                                              probe_fields=("articleType",)))
    assert len(results) == 2
    first, second = results
    assert first["n_test"] == second["n_test"] > 50
    assert first["name_queries"] == second["name_queries"]  # same model, same split, same numbers
    for protocol in ("whole_split", "gallery_100"):
        metrics = first["name_queries"][protocol]
        for key in ("R@1", "R@5", "R@10", "R@50", "MRR", "NDCG@10"):
            assert 0.0 <= metrics[key] <= 1.0, (protocol, key)
        assert metrics["R@1"] <= metrics["R@5"] <= metrics["R@50"]
    assert set(first["zero_shot"]) == {"articleType", "subCategory", "baseColour", "gender", "masterCategory"}
    assert first["zero_shot"]["articleType"]["per_class"]["Dresses"]["support"] > 0
    assert 0 < first["zero_shot"]["articleType"]["prior"]["weighted_f1"] < 1
    assert 0 <= first["linear_probe"]["articleType"]["accuracy"] <= 1
    attr = first["attribute_queries"]
    assert attr["n_queries"] == len(attr["queries"]) > 0 and all(q["products"] >= 2 for q in attr["queries"])
    assert 0 <= attr["precision@10_all"] <= attr["precision@10_articleType"] <= 1
    assert 0 <= first["image_to_image"]["precision@10_articleType"] <= 1
    assert len(first["worst_articleTypes"]) == min(10, len(first["zero_shot"]["articleType"]["per_class"]))
    assert set(first["bars"]) == set(BARS) and all(isinstance(b["met"], bool) for b in first["bars"].values())
    md = (tmp_path / "results.md").read_text()
    assert "### Name queries" in md and "### Bars" in md and md.count("| tiny-clip") >= 2 * 4
    assert json.loads((tmp_path / "results.json").read_text())[0]["n_test"] == first["n_test"]
    for name in ("similarity", "failures_attribute_queries", "failures_name_queries"):
        pictures = sorted(tmp_path.glob(f"{name}_*.png"))
        assert len(pictures) == 2 and all(Image.open(p).size[0] > 300 for p in pictures), name


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


def test_a_small_split_reports_what_it_cannot_measure(tiny_model_dir: Path, tmp_path: Path, capsys) -> None:
    from training.synthetic_catalog import generate_catalog

    catalog = generate_catalog(tmp_path / "cat", n=60, seed=0)  # a test split of about 4 products
    out = tmp_path / "ev"
    capsys.readouterr()
    assert cli(["evaluate", str(tiny_model_dir), "--catalog", str(catalog), "--out", str(out), "--no-probe"]) == 0
    printed = capsys.readouterr().out
    result = json.loads((out / "results.json").read_text())[0]
    assert result["n_test"] <= 10
    assert result["image_to_image"]["precision@10_articleType"] is None  # was a ValueError traceback
    assert "the split has" in result["not_measured"]["image_to_image.precision@10_articleType"]
    assert result["name_queries"]["gallery_100"] == {} and "name_queries.gallery_100" in result["not_measured"]
    assert 0 <= result["zero_shot"]["articleType"]["weighted_f1"] <= 1  # the rest is measured
    for path in ("attribute_queries.precision@10_all", "image_to_image.precision@10_articleType"):
        bar = result["bars"][path]
        assert bar["value"] is None and bar["met"] is None and bar["reason"], path  # not measured: never BELOW
    # measured on a handful of products: the figure is kept, the bar is not judged (was met/BELOW on 4 products)
    zero_shot = result["bars"]["zero_shot.articleType.weighted_f1"]
    assert zero_shot["value"] == result["zero_shot"]["articleType"]["weighted_f1"]
    assert zero_shot["met"] is None and zero_shot["too_few"] is True
    assert (zero_shot["n"], zero_shot["min_n"]) == (result["n_test"], 50)
    assert zero_shot["reason"].startswith(f"too few test products: {result['n_test']} < 50")
    assert not any(isinstance(bar["met"], bool) for bar in result["bars"].values())  # nothing judged on 4
    md = (out / "results.md").read_text()
    assert "n/a (not measured)" in md and "- BELOW" not in md and "| model |  |" not in md
    bar_row = next(line for line in md.splitlines() if line.startswith("| tiny-clip"))
    assert f"n/a (too few: {result['n_test']} < 50)" in bar_row and " ok" not in bar_row and "BELOW" not in bar_row
    assert "zero_shot.articleType.weighted_f1: >= 50 test products" in md  # the minimum is stated
    assert "Not measured: needs at least 100 test products" in md  # a sentence, not an empty table
    assert "with >= 5 test products" in md
    # piped, the console copy is the Markdown unwrapped: every table row on one line
    assert "### Bars" in printed
    rows = [line for line in printed.splitlines() if line.startswith("|")]
    assert rows and all(line.endswith("|") for line in rows)
    assert all(line in md.splitlines() for line in rows)


def test_a_bar_is_judged_only_from_its_minimum_up() -> None:
    from training.evaluate import BAR_MINIMUMS, _bar_cell, bars

    def judged(n_test: int, n_zero_shot: int, n_queries: int) -> dict:
        result = {"n_test": n_test, "not_measured": {},
                  "zero_shot": {"articleType": {"weighted_f1": 0.9, "n": n_zero_shot}},
                  "attribute_queries": {"n_queries": n_queries, "precision@10_articleType": 0.9,
                                        "precision@10_all": 0.1},
                  "image_to_image": {"precision@10_articleType": 0.9},
                  "name_queries": {"whole_split": {"R@10": 0.2}}}
        return bars(result)

    assert set(BAR_MINIMUMS) == set(BARS)
    at = judged(100, 50, 10)  # every minimum exactly: judged, met or missed
    assert {p: b["met"] for p, b in at.items()} == {
        "zero_shot.articleType.weighted_f1": True, "attribute_queries.precision@10_articleType": True,
        "attribute_queries.precision@10_all": False, "image_to_image.precision@10_articleType": True,
        "name_queries.whole_split.R@10": False}
    under = judged(49, 49, 9)  # one under each (of 50, 50, 10): none judged, the values kept, the reasons why
    assert all(b["met"] is None and b["too_few"] and b["value"] is not None for b in under.values())
    assert under["name_queries.whole_split.R@10"]["reason"].startswith("too few test products: 49 < 100")
    assert under["attribute_queries.precision@10_all"]["reason"].startswith("too few attribute queries: 9 < 10")
    assert _bar_cell(under["zero_shot.articleType.weighted_f1"]) == "n/a (too few: 49 < 50)"
    name_queries = judged(99, 50, 10)["name_queries.whole_split.R@10"]  # R@10 among 99: 10% by chance alone
    assert name_queries["met"] is None and (name_queries["n"], name_queries["min_n"]) == (99, 100)


def test_a_split_under_two_products_is_a_one_line_error(tiny_model_dir: Path, tmp_path: Path, capsys) -> None:
    from training.synthetic_catalog import generate_catalog

    catalog = generate_catalog(tmp_path / "cat", n=5, seed=0)
    capsys.readouterr()
    assert cli(["evaluate", str(tiny_model_dir), "--catalog", str(catalog), "--out", str(tmp_path / "ev"),
                "--no-probe"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "needs at least 2" in err and "Traceback" not in err


def _per_class(f1_support: dict[str, tuple[float, int]]) -> dict:
    return {"per_class": {name: {"f1": f1, "precision": f1, "recall": f1, "support": support}
                          for name, (f1, support) in f1_support.items()}}


def test_worst_article_types_state_their_filter() -> None:
    from training.evaluate import bars, markdown_tables, worst_article_types, worst_filter

    report = _per_class({"Skirts": (0.889, 5), "Caps": (1.0, 6), "Socks": (0.2, 3), "Belts": (0.5, 4)})
    worst = worst_article_types(report, {})
    assert [w["articleType"] for w in worst] == ["Skirts"]  # Socks, Belts: < 5 test products; Caps: perfect
    many = _per_class({f"T{i}": (i / 20, 5 + i) for i in range(15)})
    assert [w["articleType"] for w in worst_article_types(many, {})] == [f"T{i}" for i in range(10)]

    def md(rep: dict) -> str:
        result = {"model": "m", "tag": "m", "n_test": 40, "name_queries": {},
                  "attribute_queries": {}, "zero_shot": {}, "image_to_image": {"precision@10_articleType": 0.5},
                  "worst_articleTypes": worst_article_types(rep, {}), "worst_articleTypes_filter": worst_filter(rep)}
        return markdown_tables([result | {"bars": bars(result)}])

    few = md(report)
    assert "### Worst articleTypes by zero-shot F1, among the articleTypes with >= 5 test products (m)" in few
    assert "Fewer than 10: 2 of the split's 4 articleTypes have >= 5 test products; of those, 1 scored a " \
           "perfect F1" in few
    assert "| Skirts |" in few and "Caps" not in few
    assert "### 10 worst articleTypes by zero-shot F1, among the articleTypes with >= 5 test products (m)" in md(many)
    assert few.startswith("Test split: 40 products.") and "### Bars (test split)" in few
    # a report on the validation split (selection) says so: it was headed "Test split" and "Bars (test split)"
    result = {"model": "m", "tag": "m", "n_test": 40, "split": "val", "name_queries": {}, "attribute_queries": {},
              "zero_shot": {}, "image_to_image": {"precision@10_articleType": 0.5}, "worst_articleTypes": [],
              "worst_articleTypes_filter": worst_filter(report)}
    val = markdown_tables([result | {"bars": bars(result)}])
    assert val.startswith("Validation split: 40 products.") and "### Bars (validation split)" in val
    assert "test split" not in val.lower()
