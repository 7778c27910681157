"""The metric-learning losses: values on hand-made tuples and gradients that point the right way."""

from __future__ import annotations

import math

import pytest
import torch

from imsearch.errors import ConfigError
from imsearch.train.losses import contrastive_loss, sos_loss, triplet_loss, tuple_loss


def unit(*rows: list[float]) -> torch.Tensor:
    x = torch.tensor(rows, dtype=torch.float64)
    return x / x.norm(dim=-1, keepdim=True)


def test_contrastive_values() -> None:
    a, p = unit([1, 0]), unit([0, 1])  # d(a, p) = √2
    near, far = unit([1, 0.1])[None], unit([-1, 0])[None]  # d ≈ 0.0998 and 2
    assert contrastive_loss(a, a, far).item() == pytest.approx(0.0)
    assert contrastive_loss(a, p, far).item() == pytest.approx(0.5 * 2)
    d = math.dist([1, 0], near[0, 0].tolist())
    assert contrastive_loss(a, a, near).item() == pytest.approx(0.5 * (0.7 - d) ** 2)


def test_triplet_values() -> None:
    a, p = unit([1, 0]), unit([1, 1])  # d² = 2 − √2
    negs = torch.stack([unit([0, 1]), unit([-1, 0])], dim=1)  # d² = 2 and 4
    assert triplet_loss(a, p, negs, margin=0.1).item() == pytest.approx(0.0)
    assert triplet_loss(a, p, negs, margin=1.5).item() == pytest.approx(2 - 2**0.5 - 2 + 1.5)


def test_sos_is_zero_when_the_geometry_is_the_same_and_grows_when_not() -> None:
    torch.manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(16, 8), dim=1)
    rotation, _ = torch.linalg.qr(torch.randn(8, 8))
    assert sos_loss(a, a @ rotation).item() == pytest.approx(0.0, abs=1e-5)
    shuffled = a[torch.randperm(16)]
    assert sos_loss(a, shuffled).item() > 0.1
    assert sos_loss(a[:1], a[:1]).item() == 0.0


def test_a_gradient_step_moves_the_positive_closer_and_the_negative_away() -> None:
    torch.manual_seed(1)
    for kind in ("contrastive", "triplet"):
        a = torch.nn.functional.normalize(torch.randn(4, 8), dim=1)
        p = torch.nn.functional.normalize(torch.randn(4, 8), dim=1).requires_grad_()
        n = torch.nn.functional.normalize(a[:, None, :] + 0.05 * torch.randn(4, 2, 8), dim=-1)
        n.requires_grad_()
        loss = tuple_loss(a, p, n, kind, margin=1.0, sos_weight=0.5)  # type: ignore[arg-type]
        loss.backward()
        with torch.no_grad():
            p2, n2 = p - 0.1 * p.grad, n - 0.1 * n.grad  # type: ignore[operator]
        assert (a - p2).norm(dim=1).mean() < (a - p).norm(dim=1).mean()
        assert (a[:, None] - n2).norm(dim=-1).mean() > (a[:, None] - n).norm(dim=-1).mean()
    with pytest.raises(ConfigError, match="unknown loss"):
        tuple_loss(a, a, n, "arcface")  # type: ignore[arg-type]
