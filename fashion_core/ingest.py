"""Catalog -> vectors -> index, in batches: the unit of work both the CLI and the Celery workers run.

Shaped like clip-retrieval's reader -> mapper -> writer: ``embed_products`` reads and maps one batch,
``VectorIndex.upsert`` writes it. Bad items are reported with their reason and the run goes on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fashion_core.catalog.reader import CatalogReadResult, SkippedRow, read_catalog
from fashion_core.catalog.schema import Product, product_problem
from fashion_core.errors import InvalidInputError, NotFoundError
from fashion_core.images import read_image
from fashion_core.model.base import Encoder
from fashion_core.stores.base import IndexMeta, VectorIndex

log = logging.getLogger(__name__)


@dataclass
class EmbeddedBatch:
    ids: list[int]
    vectors: np.ndarray
    payloads: list[dict[str, Any]]
    skipped: list[SkippedRow] = field(default_factory=list)


@dataclass
class IndexReport:
    indexed: int = 0
    skipped: list[SkippedRow] = field(default_factory=list)
    seconds: float = 0.0

    def reasons(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row in self.skipped:
            kind = row.reason.split(":", 1)[0]
            counts[kind] = counts.get(kind, 0) + 1
        return counts


def product_payload(product: Product) -> dict[str, Any]:
    payload = product.payload()
    payload["image"] = str(product.image_path) if product.image_path else ""
    return payload


def embed_products(products: Sequence[Product], encoder: Encoder) -> EmbeddedBatch:
    """Load and validate each image, embed the good ones in one call, report the bad ones (an id or a year out of
    range, a missing or unreadable image) at the product's styles.csv line."""
    images, good, skipped = [], [], []
    for product in products:
        if (problem := product_problem(product)) is not None:
            skipped.append(SkippedRow(product.line, str(product.id), problem))
            continue
        if product.image_path is None:
            skipped.append(SkippedRow(product.line, str(product.id), "missing image"))
            continue
        try:
            images.append(read_image(product.image_path))  # decoded here, sent as file bytes to a service
            good.append(product)
        except (InvalidInputError, NotFoundError) as exc:
            skipped.append(SkippedRow(product.line, str(product.id), f"unreadable image: {exc}"))
    vectors = encoder.encode_images(images) if images else np.zeros((0, encoder.info.dim), np.float32)
    return EmbeddedBatch([p.id for p in good], vectors, [product_payload(p) for p in good], skipped)


def index_meta(encoder: Encoder, name: str, backend: str) -> IndexMeta:
    info = encoder.info
    return IndexMeta(name=name, backend=backend, dim=info.dim, model_id=info.model_id, model_version=info.version)


def index_products(products: Sequence[Product], encoder: Encoder, index: VectorIndex, batch_size: int = 64,
                   on_batch: Callable[[int], None] | None = None) -> IndexReport:
    """Embed and upsert ``products`` batch by batch; ``on_batch(n)`` after each batch of n products."""
    start = time.perf_counter()
    index.create(index_meta(encoder, index.name, index.backend))
    report = IndexReport()
    for first in range(0, len(products), batch_size):
        batch = products[first:first + batch_size]
        embedded = embed_products(batch, encoder)
        index.upsert(embedded.ids, embedded.vectors, embedded.payloads)
        report.indexed += len(embedded.ids)
        report.skipped += embedded.skipped
        if on_batch:
            on_batch(len(batch))
    index.flush()
    report.seconds = time.perf_counter() - start
    return report


def index_catalog(catalog_dir: Path | str, encoder: Encoder, index: VectorIndex, batch_size: int = 64,
                  on_start: Callable[[CatalogReadResult], None] | None = None,
                  on_batch: Callable[[int], None] | None = None) -> IndexReport:
    """Read a catalog and index every valid product; rows skipped by the reader are in the report too."""
    catalog = read_catalog(catalog_dir)
    if on_start:
        on_start(catalog)
    report = index_products(catalog.products, encoder, index, batch_size, on_batch)
    report.skipped = catalog.skipped + report.skipped
    log.info("indexed %d products, skipped %d (%s)", report.indexed, len(report.skipped), report.reasons())
    return report
