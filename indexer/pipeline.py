"""The three steps of an indexing job, independent of who runs them (Celery workers or this process).

- ``plan_job``: read the catalog, split product ids into chunks, record the job (reader rejects go straight
  into the failure report).
- ``run_chunk``: read -> embed -> write for one chunk: load and validate the images, embed them, write one
  shard file. Workers never open the index: embedded Qdrant allows one process per path and FAISS is a set of
  files, so a single writer (``finalize``) merges the shards. A redelivered chunk rewrites its own shard.
- ``finalize``: merge the shards into the version being built, flush, then switch the serving name to it
  (only when every chunk succeeded) and prune old versions. A failed or cancelled job drops what it built.
  Every step goes through one index store (``backends.open_store``), opened for the finalize and closed after.

Point ids are the product ids, and a build goes to its own versioned collection/dir, so re-running a chunk
or the whole finalize never duplicates an item.

A job carries what it was asked for (``JobSpec``), resolved by the planner from its settings, and whoever runs
it (a Celery worker, or this process) holds it against its own settings (``check_job``) before writing a shard
or opening the index store. The runner's configuration is authoritative for storage: the index location (the
backend, ``index_dir`` with its staging dir, ``qdrant_url``) and the model are *checked*, and a job asking for
others is refused (failed, with both values and what to change) before anything is written. The build settings
of the new version (``HONOURED_SETTINGS``: the ANN type and quantization, Qdrant shards/replicas) are
*honoured*: they only shape the version the job builds.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from fashion_core.catalog.reader import read_catalog
from fashion_core.catalog.schema import Product, parse_product_id
from fashion_core.errors import (
    DeadlineExceededError,
    InvalidInputError,
    NotFoundError,
    ResourceExhaustedError,
    UnavailableError,
)
from fashion_core.ingest import embed_products
from fashion_core.model.base import Encoder, ModelInfo, weights_version
from fashion_core.model.resolve import resolve_model
from fashion_core.settings import Settings
from fashion_core.stores.backends import backend, open_store
from fashion_core.stores.base import IndexMeta, VectorIndex, stored_vector
from fashion_core.stores.store import IndexStore
from fashion_core.stores.versions import check_index_name
from indexer.jobs import TERMINAL_STATES, Failure, JobSpec, JobStatus, JobStore, store_location
from indexer.shards import Shard, iter_shards, remove_shard, write_shard

log = logging.getLogger(__name__)

# Failures worth retrying with backoff: the encoder service or the index is unreachable or busy.
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (UnavailableError, ResourceExhaustedError, DeadlineExceededError)


def backoff_s(attempt: int, base: float = 1.0, cap: float = 60.0) -> float:
    return min(cap, base * 2 ** attempt)


# Settings fields a job carries and its runner honours: they only shape the version the job builds.
HONOURED_SETTINGS = ("faiss_index_type", "faiss_quantization", "qdrant_quantization", "qdrant_shards",
                     "qdrant_replicas", "index_expected_size", "qdrant_full_scan_threshold_kb")


class JobRefusedError(InvalidInputError):
    """The job asks for an index location or a model other than its runner's: it is failed, nothing written."""


# -- what a job asks for, against who runs it --------------------------------------------------------------
def job_model(settings: Settings, model: ModelInfo | None = None) -> tuple[str, str]:
    """The model a job is planned for: ``model`` when the planner has the encoder at hand, else the checkpoint
    ``settings`` resolve to, with its weights' version for a local folder (hub ids: no version without loading;
    an encoder service: ("", "")), or ("", "") when they resolve to none (the runner's own model is then used)."""
    if model is not None:
        return model.model_id, model.version
    if settings.encoder_address:
        return "", ""
    try:
        name = resolve_model(settings)
    except NotFoundError:
        return "", ""
    path = Path(name)
    return (str(path.resolve()), weights_version(path)) if path.is_dir() else (name, "")


def _storage(backend_name: str, index_dir: str, qdrant_url: str) -> dict[str, str]:
    return {"backend": backend_name, "index_dir": index_dir, "qdrant_url": qdrant_url}


def settings_storage(settings: Settings) -> dict[str, str]:
    """Where ``settings`` make the index store (and the jobs' staging dirs) write."""
    return _storage(backend(settings), str(settings.index_dir.resolve()), settings.qdrant_url or "")


