"""Time to quality: training wall time until the Fréchet distance of prior samples (the shipped
MNIST classifier's features, ``fd_samples`` of ``wae evaluate``) falls below thresholds, for our
trainer and pythae's on the same network, objective, hyper-parameters and initial weights, each
segment on the same images (in ``wae train``'s order for ours; pythae's DataLoader shuffles them
within the segment).

The trainers take turns (A B C, B C A, ...) in segments of ``--segment`` steps over the embedded
MNIST, so that a noisy neighbour on a shared machine slows all of them alike; only the segments
are timed (the data path of each trainer included: ours indexes the uint8 images and converts
each batch, pythae's DataLoader reads float images prepared once). After every segment, each
model decodes ``--samples`` prior draws (fixed seed), whose classifier features are compared
with those of the 10,000 test images. The learning rate is constant for all trainers (pythae's
trainer has no schedule by default).

Trainers: ``wae`` (ours with its defaults: bf16 autocast where the CPU has native bf16, else
fp32; channels_last), ``wae-fp32`` (ours in fp32: with ``wae`` in bf16, bf16's effect on quality
at an equal budget; timed by default only where bf16 is native), ``wae-bf16`` (ours under bf16
autocast on any CPU: where bf16 is emulated its times mean nothing, but its quality per step
against ``wae-fp32`` is still bf16's effect on quality) and ``pythae`` (pythae 0.1.2's
BaseTrainer training its WAE_MMD; fp32, its only CPU precision).

    python -m benchmarks.time_to_quality [--steps 3000] [--segment 150] [--out runs/ttq.md]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from benchmarks.bench import _check_out, machine, peers_cost, pythae_available, pythae_dataset, pythae_wae_mmd
from wae.checkpoint import write_atomic
from wae.classifier import features_and_probs, load_classifier
from wae.config import UserError, native_bf16, override, preset, resolve_precision
from wae.data import batch_indices, load_mnist, to_model_range
from wae.evaluate import decode_prior, frechet_distance_of
from wae.model import AutoEncoder
from wae.train import STEPS, build

TRAINERS = ("wae", "wae-fp32", "wae-bf16", "pythae")
PRECISION = {"wae": "auto", "wae-fp32": "fp32", "wae-bf16": "bf16", "pythae": "fp32"}


@dataclass
class Trainer:
    name: str
    model: AutoEncoder  # decodes what the trainer trains
    train: Callable[[Any], None]  # one segment: a list of index batches (or an epoch number)
    seconds: float = 0.0
    curve: list[tuple[int, float, float]] = field(default_factory=list)  # (steps, seconds, fd)


def make_trainer(name: str, arch: str, images: torch.Tensor, workdir: str, seed: int) -> Trainer:
    cfg = peers_cost(preset("mnist-fast" if arch == "fast" else "mnist-paper", "mmd"))  # pythae's objective
    cfg = resolve_precision(override(cfg, arch=arch, precision=PRECISION[name], seed=seed))
    if name == "pythae":
        float_images = to_model_range(images)
        model, trainer = pythae_wae_mmd(cfg, images.shape[1], images.shape[2], float_images[:1], workdir)
        epoch = [0]

        def train_pythae(segment: list[torch.Tensor]) -> None:
            trainer.train_loader = trainer.get_train_dataloader(pythae_dataset(float_images[torch.cat(segment)]))
            epoch[0] += 1
            trainer.train_step(epoch[0])

        return Trainer(name, model, train_pythae)
    # a schedule step that never arrives: the learning rate stays constant, as pythae's does
    state = build(cfg, images.shape[1], images.shape[2], steps_per_epoch=10**12)
    step = STEPS["mmd"]

    def train_ours(segment: list[torch.Tensor]) -> None:
        for index in segment:
            step(state, images[index])

    return Trainer(name, state.model, train_ours)


def segments(n: int, batch_size: int, seed: int, steps: int, segment: int) -> list[list[torch.Tensor]]:
    """The index batches of ``steps`` training steps (epochs of :func:`wae.data.batch_indices`,
    as ``wae train`` orders them), cut into segments of ``segment`` steps."""
    order: list[torch.Tensor] = []
    epoch = 0
    while len(order) < steps:
        order.extend(batch_indices(n, batch_size, seed, epoch))
        epoch += 1
    return [order[i : min(i + segment, steps)] for i in range(0, steps, segment)]


def first_below(curve: list[tuple[int, float, float]], threshold: float) -> tuple[int, float] | None:
    """(steps, training seconds) of the first evaluation at or below ``threshold``."""
    for steps, seconds, fd in curve:
        if fd <= threshold:
            return steps, seconds
    return None


def report(trainers: list[Trainer], thresholds: list[float], args: argparse.Namespace, wall: float) -> str:
    names = [t.name for t in trainers]
    emulated = (
        ""
        if native_bf16() or "wae-bf16" not in names
        else " (`wae-bf16`: bf16 emulated on this CPU, its seconds are not comparable)"
    )
    lines = [
        "# Time to quality",
        "",
        f"{machine()}. {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {wall / 60:.1f} min in all.",
        f"Network `{args.arch}`, WAE-MMD, batch 100, constant lr, seed {args.seed}; `wae` in "
        f"{'bf16' if native_bf16() else 'fp32'}{emulated}; {args.steps} steps per trainer in "
        f"segments of {args.segment}, interleaved; FD of {args.samples} prior samples against the 10,000 test images "
        "(classifier features).",
        "",
        "| trainer | " + " | ".join(f"FD <= {t:g}: s (steps)" for t in thresholds) + " | final FD | training s |",
        "|---|" + "---|" * (len(thresholds) + 2),
    ]
    for t in trainers:
        cells = []
        for threshold in thresholds:
            hit = first_below(t.curve, threshold)
            cells.append(f"{hit[1]:.0f} ({hit[0]})" if hit else "not reached")
        lines.append(f"| {t.name} | " + " | ".join(cells) + f" | {t.curve[-1][2]:.1f} | {t.seconds:.0f} |")
    reference = next((t for t in trainers if t.name == "pythae"), None)
    if reference is not None:
        lines += ["", "Speed-up in time to quality against pythae (its seconds / ours):", ""]
        for t in trainers:
            if t is reference:
                continue
            ratios = []
            for threshold in thresholds:
                ours, theirs = first_below(t.curve, threshold), first_below(reference.curve, threshold)
                ratios.append(f"{theirs[1] / ours[1]:.2f}x" if ours and theirs else "n/a")
            lines.append(
                f"- {t.name}: " + ", ".join(f"FD <= {th:g}: {r}" for th, r in zip(thresholds, ratios, strict=True))
            )
    lines += ["", "FD after each segment:", "", "| steps | " + " | ".join(t.name for t in trainers) + " |"]
    lines.append("|---|" + "---|" * len(trainers))
    for i, (steps, _, _) in enumerate(trainers[0].curve):
        lines.append(f"| {steps} | " + " | ".join(f"{t.curve[i][2]:.1f}" for t in trainers) + " |")
    return "\n".join(lines) + "\n"


def demo_against_pythae_defaults(args: argparse.Namespace) -> str:
    """Issue 16's time to quality: pythae 0.1.2 with its own defaults (WAE_MMD_Config and
    BaseTrainerConfig: lambda 3e-2, Adam lr 1e-4, batch 64) on the `fast` network at d_z = 8
    trains ``args.epochs`` epochs; its final FD is the mark. Our demo (the `mnist-fast` preset
    as `make demo` trains it: WAE-GAN since session 42 (``args.objective``), its network, d_z,
    prior, schedule and precision) trains the same
    epochs, the two taking turns epoch by epoch on the same core so that a noisy neighbour slows
    both alike; each is scored after every epoch. The figure: pythae's training seconds over
    ours until our FD first reaches its final one."""
    data = load_mnist()
    images = data.train
    assert isinstance(images, torch.Tensor)
    classifier = load_classifier()
    test_features, _ = features_and_probs(classifier, to_model_range(data.test))
    n = len(images)
    with tempfile.TemporaryDirectory() as workdir:
        ref_cfg = resolve_precision(
            override(preset("mnist-fast", "mmd"), arch="fast", latent_dim=8, prior="gaussian", seed=args.seed)
        )  # pythae's WAE with its defaults: N(0, I)
        float_images = to_model_range(images)
        ref_model, trainer = pythae_wae_mmd(ref_cfg, 1, 28, float_images[:1], workdir, pythae_defaults=True)
        trainer.train_loader = trainer.get_train_dataloader(pythae_dataset(float_images))

        def pythae_epoch(epoch: int) -> None:
            trainer.train_step(epoch + 1)

        cfg = resolve_precision(override(preset("mnist-fast", args.objective), seed=args.seed))
        per_epoch = n // cfg.train.batch_size
        state = build(cfg, 1, 28, steps_per_epoch=per_epoch)
        step = STEPS[cfg.loss.objective]

        def ours_epoch(epoch: int) -> None:
            for index in batch_indices(n, cfg.train.batch_size, cfg.train.seed, epoch):
                step(state, images[index])

        trainers = [Trainer("pythae (its defaults, fast, d_z 8)", ref_model, pythae_epoch)]
        trainers.append(
            Trainer(
                f"wae mnist-fast ({cfg.loss.objective}, {cfg.model.arch}, d_z {cfg.model.latent_dim})",
                state.model,
                ours_epoch,
            )
        )
        for epoch in range(args.epochs):
            for t in trainers if epoch % 2 == 0 else trainers[::-1]:
                t.model.train()
                begin = time.perf_counter()
                t.train(epoch)
                t.seconds += time.perf_counter() - begin
                fd = frechet_distance_of(
                    features_and_probs(classifier, decode_prior(t.model, args.samples, "01", seed=args.seed))[0],
                    test_features,
                )
                t.curve.append((epoch + 1, t.seconds, fd if math.isfinite(fd) else float("inf")))
            print(
                ", ".join(f"{t.name}: epoch {epoch + 1} FD {t.curve[-1][2]:.1f} ({t.seconds:.0f} s)" for t in trainers)
            )
    reference, ours = trainers
    mark = reference.curve[-1][2]
    hit = first_below(ours.curve, mark)
    lines = [
        "# Time to quality: the demo against pythae with its defaults",
        "",
        f"{machine()}. {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; seed {args.seed}; FD of "
        f"{args.samples} prior samples against the 10,000 test images (classifier features), after every epoch.",
        "",
        "| epoch | " + " | ".join(f"{t.name}: FD (training s)" for t in trainers) + " |",
        "|---|---|---|",
    ]
    for i in range(args.epochs):
        lines.append(
            f"| {i + 1} | " + " | ".join(f"{t.curve[i][2]:.1f} ({t.curve[i][1]:.0f})" for t in trainers) + " |"
        )
    lines.append("")
    if hit is None:
        lines.append(f"Ours did not reach pythae's {args.epochs}-epoch FD ({mark:.1f}) in {args.epochs} epochs.")
    else:
        lines.append(
            f"pythae's FD after {args.epochs} epochs: {mark:.1f}, in {reference.seconds:.0f} s of training; "
            f"ours reached it after epoch {hit[0]}, {hit[1]:.0f} s: **{reference.seconds / hit[1]:.1f}x sooner**."
        )
    return "\n".join(lines) + "\n"


DEFAULT_OUT = "runs/time_to_quality.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", choices=("fast", "mnist-paper"), default="fast")
    default = list(TRAINERS) if native_bf16() else ["wae", "pythae"]
    parser.add_argument("--trainers", nargs="+", choices=TRAINERS, default=default)
    parser.add_argument("--steps", type=int, default=3000, help="training steps per trainer (default 3000: 5 epochs)")
    parser.add_argument("--segment", type=int, default=150, help="steps between evaluations (default 150)")
    parser.add_argument("--samples", type=int, default=2000, help="prior samples per evaluation (default 2000)")
    parser.add_argument("--thresholds", type=float, nargs="+", default=[300.0, 250.0, 200.0, 175.0])
    parser.add_argument("--train-images", type=int, default=None, help="use only the first N training images")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", default=DEFAULT_OUT, help=f"report (Markdown; curves beside it as .json; default {DEFAULT_OUT})"
    )
    parser.add_argument(
        "--demo-vs-pythae-defaults",
        action="store_true",
        help="issue 16's figure: our mnist-fast preset against pythae with its own defaults on the fast network",
    )
    parser.add_argument("--epochs", type=int, default=None, help="with --demo-vs-pythae-defaults (default 10)")
    parser.add_argument(
        "--objective",
        choices=("gan", "mmd"),
        default=None,
        help="with --demo-vs-pythae-defaults: our demo's objective (default gan, as make demo trains it)",
    )
    args = parser.parse_args(argv)
    demo_only = [flag for flag in ("epochs", "objective") if getattr(args, flag) is not None]
    if demo_only and not args.demo_vs_pythae_defaults:  # taken and unused otherwise
        parser.error(f"--{demo_only[0]} is --demo-vs-pythae-defaults' setting: give that, or leave it out")
    args.epochs = 10 if args.epochs is None else args.epochs
    args.objective = args.objective or "gan"
    if args.out == DEFAULT_OUT:
        Path(DEFAULT_OUT).parent.mkdir(exist_ok=True)  # runs/, the project's own folder
    try:
        out = _check_out(args.out)  # before the work, not after it
    except UserError as err:
        print(f"error: {err}")
        return 2
    if args.demo_vs_pythae_defaults:
        if not pythae_available():
            print("error: pythae is not installed (pip install -e '.[bench]')")
            return 2
        if args.threads:
            torch.set_num_threads(args.threads)
        text = demo_against_pythae_defaults(args)
        write_atomic(out, text.encode())
        print(text)
        return 0
    if "pythae" in args.trainers and not pythae_available():
        print("error: pythae is not installed (pip install -e '.[bench]'), or leave it out of --trainers")
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_mnist()
    images = data.train if args.train_images is None else data.train[: args.train_images]
    assert isinstance(images, torch.Tensor)
    classifier = load_classifier()
    test_features, _ = features_and_probs(classifier, to_model_range(data.test))
    plan = segments(len(images), 100, args.seed, args.steps, args.segment)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as workdir:
        trainers = [make_trainer(name, args.arch, images, workdir, args.seed) for name in args.trainers]
        done = 0
        for round_, segment in enumerate(plan):
            done += len(segment)
            shift = round_ % len(trainers)
            for t in trainers[shift:] + trainers[:shift]:
                t.model.train()
                begin = time.perf_counter()
                t.train(segment)
                t.seconds += time.perf_counter() - begin
                samples = decode_prior(t.model, args.samples, "01", seed=args.seed)
                features, _ = features_and_probs(classifier, samples)
                fd = frechet_distance_of(features, test_features)
                t.curve.append((done, t.seconds, fd if math.isfinite(fd) else float("inf")))
            print(
                f"{done} steps: "
                + ", ".join(f"{t.name} FD {t.curve[-1][2]:.1f} ({t.seconds:.0f} s)" for t in trainers),
                file=sys.stderr,
            )
    text = report(trainers, args.thresholds, args, time.perf_counter() - start)
    write_atomic(out, text.encode())
    write_atomic(out.with_suffix(".json"), (json.dumps({t.name: t.curve for t in trainers}) + "\n").encode())
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
