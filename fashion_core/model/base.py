"""The encoder interface and what every runtime shares, without torch or transformers.

``Encoder`` is what the rest of the system codes against: the torch ``ClipEncoder``
(:mod:`fashion_core.model.encoder`), the ONNX Runtime ``OnnxEncoder`` (:mod:`fashion_core.model.onnx_encoder`)
and the gRPC client of the encoder service all implement it. Importing this module costs numpy and PIL only, so
a search that encodes with ONNX Runtime (or asks the encoder service) never loads torch.
"""

from __future__ import annotations

import functools
import hashlib
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image

from fashion_core.errors import InvalidInputError
from fashion_core.images import SourceImage, decode_image, to_rgb

# bytes = an encoded file; SourceImage = decoded, with its file bytes (sent as they are to the encoder service)
ImageInput = Image.Image | bytes | SourceImage
MAX_TEXT_CHARS = 1000


@dataclass(frozen=True)
class ModelInfo:
    model_id: str  # checkpoint path or hub id as given
    version: str  # content hash of the weights: changes whenever the vectors would
    dim: int
    device: str
    logit_scale: float
    card: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Encoder(Protocol):
    """Texts and images -> L2-normalised float32 vectors of shape (N, info.dim), in input order.

    Both methods raise InvalidInputError for a bad input (an empty or over-long text, an unreadable image)."""

    @property
    def info(self) -> ModelInfo: ...

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray: ...

    def encode_images(self, images: Sequence[ImageInput]) -> np.ndarray: ...


def weight_files(path: Path) -> list[Path]:
    """The checkpoint folder's weight files: its ``*.safetensors``, else its ``*.bin`` (sorted)."""
    return sorted(path.glob("*.safetensors")) or sorted(path.glob("*.bin"))


def weights_version(path: Path) -> str:
    """The version of the checkpoint folder ``path``: the first 12 hex digits of the SHA-256 of its weight files'
    bytes (:func:`weight_files`), so it changes whenever the vectors would. Reads the files (about 1 s per GB);
    loads no model."""
    digest = hashlib.sha256()
    for file in weight_files(path):
        with file.open("rb") as fh:
            for block in iter(functools.partial(fh.read, 1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:12]


# What renders as nothing: controls, format characters (zero-width space/joiners, BOM, bidi marks, word
# joiner), separators, combining marks without a base, and the Hangul and Braille fillers (letters/symbols).
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zs", "Zl", "Zp", "Mn", "Me"})
_INVISIBLE_CHARS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def is_blank(text: str) -> bool:
    """True when ``text`` shows nothing: empty, or only whitespace and invisible characters."""
    return all(unicodedata.category(c) in _INVISIBLE_CATEGORIES or c in _INVISIBLE_CHARS for c in text)


def check_texts(texts: Sequence[str]) -> list[str]:
    """The texts, stripped. Raises InvalidInputError for one that is not a string, shows nothing (only
    whitespace or zero-width/invisible characters) or is over MAX_TEXT_CHARS."""
    cleaned = []
    for i, text in enumerate(texts):
        if not isinstance(text, str) or is_blank(text):
            raise InvalidInputError(f"text #{i} is empty")
        if len(text) > MAX_TEXT_CHARS:
            raise InvalidInputError(f"text #{i} has {len(text)} characters; the limit is {MAX_TEXT_CHARS}")
        cleaned.append(text.strip())
    return cleaned


def as_images(images: Sequence[ImageInput]) -> list[Image.Image]:
    """RGB images through the one decoder (fashion_core.images). Raises InvalidInputError for a bad image."""
    out = []
    for i, img in enumerate(images):
        if isinstance(img, SourceImage | Image.Image):
            out.append(to_rgb(img.image if isinstance(img, SourceImage) else img, name=f"image #{i}"))
        else:
            out.append(decode_image(img, name=f"image #{i}"))
    return out


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    """(N, D) rows divided by their L2 norm (at least 1e-12, as ``torch.nn.functional.normalize``), float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), np.float32(1e-12))
    return (vectors / norms).astype(np.float32, copy=False)
