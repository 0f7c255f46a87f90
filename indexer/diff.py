"""What changed between a catalog and what an index holds: ids to add, update and delete.

Both diffs are of an index that exists (NotFoundError otherwise: ``index-update`` changes an index, ``index``
or ``reindex`` builds one) and count only what would change it: an id asked to be deleted that the index does
not hold is reported (``not_indexed``), never counted, and an id asked both to be added and deleted is an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

from fashion_core.catalog.reader import SkippedRow, read_catalog
from fashion_core.errors import InvalidInputError, NotFoundError
from fashion_core.ingest import product_payload
from fashion_core.settings import Settings
from fashion_core.stores.backends import open_index
from fashion_core.stores.base import VectorIndex
from indexer.jobs import store_location
from indexer.pipeline import settings_storage


@dataclass
class CatalogDiff:
    add: list[int] = field(default_factory=list)
    update: list[int] = field(default_factory=list)
    delete: list[int] = field(default_factory=list)
    # ids asked for (--add) that are not products of the catalog, with why: never counted as to add
    absent: list[SkippedRow] = field(default_factory=list)
    # ids asked to be deleted (--delete) that the index does not hold: never counted as to delete
    not_indexed: list[int] = field(default_factory=list)

    @property
    def upserts(self) -> list[int]:
        return self.add + self.update

    @property
    def empty(self) -> bool:
        return not (self.add or self.update or self.delete)


def open_existing_index(settings: Settings, index_name: str) -> VectorIndex:
    """The index ``index_name``; NotFoundError (saying how to build one) when it does not exist."""
    index = open_index(settings, index_name)
    if index.meta is None:
        index.close()
        raise NotFoundError(f"index {index_name!r} does not exist ({store_location(**settings_storage(settings))}): "
                            "index-update changes an existing index; build it with `fashion-search reindex CATALOG "
                            f"--index {index_name}` (or `fashion-search index CATALOG --index-name {index_name}`), "
                            "or check --index and --index-dir")
    return index


def same_payload(stored: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Whether a stored payload is the catalog's. An image path stored relative (by an index built before image
    paths were made absolute: relative to the working directory of whoever wrote it) is the same image when it is
    a tail of the catalog's absolute path, so such an index does not look entirely changed; it keeps its relative
    paths until those products change or the next reindex."""
    if stored == wanted:
        return True
    old, new = str(stored.get("image") or ""), str(wanted.get("image") or "")
    if not old or not new or PurePath(old).is_absolute() or {**stored, "image": new} != wanted:
        return False
    tail = tuple(part for part in PurePath(old).parts if part not in (".", ".."))
    return bool(tail) and PurePath(new).parts[-len(tail):] == tail


def diff_catalog(settings: Settings, catalog_dir: Path | str, index_name: str) -> CatalogDiff:
    """Compare ``styles.csv`` with the served index by id and payload.

    A product whose row changed (any column, or its image path) is an update; a product the reader now
    rejects, or that is gone from the file, is a delete. A changed image under the same path is not seen
    here: name those ids explicitly (``index-update --add``). Image paths are compared absolute (the reader
    resolves them), so how the catalog path is spelled changes nothing. NotFoundError when the index does not
    exist.
    """
    products = {p.id: p for p in read_catalog(catalog_dir).products}
    index = open_existing_index(settings, index_name)
    try:
        indexed = index.all_ids()
        stored = index.retrieve(sorted(indexed & products.keys())) if indexed else {}
    finally:
        index.close()
    diff = CatalogDiff()
    for pid, product in products.items():
        if pid not in indexed:
            diff.add.append(pid)
        elif not same_payload(stored.get(pid, ({}, None))[0], product_payload(product)):
            diff.update.append(pid)
    diff.delete = sorted(indexed - products.keys())
    diff.add.sort()
    diff.update.sort()
    return diff


def diff_ids(settings: Settings, catalog_dir: Path | str, index_name: str, add: list[int],
             delete: list[int]) -> CatalogDiff:
    """The diff for ids named explicitly: those in ``add`` that are products of the catalog are to add, or to
    update (re-embed) when the index holds them already; the others are ``absent`` with the reason (no row with
    that id, or the reader skipped its row); those in ``delete`` that the index holds are to delete, the others
    ``not_indexed``. InvalidInputError for an id in both lists, NotFoundError when the index does not exist."""
    wanted, unwanted = list(dict.fromkeys(add)), list(dict.fromkeys(delete))
    both = sorted(set(wanted) & set(unwanted))
    if both:
        raise InvalidInputError(f"--add and --delete both name {', '.join(map(str, both))}: an id is either "
                                "re-embedded or deleted; name it in one of them")
    catalog = read_catalog(catalog_dir)
    products = {p.id for p in catalog.products}
    index = open_existing_index(settings, index_name)
    try:
        indexed = index.all_ids()
    finally:
        index.close()
    return CatalogDiff(add=[i for i in wanted if i in products and i not in indexed],
                       update=[i for i in wanted if i in products and i in indexed],  # re-embedded
                       delete=[i for i in unwanted if i in indexed], absent=catalog.not_products(wanted),
                       not_indexed=[i for i in unwanted if i not in indexed])
