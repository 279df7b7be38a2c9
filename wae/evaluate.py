"""Metrics of a trained auto-encoder, as flat dicts of numbers."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from .config import GENERATOR_SEEDS, UserError, check_memory, count_in, warn_caller
from .data import ImageData, to_model_range, to_unit_range
from .divergences import full_precision, mmd_imq

# the Fréchet distance is defined once, in fid.py (frechet_distance and gaussian_stats re-exported)
from .fid import (  # noqa: F401
    checked_features,
    fid,
    frechet_distance,
    frechet_distance_of,
    gaussian_stats,
    load_inception,
)
from .model import AutoEncoder
from .samplers import LatentSampler

if TYPE_CHECKING:
    from .classifier import Classifier
    from .folders import ImageFiles

# bytes per sample of wae evaluate besides the images: Inception (2048) and classifier (128)
# features, in float64, and their copies
EVAL_BYTES_PER_SAMPLE = 8 * (2048 + 128) * 2
NAN = float("nan")  # a figure that the test split is too small to define (docs/evaluation.md)

# (key, label) of the figures `wae evaluate` prints and `report.html` shows first, in this order
MAIN_METRICS = [
    ("fid", "FID, samples vs test (Inception)"),
    ("kid", "KID, samples vs test (Inception; ± std over subsets)"),
    ("test_recon_mse", "test reconstruction MSE / pixel (tables: / entry)"),
    ("test_mmd", "MMD²(Q_Z, P_Z), test codes"),
    ("fd_samples", "Fréchet distance, samples vs test (classifier features)"),
    ("fd_reconstructions", "Fréchet distance, reconstructions vs test"),
    ("precision", "precision (k = 3)"),
    ("recall", "recall (k = 3)"),
    ("class_kl_to_uniform", "KL(predicted classes of samples ‖ uniform)"),
    ("label_accuracy", "conditional samples read as their class (classifier)"),
    ("fd_class_mean", "Fréchet distance per class, mean (classifier features)"),
    ("mean_confidence", "mean classifier confidence on samples"),
    ("sharpness_data", "sharpness of test images"),
    ("sharpness_reconstructions", "sharpness of reconstructions"),
    ("sharpness_samples", "sharpness of samples"),
    ("w1_mean", "tables: mean over columns of W1(samples, test), standardised"),
    ("corr_error_rms", "tables: RMS error of the correlations, samples vs test"),
    ("c2st_auc", "tables: classifier two-sample test AUC (0.5: indistinguishable)"),
    ("data_mmd", "tables: MMD² in data space, samples vs test"),
]


def metric_text(metrics: dict[str, float], key: str) -> str:
    """A headline figure as printed and reported: 4 significant digits; KID with the spread of its
    subsets (``kid_std``) as "value ± std"."""
    text = f"{metrics[key]:.4g}"
    if key == "kid" and isinstance(metrics.get("kid_std"), float) and math.isfinite(metrics["kid_std"]):
        text += f" ± {metrics['kid_std']:.2g}"  # none where every subset was the whole of both sets
    return text


@contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """Run the block with ``model`` in eval mode; restore its training flag afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _encoder_chunks(
    model: AutoEncoder, images: Tensor | ImageFiles, value_range: str, chunk: int, labels: Tensor | None = None
) -> Iterator[tuple[Tensor, Tensor | None, Tensor | None]]:
    """(means, log-variances or None, the chunk's labels or None) of the encoder over stored
    images (of classes ``labels``, for a conditional model), ``chunk`` at a time."""
    for i in range(0, len(images), chunk):
        y = labels[i : i + chunk].to(model.device) if labels is not None else None
        x = to_model_range(images[i : i + chunk], value_range).to(model.device)
        out = model.encoder(x) if y is None else model.encoder(x, y)
        yield (*out, y) if isinstance(out, tuple) else (out, None, y)


@torch.no_grad()
def encode_all(
    model: AutoEncoder, images: Tensor | ImageFiles, value_range: str, chunk: int = 500, labels: Tensor | None = None
) -> Tensor:
    """Codes (n, d_z) of stored images (uint8 or [0, 1] floats), in eval mode, by chunks; a
    conditional model needs their class ``labels`` (n,)."""
    with eval_mode(model):
        chunks = _encoder_chunks(model, images, value_range, chunk, labels)
        return torch.cat([mean.float().cpu() for mean, _, _ in chunks])


