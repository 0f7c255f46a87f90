"""`fashion-search local-stack`: the deployment's topology as local processes (logic in deploy/local/)."""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import signal
import time

from rich.table import Table

from deploy.local.stack import DEFAULT_REDIS_URL, LocalStack, StackConfig, settings_env
from fashion_cli.console import console
from fashion_cli.options import add_host_option, add_settings_options, settings_from

# What stops the stack like Ctrl-C: Ctrl-C, `kill`, the terminal closing or the ssh session dropping (SIGHUP),
# Ctrl-\ (SIGQUIT).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


def cmd_local_stack(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    # Absolute paths, so that the exports printed below work from any directory.
    update: dict[str, object] = {"index_dir": settings.index_dir.resolve(), "home": settings.home.resolve()}
    if args.qdrant_url:
        update["qdrant_url"] = args.qdrant_url
    elif args.index_backend is None and "FASHION_INDEX_BACKEND" not in os.environ and not settings.qdrant_url:
        update["index_backend"] = "faiss"  # embedded Qdrant allows one process per store
    settings = settings.model_copy(update=update)
    env = {**os.environ, **settings_env(settings)}
    config = StackConfig(redis_url=args.redis_url or DEFAULT_REDIS_URL, host=args.host,
                         encoder_port=args.encoder_port, query_port=args.query_port,
                         admin_port=None if args.no_admin else args.admin_port,
                         worker_concurrency=args.worker_concurrency, worker_pool=args.worker_pool,
                         log_dir=args.log_dir, ready_timeout_s=args.ready_timeout)

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    # Every signal that ends this process stops the stack: the children run in their own sessions, so none of
    # them reaches them, and they would outlive us holding their ports.
    previous = {sig: signal.signal(sig, interrupt) for sig in STOP_SIGNALS}
    stack = LocalStack(config, env)
    try:
        try:
            with console.status("starting encoder, query service, worker" + ("" if args.no_admin else ", admin")):
                stack.start()
            _print_stack(stack)
            while True:
                time.sleep(1.0)
                stack.check_alive()
        except KeyboardInterrupt:
            with contextlib.suppress(OSError):  # after SIGHUP the terminal may be gone
                console.print("stopping the local stack")
    finally:
        for sig in previous:  # a second Ctrl-C must not cut the shutdown short
            signal.signal(sig, signal.SIG_IGN)
        stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def _print_stack(stack: LocalStack) -> None:
    table = Table("part", "address", "pid", "log", title="local stack (Ctrl-C stops it)")
    for part in stack.parts:
        table.add_row(part.name, part.address, str(part.proc.pid), str(part.log_path))
    table.add_row("redis", stack.config.redis_url, "", "")
    console.print(table)
    # What a client shell needs to share the stack's index and queue.
    shared = {k: v for k, v in settings_env(stack.settings).items()
              if k in {"FASHION_INDEX_BACKEND", "FASHION_INDEX_DIR", "FASHION_QDRANT_URL"}}
    query = next(part.address for part in stack.parts if part.name == "query")
    shared.update(FASHION_REDIS_URL=stack.config.redis_url, FASHION_QUERY_ADDRESS=query)
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in shared.items())
    console.print(f"Use it from another shell:\n  export {exports}\n"
                  f"  fashion-search reindex CATALOG --index {stack.settings.index_name} --wait\n"
                  f'  fashion-search query text "red dress"', highlight=False, soft_wrap=True)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("local-stack", help="run encoder, query service, a Celery worker and admin as local processes")
    p.add_argument("--redis-url", help=f"Celery broker/backend (default {DEFAULT_REDIS_URL}; a loopback "
                                       "Redis is started when none listens)")
    add_host_option(p)
    p.add_argument("--encoder-port", type=int, default=50051, help="0 = any free port")
    p.add_argument("--query-port", type=int, default=50052)
    p.add_argument("--admin-port", type=int, default=50053)
    p.add_argument("--no-admin", action="store_true", help="leave the admin service out")
    p.add_argument("--worker-concurrency", type=int, default=1)
    p.add_argument("--worker-pool", default="solo", choices=["prefork", "solo", "threads"])
    p.add_argument("--qdrant-url", help="a Qdrant server (default: FAISS files under --index-dir)")
    p.add_argument("--log-dir", help="one log file per part (default $FASHION_HOME/local-stack)")
    p.add_argument("--ready-timeout", type=float, default=180.0, help="seconds to wait for every part")
    add_settings_options(p)
    p.set_defaults(handler=cmd_local_stack)

