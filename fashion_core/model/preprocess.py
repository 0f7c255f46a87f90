"""CLIP image preprocessing that leaves the float work to the model's device.

``CLIPImageProcessor`` (the "slow" processor) rescales and normalises every image in float32 numpy on the CPU,
which costs about six times the resize and crop. On an H200 it held a ViT-B/32 encoder to ~560 images/s, far
below the GPU's rate. Its "fast" sibling does this in torch but needs torchvision, which does not install beside
the CPU torch build this project pins. So: resize and crop with PIL exactly as the processor does, ship uint8
to the device (a quarter of float32's bytes), rescale and normalise there. The output is the processor's, bit
for bit (tests compare them); configurations this does not cover fall back to the processor itself.

A crop larger than the resized image pads it with zeros, as ``transformers.image_transforms.center_crop`` does
(PIL's ``crop`` fills outside the image with 0 at the same offsets). The project's own real-catalog models use
that layout to keep the catalog's 60x80 portrait photos whole: shortest edge 60, crop 80x80, so a photo is
centred between two bars instead of being squashed or cut.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from transformers import CLIPImageProcessor


class ClipPixels:
    """Callable: RGB PIL images -> (N, 3, H, W) pixel values on ``device`` in ``dtype``."""

    def __init__(self, processor: CLIPImageProcessor) -> None:
        self.processor = processor
        size, crop = processor.size or {}, processor.crop_size or {}
        self.shortest_edge = int(size.get("shortest_edge", 0))
        self.crop = (int(crop.get("height", 0)), int(crop.get("width", 0)))
        # The layout CLIP checkpoints use: shortest-edge resize, then a centre crop (padding where it is larger).
        self.supported = bool(processor.do_resize and processor.do_center_crop and self.shortest_edge
                              and min(self.crop) > 0)
        try:
            self.resample = Image.Resampling(int(processor.resample))
        except (TypeError, ValueError):  # e.g. a torchvision interpolation mode from a "fast" processor
            self.supported = False
        scale = float(processor.rescale_factor) if processor.do_rescale else 1.0
        # Bit-exact with the processor, which rescales in float64 and rounds to float32: a float32 division by
        # 255 gives those 256 values exactly (a float32 multiply by 1/255 misses half of them); other factors
        # look the values up. Equal inputs keep vectors, and trained models, identical to the processor's.
        self._rescaled = torch.from_numpy((np.arange(256, dtype=np.float64) * scale).astype(np.float32))
        divisor = round(1 / scale) if scale > 0 else 0
        exact = divisor > 0 and torch.equal(torch.arange(256, dtype=torch.float32) / divisor, self._rescaled)
        self._divisor = divisor if exact else None
        mean = np.asarray(processor.image_mean if processor.do_normalize else [0.0] * 3, dtype=np.float32)
        std = np.asarray(processor.image_std if processor.do_normalize else [1.0] * 3, dtype=np.float32)
        self._mean, self._std = torch.from_numpy(mean), torch.from_numpy(std)

    def _resize_crop(self, image: Image.Image) -> np.ndarray:
        width, height = image.size
        short, long = (width, height) if width <= height else (height, width)
        new_long = int(self.shortest_edge * long / short)  # the processor's rounding (down)
        new_w, new_h = (self.shortest_edge, new_long) if width <= height else (new_long, self.shortest_edge)
        image = image.resize((new_w, new_h), resample=self.resample)
        crop_h, crop_w = self.crop
        top, left = (new_h - crop_h) // 2, (new_w - crop_w) // 2  # negative where the crop pads
        return np.asarray(image.crop((left, top, left + crop_w, top + crop_h)))

    def __call__(self, images: Sequence[Image.Image], device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32) -> torch.Tensor:
        if not self.supported:
            return self.processor(list(images), return_tensors="pt")["pixel_values"].to(device, dtype)
        if not images:
            return torch.zeros((0, 3, *self.crop), device=device, dtype=dtype)
        raw = torch.from_numpy(np.stack([self._resize_crop(img) for img in images]))  # (N, H, W, 3) uint8
        # contiguous before float, then in place: 3-4x cheaper on a CPU than ops over the permuted view
        x = raw.to(device, non_blocking=True).permute(0, 3, 1, 2).contiguous()
        x = x.float().div_(self._divisor) if self._divisor else self._rescaled.to(x.device)[x.long()]
        mean, std = self._mean.to(x.device).view(1, 3, 1, 1), self._std.to(x.device).view(1, 3, 1, 1)
        return x.sub_(mean).div_(std).to(dtype)  # the processor's float32 (x - mean) / std
