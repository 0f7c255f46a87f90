"""The ASGI app: the page, its static files, product images and the JSON API over a QueryPort."""

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
from starlette.types import Message, Receive

from fashion_core.catalog.reader import IMAGE_SUFFIXES
from fashion_core.catalog.schema import KEYWORD_FIELDS, KEYWORDS, parse_product_id, product_id_problem
from fashion_core.errors import FashionSearchError, InvalidInputError, NotFoundError, TooLargeError
from fashion_core.search import check_k
from fashion_core.stores.base import SearchHit
from fashion_core.stores.filters import SearchFilter
from services.gateway.port import QueryPort
from services.status import http_status_of

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).parent / "static"
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_JSON_BYTES = 64 * 1024
MAX_PAGE_K = 200  # results one page asks for (the query service allows up to fashion_core.search.MAX_K)

MULTIPART_OVERHEAD = MAX_JSON_BYTES + 16 * 1024  # the form's params field, boundaries and part headers


class BodyLimit:
    """An ASGI ``receive`` that raises TooLargeError once more than ``limit`` body bytes came in, so that no
    reader (JSON, the multipart parser and its spooled files) ever gets a byte past the limit, with or without
    a Content-Length (chunked uploads)."""

    def __init__(self, receive: Receive, limit: int) -> None:
        self.receive, self.limit, self.received = receive, limit, 0

    async def __call__(self) -> Message:
        message = await self.receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit:
                raise TooLargeError(f"request body over the limit of {self.limit} bytes")
        return message


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


# JSON fields are taken as the types they are, never coerced: ["red"] is not the text "['red']", 3.7 is not 3.
def _filter(data: dict[str, Any]) -> SearchFilter:
    raw = data.get("filters") or {}
    if not isinstance(raw, dict):
        raise InvalidInputError("filters must be an object")
    values = {k: v for k, v in raw.items() if k not in ("year_min", "year_max")}
    for name, value in values.items():
        if not (isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))):
            raise InvalidInputError(f"filter {name} must be a string or a list of strings, got {value!r}")
        for text in [value] if isinstance(value, str) else value:
            _text(text, f"filter {name}")
    return SearchFilter.build(year_min=_opt_int(raw.get("year_min"), "year_min"),
                              year_max=_opt_int(raw.get("year_max"), "year_max"), **values)


def _only(data: dict[str, Any], known: Sequence[str], what: str) -> dict[str, Any]:
    """``data`` when it names only ``known`` fields; InvalidInputError naming the others (a filter field given
    beside "filters" instead of inside it was silently ignored: the search ran unfiltered)."""
    unknown = sorted(set(data) - set(known))
    if unknown:
        filters = [name for name in unknown if name in KEYWORD_FIELDS or name in ("year_min", "year_max")]
        hint = f"; filters go inside \"filters\", e.g. {{\"filters\": {{\"{filters[0]}\": ...}}}}" if filters else ""
        raise InvalidInputError(f"unknown field(s) in {what}: {', '.join(unknown)}; known: {', '.join(known)}{hint}")
    return data


def _opt_int(value: Any, name: str) -> int | None:
    """A JSON integer (None when absent); InvalidInputError for anything else (floats, strings, booleans)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"{name} must be an integer, got {value!r}")
    return value


def _json_field(fields: dict[str, str], name: str) -> Any:
    """The multipart form field ``name`` parsed as JSON ({} when absent); InvalidInputError naming the field."""
    try:
        return json.loads(fields.get(name) or "{}")
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"form field {name!r} is not valid JSON: {exc.msg} (char {exc.pos})") from None


def _str(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidInputError(f"{name} must be a string, got {value!r}")
    return _text(value, name)


def _text(value: str, name: str) -> str:
    """``value`` if it is valid Unicode text (JSON allows lone surrogates, which no gRPC message can carry)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError(f"{name} is not valid Unicode text") from None
    return value


def _k(data: dict[str, Any]) -> int:
    """The JSON ``k`` (default 12): an integer, within the page's limit."""
    k = _opt_int(data.get("k", 12), "k")
    if k is None:
        raise InvalidInputError("k must be an integer, got None")
    return check_k(k, MAX_PAGE_K)


