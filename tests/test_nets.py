"""Output shapes of every architecture and the structure the paper describes."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from wae.config import ModelConfig
from wae.model import AutoEncoder
from wae.nets import (
    ARCHITECTURES,
    Adversary,
    Decoder,
    Encoder,
    TapConv2d,
    _TapConv,
    count_parameters,
    same_padding,
    tap_conv2d,
)


@pytest.mark.parametrize(
    "arch,channels,size",
    [
        ("fast", 1, 28),
        ("fast", 3, 32),
        ("fast", 1, 16),
        ("small", 1, 28),
        ("wide", 3, 32),
        ("mnist-paper", 1, 28),
        ("celeba-paper", 3, 64),
    ],
)
@pytest.mark.parametrize("encoder", ["deterministic", "gaussian"])
def test_shapes_of_every_architecture(arch, channels, size, encoder):
    model = AutoEncoder(ModelConfig(arch=arch, latent_dim=5, encoder=encoder), channels, size).eval()
    x = torch.rand(2, channels, size, size)
    out = model.encoder(x)
    if encoder == "gaussian":
        assert isinstance(out, tuple) and [t.shape for t in out] == [(2, 5), (2, 5)]
    else:
        assert out.shape == (2, 5)
    images = model.decode(model.encode(x))
    assert images.shape == x.shape
    assert images.min() >= 0 and images.max() <= 1


def test_tanh_output_range():
    model = AutoEncoder(ModelConfig(arch="fast", output="tanh"), 3, 32).eval()
    images = model.decode(torch.randn(4, 8) * 10)
    assert images.min() >= -1 and images.max() <= 1 and images.min() < 0


def _layers(module: nn.Module, kind: type) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, kind)]


def test_paper_mnist_architecture_matches_the_paper():
    enc = Encoder(ARCHITECTURES["mnist-paper"], 1, 28, 8)
    convs = _layers(enc, nn.Conv2d)
    assert [c.out_channels for c in convs] == [128, 256, 512, 1024]
    assert all(c.kernel_size == (4, 4) and c.stride == (2, 2) for c in convs)
    assert len(_layers(enc, nn.BatchNorm2d)) == 4 and enc.head.out_features == 8
    dec = Decoder(ARCHITECTURES["mnist-paper"], 1, 28, 8)
    assert dec.fc.out_features == 7 * 7 * 1024
    ups = _layers(dec, nn.ConvTranspose2d)
    assert [u.out_channels for u in ups] == [512, 256] and all(u.stride == (2, 2) for u in ups)
    last = _layers(dec, nn.Conv2d)[-1]
    assert last.out_channels == 1 and last.stride == (1, 1) and last.kernel_size == (4, 4)


def test_paper_celeba_architecture_matches_the_paper():
    enc = Encoder(ARCHITECTURES["celeba-paper"], 3, 64, 64)
    assert [(c.out_channels, c.kernel_size) for c in _layers(enc, nn.Conv2d)] == [
        (128, (5, 5)),
        (256, (5, 5)),
        (512, (5, 5)),
        (1024, (5, 5)),
    ]
    dec = Decoder(ARCHITECTURES["celeba-paper"], 3, 64, 64)
    assert dec.fc.out_features == 8 * 8 * 1024
    assert [u.out_channels for u in _layers(dec, nn.ConvTranspose2d)] == [512, 256, 128]
    assert _layers(dec, nn.Conv2d)[-1].out_channels == 3


def test_adversary_is_a_four_layer_mlp_with_one_logit():
    adv = Adversary(8, width=512, depth=4)
    linears = _layers(adv, nn.Linear)
    assert [lin.out_features for lin in linears] == [512, 512, 512, 512, 1]
    assert adv(torch.randn(7, 8)).shape == (7,)


def test_fast_architecture_is_small():
    model = AutoEncoder(ModelConfig(arch="fast"), 1, 28)
    assert count_parameters(model) < 500_000


def test_incompatible_image_size_is_refused():
    with pytest.raises(ValueError, match="not divisible"):
        Decoder(ARCHITECTURES["celeba-paper"], 3, 60, 64)


def test_interpolation_ends_decode_the_end_codes():
    model = AutoEncoder(ModelConfig(arch="fast", latent_dim=4), 1, 16).eval()
    a, b = torch.rand(3, 1, 16, 16), torch.rand(3, 1, 16, 16)
    lines = model.interpolate(a, b, steps=5)
    assert lines.shape == (3, 5, 1, 16, 16)
    assert torch.allclose(lines[:, 0], model.reconstruct(a), atol=1e-6)
    assert torch.allclose(lines[:, -1], model.reconstruct(b), atol=1e-6)


def test_residual_blocks_keep_shapes_and_are_identity_when_their_last_convolution_is_zero():
    from wae.nets import Architecture, ResidualBlock

    block = ResidualBlock(8).eval()
    torch.nn.init.zeros_(block.body[-1].weight)
    torch.nn.init.zeros_(block.body[-1].bias)
    x = torch.randn(2, 8, 7, 7)
    assert torch.equal(block(x), x)
    deep = Architecture((16, 32), (32, 16), kernel=4, last_layer="stride1", blocks=2)
    plain = Architecture((16, 32), (32, 16), kernel=4, last_layer="stride1")
    encoder, decoder = Encoder(deep, 1, 28, 4), Decoder(deep, 1, 28, 4)
    assert encoder(torch.rand(3, 1, 28, 28)).shape == (3, 4)
    assert decoder(torch.randn(3, 4)).shape == (3, 1, 28, 28)
    assert count_parameters(decoder) > count_parameters(Decoder(plain, 1, 28, 4))


# ---------------------------------------------------------------- the decoder's last layer by taps


def _same_conv(x, weight, bias):
    before, after = same_padding(weight.shape[-1])
    return F.conv2d(F.pad(x, (before, after, before, after)), weight, bias)


@pytest.mark.parametrize("kernel,out,bias", [(4, 1, True), (5, 3, True), (3, 2, False), (1, 1, True)])
def test_tap_convolution_equals_the_padded_convolution(kernel, out, bias):
    torch.manual_seed(0)
    x = torch.randn(3, 5, 9, 7, dtype=torch.float64)  # odd, non-square sides
    weight = torch.randn(out, 5, kernel, kernel, dtype=torch.float64)
    b = torch.randn(out, dtype=torch.float64) if bias else None
    got = tap_conv2d(x, weight, b)
    assert got.shape == (3, out, 9, 7) and got.dtype == torch.float64
    torch.testing.assert_close(got, _same_conv(x, weight, b), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "shape,kernel",
    [((0, 3, 5, 5), 4), ((1, 3, 1, 1), 4), ((2, 3, 2, 3), 4), ((2, 3, 3, 1), 4), ((1, 3, 2, 2), 6), ((1, 3, 4, 3), 11)],
)
def test_tap_layer_on_empty_batches_and_images_smaller_than_its_kernel(shape, kernel):
    # a hostile pass found kernels of 6 and more on sides of 2-4 refused: offsets beyond the image
    torch.manual_seed(4)
    layer = TapConv2d(3, 2, kernel).double()
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    for given in (x, x.transpose(2, 3).contiguous().transpose(2, 3)):  # and a non-contiguous copy
        y = layer(given)
        ref = _same_conv(given, layer.weight, layer.bias)
        assert y.shape == ref.shape == (shape[0], 2, *shape[2:])
        got = torch.autograd.grad(y.square().sum(), (x, layer.weight, layer.bias))
        want = torch.autograd.grad(ref.square().sum(), (x, layer.weight, layer.bias))
        torch.testing.assert_close((y, *got), (ref, *want))


def test_tap_convolution_gradients_pass_gradcheck_and_gradgradcheck():
    # second derivatives too: a gradient penalty through the decoder differentiates the backward
    torch.manual_seed(1)
    x = torch.randn(2, 3, 6, 5, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *a: _TapConv.apply(*a, torch.float64), (x, weight, bias))
    assert torch.autograd.gradgradcheck(lambda *a: _TapConv.apply(*a, torch.float64), (x, weight, bias))
    # and without a bias, against the padded convolution's own gradients
    loss = (_TapConv.apply(x, weight, None, torch.float64) ** 2).sum()
    gx, gw = torch.autograd.grad(loss, (x, weight))
    rx, rw = torch.autograd.grad((_same_conv(x, weight, None) ** 2).sum(), (x, weight))
    torch.testing.assert_close((gx, gw), (rx, rw))


@pytest.mark.parametrize("channels_last", [True, False])
def test_tap_layer_under_bf16_autocast_matches_float32_convolution(channels_last):
    # the decoder's last layer as training runs it: bf16 input from the layer before, autocast on
    torch.manual_seed(2)
    layer = TapConv2d(32, 1, 4)
    x = torch.relu(torch.randn(8, 32, 28, 28))
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    x16 = x.bfloat16().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = layer(x16)
    assert y.shape == (8, 1, 28, 28) and y.dtype == torch.bfloat16  # as autocast's convolution gives
    y.float().sigmoid().sum().backward()
    assert x16.grad is not None and x16.grad.dtype == torch.bfloat16 and x16.grad.shape == x16.shape
    ref_x = x16.detach().float().requires_grad_()
    weight = layer.weight.detach().clone().requires_grad_()
    ref = _same_conv(ref_x, weight, layer.bias.detach())
    ref.sigmoid().sum().backward()
    torch.testing.assert_close(y.float(), ref, rtol=0.02, atol=0.02)  # bf16 products
    torch.testing.assert_close(x16.grad.float(), ref_x.grad, rtol=0.02, atol=1e-3)
    torch.testing.assert_close(layer.weight.grad, weight.grad, rtol=0.02, atol=0.05)


@pytest.mark.filterwarnings("ignore:`torch.jit.trace:DeprecationWarning")
def test_tap_layer_falls_back_to_the_convolution_where_taps_do_not_pay(monkeypatch):
    torch.manual_seed(3)
    layer = TapConv2d(4, 6, 5)  # 6 output channels: above MAX_CHANNELS, so the padded convolution
    x = torch.randn(2, 4, 8, 8)
    calls = []
    monkeypatch.setattr(_TapConv, "apply", lambda *a: calls.append(a) or tap_conv2d(*a[:4]))
    torch.testing.assert_close(layer(x), _same_conv(x, layer.weight, layer.bias))
    assert calls == []
    monkeypatch.setattr(TapConv2d, "MAX_CHANNELS", 6)
    torch.testing.assert_close(layer(x), _same_conv(x, layer.weight, layer.bias))
    assert len(calls) == 1
    traced = torch.jit.trace(layer, x, check_trace=False)  # records the convolution, not the taps' loop
    assert "conv" in traced.graph.str() and len(calls) == 1
    torch.testing.assert_close(traced(x), _same_conv(x, layer.weight, layer.bias))


def test_tap_convolution_refuses_mismatched_channels():
    with pytest.raises(ValueError, match="take 3 input channels; the input has 4"):
        tap_conv2d(torch.zeros(1, 4, 5, 5), torch.zeros(1, 3, 4, 4), None)


def test_the_stride1_decoders_keep_the_parameter_names_of_earlier_runs():
    # checkpoints of runs saved before session 61 (a ZeroPad2d layer, then nn.Conv2d) load as
    # they were: the padding moved into the last layer, whose index and parameters stay
    dec = Decoder(ARCHITECTURES["small"], 1, 28, 16)
    assert list(dec.state_dict()) == [
        "fc.weight",
        "fc.bias",
        "net.1.weight",
        "net.2.weight",
        "net.2.bias",
        "net.2.running_mean",
        "net.2.running_var",
        "net.2.num_batches_tracked",
        "net.4.weight",
        "net.5.weight",
        "net.5.bias",
        "net.5.running_mean",
        "net.5.running_var",
        "net.5.num_batches_tracked",
        "net.8.weight",
        "net.8.bias",
    ]
    assert isinstance(dec.net[7], nn.Identity) and isinstance(dec.net[8], TapConv2d)
    old = nn.Sequential(*list(dec.net)[:7], nn.ZeroPad2d((1, 2, 1, 2)), nn.Conv2d(32, 1, 4))
    old.load_state_dict(dec.net.state_dict())
    h = torch.randn(2, 128, 7, 7)
    dec.eval(), old.eval()
    torch.testing.assert_close(dec.net(h), old(h), rtol=1e-5, atol=1e-5)


@pytest.mark.filterwarnings("ignore:`torch.jit.script:DeprecationWarning")
def test_the_decoder_with_the_tap_layer_scripts_and_takes_torch_func_transforms():
    # a hostile pass: torch.jit.script compiled the tap path and failed; torch.func refused the
    # autograd.Function; both worked with the plain convolution and must still
    torch.manual_seed(6)
    model = AutoEncoder(ModelConfig(arch="small", latent_dim=4), 1, 28).eval()
    z = torch.randn(3, 4)
    scripted = torch.jit.script(model.decoder)
    torch.testing.assert_close(scripted(z), model.decoder(z), rtol=1e-5, atol=1e-5)
    jacobian = torch.func.jacrev(model.decode)(z[:1])
    assert jacobian.shape == (1, 1, 28, 28, 1, 4)
    reference = torch.autograd.functional.jacobian(model.decode, z[:1])
    torch.testing.assert_close(jacobian, reference, rtol=1e-4, atol=1e-5)
    assert torch.func.vmap(model.decoder)(z.view(3, 1, 4)).shape == (3, 1, 1, 28, 28)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_the_tap_layer_keeps_the_models_dtype_and_layout(dtype):
    # a hostile pass: model.half() decoded to float32, and a 3-channel NCHW model's images came
    # out channels_last (view(n, -1) refused); the convolution's dtype and layout, as before
    torch.manual_seed(7)
    model = AutoEncoder(ModelConfig(arch="small", latent_dim=4), 3, 28).eval().to(dtype)
    images = model.decode(torch.randn(2, 4, dtype=dtype))
    assert images.dtype == dtype and images.is_contiguous() and images.view(2, -1).shape == (2, 3 * 28 * 28)
    model.to(memory_format=torch.channels_last)
    x = torch.randn(2, 32, 28, 28, dtype=dtype).to(memory_format=torch.channels_last)
    assert model.decoder.net[-1](x).is_contiguous(memory_format=torch.channels_last)
    assert "padding=same (1, 2)" in repr(model.decoder.net[-1])


def _both_paths(layer: nn.Module, x: torch.Tensor, monkeypatch) -> tuple[torch.Tensor, torch.Tensor]:
    """The layer's output by taps and by the padded convolution (MAX_CHANNELS 0)."""
    taps = layer(x)
    with monkeypatch.context() as m:
        m.setattr(TapConv2d, "MAX_CHANNELS", 0)
        return taps, layer(x)


