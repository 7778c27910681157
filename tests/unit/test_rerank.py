"""Local features, geometric verification, visual words and the global re-rankers."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imsearch.errors import ConfigError, LocalFeatureError
from imsearch.features.local import LocalFeatures, SiftExtractor
from imsearch.images import load_image
from imsearch.rerank.bow import BowIndex, Quantizer, learn_vocabulary
from imsearch.rerank.global_rerank import DatabaseGraph, diffuse, expand_query, l2n
from imsearch.rerank.reranker import RerankConfig, fuse
from imsearch.rerank.spatial import VerifyParams, plausible, verify
from tests.conftest import MINI

SIFT = SiftExtractor(max_side=640, max_keypoints=800)


@pytest.fixture(scope="module")
def local() -> dict[str, LocalFeatures]:
    names = ["ref_001", "ref_002", "ref_003", "canon_001", "droid_002", "wall_altai"]
    return {n: SIFT.extract(load_image(MINI / "images" / f"{n}.jpg")) for n in names}


def test_sift_features_are_bounded_and_round_trip(local) -> None:
    feats = local["ref_001"]
    assert 100 < len(feats) <= 800 and feats.sift.dtype == np.uint8
    data = feats.to_bytes()
    assert len(data) == 16 + len(feats) * 132  # float16 coordinates, uint8 descriptors
    again = LocalFeatures.from_bytes(data)
    np.testing.assert_allclose(again.xy, feats.xy, atol=0.25)  # float16: within half a pixel
    np.testing.assert_array_equal(again.sift, feats.sift)
    # Features of collections written before (float32 coordinates, LSF1) are still read.
    older = struct.pack("<4sIff", b"LSF1", len(feats), feats.width, feats.height)
    older += feats.xy.astype("<f4").tobytes() + feats.sift.tobytes()
    np.testing.assert_array_equal(LocalFeatures.from_bytes(older).xy, feats.xy)
    assert (again.width, again.height) == (feats.width, feats.height)
    np.testing.assert_allclose(np.linalg.norm(feats.rootsift(), axis=1), 1.0, atol=1e-4)
    with pytest.raises(LocalFeatureError):
        LocalFeatures.from_bytes(feats.to_bytes()[:-5])
    blank = SIFT.extract(Image.new("RGB", (64, 64), "white"))
    assert len(blank) == 0 and LocalFeatures.from_bytes(blank.to_bytes()).sift.shape == (0, 128)


def test_a_photo_verifies_against_its_cover_only(local) -> None:
    params = VerifyParams()
    same = verify(local["canon_001"], local["ref_001"], params)
    other = verify(local["canon_001"], local["ref_002"], params)
    wall = verify(local["canon_001"], local["wall_altai"], params)
    assert same.verified(params) and same.inliers >= 3 * max(other.inliers, wall.inliers, 1)
    assert not other.verified(params) and not wall.verified(params)


def test_verification_survives_rotation(local) -> None:
    rotated = SIFT.extract(load_image(MINI / "images" / "droid_002.jpg").rotate(90, expand=True))
    params = VerifyParams()
    assert verify(rotated, local["ref_002"], params).verified(params)


def test_implausible_homographies_are_rejected() -> None:
    assert plausible(np.eye(3), 10.0)
    assert not plausible(np.diag([-1.0, 1.0, 1.0]), 10.0)  # a mirror fold
    assert not plausible(np.diag([50.0, 50.0, 1.0]), 10.0)


def test_visual_words_shortlist_the_right_cover(local) -> None:
    db = ["ref_001", "ref_002", "ref_003", "wall_altai"]
    vocabulary = learn_vocabulary(np.concatenate([local[n].rootsift() for n in db]), 256)
    quantizer = Quantizer(vocabulary)
    index = BowIndex(quantizer.size)
    for i, name in enumerate(db):
        index.add(i, quantizer.assign(local[name].rootsift()))
    assert index.search(quantizer.assign(local["canon_001"].rootsift()), 4)[0][0] == 0
    assert index.search(quantizer.assign(local["droid_002"].rootsift()), 4)[0][0] == 1
    index.remove([1])
    assert 1 not in [i for i, _ in index.search(quantizer.assign(local["droid_002"].rootsift()), 4)]
    assert len(index) == 3 and index.search(np.zeros(0, np.int64), 3) == []


def _word_rows(rows: int = 300, seed: int = 0) -> tuple[BowIndex, list[np.ndarray]]:
    """Rows with twenty rare words of their own; two rows in three share ten common ones."""
    rng = np.random.default_rng(seed)
    index, words = BowIndex(10 + 20 * rows), []
    for row in range(rows):
        own = 10 + 20 * row + np.arange(20)
        common = [np.arange(10), rng.integers(0, 10, 30)] if row % 3 else []
        words.append(np.concatenate([*common, own]))
        index.add(1000 + row, words[-1])
        if row == rows // 2:
            index.consolidate()  # half the rows in the CSR, half added since
    return index, words


def test_a_posting_budget_walks_the_rarest_words_and_keeps_the_answer(tmp_path: Path) -> None:
    index, words = _word_rows()
    rare = lambda row, n: words[row][-20:][:n]  # noqa: E731
    query = np.concatenate([np.arange(10), rare(7, 12), rare(200, 5)])  # 7 first, 200 second
    full = index.search(query, 5)
    # Ten common words hold 2,000 postings; the query's 17 rare ones hold 17.
    chosen, _ = index._within_budget(np.unique(query), np.ones(len(np.unique(query))), 17)
    assert set(chosen.tolist()).isdisjoint(range(10)) and len(chosen) == 17
    budgeted = index.search(query, 5, max_postings=20)
    assert [i for i, _ in budgeted[:2]] == [i for i, _ in full[:2]] == [1007, 1200]
    assert len(budgeted) == 2 < len(full)  # rows reached only through common words are left
    # The rarest word is always walked, even past the budget.
    assert index.search(query, 5, max_postings=1)[0][0] == 1007
    # Filters and deletions apply to what the budget walks, before and after a reload.
    assert index.search(query, 5, np.array([1200]), max_postings=20)[0][0] == 1200
    index.remove([1007])
    index.save(tmp_path / "bow")
    for again in (index, BowIndex.load(tmp_path / "bow")):
        assert again.search(query, 5, max_postings=20)[0][0] == 1200
        assert 1007 not in again.ids() and len(again.ids()) == 299


def test_query_expansion_moves_toward_neighbours() -> None:
    q = l2n(np.array([1.0, 0.0, 0.0]))
    neighbours = l2n(np.array([[0.8, 0.6, 0.0], [0.8, 0.0, 0.6]]))
    expanded = expand_query(q, neighbours, np.array([0.8, 0.8]), 2, 3.0)
    assert np.isclose(np.linalg.norm(expanded), 1.0)
    assert expanded[1] > 0 and expanded[2] > 0 and expanded[0] < 1.0
    np.testing.assert_allclose(expand_query(q, neighbours, np.array([0.8, 0.8]), 0, 3.0), q)


def test_dba_and_diffusion_on_two_clusters() -> None:
    rng = np.random.default_rng(0)
    centres = l2n(rng.normal(size=(2, 16)))
    vectors = l2n(np.repeat(centres, 10, axis=0) + 0.1 * rng.normal(size=(20, 16)))
    graph = DatabaseGraph(k=5)
    graph.load([f"v{i}" for i in range(20)], vectors)
    dba = graph.dba_vectors(3, 3.0)
    assert dba.shape == vectors.shape and np.allclose(np.linalg.norm(dba, axis=1), 1.0)
    matrix = graph.diffusion_matrix(alpha=0.9, gamma=3.0)
    # Seeded with one member of the first cluster, diffusion ranks that cluster first.
    scores = diffuse(matrix, np.array([1.0]), np.array([0]), gamma=3.0)
    assert set(np.argsort(-scores)[:10].tolist()) == set(range(10))


def test_method_strings_and_fusion() -> None:
    assert RerankConfig(method="spatial+qe").stages == ("qe", "spatial")
    assert RerankConfig(method="none").stages == ()
    assert RerankConfig(method="qe+spatial").needs_local
    with pytest.raises(ConfigError, match="unknown re-ranking"):
        RerankConfig(method="magic").stages  # noqa: B018
    with pytest.raises(ConfigError, match="unknown fusion"):
        RerankConfig(fusion="vote").stages  # noqa: B018
    visual, global_ = ["a", "b", "c"], ["c", "a", "d"]
    merged = fuse("interleave", visual, global_)
    assert list(merged) == ["a", "c", "b", "d"]
    assert list(merged.values()) == sorted(merged.values(), reverse=True)
    # RRF: "a" (ranks 1 and 2) beats "c" (3 and 1); "b" and "d" only in one list each.
    assert list(fuse("rrf", visual, global_)) == ["a", "c", "b", "d"]
    assert list(fuse("rrf", ["x", "a"], ["y", "a"]))[:1] == ["a"]  # in both lists: first
    assert list(fuse("global", visual, global_)) == ["c", "a", "d", "b"]
    assert list(fuse("visual", visual, global_)) == ["a", "b", "c", "d"]


def test_contrast_adaptive_sift_finds_a_pale_small_painting() -> None:
    """A cover washed out to a third of its contrast, small in a grey photo: CLAHE and a lower
    contrast threshold keep keypoints on it that OpenCV's default detector drops."""
    cover = np.asarray(load_image(MINI / "images" / "ref_003.jpg").convert("RGB"), np.float32)
    pale = (cover * 0.3 + 170).astype(np.uint8)
    photo = Image.new("RGB", (960, 720), (150, 150, 150))
    photo.paste(Image.fromarray(pale).resize((240, 240)), (360, 240))
    plain = SiftExtractor(800, 1000).extract(photo)
    adaptive = SiftExtractor(800, 1000, contrast_threshold=0.02, clahe=True).extract(photo)
    assert len(adaptive) > 2 * len(plain)
    inside = (adaptive.xy[:, 0] > 290) & (adaptive.xy[:, 0] < 510)  # 800/960 of the paste
    assert inside.mean() > 0.8  # spent on the painting, not on the flat wall


