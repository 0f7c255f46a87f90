"""Raw model throughput vs. throughput through the gRPC encoder service (dynamic batching), side by side.

    python benchmarks/encoder_service.py                   # tiny random CLIP (32 px), images
    python benchmarks/encoder_service.py --size small      # random CLIP of ViT-S/32-like cost (224 px)
    python benchmarks/encoder_service.py --size vit-b32    # random CLIP of ViT-B/32's cost (for a GPU)
    python benchmarks/encoder_service.py --model DIR       # a real checkpoint (e.g. FashionCLIP saved locally)
    python benchmarks/encoder_service.py --modality text

The service runs in its own process (its own GIL, like in production); clients are threads here that each
send one item per call, the "many small callers" case batching is for. The ratio column divides each row's
items/s by the raw model's items/s at the service's max batch size (in-process, inputs already decoded where
the service decodes them itself), measured in the same time window: 1.0 means the service loses nothing to
gRPC, decoding and queueing. Absolute numbers mean little on a small CPU; the ratios are the figure.
"""

from __future__ import annotations

import argparse
import io
import multiprocessing as mp
import os
import re
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import grpc
from PIL import Image
from rich.console import Console
from rich.table import Table

from services.channel import free_ports

console = Console(width=160)


def build_model(size: str, out: Path) -> str:
    from training.architectures import SPECS, build_tiny_clip

    return str(build_tiny_clip(out / size, SPECS[size]))


def _serve(settings: dict, port: int, metrics_port: int, threads: int,
           ready: mp.Event) -> None:  # type: ignore[valid-type]
    import torch

    from fashion_core.settings import Settings

    torch.set_num_threads(threads)
    from services.encoder_service import start_encoder_server

    server, _ = start_encoder_server(Settings(**settings), address=f"127.0.0.1:{port}", metrics_port=metrics_port)
    ready.set()
    server.wait_for_termination(grace=1)


class ServerProcess:
    """An encoder service in a spawned process, with its metrics port for batch-size figures."""

    def __init__(self, settings: dict, threads: int) -> None:
        ctx = mp.get_context("spawn")
        self.port, self.metrics_port = free_ports(2)
        ready = ctx.Event()
        self.process = ctx.Process(target=_serve, args=(settings, self.port, self.metrics_port, threads, ready),
                                   daemon=True)
        self.process.start()
        if not ready.wait(120):
            raise RuntimeError("encoder service did not start")
        self.address = f"127.0.0.1:{self.port}"

    def batch_stats(self) -> tuple[float, float]:
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).read().decode()
        total = sum(float(v) for v in re.findall(r"^fashion_encoder_batch_size_sum\{[^}]*\} (\S+)$", text, re.M))
        count = sum(float(v) for v in re.findall(r"^fashion_encoder_batch_size_count\{[^}]*\} (\S+)$", text, re.M))
        return total, count

    def stop(self) -> None:
        self.process.terminate()
        self.process.join(10)


def payloads(modality: str, n: int) -> list:
    """n distinct inputs: JPEG bytes of real-looking synthetic products, or short product texts."""
    if modality == "text":
        colours, kinds = ["red", "navy blue", "black", "white", "olive"], ["dress", "running shoes", "watch", "kurta"]
        return [f"a {colours[i % 5]} {kinds[i % 4]} for {'men' if i % 2 else 'women'}, item {i}" for i in range(n)]
    from training.synthetic_catalog import generate_catalog

    catalog = generate_catalog(Path(tempfile.mkdtemp()) / "catalog", n=n, seed=3, image_size=224)
    return [p.read_bytes() for p in sorted((catalog / "images").glob("*.jpg"))][:n]


def raw_throughput(encoder, items: list, modality: str, batch: int, seconds: float) -> float:
    """items/s of the encoder in this process (preprocessing + forward) on ``items`` (texts or PIL images)."""
    encode = encoder.encode_texts if modality == "text" else encoder.encode_images
    encode(items[:batch])  # warm-up
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        lo = done % len(items)
        chunk = (items + items)[lo:lo + batch]
        encode(chunk)
        done += len(chunk)
    return done / (time.perf_counter() - start)


def processor_pixels(encoder):
    """A stand-in for the encoder's ClipPixels that runs transformers' CLIPImageProcessor, for comparison."""
    def pixels(images, device, dtype):
        return encoder.processor.image_processor(list(images), return_tensors="pt")["pixel_values"].to(device, dtype)
    return pixels


def preprocessing_ms(encoder, images: list, batch: int, rounds: int = 3) -> tuple[float, float]:
    """Best-of-rounds ms per image to turn decoded images into model input on the encoder's device:
    transformers' CLIPImageProcessor, then the encoder's own ClipPixels (what bounds a GPU's images/s)."""
    import torch

    out = []
    for pixels in (processor_pixels(encoder), encoder.pixels):
        best = float("inf")
        for _ in range(rounds):
            start = time.perf_counter()
            for lo in range(0, len(images), batch):
                pixels(images[lo:lo + batch], encoder.device, encoder.dtype)
            if encoder.device.type == "cuda":
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - start)
        out.append(best * 1000 / len(images))
    return out[0], out[1]


