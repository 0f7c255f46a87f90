"""The store interface (``fashion_core/stores/store.py``): one contract, run against both stores (FAISS files and
embedded Qdrant, each in a tmp dir), plus what differs: the stamp readers compare, and the capabilities."""

from __future__ import annotations

from collections.abc import Callable, Iterator
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


def test_a_qdrant_switch_moves_the_companions_with_the_index(tmp_path: Path) -> None:
    """On a server each version has its gender companions (``QdrantIndex.companions``); the name's companions are
    aliases switched with the name in one call, an update through the serving name adds a new value's companion
    to the version it serves, pruning and drop remove a version's companions, and none is ever listed as an
    index or a version."""
    from qdrant_client import QdrantClient

    from fashion_core.stores.filters import SearchFilter
    from fashion_core.stores.versions import companion_name

    store = QdrantStore(path=tmp_path / "unused")
    store._client, store.local = QdrantClient(":memory:"), False  # searched like a server

    def build(ids: list[int], gender: str) -> str:
        version = store.new_version("shop")
        index = store.open(version)
        index.create(IndexMeta(name=version, backend="qdrant", dim=DIM))
        index.upsert(ids, np.eye(DIM, dtype=np.float32)[[i % DIM for i in ids]], [{"gender": gender} for _ in ids])
        index.close()
        return version

    def found(reader, gender: str) -> set[int]:
        return {h.id for h in reader.search(np.ones(DIM, np.float32) / 2, 10, SearchFilter.build(gender=gender))}

    plain = store.open("shop")  # `fashion-search index`: a plain collection and plain companions
    plain.create(IndexMeta(name="shop", backend="qdrant", dim=DIM))
    plain.upsert([9], np.eye(DIM, dtype=np.float32)[:1], [{"gender": "Girls"}])
    assert found(plain, "Girls") == {9} and plain.companions() == [companion_name("shop", "gender", "Girls")]
    plain.close()
    first = build([1, 2], "Men")
    store.switch("shop", first)  # the first switch drops the plain collection and its companions
    assert companion_name("shop", "gender", "Girls") not in {c.name for c in store.client.get_collections().collections}
    reader = store.open("shop")
    assert found(reader, "Girls") == set()
    assert found(reader, "Men") == {1, 2} and found(reader, "Women") == set()
    assert reader.companions() == [companion_name("shop", "gender", "Men")]
    second = build([3], "Women")
    assert found(reader, "Men") == {1, 2}  # built, not switched
    store.switch("shop", second)
    assert found(reader, "Women") == {3} and found(reader, "Men") == set()  # the open reader follows
    assert reader.companions() == [companion_name("shop", "gender", "Women")]
    # an update through the serving name: a new value's companion goes to the version served, aliased
    reader.upsert([4], np.eye(DIM, dtype=np.float32)[:1], [{"gender": "Boys"}])
    assert found(reader, "Boys") == {4}
    assert store.client.collection_exists(companion_name(second, "gender", "Boys"))
    assert store.serving_names() == ["shop"] and store.list_versions("shop") == [first, second]
    assert store.prune("shop", keep=1) == [first]
    names = {c.name for c in store.client.get_collections().collections}
    assert names == {second, companion_name(second, "gender", "Women"), companion_name(second, "gender", "Boys")}
    third = build([5], "Men")
    store.drop(third)
    assert {c.name for c in store.client.get_collections().collections} == names
    # a writer opened by the version's own name adds a value readers of the serving name then find
    by_version = store.open(second)
    by_version.upsert([6], np.eye(DIM, dtype=np.float32)[1:2], [{"gender": "Girls"}])
    assert found(reader, "Girls") == {6}
    by_version.close()
    # an index whose name another's companions start with keeps its own ("cat__by" beside "cat")
    other = store.open("shop__by")
    other.create(IndexMeta(name="shop__by", backend="qdrant", dim=DIM))
    other.upsert([8], np.eye(DIM, dtype=np.float32)[:1], [{"gender": "Men"}])
    store.switch("shop", build([10], "Men"))
    assert found(other, "Men") == {8} and found(reader, "Men") == {10}
    assert store.serving_names() == ["shop", "shop__by"]
    other.close()
    reader.close()
    store.close()


def test_a_companion_name_is_not_an_index_name() -> None:
    from fashion_core.stores.versions import check_index_name, companion_name, new_version_name, serving_only

    name = companion_name("shop", "gender", "Men / Women")
    assert name.startswith("shop__by_gender_") and len(name) == len("shop__by_gender_") + 12
    with pytest.raises(InvalidInputError, match="companion"):
        check_index_name(name)
    assert serving_only(["shop", name]) == ["shop"]
    for fine in ("shop__by", "shop__by_me", "a__by_b_c"):  # names that only look a little like one
        assert check_index_name(fine) == fine
    assert check_index_name(new_version_name("shop__by"))


