"""Job state: the spec of an indexing job and its progress, in Redis (workers) or a JSON file (in-process).

Counters move only the first time a chunk completes (a Lua script in Redis), so a redelivered chunk never
counts twice. The failure report is a hash keyed by row, so a retried chunk rewrites its rows instead of
appending them again. The plan (each chunk's product ids) is stored with the job, so a job whose chunks were
not all queued can be resumed: the chunks not yet complete are queued again.

Redis calls are retried through short outages (a Redis restart: connection resets, "loading" replies) for
``retry_s`` seconds; after that they raise StoreUnavailableError naming the Redis server.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar
from urllib.parse import urlsplit

from fashion_core.errors import NotFoundError, UnavailableError

log = logging.getLogger(__name__)

TERMINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})
P = ParamSpec("P")
R = TypeVar("R")


class StoreUnavailableError(UnavailableError):
    """The job store (Redis) cannot be reached, after retrying for the store's ``retry_s``."""


@dataclass
class JobSpec:
    """What a job does; JSON-only so that it travels in task payloads and Redis unchanged.

    It also carries what the job was asked for, as the planner resolved it, so that a worker configured
    otherwise never silently builds something else (``indexer.pipeline.check_job``): where the index store
    writes (``backend``, ``index_dir``, ``qdrant_url``: checked, the worker refuses a job asking for another
    place), the model (``model_id``, ``model_version``: checked) and the build settings of the new version
    (``build``: honoured). Empty values (a job planned before these fields existed) are not checked.
    """

    job_id: str
    kind: str  # "reindex": build a new version and switch | "update": upserts + deletes on the serving index
    catalog_dir: str
    index: str  # serving name
    version: str  # physical collection/dir being built (the serving one for an in-place update)
    backend: str
    staging_dir: str  # per-chunk shard files land here before the single-writer finalize
    chunks_total: int
    items_total: int  # products planned into chunks
    delete_ids: list[int] = field(default_factory=list)
    created_at: float = field(default_factory=time.time)
    # Rows (or asked-for ids) rejected while planning, outside items_total: already in the failure report.
    items_rejected: int = 0
    index_dir: str = ""  # the planner's index dir, absolute: FAISS files / embedded Qdrant, and staging/
    qdrant_url: str = ""  # the Qdrant server, "" for none
    model_id: str = ""  # the model the planner resolved ("" when it resolves none: the worker's own is used)
    model_version: str = ""  # its weights' version ("" when unknown without loading it, e.g. a hub id)
    build: dict[str, Any] = field(default_factory=dict)  # Settings fields of the new version (ANN type, ...)

    @property
    def location(self) -> str:
        """Where the job writes, for people: the store and, where it differs, the staging dir."""
        return store_location(self.backend, self.index_dir, self.qdrant_url)

    @staticmethod
    def new_id() -> str:
        return uuid.uuid4().hex[:12]


@dataclass
class Failure:
    product_id: str
    reason: str
    line: int = 0


@dataclass
class JobStatus:
    spec: JobSpec
    state: str = "pending"  # pending | running | succeeded | failed | cancelled
    chunks_done: int = 0
    chunks_failed: int = 0
    items_indexed: int = 0
    items_processed: int = 0  # indexed + skipped inside chunks: what the rate counts
    started_at: float = 0.0
    finished_at: float = 0.0
    error: str = ""
    index_count: int = -1  # items in the built version once finalized
    failures: list[Failure] = field(default_factory=list)
    resumable: bool = False  # failed before all its chunks were queued: `resume` queues the rest
    progress_at: float = 0.0  # last time a chunk completed (or the job was created, queued or recovered)

    @property
    def over(self) -> bool:
        """Ended for good: succeeded, cancelled, or failed in a way a resume cannot mend."""
        return self.state in TERMINAL_STATES and not (self.state == "failed" and self.resumable)

    @property
    def items_skipped(self) -> int:
        """Every item in the failure report: rejected while planning, or skipped or failed in a chunk."""
        return len(self.failures)

    @property
    def items_total(self) -> int:
        """Every item the job accounts for (a re-index: every data row of styles.csv): planned + rejected while
        planning. Once the job is over, items_indexed + items_skipped == items_total."""
        return self.spec.items_total + self.spec.items_rejected

    @property
    def chunks_complete(self) -> int:
        return self.chunks_done + self.chunks_failed

    @property
    def elapsed_s(self) -> float:
        if not self.started_at:
            return 0.0
        return (self.finished_at or time.time()) - self.started_at

    @property
    def rate_per_s(self) -> float:
        elapsed = self.elapsed_s
        return self.items_processed / elapsed if elapsed > 0 else 0.0

    @property
    def eta_s(self) -> float:
        if self.state in TERMINAL_STATES:
            return 0.0
        rate = self.rate_per_s
        remaining = max(self.spec.items_total - self.items_processed, 0)
        return remaining / rate if rate > 0 else -1.0

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(items_skipped=self.items_skipped, items_total=self.items_total,
                    rate_per_s=round(self.rate_per_s, 2), eta_s=round(self.eta_s, 1),
                    elapsed_s=round(self.elapsed_s, 2))
        return data


