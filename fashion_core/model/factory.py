"""Builds small randomly initialised CLIP checkpoints from a config, saved with ``save_pretrained``.

Tests load them through exactly the path a real checkpoint takes; the bootstrap trainer starts from one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

from fashion_core.model.tokenizer import fashion_corpus, train_clip_tokenizer

CARD_FILE = "model_card.json"


@dataclass(frozen=True)
class TinyClipSpec:
    image_size: int = 32
    patch_size: int = 8
    vision_width: int = 64
    vision_layers: int = 2
    text_width: int = 64
    text_layers: int = 2
    heads: int = 4
    projection_dim: int = 64
    max_text_len: int = 77
    vocab_size: int = 2000


# Random models of a real model's cost, for throughput benchmarks (the weights do not matter there).
SPECS: dict[str, TinyClipSpec] = {
    "tiny": TinyClipSpec(),
    "small": TinyClipSpec(image_size=224, patch_size=32, vision_width=384, vision_layers=6, text_width=384,
                          text_layers=4, heads=6, projection_dim=256),
    # ViT-B/32 CLIP's shapes (openai/clip-vit-base-patch32, FashionCLIP); one head count serves both towers.
    "vit-b32": TinyClipSpec(image_size=224, patch_size=32, vision_width=768, vision_layers=12, text_width=512,
                            text_layers=12, heads=8, projection_dim=512),
}


def build_tiny_clip(out_dir: Path | str, spec: TinyClipSpec = TinyClipSpec(), seed: int = 0,
                    corpus: Iterable[str] | None = None, card: dict | None = None) -> Path:
    """Create, save and return a checkpoint directory holding a random CLIP, its processor and a card."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = train_clip_tokenizer(corpus if corpus is not None else fashion_corpus(), spec.vocab_size)
    tokenizer.model_max_length = spec.max_text_len
    config = CLIPConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": spec.text_width,
            "intermediate_size": spec.text_width * 4,
            "num_hidden_layers": spec.text_layers,
            "num_attention_heads": spec.heads,
            "max_position_embeddings": spec.max_text_len,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        vision_config={
            "image_size": spec.image_size,
            "patch_size": spec.patch_size,
            "hidden_size": spec.vision_width,
            "intermediate_size": spec.vision_width * 4,
            "num_hidden_layers": spec.vision_layers,
            "num_attention_heads": spec.heads,
        },
        projection_dim=spec.projection_dim,
    )
    torch.manual_seed(seed)
    model = CLIPModel(config)
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": spec.image_size},
        crop_size={"height": spec.image_size, "width": spec.image_size},
    )
    processor = CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    card_data = {"base": "random init", "architecture": asdict(spec), "seed": seed, **(card or {})}
    (out / CARD_FILE).write_text(json.dumps(card_data, indent=2))
    return out
