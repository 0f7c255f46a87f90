"""Evaluate one or several checkpoints side by side on the same test split, the way the seeds measure.

Protocols (FashionCLIP, Chia et al. 2022, Scientific Reports 12:18958; its Table 2 and Table 3):
- **Name queries** (text->image): each test product's productDisplayName queries the test images; its own
  image is the one relevant item. Recall@1/5/10/50, MRR, mean rank and NDCG@10, both in galleries of 100
  (the seeds' batch protocol: the split shuffled with a fixed seed and cut into batches of 100, each query
  ranked within its batch) and over the whole split.
- **Attribute queries** in a shopper's words ("red dress for women"): one per gender x articleType x baseColour
  combination with at least ``attribute_min_products`` test products; precision@10 on articleType and on all
  three attributes.
- **Zero-shot classification** (Table 2): image vs the prompts of every value of a field, weighted F1 next to
  the majority-class prior, on articleType, subCategory, masterCategory, baseColour and gender.
- **Image->image**: each test image queries the others; precision@10 of the same articleType (and mAP).
- **Linear probe** (Table 3): multinomial logistic regression on frozen image embeddings of training products,
  scored on the test split, beside zero-shot.
- The 10 worst articleTypes (among those with enough test products) and grids of failures (PNG), a similarity
  heatmap per model.

A measure that the split is too small for (precision@10 among 4 products, a gallery of 100 in a split of 42, no
attribute combination with enough products) is not computed: its value is None ("n/a" in results.md) and
``result["not_measured"]`` maps its dotted path to the reason; everything else is still measured. A bar whose
value is not measured is neither met nor missed (``met`` None).

A bar is judged only on a split large enough for its figure to mean something (``BAR_MINIMUMS``): a share
averaged over n items has a standard error of up to 0.5/sqrt(n) (0.07 at 50, 0.22 at 5: more than the distance
between most figures and their bar), and R@10 ranked among fewer than 100 candidates is easier than the bar
assumes (chance alone is 10/n). Under its minimum a measured figure is still reported, but the bar is ``met`` None with
the reason ("too few ..."), and reads "n/a (too few ...)" in results.md and on the console.

``evaluate_checkpoints`` writes ``results.json`` and ``results.md`` and the PNGs into one folder.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from fashion_core.captions import clean_text, shopper_query
from fashion_core.catalog.schema import Product
from fashion_core.errors import FashionSearchError, InvalidInputError
from fashion_core.images import load_image
from fashion_core.model.base import Encoder
from fashion_core.model.encoder import ClipEncoder
from fashion_core.pictures import Tile, render_rows
from fashion_core.zeroshot import FIELD_TEMPLATES, label_embeddings
from training.data import Split, split_products
from training.metrics import (
    classification_report,
    image_to_image_metrics,
    majority_prior,
    precision_at_k,
    retrieval_metrics,
)
from training.probe import linear_probe

log = logging.getLogger(__name__)

ZEROSHOT_FIELDS = ("articleType", "subCategory", "masterCategory", "baseColour", "gender")
ZEROSHOT_TEMPLATES = FIELD_TEMPLATES
# The bars, measured on the test split (metric path in results.json -> minimum).
BARS: dict[str, float] = {
    "zero_shot.articleType.weighted_f1": 0.70,
    "attribute_queries.precision@10_articleType": 0.85,
    "attribute_queries.precision@10_all": 0.50,
    "image_to_image.precision@10_articleType": 0.85,
    "name_queries.whole_split.R@10": 0.50,
}


@dataclass(frozen=True)
class BarMinimum:
    """The least a bar's figure must average over to be judged: the number at ``count`` (a dotted path in the
    result) at least ``minimum``, counted in ``unit``."""

    count: str
    minimum: int
    unit: str


# Per bar of BARS: the split size under which its figure says too little to be met or missed (module docstring).
BAR_MINIMUMS: dict[str, BarMinimum] = {
    "zero_shot.articleType.weighted_f1": BarMinimum("zero_shot.articleType.n", 50, "test products"),
    "attribute_queries.precision@10_articleType": BarMinimum("attribute_queries.n_queries", 10,
                                                             "attribute queries"),
    "attribute_queries.precision@10_all": BarMinimum("attribute_queries.n_queries", 10, "attribute queries"),
    "image_to_image.precision@10_articleType": BarMinimum("n_test", 50, "test products"),
    "name_queries.whole_split.R@10": BarMinimum("n_test", 100, "test products"),
}


@dataclass
class EvalConfig:
    ks: tuple[int, ...] = (1, 5, 10, 50)
    gallery_size: int = 100
    fields: tuple[str, ...] = ZEROSHOT_FIELDS
    probe_fields: tuple[str, ...] = ZEROSHOT_FIELDS
    probe_train_max: int = 20000
    attribute_min_products: int = 5
    heatmap_pairs: int = 12
    failure_rows: int = 8
    split: tuple[float, float] = (0.8, 0.1)
    split_salt: str = "fashion-split"
    seed: int = 0
    templates: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(ZEROSHOT_TEMPLATES))


def load_images(products: Sequence[Product]) -> list[Image.Image]:
    return [load_image(p.image_file()) for p in products]


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
    """Zero-shot report for one field (products with no value for it are left out), with the majority prior."""
    keep = [i for i, p in enumerate(products) if str(getattr(p, field_name) or "")]
    truth = [str(getattr(products[i], field_name)) for i in keep]
    names = sorted(set(truth))
    if len(names) < 2:
        return {}
    label_vecs = label_embeddings(encoder, [label_prompt(n) for n in names], templates)
    pred = [names[i] for i in (image_vecs[keep] @ label_vecs.T).argmax(axis=1)]
    return {**classification_report(truth, pred, names), "n": len(truth), "n_classes": len(names),
            "prior": majority_prior(truth)}


def name_queries(text_vecs: np.ndarray, image_vecs: np.ndarray, ks: Sequence[int], gallery: int, seed: int
                 ) -> dict[str, dict[str, float]]:
    """Retrieval metrics of query i -> image i over the whole split and in shuffled galleries of ``gallery``."""
    n = len(image_vecs)
    ks = tuple(k for k in ks if k <= n) or (1,)
    whole = retrieval_metrics(text_vecs @ image_vecs.T, np.eye(n, dtype=bool), ks)
    order = np.random.default_rng(seed).permutation(n)
    sums: dict[str, float] = {}
    counted = 0
    for start in range(0, n - gallery + 1, gallery):  # full galleries only, as in the batch protocol
        idx = order[start:start + gallery]
        part = retrieval_metrics(text_vecs[idx] @ image_vecs[idx].T, np.eye(len(idx), dtype=bool),
                                 tuple(k for k in ks if k <= gallery))
        for key, value in part.items():
            sums[key] = sums.get(key, 0.0) + value * len(idx)
        counted += len(idx)
    batched = {k: v / counted for k, v in sums.items()} if counted else {}
    return {"whole_split": whole, f"gallery_{gallery}": batched}


def name_queries_not_measured(n: int, ks: Sequence[int], gallery: int) -> dict[str, str]:
    """Why parts of ``name_queries`` on ``n`` products are missing: R@k needs k products, a gallery ``gallery``."""
    out = {f"name_queries.whole_split.R@{k}": f"needs at least {k} test products; the split has {n}"
           for k in ks if k > n}
    if n < gallery:
        out[f"name_queries.gallery_{gallery}"] = (f"needs at least {gallery} test products (one full gallery); "
                                                  f"the split has {n}")
    return out


def attribute_queries(encoder: Encoder, image_vecs: np.ndarray, products: Sequence[Product], min_products: int,
                      k: int = 10) -> dict[str, Any]:
    """Shopper-worded gender x articleType x baseColour queries; precision@k on articleType and on all three.
    Not measured (``{"n_queries": 0, "not_measured": reason}``) with fewer than ``k`` products or no combination
    of ``min_products``."""
    if len(products) < k:
        return {"n_queries": 0, "not_measured": f"precision@{k} needs at least {k} test products; the split has "
                                                f"{len(products)}"}
    combos = Counter((p.gender, p.articleType, p.baseColour) for p in products if p.baseColour)
    queries = sorted(c for c, count in combos.items() if count >= min_products)
    if not queries:
        return {"n_queries": 0, "not_measured": "no gender x articleType x baseColour combination has "
                                                f">= {min_products} test products"}
    texts = [shopper_query(*q) for q in queries]
    top = np.argsort(-(encoder.encode_texts(texts) @ image_vecs.T), axis=1, kind="stable")[:, :k]
    attrs = np.array([(p.gender, p.articleType, p.baseColour) for p in products], dtype=object)
    rows = []
    for text, (gender, article, colour), hits in zip(texts, queries, top, strict=True):
        same_type = attrs[hits, 1] == article
        all_three = same_type & (attrs[hits, 0] == gender) & (attrs[hits, 2] == colour)
        rows.append({"query": text, "gender": gender, "articleType": article, "baseColour": colour,
                     "products": combos[(gender, article, colour)], "precision@10_articleType": float(same_type.mean()),
                     "precision@10_all": float(all_three.mean()), "top": [int(products[i].id) for i in hits]})
    return {"n_queries": len(rows),
            "precision@10_articleType": float(np.mean([r["precision@10_articleType"] for r in rows])),
            "precision@10_all": float(np.mean([r["precision@10_all"] for r in rows])),
            "queries": rows}


def worst_article_types(report: dict[str, Any], i2i_by_type: dict[str, float | None], n: int = 10,
                        min_support: int = 5) -> list[dict[str, Any]]:
    """Up to ``n`` articleTypes with the lowest zero-shot F1, worst first, among those with at least
    ``min_support`` test products (an F1 on two or three products says little) and an F1 below 1: a class
    classified perfectly is no failure, so fewer than ``n`` are listed when fewer fall short (``worst_filter``
    counts them for the heading)."""
    per_class = report.get("per_class", {})
    rows = [{"articleType": name, "support": s["support"], "zero_shot_f1": s["f1"],
             "zero_shot_precision": s["precision"], "zero_shot_recall": s["recall"],
             "image_to_image_precision@10": i2i_by_type.get(name)}
            for name, s in per_class.items() if s["support"] >= min_support and s["f1"] < 1.0]
    return sorted(rows, key=lambda r: (r["zero_shot_f1"], -r["support"]))[:n]


def worst_filter(report: dict[str, Any], n: int = 10, min_support: int = 5) -> dict[str, int]:
    """What ``worst_article_types`` chose from: classes in the split, those with ``min_support`` test products,
    and how many of those scored a perfect F1."""
    per_class = report.get("per_class", {})
    eligible = [s for s in per_class.values() if s["support"] >= min_support]
    return {"n": n, "min_support": min_support, "classes": sum(1 for s in per_class.values() if s["support"]),
            "eligible": len(eligible), "perfect": sum(1 for s in eligible if s["f1"] >= 1.0)}


def evaluate_encoder(encoder: Encoder, test: Sequence[Product], train: Sequence[Product] = (),
                     cfg: EvalConfig | None = None, out_dir: Path | None = None, tag: str = "model"
                     ) -> dict[str, Any]:
    """Every protocol of the module docstring on ``test`` (probe fitted on ``train``); PNGs go to ``out_dir``.
    Measures the split is too small for are None, with their reasons in ``result["not_measured"]``."""
    cfg = cfg or EvalConfig()
    test = list(test)
    n_test = len(test)
    names = [p.productDisplayName for p in test]
    image_vecs = encoder.encode_images(load_images(test))
    text_vecs = encoder.encode_texts(names)
    types = np.array([p.articleType for p in test], dtype=object)
    not_measured: dict[str, str] = name_queries_not_measured(n_test, cfg.ks, cfg.gallery_size)
    i2i_p10: np.ndarray | None = None
    if n_test > 10:
        i2i_p10 = precision_at_k(image_vecs, list(types), 10)
    else:
        not_measured["image_to_image.precision@10_articleType"] = (
            f"needs more than 10 test products (each queries its 10 nearest others); the split has {n_test}")
    i2i_rest = image_to_image_metrics(image_vecs, list(types), tuple(k for k in (1, 5, 10) if k < n_test))
    if not i2i_rest:
        not_measured["image_to_image.mAP"] = "no articleType has two test products"
    attr = attribute_queries(encoder, image_vecs, test, cfg.attribute_min_products)
    if "not_measured" in attr:
        not_measured["attribute_queries"] = attr.pop("not_measured")
    zero = {f: zero_shot(encoder, image_vecs, test, f, cfg.templates.get(f, ("a photo of a {}",)))
            for f in cfg.fields}
    not_measured |= {f"zero_shot.{f}": f"needs at least 2 {f} values among the test products"
                     for f, report in zero.items() if not report}
    result: dict[str, Any] = {
        "model": encoder.info.model_id,
        "version": encoder.info.version,
        "n_test": n_test,
        "name_queries": name_queries(text_vecs, image_vecs, cfg.ks, cfg.gallery_size, cfg.seed),
        "attribute_queries": attr,
        "zero_shot": zero,
        "image_to_image": {"precision@10_articleType": None if i2i_p10 is None else float(i2i_p10.mean()),
                           **i2i_rest},
    }
    i2i_by_type: dict[str, float | None] = {
        t: None if i2i_p10 is None else float(i2i_p10[types == t].mean()) for t in set(types.tolist())}
    result["worst_articleTypes"] = worst_article_types(result["zero_shot"].get("articleType", {}), i2i_by_type)
    result["worst_articleTypes_filter"] = worst_filter(result["zero_shot"].get("articleType", {}))
    if train and cfg.probe_fields:
        sample = list(train)[: cfg.probe_train_max]
        train_vecs = encoder.encode_images(load_images(sample))
        result["linear_probe"] = {}
        for name in cfg.probe_fields:
            fit = [i for i, p in enumerate(sample) if getattr(p, name)]
            score = [i for i, p in enumerate(test) if getattr(p, name)]
            if len({str(getattr(sample[i], name)) for i in fit}) < 2 or not score:
                result["linear_probe"][name] = {}
                not_measured[f"linear_probe.{name}"] = (f"needs at least 2 {name} values among the training "
                                                        f"products and one test product with a {name}")
                continue
            result["linear_probe"][name] = linear_probe(
                train_vecs[fit], [str(getattr(sample[i], name)) for i in fit], image_vecs[score],
                [str(getattr(test[i], name)) for i in score])
    result["not_measured"] = not_measured
    result["bars"] = bars(result)
    if out_dir is not None:
        n = min(cfg.heatmap_pairs, len(test))
        result["pictures"] = {
            "heatmap": str(similarity_heatmap((text_vecs @ image_vecs.T)[:n, :n], names[:n],
                                              [str(p.id) for p in test[:n]], out_dir / f"similarity_{tag}.png",
                                              title=tag)),
            **failure_grids(result, test, text_vecs, image_vecs, out_dir, tag, cfg.failure_rows),
        }
    return result


def metric(result: dict[str, Any], path: str) -> float | None:
    """A value of ``result`` by dotted path ("zero_shot.articleType.weighted_f1"), None when absent."""
    node: Any = result
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return None if node is None else float(node)


def why_not_measured(result: dict[str, Any], path: str) -> str | None:
    """The reason ``result["not_measured"]`` gives for ``path`` or for a protocol above it, None if none."""
    reasons: dict[str, str] = result.get("not_measured", {})
    parts = path.split(".")
    for end in range(len(parts), 0, -1):
        reason = reasons.get(".".join(parts[:end]))
        if reason is not None:
            return reason
    return None


def bars(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each bar of BARS: its value, and ``met`` True/False; or ``met`` None with a ``reason`` when the value is
    not measured, or is measured on fewer items than BAR_MINIMUMS asks (then ``too_few`` True: the value is
    kept, the bar is not judged). ``n`` and ``min_n`` say what the figure averages over and the least it must."""
    out: dict[str, dict[str, Any]] = {}
    for path, minimum in BARS.items():
        value = metric(result, path)
        need = BAR_MINIMUMS.get(path)
        count = None if need is None else metric(result, need.count)
        sizes = {} if need is None or count is None else {"n": int(count), "min_n": need.minimum}
        if value is None:
            out[path] = {"value": None, "bar": minimum, "met": None,
                         "reason": why_not_measured(result, path) or "not in the results", **sizes}
        elif need is not None and count is not None and count < need.minimum:
            out[path] = {"value": value, "bar": minimum, "met": None, "too_few": True, **sizes,
                         "reason": f"too few {need.unit}: {int(count)} < {need.minimum}, the least this bar is "
                                   "judged on"}
        else:
            out[path] = {"value": value, "bar": minimum, "met": value >= minimum, **sizes}
    return out


