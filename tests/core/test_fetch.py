"""The dataset fetcher's conversion, on small local files in the same schemas (no network in tests)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from fashion_cli.main import main as cli
from fashion_core.catalog.fetch import convert_local, convert_parquet, layout_download
from fashion_core.catalog.reader import read_catalog
from fashion_core.errors import InvalidInputError

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


def _jpeg(colour: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (60, 80), colour).save(buf, format="JPEG")
    return buf.getvalue()


ROWS = [  # as the Hugging Face copy stores them: year a float, image a struct of JPEG bytes and a path
    {"id": 15970, "gender": "Men", "masterCategory": "Apparel", "subCategory": "Topwear", "articleType": "Shirts",
     "baseColour": "Navy Blue", "season": "Fall", "year": 2011.0, "usage": "Casual",
     "productDisplayName": "Turtle Check Men Navy Blue Shirt", "image": {"bytes": _jpeg((0, 0, 128)), "path": None}},
    {"id": 23101, "gender": "Men", "masterCategory": "Accessories", "subCategory": "Accessories",
     "articleType": "Accessory Gift Set", "baseColour": "Pink", "season": "Fall", "year": 2011.0, "usage": "Formal",
     "productDisplayName": "Turtle Men Formal Pink Tie, Cufflink and Pocket Square Combo Set",
     "image": {"bytes": _jpeg((255, 180, 200)), "path": None}},
    {"id": 52029, "gender": "Unisex", "masterCategory": "Apparel", "subCategory": "Topwear",
     "articleType": "Rain Jacket", "baseColour": "NA", "season": "Summer", "year": None, "usage": "NA",
     "productDisplayName": "Just Natural Unisex Charcoal Rain Jacket", "image": {"bytes": None, "path": None}},
]


def test_parquet_converts_to_the_kaggle_layout(tmp_path: Path) -> None:
    files = []
    for i, chunk in enumerate((ROWS[:2], ROWS[2:])):  # two files, as on the hub
        files.append(tmp_path / f"train-{i}.parquet")
        pq.write_table(pa.Table.from_pylist(chunk), files[-1])
    seen: list[int] = []
    converted = convert_parquet(files, tmp_path / "catalog", on_row=seen.append)
    assert (converted.rows, converted.unreadable, seen) == (3, {}, [1, 2, 3])
    result = read_catalog(tmp_path / "catalog")
    by_id = {p.id: p for p in result.products}
    assert sorted(by_id) == [15970, 23101]
    assert by_id[23101].productDisplayName == ROWS[1]["productDisplayName"]  # the comma survives
    assert by_id[15970].year == 2011 and by_id[15970].baseColour == "Navy Blue"
    assert Image.open(by_id[15970].image_path).size == (60, 80)
    assert [(s.product_id, s.reason.split(":")[0]) for s in result.skipped] == [("52029", "missing image")]


def test_a_file_without_the_columns_is_refused(tmp_path: Path) -> None:
    pq.write_table(pa.Table.from_pylist([{"id": 1, "name": "x"}]), tmp_path / "bad.parquet")
    with pytest.raises(InvalidInputError, match="missing columns"):
        convert_parquet([tmp_path / "bad.parquet"], tmp_path / "out")


def test_a_kaggle_archive_is_laid_out(tmp_path: Path) -> None:
    nested = tmp_path / "zip" / "myntradataset"
    (nested / "images").mkdir(parents=True)
    (nested / "styles.csv").write_text("id,gender,masterCategory,subCategory,articleType,baseColour,season,year,"
                                       "usage,productDisplayName\n15970,Men,Apparel,Topwear,Shirts,Navy Blue,Fall,"
                                       "2011,Casual,Turtle Check Men Navy Blue Shirt\n")
    (nested / "images" / "15970.jpg").write_bytes(_jpeg((0, 0, 128)))
    assert layout_download(tmp_path / "zip", tmp_path / "catalog") == 1
    assert [p.id for p in read_catalog(tmp_path / "catalog").products] == [15970]


def test_fetch_into_a_used_folder_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "styles.csv").write_text("id\n")
    assert cli(["fetch-dataset", str(tmp_path)]) == 2


def _parquet(path: Path) -> Path:
    pq.write_table(pa.Table.from_pylist(ROWS), path)
    return path


def _kaggle_folder(root: Path) -> Path:
    nested = root / "myntradataset"
    (nested / "images").mkdir(parents=True)
    (nested / "styles.csv").write_text("id,gender,masterCategory,subCategory,articleType,baseColour,season,year,"
                                       "usage,productDisplayName\n15970,Men,Apparel,Topwear,Shirts,Navy Blue,Fall,"
                                       "2011,Casual,Turtle Check Men Navy Blue Shirt\n")
    (nested / "images" / "15970.jpg").write_bytes(_jpeg((0, 0, 128)))
    (nested / "images" / "99999.jpg").write_bytes(_jpeg((0, 0, 0)))  # an image without a row
    return root


def test_fetch_converts_a_local_parquet_file_from_the_command_line(tmp_path: Path, capsys) -> None:
    source = _parquet(tmp_path / "train-0.parquet")
    assert cli(["fetch-dataset", str(tmp_path / "catalog"), "--from-file", str(source)]) == 0
    assert sorted(p.id for p in read_catalog(tmp_path / "catalog").products) == [15970, 23101]
    out = capsys.readouterr().out
    assert "2 products with an image" in out and "3 rows = 2 products + 1 skipped" in out  # not the 3 rows


def test_fetch_converts_a_local_kaggle_archive_or_folder(tmp_path: Path, capsys) -> None:
    import zipfile

    folder = _kaggle_folder(tmp_path / "unzipped")
    archive = tmp_path / "fashion-product-images-small.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.rglob("*")):
            zf.write(path, path.relative_to(folder))
    for source, dest in ((archive, tmp_path / "from-zip"), (folder, tmp_path / "from-folder")):
        assert cli(["fetch-dataset", str(dest), "--from-file", str(source)]) == 0
        assert [p.id for p in read_catalog(dest).products] == [15970]
        assert "1 products with an image" in capsys.readouterr().out  # not the 2 image files
    assert (folder / "myntradataset" / "styles.csv").is_file()  # a folder is copied, never moved away


def test_fetch_from_a_missing_or_unknown_file_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    assert cli(["fetch-dataset", str(tmp_path / "a"), "--from-file", str(tmp_path / "missing.parquet")]) == 2
    assert cli(["fetch-dataset", str(tmp_path / "b"), "--from-file", str(tmp_path / "notes.txt")]) == 2
    assert cli(["fetch-dataset", str(tmp_path / "c"), "--from-file", str(tmp_path / "notes.txt"),
                "--source", "kaggle"]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 3 and "Traceback" not in err


CORRUPT = _jpeg((200, 30, 30))[:300]  # a JPEG cut short: the header reads, the pixels do not
CORRUPT_ROW = {**ROWS[0], "id": 60001, "productDisplayName": "Corrupt Men Red Shirt",
               "image": {"bytes": CORRUPT, "path": None}}


def test_an_image_that_cannot_be_decoded_is_a_skip_not_a_product(tmp_path: Path, capsys) -> None:
    """A row whose image bytes do not decode was counted as a product (the file was written as it came, and the
    reader only looks for the file): it is a skip with the decoding error, its image not written."""
    source = tmp_path / "train-0.parquet"
    pq.write_table(pa.Table.from_pylist([*ROWS, CORRUPT_ROW]), source)
    summary = convert_local(source, tmp_path / "api")
    assert (summary.rows, summary.products, len(summary.skipped)) == (4, 2, 2)
    assert summary.products + len(summary.skipped) == summary.rows
    assert summary.reasons() == {"missing image": 1, "unreadable image": 1}
    [bad] = summary.unreadable()
    assert bad.product_id == "60001" and bad.line == 5 and "images/60001.jpg" in bad.reason
    assert not (tmp_path / "api" / "images" / "60001.jpg").exists()  # not written
    reread = read_catalog(tmp_path / "api")  # the reader reports the row, never a product
    assert 60001 not in {p.id for p in reread.products}
    assert any(s.product_id == "60001" for s in reread.skipped)

    assert cli(["fetch-dataset", str(tmp_path / "cli"), "--from-file", str(source)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "2 products with an image" in out and "4 rows = 2 products + 2 skipped" in out
    assert "unreadable image" in out and "60001 (line 5): unreadable image: images/60001.jpg" in out


def test_a_duplicate_id_row_never_gives_the_kept_product_its_image(tmp_path: Path) -> None:
    """The reader keeps the first row of an id and skips the others ('duplicate id'); a later row's image was
    written over the first's (images/<id>.jpg), so the product kept showed another row's picture; a later row's
    image, good or not, is not the kept product's."""
    other = {**ROWS[1], "id": ROWS[0]["id"], "productDisplayName": "Another Product Under The Same Id"}
    broken = {**ROWS[1], "id": ROWS[1]["id"], "image": {"bytes": b"not a jpeg", "path": None}}
    source = tmp_path / "train-0.parquet"
    pq.write_table(pa.Table.from_pylist([*ROWS, other, broken]), source)
    summary = convert_local(source, tmp_path / "api")
    assert (tmp_path / "api" / "images" / "15970.jpg").read_bytes() == ROWS[0]["image"]["bytes"]
    assert (tmp_path / "api" / "images" / "23101.jpg").read_bytes() == ROWS[1]["image"]["bytes"]
    assert (summary.rows, summary.products) == (5, 2)
    assert summary.reasons() == {"missing image": 1, "duplicate id": 2} and not summary.unreadable()


