"""Run integrity (issue #17, sections 1 and 3): the data a run was trained on is pinned and
checked; one writer per run folder; every checkpoint is checked against the run's config.json
and for finite weights; extending a run keeps its learning-rate schedule; empty path flags are
refused; SIGTERM is handled like Ctrl-C; every output file is written atomically and a failed
write is one line naming the file; temporary files of killed writers are swept away."""

from __future__ import annotations

import errno
import io
import json
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import wae
from wae import checkpoint as ckpt
from wae import cli, runs, samplers
from wae.compare import list_line
from wae.config import UserError, override
from wae.data import make_synthetic

from .conftest import SMALL_RUN, run_cli, terminal_signals, tiny_config

TINY = [*SMALL_RUN, "--eval-every", "0"]


def _npz(path: Path, seed: int = 1) -> Path:
    data = make_synthetic(count=160, size=16, seed=seed)
    np.savez(
        path,
        x_train=(data.train[:, 0].numpy() * 255).astype(np.uint8),
        x_test=(data.test[:, 0].numpy() * 255).astype(np.uint8),
    )
    return path


def _cli(argv: list[str], cwd: Path | None = None) -> tuple[int, str]:
    """main(argv) in ``cwd``: (exit code, stderr)."""
    return run_cli(argv, cwd)


def _refused(result: tuple[int, str], *words: str) -> str:
    code, err = result
    assert code == 2, err
    assert err.count("\n") == 1 and ": error: " in err and "Traceback" not in err, err
    for word in words:
        assert word in err, err
    return err


def _no_temporaries(*folders: Path) -> None:
    for folder in folders:
        left = [p.name for p in folder.rglob("*") if ckpt._TEMPORARY.fullmatch(p.name)]
        assert not left, left


@pytest.fixture(scope="module")
def npz_run(tmp_path_factory):
    """A 2-step run on data/d.npz, trained from its own folder with a relative --data path."""
    root = tmp_path_factory.mktemp("integrity")
    (root / "data").mkdir()
    _npz(root / "data" / "d.npz")
    argv = ["train", "--data", "data/d.npz", "--batch-size", "16", "--max-steps", "2", "--precision", "fp32"]
    code, err = _cli([*argv, "--eval-every", "0", "--no-progress", "--out", "run"], cwd=root)
    assert code == 0, err
    return root / "run"


@pytest.fixture
def run_copy(npz_run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(npz_run, copy)
    return copy


# ----------------------------------------------------------------------------- data fingerprint


def test_the_data_path_is_stored_absolute_with_a_fingerprint(npz_run):
    data = json.loads((npz_run / "config.json").read_text())["data"]
    assert Path(data["path"]).is_absolute() and Path(data["path"]) == npz_run.parent / "data" / "d.npz"
    assert data["fingerprint"].startswith(f"npz:{(npz_run.parent / 'data' / 'd.npz').stat().st_size}:")
    assert ckpt.config_of(ckpt.load_latest(npz_run)[0]).data.fingerprint == data["fingerprint"]


def _tree(folder: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in sorted(folder.rglob("*"))}


_NO_RECORDS = "the run's records go there: remove it"  # after "is not a regular file (...)"


@pytest.mark.parametrize(
    "name, make, said",
    [  # session 54: found only after an epoch (lost), or written through into another run
        (
            "checkpoints",
            lambda run, other: (run / "checkpoints").symlink_to(other / "checkpoints"),
            "leads into another run",
        ),
        (
            "metrics.jsonl",
            lambda run, other: (run / "metrics.jsonl").symlink_to(other / "metrics.jsonl"),
            "leads into another run",
        ),
        ("grids", lambda run, other: (run / "grids").symlink_to(other / "grids"), "leads into another run"),
        ("checkpoints", lambda run, other: (run / "checkpoints").symlink_to(other), "leads into another run"),
        ("metrics.jsonl", lambda run, other: os.link(other / "metrics.jsonl", run / "metrics.jsonl"), "hard link"),
        (  # hostile pass, session 55: a link to a file of two names got past the count of the link's own
            "metrics.jsonl",
            lambda run, other: (
                os.link(other / "metrics.jsonl", other.parent / "m.jsonl"),
                (run / "metrics.jsonl").symlink_to(other.parent / "m.jsonl"),
            ),
            "hard link",
        ),
        ("checkpoints", lambda run, other: (run / "checkpoints").write_text("x"), "is a file, not a folder"),
        ("grids", lambda run, other: (run / "grids").write_text("x"), "is a file, not a folder"),
        ("samples.png", lambda run, other: (run / "samples.png").mkdir(), "is a folder, not a file"),
        ("interpolations.png", lambda run, other: os.mkfifo(run / "interpolations.png"), "is a FIFO, not a file"),
        # session 55: the records file's own check, once beside this one, is this one's now
        ("metrics.jsonl", lambda run, other: os.mkfifo(run / "metrics.jsonl"), _NO_RECORDS),
        ("metrics.jsonl", lambda run, other: (run / "metrics.jsonl").symlink_to(run / "none"), _NO_RECORDS),
        ("metrics.jsonl", lambda run, other: (run / "metrics.jsonl").symlink_to(run / "checkpoints"), _NO_RECORDS),
    ],
)
def test_an_entry_that_cannot_take_the_runs_files_is_refused_before_any_work(run_copy, tmp_path, name, make, said):
    other = tmp_path / "other"
    shutil.copytree(run_copy, other)
    (other / "grids").mkdir(exist_ok=True)
    entry = run_copy / name
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry)
    elif os.path.lexists(entry):
        entry.unlink()
    make(run_copy, other)
    before, theirs = _tree(run_copy) if name != "interpolations.png" else None, _tree(other)
    err = _refused(_cli(["train", "--resume", str(run_copy), "--max-steps", "4", "--no-progress"]), said, name)
    assert "then run this again" in err and (str(other) in err) == ("another run" in said)
    data = json.loads((run_copy / "config.json").read_text())["data"]["path"]  # the same command again
    argv = ["train", "--data", data, "--batch-size", "16", "--max-steps", "2", "--precision", "fp32"]
    _refused(_cli([*argv, "--eval-every", "0", "--no-progress", "--out", str(run_copy), "--auto-resume"]), said)
    config = ckpt.config_of(ckpt.load_latest(other)[0])
    with pytest.raises(UserError, match=said):
        wae.fit(config, run_copy, resume=True)
    assert _tree(other) == theirs  # the other run untouched: its checkpoints not pruned, its records not appended
    if before is not None:
        assert _tree(run_copy) == before
    if name == "checkpoints" and "file" in said:  # readers say why they find none
        _refused(_cli(["sample", str(run_copy), "--out", str(tmp_path / "s.png")]), "holds no checkpoint: ", said)


def test_only_the_entries_this_session_writes_are_checked(run_copy):
    # session 54 left open: a file named tensorboard refused with no tracker on, a FIFO named
    # metrics-gmm.json (wae evaluate's, never training's) refused; a sampler's grid of a kind
    # not fitted is only read or removed by a session
    fitted = json.loads((run_copy / "config.json").read_text())["train"]["fit_sampler"]
    other = next(kind for kind in ("gmm", "vae") if kind != fitted)
    (run_copy / "tensorboard").write_text("my notes")
    os.mkfifo(run_copy / "metrics-gmm.json")
    (run_copy / f"samples-{other}.png").mkdir()
    resume = ["train", "--resume", str(run_copy), "--max-steps", "3", "--no-progress"]
    before = _tree(run_copy)
    _refused(_cli([*resume, "--log", "tensorboard"]), "tensorboard is a file, not a folder", "then run this again")
    _refused(_cli([*resume, "--fit-sampler", other]), f"samples-{other}.png is a folder, not a file")
    assert _tree(run_copy) == before
    code, err = _cli(resume)
    assert code == 0 and ckpt.newest_checkpoint_step(run_copy) == 3, err
    assert (run_copy / "tensorboard").read_text() == "my notes" and (run_copy / f"samples-{other}.png").is_dir()


@pytest.mark.parametrize("when", ["after the evaluation", "while the grids are drawn"])
@pytest.mark.parametrize("name", ["checkpoints", "metrics.jsonl", "grids", "tensorboard"])
def test_an_entry_made_a_link_into_another_run_while_training_is_refused_at_the_next_write(
    run_copy, tmp_path, name, when, monkeypatch
):
    # session 54 left open: the entries were checked once, as the session started; one swapped
    # for a link into another run during training was written through. The hostile pass of
    # session 55: a swap made while the grids were drawn still reached the checkpoint's save
    from wae import train

    # the second pass: tensorboard's library opened its events file by path at each write, so
    # its events reached the other run's tensorboard/ before the swap was found
    cfg = override(ckpt.config_of(ckpt.load_latest(run_copy)[0]), epochs=4, eval_every=1, max_steps=None)
    if name == "tensorboard":
        pytest.importorskip("tensorboard")
        cfg = override(cfg, log="tensorboard", log_every=1)
        (run_copy / "tensorboard").mkdir()
    run, theirs, said = tmp_path / "mine", _tree(run_copy), []

    def swap() -> None:
        entry = run / name
        if not entry.is_symlink():
            os.rename(entry, tmp_path / "moved") if entry.exists() else None
            entry.symlink_to(run_copy / name)

    def log(text: str) -> None:
        said.append(text)
        if text.startswith("epoch 1 ") and when == "after the evaluation":
            swap()

    figures = train._figures

    def drawn(*args: object) -> None:
        figures(*args)
        if when != "after the evaluation":
            swap()

    monkeypatch.setattr(train, "_figures", drawn)
    with pytest.raises(UserError, match=f"{name} leads into another run's folder") as refused:
        wae.fit(cfg, run, log=log)
    assert str(refused.value).endswith(f"then resume the run: wae train --resume {run}")  # not "run this again"
    assert any(text.startswith("epoch 1 ") for text in said) and not any(t.startswith("epoch 3 ") for t in said)
    assert _tree(run_copy) == theirs  # nothing written through into the other run


@pytest.mark.parametrize("name", ["checkpoints", "grids"])
def test_an_entry_swapped_between_its_check_and_its_writes_leads_them_nowhere(run_copy, tmp_path, name, monkeypatch):
    # hostile pass, session 56: checkpoints/ swapped for a link into another run just after the
    # checkpoint was put in place: the pruning listed the other run's folder and deleted its
    # checkpoints; grids/ swapped once samples.png was written: the epoch's grids went there.
    # Now each folder is held (a descriptor) before its check, and written through that
    kept = run_copy / "checkpoints"
    shutil.copy(kept / "step-00000002.pt", kept / "step-00000001.pt")  # one the pruning would take
    cfg = override(ckpt.config_of(ckpt.load_latest(run_copy)[0]), epochs=2, eval_every=1, max_steps=None)
    cfg = override(cfg, keep_checkpoints=1)
    run, theirs, moved = tmp_path / "mine", _tree(run_copy), tmp_path / "moved"

    def swap() -> None:
        if not moved.exists():
            os.rename(run / name, moved)
            (run / name).symlink_to(run_copy / name)

    if name == "checkpoints":
        point = ckpt.fault_point
        monkeypatch.setattr(ckpt, "fault_point", lambda where: swap() if where == "checkpoint-saved" else point(where))
    else:
        write = ckpt.write_atomic

        def written(path: Path, *args: object, **kwargs: object) -> None:
            write(path, *args, **kwargs)
            if Path(path).name == "samples.png":
                swap()

        monkeypatch.setattr(ckpt, "write_atomic", written)
    with pytest.raises(UserError, match=f"{name} leads into another run's folder") as refused:
        wae.fit(cfg, run, log=lambda _: None)
    assert str(refused.value).endswith(f"then resume the run: wae train --resume {run}")
    assert _tree(run_copy) == theirs  # nothing written into the other run, nothing pruned there
    # the second pass: the advice was "replace the link by a copy of what it leads to", which,
    # followed, resumed this run from the other run's checkpoint
    assert "its own moved back if it was moved away, else a copy" in str(refused.value)
    mine = r"step-[0-9]+\.pt" if name == "checkpoints" else r"samples-epoch001\.png"
    assert [n for n in os.listdir(moved) if re.fullmatch(mine, n)]  # written into the folder checked


