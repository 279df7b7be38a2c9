"""Checkpoints: written atomically (temp file, fsync, rename), read with ``weights_only=True``
so that a crafted file cannot run code. The config is stored inside as plain data."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from .config import Config, UserError

FORMAT = 1


def save_atomic(payload: dict[str, Any], path: Path) -> None:
    """Write ``payload`` to ``path`` so that ``path`` is always either the old or the new file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_atomic`; a clear :class:`UserError` otherwise."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any unpickling failure means the file is not ours or is damaged
        raise UserError(f"checkpoint {path} is corrupt or not a wae checkpoint ({type(err).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise UserError(f"checkpoint {path} is not a wae checkpoint of format {FORMAT}")
    return payload


def config_of(payload: dict[str, Any]) -> Config:
    """The run's config stored inside a checkpoint."""
    return Config.from_dict(payload["config"])
