"""A real learning test: a short fine-tune of the tiny CLIP beats the same model before training on held-out
products, by margins far above chance; the result is a checkpoint the encoder loads with its card."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fashion_core.captions import caption
from fashion_core.catalog.reader import read_catalog
from fashion_core.model.card import CARD_FILE
from fashion_core.model.encoder import ClipEncoder
from training.data import split_products
from training.evaluate import load_images
from training.losses import LossWeights
from training.metrics import first_relevant_ranks, mrr, recall_at_k
from training.optim import OptimConfig
from training.trainer import CURVES_FILE, LOG_FILE, TrainConfig, train

SPLIT = (0.6, 0.1)  # ~30% of the 420 products held out for the before/after comparison


def t2i_ranks(model_dir: Path, products) -> np.ndarray:
    encoder = ClipEncoder.from_pretrained(model_dir, device="cpu")
    images = encoder.encode_images(load_images(products))
    texts = encoder.encode_texts([caption(p, "template") for p in products])
    return first_relevant_ranks(texts @ images.T, np.eye(len(products), dtype=bool))


def fine_tune_config(base: Path, out_dir: Path) -> TrainConfig:
    """The short fine-tune both this test and the CUDA one (tests/gpu) run on the tiny model."""
    return TrainConfig(base=str(base), out_dir=out_dir, caption_modes=("template", "enriched"),
                       losses=LossWeights(clip=1.0, supcon=0.3), sampler="pk", pk_p=8, pk_k=4, epochs=16,
                       batch_size=32, seed=0, split=SPLIT, patience=16,
                       optim=OptimConfig(lr=2e-3, weight_decay=0.05, warmup_steps=5), progress=False,
                       data_note="synthetic test catalog")


@pytest.fixture(scope="module")
def trained(tiny_model_dir: Path, train_catalog: Path, tmp_path_factory: pytest.TempPathFactory):
    products = read_catalog(train_catalog).products
    result = train(fine_tune_config(tiny_model_dir, tmp_path_factory.mktemp("run") / "ckpt"), products)
    return result, split_products(products, SPLIT)["test"]


def test_fine_tune_beats_the_untrained_model_on_held_out_products(trained, tiny_model_dir: Path) -> None:
    result, test = trained
    n = len(test)
    assert n >= 100
    before, after = t2i_ranks(tiny_model_dir, test), t2i_ranks(result.out_dir, test)
    chance_r1, chance_mrr = 1 / n, float(np.mean([1 / r for r in range(1, n + 1)]))
    r1_before, r1_after = recall_at_k(before, 1), recall_at_k(after, 1)
    mrr_before, mrr_after = mrr(before), mrr(after)
    # A random ranking gets R@1 ~ 1/n and MRR ~ H_n/n; learning colour alone reaches ~11/n and far more.
    assert r1_after >= 5 * chance_r1 and r1_after >= r1_before + 0.04, (r1_before, r1_after, chance_r1)
    assert mrr_after >= 2.5 * chance_mrr and mrr_after >= mrr_before + 0.08, (mrr_before, mrr_after, chance_mrr)


def test_training_log_curves_and_best_checkpoint(trained) -> None:
    result, _ = trained
    out = result.out_dir
    assert (out / CURVES_FILE).stat().st_size > 5000
    rows = [json.loads(line) for line in (out / LOG_FILE).read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(len(rows)))
    assert rows[-1]["loss"] < rows[1]["loss"]  # the loss went down
    best = max(rows, key=lambda r: r["val_MRR"])
    assert result.best_epoch == best["epoch"]
    assert result.best["val_MRR"] == pytest.approx(best["val_MRR"])


def test_checkpoint_loads_in_the_encoder_with_its_card(trained) -> None:
    result, _ = trained
    encoder = ClipEncoder.from_pretrained(result.out_dir, device="cpu")
    card = encoder.info.card
    assert card == json.loads((result.out_dir / CARD_FILE).read_text())
    assert card["caption_modes"] == ["template", "enriched"]
    assert card["losses"] == {"clip_infonce": 1.0, "supcon": 0.3, "supcon_temperature": 0.1}
    assert card["hyperparameters"]["betas"] == [0.9, 0.98] and card["hyperparameters"]["eps"] == 1e-6
    assert card["epochs"]["best"] == result.best_epoch
    assert card["validation"]["best"]["val_MRR"] > card["validation"]["before"]["val_MRR"]
    vectors = encoder.encode_texts(["a red dresses for women"])
    assert vectors.shape == (1, encoder.info.dim)


def zero_shot_accuracy(model_dir: Path, products) -> float:
    from training.evaluate import ZEROSHOT_TEMPLATES, zero_shot

    encoder = ClipEncoder.from_pretrained(model_dir, device="cpu")
    images = encoder.encode_images(load_images(products))
    return float(zero_shot(encoder, images, products, "articleType", ZEROSHOT_TEMPLATES["articleType"])["accuracy"])


def test_a_convnext_dual_encoder_learns_zero_shot_types_with_label_prompts_and_proxies(
        train_catalog: Path, tmp_path: Path) -> None:
    """The real recipe's model shape (training/real.py) at toy size: a VisionTextDualEncoderModel with a ConvNeXt
    image tower, trained from scratch with InfoNCE + label prompts + class proxies, then zero-shot on held-out
    products. 14 article types: chance is 7%."""
    from training.architectures import DualEncoderSpec, build_dual_encoder

    spec = DualEncoderSpec(image_size=32, resize_edge=32, patch_size=4, dims=(16, 32, 48, 64), depths=(1, 1, 1, 1),
                           text_width=48, text_layers=1, projection_dim=48, vocab_size=600, text_init_range=0.1)
    products = read_catalog(train_catalog).products
    base = build_dual_encoder(tmp_path / "base", spec, corpus=[caption(p, "enriched") for p in products])
    cfg = TrainConfig(base=str(base), out_dir=tmp_path / "ckpt", caption_modes=("enriched",), partial_captions=0.3,
                      losses=LossWeights(clip=1.0, label=1.0, proxy=2.0), hflip=True, epochs=20, batch_size=32,
                      split=SPLIT, patience=20, optim=OptimConfig(lr=3e-3, weight_decay=0.05, warmup_steps=5),
                      progress=False)
    result = train(cfg, products)
    test = split_products(products, SPLIT)["test"]
    before, after = zero_shot_accuracy(base, test), zero_shot_accuracy(result.out_dir, test)
    assert after >= 0.5 and after >= before + 0.3, (before, after)
    card = json.loads((result.out_dir / CARD_FILE).read_text())
    assert card["losses"] == {"clip_infonce": 1.0, "label_prompts": 1.0, "class_proxies": 2.0, "proxy_scale": 16.0}
    assert not any("prox" in key for key in ClipEncoder.from_pretrained(result.out_dir).model.state_dict())


def test_bucketed_texts_give_the_padded_batchs_features_in_the_texts_order(tiny_model_dir: Path) -> None:
    """Training sends a step's texts through the text tower in length-sorted buckets, each padded to its own
    longest text: the features are the one padded batch's, row for row, at a fraction of the padded tokens."""
    import torch

    from fashion_core.model.encoder import load_checkpoint
    from training.embedding import bucket_features, text_features, tokenize, tokenize_buckets

    model, processor = load_checkpoint(tiny_model_dir)
    model.eval()
    words = ["red", "blue", "navy", "casual", "running", "shoes", "for", "men", "women", "summer", "cotton"]
    texts = [" ".join(words[: 1 + (7 * i) % len(words)]) for i in range(23)]  # lengths 1-11 words, shuffled
    cpu = torch.device("cpu")
    padded = tokenize(processor.tokenizer, texts, 32, cpu)
    buckets = tokenize_buckets(processor.tokenizer, texts, 32, cpu, buckets=3)
    assert len(buckets.buckets) == 3 and sorted(buckets.order.tolist()) == list(range(len(texts)))
    assert sum(b["input_ids"].numel() for b in buckets.buckets) < 0.8 * padded["input_ids"].numel()
    with torch.no_grad():
        expected, got = text_features(model, padded), bucket_features(model, buckets)
    assert got.shape == expected.shape and torch.allclose(got, expected, atol=1e-5)
    model.train()
    bucket_features(model, buckets).sum().backward()  # gradients reach the tower through the reordering
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.text_model.parameters())
