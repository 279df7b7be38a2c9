"""The benchmark harness (benchmarks/bench.py): variants, paired ratios, a tiny interleaved run in workers."""

from __future__ import annotations

import json

import pytest
import torch

from benchmarks import bench
from benchmarks.bench import main
from wae.config import native_bf16
from wae.data import batch_indices, load_mnist

needs_pythae = pytest.mark.skipif(
    not bench.pythae_available(), reason="pythae not installed (pip install -e '.[bench]')"
)
# one thread: tiny steps on a busy 2-core machine are otherwise dominated by OpenMP barrier waits
TINY = [
    "--threads",
    "1",
    "--batch-size",
    "8",
    "--rounds",
    "2",
    "--window-seconds",
    "0.05",
    "--warmup",
    "1",
    "--matmul-size",
    "128",
]


def test_variants_parse_into_settings_and_bad_ones_are_refused():
    assert bench.parse_variant("bf16+cl+compile") == {
        "precision": "bf16",
        "channels_last": True,
        "matmul_convs": False,
        "compiled": True,
        "fused_adam": False,
    }
    assert bench.parse_variant("fp32")["precision"] == "fp32"
    assert bench.Setting("wae", "fast", "mmd", **bench.parse_variant("fp32+fused+mm+cl")).variant == (
        "fp32 channels_last matmul convs fused Adam"
    )
    for bad in ("fp16", "bf16+cl+cl", "bf16+fast", "cl+bf16"):
        with pytest.raises(ValueError):
            bench.parse_variant(bad)


def test_ratios_pair_windows_of_the_same_round():
    setting = bench.Setting("wae", "fast", "mmd")
    # b is twice as fast as a in every round, while the machine's speed varies 10x across rounds
    a = bench.Result(setting, rates={0: 10.0, 1: 100.0, 2: 50.0, 3: 7.0})
    b = bench.Result(setting, rates={0: 20.0, 1: 200.0, 2: 100.0})
    assert bench.paired_ratio(a, b) == pytest.approx(0.5)
    assert bench.paired_ratio(b, a) == pytest.approx(2.0)
    assert bench.paired_ratio(a, bench.Result(setting)) != bench.paired_ratio(a, bench.Result(setting))  # nan
    # 1 GFLOP per image at 10 images/s against a 40 GFLOP/s peak is 25 %
    trained = bench.Result(setting, rates={0: 10.0}, flops_per_step=8e9, units_per_step=8)
    peak = bench.Result(bench.Setting("matmul"), rates={0: 40e9})
    assert bench.peak_fraction(trained, peak) == pytest.approx(0.25)


def test_only_rounds_in_which_the_matmul_peaks_held_up_are_kept():
    fp32 = bench.Result(bench.Setting("matmul"), rates={0: 100.0, 1: 40.0, 2: 95.0, 3: 90.0})
    bf16 = bench.Result(bench.Setting("matmul", precision="bf16"), rates={0: 500.0, 1: 480.0, 2: 300.0, 3: 460.0})
    assert bench.quiet_rounds([fp32, bf16]) == {0, 3}  # round 1: fp32 at 40 %, round 2: bf16 at 60 %
    early = bench.Result(bench.Setting("wae", "fast", "mmd"), rates={0: 7.0, 1: 1.0, 2: 2.0})
    late = bench.Result(bench.Setting("wae", "fast", "gan"), rates={1: 1.0, 2: 2.0})
    (early_kept, late_kept), _ = bench.keep_quiet([early, late], [fp32, bf16])
    assert early_kept.rates == {0: 7.0} and early_kept.quiet
    assert late_kept.rates == late.rates and not late_kept.quiet  # no quiet round: all kept, marked


