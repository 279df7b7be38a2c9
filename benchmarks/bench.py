"""Training throughput on this machine: our step functions against pythae's own trainer and a
bare PyTorch loop on the same networks, objective and batch, with the machine's matmul peak
measured in the same run; optionally the speed of FID's Inception network.

Every setting runs in a worker process of its own, so that its peak memory (``ru_maxrss``) is
its own. The settings of one network and objective take turns in rounds (A B C A B C ...), each
turn a window of steps lasting about ``window_seconds``, and the two matmul-peak workers take a
turn in every round, so that a noisy neighbour on a shared machine slows all of them alike; the
report keeps only the rounds in which the peaks held up (:func:`quiet_rounds`). A setting's
figure is the median of its windows; a ratio between two settings is the median of their ratios
within a round.

Training FLOPs are those of one eager step, counted by ``torch.utils.flop_counter`` (matmuls and
convolutions, forward and backward); images are random 28x28 grey uint8 batches (the speed does
not depend on the pixel values).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import math
import multiprocessing
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from wae.checkpoint import write_atomic
from wae.cli import _float, _int_at_least, _Parser, _positive_int
from wae.config import OBJECTIVES, UserError, native_bf16, override, preset
from wae.data import batches, to_model_range
from wae.divergences import mmd_imq
from wae.model import AutoEncoder
from wae.nets import count_parameters
from wae.train import STEPS, build

# the MNIST-sized networks the benchmark trains, each with the preset whose settings it takes
# (an explicit table: the order of nets.ARCHITECTURES is not a list of what is benchmarkable)
PRESET_OF_ARCH = {"fast": "mnist-fast", "small": "mnist-fast", "wide": "mnist-quality", "mnist-paper": "mnist-paper"}
CHANNELS, SIZE = 1, 28  # MNIST-sized batches
VARIANTS = ("fp32", "bf16", "bf16+cl", "bf16+cl+compile", "bf16+cl+mm", "bf16+cl+mm+fused")  # ours, by default
# on a CPU without native bf16 (emulated bf16 runs many times slower than fp32: the bf16 rows
# and the bf16 matmul peak would take most of the run and show nothing useful)
VARIANTS_FP32 = ("fp32", "fp32+cl", "fp32+cl+compile", "fp32+cl+mm", "fp32+cl+mm+fused")


def default_variants() -> tuple[str, ...]:
    """Our variants timed by default: with bf16 where the CPU has it natively, else fp32 only."""
    return VARIANTS if native_bf16() else VARIANTS_FP32


def peak_precisions() -> tuple[str, ...]:
    """The matmul peaks measured: fp32, and bf16 where the CPU has it natively."""
    return ("fp32", "bf16") if native_bf16() else ("fp32",)


PYTHAE = "pythae"


@dataclass(frozen=True)
class Setting:
    """One thing to time. ``trainer``: "wae" (our step functions), "pythae" (its BaseTrainer
    and WAE_MMD model around our networks), "bare" (a plain loop, MMD objective), "matmul"
    (square matmuls of side ``matmul_size``: the machine's peak) or "inception" (FID features,
    ``wae.fid.inception_features``; ``arch`` "original" or "optimised", see ``load_inception``)."""

    trainer: str
    arch: str = ""
    objective: str = ""
    precision: str = "fp32"
    channels_last: bool = False
    compiled: bool = False
    fused_adam: bool = False
    matmul_convs: bool = False
    batch_size: int = 0  # 0: the batch size of the run

    @property
    def variant(self) -> str:
        """The settings beyond trainer, network and objective: "bf16 channels_last compile"."""
        flags = [
            ("channels_last", self.channels_last),
            ("matmul convs", self.matmul_convs),
            ("compile", self.compiled),
            ("fused Adam", self.fused_adam),
        ]
        batch = [f"batch {self.batch_size}"] if self.batch_size else []
        return " ".join([self.precision] + [name for name, on in flags if on] + batch)


def parse_variant(text: str) -> dict[str, Any]:
    """Setting fields of a variant such as "bf16+cl+compile": a precision (fp32 or bf16), then any
    of "cl" (channels_last), "mm" (:func:`use_matmul_convolutions`), "compile" (torch.compile of
    encoder and decoder), "fused" (fused Adam)."""
    precision, *flags = text.split("+")
    unknown = set(flags) - {"cl", "mm", "compile", "fused"}
    if precision not in ("fp32", "bf16") or unknown or len(set(flags)) != len(flags):
        raise ValueError(f"'{text}' is not a variant: fp32 or bf16, then any of +cl, +mm, +compile, +fused")
    return {
        "precision": precision,
        "channels_last": "cl" in flags,
        "matmul_convs": "mm" in flags,
        "compiled": "compile" in flags,
        "fused_adam": "fused" in flags,
    }


def pythae_available() -> bool:
    """Whether the optional reference trainer can be imported."""
    return importlib.util.find_spec(PYTHAE) is not None


# ----------------------------------------------------------------------------- what runs in a worker


@dataclass
class Job:
    """A prepared setting: ``run(steps)`` does that many training steps (or matmuls)."""

    run: Callable[[int], None]
    units_per_step: float  # images (training) or floating-point operations (matmul)
    parameters: int = 0
    flops_per_step: float = 0.0


class MatmulConv2d(nn.Conv2d):
    """A Conv2d (same parameters) computed as unfold (im2col) and one matmul: on small maps with
    many channels, faster than oneDNN's direct convolution and its backward on this CPU."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s, p = self.kernel_size[0], self.stride[0], int(self.padding[0])  # square, numeric (see below)
        side = (x.shape[2] + 2 * p - k) // s + 1
        columns = F.unfold(x, k, padding=p, stride=s)  # (n, c_in k k, side^2)
        out = columns.transpose(1, 2) @ self.weight.flatten(1).t()  # (n, side^2, c_out)
        if self.bias is not None:
            out = out + self.bias
        return out.transpose(1, 2).reshape(x.shape[0], -1, side, side)


