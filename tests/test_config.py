"""Configs: presets, overrides, validation, and the round trip through plain data."""

from __future__ import annotations

import json

import pytest
import torch

from wae.config import (
    PRESETS,
    Config,
    UserError,
    override,
    plain_config,
    preset,
    read_settings,
    set_fields,
    to_toml,
    validate,
)


@pytest.mark.parametrize("name", list(PRESETS))
@pytest.mark.parametrize("objective", ["mmd", "gan", "vae"])
def test_every_preset_is_valid_and_survives_json(name, objective):
    cfg = preset(name, objective)
    if name == "celeba-paper":
        cfg = override(cfg, path="faces.npz")
    validate(cfg)
    assert cfg.loss.objective == objective
    assert Config.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_paper_settings():
    mnist = preset("mnist-paper")
    assert (mnist.model.latent_dim, mnist.loss.lam, mnist.train.batch_size, mnist.train.epochs) == (8, 10.0, 100, 100)
    assert (mnist.train.lr, mnist.train.adversary_lr, mnist.train.beta1) == (1e-3, 5e-4, 0.5)
    celeba_mmd, celeba_gan = preset("celeba-paper", "mmd"), preset("celeba-paper", "gan")
    assert (celeba_mmd.loss.lam, celeba_mmd.train.lr, celeba_mmd.loss.prior_var) == (100.0, 1e-3, 2.0)
    assert (celeba_gan.loss.lam, celeba_gan.train.lr) == (1.0, 3e-4)
    vae = preset("mnist-fast", "vae")
    assert (vae.model.encoder, vae.loss.cost, vae.loss.cost_scale, vae.loss.lam) == ("gaussian", "bce", 1.0, 1.0)


def test_demo_settings():
    # the presets' measured choices (docs/results.md, "Sample quality"): WAE-MMD with the L1
    # cost x 0.01 at lambda 1 and lr 2e-3 (both presets since session 26) with the mixture prior
    # (since session 40), WAE-GAN with the same (since session 42), the other penalties at the
    # paper's 10 with 0.05 x squared L2, N(0, I) and lr 1e-3; the quality preset differs in
    # network and epochs
    for name, arch, epochs, lr in (("mnist-fast", "small", 25, 2e-3), ("mnist-quality", "wide", 30, 2e-3)):
        mmd, gan, swd = (preset(name, o) for o in ("mmd", "gan", "swd"))
        assert (mmd.model.arch, mmd.model.latent_dim, mmd.train.epochs, mmd.train.fit_sampler) == (
            arch,
            16,
            epochs,
            "gmm",
        )
        assert (mmd.loss.lam, gan.loss.lam, swd.loss.lam) == (1.0, 1.0, 10.0)
        assert (mmd.train.lr, gan.train.lr, swd.train.lr) == (lr, lr, 1e-3)
        assert (mmd.loss.cost, mmd.loss.cost_scale, gan.loss.cost, gan.loss.cost_scale) == ("l1", 0.01) * 2
        assert (swd.loss.cost, swd.loss.cost_scale) == ("l2sq", 0.05)
        assert (mmd.loss.prior, gan.loss.prior, swd.loss.prior) == ("mixture", "mixture", "gaussian")


def test_override_by_bare_or_qualified_name():
    cfg = override(preset(), lam=5.0, train__epochs=2, kernel_scales=[1.0, 2.0])
    assert (cfg.loss.lam, cfg.train.epochs, cfg.loss.kernel_scales) == (5.0, 2, (1.0, 2.0))
    assert preset().loss.lam == 1.0, "override must not change the preset it started from"
    with pytest.raises(UserError, match="unknown setting"):
        override(preset(), lamda=3.0)


@pytest.mark.parametrize(
    "settings,message",
    [
        ({"lam": -1.0}, "loss.lam"),
        ({"lam": float("nan")}, "loss.lam"),
        ({"latent_dim": 0}, "latent_dim"),
        ({"batch_size": 1}, "batch_size"),
        ({"kernel": "laplace"}, "loss.kernel"),
        ({"lr_milestones": (0.5,), "lr_factors": ()}, "same length"),
        ({"lr_milestones": (30,), "lr_factors": (0.5,)}, "fractions"),
        ({"objective": "vae", "encoder": "deterministic"}, "gaussian"),  # a VAE given a deterministic encoder
        ({"output": "tanh"}, "range"),
        ({"prior_trick": True, "prior": "sphere"}, "prior trick"),
        ({"dataset": "npz"}, "path"),
        ({"prior": "mixture", "latent_dim": 8, "prior_components": 9}, "at most 8"),
        ({"prior_components": 0}, "prior_components"),
        ({"prior_separation": 0.0}, "prior_separation"),
        ({"prior_separation": 1e300}, "at most 1e6"),
        ({"prior": "mixture", "objective": "cw"}, "Gaussian prior"),
    ],
)
def test_validation_names_the_bad_setting(settings, message):
    with pytest.raises(UserError, match=message):
        validate(override(preset(), **settings))


def test_unknown_keys_in_a_saved_config_are_refused():
    data = preset().to_dict()
    data["loss"]["lambda"] = 1
    with pytest.raises(UserError, match="lambda"):
        Config.from_dict(data)


