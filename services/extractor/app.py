"""The extractor service.

    POST /v1/extract   ExtractRequest → ExtractResponse (protobuf)
    GET  /v1/info      model id, local-feature id, dimension, device
    GET  /healthz /readyz /metrics

Concurrent requests for global descriptors are batched: the first waits up to
``IMSEARCH_BATCH_WINDOW_MS`` for others, then all go through the network in one call (images of
equal size share a forward pass — a GPU is then used well).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
from fastapi import FastAPI, Request, Response
from PIL import Image
from starlette.concurrency import run_in_threadpool

from imsearch.engine import make_extractors
from imsearch.images import make_thumbnail
from imsearch.pipeline import InProcessExtractor
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
from services.common.batching import MicroBatcher
from services.common.codec import PROTOBUF, bbox_from_pb, local_to_pb, vector_to_pb
from services.contracts.v1 import messages_pb2 as pb


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        extractor, sift, query_sift = await run_in_threadpool(make_extractors, settings)
        state["extractor"] = InProcessExtractor(
            extractor, settings.image_limits(), sift, query_sift=query_sift
        )
        batcher: MicroBatcher[Image.Image, np.ndarray] = MicroBatcher(
            lambda images: list(extractor.describe(images)), settings.batch_window_ms / 1000.0
        )
        batcher.start()
        state["batcher"] = batcher
        try:
            yield
        finally:
            await batcher.stop()

    app = service_app(
        "extractor",
        "imsearch extractor",
        lifespan,
        "Image bytes in, global descriptor and local features out.",
    )
    require_media_type(app, PROTOBUF)
    install_internal_access(app, settings)  # outermost: callers without the token learn nothing

    @app.post(
        "/v1/extract",
        tags=["extract"],
        **protobuf_io(pb.ExtractRequest, pb.ExtractResponse, *INTERNAL_ERRORS, 415),
    )
    async def extract(request: Request) -> Response:
        message = await read_message(request, pb.ExtractRequest, settings.max_upload_bytes + 4096)
        extractor: InProcessExtractor = state["extractor"]
        image = await run_in_threadpool(extractor.decode, message.image, bbox_from_pb(message))
        reply = pb.ExtractResponse(model_id=extractor.model_id, local_id=extractor.local_id)
        if message.want_global:
            reply.vector.CopyFrom(vector_to_pb(await state["batcher"].submit(image)))
        if message.want_local:
            sift = extractor.query_sift if message.query else extractor.sift
            features = await run_in_threadpool(sift.extract, image)
            reply.local.CopyFrom(local_to_pb(features))
        if message.want_thumbnail:
            reply.thumbnail = await run_in_threadpool(make_thumbnail, image)
        return protobuf_response(reply)

    @app.get("/v1/info", tags=["extract"], responses=errors(401))
    async def info() -> dict[str, Any]:
        extractor: InProcessExtractor = state["extractor"]
        return {
            "model_id": extractor.model_id,
            "local_id": extractor.local_id,
            "dim": extractor.extractor.dim,
            "device": str(extractor.extractor.device),
        }

    @app.get("/readyz", response_model=Health, tags=["health"])
    async def readyz() -> Health:
        return Health(status="ready")

    return app