def test_an_undecodable_image_in_a_kaggle_archive_or_folder_is_a_skip(tmp_path: Path, capsys) -> None:
    import zipfile

    folder = _kaggle_folder(tmp_path / "unzipped")
    nested = folder / "myntradataset"
    with (nested / "styles.csv").open("a") as fh:
        fh.write("60001,Men,Apparel,Topwear,Shirts,Red,Fall,2011,Casual,Corrupt Men Red Shirt\n")
    (nested / "images" / "60001.jpg").write_bytes(b"not a jpeg at all")
    archive = tmp_path / "fashion-product-images-small.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.rglob("*")):
            zf.write(path, path.relative_to(folder))
    for source, dest in ((archive, tmp_path / "from-zip"), (folder, tmp_path / "from-folder")):
        summary = convert_local(source, dest / "api")
        assert (summary.rows, summary.products, [s.product_id for s in summary.unreadable()]) == (2, 1, ["60001"])
        assert [p.id for p in read_catalog(dest / "api").products] == [15970]
        assert cli(["fetch-dataset", str(dest / "cli"), "--from-file", str(source)]) == 0
        out = " ".join(capsys.readouterr().out.split())
        assert "1 products with an image" in out and "2 rows = 1 products + 1 skipped" in out
        assert "60001 (line 3): unreadable image" in out
    assert (nested / "images" / "60001.jpg").is_file()  # the user's folder is left as it was
