"""Model commands: make-tiny-model, model-info, and `demo`, the one-command main job."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from rich.text import Text

from fashion_cli.console import console, print_hits, print_label_scores
from fashion_cli.grid import render_grid
from fashion_cli.main import main as cli
from fashion_cli.options import add_catalog_option, add_settings_options, settings_args, settings_from
from fashion_core.catalog.reader import read_catalog
from fashion_core.catalog.real import HOW_TO_GET, find_real_catalog
from fashion_core.catalog.schema import Product
from fashion_core.errors import NotFoundError
from fashion_core.images import load_image
from fashion_core.model.resolve import resolve_model
from fashion_core.outputs import check_output_dir
from fashion_core.search import SearchEngine, TextSearchConfig
from fashion_core.settings import Settings
from fashion_core.stores.backends import open_index
from fashion_core.stores.base import VectorIndex
from fashion_core.stores.filters import SearchFilter
from services.wiring import local_encoder, open_encoder
from training.synthetic_catalog import generate_catalog

log = logging.getLogger(__name__)


def ensure_model(settings: Settings) -> str:
    """resolve_model, bootstrapping the synthetic recipe into the cache first when none is configured or cached."""
    try:
        return resolve_model(settings)
    except NotFoundError:
        pass
    try:
        from training.bootstrap import bootstrap_model
    except ImportError:
        from training.architectures import build_tiny_clip

        console.print("training pipeline not installed: using an untrained tiny CLIP; results are random",
                      style="yellow")
        return str(build_tiny_clip(settings.models_dir / "untrained"))
    console.print("no model configured or cached: bootstrapping one from the synthetic catalog")
    return str(bootstrap_model(settings))


def cmd_make_tiny(args: argparse.Namespace) -> int:
    from training.architectures import TinyClipSpec, build_tiny_clip

    out = build_tiny_clip(args.out_dir, TinyClipSpec(image_size=args.image_size), seed=args.seed)
    console.print(f"tiny random CLIP checkpoint written to {out}")
    return 0


def cmd_model_info(args: argparse.Namespace) -> int:
    from fashion_core.model.onnx_encoder import OnnxEncoder

    settings = settings_from(args)
    encoder = local_encoder(settings)
    info = encoder.info
    runtime = "onnx" if isinstance(encoder, OnnxEncoder) else "torch"
    print(json.dumps({"model_id": info.model_id, "version": info.version, "dim": info.dim, "device": info.device,
                      "runtime": runtime, "card": info.card}, indent=2))
    return 0


def cmd_export_onnx(args: argparse.Namespace) -> int:
    from fashion_core.model.onnx_export import export_onnx

    settings = settings_from(args)
    model = resolve_model(settings)
    out = export_onnx(model, out_dir=args.out, home=settings.home)
    message = f"ONNX export of {model} written to {out}"
    if args.out is None:
        message += "; encoding on the CPU uses it from now on (FASHION_ENCODER_RUNTIME=auto)"
    console.print(message, highlight=False, soft_wrap=True)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The main job: on the real catalog when this machine has it, else on a synthetic one."""
    settings = settings_from(args)
    out = check_output_dir(args.out, "--out")
    catalog = None if args.synthetic else find_real_catalog(settings)
    if catalog is None:
        if not args.synthetic:
            console.print(Text.assemble((f"{HOW_TO_GET}.", "yellow"), " Running the demo on a synthetic catalog "
                                        "instead."))
        return _demo_synthetic(args, settings, out)
    return _demo_real(catalog, settings, out)


def _demo_real(catalog: Path, settings: Settings, out: Path) -> int:
    from training.real import recipe_for
    from training.recipes import ensure_trained

    console.rule(f"1. the real catalog: {catalog}")
    read = read_catalog(catalog)
    read.write_report(out / "skipped.json")
    console.print(f"{len(read.products)} products; {len(read.skipped)} rows skipped "
                  f"({dict(read.reasons())}), listed in {out / 'skipped.json'}")
    console.rule("2. model")
    if settings.model:
        model = settings.model
    else:
        console.print("the real recipe: a small CLIP trained from scratch on this catalog's train split "
                      "(once per machine, then cached)")
        model = str(ensure_trained(recipe_for(catalog, settings), settings))
    settings = settings.model_copy(update={"model": model})
    console.print(f"serving model: {model}")
    console.rule("3. index")
    encoder = open_encoder(settings)
    index = open_index(settings)
    if _index_is_current(index, encoder.info.version, {p.id for p in read.products}):
        console.print(f"index {index.name!r} ({index.backend}) already holds these {index.count()} products, "
                      "embedded by this model: not re-indexed")
    else:
        index.close()
        code = cli(["index", str(catalog), "--report", str(out / "skipped.json"), *settings_args(settings)])
        if code:
            return code
        index = open_index(settings)
    engine = SearchEngine(encoder, index, text=TextSearchConfig.from_settings(settings))
    try:
        _demo_searches(engine, read.products, out)
    finally:
        index.close()
    console.print(Text.assemble(("demo done", "green"), f": grids in {out}/*.png, skip report in {out}/skipped.json"))
    return 0


def _index_is_current(index: VectorIndex, model_version: str, ids: set[int]) -> bool:
    meta = index.meta
    return meta is not None and meta.model_version == model_version and index.all_ids() == ids


