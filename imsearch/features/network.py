"""The retrieval network: trunk → pooling → L2N → (whitening → L2N)."""

from __future__ import annotations

import torch
from torch import nn

from imsearch.errors import ConfigError
from imsearch.features import functional as LF
from imsearch.features.backbones import Backbone
from imsearch.features.layers import GeM, make_pooling


class RetrievalNet(nn.Module):
    """Maps normalised image batches ``(B, 3, H, W)`` to unit-length descriptors ``(B, D)``.

    ``whiten`` is the learned linear layer of a retrieval checkpoint (trained end to end);
    post-hoc PCA whitening learned from a collection is applied outside, after multi-scale
    aggregation (see :class:`~imsearch.features.extractor.Extractor`).
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self, backbone: Backbone, pooling: str = "gem", gem_p: float = 3.0, regions: int = 0
    ) -> None:
        super().__init__()
        _check_trained_head(backbone, pooling, regions)
        self.backbone_name = backbone.name
        self.features = backbone.trunk
        checkpoint_p = backbone.extras.get("gem_p")
        if pooling == "gem" and isinstance(checkpoint_p, float):
            gem_p = checkpoint_p
        self.pool = make_pooling(pooling, gem_p)
        self.regions = regions
        self.whiten: nn.Linear | None = None
        whiten = backbone.extras.get("whiten")
        if isinstance(whiten, tuple):
            weight, bias = whiten
            self.whiten = nn.Linear(weight.shape[1], weight.shape[0], bias=True)
            with torch.no_grad():
                self.whiten.weight.copy_(weight)
                self.whiten.bias.copy_(bias)
        self.register_buffer("mean", torch.tensor(backbone.mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(backbone.std).view(1, 3, 1, 1))
        self.output_dim = self.whiten.out_features if self.whiten else backbone.channels

    @property
    def gem_p(self) -> float | None:
        return float(self.pool.p.detach()[0]) if isinstance(self.pool, GeM) else None

    def normalize_input(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` holds RGB in [0, 1]; returns what the backbone was trained on."""
        return (x - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(self.normalize_input(x)))

    def head(self, maps: torch.Tensor) -> torch.Tensor:
        """Pooling, L2N and the checkpoint's whitening: feature maps to descriptors."""
        if self.regions:
            out = LF.l2n(LF.regional(maps, self.pool, self.regions))
        else:
            out = LF.l2n(self.pool(maps))
        if self.whiten is not None:
            out = LF.l2n(self.whiten(out))
        return out


#: ``meta.format`` of the checkpoints ``imsearch train`` writes.
FINETUNED_FORMAT = "imsearch-finetuned-v1"


def _check_trained_head(backbone: Backbone, pooling: str, regions: int) -> None:
    """A fine-tuned whitening layer only makes sense after the pooling it was trained behind."""
    meta = backbone.extras.get("meta")
    if not isinstance(meta, dict) or meta.get("format") != FINETUNED_FORMAT:
        return
    trained = (meta.get("pooling"), meta.get("regions"))
    if trained != (pooling, regions):
        raise ConfigError(
            f"this checkpoint was trained with pooling={trained[0]}, regions={trained[1]} (not "
            f"{pooling}, {regions}): set IMSEARCH_POOLING={trained[0]} "
            f"IMSEARCH_REGIONS={trained[1]} (or, for the ImageNet network, "
            "IMSEARCH_WEIGHTS=imagenet)"
        )
