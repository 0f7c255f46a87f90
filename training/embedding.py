"""Embeddings straight from a CLIP-style model on preprocessed tensors (validation during training, no encoder
copy). The model is a ``PreTrainedModel`` or a ``VisionTextDualEncoderModel``: both have get_text_features /
get_image_features."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812
from transformers import PreTrainedModel, PreTrainedTokenizerBase


def text_max_length(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> int:
    return min(int(model.config.text_config.max_position_embeddings), int(tokenizer.model_max_length))


def tokenize(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int,
             device: torch.device) -> dict[str, torch.Tensor]:
    batch = tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    return {k: v.to(device) for k, v in batch.items() if k in ("input_ids", "attention_mask")}


@dataclass(frozen=True)
class TextBuckets:
    """Texts tokenised in buckets of similar length, each padded only to its own longest text: a batch padded
    to its longest caption (real catalog: 21 tokens on average, where the median caption has 9) spends most of
    a text tower's cost on padding. ``order`` (int64, (n,)) lists the texts bucket after bucket; ``inverse``
    puts the buckets' rows back in the texts' order. The features equal the padded batch's up to float rounding:
    the attention mask keeps padding out of every real token's attention, and pooling reads a real token."""

    order: torch.Tensor
    inverse: torch.Tensor
    buckets: tuple[dict[str, torch.Tensor], ...]


def tokenize_buckets(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int,
                     device: torch.device, buckets: int = 4) -> TextBuckets:
    """``texts`` (non-empty) tokenised into at most ``buckets`` length-sorted buckets of about equal size (see
    ``TextBuckets``); a stable sort, so equal lengths keep their order."""
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length)  # once; each bucket padded below
    # transformers advises a fast tokenizer's __call__ over encode-then-pad, for one batch; padding each bucket
    # apart is the point here, and measured faster than tokenising every text twice (real captions: 3.8 against
    # 5.7 ms per 128, the same tensors), so its advice is not printed into the training log
    tokenizer.deprecation_warnings["Asking-to-pad-a-fast-tokenizer"] = True
    ids, mask = encoded["input_ids"], encoded["attention_mask"]
    order = sorted(range(len(texts)), key=lambda i: len(ids[i]))
    size = -(-len(order) // max(1, buckets))
    chunks = [order[start:start + size] for start in range(0, len(order), size)]
    order_t = torch.tensor(order, dtype=torch.long)

    def padded(chunk: list[int]) -> dict[str, torch.Tensor]:
        batch = tokenizer.pad({"input_ids": [ids[i] for i in chunk], "attention_mask": [mask[i] for i in chunk]},
                              return_tensors="pt")
        return {k: batch[k].to(device) for k in ("input_ids", "attention_mask")}

    return TextBuckets(order=order_t.to(device), inverse=torch.argsort(order_t).to(device),
                       buckets=tuple(padded(chunk) for chunk in chunks))


def bucket_features(model: PreTrainedModel, tokens: TextBuckets) -> torch.Tensor:
    """L2-normalised text embeddings (n, projection_dim) of bucketed texts, in the texts' own order."""
    feats = torch.cat([model.get_text_features(**bucket) for bucket in tokens.buckets])
    return F.normalize(feats, dim=-1)[tokens.inverse]


def image_features(model: PreTrainedModel, pixels: torch.Tensor, patch_dropout: float = 0.0,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """L2-normalised image embeddings (B, projection_dim) of pixel values (B, 3, H, W).

    ``patch_dropout`` > 0 (training only) keeps a random ``1 - patch_dropout`` of each image's patch tokens
    (the class token always) before the transformer, as FLIP does (Li et al. 2023, "Scaling Language-Image
    Pre-training via Masking"): the cost of a step falls with the tokens, and served models see all patches.
    """
    if not patch_dropout:
        return F.normalize(model.get_image_features(pixel_values=pixels), dim=-1)
    vision = model.vision_model
    if not hasattr(vision, "pre_layrnorm"):
        raise ValueError(f"patch dropout needs a ViT image tower; this one is a {type(vision).__name__}")
    tokens = vision.embeddings(pixels)  # (B, 1 + N, D): class token + patches, position embeddings added
    batch, length, dim = tokens.shape
    keep = max(1, round((length - 1) * (1.0 - patch_dropout)))
    chosen = torch.rand(batch, length - 1, generator=generator).argsort(dim=1)[:, :keep].to(tokens.device) + 1
    tokens = torch.cat([tokens[:, :1], tokens.gather(1, chosen[..., None].expand(-1, -1, dim))], dim=1)
    hidden = vision.encoder(inputs_embeds=vision.pre_layrnorm(tokens)).last_hidden_state
    return F.normalize(model.visual_projection(vision.post_layernorm(hidden[:, 0])), dim=-1)


def text_features(model: PreTrainedModel, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
    return F.normalize(model.get_text_features(**tokens), dim=-1)


@torch.no_grad()
def embed_all(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, pixels: torch.Tensor, texts: Sequence[str],
              device: torch.device, batch: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    was_training = model.training
    model.eval()
    max_len = text_max_length(model, tokenizer)
    images = [image_features(model, pixels[i:i + batch].to(device)) for i in range(0, len(pixels), batch)]
    texts_out = [text_features(model, tokenize(tokenizer, texts[i:i + batch], max_len, device))
                 for i in range(0, len(texts), batch)]
    model.train(was_training)
    return torch.cat(images).float().cpu(), torch.cat(texts_out).float().cpu()
