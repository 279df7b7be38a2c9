"""Export a trained run for sharing and deployment, without pickles.

``wae export RUN --out DIR`` writes a folder that :func:`wae.load_model` and ``wae sample``
accept: ``model.safetensors`` (the weights that generate: the moving average when the run kept
one; the image shape and format in its metadata), ``config.json`` (the run's config, as plain
JSON), ``README.md`` (a model card: data, preset, settings, metrics, how to load) and
``export.json`` (what was exported, and the checks below). It is the layout of a model
repository on a hub (``huggingface_hub.upload_folder`` pushes it as it is). ``--format
torchscript`` and ``--format onnx`` add the decoder alone, codes (n, d_z) -> images (n, c, h,
w) in [0, 1], for deployment: ``decoder.torchscript.pt`` (``torch.jit.trace``) and
``decoder.onnx`` (``torch.onnx.export``, batch size dynamic). Each is read back from its file
and checked against the eager decoder on seeded random codes from the prior; the largest
absolute difference of pixels is recorded (the ONNX file is run in onnxruntime when it is
installed). Loading reads the safetensors file (no code runs) and JSON only.

Needs ``safetensors``; ONNX needs ``onnx``, ``onnxscript`` and (for the check) ``onnxruntime``:
``pip install 'wae[export]'``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from . import __version__
from .checkpoint import CONFIG, has_config, json_text, read_config_json, stored_config, write_atomic, write_config
from .config import (
    Config,
    UserError,
    failure_reason,
    first_few,
    markdown_text,
    noise_words,
    parse_json,
    setting_text,
)
from .data import to_unit_range
from .model import AutoEncoder
from .priors import describe

WEIGHTS = "model.safetensors"
CARD = "README.md"
RECORD = "export.json"
TORCHSCRIPT = "decoder.torchscript.pt"
ONNX = "decoder.onnx"
FORMATS = ("safetensors", "torchscript", "onnx")
FORMAT_VERSION = "1"  # of the safetensors metadata below
CHECK_CODES = 64  # random codes each exported decoder is checked on


def is_export(folder: str | Path) -> bool:
    """Whether ``folder`` is an exported model (it holds ``model.safetensors``). :class:`UserError`
    for a folder that also holds a run's checkpoints: which weights it stands for is not known
    (the export's would be paired with the run's records)."""
    if not (Path(folder) / WEIGHTS).is_file():
        return False
    from .checkpoint import run_checkpoints

    if run_checkpoints(Path(folder)):
        raise UserError(
            f"{folder} holds both a run's checkpoints/ and an export's {WEIGHTS}: move one of them out "
            "(wae export writes into a new folder)"
        )
    return True


def _safetensors() -> Any:
    try:
        import safetensors.torch
    except ImportError:
        raise UserError("exported models need safetensors: pip install 'wae[export]'") from None
    return safetensors


class ImageDecoder(nn.Module):
    """The decoder alone, as deployed: codes (n, d_z) -> images (n, c, h, w) in [0, 1]."""

    def __init__(self, model: AutoEncoder, value_range: str) -> None:
        super().__init__()
        self.model, self.value_range = model, value_range

    def forward(self, z: Tensor) -> Tensor:
        return to_unit_range(self.model.activate(self.model.decoder(z)), self.value_range)


# ----------------------------------------------------------------------------- weights


def save_weights(model: AutoEncoder, cfg: Config, out: Path, about: dict[str, Any]) -> None:
    """``model``'s weights (float32, contiguous) into ``out/model.safetensors`` with its image
    shape and ``cfg`` (as JSON, key ``config``) in the metadata, and ``cfg`` into
    ``out/config.json``: :func:`read_export` checks the file a person can edit against the copy
    inside the weights."""
    st = _safetensors()
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    metadata = {
        "format": f"wae-export-{FORMAT_VERSION}",
        "channels": str(model.channels),
        "size": str(model.size),
        "wae_version": __version__,
        "config": json.dumps(cfg.to_dict(), sort_keys=True),
        # safetensors takes UTF-8 text only: a data name from a path of other bytes is escaped
        **{k: str(v).encode("utf-8", "backslashreplace").decode("utf-8") for k, v in about.items()},
    }
    write_atomic(out / WEIGHTS, st.torch.save(tensors, metadata=metadata))
    write_config(out, cfg)


def _check_openable(path: Path) -> None:
    """:class:`UserError` for a path whose name holds bytes that are not UTF-8: safetensors opens
    files by UTF-8 names only, so such an export could not be loaded (and a sound file was called
    damaged)."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        raise UserError(
            f"{path}: safetensors opens files by UTF-8 names only, and this path has bytes that are not "
            "UTF-8; give (or rename to) a path that is"
        ) from None


