"""Cases a hostile user found after the second reliability pass (docs/reliability.md): a lock
file that is a link, settings carried over from another run, empty and non-path arguments,
crafted samplers with finite but absurd values, undefined figures written as JSON, a resume
that would train nothing, settings files that are not files, a .npy named .npz."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import torch

import wae
from wae.config import UserError
from wae.samplers import GMM_FILE

from .conftest import run_cli

TINY = ["--dataset", "synthetic", "--batch-size", "32", "--precision", "fp32", "--no-progress"]


def _one_line(code: int, err: str) -> None:
    assert code == 2, err
    assert err.count("\n") == 1 and "error" in err and "Traceback" not in err, err


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile") / "run"
    code, err = run_cli(["train", *TINY, "--epochs", "2", "--out", str(folder)])
    assert code == 0, err
    return folder


def _copy(run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    return copy


@pytest.mark.parametrize("command", [["evaluate", "RUN", "--no-fid", "--n", "8"], ["fit-sampler", "RUN"]])
def test_a_lock_file_that_is_a_link_is_refused_and_its_target_untouched(run, tmp_path, command):
    copy = _copy(run, tmp_path)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    os.symlink(victim, copy / ".lock")
    _one_line(*run_cli([str(copy) if a == "RUN" else a for a in command]))
    assert victim.read_text() == "precious\n" and (copy / ".lock").is_symlink()


def test_a_new_run_from_a_runs_config_json_plans_its_own_schedule(run, tmp_path):
    argv = ["train", "--config", str(run / "config.json"), "--epochs", "6", "--max-steps", "1"]
    code, err = run_cli([*argv, "--out", str(tmp_path / "n")])
    assert code == 0, err
    cfg = json.loads((tmp_path / "n" / "config.json").read_text())
    assert cfg["train"]["schedule_epochs"] == 6  # not the 2 of the run the file came from


@pytest.mark.parametrize("argv", [["train", *TINY, "--config", "", "--max-steps", "1"]])
def test_an_empty_config_path_is_refused(tmp_path, argv):
    _one_line(*run_cli(argv, tmp_path))
    assert not any(tmp_path.iterdir())


def test_the_python_api_refuses_empty_and_non_path_folders(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    images = torch.rand(40, 1, 16, 16)
    for out in ("", " ", 3, b"run"):
        with pytest.raises(UserError, match="path"):
            wae.fit_tensor(images, out=out, max_steps=1, batch_size=8, precision="fp32")
    for where in ("", None, 3):
        with pytest.raises(UserError, match="path"):
            wae.load_model(where)
    assert not any(tmp_path.iterdir())


def _gmm(copy, **arrays):
    base = {"weights": np.array([1.0]), "means": np.zeros((1, 8)), "covariances": np.eye(8)[None]}
    np.savez(copy / GMM_FILE, **{**base, **arrays})


@pytest.mark.parametrize(
    "arrays", [{"covariances": 1e300 * np.eye(8)[None]}, {"means": np.full((1, 8), 1e30)}], ids=["cov", "mean"]
)
def test_a_mixture_with_absurd_finite_values_is_refused(run, tmp_path, arrays):
    copy = _copy(run, tmp_path)
    _gmm(copy, **arrays)
    _one_line(*run_cli(["sample", str(copy), "--sampler", "gmm", "--n", "4", "--out", str(tmp_path / "s.npz")]))
    assert not (tmp_path / "s.npz").exists()


def _flow_file(path, **changes):
    pytest.importorskip("zuko")
    from wae.samplers import FlowSampler

    flow = FlowSampler(8, 1, 8, 4)
    state = flow.state_dict()
    settings = dict(flow.settings)
    payload = {"format": 1, "settings": settings, "state": state}
    for key, value in changes.items():
        if key in state:
            state[key] = torch.full_like(state[key], value)
        elif key in settings:
            settings[key] = value
        else:
            payload[key] = value
    torch.save(payload, path)


@pytest.mark.parametrize(
    "changes", [{"std": 0.0}, {"mean": 1e30}, {"format": 2}, {"transforms": "1"}], ids=["std0", "mean", "fmt", "str"]
)
def test_a_flow_with_absurd_or_mistyped_contents_is_refused(run, tmp_path, changes):
    copy = _copy(run, tmp_path)
    _flow_file(copy / "sampler-flow.pt", **changes)
    _one_line(*run_cli(["sample", str(copy), "--sampler", "flow", "--n", "4", "--out", str(tmp_path / "s.npz")]))


def test_a_huge_flow_is_refused_before_any_allocation(run, tmp_path):
    pytest.importorskip("zuko")
    copy = _copy(run, tmp_path)
    _one_line(*run_cli(["fit-sampler", str(copy), "--kind", "flow", "--transforms", "100000000"]))
    assert not (copy / "sampler-flow.pt").exists()


def test_undefined_figures_are_written_as_strict_json(tmp_path):
    np.savez(tmp_path / "four.npz", x_train=np.random.default_rng(0).integers(0, 255, (4, 16, 16), dtype=np.uint8))
    code, err = run_cli(
        [
            "train",
            "--data",
            "four.npz",
            "--batch-size",
            "2",
            "--max-steps",
            "2",
            "--precision",
            "fp32",
            "--no-progress",
            "--out",
            "r",
        ],
        tmp_path,
    )
    assert code == 0, err

    def refuse(constant: str) -> float:
        raise AssertionError(f"bare {constant} in JSON")

    records = [
        json.loads(line, parse_constant=refuse) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()
    ]
    evals = [r for r in records if r["kind"] == "eval"]
    assert evals and evals[-1]["code_var_mean"] is None  # one test image: no variance
    assert run_cli(["report", str(tmp_path / "r")])[0] == 0


def test_a_resume_that_would_train_nothing_is_refused_and_changes_nothing(run, tmp_path):
    copy = _copy(run, tmp_path)
    before = {p.name: p.read_bytes() for p in copy.iterdir() if p.is_file()}
    _one_line(*run_cli(["train", "--resume", str(copy), "--epochs", "1", "--no-progress"]))
    assert {p.name: p.read_bytes() for p in copy.iterdir() if p.is_file()} == before


@pytest.mark.parametrize("kind", ["fifo", "device", "folder"])
def test_a_config_that_is_not_a_file_is_refused_at_once(tmp_path, kind):
    path = tmp_path / "c.toml"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()
    else:
        path = "/dev/zero"
    _one_line(*run_cli(["train", "--config", str(path), "--print-config"], tmp_path))


def test_a_plain_npy_named_npz_is_refused(tmp_path):
    np.save(tmp_path / "plain.npy", np.zeros((10, 8, 8), np.uint8))
    (tmp_path / "plain.npy").rename(tmp_path / "plain.npz")
    _one_line(*run_cli(["train", "--data", "plain.npz", "--no-progress", "--out", "r"], tmp_path))
    assert not (tmp_path / "r").exists()
