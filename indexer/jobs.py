"""Job state: the spec of an indexing job and its progress, in Redis (workers) or a JSON file (in-process).

Counters move only the first time a chunk completes (a Lua script in Redis), so a redelivered chunk never
counts twice. The failure report is a hash keyed by row, so a retried chunk rewrites its rows instead of
appending them again.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from fashion_core.errors import NotFoundError

TERMINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})


@dataclass
class JobSpec:
    """What a job does; JSON-only so that it travels in task payloads and Redis unchanged."""

    job_id: str
    kind: str  # "reindex": build a new version and switch | "update": upserts + deletes on the serving index
    catalog_dir: str
    index: str  # serving name
    version: str  # physical collection/dir being built (the serving one for an in-place update)
    backend: str
    staging_dir: str  # per-chunk shard files land here before the single-writer finalize
    chunks_total: int
    items_total: int
    delete_ids: list[int] = field(default_factory=list)
    created_at: float = field(default_factory=time.time)

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

    @property
    def items_skipped(self) -> int:
        return len(self.failures)

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
        data.update(items_skipped=self.items_skipped, rate_per_s=round(self.rate_per_s, 2),
                    eta_s=round(self.eta_s, 1), elapsed_s=round(self.elapsed_s, 2))
        return data


class JobStore(Protocol):
    def create(self, spec: JobSpec, failures: list[Failure]) -> None: ...

    def get(self, job_id: str) -> JobStatus: ...

    def set_state(self, job_id: str, state: str, error: str = "", index_count: int = -1) -> None:
        """Move to ``state`` unless the job already ended (a cancelled job stays cancelled)."""

    def complete_chunk(self, job_id: str, chunk: int, indexed: int, processed: int, failures: list[Failure],
                       failed: bool = False) -> int:
        """Record a chunk once (a redelivery changes nothing); returns how many chunks are complete."""

    def get_state(self, job_id: str) -> str: ...

    def claim_finalize(self, job_id: str, owner: str) -> bool:
        """True for the one caller that may finalize the job now (or the same owner again, on redelivery)."""

    def release_finalize(self, job_id: str) -> None: ...


def _failure_key(f: Failure) -> str:
    return f"{f.line}:{f.product_id}"


# KEYS: job hash, completed-chunk set, failures hash. ARGV: chunk, indexed, processed, failed flag, then
# key/value pairs of failures. Returns the number of complete chunks.
_COMPLETE_CHUNK = """
if redis.call('SADD', KEYS[2], ARGV[1]) == 1 then
  if ARGV[4] == '1' then
    redis.call('HINCRBY', KEYS[1], 'chunks_failed', 1)
  else
    redis.call('HINCRBY', KEYS[1], 'chunks_done', 1)
  end
  redis.call('HINCRBY', KEYS[1], 'items_indexed', ARGV[2])
  redis.call('HINCRBY', KEYS[1], 'items_processed', ARGV[3])
  for i = 5, #ARGV, 2 do
    redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
  end
end
return redis.call('SCARD', KEYS[2])
"""

# Move to a new state only from a non-terminal one. KEYS: job hash. ARGV: state, error, finished_at, count.
_SET_STATE = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 0 end
if state == 'succeeded' or state == 'failed' or state == 'cancelled' then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'error', ARGV[2])
if ARGV[3] ~= '0' then redis.call('HSET', KEYS[1], 'finished_at', ARGV[3]) end
if ARGV[4] ~= '-1' then redis.call('HSET', KEYS[1], 'index_count', ARGV[4]) end
if ARGV[1] == 'running' and not redis.call('HGET', KEYS[1], 'started_at') then
  redis.call('HSET', KEYS[1], 'started_at', ARGV[5])
end
return 1
"""


