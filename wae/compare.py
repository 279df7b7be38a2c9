"""``wae compare``: one table and one figure across runs, like the paper's comparison figures;
``wae runs``: one line per run folder.

The table takes each run's ``metrics.json`` (``wae evaluate``) when present, else its last
per-epoch evaluation, and adds a row for each ex-post sampler evaluated
(``metrics-gmm.json``: ``wae evaluate --sampler gmm``). The figure shows, per run, prior
samples from the same seeded draw, reconstructions of the same test images, and interpolations
between the same pairs.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from .checkpoint import figure_bytes, has_config, remove_partial, run_checkpoints, weights_fingerprint, write_atomic
from .config import UserError, also_as, cut_text, failure_reason, markdown_text, one_line, repeated, warn_caller
from .data import to_model_range, to_unit_range
from .evaluate import balanced_labels
from .export import is_export
from .images import grid
from .report import (
    FROM_EVALUATE,
    metrics_and_source,
    new_figure,
    read_evaluation,
    read_run_config,
    saved_records,
)
from .runs import load_data

if TYPE_CHECKING:
    from .train import LoadedRun

# (metrics key, column title, format)
COLUMNS = [
    ("fid", "FID ↓", "{:.2f}"),
    ("kid", "KID ↓ (± std)", "{:.4f}"),
    ("fd_samples", "fast FD ↓", "{:.2f}"),
    ("precision", "precision ↑", "{:.3f}"),
    ("recall", "recall ↑", "{:.3f}"),
    ("sharpness_samples", "sharpness samples", "{:.4f}"),
    ("sharpness_reconstructions", "sharpness recon.", "{:.4f}"),
    ("test_recon_mse", "test MSE / pixel ↓", "{:.4f}"),
    ("test_mmd", "MMD² Q_Z,P_Z ↓", "{:.4f}"),
    ("class_kl_to_uniform", "class KL ↓", "{:.3f}"),
]
# the columns of runs trained on tables (no images: no figure either)
TABLE_COLUMNS = [
    ("w1_mean", "W1 mean ↓", "{:.4f}"),
    ("corr_error_rms", "corr. error RMS ↓", "{:.4f}"),
    ("c2st_auc", "C2ST AUC (0.5 best)", "{:.3f}"),
    ("data_mmd", "MMD² data ↓", "{:.4f}"),
    ("test_recon_mse", "test MSE / entry ↓", "{:.4f}"),
    ("test_mmd", "MMD² Q_Z,P_Z ↓", "{:.4f}"),
]


def run_summary(run: Path, step: int | None = None, weights: str | None = None) -> dict[str, Any]:
    """Name, objective, budget and metrics of a run folder, of the weights of its checkpoint at
    ``step`` (the one a caller loaded; default: the newest by file name). With ``weights`` (the
    fingerprint of those weights), a ``metrics.json`` or ``metrics-KIND.json`` of other weights
    is left out (:func:`wae.report.metrics_and_source`)."""
    cfg = read_run_config(run)
    records = saved_records(run, step=step)
    train = [r for r in records if r.get("kind") == "train"]
    speeds = [r["images_per_s"] for r in train if "images_per_s" in r]
    evals = [r for r in records if r.get("kind") == "eval"]
    samplers: dict[str, dict[str, float]] = {}
    main: tuple[dict[str, float] | None, bool] = (None, False)
    for path in [run / "metrics.json", *sorted(run.glob("metrics-*.json"))]:
        metrics, stale = read_evaluation(path, weights) if path.exists() else (None, False)  # a FIFO: said, not read
        if stale:
            warn_caller(f"{path} is of other weights than the checkpoint read, or records none: left out")
        if path.name == "metrics.json":
            main = (metrics, stale)
        elif metrics is not None and not stale:
            samplers[path.stem.removeprefix("metrics-")] = metrics
    return {
        "name": run.name,
        "objective": cfg["loss"]["objective"],
        "arch": cfg["model"]["arch"],
        "epochs": evals[-1]["epoch"] if evals else 0,
        "steps": evals[-1]["step"] if evals else 0,
        "images_per_s": sum(speeds) / len(speeds) if speeds else float("nan"),
        "metrics": metrics_and_source(run, weights, evals=evals, evaluation=main)[0],
        "samplers": samplers,
    }


def _is_finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _cell(fmt: str, metrics: dict[str, Any], key: str) -> str:
    """A table cell: the number, or "–" when it is missing or undefined (null, NaN); a figure
    with a spread (``kid`` and ``kid_std``) as "value ± std"."""
    value, spread = metrics.get(key), metrics.get(f"{key}_std")
    if not _is_finite(value):
        return "–"
    return fmt.format(value) + (f" ± {fmt.format(spread)}" if _is_finite(spread) else "")


def table_cell(text: object) -> str:
    """``text`` as a Markdown table cell on one line that renders as the text itself
    (:func:`wae.config.markdown_text`; "|", which would end the cell, as "\\|")."""
    return markdown_text(text)


def table(summaries: list[dict[str, Any]], columns: list[tuple[str, str, str]] | None = None) -> str:
    """A Markdown table, one row per run, of ``columns`` (default: the image runs')."""
    columns = COLUMNS if columns is None else columns
    head = ["run", "objective", "sampler", "net", "epochs"] + [title for _, title, _ in columns] + ["train img/s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in summaries:
        for sampler, metrics in [("prior", s["metrics"]), *s.get("samplers", {}).items()]:
            cells = [s["name"], s["objective"], sampler, s["arch"], str(s["epochs"])]
            cells += [_cell(fmt, metrics, key) for key, _, fmt in columns]
            cells.append(f"{s['images_per_s']:.0f}" if _is_finite(s["images_per_s"]) else "–")
            lines.append("| " + " | ".join(table_cell(cell) for cell in cells) + " |")
    return "\n".join(lines) + "\n"


@torch.no_grad()
def run_images(
    run: Path, seed: int = 0, loaded: LoadedRun | None = None, progress: bool | None = None
) -> dict[str, Tensor]:
    """Samples (24), test reconstructions (8 originals then their 8 reconstructions) and two
    interpolations of 8 steps from a run's model (``loaded``, when the caller has read it with
    :func:`wae.train.load_run`), all in [0, 1]; the same codes and test images for every run
    with the same seed, latent size and dataset. ``progress``: the bar of a first conversion of
    the run's image folder (None: on a terminal)."""
    from .train import load_run

    loaded = load_run(run) if loaded is None else loaded
    model, cfg = loaded.model, loaded.config
    data = load_data(cfg.data, progress)  # refused when the run's data changed
    generator = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(data.test), generator=generator)[:12]
    # a conditional run: samples of the classes in turn, test images with their own labels
    y = data.test_labels[pick] if model.classes and data.test_labels is not None else None
    samples = model.sample(24, generator, labels=balanced_labels(24, model.classes) if model.classes else None)
    x = to_model_range(data.test[pick[:8]], cfg.data.range)
    recon = torch.cat([x, model.reconstruct(x, y[:8] if y is not None else None)])
    a = to_model_range(data.test[pick[8:10]], cfg.data.range)
    b = to_model_range(data.test[pick[10:12]], cfg.data.range)
    ya, yb = (y[8:10], y[10:12]) if y is not None else (None, None)
    interp = model.interpolate(a, b, 8, ya, yb).flatten(0, 1)
    drawn = (("samples", samples), ("recon", recon), ("interp", interp))
    return {k: to_unit_range(v, cfg.data.range) for k, v in drawn}


def figure(images_of_runs: list[dict[str, Tensor]], summaries: list[dict[str, Any]]) -> Any:
    """One row per run (images from :func:`run_images`, ``summaries`` from :func:`run_summary`):
    samples, reconstructions (originals above), interpolations."""
    fig = new_figure(figsize=(15, 2.3 * len(summaries) + 0.4))
    axes = fig.subplots(len(summaries), 3, squeeze=False)
    titles = ["samples G(z), z ~ P_Z", "test images (top) and reconstructions", "interpolations in Z"]
    for row, (images, summary) in enumerate(zip(images_of_runs, summaries, strict=True)):
        panels = [grid(images["samples"], 8), grid(images["recon"], 8), grid(images["interp"], 8)]
        for col, panel in enumerate(panels):
            ax = axes[row][col]
            ax.imshow(panel, cmap="gray" if panel.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(titles[col], fontsize=11)
        name = one_line(summary["name"])  # no font has glyphs for ESC or a tab, and a surrogate is no text at all
        axes[row][0].set_ylabel(f"{name}\n({summary['objective']})", fontsize=11)
    fig.tight_layout()
    return fig


def _folder_key(folder: Path) -> Any:
    """What tells two names of one folder apart from two folders: its device and inode (a link,
    a bind mount, ``A/.``), or for a path that cannot be opened (a loop of links, a folder that
    is not there: refused later, by name) the absolute path as written."""
    try:
        found = os.stat(folder)
    except (OSError, ValueError):
        return os.path.abspath(folder)
    return found.st_dev, found.st_ino


def compare_runs(
    runs: list[str | Path], out: str | Path, seed: int = 0, progress: bool | None = None
) -> tuple[Path, Path | None]:
    """Write ``out/compare.md`` and ``out/compare.png`` (runs on tables: the table alone, of
    their figures); returns their paths (None for no figure). :class:`UserError` for runs on
    images and on tables together. ``progress``: the bar of a first conversion of a run's image
    folder (None: on a terminal)."""
    from .runs import given_path

    given = runs if isinstance(runs, str | os.PathLike) else list(runs)  # an iterator, read once
    if isinstance(given, str | os.PathLike) or not given:  # a path read letter by letter: "b is not a run folder"
        raise UserError(f"runs must be a non-empty list of run folders; got {given!r}")
    folders, out = [given_path(r, "run") for r in given], given_path(out, "out")
    if twice := repeated(zip(given, folders, strict=True), lambda pair: _folder_key(pair[1])):  # its row twice
        (first, _), (again, _) = twice
        raise UserError(f"the run {first} is given twice{also_as(str(first), str(again))}: name each run once")
    on_tables = [read_run_config(r).get("data", {}).get("dataset") == "table" for r in folders]
    if any(on_tables) and not all(on_tables):
        raise UserError("compare runs on images, or runs on tables, not both in one table")
    from .train import load_run

    # all read and drawn before the folder is made; each run's figures of the weights drawn
    # (each checkpoint read once: a damaged newer one's eval record or metrics file is left out)
    loaded = [load_run(r) for r in folders]
    pairs = list(zip(folders, loaded, strict=True))
    summaries = [run_summary(r, one.step, weights_fingerprint(one.model)) for r, one in pairs]
    fig = None
    if not all(on_tables):
        fig = figure([run_images(r, seed, one, progress) for r, one in pairs], summaries)
    # drawn before the folder is made: a Ctrl-C while the PNG was drawn left an empty folder
    picture = None if fig is None else figure_bytes(fig, dpi=100, bbox_inches="tight")
    text = table(summaries, TABLE_COLUMNS if fig is None else COLUMNS)
    created = not out.exists()
    table_path, figure_path = out / "compare.md", out / "compare.png"
    try:
        out.mkdir(parents=True, exist_ok=True)
        if picture is not None:
            write_atomic(figure_path, picture)
        write_atomic(table_path, text)
    except BaseException as err:  # a full disk, or a signal between the two files: neither is left
        remove_partial(out, created, (table_path, figure_path))
        if isinstance(err, OSError):
            raise UserError(f"cannot write into {out}: {err.strerror}") from None
        raise
    return table_path, figure_path if fig is not None else None


# ----------------------------------------------------------------------------- wae runs

# (metrics key, column title, format) of the listing; KID without its spread, to stay narrow
LIST_COLUMNS = [
    ("fid", "FID", "{:.2f}"),
    ("kid", "KID", "{:.4f}"),
    ("fd_samples", "fast FD", "{:.2f}"),
    ("test_recon_mse", "test MSE", "{:.4f}"),
]
LIST_HEAD = ["run", "preset", "objective", "epochs", "steps", *(title for _, title, _ in LIST_COLUMNS), "metrics from"]


def list_line(run: Path) -> list[str]:
    """The cells of one folder in ``wae runs``: name, preset, objective, epochs done of those
    planned, steps done, the headline metrics (``metrics.json`` of ``wae evaluate`` when present,
    else the last per-epoch evaluation: the fast FD of those is on ``eval_size`` images, not
    comparable) and where they come from. A folder that is not a readable run gives its name and
    the problem in the last cell; this never raises for what is in the folder."""
    from .train import load_run

    blank = [""] * (len(LIST_HEAD) - 2)
    if not has_config(run):  # one that is no file is refused by name below, as every command does
        return [run.name, *blank, "not a run folder (no config.json)"]
    try:
        with warnings.catch_warnings(record=True) as caught:  # said in the line, not above the table
            warnings.simplefilter("always")
            cfg = read_run_config(run)
            exported = is_export(run)  # a folder with a run's checkpoints too: the problem, in the line
            # the weights the other commands read (a damaged newest checkpoint passed over), whose
            # fingerprint a metrics.json must record to be shown as theirs; without a checkpoint,
            # no metrics file is of this run's weights ("" matches no fingerprint)
            loaded = load_run(run) if exported or run_checkpoints(run) else None
            step = loaded.step if loaded is not None else None
            weights = weights_fingerprint(loaded.model) if loaded is not None else ""
            records = saved_records(run, step=step)  # of those weights; lost on --resume: not done
            done = [r for r in records if r.get("kind") in ("train", "eval")]
            # no checkpoint (deleted, or none yet): the records are of weights the run no longer has
            evals = [r for r in done if r["kind"] == "eval"] if loaded is not None else []
            metrics, source = metrics_and_source(run, weights, step, evals)
    except UserError as err:  # the message names the folder, which the line already does
        text = str(err).replace(str(run / "config.json"), "config.json").replace(f"{run} ", "")
        return [run.name, *blank, text.replace(f"{run}{os.sep}", "")]  # files by their names in the folder
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as err:
        return [run.name, *blank, f"unreadable ({failure_reason(err)})"]
    steps = max((int(r["step"]) for r in done), default=0)
    epochs = max((float(r.get("epoch", 0)) for r in done), default=0.0)  # train records: fractions of epochs
    train = cfg.get("train", {})
    if source == FROM_EVALUATE:  # of these weights (an export's too: wae evaluate EXPORT)
        source = "wae evaluate"
    elif exported:
        source = "wae export (model card: README.md)"
    elif metrics:
        source = f"epoch {int(evals[-1]['epoch'])} eval"  # well_formed: at most 2^53
    else:  # checkpoints that all fail to read raised above: loaded is None when there are none
        source = "no evaluation yet" if loaded is not None else "no checkpoint"
    cells = [run.name, str(cfg.get("preset")), str(cfg.get("loss", {}).get("objective"))]
    if exported:  # no records: the step its weights' metadata records (an export is not untrained)
        cells += [f"–/{train.get('epochs')}", str(step) if step is not None else "–"]
    else:
        cells += [f"{epochs:.3g}/{train.get('epochs')}", str(steps)]
    cells += [fmt.format(metrics[key]) if _is_finite(metrics.get(key)) else "–" for key, _, fmt in LIST_COLUMNS]
    said = [one_line(str(w.message)).replace(f"{run}{os.sep}", "") for w in caught]
    if said:  # a hand-edited or damaged metrics.jsonl: its figures are what the listing could read
        source += f" (warning: {cut_text(said[0], 100)}{f'; and {len(said) - 1} more' if len(said) > 1 else ''})"
    return [*cells, source]


def list_runs(folder: str | Path) -> str:
    """A Markdown table with one line per run folder in ``folder`` (its sub-folders, hidden ones
    left out, by name; ``folder`` itself when it is a run): see :func:`list_line`. A missing
    folder is a :class:`UserError`."""
    from .runs import given_path

    folder = given_path(folder, "folder")
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder (give the folder that holds the run folders, e.g. runs)")
    if (folder / "config.json").is_file():
        found = [folder]
    else:
        found = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    lines = ["| " + " | ".join(LIST_HEAD) + " |", "|" + "---|" * len(LIST_HEAD)]
    lines += ["| " + " | ".join(table_cell(cell) for cell in list_line(run)) + " |" for run in found]
    return "\n".join(lines) + "\n"
