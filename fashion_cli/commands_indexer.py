"""Indexing-job commands: reindex, index-update, status, resume, cancel, worker, serve-admin.

With ``--redis-url`` (or FASHION_REDIS_URL) jobs go to Celery workers; without, they run in this process.
Redis unreachable (after ``FASHION_INDEXER_REDIS_RETRY_S``) is a one-line error and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from fashion_cli.console import console
from fashion_cli.options import LISTEN_HOST, SETTINGS_OPTIONS, add_settings_options, settings_from
from fashion_core.catalog.schema import parse_product_id
from fashion_core.errors import InvalidInputError, NotFoundError
from fashion_core.settings import Settings
from indexer.jobs import TERMINAL_STATES, JobStatus

SETTINGS_FLAGS = ("redis_url", "encoder_address", "qdrant_url")


def _settings(args: argparse.Namespace) -> Settings:
    # through validation (a model_copy would skip it: --redis-url http://x failed later, inside redis-py)
    return settings_from(args, **{k: getattr(args, k, None) for k in SETTINGS_FLAGS})


def _job_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--redis-url", help="Celery broker/backend, e.g. redis://127.0.0.1:6379/0 (default: in-process)")
    p.add_argument("--encoder-address", help="host:port of the encoder service (in-process runs only)")
    p.add_argument("--qdrant-url", help="Qdrant server URL (default: FAISS files under --index-dir)")
    add_settings_options(p)


def _ids(text: str | None) -> list[int]:
    if not text:
        return []
    return [parse_product_id(part) for part in text.replace(" ", "").split(",") if part]


# -- status display --------------------------------------------------------------------------------------
def describe_items(status: JobStatus) -> str:
    """Indexed and skipped of every item the job accounts for (they add up once it is over), and how many of
    those were planned into chunks and rejected while planning (the reader's skips, ids not in the catalog)."""
    spec = status.spec
    return (f"{status.items_indexed} indexed, {status.items_skipped} skipped of {status.items_total} "
            f"({spec.items_total} planned, {spec.items_rejected} rejected while planning)")


def _describe(status: JobStatus) -> str:
    eta = f"{status.eta_s:.0f}s" if status.eta_s >= 0 else "?"
    return f"{status.state}: {describe_items(status)}, {status.rate_per_s:.1f} items/s, ETA {eta}"


def print_status(status: JobStatus, max_failures: int = 20) -> None:
    spec = status.spec
    table = Table(show_header=False, title=f"job {spec.job_id}")
    rows = [
        ("state", status.state + (f" ({status.error})" if status.error else "")),
        ("kind", f"{spec.kind} of {spec.catalog_dir}"),
        ("index", f"{spec.index} ({spec.backend}) <- {spec.version}"),
        ("writes to", spec.location),
        ("chunks", f"{status.chunks_done} done, {status.chunks_failed} failed of {spec.chunks_total}"),
        ("items", describe_items(status)),
        ("rate", f"{status.rate_per_s:.1f} items/s over {status.elapsed_s:.1f}s"),
        ("ETA", f"{status.eta_s:.0f}s" if status.eta_s >= 0 else "?"),
    ]
    if status.index_count >= 0:
        rows.append(("index now holds", str(status.index_count)))
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    if status.failures:
        fails = Table("product id", "line", "reason", title=f"failure report ({len(status.failures)} items)")
        for f in status.failures[:max_failures]:
            fails.add_row(f.product_id, str(f.line or ""), f.reason)
        console.print(fails)
        if len(status.failures) > max_failures:
            console.print(f"... and {len(status.failures) - max_failures} more (--json for all)")


def follow(settings: Settings, job_id: str, poll_s: float = 0.5) -> JobStatus:
    """A live progress bar over the job's chunks until it ends."""
    from indexer.distributors import open_store

    store = open_store(settings)
    status = store.get(job_id)
    columns = (TextColumn("{task.description}", style="bold", markup=False), BarColumn(), MofNCompleteColumn(),
               TextColumn("chunks"), TextColumn("{task.fields[info]}", markup=False), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(status.spec.index, total=status.spec.chunks_total or 1, info="")
        while True:
            status = store.get(job_id)
            progress.update(task, completed=status.chunks_complete, info=_describe(status))
            if status.state in TERMINAL_STATES:
                return status
            time.sleep(poll_s)


def _run(args: argparse.Namespace, settings: Settings, kind: str, upsert_ids: Iterable[int] | None = None,
         delete_ids: Iterable[int] = ()) -> int:
    from indexer.distributors import start_job

    in_process = not settings.redis_url
    spec = start_job(settings, args.catalog_dir, args.index or settings.index_name, background=in_process,
                     chunk_size=args.chunk_size, kind=kind, upsert_ids=upsert_ids, delete_ids=delete_ids)
    console.print(Text.assemble("job ", (spec.job_id, "bold"), f": {spec.kind} {spec.items_total} items in "
                                f"{spec.chunks_total} chunks -> {spec.version}",
                                "" if in_process else " (queued for the Celery workers)",
                                f"; {spec.items_rejected} rejected while planning" if spec.items_rejected else ""))
    if not (args.wait or in_process):
        console.print(f"follow it with: fashion-search status {spec.job_id} --redis-url {settings.redis_url}")
        return 0
    status = follow(settings, spec.job_id)
    print_status(status)
    return 0 if status.state == "succeeded" else 1


# -- commands --------------------------------------------------------------------------------------------
def cmd_reindex(args: argparse.Namespace) -> int:
    return _run(args, _settings(args), kind="reindex")


def cmd_index_update(args: argparse.Namespace) -> int:
    from indexer.diff import diff_catalog, diff_ids

    settings = _settings(args)
    name = args.index or settings.index_name
    for flag, given in (("--add", args.add), ("--delete", args.delete)):
        if given is not None and not _ids(given):
            raise InvalidInputError(f"{flag}: no product ids given (comma-separated, e.g. {flag} 15970,39386)")
    if args.add or args.delete:
        diff = diff_ids(settings, args.catalog_dir, name, _ids(args.add), _ids(args.delete))
    else:
        diff = diff_catalog(settings, args.catalog_dir, name)
    console.print(f"{len(diff.add)} to add, {len(diff.update)} to update, {len(diff.delete)} to delete"
                  + (f", {len(diff.absent)} not in the catalog" if diff.absent else "")
                  + (f", {len(diff.not_indexed)} not in index {name!r}" if diff.not_indexed else ""))
    if diff.not_indexed:
        console.print(f"  --delete: not in index {name!r}, nothing to delete: "
                      + ", ".join(map(str, diff.not_indexed)))
    for row in diff.absent:
        console.print(f"  {row.product_id}" + (f" (line {row.line})" if row.line else "") + f": {row.reason}")
    if diff.absent:
        raise InvalidInputError(f"--add: {len(diff.absent)} id(s) not in the catalog "
                                f"({', '.join(r.product_id for r in diff.absent)}); nothing was started")
    if diff.empty or args.dry_run:
        if diff.empty and not args.dry_run:
            console.print(f"nothing to do: index {name!r} left as it was (no new version)")
        return 0
    return _run(args, settings, kind="update", upsert_ids=diff.upserts, delete_ids=diff.delete)


def _drop_redis(args: argparse.Namespace) -> str:
    """How to run the command without Redis: drop the flag and/or unset the variable that gave the URL."""
    steps = []
    if getattr(args, "redis_url", None):
        steps.append("drop --redis-url")
    if os.environ.get("FASHION_REDIS_URL"):
        steps.append("unset FASHION_REDIS_URL")
    return " and ".join(steps) or "remove redis_url from the FASHION_CONFIG file"


@contextmanager
def _redis_hint(args: argparse.Namespace, settings: Settings) -> Iterator[None]:
    """A job not found where the command looked, with a hint where it may be instead. No Redis given: it may be a
    Redis job, so the error says to pass --redis-url. Redis given: if the job is one of this machine's in-process
    jobs (a file check), the error says so and how to drop the Redis URL."""
    try:
        yield
    except NotFoundError as exc:
        if not settings.redis_url:
            raise NotFoundError(f"{exc}; a job run by Celery workers is in Redis: pass --redis-url "
                                "redis://HOST:6379/0 (or set FASHION_REDIS_URL)") from exc
        from indexer.distributors import in_process_jobs_dir, is_in_process_job
        from indexer.jobs import redis_display

        if not is_in_process_job(settings, args.job_id):
            raise
        raise NotFoundError(f"{exc}; it is not in Redis at {redis_display(settings.redis_url)} but is one of this "
                            f"machine's in-process jobs (in {in_process_jobs_dir(settings)}): {_drop_redis(args)} "
                            "to reach it") from exc


def cmd_status(args: argparse.Namespace) -> int:
    from indexer.distributors import get_job

    settings = _settings(args)
    with _redis_hint(args, settings):
        status = follow(settings, args.job_id) if args.follow else get_job(settings, args.job_id)
    if args.json:
        console.print_json(json.dumps(status.as_dict()))
    else:
        print_status(status)
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    from indexer.distributors import resume_job

    settings = _settings(args)
    in_process = not settings.redis_url
    with _redis_hint(args, settings):
        status = resume_job(settings, args.job_id, background=in_process)
    console.print(f"job {args.job_id}: {status.state}, {status.chunks_complete} of {status.spec.chunks_total} "
                  "chunks already complete, the rest queued again")
    if not (args.wait or in_process):
        return 0
    status = follow(settings, args.job_id)
    print_status(status)
    return 0 if status.state == "succeeded" else 1


def cmd_cancel(args: argparse.Namespace) -> int:
    from indexer.distributors import cancel_job

    settings = _settings(args)
    with _redis_hint(args, settings):
        status = cancel_job(settings, args.job_id)
    console.print(f"job {args.job_id}: {status.state}")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if not settings.redis_url:
        raise InvalidInputError("a worker needs Redis: pass --redis-url or set FASHION_REDIS_URL")
    # The Celery app reads FASHION_* when imported: hand the flags over through the environment.
    handed_on = {*SETTINGS_FLAGS, *(option.field for option in SETTINGS_OPTIONS)}
    for key, value in settings.model_dump().items():
        if value is not None and key in handed_on:
            os.environ[f"FASHION_{key.upper()}"] = str(value)
    from indexer.celery_app import QUEUE, app

    argv = ["worker", "-Q", QUEUE, "-P", args.pool, "-l", args.loglevel]
    if args.concurrency:
        argv += ["-c", str(args.concurrency)]
    if args.hostname:
        argv += ["-n", args.hostname]
    app.worker_main(argv)
    return 0


def cmd_serve_admin(args: argparse.Namespace) -> int:
    from indexer.admin_service import serve_admin

    serve_admin(_settings(args), args.address, args.metrics_port)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reindex", help="full re-index into a new version, then switch the serving name to it")
    p.add_argument("catalog_dir")
    p.add_argument("--index", help="serving index name (default: --index-name / FASHION_INDEX_NAME)")
    p.add_argument("--chunk-size", type=int, help="products per task (default FASHION_INDEX_CHUNK_SIZE)")
    p.add_argument("--wait", action="store_true", help="follow the job live until it ends")
    _job_options(p)
    p.set_defaults(handler=cmd_reindex)

    p = sub.add_parser("index-update", help="add/update/delete products by diffing styles.csv or by id")
    p.add_argument("catalog_dir")
    p.add_argument("--index", help="serving index name (default: --index-name / FASHION_INDEX_NAME)")
    p.add_argument("--add", metavar="IDS", help="(re-)embed these comma-separated ids instead of diffing")
    p.add_argument("--delete", metavar="IDS", help="delete these comma-separated ids instead of diffing")
    p.add_argument("--dry-run", action="store_true", help="print the diff only")
    p.add_argument("--chunk-size", type=int)
    p.add_argument("--wait", action="store_true")
    _job_options(p)
    p.set_defaults(handler=cmd_index_update)

    p = sub.add_parser("status", help="an indexing job's progress and failure report")
    p.add_argument("job_id")
    p.add_argument("--follow", action="store_true", help="live progress bar until the job ends")
    p.add_argument("--json", action="store_true")
    _job_options(p)
    p.set_defaults(handler=cmd_status)

    p = sub.add_parser("resume", help="queue again the chunks of a job that failed while queueing (or is stuck)")
    p.add_argument("job_id")
    p.add_argument("--wait", action="store_true", help="follow the job live until it ends")
    _job_options(p)
    p.set_defaults(handler=cmd_resume)

    p = sub.add_parser("cancel", help="cancel an indexing job; the serving index stays as it was")
    p.add_argument("job_id")
    _job_options(p)
    p.set_defaults(handler=cmd_cancel)

    p = sub.add_parser("worker", help="run a Celery indexing worker (needs Redis)")
    p.add_argument("--concurrency", type=int, help="worker processes (default: CPU count)")
    p.add_argument("--pool", default="prefork", choices=["prefork", "solo", "threads"])
    p.add_argument("--loglevel", default="INFO")
    p.add_argument("--hostname", help="worker node name, e.g. w1@%%h")
    _job_options(p)
    p.set_defaults(handler=cmd_worker)

    p = sub.add_parser("serve-admin", help="run the gRPC admin service (StartReindex, GetJob, CancelJob)")
    p.add_argument("--address", default=f"{LISTEN_HOST}:50053",
                   help=f"host:port to listen on (default {LISTEN_HOST}:50053; 0.0.0.0:PORT: every interface)")
    p.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
    _job_options(p)
    p.set_defaults(handler=cmd_serve_admin)