_STORAGE_ENV = {"backend": "FASHION_INDEX_BACKEND", "index_dir": "FASHION_INDEX_DIR",
                "qdrant_url": "FASHION_QDRANT_URL"}
_STORAGE_FLAG = {"backend": "--backend", "index_dir": "--index-dir", "qdrant_url": "--qdrant-url"}


def check_job(spec: JobSpec, settings: Settings, model: ModelInfo | None = None) -> None:
    """Raises JobRefusedError, naming both values and what to change, when ``spec`` asks for another index
    location than ``settings`` write to, or (``model`` given: the runner's encoder) another model."""
    if spec.index_dir:
        mine = settings_storage(settings)
        asked = _storage(spec.backend, spec.index_dir, spec.qdrant_url)
        if mine != asked:
            differ = [key for key in mine if mine[key] != asked[key]]
            start = " ".join(f"{_STORAGE_ENV[key]}={asked[key] or '(unset)'}" for key in differ)
            give = " ".join(f"{_STORAGE_FLAG[key]} {mine[key] or '(none)'}" for key in differ)
            raise JobRefusedError(
                f"job {spec.job_id} refused: this worker writes to {store_location(**mine)}, the job asked for "
                f"{store_location(**asked)} (the command's {'/'.join(_STORAGE_FLAG[key] for key in differ)}, "
                f"FASHION_* or default: a relative index dir is under the working directory): start workers with "
                f"{start}, or give the command the workers' ({give}); nothing was written, and `fashion-search "
                f"resume {spec.job_id}` runs it once they agree")
    if model is None:
        return
    if spec.model_version:
        other = spec.model_version != model.version
    else:
        other = bool(spec.model_id) and spec.model_id != model.model_id
    if other:
        raise JobRefusedError(
            f"job {spec.job_id} refused: this worker embeds with model {model.model_id} (version {model.version}), "
            f"the job asked for {spec.model_id} (version {spec.model_version or '?'}): start workers with "
            f"FASHION_MODEL={spec.model_id}, or give the command the workers' (--model {model.model_id}); nothing "
            f"was written, and `fashion-search resume {spec.job_id}` runs it once they agree")


# A FAISS version's saved build (IndexMeta.extra) -> the settings that build it.
_SAVED_BUILD = {"index_type": "faiss_index_type", "quantization": "faiss_quantization"}


def job_build(settings: Settings, indexes: IndexStore, index: str, kind: str) -> dict[str, Any]:
    """The build settings a job carries (HONOURED_SETTINGS): ``settings``' own, except that a copy-on-write
    update keeps the serving version's ANN type and quantization unless the command set them (a flag, FASHION_*
    or the config file): an update of an HNSW index used to come back flat, the CLI's default."""
    build = {key: getattr(settings, key) for key in HONOURED_SETTINGS}
    if kind != "update" or indexes.in_place_updates:
        return build
    served = indexes.open(index)
    try:
        saved = dict(served.meta.extra) if served.meta is not None else {}
    finally:
        served.close()
    for name, key in _SAVED_BUILD.items():
        if name in saved and key not in settings.model_fields_set:
            build[key] = saved[name]
    return build


def job_settings(settings: Settings, spec: JobSpec) -> Settings:
    """The runner's settings with the job's honoured build settings (HONOURED_SETTINGS) over them."""
    honoured = {key: value for key, value in spec.build.items() if key in HONOURED_SETTINGS}
    return settings.model_copy(update=honoured) if honoured else settings


def _refuse(store: JobStore, spec: JobSpec, exc: JobRefusedError) -> None:
    """A refused job wrote nothing: it fails resumable, so `resume` runs it once the settings agree."""
    log.error("%s", exc)
    store.set_state(spec.job_id, "failed", str(exc), resumable=True)


def runner_settings(settings: Settings, spec: JobSpec) -> Settings:
    """The settings of a process that runs ``spec`` itself (in-process, e.g. ``resume`` without Redis): the
    job's own index location, so resuming from another working directory or shell continues the same index
    (for workers, which own their storage, ``check_job`` compares instead)."""
    if not spec.index_dir:
        return settings
    return settings.model_copy(update={"index_backend": spec.backend, "index_dir": Path(spec.index_dir),
                                       "qdrant_url": spec.qdrant_url or None})


