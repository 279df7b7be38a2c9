"""Settings as dataclasses, and the named presets.

A run is fully described by one :class:`Config`; it is saved as ``config.json`` beside every
run and inside every checkpoint, so that the run can be redone or resumed from it alone.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import math
import numbers
import operator
import os
import pickle
import re
import shlex
import sys
import types
import typing
import unicodedata
import zipfile
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

OBJECTIVES = ("mmd", "gan", "vae", "swd", "sinkhorn", "cw")
# objectives whose latent penalty is a divergence between a batch of codes and prior draws
SAMPLE_PENALTIES = ("mmd", "swd", "sinkhorn", "cw")
KERNELS = ("imq", "rbf")
PRIORS = ("gaussian", "uniform", "sphere", "mixture")
COSTS = ("l2sq", "l1", "bce")
# The scale that goes with each cost on images in [0, 1] (per-image sums over 784 pixels): the
# authors' 0.05 for squared L2; 0.01 for L1 and 0.02 for the Bernoulli cost, the scales each was
# measured with (docs/results.md, "Sample quality"). A cost set without its scale takes this one
# when the scale was the old cost's own (see override).
COST_SCALES = {"l2sq": 0.05, "l1": 0.01, "bce": 0.02}
ENCODERS = ("deterministic", "gaussian")
OUTPUTS = ("sigmoid", "tanh", "identity")  # identity: vector data, standardised columns
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
LR_SCHEDULES = ("step", "cosine")
BUDGET_LRS = ("fixed", "sqrt")
BUDGET_LR_MOST = 1.5  # budget_lr sqrt raises lr at most this much: 3e-3 from 2e-3, the largest measured (session 57)
DEVICES = ("auto", "cpu", "cuda", "mps")
TRACKERS = ("tensorboard", "wandb", "mlflow")  # train.log: wae/tracking.py
DATASETS = ("mnist", "synthetic", "npz", "folder", "celeba", "tensor", "table")  # "tensor": given in Python, not saved
CONDITIONS = ("none", "labels")
# the keys of nets.ARCHITECTURES, and "mlp": fully connected, for vector (table) data
ARCHS = ("fast", "small", "wide", "mnist-paper", "celeba-paper", "mlp")


def cache_dir() -> Path:
    """Where derived data are kept (FID statistics, image-folder caches): ``$WAE_CACHE_DIR``
    or ``~/.cache/wae``."""
    return Path(os.environ.get("WAE_CACHE_DIR") or Path.home() / ".cache" / "wae")


class UserError(ValueError):
    """Bad input from the user (a setting, a path, a file); the message says which and why.

    The command line prints the message alone and exits with code 2."""


# characters that end or break a line on a terminal: control characters (newline, carriage
# return, escape sequences) and the Unicode line and paragraph separators
_LINE_BREAKING = ("Cc", "Zl", "Zp", "Cs")  # Cs: the bytes of a name that is not UTF-8 (0x9b is a C1 CSI)


def one_line(text: object) -> str:
    """``text`` as one line for a terminal: control characters and line or paragraph separators
    (a newline, an escape sequence or U+2028 in a file name the message quotes) written as
    escapes (``\\n``, ``\\x1b``, ``\\u2028``), and so are the undecodable bytes of a name that is
    not UTF-8 (``\\udcff``: Python's surrogate escapes, which a UTF-8 stream cannot encode and
    whose byte a terminal may read as a control)."""
    breaking = _LINE_BREAKING
    return "".join(c.encode("unicode_escape").decode() if unicodedata.category(c) in breaking else c for c in str(text))


def markdown_text(text: object) -> str:
    """``text`` on one line (:func:`one_line`) as Markdown text, or a table cell, that renders as
    the text itself: a backslash before each character Markdown would read as markup
    (:data:`_MARKUP`: a code span's backtick, emphasis, a link, HTML, an entity, a backslash that
    would escape what follows it, or what a template puts after the text; a "|" that would end a
    table's cell); white space at either end, which a cell loses, as entities (``&#32;``). A
    name with no such characters (``demo_s0``, ``runs/a-1.5``) is written as it is. Checked
    against a CommonMark renderer with GitHub's tables (tests/test_hostile.py)."""
    cell = _MARKUP.sub(lambda m: "\\" + m.group(), one_line(text))
    kept = cell.strip()
    start = len(cell) - len(cell.lstrip())
    ends = [cell[:start], cell[start + len(kept) :]]  # a cell loses its white space at either end
    lead, trail = ("".join(f"&#{ord(c)};" for c in end) for end in ends)
    return lead + kept + trail


# what Markdown (CommonMark with GitHub's tables and strikethrough) reads as markup in a line:
# a backslash before ASCII punctuation (an escape), a backtick (code), * and ~ (emphasis,
# strikethrough), _ but between two letters or digits, [ (links and images), < (HTML and
# autolinks), & that starts an entity (&amp; &#38;), | (a table's cell ends), and a backslash
# at the end, before what a template puts after the text ("- data: NAME, ...")
_MARKUP = re.compile(r"\\(?=[!-/:-@\[-`{-~]|$)|[`*~\[<|]|(?<![^\W_])_|_(?![^\W_])|&(?=#?\w+;)")


def check_real(tensors: tuple[Any, ...], message: str) -> None:
    """:class:`UserError` with ``message`` unless every one is a dense real torch tensor with
    values (not complex, bool, quantized, sparse, nested or on the meta device)."""
    from torch import Tensor, strided  # here: importing config stays light
    from torch import bool as torch_bool

    for x in tensors:
        if not isinstance(x, Tensor):
            raise UserError(f"{message}; got {type(x).__name__}")
        odd = x.is_nested or x.is_quantized or x.layout != strided or x.is_meta
        if odd or x.is_complex() or x.dtype == torch_bool:
            kind = "a nested tensor" if x.is_nested else f"{x.dtype} ({x.layout})"
            raise UserError(f"{message}; got {kind} on {x.device.type}")


MAX_BATCH = 1 << 24  # images or rows in one batch (16.7 million)
FLOAT_MAX = int(sys.float_info.max)  # the largest integer a float holds (about 1.8e308)


class FileFault(ValueError):
    """A file's fault found by a reader, its message already in words (:func:`failure_reason`
    returns it as it is): the caller names the file."""


def _check_ints(value: Any) -> Any:
    if isinstance(value, dict):
        for item in value.values():
            _check_ints(item)
    elif isinstance(value, list):
        for item in value:
            _check_ints(item)
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > FLOAT_MAX:
        raise FileFault("a number beyond any float")  # readers convert numbers to float: OverflowError
    return value


def _parsed(loads: Callable[[str], Any], text: str) -> Any:
    try:
        return _check_ints(loads(text.removeprefix("\ufeff")))
    except RecursionError:
        raise FileFault("nested too deeply to parse") from None
    except ValueError as err:
        if "int_max_str_digits" in str(err):  # Python's own words name a setting of the interpreter
            raise FileFault("a number of more than 4,300 digits") from None
        raise


class Spelt(float):
    """A float read from a settings file, with the text the file wrote it in (``spelling``:
    ``-1E2``, ``1e-400``, ``1_000.5``), so that a refusal names it as written, not in Python's
    shortest form (-100.0, 0.0). Arithmetic on it gives plain floats; readers convert it to
    ``float`` before it reaches a config."""

    __slots__ = ("spelling",)
    spelling: str


def spelt(text: str) -> Spelt:
    """``text`` read as a :class:`Spelt`: the ``parse_float`` of :func:`parse_json` and
    :func:`parse_toml` for settings files, and a float flag's value where its text is named later."""
    value = Spelt(text)
    value.spelling = text
    return value


def as_given(value: Any) -> str:
    """A value as its source gave it, for a message: a :class:`Spelt`'s text (a settings file's
    or a flag's ``1.0``, ``-1E2``), else Python's form of the value (numpy's as Python's)."""
    return cut_text(value.spelling, 40) if isinstance(value, Spelt) else json_repr(plain_value(value))


def unheld_float(spelling: str, value: float) -> str | None:
    """Why the number written ``spelling``, read as ``value``, is not the number written, or
    None: a finite spelling beyond float's range (``1e400``, 400 nines: read as inf), or one
    too small for it (``1e-400``: read as 0, which turns a penalty off). The words follow "is"
    ("1e-400 is too small for a float: it would read as 0")."""
    mantissa, *_ = spelling.strip().lower().lstrip("+-").replace("_", "").split("e")
    if math.isinf(value) and mantissa not in ("inf", "infinity"):
        return "beyond any float (about 1.8e308 at most)"
    if value == 0 and any(c in "123456789" for c in mantissa):
        return "too small for a float: it would read as 0"
    return None


def parse_json(text: str, unique_keys: bool = False) -> Any:
    """``json.loads(text)`` with every way the text can fail to parse raised as ValueError:
    malformed JSON (json.JSONDecodeError), an integer beyond the float range (which each reader
    would meet as an OverflowError), one of more than 4,300 digits (Python's limit on int
    conversion), and nesting too deep for the parser (RecursionError, which is not a
    ValueError), and, with ``unique_keys`` (a settings file a user writes), a key given twice
    in one object (json keeps the last without a word; TOML refuses it); the reasons that are
    this function's own are raised as :class:`FileFault`, in words. A leading byte-order
    mark, as some editors write, is skipped. Readers of files a user may edit catch ValueError
    alone. With ``unique_keys`` its floats are :class:`Spelt`, each with the text it was written in."""
    if unique_keys:
        return _parsed(lambda t: json.loads(t, object_pairs_hook=_no_repeats, parse_float=spelt), text)
    return _parsed(json.loads, text)


NOT_REGULAR = "is not a regular file (a folder, FIFO, device, or a link that leads nowhere)"


def check_data_file(path: Path) -> None:
    """:class:`UserError` unless ``path`` is a regular file: "not found" when nothing is there,
    else that it is no regular file (a FIFO would block its reader, /dev/zero fill the memory)."""
    if not os.path.lexists(path):
        raise UserError(f"data file not found: {path}")
    if not path.is_file():
        raise UserError(f"{path} {NOT_REGULAR}")


def failure_reason(err: BaseException, width: int = 160) -> str:
    """Why a file could not be read, or what it holds rebuilt, in words for a one-line refusal
    (the error's class alone says nothing a user can act on): a :class:`FileFault`'s own words
    (:func:`parse_json`'s and :func:`parse_toml`'s for a number no reader takes, nesting too
    deep, a key given twice); the system's reason ("No such file or directory"); text that is
    not UTF-8, or not JSON or TOML (the parser's message with the line and column); a zip archive
    (.npz files and checkpoints are zip archives) cut short or of another kind; an empty or
    cut-short file; Python objects refused (pickled data is never loaded); else the error's own
    words on one line, cut to ``width``, as "KeyError: 'means'"."""
    text = " ".join(str(err).split())
    if isinstance(err, FileFault):
        return text
    if isinstance(err, UnicodeDecodeError):
        return "not UTF-8 text"
    if isinstance(err, json.JSONDecodeError):
        return f"not valid JSON: {err.msg} at line {err.lineno} column {err.colno}"
    if isinstance(err, tomllib.TOMLDecodeError):
        return f"not valid TOML: {text}"
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    if isinstance(err, zipfile.BadZipFile) or "central directory" in text:
        return "not a zip archive, as .npz files and checkpoints are: cut short, or another kind of file"
    if isinstance(err, EOFError) or "Ran out of input" in text or text.startswith("EOF"):
        return "empty, or cut short"
    if "magic string is not correct" in text:  # numpy's words for what is no .npy file
        return "not a .npy file of numpy's format"
    if isinstance(err, KeyError) and err.args:  # a missing entry of a file's dict
        return f"no {json_repr(err.args[0])} entry"
    if isinstance(err, pickle.UnpicklingError) or "allow_pickle" in text:
        # numpy and torch say this of any file that is not theirs, and advise loading the objects
        return "not a file of arrays: another kind of file, or one holding Python objects, which are never loaded"
    return cut_text(one_line(f"{type(err).__name__}: {text}" if text else type(err).__name__), width)


def repeated(items: Iterable[Any], key: Callable[[Any], Any] = lambda item: item) -> tuple[Any, Any] | None:
    """The first item of ``items`` whose ``key`` an earlier item has, as (earlier item, item);
    None when every key is new (a list of runs, data sets, lambdas or kernel scales that names
    one twice would repeat a row or weigh one kernel double)."""
    seen: dict[Any, Any] = {}
    for item in items:
        k = key(item)
        if k in seen:
            return seen[k], item
        seen[k] = item
    return None


def also_as(first: str, again: str) -> str:
    """What a refusal of an item named twice adds when the two spellings differ: `` (as 1 and
    1.0)``; nothing when they are the same."""
    return "" if first == again else f" (as {first} and {again})"


def _no_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's pairs as a dict; ValueError for a key given twice."""
    if twice := repeated(key for key, _ in pairs):
        raise FileFault(f"the key {file_text(twice[0])} is given twice")
    return dict(pairs)


def parse_toml(text: str) -> dict[str, Any]:
    """``tomllib.loads(text)``, its errors raised as ValueError as :func:`parse_json` raises
    them (a deeply nested array is a RecursionError in tomllib; TOML integers are bounded by
    the float range here too); a leading byte-order mark is skipped. Its floats are
    :class:`Spelt`, each with the text it was written in."""
    return _parsed(lambda t: tomllib.loads(t, parse_float=spelt), text)


def setting(
    default: Any,
    help: str,
    *,
    choices: tuple[str, ...] | None = None,
    at_least: float | None = None,
    above: float | None = None,
    at_most: float | None = None,
    below: float | None = None,
    why: str = "",
    flag: str = "",
    by_hand: bool = False,
    resume: bool = False,
    recorded: bool = False,
) -> Any:
    """A config field with its description, from which the command line, the checks and the
    README's table of settings are made: ``help`` (one line), the allowed ``choices`` or bounds
    (``at_least``/``above`` and ``at_most``/``below``; a tuple's bounds hold for each entry),
    ``why`` a bound holds, the ``flag`` (default: ``--field-name``, and ``--x``/``--no-x`` for a
    bool), ``by_hand`` when cli.py writes that flag itself, and ``resume`` when the flag may
    extend a run given with ``--resume``; ``recorded`` for what the program sets and config.json
    records (no flag)."""
    meta = {"help": help, "choices": choices, "at_least": at_least, "above": above, "at_most": at_most}
    meta.update(below=below, why=why, flag=flag, by_hand=by_hand or recorded, resume=resume, recorded=recorded)
    return field(default=default, metadata=meta)


@dataclass
class DataConfig:
    """Where the images come from and how they are scaled."""

    dataset: str = setting(
        "mnist",
        "mnist (embedded), synthetic, or set by --data: npz, folder, celeba, table (rows of a .csv, .npy or 2-D .npz)",
        choices=DATASETS,
        by_hand=True,
    )
    path: str | None = setting(
        None,
        "train on your images: an .npz with x_train (or x) and optional x_test; or a folder of images "
        "(png/jpg/bmp/webp, nested; the last 10% are the test set); or CelebA (a folder with img_align_celeba/ "
        "and list_eval_partition.txt). Folders are converted once to a uint8 cache in ~/.cache/wae. Vector data: "
        "a .csv with a header row, a 2-D .npy, or an .npz with 2-D x_train (or x) and optional x_test; rows are "
        "samples",
        flag="--data",
        by_hand=True,
    )
    condition: str = setting(
        "none",
        "labels: a conditional WAE, the encoder sees (x, y) and the decoder (z, y), y the class: MNIST's digits, "
        "an .npz's y_train (and y_test; integers), or an image folder's sub-folder names",
        choices=CONDITIONS,
    )
    image_size: int = setting(64, "image folders: the side after centre crop and resize", at_least=1)
    grey: bool = setting(False, "image folders: one grey channel, not RGB")
    crop: int = setting(0, "image folders: the centre crop's side before resizing (0: the shorter side)", at_least=0)
    range: str = setting("01", "pixel range fed to the model: 01 is [0, 1], pm1 is [-1, 1]", choices=("01", "pm1"))
    synthetic_size: int = setting(28, "image side of the synthetic dataset", at_least=1)
    synthetic_count: int = setting(512, "training images of the synthetic dataset", at_least=1)
    cache: bool = setting(
        True,
        "image folders: convert the images once to a memory-mapped uint8 cache (fast epochs); --no-cache "
        "decodes the files every epoch in DataLoader workers (the test images once, into memory)",
    )
    workers: int = setting(
        2, "image folders with --no-cache: DataLoader processes decoding images (0: none)", at_least=0, resume=True
    )
    held_out: float = setting(
        0.2,
        "tables without x_test (.csv, .npy, .npz with x alone): the fraction of rows held out as the test set "
        "(a shuffle seeded by 0, the same for every run)",
        above=0,
        below=1,
    )
    fingerprint: str | None = setting(
        None,
        "npz / tables / image folders: size and hash of the file, or of the folder's list of images, as the run was "
        "started (set by training; a run read with other data is refused)",
        recorded=True,
    )


@dataclass
class ModelConfig:
    """The networks: one convolutional encoder/decoder family, sized by ``arch``."""

    arch: str = setting("fast", "network family (nets.ARCHITECTURES)", choices=ARCHS)
    latent_dim: int = setting(8, "code dimension d_z", at_least=1)
    encoder: str = setting("deterministic", "deterministic, or Gaussian (mean and log-variance)", choices=ENCODERS)
    output: str = setting(
        "sigmoid",
        "decoder output: sigmoid for [0, 1] data, tanh for [-1, 1], identity for tables (standardised columns)",
        choices=OUTPUTS,
    )
    mlp_width: int = setting(256, "mlp (tables): units of each hidden layer of the encoder and decoder", at_least=1)
    mlp_depth: int = setting(2, "mlp (tables): hidden layers of the encoder, and of the decoder", at_least=1)
    label_dim: int = setting(16, "conditional runs: width of the learned embedding of the class label", at_least=1)
    adversary_width: int = setting(512, "WAE-GAN latent adversary: width of its hidden layers", at_least=1)
    adversary_depth: int = setting(4, "WAE-GAN latent adversary: number of hidden layers", at_least=1)
    # off, a multi-process CPU run equals a one-process run step for step (CUDA runs keep batch
    # statistics global with SyncBatchNorm; CPU processes cannot)
    batch_norm: bool = setting(
        True,
        "batch norm after each hidden convolution (the paper's nets); --no-batch-norm: plain convolutions "
        "with biases (then N CPU processes train exactly as one)",
    )


@dataclass
class LossConfig:
    """The objective: reconstruction cost + lambda * latent divergence."""

    objective: str = setting(
        "mmd",
        "mmd (WAE-MMD), gan (WAE-GAN), vae (baseline), or a WAE penalised by another divergence: swd (sliced "
        "Wasserstein, SWAE), sinkhorn (debiased Sinkhorn), cw (Cramer-Wold, Gaussian prior only)",
        choices=OBJECTIVES,
        by_hand=True,
    )
    lam: float = setting(10.0, "lambda: weight of the latent penalty (VAE: of the KL)", at_least=0)
    cost: str = setting(
        "l2sq",
        "reconstruction cost, summed over pixels; given without --cost-scale (on the command line or in the "
        "--config file), a scale that was the old cost's usual one (l2sq 0.05, l1 0.01, bce 0.02) becomes the "
        "new cost's",
        choices=COSTS,
    )
    cost_scale: float = setting(1.0, "multiplies the cost (the authors' code: 0.05 with l2sq)", above=0)
    kernel: str = setting(
        "imq", "MMD kernel: multi-scale inverse multiquadratics, or RBF (median heuristic)", choices=KERNELS
    )
    kernel_scales: tuple[float, ...] = setting(
        (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0), "imq kernel: the scales, in units of 2 d_z sigma_z^2", above=0
    )
    prior_draws: int = setting(
        1,
        "mmd (imq kernel): prior samples drawn for each code of the batch, m = prior_draws x batch (the "
        "unbiased MMD estimate takes any m): more lower the noise of the penalty's pull towards P_Z, for a "
        "kernel block of batch x m (a cost that grows linearly)",
        at_least=1,
    )
    prior: str = setting(
        "gaussian",
        "latent prior P_Z: gaussian, uniform or sphere with each coordinate of variance prior_var; mixture: "
        "prior_components Gaussians of variance prior_var a coordinate, prior_separation sigma_z apart from 0",
        choices=PRIORS,
    )
    prior_var: float = setting(1.0, "sigma_z^2, the variance of each prior coordinate", above=0)
    prior_components: int | None = setting(
        None,
        "mixture prior: its K components, N(r sigma_z e_k, sigma_z^2 I) with equal weights, means on the first K "
        "axes (K <= latent_dim); not set: min(10, latent_dim)",
        at_least=1,
    )
    prior_separation: float = setting(
        5.0, "mixture prior: r, each component's mean's distance from 0 in units of sigma_z", above=0
    )
    prior_trick: bool = setting(False, "WAE-GAN: add log p_z(z) to the adversary's logit")
    input_noise: float = setting(0.0, "std of Gaussian noise on the encoder's inputs (authors: 0.01)", at_least=0)
    code_noise: float = setting(
        0.0,
        "std of Gaussian noise added to the codes the decoder reads in training, in units of sigma_z (0: off): "
        "the decoder learns to decode a neighbourhood of each code, not the code alone; the penalty sees the "
        "codes without it",
        at_least=0,
    )
    # Gaussian encoders in WAEs (Rubenstein et al. 2018): keeps the variances from collapsing
    logvar_l1: float = setting(
        0.0, "Gaussian-encoder WAE: weight of the penalty mean_i sum_j |log sigma^2_ij| (0: off)", at_least=0
    )
    logvar_clip: float = setting(0.0, "clip the encoder's log-variances to [-c, c] (0: off)", at_least=0)
    class_penalty: bool = setting(
        True,
        "conditional runs: match the codes of each class, Q(Z|Y=y), to P_Z (and so Q_Z too), so that z cannot "
        "carry the class: sample penalties (mmd, swd, sinkhorn, cw) per class of the batch, weighted by its share; "
        "gan: the adversary sees each code's class; vae: its KL is per image already. --no-class-penalty: Q_Z alone",
    )
    projections: int = setting(50, "swd: random directions per batch", at_least=1)
    sinkhorn_epsilon: float = setting(
        1.0, "sinkhorn: entropic regularisation, in units of the squared code distance", above=0
    )
    sinkhorn_iterations: int = setting(50, "sinkhorn: log-domain iterations per batch", at_least=1)


@dataclass
class TrainConfig:
    """The optimisation loop."""

    batch_size: int = setting(
        100, "images per step (and codes per MMD estimate)", at_least=2, why="the MMD estimate needs pairs"
    )
    epochs: int = setting(10, "passes over the training set", at_least=0, resume=True)
    max_steps: int | None = setting(
        None,
        "stop after this many steps in total, even mid-epoch (the learning-rate schedule stays planned over the "
        "epochs)",
        at_least=0,
        resume=True,
    )
    time_budget: float | None = setting(
        None,
        "minutes of wall time the training should take, counted from the start of this session (wae train "
        "--resume starts one), set-up and the ex-post sampler's fit included: at the first epoch's end (its "
        "steps after the tenth timed, with its evaluation; a resumed session times half an epoch of its own "
        "first) the run keeps as many of its epochs as fit, never more than --epochs (or those --max-steps reaches) "
        "nor fewer than those done, and plans the learning-rate schedule over them (never over more epochs than it "
        "was planned over: a resumed run's stays over its first session's epochs; when all fit, the schedule stays "
        "as planned); config.json then records the epochs kept and no "
        "budget, metrics.jsonl the decision; each later epoch end of the session revises it from the last epochs' "
        "times (the median of three epochs' steps and of three whole evaluation cycles' end-of-epoch work), "
        "cutting the epochs left when the machine has slowed down, and giving back epochs cut before (up to the "
        "plan the session began with) when it is faster again, as far as they fit at the slowest of the last "
        "epochs with a margin and no "
        "learning rate would rise by it (the step schedule past its warm-up; a cosine schedule never grows); "
        "config.json holds the plan in force",
        above=0,
        resume=True,
    )
    lr: float = setting(1e-3, "Adam learning rate of the encoder and decoder", above=0)
    budget_lr: str = setting(
        "fixed",
        "what a --time-budget that cuts the epochs does to lr: fixed keeps it; sqrt multiplies it by "
        "sqrt(schedule epochs planned / kept), at most 1.5x (a shorter run takes larger steps): provisionally from "
        "a fresh run's 50th timed step (half an epoch's if fewer), with the epochs kept estimated from those "
        "steps' speed, and from the "
        "budget's decision at the run's first epoch end on, from that epoch's time (config.json records the "
        "factor as lr_scale, the budget's plan in metrics.jsonl the rate); a budget decided later, or one that "
        "keeps all epochs, leaves lr as it is",
        choices=BUDGET_LRS,
    )
    lr_scale: float = setting(
        1.0,
        "the factor the encoder's and decoder's rate is lr times (set by training: --budget-lr sqrt's, 1 without)",
        at_least=1,
        at_most=BUDGET_LR_MOST,
        recorded=True,
    )
    adversary_lr: float = setting(5e-4, "Adam learning rate of the WAE-GAN adversary", above=0)
    beta1: float = setting(0.5, "Adam beta1", at_least=0, below=1)
    beta2: float = setting(0.999, "Adam beta2", at_least=0, below=1)
    # (0.3, 0.5) of 100 epochs is the paper's "halve after epoch 30, divide by 5 after epoch 50"
    lr_milestones: tuple[float, ...] = setting(
        (),
        "the learning rate is multiplied by lr_factors[i] (cumulatively) once this fraction of the epochs "
        "is done, so that --epochs stretches the schedule",
        at_least=0,
        at_most=1,
        why="fractions of the epochs",
    )
    lr_factors: tuple[float, ...] = setting((), "the factors of lr_milestones, one each")
    lr_schedule: str = setting(
        "step",
        "step: lr_milestones and lr_factors; cosine: from lr down to lr / 100 along a half cosine over the "
        "planned steps (Loshchilov & Hutter 2017), the milestones unused",
        choices=LR_SCHEDULES,
    )
    lr_warmup: float = setting(
        0.0,
        "fraction of the planned steps over which the learning rate first rises linearly from lr / 100 "
        "(either schedule; the step schedule's factors apply during it too; above 0, at least one step)",
        at_least=0,
        below=1,
        why="a fraction of the steps",
    )
    schedule_epochs: int | None = setting(
        None,
        "the epoch count the learning-rate milestones are fractions of (default: the epochs of the run's first "
        "session, kept when --resume extends it; give it to stretch the schedule)",
        at_least=1,
        resume=True,
    )
    seed: int = setting(0, "seed of initialisation, data order and noise", at_least=0)
    precision: str = setting(
        "auto",
        "bf16 (autocast), fp32, fp16 (CUDA only, with a gradient scaler), or auto: bf16 where the CPU has "
        "native bf16 (AVX512-BF16 or AMX) that oneDNN may use (on, not held below it by ONEDNN_MAX_CPU_ISA) or the "
        "GPU supports it, fp16 on older GPUs, else fp32; "
        "config.json records the choice made; a resume may switch it (the weights are kept in fp32)",
        choices=PRECISIONS,
        resume=True,
    )
    device: str = setting(
        "auto",
        "where to train: cpu, cuda, mps, or auto: a CUDA GPU, else an Apple GPU, else the CPU",
        choices=DEVICES,
        resume=True,
    )
    # faster with bf16 on CPUs (measured 1.2x on the fast network) and GPUs; the same maths, other rounding
    channels_last: bool = setting(True, "convolution weights, and so activations, in channels_last (NHWC) memory order")
    log_every: int = setting(50, "steps between lines of metrics.jsonl", at_least=1, resume=True)
    eval_size: int = setting(2000, "test images (a fixed random subset) of the per-epoch evaluation", at_least=1)
    eval_every: int = setting(
        1,
        "epochs between scorings of eval_size prior samples with the shipped MNIST classifier (Fréchet "
        "distance, precision/recall, coverage) for learning curves; 0 never; 28x28 grey data only",
        at_least=0,
        resume=True,
    )
    threads: int | None = setting(None, "torch CPU threads, torch's choice when not set", at_least=1, resume=True)
    keep_checkpoints: int = setting(2, "newest checkpoints kept in the run folder", at_least=1, resume=True)
    skip_nonfinite: bool = setting(
        False, "skip and count batches whose loss is NaN or infinite, rather than stop", resume=True
    )
    log: str = setting(
        "",
        "experiment trackers besides metrics.jsonl, comma-separated: tensorboard, wandb (offline), mlflow (local "
        "file store), each writing into the run folder (flag: --log NAME, repeatable)",
        by_hand=True,
        resume=True,
    )
    ema: float = setting(
        0.0,
        "decay of an exponential moving average of the auto-encoder's weights (and batch-norm statistics), "
        "which then gives the samples, the evaluations and the saved model; 0: none",
        at_least=0.0,
        below=1.0,
    )
    fit_sampler: str = setting(
        "none",
        "at the end of training, fit an ex-post sampler to the training codes Q_Z, as wae fit-sampler RUN "
        "--kind KIND does (gmm: a 10-component Gaussian mixture; flow: a spline flow, needs zuko; vae: a "
        "second-stage VAE), and draw samples-KIND.png from it beside the prior's samples.png (a run trained "
        "further fits it again with the settings its sampler file records: those of a wae fit-sampler, say); "
        "none: prior samples only",
        choices=("none", "gmm", "flow", "vae"),
        resume=True,
    )


@dataclass
class Config:
    """Everything that defines a run. ``Config()`` holds the fields' base values, which the
    presets start from and change (mnist-fast: the ``small`` network, d_z = 16, 25 epochs,
    lambda by objective, ...): for what ``wae train`` uses, start from :func:`preset`
    (``wae.preset()``), not from ``Config()``."""

    preset: str = "mnist-fast"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (JSON- and ``torch.load(weights_only=True)``-safe): a number of
        another type that a Python caller set (numpy's, or a float subclass such as
        :class:`Spelt`) as the plain int, float or bool it holds (:func:`plain_value`); a
        checkpoint pickled with one could not be read back."""
        return _fields_of(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Config:
        """Inverse of :meth:`to_dict`; unknown keys are an error, missing keys take defaults.
        :class:`UserError` names a value or key of the wrong kind as JSON writes it (``true``,
        ``null``, ``"5"``): ``d`` holds JSON's values (a config.json, a checkpoint's config)."""
        return _config_from(d, file_text)


def _fields_of(obj: Any) -> dict[str, Any]:
    """A dataclass's fields as a dict, nested dataclasses too, each value :func:`plain_value`'s
    (not ``dataclasses.asdict``, whose deep copy fails on a tensor computed with gradients), a
    1-dimensional array where a list is taken as the list of its items (:func:`array_items`)."""
    return {
        f.name: _fields_of(value) if dataclasses.is_dataclass(value) else plain_value(value)
        for f in dataclasses.fields(obj)
        for value in [array_items(getattr(obj, f.name)) if takes_list(type(obj), f.name) else getattr(obj, f.name)]
    }


def holds_no_number(value: Any) -> bool:
    """Whether ``value`` is a numpy date or duration (``np.datetime64``, ``np.timedelta64``, of
    any unit, or an array of them: numpy makes a duration a ``numbers.Integral``, and ``.item()``
    of one in nanoseconds a plain int) or a masked numpy value (``np.ma.masked``, whose
    ``.item()`` is 0.0): no number, whatever ``isinstance`` and ``.item()`` say."""
    numpy = sys.modules.get("numpy")
    if numpy is None or not isinstance(value, numpy.generic | numpy.ndarray):
        return False
    return value.dtype.kind in "mM" or bool(numpy.ma.is_masked(value))


def _array_types() -> tuple[type, ...]:
    """numpy's ndarray and torch's Tensor (its subclasses too: a torch.nn.Parameter), of the two
    already imported: neither is imported here only for this."""
    kinds: list[type] = []
    if (numpy := sys.modules.get("numpy")) is not None:
        kinds.append(numpy.ndarray)
    if (torch := sys.modules.get("torch")) is not None:
        kinds.append(torch.Tensor)
    return tuple(kinds)


def python_scalar(value: Any) -> Any:
    """A numpy scalar, or a 0-dimensional numpy array or torch tensor, as the Python number
    (or bool, or str) it holds (``.item()``); anything else as it is, numpy's dates, durations,
    masked values and bytes too (:func:`holds_no_number`: a refusal names what was given). A
    Python caller's ``np.float16(0.5)``, ``np.array(0.1)`` and ``torch.tensor(0.1)`` are taken alike."""
    if holds_no_number(value):
        return value
    numpy = sys.modules.get("numpy")
    kinds = _array_types() + ((numpy.generic,) if numpy is not None else ())
    array: Any = value
    held = isinstance(value, kinds) and getattr(value, "ndim", None) == 0
    if held:
        try:
            held_value = array.item()
        except (RuntimeError, ValueError, TypeError):  # a tensor on the meta device holds no value
            return value
        if isinstance(held_value, bool | int | float | complex | str):
            return held_value
        # numpy's longdouble keeps its type through .item(): the scalar, as np.longdouble(0.5) is taken
        return held_value if numpy is not None and isinstance(held_value, numpy.floating) else value
    return value


