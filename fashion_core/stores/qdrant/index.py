"""Qdrant backend: embedded local mode on a path by default, a server when a URL is configured.

On a server, a new collection gets the settings ``ann_params.qdrant_params`` gives its expected size (HNSW m,
ef_construct and query ef; the full-scan threshold below which a filter's matches are scanned exactly;
oversampling), keyword and integer payload indexes (so a selective filter is planned from the index, not by
scanning), optional int8 scalar or x16 product quantization kept in RAM and searched with rescoring on the
original vectors, and shard/replica counts for a distributed cluster. ``benchmarks/ann_scale.py`` builds Qdrant's
engine from the same objects (``hnsw_config``, ``quantization_config``, ``PAYLOAD_INDEXES``). Local mode is exact
brute force in Python.

Companions (on a server, ``companions``): a filter on a broad field that follows the embedding
(``ann_params.BROAD_FIELDS``: gender, 50% men's products in their own regions of the space) walks the one graph in
the query's region, where few of its matches lie: recall@10 0.63-0.81 at 44k-100k, 0.93-0.97 with ACORN at a
fifth of the speed (README, "ANN at scale"). So the index keeps, beside its collection, one companion collection
per value of that field (``versions.companion_name``) holding that value's items with their own HNSW graph, as
FAISS keeps its per-gender partitions; a filter naming the field is searched in its values' companions (the same
filter, merged by score), every other query in the collection. Whether a collection keeps them is written in its
metadata when it is created (``COMPANION_KEY``) and read by every reader and writer, so processes with another
setting, and collections created before companions existed, agree. An upsert writes each item to its value's
companion and removes it from the others; a delete or drop reaches every companion; ``QdrantStore.switch`` moves
the companions' aliases with the index's in the same call. Lexical searches stay on the collection; a hybrid one
with a filter on the field is fused by the caller (``hybrid_in_engine``).
A writer resolves the index's name to its collection once per call and writes that collection and its
companions by their own names, so an update racing a switch lands whole in the version served when it started
(Qdrant has no compare-and-set on aliases); where that version was dropped meanwhile, the update is written again on
the version served then (``_in_one_version``). Qdrant's custom sharding (a shard key per value)
is the other way to hold them, one collection instead of several; embedded Qdrant has none, so it could not be
tested here, and every query without the filter would fan out to every shard.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import grpc
import numpy as np
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse

from fashion_core.catalog.schema import KEYWORD_FIELDS
from fashion_core.errors import InvalidInputError, NotFoundError, UnavailableError
from fashion_core.stores import ann_params
from fashion_core.stores.base import IndexMeta, SearchHit, check_batch, check_query
from fashion_core.stores.filters import SearchFilter
from fashion_core.stores.qdrant.lexical import (
    LEXICAL_FIELD,
    PAYLOAD,
    coverage,
    create_text_index,
    lacks_text_index,
    text_query,
    with_lexical_text,
)
from fashion_core.stores.versions import companion_name, companion_of, is_companion

log = logging.getLogger(__name__)
T = TypeVar("T")
COMPANION_KEY = "companion_field"  # collection metadata: the field its companions are kept on (absent: none)
UPDATE_TRIES = 3  # an update whose collection is switched away and dropped under it is written again on the new one


def match_condition(values: Sequence[str]) -> models.MatchValue | models.MatchAny:
    """``MatchValue`` for one value, ``MatchAny`` for several. A one-value ``MatchAny`` answered a 5% articleType
    or colour filter at half the speed of ``MatchValue`` on Qdrant's engine (100k real-derived items, 3 builds
    side by side, 2026-12-02: 3.8-6.3x against 8.7-13.0x brute force, the same hits; README, "Qdrant's
    collection settings")."""
    return models.MatchValue(value=values[0]) if len(values) == 1 else models.MatchAny(any=list(values))


def to_qdrant_filter(flt: SearchFilter | None) -> models.Filter | None:
    """The catalog filter as Qdrant's: one condition per field (its values OR-ed), AND-ed with the year range;
    None for no filter."""
    if flt is None or flt.is_empty:
        return None
    must: list[models.Condition] = [
        models.FieldCondition(key=name, match=match_condition(list(values))) for name, values in flt.equals.items()
    ]
    if flt.year_min is not None or flt.year_max is not None:
        must.append(models.FieldCondition(key="year", range=models.Range(gte=flt.year_min, lte=flt.year_max)))
    return models.Filter(must=must)