def failure_grids(result: dict[str, Any], test: Sequence[Product], text_vecs: np.ndarray, image_vecs: np.ndarray,
                  out_dir: Path, tag: str, rows: int) -> dict[str, str]:
    """Two PNGs: the worst attribute queries with their top 6 (green = all three attributes right), and name
    queries whose product ranked worst (the wanted product, then the top 5)."""
    by_id = {p.id: p for p in test}
    out: dict[str, str] = {}
    queries = sorted(result["attribute_queries"].get("queries", []),
                     key=lambda r: (r["precision@10_all"], r["precision@10_articleType"]))[:rows]
    if queries:
        grid = []
        for q in queries:
            tiles = [Tile(f"{q['query']} (type {q['precision@10_articleType']:.1f}, all {q['precision@10_all']:.1f})",
                          text=q["query"], is_query=True)]
            for pid in q["top"][:6]:
                p = by_id[pid]
                ok = (p.gender, p.articleType, p.baseColour) == (q["gender"], q["articleType"], q["baseColour"])
                tiles.append(Tile(f"{p.gender} {p.baseColour} {p.articleType}", image_path=p.image_path, ok=ok))
            grid.append(tiles)
        out["attribute_failures"] = str(render_rows(
            grid, out_dir / f"failures_attribute_queries_{tag}.png",
            f"{tag}: worst attribute queries (green: gender, type and colour all right)"))
    sim = text_vecs @ image_vecs.T
    ranks = (sim > np.diag(sim)[:, None]).sum(axis=1) + 1
    worst = np.argsort(-ranks, kind="stable")[:rows]
    grid = []
    for i in worst:
        top = np.argsort(-sim[i], kind="stable")[:5]
        tiles = [Tile(test[i].productDisplayName, text=test[i].productDisplayName, is_query=True),
                 Tile(f"wanted, rank {ranks[i]}", image_path=test[i].image_path, ok=True)]
        tiles += [Tile(f"#{r + 1} {test[j].productDisplayName}", image_path=test[j].image_path,
                       ok=test[j].articleType == test[i].articleType) for r, j in enumerate(top)]
        grid.append(tiles)
    if grid:
        out["name_failures"] = str(render_rows(
            grid, out_dir / f"failures_name_queries_{tag}.png",
            f"{tag}: name queries ranked worst (green: same articleType as the wanted product)"))
    return out


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
    return "n/a" if x is None else f"{100 * x:.1f}"


