"""Settings as dataclasses, and the named presets.

A run is fully described by one :class:`Config`; it is saved as ``config.json`` beside every
run and inside every checkpoint, so that the run can be redone or resumed from it alone.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OBJECTIVES = ("mmd", "gan", "vae", "swd", "sinkhorn", "cw")
# objectives whose latent penalty is a divergence between a batch of codes and prior draws
SAMPLE_PENALTIES = ("mmd", "swd", "sinkhorn", "cw")
KERNELS = ("imq", "rbf")
PRIORS = ("gaussian", "uniform", "sphere")
COSTS = ("l2sq", "l1", "bce")
ENCODERS = ("deterministic", "gaussian")
OUTPUTS = ("sigmoid", "tanh")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda", "mps")
DATASETS = ("mnist", "synthetic", "npz", "folder", "celeba", "tensor")  # "tensor": given in Python, not saved


def cache_dir() -> Path:
    """Where derived data are kept (FID statistics, image-folder caches): ``$WAE_CACHE_DIR``
    or ``~/.cache/wae``."""
    return Path(os.environ.get("WAE_CACHE_DIR") or Path.home() / ".cache" / "wae")


class UserError(ValueError):
    """Bad input from the user (a setting, a path, a file); the message says which and why.

    The command line prints the message alone and exits with code 2."""


@dataclass
class DataConfig:
    """Where the images come from and how they are scaled."""

    dataset: str = "mnist"
    path: str | None = None  # the .npz file (dataset "npz") or the folder ("folder", "celeba")
    image_size: int = 64  # folder / celeba: images are centre-cropped and resized to this side
    grey: bool = False  # folder: convert to one grey channel instead of RGB
    crop: int = 0  # folder / celeba: centre crop side before resizing (0: the shorter side)
    range: str = "01"  # pixel range fed to the model: "01" -> [0, 1], "pm1" -> [-1, 1]
    synthetic_size: int = 28  # image side of the synthetic dataset
    synthetic_count: int = 512  # training images of the synthetic dataset
    # folder / celeba: convert the images once to a memory-mapped uint8 cache (fast epochs), or,
    # False, decode the training files anew each epoch in `workers` DataLoader processes
    cache: bool = True
    workers: int = 2


@dataclass
class ModelConfig:
    """The networks: one convolutional encoder/decoder family, sized by ``arch``."""

    arch: str = "fast"  # "fast", "mnist-paper" or "celeba-paper" (see nets.ARCHITECTURES)
    latent_dim: int = 8
    encoder: str = "deterministic"  # or "gaussian" (mean and log-variance)
    output: str = "sigmoid"  # decoder output: sigmoid for [0, 1] data, tanh for [-1, 1]
    adversary_width: int = 512  # WAE-GAN latent adversary: 4 hidden layers of this width
    adversary_depth: int = 4
    # batch norm after each hidden convolution (the paper's nets); off, the convolutions carry
    # biases instead, and a multi-process CPU run equals a one-process run step for step (CUDA
    # runs keep batch statistics global with SyncBatchNorm; CPU processes cannot)
    batch_norm: bool = True


@dataclass
class LossConfig:
    """The objective: reconstruction cost + lambda * latent divergence."""

    # "mmd" (WAE-MMD), "gan" (WAE-GAN), "vae" (baseline), or a WAE with another sample penalty:
    # "swd" (sliced Wasserstein, SWAE), "sinkhorn" (debiased Sinkhorn divergence), "cw" (Cramer-Wold)
    objective: str = "mmd"
    lam: float = 10.0  # lambda, the weight of the latent penalty
    cost: str = "l2sq"  # "l2sq", "l1" or "bce"; summed over pixels
    cost_scale: float = 1.0  # the authors' code uses 0.05 with l2sq
    kernel: str = "imq"  # MMD kernel: "imq" (multi-scale) or "rbf" (median heuristic)
    kernel_scales: tuple[float, ...] = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
    prior: str = "gaussian"  # "gaussian", "uniform" (cube) or "sphere"
    prior_var: float = 1.0  # sigma_z^2 of the Gaussian prior
    prior_trick: bool = False  # WAE-GAN: add log p_z(z) to the adversary's logit
    input_noise: float = 0.0  # std of Gaussian noise added to training inputs (authors: 0.01)
    # Gaussian encoders in WAEs (Rubenstein et al. 2018): weight of the penalty
    # mean_i sum_j |log sigma^2_ij|, and a clip of the log-variances to [-clip, clip] (0: off)
    logvar_l1: float = 0.0
    logvar_clip: float = 0.0
    projections: int = 50  # swd: random directions per batch
    sinkhorn_epsilon: float = 1.0  # sinkhorn: entropic regularisation, in units of the squared code distance
    sinkhorn_iterations: int = 50  # sinkhorn: log-domain iterations per batch


@dataclass
class TrainConfig:
    """The optimisation loop."""

    batch_size: int = 100
    epochs: int = 10
    max_steps: int | None = None  # stop after this many steps in total, even mid-epoch
    lr: float = 1e-3
    adversary_lr: float = 5e-4
    beta1: float = 0.5
    beta2: float = 0.999
    # learning rate multiplied by lr_factors[i] (cumulatively) once the fraction lr_milestones[i]
    # of the epochs is done, so that --epochs stretches the schedule: (0.3, 0.5) of 100 epochs is
    # the paper's "halve after epoch 30, divide by 5 after epoch 50"
    lr_milestones: tuple[float, ...] = ()
    lr_factors: tuple[float, ...] = ()
    seed: int = 0
    # "bf16" (autocast), "fp32", "fp16" (CUDA autocast with a gradient scaler), or "auto": bf16
    # where the CPU has native bf16 (AVX512-BF16 or AMX) or the GPU supports it, fp16 on older
    # GPUs, fp32 elsewhere; the choice made is what config.json records
    precision: str = "auto"
    device: str = "auto"  # "cpu", "cuda", "mps", or "auto": cuda, else mps, else cpu
    # convolution weights, and so activations, in channels_last (NHWC) memory order: faster with
    # bf16 on CPUs (measured 1.2x on the fast network) and GPUs; the same maths, other rounding
    channels_last: bool = True
    log_every: int = 50  # steps between lines of metrics.jsonl
    eval_size: int = 2000  # test images (a fixed random subset) used for the per-epoch evaluation
    # every this many epochs the evaluation also scores eval_size prior samples with the shipped
    # MNIST classifier (Fréchet distance, precision/recall, coverage); 0 never; 28x28 grey only
    eval_every: int = 1
    threads: int | None = None  # torch intra-op threads; None keeps torch's default
    keep_checkpoints: int = 2  # the run folder keeps this many newest checkpoints
    skip_nonfinite: bool = False  # skip (and count) a batch whose loss is NaN or infinite, not stop


@dataclass
class Config:
    """Everything that defines a run."""

    preset: str = "mnist-fast"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (JSON- and ``torch.load(weights_only=True)``-safe)."""
        return dataclasses.asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Config:
        """Inverse of :meth:`to_dict`; unknown keys are an error, missing keys take defaults."""
        sections = SECTIONS
        d = checked_types(d, sections)
        unknown = set(d) - set(sections) - {"preset"}
        if unknown:
            raise UserError(f"unknown config keys: {sorted(unknown)}")
        parts: dict[str, Any] = {}
        for name, cls in sections.items():
            values = dict(d.get(name, {}))
            known = {f.name for f in dataclasses.fields(cls)}
            bad = set(values) - known
            if bad:
                raise UserError(f"unknown keys in config section '{name}': {sorted(bad)}")
            for f in dataclasses.fields(cls):
                if f.name in values and isinstance(values[f.name], list):
                    values[f.name] = tuple(values[f.name])
            parts[name] = cls(**values)
        return Config(preset=d.get("preset", "custom"), **parts)


