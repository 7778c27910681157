"""The routes of one collection: search and images, mounted twice by the app.

    /v1/collections/{collection}/search, /images, /images/{id}, /images/{id}/thumbnail, /stats
    /v1/search, /v1/images, …, /v1/stats: the same routes for the collection ``default``

Each handler finds its collection in the request's path (:func:`collection_of`), so one
definition serves both; the operation ids of the named ones end in ``_in_collection``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile
from fastapi.params import Depends
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from imsearch.collection import DEFAULT, check_name
from imsearch.errors import ConfigError, IndexNotReady, UnknownId
from imsearch.ids import normalize_id
from imsearch.images import sha256_hex
from imsearch.index.filters import Filter, parse_filter
from imsearch.index.vectors import SearchKnobs
from imsearch.pipeline import SearchResult
from imsearch.rerank.reranker import with_overrides
from imsearch.settings import Settings
from services.common.app import errors
from services.common.uploads import read_upload
from services.gateway.compose import Gateway
from services.gateway.models import (
    AddResponse,
    DeleteResponse,
    ImageInfo,
    SearchHit,
    SearchResponse,
    Stats,
)

MAX_METADATA_BYTES = 16 * 1024
#: Nesting levels metadata may have: enough for any catalogue record, far from the parser's
#: recursion limit (a 16 KiB "[[[[…" would otherwise crash the request).
MAX_METADATA_DEPTH = 16
FILTER_HELP = (
    'Only results whose metadata satisfy this JSON filter, e.g. {"brand": "acme", "year": '
    '{"gte": 1990}}: equality, in/nin, ne, gt/gte/lt/lte, exists, and/or/not (docs/API.md).'
)


def collection_of(request: Request) -> str:
    """The collection named in the path; ``default`` on the routes without one."""
    return check_name(request.path_params.get("collection", DEFAULT))


def gateway_of(request: Request) -> Gateway:
    gateway: Gateway | None = request.app.state.gateway
    if gateway is None:
        raise IndexNotReady(f"not ready: {request.app.state.waiting}")
    return gateway


def image_routes(
    settings: Settings,
    metrics: Any,
    keyed: list[Depends],
    read_keyed: list[Depends],
) -> APIRouter:
    """Search, add, get, delete and stats of the collection a request's path names."""
    router = APIRouter()
    #: What a route naming one image by id can answer besides its success.
    by_id = errors(400, 401, 403, 404, 422, 429, 503)

    @router.post(
        "/search",
        response_model=SearchResponse,
        tags=["search"],
        responses=errors(400, 401, 403, 404, 413, 415, 422, 429, 503),
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
        # Plain strings ("" = no filter): a generated client's null would otherwise be sent
        # as the text "None".
        filter: Annotated[str, Query(description=FILTER_HELP, max_length=8192)] = "",
        filter_form: Annotated[
            str, Form(alias="filter", description="The filter, as a form field.")
        ] = "",
    ) -> SearchResponse:
        gateway = gateway_of(request)
        name = collection_of(request)
        where = _filter(filter, filter_form)
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
            lambda: gateway.pipeline.search(
                data, k, knobs=knobs, rerank=config, where=where, collection=name
            )
        )
        _observe(metrics, result)
        info = await run_in_threadpool(gateway.info, [h.id for h in result.hits], name)
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

    @router.post(
        "/images",
        response_model=AddResponse,
        status_code=201,
        tags=["collection"],
        responses=errors(
            400,
            401,
            403,
            404,
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
        name = collection_of(request)
        id = normalize_id(id)
        meta = _metadata(metadata)
        data = await read_upload(image, settings.max_upload_bytes)
        existing = (await run_in_threadpool(gateway.info, [id], name)).get(id)
        if existing is not None and existing[0] == sha256_hex(data) and existing[1] == meta:
            body = AddResponse(id=id, sha256=existing[0], metadata=meta, created=False)
            return JSONResponse(body.model_dump(), status_code=200)
        item = await run_in_threadpool(gateway.pipeline.add, id, data, meta, name)
        return AddResponse(id=id, sha256=item.sha256, metadata=meta, created=True)

    @router.get(
        "/images/{image_id:path}/thumbnail",
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
        found = await run_in_threadpool(
            gateway_of(request).thumbnail, image_id, collection_of(request)
        )
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

    @router.get(
        "/images/{image_id:path}",
        response_model=ImageInfo,
        tags=["collection"],
        responses=by_id,
        dependencies=read_keyed,
    )
    async def get_image(request: Request, image_id: str) -> ImageInfo:
        image_id = normalize_id(image_id)
        name = collection_of(request)
        found = (await run_in_threadpool(gateway_of(request).info, [image_id], name)).get(image_id)
        if found is None:
            raise UnknownId(f"no image with id {image_id!r}")
        return ImageInfo(id=image_id, sha256=found[0], metadata=found[1])

    @router.delete(
        "/images/{image_id:path}",
        response_model=DeleteResponse,
        tags=["collection"],
        responses=by_id,
        dependencies=keyed,
    )
    async def delete_image(request: Request, image_id: str) -> DeleteResponse:
        image_id = normalize_id(image_id)
        name = collection_of(request)
        deleted = await run_in_threadpool(gateway_of(request).pipeline.delete, image_id, name)
        if not deleted:
            raise UnknownId(f"no image with id {image_id!r}")
        return DeleteResponse(id=image_id, deleted=True)

    @router.get(
        "/stats",
        response_model=Stats,
        tags=["collection"],
        responses=errors(400, 401, 403, 404, 422, 429, 503),
        dependencies=read_keyed,
    )
    async def get_stats(request: Request) -> Stats:
        gateway = gateway_of(request)
        return Stats(
            **await run_in_threadpool(gateway.stats, collection_of(request)),
            mode="services" if gateway.clients else "embedded",
            rerank=gateway.pipeline.reranker.config.describe(),
        )

    return router


def _filter(query: str, form: str) -> Filter | None:
    """The filter sent as a query parameter or a form field (both: they must agree)."""
    if query and form and query.strip() != form.strip():
        raise ConfigError("the filter is given twice, differently (query and form)")
    return parse_filter(query or form)


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