# -- plan ------------------------------------------------------------------------------------------------
def staging_dir(settings: Settings, job_id: str) -> Path:
    return settings.index_dir / "staging" / job_id


def plan_job(settings: Settings, store: JobStore, catalog_dir: Path | str, index: str, kind: str = "reindex",
             chunk_size: int | None = None, upsert_ids: Iterable[int] | None = None,
             delete_ids: Iterable[int] = (), model: ModelInfo | None = None) -> tuple[JobSpec, list[list[int]]]:
    """Record a job and return it with its chunks of product ids (nothing is enqueued yet). The job carries
    what ``settings`` ask for (see ``check_job``) and the model: ``model`` (the encoder that will run it, when
    known), else the one ``settings`` resolve to (``job_model``)."""
    if kind not in {"reindex", "update"}:
        raise InvalidInputError(f"unknown job kind {kind!r}")
    check_index_name(index)
    size = chunk_size or settings.index_chunk_size
    if size <= 0:
        raise InvalidInputError(f"chunk size must be positive, got {size}")
    catalog = read_catalog(catalog_dir)
    failures: list[Failure] = []
    if upsert_ids is None:
        ids = [p.id for p in catalog.products]
        failures = [Failure(row.product_id, row.reason, row.line) for row in catalog.skipped]
    else:
        wanted = list(dict.fromkeys(parse_product_id(i, "id to add") for i in upsert_ids))
        known = {p.id for p in catalog.products}
        ids = [i for i in wanted if i in known]
        failures = [Failure(row.product_id, row.reason, row.line) for row in catalog.not_products(wanted)]
    job_id = JobSpec.new_id()
    model_id, model_version = job_model(settings, model)
    storage = settings_storage(settings)
    indexes = open_store(settings)  # asked for its capabilities and a version name only: nothing is opened
    try:
        # An update writes into the serving index where the store updates in place, else into a new version
        # (copy-on-write), switched to like a re-index. new_version checks the name plus its stamp is a name.
        in_place = kind == "update" and indexes.in_place_updates
        version = index if in_place else indexes.new_version(index)
        spec = JobSpec(job_id=job_id, kind=kind, catalog_dir=str(Path(catalog_dir).resolve()), index=index,
                       version=version, backend=indexes.backend,
                       staging_dir=str(staging_dir(settings, job_id).resolve()),
                       chunks_total=(len(ids) + size - 1) // size, items_total=len(ids),
                       items_rejected=len(failures),
                       delete_ids=sorted({parse_product_id(i, "id to delete") for i in delete_ids}),
                       index_dir=storage["index_dir"], qdrant_url=storage["qdrant_url"], model_id=model_id,
                       model_version=model_version,
                       build=job_build(settings, indexes, index, kind))
    finally:
        indexes.close()
    chunks = [ids[i:i + size] for i in range(0, len(ids), size)]
    store.create(spec, failures, chunks)
    log.info("job %s: %s %s -> %s (%s), %d items in %d chunks", job_id, kind, spec.catalog_dir, spec.version,
             spec.location, len(ids), spec.chunks_total)
    return spec, chunks


# -- chunk -----------------------------------------------------------------------------------------------
@lru_cache(maxsize=4)
def _catalog_products(catalog_dir: str, stamp: tuple[int, int]) -> dict[int, Product]:
    return {p.id: p for p in read_catalog(catalog_dir).products}


def catalog_products(catalog_dir: str) -> dict[int, Product]:
    """The catalog's products by id, read once per worker process while styles.csv is unchanged."""
    styles = Path(catalog_dir) / "styles.csv"
    try:
        stat = styles.stat()
    except FileNotFoundError:
        raise NotFoundError(f"{catalog_dir}: no styles.csv") from None
    return _catalog_products(catalog_dir, (stat.st_mtime_ns, stat.st_size))


