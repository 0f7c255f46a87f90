"""The gateway's JSON API on bad input from the field: request bodies bounded before they are read, typed JSON
fields, ids, years and index names out of range, uploads read like a viewer shows them. The real Starlette app
(served by uvicorn, or driven through ASGI to count the bytes it reads) in front of the real query service."""

from __future__ import annotations

import asyncio
import io
import json
import select
import socket
from pathlib import Path

import httpx
import pytest
from PIL import Image

from fashion_core.images import load_image
from tests.web.conftest import free_port, serve_app

LIMIT = 200_000  # --max-upload-mb of these tests, in bytes
BOUNDARY = "XyZ"


@pytest.fixture(scope="module")
def app(query_service, synthetic_catalog):
    from services.gateway.app import create_app
    from services.gateway.grpc_port import GrpcQueryPort

    return create_app(GrpcQueryPort(query_service.address), catalog_roots=[synthetic_catalog],
                      max_upload_bytes=LIMIT)


@pytest.fixture(scope="module")
def gateway(app):
    yield from serve_app(app, free_port())


def _part_header(name: str = "image", filename: str = "x.png") -> bytes:
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n"
            "Content-Type: image/png\r\n\r\n").encode()


def test_uploads_over_the_limit_are_413(gateway) -> None:
    with httpx.Client(base_url=gateway, timeout=30) as client:
        for path in ("/api/search/image", "/api/classify"):
            for size in (LIMIT + 1, LIMIT + 1024, LIMIT + 10 * 1024 * 1024):
                response = client.post(path, files={"image": ("x.png", b"\0" * size)})
                assert response.status_code == 413, (path, size)
                assert "limit" in response.json()["error"]
        at_limit = client.post("/api/search/image", files={"image": ("x.png", b"\0" * LIMIT)})
        assert at_limit.status_code == 400 and "image" in at_limit.json()["error"]  # fits; just not an image
        big_json = client.post("/api/search/text", content=b'{"query": "' + b"a" * 70_000 + b'"}',
                               headers={"content-type": "application/json"})
        assert big_json.status_code == 413


def test_chunked_upload_is_refused_once_past_the_limit(gateway) -> None:
    """No Content-Length: the gateway answers 413 while the client is still sending, instead of reading (and
    spooling to disk) whatever comes."""
    host, port = gateway.removeprefix("http://").split(":")
    chunk, cap, sent, reply = b"\0" * 16384, 8 * 1024 * 1024, 0, b""
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(b"POST /api/search/image HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n"
                     b"Content-Type: multipart/form-data; boundary=" + BOUNDARY.encode() + b"\r\n\r\n")
        first = _part_header()
        sock.sendall(b"%x\r\n%s\r\n" % (len(first), first))
        try:
            while sent < cap and not reply:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
                if select.select([sock], [], [], 0.02)[0]:
                    reply = sock.recv(65536)
        except (BrokenPipeError, ConnectionResetError):
            pass
        if not reply:
            sock.settimeout(10)
            reply = sock.recv(65536)
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert sent < cap  # answered while the client was still sending


def test_the_app_never_reads_past_the_limit(app) -> None:
    """Through ASGI, counting the body bytes the app pulls: a 64 MiB chunked upload is read only up to the
    limit (plus the form's allowance and one chunk)."""
    from services.gateway.app import MULTIPART_OVERHEAD

    chunk, total = b"\0" * 65536, 64 * 1024 * 1024
    pulled, messages = 0, []

    async def receive() -> dict:
        nonlocal pulled
        body = _part_header() if pulled == 0 else chunk
        pulled += len(body)
        return {"type": "http.request", "body": body, "more_body": pulled < total}

    async def send(message: dict) -> None:
        messages.append(message)

    for path in ("/api/search/image", "/api/search/text"):
        pulled, messages = 0, []
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                 "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
                 "headers": [(b"content-type", f"multipart/form-data; boundary={BOUNDARY}".encode()),
                             (b"transfer-encoding", b"chunked")],
                 "server": ("testserver", 80), "client": ("127.0.0.1", 1)}
        asyncio.run(app(scope, receive, send))
        assert messages[0]["status"] == 413, path
        assert pulled <= LIMIT + MULTIPART_OVERHEAD + len(chunk), (path, pulled)


