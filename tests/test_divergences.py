"""The latent divergences against brute-force answers and known statistical behaviour."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from wae.divergences import (
    IMQ_SCALES,
    adversary_loss,
    gan_penalty,
    gaussian_kl,
    imq_kernel,
    median_bandwidth,
    mmd_imq,
    mmd_rbf,
    rbf_kernel,
    squared_distances,
)


def brute_force_mmd(x: np.ndarray, y: np.ndarray, kernel) -> float:
    """The unbiased estimate of WAE.md, written as plain double loops in float64."""
    n, m = len(x), len(y)
    xx = sum(kernel(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(kernel(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(kernel(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
    return xx + yy - 2 * xy


def test_squared_distances_match_pairwise_differences():
    x, y = torch.randn(7, 5), torch.randn(4, 5)
    expected = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    assert torch.allclose(squared_distances(x, y), expected, atol=1e-5)
    assert (squared_distances(x, x) >= 0).all()


@pytest.mark.parametrize("n,m", [(12, 12), (9, 14)])
def test_mmd_imq_matches_brute_force(n, m):
    gen = torch.Generator().manual_seed(1)
    codes, prior = torch.randn(n, 3, generator=gen) + 0.3, torch.randn(m, 3, generator=gen)
    var = 1.5
    c = 2 * 3 * var

    def k(a, b):
        return sum(c * s / (c * s + float(((a - b) ** 2).sum())) for s in IMQ_SCALES)

    expected = brute_force_mmd(codes.double().numpy(), prior.double().numpy(), k)
    assert mmd_imq(codes, prior, prior_var=var).item() == pytest.approx(expected, rel=1e-4, abs=1e-6)


def test_mmd_rbf_matches_brute_force_with_median_bandwidth():
    gen = torch.Generator().manual_seed(2)
    codes, prior = torch.randn(10, 4, generator=gen) * 1.3, torch.randn(10, 4, generator=gen)
    pooled = np.concatenate([codes.double().numpy(), prior.double().numpy()])
    d = ((pooled[:, None] - pooled[None]) ** 2).sum(-1)
    # torch's median of an even count is the lower middle value; use the same convention
    h = np.sort(d[~np.eye(20, dtype=bool)])[(380 - 1) // 2]

    def k(a, b):
        return math.exp(-float(((a - b) ** 2).sum()) / (2 * h))

    expected = brute_force_mmd(codes.double().numpy(), prior.double().numpy(), k)
    assert mmd_rbf(codes, prior).item() == pytest.approx(expected, rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("divergence", [mmd_imq, mmd_rbf])
def test_mmd_of_one_distribution_is_zero_on_average(divergence):
    gen = torch.Generator().manual_seed(3)
    estimates = torch.tensor(
        [divergence(torch.randn(40, 4, generator=gen), torch.randn(40, 4, generator=gen)).item() for _ in range(300)]
    )
    stderr = estimates.std() / math.sqrt(len(estimates))
    assert abs(estimates.mean().item()) < 4 * stderr.item()
    assert (estimates < 0).any(), "an unbiased estimate must sometimes be negative"


@pytest.mark.parametrize("divergence", [mmd_imq, mmd_rbf])
def test_mmd_is_positive_and_grows_with_a_mean_shift(divergence):
    gen = torch.Generator().manual_seed(4)
    prior = torch.randn(200, 8, generator=gen)
    base = torch.randn(200, 8, generator=gen)
    values = [divergence(base + shift, prior).item() for shift in (0.25, 0.5, 1.0, 2.0)]
    assert all(v > 0 for v in values)
    assert values == sorted(values) and values[-1] > 5 * values[0]


@pytest.mark.parametrize("divergence", [mmd_imq, mmd_rbf])
def test_mmd_is_symmetric(divergence):
    gen = torch.Generator().manual_seed(5)
    x, y = torch.randn(30, 3, generator=gen), torch.randn(30, 3, generator=gen) * 2
    assert divergence(x, y).item() == pytest.approx(divergence(y, x).item(), rel=1e-5)


def test_kernel_matrices_are_positive_semi_definite():
    gen = torch.Generator().manual_seed(6)
    z = torch.randn(60, 5, generator=gen).double()
    sq = ((z[:, None] - z[None]) ** 2).sum(-1)
    for gram in (imq_kernel(sq, 2 * 5.0), rbf_kernel(sq, median_bandwidth(sq))):
        eigenvalues = torch.linalg.eigvalsh(gram)
        assert eigenvalues.min().item() > -1e-8 * eigenvalues.max().item()


def test_imq_kernel_sums_the_paper_scales():
    sq = torch.tensor([[0.0, 4.0]])
    c = 2.0
    expected = [len(IMQ_SCALES), sum(c * s / (c * s + 4.0) for s in IMQ_SCALES)]
    assert torch.allclose(imq_kernel(sq, c), torch.tensor([expected]))


def test_mmd_gradient_moves_codes_towards_the_prior():
    gen = torch.Generator().manual_seed(7)
    prior = torch.randn(100, 2, generator=gen)
    codes = (torch.randn(100, 2, generator=gen) + 3.0).requires_grad_(True)
    mmd_imq(codes, prior).backward()
    assert codes.grad is not None
    assert (codes.grad.mean(0) > 0).all(), "descending the gradient must pull the shifted codes back to 0"


def test_mmd_needs_two_samples_per_side():
    with pytest.raises(ValueError):
        mmd_imq(torch.randn(1, 2), torch.randn(5, 2))


def test_gan_losses_at_an_undecided_adversary():
    zeros = torch.zeros(10)
    assert adversary_loss(zeros, zeros).item() == pytest.approx(2 * math.log(2))
    assert gan_penalty(zeros).item() == pytest.approx(math.log(2))
    # a confident, correct adversary has a small loss and makes the encoder's penalty large
    assert adversary_loss(torch.full((10,), 9.0), torch.full((10,), -9.0)).item() < 1e-3
    assert gan_penalty(torch.full((10,), -9.0)).item() > 8.9


@pytest.mark.parametrize("prior_var", [1.0, 2.0])
def test_gaussian_kl_equals_the_closed_form(prior_var):
    gen = torch.Generator().manual_seed(8)
    mean, log_var = torch.randn(6, 4, generator=gen), torch.randn(6, 4, generator=gen) * 0.5
    q = torch.distributions.Normal(mean.double(), (0.5 * log_var.double()).exp())
    p = torch.distributions.Normal(torch.zeros(6, 4, dtype=torch.float64), math.sqrt(prior_var))
    expected = torch.distributions.kl_divergence(q, p).sum(1)
    assert torch.allclose(gaussian_kl(mean, log_var, prior_var).double(), expected, atol=1e-5)
    matched = gaussian_kl(torch.zeros(3, 4), torch.full((3, 4), math.log(prior_var)), prior_var)
    assert torch.allclose(matched, torch.zeros(3), atol=1e-6)


def test_blockwise_mmd_equals_the_full_gram_mmd_with_its_gradient():
    generator = torch.Generator().manual_seed(5)
    codes = (torch.randn(300, 6, generator=generator) + 0.3).requires_grad_()
    prior = torch.randn(300, 6, generator=generator)
    full = mmd_imq(codes, prior)
    (grad_full,) = torch.autograd.grad(full, codes)
    blocked = mmd_imq(codes, prior, block=64)
    (grad_blocked,) = torch.autograd.grad(blocked, codes)
    assert blocked.item() == pytest.approx(full.item(), rel=1e-4, abs=1e-6)
    torch.testing.assert_close(grad_blocked, grad_full, rtol=1e-3, atol=1e-7)


def _under_autocast_and_not(fn):
    plain = fn()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = fn()
        still_on = torch.is_autocast_enabled("cpu")
    return plain, inside, still_on


@pytest.mark.parametrize(
    "name",
    [
        "mmd_imq",
        "mmd_imq_blocks",
        "mmd_rbf",
        "sliced",
        "sinkhorn",
        "cramer_wold",
        "kid",
        "precision_recall",
        "sharpness",
    ],
)
def test_maths_ignore_a_callers_autocast(name):
    # the kind: a bf16 autocast around our maths rounded their matrix products (mmd_imq was off
    # by 16 %); every estimate must be the float32 one, bit for bit, and leave autocast on
    from wae.divergences import cramer_wold, mmd_rbf, random_directions, sinkhorn_divergence, sliced_wasserstein
    from wae.evaluate import precision_recall, sharpness
    from wae.fid import polynomial_mmd

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(300, 16, generator=g) * 3 + 10, torch.randn(300, 16, generator=g) * 3 + 10
    directions = random_directions(16, 50, torch.Generator().manual_seed(1))
    images = torch.rand(20, 1, 28, 28, generator=g)
    fns = {
        "mmd_imq": lambda: mmd_imq(a, b, 1.0),
        "mmd_imq_blocks": lambda: mmd_imq(a, b, 1.0, block=128),
        "mmd_rbf": lambda: mmd_rbf(a, b),
        "sliced": lambda: sliced_wasserstein(a, b, directions),
        "sinkhorn": lambda: sinkhorn_divergence(a, b, 10.0, 20),
        "cramer_wold": lambda: cramer_wold(a),
        "kid": lambda: torch.tensor(polynomial_mmd(a * 10, b * 10)),
        "precision_recall": lambda: torch.tensor(list(precision_recall(a, b + 0.5).values())),
        "sharpness": lambda: torch.tensor(sharpness(images)),
    }
    plain, inside, still_on = _under_autocast_and_not(fns[name])
    assert inside.dtype == plain.dtype and torch.equal(inside, plain), (plain, inside)
    assert still_on


def test_full_precision_passes_errors_and_gradients_through():
    # the gradient of an estimate computed under autocast, with backward() called after the
    # autocast block (as torch advises: backward under autocast is not recommended), is the
    # float32 one bit for bit
    from wae.divergences import full_precision

    g = torch.Generator().manual_seed(0)
    codes, prior = torch.randn(300, 16, generator=g) * 3 + 10, torch.randn(300, 16, generator=g) * 3 + 10
    grads = []
    for autocast_on in (False, True):
        for block in (None, 128):
            a = codes.clone().requires_grad_(True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast_on):
                loss = mmd_imq(a, prior, 1.0, block=block)
            loss.backward()
            grads.append(a.grad)
    assert torch.equal(grads[0], grads[2]) and torch.equal(grads[1], grads[3])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        with pytest.raises(ValueError, match="two samples"):
            mmd_imq(codes[:1], prior, 1.0)
        assert torch.is_autocast_enabled("cpu")
    assert full_precision(lambda: torch.is_autocast_enabled("cpu"))() is False
    # every device type it turns autocast off on is one this torch knows (an unknown one raises)
    from wae.divergences import AUTOCAST_DEVICES

    for device in AUTOCAST_DEVICES:
        with torch.autocast(device, enabled=False):
            assert torch.is_autocast_enabled(device) is False


def test_more_prior_draws_estimate_the_same_mmd_with_a_less_noisy_gradient():
    """loss.prior_draws: with the codes fixed, m = 8n prior draws estimate the MMD^2 that m = n do
    (both unbiased: the same mean) and pull the codes with a gradient whose variance over prior
    draws comes from the cross term alone, so about 1/8 of it."""
    gen = torch.Generator().manual_seed(8)
    codes = torch.randn(50, 4, generator=gen) * 1.2 + 0.3

    def estimates(m: int) -> tuple[torch.Tensor, torch.Tensor]:
        values, grads = [], []
        for _ in range(200):
            z = codes.clone().requires_grad_(True)
            value = mmd_imq(z, torch.randn(m, 4, generator=gen))
            value.backward()
            assert z.grad is not None
            values.append(value.item())
            grads.append(z.grad)
        return torch.tensor(values), torch.stack(grads)

    (v1, g1), (v8, g8) = estimates(50), estimates(400)
    stderr = math.sqrt(v1.var().item() / 200 + v8.var().item() / 200)
    assert abs(v1.mean().item() - v8.mean().item()) < 4 * stderr
    ratio = (g8.var(0).mean() / g1.var(0).mean()).item()
    assert 0.08 < ratio < 0.2, ratio


def test_the_blocks_apart_give_the_pooled_matrix_estimate_and_gradient():
    """More prior draws than codes (loss.prior_draws) take the three kernel blocks apart, the
    draws' own without a gradient: the same estimate and the same gradient for the codes as the
    pooled kernel matrix, and a gradient for the draws too when they ask for one."""
    from wae.divergences import imq_kernel, mmd_from_gram

    gen = torch.Generator().manual_seed(9)
    codes = (torch.randn(30, 5, generator=gen) * 1.3 + 0.2).double().requires_grad_(True)
    prior = torch.randn(90, 5, generator=gen).double().requires_grad_(True)
    pooled = torch.cat([codes, prior])
    expected = mmd_from_gram(imq_kernel(squared_distances(pooled, pooled), 2.0 * 5), 30)
    grads = torch.autograd.grad(expected, [codes, prior])
    value = mmd_imq(codes, prior)
    assert value.item() == pytest.approx(expected.item(), rel=1e-5, abs=1e-7)
    for got, want in zip(torch.autograd.grad(value, [codes, prior]), grads, strict=True):
        assert torch.allclose(got.double(), want, rtol=1e-4, atol=1e-7)


def test_many_prior_draws_take_their_own_term_from_a_subset():
    """Draws beyond PRIOR_PAIRS_LIMIT (and the codes' number) that need no gradient enter their
    own term through the first max(n, limit) only: the hostile pass measured 10 s a step on that
    term alone at 102,400 draws. The estimate is the U-statistic of the subset (unbiased for the
    same E k(y, y')), and the codes' gradient is the full estimate's; draws that ask for a
    gradient keep all their pairs. Both paths (blocks apart, and by row blocks)."""
    from wae import divergences
    from wae.divergences import PRIOR_PAIRS_LIMIT, imq_kernel

    gen = torch.Generator().manual_seed(10)
    n, m, d = 20, PRIOR_PAIRS_LIMIT + 252, 3
    codes = (torch.randn(n, d, generator=gen) * 1.1).double().requires_grad_(True)
    prior = torch.randn(m, d, generator=gen).double()
    c = 2.0 * d

    def within(y):
        k = imq_kernel(squared_distances(y, y), c)
        return (k.sum() - k.diagonal().sum()) / (len(y) * (len(y) - 1))

    k_xx = imq_kernel(squared_distances(codes, codes), c)
    cross = imq_kernel(squared_distances(codes, prior), c).sum() / (n * m)
    head = (k_xx.sum() - k_xx.diagonal().sum()) / (n * (n - 1)) - 2 * cross
    subset = (head + within(prior[:PRIOR_PAIRS_LIMIT])).item()
    full = head + within(prior)
    (want,) = torch.autograd.grad(full, codes, retain_graph=True)
    assert n + m <= divergences.FULL_GRAM_LIMIT  # the blocks apart; with a block given, by row blocks
    for block in (None, 512):
        value = mmd_imq(codes, prior, block=block)
        assert value.item() == pytest.approx(subset, abs=2e-5)  # float32 sums of ~5M terms
        assert value.item() == pytest.approx(full.item(), abs=0.02)  # the same quantity, estimated (not equal)
        (got,) = torch.autograd.grad(value, codes)
        assert torch.allclose(got.double(), want, rtol=1e-3, atol=1e-6)
    wanting = prior.clone().requires_grad_(True)  # draws that ask for a gradient: all their pairs
    assert mmd_imq(codes, wanting).item() == pytest.approx(full.item(), abs=2e-5)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"block": -1}, "block must be a positive"),
        ({"block": 0}, "block must be a positive"),
        ({"prior_var": 0.0}, "prior_var must be a number from"),
        ({"prior_var": float("nan")}, "prior_var must be a number from"),
        ({"scales": []}, "scales must be one or more"),
        ({"scales": [1.0, -2.0]}, "each of scales must be a number from"),
        ({"codes": torch.zeros(8)}, "codes must be a 2-D tensor"),
        ({"prior": torch.zeros(8, 3, 1)}, "prior must be a 2-D tensor"),
        ({"prior": torch.zeros(8, 3)}, "the same dimension"),
        ({"codes": torch.zeros(8, 0), "prior": torch.zeros(8, 0)}, "the same dimension d >= 1"),
        ({"codes": torch.zeros(1, 2), "prior": torch.zeros(1, 2)}, "at least two samples"),
    ],
)
def test_mmd_imq_refuses_what_it_cannot_estimate_with_a_message(kwargs, words):
    """The hostile pass of session 33: block=-1 returned -3.33 silently, d = 0 or prior_var = 0
    gave NaN, scales=[] an AttributeError, 1-D input an IndexError and a dimension mismatch a
    RuntimeError. Each is now a ValueError that says what is wrong."""
    args = {"codes": torch.randn(8, 2), "prior": torch.randn(8, 2), **kwargs}
    with pytest.raises(ValueError, match=words):
        mmd_imq(**args)
    if "codes" in kwargs or "prior" in kwargs:
        with pytest.raises(ValueError, match=words.split(" d >=")[0]):
            mmd_rbf(args["codes"], args["prior"])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"scales": 1.0},
        {"scales": "12"},
        {"scales": (1e308,)},
        {"scales": (1e-320,)},
        {"scales": (True,)},
        {"prior_var": 10**400},
        {"prior_var": 1e-320},
        {"prior_var": 1e308},
        {"prior_var": True},
        {"codes": torch.ones(8, 2, dtype=torch.complex64)},
    ],
    ids=lambda kwargs: ",".join(f"{k}={'tensor' if isinstance(v, torch.Tensor) else v!r}" for k, v in kwargs.items()),
)
def test_mmd_imq_refuses_kernel_settings_that_overflow_float32(kwargs):
    """The second hostile pass: a generator of scales or a float for them gave a TypeError, a
    prior_var of 10**400 an OverflowError, and values finite in Python but not in float32
    (1e308, 1e-320) a silent NaN; True counted as 1 and complex codes were cast to real."""
    args = {"codes": torch.randn(8, 2), "prior": torch.randn(8, 2), **kwargs}
    with pytest.raises(ValueError):
        mmd_imq(**args)


def test_mmd_imq_takes_scales_from_any_iterable():
    codes, prior = torch.randn(8, 2, generator=torch.Generator().manual_seed(0)), torch.randn(8, 2)
    listed = mmd_imq(codes, prior, 1.0, [0.5, 2.0])
    assert mmd_imq(codes, prior, 1.0, (s for s in (0.5, 2.0))).item() == pytest.approx(listed.item())
    assert mmd_imq(codes, prior, np.float32(1.0), (np.float64(0.5), 2)).item() == pytest.approx(listed.item())


def test_mmd_imq_takes_a_0_d_tensor_as_prior_var_and_a_tensor_of_scales():
    codes, prior = torch.randn(8, 2, generator=torch.Generator().manual_seed(1)), torch.randn(8, 2)
    expected = mmd_imq(codes, prior, 2.0, (0.5, 1.0)).item()
    assert mmd_imq(codes, prior, torch.tensor(2.0), torch.tensor([0.5, 1.0])).item() == pytest.approx(expected)
