"""wae export: safetensors weights that load without unpickling, and deployable decoders that
compute what the eager decoder computes."""

from __future__ import annotations

import importlib.util
import json
import os
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import wae
from wae import export
from wae.cli import main
from wae.config import Config, UserError, setting_text

pytest.importorskip("safetensors")

from .conftest import SMALL_RUN

TINY = [*SMALL_RUN]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export") / "run"
    # a moving average: the export must carry the weights that generate, as load_model does
    assert main(["train", *TINY, "--max-steps", "4", "--ema", "0.5", "--out", str(folder)]) == 0
    return folder


@pytest.fixture(scope="module")
def exported(run, tmp_path_factory):
    out = tmp_path_factory.mktemp("exported") / "model"
    assert main(["export", str(run), "--format", "torchscript", "--out", str(out)]) == 0
    return out


def test_export_loads_as_the_run_without_unpickling(run, exported, monkeypatch):
    assert {p.name for p in exported.iterdir()} == {
        "model.safetensors",
        "config.json",
        "README.md",
        "export.json",
        "decoder.torchscript.pt",
        "sampler-gmm.npz",  # the mixture the preset fits at the end of training: --sampler gmm works too
    }
    original, cfg = wae.load_model(run)

    def refuse(*args, **kwargs):
        raise AssertionError("an export must load without unpickling")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    model, loaded_cfg = wae.load_model(exported)
    assert loaded_cfg == cfg and not model.training
    assert original.state_dict().keys() == model.state_dict().keys()
    assert all(
        torch.equal(a, b) for a, b in zip(original.state_dict().values(), model.state_dict().values(), strict=True)
    )
    z = torch.randn(5, cfg.model.latent_dim, generator=torch.Generator().manual_seed(1))
    assert torch.equal(model.decode(z), original.decode(z))


def test_sample_from_an_export_equals_sample_from_the_run(run, exported, tmp_path, capsys):
    for sampler in ("prior", "gmm"):
        assert main(["sample", str(run), "--n", "8", "--sampler", sampler, "--out", str(tmp_path / "run.npz")]) == 0
        assert main(["sample", str(exported), "--n", "8", "--sampler", sampler, "--out", str(tmp_path / "ex.npz")]) == 0
        with np.load(tmp_path / "run.npz") as a, np.load(tmp_path / "ex.npz") as b:
            assert np.array_equal(a["images"], b["images"])


def test_torchscript_decoder_matches_the_eager_one(exported):
    record = json.loads((exported / "export.json").read_text())
    assert record["formats"] == ["safetensors", "torchscript"] and record["max_abs_diff"]["torchscript"] < 1e-6
    model, cfg = wae.load_model(exported)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.load: deprecated upstream, still the reader
        decoder = torch.jit.load(str(exported / "decoder.torchscript.pt"))
    z = torch.randn(3, cfg.model.latent_dim)  # another batch size than the traced one
    expected = export.ImageDecoder(model, cfg.data.range)(z)
    assert expected.shape == (3, model.channels, model.size, model.size)
    assert 0 <= expected.min() and expected.max() <= 1
    assert (decoder(z) - expected).abs().max().item() < 1e-6
    card = (exported / "README.md").read_text()
    assert "| torchscript | `decoder.torchscript.pt` |" in card and "objective `mmd`" in card


def test_runs_lists_an_export_as_one(exported, capsys):
    assert main(["runs", str(exported)]) == 0
    (line,) = capsys.readouterr().out.splitlines()[2:]
    assert line.startswith("| model | mnist-fast | mmd |") and "wae export" in line


@pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("onnx", "onnxscript", "onnxruntime")),
    reason="onnx, onnxscript or onnxruntime not installed (pip install 'wae[export]')",
)
def test_onnx_decoder_in_onnxruntime_matches_the_eager_one(run, tmp_path, capsys):
    import onnxruntime

    out = tmp_path / "onnx"
    assert main(["export", str(run), "--format", "onnx", "--out", str(out)]) == 0
    record = json.loads((out / "export.json").read_text())
    assert record["max_abs_diff"]["onnx"] < 1e-5
    model, cfg = wae.load_model(out)
    session = onnxruntime.InferenceSession(str(out / "decoder.onnx"), providers=["CPUExecutionProvider"])
    z = torch.randn(5, cfg.model.latent_dim)
    (images,) = session.run(None, {"code": z.numpy()})
    expected = export.ImageDecoder(model, cfg.data.range)(z).detach()
    assert images.shape == tuple(expected.shape) and np.abs(images - expected.numpy()).max() < 1e-5


