"""AdamW with FashionCLIP's defaults, and the learning-rate schedules."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

Schedule = Literal["cosine", "plateau", "constant"]


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 5e-5
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-6
    weight_decay: float = 0.2
    schedule: Schedule = "cosine"
    warmup_steps: int = 0
    plateau_patience: int = 1
    plateau_factor: float = 0.5
    grad_clip: float | None = 1.0
    accumulate: int = 1


def build_optimizer(model: torch.nn.Module, cfg: OptimConfig, extra: torch.nn.Module | None = None
                    ) -> torch.optim.AdamW:
    """Weight decay on weight matrices only: biases, norms, embeddings' scale and logit_scale are exempt.
    ``extra`` holds parameters trained beside the model but not saved with it (class proxies): no decay."""
    decay: list[torch.nn.Parameter] = []
    no_decay = list(extra.parameters()) if extra is not None else []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim < 2 or "logit_scale" in name else decay).append(param)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps)


def cosine_with_warmup(optimizer: torch.optim.Optimizer, warmup: int, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class Scheduler:
    """One interface over per-step (cosine) and per-epoch (plateau on a val metric, higher is better) schedules."""

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: OptimConfig, total_steps: int) -> None:
        self.kind = cfg.schedule
        self.optimizer = optimizer
        self._step: torch.optim.lr_scheduler.LRScheduler | None = None
        self._plateau: torch.optim.lr_scheduler.ReduceLROnPlateau | None = None
        if cfg.schedule == "cosine":
            self._step = cosine_with_warmup(optimizer, cfg.warmup_steps, total_steps)
        elif cfg.schedule == "plateau":
            self._plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode="max", factor=cfg.plateau_factor, patience=cfg.plateau_patience)
        elif cfg.schedule != "constant":
            raise ValueError(f"unknown schedule {cfg.schedule!r}")

    def after_step(self) -> None:
        if self._step is not None:
            self._step.step()

    def after_epoch(self, metric: float) -> None:
        if self._plateau is not None:
            self._plateau.step(metric)

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])
