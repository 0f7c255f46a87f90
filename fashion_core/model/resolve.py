"""Which checkpoint to serve: explicit path or hub id > the newest cached trained recipe > none yet.

Recipes (``training/recipes.py``) train into ``<models_dir>/<recipe>-<fingerprint>`` and record the newest
trained copy in ``<models_dir>/<recipe>.json``. The real-catalog recipe is preferred to the synthetic one.
"""

from __future__ import annotations

import json
from pathlib import Path

from fashion_core.errors import NotFoundError
from fashion_core.settings import Settings

# Served in this order when no model is configured: the model trained on the real catalog knows real products.
SERVING_PREFERENCE = ("real", "synthetic")


def recipe_pointer(settings: Settings, name: str) -> Path:
    return settings.models_dir / f"{name}.json"


def cached_recipe_model(settings: Settings, name: str) -> Path | None:
    """The newest trained checkpoint of recipe ``name`` in this cache, or None."""
    pointer = recipe_pointer(settings, name)
    try:
        folder = settings.models_dir / json.loads(pointer.read_text())["dir"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return folder if (folder / "config.json").is_file() else None


def resolve_model(settings: Settings) -> str:
    """The checkpoint to load; NotFoundError when none is configured or cached."""
    if settings.model:
        return settings.model
    for name in SERVING_PREFERENCE:
        cached = cached_recipe_model(settings, name)
        if cached is not None:
            return str(cached)
    raise NotFoundError("no model configured: set FASHION_MODEL to a CLIP checkpoint directory or hub id, or "
                        "train one (`fashion-search prepare-models`, or `fashion-search bootstrap-model` offline)")
