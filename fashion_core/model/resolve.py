"""Which checkpoint to serve: explicit path or hub id > cached bootstrapped checkpoint > none yet."""

from __future__ import annotations

from pathlib import Path

from fashion_core.errors import NotFoundError
from fashion_core.settings import Settings

BOOTSTRAP_NAME = "bootstrap"


def bootstrap_dir(settings: Settings) -> Path:
    return settings.models_dir / BOOTSTRAP_NAME


def resolve_model(settings: Settings) -> str:
    """The checkpoint to load; NotFoundError when none is configured or cached (run bootstrap-model)."""
    if settings.model:
        return settings.model
    cached = bootstrap_dir(settings)
    if (cached / "config.json").is_file():
        return str(cached)
    raise NotFoundError("no model configured: set FASHION_MODEL to a CLIP checkpoint directory or hub id, "
                        "or run `fashion-search bootstrap-model`")
