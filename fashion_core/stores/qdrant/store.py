"""Qdrant store: collections and aliases over ONE client, of a server (``url``) or of an embedded store (``path``).

A version is a collection; a re-indexed name is a collection alias, switched with one
``update_collection_aliases`` call, which moves the aliases of the version's companion collections
(``QdrantIndex.companions``) with it. Aliases resolve inside Qdrant, so an index opened by name follows a switch
on its next request: readers never re-open (``stamp`` is None).

Embedded Qdrant allows one client per path (a lock file), so the store owns the one client and every index it
opens shares it; the client is made on first use, so a store that only answers its capabilities or names a
version never touches the path.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from qdrant_client import QdrantClient, models

from fashion_core.stores.qdrant.index import QdrantIndex, aliases_of, collections_of, companions_in, connect
from fashion_core.stores.store import prune_stale
from fashion_core.stores.versions import (
    check_index_name,
    is_companion,
    new_version_name,
    serving_only,
    version_prefix,
)

log = logging.getLogger(__name__)


class QdrantStore:
    backend = "qdrant"
    in_place_updates = True  # an update writes through the alias into the serving collection

    def __init__(self, path: Path | str | None = None, url: str | None = None, api_key: str | None = None,
                 shards: int = 1, replicas: int = 1, quantization: str = "none", hnsw_ef: int | None = None,
                 expected_size: int | None = None, acorn_max_selectivity: float | None = None,
                 oversampling: float | None = None, full_scan_threshold_kb: int | None = None,
                 companions: bool = True) -> None:
        self.path, self.url, self.api_key = path, url, api_key
        self.local = url is None
        self.concurrent = not self.local  # a server takes concurrent calls; the embedded store is plain Python
        self.multi_process = not self.local  # the embedded store locks its path to one client
        self.shards, self.replicas, self.quantization = shards, replicas, quantization
        self.hnsw_ef, self.expected_size, self.acorn_max_selectivity = hnsw_ef, expected_size, acorn_max_selectivity
        self.oversampling, self.full_scan_threshold_kb = oversampling, full_scan_threshold_kb
        self.companions = companions  # on a server only (QdrantIndex: embedded searches are exact)
        self._client: QdrantClient | None = None
        self._connecting = threading.Lock()

    @property
    def client(self) -> QdrantClient:
        """The store's client, made on first use. Raises UnavailableError when another process holds the
        embedded store."""
        with self._connecting:
            if self._client is None:
                self._client = connect(self.path, self.url, self.api_key)
            return self._client

    def open(self, name: str, *, closes_store: bool = False) -> QdrantIndex:
        return QdrantIndex(check_index_name(name), client=self.client, local=self.local, close_client=closes_store,
                           shards=self.shards, replicas=self.replicas, quantization=self.quantization,
                           hnsw_ef=self.hnsw_ef, expected_size=self.expected_size,
                           acorn_max_selectivity=self.acorn_max_selectivity, oversampling=self.oversampling,
                           full_scan_threshold_kb=self.full_scan_threshold_kb,
                           companions=self.companions and not self.local)

    def new_version(self, name: str) -> str:
        return check_index_name(new_version_name(check_index_name(name)))

    def serving_version(self, name: str) -> str:
        """The collection the alias ``name`` points at, else ``name`` itself."""
        name = check_index_name(name)
        return aliases_of(self.client).get(name, name)

    def stamp(self, name: str) -> None:
        check_index_name(name)
        return None  # aliases resolve inside Qdrant: a reader follows a switch without re-opening

    def serving_names(self) -> list[str]:
        return serving_only(collections_of(self.client) | set(aliases_of(self.client)))

    def list_versions(self, name: str) -> list[str]:
        prefix = version_prefix(check_index_name(name))
        return sorted(c for c in collections_of(self.client) if c.startswith(prefix) and not is_companion(c))

    def switch(self, name: str, version: str) -> None:
        check_index_name(name)
        check_index_name(version)
        client = self.client
        # The name and its companions' names move together: companions of the old version the new one lacks lose
        # their alias (a filter on that value then finds nothing, as the new version holds none).
        links = {name: version, **{companion.replace(version, name, 1): companion
                                   for companion in companions_in(client, version)}}
        # A plain collection under the name (from `fashion-search index`) or as its companion (one a writer made
        # through the plain name, even while this switch runs) cannot share its name with an alias: the first
        # switch drops them; every later one is a single alias update (a server applies its actions one by one and
        # stops at the first that fails, so none may fail).
        for _ in range(3):  # again after a pass: a writer may have added one while the name was being dropped
            plain = sorted(({*links} | set(companions_in(client, name))) & collections_of(client))
            for stale in plain:
                log.warning("dropping plain collection %r so that the name can become an alias", stale)
                client.delete_collection(stale)
            if not plain:
                break
        aliases = aliases_of(client)
        ops: list[models.DeleteAliasOperation | models.CreateAliasOperation] = [
            models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias))
            for alias in sorted({name, *companions_in(client, name)} & set(aliases))]
        ops += [models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name=target, alias_name=alias))
                for alias, target in links.items()]
        client.update_collection_aliases(change_aliases_operations=ops)
        log.info("Qdrant alias %s -> %s", name, version)

    def drop(self, version: str) -> None:
        check_index_name(version)
        for companion in set(companions_in(self.client, version)) & collections_of(self.client):
            self.client.delete_collection(companion)
        if self.client.collection_exists(version):
            self.client.delete_collection(version)

    def prune(self, name: str, keep: int) -> list[str]:
        return prune_stale(self, name, keep)

    def close(self) -> None:
        with self._connecting:
            client, self._client = self._client, None
        if client is not None:
            client.close()
