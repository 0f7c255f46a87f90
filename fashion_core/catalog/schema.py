"""The typed product record and the names of its filterable fields."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

CSV_COLUMNS: tuple[str, ...] = (
    "id",
    "gender",
    "masterCategory",
    "subCategory",
    "articleType",
    "baseColour",
    "season",
    "year",
    "usage",
    "productDisplayName",
)

# Categorical fields filtered by equality / any-of; "year" is filtered by range.
KEYWORD_FIELDS: tuple[str, ...] = (
    "gender",
    "masterCategory",
    "subCategory",
    "articleType",
    "baseColour",
    "season",
    "usage",
)
FILTER_FIELDS: tuple[str, ...] = (*KEYWORD_FIELDS, "year")


@dataclass(frozen=True, slots=True)
class Product:
    id: int
    gender: str
    masterCategory: str  # noqa: N815 - the catalog's own column names
    subCategory: str  # noqa: N815
    articleType: str  # noqa: N815
    baseColour: str  # noqa: N815
    season: str
    year: int | None
    usage: str
    productDisplayName: str  # noqa: N815
    image_path: Path | None = None

    def payload(self) -> dict[str, Any]:
        """Index payload: every catalog column, JSON-serialisable, no image path."""
        data = asdict(self)
        data.pop("image_path")
        return data

    @classmethod
    def from_payload(cls, payload: dict[str, Any], image_path: Path | None = None) -> Product:
        names = {f.name for f in fields(cls)} - {"image_path"}
        return cls(**{k: payload.get(k) for k in names}, image_path=image_path)
