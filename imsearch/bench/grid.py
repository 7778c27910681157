"""``imsearch bench features``: the descriptor grid on one dataset.

For each backbone × max side, every image's feature maps are computed once per scale; each
pooling (GeM, MAC, SPoC, and their regional R-MAC-style variants) × single/multi-scale
descriptor is then derived from those maps exactly as the :class:`Extractor` derives it, indexed
into an :class:`IndexStore` and evaluated with and without the collection's PCA whitening.
Extraction time is measured per image for the network forward passes of each scale set.
"""

from __future__ import annotations

import itertools
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from tqdm import tqdm

from imsearch.evaluate.datasets import Dataset
from imsearch.evaluate.metrics import evaluate_rankings
from imsearch.features import functional as LF
from imsearch.features.config import IMAGENET
from imsearch.features.extractor import MULTI_SCALES, Extractor, ModelConfig
from imsearch.images import crop_box, load_image, resize_max_side
from imsearch.index.catalog import Item
from imsearch.index.store import IndexStore

POOLINGS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gem": lambda x: LF.gem(x, 3.0),
    "mac": LF.mac,
    "spoc": LF.spoc,
}


@dataclass(frozen=True)
class Variant:
    pooling: str
    regions: int
    multiscale: bool

    @property
    def scales(self) -> tuple[float, ...]:
        return MULTI_SCALES if self.multiscale else (1.0,)


def feature_grid(
    dataset: Dataset,
    backbones: Sequence[str],
    sizes: Sequence[int],
    cut: Literal["blocks", "head"] = "blocks",
    poolings: Sequence[str] = ("gem", "mac", "spoc"),
    regions: Sequence[int] = (0, 3),
    device: str = "auto",
    whitening_shrinkage: float = 1.0,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Rows of quality and cost, one per configuration (see the module docstring)."""
    rows: list[dict[str, Any]] = []
    variants = [
        Variant(p, r, ms) for p, r, ms in itertools.product(poolings, regions, (False, True))
    ]
    for backbone, size in itertools.product(backbones, sizes):
        # the ImageNet trunk for every pooling: the shipped model's whitening (and float16 copy
        # of that trunk) belongs to one pooling only, and the grid learns its own
        config = ModelConfig(
            backbone=backbone,
            weights=Path(IMAGENET),
            cut=cut,
            max_side=size,
            scales=MULTI_SCALES,
        )
        extractor = Extractor(config, device=device, batch_size=1)
        descriptors, ms_single, ms_multi = _describe_all(extractor, dataset, variants, progress)
        for variant in variants:
            db, queries = descriptors[variant]
            for whiten in (False, True):
                metrics = _evaluate(dataset, db, queries, whiten, whitening_shrinkage)
                rows.append(
                    {
                        "backbone": backbone,
                        "cut": cut,
                        "max_side": size,
                        "pooling": variant.pooling,
                        "regions": variant.regions,
                        "scales": "multi" if variant.multiscale else "single",
                        "whitening": "collection" if whiten else "none",
                        "dim": int(db.shape[1]),
                        "ms_per_image": ms_multi if variant.multiscale else ms_single,
                        **metrics,
                    }
                )
    return rows


def _describe_all(
    extractor: Extractor, dataset: Dataset, variants: Sequence[Variant], progress: bool
) -> tuple[dict[Variant, tuple[np.ndarray, np.ndarray]], float, float]:
    n_db = len(dataset.database_paths)
    paths = [*dataset.database_paths, *(q.path for q in dataset.queries)]
    boxes = [None] * n_db + [q.bbox for q in dataset.queries]
    per_variant: dict[Variant, list[np.ndarray]] = {v: [] for v in variants}
    seconds = dict.fromkeys(MULTI_SCALES, 0.0)
    bar = tqdm(paths, desc=extractor.model_id, unit="img", disable=not progress)
    for path, box in zip(bar, boxes, strict=True):
        image = load_image(path, target_max_side=None if box else extractor.decode_side)
        if box:
            image = crop_box(image, box)
        pooled: dict[tuple[str, int, float], torch.Tensor] = {}
        for scale in MULTI_SCALES:
            side = max(16, round(extractor.config.max_side * scale))
            started = time.perf_counter()
            maps = extractor.feature_maps(resize_max_side(image, side))
            seconds[scale] += time.perf_counter() - started
            for pooling, levels in {(v.pooling, v.regions) for v in variants}:
                pool = POOLINGS[pooling]
                vec = LF.regional(maps, pool, levels) if levels else pool(maps)
                pooled[(pooling, levels, scale)] = LF.l2n(vec)[0]
        for v in variants:
            total = sum(pooled[(v.pooling, v.regions, s)] for s in v.scales)
            per_variant[v].append(LF.l2n(torch.as_tensor(total)).cpu().numpy())
    out = {}
    for v, vecs in per_variant.items():
        stacked = np.stack(vecs).astype(np.float32)
        out[v] = (stacked[:n_db], stacked[n_db:])
    ms_single = 1e3 * seconds[1.0] / len(paths)
    ms_multi = 1e3 * sum(seconds.values()) / len(paths)
    return out, ms_single, ms_multi


def _evaluate(
    dataset: Dataset, db: np.ndarray, queries: np.ndarray, whiten: bool, shrinkage: float
) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="imsearch-grid-") as tmp:
        store = IndexStore(Path(tmp), "grid", db.shape[1])
        store.add([Item(i, v) for i, v in zip(dataset.database_ids, db, strict=True)])
        if whiten:
            store.learn_whitening(shrinkage=shrinkage, min_images=3)
        index = {image_id: i for i, image_id in enumerate(dataset.database_ids)}
        hits = store.search(queries, len(dataset.database_ids))
        store.close()
    rankings = [np.array([index[h.id] for h in row]) for row in hits]
    m = evaluate_rankings(rankings, [q.gt for q in dataset.queries], (1, 5, 10), (1, 10, 100))
    return {
        "map": m.map,
        "mp@1": m.mp[1],
        "mp@5": m.mp[5],
        "mp@10": m.mp[10],
        "recall@1": m.recall[1],
        "recall@10": m.recall[10],
        "recall@100": m.recall[100],
    }


def format_grid(rows: Sequence[dict[str, Any]]) -> str:
    """A Markdown table of the grid, best mAP first."""
    header = (
        "| backbone | side | pooling | scales | whitening | mAP | mP@1 | R@10 | R@100 "
        "| ms/img |\n|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = [header]
    for r in sorted(rows, key=lambda r: -r["map"]):
        pooling = f"R-{r['pooling'].upper()}" if r["regions"] else r["pooling"].upper()
        lines.append(
            f"| {r['backbone']} | {r['max_side']} | {pooling} | {r['scales']} | {r['whitening']} "
            f"| {100 * r['map']:.1f} | {100 * r['mp@1']:.1f} | {100 * r['recall@10']:.1f} "
            f"| {100 * r['recall@100']:.1f} | {r['ms_per_image']:.0f} |"
        )
    return "\n".join(lines)
