"""Image grids as PNG files (PIL and numpy only)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .checkpoint import PNG_LEVEL, write_atomic


def grid(images: Tensor, ncol: int, pad: int = 2) -> np.ndarray:
    """Tile images (n, c, h, w) in [0, 1] into one uint8 array (H, W) or (H, W, 3), row-major,
    ``ncol`` per row, on a white background with ``pad`` pixels between tiles."""
    n, c, h, w = images.shape
    nrow = -(-n // ncol)
    out = np.full((nrow * (h + pad) + pad, ncol * (w + pad) + pad, c), 255, dtype=np.uint8)
    tiles = (images.detach().float().clamp(0, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8)
    for i in range(n):
        r, col = divmod(i, ncol)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        out[y : y + h, x : x + w] = tiles[i].transpose(1, 2, 0)
    return out[..., 0] if c == 1 else out


def grid_png(images: Tensor, ncol: int, scale: int = 1) -> bytes:
    """The PNG bytes of a grid of images (n, c, h, w) in [0, 1] (:func:`grid`), upscaled
    ``scale`` times."""
    picture = Image.fromarray(grid(images, ncol))
    if scale > 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", compress_level=PNG_LEVEL)
    return buffer.getvalue()


def save_grid(images: Tensor, path: Path, ncol: int, scale: int = 1) -> None:
    """Write a grid of images (n, c, h, w) in [0, 1] as a PNG, upscaled ``scale`` times
    (atomically: a killed or failed write leaves the old file or none)."""
    write_atomic(path, grid_png(images, ncol, scale))


def reconstruction_rows(originals: Tensor, reconstructions: Tensor, ncol: int) -> Tensor:
    """Alternate rows of ``ncol`` originals and their reconstructions: (2 * rows * ncol, c, h, w)
    from two (n, c, h, w) tensors, n cut to a multiple of ``ncol``."""
    n = originals.shape[0] - originals.shape[0] % ncol
    o = originals[:n].reshape(-1, ncol, *originals.shape[1:])
    r = reconstructions[:n].reshape(-1, ncol, *reconstructions.shape[1:])
    return torch.stack([o, r], dim=1).reshape(-1, *originals.shape[1:])
