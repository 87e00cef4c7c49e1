"""What the LossHealthPanel shows, as plain data: pure functions and two small accumulators.

Everything here turns host numbers (fetched step infos, stored series, job
records, checkpoints) into JSON-safe rows. Nothing touches a widget or a
tensor, so the live path and the rebuild-from-the-store path share one
implementation and give the same result:

* :class:`LossLog` folds steps into one entry per ``every`` steps (last value
  per task, the worst health seen in the entry), keeps the newest ``keep``.
* :class:`Sparkline` keeps a whole job's loss curve in at most ``capacity``
  buckets (bucket width doubles when full; a bucket with a NaN/Inf is NaN,
  so a blow-up never disappears).
* ``summary_rows``, ``history_rows``, ``checkpoint_rows``: table rows.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from acc.checkpoints import CheckpointNode
from acc.loss_health import LossHealth, LossSummary, Thresholds, classify_loss, worst_health
from acc.store import JobRecord, RunStore, loss_series_name
from acc.widgets._binary import json_number

__all__ = [
    "LossLog",
    "Sparkline",
    "checkpoint_rows",
    "classifier",
    "history_row",
    "history_rows",
    "overall_health",
    "spark_bytes",
    "stored_steps",
    "stored_tasks",
    "summary_rows",
    "worse",
]

_SEVERITY = {"healthy": 0, "warning": 1, "critical": 2}


def worse(a: str | None, b: str | None) -> str | None:
    """The more severe of two health words (None counts as nothing known)."""
    if a is None:
        return b
    if b is None:
        return a
    return a if _SEVERITY.get(a, 0) >= _SEVERITY.get(b, 0) else b


class LossLog:
    """The folded loss log: one entry per ``every`` steps, newest ``keep`` entries.

    ``add(step, losses, health)`` takes one step's host values; steps at or
    below the last one added are ignored (so a rebuild from the store and
    the live stream can overlap). An entry covers steps
    ``(k * every, (k + 1) * every]``; it holds each task's last value with
    that value's health, the worst health any of its steps had, and how many
    steps it saw.
    """

    def __init__(self, every: int = 50, keep: int = 40) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive integer, got {every!r}")
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise ValueError(f"keep must be a positive integer, got {keep!r}")
        self.every = every
        self.keep = keep
        self._closed: deque[dict[str, Any]] = deque(maxlen=keep)
        self._open: dict[str, Any] | None = None
        self.last_step: int | None = None

    def add(self, step: int, losses: Mapping[str, float], health: Mapping[str, str]) -> None:
        if self.last_step is not None and step <= self.last_step:
            return
        self.last_step = step
        bucket = (step - 1) // self.every
        entry = self._open
        if entry is None or entry["bucket"] != bucket:
            if entry is not None:
                self._closed.append(entry)
            entry = self._open = {
                "bucket": bucket,
                "first": step,
                "last": step,
                "n": 0,
                "values": {},
                "health": {},
                "worst": {},
            }
        entry["last"] = step
        entry["n"] += 1
        for task, value in losses.items():
            entry["values"][task] = value
            entry["health"][task] = health.get(task)
            entry["worst"][task] = worse(entry["worst"].get(task), health.get(task))

    def entries(self) -> list[dict[str, Any]]:
        """Newest first, JSON-safe.

        ``{"first", "last", "n", "open", "health" (the worst of the entry),
        "tasks": [{"task", "value" (the last), "health" (of that value), "worst" (in the entry)}]}``.
        """
        rows = []
        items = [*self._closed, *([self._open] if self._open is not None else [])]
        for entry in reversed(items[-self.keep :]):
            worst = [h for h in entry["worst"].values() if h]
            rows.append(
                {
                    "first": entry["first"],
                    "last": entry["last"],
                    "n": entry["n"],
                    "open": entry is self._open,
                    "health": worst_health(worst).value if worst else None,
                    "tasks": [
                        {
                            "task": task,
                            "value": json_number(value),
                            "health": entry["health"].get(task),
                            "worst": entry["worst"].get(task),
                        }
                        for task, value in entry["values"].items()
                    ],
                }
            )
        return rows


class Sparkline:
    """A whole curve in at most ``capacity`` points: bucket means, widths doubling as the run grows."""

    def __init__(self, capacity: int = 96) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 2 or capacity % 2:
            raise ValueError(f"capacity must be an even integer >= 2, got {capacity!r}")
        self.capacity = capacity
        self.width = 1  # values per full bucket
        self._means: list[float] = []
        self._sum = 0.0
        self._count = 0
        self._bad = False

    def add(self, value: float) -> None:
        if math.isfinite(value):
            self._sum += value
        else:
            self._bad = True
        self._count += 1
        if self._count == self.width:
            self._means.append(math.nan if self._bad else self._sum / self._count)
            self._sum, self._count, self._bad = 0.0, 0, False
            if len(self._means) == self.capacity:
                # Halve: pairs of equal-width buckets merge (a NaN stays NaN).
                m = self._means
                self._means = [(m[i] + m[i + 1]) / 2 for i in range(0, len(m), 2)]
                self.width *= 2

    def extend(self, values: Iterable[float]) -> None:
        for v in values:
            self.add(v)

    @classmethod
    def from_values(cls, values: np.ndarray, capacity: int = 96) -> Sparkline:
        """The sparkline ``extend(values)`` would build, computed with numpy (a stored run of 1e6 steps).

        The buckets are the same; a mean may differ from the one-by-one result in its last bits.
        """
        spark = cls(capacity)
        x = np.asarray(values, dtype=np.float64)
        n = len(x)
        width = 1
        while n // width >= capacity:  # a full row of buckets halves, as add() does
            width *= 2
        full = n // width
        block = x[: full * width].reshape(full, width)
        finite = np.isfinite(block)
        sums = np.where(finite, block, 0.0).sum(axis=1)
        spark.width = width
        spark._means = np.where(finite.all(axis=1), sums / width, np.nan).tolist()
        rest = x[full * width :]
        ok = np.isfinite(rest)
        spark._sum = float(rest[ok].sum())
        spark._count = len(rest)
        spark._bad = not bool(ok.all())
        return spark

    def values(self) -> list[float]:
        """The bucket means, the partial last bucket included."""
        out = list(self._means)
        if self._count:
            out.append(math.nan if self._bad else self._sum / self._count)
        return out


def classifier(specs: Mapping[str, Mapping[str, Any]]) -> Callable[[str, float], str]:
    """``health(task, value) -> str`` that classifies as the job's tasks did (their types and thresholds)."""
    resolved: dict[str, tuple[str | None, Thresholds | None]] = {}
    for task, spec in specs.items():
        bounds = spec.get("thresholds")
        resolved[task] = (spec.get("task_type"), Thresholds.coerce(bounds) if bounds else None)

    def health(task: str, value: float) -> str:
        task_type, bounds = resolved.get(task, (None, None))
        return classify_loss(task, task_type, value, thresholds=bounds).value

    return health


