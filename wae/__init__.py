"""wae: Wasserstein Auto-Encoders (Tolstikhin et al., ICLR 2018) in PyTorch.

The public API: configs and presets (:mod:`wae.config`), the auto-encoder
(:class:`AutoEncoder`), the training loop (:func:`fit`, :func:`fit_tensor` for images,
:func:`fit_table` for vector data) and loading a trained
run (:func:`load_model`). The maths lives in :mod:`wae.divergences`, :mod:`wae.costs` and
:mod:`wae.priors` as pure functions.
"""

from __future__ import annotations

__version__ = "0.1.0"

import importlib
import importlib.util
import threading
from typing import TYPE_CHECKING, Any

# Nothing heavy is imported here: ``import wae`` takes milliseconds, and the names below load
# their module (and torch) on first use (PEP 562). So the ``wae`` command, whose entry point is
# in this package, imports torch with SIGINT held (wae/start.py): a Ctrl-C then is one line.
if TYPE_CHECKING:
    from .api import fit_table, fit_tensor
    from .config import Config, UserError, for_objective, override, preset
    from .data import ImageData, from_tensor
    from .model import AutoEncoder
    from .train import Run, fit, load_model

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
    "fit_tensor": "api",
    "fit_table": "api",
}


_LOADING = threading.RLock()  # one lazy import at a time: torch's import is not thread-safe


if not TYPE_CHECKING:  # so that type checkers still see a misspelt name as an error

    def __getattr__(name: str) -> Any:
        """The public names, and the submodules (``wae.checkpoint`` after ``import wae``), loaded
        on first use."""
        with _LOADING:
            if name in _HOME:
                value = getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
            elif name.isidentifier() and not name.startswith("__") and importlib.util.find_spec(f"{__name__}.{name}"):
                value = importlib.import_module(f".{name}", __name__)
            else:
                raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
            globals()[name] = value
            return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOME])


__all__ = [
    "AutoEncoder",
    "Config",
    "ImageData",
    "Run",
    "UserError",
    "fit",
    "for_objective",
    "from_tensor",
    "load_model",
    "override",
    "preset",
    "fit_tensor",
    "fit_table",
]
