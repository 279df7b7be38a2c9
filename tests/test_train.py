"""Training: what each update may change, that training learns, exact resume, checkpoints."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pickle
import re
import shutil
from pathlib import Path

import pytest
import torch

import wae
from wae import checkpoint as ckpt
from wae.config import UserError, override
from wae.data import batches, make_synthetic, to_model_range
from wae.train import (
    LR_FLOOR,
    adversary_update,
    autoencoder_gan_update,
    build,
    ema_decay,
    fit,
    lr_factor,
    lr_multiplier,
    mmd_step,
    vae_step,
)

from .conftest import kill_at_a_revisions_record, run_cli, tiny_config


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _changed(before: dict[str, torch.Tensor], module: torch.nn.Module) -> set[str]:
    return {k for k, v in module.state_dict().items() if not torch.equal(before[k], v)}


def test_gan_updates_touch_only_their_own_parameters(tiny_data):
    state = build(tiny_config("gan"), 1, 16, steps_per_epoch=4)
    assert state.adversary is not None
    x = to_model_range(tiny_data.train[:32])
    z, _, _, logits = state.model(x)
    prior = state.model.prior_sample(32, state.noise)
    model_before, adv_before = _snapshot(state.model), _snapshot(state.adversary)
    adversary_update(state, z, prior)
    assert _changed(model_before, state.model) == set()
    assert _changed(adv_before, state.adversary) == set(adv_before)

    model_before, adv_before = _snapshot(state.model), _snapshot(state.adversary)
    autoencoder_gan_update(state, x, z, logits)
    assert _changed(adv_before, state.adversary) == set()
    weights = {k for k in model_before if k.endswith("weight") or k.endswith(".bias")}
    assert weights <= _changed(model_before, state.model)
    assert all(p.requires_grad for p in state.adversary.parameters())


def test_mmd_step_updates_every_autoencoder_weight(tiny_data):
    cfg = tiny_config()
    state = build(cfg, 1, 16, steps_per_epoch=4)
    before = _snapshot(state.model)
    parts = mmd_step(state, tiny_data.train[:32])
    assert set(parts) == {"total", "recon", "penalty"}
    expected = parts["recon"].item() + cfg.loss.lam * parts["penalty"].item()
    assert parts["total"].item() == pytest.approx(expected, rel=1e-5)
    changed = _changed(before, state.model)
    assert {k for k in before if k.endswith("weight")} <= changed


def test_vae_step_reports_the_kl_as_penalty(tiny_data):
    cfg = tiny_config("vae")
    assert cfg.model.encoder == "gaussian" and cfg.loss.cost == "bce" and cfg.loss.lam == 1.0
    state = build(cfg, 1, 16, steps_per_epoch=4)
    parts = vae_step(state, tiny_data.train[:32])
    assert parts["penalty"].item() >= 0
    assert parts["total"].item() == pytest.approx(parts["recon"].item() + parts["penalty"].item(), rel=1e-5)


def test_logvar_penalty_is_added_and_pulls_log_variances_to_zero(tiny_data):
    cfg = tiny_config("mmd", encoder="gaussian", logvar_l1=1.0, lr=2e-3)
    state = build(cfg, 1, 16, steps_per_epoch=4)
    x = to_model_range(tiny_data.train[:32])
    start = state.model.encoder(x)[1].abs().sum(1).mean().item()
    parts = mmd_step(state, tiny_data.train[:32])
    expected = parts["recon"] + cfg.loss.lam * parts["penalty"] + parts["logvar_l1"]
    assert parts["total"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert parts["logvar_l1"].item() == pytest.approx(start, rel=1e-4)
    for _ in range(30):
        mmd_step(state, tiny_data.train[:32])
    assert state.model.encoder(x)[1].abs().sum(1).mean().item() < 0.5 * start
    with pytest.raises(UserError, match="gaussian encoder"):
        wae.config.validate(tiny_config("mmd", logvar_l1=1.0))


def test_logvar_clip_bounds_the_noise_scale(tiny_data, monkeypatch):
    from wae.train import _forward

    state = build(tiny_config("mmd", encoder="gaussian", logvar_clip=1.0), 1, 16, steps_per_epoch=4)
    d = state.cfg.model.latent_dim
    monkeypatch.setattr(
        state.model.encoder, "forward", lambda x: (torch.zeros(len(x), d), torch.full((len(x), d), 50.0))
    )
    z, _, log_var, _ = _forward(state, to_model_range(tiny_data.train[:32]))
    assert log_var is not None and log_var.max().item() == 1.0
    assert z.abs().max().item() < 10 * math.exp(0.5)


@pytest.mark.parametrize("objective", ["mmd", "gan"])
def test_code_noise_reaches_the_decoder_only(tiny_data, monkeypatch, objective):
    from wae.train import _forward

    x = to_model_range(tiny_data.train[:32])
    read: list[torch.Tensor] = []
    plain = build(tiny_config(objective, prior_var=4.0), 1, 16, steps_per_epoch=4)
    noisy = build(tiny_config(objective, prior_var=4.0, code_noise=0.5), 1, 16, steps_per_epoch=4)
    for state in (plain, noisy):
        decode = state.model.decoder.forward
        monkeypatch.setattr(state.model.decoder, "forward", lambda z, decode=decode: read.append(z) or decode(z))
    z_plain, *_ = _forward(plain, x)
    z_noisy, *_ = _forward(noisy, x)
    assert torch.equal(read[0], z_plain) and torch.equal(z_noisy, z_plain)  # same seed, same weights
    # the decoder reads z + 0.5 sigma_z eps with sigma_z = 2: noise of std 1 a coordinate
    noise = read[1] - z_noisy
    assert noise.std().item() == pytest.approx(1.0, rel=0.15) and abs(noise.mean().item()) < 0.15


def test_code_noise_is_a_checked_setting():
    assert tiny_config().loss.code_noise == 0.0
    with pytest.raises(UserError, match="code_noise"):
        wae.config.validate(tiny_config(code_noise=-0.1))
    with pytest.raises(UserError, match="code_noise"):
        wae.config.validate(tiny_config(code_noise=float("nan")))
    # in units of sigma_z: far beyond the codes' own spread the decoder learned nothing, exit code 0
    with pytest.raises(UserError, match="code_noise must be at most 100; got 1000.0 .beyond, the noise drowns"):
        wae.config.validate(tiny_config(code_noise=1000.0))
    wae.config.validate(tiny_config(code_noise=100.0))


@pytest.mark.parametrize(
    "noise, said",
    [
        (torch.zeros(16), "of shape (16,)"),  # broadcast over the batch, silently
        (torch.zeros(4, 1), "of shape (4, 1)"),
        (torch.tensor(0.5), "of shape ()"),
        (torch.zeros(4, 16, dtype=torch.int64), "a torch.int64 tensor"),
        (0.5, "got float"),  # AttributeError: 'float' object has no attribute 'to'
        (torch.zeros(4, 8), "of shape (4, 8)"),  # torch's RuntimeError
    ],
)
def test_a_training_pass_takes_noise_of_the_codes_shape_only(noise, said):
    from wae.model import AutoEncoder

    cfg = tiny_config()
    model = AutoEncoder(cfg.model, 1, 16)
    x = torch.rand(4, 1, 16, 16)
    with pytest.raises(
        UserError,
        match=re.escape(
            f"code_noise must be a floating tensor of the codes' shape (4, 16); {'got ' if 'got' not in said else ''}"
        )
        + ".*"
        + re.escape(said.removeprefix("got ")),
    ):
        model(x, None, 0.0, None, noise)
    gaussian = AutoEncoder(tiny_config(encoder="gaussian").model, 1, 16)
    with pytest.raises(UserError, match="eps must be a floating tensor"):
        gaussian(x, torch.zeros(16))
    assert model(x, None, 0.0, None, torch.zeros(4, 16))[0].shape == (4, 16)
    # float64 noise is taken as float32, eps as code_noise (eps made torch's dtype error)
    assert gaussian(x, torch.randn(4, 16, dtype=torch.float64))[0].dtype == torch.float32
    assert model(x, None, 0.0, None, torch.zeros(4, 16, dtype=torch.float64))[3].dtype == torch.float32


def test_the_runs_report_md_names_its_training_noises(tiny_data, tmp_path):
    fit(tiny_config(epochs=1, code_noise=0.5, input_noise=0.01), tmp_path / "run", data=tiny_data, progress=False)
    assert (
        "lambda = 1.0, input noise 0.01, code noise 0.5 σ_z, kernel imq" in (tmp_path / "run" / "report.md").read_text()
    )


def test_weight_average_decay_warms_up_to_the_setting():
    assert ema_decay(0.999, 0) == pytest.approx(0.1)
    assert ema_decay(0.999, 90) == pytest.approx(0.91)
    assert ema_decay(0.999, 10**6) == 0.999


def test_lr_schedule_is_cumulative_and_stretches_with_the_epochs():
    cfg = tiny_config(epochs=100, lr_milestones=(0.3, 0.5), lr_factors=(0.5, 0.2))
    assert [lr_factor(cfg, e) for e in (0, 29, 30, 49, 50, 99)] == pytest.approx([1, 1, 0.5, 0.5, 0.1, 0.1])
    short = tiny_config(epochs=10, lr_milestones=(0.3, 0.5), lr_factors=(0.5, 0.2))
    assert [lr_factor(short, e) for e in (2, 3, 5)] == pytest.approx([1, 0.5, 0.1])


def test_cosine_schedule_and_warm_up_have_their_known_values():
    # 10 epochs of 10 steps: 100 planned steps
    cosine = tiny_config(epochs=10, lr_schedule="cosine", lr_milestones=(0.3,), lr_factors=(0.5,))
    at = [lr_multiplier(cosine, s, 10) for s in (0, 50, 100, 250)]
    # 1 at the start, halfway between 1 and the floor at the middle, the floor at the end and
    # beyond it (a run extended with --resume); the milestones are not used
    assert at == pytest.approx([1.0, (1 + LR_FLOOR) / 2, LR_FLOOR, LR_FLOOR])
    assert lr_multiplier(cosine, 25, 10) == pytest.approx(LR_FLOOR + (1 - LR_FLOOR) * (1 + math.cos(math.pi / 4)) / 2)
    steps = [lr_multiplier(cosine, s, 10) for s in range(101)]
    assert all(a >= b for a, b in zip(steps, steps[1:], strict=False))  # never rises
    # a warm-up of 20 % of the steps: linear from the floor to 1 over steps 0-19, then the cosine
    # over the 80 steps left
    warm = tiny_config(epochs=10, lr_schedule="cosine", lr_warmup=0.2)
    assert [lr_multiplier(warm, s, 10) for s in (0, 10, 20, 60, 100)] == pytest.approx(
        [LR_FLOOR, (1 + LR_FLOOR) / 2, 1.0, (1 + LR_FLOOR) / 2, LR_FLOOR]
    )
    # the step schedule with a warm-up keeps its milestones after it; without one it is lr_factor
    step = tiny_config(epochs=10, lr_milestones=(0.3,), lr_factors=(0.5,), lr_warmup=0.1)
    assert [lr_multiplier(step, s, 10) for s in (0, 5, 10, 29, 30)] == pytest.approx(
        [LR_FLOOR, (1 + LR_FLOOR) / 2, 1.0, 1.0, 0.5]
    )
    # a milestone inside the warm-up scales the ramp: no rise to the full rate then a drop of
    # 9x in one step (the warm-up once ignored it)
    early = tiny_config(epochs=10, lr_milestones=(0.1,), lr_factors=(0.1,), lr_warmup=0.5)
    rates = [lr_multiplier(early, s, 10) for s in range(60)]
    assert rates[9] == pytest.approx(LR_FLOOR + (1 - LR_FLOOR) * 9 / 50) and rates[10] == pytest.approx(
        0.1 * (LR_FLOOR + (1 - LR_FLOOR) * 10 / 50)
    )
    assert max(rates[10:]) == pytest.approx(0.1) and all(a <= b for a, b in zip(rates[10:], rates[11:], strict=False))
    plain = tiny_config(epochs=10, lr_milestones=(0.3,), lr_factors=(0.5,))
    assert [lr_multiplier(plain, s, 10) for s in range(100)] == [lr_factor(plain, s // 10) for s in range(100)]


def test_a_cosine_run_trains_with_its_schedule_and_records_it(tmp_path):
    cfg = tiny_config(epochs=2, lr_schedule="cosine", lr_warmup=0.25)
    run = fit(cfg, tmp_path / "run", data=make_synthetic(count=64, size=16), progress=False, log=lambda _: None)
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())["train"]
    assert recorded["lr_schedule"] == "cosine" and recorded["lr_warmup"] == 0.25
    records = _train_records(tmp_path / "run")
    assert len(records) == 4  # 2 epochs of 2 steps, every step logged
    # the record after s steps gives the rate its last step (0-based s - 1) was taken at; it
    # once gave the next step's (the warm-up's first rate, lr/100, was never written)
    for r in records:
        assert r["lr"] == pytest.approx(cfg.train.lr * lr_multiplier(cfg, r["step"] - 1, 2)), r
    assert records[0]["lr"] == pytest.approx(cfg.train.lr * LR_FLOOR)
    assert math.isfinite(run.metrics["test_recon_mse"])


def _train_records(run_dir) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if json.loads(line)["kind"] == "train"]


@pytest.mark.parametrize("objective", ["mmd", "gan", "vae", "swd", "sinkhorn", "cw"])
def test_training_lowers_the_loss(tmp_path, tiny_data, objective):
    # transport penalties are on the scale of squared code distances: a smaller lambda here
    lam = {"swd": 0.1, "sinkhorn": 0.01, "vae": 1.0}.get(objective, 10.0)
    cfg = tiny_config(objective, epochs=6, lr=2e-3, lr_milestones=(), lr_factors=(), lam=lam)
    result = fit(cfg, tmp_path / "run", data=tiny_data, progress=False, log=lambda _: None)
    records = _train_records(tmp_path / "run")
    first, last = records[:3], records[-3:]
    recon_first = sum(r["recon"] for r in first) / 3
    recon_last = sum(r["recon"] for r in last) / 3
    assert recon_last < 0.6 * recon_first
    assert result.step == 6 * 4 and result.metrics["test_recon_mse"] < 0.05
    assert [p.name for p in ckpt.run_checkpoints(tmp_path / "run")] == ["step-00000024.pt", "step-00000020.pt"]
    for name in (
        "config.json",
        "samples.png",
        "reconstructions.png",
        "interpolations.png",
        "report.md",
    ):
        assert (tmp_path / "run" / name).is_file()
    assert len(list((tmp_path / "run" / "grids").glob("samples-epoch*.png"))) == 6


@pytest.mark.parametrize("objective", ["mmd", "gan", "swd"])
def test_resume_gives_bitwise_the_same_parameters(tmp_path, tiny_data, objective):
    full = fit(
        tiny_config(objective, max_steps=10), tmp_path / "full", data=tiny_data, progress=False, log=lambda _: None
    )
    # stop mid-epoch (step 6 of 4 per epoch), then continue to the same end
    part = fit(
        tiny_config(objective, max_steps=6), tmp_path / "part", data=tiny_data, progress=False, log=lambda _: None
    )
    assert part.step == 6
    resumed_cfg = ckpt.config_of(ckpt.load(ckpt.run_checkpoints(tmp_path / "part")[0]))
    resumed_cfg.train.max_steps = 10
    resumed = fit(resumed_cfg, tmp_path / "part", data=tiny_data, resume=True, progress=False, log=lambda _: None)
    assert resumed.step == 10
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    if objective == "gan":
        adv_a = ckpt.load(ckpt.run_checkpoints(tmp_path / "full")[0])["adversary"]
        adv_b = ckpt.load(ckpt.run_checkpoints(tmp_path / "part")[0])["adversary"]
        assert all(torch.equal(adv_a[k], adv_b[k]) for k in adv_a)
    strip = [{k: v for k, v in r.items() if k != "images_per_s"} for r in _train_records(tmp_path / "full")]
    assert strip == [{k: v for k, v in r.items() if k != "images_per_s"} for r in _train_records(tmp_path / "part")]


def test_checkpoint_round_trip_and_corruption(tmp_path):
    path = tmp_path / "c.pt"
    ckpt.save_atomic({"format": ckpt.FORMAT, "x": torch.arange(3)}, path)
    assert torch.equal(ckpt.load(path)["x"], torch.arange(3))
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"], "no temporary file may be left behind"
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(UserError, match="c.pt"):
        ckpt.load(path)


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned-marker",))


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with open("evil.pt", "wb") as f:
        pickle.dump({"format": 1, "payload": _Exploit()}, f, protocol=2)
    with pytest.raises(UserError, match="evil.pt"):
        ckpt.load(tmp_path / "evil.pt")
    assert not (tmp_path / "pwned-marker").exists()


def test_python_api_trains_on_a_tensor(tmp_path, tiny_data):
    images = torch.cat([tiny_data.train, tiny_data.test])
    run = wae.fit_tensor(images, epochs=2, batch_size=32, precision="fp32", log_every=2, out=tmp_path / "api")
    assert isinstance(run.model, wae.AutoEncoder)
    assert run.model.sample(5).shape == (5, 1, 16, 16)
    model, cfg = wae.load_model(tmp_path / "api")
    # the same weights; the trained model is channels_last, the loaded one not: rounding apart
    assert cfg.data.dataset == "tensor" and torch.allclose(
        model.sample(3, torch.Generator().manual_seed(0)),
        run.model.sample(3, torch.Generator().manual_seed(0)),
        atol=1e-6,
    )


def test_convolution_weights_are_channels_last_unless_turned_off_and_the_maths_is_the_same():
    def conv_weights(state):
        return [m.weight for m in state.model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]

    nhwc = build(tiny_config(), 1, 16, steps_per_epoch=4)
    nchw = build(tiny_config(channels_last=False), 1, 16, steps_per_epoch=4)
    assert all(w.is_contiguous(memory_format=torch.channels_last) for w in conv_weights(nhwc))
    assert not all(w.is_contiguous() for w in conv_weights(nhwc))  # (one-channel weights are both)
    assert all(w.is_contiguous() for w in conv_weights(nchw))
    batch = torch.randint(0, 256, (8, 1, 16, 16), dtype=torch.uint8)
    losses = [mmd_step(state, batch) for state in (nhwc, nchw)]  # same weights, batch and draws
    for key in ("recon", "penalty", "total"):
        torch.testing.assert_close(losses[0][key], losses[1][key], rtol=1e-5, atol=1e-6)  # other rounding only


def test_weight_average_is_what_generates_and_resumes_exactly(tmp_path, tiny_data):
    """train.ema: the run's model (and load_model's) is the moving average of the weights after
    each step, computed here by hand over the same batches; a resumed run ends with the same
    average bitwise."""
    decay = 0.8
    cfg = tiny_config(max_steps=5, ema=decay)
    state = build(cfg, 1, 16, steps_per_epoch=4)
    expected: dict[str, torch.Tensor] = {}
    five = [*batches(tiny_data.train, 32, 0, 0), next(iter(batches(tiny_data.train, 32, 0, 1)))]
    for n, batch in enumerate(five):
        mmd_step(state, batch)
        weights = _snapshot(state.model)
        d = ema_decay(decay, n)  # the warm-up: 0.1, 0.18, 0.25, 0.31, 0.36 for n = 0..4
        expected = {k: d * expected[k] + (1 - d) * w if k in expected else w for k, w in weights.items()}
    run = fit(cfg, tmp_path / "full", data=tiny_data, progress=False, log=lambda _: None)
    averaged = run.model.state_dict()
    for k, v in expected.items():
        if averaged[k].is_floating_point():
            assert torch.allclose(averaged[k], v, rtol=1e-5, atol=1e-6), k
    raw = ckpt.load(ckpt.run_checkpoints(tmp_path / "full")[0])["model"]
    assert any(not torch.equal(raw[k], averaged[k]) for k in raw)  # the average is not the last weights
    loaded, _ = wae.load_model(tmp_path / "full")
    assert all(torch.equal(loaded.state_dict()[k], averaged[k]) for k in averaged)
    part = fit(
        tiny_config(max_steps=3, ema=decay), tmp_path / "part", data=tiny_data, progress=False, log=lambda _: None
    )
    assert part.step == 3
    resumed = fit(cfg, tmp_path / "part", data=tiny_data, resume=True, progress=False, log=lambda _: None)
    assert all(torch.equal(resumed.model.state_dict()[k], averaged[k]) for k in averaged)


def test_bf16_epoch_evaluation_gives_the_fp32_figures(tmp_path):
    # the per-epoch evaluation runs the networks in the training's precision (bf16 here) and its
    # statistics in fp32: its figures must be those of an fp32 evaluation of the same weights
    from wae.data import make_synthetic
    from wae.evaluate import classifier_metrics, decode_prior, evaluate

    # small: one step leaves the initial weights, and bf16 convolutions are emulated (slow) on
    # CPUs without native bf16
    data = make_synthetic(count=128, size=28, seed=1)
    cfg = tiny_config(
        synthetic_size=28,
        synthetic_count=128,
        epochs=1,
        max_steps=1,
        precision="bf16",
        eval_size=32,
        fit_sampler="none",
    )
    run = fit(cfg, tmp_path / "run", data=data, progress=False, log=lambda _: None)
    recorded = run.metrics
    fp32 = evaluate(run.model, data.test, "01", cfg.train.seed)
    generated = decode_prior(run.model, len(data.test), "01", cfg.train.seed + 4)
    fp32.update(classifier_metrics(data.test, generated))
    assert recorded["test_recon_mse"] == pytest.approx(fp32["test_recon_mse"], rel=0.01)
    assert recorded["code_var_mean"] == pytest.approx(fp32["code_var_mean"], rel=0.01)
    assert recorded["test_mmd"] == pytest.approx(fp32["test_mmd"], rel=0.05, abs=1e-3)
    assert recorded["fd_samples"] == pytest.approx(fp32["fd_samples"], rel=0.02)
    assert recorded["precision"] == pytest.approx(fp32["precision"], abs=0.05)


@pytest.mark.parametrize("objective", ["mmd", "gan"])
def test_a_resume_that_replans_the_schedule_takes_its_first_step_at_the_new_rate(tmp_path, objective):
    """``--resume --schedule-epochs N``: the optimizer's stored rate is the old plan's; the
    first resumed step once ran at it (1e-5 where the new plan said 7.5e-4)."""
    from wae.train import load_state, scheduled_rates

    cfg = tiny_config(objective, epochs=2, lr_schedule="cosine")
    data = make_synthetic(count=64, size=16)
    fit(cfg, tmp_path / "run", data=data, progress=False, log=lambda _: None)
    payload = ckpt.load_latest(tmp_path / "run")[0]
    replanned = override(cfg, epochs=4, schedule_epochs=4)
    state = build(replanned, 1, 16, steps_per_epoch=2)
    load_state(state, payload)
    want = replanned.train.lr * lr_multiplier(replanned, state.step, 2)
    assert want > 10 * cfg.train.lr * LR_FLOOR  # the old plan ended at the floor
    assert state.optimizer.param_groups[0]["lr"] == pytest.approx(want)
    assert scheduled_rates(state.scheduler) == pytest.approx([want])
    if state.adversary_optimizer is not None:
        assert state.adversary_optimizer.param_groups[0]["lr"] == pytest.approx(
            scheduled_rates(state.adversary_scheduler)[0]
        )
    # an unchanged plan restores the stored rate exactly (bitwise resume)
    same = build(cfg, 1, 16, steps_per_epoch=2)
    load_state(same, payload)
    assert same.optimizer.param_groups[0]["lr"] == payload["optimizer"]["param_groups"][0]["lr"]


def test_epochs_within_a_time_budget_have_their_known_values():
    from wae.train import epochs_within

    # 10 minutes, 60 s an epoch, 70 s gone: 600 - 70 - 30 (half an epoch for the sampler) = 500 s, 8 more
    assert epochs_within(10, 60.0, 70.0, 25, sampler=True) == 9
    assert epochs_within(10, 60.0, 70.0, 25, sampler=False) == 9  # 530 s: still 8 more
    assert epochs_within(10, 60.0, 50.0, 25, sampler=False) == 10  # 550 s: 9 more
    assert epochs_within(10, 60.0, 70.0, 5, sampler=True) == 5  # never more than the run's epochs
    assert epochs_within(1, 60.0, 90.0, 25, sampler=True) == 1  # over the budget already: the first only
    assert epochs_within(1, 60.0, 90.0, 25, sampler=True, done=3) == 3  # never fewer than those done
    assert epochs_within(10, 60.0, 70.0, 25, sampler=True, done=3) == 11  # decided after the third epoch
    assert epochs_within(1e300, 1e-300, 0.0, 7, sampler=True) == 7  # no overflow
    # a neural sampler's own fit kept back too: 600 - 70 - 30 - 45 = 455 s, 7 more
    assert epochs_within(10, 60.0, 70.0, 25, sampler=True, fit_s=45.0) == 8
    assert epochs_within(10, 60.0, 70.0, 25, sampler=False, fit_s=45.0) == 9  # no sampler fitted: nothing kept
    # session 47, make demo held to AVX2: 105 s an epoch, 207 s gone after 2, 13.5 s for the mixture's
    # fit, grid and report. Half an epoch for the codes: 570 - 207 - 52.5 - 13.5 = 297 s, 2 more;
    # the tenth of an epoch a pass of the encoder over images in memory takes: 339 s, 3 more
    assert epochs_within(9.5, 105.0, 207.0, 25, sampler=True, done=2, fit_s=13.5) == 4
    assert epochs_within(9.5, 105.0, 207.0, 25, sampler=True, done=2, fit_s=13.5, encode_share=0.1) == 5


def test_a_time_budget_keeps_back_the_time_a_second_stage_vae_takes_to_fit(tmp_path, monkeypatch):
    """A run that fits a second-stage VAE at its end keeps back the fit's probed seconds (said,
    recorded in the plan); the mixture's fit keeps back half an epoch only (the test above)."""
    import wae.train as train

    monkeypatch.setattr(train, "fit_seconds", lambda kind, codes, dim, fit: {"vae": 41.0}.get(kind, 0.0))
    cfg, run, calls, said = _budget_run(tmp_path, monkeypatch, kept=2, fit_sampler="vae")
    # the probed fit, and SAMPLER_END_S for its grid and the report; a tenth of an epoch for the
    # codes of images in memory (half an epoch for images read from files: the test below)
    assert [c[6:] for c in calls] == [(41.0 + train.SAMPLER_END_S, train.ENCODE_SHARE["memory"])]
    assert _plans(tmp_path / "run")[0]["sampler_fit_s"] == 46.0
    assert any("46 s are kept for the vae sampler's fit, grid and report" in line for line in said)
    assert (tmp_path / "run" / "sampler-vae.pt").is_file()


