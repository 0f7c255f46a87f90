"""The fine-tuning loop: data -> (InfoNCE | SupCon) -> best checkpoint + JSON card + curves.

The output directory is a Hugging Face checkpoint (model + processor) that ``ClipEncoder.from_pretrained``
loads as is, with ``model_card.json`` beside it.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import CLIPModel, CLIPProcessor

from fashion_core.catalog.schema import Product
from fashion_core.model.factory import CARD_FILE
from training.curves import plot_curves
from training.data import ProductData, build_data, caption_attributes, partial_caption, split_products
from training.embedding import embed_all, image_features, text_features, text_max_length, tokenize
from training.freezing import Stage, apply_freezing
from training.losses import LossWeights, combined_loss
from training.metrics import retrieval_metrics
from training.optim import OptimConfig, Scheduler, build_optimizer
from training.samplers import PKSampler, random_batches

log = logging.getLogger(__name__)
LOG_FILE = "training_log.jsonl"
CURVES_FILE = "training_curves.png"


@dataclass(frozen=True)
class TrainConfig:
    base: str  # checkpoint directory or hub id to start from
    out_dir: Path
    caption_modes: tuple[str, ...] = ("enriched",)  # one mode drawn per sample per step when several
    partial_captions: float = 0.0  # share of captions replaced by one- or two-attribute ones ("red", "dresses")
    attribute_positives: bool = True  # a caption matches every product equal on the attributes it states
    losses: LossWeights = field(default_factory=LossWeights)
    sampler: str = "random"  # "random" | "pk" (P classes x K items, needed for SupCon to see positives)
    pk_p: int = 8
    pk_k: int = 4
    class_field: str = "articleType"  # SupCon / PK class: a catalog field, or "id" for product identity
    stage: Stage = "joint"
    freeze_lower: int = 0
    optim: OptimConfig = field(default_factory=OptimConfig)
    epochs: int = 5
    batch_size: int = 64
    seed: int = 0
    amp: bool = True  # only ever used on CUDA
    device: str = "auto"
    early_stop_metric: str = "val_MRR"
    patience: int = 3
    split: tuple[float, float] = (0.8, 0.1)
    split_salt: str = "fashion-split"
    progress: bool = True
    data_note: str = ""  # what the catalog was, for the card


@dataclass
class TrainResult:
    out_dir: Path
    history: list[dict[str, Any]]
    best_epoch: int
    best: dict[str, float]
    card: dict[str, Any]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def validate(model: CLIPModel, processor: CLIPProcessor, data: ProductData, device: torch.device
             ) -> dict[str, float]:
    """text->image retrieval on the split, first caption mode as queries; identical captions count as hits."""
    texts = [c[0] for c in data.captions]
    images, text_vecs = embed_all(model, processor.tokenizer, data.pixels, texts, device)
    sim = (text_vecs @ images.T).numpy()
    relevant = np.asarray(texts, dtype=object)[:, None] == np.asarray(texts, dtype=object)[None, :]
    metrics = retrieval_metrics(sim, relevant, ks=(1, 5, 10), ndcg_k=10)
    return {f"val_{k}": v for k, v in metrics.items()}


def _batches(cfg: TrainConfig, data: ProductData, rng: random.Random, sampler: PKSampler | None):
    if sampler is not None:
        return list(sampler)
    return list(random_batches(len(data), cfg.batch_size, rng))


class Trainer:
    def __init__(self, cfg: TrainConfig, train: ProductData, val: ProductData, model: CLIPModel,
                 processor: CLIPProcessor, tagger_note: str | None = None) -> None:
        self.cfg = cfg
        self.train_data, self.val_data = train, val
        self.device = torch.device("cuda" if cfg.device == "auto" and torch.cuda.is_available()
                                   else "cpu" if cfg.device == "auto" else cfg.device)
        self.model = model.to(self.device)
        self.processor = processor
        self.use_amp = cfg.amp and self.device.type == "cuda"
        self.freeze_counts = apply_freezing(self.model, cfg.stage, cfg.freeze_lower)
        self.rng = random.Random(cfg.seed)
        _, labels = train.labels(cfg.class_field)
        self.labels = labels
        self.sampler = (PKSampler(labels.tolist(), cfg.pk_p, cfg.pk_k, cfg.seed) if cfg.sampler == "pk" else None)
        self.steps_per_epoch = len(self.sampler) if self.sampler else max(1, len(train) // cfg.batch_size)
        self.optimizer = build_optimizer(self.model, cfg.optim)
        total = max(1, cfg.epochs * self.steps_per_epoch // cfg.optim.accumulate)
        self.scheduler = Scheduler(self.optimizer, cfg.optim, total)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.max_len = text_max_length(model, processor.tokenizer)
        self.tagger_note = tagger_note

    def _step_loss(self, idx: list[int]) -> tuple[torch.Tensor, dict[str, float]]:
        data = self.train_data
        pixels = data.pixels[idx].to(self.device)
        texts, attrs = [], []
        for i in idx:
            if self.cfg.partial_captions and self.rng.random() < self.cfg.partial_captions:
                text, attr = partial_caption(data.products[i], self.rng)
            else:
                m = self.rng.randrange(len(data.modes))
                text, attr = data.captions[i][m], caption_attributes(data.products[i], data.modes[m])
            texts.append(text)
            attrs.append(attr if self.cfg.attribute_positives else None)
        tokens = tokenize(self.processor.tokenizer, texts, self.max_len, self.device)
        with torch.autocast("cuda", dtype=torch.float16, enabled=self.use_amp):
            img = image_features(self.model, pixels)
            if self.cfg.stage == "image":
                with torch.no_grad():
                    txt = text_features(self.model, tokens)
            else:
                txt = text_features(self.model, tokens)
        text_ids = {t: i for i, t in enumerate(dict.fromkeys(texts))}
        ids = torch.tensor([text_ids[t] for t in texts], device=self.device)
        positives = ids[:, None] == ids[None, :]
        if any(a is not None for a in attrs):
            products = [data.products[i] for i in idx]
            extra = [[a is not None and all(str(getattr(p, f)) == v for f, v in a) for p in products] for a in attrs]
            positives |= torch.tensor(extra, device=self.device)
        labels = self.labels[idx].to(self.device)
        return combined_loss(self.cfg.losses, img.float(), txt.float(), self.model.logit_scale, labels, positives)

    def train_epoch(self, epoch: int) -> dict[str, float]:
        self.model.train()
        cfg = self.cfg
        batches = _batches(cfg, self.train_data, self.rng, self.sampler)
        sums: dict[str, float] = {}
        self.optimizer.zero_grad(set_to_none=True)
        bar = tqdm(batches, desc=f"epoch {epoch}/{cfg.epochs}", disable=not cfg.progress, leave=False)
        for step, idx in enumerate(bar, start=1):
            loss, parts = self._step_loss(idx)
            self.scaler.scale(loss / cfg.optim.accumulate).backward()
            if step % cfg.optim.accumulate == 0 or step == len(batches):
                if cfg.optim.grad_clip:
                    self.scaler.unscale_(self.optimizer)
                    torch.nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad],
                                                   cfg.optim.grad_clip)
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.optimizer.zero_grad(set_to_none=True)
                self.scheduler.after_step()
                with torch.no_grad():  # CLIP clips the temperature at 100
                    self.model.logit_scale.clamp_(0, float(np.log(100)))
            sums["loss"] = sums.get("loss", 0.0) + float(loss.detach())
            for k, v in parts.items():
                sums[f"loss_{k}"] = sums.get(f"loss_{k}", 0.0) + v
            bar.set_postfix(loss=f"{sums['loss'] / step:.3f}")
        return {k: v / max(1, len(batches)) for k, v in sums.items()}

    def save(self, out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(out)
        self.processor.save_pretrained(out)

    def fit(self) -> TrainResult:
        cfg = self.cfg
        out = Path(cfg.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        history: list[dict[str, Any]] = []
        before = validate(self.model, self.processor, self.val_data, self.device)
        history.append({"epoch": 0, **before})
        log.info("epoch 0 (before training): %s", _fmt(before))
        best_value, best_epoch, best = before.get(cfg.early_stop_metric, -np.inf), 0, before
        self.save(out)  # epoch 0 is the fallback if training never improves the metric
        stale = 0
        (out / LOG_FILE).write_text(json.dumps(history[0]) + "\n")
        for epoch in range(1, cfg.epochs + 1):
            start = time.perf_counter()
            losses = self.train_epoch(epoch)
            metrics = validate(self.model, self.processor, self.val_data, self.device)
            row = {"epoch": epoch, **losses, **metrics, "lr": self.scheduler.lr,
                   "logit_scale": float(self.model.logit_scale.detach().exp()), "seconds": time.perf_counter() - start}
            history.append(row)
            with (out / LOG_FILE).open("a") as fh:
                fh.write(json.dumps(row) + "\n")
            log.info("epoch %d: %s", epoch, _fmt(row))
            value = metrics[cfg.early_stop_metric]
            self.scheduler.after_epoch(value)
            if value > best_value:
                best_value, best_epoch, best, stale = value, epoch, metrics, 0
                self.save(out)
            else:
                stale += 1
                if stale >= cfg.patience:
                    log.info("early stop: %s did not improve for %d epochs", cfg.early_stop_metric, stale)
                    break
        plot_curves(history, out / CURVES_FILE)
        card = self.card(history, best_epoch, best)
        (out / CARD_FILE).write_text(json.dumps(card, indent=2))
        return TrainResult(out, history, best_epoch, best, card)

    def card(self, history: list[dict[str, Any]], best_epoch: int, best: dict[str, float]) -> dict[str, Any]:
        cfg = self.cfg
        return {
            "name": Path(cfg.out_dir).name,
            "base": cfg.base,
            "data": {"note": cfg.data_note, "train": len(self.train_data), "val": len(self.val_data),
                     "split": {"train": cfg.split[0], "val": cfg.split[1], "salt": cfg.split_salt,
                               "by": "sha256 of product id"}},
            "caption_modes": list(cfg.caption_modes),
            "partial_captions": cfg.partial_captions,
            "positives": "same caption or same stated attributes" if cfg.attribute_positives else "same caption",
            **({"tagger": self.tagger_note} if self.tagger_note else {}),
            "losses": cfg.losses.describe(),
            "sampler": cfg.sampler if cfg.sampler != "pk" else f"pk (P={cfg.pk_p}, K={cfg.pk_k}, "
                                                                 f"class={cfg.class_field})",
            "stage": cfg.stage,
            "freeze_lower_layers": cfg.freeze_lower,
            "parameters": self.freeze_counts,
            "hyperparameters": {**asdict(cfg.optim), "batch_size": cfg.batch_size, "seed": cfg.seed,
                                "amp": self.use_amp, "device": str(self.device)},
            "epochs": {"planned": cfg.epochs, "run": len(history) - 1, "best": best_epoch},
            "early_stopping": {"metric": cfg.early_stop_metric, "patience": cfg.patience},
            "validation": {"before": {k: round(v, 4) for k, v in history[0].items() if k.startswith("val_")},
                           "best": {k: round(v, 4) for k, v in best.items()}},
        }


def _fmt(row: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items() if k != "epoch")


def train(cfg: TrainConfig, products: Sequence[Product], tagger: Callable[[Sequence[str]], list[str]] | None = None,
          model: CLIPModel | None = None, tagger_note: str | None = None) -> TrainResult:
    """Split the products, preprocess them once, train and save. ``model`` overrides loading ``cfg.base``."""
    seed_everything(cfg.seed)
    processor = CLIPProcessor.from_pretrained(cfg.base)
    if model is None:
        model = CLIPModel.from_pretrained(cfg.base)
    splits = split_products(products, cfg.split, cfg.split_salt)
    if len(splits["train"]) < 2 or len(splits["val"]) < 2:
        raise ValueError(f"too few products to train: {len(splits['train'])} train, {len(splits['val'])} val")
    train_data = build_data(splits["train"], processor.image_processor, cfg.caption_modes, tagger)
    val_data = build_data(splits["val"], processor.image_processor, cfg.caption_modes, tagger)
    log.info("training on %d products, validating on %d", len(train_data), len(val_data))
    return Trainer(cfg, train_data, val_data, model, processor, tagger_note).fit()
