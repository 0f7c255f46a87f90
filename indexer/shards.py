"""Per-chunk shard files: what a worker writes and the single-writer finalize merges into the index.

One ``.npz`` per chunk, replaced atomically under a fixed name, so a redelivered chunk overwrites its own
shard instead of adding a second one. Payloads travel as JSON text inside the archive (no pickle).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class Shard:
    ids: list[int]
    vectors: np.ndarray
    payloads: list[dict[str, Any]]
    dim: int
    model_id: str
    model_version: str


def shard_path(staging: Path, chunk: int) -> Path:
    return staging / f"chunk-{chunk:06d}.npz"


def write_shard(staging: Path, chunk: int, shard: Shard) -> Path:
    staging.mkdir(parents=True, exist_ok=True)
    path = shard_path(staging, chunk)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as fh:
        np.savez(fh, ids=np.asarray(shard.ids, dtype=np.int64),
                 vectors=np.asarray(shard.vectors, dtype=np.float32).reshape(len(shard.ids), shard.dim),
                 payloads=np.array(json.dumps(shard.payloads, ensure_ascii=False)),
                 meta=np.array(json.dumps({"dim": shard.dim, "model_id": shard.model_id,
                                           "model_version": shard.model_version})))
    os.replace(tmp, path)
    return path


def remove_shard(staging: Path, chunk: int) -> None:
    """Delete a chunk's shard (and the staging dir once empty): for a chunk that finished after its job did."""
    shard_path(staging, chunk).unlink(missing_ok=True)
    for tmp in staging.glob(f".{shard_path(staging, chunk).name}.*.tmp"):
        tmp.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # other shards still there (or gone): finalize's cleanup owns the dir
        staging.rmdir()


def read_shard(path: Path) -> Shard:
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        return Shard(ids=[int(i) for i in data["ids"]], vectors=data["vectors"].astype(np.float32),
                     payloads=json.loads(str(data["payloads"])), **meta)


def iter_shards(staging: Path) -> Iterator[Shard]:
    for path in sorted(staging.glob("chunk-*.npz")):
        yield read_shard(path)
