"""Training throughput: images per second of the real step functions on MNIST-sized batches.

Each setting is timed over ``steps`` steps after ``warmup`` untimed ones; the figure is the
median step time, so that a noisy neighbour on a shared machine moves it less than a mean.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch

from .config import override, preset
from .nets import count_parameters
from .train import STEPS, build


@dataclass
class Throughput:
    """One measured setting."""

    arch: str
    objective: str
    precision: str
    batch_size: int
    parameters: int
    images_per_s: float


def measure(
    arch: str = "fast",
    objective: str = "mmd",
    precision: str = "fp32",
    batch_size: int = 100,
    steps: int = 20,
    warmup: int = 3,
    size: int = 28,
    channels: int = 1,
) -> Throughput:
    """Median training throughput of one setting, on random images (speed does not depend on
    the pixel values)."""
    cfg = override(preset("mnist-fast", objective), arch=arch, precision=precision, batch_size=batch_size)
    state = build(cfg, channels, size, steps_per_epoch=1_000_000)
    step = STEPS[objective]
    batch = (torch.rand(batch_size, channels, size, size, generator=torch.Generator().manual_seed(0)) * 255).to(
        torch.uint8
    )
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        step(state, batch)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return Throughput(
        arch, objective, precision, batch_size, count_parameters(state.model), batch_size / statistics.median(times)
    )


def table(results: list[Throughput]) -> str:
    """A Markdown table of measured settings."""
    lines = ["| network | parameters | objective | precision | batch | images/s |", "|---|---|---|---|---|---|"]
    for r in results:
        lines.append(
            f"| {r.arch} | {r.parameters:,} | {r.objective} | {r.precision} | {r.batch_size} | {r.images_per_s:,.0f} |"
        )
    return "\n".join(lines)
