"""Embeddings straight from a CLIPModel on preprocessed tensors (validation during training, no encoder copy)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F  # noqa: N812
from transformers import CLIPModel, PreTrainedTokenizerBase


def text_max_length(model: CLIPModel, tokenizer: PreTrainedTokenizerBase) -> int:
    return min(int(model.config.text_config.max_position_embeddings), int(tokenizer.model_max_length))


def tokenize(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int,
             device: torch.device) -> dict[str, torch.Tensor]:
    batch = tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    return {k: v.to(device) for k, v in batch.items() if k in ("input_ids", "attention_mask")}


def image_features(model: CLIPModel, pixels: torch.Tensor) -> torch.Tensor:
    return F.normalize(model.get_image_features(pixel_values=pixels), dim=-1)


def text_features(model: CLIPModel, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
    return F.normalize(model.get_text_features(**tokens), dim=-1)


@torch.no_grad()
def embed_all(model: CLIPModel, tokenizer: PreTrainedTokenizerBase, pixels: torch.Tensor, texts: Sequence[str],
              device: torch.device, batch: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    was_training = model.training
    model.eval()
    max_len = text_max_length(model, tokenizer)
    images = [image_features(model, pixels[i:i + batch].to(device)) for i in range(0, len(pixels), batch)]
    texts_out = [text_features(model, tokenize(tokenizer, texts[i:i + batch], max_len, device))
                 for i in range(0, len(texts), batch)]
    model.train(was_training)
    return torch.cat(images).float().cpu(), torch.cat(texts_out).float().cpu()
