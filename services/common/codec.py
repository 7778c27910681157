"""Core objects ↔ the protobuf messages of proto/v1 (packed bytes, never JSON number lists)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import numpy as np

from imsearch.errors import ConfigError
from imsearch.features.local import LocalFeatures
from imsearch.ids import normalize_id
from imsearch.images import BBox
from imsearch.index.catalog import Item
from imsearch.index.features import MAX_RECORD_BYTES, FeatureRef
from imsearch.index.store import Hit
from imsearch.index.vectors import SearchKnobs
from imsearch.rerank.reranker import Candidate, RankedHit, RerankConfig, RerankResult
from services.contracts.v1 import messages_pb2 as pb

PROTOBUF = "application/x-protobuf"


def vector_to_pb(vector: np.ndarray, half: bool = False) -> pb.Vector:
    data = np.ascontiguousarray(vector, dtype="<f2" if half else "<f4").tobytes()
    kind = pb.Vector.FLOAT16 if half else pb.Vector.FLOAT32
    return pb.Vector(dim=int(vector.shape[-1]), dtype=kind, data=data)


def _array(data: bytes, dtype: str, what: str) -> np.ndarray:
    """``data`` as a flat array; a length that is no whole number of values is a bad message."""
    kind = np.dtype(dtype)
    if len(data) % kind.itemsize:
        raise ConfigError(f"{what}: {len(data)} bytes are not whole {kind} values")
    return np.frombuffer(data, dtype=kind)


def vector_from_pb(message: pb.Vector) -> np.ndarray:
    """The vector of ``message``; a malformed one is a :class:`ConfigError` (a 400)."""
    if message.dtype not in (pb.Vector.FLOAT16, pb.Vector.FLOAT32):
        raise ConfigError(f"vector: unknown dtype {message.dtype}")
    dtype = "<f2" if message.dtype == pb.Vector.FLOAT16 else "<f4"
    array = _array(message.data, dtype, "vector")
    if array.size != message.dim:
        raise ConfigError(f"vector holds {array.size} values, says {message.dim}")
    if array.size == 0 or not np.isfinite(array).all():
        raise ConfigError("vector: empty, or holds NaN or infinite values")
    return array.astype(np.float32)


def local_to_pb(features: LocalFeatures) -> pb.LocalFeatures:
    return pb.LocalFeatures(
        count=len(features),
        width=features.width,
        height=features.height,
        xy=np.ascontiguousarray(features.xy, dtype="<f4").tobytes(),
        sift=np.ascontiguousarray(features.sift, dtype=np.uint8).tobytes(),
    )


def local_from_pb(message: pb.LocalFeatures) -> LocalFeatures:
    n = message.count
    xy = _array(message.xy, "<f4", "local features")
    sift = _array(message.sift, "u1", "local features")
    if xy.size != 2 * n or sift.size != 128 * n:
        raise ConfigError("local features do not match their count")
    if not (np.isfinite(xy).all() and np.isfinite([message.width, message.height]).all()):
        raise ConfigError("local features: NaN or infinite coordinates")
    return LocalFeatures(
        xy.reshape(n, 2).astype(np.float32), sift.reshape(n, 128), message.width, message.height
    )


def bbox_to_pb(bbox: BBox | None) -> pb.BBox | None:
    return None if bbox is None else pb.BBox(x1=bbox[0], y1=bbox[1], x2=bbox[2], y2=bbox[3])


def bbox_from_pb(message: pb.ExtractRequest) -> BBox | None:
    if not message.HasField("bbox"):
        return None
    b = message.bbox
    return (b.x1, b.y1, b.x2, b.y2)


def knobs_to_pb(knobs: SearchKnobs | None) -> pb.SearchKnobs:
    knobs = knobs or SearchKnobs()
    return pb.SearchKnobs(
        nprobe=knobs.nprobe or 0, ef_search=knobs.ef_search or 0, k_factor=knobs.k_factor or 0.0
    )


def knobs_from_pb(message: pb.SearchKnobs) -> SearchKnobs:
    return SearchKnobs(message.nprobe or None, message.ef_search or None, message.k_factor or None)


def item_to_pb(item: Item) -> pb.Item:
    message = pb.Item(
        id=item.ext_id,
        vector=vector_to_pb(item.vector),
        sha256=item.sha256 or "",
        metadata_json=json.dumps(item.metadata, ensure_ascii=False),
    )
    if item.local is not None:
        message.local.CopyFrom(local_to_pb(LocalFeatures.from_bytes(item.local)))
    if item.thumbnail is not None:
        message.thumbnail = item.thumbnail
    return message


def item_from_pb(message: pb.Item) -> Item:
    """An item to store; the same id rules as the public API (callers hold the token, but a
    bad id must not reach the catalog from any side)."""
    local = local_from_pb(message.local).to_bytes() if message.HasField("local") else None
    try:
        metadata = json.loads(message.metadata_json or "{}")
    except json.JSONDecodeError as exc:
        raise ConfigError(f"item metadata is not JSON: {exc.msg}") from exc
    if not isinstance(metadata, dict):
        raise ConfigError("item metadata must be a JSON object")
    return Item(
        normalize_id(message.id),
        vector_from_pb(message.vector),
        message.sha256 or None,
        metadata,
        local,
        message.thumbnail or None,
    )


def hits_to_pb(hits: list[Hit]) -> list[pb.Hit]:
    return [pb.Hit(id=h.id, score=h.score) for h in hits]


def hits_from_pb(hits: Any) -> list[Hit]:
    return [Hit(h.id, float(h.score)) for h in hits]


def candidates_to_pb(candidates: list[Candidate]) -> list[pb.Hit]:
    out = []
    for c in candidates:
        hit = pb.Hit(id=c.id, score=c.score, global_score=c.global_score)
        if c.ref is not None:
            hit.ref.CopyFrom(pb.FeatureRef(segment=c.ref.segment, offset=c.ref.offset,
                                           length=c.ref.length))  # fmt: skip
        out.append(hit)
    return out


def candidates_from_pb(hits: Any) -> list[Candidate]:
    """Candidates from a message; ids follow the public rules, references must be sane."""
    out = []
    for h in hits:
        ref = None
        if h.HasField("ref"):
            if h.ref.offset < 16 or not 0 < h.ref.length <= MAX_RECORD_BYTES:
                raise ConfigError(f"candidate {h.id!r}: a feature reference out of range")
            ref = FeatureRef(int(h.ref.segment), int(h.ref.offset), int(h.ref.length))
        score = float(h.score)
        cosine = float(h.global_score) if h.HasField("global_score") else score
        if not (np.isfinite(score) and np.isfinite(cosine)):
            raise ConfigError(f"candidate {h.id!r}: a score that is not a number")
        out.append(Candidate(normalize_id(h.id), score, cosine, ref))
    return out


def rerank_config_to_pb(config: RerankConfig) -> pb.RerankConfig:
    return pb.RerankConfig(
        method=config.method,
        m=config.m,
        min_inliers=config.min_inliers,
        early_exit_inliers=config.early_exit_inliers or 0,
        shortlist=config.shortlist,
        fusion=config.fusion,
        min_confidence=config.min_confidence,
    )


def rerank_config_from_pb(message: pb.RerankConfig, base: RerankConfig) -> RerankConfig:
    return replace(
        base,
        method=message.method or base.method,
        m=message.m or base.m,
        min_inliers=message.min_inliers or base.min_inliers,
        early_exit_inliers=message.early_exit_inliers or None,
        shortlist=message.shortlist or base.shortlist,
        fusion=message.fusion or base.fusion,
        min_confidence=(
            message.min_confidence if message.HasField("min_confidence") else base.min_confidence
        ),
    )


_ANSWERS = {
    None: pb.RerankResponse.NOT_CHECKED,
    False: pb.RerankResponse.CONFIDENT_MATCH,
    True: pb.RerankResponse.NO_CONFIDENT_MATCH,
}


def rerank_result_to_pb(result: RerankResult) -> pb.RerankResponse:
    return pb.RerankResponse(
        hits=[
            pb.RankedHit(
                id=h.id,
                score=h.score,
                global_score=h.global_score,
                inliers=-1 if h.inliers is None else h.inliers,
                verified=h.verified,
                matches=[v for pair in (h.matches or ()) for v in pair],
                confidence=h.confidence,
                box=list(h.box or ()),
            )
            for h in result.hits
        ],
        answer=_ANSWERS[result.no_confident_match],
        details_json=json.dumps(result.details),
    )


def rerank_result_from_pb(message: pb.RerankResponse) -> RerankResult:
    answer = {v: k for k, v in _ANSWERS.items()}[message.answer]
    hits = [
        RankedHit(
            h.id,
            float(h.score),
            float(h.global_score),
            None if h.inliers < 0 else int(h.inliers),
            bool(h.verified),
            _quads(h.matches) if h.verified else None,
            float(h.confidence) if h.HasField("confidence") else None,
            _box(h.box),
        )
        for h in message.hits
    ]
    return RerankResult(hits, answer, json.loads(message.details_json or "{}"))


def _box(values: Any) -> tuple[float, float, float, float] | None:
    if len(values) != 4:
        return None
    x1, y1, x2, y2 = (float(v) for v in values)
    return (x1, y1, x2, y2)


def _quads(values: Any) -> tuple[tuple[float, float, float, float], ...]:
    flat = [float(v) for v in values]
    return tuple((flat[i], flat[i + 1], flat[i + 2], flat[i + 3]) for i in range(0, len(flat), 4))
