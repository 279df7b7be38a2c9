"""Theorem 1 on toy data: the exact OT cost against known answers, the generators' structure, and
a tiny lambda sweep (``wae toy``)."""

from __future__ import annotations

import itertools
import json
import math
import sys

import numpy as np
import pytest
import torch

from wae.cli import main
from wae.config import UserError
from wae.toy import (
    ToyConfig,
    manifold,
    manifold_basis,
    manifold_embed,
    ot_cost,
    pot,
    ring_of_gaussians,
    run_toy,
    swiss_roll,
)

from .conftest import run_cli


def _rng(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_ot_cost_of_a_sample_with_itself_is_zero():
    x = torch.randn(300, 3, generator=_rng())
    assert ot_cost(x, x) == pytest.approx(0.0, abs=1e-12)
    assert ot_cost(x, x[torch.randperm(300, generator=_rng(1))]) == pytest.approx(0.0, abs=1e-12)


def test_ot_cost_of_a_shifted_sample_is_the_squared_shift():
    # for equal-size uniform measures every coupling has E[X - Y] = mean(x) - mean(x) = 0, so
    # W_2^2(x, x + a) = W_2^2(x, x) + ||a||^2 = ||a||^2 exactly
    x = torch.randn(400, 2, generator=_rng(), dtype=torch.float64)
    shift = torch.tensor([0.7, -1.2], dtype=torch.float64)
    shuffled = (x + shift)[torch.randperm(400, generator=_rng(1))]
    assert ot_cost(x, shuffled) == pytest.approx(shift.pow(2).sum().item(), rel=1e-9)


def test_ot_cost_matches_the_best_permutation():
    x, y = torch.randn(6, 2, generator=_rng(2)), torch.randn(6, 2, generator=_rng(3))
    best = min(
        sum((x[i] - y[j]).pow(2).sum().item() for i, j in enumerate(perm)) / 6
        for perm in itertools.permutations(range(6))
    )
    assert ot_cost(x, y) == pytest.approx(best, rel=1e-6)
    assert ot_cost(x, y) == pytest.approx(ot_cost(y, x), rel=1e-9)


def test_missing_pot_is_one_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "ot", None)  # import ot now raises ImportError
    with pytest.raises(UserError, match="pip install"):
        pot()


def test_ring_points_sit_on_eight_equally_likely_modes():
    exact = ring_of_gaussians(400, _rng(), std=0.0)
    assert torch.allclose(exact.norm(dim=1), torch.full((400,), 2.0), atol=1e-5)
    steps = torch.atan2(exact[:, 1], exact[:, 0]) / (2 * math.pi / 8)
    assert torch.allclose(steps, steps.round(), atol=1e-4)
    assert len(torch.unique(steps.round() % 8)) == 8
    noisy = ring_of_gaussians(8000, _rng(1))
    angles = torch.arange(8) * (2 * math.pi / 8)
    centres = 2.0 * torch.stack([angles.cos(), angles.sin()], 1)
    distance, mode = torch.cdist(noisy, centres).min(1)
    assert distance.max() < 6 * 0.05
    assert torch.bincount(mode, minlength=8).min() > 900  # 1000 expected per mode


def test_swiss_roll_without_noise_is_the_spiral_r_equals_t_over_5():
    x = swiss_roll(500, _rng(), noise=0.0)
    radius = x.norm(dim=1)
    t = 5.0 * radius
    assert t.min() >= 1.5 * math.pi - 1e-4 and t.max() <= 4.5 * math.pi + 1e-4
    assert torch.allclose(x / radius.unsqueeze(1), torch.stack([t.cos(), t.sin()], 1), atol=1e-4)
    assert torch.equal(swiss_roll(50, _rng(5)), swiss_roll(50, _rng(5)))


def test_manifold_points_lie_on_the_image_of_their_parameters():
    basis = manifold_basis()
    assert torch.allclose(basis.T @ basis, torch.eye(5), atol=1e-6)
    x = manifold(1000, _rng())
    assert x.shape == (1000, 10)
    t = x @ basis[:, :2]  # the first two features are t itself
    assert t.abs().max() <= 1.0 + 1e-5
    assert torch.allclose(manifold_embed(t), x, atol=1e-5)
    singular = torch.linalg.svdvals(x - x.mean(0))
    assert singular[4] > 1.0 and singular[5] < 1e-3 * singular[0]  # inside a 5-D linear subspace, not fewer


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("toy")
    cfg = ToyConfig(
        datasets=("ring", "manifold"),
        lambdas=(0.0, 100.0),
        steps=150,
        batch_size=64,
        width=32,
        n_train=512,
        n_eval=128,
    )
    return out, run_toy(cfg, out, "test", progress=False)


