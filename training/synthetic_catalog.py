"""Deterministic synthetic catalog in the "Fashion Product Images" layout.

Each product is a procedurally drawn silhouette (one per article type) filled with its base colour, with
jitter in placement, scale, rotation and shade, so colour and shape are visible and learnable while no two
images are identical. Tests, the demo and the bootstrapped model all run on it.
"""

from __future__ import annotations

import csv
import logging
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from fashion_core.catalog.schema import CSV_COLUMNS

log = logging.getLogger(__name__)

RGB = tuple[int, int, int]
Points = list[tuple[float, float]]

COLOURS: dict[str, RGB] = {
    "Black": (25, 25, 25),
    "White": (250, 250, 250),
    "Grey": (128, 128, 128),
    "Red": (210, 30, 35),
    "Blue": (30, 80, 215),
    "Green": (30, 150, 50),
    "Yellow": (245, 215, 30),
    "Pink": (245, 140, 190),
    "Purple": (120, 40, 160),
    "Orange": (245, 130, 20),
    "Brown": (115, 70, 30),
}


@dataclass(frozen=True)
class ArticleSpec:
    master: str
    sub: str
    genders: tuple[str, ...]
    usages: tuple[str, ...]
    styles: tuple[str, ...]
    noun: str


ARTICLES: dict[str, ArticleSpec] = {
    "Tshirts": ArticleSpec("Apparel", "Topwear", ("Men", "Women", "Boys", "Girls"), ("Casual", "Sports"),
                           ("Printed", "Solid", "Round Neck", "Polo"), "T-shirt"),
    "Shirts": ArticleSpec("Apparel", "Topwear", ("Men", "Women", "Boys"), ("Formal", "Casual"),
                          ("Slim Fit", "Checked", "Formal", "Casual"), "Shirt"),
    "Jeans": ArticleSpec("Apparel", "Bottomwear", ("Men", "Women"), ("Casual",),
                         ("Skinny Fit", "Slim Fit", "Regular Fit"), "Jeans"),
    "Shorts": ArticleSpec("Apparel", "Bottomwear", ("Men", "Women", "Boys"), ("Casual", "Sports"),
                          ("Running", "Denim", "Cargo"), "Shorts"),
    "Dresses": ArticleSpec("Apparel", "Dress", ("Women", "Girls"), ("Casual", "Party"),
                           ("Maxi", "Sleeveless", "A-line"), "Dress"),
    "Skirts": ArticleSpec("Apparel", "Bottomwear", ("Women", "Girls"), ("Casual",),
                          ("Flared", "Pleated", "Mini"), "Skirt"),
    "Casual Shoes": ArticleSpec("Footwear", "Shoes", ("Men", "Women"), ("Casual",),
                                ("Canvas", "Leather", "Slip-on"), "Casual Shoes"),
    "Sports Shoes": ArticleSpec("Footwear", "Shoes", ("Men", "Women"), ("Sports",),
                                ("Running", "Training", "Basketball"), "Sports Shoes"),
    "Sandals": ArticleSpec("Footwear", "Sandal", ("Men", "Women"), ("Casual",),
                           ("Strappy", "Comfort", "Floaters"), "Sandals"),
    "Heels": ArticleSpec("Footwear", "Shoes", ("Women", "Girls"), ("Party", "Formal"),
                         ("Stiletto", "Pointed", "Patent"), "Heels"),
    "Handbags": ArticleSpec("Accessories", "Bags", ("Women",), ("Casual", "Formal"),
                            ("Tote", "Shoulder", "Leather"), "Handbag"),
    "Backpacks": ArticleSpec("Accessories", "Bags", ("Men", "Women", "Unisex"), ("Casual", "Sports"),
                             ("Laptop", "Travel", "School"), "Backpack"),
    "Watches": ArticleSpec("Accessories", "Watches", ("Men", "Women"), ("Casual", "Formal"),
                           ("Analog", "Chronograph", "Steel"), "Watch"),
    "Caps": ArticleSpec("Accessories", "Headwear", ("Men", "Unisex"), ("Casual", "Sports"),
                        ("Baseball", "Snapback", "Logo"), "Cap"),
}

BRANDS = ("Nike", "Puma", "Adidas", "Roadster", "Fila", "Wrangler", "Levis", "Fastrack", "Titan", "Baggit",
          "Catwalk", "Mango", "Wildcraft", "Jealous 21")
SEASONS = ("Summer", "Winter", "Spring", "Fall")


