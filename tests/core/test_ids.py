"""Ids and numbers out of range: ids are positive 64-bit decimal integers, checked in one place
(fashion_core.catalog.schema); a bad row is a reported skip, never an overflow that stops everything."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from fashion_core.catalog import read_catalog
from fashion_core.catalog.schema import MAX_PRODUCT_ID, parse_product_id, product_id_problem
from fashion_core.errors import InvalidInputError
from fashion_core.ingest import index_catalog
from fashion_core.stores.faiss import FaissIndex
from fashion_core.stores.filters import SearchFilter

HEADER = "id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,productDisplayName\n"


@pytest.mark.parametrize(("value", "ok"), [
    ("1", True), ("0042", True), (str(MAX_PRODUCT_ID), True), (MAX_PRODUCT_ID, True), (np.int64(7), True),
    ("0", False), (0, False), (-3, False), ("-3", False), (str(MAX_PRODUCT_ID + 1), False),
    ("12345678901234567890", False), ("9" * 5000, False), (2**64, False), ("²", False), ("١٢٣", False),
    (" 12", False), ("1e3", False), (12.0, False), (True, False), (None, False), ("", False),
])
def test_one_check_of_product_ids(value, ok: bool) -> None:
    assert (product_id_problem(value) is None) is ok
    if ok:
        assert parse_product_id(value) == int(value)
    else:
        with pytest.raises(InvalidInputError, match=r"^product id: "):
            parse_product_id(value)


def test_rows_with_out_of_range_ids_are_reported_skips_and_the_rest_is_indexed(tmp_path: Path, tiny_encoder,
                                                                              synthetic_catalog: Path) -> None:
    root = tmp_path / "catalog"
    (root / "images").mkdir(parents=True)
    good = [10001, 10002, 10003]
    rows = [f"{pid},Men,Apparel,Topwear,Tshirts,Red,Summer,2012,Casual,Red Tshirt {pid}" for pid in good]
    bad_ids = ["12345678901234567890", "99999999999999999999999", "²", "0"]
    rows[1:1] = [f"{pid},Men,Apparel,Topwear,Tshirts,Red,Summer,2012,Casual,Bad id row" for pid in bad_ids]
    rows.append("10009,Men,Apparel,Topwear,Tshirts,Red,Summer,1e12,Casual,Year out of range")
    (root / "styles.csv").write_text(HEADER + "\n".join(rows) + "\n", encoding="utf-8")
    for pid in [*good, 10009]:
        shutil.copy(synthetic_catalog / "images" / f"{pid}.jpg", root / "images" / f"{pid}.jpg")

    result = read_catalog(root)
    assert [p.id for p in result.products] == good
    skipped = {s.product_id: (s.line, s.reason) for s in result.skipped}
    assert set(skipped) == {*bad_ids, "10009"}
    assert skipped["10009"] == (9, "bad year: 1000000000000 is out of range 1..9999")  # a number, not a year
    assert skipped["12345678901234567890"] == (3, "bad id: '12345678901234567890' is out of range "
                                                  f"1..{MAX_PRODUCT_ID}")
    assert skipped["²"][0] == 5 and "not a plain decimal integer" in skipped["²"][1]

    # FAISS used to overflow on the whole batch
    index = FaissIndex(tmp_path / "faiss" / "products")
    report = index_catalog(root, tiny_encoder, index)
    assert report.indexed == 3 and index.all_ids() == set(good)
    assert {s.product_id for s in report.skipped} == {*bad_ids, "10009"}


def test_indexes_refuse_ids_out_of_range(tmp_path: Path, tiny_encoder) -> None:
    from fashion_core.stores.base import IndexMeta

    index = FaissIndex(tmp_path / "faiss")
    index.create(IndexMeta(name="x", backend="faiss", dim=tiny_encoder.info.dim))
    vectors = np.zeros((2, tiny_encoder.info.dim), np.float32)
    for ids in ([1, 2**64], [0, 5], np.array([3, -1])):
        with pytest.raises(InvalidInputError, match="bad product id"):
            index.upsert(ids, vectors, [{}, {}])
    index.upsert(np.array([1, MAX_PRODUCT_ID]), vectors, [{}, {}])
    assert index.all_ids() == {1, MAX_PRODUCT_ID}


def test_filter_years_out_of_range_are_invalid_input() -> None:
    for kwargs in ({"year_min": 10**23}, {"year_max": -1}, {"year_min": 0}, {"year_max": 2**31}):
        with pytest.raises(InvalidInputError, match=r"out of range 1\.\.9999"):
            SearchFilter.build(**kwargs)
    assert SearchFilter.build(year_min=1, year_max=9999).year_max == 9999
