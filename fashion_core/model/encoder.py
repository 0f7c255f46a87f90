"""Batch encoding of images and texts with any Hugging Face CLIP-style checkpoint.

``Encoder`` is the interface the rest of the system codes against: the in-process ``ClipEncoder`` here and
the gRPC client of the encoder service both implement it. ``load_checkpoint`` is the one place a checkpoint is
loaded (the encoder, the trainer and the benchmarks call it): a ``CLIPModel`` (OpenAI CLIP, FashionCLIP, the
synthetic bootstrap) or a ``VisionTextDualEncoderModel`` (the real-catalog recipe's ConvNeXt dual encoder),
through transformers' Auto classes, from a directory or a hub id.
"""

from __future__ import annotations

import hashlib
import json
import logging
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from PIL import Image
from transformers import AutoModel, AutoProcessor, PreTrainedModel, ProcessorMixin

from fashion_core.errors import InvalidInputError, NotFoundError
from fashion_core.images import SourceImage, decode_image, to_rgb
from fashion_core.model.card import CARD_FILE
from fashion_core.model.preprocess import ClipPixels

log = logging.getLogger(__name__)

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
    @property
    def info(self) -> ModelInfo: ...

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray: ...

    def encode_images(self, images: Sequence[ImageInput]) -> np.ndarray: ...


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError("device=cuda requested but no CUDA device is available")
    return torch.device(device)


def _weights_version(path: Path) -> str:
    files = sorted(path.glob("*.safetensors")) or sorted(path.glob("*.bin"))
    digest = hashlib.sha256()
    for file in files:
        with file.open("rb") as fh:
            for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
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


def load_checkpoint(name_or_path: str | Path) -> tuple[PreTrainedModel, ProcessorMixin]:
    """Model and processor of a CLIP-style checkpoint (a directory or a hub id).

    Raises NotFoundError when it cannot be loaded (no such directory, no network for a hub id), and
    InvalidInputError when it is not a text-image dual encoder (no get_text_features / get_image_features /
    logit_scale, a processor without an image processor and a tokenizer, or no processor transformers knows).
    """
    path = Path(name_or_path)
    if not path.is_dir() and (path.is_absolute() or str(name_or_path).startswith(".") or path.exists()):
        raise NotFoundError(f"{name_or_path}: no such checkpoint directory")
    try:
        model = AutoModel.from_pretrained(str(name_or_path))
        processor = AutoProcessor.from_pretrained(str(name_or_path))
    except OSError as exc:
        raise NotFoundError(f"cannot load CLIP checkpoint {name_or_path!r}: {exc}") from exc
    except (ValueError, KeyError) as exc:  # transformers' answer to a model or processor it has no class for
        raise InvalidInputError(f"{name_or_path}: not a CLIP-style checkpoint: {exc}") from exc
    if not all(hasattr(model, a) for a in ("get_text_features", "get_image_features", "logit_scale")) or not all(
            hasattr(processor, a) for a in ("image_processor", "tokenizer")):
        raise InvalidInputError(f"{name_or_path}: a {type(model).__name__} with a {type(processor).__name__} is not "
                                "a CLIP-style text-image dual encoder")
    return model, processor


class ClipEncoder:
    """A loaded CLIP-style model and processor; returns L2-normalised float32 vectors. fp16 on CUDA."""

    def __init__(self, model: PreTrainedModel, processor: ProcessorMixin, model_id: str, version: str,
                 device: torch.device, batch_size: int = 32, card: dict[str, Any] | None = None) -> None:
        self.device = device
        self.dtype = torch.float16 if device.type == "cuda" else torch.float32
        self.model = model.to(device=device, dtype=self.dtype).eval()
        self.processor = processor
        self.pixels = ClipPixels(processor.image_processor)
        self.batch_size = batch_size
        self.max_text_len = min(int(model.config.text_config.max_position_embeddings),
                                int(processor.tokenizer.model_max_length))
        self._info = ModelInfo(model_id=model_id, version=version, dim=int(model.config.projection_dim),
                               device=str(device), logit_scale=float(model.logit_scale.exp().item()),
                               card=card or {})

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, device: str = "auto", batch_size: int = 32) -> ClipEncoder:
        """Load a checkpoint from a local directory or a hub id (hub ids need network or a warm HF cache)."""
        model, processor = load_checkpoint(name_or_path)
        path = Path(name_or_path)
        local = path.is_dir()
        card: dict[str, Any] = {}
        if local and (path / CARD_FILE).is_file():
            card = json.loads((path / CARD_FILE).read_text())
        version = _weights_version(path) if local else str(getattr(model.config, "_commit_hash", None) or "hub")
        log.info("loaded CLIP %s (version %s)", name_or_path, version)
        return cls(model, processor, str(name_or_path), version, resolve_device(device), batch_size, card)

    @property
    def info(self) -> ModelInfo:
        return self._info

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        texts = check_texts(texts)
        out = []
        for start in range(0, len(texts), self.batch_size):
            batch = self.processor.tokenizer(texts[start:start + self.batch_size], padding=True, truncation=True,
                                             max_length=self.max_text_len, return_tensors="pt").to(self.device)
            out.append(self.model.get_text_features(**batch))
        return self._normalise(out, len(texts))

    @torch.inference_mode()
    def encode_images(self, images: Sequence[ImageInput]) -> np.ndarray:
        decoded = as_images(images)
        out = []
        for start in range(0, len(decoded), self.batch_size):
            pixels = self.pixels(decoded[start:start + self.batch_size], self.device, self.dtype)
            out.append(self.model.get_image_features(pixel_values=pixels))
        return self._normalise(out, len(decoded))

    def _normalise(self, chunks: list[torch.Tensor], n: int) -> np.ndarray:
        if not chunks:
            return np.zeros((n, self.info.dim), dtype=np.float32)
        vectors = torch.nn.functional.normalize(torch.cat(chunks).float(), dim=-1)
        return vectors.cpu().numpy().astype(np.float32, copy=False)
