"""The catalog reader on a deliberately dirty styles.csv, and the synthetic generator."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fashion_core.catalog import read_catalog
from fashion_core.errors import InvalidInputError, NotFoundError
from training.synthetic_catalog import ARTICLES, COLOURS, generate_catalog

HEADER = "id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,productDisplayName\n"


def _write(root: Path, body: bytes, images: list[int]) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "styles.csv").write_bytes(HEADER.encode() + body)
    for pid in images:
        (root / "images" / f"{pid}.jpg").write_bytes(b"jpeg bytes are not checked by the reader")
    return root


def test_dirty_rows_are_reported_with_reasons_not_dropped(tmp_path: Path) -> None:
    body = (
        b"1,Men,Apparel,Topwear,Tshirts,Navy Blue,Fall,2011,Casual,Turtle Check Men Navy Blue Shirt\n"
        b"2,Men,Apparel,Topwear,Tshirts,Red,Summer,2012,Casual,Puma Men Red, Round Neck, T-shirt\n"  # commas
        b"3,Women,Apparel,Topwear,Shirts,Blue,Fall,20x1,Casual,Mango Women Blue Shirt\n"  # bad year
        b"4,,Apparel,Topwear,Tshirts,Black,Summer,2012,Casual,Nike Black T-shirt\n"  # missing gender
        b"5,Men,Footwear,Shoes,Casual Shoes,Brown,Winter,2013,Casual,Fila Shoes\n"  # no image
        b"6,Men,Footwear\n"  # truncated
        b"7,Women,Apparel,Dress,Dresses,Red,Summer,,Party,Caf\xe9 Women Red Dress\n"  # cp1252, empty year
        b"x8,Women,Apparel,Dress,Dresses,Red,Summer,2014,Party,Bad id\n"
        b"9,Women,Apparel,Dress,Dresses,Red,Summer,inf,Party,Year too big for an int\n"
        b"10,Women,Apparel,Dress,Dresses,Red,Summer,1e12,Party,A number but not a year\n"
        b"1,Men,Apparel,Topwear,Tshirts,Navy Blue,Fall,2011,Casual,duplicate of 1\n"
        b"\n"
    )
    root = _write(tmp_path / "cat", body, images=[1, 2, 3, 4, 6, 7])
    result = read_catalog(root)

    assert [p.id for p in result.products] == [1, 2, 7]
    by_id = {p.id: p for p in result.products}
    assert by_id[2].productDisplayName == "Puma Men Red, Round Neck, T-shirt"
    assert by_id[7].productDisplayName == "Café Women Red Dress"
    assert by_id[7].year is None
    assert by_id[1].image_path == root / "images" / "1.jpg"
    reasons = {s.product_id: s.reason for s in result.skipped}
    assert reasons["3"].startswith("bad year")
    assert reasons["4"] == "missing field: gender"
    assert reasons["5"].startswith("missing image")
    assert reasons["6"].startswith("too few fields")
    assert reasons["x8"].startswith("bad id")
    assert reasons["9"].startswith("bad year") and reasons["10"].startswith("bad year")
    assert reasons["1"].startswith("duplicate id")
    # every non-empty data row is either a product or a reported skip
    assert len(result.products) + len(result.skipped) == 11
    assert {s.line for s in result.skipped} == {4, 5, 6, 7, 9, 10, 11, 12}

    report = tmp_path / "report.json"
    result.write_report(report)
    data = json.loads(report.read_text())
    assert data["skipped"] == 8 and data["reasons"]["bad year"] == 3


def test_missing_markers_and_header_placeholders_are_missing_values(tmp_path: Path) -> None:
    body = (
        b"1,Women,Accessories,Bags,Handbags,NA,Summer,2012,n/a,Baggit Women Handbag\n"  # colour, usage missing
        b"2,Women,Footwear,Shoes,Heels,Black,Winter,2015,Casual,productDisplayName\n"  # the header as a name
        b"3,Men,Apparel,Topwear,Shirts,baseColour,Fall,2011,usage,Turtle Men Shirt\n"  # headers as values
        b"4,Men,Apparel,Topwear,Shirts,Blue,Fall,2011,Casual,NULL\n"
    )
    result = read_catalog(_write(tmp_path / "cat", body, images=[1, 2, 3, 4]))
    by_id = {p.id: p for p in result.products}
    assert sorted(by_id) == [1, 3]
    assert (by_id[1].baseColour, by_id[1].usage) == ("", "")
    assert (by_id[3].baseColour, by_id[3].usage) == ("", "")
    reasons = {s.product_id: s.reason for s in result.skipped}
    assert reasons == {"2": "missing field: productDisplayName", "4": "missing field: productDisplayName"}


def test_missing_catalog_and_bad_header_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match=r"no styles\.csv"):
        read_catalog(tmp_path)
    (tmp_path / "styles.csv").write_text("foo,bar\n1,2\n")
    with pytest.raises(InvalidInputError, match="missing columns"):
        read_catalog(tmp_path)


def test_synthetic_catalog_is_deterministic_and_covers_types_and_colours(tmp_path: Path) -> None:
    a = generate_catalog(tmp_path / "a", n=len(ARTICLES) * 12, seed=3)
    b = generate_catalog(tmp_path / "b", n=len(ARTICLES) * 12, seed=3)
    assert (a / "styles.csv").read_bytes() == (b / "styles.csv").read_bytes()
    assert (a / "images" / "10005.jpg").read_bytes() == (b / "images" / "10005.jpg").read_bytes()
    products = read_catalog(a).products
    assert len(products) == len(ARTICLES) * 12
    assert {p.articleType for p in products} == set(ARTICLES)
    assert len({p.baseColour for p in products}) >= 10 and {p.baseColour for p in products} <= set(COLOURS)
    assert all(p.gender in ARTICLES[p.articleType].genders for p in products)
    c = generate_catalog(tmp_path / "c", n=20, seed=4)
    assert (c / "styles.csv").read_bytes() != (a / "styles.csv").read_bytes()[: len((c / "styles.csv").read_bytes())]


def test_synthetic_dirty_rows_are_all_reported(synthetic_catalog: Path) -> None:
    result = read_catalog(synthetic_catalog)
    # stray-comma row, the cp1252 row, the NA row and the corrupt-image row (the indexer reports that one)
    assert len(result.products) == 140 + 4
    assert result.reasons() == {"bad year": 1, "missing field": 2, "missing image": 1, "too few fields": 1,
                                "test row": 1}
    na_row = next(p for p in result.products if p.productDisplayName == "Baggit Women Handbag")
    assert na_row.baseColour == "" and na_row.usage == ""


def test_a_stray_quote_costs_its_own_line_only(tmp_path: Path) -> None:
    """A quote opened and never closed on its line is that line's skip (with its own line number); it never
    swallows the rows after it, so every physical data line is a product or a skip."""
    body = (
        b"9000005,Men,Apparel,Topwear,Tshirts,Blue,Summer,2012,Casual,Good shirt\n"  # line 2
        b'9000006,Women,Apparel,Topwear,Tops,"Blue,Summer,2012,Casual,Broken top\n'  # line 3: stray quote
        b"9000007,Men,Apparel,Topwear,Tshirts,Red,Summer,2012,Casual,Next shirt\n"  # line 4
        b'9000008,Men,Apparel,Topwear,Tshirts,Red,Summer,2012,Casual,"Quoted, closed" name\n'  # line 5
        b'9000009,Men,Apparel,Topwear,Tshirts,Red,Summer,2012,Casual,"Opens in the name\n'  # line 6: stray
        b'9000010,Men,Apparel,Topwear,Tshirts,Red,Summer,2012,Casual,and a row that ends it"\n'  # line 7
        b'9000011,Men,Apparel,Topwear,Tshirts,Red,Summer,2012,Casual,Ends on the last line"\n'  # line 8
    )
    result = read_catalog(_write(tmp_path / "cat", body, images=list(range(9000005, 9000012))))
    assert [p.id for p in result.products] == [9000005, 9000007, 9000008, 9000010, 9000011]
    assert [(s.line, s.product_id) for s in result.skipped] == [(3, "9000006"), (6, "9000009")]
    assert all(s.reason.startswith("unbalanced quote") for s in result.skipped)
    assert {p.id: p.productDisplayName for p in result.products}[9000008] == "Quoted, closed name"
    # a stray quote on the last line has nothing to swallow, and is still its own skip
    last = tmp_path / "last"
    result = read_catalog(_write(last, body[:body.index(b"9000007")], images=[9000005, 9000006]))
    assert [p.id for p in result.products] == [9000005]
    assert [(s.line, s.reason.split(":")[0]) for s in result.skipped] == [(3, "unbalanced quote")]


def test_a_quoted_field_may_span_lines_when_the_record_is_a_valid_row(tmp_path: Path) -> None:
    """CSV lets a quoted field hold a newline (the real file has none): such a record is one product, reported
    at the line where it starts, only when it parses into a valid row."""
    body = (
        b'1,Men,Apparel,Topwear,Tshirts,Blue,Summer,2012,Casual,"Two-line\n'  # line 2
        b'name, with a comma"\n'  # line 3
        b"2,Men,Apparel,Topwear,Tshirts,Red,Summer,2012,Casual,After it\n"  # line 4
        b'3,Men,Apparel,Topwear,Tshirts,"Red\n'  # line 5: closes into a row with too few fields
        b'Blue",Summer\n'  # line 6
        b"4,Men,Apparel,Topwear,Tshirts,Red,Summer,2012,Casual,Last\n"  # line 7
    )
    result = read_catalog(_write(tmp_path / "cat", body, images=[1, 2, 3, 4]))
    assert [(p.id, p.productDisplayName) for p in result.products] == [
        (1, "Two-line name, with a comma"), (2, "After it"), (4, "Last")]
    assert [(s.line, s.product_id, s.reason.split(":")[0]) for s in result.skipped] == [
        (5, "3", "unbalanced quote"), (6, 'Blue"', "too few fields")]


def test_image_skips_found_after_reading_name_the_row_line(tmp_path: Path, synthetic_catalog: Path,
                                                           tiny_encoder) -> None:
    """A product whose image turns out unreadable (or gone) when it is embedded is reported with its styles.csv
    line, like the reader's own skips."""
    from fashion_core.ingest import embed_products, index_catalog
    from fashion_core.stores.faiss import FaissIndex

    body = (
        b"1,Men,Apparel,Topwear,Tshirts,Blue,Summer,2012,Casual,Good shirt\n"  # line 2
        b"\n"  # line 3: blank
        b"2,Men,Apparel,Topwear,Tshirts,Red,Summer,2012,Casual,Corrupt image\n"  # line 4
        b"3,Men,Apparel,Topwear,Tshirts,Red,Summer,2012,Casual,Image deleted after reading\n"  # line 5
    )
    root = _write(tmp_path / "cat", body, images=[2, 3])
    shutil.copy(synthetic_catalog / "images" / "10001.jpg", root / "images" / "1.jpg")
    result = read_catalog(root)
    assert [(p.id, p.line) for p in result.products] == [(1, 2), (2, 4), (3, 5)]
    (root / "images" / "3.jpg").unlink()
    batch = embed_products(result.products, tiny_encoder)
    assert batch.ids == [1]
    assert [(s.line, s.product_id, s.reason.split(":")[0]) for s in batch.skipped] == [
        (4, "2", "unreadable image"), (5, "3", "unreadable image")]
    report = index_catalog(root, tiny_encoder, FaissIndex(tmp_path / "index"))
    assert report.indexed == 1  # read again: 3 is now the reader's skip, 2 the embedding's
    assert [(s.line, s.product_id, s.reason.split(":")[0]) for s in report.skipped] == [
        (5, "3", "missing image"), (4, "2", "unreadable image")]
    # the line is where the product came from, not part of it: payloads and equality ignore it
    product = result.products[0]
    assert "line" not in product.payload()
    assert type(product).from_payload(product.payload(), product.image_path) == product


def test_skipped_rows_are_warned_of_once_per_file_content(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A command reads its catalog several times (the demo: training, then indexing): one warning per content."""
    body = b"1,Men,Apparel,Topwear,Tshirts,Navy Blue,Fall,2011,Casual,Shirt\n2,Men,Footwear\n"
    root = _write(tmp_path / "cat", body, [1])

    def warnings() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "rows skipped" in r.getMessage()]

    with caplog.at_level("DEBUG", logger="fashion_core.catalog.reader"):
        assert len(read_catalog(root).skipped) == 1
        assert len(read_catalog(root).skipped) == 1  # still reported in the result, only not warned again
        assert len(warnings()) == 1
        assert any("rows skipped" in r.getMessage() for r in caplog.records if r.levelname == "DEBUG")
        (root / "styles.csv").write_bytes(HEADER.encode() + body + b"3,Men\n")  # new content: warned of again
        assert len(read_catalog(root).skipped) == 2
        assert len(warnings()) == 2
