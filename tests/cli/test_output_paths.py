"""Output paths are checked before the work (indexing, a search, training): a directory, a parent that is a file,
an extension no picture format has, a read-only folder are one `error:` line at once, not a crash afterwards."""

from __future__ import annotations

import os

import pytest

import fashion_cli.commands_core
from fashion_cli.main import main
from fashion_core.errors import InvalidInputError
from fashion_core.outputs import check_output_dir, check_output_file
from fashion_core.pictures import Tile, check_picture_path, render_rows


def test_check_output_file(tmp_path) -> None:
    (tmp_path / "file").write_text("x")
    assert check_output_file(tmp_path / "new" / "deeper" / "r.json") == tmp_path / "new" / "deeper" / "r.json"
    assert check_output_file(tmp_path / "file") == tmp_path / "file"  # overwritten
    with pytest.raises(InvalidInputError, match=r"--report .*: is a directory"):
        check_output_file(tmp_path, "--report")
    with pytest.raises(InvalidInputError, match=r"file is not a directory"):
        check_output_file(tmp_path / "file" / "r.json")
    with pytest.raises(InvalidInputError, match=r"unsupported extension '.txt'; use one of .bmp, .gif, .jpeg"):
        check_picture_path(tmp_path / "grid.txt")
    with pytest.raises(InvalidInputError, match=r"unsupported extension '\(none\)'"):
        check_picture_path(tmp_path / "grid")
    assert check_picture_path(tmp_path / "GRID.PNG").name == "GRID.PNG"


def test_check_output_dir(tmp_path) -> None:
    (tmp_path / "file").write_text("x")
    assert check_output_dir(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    with pytest.raises(InvalidInputError, match=r"--out .*file: not a directory"):
        check_output_dir(tmp_path / "file", "--out")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_read_only_folder(tmp_path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o500)
    with pytest.raises(InvalidInputError, match="not writable"):
        check_output_file(folder / "r.json")


def test_render_rows_refuses_a_bad_path_before_drawing(tmp_path) -> None:
    with pytest.raises(InvalidInputError, match="unsupported extension"):
        render_rows([[Tile("q", text="q")]], tmp_path / "grid.txt")
    assert not (tmp_path / "grid.txt").exists()
    assert render_rows([[Tile("q", text="q")]], tmp_path / "grid.jpg").stat().st_size > 0


@pytest.fixture
def no_work(monkeypatch):
    """Opening the encoder or the engine (the work) fails the test: the path check must come first."""
    def started(*_args, **_kwargs):
        raise AssertionError("the work started before the output path was checked")

    monkeypatch.setattr(fashion_cli.commands_core, "open_encoder", started)
    monkeypatch.setattr(fashion_cli.commands_core, "open_engine", started)


def test_index_report_is_checked_before_indexing(tmp_path, no_work, capsys) -> None:
    (tmp_path / "catalog").mkdir()
    assert main(["index", str(tmp_path / "catalog"), "--report", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"error: --report {tmp_path}: is a directory; give a file name\n"


@pytest.mark.parametrize(("grid", "message"), [
    ("out.txt", "--grid out.txt: unsupported extension '.txt'"),
    ("{tmp}", "--grid {tmp}: is a directory"),
])
def test_search_grid_is_checked_before_searching(grid, message, tmp_path, no_work, capsys) -> None:
    assert main(["search", "red", "--grid", grid.format(tmp=tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: " + message.format(tmp=tmp_path)) and err.count("\n") == 1


def test_captions_wrap_to_the_tiles_width_in_pixels() -> None:
    """A caption wrapped at 26 characters ran past a 160 px tile when its letters were wide ("...Women Red Dress"
    lost its last letter in the demo's grid); wrapped by Pillow's measure, every line fits and no word is lost."""
    from fashion_core.pictures import TILE, _font, wrap_to_width

    font = _font(11)
    caption = "Lakme Absolute MMMM Women WWWW Red Dresses Dress Women Red Dresses"
    lines = wrap_to_width(caption, font, TILE - 8, 10)
    assert all(font.getlength(line) <= TILE - 8 for line in lines)
    assert " ".join(lines).split() == caption.split()
    path = "/work/shared/datasets/fashion-product-images-small/images/11518.jpg"
    cut = wrap_to_width(path, font, TILE - 8, 10)  # one word wider than a line: cut where each line is full
    assert "".join(cut) == path and len(cut) > 1 and all(font.getlength(line) <= TILE - 8 for line in cut)
    assert len(wrap_to_width(caption, font, TILE - 8, 2)) == 2
