"""One step function per objective, and the training loop that writes a run folder.

A step takes one batch, updates the parameters and returns its loss parts as tensors:
- WAE-MMD (Algorithm 2): descend  c(x, G(z~)) + lambda * MMD(Q_Z, P_Z);
- WAE-GAN (Algorithm 1): the adversary ascends log D(z) + log(1 - D(z~)), then the auto-encoder
  descends c(x, G(z~)) - lambda * log D(z~);
- VAE: descend  -log p(x | z) + lambda * KL(Q(Z|x) || P_Z)  (lambda = 1 is the ELBO).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import math
import os
import signal
import stat
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice, repeat
from pathlib import Path
from statistics import median
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from . import __version__, runs, tracking
from . import checkpoint as ckpt
from .config import (
    BUDGET_LR_MOST,
    LR_FLOOR,
    LR_MOST,
    NOT_REGULAR,
    SAMPLE_PENALTIES,
    Config,
    UserError,
    bf16_emulated,
    failure_reason,
    json_repr,
    markdown_text,
    noise_words,
    one_line,
    parse_json,
    plain_config,
    plural,
    prior_components,
    resolve_precision,
    shell_path,
    unused_changes,
    validate,
    validate_new,
)
from .costs import reconstruction_cost
from .data import ImageData, batch_indices, batches, load, stream, to_model_range, to_unit_range
from .divergences import (
    adversary_loss,
    cramer_wold,
    gan_penalty,
    gaussian_kl,
    mmd_imq,
    mmd_rbf,
    random_directions,
    sinkhorn_divergence,
    sliced_wasserstein,
)
from .evaluate import (
    balanced_labels,
    decode_prior,
    encode_all,
    eval_mode,
    evaluate,
    evaluate_table,
    grid_rows,
    interpolation_ends,
    is_mnist_like,
    sample_metrics,
)
from .images import grid_png, reconstruction_rows, save_grid
from .model import AutoEncoder
from .nets import ARCHITECTURES, Adversary, decoder_start_size
from .parallel import (
    Processes,
    all_true,
    barrier,
    gather,
    launched,
    mean_over,
    process_group,
    resolve_device,
    shard,
)
from .priors import describe, gaussian_log_density
from .samplers import (
    SAMPLER_FILES,
    LatentSampler,
    check_available,
    fit_flags,
    fit_sampler,
    fit_seconds,
    fit_settings,
    fitted_to,
    is_stale,
    load_sampler,
    recorded_fit,
    refit_command,
    save_sampler,
)
from .tables import TableData


@dataclass
class State:
    """Everything that changes during training (and so goes into a checkpoint), and where it
    runs: ``model`` and ``adversary`` are the plain modules, ``net`` and ``adversary_net`` the
    same modules wrapped in DistributedDataParallel under a multi-process launch."""

    cfg: Config
    model: AutoEncoder
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    noise: torch.Generator  # prior samples, encoder noise, input noise (on the CPU, for every device)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    procs: Processes = field(default_factory=Processes)
    net: nn.Module | None = None
    adversary: Adversary | None = None
    adversary_net: nn.Module | None = None
    adversary_optimizer: torch.optim.Optimizer | None = None
    adversary_scheduler: torch.optim.lr_scheduler.LambdaLR | None = None
    scaler: torch.amp.GradScaler | None = None  # fp16 only
    adversary_scaler: torch.amp.GradScaler | None = None
    # exponential moving average of the auto-encoder (train.ema > 0): what samples are drawn from
    ema: torch.optim.swa_utils.AveragedModel | None = None
    step: int = 0
    classes: tuple[str, ...] = ()  # the class names of a conditional run

    @property
    def sampler_model(self) -> AutoEncoder:
        """The weights that generate: the moving average when there is one, else the model."""
        return self.ema.module if self.ema is not None else self.model  # type: ignore[return-value]


def lr_factor(cfg: Config, epoch: int) -> float:
    """Multiplier of the base learning rate in ``epoch`` (0-based) of the step schedule: the
    product of the factors of all milestones reached (a milestone m falls at epoch
    round(m * E), E the run's ``schedule_epochs``, else its ``epochs``)."""
    factor = 1.0
    for milestone, f in zip(cfg.train.lr_milestones, cfg.train.lr_factors, strict=True):
        if epoch >= round(milestone * planned_epochs(cfg)):
            factor *= f
    return factor


def planned_epochs(cfg: Config) -> int:
    """The epoch count the learning-rate schedule spans: ``schedule_epochs``, else ``epochs``."""
    return cfg.train.epochs if cfg.train.schedule_epochs is None else cfg.train.schedule_epochs


def warmup_steps(cfg: Config, steps_per_epoch: int) -> int:
    """The steps of the linear warm-up: ``lr_warmup`` of the planned steps, at least one step
    when asked for (a fraction below half a step once rounded to none), 0 without."""
    total = planned_epochs(cfg) * steps_per_epoch
    return max(1, round(cfg.train.lr_warmup * total)) if cfg.train.lr_warmup > 0 else 0


def lr_multiplier(cfg: Config, step: int, steps_per_epoch: int) -> float:
    """Multiplier of the base learning rate at ``step`` (0-based) of a run of
    ``steps_per_epoch`` steps an epoch. A linear warm-up from LR_FLOOR to 1 over the first
    ``lr_warmup`` of the planned steps, times the ``step`` schedule's factor (:func:`lr_factor`;
    a milestone inside the warm-up lowers the ramp), or followed by the ``cosine`` schedule:
    1 -> LR_FLOOR along a half cosine over the remaining planned steps (Loshchilov & Hutter
    2017, SGDR without restarts), LR_FLOOR beyond them (a run extended with --resume)."""
    total = planned_epochs(cfg) * steps_per_epoch
    warm = warmup_steps(cfg, steps_per_epoch)
    ramp = LR_FLOOR + (1 - LR_FLOOR) * step / warm if step < warm else 1.0
    if cfg.train.lr_schedule == "step":  # a milestone inside the warm-up scales the ramp, as after it
        return ramp * lr_factor(cfg, step // steps_per_epoch)
    if step < warm:
        return ramp
    t = min(1.0, (step - warm) / max(1, total - warm))
    return LR_FLOOR + (1 - LR_FLOOR) * 0.5 * (1 + math.cos(math.pi * t))


def planned_steps(cfg: Config, steps_per_epoch: int) -> int:
    """The steps the run takes in all: its epochs', or ``max_steps`` when fewer."""
    total = steps_per_epoch * cfg.train.epochs
    return total if cfg.train.max_steps is None else min(total, cfg.train.max_steps)


def epochs_within(
    budget_min: float,
    epoch_s: float,
    elapsed_s: float,
    epochs: int,
    sampler: bool,
    done: int = 1,
    fit_s: float = 0.0,
    encode_share: float = 0.5,
) -> int:
    """The epochs of a run that fit in ``budget_min`` minutes once ``done`` are done: an epoch
    takes ``epoch_s`` seconds (its evaluation included), ``elapsed_s`` have passed since the
    session began, and, when an ex-post ``sampler`` is fitted at the end, ``encode_share`` of
    an epoch (to encode the training images: :data:`ENCODE_SHARE`) and ``fit_s`` seconds (the
    sampler's own fit, as probed by :func:`wae.samplers.fit_seconds`, its grid and the report
    written again) are kept back for it. Between ``done`` and ``epochs``."""
    left = budget_min * 60 - elapsed_s - sampler_reserve(epoch_s, sampler, fit_s, encode_share)
    more = math.floor(left / epoch_s) if epoch_s > 0 and math.isfinite(left / epoch_s) else epochs
    return max(done, min(epochs, done + more))


def sampler_reserve(epoch_s: float, sampler: bool, fit_s: float, encode_share: float) -> float:
    """Seconds a time budget keeps back after the last epoch for an ex-post ``sampler``: its
    codes encoded (``encode_share`` of an epoch of ``epoch_s`` seconds) and its fit, grid and
    report (``fit_s``); 0 without one."""
    return encode_share * epoch_s + fit_s if sampler else 0.0


# Of an epoch's time, what a budget keeps back to encode the training images for the ex-post
# sampler: a pass of the encoder alone over images in memory (with the fit, 7.1 s after epochs
# of 105 s on 2 cores held to AVX2, session 47; half an epoch, the share before, cost the demo
# its fifth epoch of five there), half an epoch for images read from files in every pass
ENCODE_SHARE = {"memory": 0.1, "files": 0.5}
SAMPLER_END_S = 5.0  # the sampler's grid and the report written again after its fit (1.9 s there)
EARLY_RATE_STEPS = 50  # budget_lr sqrt: the timed steps of the first epoch its provisional rate is set after
GROWTH_MARGIN = 0.05  # a revision gives epochs back only if they fit with epochs this much slower
GROWTH_SPARE = 0.5  # ... and with this much of an epoch to spare


def epoch_estimate(
    steps_s: list[float], points: list[tuple[int, float]], eval_every: int, worst: bool = False
) -> float:
    """Seconds an epoch takes, for a time budget's revision: the median of the last three
    epochs' training steps (``steps_s``), plus the end-of-epoch work (``points``: (epoch,
    seconds) of the checkpoint points so far) as the median of the last three whole cycles'
    means. A cycle is one point, or with ``eval_every`` = k > 1 the k epochs up to one that
    scores samples (epochs k(c-1)+1 to kc), so that a costly evaluation every k epochs is
    amortised and does not swing the estimate from one epoch end to the next (a median of whole
    epochs swung with k = 2); before a cycle is whole, the median of the points. Medians: one
    slow epoch or one stalled point alone moves nothing, a machine that stays slower does within
    two epochs (two cycles). ``worst``: the largest of those three instead of their median (what
    a revision that would give epochs back weighs: the spread of the last epochs is its margin).
    Raises ValueError without a timed epoch."""
    if not steps_s:
        raise ValueError("no epoch timed")
    pick = max if worst else median
    stepping = pick(steps_s[-3:])
    if not points:
        return stepping
    k = max(1, eval_every)
    cycles: dict[int, list[float]] = {}
    for epoch, seconds in points:
        cycles.setdefault(-(-epoch // k), []).append(seconds)
    whole = [sum(c) / k for _, c in sorted(cycles.items()) if len(c) == k]
    return stepping + (pick(whole[-3:]) if whole else pick([s for _, s in points[-3:]]))


def epochs_fitting(
    budget_min: float,
    epoch_s: float,
    elapsed_s: float,
    reach: int,
    most: int,
    sampler: bool,
    done: int,
    worst_s: float = 0.0,
    fit_s: float = 0.0,
    encode_share: float = 0.5,
) -> int:
    """The epochs a time budget keeps at an epoch end, where the plan in force reaches ``reach``
    epochs and at most ``most`` may be kept: those that fit (:func:`epochs_within`, with
    ``fit_s`` seconds kept back for the ex-post sampler's own fit) at ``epoch_s`` an epoch;
    more than ``reach`` only as far as they also fit at ``worst_s`` (the slowest of the last
    epochs; default ``epoch_s``) GROWTH_MARGIN slower, with GROWTH_SPARE of an epoch to spare
    (``encode_share`` of an epoch kept back for the sampler's codes, as there),
    so that an estimate on the edge, moved by clock noise or by the end of an evaluation cycle,
    does not cut an epoch at one epoch end and give it back at the next."""
    fits = epochs_within(budget_min, epoch_s, elapsed_s, most, sampler, done, fit_s, encode_share)
    if fits <= reach:
        return fits
    slower = max(epoch_s, worst_s) * (1 + GROWTH_MARGIN)
    spared = elapsed_s + GROWTH_SPARE * slower
    return max(reach, epochs_within(budget_min, slower, spared, fits, sampler, done, fit_s, encode_share))


def _epochs(count: int) -> str:
    """``1 epoch``, ``3 epochs``."""
    return f"{count} epoch{plural(count)}"


def check_fits(cfg: Config, data: ImageData, world: int = 1) -> None:
    """Raise :class:`UserError` if ``cfg`` cannot train on ``data`` with ``world`` processes:
    settings out of range, a training set smaller than one batch, an image size the
    architecture cannot produce, a batch that does not split evenly over the processes, an
    ex-post sampler to fit at the end that cannot be fitted here (a flow without zuko)."""
    validate(cfg)
    check_available(cfg.train.fit_sampler)
    table = cfg.model.arch == "mlp"
    if table != isinstance(data, TableData):
        raise UserError("the mlp architecture trains on tables (--data FILE.csv|.npy|.npz), and only it does")
    if len(data.train) < cfg.train.batch_size:
        raise UserError(
            f"the training set has {len(data.train)} {'rows' if table else 'images'}, fewer than one batch of "
            f"{json_repr(cfg.train.batch_size)}"
        )
    if cfg.train.batch_size % world or cfg.train.batch_size // world < 2:
        raise UserError(
            f"the batch of {cfg.train.batch_size} does not split into {world} equal shards of at least 2 images"
        )
    if table:
        return
    try:
        decoder_start_size(ARCHITECTURES[cfg.model.arch], data.size)
    except ValueError as err:
        raise UserError(f"architecture '{cfg.model.arch}' cannot take {data.size}x{data.size} images: {err}") from None
    if cfg.data.condition == "labels" and (data.train_labels is None or data.test_labels is None or not data.classes):
        raise UserError(
            f"--condition labels needs class labels; the data '{data.name}' have none (give MNIST, an .npz with "
            "y_train, a folder of class sub-folders, or labels= in Python)"
        )


def _wrap(module: nn.Module, state: State) -> nn.Module:
    """``module`` in DistributedDataParallel under a multi-process launch, else itself."""
    if state.procs.world == 1:
        return module
    ids = [state.device.index] if state.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids)


def build(
    cfg: Config,
    channels: int,
    size: int,
    steps_per_epoch: int,
    device: torch.device | None = None,
    procs: Processes | None = None,
    classes: int = 0,
) -> State:
    """Fresh networks, optimizers and schedulers for ``cfg`` (seeded by ``cfg.train.seed``, the
    same on every rank) on ``device``, wrapped for the processes ``procs`` (default: one);
    ``classes`` > 0 makes the auto-encoder conditional on that many classes."""
    torch.manual_seed(cfg.train.seed)
    device = device if device is not None else torch.device("cpu")
    procs = procs if procs is not None else Processes()
    model = auto_encoder(cfg, channels, size, classes)
    if procs.world > 1 and device.type == "cuda" and cfg.model.batch_norm:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.to(device)
    if cfg.train.channels_last:
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # missing from the stubs
    betas = (cfg.train.beta1, cfg.train.beta2)

    def schedule(step: int) -> float:
        return lr_multiplier(cfg, step, steps_per_epoch)

    def scaler() -> torch.amp.GradScaler | None:
        return torch.amp.GradScaler("cuda") if cfg.train.precision == "fp16" else None

    optimizer = torch.optim.Adam(model.parameters(), lr=encoder_lr(cfg), betas=betas)
    state = State(
        cfg=cfg,
        model=model,
        optimizer=optimizer,
        scheduler=torch.optim.lr_scheduler.LambdaLR(optimizer, schedule),
        noise=torch.Generator().manual_seed(cfg.train.seed + 1),
        device=device,
        procs=procs,
        scaler=scaler(),
    )
    state.net = _wrap(model, state)
    if cfg.train.ema > 0:
        decay = cfg.train.ema

        def average(mean: Tensor, new: Tensor, count: Tensor | int) -> Tensor:
            if not mean.is_floating_point():  # batch norm's step counter
                return new
            return torch.lerp(mean, new, 1 - ema_decay(decay, int(count)))

        state.ema = torch.optim.swa_utils.AveragedModel(model, avg_fn=average, use_buffers=True)
    if cfg.loss.objective == "gan":
        by_class = classes if cfg.loss.class_penalty else 0  # the adversary sees the class too
        state.adversary = Adversary(
            cfg.model.latent_dim, cfg.model.adversary_width, cfg.model.adversary_depth, by_class
        )
        state.adversary.to(device)
        state.adversary_net = _wrap(state.adversary, state)
        state.adversary_optimizer = torch.optim.Adam(
            state.adversary.parameters(), lr=cfg.train.adversary_lr, betas=betas
        )
        state.adversary_scheduler = torch.optim.lr_scheduler.LambdaLR(state.adversary_optimizer, schedule)
        state.adversary_scaler = scaler()
    return state


def ema_decay(decay: float, updates: int) -> float:
    """The moving average's decay at its update number ``updates`` (1 for the second): the
    warm-up min(decay, (1 + n) / (10 + n)) of TensorFlow's ExponentialMovingAverage, so that the
    average forgets the initial weights within the first few hundred steps of a short run."""
    return min(decay, (1 + updates) / (10 + updates))


def autocast(state: State) -> contextlib.AbstractContextManager[Any]:
    """Autocast to bf16 or fp16 when the config asks for it; the losses are computed in fp32."""
    precision = state.cfg.train.precision
    dtype = torch.float16 if precision == "fp16" else torch.bfloat16
    return torch.autocast(state.device.type, dtype=dtype, enabled=precision in ("bf16", "fp16"))


def _noise(state: State, shape: tuple[int, ...]) -> Tensor:
    """Standard-normal noise of ``shape`` (rows: this rank's shard), drawn for the whole global
    batch and sharded, so that N processes use exactly the numbers one process would."""
    rows = torch.randn((shape[0] * state.procs.world, *shape[1:]), generator=state.noise)
    return shard(rows, state.procs).to(state.device, non_blocking=True)


def _prior(state: State, n: int) -> Tensor:
    """n prior draws (the global batch's), the same on every rank."""
    return state.model.prior_sample(n, state.noise).to(state.device, non_blocking=True)


def _inputs(state: State, batch: Tensor) -> tuple[Tensor, Tensor]:
    """(clean target, encoder input): the target in the model range, the input with the
    optional Gaussian input noise of the authors' code."""
    x = to_model_range(batch.to(state.device, non_blocking=True), state.cfg.data.range)
    if state.cfg.loss.input_noise > 0:
        return x, x + state.cfg.loss.input_noise * _noise(state, tuple(x.shape))
    return x, x


def _forward(
    state: State, x_in: Tensor, labels: Tensor | None = None
) -> tuple[Tensor, Tensor | None, Tensor | None, Tensor]:
    """(z~, mean, log_var, decoder logits) of one training pass, z~ ~ Q(Z|x) (Q(Z|x, y) and
    G(z~, y) for a conditional model with the batch's class ``labels``) by the
    reparameterisation trick for a Gaussian encoder; the decoder reads z~ plus
    N(0, (code_noise sigma_z)^2 I) noise when ``loss.code_noise`` is set."""
    shape = (len(x_in), state.cfg.model.latent_dim)
    eps = _noise(state, shape) if state.cfg.model.encoder == "gaussian" else None
    loss = state.cfg.loss
    code_noise = loss.code_noise * loss.prior_var**0.5 * _noise(state, shape) if loss.code_noise > 0 else None
    assert state.net is not None
    if labels is not None:
        labels = labels.to(state.device, non_blocking=True)
    return state.net(x_in, eps, loss.logvar_clip, labels, code_noise)


def _recon(state: State, x: Tensor, logits: Tensor) -> Tensor:
    """Mean over the batch of the scaled reconstruction cost c(x, G(z))."""
    logits = logits.float()
    cost = reconstruction_cost(state.cfg.loss.cost, x, state.model.activate(logits), logits)
    return state.cfg.loss.cost_scale * cost.mean()


def latent_penalty(cfg: Config, codes: Tensor, prior: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """The sample-based penalty D_Z(codes, prior) the config names (``generator`` draws the
    sliced Wasserstein directions)."""
    loss = cfg.loss
    if loss.objective == "swd":
        directions = random_directions(codes.shape[1], loss.projections, generator).to(codes.device)
        return sliced_wasserstein(codes, prior, directions)
    if loss.objective == "sinkhorn":
        return sinkhorn_divergence(codes, prior, loss.sinkhorn_epsilon, loss.sinkhorn_iterations)
    if loss.objective == "cw":
        return cramer_wold(codes, loss.prior_var)
    if loss.kernel == "imq":
        return mmd_imq(codes, prior, loss.prior_var, loss.kernel_scales)
    return mmd_rbf(codes, prior)


def per_class_penalty(
    cfg: Config, codes: Tensor, prior: Tensor, labels: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """A conditional run's penalty: sum over the classes k of the batch of (n_k / n) D_Z(codes of
    class k, as many of the prior draws, or ``loss.prior_draws`` times as many), codes (n, d),
    prior (n * prior_draws, d), labels (n,). Zero for every
    class exactly when each Q(Z|Y=k) is P_Z, so z can carry no class information (the
    marginal penalty alone lets the encoder keep the class in z, and the decoder then reads it
    from z as much as from y). A class with fewer than 2 codes in the batch is left out."""
    total = codes.new_zeros(())
    by_row = prior.reshape(-1, *codes.shape)  # (prior_draws, n, d): draw j of every row i
    for k in labels.unique():
        chosen = labels == k
        if int(chosen.sum()) >= 2:
            draws = by_row[:, chosen].reshape(-1, codes.shape[1])
            total = total + chosen.float().mean() * latent_penalty(cfg, codes[chosen], draws, generator)
    return total


def _update(
    state: State,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LambdaLR,
    scaler: torch.amp.GradScaler | None,
    loss: Tensor,
) -> None:
    """One optimizer step on ``loss``, but none (on any rank) when the loss is NaN or infinite
    on some rank (the loop then stops or skips the batch); the schedule advances either way."""
    optimizer.zero_grad(set_to_none=True)
    if all_true(bool(torch.isfinite(loss)), state.device, state.procs):
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
    with warnings.catch_warnings():  # a skipped step is ours, said by the loop: not torch's advice on order
        warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step", category=UserWarning)
        scheduler.step()


def _descend(state: State, loss: Tensor) -> None:
    _update(state, state.optimizer, state.scheduler, state.scaler, loss)


def mmd_step(state: State, batch: Tensor, labels: Tensor | None = None) -> dict[str, Tensor]:
    """One step of a WAE with a sample-based penalty (MMD, or swd / sinkhorn / cw) on one batch
    (this rank's shard of it; the penalty sees the codes of the whole global batch). A
    conditional model gets the batch's class ``labels``; its penalty matches each class's codes
    to P_Z (:func:`per_class_penalty`), or Q_Z alone with ``loss.class_penalty`` off."""
    x, x_in = _inputs(state, batch)
    with autocast(state):
        z, _, log_var, logits = _forward(state, x_in, labels)
    recon = _recon(state, x, logits)
    codes = gather(z.float(), state.procs)
    prior = _prior(state, len(codes) * state.cfg.loss.prior_draws)
    if labels is not None and state.cfg.loss.class_penalty:
        classes = gather(labels.to(state.device).float(), state.procs).long()  # the global batch's
        penalty = per_class_penalty(state.cfg, codes, prior, classes, state.noise)
    else:
        penalty = latent_penalty(state.cfg, codes, prior, state.noise)
    total = recon + state.cfg.loss.lam * penalty
    parts = {"recon": recon.detach(), "penalty": penalty.detach()}
    if log_var is not None and state.cfg.loss.logvar_l1 > 0:
        # Rubenstein et al. 2018: keeps a random encoder's variances from collapsing to zero
        logvar_penalty = log_var.float().abs().sum(1).mean()
        total = total + state.cfg.loss.logvar_l1 * logvar_penalty
        parts["logvar_l1"] = logvar_penalty.detach()
    _descend(state, total)
    return {"total": total.detach(), **parts}


def _adversary_logits(state: State, z: Tensor, net: nn.Module | None = None, labels: Tensor | None = None) -> Tensor:
    assert state.adversary is not None
    adversary = net if net is not None else state.adversary
    logits = (adversary(z) if not state.adversary.classes else adversary(z, labels)).float()
    if state.cfg.loss.prior_trick:  # the authors' trick: start from the prior's log-density
        logits = logits + gaussian_log_density(z.float(), state.cfg.loss.prior_var)
    return logits


def adversary_update(state: State, codes: Tensor, prior: Tensor, labels: Tensor | None = None) -> Tensor:
    """WAE-GAN, first half: one adversary step telling prior samples (n, d) from codes (n, d)
    (treated as constants); returns the adversary's loss. A class-conditional adversary sees
    the codes' class ``labels`` (n,) with both: (prior draw, class) pairs are P_Z x P_Y."""
    assert state.adversary_optimizer is not None and state.adversary_scheduler is not None
    both = torch.cat([labels, labels]) if labels is not None else None
    with autocast(state):
        # one forward pass over both, as DistributedDataParallel expects one per backward
        logits = _adversary_logits(state, torch.cat([prior, codes.detach()]), state.adversary_net, both)
        loss = adversary_loss(logits[: len(prior)], logits[len(prior) :])
    _update(
        state, state.adversary_optimizer, state.adversary_scheduler, state.adversary_scaler, state.cfg.loss.lam * loss
    )
    return loss.detach()


def autoencoder_gan_update(
    state: State, x: Tensor, codes: Tensor, logits: Tensor, labels: Tensor | None = None
) -> dict[str, Tensor]:
    """WAE-GAN, second half: one encoder/decoder step on c(x, G(z~)) - lambda log D(z~), with
    the adversary held fixed; ``codes`` and decoder ``logits`` must still carry the graph (a
    class-conditional adversary reads the codes' ``labels`` too)."""
    assert state.adversary is not None
    state.adversary.requires_grad_(False)
    try:
        with autocast(state):
            penalty = gan_penalty(_adversary_logits(state, codes, labels=labels))
        recon = _recon(state, x, logits)
        total = recon + state.cfg.loss.lam * penalty
        _descend(state, total)
    finally:
        state.adversary.requires_grad_(True)
    return {"total": total.detach(), "recon": recon.detach(), "penalty": penalty.detach()}


def gan_step(state: State, batch: Tensor, labels: Tensor | None = None) -> dict[str, Tensor]:
    """One WAE-GAN step: one adversary update, then one auto-encoder update, on one batch (and
    its class ``labels`` for a conditional model; the adversary sees codes alone)."""
    x, x_in = _inputs(state, batch)
    with autocast(state):
        z, _, _, logits = _forward(state, x_in, labels)
    prior = shard(_prior(state, len(z) * state.procs.world), state.procs)
    by_class = labels.to(state.device) if labels is not None and state.cfg.loss.class_penalty else None
    adv_loss = adversary_update(state, z, prior, by_class)
    return {**autoencoder_gan_update(state, x, z, logits, by_class), "adversary": adv_loss}


def vae_step(state: State, batch: Tensor, labels: Tensor | None = None) -> dict[str, Tensor]:
    """One VAE step (negative ELBO with weight lambda on the KL term); a conditional VAE
    (CVAE) gets the batch's class ``labels``."""
    x, x_in = _inputs(state, batch)
    with autocast(state):
        _, mean, log_var, logits = _forward(state, x_in, labels)
    assert mean is not None and log_var is not None
    recon = _recon(state, x, logits)
    kl = gaussian_kl(mean, log_var, state.cfg.loss.prior_var).mean()
    total = recon + state.cfg.loss.lam * kl
    _descend(state, total)
    return {"total": total.detach(), "recon": recon.detach(), "penalty": kl.detach()}


STEPS: dict[str, Callable[[State, Tensor, Tensor | None], dict[str, Tensor]]] = {
    **dict.fromkeys(SAMPLE_PENALTIES, mmd_step),
    "gan": gan_step,
    "vae": vae_step,
}


# ----------------------------------------------------------------------------- checkpoints


def state_dict(state: State, data: ImageData) -> dict[str, Any]:
    """Everything needed to continue the run bit for bit, as plain tensors and containers."""
    payload: dict[str, Any] = {
        "format": ckpt.FORMAT,
        "version": __version__,
        "config": state.cfg.to_dict(),
        "data": {"channels": data.channels, "size": data.size, "name": data.name, **_class_record(state)},
        "step": state.step,
        "model": state.model.state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "scheduler": state.scheduler.state_dict(),
        "noise_rng": state.noise.get_state(),
        "torch_rng": torch.get_rng_state(),
    }
    if isinstance(data, TableData) and data.standardiser is not None:  # inverted by wae sample
        payload["data"]["table"] = data.standardiser.to_payload()
    if state.adversary is not None:
        assert state.adversary_optimizer is not None and state.adversary_scheduler is not None
        payload["adversary"] = state.adversary.state_dict()
        payload["adversary_optimizer"] = state.adversary_optimizer.state_dict()
        payload["adversary_scheduler"] = state.adversary_scheduler.state_dict()
    if state.ema is not None:
        payload["ema"] = state.ema.state_dict()
    return payload


def _class_record(state: State) -> dict[str, Any]:
    """What a checkpoint records of a conditional run's classes: their number and names."""
    if state.model.classes == 0:
        return {}
    return {"classes": state.model.classes, "class_names": list(state.classes)}


def load_state(state: State, payload: dict[str, Any]) -> None:
    """Restore :func:`state_dict` output into a freshly built state of the same config."""
    state.model.load_state_dict(payload["model"])
    state.optimizer.load_state_dict(payload["optimizer"])
    state.scheduler.load_state_dict(payload["scheduler"])
    state.noise.set_state(payload["noise_rng"])
    torch.set_rng_state(payload["torch_rng"])
    if state.adversary is not None:
        assert state.adversary_optimizer is not None and state.adversary_scheduler is not None
        state.adversary.load_state_dict(payload["adversary"])
        state.adversary_optimizer.load_state_dict(payload["adversary_optimizer"])
        state.adversary_scheduler.load_state_dict(payload["adversary_scheduler"])
    if state.ema is not None:
        state.ema.load_state_dict(payload["ema"])
    state.step = int(payload["step"])
    # the config's rates are the ones in force: a budget's --budget-lr sqrt sets train.lr_scale after
    # the checkpoint of the epoch it was decided at (whose scheduler holds the rate asked)
    base_rates_to_config(state)
    # the optimizer's stored rate is the old plan's; a resume that re-plans the schedule
    # (--schedule-epochs) must take its first step at the new plan's rate, not from the next one
    rates_to_plan(state)


def budget_lr_scale(planned: int, kept: int, lr: float = 0.0) -> float:
    """The factor ``budget_lr = "sqrt"`` multiplies lr by when a time budget cuts the schedule from
    ``planned`` epochs to ``kept``: sqrt(planned / kept), at most :data:`BUDGET_LR_MOST` and at
    most what keeps ``lr`` x factor within LR_MOST (1 when none are cut). The rule of thumb that a
    shorter run takes larger steps; measured on the demo's WAE-GAN (docs/results.md, sessions
    54-57): 3e-3 against 2e-3 over the 11-12 of 25 epochs a slow host's budget keeps. Raises
    ValueError for ``kept`` or ``planned`` below 1."""
    if kept < 1 or planned < 1:
        raise ValueError(f"epochs planned and kept must be at least 1; got {planned} and {kept}")
    most = min(BUDGET_LR_MOST, LR_MOST / lr) if lr > 0 else BUDGET_LR_MOST
    return max(1.0, min(most, math.sqrt(max(planned, kept) / kept)))


def first_decision_scale(cfg: Config, kept: int, kept_schedule: int, asked_schedule: int) -> float:
    """The factor a time budget's first decision, at the run's first epoch end, sets when it cuts
    the run to ``kept`` epochs with the schedule over ``kept_schedule`` of ``asked_schedule``:
    :func:`budget_lr_scale` with ``budget_lr = "sqrt"`` when an epoch is left to train at it
    (``kept`` > 1) and the schedule is cut; 1 otherwise. (:meth:`_Loop.replan` decides with it,
    :meth:`_Loop.take_recorded_decision` checks a record against it.)"""
    if cfg.train.budget_lr == "sqrt" and kept > 1 and kept_schedule < asked_schedule:
        return budget_lr_scale(asked_schedule, kept_schedule, cfg.train.lr)
    return 1.0


def encoder_lr(cfg: Config) -> float:
    """The encoder's and decoder's base learning rate: ``train.lr`` times ``train.lr_scale`` (a
    time budget's factor, :func:`budget_lr_scale`), at most LR_MOST."""
    return min(LR_MOST, cfg.train.lr * cfg.train.lr_scale)


def base_rates_to_config(state: State, provisional: float = 1.0) -> None:
    """Set the schedules' base rates (and the optimizers' ``initial_lr``) to the config's: the
    encoder's and decoder's :func:`encoder_lr` (times ``provisional``: the first epoch's rate of
    ``budget_lr = "sqrt"``, which the config does not hold), the adversary's ``train.adversary_lr``."""
    encoder = encoder_lr(state.cfg) * provisional
    rates = [(state.scheduler, encoder), (state.adversary_scheduler, state.cfg.train.adversary_lr)]
    for scheduler, rate in rates:
        if scheduler is not None:
            scheduler.base_lrs = [rate for _ in scheduler.base_lrs]
            for group in scheduler.optimizer.param_groups:
                group["initial_lr"] = rate


def rates_to_plan(state: State) -> None:
    """Set the optimizers' learning rates to what the schedule now gives for the next step
    (after the plan changed: a resume with --schedule-epochs, a time budget)."""
    for scheduler in (state.scheduler, state.adversary_scheduler):
        if scheduler is not None:
            for group, rate in zip(scheduler.optimizer.param_groups, scheduled_rates(scheduler), strict=True):
                group["lr"] = rate


def scheduled_rates(scheduler: torch.optim.lr_scheduler.LambdaLR, step: int | None = None) -> list[float]:
    """The learning rate of each parameter group that ``scheduler`` gives at ``step`` (0-based;
    default: the step it is at, the next one to be taken), computed as LambdaLR computes it."""
    at = scheduler.last_epoch if step is None else step
    return [float(base * rule(at)) for base, rule in zip(scheduler.base_lrs, scheduler.lr_lambdas, strict=True)]


def load_model(run: str | Path) -> tuple[AutoEncoder, Config]:
    """The trained auto-encoder of a run folder (or a checkpoint file, or a folder that
    ``wae export`` wrote), in eval mode, with its config (a conditional run's class names
    and the rest its checkpoint records, from one read: :func:`load_run`)."""
    loaded = load_run(run)
    return loaded.model, loaded.config


@dataclass(frozen=True)
class LoadedRun:
    """What :func:`load_run` read from one checkpoint: the model in eval mode, its config, the
    training step of the checkpoint (an export's from its metadata; a crafted file's odd step is
    read from its file name; None when not known), the
    class names of a conditional run in label order (() otherwise) and the name of the data it
    was trained on."""

    model: AutoEncoder
    config: Config
    step: int | None
    class_names: tuple[str, ...]
    data_name: str


def load_run(run: str | Path) -> LoadedRun:
    """:func:`load_model` with the rest of what its checkpoint records (:class:`LoadedRun`), in
    one read: the newest checkpoint that reads, which is not the newest by name when that one
    is damaged (a warning names it). :class:`UserError` for a folder with no readable
    checkpoint, or a checkpoint that does not match its run's config.json."""
    from .export import exported_step, is_export, read_export

    if is_export(runs.given_path(run, "run")):  # the step and data name its metadata records
        model, cfg, about = read_export(run)
        return LoadedRun(model, cfg, exported_step(about), (), about.get("data") or cfg.data.dataset)
    payload, path = runs.read_checkpoint(run)  # checked against config.json, weights finite
    cfg = ckpt.config_of(payload, path)  # a refusal names the file
    try:
        channels, size = ckpt.image_shape_of(payload)
        names = ckpt.class_names_of(payload, cfg)
        model = _model_for(cfg, channels, size, len(names))
        _load_weights(model, payload)
    except UserError as err:  # a crafted or foreign checkpoint: say which file
        raise UserError(f"{path}: {err}") from None
    step = payload.get("step")  # a crafted file's odd step: the one in its name, else not known
    step = step if type(step) is int and step >= 0 else ckpt.step_of_name(path)
    data = payload.get("data")
    name = data.get("name") if isinstance(data, dict) else None
    return LoadedRun(
        model.eval(),
        cfg,
        step,
        names,
        name if isinstance(name, str) else cfg.data.dataset,
    )


def auto_encoder(cfg: Config, channels: int, size: int, classes: int = 0) -> AutoEncoder:
    """The auto-encoder ``cfg`` describes (its networks and its prior P_Z) for images of
    ``channels`` x ``size`` x ``size``, conditional on ``classes`` when > 0; fresh weights."""
    loss = cfg.loss
    return AutoEncoder(
        cfg.model, channels, size, loss.prior, loss.prior_var, classes, prior_components(cfg), loss.prior_separation
    )


def _model_for(cfg: Config, channels: int, size: int, classes: int = 0) -> AutoEncoder:
    """The auto-encoder a stored config and image shape describe; :class:`UserError` when the
    architecture cannot take that image side."""
    try:
        if cfg.model.arch != "mlp":
            decoder_start_size(ARCHITECTURES[cfg.model.arch], size)
    except (ValueError, KeyError) as err:
        raise UserError(
            f"checkpoint: architecture '{cfg.model.arch}' cannot take {size}x{size} images ({err})"
        ) from None
    return auto_encoder(cfg, channels, size, classes)


def _load_weights(model: AutoEncoder, payload: dict[str, Any]) -> None:
    """The checkpoint's weights into ``model``; :class:`UserError` when they do not fit it."""
    try:
        model.load_state_dict(sampler_weights(payload))
    except (RuntimeError, KeyError, TypeError, AttributeError) as err:
        raise UserError(f"checkpoint weights do not fit its config ({failure_reason(err)})") from None
    if not all(torch.isfinite(t).all() for t in model.state_dict().values() if t.is_floating_point()):
        raise UserError("checkpoint weights hold NaN or infinite values (they would decode blank images)")


def sampler_weights(payload: dict[str, Any]) -> dict[str, Tensor]:
    """The auto-encoder weights of a checkpoint that generate: its moving average (train.ema)
    when it has one, else the trained weights."""
    if "ema" not in payload:
        return payload["model"]
    prefix = "module."
    return {k[len(prefix) :]: v for k, v in payload["ema"].items() if k.startswith(prefix)}


# ----------------------------------------------------------------------------- the loop


@dataclass
class Run:
    """What :func:`fit` returns: the trained model (its moving average when train.ema > 0) and
    where its run folder is."""

    model: AutoEncoder
    run_dir: Path | None
    step: int
    metrics: dict[str, float] = field(default_factory=dict)
    interrupted: bool = False
    signal: int = signal.SIGINT  # what interrupted it: SIGINT (Ctrl-C), SIGTERM or SIGHUP
    classes: tuple[str, ...] = ()  # a conditional run's class names: label i decodes class classes[i]


class _StopFlag:
    """Ctrl-C, SIGTERM (preemption) or SIGHUP (the terminal closed) sets a flag that the loop
    reads between steps, so a checkpoint is never taken in the middle of an update; a second
    signal stops at once (:class:`runs.Interrupted`; files being written are left whole, as
    every write is atomic). A signal ignored when training starts stays ignored."""

    def __init__(self) -> None:
        self.set = False
        self.signum = int(signal.SIGINT)
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopFlag:
        self._previous = runs.catch_signals(runs.STOP_SIGNALS, self._handle)  # ignored ones stay so
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.set:
            raise runs.Interrupted(signum)
        self.set, self.signum = True, signum

    def __exit__(self, *exc: object) -> None:
        runs.restore_signals(self._previous)


def _check_own_checkpoint(run_dir: Path, payload: dict[str, Any], path: Path) -> None:
    """:class:`UserError` when the run's checkpoints/ is a link to a folder outside it (a scratch
    disk) and the newest checkpoint there, ``path``, is of a step the run's records hold no
    evaluation of, while they hold others: each checkpoint a session saves follows its step's
    evaluation record, so it is another run's, one whose checkpoints/ leads to the same folder
    (two copies of a run: session 55's hostile pass; a run at step 4 trained on from its copy's
    step 8 and pruned its own checkpoint)."""
    folder = run_dir / ckpt.FOLDER
    step = payload.get("step")
    if not folder.is_symlink() or not isinstance(step, int):
        return
    with warnings.catch_warnings():  # a damaged line is said once, by the resume's own reading
        warnings.simplefilter("ignore")
        records = read_jsonl(run_dir / ckpt.RECORDS)
    steps = {r.get("step") for r in records if r.get("kind") == "eval"}
    if steps and step not in steps:
        last = max((s for s in steps if isinstance(s, int | float)), default=None)
        shown = runs.shown_name(str(path))
        raise UserError(
            f"checkpoint {shown} (step {step}) is not among this run's records, which hold no evaluation of that step "
            f"(their last: step {last}): {runs.shown_name(str(folder))} leads to "
            f"{runs.shown_name(os.path.realpath(folder))}, outside the run, and another run whose checkpoints lead "
            "there too saved it (or this run's last records were lost); give each run a checkpoints folder of its "
            f"own, or, when this run alone writes there, move {path.name} away to resume from the checkpoint before it"
        )


def _resume_it(run_dir: Path) -> str:
    """The end of a refusal of an entry of the run folder ``run_dir`` found during training."""
    return f"then resume the run: wae train --resume {runs.shown_name(shell_path(run_dir))}"


def _append_jsonl(path: Path, record: dict[str, Any], sync: bool = False, checked: bool = False) -> None:
    """Append ``record`` as one line to the records file ``path``; first :class:`UserError` when
    ``path``'s folder is a run folder this process held and no longer holds (removed, or made
    again by another run: :func:`runs.check_held`), so that nothing is written into another run,
    and when ``path`` is not a regular file (a FIFO would block the run, a folder cannot take it)
    or became a link into another run (:func:`runs.entry_problem`). ``sync``: on disk when this
    returns (an evaluation's record, which its checkpoint follows: :func:`_check_own_checkpoint`).
    ``checked``: the caller has just checked ``path`` with :func:`runs.check_run_entries`."""
    runs.check_held(path.parent)
    if not checked and (trouble := runs.entry_problem(path.parent, path.name)):  # made a link meanwhile
        raise UserError(trouble)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK, 0o644)
    except OSError as err:
        if err.errno in (errno.ENXIO, errno.EISDIR):  # a FIFO without a reader, a folder
            raise UserError(runs.not_a_records_file(path)) from None
        raise OSError(err.errno, err.strerror, str(path)) from None
    with open(fd, "a") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UserError(runs.not_a_records_file(path))
        try:
            f.write(ckpt.json_text(record) + "\n")
            if sync:  # on disk before the checkpoint that follows it (a crash keeps neither or both)
                f.flush()
                os.fsync(fd)
        except OSError as err:
            raise OSError(err.errno, err.strerror, str(path)) from None


# the kinds of record wae train writes into metrics.jsonl (a resume rewrites those after its checkpoint)
RECORD_KINDS = frozenset({"train", "eval", "plan", "nonfinite"})


def _records_kept(path: Path, step: int) -> tuple[int, bytes, bool]:
    """One pass over the records file: how many training records of steps after ``step`` it
    holds, a partial last record (b"" if none) and whether its last line lacks its line break."""
    late, partial, cut = 0, b"", False
    with open(path, "rb") as f:
        for line in f:  # lines split at b"\n" alone: other line breaks are the user's text
            cut = not line.endswith(b"\n")
            verdict = _line_verdict(line, step)
            if verdict == "late":
                late += 1
            elif verdict == "broken" and cut and _cut_record(line):
                partial = line
    return late, partial, cut


_RECORD_START = b'{"kind": "'  # how every line that training writes begins
_RECORD_MOST = 1 << 20  # bytes: a record is a few kilobytes; a longer line is the user's


def _cut_record(line: bytes) -> bool:
    """Whether a last line without its line break may be one of training's records cut short
    by a kill: it begins as they do, has no carriage return (a file of CR line ends is one
    "line" of the user's) and is no longer than a record can be."""
    start = line[: len(_RECORD_START)]
    return start == _RECORD_START[: len(start)] and b"\r" not in line and len(line) <= _RECORD_MOST


def _line_verdict(line: bytes, step: int) -> str:
    """ "late" for a training record of a step after ``step`` (a time budget's ``plan`` records
    excepted: they record the plan in config.json, which a resume from an older checkpoint
    keeps), "broken" for a line that is no JSON (or not UTF-8), "kept" otherwise."""
    try:
        record = parse_json(line.decode("utf-8"))
    except ValueError:  # also not UTF-8, a number too long or nesting too deep
        return "broken"
    kind = record.get("kind") if isinstance(record, dict) else None
    ours = isinstance(kind, str) and kind in RECORD_KINDS and kind != "plan"  # an edited kind may be a list
    return "late" if ours and _number(record.get("step")) and record["step"] > step else "kept"


def _truncate_metrics(path: Path, step: int, say: Callable[[str], None] = print) -> None:
    """Remove the records that training writes (:data:`RECORD_KINDS`) of steps after ``step``
    (a resumed run writes what came after its checkpoint again; a time budget's plan records
    stay, as the plan in config.json does) and a partial last record (a
    line that begins as training's records do, with no line break after it: a killed writer's,
    :func:`_cut_record`), saying what
    was removed once it is; other lines (edited or added by hand) stay byte for byte (readers
    skip what is not a record, with a warning; a last line of the user's without its line break
    gets one). Lines are split at b"\n" alone and the file is read and written a line at a time.
    A file with nothing to change is not rewritten; a link is rewritten through (its target
    changes) and the file keeps its permission bits (:func:`checkpoint.write_atomic`). A path
    that is no regular file is left alone (a session refuses it as it starts: :func:`fit`)."""
    if not path.is_file():
        return
    late, partial, cut = _records_kept(path, step)
    if not late and not partial and not cut:
        return  # an empty file, too, is left as it is

    def kept() -> Iterator[bytes]:
        with open(path, "rb") as f:
            for line in f:
                last_cut = not line.endswith(b"\n")  # only the last line can lack its break
                if (last_cut and partial) or _line_verdict(line, step) == "late":
                    continue
                yield line if not last_cut else line + b"\n"

    target = path.resolve() if path.is_symlink() else path  # appends go through a link: so does this
    ckpt.write_atomic(target, kept())
    if late:
        records = f"{late} record{'s' if late != 1 else ''}"
        say(f"{path}: {records} of steps after the checkpoint's step {step} removed (training writes them again)")
    if partial:
        shown = partial[:60].decode(errors="replace")
        say(f"{path}: removed a last record cut short (no line break, {len(partial):,} bytes): {shown!r}")


def _nonfinite_weight(state: State) -> str:
    """The first weight or buffer of the auto-encoder, its moving average or the adversary that
    holds a NaN or infinite value (:func:`runs.first_nonfinite`); "" when none does."""
    modules = (("model", state.model), ("ema", state.ema), ("adversary", state.adversary))
    return runs.first_nonfinite((part, module.state_dict()) for part, module in modules if module is not None)


def _figures(
    state: State, data: ImageData, run_dir: Path, epoch: int, fixed_z: Tensor, check: Callable[[], None] = lambda: None
) -> None:
    """Prior samples from fixed codes, test reconstructions and interpolations, as PNG grids
    (the latest at the top of the run folder, every epoch's in grids/), written once ``check``
    (of the run folder's entries) passes with grids/ held."""
    model, value_range = state.sampler_model, state.cfg.data.range
    classes = model.classes
    with eval_mode(model), torch.no_grad():
        fixed_labels = balanced_labels(len(fixed_z), classes) if classes else None
        samples = to_unit_range(model.decode(fixed_z, fixed_labels).cpu(), value_range)
        x = to_model_range(grid_rows(data.test), value_range)
        y = grid_rows(data.test_labels) if classes and data.test_labels is not None else None
        recon = reconstruction_rows(
            to_unit_range(x, value_range), to_unit_range(model.reconstruct(x, y).cpu(), value_range), 12
        )
        starts, ends = (to_model_range(images, value_range) for images in interpolation_ends(data.test))
        ends_y = interpolation_ends(data.test_labels) if classes and data.test_labels is not None else (None, None)
        interp = to_unit_range(model.interpolate(starts, ends, 12, *ends_y).cpu(), value_range).flatten(0, 1)
        grids = [("samples", samples, 10), ("reconstructions", recon, 12), ("interpolations", interp, 12)]
        if classes:
            grids.append(("classes", to_unit_range(class_grid(model, fixed_z[:10]).cpu(), value_range), 10))
    scale = 2 if data.size < 48 else 1
    pngs = [(name, grid_png(images, ncol, scale)) for name, images, ncol in grids]  # one for both copies
    ckpt.make_folder(run_dir / ckpt.GRIDS)
    # grids/ held before the check: a swap of its name for a link into another run while the
    # grids were drawn is refused, one after the check leads nowhere (ckpt.held_folder)
    with ckpt.held_folder(run_dir / ckpt.GRIDS, check) as held:
        for name, png in pngs:
            ckpt.write_atomic(run_dir / f"{name}.png", png)
            ckpt.write_atomic(held / ckpt.epoch_grid(run_dir, name, epoch).name, png)


MAX_GRID_CLASSES = 50  # rows of the class-by-style grid


@torch.no_grad()
def class_grid(model: AutoEncoder, z: Tensor, classes: list[int] | None = None) -> Tensor:
    """A conditional model's class-by-style grid: every code of ``z`` (m, d_z) decoded with
    every class of ``classes`` (default: the first :data:`MAX_GRID_CLASSES`), class-major, so
    that a grid of m columns has a row per class and a column per code (the same style).
    Returns (len(classes) * m, c, h, w) in the model's range."""
    rows = classes if classes is not None else list(range(min(model.classes, MAX_GRID_CLASSES)))
    labels = torch.tensor(rows).repeat_interleave(len(z))
    return model.decode(z.repeat(len(rows), 1), labels)


MIN_EX_POST_CODES = 40  # two codes a component of the 10-component mixture, and a held-out tenth for a flow


def fit_ex_post(state: State, data: ImageData, run_dir: Path, say: Callable[[str], None]) -> None:
    """The end of training with ``train.fit_sampler`` set: fit that ex-post sampler to the codes
    of the training images (Ghosh et al. 2020, as ``wae fit-sampler`` does), save it into the
    run folder and draw ``samples-KIND.png`` from it. A sampler of that kind already in the
    folder (fitted to the codes of earlier weights) is fitted again with the settings it records
    (a ``wae fit-sampler --components auto`` stays auto), else with the defaults."""
    kind, cfg = state.cfg.train.fit_sampler, state.cfg
    if len(data.train) < MIN_EX_POST_CODES:
        what = "rows" if isinstance(data, TableData) else "images"
        say(f"{len(data.train)} training {what} are too few to fit a {kind} sampler to; prior samples only")
        return
    start = time.perf_counter()
    model = state.sampler_model
    labels = data.train_labels if model.classes else None  # Q_Z of a conditional run: codes of (x, y)
    codes = encode_all(model, data.train, cfg.data.range, labels=labels)
    defaults = fit_settings(kind, seed=cfg.train.seed)
    earlier = recorded_fit(run_dir / SAMPLER_FILES[kind], kind, say)
    settings = earlier or defaults
    try:
        sampler, what = fit_sampler(kind, codes, **settings, log=say)
    except UserError as err:  # settings chosen for other codes (more of them): the defaults
        if settings == defaults:
            raise
        say(f"the settings of the {kind} sampler fitted before do not fit these codes ({err}); the defaults instead")
        settings = defaults
        sampler, what = fit_sampler(kind, codes, **settings, log=say)
    grid = not isinstance(data, TableData)
    path = save_sampler_and_grid(model, sampler, cfg, run_dir, kind, grid=grid, say=say, fit=settings)
    how = "" if settings == defaults else " with the settings of the sampler it replaces (" + fit_flags(settings) + ")"
    say(f"fitted {what}{how} to the training codes in {time.perf_counter() - start:.1f} s: {path}")


def _kept_sampler(run_dir: Path, kind: str, model: AutoEncoder) -> LatentSampler | None:
    """The ``kind`` sampler of ``run_dir`` when it is whole (read and checked as ``wae sample``
    reads it) and records the fingerprint of ``model``'s weights; None when it is missing,
    damaged, or fitted to other weights (or to unknown ones: a file without a fingerprint)."""
    path = run_dir / SAMPLER_FILES[kind]
    if not path.is_file():
        return None
    try:
        sampler = load_sampler(run_dir, kind, model)  # refuses one whose fingerprint is of other weights
        return sampler if fitted_to(path, kind) else None
    except UserError:  # damaged, stale, or its library not installed: fitted again
        return None


def sampler_outputs(run_dir: Path, kind: str, grid: bool = True) -> list[Path]:
    """The files that fitting the ex-post sampler ``kind`` writes into ``run_dir``, each checked
    before any work: :class:`UserError` when one exists and is not a regular file (a folder, a
    FIFO), which would fail the write after the fit."""
    paths = [run_dir / SAMPLER_FILES[kind]] + ([run_dir / f"samples-{kind}.png"] if grid else [])
    for path in paths:
        if path.exists() and not path.is_file():
            raise UserError(f"{path} exists and is not a regular file: remove it, then fit the sampler again")
    return paths


def save_sampler_and_grid(
    model: AutoEncoder,
    sampler: LatentSampler,
    cfg: Config,
    run_dir: Path,
    kind: str,
    grid: bool = True,
    say: Callable[[str], None] = print,
    fit: dict[str, Any] | None = None,
) -> Path:
    """Write ``samples-KIND.png`` (when ``grid``; rows have none), then the sampler file (with
    ``fit``, the settings it was fitted with: :func:`~wae.samplers.fit_settings`); when
    the sampler cannot be written the new grid is removed again, so that a failed fit leaves
    neither a replaced sampler nor a grid of one that was not saved. The evaluation of the
    sampler this one replaces (``metrics-KIND.json``) is removed, and ``say`` says so. The
    sampler's path."""
    paths = sampler_outputs(run_dir, kind, grid)
    if grid:
        sampler_grid(model, sampler, cfg, paths[1])
    try:
        path = save_sampler(sampler, run_dir, kind, model, fit)
    except BaseException:
        if grid:
            paths[1].unlink(missing_ok=True)
        raise
    evaluated = run_dir / f"metrics-{kind}.json"
    if ckpt.is_evaluation(evaluated):
        evaluated.unlink(missing_ok=True)
        say(f"{evaluated.name} evaluated the sampler this fit replaced: removed (evaluate again with --sampler {kind})")
    return path


def drop_stale_grids(model: AutoEncoder, run_dir: Path, say: Callable[[str], None], refits: str = "none") -> bool:
    """After training changed the weights (each checkpoint a training session saves, so an
    interrupted resume too): remove what was derived from older weights, and say so: the grid
    ``samples-KIND.png`` of each ex-post sampler fitted to their codes (the sampler file stays:
    ``wae sample`` and ``wae evaluate`` refuse it, naming ``wae fit-sampler``), and each
    ``metrics*.json`` of ``wae evaluate`` that records other weights or none (written before
    fingerprints, so before this session's steps), so that the report, ``wae runs``, ``wae
    compare`` and ``wae export`` stop showing its figures. Whether anything was removed."""
    removed = False
    fingerprint = ""  # the weights hashed once, when a first file needs the check
    for path in sorted(run_dir.glob("metrics*.json")):
        evaluation = ckpt.evaluation_of(path)
        if evaluation is None:  # a folder, or a file of the user's of that name
            continue
        fingerprint = fingerprint or ckpt.weights_fingerprint(model)
        if ckpt.fingerprint_entry(evaluation) != fingerprint:
            path.unlink(missing_ok=True)
            removed = True
            kind = path.stem.removeprefix("metrics").removeprefix("-")  # metrics-gmm.json: the mixture's
            again = f"wae evaluate {shell_path(run_dir)}" + (f" --sampler {kind}" if kind in SAMPLER_FILES else "")
            say(f"{path.name} was computed from the weights before this session: removed (evaluate again: {again})")
    for kind, name in SAMPLER_FILES.items():
        grid = run_dir / f"samples-{kind}.png"
        if grid.is_file() and not (run_dir / name).exists():  # its sampler is gone: of older weights
            grid.unlink(missing_ok=True)
            removed = True
            say(f"{grid.name} was drawn from a sampler file that is missing: removed")
            continue
        if not ((run_dir / name).is_file() and grid.is_file()):
            continue
        fingerprint = fingerprint or ckpt.weights_fingerprint(model)
        try:
            stale = is_stale(run_dir / name, kind, fingerprint)
        except UserError:  # a damaged sampler file: its readers say so
            stale = False
        if stale:
            grid.unlink(missing_ok=True)
            removed = True
            if kind == refits:  # the run fits it again itself (a session stopped first leaves it to the next)
                say(f"{name} was fitted to the weights before this session: fitted again at the end of training")
            else:
                again = refit_command(run_dir, kind)
                say(f"{name} was fitted to the weights before this session: refit it with {again} (its grid removed)")
    return removed


def sampler_grid(model: AutoEncoder, sampler: LatentSampler, cfg: Config, path: Path) -> None:
    """A 10x10 grid of images decoded from codes of an ex-post ``sampler`` (seeded with the
    run's seed; a conditional model's with the classes in turn), written atomically to ``path``."""
    with eval_mode(model), torch.no_grad():
        device = next(model.parameters()).device
        codes = sampler.sample(100, torch.Generator().manual_seed(cfg.train.seed + 2)).to(device)
        labels = balanced_labels(len(codes), model.classes) if model.classes else None  # a column per class
        samples = to_unit_range(model.decode(codes, labels).float().cpu(), cfg.data.range)
    save_grid(samples, path, 10, 2 if samples.shape[-1] < 48 else 1)


_REPORT_COLUMNS = [("test_recon_mse", ".5f"), ("test_mmd", ".5f"), ("code_mean_norm", ".3f")]
_REPORT_COLUMNS += [("code_var_mean", ".3f"), ("fd_samples", ".2f")]


def _figure(value: Any, spec: str) -> str:
    """A number for a table cell; blank when missing, "n/a" when undefined (null or NaN)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "" if value is None else "n/a"
    return format(value, spec)


def _report(state: State, data: ImageData, run_dir: Path, evals: list[dict[str, Any]], speed: float) -> None:
    """A short human-readable report.md of the run so far."""
    cfg = state.cfg
    table = isinstance(data, TableData)
    shape = f"{data.channels} standardised columns" if table else f"{data.channels}x{data.size}x{data.size}"
    lines = [
        f"# WAE run: {cfg.preset}, objective {cfg.loss.objective}",
        "",
        f"- data: {markdown_text(data.name)}, {len(data.train)} training / {len(data.test)} test "
        f"{'rows' if table else 'images'}, "
        f"{shape}" + (f", conditional on {len(state.classes)} classes" if state.classes else ""),
        f"- model: architecture {cfg.model.arch}, {cfg.model.encoder} encoder, d_z = {cfg.model.latent_dim}, "
        f"{sum(p.numel() for p in state.model.parameters()):,} parameters",
        f"- loss: cost {cfg.loss.cost} x {cfg.loss.cost_scale}, lambda = {cfg.loss.lam}"
        f"{noise_words(cfg.loss.input_noise, cfg.loss.code_noise)}, "
        f"{'kernel ' + cfg.loss.kernel + ', ' if cfg.loss.objective == 'mmd' else ''}prior "
        + describe(cfg.loss.prior, cfg.loss.prior_var, state.model.prior_components, cfg.loss.prior_separation),
        f"- training: {state.step} steps of batch {cfg.train.batch_size}, precision {cfg.train.precision}, "
        f"seed {cfg.train.seed}, {speed:.0f} {'rows' if table else 'images'}/s "
        "(mean over the run, training steps only)",
        f"- wae {__version__}, torch {torch.__version__}, {torch.get_num_threads()} threads",
        "",
        "| epoch | step | test recon MSE / "
        + (
            "entry | MMD(Q_Z, P_Z) test | |mean Q_Z| | mean var Q_Z | W1 samples (mean) | corr. error (RMS) |"
            if table
            else "pixel | MMD(Q_Z, P_Z) test | |mean Q_Z| | mean var Q_Z | FD samples (classifier) |"
        ),
        "|---|---|---|---|---|---|---|" + ("---|" if table else ""),
    ]
    columns = _REPORT_COLUMNS[:-1] + [("w1_mean", ".4f"), ("corr_error_rms", ".4f")] if table else _REPORT_COLUMNS
    for e in evals:
        cells = [_figure(e.get(k), spec) for k, spec in columns]
        lines.append(f"| {e['epoch']} | {e['step']} | " + " | ".join(cells) + " |")
    if table:  # no images; `wae sample RUN --out rows.csv` draws rows in the file's units
        ckpt.write_atomic(run_dir / "report.md", "\n".join(lines) + "\n")
        return
    lines += [
        "",
        "Prior samples (fixed codes):",
        "",
        "![samples](samples.png)",
        "",
        *(
            [
                f"Samples with codes from the ex-post sampler ({cfg.train.fit_sampler}) fitted to Q_Z:",
                "",
                f"![samples-{cfg.train.fit_sampler}](samples-{cfg.train.fit_sampler}.png)",
                "",
            ]
            if (run_dir / f"samples-{cfg.train.fit_sampler}.png").is_file()
            else []
        ),
        "Test reconstructions (rows of originals, then their reconstructions):",
        "",
        "![reconstructions](reconstructions.png)",
        "",
        "Interpolations between the codes of test images:",
        "",
        "![interpolations](interpolations.png)",
        "",
    ]
    if state.classes:
        lines += [
            f"Classes by style (rows: the classes {', '.join(state.classes[:MAX_GRID_CLASSES])}; columns: "
            "the same codes z):",
            "",
            "![classes](classes.png)",
            "",
        ]
    ckpt.write_atomic(run_dir / "report.md", "\n".join(lines))


def fit(
    cfg: Config,
    run_dir: str | Path | None = None,
    data: ImageData | None = None,
    resume: bool = False,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> Run:
    """Train the auto-encoder ``cfg`` describes; with ``run_dir``, write the run folder
    (config.json, metrics.jsonl, checkpoints/step-N.pt, PNG grids, report.md) and, with ``resume``,
    continue from its checkpoint. ``progress`` None shows a bar only on a terminal.

    Under ``torchrun`` every process calls this with the same arguments: each trains on its
    shard of every global batch and rank 0 alone writes the run folder."""
    started = time.perf_counter()  # what train.time_budget counts from
    if run_dir is not None:
        run_dir = runs.given_path(run_dir, "the run folder")
    if resume:  # before any work: a folder with no run trained anew from scratch, and None was an AssertionError
        if run_dir is None:
            raise UserError("resume=True continues a run folder: give its run_dir")
        ckpt.check_run_folder(Path(run_dir))
    (validate if resume else validate_new)(cfg)  # a saved run resumes with the settings it has
    cfg = plain_config(cfg)  # a caller's numpy numbers as Python's, before they are used or saved
    tracking.check_installed(cfg)
    if run_dir is None and tracking.names_of(cfg.train.log):
        raise UserError(f"train.log = {cfg.train.log!r}: trackers write into the run folder; give one")
    device = resolve_device(cfg.train.device, launched().local_rank)
    cfg = runs.session_config(cfg, run_dir, resume)  # data pinned or checked; schedule kept
    # the training seeds and draws from torch's global generator (its state is part of a
    # checkpoint); the caller's is given back afterwards, as its thread count is
    rng = torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else [])
    with _alone(), rng, process_group(device) as procs, runs.writing(run_dir, procs.main, resume):
        with _threads(cfg.train.threads):
            return _fit(cfg, device, procs, run_dir, data, resume, progress, log, started)


_ONE_TRAINING = threading.Lock()


@contextlib.contextmanager
def _alone() -> Iterator[None]:
    """:class:`UserError` when another thread of this process trains: both would draw from
    torch's global generator (``fork_rng`` saves and restores it; it does not make it the
    thread's own), so neither would give the numbers its seed gives alone."""
    if not _ONE_TRAINING.acquire(blocking=False):
        raise UserError(
            "another wae training runs in this process (in another thread): trainings share torch's global random "
            "generator, so neither would reproduce its seed; train one after the other, or in separate processes"
        )
    try:
        yield
    finally:
        _ONE_TRAINING.release()


@contextlib.contextmanager
def _threads(count: int | None) -> Iterator[None]:
    """torch's intra-op threads set to ``count`` (None: left as they are) while training, and
    given back after: a Python caller's ``fit_tensor(..., threads=1)`` once left the whole
    process at one thread."""
    before = torch.get_num_threads()
    if count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def _fit(
    cfg: Config,
    device: torch.device,
    procs: Processes,
    run_dir: str | Path | None,
    data: ImageData | None,
    resume: bool,
    progress: bool | None,
    log: Callable[[str], None] | None,
    started: float,
) -> Run:
    if run_dir is not None and procs.main:  # before the data are read: a FIFO there would block the run
        runs.check_run_entries(run_dir, cfg)
    data = data if data is not None else load(cfg.data)
    check_fits(cfg, data, procs.world)
    cfg = resolve_precision(cfg, device.type)
    # the run's own train section: a time budget changes its epochs, never the caller's
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train))
    classes = len(data.classes) if cfg.data.condition == "labels" else 0
    state = build(cfg, data.channels, data.size, len(data.train) // cfg.train.batch_size, device, procs, classes)
    state.classes = data.classes if classes else ()
    quiet: Callable[[str], None] = lambda msg: None  # noqa: E731
    shown: Callable[[str], None] = lambda msg: tqdm.write(one_line(msg), file=sys.stderr)  # noqa: E731
    say = (log if log is not None else shown) if procs.main else quiet
    if device.type == "cpu" and cfg.train.precision == "bf16" and (why := bf16_emulated()):
        kept = "; give --precision fp32 with --resume to train on in fp32" if resume else ", which auto would choose"
        say(f"note: precision bf16 is emulated here ({why}): slower than fp32{kept}")
    loop = _Loop(state, data, Path(run_dir) if run_dir is not None else None, say, started)
    if resume:
        loop.resume()
    elif unused := unused_changes(cfg):  # a Config changed by hand (dataclasses.replace) or read from a file
        say(unused)
    if loop.out is not None:
        loop.out.mkdir(parents=True, exist_ok=True)
        ckpt.write_config(loop.out, cfg)
    with tracking.open_trackers(cfg, loop.out) as loop.trackers:  # rank 0 alone: loop.out is None elsewhere
        return loop.run(progress)


class _Loop:
    """The training loop of one :func:`fit` call, in the pieces a reader follows: :meth:`resume`,
    :meth:`run` (epoch after epoch), :meth:`epoch`, :meth:`step` and :meth:`log` (one batch),
    :meth:`checkpoint_point` (evaluate, write, save) and :meth:`finish`. Its attributes are what
    the loop carries from one step to the next."""

    def __init__(
        self, state: State, data: ImageData, run_dir: Path | None, say: Callable[[str], None], started: float
    ) -> None:
        cfg = state.cfg
        self.started = started  # perf_counter() when fit() was called
        self.state, self.cfg, self.data, self.procs, self.say = state, cfg, data, state.procs, say
        self.source = run_dir  # read on resume by every rank
        self.out = run_dir if state.procs.main else None  # written by rank 0 alone
        self.resume_advice = _resume_it(run_dir) if run_dir is not None else ""  # a refusal's end
        self.steps_per_epoch = len(data.train) // cfg.train.batch_size
        self.total_steps = planned_steps(cfg, self.steps_per_epoch)
        self.step_fn = STEPS[cfg.loss.objective]
        self.fixed_z = state.model.prior_sample(100, torch.Generator().manual_seed(cfg.train.seed + 2))
        # a random subset, not the first images: MNIST's test set is ordered by writer population
        eval_order = torch.randperm(len(data.test), generator=torch.Generator().manual_seed(cfg.train.seed + 3))
        self.eval_images = data.test[eval_order[: cfg.train.eval_size]]
        self.conditional = state.model.classes > 0
        test_labels = data.test_labels if self.conditional else None
        self.eval_labels = test_labels[eval_order[: cfg.train.eval_size]] if test_labels is not None else None
        self.evals: list[dict[str, Any]] = []  # the evaluation records of the run so far
        self.reference_outputs: tuple[Tensor, Tensor] | None = None  # the classifier's of eval_images, once
        self.last_saved = -1  # the step of the newest checkpoint (-1: none yet)
        self.last_eval: dict[str, float] = {}
        self.train_time, self.trained = 0.0, 0  # seconds and images of training steps, this session
        self.window_time, self.window_images = 0.0, 0  # the same since the last line of metrics.jsonl
        self.skipped = 0  # batches with a non-finite loss (counted in this session)
        self.trackers = tracking.Trackers()  # TensorBoard, W&B, MLflow: none until _fit opens them
        self.stopping = False  # some rank was asked to stop (Ctrl-C or SIGTERM)
        self.timed_from, self.timed_since = -1, 0.0  # the step and clock a time budget times the epochs from
        self.early_at = -1  # the step after which budget_lr sqrt sets its provisional rate (-1: none)
        self.budget: float | None = None  # the session's time budget (minutes) once decided
        self.fit_s = 0.0  # seconds the budget keeps back for the ex-post sampler's fit, grid and report
        self.step_times: list[float] = []  # seconds of each whole epoch's steps since that decision
        self.point_times: list[tuple[int, float]] = []  # (epoch, seconds) of this session's checkpoint points
        # (those from timed_from on are the evaluations among a budget's timed steps)
        self.asked = (0, 0, 0)  # the plan the session began with: epochs, those before --max-steps, schedule
        self.signum = int(signal.SIGINT)  # the signal that asked

    def resume(self) -> None:
        """Continue from the run folder's newest readable checkpoint (the run starts afresh when
        it died before its first); the records after that step leave metrics.jsonl."""
        assert self.source is not None
        found = ckpt.load_latest(self.source, warn=self.say)
        if found is None and self.cfg.train.lr_scale != 1:  # a budget decides it after the first epoch's checkpoint
            raise UserError(
                f"{self.source / 'config.json'} holds a time budget's train.lr_scale {self.cfg.train.lr_scale:g}, set "
                "after the first epoch's checkpoint, but the run has no checkpoint to resume: put back its "
                "checkpoints, or train a new run"
            )
        if found is not None:  # else the run died before its first checkpoint: start afresh
            _check_own_checkpoint(self.source, found[0], found[1])
            # (a caller's lr_scale other than 1 too; stored: the run's config.json)
            stored = runs.check_resumed_with(self.cfg, found[0], found[1], self.source)
            if stored is not None:  # the budget's factor the run recorded, where the caller's config left it at 1
                self.cfg.train.lr_scale = stored.train.lr_scale
                before = ckpt.config_of(found[0], found[1]).train.lr_scale
                if before != stored.train.lr_scale and int(found[0]["step"]) > self.steps_per_epoch:
                    # only the first epoch's checkpoint precedes a budget's decision (runs.config_differences)
                    raise UserError(
                        f"checkpoint {found[1]} does not match the run's config.json: train.lr_scale {before:g} "
                        f"(config.json: {stored.train.lr_scale:g}), at step {found[0]['step']}, after the first epoch, "
                        "where a budget sets it; put back the run's own"
                    )
            runs.check_checkpoint(found[0], found[1], self.cfg)
            recorded = ckpt.class_names_of(found[0], self.cfg)
            if recorded != self.state.classes:
                raise UserError(
                    f"checkpoint {found[1]} was trained on the classes {', '.join(recorded)}; the data now have "
                    f"{', '.join(self.state.classes)}"
                )
            self.take_recorded_decision(int(found[0]["step"]))  # before load_state sets the config's rates
            try:
                load_state(self.state, found[0])
            except (RuntimeError, KeyError, ValueError) as err:
                problem = f"checkpoint {found[1]} does not match the run's config.json ({failure_reason(err)})"
                raise UserError(problem) from None
            self.last_saved = self.state.step
        if self.total_steps < self.state.step:  # before anything in the folder changes
            train = self.cfg.train
            limits = f"--epochs {train.epochs}" + (
                f" / --max-steps {train.max_steps}" if train.max_steps is not None else ""
            )
            raise UserError(
                f"the run is at step {self.state.step}; {limits} would end at step {self.total_steps}: nothing to "
                "train (give more)"
            )
        self.say_short_schedule()
        if self.out is not None:
            _truncate_metrics(self.out / ckpt.RECORDS, self.state.step, self.say)
            self.evals = [r for r in read_jsonl(self.out / ckpt.RECORDS) if r.get("kind") == "eval"]
            # what a session that trains nothing returns: the figures of the evaluation at this step
            here = [r for r in self.evals if r.get("step") == self.state.step]
            if here:
                self.last_eval = {
                    k: float(v)
                    for k, v in here[-1].items()
                    if k not in ("kind", "step", "epoch") and _number(v) and math.isfinite(v)
                }
                missing = [k for k in ("test_recon_mse", "test_mmd") if k not in self.last_eval]
                if missing:  # edited by hand, or lost: the figures are what is left, said as such
                    self.say(
                        f"{self.out / ckpt.RECORDS}: the evaluation record of step {self.state.step} has no finite "
                        f"{' or '.join(missing)} (edited?): the figures returned are the others"
                    )

    def take_recorded_decision(self, step: int) -> None:
        """A time budget still pending in config.json whose first decision metrics.jsonl records
        last, at the run's first epoch end (a kill between the plan record and config.json's
        write, :meth:`write_plan`), with the budget and epochs pending: take that decision as
        it was made, its --budget-lr factor included, and write config.json, as if the write had
        not been cut short. (Decided again at this session's first epoch end, the run's second,
        it set no factor: the rule sets one at the run's first epoch end only.) Nothing when no
        such record is there, or the checkpoint resumed (at ``step``) precedes it; a record that
        does not hold a plan the budget could make leaves the budget pending, to be decided again."""
        cfg, spe = self.cfg, self.steps_per_epoch
        budget = cfg.train.time_budget
        if budget is None or self.source is None or step < spe:
            return
        plans = plan_records(self.source / ckpt.RECORDS)  # a damaged line: _truncate_metrics warns of it
        if not plans:
            return
        last, epochs, schedule = plans[-1], cfg.train.epochs, planned_epochs(cfg)
        pending = (budget, epochs, schedule)
        if last.get("revised") is not False or last.get("step") != spe:
            return
        if (last.get("time_budget_min"), last.get("epochs_asked"), last.get("schedule_asked")) != pending:
            return
        kept, kept_schedule = last.get("epochs_kept"), last.get("schedule_epochs")
        if type(kept) is not int or type(kept_schedule) is not int:
            return
        plan = (kept, kept_schedule)
        # a cut, to the epochs kept with the schedule over them (replan), or the plan as it was;
        # not bounded by this session's --max-steps (the first session's, which the record does
        # not hold, bounded the decision: a cut is below the epochs asked, and is one either way)
        cut = plan != (epochs, schedule)
        if cut and (not 1 <= kept < epochs or kept_schedule != min(kept, schedule)):
            return
        scale = first_decision_scale(cfg, kept, kept_schedule, schedule) if cut else 1.0
        if last.get("lr_scale", 1.0) != scale:
            return
        if cut:
            cfg.train.epochs, cfg.train.schedule_epochs = plan
        cfg.train.time_budget, cfg.train.lr_scale = None, scale
        self.total_steps = planned_steps(cfg, spe)
        if self.out is not None:
            ckpt.write_config(self.out, cfg)
        factor = (
            f" at lr {encoder_lr(cfg):.3g} (--budget-lr sqrt: {cfg.train.lr:g} x {scale:.3g})" if scale != 1 else ""
        )
        decided = (
            f"training {kept} of the {epochs} epochs{factor}"
            if cut
            else "the 1 epoch fits"
            if epochs == 1
            else f"all {epochs} epochs fit"
        )
        self.say(
            f"time budget {budget:g} min: its decision at step {spe} ({decided}) is in {ckpt.RECORDS} but not in "
            "config.json (the session was stopped between the two writes): taken as recorded"
        )

    def say_short_schedule(self) -> None:
        """A resumed session that will train past the end of its learning-rate schedule (config.json
        keeps the first session's plan, or a time budget's cut) says so, and what --schedule-epochs
        over all the epochs would do to the rate: the schedule is never changed unasked. Not
        said when a budget still to decide will plan the schedule, or --max-steps ends the
        session before the schedule ends."""
        cfg, spe, step = self.cfg, self.steps_per_epoch, self.state.step
        spans, epochs = planned_epochs(cfg), cfg.train.epochs
        reach = -(-self.total_steps // spe)  # the epochs begun before the session's last step
        if spans >= reach or step >= self.total_steps or cfg.train.time_budget is not None:
            return  # (a budget still to decide plans the schedule anew, and says so)
        stretched = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, schedule_epochs=epochs))
        now, then = lr_multiplier(cfg, step, spe), lr_multiplier(stretched, step, spe)
        end = lr_multiplier(cfg, spans * spe, spe)
        effect = (
            "no rate would rise by it"
            if then <= now and step >= warmup_steps(stretched, spe)
            else f"the rate at the next step would be {then:.3g}x lr instead of {now:.3g}x"
        )
        self.say(
            f"note: the learning-rate schedule spans {spans} of the run's {epochs} epochs (schedule_epochs in "
            f"config.json), so the rate stays at {end:.3g}x lr from epoch {spans + 1} on; give --schedule-epochs "
            f"{epochs} to plan it over all {epochs} ({effect})"
        )

    def nothing_to_train(self) -> str:
        """The note of a session that finds the run at its last step: which settings end it there,
        and what to give to go on (a run stopped by ``max_steps`` keeps it in config.json)."""
        train, step = self.cfg.train, self.state.step
        end = train.epochs * self.steps_per_epoch
        epochs = _epochs(train.epochs)
        if train.max_steps is not None and train.max_steps < end:
            where = f"where its --max-steps {train.max_steps} ends it"
            more = f"a larger --max-steps to go on, up to {end}, the end of its {epochs}"
        elif train.max_steps == end:
            where = f"the end of its {epochs} and of its --max-steps {train.max_steps}"
            more = "more --epochs and a larger --max-steps to go on"
        else:
            where, more = f"the end of its {epochs}", "more --epochs to go on"
        pending = train.time_budget
        kept = f"; its --time-budget {pending:g} waits for the session that trains" if pending is not None else ""
        return f"note: the run is at step {step}, {where}: nothing to train (give {more}){kept}"

    def speed(self) -> float:
        """Images (rows) a second of this session's training steps; for a session that trained
        none, the logged windows' of the run's earlier sessions (their harmonic mean), 0 without any."""
        if self.train_time > 0:
            return self.trained / self.train_time
        logged = [] if self.out is None else read_jsonl(self.out / ckpt.RECORDS)
        speeds = [r["images_per_s"] for r in logged if r.get("kind") == "train" and _positive(r.get("images_per_s"))]
        return len(speeds) / sum(1 / v for v in speeds) if speeds else 0.0

    def run(self, progress: bool | None) -> Run:
        """Train up to the last step or a stop request, with a checkpoint point at the end of
        every epoch; ``progress`` None shows a bar only on a terminal."""
        state = self.state
        bar = tqdm(
            total=self.total_steps,
            initial=state.step,
            disable=not self.procs.main or ((not sys.stderr.isatty()) if progress is None else not progress),
            unit="step",
            dynamic_ncols=True,
        )
        state.model.train()
        spe = self.steps_per_epoch
        # a budget times this session's steps after its first ten (half an epoch's if fewer), which
        # run slower while memory and kernels are set up, and is decided at the first epoch's end
        # after at least half an epoch of timed steps (the first epoch's, unless a resume came late)
        self.timed_from = state.step + min(10, spe // 2)
        self.timed_since = time.perf_counter()
        train = self.cfg.train
        if train.time_budget is not None and train.budget_lr == "sqrt" and state.step == 0:
            # a fresh run's budget with --budget-lr sqrt: a provisional rate from its first timed
            # steps' speed, when they end before the first epoch's end and the session reaches
            # that end, where the budget decides (a --max-steps within the first epoch: no rate)
            early = self.timed_from + min(EARLY_RATE_STEPS, spe // 2)
            self.early_at = early if early < spe <= self.total_steps else -1
        if state.step >= self.total_steps:
            self.say(self.nothing_to_train())
        epoch_ended = 0.0  # perf_counter() at the last epoch end, once the budget is decided
        with _StopFlag() as stop, bar:
            while state.step < self.total_steps and not self.stopping:
                self.epoch(stop, bar)
                if state.step % spe == 0:
                    steps_done = time.perf_counter()
                    self.checkpoint_point(state.step // spe)
                    now = time.perf_counter()
                    self.point_times.append((state.step // spe, now - steps_done))
                    timed = state.step - self.timed_from
                    if self.cfg.train.time_budget is not None and timed >= max(1, spe // 2) and not self.stopping:
                        # (a stop request leaves the budget pending in config.json: the session
                        # that resumes decides it, from its own epochs)
                        # the timed steps scaled to a whole epoch (without the evaluations among them:
                        # a session resumed mid-epoch times one), with the evaluation after them
                        evaluating = sum(p for e, p in self.point_times[:-1] if e * spe >= self.timed_from)
                        stepping = steps_done - self.timed_since - evaluating
                        self.fit_to_budget(stepping * spe / timed + now - steps_done, now - self.started, bar)
                        epoch_ended = time.perf_counter()
                    elif self.budget is not None and state.step < self.total_steps and not self.stopping:
                        # each later epoch end revises the plan from the last epochs' times: a
                        # machine that slows down cuts the epochs left, one that speeds up again
                        # gets back epochs cut before while no rate would rise by it
                        self.step_times.append(steps_done - epoch_ended)
                        self.revise_budget(now - self.started, bar)
                        epoch_ended = time.perf_counter()
            if stop.set:
                self.signum = stop.signum
        pending = self.cfg.train.time_budget
        if pending is not None and self.trained and not self.stopping:
            self.say(
                f"note: --time-budget {pending:g} was not used: the session ended at step {state.step} before it "
                f"had timed half an epoch's steps up to an epoch's end, where a budget is decided; it waits in "
                "config.json for a session that trains on"
            )
        return self.finish()

    def fit_to_budget(self, epoch_s: float, elapsed_s: float, bar: tqdm) -> None:
        """At an epoch's end: keep as many of the run's epochs as fit in its ``time_budget`` (an
        epoch takes ``epoch_s`` seconds; ``elapsed_s`` have passed since :func:`fit` began), with
        a share of an epoch to encode the codes (:data:`ENCODE_SHARE`), the probed time of its
        fit (:func:`wae.samplers.fit_seconds`) and SAMPLER_END_S kept back for an ex-post
        sampler, and re-plan the schedule over them; config.json records the plan and
        metrics.jsonl the decision. The session keeps the budget to revise the plan at each
        later epoch end (:meth:`revise_budget`)."""
        budget = self.cfg.train.time_budget
        assert budget is not None
        self.cfg.train.time_budget = None  # config.json records the plan made, which a resume keeps
        self.budget, self.step_times = budget, []
        # the ex-post sampler's fit is timed once, by a probe on this machine, with the settings
        # it will be fitted with (those a sampler already in the folder records: fit_ex_post);
        # on the main rank, which fits it (the others' 0 make replan's mean over ranks its share)
        kind, codes = self.cfg.train.fit_sampler, len(self.data.train)
        if kind != "none" and codes >= MIN_EX_POST_CODES and self.procs.main:
            earlier = recorded_fit(self.out / SAMPLER_FILES[kind], kind) if self.out is not None else {}
            self.fit_s = fit_seconds(kind, codes, self.cfg.model.latent_dim, earlier or None) + SAMPLER_END_S
        # the first steps' provisional rate (early_rate's), if any, ends here: the decision's is the config's
        provisional = self.state.scheduler.base_lrs[0]
        if provisional != encoder_lr(self.cfg):
            base_rates_to_config(self.state)
            rates_to_plan(self.state)
        self.replan(epoch_s, elapsed_s, bar, revised=False)
        if provisional != encoder_lr(self.cfg) and self.cfg.train.lr_scale == 1:
            self.say(
                f"time budget {budget:g} min: the first epoch's provisional lr {provisional:.3g} ends with it: the "
                f"budget raises no rate (--budget-lr sqrt: none when it keeps all epochs, or one), lr "
                f"{encoder_lr(self.cfg):g} from here"
            )

    def early_rate(self) -> None:
        """``budget_lr = "sqrt"``, in a fresh run's first epoch, after its first EARLY_RATE_STEPS
        timed steps: the rate :func:`budget_lr_scale` gives for the epochs that the budget would
        keep at those steps' speed (:func:`epochs_within`), set for the rest of the first epoch
        only, in memory: the budget's decision at its end sets the run's ``lr_scale`` from the
        whole epoch's time (config.json and the checkpoints' configs never hold the provisional
        rate, a checkpoint's scheduler may: a session that resumes sets its rates from
        config.json). None when the estimate keeps
        every epoch, or fewer than 2 (where the decision raises no rate). The estimate leaves
        out the evaluation at each epoch end and the sampler's fit (not timed yet), and the
        share of the first epoch done: on the demo it came out 2 epochs above the decision on
        each of three seeds (docs/results.md, session 59). Session 57 measured the rule
        applied from the epoch end only: most of what 3e-3 from the first step gave the demo
        on a slow host was lost."""
        cfg, state, spe = self.cfg, self.state, self.steps_per_epoch
        budget = cfg.train.time_budget
        assert budget is not None
        now = time.perf_counter()
        timed = state.step - self.timed_from
        clocks = torch.tensor([(now - self.timed_since) / timed * spe, now - self.started], device=state.device)
        epoch_s, elapsed_s = (float(v) for v in mean_over(clocks, self.procs))
        schedule = planned_epochs(cfg)
        reach = min(cfg.train.epochs, -(-self.total_steps // spe))
        sampler = cfg.train.fit_sampler != "none"
        fits = epochs_within(budget, epoch_s, elapsed_s, reach, sampler, 0, 0.0, self.encode_share())
        if fits >= reach or fits < 2:  # the budget's decision raises no rate then (replan: done == 1 < kept)
            return
        scale = budget_lr_scale(schedule, min(fits, schedule), encoder_lr(cfg))
        if scale == 1:
            return
        base_rates_to_config(state, scale)
        rates_to_plan(state)
        self.say(
            f"time budget {budget:g} min: the first {timed} timed steps suggest about {fits} of the "
            f"{cfg.train.epochs} epochs fit; lr {encoder_lr(cfg) * scale:.3g} for the rest of the first epoch "
            f"(--budget-lr sqrt: {encoder_lr(cfg):g} x {scale:.3g}; the budget decides at its end)"
        )

    def encode_share(self) -> float:
        """The share of an epoch that encoding the training images for an ex-post sampler takes
        (:data:`ENCODE_SHARE`: images in memory, or read from files)."""
        return ENCODE_SHARE["memory" if isinstance(self.data.train, Tensor) else "files"]

    def revise_budget(self, elapsed_s: float, bar: tqdm) -> None:
        """At an epoch end after the budget's first decision: with an epoch's time estimated from
        the last epochs' (:func:`epoch_estimate`: medians of the last three, the evaluations
        amortised over their cycle), cut the epochs left if the rest no longer fits, or give back
        epochs cut before (a first epoch slowed by other work) as far as they fit at the slowest
        of the last epochs, with a margin (:func:`epochs_fitting`: so that clock noise does not
        cut and give back the same epoch at one epoch end after another), and no rate that has
        dropped would rise again (:meth:`grown`)."""
        every = self.cfg.train.eval_every
        epoch_s = epoch_estimate(self.step_times, self.point_times, every)
        worst_s = epoch_estimate(self.step_times, self.point_times, every, worst=True)
        self.replan(epoch_s, elapsed_s, bar, revised=True, worst_s=worst_s)

    def replan(self, epoch_s: float, elapsed_s: float, bar: tqdm, revised: bool, worst_s: float = 0.0) -> None:
        """Keep the epochs that fit in the session's budget (:func:`epochs_within`), of those the
        run would train (a ``max_steps`` may end it first, and then it is not cut while those fit),
        and end the schedule no later than the run; a revision may also give back epochs that an
        earlier decision cut, up to the plan the session began with, as far as no rate would rise
        by it (:meth:`grown`). A first decision is said and recorded always, a revision only when
        it changes the plan."""
        cfg, state, budget, spe = self.cfg, self.state, self.budget, self.steps_per_epoch
        assert budget is not None
        done = state.step // spe
        # the ranks' mean, so that every rank keeps the same epochs (on the device: NCCL reduces there)
        clocks = torch.tensor([epoch_s, elapsed_s, worst_s, self.fit_s * self.procs.world], device=state.device)
        epoch_s, elapsed_s, worst_s, fit_s = (float(v) for v in mean_over(clocks, self.procs))  # fit_s: the main's
        planned = cfg.train.epochs
        reach = min(planned, -(-self.total_steps // spe))  # the epochs begun before the run's last step
        if not revised:  # the plan the session began with: the most a revision gives back
            self.asked = (planned, reach, planned_epochs(cfg))
        asked, asked_reach, asked_schedule = self.asked
        sampler = cfg.train.fit_sampler != "none"
        most = asked_reach if revised else reach
        share = self.encode_share()
        fits = epochs_fitting(budget, epoch_s, elapsed_s, reach, most, sampler, done, worst_s, fit_s, share)
        # a cut ends the schedule with the run when it was planned over more epochs (a
        # --schedule-epochs for the epochs asked) and leaves it when over fewer (a resumed run's,
        # pinned to its first session's): never stretched, so no rate that has dropped rises again
        plan = (fits, min(fits, asked_schedule)) if fits < reach else self.grown(fits) if fits > reach else None
        if plan is None and revised:
            return
        kept_s = fit_s >= 0.5 and sampler  # a second or more kept back for the sampler's fit: said
        scale = cfg.train.lr_scale
        if plan is not None:
            cfg.train.epochs, cfg.train.schedule_epochs = plan
            self.total_steps = planned_steps(cfg, spe)
            bar.total = self.total_steps
            if not revised and done == 1 and (factor := first_decision_scale(cfg, *plan, asked_schedule)) != 1:
                # once, at the run's first epoch end, when epochs are left to train at it; at most LR_MOST
                cfg.train.lr_scale = factor  # (state.cfg is cfg)
                base_rates_to_config(state)
            rates_to_plan(state)  # the next step at the new plan's rate
            said = f"training {plan[0]} of the {asked} epoch{plural(asked)}"
            if cfg.train.lr_scale != scale:
                said += f" at lr {encoder_lr(cfg):.3g} (--budget-lr sqrt: {cfg.train.lr:g} x {cfg.train.lr_scale:.3g})"
        elif reach < planned:
            said = f"the {_epochs(reach)} up to --max-steps {cfg.train.max_steps} fit{'s' if reach == 1 else ''}"
        else:
            said = "the 1 epoch fits" if planned == 1 else f"all {planned} epochs fit"
        # a budget keeps at least the epochs done (and fits the sampler after them): one that they
        # already overrun is said to be, with by how much (session 48: a 0.2-minute budget took
        # 303 s and said nothing of it)
        kept = min(cfg.train.epochs, reach)
        over = elapsed_s + sampler_reserve(epoch_s, sampler, fit_s, share) - budget * 60
        if kept <= done and over >= 1:
            said = (
                (f"training {_epochs(kept)}" if plan is None else said)
                + f", about {over:.0f} s past the budget: a budget keeps at least the epochs done"
                + (" and fits the sampler after them" if sampler else "")
            )
        self.say(
            f"time budget {budget:g} min: "
            + ("epochs now take" if revised else "an epoch takes")
            + f" {epoch_s:.3g} s here ({'their' if revised else 'its'} evaluation included), "
            + f"{elapsed_s:.0f} s have passed"
            + (
                f", {fit_s:.0f} s are kept for the {cfg.train.fit_sampler} sampler's fit, grid and report"
                if kept_s
                else ""
            )
            + ": "
            + (f"{said} (revised)" if revised else said)
        )
        if self.out is not None:
            record = {"kind": "plan", "step": state.step, "time_budget_min": budget, "epoch_s": epoch_s}
            record.update(elapsed_s=elapsed_s, epochs_asked=asked, epochs_before=planned, epochs_kept=cfg.train.epochs)
            record.update(schedule_epochs=planned_epochs(cfg), schedule_asked=asked_schedule, revised=revised)
            if cfg.train.lr_scale != scale:
                record.update(lr_scale=cfg.train.lr_scale, lr=encoder_lr(cfg))
            if fit_s and sampler:
                record.update(sampler_fit_s=fit_s)
            with self.writes():
                self.write_plan(record, revised)

    def write_plan(self, record: dict[str, Any], revised: bool) -> None:
        """The budget's plan ``record`` and config.json, in the order that a kill between them
        leaves in a state the next session reads right."""
        assert self.out is not None
        cfg = self.cfg
        if revised:
            # config.json first: its plan is the one in force (the budget is no longer there
            # for a resume to decide again), so a kill between the two loses this record of
            # the change, never leaves a record of a change that is not in force
            ckpt.write_config(self.out, cfg)
            _append_jsonl(self.out / ckpt.RECORDS, record)
        else:
            # the record first: a kill between the two leaves a record of a decision that the
            # next session, finding the budget still pending in config.json, takes as recorded
            # (take_recorded_decision), never a plan without its record
            _append_jsonl(self.out / ckpt.RECORDS, record)
            ckpt.write_config(self.out, cfg)

    def grown(self, most: int) -> tuple[int, int] | None:
        """The plan (epochs, schedule epochs) with the most epochs, up to ``most``, that the run
        can grow back to without any rate from its next step on above the next step's rate now:
        the plan the session began with first, then fewer epochs with the schedule over them (at
        most over the first plan's); None when none can. Only a step schedule with no factor above
        1 grows, and only past the trial's warm-up: its rates then never rise, so the next step's
        rate bounds all later ones (a cosine schedule's would rise with any growth)."""
        cfg, spe, step = self.cfg, self.steps_per_epoch, self.state.step
        if cfg.train.lr_schedule != "step" or any(f > 1 for f in cfg.train.lr_factors):
            return None
        asked, asked_reach, asked_schedule = self.asked
        now = lr_multiplier(cfg, step, spe)
        trials = [(asked, asked_schedule)] if most >= asked_reach else []
        trials += [(epochs, min(epochs, asked_schedule)) for epochs in range(most, cfg.train.epochs, -1)]
        for epochs, schedule in trials:
            trial = dataclasses.replace(
                cfg, train=dataclasses.replace(cfg.train, epochs=epochs, schedule_epochs=schedule)
            )
            if step >= warmup_steps(trial, spe) and lr_multiplier(trial, step, spe) <= now:
                return epochs, schedule
        return None

    def epoch(self, stop: _StopFlag, bar: tqdm) -> None:
        """The rest of the current epoch, batch by batch, until the last step or a stop request."""
        cfg, state, procs = self.cfg, self.state, self.procs
        bs = cfg.train.batch_size
        position = (cfg.train.seed, state.step // self.steps_per_epoch, state.step % self.steps_per_epoch)
        if isinstance(self.data.train, Tensor):
            shards = batches(self.data.train, bs, *position, rank=procs.rank, world=procs.world)
        else:  # image files without a cache: decoded by DataLoader workers
            pin = state.device.type == "cuda"
            shards = stream(self.data.train, bs, *position, procs.rank, procs.world, cfg.data.workers, pin)
        # a conditional run's labels: the same shards of the same index batches as the images
        # (strict=False: the labels never end first; repeat(None) never ends)
        labels = self.data.train_labels if self.conditional else None
        label_shards = (
            (labels[index] for index in batch_indices(len(labels), bs, *position, procs.rank, procs.world))
            if labels is not None
            else repeat(None)
        )
        for batch, batch_labels in islice(zip(shards, label_shards, strict=False), self.total_steps - state.step):
            if state.device.type == "cuda" and not batch.is_pinned():
                batch = batch.pin_memory()
            self.log(self.step(batch, stop, batch_labels), bar)
            if self.stopping:
                break
            if state.step == self.early_at:  # (after the step's record, which gives the rate it took)
                self.early_rate()

    def step(self, batch: Tensor, stop: _StopFlag, labels: Tensor | None = None) -> dict[str, Tensor]:
        """One training step (on the batch's class ``labels`` too, for a conditional run);
        returns its loss parts averaged over the ranks."""
        state = self.state
        t0 = time.perf_counter()
        # batch-norm statistics move in the forward pass, before the loss can be checked
        statistics = [b.clone() for b in state.model.buffers()]
        parts = self.step_fn(state, batch, labels)
        # the parts averaged over the ranks (a NaN on one rank reaches all), whether any rank
        # was asked to stop and by which signal, in one collective
        names = list(parts)
        signals = [int(s) for s in runs.STOP_SIGNALS]
        asked = [float(stop.set)] + [float(stop.set and stop.signum == s) for s in signals]
        shared = mean_over(
            torch.cat([torch.stack([parts[k].float() for k in names]), torch.tensor(asked, device=state.device)]),
            self.procs,
        )
        parts = dict(zip(names, shared[: len(names)], strict=True))
        self.stopping = bool(shared[len(names)] > 0)
        if self.stopping and not stop.set:  # another rank's signal: its name in this rank's note
            self.signum = max(zip(shared[len(names) + 1 :].tolist(), signals, strict=True))[1]
        elapsed = time.perf_counter() - t0
        state.step += 1
        if state.step == self.timed_from:  # a time budget times the steps from here on
            self.timed_since = time.perf_counter()
        nonfinite = [k for k, v in parts.items() if not torch.isfinite(v)]
        if nonfinite:
            self.skip(nonfinite, statistics)
        elif state.ema is not None:
            state.ema.update_parameters(state.model)
        ckpt.fault_point("step")
        bs = self.cfg.train.batch_size
        self.train_time, self.trained = self.train_time + elapsed, self.trained + bs
        self.window_time, self.window_images = self.window_time + elapsed, self.window_images + bs
        return parts

    def skip(self, nonfinite: list[str], statistics: list[Tensor]) -> None:
        """A step whose loss ``nonfinite`` parts are NaN or infinite made no update: put back the
        batch-norm ``statistics`` from before it, record it, and stop unless skip_nonfinite."""
        self.skipped += 1
        for buffer, saved in zip(self.state.model.buffers(), statistics, strict=True):
            buffer.copy_(saved)
        step = self.state.step
        if self.out is not None:
            with self.writes():
                _append_jsonl(self.out / ckpt.RECORDS, {"kind": "nonfinite", "step": step, "parts": nonfinite})
        if not self.cfg.train.skip_nonfinite:
            last = f"step {self.last_saved}" if self.last_saved >= 0 else "none"
            raise FloatingPointError(
                f"non-finite loss at step {step} ({', '.join(nonfinite)}); no update was made "
                f"from it; last checkpoint kept: {last} (--skip-nonfinite skips such batches)"
            )
        self.say(f"step {step}: non-finite loss ({', '.join(nonfinite)}); batch skipped ({self.skipped} so far)")

    def log(self, parts: dict[str, Tensor], bar: tqdm) -> None:
        """The progress bar, and every log_every steps a line of metrics.jsonl."""
        state = self.state
        bar.update(1)
        if not bar.disable and state.step % 10 == 0:
            bar.set_postfix({k: f"{v.item():.4g}" for k, v in parts.items()}, refresh=False)
        if state.step % self.cfg.train.log_every == 0:
            values = {k: v.item() for k, v in parts.items()}
            record = {
                "kind": "train",
                "step": state.step,
                "epoch": state.step / self.steps_per_epoch,
                **values,
                "lr": scheduled_rates(state.scheduler, state.step - 1)[0],  # the rate of the step just taken
                "images_per_s": self.window_images / self.window_time,
                "skipped": self.skipped,
            }
            self.window_time, self.window_images = 0.0, 0
            if self.out is not None:
                with self.writes():
                    self.check_entries()  # the trackers' folders too
                    _append_jsonl(self.out / ckpt.RECORDS, record, checked=True)
            self.trackers.scalars("train", record, state.step)

    @contextlib.contextmanager
    def writes(self) -> Iterator[None]:
        """A block of writes into the run folder: a write that fails (``File exists``, ``Is a
        directory``, a records file refused) because an entry was swapped meanwhile for a FIFO,
        a folder or a link is said as :meth:`check_entries` says it, with the way to resume;
        any other failure passes through as it is."""
        try:
            yield
        except (OSError, UserError) as err:
            self.check_entries()
            if isinstance(err, OSError) and err.errno == errno.ENOENT and (gone := self.removed(err.filename)):
                raise UserError(f"{gone} was removed while this session wrote into it, {self.resume_advice}") from None
            raise

    def removed(self, filename: Any) -> str | None:
        """The entry at the top of the run folder that holds ``filename`` (a file this session
        failed to write) when that entry is gone, as shown in messages; None otherwise."""
        if self.out is None or filename is None:
            return None
        try:
            top = Path(os.fsdecode(filename)).relative_to(self.out).parts[0]
        except (ValueError, IndexError):
            return None
        entry = self.out / top
        return None if os.path.lexists(entry) else runs.shown_name(shell_path(entry))

    def check_entries(self) -> None:
        """Before a write into the run folder: an entry this session writes that was swapped since
        for a link into another run (or made a FIFO, ...) is refused, not written through
        (:func:`runs.check_run_entries`), the refusal ending with the way to resume."""
        assert self.out is not None
        runs.check_run_entries(self.out, self.cfg, self.resume_advice)

    def checkpoint_point(self, epoch: int) -> None:
        """Rank 0 evaluates, writes the figures and the report and saves a checkpoint, while the
        other ranks wait. Weights (or batch-norm statistics) that hold NaN or infinite values
        though every loss was finite (a learning rate so high that training diverged) stop the
        run before anything of them is evaluated or saved: every command would refuse their
        checkpoint."""
        if bad := _nonfinite_weight(self.state):
            last = f"step {self.last_saved}" if self.last_saved >= 0 else "none"
            raise FloatingPointError(
                f"the weights hold NaN or infinite values at step {self.state.step} ({bad}) though the loss was "
                "finite: training diverged (train anew with a lower learning rate, cost scale, input noise or code "
                f"noise); they are not saved; last checkpoint kept: {last}"
            )
        self.last_saved = self.state.step
        if self.procs.main:
            if self.out is not None:
                runs.check_held(self.out)  # a folder removed or made again under this run: no writes
            self.last_eval = self._evaluate_and_save(epoch)
        barrier(self.procs)

    def _evaluate_and_save(self, epoch: int) -> dict[str, float]:
        cfg, state, out, eval_images = self.cfg, self.state, self.out, self.eval_images
        table = isinstance(self.data, TableData)
        if table:  # no images: the sample figures of tables, without the (slower) classifier test
            metrics = evaluate_table(state.sampler_model, eval_images, len(eval_images), cfg.train.seed, c2st=False)
        else:  # the networks' passes in the training's precision (bf16: 1.5x faster), the figures in fp32
            with autocast(state):
                metrics = evaluate(state.sampler_model, eval_images, cfg.data.range, cfg.train.seed, self.eval_labels)
        every = cfg.train.eval_every
        if every and epoch % every == 0 and not table and is_mnist_like(eval_images):
            reference = to_unit_range(to_model_range(eval_images, cfg.data.range), cfg.data.range)
            with autocast(state):
                generated = decode_prior(state.sampler_model, len(eval_images), cfg.data.range, cfg.train.seed + 4)
                conditional = None
                if self.eval_labels is not None:
                    wanted = balanced_labels(len(generated), state.model.classes)
                    conditional = (self.eval_labels, wanted, state.classes)
                # the classifier's outputs of the test images are computed once per run
                figures, self.reference_outputs = sample_metrics(
                    reference, generated, test_outputs=self.reference_outputs, conditional=conditional
                )
                metrics.update(figures)
        record = {"kind": "eval", "step": state.step, "epoch": epoch, **metrics}
        self.evals.append(record)
        speed = self.speed()
        self.say(
            f"epoch {epoch} step {state.step}: test recon MSE {metrics['test_recon_mse']:.5f}/"
            + ("entry" if table else "pixel")
            + f", test MMD {metrics['test_mmd']:.5f}, "
            + (f"sample FD {metrics['fd_samples']:.2f}, " if "fd_samples" in metrics else "")
            + (f"sample W1 {metrics['w1_mean']:.4f}, " if table else "")
            + (f"label accuracy {metrics['label_accuracy']:.3f}, " if "label_accuracy" in metrics else "")
            + f"{speed:.0f} {'rows' if table else 'images'}/s"
        )
        if out is not None:
            with self.writes():
                self.write_evaluation(epoch, record, speed)
        return metrics

    def write_evaluation(self, epoch: int, record: dict[str, Any], speed: float) -> None:
        """The writes of an evaluation: its record, the grids, the checkpoint and the report."""
        cfg, state, out = self.cfg, self.state, self.out
        table = isinstance(self.data, TableData)
        assert out is not None
        self.check_entries()  # before each write: the records file, the grids, the checkpoint, ...
        _append_jsonl(out / ckpt.RECORDS, record, sync=True, checked=True)
        self.trackers.scalars("eval", record, state.step)
        if not table:
            _figures(state, self.data, out, epoch, self.fixed_z, self.check_entries)
            self.check_entries()  # before the trackers' copies of the grids
            grids = ("samples", "reconstructions", "interpolations")
            self.trackers.images({name: ckpt.epoch_grid(out, name, epoch) for name in grids}, state.step)
        saved = state_dict(state, self.data)
        ckpt.save_run_checkpoint(out, saved, cfg.train.keep_checkpoints, self.check_entries)
        if self.trained:  # this session's steps changed the weights: drop what was of the old ones
            drop_stale_grids(state.sampler_model, out, self.say, cfg.train.fit_sampler)  # before the report
        self.check_entries()
        _report(state, self.data, out, self.evals, speed)

    def write_sampler(self, out: Path) -> None:
        """The end of a session's writes: the ex-post sampler fitted (or its grid redrawn) and the
        report, unless a sampler already fitted to these weights is kept."""
        state = self.state
        self.check_entries()
        kind, model = self.cfg.train.fit_sampler, state.sampler_model
        # a session that trained nothing keeps a sampler already fitted to these weights (one
        # that wae fit-sampler fitted with other settings, say) and changes nothing but a
        # missing grid of it; a kill before the fit ended, damage or other weights fit it again
        kept = _kept_sampler(out, kind, model) if kind != "none" and not self.trained else None
        grid = out / f"samples-{kind}.png"
        redrawn = kept is not None and not isinstance(self.data, TableData) and not grid.is_file()
        if redrawn:
            assert kept is not None
            sampler_grid(model, kept, self.cfg, grid)
        elif kind != "none" and kept is None:
            fit_ex_post(state, self.data, out, self.say)
        dropped = bool(self.trained) and drop_stale_grids(model, out, self.say, kind)
        if dropped or redrawn or (kind != "none" and kept is None):
            self.check_entries()  # a fit may take minutes
            _report(state, self.data, out, self.evals, self.speed())

    def finish(self) -> Run:
        """The end of the run: a last checkpoint point unless one was just taken, and the model
        in eval mode."""
        state, out = self.state, self.out
        if self.last_saved != state.step:
            self.checkpoint_point(state.step // self.steps_per_epoch)
        if not self.stopping and out is not None and self.procs.main:
            runs.check_held(out)
            with self.writes():
                self.write_sampler(out)
        if self.stopping:
            self.say(
                f"interrupted at step {state.step} ({signal.Signals(self.signum).name}); checkpoint saved"
                + (f"; resume with: wae train --resume {shell_path(out)}" if out else "")
            )
        state.model.eval()
        state.sampler_model.eval()
        return Run(
            state.sampler_model,
            out,
            state.step,
            self.last_eval,
            interrupted=self.stopping,
            signal=self.signum,
            classes=state.classes,
        )


def _number(value: Any) -> bool:
    """Whether a value read from metrics.jsonl is a number (int or float, not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _positive(value: Any) -> bool:
    """Whether a value read from metrics.jsonl is a finite number above 0 (not a bool)."""
    return _number(value) and 0 < value < float("inf")


def plan_records(path: Path) -> list[dict[str, Any]]:
    """The time budget's plan records of a metrics.jsonl (``kind`` "plan"), in order; damaged
    lines skipped without a warning (the resume that reads the file again warns of them, and a
    refusal says one line)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [r for r in read_jsonl(path) if r.get("kind") == "plan"]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines file ([] when it is missing), its lines split at b"\\n" alone
    as a resume's clean-up splits them (:func:`_truncate_metrics`: a U+2028 or a lone carriage
    return inside a line does not end it): a killed run's partial last line (no line break
    after it, and it begins as training's records do: :func:`_cut_record`) is skipped without a
    word; every other line that is not a JSON object (a number, a list, text, bytes that are not
    UTF-8, a number no reader takes, a last line that is no record's start) is skipped with one
    warning that counts them."""
    if not path.is_file():  # missing, or not a regular file (a FIFO would block the read)
        if os.path.lexists(path):  # what a reader would take for a run with no records yet
            warnings.warn(f"{path} {NOT_REGULAR}: read as no records", stacklevel=2)
        return []
    records, skipped = [], 0
    lines = path.read_bytes().split(b"\n")
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = parse_json(line.decode("utf-8"))
        except ValueError:  # also not UTF-8, a number no reader takes, nesting too deep
            skipped += not (number == len(lines) and _cut_record(line))  # the last, when it has no break
            continue
        if isinstance(record, dict):
            records.append(record)
        else:
            skipped += 1
    if skipped:
        warnings.warn(f"skipped {skipped} line(s) of {path} that are not JSON objects", stacklevel=2)
    return records
