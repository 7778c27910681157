"""Loading trunks from user checkpoints: ResNets, and EfficientNet-Lites fine-tuned here.

Two layouts are understood:

* a torchvision ResNet ``state_dict`` (``conv1.weight`` … ``layer4.*``, optional ``fc.*``),
  bare or under a ``state_dict`` key;
* a cirtorch / SOLAR retrieval checkpoint: ``{"state_dict": {"features.N.*", "pool.p",
  "whiten.weight", "whiten.bias"}, "meta": {...}}``, where ``features`` is the torchvision
  ResNet without its average pool and classifier (children 0..7), as in Radenović et al.

``imsearch train`` writes the second layout for EfficientNet-Lite (``features`` = the trunk of
:func:`~imsearch.features.trunks.efficientnet_lite`), with ``meta.architecture`` and
``meta.cut`` naming it and the training state under a separate ``train`` key.

Loading is strict: a key that does not fit is an error that names it, never a silent skip.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import torch
import torchvision
from torch import nn

from imsearch.errors import CheckpointError
from imsearch.features.trunks import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Backbone,
    efficientnet_lite,
    file_sha256,
)

_RESNET_CHANNELS = {"resnet50": 2048, "resnet101": 2048, "resnet152": 2048}


def load_resnet_checkpoint(name: str, path: Path) -> Backbone:
    """Build ResNet ``name`` and load ``path`` into it (either layout, strictly)."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from exc
    state, meta = _split_checkpoint(raw, path)
    arch = meta.get("architecture")
    if arch and arch != name:
        raise CheckpointError(f"checkpoint {path} is for {arch}, not {name}")
    net = getattr(torchvision.models, name)(weights=None)
    trunk = nn.Sequential(*list(net.children())[:-2])
    extras: dict[str, object] = {"meta": meta}
    if any(k.startswith("features.") for k in state):
        _load_cirtorch(trunk, state, extras, path)
    else:
        _load_torchvision(net, state, path)
    mean = tuple(meta.get("mean", IMAGENET_MEAN))
    std = tuple(meta.get("std", IMAGENET_STD))
    return Backbone(
        name=name,
        trunk=trunk,
        channels=_RESNET_CHANNELS[name],
        mean=(float(mean[0]), float(mean[1]), float(mean[2])),
        std=(float(std[0]), float(std[1]), float(std[2])),
        weights_sha256=file_sha256(str(path)),
        cut="layer4",
        extras=extras,
    )


def load_efficientnet_checkpoint(name: str, path: Path, cut: str) -> Backbone:
    """An EfficientNet-Lite trunk (+ GeM p, whitening) from an ``imsearch train`` checkpoint."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a file it cannot read
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from exc
    state, meta = _split_checkpoint(raw, path)
    if (meta.get("architecture"), meta.get("cut")) != (name, cut):
        raise CheckpointError(
            f"checkpoint {path} holds {meta.get('architecture')} cut at {meta.get('cut')}, "
            f"not {name} cut at {cut}: set the backbone and cut it was trained with"
        )
    base = efficientnet_lite(int(name[-1]), cut)
    extras: dict[str, object] = {"meta": meta}
    _load_cirtorch(cast(nn.Sequential, base.trunk), state, extras, path)
    base.weights_sha256 = file_sha256(str(path))
    base.extras = extras
    return base


def _split_checkpoint(raw: Any, path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    if not isinstance(raw, dict):
        raise CheckpointError(f"checkpoint {path} is not a dict of tensors")
    state = raw.get("state_dict", raw)
    meta = raw.get("meta", {}) if "state_dict" in raw else {}
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"checkpoint {path} has no state_dict of tensors")
    # Checkpoints saved from DataParallel prefix every key with "module.".
    state = {k.removeprefix("module."): v for k, v in state.items()}
    return state, dict(meta) if isinstance(meta, dict) else {}


def _load_cirtorch(
    trunk: nn.Sequential, state: dict[str, torch.Tensor], extras: dict[str, object], path: Path
) -> None:
    features = {
        k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")
    }
    rest = {k: v for k, v in state.items() if not k.startswith("features.")}
    _strict_load(trunk, features, path)
    if "pool.p" in rest:
        extras["gem_p"] = float(rest.pop("pool.p").flatten()[0])
    if "whiten.weight" in rest:
        weight = rest.pop("whiten.weight")
        bias = rest.pop("whiten.bias", torch.zeros(weight.shape[0]))
        extras["whiten"] = (weight, bias)
    if rest:
        raise CheckpointError(
            f"checkpoint {path} has keys this loader does not understand: {sorted(rest)[:8]}"
        )


def _load_torchvision(net: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    state = dict(state)
    # A classifier head of another size (or none) is irrelevant to retrieval.
    fc = cast(nn.Linear, net.get_submodule("fc"))
    if "fc.weight" not in state or state["fc.weight"].shape != fc.weight.shape:
        state.pop("fc.weight", None)
        state.pop("fc.bias", None)
        net.fc = nn.Identity()
    _strict_load(net, state, path)


def _strict_load(module: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint {path} does not fit the network: {exc}") from exc
