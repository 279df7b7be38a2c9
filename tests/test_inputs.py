"""Inputs validated before work: the Python API's arguments, stored configs and checkpoints,
npz headers, small test splits, hand-edited run files (the command-line cases are in
tests/test_bad_input.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import wae
from wae import checkpoint as ckpt
from wae.cli import main
from wae.config import Config, UserError, file_text, json_repr, override, preset, validate
from wae.data import load_npz
from wae.evaluate import evaluate_run, grid_rows, interpolation_ends, precision_recall
from wae.train import read_jsonl

from .conftest import SMALL_RUN

TINY = [*SMALL_RUN]
FAST = {"batch_size": 16, "max_steps": 1, "precision": "fp32", "eval_every": 0}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("inputs") / "run"
    assert main(["train", *TINY, "--max-steps", "2", "--out", str(out)]) == 0
    return out


def _blobs(n: int = 40) -> torch.Tensor:
    return torch.rand(n, 16, 16, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize(
    "images",
    [_blobs().numpy(), _blobs().to(torch.bfloat16), _blobs().double(), _blobs()[..., None].numpy()],
    ids=["numpy", "bf16", "float64", "numpy-nhwc"],
)
def test_api_takes_numpy_arrays_and_floats_of_any_precision(images):
    result = wae.fit_tensor(images, **FAST)
    assert result.step == 1 and result.model.sample(2).shape == (2, 1, 16, 16)


@pytest.mark.parametrize(
    "images,settings,message",
    [
        (_blobs().tolist(), {}, "must be a torch.Tensor or a numpy array; got list"),
        (_blobs()[0], {}, "expected \\(n, h, w\\)"),
        (torch.full((40, 16, 16), float("nan")), {}, "NaN"),
        (_blobs() * 3, {}, "outside \\[0, 1\\]"),
        (_blobs().to(torch.int32), {}, "dtype int32"),
        (_blobs(2), {}, "at least 3"),
        (_blobs(), {"latent_dim": 2.5}, "latent_dim must be int; got 2.5"),
        (_blobs(), {"lam": "10"}, "loss.lam must be float"),
        (_blobs(), {"batch_size": True}, "batch_size must be int"),
        (_blobs(), {"latent_dim": -3}, "latent_dim must be at least 1"),
        (_blobs(), {"no_such_setting": 1}, "unknown setting"),
    ],
)
def test_api_refuses_bad_arguments_with_a_user_error(images, settings, message):
    with pytest.raises(UserError, match=message):
        wae.fit_tensor(images, **{**FAST, **settings})
    assert issubclass(UserError, ValueError)


def test_api_refuses_a_config_that_is_not_one():
    with pytest.raises(UserError, match="config must be a wae.Config"):
        wae.fit_tensor(_blobs(), config={"model": {}})  # type: ignore[arg-type]
    with pytest.raises(UserError, match="a config must be a wae.Config"):
        validate({"model": {}})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "section,key,value,message",
    [
        ("model", "latent_dim", "8", 'model.latent_dim must be int; got "8"'),  # as the file writes it
        ("model", "latent_dim", 2.5, "model.latent_dim must be int"),
        ("model", "latent_dim", [8], "model.latent_dim must be int"),
        ("model", "latent_dim", -3, "latent_dim must be at least 1"),
        ("model", "latent_dim", 10**9, "latent_dim must be at most"),
        ("train", "max_steps", "x", "max_steps must be int or null"),
        ("loss", "kernel_scales", [1, "a"], "kernel_scales\\[1\\] must be float"),
        ("loss", "prior_trick", 1, "prior_trick must be bool"),
        ("data", "image_size", 2**20, "image_size must be at most"),
        ("model", "arch", "nope", "model.arch must be one of"),
        ("data", "workers", -1, "data.workers must be"),
        ("train", "threads", 0, "train.threads must be"),
        ("train", "threads", 10**6, "train.threads must be at most 1024"),
        ("train", "seed", -1, "train.seed must be"),
        ("train", "seed", 2**40, "train.seed must be in"),
        ("loss", "kernel_scales", [1.0, float("inf")], "kernel_scales must"),
    ],
)
def test_a_stored_config_is_checked_like_flags(section, key, value, message):
    stored = preset().to_dict()
    stored[section][key] = value
    with pytest.raises(UserError, match=message):
        validate(Config.from_dict(json.loads(json.dumps(stored))))


def test_a_stored_configs_wrong_value_is_named_as_json_writes_it_and_a_python_objects_as_python_does():
    """A config.json's value of the wrong type was named as Python writes it ("got True", "got
    None", "got '8'"); from_dict reads JSON's values, so it names them as JSON does. A Config
    object made in Python keeps Python's spelling."""
    cases = [
        (("train", "epochs"), True, "train.epochs must be int; got true"),
        (("train", "epochs"), None, "train.epochs must be int; got null"),
        (("loss", "kernel_scales"), [1, None], "loss.kernel_scales[1] must be float; got null"),
        (("loss", "lam"), "1e-3", 'loss.lam must be float; got "1e-3"'),
        (("model", "arch"), ["small"], 'model.arch must be str; got ["small"]'),
        (("loss", "prior_trick"), {"on": True}, 'loss.prior_trick must be bool; got {"on": true}'),
    ]
    for (section, key), value, message in cases:
        stored = preset().to_dict()
        stored[section][key] = value
        with pytest.raises(UserError) as refused:
            Config.from_dict(json.loads(json.dumps(stored)))
        assert message in str(refused.value), (value, str(refused.value))
    with pytest.raises(UserError) as refused:
        Config.from_dict({**preset().to_dict(), "preset": False})
    assert "config preset must be str; got false" in str(refused.value)
    with pytest.raises(UserError, match="a config must be a JSON object; got null"):
        Config.from_dict(None)  # type: ignore[arg-type]
    cfg = preset()
    cfg.train.epochs = True  # type: ignore[assignment]
    with pytest.raises(UserError, match="train.epochs must be int; got True"):
        validate(cfg)
    # Python callers whose values pass through from_dict on the way (the helper of session 49)
    for call in (lambda: override(preset(), epochs=True), lambda: wae.fit_tensor(_blobs(), epochs=True)):
        with pytest.raises(UserError, match="train.epochs must be int; got True$"):
            call()
    with pytest.raises(UserError, match="train.epochs must be int; got None$"):
        override(preset(), epochs=None)


