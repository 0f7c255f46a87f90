"""Training commands: train, evaluate, localize, bootstrap-model, train-tagger."""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text

from fashion_cli.console import console
from fashion_cli.options import add_catalog_option, add_settings_options, settings_from
from fashion_core.catalog.reader import read_catalog
from fashion_core.catalog.real import HOW_TO_GET, find_real_catalog
from fashion_core.errors import InvalidInputError, NotFoundError
from fashion_core.model.card import CARD_FILE
from fashion_core.model.resolve import resolve_model
from fashion_core.outputs import check_output_dir, check_output_file
from services.wiring import local_encoder

if TYPE_CHECKING:
    from fashion_core.catalog.schema import Product
    from fashion_core.settings import Settings
    from training.tagger import PerceptronTagger

log = logging.getLogger(__name__)


def _products(catalog: str) -> list[Product]:
    products = read_catalog(Path(catalog)).products
    if not products:
        raise InvalidInputError(f"{catalog}: no usable products")
    return products


def _tagger(path: str | None) -> tuple[PerceptronTagger | None, str | None]:
    if not path:
        return None, None
    from training.tagger import PerceptronTagger

    if not Path(path).is_file():
        raise NotFoundError(f"{path}: no such tagger file (run `fashion-search train-tagger`)")
    return PerceptronTagger.load(Path(path)), str(path)


def cmd_train(args: argparse.Namespace) -> int:
    from training.freezing import STAGES
    from training.losses import LossWeights
    from training.optim import OptimConfig
    from training.trainer import TrainConfig, train

    settings = settings_from(args)
    if args.recipe:
        return _train_recipe(args, settings)
    if not args.out:
        raise InvalidInputError("--out is required (or --recipe real, which trains into the model cache)")
    base = args.base or resolve_model(settings)
    modes = tuple(m.strip() for m in args.captions.split(",") if m.strip())
    if "structured" in modes and not args.tagger:
        raise InvalidInputError("--captions structured needs --tagger (from `fashion-search train-tagger`)")
    if args.stage not in STAGES:
        raise InvalidInputError(f"--stage must be one of {', '.join(STAGES)}")
    tagger, tagger_note = _tagger(args.tagger)
    cfg = TrainConfig(
        base=base, out_dir=Path(args.out), caption_modes=modes,
        losses=LossWeights(clip=args.clip_weight, supcon=args.supcon_weight, supcon_temperature=args.supcon_temp,
                           label=args.label_weight),
        sampler="pk" if args.supcon_weight or args.sampler == "pk" else "random", pk_p=args.pk_p, pk_k=args.pk_k,
        class_field=args.class_field, stage=args.stage, freeze_lower=args.freeze_lower,
        patch_dropout=args.patch_dropout, hflip=args.hflip,
        optim=OptimConfig(lr=args.lr, weight_decay=args.weight_decay, schedule=args.schedule,
                          warmup_steps=args.warmup, grad_clip=args.grad_clip or None, accumulate=args.accumulate),
        epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, amp=not args.no_amp,
        device=settings.device, early_stop_metric=args.early_stop_metric, patience=args.patience,
        data_note=str(Path(args.catalog).resolve()))
    result = train(cfg, _products(args.catalog), tagger=tagger, tagger_note=tagger_note)
    _print_history(result.history, result.out_dir)
    console.print(f"best epoch {result.best_epoch}: checkpoint + model_card.json + training_curves.png in "
                  f"{result.out_dir}")
    return 0


def _train_recipe(args: argparse.Namespace, settings: Settings) -> int:
    """`train CATALOG --recipe real`: the project's from-scratch recipe, into the cache (or --out)."""
    from training.real import recipe_for
    from training.recipes import ensure_trained

    if args.recipe != "real":
        raise InvalidInputError(f"unknown recipe {args.recipe!r}; known: real (the synthetic one is "
                                "`fashion-search bootstrap-model`)")
    recipe = recipe_for(_catalog_dir(args.catalog), settings)
    if args.out:
        with tempfile.TemporaryDirectory() as tmp:
            trained = recipe.train(Path(tmp) / "work", progress=True)
            out = Path(args.out)
            if out.exists():
                raise InvalidInputError(f"{out} exists; choose a new --out folder")
            shutil.move(str(trained), out)
    else:
        out = ensure_trained(recipe, settings, force=args.force)
    _print_history([json.loads(line) for line in (out / "training_log.jsonl").read_text().splitlines()], out)
    console.print(f"recipe {recipe.name} ({recipe.fingerprint()}): checkpoint in {out}")
    return 0


