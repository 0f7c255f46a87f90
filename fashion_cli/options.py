"""Options shared by several subcommands: filters, k, settings overrides."""

from __future__ import annotations

import argparse
from typing import get_args

from fashion_core.catalog.schema import KEYWORDS
from fashion_core.search import check_k
from fashion_core.settings import SearchMode, Settings, load_settings
from fashion_core.stores.filters import SearchFilter


def add_settings_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("settings (override FASHION_* env vars and the FASHION_CONFIG file)")
    group.add_argument("--model", help="CLIP checkpoint directory or hub id")
    group.add_argument("--backend", dest="index_backend", choices=["auto", "qdrant", "faiss"],
                       help="auto (default): a Qdrant server when FASHION_QDRANT_URL is set, else FAISS files; "
                            "qdrant without a URL: embedded Qdrant (qdrant-client local mode)")
    group.add_argument("--index-dir", type=str, help="where local indexes live")
    group.add_argument("--index-name", help="the serving index name (FASHION_INDEX_NAME)")
    group.add_argument("--faiss-type", dest="faiss_index_type", choices=["flat", "hnsw", "ivf"])
    group.add_argument("--device", choices=["auto", "cpu", "cuda"])
    group.add_argument("--runtime", dest="encoder_runtime", choices=["auto", "torch", "onnx"],
                       help="encoder runtime (FASHION_ENCODER_RUNTIME): auto (default) = ONNX Runtime where the "
                            "model has an ONNX export and runs on the CPU, else torch")


def add_mode_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mode", choices=get_args(SearchMode),
                        help="text matching: dense (the image embedding), lexical (BM25 over names and attributes) "
                             "or hybrid (both fused); default FASHION_SEARCH_MODE (hybrid)")


def add_catalog_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--catalog", dest="real_catalog", metavar="DIR",
                        help="the real catalog (styles.csv + images/); default: FASHION_CATALOG, else "
                             "../shared/datasets/fashion-product-images-small when present")


def settings_from(args: argparse.Namespace) -> Settings:
    keys = ("model", "index_backend", "index_dir", "index_name", "faiss_index_type", "device", "encoder_runtime")
    return load_settings(**{k: getattr(args, k, None) for k in keys}, catalog=getattr(args, "real_catalog", None))


def add_filter_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("filters (AND across fields; comma-separated values mean any-of)")
    for field in KEYWORDS:
        group.add_argument(f"--{field.flag}", dest=f"f_{field.name}", metavar="VALUE",
                           help=f"{field.name} in VALUE[,VALUE...]")
    group.add_argument("--year-min", type=int)
    group.add_argument("--year-max", type=int)
    parser.add_argument("-k", "--top-k", dest="k", type=int, default=10, help="number of results (default 10)")


def filter_from(args: argparse.Namespace) -> SearchFilter:
    check_k(args.k, name="-k")  # before a model or a service is reached
    values = {field.name: getattr(args, f"f_{field.name}") for field in KEYWORDS}
    return SearchFilter.build(year_min=args.year_min, year_max=args.year_max, **values)


def add_classify_options(parser: argparse.ArgumentParser) -> None:
    """An image and the caller's labels: `classify` in-process and `query classify` against the service."""
    parser.add_argument("image")
    parser.add_argument("--labels", required=True, help='comma-separated, e.g. "sandal,flip flop,heels"')
    parser.add_argument("--template", action="append", help="prompt template with {} (repeatable)")


def labels_from(args: argparse.Namespace) -> list[str]:
    return [label.strip() for label in args.labels.split(",") if label.strip()]