def takes_list(section: type, name: str) -> bool:
    """Whether the setting ``name`` of the config section ``section`` holds a tuple (a list in
    JSON and TOML): ``loss.kernel_scales``, ``train.lr_milestones``."""
    hint = _type_hints(section).get(name)
    return typing.get_origin(hint) is tuple or hint is tuple


def plain_value(value: Any) -> Any:
    """``value`` with every number, string and switch in it of Python's own type: a float
    subclass (numpy's float64, :class:`Spelt`) as float, an int or str subclass as int or str,
    a numpy scalar as the Python number it holds (``.item()``), through dicts, lists and tuples;
    anything else as it is (the type checks name it)."""
    if isinstance(value, dict):
        return {k: plain_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(plain_value(v) for v in value) if type(value) in (list, tuple) else value
    value = python_scalar(value)
    if type(value) in (bool, int, float, str):
        return value
    if isinstance(value, str):  # the text it holds: a str enum's "gan", not its str() "Objective.GAN"
        return str.__str__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return int.__int__(value)
    if (whole := whole_value(value)) is not None:  # another Integral
        return whole
    try:  # another Real: numpy's longdouble, a Fraction (JSON writes neither)
        return real if (real := real_value(value)) is not None else value
    except OverflowError:  # beyond any float: the type checks name it
        return value


def plain_config(cfg: Config) -> Config:
    """``cfg`` with each value of its field's Python type (:func:`plain_value`): numpy's numbers
    and float subclasses that a Python caller set become the int or float they hold, before a
    run uses them (``np.int64`` seed + 1 is no seed torch takes) or saves them. A value of
    the wrong type is refused as the caller gave it: ``epochs=Fraction(3, 1)`` is "must be int;
    got Fraction(3, 1)", not the 3.0 that :meth:`Config.to_dict` would make of it."""
    check_types(cfg)
    return _config_from(cfg.to_dict(), json_repr)


def _config_from(d: Any, spell: Callable[[Any], str]) -> Config:
    """:meth:`Config.from_dict`, naming values and keys in refusals as ``spell`` writes them."""
    sections = SECTIONS
    d = checked_types(d, sections, spell)
    unknown = set(d) - set(sections) - {"preset"}
    if unknown:
        raise UserError(f"unknown config keys: {_some(unknown, spell)}")
    parts: dict[str, Any] = {}
    for name, cls in sections.items():
        values = dict(d.get(name, {}))
        known = {f.name for f in dataclasses.fields(cls)}
        bad = set(values) - known
        if bad:
            raise UserError(f"unknown keys in config section '{name}': {_some(bad, spell)}")
        for f in dataclasses.fields(cls):
            if f.name in values and isinstance(values[f.name], list):
                values[f.name] = tuple(values[f.name])
        parts[name] = cls(**values)
    return Config(preset=d.get("preset", CUSTOM), **parts)


def whole_value(value: Any) -> int | None:
    """``value`` as an int when it is a whole number (a Python or numpy integer, not a bool);
    None otherwise, numpy's ``timedelta64`` too: a duration that ``isinstance(value,
    numbers.Integral)`` takes (:func:`holds_no_number`)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or holds_no_number(value):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


class FloatRangeError(OverflowError):
    """A real number that no float holds: beyond the largest (``10**400``, ``Fraction(10**400,
    3)``, numpy's ``longdouble("1e400")``), or nearer 0 than the smallest but not 0
    (``longdouble("1e-4000")``, ``Fraction(1, 10**400)``), which ``float()`` turns into inf or 0
    without a word. Its text says which, as "a number ..."."""


def real_value(value: Any) -> float | None:
    """``value`` as a float when it is a real number (a Python or numpy number, not a bool); None
    otherwise, numpy's ``timedelta64`` too (:func:`whole_value`). :class:`FloatRangeError` (an
    OverflowError) for a finite number that no float holds: beyond any float, or so near 0
    that it would be taken as 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or holds_no_number(value):
        return None
    try:
        # a float subclass as the float it is (its own __float__ may say otherwise, or refuse)
        real = float.__float__(value) if isinstance(value, float) else float(value)
    except (TypeError, ValueError):  # (ValueError: a Python caller's Real whose __float__ refuses)
        return None
    except OverflowError:  # an int or a fraction beyond any float
        raise FloatRangeError("a number beyond any float (about 1.8e308 at most)") from None
    if math.isinf(real) and value not in (math.inf, -math.inf):  # numpy's longdouble("1e400")
        raise FloatRangeError("a number beyond any float (about 1.8e308 at most)")
    if real == 0 and value != 0:  # longdouble("1e-4000"), Fraction(1, 10**400): 0 is not what was given
        raise FloatRangeError("a number too small for a float: it would read as 0")
    return real


def finite_real(value: Any) -> float | None:
    """``value`` (a 0-d array or tensor too) as a float when it is a finite real number that a
    float holds (:func:`real_value`); None otherwise, never raising: the reading that every
    range check of a number starts from."""
    try:
        real = real_value(python_scalar(value))
    except FloatRangeError:
        return None
    return real if real is not None and math.isfinite(real) else None


def count_in(name: str, value: Any, least: int, most: int | None = None) -> int:
    """``value`` as an int when it is a whole number (numpy's and torch's 0-d integers too, not a
    bool) from ``least`` to ``most`` (default :data:`MAX_COUNT`, 2^48): the check of a count,
    size or seed that a public function takes. :class:`UserError` (a ValueError) otherwise, in
    one line naming ``name`` and the value as given."""
    most = MAX_COUNT if most is None else most
    if (count := whole_value(python_scalar(value))) is None or not least <= count <= most:
        top = {MAX_COUNT: "2^48", MAX_SEED: "2^32 - 1", GENERATOR_SEEDS: "2^64 - 1"}.get(most, f"{most:,}")
        raise UserError(f"{name} must be a whole number from {least} to {top}; got {json_repr(value)}")
    return count


def real_in(name: str, value: Any, low: float, high: float) -> float:
    """``value`` as a float when it is a real number (numpy's and torch's 0-d numbers too, not a
    bool) from ``low`` to ``high``, both finite: the check of a scale, variance or width that a
    public maths function takes, where float32 would make one beyond the range 0, inf or NaN.
    :class:`UserError` (a ValueError) otherwise, in one line naming ``name`` and the value as
    given."""
    if (real := finite_real(value)) is None or not low <= real <= high:
        raise UserError(f"{name} must be a number from {low:g} to {high:g}; got {json_repr(value)}")
    return real


def python_scalars(value: Any) -> Any:
    """:func:`python_scalar` of ``value``, or of each item of a list or tuple (kept a list or a
    tuple: a refusal spells the value as it was given)."""
    return type(value)(map(python_scalar, value)) if type(value) in (list, tuple) else python_scalar(value)


def array_items(value: Any) -> Any:
    """A 1-dimensional numpy array or torch tensor as the list of its items (``.tolist()``), for a
    setting that takes a list (:func:`takes_list`: ``np.geomspace(0.1, 10, 7)`` as the kernel
    scales); anything else as it is, a tensor on the meta device (which holds no values) too.
    An array of numpy dates or durations, or with masked items, gives its items as they are (no
    numbers, :func:`holds_no_number`: a duration's ``.tolist()`` in nanoseconds is plain ints, a
    masked item's None). Neither numpy nor torch is imported for this."""
    array: Any = value
    if not (isinstance(value, _array_types()) and getattr(value, "ndim", None) == 1):
        return value
    if holds_no_number(value):
        return list(array)  # numpy's dates, durations, masked items: refused one by one as a list of them is
    try:
        return array.tolist()
    except (RuntimeError, ValueError, TypeError):
        return value


def json_repr(value: Any, width: int = 40) -> str:
    """A short printable form of a value for a one-line error: its repr, cut to ``width``
    characters, and a whole number of over 128 bits by its size (repr refuses ints of over 4,300
    digits); a numpy or torch scalar as the number it holds."""
    value = python_scalar(value)
    if isinstance(value, int) and value.bit_length() > 128:
        return f"a whole number of about {'-' if value < 0 else ''}2^{value.bit_length()}"
    try:
        text = re.sub(r"\n\s*", " ", repr(value))  # one line: a tensor's repr spans several
    except RecursionError:
        return "a value nested too deeply to show"
    except Exception:  # a Python caller's object whose __repr__ fails or returns no str
        return f"a value of type {type(value).__name__} that cannot be shown"
    return cut_text(text, width)


def cut_text(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters (at least 4), its end replaced by "..."."""
    width = max(int(width), 4)
    return text if len(text) <= width else text[: width - 3] + "..."


def first_few(items: Sequence[str], sep: str = ", ", n: int = 3) -> str:
    """The first ``n`` of ``items`` joined by ``sep``, and how many more: a message names a few
    of a list that a crafted or damaged file can make as long as it likes."""
    return sep.join(items[:n]) + (f" and {len(items) - n:,} more" if len(items) > n else "")


def _some(keys: set[Any], spell: Callable[[Any], str] = json_repr) -> str:
    """Up to three of ``keys``, each shortened (as ``spell`` writes them; default
    :func:`json_repr`), and how many more (a crafted file may hold thousands, each of any length)."""
    return first_few([spell(k) for k in sorted(keys, key=str)])


def _as_field_type(name: str, value: Any, hint: Any, spell: Callable[[Any], str] = json_repr) -> Any:
    """``value`` as the type ``hint`` of a config field (an int stays an int, a float may be
    given as an int, a JSON list becomes a tuple); :class:`UserError` otherwise, naming the value
    as ``spell`` writes it."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None and type(None) in options:
        return None
    held = python_scalar(value)  # a 0-d array or tensor as the number it holds, as override takes it
    for option in options:
        if option is bool and isinstance(held, bool):
            return held
        if option is int and (whole := whole_value(held)) is not None:
            return whole  # numpy's integers too, from Python
        if option is float:
            try:
                real = real_value(held)
            except FloatRangeError as err:  # 10**400, numpy's longdouble("1e-4000")
                raise UserError(f"config {name} must be a float; got {spell(value)}, {err}") from None
            if real is not None:
                return real + 0.0  # -0.0 is 0.0 (--print-config wrote "-0.0")
        if option is str and isinstance(held, str):
            # numpy's str_ (and a 0-d array of one) too, from Python; a str enum's text, not its str()
            return str.__str__(held)
        if typing.get_origin(option) is tuple and isinstance(value, list | tuple):
            kind = typing.get_args(option)[0]
            return tuple(_as_field_type(f"{name}[{i}]", v, kind, spell) for i, v in enumerate(value))
    wanted = " or ".join("null" if o is type(None) else getattr(o, "__name__", str(o)) for o in options)
    raise UserError(f"config {name} must be {wanted}; got {spell(value)}")


def warn_caller(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn`` attributed to the first caller outside this package (a user calling
    ``classifier_metrics`` sees their own line, not ours)."""
    import warnings

    package = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(1), 2
    while frame.f_back is not None and os.path.dirname(os.path.abspath(frame.f_code.co_filename)) == package:
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


def too_long(text: str) -> str:
    """Words to add when ``text`` is a whole number that Python refuses to read for its length
    (over 4,300 digits), else ""."""
    digits = text.strip().lstrip("+-").replace("_", "")
    refused = digits.isascii() and digits.isdigit() and len(digits) > 4300
    return " Python reads (more than 4,300 digits)" if refused else ""


def file_text(value: Any, width: int = 40, toml: bool = False) -> str:
    """A value in a one-line error as a JSON file writes it (``true``, ``null``, ``"8"``, ``[1,
    "a"]``, ``NaN``), or with ``toml`` as a TOML file does (``nan``, ``-inf``, a date as
    ``2020-01-01``, an inline table as ``{a = 1}``), cut to ``width`` characters (at least 4);
    what neither can hold (a Python caller's set, bytes, or a list holding one) and whole numbers
    of over 128 bits as :func:`json_repr` gives them."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return json_repr(value, width)
    try:
        text = _file_text(value, int(width), toml)
    except (TypeError, ValueError):  # not a file's (a set; a list that holds itself)
        return json_repr(value, width)
    except RecursionError:  # a list nested thousands deep (Python's repr fails on it too)
        return "a value nested too deeply to show"
    return cut_text(text, width)


def _file_text(value: Any, width: int, toml: bool, within: tuple[int, ...] = ()) -> str:
    import datetime

    if isinstance(value, Spelt):  # as the file wrote it: -1E2, not -100.0
        return value.spelling
    if isinstance(value, datetime.date | datetime.time):  # TOML's dates and times (datetime is a date)
        return value.isoformat()
    if toml and isinstance(value, float) and not math.isfinite(value):
        return str(value)  # nan, inf, -inf: TOML's words (JSON's module writes NaN, Infinity)
    if isinstance(value, list | tuple | dict):  # item by item, so that a float inside is spelt as written
        if id(value) in within:
            raise ValueError("a list that holds itself")  # as json.dumps refuses one; file_text names it by json_repr
        within = (*within, id(value))
        if not isinstance(value, dict):  # the first values are enough to fill the width
            return "[" + ", ".join(_file_text(v, width, toml, within) for v in value[: max(width, 4)]) + "]"
        pairs = list(value.items())[: max(width, 4)]
        if toml:  # an inline table
            keys = [k if isinstance(k, str) and k and all(c.isascii() and (c.isalnum() or c in "-_") for c in k)
                    else _file_text(str(k), width, toml) for k, _ in pairs]  # fmt: skip
            inline = (f"{k} = {_file_text(v, width, toml, within)}" for k, (_, v) in zip(keys, pairs, strict=True))
            return "{" + ", ".join(inline) + "}"
        return "{" + ", ".join(f"{_json_key(k)}: {_file_text(v, width, toml, within)}" for k, v in pairs) + "}"
    text = json.dumps(value, ensure_ascii=False)
    return text if text.isprintable() else json.dumps(value)  # control characters escaped


def _json_key(key: Any) -> str:
    """A dict's key as JSON writes it (a str in quotes; json's "1" for 1, "true" for True);
    TypeError for one that JSON cannot write (a tuple)."""
    (name,) = json.loads(json.dumps({key: 0}))
    return _file_text(name, 0, False)


_WORDS_READ_AS_OTHERS = ("none", "not set", "true", "false")  # and numbers ("nan" too): _read_as_other


def setting_text(value: Any, file: bool = False) -> str:
    """A setting's value in a message as a command line (or with ``file``, a config file) gives
    it: "not set" for None, ``true``/``false`` for a switch (TOML's spelling), a plain word
    (``bf16``, ``mixture``) as it is, a list as a flag takes it (``0.5 0.75``; "none" when
    empty) or as TOML writes it (``[0.5, 0.75]``), cut to 40 characters at a value's end,
    anything else as :func:`json_repr` gives it: a word with spaces, quotes or control
    characters, and one that would read as another type (``'3'``, ``'true'``, ``'none'``), in
    quotes; a numpy scalar as the number it holds."""
    value = python_scalar(value)  # config stays free of numpy
    if value is None:
        return "not set"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (tuple, list)):
        parts = [setting_text(v, file) for v in value]
        text = ", ".join(parts) if file else " ".join(parts) or "none"
        if len(text) > 40:  # cut at the end of a value, not inside one
            cut = text.rfind(" ", 0, 37)  # none when the first value alone is that long: cut inside it
            text = text[:cut].rstrip(",") + " ..." if cut > 0 else text[:37] + "..."
        return f"[{text}]" if file else text
    if isinstance(value, str) and 0 < len(value) <= 40 and value.isprintable() and not _read_as_other(value):
        return value
    return file_text(value) if file else json_repr(value)  # a file's words in double quotes


def _read_as_other(word: str) -> bool:
    """Whether a word, shown without quotes, would read as a number, a switch, a list or not
    set, or hold characters that a plain spelling hides (spaces, quotes, backslashes)."""
    if any(c in word for c in " '\"\\,[]") or word.lower() in _WORDS_READ_AS_OTHERS:
        return True
    try:
        float(word)
    except ValueError:
        return False
    return True


def shell_path(path: Any) -> str:
    """``path`` as one word of a POSIX shell command that wae's parser takes as a path: quoted,
    and ``./`` before a name that starts with a dash (which would read as an option)."""
    text = str(path)
    return shlex.quote("./" + text if text.startswith("-") else text)


def checked_types(d: Any, sections: dict[str, type], spell: Callable[[Any], str] = json_repr) -> dict[str, Any]:
    """A stored config (parsed JSON, or the dict inside a checkpoint) with every field checked
    against its dataclass type, as a flag would be; :class:`UserError` names the first bad one,
    and its value as ``spell`` writes it (:func:`file_text` for a file's, Python's repr for a
    Python object's)."""
    if not isinstance(d, dict):
        raise UserError(f"a config must be a JSON object; got {spell(d)}")
    out: dict[str, Any] = dict(d)
    if "preset" in d and not isinstance(d["preset"], str):
        raise UserError(f"config preset must be str; got {spell(d['preset'])}")
    for name, cls in sections.items():
        if name not in d:
            continue
        values = d[name]
        if not isinstance(values, dict):
            raise UserError(f"config section '{name}' must be a JSON object; got {spell(values)}")
        hints = _type_hints(cls)
        out[name] = {
            k: _as_field_type(f"{name}.{k}", v, hints[k], spell) if k in hints else v for k, v in values.items()
        }
    return out


def _paper_schedule(epochs: int, lr: float, adversary_lr: float) -> TrainConfig:
    # batch 100, Adam, lr halved after 30 % of the epochs and divided by 5 after 50 % (the
    # paper's MNIST schedule: after epochs 30 and 50 of 100)
    return TrainConfig(
        batch_size=100, epochs=epochs, lr=lr, adversary_lr=adversary_lr, lr_milestones=(0.3, 0.5), lr_factors=(0.5, 0.2)
    )


def _mnist_fast(objective: str) -> Config:
    # The CPU default (make demo): a small conv net with a stride-1 last layer, about ten
    # minutes of training on 2 cores with native bf16 whose learning rate steps down in the last
    # 40 % of the epochs, d_z = 16, and a Gaussian mixture fitted to the codes at the end (the
    # choices measured in docs/results.md, "Sample quality"). WAE-MMD at lambda = 1 and lr 2e-3
    # with the L1 cost scaled by 0.01: over three seeds (fp32, session 23)
    # FID 16.49 +- 0.16 (prior) and 9.64 +- 0.13 (mixture),
    # against 18.17 +- 0.13 and 10.02 +- 0.11 at lambda = 3 and lr 1e-3 (the preset of sessions
    # 13-22), 21.39 +- 0.46 and 13.30 +- 0.84 with the authors' 0.05 * squared L2 at lambda 3 and
    # 23.71 +- 0.28 and 14.57 +- 0.18 at lambda 10. Since session 40 WAE-MMD's prior is a mixture
    # of min(10, d_z) Gaussians N(5 e_k, I): FID 12.94 +- 0.24 (prior) and 9.45 +- 0.37 (mixture)
    # over three seeds on a fast AMD EPYC host (bf16), against 16.41 +- 0.23 and 9.33 +- 0.20 with
    # N(0, I) there. WAE-GAN takes the same settings since session 42 (its latent adversary
    # matches the mixture prior more closely than the MMD estimate does: docs/results.md, "Session
    # 42"); `make demo` trains it. The other penalties keep N(0, I), the squared-L2 cost, the
    # paper's lambda = 10 and lr 1e-3 (neither lambda nor lr measured with them).
    tuned = objective in ("mmd", "gan")
    return Config(
        preset="mnist-fast",
        model=ModelConfig(arch="small", latent_dim=16),
        loss=LossConfig(
            objective=objective,
            lam=1.0 if tuned else 10.0,
            cost="l1" if tuned else "l2sq",
            cost_scale=0.01 if tuned else 0.05,
            prior="mixture" if tuned else "gaussian",
        ),
        train=TrainConfig(
            batch_size=100,
            epochs=25,
            lr=2e-3 if tuned else 1e-3,
            lr_milestones=(0.6, 0.8),
            lr_factors=(0.5, 0.2),
            fit_sampler="gmm",
        ),
    )


def _mnist_quality(objective: str) -> Config:
    # The CPU quality preset: mnist-fast's settings, its learning rates included, on the
    # twice-as-wide network for 30 epochs, under an hour on 2 cores with native bf16 (29 minutes
    # on a Xeon with AMX, 54-58 on an AMD EPYC with AVX-512 bf16; docs/results.md, "Sample
    # quality"). WAE-MMD at lambda = 1 with the L1 cost x 0.01 and lr 2e-3 since session 26, and
    # 8 prior draws a code in the MMD estimate since session 34: FID 14.77 +- 0.07 (prior) and
    # 8.77 +- 0.06 (mixture) over three seeds, against 15.23 +- 0.19 and 8.65 +- 0.15 with one
    # draw a code, 15.77 +- 0.26 and 8.76 +- 0.05 at lr 1e-3, and 19.15 +- 0.48 and
    # 11.63 +- 0.27 with 0.05 * squared L2 at lambda 3. The mixture prior of mnist-fast since
    # session 40 (one seed of `make quality`'s 50 epochs: 10.98 and 7.70, against 14.13 and 7.90
    # with N(0, I) for the same seed). The other penalties as in mnist-fast.
    cfg = _mnist_fast(objective)
    cfg.preset = "mnist-quality"
    cfg.model.arch = "wide"
    cfg.train.epochs = 30
    if objective == "mmd":
        cfg.loss.prior_draws = 8
    return cfg


def _mnist_paper(objective: str) -> Config:
    # Paper, section 4 / appendix: d_z = 8, lambda = 10, batch 100, 100 epochs, Adam lr 1e-3
    # (adversary 5e-4), lr halved at epoch 30 and divided by 5 at epoch 50. The squared-L2
    # cost is scaled by 0.05 as in the authors' code (equivalent to lambda = 200 unscaled).
    return Config(
        preset="mnist-paper",
        model=ModelConfig(arch="mnist-paper", latent_dim=8, adversary_width=512),
        loss=LossConfig(objective=objective, lam=10.0, cost="l2sq", cost_scale=0.05, prior_var=1.0),
        train=_paper_schedule(epochs=100, lr=1e-3, adversary_lr=5e-4),
    )


def _celeba_paper(objective: str) -> Config:
    # Our best reading of the paper's appendix (WAE.md): d_z = 64, sigma_z^2 = 2, images in
    # [-1, 1] with a tanh output; WAE-MMD lambda = 100 and lr 1e-3, WAE-GAN lambda = 1 and
    # lr 3e-4. The epoch count is our choice ("tens of epochs"). Data: --data CELEBA_FOLDER,
    # centre-cropped to 140x140 and resized to 64x64 as in the paper.
    gan = objective == "gan"
    return Config(
        preset="celeba-paper",
        data=DataConfig(dataset="celeba", range="pm1", image_size=64, crop=140),
        model=ModelConfig(arch="celeba-paper", latent_dim=64, output="tanh", adversary_width=1024),
        loss=LossConfig(objective=objective, lam=1.0 if gan else 100.0, cost="l2sq", cost_scale=0.05, prior_var=2.0),
        train=_paper_schedule(epochs=55, lr=3e-4 if gan else 1e-3, adversary_lr=3e-4 if gan else 5e-4),
    )


def _table(objective: str) -> Config:
    # Vector data (wae train --data FILE.csv|.npy|.npz): an MLP encoder and decoder on columns
    # standardised on the training split, an identity output and the plain squared-L2 cost (a
    # Gaussian decoder); small tables, so small batches and many epochs. Our choice, not the
    # paper's (docs/results.md, "Tables").
    return Config(
        preset="table",
        data=DataConfig(dataset="table"),
        model=ModelConfig(arch="mlp", latent_dim=8, output="identity", batch_norm=False, adversary_width=128),
        loss=LossConfig(objective=objective, lam=10.0, cost="l2sq", cost_scale=1.0),
        train=TrainConfig(batch_size=64, epochs=300, lr=1e-3, lr_milestones=(0.6, 0.8), lr_factors=(0.5, 0.2)),
    )


PRESETS = {
    "mnist-fast": _mnist_fast,
    "mnist-quality": _mnist_quality,
    "mnist-paper": _mnist_paper,
    "celeba-paper": _celeba_paper,
    "table": _table,
}


CUSTOM = "custom"  # the label of a config read from a dict that names no preset (Config.from_dict)


def is_preset(name: Any) -> bool:
    """Whether ``name`` names a preset: a string among :data:`PRESETS` (a list or a dict read from a
    file, or set with ``dataclasses.replace``, is not, and is not hashed)."""
    return isinstance(name, str) and name in PRESETS


def preset(name: str = "mnist-fast", objective: str = "mmd") -> Config:
    """A fresh copy of the named preset for ``objective`` ("mmd", "gan" or "vae")."""
    if not is_preset(name):
        raise UserError(f"unknown preset '{name}'; choose one of {', '.join(PRESETS)}")
    _check_objective(objective)
    return for_objective(PRESETS[name](objective), objective)


def _check_objective(objective: str) -> None:
    if not isinstance(objective, str) or objective not in OBJECTIVES:
        raise UserError(f"unknown objective '{objective}'; choose one of {', '.join(OBJECTIVES)}")


# ----------------------------------------------------------------------------- settings described


SECTIONS: dict[str, type] = {"data": DataConfig, "model": ModelConfig, "loss": LossConfig, "train": TrainConfig}


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    """``typing.get_type_hints(cls)`` of a config section, evaluated once (it parses each
    annotation's text: about 0.5 ms a field, asked of every field several times a command)."""
    return typing.get_type_hints(cls)


@functools.cache
def settings() -> tuple[tuple[str, dataclasses.Field[Any], type, bool], ...]:
    """Every setting as (section, field, type, whether None is allowed), the type without its
    ``| None``: ``int``, ``float``, ``str``, ``bool`` or ``tuple`` (of floats)."""
    rows = []
    for section, cls in SECTIONS.items():
        hints = _type_hints(cls)
        for f in dataclasses.fields(cls):
            kinds = typing.get_args(hints[f.name]) if typing.get_origin(hints[f.name]) is not tuple else ()
            kind = next((k for k in kinds if k is not type(None)), hints[f.name])
            rows.append((section, f, typing.get_origin(kind) or kind, type(None) in kinds))
    return tuple(rows)


def setting_named(name: str) -> tuple[str, dataclasses.Field[Any], type, bool]:
    """The row of :func:`settings` of the setting called ``name`` (names are unique across sections)."""
    return next(row for row in settings() if row[1].name == name)


def setting_problem(name: str, value: Any, spell: Callable[[Any], str] = json_repr) -> str | None:
    """:func:`problem` of ``value`` for the setting called ``name`` (``"lam"``): the check of a
    setting's value for another command's flag or field that takes the same quantity (``wae
    toy``'s lambdas are loss.lam's, with its bounds)."""
    _, f, kind, may_be_none = setting_named(name)
    return problem(f, kind, may_be_none, value, spell)


def differing_settings(
    there: Config, here: Config, leave_out: Collection[str] = ()
) -> Iterator[tuple[str, dataclasses.Field[Any], Any, Any]]:
    """Each setting in which two configs differ, as (section, field, value in ``there``, value in
    ``here``), in the order of :func:`settings`, but those whose names are in ``leave_out``
    (setting names are unique across sections). Callers word the differences. The mixture
    prior's K is compared as used: min(10, d_z) where it is not set, and only where both priors
    are the mixture (a run of session 39 recorded K = 10 whatever its prior); a K recorded alike
    in both that is used differently only follows d_z, which is named itself."""
    for section, f, _, _ in settings():
        if f.name not in leave_out:
            a, b = getattr(getattr(there, section), f.name), getattr(getattr(here, section), f.name)
            used_a, used_b = a, b
            if f.name == "prior_components":  # used by the mixture only (a prior that differs is named)
                both = there.loss.prior == here.loss.prior == "mixture"
                used_a, used_b = (prior_components(c) if both else None for c in (there, here))
            nan = isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)
            if used_a != used_b and a != b and not nan:  # the same NaN in both is one value (validation names it)
                # a setting neither run uses (an mlp's channels_last, recorded as given before it
                # was refused) is no difference: naming it would ask for a flag that is refused
                if not (unused_settings(there, {f.name: a}) and unused_settings(here, {f.name: b})):
                    yield section, f, a, b


_UNDESCRIBED = setting(None, "").metadata  # what a field declared without setting() is taken to say


def about(f: dataclasses.Field[Any]) -> dict[str, Any]:
    """The description :func:`setting` gave the field (help, choices, bounds, flag, ...)."""
    return {**_UNDESCRIBED, **f.metadata}


def flag_of(f: dataclasses.Field[Any]) -> str:
    """The command-line flag of a setting: its metadata's, else ``--field-name``."""
    return about(f)["flag"] or "--" + f.name.replace("_", "-")


def bounds_text(f: dataclasses.Field[Any]) -> str:
    """The allowed values of a setting in words: "one of a, b", ">= 0 and < 1", or ""."""
    meta = about(f)
    if meta["choices"]:
        return "one of " + ", ".join(meta["choices"])
    words = [(">=", meta["at_least"]), (">", meta["above"]), ("<=", meta["at_most"]), ("<", meta["below"])]
    return " and ".join(f"{op} {bound:g}" for op, bound in words if bound is not None)


def problem(
    f: dataclasses.Field[Any], kind: type, may_be_none: bool, value: Any, spell: Callable[[Any], str] = json_repr
) -> str | None:
    """What is wrong with ``value`` alone for the setting, in words ("must be >= 0; got -1"), or
    None: its choices and bounds (the field's metadata), then the rules of :func:`_beyond`; the
    value as ``spell`` writes it (default :func:`json_repr`: Python's spelling). The one check of
    a single value, which a flag's parser, a settings file's reader and :func:`validate` each
    call, so that a refusal names the source that gave the value, spelt as it gave it."""
    for number in value if isinstance(value, list | tuple) else [value]:
        if isinstance(number, Spelt) and (why := unheld_float(number.spelling, number)):
            return f"is {why}; got {cut_text(number.spelling, 40)}"
    # a Python caller's numpy or torch scalars as the numbers they hold: compared in float64, not
    # in float16 (whose cast of a bound of 1e6 warned of overflow)
    value = python_scalars(value)
    return _out_of_bounds(f, kind, may_be_none, value, spell) or (
        None if value is None else _beyond(f.name, kind, value, spell)
    )


def _out_of_bounds(
    f: dataclasses.Field[Any], kind: type, may_be_none: bool, value: Any, spell: Callable[[Any], str]
) -> str | None:
    meta = about(f)
    if value is None:
        return None if may_be_none else "must be set"
    if meta["choices"] and value not in meta["choices"]:
        return f"must be one of {', '.join(meta['choices'])}; got {spell(value)}"
    for number in value if kind is tuple else [value] if kind in (int, float) else []:
        low, high = meta["at_least"], meta["at_most"]
        fails = (low is not None and number < low) or (high is not None and number > high)
        fails |= (meta["above"] is not None and not number > meta["above"]) or (
            meta["below"] is not None and not number < meta["below"]
        )
        if kind is not int and finite_real(number) is None:  # (10**400: math.isfinite's OverflowError)
            fails = True
        if fails:
            wording = f"at least {low}" if kind is int and low not in (None, 0) else bounds_text(f)
            wording = " and ".join(w for w in (wording, "" if kind is int else "finite") if w)  # bounds, or none
            each = " each" if kind is tuple else ""
            why = f" ({meta['why']})" if meta["why"] else ""
            return f"must{each} be {wording}; got {spell(number)}{why}"
    return None


KERNEL_RANGE = (1e-12, 1e12)  # sigma_z^2 and each kernel scale: float32 kernels overflow or underflow beyond


def _beyond(name: str, kind: type, value: Any, spell: Callable[[Any], str]) -> str | None:
    """The rules on one setting's value beyond its metadata bounds, in words, or None: the size
    bounds (:data:`SIZE_BOUNDS`), float32's range for sigma_z^2 and the kernel scales
    (:data:`KERNEL_RANGE`), the mixture prior's separation, the step schedule's factors."""
    numbers = list(value) if kind is tuple else [value]
    each = " each" if kind is tuple else ""
    bound = _SIZE_BY_NAME.get(name)
    if bound is not None and value > bound:
        return f"must be at most {bound}; got {spell(value)}"
    if name in ("prior_var", "kernel_scales"):
        low, high = KERNEL_RANGE
        if wrong := [v for v in numbers if not low <= v <= high]:
            return f"must{each} be from {low:g} to {high:g}; got {spell(wrong[0])}"
    if name == "prior_separation" and not value <= 1e6:  # r sigma_z e_k in float32 codes, and their kernels
        return f"must be at most 1e6; got {spell(value)}"
    if name == "lr_factors" and (wrong := [v for v in numbers if not v > 0]):
        return f"must each be > 0; got {spell(wrong[0])}"
    most, why = _AT_MOST.get(name, (None, ""))
    if most is not None and (wrong := [v for v in numbers if not v <= most]):
        return f"must{each} be at most {most:g}; got {spell(wrong[0])} ({why})"
    if name in ("lr", "adversary_lr") and not value >= LR_LEAST:
        return f"must be at least {LR_LEAST:.4g}; got {spell(value)} (float32 holds a smaller rate as 0)"
    if kind in (float, tuple) and (tiny := [v for v in numbers if 0 < abs(v) < LR_LEAST]):
        if about(setting_named(name)[1])["above"] is not None:  # 0 itself is refused (time_budget, held_out)
            return f"must{each} be at least {LR_LEAST:.4g}; got {spell(tiny[0])}"
        return f"must{each} be 0 or at least {LR_LEAST:.4g} in size; got {spell(tiny[0])} (float32 holds it as 0)"
    return None


LR_MOST = 1e6  # a learning rate, and a step schedule's factor: Adam moves each weight by about lr a step
LR_LEAST = 1.1754943508222875e-38  # float32's smallest normal number: a rate below it is 0, or nearly
LR_FLOOR = 0.01  # where the cosine schedule ends and the warm-up starts, as a fraction of lr
_LR_WHY = "Adam moves each weight by about the learning rate a step; float32 overflows far beyond"
# beyond, the gradients' squares overflow float32 in Adam (its step is then 0: a run that trains
# nothing, reported as trained) or batch norm's statistics do
_GRADIENTS_WHY = "float32's gradients overflow far beyond"
_AT_MOST = {  # a setting's largest value (each, for a list), and why
    **dict.fromkeys(("lr", "adversary_lr", "lr_factors"), (LR_MOST, _LR_WHY)),
    **dict.fromkeys(
        ("lam", "cost_scale", "input_noise"), (1e6, _GRADIENTS_WHY)
    ),  # weights of the loss, its inputs' noise
    # in units of sigma_z: the codes' own spread is about 1 (5 between a mixture prior's components)
    "code_noise": (100.0, "beyond, the noise drowns the codes and the decoder learns from noise alone"),
}


def noise_words(input_noise: Any, code_noise: Any) -> str:
    """ ", input noise X, code noise Y sigma_z" for the training noises that are on ("" when
    none is): the lines that sum a run up (its report, its model card) tell two runs apart that
    differ in them (session 54)."""
    words = [f"input noise {input_noise}"] if input_noise else []
    words += [f"code noise {code_noise} σ_z"] if code_noise else []
    return "".join(f", {w}" for w in words)


def new_run_problem(name: str, value: Any, spell: Callable[[Any], str] = json_repr) -> str | None:
    """The rules on one setting's value that bind a new run only, in words, or None: a run saved
    before such a rule came is still read, sampled, evaluated and resumed as it was trained
    (:func:`validate_new`). ``kernel_scales`` names each scale once: a scale given twice weighs its
    kernel double (since session 53)."""
    if name == "kernel_scales" and (twice := repeated(value, float)):  # 1 and 1.0 alike
        first, again = map(spell, twice)
        return (
            "must name each scale once (a scale given twice weighs its kernel double); "
            f"got {first} twice{also_as(first, again)}"
        )
    return None


def number_text(value: float) -> str:
    """A number in few digits (``%g``), or in all it needs where few would read as another
    number (``1.0000000001``, not ``1``): a label or a recorded command that tells it apart."""
    short = f"{value:g}"
    return short if float(short) == value else repr(float(value))


def _beside(value: float, bound: float) -> str:
    """``value`` in a message beside ``bound``: in few digits, or in all it needs when few would
    read as the bound itself ("reaches 1e+06: at most 1e+06" for 1000000.1)."""
    short = f"{value:.4g}"
    return short if float(short) != bound else repr(value)


def lr_factor_range(cfg: Config) -> tuple[float, float]:
    """The least and the largest factor the schedule multiplies the learning rates by: the step
    schedule's factors apply cumulatively (1 before the first milestone); the cosine schedule
    ends at :data:`LR_FLOOR`, where a warm-up (``train.lr_warmup``) starts with either."""
    products = (
        [1.0]
        if cfg.train.lr_schedule != "step"
        else [*itertools.accumulate(cfg.train.lr_factors, operator.mul, initial=1.0)]
    )
    if cfg.train.lr_schedule != "step" or cfg.train.lr_warmup > 0:
        products.append(LR_FLOOR)
    return min(products), max(products)


def prior_components(cfg: Config) -> int:
    """K, the mixture prior's components: loss.prior_components, or min(10, latent_dim) when it is
    not set (one mean an axis; ten for the ten digits where d_z allows)."""
    from .priors import default_components  # priors imports torch; config stays light

    return default_components(cfg.model.latent_dim, cfg.loss.prior_components)


# settings that only some runs use: {setting: (whose, what uses it as (section, field, value)
# triples, a value or a tuple of the values that use it)}. A flag given for one in a run that
# does not use it would train as if it were not given, with no word said.
_MIXTURE = ("the mixture prior's", (("loss", "prior", "mixture"),))
_GAN = ("WAE-GAN's adversary's", (("loss", "objective", "gan"),))
_FOLDERS = ("an image folder's", (("data", "dataset", ("folder", "celeba")),))
_SINKHORN = ("the Sinkhorn penalty's", (("loss", "objective", "sinkhorn"),))
_MLP = ("the mlp network's (tables)", (("model", "arch", "mlp"),))
_LABELS = ("a conditional run's", (("data", "condition", "labels"),))
_SYNTHETIC = ("the synthetic data's", (("data", "dataset", "synthetic"),))
_STEP = ("the step schedule's", (("train", "lr_schedule", "step"),))
_CONV = ("the convolutional networks'", (("model", "arch", tuple(a for a in ARCHS if a != "mlp")),))


class _Given:
    """A :data:`_USED_BY` condition met by any value but None (a setting that is on when given)."""

    def __str__(self) -> str:
        return "given"


_BUDGET = ("a time budget's", (("train", "time_budget", _Given()),))
_USED_BY: dict[str, tuple[str, tuple[tuple[str, str, Any], ...]]] = {
    "prior_components": _MIXTURE,
    "prior_separation": _MIXTURE,
    "adversary_lr": _GAN,
    "adversary_width": _GAN,
    "adversary_depth": _GAN,
    "kernel": ("WAE-MMD's", (("loss", "objective", "mmd"),)),
    "kernel_scales": ("the imq kernel's", (("loss", "objective", "mmd"), ("loss", "kernel", "imq"))),
    "projections": ("SWAE's", (("loss", "objective", "swd"),)),
    "sinkhorn_epsilon": _SINKHORN,
    "sinkhorn_iterations": _SINKHORN,
    "logvar_clip": ("a random encoder's", (("model", "encoder", "gaussian"),)),
    "mlp_width": _MLP,
    "mlp_depth": _MLP,
    "label_dim": _LABELS,
    # the VAE's KL is per image already: it has no class penalty to switch (vae_step reads none)
    "class_penalty": (
        "a conditional WAE's",
        (("data", "condition", "labels"), ("loss", "objective", tuple(o for o in OBJECTIVES if o != "vae"))),
    ),
    "synthetic_count": _SYNTHETIC,
    "synthetic_size": _SYNTHETIC,
    "held_out": ("a table's", (("data", "dataset", "table"),)),
    "lr_milestones": _STEP,
    "lr_factors": _STEP,
    "image_size": _FOLDERS,
    "grey": _FOLDERS,
    "crop": _FOLDERS,
    "cache": _FOLDERS,
    "workers": ("uncached image folders'", (*_FOLDERS[1], ("data", "cache", False))),
    "batch_norm": _CONV,
    "channels_last": _CONV,
    "budget_lr": _BUDGET,
}


def in_words(items: Sequence[Any], last: str) -> str:
    """Items in words, the last joined by ``last``: ``a``, ``a and b``, ``a, b or c``."""
    words = [str(item) for item in items]
    return f" {last} ".join(filter(None, (", ".join(words[:-1]), words[-1])))


def _either(value: Any) -> str:
    """A value of a :data:`_USED_BY` condition in words: ``celeba`` or ``folder or celeba``."""
    return in_words(value, "or") if isinstance(value, tuple) else str(value)


def _a_choice(cfg: Config, section: str, name: str, value: Any) -> bool:
    """Whether ``value`` is one of the choices of setting ``section.name`` (True for a setting
    without choices)."""
    meta = about(next(f for f in dataclasses.fields(getattr(cfg, section)) if f.name == name))
    return not meta["choices"] or value in meta["choices"]


def _flag_named(name: str, value: Any = None) -> str:
    """The command-line flag of the setting called ``name`` (a field of any section) that gives
    ``value``: ``--no-cache`` for False, ``--cache`` otherwise."""
    return switch_flag(next(flag_of(f) for _, f, _, _ in settings() if f.name == name), value is not False)


def switch_flag(flag: str, on: bool) -> str:
    """The flag of a switch that turns it ``on`` or off: ``--cache`` or ``--no-cache``."""
    return flag if on else "--no-" + flag.removeprefix("--")


def plural(count: Any) -> str:
    """The ending of a noun counted ``count``: "" for 1, else "s" ("1 epoch", "3 epochs")."""
    return "" if count == 1 else "s"


def unused_settings(cfg: Config, given: Mapping[str, Any], spell: Callable[[str], str] | None = None) -> str:
    """Of the settings ``given`` by hand ({field name: value}), those that ``cfg`` does not use,
    in a message that names them, whose settings they are and what the run has instead ("": all
    are used). E.g. ``prior_components`` with the Gaussian prior. A value of None (not set) is not
    a setting given. ``spell`` writes a field's name as the caller gave it (a flag,
    ``--prior-components``, by default)."""

    def words(field: str, value: Any) -> str:  # "prior gaussian"; a switch as the caller sets it
        if isinstance(value, bool):  # "--no-cache" beside flags, "cache false" (TOML's spelling) beside names
            return _flag_named(field, value) if spell is None else f"{field.replace('_', ' ')} {str(value).lower()}"
        return f"no {field.replace('_', ' ')}" if value is None else f"{field.replace('_', ' ')} {_either(value)}"

    def met(value: Any, used: Any) -> bool:  # whether ``value`` meets a condition's ``used``
        if isinstance(used, _Given):
            return value is not None
        return value in (used if isinstance(used, tuple) else (used,))

    def failed(needs: tuple[tuple[str, str, Any], ...]) -> list[str]:  # the conditions the run fails
        values = [(section, field, getattr(getattr(cfg, section), field), used) for section, field, used in needs]
        return [
            words(field, value)
            for section, field, value, used in values
            # a value that is none of its choices ("Mixture") is the error to name, by validate
            if not met(value, used) and _a_choice(cfg, section, field, value)
        ]

    groups: dict[str, list[str]] = {}
    for name, value in given.items():
        if name in _USED_BY and value is not None and failed(_USED_BY[name][1]):
            groups.setdefault(_USED_BY[name][0], []).append(name)
    phrases = []
    for whose, names in groups.items():
        needs = _USED_BY[names[0]][1]
        spelt = [spell(name) if spell else _flag_named(name, given[name]) for name in names]
        flags = in_words(spelt, "and")
        are, plural = ("is", "") if len(names) == 1 else ("are", "s")
        how = " and ".join(words(field, value) for _, field, value in needs)
        has = failed(needs)[0]  # the first: "dataset mnist", not "dataset mnist, cache True" (--workers)
        phrases.append(f"{flags} {are} {whose} setting{plural} (used with {how}); this run has {has}")
    if not phrases:
        return ""
    return "; ".join(phrases) + (": leave it out" if sum(map(len, groups.values())) == 1 else ": leave them out")


def _pronoun(unused: str) -> str:
    """ "them" for a message of :func:`unused_settings` that names several settings, else "it"."""
    return "them" if unused.endswith("them out") else "it"


def unused_changes(cfg: Config) -> str:
    """A note naming the settings of ``cfg`` that differ from its preset's (for its objective) and
    that the run does not use, in :func:`unused_settings`' words with sections ("note:
    loss.prior_components is the mixture prior's setting ...; this run has prior gaussian: leave
    it out (the run trains without it)"); "" when there are none or ``cfg.preset`` names no
    preset. It names what a ``Config`` changed by hand (``dataclasses.replace``) or read from a
    file sets in vain, which :func:`override` and the flags refuse as they are given."""
    objective = python_scalar(cfg.loss.objective)  # (an array's "in" is numpy's ambiguous truth)
    name = python_scalar(cfg.preset)  # a 0-d array of a preset's name, which validate takes
    if not is_preset(name) or not isinstance(objective, str) or objective not in OBJECTIVES:
        return ""
    cfg = plain_config(cfg)  # compared as the values it holds: an array set by hand as its items
    base = preset(cfg.preset, cfg.loss.objective)
    sections = {f.name: section for section, f, _, _ in settings()}
    given = {}
    for name in _USED_BY:
        value, was = (getattr(getattr(c, sections[name]), name) for c in (cfg, base))
        empty = isinstance(value, list | tuple) and not value  # "none" (the cosine schedule's milestones)
        if (tuple(value) if isinstance(value, list) else value) != was and not empty:
            given[name] = value
    unused = unused_settings(cfg, given, lambda name: f"{sections[name]}.{name}")
    if not unused:
        return ""
    return f"note: {unused} (the run trains without {_pronoun(unused)})"


def _prior_trick_is_gans(objective: str) -> str:
    if objective == "gan":
        return ""
    return (
        f"; it is WAE-GAN's (a term of the adversary's logit), and {objective} has no adversary "
        "(give --objective gan, or --no-prior-trick)"
    )


def validate_new(cfg: Config, spell: Callable[[Any], str] = json_repr) -> None:
    """:func:`validate` (values named as ``spell`` writes them), and the rules that bind a run as
    it starts, which came after some runs were saved: such a run is still read, sampled,
    evaluated and resumed as it was trained. :class:`UserError` naming the setting."""
    validate(cfg, spell)
    if cfg.train.lr_scale != 1:
        raise UserError(
            f"train.lr_scale {spell(cfg.train.lr_scale)} is set by training (a time budget's decision with --budget-lr "
            "sqrt) and kept by a resume: a new run starts at 1 (leave it out; give --lr for another rate)"
        )
    if trouble := new_run_problem("kernel_scales", cfg.loss.kernel_scales, spell):
        raise UserError(f"loss.kernel_scales {trouble}")
    if cfg.loss.prior_trick and cfg.loss.objective != "gan":
        # it only ever changed WAE-GAN's adversary; other objectives trained as if it were off
        # (refused since session 40; runs trained with it before keep it on --resume)
        raise UserError("loss.prior_trick is set" + _prior_trick_is_gans(cfg.loss.objective))
    if cfg.loss.objective == "vae" and cfg.loss.prior != "gaussian":
        # its KL is to N(0, sigma_z^2 I) in closed form, while its samples came from loss.prior
        # (refused since session 39; runs trained with it before keep it on --resume)
        raise UserError(
            f"the VAE objective's KL is to the Gaussian prior; loss.prior {cfg.loss.prior} would train against one "
            "prior and sample from another (give --prior gaussian)"
        )
    if cfg.loss.prior_draws > 1 and cfg.loss.kernel != "imq":
        # the rbf kernel's bandwidth is the pooled sample's median distance: more draws would move
        # it towards the prior's own distances and change the penalty itself, not only its noise
        # (refused since session 32; runs trained with it before keep it on --resume)
        from_preset = is_preset(cfg.preset) and PRESETS[cfg.preset](cfg.loss.objective).loss.prior_draws > 1
        whose = f" (the {cfg.preset} preset's)" if from_preset else ""
        raise UserError(
            f"loss.prior_draws {cfg.loss.prior_draws}{whose} needs the imq kernel: the {cfg.loss.kernel} kernel takes "
            "its bandwidth from the pooled sample, which more draws would change (give --prior-draws 1)"
        )


def check_written_values(d: dict[str, Any], spell: Callable[[Any], str]) -> None:
    """:class:`UserError` naming the first setting of a stored config's JSON object ``d`` (its
    types already checked: :meth:`Config.from_dict`) whose value alone is refused
    (:func:`problem`), named as the file writes it, before the conversion to the field's type
    turns ``-1`` into ``-1.0``; in :func:`validate`'s order, so that the same setting is named."""
    for section, f, kind, may_be_none in settings():
        values = d.get(section)
        if isinstance(values, dict) and f.name in values:
            trouble = problem(f, kind, may_be_none, values[f.name], spell)
            if trouble:
                raise UserError(f"{section}.{f.name} {trouble}")


def validate(cfg: Config, spell: Callable[[Any], str] = json_repr) -> None:
    """Raise :class:`UserError` naming the first setting that cannot work: one out of its
    choices or bounds (the fields' metadata), or settings that do not go together. ``spell``
    writes the value named: :func:`file_text` for a config read from a file (``"nope"``,
    ``NaN``), default :func:`json_repr` (Python's spelling) for one made in Python."""
    cfg = plain_config(cfg)  # a Python caller's numpy and torch scalars compared as the numbers they hold
    if not is_preset(cfg.preset) and cfg.preset != CUSTOM:  # the label chooses the defaults notes weigh
        raise UserError(f"preset must be one of {', '.join(PRESETS)} (or {CUSTOM}); got {spell(cfg.preset)}")
    for section, f, kind, may_be_none in settings():
        trouble = problem(f, kind, may_be_none, getattr(getattr(cfg, section), f.name), spell)
        if trouble:
            raise UserError(f"{section}.{f.name} {trouble}")
    if len(cfg.train.lr_milestones) != len(cfg.train.lr_factors):
        raise UserError("train.lr_milestones and train.lr_factors must have the same length")
    if cfg.train.lr_scale != 1 and cfg.train.budget_lr != "sqrt":
        raise UserError(
            f"train.lr_scale {spell(cfg.train.lr_scale)} is set by a time budget's decision with --budget-lr sqrt; "
            f"this run has budget_lr {spell(cfg.train.budget_lr)} (1 without)"
        )
    if not cfg.loss.kernel_scales:
        raise UserError("loss.kernel_scales must be a non-empty list of positive numbers")
    least, peak = lr_factor_range(cfg)
    for name, lr in (("train.lr", cfg.train.lr), ("train.adversary_lr", cfg.train.adversary_lr)):
        if not lr * peak <= LR_MOST:  # each alone is in bounds: the factors' product takes it beyond
            raise UserError(
                f"{name} {lr:g} times the step schedule's train.lr_factors reaches {_beside(lr * peak, LR_MOST)}: "
                f"at most {LR_MOST:g} ({_LR_WHY})"
            )
        if not lr * least >= LR_LEAST:
            if cfg.train.lr_schedule == "cosine":
                by = "at the cosine schedule's end (lr / 100)"
            elif least < LR_FLOOR or cfg.train.lr_warmup == 0:
                by = "times train.lr_factors"
            else:
                by = "at the warm-up's start (lr / 100)"
            raise UserError(
                f"{name} {lr:g} {by} falls to {_beside(lr * least, LR_LEAST)}: at least {LR_LEAST:.4g} (float32 "
                "holds a smaller rate as 0)"
            )
    if cfg.loss.objective == "cw" and (cfg.loss.prior != "gaussian" or cfg.model.latent_dim < 2):
        raise UserError("the cw objective has a closed form for the Gaussian prior with latent_dim >= 2 only")
    if cfg.loss.logvar_l1 > 0 and (cfg.model.encoder != "gaussian" or cfg.loss.objective not in SAMPLE_PENALTIES):
        raise UserError("loss.logvar_l1 needs a gaussian encoder and a sample-penalty objective (mmd, swd, ...)")
    if cfg.loss.prior_draws > 1 and cfg.loss.objective != "mmd":
        raise UserError(
            f"loss.prior_draws is for the mmd objective; got {cfg.loss.prior_draws} with {cfg.loss.objective} "
            "(give --prior-draws 1)"
        )
    if cfg.loss.objective == "vae" and cfg.model.encoder != "gaussian":
        raise UserError("the VAE objective needs model.encoder = gaussian")
    if cfg.loss.cost == "bce" and cfg.model.output != "sigmoid":
        raise UserError("the bce cost needs data in [0, 1] and model.output = sigmoid")
    if cfg.model.output == "tanh" and cfg.data.range != "pm1":
        raise UserError("model.output = tanh needs data.range = pm1 (pixels in [-1, 1])")
    table, mlp, identity = cfg.data.dataset == "table", cfg.model.arch == "mlp", cfg.model.output == "identity"
    if cfg.data.condition != "none" and table:  # images through the mlp: refused below, for the mlp
        raise UserError("conditional runs (data.condition = labels) are for images; tables have no labels here")
    if table != mlp or table != identity:
        if not table and mlp and identity and cfg.data.path and cfg.data.dataset in ("npz", "folder", "celeba"):
            raise UserError(  # --preset table with a file that is not read as a table (a .tsv, an image .npz)
                f"{cfg.data.path} is not a table: a table is a .csv, .npy or .npz file (an .npz with a 2-D "
                "x_train or x array); model.arch = mlp and model.output = identity (--preset table) are for tables"
            )
        raise UserError(
            "vector data (dataset table) go with model.arch = mlp and model.output = identity, and those with "
            f"tables only; got dataset {cfg.data.dataset}, arch {cfg.model.arch}, output {cfg.model.output} "
            f"({'use --preset table' if table else 'the table preset is for tables: give --data FILE.csv'})"
        )
    if cfg.model.output == "sigmoid" and cfg.data.range != "01":
        raise UserError("model.output = sigmoid needs data.range = 01 (pixels in [0, 1])")
    if cfg.loss.prior_trick and cfg.loss.prior != "gaussian":
        raise UserError(
            f"the prior trick needs the Gaussian prior; loss.prior is {cfg.loss.prior}"
            + (_prior_trick_is_gans(cfg.loss.objective) or " (give --prior gaussian)")
        )
    components = cfg.loss.prior_components
    if cfg.loss.prior == "mixture" and components is not None and components > cfg.model.latent_dim:
        raise UserError(
            f"loss.prior_components {cfg.loss.prior_components}: the mixture prior places its means on the first "
            f"axes of model.latent_dim {cfg.model.latent_dim}, so at most {cfg.model.latent_dim}"
        )
    unknown = [name for name in cfg.train.log.split(",") if name.strip() and name.strip() not in TRACKERS]
    if unknown:
        raise UserError(f"train.log: unknown tracker {spell(unknown[0].strip())}; choose from {', '.join(TRACKERS)}")
    if cfg.data.dataset == "npz" and not cfg.data.path:
        raise UserError("dataset npz needs a path (--data FILE.npz)")
    if cfg.data.condition == "labels" and cfg.data.dataset == "celeba":
        raise UserError("data.condition labels: CelebA is read without labels here; give a folder of class sub-folders")
    check_sizes(cfg)


# upper bounds of sizes, far above any use, that keep a typo or a crafted file from asking for
# terabytes: an image side, a code dimension, the adversary's width
MAX_IMAGE_SIDE = 4096
MAX_LATENT_DIM = 65536
MAX_EPOCHS = 1_000_000  # a schedule planned over more overflowed the float arithmetic of its steps
MAX_ADVERSARY_WIDTH = 16384


def check_sections(cfg: Config) -> None:
    """:class:`UserError` when a section of ``cfg`` is not its own dataclass (a dict, another
    section, a subclass: ``cfg.train = cfg.loss`` made every train setting "unknown")."""
    for name, kind in SECTIONS.items():
        if type(section := getattr(cfg, name)) is not kind:
            raise UserError(f"config {name} must be a {kind.__name__}; got a {type(section).__name__}")


def check_types(cfg: Config) -> None:
    """:class:`UserError` when a field holds a value of another type than its dataclass says
    (``latent_dim=2.5``, ``lam="10"``), however the config was made."""
    if not isinstance(cfg, Config):
        raise UserError(f"a config must be a wae.Config; got {type(cfg).__name__}")
    check_sections(cfg)
    # the values as given, not as to_dict makes them: Fraction(3, 1) for an int is named so, not 3.0
    given = {
        name: {
            f.name: (array_items(value) if takes_list(kind, f.name) else value)
            for f in dataclasses.fields(kind)
            for value in (getattr(getattr(cfg, name), f.name),)
        }
        for name, kind in SECTIONS.items()
    }
    checked_types({"preset": python_scalar(cfg.preset), **given}, SECTIONS)


# (section, setting): the largest size :func:`problem` takes (so a flag's parser, a settings
# file's reader and validate each refuse a typo or a crafted file that asks for terabytes)
SIZE_BOUNDS: dict[tuple[str, str], int] = {
    ("data", "image_size"): MAX_IMAGE_SIDE,
    ("data", "synthetic_size"): MAX_IMAGE_SIDE,
    ("data", "crop"): MAX_IMAGE_SIDE,
    ("model", "latent_dim"): MAX_LATENT_DIM,
    ("model", "adversary_width"): MAX_ADVERSARY_WIDTH,
    ("model", "adversary_depth"): 64,
    ("model", "mlp_width"): MAX_ADVERSARY_WIDTH,
    ("model", "mlp_depth"): 64,
    ("model", "label_dim"): MAX_LATENT_DIM,
    ("data", "workers"): 256,
    ("train", "threads"): 1024,
    ("train", "epochs"): MAX_EPOCHS,
    ("train", "batch_size"): MAX_BATCH,
    ("train", "schedule_epochs"): MAX_EPOCHS,
    ("loss", "prior_draws"): 1024,
    ("loss", "prior_components"): MAX_LATENT_DIM,
}
_SIZE_BY_NAME = {name: bound for (_, name), bound in SIZE_BOUNDS.items()}  # a field's name is unique


def check_sizes(cfg: Config) -> None:
    """:class:`UserError` for a seed beyond numpy's, and for a synthetic dataset larger than the
    memory available (the bounds of :data:`SIZE_BOUNDS` are :func:`problem`'s)."""
    check_seed(cfg.train.seed, "train.seed")
    if cfg.loss.objective == "swd":  # the codes of a batch projected on every direction, and their sort
        check_memory(3 * 4 * cfg.train.batch_size * cfg.loss.projections * 2, "loss.projections (swd)")
    if cfg.data.dataset in ("folder", "celeba"):  # known before the folder is read and cached
        check_image_side(cfg.model.arch, cfg.data.image_size)
    if cfg.data.dataset == "synthetic":
        count = cfg.data.synthetic_count + max(cfg.data.synthetic_count // 4, 2)
        check_memory(3 * 4 * count * cfg.data.synthetic_size**2, "the synthetic dataset")


def check_image_side(arch: str, size: int) -> None:
    """:class:`UserError` when architecture ``arch`` cannot produce ``size`` x ``size`` images."""
    from .nets import ARCHITECTURES, decoder_start_size

    try:
        decoder_start_size(ARCHITECTURES[arch], size)
    except ValueError as err:
        raise UserError(f"architecture '{arch}' cannot take {size}x{size} images: {err}") from None


# The most codes one call draws or decodes (sample's n, interpolate's n * steps): far beyond any
# memory, so that the memory check refuses first; above it the sizes stop being numbers that
# torch (int64) and the memory check (float GiB) can hold.
MAX_COUNT = 2**48
MAX_SEED = 2**32 - 1  # numpy's and scikit-learn's bound; torch's generators take it too
GENERATOR_SEEDS = 2**64 - 1  # the largest seed a torch.Generator takes (training draws from seed + k)


def check_seed(seed: int | None, name: str = "--seed") -> None:
    """:class:`UserError` for a seed outside [0, 2^32 - 1] (None: no seed given)."""
    if seed is not None and not 0 <= seed <= MAX_SEED:
        raise UserError(f"{name} must be in [0, {MAX_SEED}]; got {json_repr(seed)}")


def available_memory() -> int:
    """Bytes of memory available to a new allocation (MemAvailable on Linux; else all of it)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 62


def check_memory(nbytes: int, what: str) -> None:
    """:class:`UserError` before allocating ``nbytes`` for ``what`` when that is more than the
    memory available now."""
    free = available_memory()
    if nbytes > free:
        raise UserError(f"{what} would need {nbytes / 2**30:.1f} GiB of memory; {free / 2**30:.1f} GiB are available")


# ----------------------------------------------------------------------------- settings in files

_KIND_WORDS = {
    int: "a whole number",
    float: "a number",
    str: "a string",
    bool: "true or false",
    tuple: "a list of numbers",
}


def _typed(kind: type, may_be_none: bool, value: Any) -> tuple[bool, Any]:
    """(whether ``value`` read from a file has the setting's type, the value as that type)."""
    if value is None:
        return may_be_none, None
    if kind is tuple:
        numbers = isinstance(value, list) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
        )
        return numbers, tuple(float(v) for v in value) if numbers else value
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return True, float(value)  # a whole number, or a Spelt as the plain float it holds
    return isinstance(value, kind) and (kind is bool or not isinstance(value, bool)), value


def is_json_file(path: Path) -> bool:
    """Whether a settings file is read as JSON (a run's config.json, any .json) or as TOML."""
    return path.suffix.lower() == ".json"


def file_spelling(path: Path) -> Callable[[Any], str]:
    """How a settings file ``path`` writes a value (:func:`file_text`): as JSON for a .json file
    (a run's config.json), else as TOML (:func:`is_json_file`)."""
    return functools.partial(file_text, toml=not is_json_file(path))


def read_settings(path: Path, new: bool = True) -> dict[str, Any]:
    """The settings in a TOML file (``preset = ...`` and the tables [data] [model] [loss] [train])
    or in a run's config.json, checked key by key: an unknown key, or a value of the wrong type or
    out of bounds, is a :class:`UserError` naming the key and the file; ``new``: also by the
    rules for new runs (:func:`new_run_problem`; not for a run the command continues)."""
    try:
        if not path.is_file():  # a folder, FIFO or device would hang or never end
            raise UserError(f"--config {path}: not a file")
        if path.stat().st_size > 1 << 20:
            raise UserError(f"--config {path}: larger than 1 MiB, not a settings file")
        text = path.read_text()
    except OSError as err:
        raise UserError(f"--config {path}: cannot read it ({failure_reason(err)})") from None
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: cannot be read ({failure_reason(err)})") from None
    is_json = is_json_file(path)
    try:
        raw = parse_json(text, unique_keys=True) if is_json else parse_toml(text)
    except ValueError as err:  # malformed, or valid syntax that no reader can take (parse_json, parse_toml)
        raise UserError(f"{path}: cannot be read ({failure_reason(err)})") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path}: not a table of settings")
    described = {(section, f.name): (f, kind, none) for section, f, kind, none in settings()}
    spell = file_spelling(path)  # each value as the file writes it
    found: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "preset":
            if not is_preset(value):
                raise UserError(f"{path}: preset must be one of {', '.join(PRESETS)}; got {spell(value)}")
            found["preset"] = value
            continue
        if key not in SECTIONS:
            raise UserError(
                f"{path}: unknown key {spell(key)} (a file holds preset and the tables {', '.join(SECTIONS)})"
            )
        if not isinstance(value, dict):  # [[train]], train = 5, or a JSON key given twice
            raise UserError(f"{path}: '{key}' must be one table of settings ([{key}]); got {spell(value)}")
        for name, item in value.items():
            if (key, name) not in described:
                raise UserError(f"{path}: unknown key {spell(f'{key}.{name}')}")
            f, kind, none = described[key, name]
            right_type, typed = _typed(kind, none, item)
            if not right_type:
                raise UserError(f"{path}: {key}.{name} must be {_KIND_WORDS[kind]}; got {spell(item)}")
            # as the file wrote it: -1, not the float -1.0; the settings of a new run
            trouble = problem(f, kind, none, item, spell) or (new_run_problem(name, item, spell) if new else None)
            if trouble:
                raise UserError(f"{path}: {key}.{name} {trouble}")
            found.setdefault(key, {})[name] = typed
    if is_json:  # a run's config.json: what that run recorded about itself does not carry over
        data, train = found.get("data", {}), found.get("train", {})
        data.pop("fingerprint", None)
        train.pop("lr_scale", None)  # a budget's factor: a new run's budget decides its own
        if train.get("schedule_epochs") == raw.get("train", {}).get("epochs"):
            train.pop("schedule_epochs", None)  # set by that run to its own epochs
    return found


def from_settings(found: dict[str, Any], preset_name: str | None = None, objective: str | None = None) -> Config:
    """The preset (``preset_name``, else the file's, else mnist-fast) for the objective
    (``objective``, else the file's, else mmd), with the settings ``found`` by
    :func:`read_settings` over it, and a given ``objective`` over those."""
    name = preset_name or found.get("preset", "mnist-fast")
    cfg = preset(name, objective or found.get("loss", {}).get("objective", "mmd"))
    cfg = set_fields(cfg, **{f"{s}__{k}": v for s in SECTIONS for k, v in found.get(s, {}).items()})
    return for_objective(cfg, objective) if objective else cfg


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON's string escapes are TOML's
    return "[" + ", ".join(_toml_value(v) for v in value) + "]"


def to_toml(cfg: Config) -> str:
    """``cfg`` as the TOML file that ``wae train --config`` reads back to the same config (a
    setting that is not set, None, is a comment). :class:`UserError` for a setting of the wrong
    type."""
    # a value of another type set with dataclasses.replace: named, not a TypeError of json; numpy's
    # numbers and an array where a list is taken written as the Python values they hold
    cfg = plain_config(cfg)
    lines = [f"preset = {json.dumps(cfg.preset)}"]
    for section in SECTIONS:
        lines += ["", f"[{section}]"]
        for name, value in dataclasses.asdict(getattr(cfg, section)).items():
            lines.append(f"# {name}: not set" if value is None else f"{name} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


@functools.cache
def _presets_by_objective(name: str) -> tuple[tuple[str, Config], ...]:
    return tuple((objective, preset(name, objective)) for objective in OBJECTIVES)


def defaults_by_objective(section: str, name: str, preset_name: str = "mnist-fast") -> list[tuple[Any, list[str]]]:
    """The default of setting ``section.name`` in a preset, grouped by the objectives that share it:
    ``[(value, [objective, ...]), ...]`` in the order of OBJECTIVES (mmd's first); one group
    where every objective has the same default (loss.lam of mnist-fast: 1.0 for mmd and vae, 10.0
    for the other WAEs)."""
    presets = _presets_by_objective(preset_name)
    if (section, name) == ("loss", "objective"):  # the preset's own objective: mmd
        return [(presets[0][1].loss.objective, [objective for objective, _ in presets])]
    groups: list[tuple[Any, list[str]]] = []
    for objective, cfg in presets:
        value = getattr(getattr(cfg, section), name)
        for known, objectives in groups:
            if known == value:
                objectives.append(objective)
                break
        else:
            groups.append((value, [objective]))
    return groups


def by_objective_text(groups: list[tuple[Any, list[str]]], shown: Callable[[Any], str]) -> str:
    """``groups`` of :func:`defaults_by_objective` as text: "3.0 (mmd); 10.0 (gan, swd, ...)"."""
    if len(groups) == 1:
        return shown(groups[0][0])
    return "; ".join(f"{shown(value)} ({', '.join(objectives)})" for value, objectives in groups)


def settings_table() -> str:
    """The README's table of settings, made from the fields (``make settings-table`` writes it)."""
    lines = [
        "| setting | flag | default (mnist-fast; by objective where they differ) | allowed | what it does |",
        "|---|---|---|---|---|",
    ]
    for section, f, kind, _ in settings():
        groups = defaults_by_objective(section, f.name)
        shown = by_objective_text(groups, lambda v: "not set" if v is None else _toml_value(v).strip('"'))
        flag = f"`{flag_of(f)}`, `--no-{flag_of(f)[2:]}`" if kind is bool else f"`{flag_of(f)}`"
        if about(f)["recorded"]:
            flag = "(recorded by the run)"
        cells = [f"`{section}.{f.name}`", flag, shown, bounds_text(f), about(f)["help"]]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


# oneDNN's instruction sets without bf16 dot products, as its CPU dispatcher control names them
# (ONEDNN_MAX_CPU_ISA; DNNL_MAX_CPU_ISA is the older name of the same variable)
_ONEDNN_ISAS_WITHOUT_BF16 = frozenset(
    {"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI"}
)


def cpu_flags() -> set[str] | None:
    """The CPU's feature flags as Linux lists them (/proc/cpuinfo), None where they cannot be read."""
    try:
        with open("/proc/cpuinfo") as f:
            return {flag for line in f if line.startswith("flags") for flag in line.partition(":")[2].split()}
    except OSError:
        return None


def onednn_isa_cap() -> str | None:
    """``ONEDNN_MAX_CPU_ISA=...`` (or the older ``DNNL_MAX_CPU_ISA``) as set, when that cap
    holds oneDNN to an instruction set without bf16 dot products; else None."""
    for name in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        value = os.environ.get(name, "")
        if value:  # the first one set is the one oneDNN reads, in any case; a value with spaces it ignores
            return f"{name}={value}" if value.upper() in _ONEDNN_ISAS_WITHOUT_BF16 else None
    return None


def bf16_emulated() -> str | None:
    """Why this process would emulate bf16 on the CPU (slower than fp32: 3.6x with oneDNN held
    to AVX-512 without bf16, 17x held to AVX2, on the demo's network, docs/reliability.md
    "Session 47"), or None where bf16 is native. Native needs the CPU's flag (avx512_bf16 or
    amx_bf16 in /proc/cpuinfo), oneDNN in use (``torch.backends.mkldnn``: a bf16 matmul without
    it ran 1,300x slower) and oneDNN not held below bf16 by ``ONEDNN_MAX_CPU_ISA``."""
    flags = cpu_flags()
    if flags is None:
        return "this CPU's flags cannot be read (/proc/cpuinfo)"
    if not flags & {"avx512_bf16", "amx_bf16"}:
        return "this CPU has no native bf16 (neither avx512_bf16 nor amx_bf16)"
    if cap := onednn_isa_cap():
        return f"{cap} holds oneDNN below bf16"
    import torch

    if not (torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled):
        return "oneDNN is off (torch.backends.mkldnn)"
    return None


def native_bf16() -> bool:
    """Whether this process computes bf16 natively on the CPU (:func:`bf16_emulated` says why not)."""
    return bf16_emulated() is None


def resolve_precision(cfg: Config, device: str = "cpu", setting: str = "train.precision") -> Config:
    """``cfg`` with precision "auto" replaced by the concrete choice for this machine and
    ``device`` type ("cpu", "cuda" or "mps"); :class:`UserError` for fp16 off CUDA, naming the
    setting as ``setting`` (its flag, or a file's key)."""
    precision = cfg.train.precision
    if precision not in PRECISIONS:  # a Config changed by hand (dataclasses.replace)
        raise UserError(f"{setting} must be one of {', '.join(PRECISIONS)}; got {json_repr(precision)}")
    if precision == "fp16" and device != "cuda":
        advice = "on a CPU use bf16" if device == "cpu" else "use fp32 or bf16"
        raise UserError(f"{setting} fp16 needs a CUDA device ({advice})")
    if precision != "auto":
        return cfg
    if device == "cuda":
        import torch

        choice = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    else:
        choice = "bf16" if device == "cpu" and native_bf16() else "fp32"
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, precision=choice))


def for_objective(cfg: Config, objective: str) -> Config:
    """``cfg`` switched to another objective. A setting whose default in ``cfg``'s preset
    differs between the two objectives follows the objective when ``cfg`` has the old
    objective's default there (a config written by ``--print-config`` or read from a run
    switches whole: mnist-fast's lambda 1 for mmd becomes 10 for gan), and is kept when it
    was set to something else. The VAE baseline always gets a Gaussian encoder, the Bernoulli
    (BCE) cost unscaled (squared L2 for other outputs than sigmoid) and lambda = 1 (the ELBO).
    :class:`UserError` for an unknown objective."""
    _check_objective(objective)
    old = cfg.loss.objective
    cfg = dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, objective=objective))
    if old != objective and old in OBJECTIVES and is_preset(cfg.preset):
        presets = dict(_presets_by_objective(cfg.preset))
        before, after = presets[old], presets[objective]
        for section in SECTIONS:
            ours, was, becomes = getattr(cfg, section), getattr(before, section), getattr(after, section)
            changed = {
                f.name: getattr(becomes, f.name)
                for f in dataclasses.fields(ours)
                if f.name != "objective"
                and getattr(was, f.name) != getattr(becomes, f.name)
                and getattr(ours, f.name) == getattr(was, f.name)
            }
            if changed:
                setattr(cfg, section, dataclasses.replace(ours, **changed))
    if objective == "vae":
        cfg.model = dataclasses.replace(cfg.model, encoder="gaussian")
        cost = "bce" if cfg.model.output == "sigmoid" else "l2sq"
        cfg.loss = dataclasses.replace(cfg.loss, cost=cost, cost_scale=1.0, lam=1.0)
    return cfg


