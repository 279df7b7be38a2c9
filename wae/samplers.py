"""Ex-post latent samplers: draw codes from a density fitted to Q_Z instead of from P_Z.

A WAE's aggregate posterior Q_Z never matches the prior exactly; decoding prior draws that fall
where Q_Z has no mass gives malformed samples. Ghosh et al. (2020) fit a Gaussian mixture to the
training codes after training and sample from it instead (published WAE MNIST FID 20.4 -> 9.4).
The mixture is fitted by scikit-learn's EM (``GaussianMixture``) and stored as plain arrays in
``RUN/sampler-gmm.npz`` (no pickle); sampling is done in torch, seeded.
"""

from __future__ import annotations

import inspect
import json
import math
import pickle
import statistics
import time
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from .checkpoint import is_fingerprint, load_tensors, npz_bytes, weights_fingerprint, write_atomic
from .config import (
    MAX_SEED,
    FileFault,
    UserError,
    check_memory,
    count_in,
    failure_reason,
    in_words,
    json_repr,
    plain_value,
    python_scalar,
    shell_path,
)
from .data import npz_array
from .priors import density_dtype

SAMPLERS = ("prior", "gmm", "flow", "vae")
MAX_CODE = 1e3  # a bound on the scale of codes a stored sampler may draw (mean and standard deviation)
GMM_FILE = "sampler-gmm.npz"


@dataclass
class GaussianMixture:
    """weights (k,), means (k, d), covariances (k, d, d), each a positive-definite matrix; held
    in float64, as scikit-learn fits them: the covariances of codes that fill a subspace only
    are too ill-conditioned for a float32 Cholesky factor."""

    weights: Tensor
    means: Tensor
    covariances: Tensor

    @property
    def dim(self) -> int:
        """The dimension d of the codes it draws."""
        return int(self.means.shape[1])

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n codes (n, d), float32: a component by its weight, then its Gaussian (in float64).
        :class:`UserError` for n that is not a whole number from 0 (:func:`sample_count`)."""
        n = sample_count(n, self.dim)
        if n == 0:  # (torch.multinomial draws no fewer than 1)
            return torch.zeros(0, self.dim)
        component = torch.multinomial(self.weights.double(), n, replacement=True, generator=generator)
        factors = torch.linalg.cholesky(self.covariances.double())
        eps = torch.randn(n, self.means.shape[1], generator=generator, dtype=torch.float64)
        return (self.means.double()[component] + torch.einsum("nij,nj->ni", factors[component], eps)).float()

    def log_density(self, z: Tensor) -> Tensor:
        """log q(z) of codes z (n, d) under the mixture, (n,), in z's dtype (float32 for a narrower
        one or integer codes: int64 codes' log-densities were cut to whole numbers)."""
        dist = torch.distributions.MultivariateNormal(self.means.double(), covariance_matrix=self.covariances.double())
        log_q = torch.logsumexp(dist.log_prob(z.double().unsqueeze(1)) + self.weights.double().log(), dim=1)
        return log_q.to(density_dtype(z))


def sample_count(n: Any, dim: int) -> int:
    """The number of codes a sampler's ``sample(n)`` draws, as an int: a whole number (numpy's and
    torch's 0-d integers too, not a bool or 2.0) from 0 to what fits in the memory available now
    (3 float32 copies of (n, d)); :class:`UserError` otherwise."""
    n = count_in("n", n, 0)
    if n * dim * 12 > 2**30:
        check_memory(n * dim * 12, f"sample(n={n})")
    return n


def fit_gmm(
    codes: Tensor, components: int = 10, covariance: str = "full", seed: int = 0, max_iter: int = 200
) -> GaussianMixture:
    """Fit a Gaussian mixture to codes (n, d) by EM (scikit-learn), k-means initialised, seeded.
    ``covariance``: "full" or "diag" (stored as full matrices either way). :class:`UserError` for
    codes :func:`fit_sampler` refuses, ``components`` not a whole number from 1 to 2^31,
    ``seed`` outside [0, 2^32 - 1], ``max_iter`` not one from 1 to 100,000."""
    from sklearn.mixture import GaussianMixture as SkGaussianMixture

    codes = _checked_codes(codes)
    components, seed = count_in("components", components, 1, 2**31), count_in("seed", seed, 0, MAX_SEED)
    max_iter = count_in("max_iter", max_iter, 1, 100_000)
    if covariance not in ("full", "diag"):
        raise UserError(f"covariance must be full or diag; got {covariance}")
    if len(codes) < max(components, 2):  # scikit-learn fits no mixture to one code
        raise UserError(f"cannot fit {components} components to {len(codes)} codes")
    model = SkGaussianMixture(
        n_components=components, covariance_type=covariance, random_state=seed, max_iter=max_iter, reg_covar=1e-6
    )
    model.fit(codes.double().numpy())
    covariances = model.covariances_
    if covariance == "diag":
        covariances = np.stack([np.diag(c) for c in covariances])
    return GaussianMixture(
        torch.from_numpy(model.weights_).double(),
        torch.from_numpy(model.means_).double(),
        torch.from_numpy(np.asarray(covariances)).double(),
    )


