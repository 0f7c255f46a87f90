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

from fashion_core.model.pixels import PixelLayout


class ClipPixels:
    """Callable: RGB PIL images -> (N, 3, H, W) pixel values on ``device`` in ``dtype``."""

    def __init__(self, processor: CLIPImageProcessor) -> None:
        self.processor = processor
        # The layout CLIP checkpoints use: shortest-edge resize, then a centre crop (padding where it is larger).
        layout = PixelLayout.from_config(processor)
        self.supported = layout is not None
        if layout is None:
            return
        self.layout = layout
        self.crop = layout.crop
        # Bit-exact with the processor: a float32 division where one gives its values exactly, else a lookup
        # (PixelLayout.divisor). Equal inputs keep vectors, and trained models, identical to the processor's.
        self._rescaled = torch.from_numpy(layout.rescaled)
        self._divisor = layout.divisor
        self._mean = torch.tensor(layout.mean, dtype=torch.float32)
        self._std = torch.tensor(layout.std, dtype=torch.float32)

    def __call__(self, images: Sequence[Image.Image], device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32) -> torch.Tensor:
        if not self.supported:
            return self.processor(list(images), return_tensors="pt")["pixel_values"].to(device, dtype)
        if not images:
            return torch.zeros((0, 3, *self.crop), device=device, dtype=dtype)
        raw = torch.from_numpy(np.stack([self.layout.resize_crop(img) for img in images]))  # (N, H, W, 3) uint8
        # contiguous before float, then in place: 3-4x cheaper on a CPU than ops over the permuted view
        x = raw.to(device, non_blocking=True).permute(0, 3, 1, 2).contiguous()
        x = x.float().div_(self._divisor) if self._divisor else self._rescaled.to(x.device)[x.long()]
        mean, std = self._mean.to(x.device).view(1, 3, 1, 1), self._std.to(x.device).view(1, 3, 1, 1)
        return x.sub_(mean).div_(std).to(dtype)  # the processor's float32 (x - mean) / std
