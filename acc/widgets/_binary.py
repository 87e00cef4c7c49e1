"""How numbers cross the wire: float32 buffers for bulk data, JSON-safe scalars for the rest.

* Bulk numbers (series, matrices) go as little-endian float32 ``bytes``;
  ipywidgets sends ``bytes`` found anywhere in a trait's value as binary
  buffers, and the browser gets a ``DataView`` that ``f32()`` in
  ``widgets/_shared.js`` turns into a ``Float32Array`` (no copy). NaN and
  +/-Inf survive as they are.
* Images go as PNG ``bytes`` (:func:`png_bytes` checks the signature).
* Scalars in JSON traits go through :func:`json_safe`: Jupyter's message
  serialiser refuses NaN/Inf (``allow_nan=False``) and would silently turn
  them into ``null``; here they become the strings ``"NaN"``, ``"Infinity"``
  and ``"-Infinity"``, which ``num()`` in ``_shared.js`` reads back.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["PNG_SIGNATURE", "f32_bytes", "from_f32_bytes", "json_number", "json_safe", "png_bytes"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def f32_bytes(values: Any) -> bytes:
    """``values`` (a sequence, numpy array or CPU tensor) as little-endian float32 bytes, C order."""
    if hasattr(values, "detach"):  # a torch tensor: callers fetch to the host first, in one batch
        values = values.detach().numpy()
    array = np.ascontiguousarray(np.asarray(values, dtype="<f4"))
    return array.tobytes()


def from_f32_bytes(data: bytes | memoryview, shape: Sequence[int] | None = None) -> np.ndarray:
    """The inverse of :func:`f32_bytes` (tests and Python-side consumers)."""
    if len(data) % 4:
        raise ValueError(f"float32 data must be a multiple of 4 bytes long, got {len(data)} bytes")
    array = np.frombuffer(data, dtype="<f4")
    return array.reshape(tuple(shape)) if shape is not None else array


def png_bytes(data: bytes | bytearray | memoryview) -> bytes:
    """``data`` as ``bytes`` after checking it is a PNG image (the browser shows it as it is)."""
    raw = bytes(data)
    if not raw.startswith(PNG_SIGNATURE):
        raise ValueError(f"expected PNG bytes (signature {PNG_SIGNATURE!r}), got {raw[:8]!r}")
    return raw


def json_number(value: float | int | None) -> float | int | str | None:
    """A number for a JSON trait: finite numbers as they are, NaN/Inf as "NaN"/"Infinity"/"-Infinity"."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    x = float(value)
    if math.isfinite(x):
        return x
    if math.isnan(x):
        return "NaN"
    return "Infinity" if x > 0 else "-Infinity"


def json_safe(obj: Any) -> Any:
    """``obj`` with every float made JSON-safe (see :func:`json_number`); dicts, lists and tuples are copied."""
    if isinstance(obj, float):
        return json_number(obj)
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        return json_safe(obj.item())
    return obj
