"""What every service app shares: errors as JSON, health, Prometheus metrics, protobuf bodies."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Coroutine
from contextlib import asynccontextmanager, suppress
from typing import Any, TypeVar

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from google.protobuf.message import DecodeError, Message
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from imsearch.errors import ConfigError, ImageTooLarge, IndexNotReady, UnsupportedMediaType
from services.common.codec import PROTOBUF
from services.common.errors import error_body, install_error_handlers

M = TypeVar("M", bound=Message)
log = logging.getLogger(__name__)

#: Latency buckets from 1 ms to 30 s.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Health(BaseModel):
    status: str
    detail: dict[str, Any] = {}


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable, machine-readable: see docs/API.md.")
    message: str = Field(description="For people; may change between releases.")


class ErrorBody(BaseModel):
    """Every error of every service has this shape."""

    error: ErrorDetail


_MEANING = {
    400: "Invalid input: not an image, bad id, bad parameter or body (see error.code).",
    401: "Missing or wrong X-API-Key (gateway) or X-Internal-Token (internal services).",
    403: "This API key may not do this: another collection's key, or read-only there.",
    404: "No image with this id, or no collection with this name (see error.code).",
    409: "The collection holds descriptors of another model, or the collection exists.",
    413: "The body is over the upload limit.",
    415: "An image format the engine does not read, or a body of another Content-Type.",
    422: "A required field or parameter is missing or out of range.",
    429: "Over the rate limit; retry after Retry-After seconds.",
    503: "Still loading, or a service it needs is down or too slow; retry later.",
}


#: What any internal route can answer besides 200: bad body, no token, too big, not ready.
INTERNAL_ERRORS = (400, 401, 413, 415, 503)


def errors(
    *codes: int, more: dict[int | str, dict[str, Any]] | None = None
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these error statuses, all with the one error shape, and
    ``more`` responses as given."""
    found: dict[int | str, dict[str, Any]] = {
        code: {"model": ErrorBody, "description": _MEANING[code]} for code in codes
    }
    return found | (more or {})


def protobuf_io(request: type[Message], response: type[Message], *codes: int) -> dict[str, Any]:
    """Route arguments documenting a protobuf body in and out (contracts in proto/v1)."""
    binary = {PROTOBUF: {"schema": {"type": "string", "format": "binary"}}}
    return {
        "response_class": Response,
        "openapi_extra": {
            "requestBody": {
                "required": True,
                "description": f"A serialized {request.DESCRIPTOR.full_name} message.",
                "content": binary,
            }
        },
        "responses": {
            200: {
                "description": f"A serialized {response.DESCRIPTOR.full_name}.",
                "content": binary,
            }
        }
        | errors(*codes),
    }


