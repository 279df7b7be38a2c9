"""Latent priors P_Z: sampling and log-density, as pure functions.

Every prior is scaled so that each coordinate has variance ``var`` (sigma_z^2), which keeps the
IMQ kernel constant C = 2 * d_z * sigma_z^2 meaningful for all of them:
- ``gaussian``: N(0, var * I);
- ``uniform``: uniform on the cube [-a, a]^d with a = sqrt(3 var);
- ``sphere``: uniform on the sphere of radius sqrt(d * var) (so E||z||^2 = d * var);
- ``mixture``: K Gaussians N(r sigma e_k, sigma^2 I), k = 1..K, with equal weights, sigma^2 =
  var: their means on the first K axes, each r sigma from 0 and sqrt(2) r sigma from the others
  (K <= d). A multimodal P_Z for multimodal data (WAE's P_Z may be any distribution it can be
  sampled from, Tolstikhin et al. 2018, Sec. 2). Here sigma is each component's per-coordinate
  scale, not the mixture's (whose coordinates have variance var + r^2 var (K - 1) / K^2 on the
  first K axes). The demo's WAE-MMD prior since session 40 (K = min(10, d_z), r = 5): it made
  the prior's draws cleaner (FID 16.41 -> 12.94 over three seeds), though the codes do not sort
  by class into its components (docs/results.md, sessions 39-40). WAE-GAN's in the demo since
  session 42, whose adversary matches it closely enough that about 90 of 100 prior draws are
  clean digits (session 42).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .config import KERNEL_RANGE, LR_LEAST, count_in, finite_real, json_repr, python_scalar, whole_value


def sample_prior(
    kind: str,
    n: int,
    dim: int,
    var: float = 1.0,
    generator: torch.Generator | None = None,
    components: int | None = None,
    separation: float = 5.0,
) -> Tensor:
    """Draw ``n`` codes of dimension ``dim`` from the prior; returns (n, dim) float32.
    ``components`` (K; None: min(10, dim)) and ``separation`` (r) are the mixture's. ValueError for
    a variance that is not a finite number > 0, and for a mixture that cannot be placed (K not a
    whole number from 1 to dim, r not a finite number in (0, 1e6]), and for ``n`` or ``dim`` not
    a whole number (n from 0, dim from 1); numpy's and torch's 0-d numbers are taken."""
    n, dim = count_in("n", n, 0), count_in("dim", dim, 1)
    var = _check_var(var)
    if kind == "gaussian":
        return torch.randn(n, dim, generator=generator) * math.sqrt(var)
    if kind == "uniform":
        half_width = math.sqrt(3.0 * var)
        return (torch.rand(n, dim, generator=generator) * 2.0 - 1.0) * half_width
    if kind == "sphere":
        z = torch.randn(n, dim, generator=generator)
        return z / z.norm(dim=1, keepdim=True).clamp_min(1e-12) * math.sqrt(dim * var)
    if kind == "mixture":
        components, r = _check_mixture(dim, components, separation)
        which = torch.randint(components, (n,), generator=generator)
        z = torch.randn(n, dim, generator=generator) * math.sqrt(var)
        z[torch.arange(n), which] += r * math.sqrt(var)
        return z
    raise ValueError(f"unknown prior '{kind}'")


def _check_var(var: float) -> float:
    """The prior's variance as a float once checked: a finite number > 0 within
    :data:`~wae.config.KERNEL_RANGE` (ValueError), the config's bounds on sigma_z^2: beyond them
    float32 codes underflow to 0 (var 1e-300 drew all zeros) or overflow to inf (1e77)."""
    low, high = KERNEL_RANGE  # (float32's 1e-12, 9.99999996e-13, is the bound as given)
    if (real := finite_real(var)) is None or not low * (1 - 1e-6) <= real <= high * (1 + 1e-6):
        raise ValueError(
            f"the prior's variance must be a finite number > 0, from {low:g} to {high:g}; got {json_repr(var)}"
        )
    return real


def default_components(dim: int, components: int | None = None) -> int:
    """The mixture's K where it is not given (None): min(10, dim), one mean an axis, ten for the
    ten digits where d_z allows; a K given is returned as it is (checked where it is used)."""
    return min(10, dim) if components is None else components


def _check_mixture(dim: int, components: int | None, separation: float) -> tuple[int, float]:
    """K as an int (None: min(10, dim)) and r as a float, once both are checked (ValueError)."""
    components = default_components(dim, components)
    if (count := whole_value(python_scalar(components))) is None or not 1 <= count <= dim:
        raise ValueError(
            f"the mixture prior places its {json_repr(components)} means on the first axes of {dim}: 1 to {dim}"
        )
    if (real := finite_real(separation)) is None or not LR_LEAST <= real <= 1e6:  # float32 holds less as 0
        raise ValueError(
            f"the mixture prior's separation must be a finite number in (0, 1e6], at least {LR_LEAST:.4g}; got "
            f"{json_repr(separation)}"
        )
    return count, real


def check_prior_settings(
    kind: str, dim: int, var: float, components: int | None = None, separation: float = 5.0
) -> int:
    """The mixture's K as an int (None: min(10, dim)) once the prior's settings are checked: the
    variance, and for the mixture K and r (ValueError as :func:`sample_prior`)."""
    dim = count_in("dim", dim, 1)
    _check_var(var)
    if kind == "mixture":
        return _check_mixture(dim, components, separation)[0]
    return default_components(dim, components)  # unused by other priors: not checked


def describe(kind: str, var: float, components: int, separation: float) -> str:
    """The prior in words, for reports and model cards: its kind and variance, and a mixture's K
    and r (K as resolved: :func:`check_prior_settings`)."""
    shown = [f"{real:g}" if (real := finite_real(v)) is not None else json_repr(v) for v in (var, separation)]
    if kind == "mixture":  # (numbers of any type: a Fraction has no :g format)
        return f"mixture of {components} Gaussians N({shown[1]} sigma e_k, sigma^2 I), sigma^2 = {shown[0]}"
    return f"{kind} (variance {shown[0]})"


def _check_codes(z: Tensor) -> Tensor:
    """Codes z (n, d) of a floating-point dtype (ValueError otherwise), as float32 where they are
    of a narrower one: a float16 code's log-density, -135003 in float32, was -inf in its own."""
    if not isinstance(z, Tensor) or z.ndim != 2 or not z.is_floating_point():
        shown = f"a {z.ndim}-D {z.dtype} tensor" if isinstance(z, Tensor) else type(z).__name__
        raise ValueError(f"codes z must be a 2-D floating-point tensor (n, d); got {shown}")
    return z.to(density_dtype(z))


