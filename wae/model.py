"""The auto-encoder: encode, decode, sample, reconstruct, interpolate. No loss inside."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .config import ModelConfig
from .nets import ARCHITECTURES, Decoder, Encoder
from .priors import sample_prior


class AutoEncoder(nn.Module):
    """Encoder Q(Z|X), decoder G(Z) and the prior P_Z they are trained against.

    Images are (n, channels, size, size) in the data range ([0, 1] for a sigmoid output,
    [-1, 1] for tanh); codes are (n, latent_dim)."""

    def __init__(
        self,
        cfg: ModelConfig,
        channels: int,
        size: int,
        prior: str = "gaussian",
        prior_var: float = 1.0,
    ):
        super().__init__()
        arch = ARCHITECTURES[cfg.arch]
        self.channels, self.size, self.latent_dim = channels, size, cfg.latent_dim
        self.prior, self.prior_var, self.output = prior, prior_var, cfg.output
        self.encoder = Encoder(arch, channels, size, cfg.latent_dim, gaussian=cfg.encoder == "gaussian")
        self.decoder = Decoder(arch, channels, size, cfg.latent_dim)

    def activate(self, logits: Tensor) -> Tensor:
        """Decoder pre-activations -> images in the data range."""
        return torch.sigmoid(logits) if self.output == "sigmoid" else torch.tanh(logits)

    def encode(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Codes (n, d_z) for images x. A Gaussian encoder returns its mean, or a sample from
        Q(Z|x) when a ``generator`` is given."""
        out = self.encoder(x)
        if isinstance(out, tuple):
            mean, log_var = out
            if generator is None:
                return mean
            eps = torch.randn(mean.shape, generator=generator, dtype=mean.dtype)
            return mean + eps * (0.5 * log_var).exp()
        return out

    def decode(self, z: Tensor) -> Tensor:
        """Images (n, c, h, w) for codes z (n, d_z)."""
        return self.activate(self.decoder(z))

    def prior_sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n codes from the prior P_Z, (n, d_z)."""
        return sample_prior(self.prior, n, self.latent_dim, self.prior_var, generator)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n images G(z), z ~ P_Z (call ``eval()`` first for batch-norm running statistics)."""
        return self.decode(self.prior_sample(n, generator))

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        """G(E(x)) for images x."""
        return self.decode(self.encode(x))

    @torch.no_grad()
    def interpolate(self, x_from: Tensor, x_to: Tensor, steps: int = 10) -> Tensor:
        """Decode straight lines in code space between E(x_from[i]) and E(x_to[i]).

        Returns (n, steps, c, h, w), the first and last columns decoding the end codes."""
        z0, z1 = self.encode(x_from), self.encode(x_to)
        t = torch.linspace(0.0, 1.0, steps).view(1, steps, 1)
        z = (1 - t) * z0.unsqueeze(1) + t * z1.unsqueeze(1)
        images = self.decode(z.reshape(-1, self.latent_dim))
        return images.view(z0.shape[0], steps, *images.shape[1:])
