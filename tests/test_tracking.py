"""Experiment trackers: what the loop sends them (a recording tracker), and, where the packages
are installed, what TensorBoard, W&B (offline) and MLflow (local file store) wrote, read back."""

from __future__ import annotations

import importlib.util
import json
import os
import struct
from pathlib import Path

import pytest

from wae import tracking
from wae.cli import main
from wae.config import TRACKERS, UserError

from .conftest import tiny_config

TINY = ["--dataset", "synthetic", "--arch", "fast", "--batch-size", "32", "--precision", "fp32", "--no-progress"]
# tiny_config: 4 steps an epoch; 10 steps logged every 2, evaluations after epochs 1 and 2 and at the end
TRAIN_STEPS, EVAL_STEPS = [2, 4, 6, 8, 10], [4, 8, 10]


def _train(run: Path, log: str) -> None:
    import wae

    wae.fit(tiny_config(max_steps=10, log_every=2, log=log), run)


def _records(run: Path, kind: str) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r.get("kind") == kind]


class Recorder:
    """A tracker that keeps what it is sent."""

    opened: list[Recorder] = []

    def __init__(self, run_dir: Path, cfg) -> None:
        self.run_dir, self.cfg = run_dir, cfg
        self.scalar_calls: list[tuple[dict, int]] = []
        self.image_calls: list[tuple[str, Path, int]] = []
        self.closed = False
        Recorder.opened.append(self)

    def scalars(self, values, step):
        self.scalar_calls.append((values, step))

    def image(self, name, png, step):
        assert png.is_file()
        self.image_calls.append((name, png, step))

    def close(self):
        self.closed = True