class Metrics:
    """One registry per app, so several apps can live in one process (tests)."""

    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "imsearch_requests_total",
            "HTTP requests by route and status",
            ["service", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "imsearch_request_seconds",
            "HTTP request latency by route",
            ["service", "route"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.stages = Histogram(
            "imsearch_stage_seconds",
            "Time per pipeline stage (gateway)",
            ["stage"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.cache = Counter(
            "imsearch_cache_total",
            "Query-descriptor cache lookups",
            ["result"],
            registry=self.registry,
        )
        self.refused = Counter(
            "imsearch_refused_total",
            "Requests refused before reaching a route (unauthorized, rate_limited)",
            ["service", "reason"],
            registry=self.registry,
        )
        self.service = service


def service_app(service: str, title: str, lifespan: Any, summary: str = "") -> FastAPI:
    """A FastAPI app with the shared error handlers, /healthz and /metrics.

    Operation ids are the route functions' names (``search``, ``add_image``): the method
    names of clients generated from the OpenAPI description.
    """
    app = FastAPI(
        title=title,
        version="1",
        summary=summary,
        lifespan=lifespan,
        generate_unique_id_function=lambda route: route.name,
    )
    _describe_uploads_as_files(app)
    install_error_handlers(app)
    metrics = Metrics(service)
    app.state.metrics = metrics

    @app.middleware("http")
    async def _measure(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        metrics.requests.labels(service, path, str(response.status_code)).inc()
        metrics.latency.labels(service, path).observe(time.perf_counter() - started)
        return response

    @app.get("/healthz", response_model=Health, tags=["health"])
    async def healthz() -> Health:
        return Health(status="ok")

    @app.get(
        "/metrics",
        tags=["health"],
        response_class=Response,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
        name="metrics",
    )
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


def _describe_uploads_as_files(app: FastAPI) -> None:
    """Uploads as ``format: binary`` strings besides OpenAPI 3.1's ``contentMediaType``.

    FastAPI describes an ``UploadFile`` only by ``contentMediaType``, which client generators
    (openapi-python-client, openapi-generator) read as a plain string and send as a text
    field; ``format: binary`` is what they all treat as a file part.
    """
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            for component in schema.get("components", {}).get("schemas", {}).values():
                for prop in component.get("properties", {}).values():
                    if prop.get("type") == "string" and "contentMediaType" in prop:
                        prop.setdefault("format", "binary")
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def require_media_type(
    app: FastAPI, media_type: str, paths: Collection[str] = (), patterns: Collection[str] = ()
) -> None:
    """POST routes at ``paths`` or matching one of the regular expressions ``patterns`` (every
    ``/v1/`` POST route when both are empty) must be sent a body declared as ``media_type``:
    anything else is a 415 before the body is read. Other paths and methods go on to the
    router (a 404 or 405 stays one)."""
    guarded: set[str] = set(paths)
    matchers = [re.compile(p) for p in patterns]

    @app.middleware("http")
    async def _media_type(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if not guarded and not matchers:  # routes are declared after this: look them up once
            guarded.update(
                path
                for route in app.routes
                if "POST" in getattr(route, "methods", ())
                and (path := getattr(route, "path", "")).startswith("/v1/")
            )
        path = request.url.path
        if request.method == "POST" and (
            path in guarded or any(m.fullmatch(path) for m in matchers)
        ):
            declared = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if declared != media_type:
                message = f"send the body as {media_type}, not {declared or 'nothing'}"
                return JSONResponse(error_body(UnsupportedMediaType.code, message), 415)
        return await call_next(request)


async def read_message(request: Request, cls: type[M], max_bytes: int) -> M:
    """Parse a protobuf body, refusing more than ``max_bytes`` while reading it."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise ImageTooLarge(f"the request body exceeds {max_bytes} bytes")
        chunks.append(chunk)
    message = cls()
    try:
        message.ParseFromString(b"".join(chunks))
    except DecodeError as exc:
        raise ConfigError(f"the body is not a valid {cls.DESCRIPTOR.full_name} message") from exc
    return message


def protobuf_response(message: Message, status_code: int = 200) -> Response:
    return Response(message.SerializeToString(), status_code=status_code, media_type=PROTOBUF)


async def every(
    interval_s: float,
    step: Callable[[], object],
    what: str,
    on_error: Callable[[Exception], None] | None = None,
) -> None:
    """Run ``step`` in a worker thread now and then every ``interval_s`` seconds, forever.

    An empty collection (IndexNotReady) is normal; any other failure is logged, handed to
    ``on_error`` and never ends the loop: upkeep must not take a service down.
    """
    while True:
        try:
            await run_in_threadpool(step)
        except IndexNotReady:
            pass
        except Exception as exc:
            log.exception("%s failed", what)
            if on_error is not None:
                on_error(exc)
        await asyncio.sleep(interval_s)


@asynccontextmanager
async def running(job: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    """Run ``job`` in the background for the life of the block (an app's lifespan)."""
    task = asyncio.get_running_loop().create_task(job)
    try:
        yield
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