def _shade(colour: RGB, factor: float) -> RGB:
    r, g, b = (max(0, min(255, int(c * factor))) for c in colour)
    return r, g, b


def _outline(colour: RGB) -> RGB:
    return (90, 90, 90) if sum(colour) > 600 else _shade(colour, 0.55)


# Silhouettes in unit coordinates; each draws the item's body in `fill` with an outline.
def _poly(d: ImageDraw.ImageDraw, pts: Points, fill: RGB, s: Callable[[Points], Points]) -> None:
    d.polygon(s(pts), fill=fill, outline=_outline(fill), width=2)


def _tshirt(d: ImageDraw.ImageDraw, fill: RGB, s: Callable[[Points], Points]) -> None:
    _poly(d, [(.3, .2), (.42, .15), (.58, .15), (.7, .2), (.88, .36), (.77, .45), (.68, .37), (.68, .86),
              (.32, .86), (.32, .37), (.23, .45), (.12, .36)], fill, s)


def _shirt(d: ImageDraw.ImageDraw, fill: RGB, s: Callable[[Points], Points]) -> None:
    _poly(d, [(.32, .15), (.44, .12), (.56, .12), (.68, .15), (.82, .3), (.88, .8), (.77, .8), (.7, .4),
              (.68, .88), (.32, .88), (.3, .4), (.23, .8), (.12, .8), (.18, .3)], fill, s)
    dark = _outline(fill)
    _poly(d, [(.44, .12), (.5, .24), (.56, .12)], (235, 235, 235), s)
    for y in (.32, .46, .6, .74):
        (x0, y0), (x1, y1) = s([(.485, y), (.515, y + .03)])
        d.ellipse((min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)), fill=dark)


def _jeans(d: ImageDraw.ImageDraw, fill: RGB, s: Callable[[Points], Points]) -> None:
    _poly(d, [(.3, .1), (.7, .1), (.75, .92), (.56, .92), (.5, .38), (.44, .92), (.25, .92)], fill, s)
    d.line(s([(.3, .16), (.7, .16)]), fill=_outline(fill), width=2)


def _shorts(d: ImageDraw.ImageDraw, fill: RGB, s: Callable[[Points], Points]) -> None:
    _poly(d, [(.26, .3), (.74, .3), (.8, .68), (.55, .7), (.5, .46), (.45, .7), (.2, .68)], fill, s)


def _dress(d: ImageDraw.ImageDraw, fill: RGB, s: Callable[[Points], Points]) -> None:
    _poly(d, [(.4, .1), (.45, .1), (.5, .16), (.55, .1), (.6, .1), (.62, .38), (.84, .92), (.16, .92),
              (.38, .38)], fill, s)


def _skirt(d: ImageDraw.ImageDraw, fill: RGB, s: Callable[[Points], Points]) -> None:
    _poly(d, [(.36, .3), (.64, .3), (.82, .76), (.18, .76)], fill, s)
    d.line(s([(.36, .36), (.64, .36)]), fill=_outline(fill), width=2)


def _casual_shoe(d: ImageDraw.ImageDraw, fill: RGB, s: Callable[[Points], Points]) -> None:
    _poly(d, [(.12, .52), (.4, .5), (.55, .56), (.86, .62), (.9, .72), (.12, .72)], fill, s)
    _poly(d, [(.12, .72), (.9, .72), (.9, .76), (.12, .76)], _shade(fill, 0.7), s)


def _sports_shoe(d: ImageDraw.ImageDraw, fill: RGB, s: Callable[[Points], Points]) -> None:
    _poly(d, [(.14, .36), (.34, .34), (.46, .5), (.8, .56), (.9, .68), (.14, .68)], fill, s)
    _poly(d, [(.12, .68), (.92, .68), (.92, .78), (.12, .78)], (240, 240, 240), s)
    for x in (.36, .46, .56):
        d.line(s([(x, .5), (x + .08, .64)]), fill=(240, 240, 240), width=3)


def _sandal(d: ImageDraw.ImageDraw, fill: RGB, s: Callable[[Points], Points]) -> None:
    _poly(d, [(.12, .7), (.88, .66), (.9, .74), (.12, .78)], _shade(fill, 0.8), s)
    for x in (.3, .5, .68):
        d.line(s([(x, .7), (x + .06, .5), (x + .12, .69)]), fill=fill, width=6)


def _heel(d: ImageDraw.ImageDraw, fill: RGB, s: Callable[[Points], Points]) -> None:
    _poly(d, [(.16, .36), (.3, .34), (.5, .6), (.86, .66), (.88, .72), (.48, .72), (.26, .54), (.24, .86),
              (.2, .86), (.18, .52)], fill, s)


