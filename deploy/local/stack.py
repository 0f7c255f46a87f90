"""The Helm chart's topology as local processes, without Kubernetes: the encoder service, the query service (using
the encoder service), one Celery worker and the admin service, on loopback ports, with Redis on loopback.

Each part is the same `fashion-search` command its container runs, in its own process group, logging to a file.
``start`` returns once every gRPC part answers grpc.health.v1 SERVING and the worker answers a Celery ping;
``stop`` sends SIGTERM (the services' graceful stop, Celery's warm shutdown) in reverse order, and SIGKILLs a
process group that outlives its grace.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fashion_core.errors import InvalidInputError, UnavailableError
from fashion_core.settings import Settings, check_redis_url
from fashion_core.stores.backends import open_store
from services.channel import free_ports

log = logging.getLogger(__name__)

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/3"  # a db of its own: the test suite uses 9 and flushes it
ENSURE_REDIS = Path(__file__).resolve().parents[2] / "scripts" / "ensure-redis.sh"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
WORKER_NAME = "local-stack-worker"


@dataclass
class StackConfig:
    redis_url: str = DEFAULT_REDIS_URL
    host: str = "127.0.0.1"
    encoder_port: int = 50051  # 0 = any free port
    query_port: int = 50052
    admin_port: int | None = 50053  # None = no admin service
    worker_concurrency: int = 1
    worker_pool: str = "solo"
    log_dir: Path | None = None  # default: <FASHION_HOME>/local-stack
    ready_timeout_s: float = 180.0
    grace_s: float = 10.0


@dataclass
class Part:
    """One started process of the stack."""

    name: str
    address: str  # host:port, or the Celery node name of the worker
    proc: subprocess.Popen[bytes]
    log_path: Path
    ready: Callable[[], bool] = field(repr=False)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def settings_env(settings: Settings) -> dict[str, str]:
    """``settings`` as the FASHION_* variables that make a child process see the same settings."""
    return {f"FASHION_{key.upper()}": str(value) for key, value in settings.model_dump().items() if value is not None}


def settings_of(env: Mapping[str, str]) -> Settings:
    """The settings a child started with ``env`` reads (FASHION_* of ``env``, not of this process)."""
    prefix = "FASHION_"
    values: dict[str, Any] = {key[len(prefix):].lower(): value for key, value in env.items()
              if key.startswith(prefix) and key != "FASHION_CONFIG"}
    return Settings(**values)


def _listening(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.settimeout(1.0)
        return s.connect_ex((host, port)) == 0


def ensure_redis(url: str) -> None:
    """Redis answers at ``url``; on loopback, scripts/ensure-redis.sh starts one when none listens."""
    try:
        check_redis_url(url)
    except InvalidInputError as exc:
        raise InvalidInputError(f"--redis-url {url!r}: {exc}") from None
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 6379
    if _listening(host, port):
        return
    if host not in LOOPBACK or not ENSURE_REDIS.is_file():
        raise UnavailableError(f"no Redis at {host}:{port} (start one, e.g. scripts/ensure-redis.sh)")
    log.info("no Redis on %s:%d: starting one with %s", host, port, ENSURE_REDIS)
    result = subprocess.run(["bash", str(ENSURE_REDIS)], env={**os.environ, "REDIS_PORT": str(port)},
                            capture_output=True, text=True, timeout=300)
    if result.returncode != 0 or not _listening(host, port):
        raise UnavailableError(f"could not start Redis on {host}:{port}: {result.stderr.strip()[-500:]}")


def grpc_serving(address: str, service: str = "") -> Callable[[], bool]:
    """A check that the gRPC server at ``address`` reports ``service`` (its full name, e.g.
    ``fashionsearch.v1.QueryService``; "" = the server as a whole) SERVING by the standard health protocol. Naming
    the service tells the server a part started from whatever else may hold that port."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    def check() -> bool:
        with grpc.insecure_channel(address) as channel:
            try:
                reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service),
                                                                  timeout=1.0)
            except grpc.RpcError:
                return False
        return reply.status == health_pb2.HealthCheckResponse.SERVING

    return check


def celery_answers(redis_url: str, node: str) -> Callable[[], bool]:
    from indexer.celery_app import make_app

    app = make_app(Settings(redis_url=redis_url))

    def check() -> bool:
        return any(node in reply for reply in app.control.ping(destination=[node], timeout=1.0))

    return check


