"""The install roles (pyproject.toml): the client role runs without the server role's libraries.

``pip install fashion-search`` is the client: the gRPC clients, the web gateway and the CLI's client commands.
These tests import them in a fresh interpreter in which torch, transformers, FAISS, Qdrant, Celery, Redis, BM25,
matplotlib and Prometheus cannot be imported, as on a machine with only the client installed.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVER_ONLY = ("torch", "transformers", "tokenizers", "faiss", "qdrant_client", "bm25s", "Stemmer", "celery", "redis",
               "matplotlib", "prometheus_client", "grpc_health", "grpc_reflection", "onnxruntime")
BLOCKER = """
import importlib.abc, sys
BLOCKED = set(sys.argv[1].split(","))
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"{name} is not installed (client role)", name=name)
sys.meta_path.insert(0, Blocker())
exec(sys.argv[2])
"""


def run_as_client(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", BLOCKER, ",".join(SERVER_ONLY), code], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)


def test_the_gateway_and_the_clients_import_without_the_server_libraries() -> None:
    result = run_as_client("import services.gateway.app, services.gateway.grpc_port, services.query_client\n"
                           "import fashion_cli.commands_web")
    assert result.returncode == 0, result.stderr


def test_the_cli_serves_the_web_page_as_a_client() -> None:
    result = run_as_client("import sys\nfrom fashion_cli.main import main\nsys.argv = ['fashion-search']\n"
                           "try:\n    main(['serve-web', '--help'])\nexcept SystemExit as e:\n    sys.exit(e.code)")
    assert result.returncode == 0, result.stderr
    assert "serve-web" in result.stdout


def test_the_blocker_does_block() -> None:
    result = run_as_client("import faiss")
    assert result.returncode != 0 and "client role" in result.stderr


def test_the_client_role_lists_none_of_the_server_libraries() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {dep.split(">")[0].split("=")[0].split("[")[0].split("<")[0].strip().lower()
             for dep in project["dependencies"]}
    server = {"torch", "transformers", "tokenizers", "faiss-cpu", "qdrant-client", "bm25s", "pystemmer", "celery",
              "redis", "matplotlib", "prometheus-client"}
    assert not names & server
    extras = project["optional-dependencies"]
    assert {"server", "indexer", "train", "all", "dev"} <= set(extras)
