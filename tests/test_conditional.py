"""The conditional WAE (--condition labels): labels from the data, the encoder Q(Z|X, Y) and
decoder G(Z, Y), every objective, checkpoints and resume, sampling by class, style transfer,
the classifier's accuracy on conditional samples, and bad labels as one-line errors.

``python -m tests.test_conditional`` prints the bad-label cases and their messages as the
Markdown table of docs/reliability.md (section "Conditional runs: bad labels")."""

from __future__ import annotations

import collections
import contextlib
import io
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import wae
from wae import checkpoint as ckpt
from wae.cli import main
from wae.config import OBJECTIVES, UserError, validate
from wae.data import class_labels, from_tensor, known_class_labels, load_mnist, load_npz, make_synthetic
from wae.evaluate import balanced_labels, conditional_metrics
from wae.folders import load_class_folders
from wae.model import AutoEncoder
from wae.train import class_grid, fit, latent_penalty, load_model, load_run, per_class_penalty

from .conftest import run_cli, tiny_config
from .test_bad_input import _copy_run, case_table, run_case

TINY = ["--dataset", "synthetic", "--synthetic-size", "16", "--synthetic-count", "128", "--batch-size", "32"]
TINY += ["--precision", "fp32", "--eval-size", "32", "--no-progress"]


def tiny_conditional(objective: str = "mmd", **settings: object) -> wae.Config:
    return tiny_config(objective, **{"condition": "labels", "epochs": 1, **settings})


# ----------------------------------------------------------------------------- networks


def test_the_decoder_reads_the_label_and_unconditional_nets_refuse_labels():
    cfg = tiny_conditional().model
    model = AutoEncoder(cfg, 1, 16, classes=3).eval()
    z = torch.randn(4, cfg.latent_dim)
    a, b = model.decode(z, torch.zeros(4, dtype=torch.long)), model.decode(z, torch.ones(4, dtype=torch.long))
    assert a.shape == (4, 1, 16, 16) and not torch.allclose(a, b)  # the same z, another class
    assert torch.equal(model.decode(z, torch.zeros(4, dtype=torch.long)), a)
    assert model.encode(torch.rand(4, 1, 16, 16), labels=torch.tensor([0, 1, 2, 0])).shape == (4, cfg.latent_dim)
    with pytest.raises(ValueError, match="conditional on 3 classes"):
        model.decode(z)
    plain = AutoEncoder(cfg, 1, 16)
    with pytest.raises(ValueError, match="not conditional"):
        plain.decode(z, torch.zeros(4, dtype=torch.long))
    # the Python API checks labels as the command line does: UserError (a ValueError), not torch's errors
    x = torch.rand(4, 1, 16, 16)
    bad = {
        "must lie in \\[0, 3\\)": [torch.tensor([0, 1, 3, 0]), torch.tensor([-1, 0, 0, 0])],
        "must be integers": [torch.zeros(4), torch.ones(4, dtype=torch.bool)],
        "shape \\(4,\\)": [torch.zeros(3, dtype=torch.long), torch.zeros(4, 1, dtype=torch.long)],
    }
    for message, cases in bad.items():
        for labels in cases:
            for call in (
                lambda y: model.decode(z, y),
                lambda y: model.encode(x, labels=y),
                lambda y: model.sample(4, labels=y),
            ):
                with pytest.raises(UserError, match=message):
                    call(labels)
    with pytest.raises(UserError, match="must lie in"):
        model.interpolate(x, x, steps=3, labels_from=[0, 1, 2, 5], labels_to=[0, 0, 0, 0])
    assert model.interpolate(x, x, steps=3, labels_from=[0, 1, 2, 2], labels_to=[0, 0, 0, 0]).shape == (4, 3, 1, 16, 16)
    torch.testing.assert_close(model.decode(z, [0, 0, 0, 0]), a)  # a list of ints is accepted
    torch.testing.assert_close(model.decode(z, np.zeros(4, dtype=np.uint32)), a)  # and unsigned numpy ints
    assert model.decode(z[:0], []).shape == (0, 1, 16, 16)  # an empty batch takes empty labels
    more_bad = {
        "must be integers": [["0", "1", "2", "0"], [0, 1, None, 0], np.array([0, 1, 2, 0], dtype=object)],
        "one per input": [[[0, 1], [2]]],
        "meta device": [torch.zeros(4, dtype=torch.long, device="meta")],
    }
    for message, cases in more_bad.items():
        for labels in cases:
            with pytest.raises(UserError, match=message):
                model.decode(z, labels)
    # the other inputs of the Python API are checked too, before torch sees them
    for call, message in [
        (lambda: model.decode(z[0], [0]), "codes z must have shape \\(n, 16\\)"),
        (lambda: model.decode(torch.tensor(1.0), [0]), "codes z must have shape"),
        (lambda: model.decode(torch.zeros(4, 3), [0, 1, 2, 0]), "codes z must have shape"),
        (lambda: model.encode(x.numpy(), labels=[0, 1, 2, 0]), "images x must be a floating-point torch.Tensor"),
        (lambda: model.encode(x[:, :, :8], labels=[0, 1, 2, 0]), "images x must have shape \\(n, 1, 16, 16\\)"),
        (lambda: model.interpolate(x, x[:2], labels_from=[0, 1, 2, 0], labels_to=[1, 1]), "must pair up"),
        (lambda: model.interpolate(x, x, steps=0, labels_from=[0] * 4, labels_to=[0] * 4), "steps must be"),
        (lambda: model.sample(-1, labels=[]), "n must be a whole number"),
        (lambda: model.sample(2.0, labels=[0, 1]), "n must be a whole number"),
        (lambda: model.sample(True, labels=[0]), "n must be a whole number"),
    ]:
        with pytest.raises(UserError, match=message):
            call()
    # the label embedding adds label_dim inputs to the code layer and the decoder's first layer
    assert model.encoder.head.in_features == plain.encoder.head.in_features + cfg.label_dim
    assert model.decoder.fc.in_features == cfg.latent_dim + cfg.label_dim