def service_throughput(address: str, items: list, modality: str, clients: int, seconds: float) -> tuple[float, float]:
    """items/s with ``clients`` threads each sending one item per call; also the p50 call latency (ms)."""
    from fashionsearch.v1 import encoder_pb2, encoder_pb2_grpc

    channel = grpc.insecure_channel(address)
    stub = encoder_pb2_grpc.EncoderServiceStub(channel)

    def request(i: int):
        item = items[i % len(items)]
        if modality == "text":
            return stub.EncodeTexts, encoder_pb2.EncodeTextsRequest(texts=[item])
        return stub.EncodeImages, encoder_pb2.EncodeImagesRequest(images=[item])

    for i in range(4):  # warm-up
        method, msg = request(i)
        method(msg, timeout=60)
    latencies: list[float] = []
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds

    def client(cid: int) -> None:
        i, mine = cid, []
        while time.perf_counter() < stop_at:
            method, msg = request(i)
            t0 = time.perf_counter()
            method(msg, timeout=60)
            mine.append(time.perf_counter() - t0)
            i += clients
        with lock:
            latencies.extend(mine)

    start = time.perf_counter()
    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    channel.close()
    return len(latencies) / elapsed, statistics.median(latencies) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="checkpoint directory (default: a random CLIP of --size)")
    parser.add_argument("--size", choices=["tiny", "small", "vit-b32"], default="tiny",
                        help="random model when no --model (vit-b32: the cost of a real ViT-B/32 CLIP)")
    parser.add_argument("--modality", choices=["image", "text"], default="image")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--seconds", type=float, default=5.0, help="measuring time per row")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads of the raw model and of the service (default 1: on a shared, "
                             "oversubscribed CPU more threads spin against each other and measure the scheduler)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)

    from fashion_core.settings import Settings
    from services.wiring import local_encoder

    work = Path(tempfile.mkdtemp(prefix="bench-encoder-"))
    model = args.model or build_model(args.size, work)
    items = payloads(args.modality, 256)
    # torch: the raw rows run its model and ClipPixels (a model with an ONNX export would get ONNX Runtime)
    encoder = local_encoder(Settings(model=model, device=args.device, encoder_runtime="torch"),
                            batch_size=args.max_batch)
    console.print(f"model {encoder.info.model_id} (dim {encoder.info.dim}, {encoder.info.device}), "
                  f"{args.modality}s, {os.cpu_count()} CPUs, {args.threads} torch thread(s), "
                  f"{args.seconds:.0f}s per row")
    # Raw takes decoded images: it is the model's rate; JPEG decoding is part of what the service adds.
    inputs = [Image.open(io.BytesIO(b)).convert("RGB") for b in items] if args.modality == "image" else items

    def raw_full() -> float:
        return raw_throughput(encoder, inputs, args.modality, args.max_batch, args.seconds / 2)

    # The machine's load drifts (other processes share these cores), so every row gets its own raw
    # figure, measured just before and just after it; its ratio divides by their mean.
    if args.modality == "image":
        hf_ms, own_ms = preprocessing_ms(encoder, inputs, args.max_batch)
        console.print(f"preprocessing ({inputs[0].size[0]}x{inputs[0].size[1]} images, batch {args.max_batch}, "
                      f"to {encoder.info.device}): CLIPImageProcessor {hf_ms:.2f} ms/image, the encoder's "
                      f"ClipPixels {own_ms:.2f} ms/image ({hf_ms / own_ms:.1f}x less)")
    table = Table("path", "clients", "items/s", "p50 call ms", "mean model batch",
                  f"raw batch-{args.max_batch} items/s (same window)", "ratio",
                  title=f"encoder throughput: raw model vs gRPC service (max batch {args.max_batch}, "
                        f"max wait {args.max_wait_ms:g} ms)")
    before = raw_full()
    raw_one = raw_throughput(encoder, inputs, args.modality, 1, args.seconds)
    ref = (before + raw_full()) / 2
    table.add_row("raw model, batch 1", "-", f"{raw_one:.1f}", "-", "1", f"{ref:.1f}", f"{raw_one / ref:.2f}")
    if args.modality == "image":  # the encoder's own preprocessing against transformers' processor, same window
        before, own = raw_full(), encoder.pixels
        encoder.pixels = processor_pixels(encoder)
        hf = raw_full()
        encoder.pixels = own
        ref = (before + raw_full()) / 2
        table.add_row(f"raw model, batch {args.max_batch}, CLIPImageProcessor preprocessing", "-", f"{hf:.1f}",
                      "-", str(args.max_batch), f"{ref:.1f}", f"{hf / ref:.2f}")
    base = {"model": model, "device": args.device, "encoder_queue_size": 1024}
    runs = [("service, dynamic batching", {"encoder_max_batch": args.max_batch,
                                           "encoder_max_wait_ms": args.max_wait_ms}, args.clients),
            ("service, no batching (max batch 1)", {"encoder_max_batch": 1, "encoder_max_wait_ms": 0.0},
             [max(args.clients)])]
    for label, batching, client_counts in runs:
        server = ServerProcess({**base, **batching}, args.threads)
        try:
            for clients in client_counts:
                raw_before = raw_full()
                stats_before = server.batch_stats()
                rate, p50 = service_throughput(server.address, items, args.modality, clients, args.seconds)
                stats_after = server.batch_stats()
                ref = (raw_before + raw_full()) / 2
                mean_batch = (stats_after[0] - stats_before[0]) / max(stats_after[1] - stats_before[1], 1)
                table.add_row(label, str(clients), f"{rate:.1f}", f"{p50:.1f}", f"{mean_batch:.1f}", f"{ref:.1f}",
                              f"{rate / ref:.2f}")
        finally:
            server.stop()
    console.print(table)


if __name__ == "__main__":
    main()