class JobStore(Protocol):
    def create(self, spec: JobSpec, failures: list[Failure], chunks: list[list[int]]) -> None:
        """Record a new job (state ``pending``, started now) with its plan: each chunk's product ids."""

    def get(self, job_id: str) -> JobStatus: ...

    def get_spec(self, job_id: str) -> JobSpec:
        """The job's spec alone (cheaper than ``get``: no failure report)."""

    def set_state(self, job_id: str, state: str, error: str = "", index_count: int = -1,
                  resumable: bool = False) -> None:
        """Move to ``state`` unless the job already ended (a cancelled job stays cancelled); a resumable failed
        job may still be cancelled."""

    def reopen(self, job_id: str) -> bool:
        """A pending or running job, or a resumable failed one, back to ``pending`` for a resume; False if over."""

    def plan(self, job_id: str) -> list[list[int]]:
        """Each chunk's product ids, as planned."""

    def complete_chunk(self, job_id: str, chunk: int, indexed: int, processed: int, failures: list[Failure],
                       failed: bool = False) -> int:
        """Record a chunk once (a redelivery changes nothing); returns how many chunks are complete."""

    def completed_chunks(self, job_id: str) -> set[int]: ...

    def chunk_done(self, job_id: str, chunk: int) -> bool:
        """Whether ``chunk`` is recorded complete (its shard written)."""

    def get_state(self, job_id: str) -> str: ...

    def is_over(self, job_id: str) -> bool:
        """Whether the job ended for good (see JobStatus.over)."""

    def claim_finalize(self, job_id: str, owner: str) -> bool:
        """True for the one caller that may finalize the job now (or the same owner again, on redelivery)."""

    def release_finalize(self, job_id: str) -> None: ...


def _failure_key(f: Failure) -> str:
    return f"{f.line}:{f.product_id}"


# KEYS: job hash, completed-chunk set, failures hash. ARGV: chunk, indexed, processed, failed flag, now, then
# key/value pairs of failures. Returns the number of complete chunks.
_COMPLETE_CHUNK = """
if redis.call('SADD', KEYS[2], ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], 'progress_at', ARGV[5])
  if ARGV[4] == '1' then
    redis.call('HINCRBY', KEYS[1], 'chunks_failed', 1)
  else
    redis.call('HINCRBY', KEYS[1], 'chunks_done', 1)
  end
  redis.call('HINCRBY', KEYS[1], 'items_indexed', ARGV[2])
  redis.call('HINCRBY', KEYS[1], 'items_processed', ARGV[3])
  for i = 6, #ARGV, 2 do
    redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
  end
end
return redis.call('SCARD', KEYS[2])
"""

# Move to a new state only from a non-terminal one (or cancel a resumable failed one); an ended job leaves the
# set of active jobs. KEYS: job hash, active-jobs set. ARGV: state, error, finished_at, count, now, resumable
# flag, job id.
_SET_STATE = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 0 end
if state == 'succeeded' or state == 'failed' or state == 'cancelled' then
  if not (state == 'failed' and ARGV[1] == 'cancelled' and redis.call('HGET', KEYS[1], 'resumable') == '1') then
    return 0
  end
end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'error', ARGV[2], 'resumable', ARGV[6], 'progress_at', ARGV[5])
if ARGV[3] ~= '0' then
  redis.call('HSET', KEYS[1], 'finished_at', ARGV[3])
  redis.call('SREM', KEYS[2], ARGV[7])
