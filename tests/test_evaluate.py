"""Evaluation metrics against known answers, and the shipped classifier's sanity."""

from __future__ import annotations

import hashlib
import json
import math
import os

import pytest
import torch

from wae.classifier import WEIGHTS, Classifier, features_and_probs, load_classifier
from wae.data import load_mnist, to_model_range
from wae.evaluate import (
    class_coverage,
    frechet_distance,
    frechet_distance_of,
    precision_recall,
    sharpness,
)
from wae.model import AutoEncoder


def test_frechet_distance_of_diagonal_gaussians_has_a_closed_form():
    mean_a, mean_b = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.0, 1.0, 0.0])
    std_a, std_b = torch.tensor([1.0, 2.0, 0.5]), torch.tensor([2.0, 2.0, 1.5])
    expected = ((mean_a - mean_b) ** 2).sum() + ((std_a - std_b) ** 2).sum()
    got = frechet_distance(mean_a, torch.diag(std_a**2), mean_b, torch.diag(std_b**2))
    assert got == pytest.approx(expected.item(), abs=1e-9)


def test_frechet_distance_is_zero_for_one_gaussian_and_symmetric():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(500, 6, generator=gen) @ torch.randn(6, 6, generator=gen)
    b = torch.randn(500, 6, generator=gen) * 2 + 1
    assert frechet_distance_of(a, a) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance_of(a, b) == pytest.approx(frechet_distance_of(b, a), rel=1e-6)


def test_precision_recall_known_cases():
    gen = torch.Generator().manual_seed(1)
    real = torch.randn(400, 2, generator=gen)
    same = precision_recall(real, real.clone())
    assert same == {"precision": 1.0, "recall": 1.0}
    far = precision_recall(real, real + 100.0)
    assert far == {"precision": 0.0, "recall": 0.0}
    collapsed = real[real[:, 0] > 1.0]  # a fake set that covers one corner only
    pr = precision_recall(real, collapsed)
    assert pr["precision"] == 1.0 and pr["recall"] < 0.4


def test_sharpness_known_values():
    assert sharpness(torch.full((2, 1, 8, 8), 0.5)) == pytest.approx(0.0)
    checker = ((torch.arange(8).view(-1, 1) + torch.arange(8).view(1, -1)) % 2).float().view(1, 1, 8, 8)
    # the Laplacian of a 0/1 checkerboard is -4 on ones and +4 on zeros: variance 16
    assert sharpness(checker) == pytest.approx(16.0 * 36 / 35, rel=1e-6)  # unbiased over 36 pixels
    blurred = torch.nn.functional.avg_pool2d(checker, 3, stride=1, padding=1)
    assert sharpness(blurred) < sharpness(checker)


def test_class_coverage():
    uniform = torch.eye(10).repeat(3, 1)
    result = class_coverage(uniform)
    assert result["class_kl_to_uniform"] == pytest.approx(0.0, abs=1e-12)
    assert result["mean_confidence"] == 1.0 and result["class_3_fraction"] == pytest.approx(0.1)
    one_class = torch.zeros(5, 10)
    one_class[:, 7] = 1.0
    assert class_coverage(one_class)["class_kl_to_uniform"] == pytest.approx(math.log(10))


def test_shipped_classifier_is_small_and_accurate():
    assert WEIGHTS.stat().st_size < 2 * 1024 * 1024
    info = json.loads(WEIGHTS.with_suffix(".json").read_text())
    assert info["test_accuracy"] > 0.985
    assert hashlib.sha256(WEIGHTS.read_bytes()).hexdigest() == info["sha256"]  # the weights it describes
    data = load_mnist()
    assert data.test_labels is not None
    features, probs = features_and_probs(load_classifier(), to_model_range(data.test[:2000]))
    assert (probs.argmax(1) == data.test_labels[:2000]).float().mean().item() > 0.98
    # it runs in channels_last (twice as fast on CPU): the figures of the default layout
    plain = load_classifier().to(memory_format=torch.contiguous_format)
    with torch.no_grad():
        features_nchw, logits = plain(to_model_range(data.test[:2000]).contiguous())
    assert torch.allclose(features, features_nchw, rtol=1e-4, atol=1e-4)
    assert torch.allclose(probs, logits.softmax(1), atol=1e-5)