def _shape_of(metadata: dict[str, str], path: Path) -> tuple[int, int]:
    if metadata.get("format") != f"wae-export-{FORMAT_VERSION}":
        raise UserError(f"{path} is not a wae export (format {metadata.get('format')!r})")
    try:
        channels, size = int(metadata["channels"]), int(metadata["size"])
    except (KeyError, ValueError):
        raise UserError(f"{path}: metadata channels/size missing or not whole numbers") from None
    return channels, size


def _check_recorded_config(cfg: Config, metadata: dict[str, str], config_path: Path, path: Path) -> None:
    """:class:`UserError` when ``config.json`` differs from the config recorded in the weights'
    metadata: an edited config.json (its prior, say) would change what the export draws while
    its weights and card stay those of the run, and weights copied in from another export would
    be read with this one's settings. The preset (a label) is compared too; the settings a
    resumed run may change (the data path above all: a recipient's data are elsewhere) are not.
    Exports written before session 41 record none and are read as they are."""
    from .runs import config_differences

    if "config" not in metadata:
        return
    source = f"the config in the metadata of {path}"
    try:
        loaded = parse_json(metadata["config"], unique_keys=True)  # wae writes each key once
    except ValueError as err:  # not JSON: its reason (parse_json's words for a number no reader takes)
        raise UserError(f"{source} cannot be read ({failure_reason(err)})") from None
    recorded = stored_config(loaded, source)
    differences = config_differences(cfg, recorded)
    if recorded.preset != cfg.preset:
        differences.insert(0, f"preset {setting_text(recorded.preset)} (config.json: {setting_text(cfg.preset)})")
    if differences:
        shown = first_few(differences, "; ")
        raise UserError(
            f"{config_path} and {path.name} are not of one export ({shown}): "
            f"{config_path.name} was edited or the weights copied in from another; export the run again, or "
            "restore the files"
        )


def load_exported(folder: str | Path) -> tuple[AutoEncoder, Config]:
    """The auto-encoder (eval mode) and config of an exported folder: ``config.json`` checked
    as a stored config, ``model.safetensors`` read without unpickling (image shape from its
    metadata), the weights checked against the config and for finite values. A damaged or
    foreign folder is a one-line :class:`UserError`."""
    model, cfg, _ = read_export(folder)
    return model, cfg


def read_export(folder: str | Path) -> tuple[AutoEncoder, Config, dict[str, str]]:
    """:func:`load_exported` with the metadata of ``model.safetensors`` (strings: format,
    channels, size, wae_version, and the training ``step`` and ``data`` name of the checkpoint
    exported; read them with :func:`exported_step`)."""
    from .checkpoint import image_shape_of
    from .train import _load_weights, _model_for

    st = _safetensors()
    folder = Path(folder)
    path, config_path = folder / WEIGHTS, folder / CONFIG
    if not folder.is_dir():  # was "nope is an export without config.json"
        raise UserError(f"{folder} is not a folder (an export is the folder `wae export RUN --out DIR` writes)")
    if not has_config(folder):
        raise UserError(f"{folder} is an export without {CONFIG}")
    _, cfg = read_config_json(config_path)
    _check_openable(path)
    if not os.path.lexists(path):  # a run folder given: its file is missing, not damaged
        raise UserError(f"{folder} is not an export (no {WEIGHTS}; `wae export RUN --out DIR` makes one)")
    try:
        with st.safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        tensors = st.torch.load_file(str(path))
    except Exception as err:  # safetensors raises its own SafetensorError for a damaged header
        raise UserError(f"{path} is damaged ({failure_reason(err)})") from None
    channels, size = _shape_of(metadata, path)
    _check_recorded_config(cfg, metadata, config_path, path)
    try:
        image_shape_of({"data": {"channels": channels, "size": size}})
        model = _model_for(cfg, channels, size)
        _load_weights(model, {"model": tensors})
    except UserError as err:
        raise UserError(f"{path}: {err}") from None
    return model.eval(), cfg, metadata


def exported_step(metadata: dict[str, str]) -> int | None:
    """The training step an export's metadata records (:func:`save_weights` writes "None" for
    a step that was not known); None for that, or for what is not a whole number of at most
    18 digits (an edited file)."""
    step = metadata.get("step", "")
    return int(step) if isinstance(step, str) and 0 < len(step) <= 18 and step.isascii() and step.isdigit() else None


