"""The auto-encoder: encode, decode, sample, reconstruct, interpolate. No loss inside."""

from __future__ import annotations

import dataclasses
import math
import operator
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .config import (
    MAX_COUNT,
    PRIORS,
    ModelConfig,
    UserError,
    check_memory,
    holds_no_number,
    json_repr,
    python_scalar,
    whole_value,
)
from .nets import ARCHITECTURES, Decoder, Encoder, MLPDecoder, MLPEncoder, TapConv2d
from .priors import check_prior_settings, sample_prior


def _net(net: nn.Module, inputs: Tensor, labels: Tensor | None) -> Any:
    """``net(inputs)``, or ``net(inputs, labels)`` for a conditional model: an unconditional
    model calls its networks with one argument, as before labels existed."""
    return net(inputs) if labels is None else net(inputs, labels)


# Below this many bytes the memory checks are skipped (they read /proc/meminfo).
_CHECKED_BYTES = 1 << 26
# torch has no min/max for these; their values are read through numpy
_WIDE_UNSIGNED = {getattr(torch, name) for name in ("uint16", "uint32", "uint64") if hasattr(torch, name)}


def whole_number(value: Any, name: str, minimum: int) -> int:
    """``value`` as an int when it is a whole number (an int, numpy integer, 0-d integer tensor:
    anything with ``__index__`` that is not a bool) in [minimum, MAX_COUNT]; UserError otherwise."""
    held = python_scalar(value)  # a 0-d tensor of bools holds a bool; a meta tensor holds nothing
    if isinstance(held, (bool, np.bool_, torch.Tensor)) or holds_no_number(held):  # a tensor left: not 0-d
        number = None
    else:
        try:
            number = operator.index(held)
        except (TypeError, RuntimeError):  # RuntimeError: a tensor without values (meta)
            number = None
    if number is None or number < minimum:
        raise UserError(f"{name} must be a whole number >= {minimum}; got {json_repr(value)}")
    if number > MAX_COUNT:
        raise UserError(
            f"{name} must be at most 2^{MAX_COUNT.bit_length() - 1} (and fit in memory); got {json_repr(value)}"
        )
    return number


def check_generator(generator: Any) -> None:
    """UserError unless ``generator`` is None or a CPU :class:`torch.Generator` (the model draws
    its noise on the CPU, on any device, so that seeds give the same numbers everywhere)."""
    if generator is None:
        return
    if not isinstance(generator, torch.Generator):
        raise UserError(
            f"generator must be a torch.Generator or None; got {type(generator).__name__} {json_repr(generator)}"
        )
    try:
        device = generator.device
    except RuntimeError:  # a meta-device generator has no device torch can name
        device = torch.device("meta")
    if device.type != "cpu":
        raise UserError(f"generator must be a CPU torch.Generator (noise is drawn on the CPU); got one on {device}")


def _check_stored(value: Tensor, name: str) -> None:
    """UserError for a tensor without values (meta device) or not dense (sparse, nested)."""
    if value.device.type == "meta":
        raise UserError(f"{name} must hold values (they are on the meta device)")
    if value.layout != torch.strided:
        raise UserError(f"{name} must be a dense tensor; got layout {value.layout} (call .to_dense())")


def _whole_numbers(values: np.ndarray) -> bool:
    """Whether every element of an object array is a whole number (not a bool)."""
    return all(whole_value(v) is not None for v in values.flat)  # numpy's durations are none


def _label_array(labels: Any) -> tuple[np.ndarray, bool]:
    """``labels`` given as an array or sequence, as a numpy array, and whether it holds whole
    numbers: masked arrays without masked entries as their data; whole numbers beyond int64 in
    a sequence as an object array (numpy makes them float64), to be reported as they are."""
    if isinstance(labels, np.ma.MaskedArray):
        masked = int(np.ma.getmaskarray(labels).sum())
        if masked:
            raise UserError(f"labels must not have masked (missing) entries; got {masked} masked of {labels.size}")
        labels = np.ma.getdata(labels)
    for item in labels if isinstance(labels, list | tuple) else ():  # numpy would make True a 1
        held = python_scalar(item)
        if isinstance(held, bool | np.bool_) or holds_no_number(held):
            raise UserError(f"labels must be integers (class indices); got {json_repr(item)} among them")
    try:
        array = np.asarray(labels)
    except (TypeError, ValueError):  # ragged sequences
        raise UserError(f"labels must be integers (class indices), one per input; got {labels!r:.60}") from None
    if array.dtype.kind in "fO" and not isinstance(labels, np.ndarray) and array.size:
        exact = np.asarray(labels, dtype=object)
        if exact.shape == array.shape and _whole_numbers(exact):
            return exact, True
    return array, array.dtype.kind in "iu"


