"""Training throughput (samples/s) of the fine-tuning step: fp32 vs mixed precision side by side on CUDA.

    python benchmarks/training_throughput.py [--steps 10] [--batch 64] [--image-size 64]
    python benchmarks/training_throughput.py --size vit-b32 --batch 256   # ViT-B/32 CLIP's cost (for a GPU)
    python benchmarks/training_throughput.py --towers --batch 128         # the real recipe's image towers

``--towers`` times one training step of the real recipe's dual encoder (ConvNeXt image tower, training/real.py)
beside a CLIP ViT of about the same cost (64 px, 8 px patches: 64 tokens, width 128, 4 layers) in one run,
and a supervised articleType probe can tell which learns faster per second (README: "The real-catalog model").

Uses a small randomly initialised CLIP (no download) so it runs anywhere; on CPU, AMP is skipped (the trainer
never uses it there).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from fashion_core.model.encoder import load_checkpoint
from training.architectures import SPECS, TinyClipSpec, build_tiny_clip
from training.data import preprocess_images
from training.embedding import image_features, text_features, tokenize
from training.losses import clip_loss
from training.optim import OptimConfig, build_optimizer


def run(model_dir: Path, device: torch.device, amp: bool, steps: int, batch: int) -> float:
    torch.manual_seed(0)
    model, processor = load_checkpoint(model_dir)
    model = model.to(device).train()
    size = processor.image_processor.crop_size["height"]
    from PIL import Image

    images = [Image.new("RGB", (size, size), (i * 3 % 255, 40, 90)) for i in range(batch)]
    pixels = preprocess_images(images, processor.image_processor).to(device)
    tokens = tokenize(processor.tokenizer, [f"a photo of a red dress number {i}" for i in range(batch)], 77, device)
    opt = build_optimizer(model, OptimConfig(lr=1e-4))
    scaler = torch.amp.GradScaler("cuda", enabled=amp)

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            loss = clip_loss(image_features(model, pixels).float(), text_features(model, tokens).float(),
                             model.logit_scale)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)

    for _ in range(2):  # warm-up
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - start)


def towers(batch: int, steps: int) -> None:
    from training.architectures import build_dual_encoder
    from training.real import REAL_SPEC

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    vit = TinyClipSpec(image_size=REAL_SPEC.image_size, patch_size=REAL_SPEC.image_size // 8, vision_width=128,
                       vision_layers=4, text_width=REAL_SPEC.text_width, text_layers=REAL_SPEC.text_layers,
                       heads=REAL_SPEC.heads, projection_dim=REAL_SPEC.projection_dim, max_text_len=40)
    table = Table(title=f"one training step, batch {batch}, {torch.get_num_threads()} CPU threads"
                        if device.type == "cpu" else f"one training step on {torch.cuda.get_device_name()}")
    for col in ("image tower", "samples/s", "vs ViT"):
        table.add_column(col, justify="right")
    with tempfile.TemporaryDirectory() as tmp:
        rates = {"CLIP ViT (64 tokens, width 128, 4 layers)": run(build_tiny_clip(Path(tmp) / "vit", vit), device,
                                                                   False, steps, batch),
                 f"ConvNeXt {REAL_SPEC.dims} x {REAL_SPEC.depths} (real recipe)": run(
                     build_dual_encoder(Path(tmp) / "cnx", REAL_SPEC), device, False, steps, batch)}
    base = next(iter(rates.values()))
    for name, rate in rates.items():
        table.add_row(name, f"{rate:.1f}", f"{rate / base:.2f}x")
    Console().print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--size", choices=sorted(SPECS), help="a preset architecture instead of the small default")
    parser.add_argument("--towers", action="store_true", help="the real recipe's ConvNeXt vs a ViT of its cost")
    args = parser.parse_args()
    if args.towers:
        towers(args.batch, args.steps)
        return
    console = Console()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    spec = SPECS[args.size] if args.size else TinyClipSpec(
        image_size=args.image_size, patch_size=8, vision_width=args.width, vision_layers=3, text_width=args.width,
        text_layers=3, projection_dim=args.width)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_tiny_clip(Path(tmp), spec)
        name = torch.cuda.get_device_name() if device.type == "cuda" else f"{torch.get_num_threads()} CPU threads"
        table = Table(title=f"training throughput on {name} (batch {args.batch}, {spec.image_size}px, "
                            f"vision {spec.vision_width}x{spec.vision_layers}, text {spec.text_width}x"
                            f"{spec.text_layers})")
        for col in ("precision", "samples/s", "vs fp32"):
            table.add_column(col, justify="right")
        fp32 = run(model_dir, device, amp=False, steps=args.steps, batch=args.batch)
        table.add_row("fp32", f"{fp32:.1f}", "1.00x")
        if device.type == "cuda":
            amp = run(model_dir, device, amp=True, steps=args.steps, batch=args.batch)
            table.add_row("AMP fp16", f"{amp:.1f}", f"{amp / fp32:.2f}x")
        else:
            table.add_row("AMP fp16", "skipped", "no CUDA: AMP is GPU-only")
        console.print(table)


if __name__ == "__main__":
    main()