def _catalog_dir(path: str) -> Path:
    catalog = Path(path)
    if not (catalog / "styles.csv").is_file():
        raise NotFoundError(f"{catalog}: no styles.csv (expected the Fashion Product Images layout)")
    return catalog


def _print_history(history: list[dict], out: Path) -> None:
    table = Table(title=f"training log ({out})")
    keys = ["epoch", "loss", "val_R@1", "val_R@5", "val_R@10", "val_MRR", "lr"]
    for key in keys:
        table.add_column(key, justify="right")
    for row in history:
        table.add_row(*[("-" if row.get(k) is None else f"{row[k]:.4g}" if isinstance(row[k], float) else str(row[k]))
                        for k in keys])
    console.print(table)


def cmd_study(args: argparse.Namespace) -> int:
    """Train and compare the caption strategies and losses on the real catalog, measured on validation."""
    from training.real import STUDY, STUDY_METRICS, run_study

    settings = settings_from(args)
    check_output_dir(args.out, "--out")
    names = [n.strip() for n in args.variants.split(",") if n.strip()] if args.variants else list(STUDY)
    unknown = [n for n in names if n not in STUDY]
    if unknown:
        raise InvalidInputError(f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(STUDY)}")
    from dataclasses import replace

    from training.real import RealConfig

    base = replace(RealConfig(), epochs=args.epochs) if args.epochs else None
    rows = run_study(_catalog_dir(args.catalog), settings, names, Path(args.out), base=base)
    table = Table("variant", "zs type wF1", "attr P@10 type", "attr P@10 all", "i2i P@10", "name R@10",
                  "name R@10 /100", title="validation split")
    for row in rows:
        table.add_row(row["variant"], *["-" if row[m] is None else f"{row[m]:.3f}" for m in STUDY_METRICS])
    console.print(table)
    console.print(f"study.json, study.md and study.png in {args.out}")
    return 0


def cmd_prepare_models(args: argparse.Namespace) -> int:
    """Train (once per machine) every model the demo and the test suite use, outside any test's timeout, each
    with its ONNX export."""
    from training.bootstrap import SyntheticRecipe
    from training.real import recipe_for
    from training.recipes import Recipe, ensure_trained, export_onnx, recipe_dir

    settings = settings_from(args)
    wanted = {n.strip() for n in args.recipes.split(",") if n.strip()}
    if unknown := wanted - {"synthetic", "real"}:
        raise InvalidInputError(f"unknown recipe(s) {', '.join(sorted(unknown))}; known: synthetic, real")
    recipes: list[Recipe] = [SyntheticRecipe()] if "synthetic" in wanted else []
    if "real" in wanted:
        catalog = find_real_catalog(settings)
        if catalog is not None:
            recipes.append(recipe_for(catalog, settings))
        else:
            console.print(Text.assemble((HOW_TO_GET, "yellow"), ": the real recipe is not trained; the real-data "
                                        "tests will skip"))
    table = Table("recipe", "fingerprint", "checkpoint", "onnx", "seconds", title="models")
    for recipe in recipes:
        cached = (recipe_dir(settings, recipe) / "config.json").is_file()
        console.print(f"recipe {recipe.name}: " + ("cached" if cached else "training (once per machine)"))
        start = time.perf_counter()
        out = ensure_trained(recipe, settings, force=args.force)
        exported = export_onnx(out)  # a model cached before exports existed gets its export here, once
        table.add_row(recipe.name, recipe.fingerprint(), str(out), "yes" if exported else "no (torch serves it)",
                      f"{time.perf_counter() - start:.0f}")
    console.print(table)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from training.evaluate import EvalConfig, evaluate_checkpoints, markdown_tables

    settings = settings_from(args)
    out = check_output_dir(args.out, "--out")
    checkpoints = args.checkpoints or [resolve_model(settings)]
    results = evaluate_checkpoints(checkpoints, _products(args.catalog), out, EvalConfig(),
                                   device=settings.device, probe=not args.no_probe, split=args.split)
    # soft_wrap: rich would otherwise hard-wrap long rows at the console width (160 when piped): invalid Markdown
    console.print(markdown_tables(results), markup=False, highlight=False, soft_wrap=True)
    console.print(f"results.json, results.md and the pictures (failure grids, similarity heatmaps) in {args.out}")
    return 0


