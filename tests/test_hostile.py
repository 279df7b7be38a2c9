"""Cases a hostile user found after the second reliability pass (docs/reliability.md): a lock
file that is a link, settings carried over from another run, empty and non-path arguments,
crafted samplers with finite but absurd values, undefined figures written as JSON, a resume
that would train nothing, settings files that are not files, a .npy named .npz."""

from __future__ import annotations

import base64
import contextlib
import importlib.util
import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import tomllib
import torch

import wae
from wae.cli import main
from wae.config import UserError
from wae.samplers import GMM_FILE

from .conftest import SMALL_RUN, rendered_markdown, run_cli

TINY = [*SMALL_RUN]


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


def test_a_new_run_from_an_extended_runs_config_plans_over_its_own_epochs(run, tmp_path):
    # an extended run records the plan of its first session (schedule_epochs 2 of epochs 3):
    # a new 10-epoch run from its config.json once kept it and spent 80 % of its steps at lr/100
    copy = _copy(run, tmp_path)
    assert run_cli(["train", "--resume", str(copy), "--epochs", "3"])[0] == 0
    stored = json.loads((copy / "config.json").read_text())["train"]
    assert (stored["epochs"], stored["schedule_epochs"]) == (3, 2)
    argv = ["train", "--config", str(copy / "config.json"), "--epochs", "10", "--print-config"]
    for flags, planned in (([], None), (["--schedule-epochs", "2"], 2)):  # None: over the epochs
        printed, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(err):
            assert main([*argv, *flags]) == 0
        assert tomllib.loads(printed.getvalue())["train"].get("schedule_epochs") == planned
        said = "planned over the 10 epochs of --epochs, not over the 2" in err.getvalue()
        assert said == (not flags) and ("--schedule-epochs 2" in err.getvalue()) == said


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


# JSON that parses to something odd, or does not parse for reasons other than a syntax error
ODD_LINES = [
    '{"kind": ["train"], "step": 1}',  # an unhashable kind once failed report, compare and resume
    '{"kind": {}, "step": 1}',
    '{"kind": null, "step": 1}',
    "[" * 100_000 + "]" * 100_000,  # RecursionError in json.loads
    '{"kind": "train", "step": ' + "9" * 5000 + "}",  # ValueError: too many digits for int
]


def test_odd_json_lines_in_metrics_are_skipped_with_a_warning_by_every_reader(run, tmp_path):
    copy = _copy(run, tmp_path)
    with (copy / "metrics.jsonl").open("a") as f:
        f.write("".join(line + "\n" for line in ODD_LINES))
    for argv in (["report", str(copy)], ["compare", str(copy), str(run), "--out", str(tmp_path / "cmp")]):
        code, err = run_cli(argv)
        assert code == 0 and "Traceback" not in err, err
    # a resume trains, keeps the records up to its checkpoint and ends with its report
    code, err = run_cli(["train", "--resume", str(copy), "--epochs", "3"])
    assert code == 0 and "report:" in err, err
    assert '"epoch": 3' in (copy / "metrics.jsonl").read_text()


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000, '{"train": {"epochs": ' + "9" * 5000 + "}}"])
def test_a_config_json_that_cannot_be_parsed_is_damage_in_one_line(run, tmp_path, text):
    copy = _copy(run, tmp_path)
    (copy / "config.json").write_text(text)
    for argv in (["report", str(copy)], ["train", "--resume", str(copy), "--epochs", "3"]):
        code, err = run_cli(argv)
        _one_line(code, err)
        assert "config.json" in err
    (tmp_path / "deep.toml").write_text("x = " + "[" * 100_000 + "]" * 100_000 + "\n")
    (tmp_path / "deep.json").write_text(text)
    for name in ("deep.toml", "deep.json"):
        code, err = run_cli(["train", "--config", str(tmp_path / name), "--print-config"])
        _one_line(code, err)
        assert name in err


def test_the_python_api_refuses_what_it_cannot_use_in_words(tmp_path):
    """A hostile pass's tracebacks and silently dropped arguments (session 16)."""
    images, rows = torch.rand(32, 1, 16, 16), np.random.default_rng(0).random((64, 3))
    cases = [
        (lambda: wae.override(wae.preset(), cost={"l1": 1}), "loss.cost must be str"),  # TypeError before
        (lambda: wae.override(wae.preset(), lr_milestones=(x for x in [0.5])), "not an iterator"),
        (lambda: wae.override(None, lr=1e-3), "must be a wae.Config"),  # type: ignore[arg-type]
        (lambda: wae.override({"train": {}}, lr=1e-3), "must be a wae.Config"),  # type: ignore[arg-type]
        (lambda: wae.preset(["mnist-fast"]), "unknown preset"),  # type: ignore[arg-type]
        (lambda: wae.preset("mnist-fast", ["gan"]), "unknown objective"),  # type: ignore[arg-type]
        (lambda: wae.fit_tensor(images, dataset="mnist", max_steps=1), "sets data.dataset itself"),
        (lambda: wae.fit_tensor(images, data__dataset="mnist", max_steps=1), "sets data.dataset itself"),
        (lambda: wae.fit_table(rows, path=str(tmp_path / "x.csv"), max_steps=1), "sets data.path itself"),
        (lambda: wae.fit_tensor(images, labels=torch.arange(32) % 2, condition="none"), "condition='none'"),
        (lambda: wae.fit_tensor(images, labels=torch.arange(32) % 2, data__condition="none"), "conditional"),
        (lambda: wae.fit_tensor(images, objective="gan", loss__objective="mmd"), "objective is given twice"),
    ]
    for call, message in cases:
        with pytest.raises(UserError, match=message):
            call()
    assert not any(tmp_path.iterdir())
    # numpy values are stored as the Python types a config holds; -0.0 as 0.0
    cfg = wae.override(wae.preset(), lr_schedule=np.str_("cosine"), lr_warmup=-0.0, latent_dim=np.int64(8))
    assert type(cfg.train.lr_schedule) is str and type(cfg.model.latent_dim) is int
    assert str(cfg.train.lr_warmup) == "0.0"


@pytest.mark.parametrize(
    "flags,message",
    [
        (
            ["--lr-schedule", "cosine", "--lr-milestones", "0.1", "--lr-factors", "0.01"],
            "--lr-milestones and --lr-factors",
        ),
        (["--lr-schedule", "cosine", "--lr-milestones", "0.5", "0.7"], "this run has lr schedule cosine: leave it out"),
    ],
)
def test_step_schedule_flags_with_the_cosine_schedule_are_refused(tmp_path, flags, message):
    # they were accepted and not used; a config file's milestones (as --print-config writes them) stay allowed
    code, err = run_cli(["train", *TINY, *flags, "--max-steps", "1", "--out", str(tmp_path / "r")])
    _one_line(code, err)
    assert message in err and not (tmp_path / "r").exists()
    (tmp_path / "c.toml").write_text('[train]\nlr_schedule = "cosine"\nlr_milestones = [0.1]\nlr_factors = [0.5]\n')
    assert run_cli(["train", "--config", str(tmp_path / "c.toml"), "--print-config"])[0] == 0


def test_training_gives_the_callers_thread_count_and_generator_back(tmp_path):
    # fit_tensor(..., threads=1) once left the whole Python process at one thread, and training
    # or fitting a flow or a second-stage VAE reseeded the caller's global generator
    before = torch.get_num_threads()
    wanted = 1 if before > 1 else 2
    from wae.samplers import fit_vae

    images, codes = torch.rand(64, 1, 16, 16), torch.randn(200, 2)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    wae.fit_tensor(images, max_steps=1, batch_size=32, precision="fp32", threads=wanted)
    assert torch.get_num_threads() == before
    fit_vae(codes, hidden=4)
    assert torch.equal(torch.rand(3), expected)
    with pytest.raises(UserError):  # and after a refused run too
        wae.fit_tensor(torch.rand(64, 1, 16, 16), max_steps=1, batch_size=32, threads=wanted, lam=-1.0)
    assert torch.get_num_threads() == before


BIG = "1" + "0" * 400  # an integer that JSON and TOML parse and no float holds


def test_numbers_beyond_any_float_are_damage_not_overflow(run, tmp_path):
    # a second hostile pass: 309 to 4,300 digits parsed, then float() raised OverflowError
    # (not a ValueError) in report, runs, compare, evaluate and a resume's final report
    copy = _copy(run, tmp_path)
    (copy / "metrics.json").write_text('{"test_recon_mse": ' + BIG + ', "test_mmd": 1.0}')
    with (copy / "metrics.jsonl").open("a") as f:
        f.write('{"kind": "train", "step": -' + BIG + ', "total": 1.0}\n')
        f.write('{"kind": "train", "step": NaN, "total": 1.0}\n{"kind": "train", "step": 1e999, "total": 1.0}\n')
    for argv in (["report", str(copy)], ["runs", str(tmp_path)], ["compare", str(copy), "--out", str(tmp_path / "c")]):
        code, err = run_cli(argv)
        assert code == 0 and "Traceback" not in err, (argv, err)
    code, err = run_cli(["train", "--resume", str(copy), "--epochs", "3"])
    assert code == 0 and "report:" in err, err
    config = json.loads((copy / "config.json").read_text())
    config["train"]["lr"] = 1.0  # then written as the big integer
    (copy / "config.json").write_text(json.dumps(config).replace('"lr": 1.0', '"lr": ' + BIG))
    for argv in (["report", str(copy)], ["train", "--resume", str(copy), "--epochs", "4"]):
        _one_line(*run_cli(argv))
    for name, text in (("big.toml", f"[train]\nlr = {BIG}\n"), ("big.json", '{"train": {"lr": ' + BIG + "}}")):
        (tmp_path / name).write_text(text)
        _one_line(*run_cli(["train", "--config", str(tmp_path / name), "--print-config"]))
    with pytest.raises(UserError, match="beyond any float"):
        wae.override(wae.preset(), lr=10**400)


def test_odd_settings_files_and_api_arguments_are_refused_in_words(tmp_path):
    for text, message in (
        ("[[train]]\nlr = 0.001\n", "'train' must be one table of settings"),
        ("train = 5\n", "'train' must be one table"),
    ):
        (tmp_path / "s.toml").write_text(text)
        code, err = run_cli(["train", "--config", str(tmp_path / "s.toml"), "--print-config"])
        _one_line(code, err)
        assert message in err
    (tmp_path / "bom.toml").write_text("\ufeff[train]\nlr = 0.002\n", encoding="utf-8")  # an editor's BOM
    assert run_cli(["train", "--config", str(tmp_path / "bom.toml"), "--print-config"])[0] == 0
    for argv, message in (
        (["--epochs", str(10**7)], "argument --epochs: must be at most 1000000; got 10000000"),
        (
            ["--schedule-epochs", str(10**30)],
            "argument --schedule-epochs: must be at most 1000000; got 1000000000000000000000000000000",
        ),
        (["--schedule-epochs", str(10**300)], "must be at most 1000000; got a whole number of about 2^997"),
    ):
        code, err = run_cli(["train", *TINY, *argv, "--out", str(tmp_path / "r")])
        _one_line(code, err)
        assert message in err and not (tmp_path / "r").exists()
    rows = np.random.default_rng(0).random((64, 3))
    cases = [
        (lambda: wae.override(wae.preset(), model____dict__={}), "unknown setting"),  # reset the section before
        (lambda: wae.override(wae.preset(), loss____dict__={"lam": 99.0}), "unknown setting"),
        (lambda: wae.override(wae.preset(), data____class__=int), "unknown setting"),
        (lambda: wae.fit_table(None), "rows must be a numpy array"),  # type: ignore[arg-type]
        (lambda: wae.fit_table(rows, objective=""), "unknown objective"),  # trained mmd before
        (lambda: wae.fit_tensor(torch.rand(32, 1, 16, 16), path="/x.npz"), "sets data.path itself"),
    ]
    for call, message in cases:
        with pytest.raises(UserError, match=message):
            call()


def test_a_byte_order_mark_on_the_first_record_does_not_lose_it_on_resume(run, tmp_path):
    copy = _copy(run, tmp_path)
    text = (copy / "metrics.jsonl").read_text()
    (copy / "metrics.jsonl").write_text("\ufeff" + text, encoding="utf-8")
    first = json.loads(text.splitlines()[0])
    assert run_cli(["train", "--resume", str(copy), "--epochs", "3"])[0] == 0
    kept = (copy / "metrics.jsonl").read_text(encoding="utf-8").lstrip("\ufeff").splitlines()
    assert json.loads(kept[0]) == first  # it was dropped for good before


def test_figures_come_from_evaluations_of_weights_the_run_still_has(run, tmp_path):
    # an eval record after the newest checkpoint (a process killed between the record and the
    # save, or a hand edit) describes weights that are gone: compare, runs and the report's
    # metrics once read it (a resume drops it)
    from wae.compare import list_line, run_summary
    from wae.report import metrics_and_source, saved_evals

    copy = _copy(run, tmp_path)
    (copy / "metrics.json").unlink(missing_ok=True)
    saved = [r for r in map(json.loads, (copy / "metrics.jsonl").read_text().splitlines()) if r["kind"] == "eval"]
    ghost = {**saved[-1], "step": saved[-1]["step"] + 1000, "epoch": 99, "test_recon_mse": 1e-9}
    with open(copy / "metrics.jsonl", "a") as f:
        f.write(json.dumps(ghost) + "\n")
    assert saved_evals(copy) == saved
    assert metrics_and_source(copy)[0]["test_recon_mse"] == saved[-1]["test_recon_mse"]
    summary = run_summary(copy)
    assert summary["epochs"] == saved[-1]["epoch"] and summary["metrics"]["test_recon_mse"] != 1e-9
    assert list_line(copy)[-1] == f"epoch {saved[-1]['epoch']} eval"
    # without checkpoints (a folder of figures only) every record counts
    shutil.rmtree(copy / "checkpoints")
    assert saved_evals(copy)[-1]["epoch"] == 99


