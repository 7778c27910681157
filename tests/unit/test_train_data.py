"""Training tuples: pairs from labels or augmentation, and hard-negative mining rules."""

from __future__ import annotations

import random
from dataclasses import fields

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from imsearch.errors import ConfigError
from imsearch.evaluate.datasets import load_dataset
from imsearch.features.backbones import Backbone
from imsearch.features.network import RetrievalNet
from imsearch.train.data import TrainingData, labelled, unlabelled
from imsearch.train.trainer import TrainConfig, mine
from imsearch.train.views import SyntheticViews, ViewConfig
from tests.conftest import MINI


def tiny_net() -> RetrievalNet:
    torch.manual_seed(0)
    trunk = nn.Sequential(nn.Conv2d(3, 8, 3, stride=4), nn.ReLU())
    return RetrievalNet(Backbone("tiny", trunk, 8, (0.5,) * 3, (0.5,) * 3, "0" * 64), "gem")


def test_labelled_pairs_and_pool_come_from_the_ground_truth() -> None:
    data = labelled(load_dataset(MINI))
    assert len(data.pairs) == 6 and not data.augment_positives
    assert all(q.label == p.label == f"ref_{q.path.stem[-3:]}" for q, p in data.pairs)
    assert len(data.pool) == 10


def test_unlabelled_folder_pairs_each_image_with_itself(tmp_path) -> None:
    for name in ("a", "b"):
        Image.new("RGB", (40, 30), (name == "a" and "red") or "blue").save(tmp_path / f"{name}.png")
    data = unlabelled(tmp_path)
    assert data.augment_positives and [(q.label, p.label) for q, p in data.pairs] == [
        ("a.png", "a.png"),
        ("b.png", "b.png"),
    ]
    with pytest.raises(ConfigError, match="two objects"):
        TrainingData(data.pairs[:1], data.pool[:1], True)
    with pytest.raises(ConfigError, match="no training pairs"):
        TrainingData([], data.pool, True)


def test_mining_takes_other_objects_one_per_object() -> None:
    data = labelled(load_dataset(MINI))
    config = TrainConfig(negatives=3, pool_size=10, image_size=64)
    cpu = torch.device("cpu")
    negatives = mine(tiny_net(), data.pairs, data.pool, config, random.Random(0), cpu)
    for (query, _), chosen in zip(data.pairs, negatives, strict=True):
        labels = [s.label for s in chosen]
        assert len(chosen) == 3 and query.label not in labels and len(set(labels)) == 3


def photo(seed: int, size: tuple[int, int] = (120, 90)) -> Image.Image:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)
    return Image.fromarray(small).resize(size, Image.Resampling.BICUBIC)


def views(seed: int, **config) -> SyntheticViews:
    return SyntheticViews(lambda rng: photo(rng.randrange(100)), seed, ViewConfig(**config))


def test_synthetic_views_are_reproducible_and_differ() -> None:
    img = photo(0)
    a, b = views(1)(img), views(1)(img)
    assert np.array_equal(np.asarray(a), np.asarray(b))
    c = views(2)(img)
    assert a.size != c.size or not np.array_equal(np.asarray(a), np.asarray(c))
    seq = views(3)
    assert not np.array_equal(np.asarray(seq(img)), np.asarray(seq(img)))  # a fresh view each


def test_every_change_of_the_generator_runs() -> None:
    """All probabilities at 1 (and at 0): each transform is exercised and keeps an RGB view."""
    always = {f.name: 1.0 for f in fields(ViewConfig) if f.name.startswith("p_")}
    always["p_quarter_turn"] = 0.2
    for config in (always, {k: 0.0 for k in always}):
        gen = views(0, **config)
        for _ in range(5):
            out = gen(photo(1))
            assert out.mode == "RGB" and max(out.size) == 120


def plain(**config) -> SyntheticViews:
    """Every optional change off, a green scene behind, no change of light."""
    off = {f.name: 0.0 for f in fields(ViewConfig) if f.name.startswith("p_")}
    off |= {"p_clutter": 1.0, "gain": (1.0, 1.0), "offset": (0.0, 0.0), "gamma": (1.0, 1.0)}
    green = Image.new("RGB", (200, 150), (0, 255, 0))
    return SyntheticViews(lambda rng: green, 0, ViewConfig(**(off | config)))


def red_share(view: Image.Image) -> float:
    out = np.asarray(view).astype(int)
    return float(((out[..., 0] > 200) & (out[..., 1] < 60)).mean())


def test_a_plain_view_shows_the_object_at_the_area_drawn() -> None:
    gen = plain(area=(0.3, 0.3), perspective=(0.0, 0.0), tilt=0.0)
    red = Image.new("RGB", (100, 100), (255, 0, 0))
    assert 0.25 < red_share(gen(red)) < 0.35


def test_small_objects_are_small() -> None:
    gen = plain(p_small=1.0, perspective=(0.0, 0.0), tilt=0.0)
    red = Image.new("RGB", (100, 100), (255, 0, 0))
    for _ in range(5):
        assert 0.03 < red_share(gen(red)) < 0.16
