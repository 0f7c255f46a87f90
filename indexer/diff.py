"""What changed between a catalog and what an index holds: ids to add, update and delete."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fashion_core.catalog.reader import SkippedRow, read_catalog
from fashion_core.ingest import product_payload
from fashion_core.settings import Settings
from fashion_core.stores.backends import open_index


@dataclass
class CatalogDiff:
    add: list[int] = field(default_factory=list)
    update: list[int] = field(default_factory=list)
    delete: list[int] = field(default_factory=list)
    # ids asked for (--add) that are not products of the catalog, with why: never counted as to add
    absent: list[SkippedRow] = field(default_factory=list)

    @property
    def upserts(self) -> list[int]:
        return self.add + self.update

    @property
    def empty(self) -> bool:
        return not (self.add or self.update or self.delete)


def diff_catalog(settings: Settings, catalog_dir: Path | str, index_name: str) -> CatalogDiff:
    """Compare ``styles.csv`` with the served index by id and payload.

    A product whose row changed (any column, or its image path) is an update; a product the reader now
    rejects, or that is gone from the file, is a delete. A changed image under the same path is not seen
    here: name those ids explicitly (``index-update --add``).
    """
    products = {p.id: p for p in read_catalog(catalog_dir).products}
    index = open_index(settings, index_name)
    try:
        indexed = index.all_ids() if index.meta is not None else set()
        stored = index.retrieve(sorted(indexed & products.keys())) if indexed else {}
    finally:
        index.close()
    diff = CatalogDiff()
    for pid, product in products.items():
        if pid not in indexed:
            diff.add.append(pid)
        elif stored.get(pid, ({}, None))[0] != product_payload(product):
            diff.update.append(pid)
    diff.delete = sorted(indexed - products.keys())
    diff.add.sort()
    diff.update.sort()
    return diff


def diff_ids(catalog_dir: Path | str, add: list[int], delete: list[int]) -> CatalogDiff:
    """The diff for ids named explicitly: those in ``add`` that are products of the catalog are to add (to
    re-embed), the others are ``absent`` with the reason (no row with that id, or the reader skipped its row)."""
    catalog = read_catalog(catalog_dir)
    products = {p.id for p in catalog.products}
    wanted = list(dict.fromkeys(add))
    return CatalogDiff(add=[i for i in wanted if i in products], delete=list(dict.fromkeys(delete)),
                       absent=catalog.not_products(wanted))
