"""The gateway's view of a remote extractor (implements pipeline.DescriptorExtractor)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

import numpy as np

from imsearch.images import BBox
from imsearch.pipeline import Extracted
from services.common.client import ServiceClient
from services.common.codec import bbox_to_pb, local_from_pb, vector_from_pb
from services.contracts.v1 import messages_pb2 as pb


class RemoteExtractor:
    """The model's identity is asked for when first needed, not at start: the gateway may
    start before the extractor (a failed ask is asked again next time)."""

    def __init__(self, client: ServiceClient) -> None:
        self.client = client

    @cached_property
    def _info(self) -> dict[str, str]:
        return dict(self.client.get_json("/v1/info"))

    @property
    def model_id(self) -> str:
        return self._info["model_id"]

    @property
    def dim(self) -> int:
        return int(self._info["dim"])

    @property
    def local_id(self) -> str:
        return self._info["local_id"]

    def extract(
        self,
        images: Sequence[bytes],
        boxes: Sequence[BBox | None] | None = None,
        global_: bool = True,
        local: bool = False,
        thumbnails: bool = False,
        query: bool = False,
    ) -> Extracted:
        boxes = boxes or [None] * len(images)
        vectors, local_features, small = [], [], []
        for data, box in zip(images, boxes, strict=True):
            request = pb.ExtractRequest(
                image=data,
                want_global=global_,
                want_local=local,
                want_thumbnail=thumbnails,
                query=query,
            )
            crop = bbox_to_pb(box)
            if crop is not None:
                request.bbox.CopyFrom(crop)
            # Extraction has no side effect: safe to retry.
            reply = self.client.call("/v1/extract", request, pb.ExtractResponse, idempotent=True)
            if global_:
                vectors.append(vector_from_pb(reply.vector))
            if local:
                local_features.append(local_from_pb(reply.local))
            if thumbnails:
                small.append(reply.thumbnail)
        return Extracted(
            np.stack(vectors) if global_ else None,
            local_features if local else None,
            small if thumbnails else None,
        )
