"""The gateway's view of a remote rerank service (implements pipeline.Reranker)."""

from __future__ import annotations

import json
from typing import Any

from imsearch.features.local import LocalFeatures
from imsearch.rerank.reranker import (
    Candidates,
    RerankConfig,
    RerankResult,
    SpatialReranker,
)
from services.common.client import ServiceClient
from services.common.codec import (
    candidates_to_pb,
    local_to_pb,
    rerank_config_to_pb,
    rerank_result_from_pb,
)
from services.contracts.v1 import messages_pb2 as pb


class RemoteReranker:
    """Verification in the rerank workers: they read candidates' features by reference."""

    def __init__(self, client: ServiceClient, config: RerankConfig) -> None:
        self.client = client
        self.config = config

    def rerank(
        self,
        query: LocalFeatures | None,
        candidates: Candidates,
        k: int,
        config: RerankConfig | None = None,
    ) -> RerankResult:
        config = config or self.config
        if "spatial" not in config.stages:  # nothing to verify: no call to make
            return SpatialReranker(None, config).rerank(query, candidates, k)
        request = pb.RerankRequest(
            hits=candidates_to_pb(candidates.hits),
            k=k,
            config=rerank_config_to_pb(config),
            details_json=json.dumps(candidates.details),
            collection=candidates.collection,
            generation=candidates.generation,
        )
        if query is not None:
            request.local.CopyFrom(local_to_pb(query))
        reply = self.client.call("/v1/rerank", request, pb.RerankResponse, idempotent=True)
        return rerank_result_from_pb(reply)

    def stats(self) -> dict[str, Any]:
        return dict(self.client.get_json("/v1/stats"))
