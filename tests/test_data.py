"""Datasets: the embedded MNIST and its checksum, users' .npz files, batching."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from wae.config import UserError
from wae.data import batches, from_tensor, load_mnist, load_npz, make_synthetic, mnist_path, to_model_range


def test_embedded_mnist_loads_with_the_standard_split():
    data = load_mnist()
    assert data.train.shape == (60000, 1, 28, 28) and data.test.shape == (10000, 1, 28, 28)
    assert data.train.dtype == torch.uint8
    assert data.train.float().mean().item() == pytest.approx(33.3184, abs=1e-3)


def test_altered_or_missing_mnist_is_a_clear_error(tmp_path):
    copy = tmp_path / "mnist.npz"
    shutil.copy(mnist_path(), copy)
    with open(copy, "r+b") as f:
        f.seek(1000)
        f.write(b"\x00\x01\x02")
    with pytest.raises(UserError, match="altered or corrupt"):
        load_mnist(copy)
    with pytest.raises(UserError, match="not found"):
        load_mnist(tmp_path / "absent.npz")


def test_npz_layouts_are_read_as_nchw(tmp_path):
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (20, 8, 8), dtype=np.uint8)
    np.savez(tmp_path / "grey.npz", x=grey)
    data = load_npz(tmp_path / "grey.npz")
    assert data.train.shape == (18, 1, 8, 8) and data.test.shape == (2, 1, 8, 8)
    assert torch.equal(data.train[:, 0], torch.from_numpy(grey[:18]))
    rgb = rng.random((10, 8, 8, 3)).astype(np.float32)
    np.savez(tmp_path / "rgb.npz", x_train=rgb, x_test=rgb[:4])
    data = load_npz(tmp_path / "rgb.npz")
    assert data.train.shape == (10, 3, 8, 8) and data.test.shape == (4, 3, 8, 8)
    assert torch.allclose(data.train.permute(0, 2, 3, 1), torch.from_numpy(rgb))


@pytest.mark.parametrize(
    "arrays,message",
    [
        ({"x": np.zeros((5, 8, 8), dtype=np.int64)}, "dtype"),
        ({"x": np.full((5, 8, 8), 2.0, dtype=np.float32)}, "outside"),
        ({"x": np.full((5, 8, 8), np.nan, dtype=np.float32)}, "NaN"),
        ({"x": np.zeros((5, 8, 6), dtype=np.uint8)}, "square"),
        ({"x": np.zeros((5, 8), dtype=np.uint8)}, "shape"),
        ({"x": np.zeros((0, 8, 8), dtype=np.uint8)}, "no images"),
        ({"images": np.zeros((5, 8, 8), dtype=np.uint8)}, "no 'x_train'"),
        ({"x_train": np.zeros((5, 8, 8), dtype=np.uint8), "x_test": np.zeros((5, 4, 4), dtype=np.uint8)}, "differ"),
    ],
)
def test_bad_npz_files_give_clear_errors(tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(UserError, match=message):
        load_npz(tmp_path / "bad.npz")


def test_not_an_npz_is_a_clear_error(tmp_path):
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(UserError, match="not a readable"):
        load_npz(tmp_path / "text.npz")
    with pytest.raises(UserError, match="not found"):
        load_npz(tmp_path / "nothing.npz")


def test_batches_cover_each_image_once_per_epoch_and_are_seeded():
    images = torch.arange(103).view(103, 1, 1, 1)
    epoch0 = torch.cat(list(batches(images, 10, seed=1, epoch=0))).flatten()
    assert len(epoch0) == 100 and len(set(epoch0.tolist())) == 100
    again = torch.cat(list(batches(images, 10, seed=1, epoch=0))).flatten()
    assert torch.equal(epoch0, again)
    other = torch.cat(list(batches(images, 10, seed=1, epoch=1))).flatten()
    assert not torch.equal(epoch0, other)
    resumed = torch.cat(list(batches(images, 10, seed=1, epoch=0, start=4))).flatten()
    assert torch.equal(resumed, epoch0[40:])


def test_model_range_conversion():
    images = torch.tensor([0, 255], dtype=torch.uint8).view(2, 1, 1, 1)
    assert to_model_range(images).flatten().tolist() == [0.0, 1.0]
    assert to_model_range(images, "pm1").flatten().tolist() == [-1.0, 1.0]


def test_synthetic_data_is_seeded_and_in_range():
    a, b = make_synthetic(64, 16, seed=3), make_synthetic(64, 16, seed=3)
    assert torch.equal(a.train, b.train) and a.train.shape == (64, 1, 16, 16) and len(a.test) == 16
    assert a.train.min() >= 0 and a.train.max() <= 1


def test_from_tensor_holds_out_a_test_split():
    data = from_tensor(torch.rand(50, 16, 16))
    assert data.train.shape == (45, 1, 16, 16) and data.test.shape == (5, 1, 16, 16)
