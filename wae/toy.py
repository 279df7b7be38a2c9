"""Theorem 1, checked numerically on low-dimensional data with known structure (``wae toy``).

Theorem 1 of the paper: for a deterministic decoder G,

    W_c(P_X, P_G) = inf over encoders Q with Q_Z = P_Z of  E_{P_X} E_{Q(Z|X)} c(X, G(Z)),

so any encoder whose aggregate code distribution Q_Z equals the prior has a reconstruction term
that upper-bounds the transport cost between the data and the model's samples. We train small
MLP WAE-MMDs (deterministic encoder, d_z = 2, Gaussian prior, c(x, y) = ||x - y||^2) for a
sequence of lambdas and measure, on held-out data: the reconstruction term; how far Q_Z is from
P_Z (MMD^2 and the exact W_2^2 between codes and prior draws); the exact empirical transport cost
W_c(P_X, P_G) (POT's network simplex) and, as the floor of that estimator, the transport cost
between two independent held-out samples of the data.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Set
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm import tqdm

from .checkpoint import figure_bytes, remove_partial, write_atomic
from .config import (
    MAX_SEED,
    FloatRangeError,
    UserError,
    also_as,
    as_given,
    count_in,
    json_repr,
    number_text,
    plain_value,
    python_scalar,
    real_value,
    repeated,
    setting_problem,
)
from .costs import squared_l2
from .divergences import mmd_imq
from .priors import sample_prior

MANIFOLD_AMBIENT = 10  # the manifold data set: a curved 2-D surface in R^10


def ring_of_gaussians(
    n: int, generator: torch.Generator, modes: int = 8, radius: float = 2.0, std: float = 0.05
) -> Tensor:
    """``n`` points (n, 2) from an equal mixture of ``modes`` isotropic Gaussians (std ``std``)
    centred at equal angles 2 pi k / modes on the circle of radius ``radius``."""
    angle = torch.randint(modes, (n,), generator=generator).float() * (2.0 * math.pi / modes)
    centres = radius * torch.stack([angle.cos(), angle.sin()], dim=1)
    return centres + std * torch.randn(n, 2, generator=generator)


def swiss_roll(n: int, generator: torch.Generator, noise: float = 0.05) -> Tensor:
    """``n`` points (n, 2) of the 2-D swiss roll: t ~ U[1.5 pi, 4.5 pi], x = (t cos t, t sin t) / 5,
    plus isotropic Gaussian noise of std ``noise``. Without noise, ||x|| = t / 5."""
    t = 1.5 * math.pi * (1.0 + 2.0 * torch.rand(n, generator=generator))
    return torch.stack([t * t.cos(), t * t.sin()], dim=1) / 5.0 + noise * torch.randn(n, 2, generator=generator)


def manifold_basis() -> Tensor:
    """Orthonormal columns (10, 5) that place the manifold's 5 features in R^10 (fixed, seed 7)."""
    gaussian = torch.randn(MANIFOLD_AMBIENT, 5, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    return torch.linalg.qr(gaussian).Q.float()


def manifold_embed(t: Tensor) -> Tensor:
    """The smooth map R^2 -> R^10 of the manifold data set, t (n, 2) -> (n, 10): the features
    (t1, t2, sin(pi t1), sin(pi t2), t1 t2) times ``manifold_basis()``. The first two features are
    t itself, so ``x @ basis[:, :2]`` recovers t from a point x of the image."""
    features = torch.stack([t[:, 0], t[:, 1], (math.pi * t[:, 0]).sin(), (math.pi * t[:, 1]).sin(), t.prod(1)], 1)
    return features @ manifold_basis().T


def manifold(n: int, generator: torch.Generator) -> Tensor:
    """``n`` points (n, 10) on a 2-D manifold in R^10: ``manifold_embed(t)`` with t ~ U[-1, 1]^2."""
    return manifold_embed(2.0 * torch.rand(n, 2, generator=generator) - 1.0)


DATASETS: dict[str, Callable[[int, torch.Generator], Tensor]] = {
    "ring": ring_of_gaussians,
    "swiss-roll": swiss_roll,
    "manifold": manifold,
}


def ot_cost(x: Tensor, y: Tensor) -> float:
    """Exact optimal transport cost between the uniform empirical measures on x (n, d) and
    y (m, d) with c(x, y) = ||x - y||^2 (POT's ``emd2``, network simplex, float64)."""
    ot = pot()
    cost = ot.dist(x.double().numpy(), y.double().numpy(), metric="sqeuclidean")
    return float(ot.emd2(ot.unif(len(x)), ot.unif(len(y)), cost, numItermax=10_000_000))


def pot() -> Any:
    """The POT module, or a one-line :class:`UserError` saying how to install it."""
    try:
        import ot
    except ImportError:
        raise UserError("the exact transport cost needs POT: pip install 'wae[toy]' (or: pip install pot)") from None
    return ot


def _mlp(inputs: int, width: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(inputs, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, outputs)
    )


class ToyAutoEncoder(nn.Module):
    """A deterministic MLP encoder R^D -> R^{d_z} and decoder R^{d_z} -> R^D, two hidden layers each."""

    def __init__(self, data_dim: int, latent_dim: int = 2, width: int = 128) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.encoder = _mlp(data_dim, width, latent_dim)
        self.decoder = _mlp(latent_dim, width, data_dim)


@dataclass
class ToyConfig:
    """Every setting of ``wae toy``; the same config and seed give the same numbers on one machine."""

    datasets: tuple[str, ...] = tuple(DATASETS)
    lambdas: tuple[float, ...] = (0.0, 1.0, 10.0, 100.0, 1000.0)
    steps: int = 2000  # Adam steps per model
    batch_size: int = 128  # data points per step, and prior draws per MMD estimate
    lr: float = 1e-3  # x0.5 after 60 % of the steps, x0.2 more after 80 % (as the mnist-fast preset)
    width: int = 128  # hidden units of each of the two hidden layers
    latent_dim: int = 2
    n_train: int = 10_000  # fixed training set per data set
    n_eval: int = 2000  # held-out points (and prior samples) for every measurement
    seed: int = 0
    threads: int = 1  # the networks are too small to gain from more, and the machine is shared


# the least of each whole-number setting: two points for an MMD estimate or a transport cost
_TOY_LEAST = {
    "steps": 1,
    "batch_size": 2,
    "width": 1,
    "latent_dim": 1,
    "n_train": 2,
    "n_eval": 2,
    "seed": 0,
    "threads": 1,
}


_TOY_MOST = {"seed": MAX_SEED, "threads": 4096}  # numpy's seeds (the command's bound); others at 2^48


def _in_float_range(name: str, value: Any) -> Any:
    """:func:`plain_value` of ``value``; :class:`UserError` for a real number no float holds
    (numpy's ``longdouble("1e-4000")``, which ``float()`` reads as 0, or ``Fraction(10**400, 3)``)."""
    try:
        if not isinstance(python_scalar(value), int):  # (a whole number is checked against its bound)
            real_value(python_scalar(value))
    except FloatRangeError as err:
        raise UserError(f"{name}: {json_repr(value)} is {err}") from None
    return plain_value(value)


def checked_toy_config(cfg: ToyConfig, flags: bool = False) -> ToyConfig:
    """``cfg`` with its numbers as Python's (numpy's from a Python caller as the int or float
    they hold; -0.0 as 0.0), or :class:`UserError` naming the first that cannot work: a lambda
    out of loss.lam's bounds (NaN trained on silently; 1e30 overflowed Adam's squares), the
    learning rate out of train.lr's, a whole number below its least, a switch or text where a
    number is taken (``True`` trained as λ = 1), a list that names one item twice (its rows
    would repeat). ``flags``: the fields named as ``wae toy``'s flags (``--lambdas``)."""
    called = (lambda name: "--" + name.replace("_", "-")) if flags else (lambda name: name)
    lists = {}
    for name in ("datasets", "lambdas"):  # "ring" read letter by letter: "unknown data set 'r'"
        given = getattr(cfg, name)
        if isinstance(given, torch.Tensor):  # as numpy's arrays are: a 0-d one is its number
            given = given.tolist()
        unordered = isinstance(given, Set | Mapping)  # a set's order (the rows') is the hash seed's
        if isinstance(given, str | bytes) or not isinstance(given, Iterable) or getattr(given, "ndim", 1) == 0:
            raise UserError(f"{name} must be a list; got {json_repr(plain_value(given))}")
        if unordered:
            raise UserError(f"{name} must be a list (in the order of the rows); got a {type(given).__name__}")
        lists[name] = tuple(given)  # an iterator, read once
    datasets, given_lambdas = tuple(map(plain_value, lists["datasets"])), lists["lambdas"]  # np.str_ as str
    if not datasets or not given_lambdas:
        raise UserError("give at least one data set and one lambda")
    for name in datasets:
        if not isinstance(name, str) or name not in DATASETS:
            raise UserError(f"unknown data set {json_repr(name)}; choose from {', '.join(DATASETS)}")
    if twice := repeated(datasets):
        raise UserError(
            f"{called('datasets')} names {json_repr(twice[0])} twice: name each data set once (its rows would repeat)"
        )
    lambdas: list[float] = []
    for lam in given_lambdas:
        lam = _in_float_range("lambdas", lam)
        if isinstance(lam, bool) or not isinstance(lam, int | float):
            raise UserError(f"lambdas must be numbers; got {json_repr(lam)}")
        if isinstance(lam, int) and abs(lam) > 1e6:  # 10**400: float() overflows
            raise UserError(f"lambdas must be at most 1e+06; got {json_repr(lam)}")
        lam = float(lam) + 0.0
        if trouble := setting_problem("lam", lam):
            raise UserError(f"lambdas {trouble}")
        lambdas.append(lam)
    if twice := repeated(enumerate(lambdas), lambda pair: pair[1]):  # 1 and 1.0 alike
        (i, _), (j, _) = twice
        first, again = (as_given(given_lambdas[k]) for k in (i, j))
        raise UserError(
            f"{called('lambdas')} names {first} twice{also_as(first, again)}: give each lambda once (its rows would "
            "repeat)"
        )
    lr = _in_float_range("lr", cfg.lr)
    if isinstance(lr, bool) or not isinstance(lr, int | float):
        raise UserError(f"lr must be a number; got {json_repr(lr)}")
    if isinstance(lr, int) and abs(lr) > 1e6:  # 10**400: float() overflows
        raise UserError(f"lr must be at most 1e+06; got {json_repr(lr)}")
    if trouble := setting_problem("lr", float(lr)):
        raise UserError(f"lr {trouble}")
    whole: dict[str, Any] = {}
    for name, least in _TOY_LEAST.items():
        # (10**400 reached torch: "Overflow when unpacking long long")
        whole[name] = count_in(name, getattr(cfg, name), least, _TOY_MOST.get(name))
    return dataclasses.replace(cfg, datasets=datasets, lambdas=tuple(lambdas), lr=float(lr), **whole)


def train_toy(model: ToyAutoEncoder, data: Tensor, lam: float, cfg: ToyConfig, generator: torch.Generator) -> None:
    """WAE-MMD with the multi-scale IMQ kernel, prior N(0, I) and c = ||x - y||^2: minimise
    mean c(x, G(E(x))) + lam * MMD^2(Q_Z, P_Z) over batches of ``data`` (n, D) by Adam."""
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
    milestones = (int(0.6 * cfg.steps), int(0.8 * cfg.steps))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 1.0 if step < milestones[0] else 0.5 if step < milestones[1] else 0.1
    )
    for _ in range(cfg.steps):
        x = data[torch.randint(len(data), (cfg.batch_size,), generator=generator)]
        codes = model.encoder(x)
        loss = squared_l2(x, model.decoder(codes)).mean()
        if lam > 0:  # at lambda = 0 the penalty would only cost time
            prior = sample_prior("gaussian", cfg.batch_size, cfg.latent_dim, generator=generator)
            loss = loss + lam * mmd_imq(codes, prior)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()


