"""Temperature of the latent sampler: the classifier figures of samples drawn with the ex-post
Gaussian mixture's covariances (and the prior's) scaled by tau^2 (docs/results.md, session 20).

For each tau, 10,000 codes (seed 0) are decoded and scored as ``wae evaluate --no-fid`` scores
them: the Fréchet distance on the shipped classifier's features (fast FD), precision and recall
(k = 3), the classifier's mean confidence and the fraction of samples it reads with more than
90 % and 99 %; a 10 x 10 grid of the first 100 samples of each is written to OUT.

The τ = 1 rows' "confident_0.9" is the figure docs/results.md calls "read with > 90 % confidence"
(session 39), an automatic stand-in for the count of clean digits by eye.

Usage: python scripts/sampler_temperature.py RUN [--out DIR] [--n 10000] [--taus 1.0 ...]
RUN must hold a fitted mixture (sampler-gmm.npz: the presets fit it at the end of training).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from wae.classifier import features_and_probs, load_classifier
from wae.evaluate import decode_prior, sample_metrics
from wae.images import save_grid
from wae.priors import mixture_means
from wae.runs import load_data
from wae.samplers import GaussianMixture, load_sampler
from wae.train import load_run

KEYS = ("fd_samples", "precision", "recall", "mean_confidence", "class_kl_to_uniform")


def tempered(mixture: GaussianMixture, tau: float) -> GaussianMixture:
    """The mixture with every component's covariance scaled by tau^2 (means and weights kept)."""
    return GaussianMixture(mixture.weights, mixture.means, mixture.covariances * tau**2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--out", type=Path, default=None, help="folder for the grids (default: RUN/temperature)")
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--taus", type=float, nargs="+", default=None, help="these temperatures for both samplers")
    args = parser.parse_args()
    out = args.out or args.run / "temperature"
    out.mkdir(parents=True, exist_ok=True)
    loaded = load_run(args.run)
    model, cfg = loaded.model, loaded.config
    test = load_data(cfg.data).test
    mixture = load_sampler(args.run, "gmm", model)
    if not isinstance(mixture, GaussianMixture):
        raise SystemExit(f"{args.run} has no fitted mixture: run wae fit-sampler {args.run}")
    loss, d = cfg.loss, mixture.dim
    if loss.prior == "gaussian":
        means = torch.zeros(1, d, dtype=torch.float64)
    elif loss.prior == "mixture":  # the mixture prior's own components (session 39)
        means = mixture_means(d, model.prior_var, model.prior_components, model.prior_separation).double()
    else:
        raise SystemExit(
            f"the prior's temperature is measured for a Gaussian or mixture prior; this run's is {loss.prior}"
        )
    variance = torch.eye(d, dtype=torch.float64)[None].repeat(len(means), 1, 1) * loss.prior_var
    prior = GaussianMixture(torch.ones(len(means)) / len(means), means, variance)
    classifier = load_classifier()
    test_outputs = None
    for kind, base, taus in (("gmm", mixture, (1.0, 0.9, 0.8, 0.7, 0.6)), ("prior", prior, (1.0, 0.9, 0.8, 0.7))):
        for tau in args.taus or taus:
            start = time.perf_counter()
            images = decode_prior(model, args.n, cfg.data.range, 0, tempered(base, tau))
            metrics, test_outputs = sample_metrics(test, images, test_outputs=test_outputs)
            confidence = features_and_probs(classifier, images)[1].max(1).values
            row = {"kind": kind, "tau": tau, **{k: round(metrics[k], 4) for k in KEYS}}
            row["confident_0.9"] = round(float((confidence > 0.9).float().mean()), 4)
            row["confident_0.99"] = round(float((confidence > 0.99).float().mean()), 4)
            row["seconds"] = round(time.perf_counter() - start, 1)
            print(json.dumps(row), flush=True)
            save_grid(images[:100], out / f"{kind}-{tau}.png", 10, scale=2)


if __name__ == "__main__":
    main()