end
if ARGV[4] ~= '-1' then redis.call('HSET', KEYS[1], 'index_count', ARGV[4]) end
return 1
"""

# Back to pending for a resume. KEYS: job hash, active-jobs set. ARGV: now, job id. Returns 1 when reopened.
_REOPEN = """
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'pending' or state == 'running'
   or (state == 'failed' and redis.call('HGET', KEYS[1], 'resumable') == '1') then
  redis.call('HSET', KEYS[1], 'state', 'pending', 'error', '', 'resumable', '0', 'finished_at', '0',
             'progress_at', ARGV[1])
  redis.call('SADD', KEYS[2], ARGV[2])
  return 1
end
return 0
"""


def store_location(backend: str, index_dir: str, qdrant_url: str) -> str:
    """Where an index store writes, in words (the staging dir of jobs is always under ``index_dir``)."""
    if qdrant_url:
        return f"{backend} server {qdrant_url} (staging under {index_dir or '?'})"
    return f"{backend} under {index_dir or '?'}"


def _text(reply: bytes | str) -> str:
    """A reply of the job store's client, which decodes responses: a str (redis-py's types do not follow
    ``decode_responses`` and say bytes | str)."""
    assert isinstance(reply, str)
    return reply


def redis_display(url: str) -> str:
    """``host:port/db`` of a Redis URL: for messages, without a password."""
    parts = urlsplit(url)
    return f"{parts.hostname or '127.0.0.1'}:{parts.port or 6379}{parts.path or '/0'}"


def _translated(method: Callable[Concatenate[RedisJobStore, P], R]) -> Callable[Concatenate[RedisJobStore, P], R]:
    """Redis connection errors (after the client's retries) become StoreUnavailableError naming the server."""

    @functools.wraps(method)
    def wrapper(self: RedisJobStore, *args: P.args, **kwargs: P.kwargs) -> R:
        import redis

        try:
            return method(self, *args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise StoreUnavailableError(f"Redis at {self.display} is unavailable: {exc}") from exc

    return wrapper


class RedisJobStore:
    prefix = "fashion:indexer:job:"
    active_key = "fashion:indexer:active"  # ids of jobs not ended yet: what the stalled-job sweep looks at

    def __init__(self, redis_url: str, ttl_s: int = 7 * 24 * 3600, retry_s: float = 30.0) -> None:
        import redis
        from redis.backoff import ExponentialBackoff
        from redis.retry import Retry

        # Exponential backoff 0.05 s .. 1 s: retries enough to span retry_s of failed attempts (a refused
        # connection fails at once; a dead one within the socket timeouts).
        attempts = 5 + max(0, int(retry_s - 1.5))
        self.display = redis_display(redis_url)
        self.redis = redis.Redis.from_url(
            redis_url, decode_responses=True, socket_connect_timeout=5, socket_timeout=30,
            retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), attempts),
            retry_on_error=[redis.ConnectionError, redis.TimeoutError])
        self.ttl_s = ttl_s
        self._complete = self.redis.register_script(_COMPLETE_CHUNK)
        self._set_state = self.redis.register_script(_SET_STATE)
        self._reopen = self.redis.register_script(_REOPEN)

    def _keys(self, job_id: str) -> tuple[str, str, str]:
        base = self.prefix + job_id
        return base, base + ":chunks", base + ":failures"

    @_translated
    def create(self, spec: JobSpec, failures: list[Failure], chunks: list[list[int]]) -> None:
        key, chunks_key, fails = self._keys(spec.job_id)
        pipe = self.redis.pipeline()
        pipe.hset(key, mapping={"spec": json.dumps(asdict(spec)), "state": "pending", "chunks_done": 0,
                                "chunks_failed": 0, "items_indexed": 0, "items_processed": 0, "error": "",
                                "started_at": time.time(), "resumable": 0, "progress_at": time.time()})
        pipe.set(key + ":plan", json.dumps(chunks))
        pipe.sadd(self.active_key, spec.job_id)
        if failures:
            pipe.hset(fails, mapping={_failure_key(f): json.dumps(asdict(f)) for f in failures})
        for k in (key, chunks_key, fails, key + ":plan"):
            pipe.expire(k, self.ttl_s)
        pipe.execute()

    @_translated
    def get(self, job_id: str) -> JobStatus:
        key, _, fails = self._keys(job_id)
        data = self.redis.hgetall(key)
        if not data:
            raise NotFoundError(f"no indexing job {job_id!r} (jobs are kept 7 days)")
        failures = [Failure(**json.loads(v)) for v in self.redis.hvals(fails)]
        return JobStatus(
            spec=JobSpec(**json.loads(data["spec"])), state=_text(data["state"]),
            chunks_done=int(data.get("chunks_done", 0)), chunks_failed=int(data.get("chunks_failed", 0)),
            items_indexed=int(data.get("items_indexed", 0)), items_processed=int(data.get("items_processed", 0)),
            started_at=float(data.get("started_at", 0)), finished_at=float(data.get("finished_at", 0)),
            error=_text(data.get("error", "")), index_count=int(data.get("index_count", -1)),
            failures=sorted(failures, key=lambda f: (f.line, f.product_id)),
            resumable=data.get("resumable") == "1", progress_at=float(data.get("progress_at", 0)))

    @_translated
    def get_spec(self, job_id: str) -> JobSpec:
        raw = self.redis.hget(self._keys(job_id)[0], "spec")
        if raw is None:
            raise NotFoundError(f"no indexing job {job_id!r} (jobs are kept 7 days)")
        return JobSpec(**json.loads(raw))

    @_translated
    def set_state(self, job_id: str, state: str, error: str = "", index_count: int = -1,
                  resumable: bool = False) -> None:
        now = time.time()
        finished = str(now) if state in TERMINAL_STATES else "0"
        self._set_state(keys=[self._keys(job_id)[0], self.active_key],
                        args=[state, error, finished, index_count, now, "1" if resumable else "0", job_id])

    @_translated
    def reopen(self, job_id: str) -> bool:
        return bool(self._reopen(keys=[self._keys(job_id)[0], self.active_key], args=[time.time(), job_id]))

    @_translated
    def active_jobs(self) -> list[str]:
        """Ids of the jobs that have not ended (pending, running)."""
        return sorted(_text(job_id) for job_id in self.redis.smembers(self.active_key))

    @_translated
    def deactivate(self, job_id: str) -> None:
        """Drop an id from the active jobs (its job expired)."""
        self.redis.srem(self.active_key, job_id)

    @_translated
    def touch(self, job_id: str) -> None:
        """Count now as progress (the job's chunks were just queued again)."""
        self.redis.hset(self._keys(job_id)[0], "progress_at", time.time())

    @_translated
    def claim_recovery(self, job_id: str, ttl_s: float) -> bool:
        """True for one caller per ``ttl_s``: the worker that may re-queue a stalled job now."""
        return bool(self.redis.set(self.prefix + job_id + ":recovery", "1", nx=True, px=max(1, int(ttl_s * 1000))))

    @_translated
    def plan(self, job_id: str) -> list[list[int]]:
        raw = self.redis.get(self._keys(job_id)[0] + ":plan")
        if raw is None:
            raise NotFoundError(f"no plan for indexing job {job_id!r}")
        return [list(map(int, chunk)) for chunk in json.loads(raw)]

    @_translated
    def complete_chunk(self, job_id: str, chunk: int, indexed: int, processed: int, failures: list[Failure],
                       failed: bool = False) -> int:
        args: list[Any] = [chunk, indexed, processed, "1" if failed else "0", time.time()]
        for f in failures:
            args += [_failure_key(f), json.dumps(asdict(f))]
        return int(self._complete(keys=list(self._keys(job_id)), args=args))

    @_translated
    def completed_chunks(self, job_id: str) -> set[int]:
        return {int(c) for c in self.redis.smembers(self._keys(job_id)[1])}

    @_translated
    def chunk_done(self, job_id: str, chunk: int) -> bool:
        return bool(self.redis.sismember(self._keys(job_id)[1], str(chunk)))

    @_translated
    def get_state(self, job_id: str) -> str:
        state = self.redis.hget(self._keys(job_id)[0], "state")
        if state is None:
            raise NotFoundError(f"no indexing job {job_id!r}")
        return str(state)

    @_translated
    def is_over(self, job_id: str) -> bool:
        state, resumable = self.redis.hmget(self._keys(job_id)[0], ["state", "resumable"])
        if state is None:
            raise NotFoundError(f"no indexing job {job_id!r}")
        return state in TERMINAL_STATES and not (state == "failed" and resumable == "1")

    @_translated
    def claim_finalize(self, job_id: str, owner: str) -> bool:
        key = self.prefix + job_id + ":finalize"
        if self.redis.set(key, owner, nx=True, ex=900):
            return True
        return self.redis.get(key) == owner

    @_translated
    def release_finalize(self, job_id: str) -> None:
        self.redis.delete(self.prefix + job_id + ":finalize")