def test_a_budget_probes_the_fit_with_the_settings_of_the_sampler_already_in_the_run(tmp_path, monkeypatch):
    """A run trained further refits its sampler with the settings its file records (a wae
    fit-sampler --components 5, say); the budget's probe times that fit, not the default's."""
    import wae.train as train
    from wae.cli import main

    data = make_synthetic(count=64, size=16)
    first = tiny_config(epochs=1)
    fit(first, tmp_path / "run", data=data, progress=False, log=lambda _: None)
    assert main(["fit-sampler", str(tmp_path / "run"), "--components", "5"]) == 0
    probed: list = []
    monkeypatch.setattr(train, "fit_seconds", lambda kind, codes, dim, fit: probed.append((kind, fit)) or 2.0)
    _patched_budget(monkeypatch, kept=3)
    more = override(first, epochs=3, time_budget=3.0)
    fit(more, tmp_path / "run", data=data, resume=True, progress=False, log=lambda _: None)
    assert probed == [("gmm", {"components": 5, "covariance": "full", "seed": 0})]


def test_the_probed_fit_time_of_a_sampler_is_positive_and_leaves_the_random_state_alone():
    from wae.samplers import fit_seconds

    torch.manual_seed(3)
    before = torch.get_rng_state()
    vae = fit_seconds("vae", 600, 4, probe=2)
    gmm, auto = fit_seconds("gmm", 600, 4), fit_seconds("gmm", 600, 4, {"components": "auto"})
    assert torch.equal(torch.get_rng_state(), before)
    for seconds in (vae, gmm, auto):
        assert 0.0 < seconds < 600.0 and math.isfinite(seconds)
    assert fit_seconds("none", 600, 4) == 0.0
    assert fit_seconds("vae", 1, 4) == 0.0  # too few codes for a fit: none is made
    assert fit_seconds("gmm", 30, 4, {"components": 40}) == 0.0  # more components than codes: refused there


