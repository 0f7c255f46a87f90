"""Safe image decoding: size limits in bytes and pixels (no decompression bombs), RGB out, clear errors."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from fashion_core.errors import InvalidInputError, NotFoundError

MAX_IMAGE_BYTES = 20 * 1024 * 1024
MAX_IMAGE_PIXELS = 40_000_000


def decode_image(data: bytes, max_bytes: int = MAX_IMAGE_BYTES, max_pixels: int = MAX_IMAGE_PIXELS,
                 name: str = "image") -> Image.Image:
    """Decode JPEG/PNG/WebP/... bytes to an RGB image, or raise InvalidInputError saying why not."""
    if not data:
        raise InvalidInputError(f"{name}: empty image data")
    if len(data) > max_bytes:
        raise InvalidInputError(f"{name}: {len(data)} bytes is over the limit of {max_bytes} bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size  # header only: checked before the pixels are decoded
            if width * height > max_pixels:
                raise InvalidInputError(f"{name}: {width}x{height} pixels is over the limit of {max_pixels}")
            image.load()
    except InvalidInputError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidInputError(f"{name}: not a readable image ({type(exc).__name__})") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidInputError(f"{name}: corrupt image ({exc})") from exc
    return image.convert("RGB")


def load_image(path: Path | str, **limits: int) -> Image.Image:
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"{path}: no such image file")
    return decode_image(path.read_bytes(), name=str(path), **limits)