def run_chunk(settings: Settings, store: JobStore, encoder: Encoder, job_id: str, chunk: int, chunks_total: int,
              catalog_dir: str, staging: str, ids: Sequence[int]) -> bool:
    """Embed one chunk into its shard and record it; True when this made the job's last chunk complete.

    A job that asks for another index location or model than ``settings`` and ``encoder`` (``check_job``) is
    failed with that reason before anything is embedded or written.

    Transient errors (encoder/index unavailable) propagate for the caller to retry; a bad item is a failure
    row and the chunk goes on. A chunk already recorded (a redelivery) is not embedded again; one that
    completes after its job ended (a duplicate delivery racing the finalize) removes the shard it wrote.
    """
    if store.get_state(job_id) in TERMINAL_STATES:
        log.info("job %s already ended: chunk %d skipped", job_id, chunk)
        return False
    spec = store.get_spec(job_id)
    try:
        check_job(spec, settings, encoder.info)
    except JobRefusedError as exc:
        _refuse(store, spec, exc)
        return False
    if store.chunk_done(job_id, chunk):
        log.info("job %s chunk %d: already recorded (a redelivery)", job_id, chunk)
        return store.complete_chunk(job_id, chunk, indexed=0, processed=0, failures=[]) >= chunks_total
    products_by_id = catalog_products(catalog_dir)
    products, failures = [], []
    for pid in ids:
        product = products_by_id.get(int(pid))
        if product is None:
            failures.append(Failure(str(pid), "not in catalog any more"))
        else:
            products.append(product)
    batch = embed_products(products, encoder)
    info = encoder.info
    failures += [Failure(row.product_id, row.reason, row.line) for row in batch.skipped]
    write_shard(Path(staging), chunk, Shard(batch.ids, batch.vectors, batch.payloads, info.dim, info.model_id,
                                            info.version))
    complete = store.complete_chunk(job_id, chunk, indexed=len(batch.ids), processed=len(ids), failures=failures)
    # The job ends (state first, then its staging dir is removed) only after every chunk completed, so a shard
    # written by a duplicate while it ended is either removed by that cleanup or seen here.
    if store.is_over(job_id):
        log.info("job %s ended while chunk %d ran (a duplicate delivery): its shard removed", job_id, chunk)
        remove_shard(Path(staging), chunk)
        return False
    return complete >= chunks_total


def fail_chunk(store: JobStore, job_id: str, chunk: int, chunks_total: int, ids: Sequence[int],
               error: BaseException) -> bool:
    """Record a chunk that gave up (retries exhausted or an unexpected error): its items go to the report."""
    reason = f"chunk failed: {type(error).__name__}: {error}"
    log.error("job %s chunk %d: %s", job_id, chunk, reason)
    failures = [Failure(str(pid), reason) for pid in ids]
    complete = store.complete_chunk(job_id, chunk, indexed=0, processed=len(ids), failures=failures, failed=True)
    return complete >= chunks_total


def _check_same_model(spec: JobSpec, meta: IndexMeta, model_version: str) -> None:
    """Raises InvalidInputError when the index's vectors come from another model than the workers' (the rule:
    ``IndexMeta.built_by_another_model``): only a full re-index may change the model."""
    if meta.built_by_another_model(model_version):
        raise InvalidInputError(f"index {spec.index!r} was built by model version {meta.model_version}, "
                                f"the workers run {model_version}: run a full reindex")


