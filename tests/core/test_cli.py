"""The CLI end to end on the embedded default, and its error paths: one line, non-zero exit, no traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from fashion_cli.main import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, tiny_model_dir, synthetic_catalog) -> dict[str, str]:
    """A synthetic catalog indexed with the tiny model into a FAISS index and a local Qdrant store."""
    root = tmp_path_factory.mktemp("cli")
    mp = pytest.MonkeyPatch()
    mp.setenv("FASHION_HOME", str(root / "home"))
    for backend in ("faiss", "qdrant"):
        code = main(["index", str(synthetic_catalog), "--model", str(tiny_model_dir), "--backend", backend,
                     "--index-dir", str(root / "index"), "--report", str(root / f"skipped-{backend}.json")])
        assert code == 0
    mp.undo()
    return {"model": str(tiny_model_dir), "index_dir": str(root / "index"), "root": str(root)}


def _args(indexed: dict[str, str], backend: str = "faiss") -> list[str]:
    return ["--model", indexed["model"], "--backend", backend, "--index-dir", indexed["index_dir"]]


def test_index_reports_counts_and_skip_reasons(indexed) -> None:
    report = json.loads((Path(indexed["root"]) / "skipped-faiss.json").read_text())
    assert report["indexed"] == 143  # 140 clean + the stray-comma row, the cp1252 row and the NA row
    assert report["reasons"] == {"bad year": 1, "missing field": 2, "missing image": 1, "test row": 1,
                                 "too few fields": 1, "unreadable image": 1}


@pytest.mark.parametrize("backend", ["faiss", "qdrant"])
def test_text_search_with_filters_json_and_grid(indexed, capsys, tmp_path, backend) -> None:
    grid = tmp_path / "grid.png"
    code = main(["search", "men's blue shoes", "--gender", "men", "--colour", "Blue,Black", "-k", "5",
                 "--json", "--grid", str(grid), *_args(indexed, backend)])
    assert code == 0
    hits = json.loads(capsys.readouterr().out.splitlines()[0])
    assert 0 < len(hits) <= 5
    assert all(h["gender"] == "Men" and h["baseColour"] in {"Blue", "Black"} for h in hits)
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    with Image.open(grid) as image:
        assert image.width == 5 * 160 and image.height > 160


def test_the_title_names_filter_values_as_the_index_spells_them(indexed, capsys) -> None:
    """Values typed in another case are searched as the index holds them, and the title says so (it said
    "gender=men" and "baseColour in ['blue', 'BLUE']" for what was searched as gender=Men, baseColour=Blue)."""
    assert main(["search", "shoes", "--gender", "men", "--colour", "blue,BLUE", "-k", "3", *_args(indexed)]) == 0
    out = " ".join(capsys.readouterr().out.split())  # the table may wrap its title
    assert "gender=Men AND baseColour=Blue" in out and "men AND" not in out and "'blue'" not in out


def test_text_search_modes(indexed, capsys) -> None:
    assert main(["search", "puma shoes", "--mode", "lexical", "-k", "3", "--json", *_args(indexed)]) == 0
    hits = json.loads(capsys.readouterr().out.splitlines()[0])
    assert hits and all(h["matched"] == "lexical" and "Puma" in h["productDisplayName"] for h in hits)
    assert main(["search", "puma shoes", "-k", "4", *_args(indexed)]) == 0
    out = capsys.readouterr().out
    assert "hybrid" in out and "matched" in out and "lexical" in out
    # the embedded Qdrant store ranks by its own BM25 (stores/qdrant/lexical.py), same words
    assert main(["search", "puma shoes", "--mode", "lexical", "-k", "3", "--json", *_args(indexed, "qdrant")]) == 0
    hits = json.loads(capsys.readouterr().out.splitlines()[0])
    assert hits and all(h["matched"] == "lexical" and "Puma" in h["productDisplayName"] for h in hits)
    assert all("lexical_text" not in h for h in hits)


def test_image_search_finds_the_query_product_first(indexed, synthetic_catalog, capsys) -> None:
    query = synthetic_catalog / "images" / "10003.jpg"
    assert main(["search", "--image", str(query), "-k", "3", "--json", *_args(indexed)]) == 0
    hits = json.loads(capsys.readouterr().out.splitlines()[0])
    assert hits[0]["id"] == 10003 and hits[0]["score"] == pytest.approx(1.0, abs=1e-4)


def test_search_like_a_product_finds_its_neighbours_without_it(indexed, synthetic_catalog, capsys, tmp_path) -> None:
    """`search --like ID` is "more like this" without a running query service: the product's stored image vector
    searched under the filters, the product itself left out; the grid shows its photo as the query."""
    assert main(["search", "--image", str(synthetic_catalog / "images" / "10003.jpg"), "-k", "6", "--json",
                 *_args(indexed)]) == 0
    by_image = [h["id"] for h in json.loads(capsys.readouterr().out.splitlines()[0])]
    for backend in ("faiss", "qdrant"):
        assert main(["search", "--like", "10003", "-k", "5", "--json", "--grid", str(tmp_path / "like.png"),
                     *_args(indexed, backend)]) == 0
        hits = [h["id"] for h in json.loads(capsys.readouterr().out.splitlines()[0])]
        assert hits == [i for i in by_image if i != 10003][:5], backend
        assert Image.open(tmp_path / "like.png").size[0] > 0
    assert main(["search", "--like", "10003", "-k", "5", "--gender", "Women", "--json", *_args(indexed)]) == 0
    women = json.loads(capsys.readouterr().out.splitlines()[0])
    assert women and all(h["gender"] == "Women" and h["id"] != 10003 for h in women)


def test_classify_prints_probabilities(indexed, synthetic_catalog, capsys) -> None:
    image = synthetic_catalog / "images" / "10000.jpg"
    assert main(["classify", str(image), "--labels", "sandal,flip flop,heels", "--json", *_args(indexed)]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert {s["label"] for s in scores} == {"sandal", "flip flop", "heels"}
    assert sum(s["probability"] for s in scores) == pytest.approx(1.0, abs=1e-5)


def _bad_cases(indexed, catalog: Path, tmp: Path) -> list[tuple[list[str], str]]:
    corrupt = tmp / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    args = _args(indexed)
    return [
        (["index", str(tmp / "no-such-catalog"), *args], "no such catalog directory"),
        (["search", "--image", str(tmp / "missing.jpg"), *args], "no such image file"),
        (["search", "--image", str(corrupt), *args], "corrupt.jpg"),
        (["search", "   ", *args], "query is empty"),
        (["search", "red dress", "--colour", "Ultraviolet", *args], "unknown baseColour value 'Ultraviolet'"),
        (["search", "red dress", "-k", "0", *args], "-k must be positive"),
        (["search", "red dress", "-k", "-3", *args], "-k must be positive"),
        (["search", "red dress", "--image", str(catalog / "images" / "10000.jpg"), *args], "either a text"),
        (["search", "--like", "10000", "--image", str(catalog / "images" / "10000.jpg"), *args], "either a text"),
        (["search", "--like", "99999999", *args], "product 99999999 is not in the index"),
        (["search", "red dress", "--year-min", "2016", "--year-max", "2012", *args], "year range is empty"),
        (["classify", str(corrupt), "--labels", "a,b", *args], "corrupt.jpg"),
        (["classify", str(catalog / "images" / "10000.jpg"), "--labels", "solo", *args], "at least two labels"),
        (["search", "red dress", "--model", str(tmp / "no-model"), "--index-dir", indexed["index_dir"]],
         "no such checkpoint"),
        (["search", "red dress", "--backend", "faiss", "--index-dir", str(tmp / "empty-index"),
          "--model", indexed["model"]], "run `fashion-search index` first"),
    ]


def test_bad_input_gives_one_line_error_and_exit_2(indexed, synthetic_catalog, tmp_path, capsys) -> None:
    for argv, message in _bad_cases(indexed, synthetic_catalog, tmp_path):
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2, argv
        assert err.startswith("error: ") and message in err, (argv, err)
        assert "Traceback" not in err and err.count("\n") == 1, err


def test_no_model_configured_says_how_to_get_one(tmp_path, capsys) -> None:
    assert main(["search", "red dress"]) == 2
    assert "set FASHION_MODEL" in capsys.readouterr().err


def test_installed_entry_point_exits_nonzero_without_traceback(indexed, tmp_path) -> None:
    env = {**os.environ, "FASHION_HOME": str(tmp_path)}
    exe = Path(sys.executable).with_name("fashion-search")
    proc = subprocess.run([str(exe), "search", "dress", "-k", "0", *_args(indexed)], capture_output=True,
                          text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: -k must be positive, got 0"


def test_demo_without_the_real_catalog_says_how_to_get_it_and_runs_on_a_synthetic_one(
        tiny_model_dir, tmp_path, capsys, monkeypatch) -> None:
    import fashion_core.catalog.real

    common = ["--model", str(tiny_model_dir), "--backend", "faiss", "--index-dir", str(tmp_path / "index")]
    assert main(["demo", "--catalog", str(tmp_path / "nowhere"), *common]) == 2  # a mistyped path is an error
    assert "no styles.csv" in capsys.readouterr().err
    monkeypatch.setattr(fashion_core.catalog.real, "candidate_dirs", lambda settings=None: [])  # a machine without
    out = tmp_path / "demo"
    code = main(["demo", "--n", "60", "--out", str(out), *common])
    assert code == 0
    printed = capsys.readouterr().out
    assert "fetch-dataset" in printed and "synthetic catalog" in printed
    for name in ("red-dress.png", "mens-black-sports-shoes.png", "image-query.png", "skipped.json"):
        assert (out / name).stat().st_size > 0, name
    assert Image.open(out / "red-dress.png").size[0] >= 800