@torch.no_grad()
def measure(model: ToyAutoEncoder, test: Tensor, generator: torch.Generator) -> tuple[dict[str, float], Tensor, Tensor]:
    """On held-out points ``test`` (n, D): the reconstruction term E c(X, G(E(X))); MMD^2 and the
    exact W_2^2 between the codes and n prior draws; W_c between the test points and n samples
    G(z), z ~ P_Z. Returns the figures, the samples (n, D) and the codes (n, d_z)."""
    n = len(test)
    codes = model.encoder(test)
    recon = squared_l2(test, model.decoder(codes)).mean().item()
    prior = sample_prior("gaussian", n, model.latent_dim, generator=generator)
    samples = model.decoder(sample_prior("gaussian", n, model.latent_dim, generator=generator))
    figures = {
        "recon": recon,
        "mmd2": mmd_imq(codes, prior).item(),
        "w_z": ot_cost(codes, prior),
        "w_c": ot_cost(test, samples),
    }
    return figures, samples, codes


def run_toy(cfg: ToyConfig, out: Path, command: str = "", progress: bool | None = None) -> list[dict[str, Any]]:
    """Train one WAE per (data set, lambda), measure each, and write ``out``/toy.md (the table),
    toy.png (the figure) and toy.json (config and rows). Returns the rows: dataset, lam, recon,
    mmd2, w_z (exact W_2^2 of codes and prior draws), w_z_floor (of two prior samples), w_c,
    w_c_floor (W_c between two held-out data samples), gap = recon - w_c, seconds.

    Each model starts from the same initialisation (per data set) and sees the same batches."""
    pot()  # fail before training, not after
    cfg = checked_toy_config(cfg)
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)  # made first, so that a folder that cannot be is refused before the work
    except OSError as err:
        raise UserError(f"cannot write the folder {out}: {err.strerror}") from None
    written: list[Path] = []
    try:
        return _toy_rows(cfg, out, command, progress, written)
    except BaseException:  # a Ctrl-C while training, or between the files: an empty folder was left
        remove_partial(out, created, written)
        raise