def cmd_localize(args: argparse.Namespace) -> int:
    from fashion_core.images import decode_image
    from fashion_core.localization import heatmap_png, occlusion_map

    settings = settings_from(args)
    path = Path(args.image)
    if not path.is_file():
        raise NotFoundError(f"{path}: no such image")
    out = check_output_file(args.out, "--out", {".png"})  # heatmap_png writes PNG bytes
    image = decode_image(path.read_bytes(), name=str(path))
    encoder = local_encoder(settings)
    loc = occlusion_map(encoder, image, args.query, grid=args.grid, patch=args.patch, threshold=args.threshold)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(heatmap_png(image, loc))
    console.print(f"similarity {loc.base_similarity:.3f}; box (x0, y0, x1, y1) = {loc.box}; heatmap in {out}")
    return 0


def cmd_bootstrap(args: argparse.Namespace) -> int:
    from training.bootstrap import BootstrapConfig, bootstrap_model, quality_table

    settings = settings_from(args)
    overrides = {"seed": args.seed, "epochs": args.epochs, "n_products": args.n}
    cfg = BootstrapConfig(**{k: v for k, v in overrides.items() if v is not None})
    path = bootstrap_model(settings, cfg, force=args.force)
    card = json.loads((path / CARD_FILE).read_text())
    quality = card.get("quality", {})
    table = Table(title=f"bootstrap model quality on {quality.get('heldout', 'held-out split')}")
    for col in ("metric", "value", "target", ""):
        table.add_column(col)
    for row in quality_table(quality.get("metrics", {})):
        table.add_row(*row)
    console.print(table)
    console.print(f"bootstrap model in {path} (trained in {card.get('train_seconds', '?')} s)")
    return 0


