"""The Python API's training entry points for in-memory data: :func:`fit_tensor` for images,
:func:`fit_table` for vector data (both re-exported by :mod:`wae`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from .config import Config, UserError, check_used, for_objective, preset, set_fields
from .data import from_tensor
from .train import Run, fit


def _config(config: Config | str, objective: str | None) -> Config:
    """The starting config of the Python API: a preset by name, or a :class:`Config` given (for
    ``objective`` when one is given)."""
    if isinstance(config, str):
        return preset(config, objective if objective is not None else "mmd")  # "" is refused, not mmd
    if not isinstance(config, Config):
        raise UserError(f"config must be a wae.Config or a preset name; got {type(config).__name__}")
    return for_objective(config, objective) if objective is not None else config


def _own(settings: dict[str, Any], function: str, names: set[str], objective: str | None) -> None:
    """UserError for a setting that ``function`` sets itself (``names``, in the data section),
    and for an objective given both as the argument and as ``loss__objective``."""
    for key in settings:
        name = key.removeprefix("data__")
        if name in names:
            raise UserError(f"{function} sets data.{name} itself (from the data it is given); leave out {key}=")
    if objective is not None and "loss__objective" in settings:
        raise UserError("the objective is given twice, as objective= and loss__objective=")


def _overridden(cfg: Config, settings: dict[str, Any], **own: Any) -> Config:
    """``cfg`` with the caller's ``settings`` and the function's ``own``; UserError for a setting
    given that the run would not use (a mixture's K with the Gaussian prior: :func:`unused_settings`),
    named as the caller wrote it."""
    result = set_fields(cfg, **own, **settings)
    check_used(result, settings, arguments=True)  # fit_tensor's data settings are its own: no advice
    return result


def fit_tensor(
    images: Tensor | np.ndarray,
    config: Config | str = "mnist-fast",
    out: str | Path | None = None,
    test_images: Tensor | np.ndarray | None = None,
    objective: str | None = None,
    labels: Tensor | np.ndarray | None = None,
    test_labels: Tensor | np.ndarray | None = None,
    **settings: Any,
) -> Run:
    """Train a WAE on a tensor or numpy array of images ((n, h, w), (n, h, w, c) or
    (n, c, h, w); uint8, or floats of any precision in [0, 1]) and return the :class:`Run`
    (``run.model`` is the trained :class:`AutoEncoder`).

    With ``labels``, one integer class per image (n,) (and ``test_labels`` with
    ``test_images``), it trains a conditional WAE (``condition="labels"``): the classes are the
    distinct label values in sorted order, and ``run.model.decode(z, labels=y)`` takes indices
    y into them (``run.classes`` holds their names).

    ``config`` is a :class:`Config` or a preset name; ``settings`` override its fields by name
    (``epochs=5, lam=10, latent_dim=16``); ``out`` names a run folder to write. Bad input (a
    list, NaN pixels, ``latent_dim=2.5``) raises :class:`UserError`, a ``ValueError``, before
    any work."""
    _own(settings, "fit_tensor", {"dataset", "path"}, objective)
    cfg = _config(config, objective)
    if labels is not None:
        condition = settings.get("condition", settings.get("data__condition", "labels"))
        if isinstance(condition, str) and condition != "labels":  # another type: override refuses it as given
            raise UserError(f"labels are given, so the model is conditional; condition={condition!r} says it is not")
        if "data__condition" not in settings:
            settings.setdefault("condition", "labels")
    cfg = _overridden(cfg, settings, dataset="tensor")
    return fit(cfg, out, data=from_tensor(images, test_images, labels, test_labels))


def fit_table(
    rows: str | Path | Tensor | np.ndarray,
    config: Config | str = "table",
    out: str | Path | None = None,
    test_rows: Tensor | np.ndarray | None = None,
    objective: str | None = None,
    **settings: Any,
) -> Run:
    """Train a WAE on vector data and return the :class:`Run`: ``rows`` is a table file (.csv
    with a header, 2-D .npy, or .npz with x_train / x and optional x_test; recorded in the run,
    so that ``wae sample`` / ``wae evaluate`` read it) or an array or tensor (n, C) of numbers
    (then ``test_rows`` (m, C), else a seeded ``held_out`` fraction, is the test split). Columns
    are standardised on the training rows (``wae.tables.Standardiser``, stored in the
    checkpoint); ``run.model.decode`` returns standardised rows.

    ``config`` is a :class:`Config` or a preset name (default "table": an MLP, identity output,
    squared-L2 cost); ``settings`` override its fields by name (``epochs=50, mlp_width=128``).
    Bad input raises :class:`UserError` before any work."""
    from .tables import from_array

    _own(settings, "fit_table", {"dataset", "path"}, objective)
    cfg = _config(config, objective)
    if isinstance(rows, str | Path):
        if test_rows is not None:
            raise UserError("test_rows goes with an array; a file holds its own test split (x_test) or none")
        return fit(_overridden(cfg, settings, dataset="table", path=str(rows)), out)
    cfg = _overridden(cfg, settings, dataset="table", path=None)
    return fit(cfg, out, data=from_array(rows, test_rows, cfg.data.held_out))
