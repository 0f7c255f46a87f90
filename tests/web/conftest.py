"""A real HTTP gateway on a free loopback port, and headless Debian Chromium driven by Playwright."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.channel import free_ports

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    (port,) = free_ports(1)
    return port


def serve_app(app, port: int) -> Iterator[str]:
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("gateway did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: scripts/setup-env.sh installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture()
def page(browser, tmp_path: Path):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    yield page
    page.screenshot(path=str(tmp_path / "final.png"), full_page=True)
    context.close()


@pytest.fixture(scope="module")
def query_service(tmp_path_factory, tiny_model_dir, synthetic_catalog):
    """The real query service (encoder in-process) over a FAISS index of the synthetic catalog."""
    from fashion_core.ingest import index_catalog
    from fashion_core.model.encoder import ClipEncoder
    from fashion_core.settings import Settings
    from fashion_core.stores.backends import open_index
    from services.query_service import start_query_server

    settings = Settings(model=str(tiny_model_dir), index_backend="faiss",
                        index_dir=tmp_path_factory.mktemp("web-index"), home=tmp_path_factory.mktemp("home"))
    encoder = ClipEncoder.from_pretrained(tiny_model_dir, device="cpu")
    index = open_index(settings)
    index_catalog(synthetic_catalog, encoder, index)
    index.close()
    server, servicer = start_query_server(settings, encoder=encoder)
    yield server
    server.stop(0)
    servicer.indexes.close()
