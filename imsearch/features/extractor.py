"""Global descriptors for images: model configuration, model id and batched extraction."""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from imsearch.errors import ConfigError
from imsearch.features.backbones import build_backbone
from imsearch.features.config import MULTI_SCALES, ModelConfig, Pooling, backbone_weights
from imsearch.features.network import RetrievalNet
from imsearch.features.runtime import TrunkFn, build_trunk, default_threads, resolve_runtime
from imsearch.images import resize_max_side

log = logging.getLogger(__name__)

__all__ = ["MULTI_SCALES", "Extractor", "ModelConfig", "Pooling", "make_model_id", "resolve_device"]


def resolve_device(device: str) -> torch.device:
    """``auto`` picks CUDA when a GPU is visible, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available")
    return torch.device(device)


class Extractor:
    """Turns decoded RGB images into L2-normalised float32 descriptors.

    Multi-scale: each image is resized so its longer side is ``max_side * s`` for every scale
    ``s``; the per-scale descriptors are summed and re-normalised. Images that share a resized
    shape are batched together; the rest go one by one (padding would pollute the pooling).
    """

    def __init__(
        self,
        config: ModelConfig,
        device: str = "auto",
        batch_size: int = 8,
        runtime: str = "torch",
        threads: int | None = None,
    ) -> None:
        self.config = config
        self.device = resolve_device(device)
        self.batch_size = max(1, batch_size)
        backbone = build_backbone(config.backbone, backbone_weights(config), config.cut)
        self.net = RetrievalNet(backbone, config.pooling, config.gem_p, config.regions)
        self.net.to(self.device).eval()
        self.model_id = make_model_id(config, backbone.weights_sha256, self.net.gem_p)
        self.runtime = resolve_runtime(runtime, self.device)
        if threads is not None and self.runtime == "torch":
            torch.set_num_threads(threads)
        self._trunk = self._build_trunk(threads or default_threads())
        log.info("extractor %s on %s (%s)", self.model_id, self.device, self.runtime)

    def _build_trunk(self, threads: int) -> TrunkFn:
        example = torch.zeros(1, 3, 224, 224, device=self.device)
        try:
            return build_trunk(
                self.net.normalize_input, self.net.features, self.runtime, threads, example
            )
        except Exception as exc:  # an export or a compiler this CPU refuses: still serve
            if self.runtime == "torch":
                raise
            log.warning("runtime %s failed to start (%s); using eager PyTorch", self.runtime, exc)
            self.runtime = "torch"
            return build_trunk(
                self.net.normalize_input, self.net.features, "torch", threads, example
            )

    @property
    def dim(self) -> int:
        return int(self.net.output_dim)

    @property
    def decode_side(self) -> int:
        """Largest side any scale needs: the draft-decoding hint for JPEGs."""
        return math.ceil(self.config.max_side * max(self.config.scales))

    def describe(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Descriptors ``(len(images), dim)`` as float32, rows of unit length."""
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        total = torch.zeros(len(images), self.net.output_dim, device=self.device)
        for scale in self.config.scales:
            side = max(16, round(self.config.max_side * scale))
            total += self._describe_at(images, side)
        return torch.nn.functional.normalize(total, dim=-1).cpu().numpy().astype(np.float32)

    @torch.inference_mode()
    def feature_maps(self, image: Image.Image) -> torch.Tensor:
        """The trunk's output ``(1, C, h, w)`` for one image, used as it is (no resizing)."""
        return self._trunk(self._to_batch([np.asarray(image)]))

    def _to_batch(self, arrays: Sequence[np.ndarray]) -> torch.Tensor:
        batch = torch.from_numpy(np.stack(arrays)).to(self.device)
        return batch.permute(0, 3, 1, 2).float().div_(255.0)

    @torch.inference_mode()
    def _describe_at(self, images: Sequence[Image.Image], side: int) -> torch.Tensor:
        out = torch.empty(len(images), self.net.output_dim, device=self.device)
        groups: dict[tuple[int, int], list[tuple[int, np.ndarray]]] = defaultdict(list)
        for i, img in enumerate(images):
            arr = np.asarray(resize_max_side(img, side), dtype=np.uint8)
            groups[arr.shape[:2]].append((i, arr))
        for members in groups.values():
            for start in range(0, len(members), self.batch_size):
                chunk = members[start : start + self.batch_size]
                maps = self._trunk(self._to_batch([a for _, a in chunk])).to(self.device)
                # .float(): under autocast (AMP) the head computes in half precision.
                out[[i for i, _ in chunk]] = self.net.head(maps).float()
        return out


def make_model_id(config: ModelConfig, weights_sha256: str, gem_p: float | None) -> str:
    """A readable id that changes whenever the descriptors would.

    Example: ``efficientnet_lite2.blocks@57934424ab12/gem3.00/1024x1,0.707,1.41``; a regional
    variant adds ``/r3``. A checkpoint's own whitening layer is covered by its weights hash.
    """
    pooling = f"gem{gem_p:.2f}" if gem_p is not None else config.pooling
    regions = f"/r{config.regions}" if config.regions else ""
    scales = "x" + ",".join(f"{s:.3g}" for s in config.scales)
    cut = "" if config.backbone.startswith("resnet") else f".{config.cut}"
    return (
        f"{config.backbone}{cut}@{weights_sha256[:12]}/{pooling}{regions}/{config.max_side}{scales}"
    )
