"""Where the real "Fashion Product Images (small)" catalog is, when a machine has it.

The project never ships the dataset. Development machines and CI keep a copy beside the checkout
(``../shared/datasets/fashion-product-images-small``); users point ``FASHION_CATALOG`` or ``--catalog`` at
their own copy of the Kaggle download (or fetch it with ``fashion-search fetch-dataset``).
"""

from __future__ import annotations

from pathlib import Path

from fashion_core.errors import NotFoundError
from fashion_core.settings import Settings

DATASET_NAME = "fashion-product-images-small"
SHARED_RELATIVE = Path("..") / "shared" / "datasets" / DATASET_NAME
HOW_TO_GET = (
    "the real catalog (Kaggle 'paramaggarwal/fashion-product-images-small': styles.csv + images/) was not found; "
    "fetch it with `fashion-search fetch-dataset DIR` on a machine with network, then set FASHION_CATALOG=DIR "
    "or pass --catalog DIR"
)


def is_catalog(path: Path) -> bool:
    return (path / "styles.csv").is_file() and (path / "images").is_dir()


def candidate_dirs(settings: Settings | None = None) -> list[Path]:
    """Where to look, first match wins: the setting, then ``../shared`` beside the checkout or the cwd."""
    settings = settings or Settings()
    checkout = Path(__file__).resolve().parents[2]
    out = [settings.catalog] if settings.catalog else []
    return [*out, checkout / SHARED_RELATIVE, Path.cwd() / SHARED_RELATIVE]


def find_real_catalog(settings: Settings | None = None) -> Path | None:
    """The real catalog's directory, or None when this machine has none (callers explain ``HOW_TO_GET``).

    Raises NotFoundError when a catalog was named explicitly (FASHION_CATALOG / --catalog) and is not one: a
    mistyped path is an error, never a silent fallback to another catalog.
    """
    settings = settings or Settings()
    if settings.catalog is not None and not is_catalog(settings.catalog):
        raise NotFoundError(f"{settings.catalog}: no styles.csv with an images/ folder; {HOW_TO_GET}")
    for path in candidate_dirs(settings):
        if is_catalog(path):
            return path.resolve()
    return None