def stored_steps(
    store: RunStore, job_id: int, tasks: Sequence[str], *, start: int | None = None
) -> list[tuple[int, dict[str, float]]]:
    """Per-step task losses of a stored job (``[(step, {task: value})]``, steps ascending) from ``start`` on."""
    by_step: dict[int, dict[str, float]] = {}
    for task in tasks:
        steps, values, _ = store.series(job_id, loss_series_name(task), start=start)
        for step, value in zip(steps.tolist(), values.tolist(), strict=True):
            by_step.setdefault(step, {})[task] = value
    return sorted(by_step.items())


def stored_tasks(store: RunStore, job_id: int) -> list[str]:
    """The task names with a ``loss/<task>`` series in a stored job."""
    prefix = loss_series_name("")
    return [n[len(prefix) :] for n in store.metric_names(job_id) if n.startswith(prefix)]


def summary_rows(summaries: Mapping[str, LossSummary]) -> list[dict[str, Any]]:
    """One JSON-safe row per task: task, type, mean, final, min, max, trend, health, steps, nonfinite."""
    return [
        {
            "task": s.task_name,
            "type": s.task_type,
            "mean": json_number(s.mean),
            "final": json_number(s.final),
            "min": json_number(s.min),
            "max": json_number(s.max),
            "trend": s.trend,
            "health": s.health.value,
            "steps": s.n_steps,
            "nonfinite": s.n_nonfinite,
        }
        for s in summaries.values()
    ]


def overall_health(summaries: Mapping[str, LossSummary]) -> str:
    """The worst task health, or "" when there are no summaries yet."""
    if not summaries:
        return ""
    return worst_health(s.health for s in summaries.values()).value


def _final_cells(summaries: Mapping[str, LossSummary]) -> list[dict[str, Any]]:
    return [{"task": k, "value": json_number(s.final), "health": s.health.value} for k, s in summaries.items()]


def history_row(job: JobRecord, summaries: Mapping[str, LossSummary] | None = None) -> dict[str, Any]:
    """A job as a history row; ``summaries`` overrides the stored summary (the live job's)."""
    if summaries is None:
        summaries = {k: LossSummary.from_dict(v) for k, v in (job.summary or {}).items()}
    return {
        "id": job.id,
        "name": job.name,
        "kind": job.kind,
        "status": job.status.value,
        "steps": job.last_step,
        "started": job.started,
        "duration": json_number(job.duration),
        "final": _final_cells(summaries),
        "health": overall_health(summaries) or None,
        "reason": job.reason or (job.error.strip().splitlines()[-1] if job.error else None),
    }


def history_rows(
    jobs: Iterable[JobRecord], live_job_id: int | None = None, live: Mapping[str, LossSummary] | None = None
) -> list[dict[str, Any]]:
    """Job history rows, newest first; the live job's finals come from ``live``."""
    return [history_row(j, live if (j.id == live_job_id and live) else None) for j in jobs]


def checkpoint_rows(
    roots: Sequence[CheckpointNode], *, current: str | None = None, limit: int = 40
) -> list[dict[str, Any]]:
    """The checkpoint tree, depth-first, as rows with a depth and a health; the newest ``limit`` nodes.

    A row's health is the worst task health of the loss summary saved with it
    (None when it has none).
    """
    rows: list[dict[str, Any]] = []
    for root in roots:
        for depth, ckpt in root.walk():
            summary = ckpt.metrics.get("loss_summary") or {}
            healths = [v.get("health") for v in summary.values() if isinstance(v, Mapping)]
            health = worst_health(LossHealth(h) for h in healths if h in _SEVERITY).value if healths else None
            rows.append(
                {
                    "id": ckpt.id,
                    "name": ckpt.name,
                    "step": ckpt.step,
                    "depth": depth,
                    "parent": ckpt.parent_id,
                    "job_id": ckpt.job_id,
                    "created": json_number(ckpt.created),
                    "health": health,
                    "current": ckpt.id == current,
                }
            )
    if len(rows) > limit:
        newest = {r["id"] for r in sorted(rows, key=lambda r: _created(r["created"]))[-limit:]}
        rows = [r for r in rows if r["id"] in newest]
    return rows


def _created(value: Any) -> float:
    return value if isinstance(value, float) else -math.inf


def spark_bytes(sparks: Mapping[str, Sparkline]) -> dict[str, bytes]:
    """Each task's sparkline as float32 bytes (NaN kept)."""
    return {task: np.asarray(s.values(), dtype="<f4").tobytes() for task, s in sparks.items()}
