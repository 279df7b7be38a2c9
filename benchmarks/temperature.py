"""Sampling temperature (the "truncation trick"): codes drawn with their spread around each
component's mean scaled by tau < 1, for the prior (the mixture prior's N(r sigma e_k, tau^2
sigma^2 I), or N(0, tau^2 sigma^2 I)) and the ex-post Gaussian mixture (each component's
covariance scaled by tau^2), scored as ``wae evaluate`` scores samples: the shipped classifier's
Fréchet distance, precision and recall, the share of samples it reads with confidence above
0.9, and, with ``--fid``, Inception FID against the test images. The trade it measures is the
one of Kingma & Dhariwal (2018, Glow's temperature) and Brock et al. (2019, BigGAN's
truncation): cleaner, more typical samples against less variety.

    python -m benchmarks.temperature RUN [RUN ...] --taus 1,0.9,0.8 [--fid] [--n 10000]

prints a markdown table (one row per run, sampler and tau) and writes each setting's first 100
samples as a grid beside ``--grids`` when given. The codes of every tau are the same draws
(seed 0) scaled, so that the rows differ in tau alone.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from torch import Tensor

from wae.data import load_mnist, to_unit_range
from wae.model import AutoEncoder
from wae.samplers import GaussianMixture, load_gmm


def prior_codes(model: AutoEncoder, n: int, tau: float, generator: torch.Generator) -> Tensor:
    """n codes of the model's prior with their spread around the component means scaled by tau
    (the Gaussian and the mixture priors; (n, d) float32)."""
    var, dim = model.prior_var, model.latent_dim
    if model.prior not in ("gaussian", "mixture"):
        raise SystemExit(
            f"a temperature is defined here for the gaussian and mixture priors; the run has {model.prior}"
        )
    means = torch.zeros(n, dim)
    if model.prior == "mixture":
        which = torch.randint(model.prior_components, (n,), generator=generator)
        means[torch.arange(n), which] = model.prior_separation * math.sqrt(var)
    return means + tau * math.sqrt(var) * torch.randn(n, dim, generator=generator)


def mixture_codes(mixture: GaussianMixture, n: int, tau: float, generator: torch.Generator) -> Tensor:
    """n codes of a fitted Gaussian mixture with each covariance scaled by tau^2 ((n, d) float32)."""
    component = torch.multinomial(mixture.weights.double(), n, replacement=True, generator=generator)
    factors = torch.linalg.cholesky(mixture.covariances.double())
    eps = tau * torch.randn(n, mixture.dim, generator=generator, dtype=torch.float64)
    return (mixture.means.double()[component] + torch.einsum("nij,nj->ni", factors[component], eps)).float()


def scores(images: Tensor, test: Tensor, test_features: Tensor, fid: bool) -> dict[str, float]:
    """The classifier's figures of ``images`` against ``test`` (its features ``test_features``)
    and, with ``fid``, Inception FID."""
    from wae.classifier import features_and_probs, load_classifier
    from wae.evaluate import classifier_images, classifier_metrics

    features, probs = features_and_probs(load_classifier(), classifier_images(images, "samples"))
    metrics = classifier_metrics(test, images, test_features=test_features, sample_outputs=(features, probs))
    row = {
        "fd": metrics["fd_samples"],
        "precision": metrics["precision"],
        "recall": metrics["recall"],
        "confident": float((probs.max(1).values > 0.9).float().mean()),
    }
    if fid:
        from wae.fid import fid as inception_fid
        from wae.fid import load_inception

        row["fid"] = inception_fid(load_inception(), images, test, "auto", kid_subsets=0)["fid"]
    return row


def settings(run: Path, taus: list[float], n: int) -> Iterator[tuple[str, float, Tensor]]:
    """(sampler, tau, n images (n, c, h, w) in [0, 1]) of a run: the prior, then the ex-post
    mixture where the run has one, at each tau; the codes of every tau are the same draws (seed
    0) scaled."""
    from wae.train import load_run

    loaded = load_run(run)
    model, value_range = loaded.model, loaded.config.data.range
    mixture = load_gmm(run / "sampler-gmm.npz") if (run / "sampler-gmm.npz").is_file() else None
    for sampler in ("prior", "gmm") if mixture is not None else ("prior",):
        for tau in taus:
            generator = torch.Generator().manual_seed(0)
            if mixture is not None and sampler == "gmm":
                codes = mixture_codes(mixture, n, tau, generator)
            else:
                codes = prior_codes(model, n, tau, generator)
            with torch.no_grad():
                chunks = [model.decode(codes[i : i + 1000]).float() for i in range(0, n, 1000)]
            yield sampler, tau, to_unit_range(torch.cat(chunks), value_range)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], prog="python -m benchmarks.temperature")
    parser.add_argument("runs", nargs="+", help="run folders of MNIST runs (with sampler-gmm.npz for the mixture)")
    parser.add_argument("--taus", default="1,0.9,0.8,0.7", help="temperatures, comma-separated (default 1,0.9,0.8,0.7)")
    parser.add_argument("--n", type=int, default=10_000, help="samples a setting (default 10000)")
    parser.add_argument("--n-test", type=int, default=10_000, help="test images scored against (default all 10000)")
    parser.add_argument("--fid", action="store_true", help="Inception FID too (minutes a setting on a CPU)")
    parser.add_argument("--grids", type=Path, help="a folder for each setting's first 100 samples as a PNG grid")
    args = parser.parse_args(argv)
    from wae.evaluate import reference_features
    from wae.images import save_grid

    taus = [float(t) for t in args.taus.split(",")]
    if min(args.n, args.n_test) < 2 or not all(0 < t <= 10 for t in taus):
        parser.error("--n and --n-test must be at least 2 and each tau in (0, 10]")
    test = load_mnist().test[: args.n_test]
    test_features = reference_features(test)
    columns = ["run", "sampler", "tau", "fast FD", "precision", "recall", "confident > 0.9"] + ["FID"] * args.fid
    print("| " + " | ".join(columns) + " |\n|" + "---|" * len(columns))
    for run in args.runs:
        for sampler, tau, images in settings(Path(run), taus, args.n):
            row = scores(images, test, test_features, args.fid)
            cells = [Path(run).name, sampler, f"{tau:g}", f"{row['fd']:.2f}", f"{row['precision']:.3f}"]
            cells += [f"{row['recall']:.3f}", f"{100 * row['confident']:.1f} %"]
            cells += [f"{row['fid']:.2f}"] if args.fid else []
            print("| " + " | ".join(cells) + " |", flush=True)
            if args.grids is not None:
                args.grids.mkdir(parents=True, exist_ok=True)
                save_grid(images[:100], args.grids / f"{Path(run).name}-{sampler}-t{tau:g}.png", 10, 2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
