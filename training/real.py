"""The ``real`` recipe: a CLIP trained from scratch on the real Fashion Product Images catalog, on a CPU.

No pretrained CLIP weights can be had offline, so this trains a small CLIP-style dual encoder (ConvNeXt
image tower, BERT-style text tower, a BPE vocabulary learned from the catalog's own names) with the project's
``train`` pipeline. Where a model hub is reachable, fine-tuning ``patrickjohncyh/fashion-clip`` or
``openai/clip-vit-base-patch32`` with ``fashion-search train --base`` is the better road; this recipe is what a
machine without one can do.

Model: a ``VisionTextDualEncoderModel`` (ConvNeXt image tower, BERT-style text tower, see
``training.architectures``), trained with CLIP's InfoNCE on product names and enriched captions, the
label-prompt loss of UniCL (each image against the prompt of every articleType, colour, gender, ...) and
NormFace class proxies (a classifier's direct signal for the image tower while the text tower is still random).

Geometry: the photos are 60x80 portraits. The processor resizes the shortest edge to 60 and centre-crops
80x80, which pads: each photo is kept whole between two bars, never squashed or cut (``ClipPixels``).

Split: train / validation / test by a hash of the product id (``training.data.split_of``, salt
``fashion-split``, 80/10/10): the same on every machine, for every recipe compared. The recipe trains on
train, keeps the epoch that is best on validation, and is reported on test (``fashion-search evaluate``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import PIL
import torch
import transformers

from fashion_core.captions import caption, clean_text, shopper_query
from fashion_core.catalog.reader import read_catalog
from fashion_core.catalog.schema import Product
from fashion_core.model.card import CARD_FILE
from fashion_core.model.encoder import ClipEncoder
from fashion_core.settings import Settings
from training.architectures import DualEncoderSpec, build_dual_encoder
from training.data import PARTIAL_TEMPLATES, split_products
from training.losses import LossWeights
from training.optim import OptimConfig
from training.tokenizer import fashion_corpus
from training.trainer import TrainConfig, train

log = logging.getLogger(__name__)

# Bumped when a change to the training code alters the weights the same config and data produce.
RECIPE_VERSION = 5  # 2: label prompts worded per field as zero-shot asks; 3: channels-last ConvNeXt; 4: a name
# equal to its column header is a missing value (one product fewer); 5: texts through the text tower in
# length-sorted buckets (trainer.TEXT_BUCKETS: the same features, another order of dropout draws)

# 64 px: the 60x80 photos resized to 48x64 (aspect kept) between two bars; a ConvNeXt with stages of 32-256
# channels and 1, 1, 2, 1 blocks. At 80 px with 2, 2, 2, 2 blocks an epoch cost about twice as much for the
# same validation figures after the same number of epochs (see README, "The real-catalog model").
REAL_SPEC = DualEncoderSpec(image_size=64, resize_edge=48, patch_size=4, dims=(32, 64, 128, 256),
                            depths=(1, 1, 2, 1), text_width=128, text_layers=3, heads=4, projection_dim=128,
                            max_text_len=40, vocab_size=4000)


@dataclass(frozen=True)
class RealConfig:
    """Everything but the data that decides the real recipe's weights (see README "The real-catalog model")."""

    spec: DualEncoderSpec = REAL_SPEC
    caption_modes: tuple[str, ...] = ("raw", "enriched")
    partial_captions: float = 0.3
    clip_weight: float = 1.0
    supcon_weight: float = 0.5
    label_weight: float = 1.0
    proxy_weight: float = 4.0
    label_fields: tuple[tuple[str, float], ...] = (("articleType", 2.0), ("baseColour", 1.0), ("gender", 1.0),
                                                   ("subCategory", 0.5), ("masterCategory", 0.25))
    label_refresh: int = 2
    sampler: str = "random"  # "pk" with SupCon: P articleTypes x K products per batch
    pk_p: int = 16
    pk_k: int = 8
    hflip: bool = True
    epochs: int = 5
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 0.05
    warmup_steps: int = 100
    seed: int = 0
    # CPU threads: how, not what; left out of the fingerprint (FASHION_TRAIN_THREADS sets it, recipe_for). One
    # thread ran the recipe at 2.4 steps/s against 2.7-3.1 on two on an idle 2-core machine (the same losses to
    # 3 decimals at step 100): beside the test suite, which wants a core, one thread is the cheaper way to train.
    threads: int = 2