def test_fast_frechet_distance_is_small_between_splits_and_grows_with_damage():
    data = load_mnist()
    classifier = load_classifier()
    # 1,000 images a side (measured: clean 24.7, blur 3/5: 308/933, noise 0.1/0.3: 40/312; at
    # 2,000: 17.4, 305/926, 34/308): the order holds with margin at half the cost
    test = to_model_range(data.test[:1000])
    reference, _ = features_and_probs(classifier, to_model_range(data.train[:1000]))

    def fd(images: torch.Tensor) -> float:
        return frechet_distance_of(features_and_probs(classifier, images.clamp(0, 1))[0], reference)

    gen = torch.Generator().manual_seed(0)
    clean = fd(test)
    blurs = [fd(torch.nn.functional.avg_pool2d(test, k, stride=1, padding=k // 2)) for k in (3, 5)]
    noises = [fd(test + s * torch.randn(test.shape, generator=gen)) for s in (0.1, 0.3)]
    assert clean < blurs[0] < blurs[1]
    assert clean < noises[0] < noises[1]
    assert clean < 0.2 * blurs[1]


def test_the_mean_encoder_log_variance_is_reported_for_gaussian_encoders_only(tiny_data, monkeypatch):
    from wae.config import ModelConfig
    from wae.evaluate import evaluate
    from wae.model import AutoEncoder

    deterministic = AutoEncoder(ModelConfig(latent_dim=4), 1, 16)
    assert "encoder_logvar_mean" not in evaluate(deterministic, tiny_data.test, "01")
    model = AutoEncoder(ModelConfig(latent_dim=4, encoder="gaussian"), 1, 16)
    monkeypatch.setattr(model.encoder, "forward", lambda x: (torch.zeros(len(x), 4), torch.full((len(x), 4), -3.0)))
    assert evaluate(model, tiny_data.test, "01")["encoder_logvar_mean"] == pytest.approx(-3.0)


@pytest.mark.parametrize("value_range", ["01", "pm1"])
def test_one_test_pass_gives_the_codes_reconstructions_and_error_of_separate_passes(tiny_data, value_range):
    from wae.config import ModelConfig
    from wae.data import to_unit_range
    from wae.evaluate import encode_all, evaluate, test_pass

    torch.manual_seed(0)
    output = "tanh" if value_range == "pm1" else "sigmoid"
    model = AutoEncoder(ModelConfig(latent_dim=4, encoder="gaussian", output=output), 1, 16)
    images = tiny_data.test
    codes, recon, logvar_sum = test_pass(model, images, value_range, chunk=7)  # chunks that do not divide n
    assert model.training  # evaluated in eval mode, then given back as it was
    model.eval()  # batch norm: running statistics, as in the pass
    x = to_model_range(images, value_range)
    with torch.no_grad():
        mean, log_var = model.encoder(x)
        expected = to_unit_range(model.reconstruct(x), value_range)
    assert torch.allclose(codes, encode_all(model, images, value_range), atol=1e-6)
    assert torch.allclose(recon, expected, atol=1e-6)
    assert logvar_sum == pytest.approx(log_var.sum().item(), rel=1e-5)
    mse = (to_unit_range(x, value_range) - expected).pow(2).mean().item()
    assert evaluate(model, images, value_range)["test_recon_mse"] == pytest.approx(mse, rel=1e-5)


def test_classifier_metrics_with_reference_features_given_are_the_same():
    from wae.evaluate import classifier_metrics, reference_features

    data = load_mnist()
    test, generated = to_model_range(data.test[:300]), to_model_range(data.train[:300])
    assert classifier_metrics(test, generated, test_features=reference_features(test)) == classifier_metrics(
        test, generated
    )
    outputs = features_and_probs(load_classifier(), generated)
    assert classifier_metrics(test, generated, None, reference_features(test), outputs) == classifier_metrics(
        test, generated
    )
    # outputs of other images (a count that does not match) are refused, not silently used
    with pytest.raises(ValueError, match="rows for 300 images"):
        classifier_metrics(test, generated, sample_outputs=(outputs[0][:200], outputs[1][:200]))
    with pytest.raises(ValueError, match="rows for 300 images"):
        classifier_metrics(test, generated, test_features=reference_features(test[:100]))


def test_load_classifier_reads_the_weights_once_and_gives_a_new_module_each_time(tmp_path, monkeypatch):
    import wae.classifier

    first, second = load_classifier(), load_classifier()
    assert first is not second
    with torch.no_grad():
        first.head.bias.add_(1.0)  # a caller changing its copy changes no one else's
    assert torch.equal(load_classifier().head.bias, second.head.bias)
    reads = []
    real_load = torch.load

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        reads.append(args[0])
        return real_load(*args, **kwargs)

    copy = tmp_path / "weights.pt"
    copy.write_bytes(wae.classifier.WEIGHTS.read_bytes())
    monkeypatch.setattr(wae.classifier, "WEIGHTS", copy)
    monkeypatch.setattr(torch, "load", counted)
    load_classifier(), load_classifier()
    assert len(reads) == 1
    # rewritten weights (python -m wae.classifier) are read again
    state = {k: v.half() for k, v in Classifier().state_dict().items()}
    torch.save(state, copy)
    os.utime(copy, ns=(copy.stat().st_atime_ns, copy.stat().st_mtime_ns + 10**9))
    fresh = load_classifier()
    assert len(reads) == 2 and torch.equal(fresh.head.bias, state["head.bias"].float())


def _metric_inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    data = load_mnist()
    return data.test[:200], data.test_labels[:200], data.test[200:400], data.test_labels[200:400]


def test_uint8_images_give_the_figures_of_the_same_images_in_0_1():
    from wae.evaluate import classifier_metrics, conditional_metrics

    test, test_labels, samples, labels = _metric_inputs()  # uint8, as MNIST ships
    as_floats = classifier_metrics(test.float() / 255, samples.float() / 255)
    assert classifier_metrics(test, samples) == pytest.approx(as_floats)
    names = tuple(str(d) for d in range(10))
    assert conditional_metrics(test, test_labels, samples, labels, names) == pytest.approx(
        conditional_metrics(test.float() / 255, test_labels, samples.float() / 255, labels, names), nan_ok=True
    )


def _bad_images(test: torch.Tensor) -> list[tuple[str, torch.Tensor, str]]:
    unit = test.float() / 255
    nan = unit.clone()
    nan[0, 0, 0, 0] = float("nan")
    return [
        ("a tanh model's raw output, in [-1, 1]", unit * 2 - 1, r"\[0, 1\]"),
        ("floats in [0, 255]", unit * 255, r"\[0, 1\]"),
        ("a NaN pixel", nan, "NaN"),
        ("three channels", unit.expand(-1, 3, -1, -1), "28x28 grey"),
        ("no channel axis", unit[:, 0], "28x28 grey"),
        ("32x32 images", torch.zeros(5, 1, 32, 32), "28x28 grey"),
        ("no images", unit[:0], "no images"),
        ("int64 pixels", test.long(), "uint8, or floats"),
        ("bool pixels", test > 0, "uint8, or floats"),
    ]


@pytest.mark.parametrize("case", range(9))
def test_images_the_classifier_cannot_read_are_refused(case):
    """A hostile user's finds: uint8 samples gave an FD of 1.3e8 and images in [-1, 1] a
    plausible 109.6 against 21.4, a NaN pixel a LinAlgError, other shapes torch's errors."""
    from wae.config import UserError
    from wae.evaluate import classifier_metrics, conditional_metrics

    test, test_labels, samples, labels = _metric_inputs()
    what, bad, message = _bad_images(samples)[case]
    names = tuple(str(d) for d in range(10))
    for call in (
        lambda: classifier_metrics(test, bad),
        lambda: classifier_metrics(bad, samples),
        lambda: classifier_metrics(test, samples, recon=bad),
        lambda: conditional_metrics(test, test_labels, bad, labels[: len(bad)], names),
    ):
        with pytest.raises(UserError, match=message):
            call()


def test_labels_and_outputs_that_do_not_fit_are_refused():
    from wae.config import UserError
    from wae.evaluate import classifier_metrics, conditional_metrics

    test, test_labels, samples, labels = _metric_inputs()
    names = tuple(str(d) for d in range(10))
    outputs = features_and_probs(load_classifier(), samples.float() / 255)
    bad_labels = [
        (labels - 1, "0 to 9; got -1"),  # -1 wrapped to class 9 before
        (labels + 1, "0 to 9; got 1 to 10"),
        (labels[:150], "150 labels for 200 images"),
        (labels.float(), "integer class indices"),
        (labels > 4, "1-d integer tensor"),  # a bool tensor indexes as a mask
        (labels.to(torch.uint8), "1-d integer tensor"),
        (labels[:, None], "1-d integer tensor"),
    ]
    for bad, message in bad_labels:
        with pytest.raises(UserError, match=message):
            conditional_metrics(test, test_labels, samples, bad, names)
        with pytest.raises(UserError, match=message):
            conditional_metrics(test, bad, samples, labels, names)
    with pytest.raises(UserError, match="names of the classes"):
        conditional_metrics(test, test_labels, samples, labels, ())
    assert conditional_metrics(test, test_labels.int(), samples, labels.int(), names)["label_accuracy"] > 0.95
    swapped, three = (outputs[1], outputs[0]), (*outputs, outputs[0])
    for given, message in ((swapped, r"features,: expected \(200, 128\)"), (three, "the pair")):
        with pytest.raises(UserError, match=message):
            classifier_metrics(test, samples, sample_outputs=given)  # type: ignore[arg-type]
        with pytest.raises(UserError, match=message):
            conditional_metrics(test, test_labels, samples, labels, names, sample_outputs=given)  # type: ignore[arg-type]
    with pytest.raises(UserError, match=r"test_features: expected \(200, 128\)"):
        classifier_metrics(test, samples, test_features=outputs[1])
    # outputs of the right shape that the figures cannot use (hostile pass): tracebacks or,
    # for NaN probabilities and logits, plausible-looking figures before
    features, probs = outputs
    nan_rows = probs.clone()
    nan_rows[3] = float("nan")
    unusable = [
        ((features.long(), probs), "expected floats"),
        ((features > 0, probs), "expected floats"),
        ((features.masked_fill(features > 1, float("inf")), probs), "NaN or infinite"),
        ((features, nan_rows), "NaN or infinite"),
        ((features, probs.log()), r"lie in \[0, 1\] and sum to 1"),  # log-probabilities
        ((features, probs * 2), "sum to 1"),
    ]
    test_outputs = features_and_probs(load_classifier(), test.float() / 255)  # read once for every case
    for given, message in unusable:
        with pytest.raises(UserError, match=message):
            classifier_metrics(test, samples, None, test_outputs[0], sample_outputs=given)
        with pytest.raises(UserError, match=message):
            conditional_metrics(test, test_labels, samples, labels, names, test_outputs, sample_outputs=given)
    with pytest.raises(UserError, match="NaN or infinite"):
        classifier_metrics(test, samples, test_features=torch.full((200, 128), float("nan")))
    assert classifier_metrics(test, samples, sample_outputs=(features.half(), probs.double())) == pytest.approx(
        classifier_metrics(test, samples), rel=1e-2
    )
    # class names that cannot key the figures: ints lost label_accuracy, duplicates overwrote,
    # a set filed each class's figures under a name that changed with the hash seed
    from wae.evaluate import sample_metrics

    for bad_names, message in (
        (tuple(range(10)), "one non-empty str per class"),
        (("0",) * 10, "one name"),
        ("0123456789", "in label order"),
        (set(names), "in label order"),
        ((n for n in names), "in label order"),
        (("",) + names[1:], "non-empty"),
    ):
        with pytest.raises(UserError, match=message):
            conditional_metrics(test, test_labels, samples, labels, bad_names, test_outputs, outputs)  # type: ignore[arg-type]
    for conditional in ((test_labels, labels), {"a": 1}, None.__class__):
        with pytest.raises(UserError, match="test labels, sample labels, class names"):
            sample_metrics(test, samples, test_outputs=test_outputs, conditional=conditional)  # type: ignore[arg-type]