# ----------------------------------------------------------------------------- deployable decoders


def check_codes(model: AutoEncoder, seed: int = 0, n: int = CHECK_CODES) -> Tensor:
    """``n`` seeded codes from the model's prior, (n, d_z), float32: what exports are checked on."""
    return model.prior_sample(n, torch.Generator().manual_seed(seed)).float()


def export_torchscript(decoder: ImageDecoder, path: Path, codes: Tensor) -> float:
    """Trace ``decoder`` to ``path``; load the file back and return the largest absolute pixel
    difference from the eager decoder on ``codes``."""
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TorchScript is deprecated upstream; the file format is kept
        traced = torch.jit.trace(decoder, codes[:2])
        tmp = path.with_name(path.name + ".tmp")
        torch.jit.save(traced, str(tmp))
        tmp.replace(path)
        loaded = torch.jit.load(str(path))
        return float((loaded(codes) - decoder(codes)).abs().max())


def export_onnx(decoder: ImageDecoder, path: Path, codes: Tensor) -> float | None:
    """``decoder`` as ONNX (torch's exporter, batch size dynamic) to ``path``; with onnxruntime
    installed, the largest absolute pixel difference of the file's outputs from the eager
    decoder on ``codes``, else None."""
    import importlib.util
    import logging

    if importlib.util.find_spec("onnxscript") is None or importlib.util.find_spec("onnx") is None:
        raise UserError("ONNX export needs onnx and onnxscript: pip install 'wae[export]'")
    tmp = path.with_name(path.name + ".tmp")
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                decoder,
                (codes[:2],),
                str(tmp),
                input_names=["code"],
                output_names=["image"],
                dynamic_shapes={"z": {0: torch.export.Dim("batch", min=1)}},
                dynamo=True,
                external_data=False,
                verbose=False,
            )
    finally:
        quiet.setLevel(level)
    tmp.replace(path)
    if importlib.util.find_spec("onnxruntime") is None:
        return None
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (images,) = session.run(None, {"code": codes.numpy()})
    with torch.no_grad():
        return float((torch.from_numpy(images) - decoder(codes)).abs().max())


# ----------------------------------------------------------------------------- the folder


def _card(run: Path, cfg: Config, model: AutoEncoder, record: dict[str, Any], metrics: dict[str, float]) -> str:
    """The model card (README.md) of an export."""
    from .evaluate import MAIN_METRICS, metric_text

    m, loss, train = cfg.model, cfg.loss, cfg.train
    rows = [f"| {label} | {metric_text(metrics, key)} |" for key, label in MAIN_METRICS if key in metrics]
    checks = [
        f"| {name} | `{record['files'][name]}` | "
        + (f"{record['max_abs_diff'][name]:.3g}" if record["max_abs_diff"].get(name) is not None else "not run")
        + f" | {record['seconds'][name]:.2f} |"
        for name in record["formats"]
        if name != "safetensors"
    ]
    prior = describe(model.prior, model.prior_var, model.prior_components, model.prior_separation)
    lines = [
        f"# WAE ({loss.objective}) exported from run {markdown_text(run.name)}",
        "",
        f"A Wasserstein auto-encoder (Tolstikhin et al., ICLR 2018) trained with the `wae` package {__version__}.",
        "",
        f"- data: {markdown_text(record['data'])}, images {model.channels}x{model.size}x{model.size}, "
        f"range {cfg.data.range}",
        f"- preset `{cfg.preset}`, objective `{loss.objective}`, architecture `{m.arch}`, {m.encoder} encoder, "
        f"d_z = {m.latent_dim}, prior {prior}",
        f"- loss: cost {loss.cost} x {loss.cost_scale}, lambda = {loss.lam}"
        + noise_words(loss.input_noise, loss.code_noise),
        f"- training: {record['step'] if record['step'] is not None else 'an unknown number of'} steps "
        f"of batch {train.batch_size}, seed {train.seed}",
        f"- {sum(p.numel() for p in model.parameters()):,} parameters",
        "",
        "## Metrics",
        "",
        f"From {record['metrics_from']}; the wae documentation (docs/evaluation.md) defines each.",
        "",
        "| figure | value |",
        "|---|---|",
        *(rows or ["| (none recorded) | |"]),
        "",
        "## Files",
        "",
        f"- `{WEIGHTS}`: the weights (safetensors; loading runs no code), `{CONFIG}`: the settings",
        "- `export.json`: what was exported, and the checks below",
        "",
        "```python",
        "import wae",
        f'model, config = wae.load_model("{record["out_name"]}")  # AutoEncoder, Config',
        "images = model.sample(16)  # (16, c, h, w)",
        "```",
        "",
        f"or `wae sample {record['out_name']} --n 64 --out samples.png`.",
    ]
    if checks:
        lines += [
            "",
            "Decoders for deployment: codes (n, d_z), float32 -> images (n, c, h, w) in [0, 1]. Checked against the "
            f"eager decoder on {CHECK_CODES} seeded prior codes (largest absolute pixel difference):",
            "",
            "| format | file | max abs diff | export seconds |",
            "|---|---|---|---|",
            *checks,
        ]
    return "\n".join(lines) + "\n"


