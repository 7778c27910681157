"""The descriptor grid derives the same descriptors as the extractor and scores them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from imsearch.bench.grid import Variant, _describe_all, feature_grid, format_grid
from imsearch.evaluate.datasets import load_dataset
from imsearch.features.config import IMAGENET
from imsearch.features.extractor import MULTI_SCALES, Extractor
from imsearch.images import load_image
from tests.conftest import MINI


def test_grid_descriptors_equal_the_extractors(fast_config) -> None:
    dataset = load_dataset(MINI)
    imagenet = fast_config.model_copy(update={"weights": Path(IMAGENET)})
    grid_extractor = Extractor(imagenet.model_copy(update={"scales": MULTI_SCALES}), "cpu")
    variants = [Variant("gem", 0, True), Variant("mac", 3, False)]
    descriptors, ms_single, ms_multi = _describe_all(grid_extractor, dataset, variants, False)
    assert 0 < ms_single < ms_multi
    for variant in variants:
        config = imagenet.model_copy(
            update={
                "pooling": variant.pooling,
                "regions": variant.regions,
                "scales": variant.scales,
            }
        )
        extractor = Extractor(config, "cpu")
        image = load_image(dataset.database_paths[0], target_max_side=grid_extractor.decode_side)
        np.testing.assert_allclose(
            descriptors[variant][0][0], extractor.describe([image])[0], atol=1e-4
        )


def test_grid_rows_and_table() -> None:
    rows = feature_grid(
        load_dataset(MINI),
        ["efficientnet_lite0"],
        [128],
        poolings=["gem"],
        regions=[0],
        device="cpu",
        progress=False,
    )
    assert len(rows) == 4  # single/multi scale x whitening off/on
    assert {(r["scales"], r["whitening"]) for r in rows} == {
        ("single", "none"),
        ("single", "collection"),
        ("multi", "none"),
        ("multi", "collection"),
    }
    assert all(0 < r["map"] <= 1 and r["recall@100"] == 1.0 for r in rows)
    assert format_grid(rows).count("\n") == 5
