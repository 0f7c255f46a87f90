"""The search page end to end in headless Chromium: text search, photo upload, filters, errors."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from services.channel import free_ports
from tests.web.conftest import free_port, serve_app

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gateway(query_service, synthetic_catalog):
    """The page and its API, talking to the query service over gRPC."""
    from services.gateway.app import create_app
    from services.gateway.grpc_port import GrpcQueryPort

    app = create_app(GrpcQueryPort(query_service.address), catalog_roots=[synthetic_catalog],
                     max_upload_bytes=200_000)
    yield from serve_app(app, free_port())


def _result_ids(page) -> list[int]:
    return [int(x) for x in page.locator("#results .item").evaluate_all("els => els.map(e => e.dataset.id)")]


def test_text_search_renders_a_grid_and_filters_change_it(page, gateway, tmp_path: Path) -> None:
    page.goto(gateway)
    page.wait_for_selector("#filter-gender option[value=Men]", state="attached")
    page.fill("#query", "red dress")
    page.fill("#k", "8")
    page.click("#search-button")
    page.wait_for_function("document.querySelectorAll('#results .item').length === 8")
    page.screenshot(path=str(tmp_path / "text-search.png"), full_page=True)
    unfiltered = _result_ids(page)
    images = page.locator("#results .item img")
    assert images.first.evaluate("img => img.complete && img.naturalWidth > 0")

    page.select_option("#filter-gender", "Men")
    page.select_option("#filter-masterCategory", "Footwear")
    page.click("#search-button")
    page.wait_for_function("[...document.querySelectorAll('#results .attrs')].every("
                           "a => a.textContent.startsWith('Men'))")
    page.screenshot(path=str(tmp_path / "filtered.png"), full_page=True)
    filtered = _result_ids(page)
    attrs = page.locator("#results .attrs").all_inner_texts()
    assert filtered and filtered != unfiltered
    assert all(a.startswith("Men · ") for a in attrs)
    assert all(re.search(r"Casual Shoes|Sports Shoes|Sandals|Heels", a) for a in attrs)
    assert page.locator("#error").is_hidden()


def test_uploaded_photo_returns_results_and_more_like_this(page, gateway, synthetic_catalog, tmp_path) -> None:
    page.goto(gateway)
    page.set_input_files("#file", str(synthetic_catalog / "images" / "10005.jpg"))
    page.wait_for_selector("#preview", state="visible")
    page.click("#search-button")
    page.wait_for_selector("#results .item")
    page.screenshot(path=str(tmp_path / "photo-search.png"), full_page=True)
    assert _result_ids(page)[0] == 10005  # the same picture is its own nearest neighbour
    assert "photo search" in page.inner_text("#status")

    page.locator("#results .item").nth(1).click()
    page.wait_for_function("document.querySelector('#status').textContent.includes('more like')")
    assert page.locator("#results .item").count() > 0

    page.fill("#labels", "sandals, heels, watch")
    page.click("#classify-button")
    page.wait_for_selector("#bars .bar")
    assert page.locator("#bars .bar").count() == 3


def test_bad_uploads_and_empty_queries_show_errors(page, gateway, tmp_path: Path) -> None:
    page.goto(gateway)
    page.click("#search-button")
    page.wait_for_selector("#error", state="visible")
    assert "Type a description" in page.inner_text("#error")

    page.set_input_files("#file", files=[{"name": "broken.jpg", "mimeType": "image/jpeg",
                                          "buffer": b"\xff\xd8\xff\xe0 this is not really a jpeg"}])
    page.click("#search-button")
    page.wait_for_function("document.querySelector('#error').textContent.includes('image')")
    page.screenshot(path=str(tmp_path / "corrupt-upload.png"), full_page=True)
    assert re.search(r"not a readable image|corrupt image", page.inner_text("#error"))

    page.set_input_files("#file", files=[{"name": "huge.png", "mimeType": "image/png", "buffer": b"\0" * 400_000}])
    page.click("#search-button")
    page.wait_for_function("document.querySelector('#error').textContent.includes('limit')")


def test_gateway_api_guards(gateway, synthetic_catalog) -> None:
    with httpx.Client(base_url=gateway) as client:
        assert client.get("/images/10001").status_code == 200
        assert client.get("/images/10001").headers["content-type"] == "image/jpeg"
        for path in ("/images/..%2F..%2Fetc%2Fpasswd", "/images/999999", "/static/..%2F..%2Fapp.py",
                     "/images/10001%2F..%2F..%2Fstyles.csv"):
            response = client.get(path)
            assert response.status_code == 404, path
            assert b"root:" not in response.content
        assert client.post("/api/search/text", json={"query": "dress", "k": 0}).status_code == 400
        bad_filter = client.post("/api/search/text", json={"query": "dress", "filters": {"gender": ["Martian"]}})
        assert bad_filter.status_code == 400 and "unknown gender value" in bad_filter.json()["error"]
        assert client.post("/api/search/text", content=b"{not json", headers={"content-type":
                                                                              "application/json"}).status_code == 400
        too_big = client.post("/api/search/image", files={"image": ("x.png", b"\0" * 300_000)})
        assert too_big.status_code == 413
        meta = client.get("/api/meta").json()
        assert "Men" in meta["facets"]["gender"] and meta["indexes"][0]["size"] == 143


def test_mode_switch_and_what_matched_on_each_result(page, gateway, tmp_path: Path) -> None:
    page.goto(gateway)
    page.wait_for_selector("#filter-gender option[value=Men]", state="attached")
    assert page.locator("#mode input[value=hybrid]").is_checked()  # the default
    page.fill("#query", "puma")
    page.fill("#k", "4")
    page.check("#mode input[value=lexical]")
    page.click("#search-button")
    page.wait_for_function("document.querySelectorAll('#results .item').length > 0 && "
                           "document.querySelector('#status').textContent.includes('(words)')")
    names = page.locator("#results .name").all_inner_texts()
    assert names and all("Puma" in n for n in names)
    assert set(page.locator("#results .matched").all_inner_texts()) == {"matched: words"}
    page.check("#mode input[value=dense]")
    page.click("#search-button")
    page.wait_for_function("document.querySelector('#status').textContent.includes('(picture)')")
    assert set(page.locator("#results .matched").all_inner_texts()) == {"matched: picture"}
    page.check("#mode input[value=hybrid]")
    page.click("#search-button")
    page.wait_for_function("document.querySelector('#status').textContent.includes('(words + picture)')")
    page.screenshot(path=str(tmp_path / "hybrid.png"), full_page=True)
    shown = set(page.locator("#results .matched").all_inner_texts())
    assert shown and shown <= {"matched: picture", "matched: words", "matched: words + picture"}


def test_heatmap_overlay_and_model_card(page, gateway, tmp_path: Path) -> None:
    page.goto(gateway)
    page.check("#heatmap")
    page.fill("#query", "blue jeans")
    page.fill("#k", "3")
    page.click("#search-button")
    page.wait_for_function("[...document.querySelectorAll('#results img.overlay')].length === 3 && "
                           "[...document.querySelectorAll('#results img.overlay')].every(i => i.complete "
                           "&& i.naturalWidth > 0)", timeout=60_000)
    page.screenshot(path=str(tmp_path / "heatmaps.png"), full_page=True)
    page.click("#card-toggle")
    assert "random init" in page.inner_text("#card-body")


def test_query_service_down_shows_an_error_not_a_blank_page(page, synthetic_catalog, tmp_path: Path) -> None:
    from services.gateway.app import create_app
    from services.gateway.grpc_port import GrpcQueryPort

    nobody, port = free_ports(2)  # distinct: the page's own port must not be the dead query address
    dead = create_app(GrpcQueryPort(f"127.0.0.1:{nobody}", timeout_s=3), catalog_roots=[synthetic_catalog])
    for url in serve_app(dead, port):
        page.goto(url)
        page.wait_for_selector("#error", state="visible")
        assert "query service" in page.inner_text("#error") and "unavailable" in page.inner_text("#error")
        page.fill("#query", "red dress")
        page.click("#search-button")
        page.wait_for_function("document.querySelector('#error').textContent.includes('unavailable')")
        page.screenshot(path=str(tmp_path / "service-down.png"), full_page=True)
        assert page.locator("h1").inner_text() == "fashion-search"


def test_the_filter_selects_come_from_the_servers_list(page, monkeypatch, tmp_path: Path) -> None:
    """The page builds its filter selects from /api/meta: a change to the Python list shows in the page."""
    import services.gateway.app as gateway_app
    from fashion_core.catalog.schema import KeywordField
    from services.gateway.port import IndexSummary, ServingInfo

    class Port:  # only the page's meta call
        def serving(self) -> ServingInfo:
            return ServingInfo("tiny", "v1", {}, [IndexSummary("products", 3, "faiss")])

        def facets(self, index: str) -> dict[str, list[str]]:
            return {"gender": ["Men", "Women"], "season": ["Summer", "Winter"]}

    monkeypatch.setattr(gateway_app, "KEYWORDS", (KeywordField("season", "season", "Time of year"),))
    for url in serve_app(gateway_app.create_app(Port(), catalog_roots=[tmp_path]), free_port()):
        page.goto(url)
        page.wait_for_selector("#filter-season option[value=Winter]", state="attached")
        labels = page.locator("#filter-selects label").evaluate_all(
            "ls => ls.map(l => l.firstChild.textContent.trim())")
        assert labels == ["Time of year"]
        assert page.locator("#filter-gender").count() == 0  # facets alone do not make a select
