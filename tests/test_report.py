"""HTML reports and run comparison, on tiny runs."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

import wae
from wae.cli import main
from wae.report import chromium, principal_axes

pytestmark = pytest.mark.figures  # the report's figures drawn, as a user's run draws them

TINY = ["--dataset", "synthetic", "--batch-size", "32", "--precision", "fp32", "--no-progress", "--log-every", "1"]
TINY += ["--arch", "fast"]  # the cheapest network: these tests are of the command, not of the demo's network


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    for objective in ("mmd", "vae"):
        assert main(["train", *TINY, "--objective", objective, "--max-steps", "8", "--out", str(root / objective)]) == 0
    return root


def test_train_writes_a_self_contained_html_report(runs):
    page = (runs / "mmd" / "report.html").read_text()
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    images = re.findall(r"src='(.*?)'", page)
    assert len(images) == 6  # three grids, the mixture's samples (the preset fits one), the curves, the latent plot
    assert all(src.startswith("data:image/png;base64,") for src in images)
    assert "test reconstruction MSE / pixel" in page and "objective mmd" in page


def test_evaluate_adds_its_metrics_to_the_report(runs, capsys):
    run = runs / "vae"
    assert main(["evaluate", str(run), "--n", "64", "--no-fid"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"test_recon_mse", "sharpness_samples", "fd_samples", "precision", "code_var_0"} <= set(metrics)
    assert "fid" not in metrics
    page = (run / "report.html").read_text()
    assert "wae evaluate (metrics.json)" in page and "sharpness of samples" in page


def test_compare_writes_a_table_row_per_run_and_a_figure(runs, tmp_path, capsys):
    out = tmp_path / "cmp"
    # as wae evaluate --sampler gmm writes it: with the fingerprint of the weights (one without
    # is not known to be of them: left out, with a warning)
    from wae.checkpoint import weights_fingerprint

    fingerprint = weights_fingerprint(wae.load_model(runs / "mmd")[0])
    figures = {"fd_samples": 12.5, "kid": 0.01234, "kid_std": 0.00041, "weights_fingerprint": fingerprint}
    (runs / "mmd" / "metrics-gmm.json").write_text(json.dumps(figures))
    try:
        assert main(["compare", str(runs / "vae"), str(runs / "mmd"), "--out", str(out)]) == 0
    finally:
        (runs / "mmd" / "metrics-gmm.json").unlink()
    rows = (out / "compare.md").read_text().splitlines()
    assert (
        len(rows) == 5 and rows[2].startswith("| vae | vae | prior |") and rows[3].startswith("| mmd | mmd | prior |")
    )
    assert rows[4].startswith("| mmd | mmd | gmm |") and "| 12.50 |" in rows[4]
    assert (
        "| KID ↓ (± std) |" in rows[0] and "| 0.0123 ± 0.0004 |" in rows[4] and rows[2].split(" | ")[5:7] == ["–", "–"]
    )
    width, height = Image.open(out / "compare.png").size
    assert width > 800 and height > 300


def test_runs_lists_every_folder_in_one_line_even_broken_ones(runs, tmp_path, capsys):
    import shutil

    folder = tmp_path / "many"
    shutil.copytree(runs / "mmd", folder / "a-good")
    (folder / "b-damaged").mkdir()
    (folder / "b-damaged" / "config.json").write_text("{")
    (folder / "c-empty").mkdir()
    (folder / "d-started").mkdir()
    shutil.copy(runs / "mmd" / "config.json", folder / "d-started")
    shutil.copytree(runs / "vae", folder / "e-edited")
    (folder / "e-edited" / "metrics.json").write_text("[1]")  # not an object: the per-epoch figures are used
    with open(folder / "e-edited" / "metrics.jsonl", "a") as f:
        f.write('{"kind": "eval", "step": "x"}\nnot json\n')
    (folder / ".hidden").mkdir()
    (folder / "notes.txt").write_text("not a run")
    assert main(["runs", str(folder)]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    lines = captured.out.splitlines()
    assert lines[0].startswith("| run | preset | objective | epochs | steps | FID | KID | fast FD | test MSE |")
    rows = {line.split(" | ")[0].lstrip("| "): line.strip("| ").split(" | ") for line in lines[2:]}
    assert list(rows) == ["a-good", "b-damaged", "c-empty", "d-started", "e-edited"]
    good = rows["a-good"]
    assert good[1:5] == ["mnist-fast", "mmd", "0.5/25", "8"] and good[-1] == "epoch 0 eval"  # 8 of 16 steps
    assert float(good[8]) > 0 and good[5] == good[6] == "–"  # test MSE; no FID/KID without wae evaluate
    damaged = "config.json is damaged (not valid JSON: Expecting property name enclosed in double quotes at line 1"
    assert rows["b-damaged"][-1] == damaged + " column 2)"
    assert rows["c-empty"][-1] == "not a run folder (no config.json)"
    assert rows["d-started"][3:5] == ["0/25", "0"] and rows["d-started"][-1] == "no checkpoint"
    assert rows["e-edited"][1:3] == ["mnist-fast", "vae"] and rows["e-edited"][-1].startswith(
        "epoch 0 eval (warning: skipped 1 line(s) of metrics.jsonl"
    )
    assert main(["runs", str(folder / "a-good")]) == 0  # a run folder itself: its line
    assert len(capsys.readouterr().out.splitlines()) == 3
    assert main(["runs", str(tmp_path / "missing")]) == 2
    assert main(["runs", ""]) == 2
    assert len(capsys.readouterr().err.splitlines()) == 2


def test_report_and_compare_refuse_bad_input(runs, tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert main(["report", str(runs / "mmd"), "--out", str(tmp_path / "r.txt")]) == 2
    assert main(["compare", str(runs / "mmd"), str(tmp_path / "missing"), "--out", str(tmp_path / "c")]) == 2
    assert not (tmp_path / "c").exists()
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 3 and all("error" in line for line in lines)


def test_kid_is_reported_with_its_spread():
    from wae.report import metrics_rows

    rows = dict(metrics_rows({"fid": 25.91, "kid": 0.01234, "kid_std": 0.00041}))
    assert rows["KID, samples vs test (Inception; ± std over subsets)"] == "0.01234 ± 0.00041"
    assert rows["FID, samples vs test (Inception)"] == "25.91"


def test_principal_axes_find_the_long_direction():
    import torch

    gen = torch.Generator().manual_seed(0)
    codes = torch.randn(500, 3, generator=gen) * torch.tensor([0.1, 5.0, 1.0])
    axes = principal_axes(codes)
    assert axes.shape == (3, 2)
    assert abs(axes[1, 0].item()) > 0.99 and abs(axes[2, 1].item()) > 0.95


@pytest.mark.skipif(chromium() is None, reason="no Chromium installed")
def test_report_renders_in_headless_chromium(runs, tmp_path, capsys):
    shot = tmp_path / "shot.png"
    assert main(["report", str(runs / "mmd"), "--screenshot", str(shot)]) == 0
    picture = Image.open(shot).convert("L")
    assert picture.size == (1280, 2400)
    assert len(picture.histogram()) == 256 and sum(c > 0 for c in picture.histogram()) > 50  # not a blank page


def test_short_runs_get_whole_epoch_ticks_and_empty_panels_say_why():
    """Hostile-pass finds: a 2-epoch run's curves had ticks at 1.2, 1.4, ...; a run shorter than
    log_every steps, or without an evaluation, drew empty panels with no word of why."""
    from wae.report import curves_figure

    evals = [
        {
            "kind": "eval",
            "epoch": e,
            "step": 2 * e,
            "test_recon_mse": 0.1 / e,
            "test_mmd": 0.01,
            "fd_samples": 100.0 / e,
        }
        for e in (1, 2)
    ]
    train = [{"kind": "train", "step": s, "recon": 1.0 / s, "penalty": 0.1} for s in (1, 2, 3, 4)]
    fig = curves_figure(train + evals)
    fig.canvas.draw()
    for ax in fig.axes[1:3]:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert not texts
    empty = curves_figure([])
    notes = " ".join(t.get_text() for ax in empty.axes for t in ax.texts)
    assert "no training losses logged" in notes and "no evaluation yet" in notes


def _drawn_y_labels(ax) -> list[tuple[float, str]]:
    """(tick value, label) of the labelled major and minor y ticks inside the axes' view."""
    low, high = sorted(ax.get_ylim())
    labels = [(label.get_position()[1], label.get_text()) for label in ax.get_yticklabels(which="both")]
    return [(value, text) for value, text in labels if text and low <= value <= high]


def test_log_axes_are_labelled_in_plain_text_with_the_sign_of_negative_values():
    """The default log formatter typesets every label as TeX (a third of the curves figure's
    time, which every training run's report pays); matplotlib's plain LogFormatter drops the
    sign of negative values on a symlog axis (-0.001 labelled "1e-03")."""
    from wae.report import curves_figure

    train = [{"kind": "train", "step": s, "recon": 8.0 / s, "penalty": (-1) ** s * 0.01 / s} for s in range(1, 60)]
    evals = [
        {"kind": "eval", "epoch": e, "test_recon_mse": 0.1, "test_mmd": 0.01, "fd_samples": 60 - e} for e in (1, 2, 3)
    ]
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = curves_figure(train + evals)
    FigureCanvasAgg(fig).draw()
    losses, fd = fig.axes[0], fig.axes[2]
    assert losses.get_yscale() == "symlog" and fd.get_yscale() == "log"
    labels = {(ax is fd, value): text for ax in (losses, fd) for value, text in _drawn_y_labels(ax)}
    assert labels and not any("$" in text for text in labels.values())
    for (_, value), text in labels.items():
        assert text.startswith("\N{MINUS SIGN}") == (value < 0), (value, text)
    assert {"57", "58", "59"} & {
        text for (is_fd, _), text in labels.items() if is_fd
    }  # within one decade: minor labels
    # losses that stay inside the symlog's linear band get ticks off the decades: each label
    # reads back as its tick (LogFormatter wrote -2.105e-5 as "2e-05")
    narrow = [{"kind": "train", "step": s, "recon": -2e-5 + 1e-6 * s, "penalty": -1e-5} for s in range(1, 12)]
    fig = curves_figure(narrow)
    FigureCanvasAgg(fig).draw()
    shown = _drawn_y_labels(fig.axes[0])
    assert shown
    for value, text in shown:
        assert float(text.replace("\N{MINUS SIGN}", "-")) == pytest.approx(value, rel=1e-3, abs=1e-12), (value, text)


@pytest.mark.parametrize("d", [1, 2, 5, 16, 20])
def test_the_latent_figure_has_two_scatters_from_two_dimensions_and_a_histogram_per_coordinate(d):
    from wae.report import _png, latent_figure

    torch.manual_seed(0)
    fig = latent_figure(torch.randn(300, d) * 0.5, torch.randn(300, d))
    axes = fig.get_axes()
    assert len(axes) == (3 if d >= 2 else 1)  # the histograms share one panel
    strip = axes[-1]
    titles = [t.get_text() for t in strip.texts if t.get_text().startswith("z")]
    assert titles[0].startswith("z1: mean") and len(titles) == min(d, 16)
    # P_Z filled and Q_Z outlined, one collection each with a histogram per coordinate
    from matplotlib.collections import LineCollection, PolyCollection

    fills = [c for c in strip.collections if isinstance(c, PolyCollection)]
    outlines = [c for c in strip.collections if type(c) is LineCollection and c.get_label() == "Q_Z"]
    assert len(fills) == len(outlines) == 1 and fills[0].get_label() == "P_Z"
    shapes = [p.vertices for p in fills[0].get_paths()], outlines[0].get_segments()
    for histograms in shapes:
        assert len(histograms) == min(d, 16)
        for vertices in histograms:  # from its baseline, 39 bins (40 edges), back down to it (a polygon: closed)
            vertices = vertices[:80]
            assert len(vertices) == 80 and vertices[0, 1] == vertices[-1, 1] == vertices[:, 1].min()
            assert (np.diff(vertices[:, 0]) >= 0).all()  # left to right
    width = fig.get_size_inches()[0]
    assert width == 15 if d >= 2 else width < 5  # no wide blank beside a single histogram
    assert _png(fig).startswith("data:image/png;base64,")


def test_drawing_figures_leaves_the_callers_matplotlib_as_it_was(tmp_path):
    # matplotlib.use("Agg") in the report once switched a notebook's backend, and pyplot kept
    # every figure of the toy study and of compare open
    import matplotlib
    import matplotlib.pyplot as plt

    from wae.report import _png, curves_figure, latent_figure

    before = matplotlib.get_backend()
    try:
        matplotlib.use("svg")  # a caller's choice
        open_before = plt.get_fignums()
        _png(latent_figure(torch.randn(50, 3), torch.randn(50, 3)))
        _png(curves_figure([{"kind": "eval", "epoch": 1, "test_recon_mse": 0.1, "test_mmd": 0.01}]))
        assert matplotlib.get_backend() == "svg" and plt.get_fignums() == open_before
    finally:
        matplotlib.use(before)


def test_the_latent_figure_takes_what_a_model_may_give_and_refuses_what_it_cannot_draw():
    # a second hostile pass: NaN or infinite codes (LinAlgError), bf16 or fp16 codes (no SVD),
    # zero codes, a prior of another width: tracebacks; d > 16 left out without a word
    from wae.config import UserError
    from wae.report import _png, latent_figure

    codes, prior = torch.randn(100, 20), torch.randn(100, 20)
    codes[3, 2] = float("nan")
    fig = latent_figure(codes, prior)
    note = fig.texts[-1].get_text()
    assert "z17 to z20 not shown" in note and "1 codes left out: NaN or infinite" in note
    for args in ((codes.bfloat16(), prior.half()), (torch.zeros(50, 3), torch.randn(50, 3)), (codes * 1e30, prior)):
        assert _png(latent_figure(*args)).startswith("data:image/png")
    for bad, message in (
        ((torch.randn(10, 3), torch.randn(10, 4)), "3 coordinates, prior draws 4"),
        ((torch.zeros(0, 3), torch.randn(5, 3)), "no row"),
        ((torch.full((4, 2), float("nan")), torch.randn(4, 2)), "no row"),
        ((torch.randn(5), torch.randn(5)), r"expected a tensor \(n, d\)"),
    ):
        with pytest.raises(UserError, match=message):
            latent_figure(*bad)


def test_a_histograms_outline_rises_from_its_baseline_bin_by_bin():
    from wae.report import _steps

    got = _steps(np.array([0.0, 1.0, 3.0]), np.array([2.0, 0.5]), -1.0)
    assert got.tolist() == [[0, -1], [0, 2], [1, 2], [1, 0.5], [3, 0.5], [3, -1]]


def test_figure_titles_sit_above_their_axes_without_measuring_tick_labels(monkeypatch):
    # placed automatically, a title made matplotlib measure every tick label of its axes and their
    # twins on each draw (half the time of a short run's curves); each title is placed at a fixed
    # height now, which must still clear its axes (no tick labels at their top)
    from matplotlib.axis import Axis

    from wae.report import curves_figure, latent_figure

    measure, measured = Axis.get_tightbbox, []
    monkeypatch.setattr(Axis, "get_tightbbox", lambda axis, *a, **k: measured.append(axis) or measure(axis, *a, **k))
    records = [{"kind": "train", "step": s, "recon": 1.0 / s, "penalty": 0.1} for s in (1, 2, 3)]
    records += [{"kind": "eval", "epoch": 1, "step": 3, "test_recon_mse": 0.1, "test_mmd": 0.01, "fd_samples": 9.0}]
    torch.manual_seed(0)
    for fig, expected in (
        (curves_figure(records), ["training losses (per batch)", "test reconstruction error and MMD"]),
        (latent_figure(torch.randn(50, 4), torch.randn(50, 4)), ["coordinates 1 and 2", "top two principal axes"]),
    ):
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        canvas = FigureCanvasAgg(fig)
        measured.clear()
        canvas.draw()
        assert not measured  # no axis measured for a title
        renderer = canvas.get_renderer()
        titled = [ax for ax in fig.axes if ax.get_title()]
        for text in expected:
            assert any(ax.get_title().startswith(text) for ax in titled), text
        for ax in titled:
            assert ax.title.get_window_extent(renderer).y0 >= ax.get_window_extent(renderer).y1


def test_the_summary_lines_name_the_training_noises_that_are_on():
    # hostile pass, session 54: runs with and without noise on the codes had the same report
    # header and model card
    from wae.config import noise_words
    from wae.report import _config_line

    from .conftest import tiny_config

    line = _config_line(tiny_config(code_noise=0.5, input_noise=0.01).to_dict())
    assert "cost l1, input noise 0.01, code noise 0.5 σ_z, prior" in line
    assert "noise" not in _config_line(tiny_config().to_dict())
    assert noise_words(0.0, 0.25) == ", code noise 0.25 σ_z" and noise_words(0, 0) == ""