def save_gmm(mixture: GaussianMixture, path: Path, fitted_to: str = "", fit: dict[str, Any] | None = None) -> None:
    """Write the mixture as plain arrays (atomically), with the fingerprint of the weights whose
    codes it was fitted to (:func:`~wae.checkpoint.weights_fingerprint`; empty: not known) and
    the settings it was fitted with (:func:`fit_settings`, as JSON; read by :func:`recorded_fit`)."""
    arrays = {name: getattr(mixture, name).numpy() for name in ("weights", "means", "covariances")}
    if fitted_to:  # not known: no entry (an empty one reads as damage)
        arrays["fitted_to"] = np.array(fitted_to)
    if fit:
        arrays["fit"] = np.array(json.dumps(fit))
    write_atomic(path, npz_bytes(**arrays))


def fit_settings(
    kind: str,
    components: int | str = 10,
    covariance: str = "full",
    transforms: int = 3,
    hidden: int = 128,
    seed: int = 0,
) -> dict[str, Any]:
    """The keyword arguments of :func:`fit_sampler` that a sampler of ``kind`` uses, with these
    values (the defaults: those of ``wae fit-sampler`` and of the fit at the end of training)."""
    given = {"components": components, "covariance": covariance, "transforms": transforms, "hidden": hidden}
    used = {"gmm": ("components", "covariance"), "flow": ("transforms", "hidden"), "vae": ("hidden",)}[kind]
    return {**{k: given[k] for k in used}, "seed": seed}


def kind_settings(kind: str, given: Mapping[str, Any], flag: str = "") -> dict[str, Any]:
    """The settings of :func:`fit_sampler` for a sampler of ``kind`` (:func:`fit_settings`):
    those in ``given`` (a name to a value, None where not given; numpy's and torch's scalars as
    the numbers they hold) with the defaults for the rest. :class:`UserError` for an unknown
    kind or setting, naming the first setting given that ``kind`` does not use (``components``
    of a flow was ignored without a word, session 54) as ``{flag}{name}`` (``--components``
    from the command line), and the first value out of what ``wae fit-sampler`` accepts."""
    kind = python_scalar(kind)  # np.array("gmm") as "gmm"
    if not isinstance(kind, str) or kind not in SAMPLER_FILES:
        raise UserError(f"unknown ex-post sampler {json_repr(kind)}; choose gmm, flow or vae")
    if not isinstance(given, Mapping):
        raise UserError(f"the settings of an ex-post sampler must be a dict; got {type(given).__name__}")
    defaults = inspect.signature(fit_settings).parameters
    if unknown := [name for name in given if name not in _FIT_RULES]:
        raise UserError(
            f"unknown setting of an ex-post sampler {json_repr(unknown[0])}; choose {', '.join(_FIT_RULES)}"
        )
    used = fit_settings(kind)
    for name, value in given.items():
        if value is not None and name not in used:
            takes = ", ".join(flag + k for k in used if k != "seed")
            of = f"--kind {kind}" if flag else f"the {kind} sampler"
            raise UserError(f"{flag}{name} is not a setting of {of} (its settings: {takes}); leave it out")
    # numpy's and torch's scalars as what they hold, an int subclass (an IntEnum) as its int
    chosen = {k: defaults[k].default if v is None else plain_value(v) for k, v in given.items()}
    for name, value in chosen.items():
        holds, wanted = _FIT_RULES[name]
        try:
            fits = bool(holds(value))
        except (ValueError, TypeError):  # an array of several values has no one truth
            fits = False
        if not fits:
            raise UserError(f"{flag}{name} must be {wanted}; got {json_repr(value)}")
    return fit_settings(kind, **chosen)


MAX_TRANSFORMS, MAX_HIDDEN = 64, 4096  # flow sizes beyond any use (and beyond memory, soon)


def _count(value: Any, top: int) -> bool:
    return type(value) is int and 1 <= value <= top


# each setting of an ex-post sampler's fit: whether a value is one wae fit-sampler accepts (and
# the loaders read back), and those values in words
_FIT_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "components": (lambda v: v == "auto" or _count(v, 2**31), "a whole number from 1, or auto"),
    "covariance": (lambda v: v in ("full", "diag"), "full or diag"),
    "transforms": (lambda v: _count(v, MAX_TRANSFORMS), f"a whole number from 1 to {MAX_TRANSFORMS}"),
    "hidden": (lambda v: _count(v, MAX_HIDDEN), f"a whole number from 1 to {MAX_HIDDEN}"),
    "seed": (lambda v: type(v) is int and 0 <= v <= MAX_SEED, f"a whole number from 0 to {MAX_SEED}"),
}


def fit_flags(fit: dict[str, Any]) -> str:
    """The ``wae fit-sampler`` options that give the settings ``fit`` (``--components auto --seed 0``)."""
    return " ".join(f"--{k} {v}" for k, v in fit.items())


def _valid_fit(kind: str, fit: Any) -> bool:
    """Whether ``fit`` is a settings record :func:`fit_settings` could have made for ``kind``,
    each value within what ``wae fit-sampler`` accepts and the loaders read back."""
    if not isinstance(fit, dict) or set(fit) != set(fit_settings(kind)):
        return False
    return all(_FIT_RULES[k][0](v) for k, v in fit.items())


