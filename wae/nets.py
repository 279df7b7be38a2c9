"""Encoders, decoders and the latent adversary: plain ``nn.Module``s, no losses inside.

Every architecture is one instance of the same DCGAN-style family, described by an
:class:`Architecture`: stride-2 convolutions with batch norm and ReLU, then a linear layer to
the code; a linear layer (ReLU, no batch norm, as in the authors' code) to a small feature
map, stride-2 transposed convolutions with batch norm and ReLU, then a last layer to the image.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class Architecture:
    """Channel widths and kernel sizes of one encoder/decoder pair."""

    encoder_channels: tuple[int, ...]
    decoder_channels: tuple[int, ...]  # first entry: channels of the map after the linear layer
    kernel: int
    # "stride1": the last layer is a stride-1 convolution (the authors' "dcgan_mod"), so all
    # upsampling happens in the batch-normed layers; "stride2": the last layer upsamples too.
    last_layer: str
    # residual blocks (two 3x3 convolutions) after every decoder upsampling and before every
    # encoder downsampling but the first: depth at each resolution at little cost in width
    blocks: int = 0


ARCHITECTURES = {
    # The first CPU default (0.057 GFLOP per image per training step): the decoder's last layer
    # upsamples, so no layer works on the full-size image before the output.
    "fast": Architecture((32, 64, 128), (128, 64), kernel=4, last_layer="stride2"),
    # The CPU default since the sample-quality study (docs/results.md): "fast" with one more
    # batch-normed upsampling layer of 32 channels and a stride-1 last layer (0.097 GFLOP); the
    # classifier FD of prior samples after 5 epochs fell from 190 to 150, of mixture samples from 92 to 69.
    "small": Architecture((32, 64, 128), (128, 64, 32), kernel=4, last_layer="stride1"),
    # The same, twice as wide (0.38 GFLOP): the quality preset's network.
    "wide": Architecture((64, 128, 256), (256, 128, 64), kernel=4, last_layer="stride1"),
    # Paper, MNIST: encoder 4x4 convs 128-256-512-1024; decoder FC to 7x7x1024, 512, 256, 1.
    "mnist-paper": Architecture((128, 256, 512, 1024), (1024, 512, 256), kernel=4, last_layer="stride1"),
    # Paper, CelebA: 5x5 convs 128-256-512-1024; decoder FC to 8x8x1024, 512, 256, 128, 3.
    "celeba-paper": Architecture((128, 256, 512, 1024), (1024, 512, 256, 128), kernel=5, last_layer="stride1"),
}


def _down(cin: int, cout: int, k: int, bias: bool = False) -> nn.Conv2d:
    # (k - 1) // 2 padding halves even sides exactly (28 -> 14 -> 7 -> 4 with k = 4 or 5)
    return nn.Conv2d(cin, cout, k, stride=2, padding=(k - 1) // 2, bias=bias)


def _norm(channels: int, batch_norm: bool) -> nn.Module:
    # without batch norm the convolution before it carries a bias instead
    return nn.BatchNorm2d(channels) if batch_norm else nn.Identity()


def _up(cin: int, cout: int, k: int, bias: bool = False) -> nn.ConvTranspose2d:
    # output side exactly 2x the input side for k = 4 (padding 1) and k = 5 (padding 2, +1)
    pad = (k - 1) // 2
    return nn.ConvTranspose2d(cin, cout, k, stride=2, padding=pad, output_padding=2 * pad + 2 - k, bias=bias)


def decoder_start_size(arch: Architecture, size: int) -> int:
    """Side of the decoder's first feature map for images of side ``size``; ValueError when the
    architecture's upsampling cannot reach ``size`` exactly."""
    ups = len(arch.decoder_channels) - 1 + (arch.last_layer == "stride2")
    start = size / 2**ups
    if start != int(start) or start < 1:
        raise ValueError(f"image side {size} is not divisible by 2^{ups}, as this architecture needs")
    return int(start)


