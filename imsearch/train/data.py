"""Training tuples: where a query, its positive and its negative candidates come from.

* **Labelled**: a dataset in the DESIGN.md format (or Revisited layout). Each query is paired
  with each of its positives; the negative pool is the rest of the database.
* **Unlabelled** (self-supervised): a folder of images. Each image is its own positive, seen
  as a synthetic photo (:mod:`imsearch.train.views`: perspective, clutter, frames, glass,
  glare, low contrast, rotation, blur, noise, JPEG…); the negative pool is every other image.

Images are decoded safely (:func:`imsearch.images.decode_image`) at the training size.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from imsearch.errors import ConfigError
from imsearch.evaluate.datasets import Dataset
from imsearch.fsutil import write_atomic
from imsearch.images import BBox, crop_box, decode_image, list_images, resize_max_side


@dataclass(frozen=True)
class Sample:
    """One image to train on: where it is, the box to crop, the object it shows."""

    path: Path
    label: str
    box: BBox | None = None


@dataclass(frozen=True)
class TrainingData:
    #: (query, positive) pairs.
    pairs: list[tuple[Sample, Sample]]
    #: Where negatives are mined: images of other objects than a pair's.
    pool: list[Sample]
    #: Unlabelled data: the positive is an augmented view of the query.
    augment_positives: bool

    def __post_init__(self) -> None:
        if not self.pairs:
            raise ConfigError("no training pairs: the selection has no query with a positive")
        if len({s.label for s in self.pool}) < 2:
            raise ConfigError("the negative pool needs images of at least two objects")


def labelled(dataset: Dataset) -> TrainingData:
    db = [Sample(p, i) for i, p in zip(dataset.database_ids, dataset.database_paths, strict=True)]
    pairs = [(Sample(q.path, db[i].label, q.bbox), db[i]) for q in dataset.queries for i in q.gt.ok]
    return TrainingData(pairs, db, augment_positives=False)


def unlabelled(folder: Path) -> TrainingData:
    images = [Sample(p, p.relative_to(folder).as_posix()) for p in list_images(folder)]
    return TrainingData([(s, s) for s in images], images, augment_positives=True)


def unlabelled_paths(paths: list[Path]) -> TrainingData:
    """Unlabelled data from a list of image files (each its own object)."""
    images = [Sample(p, p.as_posix()) for p in paths]
    return TrainingData([(s, s) for s in images], images, augment_positives=True)


def load_image(sample: Sample, max_side: int) -> Image.Image:
    img = decode_image(sample.path.read_bytes(), target_max_side=None if sample.box else max_side)
    if sample.box is not None:
        img = crop_box(img, sample.box)
    return resize_max_side(img, max_side)


def to_tensor(img: Image.Image) -> torch.Tensor:
    """``(1, 3, H, W)`` RGB in [0, 1], what :class:`RetrievalNet` takes."""
    array = np.asarray(img.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1)[None].float().div_(255.0)


def from_collection(catalog_path: Path, folder: Path) -> TrainingData:
    """Self-supervised data from what a collection holds and nothing else: the thumbnail it
    stored of each image (320 px, upright), written once into ``folder`` (kept there, so a
    resumed run trains on the same images)."""
    from imsearch.index.catalog import Catalog

    if not catalog_path.is_file():
        raise ConfigError(f"no collection at {catalog_path.parent}: index it first")
    folder.mkdir(parents=True, exist_ok=True)
    catalog = Catalog(catalog_path, readonly=True)
    try:
        offset = 0
        while ids := catalog.list_ids(offset, 500):
            offset += len(ids)
            for ext_id in ids:
                stored = catalog.thumbnail(ext_id)
                name = folder / f"{hashlib.sha256(ext_id.encode()).hexdigest()[:24]}.jpg"
                if stored is not None and not name.exists():
                    write_atomic(name, stored[0])
    finally:
        catalog.close()
    return unlabelled(folder)