def _toy_rows(
    cfg: ToyConfig, out: Path, command: str, progress: bool | None, written: list[Path]
) -> list[dict[str, Any]]:
    """:func:`run_toy`'s work in ``out``, which exists; each file it begins to write is added to
    ``written`` first."""
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    shown: dict[tuple[str, float], tuple[Tensor, Tensor, Tensor]] = {}
    prior_rng = torch.Generator().manual_seed(cfg.seed + 3)
    prior, prior_reference = (sample_prior("gaussian", cfg.n_eval, cfg.latent_dim, generator=prior_rng) for _ in "ab")
    prior_floor = ot_cost(prior, prior_reference)
    bar = tqdm(
        total=len(cfg.datasets) * len(cfg.lambdas),
        desc="wae toy",
        unit="model",
        file=sys.stderr,
        disable=(not sys.stderr.isatty()) if progress is None else not progress,
    )
    try:
        for name in cfg.datasets:
            # seeded by name, so that a data set's numbers do not depend on which others run with it
            data_rng = torch.Generator().manual_seed(cfg.seed * 1000 + list(DATASETS).index(name))
            train, test, reference = (DATASETS[name](n, data_rng) for n in (cfg.n_train, cfg.n_eval, cfg.n_eval))
            floor = ot_cost(test, reference)
            for lam in cfg.lambdas:
                bar.set_postfix_str(f"{name}, lambda={number_text(lam)}")
                began = time.perf_counter()
                torch.manual_seed(cfg.seed)
                model = ToyAutoEncoder(train.shape[1], cfg.latent_dim, cfg.width)
                train_toy(model, train, lam, cfg, torch.Generator().manual_seed(cfg.seed + 1))
                figures, samples, codes = measure(model, test, torch.Generator().manual_seed(cfg.seed + 2))
                rows.append(
                    {
                        "dataset": name,
                        "lam": lam,
                        **figures,
                        "w_z_floor": prior_floor,
                        "w_c_floor": floor,
                        "gap": figures["recon"] - figures["w_c"],
                        "seconds": time.perf_counter() - began,
                    }
                )
                shown[name, lam] = test, samples, codes
                bar.update()
    finally:
        bar.close()
        torch.set_num_threads(threads)
    seconds = time.perf_counter() - start
    written += [out / "toy.json", out / "toy.md", out / "toy.png"]
    write_atomic(
        out / "toy.json",
        json.dumps({"config": dataclasses.asdict(cfg), "command": command, "seconds": seconds, "rows": rows}, indent=1)
        + "\n",
    )
    write_atomic(out / "toy.md", toy_table(rows, cfg, command, seconds))
    toy_figure(rows, shown, prior, cfg, out / "toy.png")
    return rows