def test_a_value_that_cannot_be_shown_is_named_by_its_type_and_widths_under_4_read_as_4():
    class Unshowable:
        def __repr__(self) -> str:
            raise RuntimeError("boom")

    stored = preset().to_dict()
    stored["train"]["epochs"] = Unshowable()
    with pytest.raises(
        UserError, match="train.epochs must be int; got a value of type Unshowable that cannot be shown"
    ):
        Config.from_dict(stored)
    assert json_repr(Unshowable()) == "a value of type Unshowable that cannot be shown"
    assert file_text([Unshowable()]) == "a value of type list that cannot be shown"
    for width in (-1, 0, 1, 2, 3, 4):
        assert file_text("abcdefghijklmnop", width) == '"...' and json_repr("abcdefghijklmnop", width) == "'..."
    assert file_text(True, 1) == "true" and file_text(list(range(10**6)), 10, toml=True) == "[0, 1, ..."


def test_ints_stay_ints_and_floats_may_be_written_as_ints():
    stored = preset().to_dict()
    stored["loss"]["lam"] = 3
    cfg = Config.from_dict(stored)
    assert cfg.loss.lam == 3.0 and isinstance(cfg.loss.lam, float)
    with pytest.raises(UserError, match="section 'model' must be a JSON object"):
        Config.from_dict({**stored, "model": [1]})


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda p: p["data"].update(size=2**20), "data.size must be a whole number in"),
        (lambda p: p["data"].update(size=30), "cannot take 30x30 images"),
        (lambda p: p["data"].update(channels=4), "data.channels must be 1 or 3"),
        (lambda p: p["config"]["model"].update(latent_dim=-3), "latent_dim must be at least 1"),
        (lambda p: p["config"]["model"].update(latent_dim=3), "weights do not fit its config"),
        (lambda p: p.update(config=[1]), "a config must be a JSON object"),
    ],
)
def test_crafted_but_safe_checkpoints_are_refused_before_building_the_model(run, tmp_path, edit, message):
    payload = ckpt.load(ckpt.run_checkpoints(run)[0])
    edit(payload)
    ckpt.save_atomic(payload, tmp_path / "crafted.pt")
    with pytest.raises(UserError, match=message):
        wae.load_model(tmp_path / "crafted.pt")


