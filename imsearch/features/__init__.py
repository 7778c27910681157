"""Feature extraction: backbones, pooling, whitening and the retrieval network."""

from imsearch.features.extractor import MULTI_SCALES, Extractor, ModelConfig, resolve_device
from imsearch.features.whitening import PCAWhitening, learn_pca_whitening

__all__ = [
    "MULTI_SCALES",
    "Extractor",
    "ModelConfig",
    "PCAWhitening",
    "learn_pca_whitening",
    "resolve_device",
]