def test_the_loop_sends_every_record_grid_and_the_config(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(tracking.OPENERS, "tensorboard", Recorder)
    monkeypatch.setitem(tracking.PACKAGES, "tensorboard", "json")  # "installed"
    Recorder.opened = []
    run = tmp_path / "run"
    _train(run, "tensorboard")
    (tracker,) = Recorder.opened
    assert tracker.closed and tracker.run_dir == run and tracker.cfg.train.log == "tensorboard"
    train, evals = _records(run, "train"), _records(run, "eval")
    sent_train = [(v, s) for v, s in tracker.scalar_calls if "train/total" in v]
    sent_eval = [(v, s) for v, s in tracker.scalar_calls if "eval/test_recon_mse" in v]
    assert [s for _, s in sent_train] == [r["step"] for r in train] == TRAIN_STEPS
    assert all(
        v["train/total"] == r["total"] and v["train/lr"] == r["lr"] for (v, _), r in zip(sent_train, train, strict=True)
    )
    assert [s for _, s in sent_eval] == [r["step"] for r in evals] == EVAL_STEPS
    assert sent_eval[-1][0]["eval/test_mmd"] == evals[-1]["test_mmd"]
    assert [(name, step) for name, _, step in tracker.image_calls] == [
        (name, step) for step in EVAL_STEPS for name in ("samples", "reconstructions", "interpolations")
    ]
    assert json.loads((run / "config.json").read_text())["train"]["log"] == "tensorboard"


def test_trackers_leave_out_non_numbers_and_rank_other_than_0_opens_none():
    from wae.config import override, preset

    cfg = override(preset(), log="tensorboard")
    with tracking.open_trackers(cfg, None) as trackers:  # what a rank other than 0 passes
        assert trackers.trackers == []
    sent = []

    class Sink:
        def scalars(self, values, step):
            sent.append((values, step))

    tracking.Trackers([Sink()]).scalars("eval", {"kind": "eval", "step": 3, "a": 1, "b": float("nan"), "c": True}, 3)
    assert sent == [({"eval/a": 1.0}, 3)]
    flat = tracking.flat_config(cfg)
    assert flat["train.lr"] == cfg.train.lr and flat["train.lr_milestones"] == str(cfg.train.lr_milestones)
    assert tracking.names_of("mlflow, tensorboard,mlflow") == ["mlflow", "tensorboard"]


def test_a_missing_tracker_or_an_unknown_one_is_one_line_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(tracking.PACKAGES, "wandb", "no_such_module_for_wae_tests")
    assert main(["train", *TINY, "--max-steps", "2", "--log", "wandb", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "pip install 'wae[wandb]'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()
    # comma-separated names, as the help says: the missing one is still named
    assert main(["train", *TINY, "--max-steps", "2", "--log", "tensorboard,wandb", "--out", str(tmp_path / "r")]) == 2
    assert "pip install 'wae[wandb]'" in capsys.readouterr().err and not (tmp_path / "r").exists()
    for bad in ("neptune", "tensorboard,neptune", ","):
        with pytest.raises(SystemExit) as stop:  # not a tracker
            main(["train", *TINY, "--log", bad])
        assert stop.value.code == 2
        assert "invalid choice" in capsys.readouterr().err
    settings = tmp_path / "s.toml"
    settings.write_text('[train]\nlog = "tensorboard,neptune"\n')
    assert main(["train", *TINY, "--config", str(settings), "--out", str(tmp_path / "r2")]) == 2
    assert f'{settings}: train.log: unknown tracker "neptune"' in capsys.readouterr().err  # as the file writes it
    import wae

    with pytest.raises(UserError, match="give one"):  # no run folder to write into
        wae.fit_tensor(__import__("torch").rand(64, 1, 16, 16), log="tensorboard", max_steps=1)


# ----------------------------------------------------------------------------- the real trackers

INSTALLED = [name for name in TRACKERS if importlib.util.find_spec(tracking.PACKAGES[name]) is not None]


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    if not INSTALLED:
        pytest.skip("no tracker installed (pip install 'wae[tensorboard]' / 'wae[wandb]' / 'wae[mlflow]')")
    run = tmp_path_factory.mktemp("tracked") / "run"
    _train(run, ",".join(INSTALLED))
    return run


def _needs(name):
    return pytest.mark.skipif(name not in INSTALLED, reason=f"{name} not installed (pip install 'wae[{name}]')")


@_needs("tensorboard")
def test_tensorboard_event_files_read_back(tracked):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    events = EventAccumulator(str(tracked / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    train, evals = _records(tracked, "train"), _records(tracked, "eval")
    total = events.Scalars("train/total")
    assert [e.step for e in total] == [r["step"] for r in train]
    assert [e.value for e in total] == pytest.approx([r["total"] for r in train], rel=1e-6)
    assert [e.value for e in events.Scalars("eval/test_recon_mse")] == pytest.approx(
        [r["test_recon_mse"] for r in evals], rel=1e-6
    )
    samples = events.Images("samples")
    assert [e.step for e in samples] == EVAL_STEPS and samples[0].width > 0
    content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    start = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    assert start.hparams["train.batch_size"].number_value == 32
    assert start.hparams["data.dataset"].string_value == "synthetic"


def _wandb_records(path: Path) -> list:
    """The records of a W&B offline run file: LevelDB-log blocks of 32 KiB (7-byte record headers
    crc32, length, type: 1 full, 2 first, 3 middle, 4 last) after a 7-byte file header."""
    from wandb.proto import wandb_internal_pb2

    data, block, pos, out, pending = path.read_bytes(), 32768, 7, [], b""
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        left = block - pos % block
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7]) if left >= 7 else (0, 0, 0)
        if left < 7 or (kind == 0 and length == 0):
            pos += left
            continue
        body, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        pending = body if kind in (1, 2) else pending + body
        if kind in (1, 4):
            out.append(wandb_internal_pb2.Record.FromString(pending))
    return out


@_needs("wandb")
def test_wandb_offline_run_reads_back(tracked):
    (path,) = (tracked / "wandb").glob("offline-run-*/run-*.wandb")
    records = _wandb_records(path)
    history = []
    for record in records:
        if record.WhichOneof("record_type") == "history":
            history.append(
                {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
            )
    train = _records(tracked, "train")
    logged = [(h["_step"], h["train/total"]) for h in history if "train/total" in h]
    assert logged == [(r["step"], pytest.approx(r["total"], rel=1e-9)) for r in train]
    assert sum("eval/test_recon_mse" in h for h in history) == len(EVAL_STEPS)
    assert sum("samples/path" in h for h in history) == len(EVAL_STEPS)
    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    config = {item.key: json.loads(item.value_json) for item in run.config.update}
    assert config["train"]["batch_size"] == 32 and run.run_id == tracking._stable_id(tracked)


@_needs("mlflow")
def test_mlflow_file_store_reads_back(tracked, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=(tracked / "mlruns").resolve().as_uri())
    (run,) = client.search_runs([client.get_experiment_by_name("wae").experiment_id])
    assert run.info.run_name == "run" and run.info.status == "FINISHED"
    assert run.data.params["train.batch_size"] == "32" and run.data.params["train.log"] == ",".join(INSTALLED)
    history = client.get_metric_history(run.info.run_id, "train/total")
    train = _records(tracked, "train")
    assert [(m.step, m.value) for m in history] == [(r["step"], pytest.approx(r["total"])) for r in train]
    assert len(client.get_metric_history(run.info.run_id, "eval/test_recon_mse")) == len(EVAL_STEPS)
    grids = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "grids")}
    assert {"samples-epoch001.png", "interpolations-epoch002.png"} <= grids and len(grids) == 6  # the end: epoch 2


def test_tensorboard_writes_into_its_folder_when_the_name_is_swapped_for_a_link(tmp_path):
    # hostile pass, session 55: tensorboard's library opens its events file by path at each
    # write, so a tensorboard/ swapped for a link into another run received this run's events
    pytest.importorskip("tensorboard")
    from wae.config import Config
    from wae.tracking import TensorBoard

    run, other = tmp_path / "run", tmp_path / "other" / "tensorboard"
    run.mkdir()
    other.mkdir(parents=True)
    tracker = TensorBoard(run, Config())
    tracker.scalars({"loss": 1.0}, 1)
    os.rename(run / "tensorboard", run / "moved")
    (run / "tensorboard").symlink_to(other)
    tracker.scalars({"loss": 2.0}, 2)
    tracker.close()
    assert os.listdir(other) == [] and len(os.listdir(run / "moved")) == 1


def test_a_failed_tensorboard_write_is_named_after_the_run_folder_in_one_telling(tmp_path, capsys):
    # hostile pass, session 56: a read-only tensorboard/ ended in a traceback of the library's
    # writer thread and "error: b'/proc/self/fd/5/events...': Read-only file system"; a full disk
    # in "No space left on device", naming no file
    pytest.importorskip("tensorboard")
    import errno
    import threading

    from wae.config import Config
    from wae.tracking import TensorBoard

    run = tmp_path / "run"
    run.mkdir()
    tracker = TensorBoard(run, Config())
    events = os.listdir(run / "tensorboard")[0]
    for filename, shown in (
        (os.fsencode(f"{tracker.where}/{events}"), f"{run}/tensorboard/{events}"),
        (None, f"{run}/tensorboard/events.out.tfevents.*"),
    ):

        def failing(*args: object, filename: object = filename, **kwargs: object) -> None:
            raise OSError(errno.EROFS, "Read-only file system", filename)

        tracker.writer.add_scalar = failing  # type: ignore[method-assign]
        with pytest.raises(OSError) as failed:
            tracker.scalars({"loss": 1.0}, 1)
        assert failed.value.filename == shown and "/proc/self/fd" not in str(failed.value)
    tracker.close()

    class _AsyncWriterThread(threading.Thread):  # the library's writer thread, by its class's name
        def run(self) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

    thread = _AsyncWriterThread()
    thread.start()
    thread.join()
    assert "Traceback" not in capsys.readouterr().err  # told once, by the next write
