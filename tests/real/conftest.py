"""The real Fashion Product Images catalog, where this machine has it (``../shared`` or FASHION_CATALOG).

Every test here skips with the reason when the dataset is absent: the project never ships it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def real_catalog() -> Path:
    from fashion_core.catalog.real import HOW_TO_GET, find_real_catalog
    from fashion_core.settings import Settings

    path = find_real_catalog(Settings(catalog=os.environ.get("FASHION_CATALOG") or None))
    if path is None:
        pytest.skip(HOW_TO_GET)
    return path


@pytest.fixture(scope="session")
def real_model_dir(real_catalog: Path) -> Path:
    """The real recipe's model (training/real.py) from the shared cache; `scripts/test.sh` trains it before
    pytest (`fashion-search prepare-models`), so no test waits for it under its timeout."""
    from tests.conftest import shared_settings
    from training.real import RealRecipe
    from training.recipes import ensure_trained

    return ensure_trained(RealRecipe(real_catalog), shared_settings(), progress=False)
