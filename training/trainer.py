"""The fine-tuning loop: data -> (InfoNCE | SupCon | label prompts | class proxies) -> best checkpoint + card.

The output directory is a Hugging Face checkpoint (model + processor) that ``ClipEncoder.from_pretrained``
loads as is, with ``model_card.json`` beside it. Any CLIP-style checkpoint trains: a ``CLIPModel`` or a
``VisionTextDualEncoderModel`` (``fashion_core.model.encoder.load_checkpoint``).
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, ProcessorMixin

from fashion_core.captions import clean_text
from fashion_core.catalog.schema import Product
from fashion_core.model.card import CARD_FILE
from fashion_core.model.encoder import load_checkpoint
from fashion_core.zeroshot import FIELD_TEMPLATES
from training.curves import plot_curves
from training.data import (
    Attributes,
    ProductData,
    build_data,
    caption_attributes,
    partial_caption,
    split_products,
)
from training.embedding import (
    TextBuckets,
    bucket_features,
    embed_all,
    image_features,
    text_max_length,
    tokenize_buckets,
)
from training.freezing import Stage, apply_freezing
from training.losses import LossWeights, combined_loss, label_prompt_loss, proxy_loss
from training.metrics import retrieval_metrics
from training.optim import OptimConfig, Scheduler, build_optimizer
from training.samplers import PKSampler, random_batches

log = logging.getLogger(__name__)
LOG_FILE = "training_log.jsonl"
CURVES_FILE = "training_curves.png"
# A step's captions (and the label prompts) go through the text tower in this many length-sorted buckets, each
# padded to its own longest text: on the real recipe's captions (128 a step, 21 tokens padded, 9 the median) a
# step's text forward and backward took ~190-210 ms against ~250-280 ms padded as one batch (4 buckets: ~190-255
# ms; 8: ~220-275), on 2 CPU threads.
TEXT_BUCKETS = 2


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
    # label-prompt (UniCL) and class-proxy losses, on when losses.label / losses.proxy > 0: each image against
    # every value of these fields; the per-field losses are averaged with these weights
    label_fields: tuple[tuple[str, float], ...] = (("articleType", 2.0), ("baseColour", 1.0), ("gender", 1.0),
                                                   ("subCategory", 0.5), ("masterCategory", 0.25))
    # The label prompts' embeddings are recomputed (with gradient into the text tower) every this many steps
    # and reused, detached, in between: on a CPU the ~250 prompts cost a fifth of a step.
    label_refresh: int = 1
    patch_dropout: float = 0.0  # FLIP: share of image patches dropped in training steps (never at inference)
    hflip: bool = False  # mirror half of each batch's images (products are left-right symmetric enough)
    threads: int | None = None  # torch CPU threads while training; None = torch's default
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


def validate(model: PreTrainedModel, processor: ProcessorMixin, data: ProductData, device: torch.device
             ) -> dict[str, float]:
    """text->image retrieval on the split, first caption mode as queries; identical captions count as hits."""
    texts = [c[0] for c in data.captions]
    images, text_vecs = embed_all(model, processor.tokenizer, data.pixels, texts, device)
    sim = (text_vecs @ images.T).numpy()
    relevant = np.asarray(texts, dtype=object)[:, None] == np.asarray(texts, dtype=object)[None, :]
    metrics = retrieval_metrics(sim, relevant, ks=(1, 5, 10), ndcg_k=10)
    return {f"val_{k}": v for k, v in metrics.items()}


def _batches(cfg: TrainConfig, data: ProductData, rng: random.Random, sampler: PKSampler | None
             ) -> list[list[int]]:
    if sampler is not None:
        return list(sampler)
    return list(random_batches(len(data), cfg.batch_size, rng))


class Trainer:
    def __init__(self, cfg: TrainConfig, train: ProductData, val: ProductData, model: PreTrainedModel,
                 processor: ProcessorMixin, tagger_note: str | None = None) -> None:
        self.cfg = cfg
        self.train_data, self.val_data = train, val
        self.device = torch.device("cuda" if cfg.device == "auto" and torch.cuda.is_available()
                                   else "cpu" if cfg.device == "auto" else cfg.device)
        self.model = model.to(self.device)
        # A convolutional image tower (the real recipe's ConvNeXt) runs ~10% faster on a CPU with its activations
        # laid out channels-last; the values are the same.
        self.channels_last = _convolutional(model)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.processor = processor
        self.use_amp = cfg.amp and self.device.type == "cuda"
        self.freeze_counts = apply_freezing(self.model, cfg.stage, cfg.freeze_lower)
        self.rng = random.Random(cfg.seed)
        _, labels = train.labels(cfg.class_field)
        self.labels = labels
        self.sampler = (PKSampler(labels.tolist(), cfg.pk_p, cfg.pk_k, cfg.seed) if cfg.sampler == "pk" else None)
        self.steps_per_epoch = len(self.sampler) if self.sampler else max(1, len(train) // cfg.batch_size)
        self.max_len = text_max_length(model, processor.tokenizer)
        self.tagger_note = tagger_note
        self._field_codes: dict[str, tuple[dict[str, int], torch.Tensor]] = {}
        self._prompts: torch.Tensor | None = None  # the label prompts' last embeddings (label_refresh)
        self._steps = 0
        # Per label field: the tokenised prompt of every value (label-prompt loss) and each product's value index;
        # with class proxies, one learned unit vector per value in the embedding space (a training aid only,
        # never saved with the checkpoint).
        self.label_targets: dict[str, torch.Tensor] = {}  # field -> each product's value index (-1: none)
        self.label_slices: dict[str, slice] = {}  # field -> its values' rows in label_tokens
        self.label_tokens: TextBuckets | None = None  # every field's prompts, tokenised together (bucketed)
        self.proxies = torch.nn.ParameterDict()
        total_weight = sum(w for _, w in cfg.label_fields) or 1.0
        self.field_weights = {name: w / total_weight for name, w in cfg.label_fields}
        if cfg.losses.label or cfg.losses.proxy:
            dim = int(model.config.projection_dim)
            generator = torch.Generator().manual_seed(cfg.seed)
            prompts: list[str] = []
            for name, _ in cfg.label_fields:
                values = [str(getattr(p, name) or "") for p in train.products]
                classes = sorted(set(values) - {""})
                index = {v: i for i, v in enumerate(classes)}
                self.label_targets[name] = torch.tensor([index.get(v, -1) for v in values], dtype=torch.long)
                self.label_slices[name] = slice(len(prompts), len(prompts) + len(classes))
                template = FIELD_TEMPLATES.get(name, ("a photo of a {}",))[0]  # as zero-shot asks
                prompts += [template.format(clean_text(c)) for c in classes]
                if cfg.losses.proxy:
                    self.proxies[name] = torch.nn.Parameter(
                        torch.randn(len(classes), dim, generator=generator).to(self.device))
            # one text forward for all fields' prompts per step: on a CPU, five small batches cost far more
            self.label_tokens = tokenize_buckets(processor.tokenizer, prompts, self.max_len, self.device,
                                                 TEXT_BUCKETS)
        self.optimizer = build_optimizer(self.model, cfg.optim, extra=self.proxies)
        total = max(1, cfg.epochs * self.steps_per_epoch // cfg.optim.accumulate)
        self.scheduler = Scheduler(self.optimizer, cfg.optim, total)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)

    def _step_loss(self, idx: list[int]) -> tuple[torch.Tensor, dict[str, float]]:
        data = self.train_data
        pixels = data.pixels[idx].to(self.device)  # a copy (index gather): flipping it leaves the data alone
        if self.cfg.hflip:
            flip = torch.rand(len(idx)) < 0.5
            pixels[flip] = pixels[flip].flip(-1)
        if self.channels_last:
            pixels = pixels.contiguous(memory_format=torch.channels_last)
        texts: list[str] = []
        attrs: list[Attributes | None] = []
        for i in idx:
            attr: Attributes | None
            if self.cfg.partial_captions and self.rng.random() < self.cfg.partial_captions:
                text, attr = partial_caption(data.products[i], self.rng)
            else:
                m = self.rng.randrange(len(data.modes))
                text, attr = data.captions[i][m], caption_attributes(data.products[i], data.modes[m])
            texts.append(text)
            attrs.append(attr if self.cfg.attribute_positives else None)
        tokens = tokenize_buckets(self.processor.tokenizer, texts, self.max_len, self.device, TEXT_BUCKETS)
        with torch.autocast("cuda", dtype=torch.float16, enabled=self.use_amp):
            img = image_features(self.model, pixels, self.cfg.patch_dropout)
            if self.cfg.stage == "image":
                with torch.no_grad():
                    txt = bucket_features(self.model, tokens)
            else:
                txt = bucket_features(self.model, tokens)
        text_ids = {t: i for i, t in enumerate(dict.fromkeys(texts))}
        ids = torch.tensor([text_ids[t] for t in texts], device=self.device)
        positives = ids[:, None] == ids[None, :]
        if any(a is not None for a in attrs):
            positives |= self._attribute_positives(idx, attrs).to(self.device)
        labels = self.labels[idx].to(self.device)
        loss, parts = combined_loss(self.cfg.losses, img.float(), txt.float(), self.model.logit_scale, labels,
                                    positives)
        weights = self.cfg.losses
        label_terms, proxy_terms = [], []
        if weights.label and self.label_tokens is not None:
            if self._prompts is None or self._steps % self.cfg.label_refresh == 0:
                with torch.autocast("cuda", dtype=torch.float16, enabled=self.use_amp):
                    prompts = bucket_features(self.model, self.label_tokens).float()
                self._prompts = prompts.detach()
            else:
                prompts = self._prompts
            self._steps += 1
        for name, rows in self.label_slices.items():
            wanted = self.label_targets[name][idx].to(self.device)
            if weights.label:
                label_terms.append(label_prompt_loss(img.float(), prompts[rows], wanted, self.model.logit_scale))
            if weights.proxy:
                proxy_terms.append(proxy_loss(img.float(), self.proxies[name], wanted, weights.proxy_scale))
        field_weights = torch.tensor([self.field_weights[name] for name in self.label_slices], device=self.device)
        for key, terms, weight in (("label", label_terms, weights.label), ("proxy", proxy_terms, weights.proxy)):
            if terms:
                term = (torch.stack(terms) * field_weights).sum()
                loss = loss + weight * term
                parts[key] = float(term.detach())
        return loss, parts

    def _attribute_positives(self, idx: list[int], attrs: list[Attributes | None]) -> torch.Tensor:
        """(B, B) bool: caption i states attributes that product j has (every field equal), as tensor compares
        over per-field value codes instead of B x B Python comparisons."""
        batch = torch.tensor(idx)
        out = torch.zeros(len(idx), len(idx), dtype=torch.bool)
        for row, attr in enumerate(attrs):
            if attr is None:
                continue
            match = torch.ones(len(idx), dtype=torch.bool)
            for name, value in attr:
                index, codes = self._codes(name)
                match &= codes[batch] == index.get(value, -1)
            out[row] = match
        return out

    def _codes(self, name: str) -> tuple[dict[str, int], torch.Tensor]:
        """Each training product's value of field ``name`` as an integer code (cached per field)."""
        if name not in self._field_codes:
            values = [str(getattr(p, name)) for p in self.train_data.products]
            index = {v: i for i, v in enumerate(sorted(set(values)))}
            self._field_codes[name] = (index, torch.tensor([index[v] for v in values]))
        return self._field_codes[name]

    def train_epoch(self, epoch: int, bar: tqdm) -> dict[str, float]:
        """One pass over the training batches; ``bar`` (one for the whole run, with its ETA) advances per step."""
        self.model.train()
        cfg = self.cfg
        batches = _batches(cfg, self.train_data, self.rng, self.sampler)
        sums: dict[str, float] = {}
        self.optimizer.zero_grad(set_to_none=True)
        for step, idx in enumerate(batches, start=1):
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
            bar.update(1)
            bar.set_postfix(epoch=f"{epoch}/{cfg.epochs}", loss=f"{sums['loss'] / step:.3f}")
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
        bar = tqdm(total=cfg.epochs * self.steps_per_epoch, desc="training", unit="step", disable=not cfg.progress)
        for epoch in range(1, cfg.epochs + 1):
            start = time.perf_counter()
            losses = self.train_epoch(epoch, bar)
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
        bar.close()
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
            **({"label_fields": {"weights": dict(cfg.label_fields),
                                 "templates": {f: FIELD_TEMPLATES.get(f, ("a photo of a {}",))[0]
                                               for f, _ in cfg.label_fields}}}
               if cfg.losses.label or cfg.losses.proxy else {}),
            "augmentation": {"patch_dropout": cfg.patch_dropout, "hflip": cfg.hflip},
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


