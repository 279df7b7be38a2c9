"""Image folders and CelebA: generated on the fly, converted to the memory-mapped cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from wae.cli import main
from wae.config import UserError
from wae.data import load_folder
from wae.folders import celeba_files, list_images, load_image


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("WAE_CACHE_DIR", str(tmp_path / "cache"))


def _picture(seed: int, width: int, height: int, mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(seed)
    channels = 3 if mode == "RGB" else 1
    array = rng.integers(0, 256, (height, width, channels), dtype=np.uint8)
    return Image.fromarray(array[..., 0] if channels == 1 else array, mode)


def make_folder(root, count: int = 40, bad: bool = True):
    """``count`` images of mixed formats, sizes and modes in nested folders, and two bad files."""
    for i in range(count):
        sub = root / f"part{i % 3}" / ("deep" if i % 5 == 0 else "")
        sub.mkdir(parents=True, exist_ok=True)
        picture = _picture(i, 30 + i % 7, 24 + i % 5, "L" if i % 4 == 0 else "RGB")
        picture.save(sub / f"img{i:03d}.{'jpg' if i % 2 else 'png'}")
    (root / "notes.txt").write_text("not an image")
    if bad:
        (root / "part0" / "broken.png").write_bytes(b"this is not a png")
        good = root / "part1" / "img001.jpg"
        (root / "part1" / "truncated.jpg").write_bytes(good.read_bytes()[:200])
    return root


def test_folder_becomes_uint8_tensors_and_bad_files_are_counted(tmp_path):
    root = make_folder(tmp_path / "imgs")
    assert len(list_images(root)) == 42  # 40 images + 2 bad ones; notes.txt is not listed
    with pytest.warns(UserWarning, match="skipped 2 unreadable"):
        data = load_folder(root, size=16)
    assert data.train.dtype == torch.uint8 and data.train.shape[1:] == (3, 16, 16)
    assert len(data.train) + len(data.test) == 40 and len(data.test) == 4


def test_cache_is_reused_and_follows_changes(tmp_path):
    root = make_folder(tmp_path / "imgs", count=12, bad=False)
    first = load_folder(root, size=8, grey=True)
    assert first.train.shape[1:] == (1, 8, 8)
    cached = list((tmp_path / "cache" / "datasets").glob("*.npy"))
    assert len(cached) == 1
    again = load_folder(root, size=8, grey=True)
    assert torch.equal(torch.cat([again.train, again.test]), torch.cat([first.train, first.test]))
    assert len(list((tmp_path / "cache" / "datasets").glob("*.npy"))) == 1  # no rebuild
    _picture(99, 40, 40).save(root / "part0" / "deep" / "img000.png")  # a changed file: a new cache entry
    changed = load_folder(root, size=8, grey=True)
    assert len(list((tmp_path / "cache" / "datasets").glob("*.npy"))) == 2
    assert not torch.equal(changed.train[0], first.train[0])


def test_load_image_crops_the_centre(tmp_path):
    array = np.zeros((218, 178, 3), dtype=np.uint8)
    array[39:179, 19:159] = 255  # a white 140x140 centre square on black
    Image.fromarray(array).save(tmp_path / "face.png")
    image = load_image(tmp_path / "face.png", 64, grey=False, crop=140)
    assert image is not None and image.shape == (3, 64, 64)
    assert image.min() == 255  # the crop is exactly the white square
    whole = load_image(tmp_path / "face.png", 64, grey=True)
    assert whole is not None and whole.shape == (1, 64, 64) and whole.min() == 0
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff garbage")
    assert load_image(tmp_path / "bad.jpg", 64, grey=False) is None


def make_celeba(root, count: int = 30):
    images = root / "img_align_celeba"
    images.mkdir(parents=True)
    lines = []
    for i in range(1, count + 1):
        _picture(i, 178, 218).save(images / f"{i:06d}.jpg")
        lines.append(f"{i:06d}.jpg {0 if i <= 20 else 1 if i <= 24 else 2}")
    (root / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    return root


def test_celeba_uses_the_official_split_and_the_paper_crop(tmp_path):
    root = make_celeba(tmp_path / "celeba")
    train, test = celeba_files(root)
    assert len(train) == 20 and len(test) == 6
    data = load_folder(root, size=64, crop=140, celeba=True)
    assert data.train.shape == (20, 3, 64, 64) and data.test.shape == (6, 3, 64, 64)
    (root / "list_eval_partition.txt").write_text("000001.jpg zero\n")
    with pytest.raises(UserError, match="partition 0, 1 or 2"):
        celeba_files(root)


def test_bad_folders_are_clear_errors(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.png").write_bytes(b"nope")
    (tmp_path / "junk" / "b.jpg").write_bytes(b"nope")
    assert main(["train", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "r1")]) == 2
    assert main(["train", "--data", str(tmp_path / "junk"), "--out", str(tmp_path / "r2")]) == 2
    err = capsys.readouterr().err
    assert "no image files" in err and "none of the 2 image files could be read" in err
    assert not (tmp_path / "r1").exists() and not (tmp_path / "r2").exists()


def test_train_on_an_image_folder_from_the_command_line(tmp_path, capsys):
    root = make_folder(tmp_path / "imgs", count=60, bad=False)
    run = tmp_path / "run"
    args = ["train", "--data", str(root), "--image-size", "28", "--batch-size", "8", "--max-steps", "3"]
    assert main([*args, "--precision", "fp32", "--no-progress", "--out", str(run)]) == 0
    assert (run / "samples.png").is_file()
    assert main(["sample", str(run), "--n", "4", "--out", str(tmp_path / "s.npz")]) == 0
    assert np.load(tmp_path / "s.npz")["images"].shape == (4, 28, 28, 3)


@pytest.mark.slow  # the paper's CelebA networks: about 50 s on 2 CPU cores without native bf16
def test_celeba_paper_preset_smoke_run(tmp_path, capsys):
    root = make_celeba(tmp_path / "celeba")
    run = tmp_path / "run"
    args = ["train", "--preset", "celeba-paper", "--data", str(root), "--batch-size", "4", "--max-steps", "1"]
    assert main([*args, "--precision", "bf16", "--no-progress", "--out", str(run)]) == 0
    assert '"step": 1' in capsys.readouterr().out


def test_streamed_batches_are_the_cached_batches(tmp_path):
    from wae.data import batches, stream

    root = make_folder(tmp_path / "imgs", count=30, bad=False)
    cached = load_folder(root, size=12)
    streamed = load_folder(root, size=12, cache=False)
    assert torch.equal(streamed.test, cached.test) and streamed.train.shape == cached.train.shape
    expected = list(batches(cached.train, 8, seed=4, epoch=1, start=1))
    for workers in (0, 1):
        got = list(stream(streamed.train, 8, seed=4, epoch=1, start=1, workers=workers))
        assert len(got) == len(expected) == 2
        assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))
    shard = list(stream(streamed.train, 8, seed=4, epoch=1, start=1, rank=1, world=2, workers=0))
    assert torch.equal(shard[0], expected[0][4:])


def test_a_bad_file_read_while_streaming_is_replaced_and_counted(tmp_path):
    from wae.folders import ImageFiles

    root = make_folder(tmp_path / "imgs", count=6)
    files = list_images(root)
    broken = files.index(root / "part0" / "broken.png")
    images = ImageFiles(files, 10, grey=False)
    with pytest.warns(UserWarning, match="broken.png replaced by the next readable one"):
        image = images[broken]
    assert image.shape == (3, 10, 10) and images.unreadable >= 1
    assert torch.equal(image, torch.from_numpy(load_image(files[broken + 1], 10, False).copy()))


def test_train_on_an_image_folder_without_a_cache(tmp_path, capsys):
    root = make_folder(tmp_path / "imgs", count=40, bad=False)
    run = tmp_path / "run"
    args = ["train", "--data", str(root), "--image-size", "16", "--batch-size", "8", "--max-steps", "3"]
    assert main([*args, "--no-cache", "--workers", "1", "--precision", "fp32", "--no-progress", "--out", str(run)]) == 0
    assert '"step": 3' in capsys.readouterr().out and (run / "samples.png").is_file()
    assert not (tmp_path / "cache").exists()  # nothing was converted