def _handbag(d: ImageDraw.ImageDraw, fill: RGB, s: Callable[[Points], Points]) -> None:
    d.arc(s([(.33, .16), (.67, .56)])[0] + s([(.33, .16), (.67, .56)])[1], 180, 360, fill=_outline(fill), width=5)
    _poly(d, [(.26, .36), (.74, .36), (.84, .84), (.16, .84)], fill, s)


def _backpack(d: ImageDraw.ImageDraw, fill: RGB, s: Callable[[Points], Points]) -> None:
    d.rounded_rectangle(_box(s, .26, .18, .74, .9), radius=14, fill=fill, outline=_outline(fill), width=2)
    d.rounded_rectangle(_box(s, .34, .56, .66, .84), radius=8, fill=_shade(fill, 0.8), outline=_outline(fill))
    d.arc(_box(s, .42, .08, .58, .26), 180, 360, fill=_outline(fill), width=4)


def _watch(d: ImageDraw.ImageDraw, fill: RGB, s: Callable[[Points], Points]) -> None:
    d.rectangle(_box(s, .42, .06, .58, .94), fill=fill, outline=_outline(fill), width=2)
    d.ellipse(_box(s, .3, .32, .7, .68), fill=(235, 235, 235), outline=(60, 60, 60), width=4)
    d.line(s([(.5, .5), (.5, .38)]), fill=(30, 30, 30), width=3)
    d.line(s([(.5, .5), (.6, .5)]), fill=(30, 30, 30), width=3)


def _cap(d: ImageDraw.ImageDraw, fill: RGB, s: Callable[[Points], Points]) -> None:
    d.pieslice(_box(s, .22, .3, .74, .82), 180, 360, fill=fill, outline=_outline(fill), width=2)
    _poly(d, [(.7, .52), (.92, .56), (.9, .6), (.7, .58)], _shade(fill, 0.8), s)


def _box(s: Callable[[Points], Points], x0: float, y0: float, x1: float, y1: float) -> tuple[float, ...]:
    (a, b), (c, e) = s([(x0, y0), (x1, y1)])
    return (min(a, c), min(b, e), max(a, c), max(b, e))


SILHOUETTES: dict[str, Callable] = {
    "Tshirts": _tshirt, "Shirts": _shirt, "Jeans": _jeans, "Shorts": _shorts, "Dresses": _dress,
    "Skirts": _skirt, "Casual Shoes": _casual_shoe, "Sports Shoes": _sports_shoe, "Sandals": _sandal,
    "Heels": _heel, "Handbags": _handbag, "Backpacks": _backpack, "Watches": _watch, "Caps": _cap,
}


def draw_product(article_type: str, colour: str, rng: random.Random, size: int = 128) -> Image.Image:
    """One product picture: the article's silhouette in the colour, jittered by ``rng``."""
    bg = rng.randint(225, 252)
    image = Image.new("RGB", (size, size), (bg, bg, min(255, bg + rng.randint(-6, 6))))
    draw = ImageDraw.Draw(image)
    scale = rng.uniform(0.8, 1.0) * size
    ox = rng.uniform(-0.08, 0.08) * size + (size - scale) / 2
    oy = rng.uniform(-0.08, 0.08) * size + (size - scale) / 2

    def to_pixels(points: Points) -> Points:
        return [(ox + x * scale, oy + y * scale) for x, y in points]

    fill = _shade(COLOURS[colour], rng.uniform(0.9, 1.08)) if colour != "White" else COLOURS[colour]
    SILHOUETTES[article_type](draw, fill, to_pixels)
    angle = rng.uniform(-8, 8)
    return image.rotate(angle, resample=Image.Resampling.BILINEAR, fillcolor=(bg, bg, bg))


def _display_name(rng: random.Random, brand: str, gender: str, colour: str, article: str) -> str:
    spec = ARTICLES[article]
    parts = [brand, gender, colour, rng.choice(spec.styles), spec.noun]
    if rng.random() < 0.15:  # real names sometimes leave the colour out
        parts.remove(colour)
    return " ".join(parts)