def toy_table(rows: list[dict[str, Any]], cfg: ToyConfig, command: str, seconds: float) -> str:
    """The Markdown report: a header with the command and settings, then one row per model."""
    head = [
        "# Theorem 1, checked numerically",
        "",
        f"Command: `{command or 'run_toy(...)'}`  ",
        f"Settings: seed {cfg.seed}; {cfg.n_train} training points and two independent held-out samples of "
        f"{cfg.n_eval} points per data set; MLP encoder and decoder, two hidden layers of {cfg.width} ReLU units; "
        f"d_z = {cfg.latent_dim}, prior N(0, I), deterministic encoder, c(x, y) = ||x - y||^2; WAE-MMD "
        f"(multi-scale IMQ, unbiased); Adam lr {cfg.lr:g} (beta1 0.5, x0.5 after 60 % of the steps and x0.2 more "
        f"after 80 %), {cfg.steps} steps of batch {cfg.batch_size}; torch {torch.__version__}, {cfg.threads} "
        "thread(s).  ",
        f"Wall time: {seconds:.0f} s.",
        "",
        "recon = E ||x - G(E(x))||² on held-out x. W_c = exact OT cost (squared Euclidean) between the held-out "
        "points and as many samples G(z), z ~ P_Z; its floor = the same between two independent held-out samples "
        "of the data (the estimator's finite-sample bias at this size). MMD² = unbiased MMD²(Q_Z, P_Z) of the "
        "held-out codes against as many prior draws (can be slightly negative); W₂²(Q_Z, P_Z) = exact OT cost "
        "between the same two sets, floor (two prior samples) "
        + f"{rows[0]['w_z_floor']:.4f}."
        + " Theorem 1: if Q_Z = P_Z then recon ≥ W_c(P_X, P_G).",
        "",
        "| data | λ | recon | W_c(P_X, P_G) | recon − W_c | W_c floor | MMD²(Q_Z, P_Z) | W₂²(Q_Z, P_Z) | seconds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines = [
        f"| {r['dataset']} | {number_text(r['lam'])} | {r['recon']:.4f} | {r['w_c']:.4f} | {r['gap']:+.4f} | "
        f"{r['w_c_floor']:.4f} | {r['mmd2']:.4f} | {r['w_z']:.4f} | {r['seconds']:.1f} |"
        for r in rows
    ]
    return "\n".join(head + lines) + "\n"