@torch.no_grad()
def test_pass(
    model: AutoEncoder, images: Tensor | ImageFiles, value_range: str, chunk: int = 500, labels: Tensor | None = None
) -> tuple[Tensor, Tensor, float | None]:
    """One encoder and one decoder pass over stored images (with their class ``labels`` for a
    conditional model), in eval mode, by chunks: (codes (n, d_z): encoder means;
    reconstructions G(E(x)) (n, c, h, w) in [0, 1]; for a Gaussian encoder the sum of its
    log-variances over images and coordinates, else None)."""
    codes, recon, logvar_sum = [], [], 0.0
    with eval_mode(model):
        for mean, log_var, y in _encoder_chunks(model, images, value_range, chunk, labels):
            if log_var is not None:
                logvar_sum += log_var.float().sum().item()
            codes.append(mean.float().cpu())
            recon.append(to_unit_range(model.decode(mean, y).float().cpu(), value_range))
    return torch.cat(codes), torch.cat(recon), logvar_sum if model.encoder.gaussian else None


def test_metrics(
    model: AutoEncoder,
    test_images: Tensor | ImageFiles,
    value_range: str,
    passed: tuple[Tensor, Tensor, float | None],
    seed: int = 0,
) -> dict[str, float]:
    """:func:`evaluate`'s figures from a :func:`test_pass` over ``test_images``."""
    codes, recon, logvar_sum = passed
    sq_err = 0.0
    for i in range(0, len(test_images), 500):
        x = to_unit_range(to_model_range(test_images[i : i + 500], value_range), value_range)
        sq_err += (x - recon[i : i + 500]).pow(2).sum().item()
    generator = torch.Generator().manual_seed(seed + 17)
    prior = model.prior_sample(len(codes), generator)
    extra = {}
    if logvar_sum is not None:
        extra["encoder_logvar_mean"] = logvar_sum / (len(codes) * model.latent_dim)
    return {
        "test_recon_mse": sq_err / recon.numel(),
        "test_mmd": mmd_imq(codes, prior, model.prior_var).item() if len(codes) >= 2 else NAN,
        "code_mean_norm": codes.mean(0).norm().item(),
        "code_var_mean": codes.var(0).mean().item() if len(codes) >= 2 else NAN,
        **extra,
    }


def evaluate(
    model: AutoEncoder, test_images: Tensor, value_range: str, seed: int = 0, labels: Tensor | None = None
) -> dict[str, float]:
    """Test metrics (a conditional model encodes and decodes the test images with their class
    ``labels``):
    - ``test_recon_mse``: mean squared error per pixel of G(E(x)), pixels in [0, 1];
    - ``test_mmd``: unbiased multi-scale IMQ MMD^2 between test codes and as many prior samples;
    - ``code_mean_norm``, ``code_var_mean``: norm of the mean of Q_Z and mean per-dimension
      variance (the Gaussian, uniform and sphere priors: 0 and sigma_z^2; the mixture prior:
      r sigma_z / sqrt(K) and sigma_z^2 (1 + r^2 (K - 1) / (K d_z)));
    - Gaussian encoders only: ``encoder_logvar_mean``, the mean over test images and
      coordinates of log sigma^2(x) (a collapse to deterministic codes sends it far below 0)."""
    passed = test_pass(model, test_images, value_range, labels=labels)
    return test_metrics(model, test_images, value_range, passed, seed)


# ----------------------------------------------------------------------------- sample quality


def _kth_neighbour_radii(features: Tensor, k: int, chunk: int) -> Tensor:
    radii = []
    for i in range(0, len(features), chunk):
        d = torch.cdist(features[i : i + chunk], features)
        radii.append(d.kthvalue(k + 1, dim=1).values)  # k + 1: the point itself is at distance 0
    return torch.cat(radii)


def _covered(points: Tensor, centres: Tensor, radii: Tensor, chunk: int) -> Tensor:
    inside = []
    for i in range(0, len(points), chunk):
        inside.append((torch.cdist(points[i : i + chunk], centres) <= radii.unsqueeze(0)).any(1))
    return torch.cat(inside)