def test_a_companion_added_while_a_switch_runs_follows_the_switch(tmp_path: Path) -> None:
    """Two races of a writer with a switch, forced by patching (found by a review session): a value's first item
    written through the serving name while a switch moves that name, and through a plain name while its first
    switch drops it. The companion alias must follow the switch (it kept the old version's), and the switch must
    not fail on a plain companion left under a name its aliases take (it failed, leaving the name unserved)."""
    from qdrant_client import QdrantClient

    from fashion_core.stores.filters import SearchFilter
    from fashion_core.stores.versions import companion_name

    store = QdrantStore(path=tmp_path / "unused")
    store._client, store.local = QdrantClient(":memory:"), False

    def build(ids: list[int], genders: list[str]) -> str:
        version = store.new_version("shop")
        index = store.open(version)
        index.create(IndexMeta(name=version, backend="qdrant", dim=DIM))
        index.upsert(ids, np.eye(DIM, dtype=np.float32)[[i % DIM for i in ids]],
                     [{"gender": genders[n % len(genders)]} for n, _ in enumerate(ids)])
        index.close()
        return version

    def aliases() -> dict[str, str]:
        return {a.alias_name: a.collection_name for a in store.client.get_aliases().aliases}

    # the first switch over a plain index, while a writer adds a value to it
    plain = store.open("shop")
    plain.create(IndexMeta(name="shop", backend="qdrant", dim=DIM))
    plain.upsert([1], np.eye(DIM, dtype=np.float32)[:1], [{"gender": "Men"}])
    writer = store.open("shop")
    writer.companions()
    first = build([1, 2, 3], ["Men", "Kids"])
    delete = store.client.delete_collection

    def delete_then_write(name: str, *args: object, **kwargs: object) -> bool:
        done = delete(name, *args, **kwargs)
        if name == "shop":  # the writer's companion step lands between the drop and the aliases
            writer._upsert_companions([9], np.eye(DIM, dtype=np.float32)[:1], [{"gender": "Kids"}], DIM)
        return done

    store.client.delete_collection = delete_then_write  # type: ignore[method-assign]
    store.switch("shop", first)
    store.client.delete_collection = delete  # type: ignore[method-assign]
    assert aliases()["shop"] == first
    assert aliases()[companion_name("shop", "gender", "Kids")] == companion_name(first, "gender", "Kids")
    writer.close()
    plain.close()

    # a new value through the serving name while a switch moves the name
    second = build([4, 5, 6], ["Men", "Kids"])
    in_place = store.open("shop")
    create = in_place._create_collection

    def create_then_switch(name: str, dim: int, metadata: dict) -> None:
        create(name, dim, metadata)  # the companion of the version served when the writer looked
        store.switch("shop", second)

    in_place._create_collection = create_then_switch  # type: ignore[method-assign]
    in_place.upsert([7], np.eye(DIM, dtype=np.float32)[:1], [{"gender": "Girls"}])
    assert aliases()["shop"] == second
    assert companion_name("shop", "gender", "Girls") not in aliases()  # second has no Girls: no stale alias
    reader = store.open("shop")
    kids = {h.id for h in reader.search(np.ones(DIM, np.float32), 10, SearchFilter.build(gender="Kids"))}
    assert kids == {5}
    assert reader.search(np.ones(DIM, np.float32), 10, SearchFilter.build(gender="Girls")) == []
    reader.close()
    in_place.close()
    store.close()


