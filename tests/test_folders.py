"""Image folders and CelebA: generated on the fly, converted to the memory-mapped cache."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch
from PIL import Image

from wae.cli import main
from wae.config import UserError
from wae.data import load_folder
from wae.folders import celeba_files, list_images, load_image

from .conftest import Terminal


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
    with pytest.warns(UserWarning, match="skipped 2 unreadable") as said:
        data = load_folder(root, size=16)
    # each named with why (session 50: the names alone)
    warning = str(next(w.message for w in said if "skipped 2 unreadable" in str(w.message)))
    assert "broken.png (not an image file PIL can read)" in warning, warning
    assert "truncated.jpg (OSError: Truncated File Read)" in warning, warning
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
    with pytest.warns(
        UserWarning, match="broken.png \\(not an image file PIL can read\\) replaced by the next readable one"
    ):
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


def test_a_folders_name_in_the_report_renders_as_itself(tmp_path):
    # report.md's "- data: NAME" took the folder's name as Markdown: "im*gs*" rendered in italics
    from .conftest import rendered_markdown

    root = make_folder(tmp_path / "im*gs*_ [x](y)", count=16, bad=False)
    run = tmp_path / "run"
    args = ["train", "--data", str(root), "--image-size", "16", "--batch-size", "8", "--max-steps", "1"]
    assert main([*args, "--precision", "fp32", "--fit-sampler", "none", "--no-progress", "--out", str(run)]) == 0
    (line,) = [line for line in (run / "report.md").read_text().splitlines() if line.startswith("- data:")]
    assert rendered_markdown(line).startswith("data: im*gs*_ [x](y), "), line


def _viewed(im: Image.Image, grey: bool = False) -> list:
    from wae.folders import as_viewed

    return np.asarray(as_viewed(im, grey)).tolist()


def _image(mode: str, pixels: list) -> Image.Image:
    im = Image.new(mode, (len(pixels), 1))
    im.putdata(pixels)
    return im


# every Pillow mode against what a viewer shows (transparency on white); one row of pixels each
MODES = [
    ("1", [0, 1], True, [[0, 255]]),
    ("L", [0, 100, 255], True, [[0, 100, 255]]),
    ("LA", [(100, 0), (100, 255), (100, 128)], True, [[255, 100, 177]]),
    ("La", [(50, 128)], True, [[177]]),  # premultiplied: 50 is 100 at alpha 128
    ("RGB", [(255, 0, 0), (0, 0, 255)], False, [[[255, 0, 0], [0, 0, 255]]]),
    ("RGB", [(255, 0, 0), (0, 0, 255)], True, [[76, 29]]),  # ITU-R 601 luma
    ("RGBA", [(255, 0, 0, 0), (255, 0, 0, 255), (0, 0, 0, 128)], False, [[[255] * 3, [255, 0, 0], [127] * 3]]),
    ("RGBa", [(50, 0, 0, 128)], False, [[[177, 127, 127]]]),
    ("RGBX", [(10, 20, 30, 0)], False, [[[10, 20, 30]]]),
    ("CMYK", [(0, 0, 0, 0), (0, 255, 255, 0), (0, 0, 0, 255)], False, [[[255] * 3, [255, 0, 0], [0] * 3]]),
    ("YCbCr", [(128, 128, 128), (255, 128, 128)], False, [[[128] * 3, [255] * 3]]),
    ("LAB", [(255, 128, 128), (0, 128, 128)], True, [[255, 0]]),  # Pillow stores a, b + 128
    ("HSV", [(0, 255, 255), (0, 0, 128)], False, [[[255, 0, 0], [128] * 3]]),
    ("I;16", [0, 25700, 65535], True, [[0, 100, 255]]),  # scaled from [0, 65535], not clipped
    ("I;16B", [0, 25700, 65535], True, [[0, 100, 255]]),
    ("I;16L", [0, 25700, 65535], True, [[0, 100, 255]]),
    ("I", [-5, 32768, 65535, 70000], True, [[0, 128, 255, 255]]),
    ("F", [0.0, 0.5, 1.0, 2.0, float("nan")], True, [[0, 128, 255, 255, 0]]),
]


@pytest.mark.parametrize("mode,pixels,grey,expected", MODES, ids=[f"{m[0]}-{'grey' if m[2] else 'rgb'}" for m in MODES])
def test_every_pillow_mode_is_read_as_a_viewer_shows_it(mode, pixels, grey, expected):
    got = _viewed(_image(mode, pixels), grey)
    assert np.abs(np.array(got, dtype=int) - np.array(expected)).max() <= 1, got


def test_palette_transparency_and_colour_keys_composite_on_white(tmp_path):
    palette = Image.new("P", (2, 1))
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    palette.putdata([0, 1])
    palette.save(tmp_path / "opaque.png")
    palette.save(tmp_path / "keyed.png", transparency=1)  # palette entry 1 transparent
    grey = Image.new("L", (2, 1))
    grey.putdata([7, 9])
    grey.save(tmp_path / "grey-key.png", transparency=9)  # a tRNS colour key
    with Image.open(tmp_path / "opaque.png") as im:
        assert _viewed(im) == [[[0, 0, 0], [255, 0, 0]]]
    with Image.open(tmp_path / "keyed.png") as im:
        assert _viewed(im) == [[[0, 0, 0], [255, 255, 255]]]
    with Image.open(tmp_path / "grey-key.png") as im:
        assert _viewed(im, grey=True) == [[7, 255]]


def test_16_bit_png_is_scaled_not_clipped(tmp_path):
    Image.fromarray(np.array([[0, 65535], [25700, 32768]], dtype=np.uint16)).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as im:
        assert im.mode.startswith("I")
    image = load_image(tmp_path / "deep.png", 2, grey=True)
    assert image is not None and image.tolist() == [[[0, 255], [100, 128]]]


def test_exif_orientation_is_applied(tmp_path):
    array = np.zeros((2, 4, 3), dtype=np.uint8)
    array[0, 0] = 255  # top-left white, stored landscape
    exif = Image.new("RGB", (1, 1)).getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.fromarray(array).save(tmp_path / "turned.png", exif=exif)
    with Image.open(tmp_path / "turned.png") as im:
        shown = np.array(_viewed(im, grey=True))
    assert shown.shape == (4, 2) and shown[0, 1] == 255 and shown.sum() == 255  # portrait, top-right


def test_fifos_dangling_links_and_link_loops_are_skipped_without_opening(tmp_path):
    import os

    root = make_folder(tmp_path / "imgs", count=6, bad=False)
    os.mkfifo(root / "x.png")  # opening it would block for ever
    (root / "gone.png").symlink_to(root / "missing.png")
    (root / "loop.png").symlink_to(root / "loop.png")
    (root / "alias.png").symlink_to(root / "part1" / "img001.jpg")  # a good link is followed
    with pytest.warns(UserWarning, match="skipped 3 of 10 image names that are not regular files"):
        files = list_images(root)
    assert len(files) == 7 and root / "alias.png" in files
    only = tmp_path / "fifo-only"
    only.mkdir()
    os.mkfifo(only / "a.png")
    with pytest.raises(UserError, match="no readable image files .* 1 image name.s. are not regular files"):
        list_images(only)


def test_cache_dir_that_is_a_file_or_unwritable_is_refused_before_decoding(tmp_path, monkeypatch, capsys):
    root = make_folder(tmp_path / "imgs", count=12, bad=False)
    (tmp_path / "a-file").write_text("")
    args = ["train", "--data", str(root), "--image-size", "16", "--batch-size", "4", "--no-progress"]
    for cache in (tmp_path / "a-file", "/proc/wae-cache"):  # a file; a read-only file system
        monkeypatch.setenv("WAE_CACHE_DIR", str(cache))
        assert main([*args, "--out", str(tmp_path / "run")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "cannot write the image cache" in err and "--no-cache" in err
    assert not (tmp_path / "run").exists()


def test_image_size_is_refused_before_caching_and_the_bar_obeys_no_progress(tmp_path, capsys):
    root = make_folder(tmp_path / "imgs", count=40, bad=False)
    args = ["train", "--data", str(root), "--batch-size", "8", "--max-steps", "1", "--no-progress"]
    assert main([*args, "--image-size", "30", "--out", str(tmp_path / "r1")]) == 2
    assert "cannot take 30x30 images" in capsys.readouterr().err
    assert not (tmp_path / "cache").exists()  # refused before any image was decoded
    terminal = Terminal()  # a bar is drawn only on a terminal: captured stderr would show none anyway
    with contextlib.redirect_stderr(terminal):
        assert main([*args, "--image-size", "16", "--precision", "fp32", "--out", str(tmp_path / "r2")]) == 0
    assert "caching" not in terminal.getvalue() and "report:" in terminal.getvalue()


def test_every_command_that_reads_a_runs_folder_takes_no_progress_for_its_first_conversion(tmp_path):
    # a script passing --no-progress to every command once got "unrecognized arguments" from all
    # but train and toy, and reconstruct, interpolate, report and compare drew the caching bar of
    # a removed cache on a terminal with no way to turn it off
    import shutil

    root = make_folder(tmp_path / "imgs", count=40, bad=False)
    run = tmp_path / "run"
    tiny = ["--image-size", "16", "--batch-size", "8", "--max-steps", "1", "--arch", "fast", "--precision", "fp32"]
    assert main(["train", "--data", str(root), *tiny, "--fit-sampler", "none", "--no-progress", "--out", str(run)]) == 0
    commands = [
        ["reconstruct", str(run), "--n", "4", "--out", str(tmp_path / "r.png")],
        ["evaluate", str(run), "--n", "8", "--no-fid", "--out", str(tmp_path / "m.json")],
        ["fit-sampler", str(run), "--components", "2"],
        ["interpolate", str(run), "--pairs", "1", "--steps", "3", "--out", str(tmp_path / "i.png")],
        ["report", str(run), "--out", str(tmp_path / "r.html")],
        ["compare", str(run), "--out", str(tmp_path / "cmp")],
    ]
    for argv, flag in [(commands[0], [])] + [(argv, ["--no-progress"]) for argv in commands]:
        shutil.rmtree(tmp_path / "cache")  # the next command converts the folder again
        terminal = Terminal()
        with contextlib.redirect_stderr(terminal):
            assert main([*argv, *flag]) == 0, argv
        assert ("caching" in terminal.getvalue()) == (not flag), (argv, terminal.getvalue())


def test_an_icc_profile_is_applied_and_a_broken_one_ignored(tmp_path):
    from PIL import ImageCms

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.new("RGBA", (2, 1), (200, 100, 50, 255)).save(tmp_path / "tagged.png", icc_profile=srgb)
    with Image.open(tmp_path / "tagged.png") as im:
        assert "icc_profile" in im.info and _viewed(im) == [[[200, 100, 50]] * 2]  # sRGB to sRGB: unchanged
    broken = Image.new("RGB", (1, 1), (200, 100, 50))
    broken.info["icc_profile"] = b"not a profile"
    assert _viewed(broken) == [[[200, 100, 50]]]


def test_a_budget_keeps_back_half_an_epoch_to_encode_images_read_from_files(tmp_path, monkeypatch):
    """Encoding the training codes for the ex-post sampler reads every image again when they are
    read from files in every pass (--no-cache): half an epoch is kept back for it then, a tenth
    for images in memory (session 47: half an epoch cost the demo an epoch of five on a slow host)."""
    import wae.train as train

    shares: list[float] = []

    def within(budget, epoch_s, elapsed_s, epochs, sampler, done=1, fit_s=0.0, encode_share=0.5):
        shares.append(encode_share)
        return epochs

    monkeypatch.setattr(train, "epochs_within", within)
    monkeypatch.setattr(train, "fit_seconds", lambda kind, codes, dim, fit: 1.0)
    root = make_folder(tmp_path / "imgs", count=60, bad=False)
    args = ["train", "--data", str(root), "--image-size", "16", "--batch-size", "8", "--epochs", "1"]
    args += ["--time-budget", "5", "--precision", "fp32", "--no-progress", "--arch", "fast"]
    for cache, share in (("--no-cache", train.ENCODE_SHARE["files"]), ("--cache", train.ENCODE_SHARE["memory"])):
        shares.clear()
        workers = ["--workers", "0"] if cache == "--no-cache" else []
        assert main([*args, cache, *workers, "--out", str(tmp_path / f"run{cache}")]) == 0
        assert shares and set(shares) == {share}
        assert (tmp_path / f"run{cache}" / "sampler-gmm.npz").is_file()
    assert train.ENCODE_SHARE == {"memory": 0.1, "files": 0.5}
