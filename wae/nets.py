"""Encoders, decoders and the latent adversary: plain ``nn.Module``s, no losses inside.

Every architecture is one instance of the same DCGAN-style family, described by an
:class:`Architecture`: stride-2 convolutions with batch norm and ReLU, then a linear layer to
the code; a linear layer (ReLU, no batch norm, as in the authors' code) to a small feature
map, stride-2 transposed convolutions with batch norm and ReLU, then a last layer to the image.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.autograd import forward_ad

try:  # ATen's layout rule for a convolution's output (the tap layer gives the same)
    from torch._prims_common import suggest_memory_format
except ImportError:  # pragma: no cover
    suggest_memory_format = None  # type: ignore[assignment]


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


def same_padding(kernel: int) -> tuple[int, int]:
    """(before, after) zero padding that keeps a stride-1 convolution's side: TensorFlow's
    "same" split, one less before than after for an even kernel (PyTorch's padding="same" too)."""
    before = (kernel - 1) // 2
    return before, kernel - 1 - before


def _windows(kernel: int, side: int) -> list[tuple[int, int, int, int, int]]:
    """For each kernel offset i of a "same" convolution along a side of ``side`` pixels that
    reaches the image, (i, lo, hi, lo + d, hi + d): the output rows [lo, hi) it reaches and the
    input rows they read, d = i - before (an offset beyond a small image reaches none: left out)."""
    before = same_padding(kernel)[0]
    spans = []
    for i in range(kernel):
        d = i - before
        lo, hi = max(0, -d), min(side, side - d)
        if lo < hi:
            spans.append((i, lo, hi, lo + d, hi + d))
    return spans


def _tap_windows(
    kh: int, kw: int, h: int, w: int
) -> Iterator[tuple[int, int, tuple[slice, slice], tuple[slice, slice]]]:
    """For each tap (i, j) of a kh x kw "same" convolution that reaches an h x w image: i, j, the
    output window (rows, columns) it adds to and the input window it reads (:func:`_windows`)."""
    for i, y0, y1, s0, s1 in _windows(kh, h):
        for j, x0, x1, u0, u1 in _windows(kw, w):
            yield i, j, (slice(y0, y1), slice(x0, x1)), (slice(s0, s1), slice(u0, u1))


def tap_conv2d(x: Tensor, weight: Tensor, bias: Tensor | None, dtype: torch.dtype | None = None) -> Tensor:
    """A stride-1 convolution (cross-correlation, as ``F.conv2d``) with "same" zero padding
    (:func:`same_padding`), computed as one matrix product and a sum over shifted windows:
    x (n, c, h, w), weight (o, c, kh, kw), bias (o,) or None -> (n, o, h, w) in ``dtype``
    (default: the promoted type of x and weight), the product in ``dtype`` and the sum over
    taps in at least float32; channels_last where x or weight is, as a convolution, else contiguous.

    With taps T[n, y, x, o, i, j] = sum_c x[n, c, y, x] weight[o, c, i, j], one (n h w, c) x
    (c, o kh kw) product, out[n, o, y, x] = bias[o] + sum_{i, j} T[n, y + i - bh, x + j - bw, o,
    i, j] over the taps inside the image (bh, bw: the padding before). For a convolution to few
    channels, such as a decoder's last layer to the image, this is several times faster on a CPU
    than oneDNN's convolution, which is built for many output channels (docs/results.md,
    "Session 61"). Differentiable by autograd; :class:`TapConv2d` uses it with a backward pass
    of its own, and leaves weights holding NaN or infinity to the padded convolution (here a tap
    that reaches only the padding is left out, where the convolution's 0 x NaN is NaN).
    ValueError when the weights' input channels are not the input's."""
    n, c, h, w = x.shape
    o, _, kh, kw = weight.shape
    if weight.shape[1] != c:
        raise ValueError(f"the weights take {weight.shape[1]} input channels; the input has {c}")
    dtype = dtype if dtype is not None else torch.promote_types(x.dtype, weight.dtype)
    total = torch.promote_types(dtype, torch.float32)
    taps = (_rows(x, dtype) @ _tap_matrix(weight, dtype)).view(n, h, w, o, kh, kw)
    out = torch.zeros((n, h, w, o), dtype=total, device=x.device)
    if bias is not None:
        out += bias.to(total)
    for i, j, (out_y, out_x), (in_y, in_x) in _tap_windows(kh, kw, h, w):
        out[:, out_y, out_x] += taps[:, in_y, in_x, :, i, j]
    out = out.to(dtype).permute(0, 3, 1, 2)
    # the layout a convolution gives: channels_last where the input's or the weights' strides are
    # (a 1-channel NCHW input is channels_last-contiguous too, and gets NCHW), else contiguous
    return out if _channels_last(x) or _channels_last(weight) else out.contiguous()


def _channels_last(t: Tensor) -> bool:
    """Whether a convolution reads ``t`` as channels_last (ATen's ``suggest_memory_format``: its
    strides are NHWC's, and it is not plainly contiguous where both readings fit)."""
    if suggest_memory_format is None:  # (a torch without it: the strides' own test)
        return t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()
    return suggest_memory_format(t) == torch.channels_last


def _rows(x: Tensor, dtype: torch.dtype) -> Tensor:
    """(n, c, h, w) -> the (n h w, c) matrix of its pixels (a view for channels_last input)."""
    return x.to(dtype).permute(0, 2, 3, 1).reshape(-1, x.shape[1])


def _tap_matrix(weight: Tensor, dtype: torch.dtype) -> Tensor:
    """(o, c, kh, kw) weights -> the (c, o kh kw) matrix of :func:`tap_conv2d`."""
    o, c, kh, kw = weight.shape
    return weight.to(dtype).permute(1, 0, 2, 3).reshape(c, o * kh * kw)


class _TapConv(torch.autograd.Function):
    """:func:`tap_conv2d` with its gradients as matrix products too: the output gradient g
    placed at every tap's window gives dL/dT, then dL/dx = dL/dT W^T and dL/dW = x^T dL/dT, in
    the product's dtype (autograd's own backward through the sliced sums is slower than the
    convolution). The backward is made of differentiable operations: a second derivative (a
    gradient penalty) goes through it."""

    @staticmethod
    def forward(x: Tensor, weight: Tensor, bias: Tensor | None, dtype: torch.dtype) -> Tensor:
        return tap_conv2d(x, weight, bias, dtype)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        x, weight, bias, dtype = inputs
        ctx.save_for_backward(x, weight)
        ctx.has_bias, ctx.dtype = bias is not None, dtype

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        dtype: torch.dtype = ctx.dtype
        n, c, h, w = x.shape
        o, _, kh, kw = weight.shape
        g = grad.to(dtype).permute(0, 2, 3, 1)  # (n, h, w, o)
        # dL/dT[n, y, x, o, i, j] = g[n, y - i + bh, x - j + bw, o] (0 outside the image): g padded
        # by the padding after (ah, aw) before and the padding before (bh, bw) after, read at an
        # offset of kh - 1 - i rows and kw - 1 - j columns; stacked, not written in place, so that
        # a batch of output gradients (autograd.grad's is_grads_batched, a vectorised Jacobian) runs
        (bh, ah), (bw, aw) = same_padding(kh), same_padding(kw)
        padded = nn.functional.pad(g, (0, 0, aw, bw, ah, bh))
        windows = [
            padded[:, kh - 1 - i : kh - 1 - i + h, kw - 1 - j : kw - 1 - j + w] for i in range(kh) for j in range(kw)
        ]
        grad_taps = torch.stack(windows, dim=-1).reshape(-1, o * kh * kw)
        needs = ctx.needs_input_grad
        grad_x = grad_w = grad_b = None
        if needs[0]:
            grad_x = (grad_taps @ _tap_matrix(weight, dtype).t().contiguous()).view(n, h, w, c).permute(0, 3, 1, 2)
            grad_x = grad_x.to(x.dtype)
        if needs[1]:
            grad_w = (_rows(x, dtype).t() @ grad_taps).view(c, o, kh, kw).permute(1, 0, 2, 3).to(weight.dtype)
        if ctx.has_bias and needs[2]:
            grad_b = g.sum((0, 1, 2), dtype=torch.promote_types(dtype, torch.float32)).to(weight.dtype)
        return grad_x, grad_w, grad_b, None


def _forward_ad_active() -> bool:
    """Whether a ``torch.autograd.forward_ad.dual_level`` is open (its dual tensors need a jvp,
    which the padded convolution has)."""
    return getattr(forward_ad, "_current_level", -1) >= 0


class TapConv2d(nn.Conv2d):
    """A stride-1 ``nn.Conv2d`` with "same" zero padding (:func:`same_padding`) whose forward on
    a CPU is :func:`tap_conv2d`: the decoder's last layer, a convolution to the image's 1 or 3
    channels, where that is several times faster than oneDNN's convolution. It computes what
    the padded convolution computes, in the dtype the convolution would (autocast's for float32
    weights and input under autocast). Elsewhere (a GPU, ``torch.jit`` tracing and scripting,
    ``torch.fx`` tracing, ``torch.compile``, ``torch.export`` and ONNX export, ``torch.func``
    transforms and forward-mode AD, more than ``MAX_CHANNELS`` output channels or ``MAX_TAPS``
    taps, weights holding NaN or infinity, input that is not one batch of 4-D images of the
    weights' dtype and channels) it pads and convolves as usual. (n, in_channels, h, w) ->
    (n, out_channels, h, w); its parameters, and so checkpoints, are those of
    ``nn.Conv2d(in_channels, out_channels, kernel_size)`` (``padding`` reads 0: the padding is
    its own, ``pads``, in ``F.pad``'s order)."""

    # measured on an AMD EPYC with bf16, 28x28 and 64x64 images, kernels 4 and 5 (session 61): the
    # taps' forward and backward take 0.3-0.75x the convolution's for 1 to 4 output channels,
    # 2x and more for 6 and more
    MAX_CHANNELS = 4

    MAX_TAPS = 25  # kh x kw: the taps' (n h w, o kh kw) products grow with the kernel's area

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int], bias: bool = True
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, bias=bias)
        (top, bottom), (left, right) = (same_padding(k) for k in self.kernel_size)
        self.pads = (left, right, top, bottom)  # F.pad's order: the last dimension's first

    def extra_repr(self) -> str:
        left, right, top, bottom = self.pads  # (before, after) when the rows' and columns' agree
        return f"{super().extra_repr()}, padding=same {(top, bottom) if (top, bottom) == (left, right) else self.pads}"

    def forward(self, x: Tensor) -> Tensor:
        if not torch.jit.is_scripting():  # TorchScript compiles the convolution alone
            if self._taps_pay(x):
                return self._taps(x)
        return self._conv_forward(nn.functional.pad(x, self.pads), self.weight, self.bias)

    def _taps_pay(self, x: Tensor) -> bool:
        """Whether :func:`tap_conv2d` serves this call (see the class's docstring)."""
        if (  # the tracers first: there the sizes are traced values (torch.fx's are no tensors)
            not isinstance(x, Tensor)
            or torch.jit.is_tracing()
            or torch.compiler.is_compiling()
            or torch.onnx.is_in_onnx_export()
            or torch._C._are_functorch_transforms_active()
            or _forward_ad_active()
        ):
            return False
        if torch.is_autocast_enabled("cpu"):  # autocast casts float32, 16-bit floats, never float64
            types = torch.float64 not in (x.dtype, self.weight.dtype)
        else:  # the convolution refuses mixed types: let it say so
            types = x.dtype == self.weight.dtype
        kh, kw = self.kernel_size
        return (
            types
            and x.device.type == "cpu"
            and x.dim() == 4
            and x.shape[1] == self.in_channels > 0  # else the convolution says what is wrong
            and self.out_channels <= self.MAX_CHANNELS
            and kh * kw <= self.MAX_TAPS
            # the padded convolution's 0 x NaN at the border: a weight of NaN or infinity stays visible
            and bool(torch.isfinite(self.weight).all())
        )

    def _taps(self, x: Tensor) -> Tensor:
        autocast = torch.is_autocast_enabled("cpu")
        dtype = torch.get_autocast_dtype("cpu") if autocast else x.dtype
        with torch.autocast("cpu", enabled=False):
            out: Tensor = _TapConv.apply(x, self.weight, self.bias, dtype)
        return out


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
            # a stride-1 convolution with "same" padding; the Identity holds the place of the
            # padding layer of runs saved before session 61, so that their parameters keep
            # their names (the padding is the convolution's now)
            layers += [nn.Identity(), TapConv2d(cin, channels, arch.kernel)]
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