# -- finalize --------------------------------------------------------------------------------------------
def finalize(settings: Settings, store: JobStore, job_id: str, owner: str = "") -> JobStatus:
    """Build the version from the shards and switch to it if every chunk succeeded; idempotent.

    Transient errors (the index busy or unreachable) propagate for a retry; anything else fails the job and
    leaves the serving index as it was.
    """
    owner = owner or f"pid-{os.getpid()}"
    spec = store.get_spec(job_id)
    try:
        check_job(spec, settings)  # before the store is opened: a job of another index never touches this one
    except JobRefusedError as exc:
        _refuse(store, spec, exc)
        return store.get(job_id)
    if not store.claim_finalize(job_id, owner):
        log.info("job %s: another finalize holds the lock", job_id)
        return store.get(job_id)
    try:
        indexes = open_store(job_settings(settings, spec))
    except BaseException:
        store.release_finalize(job_id)
        raise
    try:
        status = store.get(job_id)
        if status.state in TERMINAL_STATES:
            if not status.over:
                return status  # failed before all its chunks were queued: its shards wait for resume or cancel
            if status.state != "succeeded":
                _discard(indexes, spec)
            return status
        if status.chunks_complete < spec.chunks_total:
            return status  # not all chunks in yet: the last chunk triggers another finalize
        if status.chunks_failed:
            store.set_state(job_id, "failed", f"{status.chunks_failed} of {spec.chunks_total} chunks failed; "
                                              f"serving index {spec.index!r} left as it was")
            _discard(indexes, spec)
            return store.get(job_id)
        try:
            count = _write_version(indexes, spec) if spec.chunks_total or spec.delete_ids else -1
            if count < 0:
                raise InvalidInputError("no products to index")
            if store.get_state(job_id) == "cancelled":  # cancelled while we were merging: do not switch
                _discard(indexes, spec)
                return store.get(job_id)
            if spec.version != spec.index:
                indexes.switch(spec.index, spec.version)
                indexes.prune(spec.index, settings.index_keep_versions)
        except TRANSIENT_ERRORS:
            raise
        except Exception as exc:  # any other error ends the job; the serving index is untouched
            log.exception("job %s: finalize failed", job_id)
            store.set_state(job_id, "failed", f"{type(exc).__name__}: {exc}")
            _discard(indexes, spec)
            return store.get(job_id)
        store.set_state(job_id, "succeeded", index_count=count)
        shutil.rmtree(spec.staging_dir, ignore_errors=True)
        log.info("job %s: %s now serves %s (%d items)", job_id, spec.index, spec.version, count)
        return store.get(job_id)
    finally:
        try:
            indexes.close()
        finally:
            store.release_finalize(job_id)


def _discard(indexes: IndexStore, spec: JobSpec) -> None:
    """A job that will not switch: its shards go, and so does the version it built unless it serves."""
    shutil.rmtree(spec.staging_dir, ignore_errors=True)
    if spec.version != spec.index and indexes.serving_version(spec.index) != spec.version:
        indexes.drop(spec.version)


def _write_version(indexes: IndexStore, spec: JobSpec) -> int:
    """Merge the shards (plus, for a copy-on-write update, the serving rows) into ``spec.version``; returns its
    count."""
    shards = iter_shards(Path(spec.staging_dir))
    first = next(shards, None)
    if first is None:
        if spec.kind != "update":
            raise InvalidInputError("no products were embedded: nothing to index")
        first = _serving_shape(indexes, spec)  # a delete-only update
    index = indexes.open(spec.version)
    try:
        index.create(IndexMeta(name=spec.version, backend=spec.backend, dim=first.dim, model_id=first.model_id,
                               model_version=first.model_version))
        meta = index.meta
        if meta is not None:
            _check_same_model(spec, meta, first.model_version)
        if spec.model_version and first.model_version != spec.model_version:
            raise JobRefusedError(f"job {spec.job_id}: its shards were embedded by model version "
                                  f"{first.model_version}, the job asked for {spec.model_version}")
        if spec.kind == "update" and spec.version != spec.index:
            _copy_serving(indexes, spec, index, first)
        for shard in (first, *shards):
            index.upsert(shard.ids, shard.vectors, shard.payloads)
        if spec.delete_ids:
            index.delete(spec.delete_ids)
        index.flush()
        return index.count()
    finally:
        index.close()


def _serving_shape(indexes: IndexStore, spec: JobSpec) -> Shard:
    serving = indexes.open(spec.index)
    try:
        meta = serving.meta
        if meta is None:
            raise NotFoundError(f"index {spec.index!r} does not exist: nothing to delete from")
        return Shard([], np.zeros((0, meta.dim), np.float32), [], meta.dim, meta.model_id, meta.model_version)
    finally:
        serving.close()


def _copy_serving(indexes: IndexStore, spec: JobSpec, target: VectorIndex, first: Shard) -> None:
    serving = indexes.open(spec.index)
    try:
        meta = serving.meta
        if meta is None:
            return  # nothing served yet: the update builds the first version
        _check_same_model(spec, meta, first.model_version)
        rows = serving.retrieve(sorted(serving.all_ids()), with_vectors=True)
        ids = list(rows)
        vectors = np.stack([stored_vector(rows[i]) for i in ids]) if ids else np.zeros((0, first.dim), np.float32)
        target.upsert(ids, vectors, [rows[i][0] for i in ids])
    finally:
        serving.close()
