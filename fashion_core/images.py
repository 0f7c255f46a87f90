"""The one image decoder: every part of the system (query path, indexer, encoder service, web uploads) reads
images here, so an image is seen the same way everywhere, and the way a viewer shows it.

- Limits in bytes, pixels and aspect ratio, checked on the header before the pixels are decoded: no
  decompression bombs, and no shape whose CLIP preprocessing (a shortest-edge resize) costs more than a
  bounded multiple of its output (a 2,000,000 x 1 image would be resized to 448,000,000 x 224).
- The first frame of multi-frame files (GIF, APNG, WebP, TIFF pages, MPO).
- EXIF orientation applied (``ImageOps.exif_transpose``): a phone photo stored sideways is read upright.
- 16-bit and 32-bit integer and float pixels (``I;16``, ``I;16B``, ``I``, ``F``, ...) scaled to 8 bits, not
  clamped: 16-bit data by 1/257, floats in [0, 1] by 255, anything else from its own min..max.
- Transparency (alpha channels, palette or tRNS transparency) composited on white, the background of the
  catalog's studio photos; every other mode (CMYK, YCbCr, LAB, 1, P, ...) converted to RGB by Pillow.
"""

from __future__ import annotations

import io
import logging
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from fashion_core.errors import InvalidInputError, NotFoundError

log = logging.getLogger(__name__)

MAX_IMAGE_BYTES = 20 * 1024 * 1024
MAX_IMAGE_PIXELS = 40_000_000
# Longest side over shortest side. CLIP preprocessing resizes the shortest side to ~224 px, so the resized
# image has up to 224 x 224 * ratio pixels; product photos are within 1:4.
MAX_ASPECT_RATIO = 20

_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
_WIDE_MODES = _SIXTEEN_BIT_MODES | {"I", "F"}
_EXIF_ERRORS = (OSError, ValueError, SyntaxError, TypeError, KeyError, IndexError, struct.error)


@dataclass(frozen=True)
class SourceImage:
    """A decoded image with the file bytes it came from: an in-process encoder uses ``image``, the encoder
    service client sends ``data`` as it is (no re-encoding)."""

    data: bytes
    image: Image.Image


def check_shape(width: int, height: int, name: str = "image", max_pixels: int = MAX_IMAGE_PIXELS,
                max_aspect_ratio: float = MAX_ASPECT_RATIO) -> None:
    """Raise InvalidInputError when an image of ``width`` x ``height`` is empty, too large or too elongated."""
    if width <= 0 or height <= 0:
        raise InvalidInputError(f"{name}: {width}x{height} pixels is an empty image")
    if width * height > max_pixels:
        raise InvalidInputError(f"{name}: {width}x{height} pixels is over the limit of {max_pixels}")
    ratio = max(width, height) / min(width, height)
    if ratio > max_aspect_ratio:
        raise InvalidInputError(f"{name}: {width}x{height} pixels has an aspect ratio of {ratio:.0f}:1, over the "
                                f"limit of {max_aspect_ratio:g}:1")


def _to_8bit(image: Image.Image) -> Image.Image:
    """A 16/32-bit integer or float image scaled to mode L (rounded), from its nominal or actual range."""
    sixteen_bit = image.mode in _SIXTEEN_BIT_MODES
    if image.mode != "F":
        image = image.convert("I")  # exact for the 16-bit modes; point() scales I and F images
    lo, hi = image.getextrema()
    # one band (I or F): (min, max) numbers, not a pair per band
    assert isinstance(lo, (int, float)) and isinstance(hi, (int, float))
    if sixteen_bit or (image.mode == "I" and lo >= 0 and hi <= 65535):
        lo, hi = 0, 65535  # 16-bit data (Pillow reads some 16-bit formats as I)
    elif image.mode == "F" and lo >= 0 and hi <= 1:
        lo, hi = 0.0, 1.0  # the usual range of float images
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    # I and F images take a linear point() function; +0.5 turns the truncation to L into rounding
    return image.point(lambda v: v * scale + (0.5 - lo * scale)).convert("L")


def to_rgb(image: Image.Image, name: str = "image") -> Image.Image:
    """Any PIL image as RGB, the way a viewer shows it (orientation, bit depth, transparency: see the module
    docstring). Raises InvalidInputError for a shape over the limits or a mode Pillow cannot convert."""
    check_shape(*image.size, name=name)
    try:
        if image.getexif().get(ExifTags.Base.Orientation, 1) != 1:  # (exif_transpose copies even when upright)
            image = ImageOps.exif_transpose(image)
    except _EXIF_ERRORS as exc:  # unreadable metadata: shown as stored, as viewers do
        log.debug("%s: EXIF orientation ignored (%s)", name, exc)
    if image.mode == "RGB" and "transparency" not in image.info:
        return image
    try:
        if image.mode in _WIDE_MODES:
            image = _to_8bit(image)
            image.info.pop("transparency", None)  # a 16-bit tRNS value names no 8-bit pixel
        if image.mode in _ALPHA_MODES or "transparency" in image.info:
            if image.mode == "La":
                image = image.convert("LA")
            rgba = image.convert("RGBA")  # palette and tRNS transparency become alpha
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return Image.alpha_composite(white, rgba).convert("RGB")
        return image.convert("RGB")
    except ValueError as exc:
        raise InvalidInputError(f"{name}: unsupported pixel mode {image.mode} ({exc})") from exc


def decode_image(data: bytes, max_bytes: int = MAX_IMAGE_BYTES, max_pixels: int = MAX_IMAGE_PIXELS,
                 name: str = "image") -> Image.Image:
    """Decode JPEG/PNG/WebP/... bytes to an RGB image as a viewer shows it (first frame, upright, 8-bit, on
    white). Raises InvalidInputError saying why not: empty, over a size limit, not an image, corrupt."""
    if not data:
        raise InvalidInputError(f"{name}: empty image data")
    if len(data) > max_bytes:
        raise InvalidInputError(f"{name}: {len(data)} bytes is over the limit of {max_bytes} bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))  # at its first frame
            check_shape(*image.size, name=name, max_pixels=max_pixels)  # header only: before any pixel
            image.load()
    except InvalidInputError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidInputError(f"{name}: not a readable image ({type(exc).__name__})") from exc
    except (OSError, SyntaxError, ValueError, struct.error) as exc:
        raise InvalidInputError(f"{name}: corrupt image ({exc})") from exc
    return to_rgb(image, name)


def read_image(path: Path | str, **limits: int) -> SourceImage:
    """The file's bytes and its decoded RGB image. Raises NotFoundError (no such file) or InvalidInputError."""
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"{path}: no such image file")
    data = path.read_bytes()
    return SourceImage(data, decode_image(data, name=str(path), **limits))


def load_image(path: Path | str, **limits: int) -> Image.Image:
    """The decoded RGB image of a file. Raises NotFoundError (no such file) or InvalidInputError."""
    return read_image(path, **limits).image