@full_precision
def precision_recall(real: Tensor, fake: Tensor, k: int = 3, chunk: int = 1000) -> dict[str, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) of features real (n, d) and
    fake (m, d): precision is the fraction of fake points inside the union of the balls around
    real points reaching their k-th nearest real neighbour; recall the same the other way.
    NaN, with a RuntimeWarning, when either set has k points or fewer (no k-th neighbour).
    Both sets are scaled by one factor when their values are beyond float32's comfortable range
    (the figures do not change under a common scale). :class:`UserError` for features that
    :func:`checked_features` refuses, k not a whole number >= 1 or chunk not one >= 1."""
    k, chunk = count_in("precision_recall: k", k, 1), count_in("precision_recall: chunk", chunk, 1)
    real, fake = checked_features(real, fake)
    if min(len(real), len(fake)) <= k:
        warn_caller(
            f"precision and recall need more than k = {k} points in each set, got {len(real)} real and {len(fake)} "
            "generated: NaN",
            RuntimeWarning,
        )
        return {"precision": NAN, "recall": NAN}
    scale = max(real.abs().max().item(), fake.abs().max().item())
    if not 1e-15 < scale < 1e15:  # float32 squares of 1e20 overflow, of 1e-25 vanish: every point a tie
        real, fake = (real / scale, fake / scale) if scale > 0 else (real, fake)
    real, fake = real.float(), fake.float()
    precision = _covered(fake, real, _kth_neighbour_radii(real, k, chunk), chunk).float().mean().item()
    recall = _covered(real, fake, _kth_neighbour_radii(fake, k, chunk), chunk).float().mean().item()
    return {"precision": precision, "recall": recall}


LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


@full_precision
def sharpness(images: Tensor) -> float:
    """The paper's sharpness: the variance of the Laplacian-filtered image, averaged over images.

    Images (n, c, h, w) in [0, 1] are made grey (mean over channels) and filtered with the
    3x3 kernel [[0, 1, 0], [1, -4, 1], [0, 1, 0]] without padding ("valid"); the variance is
    over the pixels of each filtered image."""
    grey = images.float().mean(1, keepdim=True)
    filtered = torch.nn.functional.conv2d(grey, LAPLACIAN.view(1, 1, 3, 3))
    return filtered.flatten(1).var(1).mean().item()


def class_coverage(probs: Tensor) -> dict[str, float]:
    """From class probabilities (n, 10) of samples: the fraction predicted as each class, the
    KL divergence of that histogram from uniform (0 when every class is equally frequent;
    log 10 = 2.30 when one class takes all) and the mean confidence (max probability)."""
    counts = torch.bincount(probs.argmax(1), minlength=probs.shape[1]).double()
    hist = counts / counts.sum()
    nonzero = hist > 0
    kl = (hist[nonzero] * (hist[nonzero] * probs.shape[1]).log()).sum().item()
    result = {f"class_{c}_fraction": hist[c].item() for c in range(probs.shape[1])}
    return {**result, "class_kl_to_uniform": kl, "mean_confidence": probs.max(1).values.mean().item()}


def is_mnist_like(images: Tensor) -> bool:
    """Whether the shipped MNIST classifier applies: 28x28 grey images."""
    return tuple(images.shape[1:]) == (1, 28, 28)


def reference_features(test: Tensor, classifier: Classifier | None = None) -> Tensor:
    """The shipped classifier's 128-d features (n, 128) of images (n, 1, 28, 28) in [0, 1]: the
    reference side of :func:`classifier_metrics`, to compute once for many evaluations
    (``classifier``: the loaded one, when the caller has it)."""
    from .classifier import features_and_probs, load_classifier

    return features_and_probs(classifier or load_classifier(), classifier_images(test, "test"))[0]


def classifier_metrics(
    test: Tensor,
    generated: Tensor,
    recon: Tensor | None = None,
    test_features: Tensor | None = None,
    sample_outputs: tuple[Tensor, Tensor] | None = None,
) -> dict[str, float]:
    """Fréchet distance (``fd_samples``; ``fd_reconstructions`` when given), precision/recall and
    class coverage of generated images against test images, on the shipped classifier's 128-d
    features. Images (n, 1, 28, 28): floats in [0, 1] or uint8 (:func:`classifier_images`);
    ``test_features``, when given, are :func:`reference_features` of ``test``, and
    ``sample_outputs`` the classifier's (features, probabilities) of ``generated``
    (``features_and_probs``): neither is computed again (with both given and no ``recon``, the
    classifier is not even loaded). :class:`UserError` (a ValueError) for images the classifier
    cannot read, or given outputs that do not fit their images (shape, number, finite floats,
    probabilities that sum to 1)."""
    from .classifier import FEATURES, load_classifier

    test, generated, recon = _checked_images(test, generated, recon)
    classifier = functools.cache(load_classifier)  # loaded on first use, once
    if test_features is None:
        test_features = _outputs_of(classifier, test, None, "test")[0]
    _check_outputs(test, test_features, "test_features", FEATURES)
    return _classifier_metrics(classifier, test_features, generated, recon, sample_outputs)


def _classifier_metrics(
    classifier: Callable[[], Classifier],
    test_features: Tensor,
    generated: Tensor,
    recon: Tensor | None,
    sample_outputs: tuple[Tensor, Tensor] | None,
) -> dict[str, float]:
    """:func:`classifier_metrics` of images already checked (:func:`classifier_images`) and
    test features already checked, the classifier loaded by ``classifier()`` when needed."""
    sample_features, sample_probs = _outputs_of(classifier, generated, sample_outputs, "sample_outputs")
    metrics = {"fd_samples": frechet_distance_of(sample_features, test_features)}
    if recon is not None:
        recon_features, _ = _outputs_of(classifier, recon, None, "recon")
        metrics["fd_reconstructions"] = frechet_distance_of(recon_features, test_features)
    metrics.update(precision_recall(test_features, sample_features))
    metrics.update(class_coverage(sample_probs))
    return metrics


def sample_metrics(
    test: Tensor,
    generated: Tensor,
    recon: Tensor | None = None,
    test_outputs: tuple[Tensor, Tensor] | None = None,
    conditional: tuple[Tensor, Tensor, tuple[str, ...]] | None = None,
) -> tuple[dict[str, float], tuple[Tensor, Tensor]]:
    """Every classifier figure of one evaluation, each image set through the classifier once:
    :func:`classifier_metrics` and, for a conditional model (``conditional`` = (test labels
    (n_test,), sample labels (n,), class names)), :func:`conditional_metrics`. ``test_outputs``:
    the classifier's (features, probabilities) of ``test`` from an earlier call, when the caller
    kept them. Returns the metrics and the test outputs (to pass to the next call on the same
    test images). Images (n, 1, 28, 28) as :func:`classifier_images` takes them; UserError as
    the two functions raise it."""
    test, generated, recon = _checked_images(test, generated, recon)
    from .classifier import load_classifier

    classifier = functools.cache(load_classifier)  # loaded on first use, once
    test_outputs = _outputs_of(classifier, test, test_outputs, "test_outputs")
    sample_outputs = _outputs_of(classifier, generated, None, "generated")
    metrics = _classifier_metrics(classifier, test_outputs[0], generated, recon, sample_outputs)
    if conditional is not None:
        if not isinstance(conditional, tuple | list) or len(conditional) != 3:
            raise UserError("conditional: give (test labels, sample labels, class names)")
        test_labels, labels, classes = conditional
        metrics.update(
            _conditional_metrics(test, test_labels, generated, labels, classes, test_outputs, sample_outputs)
        )
    return metrics, test_outputs


def _checked_images(
    test: Tensor, generated: Tensor, recon: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor | None]:
    """The metric functions' image sets through :func:`classifier_images`, each named."""
    test, generated = classifier_images(test, "test"), classifier_images(generated, "generated")
    return test, generated, classifier_images(recon, "recon") if recon is not None else None


