"""The Python API of a trained model (encode, decode, sample, interpolate, prior_sample) checks
what it is given as the command line does: bad input is one UserError (a ValueError) with a
one-line message, never torch's RuntimeError, TypeError or NotImplementedError; input that is
only of another kind than the model's (float64 from numpy, numpy whole numbers) is converted."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import wae.config
from wae.config import UserError
from wae.model import MAX_COUNT, AutoEncoder
from wae.nets import TapConv2d

from .conftest import tiny_config

LATENT = 16


def model(classes: int = 0, **settings: Any) -> AutoEncoder:
    cfg = dataclasses.replace(tiny_config().model, **settings)
    return AutoEncoder(cfg, 1, 16, classes=classes).eval()


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def refused(call: Callable[[], Any], message: str) -> str:
    """The one-line UserError message of ``call`` (which must match ``message``)."""
    with pytest.raises(UserError, match=message) as caught:
        call()
    assert "\n" not in str(caught.value)
    return str(caught.value)


# ----------------------------------------------------------------------------- dtypes


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_any_real_floating_dtype_is_converted_to_the_models_dtype(dtype):
    m, c = model(), model(classes=3)
    z, x, y = torch.randn(3, LATENT), torch.rand(3, 1, 16, 16), [0, 1, 2]
    zd, xd = z.to(dtype), x.to(dtype)
    exact = dtype == torch.float64
    tol = {} if exact else {"atol": 2e-2, "rtol": 2e-2}
    for out, want in [
        (m.decode(zd), m.decode(zd.float())),
        (c.decode(zd, y), c.decode(zd.float(), y)),
        (m.encode(xd), m.encode(xd.float())),
        (m.reconstruct(xd), m.reconstruct(xd.float())),
        (m.interpolate(xd, xd.flip(0), 4), m.interpolate(xd.float(), xd.flip(0).float(), 4)),
        (c.interpolate(xd, xd, 3, y, y), c.interpolate(xd.float(), xd.float(), 3, y, y)),
    ]:
        assert out.dtype == torch.float32  # the model's dtype
        torch.testing.assert_close(out, want, **tol)
    torch.testing.assert_close(m.decode(zd), m.decode(z), **tol)
    # torch.from_numpy gives float64: the commonest case
    assert m.encode(torch.from_numpy(x.numpy().astype(np.float64))).dtype == torch.float32


def test_a_float64_model_takes_float32_input_and_returns_float64():
    m = model().double()
    assert m.dtype == torch.float64
    assert m.decode(torch.randn(2, LATENT)).dtype == torch.float64
    assert m.encode(torch.rand(2, 1, 16, 16, dtype=torch.float16)).dtype == torch.float64
    assert m.sample(2, gen()).dtype == torch.float64


def test_integer_images_are_refused_with_the_range_the_model_expects():
    m, tanh = model(), model(output="tanh")
    x = torch.rand(3, 1, 16, 16)
    pixels = (x * 255).to(torch.uint8)
    for bad in (pixels, pixels.long(), pixels.to(torch.int16)):
        message = refused(partial(m.encode, bad), r"images x must be a floating-point .* data range \[0, 1\]")
        assert "x / 255" in message and str(bad.dtype) in message
        refused(partial(m.reconstruct, bad), r"data range \[0, 1\]")
        refused(partial(m.interpolate, x, bad, 3), r"images x_to .* data range \[0, 1\]")
        refused(partial(m.interpolate, bad, x, 3), r"images x_from .* data range \[0, 1\]")
        refused(partial(tanh.encode, bad), r"data range \[-1, 1\]")


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128, torch.bool, torch.int64, torch.uint8])
def test_complex_bool_and_integer_codes_are_refused(dtype):
    m = model()
    z = torch.randn(3, LATENT).to(dtype) if not dtype.is_complex else torch.randn(3, LATENT, dtype=dtype)
    refused(lambda: m.decode(z), f"codes z must be a floating-point torch.Tensor \\(n, 16\\); got Tensor of {dtype}")


@pytest.mark.parametrize("dtype", [torch.complex64, torch.bool])
def test_complex_and_bool_images_are_refused(dtype):
    m = model()
    x = torch.rand(3, 1, 16, 16).to(dtype)
    message = refused(lambda: m.encode(x), "images x must be a floating-point torch.Tensor")
    assert str(dtype) in message and "255" not in message


# ----------------------------------------------------------------------------- storage


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support")
def test_meta_and_sparse_tensors_are_refused_everywhere():
    m, c = model(), model(classes=3)
    z, x = torch.randn(3, LATENT), torch.rand(3, 1, 16, 16)
    cases: list[tuple[Callable[[], Any], str]] = [
        (lambda: m.decode(z.to("meta")), "codes z must hold values .*meta device"),
        (lambda: m.encode(x.to("meta")), "images x must hold values .*meta device"),
        (lambda: m.interpolate(x, x.to("meta"), 3), "images x_to must hold values"),
        (lambda: m.reconstruct(x.to("meta")), "images x must hold values"),
        (lambda: c.decode(z, torch.tensor([0, 1, 2], device="meta")), "labels must hold values"),
        (lambda: m.decode(z.to_sparse()), "codes z must be a dense tensor; got layout torch.sparse_coo"),
        (lambda: m.decode(z.to_sparse_csr()), "codes z must be a dense tensor; got layout torch.sparse_csr"),
        (lambda: m.encode(x.to_sparse()), "images x must be a dense tensor"),
        (lambda: c.decode(z, torch.tensor([0, 1, 2]).to_sparse()), "labels must be a dense tensor"),
        (lambda: c.encode(x, labels=torch.tensor([0, 1, 2]).to_sparse()), "labels must be a dense tensor"),
        (lambda: c.sample(3, labels=torch.tensor([0, 1, 2]).to_sparse()), "labels must be a dense tensor"),
    ]
    for call, message in cases:
        refused(call, message)


def test_inputs_and_labels_are_moved_to_the_models_device():
    c = model(classes=3)
    z, y = torch.randn(3, LATENT), torch.tensor([0, 1, 2])
    assert c.decode(z, y).device == c.device
    # labels come back on the device they were given on; encode and decode move them with the inputs
    labels = wae.model.check_labels(np.array([0, 1, 2], dtype=np.uint64), 3, 3)
    assert labels is not None and labels.dtype == torch.int64 and labels.device.type == "cpu"


# ----------------------------------------------------------------------------- sizes


def test_counts_beyond_memory_are_refused_before_allocating(monkeypatch):
    m, c = model(), model(classes=3)
    x = torch.rand(2, 1, 16, 16)
    for call, message in [
        (lambda: m.sample(10**12), r"sample\(n=1000000000000\) would need .* GiB of memory"),
        (lambda: m.sample(2**48), r"sample\(n=281474976710656\) would need"),
        (lambda: m.sample(2**63), "n must be at most 2\\^48"),
        (lambda: m.sample(10**5000), "n must be at most 2\\^48 .*got a whole number of about 2\\^16610"),
        (lambda: c.sample(10**12, labels=[0]), "would need"),
        (lambda: m.interpolate(x, x, 10**9), r"interpolate\(2 lines, steps=1000000000\) would need"),
        (lambda: m.interpolate(x, x, 2**63), "steps must be at most"),
        (lambda: m.prior_sample(10**13), r"prior_sample\(n=10000000000000\) would need"),
        (lambda: m.prior_sample(2**64), "n must be at most"),
    ]:
        refused(call, message)
    # with 1 GiB available, a sample that needs more is refused and one that needs less is drawn
    monkeypatch.setattr(wae.config, "available_memory", lambda: 2**30)
    too_many = 2**30 // m.bytes_per_code() + 1
    refused(lambda: m.sample(too_many), "1.0 GiB are available")
    refused(lambda: m.interpolate(x, x, too_many // 2 + 1), "1.0 GiB are available")
    assert m.sample(1000, gen()).shape == (1000, 1, 16, 16)
    assert m.interpolate(x, x, 500).shape == (2, 500, 1, 16, 16)


def test_a_cuda_model_is_checked_against_its_gpus_free_memory(monkeypatch):
    m = model()
    monkeypatch.setattr(AutoEncoder, "device", property(lambda self: torch.device("cuda", 0)))
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (2**30, 2**34))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: 2**29)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: 0)
    fits = (2**30 + 2**29) // m.bytes_per_code()
    m.check_room(fits, "fits")
    refused(lambda: m.check_room(fits + 1, "sample(n=...)"), r"on cuda:0; 1.5 GiB are free")


@pytest.mark.parametrize("arch", ["fast", "small", "wide", "mlp"])
@pytest.mark.parametrize("size", [16, 28, 32])
def test_the_memory_estimate_holds_the_decoders_largest_output(arch, size):
    cfg = dataclasses.replace(tiny_config().model, arch=arch)
    m = AutoEncoder(cfg, 3 if arch != "mlp" else 7, size if arch != "mlp" else 1).eval()
    largest = [0]

    def measure(module: nn.Module, inputs: Any, output: Any) -> None:
        if isinstance(output, torch.Tensor):
            largest[0] = max(largest[0], output[0].numel())
        if isinstance(module, TapConv2d):  # the padded copy its convolution makes on a GPU
            c, h, w = inputs[0].shape[1:]
            k = module.kernel_size[0]
            largest[0] = max(largest[0], c * (h + k - 1) * (w + k - 1))

    hooks = [layer.register_forward_hook(measure) for layer in m.decoder.modules() if not list(layer.children())]
    with torch.no_grad():
        m.decode(torch.randn(2, cfg.latent_dim))
    for hook in hooks:
        hook.remove()
    inputs = cfg.latent_dim + int(np.prod(m.input_shape))
    assert m.bytes_per_code() == 4 * (inputs + 3 * largest[0])


@pytest.mark.parametrize("padding", ["same", "valid", 0, 1, 2])
@pytest.mark.parametrize("kernel", [3, 4, 5])
def test_the_largest_activation_follows_a_plain_convolutions_padding(padding, kernel):
    # session 61 left open: padding="same" was counted as (k - 1) // 2 a side, one short of the
    # output's side for an even kernel
    from wae.model import _largest_activation

    decoder = nn.Sequential(
        nn.ConvTranspose2d(8, 6, 4, stride=2, padding=1), nn.Conv2d(6, 12, kernel, padding=padding), nn.ReLU()
    )
    out = decoder(torch.randn(1, 8, 7, 7))
    assert _largest_activation(decoder, 7, 8) == max(8 * 7 * 7, 6 * 14 * 14, out[0].numel())
    if padding == "same":
        assert out.shape[-1] == 14


# ----------------------------------------------------------------------------- counts and generators


def test_whole_numbers_of_any_integer_type_are_accepted():
    m = model()
    x = torch.rand(2, 1, 16, 16)
    want = m.sample(3, gen())
    for n in (np.int64(3), np.uint8(3), np.int32(3), torch.tensor(3)):
        torch.testing.assert_close(m.sample(n, gen()), want)
        torch.testing.assert_close(m.prior_sample(n, gen()), m.prior_sample(3, gen()))
    for steps in (np.int64(4), np.uint16(4), torch.tensor(4, dtype=torch.int32)):
        torch.testing.assert_close(m.interpolate(x, x, steps), m.interpolate(x, x, 4))
    assert m.sample(np.int64(0)).shape == (0, 1, 16, 16)


def test_counts_that_are_not_whole_numbers_are_refused():
    m = model()
    x = torch.rand(2, 1, 16, 16)
    for n in (-1, np.int64(-1), 2.0, np.float64(3.0), True, np.True_, "3", None, torch.tensor(3.0), [3]):
        refused(partial(m.sample, n), "n must be a whole number >= 0")
        refused(partial(m.prior_sample, n), "n must be a whole number >= 0")
    for steps in (0, np.int64(0), 2.5, False, np.bool_(True), "4"):
        refused(partial(m.interpolate, x, x, steps), "steps must be a whole number >= 1")


def test_generators_must_be_cpu_torch_generators():
    m, gaussian = model(), model(encoder="gaussian")
    x = torch.rand(2, 1, 16, 16)
    for bad in (5, "seed", np.random.default_rng(0), 1.5):
        refused(partial(m.sample, 3, bad), "generator must be a torch.Generator or None; got")
        refused(partial(m.prior_sample, 3, bad), "generator must be a torch.Generator")
        refused(partial(gaussian.encode, x, generator=bad), "generator must be a torch.Generator")
    assert gaussian.encode(x, gen()).shape == (2, LATENT)
    assert not torch.equal(gaussian.encode(x, gen(1)), gaussian.encode(x))  # a draw, not the mean
    if torch.cuda.is_available():
        cuda = torch.Generator(device="cuda")
        refused(lambda: m.sample(3, cuda), "generator must be a CPU torch.Generator")


# ----------------------------------------------------------------------------- labels


def test_labels_out_of_range_are_reported_with_their_true_values():
    c = model(classes=3)
    z = torch.randn(3, LATENT)
    big = 2**63 + 5
    for labels in (
        np.array([0, 1, big], dtype=np.uint64),
        torch.tensor([0, 1, big], dtype=torch.uint64),
        [0, 1, big],
        (0, 1, big),
    ):
        refused(partial(c.decode, z, labels), f"must lie in \\[0, 3\\); got values from 0 to {big}$")
    refused(lambda: c.decode(z, [0, 2**70, 1]), f"got values from 0 to {2**70}$")
    refused(lambda: c.decode(z, [-(2**70), 0, 1]), f"got values from {-(2**70)} to 1$")
    refused(lambda: c.decode(z, np.array([0, 1, 2**32 + 1], dtype=np.uint64)), "to 4294967297$")
    refused(lambda: c.decode(z, [0, 1.5, 2]), "must be integers")  # floats stay refused
    want = c.decode(z, [0, 1, 2])
    for good in (
        np.array([0, 1, 2], dtype=np.uint64),
        torch.tensor([0, 1, 2], dtype=torch.uint64),
        torch.tensor([0, 1, 2], dtype=torch.uint16),
        [np.int64(0), np.uint8(1), 2],
    ):
        torch.testing.assert_close(c.decode(z, good), want)


def test_masked_label_arrays_are_refused_unless_nothing_is_masked():
    c = model(classes=3)
    z, x = torch.randn(3, LATENT), torch.rand(3, 1, 16, 16)
    for labels in (
        np.ma.masked_array([0, 1, 7], mask=[0, 0, 1]),
        np.ma.masked_array([0, 1, 2], mask=[0, 1, 0]),
        np.ma.masked_array([0, 1, 2], mask=True),
        np.ma.masked_values([0, 1, -1], -1),
    ):
        masked = int(np.ma.getmaskarray(labels).sum())
        refused(partial(c.decode, z, labels), f"labels must not have masked .*got {masked} masked of 3")
        refused(partial(c.encode, x, labels=labels), "masked")
        refused(partial(c.sample, 3, labels=labels), "masked")
        refused(partial(c.interpolate, x, x, 2, labels, [0, 0, 0]), "masked")
    unmasked = np.ma.masked_array([0, 1, 2], mask=False)
    torch.testing.assert_close(c.decode(z, unmasked), c.decode(z, [0, 1, 2]))


def test_the_documented_maximum_count_is_exported():
    assert MAX_COUNT == 2**48


def test_inputs_that_convert_to_nonsense_are_refused():
    # values that are finite as given but not in the model's dtype, and images of another scale
    m = model()
    refused(lambda: m.decode(torch.full((3, LATENT), 1e300, dtype=torch.float64)), "must be finite in torch.float32")
    refused(lambda: m.encode(torch.rand(3, 1, 16, 16, dtype=torch.float64) * 255), "x / 255")
    assert m.encode(torch.rand(3, 1, 16, 16) * 1.2 - 0.1).shape == (3, LATENT)  # a little outside: kept
    empty = torch.rand(0, 1, 16, 16)
    refused(lambda: m.interpolate(empty, empty, 10**12), "memory")  # no pairs, but huge steps


def test_a_mixture_prior_that_cannot_be_placed_is_refused_when_the_model_is_built():
    # session 40: K > d_z raised only at the first prior draw (a grid at the first epoch's end)
    cfg = wae.config.ModelConfig(arch="fast", latent_dim=4)
    with pytest.raises(ValueError, match="mixture prior"):
        AutoEncoder(cfg, 1, 28, prior="mixture", prior_components=5)
    with pytest.raises(ValueError, match="separation"):
        AutoEncoder(cfg, 1, 28, prior="mixture", prior_separation=float("inf"))
    model = AutoEncoder(cfg, 1, 28, prior="mixture")  # K not given: min(10, d_z)
    assert model.prior_components == 4
    codes = model.prior_sample(400, torch.Generator().manual_seed(1))
    assert sorted(codes.argmax(dim=1).unique().tolist()) == [0, 1, 2, 3]


def test_a_prior_the_model_cannot_draw_from_is_refused_when_it_is_built():
    cfg = wae.config.ModelConfig(arch="fast", latent_dim=4)
    for prior, settings in (
        ("Mixture", {}),
        ("gaussian", {"prior_var": -1.0}),
        ("mixture", {"prior_separation": 1e30}),
    ):
        with pytest.raises(ValueError):
            AutoEncoder(cfg, 1, 28, prior=prior, **settings)
    assert AutoEncoder(cfg, 1, 28, prior="mixture", prior_components=np.int64(3)).prior_components == 3


def test_the_auto_encoders_own_arguments_are_checked_in_one_line():
    # left open by session 56's hostile pass: a duration, 28.0 or True as channels or size, or
    # 2.5 as classes ended in numpy's or torch's errors; tensors were kept in input_shape
    cfg = wae.preset("mnist-fast").model
    for args, kwargs, said in (
        ((np.timedelta64(1, "ns"), 28), {}, "channels must be a whole number >= 1"),
        ((1, 28.0), {}, "size must be a whole number >= 1; got 28.0"),
        ((True, 28), {}, "channels must be a whole number >= 1; got True"),
        ((1, 28), {"classes": 2.5}, "classes must be a whole number >= 0; got 2.5"),
    ):
        with pytest.raises(wae.UserError, match=said):
            wae.AutoEncoder(cfg, *args, **kwargs)
    with pytest.raises(wae.UserError, match="latent_dim must be a whole number >= 1"):
        wae.AutoEncoder(dataclasses.replace(cfg, latent_dim=np.timedelta64(4, "ns")), 1, 28)
    model = wae.AutoEncoder(cfg, torch.tensor(1), np.int64(28), classes=torch.tensor(3), prior_var=torch.tensor(2.0))
    assert model.input_shape == (1, 28, 28) and all(type(v) is int for v in model.input_shape)
    assert type(model.classes) is int and model.classes == 3 and type(model.prior_var) is float
