"""Ex-post samplers beyond the fixed-size mixture: components chosen on held-out codes, and a
normalising flow (zuko's neural spline flow), each against a known distribution."""

from __future__ import annotations

import math

import pytest
import torch

from wae.config import UserError
from wae.samplers import FlowSampler, fit_flow, load_flow, save_flow, select_components

pytest.importorskip("zuko")

MEAN = torch.tensor([1.0, -2.0])
COV = torch.tensor([[2.0, 1.2], [1.2, 1.0]])


def _gaussian(n: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return MEAN + torch.randn(n, 2, generator=gen) @ torch.linalg.cholesky(COV).T


def _clusters(n: int, k: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    centres = torch.arange(k).float()[:, None] * torch.tensor([6.0, 0.0, 0.0])
    return centres[torch.arange(n) % k] + 0.3 * torch.randn(n, 3, generator=gen)


def test_held_out_likelihood_chooses_the_true_number_of_clusters():
    best, scores = select_components(_clusters(3000, 3), candidates=(1, 3, 6), seed=0)
    assert best == 3 and set(scores) == {1, 3, 6}
    assert scores[3] > scores[1] + 1.0  # one Gaussian over three clusters is far worse
    with pytest.raises(UserError, match="too few"):
        select_components(_clusters(30, 3), candidates=(20,))


@pytest.fixture(scope="module")
def flow() -> FlowSampler:
    torch.manual_seed(0)
    return fit_flow(_gaussian(4000, 0), transforms=2, hidden=32, epochs=12, batch_size=256, seed=0)


def test_flow_samples_match_the_distribution_it_was_fitted_to(flow):
    draws = flow.sample(20_000, torch.Generator().manual_seed(1))
    assert draws.shape == (20_000, 2) and torch.isfinite(draws).all()
    assert torch.allclose(draws.mean(0), MEAN, atol=0.08)
    assert torch.allclose(torch.cov(draws.T), COV, atol=0.15)


def test_flow_log_density_is_close_to_the_true_one(flow):
    held_out = _gaussian(4000, 2)
    true = torch.distributions.MultivariateNormal(MEAN, COV).log_prob(held_out).mean().item()
    with torch.no_grad():
        ours = flow.log_density(held_out).mean().item()
    assert ours == pytest.approx(true, abs=0.05)
    # a density: its mass over a fine grid is 1 (2-D trapezoid-free Riemann sum)
    side = torch.linspace(-8, 8, 241)
    grid = torch.cartesian_prod(side, side - 2)
    with torch.no_grad():
        mass = flow.log_density(grid).exp().sum().item() * (side[1] - side[0]).item() ** 2
    assert mass == pytest.approx(1.0, abs=0.03)


def test_flow_sampling_is_seeded_and_survives_a_round_trip(flow, tmp_path):
    a = flow.sample(7, torch.Generator().manual_seed(3))
    assert torch.equal(a, flow.sample(7, torch.Generator().manual_seed(3)))
    assert not torch.equal(a, flow.sample(7, torch.Generator().manual_seed(4)))
    save_flow(flow, tmp_path / "f.pt")
    assert torch.equal(load_flow(tmp_path / "f.pt").sample(7, torch.Generator().manual_seed(3)), a)


def test_damaged_or_crafted_flow_files_are_refused(flow, tmp_path):
    with pytest.raises(UserError, match="fit-sampler"):
        load_flow(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(UserError, match="not a readable"):
        load_flow(tmp_path / "junk.pt")
    state = {k: v.clone() for k, v in flow.state_dict().items()}
    state["mean"][0] = math.nan
    torch.save({"format": 1, "settings": dict(flow.settings), "state": state}, tmp_path / "nan.pt")
    with pytest.raises(UserError, match="non-finite"):
        load_flow(tmp_path / "nan.pt")
    huge = dict(flow.settings, hidden=10**9)
    torch.save({"format": 1, "settings": huge, "state": flow.state_dict()}, tmp_path / "huge.pt")
    with pytest.raises(UserError, match="not a readable"):
        load_flow(tmp_path / "huge.pt")


def test_fit_sampler_flow_and_auto_components_then_sample_and_evaluate(tmp_path, capsys):
    import json

    import numpy as np

    from wae.cli import main

    run = tmp_path / "run"
    tiny = ["--dataset", "synthetic", "--batch-size", "32", "--precision", "fp32", "--no-progress"]
    assert main(["train", *tiny, "--max-steps", "4", "--out", str(run)]) == 0
    assert main(["sample", str(run), "--sampler", "flow", "--out", str(tmp_path / "s.png")]) == 2  # not fitted yet
    assert main(["fit-sampler", str(run), "--kind", "flow", "--hidden", "16", "--transforms", "1"]) == 0
    assert "mean log-density of test codes: flow" in capsys.readouterr().out
    assert (run / "sampler-flow.pt").is_file()
    assert main(["sample", str(run), "--sampler", "flow", "--n", "8", "--out", str(tmp_path / "s.npz")]) == 0
    assert np.load(tmp_path / "s.npz")["images"].shape == (8, 28, 28)
    assert main(["evaluate", str(run), "--sampler", "flow", "--n", "40", "--no-fid"]) == 0
    assert "fd_samples" in json.loads((run / "metrics-flow.json").read_text())
    assert main(["fit-sampler", str(run), "--components", "auto"]) == 0
    assert "held-out mean log-likelihood by components: 5:" in capsys.readouterr().out
    with pytest.raises(SystemExit) as refused:
        main(["fit-sampler", str(run), "--components", "many"])
    assert refused.value.code == 2


@pytest.mark.parametrize("kind", ["gmm", "flow"])
def test_training_can_end_by_fitting_an_ex_post_sampler(kind, tmp_path, tiny_data):
    from tests.conftest import tiny_config
    from wae.samplers import load_sampler
    from wae.train import fit

    run = tmp_path / "run"
    result = fit(tiny_config(fit_sampler=kind, epochs=1), run, data=tiny_data, progress=False, log=lambda m: None)
    sampler = load_sampler(run, kind)
    assert sampler is not None and sampler.dim == result.model.latent_dim
    assert (run / f"samples-{kind}.png").is_file()
    assert f"![samples-{kind}](samples-{kind}.png)" in (run / "report.md").read_text()
    # the same seed gives the same sampler
    again = fit(tiny_config(fit_sampler=kind, epochs=1), tmp_path / "again", data=tiny_data, progress=False)
    gen = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    assert torch.equal(sampler.sample(5, gen()), load_sampler(again.run_dir, kind).sample(5, gen()))


def test_no_ex_post_sampler_for_too_few_images_or_when_off(tmp_path):
    from tests.conftest import tiny_config
    from wae.data import make_synthetic
    from wae.train import fit

    said: list[str] = []
    few = make_synthetic(count=36, size=16, seed=0)
    fit(
        tiny_config(fit_sampler="gmm", epochs=1, batch_size=12),
        tmp_path / "few",
        data=few,
        progress=False,
        log=said.append,
    )
    assert not (tmp_path / "few" / "sampler-gmm.npz").exists()
    assert any("too few to fit a gmm sampler" in m for m in said)
    fit(
        tiny_config(fit_sampler="none", epochs=1),
        tmp_path / "off",
        data=make_synthetic(count=64, size=16),
        progress=False,
    )
    assert not list((tmp_path / "off").glob("sampler-*")) and not list((tmp_path / "off").glob("samples-*"))