def test_a_moment_of_other_work_during_the_probe_is_not_scaled_up(monkeypatch):
    """Session 47: the demo's budget kept back 117 s for a 3 s mixture fit, its one 0.1 s probe
    fit slowed by other work on the machine and scaled by 30. The least of three probe fits (the
    neural samplers' median step) is scaled now: one slow fit or step moves nothing."""
    import time

    from wae import samplers

    clock = [0.0]
    monkeypatch.setattr(time, "perf_counter", lambda: clock[0])
    fits = iter([5.0, 0.1, 0.1])  # the first probe fit slowed 50x

    def fake_fit(kind, codes, *args, **kwargs):
        clock[0] += next(fits, 0.1) if len(codes) == samplers.GMM_PROBE_CODES else 0.01
        return None, ""

    monkeypatch.setattr(samplers, "fit_sampler", fake_fit)
    assert samplers.fit_seconds("gmm", 60_000, 8) == pytest.approx(0.1 * 60_000 / samplers.GMM_PROBE_CODES)
    steps = iter([1.0] * 3 + [9.0] + [0.002] * 19)  # three untimed, then one slow step of twenty

    def fake_step(*args):
        clock[0] += next(steps)

    monkeypatch.setattr(samplers, "_likelihood_step", fake_step)
    held_out = round(60_000 * samplers.VAE_FIT.holdout)
    batch = min(samplers.VAE_FIT.batch_size, 60_000 - held_out)
    every = samplers.VAE_FIT.epochs * -(-(60_000 - held_out) // batch) * (1 + samplers.VAE_FIT.holdout)
    assert samplers.fit_seconds("vae", 60_000, 8) == pytest.approx(0.002 * every)


def _patched_budget(monkeypatch, kept: int) -> list[tuple]:
    """``epochs_within`` made to keep ``kept`` epochs (no clock in the tests); its calls."""
    import wae.train as train

    calls: list[tuple] = []

    def within(budget, epoch_s, elapsed_s, epochs, sampler, done=1, fit_s=0.0, encode_share=0.5):
        calls.append((budget, epoch_s, elapsed_s, epochs, sampler, done, fit_s, encode_share))
        return kept

    monkeypatch.setattr(train, "epochs_within", within)
    return calls


def _budget_run(tmp_path, monkeypatch, kept: int, **settings):
    """A tiny run of 4 epochs of 2 steps with a time budget whose count of epochs is ``kept``."""
    calls = _patched_budget(monkeypatch, kept)
    cfg = tiny_config(epochs=4, lr_milestones=(0.5,), lr_factors=(0.1,), time_budget=3.0, **settings)
    said: list[str] = []
    run = fit(cfg, tmp_path / "run", data=make_synthetic(count=64, size=16), progress=False, log=said.append)
    return cfg, run, calls, said


def _recorded(run_dir) -> tuple:
    train = json.loads((run_dir / "config.json").read_text())["train"]
    return train["epochs"], train["schedule_epochs"], train["time_budget"]


def _plans(run_dir) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if json.loads(line)["kind"] == "plan"]


def test_a_time_budget_keeps_the_epochs_that_fit_and_replans_the_schedule(tmp_path, monkeypatch):
    cfg, run, calls, said = _budget_run(tmp_path, monkeypatch, kept=2)
    assert run.step == 4  # 2 of the 4 epochs
    (budget, epoch_s, elapsed_s, epochs, sampler, done, fit_s, _), *revisions = calls  # decided after the first epoch
    assert revisions == []  # the cut left no epoch end with epochs after it
    assert (budget, epochs, sampler, done) == (3.0, 4, True, 1) and epoch_s > 0 and elapsed_s > 0
    assert 0.0 < fit_s < 60.0  # the mixture's probed fit (64 codes), beside the half epoch of encoding
    assert _recorded(tmp_path / "run") == (2, 2, None)
    ((plan,),) = [_plans(tmp_path / "run")]
    assert (plan["step"], plan["epochs_asked"], plan["epochs_kept"], plan["time_budget_min"]) == (2, 4, 2, 3.0)
    assert plan["schedule_epochs"] == 2  # the schedule in force, which the epochs alone do not say
    assert any("training 2 of the 4 epochs" in line for line in said)
    assert cfg.train.epochs == 4 and cfg.train.time_budget == 3.0  # the caller's config is left alone
    # the milestone at half of the 2 kept epochs: the second epoch runs at a tenth, its first step too
    rates = {r["step"]: r["lr"] for r in _train_records(tmp_path / "run")}
    assert rates == pytest.approx({1: 2e-3, 2: 2e-3, 3: 2e-4, 4: 2e-4})


def test_a_time_budget_that_fits_every_epoch_changes_nothing_but_the_record(tmp_path, monkeypatch):
    _, run, _, said = _budget_run(tmp_path, monkeypatch, kept=4)
    assert run.step == 8
    assert _recorded(tmp_path / "run") == (4, 4, None)
    assert [p["epochs_kept"] for p in _plans(tmp_path / "run")] == [4]
    assert any("all 4 epochs fit" in line for line in said)


@pytest.mark.parametrize("schedule", [4, 8])
def test_a_time_budget_replans_a_schedule_given_by_hand_over_the_epochs_kept(tmp_path, monkeypatch, schedule):
    """--schedule-epochs was for the epochs asked (equal to them or not): a cut run ends its schedule with it."""
    _budget_run(tmp_path, monkeypatch, kept=2, schedule_epochs=schedule)
    assert _recorded(tmp_path / "run") == (2, 2, None)


