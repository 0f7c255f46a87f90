"""A re-index reaches a running query service: after the switch it serves the new version, without a restart,
without ever serving a version still being built, and without reloading an index that did not change."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fashion_core.errors import NotFoundError
from fashion_core.settings import Settings
from fashion_core.stores import versions
from fashion_core.stores.base import IndexMeta
from fashion_core.stores.faiss import FaissIndex
from indexer.distributors import get_job, start_job
from services.query_client import QueryClient
from services.query_service import start_query_server
from tests.indexer.helpers import edit_catalog, loadable_ids


def _reindex(settings: Settings, catalog: Path, encoder) -> str:
    spec = start_job(settings, catalog, "shop", chunk_size=64, encoder=encoder)
    status = get_job(settings, spec.job_id)
    assert status.state == "succeeded", status.error
    return spec.version


def _size(client: QueryClient, name: str) -> int:
    return next(i.size for i in client.list_indexes() if i.name == name)


@pytest.fixture()
def shop(tmp_path, tiny_model_dir, tiny_encoder):
    settings = Settings(model=str(tiny_model_dir), index_backend="faiss", device="cpu",
                        index_dir=tmp_path / "index", home=tmp_path / "home", index_name="shop")
    server, servicer = start_query_server(settings, encoder=tiny_encoder)
    client = QueryClient(server.address)
    yield settings, servicer, client
    client.close()
    server.stop(0)
    servicer.indexes.close()


def test_running_service_serves_the_new_version_after_a_reindex(shop, tiny_encoder, synthetic_catalog,
                                                                 tmp_path) -> None:
    settings, servicer, client = shop
    everything = sorted(loadable_ids(synthetic_catalog))
    later = set(everything[::2])  # products only the second catalog has
    small = edit_catalog(synthetic_catalog, tmp_path / "small", drop=later)
    first = _reindex(settings, small, tiny_encoder)

    assert _size(client, "shop") == len(everything) - len(later)
    new_id = min(later)
    with pytest.raises(NotFoundError):
        client.get_product(new_id, index="shop")
    engine = servicer.indexes.engine("shop")
    assert servicer.indexes.engine("shop") is engine  # nothing changed: nothing reloaded

    # A version being built (its files written, the pointer not yet switched) is never served.
    building = FaissIndex(versions.faiss_root(settings) / versions.new_version_name("shop"))
    dim = engine.index.meta.dim
    building.create(IndexMeta(name="shop", backend="faiss", dim=dim))
    building.upsert([new_id], np.ones((1, dim), dtype=np.float32), [{"productDisplayName": "half-built"}])
    building.flush()
    assert _size(client, "shop") == len(everything) - len(later)
    assert servicer.indexes.engine("shop") is engine

    second = _reindex(settings, synthetic_catalog, tiny_encoder)
    assert second != first and versions.serving_version(settings, "shop") == second
    # The same running service, no restart: the new version's size, products and search results.
    assert _size(client, "shop") == len(everything)
    assert client.get_product(new_id, index="shop")["productDisplayName"] not in ("", "half-built")
    hits = client.search_similar(new_id, k=len(everything), index="shop")
    assert {h.id for h in hits} == set(everything) - {new_id}
    fresh = servicer.indexes.engine("shop")
    assert fresh is not engine and fresh.index.count() == len(everything)
    assert servicer.indexes.engine("shop") is fresh  # loaded once, then reused


def test_rewritten_plain_index_is_reloaded(shop, tiny_encoder, synthetic_catalog, tmp_path) -> None:
    """`fashion-search index` rewrites a plain index in place; meta.json, written last, marks it complete."""
    from fashion_core.ingest import index_catalog
    from fashion_core.stores.backends import open_index

    settings, _, client = shop
    everything = sorted(loadable_ids(synthetic_catalog))
    small = edit_catalog(synthetic_catalog, tmp_path / "small", drop=set(everything[10:]))
    index = open_index(settings)
    index_catalog(small, tiny_encoder, index)
    index.close()
    assert _size(client, "shop") == 10
    index = open_index(settings)
    index_catalog(synthetic_catalog, tiny_encoder, index)
    index.close()
    assert _size(client, "shop") == len(everything)
