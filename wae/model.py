"""The auto-encoder: encode, decode, sample, reconstruct, interpolate. No loss inside."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .config import ModelConfig, UserError
from .nets import ARCHITECTURES, Decoder, Encoder, MLPDecoder, MLPEncoder
from .priors import sample_prior


def _net(net: nn.Module, inputs: Tensor, labels: Tensor | None) -> Any:
    """``net(inputs)``, or ``net(inputs, labels)`` for a conditional model: an unconditional
    model calls its networks with one argument, as before labels existed."""
    return net(inputs) if labels is None else net(inputs, labels)


def check_labels(labels: Any, n: int, classes: int) -> Tensor | None:
    """``labels`` for ``n`` inputs of a model of ``classes`` classes (0: unconditional), checked:
    integers (a tensor, array or sequence) of shape (n,) with values in [0, classes), as an
    int64 tensor. ValueError (a :class:`~wae.config.UserError`) otherwise: labels missing for a
    conditional model or given to an unconditional one, another shape, values that are not
    integers, or out of range."""
    if labels is None:
        if classes:
            raise UserError(f"this model is conditional on {classes} classes; give labels (n,) in [0, {classes})")
        return None
    if not classes:
        raise UserError("this model is not conditional; it takes no labels")
    if isinstance(labels, Tensor):
        if labels.device.type == "meta":
            raise UserError("labels must hold values (they are on the meta device)")
        y = labels.detach()
        integral = not (y.dtype.is_floating_point or y.dtype.is_complex or y.dtype == torch.bool)
        kind = str(y.dtype)
    else:
        try:
            array = np.asarray(labels)
        except (TypeError, ValueError):  # ragged sequences
            raise UserError(f"labels must be integers (class indices), one per input; got {labels!r:.60}") from None
        integral, kind = array.dtype.kind in "iu", str(array.dtype)
        y = torch.from_numpy(array.astype(np.int64)) if integral else torch.zeros(0)
    if y.numel() == 0 and n == 0:
        return torch.zeros(0, dtype=torch.long, device=y.device)
    if not integral:
        raise UserError(f"labels must be integers (class indices), got dtype {kind}")
    if y.shape != (n,):
        raise UserError(f"labels must have shape ({n},), one per input; got {tuple(y.shape)}")
    y = y.long()
    if n and (int(y.min()) < 0 or int(y.max()) >= classes):
        raise UserError(f"labels must lie in [0, {classes}); got values from {int(y.min())} to {int(y.max())}")
    return y


def _check_tensor(value: Any, name: str, shape: tuple[int, ...]) -> Tensor:
    """``value`` when it is a floating-point tensor (n, *shape); :class:`UserError` otherwise."""
    expected = "(n, " + ", ".join(map(str, shape)) + ")"
    if not isinstance(value, Tensor) or not (value.dtype.is_floating_point):
        raise UserError(
            f"{name} must be a floating-point torch.Tensor {expected}; got {type(value).__name__}"
            + (f" of {value.dtype}" if isinstance(value, Tensor) else "")
        )
    if value.dim() != len(shape) + 1 or tuple(value.shape[1:]) != shape:
        raise UserError(f"{name} must have shape {expected}; got {tuple(value.shape)}")
    return value


class AutoEncoder(nn.Module):
    """Encoder Q(Z|X), decoder G(Z) and the prior P_Z they are trained against.

    Images are (n, channels, size, size) in the data range ([0, 1] for a sigmoid output,
    [-1, 1] for tanh); codes are (n, latent_dim). With ``cfg.arch`` "mlp" the data are rows of a
    table, (n, channels) standardised columns (``size`` is 1), and the output is the identity.
    A conditional model (``classes`` > 0) is Q(Z|X, Y) and G(Z, Y): every method that encodes or
    decodes takes class indices (n,) in [0, classes) as well (ValueError without them, or for
    labels of another shape, dtype or range: :func:`check_labels`), and the prior stays P_Z;
    conditional models of tables are not supported (ValueError)."""

    def __init__(
        self,
        cfg: ModelConfig,
        channels: int,
        size: int,
        prior: str = "gaussian",
        prior_var: float = 1.0,
        classes: int = 0,
    ):
        super().__init__()
        self.channels, self.size, self.latent_dim, self.classes = channels, size, cfg.latent_dim, classes
        self.prior, self.prior_var, self.output, self.arch = prior, prior_var, cfg.output, cfg.arch
        gaussian, norm, labels = cfg.encoder == "gaussian", cfg.batch_norm, (classes, cfg.label_dim)
        self.encoder: Encoder | MLPEncoder
        self.decoder: Decoder | MLPDecoder
        if cfg.arch == "mlp":
            if classes:
                raise ValueError("conditional (labelled) models of tables are not supported")
            self.encoder = MLPEncoder(channels, cfg.latent_dim, cfg.mlp_width, cfg.mlp_depth, gaussian=gaussian)
            self.decoder = MLPDecoder(cfg.latent_dim, channels, cfg.mlp_width, cfg.mlp_depth)
        else:
            arch = ARCHITECTURES[cfg.arch]
            self.encoder = Encoder(arch, channels, size, cfg.latent_dim, gaussian, norm, *labels)
            self.decoder = Decoder(arch, channels, size, cfg.latent_dim, norm, *labels)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one input: (channels, size, size) for images, (channels,) for table rows."""
        return (self.channels,) if self.arch == "mlp" else (self.channels, self.size, self.size)

    @property
    def device(self) -> torch.device:
        """Where the parameters are; ``encode`` and ``decode`` move their inputs there."""
        return next(self.parameters()).device

    def forward(
        self, x: Tensor, eps: Tensor | None = None, logvar_clip: float = 0.0, labels: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None, Tensor | None, Tensor]:
        """The training pass, one call so that DistributedDataParallel sees every parameter:
        (z~, mean, log_var, decoder logits) for images x (and their class ``labels`` (n,) when
        conditional; the decoder gets the same labels). A Gaussian encoder's code is
        mean + eps * exp(log_var / 2) with the given standard-normal ``eps`` (n, d_z) and its
        log-variances clipped to [-logvar_clip, logvar_clip] when that is positive; a
        deterministic encoder returns None for mean and log_var."""
        out = _net(self.encoder, x, labels)
        if isinstance(out, tuple):
            mean, log_var = out
            if logvar_clip > 0:
                log_var = log_var.clamp(-logvar_clip, logvar_clip)
            if eps is None:
                raise ValueError("a Gaussian encoder needs eps for the reparameterisation")
            z = mean + eps * (0.5 * log_var.float()).exp()
            return z, mean, log_var, _net(self.decoder, z, labels)
        return out, None, None, _net(self.decoder, out, labels)

    def activate(self, logits: Tensor) -> Tensor:
        """Decoder pre-activations -> images in the data range (rows of a table: unchanged)."""
        if self.output == "identity":
            return logits
        return torch.sigmoid(logits) if self.output == "sigmoid" else torch.tanh(logits)

    def encode(self, x: Tensor, generator: torch.Generator | None = None, labels: Tensor | None = None) -> Tensor:
        """Codes (n, d_z) for images x (of classes ``labels`` (n,) when conditional). A Gaussian
        encoder returns its mean, or a sample from Q(Z|x) when a ``generator`` is given."""
        x = _check_tensor(x, "images x", self.input_shape)
        out = _net(self.encoder, x.to(self.device), check_labels(labels, len(x), self.classes))
        if isinstance(out, tuple):
            mean, log_var = out
            if generator is None:
                return mean
            eps = torch.randn(mean.shape, generator=generator, dtype=mean.dtype).to(mean.device)
            return mean + eps * (0.5 * log_var).exp()
        return out

    def decode(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        """Images (n, c, h, w) for codes z (n, d_z) (and classes ``labels`` (n,) when
        conditional), on the model's device."""
        z = _check_tensor(z, "codes z", (self.latent_dim,))
        return self.activate(_net(self.decoder, z.to(self.device), check_labels(labels, len(z), self.classes)))

    def prior_sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n codes from the prior P_Z, (n, d_z)."""
        return sample_prior(self.prior, n, self.latent_dim, self.prior_var, generator)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, labels: Tensor | None = None) -> Tensor:
        """n images G(z), z ~ P_Z (call ``eval()`` first for batch-norm running statistics); a
        conditional model decodes them with the classes ``labels`` (n,)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise UserError(f"n must be a whole number >= 0; got {n!r}")
        return self.decode(self.prior_sample(n, generator), labels)

    @torch.no_grad()
    def reconstruct(self, x: Tensor, labels: Tensor | None = None, to_labels: Tensor | None = None) -> Tensor:
        """G(E(x)) for images x; a conditional model encodes with their classes ``labels`` and
        decodes with ``to_labels`` (default: the same), which transfers their style to other
        classes."""
        return self.decode(self.encode(x, labels=labels), to_labels if to_labels is not None else labels)

    @torch.no_grad()
    def interpolate(
        self,
        x_from: Tensor,
        x_to: Tensor,
        steps: int = 10,
        labels_from: Tensor | None = None,
        labels_to: Tensor | None = None,
    ) -> Tensor:
        """Decode straight lines in code space between E(x_from[i]) and E(x_to[i]); a
        conditional model encodes each end with its own class and decodes the whole line with
        the class of ``x_from``.

        Returns (n, steps, c, h, w), the first and last columns decoding the end codes."""
        x_from = _check_tensor(x_from, "images x_from", self.input_shape)
        x_to = _check_tensor(x_to, "images x_to", self.input_shape)
        if len(x_from) != len(x_to):
            raise UserError(f"x_from and x_to must pair up: {len(x_from)} and {len(x_to)} images")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise UserError(f"steps must be a whole number >= 1; got {steps!r}")
        labels_from = check_labels(labels_from, len(x_from), self.classes)
        labels_to = check_labels(labels_to, len(x_to), self.classes)
        z0, z1 = self.encode(x_from, labels=labels_from), self.encode(x_to, labels=labels_to)
        t = torch.linspace(0.0, 1.0, steps, device=z0.device).view(1, steps, 1)
        z = (1 - t) * z0.unsqueeze(1) + t * z1.unsqueeze(1)
        line_labels = labels_from.repeat_interleave(steps) if labels_from is not None else None
        images = self.decode(z.reshape(-1, self.latent_dim), line_labels)
        return images.view(z0.shape[0], steps, *images.shape[1:])