@pytest.mark.parametrize(
    ("planned", "kept", "factor"),
    [(4, 4, 1.0), (4, 2, math.sqrt(2)), (25, 12, math.sqrt(25 / 12)), (25, 11, 1.5), (25, 6, 1.5), (3, 5, 1.0)],
)
def test_the_budgets_learning_rate_factor_has_its_known_values(planned, kept, factor):
    """sqrt(planned / kept), at most 1.5 (3e-3 from the demo's 2e-3, the largest measured), never below 1."""
    from wae.train import budget_lr_scale

    assert budget_lr_scale(planned, kept) == pytest.approx(factor, rel=1e-12)


@pytest.mark.parametrize(("lr", "factor"), [(2e-3, 1.5), (8e5, 1.25), (1e6, 1.0)])
def test_the_budgets_learning_rate_factor_keeps_the_rate_within_its_bound(lr, factor):
    from wae.config import LR_MOST
    from wae.train import budget_lr_scale

    assert budget_lr_scale(25, 11, lr) == pytest.approx(factor) and lr * factor <= LR_MOST * (1 + 1e-12)


@pytest.mark.parametrize(("planned", "kept"), [(25, 0), (0, 3), (-1, -1)])
def test_the_budgets_learning_rate_factor_refuses_no_epochs(planned, kept):
    from wae.train import budget_lr_scale

    with pytest.raises(ValueError, match="at least 1"):
        budget_lr_scale(planned, kept)


def test_budget_lr_sqrt_raises_the_rate_from_the_epoch_after_the_decision(tmp_path, monkeypatch):
    """4 epochs cut to 2: lr 2e-3 x sqrt(2) from step 3 on (the milestone at half of the 2 kept
    epochs takes a tenth of it there); config.json records lr asked and the factor, the plan both."""
    _, run, _, said = _budget_run(tmp_path, monkeypatch, kept=2, budget_lr="sqrt")
    assert run.step == 4
    high = 2e-3 * math.sqrt(2)
    rates = {r["step"]: r["lr"] for r in _train_records(tmp_path / "run")}
    assert rates == pytest.approx({1: 2e-3, 2: 2e-3, 3: high / 10, 4: high / 10})
    train = json.loads((tmp_path / "run" / "config.json").read_text())["train"]
    assert (train["lr"], train["lr_scale"]) == (2e-3, pytest.approx(math.sqrt(2)))
    ((plan,),) = [_plans(tmp_path / "run")]
    assert plan["lr_scale"] == pytest.approx(math.sqrt(2)) and plan["lr"] == pytest.approx(high)
    assert any("training 2 of the 4 epochs at lr 0.00283 (--budget-lr sqrt: 0.002 x 1.41)" in line for line in said)
    adversary = _budget_run(tmp_path / "gan", monkeypatch, kept=2, budget_lr="sqrt", objective="gan")[1]
    assert adversary.step == 4  # WAE-GAN: its adversary's rate is left as it is (the demo's lr 3e-3 runs kept 5e-4)
    assert json.loads((tmp_path / "gan" / "run" / "config.json").read_text())["train"]["adversary_lr"] == 5e-4


@pytest.mark.parametrize("kept", [4, 6])
def test_budget_lr_sqrt_leaves_the_rate_of_a_budget_that_cuts_nothing(tmp_path, monkeypatch, kept):
    _budget_run(tmp_path, monkeypatch, kept=kept, budget_lr="sqrt")
    assert json.loads((tmp_path / "run" / "config.json").read_text())["train"]["lr_scale"] == 1.0
    assert "lr_scale" not in _plans(tmp_path / "run")[0]
    assert {r["lr"] for r in _train_records(tmp_path / "run") if r["step"] <= 4} == {2e-3}


def test_budget_lr_sqrt_is_decided_once_and_not_again_by_a_revision(tmp_path, monkeypatch):
    """A revision that cuts more keeps the rate: a rate that rose again mid-run is what a budget never does."""
    _patched_plans(monkeypatch, [6, 4])
    cfg = tiny_config(epochs=8, lr_milestones=(0.9,), lr_factors=(0.1,), time_budget=3.0, budget_lr="sqrt")
    fit(cfg, tmp_path / "run", data=make_synthetic(count=64, size=16), progress=False, log=lambda _: None)
    high = 2e-3 * math.sqrt(8 / 6)
    assert [p.get("lr") for p in _plans(tmp_path / "run")] == [pytest.approx(high), None]
    rates = {r["step"]: r["lr"] for r in _train_records(tmp_path / "run")}
    assert rates[3] == rates[6] == pytest.approx(high) and rates[1] == 2e-3


def test_budget_lr_sqrt_sets_no_factor_when_the_budget_leaves_no_epoch_to_train_at_it(tmp_path, monkeypatch):
    """A cut to the one epoch done: no step would run at a raised rate, so none is recorded (a
    later --resume --epochs would have trained at 1.5x the schedule's end)."""
    _, run, _, said = _budget_run(tmp_path, monkeypatch, kept=1, budget_lr="sqrt")
    assert run.step == 2
    assert json.loads((tmp_path / "run" / "config.json").read_text())["train"]["lr_scale"] == 1.0
    assert not any("--budget-lr" in line for line in said)


def _early_run(tmp_path, monkeypatch, kept: list[int], **settings):
    """A tiny run of 4 epochs of 8 steps (batch 8) with --budget-lr sqrt, whose budget keeps
    ``kept[0]`` epochs at the first 2 timed steps' speed (the provisional rate, after step 6:
    4 untimed steps) and ``kept[1]`` at the first epoch's end."""
    import wae.train as train

    monkeypatch.setattr(train, "EARLY_RATE_STEPS", 2)
    calls = _patched_plans(monkeypatch, kept)
    settings = {"budget_lr": "sqrt", **settings}
    cfg = tiny_config(epochs=4, batch_size=8, lr_milestones=(0.5,), lr_factors=(0.1,), time_budget=3.0, **settings)
    said: list[str] = []
    run = fit(cfg, tmp_path / "run", data=make_synthetic(count=64, size=16), progress=False, log=said.append)
    rates = {r["step"]: r["lr"] for r in _train_records(tmp_path / "run")}
    return run, calls, said, rates


def test_budget_lr_sqrt_sets_a_provisional_rate_after_the_first_timed_steps(tmp_path, monkeypatch):
    """The first steps' speed says 2 of 4 epochs fit: 2e-3 x sqrt(2) from step 7 to the first
    epoch's end, in memory only (its checkpoint and config.json hold lr_scale 1 until the
    decision there sets the run's factor, here sqrt(4 / 2) again)."""
    run, calls, said, rates = _early_run(tmp_path, monkeypatch, [2, 2], keep_checkpoints=5)
    assert run.step == 16 and [c[5] for c in calls] == [0, 1]  # the early estimate, then the epoch end's
    (budget, epoch_s, elapsed_s, epochs, sampler, done, fit_s) = calls[0]
    assert (budget, epochs, done, fit_s) == (3.0, 4, 0, 0.0) and epoch_s > 0 and elapsed_s > 0
    high = 2e-3 * math.sqrt(2)
    assert [rates[s] for s in range(1, 9)] == pytest.approx([2e-3] * 6 + [high] * 2)
    assert [rates[s] for s in range(9, 17)] == pytest.approx([high / 10] * 8)  # the milestone at 1 of 2 epochs
    assert any("the first 2 timed steps suggest about 2 of the 4 epochs fit; lr 0.00283" in line for line in said)
    (first,) = [p for p in ckpt.run_checkpoints(tmp_path / "run") if p.name == "step-00000008.pt"]
    assert ckpt.config_of(ckpt.load(first)).train.lr_scale == 1.0  # the epoch's checkpoint: before the decision
    assert json.loads((tmp_path / "run" / "config.json").read_text())["train"]["lr_scale"] == pytest.approx(high / 2e-3)


def test_a_provisional_rate_ends_at_the_first_epoch_end_when_the_budget_then_keeps_every_epoch(tmp_path, monkeypatch):
    _, _, said, rates = _early_run(tmp_path, monkeypatch, [2, 4])
    assert rates[7] == pytest.approx(2e-3 * math.sqrt(2))
    assert any(
        "the first epoch's provisional lr 0.00283 ends with it" in line and "lr 0.002 from here" in line
        for line in said
    )
    assert rates[9] == rates[16] == pytest.approx(2e-3) and rates[17] == pytest.approx(2e-4)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["train"]["lr_scale"] == 1.0


@pytest.mark.parametrize("kept", [[4, 4], [5, 4], [1, 2], [0, 2]])
def test_no_provisional_rate_when_the_first_steps_say_every_epoch_fits_or_one(tmp_path, monkeypatch, kept):
    """Every epoch, or 1 (0: a budget already overrun): the budget's decision would raise no
    rate there, nor does the estimate (a helper's pass: 1.5x for most of a run left at 1)."""
    _, calls, said, rates = _early_run(tmp_path, monkeypatch, kept)
    assert calls[0][5] == 0 and set(rates[s] for s in range(1, 9)) == {2e-3}
    assert not any("timed steps suggest" in line or "provisional lr" in line for line in said)


def test_no_provisional_rate_in_a_session_that_ends_before_the_first_epochs_end(tmp_path, monkeypatch):
    """--max-steps 7 of 8-step epochs: no budget decides in the session, so no rate is raised in it."""
    run, calls, said, rates = _early_run(tmp_path, monkeypatch, [2, 2], max_steps=7)
    assert run.step == 7 and calls == [] and set(rates.values()) == {2e-3}


def test_no_provisional_rate_without_sqrt_or_in_a_resumed_session(tmp_path, monkeypatch):
    """--budget-lr fixed never estimates early; nor does a session that ends before the early
    step (--max-steps 4), nor the session that resumes it (at step 4, mid-epoch: its budget,
    still pending, decides at an epoch end, as before)."""
    _, calls, _, rates = _early_run(tmp_path / "fixed", monkeypatch, [2, 2], budget_lr="fixed")
    assert [c[5] for c in calls] == [1] and rates[7] == pytest.approx(2e-3)
    run, calls, said, rates = _early_run(tmp_path, monkeypatch, [2, 2], max_steps=4)
    assert run.step == 4 and calls == [] and set(rates.values()) == {2e-3}
    assert any("--time-budget 3 was not used" in line for line in said)
    code, err = run_cli(["train", "--resume", str(tmp_path / "run"), "--max-steps", "32", "--no-progress"])
    assert code == 0, err
    # (the patched budget, in this process): decided at the second epoch's end, the first with
    # half an epoch of this session's timed steps (from step 8), and no early estimate
    assert [c[5] for c in calls] == [2]
    assert {r["lr"] for r in _train_records(tmp_path / "run") if r["step"] <= 16} == {2e-3}
    assert "timed steps suggest" not in err


def _scaled_run(tmp_path, monkeypatch, kept: int = 2) -> Path:
    """A tiny run of 4 epochs whose budget kept ``kept`` with --budget-lr sqrt (checkpoints of all epochs)."""
    _budget_run(tmp_path, monkeypatch, kept=kept, budget_lr="sqrt", keep_checkpoints=5)
    return tmp_path / "run"


def _edit_lr_scale(run_dir: Path, value) -> None:
    path = run_dir / "config.json"
    raw = json.loads(path.read_text())
    raw["train"]["lr_scale"] = value
    path.write_text(json.dumps(raw))


@pytest.mark.parametrize("value", [1.0, 1.2])
def test_a_hand_edited_lr_scale_that_a_later_checkpoint_contradicts_is_refused(tmp_path, monkeypatch, value):
    run_dir = _scaled_run(tmp_path, monkeypatch)  # sqrt(2), in the checkpoint of step 4 too
    _edit_lr_scale(run_dir, value)
    code, err = run_cli(["train", "--resume", str(run_dir), "--epochs", "5", "--no-progress"])
    assert code == 2 and "does not match the run's config.json: train.lr_scale 1.414" in err, err
    assert len(err.strip().splitlines()) == 1