@pytest.mark.parametrize(
    "case", ["grids a FIFO", "samples.png a folder", "a plan's records a FIFO", "checkpoints removed"]
)
def test_a_write_that_fails_on_an_entry_swapped_meanwhile_says_so_with_the_way_to_resume(
    run_copy, tmp_path, case, monkeypatch
):
    # hostile pass, session 56: such a swap in the window between a check and its write ended in
    # "RUN/grids: File exists" or "RUN/samples.png: Is a directory", and a budget's plan record
    # refused without the resume advice that every other refusal during training gives
    from wae import train

    cfg = override(ckpt.config_of(ckpt.load_latest(run_copy)[0]), epochs=2, eval_every=1, max_steps=None)
    run = tmp_path / "mine"
    if case == "a plan's records a FIFO":
        cfg, name, said = override(cfg, time_budget=9.0), "metrics.jsonl", "metrics.jsonl is not a regular file"
        append = train._append_jsonl

        def appended(path: Path, record: dict, **how: object) -> None:
            if record.get("kind") == "plan":
                path.unlink()
                os.mkfifo(path)
            append(path, record, **how)

        monkeypatch.setattr(train, "_append_jsonl", appended)
    elif case == "checkpoints removed":  # the second pass: "RUN/checkpoints/step-...pt: No such file"
        said = "checkpoints was removed while this session wrote into it"
        save = ckpt.save_atomic

        def saved(payload: dict, path: Path) -> None:
            shutil.rmtree(run / "checkpoints")
            save(payload, path)

        monkeypatch.setattr(ckpt, "save_atomic", saved)
    else:
        name, said = case.split()[0], f"{case.split()[0]} is a {case.split()[-1].lower()}"
        if name == "grids":
            said = "grids is a FIFO"
        write = ckpt.write_atomic

        def written(path: Path, *args: object, **kwargs: object) -> None:
            if Path(path).name == "samples.png" and not (run / "moved").exists():
                (run / "moved").mkdir()
                if name == "grids":
                    os.rename(run / "grids", run / "moved" / "grids")
                    os.mkfifo(run / "grids")
                else:
                    (run / "samples.png").mkdir()
            write(path, *args, **kwargs)

        monkeypatch.setattr(ckpt, "write_atomic", written)
    with pytest.raises(UserError, match=said) as refused:
        wae.fit(cfg, run, log=lambda _: None)
    assert str(refused.value).endswith(f"then resume the run: wae train --resume {run}")
    assert "\n" not in str(refused.value)


def test_two_copies_of_a_run_linked_to_one_scratch_folder_do_not_take_each_others_checkpoints(run_copy, tmp_path):
    # session 54 left open, found again by session 55's hostile pass: a run at step 2 resumed from
    # its copy's step 4 in the scratch folder both checkpoints/ lead to, pruning its own
    scratch = tmp_path / "scratch"
    shutil.move(run_copy / "checkpoints", scratch)
    (run_copy / "checkpoints").symlink_to(scratch)
    twin = tmp_path / "twin"
    shutil.copytree(run_copy, twin, symlinks=True)
    assert _cli(["train", "--resume", str(twin), "--max-steps", "4", "--no-progress"])[0] == 0
    held = sorted(os.listdir(scratch))
    err = _refused(_cli(["train", "--resume", str(run_copy), "--max-steps", "6"]), "(step 4) is not among this run's")
    assert "their last: step 2" in err and "give each run a checkpoints folder of its own" in err
    assert "or this run's last records were lost" in err and "move step-00000004.pt away" in err
    assert sorted(os.listdir(scratch)) == held
    assert _cli(["train", "--resume", str(twin), "--max-steps", "6", "--no-progress"])[0] == 0  # its own


def test_checkpoints_linked_to_a_place_of_no_run_are_written_through(run_copy, tmp_path):
    scratch = tmp_path / "project" / "scratch" / "ck"  # a larger disk, say: no run folder holds it
    scratch.parent.mkdir(parents=True)
    (tmp_path / "project" / "config.json").write_text('{"tool": "another"}')  # not a run's, beside
    (tmp_path / "project" / "checkpoints").mkdir()  # that tool's own checkpoints
    shutil.move(run_copy / "checkpoints", scratch)
    (run_copy / "checkpoints").symlink_to(scratch)
    assert _cli(["train", "--resume", str(run_copy), "--max-steps", "3", "--no-progress"])[0] == 0
    assert (run_copy / "checkpoints").is_symlink() and ckpt.newest_checkpoint_step(run_copy) == 3
    assert (scratch / "step-00000003.pt").is_file()


def test_a_link_into_a_run_nested_in_this_one_is_refused(run_copy, tmp_path):
    # second hostile pass, session 54: RUN/checkpoints -> RUN/inner/checkpoints, inner a run
    # copied into RUN, was written through (inner's checkpoints became RUN's)
    inner = tmp_path / "inner"
    shutil.copytree(run_copy, inner)
    shutil.move(inner, run_copy / "inner")
    shutil.rmtree(run_copy / "checkpoints")
    (run_copy / "checkpoints").symlink_to("inner/checkpoints")
    theirs = _tree(run_copy / "inner")
    _refused(_cli(["train", "--resume", str(run_copy), "--max-steps", "4"]), "leads into another run's folder")
    assert _tree(run_copy / "inner") == theirs


def test_resuming_with_another_config_names_the_callers_value_as_the_callers(run_copy):
    # hostile pass, session 54: "loss.code_noise 0.5 (config.json: 0.9)" where config.json held 0.5
    own = wae.load_run(run_copy).config
    before = _tree(run_copy)
    for change, said in (({"code_noise": 0.9}, "loss.code_noise 0.9 (the run: 0.0)"), ({"lam": 2.0}, "loss.lam 2.0")):
        with pytest.raises(UserError, match=re.escape(said)) as caught:
            wae.fit(override(own, **change), run_copy, resume=True, progress=False)
        assert "config given to resume" in str(caught.value) and "config.json:" not in str(caught.value)
    assert _tree(run_copy) == before
    assert wae.fit(override(own, max_steps=3), run_copy, resume=True, progress=False).step == 3


def test_a_run_read_from_another_folder_uses_its_own_data(npz_run, tmp_path):
    (tmp_path / "data").mkdir()
    _npz(tmp_path / "data" / "d.npz", seed=7)  # another file of the same name here
    assert _cli(["reconstruct", str(npz_run), "--n", "4", "--out", "r.npz"], cwd=tmp_path)[0] == 0
    with np.load(tmp_path / "r.npz") as saved:
        with np.load(npz_run.parent / "data" / "d.npz") as original:
            assert np.array_equal(saved["originals"][:, 0], original["x_test"][:4])


def test_changed_data_are_refused_on_resume_and_by_readers(run_copy, tmp_path):
    data_file = tmp_path / "d.npz"
    _npz(data_file)
    config = json.loads((run_copy / "config.json").read_text())
    config["data"].update(path=str(data_file), fingerprint=runs.fingerprint(runs.DataConfig("npz", str(data_file))))
    (run_copy / "config.json").write_text(json.dumps(config))
    for path in ckpt.run_checkpoints(run_copy):  # the checkpoints record the same data
        payload = ckpt.load(path)
        payload["config"] = config
        ckpt.save_atomic(payload, path)
    assert _cli(["train", "--resume", str(run_copy), "--max-steps", "3", "--no-progress"])[0] == 0
    _npz(data_file, seed=7)  # other images under the same name
    before = sorted(p.name for p in run_copy.iterdir())
    _refused(_cli(["train", "--resume", str(run_copy), "--max-steps", "4"]), "not those the run was trained on")
    _refused(_cli(["reconstruct", str(run_copy), "--out", str(tmp_path / "r.png")]), str(data_file))
    _refused(_cli(["interpolate", str(run_copy), "--out", str(tmp_path / "i.png")]), "fingerprint")
    _refused(_cli(["fit-sampler", str(run_copy), "--components", "2"]), "fingerprint")
    assert sorted(p.name for p in run_copy.iterdir()) == before
    assert not (tmp_path / "r.png").exists() and not (tmp_path / "i.png").exists()


def test_a_config_json_value_of_the_wrong_type_is_named_as_the_file_writes_it(run_copy, tmp_path):
    # "config train.epochs must be int; got True" named a file's `true` as Python writes it
    config = json.loads((run_copy / "config.json").read_text())
    before = {p.name: p.read_bytes() for p in run_copy.iterdir() if p.is_file()}
    for section, key, value, said in (
        ("train", "epochs", True, "train.epochs must be int; got true"),
        ("model", "latent_dim", None, "model.latent_dim must be int; got null"),
        ("loss", "kernel_scales", ["a"], 'loss.kernel_scales[0] must be float; got "a"'),
        # of the right type, outside its choices or bounds (the validation after the types)
        ("loss", "objective", "foo", 'loss.objective must be one of mmd, gan, vae, swd, sinkhorn, cw; got "foo"'),
        ("loss", "lam", float("nan"), "loss.lam must be >= 0 and finite; got NaN"),
    ):
        edited = json.loads(json.dumps(config))
        edited[section][key] = value
        (run_copy / "config.json").write_text(json.dumps(edited))
        before["config.json"] = (run_copy / "config.json").read_bytes()
        sample = ["sample", str(run_copy), "--n", "4", "--out", str(tmp_path / "s.png")]
        # (a sampler compares the checkpoint with config.json first: "... (config.json: foo)")
        for argv in (["train", "--resume", str(run_copy), "--no-progress"], sample)[
            : 1 if key in ("objective", "lam") else 2
        ]:
            _refused(_cli(argv), said)
        assert {p.name: p.read_bytes() for p in run_copy.iterdir() if p.is_file()} == before
        assert not (tmp_path / "s.png").exists()


def _commands_reading(run: Path, out: Path) -> list[list[str]]:
    """Every command that reads a run's config.json and newest checkpoint, its outputs in ``out``."""
    return [
        ["train", "--resume", str(run), "--no-progress"],
        ["sample", str(run), "--n", "4", "--out", str(out / "s.png")],
        ["fit-sampler", str(run), "--components", "2", "--no-progress"],
        ["report", str(run), "--no-progress"],
        ["export", str(run), "--out", str(out / "export")],
    ]


