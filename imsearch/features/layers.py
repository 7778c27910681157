"""``nn.Module`` wrappers over :mod:`imsearch.features.functional`."""

from __future__ import annotations

import torch
from torch import nn

from imsearch.features import functional as LF


class MAC(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return LF.mac(x)

    def extra_repr(self) -> str:
        return ""


class SPoC(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return LF.spoc(x)


class GeM(nn.Module):
    """GeM pooling with a learnable exponent ``p`` (one scalar shared by all channels)."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6, learnable: bool = True) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.ones(1) * p, requires_grad=learnable)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return LF.gem(x, p=self.p, eps=self.eps)

    def extra_repr(self) -> str:
        return f"p={float(self.p.detach()[0]):.4f}, eps={self.eps}"


class L2N(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return LF.l2n(x)


POOLINGS: dict[str, type[nn.Module]] = {"gem": GeM, "mac": MAC, "spoc": SPoC}


def make_pooling(name: str, p: float = 3.0) -> nn.Module:
    """Build the pooling layer named ``gem``, ``mac`` or ``spoc``."""
    if name == "gem":
        return GeM(p=p)
    return POOLINGS[name]()