class RedisJobStore:
    prefix = "fashion:indexer:job:"

    def __init__(self, redis_url: str, ttl_s: int = 7 * 24 * 3600) -> None:
        import redis

        self.redis = redis.Redis.from_url(redis_url, decode_responses=True)
        self.ttl_s = ttl_s
        self._complete = self.redis.register_script(_COMPLETE_CHUNK)
        self._set_state = self.redis.register_script(_SET_STATE)

    def _keys(self, job_id: str) -> tuple[str, str, str]:
        base = self.prefix + job_id
        return base, base + ":chunks", base + ":failures"

    def create(self, spec: JobSpec, failures: list[Failure]) -> None:
        key, chunks, fails = self._keys(spec.job_id)
        pipe = self.redis.pipeline()
        pipe.hset(key, mapping={"spec": json.dumps(asdict(spec)), "state": "pending", "chunks_done": 0,
                                "chunks_failed": 0, "items_indexed": 0, "items_processed": 0, "error": ""})
        if failures:
            pipe.hset(fails, mapping={_failure_key(f): json.dumps(asdict(f)) for f in failures})
        for k in (key, chunks, fails):
            pipe.expire(k, self.ttl_s)
        pipe.execute()

    def get(self, job_id: str) -> JobStatus:
        key, _, fails = self._keys(job_id)
        data = self.redis.hgetall(key)
        if not data:
            raise NotFoundError(f"no indexing job {job_id!r} (jobs are kept 7 days)")
        failures = [Failure(**json.loads(v)) for v in self.redis.hvals(fails)]
        return JobStatus(
            spec=JobSpec(**json.loads(data["spec"])), state=data["state"],
            chunks_done=int(data.get("chunks_done", 0)), chunks_failed=int(data.get("chunks_failed", 0)),
            items_indexed=int(data.get("items_indexed", 0)), items_processed=int(data.get("items_processed", 0)),
            started_at=float(data.get("started_at", 0)), finished_at=float(data.get("finished_at", 0)),
            error=data.get("error", ""), index_count=int(data.get("index_count", -1)),
            failures=sorted(failures, key=lambda f: (f.line, f.product_id)))

    def set_state(self, job_id: str, state: str, error: str = "", index_count: int = -1) -> None:
        now = time.time()
        finished = str(now) if state in TERMINAL_STATES else "0"
        self._set_state(keys=[self._keys(job_id)[0]], args=[state, error, finished, index_count, now])

    def complete_chunk(self, job_id: str, chunk: int, indexed: int, processed: int, failures: list[Failure],
                       failed: bool = False) -> int:
        args: list[Any] = [chunk, indexed, processed, "1" if failed else "0"]
        for f in failures:
            args += [_failure_key(f), json.dumps(asdict(f))]
        return int(self._complete(keys=list(self._keys(job_id)), args=args))

    def get_state(self, job_id: str) -> str:
        state = self.redis.hget(self._keys(job_id)[0], "state")
        if state is None:
            raise NotFoundError(f"no indexing job {job_id!r}")
        return str(state)

    def claim_finalize(self, job_id: str, owner: str) -> bool:
        key = self.prefix + job_id + ":finalize"
        if self.redis.set(key, owner, nx=True, ex=900):
            return True
        return self.redis.get(key) == owner

    def release_finalize(self, job_id: str) -> None:
        self.redis.delete(self.prefix + job_id + ":finalize")


class FileJobStore:
    """In-process jobs: one JSON file per job under ``<home>/jobs`` so that ``status`` can read it later."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._chunks: dict[str, set[int]] = {}
        self._finalizing: set[str] = set()

    def _path(self, job_id: str) -> Path:
        return self.root / f"{job_id}.json"

    def _write(self, status: JobStatus) -> None:
        path = self._path(status.spec.job_id)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(status)), encoding="utf-8")
        tmp.replace(path)

    def create(self, spec: JobSpec, failures: list[Failure]) -> None:
        with self._lock:
            self._chunks[spec.job_id] = set()
            self._write(JobStatus(spec=spec, failures=list(failures)))

    def get(self, job_id: str) -> JobStatus:
        try:
            data = json.loads(self._path(job_id).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise NotFoundError(f"no indexing job {job_id!r} in {self.root}") from None
        spec = JobSpec(**data.pop("spec"))
        failures = [Failure(**f) for f in data.pop("failures")]
        return JobStatus(spec=spec, failures=failures, **data)

    def set_state(self, job_id: str, state: str, error: str = "", index_count: int = -1) -> None:
        with self._lock:
            status = self.get(job_id)
            if status.state in TERMINAL_STATES:
                return
            status.state, status.error = state, error
            if state == "running" and not status.started_at:
                status.started_at = time.time()
            if state in TERMINAL_STATES:
                status.finished_at = time.time()
            if index_count >= 0:
                status.index_count = index_count
            self._write(status)

    def complete_chunk(self, job_id: str, chunk: int, indexed: int, processed: int, failures: list[Failure],
                       failed: bool = False) -> int:
        with self._lock:
            done = self._chunks.setdefault(job_id, set())
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
                self._write(status)
            return len(done)

    def get_state(self, job_id: str) -> str:
        return self.get(job_id).state

    def claim_finalize(self, job_id: str, owner: str) -> bool:
        with self._lock:
            if job_id in self._finalizing:
                return False
            self._finalizing.add(job_id)
            return True

    def release_finalize(self, job_id: str) -> None:
        with self._lock:
            self._finalizing.discard(job_id)