def create_app(backend: QueryPort, catalog_roots: Sequence[Path | str],
               max_upload_bytes: int = MAX_UPLOAD_BYTES) -> Starlette:
    roots = [Path(r).resolve() for r in catalog_roots]

    upload_limit = max_upload_bytes + MULTIPART_OVERHEAD

    def guarded(handler: Callable[[Request], Awaitable[Response]],
                body_limit: int = MAX_JSON_BYTES) -> Callable[[Request], Awaitable[Response]]:
        """Size limit on the request body (413 from Content-Length before reading, or while reading once the
        limit is passed), and project errors turned into JSON errors the page shows."""

        async def wrapper(request: Request) -> Response:
            length = request.headers.get("content-length")
            if length and length.isdigit() and int(length) > body_limit:
                return _error(413, f"request of {int(length)} bytes is over the limit of {body_limit} bytes")
            request = Request(request.scope, BodyLimit(request.receive, body_limit))
            try:
                return await handler(request)
            except FashionSearchError as exc:
                status = http_status_of(exc)
                if status >= 500:
                    log.warning("%s %s failed: %s", request.method, request.url.path, exc)
                return _error(status, str(exc))
            except (json.JSONDecodeError, UnicodeDecodeError):
                return _error(400, "request body is not valid JSON")

        return wrapper

    async def read_json(request: Request) -> dict[str, Any]:
        body = await request.body()  # BodyLimit stops it at MAX_JSON_BYTES
        data = json.loads(body or b"{}")
        if not isinstance(data, dict):
            raise InvalidInputError("request body must be a JSON object")
        return data

    async def read_upload(request: Request) -> tuple[bytes, dict[str, Any]]:
        # the body is cut at upload_limit by BodyLimit; the image part itself must fit max_upload_bytes
        form = await request.form(max_files=1, max_fields=10, max_part_size=MAX_JSON_BYTES)
        upload = form.get("image")
        if not isinstance(upload, UploadFile):
            raise InvalidInputError("no image uploaded (form field 'image')")
        data = await upload.read(max_upload_bytes + 1)
        if len(data) > max_upload_bytes:
            raise TooLargeError(f"image over the limit of {max_upload_bytes} bytes")
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        return data, fields

    def hits_json(hits: list[SearchHit], started: float, index: str) -> JSONResponse:
        suffix = f"?index={index}" if index else ""

        def hit_json(h: SearchHit) -> dict[str, Any]:
            # The payload's image is a path on the server: the client gets the URL this gateway serves it at.
            url = f"/images/{h.id}{suffix}"
            product = {**h.payload, "image": url} if h.payload.get("image") else h.payload
            return {"id": h.id, "score": h.score, "matched": h.matched, "product": product, "image_url": url}

        return JSONResponse({"took_ms": round(1000 * (time.perf_counter() - started), 1),
                             "hits": [hit_json(h) for h in hits]})

    async def page(request: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html")

    async def meta(request: Request) -> Response:
        index = request.query_params.get("index", "")
        serving = await run_in_threadpool(backend.serving)
        facets = await run_in_threadpool(backend.facets, index)
        return JSONResponse({"model": {"model_id": serving.model_id, "version": serving.version,
                                       "card": serving.card},
                             "indexes": [asdict(i) for i in serving.indexes], "facets": facets,
                             # the page's filter selects, in order: a field's key in "facets" and "filters"
                             "filter_fields": [{"name": f.name, "label": f.label} for f in KEYWORDS]})

    async def search_text(request: Request) -> Response:
        started = time.perf_counter()
        data = _only(await read_json(request), ("query", "k", "filters", "index", "mode"), "the request")
        query = _str(data, "query").strip()
        if not query:
            raise InvalidInputError("the text query is empty")
        index = _str(data, "index")
        hits = await run_in_threadpool(backend.search_text, query, _k(data), _filter(data), index,
                                       _str(data, "mode"))
        return hits_json(hits, started, index)

    async def search_image(request: Request) -> Response:
        started = time.perf_counter()
        image, fields = await read_upload(request)
        data = _json_field(fields, "params")
        if not isinstance(data, dict):
            raise InvalidInputError("params must be a JSON object")
        _only(data, ("k", "filters", "index"), "params")
        index = _str(data, "index")
        hits = await run_in_threadpool(backend.search_image, image, _k(data), _filter(data), index)
        return hits_json(hits, started, index)

    async def similar(request: Request) -> Response:
        started = time.perf_counter()
        data = _only(await read_json(request), ("id", "k", "filters", "index"), "the request")
        raw_id = _opt_int(data.get("id"), "id")  # a JSON integer: "59263" or true is not an id
        if raw_id is None:
            raise InvalidInputError("no product id given")
        product_id = parse_product_id(raw_id, "id")
        index = _str(data, "index")
        hits = await run_in_threadpool(backend.similar, product_id, _k(data), _filter(data), index)
        return hits_json(hits, started, index)

    async def classify(request: Request) -> Response:
        image, fields = await read_upload(request)
        labels = [label.strip() for label in fields.get("labels", "").split(",") if label.strip()]
        scores = await run_in_threadpool(backend.classify, image, labels)
        return JSONResponse({"labels": [asdict(s) for s in scores]})

    async def localize(request: Request) -> Response:
        raw_id, query = request.query_params.get("id", ""), request.query_params.get("query", "").strip()
        if not raw_id or not query:
            raise InvalidInputError("localize needs id and query")
        product_id = parse_product_id(raw_id, "id")
        png = await run_in_threadpool(backend.localize, product_id, query, request.query_params.get("index", ""))
        return Response(png, media_type="image/png", headers={"Cache-Control": "max-age=300"})

    async def product_image(request: Request) -> Response:
        raw_id = request.path_params["product_id"]
        if product_id_problem(raw_id) is not None:
            raise NotFoundError("no such product image")
        product_id = int(raw_id)
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
        Route("/api/search/image", guarded(search_image, upload_limit), methods=["POST"]),
        Route("/api/similar", guarded(similar), methods=["POST"]),
        Route("/api/classify", guarded(classify, upload_limit), methods=["POST"]),
        Route("/api/localize", guarded(localize)),
        Route("/images/{product_id}", guarded(product_image)),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    return Starlette(routes=routes)
