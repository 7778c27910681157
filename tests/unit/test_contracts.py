"""The generated protobuf code matches proto/, and the codec round-trips every message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from imsearch.errors import ConfigError
from imsearch.features.local import LocalFeatures
from imsearch.index.catalog import Item
from imsearch.index.features import FeatureRef
from imsearch.index.store import Hit
from imsearch.index.vectors import SearchKnobs
from imsearch.rerank.reranker import Candidate, RankedHit, RerankConfig, RerankResult
from services.common import codec
from services.contracts.v1 import messages_pb2 as pb

ROOT = Path(__file__).resolve().parents[2]


def test_generated_code_is_in_step_with_the_proto(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-Iproto",
            f"--python_out={tmp_path}",
            f"--pyi_out={tmp_path}",
            "proto/v1/messages.proto",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    for name in ("messages_pb2.py", "messages_pb2.pyi"):
        fresh = (tmp_path / "v1" / name).read_text()
        committed = (ROOT / "services" / "contracts" / "v1" / name).read_text()
        assert fresh == committed, f"regenerate services/contracts/v1/{name} (see proto header)"


def test_vectors_travel_as_packed_bytes() -> None:
    vector = np.random.default_rng(0).normal(size=320).astype(np.float32)
    message = codec.vector_to_pb(vector)
    assert len(message.data) == 320 * 4 and message.dim == 320
    np.testing.assert_array_equal(codec.vector_from_pb(message), vector)
    half = codec.vector_to_pb(vector, half=True)
    assert len(half.data) == 320 * 2
    np.testing.assert_allclose(codec.vector_from_pb(half), vector, atol=1e-2)
    broken = pb.Vector(dim=10, data=b"\x00" * 8)
    with pytest.raises(ConfigError):
        codec.vector_from_pb(broken)


def test_items_local_features_and_rerank_results_round_trip() -> None:
    rng = np.random.default_rng(1)
    local = LocalFeatures(
        rng.random((5, 2)).astype(np.float32),
        rng.integers(0, 255, (5, 128)).astype(np.uint8),
        640.0,
        480.0,
    )
    item = Item(
        "a/b", rng.random(8).astype(np.float32), "abc", {"title": "é"}, local.to_bytes(), b"JPG"
    )
    wire = pb.Item.FromString(codec.item_to_pb(item).SerializeToString())
    back = codec.item_from_pb(wire)
    assert (back.ext_id, back.sha256, back.metadata, back.local, back.thumbnail) == (
        item.ext_id,
        item.sha256,
        item.metadata,
        item.local,
        item.thumbnail,
    )
    bare = Item("c", rng.random(8).astype(np.float32))
    assert not codec.item_to_pb(bare).HasField("local")

    candidates = [
        Candidate("x", 0.5, 0.9, FeatureRef(3, 4096, 13000)),
        Candidate("y", 0.33, 0.8),
    ]
    hits = (
        pb.SearchResponse.FromString(
            pb.SearchResponse(
                results=[pb.HitList(hits=codec.candidates_to_pb(candidates))]
            ).SerializeToString()
        )
        .results[0]
        .hits
    )
    again_c = codec.candidates_from_pb(hits)
    assert [(c.id, c.ref) for c in again_c] == [(c.id, c.ref) for c in candidates]
    assert [c.global_score for c in again_c] == pytest.approx([0.9, 0.8])
    # A plain hit (no global_score) is its own cosine; a reference out of range is refused.
    assert codec.candidates_from_pb([pb.Hit(id="z", score=0.25)])[0].global_score == 0.25
    hostile = pb.Hit(id="z", score=1.0, ref=pb.FeatureRef(segment=1, offset=16, length=1 << 30))
    with pytest.raises(ConfigError, match="out of range"):
        codec.candidates_from_pb([hostile])

    result = RerankResult(
        [
            RankedHit("x", 40.5, 0.7, 40, True, confidence=0.97, box=(0.1, 0.2, 0.5, 0.9)),
            RankedHit("y", 0.3, 0.6, 5, confidence=0.02),
            RankedHit("z", 0.2, 0.5),
        ],
        no_confident_match=False,
        details={"verified": 2},
    )
    again = codec.rerank_result_from_pb(codec.rerank_result_to_pb(result))
    for got, want in zip(again.hits, result.hits, strict=True):  # scores travel as float32
        assert (got.id, got.inliers, got.verified) == (want.id, want.inliers, want.verified)
        assert (got.confidence is None) == (want.confidence is None)
        assert got.confidence == pytest.approx(want.confidence)
        assert got.box == (None if want.box is None else pytest.approx(want.box))
        assert got.score == pytest.approx(want.score) and got.global_score == pytest.approx(
            want.global_score
        )
    assert again.no_confident_match is False
    assert again.details == {"verified": 2}
    config = RerankConfig(
        method="qe+spatial", m=7, min_inliers=30, early_exit_inliers=90, fusion="rrf"
    )
    assert codec.rerank_config_from_pb(codec.rerank_config_to_pb(config), RerankConfig()) == config
    # An explicit confidence of 0 (the first wave's rule) is not mistaken for "unset".
    zero = RerankConfig(min_confidence=0.0)
    assert codec.rerank_config_from_pb(codec.rerank_config_to_pb(zero), RerankConfig()) == zero
    calibrated = codec.rerank_config_from_pb(codec.rerank_config_to_pb(RerankConfig()), zero)
    assert calibrated.min_confidence == 0.0  # unset: the receiver's own setting
    knobs = SearchKnobs(nprobe=8, ef_search=None, k_factor=2.0)
    assert codec.knobs_from_pb(codec.knobs_to_pb(knobs)) == knobs
    assert codec.hits_from_pb(codec.hits_to_pb([Hit("z", 0.5)])) == [Hit("z", 0.5)]
