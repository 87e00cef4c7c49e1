"""Forces on features: two per-feature update tensors ``[D, K]`` (e.g. the gradient step and a
second update rule's delta), compared row by row: do they agree (cos > 0) or fight (cos < 0)?"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["force_detail", "force_summary"]

_EPS = 1e-12


def _check_pair(a: torch.Tensor, b: torch.Tensor, a_name: str, b_name: str) -> tuple[torch.Tensor, torch.Tensor]:
    for t, name in ((a, a_name), (b, b_name)):
        if not isinstance(t, torch.Tensor) or t.dim() != 2:
            shape = list(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"force {name!r} must be a per-feature update of shape [D, K], got {shape}")
    if a.shape != b.shape:
        raise ValueError(f"forces {a_name!r} {list(a.shape)} and {b_name!r} {list(b.shape)} differ in shape")
    return a.detach().float(), b.detach().to(device=a.device).float()


def force_summary(a: torch.Tensor, b: torch.Tensor, *, a_name: str = "a", b_name: str = "b") -> dict[str, Any]:
    """Per-feature cosine between the two forces; counts of features where they agree / fight.

    A feature with a zero force has no direction: it counts as ``neutral``
    (its cosine is reported as 0). Computed on the device, fetched once.
    Returns ``{"a", "b", "n", "agree", "fight", "neutral", "mean_cos", "cos": [D floats],
    "norm_a": [D], "norm_b": [D]}``.
    """
    fa, fb = _check_pair(a, b, a_name, b_name)
    na = torch.linalg.vector_norm(fa, dim=1)
    nb = torch.linalg.vector_norm(fb, dim=1)
    dot = (fa * fb).sum(dim=1)
    has = (na > _EPS) & (nb > _EPS)
    cos = torch.where(has, dot / (na * nb).clamp_min(_EPS), torch.zeros_like(dot)).clamp(-1.0, 1.0)
    host = torch.stack([cos, na, nb, has.float()]).cpu()  # the one fetch
    cos_l, na_l, nb_l, has_l = (row.tolist() for row in host)
    agree = sum(1 for c, h in zip(cos_l, has_l, strict=True) if h and c > 0)
    fight = sum(1 for c, h in zip(cos_l, has_l, strict=True) if h and c < 0)
    n = len(cos_l)
    directed = [c for c, h in zip(cos_l, has_l, strict=True) if h]
    return {
        "a": a_name,
        "b": b_name,
        "n": n,
        "agree": agree,
        "fight": fight,
        "neutral": n - agree - fight,
        "mean_cos": (sum(directed) / len(directed)) if directed else None,
        "cos": cos_l,
        "norm_a": na_l,
        "norm_b": nb_l,
    }


def force_detail(
    feature: int,
    a: torch.Tensor,
    b: torch.Tensor,
    weight: torch.Tensor | None,
    *,
    a_name: str = "a",
    b_name: str = "b",
) -> dict[str, Any]:
    """Both force vectors of one feature, their sum, the feature's weight row and the cosine between them.

    Returns ``{"feature", "a", "b", "sum", "weight" (or None), "cos" (None when
    a force is zero), "norm_a", "norm_b", "norm_sum", "agree" (cos > 0)}``; vectors are lists of floats.
    """
    fa, fb = _check_pair(a, b, a_name, b_name)
    d = fa.shape[0]
    if isinstance(feature, bool) or not isinstance(feature, int) or not -d <= feature < d:
        raise IndexError(f"feature {feature!r} is out of range: the forces have {d} features (0..{d - 1})")
    va, vb = fa[feature], fb[feature]
    parts = [va, vb, va + vb]
    if weight is not None:
        row = weight.detach()[feature].reshape(-1)
        if row.shape != va.shape:
            raise ValueError(f"the weight row of feature {feature} has {row.numel()} values, the forces {va.numel()}")
        parts.append(row.to(device=va.device, dtype=torch.float32))
    host = torch.stack(parts).cpu()  # the one fetch
    rows = host.tolist()
    na, nb = float(host[0].norm()), float(host[1].norm())
    cos = float(host[0] @ host[1]) / (na * nb) if na > _EPS and nb > _EPS else None
    if cos is not None:
        cos = max(-1.0, min(1.0, cos))
    return {
        "feature": feature if feature >= 0 else d + feature,
        "a_name": a_name,
        "b_name": b_name,
        "a": rows[0],
        "b": rows[1],
        "sum": rows[2],
        "weight": rows[3] if weight is not None else None,
        "cos": cos,
        "norm_a": na,
        "norm_b": nb,
        "norm_sum": float(host[2].norm()),
        "agree": None if cos is None else cos > 0,
    }