def test_the_suite_keeps_its_cache_out_of_the_users_home():
    from pathlib import Path

    from wae.config import cache_dir

    assert not cache_dir().is_relative_to(Path.home() / ".cache")


def test_switching_objective_brings_the_new_objectives_defaults():
    import dataclasses

    from wae.config import OBJECTIVES, PRESETS, for_objective, preset

    for name in PRESETS:  # a whole preset switches whole, in every direction
        for old in OBJECTIVES:
            for new in OBJECTIVES:
                assert for_objective(preset(name, old), new) == preset(name, new), (name, old, new)
    mmd = preset("mnist-fast", "mmd")
    assert (mmd.loss.lam, for_objective(mmd, "swd").loss.lam) == (1.0, 10.0)
    assert (mmd.train.lr, for_objective(mmd, "swd").train.lr) == (2e-3, 1e-3)
    assert for_objective(mmd, "gan") == preset("mnist-fast", "gan")  # WAE-GAN shares mmd's since session 42
    chosen = dataclasses.replace(mmd, loss=dataclasses.replace(mmd.loss, lam=5.0, cost_scale=0.1))
    switched = for_objective(chosen, "gan")
    assert (switched.loss.lam, switched.loss.cost_scale) == (5.0, 0.1)  # set by the user: kept
    assert for_objective(chosen, "vae").loss.lam == 1.0  # the ELBO's, always
    with pytest.raises(UserError, match="unknown objective 'GAN'"):
        for_objective(mmd, "GAN")


def test_a_dumped_config_with_another_objective_is_that_objectives_config(tmp_path):
    from wae.cli import main

    dumped = tmp_path / "full.toml"
    dumped.write_text(to_toml(preset("mnist-fast", "mmd")))
    import contextlib
    import io

    for objective, lam in (("gan", "1.0"), ("swd", "10.0"), ("vae", "1.0"), ("mmd", "1.0")):
        out = tmp_path / f"{objective}.toml"
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            assert main(["train", "--config", str(dumped), "--objective", objective, "--print-config"]) == 0
        out.write_text(buffer.getvalue())
        assert read_settings(out)["loss"]["lam"] == float(lam), objective
        assert read_settings(out)["loss"]["objective"] == objective


@pytest.mark.parametrize("prior", ["uniform", "sphere", "mixture"])
def test_a_new_vae_run_needs_the_gaussian_prior_its_kl_is_to(prior):
    """The VAE's KL is to N(0, sigma_z^2 I) in closed form: with another prior it would train
    against one prior and sample from another. A new run is refused; a saved one still reads."""
    from wae.config import validate_new

    cfg = override(preset(), objective="vae", encoder="gaussian", prior=prior)
    validate(cfg)
    with pytest.raises(UserError, match="KL is to the Gaussian prior"):
        validate_new(cfg)


@pytest.mark.parametrize("objective", ["mmd", "gan", "vae", "swd", "sinkhorn", "cw"])
@pytest.mark.parametrize("latent_dim", [1, 2, 8, 10, 16, 64])
def test_the_demos_mixture_prior_fits_every_objective_and_latent_dim(objective, latent_dim):
    # session 40: mnist-fast's WAE-MMD draws from a 10-component mixture prior. A preset's default
    # must not refuse another setting the user gives (--latent-dim 8 with K = 10 components, or
    # --objective vae, whose KL is to N(0, I)): K follows d_z and the prior follows the objective.
    import torch

    from wae.config import prior_components, validate_new
    from wae.train import auto_encoder

    cfg = override(preset("mnist-fast"), objective=objective, latent_dim=latent_dim)
    if objective == "cw" and latent_dim < 2:  # its closed form's own bound
        with pytest.raises(UserError, match="latent_dim >= 2"):
            validate_new(cfg)
        return
    validate_new(cfg)
    tuned = objective in ("mmd", "gan")  # WAE-GAN shares WAE-MMD's settings since session 42
    assert cfg.loss.prior == ("mixture" if tuned else "gaussian")
    assert cfg.loss.prior_components is None and prior_components(cfg) == min(10, latent_dim)
    model = auto_encoder(cfg, 1, 28)
    codes = model.prior_sample(2000, torch.Generator().manual_seed(0))
    assert codes.shape == (2000, latent_dim)
    if tuned:  # each draw lies near one of the min(10, d_z) means, 5 sigma out on an axis
        assert model.prior_components == min(10, latent_dim)
        nearest = codes[:, : min(10, latent_dim)].argmax(dim=1)
        assert len(nearest.unique()) == min(10, latent_dim)


def test_a_mixture_given_more_components_than_axes_is_still_refused():
    with pytest.raises(UserError, match="at most 8"):
        validate(override(preset(), latent_dim=8, prior_components=10))
    cfg = override(preset(), latent_dim=8, prior_components=4)
    validate(cfg)
    from wae.config import prior_components

    assert prior_components(cfg) == 4


