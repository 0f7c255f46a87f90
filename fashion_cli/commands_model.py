"""Model commands: make-tiny-model, model-info, and `demo`, the one-command main job."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from fashion_cli.console import console
from fashion_cli.options import add_settings_options, settings_from
from fashion_core.catalog.reader import read_catalog
from fashion_core.catalog.synthetic import generate_catalog
from fashion_core.errors import NotFoundError
from fashion_core.model.encoder import ClipEncoder
from fashion_core.model.factory import TinyClipSpec, build_tiny_clip
from fashion_core.model.resolve import bootstrap_dir, resolve_model
from fashion_core.settings import Settings

log = logging.getLogger(__name__)


def ensure_model(settings: Settings) -> str:
    """resolve_model, bootstrapping a model into the cache first when none is configured or cached."""
    try:
        return resolve_model(settings)
    except NotFoundError:
        pass
    try:
        from training.bootstrap import bootstrap_model
    except ImportError:
        console.print("[yellow]training pipeline not installed: using an untrained tiny CLIP; results are "
                      "random[/yellow]")
        return str(build_tiny_clip(bootstrap_dir(settings)))
    console.print("no model configured or cached: bootstrapping one from the synthetic catalog")
    return str(bootstrap_model(settings))


def cmd_make_tiny(args: argparse.Namespace) -> int:
    out = build_tiny_clip(args.out_dir, TinyClipSpec(image_size=args.image_size), seed=args.seed)
    console.print(f"tiny random CLIP checkpoint written to {out}")
    return 0


def cmd_model_info(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    info = ClipEncoder.from_pretrained(resolve_model(settings), device=settings.device).info
    print(json.dumps({"model_id": info.model_id, "version": info.version, "dim": info.dim, "device": info.device,
                      "card": info.card}, indent=2))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Generate a catalog, make sure a model exists, index, run example searches, write grid PNGs."""
    from fashion_cli.main import main as cli

    out = Path(args.out)
    catalog = out / "catalog"
    settings = settings_from(args)
    if not (catalog / "styles.csv").is_file():
        console.rule("1. synthetic catalog")
        generate_catalog(catalog, n=args.n, seed=args.seed, dirty=True)
        console.print(f"{args.n} products (+ a few dirty rows) in {catalog}")
    console.rule("2. model")
    model = ensure_model(settings)
    console.print(f"serving model: {model}")
    common = ["--model", model, "--backend", settings.index_backend, "--index-dir", str(settings.index_dir)]
    console.rule("3. index")
    code = cli(["index", str(catalog), "--report", str(out / "skipped.json"), *common])
    if code:
        return code
    products = read_catalog(catalog).products
    query_image = next(p for p in products if p.articleType == "Sandals" and p.baseColour == "Blue").image_path
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
    console.print(f"[green]demo done[/green]: grids in {out}/*.png, skip report in {out}/skipped.json")
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

    p = sub.add_parser("demo", help="the main job on the embedded default: catalog, model, index, searches")
    p.add_argument("--out", default="out/demo", help="where the catalog, grids and report go")
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    add_settings_options(p)
    p.set_defaults(handler=cmd_demo)
