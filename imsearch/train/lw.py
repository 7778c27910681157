"""Learned whitening ("Lw") from a labelled dataset, without training the network.

Each query of the (training) dataset and each of its positives make a matching pair; their raw
descriptors come from the collection's own model, so the whitening fits the index it will be
used with. Only the queries the caller selects are read (never the evaluation split).
"""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

from imsearch.errors import ConfigError
from imsearch.evaluate.datasets import Dataset
from imsearch.features.whitening import LW_SHRINKAGE, PCAWhitening, learn_lw_whitening
from imsearch.pipeline import DescriptorExtractor


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
