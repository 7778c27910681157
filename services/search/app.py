"""The search service: the collection's one system of record.

It owns the collections of its data directory — per collection the ANN index, the id map,
metadata, thumbnails, the local-feature store and the visual-word shortlist, and their
persistence (imsearch/collection.py). An add is one durable write of all of them. Every
request names its collection ("" = ``default``); collections open on first use and close when
idle (``IMSEARCH_MAX_OPEN_COLLECTIONS``, ``IMSEARCH_COLLECTION_IDLE_S``).
A search with a re-ranking configuration also runs the stages that need the collection
(QE, DBA, diffusion, the visual-word shortlist and its fusion) and hands back candidates with
the references of their local features, which the stateless rerank workers verify.

    POST /v1/search   SearchRequest → SearchResponse
    POST /v1/add      AddRequest → AddResponse      (same id and content again: nothing changes)
    POST /v1/delete   DeleteRequest → DeleteResponse
    POST /v1/info     InfoRequest → InfoResponse    (content hash and metadata per id)
    GET  /v1/stats    JSON (?collection=NAME)
    GET  /v1/collections                JSON list
    POST /v1/collections                CreateCollectionRequest → CollectionInfo
    POST /v1/collections/drop           DropCollectionRequest → DropCollectionResponse
    GET  /healthz /readyz /metrics

With ``IMSEARCH_REPLICA=1`` it serves the data directory read-only: per open collection it
maps the snapshot, applies the primary's log as it grows (every ``IMSEARCH_REPLICA_POLL_S``),
and whenever ``snapshot.json`` changes opens the new one and swaps it in between two requests
(no downtime); writes are refused. Otherwise it learns the whitening when the collection is
large enough and, in the same upkeep (every ``IMSEARCH_MAINTENANCE_S``), rewrites its snapshot
once ``IMSEARCH_SNAPSHOT_OPS`` log entries are not in it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from imsearch.collection import DEFAULT, Collections, Opened, check_name, exists
from imsearch.errors import ConfigError, DimensionMismatch, ModelMismatch
from imsearch.index.catalog import Item
from imsearch.index.filters import parse_filter
from imsearch.index.specs import resolve
from imsearch.index.store import IndexStore
from imsearch.indexing import maintain_collection
from imsearch.rerank.reranker import QueryFeatures
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
from services.common.batching import MicroBatcher
from services.common.codec import (
    PROTOBUF,
    candidates_to_pb,
    hits_to_pb,
    item_from_pb,
    knobs_from_pb,
    local_from_pb,
    rerank_config_from_pb,
    vector_from_pb,
)
from services.common.errors import error_body
from services.contracts.v1 import messages_pb2 as pb

log = logging.getLogger(__name__)

#: Protobuf bodies carry descriptors, not images: this bounds a batch of adds.
MAX_BODY = 64 * 1024 * 1024


def fresh_items(store: IndexStore, model_id: str, items: list[Item]) -> list[Item]:
    """The items to write: those whose id is new or whose content changed. A request of
    another model or with descriptors of the wrong size is refused here, on its own."""
    if model_id and model_id != store.model_id:
        raise ModelMismatch(
            f"this collection holds descriptors of {store.model_id}, the request sends {model_id}"
        )
    for item in items:
        if item.vector.shape != (store.dim,):
            raise DimensionMismatch(
                f"descriptor of {item.ext_id!r} has {item.vector.size} values, not {store.dim}"
            )
    known = store.catalog.info([i.ext_id for i in items])
    return [i for i in items if i.sha256 is None or known.get(i.ext_id, (None,))[0] != i.sha256]


def write_together(
    collections: Collections, requests: Sequence[tuple[str, list[Item]]]
) -> list[int]:
    """One durable write per collection for the items of concurrent add requests (a group
    commit: one fsync of the features and one catalog commit instead of one per request)."""
    for name in dict.fromkeys(name for name, _ in requests):
        with collections.use(name) as opened:
            opened.store.add([item for n, items in requests if n == name for item in items])
    return [len(items) for _, items in requests]


def info_response(store: IndexStore, ids: list[str]) -> pb.InfoResponse:
    found = store.catalog.info(ids)
    return pb.InfoResponse(
        items=[
            pb.ItemInfo(id=i, sha256=sha or "", metadata_json=json.dumps(meta, ensure_ascii=False))
            for i, (sha, meta) in found.items()
        ]
    )


def _name(message: Any) -> str:
    return check_name(message.collection or DEFAULT)


@dataclass
class _State:
    #: Why the default collection could not be opened (the service is then not ready).
    error: str | None = None
    #: The first attempt to open the default collection has finished: until then, not ready
    #: (an empty answer while a large index loads would look like "nothing matches").
    looked: bool = False


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    collections = Collections(settings, readonly=settings.replica)
    state = _State()

    def maintain(opened: Opened) -> None:
        maintain_collection(opened.store, opened.words, settings)

    def refresh() -> None:
        """Open the default collection once it exists (warm), then look after the open ones."""
        if not state.looked:
            try:
                if exists(settings.data_dir, DEFAULT):
                    with collections.use(DEFAULT):
                        pass
                state.error = None
            finally:
                state.looked = True
        collections.upkeep(maintain)

    def failed(exc: Exception) -> None:
        state.error = f"{type(exc).__name__}: {exc}"

    def write(requests: Sequence[tuple[str, list[Item]]]) -> list[int]:
        return write_together(collections, requests)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        interval = settings.replica_poll_s if settings.replica else settings.maintenance_s
        app.state.writes = MicroBatcher(write, window_s=0.0, max_batch=256)
        app.state.writes.start()
        async with running(every(interval, refresh, "search upkeep", failed)):
            yield
        await app.state.writes.stop()
        await run_in_threadpool(collections.close)

    app = service_app(
        "search",
        "imsearch search",
        lifespan,
        "The ANN index over global descriptors, with its id map, per collection.",
    )
    require_media_type(app, PROTOBUF)
    install_internal_access(app, settings)  # outermost: callers without the token learn nothing

    def writable() -> None:
        if settings.replica:
            raise ConfigError("this search service is a read-only replica; write to the primary")

    @app.post(
        "/v1/search",
        tags=["search"],
        **protobuf_io(pb.SearchRequest, pb.SearchResponse, *INTERNAL_ERRORS, 404),
    )
    async def search(request: Request) -> Response:
        message = await read_message(request, pb.SearchRequest, MAX_BODY)
        queries = [vector_from_pb(q) for q in message.queries]
        if not queries:
            raise ConfigError("no query vector")
        name, where = _name(message), parse_filter(message.filter_json)
        k, knobs = int(message.k) or 10, knobs_from_pb(message.knobs)
        empty = pb.SearchResponse(results=[pb.HitList() for _ in queries])
        if not message.HasField("config"):

            def plain(opened: Opened) -> pb.SearchResponse:
                results = opened.store.search(np.stack(queries), k, knobs, where)
                return pb.SearchResponse(results=[pb.HitList(hits=hits_to_pb(h)) for h in results])

            reply = await run_in_threadpool(collections.read, name, plain, empty)
            return protobuf_response(reply)
        if len(queries) != 1:
            raise ConfigError("candidates are found for one query at a time")
        config = rerank_config_from_pb(message.config, settings.rerank_config())
        config.stages  # noqa: B018 - an unknown method is a 400 before any work
        local = local_from_pb(message.local) if message.HasField("local") else None
        query = QueryFeatures(queries[0], local)

        def candidates(opened: Opened) -> pb.SearchResponse:
            hits = opened.store.search(query.vector[None, :], k, knobs, where)[0]
            found = opened.finder.find(query, hits, config, knobs, where)
            return pb.SearchResponse(
                results=[pb.HitList(hits=candidates_to_pb(found.hits))],
                details_json=json.dumps(found.details),
                generation=opened.generation,
            )

        return protobuf_response(await run_in_threadpool(collections.read, name, candidates, empty))

    @app.post(
        "/v1/add",
        tags=["write"],
        **protobuf_io(pb.AddRequest, pb.AddResponse, *INTERNAL_ERRORS, 404, 409),
    )
    async def add(request: Request) -> Response:
        message = await read_message(request, pb.AddRequest, MAX_BODY)
        items = [item_from_pb(i) for i in message.items]
        writable()
        name = _name(message)
        if not items:
            return protobuf_response(pb.AddResponse(added=0))

        def screen() -> list[Item]:
            # The first add to "default" creates it with the sender's model.
            dim = int(items[0].vector.shape[0])
            with collections.use(name, message.model_id or None, dim) as opened:
                return fresh_items(opened.store, message.model_id, items)

        fresh = await run_in_threadpool(screen)
        added = await app.state.writes.submit((name, fresh)) if fresh else 0
        return protobuf_response(pb.AddResponse(added=added))

    @app.post(
        "/v1/delete",
        tags=["write"],
        **protobuf_io(pb.DeleteRequest, pb.DeleteResponse, *INTERNAL_ERRORS, 404),
    )
    async def delete(request: Request) -> Response:
        message = await read_message(request, pb.DeleteRequest, MAX_BODY)
        writable()
        ids = list(message.ids)
        deleted = await run_in_threadpool(
            collections.read, _name(message), lambda opened: opened.store.delete(ids), 0
        )
        return protobuf_response(pb.DeleteResponse(deleted=deleted))

    @app.post(
        "/v1/info",
        tags=["search"],
        **protobuf_io(pb.InfoRequest, pb.InfoResponse, *INTERNAL_ERRORS, 404),
    )
    async def info(request: Request) -> Response:
        message = await read_message(request, pb.InfoRequest, MAX_BODY)
        ids = list(message.ids)
        reply = await run_in_threadpool(
            collections.read,
            _name(message),
            lambda o: info_response(o.store, ids),
            pb.InfoResponse(),
        )
        return protobuf_response(reply)

    @app.post(
        "/v1/thumbnail",
        tags=["search"],
        **protobuf_io(pb.ThumbnailRequest, pb.ThumbnailResponse, *INTERNAL_ERRORS, 404),
    )
    async def thumbnail(request: Request) -> Response:
        message = await read_message(request, pb.ThumbnailRequest, 4096)
        found = await run_in_threadpool(
            collections.read, _name(message), lambda o: o.store.catalog.thumbnail(message.id), None
        )
        if found is None:
            return protobuf_response(pb.ThumbnailResponse(found=False))
        data, sha = found
        return protobuf_response(pb.ThumbnailResponse(found=True, data=data, sha256=sha or ""))

    @app.get("/v1/stats", tags=["search"], responses=errors(400, 401, 404))
    async def stats(collection: str = DEFAULT) -> dict[str, Any]:
        def describe(opened: Opened) -> dict[str, Any]:
            local = opened.words.stats() if opened.words else None
            return {**opened.store.stats(), "local": local}

        base = await run_in_threadpool(
            collections.read, check_name(collection), describe, {"count": 0}
        )
        return {**base, "collection": collection, "replica": settings.replica}

    @app.get("/v1/collections", tags=["collections"], responses=errors(401))
    async def list_collections() -> list[dict[str, Any]]:
        return await run_in_threadpool(collections.describe_all)

    @app.post(
        "/v1/collections",
        tags=["collections"],
        **protobuf_io(pb.CreateCollectionRequest, pb.CollectionInfo, *INTERNAL_ERRORS, 409),
    )
    async def create_collection(request: Request) -> Response:
        message = await read_message(request, pb.CreateCollectionRequest, 4096)
        writable()
        spec = message.index_spec or None
        if spec:
            resolve(spec, 1000, int(message.dim) or 8)  # an invalid spec is a 400 now
        info = await run_in_threadpool(
            collections.create, message.name, spec, message.model_id or None, int(message.dim)
        )
        return protobuf_response(pb.CollectionInfo(name=info["name"], info_json=json.dumps(info)))

    @app.post(
        "/v1/collections/drop",
        tags=["collections"],
        **protobuf_io(pb.DropCollectionRequest, pb.DropCollectionResponse, *INTERNAL_ERRORS, 404),
    )
    async def drop_collection(request: Request) -> Response:
        message = await read_message(request, pb.DropCollectionRequest, 4096)
        writable()
        await run_in_threadpool(collections.drop, message.name)
        return protobuf_response(pb.DropCollectionResponse(dropped=True))

    @app.get("/readyz", response_model=Health, tags=["health"], responses=errors(503))
    async def readyz() -> Any:
        if state.error:
            return JSONResponse(error_body("not_ready", state.error), 503)
        if not state.looked:
            return JSONResponse(error_body("not_ready", "opening the collection"), 503)
        opened = collections.open_names()
        status = "ready" if opened else "ready (no collection open)"
        return Health(status=status, detail={"open_collections": ",".join(opened)})

    return app
