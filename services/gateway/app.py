"""The public API (gateway). In embedded mode every stage runs in this process.

POST /v1/search   multipart ``image`` (+ query ``k``) → ranked ids with scores
GET  /healthz     the process is up
GET  /readyz      the model and the collection are loaded
GET  /docs        OpenAPI
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import FastAPI, File, Query, Request, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from imsearch.engine import Engine, open_engine
from imsearch.errors import ConfigError, IndexNotReady
from imsearch.settings import Settings
from services.common.errors import error_body, install_error_handlers
from services.common.uploads import read_upload


class SearchHit(BaseModel):
    id: str
    score: float = Field(description="Ranking score, decreasing down the list.")
    global_score: float = Field(description="Cosine similarity of the global descriptors.")
    inliers: int | None = Field(None, description="Geometric verification inliers, if checked.")
    verified: bool = Field(False, description="Confirmed by geometric verification.")
    metadata: dict[str, Any] = Field(default_factory=dict)


class SearchResponse(BaseModel):
    results: list[SearchHit]
    k: int
    no_confident_match: bool | None = Field(
        description="True when no result was verified geometrically (the object is probably "
        "not in the collection); null when the re-ranking does not verify."
    )
    model_id: str
    cached: bool = Field(description="The query descriptors came from the cache.")
    timings_ms: dict[str, float] = Field(description="extract, search, rerank, total")
    rerank: dict[str, Any] = Field(description="The re-ranking method and its parameters.")


class Health(BaseModel):
    status: str


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; the engine opens in the lifespan, not at import."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.engine = await run_in_threadpool(open_engine, settings)
        try:
            yield
        finally:
            app.state.engine.close()

    app = FastAPI(
        title="imsearch",
        version="1",
        summary="Search an image collection by photo.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = None
    install_error_handlers(app)

    @app.post("/v1/search", response_model=SearchResponse, tags=["search"])
    async def search(
        request: Request,
        image: Annotated[UploadFile, File(description="The query photo (JPEG, PNG, WebP…).")],
        k: Annotated[int | None, Query(ge=1, description="How many results.")] = None,
    ) -> SearchResponse:
        engine = _engine(request)
        k = k or settings.default_k
        if k > settings.max_k:
            raise ConfigError(f"k must be at most {settings.max_k}")
        data = await read_upload(image, settings.max_upload_bytes)
        result = await run_in_threadpool(engine.pipeline.search, data, k)
        metadata = engine.store.metadata([h.id for h in result.hits])
        return SearchResponse(
            results=[
                SearchHit(
                    id=h.id,
                    score=h.score,
                    global_score=h.global_score,
                    inliers=h.inliers,
                    verified=h.verified,
                    metadata=metadata.get(h.id, {}),
                )
                for h in result.hits
            ],
            k=k,
            no_confident_match=result.no_confident_match,
            model_id=result.model_id,
            cached=result.cached,
            timings_ms=result.timings_ms,
            rerank=result.rerank,
        )

    @app.get("/healthz", response_model=Health, tags=["health"])
    async def healthz() -> Health:
        return Health(status="ok")

    @app.get("/readyz", response_model=Health, tags=["health"], responses={503: {}})
    async def readyz(request: Request) -> Any:
        if request.app.state.engine is None:
            return JSONResponse(error_body("not_ready", "the engine is loading"), 503)
        return Health(status="ready")

    return app


def _engine(request: Request) -> Engine:
    engine: Engine | None = request.app.state.engine
    if engine is None:
        raise IndexNotReady("the engine is still loading")
    return engine
