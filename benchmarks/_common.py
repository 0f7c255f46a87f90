"""Shared helpers for the benchmark scripts: a model to measure, a synthetic catalog, timing, a table."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

console = Console(width=160)


def model_dir(path: str | None, image_size: int = 64) -> str:
    """The checkpoint to measure: the given one, or a small random CLIP built for the run."""
    if path:
        return path
    from training.architectures import TinyClipSpec, build_tiny_clip

    spec = TinyClipSpec(image_size=image_size, vision_width=128, vision_layers=4, text_width=128, text_layers=4,
                        projection_dim=128)
    return str(build_tiny_clip(Path(tempfile.mkdtemp()) / "bench-clip", spec))


def catalog_dir(n: int) -> Path:
    from training.synthetic_catalog import generate_catalog

    return generate_catalog(Path(tempfile.mkdtemp()) / "bench-catalog", n=n, seed=0)


def timed(fn: Callable[[], object], repeat: int = 1) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    t = Table(*columns, title=title)
    for row in rows:
        t.add_row(*(f"{c:.2f}" if isinstance(c, float) else str(c) for c in row))
    console.print(t)