REAL_QUERIES: tuple[tuple[str, str, SearchFilter | None], ...] = (
    ("red dress for women", "red-dress-for-women.png", None),
    ("men's black sports shoes", "mens-black-sports-shoes.png", SearchFilter.build(gender="Men")),
    ("blue jeans", "blue-jeans.png", None),
    ("silver watch for women", "silver-watch-for-women.png", SearchFilter.build(masterCategory="Accessories")),
)


def _demo_searches(engine: SearchEngine, products: list[Product], out: Path) -> None:
    from training.data import split_of

    for query, name, flt in REAL_QUERIES:
        console.rule(f"4. search {query!r}" + (f" | {flt.describe()}" if flt else ""))
        hits = engine.search_text(query, 8, flt)
        print_hits(hits, query, False, flt=flt, mode=engine.text.default_mode)
        console.print(f"grid: {render_grid(hits, out / name, query_text=query, title=query)}")
    # an image query: a product of the test split (the model never trained on it), its own product excluded
    test = [p for p in products if split_of(p.id) == "test"] or products
    probe = next((p for p in test if p.articleType == "Handbags" and p.baseColour == "Brown"), test[0])
    image = load_image(probe.image_file())
    console.rule(f"4. search by image: {probe.productDisplayName} ({probe.image_path})")
    hits = [h for h in engine.search_image(image, 9) if h.id != probe.id][:8]
    print_hits(hits, f"image of product {probe.id}", False, mode="image")
    grid = render_grid(hits, out / "image-query.png", query_image=image, title=probe.productDisplayName)
    console.print(f"grid: {grid}")
    console.rule("4. zero-shot classification of that image")
    print_label_scores(engine.classify(image, ["handbag", "backpack", "wallet", "clutch", "shoes", "watch"]),
                       "articleType", False)
    print_label_scores(engine.classify(image, ["brown", "black", "red", "blue", "white", "pink"],
                                       ["a photo of a {} product"]), "baseColour", False)


def _demo_synthetic(args: argparse.Namespace, settings: Settings, out: Path) -> int:
    catalog = out / "catalog"
    if not (catalog / "styles.csv").is_file():
        console.rule("1. synthetic catalog")
        generate_catalog(catalog, n=args.n, seed=args.seed, dirty=True)
        console.print(f"{args.n} products (+ a few dirty rows) in {catalog}")
    console.rule("2. model")
    model = ensure_model(settings)
    console.print(f"serving model: {model}")
    common = settings_args(settings.model_copy(update={"model": model}))
    console.rule("3. index")
    code = cli(["index", str(catalog), "--report", str(out / "skipped.json"), *common])
    if code:
        return code
    products = read_catalog(catalog).products
    query_image = next((p for p in products if p.articleType == "Sandals" and p.baseColour == "Blue"),
                       products[0]).image_path
    examples = [
        ["search", "red dress", "-k", "8", "--grid", str(out / "red-dress.png")],
        ["search", "men's black sports shoes", "--gender", "Men", "--colour", "Black", "-k", "8",
         "--grid", str(out / "mens-black-sports-shoes.png")],
        ["search", "black handbag", "--master-category", "Accessories", "--year-min", "2012", "-k", "8"],
        ["search", "--image", str(query_image), "-k", "8", "--grid", str(out / "image-query.png")],
        ["classify", str(query_image), "--labels", "sandals,heels,sports shoes,casual shoes"],
        ["classify", str(query_image), "--labels", "red,blue,green,black,white", "--template",
         "a photo of a {} product"],
        ["localize", str(query_image), "blue sandals", "--out", str(out / "localize-blue-sandals.png")],
    ]
    for example in examples:
        console.rule("4. " + " ".join(example[:2]) + (" " + example[2] if example[1] == "--image" else ""))
        code = cli([*example, *common])
        if code:
            return code
    console.print(Text.assemble(("demo done", "green"), f": grids in {out}/*.png, skip report in {out}/skipped.json"))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("make-tiny-model", help="save a tiny randomly initialised CLIP checkpoint (for tests)")
    p.add_argument("out_dir")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=cmd_make_tiny)

    p = sub.add_parser("model-info", help="which model would serve, with its card")
    add_settings_options(p)
    p.set_defaults(handler=cmd_model_info)

    p = sub.add_parser("export-onnx", help="export a checkpoint folder to ONNX, so that the CPU encodes with ONNX "
                                           "Runtime instead of torch")
    p.add_argument("--out", help="export folder; default: <model>/onnx, or $FASHION_HOME/onnx/<version> when the "
                                 "model's folder is not writable (the places the encoder looks)")
    add_settings_options(p)
    p.set_defaults(handler=cmd_export_onnx)

    p = sub.add_parser("demo", help="the main job on the embedded default: catalog, model, index, searches")
    p.add_argument("--out", default="out/demo", help="where the grids and the skip report go")
    add_catalog_option(p)
    p.add_argument("--synthetic", action="store_true", help="the synthetic catalog even when the real one is here")
    p.add_argument("--n", type=int, default=2000, help="synthetic catalog size")
    p.add_argument("--seed", type=int, default=0, help="synthetic catalog seed")
    add_settings_options(p)
    p.set_defaults(handler=cmd_demo)