def test_the_class_grid_has_a_row_per_class_and_a_column_per_code():
    model = AutoEncoder(tiny_conditional().model, 1, 16, classes=3).eval()
    z = torch.randn(5, model.latent_dim)
    grid = class_grid(model, z)
    assert grid.shape == (15, 1, 16, 16)
    assert torch.allclose(grid[5:10], model.decode(z, torch.full((5,), 1)))


# ----------------------------------------------------------------------------- labels from the data


def test_labels_become_indices_into_the_sorted_distinct_values():
    y, names = class_labels(np.array([5, 2, 5, 9]), 4, "y")
    assert y.tolist() == [1, 0, 1, 2] and names == ("2", "5", "9")
    assert known_class_labels(np.array([[9], [2]]), 2, names, "y_test").tolist() == [2, 0]
    for bad, match in [
        (np.array([1, 2, 3]), "3 labels for 4 images"),
        (np.array([1.0, 2.0, 1.0, 2.0]), "must be integers"),
        (np.array(["a", "b", "a", "b"]), "must be integers"),
        (np.zeros((4, 2), dtype=int), "shape"),
        (np.array([7, 7, 7, 7]), "single class"),
    ]:
        with pytest.raises(UserError, match=match):
            class_labels(bad, 4, "y")
    with pytest.raises(UserError, match="class\\(es\\) 4"):
        known_class_labels(np.array([4]), 1, names, "y_test")


def test_mnist_and_synthetic_data_carry_their_classes():
    mnist = load_mnist()
    assert mnist.classes == tuple("0123456789") and mnist.train_labels is not None
    synthetic = make_synthetic(count=64, size=16)
    assert synthetic.classes == ("top-left", "top-right", "bottom-left", "bottom-right")
    assert synthetic.train_labels is not None
    # the blob of a "right" image is brighter in its right half
    right = synthetic.train_labels % 2 == 1
    halves = synthetic.train[:, 0, :, 8:].sum((1, 2)) > synthetic.train[:, 0, :, :8].sum((1, 2))
    assert torch.equal(halves, right)