@pytest.mark.parametrize("objective", ["mmd", "vae", "swd", "sinkhorn", "cw"])
def test_the_prior_trick_is_refused_where_there_is_no_adversary(objective):
    # session 40: --prior-trick with WAE-MMD was taken and ignored (only WAE-GAN's adversary
    # reads it); with the mixture prior the refusal said only "needs the Gaussian prior"
    from wae.config import validate_new

    with pytest.raises(UserError, match=f"{objective} has no adversary"):
        validate_new(override(preset("mnist-fast", objective), prior_trick=True))
    validate_new(override(preset("mnist-fast", "gan"), prior="gaussian", prior_trick=True))
    # WAE-GAN's preset draws from the mixture since session 42: the refusal says what to give
    with pytest.raises(UserError, match=r"loss.prior is mixture \(give --prior gaussian\)"):
        validate_new(override(preset("mnist-fast", "gan"), prior_trick=True))


def test_the_mixtures_components_are_compared_as_used():
    # session 40: K's default became "not set" (min(10, d_z)); a run of session 39 recorded 10
    # for every prior, which must not count as another setting (--auto-resume, checkpoints)
    from wae.config import differing_settings

    def names(a, b):
        return [f.name for _, f, _, _ in differing_settings(a, b)]

    gaussian = override(preset("mnist-fast", "swd"))
    assert names(set_fields(gaussian, prior_components=10), gaussian) == []  # as config.json recorded it
    mixture = preset("mnist-fast")  # d_z = 16: not set is 10
    assert names(override(mixture, prior_components=10), mixture) == []
    assert names(override(mixture, prior_components=4), mixture) == ["prior_components"]
    # K not set in both follows d_z: the difference is d_z's, named once (session 41: a second
    # line "prior_components None (config.json: None)" named no difference at all)
    assert names(override(mixture, latent_dim=8), mixture) == ["latent_dim"]
    assert names(override(mixture, latent_dim=8, prior_components=8), mixture) == ["latent_dim", "prior_components"]
    assert names(set_fields(mixture, prior="gaussian", prior_components=3), mixture) == ["prior"]


def test_a_checkpoint_compare_names_the_recorded_values_and_takes_one_nan_as_one_value():
    # session 40: "prior_components 3 (config.json: 8)" named the resolved K where the file held
    # nothing, and the same NaN in both files was called a mismatch, not the bad value it is
    from wae.runs import config_differences

    base = preset()  # d_z = 16, K not set
    assert config_differences(base, override(base, prior_components=3)) == [  # config.json, then checkpoint
        "loss.prior_components 3 (config.json: not set)"
    ]
    nan = override(base, prior_separation=float("nan"))
    assert config_differences(nan, nan) == []
    with pytest.raises(UserError, match="prior_separation"):
        validate(nan)


BF16_FLAGS = {"fpu", "avx512f", "avx512_bf16"}


