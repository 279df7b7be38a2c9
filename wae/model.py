"""The auto-encoder: encode, decode, sample, reconstruct, interpolate. No loss inside."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .config import ModelConfig
from .nets import ARCHITECTURES, Decoder, Encoder, MLPDecoder, MLPEncoder
from .priors import sample_prior


class AutoEncoder(nn.Module):
    """Encoder Q(Z|X), decoder G(Z) and the prior P_Z they are trained against.

    Images are (n, channels, size, size) in the data range ([0, 1] for a sigmoid output,
    [-1, 1] for tanh); codes are (n, latent_dim). With ``cfg.arch`` "mlp" the data are rows of a
    table, (n, channels) standardised columns (``size`` is 1), and the output is the identity."""

    def __init__(
        self,
        cfg: ModelConfig,
        channels: int,
        size: int,
        prior: str = "gaussian",
        prior_var: float = 1.0,
    ):
        super().__init__()
        self.channels, self.size, self.latent_dim = channels, size, cfg.latent_dim
        self.prior, self.prior_var, self.output = prior, prior_var, cfg.output
        gaussian, norm = cfg.encoder == "gaussian", cfg.batch_norm
        self.encoder: Encoder | MLPEncoder
        self.decoder: Decoder | MLPDecoder
        if cfg.arch == "mlp":
            self.encoder = MLPEncoder(channels, cfg.latent_dim, cfg.mlp_width, cfg.mlp_depth, gaussian=gaussian)
            self.decoder = MLPDecoder(cfg.latent_dim, channels, cfg.mlp_width, cfg.mlp_depth)
        else:
            arch = ARCHITECTURES[cfg.arch]
            self.encoder = Encoder(arch, channels, size, cfg.latent_dim, gaussian=gaussian, batch_norm=norm)
            self.decoder = Decoder(arch, channels, size, cfg.latent_dim, batch_norm=norm)

    @property
    def device(self) -> torch.device:
        """Where the parameters are; ``encode`` and ``decode`` move their inputs there."""
        return next(self.parameters()).device

    def forward(
        self, x: Tensor, eps: Tensor | None = None, logvar_clip: float = 0.0
    ) -> tuple[Tensor, Tensor | None, Tensor | None, Tensor]:
        """The training pass, one call so that DistributedDataParallel sees every parameter:
        (z~, mean, log_var, decoder logits) for images x. A Gaussian encoder's code is
        mean + eps * exp(log_var / 2) with the given standard-normal ``eps`` (n, d_z) and its
        log-variances clipped to [-logvar_clip, logvar_clip] when that is positive; a
        deterministic encoder returns None for mean and log_var."""
        out = self.encoder(x)
        if isinstance(out, tuple):
            mean, log_var = out
            if logvar_clip > 0:
                log_var = log_var.clamp(-logvar_clip, logvar_clip)
            if eps is None:
                raise ValueError("a Gaussian encoder needs eps for the reparameterisation")
            z = mean + eps * (0.5 * log_var.float()).exp()
            return z, mean, log_var, self.decoder(z)
        return out, None, None, self.decoder(out)

    def activate(self, logits: Tensor) -> Tensor:
        """Decoder pre-activations -> images in the data range (rows of a table: unchanged)."""
        if self.output == "identity":
            return logits
        return torch.sigmoid(logits) if self.output == "sigmoid" else torch.tanh(logits)

    def encode(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Codes (n, d_z) for images x. A Gaussian encoder returns its mean, or a sample from
        Q(Z|x) when a ``generator`` is given."""
        out = self.encoder(x.to(self.device))
        if isinstance(out, tuple):
            mean, log_var = out
            if generator is None:
                return mean
            eps = torch.randn(mean.shape, generator=generator, dtype=mean.dtype).to(mean.device)
            return mean + eps * (0.5 * log_var).exp()
        return out

    def decode(self, z: Tensor) -> Tensor:
        """Images (n, c, h, w) for codes z (n, d_z), on the model's device."""
        return self.activate(self.decoder(z.to(self.device)))

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
        t = torch.linspace(0.0, 1.0, steps, device=z0.device).view(1, steps, 1)
        z = (1 - t) * z0.unsqueeze(1) + t * z1.unsqueeze(1)
        images = self.decode(z.reshape(-1, self.latent_dim))
        return images.view(z0.shape[0], steps, *images.shape[1:])
