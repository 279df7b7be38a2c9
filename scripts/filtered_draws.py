"""Filtered draws: the classifier figures of samples whose codes are the best fraction of a
larger set of draws, by cycle consistency (the smallest ||z - E(G(z))||^2) or by density (the
highest log-density under the sampler), from the run's mixture and from the prior
(docs/results.md, session 38). Not kept as a sampler: the filters buy little precision for a
large loss of fidelity.

For each sampler, filter and fraction kept, 10,000 codes (seed 0) are decoded and scored as
``wae evaluate --no-fid`` scores them (fast FD, precision and recall with k = 3, sharpness);
a 10 x 10 grid of the first 100 samples (seed 1) of each is written to OUT.

Usage: python scripts/filtered_draws.py RUN [--out DIR] [--n 10000] [--keep 1.0 0.8 0.5]
RUN must hold a fitted mixture (sampler-gmm.npz: the presets fit it at the end of training).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from wae.evaluate import decode_prior, eval_mode, evaluate_run
from wae.images import save_grid
from wae.runs import load_data
from wae.samplers import LatentSampler, load_sampler
from wae.train import load_model


class Prior:
    """P_Z as a sampler (a standard Gaussian: its log-density up to a constant)."""

    def __init__(self, model: torch.nn.Module, dim: int) -> None:
        self.model, self.dim = model, dim

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.model.prior_sample(n, generator)

    def log_density(self, z: torch.Tensor) -> torch.Tensor:
        return -0.5 * z.pow(2).sum(1)


class Filtered:
    """n codes: the best ``keep`` fraction of round(n / keep) draws of ``base``, in draw order."""

    def __init__(self, model: torch.nn.Module, base: LatentSampler, keep: float, how: str) -> None:
        self.model, self.base, self.keep, self.how = model, base, keep, how
        self.dim = base.dim

    def log_density(self, z: torch.Tensor) -> torch.Tensor:
        return self.base.log_density(z)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        z = self.base.sample(round(n / self.keep), generator)
        if self.how == "cycle":
            with eval_mode(self.model):
                score = -(z - self.model.encode(self.model.decode(z).float()).float()).pow(2).sum(1)
        else:
            score = self.base.log_density(z)
        return z[score.topk(n).indices.sort().values]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--out", type=Path, default=Path("runs/filtered-draws"))
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--keep", type=float, nargs="+", default=[1.0, 0.8, 0.5])
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    model, cfg = load_model(args.run)
    gmm = load_sampler(args.run, "gmm", model)
    assert gmm is not None
    data = load_data(cfg.data, False)
    results = {}
    for name, base in (("mixture", gmm), ("prior", Prior(model, gmm.dim))):
        for keep in args.keep:
            for how in ("cycle", "density") if keep < 1 else ("all",):
                sampler = Filtered(model, base, keep, how)
                metrics = evaluate_run(model, data, cfg.data.range, args.n, 0, None, False, sampler)
                key = f"{name}-{how}-{keep:g}"
                results[key] = {k: metrics[k] for k in ("fd_samples", "precision", "recall", "sharpness_samples")}
                print(key, json.dumps(results[key]), flush=True)
                grid = decode_prior(model, 100, cfg.data.range, 1, sampler)
                save_grid(grid, args.out / f"grid-{key}.png", 10, 2)
    (args.out / "filtered-draws.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
