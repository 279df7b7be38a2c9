"""Devices and many processes: sharding, device choice, and ``torchrun`` with 2 CPU processes
(gloo) training exactly as one process on the same global batches, resume included."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import tiny_config
from wae import checkpoint as ckpt
from wae.cli import main
from wae.config import UserError, resolve_precision
from wae.data import batches
from wae.parallel import Processes, gather, resolve_device, shard
from wae.train import check_fits

TORCHRUN = shutil.which("torchrun", path=str(Path(sys.executable).parent))
# no batch norm: CPU processes cannot share batch statistics (CUDA runs use SyncBatchNorm)
ARGS = [
    "--dataset", "synthetic", "--batch-size", "32", "--precision", "fp32", "--no-batch-norm",
    "--log-every", "1", "--eval-every", "0", "--no-progress",
]  # fmt: skip


def test_the_shards_of_a_batch_are_the_one_process_batch():
    images = torch.arange(100)
    whole = list(batches(images, 20, seed=3, epoch=1))
    for world in (2, 4):
        parts = [list(batches(images, 20, seed=3, epoch=1, rank=r, world=world)) for r in range(world)]
        for b, batch in enumerate(whole):
            assert torch.equal(torch.cat([parts[r][b] for r in range(world)]), batch)
    rows = torch.arange(12).view(6, 2)
    assert torch.equal(torch.cat([shard(rows, Processes(r, 3)) for r in range(3)]), rows)
    assert gather(rows, Processes()) is rows


def test_a_batch_that_does_not_split_over_the_processes_is_refused(tiny_data):
    check_fits(tiny_config(batch_size=32), tiny_data, world=4)
    with pytest.raises(UserError, match="does not split into 3"):
        check_fits(tiny_config(batch_size=32), tiny_data, world=3)
    with pytest.raises(UserError, match="at least 2"):
        check_fits(tiny_config(batch_size=32), tiny_data, world=32)


def test_devices_and_precisions_resolve_or_give_a_clear_error():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        # a Python caller's config is named by its field, not by a flag it never gave
        with pytest.raises(UserError, match="^train.device cuda: no CUDA GPU"):
            resolve_device("cuda")
    with pytest.raises(UserError, match="^train.precision fp16 needs a CUDA device"):
        resolve_precision(tiny_config(precision="fp16"), "cpu")
    # a Python caller's value outside the choices: named, not torch's RuntimeError or TypeError,
    # and not taken (a "cuda:5" on a machine without CUDA was returned as a device)
    for name in ("tpu", None, "cuda:5", "CPU"):
        with pytest.raises(UserError, match="^train.device must be one of auto, cpu, cuda, mps; got "):
            resolve_device(name)  # type: ignore[arg-type]
    with pytest.raises(UserError, match="^train.precision must be one of auto, fp32, bf16, fp16; got 'fp8'"):
        resolve_precision(tiny_config(precision="fp8"), "cpu")
    with pytest.raises(UserError, match=r"fp16 needs a CUDA device \(use fp32 or bf16\)"):  # not "on a CPU"
        resolve_precision(tiny_config(precision="fp16"), "mps")
    assert resolve_precision(tiny_config(precision="auto"), "mps").train.precision == "fp32"
    assert resolve_precision(tiny_config(precision="auto"), "cpu").train.precision in ("bf16", "fp32")


def _launch(tmp: Path, *program: str) -> tuple[int, str]:
    """``torchrun`` of ``program`` (``-m wae ...`` or a script and its arguments) on 2 CPU
    processes in ``tmp``: its exit code and stderr."""
    assert TORCHRUN is not None
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [TORCHRUN, "--standalone", "--nproc-per-node", "2", *program]
    # a session of its own, so that a hung launch is killed with its workers
    launch = subprocess.Popen(cmd, cwd=tmp, env=env, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, stderr = launch.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(launch.pid, signal.SIGKILL)
        raise
    return launch.returncode, stderr


def _torchrun(tmp: Path, *argv: str) -> None:
    code, stderr = _launch(tmp, "-m", "wae", "train", *argv)
    assert code == 0, stderr[-3000:]


def _losses(run: Path) -> list[dict[str, float]]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    keep = ("total", "recon", "penalty", "adversary")
    return [{k: r[k] for k in keep if k in r} for r in records if r["kind"] == "train"]


def _assert_same_training(one: Path, two: Path, steps: int) -> None:
    losses_one, losses_two = _losses(one), _losses(two)
    assert len(losses_one) == len(losses_two) == steps
    for a, b in zip(losses_one, losses_two, strict=True):
        assert b == pytest.approx(a, rel=1e-5, abs=1e-6)
    final_one, final_two = ckpt.load_latest(one), ckpt.load_latest(two)
    assert final_one is not None and final_two is not None
    assert final_one[0]["step"] == final_two[0]["step"] == steps
    for key in ("model", "adversary"):
        for name, value in final_one[0].get(key, {}).items():
            # Adam turns rounding-level gradients into steps of any sign (its update is about lr
            # whatever the gradient's size), so a few weights move by up to a fraction of a step:
            # measured on an AMD EPYC (AVX2), 1 of 131,072 and 5 of 100,352 weights by 8e-5 and
            # 2e-4 after 3 WAE-GAN steps, all others within 2e-5. A wrong gradient moves many
            # weights by about one step, lr = 1e-3: at most 1 in 2,000 may lie beyond 5e-5.
            other = final_two[0][key][name]
            assert other.shape == value.shape and other.dtype == value.dtype, name
            if not value.is_floating_point():
                assert torch.equal(other, value), name
                continue
            far = int(((other - value).abs() > 5e-5).sum())
            assert far <= max(2, value.numel() // 2000), f"{name}: {far} of {value.numel()} weights differ by > 5e-5"


@pytest.mark.slow  # four launches of two processes: 20-40 s on 2 cores
@pytest.mark.skipif(TORCHRUN is None, reason="torchrun not installed beside this python")
def test_two_processes_train_and_resume_exactly_as_one(tmp_path, monkeypatch):
    """WAE-MMD with a Gaussian encoder and input noise: the penalty sees the global batch of
    codes (all-gathered with gradients), noise and prior draws are those of one process; a
    2-process run stopped after 2 steps and resumed by 2 processes to step 4 ends where 4 steps
    of one process do."""
    monkeypatch.chdir(tmp_path)
    argv = [*ARGS, "--encoder", "gaussian", "--input-noise", "0.05"]
    assert main(["train", *argv, "--max-steps", "4", "--out", "one"]) == 0
    _torchrun(tmp_path, *argv, "--max-steps", "2", "--out", "two")
    _torchrun(tmp_path, "--resume", "two", "--max-steps", "4", "--no-progress")
    _assert_same_training(tmp_path / "one", tmp_path / "two", steps=4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one", "two"]  # rank 1 wrote nothing else


@pytest.mark.slow  # two launches: about 10 s on 2 cores (the default suite checks the sharding in-process)
@pytest.mark.skipif(TORCHRUN is None, reason="torchrun not installed beside this python")
def test_two_processes_train_a_wae_gan_exactly_as_one(tmp_path, monkeypatch):
    """WAE-GAN: the adversary (its own DistributedDataParallel) and the auto-encoder updates
    average over the global batch; the prior draws are sharded as one process would use them."""
    monkeypatch.chdir(tmp_path)
    argv = [*ARGS, "--objective", "gan", "--max-steps", "3"]
    assert main(["train", *argv, "--out", "one"]) == 0
    _torchrun(tmp_path, *argv, "--out", "two")
    _assert_same_training(tmp_path / "one", tmp_path / "two", steps=3)


@pytest.mark.slow  # two launches of two processes: about 20 s on 2 cores
@pytest.mark.skipif(TORCHRUN is None, reason="torchrun not installed beside this python")
def test_two_processes_train_and_resume_a_table_run_exactly_as_one(tmp_path, monkeypatch):
    """Vector data (a CSV, the MLP, the table preset) go through the same sharded step: two
    processes stopped after 3 steps and resumed to 6 end where 6 steps of one process do."""
    from tests.test_tables import table_rows, write_csv

    monkeypatch.chdir(tmp_path)
    write_csv(tmp_path / "t.csv", table_rows())
    argv = ["--data", "t.csv", "--batch-size", "32", "--precision", "fp32", "--log-every", "1", "--no-progress"]
    argv += ["--encoder", "gaussian", "--input-noise", "0.05", "--mlp-width", "32"]
    assert main(["train", *argv, "--max-steps", "6", "--out", "one"]) == 0
    _torchrun(tmp_path, *argv, "--max-steps", "3", "--out", "two")
    _torchrun(tmp_path, "--resume", "two", "--max-steps", "6", "--no-progress")
    _assert_same_training(tmp_path / "one", tmp_path / "two", steps=6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one", "t.csv", "two"]  # rank 1 wrote nothing else


@pytest.mark.slow  # two launches: about 10-20 s on 2 cores
@pytest.mark.skipif(TORCHRUN is None, reason="torchrun not installed beside this python")
def test_two_processes_train_a_conditional_wae_exactly_as_one(tmp_path, monkeypatch):
    """A conditional WAE-MMD (--condition labels): each process takes the labels of its shard of
    the global batch, through the same training step, and ends where one process does."""
    monkeypatch.chdir(tmp_path)
    argv = [*ARGS, "--condition", "labels", "--max-steps", "3"]
    assert main(["train", *argv, "--out", "one"]) == 0
    _torchrun(tmp_path, *argv, "--out", "two")
    _assert_same_training(tmp_path / "one", tmp_path / "two", steps=3)
    assert (
        ckpt.load_latest(tmp_path / "two")[0]["data"]["class_names"]
        == ckpt.load_latest(tmp_path / "one")[0]["data"]["class_names"]
    )


@pytest.mark.slow  # one launch of two processes: about 10 s on 2 cores
@pytest.mark.skipif(TORCHRUN is None, reason="torchrun not installed beside this python")
def test_two_processes_keep_the_same_epochs_under_a_time_budget(tmp_path, monkeypatch):
    """--time-budget decides after the first epoch from each rank's clock: the ranks take the
    mean, so that all keep the same epochs (ranks that disagreed would wait on each other)."""
    monkeypatch.chdir(tmp_path)
    argv = [*ARGS, "--synthetic-count", "128", "--arch", "fast", "--epochs", "3"]
    _torchrun(tmp_path, *argv, "--time-budget", "0.0001", "--out", "two")
    recorded = json.loads((tmp_path / "two" / "config.json").read_text())["train"]
    assert (recorded["epochs"], recorded["time_budget"]) == (1, None)
    final = ckpt.load_latest(tmp_path / "two")
    assert final is not None and final[0]["step"] == 128 // 32  # one epoch of the synthetic set


@pytest.mark.slow  # one launch of two processes: about 15 s on 2 cores
@pytest.mark.skipif(TORCHRUN is None, reason="torchrun not installed beside this python")
def test_two_processes_keep_back_the_sampler_fit_under_a_time_budget(tmp_path, monkeypatch):
    """The ex-post sampler is fitted on rank 0 alone, which alone probes its fit (session 46;
    the plan's mean over ranks is then rank 0's value): under torchrun the budget decides with
    it, records it, and every rank goes on to the same end, the sampler fitted."""
    monkeypatch.chdir(tmp_path)
    argv = [*ARGS, "--synthetic-count", "128", "--arch", "fast", "--epochs", "2", "--fit-sampler", "vae"]
    _torchrun(tmp_path, *argv, "--time-budget", "30", "--out", "two")
    lines = (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()
    (plan,) = [r for r in map(json.loads, lines) if r["kind"] == "plan"]
    assert plan["epochs_kept"] == 2 and plan["sampler_fit_s"] > 0
    assert (tmp_path / "two" / "sampler-vae.pt").is_file()


@pytest.mark.slow  # one launch of two processes: about 10 s on 2 cores
@pytest.mark.skipif(TORCHRUN is None, reason="torchrun not installed beside this python")
def test_a_signal_to_one_rank_is_named_by_rank_0(tmp_path, monkeypatch):
    """SIGTERM to rank 1 alone (a scheduler's preemption of one process): every rank stops at
    the same step, and rank 0, which writes the note and the exit code, names SIGTERM (it said
    SIGINT, its own flag's default, and exited 130)."""
    monkeypatch.chdir(tmp_path)
    driver = tmp_path / "driver.py"
    driver.write_text(
        "import os, signal, sys\n"
        "import wae.train as train\n"
        "real = train._Loop.step\n"
        "def step(self, batch, stop, labels=None):\n"
        "    if os.environ['RANK'] == '1' and self.state.step == 2:\n"
        "        os.kill(os.getpid(), signal.SIGTERM)\n"
        "    return real(self, batch, stop, labels)\n"
        "train._Loop.step = step\n"
        "from wae.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    argv = ["train", *ARGS, "--synthetic-count", "128", "--arch", "fast", "--epochs", "3", "--out", "run"]
    _, stderr = _launch(tmp_path, str(driver), *argv)
    assert "interrupted at step 3 (SIGTERM)" in stderr, stderr[-3000:]
    assert "(SIGINT)" not in stderr
    final = ckpt.load_latest(tmp_path / "run")
    assert final is not None and final[0]["step"] == 3