class MatmulConvTranspose2d(nn.ConvTranspose2d):
    """A ConvTranspose2d (same parameters) computed as one matmul and fold (col2im)."""

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        k, s, p = self.kernel_size[0], self.stride[0], int(self.padding[0])
        side = (x.shape[2] - 1) * s - 2 * p + k + self.output_padding[0]
        columns = x.flatten(2).transpose(1, 2) @ self.weight.flatten(1)  # (n, h w, c_out k k)
        out = F.fold(columns.transpose(1, 2), (side, side), k, padding=p, stride=s)
        if self.bias is not None:
            out = out + self.bias.view(1, -1, 1, 1)
        return out


def use_matmul_convolutions(model: AutoEncoder, max_side: int = 7, min_channel_product: int = 256 * 512) -> int:
    """Switch, in place, the convolutions of ``model`` whose input maps have a side of at most
    ``max_side`` and that have at least ``min_channel_product`` = c_in x c_out channel pairs to
    their matmul forms (on the paper's MNIST networks, the last two encoder convolutions and the
    first decoder one; on the fast one, none: there the matmul forms are slower). The
    parameters and the function stay the same; returns how many were switched."""
    sides: dict[nn.Module, int] = {}
    convolutions = [m for m in model.modules() if type(m) in (nn.Conv2d, nn.ConvTranspose2d)]
    hooks = [m.register_forward_hook(lambda m, i, o: sides.__setitem__(m, i[0].shape[-1])) for m in convolutions]
    dtype = next(model.parameters()).dtype
    with torch.no_grad():
        codes = model.encoder(torch.zeros(2, model.channels, model.size, model.size, dtype=dtype))
        model.decoder(codes[0] if isinstance(codes, tuple) else codes)  # a Gaussian encoder: (mean, log-variance)
    for hook in hooks:
        hook.remove()
    switched = 0
    for m in convolutions:
        assert isinstance(m, nn.Conv2d | nn.ConvTranspose2d)
        square = len(set(m.kernel_size)) == len(set(m.stride)) == len(set(m.padding)) == 1
        numeric = not isinstance(m.padding, str) and m.padding_mode == "zeros"
        plain = m.groups == 1 and m.dilation == (1, 1) and square and numeric
        if plain and sides[m] <= max_side and m.in_channels * m.out_channels >= min_channel_product:
            m.__class__ = MatmulConv2d if type(m) is nn.Conv2d else MatmulConvTranspose2d
            switched += 1
    return switched


def _random_images(count: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (count, CHANNELS, SIZE, SIZE), generator=generator, dtype=torch.uint8)


def _epochs(batch_size: int) -> Callable[[int], Iterator[torch.Tensor]]:
    """``steps`` -> the batches of one epoch of ``steps`` batches (our data path: index slices
    of a seeded permutation of a uint8 tensor)."""
    images: dict[int, torch.Tensor] = {}
    count = [0]

    def epoch(steps: int) -> Iterator[torch.Tensor]:
        if steps not in images:
            images[steps] = _random_images(steps * batch_size)
        count[0] += 1
        return batches(images[steps], batch_size, 0, count[0])

    return epoch


def _count_flops(step: Callable[[], Any]) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return float(counter.get_total_flops())


def peers_cost(cfg: Any) -> Any:
    """``cfg`` with the objective and optimiser pythae's WAE and the bare loop train in these
    comparisons: the authors' 0.05 x squared L2 (mnist-fast's WAE-MMD trains the L1 cost x 0.01,
    whose step costs the same), lambda = 10 and Adam lr 1e-3 (mnist-fast's WAE-MMD trains at
    lambda 1 and lr 2e-3 since session 23) and their prior N(0, I) (mnist-fast's WAE-MMD draws from
    a mixture since session 40), so that every row times one objective and the time to quality of
    docs/benchmarks.md is measured again with its own settings. The VAE is left as it is."""
    if cfg.loss.objective == "vae":
        return cfg
    return override(cfg, cost="l2sq", cost_scale=0.05, lam=10.0, lr=1e-3, prior="gaussian")


def _config(setting: Setting, batch_size: int) -> Any:
    cfg = peers_cost(preset(PRESET_OF_ARCH[setting.arch], setting.objective))
    return override(
        cfg, arch=setting.arch, precision=setting.precision, batch_size=batch_size, channels_last=setting.channels_last
    )


def _adam(params: Any, cfg: Any, fused: bool) -> torch.optim.Adam:
    return torch.optim.Adam(params, lr=cfg.train.lr, betas=(cfg.train.beta1, cfg.train.beta2), fused=fused or None)


