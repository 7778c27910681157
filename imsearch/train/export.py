"""A training checkpoint made into a model to ship: the network only, half precision, with the
recipe that made it.

    python -m imsearch.train.export var/train-default/epoch-25.pt \
        imsearch/data/models/lite0-ssl-v1.pt --list docs/training/default-model-images.tsv.gz

``epoch-N.pt`` already holds just the network; this keeps its ``features.*``, ``pool.p`` and
``whiten.*`` tensors as float16 (half the bytes; the extractor computes in float32 and the
descriptors move by less than the runtimes' own differences), its ``meta``, and adds
``meta.recipe``: the training settings and history from ``last.pt`` beside it, and the
SHA-256 of the list of training images, so a shipped model says what it was made from.
"""

from __future__ import annotations

import argparse
import hashlib
import io
from pathlib import Path
from typing import Any

import torch

from imsearch.errors import CheckpointError
from imsearch.features.network import FINETUNED_FORMAT
from imsearch.fsutil import write_atomic


def export_model(
    checkpoint: Path, out: Path, listing: Path | None = None, name: str | None = None
) -> dict[str, Any]:
    """Write ``checkpoint``'s network to ``out`` as the model to ship; returns its meta."""
    raw = torch.load(checkpoint, map_location="cpu", weights_only=True)
    meta = dict(raw.get("meta", {}))
    if meta.get("format") != FINETUNED_FORMAT:
        raise CheckpointError(f"{checkpoint} is not a checkpoint written by imsearch train")
    state = {
        k: v.half() if v.is_floating_point() else v
        for k, v in raw["state_dict"].items()
        if k.startswith(("features.", "pool.", "whiten."))
    }
    recipe: dict[str, Any] = {"from": checkpoint.name}
    last = checkpoint.parent / "last.pt"
    if last.is_file():
        trained = torch.load(last, map_location="cpu", weights_only=True).get("train", {})
        recipe |= {"config": trained.get("config"), "history": trained.get("history")}
    if listing is not None:
        recipe["training_images_sha256"] = hashlib.sha256(listing.read_bytes()).hexdigest()
        recipe["training_images"] = listing.name
    meta |= {"model": name or out.stem, "recipe": recipe}
    buffer = io.BytesIO()
    torch.save({"state_dict": state, "meta": meta}, buffer)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, buffer.getvalue())
    return meta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--list", dest="listing", type=Path)
    parser.add_argument("--name")
    args = parser.parse_args()
    meta = export_model(args.checkpoint, args.out, args.listing, args.name)
    size = args.out.stat().st_size / 1e6
    print(f"{args.out}: {meta['model']}, {size:.1f} MB, epoch {meta.get('epoch')}")


if __name__ == "__main__":
    main()
