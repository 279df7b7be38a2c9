"""Bad input, tried systematically: every case must give exit code 2, one line on stderr, no
traceback, and leave the folder it ran in exactly as it was.

``python -m tests.test_bad_input`` prints the cases and the messages as the Markdown table of
docs/reliability.md.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from wae import checkpoint as ckpt
from wae.cli import main

from .conftest import SMALL_RUN, run_cli

TINY = [*SMALL_RUN]


def _npz(name: str, **arrays: np.ndarray) -> Callable[[Path, Path], list[str]]:
    def setup(tmp: Path, run: Path) -> list[str]:
        np.savez(tmp / name, **arrays)
        return ["train", "--data", name, "--no-progress"]

    return setup


def _csv(text: str, *flags: str) -> Callable[[Path, Path], list[str]]:
    """A table t.csv with ``text``, trained on with ``flags``."""

    def setup(tmp: Path, run: Path) -> list[str]:
        (tmp / "t.csv").write_text(text)
        return ["train", "--data", "t.csv", "--no-progress", *flags]

    return setup


def _table_array(name: str, *flags: str, **arrays: np.ndarray) -> Callable[[Path, Path], list[str]]:
    """A table .npy (one array, ``x``) or .npz (``arrays``), trained on with ``flags``."""

    def setup(tmp: Path, run: Path) -> list[str]:
        if name.endswith(".npy"):
            np.save(tmp / name, arrays["x"])
        else:
            np.savez(tmp / name, **arrays)
        return ["train", "--data", name, "--no-progress", *flags]

    return setup


TABLE = "a,b\n" + "".join(f"{i},{i * i % 7}\n" for i in range(40))


def _argv(*argv: str) -> Callable[[Path, Path], list[str]]:
    return lambda tmp, run: [str(run) if a == "RUN" else a for a in argv]


def _copy_run(edit: Callable[[Path], None], *argv: str) -> Callable[[Path, Path], list[str]]:
    """A copy of the trained run, damaged by ``edit``, then the command ``argv`` on it."""

    def setup(tmp: Path, run: Path) -> list[str]:
        copy = tmp / "copied-run"
        shutil.copytree(run, copy)
        edit(copy)
        return [str(copy) if a == "RUN" else a for a in argv]

    return setup


def _truncate_checkpoints(run: Path) -> None:
    for path in ckpt.run_checkpoints(run):
        path.write_bytes(path.read_bytes()[:100])


def _checkpoint_format_2(run: Path) -> None:
    for path in ckpt.run_checkpoints(run):
        payload = ckpt.load(path)
        payload["format"] = 2
        ckpt.save_atomic(payload, path)


class _Exploit:
    def __reduce__(self) -> tuple[object, ...]:
        return (os.system, ("touch pwned-marker",))


def _crafted_pickle(run: Path) -> None:
    for path in ckpt.run_checkpoints(run):
        path.write_bytes(pickle.dumps({"format": 1, "model": _Exploit()}, protocol=2))


def _edit_config(run: Path, change: Callable[[dict], None]) -> None:
    config = json.loads((run / "config.json").read_text())
    change(config)
    (run / "config.json").write_text(json.dumps(config))


def _other_latent_dim(run: Path) -> None:
    _edit_config(run, lambda c: c["model"].update(latent_dim=3))


def _unknown_key(run: Path) -> None:
    _edit_config(run, lambda c: c["loss"].update(lambda_=1.0))


def _remove_checkpoints(run: Path) -> None:
    shutil.rmtree(run / "checkpoints")


def _out_under_a_file(tmp: Path, run: Path) -> list[str]:
    (tmp / "a-file").write_text("")
    return ["train", *TINY, "--out", "a-file/run"]


def _existing_run(tmp: Path, run: Path) -> list[str]:
    (tmp / "taken").mkdir()
    (tmp / "taken" / "config.json").write_text("{}")
    return ["train", *TINY, "--out", "taken"]


def _not_a_run(tmp: Path, run: Path) -> list[str]:
    (tmp / "mine").mkdir()
    (tmp / "mine" / "notes.txt").write_text("keep me")
    return ["train", *TINY, "--out", "mine", "--overwrite"]


def _another_tools_config(tmp: Path, run: Path) -> list[str]:
    # a project folder with a config.json of its own: --overwrite deleted the whole project
    (tmp / "project" / "src").mkdir(parents=True)
    (tmp / "project" / "config.json").write_text('{"name": "my-project"}')
    (tmp / "project" / "src" / "important.py").write_text("keep me")
    return ["train", *TINY, "--out", "project", "--overwrite"]


def _run_with_users_files(tmp: Path, run: Path) -> list[str]:
    # a run folder (a wae config.json) with the user's own file in it
    shutil.copytree(run, tmp / "mine", ignore=shutil.ignore_patterns(".lock"))
    (tmp / "mine" / "thesis.tex").write_text("keep me")
    return ["train", *TINY, "--out", "mine", "--overwrite"]


def _folder_as_data(tmp: Path, run: Path) -> list[str]:
    (tmp / "folder.npz").mkdir()
    return ["train", "--data", "folder.npz"]


def _text_as_npz(tmp: Path, run: Path) -> list[str]:
    (tmp / "text.npz").write_text("not an archive")
    return ["train", "--data", "text.npz"]


def _image_size_not_supported(tmp: Path, run: Path) -> list[str]:
    np.savez(tmp / "odd.npz", x=np.zeros((64, 30, 30), dtype=np.uint8))
    return ["train", "--data", "odd.npz", "--batch-size", "16"]


def _exported(edit: Callable[[Path], None], *argv: str) -> Callable[[Path, Path], list[str]]:
    """The trained run exported into ``model`` in the case's folder, damaged by ``edit``, then
    the command ``argv``."""

    def setup(tmp: Path, run: Path) -> list[str]:
        from wae.export import export_run

        export_run(run, tmp / "model")
        edit(tmp / "model")
        return _argv(*argv)(tmp, run)

    return setup


def _with(make: Callable[[Path], None], *argv: str) -> Callable[[Path, Path], list[str]]:
    """``make`` something in the case's folder, then the command ``argv``."""

    def setup(tmp: Path, run: Path) -> list[str]:
        make(tmp)
        return _argv(*argv)(tmp, run)

    return setup


