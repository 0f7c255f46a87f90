"""Options shared by several subcommands: filters, k, settings overrides."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Literal, get_args, get_origin

from fashion_core.catalog.schema import KEYWORDS
from fashion_core.search import check_k
from fashion_core.settings import SearchMode, Settings, load_settings
from fashion_core.stores.filters import SearchFilter

# Where every serve command listens unless told otherwise: loopback, this machine only. Containers, whose
# ports are reached from outside, pass --host 0.0.0.0 (serve-admin: --address 0.0.0.0:PORT) explicitly.
LISTEN_HOST = "127.0.0.1"


def add_host_option(parser: argparse.ArgumentParser) -> None:
    """--host of a serve command (its gRPC or HTTP port and its metrics port), LISTEN_HOST by default."""
    parser.add_argument("--host", default=LISTEN_HOST,
                        help=f"interface to listen on (default {LISTEN_HOST}: this machine only; "
                             "0.0.0.0: every interface, as the containers do)")


@dataclass(frozen=True)
class SettingsOption:
    """A command-line option that overrides the Settings field ``field`` (also its argparse dest)."""

    flag: str
    field: str
    help: str | None = None

    @property
    def choices(self) -> tuple[str, ...] | None:
        """The field's allowed values when it is a Literal (the one list: Settings)."""
        annotation = Settings.model_fields[self.field].annotation
        return get_args(annotation) if get_origin(annotation) is Literal else None


# The one list of settings options: add_settings_options adds them, settings_from reads them and settings_args
# hands them on to a nested command (the demo's `index` step).
SETTINGS_OPTIONS = (
    SettingsOption("--model", "model", "CLIP checkpoint directory or hub id"),
    SettingsOption("--backend", "index_backend",
                   "auto (default): a Qdrant server when FASHION_QDRANT_URL is set, else FAISS files; qdrant "
                   "without a URL: embedded Qdrant (qdrant-client local mode)"),
    SettingsOption("--index-dir", "index_dir", "where local indexes live"),
    SettingsOption("--index-name", "index_name", "the serving index name (FASHION_INDEX_NAME)"),
    SettingsOption("--faiss-type", "faiss_index_type"),
    SettingsOption("--device", "device"),
    SettingsOption("--runtime", "encoder_runtime",
                   "encoder runtime (FASHION_ENCODER_RUNTIME): auto (default) = ONNX Runtime where the model has "
                   "an ONNX export and runs on the CPU, else torch"),
)


def add_settings_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("settings (override FASHION_* env vars and the FASHION_CONFIG file)")
    for option in SETTINGS_OPTIONS:
        group.add_argument(option.flag, dest=option.field, choices=option.choices, help=option.help)


def settings_args(settings: Settings) -> list[str]:
    """Every settings option with its value in ``settings``: a nested command line that uses the same settings."""
    args: list[str] = []
    for option in SETTINGS_OPTIONS:
        value = getattr(settings, option.field)
        if value is not None:
            args += [option.flag, str(value)]
    return args


def add_mode_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mode", choices=get_args(SearchMode),
                        help="text matching: dense (the image embedding), lexical (BM25 over names and attributes) "
                             "or hybrid (both fused); default FASHION_SEARCH_MODE (hybrid)")


def add_catalog_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--catalog", dest="real_catalog", metavar="DIR",
                        help="the real catalog (styles.csv + images/); default: FASHION_CATALOG, else "
                             "../shared/datasets/fashion-product-images-small when present")


def settings_from(args: argparse.Namespace, **extra: object) -> Settings:
    """The settings of a command: its settings options (and ``extra`` overrides, e.g. a command's own --redis-url)
    over FASHION_* and the config file; None values are not overrides. Validated: ConfigError for a bad value."""
    overrides = {option.field: getattr(args, option.field, None) for option in SETTINGS_OPTIONS}
    return load_settings(**overrides, catalog=getattr(args, "real_catalog", None), **extra)


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
