"""Where in an image a text query matches: occlusion maps and a zero-shot bounding box.

Slide a grey patch over the image; the more the image-text similarity drops when a region is hidden, the
more that region carries the match. Needs only the ``Encoder`` protocol, so the CLI, the query service and
training's evaluation can all use it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from fashion_core.model.base import Encoder, check_texts


@dataclass(frozen=True)
class Localization:
    heatmap: np.ndarray  # (grid, grid) in [0, 1]; 1 = hiding this cell costs the most similarity
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in image pixels, around the strongly activated area
    base_similarity: float


def occlusion_map(encoder: Encoder, image: Image.Image, query: str, grid: int = 7,
                  patch: float = 2.0, threshold: float = 0.5) -> Localization:
    """Similarity drop per cell when a patch (``patch`` cells wide) centred on it is greyed out."""
    (text,) = check_texts([query])
    image = image.convert("RGB")
    w, h = image.size
    text_vec = encoder.encode_texts([text])[0]
    occluded = []
    cell_w, cell_h = w / grid, h / grid
    for gy in range(grid):
        for gx in range(grid):
            copy = image.copy()
            cx, cy = (gx + 0.5) * cell_w, (gy + 0.5) * cell_h
            box = (int(cx - patch * cell_w / 2), int(cy - patch * cell_h / 2),
                   int(cx + patch * cell_w / 2), int(cy + patch * cell_h / 2))
            copy.paste((128, 128, 128), box)
            occluded.append(copy)
    vectors = encoder.encode_images([image, *occluded])
    sims = vectors @ text_vec
    drop = np.maximum(sims[0] - sims[1:], 0).reshape(grid, grid)
    heat = drop / drop.max() if drop.max() > 0 else drop
    ys, xs = np.nonzero(heat >= threshold)
    if len(xs):
        bbox = (int(xs.min() * cell_w), int(ys.min() * cell_h), int((xs.max() + 1) * cell_w),
                int((ys.max() + 1) * cell_h))
    else:
        bbox = (0, 0, w, h)
    return Localization(heatmap=heat.astype(np.float32), box=bbox, base_similarity=float(sims[0]))


def heatmap_png(image: Image.Image, loc: Localization, alpha: float = 0.5) -> bytes:
    """The heatmap (jet colours) blended over the image, with the box drawn; PNG bytes."""
    from matplotlib import colormaps
    from PIL import ImageDraw

    image = image.convert("RGB")
    heat = Image.fromarray((loc.heatmap * 255).astype(np.uint8)).resize(image.size, Image.Resampling.BILINEAR)
    coloured = (colormaps["jet"](np.asarray(heat) / 255.0)[..., :3] * 255).astype(np.uint8)
    blended = Image.blend(image, Image.fromarray(coloured), alpha)
    ImageDraw.Draw(blended).rectangle(loc.box, outline=(255, 255, 255), width=2)
    buf = io.BytesIO()
    blended.save(buf, format="PNG")
    return buf.getvalue()
