"""The decoder's transposed convolutions against matrix products of the same FLOPs, on this
machine: what a faster formulation of a layer could gain at most where matrix products are the
fastest thing the CPU does (docs/results.md, "Session 62"). For each ``nn.ConvTranspose2d`` of a
network's decoder (as ``wae.nets.Decoder`` builds it for 28x28 MNIST), forward and backward of a
batch (channels_last input, bf16 under autocast or fp32) are timed beside the three products a
matrix-product form would make, (n h w, c_in) x (c_in, c_out k k) and its two gradients, which
have the same FLOPs (2 n h w c_in c_out k^2 each); the two take turns round by round in one
process, and the medians of the rounds' means are printed as a markdown table with GFLOP/s and their ratio. A matrix
product form would also need the overlap-add of its k x k windows on top, so a ratio near 1 says
there is nothing left to win in that layer but its arithmetic.

    python -m benchmarks.conv_ceiling [--archs small,wide] [--precisions bf16,fp32] [--batch 100]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from wae.nets import ARCHITECTURES, Decoder


def mean_ms(step: Callable[[], object], repeats: int) -> float:
    """Milliseconds a call of ``step`` takes: the mean of ``repeats`` calls, after one warm-up."""
    step()
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    return (time.perf_counter() - start) / repeats * 1e3


def layer_shapes(arch: str) -> list[tuple[int, int, int, int, int, int, int]]:
    """(c_in, c_out, kernel, stride, padding, output padding, input side) of each transposed convolution of the
    ``arch`` decoder, in order: for 28 x 28 MNIST, 64 x 64 CelebA for ``celeba-paper``."""
    size, channels = (64, 3) if arch == "celeba-paper" else (28, 1)
    decoder = Decoder(ARCHITECTURES[arch], channels, size, 8)
    side, shapes = decoder.start, []
    for layer in decoder.modules():
        if isinstance(layer, nn.ConvTranspose2d):
            k, s, p, extra = layer.kernel_size[0], layer.stride[0], int(layer.padding[0]), layer.output_padding[0]
            shapes.append((layer.in_channels, layer.out_channels, k, s, p, extra, side))
            side = (side - 1) * s - 2 * p + k + extra
    return shapes


def measure(
    shape: tuple[int, int, int, int, int, int, int], precision: str, batch: int, rounds: int, repeats: int
) -> tuple[float, float, float]:
    """(GFLOP of forward and backward, ms of the convolution, ms of the same-FLOP products):
    medians over ``rounds`` rounds in which the two take turns."""
    cin, cout, k, stride, pad, extra, side = shape
    bf16 = precision == "bf16"
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch, cin, side, side, generator=generator).to(memory_format=torch.channels_last)
    x.requires_grad_()
    weight = (torch.randn(cin, cout, k, k, generator=generator) * 0.05).requires_grad_()

    def convolution() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            y = F.conv_transpose2d(x, weight, stride=stride, padding=pad, output_padding=extra)
        y.float().sum().backward()

    rows = batch * side * side
    dtype = torch.bfloat16 if bf16 else torch.float32
    a, b = torch.randn(rows, cin, dtype=dtype), torch.randn(cin, cout * k * k, dtype=dtype)
    g = torch.randn(rows, cout * k * k, dtype=dtype)

    def products() -> None:
        a @ b, g @ b.t(), a.t() @ g

    conv_ms, mm_ms = [], []
    for _ in range(rounds):
        conv_ms.append(mean_ms(convolution, repeats))
        mm_ms.append(mean_ms(products, repeats))
    gflop = 3 * 2 * rows * cin * cout * k * k / 1e9
    return gflop, statistics.median(conv_ms), statistics.median(mm_ms)


def table(archs: Sequence[str], precisions: Sequence[str], batch: int, rounds: int, repeats: int) -> list[str]:
    """The markdown table's lines, one row per network, precision and layer."""
    lines = [
        f"batch {batch}, {torch.get_num_threads()} threads, torch {torch.__version__}; medians of {rounds} rounds",
        "",
        "| network | layer | precision | GFLOP fwd+bwd | convolution ms (GFLOP/s) | same-FLOP products ms "
        "(GFLOP/s) | products / convolution |",
        "|---|---|---|---|---|---|---|",
    ]
    for precision in precisions:
        for arch in archs:
            for shape in layer_shapes(arch):
                cin, cout, k, stride, pad, extra, side = shape
                gflop, conv, mm = measure(shape, precision, batch, rounds, repeats)
                out = (side - 1) * stride - 2 * pad + k + extra
                lines.append(
                    f"| {arch} | {cin} -> {cout}, {side} -> {out} | {precision} | {gflop:.2f} | "
                    f"{conv:.1f} ({gflop / conv * 1e3:.0f}) | {mm:.1f} ({gflop / mm * 1e3:.0f}) | {mm / conv:.2f} |"
                )
    return lines


# a batch's activations grow with it (wide's largest: 100 images about 0.1 GB in fp32); the
# presets use 100 to 256, and 100,000 would ask tens of GB of this machine
MAX_BATCH = 10_000


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.conv_ceiling", description=__doc__.split("\n\n")[0])
    names = ", ".join(ARCHITECTURES)
    parser.add_argument(
        "--archs", default="small,wide", help=f"networks whose decoders are timed, of {names} (default small,wide)"
    )
    parser.add_argument("--precisions", default="bf16,fp32", help="bf16 (autocast) and/or fp32 (default both)")
    parser.add_argument(
        "--batch", type=int, default=100, help=f"images a batch, 1 to {MAX_BATCH:,} (default 100, the presets')"
    )
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the two taking turns (default 5)")
    parser.add_argument("--repeats", type=int, default=5, help="calls timed in a round (default 5)")
    args = parser.parse_args(argv)
    archs = list(dict.fromkeys(a.strip() for a in args.archs.split(",") if a.strip()))  # each once
    precisions = list(dict.fromkeys(p.strip() for p in args.precisions.split(",") if p.strip()))
    problems = [f"unknown network {a!r} (one of {names})" for a in archs if a not in ARCHITECTURES]
    problems += [f"unknown precision {p!r} (bf16 or fp32)" for p in precisions if p not in ("bf16", "fp32")]
    problems += [f"--{flag} names none" for flag, given in (("archs", archs), ("precisions", precisions)) if not given]
    problems += [
        f"--{flag} must be at least 1; got {v}" for flag in ("rounds", "repeats") if (v := getattr(args, flag)) < 1
    ]
    if not 1 <= args.batch <= MAX_BATCH:
        problems.append(f"--batch must be from 1 to {MAX_BATCH:,}; got {args.batch}")
    if problems:
        print(f"error: {'; '.join(problems)}", file=sys.stderr)
        return 2
    try:
        print("\n".join(table(archs, precisions, args.batch, args.rounds, args.repeats)), flush=True)
    except KeyboardInterrupt:
        print("stopped by SIGINT: nothing timed is printed", file=sys.stderr)
        return 130
    except OSError as err:  # standard output on a full disk or a closed pipe
        print(f"error: the table could not be written: {err.strerror or err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