CONVOLUTIONAL_TOWERS = frozenset({"convnext", "convnextv2", "resnet", "regnet", "efficientnet", "mobilenet_v2"})


def _convolutional(model: PreTrainedModel) -> bool:
    vision = getattr(model.config, "vision_config", None)
    return getattr(vision, "model_type", None) in CONVOLUTIONAL_TOWERS


def _fmt(row: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items() if k != "epoch")


def train(cfg: TrainConfig, products: Sequence[Product], tagger: Callable[[Sequence[str]], list[str]] | None = None,
          model: PreTrainedModel | None = None, tagger_note: str | None = None) -> TrainResult:
    """Split the products, preprocess them once, train and save. ``model`` overrides loading ``cfg.base``."""
    if cfg.threads:
        threads = torch.get_num_threads()
        torch.set_num_threads(cfg.threads)
        try:
            return train(replace(cfg, threads=None), products, tagger, model, tagger_note)
        finally:
            torch.set_num_threads(threads)
    seed_everything(cfg.seed)
    loaded, processor = load_checkpoint(cfg.base)
    model = model if model is not None else loaded
    splits = split_products(products, cfg.split, cfg.split_salt)
    if len(splits["train"]) < 2 or len(splits["val"]) < 2:
        raise ValueError(f"too few products to train: {len(splits['train'])} train, {len(splits['val'])} val")
    train_data = build_data(splits["train"], processor.image_processor, cfg.caption_modes, tagger)
    val_data = build_data(splits["val"], processor.image_processor, cfg.caption_modes, tagger)
    log.info("training on %d products, validating on %d", len(train_data), len(val_data))
    return Trainer(cfg, train_data, val_data, model, processor, tagger_note).fit()
