"""Losses against hand-computed values; PK batches; the hash split; freezing."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch

from fashion_core.catalog.reader import read_catalog
from training.data import split_of, split_products
from training.freezing import apply_freezing
from training.losses import LossWeights, clip_loss, combined_loss, supcon_loss
from training.samplers import PKSampler

E = torch.eye(2)


def test_clip_loss_by_hand() -> None:
    # logits = I at scale 1: each row's CE is -log(e / (e + 1)) = log(1 + 1/e)
    expected = math.log(1 + math.exp(-1))
    assert float(clip_loss(E, E, torch.tensor(0.0))) == pytest.approx(expected)
    # with every pair positive the targets are (1/2, 1/2): CE = (log(1+1/e) + log(1+e)) / 2
    both = torch.ones(2, 2, dtype=torch.bool)
    assert float(clip_loss(E, E, torch.tensor(0.0), both)) == pytest.approx(
        (expected + math.log(1 + math.e)) / 2)
    # the temperature is learnable: a gradient reaches logit_scale
    scale = torch.tensor(0.0, requires_grad=True)
    clip_loss(E, E, scale).backward()
    assert scale.grad is not None and scale.grad < 0  # sharper logits lower the loss of a perfect match


def test_supcon_by_hand() -> None:
    features = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    # anchors 0 and 1 are each other's positive (logit 1) against item 2 (logit 0); anchor 2 has no positive
    expected = -(1 - math.log(math.e + 1))
    assert float(supcon_loss(features, torch.tensor([0, 0, 1]), temperature=1.0)) == pytest.approx(expected)
    assert float(supcon_loss(features, torch.tensor([0, 1, 2]))) == 0.0


def test_combined_loss_weights() -> None:
    labels = torch.tensor([0, 1])
    total, parts = combined_loss(LossWeights(clip=1.0, supcon=0.5), E, E, torch.tensor(0.0), labels)
    assert set(parts) == {"clip", "supcon"}
    assert float(total) == pytest.approx(parts["clip"] + 0.5 * parts["supcon"])
    with pytest.raises(ValueError):
        combined_loss(LossWeights(clip=0.0, supcon=0.0), E, E, torch.tensor(0.0))


def test_pk_sampler_batches() -> None:
    labels = [i % 5 for i in range(40)] + [5]  # class 5 has a single item: sampled with replacement
    sampler = PKSampler(labels, p=3, k=4, seed=1)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 41 // 12
    for batch in batches:
        counts = Counter(labels[i] for i in batch)
        assert len(counts) == 3 and set(counts.values()) == {4}
    assert batches == list(PKSampler(labels, p=3, k=4, seed=1))  # deterministic given the seed
    with pytest.raises(ValueError):
        PKSampler(labels, p=7, k=2)


def test_split_is_deterministic_by_id(synthetic_catalog) -> None:
    products = read_catalog(synthetic_catalog).products
    splits = split_products(products)
    assert sum(len(v) for v in splits.values()) == len(products)
    assert {p.id for p in splits["train"]}.isdisjoint({p.id for p in splits["test"]})
    # the same id lands in the same split whatever the order or company
    assert split_products(list(reversed(products)))["test"] == list(reversed(splits["test"]))
    assert all(split_of(p.id) == "test" for p in splits["test"])
    share = len(splits["train"]) / len(products)
    assert 0.65 < share < 0.92


def test_freezing_stages(tiny_model_dir) -> None:
    from transformers import CLIPModel

    model = CLIPModel.from_pretrained(tiny_model_dir)
    counts = apply_freezing(model, "image")
    assert not any(p.requires_grad for p in model.text_model.parameters())
    assert all(p.requires_grad for p in model.vision_model.parameters())
    assert model.logit_scale.requires_grad and counts["frozen"] > 0
    apply_freezing(model, "joint", freeze_lower=1)
    for tower in (model.vision_model, model.text_model):
        assert not any(p.requires_grad for p in tower.encoder.layers[0].parameters())
        assert all(p.requires_grad for p in tower.encoder.layers[1].parameters())
    apply_freezing(model, "joint")
    assert all(p.requires_grad for p in model.parameters())