def toy_figure(
    rows: list[dict[str, Any]],
    shown: dict[tuple[str, float], tuple[Tensor, Tensor, Tensor]],
    prior: Tensor,
    cfg: ToyConfig,
    path: Path,
) -> None:
    """One row per data set: recon and W_c against lambda (symmetric-log x, so that lambda = 0
    shows); held-out data against model samples for the smallest and the largest lambda; the
    codes of the held-out data against prior draws for the largest lambda. The 10-D manifold is
    drawn in its parameter coordinates t = x @ basis[:, :2]."""
    from .report import new_figure, plain_log_labels

    ends = sorted({min(cfg.lambdas), max(cfg.lambdas)})
    columns = 2 + len(ends)
    fig = new_figure(figsize=(4 * columns, 3.6 * len(cfg.datasets)))
    axes = fig.subplots(len(cfg.datasets), columns, squeeze=False)
    for (curve, *scatters, latent), name in zip(axes, cfg.datasets, strict=True):
        mine = [r for r in rows if r["dataset"] == name]
        lams = [r["lam"] for r in mine]
        curve.plot(lams, [r["recon"] for r in mine], "o-", label="recon E||x − G(E(x))||²")
        curve.plot(lams, [r["w_c"] for r in mine], "s-", label="W_c(P_X, P_G), exact OT")
        curve.axhline(mine[0]["w_c_floor"], color="grey", ls="--", lw=1, label="floor: OT(data, data)")
        curve.set_xscale("symlog", linthresh=1.0)
        curve.set_xlim(-0.3, max(2.0 * max(lams), 1.0))
        curve.set_xticks(lams, [number_text(lam) for lam in lams])
        curve.tick_params(axis="x", which="minor", bottom=False)
        curve.set_yscale("log")
        plain_log_labels(curve.yaxis)
        curve.set_xlabel("λ")
        curve.set_title(name)
        curve.legend(fontsize=7)
        for ax, lam in zip(scatters, ends, strict=True):
            test, samples, _ = shown[name, lam]
            projected = test.shape[1] != 2
            if projected:
                basis = manifold_basis()[:, :2]
                test, samples = test @ basis, samples @ basis
            ax.scatter(test[:, 0], test[:, 1], s=2, alpha=0.4, label="held-out data")
            ax.scatter(samples[:, 0], samples[:, 1], s=2, alpha=0.4, label="samples G(z), z ~ P_Z")
            ax.set_title(f"{name}, λ = {number_text(lam)}" + (", in coordinates t" if projected else ""))
            ax.set_aspect("equal", "datalim")
            ax.legend(fontsize=7, markerscale=4)
        codes = shown[name, ends[-1]][2]
        latent.scatter(prior[:, 0], prior[:, 1], s=2, alpha=0.4, color="grey", label="prior draws z ~ P_Z")
        latent.scatter(codes[:, 0], codes[:, 1], s=2, alpha=0.4, color="C2", label="codes E(x), held-out x")
        latent.set_title(f"{name}, λ = {number_text(ends[-1])}: Q_Z against P_Z")
        latent.set_aspect("equal", "datalim")
        latent.legend(fontsize=7, markerscale=4)
    fig.tight_layout()
    write_atomic(path, figure_bytes(fig, dpi=100))