def _copy(exported, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(exported, copy)
    return copy


def test_damaged_exports_are_one_line_errors(exported, tmp_path):
    copy = _copy(exported, tmp_path)
    weights = (copy / "model.safetensors").read_bytes()
    (copy / "model.safetensors").write_bytes(weights[: len(weights) // 3])
    with pytest.raises(UserError, match="model.safetensors is damaged"):
        wae.load_model(copy)
    st = pytest.importorskip("safetensors.torch")
    tensors = st.load_file(str(exported / "model.safetensors"))
    (copy / "model.safetensors").write_bytes(st.save(tensors, metadata={"format": "other"}))
    with pytest.raises(UserError, match="not a wae export"):
        wae.load_model(copy)
    with st.safe_open(str(exported / "model.safetensors"), framework="pt") as f:
        meta = f.metadata()
    nan = {k: v * float("nan") if v.is_floating_point() else v for k, v in tensors.items()}
    (copy / "model.safetensors").write_bytes(st.save(nan, meta))
    with pytest.raises(UserError, match="NaN"):
        wae.load_model(copy)
    (copy / "model.safetensors").write_bytes(st.save(tensors, metadata={**meta, "channels": "4"}))
    with pytest.raises(UserError, match="channels must be 1 or 3"):
        wae.load_model(copy)
    (copy / "model.safetensors").write_bytes(st.save(tensors, metadata={**meta, "size": "x"}))
    with pytest.raises(UserError, match="not whole numbers"):
        wae.load_model(copy)
    (copy / "model.safetensors").write_bytes(weights)
    (copy / "config.json").write_text("[1]")
    with pytest.raises(UserError, match="config.json"):
        wae.load_model(copy)


def test_export_refuses_a_full_folder_and_names_the_missing_extra(run, exported, tmp_path, monkeypatch, capsys):
    assert main(["export", str(run), "--out", str(exported)]) == 2
    assert "not an empty folder" in capsys.readouterr().err
    monkeypatch.setitem(__import__("sys").modules, "safetensors", None)  # as if not installed
    assert main(["export", str(run), "--out", str(tmp_path / "new")]) == 2
    assert "pip install 'wae[export]'" in capsys.readouterr().err and not (tmp_path / "new").exists()


def test_conditional_and_table_runs_are_refused_in_one_line(tmp_path, capsys):
    from tests.test_tables import table_rows, write_csv

    write_csv(tmp_path / "t.csv", table_rows())
    tiny = ["--batch-size", "32", "--precision", "fp32", "--max-steps", "2", "--no-progress"]
    assert main(["train", "--data", str(tmp_path / "t.csv"), *tiny, "--out", str(tmp_path / "table")]) == 0
    assert main(["train", "--dataset", "synthetic", "--condition", "labels", *tiny, "--out", str(tmp_path / "c")]) == 0
    capsys.readouterr()
    for run, what in [("table", "runs on tables"), ("c", "conditional runs")]:
        assert main(["export", str(tmp_path / run), "--out", str(tmp_path / f"{run}-model")]) == 2
        assert f"does not handle {what}" in capsys.readouterr().err
        assert not (tmp_path / f"{run}-model").exists()


@pytest.mark.parametrize(
    ("section", "name", "value"),
    [("loss", "prior", "uniform"), ("loss", "lam", 7.0), ("model", "latent_dim", 3), ("loss", "prior_separation", 2.0)],
)
def test_an_edited_export_config_is_refused_naming_the_setting(exported, tmp_path, capsys, section, name, value):
    copy = _copy(exported, tmp_path)
    cfg = json.loads((copy / "config.json").read_text())
    was = cfg[section][name]
    cfg[section][name] = value
    (copy / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UserError, match="are not of one export") as err:
        wae.load_model(copy)
    assert f"{section}.{name} {setting_text(was)} (config.json: {setting_text(value)})" in str(
        err.value
    )  # as the file writes it
    assert main(["sample", str(copy), "--n", "4", "--out", str(tmp_path / "s.png")]) == 2
    assert "are not of one export" in capsys.readouterr().err and not (tmp_path / "s.png").exists()
    assert main(["runs", str(tmp_path)]) == 0  # its row names the files by their names in the folder
    row = next(line for line in capsys.readouterr().out.splitlines() if "not of one export" in line)
    assert "config.json and model.safetensors are not of one export" in row and str(tmp_path) not in row


def test_an_export_config_may_change_what_a_resumed_run_may_and_names_the_rest(exported, tmp_path):
    copy = _copy(exported, tmp_path)
    cfg = json.loads((copy / "config.json").read_text())
    # a recipient's data are elsewhere; threads and epochs do not change what the weights draw
    edited = {**cfg, "data": {**cfg["data"], "path": str(tmp_path / "moved.npz")}}
    edited["train"] = {**cfg["train"], "threads": 1, "epochs": 99}
    (copy / "config.json").write_text(json.dumps(edited, indent=8))
    _, loaded = wae.load_model(copy)
    assert loaded.data.path == str(tmp_path / "moved.npz")
    (copy / "config.json").write_text(json.dumps({**cfg, "preset": "celeba-paper"}))  # a label, compared too
    with pytest.raises(UserError, match=r"preset \w[\w-]* \(config.json: celeba-paper\)"):
        wae.load_model(copy)
    many = {**cfg, "loss": {**cfg["loss"], "lam": 3.0, "prior": "uniform", "prior_var": 2.0, "cost_scale": 0.5}}
    (copy / "config.json").write_text(json.dumps(many))
    with pytest.raises(UserError, match=r"and 1 more\)") as err:  # a few named, not every one
        wae.load_model(copy)
    assert str(err.value).count("(config.json:") == 3
    (copy / "config.json").write_text(json.dumps({**cfg, "loss": {**cfg["loss"], "prior": "gausian"}}))
    with pytest.raises(UserError, match="loss.prior must be one of"):  # validation's words, not "damaged"
        wae.load_model(copy)


def test_weights_of_another_export_are_named_as_such_without_a_spurious_setting(run, exported, tmp_path):
    other = tmp_path / "other-run"
    assert main(["train", *TINY, "--max-steps", "2", "--latent-dim", "8", "--out", str(other)]) == 0
    assert main(["export", str(other), "--out", str(tmp_path / "other")]) == 0
    copy = _copy(exported, tmp_path)
    (copy / "model.safetensors").write_bytes((tmp_path / "other" / "model.safetensors").read_bytes())
    with pytest.raises(UserError, match="weights copied in from another") as err:
        wae.load_model(copy)
    # K follows d_z in both (not set): the difference is d_z's, named once
    assert "model.latent_dim 8 (config.json: 16)" in str(err.value) and "prior_components" not in str(err.value)


def test_an_export_of_a_run_whose_data_name_is_not_utf8(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (96, 28, 28), dtype=np.uint8)
    data = Path(os.fsdecode(bytes(tmp_path) + b"/d\xff.npz"))  # a name of bytes that are not UTF-8
    np.savez(data, x_train=images, x_test=images[:32])
    run_dir = tmp_path / "run"
    small = ["--batch-size", "32", "--precision", "fp32", "--arch", "fast", "--no-progress"]
    assert main(["train", "--data", str(data), *small, "--max-steps", "2", "--out", str(run_dir)]) == 0
    assert main(["export", str(run_dir), "--out", str(tmp_path / "e")]) == 0
    model, cfg = wae.load_model(tmp_path / "e")
    assert cfg.data.path == str(data) and model.latent_dim == cfg.model.latent_dim


def test_an_export_without_a_recorded_config_still_loads_and_a_damaged_record_is_named(exported, tmp_path):
    st = pytest.importorskip("safetensors.torch")
    copy = _copy(exported, tmp_path)
    tensors = st.load_file(str(exported / "model.safetensors"))
    with st.safe_open(str(exported / "model.safetensors"), framework="pt") as f:
        meta = f.metadata()
    assert json.loads(meta["config"]) == json.loads((exported / "config.json").read_text())
    old = {k: v for k, v in meta.items() if k != "config"}  # as an export of session 40 or before
    (copy / "model.safetensors").write_bytes(st.save(tensors, metadata=old))
    _, cfg = wae.load_model(copy)
    assert cfg == Config.from_dict(json.loads((exported / "config.json").read_text()))
    stored = json.loads(meta["config"])
    damaged_and_why = {  # each refusal names the metadata's config and why, as a config.json's would
        "{": r"cannot be read \(not valid JSON: Expecting property name .* at line 1 column 2\)",
        "[1]": r": a config must be a JSON object; got \[1\]$",
        json.dumps(
            {**stored, "loss": {**stored["loss"], "prior": "nothing"}}
        ): r': loss.prior must be one of .*; got "nothing"$',
        '{"loss": {"prior": "gaussian"}}': r": config has no data section",  # not filled in with defaults
        '{"train": {"epochs": 1' + "0" * 400 + "}}": r"cannot be read \(a number beyond any float\)",
        # a key given twice: json kept the last value without a word (wae writes each once)
        '{"loss": {"lam": 7.0, "lam": 1.0}}': r'cannot be read \(the key "lam" is given twice\)',
    }
    for damaged, why in damaged_and_why.items():
        (copy / "model.safetensors").write_bytes(st.save(tensors, metadata={**meta, "config": damaged}))
        with pytest.raises(UserError, match=r"^the config in the metadata of .*model\.safetensors.*" + why):
            wae.load_model(copy)
