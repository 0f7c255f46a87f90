"""CLIP image preprocessing with PIL and numpy only: the layout every runtime shares.

``CLIPImageProcessor`` resizes an image's shortest edge, centre-crops it (padding with zeros where the crop is
larger than the resized image, as ``transformers.image_transforms.center_crop`` does), rescales to [0, 1] and
normalises by a mean and std. ``PixelLayout`` does exactly that with PIL and numpy, bit for bit (tests compare
both it and the torch ``ClipPixels`` with the processor), from either a processor object or its JSON config, so
the ONNX runtime preprocesses images without torch or transformers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image


def _field(config: Mapping[str, Any] | object, name: str, default: Any = None) -> Any:
    if isinstance(config, Mapping):
        return config.get(name, default)
    return getattr(config, name, default)


@dataclass(frozen=True)
class PixelLayout:
    """Shortest-edge resize to ``shortest_edge`` with PIL filter ``resample``, a ``crop`` (height, width) centre
    crop that pads where it is larger, then ``(x * rescale - mean) / std`` per channel in float32."""

    shortest_edge: int
    crop: tuple[int, int]
    resample: int
    rescale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | object) -> PixelLayout | None:
        """The layout of a ``CLIPImageProcessor`` or of its config dict (``preprocessor_config.json``); None for
        one this does not cover (no shortest-edge resize and centre crop, or a resample that is not a PIL filter
        such as a torchvision mode of a "fast" processor)."""
        size, crop = _field(config, "size") or {}, _field(config, "crop_size") or {}
        if not isinstance(size, Mapping) or not isinstance(crop, Mapping):
            return None
        edge = int(size.get("shortest_edge") or 0)
        crop_hw = (int(crop.get("height") or 0), int(crop.get("width") or 0))
        if not (_field(config, "do_resize", True) and _field(config, "do_center_crop", True) and edge
                and min(crop_hw) > 0):
            return None
        try:
            resample = int(Image.Resampling(int(_field(config, "resample", Image.Resampling.BICUBIC))))
        except (TypeError, ValueError):
            return None
        rescale = float(_field(config, "rescale_factor", 1 / 255)) if _field(config, "do_rescale", True) else 1.0
        normalize = _field(config, "do_normalize", True)
        mean = tuple(float(v) for v in _field(config, "image_mean")) if normalize else (0.0, 0.0, 0.0)
        std = tuple(float(v) for v in _field(config, "image_std")) if normalize else (1.0, 1.0, 1.0)
        if len(mean) != 3 or len(std) != 3:
            return None
        return cls(edge, crop_hw, resample, rescale, mean, std)

    def config(self) -> dict[str, Any]:
        """The processor config keys this layout reads (``from_config(layout.config()) == layout``)."""
        return {"do_resize": True, "size": {"shortest_edge": self.shortest_edge}, "do_center_crop": True,
                "crop_size": {"height": self.crop[0], "width": self.crop[1]}, "resample": self.resample,
                "do_rescale": True, "rescale_factor": self.rescale, "do_normalize": True,
                "image_mean": list(self.mean), "image_std": list(self.std)}

    @property
    def rescaled(self) -> np.ndarray:
        """float32 (256,): each byte value times the rescale factor, as the processor computes it (in float64,
        rounded to float32)."""
        return (np.arange(256, dtype=np.float64) * self.rescale).astype(np.float32)

    @property
    def divisor(self) -> int | None:
        """An integer whose float32 division gives :attr:`rescaled` exactly (255 for CLIP's 1/255), else None.

        A float32 division by 255 gives the processor's 256 values exactly; a float32 multiply by 1/255 misses
        half of them. Equal inputs keep vectors, and trained models, identical to the processor's."""
        divisor = round(1 / self.rescale) if self.rescale > 0 else 0
        if divisor <= 0:
            return None
        exact = np.array_equal(np.arange(256, dtype=np.float32) / np.float32(divisor), self.rescaled)
        return divisor if exact else None

    def resize_crop(self, image: Image.Image) -> np.ndarray:
        """An RGB image -> uint8 (crop height, crop width, 3): resized and centre-cropped as the processor does."""
        width, height = image.size
        short, long = (width, height) if width <= height else (height, width)
        new_long = int(self.shortest_edge * long / short)  # the processor's rounding (down)
        new_w, new_h = (self.shortest_edge, new_long) if width <= height else (new_long, self.shortest_edge)
        image = image.resize((new_w, new_h), resample=Image.Resampling(self.resample))
        crop_h, crop_w = self.crop
        top, left = (new_h - crop_h) // 2, (new_w - crop_w) // 2  # negative where the crop pads
        return np.asarray(image.crop((left, top, left + crop_w, top + crop_h)))

    def __call__(self, images: Sequence[Image.Image]) -> np.ndarray:
        """RGB images -> float32 (N, 3, crop height, crop width) pixel values, the processor's bit for bit."""
        if not images:
            return np.zeros((0, 3, *self.crop), dtype=np.float32)
        raw = np.stack([self.resize_crop(img) for img in images]).transpose(0, 3, 1, 2)  # (N, 3, H, W) uint8
        divisor = self.divisor
        x = np.ascontiguousarray(raw).astype(np.float32) / np.float32(divisor) if divisor else self.rescaled[raw]
        mean = np.asarray(self.mean, dtype=np.float32).reshape(1, 3, 1, 1)
        std = np.asarray(self.std, dtype=np.float32).reshape(1, 3, 1, 1)
        return ((x - mean) / std).astype(np.float32, copy=False)