def test_a_scaled_runs_config_json_without_its_checkpoints_is_refused_not_trained_anew_at_its_factor(
    tmp_path, monkeypatch
):
    """A folder with a budget's config.json and no checkpoint (copied, or its checkpoints removed)
    would start afresh at the raised rate from step 1: a new run starts at 1 (a third helper's pass)."""
    run_dir = _scaled_run(tmp_path, monkeypatch)
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(run_dir / "config.json", bare / "config.json")
    code, err = run_cli(["train", "--resume", str(bare), "--epochs", "1", "--no-progress"])
    assert code == 2 and "holds a time budget's train.lr_scale 1.414" in err and "no checkpoint" in err, err
    assert sorted(p.name for p in bare.iterdir()) == ["config.json"]


def test_a_factor_written_into_a_run_that_no_budget_scaled_is_refused_at_a_resume(tmp_path, monkeypatch):
    """Only the first epoch's checkpoint may hold 1 where config.json holds a budget's factor."""
    run_dir = _scaled_run(tmp_path, monkeypatch, kept=4)  # nothing cut: 1 everywhere
    _edit_lr_scale(run_dir, 1.3)
    code, err = run_cli(["train", "--resume", str(run_dir), "--epochs", "5", "--no-progress"])
    assert code == 2 and "train.lr_scale 1 (config.json: 1.3), at step 8, after the first epoch" in err, err


def test_a_new_run_starts_at_lr_scale_1(tmp_path, monkeypatch):
    """The factor is the run's own budget's: a run's config.json given to --config does not carry
    it; a file or a caller that sets it for a new run is refused in one line, no folder made."""
    run_dir = _scaled_run(tmp_path, monkeypatch)
    code, err = run_cli(["train", "--config", str(run_dir / "config.json"), "--out", str(tmp_path / "again")])
    assert code == 0, err
    assert json.loads((tmp_path / "again" / "config.json").read_text())["train"]["lr_scale"] == 1.0
    assert _train_records(tmp_path / "again")[0]["lr"] == 2e-3
    toml = tmp_path / "scaled.toml"
    toml.write_text('[train]\nlr_scale = 1.2\nbudget_lr = "sqrt"\ntime_budget = 5\n')
    code, err = run_cli(["train", "--config", str(toml), "--out", str(tmp_path / "toml"), "--max-steps", "1"])
    assert code == 2 and "train.lr_scale 1.2 is set by training" in err and not (tmp_path / "toml").exists(), err
    with pytest.raises(UserError, match=r"train.lr_scale 1.3 is set by training .* a new run starts at 1"):
        cfg = tiny_config(lr_scale=1.3, budget_lr="sqrt", time_budget=5.0)
        fit(cfg, tmp_path / "api", progress=False, log=lambda _: None)
    assert not (tmp_path / "api").exists()
    with pytest.raises(
        UserError, match="set by a time budget's decision with --budget-lr sqrt; this run has budget_lr"
    ):
        fit(override(tiny_config(), lr_scale=1.2), tmp_path / "fixed", progress=False, log=lambda _: None)


def test_budget_lr_is_no_setting_of_a_resume(tmp_path, monkeypatch):
    """It acts at the run's first epoch end only: a resume that gave it would record a rule that did not act."""
    run_dir = _scaled_run(tmp_path, monkeypatch)
    for value in ("fixed", "sqrt"):
        code, err = run_cli(["train", "--resume", str(run_dir), "--budget-lr", value, "--epochs", "5"])
        assert code == 2 and "with --resume only" in err and "--budget-lr" not in err, err


def test_budget_lr_without_a_time_budget_is_refused_as_a_setting_not_used():
    with pytest.raises(
        UserError,
        match=r"^budget_lr= is a time budget's setting \(used with time budget given\); "
        r"this run has no time budget: leave it out",
    ):
        override(tiny_config(), budget_lr="sqrt")
    assert override(tiny_config(), budget_lr="sqrt", time_budget=2.0).train.budget_lr == "sqrt"


def test_a_resume_from_before_the_budgets_rate_trains_at_the_rate_config_json_holds(tmp_path, monkeypatch):
    """The first epoch's checkpoint is written before the budget's decision, so its scheduler holds
    the rate asked: a resume from it takes config.json's and ends with the uninterrupted run's weights."""
    _patched_budget(monkeypatch, 3)
    data = make_synthetic(count=64, size=16)
    cfg = tiny_config(epochs=4, time_budget=3.0, budget_lr="sqrt", keep_checkpoints=5)
    whole = fit(cfg, tmp_path / "whole", data=data, progress=False, log=lambda _: None)
    assert whole.step == 6
    copy = tmp_path / "copy"
    shutil.copytree(tmp_path / "whole", copy)
    for path in ckpt.run_checkpoints(copy)[:-1]:  # all but the first epoch's
        path.unlink()
    stored = wae.Config.from_dict(json.loads((copy / "config.json").read_text()))
    assert stored.train.lr_scale == pytest.approx(math.sqrt(4 / 3))
    # a caller's config without the factor (the run's own is taken, as config.json records it)
    given = dataclasses.replace(stored, train=dataclasses.replace(stored.train, lr_scale=1.0))
    again = fit(given, copy, data=data, resume=True, progress=False, log=lambda _: None)
    assert again.step == 6
    for name, weight in whole.model.state_dict().items():
        assert torch.equal(again.model.state_dict()[name], weight), name
    rates = {r["step"]: r["lr"] for r in _train_records(copy)}
    assert rates == {r["step"]: r["lr"] for r in _train_records(tmp_path / "whole")}
    # the caller's original config (the budget pending, lr_scale 1) resumes a run past its decision;
    # one with another factor is refused as another setting would be
    for path in ckpt.run_checkpoints(copy)[1:-1]:  # the newest and the first epoch's left
        path.unlink()
    original = fit(cfg, copy, data=data, resume=True, progress=False, log=lambda _: None)
    assert original.step == 8  # its 4 epochs (a resumed session's epochs are the caller's)
    assert json.loads((copy / "config.json").read_text())["train"]["lr_scale"] == pytest.approx(math.sqrt(4 / 3))
    wrong = dataclasses.replace(stored, train=dataclasses.replace(stored.train, lr_scale=1.2))
    with pytest.raises(UserError, match=r"differs from the run's .*train.lr_scale 1.2 \(the run: 1.1547"):
        fit(wrong, copy, data=data, resume=True, progress=False, log=lambda _: None)
    assert rates[3] == pytest.approx(2e-3 * math.sqrt(4 / 3) * 0.5)  # the first milestone (0.34 of 3 epochs) passed


class _Clock:
    """``wae.train``'s ``time`` module with a clock that :meth:`sleep` moves on at once: a slow
    epoch for a time budget's estimates without the wait."""

    def __init__(self) -> None:
        import time

        self._time, self.ahead = time, 0.0

    def perf_counter(self) -> float:
        return self._time.perf_counter() + self.ahead

    def sleep(self, seconds: float) -> None:
        self.ahead += seconds

    def __getattr__(self, name: str):
        return getattr(self._time, name)


def _fake_clock(monkeypatch) -> _Clock:
    import wae.train as train

    clock = _Clock()
    monkeypatch.setattr(train, "time", clock)
    return clock


def _patched_plans(monkeypatch, kept: list[int]) -> list[tuple]:
    """``epochs_within`` made to keep ``kept[i]`` epochs at the i-th epoch end that calls it (the
    last for later ones); its first call at each epoch end (a growth's second call, with epochs
    GROWTH_MARGIN slower, is answered alike and not listed)."""
    import wae.train as train

    calls: list[tuple] = []

    def within(budget, epoch_s, elapsed_s, epochs, sampler, done=1, fit_s=0.0, encode_share=0.5):
        if not calls or calls[-1][5] != done:
            calls.append((budget, epoch_s, elapsed_s, epochs, sampler, done, fit_s))
        return min(kept[min(len(calls), len(kept)) - 1], epochs)  # never more than it is asked to weigh

    monkeypatch.setattr(train, "epochs_within", within)
    return calls


def test_each_later_epoch_end_revises_the_budget_and_cuts_when_the_rest_no_longer_fits(tmp_path, monkeypatch):
    """A machine that slows down after the first decision: the plan of 8 epochs holds at the
    second epoch end (no record), the third cuts it to 5 and re-plans the schedule from the next step."""
    calls = _patched_plans(monkeypatch, [8, 8, 5])
    cfg = tiny_config(epochs=8, lr_milestones=(0.5,), lr_factors=(0.1,), time_budget=3.0)
    said: list[str] = []
    run = fit(cfg, tmp_path / "run", data=make_synthetic(count=64, size=16), progress=False, log=said.append)
    assert run.step == 10  # 5 epochs of 2 steps
    # decided at the first epoch end, then revised at each later one until the cut ends the run
    assert [(c[3], c[5]) for c in calls] == [(8, 1), (8, 2), (8, 3), (8, 4)]  # the epochs the session began with
    assert all(c[0] == 3.0 and c[1] > 0 and c[2] > 0 for c in calls)
    assert _recorded(tmp_path / "run") == (5, 5, None)
    plans = _plans(tmp_path / "run")
    assert [(p["step"], p["epochs_kept"], p["revised"]) for p in plans] == [(2, 8, False), (6, 5, True)]
    assert any("training 5 of the 8 epochs (revised)" in line for line in said)
    # the milestone at half of 8 epochs (step 8) moved to half of 5 (step 5), already passed at the
    # cut: steps 1-6 at the first rate, the rest at a tenth
    rates = {r["step"]: r["lr"] for r in _train_records(tmp_path / "run")}
    assert rates == pytest.approx({**dict.fromkeys(range(1, 7), 2e-3), **dict.fromkeys(range(7, 11), 2e-4)})