def test_npz_header_is_read_before_the_array(tmp_path, monkeypatch):
    import io
    import zipfile

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False, "shape": (10**9, 28, 28)})
    with zipfile.ZipFile(tmp_path / "huge.npz", "w") as archive:
        archive.writestr("x.npy", header.getvalue() + b"\0" * 100)
    with pytest.raises(UserError, match=r"would need 730\.\d GiB of memory"):
        load_npz(tmp_path / "huge.npz")
    np.savez(tmp_path / "objects.npz", x=np.array([None] * 20, dtype=object))
    with pytest.raises(UserError, match="holds Python objects"):
        load_npz(tmp_path / "objects.npz")


@pytest.mark.parametrize("count", [1, 2, 5, 15, 49, 63, 64, 70])
def test_grids_take_any_test_split(count):
    test = torch.arange(count).view(count, 1, 1, 1).float()
    a, b = interpolation_ends(test)
    assert a.shape == b.shape == (8, 1, 1, 1)
    if count >= 64:
        assert a[0].item() == 48 and b[-1].item() == 63  # as before
    if count >= 16:
        assert len(set(torch.cat([a, b]).flatten().tolist())) == 16  # 16 different images
    rows = grid_rows(test)
    assert len(rows) == min(count, 48) if count >= 12 else len(rows) == 12


