"""The ASGI app: the page, its static files, product images and the JSON API over a SearchBackend."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from fashion_core.catalog.reader import IMAGE_SUFFIXES
from fashion_core.errors import (
    FashionSearchError,
    InvalidInputError,
    NotFoundError,
    ResourceExhaustedError,
    UnavailableError,
)
from fashion_core.index.base import SearchHit
from fashion_core.index.filters import SearchFilter
from services.gateway.backend import SearchBackend

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).parent / "static"
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_JSON_BYTES = 64 * 1024

STATUS = {InvalidInputError: 400, NotFoundError: 404, ResourceExhaustedError: 429, UnavailableError: 503}


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _filter(data: dict[str, Any]) -> SearchFilter:
    raw = data.get("filters") or {}
    if not isinstance(raw, dict):
        raise InvalidInputError("filters must be an object")
    values = {k: v for k, v in raw.items() if k not in ("year_min", "year_max")}
    return SearchFilter.build(year_min=_opt_int(raw.get("year_min"), "year_min"),
                              year_max=_opt_int(raw.get("year_max"), "year_max"), **values)


def _opt_int(value: Any, name: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name} must be an integer, got {value!r}") from None


def _k(data: dict[str, Any]) -> int:
    k = _opt_int(data.get("k", 12), "k")
    if k is None or not 0 < k <= 200:
        raise InvalidInputError(f"k must be between 1 and 200, got {data.get('k')!r}")
    return k


def create_app(backend: SearchBackend, catalog_roots: Sequence[Path | str],
               max_upload_bytes: int = MAX_UPLOAD_BYTES) -> Starlette:
    roots = [Path(r).resolve() for r in catalog_roots]

    def guarded(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        """Size limit on the request, and project errors turned into JSON errors the page shows."""

        async def wrapper(request: Request) -> Response:
            length = request.headers.get("content-length")
            limit = max_upload_bytes if "multipart" in request.headers.get("content-type", "") else MAX_JSON_BYTES
            if length and length.isdigit() and int(length) > limit + 4096:
                return _error(413, f"request of {int(length)} bytes is over the limit of {limit} bytes")
            try:
                return await handler(request)
            except FashionSearchError as exc:
                status = next((code for kind, code in STATUS.items() if isinstance(exc, kind)), 500)
                if status >= 500:
                    log.warning("%s %s failed: %s", request.method, request.url.path, exc)
                return _error(status, str(exc))
            except (json.JSONDecodeError, UnicodeDecodeError):
                return _error(400, "request body is not valid JSON")

        return wrapper

    async def read_json(request: Request) -> dict[str, Any]:
        body = await request.body()
        if len(body) > MAX_JSON_BYTES:
            raise InvalidInputError(f"request body over {MAX_JSON_BYTES} bytes")
        data = json.loads(body or b"{}")
        if not isinstance(data, dict):
            raise InvalidInputError("request body must be a JSON object")
        return data

    async def read_upload(request: Request) -> tuple[bytes, dict[str, Any]]:
        form = await request.form(max_files=1, max_fields=10, max_part_size=max_upload_bytes)
        upload = form.get("image")
        if not isinstance(upload, UploadFile):
            raise InvalidInputError("no image uploaded (form field 'image')")
        data = await upload.read(max_upload_bytes + 1)
        if len(data) > max_upload_bytes:
            raise InvalidInputError(f"image over the limit of {max_upload_bytes} bytes")
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        return data, fields

    def hits_json(hits: list[SearchHit], started: float, index: str) -> JSONResponse:
        suffix = f"?index={index}" if index else ""
        return JSONResponse({
            "took_ms": round(1000 * (time.perf_counter() - started), 1),
            "hits": [{"id": h.id, "score": h.score, "product": h.payload, "image_url": f"/images/{h.id}{suffix}"}
                     for h in hits],
        })

    async def page(request: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html")

    async def meta(request: Request) -> Response:
        index = request.query_params.get("index", "")
        serving = await run_in_threadpool(backend.serving)
        facets = await run_in_threadpool(backend.facets, index)
        return JSONResponse({"model": {"model_id": serving.model_id, "version": serving.version,
                                       "card": serving.card},
                             "indexes": [asdict(i) for i in serving.indexes], "facets": facets})

    async def search_text(request: Request) -> Response:
        started = time.perf_counter()
        data = await read_json(request)
        query = str(data.get("query") or "").strip()
        if not query:
            raise InvalidInputError("the text query is empty")
        index = str(data.get("index") or "")
        hits = await run_in_threadpool(backend.search_text, query, _k(data), _filter(data), index)
        return hits_json(hits, started, index)

    async def search_image(request: Request) -> Response:
        started = time.perf_counter()
        image, fields = await read_upload(request)
        data = json.loads(fields.get("params") or "{}")
        index = str(data.get("index") or "")
        hits = await run_in_threadpool(backend.search_image, image, _k(data), _filter(data), index)
        return hits_json(hits, started, index)

    async def similar(request: Request) -> Response:
        started = time.perf_counter()
        data = await read_json(request)
        product_id = _opt_int(data.get("id"), "id")
        if product_id is None:
            raise InvalidInputError("no product id given")
        index = str(data.get("index") or "")
        hits = await run_in_threadpool(backend.similar, product_id, _k(data), _filter(data), index)
        return hits_json(hits, started, index)

    async def classify(request: Request) -> Response:
        image, fields = await read_upload(request)
        labels = [label.strip() for label in fields.get("labels", "").split(",") if label.strip()]
        scores = await run_in_threadpool(backend.classify, image, labels)
        return JSONResponse({"labels": [asdict(s) for s in scores]})

    async def localize(request: Request) -> Response:
        product_id = _opt_int(request.query_params.get("id"), "id")
        query = request.query_params.get("query", "").strip()
        if product_id is None or not query:
            raise InvalidInputError("localize needs id and query")
        png = await run_in_threadpool(backend.localize, product_id, query, request.query_params.get("index", ""))
        return Response(png, media_type="image/png", headers={"Cache-Control": "max-age=300"})

    async def product_image(request: Request) -> Response:
        try:
            product_id = int(request.path_params["product_id"])
        except ValueError:
            raise NotFoundError("no such product image") from None
        product = await run_in_threadpool(backend.product, product_id, request.query_params.get("index", ""))
        path = Path(str(product.get("image") or ""))
        resolved = path.resolve() if str(path) else None
        # Only files inside a configured catalog root, with an image suffix: no traversal via payloads.
        if (resolved is None or resolved.suffix.lower() not in IMAGE_SUFFIXES or not resolved.is_file()
                or not any(resolved.is_relative_to(root) for root in roots)):
            raise NotFoundError(f"no image for product {product_id}")
        return FileResponse(resolved, headers={"Cache-Control": "max-age=3600"})

    routes = [
        Route("/", page),
        Route("/api/meta", guarded(meta)),
        Route("/api/search/text", guarded(search_text), methods=["POST"]),
        Route("/api/search/image", guarded(search_image), methods=["POST"]),
        Route("/api/similar", guarded(similar), methods=["POST"]),
        Route("/api/classify", guarded(classify), methods=["POST"]),
        Route("/api/localize", guarded(localize)),
        Route("/images/{product_id}", guarded(product_image)),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    return Starlette(routes=routes)