@pytest.fixture
def bf16_host(monkeypatch):
    """A CPU with native bf16 and no cap in the environment, whatever this machine is."""
    from wae import config

    monkeypatch.setattr(config, "cpu_flags", lambda: set(BF16_FLAGS))
    for name in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize(
    "env, capped",
    [
        ({}, None),
        ({"ONEDNN_MAX_CPU_ISA": "AVX2"}, "ONEDNN_MAX_CPU_ISA=AVX2"),
        ({"ONEDNN_MAX_CPU_ISA": "avx512_core"}, "ONEDNN_MAX_CPU_ISA=avx512_core"),  # oneDNN reads any case
        ({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_VNNI"}, "ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI"),
        ({"DNNL_MAX_CPU_ISA": "AVX2"}, "DNNL_MAX_CPU_ISA=AVX2"),  # the older name
        ({"ONEDNN_MAX_CPU_ISA": "", "DNNL_MAX_CPU_ISA": "SSE41"}, "DNNL_MAX_CPU_ISA=SSE41"),  # empty: unset
        ({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_AMX", "DNNL_MAX_CPU_ISA": "AVX2"}, None),  # the newer name wins
        ({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}, None),
        ({"ONEDNN_MAX_CPU_ISA": "DEFAULT"}, None),
        ({"ONEDNN_MAX_CPU_ISA": " AVX2"}, None),  # oneDNN ignores a value it does not know
        ({"ONEDNN_MAX_CPU_ISA": "avx3"}, None),
    ],
)
def test_bf16_is_native_only_where_onednn_may_use_it(bf16_host, env, capped):
    """A bf16 matmul ran 1,000x slower with ONEDNN_MAX_CPU_ISA=AVX2 on a CPU with AMX, and auto
    chose bf16 there from /proc/cpuinfo alone: the demo trained at 48 images/s, not 830 in fp32."""
    from wae.config import bf16_emulated, native_bf16, onednn_isa_cap, resolve_precision

    for name, value in env.items():
        bf16_host.setenv(name, value)
    assert onednn_isa_cap() == capped
    why = bf16_emulated()
    assert native_bf16() == (capped is None) and (why is None) == (capped is None)
    if capped:
        assert why == f"{capped} holds oneDNN below bf16"
    assert resolve_precision(preset(), "cpu").train.precision == ("bf16" if capped is None else "fp32")
    assert resolve_precision(override(preset(), precision="bf16"), "cpu").train.precision == "bf16"  # as asked


def test_bf16_is_not_native_without_the_flag_or_onednn(bf16_host):
    import torch

    from wae import config

    assert config.bf16_emulated() is None
    with pytest.MonkeyPatch.context() as off:  # a bf16 matmul without oneDNN: 1,300x slower
        off.setattr(torch.backends.mkldnn, "enabled", False)
        assert not torch.backends.mkldnn.enabled
        assert config.bf16_emulated() == "oneDNN is off (torch.backends.mkldnn)"
        assert config.resolve_precision(preset(), "cpu").train.precision == "fp32"
    assert torch.backends.mkldnn.enabled and config.native_bf16()
    bf16_host.setattr(config, "cpu_flags", lambda: {"fpu", "avx512f", "avx2"})
    assert config.bf16_emulated() == "this CPU has no native bf16 (neither avx512_bf16 nor amx_bf16)"
    bf16_host.setattr(config, "cpu_flags", lambda: None)
    assert "cannot be read" in config.bf16_emulated()
    assert config.resolve_precision(preset(), "cpu").train.precision == "fp32"


def test_cpu_flags_are_the_flags_line_only(monkeypatch, tmp_path):
    from wae import config

    text = "processor\t: 0\nmodel name\t: avx512_bf16 in a name\nflags\t\t: fpu sse2 avx2\n\nprocessor\t: 1\n"
    real_open = open

    def fake_open(path, *args, **kwargs):
        return (
            real_open(tmp_path / "cpuinfo", *args, **kwargs)
            if path == "/proc/cpuinfo"
            else real_open(path, *args, **kwargs)
        )

    (tmp_path / "cpuinfo").write_text(text)
    monkeypatch.setattr("builtins.open", fake_open)
    assert config.cpu_flags() == {"fpu", "sse2", "avx2"}  # a model name that mentions bf16 is not a flag


def test_setting_text_spells_values_as_a_command_line_or_a_file_does():
    # session 48: refusals and notes showed Python's repr ("'bf16'", "True", "(0.1, 0.2)")
    from wae.config import setting_text

    assert setting_text(None) == "not set"
    assert (setting_text(True), setting_text(False)) == ("true", "false")
    assert (setting_text("bf16"), setting_text("mnist-fast")) == ("bf16", "mnist-fast")
    assert (setting_text(0.002), setting_text(16)) == ("0.002", "16")
    assert setting_text((0.5, 0.75)) == "0.5 0.75" and setting_text((0.5, 0.75), file=True) == "[0.5, 0.75]"
    assert setting_text(()) == "none" and setting_text((), file=True) == "[]"
    assert setting_text(tuple(range(100))) == "0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 ..."  # cut at a value's end
    # a word that a plain spelling would misread is quoted: spaces, quotes, control characters
    assert setting_text("a b") == "'a b'" and setting_text("x\ny") == "'x\\ny'" and setting_text("") == "''"
    assert setting_text("it's") == '"it\'s"'  # repr chooses the quotes
    # a word that would read as another type is quoted (hostile pass, session 48)
    assert [setting_text(w) for w in ("3", "0.5", "true", "none", "not set", "nan")] == [
        "'3'",
        "'0.5'",
        "'true'",
        "'none'",
        "'not set'",
        "'nan'",
    ]
    assert setting_text((1, (2, 3)), file=True) == "[1, [2, 3]]"
    assert setting_text(("x" * 50, "y")) == "'" + "x" * 36 + "..."  # a first value alone too long: cut inside it
    np = pytest.importorskip("numpy")
    assert (setting_text(np.float64(0.5)), setting_text(np.bool_(True)), setting_text(np.int64(3))) == (
        "0.5",
        "true",
        "3",
    )


def test_numpy_and_torch_scalars_from_python_are_taken_alike_and_named_as_numbers():
    # session 54 left open: code_noise=torch.tensor(0.1) was refused ("must be float") where
    # np.array(0.1) was taken, and a refused np.float16 was named "np.float16(6e+04)"
    import dataclasses
    import warnings

    import numpy as np
    import torch

    from wae.config import plain_config

    cfg = Config()
    for value in (np.array(0.25), torch.tensor(0.25), np.float16(0.25), torch.tensor(0.25, dtype=torch.float64)):
        given = dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, code_noise=value))
        validate(given)
        assert plain_config(given).loss.code_noise == 0.25 and type(plain_config(given).loss.code_noise) is float
    latent = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, latent_dim=torch.tensor(3)))
    validate(latent)
    assert plain_config(latent).model.latent_dim == 3
    for value, said in ((np.float16(60000), "got 60000.0"), (torch.tensor(1000.0), "got 1000.0")):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no numpy overflow warning from the bounds check
            with pytest.raises(UserError, match=f"loss.code_noise must be at most 100; {said} "):
                validate(dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, code_noise=value)))
    with pytest.raises(
        UserError, match=r"must be float; got tensor\(\[0.1000\]\)"
    ):  # a tensor of one value is no scalar
        validate(dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, code_noise=torch.tensor([0.1]))))