def recorded_fit(path: Path, kind: str, say: Any = None) -> dict[str, Any]:
    """The settings (:func:`fit_settings`) that the sampler file of ``kind`` at ``path`` records it
    was fitted with, so that a sampler fitted again to new codes (after training went on) is
    fitted as it was: ``wae fit-sampler --components auto`` stays auto. {} when the file is
    missing or unreadable, records none (written before the record existed) or records values
    out of range: the defaults then apply, and ``say`` (when given) is told of a record it
    could not use."""
    if not path.is_file():
        return {}
    fit: Any = None
    try:
        if kind == "gmm":
            with np.load(path, allow_pickle=False) as f:
                if "fit" not in f.files:
                    return {}
                entry = npz_array(f, "fit", path)
                text: Any = str(entry) if entry.dtype.kind == "U" and entry.ndim == 0 else None
        else:
            text = load_tensors(path).get("fit")
            if text is None:
                return {}
        fit = json.loads(text) if isinstance(text, str) and len(text) <= 1000 else None
    except Exception:  # a damaged or crafted file: what the loaders refuse, and no settings
        pass
    if isinstance(fit, dict) and _valid_fit(kind, fit):
        return fit
    if say is not None:
        say(f"{path.name}: its record of the settings it was fitted with is damaged or out of range: the defaults")
    return {}


def _not_a_sampler_file(path: Path, kind: str) -> UserError:
    """The error for a sampler path that is not a regular file: missing (fit one), or taken by
    something else (a folder, a FIFO: the fit could not write there either)."""
    again = refit_command(path.parent, kind)
    if path.exists():  # a dangling link is missing: the fit replaces the link
        return UserError(f"{path} is not a sampler file (it exists and is not a regular file): remove it, then {again}")
    return UserError(f"{path} not found; fit one first: {again}")


def load_gmm(path: Path) -> GaussianMixture:
    """Read a mixture written by ``save_gmm``; a clear error when it is missing or damaged."""
    if not path.is_file():
        raise _not_a_sampler_file(path, "gmm")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):  # a plain .npy under the name
            raise FileFault("one .npy array, not an .npz archive of arrays")
        with loaded as f:
            arrays = (npz_array(f, k, path) for k in ("weights", "means", "covariances"))  # sizes checked first
            mixture = GaussianMixture(*(torch.from_numpy(a).double() for a in arrays))
    except UserError:  # a header npz_array refused: its own message
        raise
    except (OSError, ValueError, KeyError, EOFError, TypeError, zipfile.BadZipFile) as err:
        raise UserError(f"{path} is not a readable sampler file ({failure_reason(err)})") from None
    if mixture.means.ndim != 2:
        raise UserError(f"{path}: arrays of inconsistent shapes")
    k, d = mixture.means.shape
    if mixture.weights.shape != (k,) or mixture.covariances.shape != (k, d, d):
        raise UserError(f"{path}: arrays of inconsistent shapes")
    check_mixture(mixture, str(path))
    return mixture


def check_mixture(mixture: GaussianMixture, where: str) -> None:
    """:class:`UserError` unless the weights are finite, >= 0 and sum to 1, the means finite and
    every covariance symmetric positive definite (its float64 Cholesky factor exists)."""
    weights, means, covariances = mixture.weights.double(), mixture.means.double(), mixture.covariances.double()
    if len(weights) == 0 or means.shape[1] == 0:
        raise UserError(f"{where}: the mixture has no components or no dimensions")
    if not torch.isfinite(weights).all() or (weights < 0).any() or abs(weights.sum().item() - 1) > 1e-4:
        raise UserError(f"{where}: mixture weights must be finite, >= 0 and sum to 1")
    if not torch.isfinite(means).all():
        raise UserError(f"{where}: mixture means hold NaN or infinite values")
    if not torch.isfinite(covariances).all():
        raise UserError(f"{where}: mixture covariances hold NaN or infinite values")
    # codes live near the prior's scale; draws 10^3 away decode to saturated or blank images
    if means.abs().max() > MAX_CODE or covariances.diagonal(dim1=1, dim2=2).max() > MAX_CODE**2:
        raise UserError(f"{where}: mixture means or variances beyond |z| = {MAX_CODE:g}, far outside any code space")
    scale = covariances.abs().amax(dim=(1, 2), keepdim=True).clamp_min(1e-300)
    if ((covariances - covariances.transpose(1, 2)).abs() > 1e-6 * scale).any():
        raise UserError(f"{where}: mixture covariances are not symmetric")
    if (torch.linalg.cholesky_ex(covariances).info != 0).any():
        raise UserError(f"{where}: a mixture covariance is not positive definite")


