"""How the WAE-MMD penalty's time and memory grow with the batch (n codes against n prior
draws) and the code dimension, for the whole kernel matrix and the blockwise path.

Each setting runs in a fresh process, so that its peak resident memory (ru_maxrss, minus the
same process's before the penalty) is its own. The processes run with glibc's mmap threshold
fixed at 64 KiB (MALLOC_MMAP_THRESHOLD_): with its default, which rises after the first large
free, freed kernel blocks stay in the heap and the peak RSS reflects the allocator rather than
the tensors alive at once. Prints a Markdown table.

    python benchmarks/mmd_scaling.py [--sizes 100 1024 4096 8192] [--dims 8 64]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time


def one(n: int, d: int, block: int | None, repeats: int) -> dict[str, float]:
    """Median forward+backward time and extra peak RSS of one penalty evaluation."""
    import torch

    from wae.divergences import imq_kernel, mmd_from_gram, mmd_imq, squared_distances

    def whole(codes: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([codes, prior])
        return mmd_from_gram(imq_kernel(squared_distances(pooled, pooled), 2.0 * d), len(codes))

    generator = torch.Generator().manual_seed(0)
    codes = torch.randn(n, d, generator=generator).requires_grad_()
    prior = torch.randn(n, d, generator=generator)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        (whole(codes, prior) if block is None else mmd_imq(codes, prior, block=block)).backward()
        times.append(time.perf_counter() - start)
    extra_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    return {"ms": 1000 * statistics.median(times), "extra_mb": extra_mb}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1024, 2048, 4096, 8192])
    parser.add_argument("--dims", type=int, nargs="+", default=[8, 64])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--one", nargs=3, metavar=("N", "D", "BLOCK"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        n, d, block = (int(v) for v in args.one)
        print(json.dumps(one(n, d, block or None, args.repeats)))
        return
    print("| codes n (vs n prior draws) | d_z | whole matrix: ms | extra MB | blockwise (1024 rows): ms | extra MB |")
    print("|---|---|---|---|---|---|")
    for d in args.dims:
        for n in args.sizes:
            cells = []
            for block in (None, 1024):
                cmd = [
                    sys.executable,
                    __file__,
                    "--one",
                    str(n),
                    str(d),
                    str(block or 0),
                    "--repeats",
                    str(args.repeats),
                ]
                env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
                done = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
                result = json.loads(done.stdout)
                cells += [f"{result['ms']:.1f}", f"{result['extra_mb']:.0f}"]
            print(f"| {n} | {d} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