NOT_FINGERPRINTED = frozenset({"threads"})  # RealConfig fields that change no weight but by rounding


def recipe_for(catalog: Path | str, settings: Settings) -> RealRecipe:
    """The real recipe over ``catalog`` as ``settings`` run it (``train_threads``, when set, its CPU threads)."""
    config = RealConfig() if settings.train_threads is None else replace(RealConfig(), threads=settings.train_threads)
    return RealRecipe(catalog, config)


def catalog_fingerprint(catalog: Path) -> str:
    """A hash of styles.csv and of the image files' names and sizes (contents unread: 40k files stat in ~0.2 s)."""
    digest = hashlib.sha256((catalog / "styles.csv").read_bytes())
    for image in sorted((catalog / "images").iterdir()):
        digest.update(f"{image.name}:{image.stat().st_size};".encode())
    return digest.hexdigest()[:16]


def tokenizer_corpus(products: list[Product]) -> list[str]:
    """Texts the vocabulary is learned from: the training split's captions, every prompt the model will be
    asked (label prompts of every field value, shopper queries) and the built-in fashion words."""
    texts = [caption(p, m) for p in products for m in ("raw", "enriched", "template")]
    values = {f: sorted({str(getattr(p, f)) for p in products if getattr(p, f)})
              for f in ("gender", "masterCategory", "subCategory", "articleType", "baseColour", "usage", "season")}
    for fields, template in PARTIAL_TEMPLATES:
        texts += [template.format(**{f: clean_text(v) for f in fields}) for v in values[fields[0]]]
    texts += [f"a photo of a {clean_text(v)} product" for vs in values.values() for v in vs]
    texts += [shopper_query(g, t, c) for g in values["gender"] for t in values["articleType"][:40]
              for c in values["baseColour"][:10]]
    return [*texts, *fashion_corpus()]


class RealRecipe:
    """The ``real`` recipe over one catalog folder (``training/recipes.py`` caches and serves it)."""

    name = "real"

    def __init__(self, catalog: Path | str, config: RealConfig | None = None) -> None:
        self.catalog = Path(catalog)
        self.config = config or RealConfig()
        self._fingerprint: str | None = None

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            config = {k: v for k, v in asdict(self.config).items() if k not in NOT_FINGERPRINTED}
            recipe = {"config": _set_fields(config), "version": RECIPE_VERSION,
                      "data": catalog_fingerprint(self.catalog), "pillow": PIL.__version__.split(".")[0],
                      "torch": ".".join(torch.__version__.split(".")[:2]),
                      "transformers": transformers.__version__.split(".")[0]}
            self._fingerprint = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]
        return self._fingerprint

    def train_config(self, base: Path, out: Path, progress: bool) -> TrainConfig:
        cfg = self.config
        return TrainConfig(
            base=str(base), out_dir=out, caption_modes=cfg.caption_modes, partial_captions=cfg.partial_captions,
            losses=LossWeights(clip=cfg.clip_weight, supcon=cfg.supcon_weight, label=cfg.label_weight,
                               proxy=cfg.proxy_weight),
            label_fields=cfg.label_fields, label_refresh=cfg.label_refresh, sampler=cfg.sampler, pk_p=cfg.pk_p,
            pk_k=cfg.pk_k,
            class_field="articleType", hflip=cfg.hflip,
            epochs=cfg.epochs, batch_size=cfg.batch_size, seed=cfg.seed, device="cpu", patience=cfg.epochs,
            optim=OptimConfig(lr=cfg.lr, weight_decay=cfg.weight_decay, warmup_steps=cfg.warmup_steps,
                              schedule="cosine"),
            threads=cfg.threads, progress=progress,
            data_note=f"real catalog {self.catalog} (fingerprint {catalog_fingerprint(self.catalog)})")

    def train(self, out: Path, progress: bool) -> Path:
        started = time.perf_counter()
        out.mkdir(parents=True)
        catalog = read_catalog(self.catalog)
        products = catalog.products
        train_split = split_products(products)["train"]
        tagger, tagger_note = None, None
        if "structured" in self.config.caption_modes:
            from training.tagger import train_tagger

            tagger, scores = train_tagger(products)
            tagger_note = f"BIO perceptron on the train split's names; test-split F1 {scores}"
        base = build_dual_encoder(out / "base", self.config.spec, seed=self.config.seed,
                                  corpus=tokenizer_corpus(train_split))
        result = train(self.train_config(base, out / "model", progress), products, tagger=tagger,
                       tagger_note=tagger_note)
        card: dict[str, Any] = {
            **result.card, "name": "fashion-search real (trained from scratch on Fashion Product Images)",
            "base": "random init (trained from scratch)", "architecture": asdict(self.config.spec),
            "recipe": {"name": self.name, "fingerprint": self.fingerprint(), "version": RECIPE_VERSION,
                       "config": asdict(self.config)},
            "catalog": {"path": str(self.catalog), "products": len(products), "skipped": len(catalog.skipped)},
            "train_seconds": round(time.perf_counter() - started, 1),
        }
        (result.out_dir / CARD_FILE).write_text(json.dumps(card, indent=2, default=str))
        log.info("real recipe trained in %.0f s", time.perf_counter() - started)
        return result.out_dir