def _bar_cell(bar: dict[str, Any]) -> str:
    if bar.get("too_few"):
        return f"n/a (too few: {bar['n']} < {bar['min_n']})"
    if bar["met"] is None:
        return "n/a (not measured)"
    return f"{_pct(bar['value'])} {'ok' if bar['met'] else 'BELOW'}"


def _too_few_note(results: Sequence[dict[str, Any]]) -> str | None:
    """The sentence above the bars table when a bar was not judged for too few items: each such bar's minimum."""
    short = dict.fromkeys(p for r in results for p, bar in r["bars"].items() if bar.get("too_few"))
    if not short:
        return None
    needs = "; ".join(f"{p}: >= {BAR_MINIMUMS[p].minimum} {BAR_MINIMUMS[p].unit}" for p in short)
    return (f"n/a (too few: n < minimum): the figure is measured (below) but the split is too small to judge the "
            f"bar on ({needs}).")


def _worst_heading(r: dict[str, Any], name: str) -> tuple[str, str | None]:
    """The heading of a model's worst-articleTypes table (its support filter stated) and, when fewer than n are
    listed, the sentence that says why."""
    listed = len(r["worst_articleTypes"])
    f = r.get("worst_articleTypes_filter") or {"n": 10, "min_support": 5}
    among = f"among the articleTypes with >= {f['min_support']} test products"
    if listed >= f["n"]:
        return f"{f['n']} worst articleTypes by zero-shot F1, {among} ({name})", None
    if "eligible" not in f:
        return f"Worst articleTypes by zero-shot F1, {among} ({name})", None
    note = (f"Fewer than {f['n']}: {f['eligible']} of the split's {f['classes']} articleTypes have "
            f">= {f['min_support']} test products; of those, {f['perfect']} scored a perfect F1 and are not listed.")
    return f"Worst articleTypes by zero-shot F1, {among} ({name})", note


