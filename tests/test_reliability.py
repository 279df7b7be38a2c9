"""Crash safety: SIGKILL at many points then resume gives bitwise the run that never died;
checkpoints are never left truncated; a damaged newest checkpoint falls back to the one before;
non-finite losses stop the run (or are skipped) without touching the parameters."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from wae import checkpoint as ckpt
from wae import train as train_module
from wae.data import make_synthetic

from .conftest import run_cli, tiny_config

pytestmark = pytest.mark.faults


def _tiny_npz(path: Path) -> Path:
    data = make_synthetic(count=160, size=16, seed=1)
    np.savez(
        path,
        x_train=(data.train[:, 0].numpy() * 255).astype(np.uint8),
        x_test=(data.test[:, 0].numpy() * 255).astype(np.uint8),
    )
    return path


def _train_cmd(data: Path, run: Path) -> list[str]:
    # 160 images, batch 16: 10 steps per epoch, checkpoints at steps 10, 20, 30
    return [
        sys.executable, "-m", "wae", "train", "--data", str(data), "--batch-size", "16", "--epochs", "3",
        "--precision", "fp32", "--log-every", "1", "--threads", "1", "--no-progress", "--fit-sampler", "none",
        "--out", str(run),
    ]  # fmt: skip


def _run(cmd: list[str], fault: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "WAE_FAULT"}
    if fault:
        env["WAE_FAULT"] = fault
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def _final_model(run: Path) -> dict[str, torch.Tensor]:
    found = ckpt.load_latest(run)
    assert found is not None and found[0]["step"] == 30
    return found[0]["model"]


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    data = _tiny_npz(root / "tiny.npz")
    code, err = run_cli(_train_cmd(data, root / "baseline")[3:])  # in this process: one torch import less
    assert code == 0, err
    return data, _final_model(root / "baseline")


# (fault point, the step of the newest checkpoint that must survive the kill; -1: none yet).
# Each case starts two processes (10-20 s on 2 cores): the default suite kills half way through
# writing a checkpoint with an older one in place; the others run with the slow tests (CI).
_slow = pytest.mark.slow
KILL_POINTS = [
    pytest.param("step:4", -1, marks=_slow),  # before any checkpoint
    pytest.param("checkpoint-write:1", -1, marks=_slow),  # half way through writing the first checkpoint (step 10)
    pytest.param("checkpoint-saved:1", 10, marks=_slow),  # just after the first checkpoint is in place
    pytest.param("step:15", 10, marks=_slow),  # mid-epoch
    ("checkpoint-write:2", 10),  # half way through writing the second checkpoint (step 20)
    pytest.param("step:27", 20, marks=_slow),  # with two checkpoints kept
]


@pytest.mark.parametrize("fault,survivor", KILL_POINTS)
def test_sigkill_then_resume_gives_the_uninterrupted_weights(baseline, tmp_path, fault, survivor):
    data, expected = baseline
    run = tmp_path / "run"
    killed = _run(_train_cmd(data, run), fault=fault)
    assert killed.returncode == -signal.SIGKILL
    kept = ckpt.run_checkpoints(run)
    assert [ckpt.load(p)["step"] for p in kept[:1]] == ([survivor] if survivor >= 0 else [])
    for path in kept:  # every checkpoint file that exists is whole
        ckpt.load(path)
    code, err = run_cli(["train", "--resume", str(run), "--no-progress"])  # files alone carry the run over
    assert code == 0, err
    final = _final_model(run)
    assert all(torch.equal(final[k], expected[k]) for k in expected)
    assert not list((run / "checkpoints").glob(".*tmp*")), "a stale temporary file was left behind"


@pytest.mark.slow
def test_a_damaged_newest_checkpoint_falls_back_to_the_previous(baseline, tmp_path):
    data, expected = baseline
    run = tmp_path / "run"
    assert _run(_train_cmd(data, run), fault="step:27").returncode == -signal.SIGKILL
    newest = ckpt.run_checkpoints(run)[0]
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 3])
    resumed = _run([sys.executable, "-m", "wae", "train", "--resume", str(run), "--no-progress"])
    assert resumed.returncode == 0, resumed.stderr
    assert str(newest) in resumed.stderr and "resuming from" in resumed.stderr
    final = _final_model(run)
    assert all(torch.equal(final[k], expected[k]) for k in expected)


def _nan_at(step_index: int):
    """A stand-in for data.batches that turns the batch of global step ``step_index`` into NaNs."""
    real = train_module.batches

    def batches(images, batch_size, seed, epoch, start=0, **shard):
        steps_per_epoch = len(images) // batch_size
        for i, batch in enumerate(real(images, batch_size, seed, epoch, start, **shard)):
            if epoch * steps_per_epoch + start + i + 1 == step_index:
                batch = torch.full(batch.shape, float("nan"))
            yield batch

    return batches


@pytest.mark.parametrize("objective", ["mmd", "gan"])
def test_a_nan_loss_stops_the_run_and_keeps_the_last_checkpoint(tmp_path, tiny_data, monkeypatch, objective):
    monkeypatch.setattr(train_module, "batches", _nan_at(6))
    with pytest.raises(FloatingPointError, match=r"step 6 \(.*recon"):
        train_module.fit(tiny_config(objective), tmp_path / "run", data=tiny_data, progress=False, log=lambda _: None)
    kept = ckpt.run_checkpoints(tmp_path / "run")
    assert [ckpt.load(p)["step"] for p in kept] == [4]
    lines = (tmp_path / "run" / "metrics.jsonl").read_text()
    assert '"kind": "nonfinite", "step": 6' in lines


@pytest.mark.parametrize("objective", ["mmd", "gan"])
def test_skip_nonfinite_skips_and_counts_the_batch(tmp_path, tiny_data, monkeypatch, objective):
    monkeypatch.setattr(train_module, "batches", _nan_at(6))
    cfg = tiny_config(objective, skip_nonfinite=True)
    result = train_module.fit(cfg, tmp_path / "run", data=tiny_data, progress=False, log=lambda _: None)
    assert result.step == 12
    assert all(torch.isfinite(v).all() for v in result.model.state_dict().values() if v.is_floating_point())
    payload = ckpt.load(ckpt.run_checkpoints(tmp_path / "run")[0])
    if objective == "gan":
        assert all(torch.isfinite(v).all() for v in payload["adversary"].values())
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "nonfinite"] == [6]
    assert [r["skipped"] for r in records if r["kind"] == "train"][-1] == 1


def test_a_partial_last_line_of_metrics_is_dropped_on_resume(tmp_path, tiny_data):
    cfg = tiny_config(max_steps=6)
    train_module.fit(cfg, tmp_path / "run", data=tiny_data, progress=False, log=lambda _: None)
    with open(tmp_path / "run" / "metrics.jsonl", "a") as f:
        f.write('{"kind": "train", "step": 7, "tot')
    cfg.train.max_steps = 8
    train_module.fit(cfg, tmp_path / "run", data=tiny_data, resume=True, progress=False, log=lambda _: None)
    steps = [json.loads(line)["step"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and steps.count(7) == 1 and steps[-1] == 8


def test_write_atomic_replaces_whole_files_and_leaves_no_temporary_behind(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"
    ckpt.write_atomic(path, "old\n")
    ckpt.write_atomic(path, b"new bytes")
    assert path.read_bytes() == b"new bytes"

    def full_disk(fd, *args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError):
        ckpt.write_atomic(path, "never written")
    assert path.read_bytes() == b"new bytes"  # the old file, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_npz_bytes_read_back_as_the_arrays():
    import io

    arrays = {"mean": np.arange(3.0), "cov": np.eye(3, dtype=np.float32)}
    with np.load(io.BytesIO(ckpt.npz_bytes(**arrays))) as f:
        assert all(np.array_equal(f[name], value) and f[name].dtype == value.dtype for name, value in arrays.items())


def test_a_skipped_nonfinite_batch_leaves_the_weight_average_finite(tmp_path, tiny_data, monkeypatch):
    monkeypatch.setattr(train_module, "batches", _nan_at(6))
    cfg = tiny_config("mmd", skip_nonfinite=True, ema=0.9)
    result = train_module.fit(cfg, tmp_path / "run", data=tiny_data, progress=False, log=lambda _: None)
    assert result.step == 12
    averaged = ckpt.load(ckpt.run_checkpoints(tmp_path / "run")[0])["ema"]
    assert all(torch.isfinite(v).all() for v in averaged.values() if v.is_floating_point())
    assert int(averaged["n_averaged"]) == 11  # the skipped step is not averaged in