class ResidualBlock(nn.Module):
    """x + conv3x3(relu(norm(conv3x3(relu(norm(x)))))), the pre-activation block of He et al.
    (2016); (n, c, h, w) -> (n, c, h, w)."""

    def __init__(self, channels: int, batch_norm: bool = True):
        super().__init__()
        self.body = nn.Sequential(
            _norm(channels, batch_norm),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1, bias=not batch_norm),
            _norm(channels, batch_norm),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class LabelEmbedding(nn.Module):
    """The class label of a conditional network: indices y (n,) -> a learned (n, label_dim)
    embedding (the one-hot vector times a matrix), joined to features by :meth:`join`. With
    ``classes`` = 0 (unconditional) it holds nothing and joins nothing."""

    def __init__(self, classes: int, label_dim: int):
        super().__init__()
        self.classes = classes
        self.dim = label_dim if classes > 0 else 0
        self.embed = nn.Embedding(classes, label_dim) if classes > 0 else None

    def join(self, h: Tensor, y: Tensor | None) -> Tensor:
        """(n, d) features -> (n, d + label_dim) with the labels' embedding; ValueError when a
        conditional network gets no labels, or an unconditional one gets some."""
        if self.embed is None:
            if y is not None:
                raise ValueError("this network is not conditional; it takes no labels")
            return h
        if y is None:
            raise ValueError(f"this network is conditional on {self.classes} classes; give the labels y")
        return torch.cat([h, self.embed(y.to(h.device)).to(h.dtype)], dim=1)


class Encoder(nn.Module):
    """Image -> code. ``forward(x)`` with x of shape (n, c, h, w) returns (n, d_z) for a
    deterministic encoder, or the pair (mean, log_var), each (n, d_z), for a Gaussian one.

    A conditional encoder (``classes`` > 0) takes class indices y (n,) too, ``forward(x, y)``:
    a learned ``label_dim``-d embedding of y (one-hot times a matrix) is joined to the image
    features before the code layer."""

    def __init__(
        self,
        arch: Architecture,
        channels: int,
        size: int,
        latent_dim: int,
        gaussian: bool = False,
        batch_norm: bool = True,
        classes: int = 0,
        label_dim: int = 16,
    ):
        super().__init__()
        layers: list[nn.Module] = []
        cin = channels
        for i, cout in enumerate(arch.encoder_channels):
            if i > 0:
                layers += [ResidualBlock(cin, batch_norm) for _ in range(arch.blocks)]
            layers += [_down(cin, cout, arch.kernel, not batch_norm), _norm(cout, batch_norm), nn.ReLU(inplace=True)]
            cin = cout
        self.features = nn.Sequential(*layers)
        with torch.no_grad():
            flat = self.features(torch.zeros(2, channels, size, size)).flatten(1).shape[1]
        self.gaussian = gaussian
        self.latent_dim = latent_dim
        self.labels = LabelEmbedding(classes, label_dim)
        self.head = nn.Linear(flat + self.labels.dim, 2 * latent_dim if gaussian else latent_dim)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor | tuple[Tensor, Tensor]:
        """(n, c, h, w) images (and (n,) class indices when conditional) -> (n, d_z) codes, or
        (mean, log_var) for a Gaussian encoder."""
        h = self.head(self.labels.join(self.features(x).flatten(1), y))
        if self.gaussian:
            mean, log_var = h.chunk(2, dim=1)
            return mean, log_var
        return h