def test_tensors_of_every_kind_from_python_are_taken_or_refused_in_one_line():
    # hostile pass, session 55: a meta tensor crashed in .item(), a tensor computed with
    # gradients crashed in dataclasses.asdict's deep copy, a Parameter (a Tensor subclass) was
    # refused in two lines, np.array("l2sq") kept L1's cost scale
    import dataclasses

    import numpy as np
    import torch

    cfg = preset("mnist-fast")
    for value in (torch.tensor(0.5, requires_grad=True) * 1, torch.nn.Parameter(torch.tensor(0.5))):
        assert override(cfg, code_noise=value).loss.code_noise == 0.5
        validate(dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, code_noise=value)))
    assert override(cfg, cost=np.array("l2sq")).loss.cost_scale == override(cfg, cost="l2sq").loss.cost_scale == 0.05
    assert override(cfg, objective=np.array("gan")).loss.objective == "gan"
    for value, said in (
        (torch.tensor(0.1, device="meta"), "device='meta'"),
        (torch.ones(2, 2), "[[1., 1.], [1., 1.]]"),
    ):
        with pytest.raises(UserError, match="must be float; got tensor") as refused:
            override(cfg, code_noise=value)
        assert "\n" not in str(refused.value) and said in str(refused.value)


def test_validate_compares_a_python_callers_scalars_as_numbers_and_names_a_replaced_section():
    # second hostile pass, session 55: a seed of torch.int32 was "must be in [0, 4294967295]; got
    # 7" (the bound wrapped in the tensor's dtype); np.array("mnist-fast") as the preset was "must
    # be one of mnist-fast, ..."; a section replaced by a dict was an AttributeError
    import dataclasses

    import numpy as np
    import torch

    cfg = Config()
    validate(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seed=torch.tensor(7, dtype=torch.int32))))
    validate(dataclasses.replace(cfg, preset=np.array("mnist-fast")))
    with pytest.raises(UserError, match="^config loss must be a LossConfig; got a dict$"):
        validate(dataclasses.replace(cfg, loss=dataclasses.asdict(cfg.loss)))
    with pytest.raises(UserError, match="^config model must be a ModelConfig; got a TrainConfig$"):
        validate(dataclasses.replace(cfg, model=cfg.train))


def test_sequences_of_numpy_and_torch_scalars_are_taken_as_lists_and_tuples_alike():
    # session 56: the scalars of a sequence were taken in two ways (the check kept a list a list,
    # override made a list a tuple and left a tuple's items to later): one helper, python_scalars
    import numpy as np
    import torch

    from wae.config import python_scalars

    got = python_scalars([np.float32(0.5), np.array(2), torch.tensor(0.25)])
    assert got == [0.5, 2, 0.25] and type(got) is list and [type(v) for v in got] == [float, int, float]
    got = python_scalars((np.float64(0.1), torch.tensor(3)))
    assert got == (0.1, 3) and type(got) is tuple and [type(v) for v in got] == [float, int]
    assert python_scalars(np.float16(0.5)) == 0.5 and python_scalars("gmm") == "gmm"
    cfg = preset("mnist-fast")
    for given in ([np.float64(0.5), np.array(0.75)], (np.float64(0.5), torch.tensor(0.75))):
        milestones = override(cfg, lr_milestones=given).train.lr_milestones
        assert milestones == (0.5, 0.75) and all(type(v) is float for v in milestones)
    with pytest.raises(UserError, match=r"lr_milestones must each be >= 0 .*; got -1.5 "):  # named as a number
        validate(override(cfg, lr_milestones=[np.float64(0.5), np.float64(-1.5)]))


def test_numpy_values_that_hold_no_number_are_named_as_given_or_refused_in_one_line():
    # left open in session 55: seed=np.datetime64("2020-01-01") was refused as
    # "got datetime.date(2020, 1, 1)" (.item() of a date); np.timedelta64, which numpy makes a
    # numbers.Integral, passed the checks of whole numbers and crashed in int() and float()
    import dataclasses

    import numpy as np
    import torch

    from wae.config import python_scalar, real_value, whole_value
    from wae.divergences import mmd_imq
    from wae.priors import sample_prior

    cfg = preset("mnist-fast")
    duration = np.timedelta64(3, "s")
    for value, said in (
        (np.datetime64("2020-01-01"), "np.datetime64('2020-01-01')"),
        (duration, "np.timedelta64(3,'s')"),
        (np.bytes_(b"x"), "np.bytes_(b'x')"),
    ):
        assert python_scalar(value) is value
        with pytest.raises(UserError, match="train.seed must be int; got ") as refused:
            override(cfg, seed=value)
        assert str(refused.value).endswith(said)
        with pytest.raises(UserError, match="train.seed must be int; got ") as refused:
            validate(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seed=value)))
        assert str(refused.value).endswith(said)
    with pytest.raises(UserError, match=r"loss.lam must be float; got np.timedelta64\(3,'s'\)$"):
        override(cfg, lam=duration)
    assert whole_value(duration) is None and real_value(duration) is None
    assert whole_value(np.int64(3)) == 3 and whole_value(True) is None and real_value(np.float32(0.5)) == 0.5
    with pytest.raises(ValueError, match="variance must be a finite number > 0, from 1e-12 to 1e.12; got "):
        sample_prior("gaussian", 4, 2, var=duration)
    with pytest.raises(ValueError, match="separation must be a finite number"):
        sample_prior("mixture", 4, 2, separation=duration)
    with pytest.raises(ValueError, match="the mixture prior places its"):
        sample_prior("mixture", 4, 2, components=duration)
    assert sample_prior("mixture", 4, 2, components=np.int64(2), separation=np.float32(3.0)).shape == (4, 2)
    codes = torch.randn(8, 2)
    with pytest.raises(ValueError, match="block must be a positive number of rows"):
        mmd_imq(codes, codes, block=duration)
    assert python_scalar(np.str_("gmm")) == "gmm" and type(python_scalar(np.str_("gmm"))) is str
    assert python_scalar(np.complex64(1j)) == 1j