# the suite makes RuntimeWarnings errors; these two are what the run is to say (once each)
@pytest.mark.filterwarnings("default:a Fréchet distance needs:RuntimeWarning")
@pytest.mark.filterwarnings("default:precision and recall need:RuntimeWarning")
def test_training_and_evaluation_on_a_test_split_of_one_image(tmp_path, capsys):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x_train=rng.random((40, 28, 28)), x_test=rng.random((1, 28, 28)))
    out = tmp_path / "one"
    args = ["--batch-size", "8", "--max-steps", "1", "--precision", "fp32", "--no-progress", "--out", str(out)]
    assert main(["train", "--data", str(tmp_path / "d.npz"), *args]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    # the undefined figures are named, each once
    assert err.count("warning: a Fréchet distance needs 2 points or more in each set, got 1 and 1: NaN") == 1
    assert err.count("warning: precision and recall need more than k = 3 points") == 1
    record = read_jsonl(out / "metrics.jsonl")[-1]
    # undefined on one test image: written as JSON null (strict JSON), not as a bare NaN
    assert record["test_mmd"] is None and record["precision"] is None and record["test_recon_mse"] > 0
    model, cfg = wae.load_model(out)
    with pytest.warns(RuntimeWarning):
        metrics = evaluate_run(model, load_npz(tmp_path / "d.npz"), "01", samples=8)
    assert np.isnan(metrics["fd_reconstructions"]) and np.isnan(metrics["fd_samples"]) and metrics["sharpness_data"] > 0


def test_precision_recall_needs_more_points_than_k():
    x = torch.randn(3, 4)
    with pytest.warns(RuntimeWarning, match="got 3 real and 50 generated"):
        assert all(np.isnan(v) for v in precision_recall(x, torch.randn(50, 4)).values())
    assert all(np.isfinite(v) for v in precision_recall(torch.randn(4, 4), torch.randn(4, 4)).values())


def test_hand_edited_metrics_lines_are_skipped_and_counted(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(
        b'{"kind": "train", "step": 1}\n42\n[1, 2]\n"text"\n\xff\xfe\n{"kind": "eval", "step": 2}\n{"kind": "tr'
    )
    with pytest.warns(UserWarning, match="skipped 4 line"):
        records = read_jsonl(path)
    assert records == [{"kind": "train", "step": 1}, {"kind": "eval", "step": 2}]


@pytest.mark.parametrize(
    "content, skipped",
    [  # a last line that is no record's start is no partial write of a killed run: it was read as no records
        (b"hello", 1),
        (b"hello\n", 1),
        (b'{"kind": "train", "step": 1}\nnot json', 1),
        (b"42", 1),
        (b"\xff\xfe", 1),
        (b'{"kind": "tr', 0),  # a killed run's partial last line: skipped without a word
        (b'  {"kind": "train", "st', 1),  # no record of training's starts so
        (b"{garbage\n", 1),  # a last line with its line break is no partial write
        (b'{"kind": "eval", "step": 1' + b"0" * 400 + b"}\n", 1),  # a number no reader takes
        (b'{"kind": "ev\xffal", "step": 1}\n', 1),  # bytes that are not UTF-8 inside a string
        (b'{"kind": "train", "step": 1}\r{"kind": "train", "step": 2}\r', 1),  # lone CRs end no line
        (b"", 0),  # a run that has written no record yet
        (b"\n\n", 0),
    ],
)
def test_a_last_line_that_is_no_record_is_counted_not_taken_for_a_cut_one(tmp_path, content, skipped):
    import warnings

    path = tmp_path / "metrics.jsonl"
    path.write_bytes(content)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        records = read_jsonl(path)
    assert records == ([{"kind": "train", "step": 1}] if content.startswith(b'{"kind": "train", "step": 1}\n') else [])
    said = [str(w.message) for w in caught]
    assert said == ([f"skipped {skipped} line(s) of {path} that are not JSON objects"] if skipped else []), said


def test_a_record_holding_a_line_separator_inside_a_string_is_one_record(tmp_path):
    # splitlines() split it at U+2028 or U+0085 into two lines that are no JSON, warned about as
    # such, while a resume's clean-up (which splits at b"\n" alone) read it whole
    import warnings

    path = tmp_path / "metrics.jsonl"
    records = [{"kind": "note", "step": 1, "text": "a\u2028b\x85c\rd"}, {"kind": "eval", "step": 2}]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_jsonl(path) == records


def test_report_and_compare_do_not_block_on_fifos_named_like_run_files(run, tmp_path, capsys):
    import os
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "metrics.jsonl").unlink()
    for name in ("metrics.jsonl", "metrics.json", "metrics-gmm.json"):
        os.mkfifo(copy / name)  # reading any of them would wait for a writer for ever
    assert main(["report", str(copy), "--out", str(tmp_path / "r.html")]) == 0
    assert main(["compare", str(copy), "--out", str(tmp_path / "cmp")]) == 0
    assert "metrics-gmm.json is not a JSON object" in capsys.readouterr().err


def test_hand_edited_records_with_wrong_types_are_skipped_by_the_report(run, tmp_path, capsys):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    with open(copy / "metrics.jsonl", "a") as f:
        f.write('{"kind": "train", "step": "five", "total": 1}\n{"kind": "eval", "step": 9}\n[1]\n')
    assert main(["report", str(copy)]) == 0
    err = capsys.readouterr().err
    assert "skipped 1 line(s)" in err and "skipped 2 record(s)" in err and err.count("\n") == 2


def test_numpy_numbers_are_taken_as_python_numbers():
    from wae.config import override

    cfg = override(preset(), latent_dim=np.int64(4), lam=np.float32(2.0))
    assert type(cfg.model.latent_dim) is int and type(cfg.loss.lam) is float
    json.dumps(cfg.to_dict())  # config.json can be written
    with pytest.raises(UserError, match="latent_dim must be int"):
        override(preset(), latent_dim=np.float64(2.5))


def test_no_handler_catches_a_user_error_as_a_generic_value_error_first():
    """UserError is a ValueError: a ``try`` whose ``except (..., ValueError)`` comes before its
    ``except UserError`` reports validation's own words as "damaged (UserError)" (export's
    config.json read did until session 41). Every such ``try`` in the package is looked at."""
    import ast
    from pathlib import Path

    def names(handler: ast.ExceptHandler) -> set[str]:
        kinds = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
        return {k.id if isinstance(k, ast.Name) else getattr(k, "attr", "") for k in kinds if k is not None}

    wrong, seen = [], 0
    for path in sorted(Path(wae.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Try):
                caught: set[str] = set()
                for handler in node.handlers:
                    kinds = names(handler) if handler.type is not None else {"BaseException"}
                    if "UserError" in kinds:
                        seen += 1
                        if caught & {"ValueError", "Exception", "BaseException"}:
                            wrong.append(f"{path.name}:{handler.lineno}")
                    caught |= kinds
    assert seen > 10 and not wrong, wrong


def test_failure_reason_says_why_in_words_for_each_kind_of_failure():
    import json
    import pickle
    import zipfile

    from wae.config import failure_reason

    assert failure_reason(FileNotFoundError(2, "No such file or directory")) == "No such file or directory"
    assert failure_reason(UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")) == "not UTF-8 text"
    with pytest.raises(json.JSONDecodeError) as parsed:
        json.loads("{")
    assert failure_reason(parsed.value) == (
        "not valid JSON: Expecting property name enclosed in double quotes at line 1 column 2"
    )
    assert failure_reason(zipfile.BadZipFile("File is not a zip file")).startswith("not a zip archive")
    assert failure_reason(EOFError()) == "empty, or cut short"
    # never the library's advice to load the objects (weights_only=False, allow_pickle=True)
    refused = pickle.UnpicklingError("Weights only load failed. ... weights_only=False ...")
    assert failure_reason(refused).startswith("not a file of arrays") and "weights_only" not in failure_reason(refused)
    assert failure_reason(KeyError("means")) == "no 'means' entry"
    assert failure_reason(ValueError("EOF: reading magic string, expected 8 bytes got 0")) == "empty, or cut short"
    assert failure_reason(ValueError("the magic string is not correct; expected ...")).startswith("not a .npy file")
    long = failure_reason(RuntimeError("Error(s) in loading state_dict:\n\tsize mismatch for w: " + "x" * 500))
    assert long.startswith("RuntimeError: Error(s) in loading state_dict: size mismatch for w:") and len(long) == 160
    assert failure_reason(ValueError()) == "ValueError"


HUGE = 10**400


def test_counts_of_the_public_functions_are_whole_numbers_in_range_or_one_line():
    # session 58's hostile pass: decode_prior(n=10**400) and kernel_distance(subsets=10**400)
    # ran for ever; a mixture's sample(2.0) or sample(0), fit_gmm(components=True) and
    # kernel_distance(seed=1.5) were tracebacks of torch's or scikit-learn's; precision_recall
    # refused numpy's integers as "not a whole number"
    from fractions import Fraction

    from wae.evaluate import decode_prior, random_line_ends
    from wae.fid import kernel_distance
    from wae.samplers import fit_gmm

    model = wae.AutoEncoder(preset("mnist-fast").model, 1, 28).eval()
    calls = {
        "n": lambda v: decode_prior(model, v, "01", 0),
        "chunk": lambda v: decode_prior(model, 4, "01", 0, chunk=v),
        "seed": lambda v: decode_prior(model, 4, "01", v),
        "subsets": lambda v: kernel_distance(torch.randn(8, 3), torch.randn(9, 3), subsets=v, subset_size=4),
        "subset_size": lambda v: kernel_distance(torch.randn(8, 3), torch.randn(9, 3), subset_size=v),
        "pairs": lambda v: random_line_ends(10, v, 0),
        "components": lambda v: fit_gmm(torch.randn(40, 2), components=v),
        "max_iter": lambda v: fit_gmm(torch.randn(40, 2), components=2, max_iter=v),
        "k": lambda v: precision_recall(torch.randn(20, 3), torch.randn(20, 3), k=v),
    }
    for name, call in calls.items():
        for value in (HUGE, 2.5, True, -1, Fraction(3, 1), np.timedelta64(3, "ns"), "3"):
            with pytest.raises(UserError, match=rf"{name} must be a whole number from \d+ to .*; got ") as refused:
                call(value)
            assert "\n" not in str(refused.value)
    gmm = fit_gmm(torch.randn(40, 2), components=np.int64(2), seed=torch.tensor(3))
    for value in (2.0, True, -1, HUGE, float("nan")):
        with pytest.raises(UserError, match="n must be a whole number from 0 to 2"):
            gmm.sample(value)
    assert gmm.sample(0).shape == (0, 2) and gmm.sample(np.int64(3)).shape == (3, 2)
    assert decode_prior(model, 0, "01", 0).shape == (0, 1, 28, 28)
    assert precision_recall(torch.randn(20, 3), torch.randn(20, 3), k=np.int64(3)).keys() == {"precision", "recall"}
    with pytest.raises(UserError, match="interpolation_ends needs a test split of 1 image or more"):
        interpolation_ends(torch.zeros(0, 1, 4, 4), 2)


def test_scales_and_variances_of_the_maths_are_checked_where_float32_would_make_them_0_inf_or_nan():
    # the same pass: sample_prior(var=1e-300) drew all zeros and var=1e77 inf; gaussian_kl,
    # cramer_wold, sinkhorn_divergence and the kernels took 0, 1e-300 or inf and gave NaN or
    # zeros; gaussian_log_density took Fraction(1, 4) to a TypeError; a float16 code's
    # log-density was -inf and an int64 code's mixture density a whole number
    from fractions import Fraction

    from wae.divergences import cramer_wold, gaussian_kl, imq_kernel, rbf_kernel, sinkhorn_divergence
    from wae.fid import gaussian_blur
    from wae.priors import gaussian_log_density, log_density, mixture_log_density, sample_prior
    from wae.samplers import fit_gmm

    z = torch.randn(6, 3)
    calls = {
        "variance": lambda v: sample_prior("gaussian", 4, 3, var=v),
        "variance ": lambda v: gaussian_log_density(z, v),
        "variance  ": lambda v: mixture_log_density(z, v, 2),
        "prior_var": lambda v: gaussian_kl(z, z, v),
        "prior_var ": lambda v: cramer_wold(z, v),
        "epsilon": lambda v: sinkhorn_divergence(z, z.flip(0), v),
        "c": lambda v: imq_kernel(torch.ones(2, 2), v),
        "bandwidth": lambda v: rbf_kernel(torch.ones(2, 2), v),
        "sigma": lambda v: gaussian_blur(torch.rand(1, 1, 8, 8), v),
    }
    for name, call in calls.items():
        for value in (0.0, 1e-300, 1e300, float("inf"), float("nan"), HUGE, np.longdouble("1e-4000"), True, "1"):
            if name == "epsilon" and value == 1e300:  # any finite epsilon the config takes (old runs hold 1e35)
                continue
            with pytest.raises(ValueError, match=f"{name.strip()} must be a .*number") as refused:
                call(value)
            assert "\n" not in str(refused.value), (name, value)
    with pytest.raises(ValueError, match="separation must be a finite number"):
        sample_prior("mixture", 4, 3, separation=1e-300)
    # the second pass on the mends: a tensor scale keeps its gradient and its broadcasting; c x
    # scale beyond float32 and a blur wider than the images are refused; float32's 1e-12 is the bound
    c = torch.tensor(2.0, requires_grad=True)
    imq_kernel(torch.rand(3, 3), c).sum().backward()
    assert c.grad is not None and float(c.grad) > 0
    assert imq_kernel(torch.rand(6, 6), torch.full((6, 1), 2.0)).shape == (6, 6)
    assert sinkhorn_divergence(z, z.flip(0), torch.tensor(1.0, requires_grad=True)).requires_grad
    assert gaussian_blur(torch.rand(1, 1, 28, 28), torch.tensor(1.0, requires_grad=True)).requires_grad
    assert torch.isfinite(sinkhorn_divergence(z, z.flip(0), 1e35))  # an old run's epsilon still reads
    with pytest.raises(ValueError, match=r"c x each scale must be at most 3.4e\+38 \(float32\)"):
        imq_kernel(torch.ones(2, 2), 1e30, (1e12,))
    with pytest.raises(UserError, match=r"gaussian_blur: sigma 9.5 needs images .* of a side above 29 pixels"):
        gaussian_blur(torch.rand(1, 1, 28, 28), 9.5)
    assert sample_prior("gaussian", 3, 2, var=np.float32(1e-12)).shape == (3, 2)
    # numbers of every type that a float holds in range are taken, and give what 0.25 gives
    for value in (Fraction(1, 4), np.longdouble("0.25"), np.array(0.25), torch.tensor(0.25, dtype=torch.float64)):
        assert torch.equal(gaussian_log_density(z, value), gaussian_log_density(z, 0.25))
        assert torch.allclose(gaussian_kl(z, z, value), gaussian_kl(z, z, 0.25))
        assert torch.equal(mixture_log_density(z, value, 2), mixture_log_density(z, 0.25, 2))
    # log-densities of narrow codes in float32; integer codes' are refused or in float32
    half = z.half()
    assert log_density("gaussian", half * 300).dtype == torch.float32
    assert torch.isfinite(log_density("mixture", half * 300, components=2)).all()
    gmm = fit_gmm(torch.randn(40, 3), components=2)
    assert torch.allclose(gmm.log_density(torch.tensor([[1, 2, 3]])), gmm.log_density(torch.tensor([[1.0, 2.0, 3.0]])))
    assert gmm.log_density(torch.tensor([[1, 2, 3]])).dtype == torch.float32
    with pytest.raises(ValueError, match="floating-point"):
        log_density("gaussian", torch.tensor([[1, 2]]))
    # float64 samples whose squared distances overflow float32 (NaN before), and KID's features
    from wae.divergences import mmd_imq, mmd_rbf
    from wae.fid import polynomial_mmd

    far = torch.randn(8, 2, dtype=torch.float64) * 1e20
    for mmd in (mmd_imq, mmd_rbf):
        with pytest.raises(ValueError, match=r"codes must be finite and within ±6.36e\+18 \(their squared distances"):
            mmd(far, far.flip(0) / 1e20)
    assert torch.isfinite(mmd_imq(far / 1e20, far.flip(0) / 1e20))
    with pytest.raises(UserError, match=r"polynomial_mmd takes two 2-D tensors of features \(m, d\); got ndarray"):
        polynomial_mmd(np.zeros((4, 3)), torch.zeros(4, 3))
    with pytest.raises(UserError, match="the features hold NaN"):
        polynomial_mmd(torch.full((4, 3), float("nan")), torch.zeros(4, 3))


def test_a_python_callers_table_and_toy_numbers_are_checked_before_numpy_or_torch_sees_them():
    # the same pass: fit_table(held_out=nan) was numpy's "cannot convert float NaN to integer",
    # held_out=1.0 a table of 0 training rows; a longdouble column below float64's range became
    # zeros, then dropped as constant; run_toy(seed=2**64) reached torch's overflow
    from wae.tables import from_array
    from wae.toy import ToyConfig, checked_toy_config

    rows = np.random.default_rng(0).normal(size=(40, 3))
    for held_out in (float("nan"), float("inf"), 1.0, 2.0, 0.0, HUGE, "0.2"):
        with pytest.raises(UserError, match="held_out must be a number > 0 and < 1; got "):
            from_array(rows, held_out=held_out)
    tiny = rows.astype(np.longdouble)
    tiny[:, 1] *= np.longdouble("1e-4000")
    with pytest.raises(UserError, match=r"rows holds a value that float64 cannot hold \(row 0, column 1"):
        from_array(tiny)
    for name, value in (("seed", 2**64), ("threads", 2**40), ("steps", HUGE), ("width", HUGE)):
        with pytest.raises(UserError, match=rf"^{name} must be a whole number from \d+ to "):
            checked_toy_config(ToyConfig(**{name: value}))
    # a 0-d array of numpy's longdouble is the number it holds, as the scalar is
    assert override(preset("mnist-fast"), lam=np.array(np.longdouble("0.5"))).loss.lam == 0.5
    # a config dict given from Python takes 0-d tensors and arrays as override does (it said
    # "must be float; got 0.5" of a tensor holding 0.5); a tensor of one element is no number
    stored = preset("mnist-fast").to_dict()
    stored["loss"]["lam"], stored["train"]["epochs"] = torch.tensor(0.5), np.array(3)
    taken = Config.from_dict(stored)
    assert (taken.loss.lam, taken.train.epochs) == (0.5, 3) and type(taken.train.epochs) is int
    stored["loss"]["lam"] = torch.tensor([0.5])
    with pytest.raises(UserError, match=r"loss.lam must be float; got tensor\(\[0.5000\]\)"):
        Config.from_dict(stored)
