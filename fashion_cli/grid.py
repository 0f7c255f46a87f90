"""Results grid picture: the query (text or image) and the top-k product images with their scores."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from fashion_core.errors import FashionSearchError
from fashion_core.images import load_image
from fashion_core.index.base import SearchHit

TILE, CAPTION_H, COLUMNS = 160, 54, 5


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _tile_image(path: str | None) -> Image.Image:
    tile = Image.new("RGB", (TILE, TILE), (235, 235, 235))
    try:  # the one decoder: shown as the model saw it (upright, 8-bit, on white)
        image = load_image(path) if path else None
    except FashionSearchError:
        image = None
    if image is not None:
        image.thumbnail((TILE, TILE))
        tile.paste(image, ((TILE - image.width) // 2, (TILE - image.height) // 2))
    else:
        ImageDraw.Draw(tile).text((10, TILE // 2), "no image", fill=(120, 120, 120), font=_font(14))
    return tile


def render_grid(hits: Sequence[SearchHit], out: Path | str, query_text: str | None = None,
                query_image: Image.Image | None = None, title: str = "") -> Path:
    cells = 1 + len(hits)
    rows = (cells + COLUMNS - 1) // COLUMNS
    canvas = Image.new("RGB", (COLUMNS * TILE, 30 + rows * (TILE + CAPTION_H)), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((8, 6), title or "fashion-search results", fill=(0, 0, 0), font=_font(16))

    def place(i: int, image: Image.Image, caption: str, colour: tuple[int, int, int]) -> None:
        x, y = (i % COLUMNS) * TILE, 30 + (i // COLUMNS) * (TILE + CAPTION_H)
        canvas.paste(image, (x, y))
        draw.rectangle((x, y, x + TILE - 1, y + TILE - 1), outline=colour, width=3)
        for j, line in enumerate(textwrap.wrap(caption, 26)[:4]):
            draw.text((x + 4, y + TILE + 2 + 12 * j), line, fill=(20, 20, 20), font=_font(11))

    if query_image is not None:
        query = query_image.convert("RGB")
        query.thumbnail((TILE, TILE))
        tile = Image.new("RGB", (TILE, TILE), (255, 255, 255))
        tile.paste(query, ((TILE - query.width) // 2, (TILE - query.height) // 2))
    else:
        tile = Image.new("RGB", (TILE, TILE), (250, 245, 230))
        for j, line in enumerate(textwrap.wrap(query_text or "", 16)[:8]):
            ImageDraw.Draw(tile).text((8, 10 + 18 * j), line, fill=(0, 0, 0), font=_font(15))
    place(0, tile, "QUERY", (220, 120, 0))
    for i, hit in enumerate(hits, start=1):
        p = hit.payload
        place(i, _tile_image(p.get("image")), f"#{i} {hit.score:.3f} {p.get('productDisplayName', hit.id)}",
              (60, 120, 200))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)
    return out