def test_a_warm_up_below_half_a_step_is_one_step_not_none():
    from wae.train import LR_FLOOR, lr_multiplier

    for fraction in (1e-9, 0.004, 0.0049):  # of 100 planned steps: once round(...) = 0 steps
        cfg = wae.override(wae.preset(), epochs=10, lr_warmup=fraction, lr_milestones=(), lr_factors=())
        assert [lr_multiplier(cfg, s, 10) for s in (0, 1, 2)] == pytest.approx([LR_FLOOR, 1.0, 1.0])
    none = wae.override(wae.preset(), epochs=10, lr_warmup=0.0, lr_milestones=(), lr_factors=())
    assert lr_multiplier(none, 0, 10) == 1.0


def test_figures_of_too_few_points_warn_and_huge_features_are_one_error():
    from wae.evaluate import classifier_metrics, precision_recall
    from wae.fid import frechet_distance_of

    features = torch.randn(50, 8)
    with pytest.warns(RuntimeWarning, match="more than k = 3 points"):
        assert np.isnan(precision_recall(features, features[:3])["precision"])
    with pytest.warns(RuntimeWarning, match="2 points or more"):
        assert np.isnan(frechet_distance_of(features[:1], features))
    for scale in (1e200, 1e300):  # finite features whose squares overflow float64: a LinAlgError once
        with pytest.raises(UserError, match="features too large"):
            frechet_distance_of(features.double() * scale, features.double())
    with pytest.raises(UserError, match="features too large"):
        classifier_metrics(
            torch.rand(20, 1, 28, 28), torch.rand(20, 1, 28, 28), test_features=torch.randn(20, 128).double() * 1e200
        )


def test_a_damaged_or_odd_newest_checkpoint_does_not_lend_its_figures(run, tmp_path):
    # the report and compare draw the newest checkpoint that reads; the figures must be of it,
    # not of a damaged newer file, a folder or a name in other digits (int() reads them)
    from wae.checkpoint import run_checkpoints
    from wae.compare import list_line, run_summary
    from wae.report import render_report

    copy = _copy(run, tmp_path)
    (copy / "metrics.json").unlink(missing_ok=True)
    saved = [r for r in map(json.loads, (copy / "metrics.jsonl").read_text().splitlines()) if r["kind"] == "eval"]
    ghost = {**saved[-1], "step": 100, "epoch": 3, "test_recon_mse": 0.777777}
    with open(copy / "metrics.jsonl", "a") as f:
        f.write(json.dumps(ghost) + "\n")
    newest = run_checkpoints(copy)[0]
    (copy / "checkpoints" / "step-00000200.pt").mkdir()  # a folder
    (copy / "checkpoints" / "step-\u0661\u0660\u0660.pt").write_bytes(b"")  # Arabic-Indic 100
    os.symlink(tmp_path / "nowhere", copy / "checkpoints" / "step-00000300.pt")
    assert run_checkpoints(copy)[0] == newest  # none of them is a checkpoint
    (copy / "checkpoints" / "step-00000100.pt").write_bytes(newest.read_bytes()[:100])  # damaged
    with pytest.warns(UserWarning, match="step-00000100.pt.*using .*" + newest.name):
        html = render_report(copy)
    table = html.split("</table>")[0]  # the metrics table (the figures below are base64 images)
    assert "0.7777" not in table and f">{saved[-1]['test_recon_mse']:.4g}<" in table
    assert run_summary(copy, step=saved[-1]["step"])["metrics"]["test_recon_mse"] == saved[-1]["test_recon_mse"]
    code, err = run_cli(["compare", str(copy), "--out", str(tmp_path / "cmp")])
    assert code == 0, err
    assert "0.7777" not in (tmp_path / "cmp" / "compare.md").read_text()
    # wae sample and wae export read the checkpoint once: one warning, and the export's step and
    # model card are of the weights it exports
    code, err = run_cli(["sample", str(copy), "--n", "4", "--out", str(tmp_path / "s.png")])
    assert code == 0 and err.count("step-00000100.pt") == 1, err
    if importlib.util.find_spec("safetensors") is not None:
        from wae.export import export_run

        with pytest.warns(UserWarning) as caught:
            record = export_run(copy, tmp_path / "exp")
        assert sum("step-00000100.pt" in str(w.message) for w in caught) == 1
        assert record["step"] == saved[-1]["step"] and record["metrics_from"] == "the last per-epoch evaluation"
        assert "0.7777" not in (tmp_path / "exp" / "README.md").read_text()
        # an export is not exported again (it has no checkpoint to read)
        with pytest.raises(UserError, match="is a folder that wae export wrote"):
            export_run(tmp_path / "exp", tmp_path / "exp2")
        assert not (tmp_path / "exp2").exists()
    # wae runs reads the checkpoint the other commands read (it went by file name: the damaged
    # step-100's figures were shown)
    assert list_line(copy)[-1].startswith(f"epoch {int(saved[-1]['epoch'])} eval (warning: checkpoint checkpoints/")
    # a resume prunes around a folder of a checkpoint's name (it once failed on it after training)
    shutil.rmtree(copy / "checkpoints" / "step-00000200.pt")
    (copy / "checkpoints" / "step-00000100.pt").unlink()
    (copy / "checkpoints" / "step-00000001.pt").mkdir()
    code, err = run_cli(["train", "--resume", str(copy), "--epochs", "3", "--keep-checkpoints", "1"])
    assert code == 0, err


@pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor:UserWarning")  # deprecated, still made
def test_precision_recall_and_the_frechet_distance_refuse_what_they_cannot_measure():
    from wae.evaluate import precision_recall
    from wae.fid import frechet_distance, frechet_distance_of

    x = torch.randn(50, 4, dtype=torch.float64)
    # a common scale changes nothing; float32 once overflowed (identical sets gave 0.52)
    for scale in (1.0, 1e39, 1e200, 1e-30, 1e-200):
        assert precision_recall(x * scale, x * scale) == {"precision": 1.0, "recall": 1.0}
    assert precision_recall(x * 1e200, x * 1e200 + 1e201)["precision"] == precision_recall(x, x + 10)["precision"]
    bad = [
        (x.to(torch.complex128), x),
        (torch.full((20, 4), float("nan")), x),
        (x, torch.randn(50, 5)),
        (x[0], x),
        (x.numpy(), x),
        (x.bool(), x),
        (torch.empty(50, 4, device="meta"), x),
        (x[:, :0], x[:, :0]),
        (x.to_sparse(), x),  # session 18's hostile pass: torch's errors past the check
        (torch.quantize_per_tensor(x.float(), 0.1, 0, torch.qint8), x),
    ]
    for a, b in bad:
        with pytest.raises(UserError):
            precision_recall(a, b)
        with pytest.raises(UserError):
            frechet_distance_of(a, b)
    for k in (0, 1.5, None, True):
        with pytest.raises(UserError, match="k must be a whole number"):
            precision_recall(x, x, k=k)
    with pytest.raises(UserError, match="chunk"):
        precision_recall(x, x, chunk=0)
    z, eye = torch.zeros(3, dtype=torch.float64), torch.eye(3, dtype=torch.float64)
    assert frechet_distance(z, eye, z, eye) == pytest.approx(0.0, abs=1e-9)
    for cov in (-eye, torch.triu(torch.ones(3, 3, dtype=torch.float64)), eye.to(torch.complex128)):
        with pytest.raises(UserError):
            frechet_distance(z, cov, z, eye)
        with pytest.raises(UserError):
            frechet_distance(z, eye, z, cov)
    indefinite = torch.tensor([[1.0, 2, 0], [2, 1, 0], [0, 0, 1]], dtype=torch.float64)
    with pytest.raises(UserError, match="C_a has a negative eigenvalue"):
        frechet_distance(z, indefinite, z, eye)
    with pytest.raises(UserError, match="C_b has a negative eigenvalue"):  # it once gave 0.536: one order only
        frechet_distance(z, eye, z, indefinite)
    with pytest.raises(UserError, match="means"):
        frechet_distance(z, eye, torch.zeros(4), eye)
    for odd in (z.bool(), torch.empty(3, device="meta"), z.to_sparse()):  # bool gave 0.0, meta torch's error
        with pytest.raises(UserError, match="real tensors"):
            frechet_distance(odd, eye, z, eye)
    # transposed features (one row per pixel): a 60,000 x 60,000 covariance once (29 GB)
    from wae.fid import MAX_FEATURE_WIDTH

    with pytest.raises(UserError, match="one row per image"):
        frechet_distance_of(torch.randn(3, MAX_FEATURE_WIDTH + 1), torch.randn(3, MAX_FEATURE_WIDTH + 1))
    wide = torch.zeros(MAX_FEATURE_WIDTH + 1, dtype=torch.float64)
    with pytest.raises(UserError, match="one row per image"):
        frechet_distance(
            wide, torch.zeros(1, 1).expand(len(wide), len(wide)), wide, torch.eye(1).expand(len(wide), len(wide))
        )


def test_a_figure_warning_points_at_the_callers_line():
    from wae.evaluate import classifier_metrics

    images = torch.rand(3, 1, 28, 28)
    with pytest.warns(RuntimeWarning) as caught:
        classifier_metrics(images, images)
    assert {w.filename for w in caught} == {__file__}


def test_long_numbers_in_messages_are_shortened_and_named(tmp_path):
    settings = tmp_path / "s.toml"
    settings.write_text(f"[train]\nseed = {-(2**1023)}\n")
    code, err = run_cli(["train", "--config", str(settings), "--print-config"])
    _one_line(code, err)
    assert "about -2^1024" in err and len(err) < 300
    settings.write_text(f"[train]\nbatch_size = {2**1000}\n")
    code, err = run_cli(["train", "--config", str(settings), "--print-config"])
    _one_line(code, err)
    assert "train.batch_size must be at most 16777216" in err and len(err) < 300
    settings.write_text(f"[train]\nlr = {10**400}\n")  # valid TOML that no reader takes
    code, err = run_cli(["train", "--config", str(settings), "--print-config"])
    _one_line(code, err)
    assert "cannot be read (a number beyond any float)" in err
    settings.write_text(f"[train]\nepochs = {'9' * 5000}\n")
    code, err = run_cli(["train", "--config", str(settings), "--print-config"])
    _one_line(code, err)
    assert "more than 4,300 digits" in err and "set_int_max_str_digits" not in err
    code, err = run_cli(["train", "--epochs", "9" * 5000, "--print-config"])
    assert code == 2 and "more than 4,300 digits" in err and len(err) < 500


def test_a_record_beyond_any_run_is_skipped(run, tmp_path):
    from wae.compare import list_line

    copy = _copy(run, tmp_path)
    shutil.rmtree(copy / "checkpoints")
    (copy / "metrics.json").unlink(missing_ok=True)
    saved = [r for r in map(json.loads, (copy / "metrics.jsonl").read_text().splitlines()) if r["kind"] == "eval"]
    with open(copy / "metrics.jsonl", "a") as f:
        f.write(json.dumps({**saved[-1], "epoch": 1e300}) + "\n")
        f.write(json.dumps({**saved[-1], "step": 2**60}) + "\n")
        f.write(json.dumps({**saved[-1], "epoch": -2}) + "\n")  # before any run ("epoch -2 eval" once)
        f.write(json.dumps({**saved[-1], "step": -1}) + "\n")
    from wae.report import saved_evals

    with pytest.warns(UserWarning, match="skipped 4 record"):
        assert saved_evals(copy)[-1] == saved[-1]  # the records beyond any run skipped
    assert (
        list_line(copy)[-1]
        == "no checkpoint (warning: skipped 4 record(s) of metrics.jsonl with missing or non-numeric values)"
    )  # and without weights, no figures (session 19)


# ----------------------------------------------------------------------------- session 18's hostile pass


def _damage_newest(copy):
    """Cut the newest checkpoint short; returns the step of the one that still reads."""
    from wae.checkpoint import run_checkpoints, step_of_name

    newest, older = run_checkpoints(copy)[:2]
    newest.write_bytes(newest.read_bytes()[:1000])
    return step_of_name(older)


def test_compare_shows_no_figures_of_other_weights(run, tmp_path):
    # wae compare took metrics.json and metrics-gmm.json whatever weights they record: after a
    # damaged newest checkpoint (or with another run's files copied in) it showed them as this
    # run's, beside images of the older weights
    from wae.compare import run_summary

    copy = _copy(run, tmp_path)
    assert run_cli(["evaluate", str(copy), "--n", "8", "--no-fid"])[0] == 0
    assert run_cli(["evaluate", str(copy), "--n", "8", "--no-fid", "--sampler", "gmm"])[0] == 0
    evaluated = json.loads((copy / "metrics.json").read_text())
    assert run_summary(copy)["samplers"]  # read while they are of the newest weights
    step = _damage_newest(copy)
    records = [json.loads(line) for line in (copy / "metrics.jsonl").read_text().splitlines()]
    mine = [r for r in records if r["kind"] == "eval" and r["step"] <= step][-1]
    assert mine["test_recon_mse"] != evaluated["test_recon_mse"]
    code, err = run_cli(["compare", str(copy), "--out", str(tmp_path / "cmp")])
    assert code == 0 and "using" in err, err
    table = (tmp_path / "cmp" / "compare.md").read_text()
    assert "| gmm |" not in table and f"{evaluated['test_recon_mse']:.4f}" not in table
    assert f"{mine['test_recon_mse']:.4f}" in table
    # the Python API: with the fingerprint of other weights, neither file counts
    with pytest.warns(UserWarning, match="of other weights than the checkpoint read, or records none: left out"):
        summary = run_summary(copy, step, "0" * 16)
    assert summary["metrics"]["test_recon_mse"] == mine["test_recon_mse"] and summary["samplers"] == {}


