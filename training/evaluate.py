"""Evaluate one or several checkpoints side by side on the same test split.

Text->image and image->text retrieval (the product's own caption is the match), image->image retrieval by
class, zero-shot classification with prompt templates, a linear probe on frozen image embeddings; results as
JSON and as Markdown tables shaped like the FashionCLIP paper's, plus a similarity heatmap PNG per model.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from fashion_core.captions import caption, clean_text
from fashion_core.catalog.schema import Product
from fashion_core.errors import FashionSearchError
from fashion_core.images import load_image
from fashion_core.model.encoder import ClipEncoder, Encoder
from fashion_core.zeroshot import label_embeddings
from training.data import split_products
from training.metrics import classification_report, image_to_image_metrics, retrieval_metrics
from training.probe import linear_probe

log = logging.getLogger(__name__)

ZEROSHOT_FIELDS = ("articleType", "baseColour", "gender", "masterCategory")
ZEROSHOT_TEMPLATES: dict[str, tuple[str, ...]] = {
    "articleType": ("a photo of a {}", "{}"),
    "baseColour": ("a photo of a {} product", "{}"),
    "gender": ("a photo of a product for {}", "for {}"),
    "masterCategory": ("a photo of a {} product", "{}"),
}


@dataclass
class EvalConfig:
    caption_mode: str = "template"
    fields: tuple[str, ...] = ZEROSHOT_FIELDS
    probe_field: str = "articleType"
    probe_train_max: int = 2000
    ks: tuple[int, ...] = (1, 5, 10, 50)
    heatmap_pairs: int = 12
    split: tuple[float, float] = (0.8, 0.1)
    split_salt: str = "fashion-split"
    templates: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(ZEROSHOT_TEMPLATES))


def load_images(products: Sequence[Product]) -> list[Image.Image]:
    return [load_image(p.image_path) for p in products]  # type: ignore[arg-type]


def usable(products: Sequence[Product]) -> list[Product]:
    """Products whose image loads (the real catalog has missing and corrupt ones)."""
    kept = []
    for p in products:
        if p.image_path is None:
            continue
        try:
            load_image(p.image_path)
        except FashionSearchError as exc:
            log.warning("product %s left out of evaluation: %s", p.id, exc)
            continue
        kept.append(p)
    return kept


def label_prompt(value: str) -> str:
    """How a class value is written in prompts: the cleaned, lower-case catalog value ("casual shoes")."""
    return clean_text(value)


def zero_shot(encoder: Encoder, image_vecs: np.ndarray, products: Sequence[Product], field_name: str,
              templates: Sequence[str]) -> dict[str, Any]:
    truth = [str(getattr(p, field_name)) for p in products]
    names = sorted(set(truth))
    if len(names) < 2:
        return {}
    label_vecs = label_embeddings(encoder, [label_prompt(n) for n in names], templates)
    pred = [names[i] for i in (image_vecs @ label_vecs.T).argmax(axis=1)]
    return classification_report(truth, pred, names)


def evaluate_encoder(encoder: Encoder, test: Sequence[Product], train: Sequence[Product] = (),
                     cfg: EvalConfig | None = None, heatmap: Path | None = None) -> dict[str, Any]:
    cfg = cfg or EvalConfig()
    texts = [caption(p, cfg.caption_mode) for p in test]  # type: ignore[arg-type]
    image_vecs = encoder.encode_images(load_images(test))
    text_vecs = encoder.encode_texts(texts)
    same_text = np.asarray(texts, dtype=object)
    identity = np.eye(len(test), dtype=bool)
    ks = tuple(k for k in cfg.ks if k <= len(test)) or (1,)
    sim = text_vecs @ image_vecs.T
    result: dict[str, Any] = {
        "model": encoder.info.model_id,
        "version": encoder.info.version,
        "n_test": len(test),
        "caption_mode": cfg.caption_mode,
        "text_to_image": retrieval_metrics(sim, identity, ks),
        # Products with identical captions are indistinguishable to a query; count them as matches too.
        "text_to_image_same_caption": retrieval_metrics(sim, same_text[:, None] == same_text[None, :], ks),
        "image_to_text": retrieval_metrics(sim.T, identity, ks),
        "image_to_image": {f: image_to_image_metrics(image_vecs, [getattr(p, f) for p in test])
                           for f in ("articleType", "baseColour")},
        "zero_shot": {f: zero_shot(encoder, image_vecs, test, f, cfg.templates.get(f, ("a photo of a {}",)))
                      for f in cfg.fields},
    }
    if train:
        sample = list(train)[: cfg.probe_train_max]
        train_vecs = encoder.encode_images(load_images(sample))
        result["linear_probe"] = {cfg.probe_field: linear_probe(
            train_vecs, [str(getattr(p, cfg.probe_field)) for p in sample], image_vecs,
            [str(getattr(p, cfg.probe_field)) for p in test])}
    if heatmap is not None:
        n = min(cfg.heatmap_pairs, len(test))
        similarity_heatmap(sim[:n, :n], texts[:n], [str(p.id) for p in test[:n]], heatmap,
                           title=Path(encoder.info.model_id).name)
        result["heatmap"] = str(heatmap)
    return result


def similarity_heatmap(sim: np.ndarray, texts: Sequence[str], image_names: Sequence[str], out: Path,
                       title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2 + 0.6 * len(image_names), 1 + 0.45 * len(texts)))
    im = ax.imshow(sim, cmap="viridis")
    ax.set_xticks(range(len(image_names)), image_names, rotation=90, fontsize=7)
    ax.set_yticks(range(len(texts)), [t[:40] for t in texts], fontsize=7)
    for i in range(sim.shape[0]):
        for j in range(sim.shape[1]):
            ax.text(j, i, f"{sim[i, j]:.2f}", ha="center", va="center", fontsize=5, color="w")
    ax.set_xlabel("image (product id)")
    ax.set_title(f"text-image cosine similarity {title}".strip(), fontsize=9)
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def markdown_tables(results: Sequence[dict[str, Any]]) -> str:
    """Rows = models, columns = metrics (percentages, mean rank as is)."""
    names = [Path(r["model"]).name or r["model"] for r in results]
    lines = [f"Test split: {results[0]['n_test']} products, captions: {results[0]['caption_mode']}", ""]

    def table(title: str, cols: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        lines.extend([f"### {title}", "", "| model | " + " | ".join(cols) + " |",
                      "|---|" + "---|" * len(cols)])
        lines.extend("| " + " | ".join(row) + " |" for row in rows)
        lines.append("")

    for key, title in (("text_to_image", "Text -> image retrieval"), ("image_to_text", "Image -> text retrieval")):
        cols = list(results[0][key])
        table(title, cols, [[n, *[f"{r[key][c]:.1f}" if c == "MeanRank" else _pct(r[key][c]) for c in cols]]
                            for n, r in zip(names, results, strict=True)])
    fields = list(results[0]["zero_shot"])
    table("Zero-shot classification (accuracy / weighted F1 / macro F1)", fields,
          [[n, *[" / ".join(_pct(r["zero_shot"][f].get(m)) for m in ("accuracy", "weighted_f1", "macro_f1"))
                 for f in fields]] for n, r in zip(names, results, strict=True)])
    i2i = [(f, m) for f in results[0]["image_to_image"] for m in results[0]["image_to_image"][f]]
    table("Image -> image retrieval (relevant = same class)", [f"{f} {m}" for f, m in i2i],
          [[n, *[_pct(r["image_to_image"][f].get(m)) for f, m in i2i]] for n, r in zip(names, results, strict=True)])
    if all("linear_probe" in r for r in results):
        probe_fields = list(results[0]["linear_probe"])
        table("Linear probe on frozen image embeddings (accuracy / weighted F1 / macro F1)", probe_fields,
              [[n, *[" / ".join(_pct(r["linear_probe"][f][m]) for m in ("accuracy", "weighted_f1", "macro_f1"))
                     for f in probe_fields]] for n, r in zip(names, results, strict=True)])
    return "\n".join(lines)


def evaluate_checkpoints(checkpoints: Sequence[str], products: Sequence[Product], out_dir: Path,
                         cfg: EvalConfig | None = None, device: str = "auto", probe: bool = True
                         ) -> list[dict[str, Any]]:
    """Every checkpoint on the same test split; writes results.json, results.md and one heatmap per model."""
    cfg = cfg or EvalConfig()
    splits = split_products(usable(products), cfg.split, cfg.split_salt)
    if len(splits["test"]) < 2:
        raise ValueError(f"the test split has {len(splits['test'])} products; need at least 2")
    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for i, ckpt in enumerate(checkpoints):
        encoder = ClipEncoder.from_pretrained(ckpt, device=device)
        log.info("evaluating %s on %d test products", ckpt, len(splits["test"]))
        result = evaluate_encoder(encoder, splits["test"], splits["train"] if probe else (), cfg,
                                  heatmap=out_dir / f"similarity_{i}_{Path(ckpt).name or 'model'}.png")
        result["card"] = encoder.info.card
        results.append(result)
    (out_dir / "results.json").write_text(json.dumps(results, indent=2, default=str))
    (out_dir / "results.md").write_text(markdown_tables(results))
    return results