class FileJobStore:
    """In-process jobs: one JSON file per job under ``<home>/jobs`` so that ``status`` can read it later, with
    its plan (``<job>.plan.json``) and completed chunks (``<job>.done``, one line per chunk) beside it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._finalizing: set[str] = set()

    @staticmethod
    def job_file(root: Path, job_id: str) -> Path:
        """Where the store under ``root`` keeps job ``job_id``'s status."""
        return root / f"{job_id}.json"

    @classmethod
    def holds(cls, root: Path, job_id: str) -> bool:
        """Whether a store under ``root`` holds job ``job_id``: one file check, no store opened or folder made (a
        job id with a path in it is never one)."""
        return Path(job_id).name == job_id and cls.job_file(root, job_id).is_file()

    def _path(self, job_id: str) -> Path:
        return self.job_file(self.root, job_id)

    def _write(self, status: JobStatus) -> None:
        path = self._path(status.spec.job_id)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(status)), encoding="utf-8")
        tmp.replace(path)

    def create(self, spec: JobSpec, failures: list[Failure], chunks: list[list[int]]) -> None:
        with self._lock:
            plan = self.root / f"{spec.job_id}.plan.json"
            plan.write_text(json.dumps(chunks), encoding="utf-8")
            (self.root / f"{spec.job_id}.done").write_text("", encoding="utf-8")
            now = time.time()
            self._write(JobStatus(spec=spec, failures=list(failures), started_at=now, progress_at=now))

    def get(self, job_id: str) -> JobStatus:
        try:
            data = json.loads(self._path(job_id).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise NotFoundError(f"no indexing job {job_id!r} in {self.root}") from None
        spec = JobSpec(**data.pop("spec"))
        failures = [Failure(**f) for f in data.pop("failures")]
        return JobStatus(spec=spec, failures=failures, **data)

    def get_spec(self, job_id: str) -> JobSpec:
        return self.get(job_id).spec

    def set_state(self, job_id: str, state: str, error: str = "", index_count: int = -1,
                  resumable: bool = False) -> None:
        with self._lock:
            status = self.get(job_id)
            if status.state in TERMINAL_STATES and not (status.state == "failed" and status.resumable
                                                        and state == "cancelled"):
                return
            status.state, status.error, status.resumable = state, error, resumable
            if state in TERMINAL_STATES:
                status.finished_at = time.time()
            if index_count >= 0:
                status.index_count = index_count
            self._write(status)

    def reopen(self, job_id: str) -> bool:
        with self._lock:
            status = self.get(job_id)
            if status.over:
                return False
            status.state, status.error, status.resumable, status.finished_at = "pending", "", False, 0.0
            self._write(status)
            return True

    def plan(self, job_id: str) -> list[list[int]]:
        try:
            return json.loads((self.root / f"{job_id}.plan.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise NotFoundError(f"no plan for indexing job {job_id!r} in {self.root}") from None

    def completed_chunks(self, job_id: str) -> set[int]:
        try:
            lines = (self.root / f"{job_id}.done").read_text(encoding="utf-8").split()
        except FileNotFoundError:
            return set()
        return {int(line) for line in lines}

    def complete_chunk(self, job_id: str, chunk: int, indexed: int, processed: int, failures: list[Failure],
                       failed: bool = False) -> int:
        with self._lock:
            done = self.completed_chunks(job_id)
            if chunk not in done:
                done.add(chunk)
                status = self.get(job_id)
                if failed:
                    status.chunks_failed += 1
                else:
                    status.chunks_done += 1
                status.items_indexed += indexed
                status.items_processed += processed
                status.failures += failures
                status.progress_at = time.time()
                self._write(status)
                with (self.root / f"{job_id}.done").open("a", encoding="utf-8") as fh:
                    fh.write(f"{chunk}\n")
            return len(done)

    def chunk_done(self, job_id: str, chunk: int) -> bool:
        return chunk in self.completed_chunks(job_id)

    def get_state(self, job_id: str) -> str:
        return self.get(job_id).state

    def is_over(self, job_id: str) -> bool:
        return self.get(job_id).over

    def claim_finalize(self, job_id: str, owner: str) -> bool:
        with self._lock:
            if job_id in self._finalizing:
                return False
            self._finalizing.add(job_id)
            return True

    def release_finalize(self, job_id: str) -> None:
        with self._lock:
            self._finalizing.discard(job_id)
