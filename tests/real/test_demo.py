"""The demo's real-catalog road on a slice of the real catalog: grids of real products, a second run that
reuses the index instead of rebuilding it."""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image

from fashion_cli.main import main
from fashion_core.catalog.reader import read_catalog
from training.data import split_of


def _slice(real_catalog: Path, root: Path, n: int = 600) -> Path:
    """The first ``n`` products plus every test-split brown handbag (the demo's image query), images linked."""
    lines = (real_catalog / "styles.csv").read_text(encoding="utf-8", errors="replace").splitlines()
    products = {p.id: p for p in read_catalog(real_catalog).products}
    wanted = {int(line.split(",", 1)[0]) for line in lines[1:n + 1] if line.split(",", 1)[0].isdigit()}
    wanted |= {p.id for p in products.values()
               if p.articleType == "Handbags" and p.baseColour == "Brown" and split_of(p.id) == "test"}
    (root / "images").mkdir(parents=True)
    keep = [lines[0]]
    for line in lines[1:]:
        head = line.split(",", 1)[0]
        if head.isdigit() and int(head) in wanted and int(head) in products:
            keep.append(line)
            os.symlink(products[int(head)].image_path, root / "images" / f"{head}.jpg")
    (root / "styles.csv").write_text("\n".join(keep) + "\n")
    return root


def test_the_demo_searches_real_products_and_reuses_its_index(real_catalog: Path, real_model_dir: Path,
                                                              tmp_path: Path, capsys) -> None:
    catalog = _slice(real_catalog, tmp_path / "catalog")
    out = tmp_path / "demo"
    args = ["demo", "--catalog", str(catalog), "--out", str(out), "--model", str(real_model_dir), "--backend",
            "faiss", "--index-dir", str(tmp_path / "index")]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert "indexed" in first and "red dress for women" in first
    for name in ("red-dress-for-women.png", "mens-black-sports-shoes.png", "blue-jeans.png",
                 "silver-watch-for-women.png", "image-query.png"):
        assert Image.open(out / name).size[0] >= 800, name
    assert main(args) == 0
    assert "not re-indexed" in capsys.readouterr().out
