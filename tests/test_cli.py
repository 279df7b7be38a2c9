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
    from wae import checkpoint as ckpt

    assert [p.name for p in ckpt.run_checkpoints(trained_run)] == ["step-00000005.pt"]
    assert (trained_run / "config.json").is_file()
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


def test_python_dash_m_wae_help():
    out = subprocess.run([sys.executable, "-m", "wae", "train", "--help"], capture_output=True, text=True, check=True)
    assert "--objective" in out.stdout and "--precision" in out.stdout


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

    found = ckpt.load_latest(run)
    assert found is not None and found[0]["step"] == step


_CTRL_C_AT = """
import os, signal, sys
class CtrlCAt:  # a Ctrl-C that arrives while MODULE is being imported
    def find_spec(self, name, path=None, target=None):
        if name == "MODULE":
            sys.meta_path.remove(self)
            HOW
sys.meta_path.insert(0, CtrlCAt())
"""


@pytest.mark.parametrize(
    "start",
    [
        "from wae.start import main; sys.exit(main(['--help']))",  # the wae command's entry point
        "import runpy; runpy.run_module('wae', run_name='__main__')",  # python -m wae
    ],
)
@pytest.mark.parametrize(
    "module,how",
    [
        ("torch", "os.kill(os.getpid(), signal.SIGINT)"),  # the signal itself
        (
            f"{'numpy._core' if np.__version__ >= '2' else 'numpy.core'}._multiarray_umath",
            "os.kill(os.getpid(), signal.SIGINT)",
        ),
        ("torch", "raise KeyboardInterrupt"),  # an interrupt raised by an import
    ],
)
def test_ctrl_c_while_the_command_imports_is_one_line(start, module, how):
    hook = _CTRL_C_AT.replace("MODULE", module).replace("HOW", how)
    proc = subprocess.run([sys.executable, "-c", hook + start], capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout, proc.stderr) == (130, "", "wae: stopped by SIGINT while starting\n")


def test_import_wae_is_light_and_its_names_load_on_use():
    code = (
        "import sys, wae; light = 'torch' not in sys.modules; "
        "print(light, wae.fit_tensor.__name__, wae.preset().loss.lam, wae.checkpoint.__name__, 'fit_table' in dir(wae))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60).stdout
    assert out.split() == ["True", "fit_tensor", "3.0", "wae.checkpoint", "True"]
    import wae

    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        wae.no_such_name  # noqa: B018
    assert not any(hasattr(wae, name) for name in ("a.b", "", "__wrapped__", "no_such_module"))


def test_names_of_wae_load_from_many_threads_at_once():
    code = (
        "import threading, wae\n"
        "names = [*wae.__all__, 'checkpoint', 'config', 'divergences', 'costs', 'priors'] * 3\n"
        "errors = []\n"
        "def load(name):\n"
        "    try:\n"
        "        getattr(wae, name)\n"
        "    except BaseException as err:\n"
        "        errors.append(repr(err))\n"
        "threads = [threading.Thread(target=load, args=(n,)) for n in names]\n"
        "[t.start() for t in threads]; [t.join() for t in threads]\n"
        "print(len(names), errors)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120).stdout
    assert out.split(maxsplit=1)[1].strip() == "[]", out


def test_no_channels_last_is_recorded_in_the_config(tmp_path):
    import json

    run = tmp_path / "nchw"
    assert main(["train", *TINY, "--max-steps", "1", "--no-channels-last", "--eval-every", "0", "--out", str(run)]) == 0
    assert json.loads((run / "config.json").read_text())["train"]["channels_last"] is False


def test_the_entry_point_runs_outside_the_main_thread_and_restores_sigint(tmp_path):
    import signal
    import threading

    from wae.start import main as start

    before = signal.getsignal(signal.SIGINT)
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(start(["runs", str(tmp_path / "none")])))
    thread.start()
    thread.join()
    assert codes == [2] and start(["runs", str(tmp_path / "none")]) == 2  # in a thread (no signals there), then here
    assert signal.getsignal(signal.SIGINT) is before