def _wae_job(setting: Setting, batch_size: int) -> Job:
    """Our step function on our state, prepared as a change to train.py would prepare it."""
    cfg = _config(setting, batch_size)
    state = build(cfg, CHANNELS, SIZE, steps_per_epoch=1_000_000_000)  # channels_last: the config's
    if setting.matmul_convs:
        use_matmul_convolutions(state.model)
    if setting.fused_adam:
        state.optimizer = _adam(state.model.parameters(), cfg, fused=True)
        state.scheduler = torch.optim.lr_scheduler.LambdaLR(state.optimizer, lambda step: 1.0)
    step = STEPS[setting.objective]
    epoch = _epochs(batch_size)
    flops = _count_flops(lambda: step(state, next(epoch(1))))
    if setting.compiled:  # the convolutional bulk; losses and the GAN adversary stay eager
        state.model.encoder = torch.compile(state.model.encoder)  # type: ignore[assignment]
        state.model.decoder = torch.compile(state.model.decoder)  # type: ignore[assignment]

    def run(steps: int) -> None:
        for batch in epoch(steps):
            step(state, batch)

    return Job(run, batch_size, count_parameters(state.model), flops)


def _bare_job(setting: Setting, batch_size: int) -> Job:
    """The reference loop: the same networks and WAE-MMD objective, plain Adam, nothing else."""
    cfg = _config(setting, batch_size)
    torch.manual_seed(cfg.train.seed)
    model = AutoEncoder(cfg.model, CHANNELS, SIZE)
    if setting.channels_last:
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    encoder, decoder = model.encoder, model.decoder
    optimizer = _adam(model.parameters(), cfg, setting.fused_adam)
    generator = torch.Generator().manual_seed(cfg.train.seed + 1)
    epoch = _epochs(batch_size)

    def step(batch: torch.Tensor) -> None:
        x = batch.float() / 255
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=setting.precision == "bf16"):
            z = encoder(x)
            x_hat = torch.sigmoid(decoder(z).float())
        recon = cfg.loss.cost_scale * (x_hat - x).pow(2).sum((1, 2, 3)).mean()
        prior = torch.randn(z.shape, generator=generator)
        loss = recon + cfg.loss.lam * mmd_imq(z, prior, cfg.loss.prior_var, cfg.loss.kernel_scales)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    flops = _count_flops(lambda: step(next(epoch(1))))

    def run(steps: int) -> None:
        for batch in epoch(steps):
            step(batch)

    return Job(run, batch_size, count_parameters(model), flops)


def pythae_wae_mmd(
    cfg: Any, channels: int, size: int, images: torch.Tensor, workdir: str, pythae_defaults: bool = False
) -> tuple[AutoEncoder, Any]:
    """(our AutoEncoder, pythae's BaseTrainer) for pythae's WAE_MMD model around that
    AutoEncoder's encoder and decoder (the same modules: the AutoEncoder decodes what pythae
    trains), with the objective (lambda, cost scale, IMQ scales), batch and Adam settings of
    ``cfg``, seeded as :func:`wae.train.build` seeds ours (the same initial weights). The trainer
    is prepared on ``images`` (model range) and has no progress bar; ``trainer.train_step(epoch)``
    runs one pass of its loop over ``trainer.train_loader`` (its DataLoader, forward, backward
    and optimizer step, as ``BaseTrainer.train`` runs them, less its per-epoch model copy and
    checkpointing). With ``pythae_defaults`` only the networks, d_z and the seed come from
    ``cfg``: the objective and trainer keep pythae's own defaults (what a user of pythae gets:
    lambda 3e-2 on an unscaled cost, Adam lr 1e-4, batch 64)."""
    import logging

    from pythae.models import WAE_MMD, WAE_MMD_Config
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder
    from pythae.trainers import BaseTrainer, BaseTrainerConfig
    from pythae.trainers.training_callbacks import ProgressBarCallback

    logging.getLogger("pythae").setLevel(logging.WARNING)
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("pythae"):
            logging.getLogger(name).setLevel(logging.WARNING)

    torch.manual_seed(cfg.train.seed)
    ours = AutoEncoder(cfg.model, channels, size)

    class Encoder(BaseEncoder):
        def __init__(self) -> None:
            super().__init__()
            self.net = ours.encoder

        def forward(self, x: torch.Tensor) -> Any:
            return ModelOutput(embedding=self.net(x))

    class Decoder(BaseDecoder):
        def __init__(self) -> None:
            super().__init__()
            self.net = ours.decoder

        def forward(self, z: torch.Tensor) -> Any:
            return ModelOutput(reconstruction=ours.activate(self.net(z)))

    ours_objective = {
        "kernel_choice": "imq",
        "reg_weight": cfg.loss.lam,
        "kernel_bandwidth": cfg.loss.prior_var**0.5,
        "scales": list(cfg.loss.kernel_scales),
        "reconstruction_loss_scale": cfg.loss.cost_scale,
    }
    model_config = WAE_MMD_Config(
        input_dim=(channels, size, size),
        latent_dim=cfg.model.latent_dim,
        **({} if pythae_defaults else ours_objective),
    )
    model = WAE_MMD(model_config, encoder=Encoder(), decoder=Decoder())
    ours_trainer = {
        "per_device_train_batch_size": cfg.train.batch_size,
        "learning_rate": cfg.train.lr,
        "optimizer_cls": "Adam",
        "optimizer_params": {"betas": (cfg.train.beta1, cfg.train.beta2)},
    }
    trainer_config = BaseTrainerConfig(
        output_dir=workdir,
        num_epochs=1,
        no_cuda=True,
        seed=cfg.train.seed,
        **({} if pythae_defaults else ours_trainer),
    )
    trainer = BaseTrainer(model, pythae_dataset(images), training_config=trainer_config)
    trainer.prepare_training()
    handler = trainer.callback_handler
    handler.callbacks = [c for c in handler.callbacks if not isinstance(c, ProgressBarCallback)]
    return ours, trainer


