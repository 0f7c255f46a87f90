"""Helpers for the indexer tests: real Celery worker processes, polling, truth about a catalog, catalog edits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

# a db of its own, flushed around every test that uses it; TEST_REDIS_URL points a run at another server
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
ROOT = Path(__file__).resolve().parents[2]


def wait_until(predicate: Callable[[], object], timeout_s: float = 120.0, poll_s: float = 0.05) -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll_s)
    raise AssertionError(f"condition not met within {timeout_s}s")


def loadable_ids(catalog_dir: Path) -> set[int]:
    """Ground truth: the products the reader accepts whose image actually decodes."""
    from fashion_core.catalog.reader import read_catalog
    from fashion_core.errors import FashionSearchError
    from fashion_core.images import load_image

    good = set()
    for product in read_catalog(catalog_dir).products:
        try:
            load_image(product.image_path)
            good.add(product.id)
        except FashionSearchError:
            pass
    return good


class Workers:
    """Celery worker processes started for one test; every one is killed at teardown."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env, self.log_dir = env, log_dir
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, pool: str = "solo", concurrency: int = 1) -> subprocess.Popen[bytes]:
        log = (self.log_dir / f"worker-{name}.log").open("wb")
        cmd = [sys.executable, "-m", "celery", "-A", "indexer.celery_app", "worker", "-Q", "indexer", "-P", pool,
               "-c", str(concurrency), "-n", f"{name}@%h", "-l", "INFO", "--without-gossip", "--without-mingle",
               "--without-heartbeat"]
        proc = subprocess.Popen(cmd, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.procs.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL the whole worker (process group): nothing gets a chance to ack or clean up."""
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill(proc)


def worker_env(redis_url: str, model_dir: Path, index_dir: Path, home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASHION_")}
    env.update(FASHION_REDIS_URL=redis_url, FASHION_MODEL=str(model_dir), FASHION_INDEX_BACKEND="faiss",
               FASHION_INDEX_DIR=str(index_dir), FASHION_HOME=str(home), FASHION_DEVICE="cpu",
               FASHION_INDEXER_VISIBILITY_TIMEOUT_S="4", FASHION_INDEXER_STALL_S="20", OMP_NUM_THREADS="1",
               TOKENIZERS_PARALLELISM="false",
               HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
    env.update(extra)
    return env


def edit_catalog(src: Path, dst: Path, drop: set[int] = frozenset(), rename: dict[int, str] | None = None,
                 copies: dict[int, int] | None = None) -> Path:
    """A changed catalog (a copy, or ``src`` itself when ``dst == src``): rows dropped, display names changed,
    new products copied from old ones."""
    import csv
    import io
    import shutil

    rename, copies = rename or {}, copies or {}
    if dst != src:
        shutil.copytree(src, dst)
    # latin-1 round-trips every byte, so rows left alone (one is not UTF-8) stay byte-identical.
    lines = (src / "styles.csv").read_bytes().decode("latin-1").splitlines()
    out = [lines[0]]
    by_id: dict[int, list[str]] = {}
    for line in lines[1:]:
        first = line.split(",", 1)[0]
        pid = int(first) if first.isdigit() else None
        if pid in drop:
            (dst / "images" / f"{pid}.jpg").unlink(missing_ok=True)
            continue
        if pid in rename:
            row = next(csv.reader([line]))
            row[9:] = [rename[pid]]
            buf = io.StringIO()
            csv.writer(buf, lineterminator="").writerow(row)
            line = buf.getvalue()
        if pid is not None:
            by_id[pid] = next(csv.reader([line]))
        out.append(line)
    for new_id, old_id in copies.items():
        row = [str(new_id), *by_id[old_id][1:]]
        buf = io.StringIO()
        csv.writer(buf, lineterminator="").writerow(row)
        out.append(buf.getvalue())
        shutil.copy(src / "images" / f"{old_id}.jpg", dst / "images" / f"{new_id}.jpg")
    (dst / "styles.csv").write_bytes(("\n".join(out) + "\n").encode("latin-1"))
    return dst


class RedisServer:
    """A throwaway redis-server of this test (never the shared one) on a free port, persisting to ``data_dir``
    (append-only file, fsync always) so that a restart keeps jobs, queues and unacked messages."""

    def __init__(self, data_dir: Path) -> None:
        import socket

        self.data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        import redis

        log = (self.data_dir / "redis.log").open("ab")
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.data_dir),
             "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--protected-mode", "no"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        client = redis.Redis(port=self.port)
        wait_until(lambda: _pings(client), timeout_s=20)

    def stop(self) -> None:
        """Shut down as an operator restarting Redis would (SIGTERM: the append-only file is complete)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)
        self.proc = None

    def restart(self, down_s: float) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()


def _pings(client) -> bool:
    import redis

    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False
