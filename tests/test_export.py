"""wae export: safetensors weights that load without unpickling, and deployable decoders that
compute what the eager decoder computes."""

from __future__ import annotations

import importlib.util
import json
import pickle
import warnings

import numpy as np
import pytest
import torch

import wae
from wae import export
from wae.cli import main
from wae.config import UserError

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