# A Qdrant collection's settings, built from ann_params.qdrant_params: QdrantIndex.create sends them to a server
# and benchmarks/ann_scale.py builds Qdrant's engine (Qdrant Edge) from the same objects.
# Keyword indexes on every filter field (the planner counts a filter's matches from them and scans them when few;
# Qdrant adds per-value graph links for values above the full-scan threshold), an integer index for year ranges.
PAYLOAD_INDEXES: dict[str, models.PayloadSchemaType] = {
    **{name: models.PayloadSchemaType.KEYWORD for name in KEYWORD_FIELDS}, "year": models.PayloadSchemaType.INTEGER}


def aliases_of(client: QdrantClient) -> dict[str, str]:
    """Every alias the client's Qdrant holds -> the collection it names."""
    return {a.alias_name: a.collection_name for a in client.get_aliases().aliases}


def collections_of(client: QdrantClient) -> set[str]:
    """The names of the collections the client's Qdrant holds (aliases are not collections)."""
    return {c.name for c in client.get_collections().collections}


def companions_in(client: QdrantClient, name: str, field: str | None = None) -> list[str]:
    """The collections and aliases named as companions of index ``name`` (on ``field``, or any field)."""
    return sorted(n for n in collections_of(client) | set(aliases_of(client)) if companion_of(name, n, field))


def hnsw_config(params: ann_params.QdrantParams) -> models.HnswConfigDiff:
    return models.HnswConfigDiff(m=params.hnsw_m, ef_construct=params.ef_construct,
                                 full_scan_threshold=params.full_scan_threshold_kb)


def quantization_config(quantization: str) -> models.QuantizationConfig | None:
    """int8 scalar or x16 product codes kept in RAM (the float32 originals, used to rescore, may stay on disk)."""
    if quantization == "scalar":
        return models.ScalarQuantization(scalar=models.ScalarQuantizationConfig(
            type=models.ScalarType.INT8, quantile=0.99, always_ram=True))
    if quantization == "product":
        return models.ProductQuantization(product=models.ProductQuantizationConfig(
            compression=models.CompressionRatio.X16, always_ram=True))
    return None


def connect(path: Path | str | None = None, url: str | None = None, api_key: str | None = None) -> QdrantClient:
    """A client of the server at ``url``, else of the embedded store at ``path`` (created if missing). Raises
    UnavailableError when another process (or another client in this one) holds the embedded store."""
    if url is not None:
        return QdrantClient(url=url, api_key=api_key)
    Path(path or ".").mkdir(parents=True, exist_ok=True)
    try:
        return QdrantClient(path=str(path))
    except RuntimeError as exc:  # portalocker: another process holds the local store
        raise UnavailableError(f"local Qdrant store {path} is in use by another process: {exc}") from exc


