"""``wae train --auto-resume``: the same command again continues the run in --out (an interrupted
or crashed one from its last checkpoint; a finished one has nothing to train), starts one there
when there is none, and refuses a run there with other settings, changing nothing."""

from __future__ import annotations

import hashlib
import json

import pytest

from wae import checkpoint as ckpt

from .conftest import kill_at_a_revisions_record, run_cli

# 512 synthetic images in batches of 128: 4 steps an epoch, on the cheapest network
QUICK = ["--dataset", "synthetic", "--batch-size", "128", "--precision", "fp32", "--no-progress", "--arch", "fast"]
QUICK += ["--eval-size", "64", "--fit-sampler", "none"]


def _command(run, *more: str) -> list[str]:
    return ["train", *QUICK, "--epochs", "2", "--out", str(run), "--auto-resume", *more]


def _contents(folder) -> dict[str, str]:
    """Every file under ``folder``, by relative path, as a hash of its bytes."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _steps(run) -> list[str]:
    """The run's checkpoint files, oldest first."""
    return sorted(p.name for p in ckpt.run_checkpoints(run))


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A run that --auto-resume started (there was none) and trained to its end, 2 epochs."""
    run = tmp_path_factory.mktemp("auto") / "run"
    code, err = run_cli(_command(run))
    assert code == 0, err
    assert "continuing" not in err
    return run


def test_a_crashed_run_is_continued_from_its_last_checkpoint(finished, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(finished, run)
    (run / ckpt.FOLDER / "step-00000008.pt").unlink()  # killed during epoch 2: epoch 1's is the newest
    code, err = run_cli(_command(run))
    assert code == 0, err
    assert "holds this run: continuing it (--auto-resume;" in err
    assert _steps(run) == ["step-00000004.pt", "step-00000008.pt"]
    records = [json.loads(line) for line in (run / ckpt.RECORDS).read_text().splitlines()]
    evals = [r["step"] for r in records if r["kind"] == "eval"]
    assert evals == [4, 8]  # epoch 2's evaluation once: the crashed session's records were dropped
    assert json.loads((run / "config.json").read_text()) == json.loads((finished / "config.json").read_text())


def test_a_finished_run_has_nothing_to_train_and_its_weights_stay(finished, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(finished, run)
    before = _contents(run)
    code, err = run_cli(_command(run))
    assert code == 0 and "continuing it" in err and "nothing to train" in err, err
    after = _contents(run)
    for name in ("config.json", f"{ckpt.FOLDER}/step-00000008.pt", ckpt.RECORDS):
        assert after[name] == before[name], name
    code, err = run_cli(_command(run, "--keep-checkpoints", "3"))  # a session's own setting may differ
    assert code == 0 and "nothing to train" in err, err
    assert json.loads((run / "config.json").read_text())["train"]["keep_checkpoints"] == 3


@pytest.mark.parametrize(
    ("changed", "named"),
    [
        (["--lr", "0.001"], "--lr 0.002 there, 0.001 given"),
        (["--seed", "1"], "--seed 0 there, 1 given"),
        (["--epochs", "3"], "--epochs 2 there, 3 given"),
        (["--arch", "small"], "--arch fast there, small here (the mnist-fast preset's default)"),
        (["--prior", "gaussian"], "--prior mixture there, gaussian given"),
        # a switch as its flags, not "True there, False given" (session 48)
        (["--no-channels-last"], "--channels-last there, --no-channels-last given"),
        (["--no-batch-norm"], "--batch-norm there, --no-batch-norm given"),
        # a list as the flag takes it, not "(0.1, 0.2, ...)"
        (["--kernel-scales", "1", "2"], "--kernel-scales 0.1 0.2 0.5 1.0 2.0 5.0 10.0 there, 1.0 2.0 given"),
        # the objective typed is given, not the preset's; the rest are its defaults for that objective
        (
            ["--objective", "vae"],
            "--encoder deterministic there, gaussian here (the mnist-fast preset's default for vae); "
            "--objective mmd there, vae given",
        ),
        (["--time-budget", "5"], "--time-budget not set there, 5.0 given"),
    ],
)
def test_a_run_with_other_settings_is_refused_and_left_as_it_was(finished, changed, named):
    before = _contents(finished)
    code, err = run_cli([*_command(finished), *changed])
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "holds a run with other settings" in err and named in err, err
    assert f"wae train --resume {finished}" in err
    assert _contents(finished) == before


def test_a_default_changed_since_the_run_began_is_named_as_the_presets(finished, tmp_path):
    # session 40: mnist-fast's WAE-MMD draws from a mixture prior; a run begun with N(0, I) by the
    # same command is another run, and the message must not say the user gave --prior
    import shutil

    run = tmp_path / "run"
    shutil.copytree(finished, run)
    config = json.loads((run / "config.json").read_text())
    config["loss"]["prior"] = "gaussian"  # what the same command recorded before session 40
    (run / "config.json").write_text(json.dumps(config))
    before = _contents(run)
    code, err = run_cli(_command(run))
    assert code == 2 and err.count("\n") == 1, err
    assert "--prior gaussian there, mixture here (the mnist-fast preset's default)" in err, err
    assert _contents(run) == before


def test_a_damaged_config_is_refused_and_nothing_is_written(finished, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(finished, run)
    (run / "config.json").write_text("{")
    before = _contents(run)
    code, err = run_cli(_command(run))
    assert code == 2 and "config.json is damaged" in err, err
    assert _contents(run) == before


@pytest.mark.parametrize(
    "wrong",
    [
        ["train", *QUICK, "--auto-resume"],  # no --out
        ["train", *QUICK, "--auto-resume", "--out", "x", "--overwrite"],
        ["train", "--resume", "x", "--auto-resume"],
    ],
)
def test_auto_resume_needs_out_and_neither_resume_nor_overwrite(wrong, tmp_path):
    code, err = run_cli(wrong, cwd=tmp_path)
    assert code == 2 and "--auto-resume continues or starts the run in --out DIR" in err, err
    assert list(tmp_path.iterdir()) == []


def test_a_run_whose_budget_was_decided_keeps_the_plan_it_made(tmp_path, monkeypatch):
    import wae.train as train

    monkeypatch.setattr(train, "epochs_within", lambda *args, **kwargs: 2)  # the budget keeps 2 of 4
    run = tmp_path / "run"
    command = ["train", *QUICK, "--epochs", "4", "--time-budget", "30", "--out", str(run), "--auto-resume"]
    code, err = run_cli(command)
    assert code == 0 and "training 2 of the 4 epochs" in err, err
    saved = json.loads((run / "config.json").read_text())["train"]
    assert (saved["epochs"], saved["time_budget"]) == (2, None)
    before = _contents(run)
    code, err = run_cli(command)  # the same command again: the plan made stands, not 4 epochs again
    assert code == 0 and "continuing it" in err and "nothing to train" in err, err
    assert _steps(run)[-1] == "step-00000008.pt"
    assert _contents(run)["config.json"] == before["config.json"]
    # another budget is another run: its plan would differ
    other = ["train", *QUICK, "--epochs", "4", "--time-budget", "20", "--out", str(run), "--auto-resume"]
    code, err = run_cli(other)
    assert code == 2 and "--time-budget 30.0 there (its budget kept 2 epochs), 20.0 given" in err, err
    assert "--epochs" not in err and "--schedule-epochs" not in err, err  # the plan's, not the command's
    code, err = run_cli([*command, "--schedule-epochs", "3"])  # another schedule asked
    assert code == 2 and "--schedule-epochs 4 there (its budget kept 2 epochs), 3 given" in err, err
    unbudgeted = ["train", *QUICK, "--epochs", "4", "--out", str(run), "--auto-resume"]  # it would train 4 epochs
    code, err = run_cli(unbudgeted)
    assert code == 2 and "--time-budget 30.0 there (its budget kept 2 epochs), not set given" in err, err
    assert _contents(run)["config.json"] == before["config.json"]


def test_what_the_run_recorded_of_itself_is_not_a_difference(tmp_path):
    # config.json holds the data's absolute path and fingerprint and the precision "auto" chose;
    # the same command gives a relative path, no fingerprint and "auto"
    import numpy as np

    rng = np.random.default_rng(0)
    images = {"x_train": rng.integers(0, 256, (256, 28, 28)), "x_test": rng.integers(0, 256, (64, 28, 28))}
    np.savez(tmp_path / "d.npz", **{k: v.astype(np.uint8) for k, v in images.items()})
    command = ["train", "--data", "d.npz", "--batch-size", "128", "--arch", "fast", "--epochs", "1"]
    command += ["--eval-size", "32", "--fit-sampler", "none", "--no-progress", "--out", "run", "--auto-resume"]
    code, err = run_cli(command, cwd=tmp_path)
    assert code == 0, err
    stored = json.loads((tmp_path / "run" / "config.json").read_text())
    assert stored["data"]["path"] == str((tmp_path / "d.npz").resolve()) and stored["data"]["fingerprint"]
    assert stored["train"]["precision"] in ("bf16", "fp32")
    code, err = run_cli(command, cwd=tmp_path)
    assert code == 0 and "continuing it" in err and "nothing to train" in err, err
    # the data changed under the run: the resume's own check refuses it
    np.savez(tmp_path / "d.npz", **{k: (255 - v).astype(np.uint8) for k, v in images.items()})
    code, err = run_cli(command, cwd=tmp_path)
    assert code == 2 and "are not those the run was trained on" in err, err
    assert "): put back the files it was trained on, or train a new run on these" in err, err  # what to do
    assert err.count("\n") == 1 and "continuing" not in err, err  # refused before a word of continuing


def test_a_precision_given_is_compared_with_the_one_auto_chooses_here(finished):
    from wae.config import preset, resolve_precision

    here = resolve_precision(preset(), "cpu").train.precision
    before = _contents(finished)
    command = [a for a in _command(finished) if a not in ("--precision", "fp32")]  # precision auto
    code, err = run_cli(command)
    if here == "fp32":  # no native bf16 here: auto chooses what the run has
        assert code == 0 and "continuing it" in err, err
    else:
        assert code == 2 and f"--precision fp32 there, auto ({here} here) given" in err, err
        assert _contents(finished) == before


def test_a_budgeted_run_extended_by_a_later_resume_is_not_its_budgets_plan(tmp_path, monkeypatch):
    import wae.train as train

    monkeypatch.setattr(train, "epochs_within", lambda *args, **kwargs: 2)  # the budget keeps 2 of 4
    run = tmp_path / "run"
    command = ["train", *QUICK, "--epochs", "4", "--time-budget", "30", "--out", str(run), "--auto-resume"]
    assert run_cli(command)[0] == 0
    code, err = run_cli(["train", "--resume", str(run), "--epochs", "3", "--no-progress"])
    assert code == 0, err
    before = _contents(run)
    code, err = run_cli(command)  # the budget's plan was 2 epochs; the run is now of 3
    assert code == 2 and "--epochs 3 (schedule over 2) there, set by a later --resume" in err, err
    assert _contents(run) == before


def test_a_refused_extension_is_told_where_to_go(finished, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(finished, run)
    code, err = run_cli(_command(run))
    assert code == 0 and "nothing to train" in err and f"wae train --resume {run} --epochs N" in err, err
    code, err = run_cli([*_command(run), "--epochs", "3"])
    assert code == 2 and "--epochs 2 there, 3 given)" in err and "--schedule-epochs" not in err, err


def test_an_extended_runs_schedule_is_not_said_to_be_given_when_the_epochs_plan_it(finished, tmp_path):
    # "--schedule-epochs 2 there, 3 given" for a command that gave --epochs 3 and no schedule
    import shutil

    run = tmp_path / "run"
    shutil.copytree(finished, run)
    code, err = run_cli(["train", "--resume", str(run), "--epochs", "3", "--no-progress"])  # schedule kept over 2
    assert code == 0, err
    code, err = run_cli([*_command(run), "--epochs", "3"])
    assert code == 2 and "--schedule-epochs 2 there, 3 here (planned over the 3 epochs of this command)" in err, err
    code, err = run_cli([*_command(run), "--epochs", "3", "--schedule-epochs", "4"])
    assert code == 2 and "--schedule-epochs 2 there, 4 given" in err, err


def test_print_config_shows_the_settings_it_would_continue_with(finished, capsys):
    from wae.cli import main

    code = main([*_command(finished), "--keep-checkpoints", "5", "--print-config"])
    printed = capsys.readouterr().out
    assert code == 0 and "keep_checkpoints = 5" in printed and "schedule_epochs = 2" in printed, printed


def test_a_kill_between_a_revisions_two_writes_is_continued(tmp_path, monkeypatch):
    """A revision of the budget writes config.json, then its record: a kill between the two
    leaves a plan that no record names, which the same command again continues (it was refused
    as a plan set by a later --resume)."""
    import wae.train as train

    calls: list[tuple] = []

    def within(*args, **kwargs):  # the first decision keeps all 4 epochs, the revisions 3
        calls.append(args)
        return 4 if len(calls) == 1 else min(3, args[3])

    monkeypatch.setattr(train, "epochs_within", within)
    real = kill_at_a_revisions_record(monkeypatch)
    run = tmp_path / "run"
    command = ["train", *QUICK, "--epochs", "4", "--time-budget", "30", "--out", str(run), "--auto-resume"]
    assert run_cli(command)[0] != 0
    stored = json.loads((run / "config.json").read_text())["train"]
    assert (stored["epochs"], stored["schedule_epochs"], stored["time_budget"]) == (3, 3, None)
    records = [json.loads(line) for line in (run / ckpt.RECORDS).read_text().splitlines()]
    assert [(r["epochs_kept"], r["revised"]) for r in records if r["kind"] == "plan"] == [(4, False)]
    monkeypatch.setattr(train, "_append_jsonl", real)
    code, err = run_cli(command)
    assert code == 0 and "continuing" in err, err
    assert _steps(run)[-1] == "step-00000012.pt"  # the revised plan, 3 epochs of 4 steps


def test_a_later_session_with_its_own_budget_is_not_the_first_commands_plan(tmp_path):
    """A run extended by ``--resume --epochs 3 --time-budget 30`` holds a plan that a later
    session's own budget made (asked 3): the first command (asked 2) is refused, as it is
    for the same extension without a budget; the later session's asks are continued."""
    run = tmp_path / "run"
    command = ["train", *QUICK, "--epochs", "2", "--time-budget", "30", "--out", str(run), "--auto-resume"]
    assert run_cli(command)[0] == 0
    code, err = run_cli(["train", "--resume", str(run), "--epochs", "3", "--time-budget", "30", "--no-progress"])
    assert code == 0, err
    before = _contents(run)
    code, err = run_cli(command)
    assert code == 2 and "--epochs 3 there (its budget kept 3 epochs), 2 given" in err, err
    assert _contents(run) == before
    later = ["train", *QUICK, "--epochs", "3", "--schedule-epochs", "2", "--time-budget", "30", "--out", str(run)]
    code, err = run_cli([*later, "--auto-resume"])
    assert code == 0 and "nothing to train" in err, err


