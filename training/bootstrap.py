"""Bootstrap a small fashion CLIP offline: synthetic catalog -> tiny CLIP from scratch -> this pipeline.

Model hubs may be unreachable; a random CLIP retrieves nothing. This trains a small CLIP on the synthetic
catalog on CPU in a few minutes, checks it on a held-out catalog drawn with another seed, and saves it where
``fashion_core.model.resolve`` looks for a cached model. Seeded throughout; repeatable up to the floating-point
noise of multithreaded CPU kernels (runs differ by a few points of zero-shot accuracy, inside the bar's margin).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import PIL
import torch

from fashion_core.captions import caption, clean_text
from fashion_core.catalog.reader import read_catalog
from fashion_core.catalog.schema import Product
from fashion_core.model.base import Encoder
from fashion_core.model.card import CARD_FILE
from fashion_core.model.encoder import ClipEncoder
from fashion_core.settings import Settings
from training.architectures import TinyClipSpec, build_tiny_clip
from training.evaluate import ZEROSHOT_TEMPLATES, load_images, zero_shot
from training.losses import LossWeights
from training.metrics import first_relevant_ranks, mrr, recall_at_k
from training.optim import OptimConfig
from training.recipes import ensure_trained
from training.synthetic_catalog import generate_catalog
from training.tokenizer import fashion_corpus
from training.trainer import TrainConfig, train

log = logging.getLogger(__name__)

SPEC = TinyClipSpec(image_size=64, patch_size=16, vision_width=128, vision_layers=3, text_width=128, text_layers=3,
                    heads=4, projection_dim=128, max_text_len=32, vocab_size=1000)
# Bumped when a change to the training code alters the weights the same config produces.
RECIPE_VERSION = 5  # 5: texts through the text tower in length-sorted buckets (trainer.TEXT_BUCKETS)
# The quality bar of the issue: a model below it is reported, not hidden.
TARGETS = {"zero_shot_baseColour": 0.9, "zero_shot_articleType": 0.8, "t2i_R@10": 0.5}


@dataclass(frozen=True)
class BootstrapConfig:
    seed: int = 0
    n_products: int = 3000
    n_heldout: int = 500
    heldout_seed_offset: int = 1000  # the held-out catalog is drawn with seed + offset, ids far from training's
    epochs: int = 20
    batch_size: int = 112
    lr: float = 1e-3
    caption_modes: tuple[str, ...] = ("template", "enriched")
    partial_captions: float = 0.3  # one-/two-attribute captions: what zero-shot prompts and short queries look like
    supcon: float = 0.5
    # label prompts (UniCL) and class proxies (NormFace), as in the real recipe: with them 20 epochs beat the
    # 50 of InfoNCE + SupCon alone on zero-shot type and colour (0.92 / 0.97 vs 0.89 / 0.96) in 101 s vs ~180 s
    label: float = 1.0
    proxy: float = 2.0
    # One CPU thread: this small model trained faster on one than on two on an idle 2-core machine (4.3 against
    # 3.5 steps/s, 2026-12-02), and the test command trains it beside the real recipe, where a second thread only
    # takes CPU from it.
    threads: int = 1


def recipe_fingerprint(config: BootstrapConfig | None = None) -> str:
    """A short hash of what decides the bootstrap's weights (architecture + config): caches keyed on it never
    serve a model trained by an older recipe. Pillow's major version is part of it: the training images are
    drawn with PIL: a model trained under Pillow 12 found the right articleType first for 75% of image queries
    drawn by Pillow 13, one trained under 13 for 96% (measured), so an upgrade retrains instead of reusing it."""
    recipe = {"architecture": asdict(SPEC), "bootstrap": asdict(config or BootstrapConfig()),
              "version": RECIPE_VERSION, "pillow": PIL.__version__.split(".")[0]}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]


def quality_query(product: Product) -> str:
    gender = clean_text(product.gender)
    return f"a {clean_text(product.baseColour)} {clean_text(product.articleType)} for {gender}"


def bootstrap_quality(encoder: Encoder, products: Sequence[Product]) -> dict[str, float]:
    """The issue's bar on a held-out catalog: text->image R@1/R@10/MRR (the product's own query is the match)
    and zero-shot accuracy on articleType and baseColour."""
    images = encoder.encode_images(load_images(products))
    texts = encoder.encode_texts([quality_query(p) for p in products])
    ranks = first_relevant_ranks(texts @ images.T, np.eye(len(products), dtype=bool))
    out = {"t2i_R@1": recall_at_k(ranks, 1), "t2i_R@10": recall_at_k(ranks, 10), "t2i_MRR": mrr(ranks)}
    for field in ("articleType", "baseColour"):
        report = zero_shot(encoder, images, products, field, ZEROSHOT_TEMPLATES[field])
        out[f"zero_shot_{field}"] = float(report["accuracy"])
    return out


def quality_table(metrics: dict[str, float]) -> list[tuple[str, str, str, str]]:
    """(metric, value, target, verdict) rows."""
    rows = []
    for key, value in metrics.items():
        target = TARGETS.get(key)
        verdict = "" if target is None else ("ok" if value >= target else "BELOW TARGET")
        rows.append((key, f"{value:.3f}", "" if target is None else f">= {target}", verdict))
    return rows


class SyntheticRecipe:
    """The bootstrap as a recipe (``training/recipes.py``): cached as ``models/synthetic-<fingerprint>``."""

    name = "synthetic"

    def __init__(self, config: BootstrapConfig | None = None) -> None:
        self.config = config or BootstrapConfig()

    def fingerprint(self) -> str:
        return recipe_fingerprint(self.config)

    def train(self, out: Path, progress: bool) -> Path:
        return _bootstrap(out, self.config, progress)


def bootstrap_model(settings: Settings, config: BootstrapConfig | None = None, force: bool = False,
                    progress: bool = True) -> Path:
    """The synthetic recipe's checkpoint in ``settings.models_dir``, trained first when missing."""
    return ensure_trained(SyntheticRecipe(config), settings, force, progress)


