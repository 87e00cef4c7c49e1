"""Batch capture: a detached copy of one step's batch, and what ``get_batch()`` shows of it.

A batch may be a tensor, a tuple/list ``(inputs, labels, ...)`` or a dict
(inputs under ``input``/``inputs``/``x``/``image``/``images``/``pixel_values``,
labels under ``label``/``labels``/``y``/``target``/``targets``), as in ``acc.tasks``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from acc.debug.png import grid_png

__all__ = ["CapturedBatch", "clone_batch", "describe_batch", "loss_values", "tensor_summary"]

INPUT_KEYS = ("input", "inputs", "x", "image", "images", "pixel_values")
LABEL_KEYS = ("label", "labels", "y", "target", "targets")
MAX_GRID_IMAGES = 64
"""At most this many images go into the PNG grid (the first ones of the batch)."""
MAX_LABELS = 1024


def clone_batch(batch: Any) -> Any:
    """A copy of every tensor in a (nested) tuple/list/dict batch, detached, on the same device.

    On a GPU the copy is queued on the stream (no host sync); later steps cannot change it.
    """
    if isinstance(batch, torch.Tensor):
        return batch.detach().clone()
    if isinstance(batch, Mapping):
        return {k: clone_batch(v) for k, v in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # namedtuple
        return type(batch)(*(clone_batch(v) for v in batch))
    if isinstance(batch, (tuple, list)):
        return type(batch)(clone_batch(v) for v in batch)
    return batch


@dataclass
class CapturedBatch:
    """One step's batch and losses, as captured (``cloned`` False: references, not yet copied).

    ``loss`` is the total (tensor or number), ``losses`` the per-task values.
    """

    step: int | None
    batch: Any
    loss: Any = None
    losses: Mapping[str, Any] | None = None
    cloned: bool = False

    def cloned_copy(self) -> CapturedBatch:
        """A copy that later steps cannot change (itself when already copied)."""
        if self.cloned:
            return self
        losses = {k: clone_batch(v) for k, v in self.losses.items()} if self.losses else None
        return CapturedBatch(self.step, clone_batch(self.batch), clone_batch(self.loss), losses, True)

    @classmethod
    def of(cls, step: int | None, batch: Any, loss: Any) -> CapturedBatch:
        """From ``capture_batch``'s arguments: ``loss`` a tensor, a number or a dict of per-task losses."""
        if isinstance(loss, Mapping):
            return cls(step, batch, None, dict(loss))
        return cls(step, batch, loss, None)


def _inputs_and_labels(batch: Any) -> tuple[Any, Any]:
    if isinstance(batch, torch.Tensor):
        return batch, None
    if isinstance(batch, Mapping):
        inputs = next((batch[k] for k in INPUT_KEYS if k in batch), None)
        if inputs is None:
            inputs = next((v for v in batch.values() if isinstance(v, torch.Tensor)), None)
        labels = next((batch[k] for k in LABEL_KEYS if k in batch), None)
        return inputs, labels
    if isinstance(batch, (tuple, list)) and batch:
        return batch[0], (batch[1] if len(batch) >= 2 else None)
    return None, None


def is_image_batch(x: Any) -> bool:
    """``[B, C, H, W]`` with C 1 or 3, or ``[B, H, W]``, with H, W >= 2."""
    if not isinstance(x, torch.Tensor) or x.is_complex() or x.dtype == torch.bool:
        return False
    if x.dim() == 4:
        return x.shape[1] in (1, 3) and x.shape[2] >= 2 and x.shape[3] >= 2 and x.shape[0] >= 1
    if x.dim() == 3:
        return x.shape[1] >= 2 and x.shape[2] >= 2 and x.shape[0] >= 1
    return False