def test_groups_hold_ours_and_the_references_for_mmd_only():
    groups = bench.settings_for(["fast"], ["mmd", "gan"], ["fp32", "bf16+cl", "bf16+cl+compile"], with_pythae=True)
    trainers = [[s.trainer for s in group] for group in groups]
    assert trainers == [["wae", "wae", "wae", "pythae", "bare", "bare"], ["wae", "wae", "wae"]]
    assert {s.objective for s in groups[1]} == {"gan"}
    bare = [s.variant for s in groups[0] if s.trainer == "bare"]
    assert bare == ["fp32", "bf16 channels_last"]  # one per precision and memory format of ours, never compiled


def test_missing_pythae_is_a_clear_error_when_asked_for(monkeypatch, capsys):
    monkeypatch.setattr(bench, "pythae_available", lambda: False)
    assert main(["--pythae", *TINY]) == 2
    assert "pip install -e '.[bench]'" in capsys.readouterr().err


@pytest.mark.slow  # a process per setting and round, and the matmul peaks (10 s): make test-slow
def test_bench_command_times_every_setting_in_every_round(tmp_path, capsys):
    # bf16 where this CPU has it natively (then its matmul peak is measured too), else fp32
    precision = "bf16" if native_bf16() else "fp32"
    out = tmp_path / "bench.md"
    argv = ["--archs", "fast", "--objectives", "mmd", "--variants", f"{precision}+cl", "--no-pythae"]
    assert main([*argv, *TINY, "--no-progress", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert out.read_text().strip() == text.strip()
    assert (
        f"Command: `python -m benchmarks.bench --archs fast --objectives mmd --variants {precision}+cl --no-pythae"
        in text
    )
    rows = {tuple(c.strip() for c in line.split("|")[3:5]): line for line in text.splitlines() if "| fast |" in line}
    assert set(rows) == {("wae", f"{precision} channels_last"), ("bare", f"{precision} channels_last")}
    for line in rows.values():
        cells = [c.strip() for c in line.split("|")[1:-1]]
        assert float(cells[4].replace(",", "")) > 0  # images/s
        assert int(cells[5].split()[0]) in (1, 2)  # rounds used: the quiet ones, else both
        assert cells[6] == ""  # no pythae row to compare with
        assert float(cells[8]) > 0  # GFLOP per image
        assert float(cells[10]) > 0  # % of the matmul peak
        assert float(cells[-1].replace(",", "")) > 100  # peak RSS (MB) of a process that imported torch
    ours = [c.strip() for c in rows[("wae", f"{precision} channels_last")].split("|")[1:-1]]
    assert float(ours[7].rstrip("x")) > 0  # x bare, against the bare loop in the same variant
    assert "| fp32 |" in text and ("| bf16 |" in text) == native_bf16()  # the matmul peaks


@needs_pythae
@pytest.mark.slow  # a pythae import and its trainer: tens of seconds; make test-slow
def test_pythae_trainer_is_timed_on_our_networks_in_the_same_rounds():
    group = [bench.Setting("wae", "fast", "mmd"), bench.Setting("pythae", "fast", "mmd")]
    results, peaks = bench.run(
        [group], rounds=2, window_seconds=0.05, warmup=1, batch_size=8, matmul_size=128, progress=False, threads=1
    )
    ours, pythae = results
    assert not ours.error and not pythae.error, (ours.error, pythae.error)
    assert set(ours.rates) == set(pythae.rates) == {0, 1} == set(peaks[-1].rates)
    assert ours.parameters == pythae.parameters  # the same encoder and decoder inside pythae's model
    # the same convolutions and linear layers; only the MMD's pairwise distances are computed differently
    assert pythae.flops_per_step == pytest.approx(ours.flops_per_step, rel=0.01)
    assert bench.paired_ratio(ours, pythae) > 0
    assert "| fast | mmd | pythae | fp32 |" in bench.table(results, peaks)


def test_matmul_convolutions_compute_the_same_function_on_the_layers_they_take(monkeypatch):
    import torch

    from wae import nets
    from wae.config import override, preset
    from wae.model import AutoEncoder

    assert bench.use_matmul_convolutions(AutoEncoder(preset("mnist-fast").model, 1, 28)) == 0  # oneDNN is faster
    paper = AutoEncoder(preset("mnist-paper").model, 1, 28)
    assert bench.use_matmul_convolutions(paper) == 3  # encoder 256->512 and 512->1024, decoder 1024->512
    assert [type(m).__name__ for m in paper.modules()].count("MatmulConv2d") == 2
    # a smaller network with one layer of each kind to switch: encoder 256->512 on 7x7, decoder 512->256 on 7x7
    monkeypatch.setitem(nets.ARCHITECTURES, "wide", nets.Architecture((8, 256, 512), (512, 256), 4, "stride2"))
    torch.manual_seed(0)
    # float64: the gradients of the first decoder layers cancel to 1e-6 of their terms, which
    # would leave float32 rounding at 1e-3 of them
    model = AutoEncoder(override(preset(), arch="wide").model, 1, 28).eval().double()
    keys = list(model.state_dict())
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    def outputs_and_gradients() -> list[torch.Tensor]:
        model.zero_grad()
        z = model.encoder(x)
        images = model.decoder(z)
        (z.square().sum() + images.square().mean()).backward()
        return [z.detach(), images.detach()] + [p.grad.clone() for p in model.parameters()]

    before = outputs_and_gradients()
    assert bench.use_matmul_convolutions(model) == 2
    assert list(model.state_dict()) == keys
    after = outputs_and_gradients()
    for a, b in zip(before, after, strict=True):  # rounding only: sums in another order
        assert (a - b).norm() <= 1e-10 * a.norm()


def test_without_native_bf16_the_defaults_time_fp32_only(monkeypatch):
    # emulated bf16 runs many times slower than fp32: its rows and matmul peak would stall the run
    monkeypatch.setattr(bench, "native_bf16", lambda: False)
    assert bench.peak_precisions() == ("fp32",)
    assert all(bench.parse_variant(v)["precision"] == "fp32" for v in bench.default_variants())
    assert {s.precision for s in bench.inception_settings([50, 100], bf16=False)} == {"fp32"}
    assert {s.precision for s in bench.inception_settings([50, 100])} == {"fp32"}  # the CPU's choice
    monkeypatch.setattr(bench, "native_bf16", lambda: True)
    assert bench.peak_precisions() == ("fp32", "bf16") and bench.default_variants() == bench.VARIANTS
    assert "bf16" in {s.precision for s in bench.inception_settings([50])}


def _time_to_quality():
    from benchmarks import time_to_quality

    return time_to_quality


def test_time_to_quality_segments_follow_the_training_order_and_thresholds_take_the_first_hit():
    ttq = _time_to_quality()
    plan = ttq.segments(250, 100, 0, steps=5, segment=2)  # 2 full batches an epoch: 3 epochs cut
    assert [len(s) for s in plan] == [2, 2, 1]
    flat = [b for s in plan for b in s]
    assert all(torch.equal(a, b) for a, b in zip(flat[:2], batch_indices(250, 100, 0, 0), strict=True))
    assert all(torch.equal(a, b) for a, b in zip(flat[2:4], batch_indices(250, 100, 0, 1), strict=True))
    curve = [(10, 1.0, 400.0), (20, 2.0, 240.0), (30, 3.0, 260.0), (40, 4.0, 190.0)]
    assert ttq.first_below(curve, 250.0) == (20, 2.0)
    assert ttq.first_below(curve, 200.0) == (40, 4.0)
    assert ttq.first_below(curve, 100.0) is None


@pytest.mark.slow  # a pythae import and its trainer: tens of seconds; make test-slow
def test_time_to_quality_runs_on_a_tiny_setting(tmp_path):
    ttq = _time_to_quality()
    trainers = ["wae", "pythae"] if bench.pythae_available() else ["wae"]
    out = tmp_path / "ttq.md"
    argv = ["--trainers", *trainers, "--steps", "4", "--segment", "2", "--samples", "100", "--train-images", "400"]
    assert ttq.main([*argv, "--threads", "1", "--thresholds", "5000", "1", "--out", str(out)]) == 0
    text = out.read_text()
    for name in trainers:
        row = next(line for line in text.splitlines() if line.startswith(f"| {name} |"))
        assert "not reached" in row and "(2)" in row  # FD <= 5000 after the first segment, never <= 1
    curves = json.loads(out.with_suffix(".json").read_text())
    assert [steps for steps, _, _ in curves["wae"]] == [2, 4]


def test_time_to_quality_bf16_trainer_starts_where_fp32_does_and_rounds_differently(tmp_path):
    ttq = _time_to_quality()
    images = load_mnist().train[:200]
    fp32, bf16 = (ttq.make_trainer(name, "fast", images, str(tmp_path), seed=0) for name in ("wae-fp32", "wae-bf16"))
    before = [p.detach().clone() for p in bf16.model.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(fp32.model.parameters(), before, strict=True))
    segment = list(batch_indices(len(images), 100, 0, 0))
    fp32.train(segment)
    bf16.train(segment)
    after32, after16 = list(fp32.model.parameters()), list(bf16.model.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(after32, after16, strict=True))  # autocast was on
    steps = [(a - b).norm() for a, b in zip(after32, before, strict=True)]
    gaps = [(a - b).norm() for a, b in zip(after32, after16, strict=True)]
    assert sum(gaps) < 0.2 * sum(steps)  # the same two Adam steps, up to rounding


CASES = [("wae", arch, "mmd") for arch in bench.PRESET_OF_ARCH]
CASES += [("bare", arch, "mmd") for arch in bench.PRESET_OF_ARCH]
CASES += [("wae", "fast", objective) for objective in bench.OBJECTIVES if objective != "mmd"]


@pytest.mark.parametrize(("trainer", "arch", "objective"), CASES)
def test_every_offered_network_and_objective_is_prepared_and_stepped(trainer, arch, objective, tmp_path):
    # every network --archs offers and every objective --objectives offers builds and takes a
    # step (a choice that only fails at run time, as "small" once did with a KeyError in every
    # row, is a broken option)
    setting = bench.Setting(trainer, arch, objective)
    job = bench._prepare(setting, batch_size=4, matmul_size=8, workdir=str(tmp_path))
    job.run(1)
    assert job.flops_per_step > 0 and job.units_per_step == 4


@pytest.mark.parametrize("arch", ["fast", "small", "wide", "mnist-paper"])
def test_every_trainer_of_the_bench_times_the_peers_objective(arch):
    # pythae's WAE and the bare loop train 0.05 x squared L2; the demo's preset trains L1 x 0.01
    # since session 13: the bench must time our step on the peers' objective, not the demo's
    # (and since session 23 lambda 1 and lr 2e-3: the peers' lambda 10 and lr 1e-3 are pinned)
    for objective in ("mmd", "gan"):
        cfg = bench._config(bench.Setting("wae", arch, objective), 100)
        assert (cfg.loss.cost, cfg.loss.cost_scale, cfg.loss.lam, cfg.train.lr) == ("l2sq", 0.05, 10.0, 1e-3)
    vae = bench._config(bench.Setting("wae", arch, "vae"), 100)
    assert (vae.loss.cost, vae.loss.cost_scale) == ("bce", 1.0)


def test_the_temperature_sweep_scales_the_codes_spread_and_scores_each_setting(tmp_path, capsys):
    """benchmarks/temperature.py (docs/results.md, session 58): the same draws scaled by tau
    around their component means, for the prior and the fitted mixture; a row per setting."""
    import wae
    from benchmarks import temperature
    from wae.samplers import fit_gmm

    from .conftest import tiny_config

    model = wae.AutoEncoder(tiny_config(prior="mixture", latent_dim=4).model, 1, 28, prior="mixture", prior_var=2.0)
    full = temperature.prior_codes(model, 4000, 1.0, torch.Generator().manual_seed(0))
    half = temperature.prior_codes(model, 4000, 0.5, torch.Generator().manual_seed(0))
    means = 2 * half - full  # full = m + s e, half = m + s e / 2, the same draws
    r_sigma = 5.0 * 2.0**0.5  # the mixture's means r sigma e_k
    assert bool(((means.abs() < 1e-4) | ((means - r_sigma).abs() < 1e-4)).all())
    assert (means.abs() > 1).sum(1).tolist() == [1] * 4000  # one component's axis a code
    assert abs(float((half - means).std()) - 0.5 * 2.0**0.5) < 0.05  # tau sigma
    mixture = fit_gmm(torch.randn(200, 3), components=2)
    spread = [temperature.mixture_codes(mixture, 2000, t, torch.Generator().manual_seed(0)) for t in (1.0, 0.25)]
    picked = (spread[1] - 0.25 * spread[0]) / 0.75  # the same draws: each code's component mean
    assert float(torch.cdist(picked.double(), mixture.means).min(1).values.max()) < 1e-4
    run = tmp_path / "r1"
    cfg = tiny_config(synthetic_size=28, synthetic_count=64, max_steps=1, fit_sampler="gmm", prior_components=2)
    wae.fit(cfg, run, progress=False, log=lambda _: None)
    assert (
        temperature.main([str(run), "--taus", "1,0.5", "--n", "40", "--n-test", "100", "--grids", str(tmp_path / "g")])
        == 0
    )
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| r1 ")]
    assert [line.split(" | ")[1:3] for line in rows] == [["prior", "1"], ["prior", "0.5"], ["gmm", "1"], ["gmm", "0.5"]]
    assert len(list((tmp_path / "g").glob("r1-*-t*.png"))) == 4


def test_the_convolution_ceiling_times_every_transposed_convolution_of_a_decoder(capsys):
    from benchmarks import conv_ceiling

    assert conv_ceiling.layer_shapes("small") == [(128, 64, 4, 2, 1, 0, 7), (64, 32, 4, 2, 1, 0, 14)]
    assert conv_ceiling.main(["--archs", "small", "--batch", "1", "--rounds", "1", "--repeats", "1"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| small |")]
    assert [row.split(" | ")[1:3] for row in rows] == [
        ["128 -> 64, 7 -> 14", "bf16"],
        ["64 -> 32, 14 -> 28", "bf16"],
        ["128 -> 64, 7 -> 14", "fp32"],
        ["64 -> 32, 14 -> 28", "fp32"],
    ]
    # forward and its two gradients: 3 x 2 n h w c_in c_out k^2 (one 7 x 7 image of 128 channels)
    gflop, conv_ms, mm_ms = conv_ceiling.measure((128, 64, 4, 2, 1, 0, 7), "fp32", 1, 1, 1)
    assert gflop == pytest.approx(3 * 2 * 49 * 128 * 64 * 16 / 1e9) and conv_ms > 0 and mm_ms > 0
    assert conv_ceiling.main(["--archs", "nope"]) == 2
    assert "unknown network 'nope' (one of fast, small" in capsys.readouterr().err
    # session 63's hostile pass: an empty list timed nothing and exited 0; a batch of 1e7 asked
    # 250 GB (a traceback) and one of 1e20 overflowed randn; each is refused before any work now
    for argv, said in (
        (["--archs", ","], "--archs names none"),
        (["--precisions", ""], "--precisions names none"),
        (["--batch", "10000000"], "--batch must be from 1 to 10,000; got 10000000"),
        (["--batch", "99999999999999999999"], "--batch must be from 1 to 10,000"),
        (["--rounds", "0", "--repeats", "-1"], "--rounds must be at least 1; got 0; --repeats must be"),
    ):
        assert conv_ceiling.main(argv) == 2, argv
        captured = capsys.readouterr()
        assert said in captured.err and captured.out == "", argv
