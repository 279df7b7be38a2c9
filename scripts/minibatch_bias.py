"""Which Q_Z does a minibatch penalty prefer? For Q = N(0, s^2 I) against the prior N(0, I), the
expected penalty between a batch of n codes and n prior draws, as a function of the scale s.
An unbiased estimate of a divergence is smallest at s = 1; minibatch optimal transport in
several dimensions is not (n points cannot match a continuous law, and the best match shrinks
towards the centre), which is why the Sinkhorn WAE's codes come out narrow (docs/results.md).

    python scripts/minibatch_bias.py [--reps 50] [--threads 1]
Prints a Markdown table: the mean penalty at each scale and the scale that minimises it.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from torch import Tensor

from wae.divergences import mmd_imq, random_directions, sinkhorn_divergence, sliced_wasserstein

SCALES = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1)


def penalties(generator: torch.Generator) -> list[tuple[str, int, int, Callable[[Tensor, Tensor], Tensor]]]:
    """(label, d, n, penalty) rows of the table."""

    def sinkhorn(eps: float) -> Callable[[Tensor, Tensor], Tensor]:
        return lambda q, p: sinkhorn_divergence(q, p, eps, 50)

    def swd(q: Tensor, p: Tensor) -> Tensor:
        return sliced_wasserstein(q, p, random_directions(q.shape[1], 50, generator))

    return [
        ("MMD, IMQ (unbiased)", 2, 100, mmd_imq),
        ("Sinkhorn, ε = 0.1", 2, 100, sinkhorn(0.1)),
        ("Sinkhorn, ε = 1", 2, 100, sinkhorn(1.0)),
        ("MMD, IMQ (unbiased)", 8, 100, mmd_imq),
        ("sliced W2² (50 directions)", 8, 100, swd),
        ("Sinkhorn, ε = 0.1", 8, 100, sinkhorn(0.1)),
        ("Sinkhorn, ε = 1", 8, 100, sinkhorn(1.0)),
        ("Sinkhorn, ε = 10", 8, 100, sinkhorn(10.0)),
        ("Sinkhorn, ε = 1", 8, 400, sinkhorn(1.0)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=50, help="batch pairs averaged per scale (default 50)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(args.seed)
    start = time.perf_counter()
    print("| penalty | d | batch | " + " | ".join(f"s = {s}" for s in SCALES) + " | minimised at |")
    print("|---|---|---|" + "---|" * len(SCALES) + "---|")
    for label, d, n, penalty in penalties(generator):
        means = []
        for s in SCALES:
            total = 0.0
            for _ in range(args.reps):
                q = s * torch.randn(n, d, generator=generator)
                total += penalty(q, torch.randn(n, d, generator=generator)).item()
            means.append(total / args.reps)
        best = SCALES[min(range(len(SCALES)), key=means.__getitem__)]
        print(f"| {label} | {d} | {n} | " + " | ".join(f"{m:.3g}" for m in means) + f" | **{best}** |", flush=True)
    print(f"\n{args.reps} batch pairs per entry, seed {args.seed}, {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