def override(cfg: Config, **values: Any) -> Config:
    """A copy of ``cfg`` with fields set by name: ``lam=1`` or ``loss__lam=1``; a bare name
    must belong to exactly one section. A new ``objective`` switches the config as
    :func:`for_objective` does (its defaults follow, as with ``--objective``), before the other
    values are set. A new ``cost`` given without ``cost_scale`` brings its usual scale
    (:data:`COST_SCALES`) when the old scale was the old cost's usual one: L1 at squared L2's
    0.05 would weigh the reconstruction five times more than either was measured with. A scale
    set by hand (not the usual one) is kept. :class:`UserError` for an unknown name, for one
    setting given twice (``cost`` and ``loss__cost``), and for a setting given that the copy does
    not use (``prior_components`` with the Gaussian prior: :func:`unused_settings`), which would
    train as if it were not given; set both in one call (``prior="mixture", prior_components=4``)."""
    result = set_fields(cfg, **values)
    # a config built in steps: what uses a setting comes in the same call, or before
    check_used(result, values, arguments=True, same_call=True)
    return result


def check_used(cfg: Config, given: Mapping[str, Any], arguments: bool = False, same_call: bool = False) -> None:
    """:class:`UserError` with :func:`unused_settings`' message when a setting ``given`` is one
    that ``cfg`` does not use; nothing when all are used. ``arguments``: ``given`` are keyword
    arguments (``prior_components=`` or ``loss__prior_components=``), named as written; else
    field names, named as flags (``--prior-components``). ``same_call``: the message adds that
    what uses them may be set in the same call (:func:`override`'s advice; no help where the
    caller sets the deciding settings itself, as ``fit_tensor`` does the data's)."""
    spell = None
    if arguments:
        as_given = {key.rpartition("__")[2]: key for key in given}
        given = {name: given[key] for name, key in as_given.items()}
        spell = lambda name: as_given[name] + "="  # noqa: E731
    unused = unused_settings(cfg, given, spell)
    if unused and same_call:
        unused += f" (or set what uses {_pronoun(unused)} in the same call)"
    if unused:
        raise UserError(unused)


