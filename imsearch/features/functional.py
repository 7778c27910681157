"""Pure tensor functions for global descriptors: pooling and normalisation.

Inputs are feature maps of shape ``(B, C, H, W)``; outputs are ``(B, C)``. The ``nn.Module``
wrappers in :mod:`imsearch.features.layers` only hold parameters and call these.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F


def mac(x: torch.Tensor) -> torch.Tensor:
    """Maximum activation of convolutions: the spatial max per channel."""
    return torch.amax(x, dim=(-2, -1))


def spoc(x: torch.Tensor) -> torch.Tensor:
    """Sum-pooled convolutional features (the mean, which is the same after normalisation)."""
    return torch.mean(x, dim=(-2, -1))


def gem(x: torch.Tensor, p: torch.Tensor | float = 3.0, eps: float = 1e-6) -> torch.Tensor:
    """Generalised mean pooling: ``(mean(x^p))^(1/p)``; p=1 is SPoC, p→∞ approaches MAC.

    Activations are clamped at ``eps`` first: GeM is defined on non-negative inputs and a
    fractional power of a negative number is NaN.
    """
    return torch.mean(x.clamp(min=eps).pow(p), dim=(-2, -1)).pow(1.0 / p)


def l2n(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """L2-normalise the last dimension."""
    return F.normalize(x, p=2.0, dim=-1, eps=eps)


def region_grid(height: int, width: int, levels: int) -> list[tuple[int, int, int, int]]:
    """Square regions ``(y0, y1, x0, x1)`` of the R-MAC grid (Tolias et al.), plus the whole map.

    At level ``l`` the side is ``2·min(H, W)/(l + 1)``; ``l`` regions fit along the short side
    and one more along the long side, spread evenly (they overlap by about 40%).
    """
    regions = [(0, height, 0, width)]
    for level in range(1, levels + 1):
        side = max(1, round(2 * min(height, width) / (level + 1)))
        n_y = level + (1 if height > width else 0)
        n_x = level + (1 if width > height else 0)
        for y in np.unique(np.linspace(0, height - side, n_y).round().astype(int)):
            for x in np.unique(np.linspace(0, width - side, n_x).round().astype(int)):
                regions.append((int(y), int(y) + side, int(x), int(x) + side))
    return regions


def regional(
    x: torch.Tensor, pool: Callable[[torch.Tensor], torch.Tensor], levels: int = 3
) -> torch.Tensor:
    """Sum of L2-normalised pooled regions: R-MAC when ``pool`` is MAC, R-GeM with GeM."""
    total = torch.zeros(x.shape[0], x.shape[1], device=x.device, dtype=x.dtype)
    for y0, y1, x0, x1 in region_grid(x.shape[-2], x.shape[-1], levels):
        total += l2n(pool(x[..., y0:y1, x0:x1]))
    return total