def test_json_fields_must_have_their_types(gateway) -> None:
    with httpx.Client(base_url=gateway, timeout=30) as client:
        def text(**body) -> httpx.Response:  # ASCII JSON: lone surrogates travel as \\u escapes
            return client.post("/api/search/text", content=json.dumps(body),
                               headers={"content-type": "application/json"})

        for body, message in (({"query": ["red"]}, "query must be a string"), ({"query": 5}, "query must be"),
                              ({"query": "red", "k": 3.7}, "k must be an integer"),
                              ({"query": "red", "k": True}, "k must be an integer"),
                              ({"query": "red", "k": "5"}, "k must be an integer"),
                              ({"query": "red", "index": 7}, "index must be a string"),
                              ({"query": "red", "mode": 3}, "mode must be a string"),
                              ({"query": "red", "mode": "sparse"}, "unknown search mode 'sparse'"),
                              ({"query": "red", "filters": {"gender": {"a": 1}}}, "filter gender must be"),
                              ({"query": "red", "filters": {"year_min": 2012.5}}, "year_min must be an integer"),
                              ({"query": "\ud800red"}, "not valid Unicode"),
                              ({"query": "red", "filters": {"gender": ["\udfff"]}}, "not valid Unicode"),
                              ({"query": "\u200b\u200b\u2060"}, "empty"), ({"query": "\ufeff \u200d"}, "empty")):
            response = text(**body)
            assert response.status_code == 400, body
            assert message in response.json()["error"], (body, response.json())
        ok = text(query="red dress", k=3, filters={"gender": ["Women"], "year_min": 2010})
        assert ok.status_code == 200 and len(ok.json()["hits"]) == 3
        assert {h["matched"] for h in ok.json()["hits"]} <= {"dense", "lexical", "dense+lexical"}
        words = text(query="puma", k=3, mode="lexical").json()["hits"]
        assert words and all(h["matched"] == "lexical" and "Puma" in h["product"]["productDisplayName"]
                             for h in words)
        params = client.post("/api/search/image", files={"image": ("x.png", b"\0" * 10)},
                             data={"params": '{"k": 2.5}'})
        assert params.status_code == 400 and "k must be an integer" in params.json()["error"]


def test_ids_years_and_index_names_out_of_range(gateway, synthetic_catalog) -> None:
    huge = "1" * 23
    secret = str(Path(synthetic_catalog).resolve())
    with httpx.Client(base_url=gateway, timeout=30) as client:
        for body in ({"id": int(huge)}, {"id": huge}, {"id": 0}, {"id": -4}, {"id": 1.5}):
            assert client.post("/api/similar", json=body).status_code == 400, body
        assert client.post("/api/similar", json={"id": 10003, "k": 2}).status_code == 200
        for year in (int(huge), -5, 0, 10_000):
            response = client.post("/api/search/text", json={"query": "dress", "filters": {"year_min": year}})
            assert response.status_code == 400, year
            assert client.post("/api/search/text", json={"query": "dress", "filters": {"year_max": year}}
                               ).status_code == 400
        assert client.get(f"/images/{huge}").status_code == 404
        assert client.get("/images/0").status_code == 404
        assert client.get("/api/localize", params={"id": huge, "query": "dress"}).status_code == 400

        for index in (secret, "../../private/faiss/secret", "a/b"):
            assert client.post("/api/search/text", json={"query": "dress", "index": index}).status_code == 400
            assert client.get("/api/meta", params={"index": index}).status_code == 400
        assert client.post("/api/search/text", json={"query": "dress", "index": "nope"}).status_code == 404
        meta = client.get("/api/meta").json()
        assert [i["name"] for i in meta["indexes"]] == ["products"]


def test_uploaded_phone_photo_is_read_upright(gateway, synthetic_catalog) -> None:
    upright = load_image(synthetic_catalog / "images" / "10005.jpg")
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    upright.transpose(Image.Transpose.ROTATE_90).save(buf, format="PNG", exif=exif.tobytes())
    with httpx.Client(base_url=gateway, timeout=30) as client:
        hits = client.post("/api/search/image", files={"image": ("phone.png", buf.getvalue())}).json()["hits"]
    assert hits[0]["id"] == 10005 and hits[0]["score"] == pytest.approx(1.0, abs=1e-4)


class _StaticPort:
    """A QueryPort that only answers the page's meta call: one model, one index, fixed facets."""

    def serving(self):
        from services.gateway.port import IndexSummary, ServingInfo

        return ServingInfo("tiny", "v1", {}, [IndexSummary("products", 3, "faiss")])

    def facets(self, index: str) -> dict[str, list[str]]:
        return {"gender": ["Men", "Women"], "season": ["Summer"]}

    def search_text(self, *args, **kwargs):
        raise AssertionError("a bad k reached the query service")


def test_meta_serves_the_filter_fields_from_the_one_python_list(monkeypatch, tmp_path) -> None:
    import services.gateway.app as gateway_app
    from fashion_core.catalog.schema import KEYWORDS, KeywordField

    async def meta() -> dict:
        app = gateway_app.create_app(_StaticPort(), catalog_roots=[tmp_path])
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as client:
            return (await client.get("/api/meta")).json()

    assert asyncio.run(meta())["filter_fields"] == [{"name": f.name, "label": f.label} for f in KEYWORDS]
    monkeypatch.setattr(gateway_app, "KEYWORDS", (KeywordField("season", "season", "Time of year"),))
    assert asyncio.run(meta())["filter_fields"] == [{"name": "season", "label": "Time of year"}]
    # the page has no list of its own to drift from this one
    script = (gateway_app.STATIC_DIR / "app.js").read_text()
    assert not any(f'"{f.label}"' in script for f in KEYWORDS)


def test_k_keeps_its_messages_at_the_gateway(tmp_path) -> None:
    import services.gateway.app as gateway_app

    async def text(k) -> httpx.Response:
        app = gateway_app.create_app(_StaticPort(), catalog_roots=[tmp_path])
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as client:
            return await client.post("/api/search/text", json={"query": "red", "k": k})

    for k, message in ((0, "k must be positive, got 0"), (-2, "k must be positive, got -2"),
                       (201, "k must be between 1 and 200, got 201"), (None, "k must be an integer")):
        response = asyncio.run(text(k))
        assert response.status_code == 400 and message in response.json()["error"], (k, response.json())