def test_a_folder_with_a_runs_checkpoints_and_an_exports_weights_is_refused(run, tmp_path):
    pytest.importorskip("safetensors")
    from wae.export import export_run

    copy = _copy(run, tmp_path)
    export_run(copy, tmp_path / "exp")
    shutil.copy(tmp_path / "exp" / "model.safetensors", copy / "model.safetensors")
    for argv in (["sample", str(copy), "--n", "4", "--out", str(tmp_path / "s.png")], ["report", str(copy)]):
        code, err = run_cli(argv)
        _one_line(code, err)
        assert "holds both a run's checkpoints/ and an export's model.safetensors" in err
    with pytest.raises(UserError, match="holds both"):
        wae.load_model(copy)
    assert not (tmp_path / "s.png").exists()
    from wae.compare import list_line

    assert "holds both" in list_line(copy)[-1]  # wae runs names the problem in the folder's line


def test_a_checkpoint_with_an_odd_step_is_known_by_its_file_name(run, tmp_path):
    # a crafted step (True) made the step unknown: the figures then fell back to the newest
    # checkpoint by name, a damaged one's, and the export said 0 steps
    from wae.checkpoint import run_checkpoints, step_of_name
    from wae.train import load_run

    copy = _copy(run, tmp_path)
    step = _damage_newest(copy)
    path = run_checkpoints(copy)[1]
    payload = torch.load(path, weights_only=True)
    payload["step"] = True
    torch.save(payload, path)
    with pytest.warns(UserWarning, match="using"):
        assert load_run(copy).step == step == step_of_name(path)
    assert step_of_name(path.with_name("model.pt")) is None


def test_the_report_shows_grids_of_the_checkpoint_it_read(run, tmp_path):
    # the grids at the top of the run folder are drawn at each evaluation, before the checkpoint
    # is saved: after a damaged newest checkpoint they are of weights the report did not read
    from wae.report import render_report

    copy = _copy(run, tmp_path)
    (copy / "metrics.json").unlink(missing_ok=True)
    step = _damage_newest(copy)
    records = [json.loads(line) for line in (copy / "metrics.jsonl").read_text().splitlines()]
    epoch = [r for r in records if r["kind"] == "eval" and r["step"] == step][-1]["epoch"]
    with pytest.warns(UserWarning, match="using"):
        page = render_report(copy)
    older = (copy / "grids" / f"samples-epoch{epoch:03d}.png").read_bytes()
    assert base64.b64encode(older).decode() in page and f"grids/samples-epoch{epoch:03d}.png" in page
    assert base64.b64encode((copy / "samples.png").read_bytes()).decode() not in page
    (copy / "grids" / f"reconstructions-epoch{epoch:03d}.png").unlink()  # no copy of it: left out, said
    with pytest.warns(UserWarning, match="using"):
        page = render_report(copy)
    assert "reconstructions.png left out: it was drawn from newer weights" in page
    # the run's own checkpoint: the top grids, as before
    assert "grids/samples-epoch" not in render_report(run)


@pytest.mark.parametrize(
    "argv",
    [
        ["evaluate", "RUN", "--n", "8", "--no-fid", "--out", "RUN/config.json"],
        ["evaluate", "RUN", "--n", "8", "--no-fid", "--out", "RUN/metrics-gmm.json"],  # read as the mixture's
        ["evaluate", "RUN", "--n", "8", "--no-fid", "--out", "OTHER/metrics.json"],
        ["sample", "RUN", "--n", "4", "--out", "RUN/sampler-gmm.npz"],
        ["sample", "RUN", "--n", "4", "--out", "OTHER/samples.png"],
        ["reconstruct", "RUN", "--n", "4", "--out", "RUN/checkpoints/x.png"],
        ["interpolate", "RUN", "--out", "RUN/grids/samples-epoch001.png"],
        ["report", "RUN", "--out", "OTHER/report.html"],
        ["report", "RUN", "--screenshot", "RUN/samples.png"],
    ],
)
def test_an_output_path_may_not_replace_a_runs_own_files(run, tmp_path, argv):
    # wae evaluate --out RUN/config.json once replaced the run's settings with its figures (every
    # later command failed), wae sample --out RUN/sampler-gmm.npz the fitted mixture
    copy, other = _copy(run, tmp_path), _copy(run, tmp_path / "o")
    before = {p: p.read_bytes() for folder in (copy, other) for p in folder.rglob("*") if p.is_file()}
    argv = [a.replace("RUN", str(copy)).replace("OTHER", str(other)) for a in argv]
    code, err = run_cli(argv)
    _one_line(code, err)
    assert "is a file name of the run folder" in err or "is inside the run folder" in err
    assert before == {p: p.read_bytes() for folder in (copy, other) for p in folder.rglob("*") if p.is_file()}


def test_the_default_outputs_and_paths_outside_runs_are_still_written(run, tmp_path):
    copy = _copy(run, tmp_path)
    for argv in (
        ["evaluate", str(copy), "--n", "8", "--no-fid"],
        ["evaluate", str(copy), "--n", "8", "--no-fid", "--out", str(copy / "metrics.json")],
        ["report", str(copy), "--out", str(copy / "report.html")],
        ["sample", str(copy), "--n", "4", "--out", str(copy / "my-samples.png")],
        ["sample", str(copy), "--n", "4", "--out", str(tmp_path / "samples.png")],
    ):
        code, err = run_cli(argv)
        assert code == 0, err


def test_a_damaged_checkpoint_warning_points_at_the_callers_line(run, tmp_path):
    copy = _copy(run, tmp_path)
    _damage_newest(copy)
    with pytest.warns(UserWarning, match="using") as caught:
        wae.load_model(copy)
    assert [w.filename for w in caught] == [__file__]


def test_settings_files_name_themselves_and_stay_short(tmp_path):
    # a batch beyond 2^24 in a file said so without the file's name; a JSON key given twice was
    # taken silently (the last); thousands of unknown keys, or one very long, filled the line
    cases = {
        "big.toml": ("[train]\nbatch_size = 16777217\n", "big.toml: train.batch_size must be at most 16777216"),
        "twice.json": ('{"train": {"batch_size": 5, "batch_size": 7}}', 'the key "batch_size" is given twice'),
        "long.toml": (f"[train]\n{'k' * 5000} = 1\n", 'unknown key "train.kkkk'),
        "long.json": (json.dumps({"k" * 5000: 1}), 'unknown key "kkkk'),
    }
    for name, (text, words) in cases.items():
        (tmp_path / name).write_text(text)
        code, err = run_cli(["train", "--config", str(tmp_path / name), "--print-config"])
        _one_line(code, err)
        assert words in err and len(err) < 400, err
    with pytest.raises(UserError, match=r'unknown config keys: "a", "b", "c" and 1,997 more'):
        wae.Config.from_dict({**{f"{c}": 1 for c in "abc"}, **{f"x{i}": 1 for i in range(1997)}})


@pytest.mark.parametrize("flag", [["--epochs", "\uff19"], ["--lr", "\uff10.1"], ["--seed", "\u0663"]])
def test_digits_of_other_scripts_are_not_numbers(flag, tmp_path):
    code, err = run_cli(["train", *flag, "--print-config"])
    _one_line(code, err)
    assert "not a" in err and "4,300" not in err


# ----------------------------------------------------------------------------- its second pass


def test_a_grid_copy_of_an_epoch_evaluated_twice_is_not_taken_for_the_checkpoint_read(tmp_path):
    # --max-steps 6 of 4-step epochs evaluates at steps 4 and 6, both epoch 1: the step-6
    # evaluation drew grids/*-epoch001.png, so after damage to step 6 the report read step 4
    # and showed step 6's copy as "of the checkpoint read"
    from wae.checkpoint import run_checkpoints
    from wae.report import render_report

    folder = tmp_path / "m"
    code, err = run_cli(["train", *TINY, "--epochs", "4", "--max-steps", "6", "--out", str(folder)])
    assert code == 0, err
    steps = [
        r["step"] for r in map(json.loads, (folder / "metrics.jsonl").read_text().splitlines()) if r["kind"] == "eval"
    ]
    assert steps == [4, 6]
    newest = run_checkpoints(folder)[0]
    newest.write_bytes(newest.read_bytes()[:1000])
    with pytest.warns(UserWarning, match="using"):
        page = render_report(folder)
    assert "samples.png left out: it was drawn from newer weights" in page and "grids/samples-epoch" not in page