def check_labels(labels: Any, n: int, classes: int) -> Tensor | None:
    """``labels`` for ``n`` inputs of a model of ``classes`` classes (0: unconditional), checked:
    integers (a tensor, array or sequence) of shape (n,) with values in [0, classes), as an
    int64 tensor on the device they were given on. ValueError (a :class:`~wae.config.UserError`)
    otherwise: labels missing for a conditional model or given to an unconditional one, another
    shape, values that are not integers, or out of range (reported as given, unsigned 64-bit
    values too), a tensor on the meta device or not dense (sparse), a masked array with masked
    entries."""
    if labels is None:
        if classes:
            raise UserError(f"this model is conditional on {classes} classes; give labels (n,) in [0, {classes})")
        return None
    if not classes:
        raise UserError("this model is not conditional; it takes no labels")
    device = torch.device("cpu")
    if isinstance(labels, Tensor):
        _check_stored(labels, "labels")
        device = labels.device
        if labels.dtype in _WIDE_UNSIGNED:
            labels = labels.detach().cpu().numpy()
    values: Tensor | np.ndarray
    if isinstance(labels, Tensor):
        values = labels.detach()
        integral = not (values.dtype.is_floating_point or values.dtype.is_complex or values.dtype == torch.bool)
        kind = str(values.dtype)
    else:
        values, integral = _label_array(labels)
        kind = str(values.dtype)
    if (values.numel() if isinstance(values, Tensor) else values.size) == 0 and n == 0:
        return torch.zeros(0, dtype=torch.long, device=device)
    if not integral:
        raise UserError(f"labels must be integers (class indices); got dtype {kind}")
    if tuple(values.shape) != (n,):
        raise UserError(f"labels must have shape ({n},), one per input; got {tuple(values.shape)}")
    if n:
        low, high = int(values.min()), int(values.max())
        if low < 0 or high >= classes:
            raise UserError(f"labels must lie in [0, {classes}); got values from {low} to {high}")
    if isinstance(values, Tensor):
        return values.long()
    return torch.from_numpy(values.astype(np.int64)).to(device)


def _check_tensor(value: Any, name: str, shape: tuple[int, ...], like: Tensor, data_range: str | None = None) -> Tensor:
    """``value`` when it is a dense real floating-point tensor (n, *shape), converted to the
    dtype and device of ``like`` (a parameter of the model); :class:`UserError` otherwise.
    Integer images are refused with ``data_range``, the range the model expects."""
    expected = "(n, " + ", ".join(map(str, shape)) + ")"
    if not isinstance(value, Tensor):
        raise UserError(f"{name} must be a floating-point torch.Tensor {expected}; got {type(value).__name__}")
    _check_stored(value, name)
    if not value.dtype.is_floating_point:
        whole = not (value.dtype.is_complex or value.dtype == torch.bool)
        if data_range is not None and whole:
            raise UserError(
                f"{name} must be a floating-point torch.Tensor {expected} in the data range {data_range}; got "
                f"{value.dtype} (scale integer pixels first, e.g. x / 255 for 0-255 images)"
            )
        raise UserError(f"{name} must be a floating-point torch.Tensor {expected}; got Tensor of {value.dtype}")
    if value.dim() != len(shape) + 1 or tuple(value.shape[1:]) != shape:
        raise UserError(f"{name} must have shape {expected}; got {tuple(value.shape)}")
    converted = value.to(device=like.device, dtype=like.dtype)
    if not bool(torch.isfinite(converted).all()):
        where = "" if bool(torch.isfinite(value).all()) else " (NaN or infinite as given)"
        raise UserError(
            f"{name} must be finite in {like.dtype}{where}; got values such as {value.abs().max().item():.3g}"
        )
    bounds = {"[0, 1]": (0.0, 1.0), "[-1, 1]": (-1.0, 1.0)}.get(data_range or "")  # images; rows: none
    if bounds is not None and converted.numel():
        lo, hi = bounds
        low, high = converted.min().item(), converted.max().item()
        if low < lo - (hi - lo) or high > hi + (hi - lo):  # far outside: another scale, such as 0-255
            raise UserError(
                f"{name} must lie in the data range {data_range}; got values from {low:.3g} to {high:.3g} "
                "(scale pixels first, e.g. x / 255 for 0-255 images)"
            )
    return converted