def synthetic_rows(n: int, seed: int = 0, start_id: int = 10000) -> Iterable[dict[str, object]]:
    rng = random.Random(seed)
    articles = list(ARTICLES)
    colours = list(COLOURS)
    for i in range(n):
        # Cycle article and colour so every combination is present in small catalogs too.
        article = articles[i % len(articles)]
        colour = colours[(i // len(articles) + rng.randrange(len(colours))) % len(colours)]
        spec = ARTICLES[article]
        gender = rng.choice(spec.genders)
        yield {
            "id": start_id + i,
            "gender": gender,
            "masterCategory": spec.master,
            "subCategory": spec.sub,
            "articleType": article,
            "baseColour": colour,
            "season": rng.choice(SEASONS),
            "year": rng.randint(2010, 2018),
            "usage": rng.choice(spec.usages),
            "productDisplayName": _display_name(rng, rng.choice(BRANDS), gender, colour, article),
        }


DIRTY_LINES = (
    # stray commas inside productDisplayName, unquoted, as in the real file
    "{id},Men,Apparel,Topwear,Tshirts,Red,Summer,2012,Casual,Puma Men Red, Round Neck, T-shirt",
    "{id},Women,Apparel,Topwear,Shirts,Blue,Fall,20x1,Casual,Mango Women Blue Shirt",  # bad year
    "{id},,Apparel,Topwear,Tshirts,Black,Summer,2012,Casual,Nike Black T-shirt",  # missing gender
    "{id},Men,Footwear,Shoes,Casual Shoes,Brown,Winter,2013,Casual,Fila Men Brown Casual Shoes",  # no image
    "{id},Men,Footwear,Shoes",  # truncated row
    "{id},Women,Apparel,Dress,Dresses,Red,Summer,2014,Party,Caf\xe9 Women Red Dress",  # cp1252 byte
    "{id},Women,Accessories,Bags,Handbags,NA,Summer,2012,NA,Baggit Women Handbag",  # literal NA: missing values
    "{id},Men,Footwear,Sandal,Sandals,Brown,Winter,2018,,RTV_LoadTest",  # a load-test row, not a product
    "{id},Women,Accessories,Bags,Clutches,Maroon,Summer,2012,Casual,NA",  # no name
)


def generate_catalog(out_dir: Path | str, n: int = 2000, seed: int = 0, image_size: int = 128,
                     dirty: bool = False, start_id: int = 10000,
                     progress: Callable[[int], None] | None = None) -> Path:
    """Write ``styles.csv`` and ``images/<id>.jpg`` for ``n`` products; returns ``out_dir``.

    ``dirty`` appends rows like those of the real file (stray commas, bad year, missing field, missing and
    corrupt image, truncated row, a non-UTF-8 byte) so readers and indexers can show how they report them.
    """
    out = Path(out_dir)
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    rows = list(synthetic_rows(n, seed, start_id))
    with (out / "styles.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(CSV_COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
    for i, row in enumerate(rows):
        rng = random.Random(f"{seed}-{row['id']}")
        draw_product(str(row["articleType"]), str(row["baseColour"]), rng, image_size).save(
            images / f"{row['id']}.jpg", quality=92)
        if progress:
            progress(i + 1)
    if dirty:
        _append_dirty_rows(out, start_id + n)
    log.info("wrote %d synthetic products to %s", n, out)
    return out


def _append_dirty_rows(out: Path, first_id: int) -> None:
    lines = [template.format(id=first_id + i) for i, template in enumerate(DIRTY_LINES)]
    with (out / "styles.csv").open("ab") as fh:
        for line in lines:
            fh.write(line.encode("cp1252") + b"\r\n")
    stray_comma_id, bad_year_id = first_id, first_id + 1
    rng = random.Random(first_id)
    draw_product("Tshirts", "Red", rng).save(out / "images" / f"{stray_comma_id}.jpg")
    draw_product("Shirts", "Blue", rng).save(out / "images" / f"{bad_year_id}.jpg")
    for i in (2, 5):
        draw_product("Dresses", "Red", rng).save(out / "images" / f"{first_id + i}.jpg")
    draw_product("Handbags", "Black", rng).save(out / "images" / f"{first_id + 6}.jpg")
    for i in (7, 8):  # rows skipped for what they say, not for a missing image
        draw_product("Sandals", "Brown", rng).save(out / "images" / f"{first_id + i}.jpg")
    # A row whose image exists but is not an image at all.
    corrupt_id = first_id + len(lines)
    with (out / "styles.csv").open("ab") as fh:
        fh.write(f"{corrupt_id},Women,Apparel,Topwear,Tshirts,Green,Summer,2015,Casual,Roadster Women Green "
                 "T-shirt\r\n".encode())
    (out / "images" / f"{corrupt_id}.jpg").write_bytes(b"this is not a jpeg")
