"""Learned whitening ("Lw") from matching pairs, without training the network: from a labelled
dataset, or self-supervised from synthetic photos of a folder's images.

Each query of the (training) dataset and each of its positives make a matching pair; their raw
descriptors come from the collection's own model, so the whitening fits the index it will be
used with. Only the queries the caller selects are read (never the evaluation split).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from imsearch.errors import ConfigError
from imsearch.evaluate.datasets import Dataset
from imsearch.features.whitening import LW_SHRINKAGE, PCAWhitening, learn_lw_whitening
from imsearch.pipeline import DescriptorExtractor

if TYPE_CHECKING:
    from imsearch.features.extractor import Extractor


def learn_lw_from_dataset(
    extractor: DescriptorExtractor,
    dataset: Dataset,
    dim: int | None = None,
    shrinkage: float = LW_SHRINKAGE,
    progress: bool = True,
) -> PCAWhitening:
    """Pairs = (query, each positive) for every query of ``dataset``."""
    pairs_by_id = [(q, [dataset.database_ids[i] for i in q.gt.ok]) for q in dataset.queries]
    positives = sorted({image_id for _, ids in pairs_by_id for image_id in ids})
    if not positives:
        raise ConfigError("learned whitening needs queries with positives; the selection has none")
    paths = dict(zip(dataset.database_ids, dataset.database_paths, strict=True))
    row = {image_id: i for i, image_id in enumerate(positives)}
    jobs = [(paths[i], None) for i in positives] + [(q.path, q.bbox) for q, _ in pairs_by_id]
    vectors = []
    for path, box in tqdm(jobs, desc="descriptors", unit="img", disable=not progress):
        vectors.append(extractor.extract([path.read_bytes()], [box]).vectors[0])  # type: ignore[index]
    pairs = [
        (len(positives) + q_row, row[image_id])
        for q_row, (_, ids) in enumerate(pairs_by_id)
        for image_id in ids
    ]
    source = f"lw: {len(pairs)} pairs of {dataset.name} ({len(dataset.queries)} queries)"
    return learn_lw_whitening(np.stack(vectors), np.array(pairs), dim, shrinkage, source)


def learn_lw_from_views(
    extractor: Extractor,
    paths: Sequence[Path],
    views_per_image: int = 2,
    seed: int = 0,
    dim: int | None = None,
    shrinkage: float = LW_SHRINKAGE,
    progress: bool = True,
) -> PCAWhitening:
    """Self-supervised Lw: pairs = (an image, a synthetic photo of it), no labels.

    Images and views are described at the extractor's own size and pooling (what the index
    will hold), so the whitening learns which directions photos move a descriptor along.
    """
    from imsearch.train.data import Sample, load_image
    from imsearch.train.views import SyntheticViews

    if len(paths) < 3:
        raise ConfigError(f"learned whitening needs at least 3 images, got {len(paths)}")
    side = extractor.config.max_side
    samples = [Sample(Path(p), str(p)) for p in paths]
    views = SyntheticViews(lambda rng: load_image(rng.choice(samples), side), seed)
    vectors: list[np.ndarray] = []
    pairs: list[tuple[int, int]] = []
    for sample in tqdm(samples, desc="Lw pairs", unit="img", disable=not progress):
        img = load_image(sample, side)
        batch = [img] + [views(img) for _ in range(views_per_image)]
        first = len(vectors)
        vectors.extend(extractor.describe(batch))
        pairs.extend((first, first + v) for v in range(1, len(batch)))
    source = f"lw: {len(pairs)} synthetic pairs of {len(samples)} images (seed {seed})"
    return learn_lw_whitening(np.stack(vectors), np.array(pairs), dim, shrinkage, source)
