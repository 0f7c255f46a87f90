"""`serve-encoder` / `serve-query` start the gRPC services; `query ...` talks to a running query service."""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table

from fashion_cli.console import console, print_hits, print_label_scores
from fashion_cli.options import (
    add_classify_options,
    add_filter_options,
    add_host_option,
    add_mode_option,
    add_settings_options,
    filter_from,
    labels_from,
    settings_from,
)
from fashion_core.errors import InvalidInputError
from fashion_core.settings import load_settings

if TYPE_CHECKING:
    from services.query_client import QueryClient
    from services.server import GrpcServer


# -- servers ---------------------------------------------------------------------------------------
def _serve(args: argparse.Namespace, start: Callable[..., tuple[GrpcServer, Any]]) -> int:
    """Run ``start`` (start_encoder_server or start_query_server) until SIGTERM/SIGINT."""
    from services.logs import configure_service_logging

    configure_service_logging(args.log_format, logging.DEBUG if args.verbose else logging.INFO)
    settings = settings_from(args)
    if getattr(args, "encoder_address", None):
        settings = settings.model_copy(update={"encoder_address": args.encoder_address})
    server, _ = start(settings, address=f"{args.host}:{args.port}", metrics_port=args.metrics_port)
    console.print(f"listening on {server.address}" + (f", metrics on {args.host}:{args.metrics_port}/metrics"
                                                      if args.metrics_port else ""))
    server.wait_for_termination(grace=args.grace)
    return 0


def cmd_serve_encoder(args: argparse.Namespace) -> int:
    from services.encoder_service import start_encoder_server

    return _serve(args, start_encoder_server)


def cmd_serve_query(args: argparse.Namespace) -> int:
    from services.query_service import start_query_server

    return _serve(args, start_query_server)


def _server_options(p: argparse.ArgumentParser, port: int) -> None:
    add_host_option(p)
    p.add_argument("--port", type=int, default=port)
    p.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
    p.add_argument("--grace", type=float, default=5.0, help="seconds running calls get on shutdown")
    p.add_argument("--log-format", choices=["json", "text"], default="json", help="log lines (default json)")
    add_settings_options(p)


# -- client ----------------------------------------------------------------------------------------
def _client(args: argparse.Namespace) -> QueryClient:
    from services.query_client import QueryClient

    settings = load_settings()
    return QueryClient(args.address or settings.query_address, timeout_s=args.timeout or settings.rpc_timeout_s)


def _index_size(client: QueryClient, index: str | None) -> int | None:
    """The size of the served index ``index`` (None: the default one), None when the service does not list it."""
    served = client.list_indexes()
    return next((i.size for i in served if (i.name == index if index else i.is_default)), None)


def cmd_query_text(args: argparse.Namespace) -> int:
    flt = filter_from(args)
    with closing(_client(args)) as client:
        hits = client.search_text(args.query, args.k, flt, index=args.index, mode=args.mode)
        size = None if hits or args.json else _index_size(client, args.index)
    print_hits(hits, f"{args.query!r} | {flt.describe()}", args.json, flt=flt, mode=args.mode, index_size=size)
    return 0


def _read(path: str) -> bytes:
    if not Path(path).is_file():
        raise InvalidInputError(f"{path}: no such file")
    return Path(path).read_bytes()


def cmd_query_image(args: argparse.Namespace) -> int:
    flt = filter_from(args)
    with closing(_client(args)) as client:
        hits = client.search_image(_read(args.image), args.k, flt, index=args.index)
        size = None if hits or args.json else _index_size(client, args.index)
    print_hits(hits, f"image {args.image} | {flt.describe()}", args.json, flt=flt, mode="image", index_size=size)
    return 0


def cmd_query_similar(args: argparse.Namespace) -> int:
    flt = filter_from(args)
    with closing(_client(args)) as client:
        hits = client.search_similar(args.product_id, args.k, flt, index=args.index)
    print_hits(hits, f"more like {args.product_id} | {flt.describe()}", args.json, flt=flt, mode="similar")
    return 0


def cmd_query_classify(args: argparse.Namespace) -> int:
    labels = labels_from(args)
    with closing(_client(args)) as client:
        scores = client.classify(_read(args.image), labels, args.template or ())
    print_label_scores(scores, f"zero-shot: {args.image}", args.json)
    return 0


def cmd_query_info(args: argparse.Namespace) -> int:
    with closing(_client(args)) as client:
        models, indexes = client.list_models(), client.list_indexes()
    if args.json:
        print(json.dumps({"models": [vars(m) for m in models], "indexes": [vars(i) for i in indexes]}))
        return 0
    table = Table("model id", "version", "dim", "device", title="serving model")
    for m in models:
        table.add_row(m.model_id, m.version, str(m.dim), m.device)
    console.print(table)
    table = Table("index", "backend", "size", "dim", "model version", "default", title="indexes")
    for i in indexes:
        table.add_row(i.name, i.backend, str(i.size), str(i.dim), i.model_version, "yes" if i.is_default else "")
    console.print(table)
    return 0


def _client_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--address", help="query service host:port (default FASHION_QUERY_ADDRESS or 127.0.0.1:50052)")
    p.add_argument("--timeout", type=float, help="deadline of the call in seconds")
    p.add_argument("--json", action="store_true", help="print JSON")


def _search_options(p: argparse.ArgumentParser) -> None:
    _client_options(p)
    p.add_argument("--index", default="", help="index / collection name (default: the service's)")
    add_filter_options(p)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve-encoder", help="run the gRPC encoder service (CLIP, dynamic batching)")
    _server_options(p, 50051)
    p.set_defaults(handler=cmd_serve_encoder)

    p = sub.add_parser("serve-query", help="run the gRPC query service (search, classify, localize)")
    _server_options(p, 50052)
    p.add_argument("--encoder-address", help="host:port of the encoder service (default: encoder in-process)")
    p.set_defaults(handler=cmd_serve_query)

    q = sub.add_parser("query", help="ask a running query service").add_subparsers(dest="query_command",
                                                                                    required=True)
    p = q.add_parser("text", help="text search")
    p.add_argument("query")
    add_mode_option(p)
    _search_options(p)
    p.set_defaults(handler=cmd_query_text)

    p = q.add_parser("image", help="image search with a local image file")
    p.add_argument("image")
    _search_options(p)
    p.set_defaults(handler=cmd_query_image)

    p = q.add_parser("similar", help="more like this product")
    p.add_argument("product_id", type=int)
    _search_options(p)
    p.set_defaults(handler=cmd_query_similar)

    p = q.add_parser("classify", help="zero-shot classify an image against labels")
    add_classify_options(p)
    _client_options(p)
    p.set_defaults(handler=cmd_query_classify)

    p = q.add_parser("info", help="the serving model and the indexes")
    _client_options(p)
    p.set_defaults(handler=cmd_query_info)