def classifier_images(images: Tensor, name: str = "images") -> Tensor:
    """``images`` as the shipped classifier takes them: floats (n, 1, 28, 28) in [0, 1], n >= 1
    (uint8 images are divided by 255). :class:`UserError` for anything else: another shape, no
    images, other integer or bool types, NaN or infinite values, floats outside [0, 1] (images
    in [-1, 1] or [0, 255] would give figures without meaning)."""
    if not isinstance(images, Tensor):
        raise UserError(f"{name}: expected a tensor of images; got {type(images).__name__}")
    if images.ndim != 4 or tuple(images.shape[1:]) != (1, 28, 28):
        raise UserError(f"{name}: the classifier takes 28x28 grey images (n, 1, 28, 28); got {tuple(images.shape)}")
    if len(images) == 0:
        raise UserError(f"{name}: no images")
    if images.dtype == torch.uint8:
        return images.float() / 255
    if not images.is_floating_point():
        raise UserError(f"{name}: images must be uint8, or floats in [0, 1]; got {images.dtype}")
    if not bool(torch.isfinite(images).all()):
        raise UserError(f"{name}: the images hold NaN or infinite values")
    low, high = images.min().item(), images.max().item()
    if low < 0 or high > 1:
        raise UserError(f"{name}: floats must lie in [0, 1] (uint8 is divided by 255); got {low:.4g} to {high:.4g}")
    return images


