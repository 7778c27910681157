"""The public API (gateway). Each stage runs in this process or in its service (see compose).

POST   /v1/search             multipart ``image`` (+ k, rerank, m, min_inliers, min_confidence,
                              knobs)
POST   /v1/images             multipart ``image`` + ``id`` + ``metadata`` (JSON) → 201
GET    /v1/images/{id}        content hash and metadata
DELETE /v1/images/{id}
GET    /v1/stats
GET    /healthz /readyz /metrics, OpenAPI at /docs
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, File, Form, Query, Request, Response, UploadFile
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import APIKeyHeader
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from imsearch.errors import ConfigError, ImsearchError, IndexNotReady, UnknownId
from imsearch.ids import normalize_id
from imsearch.images import sha256_hex
from imsearch.index.vectors import SearchKnobs
from imsearch.pipeline import SearchResult
from imsearch.rerank.reranker import with_overrides
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
from services.common.uploads import BodyLimit, read_upload
from services.gateway.compose import Gateway, compose

log = logging.getLogger(__name__)

#: The web page: plain HTML/CSS/JS, no build step, nothing from a CDN.
STATIC = Path(__file__).parent / "static"
MAX_METADATA_BYTES = 16 * 1024
#: Nesting levels metadata may have: enough for any catalogue record, far from the parser's
#: recursion limit (a 16 KiB "[[[[…" would otherwise crash the request).
MAX_METADATA_DEPTH = 16
#: Room for the multipart framing, the id and the metadata around an image at the limit.
MULTIPART_OVERHEAD = 64 * 1024


class SearchHit(BaseModel):
    id: str
    score: float = Field(description="Ranking score, decreasing down the list.")
    global_score: float = Field(description="Cosine similarity of the global descriptors.")
    inliers: int | None = Field(None, description="Geometric verification inliers, if checked.")
    verified: bool = Field(
        False, description="A confident match: verified geometrically with enough confidence."
    )
    confidence: float | None = Field(
        None,
        description="Probability (calibrated on the development sets) that this result shows "
        "the query's object, from its geometric verification; null when not verified.",
    )
    box: tuple[float, float, float, float] | None = Field(
        None,
        description="For a confident match: where it is in the query photo, [x1, y1, x2, y2] "
        "as fractions of the photo's width and height (several objects in one photo each get "
        "their own box).",
    )
    metadata: dict[str, Any] = Field(default_factory=dict)
    matches: list[tuple[float, float, float, float]] | None = Field(
        None,
        description="With matches=true, for verified results: the consistent keypoint pairs "
        "[x_query, y_query, x_result, y_result], each a fraction of its image's width/height.",
    )


class SearchResponse(BaseModel):
    results: list[SearchHit]
    k: int
    no_confident_match: bool | None = Field(
        description="True when no result is a confident match (the object is probably not in "
        "the collection); null when the re-ranking does not verify."
    )
    cache: str = Field(description="hit: the query's descriptors came from the cache; else miss.")
    model_id: str
    timings_ms: dict[str, float] = Field(description="extract, search, rerank, total")
    rerank: dict[str, Any] = Field(description="The re-ranking method and its parameters.")


class ImageInfo(BaseModel):
    id: str
    sha256: str | None
    metadata: dict[str, Any]


class AddResponse(ImageInfo):
    created: bool = Field(description="False when the same id already held the same image.")


class DeleteResponse(BaseModel):
    id: str
    deleted: bool


class Stats(BaseModel):
    """What the collection holds; the index, whitening and log details depend on the mode."""

    model_config = ConfigDict(extra="allow")

    count: int = Field(description="Images in the collection.")
    model_id: str | None = Field(None, description="The model that describes them (if any).")
    dim: int | None = Field(None, description="Descriptor dimension (if any).")
    mode: str = Field(description="embedded (one process) or services.")
    rerank: dict[str, Any] = Field(description="The default re-ranking and its parameters.")


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
    require_media_type(app, "multipart/form-data", ("/v1/search", "/v1/images"))
    install_public_access(app, settings)
    app.state.gateway = gateway
    #: Why the gateway is not composed yet (shown by /readyz).
    app.state.waiting = "the engine is loading"
    metrics = app.state.metrics
    # Documents X-API-Key in the OpenAPI description (clients generated from it send it);
    # the check itself is the access middleware's, for every route at once.
    keyed = [Depends(APIKeyHeader(name=API_KEY_HEADER, scheme_name="ApiKey", auto_error=False))]
    read_keyed = keyed if settings.search_requires_key else []
    #: What a route naming one image by id can answer besides its success.
    by_id = errors(400, 401, 404, 422, 429, 503)

    def gateway_of(request: Request) -> Gateway:
        gateway: Gateway | None = request.app.state.gateway
        if gateway is None:
            raise IndexNotReady(f"not ready: {request.app.state.waiting}")
        return gateway

    @app.post(
        "/v1/search",
        response_model=SearchResponse,
        tags=["search"],
        responses=errors(400, 401, 413, 415, 422, 429, 503),
        dependencies=read_keyed,
    )
    async def search(
        request: Request,
        image: Annotated[UploadFile, File(description="The query photo.")],
        k: Annotated[int | None, Query(ge=1, description="How many results.")] = None,
        rerank: Annotated[
            str | None, Query(description="none, or qe+dba+diffusion+spatial")
        ] = None,
        m: Annotated[int | None, Query(ge=1, le=1000, description="Candidates verified.")] = None,
        min_inliers: Annotated[
            int | None, Query(ge=4, le=10_000, description="Inliers a match needs at least.")
        ] = None,
        min_confidence: Annotated[
            float | None,
            Query(ge=0, le=1, description="Confidence a match needs (default: calibrated)."),
        ] = None,
        nprobe: Annotated[int | None, Query(ge=1, le=65536)] = None,
        ef_search: Annotated[int | None, Query(ge=1, le=65536)] = None,
        k_factor: Annotated[float | None, Query(ge=1, le=1000)] = None,
        matches: Annotated[bool, Query(description="Return verified keypoint pairs.")] = False,
    ) -> SearchResponse:
        gateway = gateway_of(request)
        k = k or settings.default_k
        if k > settings.max_k:
            raise ConfigError(f"k must be at most {settings.max_k}")
        data = await read_upload(image, settings.max_upload_bytes)
        config = with_overrides(
            gateway.pipeline.reranker.config,
            method=rerank,
            m=m,
            min_inliers=min_inliers,
            min_confidence=min_confidence,
        )
        config.stages  # noqa: B018 - an unknown method is a 400 before any work
        knobs = SearchKnobs(nprobe, ef_search, k_factor)
        result: SearchResult = await run_in_threadpool(
            lambda: gateway.pipeline.search(data, k, knobs=knobs, rerank=config)
        )
        _observe(metrics, result)
        info = await run_in_threadpool(gateway.info, [h.id for h in result.hits])
        return SearchResponse(
            results=[
                SearchHit(
                    id=h.id,
                    score=h.score,
                    global_score=h.global_score,
                    inliers=h.inliers,
                    verified=h.verified,
                    confidence=h.confidence,
                    box=h.box,
                    metadata=info.get(h.id, (None, {}))[1],
                    matches=list(h.matches) if matches and h.matches else None,
                )
                for h in result.hits
            ],
            k=k,
            no_confident_match=result.no_confident_match,
            cache="hit" if result.cached else "miss",
            model_id=result.model_id,
            timings_ms=result.timings_ms,
            rerank=result.rerank,
        )

    @app.post(
        "/v1/images",
        response_model=AddResponse,
        status_code=201,
        tags=["collection"],
        responses=errors(
            400,
            401,
            409,
            413,
            415,
            422,
            429,
            503,
            more={200: {"model": AddResponse, "description": "Already held, unchanged."}},
        ),
        dependencies=keyed,
    )
    async def add_image(
        request: Request,
        id: Annotated[str, Form(min_length=1, max_length=512, description="External id.")],
        image: Annotated[UploadFile, File(description="The image to add.")],
        metadata: Annotated[str, Form(description="A JSON object.")] = "{}",
    ) -> Any:
        gateway = gateway_of(request)
        id = normalize_id(id)
        meta = _metadata(metadata)
        data = await read_upload(image, settings.max_upload_bytes)
        existing = (await run_in_threadpool(gateway.info, [id])).get(id)
        if existing is not None and existing[0] == sha256_hex(data) and existing[1] == meta:
            body = AddResponse(id=id, sha256=existing[0], metadata=meta, created=False)
            return JSONResponse(body.model_dump(), status_code=200)
        item = await run_in_threadpool(gateway.pipeline.add, id, data, meta)
        return AddResponse(id=id, sha256=item.sha256, metadata=meta, created=True)

    @app.get(
        "/v1/images/{image_id:path}/thumbnail",
        tags=["collection"],
        response_class=Response,
        responses=by_id
        | {
            200: {"content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}}},
            304: {"description": "Not modified (If-None-Match)."},
        },
        dependencies=read_keyed,
    )
    async def get_thumbnail(request: Request, image_id: str) -> Response:
        image_id = normalize_id(image_id)
        found = await run_in_threadpool(gateway_of(request).thumbnail, image_id)
        if found is None:
            raise UnknownId(f"no thumbnail for id {image_id!r}")
        data, sha = found
        etag = f'"{sha}"' if sha else None
        # A keyed collection's thumbnails must not sit in shared caches.
        scope = "private" if settings.search_requires_key else "public"
        headers = {"Cache-Control": f"{scope}, max-age=86400"} | ({"ETag": etag} if etag else {})
        if etag and request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return Response(data, media_type="image/jpeg", headers=headers)

    @app.get(
        "/v1/images/{image_id:path}",
        response_model=ImageInfo,
        tags=["collection"],
        responses=by_id,
        dependencies=read_keyed,
    )
    async def get_image(request: Request, image_id: str) -> ImageInfo:
        image_id = normalize_id(image_id)
        found = (await run_in_threadpool(gateway_of(request).info, [image_id])).get(image_id)
        if found is None:
            raise UnknownId(f"no image with id {image_id!r}")
        return ImageInfo(id=image_id, sha256=found[0], metadata=found[1])

    @app.delete(
        "/v1/images/{image_id:path}",
        response_model=DeleteResponse,
        tags=["collection"],
        responses=by_id,
        dependencies=keyed,
    )
    async def delete_image(request: Request, image_id: str) -> DeleteResponse:
        image_id = normalize_id(image_id)
        deleted = await run_in_threadpool(gateway_of(request).pipeline.delete, image_id)
        if not deleted:
            raise UnknownId(f"no image with id {image_id!r}")
        return DeleteResponse(id=image_id, deleted=True)

    @app.get(
        "/v1/stats",
        response_model=Stats,
        tags=["collection"],
        responses=errors(401, 429, 503),
        dependencies=read_keyed,
    )
    async def get_stats(request: Request) -> Stats:
        gateway = gateway_of(request)
        return Stats(
            **await run_in_threadpool(gateway.stats),
            mode="services" if gateway.clients else "embedded",
            rerank=gateway.pipeline.reranker.config.describe(),
        )

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


def _metadata(text: str) -> dict[str, Any]:
    if len(text.encode()) > MAX_METADATA_BYTES:
        raise ConfigError(f"metadata is larger than {MAX_METADATA_BYTES} bytes")
    if _nesting(text) > MAX_METADATA_DEPTH:
        raise ConfigError(f"metadata is nested deeper than {MAX_METADATA_DEPTH} levels")
    try:
        value = json.loads(text or "{}")
    except json.JSONDecodeError as exc:
        raise ConfigError(f"metadata is not valid JSON: {exc.msg}") from exc
    if not isinstance(value, dict):
        raise ConfigError("metadata must be a JSON object")
    return value


def _nesting(text: str) -> int:
    """The deepest bracket nesting of JSON ``text``, outside strings (before parsing it)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            escaped, in_string = (False, True) if escaped else (char == "\\", char != '"')
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _observe(metrics: Any, result: SearchResult) -> None:
    for stage, ms in result.timings_ms.items():
        metrics.stages.labels(stage).observe(ms / 1e3)
    metrics.cache.labels("hit" if result.cached else "miss").inc()