def test_durations_of_every_unit_masked_values_and_bools_are_no_numbers_anywhere():
    # hostile pass, session 56: np.timedelta64(5, "ns") (whose .item() is a plain int) and
    # np.ma.array(5, mask=True) were taken as 5 by the config, the priors, the MMD, the sampler
    # fit and model.sample; labels [1, True] as [1, 1]; torch.tensor(True) as n = 1; the priors'
    # and the MMD's 0-d tensors refused, their refusals spanning lines; a Fraction kept by to_dict
    import json
    from fractions import Fraction

    import numpy as np
    import torch

    import wae
    from wae.divergences import mmd_imq
    from wae.model import check_labels
    from wae.priors import mixture_means, sample_prior

    cfg = preset("mnist-fast")
    odd = (np.timedelta64(5, "ns"), np.datetime64(5, "ns"), np.ma.array(5, mask=True), np.ma.masked)
    for value in odd:
        for name in ("seed", "lam", "time_budget"):
            with pytest.raises(UserError, match=f"{name} must be "):
                override(cfg, **{name: value})
        with pytest.raises(UserError, match=r"kernel_scales\[0\] must be float"):
            override(cfg, kernel_scales=[value, 2.0])
        for call in (
            lambda v: sample_prior("gaussian", 4, 2, var=v),
            lambda v: sample_prior("mixture", 4, 2, separation=v),
            lambda v: sample_prior("gaussian", v, 2),
            lambda v: mmd_imq(torch.randn(8, 2), torch.randn(8, 2), prior_var=v),
        ):
            with pytest.raises(ValueError) as refused:
                call(value)
            assert "\n" not in str(refused.value)
    model = wae.AutoEncoder(cfg.model, 1, 28)
    for n in (*odd, torch.tensor(True), torch.tensor(3, device="meta"), torch.tensor([2])):
        with pytest.raises(UserError, match="n must be a whole number >= 0; got ") as refused:
            model.sample(n)
        assert "\n" not in str(refused.value)
    assert model.sample(torch.tensor(2)).shape == model.sample(np.int64(2)).shape == (2, 1, 28, 28)
    # numpy's and torch's 0-d numbers are taken by the priors and the MMD, as by the config
    assert sample_prior(
        "mixture", np.int64(4), torch.tensor(3), var=torch.tensor(0.5), components=np.array(2)
    ).shape == (
        4,
        3,
    )
    assert torch.equal(mixture_means(3, np.array(1.0), 2, torch.tensor(4.0)), mixture_means(3, 1.0, 2, 4.0))
    codes = torch.randn(8, 2)
    assert torch.allclose(mmd_imq(codes, codes.flip(0), block=torch.tensor(3)), mmd_imq(codes, codes.flip(0), block=3))
    with pytest.raises(ValueError, match=r"n must be a whole number from 0 to 2\^48; got a whole number of about"):
        sample_prior("gaussian", 10**400, 2)
    for dim in (True, 3.0, "3", np.timedelta64(3, "ns"), torch.tensor(3, device="meta")):  # the second pass
        with pytest.raises(ValueError, match="dim must be a whole number from 1 to 2"):
            mixture_means(dim, components=1)
    for scales in (torch.tensor(1.0), np.array(1.0), np.ma.masked):
        with pytest.raises(ValueError, match=r"scales must be a sequence \(a list or tuple\)"):
            mmd_imq(codes, codes, scales=scales)
    for labels in ([1, True], [np.True_, 1], [1, torch.tensor(True)], [np.ma.array(1, mask=True), 1]):
        with pytest.raises(UserError, match="labels must be integers .* among them"):
            check_labels(labels, 2, 3)
    assert check_labels((np.int64(1), torch.tensor(2)), 2, 3).tolist() == [1, 2]
    for value in (Fraction(1, 2), np.longdouble(0.5)):
        given = wae.Config(loss=wae.config.LossConfig(lam=value))
        assert json.dumps(given.to_dict()["loss"]["lam"]) == "0.5"


