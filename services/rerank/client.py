"""The gateway's view of a remote rerank service (implements pipeline.Reranker)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from imsearch.index.catalog import Item
from imsearch.index.store import Hit
from imsearch.index.vectors import SearchKnobs
from imsearch.rerank.reranker import QueryFeatures, RerankConfig, RerankResult
from services.common.client import ServiceClient
from services.common.codec import (
    hits_to_pb,
    item_to_pb,
    knobs_to_pb,
    local_to_pb,
    rerank_config_to_pb,
    rerank_result_from_pb,
    vector_to_pb,
)
from services.contracts.v1 import messages_pb2 as pb


class RemoteReranker:
    def __init__(
        self, client: ServiceClient, config: RerankConfig, model_id: Callable[[], str]
    ) -> None:
        self.client = client
        self.config = config
        #: Asked for at each write (the extractor's, once it answers): not needed to start.
        self._model_id = model_id

    @property
    def model_id(self) -> str:
        return self._model_id()

    def rerank(
        self,
        query: QueryFeatures,
        hits: list[Hit],
        k: int,
        config: RerankConfig | None = None,
        knobs: SearchKnobs | None = None,
    ) -> RerankResult:
        request = pb.RerankRequest(
            query=vector_to_pb(query.vector),
            hits=hits_to_pb(hits),
            k=k,
            config=rerank_config_to_pb(config or self.config),
            knobs=knobs_to_pb(knobs),
        )
        if query.local is not None:
            request.local.CopyFrom(local_to_pb(query.local))
        reply = self.client.call("/v1/rerank", request, pb.RerankResponse, idempotent=True)
        return rerank_result_from_pb(reply)

    def add(self, items: Sequence[Item]) -> list[int]:
        request = pb.AddRequest(model_id=self.model_id, items=[item_to_pb(i, True) for i in items])
        reply = self.client.call("/v1/add", request, pb.AddResponse, idempotent=True)
        return list(range(reply.added))

    def delete(self, ext_ids: Sequence[str]) -> int:
        request = pb.DeleteRequest(ids=list(ext_ids))
        return int(self.client.call("/v1/delete", request, pb.DeleteResponse, True).deleted)

    def stats(self) -> dict[str, Any]:
        return dict(self.client.get_json("/v1/stats"))
