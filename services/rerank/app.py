"""The rerank service: local features, the visual-word index and the diffusion state.

    POST /v1/rerank   RerankRequest → RerankResponse
    POST /v1/add      AddRequest → AddResponse   (descriptor copy + local features per image)
    POST /v1/delete   DeleteRequest → DeleteResponse
    GET  /v1/stats    JSON
    GET  /healthz /readyz /metrics

It keeps its own copy of the collection (an exact index of the global descriptors, which query
expansion, DBA and diffusion need, plus the local features) in its data directory, with the same
durability as the search service; it learns its whitening and visual vocabulary, and snapshots,
on the same schedule.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from imsearch.errors import IndexNotReady
from imsearch.index.catalog import Item
from imsearch.index.store import IndexStore
from imsearch.indexing import maintain_collection
from imsearch.rerank.local_index import LocalIndex
from imsearch.rerank.reranker import QueryFeatures, Reranker, RerankResult
from imsearch.settings import Settings
from services.common.access import install_internal_access
from services.common.app import (
    INTERNAL_ERRORS,
    Health,
    errors,
    every,
    protobuf_io,
    protobuf_response,
    read_message,
    require_media_type,
    running,
    service_app,
)
from services.common.codec import (
    PROTOBUF,
    hits_from_pb,
    item_from_pb,
    knobs_from_pb,
    local_from_pb,
    rerank_config_from_pb,
    rerank_result_to_pb,
    vector_from_pb,
)
from services.common.errors import error_body
from services.contracts.v1 import messages_pb2 as pb
from services.search.app import MAX_BODY, add_new

log = logging.getLogger(__name__)


class RerankState:
    """The rerank service's collection copy; created by the first add on a fresh data dir."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store: IndexStore | None = None
        self.local: LocalIndex | None = None
        self.reranker: Reranker | None = None
        #: The first attempt to open the collection has finished (until then: not ready).
        self.looked = False

    def open(self, model_id: str | None = None, dim: int | None = None) -> None:
        # The copy needs exact neighbours for QE/DBA/diffusion: always an exact index.
        store = IndexStore(self.settings.data_dir, model_id, dim, "exact")
        local = LocalIndex(store.catalog, self.settings.data_dir)
        store.subscribe(local)
        self.reranker = Reranker(
            store, local, self.settings.rerank_config(), self.settings.rerank_workers
        )
        self.store, self.local = store, local

    def close(self) -> None:
        if self.reranker is not None:
            self.reranker.close()
        if self.store is not None:
            self.store.snapshot()
            self.store.close()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    state = RerankState(settings)

    def upkeep() -> None:
        if state.store is None:
            try:
                state.open()
            finally:
                state.looked = True
        else:
            maintain_collection(state.store, state.local, settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with running(every(settings.maintenance_s, upkeep, "rerank upkeep")):
            yield
        await run_in_threadpool(state.close)

    app = service_app(
        "rerank",
        "imsearch rerank",
        lifespan,
        "Query expansion, diffusion and geometric verification.",
    )
    require_media_type(app, PROTOBUF)
    install_internal_access(app, settings)  # outermost: callers without the token learn nothing

    @app.post(
        "/v1/rerank",
        tags=["rerank"],
        **protobuf_io(pb.RerankRequest, pb.RerankResponse, *INTERNAL_ERRORS),
    )
    async def rerank(request: Request) -> Response:
        message = await read_message(request, pb.RerankRequest, MAX_BODY)
        hits = hits_from_pb(message.hits)
        if state.reranker is None:  # an empty collection: nothing to re-rank
            result = RerankResult([], no_confident_match=None)
            return protobuf_response(rerank_result_to_pb(result))
        query = QueryFeatures(
            vector_from_pb(message.query),
            local_from_pb(message.local) if message.HasField("local") else None,
        )
        config = rerank_config_from_pb(message.config, settings.rerank_config())
        result = await run_in_threadpool(
            state.reranker.rerank,
            query,
            hits,
            int(message.k) or 10,
            config,
            knobs_from_pb(message.knobs),
        )
        return protobuf_response(rerank_result_to_pb(result))

    @app.post(
        "/v1/add",
        tags=["write"],
        **protobuf_io(pb.AddRequest, pb.AddResponse, *INTERNAL_ERRORS, 409),
    )
    async def add(request: Request) -> Response:
        message = await read_message(request, pb.AddRequest, MAX_BODY)
        # Items may come without local features (IMSEARCH_LOCAL_FEATURES=0): they still serve
        # query expansion, DBA and diffusion, and are simply never verified.
        items: list[Item] = [item_from_pb(i) for i in message.items]
        if state.store is None:
            if not message.model_id or not items:
                raise IndexNotReady("the collection does not exist yet; add images with a model id")
            await run_in_threadpool(state.open, message.model_id, int(items[0].vector.shape[0]))
        assert state.store is not None
        added = await run_in_threadpool(add_new, state.store, message.model_id, items)
        return protobuf_response(pb.AddResponse(added=added))

    @app.post(
        "/v1/delete",
        tags=["write"],
        **protobuf_io(pb.DeleteRequest, pb.DeleteResponse, *INTERNAL_ERRORS),
    )
    async def delete(request: Request) -> Response:
        message = await read_message(request, pb.DeleteRequest, MAX_BODY)
        store = state.store
        deleted = await run_in_threadpool(store.delete, list(message.ids)) if store else 0
        return protobuf_response(pb.DeleteResponse(deleted=deleted))

    @app.get("/v1/stats", tags=["rerank"], responses=errors(401))
    async def stats() -> dict[str, Any]:
        if state.store is None or state.local is None:
            return {"count": 0}
        return {**await run_in_threadpool(state.store.stats), "local": state.local.stats()}

    @app.get("/readyz", response_model=Health, tags=["health"], responses=errors(503))
    async def readyz() -> Any:
        if not state.looked:
            return JSONResponse(error_body("not_ready", "opening the collection"), 503)
        status = "ready" if state.store is not None else "ready (empty collection)"
        return Health(status=status)

    return app