def test_run_toy_writes_rows_table_and_figure(tiny_sweep):
    out, rows = tiny_sweep
    keys = {"dataset", "lam", "recon", "mmd2", "w_z", "w_z_floor", "w_c", "w_c_floor", "gap", "seconds"}
    assert [(r["dataset"], r["lam"]) for r in rows] == [
        ("ring", 0.0),
        ("ring", 100.0),
        ("manifold", 0.0),
        ("manifold", 100.0),
    ]
    assert all(set(r) == keys for r in rows)
    assert all(r["gap"] == pytest.approx(r["recon"] - r["w_c"]) for r in rows)
    assert all(r["w_c"] > 0 and r["w_c_floor"] > 0 and r["recon"] >= 0 for r in rows)
    assert json.loads((out / "toy.json").read_text())["rows"] == rows
    assert (out / "toy.md").read_text().count("\n| ring |") == 2
    assert (out / "toy.png").stat().st_size > 10_000


def test_the_penalty_pulls_codes_towards_the_prior(tiny_sweep):
    _, rows = tiny_sweep
    for name in ("ring", "manifold"):
        free, penalised = (r for r in rows if r["dataset"] == name)
        assert penalised["mmd2"] < 0.5 * free["mmd2"]
        assert penalised["w_z"] < free["w_z"]
        # without a penalty nothing ties G(z), z ~ P_Z, to the data: samples are far from it
        assert free["w_c"] > penalised["w_c"]


