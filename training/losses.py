"""Contrastive losses: CLIP's symmetric InfoNCE and supervised contrastive (SupCon), and their mix."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812 - the usual alias


def _soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return -(targets * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def clip_loss(image: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor,
              positives: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE over L2-normalised embeddings; ``logit_scale`` is CLIP's learnable log temperature.

    ``positives`` (B x B bool) marks extra matching pairs, e.g. products with identical captions, so that
    they are not pushed apart as false negatives; the diagonal is always positive.
    """
    logits = logit_scale.exp().clamp(max=100.0) * image @ text.T
    n = logits.shape[0]
    eye = torch.eye(n, device=logits.device, dtype=torch.bool)
    mask = eye if positives is None else positives | eye
    targets = mask.float() / mask.sum(dim=1, keepdim=True)
    targets_t = mask.T.float() / mask.T.sum(dim=1, keepdim=True)
    return (_soft_cross_entropy(logits, targets) + _soft_cross_entropy(logits.T, targets_t)) / 2


def supcon_loss(features: torch.Tensor, labels: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Supervised contrastive loss (Khosla et al. 2020, L_out) over L2-normalised features.

    Every other sample of the same class is a positive; anchors without a positive are left out.
    """
    n = features.shape[0]
    logits = features @ features.T / temperature
    self_mask = torch.eye(n, device=features.device, dtype=torch.bool)
    logits = logits.masked_fill(self_mask, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    pos = (labels[:, None] == labels[None, :]) & ~self_mask
    counts = pos.sum(dim=1)
    has_pos = counts > 0
    if not has_pos.any():
        return features.sum() * 0.0
    mean_log_prob_pos = log_prob.masked_fill(~pos, 0.0).sum(dim=1)[has_pos] / counts[has_pos]
    return -mean_log_prob_pos.mean()


@dataclass(frozen=True)
class LossWeights:
    """Weights of the combination; a zero weight switches that loss off. ``label`` weighs the label-prompt
    (UniCL) term, averaged over the fields it is computed for."""

    clip: float = 1.0
    supcon: float = 0.0
    supcon_temperature: float = 0.1
    label: float = 0.0
    proxy: float = 0.0
    proxy_scale: float = 16.0

    def describe(self) -> dict[str, float]:
        return {k: v for k, v in (("clip_infonce", self.clip), ("supcon", self.supcon),
                                  ("label_prompts", self.label), ("class_proxies", self.proxy)) if v} | (
            {"supcon_temperature": self.supcon_temperature} if self.supcon else {}) | (
            {"proxy_scale": self.proxy_scale} if self.proxy else {})


def combined_loss(weights: LossWeights, image: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor,
                  labels: torch.Tensor | None = None, positives: torch.Tensor | None = None
                  ) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted sum and its parts (for the log). SupCon runs on image and text embeddings together, so both
    towers cluster by class."""
    parts: dict[str, torch.Tensor] = {}
    if weights.clip:
        parts["clip"] = clip_loss(image, text, logit_scale, positives)
    if weights.supcon:
        if labels is None:
            raise ValueError("SupCon needs class labels")
        parts["supcon"] = supcon_loss(torch.cat([image, text]), torch.cat([labels, labels]),
                                      weights.supcon_temperature)
    if not parts:
        raise ValueError("every loss weight is zero")
    total = sum((getattr(weights, k) * v for k, v in parts.items()), start=image.new_zeros(()))
    return total, {k: float(v.detach()) for k, v in parts.items()}


def label_prompt_loss(image: torch.Tensor, label_text: torch.Tensor, targets: torch.Tensor,
                      logit_scale: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each image against the prompts of EVERY value of a catalog field, e.g. all 143
    articleTypes written "a photo of a {type}" (UniCL: Yang et al. 2022, "Unified Contrastive Learning in
    Image-Text-Label Space", its image-label term). In-batch InfoNCE only contrasts the few classes a batch
    holds; this contrasts all of them, which is exactly what zero-shot classification asks of the model.

    ``image`` (B, D) and ``label_text`` (C, D) are L2-normalised; ``targets`` (B,) int64 class indices, -1 where a
    product has no value for the field (left out). Returns a scalar (0 when no target is set).
    """
    keep = targets >= 0
    if not keep.any():
        return image.sum() * 0.0
    logits = logit_scale.exp().clamp(max=100.0) * image[keep] @ label_text.T
    return F.cross_entropy(logits, targets[keep])


def proxy_loss(image: torch.Tensor, proxies: torch.Tensor, targets: torch.Tensor, scale: float = 16.0
               ) -> torch.Tensor:
    """Cosine-softmax classification of image embeddings against learned class proxies (NormFace: Wang et al.
    2017, "NormFace: L2 Hypersphere Embedding for Face Verification"; a fixed scale, since a learned one
    collapses). It gives the image tower a classifier's fast, direct signal from the first step, while the
    text tower is still random, and clusters each class around its proxy on the unit sphere, which is what
    image->image search by class needs.

    ``image`` (B, D) L2-normalised, ``proxies`` (C, D) any norm, ``targets`` (B,) int64, -1 = no value (left out).
    """
    keep = targets >= 0
    if not keep.any():
        return image.sum() * 0.0
    logits = scale * image[keep] @ F.normalize(proxies, dim=-1).T
    return F.cross_entropy(logits, targets[keep])
