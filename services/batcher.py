"""Dynamic batching: concurrent requests merged into model batches (max size / max wait), bounded queue.

Each request's items are validated before they are queued, so one caller's bad input never fails the
batch it would have shared with others.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np

from fashion_core.errors import DeadlineExceededError, ResourceExhaustedError
from services.metrics import BATCH_SIZE, QUEUE_DEPTH

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class _Request(Generic[T]):
    items: Sequence[T]
    future: Future = field(default_factory=Future)


class DynamicBatcher(Generic[T]):
    def __init__(self, encode: Callable[[list[T]], np.ndarray], name: str, max_batch: int = 32,
                 max_wait_ms: float = 5.0, queue_size: int = 256) -> None:
        self.encode = encode
        self.name = name
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.queue_size = queue_size
        self._queue: queue.Queue[_Request[T] | None] = queue.Queue()
        self._pending = 0  # submitted and not yet answered: queued, collecting or in the model
        self._pending_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"batcher-{name}", daemon=True)
        self._thread.start()

    def submit(self, items: Sequence[T], timeout: float | None = None) -> np.ndarray:
        """Encode ``items`` in some model batch; blocks until done or ``timeout`` seconds pass."""
        with self._pending_lock:
            if self._pending >= self.queue_size:
                raise ResourceExhaustedError(f"{self.name} encoder queue is full ({self.queue_size} requests "
                                             "waiting); retry later")
            self._pending += 1
            QUEUE_DEPTH.labels(self.name).set(self._pending)
        request: _Request[T] = _Request(items)
        request.future.add_done_callback(self._done)
        self._queue.put(request)
        try:
            return request.future.result(timeout=timeout)
        except FutureTimeout:
            request.future.cancel()  # skipped by the worker if not yet in a batch
            raise DeadlineExceededError(f"{self.name} encoding did not finish within {timeout:.3f}s") from None

    def _done(self, _: Future) -> None:
        with self._pending_lock:
            self._pending -= 1
            QUEUE_DEPTH.labels(self.name).set(self._pending)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)

    def _collect(self, first: _Request[T]) -> tuple[list[_Request[T]], bool]:
        batch, size = [first], len(first.items)
        deadline = time.monotonic() + self.max_wait
        while size < self.max_batch:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                nxt = self._queue.get(timeout=remaining)
            except queue.Empty:
                break
            if nxt is None:
                return batch, True
            batch.append(nxt)
            size += len(nxt.items)
        return batch, False

    def _run(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is None:
                return
            batch, stop = self._collect(first)
            live = [r for r in batch if r.future.set_running_or_notify_cancel()]
            if not live:
                continue
            items: list[Any] = [item for r in live for item in r.items]
            BATCH_SIZE.labels(self.name).observe(len(items))
            try:
                vectors = self.encode(items)
            except Exception as exc:  # fail this batch's callers, keep serving
                log.exception("%s batch of %d failed", self.name, len(items))
                for r in live:
                    r.future.set_exception(exc)
                continue
            start = 0
            for r in live:
                r.future.set_result(vectors[start:start + len(r.items)])
                start += len(r.items)