def test_cli_toy_runs_and_refuses_to_mix_folders(tmp_path, capsys):
    out = tmp_path / "toy"
    args = ["toy", "--datasets", "swiss-roll", "--lambdas", "1", "--steps", "3", "--n-eval", "16", "--no-progress"]
    assert main([*args, "--out", str(out)]) == 0
    assert "| swiss-roll | 1 |" in capsys.readouterr().out
    assert json.loads((out / "toy.json").read_text())["config"]["steps"] == 3
    assert main([*args, "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main([*args, "--out", str(out), "--overwrite"]) == 0
    code, err = run_cli(["toy", "--lambdas", "-1", "--out", str(tmp_path / "other")])
    assert code == 2 and err.strip().count("\n") == 0, err
    assert not (tmp_path / "other").exists()
    # two lambdas that %g writes alike: recorded as "--lambdas 1 1" (refused on a rerun), tabled as λ = 1 twice
    args = ["toy", "--datasets", "ring", "--lambdas", "1", "1.0000000001", "--steps", "1", "--n-eval", "4"]
    assert main([*args, "--no-progress", "--out", str(tmp_path / "near")]) == 0
    table = capsys.readouterr().out
    assert "| ring | 1 |" in table and "| ring | 1.0000000001 |" in table, table
    assert "--lambdas 1 1.0000000001 " in json.loads((tmp_path / "near" / "toy.json").read_text())["command"]


def test_the_figures_log_axis_is_labelled_in_plain_text(tmp_path, monkeypatch):
    """As the report's curves (tests/test_report.py): no TeX-typeset tick labels, which took
    most of a small figure's label time."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    import wae.toy as toy

    drawn = []
    monkeypatch.setattr(toy, "figure_bytes", lambda fig, **_: drawn.append(fig) or b"png")
    cfg = ToyConfig(datasets=("ring",), lambdas=(0.0, 10.0))
    rows = [
        {"dataset": "ring", "lam": lam, "recon": recon, "w_c": w_c, "w_c_floor": 0.002}
        for lam, recon, w_c in ((0.0, 0.01, 3.0), (10.0, 0.05, 0.2))
    ]
    points = torch.randn(50, 2)
    shown = {("ring", lam): (points, points + 0.1, points) for lam in cfg.lambdas}
    toy.toy_figure(rows, shown, torch.randn(50, 2), cfg, tmp_path / "toy.png")
    FigureCanvasAgg(drawn[0]).draw()
    curve = drawn[0].axes[0]
    labels = [label.get_text() for label in curve.get_yticklabels(which="both") if label.get_text()]
    assert curve.get_yscale() == "log" and labels and not any("$" in text for text in labels), labels


@pytest.mark.parametrize(
    "given, said",
    [  # each lambda is loss.lam and has its bounds; was "--lambdas must be >= 0; got 1 -100" after parsing
        ("-1E2", "argument --lambdas: must be >= 0 and finite; got -1E2"),
        ("1e30", "argument --lambdas: must be at most 1e+06; got 1e30"),  # trained: Adam's squares overflowed
        ("nan", "argument --lambdas: must be finite; got nan"),
        ("1e-400", "argument --lambdas: 1e-400 is too small for a float: it would read as 0"),
        # a lambda given twice repeated its row: named as typed
        (
            "1.0",
            "wae toy: error: --lambdas names 1 twice (as 1 and 1.0): give each lambda once (its rows would repeat)",
        ),
        ("1", "error: --lambdas names 1 twice: give each lambda once"),
    ],
)
def test_toy_lambdas_are_checked_as_the_loss_weight_is_named_as_typed(tmp_path, given, said):
    code, err = run_cli(["toy", "--lambdas", "1", given, "--out", str(tmp_path / "toy")])
    assert code == 2 and said in err and err.count("\n") == 1, err
    assert not (tmp_path / "toy").exists()


def test_toy_refuses_a_data_set_named_twice(tmp_path):
    code, err = run_cli(["toy", "--datasets", "ring", "manifold", "ring", "--out", str(tmp_path / "toy")])
    assert code == 2 and "error: --datasets names 'ring' twice: name each data set once" in err, err
    assert not (tmp_path / "toy").exists()


@pytest.mark.parametrize(
    "settings, said",
    [  # from Python, NaN passed "lam < 0" and trained on a NaN loss; True trained as 1
        ({"lambdas": (1.0, float("nan"))}, "lambdas must be >= 0 and finite; got nan"),
        ({"lambdas": (1.0, np.float32("nan"))}, "lambdas must be >= 0 and finite; got nan"),  # was np.float32(nan)
        ({"lambdas": (-1.0,)}, "lambdas must be >= 0 and finite; got -1.0"),
        ({"lambdas": (1e30,)}, "lambdas must be at most 1e+06; got 1e+30 (float32's gradients overflow far beyond)"),
        ({"lambdas": (True,)}, "lambdas must be numbers; got True"),
        ({"lambdas": ("1",)}, "lambdas must be numbers; got '1'"),
        ({"lr": 0.0}, "lr must be > 0 and finite; got 0.0"),
        ({"steps": 0}, "steps must be a whole number from 1 to 2^48; got 0"),
        ({"n_eval": 2.5}, "n_eval must be a whole number from 2 to 2^48; got 2.5"),
        ({"seed": True}, "seed must be a whole number from 0 to 2^32 - 1; got True"),
        # a list given as one value: "ring" was read letter by letter ("unknown data set 'r'")
        ({"datasets": "ring"}, "datasets must be a list; got 'ring'"),
        ({"lambdas": 1.0}, "lambdas must be a list; got 1.0"),
        ({"datasets": ("ring", 3)}, "unknown data set 3; choose from ring, swiss-roll, manifold"),
        (
            {"datasets": ("ring", "ring")},
            "datasets names 'ring' twice: name each data set once (its rows would repeat)",
        ),
        (
            {"lambdas": (1, np.float64(1.0))},
            "lambdas names 1 twice (as 1 and 1.0): give each lambda once (its rows would repeat)",
        ),
        ({"lambdas": iter(())}, "give at least one data set and one lambda"),
        ({"lambdas": np.array(1.0)}, "lambdas must be a list; got 1.0"),  # a 0-d array: was a TypeError
        ({"lambdas": torch.tensor(1.0)}, "lambdas must be a list; got 1.0"),  # was "got tensor(1.)"
        ({"lambdas": (10**400,)}, "lambdas must be at most 1e+06; got a whole number of about 2^1329"),  # OverflowError
        ({"lr": 10**400}, "lr must be at most 1e+06; got a whole number of about 2^1329"),
        ({"datasets": {"ring", "manifold"}}, "datasets must be a list (in the order of the rows); got a set"),
        (
            {"datasets": np.array(["ring", "ring"])},
            "datasets names 'ring' twice: name each data set once (its rows would repeat)",
        ),
    ],
)
def test_run_toy_refuses_a_setting_that_cannot_work_and_writes_nothing(tmp_path, settings, said):
    with pytest.raises(UserError) as refused:
        run_toy(ToyConfig(**{"datasets": ("ring",), "steps": 1, "n_eval": 4, **settings}), tmp_path / "toy")
    assert str(refused.value) == said
    assert not (tmp_path / "toy").exists()


def test_run_toy_takes_numpy_numbers_and_minus_zero_as_plain_ones(tmp_path):
    # np.float32 passed the check, trained, then crashed writing toy.json ("Object of type
    # float32 is not JSON serializable"), leaving an empty folder; -0.0 was written as λ = -0
    cfg = ToyConfig(datasets=("ring",), lambdas=(np.float32(2), -0.0), steps=np.int64(2), n_eval=8, n_train=64)
    rows = run_toy(cfg, tmp_path / "toy", progress=False)
    assert [row["lam"] for row in rows] == [2.0, 0.0] and math.copysign(1, rows[1]["lam"]) == 1
    saved = json.loads((tmp_path / "toy" / "toy.json").read_text())
    assert saved["config"]["lambdas"] == [2.0, 0.0] and saved["config"]["steps"] == 2