def test_an_npz_gives_labels_with_its_split(tmp_path):
    x = np.random.default_rng(0).integers(0, 255, (20, 8, 8), dtype=np.uint8)
    np.savez(tmp_path / "a.npz", x_train=x, y_train=np.arange(20) % 3)
    data = load_npz(tmp_path / "a.npz", labels=True)
    assert data.classes == ("0", "1", "2") and len(data.test) == 2
    assert data.train_labels.tolist() == (np.arange(18) % 3).tolist() and data.test_labels.tolist() == [0, 1]
    assert load_npz(tmp_path / "a.npz").train_labels is None  # unconditional runs ignore labels
    np.savez(
        tmp_path / "b.npz", x_train=x, y_train=np.arange(20) % 3 + 10, x_test=x[:4], y_test=np.array([12, 10, 10, 11])
    )
    data = load_npz(tmp_path / "b.npz", labels=True)
    assert data.classes == ("10", "11", "12") and data.test_labels.tolist() == [2, 0, 0, 1]


def _image_folder(root: Path, classes: dict[str, int]) -> Path:
    for name, count in classes.items():
        (root / name).mkdir(parents=True)
        for i in range(count):
            value = 40 * len(name) + i
            Image.fromarray(np.full((16, 16), value, dtype=np.uint8)).save(root / name / f"{i:02d}.png")
    return root


def test_an_image_folder_gives_its_subfolders_as_classes_in_both_splits(tmp_path):
    root = _image_folder(tmp_path / "pets", {"cat": 10, "dog": 10, "bird": 5})
    for cache in (True, False):
        data = load_class_folders(root, 16, grey=True, cache=cache)
        assert data.classes == ("bird", "cat", "dog")
        assert data.train_labels.tolist() == [0] * 4 + [1] * 9 + [2] * 9
        assert data.test_labels.tolist() == [0, 1, 2]
        # the images are those of their class folder (each class has its own grey level)
        assert data.train[0][0, 0, 0].item() == 160 and data.train[4][0, 0, 0].item() == 120


# ----------------------------------------------------------------------------- training


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_every_objective_trains_a_conditional_wae(objective, tmp_path):
    cfg = tiny_conditional(objective, max_steps=2, eval_every=0)
    torch.manual_seed(0)
    before = AutoEncoder(cfg.model, 1, 16, cfg.loss.prior, cfg.loss.prior_var, classes=4)
    run = fit(cfg, tmp_path / "run", progress=False)
    assert run.step == 2 and run.classes == ("top-left", "top-right", "bottom-left", "bottom-right")
    # the label embeddings got gradients through the loss, in the encoder and the decoder
    for net in ("encoder", "decoder"):
        trained = getattr(run.model, net).labels.embed.weight
        assert not torch.allclose(trained, getattr(before, net).labels.embed.weight), net
    payload = ckpt.load_latest(tmp_path / "run")[0]
    assert payload["data"]["classes"] == 4 and payload["data"]["class_names"][0] == "top-left"
    if objective == "gan":  # the class penalty's adversary reads each code's class, one-hot
        assert payload["adversary"]["net.0.weight"].shape[1] == cfg.model.latent_dim + 4
    model, _ = load_model(tmp_path / "run")
    assert model.classes == 4 and load_run(tmp_path / "run").class_names == run.classes
    assert (tmp_path / "run" / "classes.png").is_file() and (
        tmp_path / "run" / "grids" / "classes-epoch000.png"
    ).is_file()
    # the report's caption names the rows (it named none before); one objective is enough
    from wae.report import render_report

    assert (
        objective != "mmd"
        or "rows, top to bottom: top-left, top-right, bottom-left, bottom-right;" in render_report(tmp_path / "run")
    )


