"""Latent divergences D_Z(Q_Z, P_Z) and the VAE's KL, as pure functions on tensors.

``codes`` are encoder outputs z~ of shape (n, d); ``prior`` are prior samples z of shape (m, d).
All computations run in float32 whatever the autocast context (:func:`full_precision`), since
the kernel sums are differences of nearly equal numbers.
"""

from __future__ import annotations

import contextlib
import functools
import math
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor

from .config import (
    KERNEL_RANGE,
    LR_LEAST,
    count_in,
    finite_real,
    json_repr,
    python_scalar,
    real_in,
    whole_value,
)

IMQ_SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)

F_ = TypeVar("F_", bound=Callable[..., Any])


AUTOCAST_DEVICES = ("cpu", "cuda", "mps", "xpu")  # the device types torch.autocast takes here


def full_precision(fn: F_) -> F_:
    """``fn`` run with autocast turned off (CPU, CUDA, MPS and XPU), so that a caller's bf16 or fp16
    autocast does not round its matrix products: float32 tensors stay float32. Without it a
    WAE-MMD estimate computed inside ``torch.autocast("cpu", dtype=torch.bfloat16)`` was
    off by 16 % (docs/reliability.md, "Maths under a caller's autocast")."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with contextlib.ExitStack() as stack:
            for device in AUTOCAST_DEVICES:
                if torch.is_autocast_enabled(device):
                    stack.enter_context(torch.autocast(device, enabled=False))
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


@full_precision
def squared_distances(x: Tensor, y: Tensor) -> Tensor:
    """Matrix of ||x_i - y_j||^2 for x (n, d) and y (m, d); returns (n, m), never negative."""
    x, y = x.float(), y.float()
    sq = x.pow(2).sum(1, keepdim=True) + y.pow(2).sum(1).unsqueeze(0) - 2.0 * (x @ y.T)
    return sq.clamp_min(0.0)


_KERNEL_C = (1e-30, 1e30)  # a kernel's c or bandwidth: float32 holds c * s and its sums with room to spare
FLOAT32_MOST = float(torch.finfo(torch.float32).max)


def imq_kernel(sq_dists: Tensor, c: float, scales: Sequence[float] = IMQ_SCALES) -> Tensor:
    """Inverse multiquadratics summed over scales: sum_s c*s / (c*s + ||x - y||^2).

    ``sq_dists`` is a matrix of squared distances; the result has its shape. Each term is a
    positive-definite kernel, so the sum is too. ValueError for ``c`` not a number from 1e-30 to
    1e30 (0 gave a kernel of zeros; a tensor of such values is kept, with its gradient and its
    broadcasting), a scale beyond :data:`~wae.config.KERNEL_RANGE` and c x scale beyond float32."""
    c = _positive_scale("c", c, *_KERNEL_C)
    scales = [_bounded_number("each of scales", s) for s in scales]
    if not isinstance(c, Tensor) and c * max(scales, default=1.0) > FLOAT32_MOST:  # c s + d^2: inf, then NaN
        raise ValueError(
            f"c x each scale must be at most {FLOAT32_MOST:.3g} (float32); got c = {c:g}, scale {max(scales):g}"
        )
    return sum(c * s / (c * s + sq_dists) for s in scales)  # type: ignore[return-value]


def rbf_kernel(sq_dists: Tensor, bandwidth: Tensor | float) -> Tensor:
    """Gaussian kernel exp(-||x - y||^2 / (2 h)) with h = ``bandwidth`` (a squared length): a
    tensor (:func:`median_bandwidth`), or a number from 1e-30 to 1e30 (ValueError otherwise: 0
    gave a kernel of zeros)."""
    if not isinstance(bandwidth, Tensor):
        bandwidth = real_in("bandwidth", bandwidth, *_KERNEL_C)
    return torch.exp(-sq_dists / (2.0 * bandwidth))


def median_bandwidth(sq_dists: Tensor) -> Tensor:
    """Median heuristic: the median of the off-diagonal squared distances (no gradient)."""
    n = sq_dists.shape[0]
    off = ~torch.eye(n, dtype=torch.bool, device=sq_dists.device)
    return sq_dists.detach()[off].median().clamp_min(1e-12)


def mmd_from_gram(gram: Tensor, n: int) -> Tensor:
    """Unbiased MMD^2 from the kernel matrix of the pooled sample [x_1..x_n, y_1..y_m].

    MMD^2 = 1/(n(n-1)) sum_{i!=j} k(x_i, x_j) + 1/(m(m-1)) sum_{i!=j} k(y_i, y_j)
            - 2/(nm) sum_{i,j} k(x_i, y_j).
    It is an unbiased estimate, so it can be slightly negative when the two agree."""
    m = gram.shape[0] - n
    if n < 2 or m < 2:
        raise ValueError("the unbiased MMD needs at least two samples on each side")
    k_xx, k_yy, k_xy = gram[:n, :n], gram[n:, n:], gram[:n, n:]
    within_x = (k_xx.sum() - k_xx.diagonal().sum()) / (n * (n - 1))
    within_y = (k_yy.sum() - k_yy.diagonal().sum()) / (m * (m - 1))
    return within_x + within_y - 2.0 * k_xy.sum() / (n * m)


# pooled samples above this size take the blockwise path of mmd_imq
FULL_GRAM_LIMIT = 4096
# prior draws beyond this many (and beyond the codes' number) that need no gradient enter the
# draws' own kernel term through their first max(n, PRIOR_PAIRS_LIMIT) only (mmd_imq)
PRIOR_PAIRS_LIMIT = 2048


def _imq_sum(x: Tensor, y: Tensor, c: float, scales: Sequence[float]) -> Tensor:
    return imq_kernel(squared_distances(x, y), c, scales).sum()


@full_precision
def imq_sum(x: Tensor, y: Tensor, c: float, scales: Sequence[float] = IMQ_SCALES, block: int = 1024) -> Tensor:
    """sum_ij k(x_i, y_j) of the multi-scale IMQ kernel, by blocks of ``block`` rows of x, each
    recomputed in the backward pass (activation checkpointing): memory O(block * m), not
    O(n * m), at the price of a second kernel evaluation (scalar)."""
    from torch.utils.checkpoint import checkpoint

    total = x.new_zeros((), dtype=torch.float32)
    for i in range(0, x.shape[0], block):
        total = total + checkpoint(_imq_sum, x[i : i + block], y, c, scales, use_reentrant=False)
    return total


@full_precision
def mmd_imq(
    codes: Tensor,
    prior: Tensor,
    prior_var: float = 1.0,
    scales: Sequence[float] = IMQ_SCALES,
    block: int | None = None,
) -> Tensor:
    """WAE-MMD penalty with the multi-scale IMQ kernel, C = 2 * d * prior_var (scalar).

    Up to FULL_GRAM_LIMIT pooled samples the kernel matrix is built whole (as its three blocks
    when the prior draws outnumber the codes, the draws' block without a gradient); beyond it, or
    whenever ``block`` is given, the three kernel sums are taken by row blocks (:func:`imq_sum`)
    so that a batch of 4096 codes needs megabytes, not gigabytes. Both give the same estimate:
    the diagonal terms k(x_i, x_i) = len(scales) are removed in closed form.

    When the draws outnumber both the codes and PRIOR_PAIRS_LIMIT and need no gradient (many
    prior draws a code, ``loss.prior_draws``), their own term, 1/(m(m-1)) sum_{i!=j} k(y_i, y_j),
    is taken over their first max(n, PRIOR_PAIRS_LIMIT): a U-statistic of any subset of i.i.d.
    draws is unbiased for the same E k(y, y'), so the estimate stays unbiased, its gradient with
    respect to the codes is the same, and its cost grows as n * m, not m^2 (102,400 draws: 10 s
    a step on one thread for a term without a gradient otherwise). ValueError for samples that
    are not real (n, d) and (m, d) with d >= 1 and n, m >= 2, a prior_var or a scale that is
    not a number in :data:`wae.config.KERNEL_RANGE`, no scales, a block below 1."""
    _check_samples(codes, prior)
    prior_var = _bounded_number("prior_var", prior_var)
    if isinstance(scales, str | bytes | Mapping) or not isinstance(scales, Iterable) or getattr(scales, "ndim", 1) == 0:
        raise ValueError(
            f"scales must be a sequence (a list or tuple) of one or more positive numbers; got {json_repr(scales)}"
        )
    scales = tuple(_bounded_number("each of scales", scale) for scale in scales)
    if not scales:
        raise ValueError("scales must be one or more positive numbers; got none")
    if block is not None and ((rows := whole_value(python_scalar(block))) is None or rows < 1):
        raise ValueError(f"block must be a positive number of rows or None; got {json_repr(block)}")
    block = rows if block is not None else None
    n, m = codes.shape[0], prior.shape[0]
    c = 2.0 * codes.shape[1] * prior_var
    if block is None and n + m <= FULL_GRAM_LIMIT and n == m:
        pooled = torch.cat([codes.float(), prior.float()])
        return mmd_from_gram(imq_kernel(squared_distances(pooled, pooled), c, scales), n)
    x, y = codes.float(), prior.float()
    own = y  # the draws that enter their own term
    if m > max(n, PRIOR_PAIRS_LIMIT) and not (torch.is_grad_enabled() and y.requires_grad):
        own = y[: max(n, PRIOR_PAIRS_LIMIT)]
    if block is None and n + m <= FULL_GRAM_LIMIT:
        # more prior draws than codes (loss.prior_draws): the three blocks apart, and the draws'
        # own block, which does not depend on the codes, without a gradient when they need none
        # (8 draws a code: 4x faster than the pooled matrix's backward pass)
        k_xx = imq_kernel(squared_distances(x, x), c, scales)
        with torch.set_grad_enabled(torch.is_grad_enabled() and y.requires_grad):
            k_yy = imq_kernel(squared_distances(own, own), c, scales)
        k_xy = imq_kernel(squared_distances(x, y), c, scales)
        within_x = (k_xx.sum() - k_xx.diagonal().sum()) / (n * (n - 1))
        mo = own.shape[0]
        within_y = (k_yy.sum() - k_yy.diagonal().sum()) / (mo * (mo - 1))
        return within_x + within_y - 2.0 * k_xy.sum() / (n * m)
    block = block or 1024
    diagonal, mo = float(len(scales)), own.shape[0]
    within_x = (imq_sum(x, x, c, scales, block) - n * diagonal) / (n * (n - 1))
    with torch.set_grad_enabled(torch.is_grad_enabled() and own.requires_grad):
        within_y = (imq_sum(own, own, c, scales, block) - mo * diagonal) / (mo * (mo - 1))
    return within_x + within_y - 2.0 * imq_sum(x, y, c, scales, block) / (n * m)


def _bounded_number(name: str, value: Any) -> float:
    """``value`` as a float in :data:`wae.config.KERNEL_RANGE`; ValueError otherwise (a bool, a
    string, a number beyond the range, where float32 kernels overflow or underflow to NaN)."""
    low, high = KERNEL_RANGE
    # a tensor of one value (one of a tensor of scales) as the number it holds; meta: none
    held = value.reshape(()) if isinstance(value, Tensor) and value.numel() == 1 else value
    if (number := finite_real(held)) is None or not low <= number <= high:
        raise ValueError(f"{name} must be a number from {low:g} to {high:g}; got {json_repr(value)}")
    return number


SAMPLE_MOST = 9e18  # over sqrt(d): a sample's largest value in size, its squared distances finite in float32


def _check_float32_range(name: str, sample: Tensor) -> None:
    """ValueError for a float64 sample (n, d) with a value that is not finite or beyond
    SAMPLE_MOST / sqrt(d) in size: the penalties square its distances in float32 (NaN before).
    Float32 and narrower samples, training's, are not read: no pass over them, no device sync a
    step."""
    if sample.dtype == torch.float64 and not sample.is_meta and sample.numel() > 0:
        most = SAMPLE_MOST / math.sqrt(max(sample.shape[-1], 1))
        if not bool((sample.detach().abs() < most).all()):
            raise ValueError(f"{name} must be finite and within ±{most:.3g} (their squared distances in float32)")


def _check_samples(codes: Tensor, prior: Tensor) -> None:
    """ValueError unless ``codes`` (n, d) and ``prior`` (m, d) are two samples of one dimension
    d >= 1 with n, m >= 2 (what the unbiased MMD estimate needs); float64 samples of finite
    values within ±:data:`SAMPLE_MOST` / sqrt(d)."""
    for name, sample in (("codes", codes), ("prior", prior)):
        if not isinstance(sample, Tensor) or sample.dim() != 2:
            shape = tuple(sample.shape) if isinstance(sample, Tensor) else type(sample).__name__
            raise ValueError(f"{name} must be a 2-D tensor (samples, dimensions); got {shape}")
        if sample.is_complex():
            raise ValueError(f"{name} must be real; got a {sample.dtype} tensor")
    if codes.shape[1] != prior.shape[1] or codes.shape[1] < 1:
        raise ValueError(
            f"codes and prior must have the same dimension d >= 1; got {codes.shape[1]} and {prior.shape[1]}"
        )
    if codes.shape[0] < 2 or prior.shape[0] < 2:
        raise ValueError("the unbiased MMD needs at least two samples on each side")
    for name, sample in (("codes", codes), ("prior", prior)):
        # the estimate squares distances in float32: float64 samples beyond about 1e18 gave NaN
        # (float32 ones, training's, are not checked: no pass over them, no device sync a step)
        _check_float32_range(name, sample)


@full_precision
def mmd_rbf(codes: Tensor, prior: Tensor) -> Tensor:
    """WAE-MMD penalty with a Gaussian kernel whose bandwidth is the median squared distance
    of the pooled sample (scalar). ValueError as :func:`mmd_imq` for samples of the wrong shape."""
    _check_samples(codes, prior)
    pooled = torch.cat([codes.float(), prior.float()])
    sq = squared_distances(pooled, pooled)
    return mmd_from_gram(rbf_kernel(sq, median_bandwidth(sq)), codes.shape[0])


def adversary_loss(logits_prior: Tensor, logits_codes: Tensor) -> Tensor:
    """WAE-GAN adversary loss: binary cross-entropy with prior samples labelled 1 and codes 0,
    i.e. -(1/n) sum [log D(z_i) + log(1 - D(z~_i))] (scalar; minimised by the adversary)."""
    real = F.binary_cross_entropy_with_logits(logits_prior.float(), torch.ones_like(logits_prior, dtype=torch.float32))
    fake = F.binary_cross_entropy_with_logits(logits_codes.float(), torch.zeros_like(logits_codes, dtype=torch.float32))
    return real + fake


def gan_penalty(logits_codes: Tensor) -> Tensor:
    """WAE-GAN penalty for the encoder: -(1/n) sum log D(z~_i) (scalar), as in Algorithm 1."""
    return F.softplus(-logits_codes.float()).mean()


def gaussian_kl(mean: Tensor, log_var: Tensor, prior_var: float = 1.0) -> Tensor:
    """KL( N(mean, diag exp(log_var)) || N(0, prior_var * I) ) in closed form, per sample.

    mean, log_var: (n, d); returns (n,). ValueError for ``prior_var`` beyond
    :data:`~wae.config.KERNEL_RANGE` (the config's bounds on sigma_z^2)."""
    prior_var = _bounded_number("prior_var", prior_var)
    mean, log_var = mean.float(), log_var.float()
    prior_log_var = math.log(prior_var)
    kl = 0.5 * ((log_var.exp() + mean.pow(2)) / prior_var - 1.0 - log_var + prior_log_var)
    return kl.sum(1)


# ----------------------------------------------------------------------------- beyond the paper


@full_precision
def sliced_wasserstein(codes: Tensor, prior: Tensor, directions: Tensor) -> Tensor:
    """Sliced Wasserstein penalty of SWAE (Kolouri et al. 2019): the mean over the given
    directions of the squared 1-D Wasserstein-2 distance between the projected samples
    (scalar). codes and prior (n, d) with the same n; directions (d, L), each column of unit
    length (``random_directions``). In one dimension optimal transport pairs sorted values."""
    if codes.shape[0] != prior.shape[0]:
        raise ValueError("the sliced Wasserstein estimate pairs sorted projections: give as many codes as prior draws")
    a = torch.sort(codes.float() @ directions.float(), dim=0).values
    b = torch.sort(prior.float() @ directions.float(), dim=0).values
    return (a - b).pow(2).mean()


def random_directions(d: int, count: int, generator: torch.Generator | None = None) -> Tensor:
    """``count`` directions drawn uniformly on the unit sphere of R^d, as columns (d, count)."""
    g = torch.randn(d, count, generator=generator)
    return g / g.norm(dim=0, keepdim=True)


@full_precision
def sinkhorn_potentials(x: Tensor, y: Tensor, epsilon: float, iterations: int = 50) -> tuple[Tensor, Tensor]:
    """Dual potentials f (n,), g (m,) of entropic optimal transport between the uniform
    measures on x (n, d) and y (m, d) with cost ||x - y||^2 and regularisation epsilon (KL to
    the product measure), by log-domain Sinkhorn iterations. The plan is
    pi_ij = exp((f_i + g_j - C_ij) / epsilon) / (n m). ValueError for ``epsilon`` or
    ``iterations`` as :func:`sinkhorn_divergence` refuses them."""
    epsilon, iterations = _sinkhorn_settings(epsilon, iterations)
    cost = squared_distances(x, y)
    log_a = torch.full((x.shape[0],), -math.log(x.shape[0]), device=cost.device)
    log_b = torch.full((y.shape[0],), -math.log(y.shape[0]), device=cost.device)
    f = torch.zeros_like(log_a)
    g = torch.zeros_like(log_b)
    for _ in range(iterations):
        f = -epsilon * torch.logsumexp((g.unsqueeze(0) - cost) / epsilon + log_b.unsqueeze(0), dim=1)
        g = -epsilon * torch.logsumexp((f.unsqueeze(1) - cost) / epsilon + log_a.unsqueeze(1), dim=0)
    return f, g


@full_precision
def entropic_ot(x: Tensor, y: Tensor, epsilon: float, iterations: int = 50) -> Tensor:
    """OT_epsilon(x, y): the value <f, a> + <g, b> of the entropic transport problem (scalar).

    The iterations run without gradient; one last differentiable update of both potentials
    gives the gradient with respect to x and y (envelope theorem), as in geomloss. ValueError for
    ``epsilon`` or ``iterations`` as :func:`sinkhorn_divergence` refuses them."""
    epsilon, iterations = _sinkhorn_settings(epsilon, iterations)
    x, y = x.float(), y.float()
    with torch.no_grad():
        _, g = sinkhorn_potentials(x, y, epsilon, iterations)
    cost = squared_distances(x, y)
    log_b = -math.log(y.shape[0])
    log_a = -math.log(x.shape[0])
    f = -epsilon * torch.logsumexp((g.unsqueeze(0) - cost) / epsilon + log_b, dim=1)
    g = -epsilon * torch.logsumexp((f.unsqueeze(1) - cost) / epsilon + log_a, dim=0)
    return f.mean() + g.mean()


@full_precision
def sinkhorn_divergence(codes: Tensor, prior: Tensor, epsilon: float, iterations: int = 50) -> Tensor:
    """Debiased Sinkhorn divergence (Genevay et al. 2018; Feydy et al. 2019) with cost
    ||x - y||^2: OT_eps(codes, prior) - (OT_eps(codes, codes) + OT_eps(prior, prior)) / 2
    (scalar; zero when the two samples coincide, near W_2^2 for small epsilon). ValueError for
    ``epsilon`` not a finite number of at least 1.175e-38 (0, 1e-300 and inf gave NaN; a tensor
    of such values is kept, with its gradient) and ``iterations`` not a whole number >= 1. An
    epsilon near its least can still overflow cost / epsilon (NaN, which training reports as a
    non-finite loss)."""
    epsilon, iterations = _sinkhorn_settings(epsilon, iterations)
    _check_float32_range("codes", codes)
    _check_float32_range("prior", prior)
    cross = entropic_ot(codes, prior, epsilon, iterations)
    return cross - 0.5 * (
        entropic_ot(codes, codes, epsilon, iterations) + entropic_ot(prior, prior, epsilon, iterations)
    )


def _sinkhorn_settings(epsilon: Any, iterations: Any) -> tuple[Any, int]:
    """epsilon checked as :func:`_positive_scale` does, from float32's smallest normal number (the
    config's bound on loss.sinkhorn_epsilon; a tensor is kept, for its gradient), and iterations as
    an int from 1 (ValueError otherwise, in one line)."""
    return _positive_scale("epsilon", epsilon, LR_LEAST, sys.float_info.max), count_in("iterations", iterations, 1)


def _positive_scale(name: str, value: Any, low: float, high: float) -> Any:
    """A scale a caller gives a maths function, checked to lie in [low, high]: a number (as a
    float, :func:`wae.config.real_in`), or a tensor of such values, kept as it is (its gradient
    and its broadcasting are the caller's: a per-row c, a learnt epsilon). ValueError otherwise,
    in one line; a tensor's values are read (a device sync), so training passes numbers."""
    if not isinstance(value, Tensor):
        return real_in(name, value, low, high)
    inside = not value.is_meta and not value.is_complex() and value.numel() > 0
    inside = inside and bool(((value.detach() >= low) & (value.detach() <= high)).all())
    if not inside:
        raise ValueError(f"{name} must be a number from {low:g} to {high:g} (a tensor of such numbers too)")
    return value


@full_precision
def cramer_wold(codes: Tensor, prior_var: float = 1.0) -> Tensor:
    """Squared Cramer-Wold distance of CWAE (Tabor et al. 2018, Theorem 3 with the
    approximation phi_D(s) ~ (1 + 4 s / (2D - 3))^(-1/2)) between the codes (n, d), smoothed
    with Silverman's bandwidth gamma = (4 / (3n))^(2/5), and N(0, prior_var I); closed form,
    no prior sample needed (scalar). Needs d >= 2. ValueError for ``prior_var`` beyond
    :data:`~wae.config.KERNEL_RANGE`."""
    prior_var = _bounded_number("prior_var", prior_var)
    _check_float32_range("codes", codes)
    n, d = codes.shape
    if d < 2:
        raise ValueError("the Cramer-Wold closed form needs a latent dimension of at least 2")
    z = codes.float() / math.sqrt(prior_var)
    gamma = (4.0 / (3.0 * n)) ** 0.4
    k = 1.0 / (2.0 * d - 3.0)
    within = (gamma + k * squared_distances(z, z)).rsqrt().mean()
    to_prior = (gamma + 0.5 + k * z.pow(2).sum(1)).rsqrt().mean()
    return (within + 1.0 / math.sqrt(1.0 + gamma) - 2.0 * to_prior) / (2.0 * math.sqrt(math.pi))
