"""The command line: a tiny end-to-end run, and bad input giving exit code 2 and one line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from wae.cli import main
from wae.config import UserError

from .conftest import run_cli, terminal_signals

TINY = ["--dataset", "synthetic", "--batch-size", "32", "--precision", "fp32", "--no-progress", "--log-every", "1"]
TINY += ["--arch", "fast"]  # the cheapest network: these tests are of the command, not of the demo's network


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
    for name in ("samples", "reconstructions", "interpolations"):  # the last epoch's grids, encoded once
        newest = sorted((trained_run / ckpt.GRIDS).glob(f"{name}-epoch*.png"))[-1]
        assert (trained_run / f"{name}.png").read_bytes() == newest.read_bytes()


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

    proc, run = _training(tmp_path)
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


_STARTS = [
    "from wae.start import main; sys.exit(main(['--help']))",  # the wae command's entry point
    "import runpy; runpy.run_module('wae', run_name='__main__')",  # python -m wae
]
_INTERRUPTS = [
    ("torch", "os.kill(os.getpid(), signal.SIGINT)"),  # the signal itself
    (
        f"{'numpy._core' if np.__version__ >= '2' else 'numpy.core'}._multiarray_umath",
        "os.kill(os.getpid(), signal.SIGINT)",
    ),
    ("torch", "raise KeyboardInterrupt"),  # an interrupt raised by an import
]


# each case starts a Python that imports torch (about 1.5 s): the default suite runs one, the
# slow tests (CI) the other five
@pytest.mark.parametrize(
    "start,module,how",
    [
        pytest.param(start, module, how, marks=() if (i, j) == (1, 0) else pytest.mark.slow)
        for i, start in enumerate(_STARTS)
        for j, (module, how) in enumerate(_INTERRUPTS)
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
    assert out.split() == ["True", "fit_tensor", "1.0", "wae.checkpoint", "True"]
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


def _run_python(code: str, timeout: int = 120, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, **kwargs)


@pytest.mark.parametrize(
    "start",
    [
        "from wae.start import main; rc = main(['runs', 'no-such-folder'])",
        pytest.param(
            "sys.argv = ['wae', 'runs', 'no-such-folder']; from wae.start import entry; rc = entry()",
            marks=pytest.mark.slow,  # a second start of torch: the slow tests (CI)
        ),
    ],
)
def test_an_ignored_sigint_stays_ignored_while_the_command_starts(start):
    # a script's background job, `trap '' INT`, a supervisor: the Ctrl-C at import torch is not ours
    hook = _CTRL_C_AT.replace("MODULE", "torch").replace("HOW", "os.kill(os.getpid(), signal.SIGINT)")
    code = "import signal; signal.signal(signal.SIGINT, signal.SIG_IGN)\n" + hook + start + "; print('rc', rc)"
    proc = _run_python(code)
    assert proc.returncode == 0 and "stopped" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stdout.split()[-2:] == ["rc", "2"] and "no-such-folder" in proc.stderr  # the command ran


def test_an_embedding_programs_sigint_handler_gets_the_signal_while_the_command_starts():
    hook = _CTRL_C_AT.replace("MODULE", "torch").replace("HOW", "os.kill(os.getpid(), signal.SIGINT)")
    code = (
        "import signal\ngot = []\ndef mine(signum, frame): got.append(signum)\n"
        "signal.signal(signal.SIGINT, mine)\n"
        + hook
        + "from wae.start import main; rc = main(['runs', 'no-such-folder'])\n"
        "print(rc, got, signal.getsignal(signal.SIGINT) is mine)"
    )
    proc = _run_python(code)
    assert proc.returncode == 0 and "stopped" not in proc.stderr, proc.stderr
    assert proc.stdout.splitlines()[-1] == f"2 [{int(signal.SIGINT)}] True"


def test_the_command_ignores_sigint_once_done_and_main_gives_the_handler_back():
    # entry() (the console script, python -m wae): a late Ctrl-C cannot turn the interpreter's
    # teardown into a traceback; main() (for programs that call the command line) restores
    code = (
        "import signal, sys\nsys.argv = ['wae', 'runs', 'no-such-folder']\nfrom wae.start import entry, main\n"
        "rc = main(['runs', 'no-such-folder'])\n"
        "after_main = signal.getsignal(signal.SIGINT) is signal.default_int_handler\n"
        "rc2 = entry(); after_entry = signal.getsignal(signal.SIGINT) is signal.SIG_IGN\n"
        "print(rc, rc2, after_main, after_entry)"
    )
    proc = _run_python(code)
    assert proc.stdout.splitlines()[-1] == "2 2 True True", proc.stderr


def test_python_m_wae_start_is_the_command():
    proc = subprocess.run(
        [sys.executable, "-m", "wae.start", "--version"], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0 and proc.stdout.strip(), proc.stderr


@pytest.mark.slow  # a process of its own (the threads' lazy loading is in the default suite)
def test_a_direct_import_beside_a_lazy_name_in_another_thread_does_not_deadlock():
    # thread B imports wae.train (whose `from . import runs` comes back to wae.__getattr__) while
    # thread A asks for wae.fit, which needs wae.train: no lock may be held across both
    code = (
        "import importlib, threading, time, wae\n"
        "def b(): importlib.import_module('wae.train')\n"
        "def a(): time.sleep(DELAY); wae.fit\n"
        "ts = [threading.Thread(target=b), threading.Thread(target=a)]\n"
        "[t.start() for t in ts]; [t.join() for t in ts]\n"
        "print(wae.fit.__module__)"
    )
    for delay in ("0.0", "0.3"):
        proc = _run_python(code.replace("DELAY", delay), timeout=90)
        assert proc.stdout.strip() == "wae.train", proc.stderr


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")
def test_a_child_forked_during_a_lazy_import_does_not_hang():
    code = (
        "import os, signal, threading, time, wae\n"
        "threading.Thread(target=lambda: wae.fit, daemon=True).start()\n"
        "time.sleep(0.3)\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    signal.alarm(30)\n"
        "    fresh = wae._TORCH.acquire(timeout=5)\n"
        "    print('child', fresh, wae.preset().loss.lam, flush=True)\n"
        "    os._exit(0)\n"
        "_, status = os.waitpid(pid, 0)\n"
        "print('status', status)"
    )
    proc = _run_python(code, timeout=90)
    assert "child True 1.0" in proc.stdout and "status 0" in proc.stdout, proc.stdout + proc.stderr


def test_dir_of_wae_lists_the_public_names_and_no_data_folder():
    import wae

    names = dir(wae)
    assert set(wae.__all__) <= set(names) and "__version__" in names
    assert not {"Any", "TYPE_CHECKING", "annotations", "importlib", "os", "threading"} & set(names)
    assert not hasattr(wae, "assets")  # the folder of shipped data is not a module


@pytest.mark.slow  # two processes that import torch (5 s): the values through main() are the next test
def test_a_malformed_world_size_is_one_line_in_a_process_of_its_own(tmp_path):
    """One value through the whole command (a process of its own: the traceback was once at its
    start and end, even of `wae runs`)."""
    env = {**os.environ, "WORLD_SIZE": "abc"}
    proc = subprocess.run(
        [sys.executable, "-m", "wae", "train", *TINY, "--max-steps", "1", "--out", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "WORLD_SIZE='abc' in the environment is not a whole number" in proc.stderr
    assert not (tmp_path / "r").exists()
    listed = subprocess.run(
        [sys.executable, "-m", "wae", "runs", str(tmp_path)], capture_output=True, text=True, timeout=120, env=env
    )
    assert "Traceback" not in listed.stderr and listed.returncode in (0, 2), listed.stderr


def test_a_malformed_world_size_is_one_line(tmp_path, monkeypatch):
    said_of = {
        "abc": "='abc' in the environment is not a whole number",
        "2.5": "='2.5' in the environment is not a whole number",
        "-": "='-' in the environment is not a whole number",
        "0": "=0 in the environment: a launch has at least 1 process",
        "-3": "=-3 in the environment: a launch has at least 1 process",
    }
    for value, said in said_of.items():
        monkeypatch.setenv("WORLD_SIZE", value)
        code, err = run_cli(["train", *TINY, "--max-steps", "1", "--out", str(tmp_path / "r")])
        assert code == 2 and err.count("\n") == 1, err
        assert f"WORLD_SIZE{said}" in err
        assert not (tmp_path / "r").exists()
        assert run_cli(["runs", str(tmp_path)])[0] in (0, 2)


def test_rank_outside_the_world_is_refused(monkeypatch):
    from wae.parallel import launched

    monkeypatch.setenv("WORLD_SIZE", "2")
    # set by hand without torchrun's rendezvous: torch's traceback before (hostile pass)
    for name in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(UserError, match="WORLD_SIZE=2 in the environment without RANK, MASTER_ADDR, MASTER_PORT"):
        launched()
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29500")
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(UserError, match="RANK=2 in the environment is outside 0 .. WORLD_SIZE - 1 = 1"):
        launched()
    monkeypatch.setenv("RANK", "1")
    assert launched().rank == 1 and launched().world == 2


def _training(tmp_path, ignore_sigint: bool = False):
    """A tiny ``wae train`` in a subprocess, started and past its third step: (process, run)."""
    import time

    run = tmp_path / "run"
    argv = [sys.executable, "-m", "wae", "train", *TINY, "--epochs", "1000", "--out", str(run)]
    signals = terminal_signals(ignore_sigint)  # whatever this suite runs under (nohup ignores SIGHUP)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=signals)
    deadline = time.time() + 60
    while not ((run / "metrics.jsonl").exists() and (run / "metrics.jsonl").read_text().count("\n") >= 3):
        assert time.time() < deadline and proc.poll() is None, "training did not start"
        time.sleep(0.1)
    return proc, run


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP here")
@pytest.mark.slow  # a training process (SIGINT and SIGTERM are in the default suite)
def test_sighup_checkpoints_and_stops_training(tmp_path):
    import json

    from wae import checkpoint as ckpt

    proc, run = _training(tmp_path)
    proc.send_signal(signal.SIGHUP)  # the terminal was closed
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGHUP and "Traceback" not in err, err
    assert "interrupted at step" in err and "SIGHUP" in err
    found = ckpt.load_latest(run)
    assert found is not None and found[0]["step"] == json.loads(out)["step"]


@pytest.mark.slow  # a training process stopped by two signals
def test_an_ignored_sigint_does_not_stop_training(tmp_path):
    import time

    proc, run = _training(tmp_path, ignore_sigint=True)
    proc.send_signal(signal.SIGINT)  # ignored by whoever started it (a script's background job)
    time.sleep(1.0)
    assert proc.poll() is None, proc.communicate()[1]
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "SIGTERM" in err, err


def _make_commands() -> dict[str, list[str]]:
    """The ``wae`` command lines of the Makefile's targets, by target."""
    import re
    import shlex
    from pathlib import Path

    commands, target = {}, ""
    for line in (Path(__file__).parent.parent / "Makefile").read_text().splitlines():
        named = re.match(r"^([a-z-]+):", line)
        if named:
            target = named.group(1)
        elif line.startswith("\t$(VENV)/bin/wae "):
            commands[target] = shlex.split(line.split("/bin/wae ", 1)[1])
    return commands


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (
            "demo",
            {
                "preset": '"mnist-fast"',
                "objective": '"gan"',
                "prior": '"mixture"',
                "epochs": "25",
                "time_budget": "9.5",
            },
        ),
        ("quality", {"preset": '"mnist-quality"', "epochs": "50", "time_budget": "58.0", "arch": '"wide"'}),
    ],
)
def test_the_makefiles_training_targets_parse_to_their_documented_settings(
    target, expected, capsys, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # no runs/quality of a developer's to continue (make quality's --auto-resume)
    # a renamed flag or a changed preset would otherwise break `make demo` or `make quality` only
    # when a user runs it; --print-config resolves the settings and writes nothing
    argv = _make_commands()[target]
    assert argv[0] == "train"
    assert main([*argv, "--print-config"]) == 0
    printed = dict(
        (key.strip(), value.strip())
        for key, _, value in (line.partition("=") for line in capsys.readouterr().out.splitlines())
    )
    assert {key: printed.get(key) for key in expected} == expected


def test_a_run_with_the_mixture_prior_trains_samples_and_reloads_its_prior(tmp_path):
    """--prior mixture: training's MMD, the grids and a reloaded model draw from the mixture
    N(r sigma e_k, sigma^2 I), k < K; fit-sampler reports the test codes' log-density under it."""
    import contextlib
    import io

    import torch

    from wae.priors import mixture_means
    from wae.train import load_run

    run = tmp_path / "run"
    flags = ["--prior", "mixture", "--prior-components", "3", "--prior-separation", "4", "--prior-var", "2"]
    code, err = run_cli(["train", *TINY, "--epochs", "1", "--fit-sampler", "none", *flags, "--out", str(run)])
    assert code == 0, err
    model = load_run(run).model
    z = model.prior_sample(3000, torch.Generator().manual_seed(0))
    means = mixture_means(model.latent_dim, 2.0, 3, 4.0)
    which = torch.cdist(z, means).argmin(1)
    assert torch.bincount(which, minlength=3).min().item() > 900
    assert (z - means[which]).var(0).mean().item() == pytest.approx(2.0, rel=0.1)
    # the report names the prior's K and r (session 40): the page's settings line and report.md
    assert "prior mixture of 3 Gaussians N(4 sigma e_k, sigma^2 I), sigma^2 = 2" in (run / "report.md").read_text()
    assert "prior mixture (K = 3, r = 4.0)" in (run / "report.html").read_text()
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert main(["fit-sampler", str(run), "--components", "2"]) == 0
    assert "mean log-density of test codes: " in out.getvalue() and ", prior P_Z (mixture) -" in out.getvalue(), (
        out.getvalue()
    )


def test_auto_precision_follows_a_onednn_cap_and_asked_bf16_is_said_to_be_emulated(monkeypatch, tmp_path):
    """ONEDNN_MAX_CPU_ISA=AVX2 on a CPU with AMX: auto chose bf16 from /proc/cpuinfo and the demo
    trained at 48 images/s (fp32: 830); auto now records fp32, and bf16 asked for is said to be slow."""
    import json

    from wae import config
    from wae.train import load_run

    monkeypatch.setattr(config, "cpu_flags", lambda: {"avx512f", "avx512_bf16", "amx_bf16"})
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    args = [a for a in TINY if a not in ("--precision", "fp32")] + ["--max-steps", "1", "--eval-every", "0"]
    for precision, recorded in (("auto", "fp32"), ("bf16", "bf16")):
        run = tmp_path / precision
        code, err = run_cli(["train", *args, "--precision", precision, "--fit-sampler", "none", "--out", str(run)])
        assert code == 0, err
        assert json.loads((run / "config.json").read_text())["train"]["precision"] == recorded
        said = "precision bf16 is emulated here (ONEDNN_MAX_CPU_ISA=AVX2 holds oneDNN below bf16)"
        assert (said in err) == (precision == "bf16"), err
    # a resume keeps the run's precision unless given another: its note says how (session 50: a
    # resume took no --precision, and a bf16 run moved to such a host trained on emulated)
    bf16 = tmp_path / "bf16"
    code, err = run_cli(["train", "--resume", str(bf16), "--max-steps", "2"])
    assert code == 0 and f"{said}: slower than fp32; give --precision fp32 with --resume to train on in fp32" in err
    for precision, steps in (("fp32", 3), ("auto", 4)):  # auto chooses here: fp32 under the cap
        code, err = run_cli(["train", "--resume", str(bf16), "--max-steps", str(steps), "--precision", precision])
        assert code == 0 and said not in err, err
        assert json.loads((bf16 / "config.json").read_text())["train"]["precision"] == "fp32"
        assert load_run(bf16).step == steps  # the bf16 session's checkpoints read on, not refused
    code, err = run_cli(["train", "--resume", str(bf16), "--max-steps", "5", "--precision", "fp16"])
    assert code == 2 and "--precision fp16 needs a CUDA device" in err, err


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("AUTO", "'AUTO' is neither a whole number nor auto"),  # session 48: was "not a whole number" alone
        ("ten", "'ten' is neither a whole number nor auto"),
        ("0", "must be at least 1; got 0"),
        ("9" * 5000, "is neither a whole number Python reads (more than 4,300 digits) nor auto"),
    ],
)
def test_components_refuses_a_word_naming_auto(tmp_path, value, said):
    code, err = run_cli(["fit-sampler", str(tmp_path / "run"), "--components", value])
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert "argument --components: " in err and said in err, err