def _npz_huge_header(tmp: Path, run: Path) -> list[str]:
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False, "shape": (10**9, 28, 28)})
    with zipfile.ZipFile(tmp / "huge.npz", "w") as archive:
        archive.writestr("x.npy", header.getvalue() + b"\0" * 1000)
    return ["train", "--data", "huge.npz"]


def _npz_bad_crc(tmp: Path, run: Path) -> list[str]:
    np.savez(tmp / "crc.npz", x=np.full((20, 8, 8), 7, dtype=np.uint8))
    data = bytearray((tmp / "crc.npz").read_bytes())
    data[data.find(bytes([7] * 16))] = 8  # one pixel changed, the CRC not
    (tmp / "crc.npz").write_bytes(bytes(data))
    return ["train", "--data", "crc.npz"]


def _npz_objects(tmp: Path, run: Path) -> list[str]:
    np.savez(tmp / "objects.npz", x=np.array([{"pixels": 1}] * 20, dtype=object))
    return ["train", "--data", "objects.npz"]


def _folder_with(make: Callable[[Path], None], *flags: str) -> Callable[[Path, Path], list[str]]:
    def setup(tmp: Path, run: Path) -> list[str]:
        (tmp / "images").mkdir()
        make(tmp / "images")
        return ["train", "--data", "images", *flags]

    return setup


def _two_pngs(folder: Path) -> None:
    for i in range(2):
        Image.new("L", (8, 8), i).save(folder / f"{i}.png")


def _mixture(d: int = 8, **change: np.ndarray) -> Callable[[Path], None]:
    """Write RUN/sampler-gmm.npz: two standard components in d dimensions, with ``change``."""

    def edit(run: Path) -> None:
        arrays = {"weights": np.array([0.5, 0.5]), "means": np.zeros((2, d)), "covariances": np.stack([np.eye(d)] * 2)}
        np.savez(run / "sampler-gmm.npz", **{**arrays, **change})

    return edit