def pythae_dataset(images: torch.Tensor) -> Any:
    """pythae's dataset of ``images`` (model range; the labels are unused)."""
    from pythae.data.datasets import BaseDataset

    return BaseDataset(images, torch.zeros(len(images)))


def _pythae_job(setting: Setting, batch_size: int, workdir: str) -> Job:
    """pythae's BaseTrainer training its WAE_MMD model around our encoder and decoder
    (:func:`pythae_wae_mmd`). A window of n steps is one call of its per-epoch loop,
    ``train_step``, over a dataset of n batches."""
    cfg = _config(setting, batch_size)

    def images(steps: int) -> torch.Tensor:
        return to_model_range(_random_images(steps * batch_size))

    _, trainer = pythae_wae_mmd(cfg, CHANNELS, SIZE, images(1), workdir)
    loaders: dict[int, Any] = {}
    epoch = [0]

    def run(steps: int) -> None:
        if steps not in loaders:
            loaders[steps] = trainer.get_train_dataloader(pythae_dataset(images(steps)))
        trainer.train_loader = loaders[steps]
        epoch[0] += 1
        trainer.train_step(epoch[0])

    flops = _count_flops(lambda: run(1))
    return Job(run, batch_size, count_parameters(trainer.model), flops)


def _matmul_job(setting: Setting, size: int) -> Job:
    dtype = torch.bfloat16 if setting.precision == "bf16" else torch.float32
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator).to(dtype)
    b = torch.randn(size, size, generator=generator).to(dtype)

    def run(steps: int) -> None:
        for _ in range(steps):
            torch.mm(a, b)

    return Job(run, 2.0 * size**3)


def _inception_job(setting: Setting, batch_size: int) -> Job:
    """One step: the Inception features of one batch, as ``wae evaluate`` computes them for FID."""
    from wae.fid import inception_features, load_inception

    network = load_inception(optimise=setting.arch == "optimised")
    images = _random_images(batch_size)

    def run(steps: int) -> None:
        for _ in range(steps):
            inception_features(network, images, batch=batch_size, precision=setting.precision)

    return Job(run, batch_size, flops_per_step=_count_flops(lambda: run(1)))


def _prepare(setting: Setting, batch_size: int, matmul_size: int, workdir: str) -> Job:
    batch_size = setting.batch_size or batch_size
    if setting.trainer == "inception":
        return _inception_job(setting, batch_size)
    if setting.trainer == "matmul":
        return _matmul_job(setting, matmul_size)
    if setting.trainer == "pythae":
        return _pythae_job(setting, batch_size, workdir)
    if setting.trainer == "bare":
        return _bare_job(setting, batch_size)
    return _wae_job(setting, batch_size)


