"""Products -> preprocessed image tensors + captions, and the deterministic train/val/test split.

Images are decoded and run through the checkpoint's image processor once, up front: on CPU, decoding
JPEGs every epoch would cost more than the model itself.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from PIL import Image
from transformers import CLIPImageProcessor

from fashion_core.captions import ENRICH_FIELDS, caption, check_caption_mode, clean_text, singular
from fashion_core.catalog.schema import Product
from fashion_core.errors import FashionSearchError
from fashion_core.images import load_image
from fashion_core.model.preprocess import ClipPixels

log = logging.getLogger(__name__)

Split = Literal["train", "val", "test"]
SPLITS: tuple[Split, ...] = ("train", "val", "test")
TaggerFn = Callable[[Sequence[str]], list[str]]


# The metadata a caption mode states in full: two products equal on these fields both match the caption.
CAPTION_FIELDS: dict[str, tuple[str, ...]] = {"template": ("gender", "baseColour", "articleType"),
                                              "enriched": ENRICH_FIELDS}
# Partial captions: one or two attributes only, like zero-shot prompts and short queries ("red", "a dress").
PARTIAL_TEMPLATES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("articleType",), "a photo of a {articleType}"),
    (("articleType",), "{articleType}"),
    (("baseColour",), "a photo of a {baseColour} product"),
    (("baseColour",), "{baseColour}"),
    (("baseColour", "articleType"), "a {baseColour} {articleType}"),
    (("articleType", "gender"), "{articleType} for {gender}"),
    (("masterCategory",), "a photo of a {masterCategory} product"),
)
Attributes = tuple[tuple[str, str], ...]


def partial_caption(product: Product, rng: random.Random) -> tuple[str, Attributes]:
    """A caption naming one or two attributes, and those attributes (for multi-positive InfoNCE)."""
    fields, template = PARTIAL_TEMPLATES[rng.randrange(len(PARTIAL_TEMPLATES))]
    values = {f: clean_text(str(getattr(product, f))) for f in fields}
    if "articleType" in values and rng.random() < 0.5:  # shoppers type "red dress", the catalog says "Dresses"
        values["articleType"] = singular(values["articleType"])
    return template.format(**values), tuple((f, str(getattr(product, f))) for f in fields)


def caption_attributes(product: Product, mode: str) -> Attributes | None:
    fields = CAPTION_FIELDS.get(mode)
    return None if fields is None else tuple((f, str(getattr(product, f))) for f in fields)


def split_of(product_id: int, fractions: tuple[float, float] = (0.8, 0.1), salt: str = "fashion-split") -> Split:
    """train/val/test by a hash of the product id: stable across runs, machines and catalog order."""
    digest = hashlib.sha256(f"{salt}:{product_id}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    train, val = fractions
    return "train" if u < train else "val" if u < train + val else "test"


def split_products(products: Sequence[Product], fractions: tuple[float, float] = (0.8, 0.1),
                   salt: str = "fashion-split") -> dict[Split, list[Product]]:
    out: dict[Split, list[Product]] = {s: [] for s in SPLITS}
    for p in products:
        out[split_of(p.id, fractions, salt)].append(p)
    return out


def preprocess_images(images: Sequence[Image.Image | str], image_processor: CLIPImageProcessor,
                      batch: int = 256) -> torch.Tensor:
    """(N, 3, H, W) float32 pixel values, exactly as the encoder would see them."""
    to_pixels, chunks = ClipPixels(image_processor), []
    for start in range(0, len(images), batch):
        loaded = [img if isinstance(img, Image.Image) else Image.open(img) for img in images[start:start + batch]]
        chunks.append(to_pixels([img.convert("RGB") for img in loaded]))
    return torch.cat(chunks) if chunks else torch.zeros(0)


@dataclass
class ProductData:
    """Products with their pixel tensors and one caption per requested mode."""

    products: list[Product]
    pixels: torch.Tensor
    captions: list[list[str]]  # [product][mode]
    modes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.products)

    def labels(self, field: str) -> tuple[list[str], torch.Tensor]:
        """Class names and per-product class indices for a catalog field (or "id" for product identity)."""
        values = [str(getattr(p, field)) for p in self.products]
        names = sorted(set(values))
        index = {n: i for i, n in enumerate(names)}
        return names, torch.tensor([index[v] for v in values], dtype=torch.long)

    def subset(self, indices: Sequence[int]) -> ProductData:
        idx = list(indices)
        return ProductData([self.products[i] for i in idx], self.pixels[idx], [self.captions[i] for i in idx],
                           self.modes)


def build_data(products: Sequence[Product], image_processor: CLIPImageProcessor,
               modes: Sequence[str] = ("enriched",), tagger: TaggerFn | None = None) -> ProductData:
    checked = [check_caption_mode(mode) for mode in modes]
    kept, images = [], []
    for p in products:
        if p.image_path is None:
            continue
        try:
            images.append(load_image(p.image_path))
        except FashionSearchError as exc:  # corrupt or oversized: reported, never fatal
            log.warning("product %s left out: %s", p.id, exc)
            continue
        kept.append(p)
    if len(kept) < len(products):
        log.warning("%d of %d products without a usable image left out", len(products) - len(kept), len(products))
    pixels = preprocess_images(images, image_processor)
    captions = [[caption(p, mode, tagger=tagger) for mode in checked] for p in kept]
    return ProductData(kept, pixels, captions, tuple(modes))