def markdown_tables(results: Sequence[dict[str, Any]]) -> str:
    """Rows = models, columns = metrics (percentages; mean rank as is). A measure not taken reads "n/a", its
    reason listed under "Not measured"; a table with nothing measured is a sentence instead."""
    names = [r.get("tag") or Path(r["model"]).name or r["model"] for r in results]
    rows_of = list(zip(names, results, strict=True))
    # the split measured (evaluate_checkpoints records it): a validation report must never read as a test one
    split = {"test": "test", "val": "validation", "train": "train"}.get(str(results[0].get("split", "test")), "test")
    lines = [f"{split.capitalize()} split: {results[0]['n_test']} products.", ""]

    def table(title: str, cols: Sequence[str], rows: Sequence[Sequence[str]], first: str = "model",
              empty: str | None = None, note: str | None = None) -> None:
        lines.extend([f"### {title}", ""])
        if note:
            lines.extend([note, ""])
        if not cols or not rows:
            lines.extend([empty or "Nothing measured.", ""])
            return
        lines.extend([f"| {first} | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)])
        lines.extend("| " + " | ".join(row) + " |" for row in rows)
        lines.append("")

    def fmt(key: str, value: float | None) -> str:
        return "n/a" if value is None else f"{value:.1f}" if key == "MeanRank" else _pct(value)

    def reason(path: str) -> str:
        return why_not_measured(results[0], path) or "not measured"

    table(f"Bars ({split} split)", [f"{p} >= {b}" for p, b in BARS.items()],
          [[n, *[_bar_cell(r["bars"][p]) for p in BARS]] for n, r in rows_of], note=_too_few_note(results))
    for protocol in results[0]["name_queries"]:
        cols = list(results[0]["name_queries"][protocol])
        table(f"Name queries, text -> image ({protocol.replace('_', ' ')})", cols,
              [[n, *[fmt(c, r["name_queries"][protocol].get(c)) for c in cols]] for n, r in rows_of],
              empty=f"Not measured: {reason(f'name_queries.{protocol}')}.")
    attr = results[0]["attribute_queries"]
    table(f"Attribute queries in a shopper's words ({attr.get('n_queries', 0)} gender x articleType x baseColour "
          "combinations)", ["precision@10 articleType", "precision@10 all three"],
          [[n, _pct(r["attribute_queries"].get("precision@10_articleType")),
            _pct(r["attribute_queries"].get("precision@10_all"))] for n, r in rows_of])
    fields = [f for f in results[0]["zero_shot"] if results[0]["zero_shot"][f]]
    table("Zero-shot classification: weighted F1 (majority-class prior) / accuracy / macro F1", fields,
          [[n, *[f"{_pct(r['zero_shot'][f].get('weighted_f1'))} ({_pct(r['zero_shot'][f]['prior']['weighted_f1'])})"
                 f" / {_pct(r['zero_shot'][f].get('accuracy'))} / {_pct(r['zero_shot'][f].get('macro_f1'))}"
                 for f in fields]] for n, r in rows_of],
          empty="Not measured: every field has fewer than 2 values among the test products.")
    table("Image -> image (relevant = same articleType)", ["precision@10", "mAP", "Rank-1"],
          [[n, _pct(r["image_to_image"]["precision@10_articleType"]), _pct(r["image_to_image"].get("mAP")),
            _pct(r["image_to_image"].get("Rank-1"))] for n, r in rows_of])
    if all("linear_probe" in r for r in results):
        probe = list(results[0]["linear_probe"])
        table("Linear probe vs zero-shot, weighted F1 (FashionCLIP Table 3)", probe,
              [[n, *[f"{_pct(r['linear_probe'][f].get('weighted_f1'))} vs "
                     f"{_pct(r['zero_shot'].get(f, {}).get('weighted_f1'))}" for f in probe]] for n, r in rows_of])
    for n, r in rows_of:
        title, note = _worst_heading(r, n)
        table(title, ["support", "zero-shot F1", "precision", "recall", "image->image precision@10"],
              [[w["articleType"], str(w["support"]), _pct(w["zero_shot_f1"]), _pct(w["zero_shot_precision"]),
                _pct(w["zero_shot_recall"]), _pct(w["image_to_image_precision@10"])]
               for w in r["worst_articleTypes"]], first="articleType", note=note, empty="None listed.")
    not_measured = list(dict.fromkeys((path, why) for r in results for path, why in r.get("not_measured", {}).items()))
    if not_measured:
        lines.extend(["### Not measured (n/a above)", "", "The split is too small for these measures:", ""])
        lines.extend(f"- {path}: {why}" for path, why in not_measured)
        lines.append("")
    return "\n".join(lines)


def evaluate_checkpoints(checkpoints: Sequence[str], products: Sequence[Product], out_dir: Path,
                         cfg: EvalConfig | None = None, device: str = "auto", probe: bool = True,
                         split: Split = "test") -> list[dict[str, Any]]:
    """Every checkpoint on the same split ("test" to report, "val" to select); writes results.json,
    results.md and the PNGs into ``out_dir``. Raises InvalidInputError (a ValueError) when the split has fewer
    than 2 products; measures the split is too small for are reported as not measured (``evaluate_encoder``)."""
    cfg = cfg or EvalConfig()
    splits = split_products(usable(products), cfg.split, cfg.split_salt)
    chosen = splits[split]
    if len(chosen) < 2:
        raise InvalidInputError(f"the {split} split has {len(chosen)} products with a readable image; evaluation "
                                "needs at least 2 (use a larger catalog)")
    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    tags: Counter[str] = Counter()
    for ckpt in checkpoints:
        encoder = ClipEncoder.from_pretrained(ckpt, device=device)
        base = Path(ckpt).name or "model"
        tags[base] += 1
        tag = base if tags[base] == 1 else f"{base}-{tags[base]}"
        log.info("evaluating %s on %d %s products", ckpt, len(chosen), split)
        result = evaluate_encoder(encoder, chosen, splits["train"] if probe else (), cfg, out_dir, tag)
        result |= {"tag": tag, "split": split, "card": encoder.info.card}
        results.append(result)
    (out_dir / "results.json").write_text(json.dumps(results, indent=2, default=str))
    (out_dir / "results.md").write_text(markdown_tables(results))
    return results