def _typed(name: str, value: Any, hint: Any) -> Any:
    """``value`` as the type ``hint`` of a config field (an int stays an int, a float may be
    given as an int, a JSON list becomes a tuple); :class:`UserError` otherwise."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None and type(None) in options:
        return None
    for option in options:
        if option is bool and isinstance(value, bool):
            return value
        if option is int and isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return int(value)  # numpy's integers too, from Python
        if option is float and isinstance(value, numbers.Real) and not isinstance(value, bool):
            return float(value)
        if option is str and isinstance(value, str):
            return value
        if typing.get_origin(option) is tuple and isinstance(value, list | tuple):
            return tuple(_typed(f"{name}[{i}]", v, typing.get_args(option)[0]) for i, v in enumerate(value))
    wanted = " or ".join("null" if o is type(None) else getattr(o, "__name__", str(o)) for o in options)
    raise UserError(f"config {name} must be {wanted}; got {json_repr(value)}")


def json_repr(value: Any) -> str:
    """A short printable form of a value read from a file (for one-line errors)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def checked_types(d: Any, sections: dict[str, type]) -> dict[str, Any]:
    """A stored config (parsed JSON, or the dict inside a checkpoint) with every field checked
    against its dataclass type, as a flag would be; :class:`UserError` names the first bad one."""
    if not isinstance(d, dict):
        raise UserError(f"a config must be a JSON object; got {json_repr(d)}")
    out: dict[str, Any] = dict(d)
    if "preset" in d and not isinstance(d["preset"], str):
        raise UserError(f"config preset must be str; got {json_repr(d['preset'])}")
    for name, cls in sections.items():
        if name not in d:
            continue
        values = d[name]
        if not isinstance(values, dict):
            raise UserError(f"config section '{name}' must be a JSON object; got {json_repr(values)}")
        hints = typing.get_type_hints(cls)
        out[name] = {k: _typed(f"{name}.{k}", v, hints[k]) if k in hints else v for k, v in values.items()}
    return out