class Decoder(nn.Module):
    """Code (n, d_z) -> pre-activation image (n, c, h, w). The output non-linearity (sigmoid or
    tanh) is applied by the model, so that costs such as BCE can use the logits directly.

    A conditional decoder (``classes`` > 0) takes class indices y (n,) too, ``forward(z, y)``:
    a learned ``label_dim``-d embedding of y is joined to z before the first layer."""

    def __init__(
        self,
        arch: Architecture,
        channels: int,
        size: int,
        latent_dim: int,
        batch_norm: bool = True,
        classes: int = 0,
        label_dim: int = 16,
    ):
        super().__init__()
        self.start = decoder_start_size(arch, size)
        c0 = arch.decoder_channels[0]
        self.labels = LabelEmbedding(classes, label_dim)
        self.fc = nn.Linear(latent_dim + self.labels.dim, c0 * self.start * self.start)
        layers: list[nn.Module] = [nn.ReLU(inplace=True)]
        cin = c0
        for cout in arch.decoder_channels[1:]:
            layers += [_up(cin, cout, arch.kernel, not batch_norm), _norm(cout, batch_norm), nn.ReLU(inplace=True)]
            layers += [ResidualBlock(cout, batch_norm) for _ in range(arch.blocks)]
            cin = cout
        if arch.last_layer == "stride2":
            layers.append(_up(cin, channels, arch.kernel, bias=True))
        else:
            # "same" padding (TensorFlow's split for even kernels: one less before than after)
            before = (arch.kernel - 1) // 2
            after = arch.kernel - 1 - before
            layers += [nn.ZeroPad2d((before, after, before, after)), nn.Conv2d(cin, channels, arch.kernel)]
        self.net = nn.Sequential(*layers)
        self.c0 = c0

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """(n, d_z) codes (and (n,) class indices when conditional) -> (n, c, h, w)
        pre-activation images."""
        h = self.fc(self.labels.join(z, y)).view(z.shape[0], self.c0, self.start, self.start)
        return self.net(h)


def _mlp(cin: int, width: int, depth: int) -> tuple[nn.Sequential, int]:
    """``depth`` fully connected layers of ``width`` units with ReLU, and their output width."""
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(cin, width), nn.ReLU(inplace=True)]
        cin = width
    return nn.Sequential(*layers), cin


class MLPEncoder(nn.Module):
    """Vector -> code, for tables: ``depth`` hidden layers of ``width`` units with ReLU, then a
    linear layer. ``forward(x)`` with x (n, features) returns (n, d_z), or (mean, log_var) for
    a Gaussian encoder, as :class:`Encoder` does."""

    def __init__(self, features: int, latent_dim: int, width: int, depth: int, gaussian: bool = False):
        super().__init__()
        self.features, out = _mlp(features, width, depth)
        self.gaussian = gaussian
        self.latent_dim = latent_dim
        self.head = nn.Linear(out, 2 * latent_dim if gaussian else latent_dim)

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        """(n, features) rows -> (n, d_z) codes, or (mean, log_var) for a Gaussian encoder."""
        h = self.head(self.features(x))
        if self.gaussian:
            mean, log_var = h.chunk(2, dim=1)
            return mean, log_var
        return h


class MLPDecoder(nn.Module):
    """Code (n, d_z) -> vector (n, features): ``depth`` hidden layers of ``width`` units with
    ReLU, then a linear layer (the model's identity output keeps it as it is)."""

    def __init__(self, latent_dim: int, features: int, width: int, depth: int):
        super().__init__()
        hidden, out = _mlp(latent_dim, width, depth)
        self.net = nn.Sequential(*hidden, nn.Linear(out, features))

    def forward(self, z: Tensor) -> Tensor:
        """(n, d_z) codes -> (n, features) rows."""
        return self.net(z)


class Adversary(nn.Module):
    """WAE-GAN latent discriminator: code (n, d_z) -> logit (n,) that the code came from the
    prior. ``depth`` hidden layers of ``width`` units with ReLU (authors: 4 x 512 on MNIST).

    With ``classes`` > 0 (a conditional run's class penalty) it also sees the class of each
    code, one-hot, ``forward(z, y)``: it tells (code, class) pairs from (prior draw, class)
    pairs, so that fooling it matches each Q(Z|Y=y) to P_Z."""

    def __init__(self, latent_dim: int, width: int = 512, depth: int = 4, classes: int = 0):
        super().__init__()
        self.classes = classes
        layers: list[nn.Module] = []
        cin = latent_dim + classes
        for _ in range(depth):
            layers += [nn.Linear(cin, width), nn.ReLU(inplace=True)]
            cin = width
        layers.append(nn.Linear(cin, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """(n, d_z) codes (and (n,) class indices when conditional) -> (n,) logits."""
        if self.classes:
            if y is None:
                raise ValueError(f"this adversary is conditional on {self.classes} classes; give the labels y")
            z = torch.cat([z, nn.functional.one_hot(y.to(z.device), self.classes).to(z.dtype)], dim=1)
        return self.net(z).squeeze(1)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
