"""The typed product record and the names of its filterable fields."""

from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from fashion_core.errors import InvalidInputError, NotFoundError

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


@dataclass(frozen=True)
class KeywordField:
    """A categorical field, filtered by equality / any-of, and what each edge calls it. The gRPC messages name it
    in snake_case (services/convert.py)."""

    name: str  # the catalog column: SearchFilter's and the facets' key, the JSON API's filter key
    flag: str  # the CLI's filter option, --{flag}
    label: str  # the search page's label (the gateway serves these in /api/meta)


# The one list of keyword filters, in the order the CLI and the page show them; "year" is filtered by range.
KEYWORDS: tuple[KeywordField, ...] = (
    KeywordField("gender", "gender", "Gender"),
    KeywordField("masterCategory", "master-category", "Category"),
    KeywordField("subCategory", "sub-category", "Sub-category"),
    KeywordField("articleType", "article-type", "Article type"),
    KeywordField("baseColour", "colour", "Colour"),
    KeywordField("season", "season", "Season"),
    KeywordField("usage", "usage", "Usage"),
)
KEYWORD_FIELDS: tuple[str, ...] = tuple(f.name for f in KEYWORDS)
FILTER_FIELDS: tuple[str, ...] = (*KEYWORD_FIELDS, "year")

# Product ids are plain positive 64-bit decimal integers: FAISS stores int64, the gRPC messages carry int64.
MAX_PRODUCT_ID = 2**63 - 1
# Years (catalog rows and year filters) fit the int32 of the gRPC messages with room to spare.
MIN_YEAR, MAX_YEAR = 1, 9999


def product_id_problem(value: object) -> str | None:
    """Why ``value`` is not a product id (an int or a string of ASCII digits, 1..2^63-1), or None if it is.

    The one check of ids: the catalog reader, the indexer, the query service and the web gateway use it.
    """
    if isinstance(value, str):
        if not (value.isascii() and value.isdigit()):
            return f"{value!r} is not a plain decimal integer"
        if len(value.lstrip("0")) > len(str(MAX_PRODUCT_ID)):  # before int(): no huge conversions
            return f"{value!r} is out of range 1..{MAX_PRODUCT_ID}"
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):  # numpy integers are ids too
        return f"{value!r} is not an integer"
    value = int(value)
    if not 1 <= value <= MAX_PRODUCT_ID:
        return f"{value} is out of range 1..{MAX_PRODUCT_ID}"
    return None


def parse_product_id(value: object, what: str = "product id") -> int:
    """``value`` as a product id. Raises InvalidInputError naming ``what`` when it is not one."""
    problem = product_id_problem(value)
    if problem is not None:
        raise InvalidInputError(f"{what}: {problem}")
    assert isinstance(value, (str, numbers.Integral))  # the two kinds product_id_problem accepts
    return int(value)


def year_problem(value: object) -> str | None:
    """Why ``value`` is not a year (an int in MIN_YEAR..MAX_YEAR), or None if it is."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        return f"{value!r} is not an integer"
    if not MIN_YEAR <= int(value) <= MAX_YEAR:
        return f"{value} is out of range {MIN_YEAR}..{MAX_YEAR}"
    return None


def product_problem(product: Product) -> str | None:
    """Why ``product`` cannot be indexed and served (its id or year out of range), or None; a skip reason."""
    problem = product_id_problem(product.id)
    if problem is not None:
        return f"bad id: {problem}"
    if product.year is not None and (problem := year_problem(product.year)) is not None:
        return f"bad year: {problem}"
    return None


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
    # Where the product was read: its 1-based line in styles.csv (0 when it was not read from one), so a problem
    # found later (an unreadable image) is reported at that line. Not part of the product: payloads and
    # equality ignore it.
    line: int = field(default=0, compare=False)

    def payload(self) -> dict[str, Any]:
        """Index payload: every catalog column, JSON-serialisable, no image path or line."""
        data = asdict(self)
        data.pop("image_path")
        data.pop("line")
        return data

    def image_file(self) -> Path:
        """The product's image path; raises NotFoundError for a product without one (the catalog reader reports
        those rows)."""
        if self.image_path is None:
            raise NotFoundError(f"product {self.id} has no image")
        return self.image_path

    @classmethod
    def from_payload(cls, payload: dict[str, Any], image_path: Path | None = None) -> Product:
        names = {f.name for f in fields(cls)} - {"image_path", "line"}
        values: dict[str, Any] = {k: payload.get(k) for k in names}  # checked where products are made
        return cls(**values, image_path=image_path)
