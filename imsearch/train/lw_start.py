"""Where self-supervised training starts: the ImageNet network, its R-MAC head, and a whitening
layer learned (Lw) from synthetic photos of the training images — as a checkpoint.

    python -m imsearch.train.lw_start var/train-images var/train-default/start.pt

Lw is closed-form and takes minutes (25 for the shipped model's 1,531 images × 3 views on 2
cores); it is the shipped model (docs/BENCHMARKS.md §14),
and a starting whitening that already knows which directions photos move a descriptor along
is what end-to-end fine-tuning then refines (Radenović et al. initialise theirs the same way).
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import torch

from imsearch.features.config import IMAGENET, ModelConfig
from imsearch.features.extractor import Extractor
from imsearch.features.network import FINETUNED_FORMAT
from imsearch.fsutil import write_atomic
from imsearch.images import list_images
from imsearch.train.lw import learn_lw_from_views


def lw_start(
    images: Path, out: Path, n_images: int | None = None, views: int = 3, seed: int = 0
) -> dict[str, str]:
    """Write the starting checkpoint to ``out``; returns the whitening's description.
    ``n_images``: an even spread of that many of the images (None: all of them)."""
    paths = list_images(images)
    if n_images is not None:
        paths = paths[:: max(1, len(paths) // n_images)][:n_images]
    config = ModelConfig(weights=Path(IMAGENET))
    extractor = Extractor(config, device="cpu", batch_size=1, runtime="auto")
    lw = learn_lw_from_views(extractor, paths, views, seed)
    state = {f"features.{k}": v for k, v in extractor.net.features.state_dict().items()}
    projection = torch.from_numpy(lw.projection)  # (D, d): y = (x - mean) @ P
    state["whiten.weight"] = projection.T.contiguous()
    state["whiten.bias"] = -(torch.from_numpy(lw.mean) @ projection)
    meta = {
        "format": FINETUNED_FORMAT,
        "architecture": config.backbone,
        "cut": config.cut,
        "pooling": config.pooling,
        "regions": config.regions,
        "epoch": 0,
        "whitening": lw.info.get("source", ""),
    }
    buffer = io.BytesIO()
    torch.save({"state_dict": state, "meta": meta}, buffer)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, buffer.getvalue())
    return lw.info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("images", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--images-used", type=int, default=None)
    parser.add_argument("--views", type=int, default=3)
    args = parser.parse_args()
    info = lw_start(args.images, args.out, args.images_used, args.views)
    print(f"{args.out}: {info}")


if __name__ == "__main__":
    main()
