"""The store interface: one backend's set of indexes, their versions and the names that serve them.

A full re-index builds a version (``<name>__v<stamp>``, :func:`versions.new_version_name`) next to the serving
index, then switches the serving name to it atomically; old versions are pruned. Each backend implements this
interface (``faiss.FaissStore``: directories and pointer files; ``qdrant.QdrantStore``: collections
and aliases over one client, embedded or a server), and ``backends.open_store`` picks one from the settings: no
code outside ``fashion_core/stores`` asks which backend it is. What differs between backends and matters to a
caller is a capability below (``in_place_updates``, ``concurrent``, ``multi_process``) or the ``stamp``.

Every method taking a name raises InvalidInputError when it is not an index name (a path, "..", empty, odd
characters: :func:`versions.check_index_name`), and UnavailableError when the store cannot be reached (a Qdrant
server down, an embedded Qdrant path held by another process).
"""

from __future__ import annotations

import logging
from collections.abc import Hashable
from typing import Protocol

from fashion_core.stores.base import VectorIndex
from fashion_core.stores.versions import stale_versions

log = logging.getLogger(__name__)


class IndexStore(Protocol):
    backend: str
    """The backend's name, as index metadata and job specs record it ("faiss", "qdrant")."""

    in_place_updates: bool
    """Whether an update job writes into the serving index (True: the name keeps serving it and readers follow at
    once) or into a copy that is then switched to (False: copy-on-write, readers never see a half-applied
    update)."""

    concurrent: bool
    """Whether the indexes it opens take calls from several threads at once (a server); when False a caller
    serving threads serialises the calls on each index."""

    multi_process: bool
    """Whether several processes may open the store at once (embedded Qdrant locks its path to one)."""

    def open(self, name: str, *, closes_store: bool = False) -> VectorIndex:
        """The index ``name`` (a serving name, followed to the version serving it, or a version itself); one
        not created yet has ``meta`` None until ``create``. The index shares the store's connection and is
        usable until the store closes; with ``closes_store`` closing the index closes the store too (for a
        caller that opens this one index). Raises InvalidInputError for a bad name, UnavailableError when the
        store cannot be reached."""
        ...

    def new_version(self, name: str) -> str:
        """A new version name for ``name`` (:func:`versions.new_version_name`); creates nothing: ``open`` it and
        ``create`` it to build it. Raises InvalidInputError when ``name`` or the version name is not a name."""
        ...

    def switch(self, name: str, version: str) -> None:
        """Point ``name`` at ``version`` atomically: readers see the old or the new version, never a mix. Raises
        InvalidInputError for a bad name."""
        ...

    def serving_version(self, name: str) -> str:
        """The version ``name`` resolves to now (``name`` itself for a plain index or one that does not exist).
        Raises InvalidInputError for a bad name."""
        ...

    def serving_names(self) -> list[str]:
        """The names the store serves, sorted: plain indexes and switched names, never their versions."""
        ...

    def list_versions(self, name: str) -> list[str]:
        """Every built version of ``name``, oldest first. Raises InvalidInputError for a bad name."""
        ...

    def drop(self, version: str) -> None:
        """Delete ``version`` (nothing when it does not exist). Raises InvalidInputError for a bad name."""
        ...

    def prune(self, name: str, keep: int) -> list[str]:
        """Drop all but the newest ``keep`` versions of ``name`` (the serving one is always kept; nothing when
        keep <= 0); returns what was dropped. Raises InvalidInputError for a bad name."""
        ...

    def stamp(self, name: str) -> Hashable | None:
        """What a reader keeps with an open index and compares before each request: a different stamp means it
        must re-open ``name`` to see what serves it now. None when a reader never needs to (the store resolves
        names itself on every call). Cheap enough to call per request. Raises InvalidInputError for a bad
        name."""
        ...

    def close(self) -> None:
        """Release the store's connection; the indexes opened from it must not be used after."""
        ...


def prune_stale(store: IndexStore, name: str, keep: int) -> list[str]:
    """Drop all but the newest ``keep`` versions of ``name`` in ``store`` (the serving one is always kept), through
    the store's own ``serving_version``, ``list_versions`` and ``drop``; returns what was dropped. Every store's
    ``prune`` is this."""
    old = stale_versions(store.list_versions(name), store.serving_version(name), keep)
    for version in old:
        store.drop(version)
    if old:
        log.info("dropped old versions of %s: %s", name, ", ".join(old))
    return old