@pytest.mark.parametrize(
    ("flags", "name"),
    [
        (["--kind", "flow", "--components", "3"], "--components"),
        (["--kind", "flow", "--covariance", "diag"], "--covariance"),
        (["--kind", "gmm", "--hidden", "4"], "--hidden"),
        (["--kind", "vae", "--transforms", "3"], "--transforms"),
        (["--components", "2", "--hidden", "8"], "--hidden"),  # gmm, the default kind
    ],
)
def test_fit_sampler_refuses_a_flag_its_kind_does_not_use(tmp_path, flags, name):
    # hostile pass, session 54: `--kind flow --components 3` fitted a flow and left the 3 unsaid
    code, err = run_cli(["fit-sampler", str(tmp_path / "run"), *flags])  # before the run is read
    assert code == 2 and err.count("\n") == 1 and f"{name} is not a setting of --kind" in err, err
    assert not (tmp_path / "run").exists()


def test_lists_cut_alike_are_told_apart_where_they_part():
    # hostile pass, session 48: 100 kernel scales that differ in the last were shown as the same
    # cut text on both sides
    from wae.cli import _there_given

    there = tuple(0.1 + i for i in range(100))
    here = (*there[:-1], 500.0)
    said = _there_given("--kernel-scales", there, here)
    assert said.endswith(", value 100 of 100 99.1 there and 500.0 here"), said
    assert _there_given("--kernel-scales", there, there[:-1]) == "--kernel-scales of 100 values there, of 99 given"
    assert _there_given("--lr", 0.002, 0.001) == "--lr 0.002 there, 0.001 given"
    # lists alike element by element (a caller that calls them different for another reason): the plain form
    assert _there_given("--kernel-scales", there, there).endswith(
        " there, 0.1 1.1 2.1 3.1 4.1 5.1 6.1 7.1 8.1 ... given"
    )
    assert _there_given("--cache", True, False) == "--cache there, --no-cache given"


def test_advice_to_resume_quotes_the_path_for_a_shell(tmp_path):
    # hostile pass, session 48: "wae train --resume PATH" with a space in PATH could not be pasted
    import shlex

    run = tmp_path / "my run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    code, err = run_cli(["train", *TINY, "--max-steps", "1", "--out", str(run)])
    assert code == 2 and f"--resume {shlex.quote(str(run))} to continue it" in err, err
    from wae.config import shell_path

    assert shell_path("-x") == "./-x" and shell_path("a b") == "'a b'" and shell_path("plain") == "plain"
