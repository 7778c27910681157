"""The search service: the collection's one system of record.

It owns the ANN index, the id map, metadata, thumbnails, the local-feature store and the
visual-word shortlist, and their persistence. An add is one durable write of all of them.
A search with a re-ranking configuration also runs the stages that need the collection
(QE, DBA, diffusion, the visual-word shortlist and its fusion) and hands back candidates with
the references of their local features, which the stateless rerank workers verify.

    POST /v1/search   SearchRequest → SearchResponse
    POST /v1/add      AddRequest → AddResponse      (same id and content again: nothing changes)
    POST /v1/delete   DeleteRequest → DeleteResponse
    POST /v1/info     InfoRequest → InfoResponse    (content hash and metadata per id)
    GET  /v1/stats    JSON
    GET  /healthz /readyz /metrics

With ``IMSEARCH_REPLICA=1`` it serves the data directory read-only: it maps the snapshot,
applies the primary's log as it grows (every ``IMSEARCH_REPLICA_POLL_S``), and whenever
``snapshot.json`` changes opens the new one and swaps it in between two requests (no
downtime); writes are refused. Otherwise it learns the whitening when the collection is
large enough and, in the same upkeep (every ``IMSEARCH_MAINTENANCE_S``), rewrites its snapshot
once ``IMSEARCH_SNAPSHOT_OPS`` log entries are not in it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from imsearch.collection import collection_stages
from imsearch.errors import ConfigError, DimensionMismatch, IndexNotReady, ModelMismatch
from imsearch.index.catalog import Item
from imsearch.index.store import SNAPSHOT_FILE, IndexStore
from imsearch.indexing import maintain_collection
from imsearch.pipeline import LocalSearcher
from imsearch.rerank.reranker import CandidateFinder, QueryFeatures
from imsearch.rerank.visual_words import VisualWords
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


def write_together(store: IndexStore, requests: Sequence[list[Item]]) -> list[int]:
    """One durable write for the items of concurrent add requests (a group commit: one
    fsync of the features and one catalog commit instead of one per request)."""
    store.add([item for items in requests for item in items])
    return [len(items) for items in requests]


def info_response(store: IndexStore, ids: list[str]) -> pb.InfoResponse:
    found = store.catalog.info(ids)
    return pb.InfoResponse(
        items=[
            pb.ItemInfo(id=i, sha256=sha or "", metadata_json=json.dumps(meta, ensure_ascii=False))
            for i, (sha, meta) in found.items()
        ]
    )


class _Holder:
    """The current store; a replica swaps in a newer snapshot by replacing it."""

    store: IndexStore | None = None
    words: VisualWords | None = None
    finder: CandidateFinder | None = None
    snapshot_mtime: float = 0.0
    #: Why an existing collection could not be opened (the service is then not ready).
    error: str | None = None
    #: The first attempt to open the collection has finished: until then, not ready (an empty
    #: answer while a large index loads would look like "nothing matches").
    looked: bool = False


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    holder = _Holder()

    def use(store: IndexStore, mtime: float) -> IndexStore | None:
        """Serve ``store`` with its visual words and candidate stages; returns the old one."""
        words, finder = collection_stages(store, settings.local_features)
        old = holder.store
        holder.store, holder.words, holder.finder = store, words, finder
        holder.snapshot_mtime, holder.error = mtime, None
        return old

    def open_store(model_id: str | None = None, dim: int | None = None) -> IndexStore:
        return IndexStore(
            settings.data_dir, model_id, dim, settings.index_spec, readonly=settings.replica
        )

    pointer = Path(settings.data_dir) / SNAPSHOT_FILE

    def refresh() -> None:
        """Open the store once it exists; then reload a newer snapshot (replica) or look after
        the collection (primary)."""
        mtime = pointer.stat().st_mtime if pointer.exists() else 0.0
        if holder.store is None:
            try:
                use(open_store(), mtime)
            finally:
                holder.looked = True
        elif settings.replica and mtime != holder.snapshot_mtime:
            old = use(open_store(), mtime)
            log.info("replica: swapped in the snapshot of %s", mtime)
            time.sleep(1.0)  # let searches that started on the old store finish
            if old is not None:
                old.close()
        elif settings.replica:
            holder.store.follow()  # the primary's log since then: current within a poll
        elif not settings.replica:
            maintain_collection(holder.store, holder.words, settings)

    def failed(exc: Exception) -> None:
        holder.error = f"{type(exc).__name__}: {exc}"

    def write(requests: Sequence[list[Item]]) -> list[int]:
        assert holder.store is not None
        return write_together(holder.store, requests)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        interval = settings.replica_poll_s if settings.replica else settings.maintenance_s
        app.state.writes = MicroBatcher(write, window_s=0.0, max_batch=256)
        app.state.writes.start()
        async with running(every(interval, refresh, "search upkeep", failed)):
            yield
        await app.state.writes.stop()
        if holder.store is not None:
            await run_in_threadpool(_close, holder, settings)

    app = service_app(
        "search",
        "imsearch search",
        lifespan,
        "The ANN index over global descriptors, with its id map.",
    )
    require_media_type(app, PROTOBUF)
    install_internal_access(app, settings)  # outermost: callers without the token learn nothing

    def writable() -> IndexStore | None:
        if settings.replica:
            raise ConfigError("this search service is a read-only replica; write to the primary")
        return holder.store

    @app.post(
        "/v1/search",
        tags=["search"],
        **protobuf_io(pb.SearchRequest, pb.SearchResponse, *INTERNAL_ERRORS),
    )
    async def search(request: Request) -> Response:
        message = await read_message(request, pb.SearchRequest, MAX_BODY)
        queries = [vector_from_pb(q) for q in message.queries]
        if not queries:
            raise ConfigError("no query vector")
        current, finder = holder.store, holder.finder
        if current is None or finder is None:  # an empty collection: nothing to find
            return protobuf_response(pb.SearchResponse(results=[pb.HitList() for _ in queries]))
        k, knobs = int(message.k) or 10, knobs_from_pb(message.knobs)
        if not message.HasField("config"):
            results = await run_in_threadpool(current.search, np.stack(queries), k, knobs)
            lists = [pb.HitList(hits=hits_to_pb(hits)) for hits in results]
            return protobuf_response(pb.SearchResponse(results=lists))
        if len(queries) != 1:
            raise ConfigError("candidates are found for one query at a time")
        config = rerank_config_from_pb(message.config, settings.rerank_config())
        config.stages  # noqa: B018 - an unknown method is a 400 before any work
        local = local_from_pb(message.local) if message.HasField("local") else None
        query = QueryFeatures(queries[0], local)
        found = await run_in_threadpool(
            LocalSearcher(current, finder).candidates, query, k, config, knobs
        )
        reply = pb.SearchResponse(
            results=[pb.HitList(hits=candidates_to_pb(found.hits))],
            details_json=json.dumps(found.details),
        )
        return protobuf_response(reply)

    @app.post(
        "/v1/add",
        tags=["write"],
        **protobuf_io(pb.AddRequest, pb.AddResponse, *INTERNAL_ERRORS, 409),
    )
    async def add(request: Request) -> Response:
        message = await read_message(request, pb.AddRequest, MAX_BODY)
        items = [item_from_pb(i) for i in message.items]
        target = writable() or await _create(message.model_id, items)
        fresh = await run_in_threadpool(fresh_items, target, message.model_id, items)
        added = await app.state.writes.submit(fresh) if fresh else 0
        return protobuf_response(pb.AddResponse(added=added))

    async def _create(model_id: str, items: list[Item]) -> IndexStore:
        """The first add creates the collection with the sender's model id."""
        if settings.replica:
            raise ConfigError("this search service is a read-only replica; write to the primary")
        if not model_id or not items:
            raise IndexNotReady("the collection does not exist yet; add images with a model id")
        store = await run_in_threadpool(open_store, model_id, int(items[0].vector.shape[0]))
        use(store, 0.0)
        return store

    @app.post(
        "/v1/delete",
        tags=["write"],
        **protobuf_io(pb.DeleteRequest, pb.DeleteResponse, *INTERNAL_ERRORS),
    )
    async def delete(request: Request) -> Response:
        message = await read_message(request, pb.DeleteRequest, MAX_BODY)
        target = writable()
        deleted = await run_in_threadpool(target.delete, list(message.ids)) if target else 0
        return protobuf_response(pb.DeleteResponse(deleted=deleted))

    @app.post(
        "/v1/info",
        tags=["search"],
        **protobuf_io(pb.InfoRequest, pb.InfoResponse, *INTERNAL_ERRORS),
    )
    async def info(request: Request) -> Response:
        message = await read_message(request, pb.InfoRequest, MAX_BODY)
        current = holder.store
        if current is None:
            return protobuf_response(pb.InfoResponse())
        return protobuf_response(await run_in_threadpool(info_response, current, list(message.ids)))

    @app.post(
        "/v1/thumbnail",
        tags=["search"],
        **protobuf_io(pb.ThumbnailRequest, pb.ThumbnailResponse, *INTERNAL_ERRORS),
    )
    async def thumbnail(request: Request) -> Response:
        message = await read_message(request, pb.ThumbnailRequest, 4096)
        current = holder.store
        found = await run_in_threadpool(current.catalog.thumbnail, message.id) if current else None
        if found is None:
            return protobuf_response(pb.ThumbnailResponse(found=False))
        data, sha = found
        return protobuf_response(pb.ThumbnailResponse(found=True, data=data, sha256=sha or ""))

    @app.get("/v1/stats", tags=["search"], responses=errors(401))
    async def stats() -> dict[str, Any]:
        current, words = holder.store, holder.words
        base = await run_in_threadpool(current.stats) if current else {"count": 0}
        local = await run_in_threadpool(words.stats) if words else None
        return {**base, "local": local, "replica": settings.replica}

    @app.get("/readyz", response_model=Health, tags=["health"], responses=errors(503))
    async def readyz() -> Any:
        if holder.error:
            return JSONResponse(error_body("not_ready", holder.error), 503)
        if not holder.looked:
            return JSONResponse(error_body("not_ready", "opening the collection"), 503)
        state = "ready" if holder.store is not None else "ready (empty collection)"
        return Health(status=state)

    return app


def _close(holder: _Holder, settings: Settings) -> None:
    assert holder.store is not None
    holder.store.checkpoint(settings.snapshot_ops)
    if holder.words is not None:
        holder.words.maintain()
    holder.store.close()