def test_the_words_benchmark_builds_the_index_a_collection_would_hold(tmp_path: Path) -> None:
    from imsearch.bench.words import Sources, build

    rng = np.random.default_rng(3)
    sources = Sources.__new__(Sources)  # rows given here instead of read from a collection
    sources.size = 64
    sources.rows = [
        (np.unique(rng.integers(0, 64, 20)), np.ones(20, np.float32)) for _ in range(7)
    ]
    sources.rows = [(w, np.ones(len(w), np.float32) + (w % 3)) for w, _ in sources.rows]
    sources.cdf = np.linspace(1 / 64, 1, 64)
    build(sources, 50, tmp_path / "bow", log=lambda _: None)
    loaded = BowIndex.load(tmp_path / "bow")
    same = BowIndex(64)
    rows, words, tf = sources.chunk(0, 50)
    for row in range(50):
        same.add_counts(row, words[rows == row], tf[rows == row] ** 2)
    same.consolidate()
    assert len(loaded) == 50 and loaded.walked(np.arange(64)) == len(rows)
    for source_words, _ in sources.rows:
        got, want = loaded.search(source_words, 10), same.search(source_words, 10)
        assert [i for i, _ in got] == [i for i, _ in want]
        np.testing.assert_allclose([s for _, s in got], [s for _, s in want], rtol=2e-3)