def test_a_real_number_no_float_holds_is_refused_where_float_would_make_it_0_or_inf():
    # session 56 left open: np.longdouble("1e-4000") and Fraction(1, 10**400) became lambda 0 (a
    # plain auto-encoder) without a word, longdouble("1e400") inf, and Fraction(10**400, 3) was
    # refused as "an integer beyond any float"
    from fractions import Fraction

    import numpy as np
    import torch

    from wae.config import FloatRangeError, real_value
    from wae.divergences import mmd_imq
    from wae.priors import sample_prior
    from wae.toy import ToyConfig, checked_toy_config

    tiny = (np.longdouble("1e-4000"), np.longdouble("-1e-4000"), Fraction(1, 10**400))
    huge = (np.longdouble("1e400"), Fraction(10**400, 3), 10**400)
    cfg = preset("mnist-fast")
    for values, words in (
        (tiny, "a number too small for a float: it would read as 0"),
        (huge, "a number beyond any float"),
    ):
        for value in values:
            with pytest.raises(FloatRangeError, match=words):
                real_value(value)
            for name in ("lam", "lr", "time_budget", "prior_var", "prior_separation"):
                with pytest.raises(UserError, match=rf"{name} must be a float; got .*, {words}"):
                    override(cfg, **{name: value})
            toy = words if not isinstance(value, int) else r"at most 1e\+06; got a whole number"
            with pytest.raises(UserError, match=rf"^lambdas(:| must be) .*{toy}"):
                checked_toy_config(ToyConfig(lambdas=(value,)))
            with pytest.raises(UserError, match=rf"^lr(:| must be) .*{toy}"):
                checked_toy_config(ToyConfig(lr=value))
            for call in (
                lambda v: sample_prior("gaussian", 4, 2, var=v),
                lambda v: mmd_imq(torch.randn(8, 2), torch.randn(8, 2), scales=(v,)),
            ):
                with pytest.raises(ValueError, match="got "):
                    call(value)
    # numbers a float holds, 0 among them, are taken as before
    for value, expected in ((np.longdouble(0), 0.0), (Fraction(0), 0.0), (np.longdouble("1e-300"), 1e-300)):
        assert real_value(value) == expected and override(cfg, lam=value).loss.lam == expected
    assert override(cfg, lam=Fraction(1, 4)).loss.lam == 0.25 and real_value(np.longdouble("inf")) == float("inf")


def test_a_value_of_the_wrong_type_is_named_as_the_caller_gave_it():
    # session 58 left open: a whole-number setting given as Fraction(3, 1) was refused as "got 3.0",
    # the float that to_dict made of it before the types were checked (override, validate, train)
    from fractions import Fraction

    import numpy as np

    import wae
    from wae.config import check_types, validate

    cfg = preset("mnist-fast")
    for value, named in ((Fraction(3, 1), r"Fraction\(3, 1\)"), (Fraction(7, 2), r"Fraction\(7, 2\)"), (3.0, "3.0")):
        for name in ("epochs", "latent_dim", "seed", "batch_size"):
            with pytest.raises(UserError, match=rf"must be int.*; got {named}$"):
                override(cfg, **{name: value})
        typed = preset("mnist-fast")
        typed.train.epochs = value
        for check in (validate, check_types):
            with pytest.raises(UserError, match=rf"train\.epochs must be int; got {named}$"):
                check(typed)
        with pytest.raises(UserError, match=rf"train\.epochs must be int; got {named}$"):
            wae.fit(typed, progress=False)
    # the same values where a float is wanted, and numpy's whole numbers where an int is, are taken
    taken = override(cfg, lam=Fraction(3, 1), epochs=np.int64(4), kernel_scales=[Fraction(1, 2), 2])
    assert (taken.loss.lam, taken.train.epochs, taken.loss.kernel_scales) == (3.0, 4, (0.5, 2.0))
    assert type(taken.train.epochs) is int and type(taken.loss.lam) is float

    # the same pass: a section replaced by a dict was a TypeError of dataclasses in override, by
    # another section "unknown setting 'epochs'"; a str enum read by from_dict became "SE.GAN"; a
    # float subclass whose __float__ refuses was taken before the change and must still be
    import dataclasses
    import enum

    for section, named in ((dataclasses.asdict(cfg.train), "dict"), (cfg.loss, "LossConfig")):
        replaced = dataclasses.replace(cfg, train=section)
        with pytest.raises(UserError, match=rf"^config train must be a TrainConfig; got a {named}$"):
            override(replaced, epochs=3)

    class Named(str, enum.Enum):
        GAN = "gan"

    class Stubborn(float):
        def __float__(self):
            raise ValueError("no")

    assert wae.Config.from_dict({"loss": {"objective": Named.GAN}}).loss.objective == "gan"
    assert override(cfg, lam=Stubborn(0.5)).loss.lam == 0.5


def test_a_list_where_one_value_is_wanted_is_named_as_a_list():
    # session 60 left open: override(cfg, epochs=[3]) said "got (3,)", the tuple that set_fields
    # made of every list before the types were checked; the tuple settings still take lists
    cfg = preset("mnist-fast")
    for name, value, named in (
        ("epochs", [3], r"\[3\]"),
        ("lam", [1.0, 2.0], r"\[1\.0, 2\.0\]"),
        ("cost", ["l1"], r"\['l1'\]"),
        ("objective", ["gan"], r"\['gan'\]"),
    ):
        with pytest.raises(UserError, match=rf"must be .*; got {named}$"):
            override(cfg, **{name: value})
    # the same pass: an array for the objective was numpy's "truth value of an array is ambiguous"
    import numpy as np

    for value in (np.array(["gan", "mmd"]), np.array([0.5, 0.7])):
        with pytest.raises(UserError, match=r"^loss\.objective must be one of mmd, .*; got array\("):
            override(cfg, objective=value)
    assert override(cfg, objective=np.array("vae")).loss.objective == "vae"
    taken = override(cfg, lr_milestones=[0.5, 0.7], lr_factors=[0.5, 0.1], kernel_scales=[1, 2])
    assert (taken.train.lr_milestones, taken.train.lr_factors) == ((0.5, 0.7), (0.5, 0.1))
    assert taken.loss.kernel_scales == (1.0, 2.0) and type(taken.loss.kernel_scales) is tuple


