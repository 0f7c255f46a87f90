"""Core commands: generate-catalog, index, search, classify."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from fashion_cli.console import console, print_hits, print_label_scores
from fashion_cli.grid import render_grid
from fashion_cli.options import (
    add_classify_options,
    add_filter_options,
    add_mode_option,
    add_settings_options,
    filter_from,
    labels_from,
    settings_from,
)
from fashion_core.catalog.reader import CatalogReadResult
from fashion_core.errors import FashionSearchError, InvalidInputError, NotFoundError
from fashion_core.images import check_shape, load_image
from fashion_core.ingest import IndexReport, index_catalog
from fashion_core.outputs import check_output_dir, check_output_file
from fashion_core.pictures import check_picture_path
from fashion_core.stores.backends import open_index
from fashion_core.zeroshot import DEFAULT_TEMPLATES, classify
from services.wiring import open_encoder, open_engine
from training.synthetic_catalog import generate_catalog

if TYPE_CHECKING:
    from PIL import Image

    from fashion_core.catalog.fetch import FetchSummary


def progress_bar() -> Progress:
    return Progress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn(), console=console, transient=False)


# -- generate-catalog ------------------------------------------------------------------------------
def cmd_generate(args: argparse.Namespace) -> int:
    # all arguments before the first file is written: a refused run leaves no partial catalog
    if args.n <= 0:
        raise InvalidInputError(f"--n must be positive, got {args.n}")
    check_shape(args.image_size, args.image_size, name="--image-size")
    check_output_dir(args.out_dir, "OUT_DIR")
    with progress_bar() as bar:
        task = bar.add_task("drawing products", total=args.n)
        generate_catalog(args.out_dir, n=args.n, seed=args.seed, image_size=args.image_size, dirty=args.dirty,
                         progress=lambda done: bar.update(task, completed=done))
    console.print(f"wrote {args.n} products to {args.out_dir} (styles.csv + images/)")
    return 0


# -- fetch-dataset ---------------------------------------------------------------------------------
def print_fetch_summary(summary: FetchSummary, max_rows: int = 20) -> None:
    """Rows = products + skipped, the skips by reason, and each row whose image could not be decoded."""
    dest = summary.dest
    console.print(f"{summary.products} products with an image in {dest} (styles.csv + images/): {summary.rows} "
                  f"rows = {summary.products} products + {len(summary.skipped)} skipped; use it with --catalog "
                  f"{dest} or FASHION_CATALOG={dest}", markup=False, highlight=False, soft_wrap=True)
    if summary.skipped:
        table = Table("reason", "rows", title="skipped rows")
        for reason, count in sorted(summary.reasons().items(), key=lambda kv: -kv[1]):
            table.add_row(Text(reason), str(count))
        console.print(table)
    unreadable = summary.unreadable()
    for row in unreadable[:max_rows]:
        console.print(f"  {row.product_id} (line {row.line}): {row.reason}", markup=False, highlight=False,
                      soft_wrap=True)
    if len(unreadable) > max_rows:
        console.print(f"  ... and {len(unreadable) - max_rows} more images that cannot be decoded")


def cmd_fetch_dataset(args: argparse.Namespace) -> int:
    from fashion_core.catalog.fetch import HF_DATASET, convert_local, fetch_from_hub, fetch_from_kaggle

    dest = Path(args.dest)
    if (dest / "styles.csv").exists():
        raise InvalidInputError(f"{dest} already holds a styles.csv; choose an empty folder")
    if args.from_file and args.source:
        raise InvalidInputError("--from-file converts a local copy and --source downloads one: give only one")
    if args.from_file:
        if not Path(args.from_file).exists():  # before the progress bar: a typo is just the error line
            raise NotFoundError(f"{args.from_file}: no such file or folder")
        with progress_bar() as bar:
            task = bar.add_task(f"{args.from_file} -> {dest}", total=None)
            summary = convert_local(Path(args.from_file), dest, on_row=lambda n: bar.update(task, completed=n))
    elif args.source == "kaggle":
        console.print("downloading with the Kaggle CLI ...")
        summary = fetch_from_kaggle(dest)
    else:
        with progress_bar() as bar:
            task = bar.add_task(f"{HF_DATASET} -> {dest}", total=None)
            summary = fetch_from_hub(dest, on_row=lambda n: bar.update(task, completed=n))
    print_fetch_summary(summary)
    return 0


# -- index -----------------------------------------------------------------------------------------
def print_index_report(report: IndexReport, report_file: Path | None) -> None:
    console.print(Text.assemble((f"indexed {report.indexed}", "green"),
                                f", skipped {len(report.skipped)} in {report.seconds:.1f}s"))
    if report.skipped:
        table = Table("reason", "count", title="skipped items")
        for reason, count in sorted(report.reasons().items(), key=lambda kv: -kv[1]):
            table.add_row(reason, str(count))
        console.print(table)
    if report_file:
        report_file.parent.mkdir(parents=True, exist_ok=True)
        report_file.write_text(json.dumps({
            "indexed": report.indexed, "skipped": len(report.skipped), "reasons": report.reasons(),
            "rows": [{"line": s.line, "product_id": s.product_id, "reason": s.reason} for s in report.skipped],
        }, indent=2, ensure_ascii=False))
        console.print(f"skip report written to {report_file}")


def cmd_index(args: argparse.Namespace) -> int:
    catalog_dir = Path(args.catalog_dir)
    if not catalog_dir.is_dir():
        raise NotFoundError(f"{catalog_dir}: no such catalog directory")
    report_file = check_output_file(args.report, "--report") if args.report else None
    settings = settings_from(args)
    encoder = open_encoder(settings)
    index = open_index(settings)
    try:
        with progress_bar() as bar:
            task = bar.add_task("embedding", total=None)

            def started(catalog: CatalogReadResult) -> None:
                bar.update(task, total=len(catalog.products))

            report = index_catalog(catalog_dir, encoder, index, settings.index_batch_size, on_start=started,
                                   on_batch=lambda n: bar.advance(task, n))
        console.print(f"index {index.name!r} ({index.backend}) now holds {index.count()} items")
    finally:
        index.close()
    print_index_report(report, report_file)
    return 0


# -- search ----------------------------------------------------------------------------------------
def cmd_search(args: argparse.Namespace) -> int:
    if sum(given is not None for given in (args.query, args.image, args.like)) != 1:
        raise InvalidInputError("give either a text query, --image FILE or --like PRODUCT_ID")
    if args.query is not None and not args.query.strip():
        raise InvalidInputError("the text query is empty")
    flt = filter_from(args)
    if args.grid:
        check_picture_path(args.grid, "--grid")
    query_image = load_image(args.image) if args.image else None
    engine = open_engine(settings_from(args))
    try:
        flt = engine.resolve_filter(flt) or flt  # the title names the values as the index spells them
        if query_image is not None:
            mode = "image"
            hits = engine.search_image(query_image, args.k, flt)
            title = f"image {args.image} | {flt.describe()}"
        elif args.like is not None:
            mode = "image"  # its stored image vector: NotFoundError (one line, exit 2) for an id not indexed
            hits = engine.more_like_this(args.like, args.k, flt)
            title = f"like product {args.like} | {flt.describe()}"
            query_image = _product_image(engine.index.retrieve([args.like]).get(args.like))
        else:
            mode = args.mode or engine.text.default_mode
            hits = engine.search_text(args.query, args.k, flt, args.mode)
            title = f"{args.query!r} | {mode} | {flt.describe()}"
        size = None if hits else engine.index.count()  # why nothing was found
    finally:
        engine.index.close()
    print_hits(hits, title, args.json, flt=flt, mode=mode, index_size=size)
    if args.grid:
        out = render_grid(hits, args.grid, query_text=args.query, query_image=query_image, title=title)
        console.print(f"results grid written to {out}")
    return 0


def _product_image(found: tuple[dict, object] | None) -> Image.Image | None:
    """An indexed product's photo for the grid's query cell (None when its payload names none it can read)."""
    path = found[0].get("image") if found else None
    try:
        return load_image(path) if path else None
    except FashionSearchError:
        return None


# -- classify --------------------------------------------------------------------------------------
def cmd_classify(args: argparse.Namespace) -> int:
    labels = labels_from(args)
    image = load_image(args.image)
    templates = args.template or list(DEFAULT_TEMPLATES)
    scores = classify(open_encoder(settings_from(args)), image, labels, templates)
    print_label_scores(scores, f"zero-shot: {args.image}", args.json)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate-catalog", help="write a synthetic catalog in the Fashion Product Images layout")
    p.add_argument("out_dir")
    p.add_argument("--n", type=int, default=2000, help="number of products (default 2000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--dirty", action="store_true", help="append rows like the real file's bad ones")
    p.set_defaults(handler=cmd_generate)

    p = sub.add_parser("fetch-dataset", help="download the public Fashion Product Images (small) dataset into "
                       "the Kaggle layout (needs network), or convert a local copy of it (--from-file)")
    p.add_argument("dest", help="an empty folder")
    p.add_argument("--source", choices=["hf", "kaggle"], default=None,
                   help="hf (default): the Hugging Face copy (needs pyarrow); kaggle: the Kaggle CLI (needs a token)")
    p.add_argument("--from-file", metavar="PATH",
                   help="no download: convert a local copy, a Hugging Face parquet file (or a folder of them), the "
                        "Kaggle zip archive or its unzipped folder")
    p.set_defaults(handler=cmd_fetch_dataset)

    p = sub.add_parser("index", help="embed a catalog and write it to the index")
    p.add_argument("catalog_dir")
    p.add_argument("--report", help="write skipped rows and reasons to this JSON file")
    add_settings_options(p)
    p.set_defaults(handler=cmd_index)

    p = sub.add_parser("search", help="text or image search with filters")
    p.add_argument("query", nargs="?", help="text query, e.g. \"men's blue shoes\"")
    p.add_argument("--image", help="query by this image instead of text")
    p.add_argument("--like", type=int, metavar="PRODUCT_ID",
                   help="products like this indexed one (by its image), the product itself left out")
    p.add_argument("--grid", help="write a results grid picture here (.png, or .jpg, .webp, ...)")
    p.add_argument("--json", action="store_true", help="print hits as JSON")
    add_mode_option(p)
    add_filter_options(p)
    add_settings_options(p)
    p.set_defaults(handler=cmd_search)

    p = sub.add_parser("classify", help="zero-shot classify an image against labels")
    add_classify_options(p)
    p.add_argument("--json", action="store_true")
    add_settings_options(p)
    p.set_defaults(handler=cmd_classify)
