"""Latent priors P_Z: sampling and log-density, as pure functions.

Every prior is scaled so that each coordinate has variance ``var`` (sigma_z^2), which keeps the
IMQ kernel constant C = 2 * d_z * sigma_z^2 meaningful for all of them:
- ``gaussian``: N(0, var * I);
- ``uniform``: uniform on the cube [-a, a]^d with a = sqrt(3 var);
- ``sphere``: uniform on the sphere of radius sqrt(d * var) (so E||z||^2 = d * var).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def sample_prior(kind: str, n: int, dim: int, var: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
    """Draw ``n`` codes of dimension ``dim`` from the prior; returns (n, dim) float32."""
    if kind == "gaussian":
        return torch.randn(n, dim, generator=generator) * math.sqrt(var)
    if kind == "uniform":
        half_width = math.sqrt(3.0 * var)
        return (torch.rand(n, dim, generator=generator) * 2.0 - 1.0) * half_width
    if kind == "sphere":
        z = torch.randn(n, dim, generator=generator)
        return z / z.norm(dim=1, keepdim=True).clamp_min(1e-12) * math.sqrt(dim * var)
    raise ValueError(f"unknown prior '{kind}'")


def gaussian_log_density(z: Tensor, var: float = 1.0) -> Tensor:
    """log N(z; 0, var * I) for z of shape (n, d); returns (n,)."""
    d = z.shape[1]
    return -0.5 * (z.pow(2).sum(1) / var + d * math.log(2.0 * math.pi * var))
