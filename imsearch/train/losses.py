"""Metric-learning losses on L2-normalised descriptors.

* **Contrastive** (Radenović et al.): pull a positive to distance 0, push each negative beyond
  ``margin``; ``0.5·d²`` and ``0.5·max(0, margin − d)²``.
* **Triplet**: ``max(0, d(a, p)² − d(a, n)² + margin)`` for each negative of the tuple.
* **Second-order similarity** (SOS, Ng et al., SOLAR, ECCV 2020): a query and its positive
  should see the rest of the batch alike — for each i, the distances from ``a_i`` to the other
  anchors should equal those from ``p_i`` to the other positives. It is added to either loss
  with weight ``λ`` (:func:`tuple_loss`).

Shapes: ``anchor`` and ``positive`` are ``(B, D)``, ``negatives`` ``(B, N, D)``. Each loss is a
sum over a tuple's terms, averaged over the batch.
"""

from __future__ import annotations

from typing import Literal

import torch

from imsearch.errors import ConfigError

FirstOrder = Literal["contrastive", "triplet"]


def contrastive_loss(
    anchor: torch.Tensor, positive: torch.Tensor, negatives: torch.Tensor, margin: float = 0.7
) -> torch.Tensor:
    d_pos = (anchor - positive).norm(dim=-1)
    d_neg = (anchor[:, None, :] - negatives).norm(dim=-1)
    per_tuple = 0.5 * d_pos**2 + 0.5 * (margin - d_neg).clamp(min=0).pow(2).sum(dim=1)
    return per_tuple.mean()


def triplet_loss(
    anchor: torch.Tensor, positive: torch.Tensor, negatives: torch.Tensor, margin: float = 0.1
) -> torch.Tensor:
    d_pos = (anchor - positive).pow(2).sum(dim=-1, keepdim=True)
    d_neg = (anchor[:, None, :] - negatives).pow(2).sum(dim=-1)
    return (d_pos - d_neg + margin).clamp(min=0).sum(dim=1).mean()


def sos_loss(
    anchor: torch.Tensor, positive: torch.Tensor, neighbours: int | None = 8
) -> torch.Tensor:
    """Second-order similarity over the batch; ``neighbours`` = the k nearest other anchors
    each term looks at (None: all of them)."""
    if len(anchor) < 2:
        return anchor.new_zeros(())
    d_anchor = torch.cdist(anchor, anchor)
    d_positive = torch.cdist(positive, positive)
    others = ~torch.eye(len(anchor), dtype=torch.bool, device=anchor.device)
    if neighbours is not None and neighbours < len(anchor) - 1:
        far = d_anchor.detach().masked_fill(~others, float("inf"))
        nearest = far.topk(neighbours, dim=1, largest=False).indices
        others = torch.zeros_like(others).scatter_(1, nearest, True)
    squared = ((d_anchor - d_positive) ** 2 * others).sum(dim=1)
    return (squared + 1e-12).sqrt().mean()


def tuple_loss(
    anchor: torch.Tensor,
    positive: torch.Tensor,
    negatives: torch.Tensor,
    kind: FirstOrder = "contrastive",
    margin: float | None = None,
    sos_weight: float = 0.0,
) -> torch.Tensor:
    """The first-order loss ``kind`` plus ``sos_weight`` × the second-order loss."""
    if kind == "contrastive":
        loss = contrastive_loss(anchor, positive, negatives, 0.7 if margin is None else margin)
    elif kind == "triplet":
        loss = triplet_loss(anchor, positive, negatives, 0.1 if margin is None else margin)
    else:
        raise ConfigError(f"unknown loss {kind!r}: use contrastive or triplet")
    if sos_weight:
        loss = loss + sos_weight * sos_loss(anchor, positive)
    return loss
