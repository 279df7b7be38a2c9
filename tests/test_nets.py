"""Output shapes of every architecture and the structure the paper describes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from wae.config import ModelConfig
from wae.model import AutoEncoder
from wae.nets import ARCHITECTURES, Adversary, Decoder, Encoder, count_parameters


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
