"""Faster CPU runtimes give the eager PyTorch descriptors; the fast matcher the same pairs."""

from __future__ import annotations

import numpy as np
import pytest

from imsearch.features.config import ModelConfig
from imsearch.features.extractor import Extractor
from imsearch.features.local import SiftExtractor
from imsearch.features.runtime import resolve_runtime
from imsearch.features.whitening import learn_pca_whitening
from imsearch.images import load_image
from imsearch.rerank.spatial import VerifyParams, ratio_matches, verify
from tests.conftest import MINI

IMAGES = sorted((MINI / "images").glob("*.jpg"))


@pytest.fixture(scope="module")
def images() -> list:
    return [load_image(p) for p in IMAGES]


@pytest.fixture(scope="module")
def eager(images) -> np.ndarray:
    """The reference: the shipped configuration (1024 px, R-MAC) in eager PyTorch."""
    return Extractor(ModelConfig(), device="cpu", runtime="torch").describe(images)


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_runtime_descriptors_equal_eager_ones(runtime: str, images, eager) -> None:
    fast = Extractor(ModelConfig(), device="cpu", runtime=runtime, threads=2)
    assert fast.runtime == runtime
    got = fast.describe(images)
    # Shapes differ image by image (portrait, landscape, odd sizes): the export is dynamic.
    assert len({img.size for img in images}) > 2
    assert np.min(np.sum(got * eager, axis=1)) >= 0.999
    # ... and after the collection's PCA whitening, which amplifies weak components.
    whitening = learn_pca_whitening(eager)
    a, b = whitening.apply(eager), whitening.apply(got)
    cosine = np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert np.min(cosine) >= 0.999
    # Batches of equal-shape images run through the exported graph too.
    pair = [images[0], images[0].copy()]
    np.testing.assert_allclose(fast.describe(pair), eager[[0, 0]], atol=2e-3)


def test_auto_runtime_and_fallbacks(monkeypatch) -> None:
    import torch

    from imsearch.errors import ConfigError
    from imsearch.features import runtime

    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert resolve_runtime("auto", cpu) == "openvino"
    assert resolve_runtime("auto", gpu) == "torch"
    assert resolve_runtime("onnxruntime", gpu) == "torch"  # CPU-only runtimes leave the GPU
    monkeypatch.setattr(runtime, "_importable", lambda name: name == "onnxruntime")
    assert resolve_runtime("auto", cpu) == "onnxruntime"
    assert resolve_runtime("openvino", cpu) == "torch"  # not installed: eager, with a warning
    with pytest.raises(ConfigError, match="unknown runtime"):
        resolve_runtime("tensorflow", cpu)


def test_matmul_matcher_gives_the_opencv_pairs() -> None:
    sift = SiftExtractor(max_side=640, max_keypoints=800)
    query = sift.extract(load_image(MINI / "images" / "canon_001.jpg"))
    params = VerifyParams()
    for name in ("ref_001", "ref_002", "wall_altai"):
        cand = sift.extract(load_image(MINI / "images" / f"{name}.jpg"))
        fast = ratio_matches(query.rootsift(), cand.rootsift(), 0.8, "matmul")
        reference = ratio_matches(query.rootsift(), cand.rootsift(), 0.8, "opencv")
        assert len(fast) > 0
        # Float rounding may flip a pair whose two distances tie to the last bit.
        same = {tuple(p) for p in fast} & {tuple(p) for p in reference}
        assert len(same) >= 0.99 * max(len(fast), len(reference))
    a = verify(query, sift.extract(load_image(MINI / "images" / "ref_001.jpg")), params)
    assert a.verified(params)
    with pytest.raises(ValueError, match="unknown matcher"):
        ratio_matches(query.rootsift(), query.rootsift(), 0.8, "flann")


def test_query_photos_get_the_query_sift_side(fast_settings) -> None:
    from imsearch.engine import make_extractors
    from imsearch.pipeline import InProcessExtractor

    settings = fast_settings.model_copy(update={"query_local_max_side": 300, "runtime": "torch"})
    network, sift, query_sift = make_extractors(settings)
    extractor = InProcessExtractor(network, settings.image_limits(), sift, 1, query_sift)
    data = (MINI / "images" / "canon_001.jpg").read_bytes()
    added = extractor.extract([data], global_=False, local=True).local
    asked = extractor.extract([data], global_=False, local=True, query=True).local
    assert added is not None and asked is not None
    assert max(added[0].width, added[0].height) == 480  # the photo's own size: never enlarged
    assert max(asked[0].width, asked[0].height) == 300
    # The query cache is keyed by what the query's features depend on.
    assert extractor.local_id == "sift1000@300/c0.02/clahe"
    assert sift.config_id == "sift1000@800/c0.02/clahe"
    plain = settings.model_copy(update={"local_contrast": 0.04, "local_clahe": False})
    assert make_extractors(plain)[2].config_id == "sift1000@300"  # OpenCV's own detector
    # The default query side (720) never exceeds the collection's.
    assert fast_settings.query_local_max_side == 720
    capped = fast_settings.model_copy(update={"local_max_side": 256, "runtime": "torch"})
    assert make_extractors(capped)[2].max_side == 256


def test_openvino_compiles_each_shape_it_meets_in_the_background(images) -> None:
    import torch

    from imsearch.features.runtime import OpenVinoTrunk

    fast = Extractor(ModelConfig(max_side=256), device="cpu", runtime="openvino", threads=2)
    trunk = fast._trunk
    assert isinstance(trunk, OpenVinoTrunk)
    x = fast._to_batch([np.asarray(images[0].resize((256, 192)))])
    first = trunk(x)  # the dynamic model answers a shape until it is seen three times
    trunk(x)
    trunk.wait()
    assert trunk.static_shapes() == []
    trunk(x)  # the third: its static model compiles in the background
    trunk.wait()
    assert trunk.static_shapes() == [(1, 3, 192, 256)]
    torch.testing.assert_close(trunk(x), first, atol=1e-4, rtol=1e-4)
    # An evicted shape is compiled again when it comes back; the cap holds.
    small = OpenVinoTrunk(trunk._onnx, 1, max_static=1, compile_after=1)
    for side in (160, 192, 160):
        small(torch.zeros(1, 3, side, side))
        small.wait()
    assert small.static_shapes() == [(1, 3, 160, 160)]


def test_a_runtime_that_fails_to_start_falls_back_to_eager(monkeypatch, fast_config) -> None:
    from imsearch.features import runtime

    def broken(*_args, **_kwargs):
        raise RuntimeError("this CPU is not supported")

    monkeypatch.setattr(runtime, "export_onnx", broken)
    extractor = Extractor(fast_config, device="cpu", runtime="openvino")
    assert extractor.runtime == "torch"
    image = load_image(MINI / "images" / "ref_001.jpg")
    reference = Extractor(fast_config, device="cpu", runtime="torch").describe([image])
    np.testing.assert_allclose(extractor.describe([image]), reference, atol=1e-6)
