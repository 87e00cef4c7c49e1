"""Cosine-similarity matrices between feature rows, computed on the device in one matrix product."""

from __future__ import annotations

import math
from typing import Any

import torch

__all__ = ["cosine_matrix", "order_features"]

_EPS = 1e-12


def as_rows(x: torch.Tensor, name: str) -> torch.Tensor:
    """A ``[D, K]`` float view of ``x`` (more than 2 dims are flattened per row); 1-D or 0-d: ValueError."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name!r} is a {type(x).__name__}, not a tensor; a cosine matrix needs a [D, K] tensor")
    if x.dim() < 2:
        raise ValueError(
            f"{name!r} has shape {list(x.shape)}: a cosine matrix needs a [D, K] tensor (one row per feature); "
            "a 1-D value is a per-feature metric (use it as order_by=)"
        )
    rows = x.detach().reshape(x.shape[0], -1)
    return rows if rows.dtype in (torch.float32, torch.float64) else rows.float()


def order_features(metric: torch.Tensor, d: int, name: str, *, descending: bool = True) -> torch.Tensor:
    """Feature indices sorted by a ``[D]`` metric (non-finite values last), on the metric's device."""
    if not isinstance(metric, torch.Tensor) or metric.dim() != 1 or metric.shape[0] != d:
        shape = list(metric.shape) if isinstance(metric, torch.Tensor) else type(metric).__name__
        raise ValueError(f"order_by={name!r} must be a per-feature metric of shape [{d}], got {shape}")
    m = metric.detach().double()
    fill = -math.inf if descending else math.inf
    m = torch.where(torch.isfinite(m), m, torch.full_like(m, fill))
    return torch.argsort(m, descending=descending, stable=True)


def cosine_matrix(rows: torch.Tensor, order: torch.Tensor | None = None) -> dict[str, Any]:
    """The ``[D, D]`` cosine matrix of ``rows`` ``[D, K]`` and its off-diagonal mean/std/min/max.

    One matrix product on the device, written into a buffer that also holds
    the statistics, so both come to the host in one transfer. A zero row has
    cosine 0 with every row (itself included). Statistics cover the finite
    off-diagonal entries (``None`` when there are none, e.g. D = 1);
    ``n_nonfinite`` counts the rest. Returns ``{"matrix": float32 ndarray
    [D, D], "order": [feature ids in matrix order], "mean", "std", "min",
    "max", "n", "n_nonfinite"}``.
    """
    x = rows
    d = x.shape[0]
    if order is not None:
        x = x.index_select(0, order.to(x.device))
    x = x.float()
    unit = x / torch.linalg.vector_norm(x, dim=1, keepdim=True).clamp_min(_EPS)
    buf = torch.empty(d * d + _N_STATS, dtype=torch.float32, device=x.device)
    m = buf[: d * d].view(d, d)
    torch.matmul(unit, unit.T, out=m)  # the one matrix product
    m.clamp_(-1.0, 1.0)
    buf[d * d :] = _fast_stats(m)
    host = buf.cpu().numpy()  # the one device->host transfer
    matrix = host[: d * d].reshape(d, d)
    stats = host[d * d :]
    if stats[5] > 0:  # non-finite entries (rare): recompute the statistics without them, and count them
        stats = _masked_stats(m).cpu().numpy()
    mean_h, std_h, lo_h, hi_h, n_ok_h, n_bad_h = (float(v) for v in stats)
    has = n_ok_h > 0
    return {
        "matrix": matrix,
        "order": order.cpu().tolist() if order is not None else list(range(d)),
        "mean": mean_h if has else None,
        "std": (std_h if n_ok_h > 1 else 0.0) if has else None,
        "min": lo_h if has else None,
        "max": hi_h if has else None,
        "n": d,
        "n_nonfinite": int(n_bad_h),
    }


_N_STATS = 6


def _fast_stats(m: torch.Tensor) -> torch.Tensor:
    """[mean, std, min, max, n off-diagonal, non-finite flag] of the off-diagonal entries, on the device.

    A few full passes, one D x D temporary and no host sync; exact when every
    entry is finite. NaN or Inf anywhere makes the sums non-finite, which sets
    the flag: the caller then recomputes with ``_masked_stats``.
    """
    d = m.shape[0]
    n_off = d * (d - 1)
    if d < 2:
        return m.new_tensor([math.nan, math.nan, math.nan, math.nan, 0.0, 0.0])
    diag = m.diagonal()
    mean = (m.sum() - diag.sum()) / n_off
    # two-pass variance around the mean (no cancellation when the rows are all alike), centred in
    # place: a D x D temporary would cost more than the passes (allocation and page faults)
    shift = torch.nan_to_num(mean, nan=0.0, posinf=0.0, neginf=0.0)  # a NaN shift would wipe the matrix
    m.sub_(shift)
    dev = torch.linalg.vector_norm(m) ** 2 - (diag**2).sum()
    m.add_(shift)  # back to the cosines (within a rounding step)
    var = (dev / max(n_off - 1, 1)).clamp_min(0.0)
    saved = diag.clone()
    diag.copy_(mean.expand_as(diag))  # the mean lies between the off-diagonal min and max
    lo, hi = torch.aminmax(m)
    diag.copy_(saved)
    flag = (~torch.isfinite(mean + dev)).float()
    return torch.stack([mean, var.sqrt(), lo, hi, m.new_tensor(float(n_off)), flag])


def _masked_stats(m: torch.Tensor) -> torch.Tensor:
    """The same statistics over the finite off-diagonal entries only."""
    d = m.shape[0]
    off = ~torch.eye(d, dtype=torch.bool, device=m.device)
    finite = torch.isfinite(m) & off
    n_ok = finite.sum()
    zero = torch.zeros_like(m)
    mean = torch.where(finite, m, zero).sum(dtype=torch.float64) / n_ok.clamp_min(1).double()
    var = (torch.where(finite, m - mean.float(), zero).double() ** 2).sum() / (n_ok - 1).clamp_min(1).double()
    hi = torch.where(finite, m, torch.full_like(m, -math.inf)).max()
    lo = torch.where(finite, m, torch.full_like(m, math.inf)).min()
    n_bad = off.sum() - n_ok
    return torch.stack([mean.float(), var.sqrt().float(), lo, hi, n_ok.float(), n_bad.float()])