def _check_outputs(images: Tensor, outputs: Tensor, name: str, width: int) -> None:
    """Given classifier outputs for ``images``: (n, width) real floats, finite; with width 10
    (class probabilities) each row in [0, 1] summing to 1 (logits would give a confidence of
    49 and NaN rows a class-0 fraction of 1). :class:`UserError` otherwise."""
    if not isinstance(outputs, Tensor) or outputs.ndim != 2 or outputs.shape[1] != width:
        shape = tuple(outputs.shape) if isinstance(outputs, Tensor) else type(outputs).__name__
        raise UserError(f"{name}: expected ({len(images)}, {width}); got {shape}")
    if len(outputs) != len(images):
        raise UserError(f"{name} has {len(outputs)} rows for {len(images)} images")
    if not outputs.is_floating_point():
        raise UserError(f"{name}: expected floats as the classifier gives them; got {outputs.dtype}")
    if not bool(torch.isfinite(outputs).all()):
        raise UserError(f"{name}: holds NaN or infinite values")
    if width == 10:
        sums = outputs.double().sum(1)
        if outputs.min().item() < 0 or outputs.max().item() > 1 or not bool(((sums - 1).abs() < 1e-2).all()):
            raise UserError(f"{name}: class probabilities must lie in [0, 1] and sum to 1 (softmax of the logits)")


def _outputs_of(
    classifier: Callable[[], Classifier], images: Tensor, given: tuple[Tensor, Tensor] | None, name: str
) -> tuple[Tensor, Tensor]:
    """The classifier's (features (n, 128), probabilities (n, 10)) of ``images``: ``given``
    when there, checked against the images in shape and number, else computed (the classifier
    is ``classifier()``, called only then)."""
    from .classifier import FEATURES, features_and_probs

    if given is None:
        return features_and_probs(classifier(), images)
    if not isinstance(given, (tuple, list)) or len(given) != 2:
        raise UserError(f"{name}: expected the pair (features, probabilities) of features_and_probs")
    _check_outputs(images, given[0], f"{name}[0], the features,", FEATURES)
    _check_outputs(images, given[1], f"{name}[1], the class probabilities,", 10)
    return given[0], given[1]


def balanced_labels(n: int, classes: int) -> Tensor:
    """Class indices 0, 1, ..., classes - 1, 0, 1, ... (n,): every class equally often (within
    one) in any prefix, the labels a conditional model's samples are drawn with by default."""
    return torch.arange(n) % classes


@torch.no_grad()
def decode_prior(
    model: AutoEncoder,
    n: int,
    value_range: str,
    seed: int,
    sampler: LatentSampler | None = None,
    chunk: int = 1000,
    labels: Tensor | None = None,
) -> Tensor:
    """``n`` images G(z) as (n, c, h, w) in [0, 1], z drawn with ``seed`` from P_Z or, when
    given, from an ex-post ``sampler`` fitted to Q_Z. A conditional model decodes them with the
    classes ``labels`` (n,), by default :func:`balanced_labels`. :class:`UserError` for ``n`` that
    is not a whole number >= 0 or too many to decode in the memory available, ``chunk`` not one
    >= 1, or a ``seed`` that is not a whole number a torch generator takes (``n = 10**400``
    decoded for ever, a list growing)."""
    n, chunk, seed = count_in("n", n, 0), count_in("chunk", chunk, 1), count_in("seed", seed, 0, GENERATOR_SEEDS)
    # the images kept, and one chunk's decoder pass (on the model's device too): a whole-n
    # estimate refused 200,000 images that need about 1.3 GB as 28.6 GiB
    check_decode_memory(model, n, f"decode_prior(n={n})", chunk)
    model.check_room(min(n, chunk), f"decode_prior(chunk={chunk})")
    check_sampler_fits(model, sampler)
    generator = torch.Generator().manual_seed(seed)
    draw = sampler.sample if sampler is not None else model.prior_sample
    if model.classes and labels is None:
        labels = balanced_labels(n, model.classes)
    with eval_mode(model):
        return torch.cat(
            [
                to_unit_range(
                    model.decode(
                        draw(min(chunk, n - i), generator), labels[i : i + chunk] if labels is not None else None
                    )
                    .float()  # under a caller's autocast too
                    .cpu(),
                    value_range,
                )
                for i in range(0, max(n, 1), chunk)  # n = 0: one chunk of none, (0, c, h, w)
            ]
        )


MIN_READABLE = 0.9  # label accuracy needs the classifier to read the real test images as their labels (MNIST: 0.99)


def digit_classes(classes: tuple[str, ...]) -> list[int] | None:
    """The shipped classifier's class of each of a run's classes when they are MNIST digits
    ("0" to "9"), else None (the classifier cannot say whether a sample shows its class)."""
    digits = [str(d) for d in range(10)]
    return [int(name) for name in classes] if classes and all(name in digits for name in classes) else None