def _largest_activation(decoder: nn.Module, start: int, channels: int) -> int:
    """Elements per code of the largest output of a layer of a convolutional ``decoder`` whose
    first layer gives ``channels`` x ``start`` x ``start``."""
    side, largest = start, channels * start * start
    for layer in decoder.modules():
        if isinstance(layer, nn.ConvTranspose2d):
            k, stride, pad, extra = layer.kernel_size[0], layer.stride[0], layer.padding[0], layer.output_padding[0]
            side, channels = (side - 1) * stride - 2 * int(pad) + k + extra, layer.out_channels
        elif isinstance(layer, TapConv2d):  # stride 1, "same" padding, which a GPU makes a padded copy for
            kh, kw = layer.kernel_size
            largest = max(largest, layer.in_channels * (side + kh - 1) * (side + kw - 1))
            channels = layer.out_channels
        elif isinstance(layer, nn.Conv2d):
            k, stride = layer.kernel_size[0], layer.stride[0]
            if layer.padding == "same":  # stride 1 (torch refuses another): the side kept, even kernels too
                channels = layer.out_channels
            else:
                pad = 0 if layer.padding == "valid" else int(layer.padding[0])
                side, channels = (side + 2 * pad - k) // stride + 1, layer.out_channels
        elif isinstance(layer, nn.ZeroPad2d):
            side += layer.padding[0] + layer.padding[1]
        else:
            continue
        largest = max(largest, channels * side * side)
    return largest


def _noise_like(name: str, noise: Any, codes: Tensor) -> Tensor:
    """``noise`` when it is a floating tensor of the codes' shape (n, d_z): a training pass's
    noise, one number a coordinate, never broadcast from another shape (session 54); else a
    :class:`UserError`."""
    if not isinstance(noise, Tensor) or not noise.is_floating_point() or noise.shape != codes.shape:
        got = (
            f"a {noise.dtype} tensor of shape {tuple(noise.shape)}"
            if isinstance(noise, Tensor)
            else type(noise).__name__
        )
        raise UserError(f"{name} must be a floating tensor of the codes' shape {tuple(codes.shape)}; got {got}")
    return noise


