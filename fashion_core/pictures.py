"""Pictures people would rather look at than read: rows of product tiles with a query cell in front.

One home for drawing them: the CLI's results grids, the demo's grids and the evaluation report's failure grids
all call ``render_rows``. Pillow only (no display needed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps

from fashion_core.errors import FashionSearchError
from fashion_core.images import load_image
from fashion_core.outputs import check_output_file

TILE, CAPTION_H, TITLE_H = 160, 54, 30
QUERY_COLOUR = (220, 120, 0)
NEUTRAL, RIGHT, WRONG = (60, 120, 200), (40, 160, 60), (210, 40, 40)
# Raster formats Pillow writes from an RGB canvas (the format follows the extension).
PICTURE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"})


@dataclass(frozen=True)
class Tile:
    """One cell: a product image (or a text or a PIL image as the query), a caption, and a verdict colour.

    ``ok`` True draws a green frame (a right answer), False a red one, None the neutral blue.
    """

    caption: str
    image_path: str | Path | None = None
    image: Image.Image | None = None
    text: str | None = None
    ok: bool | None = None
    is_query: bool = False


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def wrap_to_width(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: float,
                  max_lines: int) -> list[str]:
    """``text`` in at most ``max_lines`` lines, each at most ``width`` pixels wide in ``font`` (Pillow's own text
    measure): words kept whole where they fit a line, a longer one (a file path) cut where the line is full.
    Wrapping at a fixed count of characters let wide letters run past a tile's edge ("...Red Dresse")."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        candidate = f"{line} {word}" if line else word
        if font.getlength(candidate) <= width:
            line = candidate
            continue
        if line:
            lines.append(line)
        line = ""
        for char in word:  # a word wider than a line is cut into pieces that fit
            if line and font.getlength(line + char) > width:
                lines.append(line)
                line = ""
            line += char
    if line:
        lines.append(line)
    return lines[:max_lines]


def _picture(tile: Tile) -> Image.Image:
    cell = Image.new("RGB", (TILE, TILE), (250, 245, 230) if tile.text is not None else (235, 235, 235))
    image = tile.image
    if image is None and tile.image_path:
        try:  # the one decoder: shown as the model saw it (upright, 8-bit, on white)
            image = load_image(tile.image_path)
        except FashionSearchError:
            image = None
    if image is not None:
        # fit the tile, enlarging small photos too (the catalog's are 60x80): a thumbnail would stay tiny
        image = ImageOps.contain(image.convert("RGB"), (TILE - 6, TILE - 6), Image.Resampling.LANCZOS)
        cell.paste(image, ((TILE - image.width) // 2, (TILE - image.height) // 2))
    elif tile.text is not None:
        for j, line in enumerate(wrap_to_width(tile.text, _font(15), TILE - 16, 8)):
            ImageDraw.Draw(cell).text((8, 10 + 18 * j), line, fill=(0, 0, 0), font=_font(15))
    else:
        ImageDraw.Draw(cell).text((10, TILE // 2), "no image", fill=(120, 120, 120), font=_font(14))
    return cell


def check_picture_path(path: Path | str, what: str = "picture") -> Path:
    """``path`` when a picture can be written there (:func:`fashion_core.outputs.check_output_file` with an image
    extension); call it before the work whose result the picture shows. Raises InvalidInputError."""
    return check_output_file(path, what, PICTURE_SUFFIXES)


def render_rows(rows: Sequence[Sequence[Tile]], out: Path | str, title: str = "", columns: int | None = None
                ) -> Path:
    """Draw ``rows`` of tiles (a long row wraps after ``columns`` tiles) under a title into ``out`` (a PNG, or
    another format of :data:`PICTURE_SUFFIXES` by its extension); returns its path. InvalidInputError for a path
    no picture can be written to (checked first)."""
    path = check_picture_path(out)
    columns = columns or max((len(r) for r in rows), default=1)
    lines: list[Sequence[Tile]] = [row[i:i + columns] for row in rows for i in range(0, max(1, len(row)), columns)]
    canvas = Image.new("RGB", (columns * TILE, TITLE_H + len(lines) * (TILE + CAPTION_H)), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((8, 6), title or "fashion-search", fill=(0, 0, 0), font=_font(16))
    for r, line in enumerate(lines):
        for c, tile in enumerate(line):
            x, y = c * TILE, TITLE_H + r * (TILE + CAPTION_H)
            canvas.paste(_picture(tile), (x, y))
            colour = QUERY_COLOUR if tile.is_query else NEUTRAL if tile.ok is None else RIGHT if tile.ok else WRONG
            draw.rectangle((x, y, x + TILE - 1, y + TILE - 1), outline=colour, width=3)
            for j, text in enumerate(wrap_to_width(tile.caption, _font(11), TILE - 8, 4)):
                draw.text((x + 4, y + TILE + 2 + 12 * j), text, fill=(20, 20, 20), font=_font(11))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path