def _huge_mixture(run: Path) -> None:
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (10**9, 8, 8)})
    with zipfile.ZipFile(run / "sampler-gmm.npz", "w") as archive:
        for name, array in (("weights", np.ones(1)), ("means", np.zeros((1, 8)))):
            member = io.BytesIO()
            np.save(member, array)
            archive.writestr(f"{name}.npy", member.getvalue())
        archive.writestr("covariances.npy", header.getvalue() + b"\0" * 100)


def _edit_checkpoints(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def edit(run: Path) -> None:
        for path in ckpt.run_checkpoints(run):
            payload = ckpt.load(path)
            change(payload)
            ckpt.save_atomic(payload, path)

    return edit


def _write_config(text: bytes) -> Callable[[Path], None]:
    return lambda run: (run / "config.json").write_bytes(text)


def _compare_with_damaged(tmp: Path, run: Path) -> list[str]:
    copy = tmp / "copied-run"
    shutil.copytree(run, copy)
    (copy / "config.json").write_text("[]")
    return ["compare", str(run), str(copy), "--out", "comparison"]


def _compare_without_data(tmp: Path, run: Path) -> list[str]:
    copy = tmp / "copied-run"
    shutil.copytree(run, copy)
    _edit_config(copy, lambda c: c["data"].update(dataset="npz", path="gone.npz"))
    _edit_checkpoints(lambda p: p["config"]["data"].update(dataset="npz", path="gone.npz"))(copy)
    return ["compare", str(run), str(copy), "--out", "comparison"]


def _nan_weights(payload: dict) -> None:
    weight = next(k for k, v in payload["model"].items() if k.startswith("decoder") and v.is_floating_point())
    payload["model"][weight] = payload["model"][weight] * float("nan")


def _celeba_bad_split(tmp: Path, run: Path) -> list[str]:
    (tmp / "celeba" / "img_align_celeba").mkdir(parents=True)
    (tmp / "celeba" / "list_eval_partition.txt").write_bytes(b"\xff\xfe000001.jpg 0\n")
    return ["train", "--data", "celeba"]


NOT_PD = np.stack([-np.eye(8), np.eye(8)])
u8 = np.uint8
# (group, what is wrong, how to set it up)
CASES: list[tuple[str, str, Callable[[Path, Path], list[str]]]] = [
    ("flag", "unknown preset", _argv("train", "--preset", "nope")),
    ("flag", "unknown objective", _argv("train", "--objective", "wgan")),
    ("flag", "unknown flag", _argv("train", "--lamda", "3")),
    ("flag", "unknown command", _argv("frobnicate")),
    ("flag", "negative lambda", _argv("train", "--lam", "-1")),
    ("flag", "lambda NaN", _argv("train", "--lam", "nan")),
    ("flag", "lambda infinite", _argv("train", "--lam", "inf")),
    ("flag", "batch size 0", _argv("train", "--batch-size", "0")),
    ("flag", "batch size 1 (no MMD pairs)", _argv("train", "--batch-size", "1")),
    ("flag", "batch larger than the dataset", _argv("train", *TINY[:2], "--batch-size", "1000")),
    ("flag", "latent dimension 0", _argv("train", "--latent-dim", "0")),
    ("flag", "latent dimension not a number", _argv("train", "--latent-dim", "eight")),
    ("flag", "negative epochs", _argv("train", "--epochs", "-2")),
    ("flag", "learning rate 0", _argv("train", "--lr", "0")),
    ("flag", "fp16 on the CPU", _argv("train", *TINY[:2], "--device", "cpu", "--precision", "fp16")),
    ("flag", "unknown device", _argv("train", "--device", "tpu")),
    ("flag", "negative learning rate", _argv("train", "--lr", "-1e-3")),
    ("flag", "prior variance 0", _argv("train", "--prior-var", "0")),
    ("flag", "cost scale 0", _argv("train", "--cost-scale", "0")),
    ("flag", "negative input noise", _argv("train", "--input-noise", "-0.1")),
    ("flag", "prior trick with a non-Gaussian prior", _argv("train", "--objective", "gan", "--prior", "sphere", "--prior-trick")),
    ("flag", "keep 0 checkpoints", _argv("train", "--keep-checkpoints", "0")),
    ("flag", "a training flag with --resume", _argv("train", "--resume", "RUN", "--lam", "3")),
    ("flag", "sample count 0", _argv("sample", "RUN", "--n", "0", "--out", "s.png")),
    ("flag", "interpolation steps 0", _argv("interpolate", "RUN", "--steps", "0", "--out", "i.png")),
    ("path", "missing data file", _argv("train", "--data", "no-such-file.npz")),
    ("path", "data path is a folder", _folder_as_data),
    ("path", "output folder under a file (unwritable)", _out_under_a_file),
    ("path", "existing run folder without --resume or --overwrite", _existing_run),
    ("path", "--overwrite on a folder that is not a run", _not_a_run),
    ("path", "--resume of a missing folder", _argv("train", "--resume", "no-such-run")),
    ("path", "sample from a missing run", _argv("sample", "no-such-run", "--out", "s.png")),
    ("path", "sample to an unknown file type", _argv("sample", "RUN", "--out", "s.jpg")),
    ("path", "sample into a missing folder", _argv("sample", "RUN", "--out", "no-such-dir/s.png")),
    ("data", "npz: integer dtype", _npz("d.npz", x=np.zeros((20, 8, 8), dtype=np.int64))),
    ("data", "npz: floats outside [0, 1]", _npz("d.npz", x=np.full((20, 8, 8), 2.0, dtype=np.float32))),
    ("data", "npz: NaN pixels", _npz("d.npz", x=np.full((20, 8, 8), np.nan, dtype=np.float32))),
    ("data", "npz: non-square images", _npz("d.npz", x=np.zeros((20, 8, 6), dtype=u8))),
    ("data", "npz: wrong number of dimensions", _npz("d.npz", x=np.zeros((20, 64), dtype=u8))),
    ("data", "npz: 4 channels", _npz("d.npz", x=np.zeros((20, 8, 8, 4), dtype=u8))),
    ("data", "npz: empty array", _npz("d.npz", x=np.zeros((0, 8, 8), dtype=u8))),
    ("data", "npz: no x_train or x", _npz("d.npz", images=np.zeros((20, 8, 8), dtype=u8))),
    ("data", "npz: test images of another size", _npz("d.npz", x_train=np.zeros((20, 8, 8), dtype=u8), x_test=np.zeros((5, 4, 4), dtype=u8))),
    ("data", "npz: grey train, RGB test (mixed modes)", _npz("d.npz", x_train=np.zeros((20, 8, 8), dtype=u8), x_test=np.zeros((5, 8, 8, 3), dtype=u8))),
    ("data", "npz: two images only", _npz("d.npz", x=np.zeros((2, 8, 8), dtype=u8))),
    ("data", "not an npz file", _text_as_npz),
    ("data", "image side the network cannot take (30x30, fast net)", _image_size_not_supported),
    ("checkpoint", "every checkpoint truncated", _copy_run(_truncate_checkpoints, "train", "--resume", "RUN")),
    ("checkpoint", "truncated checkpoint, sampling", _copy_run(_truncate_checkpoints, "sample", "RUN", "--out", "s.png")),
    ("checkpoint", "checkpoint of another format version", _copy_run(_checkpoint_format_2, "sample", "RUN", "--out", "s.png")),
    ("checkpoint", "crafted pickle that would run code", _copy_run(_crafted_pickle, "sample", "RUN", "--out", "s.png")),
    ("checkpoint", "checkpoint that does not fit the run's config", _copy_run(_other_latent_dim, "train", "--resume", "RUN")),
    ("checkpoint", "config.json from another version (unknown key)", _copy_run(_unknown_key, "train", "--resume", "RUN")),
    ("checkpoint", "run folder without checkpoints, sampling", _copy_run(_remove_checkpoints, "sample", "RUN", "--out", "s.png")),
    ("flag", "sample count beyond memory (10^12)", _argv("sample", "RUN", "--n", "1000000000000", "--out", "s.png")),
    ("flag", "interpolation beyond memory (10^5 pairs x 10^5 steps)", _argv("interpolate", "RUN", "--pairs", "100000", "--steps", "100000", "--out", "i.png")),
    ("flag", "evaluate with 2 samples (k-NN, k = 3)", _argv("evaluate", "RUN", "--n", "2", "--no-fid", "--out", "m.json")),
    ("flag", "evaluate with 3 samples (k-NN, k = 3)", _argv("evaluate", "RUN", "--n", "3", "--no-fid", "--out", "m.json")),
    ("flag", "evaluate beyond memory (10^10 samples)", _argv("evaluate", "RUN", "--n", "10000000000", "--no-fid", "--out", "m.json")),
    ("flag", "latent dimension 10^9", _argv("train", "--latent-dim", "1000000000")),
    ("flag", "seed beyond 2^32 - 1, training", _argv("train", "--seed", "100000000000000000000")),
    ("flag", "seed beyond 2^32 - 1, sampling", _argv("sample", "RUN", "--seed", "4294967296", "--out", "s.png")),
    ("flag", "seed beyond 2^32 - 1, fit-sampler", _argv("fit-sampler", "RUN", "--seed", "10000000000")),
    ("flag", "swd projections beyond memory", _argv("train", "--objective", "swd", "--projections", "1000000000")),
    ("flag", "toy: exact OT beyond memory (--n-eval 10^7)", _argv("toy", "--n-eval", "10000000", "--out", "toy")),
    ("flag", "toy: negative lambda", _argv("toy", "--lambdas", "1", "-1", "--out", "toy")),
    ("flag", "image size 10^6", _argv("train", "--data", ".", "--image-size", "1000000")),
    ("path", "sample to a FIFO named s.png (would block)", _with(lambda t: os.mkfifo(t / "s.png"), "sample", "RUN", "--out", "s.png")),
    ("path", "evaluate into a folder named m.json", _with(lambda t: (t / "m.json").mkdir(), "evaluate", "RUN", "--n", "8", "--no-fid", "--out", "m.json")),
    ("path", "report to a FIFO named r.html", _with(lambda t: os.mkfifo(t / "r.html"), "report", "RUN", "--out", "r.html")),
    ("data", "npz: object (pickled) array", _npz_objects),
    ("data", "npz: bad CRC", _npz_bad_crc),
    ("data", "npz: header claiming 10^9 images (730 GiB)", _npz_huge_header),
    ("data", "folder: only a FIFO named x.png", _folder_with(lambda f: os.mkfifo(f / "x.png"))),
    ("data", "folder: only a dangling link", _folder_with(lambda f: (f / "a.png").symlink_to(f / "gone.png"))),
    ("data", "folder: only a symlink loop", _folder_with(lambda f: (f / "a.png").symlink_to(f / "a.png"))),
    ("data", "folder: --image-size the network cannot take (before caching)", _folder_with(_two_pngs, "--image-size", "30")),
    ("data", "CelebA split file that is not UTF-8", _celeba_bad_split),
    ("sampler", "mixture with NaN means", _copy_run(_mixture(means=np.full((2, 8), np.nan)), "sample", "RUN", "--sampler", "gmm", "--out", "s.png")),
    ("sampler", "mixture with negative weights", _copy_run(_mixture(weights=np.array([1.5, -0.5])), "sample", "RUN", "--sampler", "gmm", "--out", "s.png")),
    ("sampler", "mixture weights not summing to 1", _copy_run(_mixture(weights=np.array([0.1, 0.1])), "evaluate", "RUN", "--sampler", "gmm", "--no-fid", "--n", "8")),
    ("sampler", "mixture covariance not positive definite", _copy_run(_mixture(covariances=NOT_PD), "sample", "RUN", "--sampler", "gmm", "--out", "s.png")),
    ("sampler", "mixture covariance not symmetric", _copy_run(_mixture(covariances=np.stack([np.eye(8) + np.triu(np.ones((8, 8)), 1)] * 2)), "sample", "RUN", "--sampler", "gmm", "--out", "s.png")),
    ("sampler", "mixture file with an object (pickled) array", _copy_run(_mixture(weights=np.array([{}, {}], dtype=object)), "sample", "RUN", "--sampler", "gmm", "--out", "s.png")),
    ("sampler", "mixture file whose header claims 10^9 components", _copy_run(_huge_mixture, "sample", "RUN", "--sampler", "gmm", "--out", "s.png")),
    ("sampler", "mixture of another latent dimension", _copy_run(_mixture(d=3), "sample", "RUN", "--sampler", "gmm", "--out", "s.png")),
    ("checkpoint", "crafted checkpoint: data.size = 2**20", _copy_run(_edit_checkpoints(lambda p: p["data"].update(size=2**20)), "sample", "RUN", "--out", "s.png")),
    ("checkpoint", "crafted checkpoint: latent_dim = -3", _copy_run(_edit_checkpoints(lambda p: p["config"]["model"].update(latent_dim=-3)), "sample", "RUN", "--out", "s.png")),
    ("checkpoint", "crafted checkpoint: 4 channels", _copy_run(_edit_checkpoints(lambda p: p["data"].update(channels=4)), "interpolate", "RUN", "--out", "i.png")),
    ("checkpoint", "crafted checkpoint: NaN weights (blank images)", _copy_run(_edit_checkpoints(_nan_weights), "sample", "RUN", "--out", "s.png")),
    ("checkpoint", "crafted checkpoint: config a list", _copy_run(_edit_checkpoints(lambda p: p.update(config=[1])), "sample", "RUN", "--out", "s.png")),
    ("config", "config.json: a NaN kernel scale, resume", _copy_run(lambda r: _edit_config(r, lambda c: c["loss"].update(kernel_scales=[1.0, float("nan")])), "train", "--resume", "RUN")),
    ("config", "config.json: a negative learning-rate factor, resume", _copy_run(lambda r: _edit_config(r, lambda c: c["train"].update(lr_milestones=[0.5], lr_factors=[-1.0])), "train", "--resume", "RUN")),
    ("config", "config.json: an int given as a string, resume", _copy_run(lambda r: _edit_config(r, lambda c: c["model"].update(latent_dim="8")), "train", "--resume", "RUN")),
    ("config", "config.json: an int given as 2.5, report", _copy_run(lambda r: _edit_config(r, lambda c: c["train"].update(batch_size=2.5)), "report", "RUN")),
    ("config", "config.json: a section that is a list, resume", _copy_run(lambda r: _edit_config(r, lambda c: c.update(loss=[1])), "train", "--resume", "RUN")),
    ("config", "config.json: a list, report", _copy_run(_write_config(b"[1, 2]"), "report", "RUN")),
    ("config", "config.json: the number 42, resume", _copy_run(_write_config(b"42"), "train", "--resume", "RUN")),
    ("config", "config.json: invalid UTF-8, report", _copy_run(_write_config(b"\xff\xfe{}"), "report", "RUN")),
    ("config", "config.json: invalid UTF-8, resume", _copy_run(_write_config(b"\xff\xfe{}"), "train", "--resume", "RUN")),
    ("config", "compare: a run with a damaged config.json (no folder left)", _compare_with_damaged),
    ("config", "compare: a run whose data is gone (no folder left)", _compare_without_data),
    ("table", "table: a cell that is not a number", _csv("a,b\n1,2\n3,red\n5,6\n7,8\n")),
    ("table", "table: an empty cell", _csv("a,b\n1,2\n3,\n5,6\n7,8\n")),
    ("table", "table: a NaN", _csv("a,b\n1,2\n3,nan\n5,6\n7,8\n")),
    ("table", "table: an infinite value (.npy)", _table_array("t.npy", x=np.array([[1.0, 2.0], [3.0, np.inf]] * 5))),
    ("table", "table: a ragged CSV row", _csv("a,b\n1,2\n3,4,5\n5,6\n7,8\n")),
    ("table", "table: three rows", _csv("a,b\n1,2\n3,4\n5,6\n")),
    ("table", "table: fewer training rows than one batch", _csv(TABLE, "--batch-size", "64")),
    ("table", "table: every column constant", _csv("a,b\n" + "1,2\n" * 10)),
    ("table", "table: strings in a .npy", _table_array("t.npy", x=np.array([["a", "b"]] * 10))),
    ("table", "table: x_test of another width (.npz)", _table_array("t.npz", x_train=np.ones((20, 3)).cumsum(0), x_test=np.ones((5, 2)))),
    ("table", "table: an image preset on a table", _csv(TABLE, "--preset", "mnist-fast")),
    ("table", "table: --held-out 1", _csv(TABLE, "--held-out", "1")),
    ("path", "runs: a folder that does not exist", _argv("runs", "missing")),
    ("path", "export into a folder that is not empty", _with(lambda t: (t / "full").mkdir() or (t / "full" / "x").write_text("x"), "export", "RUN", "--out", "full")),
    ("path", "export of a folder that is not a run", _with(lambda t: (t / "empty").mkdir(), "export", "empty", "--out", "model")),
    ("checkpoint", "sample from an export whose weights are truncated", _exported(lambda m: (m / "model.safetensors").write_bytes((m / "model.safetensors").read_bytes()[:500]), "sample", "model", "--out", "s.png")),
    ("path", "runs: a file, not a folder", _with(lambda t: (t / "notes.txt").write_text("x"), "runs", "notes.txt")),
    ("path", "--overwrite on a folder whose config.json is another tool's", _another_tools_config),
    ("path", "--overwrite on a run folder that holds the user's own files", _run_with_users_files),
]  # fmt: skip


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("bad-input") / "run"
    assert main(["train", *TINY, "--max-steps", "2", "--out", str(run)]) == 0
    return run


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else b"" for p in sorted(root.rglob("*"))}