class LocalStack:
    """Start with ``start()`` (or ``with LocalStack(...) as stack``); ``parts`` lists what runs."""

    def __init__(self, config: StackConfig | None = None, env: Mapping[str, str] | None = None) -> None:
        self.config = config or StackConfig()
        self.env = dict(os.environ if env is None else env)
        self.settings = settings_of(self.env)
        store = open_store(self.settings)  # asked a capability only: nothing is opened
        shared = store.multi_process
        store.close()
        if not shared:  # embedded Qdrant
            raise InvalidInputError("local-stack: embedded Qdrant allows one process per store, and the query service "
                                    "and the workers' finalize step both open it; use --backend faiss or a Qdrant "
                                    "server (--qdrant-url)")
        self.log_dir = Path(self.config.log_dir or self.settings.home / "local-stack")
        self.parts: list[Part] = []

    def _addresses(self, *ports: int | None) -> list[str]:
        """host:port for each configured port; 0 takes a free port, distinct from the others chosen here."""
        free = iter(free_ports(sum(1 for p in ports if p == 0), self.config.host))
        return [f"{self.config.host}:{port or next(free)}" for port in ports if port is not None]

    def _spawn(self, name: str, address: str, args: list[str], ready: Callable[[], bool], env: dict[str, str]) -> None:
        log_path = self.log_dir / f"{name}.log"
        with log_path.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "fashion_cli.main", *args], env=env,
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)  # Ctrl-C reaches only us; we stop the children
        self.parts.append(Part(name, address, proc, log_path, ready))

    def start(self) -> list[Part]:
        # the services' names, imported only here: `fashion-search` builds its parser from this module, and the
        # client role has no server packages (Prometheus)
        from indexer.admin_service import SERVICE_NAME as ADMIN_SERVICE
        from services.encoder_service import SERVICE as ENCODER_SERVICE
        from services.query_service import SERVICE as QUERY_SERVICE

        cfg = self.config
        ensure_redis(cfg.redis_url)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        encoder, query, *admin_address = self._addresses(cfg.encoder_port, cfg.query_port, cfg.admin_port)
        env = {**self.env, "FASHION_REDIS_URL": cfg.redis_url, "FASHION_ENCODER_ADDRESS": encoder,
               "FASHION_QUERY_ADDRESS": query}
        host = cfg.host
        try:
            self._spawn("encoder", encoder, ["serve-encoder", "--host", host, "--port", encoder.rsplit(":", 1)[1]],
                        grpc_serving(encoder, ENCODER_SERVICE), env)
            self._spawn("query", query, ["serve-query", "--host", host, "--port", query.rsplit(":", 1)[1],
                                         "--encoder-address", encoder], grpc_serving(query, QUERY_SERVICE), env)
            node = f"{WORKER_NAME}@{socket.gethostname()}"
            self._spawn("worker", node, ["worker", "--redis-url", cfg.redis_url, "--hostname", node,
                                         "--pool", cfg.worker_pool, "--concurrency", str(cfg.worker_concurrency)],
                        celery_answers(cfg.redis_url, node), env)
            for admin in admin_address:
                self._spawn("admin", admin, ["serve-admin", "--address", admin, "--redis-url", cfg.redis_url],
                            grpc_serving(admin, ADMIN_SERVICE), env)
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self.parts

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.config.ready_timeout_s
        waiting = list(self.parts)
        while waiting:
            self.check_alive()
            waiting = [part for part in waiting if not part.ready()]
            if waiting and time.monotonic() > deadline:
                names = ", ".join(f"{p.name} ({p.log_path})" for p in waiting)
                raise UnavailableError(f"not ready after {self.config.ready_timeout_s:.0f}s: {names}")
            if waiting:
                time.sleep(0.2)

    def check_alive(self) -> None:
        """Raise when a part has exited (it never should while the stack runs)."""
        for part in self.parts:
            if part.proc.poll() is not None:
                raise UnavailableError(f"{part.name} exited with code {part.proc.returncode}; the end of "
                                       f"{part.log_path}:\n{part.log_tail()}")

    def stop(self) -> None:
        """SIGTERM each process group, front first, waiting up to grace_s for each; SIGKILL what is left."""
        for part in reversed(self.parts):
            _signal_group(part.proc.pid, signal.SIGTERM)
            try:
                part.proc.wait(self.config.grace_s)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0fs: killing it", part.name, self.config.grace_s)
            # Also reaps what the part left behind in its group (e.g. prefork pool children).
            _signal_group(part.proc.pid, signal.SIGKILL)
            part.proc.wait()

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
