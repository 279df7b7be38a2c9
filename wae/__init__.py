"""wae: Wasserstein Auto-Encoders (Tolstikhin et al., ICLR 2018) in PyTorch.

The public API: configs and presets (:mod:`wae.config`), the auto-encoder
(:class:`AutoEncoder`), the training loop (:func:`fit`, :func:`fit_tensor` for images,
:func:`fit_table` for vector data) and loading a trained run (:func:`load_model`;
:func:`load_run` with its step and class names). The maths lives in :mod:`wae.divergences`,
:mod:`wae.costs` and :mod:`wae.priors` as pure functions.
"""

from __future__ import annotations

__version__ = "0.1.0"

import _thread
import importlib
import os

TYPE_CHECKING = False  # typing's, without importing typing (type checkers know the name)

# Nothing heavy is imported here: ``import wae`` takes milliseconds, and the names below load
# their module (and torch) on first use (PEP 562). So the ``wae`` command, whose entry point is
# in this package, imports torch with SIGINT held (wae/start.py): a Ctrl-C then is one line.
if TYPE_CHECKING:
    from typing import Any

    from .api import fit_table, fit_tensor
    from .config import Config, UserError, for_objective, override, preset
    from .data import ImageData, from_tensor
    from .model import AutoEncoder
    from .train import LoadedRun, Run, fit, load_model, load_run

_HOME = {
    "Config": "config",
    "UserError": "config",
    "for_objective": "config",
    "override": "config",
    "preset": "config",
    "ImageData": "data",
    "from_tensor": "data",
    "AutoEncoder": "model",
    "Run": "train",
    "fit": "train",
    "load_model": "train",
    "load_run": "train",
    "LoadedRun": "train",
    "fit_tensor": "api",
    "fit_table": "api",
}

_WITHOUT_TORCH = frozenset({"config"})  # the modules that import no torch

# torch's first import, run from several threads at once, is not thread-safe: one thread
# imports it, the others wait. Only that import is held: torch imports nothing of ours, so the
# lock cannot deadlock with the import system's own per-module locks (a thread importing
# wae.train directly, whose ``from . import runs`` comes back here, while another holds this
# lock for a lazy name that needs wae.train). A child forked while a thread held it gets a
# fresh one.
_TORCH = _thread.RLock()


def _fresh_lock() -> None:
    global _TORCH
    _TORCH = _thread.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_fresh_lock)

# wae.config (settings and presets; no torch) is imported here, not on first use: a child forked
# while another thread was importing torch finds the modules that both need (typing, json,
# dataclasses, ...) locked by a thread it does not have (Python 3.11 resets no per-module import
# lock in a forked child), and its first wae.preset() hung (seen in CI, 1 in about 15 forks 10 ms
# into the import)
from . import config  # noqa: E402, F401


def _is_submodule(name: str) -> bool:
    """Whether ``wae.<name>`` is a module of the package (a data folder beside them is not)."""
    if not name.isidentifier() or name.startswith("__"):
        return False
    home = __path__[0]
    return os.path.isfile(os.path.join(home, f"{name}.py")) or os.path.isfile(os.path.join(home, name, "__init__.py"))


if not TYPE_CHECKING:  # so that type checkers still see a misspelt name as an error

    def __getattr__(name: str) -> Any:
        """The public names, and the submodules (``wae.checkpoint`` after ``import wae``), loaded
        on first use."""
        home = _HOME.get(name) or (name if _is_submodule(name) else None)
        if home is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        if home not in _WITHOUT_TORCH:
            with _TORCH:
                import torch  # noqa: F401
        module = importlib.import_module(f".{home}", __name__)
        value = module if home == name else getattr(module, name)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    """The public names, ``__version__`` and the submodules loaded so far."""
    loaded = (key for key, value in globals().items() if getattr(value, "__name__", "").startswith(f"{__name__}."))
    return sorted({*__all__, "__version__", *loaded})


__all__ = [
    "AutoEncoder",
    "Config",
    "ImageData",
    "LoadedRun",
    "Run",
    "UserError",
    "fit",
    "for_objective",
    "from_tensor",
    "load_model",
    "load_run",
    "override",
    "preset",
    "fit_tensor",
    "fit_table",
]
