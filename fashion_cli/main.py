"""`fashion-search` entry point: argparse with one subcommand module per concern.

Every project error becomes a one-line message and exit code 2; no traceback reaches the user.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence

from fashion_cli.console import err_console, print_error
from fashion_core.errors import FashionSearchError

log = logging.getLogger("fashion_cli")

# Modules that add subcommands: each exposes register(subparsers). Missing ones are skipped so that a
# package without its optional pieces still gets the core commands.
COMMAND_MODULES = (
    "fashion_cli.commands_core",
    "fashion_cli.commands_model",
    "fashion_cli.commands_services",
    "fashion_cli.commands_indexer",
    "fashion_cli.commands_training",
    "fashion_cli.commands_web",
    "fashion_cli.commands_deploy",
)


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(prog="fashion-search", description="Fashion product search on CLIP.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(sub)
    return parser


def _quiet_libraries() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    # Read by transformers when (and only if) a command imports it: a client command never pays for the import.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    for noisy in ("httpx", "urllib3", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    _quiet_libraries()
    handler: Callable[[argparse.Namespace], int | None] = args.handler
    try:
        return int(handler(args) or 0)
    except FashionSearchError as exc:
        print_error(exc)
        return 2
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
