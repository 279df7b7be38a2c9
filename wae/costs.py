"""Reconstruction costs c(x, G(z)), per image, summed over pixels, as pure functions.

x, x_hat and logits have shape (n, c, h, w); every cost returns (n,) in float32.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def squared_l2(x: Tensor, x_hat: Tensor) -> Tensor:
    """||x - x_hat||^2, the paper's cost."""
    return (x.float() - x_hat.float()).pow(2).flatten(1).sum(1)


def l1(x: Tensor, x_hat: Tensor) -> Tensor:
    """||x - x_hat||_1."""
    return (x.float() - x_hat.float()).abs().flatten(1).sum(1)


def bernoulli_nll(x: Tensor, logits: Tensor) -> Tensor:
    """-log p(x | logits) of independent Bernoulli pixels (x in [0, 1]): the VAE's cost."""
    return F.binary_cross_entropy_with_logits(logits.float(), x.float(), reduction="none").flatten(1).sum(1)


def reconstruction_cost(kind: str, x: Tensor, x_hat: Tensor, logits: Tensor) -> Tensor:
    """The cost named ``kind`` ("l2sq", "l1" or "bce"); bce reads the decoder's logits."""
    if kind == "l2sq":
        return squared_l2(x, x_hat)
    if kind == "l1":
        return l1(x, x_hat)
    if kind == "bce":
        return bernoulli_nll(x, logits)
    raise ValueError(f"unknown cost '{kind}'")