class AutoEncoder(nn.Module):
    """Encoder Q(Z|X), decoder G(Z) and the prior P_Z they are trained against.

    Images are (n, channels, size, size) in the data range ([0, 1] for a sigmoid output,
    [-1, 1] for tanh); codes are (n, latent_dim). With ``cfg.arch`` "mlp" the data are rows of a
    table, (n, channels) standardised columns (``size`` is 1), and the output is the identity.

    Inputs are checked before torch sees them (ValueError, a :class:`~wae.config.UserError`,
    with a one-line message): images and codes are dense torch tensors of any real floating
    dtype (float64 from ``torch.from_numpy`` too), converted to the model's :attr:`dtype` and
    moved to its :attr:`device`, so results are in the model's dtype, on its device; integer
    images (0-255 pixels) are refused, as are complex or bool tensors, tensors on the meta device
    and sparse ones. Counts (``n``, ``steps``) are whole numbers (anything with ``__index__``
    but bools: numpy integers too) at most :data:`MAX_COUNT`, and a call whose codes and images
    would not fit in the memory available now is refused before it allocates them. Generators
    are CPU :class:`torch.Generator` objects (noise is drawn on the CPU on any device).
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
        prior_components: int | None = None,
        prior_separation: float = 5.0,
    ):
        super().__init__()
        # whole numbers as Python ints (a duration, 28.0, True or a tensor refused in one line,
        # not kept in input_shape or met by torch's errors further on)
        channels, size = whole_number(channels, "channels", 1), whole_number(size, "size", 1)
        classes = whole_number(classes, "classes", 0)
        cfg = dataclasses.replace(cfg, latent_dim=whole_number(cfg.latent_dim, "latent_dim", 1))
        self.channels, self.size, self.latent_dim, self.classes = channels, size, cfg.latent_dim, classes
        if prior not in PRIORS:  # ValueError now, not at the first draw (a grid at the first epoch's end)
            raise ValueError(f"unknown prior {prior!r}; choose one of {', '.join(PRIORS)}")
        # a mixture prior's K (not given: min(10, d_z), as config.prior_components) and r
        self.prior_components = check_prior_settings(
            prior, cfg.latent_dim, prior_var, prior_components, prior_separation
        )
        self.prior, self.prior_var, self.output, self.arch = (
            prior,
            float(python_scalar(prior_var)),
            cfg.output,
            cfg.arch,
        )
        self.prior_separation = float(python_scalar(prior_separation))
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
        """Where the parameters are; ``encode`` and ``decode`` move their inputs (and labels) there."""
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """The parameters' dtype; ``encode`` and ``decode`` convert floating-point inputs to it."""
        return next(self.parameters()).dtype

    @property
    def data_range(self) -> str:
        """The range of the data the model reads and writes, in words."""
        return {"sigmoid": "[0, 1]", "tanh": "[-1, 1]"}.get(self.output, "of standardised columns")

    def bytes_per_code(self) -> int:
        """An estimate of the memory that decoding one code takes at its peak, without gradients:
        the code, its image, and three copies of the decoder's largest intermediate output (the
        "small" network on 28 x 28 images: 364 KB estimated, 367 KB measured by peak RSS)."""
        if isinstance(self.decoder, Decoder):
            largest = _largest_activation(self.decoder, self.decoder.start, self.decoder.c0)
        else:
            largest = max(m.out_features for m in self.decoder.modules() if isinstance(m, nn.Linear))
        return self.dtype.itemsize * (self.latent_dim + math.prod(self.input_shape) + 3 * largest)

    def check_room(self, count: int, what: str) -> None:
        """UserError when decoding ``count`` codes at once (codes drawn on the CPU) would need
        more memory than is available now, on the CPU and, for a CUDA model, on its GPU."""
        nbytes = count * self.bytes_per_code()
        if nbytes <= _CHECKED_BYTES:
            return
        device = self.device
        if device.type != "cuda":
            check_memory(nbytes, what)
            return
        check_memory(3 * 4 * count * self.latent_dim, what)
        free = torch.cuda.mem_get_info(device)[0]
        free += torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        if nbytes > free:
            raise UserError(
                f"{what} would need {nbytes / 2**30:.1f} GiB of memory on {device}; {free / 2**30:.1f} GiB are free"
            )

    def forward(
        self,
        x: Tensor,
        eps: Tensor | None = None,
        logvar_clip: float = 0.0,
        labels: Tensor | None = None,
        code_noise: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None, Tensor | None, Tensor]:
        """The training pass, one call so that DistributedDataParallel sees every parameter:
        (z~, mean, log_var, decoder logits) for images x (and their class ``labels`` (n,) when
        conditional; the decoder gets the same labels). A Gaussian encoder's code is
        mean + eps * exp(log_var / 2) with the given standard-normal ``eps`` (n, d_z) and its
        log-variances clipped to [-logvar_clip, logvar_clip] when that is positive; a
        deterministic encoder returns None for mean and log_var. The decoder reads
        z~ + ``code_noise`` (n, d_z) when that is given; z~ is returned without it."""
        out = _net(self.encoder, x, labels)
        mean: Tensor | None = None
        log_var: Tensor | None = None
        if isinstance(out, tuple):
            mean, log_var = out
            if logvar_clip > 0:
                log_var = log_var.clamp(-logvar_clip, logvar_clip)
            if eps is None:
                raise ValueError("a Gaussian encoder needs eps for the reparameterisation")
            z = mean + _noise_like("eps", eps, mean).float() * (0.5 * log_var.float()).exp()
        else:
            z = out
        read = z if code_noise is None else z + _noise_like("code_noise", code_noise, z).to(z.dtype)
        return z, mean, log_var, _net(self.decoder, read, labels)

    def activate(self, logits: Tensor) -> Tensor:
        """Decoder pre-activations -> images in the data range (rows of a table: unchanged)."""
        if self.output == "identity":
            return logits
        return torch.sigmoid(logits) if self.output == "sigmoid" else torch.tanh(logits)

    def encode(self, x: Tensor, generator: torch.Generator | None = None, labels: Tensor | None = None) -> Tensor:
        """Codes (n, d_z), in the model's dtype on its device, for images x (n, c, h, w) of any
        real floating dtype in the data range (of classes ``labels`` (n,) when conditional;
        integer images are refused: scale 0-255 pixels first). A Gaussian encoder returns its
        mean, or a sample from Q(Z|x) when a (CPU) ``generator`` is given."""
        x = _check_tensor(x, "images x", self.input_shape, next(self.parameters()), self.data_range)
        check_generator(generator)
        y = check_labels(labels, len(x), self.classes)
        out = _net(self.encoder, x, y.to(x.device) if y is not None else None)
        if isinstance(out, tuple):
            mean, log_var = out
            if generator is None:
                return mean
            eps = torch.randn(mean.shape, generator=generator, dtype=mean.dtype).to(mean.device)
            return mean + eps * (0.5 * log_var).exp()
        return out

    def decode(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        """Images (n, c, h, w) for codes z (n, d_z) of any real floating dtype (and classes
        ``labels`` (n,) when conditional), in the model's dtype on its device."""
        z = _check_tensor(z, "codes z", (self.latent_dim,), next(self.parameters()))
        y = check_labels(labels, len(z), self.classes)
        return self.activate(_net(self.decoder, z, y.to(z.device) if y is not None else None))

    def prior_sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n codes from the prior P_Z, (n, d_z) float32 on the CPU, drawn with the CPU
        ``generator`` when given (UserError for n that is not a whole number >= 0, for codes that
        would not fit in memory, or for a generator of another kind)."""
        n = whole_number(n, "n", 0)
        check_generator(generator)
        if 3 * 4 * n * self.latent_dim > _CHECKED_BYTES:
            check_memory(3 * 4 * n * self.latent_dim, f"prior_sample(n={n})")
        return sample_prior(
            self.prior, n, self.latent_dim, self.prior_var, generator, self.prior_components, self.prior_separation
        )

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, labels: Tensor | None = None) -> Tensor:
        """n images G(z), z ~ P_Z (call ``eval()`` first for batch-norm running statistics); a
        conditional model decodes them with the classes ``labels`` (n,). UserError for n that is
        not a whole number >= 0 or too many to decode in the memory available now (decode fewer
        at a time), and for a ``generator`` that is not a CPU torch.Generator."""
        n = whole_number(n, "n", 0)
        check_generator(generator)
        self.check_room(n, f"sample(n={n})")
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

        Returns (n, steps, c, h, w), the first and last columns decoding the end codes; UserError
        for ``steps`` that is not a whole number >= 1, or n * steps images that would not fit in
        the memory available now."""
        like = next(self.parameters())
        x_from = _check_tensor(x_from, "images x_from", self.input_shape, like, self.data_range)
        x_to = _check_tensor(x_to, "images x_to", self.input_shape, like, self.data_range)
        if len(x_from) != len(x_to):
            raise UserError(f"x_from and x_to must pair up: {len(x_from)} and {len(x_to)} images")
        steps = whole_number(steps, "steps", 1)
        if len(x_from) * steps > MAX_COUNT:
            raise UserError(f"interpolate: {len(x_from)} lines of {steps} steps are too many images")
        self.check_room(max(len(x_from), 1) * steps, f"interpolate({len(x_from)} lines, steps={steps})")
        labels_from = check_labels(labels_from, len(x_from), self.classes)
        labels_to = check_labels(labels_to, len(x_to), self.classes)
        z0, z1 = self.encode(x_from, labels=labels_from), self.encode(x_to, labels=labels_to)
        t = torch.linspace(0.0, 1.0, steps, device=z0.device).view(1, steps, 1)
        z = (1 - t) * z0.unsqueeze(1) + t * z1.unsqueeze(1)
        line_labels = labels_from.repeat_interleave(steps) if labels_from is not None else None
        images = self.decode(z.reshape(-1, self.latent_dim), line_labels)
        return images.view(z0.shape[0], steps, *images.shape[1:])