def test_a_damaged_records_line_leaves_a_refusal_one_line(tmp_path):
    """The plan records of a budgeted run are read past a line edited into a list, without the
    warning the resume gives (a refusal is one line)."""
    run = tmp_path / "run"
    command = ["train", *QUICK, "--epochs", "2", "--time-budget", "30", "--out", str(run), "--auto-resume"]
    assert run_cli(command)[0] == 0
    with open(run / ckpt.RECORDS, "a") as f:
        f.write("[1, 2]\n")
    before = _contents(run)
    code, err = run_cli([*command, "--lr", "0.001"])
    assert code == 2 and err.count("\n") == 1 and "error: --auto-resume" in err and "warning" not in err, err
    assert _contents(run) == before


def test_a_plan_edited_below_the_trained_epochs_is_refused_in_one_line(tmp_path):
    """config.json edited by hand to a plan of fewer epochs than the run has trained looks like a
    budget's revision, and the resume refuses it ("nothing to train"): one line, without the note
    that the run is continued (said with the session's first message, not before its checks)."""
    run = tmp_path / "run"
    command = ["train", *QUICK, "--epochs", "2", "--time-budget", "30", "--out", str(run), "--auto-resume"]
    assert run_cli(command)[0] == 0
    config = json.loads((run / "config.json").read_text())
    config["train"]["epochs"] = config["train"]["schedule_epochs"] = 1
    (run / "config.json").write_text(json.dumps(config))
    before = _contents(run)
    code, err = run_cli(command)
    assert code == 2 and err.count("\n") == 1 and "nothing to train" in err and "continuing" not in err, err
    assert _contents(run) == before


def test_a_refused_resume_says_nothing_of_continuing(finished, tmp_path):
    """A run whose only checkpoint is unreadable is refused in one line (the note that --auto-resume
    continues the run waits for the session's first message), and nothing changes."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(finished, run)
    for path in ckpt.run_checkpoints(run):
        path.write_bytes(b"not a checkpoint")
    before = _contents(run)
    code, err = run_cli(_command(run))
    assert code == 2 and err.count("\n") == 1 and "no readable checkpoint" in err and "continuing" not in err, err
    assert _contents(run) == before


def test_the_note_of_continuing_comes_once_before_the_sessions_first_message(finished, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(finished, run)
    code, err = run_cli(_command(run))  # finished: nothing to train, which the session says
    lines = err.splitlines()
    assert code == 0 and "holds this run: continuing it" in lines[0] and "nothing to train" in lines[1], err
    assert err.count("continuing it") == 1
