"""Training tuples: pairs from labels or augmentation, and hard-negative mining rules."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from imsearch.errors import ConfigError
from imsearch.evaluate.datasets import load_dataset
from imsearch.features.backbones import Backbone
from imsearch.features.network import RetrievalNet
from imsearch.train.data import StrongAugment, TrainingData, labelled, unlabelled
from imsearch.train.trainer import TrainConfig, mine
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


def test_strong_augmentation_is_reproducible_and_changes_the_image() -> None:
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8))
    a, b = StrongAugment(seed=1)(img), StrongAugment(seed=1)(img)
    assert np.array_equal(np.asarray(a), np.asarray(b))
    c = StrongAugment(seed=2)(img)
    assert not np.array_equal(np.asarray(a), np.asarray(img.resize(a.size)))
    assert a.size != c.size or not np.array_equal(np.asarray(a), np.asarray(c))
