"""The command line: a tiny end-to-end run, and bad input giving exit code 2 and one line."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from wae.cli import main

TINY = ["--dataset", "synthetic", "--batch-size", "32", "--precision", "fp32", "--no-progress", "--log-every", "1"]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", *TINY, "--max-steps", "5", "--out", str(run)]) == 0
    return run


def test_train_writes_a_run_folder(trained_run, capsys):
    assert (trained_run / "checkpoint.pt").is_file() and (trained_run / "config.json").is_file()
    assert "| epoch |" in (trained_run / "report.md").read_text()


def test_sample_reconstruct_interpolate(trained_run, tmp_path):
    assert main(["sample", str(trained_run), "--n", "12", "--out", str(tmp_path / "s.npz")]) == 0
    images = np.load(tmp_path / "s.npz")["images"]
    assert images.shape == (12, 28, 28) and images.dtype == np.uint8
    assert main(["sample", str(trained_run), "--n", "12", "--out", str(tmp_path / "s.png")]) == 0
    assert Image.open(tmp_path / "s.png").size[0] > 28
    assert main(["reconstruct", str(trained_run), "--n", "24", "--out", str(tmp_path / "r.npz")]) == 0
    saved = np.load(tmp_path / "r.npz")
    assert saved["images"].shape == (24, 28, 28) and saved["originals"].shape == (24, 1, 28, 28)
    assert (
        main(["interpolate", str(trained_run), "--pairs", "3", "--steps", "5", "--out", str(tmp_path / "i.png")]) == 0
    )
    assert (tmp_path / "i.png").is_file()


def test_resume_extends_a_run(trained_run, capsys):
    assert main(["train", "--resume", str(trained_run), "--max-steps", "7", "--no-progress"]) == 0
    assert '"step": 7' in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--preset", "nope"],
        ["train", "--objective", "wgan"],
        ["train", "--lam", "-1"],
        ["train", "--lam", "nan"],
        ["train", "--batch-size", "0"],
        ["train", "--batch-size", "1"],
        ["train", "--latent-dim", "0"],
        ["train", "--epochs", "two"],
        ["train", "--data", "/no/such/file.npz"],
        ["train", "--lr", "0"],
        ["train", "--prior", "sphere", "--prior-trick", "--objective", "gan"],
        ["train", "--resume", "/no/such/run"],
        ["train", "--resume", "/tmp", "--lam", "3"],
        ["sample", "/no/such/run", "--out", "x.png"],
        ["sample", "RUN", "--out", "x.jpg"],
        ["sample", "RUN", "--out", "/no/such/dir/x.png"],
        ["sample", "RUN", "--n", "0", "--out", "x.png"],
        ["frobnicate"],
    ],
)
def test_bad_input_exits_2_with_one_line(argv, trained_run, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = [str(trained_run) if a == "RUN" else a for a in argv]
    with pytest.raises(SystemExit) as exit_info:
        sys.exit(main([*argv, "--no-progress"] if argv[0] == "train" else argv))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "error" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists(), "nothing may be written on bad input"


def test_existing_run_folder_needs_overwrite(trained_run, tmp_path, capsys):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    assert main(["train", *TINY, "--max-steps", "1", "--out", str(tmp_path / "taken")]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["train", *TINY, "--max-steps", "1", "--out", str(tmp_path / "taken"), "--overwrite"]) == 2
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine", "a folder that is not a run is never deleted"


def test_python_dash_m_wae_help():
    out = subprocess.run([sys.executable, "-m", "wae", "train", "--help"], capture_output=True, text=True, check=True)
    assert "--objective" in out.stdout and "--precision" in out.stdout


def test_bench_prints_a_table(capsys):
    assert (
        main(["bench", "--archs", "fast", "--precisions", "fp32", "--batch-size", "8", "--steps", "2", "--warmup", "0"])
        == 0
    )
    out = capsys.readouterr().out
    row = [line for line in out.splitlines() if line.startswith("| fast")]
    assert len(row) == 1 and float(row[0].split("|")[-2].replace(",", "")) > 0


def test_ctrl_c_saves_a_checkpoint_and_exits_cleanly(tmp_path):
    import json
    import signal
    import time

    run = tmp_path / "run"
    argv = [sys.executable, "-m", "wae", "train", *TINY, "--epochs", "1000", "--out", str(run)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not ((run / "metrics.jsonl").exists() and (run / "metrics.jsonl").read_text().count("\n") >= 3):
        assert time.time() < deadline and proc.poll() is None, "training did not start"
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted at step" in err
    step = json.loads(out)["step"]
    assert step >= 3
    from wae import checkpoint as ckpt

    assert ckpt.load(run / "checkpoint.pt")["step"] == step
