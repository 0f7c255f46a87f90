"""The reader on the real styles.csv: exact accounting of all 40,001 rows, its quirks, no "NA" values."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from fashion_core.catalog.reader import read_catalog
from fashion_core.catalog.schema import KEYWORD_FIELDS


@pytest.fixture(scope="module")
def result(real_catalog: Path):
    return read_catalog(real_catalog)


def _data_rows(real_catalog: Path) -> list[tuple[int, list[str]]]:
    """(line, fields) of every non-empty data row, parsed independently of the reader (one row per line)."""
    lines = (real_catalog / "styles.csv").read_text(encoding="utf-8", errors="replace").splitlines()
    return [(n, next(csv.reader(io.StringIO(line)))) for n, line in enumerate(lines[1:], start=2) if line.strip()]


def test_every_row_is_a_product_or_a_reported_skip(real_catalog: Path, result) -> None:
    rows = _data_rows(real_catalog)
    assert len(rows) == len(result.products) + len(result.skipped)
    assert len({p.id for p in result.products}) == len(result.products)
    skipped_lines = [s.line for s in result.skipped]
    assert len(set(skipped_lines)) == len(skipped_lines) and all(s.line >= 2 and s.reason for s in result.skipped)
    product_ids = {p.id for p in result.products}
    for line, fields in rows:  # each row's id is a product or its line is a skip, never both
        assert (int(fields[0]) in product_ids) != (line in set(skipped_lines)), line
    # what the dataset's README says it holds: 5 ids never had an image, one load-test row, names given as "NA"
    reasons = result.reasons()
    assert reasons["missing image"] == 5
    assert reasons["test row"] >= 1
    assert {s.reason for s in result.skipped if s.reason.startswith("missing field")} == {
        "missing field: productDisplayName"}
    assert "24078" in {s.product_id for s in result.skipped}  # named "productDisplayName": a placeholder
    images = {int(p.stem) for p in (real_catalog / "images").glob("*.jpg")}
    assert all(p.image_path is not None and p.id in images for p in result.products)
    assert len(images - product_ids) == sum(1 for s in result.skipped if not s.reason.startswith("missing image"))


def test_unquoted_commas_keep_the_whole_name(real_catalog: Path, result) -> None:
    by_id = {p.id: p for p in result.products}
    long_rows = [fields for _, fields in _data_rows(real_catalog) if len(fields) > 10]
    assert len(long_rows) >= 20  # the README counts 22
    for fields in long_rows:
        name = " ".join(",".join(fields[9:]).split())
        assert by_id[int(fields[0])].productDisplayName == name
        assert "," in name
    assert by_id[23101].productDisplayName == "Turtle Men Formal Pink Tie, Cufflink and Pocket Square Combo Set"


def test_na_is_a_missing_value_never_a_filterable_one(result) -> None:
    for product in result.products:
        for name in (*KEYWORD_FIELDS, "productDisplayName"):
            assert str(getattr(product, name)).upper() != "NA", (product.id, name)
            assert str(getattr(product, name)).lower() != name.lower(), (product.id, name)  # no header as a value
    assert sum(1 for p in result.products if p.usage == "") >= 280
    assert sum(1 for p in result.products if p.baseColour == "") >= 10
    assert all(p.productDisplayName for p in result.products)
