"""Ex-post Gaussian-mixture sampler: fitting, sampling, storage and the commands around it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from wae.cli import main
from wae.config import UserError
from wae.export import export_run
from wae.samplers import GaussianMixture, fit_gmm, fitted_to, load_gmm, save_gmm

from .conftest import SMALL_RUN

TINY = [*SMALL_RUN]


def _two_clusters(n: int = 2000) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n // 2, 3, generator=gen) * 0.3 + torch.tensor([4.0, 0.0, 0.0])
    b = torch.randn(n - n // 2, 3, generator=gen) * torch.tensor([1.0, 0.5, 0.2]) - torch.tensor([4.0, 0.0, 0.0])
    return torch.cat([a, b])


def test_fit_recovers_separated_clusters_and_samples_match_them():
    mixture = fit_gmm(_two_clusters(), components=2)
    assert mixture.means.dtype == torch.float64  # as scikit-learn fitted it
    mixture = GaussianMixture(mixture.weights.float(), mixture.means.float(), mixture.covariances.float())
    order = mixture.means[:, 0].argsort()
    assert torch.allclose(mixture.means[order, 0], torch.tensor([-4.0, 4.0]), atol=0.1)
    assert torch.allclose(mixture.weights, torch.tensor([0.5, 0.5]), atol=0.02)
    assert torch.allclose(torch.diagonal(mixture.covariances[order[0]]), torch.tensor([1.0, 0.25, 0.04]), rtol=0.15)
    draws = mixture.sample(20_000, torch.Generator().manual_seed(1))
    assert draws.shape == (20_000, 3)
    assert (draws[:, 0] > 0).float().mean().item() == pytest.approx(0.5, abs=0.02)
    right = draws[draws[:, 0] > 0]
    assert right.std(0) == pytest.approx(torch.full((3,), 0.3), abs=0.03)
    again = mixture.sample(5, torch.Generator().manual_seed(1))
    assert torch.equal(again, mixture.sample(5, torch.Generator().manual_seed(1)))  # seeded


def test_log_density_matches_scikit_learn():
    from sklearn.mixture import GaussianMixture as SkGaussianMixture

    codes = _two_clusters(600)
    sk = SkGaussianMixture(3, random_state=0).fit(codes.double().numpy())
    ours = GaussianMixture(
        torch.from_numpy(sk.weights_), torch.from_numpy(sk.means_), torch.from_numpy(sk.covariances_)
    )
    expected = sk.score_samples(codes[:50].double().numpy())
    assert np.allclose(ours.log_density(codes[:50].double()).numpy(), expected, atol=1e-8)


def test_diag_covariances_are_stored_as_matrices(tmp_path):
    mixture = fit_gmm(_two_clusters(400), components=2, covariance="diag")
    assert mixture.covariances.shape == (2, 3, 3)
    off_diagonal = mixture.covariances - torch.diag_embed(torch.diagonal(mixture.covariances, dim1=1, dim2=2))
    assert off_diagonal.abs().max().item() == 0.0


def test_save_load_round_trip_and_clear_errors(tmp_path):
    mixture = fit_gmm(_two_clusters(400), components=2)
    save_gmm(mixture, tmp_path / "g.npz")
    loaded = load_gmm(tmp_path / "g.npz")
    assert torch.equal(loaded.means, mixture.means) and torch.equal(loaded.covariances, mixture.covariances)
    with pytest.raises(UserError, match="fit-sampler"):
        load_gmm(tmp_path / "missing.npz")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(UserError, match="not a readable"):
        load_gmm(tmp_path / "bad.npz")
    with pytest.raises(UserError, match="cannot fit"):
        fit_gmm(torch.zeros(3, 2), components=10)


def test_fit_sampler_then_sample_and_evaluate_with_it(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *TINY, "--max-steps", "4", "--fit-sampler", "none", "--out", str(run)]) == 0
    assert main(["sample", str(run), "--sampler", "gmm", "--out", str(tmp_path / "s.png")]) == 2  # not fitted yet
    assert main(["fit-sampler", str(run), "--components", "3"]) == 0
    assert "mean log-density of test codes: fitted mixture" in capsys.readouterr().out
    assert main(["sample", str(run), "--sampler", "gmm", "--n", "8", "--out", str(tmp_path / "s.npz")]) == 0
    assert np.load(tmp_path / "s.npz")["images"].shape == (8, 28, 28)
    assert main(["evaluate", str(run), "--sampler", "gmm", "--n", "40", "--no-fid"]) == 0
    metrics = json.loads((run / "metrics-gmm.json").read_text())
    assert "fd_samples" in metrics and not (run / "metrics.json").exists()


def test_a_sampler_fitted_to_other_weights_is_refused_until_refitted(tmp_path, capsys):
    run, out = tmp_path / "run", str(tmp_path / "s.png")
    # fitted at the end of training (train.fit_sampler) and by hand: both accepted as they are
    assert main(["train", *TINY, "--max-steps", "4", "--fit-sampler", "gmm", "--out", str(run)]) == 0
    assert main(["fit-sampler", str(run), "--kind", "vae", "--hidden", "8"]) == 0
    for kind in ("gmm", "vae"):
        assert main(["sample", str(run), "--sampler", kind, "--n", "4", "--out", out]) == 0
    assert (run / "samples-gmm.png").is_file() and (run / "samples-vae.png").is_file()
    # trained further: the stored samplers describe the codes of the old weights; their grids go
    assert main(["train", "--resume", str(run), "--max-steps", "8", "--fit-sampler", "none", "--no-progress"]) == 0
    assert "sampler-vae.pt was fitted to the weights before this session" in capsys.readouterr().err
    assert not (run / "samples-gmm.png").exists() and not (run / "samples-vae.png").exists()
    assert "samples-gmm.png" not in (run / "report.html").read_text()
    # an export leaves the stale mixture out, with a warning
    with pytest.warns(UserWarning, match="fitted to other weights"):
        export_run(run, tmp_path / "export")
    assert not (tmp_path / "export" / "sampler-gmm.npz").exists()
    for argv in (["sample", str(run), "--n", "4", "--out", out], ["evaluate", str(run), "--n", "8", "--no-fid"]):
        assert main([*argv, "--sampler", "vae"]) == 2
        err = capsys.readouterr().err
        assert "fitted to the codes of other weights" in err and f"wae fit-sampler {run} --kind vae" in err
        assert len(err.strip().splitlines()) == 1
    assert main(["sample", str(run), "--sampler", "gmm", "--n", "4", "--out", out]) == 2
    assert main(["fit-sampler", str(run)]) == 0  # refitted: accepted again
    assert main(["sample", str(run), "--sampler", "gmm", "--n", "4", "--out", out]) == 0
    # a fingerprint entry of another type is damage, not an older file
    for kind, file in (("gmm", "sampler-gmm.npz"), ("vae", "sampler-vae.pt")):
        for crafted in (12345, b"dead", ["dead"], None, "x" * 100):
            if kind == "gmm":
                with np.load(run / file) as f:
                    arrays = {k: f[k] for k in ("weights", "means", "covariances")}
                np.savez(run / file, **arrays, fitted_to=np.array(crafted, dtype=object if crafted is None else None))
            else:
                payload = torch.load(run / file, weights_only=True)
                torch.save({**payload, "fitted_to": crafted}, run / file)
            with pytest.raises(UserError, match="not a readable sampler file"):
                fitted_to(run / file, kind)
        capsys.readouterr()  # and through the command line, once per kind
        assert main(["sample", str(run), "--sampler", kind, "--n", "4", "--out", out]) == 2
        assert "not a readable sampler file" in capsys.readouterr().err
    assert main(["fit-sampler", str(run)]) == 0
    # a file written before the fingerprint existed carries none and is not checked
    with np.load(run / "sampler-gmm.npz") as f:
        np.savez(run / "sampler-gmm.npz", **{k: f[k] for k in ("weights", "means", "covariances")})
    assert main(["train", "--resume", str(run), "--max-steps", "10", "--fit-sampler", "none", "--no-progress"]) == 0
    assert main(["sample", str(run), "--sampler", "gmm", "--n", "4", "--out", out]) == 0


def test_stale_grids_are_found_with_one_hash_of_the_weights(tmp_path, monkeypatch):
    from wae import checkpoint, train
    from wae.samplers import is_stale

    run = tmp_path / "run"
    assert main(["train", *TINY, "--max-steps", "2", "--fit-sampler", "gmm", "--out", str(run)]) == 0
    assert main(["fit-sampler", str(run), "--kind", "vae", "--hidden", "8"]) == 0
    model, _ = train.load_model(run)
    fingerprint = checkpoint.weights_fingerprint(model)
    assert not is_stale(run / "sampler-gmm.npz", "gmm", fingerprint) and not is_stale(
        run / "sampler-gmm.npz", "gmm", model
    )
    assert is_stale(run / "sampler-vae.pt", "vae", "0" * len(fingerprint))
    with torch.no_grad():
        next(model.parameters()).add_(1.0)  # other weights, as after a resumed run
    calls = []
    monkeypatch.setattr(checkpoint, "weights_fingerprint", lambda m: calls.append(1) or fingerprint[::-1])
    said = []
    assert train.drop_stale_grids(model, run, said.append)
    assert len(calls) == 1 and len(said) == 2  # two stale samplers, the weights hashed once
    assert not (run / "samples-gmm.png").exists() and not (run / "samples-vae.png").exists()


def test_ill_conditioned_codes_sample_as_scikit_learn_does():
    # 8-D codes on a 7-D subspace at scale 10: covariances with condition number ~1e8, beyond
    # a float32 Cholesky factor (3 of 10 fail); scikit-learn samples from them, so must we
    from sklearn.mixture import GaussianMixture as SkGaussianMixture

    gen = torch.Generator().manual_seed(0)
    basis = torch.linalg.qr(torch.randn(8, 7, generator=gen, dtype=torch.float64)).Q
    codes = ((torch.randn(2000, 7, generator=gen, dtype=torch.float64) * 10) @ basis.T).float()
    sk = SkGaussianMixture(10, random_state=0, reg_covar=1e-6).fit(codes.double().numpy())
    assert sk.sample(100)[0].shape == (100, 8)
    assert not all(torch.linalg.cholesky_ex(torch.from_numpy(sk.covariances_).float()).info == 0)
    mixture = fit_gmm(codes, components=10)
    draws = mixture.sample(5000, torch.Generator().manual_seed(1))
    assert draws.dtype == torch.float32 and torch.isfinite(draws).all()
    normal = torch.linalg.svd(basis.T @ torch.eye(8, dtype=torch.float64), full_matrices=True).Vh[-1]
    assert (draws.double() @ normal).abs().max().item() < 0.05  # on the subspace, as the codes
    assert draws.std(0).double() == pytest.approx(codes.double().std(0), rel=0.1)


def _stored(path, **change):
    mixture = fit_gmm(_two_clusters(400), components=2)
    arrays = {
        "weights": mixture.weights.numpy(),
        "means": mixture.means.numpy(),
        "covariances": mixture.covariances.numpy(),
    }
    arrays.update(change)
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    "change,message",
    [
        ({"means": np.full((2, 3), np.nan)}, "means hold NaN"),
        ({"weights": np.array([1.5, -0.5])}, "weights must be finite, >= 0"),
        ({"weights": np.array([0.2, 0.2])}, "sum to 1"),
        ({"weights": np.array([np.nan, 1.0])}, "weights must be finite"),
        ({"covariances": np.stack([-np.eye(3), np.eye(3)])}, "not positive definite"),
        ({"covariances": np.stack([np.eye(3) + np.triu(np.ones((3, 3)), 1), np.eye(3)])}, "not symmetric"),
        ({"covariances": np.full((2, 3, 3), np.inf)}, "covariances hold NaN"),
        ({"weights": np.array([[0.5, 0.5]])}, "inconsistent shapes"),
        ({"means": np.zeros(3)}, "inconsistent shapes"),
        ({"covariances": np.eye(3)}, "inconsistent shapes"),
        ({"weights": np.zeros(0), "means": np.zeros((0, 3)), "covariances": np.zeros((0, 3, 3))}, "no components"),
        ({"means": np.array(["a", "b"], dtype=object)}, "'means' holds Python objects"),
        ({"means": np.array(["a", "b"])}, "not a readable"),
    ],
)
def test_crafted_mixture_files_are_refused(tmp_path, change, message):
    with pytest.raises(UserError, match=message):
        load_gmm(_stored(tmp_path / "g.npz", **change))


def test_figures_of_older_weights_are_dropped_or_left_out_and_named_where_they_are(tmp_path, capsys):
    import hashlib
    import shutil

    run = tmp_path / "my run (1)"
    assert main(["train", *TINY, "--max-steps", "2", "--fit-sampler", "gmm", "--out", str(run)]) == 0
    assert main(["evaluate", str(run), "--n", "40", "--no-fid"]) == 0
    assert json.loads((run / "metrics.json").read_text())["weights_fingerprint"]
    # a checkpoint replaced by one of other weights: the report leaves out the mixture's grid
    # and the evaluation of the old weights, and says so
    (ckpt,) = (run / "checkpoints").glob("step-*.pt")
    shutil.copy(ckpt, tmp_path / "kept.pt")
    payload = torch.load(ckpt, weights_only=True)
    payload["model"]["encoder.features.0.weight"] += 0.01
    torch.save(payload, ckpt)
    assert main(["report", str(run)]) == 0
    page = (run / "report.html").read_text()
    assert "samples-gmm.png left out" in page and "metrics.json is of other weights" in page
    # the refit command is quoted for the shell, and a checkpoint file as RUN names its run folder
    capsys.readouterr()
    for where in (run, ckpt):
        assert main(["sample", str(where), "--sampler", "gmm", "--n", "4", "--out", str(tmp_path / "s.png")]) == 2
        assert f"fit it again: wae fit-sampler '{run}'" in capsys.readouterr().err
    # training further (a resume) removes the evaluation of the older weights, with a notice
    shutil.copy(tmp_path / "kept.pt", ckpt)
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--max-steps", "4", "--fit-sampler", "none", "--no-progress"]) == 0
    assert "metrics.json was computed from the weights before this session: removed" in capsys.readouterr().err
    assert not (run / "metrics.json").exists() and not (run / "samples-gmm.png").exists()
    assert main(["fit-sampler", str(run), "--components", "3"]) == 0
    # a fit whose output path is taken fails before the work and replaces nothing
    before = hashlib.sha256((run / "sampler-gmm.npz").read_bytes()).hexdigest()
    (run / "samples-gmm.png").unlink()
    (run / "samples-gmm.png").mkdir()
    assert main(["fit-sampler", str(run), "--components", "3"]) == 2
    assert "exists and is not a regular file" in capsys.readouterr().err
    assert hashlib.sha256((run / "sampler-gmm.npz").read_bytes()).hexdigest() == before
    # a sampler path taken by a folder is named as such, not as missing
    (run / "samples-gmm.png").rmdir()
    (run / "sampler-vae.pt").mkdir()
    assert main(["sample", str(run), "--sampler", "vae", "--n", "4", "--out", str(tmp_path / "s.png")]) == 2
    assert "is not a sampler file (it exists and is not a regular file)" in capsys.readouterr().err
    # an empty fingerprint entry is damage, not a file from before fingerprints
    with np.load(run / "sampler-gmm.npz") as f:
        arrays = {k: f[k] for k in ("weights", "means", "covariances")}
    np.savez(run / "sampler-gmm.npz", **arrays, fitted_to=np.array(""))
    with pytest.raises(UserError, match="fingerprint is damaged"):
        fitted_to(run / "sampler-gmm.npz", "gmm")


def test_only_evaluations_of_older_weights_are_removed_and_hints_run_as_printed(tmp_path, capsys):
    base = tmp_path / "-dash run"  # a name that reads as an option and needs quoting
    assert main(["train", *TINY, "--max-steps", "2", "--fit-sampler", "gmm", "--out", str(base)]) == 0
    ckpt = next((base / "checkpoints").glob("step-*.pt"))
    # evaluate given a checkpoint file writes into the run folder
    assert main(["evaluate", str(ckpt), "--n", "40", "--no-fid"]) == 0
    assert (base / "metrics.json").is_file()
    (base / "metrics-notes.json").write_text('{"note": 1}')  # the user's, not an evaluation
    # a resume with no steps to take changes no weights: nothing is removed
    capsys.readouterr()
    assert main(["train", "--resume", str(base), "--max-steps", "2", "--fit-sampler", "none", "--no-progress"]) == 0
    assert (base / "metrics.json").is_file() and (base / "samples-gmm.png").is_file()
    # an entry that is not a fingerprint is damage: the report leaves the figures out
    record = json.loads((base / "metrics.json").read_text())
    from wae.checkpoint import weights_fingerprint
    from wae.report import metrics_and_source
    from wae.train import load_model

    weights = weights_fingerprint(load_model(base)[0])
    for damaged in (123, ["x"], None, "0" * 15, "G" * 16):
        (base / "metrics.json").write_text(json.dumps({**record, "weights_fingerprint": damaged}))
        assert "metrics.json is of other weights" in metrics_and_source(base, weights)[1]
    assert main(["report", str(base)]) == 0  # the report says so (of the last)
    assert "metrics.json is of other weights" in (base / "report.html").read_text()
    (base / "metrics.json").write_text(json.dumps(record))
    # a grid whose sampler file is gone is left out, then removed by the next steps
    (base / "sampler-gmm.npz").unlink()
    assert main(["report", str(base)]) == 0
    assert "samples-gmm.png left out: its sampler file is missing" in (base / "report.html").read_text()
    capsys.readouterr()
    assert main(["train", "--resume", str(base), "--max-steps", "4", "--fit-sampler", "none", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert f"evaluate again: wae evaluate '{tmp_path}/-dash run'" in err
    assert "samples-gmm.png was drawn from a sampler file that is missing: removed" in err
    assert not (base / "samples-gmm.png").exists() and not (base / "metrics.json").exists()
    assert (base / "metrics-notes.json").is_file()
    # a new fit of a sampler removes the evaluation of the one it replaces
    assert main(["fit-sampler", str(base), "--components", "2"]) == 0
    assert main(["evaluate", str(base), "--sampler", "gmm", "--n", "40", "--no-fid"]) == 0
    from wae.train import drop_stale_grids

    said: list[str] = []
    moved, _ = load_model(base)
    with torch.no_grad():
        next(moved.parameters()).add_(1.0)  # other weights
    drop_stale_grids(moved, base, said.append)  # a copy of the evaluation is dropped, named with its sampler
    assert any(f"wae evaluate '{base}' --sampler gmm" in line for line in said)
    assert main(["evaluate", str(base), "--sampler", "gmm", "--n", "40", "--no-fid"]) == 0
    capsys.readouterr()
    assert main(["fit-sampler", str(base), "--components", "3"]) == 0
    assert "metrics-gmm.json evaluated the sampler this fit replaced: removed" in capsys.readouterr().err
    assert not (base / "metrics-gmm.json").exists()
    # a relative name starting with a dash is printed as a path the parser takes
    from wae.samplers import refit_command

    assert refit_command(Path("-r"), "vae") == "wae fit-sampler ./-r --kind vae"
    assert refit_command(Path("my run (1)"), "gmm") == "wae fit-sampler 'my run (1)'"


@pytest.mark.parametrize(
    ("kind", "given", "name"),
    [
        ("flow", {"components": 3}, "components"),
        ("flow", {"covariance": "diag"}, "covariance"),
        ("vae", {"transforms": 2}, "transforms"),
        ("gmm", {"hidden": 4}, "hidden"),
    ],
)
def test_fit_sampler_from_python_refuses_a_setting_its_kind_does_not_use(kind, given, name):
    # session 54 left open: wae fit-sampler refused `--kind flow --components 3`, while
    # fit_sampler("flow", codes, components=3) from Python fitted a flow and ignored the 3
    from wae.samplers import fit_sampler, kind_settings

    codes = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    with pytest.raises(UserError, match=rf"^{name} is not a setting of the {kind} sampler \(its settings: "):
        fit_sampler(kind, codes, **given)
    with pytest.raises(UserError, match="unknown ex-post sampler 'kde'; choose gmm, flow or vae"):
        fit_sampler("kde", codes)
    assert kind_settings("gmm", {"components": None, "hidden": None}) == {
        "components": 10,
        "covariance": "full",
        "seed": 0,
    }
    sampler, what = fit_sampler("gmm", codes, components=2, covariance="diag")  # a kind's own settings
    assert isinstance(sampler, GaussianMixture) and what == "2 diag-covariance components"


@pytest.mark.parametrize(
    ("kind", "given", "said"),
    [
        ("gmm", {"components": 2.5}, "components must be a whole number from 1, or auto; got 2.5"),
        ("gmm", {"components": 0}, "components must be a whole number from 1, or auto; got 0"),
        ("gmm", {"components": True}, "components must be a whole number from 1, or auto; got True"),
        ("gmm", {"covariance": "tied"}, "covariance must be full or diag; got 'tied'"),
        ("vae", {"hidden": "8"}, "hidden must be a whole number from 1 to 4096; got '8'"),
        ("flow", {"transforms": 65}, "transforms must be a whole number from 1 to 64; got 65"),
        ("gmm", {"seed": -1}, "seed must be a whole number from 0 to 4294967295; got -1"),
        (["gmm"], {}, "unknown ex-post sampler ['gmm']; choose gmm, flow or vae"),
    ],
)
def test_fit_sampler_from_python_refuses_a_value_wae_fit_sampler_would(kind, given, said):
    # hostile pass, session 55: 2.5 components ended in a bare AssertionError, 0 in
    # scikit-learn's error, hidden "8" in a TypeError, a list as the kind in "unhashable"
    from wae.samplers import fit_sampler

    codes = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    with pytest.raises(UserError) as refused:
        fit_sampler(kind, codes, **given)
    assert str(refused.value) == said
    assert fit_sampler("gmm", codes, components=np.int64(3))[1] == "3 full-covariance components"  # numpy's ints taken


@pytest.mark.parametrize(
    ("codes", "said"),
    [
        (np.zeros((5, 2), dtype=np.float32), "must be a floating tensor of shape (n, d) (torch.Tensor); got a ndarray"),
        (torch.randn(200), "got a float32 tensor of shape (200,)"),
        (torch.ones(5, 2, dtype=torch.int64), "got a int64 tensor of shape (5, 2)"),
        (torch.full((5, 2), float("nan")), "the codes hold NaN or infinite values"),
        (torch.randn(1, 2), "cannot fit 1 components to 1 codes"),
    ],
)
def test_fit_sampler_refuses_codes_it_cannot_fit_in_one_line(codes, said):
    # second hostile pass, session 55: scikit-learn's multi-line error for NaN codes, an
    # AttributeError for numpy codes, an IndexError for 1-D codes; codes with gradients crashed
    from wae.samplers import fit_sampler

    kind, settings = ("vae", {}) if codes.ndim == 1 else ("gmm", {"components": 1 if len(codes) == 1 else 2})
    with pytest.raises(UserError) as refused:
        fit_sampler(kind, codes, **settings)
    assert said in str(refused.value) and "\n" not in str(refused.value)
    grad = torch.randn(64, 2, generator=torch.Generator().manual_seed(0), requires_grad=True)
    assert fit_sampler(np.array("gmm"), grad, components=2)[1] == "2 full-covariance components"
    with pytest.raises(UserError, match=r"components must be a whole number from 1, or auto; got array\(\[1, 2\]\)"):
        fit_sampler("gmm", grad, components=np.array([1, 2]))


def test_fit_sampler_takes_an_int_subclass_as_the_config_does():
    # left open by session 56's hostile pass: seed=IntEnum was refused by fit_sampler ("must be a
    # whole number") where the config and model.sample take it; a bool and a duration still refused
    import enum

    from wae.samplers import fit_sampler

    class Seed(enum.IntEnum):
        THREE = 3

    codes = torch.randn(200, 4, generator=torch.Generator().manual_seed(0))
    given, _ = fit_sampler("gmm", codes, components=Seed.THREE, seed=Seed.THREE)
    plain, _ = fit_sampler("gmm", codes, components=3, seed=3)
    draws = (s.sample(5, torch.Generator().manual_seed(1)) for s in (given, plain))
    assert torch.equal(*draws)
    for value in (True, np.timedelta64(3, "ns")):
        with pytest.raises(UserError, match="seed must be a whole number from 0"):
            fit_sampler("gmm", codes, seed=value)
