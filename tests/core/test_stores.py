"""The store interface (``fashion_core/stores/store.py``): one contract, run against both stores (FAISS files and
embedded Qdrant, each in a tmp dir), plus what differs: the stamp readers compare, and the capabilities."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from fashion_core.errors import InvalidInputError, UnavailableError
from fashion_core.settings import Settings
from fashion_core.stores.backends import open_index, open_store
from fashion_core.stores.base import IndexMeta
from fashion_core.stores.faiss.store import FaissStore
from fashion_core.stores.qdrant.store import QdrantStore
from fashion_core.stores.store import IndexStore
from fashion_core.stores.versions import VERSION_SEP, is_version

DIM = 4


def _settings(tmp_path: Path, backend: str) -> Settings:
    return Settings(index_backend=backend, index_dir=tmp_path / "index", home=tmp_path / "home")


@pytest.fixture(params=["faiss", "qdrant"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[IndexStore]:
    opened = open_store(_settings(tmp_path, request.param))
    yield opened
    opened.close()


def _build(store: IndexStore, name: str, ids: list[int]) -> str:
    """A new version of ``name`` holding ``ids`` (not switched to)."""
    version = store.new_version(name)
    index = store.open(version)
    try:
        index.create(IndexMeta(name=version, backend=store.backend, dim=DIM))
        vectors = np.eye(DIM, dtype=np.float32)[[i % DIM for i in ids]]
        index.upsert(ids, vectors, [{"productDisplayName": f"red dress {i}"} for i in ids])
        index.flush()
    finally:
        index.close()  # the store's connection stays open
    return version


def _ids(store: IndexStore, name: str) -> set[int]:
    index = store.open(name)
    try:
        return index.all_ids()
    finally:
        index.close()


def test_versions_switch_list_prune_and_drop(store: IndexStore) -> None:
    assert (store.serving_names(), store.list_versions("shop"), store.serving_version("shop")) == ([], [], "shop")
    assert store.open("shop").meta is None  # not built yet

    first = _build(store, "shop", [1, 2])
    assert first.startswith("shop" + VERSION_SEP) and is_version(first)
    assert store.serving_names() == []  # a version is never served by its own name
    store.switch("shop", first)
    assert store.serving_names() == ["shop"] and store.serving_version("shop") == first
    assert _ids(store, "shop") == {1, 2}

    second = _build(store, "shop", [3])
    assert store.serving_version("shop") == first and _ids(store, "shop") == {1, 2}  # built, not switched
    store.switch("shop", second)
    assert store.serving_version("shop") == second and _ids(store, "shop") == {3}
    third = _build(store, "shop", [4])
    assert store.list_versions("shop") == [first, second, third]  # oldest first

    # all but the newest one, never the serving one
    assert store.prune("shop", keep=1) == [first]
    assert store.list_versions("shop") == [second, third]
    assert store.prune("shop", keep=0) == [] and store.list_versions("shop") == [second, third]
    store.drop(third)
    store.drop(third)  # gone already: nothing to do
    assert store.list_versions("shop") == [second] and _ids(store, "shop") == {3}

    plain = store.open("plain")
    plain.create(IndexMeta(name="plain", backend=store.backend, dim=DIM))
    plain.flush()
    plain.close()
    assert store.serving_names() == ["plain", "shop"] and store.serving_version("plain") == "plain"


@pytest.mark.parametrize("bad", ["", "..", "../shop", "a/b", "/etc", ".hidden", "x" * 300])
def test_a_name_that_is_not_one_is_invalid_input(store: IndexStore, bad: str) -> None:
    calls = [lambda: store.open(bad), lambda: store.new_version(bad), lambda: store.switch(bad, "v"),
             lambda: store.switch("shop", bad), lambda: store.serving_version(bad), lambda: store.list_versions(bad),
             lambda: store.drop(bad), lambda: store.prune(bad, 1), lambda: store.stamp(bad)]
    for call in calls:
        with pytest.raises(InvalidInputError):
            call()


def test_faiss_stamp_changes_with_a_switch(tmp_path: Path) -> None:
    store = open_store(_settings(tmp_path, "faiss"))
    assert store.stamp("shop") == ("shop", None)  # nothing serves it yet
    first = _build(store, "shop", [1])
    store.switch("shop", first)
    stamp = store.stamp("shop")
    assert stamp[0] == first and stamp[1] is not None and store.stamp("shop") == stamp  # unchanged: same stamp
    hash(stamp)
    second = _build(store, "shop", [2])
    assert store.stamp("shop") == stamp  # built, not switched: readers keep what they have
    store.switch("shop", second)
    assert store.stamp("shop") != stamp and store.stamp("shop")[0] == second


def test_qdrant_has_no_stamp_its_aliases_resolve_inside(tmp_path: Path) -> None:
    store = open_store(_settings(tmp_path, "qdrant"))
    try:
        first = _build(store, "shop", [1])
        store.switch("shop", first)
        reader = store.open("shop")
        assert store.stamp("shop") is None and _ids(store, "shop") == {1}
        store.switch("shop", _build(store, "shop", [2]))
        assert store.stamp("shop") is None and reader.all_ids() == {2}  # the open reader follows the switch
    finally:
        store.close()


def test_capabilities_and_no_connection_until_used(tmp_path: Path) -> None:
    faiss = open_store(_settings(tmp_path, "faiss"))
    assert isinstance(faiss, FaissStore) and faiss.root == tmp_path / "index" / "faiss"
    assert (faiss.backend, faiss.in_place_updates, faiss.concurrent, faiss.multi_process) == (
        "faiss", False, False, True)
    embedded = open_store(_settings(tmp_path, "qdrant"))
    assert isinstance(embedded, QdrantStore)
    assert (embedded.backend, embedded.in_place_updates, embedded.concurrent, embedded.multi_process) == (
        "qdrant", True, False, False)
    assert embedded.new_version("shop").startswith("shop" + VERSION_SEP)
    embedded.close()
    assert not (tmp_path / "index" / "qdrant").exists()  # a store asked only its capabilities opened nothing
    server = open_store(Settings(qdrant_url="http://127.0.0.1:1", index_dir=tmp_path / "index"))
    assert isinstance(server, QdrantStore) and (server.concurrent, server.multi_process) == (True, True)
    server.close()


def test_embedded_qdrant_one_client_per_path_shared_by_the_store(tmp_path: Path) -> None:
    """Indexes opened from the store share its client; ``open_index`` closes the store with the index."""
    settings = _settings(tmp_path, "qdrant")
    index = open_index(settings, "shop")
    index.create(IndexMeta(name="shop", backend="qdrant", dim=DIM))
    with pytest.raises(UnavailableError):
        open_store(settings).serving_names()  # the path is held
    index.close()  # ... until the index, and with it its store, is closed
    store = open_store(settings)
    try:
        a, b = store.open("shop"), store.open("other")
        assert a.client is b.client  # type: ignore[attr-defined]
        a.close()
        assert store.serving_names() == ["shop"]  # closing an index leaves the store's client open
    finally:
        store.close()
