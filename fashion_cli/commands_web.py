"""`fashion-search serve-web`: the HTTP gateway (search page + JSON API) in front of the query service."""

from __future__ import annotations

import argparse
import logging

from fashion_cli.console import console
from fashion_cli.options import add_host_option, add_settings_options, settings_from

log = logging.getLogger(__name__)


def cmd_serve_web(args: argparse.Namespace) -> int:
    import uvicorn

    from services.gateway.app import create_app
    from services.gateway.grpc_port import GrpcQueryPort

    settings = settings_from(args)
    address = args.query_address or settings.query_address
    app = create_app(GrpcQueryPort(address, timeout_s=args.timeout), catalog_roots=args.catalog,
                     max_upload_bytes=args.max_upload_mb * 1024 * 1024)
    console.print(f"search page on http://{args.host}:{args.port}/ (query service at {address})")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve-web", help="serve the search page (talks to the query service over gRPC)")
    add_host_option(p)
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--query-address", help="query service host:port (default: settings.query_address)")
    p.add_argument("--catalog", action="append", default=[], required=True,
                   help="catalog directory whose images may be served (repeatable)")
    p.add_argument("--max-upload-mb", type=int, default=10)
    p.add_argument("--timeout", type=float, default=10.0, help="deadline for each query-service call, seconds")
    add_settings_options(p)
    p.set_defaults(handler=cmd_serve_web)
