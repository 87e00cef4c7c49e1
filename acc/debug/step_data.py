"""Per-step data: values captured during a step, tagged with the step they belong to.

Nothing is converted or copied at capture: the store keeps a reference and the
step number. Data of older steps is not cleared by a per-step handler; it is
ignored once a newer step is current and dropped at the next pause point
(lazy clearing). Conversion to host values happens when someone asks.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

__all__ = ["StepData", "to_host"]


def to_host(value: Any) -> Any:
    """Tensors -> numpy arrays (0-d -> float/int/bool); dicts, lists and tuples converted inside."""
    if isinstance(value, torch.Tensor):
        t = value.detach()
        if t.dtype in (torch.bfloat16, torch.float16):
            t = t.float()
        arr = t.cpu().numpy()
        return arr.item() if arr.ndim == 0 else arr
    if isinstance(value, Mapping):
        return {k: to_host(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_host(v) for v in value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def describe_value(value: Any) -> dict[str, Any]:
    """Shape and dtype of a value without fetching it (for key listings)."""
    if isinstance(value, torch.Tensor):
        return {"shape": list(value.shape), "dtype": str(value.dtype).replace("torch.", ""), "kind": "tensor"}
    if isinstance(value, np.ndarray):
        return {"shape": list(value.shape), "dtype": str(value.dtype), "kind": "array"}
    return {"shape": None, "dtype": None, "kind": type(value).__name__}


class StepData:
    """``key -> (step, value)``; the values of one step are "current" together (thread-safe)."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[int, Any]] = {}
        self._lock = threading.Lock()

    def put(self, key: str, step: int, value: Any) -> None:
        if not isinstance(key, str) or not key:
            raise TypeError(f"a step-data key must be a non-empty string, got {key!r}")
        with self._lock:
            self._entries[key] = (step, value)

    def entries(self, since: int) -> dict[str, tuple[int, Any]]:
        """Entries captured at step ``since`` or later (older ones are stale)."""
        with self._lock:
            return {k: e for k, e in self._entries.items() if e[0] >= since}

    def get(self, key: str, since: int, label: Any = None) -> tuple[int, Any]:
        """``(tag, value)`` of ``key``; KeyError naming the keys there are when it is missing or stale.

        ``label`` names the current step in the message (default: ``since``).
        """
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[0] >= since:
                return entry
            keys = sorted(k for k, e in self._entries.items() if e[0] >= since)
        stale = " (only from an older step)" if entry is not None else ""
        where = since if label is None else label
        raise KeyError(f"no step data {key!r} for step {where}{stale}; keys: {keys or 'none'}")

    def drop_older(self, step: int) -> None:
        """Forget entries of steps before ``step`` (called at the pause point)."""
        with self._lock:
            stale = [k for k, e in self._entries.items() if e[0] < step]
            for k in stale:
                del self._entries[k]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