def set_fields(cfg: Config, **values: Any) -> Config:
    """:func:`override` without its check of settings the copy does not use: for settings read
    from a run's config.json or a --config file, which list every setting, used or not."""
    if not isinstance(cfg, Config):
        raise UserError(f"a config must be a wae.Config (wae.preset(...)); got {type(cfg).__name__}")
    check_sections(cfg)  # a section replaced by a dict was a TypeError of dataclasses.replace
    sections: dict[str, Any] = {"data": cfg.data, "model": cfg.model, "loss": cfg.loss, "train": cfg.train}
    wanted: dict[tuple[str, str], Any] = {}
    spelled: dict[tuple[str, str], str] = {}
    for key, value in values.items():
        if isinstance(value, Iterator):  # a generator is used up by one reading and cannot be copied
            raise UserError(f"setting '{key}': give a list or a tuple, not an iterator")
        if "__" in key:
            section, name = key.split("__", 1)
            # the fields of the section only: "model____dict__" once replaced the whole section
            known = {f.name for f in dataclasses.fields(sections[section])} if section in sections else set()
            owners = [section] if name in known else []
        else:
            name = key
            owners = [s for s, obj in sections.items() if name in {f.name for f in dataclasses.fields(obj)}]
        if len(owners) != 1:
            raise UserError(f"unknown setting '{key}'")
        where = (owners[0], name)
        if where in wanted:
            raise UserError(f"setting '{owners[0]}.{name}' given twice, as '{spelled[where]}' and '{key}'")
        # numpy's and torch's scalars as the numbers they hold before the rules below compare them
        # (np.array("l2sq") kept L1's cost scale)
        if takes_list(type(sections[owners[0]]), name):  # np.geomspace(...) for the kernel scales
            value = array_items(value)
        value = python_scalars(value)  # a list stays a list: a refusal names it as given
        wanted[where], spelled[where] = value, key
    if ("loss", "objective") in wanted:
        objective = wanted.pop(("loss", "objective"))
        # checked before it is compared: a numpy array's != is an array, whose truth numpy refuses
        if not isinstance(objective, str):
            raise UserError(f"loss.objective must be one of {', '.join(OBJECTIVES)}; got {json_repr(objective)}")
        if objective != cfg.loss.objective:
            cfg = for_objective(cfg, objective)
    new_cost = wanted.get(("loss", "cost"))
    # a value that is not a cost's name (a dict, a set: unhashable) is refused by Config below
    if isinstance(new_cost, str) and new_cost in COST_SCALES and new_cost != cfg.loss.cost:
        if ("loss", "cost_scale") not in wanted and COST_SCALES.get(cfg.loss.cost) == cfg.loss.cost_scale:
            wanted["loss", "cost_scale"] = COST_SCALES[new_cost]
    new = {name: dataclasses.replace(getattr(cfg, name)) for name in sections}
    for (section, name), value in wanted.items():
        setattr(new[section], name, value)
    # typed (numpy ints become ints); a Python caller's values named as Python writes them
    return plain_config(Config(preset=cfg.preset, **new))
