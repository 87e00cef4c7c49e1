"""Image grids and a small PNG encoder (zlib only: no Pillow, no torchvision needed).

``make_grid`` uses ``torchvision.utils.make_grid`` when torchvision imports and
an equivalent of its own otherwise; ``encode_png`` writes 8-bit greyscale or RGB.
"""

from __future__ import annotations

import functools
import logging
import math
import struct
import zlib
from typing import Any

import numpy as np
import torch

__all__ = ["encode_png", "grid_png", "make_grid", "to_unit_range"]

log = logging.getLogger(__name__)

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@functools.cache
def _torchvision_make_grid() -> Any:
    """``torchvision.utils.make_grid`` or None (torchvision missing or broken, e.g. a CUDA-only build).

    Tried once per process: a failing import is slow and would be retried on every call.
    """
    try:
        from torchvision.utils import make_grid as tv_make_grid
    except Exception:  # ImportError, or RuntimeError from a torchvision built for another torch
        return None
    return tv_make_grid


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """Float images in [0, 1]: uint8 / 255, floats already in [0, 1] as they are, others min-max scaled.

    Non-finite pixels become 0 (a NaN image is shown black, not an error).
    """
    if images.dtype == torch.uint8:
        return images.float() / 255.0
    x = images.detach().float()
    x = torch.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(x.min()), float(x.max())
    if lo >= 0.0 and hi <= 1.0:
        return x
    if hi - lo <= 0.0:
        return torch.zeros_like(x)
    return (x - lo) / (hi - lo)


def make_grid(images: torch.Tensor, nrow: int = 8, padding: int = 2, pad_value: float = 0.0) -> torch.Tensor:
    """``[N, C, H, W]`` in [0, 1] -> one ``[C, H', W']`` image, ``nrow`` images per row (torchvision's layout)."""
    if images.dim() != 4:
        raise ValueError(f"make_grid needs [N, C, H, W] images, got shape {tuple(images.shape)}")
    if nrow < 1:
        raise ValueError(f"nrow must be >= 1, got {nrow}")
    tv = _torchvision_make_grid()
    if tv is not None:
        grid: torch.Tensor = tv(images, nrow=nrow, padding=padding, pad_value=pad_value)
        return grid
    n, c, h, w = images.shape
    cols = min(nrow, n)
    rows = math.ceil(n / cols) if n else 0
    height, width = h + padding, w + padding
    grid = images.new_full((c, rows * height + padding, cols * width + padding), pad_value)
    for k in range(n):
        r, col = divmod(k, cols)
        top, left = r * height + padding, col * width + padding
        grid[:, top : top + h, left : left + w] = images[k]
    return grid


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def encode_png(image: np.ndarray | torch.Tensor, *, level: int = 6) -> bytes:
    """8-bit PNG bytes of a ``[H, W]`` (grey) or ``[H, W, 3]`` (RGB) image.

    Floats are taken as [0, 1] and rounded; uint8 is written as it is.
    """
    arr = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if arr.dtype != np.uint8:
        arr = np.clip(np.nan_to_num(arr.astype(np.float64), nan=0.0) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        colour_type, channels = 0, 1
    elif arr.ndim == 3 and arr.shape[2] == 3:
        colour_type, channels = 2, 3
    else:
        raise ValueError(f"encode_png needs [H, W] or [H, W, 3], got shape {arr.shape}")
    h, w = arr.shape[:2]
    if h == 0 or w == 0:
        raise ValueError(f"encode_png needs a non-empty image, got shape {arr.shape}")
    rows = np.ascontiguousarray(arr).reshape(h, w * channels)
    # filter type 0 (None) in front of every scanline
    raw = np.concatenate([np.zeros((h, 1), dtype=np.uint8), rows], axis=1).tobytes()
    header = struct.pack(">IIBBBBB", w, h, 8, colour_type, 0, 0, 0)
    return _PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, level)) + _chunk(b"IEND", b"")


def grid_png(images: torch.Tensor, nrow: int = 8, padding: int = 2) -> tuple[bytes, dict[str, int]]:
    """PNG bytes of a grid of ``[N, C, H, W]`` images (C 1 or 3), and its layout."""
    unit = to_unit_range(images)
    grid = make_grid(unit, nrow=nrow, padding=padding)
    if grid.shape[0] == 1:
        pixels = grid[0]
    elif grid.shape[0] == 3:
        # torchvision turns 1-channel images into 3 identical channels; keep grey when they are
        pixels = grid[0] if images.shape[1] == 1 else grid.permute(1, 2, 0)
    else:
        raise ValueError(f"an image grid needs 1 or 3 channels, got {grid.shape[0]}")
    png = encode_png(pixels)
    cols = min(nrow, images.shape[0])
    layout = {
        "n": int(images.shape[0]),
        "nrow": int(cols),
        "rows": math.ceil(images.shape[0] / cols) if cols else 0,
        "height": int(pixels.shape[0]),
        "width": int(pixels.shape[1]),
        "image_height": int(images.shape[2]),
        "image_width": int(images.shape[3]),
        "padding": padding,
    }
    return png, layout