def test_an_update_racing_a_switch_lands_whole_in_one_version(tmp_path: Path) -> None:
    """A switch between an update's write to the collection and its write to the companions (forced by patching):
    the update lands in the collection and the companion of the version served when it started, and nothing of it
    in the version switched to (through the serving names, its companion part landed in the new version: the
    collection of one version and the companion of the other)."""
    from qdrant_client import QdrantClient

    from fashion_core.stores.filters import SearchFilter
    from fashion_core.stores.versions import companion_name

    store = QdrantStore(path=tmp_path / "unused")
    store._client, store.local = QdrantClient(":memory:"), False

    def build(ids: list[int]) -> str:
        version = store.new_version("shop")
        index = store.open(version)
        index.create(IndexMeta(name=version, backend="qdrant", dim=DIM))
        index.upsert(ids, np.eye(DIM, dtype=np.float32)[[i % DIM for i in ids]], [{"gender": "Men"} for _ in ids])
        index.close()
        return version

    first, second = build([1, 2]), build([3])
    store.switch("shop", first)
    writer = store.open("shop")
    upsert = store.client.upsert
    switched: list[str] = []

    def upsert_then_switch(name: str, *args: object, **kwargs: object) -> object:
        done = upsert(name, *args, **kwargs)
        if not switched:  # the first write of the update (its collection): the re-index switches now
            switched.append(name)
            store.switch("shop", second)
        return done

    store.client.upsert = upsert_then_switch  # type: ignore[method-assign]
    writer.upsert([7], np.eye(DIM, dtype=np.float32)[:1], [{"gender": "Men"}])
    store.client.upsert = upsert  # type: ignore[method-assign]
    assert len(switched) == 1

    def ids_in(collection: str) -> set[int]:
        points, _ = store.client.scroll(collection, limit=100)
        return {int(p.id) for p in points}

    assert ids_in(first) == {1, 2, 7} and ids_in(companion_name(first, "gender", "Men")) == {1, 2, 7}
    assert ids_in(second) == {3} and ids_in(companion_name(second, "gender", "Men")) == {3}
    reader = store.open("shop")  # serves the second version, whole: its filtered and unfiltered answers agree
    men = {h.id for h in reader.search(np.ones(DIM, np.float32), 10, SearchFilter.build(gender="Men"))}
    assert men == {h.id for h in reader.search(np.ones(DIM, np.float32), 10)} == {3}
    # a delete through the serving name reaches the second version's collection and companions
    reader.delete([3])
    assert ids_in(second) == set() and ids_in(companion_name(second, "gender", "Men")) == set()
    reader.close()
    writer.close()
    store.close()


def test_an_update_whose_version_is_dropped_under_it_is_written_to_the_version_served(tmp_path: Path) -> None:
    """Three more races (found by a review session, forced by patching): a re-index that switches and prunes the
    old version between an update's writes, and the same between a delete's resolving its version and writing; the
    first switch over a plain collection between an update's writes (its companion names then led to the new
    version: collection of one, companion of the other). Each update ends whole in the version served, and no
    companion of a dropped version is left behind (nothing would ever list or drop it)."""
    from qdrant_client import QdrantClient

    from fashion_core.stores.versions import companion_name

    store = QdrantStore(path=tmp_path / "unused")
    store._client, store.local = QdrantClient(":memory:"), False
    eye = np.eye(DIM, dtype=np.float32)

    def build(name: str, ids: list[int]) -> str:
        index = store.open(name)
        index.create(IndexMeta(name=name, backend="qdrant", dim=DIM))
        index.upsert(ids, eye[[i % DIM for i in ids]], [{"gender": "Men"} for _ in ids])
        index.close()
        return name

    def ids_in(collection: str) -> set[int]:
        points, _ = store.client.scroll(collection, limit=100)
        return {int(p.id) for p in points}

    def collections() -> set[str]:
        return {c.name for c in store.client.get_collections().collections}

    def on_first_upsert(action: Callable[[], object]) -> Callable[[], None]:
        upsert = store.client.upsert

        def patched(name: str, *args: object, **kwargs: object) -> object:
            done = upsert(name, *args, **kwargs)
            store.client.upsert = upsert  # type: ignore[method-assign]
            action()
            return done
        store.client.upsert = patched  # type: ignore[method-assign]
        return lambda: setattr(store.client, "upsert", upsert)

    # a switch and a prune between the update's collection write and its companion writes
    v1, v2 = build(store.new_version("shop"), [1, 2]), build(store.new_version("shop"), [3])
    store.switch("shop", v1)
    writer = store.open("shop")
    restore = on_first_upsert(lambda: (store.switch("shop", v2), store.prune("shop", keep=1)))
    writer.upsert([7], eye[:1], [{"gender": "Men"}])
    restore()
    assert collections() == {v2, companion_name(v2, "gender", "Men")}  # no companion of the pruned v1
    assert ids_in(v2) == ids_in(companion_name(v2, "gender", "Men")) == {3, 7}
    # a delete whose version is switched away and pruned after it was resolved
    v3 = build(store.new_version("shop"), [3, 7])
    resolve = writer._target

    def resolve_then_reindex() -> str:
        base = resolve()
        if base != v3:
            store.switch("shop", v3)
            store.prune("shop", keep=1)
        return base
    writer._target = resolve_then_reindex  # type: ignore[method-assign]
    writer.delete([7])
    assert ids_in(v3) == ids_in(companion_name(v3, "gender", "Men")) == {3}
    writer.close()

    # the first switch over a plain collection between an update's two writes
    plain = build("mall", [1, 2])
    v4 = build(store.new_version("mall"), [3])
    writer = store.open(plain)
    restore = on_first_upsert(lambda: store.switch("mall", v4))
    writer.upsert([7], eye[:1], [{"gender": "Men"}])
    restore()
    assert ids_in(v4) == ids_in(companion_name(v4, "gender", "Men")) == {3, 7}
    writer.close()
    store.close()
