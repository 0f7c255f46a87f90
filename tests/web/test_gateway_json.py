"""What the gateway's JSON gives and takes: ids are JSON integers (never a string or a boolean coerced), a hit's
product names its picture by the gateway's image URL (never the server's file path), and a malformed multipart
``params`` field is named as such. The real Starlette app served by uvicorn in front of the real query service."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.web.conftest import free_port, serve_app


@pytest.fixture(scope="module")
def gateway(query_service, synthetic_catalog):
    from services.gateway.app import create_app
    from services.gateway.grpc_port import GrpcQueryPort

    app = create_app(GrpcQueryPort(query_service.address), catalog_roots=[synthetic_catalog])
    yield from serve_app(app, free_port())


def test_similar_takes_only_an_integer_id(gateway) -> None:
    with httpx.Client(base_url=gateway, timeout=30) as client:
        for bad in ("10003", "0010003", True, False, 10003.0, [10003], {"id": 10003}):
            response = client.post("/api/similar", json={"id": bad, "k": 2})
            assert response.status_code == 400, bad
            assert "id must be an integer" in response.json()["error"], (bad, response.json())
        assert client.post("/api/similar", json={"k": 2}).json() == {"error": "no product id given"}
        ok = client.post("/api/similar", json={"id": 10003, "k": 2})
        assert ok.status_code == 200 and len(ok.json()["hits"]) == 2


def test_hits_name_their_image_by_url_never_by_server_path(gateway, synthetic_catalog) -> None:
    root = str(Path(synthetic_catalog).resolve())
    with httpx.Client(base_url=gateway, timeout=30) as client:
        responses = [client.post("/api/search/text", json={"query": "red dress", "k": 5}),
                     client.post("/api/similar", json={"id": 10003, "k": 5}),
                     client.post("/api/search/image",
                                 files={"image": ("q.jpg", (synthetic_catalog / "images" / "10005.jpg").read_bytes())},
                                 data={"params": '{"k": 5}'})]
        for response in responses:
            assert response.status_code == 200, response.text
            assert root not in response.text and str(synthetic_catalog) not in response.text
            hits = response.json()["hits"]
            assert len(hits) == 5
            for hit in hits:
                assert hit["product"]["image"] == hit["image_url"] == f"/images/{hit['id']}"
                picture = client.get(hit["product"]["image"])  # the client can use it as it is
                assert picture.status_code == 200 and picture.headers["content-type"] == "image/jpeg"


def test_a_malformed_params_field_is_named(gateway, synthetic_catalog) -> None:
    image = (synthetic_catalog / "images" / "10005.jpg").read_bytes()
    with httpx.Client(base_url=gateway, timeout=30) as client:
        for params in ("{k: 5", "[1,", "nan-sense"):
            response = client.post("/api/search/image", files={"image": ("q.jpg", image)}, data={"params": params})
            assert response.status_code == 400, params
            error = response.json()["error"]
            assert "form field 'params' is not valid JSON" in error and "request body" not in error, error
        response = client.post("/api/search/image", files={"image": ("q.jpg", image)}, data={"params": "[1]"})
        assert response.status_code == 400 and "params must be a JSON object" in response.json()["error"]
        broken = client.post("/api/search/text", content=b"{not json", headers={"content-type": "application/json"})
        assert broken.status_code == 400 and broken.json()["error"] == "request body is not valid JSON"


def test_unknown_fields_are_refused_and_a_misplaced_filter_is_named(gateway, synthetic_catalog) -> None:
    """A filter field beside "filters" instead of inside it used to be ignored: the search ran unfiltered. Every
    JSON endpoint now refuses fields it does not know, naming them and where filters go."""
    image = (synthetic_catalog / "images" / "10005.jpg").read_bytes()
    with httpx.Client(base_url=gateway, timeout=30) as client:
        responses = [client.post("/api/search/text", json={"query": "dress", "baseColour": "Red"}),
                     client.post("/api/similar", json={"id": 10003, "gender": "Men"}),
                     client.post("/api/search/image", files={"image": ("q.jpg", image)},
                                 data={"params": '{"k": 5, "articleType": "Dresses"}'})]
        for response in responses:
            assert response.status_code == 400, response.text
            error = response.json()["error"]
            assert "unknown field(s)" in error and 'filters go inside "filters"' in error, error
        typo = client.post("/api/search/text", json={"query": "dress", "kk": 3}).json()["error"]
        assert "kk" in typo and "filters go inside" not in typo
        ok = client.post("/api/search/text", json={"query": "dress", "k": 3, "filters": {"baseColour": "Red"},
                                                   "mode": "dense", "index": ""})
        assert ok.status_code == 200 and all(h["product"]["baseColour"] == "Red" for h in ok.json()["hits"])