def held_out_split(codes: Tensor, holdout: float, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Codes (n, d) shuffled by ``generator`` into (the first 1 - holdout, the rest held out)."""
    order = torch.randperm(len(codes), generator=generator)
    cut = int(len(codes) * (1 - holdout))
    return codes[order[:cut]], codes[order[cut:]]


def select_components(
    codes: Tensor,
    candidates: tuple[int, ...] = (5, 10, 20, 40),
    covariance: str = "full",
    seed: int = 0,
    holdout: float = 0.1,
) -> tuple[int, dict[int, float]]:
    """The number of mixture components with the highest mean log-likelihood of held-out codes:
    each candidate k is fitted to a seeded random (1 - holdout) of codes (n, d) and scored on
    the rest. Returns (best k, {k: held-out mean log-likelihood}); :class:`UserError` when
    there are too few codes for the largest candidate."""
    fit_part, held_out = held_out_split(codes, holdout, torch.Generator().manual_seed(seed))
    if len(held_out) < 1 or len(fit_part) < 2 * max(candidates):
        raise UserError(f"{len(codes)} codes are too few to choose among {in_words(candidates, 'and')} components")
    scores = {k: fit_gmm(fit_part, k, covariance, seed).log_density(held_out.float()).mean().item() for k in candidates}
    return max(scores, key=lambda k: scores[k]), scores


FLOW_FILE = "sampler-flow.pt"
MAX_VAE_DEPTH = 64  # hidden layers of a second-stage VAE's networks, beyond any use


def _zuko() -> Any:
    """The zuko package, which the flow sampler is built with; :class:`UserError` saying how to
    install it when it is missing."""
    try:
        import zuko
    except ImportError:
        raise UserError("the flow sampler needs zuko: pip install 'wae[flow]' (or pip install zuko)") from None
    return zuko


def check_available(kind: str) -> None:
    """Raise :class:`UserError` when the ex-post sampler ``kind`` cannot be fitted here (a flow
    without zuko), so that a run that fits one at its end (``train.fit_sampler``) is refused
    before it trains rather than after."""
    if kind == "flow":
        _zuko()


class FlowSampler(torch.nn.Module):
    """A neural spline flow (Durkan et al., NeurIPS 2019; zuko's ``NSF``) on standardised codes:
    z = mean + std * T^-1(u), u ~ N(0, I). ``transforms`` autoregressive rational-quadratic
    spline layers of ``bins`` bins, each conditioned by an MLP of two ``hidden``-unit layers."""

    mean: Tensor
    std: Tensor
    flow: Any  # zuko.flows.NSF: calling it gives the distribution

    def __init__(self, dim: int, transforms: int = 3, hidden: int = 128, bins: int = 8):
        super().__init__()
        zuko = _zuko()
        self.settings = {"dim": dim, "transforms": transforms, "hidden": hidden, "bins": bins}
        self.flow = zuko.flows.NSF(dim, bins=bins, transforms=transforms, hidden_features=(hidden, hidden))
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    @property
    def dim(self) -> int:
        """The dimension d of the codes it draws."""
        return int(self.settings["dim"])

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n codes (n, d), the base noise drawn from ``generator``; :class:`UserError` for n as
        :func:`sample_count` refuses it."""
        u = torch.randn(sample_count(n, self.settings["dim"]), self.settings["dim"], generator=generator)
        return self.mean + self.std * self.flow().transform.inv(u)

    def log_density(self, z: Tensor) -> Tensor:
        """log q(z) of codes z (n, d) under the flow, (n,) (the standardisation's Jacobian included)."""
        # float32 through the flow's layers (float64 codes were a dtype error), none for no codes
        # (zuko's reshape failed), returned in z's dtype (float32 for a narrower one)
        if len(z) == 0:
            return torch.zeros(0, dtype=density_dtype(z))
        log_q = self.flow().log_prob((z.float() - self.mean) / self.std) - self.std.log().sum()
        return log_q.to(density_dtype(z))

    def loss(self, z: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The negative log-likelihood of codes z (n, d), (n,): what fitting minimises."""
        return -self.log_density(z)


@dataclass(frozen=True)
class LikelihoodFit:
    """How a neural sampler is fitted to codes by :func:`_fit_by_likelihood`: Adam at ``lr`` on
    minibatches of ``batch_size`` for at most ``epochs`` epochs, seeded by ``seed``; the weights
    of the epoch with the best mean loss on a held-out ``holdout`` fraction of the codes are
    kept, and fitting stops after ``patience`` epochs without a gain; ``progress``: a bar."""

    seed: int = 0
    epochs: int = 30
    batch_size: int = 512
    lr: float = 1e-3
    holdout: float = 0.1
    patience: int = 3
    progress: bool = False


FLOW_FIT = LikelihoodFit()
VAE_FIT = LikelihoodFit(epochs=60, batch_size=256, patience=5)


def fit_flow(
    codes: Tensor, transforms: int = 3, hidden: int = 128, bins: int = 8, fit: LikelihoodFit = FLOW_FIT
) -> FlowSampler:
    """Fit a :class:`FlowSampler` to codes (n, d) by maximum likelihood as ``fit`` says (Adam,
    seeded, early stopping on held-out codes). Needs the ``zuko`` package (``pip install
    'wae[flow]'``); :class:`UserError` when it is missing or for sizes out of range."""
    if not (1 <= transforms <= MAX_TRANSFORMS and 1 <= hidden <= MAX_HIDDEN):
        raise UserError(f"a flow needs 1 to {MAX_TRANSFORMS} transforms and 1 to {MAX_HIDDEN} hidden units")
    with torch.random.fork_rng(devices=[]):  # seeded here; the caller's generator is given back
        torch.manual_seed(fit.seed)
        sampler = FlowSampler(codes.shape[1], transforms, hidden, bins)
        return _fit_by_likelihood(sampler, sampler.flow.parameters(), codes, "flow", fit)


def _likelihood_step(sampler: Any, optimizer: torch.optim.Optimizer, codes: Tensor, generator: torch.Generator) -> None:
    """One optimiser step of a neural sampler's fit on a minibatch of codes (n, d): its mean
    loss (:func:`_fit_by_likelihood`; :func:`fit_seconds` times the same step)."""
    loss = sampler.loss(codes, generator).mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def _fit_by_likelihood(sampler: Any, parameters: Any, codes: Tensor, what: str, fit: LikelihoodFit) -> Any:
    """The fitting loop of the neural samplers: ``sampler`` (with ``mean``/``std`` buffers that
    standardise the codes and a ``loss(codes, generator)`` of one value per code, to minimise)
    trained by Adam on a seeded (1 - holdout) of codes (n, d); the weights of the epoch with the
    lowest mean loss on the held-out rest are kept, and training stops after ``patience``
    epochs without a gain (all of them ``fit``'s)."""
    from tqdm import tqdm

    codes = codes.float()
    generator = torch.Generator().manual_seed(fit.seed)
    train, held_out = held_out_split(codes, fit.holdout, generator)
    if len(held_out) < 1 or len(train) < 2:
        raise UserError(f"{len(codes)} codes are too few to fit a {what} (it needs a training and a held-out part)")
    batch_size = min(fit.batch_size, len(train))
    sampler.mean.copy_(train.mean(0))
    sampler.std.copy_(train.std(0).clamp_min(1e-6))
    optimizer = torch.optim.Adam(parameters, lr=fit.lr)
    best, best_state, waited = float("inf"), None, 0
    for _ in tqdm(range(fit.epochs), desc=what, unit="epoch", disable=not fit.progress):
        sampler.train()
        for index in torch.randperm(len(train), generator=generator).split(batch_size):
            _likelihood_step(sampler, optimizer, train[index], generator)
        sampler.eval()
        with torch.no_grad():
            score = sampler.loss(held_out, torch.Generator().manual_seed(fit.seed)).mean().item()
        if score < best:
            best, best_state, waited = score, {k: v.clone() for k, v in sampler.state_dict().items()}, 0
        else:
            waited += 1
            if waited >= fit.patience:
                break
    assert best_state is not None
    sampler.load_state_dict(best_state)
    return sampler.eval()


def save_flow(sampler: FlowSampler, path: Path) -> None:
    """Write the flow's settings and weights as plain tensors (atomically; read back with
    ``weights_only`` loading, so the file cannot run code)."""
    _save_module(sampler, path)


def save_vae(sampler: SecondStageVAE, path: Path) -> None:
    """Write the second-stage VAE's settings and weights as plain tensors (as :func:`save_flow`)."""
    _save_module(sampler, path)


def load_vae(path: Path) -> SecondStageVAE:
    """Read a second-stage VAE written by :func:`save_vae`; a clear error when it is missing or damaged."""
    return _load_module(path, SecondStageVAE, {"dim": 65536, "hidden": MAX_HIDDEN, "depth": MAX_VAE_DEPTH}, "vae")


def load_flow(path: Path) -> FlowSampler:
    """Read a flow written by :func:`save_flow`; a clear error when it is missing or damaged."""
    limits = {"dim": 65536, "transforms": MAX_TRANSFORMS, "hidden": MAX_HIDDEN, "bins": 256}
    return _load_module(path, FlowSampler, limits, "flow")


def _load_module(path: Path, cls: Any, limits: dict[str, int], kind: str) -> Any:
    """A neural sampler ``cls`` written by :func:`_save_module`, its integer settings within
    ``limits``; :class:`UserError` when the file is missing, damaged, crafted (settings out of
    range, weights that do not fit, non-finite values) or its standardisation is not that of
    codes."""
    if not path.is_file():
        raise _not_a_sampler_file(path, kind)
    try:
        payload = load_tensors(path)
        if not isinstance(payload, dict) or payload.get("format") != 1:
            raise FileFault(f"not a {kind} sampler file that wae wrote (its format is not 1)")
        settings = {k: payload["settings"][k] for k in limits}
        if not all(type(v) is int and 1 <= v <= limits[k] for k, v in settings.items()):
            raise ValueError("settings out of range")
        sampler = cls(**settings)
        sampler.load_state_dict(payload["state"])
    except UserError:
        raise
    except Exception as err:  # a damaged or crafted file: any failure to rebuild it is the file's fault
        raise UserError(f"{path} is not a readable {kind} sampler file ({failure_reason(err)})") from None
    if not all(torch.isfinite(t).all() for t in sampler.state_dict().values()):
        raise UserError(f"{path} holds non-finite weights")
    if not ((sampler.std > 0).all() and sampler.std.max() <= MAX_CODE and sampler.mean.abs().max() <= MAX_CODE):
        raise UserError(f"{path}: the {kind}'s standardisation is not that of codes (std <= 0, or beyond {MAX_CODE:g})")
    return sampler.eval()


VAE_FILE = "sampler-vae.pt"


class SecondStageVAE(torch.nn.Module):
    """The second stage of Dai & Wipf's two-stage VAE (ICLR 2019, "Diagnosing and enhancing VAE
    models", section 4), fitted to a WAE's codes: a VAE on standardised codes
    u = (z - mean) / std in R^d with a latent v in R^d, MLP encoder u -> (mu, log sigma^2) and
    decoder v -> u_hat of ``depth`` layers of ``hidden`` units, and a Gaussian likelihood
    N(u; u_hat, gamma^2 I) whose scalar gamma is learned (their key choice). Samples:
    v ~ N(0, I), z = mean + std * (u_hat(v) + gamma eps), the density it was fitted as (they
    decode to the mean, which is the same as gamma goes to 0)."""

    mean: Tensor
    std: Tensor

    def __init__(self, dim: int, hidden: int = 128, depth: int = 2):
        super().__init__()
        self.settings = {"dim": dim, "hidden": hidden, "depth": depth}

        def mlp(width_out: int) -> torch.nn.Sequential:
            widths = [dim] + [hidden] * depth
            layers: list[torch.nn.Module] = []
            for a, b in zip(widths, widths[1:], strict=False):
                layers += [torch.nn.Linear(a, b), torch.nn.SiLU()]
            return torch.nn.Sequential(*layers, torch.nn.Linear(widths[-1], width_out))

        self.encoder, self.decoder = mlp(2 * dim), mlp(dim)
        self.log_gamma = torch.nn.Parameter(torch.zeros(()))
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    @property
    def dim(self) -> int:
        """The dimension d of the codes it draws."""
        return int(self.settings["dim"])

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n codes (n, d) drawn from ``generator``: v ~ N(0, I), u ~ N(u_hat(v), gamma^2 I);
        :class:`UserError` for n as :func:`sample_count` refuses it."""
        n = sample_count(n, self.dim)
        v = torch.randn(n, self.dim, generator=generator)
        noise = self.log_gamma.clamp(-8.0, 4.0).exp() * torch.randn(n, self.dim, generator=generator)
        return self.mean + self.std * (self.decoder(v) + noise)

    def _log_weights(self, z: Tensor, draws: int, generator: torch.Generator | None) -> Tensor:
        """log p(u | v_k) + log p(v_k) - log q(v_k | u) for ``draws`` v_k ~ q(v | u): (draws, n)."""
        u = (z.float() - self.mean) / self.std
        mu, log_var = self.encoder(u).chunk(2, dim=-1)
        eps = torch.randn(draws, *mu.shape, generator=generator)
        v = mu + (0.5 * log_var).exp() * eps
        log_gamma = self.log_gamma.clamp(-8.0, 4.0)
        log_lik = torch.distributions.Normal(self.decoder(v), log_gamma.exp()).log_prob(u).sum(-1)
        log_prior = torch.distributions.Normal(0.0, 1.0).log_prob(v).sum(-1)
        log_q = (-0.5 * eps.square() - 0.5 * log_var - 0.5 * math.log(2 * math.pi)).sum(-1)
        return log_lik + log_prior - log_q

    def loss(self, z: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The negative evidence lower bound of codes z (n, d) in the standardised space, (n,),
        one draw of v each: what fitting minimises."""
        return -self._log_weights(z, 1, generator)[0]

    @torch.no_grad()
    def log_density(self, z: Tensor, draws: int = 64) -> Tensor:
        """log q(z) of codes z (n, d), (n,): the importance-weighted estimate of ``draws`` samples
        of v (Burda et al., ICLR 2016; a lower bound that tightens as ``draws`` grows, seeded),
        the standardisation's Jacobian included; in z's dtype (float32 for a narrower one).
        :class:`UserError` for ``draws`` not a whole number from 1 to 100,000."""
        draws = count_in("draws", draws, 1, 100_000)
        log_w = self._log_weights(z, draws, torch.Generator().manual_seed(0))
        return (torch.logsumexp(log_w, 0) - math.log(draws) - self.std.log().sum()).to(density_dtype(z))


def fit_vae(codes: Tensor, hidden: int = 128, depth: int = 2, fit: LikelihoodFit = VAE_FIT) -> SecondStageVAE:
    """Fit a :class:`SecondStageVAE` to codes (n, d) by maximising the evidence lower bound as
    ``fit`` says (Adam, seeded, keeping the weights of the epoch with the best held-out bound);
    :class:`UserError` for sizes out of range."""
    if not (1 <= hidden <= MAX_HIDDEN and 1 <= depth <= MAX_VAE_DEPTH):
        raise UserError(f"a second-stage VAE needs 1 to {MAX_VAE_DEPTH} layers of 1 to {MAX_HIDDEN} units")
    with torch.random.fork_rng(devices=[]):  # seeded here; the caller's generator is given back
        torch.manual_seed(fit.seed)
        sampler = SecondStageVAE(codes.shape[1], hidden, depth)
        return _fit_by_likelihood(sampler, sampler.parameters(), codes, "second-stage VAE", fit)


GMM_PROBE_CODES = 2000  # codes a mixture's probe fit takes: a fraction of a second, scaled up
# the mixture's probe fit is timed this many times and the least taken (the neural samplers'
# steps by their median): a moment of other work on the machine during one 0.1 s fit, scaled
# by codes / GMM_PROBE_CODES, once kept back 117 s of a 9.5-minute budget for a 3 s fit
PROBE_REPEATS = 3


def fit_seconds(kind: str, codes: int, dim: int, fit: dict[str, Any] | None = None, probe: int = 20) -> float:
    """Seconds that fitting the ex-post sampler ``kind`` to ``codes`` codes of ``dim``
    dimensions with the settings ``fit`` (:func:`fit_settings`'s; None: the defaults) may take
    on this machine, measured by a probe on random codes: for the second-stage VAE and the
    flow, ``probe`` timed optimiser steps at the fit's batch size (after three untimed), their
    median scaled to every step of every epoch its fit may train (early stopping may end it sooner; the
    second-stage VAE's fit of 60 epochs on a WAE's codes did not stop early in the runs of
    docs/results.md) and to the held-out scoring after each; for the Gaussian mixture, the same
    fit (its K, or ``auto``'s candidates) on GMM_PROBE_CODES random codes, the least of
    PROBE_REPEATS fits scaled by the codes (EM and k-means are linear in them), after an
    untimed small fit (scikit-learn's import). Medians and least times: a moment of other work
    on the machine is not scaled up with the probe.
    What a time budget keeps back for the fit (``train.fit_sampler``), beyond the encoding of
    the codes. 0.0 for none, for too few codes and for a flow without zuko (whose fit is
    refused before training: :func:`check_available`). Leaves the global random state as it
    was."""
    if kind not in SAMPLER_FILES or codes < 2 or dim < 1:
        return 0.0
    settings = {**fit_settings(kind), **(fit or {})}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        if kind == "gmm":
            n = min(codes, GMM_PROBE_CODES)
            fit_gmm(torch.randn(50, dim), 2)  # untimed: scikit-learn's import and first call
            z, fits = torch.randn(n, dim), []
            for _ in range(PROBE_REPEATS):
                start = time.perf_counter()
                try:
                    fit_sampler("gmm", z, settings["components"], settings["covariance"])
                except UserError:  # fewer codes than components: the fit itself is refused, or skipped
                    return 0.0
                fits.append(time.perf_counter() - start)
            return min(fits) * codes / n
        likelihood = VAE_FIT if kind == "vae" else FLOW_FIT
        held_out = max(1, round(codes * likelihood.holdout))
        batch = max(1, min(likelihood.batch_size, codes - held_out))
        hidden = int(settings["hidden"])
        try:
            sampler: Any = (
                SecondStageVAE(dim, hidden) if kind == "vae" else FlowSampler(dim, int(settings["transforms"]), hidden)
            )
        except UserError:
            return 0.0
        optimizer = torch.optim.Adam(sampler.parameters(), lr=likelihood.lr)
        z, generator = torch.randn(batch, dim), torch.Generator().manual_seed(0)
        steps_s = []
        for step in range(max(1, probe) + 3):
            start = time.perf_counter()
            _likelihood_step(sampler, optimizer, z, generator)  # the fit's own step
            if step >= 3:
                steps_s.append(time.perf_counter() - start)
        step_s = statistics.median(steps_s)
    steps = likelihood.epochs * -(-(codes - held_out) // batch)
    return step_s * steps * (1.0 + likelihood.holdout)  # a forward pass over the held-out codes each epoch, roughly


def _save_module(sampler: Any, path: Path, fitted_to: str = "", fit: dict[str, Any] | None = None) -> None:
    """Write a neural sampler's settings and weights as plain tensors (atomically; read back
    with ``weights_only`` loading, so the file cannot run code), with the fingerprint of the
    weights whose codes it was fitted to and the settings of the fit (JSON, :func:`recorded_fit`)."""
    import io

    buffer = io.BytesIO()
    payload = {"format": 1, "settings": dict(sampler.settings), "state": sampler.state_dict()}
    if fitted_to:  # not known: no entry (an empty one reads as damage)
        payload["fitted_to"] = fitted_to
    if fit:
        payload["fit"] = json.dumps(fit)
    torch.save(payload, buffer)
    write_atomic(path, buffer.getvalue())


class LatentSampler(Protocol):
    """What an ex-post sampler offers: codes drawn from a density fitted to Q_Z."""

    @property
    def dim(self) -> int: ...

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor: ...

    def log_density(self, z: Tensor) -> Tensor: ...


SAMPLER_FILES = {"gmm": GMM_FILE, "flow": FLOW_FILE, "vae": VAE_FILE}


def load_sampler(run: Path, kind: str, model: torch.nn.Module | None = None) -> LatentSampler | None:
    """The ex-post sampler ``kind`` ("gmm", "flow" or "vae") that ``wae fit-sampler`` wrote into
    the run folder ``run`` (or beside the checkpoint file ``run``); None for "prior".

    With ``model`` (the run's auto-encoder as loaded from its checkpoint), :class:`UserError`
    when the sampler was fitted to the codes of other weights: the run was trained further (a
    resume) or its checkpoint replaced after the fit, so its codes are no longer the sampler's.
    Files written before the fingerprint existed carry none and are not checked."""
    if kind == "prior":
        return None
    if kind not in SAMPLER_FILES:
        raise UserError(f"unknown sampler '{kind}'; choose one of {', '.join(SAMPLERS)}")
    path = run_folder(run) / SAMPLER_FILES[kind]
    sampler: LatentSampler
    if kind == "flow":
        sampler = load_flow(path)
    elif kind == "vae":
        sampler = load_vae(path)
    else:
        sampler = load_gmm(path)
    if model is not None:
        if is_stale(path, kind, model):
            raise UserError(
                f"{path} was fitted to the codes of other weights than the checkpoint's (the run was trained "
                f"further or its checkpoint replaced since); fit it again: {refit_command(path.parent, kind)}"
            )
    return sampler


def refit_command(run: Path, kind: str) -> str:
    """The command that fits the ex-post sampler ``kind`` of ``run`` (a run folder, or a
    checkpoint file in its ``checkpoints/`` folder) again, with the settings its file records
    where they are not the defaults, quoted for a POSIX shell."""
    folder = run_folder(run)
    fit = recorded_fit(folder / SAMPLER_FILES[kind], kind) if kind in SAMPLER_FILES else {}
    flags = "" if not fit or fit == fit_settings(kind) else " " + fit_flags(fit)
    return f"wae fit-sampler {shell_path(folder)}" + ("" if kind == "gmm" else f" --kind {kind}") + flags


def run_folder(run: Path) -> Path:
    """The run folder of ``run``: itself (a folder, or a path that does not exist), or for a
    checkpoint file the folder that holds its ``checkpoints/`` folder (another file: the
    folder that holds it)."""
    if not run.is_file():
        return run
    parent = run.parent
    return parent.parent if parent.name == "checkpoints" else parent


def fitted_to(path: Path, kind: str) -> str:
    """The weights' fingerprint a sampler file records; "" when it has no entry (a file written
    before fingerprints, or without a model); :class:`UserError` when the file cannot be read
    or the entry is not a fingerprint (FINGERPRINT_LENGTH hex digits; an empty one too)."""
    try:
        if kind == "gmm":
            with np.load(path, allow_pickle=False) as f:
                if "fitted_to" not in f.files:
                    return ""
                entry = f["fitted_to"]
                value: Any = str(entry) if entry.dtype.kind == "U" and entry.ndim == 0 else None
        else:
            payload = load_tensors(path)
            if "fitted_to" not in payload:
                return ""
            value = payload["fitted_to"]
    except (
        OSError,
        ValueError,
        KeyError,
        EOFError,
        zipfile.BadZipFile,
        pickle.UnpicklingError,  # torch.load of bytes that are not a checkpoint
        RuntimeError,
        AttributeError,
        TypeError,
    ) as err:
        raise UserError(f"{path} is not a readable sampler file ({failure_reason(err)})") from None
    # an entry is exactly what weights_fingerprint writes: anything else (empty too) is damage
    if not is_fingerprint(value):
        raise UserError(f"{path} is not a readable sampler file (its weights' fingerprint is damaged)")
    return value


def is_stale(path: Path, kind: str, weights: torch.nn.Module | str) -> bool:
    """Whether the sampler file at ``path`` was fitted to the codes of other weights than
    ``weights``: a model, or its :func:`weights_fingerprint` computed once for several files
    (False for a file without a fingerprint)."""
    recorded = fitted_to(path, kind)
    if not recorded:
        return False
    return recorded != (weights if isinstance(weights, str) else weights_fingerprint(weights))


def fit_sampler(
    kind: str,
    codes: Tensor,
    components: int | str | None = None,
    covariance: str | None = None,
    transforms: int | None = None,
    hidden: int | None = None,
    seed: int = 0,
    progress: bool = False,
    log: Any = None,
) -> tuple[LatentSampler, str]:
    """Fit the ex-post sampler ``kind`` ("gmm", "flow" or "vae") to codes (n, d): a Gaussian
    mixture of ``components`` (default 10, or "auto": the best of 5, 10, 20, 40 on held-out
    codes, the scores passed to ``log``) with ``covariance`` "full" (default) or "diag", a
    spline flow of ``transforms`` layers (default 3), or a second-stage VAE of two
    ``hidden``-unit layers (default 128; a flow's too). Returns it and a few words saying what
    it is. :class:`UserError` for an unknown kind, a setting the kind does not use
    (:func:`kind_settings`), or too few codes."""
    given = {"components": components, "covariance": covariance, "transforms": transforms, "hidden": hidden}
    kind = python_scalar(kind)
    settings = kind_settings(kind, {**given, "seed": seed})
    seed, codes = settings["seed"], _checked_codes(codes)
    if kind == "flow":
        flow = fit_flow(
            codes, settings["transforms"], settings["hidden"], fit=replace(FLOW_FIT, seed=seed, progress=progress)
        )
        return flow, f"a {settings['transforms']}-layer spline flow"
    if kind == "vae":
        vae = fit_vae(codes, settings["hidden"], fit=replace(VAE_FIT, seed=seed, progress=progress))
        return vae, f"a second-stage VAE of {settings['hidden']}-unit layers"
    components, covariance = settings["components"], settings["covariance"]
    if components == "auto":
        components, scores = select_components(codes, covariance=covariance, seed=seed)
        if log is not None:
            log("held-out mean log-likelihood by components: " + ", ".join(f"{k}: {v:.3f}" for k, v in scores.items()))
    assert isinstance(components, int)
    return fit_gmm(codes, components, covariance, seed), f"{components} {covariance}-covariance components"


def _checked_codes(codes: Any) -> Tensor:
    """``codes`` (n, d), a floating tensor, without their gradients; :class:`UserError` for
    another type or shape, codes on the meta device, and NaN or infinite codes (scikit-learn's
    and torch's own errors spoke of their internals)."""
    if not isinstance(codes, Tensor) or not codes.is_floating_point() or codes.dim() != 2 or codes.is_meta:
        what = (
            f"a {str(codes.dtype).removeprefix('torch.')} tensor of shape {tuple(codes.shape)}"
            + (" on the meta device" if codes.is_meta else "")
            if isinstance(codes, Tensor)
            else f"a {type(codes).__name__}"
        )
        raise UserError(f"the codes must be a floating tensor of shape (n, d) (torch.Tensor); got {what}")
    codes = codes.detach()
    if not bool(torch.isfinite(codes).all()):
        raise UserError("the codes hold NaN or infinite values: no sampler can be fitted to them")
    return codes


def save_sampler(
    sampler: LatentSampler,
    run: Path,
    kind: str,
    model: torch.nn.Module | None = None,
    fit: dict[str, Any] | None = None,
) -> Path:
    """Write ``sampler`` of ``kind`` into the run folder ``run`` (atomically), recording the
    fingerprint of ``model``, the auto-encoder whose codes it was fitted to (see
    :func:`load_sampler`), and ``fit``, the settings it was fitted with (:func:`fit_settings`);
    its path."""
    path = run / SAMPLER_FILES[kind]
    fitted_to = weights_fingerprint(model) if model is not None else ""
    if isinstance(sampler, FlowSampler | SecondStageVAE):
        _save_module(sampler, path, fitted_to, fit)
    else:
        assert isinstance(sampler, GaussianMixture)
        save_gmm(sampler, path, fitted_to, fit)
    return path