def density_dtype(z: Tensor) -> torch.dtype:
    """The dtype a log-density of codes ``z`` is computed and returned in (the prior's and the
    ex-post samplers'): z's for float32 and float64, float32 for a narrower float or integer
    codes."""
    return z.dtype if z.dtype in (torch.float32, torch.float64) else torch.float32


def mixture_means(dim: int, var: float = 1.0, components: int | None = None, separation: float = 5.0) -> Tensor:
    """The means of the ``mixture`` prior's components, (K, dim) float32: r sigma e_k (K = None:
    min(10, dim)). ValueError as :func:`sample_prior`."""
    dim, var = count_in("dim", dim, 1), _check_var(var)
    components, r = _check_mixture(dim, components, separation)
    means = torch.zeros(components, dim)
    means[torch.arange(components), torch.arange(components)] = r * math.sqrt(var)
    return means


def mixture_log_density(z: Tensor, var: float = 1.0, components: int | None = None, separation: float = 5.0) -> Tensor:
    """log p(z) under the ``mixture`` prior, (1/K) sum_k N(z; r sigma e_k, var I), for float z of
    shape (n, d); returns (n,) in z's dtype, float32 for a narrower one (ValueError for other z,
    and as :func:`sample_prior`)."""
    z = _check_codes(z)
    var = _check_var(var)
    means = mixture_means(z.shape[1], var, components, separation).to(z)
    each = gaussian_log_density(z[:, None, :] - means[None], var)  # (n, K), no reshape: n may be 0
    return torch.logsumexp(each, dim=1) - math.log(len(means))


PRIORS_WITH_DENSITY = ("gaussian", "uniform", "mixture")
"""The priors with a density on R^d (the sphere's mass lies on a set of volume 0)."""


def log_density(
    kind: str, z: Tensor, var: float = 1.0, components: int | None = None, separation: float = 5.0
) -> Tensor:
    """log p(z) under the prior ``kind`` (one of PRIORS_WITH_DENSITY) for float z of shape (n, d);
    returns (n,) in nats, in z's dtype. The uniform's is -inf outside its cube. ValueError for the
    sphere (no density on R^d), an unknown kind, z of another shape or an integer dtype, and as
    :func:`sample_prior` for the variance and the mixture's settings."""
    z = _check_codes(z)
    var = _check_var(var)
    if kind == "gaussian":
        return gaussian_log_density(z, var)
    if kind == "mixture":
        return mixture_log_density(z, var, components, separation)
    if kind == "uniform":
        half_width = math.sqrt(3.0 * var)
        inside = (z.abs() <= half_width).all(dim=1)
        value = torch.full((len(z),), -z.shape[1] * math.log(2.0 * half_width), dtype=z.dtype, device=z.device)
        return value.masked_fill(~inside, -math.inf)
    if kind == "sphere":
        raise ValueError("the sphere prior has no density on R^d: its mass lies on a sphere")
    raise ValueError(f"unknown prior '{kind}'")


def gaussian_log_density(z: Tensor, var: float = 1.0) -> Tensor:
    """log N(z; 0, var * I) over the last axis of floating-point z, of shape (..., d); returns
    (...,): (n,) for codes (n, d), in z's dtype (float32 for a narrower one). ValueError for
    other z, and for a variance as :func:`sample_prior` refuses it."""
    if not isinstance(z, Tensor) or z.ndim < 1 or not z.is_floating_point():
        shown = f"a {z.ndim}-D {z.dtype} tensor" if isinstance(z, Tensor) else type(z).__name__
        raise ValueError(f"codes z must be a floating-point tensor (..., d); got {shown}")
    z = z.to(density_dtype(z))
    var = _check_var(var)
    d = z.shape[-1]
    return -0.5 * (z.pow(2).sum(-1) / var + d * math.log(2.0 * math.pi * var))