def _paper_schedule(epochs: int, lr: float, adversary_lr: float) -> TrainConfig:
    # batch 100, Adam, lr halved after 30 % of the epochs and divided by 5 after 50 % (the
    # paper's MNIST schedule: after epochs 30 and 50 of 100)
    return TrainConfig(
        batch_size=100, epochs=epochs, lr=lr, adversary_lr=adversary_lr, lr_milestones=(0.3, 0.5), lr_factors=(0.5, 0.2)
    )


def _mnist_fast(objective: str) -> Config:
    # The CPU default: a small conv net, the authors' cost scaling, a short run whose learning
    # rate steps down in the last 40 % of the epochs.
    return Config(
        preset="mnist-fast",
        model=ModelConfig(arch="fast", latent_dim=8),
        loss=LossConfig(objective=objective, lam=10.0, cost="l2sq", cost_scale=0.05),
        train=TrainConfig(batch_size=100, epochs=10, lr=1e-3, lr_milestones=(0.6, 0.8), lr_factors=(0.5, 0.2)),
    )


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


PRESETS = {"mnist-fast": _mnist_fast, "mnist-paper": _mnist_paper, "celeba-paper": _celeba_paper}


def preset(name: str = "mnist-fast", objective: str = "mmd") -> Config:
    """A fresh copy of the named preset for ``objective`` ("mmd", "gan" or "vae")."""
    if name not in PRESETS:
        raise UserError(f"unknown preset '{name}'; choose one of {', '.join(PRESETS)}")
    if objective not in OBJECTIVES:
        raise UserError(f"unknown objective '{objective}'; choose one of {', '.join(OBJECTIVES)}")
    return for_objective(PRESETS[name](objective), objective)


