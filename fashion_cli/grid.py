"""Results grid picture: the query (text or image) and the top-k product images with their scores."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from fashion_core.pictures import Tile, render_rows
from fashion_core.stores.base import SearchHit

COLUMNS = 5


def render_grid(hits: Sequence[SearchHit], out: Path | str, query_text: str | None = None,
                query_image: Image.Image | None = None, title: str = "") -> Path:
    query = Tile("QUERY", image=query_image, text=None if query_image is not None else query_text or "",
                 is_query=True)
    tiles = [Tile(f"#{i} {hit.score:.3f} {hit.payload.get('productDisplayName', hit.id)}",
                  image_path=hit.payload.get("image"))
             for i, hit in enumerate(hits, start=1)]
    return render_rows([[query, *tiles]], out, title or "fashion-search results", columns=COLUMNS)
