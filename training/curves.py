"""Loss and validation-metric curves per epoch as one PNG (matplotlib's Agg backend: no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def plot_curves(history: Sequence[dict[str, Any]], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    loss_keys = sorted({k for h in history for k in h if k.startswith("loss")})
    metric_keys = sorted({k for h in history for k in h if k.startswith("val_")})
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(10, 4))
    for key in loss_keys:
        ax_loss.plot(epochs, [h.get(key) for h in history], marker="o", label=key)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_title("training loss")
    ax_loss.legend()
    for key in metric_keys:
        ax_metric.plot(epochs, [h.get(key) for h in history], marker="o", label=key)
    ax_metric.set_xlabel("epoch")
    ax_metric.set_title("validation")
    ax_metric.legend()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