def _set_fields(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` (nested dicts) without its None values: an option added later with a None default that changes
    nothing (``DualEncoderSpec.image_width``) leaves the fingerprints of the recipes trained before it alone."""
    return {k: _set_fields(v) if isinstance(v, dict) else v for k, v in config.items() if v is not None}


def variant(config: RealConfig, **changes: Any) -> RealConfig:
    """The recipe with some fields changed (recipe comparisons change one thing at a time)."""
    return replace(config, **changes)


# The study the issue asks for: the seeds' caption strategies and losses, each a variant of the recipe that
# changes one thing, trained and measured the same way (same data, architecture, epochs; validation split).
STUDY: dict[str, dict[str, Any]] = {
    "recipe": {},  # raw + enriched captions, InfoNCE + SupCon + label prompts + class proxies
    "raw": {"caption_modes": ("raw",)},
    "enriched": {"caption_modes": ("enriched",)},
    "structured": {"caption_modes": ("structured",)},
    "infonce": {"label_weight": 0.0, "proxy_weight": 0.0, "supcon_weight": 0.0},
    "infonce+supcon": {"label_weight": 0.0, "proxy_weight": 0.0, "sampler": "pk"},
    "no-supcon": {"supcon_weight": 0.0},
    # The image tower's supervised signals, weighed (selected on validation 2026-11-30: class proxies at 4, was 2);
    # the last three change one thing of the recipe as it was then (proxies at 2).
    "proxies-2": {"proxy_weight": 2.0},
    "proxies-8": {"proxy_weight": 8.0},
    "supcon-1.5+proxies-2": {"supcon_weight": 1.5, "proxy_weight": 2.0},
    "type-prompts-4+proxies-2": {"proxy_weight": 2.0, "label_fields": (
        ("articleType", 4.0), ("baseColour", 1.0), ("gender", 1.0), ("subCategory", 0.5), ("masterCategory", 0.25))},
    "projection-256+proxies-2": {"proxy_weight": 2.0, "spec": replace(REAL_SPEC, projection_dim=256)},
    # The 60x80 portraits resized to 48x64 and cropped to exactly that, instead of padded to a 64x64 square: the same
    # pixels, a quarter fewer positions for the image tower.
    "portrait-48x64": {"spec": replace(REAL_SPEC, image_width=48)},
    # Colour, the weakest field (zero-shot baseColour wF1 0.49), weighted like articleType in the label prompts
    # and class proxies.
    "colour-2": {"label_fields": (("articleType", 2.0), ("baseColour", 2.0), ("gender", 1.0), ("subCategory", 0.5),
                                  ("masterCategory", 0.25))},
}
# What the study reports per variant (dotted paths into training.evaluate's result), all on validation.
STUDY_METRICS = ("zero_shot.articleType.weighted_f1", "attribute_queries.precision@10_articleType",
                 "attribute_queries.precision@10_all", "image_to_image.precision@10_articleType",
                 "name_queries.whole_split.R@10", "name_queries.gallery_100.R@10")


def run_study(catalog: Path, settings: Settings, names: Sequence[str], out_dir: Path,
              base: RealConfig | None = None, progress: bool = True) -> list[dict[str, Any]]:
    """Train (or take from the cache) each named variant and measure it on the VALIDATION split; writes
    ``study.json``, ``study.md`` and ``study.png`` into ``out_dir``. Raises ValueError for an unknown name."""
    from training.data import split_products
    from training.evaluate import EvalConfig, evaluate_encoder, metric
    from training.recipes import ensure_trained

    unknown = [n for n in names if n not in STUDY]
    if unknown:
        raise ValueError(f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(STUDY)}")
    base = base or RealConfig()
    val = split_products(read_catalog(catalog).products)["val"]
    rows = []
    for name in names:
        recipe = RealRecipe(catalog, variant(base, **STUDY[name]))
        started = time.perf_counter()
        model_dir = ensure_trained(recipe, settings, progress=progress, serve=False)  # never the served model
        card = json.loads((model_dir / CARD_FILE).read_text())
        encoder = ClipEncoder.from_pretrained(model_dir, device="cpu", batch_size=256)
        result = evaluate_encoder(encoder, val, cfg=EvalConfig(probe_fields=()), out_dir=out_dir, tag=name)
        rows.append({"variant": name, "changes": {k: _jsonable(v) for k, v in STUDY[name].items()},
                     "fingerprint": recipe.fingerprint(), "train_seconds": card.get("train_seconds"),
                     "seconds_this_run": round(time.perf_counter() - started, 1),
                     **{path: metric(result, path) for path in STUDY_METRICS}})
        log.info("study %s: %s", name, rows[-1])
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "study.json").write_text(json.dumps(rows, indent=2))
    (out_dir / "study.md").write_text(study_markdown(rows, len(val)))
    study_chart(rows, out_dir / "study.png")
    return rows


def _jsonable(value: Any) -> Any:
    """A study variant's change as JSON: tuples as lists, a ``DualEncoderSpec`` as its fields."""
    if isinstance(value, DualEncoderSpec):
        return asdict(value)
    return [_jsonable(v) for v in value] if isinstance(value, tuple) else value


def study_markdown(rows: Sequence[dict[str, Any]], n_val: int) -> str:
    cols = ["zero-shot articleType wF1", "attr. P@10 type", "attr. P@10 all three", "image->image P@10 type",
            "name R@10 (whole split)", "name R@10 (galleries of 100)", "train s"]
    lines = [f"Validation split ({n_val} products); each variant changes one thing of the recipe.", "",
             "| variant | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for row in rows:
        values = [row[p] for p in STUDY_METRICS]
        cells = ["-" if v is None else f"{100 * v:.1f}" for v in values] + [str(row.get("train_seconds") or "-")]
        lines.append(f"| {row['variant']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def study_chart(rows: Sequence[dict[str, Any]], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    labels = ["zs type wF1", "attr P@10 type", "attr P@10 all", "i2i P@10", "name R@10", "name R@10 /100"]
    x = np.arange(len(labels))
    width = 0.8 / max(1, len(rows))
    fig, ax = plt.subplots(figsize=(11, 4.5))
    for i, row in enumerate(rows):
        ax.bar(x + i * width, [row[p] or 0 for p in STUDY_METRICS], width, label=row["variant"])
    ax.set_xticks(x + width * (len(rows) - 1) / 2, labels)
    ax.set_ylim(0, 1)
    ax.set_ylabel("validation")
    ax.set_title("caption strategies and losses, trained and measured the same way")
    ax.legend(fontsize=8, ncol=3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
