"""Product schema, the "Fashion Product Images" reader and the synthetic catalog generator."""

from fashion_core.catalog.reader import CatalogReadResult, SkippedRow, read_catalog
from fashion_core.catalog.schema import CSV_COLUMNS, FILTER_FIELDS, KEYWORD_FIELDS, Product

__all__ = [
    "CSV_COLUMNS",
    "FILTER_FIELDS",
    "KEYWORD_FIELDS",
    "CatalogReadResult",
    "Product",
    "SkippedRow",
    "read_catalog",
]
