"""Small tensor helpers shared by the trainer and the monitors (no host syncs here)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

__all__ = ["foreach_norms", "global_norm", "to_device"]


def foreach_norms(tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """The L2 norm of each tensor, as 0-d tensors on each tensor's device.

    Uses the fused ``torch._foreach_norm`` per (device, dtype) group (one kernel
    launch per group instead of one per tensor); sparse tensors and anything
    the fused kernel refuses fall back to a plain per-tensor norm.
    """
    out: list[torch.Tensor | None] = [None] * len(tensors)
    groups: dict[tuple[torch.device, torch.dtype], list[int]] = {}
    for i, t in enumerate(tensors):
        if t.is_sparse:
            out[i] = torch.linalg.vector_norm(t.coalesce().values())
        else:
            groups.setdefault((t.device, t.dtype), []).append(i)
    foreach = getattr(torch, "_foreach_norm", None)
    for idx in groups.values():
        group = [tensors[i] for i in idx]
        try:
            norms = foreach(group) if foreach is not None else [torch.linalg.vector_norm(t) for t in group]
        except (RuntimeError, NotImplementedError):
            norms = [torch.linalg.vector_norm(t) for t in group]
        for i, n in zip(idx, norms, strict=True):
            out[i] = n
    return [n for n in out if n is not None]


def global_norm(tensors: Sequence[torch.Tensor]) -> torch.Tensor | None:
    """The L2 norm of all tensors together (what clip_grad_norm_ reports), on the first tensor's device."""
    if not tensors:
        return None
    norms = foreach_norms(tensors)
    first = norms[0]
    if any(n.device != first.device or n.dtype != first.dtype for n in norms):
        norms = [n.to(device=first.device, dtype=torch.float32) for n in norms]
    norm: torch.Tensor = torch.linalg.vector_norm(torch.stack(norms))
    return norm


def to_device(batch: Any, device: torch.device) -> Any:
    """Move every tensor in a (nested) tuple/list/dict batch to ``device``, asynchronously where possible."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return (
            type(batch)(**{k: to_device(v, device) for k, v in batch.items()})
            if type(batch) is not dict
            else {k: to_device(v, device) for k, v in batch.items()}
        )
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # namedtuple
        return type(batch)(*(to_device(v, device) for v in batch))
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch
