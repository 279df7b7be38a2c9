"""A self-contained HTML report of a run, and a comparison of runs.

``write_report(run)`` writes ``RUN/report.html``: the metrics table (from ``metrics.json`` when
``wae evaluate`` has run, else the last per-epoch evaluation), loss and evaluation curves, the
sample / reconstruction / interpolation grids (and a conditional run's class-by-style grid), a
Q_Z-vs-P_Z scatter (first two coordinates and the top two principal axes of Q_Z) and
per-coordinate histograms. Every image is embedded as a
base64 PNG, so the file can be mailed or attached as it is. Plots are drawn with matplotlib's
Agg backend (no display needed).
"""

from __future__ import annotations

import base64
import html
import math
import shutil
import subprocess
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .checkpoint import (
    EPOCH_GRIDS,
    GRIDS,
    RECORDS,
    check_run_folder,
    epoch_grid,
    figure_bytes,
    fingerprint_entry,
    newest_checkpoint_step,
    read_config_json,
    read_json_object,
    weights_fingerprint,
    write_atomic,
)
from .config import Config, UserError, check_real, noise_words, one_line, warn_caller
from .evaluate import MAIN_METRICS, metric_text
from .train import read_jsonl

LOSS_KEYS = ("total", "recon", "penalty", "adversary", "logvar_l1")


def new_figure(**kwargs: Any) -> Any:
    """A matplotlib ``Figure(**kwargs)`` drawn off screen by the Agg renderer when saved, made
    outside pyplot: the caller's process keeps its backend (``matplotlib.use("Agg")`` once
    switched a notebook's) and nothing stays open (pyplot holds every figure until closed)."""
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def _png(fig: Any) -> str:
    """A matplotlib figure as a base64 PNG data URI."""
    # the figures lay themselves out with fixed margins: tight_layout and bbox_inches="tight"
    # each draw the whole figure once more (a third of a report's time, which every training
    # run ends with)
    return "data:image/png;base64," + base64.b64encode(figure_bytes(fig, dpi=100)).decode()


def _plot(make: Callable[[], Any], name: str) -> str:
    """The HTML of the figure ``make()`` draws, or a line saying why it could not be drawn: values
    matplotlib cannot lay out (a hand-edited record of 1e308: its tick locator fails), or codes
    of a diverged encoder (all NaN, or spanning beyond float64), leave the rest of the report
    standing. The line names the exception, so a fault of ours shows there too."""
    try:
        return f"<img class='plot' src='{_png(make())}' alt='{name}'>"
    except (ValueError, OverflowError, ArithmeticError, torch.linalg.LinAlgError) as err:
        said = str(err) if isinstance(err, UserError) else f"{type(err).__name__}: {err}"
        why = html.escape(one_line(said))
        return f"<p class='meta'>The {name} figure could not be drawn from these values ({why}).</p>"


def _file_png(path: Path) -> str | None:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode() if path.is_file() else None


def read_records(run: Path) -> list[dict[str, Any]]:
    """The records of ``RUN/metrics.jsonl`` (a partial last line is ignored); training and
    evaluation records edited by hand (a value that is not a number, a key left out) are
    skipped with one warning that counts them."""
    # null is how an undefined figure (NaN: a tiny test split) is written; read it back as NaN
    records = [
        {k: math.nan if v is None else v for k, v in r.items()} if isinstance(r, dict) else r
        for r in read_jsonl(run / RECORDS)
    ]
    kept = [r for r in records if well_formed(r)]
    if len(kept) < len(records):
        warnings.warn(
            f"skipped {len(records) - len(kept)} record(s) of {run / 'metrics.jsonl'} with missing or non-numeric "
            "values",
            stacklevel=1,  # one warning however many readers of the file
        )
    return kept


MAX_POSITION = 2**53  # the largest step or epoch a record may give (every integer to it is a float)
# the keys that the report and the comparison read from each kind of record
REQUIRED_KEYS = {"train": ("step",), "eval": ("step", "epoch", "test_recon_mse", "test_mmd")}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def well_formed(record: dict[str, Any]) -> bool:
    """Whether a training or evaluation record has its keys and numbers only, with a step and
    epoch in [0, 2^53] (other kinds of record are not read, so they pass)."""
    kind = record.get("kind")
    if not isinstance(kind, str):  # a list or an object once failed as unhashable
        return "kind" not in record
    if kind not in REQUIRED_KEYS:
        return True
    if not all(k in record for k in REQUIRED_KEYS[kind]) or not all(
        _is_number(v) for k, v in record.items() if k != "kind"
    ):
        return False
    # a figure may be NaN (undefined: a tiny test split), a position may not (int(nan) fails),
    # nor lie before or beyond any run (an epoch of 1e300 once printed as 301 digits; -2 as "epoch -2")
    return all(math.isfinite(record[k]) and 0 <= record[k] <= MAX_POSITION for k in ("step", "epoch") if k in record)


def read_evaluation(path: Path, weights: str | None = None) -> tuple[dict[str, float] | None, bool]:
    """A ``metrics*.json`` of ``wae evaluate``, read once: its numbers (None, with a warning at
    the caller's line, when it is not a JSON object; other values than numbers are left out),
    and whether it is stale: not known to be of the weights with fingerprint ``weights`` (never
    when ``weights`` is None). A file that records no fingerprint is stale too (edited, or
    written before fingerprints: after a damaged newest checkpoint it may be of that one;
    training removes such files as well, ``train.drop_stale_grids``). The rule for readers: any
    JSON object is read (its stale or foreign figures are then passed over); the rule for what
    a command may remove or replace is stricter, :func:`wae.checkpoint.evaluation_of`."""
    loaded = read_json_object(path)  # None for a FIFO too, which would block
    if loaded is None:
        warn_caller(f"{path} is not a JSON object of metrics; not used")
        return None, False
    metrics = {k: float(v) for k, v in loaded.items() if _is_number(v)}
    return metrics, weights is not None and fingerprint_entry(loaded) != weights  # DAMAGED, None: not these


def read_run_config(run: Path) -> dict[str, Any]:
    """``RUN/config.json`` as a dict, checked as a stored config is (types, ranges); a one-line
    :class:`UserError` when it is missing, cannot be read, is not UTF-8 JSON or not a valid config
    (:func:`wae.checkpoint.read_config_json`)."""
    check_run_folder(run)
    return read_config_json(run / "config.json")[0]


def saved_records(
    run: Path, records: list[dict[str, Any]] | None = None, step: int | None = None
) -> list[dict[str, Any]]:
    """The training and evaluation records of ``run`` (of ``records`` when given, else of its
    metrics.jsonl) of weights the run still has: those at or before ``step``, the step of the
    checkpoint a command loaded, else of the newest checkpoint by file name (all records when
    the run has none). A record after it was written by a process that died before it saved
    those weights (``--resume`` drops such records), or by hand. Other kinds are kept."""
    records = read_records(run) if records is None else records
    saved = newest_checkpoint_step(run) if step is None else step
    if saved is None:
        return records
    return [r for r in records if r.get("kind") not in REQUIRED_KEYS or r["step"] <= saved]


def saved_evals(
    run: Path, records: list[dict[str, Any]] | None = None, step: int | None = None
) -> list[dict[str, Any]]:
    """The per-epoch evaluation records among :func:`saved_records`."""
    return [r for r in saved_records(run, records, step) if r.get("kind") == "eval"]


FROM_EVALUATE = "wae evaluate (metrics.json)"


def metrics_and_source(
    run: Path,
    weights: str | None = None,
    step: int | None = None,
    evals: list[dict[str, Any]] | None = None,
    evaluation: tuple[dict[str, float] | None, bool] | None = None,
) -> tuple[dict[str, float], str]:
    """``RUN/metrics.json`` if ``wae evaluate`` wrote it, else the last per-epoch evaluation of
    weights the run has (``evals`` when the caller has read them, else :func:`saved_evals` at or
    before ``step``), and where they come from, in words (:data:`FROM_EVALUATE` for the file).
    With ``weights`` (the fingerprint of the run's checkpoint), a metrics.json that records
    other weights (the checkpoint was replaced since) is passed over, and the words say so.
    ``evaluation``: what :func:`read_evaluation` gave for metrics.json, when the caller has read it."""
    path = run / "metrics.json"
    if evaluation is None:
        evaluation = read_evaluation(path, weights) if path.is_file() else (None, False)
    metrics, stale = evaluation
    if metrics is not None and not stale:
        return metrics, FROM_EVALUATE
    passed = ""
    if metrics is not None:
        passed = " (metrics.json is of other weights, or records none: run wae evaluate again)"
    evals = saved_evals(run, step=step) if evals is None else evals
    if not evals:
        return {}, f"no evaluation of these weights yet{passed}: run wae evaluate"
    return {k: v for k, v in evals[-1].items() if k != "kind"}, f"the last per-epoch evaluation{passed}"


def _title(ax: Any, text: str) -> None:
    """``ax.set_title(text)`` at a fixed height: placed automatically, matplotlib measures every
    tick label of the axes and its twins on each draw to clear labels at the top (half the curves
    figure's time); these figures have none there."""
    ax.set_title(text, y=1.0)


def curves_figure(records: list[dict[str, Any]]) -> Any:
    """Training loss parts against step; per-epoch test reconstruction error, MMD and (when
    measured) sample Fréchet distance against epoch."""
    train = [r for r in records if r.get("kind") == "train"]
    evals = [r for r in records if r.get("kind") == "eval"]
    fig = new_figure(figsize=(15, 3.6))
    axes = fig.subplots(1, 3)
    fig.subplots_adjust(left=0.05, right=0.97, top=0.9, bottom=0.14, wspace=0.45)
    for key in LOSS_KEYS:
        points = [(r["step"], r[key]) for r in train if key in r]
        if points:
            steps, values = zip(*points, strict=True)
            axes[0].plot(steps, values, label=key, lw=1)
    axes[0].set(xlabel="step")
    _title(axes[0], "training losses (per batch)")
    if any(r.get(k, 0) <= 0 for r in train for k in LOSS_KEYS if k in r):
        axes[0].set_yscale("symlog", linthresh=1e-3)
    else:
        axes[0].set_yscale("log")
    if axes[0].get_lines():
        axes[0].legend(fontsize=8)
    else:  # a run shorter than log_every steps writes no training line
        axes[0].text(
            0.5,
            0.5,
            "no training losses logged\n(fewer steps than log_every)",
            ha="center",
            transform=axes[0].transAxes,
        )
        axes[0].set(xticks=[], yticks=[])
        axes[0].minorticks_off()
    epochs = [r["epoch"] for r in evals]
    axes[1].plot(epochs, [r["test_recon_mse"] for r in evals], "o-", label="test recon MSE / pixel")
    axes[1].set(xlabel="epoch")
    _title(axes[1], "test reconstruction error and MMD")
    axes[1].set_ylabel("recon MSE / pixel", color="tab:blue")
    twin = axes[1].twinx()
    twin.plot(epochs, [r["test_mmd"] for r in evals], "s--", color="tab:red", label="MMD²(Q_Z, P_Z)")
    twin.set_ylabel("MMD²(Q_Z, P_Z)", color="tab:red")
    fd = [(r["epoch"], r["fd_samples"]) for r in evals if "fd_samples" in r]
    if fd:
        axes[2].plot(*zip(*fd, strict=True), "o-", color="tab:green")
        axes[2].set(xlabel="epoch", yscale="log")
        _title(axes[2], "sample Fréchet distance (classifier features)")
    else:
        axes[2].axis("off")
        axes[2].text(0.5, 0.5, "no sample scores\n(--eval-every 0 or not 28x28 grey data)", ha="center")
    from matplotlib.ticker import MaxNLocator

    for ax in (axes[1], axes[2]):  # epochs are whole numbers: no 1.2, 1.4, ... on a short run
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in (axes[0], axes[2]):  # log axes labelled 0.01, 1e-05, 50 in plain text: the default
        if ax.get_yscale() != "linear":  # typesets each label as TeX (10 with a raised exponent,
            plain_log_labels(ax.yaxis)  # 5 x 10 with one), a third of the figure's time
    if not evals:
        axes[1].text(0.5, 0.5, "no evaluation yet", ha="center", transform=axes[1].transAxes)
        axes[1].set(xticks=[], yticks=[])
        twin.set(yticks=[])
    return fig


def plain_log_labels(axis: Any) -> None:
    """Label the major and minor ticks of a log or symlog matplotlib ``axis`` in plain text
    (0.01, 1e-05, 55): the default formatter typesets each label as TeX (10 with a raised
    exponent), which takes most of the time of a small figure's labels. matplotlib's own
    ``LogFormatter`` drops the sign of negative values on a symlog axis (-0.001 labelled
    "1e-03") and gives one significant digit to ticks off the decades (-2.105e-5 labelled
    "2e-05"): these keep the sign, and a label that does not read back as its tick within
    0.1 % is written with four significant digits."""
    axis.set_major_formatter(_plain_log_formatter())
    axis.set_minor_formatter(_plain_log_formatter())


def _plain_log_formatter() -> Any:
    from matplotlib.ticker import LogFormatter

    class SignedLogFormatter(LogFormatter):
        def __call__(self, x: float, pos: int | None = None) -> str:
            text = super().__call__(x, pos)
            try:  # one significant digit ("2e-05") for a tick off the decades (-2.105e-5 in a
                shown = float(text.replace("\N{MINUS SIGN}", "-"))  # symlog's linear band)
            except ValueError:
                shown = None
            if shown is not None and x != 0 and abs(shown - abs(x)) > 1e-3 * abs(x):  # "" is None
                text = self.fix_minus(f"{abs(x):.4g}")
            return "\N{MINUS SIGN}" + text if x < 0 and text else text

    return SignedLogFormatter()


def principal_axes(codes: Tensor, k: int = 2) -> Tensor:
    """The top ``k`` principal directions (d, k), float64, of codes (n, d): found in float64 and
    at a scale of about 1 (they do not depend on it), so finite codes near float32's largest do
    not overflow when centred."""
    x = codes.double()
    scale = float(x.abs().max())
    x = x / scale if scale > 0 else x  # first: the mean of values near 1.8e308 overflows
    _, _, vt = torch.linalg.svd(x - x.mean(0), full_matrices=False)
    return vt[:k].T


def latent_figure(codes: Tensor, prior: Tensor) -> Any:
    """Q_Z (test codes (n, d)) against P_Z (prior draws (m, d)): scatter plots of coordinates
    1-2 and of the top-2 principal axes of Q_Z (for d >= 2), and a histogram per coordinate (up
    to 16, each on its own range, in rows of 8). The histograms share one panel: 16 panels of
    their own took two thirds of the figure's time, which every training run's report pays.
    Rows with NaN or infinite values are left out (the figure says how many); :class:`UserError`
    for tensors that are not (n, d) and (m, d) of one d, or with no finite row."""
    (codes, codes_out), (prior, prior_out) = _finite_rows(codes, "codes"), _finite_rows(prior, "prior draws")
    if codes.shape[1] != prior.shape[1]:
        raise UserError(f"codes have {codes.shape[1]} coordinates, prior draws {prior.shape[1]}")
    d = codes.shape[1]
    shown = min(d, 16)
    cols, slot, gap, row_height = 8, 1.0, 0.2, 1.7
    rows = (shown + cols - 1) // cols
    strip_inches = 0.5 + 1.5 * rows
    scatter_inches = 5.0 if d >= 2 else 0.0
    height = strip_inches + scatter_inches
    used = min(shown, cols)  # slots in the widest row
    # without the scatter plots (d = 1) the figure is as wide as its histograms
    fig = new_figure(figsize=(15 if d >= 2 else max(4.0, 15 * used / cols), height))
    if d >= 2:
        bottom = (strip_inches + 0.5) / height
        top = 1 - 0.35 / height
        scatter_a = fig.add_axes((0.04, bottom, 0.42, top - bottom))
        scatter_b = fig.add_axes((0.55, bottom, 0.42, top - bottom))
        axes = principal_axes(codes)
        views = [(scatter_a, codes[:, :2], prior[:, :2], "coordinates 1 and 2")]
        views.append((scatter_b, codes @ axes, prior @ axes, "top two principal axes of Q_Z"))  # all float64
        for ax, q, p, title in views:
            if q.shape[1] < 2:  # one test code has one principal axis
                ax.axis("off")
                continue
            ax.scatter(p[:, 0], p[:, 1], s=3, alpha=0.3, color="tab:gray", label="P_Z (prior)")
            ax.scatter(q[:, 0], q[:, 1], s=3, alpha=0.4, color="tab:blue", label="Q_Z (test codes)")
            ax.set(aspect="equal")
            _title(ax, title)
            ax.legend(markerscale=4, fontsize=8, loc="upper right")
    hist = fig.add_axes((0.01, 0.1 / height, 0.98, (strip_inches - 0.2) / height))
    zeros, fills, outlines = [], [], []
    for j in range(shown):
        row, col = divmod(j, cols)
        x0, y0 = col * (slot + gap), (rows - 1 - row) * row_height
        lo = float(min(codes[:, j].min(), prior[:, j].min()))
        hi = float(max(codes[:, j].max(), prior[:, j].max()))
        hi = hi if hi > lo else lo + max(1.0, abs(lo))  # a constant coordinate (lo + 1 is lo at 1e30)
        if not math.isfinite(hi - lo):
            raise UserError(
                f"coordinate {j + 1} of the codes spans beyond float64 ({lo:.3g} to {hi:.3g}): no histogram"
            )
        bins = np.linspace(lo, hi, 40)
        p_density = np.histogram(prior[:, j].numpy(), bins, density=True)[0]
        q_density = np.histogram(codes[:, j].numpy(), bins, density=True)[0]
        scale = max(float(p_density.max()), float(q_density.max()), 1e-12)
        edges = x0 + slot * (bins - lo) / (hi - lo)
        fills.append(_steps(edges, y0 + p_density / scale, y0))
        outlines.append(_steps(edges, y0 + q_density / scale, y0))
        variance = codes[:, j].double().var() if len(codes) > 1 else float("nan")  # one code: undefined
        hist.text(x0 + slot / 2, y0 + 1.05, f"z{j + 1}: mean {codes[:, j].mean():.3g}, var {variance:.3g}",
                  ha="center", fontsize=8)  # fmt: skip
        hist.text(x0, y0 - 0.04, f"{lo:.3g}", ha="left", va="top", fontsize=7)
        hist.text(x0 + slot, y0 - 0.04, f"{hi:.3g}", ha="right", va="top", fontsize=7)
        if lo < 0 < hi:
            zeros.append((x0 + slot * -lo / (hi - lo), y0))
    # one collection each: a patch per histogram (Axes.stairs) updated the data limits, which
    # are set below, and took a fifth of the figure's time
    from matplotlib.collections import LineCollection, PolyCollection

    hist.add_collection(
        PolyCollection(fills, facecolors="tab:gray", edgecolors="none", alpha=0.5, label="P_Z"), autolim=False
    )
    hist.add_collection(
        LineCollection(outlines, colors="tab:blue", alpha=0.6, linewidths=1.5, label="Q_Z"), autolim=False
    )
    if zeros:  # a tick at 0 on each axis that spans it
        hist.vlines([x for x, _ in zeros], [y - 0.06 for _, y in zeros], [y for _, y in zeros], color="k", lw=0.8)
    starts = [(j % cols * (slot + gap), (rows - 1 - j // cols) * row_height) for j in range(shown)]
    hist.hlines([y for _, y in starts], [x for x, _ in starts], [x + slot for x, _ in starts], color="k", lw=0.5)
    width = (cols if d >= 2 else used) * (slot + gap) - gap
    hist.set(xlim=(-0.05, width + 0.05), ylim=(-0.3, rows * row_height - 0.45))
    hist.set_axis_off()
    if d < 2:
        hist.legend(loc="upper right", fontsize=8)
    notes = [f"z{shown + 1} to z{d} not shown (the first {shown} of {d} coordinates)"] if d > shown else []
    notes += [
        f"{n} {name} left out: NaN or infinite" for name, n in (("codes", codes_out), ("prior draws", prior_out)) if n
    ]
    if notes:
        fig.text(0.99, 0.005, "; ".join(notes), ha="right", va="bottom", fontsize=8, color="0.3")
    return fig


def _steps(edges: np.ndarray, tops: np.ndarray, base: float) -> np.ndarray:
    """The outline (2 k + 2, 2) of a histogram of k bins on ``edges`` (k + 1,) with bar tops
    ``tops`` (k,), from ``base`` up and back down to it (as ``Axes.stairs`` draws it)."""
    ys = np.concatenate([[base], np.repeat(tops, 2), [base]])
    return np.column_stack([np.repeat(edges, 2), ys])


def _finite_rows(values: Tensor, name: str) -> tuple[Tensor, int]:
    """``values`` (n, d) as float64 on the CPU (float32 made finite rows of 1e300 infinite)
    without its rows holding NaN or infinities, and how many rows were left out;
    :class:`UserError` for what is not a real tensor (n, d)."""
    check_real((values,), f"{name}: expected a real torch tensor (n, d)")
    if values.ndim != 2 or values.shape[1] < 1:
        raise UserError(f"{name}: expected a tensor (n, d); got {tuple(values.shape)}")
    values = values.detach().double().cpu()
    finite = torch.isfinite(values).all(1)
    if not finite.any():
        raise UserError(f"{name}: no row without NaN or infinite values")
    return values[finite], int((~finite).sum())


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def metrics_rows(metrics: dict[str, float]) -> list[tuple[str, str]]:
    """(label, value) of the headline figures present, then class fractions if any."""
    rows = [(label, html.escape(metric_text(metrics, key))) for key, label in MAIN_METRICS if key in metrics]
    fractions = [metrics.get(f"class_{c}_fraction") for c in range(10)]
    if all(f is not None for f in fractions):
        rows.append(("predicted classes of samples (0-9, %)", " ".join(f"{100 * f:.0f}" for f in fractions if f)))
    return rows


def column_rows(run: Path, metrics: dict[str, float]) -> list[str]:
    """The HTML table of a table run's columns: name, training mean and standard deviation, and
    the W1 distance of the samples' marginal to the test rows' (standardised units)."""
    from .tables import standardiser_of

    standardiser = standardiser_of(run)
    rows = [
        "<h2>Columns</h2><p class='meta'>W1: Wasserstein-1 distance between the marginals of samples and "
        "test rows, in training standard deviations; constant columns were dropped and are put back in "
        "samples.</p><table><tr><th>column</th><th>training mean</th><th>training std</th><th>W1</th></tr>"
    ]
    for j, index in enumerate(standardiser.kept):
        name = html.escape(standardiser.columns[index])
        mean, std, w1 = standardiser.mean[j], standardiser.std[j], metrics.get(f"w1_{j}")
        rows.append(
            f"<tr><td>{name}</td><td class='num'>{mean:.4g}</td><td class='num'>{std:.4g}</td>"
            f"<td class='num'>{_format(w1) if w1 is not None else ''}</td></tr>"
        )
    for index, value in sorted(standardiser.constants.items()):
        name = html.escape(standardiser.columns[index])
        rows.append(f"<tr><td>{name}</td><td class='num'>{value:.4g}</td><td>constant</td><td></td></tr>")
    rows.append("</table>")
    return rows


CSS = """
body { font-family: system-ui, sans-serif; margin: 24px auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
.meta { color: #555; font-size: 0.9em; }
table { border-collapse: collapse; font-size: 0.92em; }
td, th { border-bottom: 1px solid #ddd; padding: 4px 12px; text-align: left; }
td.num { font-variant-numeric: tabular-nums; text-align: right; }
.grids { display: flex; gap: 18px; flex-wrap: wrap; align-items: flex-start; }
.grids figure { margin: 0; } figcaption { font-size: 0.85em; color: #555; }
img.plot { max-width: 100%; } img.grid { image-rendering: pixelated; width: 370px; }
"""


def _mixture_words(loss: dict[str, Any], model: dict[str, Any]) -> str:
    """A mixture prior's K (not set: min(10, d_z)) and r, as read from a config.json."""
    if loss.get("prior") != "mixture":
        return ""
    k, d = loss.get("prior_components"), model.get("latent_dim")
    k = k if k is not None else (min(10, d) if isinstance(d, int) else "?")
    return f" (K = {k}, r = {loss.get('prior_separation')})"


def _config_line(cfg: dict[str, Any]) -> str:
    m, loss, t = cfg.get("model", {}), cfg.get("loss", {}), cfg.get("train", {})
    parts = [
        f"preset {cfg.get('preset')}",
        f"objective {loss.get('objective')}",
        f"architecture {m.get('arch')}",
        f"d_z = {m.get('latent_dim')}",
        f"λ = {loss.get('lam')}",
        f"cost {loss.get('cost')}" + noise_words(loss.get("input_noise"), loss.get("code_noise")),
        f"prior {loss.get('prior')}" + _mixture_words(loss, m),
        f"batch {t.get('batch_size')}",
        f"{t.get('epochs')} epochs",
        f"precision {t.get('precision')}",
        f"seed {t.get('seed')}",
    ]
    return ", ".join(html.escape(str(p)) for p in parts)


def _stale_sampler(path: Path, kind: str, weights: str) -> bool:
    from .samplers import is_stale

    try:
        return is_stale(path, kind, weights)
    except UserError:  # a damaged sampler file: its grid is left out too
        return True


@torch.no_grad()
def latent_codes(
    model: Any, cfg: Config, n: int = 2000, seed: int = 0, progress: bool | None = None
) -> tuple[Tensor, Tensor]:
    """Codes of ``n`` random test images (Q_Z) and ``n`` prior draws (P_Z) of a run's model
    (as :func:`wae.train.load_model` gives it, with its config); ``progress``: the bar of an
    image folder's first conversion (None: on a terminal)."""
    from .evaluate import encode_all
    from .runs import load_data

    data = load_data(cfg.data, progress)  # refused when the run's data changed
    generator = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(data.test), generator=generator)[:n]
    labels = data.test_labels[pick] if model.classes and data.test_labels is not None else None
    codes = encode_all(model, data.test[pick], cfg.data.range, labels=labels)
    return codes, model.prior_sample(len(codes), generator)


def _classes_caption(class_names: tuple[str, ...]) -> str:
    """The caption of a conditional run's class-by-style grid, naming its rows' classes."""
    from .train import MAX_GRID_CLASSES

    names = class_names[:MAX_GRID_CLASSES]
    rows = ", ".join(html.escape(name) for name in names) if names else "the classes"
    return f"classes by style (rows, top to bottom: {rows}; columns: the same codes z)"


def _grid_files(
    run: Path, everything: list[dict[str, Any]], saved: list[dict[str, Any]], step: int | None
) -> dict[str, Path | None]:
    """Where the report takes each per-evaluation grid from when the grids at the top of the run
    folder were (or may have been) drawn from other weights than the checkpoint read at
    ``step``: an evaluation record is later (``everything``: a process killed after drawing them,
    before saving the checkpoint), or a newer checkpoint was passed over (damaged; its record may
    be unreadable too). Then the copy in ``grids/`` of the
    evaluation at ``step`` when it was the last of its epoch (the copies are named by epoch),
    else None (left out). Empty when neither is so (the top grids are of the weights read), or
    the step is not known."""
    evals = [r for r in everything if r.get("kind") == "eval"]
    newest = newest_checkpoint_step(run)  # by name: a damaged newer one was passed over
    later = bool(evals) and evals[-1]["step"] > step if step is not None else False
    if step is None or not (later or (newest is not None and newest > step)):
        return {}  # the top grids are of the weights read (a damaged record alone says nothing)
    mine = [r for r in saved if r.get("kind") == "eval" and r["step"] == step]
    epoch = int(mine[-1]["epoch"]) if mine else None
    # a copy is named by epoch: the last evaluation of that epoch drew it (a run stopped within an
    # epoch evaluates twice in it), which must be the checkpoint read
    drawn_last = [r for r in evals if int(r["epoch"]) == epoch][-1:] if epoch is not None else []
    files: dict[str, Path | None] = {}
    for name in EPOCH_GRIDS:
        copy = (
            epoch_grid(run, name, epoch) if epoch is not None and drawn_last and drawn_last[0]["step"] == step else None
        )
        files[f"{name}.png"] = copy if copy is not None and copy.is_file() else None
    return files


def render_report(run: Path, progress: bool | None = None) -> str:
    """The HTML text of a run's report (see the module docstring)."""
    from .samplers import SAMPLER_FILES
    from .train import load_run

    cfg = read_run_config(run)
    loaded = load_run(run)
    model = loaded.model
    everything = read_records(run)
    records = saved_records(run, everything, loaded.step)  # of the weights loaded, not a damaged newer checkpoint's
    drawn = _grid_files(run, everything, records, loaded.step)
    weights = weights_fingerprint(model)  # figures of other weights are left out
    metrics, source = metrics_and_source(run, weights, evals=[r for r in records if r.get("kind") == "eval"])
    codes, prior = latent_codes(model, loaded.config, progress=progress)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>wae report: {html.escape(run.name)}</title><style>{CSS}</style></head><body>",
        f"<h1>{html.escape(run.name)}</h1>",
        f"<p class='meta'>{_config_line(cfg)}<br>{html.escape(str(run.resolve()))}</p>",
        f"<h2>Metrics</h2><p class='meta'>from {source}; docs/evaluation.md defines each.</p><table>",
    ]
    parts += [f"<tr><td>{label}</td><td class='num'>{value}</td></tr>" for label, value in metrics_rows(metrics)]
    parts.append("</table>")
    grids = [
        ("samples.png", "samples G(z), z ~ P_Z (fixed codes)"),
        ("samples-gmm.png", "samples G(z), z from the Gaussian mixture fitted to Q_Z (wae fit-sampler)"),
        ("samples-flow.png", "samples G(z), z from the spline flow fitted to Q_Z (wae fit-sampler)"),
        ("samples-vae.png", "samples G(z), z from the second-stage VAE fitted to Q_Z (wae fit-sampler)"),
        ("reconstructions.png", "test images (odd rows) and their reconstructions"),
        ("interpolations.png", "decoded straight lines between the codes of test images"),
        ("classes.png", "conditional runs: classes by style (rows: the classes; columns: the same codes z)"),
    ]
    if cfg.get("data", {}).get("dataset") == "table":  # no images: the columns' figures instead
        parts += column_rows(run, metrics)
    else:
        parts.append("<h2>Images</h2><div class='grids'>")
        for name, caption in grids:
            kind = name.removeprefix("samples-").removesuffix(".png")
            sampler = run / SAMPLER_FILES[kind] if kind in SAMPLER_FILES else None
            if sampler is not None and (run / name).is_file():
                if not sampler.is_file():
                    parts.append(f"<p class='meta'>{name} left out: its sampler file is missing.</p>")
                    continue
                if _stale_sampler(sampler, kind, weights):
                    parts.append(f"<p class='meta'>{name} left out: its sampler was fitted to other weights.</p>")
                    continue
            path = drawn.get(name, run / name)
            if path is None:
                if (run / name).is_file():
                    parts.append(
                        f"<p class='meta'>{name} left out: it was drawn from newer weights than the checkpoint "
                        "read.</p>"
                    )
                continue
            uri = _file_png(path)
            if uri and name == "classes.png":
                caption = _classes_caption(loaded.class_names)
            if uri and path.parent.name == GRIDS:
                caption += f" (grids/{html.escape(path.name)}: of the checkpoint read)"
            if uri:
                parts.append(
                    f"<figure><img class='grid' src='{uri}' alt='{name}'><figcaption>{caption}</figcaption></figure>"
                )
        parts.append("</div>")
    if records:
        parts.append(f"<h2>Curves</h2>{_plot(lambda: curves_figure(records), 'curves')}")
    parts.append(
        f"<h2>Latent space: Q_Z (blue, {len(codes):,} test codes) against P_Z (grey, prior draws)</h2>"
        + _plot(lambda: latent_figure(codes, prior), "latent space")
    )
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_report(run: str | Path, out: str | Path | None = None, progress: bool | None = None) -> Path:
    """Write the report of ``run`` to ``out`` (default ``RUN/report.html``), atomically;
    ``progress``: the bar of a first conversion of the run's image folder (None: on a terminal)."""
    run = Path(run)
    target = Path(out) if out is not None else run / "report.html"
    text = render_report(run, progress)
    try:
        write_atomic(target, text)
    except OSError as err:
        raise UserError(f"cannot write {target}: {err.strerror}") from None
    return target


def chromium() -> str | None:
    """Path of a Chromium executable, if one is installed."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def screenshot(page: Path, png: Path, width: int = 1280, height: int = 2400) -> None:
    """Render an HTML file to a PNG in headless Chromium (offline flags, a fresh profile)."""
    import tempfile

    browser = chromium()
    if browser is None:
        raise UserError("no Chromium found (Debian: apt-get install chromium)")
    with tempfile.TemporaryDirectory() as profile:
        command = [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            f"--screenshot={Path(profile) / 'shot.png'}",
            page.resolve().as_uri(),
        ]
        subprocess.run(command, check=True, capture_output=True, timeout=120)
        write_atomic(png, (Path(profile) / "shot.png").read_bytes())
