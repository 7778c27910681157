"""Training tuples: where a query, its positive and its negative candidates come from.

* **Labelled**: a dataset in the DESIGN.md format (or Revisited layout). Each query is paired
  with each of its positives; the negative pool is the rest of the database.
* **Unlabelled**: a folder of images. Each image is its own positive, seen through a strong
  augmentation (perspective, crop, rotation, colour, blur, JPEG); the negative pool is every
  other image.

Images are decoded safely (:func:`imsearch.images.decode_image`) at the training size.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from imsearch.errors import ConfigError
from imsearch.evaluate.datasets import Dataset
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


def load_image(sample: Sample, max_side: int) -> Image.Image:
    img = decode_image(sample.path.read_bytes(), target_max_side=None if sample.box else max_side)
    if sample.box is not None:
        img = crop_box(img, sample.box)
    return resize_max_side(img, max_side)


def to_tensor(img: Image.Image) -> torch.Tensor:
    """``(1, 3, H, W)`` RGB in [0, 1], what :class:`RetrievalNet` takes."""
    array = np.asarray(img.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1)[None].float().div_(255.0)


class StrongAugment:
    """What a phone photo does to a catalogue image, drawn at random per call (reproducibly:
    each call seeds torch's generator from this object's own)."""

    def __init__(self, seed: int) -> None:
        from torchvision.transforms import v2

        self.v2 = v2
        self.rng = random.Random(seed)
        self.perspective = v2.RandomPerspective(distortion_scale=0.4, p=0.8)
        self.after_crop = v2.Compose(
            [
                v2.RandomRotation(degrees=20),
                v2.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.05),
                v2.RandomApply([v2.GaussianBlur(kernel_size=5, sigma=(0.1, 2.0))], p=0.3),
                v2.JPEG(quality=(30, 90)),
            ]
        )

    def __call__(self, img: Image.Image) -> Image.Image:
        torch.manual_seed(self.rng.randrange(2**31))
        crop = self.v2.RandomResizedCrop(
            size=(img.height, img.width), scale=(0.4, 1.0), ratio=(0.6, 1.66)
        )
        out = self.after_crop(crop(self.perspective(img)))
        # Phone photos often arrive turned by a quarter or half turn.
        return out.rotate(self.rng.choice((0, 0, 90, 180, 270)), expand=True)