def test_grids_stay_when_the_last_record_is_unreadable(run, tmp_path):
    # a last evaluation record that does not read made the report drop the top grids as "newer"
    from wae.report import render_report

    copy = _copy(run, tmp_path)
    lines = (copy / "metrics.jsonl").read_text().splitlines()
    last = max(i for i, line in enumerate(lines) if '"eval"' in line)
    lines[last] = lines[last].replace('"step": ', '"step": "x", "other": ', 1)
    (copy / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.warns(UserWarning, match="skipped|edited"):
        page = render_report(copy)
    assert "left out" not in page and base64.b64encode((copy / "samples.png").read_bytes()).decode() in page


def test_a_resume_keeps_a_record_with_a_key_given_twice(run, tmp_path):
    # JSON with a repeated key is refused in settings files only: a record of metrics.jsonl that
    # has one was dropped without a word by a resume once the check was everywhere
    copy = _copy(run, tmp_path)
    lines = (copy / "metrics.jsonl").read_text().splitlines()
    last = max(i for i, line in enumerate(lines) if '"eval"' in line)
    step = json.loads(lines[last])["step"]
    lines[last] = lines[last].replace('"kind": "eval"', '"kind": "eval", "kind": "eval"', 1)
    assert lines[last].count('"kind"') == 2
    (copy / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    assert run_cli(["train", "--resume", str(copy), "--epochs", "3"])[0] == 0
    kept = [json.loads(line) for line in (copy / "metrics.jsonl").read_text().splitlines()]
    assert step in [r["step"] for r in kept if r["kind"] == "eval"]


def test_a_resume_of_a_folder_with_an_exports_weights_writes_nothing(run, tmp_path):
    pytest.importorskip("safetensors")
    from wae.export import export_run

    copy = _copy(run, tmp_path)
    export_run(copy, tmp_path / "exp")
    shutil.copy(tmp_path / "exp" / "model.safetensors", copy / "model.safetensors")
    before = {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    _one_line(*run_cli(["train", "--resume", str(copy), "--epochs", "3"]))
    assert before == {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()}


def test_outputs_into_run_files_by_other_paths_are_refused(run, tmp_path):
    # a relative path from inside grids/, a link to grids/ or checkpoints/, upper case (a file
    # system that ignores case replaces config.json for CONFIG.JSON), the run's own data file
    copy = _copy(run, tmp_path)
    os.symlink(copy / "grids", tmp_path / "g")
    os.symlink(copy / "checkpoints", tmp_path / "c")
    epoch_grid = sorted((copy / "grids").glob("samples-epoch*.png"))[-1].name
    cases = [
        (["sample", "..", "--n", "4", "--out", epoch_grid], copy / "grids"),
        (["sample", str(copy), "--n", "4", "--out", str(tmp_path / "g" / epoch_grid)], None),
        (["sample", str(copy), "--n", "4", "--out", str(tmp_path / "c" / "x.npz")], None),
        (["evaluate", str(copy), "--n", "8", "--no-fid", "--out", str(copy / "CONFIG.JSON")], None),
        (["sample", str(copy), "--n", "4", "--out", str(copy / "Sampler-GMM.npz")], None),
    ]
    before = {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    for argv, cwd in cases:
        code, err = run_cli(argv, cwd)
        _one_line(code, err)
        assert "run folder" in err, err
    assert before == {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    assert not (tmp_path / "c" / "x.npz").exists() and not (copy / "CONFIG.JSON").exists()


def test_an_output_may_not_replace_the_data_a_run_was_trained_on(tmp_path):
    from .test_tables import table_rows, write_csv

    data = write_csv(tmp_path / "t.csv", table_rows()[:14])
    text = data.read_text()
    tiny = ["--batch-size", "4", "--precision", "fp32", "--no-progress", "--fit-sampler", "none", "--max-steps", "2"]
    assert run_cli(["train", "--data", str(data), *tiny, "--out", str(tmp_path / "run")])[0] == 0
    _one_line(*run_cli(["sample", str(tmp_path / "run"), "--n", "5", "--out", str(data)]))
    assert data.read_text() == text
    assert run_cli(["sample", str(tmp_path / "run"), "--n", "5", "--out", str(tmp_path / "s.csv")])[0] == 0


def test_a_users_folder_with_a_config_json_is_not_a_run(run, tmp_path):
    # only a folder with config.json and a checkpoint (or an export's weights) is a run: a
    # project folder of the user's with its own config.json, grids/ and checkpoints/ takes outputs
    project = tmp_path / "project"
    (project / "grids").mkdir(parents=True)
    (project / "checkpoints").mkdir()
    (project / "config.json").write_text("{}")
    for out in (project / "grids" / "x.png", project / "samples.png"):
        code, err = run_cli(["sample", str(run), "--n", "4", "--out", str(out)])
        assert code == 0 and out.is_file(), err
    code, err = run_cli(["evaluate", str(run), "--n", "8", "--no-fid", "--out", str(project / "metrics.json")])
    assert code == 0, err


def test_the_frechet_distance_takes_half_precision_statistics_and_refuses_nested_tensors():
    from wae.fid import frechet_distance, frechet_distance_of, gaussian_stats

    x, y = torch.randn(50, 100, dtype=torch.float64), torch.randn(50, 100, dtype=torch.float64)
    (ma, ca), (mb, cb) = gaussian_stats(x), gaussian_stats(y)
    exact = frechet_distance(ma, ca, mb, cb)
    for dtype in (torch.float16, torch.bfloat16):  # rank-deficient covariances rounded: refused once
        with pytest.warns(UserWarning, match="float16/bfloat16 statistics"):  # percents off (session 19)
            half = frechet_distance(ma.to(dtype), ca.to(dtype), mb.to(dtype), cb.to(dtype))
        assert half == pytest.approx(exact, rel=0.02)
    nested = torch.nested.nested_tensor([torch.randn(3, 4), torch.randn(2, 4)], layout=torch.jagged)
    with pytest.raises(UserError, match="dense"):
        frechet_distance_of(nested, torch.randn(5, 4))


# ----------------------------------------------------------------------------- its third pass


def test_outputs_by_odd_paths_are_one_line_and_compare_is_checked_too(run, tmp_path):
    # a link that loops and a NUL in the recorded data path gave tracebacks (Path.resolve);
    # a folder below grids/ got past the check; wae compare --out went through none
    copy = _copy(run, tmp_path)
    os.symlink("loop.json", tmp_path / "loop.json")
    _one_line(*run_cli(["evaluate", str(copy), "--n", "8", "--no-fid", "--out", str(tmp_path / "loop.json")]))
    (copy / "grids" / "sub").mkdir()
    for argv in (
        ["sample", str(copy), "--n", "4", "--out", str(copy / "grids" / "sub" / "x.png")],
        ["compare", str(copy), "--out", str(copy / "grids")],
        ["compare", str(copy), "--out", str(copy / "checkpoints")],
    ):
        code, err = run_cli(argv)
        _one_line(code, err)
        assert "is inside the run folder" in err, err
    assert not list((copy / "grids" / "sub").iterdir()) and not (copy / "grids" / "compare.md").exists()
    config = json.loads((copy / "config.json").read_text())
    config["data"]["path"] = "/nowhere/imgs\u0000.npz"
    (copy / "config.json").write_text(json.dumps(config))
    code, err = run_cli(["sample", str(copy), "--n", "4", "--out", str(tmp_path / "s.png")])
    assert "Traceback" not in err and code in (0, 2), err


def test_the_report_leaves_the_top_grids_when_a_newer_checkpoint_was_passed_over(run, tmp_path):
    # the damaged checkpoint's evaluation record unreadable too: the top grids are of its weights
    from wae.report import render_report

    copy = _copy(run, tmp_path)
    (copy / "metrics.json").unlink(missing_ok=True)
    step = _damage_newest(copy)
    lines = (copy / "metrics.jsonl").read_text().splitlines()
    last = max(i for i, line in enumerate(lines) if '"eval"' in line)
    lines[last] = lines[last].replace('"test_mmd": ', '"test_mmd": "x", "was": ', 1)
    (copy / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.warns(UserWarning):
        page = render_report(copy)
    assert base64.b64encode((copy / "samples.png").read_bytes()).decode() not in page
    records = [json.loads(line) for line in lines[:last]]
    epoch = [r for r in records if r["kind"] == "eval" and r["step"] == step][-1]["epoch"]
    assert f"grids/samples-epoch{epoch:03d}.png" in page


def test_a_metrics_file_that_records_no_weights_is_not_taken_for_the_weights_read(run, tmp_path):
    # without a fingerprint (edited, or from before them), after a damaged newest checkpoint,
    # compare and the report showed its figures (of the damaged checkpoint) beside the older ones
    from wae.report import render_report

    copy = _copy(run, tmp_path)
    assert run_cli(["evaluate", str(copy), "--n", "8", "--no-fid"])[0] == 0
    figures = json.loads((copy / "metrics.json").read_text())
    del figures["weights_fingerprint"]
    figures["test_recon_mse"] = 0.123456
    (copy / "metrics.json").write_text(json.dumps(figures))
    _damage_newest(copy)
    code, err = run_cli(["compare", str(copy), "--out", str(tmp_path / "cmp")])
    assert code == 0 and "metrics.json is of other weights" in err, err
    assert "0.1235" not in (tmp_path / "cmp" / "compare.md").read_text()
    with pytest.warns(UserWarning, match="using"):
        page = render_report(copy)
    assert "0.1235" not in page.split("</table>")[0] and "or records none" in page


def test_the_frechet_distance_of_features_far_from_one_is_exact_under_scale():
    # features of 1e77 to 1e153 (squares within float64) were refused as "ill-conditioned" while
    # precision/recall rescaled them; the distance scales as the square of a common factor
    from wae.fid import frechet_distance_of

    x, y = torch.randn(200, 8, dtype=torch.float64), torch.randn(200, 8, dtype=torch.float64) + 0.5
    exact = frechet_distance_of(x, y)
    for scale in (1e-60, 1e-30, 1e60, 1e77, 1e120, 1e150):
        assert frechet_distance_of(x * scale, y * scale) / scale**2 == pytest.approx(exact, rel=1e-9)
    with pytest.raises(UserError, match="features too large"):
        frechet_distance_of(x * 1e160, y * 1e160)  # the figure itself is beyond float64


# ----------------------------------------------------------------------------- session 19


@pytest.mark.parametrize("name", ["decoder.onnx", "DECODER.TORCHSCRIPT.PT", "export.json", "Model.safetensors"])
def test_an_output_may_not_replace_an_exports_files(run, tmp_path, name):
    # the decoders that wae export --format torchscript / onnx writes were not in the list of an
    # export's files (no command writes those suffixes today; the check must not depend on that)
    from wae.cli import _check_not_special

    export = tmp_path / "export"
    export.mkdir()
    shutil.copy(run / "config.json", export / "config.json")  # a wae config: a run's or an export's folder
    for file in ("model.safetensors", "README.md", "export.json", "decoder.onnx"):
        (export / file).write_bytes(b"kept")
    (export / "decoder.torchscript.pt").write_bytes(b"kept")
    with pytest.raises(UserError, match="is a file name of the run folder"):
        _check_not_special(export / name, "--out")
    code, err = run_cli(["evaluate", str(run), "--n", "8", "--no-fid", "--out", str(export / "export.json")])
    _one_line(code, err)
    assert all(p.read_bytes() == b"kept" for p in export.iterdir() if p.name != "config.json")


def test_compare_refuses_an_output_in_the_data_of_any_run_compared(run, tmp_path):
    # each run's data checked once, the second run's too
    copy = _copy(run, tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    config = json.loads((copy / "config.json").read_text())
    config["data"]["path"] = str(data)
    (copy / "config.json").write_text(json.dumps(config))
    code, err = run_cli(["compare", str(run), str(copy), "--out", str(data / "cmp")])
    _one_line(code, err)
    assert "the data the run was trained on" in err and not (data / "cmp").exists()


def test_compare_reads_a_runs_metrics_file_once_and_says_so_once(run, tmp_path, monkeypatch):
    # run_summary read metrics.json up to four times (its own loop, the figures, two staleness
    # checks), and a metrics.json that is not an object was warned about twice
    import wae.report
    from wae.compare import run_summary

    copy = _copy(run, tmp_path)
    (copy / "metrics.json").write_text("[1, 2]")
    reads = []
    real = wae.report.read_json_object
    monkeypatch.setattr(wae.report, "read_json_object", lambda path: reads.append(path.name) or real(path))
    with pytest.warns(UserWarning) as caught:
        summary = run_summary(copy, weights="0" * 16)
    assert reads.count("metrics.json") == 1
    assert [str(w.message).count("not a JSON object") for w in caught] == [1]
    assert summary["metrics"] and "test_recon_mse" in summary["metrics"]  # the last per-epoch evaluation
    figures = {"test_recon_mse": 0.5, "weights_fingerprint": "f" * 16}  # of other weights
    (copy / "metrics.json").write_text(json.dumps(figures))
    reads.clear()
    with pytest.warns(UserWarning, match="of other weights") as caught:
        summary = run_summary(copy, weights="0" * 16)
    assert reads.count("metrics.json") == 1 and len(caught) == 1
    assert summary["metrics"]["test_recon_mse"] != 0.5


def _exact_frechet(x, y):
    # tr((C_a^1/2 C_b C_a^1/2)^1/2) is the nuclear norm of B A^T for C_a = A^T A, C_b = B^T B
    # (centred features over sqrt(n - 1)): small matrices, no square roots of rounded eigenvalues
    a = (x - x.mean(0)) / (len(x) - 1) ** 0.5
    b = (y - y.mean(0)) / (len(y) - 1) ** 0.5
    cross = torch.linalg.svdvals(b @ a.T).sum()
    return float((x.mean(0) - y.mean(0)).pow(2).sum() + (a * a).sum() + (b * b).sum() - 2 * cross)


@pytest.mark.parametrize(("n", "d"), [(2, 5), (64, 512), (40, 300), (300, 64)])
def test_the_frechet_distance_of_fewer_points_than_dimensions_is_exact_and_never_negative(n, d):
    # the square roots of a rank-deficient covariance's null-space eigenvalues (rounding, about
    # 1e-8 of the scale each) were summed: two equal sets of 64 x 2048 features were -4.9e-4 apart,
    # different ones 1.3e-4 off the exact figure
    from wae.fid import frechet_distance_of

    g = torch.Generator().manual_seed(n + d)
    x = torch.randn(n, d, dtype=torch.float64, generator=g)
    y = torch.randn(n, d, dtype=torch.float64, generator=g) * 1.5 + 0.1
    assert frechet_distance_of(x, x.clone()) == pytest.approx(0.0, abs=1e-9 * d)
    assert frechet_distance_of(x, x.clone()) >= 0.0
    assert frechet_distance_of(x, y) == pytest.approx(_exact_frechet(x, y), rel=1e-11)
    assert frechet_distance_of(x * 1e60, (x + 1e-9) * 1e60) >= 0.0  # below float64's resolution: 0, not < 0


@pytest.mark.parametrize("rotated", [False, True])
@pytest.mark.parametrize("scale", [1e3, 5e3, 1e4, 1e6])
def test_the_frechet_distance_of_graded_features_is_right(scale, rotated):
    # one column thousands of times the others: a rank floor on the eigenvalues of S C_b S (in
    # squared units) zeroed the small directions, and the figure went from 0.15 to 30 (the
    # second helper's pass on the mend above); features with covariance diag(scale^2, 1, ..., 1)
    # against the same with the others x 1.1: 15 x 0.1^2. Rotated (the large direction along no
    # feature), the square roots of the eigenvalues of S C_b S gave 0.0 at 1e4 and 2.6 for 0.63
    # at width 64 (the third helper's pass; pytorch-fid's sqrtm gives -0.084): the singular
    # values of S_a S_b are accurate there
    from wae.fid import frechet_distance_of

    g = torch.Generator().manual_seed(0)
    z = torch.randn(500, 16, dtype=torch.float64, generator=g)
    q = torch.linalg.qr(z - z.mean(0))[0] * (500 - 1) ** 0.5  # centred, orthogonal columns: covariance I
    a = q * torch.tensor([scale] + [1.0] * 15, dtype=torch.float64)
    b = a * torch.tensor([1.0] + [1.1] * 15, dtype=torch.float64)
    if rotated:  # the distance is invariant under a rotation of the features
        turn = torch.linalg.qr(torch.randn(16, 16, dtype=torch.float64, generator=g))[0]
        a, b = a @ turn, b @ turn
    # float64 resolves the unit directions beside scale^2 to about eps * scale^2 (2e-4 at 1e6)
    rel = 1e-6 if scale <= 1e4 else 0.01
    assert frechet_distance_of(a, b) == pytest.approx(15 * 0.1**2, rel=rel)
    assert frechet_distance_of(a, a.clone()) == pytest.approx(0.0, abs=0.15 * rel)


def test_gaussian_statistics_of_one_feature_or_one_row():
    # width-1 features: torch.cov gives a number, which the distance refused as the wrong shape;
    # one row: a NaN covariance, refused as "features too large"
    from wae.fid import frechet_distance_of, gaussian_stats

    x = torch.randn(300, 1, dtype=torch.float64)
    y = torch.randn(200, 1, dtype=torch.float64) * 2 + 1
    mean, cov = gaussian_stats(x)
    assert mean.shape == (1,) and cov.shape == (1, 1)
    # 1-D Gaussians: (m_a - m_b)^2 + (s_a - s_b)^2
    sa, sb = x.std().item(), y.std().item()
    assert frechet_distance_of(x, y) == pytest.approx((x.mean() - y.mean()).item() ** 2 + (sa - sb) ** 2, rel=1e-9)
    for bad in (torch.randn(1, 3), torch.randn(0, 3), torch.randn(5)):
        with pytest.raises(UserError, match="n >= 2 rows"):
            gaussian_stats(bad)


def test_wae_runs_shows_no_figures_of_other_weights(run, tmp_path):
    # wae runs took any metrics.json as the run's "wae evaluate" figures: one of an older
    # checkpoint, one with no fingerprint (FID 1.50 shown), and after a damaged newest checkpoint
    # the per-epoch figures of that checkpoint; compare, report and export already left them out
    from wae.checkpoint import run_checkpoints
    from wae.compare import list_line

    copy = _copy(run, tmp_path)
    older = run_checkpoints(copy)[1]
    assert run_cli(["evaluate", str(older), "--n", "8", "--no-fid", "--out", str(copy / "metrics.json")])[0] == 0
    line = list_line(copy)
    assert line[-1] != "wae evaluate" and line[-1].endswith("eval"), line
    (copy / "metrics.json").write_text(json.dumps({"test_recon_mse": 0.001, "fid": 1.5}))
    line = list_line(copy)
    assert "1.50" not in line and "0.0010" not in line and line[-1] != "wae evaluate", line
    (copy / "metrics.json").unlink()
    assert run_cli(["evaluate", str(copy), "--n", "8", "--no-fid"])[0] == 0  # of the newest weights
    assert list_line(copy)[-1] == "wae evaluate"
    step = _damage_newest(copy)
    line = list_line(copy)
    assert line[-1] != "wae evaluate" and line[4] == str(step), line  # the checkpoint that reads


def test_wae_runs_labels_an_exports_own_evaluation(run, tmp_path):
    # figures of wae evaluate EXPORT were labelled as the model card's
    from wae.compare import list_line

    out = tmp_path / "export"
    assert run_cli(["export", str(run), "--out", str(out)])[0] == 0
    assert list_line(out)[-1].startswith("wae export")
    assert run_cli(["evaluate", str(out), "--n", "8", "--no-fid"])[0] == 0
    assert list_line(out)[-1] == "wae evaluate"


def test_train_overwrite_refuses_to_delete_its_own_inputs(run, tmp_path):
    # --overwrite of a folder that holds the --data file deleted it, trained from memory, then
    # failed to find it; a --config file there went the same way; an --out inside an image
    # folder given as data puts the run's grids among the training images
    from .test_tables import table_rows, write_csv

    copy = _copy(run, tmp_path)
    data = write_csv(copy / "mine.csv", table_rows()[:14])
    tiny = ["--batch-size", "4", "--precision", "fp32", "--no-progress", "--fit-sampler", "none", "--max-steps", "2"]
    code, err = run_cli(["train", "--data", str(data), *tiny, "--out", str(copy), "--overwrite"])
    _one_line(code, err)
    assert "--overwrite would delete --data" in err and data.is_file() and (copy / "checkpoints").is_dir()
    settings = copy / "my.toml"
    settings.write_text("[train]\nepochs = 1\n")
    code, err = run_cli(["train", "--config", str(settings), *TINY, "--out", str(copy), "--overwrite"])
    _one_line(code, err)
    assert "--overwrite would delete --config" in err and settings.is_file()
    images = tmp_path / "images"
    images.mkdir()
    code, err = run_cli(["train", "--data", str(images), "--precision", "fp32", "--out", str(images / "run")])
    _one_line(code, err)
    assert "inside the image folder" in err and not (images / "run").exists()
    # the run's own config.json as --config: read first, and the new run writes its own
    own = ["train", "--config", str(copy / "config.json"), "--max-steps", "2", "--no-progress", "--out", str(copy)]
    code, err = run_cli([*own, "--overwrite"])  # the user's own files in it: refused (session 32)
    _one_line(code, err)
    assert "holds what is not a wae run's own (mine.csv, my.toml:" in err and data.is_file()
    data.unlink()
    settings.unlink()
    assert run_cli([*own, "--overwrite"])[0] == 0


def test_outputs_are_refused_in_a_run_still_in_its_first_steps_and_in_upper_case_grids(run, tmp_path):
    # a run before its first records or checkpoint has config.json and .lock only: not taken for
    # a run, its config.json was replaced; GRIDS/ is grids/ on a file system that ignores case
    starting = tmp_path / "starting"
    starting.mkdir()
    shutil.copy(run / "config.json", starting / "config.json")
    (starting / ".lock").write_text("1")
    code, err = run_cli(["evaluate", str(run), "--n", "8", "--no-fid", "--out", str(starting / "config.json")])
    _one_line(code, err)
    assert json.loads((starting / "config.json").read_text()) == json.loads((run / "config.json").read_text())
    copy = _copy(run, tmp_path)
    (copy / "GRIDS").mkdir()
    _one_line(*run_cli(["sample", str(copy), "--n", "4", "--out", str(copy / "GRIDS" / "x.png")]))
    toy = ["toy", "--lambdas", "0", "--steps", "1", "--n-eval", "2", "--no-progress", "--overwrite"]
    _one_line(*run_cli([*toy, "--out", str(copy / "grids")]))
    assert not (copy / "grids" / "toy.md").exists()


def test_train_overwrite_refuses_a_link_to_its_inputs_inside_the_folder(run, tmp_path):
    # a --data link inside the folder (or a path through a linked sub-folder) resolved outside
    # it: the check let it through, clearing removed the link, the run trained from memory and
    # failed at the end with a half-written folder
    from .test_tables import table_rows, write_csv

    (tmp_path / "elsewhere").mkdir()
    data = write_csv(tmp_path / "elsewhere" / "mine.csv", table_rows()[:14])
    copy = _copy(run, tmp_path)
    os.symlink(data, copy / "link.csv")
    os.symlink(data.parent, copy / "sub")
    tiny = ["--batch-size", "4", "--precision", "fp32", "--no-progress", "--fit-sampler", "none", "--max-steps", "2"]
    for given in (copy / "link.csv", copy / "sub" / "mine.csv"):
        code, err = run_cli(["train", "--data", str(given), *tiny, "--out", str(copy), "--overwrite"])
        _one_line(code, err)
        assert "--overwrite would delete --data" in err and given.is_file()
    assert (copy / "checkpoints").is_dir() and data.is_file()


def test_evaluating_an_older_checkpoint_keeps_the_runs_figures(run, tmp_path):
    # wae evaluate RUN/checkpoints/step-N.pt (an older one) replaced RUN/metrics.json, the
    # evaluation of the run's weights (hours of FID), by default
    from wae.checkpoint import run_checkpoints

    copy = _copy(run, tmp_path)
    assert run_cli(["evaluate", str(copy), "--n", "8", "--no-fid"])[0] == 0
    before = (copy / "metrics.json").read_bytes()
    older = run_checkpoints(copy)[1]
    code, err = run_cli(["evaluate", str(older), "--n", "8", "--no-fid"])
    _one_line(code, err)
    assert "give --out" in err and (copy / "metrics.json").read_bytes() == before
    assert run_cli(["evaluate", str(older), "--n", "8", "--no-fid", "--out", str(tmp_path / "old.json")])[0] == 0
    newest = run_checkpoints(copy)[0]  # the run's own weights: their figures replaced, as from the folder
    assert run_cli(["evaluate", str(newest), "--n", "8", "--no-fid"])[0] == 0


def test_another_tools_folder_is_not_a_run(run, tmp_path):
    # a Hugging Face model folder (config.json, model.safetensors, README.md) or a folder with a
    # .lock of another tool took every wae output name, and its Grids/ sub-folder, as a run's
    for marker in ("model.safetensors", ".lock"):
        folder = tmp_path / marker.strip(".")
        (folder / "Grids").mkdir(parents=True)
        (folder / "config.json").write_text(json.dumps({"name": "my project", "architectures": ["X"]}))
        (folder / marker).write_bytes(b"theirs")
        for out in (folder / "Grids" / "fig.png", folder / "samples.png"):
            code, err = run_cli(["sample", str(run), "--n", "4", "--out", str(out)])
            assert code == 0 and out.is_file(), err


def test_wae_runs_shows_no_figures_of_a_run_without_weights_and_an_exports_step(run, tmp_path):
    # a run whose checkpoints were deleted listed its last per-epoch figures as if it had the
    # weights; an export was listed as 0 steps (untrained)
    from wae.compare import list_line

    copy = _copy(run, tmp_path)
    shutil.rmtree(copy / "checkpoints")
    line = list_line(copy)
    assert line[-1] == "no checkpoint" and all(cell == "–" for cell in line[5:-1]), line
    out = tmp_path / "export"
    assert run_cli(["export", str(run), "--out", str(out)])[0] == 0
    step = json.loads((out / "export.json").read_text())["step"]
    assert list_line(out)[4] == str(step) and step > 0


def test_third_pass_evaluate_by_checkpoint_file_and_odd_run_folders(run, tmp_path):
    # a metrics.json that records no weights was refused as "of other weights" when evaluating the
    # run's own newest checkpoint by its file; a checkpoint outside any run wrote its figures then
    # failed on the report (exit 2); a config.json with a section left out (defaults) was not a
    # run's, so other commands' outputs replaced its files
    from wae.checkpoint import run_checkpoints

    copy = _copy(run, tmp_path)
    (copy / "metrics.json").write_text(json.dumps({"test_recon_mse": 0.5}))
    newest = run_checkpoints(copy)[0]
    code, err = run_cli(["evaluate", str(newest), "--n", "8", "--no-fid"])
    assert code == 0 and "weights_fingerprint" in json.loads((copy / "metrics.json").read_text()), err
    loose = tmp_path / "loose"
    loose.mkdir()
    shutil.copy(newest, loose / newest.name)
    code, err = run_cli(["evaluate", str(loose / newest.name), "--n", "8", "--no-fid"])
    assert code == 0 and (loose / "metrics.json").is_file() and not (loose / "report.html").exists(), err
    settings = json.loads((copy / "config.json").read_text())
    del settings["loss"]
    (copy / "config.json").write_text(json.dumps(settings))
    before = (copy / "samples.png").read_bytes()
    _one_line(*run_cli(["sample", str(run), "--n", "4", "--out", str(copy / "samples.png")]))
    assert (copy / "samples.png").read_bytes() == before


def test_train_overwrite_refuses_a_data_path_that_passes_through_the_folder(run, tmp_path):
    # ext/L/../x.npz with L a link into the run folder: neither the path as given nor its target
    # is inside it, but the way to it is; clearing removed x.npz and the run failed at the end
    from .test_tables import table_rows, write_csv

    (tmp_path / "data").mkdir()
    data = write_csv(tmp_path / "data" / "real.csv", table_rows()[:14])
    copy = _copy(run, tmp_path)
    (copy / "sub").mkdir()
    os.symlink(data, copy / "x.csv")
    (tmp_path / "ext").mkdir()
    os.symlink(copy / "sub", tmp_path / "ext" / "L")
    given = f"{tmp_path}/ext/L/../x.csv"
    tiny = ["--batch-size", "4", "--precision", "fp32", "--no-progress", "--fit-sampler", "none", "--max-steps", "2"]
    code, err = run_cli(["train", "--data", given, *tiny, "--out", str(copy), "--overwrite"])
    _one_line(code, err)
    assert "--overwrite would delete --data" in err and (copy / "x.csv").is_symlink()
    # a data file beside the run, reached through a link to the run's parent: allowed (once the
    # folder holds only a run's files: session 32)
    (copy / "x.csv").unlink()
    (copy / "sub").rmdir()
    os.symlink(tmp_path, tmp_path / "ext" / "up")
    code, err = run_cli(
        [
            "train",
            "--data",
            str(tmp_path / "ext" / "up" / "data" / "real.csv"),
            *tiny,
            "--out",
            str(copy),
            "--overwrite",
        ]
    )
    assert code == 0, err


def test_fourth_pass_paths_through_a_run_and_run_folders_of_other_versions(run, tmp_path):
    # RUN/../data.csv passes through RUN but names a file beside it, which clearing keeps: it was
    # refused ("would delete"); a run or export whose config.json has a key this version does not
    # know (another wae version) or is damaged lost the output check's protection
    from wae.cli import _check_not_special, _passes_through

    from .test_tables import table_rows, write_csv

    copy = _copy(run, tmp_path)
    data = write_csv(tmp_path / "beside.csv", table_rows()[:14])
    assert not _passes_through(copy / ".." / "beside.csv", copy.resolve())
    assert _passes_through(copy / "sub" / ".." / "x.csv", copy.resolve())
    assert _passes_through(copy, copy.resolve())
    tiny = ["--batch-size", "4", "--precision", "fp32", "--no-progress", "--fit-sampler", "none", "--max-steps", "2"]
    code, err = run_cli(["train", "--data", f"{copy}/../beside.csv", *tiny, "--out", str(copy), "--overwrite"])
    assert code == 0 and data.is_file(), err
    settings = json.loads((copy / "config.json").read_text())
    for config in ({**settings, "from_a_newer_version": 1}, "{ damaged"):
        (copy / "config.json").write_text(config if isinstance(config, str) else json.dumps(config))
        with pytest.raises(UserError, match="is a file name of the run folder"):
            _check_not_special(copy / "samples.png", "--out")
    export = tmp_path / "export"
    export.mkdir()
    (export / "model.safetensors").write_bytes(b"weights")
    (export / "config.json").write_text(json.dumps({**settings, "from_a_newer_version": 1}))
    with pytest.raises(UserError, match="is a file name of the run folder"):
        _check_not_special(export / "README.md", "--out")


def test_the_frechet_factors_are_cholesky_at_full_rank_and_thin_below():
    # an eigendecomposition with eigenvectors of both 2048-wide covariances made the distance 15
    # times slower (the fourth pass): a Cholesky factor at full rank, eigenvectors only below
    from wae.fid import _psd_factor

    x = torch.randn(300, 20, dtype=torch.float64)
    cov = torch.cov(x.T)
    full = _psd_factor(cov, 1e-6, "C")
    assert full.shape == (20, 20) and torch.equal(full, full.tril())
    assert torch.allclose(full @ full.T, cov, atol=1e-12)
    few = torch.cov(x[:8].T)
    thin = _psd_factor(few, 1e-6, "C")
    assert thin.shape == (20, 7) and torch.allclose(thin @ thin.T, few, atol=1e-12)


# ----------------------------------------------------------------------------- session 20


def test_an_exports_step_and_data_come_from_its_weights_metadata(run, tmp_path):
    # load_run gave an export no step, so wae runs read export.json for it (two records of one
    # fact); now the safetensors metadata, written with the weights, is the one source
    from wae.compare import list_line
    from wae.export import exported_step, read_export, save_weights
    from wae.train import load_run

    out = tmp_path / "export"
    assert run_cli(["export", str(run), "--out", str(out)])[0] == 0
    source, loaded = load_run(run), load_run(out)
    step = source.step
    assert loaded.step == step and step > 0 and loaded.data_name == source.data_name
    (out / "export.json").write_text(json.dumps({"step": 999}))  # no longer read for the step
    assert list_line(out)[4] == str(step)
    model, cfg, _ = read_export(out)
    save_weights(model, cfg, out, {"step": None, "data": "digits"})  # a crafted checkpoint's: not known
    assert load_run(out).step is None and load_run(out).data_name == "digits" and list_line(out)[4] == "–"
    for text, expected in (
        ("12", 12),
        ("0", 0),
        ("None", None),
        ("-3", None),
        ("1" * 19, None),
        ("١٢", None),
        ("", None),
    ):
        assert exported_step({"step": text}) == expected, text
    assert exported_step({}) is None
    (out / "model.safetensors").write_bytes(b"damaged")  # the line names the file, not its full path
    # and why, in safetensors' words (session 50: the error's class alone)
    assert list_line(out)[-1].startswith("model.safetensors is damaged (SafetensorError: Error while deserializing")


def test_a_data_path_is_checked_where_the_loader_opens_it(run, tmp_path, monkeypatch):
    # the check expanded "~" where the loader does not: --data "~/d.npz" (quoted) with a folder
    # named "~" as --out --overwrite was checked under $HOME, and clearing deleted ./~/d.npz
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    copy = shutil.copytree(run, tmp_path / "~")
    data = copy / "d.npz"
    data.write_bytes(b"data")
    tiny = ["--batch-size", "4", "--precision", "fp32", "--no-progress", "--fit-sampler", "none", "--max-steps", "1"]
    code, err = run_cli(["train", "--data", "~/d.npz", *tiny, "--out", "~", "--overwrite"], cwd=tmp_path)
    assert code == 2 and "would delete --data ~/d.npz" in err and data.is_file(), err
    shutil.copytree(run, tmp_path / "home" / "R")  # $HOME/R/d.npz is not what the loader opens: not refused
    (tmp_path / "home" / "R" / "d.npz").write_bytes(b"data")
    code, err = run_cli(["train", "--data", "~/R/d.npz", *tiny, "--out", "home/R", "--overwrite"], cwd=tmp_path)
    assert code == 2 and "would delete" not in err and "not found" in err, err


@contextlib.contextmanager
def _bound(source, target):
    """``source`` bind-mounted on ``target`` (made: a folder, or an empty file), unmounted after."""
    if not target.exists():
        target.mkdir() if source.is_dir() else target.touch()
    if subprocess.run(["mount", "--bind", str(source), str(target)], capture_output=True).returncode != 0:
        pytest.skip("bind mounts need privileges this machine does not give")
    try:
        yield target
    finally:
        subprocess.run(["umount", str(target)], check=True)


def test_a_run_folder_reached_by_another_name_is_the_same_folder(run, tmp_path):
    # a bind mount of the run folder (the first helper of session 20), of a folder in it, or of a
    # file in it (the second): --data through it with --out RUN --overwrite was not refused (the
    # names differ), and clearing RUN deleted the data; the run's own config.json through a bind
    # mount was refused as "would delete". Paths are compared by place (device and the path in
    # its file system, from the mount table) as well as by name
    from wae.cli import _passes_through
    from wae.runs import is_within

    copy = _copy(run, tmp_path)
    (copy / "sub").mkdir()
    for data in (copy / "d.npz", copy / "sub" / "x.npz"):
        data.write_bytes(b"data")
    real = copy.resolve()
    tiny = ["--max-steps", "1", "--out", str(copy), "--overwrite"]
    with _bound(copy, tmp_path / "alias") as alias, _bound(copy / "sub", tmp_path / "m") as sub:
        with _bound(copy / "d.npz", tmp_path / "other.npz") as other:
            assert is_within(alias.resolve(), real) and is_within(sub.resolve(), real, strict=True)
            for given in (alias / "d.npz", sub / "x.npz", other):
                assert _passes_through(given, real), given
                code, err = run_cli(["train", "--data", str(given), *tiny])
                assert code == 2 and "would delete --data" in err, err
            assert not _passes_through(tmp_path / "elsewhere.npz", real)
            assert not is_within((tmp_path / "alias2").resolve(), real)
            assert (copy / "d.npz").read_bytes() == (copy / "sub" / "x.npz").read_bytes() == b"data"
        # the run's own settings through another name of the run: read, not deleted (the check
        # that comes next refuses the folder for the user's files in it: session 32)
        code, err = run_cli(["train", "--config", str(alias / "config.json"), *TINY, *tiny])
        assert code == 2 and "would delete" not in err and "not a wae run's own (d.npz, sub:" in err, err


@contextlib.contextmanager
def _mounted(*commands):
    """Run ``mount`` commands in turn (each a list of its arguments), unmount in reverse after."""
    done = []
    try:
        for args in commands:
            if subprocess.run(["mount", *args], capture_output=True).returncode != 0:
                pytest.skip("mounts need privileges this machine does not give")
            done.append(args[-1])
        yield
    finally:
        for target in reversed(done):
            subprocess.run(["umount", str(target)], check=True)


def test_the_mount_a_path_is_reached_through_is_the_one_on_top(run, tmp_path):
    # the mount table's longest prefix (the third helper of session 20): a bind mount of the run
    # hidden under a later tmpfs on its parent was taken for the path (a false refusal), one
    # whose own sub-mount it hid was not (data lost), and mount --move reorders the table (data
    # lost); the kernel's own mount ID of the path is taken now
    from wae.cli import _passes_through
    from wae.runs import is_within, place

    copy = _copy(run, tmp_path)
    real = copy.resolve()
    x = tmp_path / "x"
    (x / "y").mkdir(parents=True)
    (copy / "y").mkdir()
    (copy / "y" / "d.npz").write_bytes(b"data")
    with _mounted(["-t", "tmpfs", "none", str(x / "y")], ["--bind", str(copy), str(x)]):
        assert _passes_through(x / "y" / "d.npz", real)  # x/y is the run's y now: the tmpfs is hidden
    with _mounted(["--bind", str(copy), str(x)]), _mounted(["-t", "tmpfs", "none", str(x / "y")]):
        (x / "y" / "d.npz").write_bytes(b"mine")  # on the tmpfs over the run's y
        assert not _passes_through(x / "y" / "d.npz", real)
        assert place(x / "y" / "d.npz")[0] != place(real)[0]
    moved, p = tmp_path / "s1", tmp_path / "p"
    moved.mkdir()
    p.mkdir()
    with _mounted(["-t", "tmpfs", "none", str(p)]):  # the tmpfs, then the run moved on top of it
        with _mounted(["--bind", str(copy), str(moved)]):
            subprocess.run(["mount", "--move", str(moved), str(p)], check=True)
            try:
                assert is_within((p / "y" / "d.npz").resolve(), real, strict=True)
            finally:
                subprocess.run(["umount", str(p)], check=True)
                subprocess.run(["mount", "--bind", str(copy), str(moved)], check=True)  # for its own unmount
    assert (copy / "y" / "d.npz").read_bytes() == b"data"


def test_mount_points_of_any_name_and_deleted_sources_are_read(run, tmp_path):
    # a mount point whose name is not UTF-8 anywhere on the machine made every check a
    # UnicodeDecodeError traceback; the root of a bind mount whose source file was deleted
    # ("...//deleted") was read as a path inside the run (a false refusal)
    from wae.cli import _passes_through
    from wae.runs import place

    copy = _copy(run, tmp_path)
    odd = Path(os.fsdecode(bytes(tmp_path) + b"/\xe9t"))
    odd.mkdir()
    (copy / "tmp.npz").write_bytes(b"data")
    (tmp_path / "m.npz").touch()
    with _mounted(["-t", "tmpfs", "none", str(odd)], ["--bind", str(copy / "tmp.npz"), str(tmp_path / "m.npz")]):
        assert place(odd) is not None and place(odd / "f")[1].name == "f"
        (copy / "tmp.npz").unlink()  # the mount keeps the file; clearing the run cannot remove it
        assert not _passes_through(tmp_path / "m.npz", copy.resolve())
        assert _passes_through(copy / "other.npz", copy.resolve())


def test_overwrite_refuses_a_run_folder_with_a_file_system_mounted_in_it(run, tmp_path):
    # --overwrite of a run with a tmpfs mounted at RUN/m: clearing went into the mount (its data,
    # reached as ALIAS/d.npz through a bind mount, on another device than the run: not seen as
    # inside), then failed on the mount point, half-cleared (the fourth helper of session 20)
    copy = _copy(run, tmp_path)
    (copy / "m").mkdir()
    alias = tmp_path / "alias"
    alias.mkdir()
    before = sorted(p.name for p in copy.iterdir())
    with _mounted(["-t", "tmpfs", "none", str(copy / "m")], ["--bind", str(copy / "m"), str(alias)]):
        (alias / "d.npz").write_bytes(b"data")
        for data in (alias / "d.npz", tmp_path / "elsewhere.npz"):
            code, err = run_cli(["train", "--data", str(data), "--max-steps", "1", "--out", str(copy), "--overwrite"])
            assert code == 2 and "is a mount point on an entry of the run folder" in err, err
        assert (alias / "d.npz").read_bytes() == b"data" and sorted(p.name for p in copy.iterdir()) == before
    with _mounted(["-t", "tmpfs", "none", str(alias)]):  # a run folder that is a mount point itself
        shutil.copytree(copy, alias, dirs_exist_ok=True, ignore=shutil.ignore_patterns("m"))
        code, err = run_cli(["train", *TINY, "--max-steps", "1", "--out", str(alias), "--overwrite"])
        assert code == 0, err


def test_an_output_into_an_image_folder_reached_by_another_name_is_refused(tmp_path):
    # --out through a bind mount of a sub-folder of the image folder a run trains on: the run's
    # grids joined the training images (and the data's fingerprint changed under it)
    from PIL import Image

    from wae.cli import _check_not_data

    images = tmp_path / "imgs"
    (images / "sub").mkdir(parents=True)
    for i in range(4):
        Image.new("L", (8, 8), 40 * i).save(images / "sub" / f"{i}.png")
    with _bound(images / "sub", tmp_path / "m") as alias:
        code, err = run_cli(["train", "--data", str(images), "--max-steps", "1", "--out", str(alias / "run")])
        assert code == 2 and "inside the image folder" in err and not (images / "sub" / "run").exists(), err
        with pytest.raises(UserError, match="is \\(in\\) the data"):
            _check_not_data(alias / "g.png", (alias / "g.png").resolve(), "--out", images.resolve())
    assert sorted(p.name for p in (images / "sub").iterdir()) == [f"{i}.png" for i in range(4)]


def test_small_directions_beside_large_ones_keep_their_share_of_the_frechet_distance():
    # the rank tolerance dropped real eigenvalues below d eps times the largest, exact ones of a
    # diagonal covariance among them: diag(1e8, 1e-8) against diag(1e8, 1) gave 1.0 for 0.9998
    # (relative error 2e-4, where the inputs allow 1e-8); Cholesky keeps them
    from wae.fid import frechet_distance, frechet_distance_of

    def diagonal(*values):
        return torch.diag(torch.tensor(values, dtype=torch.float64))

    z2, z10 = torch.zeros(2), torch.zeros(10)
    assert frechet_distance(z2, diagonal(1e8, 1e-8), z2, diagonal(1e8, 1.0)) == pytest.approx((1 - 1e-4) ** 2, abs=5e-8)
    exact = 9 * (1 - 1e-5) ** 2
    assert frechet_distance(z10, diagonal(1e6, *[1e-10] * 9), z10, diagonal(1e6, *[1.0] * 9)) == pytest.approx(
        exact, rel=1e-9
    )
    g = torch.Generator().manual_seed(0)  # features of columns in very different units
    x = torch.randn(500, 3, generator=g, dtype=torch.float64) * torch.tensor([1e4, 1e-4, 1.0])
    y = torch.randn(500, 3, generator=g, dtype=torch.float64) * torch.tensor([1e4, 1.0, 1.0])
    assert frechet_distance_of(x, y) == pytest.approx(_exact_frechet(x, y), abs=2e-5)  # was 2e-4 off


@pytest.mark.parametrize("seed", range(6))
def test_the_frechet_distance_of_features_in_exact_linear_dependence_is_exact(seed):
    # a Cholesky factor of the covariance of features with one column 3 times another kept a
    # direction of rounding size (sqrt(eps) of the scale once square-rooted): 1e-4 off, relative,
    # on half the seeds (the second helper of session 20, mpmath as the reference); the factor of
    # the features themselves (QR) keeps it at eps
    from wae.fid import frechet_distance_of

    g = torch.Generator().manual_seed(seed)
    a = torch.randint(-1000, 1000, (40, 6), generator=g).double() / 1000
    a[:, 5] = 3 * a[:, 0]
    b = a.clone()
    b[:, 5] += torch.randint(-1000, 1000, (40,), generator=g).double() / 1000 * 2.0**-10
    exact = _exact_frechet(a, b)  # about 4e-8, against covariances of about 0.3
    assert frechet_distance_of(a, b) == pytest.approx(exact, rel=1e-6)
    c = torch.randn(7, 6, generator=g, dtype=torch.float64)  # fewer points than dimensions, then collinear
    assert frechet_distance_of(c, a) == pytest.approx(_exact_frechet(c, a), rel=1e-11)


def test_a_data_path_without_its_dataset_says_which_setting_is_missing(tmp_path):
    # a --config with data.path but no data.dataset reads the path as a copy of MNIST (the
    # default dataset), and the error blamed MNIST ("restore data/mnist.npz")
    mine = tmp_path / "mine.npz"
    np.savez(mine, x_train=np.zeros((8, 28, 28), np.uint8))
    for text in (f'[data]\npath = "{mine}"\n', f'[data]\npath = "{tmp_path / "missing.npz"}"\n'):
        (tmp_path / "c.toml").write_text(text)
        code, err = run_cli(
            ["train", "--config", str(tmp_path / "c.toml"), "--max-steps", "1", "--out", str(tmp_path / "r")]
        )
        assert code == 2 and 'data.dataset = "npz"' in err and "restore" not in err, err


@pytest.mark.parametrize("d", [24, 28])
def test_the_frechet_distance_of_ill_conditioned_features_with_large_pivots_is_exact(d):
    # the fast path's test read Cholesky pivots, which an ill-conditioned covariance can have
    # large (features Z L^T with L unit lower triangular, -1 below: every pivot 1, the smallest
    # eigenvalue 1e-14 to 1e-16 of the largest): 2e-7 to 1.4e-6 off, relative (the fourth helper
    # of session 20); its smallest eigenvalue is read now, and QR taken below 1e-8 of the largest
    from wae.fid import frechet_distance_of

    g = torch.Generator().manual_seed(0)
    n = 3 * d
    lower = torch.tril(-torch.ones(d, d, dtype=torch.float64), -1) + torch.eye(d, dtype=torch.float64)
    z = torch.randn(n, d, generator=g, dtype=torch.float64)
    z = torch.linalg.qr(z - z.mean(0))[0] * (n - 1) ** 0.5  # white: covariance I
    a = (z - z.mean(0)) @ lower.T
    weakest = torch.linalg.svd(lower)[0][:, -1]
    extra = torch.randn(n, 1, generator=g, dtype=torch.float64)
    basis = torch.cat([torch.ones(n, 1, dtype=torch.float64), z], 1)
    extra = extra - basis @ torch.linalg.lstsq(basis, extra).solution  # orthogonal to a's directions
    b = a + 1e-2 * extra / extra.norm() * (n - 1) ** 0.5 * weakest
    assert frechet_distance_of(a, b) == pytest.approx(_exact_frechet(a, b), rel=2e-8)


# ----------------------------------------------------------------------------- session 21


def test_a_path_check_places_the_run_folder_once(tmp_path, monkeypatch):
    # is_within placed the folder (a read of the mount table) on each call, and the walk of a
    # data path along its components called it about twice per component with the same folder
    # (session 20's final read): within(folder) places it once, the answers unchanged
    from wae import cli, runs

    folder = (tmp_path / "run").resolve()
    (folder / "sub").mkdir(parents=True)
    (tmp_path / "a" / "b" / "c").mkdir(parents=True)
    (tmp_path / "link").symlink_to(folder / "sub")
    placed = []
    real_place = runs.place

    def counting(path):
        placed.append(path)
        return real_place(path)

    monkeypatch.setattr(runs, "place", counting)
    cases = {
        tmp_path / "a" / "b" / "c" / "d.npz": False,
        tmp_path / "link" / "d.npz": True,  # a link into the folder on the way
        folder / "sub" / ".." / ".." / "x.npz": True,  # through the folder's name
        tmp_path / "a" / ".." / "x.npz": False,
    }
    for path, expected in cases.items():
        placed.clear()
        assert cli._passes_through(path, folder) == expected, path
        # the folder once, then at most each component's entry and its resolved step (4 each before)
        assert len(placed) <= 2 * len(path.parts) + 1, (path, len(placed))
    inside = runs.within(folder)
    for path, strict in ((folder / "sub" / "f", True), (folder, False), (folder, True), (tmp_path / "a", False)):
        assert inside(path, strict) == runs.is_within(path, folder, strict)
    # where places cannot be known, by identity: a folder on the way with the folder's inode
    monkeypatch.setattr(runs, "place", lambda path: None)
    assert runs.within(folder)(tmp_path / "link", False) is False  # the link itself is not the folder
    assert runs.within(folder)((tmp_path / "link").resolve() / "f", True)


def test_overwrite_refuses_a_mount_made_on_an_entry_of_the_run_through_another_name(run, tmp_path):
    # a tmpfs mounted on ALIAS/sub, ALIAS a bind mount of RUN: not seen inside RUN, but RUN/sub is
    # busy, and --overwrite removed checkpoints/, metrics.jsonl and the rest before it failed
    # there ("Device or resource busy"; the first helper of session 21)
    from wae import runs

    copy = _copy(run, tmp_path)
    (copy / "sub").mkdir()
    alias = tmp_path / "alias"
    before = sorted(p.name for p in copy.iterdir())
    with _bound(copy, alias), _mounted(["-t", "tmpfs", "none", str(alias / "sub")]):
        assert runs.mounts_inside(copy.resolve()) == [] and runs.mounts_over(copy.resolve()) == [alias / "sub"]
        code, err = run_cli(["train", *TINY, "--max-steps", "1", "--out", str(copy), "--overwrite"])
        assert code == 2 and "is a mount point on an entry of the run folder" in err, err
        assert sorted(p.name for p in copy.iterdir()) == before
        with pytest.raises(UserError, match="mount point"):
            runs.clear(copy)  # the Python API's guard as well
    assert runs.mounts_over(copy.resolve()) == []
    (copy / "sub").rmdir()  # a folder of the user's: refused too (session 32)
    code, err = run_cli(["train", *TINY, "--max-steps", "1", "--out", str(copy), "--overwrite"])
    assert code == 0, err


def test_an_error_that_quotes_a_name_with_a_newline_is_still_one_line(tmp_path):
    # a run folder or mount point named with a newline ran the one-line error over 2-3 lines
    # (the first helper of session 21); control characters are written as escapes
    odd = tmp_path / "a\nb\x1b[31m"
    odd.write_text("a file")
    for argv in (
        ["train", *TINY, "--max-steps", "1", "--out", str(odd)],
        ["sample", str(odd), "--out", str(tmp_path / "s.png")],
        ["train", "--preset", "no\nsuch"],
    ):
        code, err = run_cli(argv)
        assert code == 2 and err.count("\n") == 1 and "\\n" in err and "\x1b" not in err, (argv, err)
    # the Unicode line and paragraph separators split a line as well (str.splitlines, terminals),
    # and notes went out as they were (the second helper of session 21)
    other = tmp_path / "c\u2028d\u2029e\rf.toml"
    other.write_text('[loss]\nobjective = "mmd"\nlam = 1.0\n')  # mmd's default: the switch names it
    for argv, code_expected in (
        (["evaluate", str(other), "--no-fid"], 2),
        (["fit-sampler", str(other)], 2),
        (["train", "--config", str(other), "--objective", "swd", "--print-config"], 0),
    ):
        code, err = run_cli(argv)
        assert code == code_expected and len(err.splitlines()) == 1 and "\\u2028" in err, (argv, err)
    # a missing run blamed the default output ("--out MISSING/metrics.json: give a .json file"),
    # or a given --out without .json (the second and third helpers of session 21)
    for out in ([], ["--out", str(tmp_path / "ev")]):
        code, err = run_cli(["evaluate", str(tmp_path / "missing"), "--no-fid", *out])
        assert code == 2 and "no checkpoint at" in err and "--out" not in err, err


def test_status_lines_and_tables_stay_one_line_whatever_the_names(run, tmp_path, capsys):
    # `wae runs` and `wae compare` put run names into table rows as they were, and the "wrote ..."
    # lines of sample and report their paths: a newline or U+2028 split them (the third helper of
    # session 21); a "|" in a name ended its cell in compare's table
    from wae.compare import list_runs, table_cell

    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    odd = runs_dir / "a\nb\u2028c|d"
    shutil.copytree(run, odd)
    rows = list_runs(runs_dir).splitlines()
    assert len(rows) == 3 and "a\\nb\\u2028c\\|d" in rows[2], rows
    assert table_cell("x|y\nz") == "x\\|y\\nz"
    names = ["a\\|b", "a|b", "a\\\\|b", "c:\\dir", "\\", "`a\\|b`", "a\\`b`", "a&amp;b", "[l](u)", "![i](u)", "a*b*"]
    names += ["_x_", "a~~b~~", "__init__", "x_", "<b>x</b>", " lead", "trail ", "  ", "&#32;", "a\\_b", "**"]
    for name in names:  # each rendered as another name: a\|b as a|b, a&amp;b as a&b, [l](u) as a link
        assert rendered_markdown(f"| h |\n|---|\n| {table_cell(name)} |").removeprefix("h").strip("\n") == name, (
            table_cell(name)
        )
    for name in ("demo_s0", "run_1.5-x", "a & b", "c:\\dir", "ünï_cödé"):  # the usual names as they are
        assert table_cell(name) == name
    for name in ("bs\\", "\xa0x", "x\u3000", "a*b\\"):  # before what a template adds; white space a cell loses
        assert rendered_markdown(f"- data: {table_cell(name)}, 11 images") == f"data: {name}, 11 images", name
        assert rendered_markdown(f"| h |\n|---|\n| {table_cell(name)} |").removeprefix("h").strip("\n") == name, name
    out = tmp_path / "s\nx\u2029.png"
    for argv in (["sample", str(odd), "--n", "4", "--out", str(out)], ["report", str(odd)]):
        capsys.readouterr()
        code = main(argv)
        printed = capsys.readouterr().out
        assert code == 0 and len(printed.splitlines()) == 1 and "wrote" in printed, (argv, printed)


# ----------------------------------------------------------------------------- session 22


def test_names_that_are_not_utf8_are_escaped_in_lines_pages_and_figures(run, tmp_path, capsys):
    # a run folder named with bytes that are not UTF-8 (b"\xff\x9b"): `wae report` and the report
    # at the end of `wae train` stopped with UnicodeEncodeError writing report.html, `wae compare`
    # with matplotlib's TypeError, and the raw 0x9b (a C1 CSI) reached the terminal; under a strict
    # UTF-8 stdout every status line naming it crashed after the work (the helper of session 22)
    from wae.config import one_line

    assert one_line("bad\udcff\udc9b31mZ") == "bad\\udcff\\udc9b31mZ"
    odd = tmp_path / os.fsdecode(b"bad\xff\x9b31mZ")
    shutil.copytree(run, odd)
    for argv in (
        ["report", str(odd)],
        ["sample", str(odd), "--n", "4", "--out", str(odd / "s.png")],
        ["compare", str(odd), str(run), "--out", str(tmp_path / "cmp")],
        ["runs", str(tmp_path)],
    ):
        capsys.readouterr()
        assert main(argv) == 0, argv
        out, err = capsys.readouterr()
        (out + err).encode("utf-8")  # no lone surrogate: a strict UTF-8 stream takes it
        assert "\x9b" not in out + err and "\\udcff" in out, (argv, out)
    page = (odd / "report.html").read_bytes().decode("utf-8")
    assert "bad\\udcff\\udc9b31mZ" in page


@pytest.mark.figures
def test_a_figure_that_cannot_be_drawn_leaves_the_report_standing(run, tmp_path):
    # a hand-edited record of 1e308 made matplotlib's tick locator fail: `wae report` was a
    # traceback (the helper of session 22); the figure is left out with a line saying why
    copy = _copy(run, tmp_path)
    record = {"kind": "eval", "step": 1, "epoch": 0, "test_recon_mse": 1e308, "test_mmd": 0.1}
    (copy / "metrics.jsonl").write_text(json.dumps(record) + "\n")
    code, err = run_cli(["report", str(copy)])
    assert code == 0, err
    page = (copy / "report.html").read_text()
    assert "The curves figure could not be drawn from these values (ValueError" in page
    assert "alt='latent space'" in page  # the rest stands


@pytest.mark.figures
def test_the_latent_figure_draws_finite_codes_of_any_size():
    # codes near float32's largest overflowed when centred (svd of infinities: a traceback), a
    # constant coordinate of 1e30 got NaN bin edges (lo + 1 is lo), float64 codes of 1e300 were
    # called "no row without NaN or infinite values" (cast to float32), and meta or complex codes
    # were a traceback or drawn from their real parts (the helper of session 22)
    from matplotlib.collections import PolyCollection

    from wae.report import _png, latent_figure

    g = torch.Generator().manual_seed(0)
    prior = torch.randn(100, 4, generator=g)
    constant = torch.randn(100, 4, generator=g)
    constant[:, 2] = 1e30
    for codes in (
        torch.randn(100, 4, generator=g).clamp(-1, 1) * 3.4e38,
        constant,
        torch.randn(100, 4, generator=g, dtype=torch.float64) * 1e300,
    ):
        fig = latent_figure(codes, prior if codes is not constant else torch.full((100, 4), 1e30))
        fills = [c for c in fig.axes[-1].collections if isinstance(c, PolyCollection)][0]
        assert all(np.isfinite(p.vertices).all() for p in fills.get_paths())
        assert _png(fig).startswith("data:image/png;base64,")
    for bad in (torch.randn(10, 4, device="meta"), torch.randn(10, 4, dtype=torch.complex64)):
        with pytest.raises(UserError, match="real torch tensor"):
            latent_figure(bad, prior)


def test_an_export_path_safetensors_cannot_open_is_refused_not_called_damaged(run, tmp_path):
    # an export into a folder named with bytes that are not UTF-8 was written, then could not be
    # loaded and was called "damaged (SafetensorError)" (the second helper of session 22)
    odd = tmp_path / os.fsdecode(b"o\xfe-export")
    code, err = run_cli(["export", str(run), "--out", str(odd)])
    assert code == 2 and "UTF-8 names only" in err and not odd.exists(), err
    good = tmp_path / "export"
    assert run_cli(["export", str(run), "--out", str(good)])[0] == 0
    good.rename(odd)
    code, err = run_cli(["sample", str(odd), "--n", "2", "--out", str(tmp_path / "s.png")])
    assert code == 2 and "UTF-8 names only" in err and "damaged" not in err, err


@pytest.mark.figures
def test_codes_beyond_float64_are_a_user_error_and_a_report_note():
    # codes whose mean or span overflows float64 (1.8e308 of both signs) were a LinAlgError or
    # numpy's ValueError from the public latent_figure (the second helper of session 22)
    from wae.report import _plot, latent_figure

    prior = torch.randn(50, 4)
    rows = [[1.7e308, -1.7e308, 1.7e308, -1.7e308]] * 5 + [[-1.7e308, 1.7e308, -1.7e308, 1.7e308]] * 5
    huge = torch.tensor(rows, dtype=torch.float64)
    with pytest.raises(UserError, match="spans beyond float64"):
        latent_figure(huge, prior)
    same = torch.full((5, 4), 1e308, dtype=torch.float64)
    same[0, 0] = 0.0
    assert latent_figure(same, prior).axes  # the mean of 1e308s overflowed before the scaling
    note = _plot(lambda: latent_figure(huge, prior), "latent space")
    assert note.startswith("<p class='meta'>The latent space figure could not be drawn") and "spans beyond" in note


def test_a_config_holding_numpy_or_float_subclass_values_saves_a_readable_run(tmp_path):
    # a Spelt (a settings file's float) or numpy's float64 set by dataclasses.replace trained,
    # then every command refused the run: the checkpoint pickled the subclass, which
    # torch.load(weights_only=True) refuses ("no readable checkpoint: ... corrupt"); numpy's
    # float32 failed json.dumps of config.json
    import dataclasses
    import enum

    from wae.config import parse_toml

    from .conftest import tiny_config

    class Range(str, enum.Enum):
        UNIT = "01"

    base = tiny_config(epochs=1)
    cfg = dataclasses.replace(
        base,
        loss=dataclasses.replace(
            base.loss, lam=parse_toml("a = 1E0")["a"], kernel_scales=(np.float32(0.5), np.float64(1.0))
        ),
        train=dataclasses.replace(base.train, seed=np.int64(3), fit_sampler="none"),
        data=dataclasses.replace(base.data, range=Range.UNIT),  # a str enum: its text, not "Range.UNIT"
    )
    run = tmp_path / "run"
    wae.fit(cfg, run, progress=False, log=lambda _: None)
    (checkpoint,) = sorted((run / "checkpoints").glob("*.pt"))
    saved = torch.load(checkpoint, weights_only=True)["config"]
    assert saved["loss"]["lam"] == 1.0 and type(saved["loss"]["lam"]) is float
    assert [type(v) for v in saved["loss"]["kernel_scales"]] == [float, float] and type(saved["train"]["seed"]) is int
    assert type(saved["data"]["range"]) is str and saved["data"]["range"] == "01"
    assert json.loads((run / "config.json").read_text())["loss"]["kernel_scales"] == [0.5, 1.0]
    assert wae.load_run(run).config.loss.lam == 1.0


def test_a_run_name_in_an_exports_model_card_renders_as_itself(run, tmp_path):
    # it was put in a code span ("exported from run `NAME`"), which a backtick in the name ends
    odd = tmp_path / "a*b*_`c` [d](e)"
    shutil.copytree(run, odd)
    assert run_cli(["export", str(odd), "--out", str(tmp_path / "export")])[0] == 0
    title = (tmp_path / "export" / "README.md").read_text().splitlines()[0]
    assert rendered_markdown(title).endswith("exported from run a*b*_`c` [d](e)"), title


@pytest.mark.parametrize(
    "env", [{"PYTHONIOENCODING": "ascii"}, {"PYTHONIOENCODING": "latin-1"}, {"LC_ALL": "C", "PYTHONUTF8": "0"}]
)
def test_a_stream_that_cannot_write_unicode_gets_escapes_not_a_traceback(run, tmp_path, env):
    # `wae runs` wrote its "–" placeholder, `wae train --help` an "é", under LC_ALL=C: a
    # UnicodeEncodeError traceback, exit code 1
    import sys

    (tmp_path / "runs").mkdir()
    shutil.copytree(run, tmp_path / "runs" / "r")
    # (both commands in one interpreter started under the encoding, as `wae` starts: a second
    # interpreter cost 1.8 s of the fast suite for each)
    base = {k: v for k, v in os.environ.items() if k not in ("LC_ALL", "LANG", "PYTHONIOENCODING", "PYTHONUTF8")}
    code = (
        "import sys\nfrom wae.start import main\n"
        "for argv in (['runs', sys.argv[1]], ['train', '--help']):\n"
        "    try:\n        code = main(argv)\n    except SystemExit as stop:\n        code = stop.code\n"
        "    sys.stdout.flush()\n    print('\\nexit', code, file=sys.stderr, flush=True)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "runs")],
        env={**base, "PYTHONCOERCECLOCALE": "0", **env},
        capture_output=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0 and b"Traceback" not in done.stderr, done.stderr[-300:]
    assert done.stderr.splitlines()[-1] == b"exit 0" and done.stderr.count(b"\nexit 0\n") == 2, done.stderr[-300:]
    assert b"--time-budget" in done.stdout and b"r" in done.stdout  # the help and the runs table were written
    assert done.stdout.isascii() or env.get("PYTHONIOENCODING") == "latin-1"


def test_fit_with_resume_needs_a_run_folder_before_any_work(tmp_path):
    # resume=True on a missing folder trained a new run from scratch (minutes of MNIST), and with
    # no run_dir it was an AssertionError after the data were loaded
    from .conftest import tiny_config

    with pytest.raises(UserError, match=r"nope is not a run folder \(no config.json\)$"):
        wae.fit(tiny_config(epochs=1), tmp_path / "nope", resume=True, progress=False)
    assert not (tmp_path / "nope").exists()
    with pytest.raises(UserError, match="resume=True continues a run folder: give its run_dir"):
        wae.fit(tiny_config(epochs=1), resume=True, progress=False)


def test_a_second_training_in_another_thread_is_refused(tmp_path, monkeypatch):
    # two fits in two threads drew from torch's one global generator: each gave other figures
    # than its seed gives alone (test MMD 2.7466 and 2.7076 against 2.7409), config.json saying seed 0
    import threading

    import wae.train as train

    from .conftest import tiny_config

    inside, leave = threading.Event(), threading.Event()

    def held(*args, **kwargs):
        inside.set()
        leave.wait(30)

    monkeypatch.setattr(train, "_fit", held)
    first = threading.Thread(target=lambda: train.fit(tiny_config(epochs=1), tmp_path / "a", progress=False))
    first.start()
    try:
        assert inside.wait(30)
        with pytest.raises(UserError, match="another wae training runs in this process"):
            train.fit(tiny_config(epochs=1), tmp_path / "b", progress=False)
        assert not (tmp_path / "b").exists()
    finally:
        leave.set()
        first.join(30)
    assert train.fit(tiny_config(epochs=1), tmp_path / "c", progress=False) is None  # after it, one may train


@pytest.mark.parametrize("where", ["figure", "table"])
def test_an_interrupted_compare_leaves_no_folder(run, tmp_path, monkeypatch, where):
    # Ctrl-C while compare.png was drawn left an empty --out folder; between the two files, a
    # compare.png without its compare.md
    import wae.compare as compare

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    real_write = compare.write_atomic

    def second_write_interrupted(path, data):
        if path.name == "compare.md":
            raise KeyboardInterrupt
        real_write(path, data)

    if where == "figure":
        monkeypatch.setattr(compare, "figure_bytes", interrupted)
    else:  # compare.png written, then the signal
        monkeypatch.setattr(compare, "write_atomic", second_write_interrupted)
    with pytest.raises(KeyboardInterrupt):
        compare.compare_runs([run], tmp_path / "cmp")
    assert not (tmp_path / "cmp").exists()


def test_an_interrupted_toy_leaves_no_folder(tmp_path, monkeypatch):
    import wae.toy as toy

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(toy, "train_toy", interrupted)
    with pytest.raises(KeyboardInterrupt):
        toy.run_toy(toy.ToyConfig(datasets=("ring",), lambdas=(1.0,), steps=1, n_eval=8), tmp_path / "toy")
    assert not (tmp_path / "toy").exists()


def test_the_python_api_takes_str_paths_and_refuses_a_string_where_a_list_is_taken(run, tmp_path):
    # list_runs("runs") and compare_runs([], "out") were AttributeErrors ('str' object has no
    # attribute 'is_dir'); compare_runs("base", ...) read the path letter by letter ("b is not a
    # run folder"), export_run(run, out, "torchscript") too ("unknown export format 'c'");
    # load_exported of a run folder said its model.safetensors was damaged
    from wae.compare import compare_runs, list_runs
    from wae.export import export_run, load_exported

    assert f"| {run.name} |" in list_runs(str(run.parent))
    with pytest.raises(UserError, match="runs must be a non-empty list of run folders; got '"):
        compare_runs(str(run), str(tmp_path / "c1"))
    with pytest.raises(UserError, match=r"runs must be a non-empty list of run folders; got \[\]"):
        compare_runs([], str(tmp_path / "c2"))
    with pytest.raises(UserError, match=r"runs must be a non-empty list of run folders; got \[\]"):
        compare_runs(iter([]), str(tmp_path / "c2"))  # an empty iterator wrote a table of no runs
    table, _ = compare_runs([str(run)], str(tmp_path / "c3"))
    assert table.is_file()
    with pytest.raises(UserError, match="formats must be a tuple of names"):
        export_run(str(run), str(tmp_path / "e1"), "torchscript")  # type: ignore[arg-type]
    with pytest.raises(UserError, match=r"is not an export \(no model.safetensors; `wae export RUN --out DIR`"):
        load_exported(run)
    with pytest.raises(UserError, match=r"nope is not a folder \(an export is the folder"):
        load_exported(tmp_path / "nope")  # was "nope is an export without config.json"
    assert not any((tmp_path / name).exists() for name in ("c1", "c2", "e1"))


def test_a_current_folder_that_was_removed_is_said_not_a_crash_of_torchs_import(tmp_path):
    # every command, --help too, printed oneMKL's "FATAL ERROR: Cannot load libtorch_cpu.so"
    import sys

    script = Path(sys.executable).parent / "wae"
    if not script.is_file():
        pytest.skip("the wae console script is not installed beside this Python")
    done = subprocess.run(
        ["bash", "-c", f"mkdir gone && cd gone && rmdir ../gone && exec {script} --help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and done.stderr == (
        "wae: error: the current folder no longer exists (removed or moved): cd into one that does\n"
    ), done.stderr


def test_a_run_or_a_kernel_scale_given_twice_is_refused(run, tmp_path, monkeypatch):
    # wae compare A A wrote A's row (and its figures) twice; --kernel-scales 1 1.0 weighed the
    # scale-1 kernel double without a word
    from wae.compare import compare_runs

    monkeypatch.chdir(run.parent)
    (tmp_path / "link").symlink_to(run)
    for again in (run.name, f"./{run.name}", str(run), f"{run.name}/", str(tmp_path / "link")):
        code, err = run_cli(["compare", run.name, again, "--out", str(tmp_path / "c")])
        assert code == 2 and f"the run {run.name} is given twice" in err and "name each run once" in err, err
        assert (again == run.name) != (f"(as {run.name} and {again})" in err), err  # each as it was given
        assert err.count("\n") == 1 and not (tmp_path / "c").exists()
    with pytest.raises(UserError, match=r"is given twice \(as .* and .*/\.\): name each run once"):
        compare_runs([run, str(run) + "/."], tmp_path / "c")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")  # resolve() raised RuntimeError on a loop of links
    with pytest.raises(UserError, match="loop is not a run folder"):
        compare_runs([run, tmp_path / "loop"], tmp_path / "c")
    assert not (tmp_path / "c").exists()
    out = tmp_path / "t"
    code, err = run_cli(["train", "--objective", "mmd", "--kernel-scales", "1", "2", "1.0", "--out", str(out)])
    said = "argument --kernel-scales: must name each scale once (a scale given twice weighs its kernel double); "
    assert code == 2 and said + "got 1 twice (as 1 and 1.0)" in err and not out.exists(), err
    (tmp_path / "k.toml").write_text("[loss]\nobjective = 'mmd'\nkernel_scales = [0.5, 5E-1]\n")
    code, err = run_cli(["train", "--config", str(tmp_path / "k.toml"), "--out", str(out)])
    assert code == 2 and "k.toml: loss.kernel_scales must name each scale once" in err, err
    assert "got 0.5 twice (as 0.5 and 5E-1)" in err and not out.exists(), err


def test_a_run_saved_with_a_repeated_kernel_scale_is_still_read_and_resumed(tmp_path, monkeypatch):
    # the rule binds new runs only: made a rule of every config read, it refused every command on
    # a run trained before it came, and the checkpoint's own config too (no way out)
    import wae.cli
    import wae.config

    for module in (wae.config, wae.cli):  # the code before the rule
        monkeypatch.setattr(module, "new_run_problem", lambda *args, **kwargs: None)
    command = ["train", *SMALL_RUN, "--objective", "mmd", "--kernel-scales", "1", "1", "2", "--epochs", "1"]
    command += ["--out", str(tmp_path / "old"), "--auto-resume"]
    code, err = run_cli(command)
    assert code == 0, err
    monkeypatch.undo()
    assert json.loads((tmp_path / "old" / "config.json").read_text())["loss"]["kernel_scales"] == [1.0, 1.0, 2.0]
    code, err = run_cli(command)  # the same --auto-resume command (a restart script): it continues the run
    assert code == 0 and "continuing it" in err, err
    code, err = run_cli(["train", "--resume", "old", "--kernel-scales", "1", "1", "--epochs", "3"], tmp_path)
    assert code == 2 and "with --resume only" in err, err  # the resume's own refusal, not the new-run rule's
    for argv in (["sample", "old", "--n", "4", "--out", "s.png"], ["train", "--resume", "old", "--epochs", "2"]):
        code, err = run_cli(argv, tmp_path)
        assert code == 0, err
    code, err = run_cli([*command[:-3], "--out", str(tmp_path / "new2"), "--auto-resume"])  # no run there: a new one
    assert code == 2 and "argument --kernel-scales: must name each scale once" in err, err
    assert not (tmp_path / "new2").exists()
    assert wae.load_model(tmp_path / "old")[1].loss.kernel_scales == (1.0, 1.0, 2.0)
    code, err = run_cli(
        ["train", *SMALL_RUN, "--config", str(tmp_path / "old" / "config.json"), "--out", str(tmp_path / "new")]
    )
    assert code == 2 and "loss.kernel_scales must name each scale once" in err and not (tmp_path / "new").exists(), err


def test_interpolation_lines_join_distinct_images():
    # the ends were drawn with replacement: on a small test set a line could join an image to
    # itself, or two lines the same two images; the training grids' lines on a split of 8 were
    # all constant
    from wae.evaluate import interpolation_ends, random_line_ends

    for n, pairs in ((13, 6), (13, 8), (5, 8), (4, 8), (2, 5), (10_000, 8)):
        for seed in range(50):
            ends = random_line_ends(n, pairs, seed)
            assert ends.shape == (2, pairs) and bool((ends[0] != ends[1]).all()) and int(ends.max()) < n
            lines = {frozenset(pair) for pair in ends.T.tolist()}
            assert len(lines) == min(pairs, n * (n - 1) // 2)  # no line twice while there are enough
            if n >= 2 * pairs:
                assert len(set(ends.flatten().tolist())) == 2 * pairs  # every image once
            assert torch.equal(ends, random_line_ends(n, pairs, seed))  # seeded
        images = torch.arange(n).float()
        a, b = interpolation_ends(images, 8)
        assert bool((a != b).all()) if n > 1 else True
    assert random_line_ends(1, 3, 0).tolist() == [[0, 0, 0], [0, 0, 0]]
    a, b = interpolation_ends(torch.arange(100).float(), 8)  # the usual split: images 48 to 63, as before
    assert a.tolist() == list(range(48, 56)) and b.tolist() == list(range(56, 64))