def test_a_revision_takes_the_median_of_the_last_three_epochs(tmp_path, monkeypatch):
    """One slow epoch (3 s more on training's clock; tiny steps take far less) moves the
    estimate while it is one of two, and no longer once it is one of three."""
    import wae.train as train

    calls = _patched_plans(monkeypatch, [6])
    real = train._Loop.epoch
    clock = _fake_clock(monkeypatch)

    def slow(self, stop, bar):
        clock.sleep(3.0 if self.state.step // self.steps_per_epoch == 2 else 0)  # the third epoch's steps
        real(self, stop, bar)

    monkeypatch.setattr(train._Loop, "epoch", slow)
    fit(
        tiny_config(epochs=6, time_budget=30.0),
        tmp_path / "run",
        data=make_synthetic(count=64, size=16),
        progress=False,
    )
    estimates = {done: epoch_s for (_, epoch_s, _, _, _, done, _) in calls}
    assert sorted(estimates) == [1, 2, 3, 4, 5]  # the run's last epoch end has nothing left to plan
    assert estimates[3] >= 1.5  # the median of two epochs, one of them slow
    assert estimates[4] < 1.5 and estimates[5] < 1.5  # the slow one is one of three, then gone
    assert [p["revised"] for p in _plans(tmp_path / "run")] == [False]  # no cut, no record


def test_an_epoch_estimate_has_its_known_values():
    from wae.train import epoch_estimate

    steps = [10.0, 10.0, 40.0]  # the median of the last three: 10
    assert epoch_estimate(steps, [(1, 1.0), (2, 2.0), (3, 7.0)], 1) == 12.0  # + the median point, 2
    assert epoch_estimate(steps[:2], [], 0) == 10.0
    # one stalled point (60 s at epoch 6) moves nothing; a mean over the points once cut a
    # cosine run to 11 of the 20 epochs that fitted
    assert epoch_estimate([10.0], [(e, 60.0 if e == 6 else 1.0) for e in range(1, 9)], 0) == 11.0
    assert epoch_estimate([10.0], [(e, 60.0 if e == 6 else 1.0) for e in range(1, 13)], 2) == 11.0
    # --eval-every 2: epochs of 10 s steps, cheap points of 1 s and evaluations of 9 s every
    # second epoch; a median of whole epochs (11, 19, 11, ...) swung between 11 and 19 at one
    # epoch end after another, whole cycles give 15 at each
    points = [(e, 9.0 if e % 2 == 0 else 1.0) for e in range(1, 12)]
    assert {epoch_estimate([10.0] * 3, points[:k], 2) for k in range(2, 12)} == {15.0}
    # --eval-every 5: the points alone before the first cycle is whole (epochs 1-5), then cycles
    assert epoch_estimate([10.0], [(1, 1.0), (2, 2.0)], 5) == 11.5
    points = [(e, 11.0 if e % 5 == 0 else 1.0) for e in range(1, 17)]
    assert {epoch_estimate([10.0], points[:k], 5) for k in range(5, 17)} == {13.0}
    # a resumed session's first cycle is not whole (it began at epoch 4): cycles from epoch 6
    assert epoch_estimate([10.0], [(e, 11.0 if e % 5 == 0 else 1.0) for e in range(4, 11)], 5) == 13.0
    # the worst of the last three, what a revision that would give epochs back weighs
    assert epoch_estimate(steps, [(1, 1.0), (2, 2.0), (3, 7.0)], 1, worst=True) == 47.0
    assert epoch_estimate([10.0] * 3, [(e, 9.0 if e % 2 == 0 else 1.0) for e in range(1, 8)], 2, worst=True) == 15.0
    with pytest.raises(ValueError):
        epoch_estimate([], [(1, 1.0)], 1)


def test_epochs_given_back_must_fit_at_the_slowest_epochs_with_a_margin():
    """600 s of budget, 100 s an epoch, 2 done. 80 s passed: 5 more fit (7), but at 105 s only 4.
    60 s passed: 5 more fit at 105 s too, but not with half an epoch to spare."""
    from wae.train import GROWTH_MARGIN, GROWTH_SPARE, epochs_fitting

    assert (GROWTH_MARGIN, GROWTH_SPARE) == (0.05, 0.5)
    fitting = [epochs_fitting(10, 100.0, 80.0, reach, 10, False, 2) for reach in (3, 5, 6, 7, 8, 10)]
    assert fitting == [6, 6, 6, 7, 7, 7]  # given back to 6 only; a plan of 7 holds, 8 and 10 are cut to 7
    assert [epochs_fitting(10, 100.0, 60.0, reach, 10, False, 2) for reach in (5, 6, 7)] == [6, 6, 7]
    assert epochs_fitting(10, 100.0, 0.0, 5, 10, False, 2) == 7  # room to spare: given back
    # weighed at the slowest of the last epochs: 140 s (x 1.05) leaves 3 more with 70 s to spare
    assert epochs_fitting(10, 100.0, 0.0, 4, 10, False, 2, worst_s=140.0) == 5
    assert epochs_fitting(10, 100.0, 0.0, 7, 10, False, 2, worst_s=140.0) == 7  # a cut weighs the median


def test_a_stop_request_at_the_first_epochs_last_step_leaves_the_budget_to_the_resume(tmp_path, monkeypatch):
    """Ctrl-C during the last step of the first epoch stops the run at that epoch's end: the budget
    is not decided there (it was, and a resume then had no budget left); config.json keeps it
    for the session that resumes, which decides it."""
    import os
    import signal

    import wae.train as train

    real = train.STEPS["mmd"]

    def interrupted(state, batch, labels=None):
        if state.step == 1:  # the second of the epoch's 2 steps
            os.kill(os.getpid(), signal.SIGINT)
        return real(state, batch, labels)

    monkeypatch.setitem(train.STEPS, "mmd", interrupted)
    calls = _patched_budget(monkeypatch, kept=2)
    data = make_synthetic(count=64, size=16)  # 2 steps an epoch
    cfg = tiny_config(epochs=4, lr_milestones=(0.5,), lr_factors=(0.1,), time_budget=3.0)
    run = fit(cfg, tmp_path / "run", data=data, progress=False, log=lambda _: None)
    assert run.interrupted and run.step == 2 and calls == []
    assert _recorded(tmp_path / "run") == (4, 4, 3.0) and _plans(tmp_path / "run") == []
    monkeypatch.setitem(train.STEPS, "mmd", real)
    again = fit(cfg, tmp_path / "run", data=data, resume=True, progress=False, log=lambda _: None)
    assert len(calls) == 1 and again.step == 4 and _recorded(tmp_path / "run") == (2, 2, None)


def test_plan_records_stay_when_a_resume_goes_back_to_an_older_checkpoint(tmp_path):
    """A resume from an older checkpoint (the newest damaged) removes the records of later steps,
    which training writes again; a plan record stays, as the plan in config.json it records does."""
    from wae.train import _truncate_metrics

    path = tmp_path / "metrics.jsonl"
    records = [
        {"kind": "train", "step": 2, "lr": 1.0},
        {"kind": "plan", "step": 2, "epochs_kept": 8, "revised": False},
        {"kind": "train", "step": 4, "lr": 1.0},
        {"kind": "plan", "step": 4, "epochs_kept": 4, "revised": True},
        {"kind": "eval", "step": 4},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    said: list[str] = []
    _truncate_metrics(path, 2, said.append)
    kept = [json.loads(line) for line in path.read_text().splitlines()]
    assert kept == [records[0], records[1], records[3]]
    assert said and "2 records of steps after the checkpoint's step 2 removed" in said[0]


@pytest.mark.parametrize(
    ("stopped_at", "effect"),
    [(1, "(no rate would rise by it)"), (5, "(the rate at the next step would be 1x lr instead of 0.1x)")],
)
def test_a_resume_past_the_end_of_its_schedule_says_so(tmp_path, stopped_at, effect):
    """A resume with more epochs than its schedule spans keeps the schedule (the rate stays low
    from its end on) and says so, with what --schedule-epochs over all the epochs would do: an
    interrupted run that a budget had cut once trained most of its extension at a tenth of the
    rate with no word of it."""
    data = make_synthetic(count=64, size=16)  # 2 steps an epoch
    first = tiny_config(epochs=4, max_steps=stopped_at, lr_milestones=(0.5,), lr_factors=(0.1,))
    fit(first, tmp_path / "run", data=data, progress=False, log=lambda _: None)
    stored = wae.Config.from_dict(json.loads((tmp_path / "run" / "config.json").read_text()))
    said: list[str] = []
    fit(
        override(stored, epochs=8, max_steps=None),
        tmp_path / "run",
        data=data,
        resume=True,
        progress=False,
        log=said.append,
    )
    (note,) = [line for line in said if "learning-rate schedule spans" in line]
    assert "spans 4 of the run's 8 epochs" in note and "stays at 0.1x lr from epoch 5 on" in note
    assert note.endswith(f"give --schedule-epochs 8 to plan it over all 8 {effect}")
    if stopped_at != 1:
        return  # (where the note is not said does not depend on where the first session stopped)
    said.clear()
    fit(override(stored, epochs=4, max_steps=None), tmp_path / "again", data=data, progress=False, log=said.append)
    assert not [line for line in said if "schedule spans" in line]  # a fresh run's spans its epochs
    # not said when --max-steps ends the session within the schedule, or a budget will plan it
    for name, changes in (("steps", {"max_steps": 8}), ("budget", {"max_steps": None, "time_budget": 9.0})):
        fit(first, tmp_path / name, data=data, progress=False, log=lambda _: None)
        said.clear()
        fit(
            override(stored, epochs=8, **changes),
            tmp_path / name,
            data=data,
            resume=True,
            progress=False,
            log=said.append,
        )
        assert not [line for line in said if "schedule spans" in line]


def test_a_budget_that_a_session_cannot_decide_says_it_waits(tmp_path):
    """--max-steps 1 of 2 steps an epoch ends the session before any epoch end: the budget stays
    in config.json, said as such (it was silent)."""
    said: list[str] = []
    cfg = tiny_config(epochs=4, max_steps=1, time_budget=3.0)
    fit(cfg, tmp_path / "run", data=make_synthetic(count=64, size=16), progress=False, log=said.append)
    assert _recorded(tmp_path / "run") == (4, 4, 3.0)
    assert any(line.startswith("note: --time-budget 3 was not used: the session ended at step 1") for line in said)


@pytest.mark.parametrize("kept", [[6], [8, 6]], ids=["first-decision", "revision"])
def test_a_cut_never_stretches_a_schedule_planned_over_fewer_epochs(tmp_path, monkeypatch, kept):
    """A schedule over 2 epochs (a resumed run's, pinned to its first session's; or given by
    hand) in a run of 8: cutting the run to 6 once planned the schedule over 6, which moved its
    milestone past the steps already at a tenth and raised their rate tenfold again."""
    _patched_plans(monkeypatch, kept)
    cfg = tiny_config(epochs=8, schedule_epochs=2, lr_milestones=(0.5,), lr_factors=(0.1,), time_budget=3.0)
    run = fit(cfg, tmp_path / "run", data=make_synthetic(count=64, size=16), progress=False, log=lambda _: None)
    assert run.step == 12 and _recorded(tmp_path / "run") == (6, 2, None)
    rates = {r["step"]: r["lr"] for r in _train_records(tmp_path / "run")}
    assert rates == pytest.approx({1: 2e-3, 2: 2e-3, **dict.fromkeys(range(3, 13), 2e-4)})


def _rates(run_dir) -> list[float]:
    return [r["lr"] for r in _train_records(run_dir)]


def test_a_revision_gives_back_epochs_cut_while_the_milestone_is_ahead(tmp_path, monkeypatch):
    """A first epoch slowed by other work cut 12 epochs to 6; at the second epoch end all 12 fit
    again and the schedule's milestone (epoch 3 of 6, then 6 of 12) is still ahead: they come back."""
    calls = _patched_plans(monkeypatch, [6, 100])
    said: list[str] = []
    cfg = tiny_config(epochs=12, lr_milestones=(0.5,), lr_factors=(0.1,), time_budget=3.0)
    run = fit(cfg, tmp_path / "run", data=make_synthetic(count=64, size=16), progress=False, log=said.append)
    assert run.step == 24 and _recorded(tmp_path / "run") == (12, 12, None)
    assert [c[3] for c in calls[:2]] == [12, 12]  # a revision weighs the epochs the session began with
    plans = [(p["step"], p["epochs_asked"], p["epochs_kept"], p["revised"]) for p in _plans(tmp_path / "run")]
    assert plans == [(2, 12, 6, False), (4, 12, 12, True)]
    assert [p["epochs_before"] for p in _plans(tmp_path / "run")] == [12, 6]
    assert any("training 12 of the 12 epochs (revised)" in line for line in said)
    assert _rates(tmp_path / "run") == pytest.approx([2e-3] * 12 + [2e-4] * 12)


@pytest.mark.parametrize(
    ("settings", "grown_to"),
    [
        ({}, 12),  # the step schedule: one epoch end after another, as far as the milestone stays passed
        ({"lr_schedule": "cosine"}, 4),  # a cosine schedule's rate rises with any growth
        ({"lr_factors": (2.0,)}, 4),  # a factor above 1: a milestone moved later lowers the rate, then raises it
        ({"lr_warmup": 0.4}, None),  # the step schedule with a warm-up: grown only past the trial's warm-up
        ({"lr_schedule": "cosine", "lr_warmup": 0.4}, 4),
    ],
    ids=["step", "cosine", "factor-above-1", "step-warm-up", "cosine-warm-up"],
)
def test_a_revision_gives_back_no_epoch_that_would_raise_the_rate(tmp_path, monkeypatch, settings, grown_to):
    """Cut to 4 epochs at the first decision (milestone at epoch 2, where the next step is at the
    second epoch end): growing to 12 at once would move the milestone to epoch 6 and raise the
    rate tenfold, so each epoch end grows the run only as far as no rate from the next step on
    would rise (the step schedule: 5, 6, 9, 10, 12, as round(m * E) stays at or below the next
    epoch); once the first decision's warm-up is over, no logged rate ever rises."""
    _patched_plans(monkeypatch, [4, 100])
    cfg = tiny_config(epochs=12, **{"lr_milestones": (0.5,), "lr_factors": (0.1,), **settings}, time_budget=3.0)
    fit(cfg, tmp_path / "run", data=make_synthetic(count=64, size=16), progress=False, log=lambda _: None)
    epochs = _recorded(tmp_path / "run")[0]
    assert epochs == grown_to if grown_to is not None else 4 < epochs <= 12
    rates = _rates(tmp_path / "run")
    assert len(rates) == 2 * epochs
    if max(cfg.train.lr_factors) <= 1:  # (a factor above 1 is a rise the user planned)
        after = rates[3:]  # from the first decision's warm-up end (3 steps of the 4 epochs' 8) on
        assert all(b <= a * (1 + 1e-6) for a, b in zip(after, after[1:], strict=False)), rates


def test_giving_back_every_epoch_restores_the_schedule_the_session_began_with(tmp_path, monkeypatch):
    """8 epochs on a schedule of 16 (its milestone at 0.9: epoch 14, beyond the run): a cut to 4
    planned the schedule over 4 (milestone at epoch 4); all 8 back while that milestone is ahead
    restores the schedule of 16, not one over 8 with a decay the user did not plan."""
    _patched_plans(monkeypatch, [4, 100])
    cfg = tiny_config(epochs=8, schedule_epochs=16, lr_milestones=(0.9,), lr_factors=(0.1,), time_budget=3.0)
    fit(cfg, tmp_path / "run", data=make_synthetic(count=64, size=16), progress=False, log=lambda _: None)
    assert _recorded(tmp_path / "run") == (8, 16, None)
    assert _rates(tmp_path / "run") == pytest.approx([2e-3] * 16)


def test_a_budget_weighs_the_epochs_that_max_steps_leaves(tmp_path, monkeypatch):
    """--max-steps 6 of 25 epochs of 2 steps: the run trains 3 epochs, so a budget that fits them
    cuts nothing (it once cut the 25 to what fit, and so moved the schedule that --max-steps
    leaves planned over the 25); one that does not fit them cuts."""
    calls = _patched_plans(monkeypatch, [3])
    said: list[str] = []
    cfg = tiny_config(epochs=25, max_steps=6, lr_milestones=(0.5,), lr_factors=(0.1,), time_budget=3.0)
    run = fit(cfg, tmp_path / "run", data=make_synthetic(count=64, size=16), progress=False, log=said.append)
    assert run.step == 6 and [c[3] for c in calls] == [3, 3]  # the epochs weighed: those the run trains
    assert _recorded(tmp_path / "run") == (25, 25, None)
    assert any("the 3 epochs up to --max-steps 6 fit" in line for line in said)
    assert [p["epochs_kept"] for p in _plans(tmp_path / "run")] == [25]
    assert [r["lr"] for r in _train_records(tmp_path / "run")] == pytest.approx([2e-3] * 6)
    _patched_plans(monkeypatch, [2])
    fit(cfg, tmp_path / "cut", data=make_synthetic(count=64, size=16), progress=False, log=lambda _: None)
    assert _recorded(tmp_path / "cut") == (2, 2, None)


def test_a_kill_between_a_revisions_two_writes_leaves_config_json_in_force(tmp_path, monkeypatch):
    """A revision writes config.json first, then its record: a kill between the two loses the
    record of a cut in force, never leaves a record of a cut that the resume (which has no budget
    left to decide) does not keep."""
    import wae.train as train

    _patched_plans(monkeypatch, [4, 3])
    real = kill_at_a_revisions_record(monkeypatch)
    data = make_synthetic(count=64, size=16)
    cfg = tiny_config(epochs=4, lr_milestones=(0.5,), lr_factors=(0.1,), time_budget=3.0)
    with pytest.raises(KeyboardInterrupt):
        fit(cfg, tmp_path / "run", data=data, progress=False, log=lambda _: None)
    assert _recorded(tmp_path / "run") == (3, 3, None)
    assert [(p["epochs_kept"], p["revised"]) for p in _plans(tmp_path / "run")] == [(4, False)]
    monkeypatch.setattr(train, "_append_jsonl", real)
    stored = wae.Config.from_dict(json.loads((tmp_path / "run" / "config.json").read_text()))
    run = fit(stored, tmp_path / "run", data=data, resume=True, progress=False, log=lambda _: None)
    assert run.step == 6  # the cut plan, the one config.json holds


def test_a_run_that_max_steps_stops_within_its_budget_keeps_its_plan_and_resumes_without_a_budget(
    tmp_path, monkeypatch
):
    """--max-steps 3 leaves 2 of the 4 epochs, which fit: nothing is cut (a cut once moved the
    schedule of a session that ended in time), the budget is spent with its session, and the
    resume trains the plan of 4 epochs without deciding again."""
    cfg, run, calls, _ = _budget_run(tmp_path, monkeypatch, kept=2, max_steps=3)
    assert run.step == 3 and len(calls) == 1 and calls[0][3] == 2
    assert _recorded(tmp_path / "run") == (4, 4, None)
    stored = wae.Config.from_dict(json.loads((tmp_path / "run" / "config.json").read_text()))
    again = fit(
        override(stored, max_steps=None),
        tmp_path / "run",
        data=make_synthetic(count=64, size=16),
        resume=True,
        progress=False,
        log=lambda _: None,
    )
    assert again.step == 8 and len(calls) == 1  # the plan stays; no second decision


# (the step the first session stopped at, the epochs done when the resumed session decides):
# timed from the step after the session's first, decided at the first epoch end after one timed step
@pytest.mark.parametrize(("stopped_at", "decided_after"), [(1, 2), (2, 2), (4, 3)])
def test_a_budget_still_open_at_a_resume_is_decided_after_half_an_epoch_of_timed_steps(
    tmp_path, monkeypatch, stopped_at, decided_after
):
    """A resume that finds the budget undecided (the first session stopped in its first epoch,
    late in it, or killed between the first epoch's checkpoint and the decision; or a budget
    given to a resume) times its own steps, after the first (here: half an epoch of 2 steps), for
    at least half an epoch: a single cold step once stood for a whole epoch."""
    data = make_synthetic(count=64, size=16)  # 2 steps an epoch
    first = tiny_config(epochs=6, max_steps=stopped_at, lr_milestones=(0.5,), lr_factors=(0.1,))
    fit(first, tmp_path / "run", data=data, progress=False, log=lambda _: None)
    calls = _patched_budget(monkeypatch, kept=4)
    said: list[str] = []
    resumed = override(first, max_steps=None, time_budget=2.0)
    run = fit(resumed, tmp_path / "run", data=data, resume=True, progress=False, log=said.append)
    (*_, done, _, _), *revisions = calls
    assert done == decided_after and [r[5] for r in revisions] == list(range(decided_after + 1, 4))
    assert run.step == 4 * 2 and _recorded(tmp_path / "run") == (4, 4, None)
    assert any("training 4 of the 6 epochs" in line for line in said)


def test_a_resumed_sessions_epoch_estimate_leaves_out_the_evaluations_it_timed(tmp_path, monkeypatch):
    """A session resumed mid-epoch decides at its second epoch end: its timed steps then span the
    first epoch end's evaluation, which the estimate once counted, scaled, on top of the last
    one's. Here the two checkpoint points before the decision take at least 1.5 s each, and 2
    tiny steps with a tiny evaluation far less (on training's clock)."""
    import wae.train as train

    data = make_synthetic(count=64, size=16)  # 2 steps an epoch
    first = tiny_config(epochs=6, max_steps=1)
    fit(first, tmp_path / "run", data=data, progress=False, log=lambda _: None)
    calls = _patched_budget(monkeypatch, kept=4)
    real = train._Loop.checkpoint_point
    clock = _fake_clock(monkeypatch)

    def slow(self, epoch):
        clock.sleep(1.5 if epoch <= 2 else 0)
        real(self, epoch)

    monkeypatch.setattr(train._Loop, "checkpoint_point", slow)
    fit(override(first, max_steps=None, time_budget=2.0), tmp_path / "run", data=data, resume=True, progress=False)
    (_, epoch_s, *_, done, _, _), *_ = calls
    assert done == 2 and 1.5 <= epoch_s < 2.7  # one evaluation and 2 steps; it was two evaluations (> 3 s)


def _killed_at_the_plan(tmp_path, monkeypatch, kept: int, **settings):
    """A tiny run of 4 epochs of 2 steps whose budget keeps ``kept``, killed between its first
    plan record and the config.json write of that plan; the config and the data."""
    import wae.train as train

    data = make_synthetic(count=64, size=16)
    _patched_budget(monkeypatch, kept=kept)
    real = train.ckpt.write_config

    def killed_at_the_plan(folder, cfg):
        if cfg.train.time_budget is None:  # the plan's write; the run's first write holds the budget
            raise KeyboardInterrupt
        real(folder, cfg)

    monkeypatch.setattr(train.ckpt, "write_config", killed_at_the_plan)
    cfg = tiny_config(epochs=4, lr_milestones=(0.5,), lr_factors=(0.1,), time_budget=3.0, **settings)
    with pytest.raises(KeyboardInterrupt):
        fit(cfg, tmp_path / "run", data=data, progress=False, log=lambda _: None)
    assert _recorded(tmp_path / "run") == (4, 4, 3.0) and len(_plans(tmp_path / "run")) == 1
    monkeypatch.setattr(train.ckpt, "write_config", real)
    return cfg, data


def test_a_kill_between_the_plan_record_and_config_json_is_taken_as_recorded(tmp_path, monkeypatch):
    """The plan record is written before config.json: a kill between the two leaves the budget
    pending in config.json and its record in metrics.jsonl; the next session takes the recorded
    decision and writes config.json. (The other order left a plan in force with no record of
    it; until session 60 the next session decided again at its own first epoch end.)"""
    cfg, data = _killed_at_the_plan(tmp_path, monkeypatch, kept=2)
    calls = _patched_budget(monkeypatch, kept=3)  # a decision made again would keep 3
    said: list[str] = []
    run = fit(cfg, tmp_path / "run", data=data, resume=True, progress=False, log=said.append)
    assert run.step == 4 and _recorded(tmp_path / "run") == (2, 2, None) and calls == []
    assert [p["epochs_kept"] for p in _plans(tmp_path / "run")] == [2]
    assert any("its decision at step 2 (training 2 of the 4 epochs) is in metrics.jsonl" in line for line in said)


def test_a_kill_at_the_plan_keeps_the_budget_lr_factor_the_record_holds(tmp_path, monkeypatch):
    # session 59 left open: decided again at the run's second epoch end, where the rule sets no
    # factor, the run trained on at the rate asked
    cfg, data = _killed_at_the_plan(tmp_path, monkeypatch, kept=2, budget_lr="sqrt")
    ((plan,),) = [_plans(tmp_path / "run")]
    assert plan["lr_scale"] == pytest.approx(math.sqrt(2))
    fit(cfg, tmp_path / "run", data=data, resume=True, progress=False, log=lambda _: None)
    stored = json.loads((tmp_path / "run" / "config.json").read_text())["train"]
    assert stored["lr_scale"] == pytest.approx(math.sqrt(2)) and (stored["epochs"], stored["time_budget"]) == (2, None)
    rates = {r["step"]: r["lr"] for r in _train_records(tmp_path / "run")}
    assert rates[3] == pytest.approx(cfg.train.lr * math.sqrt(2) * 0.1)  # the second epoch: past the milestone


def test_a_recorded_decision_is_taken_by_a_resume_whose_max_steps_ends_within_the_epochs_kept(tmp_path, monkeypatch):
    # hostile pass, session 60: bounded by the resuming session's --max-steps (6 steps: 3 epochs of
    # 2), the record of 2 kept epochs of 4 was passed over, and steps 3-6 trained at the rate asked
    # where the record's factor (and the uninterrupted run) gave sqrt(2) x it
    cfg, data = _killed_at_the_plan(tmp_path, monkeypatch, kept=2, budget_lr="sqrt")
    said: list[str] = []
    fit(override(cfg, max_steps=3), tmp_path / "run", data=data, resume=True, progress=False, log=said.append)
    stored = json.loads((tmp_path / "run" / "config.json").read_text())["train"]
    assert (stored["epochs"], stored["time_budget"]) == (2, None) and stored["lr_scale"] == pytest.approx(math.sqrt(2))
    assert _train_records(tmp_path / "run")[-1]["lr"] == pytest.approx(cfg.train.lr * math.sqrt(2) * 0.1)
    assert any("training 2 of the 4 epochs at lr 0.00283" in line for line in said)
    assert not any("was not used" in line for line in said)


@pytest.mark.parametrize(
    "edit", [{"time_budget_min": 5.0}, {"epochs_kept": 9}, {"epochs_kept": "2"}, {"revised": True}, {"step": 4}]
)
def test_a_plan_record_that_does_not_match_the_pending_budget_is_decided_again(tmp_path, monkeypatch, edit):
    cfg, data = _killed_at_the_plan(tmp_path, monkeypatch, kept=2)
    records = tmp_path / "run" / "metrics.jsonl"
    lines = [json.loads(line) for line in records.read_text().splitlines()]
    records.write_text("".join(json.dumps({**r, **edit} if r["kind"] == "plan" else r) + "\n" for r in lines))
    _patched_budget(monkeypatch, kept=3)
    run = fit(cfg, tmp_path / "run", data=data, resume=True, progress=False, log=lambda _: None)
    assert run.step == 6 and _recorded(tmp_path / "run") == (3, 3, None)  # decided again


def test_a_session_with_nothing_to_train_returns_the_runs_last_figures(tmp_path):
    data = make_synthetic(count=64, size=16)
    cfg = tiny_config(epochs=2)
    trained = fit(cfg, tmp_path / "run", data=data, progress=False, log=lambda _: None)
    again = fit(cfg, tmp_path / "run", data=data, resume=True, progress=False, log=lambda _: None)
    assert again.step == trained.step == 4 and trained.metrics
    assert again.metrics == pytest.approx(trained.metrics, nan_ok=True)  # it returned {}


def test_prior_draws_reach_the_penalty_and_are_refused_where_they_mean_nothing(tmp_path, monkeypatch):
    import wae.train as train

    seen: list[tuple[int, int]] = []
    real = train.latent_penalty

    def penalty(cfg, codes, prior, generator=None):
        seen.append((len(codes), len(prior)))
        return real(cfg, codes, prior, generator)

    monkeypatch.setattr(train, "latent_penalty", penalty)
    run = fit(tiny_config(epochs=1, prior_draws=4), tmp_path / "run", progress=False, log=lambda _: None)
    assert run.step == 4 and set(seen) == {(32, 128)} and math.isfinite(run.metrics["test_mmd"])
    for objective in ("swd", "sinkhorn", "cw", "gan", "vae"):
        with pytest.raises(UserError, match="prior_draws is for the mmd objective"):
            fit(tiny_config(objective, prior_draws=2), tmp_path / objective, progress=False)
        assert not (tmp_path / objective).exists()


def test_a_resume_leaves_lines_edited_by_hand_in_metrics_jsonl(tmp_path):
    """A resume removes the records after its checkpoint and a killed writer's partial last
    line, and nothing else: it once dropped every line it could not parse (an eval record with a
    400-digit number, a note), even in a session with nothing to train, which then rewrote the
    file; now such a session leaves it byte for byte."""
    data = make_synthetic(count=64, size=16)
    cfg = tiny_config(epochs=2)
    fit(cfg, tmp_path / "run", data=data, progress=False, log=lambda _: None)
    path = tmp_path / "run" / "metrics.jsonl"
    edited = path.read_text() + "a note of mine\n" + '{"kind": "eval", "step": 4, "x": ' + "9" * 400 + "}\n"
    path.write_text(edited)
    with pytest.warns(UserWarning, match="skipped"):  # the readers skip them, saying so
        again = fit(cfg, tmp_path / "run", data=data, resume=True, progress=False, log=lambda _: None)
    assert path.read_text() == edited and again.metrics  # the figures of the last record it reads
    path.write_text(edited + '{"kind": "train", "step": 4, "tot')  # a killed writer's partial line
    with pytest.warns(UserWarning, match="skipped"):
        fit(override(cfg, epochs=3), tmp_path / "run", data=data, resume=True, progress=False, log=lambda _: None)
    text = path.read_text()
    assert text.startswith(edited) and '"step": 4, "tot' not in text and text.endswith("\n")


def test_a_resume_says_what_it_removes_from_metrics_jsonl_and_keeps_the_users_lines(tmp_path):
    """The hostile pass on the resume's clean-up: a record of the user's own kind with a later
    step, and a last line of the user's without its line break, were removed without a word; a
    link was replaced by a plain file (the records went on through the link when nothing was
    removed) and a read-only file came back writable. Now only training's own records after
    the checkpoint and a cut-off record go, each said; the link's target is rewritten and keeps
    its mode."""
    data = make_synthetic(count=64, size=16)
    cfg = tiny_config(epochs=1)
    fit(cfg, tmp_path / "run", data=data, progress=False, log=lambda _: None)  # checkpoint at step 2
    path = tmp_path / "run" / "metrics.jsonl"
    base = path.read_text()
    note = '{"kind": "note", "step": 99, "text": "mine"}\n'
    later = '{"kind": "train", "step": 3, "total": 1.0}\n'  # a record of training after the checkpoint
    path.write_text(base + note + later + "# a note of mine, no line break")
    said: list[str] = []
    with pytest.warns(UserWarning, match="skipped 1 line"):  # the user's text is no record, nor a cut one
        fit(override(cfg, max_steps=2), tmp_path / "run", data=data, resume=True, progress=False, log=said.append)
    assert path.read_text() == base + note + "# a note of mine, no line break\n"
    assert any("1 record of steps after the checkpoint's step 2 removed" in line for line in said), said
    # a record cut short (a killed writer's): removed, and said; through a link, mode kept
    real = tmp_path / "elsewhere.jsonl"
    real.write_text(base + '{"kind": "train", "step": 3, "tot')
    real.chmod(0o444)
    path.unlink()
    path.symlink_to(real)
    said.clear()
    fit(override(cfg, max_steps=2), tmp_path / "run", data=data, resume=True, progress=False, log=said.append)
    assert path.is_symlink() and real.read_text() == base and (real.stat().st_mode & 0o777) == 0o444
    assert any("a last record cut short" in line for line in said), said


def test_a_resume_with_nothing_to_train_says_when_its_figures_were_edited(tmp_path):
    """A session that trains nothing returns the last evaluation's figures; a NaN edited into
    them came back as a figure (null in the CLI's output). Now non-finite values are left out,
    saying so."""
    data = make_synthetic(count=64, size=16)
    cfg = tiny_config(epochs=1)
    fit(cfg, tmp_path / "run", data=data, progress=False, log=lambda _: None)
    path = tmp_path / "run" / "metrics.jsonl"
    lines = path.read_text().splitlines()
    last = json.loads(lines[-1])
    assert last["kind"] == "eval" and last["step"] == 2
    last["test_recon_mse"] = float("nan")
    path.write_text("\n".join([*lines[:-1], json.dumps(last)]) + "\n")
    said: list[str] = []
    again = fit(cfg, tmp_path / "run", data=data, resume=True, progress=False, log=said.append)
    assert "test_recon_mse" not in again.metrics and math.isfinite(again.metrics["test_mmd"])
    assert any("has no finite test_recon_mse" in line for line in said), said


def test_prior_draws_need_the_imq_kernel(tmp_path):
    """The rbf kernel's bandwidth is the pooled sample's median distance: more draws moved it
    towards the prior's own distances and shrank the penalty (0.118 -> 0.053 at 8 draws, the
    hostile pass), a change of the objective, not of its noise. Refused."""
    with pytest.raises(UserError, match="needs the imq kernel"):
        fit(tiny_config(prior_draws=2, kernel="rbf"), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_a_resume_leaves_an_empty_metrics_file_unwritten(tmp_path):
    """An empty metrics.jsonl has nothing to remove: the clean-up does not rewrite it (session
    31 left it alone; the review of session 32's rewrite found it rewritten)."""
    from wae.train import _truncate_metrics

    path = tmp_path / "metrics.jsonl"
    path.write_text("")
    before = path.stat().st_ino
    said: list[str] = []
    _truncate_metrics(path, 0, said.append)
    assert path.stat().st_ino == before and path.read_text() == "" and said == []


def test_a_budget_that_the_epochs_done_overrun_says_so(tmp_path, monkeypatch):
    # session 48: a 0.2-minute budget that one epoch and the sampler's fit overran (303 s) said
    # "training 1 of the 25 epochs" only
    cfg = tiny_config(epochs=4, time_budget=1e-4)  # 6 ms: the first epoch alone overruns it
    said: list[str] = []
    run = fit(cfg, tmp_path / "run", data=make_synthetic(count=64, size=16), progress=False, log=said.append)
    assert run.step == 2  # the least a budget keeps: the epoch done
    (line,) = [line for line in said if line.startswith("time budget")]
    assert "training 1 of the 4 epochs, about " in line and " s past the budget: a budget keeps at least" in line
    assert line.endswith("the epochs done and fits the sampler after them"), line
    # a budget that its epochs fit says nothing of it
    roomy = tiny_config(epochs=1, time_budget=30.0)
    said.clear()
    fit(roomy, tmp_path / "roomy", data=make_synthetic(count=64, size=16), progress=False, log=said.append)
    assert not any("past the budget" in line for line in said), said

    # the plan unchanged (one epoch asked, or --max-steps within it) overruns too: said (hostile pass)
    for name, settings in (("one", {"epochs": 1}), ("steps", {"epochs": 3, "max_steps": 2})):
        said.clear()
        cfg = tiny_config(time_budget=1e-4, **settings)
        fit(cfg, tmp_path / name, data=make_synthetic(count=64, size=16), progress=False, log=said.append)
        (line,) = [line for line in said if line.startswith("time budget")]
        assert ": training 1 epoch, about " in line and " s past the budget" in line, line