def tensor_summary(x: torch.Tensor) -> dict[str, Any]:
    """Shape, dtype, device and min/max/mean/std over the finite values (one host fetch)."""
    summary: dict[str, Any] = {
        "shape": list(x.shape),
        "dtype": str(x.dtype).replace("torch.", ""),
        "device": str(x.device),
    }
    if x.numel() == 0 or x.is_complex():
        summary.update({"min": None, "max": None, "mean": None, "std": None, "n_nonfinite": 0})
        return summary
    v = x.detach().reshape(-1)
    v = v.double() if v.is_floating_point() or v.dtype == torch.bool else v.to(torch.float64)
    finite = torch.isfinite(v)
    n_finite = finite.sum()
    safe = torch.where(finite, v, torch.zeros_like(v))
    count = n_finite.clamp_min(1).double()
    mean = safe.sum() / count
    var = (torch.where(finite, v - mean, torch.zeros_like(v)) ** 2).sum() / (n_finite - 1).clamp_min(1).double()
    lo = torch.where(finite, v, torch.full_like(v, math.inf)).min()
    hi = torch.where(finite, v, torch.full_like(v, -math.inf)).max()
    host = torch.stack([lo, hi, mean, var.sqrt(), n_finite.double()]).cpu().tolist()  # the one fetch
    n_ok = int(host[4])
    if n_ok == 0:
        summary.update({"min": None, "max": None, "mean": None, "std": None})
    else:
        summary.update({"min": host[0], "max": host[1], "mean": host[2], "std": host[3] if n_ok > 1 else 0.0})
    summary["n_nonfinite"] = int(v.numel() - n_ok)
    return summary


def loss_values(loss: Any, losses: Mapping[str, Any] | None = None) -> tuple[float | None, dict[str, float]]:
    """(total, per task) as host floats, fetched in one transfer; the total defaults to the sum of ``losses``."""
    names = list(losses or {})
    values = [*(losses or {}).values(), loss] if loss is not None else list((losses or {}).values())
    tensors = [v for v in values if isinstance(v, torch.Tensor)]
    if tensors:
        device = tensors[0].device
        stacked = torch.stack([v.detach().reshape(-1)[0].to(device=device, dtype=torch.float64) for v in tensors])
        fetched = iter(stacked.cpu().tolist())  # the one fetch
        host = [next(fetched) if isinstance(v, torch.Tensor) else float(v) for v in values]
    else:
        host = [float(v) for v in values]
    per_task = dict(zip(names, host[: len(names)], strict=True))
    if loss is not None:
        return host[-1], per_task
    return (sum(per_task.values()) if per_task else None), per_task


def _labels_list(labels: Any) -> list[Any] | None:
    if isinstance(labels, torch.Tensor):
        if labels.dim() == 0:
            return [labels.item()]
        if labels.dim() == 1 or (labels.dim() == 2 and labels.shape[1] == 1):
            return list(labels.reshape(-1)[:MAX_LABELS].cpu().tolist())
        return None  # e.g. one-hot or dense targets: see "targets" instead
    if isinstance(labels, (list, tuple)) and all(isinstance(v, (int, float, str)) for v in labels):
        return list(labels[:MAX_LABELS])
    return None


def describe_batch(captured: CapturedBatch, *, nrow: int = 8) -> dict[str, Any]:
    """What ``get_batch()`` returns for a captured batch (see ``DebugController.get_batch``)."""
    inputs, labels = _inputs_and_labels(captured.batch)
    total, per_task = loss_values(captured.loss, captured.losses)
    out: dict[str, Any] = {
        "step": captured.step,
        "loss": total,
        "losses": per_task,
        "labels": _labels_list(labels),
        "kind": "none",
        "png": None,
        "grid": None,
        "summary": None,
    }
    if isinstance(labels, torch.Tensor) and out["labels"] is None:
        out["targets"] = tensor_summary(labels)
    if is_image_batch(inputs):
        assert isinstance(inputs, torch.Tensor)
        images = inputs if inputs.dim() == 4 else inputs.unsqueeze(1)
        png, layout = grid_png(images[:MAX_GRID_IMAGES].cpu(), nrow=nrow)
        out.update({"kind": "image", "png": png, "grid": layout, "summary": tensor_summary(inputs)})
    elif isinstance(inputs, torch.Tensor):
        out.update({"kind": "tensor", "summary": tensor_summary(inputs)})
    elif inputs is not None:
        out.update({"kind": "object", "summary": {"type": type(inputs).__name__, "repr": repr(inputs)[:200]}})
    return out
