"""Settings described once: every field of config.py says what it does, the README's table is made
from the fields, and wae train reads them from a TOML file or a run's config.json (flags win)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wae import nets
from wae.cli import main
from wae.config import (
    ARCHS,
    PRESETS,
    Config,
    UserError,
    about,
    flag_of,
    from_settings,
    override,
    preset,
    read_settings,
    settings,
    settings_table,
    to_toml,
    tomllib,  # the standard library's (Python >= 3.11), else tomli
)

README = Path(__file__).parents[1] / "README.md"
# (the small synthetic set, the `fast` network and a small evaluation: these tests are of the settings)
TINY = ["--dataset", "synthetic", "--batch-size", "32", "--precision", "fp32", "--no-progress", "--max-steps", "1"]
TINY += ["--synthetic-count", "128", "--arch", "fast", "--eval-size", "32"]


def _printed(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    capsys.readouterr()
    assert main(["train", *argv, "--print-config"]) == 0
    return tomllib.loads(capsys.readouterr().out)


def test_every_setting_says_what_it_does():
    missing = [f"{section}.{f.name}" for section, f, _, _ in settings() if not about(f)["help"]]
    assert not missing, f"declare these fields with config.setting(default, help, ...): {missing}"


def test_the_readme_table_of_settings_is_made_from_the_fields():
    text = README.read_text()
    table = text.split("<!-- settings:start")[1].split("-->", 1)[1].split("<!-- settings:end -->")[0]
    assert table.strip() == settings_table(), "the README's table of settings is stale: run make settings-table"


def test_the_architectures_named_in_the_config_are_the_networks():
    assert set(ARCHS) == set(nets.ARCHITECTURES) | {"mlp"}  # mlp: the fully connected nets of tables


def test_every_setting_but_the_hand_written_ones_has_a_flag(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    for _, f, kind, _ in settings():
        if about(f)["recorded"]:
            assert flag_of(f) not in text  # set by the program, not by the user
            continue
        flag = about(f)["flag"] or "--" + f.name.replace("_", "-")
        assert flag in text, flag
        if kind is bool:
            assert f"--no-{flag[2:]}" in text


def test_preset_file_and_flags_override_each_other_in_that_order(tmp_path, capsys):
    path = tmp_path / "run.toml"
    path.write_text('preset = "mnist-paper"\n\n[loss]\nlam = 5.0\nobjective = "gan"\n\n[train]\nepochs = 3\n')
    from_file = _printed(capsys, "--config", str(path))
    assert from_file["preset"] == "mnist-paper" and from_file["model"]["arch"] == "mnist-paper"
    assert (from_file["loss"]["lam"], from_file["loss"]["objective"], from_file["train"]["epochs"]) == (5.0, "gan", 3)
    assert from_file["train"]["lr_milestones"] == [0.3, 0.5]  # the preset's, the file being silent
    flags = _printed(capsys, "--config", str(path), "--epochs", "4", "--lam", "2", "--objective", "mmd")
    assert (flags["train"]["epochs"], flags["loss"]["lam"], flags["loss"]["objective"]) == (4, 2.0, "mmd")
    assert flags["model"]["arch"] == "mnist-paper"


def test_print_config_then_config_gives_the_same_run_config(tmp_path, capsys):
    argv = [*TINY, "--objective", "mmd", "--latent-dim", "4", "--no-batch-norm", "--kernel-scales", "0.5", "1"]
    capsys.readouterr()
    assert main(["train", *argv, "--print-config"]) == 0
    (tmp_path / "run.toml").write_text(capsys.readouterr().out)
    assert main(["train", *argv, "--out", str(tmp_path / "by-flags")]) == 0
    assert main(["train", "--config", str(tmp_path / "run.toml"), "--out", str(tmp_path / "by-file")]) == 0
    by_flags = json.loads((tmp_path / "by-flags" / "config.json").read_text())
    assert json.loads((tmp_path / "by-file" / "config.json").read_text()) == by_flags
    assert by_flags["model"]["latent_dim"] == 4 and by_flags["loss"]["kernel_scales"] == [0.5, 1.0]
    # a run's config.json is a settings file too
    again = _printed(capsys, "--config", str(tmp_path / "by-flags" / "config.json"))
    expected = Config.from_dict(by_flags)
    expected.train.schedule_epochs = None  # what the run recorded about itself is not carried over
    assert again == tomllib.loads(to_toml(expected))


@pytest.mark.parametrize("name", ["mnist-fast", "mnist-paper", "celeba-paper"])
@pytest.mark.parametrize("objective", ["mmd", "gan", "vae", "swd"])
def test_every_preset_reads_back_from_its_toml(tmp_path, name, objective):
    cfg = preset(name, objective)
    (tmp_path / "run.toml").write_text(to_toml(cfg))
    assert from_settings(read_settings(tmp_path / "run.toml")) == cfg


@pytest.mark.parametrize(
    "content,words",
    [
        ("[loss]\nlambda = 1.0\n", ["loss.lambda", "unknown key"]),
        ("[optimiser]\nlr = 1.0\n", ["optimiser", "unknown key"]),
        ('[model]\nlatent_dim = "eight"\n', ["model.latent_dim", "whole number"]),
        ("[train]\nlr = -1.0\n", ["train.lr", "> 0"]),
        ('[loss]\nkernel = "laplace"\n', ["loss.kernel", "one of"]),
        ("[train]\nskip_nonfinite = 1\n", ["train.skip_nonfinite", "true or false"]),
        ('preset = "mnist-huge"\n', ["preset", "one of"]),
        ("[train\n", ["not valid TOML"]),
    ],
)
def test_a_bad_settings_file_is_one_line_naming_the_key_and_the_file(tmp_path, capsys, content, words):
    path = tmp_path / "bad.toml"
    path.write_text(content)
    before = sorted(tmp_path.iterdir())
    capsys.readouterr()
    assert main(["train", "--config", str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err, err
    assert all(word in err for word in words), err
    assert sorted(tmp_path.iterdir()) == before


def test_a_missing_settings_file_and_config_with_resume_are_refused(tmp_path, capsys):
    assert main(["train", "--config", str(tmp_path / "none.toml")]) == 2
    assert "none.toml" in capsys.readouterr().err
    (tmp_path / "run.toml").write_text("")
    assert main(["train", "--resume", str(tmp_path), "--config", str(tmp_path / "run.toml")]) == 2
    assert "with --resume only" in capsys.readouterr().err


def test_defaults_that_differ_by_objective_are_shown_by_objective(capsys):
    # the help and the README's table give each objective's default, not mmd's for all (session 11:
    # --help said "default: 3.0" for --lam whatever the objective; the vae's encoder and cost too;
    # since session 23 mnist-fast's mmd trains at lambda 1, as the vae, and at lr 2e-3)
    from wae.config import defaults_by_objective, settings_table

    assert defaults_by_objective("loss", "lam") == [
        (1.0, ["mmd", "gan", "vae"]),
        (10.0, ["swd", "sinkhorn", "cw"]),
    ]
    assert defaults_by_objective("train", "lr") == [(2e-3, ["mmd", "gan"]), (1e-3, ["vae", "swd", "sinkhorn", "cw"])]
    assert defaults_by_objective("train", "lr", "mnist-quality") == [
        (2e-3, ["mmd", "gan"]),
        (1e-3, ["vae", "swd", "sinkhorn", "cw"]),
    ]
    assert defaults_by_objective("model", "encoder") == [
        ("deterministic", ["mmd", "gan", "swd", "sinkhorn", "cw"]),
        ("gaussian", ["vae"]),
    ]
    assert defaults_by_objective("train", "epochs") == [(25, ["mmd", "gan", "vae", "swd", "sinkhorn", "cw"])]
    # session 40: the demo's WAE-MMD draws from the mixture prior, WAE-GAN too since session 42;
    # the other objectives keep N(0, I)
    assert defaults_by_objective("loss", "prior") == [
        ("mixture", ["mmd", "gan"]),
        ("gaussian", ["vae", "swd", "sinkhorn", "cw"]),
    ]
    assert defaults_by_objective("loss", "objective", "mnist-quality") == [
        ("mmd", ["mmd", "gan", "vae", "swd", "sinkhorn", "cw"])
    ]
    table = settings_table()
    assert "| `loss.lam` | `--lam` | 1.0 (mmd, gan, vae); 10.0 (swd, sinkhorn, cw) |" in table
    assert "| `train.lr` | `--lr` | 0.002 (mmd, gan); 0.001 (vae, swd, sinkhorn, cw) |" in table
    assert "| `loss.objective` | `--objective` | mmd |" in table
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: 1.0 (mmd, gan, vae); 10.0 (swd, sinkhorn, cw))" in text
    assert "(default: 25)" in text


DOCUMENTED_MMD = {
    "arch": "fast",
    "latent_dim": 8,
    "lam": 10.0,
    "cost": "l2sq",
    "cost_scale": 0.05,
    "lr": 1e-3,
    "fit_sampler": "none",
}


@pytest.mark.parametrize("script", ["compare_mnist.sh", "reproduce_mnist.sh"])
def test_reproduction_scripts_train_the_settings_of_their_tables(tmp_path, script):
    # the kind: a script that reproduces a documented table with the preset's defaults measures
    # something else once a default changes (mnist-fast's lambda 3, then its L1 cost): each run
    # the script trains must resolve to the documented settings (read with --print-config)
    import contextlib
    import io
    import os
    import shlex
    import subprocess

    import tomllib

    root = Path(__file__).resolve().parents[1]
    log = tmp_path / "calls"
    fake = tmp_path / "wae"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {shlex.quote(str(log))}\n')
    fake.chmod(0o755)
    env = {**os.environ, "WAE": str(fake)}
    (tmp_path / "out").mkdir()
    subprocess.run(
        ["bash", str(root / "scripts" / script), "1", str(tmp_path / "out")], check=True, env=env, cwd=tmp_path
    )
    trains = [shlex.split(line)[1:] for line in log.read_text().splitlines() if line.startswith("train ")]
    assert {a[a.index("--objective") + 1] for a in trains} >= {"vae", "mmd", "gan"}
    for argv in trains:
        objective = argv[argv.index("--objective") + 1]
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            assert main(["train", *argv, "--print-config"]) == 0
        cfg = tomllib.loads(printed.getvalue())
        flat = {k: v for section in ("model", "loss", "train") for k, v in cfg[section].items()}
        assert (flat["arch"], flat["latent_dim"], flat["fit_sampler"]) == ("fast", 8, "none"), argv
        if objective == "mmd":
            assert {k: flat[k] for k in DOCUMENTED_MMD} == DOCUMENTED_MMD, argv
        if objective == "vae":
            assert (flat["cost"], flat["lam"]) == ("bce", 1.0), argv


@pytest.mark.parametrize(
    "argv,expected",
    [
        (["--cost", "l2sq"], ("l2sq", 0.05)),  # mnist-fast's mmd: L1 x 0.01 -> squared L2 at its usual 0.05
        (["--objective", "gan", "--cost", "l1"], ("l1", 0.01)),  # gan: squared L2 x 0.05 -> L1 x 0.01
        (["--preset", "mnist-paper", "--cost", "bce"], ("bce", 0.02)),
        (["--cost", "l2sq", "--cost-scale", "0.2"], ("l2sq", 0.2)),  # a scale given wins
        (["--cost-scale", "0.3", "--cost", "l2sq"], ("l2sq", 0.3)),  # in either order
        (["--preset", "table", "--cost", "l1"], ("l1", 1.0)),  # the table preset's own scale is kept
        (["--cost", "l1"], ("l1", 0.01)),  # the same cost: nothing changes
    ],
)
def test_a_new_cost_brings_its_usual_scale(capsys, argv, expected):
    # a kind of silently wrong setting: a flag whose meaning hangs on another's default (L1 at
    # squared L2's 0.05 weighs the reconstruction five times more than either was measured with)
    loss = _printed(capsys, *argv)["loss"]
    assert (loss["cost"], loss["cost_scale"]) == expected


def test_a_new_cost_in_a_file_or_the_api_brings_its_usual_scale(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('[loss]\ncost = "l2sq"\n')
    assert from_settings(read_settings(path)).loss.cost_scale == 0.05
    path.write_text('[loss]\ncost = "l2sq"\ncost_scale = 0.01\n')
    assert from_settings(read_settings(path)).loss.cost_scale == 0.01
    by_hand = override(preset(), cost_scale=0.5)
    assert override(by_hand, cost="l2sq").loss.cost_scale == 0.5  # a hand-set scale is kept
    assert override(preset(), loss__cost="l2sq").loss.cost_scale == 0.05


@pytest.mark.parametrize(
    "file, flags, expected",
    [
        ('[loss]\ncost = "l2sq"\ncost_scale = 0.05\n', ["--cost", "l1"], ("l1", 0.05)),
        ('[loss]\ncost_scale = 0.01\ncost = "l1"\n', ["--cost", "l2sq"], ("l2sq", 0.01)),
        ("[loss]\ncost_scale = 0.01\n", ["--cost", "bce"], ("bce", 0.01)),
        ('[loss]\ncost = "l2sq"\n', ["--cost", "l1"], ("l1", 0.01)),  # no scale in the file: the usual one
        ("[loss]\ncost_scale = 0.05\n", ["--cost", "l1", "--cost-scale", "0.2"], ("l1", 0.2)),  # the flag wins
    ],
)
def test_a_scale_written_in_the_config_file_is_kept_with_a_new_cost_flag(tmp_path, capsys, file, flags, expected):
    # a hostile user's case of the same kind: the file's scale is as much set by hand as a flag's
    path = tmp_path / "s.toml"
    path.write_text(file)
    loss = _printed(capsys, "--config", str(path), *flags)["loss"]
    assert (loss["cost"], loss["cost_scale"]) == expected


@pytest.mark.parametrize("objective", ["gan", "vae", "swd"])
def test_an_objective_set_through_the_api_switches_its_defaults_as_the_flag_does(capsys, objective):
    # before: override(cfg, objective="gan") trained WAE-GAN with mmd's lambda and L1 cost
    by_flag = Config.from_dict(_printed(capsys, "--objective", objective)).to_dict()
    by_api = override(preset(), objective=objective).to_dict()
    by_section = override(preset(), loss__objective=objective).to_dict()
    for section in ("loss", "model", "train"):
        assert by_api[section] == by_flag[section] == by_section[section], section
    # values given beside the objective are set after the switch, so they win
    assert override(preset(), objective=objective, lam=0.5).loss.lam == 0.5


def test_a_setting_given_twice_under_two_names_is_refused():
    for twice in ({"cost": "bce", "loss__cost": "l2sq"}, {"lam": 1.0, "loss__lam": 2.0}):
        with pytest.raises(UserError, match="given twice"):
            override(preset(), **twice)
    with pytest.raises(UserError, match="unknown objective"):
        override(preset(), objective="wgan")


@pytest.mark.parametrize("value", [{"l1": 1}, ["l1"], {"l1"}, None, 3, b"l1"])
def test_a_cost_of_another_type_is_refused_in_words(value):
    # a dict or set once raised TypeError (unhashable) before the type was checked
    with pytest.raises(UserError, match="loss.cost must be str"):
        override(preset(), cost=value)
    with pytest.raises(UserError, match="loss.cost must be str"):
        override(preset(), loss__cost=value, cost_scale=0.5)


def test_objective_over_a_file_of_another_names_the_settings_it_replaced(tmp_path, capsys):
    # a hostile pass: a file's lam and cost at gan's defaults took mmd's without a word (swd's
    # since session 42, when WAE-GAN took WAE-MMD's)
    path = tmp_path / "swd.toml"
    path.write_text('[loss]\nobjective = "swd"\ncost = "l2sq"\nlam = 10.0\n')
    loss = _printed(capsys, "--config", str(path), "--objective", "mmd")["loss"]
    assert (loss["lam"], loss["cost"]) == (1.0, "l1")  # the documented switch of a whole config
    capsys.readouterr()
    assert main(["train", "--config", str(path), "--objective", "mmd", "--print-config"]) == 0
    err = capsys.readouterr().err
    assert "loss.cost l2sq -> l1" in err and "loss.lam 10.0 -> 1.0" in err and "as flags to keep them" in err
    # flags keep them; the same objective, or none, says nothing
    assert (
        _printed(capsys, "--config", str(path), "--objective", "mmd", "--lam", "10", "--cost", "l2sq")["loss"]["lam"]
        == 10
    )
    for argv in (["--objective", "swd"], []):
        capsys.readouterr()
        assert main(["train", "--config", str(path), *argv, "--print-config"]) == 0
        assert "note" not in capsys.readouterr().err
    assert "own values are kept" not in err  # all were swd's defaults: replaced, none kept
    # an old WAE-GAN run's file (lam 10, squared L2, N(0, I): not gan's defaults since session
    # 42) switched to mmd keeps them, and says so (it said nothing)
    old = tmp_path / "old-gan.toml"
    old.write_text('[loss]\nobjective = "gan"\ncost = "l2sq"\ncost_scale = 0.05\nlam = 10.0\nprior = "gaussian"\n')
    assert _printed(capsys, "--config", str(old), "--objective", "mmd")["loss"]["lam"] == 10.0
    assert main(["train", "--config", str(old), "--objective", "mmd", "--print-config"]) == 0
    err = capsys.readouterr().err
    assert "own values are kept (loss.cost l2sq (mmd's default l1)" in err
    assert "loss.lam 10.0 (mmd's default 1.0)" in err and "give flags for mmd's" in err
    assert "take mmd's" not in err  # nothing of the file was at gan's defaults
    assert main(["train", "--config", str(old), "--objective", "mmd", "--lam", "1", "--print-config"]) == 0
    assert "loss.lam" not in capsys.readouterr().err  # a flag's value is the flag's
    # hostile pass, session 44: settings mmd does not use are not named (their flags are refused);
    # a long value is cut; a scale kept beside --cost is named (only flags are the user's); the VAE
    # sets its own cost, scale and lambda, not "the file's values at gan's defaults"
    odd = tmp_path / "odd-gan.toml"
    scales = ", ".join(str(0.1 + i / 1000) for i in range(300))
    odd.write_text(f'[loss]\nobjective = "gan"\nprojections = 100\nkernel = "rbf"\nkernel_scales = [{scales}]\n')
    capsys.readouterr()
    assert main(["train", "--config", str(odd), "--objective", "mmd", "--print-config"]) == 0
    err = capsys.readouterr().err
    kept = next(line for line in err.splitlines() if "own values are kept" in line)
    assert "loss.kernel rbf" in kept and "projections" not in kept and "kernel_scales" not in kept  # rbf has no scales
    # what the run does not use is named apart (session 45), by name, not value
    assert "loss.kernel_scales is the imq kernel's setting" in err and "loss.projections is SWAE's setting" in err
    assert main(["train", "--config", str(odd), "--objective", "mmd", "--kernel", "imq", "--print-config"]) == 0
    err = capsys.readouterr().err
    assert "loss.kernel_scales [0.1, 0.101, 0.10200000000000001 ...]" in err and len(err) < 800
    assert main(["train", "--config", str(old), "--objective", "mmd", "--cost", "l1", "--print-config"]) == 0
    err = capsys.readouterr().err
    assert "loss.cost_scale 0.05 (mmd's default 0.01)" in err and "loss.cost " not in err
    assert main(["train", "--config", str(old), "--objective", "vae", "--print-config"]) == 0
    err = capsys.readouterr().err
    assert "the VAE sets its own (loss.cost l2sq -> bce" in err and "at gan's defaults" not in err
    # and no note before a refusal found after the settings (fp16 on a CPU, an existing folder)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("x")
    for extra in (["--precision", "fp16", "--device", "cpu"], ["--out", str(tmp_path / "taken")]):
        argv = ["train", "--config", str(old), "--objective", "mmd", *TINY[:2], "--max-steps", "1", *extra]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "note" not in err, err
    # a refused command prints its error alone, not the note before it
    capsys.readouterr()
    bad = ["--objective", "mmd", "--lr-schedule", "cosine", "--lr-milestones", "0.5", "0.7", "--print-config"]
    assert main(["train", "--config", str(path), *bad]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "this run has lr schedule cosine" in err


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--prior", "gaussian", "--prior-components", "4"], "--prior-components is the mixture prior's setting"),
        (["--prior", "sphere", "--prior-separation", "3"], "this run has prior sphere: leave it out"),
        (
            ["--adversary-lr", "1e-4", "--adversary-width", "64"],
            "are WAE-GAN's adversary's settings (used with objective gan)",
        ),
        (["--objective", "gan", "--kernel", "rbf"], "--kernel is WAE-MMD's setting"),
        (
            ["--kernel", "rbf", "--kernel-scales", "1", "2"],
            "(used with objective mmd and kernel imq); this run has kernel rbf:",
        ),
        (["--objective", "gan", "--kernel-scales", "1"], "this run has objective gan: leave it out"),
        (["--no-class-penalty", "--synthetic-size", "9"], "--synthetic-size is the synthetic data's setting"),
        (
            ["--held-out", "0.5"],
            "--held-out is a table's setting (used with dataset table); this run has dataset mnist",
        ),
        (["--objective", "sinkhorn", "--projections", "10"], "--projections is SWAE's setting"),
        (["--sinkhorn-epsilon", "0.5"], "the Sinkhorn penalty's setting"),
        (["--logvar-clip", "5"], "this run has encoder deterministic"),
        (["--label-dim", "8"], "this run has condition none"),
        (["--mlp-depth", "3"], "this run has arch small"),
        # session 43: image folders' settings with other data, batch norm with the mlp network,
        # and the step schedule's settings given empty with the cosine one
        (["--image-size", "32"], "--image-size is an image folder's setting (used with dataset folder or celeba)"),
        (["--dataset", "synthetic", "--grey", "--crop", "20"], "--grey and --crop are an image folder's settings"),
        (["--no-cache"], "--no-cache is an image folder's setting"),
        (
            ["--workers", "4"],
            "(used with dataset folder or celeba and --no-cache); this run has dataset mnist:",
        ),
        (["--arch", "mlp", "--no-batch-norm"], "--no-batch-norm is the convolutional networks' setting"),
        # hostile pass, session 46: an MLP has no 4-D activations to lay out
        (["--arch", "mlp", "--no-channels-last"], "--no-channels-last is the convolutional networks' setting"),
        (["--lr-schedule", "cosine", "--lr-milestones"], "--lr-milestones is the step schedule's setting"),
    ],
)
def test_a_flag_the_run_does_not_use_is_refused(capsys, flags, message):
    # each trained as if it were not given, with no word said (a mixture's K beside the Gaussian
    # prior, an adversary's learning rate in WAE-MMD); one line, nothing written
    capsys.readouterr()
    assert main(["train", "--preset", "mnist-fast", *flags, "--print-config"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_flags_a_run_uses_and_config_files_with_every_setting_stay_allowed(capsys, tmp_path):
    # the same flags where their run uses them, and a config file (as --print-config writes every
    # setting, used or not) read back with an objective that leaves some unused
    assert _printed(capsys, "--prior", "mixture", "--prior-components", "4")["loss"]["prior_components"] == 4
    assert _printed(capsys, "--objective", "gan", "--adversary-lr", "1e-4")["train"]["adversary_lr"] == 1e-4
    assert _printed(capsys, "--objective", "swd", "--projections", "10")["loss"]["projections"] == 10
    assert _printed(capsys, "--encoder", "gaussian", "--logvar-clip", "5")["loss"]["logvar_clip"] == 5
    assert _printed(capsys, "--kernel", "rbf")["loss"]["kernel"] == "rbf"
    capsys.readouterr()
    assert main(["train", "--preset", "mnist-fast", "--objective", "gan", "--print-config"]) == 0
    path = tmp_path / "gan.toml"
    path.write_text(capsys.readouterr().out)
    assert _printed(capsys, "--config", str(path), "--objective", "mmd")["loss"]["objective"] == "mmd"


def test_the_python_api_refuses_a_setting_the_run_does_not_use(tmp_path):
    import numpy as np
    import torch

    import wae

    with pytest.raises(UserError, match="prior_components= is the mixture prior's setting"):
        wae.fit_tensor(torch.rand(64, 28, 28), prior="gaussian", loss__prior_components=3, out=tmp_path / "r")
    with pytest.raises(UserError, match="adversary_lr= is WAE-GAN's adversary's setting"):
        wae.fit_table(np.random.default_rng(0).random((50, 3)), adversary_lr=1e-4, out=tmp_path / "t")
    # named as the caller wrote it; None (not set) is no setting given
    with pytest.raises(UserError, match=r"^model__adversary_width= is WAE-GAN's"):
        wae.fit_tensor(torch.rand(64, 28, 28), model__adversary_width=8, out=tmp_path / "r")
    with pytest.raises(UserError, match="fewer than one batch"):  # past the check, to the data's
        wae.fit_tensor(torch.rand(64, 28, 28), prior="gaussian", prior_components=None, out=tmp_path / "r")
    assert not any(tmp_path.iterdir())


def test_override_refuses_a_setting_the_copy_does_not_use():
    # session 42 left a Config built with wae.override and given to wae.fit unchecked: the check
    # is override's own now, on the copy it returns, so the order of the names does not matter
    import wae

    base = wae.preset("mnist-fast")  # WAE-MMD, mixture prior
    with pytest.raises(UserError, match=r"^prior_components= is the mixture prior's setting .* prior gaussian"):
        wae.override(base, prior_components=4, prior="gaussian")
    with pytest.raises(UserError, match=r"^train__adversary_lr= is WAE-GAN's adversary's setting"):
        wae.override(base, train__adversary_lr=1e-4)
    with pytest.raises(UserError, match=r"^image_size= is an image folder's setting"):
        wae.override(base, dataset="synthetic", image_size=16)
    # used where the copy uses them, given in one call or after the switch
    assert wae.override(base, prior="gaussian").loss.prior == "gaussian"  # the preset's K is not given
    assert wae.override(base, objective="gan", adversary_lr=1e-4).train.adversary_lr == 1e-4
    gaussian = wae.override(base, prior="gaussian")
    assert wae.override(gaussian, prior="mixture", prior_components=4).loss.prior_components == 4
    assert wae.override(base, dataset="folder", path="/x", image_size=32).data.image_size == 32


def test_a_typo_in_the_setting_that_decides_is_named_not_the_settings_it_decides(capsys):
    # hostile pass, session 43: override(prior="Mixture", prior_components=3) said "this run has
    # prior Mixture: leave it out" where the error is the typo (named when the config is checked)
    import wae
    from wae.config import validate

    base = wae.preset("mnist-fast")
    for values, error in (
        ({"prior": "Mixture", "prior_components": 3}, "loss.prior must be one of"),
        ({"lr_schedule": "stepp", "lr_milestones": (0.5,), "lr_factors": (0.5,)}, "train.lr_schedule must be one of"),
        ({"dataset": "Folder", "path": "/x", "image_size": 16}, "data.dataset must be one of"),
    ):
        with pytest.raises(UserError, match=error):
            validate(wae.override(base, **values))
    # the hint of override names it or them; --workers without a folder names the dataset alone
    with pytest.raises(UserError, match=r"leave them out \(or set what uses them in the same call\)$"):
        wae.override(base, adversary_lr=1e-4, adversary_width=8)
    assert main(["train", "--preset", "mnist-fast", "--workers", "3", "--print-config"]) == 2
    assert capsys.readouterr().err.strip().endswith("this run has dataset mnist: leave it out")


def test_one_check_of_use_names_flags_or_keywords_as_the_caller_wrote_them():
    # the four call sites (train's flags, --resume, override, fit_tensor/fit_table) share it
    from wae.config import check_used

    gaussian = override(preset("mnist-fast"), prior="gaussian")
    check_used(gaussian, {"prior": "gaussian", "lam": 2.0})  # all used: nothing raised
    with pytest.raises(UserError, match=r"^--prior-components is the mixture prior's .*: leave it out$"):
        check_used(gaussian, {"prior_components": 4})
    with pytest.raises(UserError, match=r"^loss__prior_components= is .*: leave it out \(or set what uses it in"):
        check_used(gaussian, {"loss__prior_components": 4}, arguments=True, same_call=True)
    with pytest.raises(UserError, match=r"^--no-cache is an image folder's setting"):
        check_used(gaussian, {"cache": False})


def test_fit_tensor_names_no_hint_it_cannot_follow(tmp_path):
    import torch

    import wae

    with pytest.raises(UserError, match=r"^image_size= is an image folder's setting .*: leave it out$"):
        wae.fit_tensor(torch.rand(64, 1, 16, 16), image_size=16, out=tmp_path / "r")
    assert not any(tmp_path.iterdir())


def test_resume_refuses_workers_of_a_run_that_reads_no_image_files(tmp_path, capsys):
    from .conftest import SMALL_RUN

    run = tmp_path / "run"
    assert main(["train", *SMALL_RUN, "--max-steps", "1", "--epochs", "1", "--out", str(run)]) == 0
    before = (run / "config.json").read_text()
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--max-steps", "2", "--workers", "3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--workers is uncached image folders' setting" in err, err
    assert (run / "config.json").read_text() == before


def test_a_config_changed_by_hand_names_what_the_run_does_not_use(tmp_path, tiny_data, capsys):
    # session 44 left open: a Config changed with dataclasses.replace (or read from a file) and
    # given to wae.fit trained its unused settings silently; override and the flags refuse them
    # as given, a Config built by hand is trained as it is with a note naming them
    import dataclasses
    import re

    from tests.conftest import tiny_config
    from wae import train as train_module
    from wae.config import unused_changes

    cfg = tiny_config("mmd", epochs=1, prior="gaussian")
    assert unused_changes(cfg) == ""  # the preset's own unused values (K, separation) are not named
    listed = dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, kernel_scales=list(cfg.loss.kernel_scales)))
    assert unused_changes(listed) == ""  # a list of the same values is not a change
    cases = [
        (
            dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, prior_components=4)),
            r"loss\.prior_components is the mixture prior's setting .*this run has prior gaussian: leave it out "
            r"\(the run trains without it\)$",
        ),
        (
            dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, adversary_lr=1e-4)),
            r"train\.adversary_lr is WAE-GAN's adversary's setting",
        ),
        (
            dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, image_size=32, crop=4)),
            r"data\.image_size and data\.crop are an image folder's settings .*leave them out "
            r"\(the run trains without them\)$",
        ),
        (
            dataclasses.replace(
                cfg, train=dataclasses.replace(cfg.train, lr_schedule="cosine", lr_milestones=(0.5,), lr_factors=(0.1,))
            ),
            r"train\.lr_milestones and train\.lr_factors are the step schedule's",
        ),
        (  # a switch in the words of a file, not Python's (was "cache False" / "cache True")
            dataclasses.replace(
                cfg, data=dataclasses.replace(cfg.data, dataset="folder", path="x", cache=True, workers=4)
            ),
            r"data\.workers is uncached image folders' setting \(used with dataset folder or celeba and "
            r"cache false\); this run has cache true: leave",
        ),
    ]
    for changed, words in cases:
        note = unused_changes(changed)
        assert note.startswith("note: ") and re.search(words, note), note
    said: list[str] = []
    train_module.fit(cases[0][0], tmp_path / "run", data=tiny_data, progress=False, log=said.append)
    assert [m for m in said if m.startswith("note:")] == [unused_changes(cases[0][0])]
    said.clear()
    train_module.fit(cfg, tmp_path / "plain", data=tiny_data, progress=False, log=said.append)
    assert not [m for m in said if m.startswith("note:")]
    # the command line says it for a file's values with --print-config, and as the training starts
    (tmp_path / "c.json").write_text(json.dumps({"loss": {"prior": "gaussian", "prior_components": 3}}))
    assert main(["train", "--config", str(tmp_path / "c.json"), "--print-config"]) == 0
    assert "loss.prior_components is the mixture prior's setting" in capsys.readouterr().err
    # hostile pass, session 45: --resume --print-config said the note that the resume itself does
    # not (a saved run goes on with what it has); a cosine schedule's emptied milestones are "none"
    capsys.readouterr()
    assert main(["train", "--resume", str(tmp_path / "run"), "--print-config"]) == 0
    assert "note:" not in capsys.readouterr().err
    cosine = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, lr_schedule="cosine"))
    assert (
        unused_changes(
            dataclasses.replace(cosine, train=dataclasses.replace(cosine.train, lr_milestones=[], lr_factors=()))
        )
        == ""
    )


def test_a_preset_named_by_a_list_or_a_table_is_a_user_error(tmp_path, capsys):
    # hostile pass, session 45: `preset = ["mnist-fast"]` in a file was hashed where it was
    # looked up among the presets: a TypeError traceback from `wae train --config`, and from
    # wae.override / fit_tensor of a Config given such a preset by dataclasses.replace
    import dataclasses

    import wae
    from wae.config import for_objective, unused_changes

    for value in (["mnist-fast"], {"a": 1}):
        (tmp_path / "c.json").write_text(json.dumps({"preset": value}))
        assert main(["train", "--config", str(tmp_path / "c.json"), "--print-config"]) == 2
        assert "preset must be one of mnist-fast" in capsys.readouterr().err
        odd = dataclasses.replace(wae.preset(), preset=value)
        with pytest.raises(UserError, match="preset"):
            wae.override(odd, objective="gan")
        assert for_objective(odd, "gan").loss.objective == "gan" and unused_changes(odd) == ""
        with pytest.raises(UserError, match="preset"):
            wae.preset(value)


def test_the_class_penalty_of_a_conditional_vae_is_refused_as_unused(tmp_path, capsys):
    # hostile pass, session 45: the VAE's KL is per image, so --no-class-penalty changed nothing
    # for it, silently; it is the conditional WAE's setting now
    import numpy as np

    np.savez(tmp_path / "lab.npz", x_train=np.zeros((64, 28, 28), np.uint8), y_train=np.arange(64) % 4)
    base = [
        "train",
        "--data",
        str(tmp_path / "lab.npz"),
        "--condition",
        "labels",
        "--no-class-penalty",
        "--print-config",
    ]
    assert main([*base, "--objective", "vae"]) == 2
    assert "--no-class-penalty is a conditional WAE's setting" in capsys.readouterr().err
    for objective in ("mmd", "gan"):
        assert main([*base, "--objective", objective]) == 0


def test_a_preset_name_that_is_no_preset_is_refused_everywhere_a_config_is_checked(tmp_path, capsys):
    # hostile pass, session 46: validate took any string, so wae.fit trained a Config whose
    # preset was "nope" (or ""), wrote it into config.json, and said no note of unused settings
    # (they are weighed against the preset's values); `--config` of that config.json was refused
    import dataclasses

    import wae
    from wae.config import to_toml, validate

    for name in ("nope", "", "MNIST-FAST"):
        odd = dataclasses.replace(wae.preset(), preset=name)
        with pytest.raises(UserError, match="preset must be one of mnist-fast"):
            validate(odd)
        with pytest.raises(UserError, match="preset must be one of"):
            wae.fit(odd, tmp_path / "run", progress=False, log=lambda _: None)
        assert not (tmp_path / "run").exists()
    with pytest.raises(UserError, match="preset must be str"):  # not a TypeError of json.dumps
        to_toml(dataclasses.replace(wae.preset(), preset=b"x"))


def test_a_preset_flag_over_a_config_file_of_another_preset_is_refused(tmp_path, capsys):
    # hostile pass, session 46: --preset mnist-fast over mnist-quality's --print-config file
    # labelled the run mnist-fast and kept every value of the file (the wide network, 30
    # epochs, 8 prior draws), which then refused --objective gan for mnist-quality's prior draws
    capsys.readouterr()
    assert main(["train", "--preset", "mnist-quality", "--print-config"]) == 0
    (tmp_path / "q.toml").write_text(capsys.readouterr().out)
    base = ["train", "--config", str(tmp_path / "q.toml"), "--print-config"]
    assert main([*base, "--preset", "mnist-fast"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--preset mnist-fast and " in err and "preset mnist-quality:" in err, err
    assert main([*base, "--preset", "mnist-quality"]) == 0  # the file's own: allowed
    (tmp_path / "p.toml").write_text("[loss]\nlam = 2.0\n")  # no preset named: --preset starts it
    capsys.readouterr()
    assert main(["train", "--config", str(tmp_path / "p.toml"), "--preset", "mnist-quality", "--print-config"]) == 0
    assert 'preset = "mnist-quality"' in capsys.readouterr().out


def test_a_config_without_a_preset_stays_custom_and_a_setting_neither_run_uses_is_no_difference(tmp_path, capsys):
    # hostile pass, session 46: Config.from_dict labels a dict without a preset "custom", which
    # the check of preset names refused, so such a run could no longer be read or resumed; and
    # an older table run given --no-channels-last (taken before it was refused as unused) was
    # told by --auto-resume to give --no-channels-last, which is refused
    import dataclasses

    import numpy as np

    import wae
    from wae.config import Config, differing_settings, validate

    custom = Config.from_dict({"data": {"dataset": "synthetic"}})
    assert custom.preset == "custom"
    validate(custom)
    table = wae.preset("table")
    older = dataclasses.replace(table, train=dataclasses.replace(table.train, channels_last=False))
    assert list(differing_settings(older, table)) == []  # unused by both: not a difference
    small = wae.preset()
    flipped = dataclasses.replace(small, train=dataclasses.replace(small.train, channels_last=False))
    assert [f.name for _, f, _, _ in differing_settings(small, flipped)] == [
        "channels_last"
    ]  # used by the convolutional network: named
    np.savetxt(
        tmp_path / "t.csv", np.random.default_rng(0).normal(size=(200, 3)), delimiter=",", header="a,b,c", comments=""
    )
    run = tmp_path / "run"
    argv = ["train", "--data", str(tmp_path / "t.csv"), "--max-steps", "1", "--no-progress", "--out", str(run)]
    assert main([*argv, "--eval-every", "0"]) == 0
    recorded = json.loads((run / "config.json").read_text())
    recorded["train"]["channels_last"] = False  # as an older wae recorded --no-channels-last
    (run / "config.json").write_text(json.dumps(recorded))
    capsys.readouterr()
    assert main([*argv, "--eval-every", "0", "--auto-resume", "--print-config"]) == 0, capsys.readouterr().err


@pytest.mark.parametrize(
    "name,text,said",
    [
        ("a.toml", "[train]\nepochs = true\n", "a.toml: train.epochs must be a whole number; got true"),
        ("b.json", '{"train": {"epochs": null}}', "b.json: train.epochs must be a whole number; got null"),
        ("c.json", '{"train": {"epochs": "5"}}', 'c.json: train.epochs must be a whole number; got "5"'),
        ("d.toml", "[train]\nepochs = 2020-01-01\n", "d.toml: train.epochs must be a whole number; got 2020-01-01"),
        (
            "e.toml",
            "[loss]\nkernel_scales = [1.0, nan]\n",
            "e.toml: loss.kernel_scales must each be > 0 and finite; got nan",
        ),
        (
            "f.json",
            '{"loss": {"kernel_scales": [1.0, NaN]}}',
            "f.json: loss.kernel_scales must each be > 0 and finite; got NaN",
        ),
        ("g.toml", '[model]\narch = "nope"\n', f'g.toml: model.arch must be one of {", ".join(ARCHS)}; got "nope"'),
        ("h.toml", "preset = false\n", f"h.toml: preset must be one of {', '.join(PRESETS)}; got false"),
        (
            "i.toml",
            '[loss]\nkernel_scales = ["a", inf]\n',
            'i.toml: loss.kernel_scales must be a list of numbers; got ["a", inf]',
        ),
        ("j.toml", "[train]\nepochs = {a = 1, b = nan, c = 2020-01-01}\n", "got {a = 1, b = nan, c = 2020-01-01}"),
        (
            "k.toml",
            "[[train]]\nlr = 0.001\n",
            "k.toml: 'train' must be one table of settings ([train]); got [{lr = 0.001}]",
        ),
        ("l.toml", '[train]\n"odd key" = 1\n', 'l.toml: unknown key "train.odd key"'),
        ("m.json", '{"train": {"epochs": 1, "epochs": 2}}', 'm.json: cannot be read (the key "epochs" is given twice)'),
        # a whole number where a float is taken: named as written, not as the float it becomes
        ("n.json", '{"loss": {"lam": -1}}', "n.json: loss.lam must be >= 0 and finite; got -1"),
        ("o.toml", "[loss]\nkernel_scales = [1, 0]\n", "o.toml: loss.kernel_scales must each be > 0 and finite; got 0"),
        (
            "p.toml",
            "[loss]\nprior_separation = 10000000\n",
            "p.toml: loss.prior_separation must be at most 1e6; got 10000000",
        ),
        (
            "q.json",
            '{"loss": {"prior_var": 1000000000000000}}',
            "q.json: loss.prior_var must be from 1e-12 to 1e+12; got 1000000000000000",
        ),
        (
            "r.toml",
            "[train]\nlr_factors = [0.5, -1]\nlr_milestones = [0.2, 0.4]\n",
            "r.toml: train.lr_factors must each be > 0; got -1",
        ),
        # a float in exponent form, or with underscores: named as written, not as -100.0 or 1050.0
        ("s.toml", "[loss]\nlam = -1E2\n", "s.toml: loss.lam must be >= 0 and finite; got -1E2"),
        ("t.json", '{"loss": {"lam": -1E2}}', "t.json: loss.lam must be >= 0 and finite; got -1E2"),
        (
            "u.toml",
            "[train]\nlr = 1_0.5e6\n",
            "u.toml: train.lr must be at most 1e+06; got 1_0.5e6 (Adam moves each weight by about the learning rate "
            "a step; float32 overflows far beyond)",
        ),
        (
            "v.json",
            '{"loss": {"kernel_scales": [1.0, -2.50]}}',
            "v.json: loss.kernel_scales must each be > 0 and finite; got -2.50",
        ),
        # nested in a value of the wrong type: was "got [[0.0]]", "got {"a": -100.0}"
        ("n1.json", '{"loss": {"kernel_scales": [[1e-400]]}}', "must be a list of numbers; got [[1e-400]]"),
        ("n2.json", '{"loss": {"lam": {"a": -1E2}}}', 'n2.json: loss.lam must be a number; got {"a": -1E2}'),
        # a number no float holds: was read as 0 (the penalty off) or named as inf
        (
            "w.toml",
            "[loss]\nlam = 1e-400\n",
            "w.toml: loss.lam is too small for a float: it would read as 0; got 1e-400",
        ),
        (
            "x.json",
            '{"loss": {"lam": 1E-400}}',
            "x.json: loss.lam is too small for a float: it would read as 0; got 1E-400",
        ),
        ("y.toml", "[loss]\nkernel_scales = [1.0, 1e400]\n", "is beyond any float (about 1.8e308 at most); got 1e400"),
        (
            "z.json",
            '{"train": {"lr_factors": [0.5, 0.0e-400]}}',
            "z.json: train.lr_factors must each be > 0; got 0.0e-400",
        ),
    ],
)
def test_a_settings_files_wrong_value_is_named_as_the_file_writes_it(tmp_path, capsys, name, text, said):
    # named as Python writes it, it read "got True", "got None", "got '5'", "got datetime.date(2020, 1, 1)"
    (tmp_path / name).write_text(text)
    assert main(["train", "--config", str(tmp_path / name), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.rstrip().endswith(said) and err.count("\n") == 1, err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "content, flags, said",
    [  # the file's own settings refused together: named after the file
        ("[loss]\nkernel_scales = []\n", [], "{file}: loss.kernel_scales must be a non-empty list"),
        ("[train]\nlr_milestones = [0.5]\n", [], "{file}: train.lr_milestones and train.lr_factors must have"),
        ('[loss]\nprior = "mixture"\n', ["--objective", "vae"], "{file}: the VAE objective's KL is to the Gaussian"),
        ('[train]\nlog = "foo"\n', [], '{file}: train.log: unknown tracker "foo"; choose from'),  # as TOML writes it
        # a setting with no bounds but finiteness: was "must each be  and finite"
        ("[train]\nlr_factors = [0.5, inf]\n", [], "{file}: train.lr_factors must each be finite; got inf"),
        # a check of the machine, of a setting the file gave: the file's key, not a flag it never had
        ('[train]\nprecision = "fp16"\n', [], "{file}: train.precision fp16 needs a CUDA device"),
        ('[train]\ndevice = "cuda"\n', [], "{file}: train.device cuda: no CUDA GPU"),
        # a flag's fault is not the file's
        (
            "[train]\nepochs = 2\n",
            ["--prior", "mixture", "--prior-components", "99"],
            "error: --prior-components 99",
        ),
        ('[train]\ndevice = "cpu"\n', ["--precision", "fp16"], "error: --precision fp16 needs a CUDA device"),
        ('[train]\nprecision = "fp16"\n', ["--device", "cuda"], "error: --device cuda: no CUDA GPU"),
    ],
)
def test_a_refusal_names_the_settings_file_its_values_came_from(tmp_path, capsys, content, flags, said):
    # "loss.kernel_scales must be a non-empty list" did not say it came from the file, and
    # "--device cuda: no CUDA GPU" named a flag that was never given
    if "cuda" in content + " ".join(flags) and __import__("torch").cuda.is_available():
        pytest.skip("a CUDA GPU is visible here")
    path = tmp_path / "s.toml"
    path.write_text(content)
    capsys.readouterr()
    tiny = [a for a in TINY if a not in ("--precision", "fp32")]  # the file's or the flag's precision
    assert main(["train", "--config", str(path), *flags, *tiny, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and said.format(file=path) in err, err
    assert not (tmp_path / "run").exists()


def test_a_file_setting_that_a_flag_mends_is_not_refused(tmp_path, capsys):
    path = tmp_path / "s.toml"
    path.write_text("[loss]\nkernel_scales = []\n")
    assert _printed(capsys, "--config", str(path), "--kernel-scales", "1", "2")["loss"]["kernel_scales"] == [1.0, 2.0]


def test_a_resumed_runs_device_is_named_as_its_config_json_s(tmp_path, capsys):
    # a run trained on a GPU, resumed where there is none: not "--device cuda", which was not given
    if __import__("torch").cuda.is_available():
        pytest.skip("a CUDA GPU is visible here")
    run = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(run)]) == 0
    config = json.loads((run / "config.json").read_text())
    config["train"]["device"] = "cuda"
    (run / "config.json").write_text(json.dumps(config))
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--epochs", "2"]) == 2
    assert f"error: {run / 'config.json'}: train.device cuda: no CUDA GPU" in capsys.readouterr().err
    assert main(["train", "--resume", str(run), "--epochs", "2", "--device", "cuda"]) == 2
    assert "error: --device cuda: no CUDA GPU" in capsys.readouterr().err


@pytest.mark.parametrize(
    "name, content, said",
    [  # the same reasons as a run's config.json gives (was Python's codec message, "(char 0)")
        ("u.json", b'{"train": {"epochs": "\xff"}}', "u.json: cannot be read (not UTF-8 text)"),
        ("e.json", b"", "e.json: cannot be read (not valid JSON: Expecting value at line 1 column 1)"),
        ("t.toml", b"[train\n", "t.toml: cannot be read (not valid TOML: "),
    ],
)
def test_a_settings_file_that_cannot_be_parsed_says_why_as_a_config_json_does(tmp_path, capsys, name, content, said):
    path = tmp_path / name
    path.write_bytes(content)
    capsys.readouterr()
    assert main(["train", "--config", str(path), *TINY, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"error: {tmp_path / said}" in err, err


def test_a_check_of_settings_names_the_setting_not_a_flag_that_may_not_have_been_given():
    # "--condition labels: CelebA ..." for a condition a settings file gave
    from wae.config import validate

    cfg = preset("mnist-fast")
    cfg = override(cfg, data__dataset="celeba", data__path="/x", data__condition="labels")
    with pytest.raises(UserError, match="^data.condition labels: CelebA is read without labels"):
        validate(cfg)


@pytest.mark.parametrize(
    "flags, said",
    [  # each was "loss.lam must be >= 0 and finite; got -1.0": the setting's name, not the flag, and the float
        (["--lam", "-1"], "argument --lam: must be >= 0 and finite; got -1 "),
        (
            ["--lam", "-1E2"],
            "argument --lam: must be >= 0 and finite; got -1E2 ",
        ),  # was "expected one argument"
        (["--kernel-scales", "1", "-1e-3"], "argument --kernel-scales: must each be > 0 and finite; got -1e-3 "),
        (["--kernel-scales", "1", "1e20"], "argument --kernel-scales: must each be from 1e-12 to 1e+12; got 1e20 "),
        (["--prior-var", "0"], "argument --prior-var: must be > 0 and finite; got 0 "),
        (["--prior-separation", "1e7"], "argument --prior-separation: must be at most 1e6; got 1e7 "),
        (
            ["--lr-factors", "0.5", "-1", "--lr-milestones", "0.2", "0.4"],
            "argument --lr-factors: must each be > 0; got -1 ",
        ),
        (["--latent-dim", "100000"], "argument --latent-dim: must be at most 65536; got 100000 "),
        # a learning rate beyond what Adam's float32 update holds: a traceback from deep in Adam (rc 1)
        (["--lr", "1e39"], "argument --lr: must be at most 1e+06; got 1e39 (Adam moves"),
        (["--adversary-lr", "2e38"], "argument --adversary-lr: must be at most 1e+06; got 2e38"),
        (["--lr-factors", "1e300", "--lr-milestones", "0"], "argument --lr-factors: must each be at most 1e+06"),
        # what float() reads with a minus sign (was "unrecognized arguments: -inf", "expected one argument")
        (["--kernel-scales", "-inf"], "argument --kernel-scales: must be finite; got -inf "),
        (["--kernel-scales", "1", "-nan"], "argument --kernel-scales: must be finite; got -nan "),
        (["--lam", "-1_0"], "argument --lam: must be >= 0 and finite; got -1_0 "),
        (["--epochs", "-1_0"], "argument --epochs: must be at least 0; got -1_0 "),  # was "got -10"
        # what no float holds: was "must be finite", or read as 0 (the penalty turned off)
        (["--lam", "9" * 400], "argument --lam: " + "9" * 37 + "... is beyond any float"),
        (["--lam", "1e400"], "argument --lam: 1e400 is beyond any float"),
        (["--lam", "1e-400"], "argument --lam: 1e-400 is too small for a float: it would read as 0"),
        (
            ["--batch-size", str(2**200)],
            "argument --batch-size: must be at most 16777216; got a whole number of about 2^201",
        ),
    ],
)
def test_a_flags_value_is_refused_under_the_flag_as_typed(tmp_path, capsys, flags, said):
    capsys.readouterr()
    with pytest.raises(SystemExit) as refused:  # argparse's refusal, before anything is read
        main(["train", *TINY, *flags, "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert refused.value.code == 2 and err.count("\n") == 1 and said in err, err
    assert not (tmp_path / "run").exists()


def test_the_checks_of_one_value_moved_to_problem_still_hold_for_python_callers():
    # the size bounds, float32's range, the separation and the factors were checked in validate
    # (and check_sizes); they are now problem()'s, which validate calls for every field
    from wae.config import validate

    for changes, said in (
        ({"loss__prior_separation": 1e7}, "loss.prior_separation must be at most 1e6"),
        ({"loss__prior_var": 1e-300}, "loss.prior_var must be from 1e-12 to 1e+12"),
        ({"loss__kernel_scales": (1.0, 1e20)}, "loss.kernel_scales must each be from 1e-12 to 1e+12; got 1e+20"),
        ({"train__lr_milestones": (0.5,), "train__lr_factors": (-2.0,)}, "train.lr_factors must each be > 0; got -2.0"),
        ({"model__latent_dim": 10**6}, "model.latent_dim must be at most 65536"),
        ({"train__lr": 1e39}, "train.lr must be at most 1e+06; got 1e+39"),
        (  # each in bounds, their product not
            {"train__lr": 1.0, "train__lr_milestones": (0.0, 0.5), "train__lr_factors": (1e4, 1e4)},
            "train.lr 1 times the step schedule's train.lr_factors reaches 1e+08: at most 1e+06",
        ),
    ):
        with pytest.raises(UserError, match="^" + said.replace("+", "\\+").replace(".", "\\.")):
            validate(override(preset("mnist-fast"), **changes))


def test_factors_of_a_schedule_that_does_not_use_them_bound_nothing():
    from wae.config import lr_factor_range, validate

    cfg = override(preset("mnist-fast"), train__lr_milestones=(0.5,), train__lr_factors=(0.1,))
    assert lr_factor_range(cfg) == (0.1, 1.0)  # a decay never raises the rate above lr
    cfg = override(cfg, train__lr_factors=(10.0,), train__lr=1e5)
    assert lr_factor_range(cfg) == (1.0, 10.0)
    validate(cfg)  # 1e6: at the bound, taken


@pytest.mark.parametrize(
    "flags, said",
    [  # settings that do not go together, given as flags: named by the flags, not the settings' names
        (["--kernel-scales"], "error: --kernel-scales must be a non-empty list of positive numbers"),
        (["--lr-milestones", "0.5"], "error: --lr-milestones and train.lr_factors must have the same length"),
        (["--lr-milestones", "0.5", "--lr-factors", "0.1", "0.2"], "error: --lr-milestones and --lr-factors must"),
        (["--cost", "bce", "--output", "tanh"], "error: the bce cost needs data in [0, 1] and --output sigmoid"),
        (["--prior", "mixture", "--prior-components", "99"], "error: --prior-components 99: the mixture prior"),
        # a rate float32 holds as 0: alone (at parse time), through the factors, at the cosine's end
        (
            ["--lr", "1e-300"],
            "argument --lr: must be at least 1.175e-38; got 1e-300 (float32 holds a smaller rate as 0)",
        ),
        (
            ["--lr-milestones", "0.5", "--lr-factors", "1e-37"],
            "error: train.lr 0.002 times --lr-factors falls to 2e-40: at least 1.175e-38",
        ),
        (["--lr", "1e-37", "--lr-schedule", "cosine"], "error: --lr 1e-37 at the cosine schedule's end (lr / 100)"),
        (
            ["--lr", "1.2e-38", "--lr-milestones", "0.2", "0.4", "--lr-factors", "1", "1", "--lr-warmup", "0.5"],
            "error: --lr 1.2e-38 at the warm-up's start (lr / 100) falls to 1.2e-40",
        ),
        (  # a product just above the bound, in the digits that show it: was "reaches 1e+06: at most 1e+06"
            ["--lr", "1e5", "--lr-milestones", "0.2", "0.4", "--lr-factors", "10", "1.0000001"],
            "reaches 1000000.1000000001: at most 1e+06",
        ),
        # a value float32 holds as 0 (float64 does not): the penalty or the cost turned off
        (
            ["--lam", "1e-46"],
            "argument --lam: must be 0 or at least 1.175e-38 in size; got 1e-46 (float32 holds it as 0)",
        ),
        (["--cost-scale", "1e-320"], "argument --cost-scale: must be at least 1.175e-38; got 1e-320"),
        # weights of the loss whose gradients' squares overflow float32 (Adam's step is then 0: no training)
        (
            ["--cost-scale", "1e30"],
            "argument --cost-scale: must be at most 1e+06; got 1e30 (float32's gradients overflow far beyond)",
        ),
        (["--input-noise", "1e30"], "argument --input-noise: must be at most 1e+06; got 1e30"),
        (["--lam", "1e7"], "argument --lam: must be at most 1e+06; got 1e7"),
        (
            ["--prior", "mixture", "--prior-components", "50", "--latent-dim", "2"],
            "error: --prior-components 50: the mixture prior places its means on the first axes of --latent-dim 2",
        ),
    ],
)
def test_settings_that_do_not_go_together_are_named_by_the_flags_that_gave_them(tmp_path, capsys, flags, said):
    from .conftest import run_cli

    code, err = run_cli(["train", *TINY, *flags, "--out", str(tmp_path / "run")])
    assert code == 2 and err.count("\n") == 1 and said in err, err
    assert not (tmp_path / "run").exists()


def test_a_refusal_names_a_settings_files_key_beside_a_flag_and_leaves_paths_whole(tmp_path, capsys):
    from .conftest import run_cli

    # the file alone is valid and a flag breaks it: the file's setting was named bare ("model.output = tanh")
    (tmp_path / "c.toml").write_text('[model]\noutput = "tanh"\n[data]\nrange = "pm1"\n')
    code, err = run_cli(
        ["train", *TINY, "--config", str(tmp_path / "c.toml"), "--range", "01", "--out", str(tmp_path / "r")]
    )
    assert code == 2 and f"error: {tmp_path / 'c.toml'}'s model.output = tanh needs --range pm1" in err, err
    # a data path holding a setting's name: was rewritten ("/tmp/.../--arch is not a table")
    folder = tmp_path / "model.arch"
    folder.mkdir()
    code, err = run_cli(
        ["train", "--data", str(folder), "--arch", "mlp", "--output", "identity", "--out", str(tmp_path / "r")]
    )
    assert code == 2 and f"error: {folder} is not a table" in err and "--arch mlp and --output identity" in err, err
    assert not (tmp_path / "r").exists()


def test_a_conditional_run_through_the_mlp_is_refused_for_the_mlp_not_for_labels(tmp_path):
    from wae.config import validate

    cfg = override(preset("mnist-fast"), data__dataset="folder", data__path=str(tmp_path), data__condition="labels")
    with pytest.raises(UserError, match="is not a table"):  # was "... are for images; tables have no labels here"
        validate(override(cfg, model__arch="mlp", model__output="identity"))