def cmd_train_tagger(args: argparse.Namespace) -> int:
    from training.tagger import train_tagger

    settings = settings_from(args)
    out = check_output_file(args.out, "--out") if args.out else settings.models_dir / "tagger.json"
    tagger, scores = train_tagger(_products(args.catalog), epochs=args.epochs, seed=args.seed)
    tagger.save(out)
    table = Table(title="BIO tagger on the test split (entity level)")
    for col in ("tag", "precision", "recall", "F1", "support"):
        table.add_column(col, justify="right")
    for tag, s in scores.items():
        table.add_row(tag, f"{s['precision']:.3f}", f"{s['recall']:.3f}", f"{s['f1']:.3f}", str(s["support"]))
    console.print(table)
    console.print(f"tagger saved to {out}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="fine-tune a CLIP checkpoint on a catalog (InfoNCE and/or SupCon)")
    p.add_argument("catalog", help="catalog directory (styles.csv + images/)")
    p.add_argument("--base", help="checkpoint to start from (default: the configured/cached model)")
    p.add_argument("--out", help="output checkpoint directory (default with --recipe: the model cache)")
    p.add_argument("--recipe", choices=["real"], help="train the project's from-scratch recipe on this catalog "
                   "(architecture, captions, losses and schedule of training/real.py; other flags ignored)")
    p.add_argument("--force", action="store_true", help="with --recipe: retrain even when cached")
    p.add_argument("--captions", default="enriched", help="caption modes, comma-separated: raw,enriched,template,"
                   "structured (one drawn per sample when several)")
    p.add_argument("--tagger", help="tagger JSON for structured captions")
    p.add_argument("--clip-weight", type=float, default=1.0, help="weight of CLIP's symmetric InfoNCE")
    p.add_argument("--supcon-weight", type=float, default=0.0, help="weight of SupCon (enables PK sampling)")
    p.add_argument("--supcon-temp", type=float, default=0.1)
    p.add_argument("--label-weight", type=float, default=0.0,
                   help="weight of the label-prompt (UniCL) loss: each image against every articleType, "
                        "subCategory, masterCategory, baseColour and gender prompt")
    p.add_argument("--patch-dropout", type=float, default=0.0, help="FLIP: share of image patches dropped")
    p.add_argument("--hflip", action="store_true", help="mirror half of each batch's images")
    p.add_argument("--sampler", choices=["random", "pk"], default="random")
    p.add_argument("--pk-p", type=int, default=8, help="classes per batch")
    p.add_argument("--pk-k", type=int, default=4, help="items per class per batch")
    p.add_argument("--class-field", default="articleType", help="SupCon class: a catalog field or 'id'")
    p.add_argument("--stage", default="joint", help="image (text tower frozen) | joint")
    p.add_argument("--freeze-lower", type=int, default=0, help="freeze the lower N layers of each tower")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--weight-decay", type=float, default=0.2)
    p.add_argument("--schedule", choices=["cosine", "plateau", "constant"], default="cosine")
    p.add_argument("--warmup", type=int, default=0, help="warm-up steps (cosine)")
    p.add_argument("--grad-clip", type=float, default=1.0, help="max gradient norm; 0 = off")
    p.add_argument("--accumulate", type=int, default=1, help="gradient accumulation steps")
    p.add_argument("--no-amp", action="store_true", help="fp32 on CUDA too (AMP is never used on CPU)")
    p.add_argument("--early-stop-metric", default="val_MRR")
    p.add_argument("--patience", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    add_settings_options(p)
    p.set_defaults(handler=cmd_train)

    p = sub.add_parser("evaluate", help="evaluate checkpoints side by side on the same test split")
    p.add_argument("checkpoints", nargs="*", help="checkpoint dirs or hub ids (default: the configured model)")
    p.add_argument("--catalog", required=True, help="catalog folder (styles.csv + images/), e.g. the real "
                   "Fashion Product Images dataset; split 80/10/10 by product id (training.data.split_of)")
    p.add_argument("--out", default="out/eval",
                   help="folder for results.json, results.md and the PNGs (default: %(default)s)")
    p.add_argument("--split", choices=["test", "val"], default="test",
                   help="report on test (the default); select (compare recipes, tune) on val only")
    p.add_argument("--no-probe", action="store_true", help="skip the linear probe")
    add_settings_options(p)
    p.set_defaults(handler=cmd_evaluate)

    p = sub.add_parser("localize", help="occlusion heatmap + zero-shot box of a text query over an image")
    p.add_argument("image")
    p.add_argument("query")
    p.add_argument("--out", default="out/localize.png")
    p.add_argument("--grid", type=int, default=7)
    p.add_argument("--patch", type=float, default=2.0, help="occluding patch width in grid cells")
    p.add_argument("--threshold", type=float, default=0.5, help="heat level that bounds the box")
    add_settings_options(p)
    p.set_defaults(handler=cmd_localize)

    p = sub.add_parser("bootstrap-model", help="train a small fashion CLIP offline on the synthetic catalog")
    p.add_argument("--force", action="store_true", help="retrain even when the checkpoint exists")
    # defaults (None) come from training.bootstrap.BootstrapConfig, imported only when the command runs
    p.add_argument("--seed", type=int, help="default: the recipe's (0)")
    p.add_argument("--epochs", type=int, help="default: the recipe's")
    p.add_argument("--n", type=int, help="synthetic training products (default: the recipe's)")
    add_settings_options(p)
    p.set_defaults(handler=cmd_bootstrap)

    p = sub.add_parser("study", help="train each caption strategy / loss variant of the real recipe and compare "
                       "them on the validation split (each trained once, then cached)")
    p.add_argument("catalog")
    p.add_argument("--variants", help="comma-separated names from training/real.py's STUDY (default: all of "
                   "them), e.g. recipe,raw,enriched,structured,infonce; an unknown name lists them")
    p.add_argument("--epochs", type=int, help="train every variant this many epochs (default: the recipe's)")
    p.add_argument("--out", default="out/study")
    add_settings_options(p)
    p.set_defaults(handler=cmd_study)

    p = sub.add_parser("prepare-models", help="train (once per machine, then cached) the models the demo and "
                       "the tests use: the synthetic bootstrap, and the real recipe when the real catalog is here")
    add_catalog_option(p)
    p.add_argument("--force", action="store_true", help="retrain even when cached")
    p.add_argument("--recipes", default="synthetic,real", help="comma-separated: synthetic, real (default: both)")
    add_settings_options(p)
    p.set_defaults(handler=cmd_prepare_models)

    p = sub.add_parser("train-tagger", help="train the BIO name tagger used by structured captions")
    p.add_argument("catalog")
    p.add_argument("--out", help="tagger JSON (default: <home>/models/tagger.json)")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    add_settings_options(p)
    p.set_defaults(handler=cmd_train_tagger)
