"""The gateway's view of a remote search service (implements pipeline.Searcher)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from imsearch.collection import DEFAULT
from imsearch.index.catalog import Item
from imsearch.index.filters import Filter
from imsearch.index.store import Hit
from imsearch.index.vectors import SearchKnobs
from imsearch.rerank.reranker import Candidates, QueryFeatures, RerankConfig
from services.common.client import ServiceClient
from services.common.codec import (
    candidates_from_pb,
    hits_from_pb,
    item_to_pb,
    knobs_to_pb,
    local_to_pb,
    rerank_config_to_pb,
    vector_to_pb,
)
from services.contracts.v1 import messages_pb2 as pb


class RemoteSearcher:
    """Writes go to the primary; searches to the read replicas when there are any."""

    def __init__(
        self,
        client: ServiceClient,
        model_id: Callable[[], str],
        read_client: ServiceClient | None = None,
    ) -> None:
        self.client = client
        self.read_client = read_client or client
        #: Asked for at each write (the extractor's, once it answers): not needed to start.
        self._model_id = model_id

    @property
    def model_id(self) -> str:
        return self._model_id()

    def search(
        self,
        vectors: np.ndarray,
        k: int,
        knobs: SearchKnobs | None = None,
        where: Filter | None = None,
        collection: str | None = None,
    ) -> list[list[Hit]]:
        request = pb.SearchRequest(
            queries=[vector_to_pb(v) for v in np.atleast_2d(vectors)],
            k=k,
            knobs=knobs_to_pb(knobs),
            collection=collection or "",
            filter_json=where.key if where else "",
        )
        reply = self.read_client.call("/v1/search", request, pb.SearchResponse, idempotent=True)
        return [hits_from_pb(r.hits) for r in reply.results]

    def candidates(
        self,
        query: QueryFeatures,
        k: int,
        config: RerankConfig,
        knobs: SearchKnobs | None = None,
        where: Filter | None = None,
        collection: str | None = None,
    ) -> Candidates:
        request = pb.SearchRequest(
            queries=[vector_to_pb(query.vector)],
            k=k,
            knobs=knobs_to_pb(knobs),
            config=rerank_config_to_pb(config),
            collection=collection or "",
            filter_json=where.key if where else "",
        )
        if query.local is not None:
            request.local.CopyFrom(local_to_pb(query.local))
        reply = self.read_client.call("/v1/search", request, pb.SearchResponse, idempotent=True)
        hits = candidates_from_pb(reply.results[0].hits) if reply.results else []
        details = json.loads(reply.details_json or "{}")
        return Candidates(hits, details, collection or DEFAULT, reply.generation)

    def add(self, items: Sequence[Item], collection: str | None = None) -> list[int]:
        # One write: descriptor, metadata, thumbnail and local features, durable together.
        request = pb.AddRequest(
            model_id=self.model_id,
            items=[item_to_pb(i) for i in items],
            collection=collection or "",
        )
        # Adding the same id and content twice leaves the same state: safe to retry.
        reply = self.client.call("/v1/add", request, pb.AddResponse, idempotent=True)
        return list(range(reply.added))

    def delete(self, ext_ids: Sequence[str], collection: str | None = None) -> int:
        request = pb.DeleteRequest(ids=list(ext_ids), collection=collection or "")
        return int(self.client.call("/v1/delete", request, pb.DeleteResponse, True).deleted)

    def info(
        self, ids: Sequence[str], collection: str = DEFAULT
    ) -> dict[str, tuple[str | None, dict[str, Any]]]:
        if not ids:
            return {}
        request = pb.InfoRequest(ids=list(ids), collection=collection)
        # The primary: what an add is compared with must not lag behind it.
        reply = self.client.call("/v1/info", request, pb.InfoResponse, idempotent=True)
        return {i.id: (i.sha256 or None, json.loads(i.metadata_json or "{}")) for i in reply.items}

    def thumbnail(self, ext_id: str, collection: str = DEFAULT) -> tuple[bytes, str | None] | None:
        request = pb.ThumbnailRequest(id=ext_id, collection=collection)
        reply = self.read_client.call(
            "/v1/thumbnail", request, pb.ThumbnailResponse, idempotent=True
        )
        return (reply.data, reply.sha256 or None) if reply.found else None

    def stats(self, collection: str = DEFAULT) -> dict[str, Any]:
        return dict(self.client.get_json(f"/v1/stats?collection={collection}"))

    # -- collections (the primary decides; replicas follow) -------------------------------------

    def collections(self) -> list[dict[str, Any]]:
        return list(self.client.get_json("/v1/collections"))

    def create_collection(self, name: str, spec: str | None, model_id: str, dim: int) -> None:
        request = pb.CreateCollectionRequest(
            name=name, index_spec=spec or "", model_id=model_id, dim=dim
        )
        self.client.call("/v1/collections", request, pb.CollectionInfo, idempotent=False)

    def drop_collection(self, name: str) -> None:
        request = pb.DropCollectionRequest(name=name)
        self.client.call("/v1/collections/drop", request, pb.DropCollectionResponse, True)


class RemoteSink:
    """Bulk indexing results (imsearch.bulk) sent to the search service that owns the
    collection: while it runs it is the one writer, so a bulk job writes through it."""

    #: Ids per /v1/info call when asking what is indexed already.
    CHUNK = 1000

    def __init__(self, searcher: RemoteSearcher, collection: str = DEFAULT) -> None:
        self.searcher = searcher
        self.collection = collection

    def known(self, ids: Sequence[str]) -> dict[str, str | None]:
        held: dict[str, str | None] = {}
        for start in range(0, len(ids), self.CHUNK):
            chunk = ids[start : start + self.CHUNK]
            found = self.searcher.info(chunk, self.collection)
            held.update({i: sha for i, (sha, _) in found.items()})
        return held

    def add(self, items: Sequence[Item]) -> None:
        self.searcher.add(items, self.collection)

    def finish(self) -> None:
        """Nothing: the service snapshots in its own upkeep."""
