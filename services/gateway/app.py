"""The public API (gateway). Each stage runs in this process or in its service (see compose).

GET    /v1/collections              the collections (a key limited to some: those)
POST   /v1/collections              JSON {name, index_spec?} → 201
GET    /v1/collections/{name}       its size and index spec
DELETE /v1/collections/{name}       drop it: its data leaves the disk

Per collection, under /v1/collections/{name} (and without the prefix: ``default``):
POST   …/search             multipart ``image`` (+ k, rerank, m, min_inliers, min_confidence,
                            knobs, filter)
POST   …/images             multipart ``image`` + ``id`` + ``metadata`` (JSON) → 201
GET    …/images/{id}        content hash and metadata
DELETE …/images/{id}
GET    …/stats
GET    /healthz /readyz /metrics, OpenAPI at /docs
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import APIKeyHeader
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from imsearch.collection import check_name
from imsearch.errors import ImsearchError, IndexNotReady
from imsearch.index.specs import resolve
from imsearch.settings import Settings
from services.common.access import API_KEY_HEADER, install_public_access
from services.common.app import (
    Health,
    errors,
    every,
    require_media_type,
    running,
    service_app,
)
from services.common.errors import error_body
from services.common.uploads import BodyLimit
from services.gateway.compose import CollectionAdmin, Gateway, compose
from services.gateway.models import (
    CollectionCreate,
    CollectionInfo,
    CollectionList,
    DropResponse,
)
from services.gateway.routes import (
    MAX_METADATA_BYTES,
    MAX_METADATA_DEPTH,
    _metadata,
    gateway_of,
    image_routes,
)

log = logging.getLogger(__name__)

#: The web page: plain HTML/CSS/JS, no build step, nothing from a CDN.
STATIC = Path(__file__).parent / "static"
__all__ = ["MAX_METADATA_BYTES", "MAX_METADATA_DEPTH", "_metadata", "create_app"]
#: Room for the multipart framing, the id and the metadata around an image at the limit.
MULTIPART_OVERHEAD = 64 * 1024


def create_app(settings: Settings | None = None, gateway: Gateway | None = None) -> FastAPI:
    """Build the app around ``gateway``, or compose one in the background once it starts.

    Composing may wait for other services (a gateway holding an index needs the remote
    extractor's model id): until it succeeds the app answers ``/healthz`` and a ``/readyz``
    503 that says why, and tries again every few seconds; nothing has to start first.
    """
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with running(_serve(app, settings)):
            yield
        if app.state.gateway is not None:
            await run_in_threadpool(app.state.gateway.close)

    app = service_app("gateway", "imsearch", lifespan, "Search an image collection by photo.")
    require_media_type(
        app,
        "multipart/form-data",
        ("/v1/search", "/v1/images"),
        (r"/v1/collections/[^/]+/(search|images)",),
    )
    install_public_access(app, settings)
    app.state.gateway = gateway
    #: Why the gateway is not composed yet (shown by /readyz).
    app.state.waiting = "the engine is loading"
    metrics = app.state.metrics
    # Documents X-API-Key in the OpenAPI description (clients generated from it send it);
    # the check itself is the access middleware's, for every route at once.
    keyed = [Depends(APIKeyHeader(name=API_KEY_HEADER, scheme_name="ApiKey", auto_error=False))]
    read_keyed = keyed if settings.search_requires_key else []

    images = image_routes(settings, metrics, keyed, read_keyed)
    app.include_router(images, prefix="/v1")
    app.include_router(
        images,
        prefix="/v1/collections/{collection}",
        dependencies=[Depends(_named)],
        generate_unique_id_function=lambda route: f"{route.name}_in_collection",
    )
    _collection_routes(app, keyed, read_keyed)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/readyz", response_model=Health, tags=["health"], responses=errors(503))
    async def readyz(request: Request) -> Any:
        gateway: Gateway | None = request.app.state.gateway
        if gateway is None:
            return JSONResponse(error_body("not_ready", request.app.state.waiting), 503)
        detail = await run_in_threadpool(gateway.readiness)
        if any(state == "down" for state in detail.values()):
            return JSONResponse(
                {**error_body("not_ready", "a service is down"), "detail": detail}, 503
            )
        status = "degraded" if "degraded" in detail.values() else "ready"
        return Health(status=status, detail=detail)

    # Outermost: an oversized body is refused before any other layer reads it.
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.max_upload_bytes + MULTIPART_OVERHEAD,
        announced=settings.max_upload_bytes,
    )
    return app


#: Seconds between two attempts to compose the gateway while a dependency is down.
COMPOSE_RETRY_S = 2.0


async def _serve(app: FastAPI, settings: Settings) -> None:
    """Compose the gateway (again and again until it works), then look after it."""
    while app.state.gateway is None:
        try:
            app.state.gateway = await run_in_threadpool(compose, settings)
        except ImsearchError as exc:  # a service down, another writer stopping: not fatal
            reason = f"{exc.code}: {exc.message}"
            if reason != app.state.waiting:
                log.warning(
                    "gateway not ready, trying again every %g s: %s", COMPOSE_RETRY_S, reason
                )
            app.state.waiting = reason
            await asyncio.sleep(COMPOSE_RETRY_S)
    await every(settings.maintenance_s, app.state.gateway.maintain, "gateway upkeep")


def _named(
    collection: Annotated[
        str, PathParam(description="The collection's name (the routes without it: 'default').")
    ],
) -> None:
    """Declares the path's collection (documented for clients); handlers read it from the
    path themselves, so the same handler serves the routes without it."""


def _collection_routes(app: FastAPI, keyed: list[Any], read_keyed: list[Any]) -> None:
    """List, create, describe and drop collections."""

    def admin(request: Request) -> CollectionAdmin:
        collections = gateway_of(request).collections
        if collections is None:
            raise IndexNotReady("collections are not available yet")
        return collections

    @app.get(
        "/v1/collections",
        response_model=CollectionList,
        tags=["collections"],
        responses=errors(401, 429, 503),
        dependencies=read_keyed,
    )
    async def list_collections(request: Request) -> CollectionList:
        found = await run_in_threadpool(admin(request).describe_all)
        scopes = getattr(request.state, "scopes", None)  # a key limited to some: only those
        shown = [c for c in found if scopes is None or c["name"] in scopes]
        return CollectionList(collections=[CollectionInfo(**c) for c in shown])

    @app.post(
        "/v1/collections",
        response_model=CollectionInfo,
        status_code=201,
        tags=["collections"],
        responses=errors(400, 401, 403, 409, 422, 429, 503),
        dependencies=keyed,
    )
    async def create_collection(request: Request, body: CollectionCreate) -> CollectionInfo:
        check_name(body.name)
        if body.index_spec:
            resolve(body.index_spec, 1000, 8)  # an invalid spec is a 400 before anything
        created = await run_in_threadpool(admin(request).create, body.name, body.index_spec)
        return CollectionInfo(**created)

    @app.get(
        "/v1/collections/{collection}",
        response_model=CollectionInfo,
        tags=["collections"],
        responses=errors(400, 401, 403, 404, 422, 429, 503),
        dependencies=read_keyed,
    )
    async def get_collection(request: Request, collection: str) -> CollectionInfo:
        found = await run_in_threadpool(admin(request).describe, check_name(collection))
        return CollectionInfo(**found)

    @app.delete(
        "/v1/collections/{collection}",
        response_model=DropResponse,
        tags=["collections"],
        responses=errors(400, 401, 403, 404, 409, 422, 429, 503),
        dependencies=keyed,
    )
    async def drop_collection(request: Request, collection: str) -> DropResponse:
        await run_in_threadpool(admin(request).drop, check_name(collection))
        return DropResponse(name=collection, dropped=True)
