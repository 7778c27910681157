"""Local features stored as product-quantisation codes: size, fidelity, verification, errors."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from imsearch.errors import ConfigError, LocalFeatureError
from imsearch.features.local import LocalFeatures, SiftExtractor, stored_form
from imsearch.features.local_codes import Codebook, learn_codebook, shipped_codebook
from imsearch.images import load_image
from imsearch.rerank.spatial import VerifyParams, verify
from tests.conftest import MINI

SIFT = SiftExtractor(max_side=640, max_keypoints=800, contrast_threshold=0.02, clahe=True)


@pytest.fixture(scope="module")
def local() -> dict[str, LocalFeatures]:
    names = ["ref_001", "ref_002", "canon_001", "wall_altai"]
    return {n: SIFT.extract(load_image(MINI / "images" / f"{n}.jpg")) for n in names}


@pytest.mark.parametrize("m", [16, 32])
def test_codes_are_m_plus_four_bytes_a_keypoint_and_decode_near_rootsift(local, m) -> None:
    feats = local["ref_001"]
    data = feats.to_bytes(f"pq{m}")
    assert len(data) == 16 + 10 + len(feats) * (4 + m) < len(feats.to_bytes()) / 3
    again = LocalFeatures.from_bytes(data)
    assert len(again) == len(feats) and again.sift.shape == (0, 128)
    np.testing.assert_allclose(again.xy, feats.xy, atol=0.25)
    exact, decoded = feats.rootsift(), again.rootsift()
    # reconstruction error well below the distance between unrelated RootSIFT (~1.0)
    error = np.linalg.norm(exact - decoded, axis=1)
    assert np.median(error) < (0.35 if m == 16 else 0.25)
    # decoded rows are unit length, as RootSIFT rows are (the matcher ranks by cosine)
    np.testing.assert_allclose(np.linalg.norm(decoded, axis=1), 1.0, atol=1e-5)
    # stored codes are kept as they are, whatever the setting says now
    assert stored_form(data, "sift8") == data and stored_form(data, "pq16") == data
    with pytest.raises(LocalFeatureError, match="raw SIFT"):
        again.to_bytes()


def test_a_coded_candidate_still_verifies_against_its_photo_only(local) -> None:
    params = VerifyParams()
    coded = {n: LocalFeatures.from_bytes(f.to_bytes("pq16")) for n, f in local.items()}
    raw_same = verify(local["canon_001"], local["ref_001"], params)
    same = verify(local["canon_001"], coded["ref_001"], params)
    other = verify(local["canon_001"], coded["ref_002"], params)
    wall = verify(local["canon_001"], coded["wall_altai"], params)
    assert same.verified(params) and same.inliers >= 3 * max(other.inliers, wall.inliers, 1)
    assert same.inliers >= 0.8 * raw_same.inliers


def test_records_of_another_codebook_or_cut_short_are_refused(local) -> None:
    data = local["ref_002"].to_bytes("pq16")
    header = struct.calcsize("<4sIff")
    foreign = data[: header + 2] + b"\x00" * 8 + data[header + 10 :]
    with pytest.raises(LocalFeatureError, match="re-index"):
        LocalFeatures.from_bytes(foreign)
    with pytest.raises(LocalFeatureError, match="corrupt"):
        LocalFeatures.from_bytes(data[:-3])
    with pytest.raises(ConfigError, match="unknown local encoding"):
        local["ref_002"].to_bytes("pq7")


def test_a_codebook_is_learned_per_sub_vector_and_named_by_its_content() -> None:
    rng = np.random.default_rng(0)
    sample = np.abs(rng.normal(size=(3000, 128))).astype(np.float32)
    book = Codebook(learn_codebook(sample, 16))
    assert book.centroids.shape == (16, 256, 8) and book.m == 16
    codes = book.encode(sample[:50])
    assert codes.shape == (50, 16) and codes.dtype == np.uint8
    # encode picks the nearest centroid of each sub-vector
    j, x = 3, sample[7, 24:32]
    expected = np.argmin(((book.centroids[j] - x) ** 2).sum(axis=1))
    assert codes[7, j] == expected
    assert book.digest != shipped_codebook(16).digest and len(book.digest) == 8
