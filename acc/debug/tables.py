"""Per-feature tables: a dict of ``[D]`` metrics -> sortable rows, a summary and a status per row.

A status comes from the first rule that matches, e.g. ``("dead", "win_rate",
"<", 0.01)``; a row with a non-finite value is ``"non-finite"``; otherwise
``"ok"``. Rules naming a metric that is not in the table are skipped. In rows
and summaries, non-finite numbers are ``None`` (JSON has no NaN); the
summary's ``n_nonfinite`` counts them.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = ["DEFAULT_RULES", "StatusRule", "feature_table", "metrics_to_numpy"]

_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


@dataclass(frozen=True)
class StatusRule:
    """``status`` for a row whose ``metric`` compares ``op`` ``threshold`` (``op`` one of < <= > >= == !=)."""

    status: str
    metric: str
    op: str
    threshold: float

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            raise ValueError(f"unknown operator {self.op!r} in rule {self.status!r}; use one of {', '.join(_OPS)}")
        if not isinstance(self.status, str) or not self.status:
            raise ValueError(f"a rule's status must be a non-empty string, got {self.status!r}")

    def matches(self, value: Any, threshold: Any = None) -> bool:
        """``value op threshold`` (``threshold`` defaults to the rule's, e.g. cast to the metric's precision)."""
        return bool(_OPS[self.op](value, self.threshold if threshold is None else threshold))

    @classmethod
    def coerce(cls, rule: StatusRule | Sequence[Any]) -> StatusRule:
        if isinstance(rule, StatusRule):
            return rule
        if isinstance(rule, Sequence) and not isinstance(rule, str) and len(rule) == 4:
            status, metric, op, threshold = rule
            return cls(str(status), str(metric), str(op), float(threshold))
        raise TypeError(
            f"a status rule is (status, metric, op, threshold), e.g. ('dead', 'win_rate', '<', 0.01); got {rule!r}"
        )


DEFAULT_RULES: tuple[StatusRule, ...] = (StatusRule("dead", "win_rate", "<", 0.01),)
"""A feature that wins (almost) no inputs is dead."""


def metrics_to_numpy(metrics: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """``[D]`` tensors/arrays/lists -> numpy (float32 stays float32, the rest float64).

    Device tensors are fetched in one transfer per (device, precision) group.
    """
    out: dict[str, np.ndarray] = {}
    groups: dict[tuple[torch.device, torch.dtype], list[tuple[str, torch.Tensor]]] = {}
    for name, value in metrics.items():
        if isinstance(value, torch.Tensor):
            if value.dim() != 1:
                raise ValueError(f"metric {name!r} has shape {list(value.shape)}; a per-feature metric is 1-D [D]")
            low = value.dtype in (torch.float32, torch.float16, torch.bfloat16)
            dtype = torch.float32 if low else torch.float64
            groups.setdefault((value.device, dtype), []).append((name, value.detach().to(dtype)))
        else:
            arr = np.asarray(value)
            out[name] = arr if arr.dtype == np.float32 else arr.astype(np.float64)
    for items in groups.values():
        if len({t.shape[0] for _, t in items}) == 1:
            host = torch.stack([t for _, t in items]).cpu().numpy()  # the one fetch
            for (name, _), row in zip(items, host, strict=True):
                out[name] = row
        else:
            for name, t in items:
                out[name] = t.cpu().numpy()
    return {name: out[name] for name in metrics}


def _floats(a: np.ndarray) -> list[float]:
    """Python floats; float32 values by their shortest decimal (0.1, not 0.10000000149011612)."""
    if a.dtype == np.float32:
        return [float(str(v)) for v in a]
    return [float(v) for v in a.tolist()]


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


def feature_table(
    metrics: Mapping[str, Any],
    *,
    rules: Iterable[StatusRule | Sequence[Any]] | None = None,
    sort_by: str | None = None,
    descending: bool = True,
    limit: int | None = None,
    features: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Rows ``{"feature", <metric>..., "status"}`` sorted by ``sort_by`` (non-finite last), with a summary.

    Returns ``{"columns", "rows", "summary": {metric: {"mean", "min", "max",
    "n_nonfinite"}}, "status_counts", "n_features", "sort_by", "descending"}``.
    ``features`` names the rows (default ``0..D-1``); ``limit`` keeps the first rows after sorting.
    """
    arrays = metrics_to_numpy(metrics)
    if not arrays:
        raise ValueError("feature_table needs at least one per-feature metric")
    lengths = {name: a.shape for name, a in arrays.items()}
    for name, a in arrays.items():
        if a.ndim != 1:
            raise ValueError(f"metric {name!r} has shape {list(a.shape)}; a per-feature metric is 1-D [D]")
    d = next(iter(arrays.values())).shape[0]
    bad = {name: list(s) for name, s in lengths.items() if s[0] != d}
    if bad:
        raise ValueError(f"per-feature metrics differ in length: {bad} vs {d} for {next(iter(arrays))!r}")
    if sort_by is not None and sort_by not in arrays and sort_by not in ("feature", "status"):
        raise KeyError(f"cannot sort by {sort_by!r}; columns: {['feature', *arrays, 'status']}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    ids = list(range(d)) if features is None else [int(i) for i in features]
    if len(ids) != d:
        raise ValueError(f"features names {len(ids)} rows but the metrics have {d}")
    rule_list = [StatusRule.coerce(r) for r in (DEFAULT_RULES if rules is None else rules)]
    rule_list = [r for r in rule_list if r.metric in arrays]

    stacked = np.stack(list(arrays.values()), axis=1)
    finite_rows: list[bool] = np.isfinite(stacked).all(axis=1).tolist()
    statuses: list[str] = []
    for r in range(d):
        if not finite_rows[r]:
            statuses.append("non-finite")
            continue
        status = "ok"
        for rule in rule_list:
            column = arrays[rule.metric]
            # compare in the metric's own precision: a float32 0.01 is not "< 0.01"
            if rule.matches(column[r], column.dtype.type(rule.threshold)):
                status = rule.status
                break
        statuses.append(status)

    host = {name: _floats(a) for name, a in arrays.items()}
    rows: list[dict[str, Any]] = [
        {"feature": ids[r], **{name: _finite_or_none(col[r]) for name, col in host.items()}, "status": statuses[r]}
        for r in range(d)
    ]
    if sort_by is not None:
        key = sort_by
        present = [row for row in rows if row[key] is not None]
        missing = [row for row in rows if row[key] is None]  # non-finite values sort last either way
        present.sort(key=lambda row: row[key], reverse=descending)
        rows = present + missing
    if limit is not None:
        rows = rows[:limit]

    summary: dict[str, dict[str, Any]] = {}
    for name, a in arrays.items():
        finite = a[np.isfinite(a)]
        summary[name] = {
            "mean": float(finite.astype(np.float64).mean()) if finite.size else None,
            "min": _floats(finite.min(keepdims=True))[0] if finite.size else None,
            "max": _floats(finite.max(keepdims=True))[0] if finite.size else None,
            "n_nonfinite": int(a.size - finite.size),
        }
    counts: dict[str, int] = {}
    for s in statuses:
        counts[s] = counts.get(s, 0) + 1
    return {
        "columns": ["feature", *arrays, "status"],
        "rows": rows,
        "summary": summary,
        "status_counts": counts,
        "n_features": d,
        "sort_by": sort_by,
        "descending": descending,
    }