def validate(cfg: Config) -> None:
    """Raise :class:`UserError` naming the first setting that cannot work."""
    check_types(cfg)
    choices = [
        ("data.dataset", cfg.data.dataset, DATASETS),
        ("data.range", cfg.data.range, ("01", "pm1")),
        ("model.encoder", cfg.model.encoder, ENCODERS),
        ("model.output", cfg.model.output, OUTPUTS),
        ("loss.objective", cfg.loss.objective, OBJECTIVES),
        ("loss.cost", cfg.loss.cost, COSTS),
        ("loss.kernel", cfg.loss.kernel, KERNELS),
        ("loss.prior", cfg.loss.prior, PRIORS),
        ("train.precision", cfg.train.precision, PRECISIONS),
        ("train.device", cfg.train.device, DEVICES),
    ]
    for name, value, allowed in choices:
        if value not in allowed:
            raise UserError(f"{name} must be one of {', '.join(allowed)}; got '{value}'")
    positive_ints = [
        ("model.latent_dim", cfg.model.latent_dim),
        ("model.adversary_width", cfg.model.adversary_width),
        ("model.adversary_depth", cfg.model.adversary_depth),
        ("train.batch_size", cfg.train.batch_size),
        ("train.log_every", cfg.train.log_every),
        ("train.eval_size", cfg.train.eval_size),
        ("train.keep_checkpoints", cfg.train.keep_checkpoints),
        ("data.synthetic_size", cfg.data.synthetic_size),
        ("data.synthetic_count", cfg.data.synthetic_count),
        ("data.image_size", cfg.data.image_size),
        ("loss.projections", cfg.loss.projections),
        ("loss.sinkhorn_iterations", cfg.loss.sinkhorn_iterations),
    ]
    for name, count in positive_ints:
        if count < 1:
            raise UserError(f"{name} must be at least 1; got {count}")
    if cfg.data.crop < 0:
        raise UserError(f"data.crop must be >= 0; got {cfg.data.crop}")
    if cfg.train.batch_size < 2:
        raise UserError("train.batch_size must be at least 2 (the MMD estimate needs pairs)")
    if cfg.train.epochs < 0:
        raise UserError(f"train.epochs must be >= 0; got {cfg.train.epochs}")
    if cfg.train.eval_every < 0:
        raise UserError(f"train.eval_every must be >= 0; got {cfg.train.eval_every}")
    if cfg.train.max_steps is not None and cfg.train.max_steps < 0:
        raise UserError(f"train.max_steps must be >= 0; got {cfg.train.max_steps}")
    positive_floats = [
        ("loss.lam", cfg.loss.lam, True),
        ("loss.cost_scale", cfg.loss.cost_scale, False),
        ("loss.prior_var", cfg.loss.prior_var, False),
        ("train.lr", cfg.train.lr, False),
        ("train.adversary_lr", cfg.train.adversary_lr, False),
        ("loss.input_noise", cfg.loss.input_noise, True),
        ("loss.sinkhorn_epsilon", cfg.loss.sinkhorn_epsilon, False),
        ("loss.logvar_l1", cfg.loss.logvar_l1, True),
        ("loss.logvar_clip", cfg.loss.logvar_clip, True),
    ]
    for name, number, zero_ok in positive_floats:
        if not (number >= 0 if zero_ok else number > 0) or not math.isfinite(number):
            raise UserError(f"{name} must be {'>= 0' if zero_ok else '> 0'} and finite; got {number}")
    if not (0 <= cfg.train.beta1 < 1 and 0 <= cfg.train.beta2 < 1):
        raise UserError("train.beta1 and train.beta2 must lie in [0, 1)")
    if len(cfg.train.lr_milestones) != len(cfg.train.lr_factors):
        raise UserError("train.lr_milestones and train.lr_factors must have the same length")
    if any(not 0 <= m <= 1 for m in cfg.train.lr_milestones):
        raise UserError("train.lr_milestones are fractions of the epochs, each in [0, 1]")
    if any(not (math.isfinite(f) and f > 0) for f in cfg.train.lr_factors):
        raise UserError("train.lr_factors must be positive and finite")
    if not cfg.loss.kernel_scales or any(not (math.isfinite(s) and s > 0) for s in cfg.loss.kernel_scales):
        raise UserError("loss.kernel_scales must be a non-empty list of positive, finite numbers")
    if cfg.loss.objective == "cw" and (cfg.loss.prior != "gaussian" or cfg.model.latent_dim < 2):
        raise UserError("the cw objective has a closed form for the Gaussian prior with latent_dim >= 2 only")
    if cfg.loss.logvar_l1 > 0 and (cfg.model.encoder != "gaussian" or cfg.loss.objective not in SAMPLE_PENALTIES):
        raise UserError("loss.logvar_l1 needs a gaussian encoder and a sample-penalty objective (mmd, swd, ...)")
    if cfg.loss.objective == "vae" and cfg.model.encoder != "gaussian":
        raise UserError("the VAE objective needs model.encoder = gaussian")
    if cfg.loss.cost == "bce" and cfg.model.output != "sigmoid":
        raise UserError("the bce cost needs data in [0, 1] and model.output = sigmoid")
    if cfg.model.output == "tanh" and cfg.data.range != "pm1":
        raise UserError("model.output = tanh needs data.range = pm1 (pixels in [-1, 1])")
    if cfg.model.output == "sigmoid" and cfg.data.range != "01":
        raise UserError("model.output = sigmoid needs data.range = 01 (pixels in [0, 1])")
    if cfg.loss.prior_trick and cfg.loss.prior != "gaussian":
        raise UserError("the prior trick needs the Gaussian prior")
    if cfg.data.dataset == "npz" and not cfg.data.path:
        raise UserError("dataset npz needs a path (--data FILE.npz)")
    check_sizes(cfg)


SECTIONS: dict[str, type] = {"data": DataConfig, "model": ModelConfig, "loss": LossConfig, "train": TrainConfig}
# upper bounds of sizes, far above any use, that keep a typo or a crafted file from asking for
# terabytes: an image side, a code dimension, the adversary's width
MAX_IMAGE_SIDE = 4096
MAX_LATENT_DIM = 65536
MAX_ADVERSARY_WIDTH = 16384


def check_types(cfg: Config) -> None:
    """:class:`UserError` when a field holds a value of another type than its dataclass says
    (``latent_dim=2.5``, ``lam="10"``), however the config was made."""
    if not isinstance(cfg, Config):
        raise UserError(f"a config must be a wae.Config; got {type(cfg).__name__}")
    checked_types(cfg.to_dict(), SECTIONS)