def _bootstrap(out: Path, cfg: BootstrapConfig, progress: bool) -> Path:
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads or os.cpu_count() or 1)
    started = time.perf_counter()
    out.mkdir(parents=True)
    try:
        products = read_catalog(generate_catalog(out / "catalog", n=cfg.n_products, seed=cfg.seed)).products
        heldout = read_catalog(generate_catalog(
            out / "heldout", n=cfg.n_heldout, seed=cfg.seed + cfg.heldout_seed_offset,
            start_id=10_000_000)).products
        corpus = [caption(p, m) for p in products for m in ("raw", "enriched", "template")]
        base = build_tiny_clip(out / "base", SPEC, seed=cfg.seed, corpus=[*corpus, *fashion_corpus()])
        train_cfg = TrainConfig(
            base=str(base), out_dir=out / "model", caption_modes=cfg.caption_modes,
            partial_captions=cfg.partial_captions,
            losses=LossWeights(clip=1.0, supcon=cfg.supcon, label=cfg.label, proxy=cfg.proxy),
            sampler="pk" if cfg.supcon else "random",
            pk_p=14, pk_k=cfg.batch_size // 14, class_field="articleType", epochs=cfg.epochs,
            batch_size=cfg.batch_size, seed=cfg.seed, device="cpu", patience=cfg.epochs,
            optim=OptimConfig(lr=cfg.lr, weight_decay=0.05, warmup_steps=30, schedule="cosine"),
            progress=progress, data_note=f"synthetic catalog, {cfg.n_products} products, seed {cfg.seed}")
        result = train(train_cfg, products)
        encoder = ClipEncoder.from_pretrained(result.out_dir, device="cpu")
        quality = bootstrap_quality(encoder, heldout)
        card: dict[str, Any] = {
            **result.card, "name": "fashion-search bootstrap (synthetic catalog)",
            "base": "random init (trained from scratch)", "architecture": asdict(SPEC),
            "recipe": {"name": SyntheticRecipe.name, "fingerprint": recipe_fingerprint(cfg)},
            "bootstrap": asdict(cfg),
            "quality": {"heldout": f"synthetic catalog, {cfg.n_heldout} products, seed "
                                   f"{cfg.seed + cfg.heldout_seed_offset}",
                        "queries": "a {colour} {articleType} for {gender}",
                        "metrics": {k: round(v, 4) for k, v in quality.items()},
                        "targets": TARGETS,
                        "met": all(quality[k] >= t for k, t in TARGETS.items())},
            "train_seconds": round(time.perf_counter() - started, 1),
        }
        (result.out_dir / CARD_FILE).write_text(json.dumps(card, indent=2))
    finally:
        torch.set_num_threads(threads)
    log.info("bootstrap model trained in %.0f s", time.perf_counter() - started)
    return result.out_dir
