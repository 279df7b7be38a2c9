"""Experiment trackers: the training loop's scalars, grids and config, also sent to TensorBoard,
Weights & Biases or MLflow (``wae train --log NAME``, repeatable; ``train.log`` in the config).

Each tracker writes into the run folder and needs no network: TensorBoard event files in
``RUN/tensorboard/`` (``torch.utils.tensorboard``; extra ``[tensorboard]``), a W&B run in
offline mode in ``RUN/wandb/`` (``wandb sync RUN/wandb/offline-run-*`` uploads it later; extra
``[wandb]``), an MLflow run in a local file store, ``RUN/mlruns/`` (``mlflow ui
--backend-store-uri RUN/mlruns``; extra ``[mlflow]``). What each receives: every line of
metrics.jsonl as scalars ``train/KEY`` and every per-epoch evaluation as ``eval/KEY``, at their
step; the epoch's sample, reconstruction and interpolation grids as images; the config as
hyper-parameters (flattened to ``section.field``). The loop talks to them through
:class:`Trackers` alone; under torchrun rank 0 alone opens them (the others get none).
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import os
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .checkpoint import hold_folder, named_after
from .config import Config, UserError


class Tracker(Protocol):
    """What the training loop sends a tracker."""

    def scalars(self, values: dict[str, float], step: int) -> None: ...

    def image(self, name: str, png: Path, step: int) -> None: ...

    def close(self) -> None: ...


def flat_config(cfg: Config) -> dict[str, Any]:
    """The config as {"section.field": value}, values int, float, bool or str (a tuple or None
    written as text), as trackers take hyper-parameters."""
    flat = {}
    for section, fields in cfg.to_dict().items():
        if not isinstance(fields, dict):
            flat[section] = str(fields)
            continue
        for name, value in fields.items():
            plain = isinstance(value, int | float | bool | str)
            flat[f"{section}.{name}"] = value if plain else str(value)
    return flat


def _rgb(png: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(png) as image:
        return np.asarray(image.convert("RGB"))


def _missing(name: str) -> UserError:
    return UserError(f"--log {name} needs its package: pip install 'wae[{name}]'")


def _quiet_writer_threads() -> None:
    """TensorBoard's writer thread keeps the error of a write for the next write to raise (which
    :meth:`TensorBoard.said` names in one line), then raises it again in the thread, which Python
    prints as a traceback of many lines: that second telling is not printed (other threads'
    errors are, by the hook that was there)."""
    previous = threading.excepthook
    if getattr(previous, "wae_quiet", False):
        return

    def hook(args: Any) -> None:
        if type(args.thread).__name__ != "_AsyncWriterThread":
            previous(args)

    hook.wae_quiet = True  # type: ignore[attr-defined]
    threading.excepthook = hook


class TensorBoard:
    """Event files in ``RUN/tensorboard/``: scalars, images (HWC uint8) and the hparams plugin's
    record of the config."""

    def __init__(self, run_dir: Path, cfg: Config) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
            from torch.utils.tensorboard.summary import hparams
        except ImportError:
            raise _missing("tensorboard") from None
        folder = run_dir / FOLDERS["tensorboard"]
        folder.mkdir(exist_ok=True)
        # a tracker's library opens its files by path at each write: through the folder held, it
        # goes on writing into this one when the name is swapped for a link into another run
        # (session 55: tensorboard's events reached the other run before the swap was found)
        self.held, where = hold_folder(folder)
        self.folder, self.where = folder, str(where)
        _quiet_writer_threads()
        try:
            with self.said():
                self.writer = SummaryWriter(log_dir=str(where))
        except BaseException:
            if self.held is not None:
                os.close(self.held)
            raise
        events = self.writer.file_writer
        assert events is not None  # made by SummaryWriter's constructor
        for summary in hparams(flat_config(cfg), {}):  # the experiment, session start and end records
            events.add_summary(summary)

    @contextmanager
    def said(self) -> Iterator[None]:
        """An OSError of the library's writes (its thread's, raised at the next write) named after
        the events file in the run folder, not the descriptor's path it was opened by (bytes, at
        that), nor with no file at all (a full disk's flush)."""
        try:
            yield
        except OSError as err:
            raise named_after(err, self.where, self.folder, f"{self.folder}/events.out.tfevents.*") from None

    def scalars(self, values: dict[str, float], step: int) -> None:
        with self.said():
            for key, value in values.items():
                self.writer.add_scalar(key, value, step)

    def image(self, name: str, png: Path, step: int) -> None:
        with self.said():
            self.writer.add_image(name, _rgb(png), step, dataformats="HWC")

    def close(self) -> None:
        try:
            with self.said():
                self.writer.close()
        finally:
            if self.held is not None:
                os.close(self.held)


def _stable_id(run_dir: Path) -> str:
    """A W&B run id from the run folder's absolute path: a resumed run continues the same W&B run."""
    return "wae-" + hashlib.sha256(str(run_dir.resolve()).encode()).hexdigest()[:12]


class WandB:
    """A W&B run in offline mode (nothing leaves the machine) in ``RUN/wandb/``."""

    def __init__(self, run_dir: Path, cfg: Config) -> None:
        try:
            import wandb
        except ImportError:
            raise _missing("wandb") from None
        self.wandb = wandb
        settings = wandb.Settings(console="off", silent=True, x_disable_stats=True, x_disable_meta=True)
        self.run = wandb.init(
            project="wae",
            dir=str(run_dir),
            name=run_dir.name,
            id=_stable_id(run_dir),
            resume="allow",
            mode="offline",
            config=cfg.to_dict(),
            settings=settings,
        )

    def scalars(self, values: dict[str, float], step: int) -> None:
        self.run.log(values, step=step)

    def image(self, name: str, png: Path, step: int) -> None:
        self.run.log({name: self.wandb.Image(str(png))}, step=step)

    def close(self) -> None:
        self.run.finish()


class MLflow:
    """An MLflow run in the local file store ``RUN/mlruns/`` (experiment "wae"): params, metrics
    and the grids as artifacts under ``grids/``. MLflow 3 keeps that store in maintenance mode and
    asks for ``MLFLOW_ALLOW_FILE_STORE=true``, which this sets for the process unless it is set."""

    def __init__(self, run_dir: Path, cfg: Config) -> None:
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        try:
            from mlflow.entities import Metric, Param
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise _missing("mlflow") from None
        self.metric = Metric
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the file store's deprecation notes
            self.client = MlflowClient(tracking_uri=(run_dir / FOLDERS["mlflow"]).resolve().as_uri())
            experiment = self.client.get_experiment_by_name("wae")
            experiment_id = experiment.experiment_id if experiment else self.client.create_experiment("wae")
        self.run_id = self.client.create_run(experiment_id, run_name=run_dir.name).info.run_id
        params = [Param(k, str(v)) for k, v in flat_config(cfg).items()]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 params a batch
            self.client.log_batch(self.run_id, params=params[i : i + 100])

    def scalars(self, values: dict[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        metrics = [self.metric(k, v, now, step) for k, v in values.items()]
        for i in range(0, len(metrics), 1000):  # at most 1000 metrics a batch
            self.client.log_batch(self.run_id, metrics=metrics[i : i + 1000])

    def image(self, name: str, png: Path, step: int) -> None:
        self.client.log_artifact(self.run_id, str(png), artifact_path="grids")

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


OPENERS: dict[str, type[TensorBoard] | type[WandB] | type[MLflow]] = {
    "tensorboard": TensorBoard,
    "wandb": WandB,
    "mlflow": MLflow,
}


def names_of(log: str) -> list[str]:
    """The trackers a ``train.log`` value names ("tensorboard,mlflow"), in order, without repeats."""
    return list(dict.fromkeys(name.strip() for name in log.split(",") if name.strip()))


class Trackers:
    """The trackers of one training session; with none, every method does nothing."""

    def __init__(self, trackers: list[Tracker] | None = None) -> None:
        self.trackers = trackers or []

    def scalars(self, prefix: str, record: dict[str, Any], step: int) -> None:
        """The numbers of a metrics.jsonl record as ``prefix/KEY`` (non-finite ones left out:
        not every tracker takes NaN)."""
        if not self.trackers:
            return
        values = {
            f"{prefix}/{k}": float(v)
            for k, v in record.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and k != "step"
        }
        for tracker in self.trackers:
            tracker.scalars(values, step)

    def images(self, grids: dict[str, Path], step: int) -> None:
        """PNG grids as images named by the keys of ``grids``."""
        for tracker in self.trackers:
            for name, png in grids.items():
                tracker.image(name, png, step)


# the module each tracker imports, to say what is missing before anything starts
PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}
# the folder each tracker writes into the run folder (wandb: its own wandb/ under dir=RUN)
FOLDERS = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlruns"}


def check_installed(cfg: Config) -> None:
    """:class:`UserError` naming the pip command when a tracker ``cfg.train.log`` names is not
    installed."""
    for name in names_of(cfg.train.log):
        if importlib.util.find_spec(PACKAGES[name]) is None:
            raise _missing(name)


@contextmanager
def open_trackers(cfg: Config, run_dir: Path | None) -> Iterator[Trackers]:
    """The trackers ``cfg.train.log`` names, writing into ``run_dir``, closed on the way out
    (after an error or Ctrl-C too); none when ``run_dir`` is None (a rank other than 0). A
    missing package is a one-line :class:`UserError` naming the pip command, raised before any
    tracker opens."""
    names = names_of(cfg.train.log)
    if run_dir is None or not names:
        yield Trackers()
        return
    check_installed(cfg)
    opened: list[Tracker] = []
    try:
        for name in names:
            opened.append(OPENERS[name](run_dir, cfg))
        yield Trackers(opened)
    finally:
        for tracker in opened:
            tracker.close()