def check_sizes(cfg: Config) -> None:
    """:class:`UserError` for sizes beyond the bounds above, and for a synthetic dataset larger
    than the memory available."""
    bounds = [
        ("data.image_size", cfg.data.image_size, MAX_IMAGE_SIDE),
        ("data.synthetic_size", cfg.data.synthetic_size, MAX_IMAGE_SIDE),
        ("data.crop", cfg.data.crop, MAX_IMAGE_SIDE),
        ("model.latent_dim", cfg.model.latent_dim, MAX_LATENT_DIM),
        ("model.adversary_width", cfg.model.adversary_width, MAX_ADVERSARY_WIDTH),
        ("model.adversary_depth", cfg.model.adversary_depth, 64),
        ("data.workers", cfg.data.workers, 256),
        ("train.threads", cfg.train.threads or 1, 1024),
    ]
    for name, value, bound in bounds:
        if value > bound:
            raise UserError(f"{name} must be at most {bound}; got {value}")
    check_seed(cfg.train.seed, "train.seed")
    if cfg.data.workers < 0 or (cfg.train.threads is not None and cfg.train.threads < 1):
        raise UserError(
            f"data.workers must be >= 0 and train.threads >= 1; got {cfg.data.workers}, {cfg.train.threads}"
        )
    if cfg.loss.objective == "swd":  # the codes of a batch projected on every direction, and their sort
        check_memory(3 * 4 * cfg.train.batch_size * cfg.loss.projections * 2, "loss.projections (swd)")
    from .nets import ARCHITECTURES

    if cfg.model.arch not in ARCHITECTURES:
        raise UserError(f"model.arch must be one of {', '.join(ARCHITECTURES)}; got '{cfg.model.arch}'")
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


MAX_SEED = 2**32 - 1  # numpy's and scikit-learn's bound; torch's generators take it too


def check_seed(seed: int | None, name: str = "--seed") -> None:
    """:class:`UserError` for a seed outside [0, 2^32 - 1] (None: no seed given)."""
    if seed is not None and not 0 <= seed <= MAX_SEED:
        raise UserError(f"{name} must be in [0, {MAX_SEED}]; got {seed}")


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


def native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (emulated bf16 is slower than fp32)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(cfg: Config, device: str = "cpu") -> Config:
    """``cfg`` with precision "auto" replaced by the concrete choice for this machine and
    ``device`` type ("cpu", "cuda" or "mps"); :class:`UserError` for fp16 off CUDA."""
    precision = cfg.train.precision
    if precision == "fp16" and device != "cuda":
        raise UserError("precision fp16 needs a CUDA device (on a CPU use bf16)")
    if precision != "auto":
        return cfg
    if device == "cuda":
        import torch

        choice = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    else:
        choice = "bf16" if device == "cpu" and native_bf16() else "fp32"
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, precision=choice))


def for_objective(cfg: Config, objective: str) -> Config:
    """``cfg`` switched to another objective, with the settings that objective needs: the VAE
    baseline gets a Gaussian encoder, the Bernoulli (BCE) cost unscaled and lambda = 1 (the
    ELBO); a WAE keeps the preset's settings."""
    cfg = dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, objective=objective))
    if objective == "vae":
        cfg.model = dataclasses.replace(cfg.model, encoder="gaussian")
        cost = "bce" if cfg.model.output == "sigmoid" else "l2sq"
        cfg.loss = dataclasses.replace(cfg.loss, cost=cost, cost_scale=1.0, lam=1.0)
    return cfg


def override(cfg: Config, **values: Any) -> Config:
    """A copy of ``cfg`` with fields set by name: ``lam=1`` or ``loss__lam=1``; a bare name
    must belong to exactly one section."""
    sections: dict[str, Any] = {"data": cfg.data, "model": cfg.model, "loss": cfg.loss, "train": cfg.train}
    new = {name: dataclasses.replace(section) for name, section in sections.items()}
    for key, value in values.items():
        if "__" in key:
            section, name = key.split("__", 1)
            owners = [section] if section in new and hasattr(new[section], name) else []
        else:
            name = key
            owners = [s for s, obj in new.items() if name in {f.name for f in dataclasses.fields(obj)}]
        if len(owners) != 1:
            raise UserError(f"unknown setting '{key}'")
        if isinstance(value, list):
            value = tuple(value)
        setattr(new[owners[0]], name, value)
    return Config.from_dict(Config(preset=cfg.preset, **new).to_dict())  # typed: numpy ints become ints
