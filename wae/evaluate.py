"""Metrics of a trained auto-encoder, as flat dicts of numbers."""

from __future__ import annotations

import torch
from torch import Tensor

from .data import to_model_range
from .divergences import mmd_imq
from .model import AutoEncoder


@torch.no_grad()
def encode_all(model: AutoEncoder, images: Tensor, value_range: str, chunk: int = 500) -> Tensor:
    """Codes (n, d_z) of stored images (uint8 or [0, 1] floats), in eval mode, by chunks."""
    was_training = model.training
    model.eval()
    try:
        return torch.cat(
            [model.encode(to_model_range(images[i : i + chunk], value_range)) for i in range(0, len(images), chunk)]
        )
    finally:
        model.train(was_training)


@torch.no_grad()
def evaluate(model: AutoEncoder, test_images: Tensor, value_range: str, seed: int = 0) -> dict[str, float]:
    """Test metrics:
    - ``test_recon_mse``: mean squared error per pixel of G(E(x)), pixels in [0, 1];
    - ``test_mmd``: unbiased multi-scale IMQ MMD^2 between test codes and as many prior samples;
    - ``code_mean_norm``, ``code_var_mean``: norm of the mean of Q_Z and mean per-dimension
      variance (prior: 0 and sigma_z^2)."""
    was_training = model.training
    model.eval()
    try:
        codes = encode_all(model, test_images, value_range)
        sq_err = 0.0
        for i in range(0, len(test_images), 500):
            x = to_model_range(test_images[i : i + 500], value_range)
            x_hat = model.decode(codes[i : i + 500])
            scale = 0.5 if value_range == "pm1" else 1.0  # errors measured on the [0, 1] scale
            sq_err += ((x - x_hat) * scale).pow(2).sum().item()
        generator = torch.Generator().manual_seed(seed + 17)
        prior = model.prior_sample(len(codes), generator)
        return {
            "test_recon_mse": sq_err / test_images.numel(),
            "test_mmd": mmd_imq(codes, prior, model.prior_var).item(),
            "code_mean_norm": codes.mean(0).norm().item(),
            "code_var_mean": codes.var(0).mean().item(),
        }
    finally:
        model.train(was_training)
