"""Which parameters train: image-only stage (text tower frozen), joint, lower N layers of each tower frozen."""

from __future__ import annotations

import logging
from typing import Literal

import torch
from transformers import PreTrainedModel

log = logging.getLogger(__name__)

Stage = Literal["image", "joint"]
STAGES: tuple[str, ...] = ("image", "joint")


def _blocks(tower: torch.nn.Module) -> torch.nn.ModuleList:
    """A tower's stack of blocks, lowest first: CLIP's ``encoder.layers``, BERT's ``encoder.layer``,
    ConvNeXt's ``encoder.stages``. ValueError for a tower of another shape."""
    encoder = tower.encoder
    for name in ("layers", "layer", "stages"):
        if isinstance(getattr(encoder, name, None), torch.nn.ModuleList):
            return getattr(encoder, name)
    raise ValueError(f"cannot freeze the lower layers of a {type(tower).__name__}")


def apply_freezing(model: PreTrainedModel, stage: Stage = "joint", freeze_lower: int = 0) -> dict[str, int]:
    """Set requires_grad in place; returns trainable and frozen parameter counts. ``freeze_lower`` counts the
    blocks of each tower (transformer layers; stages of a ConvNeXt)."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; choose from {', '.join(STAGES)}")
    for param in model.parameters():
        param.requires_grad = True
    if stage == "image":
        for module in (model.text_model, model.text_projection):
            for param in module.parameters():
                param.requires_grad = False
    if freeze_lower > 0:
        for tower in (model.vision_model, model.text_model):
            for param in tower.embeddings.parameters():
                param.requires_grad = False
            for layer in _blocks(tower)[:freeze_lower]:
                for param in layer.parameters():
                    param.requires_grad = False
        pre = getattr(model.vision_model, "pre_layrnorm", None)  # HF's spelling
        if pre is not None:
            for param in pre.parameters():
                param.requires_grad = False
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    log.info("stage=%s freeze_lower=%d: %d trainable, %d frozen parameters", stage, freeze_lower, trainable, frozen)
    return {"trainable": trainable, "frozen": frozen}
