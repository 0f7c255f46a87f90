"""Batch encoding of images and texts with any Hugging Face CLIP-style checkpoint, in torch.

``ClipEncoder`` is the torch runtime of the ``Encoder`` interface (:mod:`fashion_core.model.base` holds what the
runtimes share, without torch); ``OnnxEncoder`` (:mod:`fashion_core.model.onnx_encoder`) is the ONNX Runtime one
and the encoder service's gRPC client a third implementation. ``load_checkpoint`` is the one place a checkpoint
is loaded (the encoder, the trainer, the ONNX export and the benchmarks call it): a ``CLIPModel`` (OpenAI CLIP,
FashionCLIP, the synthetic bootstrap) or a ``VisionTextDualEncoderModel`` (the real-catalog recipe's ConvNeXt
dual encoder), through transformers' Auto classes, from a directory or a hub id.
"""

from __future__ import annotations

import json
import logging
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoModel, AutoProcessor, PreTrainedModel, ProcessorMixin

from fashion_core.errors import InvalidInputError, NotFoundError
from fashion_core.model.base import ImageInput, ModelInfo, as_images, check_texts, weights_version
from fashion_core.model.card import CARD_FILE
from fashion_core.model.preprocess import ClipPixels

log = logging.getLogger(__name__)


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError("device=cuda requested but no CUDA device is available")
    return torch.device(device)


def checkpoint_folder_problem(path: Path) -> str | None:
    """What makes the folder ``path`` no checkpoint transformers can load, in a few words; None when its
    config.json names a model type transformers knows (the weights and the processor are checked by loading)."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    config_file = path / "config.json"
    if not config_file.is_file():
        return "no config.json"
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"config.json is not readable JSON: {_shorten(exc)}"
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if not model_type:
        return "config.json names no model_type"
    if model_type not in CONFIG_MAPPING_NAMES:
        return f"config.json model_type {model_type!r} is not a model type this transformers version knows"
    return None


def _shorten(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message, at most ``limit`` characters."""
    return textwrap.shorten(str(exc).strip().split("\n", 1)[0], limit, placeholder=" ...")


def load_checkpoint(name_or_path: str | Path) -> tuple[PreTrainedModel, ProcessorMixin]:
    """Model and processor of a CLIP-style checkpoint (a directory or a hub id).

    Raises NotFoundError when it cannot be loaded (no such directory, no network for a hub id), and
    InvalidInputError when it is not a text-image dual encoder (no get_text_features / get_image_features /
    logit_scale, a processor without an image processor and a tokenizer, or no processor transformers knows).
    """
    path = Path(name_or_path)
    if not path.is_dir() and (path.is_absolute() or str(name_or_path).startswith(".") or path.exists()):
        raise NotFoundError(f"{name_or_path}: no such checkpoint directory")
    if path.is_dir():  # checked here: transformers' answers for such folders run to kilobytes
        problem = checkpoint_folder_problem(path)
        if problem:
            raise InvalidInputError(f"{name_or_path}: not a CLIP checkpoint folder ({problem})")
    try:
        model = AutoModel.from_pretrained(str(name_or_path))
        processor = AutoProcessor.from_pretrained(str(name_or_path))
    except OSError as exc:
        raise NotFoundError(f"cannot load CLIP checkpoint {name_or_path!r}: {_shorten(exc)}") from exc
    except (ValueError, KeyError) as exc:  # transformers' answer to a model or processor it has no class for
        raise InvalidInputError(f"{name_or_path}: not a CLIP-style checkpoint: {_shorten(exc)}") from exc
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
        version = weights_version(path) if local else str(getattr(model.config, "_commit_hash", None) or "hub")
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