def test_a_conditional_run_resumes_to_the_weights_of_one_that_never_stopped(tmp_path):
    cfg = tiny_conditional(epochs=2, eval_every=0)
    whole = fit(cfg, tmp_path / "whole", progress=False)
    fit(wae.override(cfg, max_steps=4), tmp_path / "split", progress=False)
    resumed = fit(cfg, tmp_path / "split", resume=True, progress=False)
    assert resumed.step == whole.step == 8
    for (name, a), b in zip(whole.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("objective,ratio", [("mmd", 5), ("swd", 5), ("sinkhorn", 5), ("cw", 1.5)])
def test_the_class_penalty_sees_codes_that_carry_the_class(objective, ratio):
    """Codes that are exactly a prior sample, but split by class on the sign of their first
    coordinate: Q_Z is P_Z (the marginal penalty is near 0) while no Q(Z|Y=y) is (the class
    penalty is large); with labels independent of the codes both are near 0. (Measured ratios
    at d = 2: 24, 8, 7 and 1.7; the Cramer-Wold closed form is a rough approximation in 2-D.)"""
    cfg = tiny_config(objective, latent_dim=2)
    generator = torch.Generator().manual_seed(0)
    codes, prior = torch.randn(400, 2, generator=generator), torch.randn(400, 2, generator=generator)
    split = (codes[:, 0] > 0).long()
    independent = torch.randint(2, (400,), generator=generator)
    marginal = latent_penalty(cfg, codes, prior, torch.Generator().manual_seed(1)).item()
    by_class = per_class_penalty(cfg, codes, prior, split, torch.Generator().manual_seed(1)).item()
    mixed = per_class_penalty(cfg, codes, prior, independent, torch.Generator().manual_seed(1)).item()
    assert by_class > ratio * max(abs(marginal), abs(mixed)), (marginal, by_class, mixed)
    one_class = per_class_penalty(
        cfg, codes, prior, torch.zeros(400, dtype=torch.long), torch.Generator().manual_seed(1)
    )
    assert one_class.item() == pytest.approx(marginal)


def test_without_the_class_penalty_the_adversary_sees_codes_alone(tmp_path):
    fit(tiny_conditional("gan", max_steps=1, eval_every=0, class_penalty=False), tmp_path / "run", progress=False)
    payload = ckpt.load_latest(tmp_path / "run")[0]
    assert payload["adversary"]["net.0.weight"].shape[1] == payload["config"]["model"]["latent_dim"]


def test_conditional_runs_need_labels_and_their_data_must_keep_its_classes(tmp_path, tiny_data):
    tiny_data.train_labels = tiny_data.test_labels = None
    with pytest.raises(UserError, match="needs class labels"):
        fit(tiny_conditional(), data=tiny_data)
    with pytest.raises(UserError, match="CelebA"):
        validate(wae.override(tiny_conditional(), dataset="celeba", path="x"))
    cfg = tiny_conditional(eval_every=0)
    fit(cfg, tmp_path / "run", progress=False)
    other = make_synthetic(128, 16)
    other.classes = ("a", "b", "c", "d")
    with pytest.raises(UserError, match="trained on the classes top-left"):
        fit(wae.override(cfg, epochs=2), tmp_path / "run", data=other, resume=True, progress=False)


def test_fit_tensor_takes_labels_and_checks_them():
    data = make_synthetic(64, 16)
    run = wae.fit_tensor(
        data.train, labels=data.train_labels, config=tiny_config(), max_steps=1, eval_every=0, condition="labels"
    )
    assert run.model.classes == 4 and run.classes == ("0", "1", "2", "3")
    with pytest.raises(UserError, match="63 labels for 64 images"):
        from_tensor(data.train, labels=data.train_labels[:63])
    with pytest.raises(UserError, match="without test_labels"):
        from_tensor(data.train, data.test, labels=data.train_labels)
    with pytest.raises(UserError, match="must be a torch.Tensor or a numpy array"):
        from_tensor(data.train, labels=[0, 1] * 32)


# ----------------------------------------------------------------------------- sampling, style transfer, evaluation


@pytest.fixture(scope="module")
def conditional_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("conditional") / "run"
    assert main(["train", *TINY, "--condition", "labels", "--max-steps", "2", "--out", str(run)]) == 0
    return run


def test_sample_by_label_decodes_the_same_codes_for_every_class(conditional_run, tmp_path):
    out = tmp_path / "s.npz"
    assert run_cli(["sample", str(conditional_run), "--label", "top-right,0", "--n", "3", "--out", str(out)])[0] == 0
    with np.load(out) as f:
        images, labels, names = f["images"], f["labels"], f["class_names"]
    assert images.shape == (6, 16, 16) and labels.tolist() == [1, 1, 1, 0, 0, 0] and names[1] == "top-right"
    model, _ = load_model(conditional_run)
    z = model.prior_sample(3, torch.Generator().manual_seed(0))
    expected = (model.decode(z, torch.zeros(3, dtype=torch.long)).clamp(0, 1) * 255 + 0.5).to(torch.uint8)
    assert np.array_equal(images[3:], expected[:, 0].numpy())  # class 0, the same 3 codes


def test_reconstruct_with_a_label_transfers_the_style(conditional_run, tmp_path):
    out = tmp_path / "r.npz"
    assert (
        run_cli(["reconstruct", str(conditional_run), "--label", "bottom-left", "--n", "4", "--out", str(out)])[0] == 0
    )
    model, cfg = load_model(conditional_run)
    data = make_synthetic(128, 16)
    with torch.no_grad():
        codes = model.encode(data.test[:4], labels=data.test_labels[:4])
        expected = model.decode(codes, torch.full((4,), 2))
    with np.load(out) as f:
        assert np.array_equal(f["images"], (expected.clamp(0, 1) * 255 + 0.5).to(torch.uint8)[:, 0].numpy())


def test_the_commands_that_encode_test_images_give_them_their_labels(conditional_run, tmp_path):
    """fit-sampler, interpolate, compare and report encode test (or training) images: a
    conditional model needs their labels, and the mixture's samples decode by class."""
    run = tmp_path / "run"
    shutil.copytree(conditional_run, run)
    assert run_cli(["fit-sampler", str(run), "--components", "2"])[0] == 0
    assert (
        run_cli(["sample", str(run), "--sampler", "gmm", "--label", "1", "--n", "4", "--out", str(tmp_path / "g.png")])[
            0
        ]
        == 0
    )
    assert run_cli(["interpolate", str(run), "--pairs", "2", "--steps", "3", "--out", str(tmp_path / "i.npz")])[0] == 0
    assert run_cli(["compare", str(run), "--out", str(tmp_path / "cmp")])[0] == 0
    assert run_cli(["report", str(run)])[0] == 0
    with np.load(tmp_path / "i.npz") as f:
        assert f["images"].shape == (6, 16, 16)
    assert "classes.png" in (run / "report.md").read_text()


def test_the_classifier_reads_real_digits_as_their_labels_and_not_as_others():
    """Known answer for the conditional metrics: real test digits as the "samples" of their own
    labels are read as their class (the shipped classifier's accuracy, about 99 %); the same
    images said to be of the next class almost never are."""
    mnist = load_mnist()
    test, test_labels = mnist.test[:1000].float() / 255, mnist.test_labels[:1000]
    samples, labels = mnist.test[1000:1600].float() / 255, mnist.test_labels[1000:1600]
    right = conditional_metrics(test, test_labels, samples, labels, mnist.classes)
    assert right["label_accuracy"] > 0.97 and min(right[f"label_accuracy_{d}"] for d in range(10)) > 0.85
    wrong = conditional_metrics(test, test_labels, samples, (labels + 1) % 10, mnist.classes)
    # 60 samples a class against 100 test images: real digits of the right class are at 28
    # (the estimator's bias with so few), of the wrong class at about 2100
    assert wrong["label_accuracy"] < 0.05 and wrong["fd_class_mean"] > 20 * right["fd_class_mean"]
    assert right["label_accuracy_test"] > 0.97
    from wae.classifier import features_and_probs, load_classifier

    outputs = features_and_probs(load_classifier(), test)  # given once, as training caches them
    assert conditional_metrics(test, test_labels, samples, labels, mnist.classes, outputs) == right
    given = features_and_probs(load_classifier(), samples)
    assert conditional_metrics(test, test_labels, samples, labels, mnist.classes, outputs, given) == right
    with pytest.raises(ValueError, match="rows for 600 images"):  # another set's outputs: refused
        conditional_metrics(test, test_labels, samples, labels, mnist.classes, outputs, (given[0][:9], given[1][:9]))
    assert balanced_labels(7, 3).tolist() == [0, 1, 2, 0, 1, 2, 0]
    # ten classes named 0-9 that are not digits (the test images' labels shuffled, as clothing
    # or letters would be to this classifier): no label accuracy, which would have no meaning
    shuffled = test_labels[torch.randperm(len(test_labels), generator=torch.Generator().manual_seed(0))]
    other = conditional_metrics(test, shuffled, samples, labels, mnist.classes)
    assert other["label_accuracy_test"] < 0.3 and "label_accuracy" not in other and "label_accuracy_3" not in other
    assert "fd_class_mean" in other


def _count_classifier_passes(monkeypatch: pytest.MonkeyPatch) -> collections.Counter[float]:
    """A counter, keyed by the pixel sum of the images, of the classifier passes from now on."""
    import wae.classifier

    seen: collections.Counter[float] = collections.Counter()
    real = wae.classifier.features_and_probs

    def counted(classifier, images):  # type: ignore[no-untyped-def]
        seen[round(float(images.double().sum()), 3)] += 1
        return real(classifier, images)

    monkeypatch.setattr(wae.classifier, "features_and_probs", counted)
    return seen


def test_evaluating_a_conditional_mnist_model_reads_each_image_set_once(monkeypatch):
    """``wae evaluate`` of a conditional model: the test images, the samples and the
    reconstructions each go through the classifier once, for both kinds of metric."""
    from wae.evaluate import evaluate_run

    seen = _count_classifier_passes(monkeypatch)
    mnist = load_mnist()
    data = from_tensor(mnist.train[:64], mnist.test[:50], mnist.train_labels[:64], mnist.test_labels[:50])
    torch.manual_seed(0)
    model = AutoEncoder(tiny_config().model, 1, 28, classes=10).eval()
    metrics = evaluate_run(model, data, "01", samples=40)
    assert "fd_samples" in metrics and "fd_class_mean" in metrics
    assert sorted(seen.values()) == [1, 1, 1], seen  # test images, reconstructions, samples


def test_sample_metrics_are_the_two_metrics_with_each_image_set_read_once(monkeypatch):
    """``sample_metrics`` gives what ``classifier_metrics`` and ``conditional_metrics`` give
    apart, reads each image set once, hands back the test outputs for the next evaluation, and
    with them given reads only the samples; the classifier is loaded only when something is
    left to read."""
    import wae.classifier
    from wae.classifier import features_and_probs, load_classifier
    from wae.evaluate import classifier_images, classifier_metrics, conditional_metrics, sample_metrics

    mnist = load_mnist()
    test, test_labels = mnist.test[:60], mnist.test_labels[:60]
    generated, labels = mnist.train[:40], mnist.train_labels[:40]
    classes = tuple(str(d) for d in range(10))
    apart = classifier_metrics(test, generated, mnist.train[40:80])
    apart.update(conditional_metrics(test, test_labels, generated, labels, classes))
    seen = _count_classifier_passes(monkeypatch)
    together, test_outputs = sample_metrics(test, generated, mnist.train[40:80], None, (test_labels, labels, classes))
    assert together == pytest.approx(apart, nan_ok=True) and set(together) == set(apart)
    assert sorted(seen.values()) == [1, 1, 1], seen  # test images, samples, reconstructions
    assert torch.equal(test_outputs[0], features_and_probs(load_classifier(), classifier_images(test))[0])
    seen.clear()
    again, _ = sample_metrics(test, generated, test_outputs=test_outputs, conditional=(test_labels, labels, classes))
    assert list(seen.values()) == [1]  # the samples only
    assert again == pytest.approx({k: v for k, v in apart.items() if k != "fd_reconstructions"}, nan_ok=True)
    # every output given: nothing is read and no classifier is built
    loads = []
    monkeypatch.setattr(wae.classifier, "load_classifier", lambda: loads.append(1) or load_classifier())
    sample_outputs = features_and_probs(load_classifier(), classifier_images(generated))
    seen.clear()
    assert classifier_metrics(test, generated, None, test_outputs[0], sample_outputs) == pytest.approx(
        {k: v for k, v in apart.items() if k in again and not k.startswith(("fd_class", "label_"))}
    )
    conditional_metrics(test, test_labels, generated, labels, classes, test_outputs, sample_outputs)
    assert not seen and not loads
    # bad labels are refused as conditional_metrics refuses them
    with pytest.raises(UserError, match="labels"):
        sample_metrics(test, generated, conditional=(test_labels, labels[:10], classes))


@pytest.mark.slow  # about 40 s on one contended core: 80 steps on 1000 MNIST digits, 4 evaluations
def test_a_conditional_mnist_run_reports_label_accuracy(tmp_path, monkeypatch):
    seen = _count_classifier_passes(monkeypatch)
    mnist = load_mnist()
    run = wae.fit_tensor(
        mnist.train[:1000], test_images=mnist.test[:300], labels=mnist.train_labels[:1000],
        test_labels=mnist.test_labels[:300], out=tmp_path / "run", epochs=4, eval_size=300, batch_size=50,
        precision="fp32",
    )  # fmt: skip
    assert "fd_class_mean" in run.metrics and "label_accuracy_9" in run.metrics
    assert run.metrics["label_accuracy"] > 0.4  # chance is 0.1; measured 0.68
    # the test images went through the classifier once for the four per-epoch evaluations, and
    # each evaluation's samples once for both kinds of metric, not once per epoch and metric
    assert max(seen.values()) == 1 and len(seen) == 1 + 4, seen.most_common(3)


# ----------------------------------------------------------------------------- bad labels


def _npz_case(**arrays: np.ndarray) -> Callable[[Path, Path], list[str]]:
    def setup(tmp: Path, run: Path) -> list[str]:
        np.savez(tmp / "d.npz", **arrays)
        return ["train", "--data", "d.npz", "--condition", "labels", "--no-progress"]

    return setup


def _folder_case(classes: dict[str, int], loose: int = 0) -> Callable[[Path, Path], list[str]]:
    def setup(tmp: Path, run: Path) -> list[str]:
        _image_folder(tmp / "images", classes)
        for i in range(loose):
            Image.fromarray(np.zeros((16, 16), dtype=np.uint8)).save(tmp / "images" / f"loose{i}.png")
        return ["train", "--data", "images", "--condition", "labels", "--image-size", "16", "--no-progress"]

    return setup


def _class_names_edit(names: object) -> Callable[[Path], None]:
    def edit(run: Path) -> None:
        for path in ckpt.run_checkpoints(run):
            payload = ckpt.load(path)
            payload["data"]["class_names"] = names
            ckpt.save_atomic(payload, path)

    return edit


def _argv_case(*argv: str) -> Callable[[Path, Path], list[str]]:
    return lambda tmp, run: [str(run) if a == "RUN" else str(run.parent / "plain") if a == "PLAIN" else a for a in argv]


X = np.zeros((40, 16, 16), dtype=np.uint8)
Y = np.arange(40) % 4
CASES: list[tuple[str, str, Callable[[Path, Path], list[str]]]] = [
    ("labels", "npz without y_train", _npz_case(x_train=X)),
    ("labels", "npz y_train of the wrong length", _npz_case(x_train=X, y_train=Y[:39])),
    ("labels", "npz y_train of floats", _npz_case(x_train=X, y_train=Y.astype(float))),
    ("labels", "npz y_train of strings", _npz_case(x_train=X, y_train=Y.astype(str))),
    ("labels", "npz y_train of shape (n, 2)", _npz_case(x_train=X, y_train=np.stack([Y, Y], 1))),
    ("labels", "npz y_train of one class", _npz_case(x_train=X, y_train=np.zeros(40, dtype=int))),
    ("labels", "npz x_test without y_test", _npz_case(x_train=X, y_train=Y, x_test=X[:8])),
    ("labels", "npz y_test with a class y_train lacks", _npz_case(x_train=X, y_train=Y, x_test=X[:2], y_test=np.array([0, 9]))),
    ("labels", "folder with one class sub-folder", _folder_case({"cat": 5})),
    ("labels", "folder with images outside class sub-folders", _folder_case({"cat": 5, "dog": 5}, loose=1)),
    ("labels", "folder class with 2 images", _folder_case({"cat": 5, "dog": 2})),
    ("labels", "--label-dim 0", _argv_case("train", *TINY, "--condition", "labels", "--label-dim", "0")),
    ("label", "sample --label on an unconditional run", _argv_case("sample", "PLAIN", "--label", "1", "--out", "s.png")),
    ("label", "sample --label of an unknown class", _argv_case("sample", "RUN", "--label", "cat", "--out", "s.png")),
    ("label", "sample --label index out of range", _argv_case("sample", "RUN", "--label", "4", "--out", "s.png")),
    ("label", "reconstruct --label with a list", _argv_case("reconstruct", "RUN", "--label", "0,1", "--out", "r.png")),
    ("label", "reconstruct --label on an unconditional run", _argv_case("reconstruct", "PLAIN", "--label", "0", "--out", "r.png")),
    ("checkpoint", "class names missing from a conditional checkpoint", _copy_run(_class_names_edit(None), "sample", "RUN", "--out", "s.png")),
    ("checkpoint", "class names repeated in a conditional checkpoint", _copy_run(_class_names_edit(["a", "a", "b", "c"]), "sample", "RUN", "--out", "s.png")),
]  # fmt: skip


@pytest.fixture(scope="module")
def runs_for_cases(conditional_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    plain = conditional_run.parent / "plain"
    assert main(["train", *TINY, "--max-steps", "1", "--out", str(plain)]) == 0
    return conditional_run


@pytest.mark.parametrize("group,what,setup", CASES, ids=[c[1] for c in CASES])
def test_bad_labels_exit_2_with_one_line(group, what, setup, runs_for_cases, tmp_path):
    code, err = run_case(setup, tmp_path, runs_for_cases)
    assert code == 2, err
    assert err.count("\n") == 1 and "error" in err and "Traceback" not in err, err


def markdown(tmp_root: Path) -> str:
    """Run every case and return the Markdown table of docs/reliability.md."""
    run = tmp_root / "run"
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        main(["train", *TINY, "--condition", "labels", "--max-steps", "2", "--out", str(run)])
        main(["train", *TINY, "--max-steps", "1", "--out", str(tmp_root / "plain")])
    return case_table(CASES, tmp_root, run)


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        print(markdown(Path(tmp)))


def test_the_class_penalty_takes_each_rows_prior_draws():
    """loss.prior_draws = 3: the prior holds 3 draws for every code (row j of draw block i is
    prior[i * n + j]); each class is matched to the draws of its own rows, so a single class
    gives the marginal penalty with all 3n draws."""
    cfg = tiny_config("mmd", latent_dim=2, prior_draws=3)
    generator = torch.Generator().manual_seed(0)
    codes, prior = torch.randn(60, 2, generator=generator) + 0.5, torch.randn(180, 2, generator=generator)
    one_class = per_class_penalty(cfg, codes, prior, torch.zeros(60, dtype=torch.long))
    assert one_class.item() == pytest.approx(latent_penalty(cfg, codes, prior).item())
    halves = (torch.arange(60) >= 30).long()
    by_hand = sum(
        0.5 * latent_penalty(cfg, codes[h], prior.reshape(3, 60, 2)[:, h].reshape(-1, 2))
        for h in (halves == 0, halves == 1)
    )
    assert per_class_penalty(cfg, codes, prior, halves).item() == pytest.approx(float(by_hand))


def test_a_label_names_a_class_before_it_is_read_as_a_list_an_index_or_all():
    # class folders 10, 2, 3, "a,b" and "all": --label all drew every class, --label a,b was
    # refused though "a,b" is listed as a class, --label 02 was read as index 2, the class "3"
    from wae.cli import resolve_labels

    classes = ("10", "2", "3", "a,b", "all")
    assert resolve_labels("all", classes) == [4] and resolve_labels("a,b", classes) == [3]
    assert resolve_labels("2", classes) == [1] and resolve_labels("10,3", classes) == [0, 2]
    with pytest.raises(UserError, match=r"^--label 02: not a class of this run \(classes: 10, 2, 3, a,b, all\)$"):
        resolve_labels("02", classes)  # classes named by numbers: no index is read
    named = ("cat", "dog")
    assert resolve_labels("1", named) == [1] and resolve_labels("all", named) == [0, 1]
    with pytest.raises(UserError, match="or an index below 2"):
        resolve_labels("2", named)
    # a class named twice drew its row twice
    with pytest.raises(UserError, match=r"^--label 3,10,3: names the class 3 twice; name each class once$"):
        resolve_labels("3,10,3", classes)
    with pytest.raises(UserError, match=r"^--label dog,1: names the class dog twice \(as dog and 1\); name each"):
        resolve_labels("dog,1", named)