def _worker(conn: Any, setting: Setting, batch_size: int, warmup: int, matmul_size: int, threads: int | None) -> None:
    """Serve one setting: "prepare" -> build and warm up, reply (info dict); ("run", n) -> reply
    the seconds of n steps; "stop" -> reply the peak RSS in MB, and exit."""
    if threads is not None:
        torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory(prefix="wae-bench-") as workdir:
        job: Job | None = None
        while True:
            command = conn.recv()
            try:
                if command == "prepare":
                    start = time.perf_counter()
                    job = _prepare(setting, batch_size, matmul_size, workdir)
                    if warmup > 1:
                        job.run(warmup - 1)
                    last = time.perf_counter()
                    job.run(1)  # the last warm-up step sizes the windows
                    now = time.perf_counter()
                    info = {"warmup_seconds": now - start, "step_seconds": now - last}
                    sizes = {"units": job.units_per_step, "flops": job.flops_per_step, "parameters": job.parameters}
                    conn.send(("ok", {**info, **sizes}))
                elif command == "stop":
                    conn.send(("ok", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
                    return
                else:
                    assert job is not None
                    start = time.perf_counter()
                    job.run(command[1])
                    conn.send(("ok", time.perf_counter() - start))
            except Exception as err:  # reported in the table: a setting that fails is a result
                first_line = (str(err).strip().splitlines() or [""])[0][:160]
                conn.send(("error", f"{type(err).__name__}: {first_line}"))
                return


# ----------------------------------------------------------------------------- the parent side


@dataclass
class Result:
    """One measured setting: throughput per round (images/s; matmul: FLOP/s), and what it costs."""

    setting: Setting
    rates: dict[int, float] = field(default_factory=dict)  # round -> units per second
    parameters: int = 0
    flops_per_step: float = 0.0
    units_per_step: float = 0.0
    warmup_seconds: float = 0.0
    steps_per_window: int = 0
    max_rss_mb: float = 0.0
    error: str = ""
    quiet: bool = True  # False: no round of its group was quiet (see quiet_rounds), all are kept

    @property
    def median(self) -> float:
        """Median over the windows (0 when none ran)."""
        return statistics.median(self.rates.values()) if self.rates else 0.0

    @property
    def flops_per_unit(self) -> float:
        """FLOPs per image of a training step or an Inception pass (matmul: 1)."""
        return self.flops_per_step / self.units_per_step if self.setting.trainer != "matmul" else 1.0


def quiet_rounds(peaks: list[Result], share: float = 0.8) -> set[int]:
    """The rounds in which every matmul peak reached ``share`` of its best window: the rounds in
    which no neighbour took the cores (2-thread steps then slow down unevenly, some 10x, as
    OpenMP waits at every parallel region for a thread that is not running)."""
    rounds = set.intersection(*(set(p.rates) for p in peaks)) if peaks else set()
    return {r for r in rounds if all(p.rates[r] >= share * max(p.rates.values()) for p in peaks)}


def keep_quiet(results: list[Result], peaks: list[Result]) -> tuple[list[Result], list[Result]]:
    """``results`` and ``peaks`` with only the windows of quiet rounds; a setting none of whose
    rounds was quiet keeps them all and is marked (``quiet`` False)."""
    quiet = quiet_rounds(peaks)

    def only(r: Result) -> Result:
        kept = {k: v for k, v in r.rates.items() if k in quiet}
        return dataclasses.replace(r, rates=kept or r.rates, quiet=bool(kept) or not r.rates)

    return [only(r) for r in results], [only(p) for p in peaks]


def paired_ratio(a: Result, b: Result) -> float:
    """Median over the rounds both ran of (a's throughput / b's); nan without a common round."""
    ratios = [a.rates[r] / b.rates[r] for r in a.rates.keys() & b.rates.keys() if b.rates[r] > 0]
    return statistics.median(ratios) if ratios else float("nan")


def peak_fraction(result: Result, peak: Result) -> float:
    """Median over common rounds of (training FLOP/s of ``result`` / matmul FLOP/s of ``peak``)."""
    flop_rates = {r: v * result.flops_per_unit for r, v in result.rates.items()}
    return paired_ratio(Result(result.setting, flop_rates), peak)


class _Worker:
    def __init__(
        self, context: Any, setting: Setting, batch_size: int, warmup: int, matmul_size: int, threads: int | None
    ):
        self.result = Result(setting)
        self.conn, child = context.Pipe()
        self.process = context.Process(
            target=_worker, args=(child, setting, batch_size, warmup, matmul_size, threads), daemon=True
        )
        self.process.start()
        child.close()

    def ask(self, command: Any) -> Any:
        """Send a command; the reply, or None after recording the worker's error."""
        if self.result.error:
            return None
        try:
            self.conn.send(command)
            status, value = self.conn.recv()
        except (EOFError, OSError) as err:
            status, value = "error", f"worker died ({type(err).__name__}, exit code {self.process.exitcode})"
        if status == "error":
            self.result.error = value
            return None
        return value

    def prepare(self, window_seconds: float) -> None:
        info = self.ask("prepare")
        if info is None:
            return
        self.result.parameters = info["parameters"]
        self.result.flops_per_step = info["flops"]
        self.result.units_per_step = info["units"]
        self.result.warmup_seconds = info["warmup_seconds"]
        self.result.steps_per_window = max(1, round(window_seconds / max(info["step_seconds"], 1e-9)))

    def window(self, round_index: int) -> None:
        seconds = self.ask(("run", self.result.steps_per_window))
        if seconds is not None:
            self.result.rates[round_index] = self.result.steps_per_window * self.result.units_per_step / seconds

    def stop(self) -> Result:
        """Ask for the peak memory; the process then exits by itself (see :meth:`join`)."""
        rss = self.ask("stop")
        if rss is not None:
            self.result.max_rss_mb = rss
        return self.result

    def join(self) -> None:
        self.process.join(timeout=30)
        if self.process.is_alive():
            self.process.kill()


def settings_for(
    archs: list[str], objectives: list[str], variants: list[str], with_pythae: bool
) -> list[list[Setting]]:
    """The groups that take turns: one per (network, objective), ours in each variant, then the
    references, for MMD only: pythae's WAE_MMD in fp32 (its trainer's only CPU precision), and
    the bare loop in each precision and memory format of ``variants``."""
    groups = []
    for arch in archs:
        for objective in objectives:
            ours = [Setting("wae", arch, objective, **parse_variant(v)) for v in variants]
            group = list(ours)
            if objective == "mmd" and with_pythae:
                group.append(Setting("pythae", arch, objective))
            if objective == "mmd":
                formats = dict.fromkeys((s.precision, s.channels_last) for s in ours)
                group += [Setting("bare", arch, objective, p, channels_last=cl) for p, cl in formats]
            groups.append(group)
    return groups


def inception_settings(batches: list[int], bf16: bool | None = None) -> list[Setting]:
    """FID's Inception features: the original network in fp32 and bf16 at batch 50 (wae.fid's
    default batch), the optimised one in fp32 at batch 50 and in bf16 at each of ``batches``;
    without ``bf16`` (default: where the CPU has native bf16), the original and the optimised
    network in fp32 at each of ``batches``."""
    if not (native_bf16() if bf16 is None else bf16):
        original = [Setting("inception", "original", "features", "fp32", batch_size=50)]
        return original + [Setting("inception", "optimised", "features", "fp32", batch_size=b) for b in batches]
    original = [Setting("inception", "original", "features", p, batch_size=50) for p in ("fp32", "bf16")]
    optimised = [Setting("inception", "optimised", "features", "fp32", batch_size=50)]
    return original + optimised + [Setting("inception", "optimised", "features", "bf16", batch_size=b) for b in batches]


def run(
    groups: list[list[Setting]],
    rounds: int = 5,
    window_seconds: float = 2.0,
    warmup: int = 3,
    batch_size: int = 100,
    matmul_size: int = 2048,
    progress: bool = True,
    threads: int | None = None,
) -> tuple[list[Result], list[Result]]:
    """Time every group in ``rounds`` interleaved rounds, the matmul peaks in every round of every
    group, each worker with ``threads`` torch threads (None: torch's default); returns (training
    results, the matmul peaks of :func:`peak_precisions`). Call it under ``if __name__ ==
    "__main__":`` in a script: the workers are spawned processes."""
    context = multiprocessing.get_context("spawn")  # fresh processes: ru_maxrss of one setting each
    peaks = [
        _Worker(context, Setting("matmul", precision=p), batch_size, warmup, matmul_size, threads)
        for p in peak_precisions()
    ]
    results: list[Result] = []
    stopped: list[_Worker] = []
    round_index = 0
    total = sum(len(g) + len(peaks) for g in groups) * rounds
    with tqdm(total=total, desc="bench", unit="window", disable=not progress, dynamic_ncols=True) as bar:
        for index, group in enumerate(groups):
            workers = [_Worker(context, s, batch_size, warmup, matmul_size, threads) for s in group]
            # started together (they import torch meanwhile), prepared one at a time, so that no
            # two warm-ups share the cores
            for worker in peaks if index == 0 else []:
                worker.prepare(window_seconds / 4)
            for worker in workers:
                bar.set_postfix_str(f"warm-up {_name(worker.result.setting)}")
                worker.prepare(window_seconds)
            for _ in range(rounds):
                for worker in peaks + workers:
                    bar.set_postfix_str(_name(worker.result.setting))
                    worker.window(round_index)
                    bar.update()
                round_index += 1
            results += [worker.stop() for worker in workers]
            stopped += workers
    peak_results = [worker.stop() for worker in peaks]
    for worker in stopped + peaks:
        worker.join()
    return results, peak_results


def _name(s: Setting) -> str:
    return f"{s.trainer} {s.arch} {s.objective} {s.variant}".replace("  ", " ")


# ----------------------------------------------------------------------------- the report


def _ratio_cell(value: float) -> str:
    return "" if value != value else f"{value:.2f}x"


def table(results: list[Result], peaks: list[Result]) -> str:
    """Markdown tables: the matmul peaks, then one row per setting with its median images/s,
    ratios to pythae and to the bare loop (same network, objective, precision and memory format),
    training FLOPs, achieved GFLOP/s and its share of the matmul peak at the row's precision,
    warm-up seconds (torch.compile's included) and peak memory."""
    peak_of = {p.setting.precision: p for p in peaks}
    lines = [
        "| matmul (square, one process) | GFLOP/s, median | windows | peak RSS MB |",
        "|---|---|---|---|",
    ]
    for p in peaks:
        windows = ", ".join(f"{v / 1e9:,.0f}" for v in p.rates.values())
        lines.append(f"| {p.setting.precision} | {p.median / 1e9:,.0f} | {windows} | {p.max_rss_mb:,.0f} |")
    lines += [
        "",
        "| network | objective | trainer | variant | images/s, median | rounds | x pythae | x bare | GFLOP / image "
        "| GFLOP/s | % of matmul peak | warm-up s | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        s = r.setting
        head = f"| {s.arch} | {s.objective} | {s.trainer} | {s.variant} |"
        if r.error:
            lines.append(f"{head} failed: {r.error} | | | | | | | {r.warmup_seconds:.0f} | {r.max_rss_mb:,.0f} |")
            continue
        pythae = [o for o in results if o.setting.trainer == "pythae" and _same_task(o, r) and not o.error]
        bare = [
            o
            for o in results
            if o.setting.trainer == "bare"
            and _same_task(o, r)
            and (o.setting.precision, o.setting.channels_last) == (s.precision, s.channels_last)
            and not o.error
        ]
        x_pythae = _ratio_cell(paired_ratio(r, pythae[0])) if pythae and s.trainer != "pythae" else ""
        x_bare = _ratio_cell(paired_ratio(r, bare[0])) if bare and s.trainer != "bare" else ""
        peak = peak_of.get(s.precision)
        share = f"{100 * peak_fraction(r, peak):.1f}" if peak is not None else "n/a"
        lines.append(
            f"{head} {r.median:,.1f} | {len(r.rates)}{'' if r.quiet else ' (busy)'} | {x_pythae} | {x_bare} "
            f"| {r.flops_per_unit / 1e9:.2f} "
            f"| {r.median * r.flops_per_unit / 1e9:,.0f} | {share} "
            f"| {r.warmup_seconds:.0f} | {r.max_rss_mb:,.0f} |"
        )
    return "\n".join(lines)


def _same_task(a: Result, b: Result) -> bool:
    return (a.setting.arch, a.setting.objective) == (b.setting.arch, b.setting.objective)


GOALS = {"mnist-paper": 2.0, "fast": 1.5}  # the targets: our images/s over pythae's
PEAK_GOAL = 0.5  # share of the bf16 matmul peak (the fp32 one without native bf16) on the paper network
FID_SAMPLES, FID_MINUTES_GOAL = 10_000, 5  # Inception features of the generated samples (reference cached)


def goals(results: list[Result], peaks: list[Result]) -> list[str]:
    """One line per goal of the issue, with the measured figure and whether it is met."""
    lines = []
    for arch, target in GOALS.items():
        pythae = [r for r in results if r.setting.trainer == "pythae" and r.setting.arch == arch and not r.error]
        ours = [r for r in results if _is_ours_mmd(r, arch)]
        if pythae and ours:
            best = max(ours, key=lambda r: paired_ratio(r, pythae[0]))
            ratio = paired_ratio(best, pythae[0])
            lines.append(
                f"- {arch}, MMD: {ratio:.2f}x pythae's images/s ({best.setting.variant}); goal >= {target}x: "
                f"{_met(ratio, ratio >= target)}"
            )
    inception = {(r.setting.arch, r.setting.precision, r.setting.batch_size): r for r in results if not r.error}
    baseline = inception.get(("original", "fp32", 50))
    for precision in ("fp32", "bf16"):
        fast = [r for (arch, p, _), r in inception.items() if arch == "optimised" and p == precision]
        if fast and baseline is not None:
            best = max(fast, key=lambda r: r.median)
            minutes = FID_SAMPLES / best.median / 60
            lines.append(
                f"- FID features, optimised network, {best.setting.variant}: {best.median:.1f} images/s, "
                f"{paired_ratio(best, baseline):.2f}x the original fp32 network; {FID_SAMPLES:,} samples in "
                f"{minutes:.1f} min; goal <= {FID_MINUTES_GOAL} min: {_met(minutes, minutes <= FID_MINUTES_GOAL)}"
            )
    paper = [r for r in results if _is_ours_mmd(r, "mnist-paper")]
    if paper and peaks:
        top = peaks[-1]  # bf16 where measured
        best = max(paper, key=lambda r: peak_fraction(r, top))
        share = peak_fraction(best, top)
        lines.append(
            f"- mnist-paper, MMD: {100 * share:.1f}% of the {top.setting.precision} matmul peak "
            f"({best.setting.variant}); "
            f"goal >= {100 * PEAK_GOAL:.0f}%: {_met(share, share >= PEAK_GOAL)}"
        )
    return lines


def _met(value: float, condition: bool) -> str:
    """The verdict on a goal; none from a figure that was not measured (nan: no round in which
    both settings ran quietly, or no windows)."""
    if not math.isfinite(value):
        return "not measured (no quiet round in common)"
    return "met" if condition else "NOT met"


def _is_ours_mmd(r: Result, arch: str) -> bool:
    return r.setting.trainer == "wae" and r.setting.arch == arch and r.setting.objective == "mmd" and not r.error


def machine() -> str:
    """CPU model, cores, torch (and pythae) versions, threads: the first line of a report."""
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    versions = f"torch {torch.__version__}"
    if pythae_available():
        from importlib.metadata import version

        versions += f", pythae {version(PYTHAE)}"
    cores = multiprocessing.cpu_count()
    return f"{cpu}, {cores} cores; Python {sys.version.split()[0]}, {versions}"


def report(
    results: list[Result], peaks: list[Result], command: str, rounds: int, batch_size: int, threads: int | None = None
) -> str:
    """The whole Markdown report: when, where, how to redo it, the tables (over the quiet rounds)
    and the goals."""
    when = time.strftime("%Y-%m-%d %H:%M %Z")
    total = len(set.intersection(*(set(p.rates) for p in peaks))) if peaks else 0
    quiet = len(quiet_rounds(peaks))
    results, peaks = keep_quiet(results, peaks)
    return "\n".join(
        [
            f"Measured {when} on {machine()}.",
            f"Command: `{command}` (batch {batch_size}, {rounds} interleaved rounds per group; "
            f"torch threads per worker: {threads or torch.get_num_threads()}).",
            f"Quiet rounds, those in which every matmul peak reached 80% of its best: {quiet} of {total}; "
            "medians and ratios are over those (a row marked busy had none and uses all its rounds).",
            "",
            table(results, peaks),
            "",
            *goals(results, peaks),
        ]
    )


# ----------------------------------------------------------------------------- command line


def _parser() -> argparse.ArgumentParser:
    bench = _Parser(
        prog="python -m benchmarks.bench",
        description="Time our training steps for each network, objective and variant, pythae's trainer and a "
        "bare PyTorch loop on the same networks (MMD), and square matmuls (the machine's peak), each setting in "
        "its own process, taking turns in interleaved rounds; prints a Markdown report: median images/s, ratios "
        "measured in the same rounds, training GFLOP/s against the peak, peak memory.",
    )

    def variant(text: str) -> str:

        try:
            parse_variant(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
        return text

    bench.add_argument(
        "--archs",
        nargs="+",
        choices=list(PRESET_OF_ARCH),
        default=["fast", "mnist-paper"],
        help="networks (default: fast mnist-paper)",
    )
    bench.add_argument(
        "--objectives", nargs="+", choices=OBJECTIVES, default=["mmd", "gan"], help="objectives (default: mmd gan)"
    )
    bench.add_argument(
        "--variants",
        nargs="+",
        type=variant,
        default=list(default_variants()),
        help="our trainer's settings: fp32 or bf16 (autocast), then any of +cl (channels_last), +mm (matmul forms "
        "of the convolutions on small maps with many channels), +compile (torch.compile of encoder and decoder), "
        f"+fused (fused Adam) (default on this CPU: {' '.join(default_variants())}; bf16 ones only where the "
        "CPU has native bf16)",
    )
    bench.add_argument(
        "--pythae",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="time pythae's trainer too (default: when it is installed; pip install -e '.[bench]')",
    )
    bench.add_argument("--batch-size", type=_int_at_least(2), default=100, help="images per step (default 100)")
    bench.add_argument("--rounds", type=_positive_int, default=5, help="interleaved rounds (default 5)")
    bench.add_argument(
        "--window-seconds", type=_float, default=2.0, help="length of one setting's turn in a round (default 2)"
    )
    bench.add_argument("--warmup", type=_positive_int, default=3, help="untimed steps first (default 3)")
    bench.add_argument(
        "--matmul-size", type=_positive_int, default=2048, help="side of the peak matmuls (default 2048)"
    )
    bench.add_argument(
        "--inception",
        action="store_true",
        help="also time FID's Inception features: original and optimised network, fp32 and bf16",
    )
    bench.add_argument(
        "--inception-batches",
        nargs="+",
        type=_positive_int,
        default=[50, 100, 200],
        help="batch sizes of the optimised bf16 Inception (default: 50 100 200)",
    )
    bench.add_argument("--no-training", action="store_true", help="time no training (with --inception: only that)")
    bench.add_argument("--threads", type=_positive_int, help="torch threads of each worker (default: torch's choice)")
    bench.add_argument("--out", metavar="FILE", help="also write the report to FILE")
    bench.add_argument("--no-progress", action="store_true", help="no progress bar")
    return bench


def _bench(args: argparse.Namespace) -> int:
    installed = pythae_available()
    if args.pythae and not installed:
        raise UserError("pythae is not installed: pip install -e '.[bench]' (pythae==0.1.2), or leave out --pythae")
    if args.pythae is None and not installed:
        print(
            "benchmarks.bench: pythae is not installed, so its row is left out (pip install -e '.[bench]')",
            file=sys.stderr,
        )
    if args.window_seconds <= 0:
        raise UserError(f"--window-seconds must be positive; got {args.window_seconds}")
    out = _check_out(args.out) if args.out else None  # before the work, not after it
    with_pythae = installed and args.pythae is not False
    groups = [] if args.no_training else settings_for(args.archs, args.objectives, args.variants, with_pythae)
    if args.inception:
        groups.append(inception_settings(args.inception_batches))
    if not groups:
        raise UserError("nothing to time: --no-training without --inception")
    results, peaks = run(
        groups,
        args.rounds,
        args.window_seconds,
        args.warmup,
        args.batch_size,
        args.matmul_size,
        progress=not args.no_progress,
        threads=args.threads,
    )
    pythae_flag = {None: [], True: ["--pythae"], False: ["--no-pythae"]}[args.pythae]
    command = " ".join(
        [
            "python -m benchmarks.bench",
            "--archs",
            *args.archs,
            "--objectives",
            *args.objectives,
            "--variants",
            *args.variants,
        ]
        + pythae_flag
        + [f"--rounds {args.rounds} --window-seconds {args.window_seconds} --warmup {args.warmup}"]
        + [f"--batch-size {args.batch_size} --matmul-size {args.matmul_size}"]
        + ([f"--threads {args.threads}"] if args.threads else [])
        + (["--inception --inception-batches", *map(str, args.inception_batches)] if args.inception else [])
        + (["--no-training"] if args.no_training else [])
    )
    text = report(results, peaks, command, args.rounds, args.batch_size, args.threads)
    print(text)
    if out is not None:
        try:
            write_atomic(out, (text + "\n").encode())
        except OSError as err:
            raise UserError(f"cannot write --out {out}: {err.strerror} (the report is printed above)") from None
    return 1 if all(r.error for r in results) else 0  # a setting that fails (say, compile) is a finding


def _check_out(text: str) -> Path:
    """The report's path, checked before any timing: its folder must exist (it is not made: a
    mistyped path would otherwise create folders anywhere), and it must not be a folder or
    other non-regular file."""
    path = Path(text)
    if not path.parent.is_dir():
        raise UserError(f"--out {path}: folder {path.parent} does not exist")
    if path.exists() and not path.is_file():
        raise UserError(f"--out {path} exists and is not a regular file")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.bench``: time the settings, print the report; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        return _bench(args)
    except UserError as err:
        print(f"benchmarks.bench: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