def export_run(run: str | Path, out: str | Path, formats: tuple[str, ...] = ("safetensors",)) -> dict[str, Any]:
    """Export the run folder ``run`` into the new (or empty) folder ``out``: the safetensors
    weights, config and model card always; a TorchScript and/or ONNX decoder as ``formats``
    asks. Returns the record written to ``out/export.json``: files, max abs differences from
    the eager decoder (None when onnxruntime is missing), seconds per format."""
    from .checkpoint import weights_fingerprint
    from .report import metrics_and_source
    from .runs import given_path
    from .samplers import is_stale, refit_command
    from .train import load_run

    run, out = given_path(run, "run"), given_path(out, "out")
    if isinstance(formats, str):  # "torchscript" read letter by letter: "unknown export format 'c'"
        raise UserError(f"formats must be a tuple of names (({formats!r},)); got the string {formats!r}")
    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise UserError(f"unknown export format {sorted(unknown)[0]!r}; choose from {', '.join(FORMATS)}")
    _check_openable(out / WEIGHTS)  # before anything is written: an export that could not be loaded
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"--out {out} exists and is not an empty folder; give a new one")
    _safetensors()  # before any work
    if is_export(given_path(run, "run")):
        raise UserError(f"{run} is a folder that wae export wrote; export the run folder it came from")
    loaded = load_run(run)
    model, cfg = loaded.model, loaded.config
    if model.classes or cfg.data.dataset == "table":
        what = "conditional runs" if model.classes else "runs on tables"
        raise UserError(f"wae export does not handle {what} yet (their labels or column scaling are not exported)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        weights = weights_fingerprint(model)  # a metrics.json of other weights is not this model's
        # of the checkpoint loaded: a damaged newer one's eval record is not these weights'
        metrics, source = metrics_and_source(run, weights, loaded.step) if (run / "config.json").is_file() else ({}, "")
    record: dict[str, Any] = {
        "run": str(run.resolve()),
        "step": loaded.step,  # None: not known (a crafted checkpoint file given by another name)
        "data": loaded.data_name,
        "formats": ["safetensors", *(f for f in FORMATS[1:] if f in formats)],
        "files": {"safetensors": WEIGHTS},
        "max_abs_diff": {},
        "seconds": {},
        "check_codes": CHECK_CODES,
        "metrics_from": source if metrics else "no evaluation",
        "out_name": out.name,
    }
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        start = time.perf_counter()
        save_weights(model, cfg, out, {"step": record["step"], "data": record["data"]})
        record["seconds"]["safetensors"] = time.perf_counter() - start
        decoder = ImageDecoder(model, cfg.data.range).eval()
        codes = check_codes(model)
        for name, file, export in (("torchscript", TORCHSCRIPT, export_torchscript), ("onnx", ONNX, export_onnx)):
            if name in record["formats"]:
                start = time.perf_counter()
                record["max_abs_diff"][name] = export(decoder, out / file, codes)
                record["files"][name] = file
                record["seconds"][name] = time.perf_counter() - start
        sampler = run / "sampler-gmm.npz"
        if sampler.is_file() and is_stale(sampler, "gmm", model):
            warnings.warn(
                f"{sampler} was fitted to other weights than the checkpoint's; not exported (refit it first: "
                f"{refit_command(run, 'gmm')})",
                stacklevel=2,
            )
        elif sampler.is_file():  # plain arrays: wae sample DIR --sampler gmm works on the export too
            shutil.copyfile(sampler, out / sampler.name)
        write_atomic(out / CARD, _card(run, cfg, model, record, metrics))
        write_atomic(out / RECORD, json_text(record, indent=1) + "\n")
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        else:
            for child in out.iterdir():
                child.unlink() if child.is_file() else shutil.rmtree(child, ignore_errors=True)
        raise
    return record
