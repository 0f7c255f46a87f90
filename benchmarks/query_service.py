"""Query-service latency p50/p99 under 1, 8 and 32 concurrent clients (text search, k=10, with filters).

    python benchmarks/query_service.py [--model DIR] [--n 2000] [--requests 320] [--backend faiss|qdrant]

Two set-ups in one run: the encoder in the query service's process (the embedded default) and the encoder
as its own gRPC service (FASHION_ENCODER_ADDRESS). Servers run in their own processes (their own GIL, as in
production); the clients are threads here.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing as mp
import random
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import catalog_dir, model_dir, percentile, table

from fashion_core.ingest import index_catalog
from fashion_core.settings import Settings
from fashion_core.stores.backends import open_index
from fashion_core.stores.filters import SearchFilter
from services.channel import free_ports
from services.query_client import QueryClient
from services.wiring import local_encoder

QUERIES = ["red dress", "men's blue sports shoes", "black handbag", "white t-shirt", "brown leather watch",
           "green cap", "pink heels", "grey backpack"]
FILTERS = [None, SearchFilter.build(gender="Men"), SearchFilter.build(gender="Women", masterCategory="Footwear"),
           SearchFilter.build(baseColour="Red,Blue", year_min=2014)]


def _serve(kind: str, settings: dict, port: int, threads: int, ready) -> None:
    import torch

    from services.encoder_service import start_encoder_server
    from services.query_service import start_query_server

    torch.set_num_threads(threads)
    start = start_encoder_server if kind == "encoder" else start_query_server
    server, _ = start(Settings(**settings), address=f"127.0.0.1:{port}")
    ready.set()
    server.wait_for_termination(grace=1)


def spawn(kind: str, settings: dict, threads: int) -> tuple[mp.Process, str]:
    ctx = mp.get_context("spawn")
    (port,), ready = free_ports(1), ctx.Event()
    process = ctx.Process(target=_serve, args=(kind, settings, port, threads, ready), daemon=True)
    process.start()
    if not ready.wait(120):
        raise RuntimeError(f"{kind} service did not start")
    return process, f"127.0.0.1:{port}"


def measure(address: str, work: list[tuple[str, SearchFilter | None]], clients: int) -> tuple[float, float, float]:
    client = QueryClient(address)

    def one(item: tuple[str, SearchFilter | None]) -> float:
        start = time.perf_counter()
        client.search_text(item[0], 10, item[1])
        return time.perf_counter() - start

    for item in work[:4]:  # warm-up: index opened, model info fetched
        one(item)
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        latencies = list(pool.map(one, work))
    qps = len(work) / (time.perf_counter() - start)
    client.close()
    return qps, 1000 * percentile(latencies, 50), 1000 * percentile(latencies, 99)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="checkpoint dir (default: a small random CLIP)")
    parser.add_argument("--n", type=int, default=2000, help="catalog size")
    parser.add_argument("--requests", type=int, default=320, help="searches per row")
    parser.add_argument("--backend", choices=["faiss", "qdrant"], default="faiss")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads per server process")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    path = model_dir(args.model)
    settings = Settings(model=path, index_backend=args.backend, index_dir=Path(tempfile.mkdtemp()))
    encoder = local_encoder(settings)
    device = encoder.info.device
    index = open_index(settings)
    index_catalog(catalog_dir(args.n), encoder, index)
    index.close()
    del encoder
    rng = random.Random(0)
    work = [(rng.choice(QUERIES), rng.choice(FILTERS)) for _ in range(args.requests)]
    base = settings.model_dump(mode="json")

    rows = []
    encoder_process, encoder_address = spawn("encoder", base, args.threads)
    try:
        for label, extra in (("encoder in-process", {}), ("encoder service over gRPC",
                                                         {"encoder_address": encoder_address})):
            query_process, address = spawn("query", {**base, **extra}, args.threads)
            try:
                rows += [(label, clients, *measure(address, work, clients)) for clients in args.clients]
            finally:
                query_process.terminate()
                query_process.join(10)
    finally:
        encoder_process.terminate()
        encoder_process.join(10)
    table(f"query service: text search k=10 with filters, {args.n} items, {args.backend}, {device}, "
          f"{args.threads} torch thread(s) per server", ["set-up", "clients", "QPS", "p50 ms", "p99 ms"], rows)


if __name__ == "__main__":
    main()