def conditional_metrics(
    test: Tensor,
    test_labels: Tensor,
    generated: Tensor,
    labels: Tensor,
    classes: tuple[str, ...],
    test_outputs: tuple[Tensor, Tensor] | None = None,
    sample_outputs: tuple[Tensor, Tensor] | None = None,
) -> dict[str, float]:
    """How well a conditional model's samples follow their labels, on the shipped classifier
    (28x28 grey images (n, 1, 28, 28) in [0, 1]; labels (n,) index ``classes``):
    - ``label_accuracy``: the fraction of samples that the classifier reads as the class they
      were drawn for, and ``label_accuracy_C`` per class C: only for classes named "0" to "9"
      whose test images the classifier reads as their labels (``label_accuracy_test``, at least
      MIN_READABLE), i.e. digits; other data with ten numbered classes (clothing, letters)
      would give a figure without meaning;
    - ``fd_class_C``: the Fréchet distance (classifier features) between the samples of class C
      and the test images of class C (NaN with fewer than 2 of either), and ``fd_class_mean``.
    ``test_outputs`` and ``sample_outputs``, when given, are the classifier's (features,
    probabilities) of ``test`` and ``generated`` (``features_and_probs``; not computed again).
    :class:`UserError` (a ValueError) for images the classifier cannot read
    (:func:`classifier_images`), labels that are not class indices into ``classes`` as many as
    their images, no classes or class names that are not distinct strings, or given outputs
    that do not match their images (shape, number, finite floats, probabilities that sum to 1)."""
    from .classifier import load_classifier

    test, generated, _ = _checked_images(test, generated)
    classifier = functools.cache(load_classifier)  # loaded on first use, once
    test_outputs = _outputs_of(classifier, test, test_outputs, "test_outputs")
    sample_outputs = _outputs_of(classifier, generated, sample_outputs, "sample_outputs")
    return _conditional_metrics(test, test_labels, generated, labels, classes, test_outputs, sample_outputs)


def _conditional_metrics(
    test: Tensor,
    test_labels: Tensor,
    generated: Tensor,
    labels: Tensor,
    classes: tuple[str, ...],
    test_outputs: tuple[Tensor, Tensor],
    sample_outputs: tuple[Tensor, Tensor],
) -> dict[str, float]:
    """:func:`conditional_metrics` of checked images and their checked classifier outputs."""
    if not classes:
        raise UserError("classes: give the names of the classes the labels index")
    if not isinstance(classes, tuple | list) or not all(isinstance(name, str) and name for name in classes):
        # a set's order (and so which class a figure is filed under) changes with the hash seed
        raise UserError(
            "classes: a tuple of names in label order, one non-empty str per class (the keys fd_class_NAME)"
        )
    if len(set(classes)) < len(classes):
        raise UserError("classes: two classes have one name; each class's figures are keyed by its name")
    test_labels = _class_indices(test_labels, len(test), len(classes), "test_labels")
    labels = _class_indices(labels, len(generated), len(classes), "labels")
    test_features, test_probs = test_outputs
    sample_features, sample_probs = sample_outputs
    metrics: dict[str, float] = {}
    digits = digit_classes(classes)
    if digits is not None:
        metrics["label_accuracy_test"] = (
            (test_probs.argmax(1) == torch.tensor(digits)[test_labels]).float().mean().item()
        )
    if digits is not None and metrics["label_accuracy_test"] >= MIN_READABLE:
        wanted = torch.tensor(digits)[labels]
        right = sample_probs.argmax(1) == wanted
        metrics["label_accuracy"] = right.float().mean().item()
        for c, name in enumerate(classes):
            chosen = labels == c
            metrics[f"label_accuracy_{name}"] = right[chosen].float().mean().item() if chosen.any() else NAN
    fds = []
    for c, name in enumerate(classes):
        ours, theirs = sample_features[labels == c], test_features[test_labels == c]
        fd = frechet_distance_of(ours, theirs, warn=False)  # a class with fewer than 2: NaN, documented
        metrics[f"fd_class_{name}"] = fd
        fds.append(fd)
    metrics["fd_class_mean"] = sum(fds) / len(fds)
    return metrics


def _class_indices(labels: Tensor, n: int, classes: int, name: str) -> Tensor:
    """Class indices (n,) as int64, each in 0 .. classes - 1; :class:`UserError` otherwise (a
    bool or uint8 tensor would index as a mask, a negative index would wrap to the last class)."""
    if not isinstance(labels, Tensor) or labels.ndim != 1 or labels.dtype in (torch.bool, torch.uint8):
        raise UserError(f"{name}: expected class indices, a 1-d integer tensor (n,)")
    if labels.is_floating_point() or labels.is_complex():
        raise UserError(f"{name}: expected integer class indices; got {labels.dtype}")
    if len(labels) != n:
        raise UserError(f"{name}: {len(labels)} labels for {n} images")
    labels = labels.long()
    if n and (int(labels.min()) < 0 or int(labels.max()) >= classes):
        raise UserError(
            f"{name}: class indices must lie in 0 to {classes - 1}; got {int(labels.min())} to {int(labels.max())}"
        )
    return labels


