"""Feature extraction: backbones, pooling, whitening and the retrieval network.

``ModelConfig`` and the whitening need no torch; ``Extractor`` (and so torch) is imported on
first use, so processes that only search or re-rank never load it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from imsearch.features.config import MULTI_SCALES, ModelConfig
from imsearch.features.whitening import PCAWhitening, learn_lw_whitening, learn_pca_whitening

if TYPE_CHECKING:
    from imsearch.features.extractor import Extractor, resolve_device

__all__ = [
    "MULTI_SCALES",
    "Extractor",
    "ModelConfig",
    "PCAWhitening",
    "learn_lw_whitening",
    "learn_pca_whitening",
    "resolve_device",
]


def __getattr__(name: str) -> Any:
    if name in ("Extractor", "resolve_device"):
        from imsearch.features import extractor

        return getattr(extractor, name)
    raise AttributeError(name)