def test_forward_mode_and_batched_gradients_go_through_the_tap_layer():
    # session 62's hostile pass: forward-mode AD raised NotImplementedError (no jvp), and
    # is_grads_batched or a vectorised Jacobian failed in the backward's in-place writes
    import torch.autograd.forward_ad as fwAD

    torch.manual_seed(8)
    layer = TapConv2d(3, 2, 4).double()
    x = torch.randn(2, 3, 5, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(layer, (x,), check_forward_ad=True, check_batched_grad=True)
    with fwAD.dual_level():
        tangent = torch.randn_like(x)
        dual = fwAD.unpack_dual(layer(fwAD.make_dual(x, tangent))).tangent
    ref = _same_conv(tangent, layer.weight, None)  # linear in x: the tangent's own convolution
    torch.testing.assert_close(dual, ref)
    jacobian = torch.autograd.functional.jacobian(layer, x, vectorize=True)
    reference = torch.autograd.functional.jacobian(lambda t: _same_conv(t, layer.weight, layer.bias), x)
    torch.testing.assert_close(jacobian, reference)


def test_the_decoder_with_the_tap_layer_traces_with_torch_fx():
    # session 62's hostile pass: symbolic_trace raised TraceError in the layer's checks
    torch.manual_seed(9)
    decoder = Decoder(ARCHITECTURES["small"], 1, 28, 8).eval()
    traced = torch.fx.symbolic_trace(decoder, concrete_args={"y": None})
    z = torch.randn(3, 8)
    torch.testing.assert_close(traced(z), decoder(z))


@pytest.mark.parametrize(
    "in_channels,side,weights_cl,input_cl",
    [(1, 7, False, False), (8, 7, True, False), (8, 7, False, True), (8, 1, False, False), (3, 6, True, True)],
)
def test_the_tap_layer_gives_the_convolutions_layout(in_channels, side, weights_cl, input_cl, monkeypatch):
    # session 62's hostile pass: a 1-channel NCHW input (channels_last-contiguous too) gave a
    # channels_last output that view(n, -1) refused, and channels_last weights were not heeded
    torch.manual_seed(10)
    layer = TapConv2d(in_channels, 3, 4)
    if weights_cl:
        layer = layer.to(memory_format=torch.channels_last)
    x = torch.randn(2, in_channels, side, side - 1 if side > 1 else 1)
    if input_cl:
        x = x.to(memory_format=torch.channels_last)
    taps, conv = _both_paths(layer, x, monkeypatch)
    torch.testing.assert_close(taps, conv)
    for layout in (torch.contiguous_format, torch.channels_last):
        assert taps.is_contiguous(memory_format=layout) == conv.is_contiguous(memory_format=layout)


def test_the_tap_layer_keeps_the_convolutions_nan_and_errors(monkeypatch):
    # session 62's hostile pass: a NaN weight at a tap that falls outside the image was dropped
    # (the padded convolution's 0 x NaN is NaN); a wrong channel count was a ValueError of its own
    torch.manual_seed(11)
    layer = TapConv2d(8, 3, 4)
    with torch.no_grad():
        layer.weight[0, 0, 3, 3] = float("nan")
    for side in (1, 5):
        taps, conv = _both_paths(layer, torch.randn(2, 8, side, side), monkeypatch)
        assert torch.equal(taps.isnan(), conv.isnan()) and taps.isnan().any()
    with pytest.raises(RuntimeError, match="expected input.*to have 8 channels"):
        layer(torch.randn(2, 5, 6, 6))


@pytest.mark.parametrize("kernel", [(3, 5), (4, 2), 7])
def test_the_tap_layer_takes_rectangular_kernels_and_leaves_large_ones_to_the_convolution(kernel, monkeypatch):
    torch.manual_seed(12)
    layer = TapConv2d(3, 1, kernel)
    kh, kw = layer.kernel_size
    x = torch.randn(2, 3, 6, 7, requires_grad=True)
    taps, conv = _both_paths(layer, x, monkeypatch)
    assert taps.shape == (2, 1, 6, 7)
    torch.testing.assert_close(taps, conv)
    grads = torch.autograd.grad(taps.square().sum(), (x, layer.weight))
    torch.testing.assert_close(grads, torch.autograd.grad(conv.square().sum(), (x, layer.weight)))
    calls = []
    monkeypatch.setattr(_TapConv, "apply", lambda *a: calls.append(a) or tap_conv2d(*a[:4]))
    layer(x)
    assert len(calls) == (kh * kw <= TapConv2d.MAX_TAPS)