@pytest.mark.parametrize(
    "change, said",
    [
        (lambda c: c["train"].__setitem__("epochs", True), "train.epochs must be int; got true"),
        (
            lambda c: c["loss"].__setitem__("lam", float("nan")),
            "loss.lam must be >= 0 and finite; got NaN",
        ),
        (lambda c: c.__setitem__("train", 5), "config section 'train' must be a JSON object; got 5"),
        (lambda c: c["model"].__setitem__("latent_dim", None), "model.latent_dim must be int; got null"),
        (lambda c: c.pop("data"), "config has no data section"),  # not the defaults named as its values
    ],
)
def test_a_checkpoints_damaged_config_is_refused_naming_the_checkpoint(npz_run, tmp_path, change, said):
    # "config train.epochs must be int; got true" did not say that the checkpoint held it, not
    # config.json (which every command reads first, and which is as the run wrote it)
    run = tmp_path / "run"
    shutil.copytree(npz_run, run)
    _replace_checkpoints(run, lambda payload: change(payload["config"]))
    newest = ckpt.run_checkpoints(run)[-1]
    before = {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()}
    for argv in _commands_reading(run, tmp_path):
        err = _refused(_cli(argv), said)
        assert f"{newest}: " in err, err  # the file, then what is wrong in it
    assert {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    assert not (tmp_path / "s.png").exists() and not (tmp_path / "export").exists()
    line = list_line(run)
    assert newest.name in line[-1] and said in line[-1], line


@pytest.mark.parametrize(
    "text, said",
    [
        (b'{"train": {"epochs": 1' + b"0" * 500 + b"}}", "is damaged (a number beyond any float)"),
        (b"[" * 100_000 + b"]" * 100_000, "is damaged (nested too deeply to parse)"),
        (b'{"train": {"epochs": "\xff"}}', "is damaged (not UTF-8 text)"),
        (
            b'{"train": {"epochs": 3,}}',
            "is damaged (not valid JSON: Expecting property name enclosed in double quotes at",
        ),
        (b"", "is damaged (not valid JSON: Expecting value at line 1 column 1)"),
    ],
)
def test_a_config_json_that_cannot_be_parsed_is_named_with_its_reason(run_copy, tmp_path, text, said):
    # "config.json is damaged (ValueError)" named the class of the error, not what was wrong
    (run_copy / "config.json").write_bytes(text)
    before = {p.relative_to(run_copy): p.read_bytes() for p in run_copy.rglob("*") if p.is_file()}
    for argv in _commands_reading(run_copy, tmp_path):
        _refused(_cli(argv), f"{run_copy / 'config.json'} {said}")
    assert {p.relative_to(run_copy): p.read_bytes() for p in run_copy.rglob("*") if p.is_file()} == before
    assert not (tmp_path / "s.png").exists() and not (tmp_path / "export").exists()


@pytest.mark.parametrize(
    "section, name, value, said",
    [  # a whole number where a float is taken: named as written, not as the float -1.0
        ("loss", "lam", -1, "loss.lam must be >= 0 and finite; got -1"),
        ("loss", "kernel_scales", [1, 0], "loss.kernel_scales must each be > 0 and finite; got 0"),
        ("loss", "prior_var", 10**15, "loss.prior_var must be from 1e-12 to 1e+12; got 1000000000000000"),
        ("train", "lr", 0, "train.lr must be > 0 and finite; got 0"),
    ],
)
def test_a_config_jsons_value_is_named_as_the_file_writes_it(run_copy, tmp_path, section, name, value, said):
    config = run_copy / "config.json"
    stored = json.loads(config.read_text())
    stored[section][name] = value
    config.write_text(json.dumps(stored))
    for argv in _commands_reading(run_copy, tmp_path):
        assert _refused(_cli(argv), f"{config}: {said}").rstrip().endswith(said)  # -1, not -1.0


@pytest.mark.parametrize(
    "written, said",
    [  # a float in exponent form: named as the file writes it, not in Python's shortest form
        ("-1E2", "loss.lam must be >= 0 and finite; got -1E2"),
        ("1e400", "loss.lam is beyond any float (about 1.8e308 at most); got 1e400"),  # was "got inf"
        ("1e-400", "loss.lam is too small for a float: it would read as 0; got 1e-400"),  # was read as 0
    ],
)
def test_a_config_jsons_float_is_named_as_written(run_copy, tmp_path, written, said):
    config = run_copy / "config.json"
    stored = json.loads(config.read_text())
    stored["loss"]["lam"] = 12345.5
    config.write_text(json.dumps(stored).replace("12345.5", written))
    for argv in _commands_reading(run_copy, tmp_path):
        assert _refused(_cli(argv), f"{config}: {said}").rstrip().endswith(said)


def test_a_config_json_that_is_no_file_or_holds_a_key_twice_is_refused_by_name(run_copy, tmp_path):
    # a folder, FIFO or dangling link named config.json was read as no config.json: sample and
    # fit-sampler went on with the checkpoint's config (and rewrote sampler-gmm.npz), the others
    # said "not a run folder"; a key given twice was read as json keeps it, the last value
    config = run_copy / "config.json"
    text = config.read_text()
    for make, said in (
        (lambda: config.mkdir(), "config.json cannot be read (not a file)"),
        (lambda: os.mkfifo(config), "config.json cannot be read (not a file)"),
        (lambda: config.symlink_to(tmp_path / "nowhere"), "config.json cannot be read (not a file)"),
        (
            lambda: config.write_text(text.replace('"latent_dim": ', '"latent_dim": 8, "latent_dim": ', 1)),
            'config.json is damaged (the key "latent_dim" is given twice)',
        ),
    ):
        if config.is_dir() and not config.is_symlink():
            config.rmdir()
        else:
            config.unlink()
        make()
        before = {p.relative_to(run_copy): p.read_bytes() for p in run_copy.rglob("*") if p.is_file()}
        for argv in _commands_reading(run_copy, tmp_path):
            _refused(_cli(argv), f"{config} ", said.removeprefix("config.json "))
        assert {p.relative_to(run_copy): p.read_bytes() for p in run_copy.rglob("*") if p.is_file()} == before
    assert not (tmp_path / "s.png").exists() and not (tmp_path / "export").exists()


def test_a_checkpoint_without_a_config_is_refused_by_name_not_read_as_the_defaults(run_copy, tmp_path):
    # "does not match the run's config.json: data.dataset mnist (config.json: npz)": the defaults
    # it was read with named as what the checkpoint holds
    _replace_checkpoints(run_copy, lambda payload: payload.pop("config"))
    for argv in _commands_reading(run_copy, tmp_path):
        _refused(_cli(argv), f"{ckpt.run_checkpoints(run_copy)[-1]} holds no config")


def test_a_folder_fingerprint_follows_its_list_of_images(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(folder / f"{i}.png")
    config = runs.DataConfig("folder", str(folder))
    first = runs.fingerprint(config)
    assert first is not None and first.startswith("files:3:") and runs.fingerprint(config) == first
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / "3.png")
    assert runs.fingerprint(config) != first
    with pytest.raises(UserError, match="not those the run was trained on"):
        runs.check_data(runs.DataConfig("folder", str(folder), fingerprint=first))
    assert runs.fingerprint(runs.DataConfig("synthetic")) is None


# ----------------------------------------------------------------------------- one writer


def _train_process(run: Path, *argv: str) -> subprocess.Popen[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "wae", "train", *TINY, "--log-every", "1", "--epochs", "1000", "--out", str(run)]
    return subprocess.Popen(
        [*cmd, *argv], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=terminal_signals()
    )


def _wait_for_steps(proc: subprocess.Popen[str], run: Path, lines: int = 3) -> None:
    deadline = time.time() + 90
    while not ((run / "metrics.jsonl").exists() and (run / "metrics.jsonl").read_text().count("\n") >= lines):
        assert time.time() < deadline and proc.poll() is None, "training did not start"
        time.sleep(0.1)


@pytest.mark.slow  # two real trainings and a SIGTERM (10 s); the lock in one process: the next test
def test_two_writers_of_one_run_folder_the_second_is_refused_and_sigterm_checkpoints(tmp_path):
    """Two real processes: while `wae train --out R` runs, a second `wae train --out R`, a
    `--resume R`, an `--overwrite` and a Python fit into R are refused with the first one's pid
    and write nothing; then SIGTERM stops the first like Ctrl-C: checkpoint, one line, exit 143."""
    run = tmp_path / "run"
    first = _train_process(run)
    try:
        _wait_for_steps(first, run)
        in_use = f"is in use by another wae process (pid {first.pid}): wait for it to end, or stop that process, then"
        second = subprocess.run(
            [sys.executable, "-m", "wae", "train", *TINY, "--max-steps", "2", "--out", str(run)],
            capture_output=True,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        assert second.returncode == 2 and second.stderr.count("\n") == 1 and in_use in second.stderr, second.stderr
        _refused(_cli(["train", "--resume", str(run), "--max-steps", "2"]), in_use)
        _refused(_cli(["train", *TINY, "--max-steps", "2", "--out", str(run), "--overwrite"]), in_use)
        with pytest.raises(UserError, match="in use"):
            wae.fit_tensor(torch.rand(64, 16, 16), out=run, max_steps=1, precision="fp32", batch_size=32)
        assert (run / ".lock").read_text().strip() == str(first.pid)
        first.send_signal(signal.SIGTERM)
        out, err = first.communicate(timeout=90)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 143, err
    assert "Traceback" not in err and "interrupted at step" in err and "SIGTERM" in err, err
    step = json.loads(out)["step"]
    found = ckpt.load_latest(run)
    assert found is not None and found[0]["step"] == step >= 3
    assert not (run / ".lock").exists()
    assert _cli(["train", "--resume", str(run), "--max-steps", str(step + 1), "--no-progress"])[0] == 0


def _hold_lock(run: Path) -> subprocess.Popen[str]:
    code = (
        "import sys, time; from wae.runs import run_lock\n"
        "with run_lock(sys.argv[1]):\n print('held', flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(run)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_commands_that_write_into_a_run_take_its_lock_and_readers_do_not(run_copy, tmp_path):
    mixture = (run_copy / "sampler-gmm.npz").read_bytes()  # the one the preset fitted at the end of training
    holder = _hold_lock(run_copy)
    try:
        in_use = f"is in use by another wae process (pid {holder.pid})"
        _refused(_cli(["fit-sampler", str(run_copy), "--components", "2"]), in_use)
        _refused(_cli(["evaluate", str(run_copy), "--n", "8", "--no-fid"]), in_use)
        _refused(_cli(["report", str(run_copy)]), in_use)
        assert _cli(["sample", str(run_copy), "--n", "4", "--out", str(tmp_path / "s.png")])[0] == 0
        assert _cli(["report", str(run_copy), "--out", str(tmp_path / "r.html")])[0] == 0
    finally:
        holder.kill()
        holder.wait()
    assert (run_copy / "sampler-gmm.npz").read_bytes() == mixture and not (run_copy / "metrics.json").exists()


def test_the_python_api_refuses_an_existing_run_folder(npz_run, tmp_path):
    run = tmp_path / "run"
    images = torch.rand(64, 16, 16)
    settings = {"max_steps": 1, "precision": "fp32", "batch_size": 32, "eval_every": 0}
    wae.fit_tensor(images, out=run, **settings)
    before = {p.name: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    with pytest.raises(UserError, match="exists"):
        wae.fit_tensor(images * 0.5, out=run, **settings)
    assert {p.name: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    assert not (run / ".lock").exists()


def test_the_lock_is_reentrant_in_one_process_and_removed_on_release(tmp_path):
    run = tmp_path / "run"
    with runs.run_lock(run), runs.run_lock(run):
        assert (run / ".lock").read_text().strip() == str(os.getpid())
    assert not run.exists()  # made for the lock and left empty: removed again


# ----------------------------------------------------------------------------- checkpoint vs config.json


def _replace_checkpoints(run: Path, change: Callable[[dict], None]) -> None:
    for path in ckpt.run_checkpoints(run):
        payload = ckpt.load(path)
        change(payload)
        ckpt.save_atomic(payload, path)


@pytest.fixture(scope="module")
def other_runs(tmp_path_factory):
    """Two 2-step runs on the built-in synthetic data: WAE-GAN (d_z = 8) and WAE-MMD (d_z = 16)."""
    root = tmp_path_factory.mktemp("others")
    for name, extra in [("gan", ["--objective", "gan", "--latent-dim", "8"]), ("wide", ["--latent-dim", "16"])]:
        code, err = _cli(["train", *TINY, *extra, "--max-steps", "2", "--out", str(root / name)])
        assert code == 0, err
    return root


def _adopt_checkpoints(run: Path, donor: Path) -> None:
    shutil.rmtree(run / "checkpoints")
    shutil.copytree(donor / "checkpoints", run / "checkpoints")


READERS = [
    ["sample", "RUN", "--n", "4", "--out", "OUT/s.png"],
    ["reconstruct", "RUN", "--n", "4", "--out", "OUT/r.png"],
    ["interpolate", "RUN", "--pairs", "2", "--out", "OUT/i.npz"],
    ["evaluate", "RUN", "--n", "8", "--no-fid"],
    ["fit-sampler", "RUN", "--components", "2"],
    ["report", "RUN"],
    ["train", "--resume", "RUN", "--max-steps", "3"],
]


def _argv(argv: list[str], run: Path, out: Path) -> list[str]:
    return [str(run) if a == "RUN" else a.replace("OUT", str(out)) for a in argv]


@pytest.mark.parametrize("argv", READERS, ids=[a[0] for a in READERS])
def test_a_checkpoint_of_another_latent_size_is_refused_by_every_reader(argv, other_runs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(other_runs / "gan", run)
    config = json.loads((run / "config.json").read_text())
    config["loss"]["objective"] = "mmd"  # a WAE-MMD run whose checkpoints came from a d_z = 16 run
    (run / "config.json").write_text(json.dumps(config))
    _adopt_checkpoints(run, other_runs / "wide")
    before = sorted(p.name for p in run.rglob("*"))
    _refused(_cli(_argv(argv, run, tmp_path)), "does not match the run's config.json", "model.latent_dim 16")
    assert sorted(p.name for p in run.rglob("*")) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    with pytest.raises(UserError, match="latent_dim"):
        wae.load_model(run)


def test_a_gan_checkpoint_in_an_mmd_run_and_an_edited_batch_size_are_refused_on_resume(other_runs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(other_runs / "wide", run)
    config = json.loads((run / "config.json").read_text())
    config["model"]["latent_dim"] = 8
    (run / "config.json").write_text(json.dumps(config))
    _adopt_checkpoints(run, other_runs / "gan")
    _refused(_cli(["train", "--resume", str(run), "--max-steps", "3"]), "loss.objective gan (config.json: mmd)")
    shutil.rmtree(run)
    shutil.copytree(other_runs / "wide", run)
    config = json.loads((run / "config.json").read_text())
    config["train"]["batch_size"] = 16
    (run / "config.json").write_text(json.dumps(config))
    _refused(_cli(["train", "--resume", str(run), "--max-steps", "3"]), "train.batch_size 32 (config.json: 16)")
    # a checkpoint file given directly is checked against the config.json of its run
    newest = ckpt.run_checkpoints(run)[0]
    _refused(_cli(["sample", str(newest), "--out", str(tmp_path / "s.png")]), "train.batch_size")


# ----------------------------------------------------------------------------- finite weights


@pytest.mark.parametrize("argv", READERS, ids=[a[0] for a in READERS])
def test_a_checkpoint_with_nan_weights_is_refused_by_every_reader(argv, run_copy, tmp_path):
    def poison(payload: dict) -> None:
        name = next(k for k, v in payload["model"].items() if v.is_floating_point())
        payload["model"][name] = torch.full_like(payload["model"][name], float("nan"))

    _replace_checkpoints(run_copy, poison)
    out = tmp_path / "out"
    out.mkdir()
    err = _refused(_cli(_argv(argv, run_copy, out)), "NaN or infinite weights")
    assert str(ckpt.run_checkpoints(run_copy)[0]) in err
    assert not list(out.iterdir())


def test_a_sampler_with_nan_values_is_refused(run_copy, tmp_path):
    nan = np.full((2, 8), np.nan, np.float32)
    ckpt.write_atomic(
        run_copy / "sampler-gmm.npz",
        ckpt.npz_bytes(weights=np.full(2, 0.5, np.float32), means=nan, covariances=np.stack([np.eye(8)] * 2)),
    )
    out = tmp_path / "s.png"
    _refused(_cli(["sample", str(run_copy), "--sampler", "gmm", "--out", str(out)]), "sampler-gmm.npz", "NaN")
    assert not out.exists()


# ----------------------------------------------------------------------------- extending a run


def _lrs(run: Path) -> dict[int, float]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["lr"] for r in records if r["kind"] == "train"}


def test_extending_a_run_keeps_the_decayed_learning_rate(tmp_path):
    """The README's `wae train --resume RUN --epochs N` after a finished run: milestones stay at
    the epochs of the first session (mnist-fast: 60 % and 80 % of 3 epochs, both at epoch 2), so
    the learning rate stays at 1e-3 x 0.5 x 0.2; --schedule-epochs stretches it on purpose."""
    run = tmp_path / "run"
    argv = ["train", *TINY, "--batch-size", "32", "--epochs", "3", "--log-every", "1", "--fit-sampler", "none"]
    argv += ["--lr", "1e-3"]
    argv += ["--out", str(run)]
    assert _cli(argv)[0] == 0  # 128 images: 4 steps per epoch, 12 steps
    assert _lrs(run)[12] == pytest.approx(1e-4)
    stretched = tmp_path / "stretched"
    shutil.copytree(run, stretched)
    assert _cli(["train", "--resume", str(run), "--epochs", "6", "--max-steps", "14", "--no-progress"])[0] == 0
    lrs = _lrs(run)
    assert lrs[13] == lrs[14] == pytest.approx(1e-4)  # it was 1e-3: milestones at epochs 4 and 5 of 6
    assert json.loads((run / "config.json").read_text())["train"]["schedule_epochs"] == 3
    resumed = ["train", "--resume", str(stretched), "--epochs", "6", "--schedule-epochs", "6", "--max-steps", "14"]
    assert _cli([*resumed, "--no-progress"])[0] == 0
    assert _lrs(stretched)[13] == pytest.approx(1e-3)


@pytest.mark.parametrize(
    ("stop", "says", "more"),
    [
        (
            ["--max-steps", "5"],
            "where its --max-steps 5 ends it: nothing to train (give a larger --max-steps to go on, up to 8, "
            "the end of its 2 epochs)",
            ["--max-steps", "6"],
        ),
        (
            ["--max-steps", "8"],
            "the end of its 2 epochs and of its --max-steps 8: nothing to train (give more --epochs and a larger "
            "--max-steps to go on)",
            ["--epochs", "3", "--max-steps", "12"],
        ),
        ([], "the end of its 2 epochs: nothing to train (give more --epochs to go on)", ["--epochs", "3"]),
        (  # a --max-steps beyond the epochs' end does not end the run there: more epochs go on
            ["--max-steps", "20"],
            "the end of its 2 epochs: nothing to train (give more --epochs to go on)",
            ["--epochs", "3"],
        ),
    ],
    ids=["max-steps", "max-steps-at-the-end", "epochs", "max-steps-beyond"],
)
def test_a_resume_at_the_runs_end_says_so_and_keeps_what_is_there(stop, says, more, tmp_path):
    """`wae train --resume RUN` of a run at its last step (its --max-steps stays in config.json)
    once did nothing and said nothing, and fitted the preset's mixture again over one that wae
    fit-sampler had fitted to the same weights, removing that sampler's evaluation, and wrote
    "0 images/s" into the report; the advice it gives now is what goes on."""
    run = tmp_path / "run"
    assert _cli(["train", *TINY, "--epochs", "2", *stop, "--out", str(run)])[0] == 0
    assert _cli(["fit-sampler", str(run), "--components", "3", "--no-progress"])[0] == 0
    assert _cli(["evaluate", str(run), "--sampler", "gmm", "--n", "40", "--no-fid", "--no-progress"])[0] == 0
    names = ("sampler-gmm.npz", "samples-gmm.png", "metrics-gmm.json", "report.md", "metrics.jsonl")
    kept = {name: (run / name).read_bytes() for name in names}
    checkpoints = sorted(p.name for p in (run / "checkpoints").iterdir())
    code, err = _cli(["train", "--resume", str(run), "--time-budget", "5", "--no-progress"])
    assert code == 0, err
    assert f"{says}; its --time-budget 5 waits for the session that trains" in err and "fitted" not in err, err
    assert {name: (run / name).read_bytes() for name in kept} == kept
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == checkpoints
    code, err = _cli(["train", "--resume", str(run), *more, "--no-progress"])
    assert code == 0 and "nothing to train" not in err, err
    assert "fitted" in err and not (run / "metrics-gmm.json").exists(), err  # new weights: fitted again
    # the budget kept pending is decided at the first epoch's end of a session that reaches one
    decided = '"kind": "plan"' in (run / "metrics.jsonl").read_text()
    budget = json.loads((run / "config.json").read_text())["train"]["time_budget"]
    assert (decided, budget) == ((False, 5.0) if more == ["--max-steps", "6"] else (True, None))


def test_a_fresh_run_with_nothing_to_train_says_so(tmp_path):
    for stop, says in ((["--max-steps", "0"], "where its --max-steps 0 ends it"), (["--epochs", "0"], "its 0 epochs")):
        run = tmp_path / stop[0].strip("-")
        code, err = _cli(["train", *TINY, *stop, "--out", str(run)])
        assert code == 0 and "note: the run is at step 0, " in err and says in err and "nothing to train" in err, err
    # a run of no epochs has no schedule to keep: the session that extends it plans one
    assert _cli(["train", "--resume", str(tmp_path / "epochs"), "--epochs", "2", "--no-progress"])[0] == 0
    assert json.loads((tmp_path / "epochs" / "config.json").read_text())["train"]["schedule_epochs"] == 2


def test_a_resume_at_the_end_mends_the_sampler_a_kill_or_damage_left(tmp_path):
    """The kind's other side: a session killed after its last checkpoint but before the
    mixture was saved, a damaged or forged file (a readable fingerprint over arrays that are not
    a mixture) get the sampler fitted by the resume; a missing grid of a sound one is redrawn."""
    run = tmp_path / "run"
    assert _cli(["train", *TINY, "--epochs", "1", "--out", str(run)])[0] == 0
    path = run / "sampler-gmm.npz"
    with np.load(path) as f:
        forged = {k: f[k] for k in f.files}
    forged["weights"] = np.full_like(forged["weights"], np.nan)
    for damage in ("missing", "damaged", "forged"):
        if damage == "missing":
            path.unlink()
        elif damage == "damaged":
            path.write_bytes(b"not an npz")
        else:
            np.savez(path, **forged)
        code, err = _cli(["train", "--resume", str(run), "--no-progress"])
        assert code == 0 and "nothing to train" in err and "fitted" in err, (damage, err)
        assert _cli(["sample", str(run), "--sampler", "gmm", "--out", str(tmp_path / "s.png")])[0] == 0
    sampler, report = path.read_bytes(), (run / "report.md").read_text()
    (run / "samples-gmm.png").unlink()
    code, err = _cli(["train", "--resume", str(run), "--no-progress"])
    assert code == 0 and "fitted" not in err and (run / "samples-gmm.png").is_file(), err
    assert path.read_bytes() == sampler and (run / "report.md").read_text() == report  # its speed kept too


@pytest.mark.parametrize("content", [b"", b"\x00" * 100, b"not a zip at all", b'{"json": 1}'])
def test_fitted_to_calls_a_damaged_torch_sampler_file_damaged(content, tmp_path):
    """A flow's or second-stage VAE's file of bytes that torch.load cannot unpickle ended a
    resume in a traceback (UnpicklingError) instead of fitting it again."""
    path = tmp_path / "sampler-vae.pt"
    path.write_bytes(content)
    with pytest.raises(UserError, match="not a readable sampler file"):
        samplers.fitted_to(path, "vae")


def test_extending_a_run_fits_its_sampler_again_as_the_user_fitted_it(tmp_path):
    """Training further once fitted the preset's 10 full components over a mixture that wae
    fit-sampler had fitted with the user's settings; now the sampler file records its settings
    and the fit at the end of training repeats them (the defaults when they cannot fit)."""
    run = tmp_path / "run"
    assert _cli(["train", *TINY, "--epochs", "1", "--out", str(run)])[0] == 0
    path = run / "sampler-gmm.npz"
    assert samplers.recorded_fit(path, "gmm") == {"components": 10, "covariance": "full", "seed": 0}
    argv = ["fit-sampler", str(run), "--components", "3", "--covariance", "diag", "--seed", "5", "--no-progress"]
    assert _cli(argv)[0] == 0
    assert samplers.refit_command(run, "gmm").endswith(" --components 3 --covariance diag --seed 5")
    code, err = _cli(["train", "--resume", str(run), "--epochs", "2", "--no-progress"])
    assert code == 0, err
    assert "with the settings of the sampler it replaces (--components 3 --covariance diag --seed 5)" in err
    # the run fits it again itself: no advice to run wae fit-sampler, whose defaults would differ
    assert "sampler-gmm.npz was fitted to the weights before this session: fitted again at the end" in err, err
    assert "refit it with" not in err
    mixture = samplers.load_gmm(path)
    off_diagonal = mixture.covariances - torch.diag_embed(mixture.covariances.diagonal(dim1=1, dim2=2))
    assert mixture.means.shape[0] == 3 and not off_diagonal.any()
    assert samplers.recorded_fit(path, "gmm") == {"components": 3, "covariance": "diag", "seed": 5}
    # settings that do not fit the codes (more components than the 128 codes): the defaults, said
    assert _cli(["fit-sampler", str(run), "--components", "100", "--no-progress"])[0] == 0
    samplers.save_gmm(
        samplers.load_gmm(path),
        path,
        samplers.fitted_to(path, "gmm"),
        {"components": 500, "covariance": "full", "seed": 0},
    )
    code, err = _cli(["train", "--resume", str(run), "--epochs", "3", "--no-progress"])
    assert code == 0 and "do not fit these codes" in err and "the defaults instead" in err, err
    assert samplers.load_gmm(path).means.shape[0] == 10


@pytest.mark.parametrize(
    "entry",
    [
        "not json",
        '{"components": -1, "covariance": "full", "seed": 0}',
        '{"components": 3, "covariance": "spherical", "seed": 0}',
        '{"components": 3, "covariance": "full", "seed": 0, "extra": 1}',
        '{"components": true, "covariance": "full", "seed": 0}',
        '{"components": 3, "covariance": "full", "seed": -2}',
        '[3, "full", 0]',
        "x" * 2000,
        '{"components": 3, "covariance": "full", "seed": 4294967296}',  # beyond scikit-learn's seeds
    ],
)
def test_a_damaged_fit_record_gives_the_defaults(entry, tmp_path):
    """A sampler file's record of its settings is advice: one edited by hand or damaged is not
    used (the defaults are) and never ends a command."""
    mixture = samplers.fit_gmm(torch.randn(200, 2), components=2)
    path = tmp_path / "sampler-gmm.npz"
    samplers.save_gmm(mixture, path)
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    np.savez(path, **arrays, fit=np.array(entry))
    said: list[str] = []
    assert samplers.recorded_fit(path, "gmm", said.append) == {}
    assert said == [
        "sampler-gmm.npz: its record of the settings it was fitted with is damaged or out of range: the defaults"
    ]
    np.savez(path, **arrays, fit=np.array([1.0, 2.0]))  # not a string
    assert samplers.recorded_fit(path, "gmm") == {}
    path.write_bytes(b"damaged")
    assert samplers.recorded_fit(path, "gmm") == {}
    vae = tmp_path / "sampler-vae.pt"
    samplers.save_sampler(samplers.SecondStageVAE(2, hidden=8), tmp_path, "vae", fit={"hidden": 8, "seed": 1})
    assert samplers.recorded_fit(vae, "vae") == {"hidden": 8, "seed": 1}  # the record, read back
    torch.save({"format": 1, "fit": entry}, vae)
    assert samplers.recorded_fit(vae, "vae") == {}


def test_a_run_folder_removed_and_made_again_under_a_running_writer_gets_no_writes(tmp_path, monkeypatch):
    """`rm -rf RUN` while wae train stops after a SIGTERM, then a new run at the same path: the
    old process wrote its last checkpoint, an eval record and the grids into the new run's
    folder, and removed the new run's lock file on its way out. Now it stops with one line
    before writing, and leaves the new holder's lock file alone."""
    import wae.train as train

    run = tmp_path / "run"
    real = train._Loop._evaluate_and_save
    new_lock = run / runs.LOCK

    def replaced_after_the_first(self, epoch):
        metrics = real(self, epoch)
        if epoch == 1:
            shutil.rmtree(run)
            run.mkdir()
            new_lock.write_text("4242\n")  # another writer's lock file, at the same path
        return metrics

    monkeypatch.setattr(train._Loop, "_evaluate_and_save", replaced_after_the_first)
    cfg = wae.config.override(wae.preset("mnist-fast"), dataset="synthetic", synthetic_count=64, synthetic_size=16)
    cfg = wae.config.override(cfg, arch="fast", batch_size=32, epochs=3, precision="fp32", eval_every=0)
    with pytest.raises(UserError, match="was removed, moved or replaced while this process wrote into it"):
        wae.fit(cfg, run, progress=False, log=lambda _: None)
    assert sorted(p.name for p in run.iterdir()) == [runs.LOCK] and new_lock.read_text() == "4242\n"


@pytest.mark.parametrize("made_again", [True, False], ids=["made-again", "removed"])
def test_a_writer_whose_lock_was_replaced_writes_no_record_after_it(made_again, tmp_path, monkeypatch):
    """The hostile pass on the check above: it ran at checkpoint points only, and the records
    logged between them went on into the new run's metrics.jsonl (another seed's steps, past
    the new run's last). Now every record first checks that the lock is still this process's;
    a folder removed and not made again gives the same line, not "No such file"."""
    import wae.train as train

    run = tmp_path / "run"
    real = train._Loop.step
    taken: list[bool] = []

    def step(self, *args, **kwargs):
        parts = real(self, *args, **kwargs)
        if self.state.step == 3 and not taken:  # between two checkpoint points
            taken.append(True)
            shutil.rmtree(run)
            if made_again:
                run.mkdir()
                (run / runs.LOCK).write_text("4242\n")
                (run / "metrics.jsonl").write_text("")
        return parts

    monkeypatch.setattr(train._Loop, "step", step)
    cfg = tiny_config(synthetic_count=192, epochs=2, log_every=1)
    with pytest.raises(UserError, match="was removed, moved or replaced while this process wrote into it"):
        wae.fit(cfg, run, progress=False, log=lambda _: None)
    assert taken
    if made_again:
        assert (run / "metrics.jsonl").read_text() == "" and (run / runs.LOCK).read_text() == "4242\n"
    else:
        assert not run.exists()


# ----------------------------------------------------------------------------- flags


EMPTY = [
    ["train", "--resume", ""],
    ["train", *TINY, "--out", ""],
    ["train", "--data", "", "--out", "x"],
    ["train", "--data", " ", "--out", "x"],
    ["sample", "", "--out", "s.png"],
    ["sample", "RUN", "--out", ""],
    ["reconstruct", "RUN", "--out", ""],
    ["interpolate", "", "--out", "i.png"],
    ["fit-sampler", ""],
    ["evaluate", "RUN", "--out", ""],
    ["report", ""],
    ["report", "RUN", "--screenshot", ""],
    ["compare", "RUN", "", "--out", "c"],
    ["compare", "RUN", "--out", ""],
    ["toy", "--out", ""],
]


@pytest.mark.parametrize("argv", EMPTY, ids=[" ".join(a).replace(" ", "_") or "x" for a in EMPTY])
def test_an_empty_path_is_refused(argv, npz_run, tmp_path):
    _refused(_cli([str(npz_run) if a == "RUN" else a for a in argv], cwd=tmp_path), "is empty")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("flag", [["--preset", "mnist-fast"], ["--overwrite"]])
def test_preset_and_overwrite_with_resume_are_refused(flag, run_copy):
    before = sorted(p.name for p in run_copy.rglob("*"))
    _refused(_cli(["train", "--resume", str(run_copy), *flag]), f"{flag[0]} cannot be given with --resume")
    assert sorted(p.name for p in run_copy.rglob("*")) == before


# ----------------------------------------------------------------------------- disk full, read-only


def _disk_full_after(monkeypatch, calls: int) -> None:
    """os.fsync fails with ENOSPC from its ``calls``-th use on."""
    real, count = os.fsync, [0]

    def fsync(fd: int) -> None:
        count[0] += 1
        if count[0] >= calls:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


@pytest.mark.parametrize("name", ["s.png", "s.npz"])
def test_a_full_disk_while_sampling_is_one_line_and_leaves_no_file(name, npz_run, tmp_path, monkeypatch):
    _disk_full_after(monkeypatch, 1)
    _refused(_cli(["sample", str(npz_run), "--out", str(tmp_path / name)]), str(tmp_path / name), "No space left")
    assert not list(tmp_path.iterdir())


def test_a_full_disk_while_training_is_one_line_and_leaves_whole_files(tmp_path, monkeypatch):
    run = tmp_path / "run"
    _disk_full_after(monkeypatch, 7)  # config.json, the eval record, then the grids and a checkpoint of step 4
    code, err = _cli(["train", *TINY, "--max-steps", "4", "--log-every", "1", "--out", str(run)])
    assert code == 2 and "Traceback" not in err and err.count("error:") == 1, err
    assert err.splitlines()[-1] == f"wae train: error: {run / 'interpolations.png'}: No space left on device"
    for png in run.rglob("*.png"):
        Image.open(png).verify()
    for path in ckpt.run_checkpoints(run):
        ckpt.load(path)
    _no_temporaries(run)
    assert not (run / ".lock").exists()


def test_resuming_a_run_folder_that_cannot_be_written_is_one_line(run_copy, monkeypatch):
    real = os.open

    def read_only(path, flags, *args):  # what a read-only folder answers (the tests run as root)
        if Path(path).parent == run_copy and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real(path, flags, *args)

    monkeypatch.setattr(os, "open", read_only)
    _refused(_cli(["train", "--resume", str(run_copy), "--max-steps", "3"]), f"cannot write the run folder {run_copy}")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_resuming_a_read_only_run_folder_is_one_line(run_copy):
    run_copy.chmod(0o555)
    try:
        _refused(_cli(["train", "--resume", str(run_copy), "--max-steps", "3"]), "Permission denied")
    finally:
        run_copy.chmod(0o755)


# ----------------------------------------------------------------------------- signals


@pytest.mark.slow  # a training process and two signals (one signal is in the default suite)
def test_a_second_signal_stops_at_once_with_one_line_and_whole_files(tmp_path):
    run = tmp_path / "run"
    proc = _train_process(run)
    try:
        _wait_for_steps(proc, run)
        proc.send_signal(signal.SIGTERM)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    # Python runs pending handlers in signal-number order: SIGINT's first, then SIGTERM's stops at once
    assert proc.returncode == 143 and err.splitlines()[-1] == "wae train: stopped by SIGTERM", err
    assert "Traceback" not in err and err.count("\n") <= 3, err
    for png in run.rglob("*.png"):
        Image.open(png).verify()
    for path in ckpt.run_checkpoints(run):
        ckpt.load(path)
    json.loads((run / "config.json").read_text())
    _no_temporaries(run)


def test_sigterm_outside_training_is_one_line(monkeypatch, tmp_path):
    def preempted(args: object) -> int:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
        return 0

    monkeypatch.setitem(cli.COMMANDS, "sample", preempted)
    code, err = _cli(["sample", "RUN", "--out", str(tmp_path / "s.png")])
    assert code == 143 and err == "wae sample: stopped by SIGTERM\n"


# ----------------------------------------------------------------------------- temporary files


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", ""])
    proc.wait()
    return proc.pid


def test_temporary_files_of_killed_writers_are_swept(run_copy, tmp_path):
    dead = _dead_pid()
    stale = [
        run_copy / f".report.md.tmp-{dead}",
        run_copy / f".metrics.json.tmp-{dead}",
        run_copy / "grids" / f".samples-epoch000.png.tmp-{dead}",
    ]
    cache = Path(os.environ["WAE_CACHE_DIR"])
    for sub in ("datasets", "fid"):
        (cache / sub).mkdir(parents=True, exist_ok=True)
    stale += [cache / "datasets" / f".abc.npy.{dead}.final.tmp", cache / "fid" / f".x.npz.tmp-{dead}"]
    alive = run_copy / f".report.md.tmp-{os.getppid()}"  # a writer still at work
    out_tmp = tmp_path / f".s.png.tmp-{dead}"
    for path in [*stale, alive, out_tmp]:
        path.write_bytes(b"half")
    assert _cli(["train", "--resume", str(run_copy), "--max-steps", "3", "--no-progress"])[0] == 0
    assert _cli(["sample", str(run_copy), "--n", "4", "--out", str(tmp_path / "s.png")])[0] == 0
    assert not any(p.exists() for p in stale) and not out_tmp.exists()
    assert alive.exists()


# ----------------------------------------------------------------------------- torchrun


TORCHRUN = shutil.which("torchrun", path=str(Path(sys.executable).parent))


@pytest.mark.slow  # 20 launches of two processes: about 4-5 minutes on 2 cores
@pytest.mark.skipif(TORCHRUN is None, reason="torchrun not installed beside this python")
def test_twenty_torchrun_launches_all_exit_0(tmp_path):
    script = Path(__file__).parent.parent / "scripts" / "torchrun_loop.sh"
    result = subprocess.run(
        ["bash", str(script), "20", str(tmp_path)],
        capture_output=True,
        text=True,
        env={**os.environ, "TORCHRUN": str(TORCHRUN), "OMP_NUM_THREADS": "1"},
        timeout=1800,
    )
    assert result.returncode == 0 and "20 of 20 launches exited 0" in result.stdout, result.stdout


# ------------------------------------------------- the hostile pass of session 33 (helper 44)


def _tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


OVERWRITE = ["train", *TINY, "--max-steps", "1", "--out"]


@pytest.mark.parametrize(
    "name, folder",
    [
        ("checkpoints/best-keep.pt", False),
        ("grids/my-figure.png", False),
        ("tensorboard/other-exp", True),
        ("wandb/my-notes.txt", False),
        ("metrics-paper-final.json", False),
        ("samples-holiday.png", False),
        ("sampler-mine.npz", False),
        ("report-draft.md", False),
        (".notes.txt.tmp-5", False),  # a "temporary file" of a name wae never writes
        (".report.md.tmp-5", True),  # one of wae's names, but a folder
        ("samples.png", True),  # wae writes a file there, not a folder
    ],
)
def test_overwrite_refuses_what_is_not_wae_s_own_inside_its_folders_too(name, folder, run_copy):
    """--overwrite looked at the top-level names alone, by broad patterns: checkpoints/, grids/
    and the trackers' folders were removed whole (a user's checkpoints/best-keep.pt with them),
    and metrics-*.json, samples-*.png, sampler-*.* and any ".X.tmp-N" matched user files. Now
    only the exact names wae writes pass, inside those folders too, and nothing is removed."""
    path = run_copy / name
    if path.exists():
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.mkdir() if folder else path.write_bytes(b"mine")
    before = _tree(run_copy)
    _refused(_cli([*OVERWRITE, str(run_copy), "--overwrite"]), "refusing to replace it", name)
    assert _tree(run_copy) == before


def test_overwrite_replaces_a_run_with_what_its_trackers_and_killed_writers_leave(run_copy):
    """What wae and its trackers write passes: event files, W&B and MLflow run folders, the
    temporary files of killed writers (here of a checkpoint and a grid), an extra checkpoint."""
    made = [
        "tensorboard/events.out.tfevents.1764000000.host.123.0",
        "wandb/run-20261204_101010-wae-0123456789ab/files/config.yaml",
        "wandb/debug.log",
        "mlruns/0/meta.yaml",
        "mlruns/.trash/x",
        "checkpoints/.step-00000009.pt.tmp-999999",
        "checkpoints/step-00000077.pt",
        "grids/samples-epoch012.png",
        "grids/.classes-epoch001.png.tmp-7",
        "samples-flow.png",
        "metrics-vae.json",
        ".report.html.tmp-12",
    ]
    for name in made:
        (run_copy / name).parent.mkdir(parents=True, exist_ok=True)
        (run_copy / name).write_bytes(b"wae's")
    code, err = _cli([*OVERWRITE, str(run_copy), "--overwrite"])
    assert code == 0, err
    assert not any((run_copy / name).exists() for name in made)
    assert (run_copy / "checkpoints" / "step-00000001.pt").is_file()  # the new run's own


def _chattr(flag: str, path: Path) -> bool:
    chattr = shutil.which("chattr")
    if chattr is None:
        return False
    return subprocess.run([chattr, flag, str(path)], capture_output=True).returncode == 0


def test_overwrite_of_a_run_with_an_immutable_file_removes_nothing(run_copy):
    """--overwrite with one file made immutable (chattr +i) removed everything it reached before
    it and failed there: the old run half deleted. Now what would stop the removal is looked for
    first, and the refusal removes nothing."""
    blocked = run_copy / "checkpoints" / ckpt.run_checkpoints(run_copy)[0].name
    if not _chattr("+i", blocked):
        pytest.skip("chattr +i is not permitted here")
    try:
        before = _tree(run_copy)
        _refused(_cli([*OVERWRITE, str(run_copy), "--overwrite"]), "immutable", "nothing was removed", blocked.name)
        assert _tree(run_copy) == before
    finally:
        _chattr("-i", blocked)


def test_overwrite_that_fails_part_way_says_what_is_gone(run_copy, monkeypatch):
    """A removal that fails after the checks (a race) says what is gone and what is left."""
    real = shutil.rmtree

    def failing(path, *args, **kwargs):
        if Path(path).name == "grids":
            raise OSError(errno.EBUSY, "Device or resource busy", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(shutil, "rmtree", failing)
    err = _refused(_cli([*OVERWRITE, str(run_copy), "--overwrite"]), "partly removed", "gone: checkpoints")
    assert "remove the folder yourself" in err and (run_copy / "grids").is_dir()


def test_a_folder_replaced_during_an_evaluation_gets_no_checkpoint_grid_or_report(tmp_path, monkeypatch):
    """The folder removed and made again while the checkpoint point evaluated: the check at its
    start had passed, and the checkpoint, the grids, samples.png and report.md went into the new
    folder. Now every file put into a held run folder checks the lock first (write_atomic)."""
    import wae.train as train

    run = tmp_path / "run"
    real = train._figures

    def replaced_then_drawn(state, data, run_dir, epoch, fixed_z, *check):
        shutil.rmtree(run)
        run.mkdir()
        (run / runs.LOCK).write_text("4242\n")
        return real(state, data, run_dir, epoch, fixed_z, *check)

    monkeypatch.setattr(train, "_figures", replaced_then_drawn)
    with pytest.raises(UserError, match="removed, moved or replaced"):
        wae.fit(tiny_config(epochs=1), run, progress=False, log=lambda _: None)
    assert _tree(run) == [runs.LOCK] and (run / runs.LOCK).read_text() == "4242\n"


def test_a_removed_lock_file_is_named_as_such(tmp_path, monkeypatch):
    """Only RUN/.lock removed under a running writer: the message said the folder was removed or
    replaced. Now it names the lock file."""
    import wae.train as train

    run = tmp_path / "run"
    real = train._Loop.checkpoint_point

    def lock_removed(self, epoch):
        (run / runs.LOCK).unlink()
        return real(self, epoch)

    monkeypatch.setattr(train._Loop, "checkpoint_point", lock_removed)
    with pytest.raises(UserError, match=r"its lock file .*\.lock was removed"):
        wae.fit(tiny_config(epochs=1), run, progress=False, log=lambda _: None)


def test_a_run_saved_with_the_rbf_kernel_and_prior_draws_is_still_usable(tmp_path, monkeypatch):
    """Runs trained before session 32 with --kernel rbf --prior-draws N could not be sampled,
    evaluated, reported, exported or resumed: loading validated them as new runs. The rule
    binds new runs only."""
    import wae.train as train

    run = tmp_path / "old"
    with monkeypatch.context() as old_version:
        old_version.setattr(train, "validate_new", wae.config.validate)
        wae.fit(tiny_config(epochs=1, prior_draws=2, kernel="rbf"), run, progress=False, log=lambda _: None)
    for argv in (
        ["sample", str(run), "--out", str(tmp_path / "s.png")],
        ["export", str(run), "--out", str(tmp_path / "export")],
        ["train", "--resume", str(run), "--epochs", "2", "--no-progress"],
    ):
        code, err = _cli(argv)
        assert code == 0, (argv, err)
    assert json.loads((run / "config.json").read_text())["loss"]["prior_draws"] == 2
    _refused(_cli(["train", *TINY, "--kernel", "rbf", "--prior-draws", "2", "--out", str(tmp_path / "new")]), "imq")


def test_write_atomic_keeps_the_owner_and_group_of_the_file_it_replaces(tmp_path):
    """write_atomic kept the permission bits and lost the owner and group (root rewriting a
    user's report.md left it root's)."""
    if os.geteuid() != 0:
        pytest.skip("giving a file to another user needs root")
    path = tmp_path / "report.md"
    path.write_text("old")
    os.chown(path, 4321, 4322)
    os.chmod(path, 0o640)
    ckpt.write_atomic(path, "new")
    info = path.stat()
    assert (info.st_uid, info.st_gid, info.st_mode & 0o777, path.read_text()) == (4321, 4322, 0o640, "new")


def test_a_fifo_as_metrics_jsonl_is_refused_at_once(run_copy):
    """A FIFO at RUN/metrics.jsonl: the resume blocked on opening it, and SIGTERM was ignored
    while it waited. Now it is refused before the data are read; a FIFO made during a run is
    refused when the next record is written, without blocking."""
    from wae.train import _append_jsonl

    records = run_copy / "metrics.jsonl"
    records.unlink()
    os.mkfifo(records)
    argv = [sys.executable, "-m", "wae", "train", "--resume", str(run_copy), "--epochs", "2", "--no-progress"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "is not a regular file" in done.stderr, done.stderr
    with pytest.raises(UserError, match="is not a regular file"):
        _append_jsonl(records, {"kind": "train", "step": 1})
    (tmp := run_copy / "folder.jsonl").mkdir()
    with pytest.raises(UserError, match="is not a regular file"):
        _append_jsonl(tmp, {"kind": "train", "step": 1})


def test_the_resume_clean_up_keeps_the_users_lines_byte_for_byte(tmp_path):
    """The clean-up read the file as text: Latin-1 bytes became U+FFFD, str.splitlines split a
    line at U+2028, \\x85 or \\x0c, and CRLF became LF. Now it splits at b"\\n" alone and copies
    every line it keeps as it was; only training records after the step and a cut-short last
    record go (and only once the file is written is that said)."""
    from wae.train import _truncate_metrics

    kept = [
        b'{"kind": "train", "step": 2}\n',
        b"caf\xe9 notes in Latin-1\n",
        '{"note": "a\u2028b\u0085c"}\n'.encode(),
        b"form\x0cfeed and a CRLF line\r\n",
        b'{"kind": "eval", "step": 2, "x": 1}\r\n',
    ]
    late = [b'{"kind": "train", "step": 3}\n', b'{"kind": "eval", "step": 4}\r\n']
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(kept[0] + late[0] + b"".join(kept[1:]) + late[1] + b'{"kind": "train", "st')
    said: list[str] = []
    _truncate_metrics(path, 2, said.append)
    assert path.read_bytes() == b"".join(kept)
    assert len(said) == 2 and "2 records" in said[0] and "cut short" in said[1]
    path.write_bytes(kept[0] + b"the user's last line")  # kept, given its line break
    _truncate_metrics(path, 2, said.append)
    assert path.read_bytes() == kept[0] + b"the user's last line\n"


def test_the_resume_clean_up_says_nothing_when_the_write_fails(tmp_path, monkeypatch):
    from wae.train import _truncate_metrics

    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b'{"kind": "train", "step": 3}\n')

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(ckpt, "write_atomic", full)
    said: list[str] = []
    with pytest.raises(OSError):
        _truncate_metrics(path, 2, said.append)
    assert said == [] and path.read_bytes() == b'{"kind": "train", "step": 3}\n'


# ------------------------------------------- the hostile pass of session 34 (helper 45)


def test_a_hard_linked_lock_file_is_refused_and_the_file_it_links_is_kept(run_copy, tmp_path):
    """RUN/.lock made a hard link to a user's file: taking the lock wrote the pid into it."""
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    (run_copy / runs.LOCK).unlink(missing_ok=True)
    os.link(precious, run_copy / runs.LOCK)
    _refused(_cli(["report", str(run_copy)]), "hard link")
    _refused(_cli([*OVERWRITE, str(run_copy), "--overwrite"]), "hard link")
    assert precious.read_text() == "keep me"


def test_a_run_given_through_a_link_that_is_re_pointed_writes_nothing_into_the_new_target(tmp_path, monkeypatch):
    """--out cur, with cur a link re-pointed (mv -T) to another run's folder mid-run: the record
    check took the link's new real path, found no lock of its own there and wrote an eval
    record into the other run's metrics.jsonl. Now every check takes the path as given too."""
    import wae.train as train

    first, other, link = tmp_path / "Z1", tmp_path / "Z2", tmp_path / "cur"
    first.mkdir()
    other.mkdir()
    (other / "metrics.jsonl").write_text('{"kind": "user"}\n')
    link.symlink_to(first)
    real = train._Loop.step
    taken: list[bool] = []

    def step(self, *args, **kwargs):
        parts = real(self, *args, **kwargs)
        if self.state.step == 3 and not taken:
            taken.append(True)
            (tmp_path / "new").symlink_to(other)
            os.replace(tmp_path / "new", link)  # atomic, as mv -T
        return parts

    monkeypatch.setattr(train._Loop, "step", step)
    with pytest.raises(UserError, match="removed, moved or replaced"):
        wae.fit(tiny_config(synthetic_count=192, epochs=2, log_every=1), link, progress=False, log=lambda _: None)
    assert taken and _tree(other) == ["metrics.jsonl"] and (other / "metrics.jsonl").read_text() == '{"kind": "user"}\n'


def test_a_folder_moved_away_and_made_again_empty_is_said_so_and_kept(tmp_path, monkeypatch):
    """mv RUN RUN.old; mkdir RUN under a running writer: the message said the lock file was
    removed, and on its way out the writer removed the user's new empty RUN (it had made the
    folder at that path when it started)."""
    import wae.train as train

    run = tmp_path / "run"
    real = train._Loop.step

    def step(self, *args, **kwargs):
        parts = real(self, *args, **kwargs)
        if self.state.step == 3 and not (tmp_path / "run.old").exists():
            run.rename(tmp_path / "run.old")
            run.mkdir()
        return parts

    monkeypatch.setattr(train._Loop, "step", step)
    with pytest.raises(UserError, match="removed, moved or replaced"):
        wae.fit(tiny_config(synthetic_count=192, epochs=2, log_every=1), run, progress=False, log=lambda _: None)
    assert run.is_dir() and _tree(run) == [] and (tmp_path / "run.old" / "metrics.jsonl").is_file()


def _nest(folder: Path, depth: int) -> None:
    here = os.open(folder, os.O_RDONLY)
    try:
        for _ in range(depth):  # by descriptors: a path 1,200 folders long is past PATH_MAX
            os.mkdir("a", dir_fd=here)
            below = os.open("a", os.O_RDONLY, dir_fd=here)
            os.close(here)
            here = below
    finally:
        os.close(here)


def test_overwrite_of_a_very_deep_tree_is_refused_without_a_traceback(run_copy, tmp_path):
    """A tree 1,200 folders deep: os.walk (recursive in Python 3.11) raised RecursionError while
    looking for mounts, before even the check that the folder is a run's; shutil.rmtree would
    have too. Now a folder that is no run is refused first, the walks are iterative, and a run
    folder deeper than any run's is refused with nothing removed."""
    plain = tmp_path / "plain"
    plain.mkdir()
    _nest(plain, 1200)
    _refused(_cli([*OVERWRITE, str(plain), "--overwrite"]), "not a run folder")
    _unnest(plain)
    deep = run_copy / "wandb" / "run-20240101_120000-abc"
    deep.mkdir(parents=True)
    _nest(deep, runs.MAX_DEPTH + 10)  # 1,200 in the slow test below
    before = sorted(p.name for p in run_copy.iterdir())
    _refused(_cli([*OVERWRITE, str(run_copy), "--overwrite"]), "deeper than any run's", "nothing was removed")
    assert sorted(p.name for p in run_copy.iterdir()) == before


@pytest.mark.slow  # a walk of 1,200 levels by paths takes a minute or two
def test_the_walks_of_overwrite_take_a_tree_deeper_than_the_recursion_limit(run_copy):
    deep = run_copy / "wandb" / "run-20240101_120000-abc"
    deep.mkdir(parents=True)
    _nest(deep, 1200)
    assert runs.mounts_inside(run_copy) == []
    _refused(_cli([*OVERWRITE, str(run_copy), "--overwrite"]), "deeper than any run's", "nothing was removed")
    _unnest(deep)


def _unnest(folder: Path) -> None:
    """Remove a tree that _nest made (shutil.rmtree recurses: 1,200 levels are too many)."""
    fds = [os.open(folder, os.O_RDONLY)]
    try:
        while "a" in os.listdir(fds[-1]):
            fds.append(os.open("a", os.O_RDONLY, dir_fd=fds[-1]))
        for parent in reversed(fds[:-1]):
            os.rmdir("a", dir_fd=parent)
    finally:
        for fd in fds:
            os.close(fd)


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda run: (run / "metrics.jsonl").unlink() or os.mkfifo(run / "metrics.jsonl"), "metrics.jsonl (a FIFO)"),
        (lambda run: (run / "wandb" / "debug.log").mkdir(parents=True), "wandb/debug.log (a folder)"),
        (lambda run: (run / os.fsdecode(b"\xff\xfe")).write_text("mine"), "\\xff\\xfe"),
    ],
    ids=["fifo", "folder-at-a-file-name", "undecodable"],
)
def test_overwrite_names_a_wrong_kind_of_entry_and_undecodable_names_plainly(make, words, run_copy):
    make(run_copy)
    _refused(_cli([*OVERWRITE, str(run_copy), "--overwrite"]), "refusing to replace it", words)


def test_a_dangling_link_as_the_run_folder_is_named(tmp_path):
    (tmp_path / "cur").symlink_to(tmp_path / "nowhere")
    _refused(_cli([*OVERWRITE, str(tmp_path / "cur")]), "is a link to", "which does not exist")


def test_a_removal_that_fails_deep_inside_names_the_whole_path(run_copy, monkeypatch):
    deep = run_copy / "grids" / "samples-epoch777.png"
    deep.write_bytes(b"png")
    if not _chattr("+i", deep):
        pytest.skip("chattr +i is not permitted here")
    monkeypatch.setattr(runs, "_unremovable", lambda folder, entries: None)  # a change after the checks
    try:
        err = _refused(_cli([*OVERWRITE, str(run_copy), "--overwrite"]), "partly removed")
        assert str(deep) in err, err
    finally:
        _chattr("-i", deep)


def test_an_immutable_file_on_resume_gets_a_hint(run_copy):
    config = run_copy / "config.json"
    if not _chattr("+i", config):
        pytest.skip("chattr +i is not permitted here")
    try:
        err = _refused(_cli(["train", "--resume", str(run_copy), "--epochs", "3", "--no-progress"]))
        assert "Operation not permitted" in err and "lsattr" in err, err
    finally:
        _chattr("-i", config)


def test_the_resume_clean_up_keeps_a_file_of_carriage_return_line_ends(tmp_path):
    """A file with CR line ends and no final line break is one "line" that opens with "{": the
    clean-up removed all of it (user notes and records before the checkpoint) as a record cut
    short. A cut record begins as training's do, has no CR and is at most 1 MiB."""
    from wae.train import _truncate_metrics

    path = tmp_path / "metrics.jsonl"
    text = b'{"kind": "eval", "step": 4}\r{"kind": "user", "note": "mine"}\r{"kind": "user", "v": 2}'
    path.write_bytes(text)
    said: list[str] = []
    _truncate_metrics(path, 4, said.append)
    assert path.read_bytes() == text + b"\n" and said == []
    path.write_bytes(b'{"kind": "train", "step": 2}\n{"not": "a wae record, cut"')
    _truncate_metrics(path, 4, said.append)
    assert path.read_bytes() == b'{"kind": "train", "step": 2}\n{"not": "a wae record, cut"\n' and said == []
    path.write_bytes(b'{"kind": "train", "step": 2}\n{"kind": "tra')
    _truncate_metrics(path, 4, said.append)
    assert path.read_bytes() == b'{"kind": "train", "step": 2}\n' and "13 bytes" in said[0]


@pytest.mark.parametrize(
    "flag", [["--prior-var", "1e-300"], ["--prior-var", "1e300"], ["--kernel-scales", "1", "1e20"]]
)
def test_kernel_settings_beyond_float32_are_refused_before_training(flag, tmp_path):
    # named by the flag, the value as typed (1e20, not the float's 1e+20)
    err = _refused(_cli(["train", *TINY, *flag, "--out", str(tmp_path / "run")]), "be from 1e-12 to 1e+12")
    assert f"argument {flag[0]}: must" in err and f"got {flag[-1]} " in err, err
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------- the code review of session 34 (helper 46)


def test_a_run_folder_given_through_a_link_and_dot_dot_is_written_where_the_system_puts_it(tmp_path):
    """RUN given as sub/ln/../run with ln a link: abspath took ".." before the link and the lock
    checks looked for the lock in the wrong folder, so the first write said the folder was
    removed. The system follows the link first: the run is tmp/run."""
    (tmp_path / "real").mkdir()
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "ln").symlink_to(tmp_path / "real")
    wae.fit(tiny_config(epochs=1), tmp_path / "sub" / "ln" / ".." / "run", progress=False, log=lambda _: None)
    assert ckpt.run_checkpoints(tmp_path / "run") and not (tmp_path / "sub" / "run").exists()


def test_a_hard_link_to_a_held_lock_says_who_holds_it(run_copy, tmp_path):
    """A snapshot (cp -al, rsync --link-dest) hard-links a live writer's lock file: the second
    command said "remove it", which would let a second writer in. The holder comes first."""
    holder = _hold_lock(run_copy)
    try:
        os.link(run_copy / runs.LOCK, tmp_path / "snapshot.lock")
        _refused(_cli(["report", str(run_copy)]), "in use by another wae process", f"pid {holder.pid}")
    finally:
        holder.kill()
        holder.wait()


def test_write_atomic_keeps_going_when_the_owner_cannot_be_kept(tmp_path, monkeypatch):
    """In a user namespace chown to an unmapped owner fails with EINVAL: the write failed."""
    path = tmp_path / "report.md"
    path.write_text("old")

    def refused(*args):
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(os, "chown", refused)
    monkeypatch.setattr(os, "geteuid", lambda: 4321)  # not the file's owner: the owner is to be given back
    ckpt.write_atomic(path, bytearray(b"new"))  # a bytearray is bytes, not chunks of ints
    assert path.read_text() == "new"


def test_the_rbf_rule_binds_a_new_run_and_a_resume_needs_a_run(tmp_path):
    """fit(..., resume=True) into a folder without a run started a new one, under the saved
    runs' rules (session 34: then the new runs'); since session 52 it is refused, as
    `wae train --resume` refuses it: a mistyped folder trained anew from scratch."""
    with pytest.raises(UserError, match="new is not a run folder"):
        wae.fit(tiny_config(prior_draws=2, kernel="rbf"), tmp_path / "new", resume=True, progress=False)
    with pytest.raises(UserError, match="needs the imq kernel"):
        wae.fit(tiny_config(prior_draws=2, kernel="rbf"), tmp_path / "new", progress=False)
    _refused(
        _cli(["train", "--preset", "mnist-quality", "--kernel", "rbf", "--out", str(tmp_path / "q")]),
        "(the mnist-quality preset's)",
    )


def test_read_config_json_takes_a_path_as_a_string_and_refuses_what_is_no_path(npz_run):
    loaded, cfg = ckpt.read_config_json(str(npz_run / "config.json"))  # was AttributeError on a str
    assert cfg == wae.Config.from_dict(loaded) and loaded["data"]["dataset"] == "npz"
    for value in (None, b"config.json", 5):
        with pytest.raises(UserError, match="a config file must be a path; got "):
            ckpt.read_config_json(value)  # type: ignore[arg-type]


def test_a_damaged_file_is_refused_with_why_not_the_errors_class(run_copy, tmp_path):
    # "sampler-gmm.npz is not a readable sampler file (ValueError)", "(EOFError)", "(BadZipFile)",
    # "'means' is damaged or not a numpy array (KeyError)" named a class of error; a checkpoint of
    # an older pickle protocol printed torch's warning above the refusal (two lines)
    sampler = run_copy / "sampler-gmm.npz"
    good = sampler.read_bytes()
    buffer = io.BytesIO()
    np.savez(buffer, weights=np.ones(1))
    sample = ["sample", str(run_copy), "--sampler", "gmm", "--n", "4", "--out", str(tmp_path / "s.png")]
    for content, said in (
        (b"garbage", "not a file of arrays: another kind of file, or one holding Python objects"),
        (b"", "(empty, or cut short)"),
        (good[: len(good) // 2], "(not a zip archive, as .npz files and checkpoints are: cut short"),
        (buffer.getvalue(), f"{sampler} has no 'means' array"),
    ):
        sampler.write_bytes(content)
        _refused(_cli(sample), str(sampler), said)
    sampler.write_bytes(good)
    newest = ckpt.run_checkpoints(run_copy)[-1]
    newest.write_bytes(pickle.dumps({"format": 1}, protocol=4))  # not torch.save's
    _refused(_cli(sample), f"checkpoint {newest} is corrupt or not a wae checkpoint (not a file that torch.save wrote")
    newest.write_text("hello")  # torch: "KeyError: 101", its own internals
    _refused(_cli(sample), f"checkpoint {newest} is corrupt or not a wae checkpoint (not a file that torch.save wrote")
    assert not (tmp_path / "s.png").exists()


def test_a_complex_or_npy_sampler_file_is_refused_not_read_with_a_warning(run_copy, tmp_path):
    # a complex mixture was sampled with torch's "Casting complex values to real discards the
    # imaginary part" warning; a plain .npy under the name failed on "the context manager protocol"
    sampler = run_copy / "sampler-gmm.npz"
    with np.load(sampler) as f:
        arrays = {k: f[k].astype(complex) if f[k].dtype.kind == "f" else f[k] for k in f.files}
    np.savez(sampler, **arrays)
    sample = ["sample", str(run_copy), "--sampler", "gmm", "--n", "4", "--out", str(tmp_path / "s.png")]
    _refused(_cli(sample), f"{sampler}: 'weights' holds complex numbers; give real ones")
    with open(sampler, "wb") as f:
        np.save(f, np.zeros((3, 3)))
    _refused(_cli(sample), "(one .npy array, not an .npz archive of arrays)")
    assert not (tmp_path / "s.png").exists()


def test_a_checkpoint_name_that_is_no_file_is_refused_not_read_as_no_checkpoint_yet(run_copy, tmp_path):
    # a resume took a folder, FIFO or link to /dev/zero in the newest checkpoint's place as "no
    # checkpoint yet" and trained the run afresh over its records (rc 0)
    newest = ckpt.run_checkpoints(run_copy)[-1]
    for make in (lambda: newest.symlink_to("/dev/zero"), lambda: os.mkfifo(newest), lambda: newest.mkdir()):
        if newest.is_dir() and not newest.is_symlink():
            newest.rmdir()
        elif os.path.lexists(newest):
            newest.unlink()
        make()
        before = {p.relative_to(run_copy): p.read_bytes() for p in run_copy.rglob("*") if p.is_file()}
        for argv in (
            ["train", "--resume", str(run_copy), "--epochs", "2", "--no-progress"],
            ["sample", str(run_copy), "--out", str(tmp_path / "s.png")],
        ):
            _refused(_cli(argv), f"no readable checkpoint: {newest} is not a regular file")
        assert {p.relative_to(run_copy): p.read_bytes() for p in run_copy.rglob("*") if p.is_file()} == before


def test_a_data_file_that_is_no_regular_file_is_refused_not_read(tmp_path):
    # an .npz linked to /dev/zero filled the memory (killed at 24 GB) and a FIFO blocked for
    # ever, in the check of whether it is a table; a FIFO .csv was "data file not found"
    for name, make in (
        ("zero.npz", lambda p: p.symlink_to("/dev/zero")),
        ("fifo.npz", lambda p: os.mkfifo(p)),
        ("fifo.csv", lambda p: os.mkfifo(p)),
        ("folder.npy", lambda p: p.mkdir()),
        ("nowhere.npz", lambda p: p.symlink_to(tmp_path / "none")),
    ):
        make(tmp_path / name)
        argv = ["train", "--data", str(tmp_path / name), "--out", str(tmp_path / "run"), "--no-progress"]
        _refused(_cli(argv), f"{tmp_path / name} is not a regular file (a folder, FIFO, device")
        assert not (tmp_path / "run").exists()
    _refused(
        _cli(["train", "--data", str(tmp_path / "none.npz"), "--out", str(tmp_path / "run")]), "data file not found"
    )


def test_a_records_file_that_is_no_file_is_said_when_read_as_no_records(run_copy):
    # a FIFO or a folder in metrics.jsonl's place was read by wae report as a run with no records,
    # without a word
    records = run_copy / "metrics.jsonl"
    records.unlink()
    os.mkfifo(records)
    code, err = _cli(["report", str(run_copy), "--no-progress"])
    assert code == 0 and f"warning: {records} is not a regular file (a folder, FIFO" in err, err
    assert "read as no records" in err and err.count("\n") == 1, err  # said once, however many readers


@pytest.mark.parametrize("content", [b"only text\n", b"42\n"])
def test_wae_runs_says_when_the_records_it_read_were_damaged(run_copy, content):
    # the listing silenced every warning: a run with trained weights and a metrics.jsonl of
    # text was listed as "no evaluation yet", with no hint that its records were damaged
    (run_copy / "metrics.jsonl").write_bytes(content)
    cells = list_line(run_copy)
    assert "no evaluation yet" in cells[-1] and "warning: skipped 1 line(s) of metrics.jsonl" in cells[-1], cells
    os.remove(run_copy / "metrics.jsonl")
    os.mkfifo(run_copy / "metrics.jsonl")  # no regular file: read as no records, said
    assert "warning: metrics.jsonl is not a regular file" in list_line(run_copy)[-1]


def test_a_diverged_training_stops_before_saving_weights_every_command_would_refuse(tmp_path):
    # with --lr 1e5 the loss stayed finite while batch norm's running variance became infinite:
    # the checkpoint was saved, and the run's own report then refused it ("holds NaN or infinite
    # weights"), exit code 2 after the training, every later command refusing the run
    code, err = _cli(["train", *TINY, "--max-steps", "2", "--lr", "1e5", "--out", str(tmp_path / "run")])
    assert code == 1 and err.count("\n") == 1, err
    assert "training stopped: the weights hold NaN or infinite values at step 2" in err, err
    assert "training diverged (train anew with a lower learning rate, cost scale, input noise or code noise)" in err
    assert "they are not saved; last checkpoint kept: none" in err
    assert not ckpt.run_checkpoints(tmp_path / "run")


def test_a_stop_at_a_non_finite_first_step_prints_no_warning_of_torch(tmp_path, tiny_data, monkeypatch, recwarn):
    # "Detected call of lr_scheduler.step() before optimizer.step()" came above the stop (--lam 1e39,
    # now refused as the flag is read): the schedule's step after a skipped update is ours
    from wae import train as train_module

    real = train_module.batches

    def batches(images, batch_size, seed, epoch, start=0, **shard):  # the first batch NaN
        for i, batch in enumerate(real(images, batch_size, seed, epoch, start, **shard)):
            yield torch.full(batch.shape, float("nan")) if epoch == 0 and start + i == 0 else batch

    monkeypatch.setattr(train_module, "batches", batches)
    with pytest.raises(FloatingPointError, match="non-finite loss at step 1"):
        train_module.fit(tiny_config("mmd"), tmp_path / "run", data=tiny_data, progress=False, log=lambda _: None)
    assert not [w for w in recwarn if "lr_scheduler" in str(w.message)], [str(w.message) for w in recwarn]