class QdrantIndex:
    backend = "qdrant"

    def __init__(self, collection: str, path: Path | str | None = None, url: str | None = None,
                 api_key: str | None = None, client: QdrantClient | None = None,
                 hnsw_ef: int | None = None, expected_size: int | None = None, quantization: str = "none",
                 shards: int = 1, replicas: int = 1, oversampling: float | None = None,
                 full_scan_threshold_kb: int | None = None, acorn_max_selectivity: float | None = None,
                 local: bool | None = None, close_client: bool = True, companions: bool | None = None) -> None:
        """On ``client`` when given (``local`` says whether it is embedded: by default it is treated as a
        server's), else on a new client of ``url`` or of the embedded store at ``path``. ``close`` closes the
        client unless ``close_client`` is False (a client shared by a store). ``companions`` (default: on a
        server, never embedded, where every search is exact anyway) keeps a companion collection per value of
        ``ann_params.BROAD_FIELDS[0]`` for the filters on it (module docstring)."""
        if quantization not in {"none", "scalar", "product"}:
            raise InvalidInputError(f"unknown Qdrant quantization {quantization!r}: none, scalar or product")
        self.collection = self.name = collection
        # The collection's settings by expected size (ann_params.qdrant_params, shared with the benchmark).
        self.expected_size = expected_size or 100_000
        self.params = ann_params.qdrant_params(self.expected_size, hnsw_ef=hnsw_ef,
                                               full_scan_threshold_kb=full_scan_threshold_kb,
                                               oversampling=oversampling)
        self._full_scan_threshold_kb = full_scan_threshold_kb  # None: by the vectors' dimension, at create
        self.hnsw_m, self.ef_construct, self.hnsw_ef = self.params.hnsw_m, self.params.ef_construct, self.params.hnsw_ef
        self.quantization, self.oversampling = quantization, self.params.oversampling
        # ACORN (Qdrant's filtered walk that also visits neighbours' neighbours) for filters on a field that
        # follows the embedding (ann_params.follows_embedding: gender, season, usage, a year range) keeping at most
        # this share: they stay the true top-k (real embeddings grown to 100k / 1M, gender=Men: recall@10 0.809 /
        # 0.926 without, 0.968 / 0.988 with; 100k season=Summer 0.802 / 1.000; benchmarks/ann_scale.py,
        # qdrant-hnsw-sq8+acorn). Other filters keep the plain walk or the payload index scan: at 1M ACORN cost
        # articleType and baseColour filters 6-7x their QPS for recall they had.
        self.acorn_max_selectivity = acorn_max_selectivity
        self.shards, self.replicas = shards, replicas
        self.local = (client is None and url is None) if local is None else local
        # The field a collection created here keeps companions on; recorded in its metadata (COMPANION_KEY), which
        # every reader and writer then follows, whatever its own setting.
        self._companions_wanted = ann_params.BROAD_FIELDS[0] if (
            not self.local if companions is None else companions) else None
        self._stored_companion_field: str | None = None
        self._known_companions: set[str] = set()  # companions seen to exist (refreshed by companions())
        self.client = client if client is not None else connect(path, url, api_key)
        self._close_client = close_client
        self._meta: IndexMeta | None = None

    def _exists(self) -> bool:
        try:
            return self.client.collection_exists(self.collection)
        except Exception as exc:  # connection errors come in several types depending on transport
            raise UnavailableError(f"Qdrant at {self.client.init_options.get('url')}: {exc}") from exc

    @property
    def meta(self) -> IndexMeta | None:
        if self._meta is None and self._exists():
            info = self.client.get_collection(self.collection)
            params = info.config.params.vectors
            dim = params.size if isinstance(params, models.VectorParams) else 0
            stored = dict(info.config.metadata or {})
            field = stored.get(COMPANION_KEY)
            self._stored_companion_field = field if isinstance(field, str) and field else None
            self._meta = IndexMeta(name=self.collection, backend=self.backend, dim=dim,
                                   model_id=stored.get("model_id", ""),
                                   model_version=stored.get("model_version", ""),
                                   extra=stored.get("extra", {}))
        return self._meta

    def _require(self) -> IndexMeta:
        meta = self.meta
        if meta is None:
            raise NotFoundError(f"index {self.collection!r} does not exist: run `fashion-search index` first")
        return meta

    def create(self, meta: IndexMeta) -> None:
        existing = self.meta
        if existing is not None:
            if existing.dim != meta.dim:
                raise InvalidInputError(f"index {self.collection!r} has dim {existing.dim}, vectors have {meta.dim}")
            return
        metadata = {"model_id": meta.model_id, "model_version": meta.model_version, "extra": meta.extra}
        if self._companions_wanted is not None:
            metadata[COMPANION_KEY] = self._companions_wanted
        self._create_collection(self.collection, meta.dim, metadata)
        create_text_index(self.client, self.collection)  # BM25 for search_lexical (local mode scores it too)
        self._meta = None

    def _create_collection(self, name: str, dim: int, metadata: dict[str, Any]) -> None:
        """A collection with this index's settings (an index's own or a companion)."""
        quantization = quantization_config(self.quantization)
        distributed = {} if self.local else {"shard_number": self.shards, "replication_factor": self.replicas}
        self.client.create_collection(
            name,
            vectors_config=models.VectorParams(size=dim, distance=models.Distance.DOT,
                                               on_disk=quantization is not None and not self.local),
            hnsw_config=hnsw_config(replace(self.params, full_scan_threshold_kb=self._full_scan_threshold_kb
                                            or ann_params.full_scan_kb_for(dim, self.expected_size))),
            quantization_config=quantization,
            **distributed,
            metadata=metadata,
        )
        if not self.local:  # payload indexes only exist on a server; local mode is brute force anyway
            for field, schema in PAYLOAD_INDEXES.items():
                self.client.create_payload_index(name, field, schema)

    @property
    def companion_field(self) -> str | None:
        """The field this index keeps companion collections on (module docstring), as recorded when its collection
        was created; before that, what creating it would record. None: no companions (embedded Qdrant, the
        setting off, or a collection created before companions existed), gender filters use ACORN."""
        return self._companions_wanted if self.meta is None else self._stored_companion_field

    def companions(self) -> list[str]:
        """The names (collections, or aliases where the index's name is one) of this index's companions."""
        field = self.companion_field
        if field is None:
            return []
        found = companions_in(self.client, self.collection, field)
        self._known_companions = set(found)
        return found

    def _target(self) -> str:
        """The collection this index's name stands for now: an alias's target, or the name itself."""
        return aliases_of(self.client).get(self.collection, self.collection)

    def _companion_for(self, value: str, dim: int, base: str, existing: set[str]) -> str:
        """The companion collection of collection ``base`` for ``value``, created when missing (and added to
        ``existing``) with an alias of it for every name serving ``base`` (so readers of a serving name find a
        value first written through the name or through the version)."""
        field = self.companion_field
        assert field is not None
        real = companion_name(base, field, value)
        if real in existing:
            return real
        aliases = aliases_of(self.client)
        if real not in collections_of(self.client):
            try:
                self._create_collection(real, dim, {"companion_of": base, "field": field, "value": value})
            except (ValueError, UnexpectedResponse) as exc:  # another writer created it first
                if real not in collections_of(self.client):
                    raise
                log.debug("companion %s exists: %s", real, exc)
        serving = sorted(a for a, target in aliases.items() if target == base and not is_companion(a))
        if serving:
            self.client.update_collection_aliases(change_aliases_operations=[models.CreateAliasOperation(
                create_alias=models.CreateAlias(collection_name=real, alias_name=companion_name(a, field, value)))
                for a in serving])
            self._follow_switches(serving, base, field, value)
        existing.add(real)
        return real

    def _follow_switches(self, serving: list[str], base: str, field: str, value: str) -> None:
        """After aliasing ``value``'s new companion for the names that served ``base``: a name a switch moved to
        another version meanwhile gets its companion alias pointed at that version's companion of ``value``, or
        removed where it has none (Qdrant has no compare-and-set on aliases; this narrows the race to the
        instant between the two calls)."""
        now, collections = aliases_of(self.client), collections_of(self.client)
        fixes: list[models.CreateAliasOperation | models.DeleteAliasOperation] = []
        for alias in serving:
            target, companion = now.get(alias), companion_name(alias, field, value)
            if target == base:
                continue
            theirs = companion_name(target, field, value) if target else None
            fixes.append(models.CreateAliasOperation(create_alias=models.CreateAlias(
                collection_name=theirs, alias_name=companion)) if theirs in collections else
                models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=companion)))
        if fixes:
            log.warning("a switch moved %s while a companion was added: companion aliases follow it", serving)
            self.client.update_collection_aliases(change_aliases_operations=fixes)

    def _upsert_companions(self, ids: Sequence[int], vectors: np.ndarray, payloads: Sequence[dict[str, Any]],
                           dim: int, base: str | None = None) -> None:
        """Each item into the companion of its value of collection ``base`` (default: the one the index's name
        stands for now), and out of every other companion of it (a value changed or removed leaves no copy
        behind to be found under the old value); an id named twice in the batch counts once, as its last row,
        as in the collection itself. Written by the collections' own names, never through an alias, so a
        switch during the update cannot send part of it to another version."""
        field = self.companion_field
        assert field is not None
        base = self._target() if base is None else base
        existing = set(companions_in(self.client, base, field))  # those another writer made included
        rows = sorted({int(i): r for r, i in enumerate(ids)}.values())  # the last row of each id
        by_value: dict[str, list[int]] = {}
        for row in rows:
            value = payloads[row].get(field)
            if isinstance(value, str) and value:
                by_value.setdefault(value, []).append(row)
        groups = {self._companion_for(value, dim, base, existing): members for value, members in by_value.items()}
        for name in sorted(existing):
            members = groups.get(name, [])
            if members:
                self.client.upsert(name, points=models.Batch(
                    ids=[int(ids[r]) for r in members],
                    vectors=np.asarray(vectors[members], dtype=np.float32).tolist(),
                    payloads=[payloads[r] for r in members]), wait=True)
            inside = set(members)
            elsewhere = [int(ids[r]) for r in rows if r not in inside]
            if elsewhere:
                self.client.delete(name, points_selector=models.PointIdsList(points=elsewhere), wait=True)

    def upsert(self, ids: Sequence[int], vectors: np.ndarray, payloads: Sequence[dict[str, Any]]) -> None:
        """Insert or replace items (ids int, vectors n x dim float32, payloads) in the collection and, where it
        keeps them, its companions, in one version (``_in_one_version``). Raises InvalidInputError on a malformed
        batch, NotFoundError when the index does not exist, UnavailableError when its name kept switching."""
        meta = self._require()
        check_batch(ids, vectors, payloads, meta.dim)
        if not len(ids):
            return
        batch = models.Batch(ids=[int(i) for i in ids], vectors=np.asarray(vectors, dtype=np.float32).tolist(),
                             payloads=with_lexical_text(payloads))
        if self.companion_field is None:  # one write, through the name: Qdrant resolves an alias atomically
            self.client.upsert(self.collection, points=batch, wait=True)
            return

        def write(base: str) -> None:
            self.client.upsert(base, points=batch, wait=True)
            self._upsert_companions(ids, vectors, payloads, meta.dim, base)
        self._in_one_version(write)

    def _in_one_version(self, write: Callable[[str], None]) -> None:
        """``write(base)`` on the collection the index's name stands for, which writes it and its companions by
        their own names, never through an alias: an update racing a switch lands whole in the version served when
        it started. When that collection stopped being one during the write (pruned after a switch, or a plain
        name that a first switch turned into an alias, whose companion names then led to the new version), the
        companions made for a version now gone are dropped and the whole write is done again on the collection
        the name stands for then (writes are idempotent). Raises UnavailableError after ``UPDATE_TRIES``."""
        for _ in range(UPDATE_TRIES):
            base = self._target()
            try:
                write(base)
            except (ValueError, UnexpectedResponse):  # the collection or a companion went during the write
                if base in collections_of(self.client):
                    raise
            else:
                if base in collections_of(self.client):
                    return
            self._drop_orphans(base)
            log.warning("index %s: collection %s was switched away and dropped during an update; writing it to the "
                        "version served now", self.collection, base)
        raise UnavailableError(f"index {self.collection!r} kept switching during an update ({UPDATE_TRIES} tries); "
                               "try again")

    def _drop_orphans(self, base: str) -> None:
        """Drop the companion collections of ``base`` when ``base`` is gone (neither a collection nor an alias):
        made by a write that raced its version's pruning, nothing would ever find or drop them."""
        field = self.companion_field
        collections = collections_of(self.client)
        if field is None or base in collections or base in aliases_of(self.client):
            return
        for name in companions_in(self.client, base, field):
            if name in collections:
                self.client.delete_collection(name)

    def flush(self) -> None:
        pass  # upserts are sent with wait=True

    def delete(self, ids: Sequence[int]) -> None:
        """Remove items by id from the collection and its companions (in one version, as ``upsert``); unknown
        ids are ignored. Raises NotFoundError when the index does not exist."""
        self._require()
        if not len(ids):
            return
        selector = models.PointIdsList(points=[int(i) for i in ids])
        field = self.companion_field
        if field is None:
            self.client.delete(self.collection, points_selector=selector)
            return

        def write(base: str) -> None:
            for name in [base, *companions_in(self.client, base, field)]:
                self.client.delete(name, points_selector=selector, wait=True)
        self._in_one_version(write)

    def search(self, vector: np.ndarray, k: int, flt: SearchFilter | None = None,
               exact: bool = False) -> list[SearchHit]:
        q = check_query(vector, k, self._require().dim)
        for settled in (False, True):
            field = self.companion_field
            values = flt.equals.get(field, ()) if field is not None and flt is not None else ()
            # In a companion the field's condition holds for every item: ACORN is asked for by the others alone.
            rest = flt.without(field) if flt is not None and field is not None and values else flt
            params = self._search_params(rest, exact, k)
            if not values:
                return self._query(self.collection, q, k, flt, params)
            assert field is not None
            found = self._search_companions(field, values, q, k, rest, params, settled)
            if found is not None:
                return found
            self._meta = None  # a companion is missing: the name may serve another version now; read it again
        raise AssertionError("unreachable: the settled pass always answers")

    def _search_params(self, flt: SearchFilter | None, exact: bool, k: int) -> models.SearchParams | None:
        # Local mode is always exact brute force and warns about search params, so send none there.
        if self.local:
            return None
        rescore = None if self.quantization == "none" else models.QuantizationSearchParams(
            rescore=True, oversampling=self.oversampling, ignore=exact)
        acorn = models.AcornSearchParams(enable=True, max_selectivity=self.acorn_max_selectivity) \
            if self.acorn_max_selectivity and ann_params.follows_embedding(flt) else None
        return models.SearchParams(exact=exact, hnsw_ef=max(self.hnsw_ef, k), quantization=rescore, acorn=acorn)

    def _search_companions(self, field: str, values: Sequence[str], q: np.ndarray, k: int, flt: SearchFilter | None,
                           params: models.SearchParams | None, settled: bool) -> list[SearchHit] | None:
        """The top k of ``values``' companions, merged by score; None when one is missing and not ``settled``
        (the caller reads the index's metadata again: a switch may have moved its name to a version without
        companions). Settled, a value without a companion has no items. ``flt`` is the filter without the
        field's condition, which every item of a companion meets: with it, Qdrant's planner counted the whole
        companion as the filter's matches and scanned them exactly wherever a segment held fewer vectors than the
        full-scan threshold (the real catalog, 40k 128-d items: every segment of every companion), slower than
        brute force; without it a gender filter alone is the companion's plain HNSW search."""
        found: list[SearchHit] = []
        for value in values:
            name = companion_name(self.collection, field, value)
            if name not in self._known_companions:
                self.companions()  # made since (a new value, a switch): asked again only for a value not seen
            present = name in self._known_companions
            if present:
                try:
                    found += self._query(name, q, k, flt, params)
                except (ValueError, UnexpectedResponse):
                    if name in self.companions():
                        raise
                    present = False  # gone with its version (a switch, a drop)
            if not present and not settled:
                return None
        return sorted(found, key=lambda hit: -hit.score)[:k]

    def _query(self, collection: str, q: np.ndarray, k: int, flt: SearchFilter | None,
               params: models.SearchParams | None) -> list[SearchHit]:
        response = self.client.query_points(collection, query=q.tolist(), query_filter=to_qdrant_filter(flt),
                                            limit=k, with_payload=PAYLOAD, search_params=params)
        return [SearchHit(id=int(p.id), score=float(p.score), payload=dict(p.payload or {}))
                for p in response.points]

    def _text_query(self, call: Callable[[], T]) -> T:
        """``call()``, a text query; a collection without the text index is an InvalidInputError saying so."""
        try:
            return call()
        except (ValueError, UnexpectedResponse, grpc.RpcError) as exc:
            if not lacks_text_index(exc):
                raise
            raise InvalidInputError(f"index {self.collection!r} was built without a lexical index: re-index it "
                                    "(`fashion-search reindex`) or search it in dense mode") from exc

    def search_lexical(self, query: str, k: int, flt: SearchFilter | None = None) -> list[SearchHit]:
        """True top-k by Qdrant's BM25 (``qdrant.lexical``) among points matching ``flt``, each with its
        ``coverage`` of the query (``qdrant.lexical.coverage``); points sharing no word with ``query`` are left
        out. Raises InvalidInputError for k <= 0 or a collection without a text index."""
        if k <= 0:
            raise InvalidInputError(f"k must be positive, got {k}")
        self._require()
        q = text_query(query) or text_query("probe")  # stop words only: still checks the text index, below
        response = self._text_query(lambda: self.client.query_points(
            self.collection, query=q, using=LEXICAL_FIELD, query_filter=to_qdrant_filter(flt), limit=k,
            with_payload=True))
        if text_query(query) is None:
            return []
        payloads = [dict(p.payload or {}) for p in response.points]
        texts = [str(payload.pop(LEXICAL_FIELD, "")) for payload in payloads]  # the analysed words stay inside
        shares = coverage(self.client, self.collection, query, texts) if payloads else np.zeros(0)
        return [SearchHit(id=int(p.id), score=float(p.score), payload=payload, coverage=float(c))
                for p, payload, c in zip(response.points, payloads, shares, strict=True)]

    def hybrid_in_engine(self, flt: SearchFilter | None) -> bool:
        """Whether ``search_hybrid`` ranks ``flt``'s dense part as ``search`` does: not for a filter on the
        companion field, whose dense ranking ``search`` takes from the companions, other collections than the one
        holding the text index; the caller then fuses ``search`` and ``search_lexical`` itself."""
        field = self.companion_field
        return field is None or flt is None or not flt.equals.get(field)

    def search_hybrid(self, vector: np.ndarray, query: str, k: int, flt: SearchFilter | None, depth: int,
                      rrf_c: int, weights: tuple[float, float] = (1.0, 1.0)) -> list[SearchHit]:
        """Top-k of the dense and the BM25 rankings (each the true top-``depth`` among points matching ``flt``)
        fused by Qdrant's reciprocal rank fusion (``qdrant.lexical``), one batch of queries; ``matched`` on
        each hit names the ranking(s) holding it. Qdrant weighs RRF by dividing ranks by the weight."""
        q = check_query(vector, k, self._require().dim)
        text = text_query(query)
        flt_q = to_qdrant_filter(flt)
        dense = models.Prefetch(query=q.tolist(), filter=flt_q, limit=depth)
        prefetch = [dense] if text is None else [
            dense, models.Prefetch(query=text, using=LEXICAL_FIELD, filter=flt_q, limit=depth)]
        fused = models.QueryRequest(prefetch=prefetch, query=models.RrfQuery(rrf=models.Rrf(
            k=rrf_c + 1, weights=list(weights[:len(prefetch)]))), limit=k, with_payload=PAYLOAD)
        parts = [models.QueryRequest(query=p.query, using=p.using, filter=flt_q, limit=depth, with_payload=False)
                 for p in prefetch]
        fused_r, *found = self._text_query(lambda: self.client.query_batch_points(self.collection, [fused, *parts]))
        members = [{int(p.id) for p in r.points} for r in found]
        names = ("dense", "lexical")
        return [SearchHit(id=int(p.id), score=float(p.score), payload=dict(p.payload or {}),
                          matched="+".join(n for n, ids in zip(names, members, strict=False) if int(p.id) in ids))
                for p in fused_r.points]

    def retrieve(self, ids: Sequence[int], with_vectors: bool = False) -> dict[int, tuple[dict[str, Any],
                                                                                       np.ndarray | None]]:
        self._require()
        points = self.client.retrieve(self.collection, ids=[int(i) for i in ids], with_payload=PAYLOAD,
                                      with_vectors=with_vectors)
        return {int(p.id): (dict(p.payload or {}),
                            np.asarray(p.vector, dtype=np.float32) if with_vectors else None) for p in points}

    def count(self) -> int:
        return int(self.client.count(self.collection, exact=True).count) if self.meta else 0

    def all_ids(self) -> set[int]:
        if self.meta is None:
            return set()
        ids: set[int] = set()
        offset = None
        while True:
            points, offset = self.client.scroll(self.collection, limit=1000, offset=offset, with_payload=False)
            ids.update(int(p.id) for p in points)
            if offset is None:
                return ids

    def facets(self) -> dict[str, list[str]]:
        if self.meta is None:
            return {name: [] for name in KEYWORD_FIELDS}
        return {name: sorted(str(h.value) for h in self.client.facet(self.collection, key=name, limit=10_000,
                                                                       exact=True).hits)
                for name in KEYWORD_FIELDS}

    def drop(self) -> None:
        for name in self.companions():
            self.client.delete_collection(name)
        self.client.delete_collection(self.collection)
        self._meta = None
        self._known_companions = set()

    def close(self) -> None:
        if self._close_client:
            self.client.close()