def test_arrays_that_hold_no_numbers_or_name_a_preset():
    # session 63's hostile pass: an array of numpy durations or dates was taken as its
    # nanoseconds (kernel_scales (1.0, 2.0)) where a list of them is refused; a preset given as a
    # 0-d array (which validate takes) silenced unused_changes; an array as fit_tensor's
    # condition raised numpy's "truth value of an array ... is ambiguous"
    import dataclasses

    import numpy as np

    import wae
    from wae.config import unused_changes

    cfg = preset("mnist-fast")
    for bad in (np.array([1, 2], dtype="timedelta64[ns]"), np.array([0], dtype="datetime64[ns]")):
        with pytest.raises(UserError, match=r"kernel_scales\[0\] must be float; got np\.(timedelta|datetime)64"):
            override(cfg, kernel_scales=bad)
        with pytest.raises(UserError, match=r"lr_milestones\[0\] must be float"):
            override(cfg, lr_milestones=bad)
    gan = preset("mnist-fast", "gan")
    hand = dataclasses.replace(gan, loss=dataclasses.replace(gan.loss, kernel_scales=np.array([1.0, 3.0])))
    note = unused_changes(hand)
    assert "kernel_scales" in note
    assert unused_changes(dataclasses.replace(hand, preset=np.array("mnist-fast"))) == note
    images, labels = torch.rand(10, 28, 28), torch.arange(10) % 2
    for key in ("condition", "data__condition"):
        with pytest.raises(UserError, match=r"data\.condition must be str; got array\(\['labels', 'none'\]"):
            wae.fit_tensor(images, labels=labels, **{key: np.array(["labels", "none"])})


def test_a_one_dimensional_array_is_taken_where_a_list_is():
    # session 61 left open: kernel_scales=np.geomspace(...) was "must be tuple; got array([...])"
    import dataclasses

    import numpy as np

    cfg = preset("mnist-fast")
    for value in (np.geomspace(0.1, 10.0, 3), torch.tensor([0.1, 1.0, 10.0], dtype=torch.float64)):
        taken = override(cfg, kernel_scales=value)
        assert taken.loss.kernel_scales == pytest.approx((0.1, 1.0, 10.0))
        assert type(taken.loss.kernel_scales) is tuple and all(type(v) is float for v in taken.loss.kernel_scales)
    taken = override(cfg, lr_milestones=np.array([0.5, 0.7], dtype=np.float32), lr_factors=torch.tensor([0.5, 0.1]))
    assert taken.train.lr_milestones == pytest.approx((0.5, 0.7)) and taken.train.lr_factors == pytest.approx(
        (0.5, 0.1)
    )
    validate(taken)
    # a config built by hand with an array in it, as wae.train takes it (plain_config), and saved
    hand = dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, kernel_scales=np.array([1, 2])))
    plain = plain_config(hand)
    assert plain.loss.kernel_scales == (1.0, 2.0) and json.loads(json.dumps(plain.to_dict()))["loss"][
        "kernel_scales"
    ] == [1.0, 2.0]
    # the module's other readers of a config built by hand (session 62's hostile pass: numpy's
    # "truth value of an array is ambiguous" from unused_changes, a TypeError from to_toml)
    from wae.config import to_toml, unused_changes

    gan = preset("mnist-fast", "gan")
    assert "kernel_scales" in unused_changes(
        dataclasses.replace(gan, loss=dataclasses.replace(gan.loss, kernel_scales=np.array([1.0, 3.0])))
    )
    assert unused_changes(hand) == ""
    assert "kernel_scales = [1.0, 2.0]" in to_toml(hand).splitlines()
    # the rules of a list still hold: items checked, emptiness and bad values refused by validate
    with pytest.raises(UserError, match=r"kernel_scales\[0\] must be float; got 'a'"):
        override(cfg, kernel_scales=np.array(["a", "b"]))
    for bad, why in ((np.array([]), "non-empty"), (np.array([np.nan, 1.0]), "finite")):
        with pytest.raises(UserError, match=why):
            validate(override(cfg, kernel_scales=bad))
    # not one dimension, or no values: refused as given
    for bad, named in (
        (np.array([[1.0, 2.0]]), r"array\(\[\[1\., 2\.\]\]\)"),
        (torch.ones(2, device="meta"), r"tensor\("),
    ):
        with pytest.raises(UserError, match=rf"kernel_scales must be tuple; got {named}"):
            override(cfg, kernel_scales=bad)
    # where one value is taken, an array of one is named as given, however the config was made
    with pytest.raises(UserError, match=r"train\.epochs must be int; got array\(\[3\]\)$"):
        override(cfg, epochs=np.array([3]))
    with pytest.raises(UserError, match=r"train\.epochs must be int; got tensor\(\[3\]\)$"):
        plain_config(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=torch.tensor([3]))))