def run_case(setup: Callable[[Path, Path], list[str]], tmp: Path, run: Path) -> tuple[int, str]:
    """Set the case up in ``tmp``, run it there; (exit code, stderr). Asserts that ``tmp`` is
    unchanged and no code ran."""
    argv = setup(tmp, run)
    before = _tree(tmp)
    code, err = run_cli(argv, tmp)
    assert _tree(tmp) == before, "bad input must leave nothing written or changed"
    assert not (tmp / "pwned-marker").exists()
    return code, err


@pytest.mark.parametrize("group,what,setup", CASES, ids=[c[1] for c in CASES])
def test_bad_input_exits_2_with_one_line(group, what, setup, trained_run, tmp_path):
    code, err = run_case(setup, tmp_path, trained_run)
    assert code == 2, err
    assert err.count("\n") == 1 and "error" in err and "Traceback" not in err, err


def markdown(tmp_root: Path) -> str:
    """Run every case and return the Markdown table of docs/reliability.md."""
    run = tmp_root / "run"
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        main(["train", *TINY, "--max-steps", "2", "--out", str(run)])
    return case_table(CASES, tmp_root, run)


def case_table(cases: list[tuple[str, str, Any]], tmp_root: Path, run: Path) -> str:
    """Run ``cases`` (each in its own folder under ``tmp_root``, against the trained ``run``)
    and return their Markdown table, headed by the count of clean refusals."""
    rows = ["| # | kind | input | exit | message |", "|---|---|---|---|---|"]
    clean = 0
    for i, (group, what, setup) in enumerate(cases, 1):
        case_dir = tmp_root / f"case-{i}"
        case_dir.mkdir()
        code, err = run_case(setup, case_dir, run)
        clean += code == 2 and err.count("\n") == 1
        message = err.strip().replace(str(tmp_root), "…").replace("|", "\\|")
        rows.append(f"| {i} | {group} | {what} | {code} | `{message}` |")
    return f"{clean} of {len(cases)} bad inputs gave exit code 2 and one line.\n\n" + "\n".join(rows) + "\n"


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        print(markdown(Path(tmp)))