def interpolation_ends(test: Tensor | ImageFiles, pairs: int = 8, first: int = 48) -> tuple[Tensor, Tensor]:
    """Two stacks of ``pairs`` test images to interpolate between: images ``first`` to
    ``first + 2 * pairs`` when the test split has them (the training grids show images
    0 to ``first`` as reconstructions), else its first ``2 * pairs``, else (a smaller split)
    each line from one image to another (a split of 1 gives constant lines). :class:`UserError`
    for ``pairs`` or ``first`` that is not a whole number (pairs >= 1, first >= 0), or an
    empty split."""
    pairs, first = count_in("pairs", pairs, 1), count_in("first", first, 0)
    n = len(test)
    if n == 0:
        raise UserError("interpolation_ends needs a test split of 1 image or more; got none")
    check_memory(2 * pairs * 4 * math.prod(test[0].shape), f"interpolation_ends(pairs={pairs})")
    if n >= 2 * pairs:
        start = first if n >= first + 2 * pairs else 0
        picked = test[start + torch.arange(2 * pairs)]
        return picked[:pairs], picked[pairs:]
    # fewer: image k mod n joined to one 1 to n - 1 places on, so that no line is constant (a
    # split of 8 joined each image to itself)
    k = torch.arange(pairs)
    a = k % n
    b = (a + 1 + (k // n) % max(n - 1, 1)) % n
    return test[a], test[b]


def random_line_ends(n: int, pairs: int, seed: int) -> Tensor:
    """(2, pairs) indices into ``n`` test images of the ends of ``pairs`` lines (``wae
    interpolate``), seeded: 2 pairs distinct images where there are as many; else each of the
    n (n - 1) / 2 pairs of distinct images once before any twice (enumerated up to a million),
    else two distinct images a line. Every index 0 for n = 1 (constant lines). :class:`UserError`
    for ``n`` or ``pairs`` that is not a whole number >= 1, or a seed no torch generator takes."""
    n, pairs, seed = count_in("n", n, 1), count_in("pairs", pairs, 1), count_in("seed", seed, 0, GENERATOR_SEEDS)
    generator = torch.Generator().manual_seed(seed)
    if n < 2:
        return torch.zeros(2, pairs, dtype=torch.long)
    if n >= 2 * pairs:
        return torch.randperm(n, generator=generator)[: 2 * pairs].view(2, pairs)
    count = n * (n - 1) // 2
    if count <= 1_000_000:  # each pair once before any twice
        order = torch.randperm(count, generator=generator).repeat(-(-pairs // count))[:pairs]
        return torch.combinations(torch.arange(n), 2)[order].T.contiguous()
    first = torch.randint(n, (pairs,), generator=generator)
    return torch.stack([first, (first + 1 + torch.randint(n - 1, (pairs,), generator=generator)) % n])


def grid_rows(test: Tensor | ImageFiles, count: int = 48, ncol: int = 12) -> Tensor:
    """The first ``count`` test images, repeated up to one full row of ``ncol`` when the split
    holds fewer (so that the reconstruction grid is never empty)."""
    n = len(test)
    return test[:count] if n >= ncol else test[torch.arange(ncol) % n]


@torch.no_grad()
def decoder_bytes_per_image(model: AutoEncoder) -> int:
    """Bytes of the decoder's activations (every module's output) for one image, float32."""
    sizes: list[int] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: sizes.append(out.numel())) for m in model.decoder.modules()]
    try:
        with eval_mode(model):
            model.decode(torch.zeros(1, model.latent_dim), torch.zeros(1, dtype=torch.int64) if model.classes else None)
    finally:
        for hook in hooks:
            hook.remove()
    return 4 * sum(sizes)


def check_decode_memory(model: AutoEncoder, n: int, what: str, at_once: int, extra_per_image: int = 0) -> None:
    """:class:`UserError` before decoding ``n`` images, ``at_once`` per decoder pass, when the
    images (kept as floats, then as a grid or uint8 copy), their decoder activations and
    ``extra_per_image`` bytes each would not fit in the memory available."""
    image = 4 * model.channels * (model.size + 2) ** 2
    check_memory(n * (4 * image + extra_per_image) + min(n, at_once) * decoder_bytes_per_image(model), what)


def check_sampler_fits(model: AutoEncoder, sampler: LatentSampler | None) -> None:
    """:class:`UserError` when an ex-post sampler draws codes of another size than the model's."""
    if sampler is not None and sampler.dim != model.latent_dim:
        raise UserError(f"the sampler draws {sampler.dim}-D codes; this model's codes are {model.latent_dim}-D")


def evaluate_run(
    model: AutoEncoder,
    data: ImageData,
    value_range: str,
    samples: int = 10_000,
    seed: int = 0,
    fid_precision: str | None = None,
    progress: bool = False,
    sampler: LatentSampler | None = None,
) -> dict[str, float]:
    """Everything ``wae evaluate`` reports, as one flat dict (see docs/evaluation.md):
    test reconstruction error, MMD and per-dimension moments of Q_Z, sharpness of data,
    reconstructions and prior samples, and, for 28x28 grey images, the classifier-feature
    Fréchet distance, precision/recall and class coverage of samples against the test set
    (and for a conditional model, whose samples are drawn with :func:`balanced_labels`, the
    :func:`conditional_metrics`);
    with ``fid_precision`` ("fp32", "bf16" or "auto") also the Inception FID and KID of samples against
    the test set (see ``wae.fid``). Samples come from P_Z, or from ``sampler`` when given."""
    test_labels = data.test_labels if model.classes else None
    passed = test_pass(model, data.test, value_range, labels=test_labels)
    metrics: dict[str, float] = test_metrics(model, data.test, value_range, passed, seed)
    codes, recon, _ = passed
    for d in range(codes.shape[1]):
        metrics[f"code_mean_{d}"] = codes[:, d].mean().item()
        metrics[f"code_var_{d}"] = codes[:, d].var().item() if len(codes) >= 2 else NAN
    test = to_unit_range(to_model_range(data.test, value_range), value_range)
    labels = balanced_labels(samples, model.classes) if model.classes else None
    generated = decode_prior(model, samples, value_range, seed, sampler, labels=labels)
    metrics["sharpness_data"] = sharpness(test)
    metrics["sharpness_reconstructions"] = sharpness(recon)
    metrics["sharpness_samples"] = sharpness(generated)
    if is_mnist_like(test):
        conditional = (test_labels, labels, data.classes) if labels is not None and test_labels is not None else None
        metrics.update(sample_metrics(test, generated, recon, conditional=conditional)[0])
    if fid_precision is not None:
        metrics.update(fid(load_inception(), generated, test, fid_precision, progress))
    metrics["samples"] = float(samples)
    return metrics


# ----------------------------------------------------------------------------- tables


@torch.no_grad()
def decode_rows(
    model: AutoEncoder, n: int, seed: int, sampler: LatentSampler | None = None, chunk: int = 10_000
) -> Tensor:
    """``n`` rows G(z) (n, D) of a table model, standardised, z drawn with ``seed`` from P_Z or
    from an ex-post ``sampler``."""
    check_sampler_fits(model, sampler)
    generator = torch.Generator().manual_seed(seed)
    draw = sampler.sample if sampler is not None else model.prior_sample
    with eval_mode(model):
        return torch.cat([model.decode(draw(min(chunk, n - i), generator)).float().cpu() for i in range(0, n, chunk)])


@torch.no_grad()
def evaluate_table(
    model: AutoEncoder,
    test: Tensor,
    samples: int,
    seed: int = 0,
    sampler: LatentSampler | None = None,
    c2st: bool = True,
) -> dict[str, float]:
    """The figures of a table model against its standardised test rows (m, D):
    ``test_recon_mse`` (per entry, standardised units), ``test_mmd`` and the moments of the
    test codes as for images, and the sample figures of :func:`wae.tables.table_metrics` of
    ``samples`` rows (the classifier two-sample test only with ``c2st``)."""
    from .tables import table_metrics

    codes = encode_all(model, test, "01")
    with eval_mode(model):
        recon = model.decode(codes).float().cpu()
    generator = torch.Generator().manual_seed(seed + 17)
    prior = model.prior_sample(len(codes), generator)
    metrics = {
        "test_recon_mse": (recon - test.float()).pow(2).mean().item(),
        "test_mmd": mmd_imq(codes, prior, model.prior_var).item(),
        "code_mean_norm": codes.mean(0).norm().item(),
        "code_var_mean": codes.var(0).mean().item(),
    }
    metrics.update(table_metrics(decode_rows(model, samples, seed, sampler), test, seed, c2st))
    metrics["samples"] = float(samples)
    return metrics
