"""The rerank service: geometric verification, stateless.

    POST /v1/rerank   RerankRequest → RerankResponse
    GET  /v1/stats    JSON
    GET  /healthz /readyz /metrics

It keeps nothing per image. The search service chooses the candidates (global re-ranking,
the visual-word shortlist, their fusion) and hands each of the first ``m`` over with the
reference of its local features; this service reads them from the feature store of their
collection (under ``IMSEARCH_DATA_DIR``, the search primary's volume mounted read-only, or at
``IMSEARCH_FEATURE_STORE``: the default collection's ``features/`` folder or fsspec URL, the
others beside it), verifies them in parallel and orders the result. A bounded cache of parsed
features is all it holds, so any number of replicas can run behind one address.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from starlette.concurrency import run_in_threadpool

from imsearch.collection import DEFAULT, check_name, feature_location, verification
from imsearch.rerank.reranker import Candidates
from imsearch.settings import Settings
from services.common.access import install_internal_access
from services.common.app import (
    INTERNAL_ERRORS,
    Health,
    errors,
    protobuf_io,
    protobuf_response,
    read_message,
    require_media_type,
    service_app,
)
from services.common.codec import (
    PROTOBUF,
    candidates_from_pb,
    local_from_pb,
    rerank_config_from_pb,
    rerank_result_to_pb,
)
from services.contracts.v1 import messages_pb2 as pb
from services.search.app import MAX_BODY

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    store = feature_location(settings, DEFAULT)
    reranker = verification(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        reranker.close()

    app = service_app(
        "rerank",
        "imsearch rerank",
        lifespan,
        "Geometric verification of candidates, reading their local features by reference.",
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
        config = rerank_config_from_pb(message.config, settings.rerank_config())
        config.stages  # noqa: B018 - an unknown method is a 400 before any work
        try:
            details = json.loads(message.details_json or "{}")
        except json.JSONDecodeError:
            details = {}
        candidates = Candidates(
            candidates_from_pb(message.hits),
            details if isinstance(details, dict) else {},
            check_name(message.collection or DEFAULT),
            message.generation,
        )
        local = local_from_pb(message.local) if message.HasField("local") else None
        result = await run_in_threadpool(
            reranker.rerank, local, candidates, int(message.k) or 10, config
        )
        return protobuf_response(rerank_result_to_pb(result))

    @app.get("/v1/stats", tags=["rerank"], responses=errors(401))
    async def stats() -> dict[str, Any]:
        verifier = reranker.verifier
        return {
            "feature_store": store,
            "cached_features": len(verifier._cache) if verifier else 0,
            "workers": settings.rerank_workers,
        }

    @app.get("/readyz", response_model=Health, tags=["health"])
    async def readyz() -> Health:
        return Health(status="ready", detail={"feature_store": store})

    return app
