"""What the MonitorPanel shows, as pure functions of a status snapshot and stored events.

The panel reads one ``TrainingStatus`` (``acc.monitors.training_status`` of a
live trainer or recorder, or the job's ``status.json`` after the fact) and,
for a stored job, the ``"alert"`` and ``"monitor_error"`` events of the
store. These functions turn them into the plain, JSON-safe rows and dicts
the panel's traits carry; they touch no widget and no store, so tables of
inputs (NaN and Inf included) test them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from acc.monitors.throughput import format_duration
from acc.widgets._binary import json_number, json_safe

__all__ = [
    "ALERT_KEYS",
    "LAYER_RANK",
    "alert_counts",
    "alert_row",
    "eval_values",
    "fold_alert_events",
    "layer_rows",
    "layer_summary_values",
    "monitor_error_rows",
    "pattern_values",
    "streaming_values",
    "throughput_values",
]

ALERT_KEYS = ("code", "severity", "message", "recommendation", "first_step", "last_step", "count", "resolved_step")
"""The fields of an alert a panel shows (``details`` stay in the store and the status file)."""

LAYER_RANK = {"exploding": 0, "dead": 1, "vanishing": 2, "active": 3, "unknown": 4, "frozen": 5}
"""How urgent a layer verdict is: the folded table shows the most urgent rows first."""

MAX_PATTERN_CELLS = 32 * 32
"""The largest slice-accuracy grid drawn inside the panel (bigger ones: ``HeatmapWidget``)."""


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return int(value)
    return None


def alert_row(alert: Mapping[str, Any]) -> dict[str, Any]:
    """One alert (``Alert.to_dict()`` or a stored event's payload) as the panel shows it."""
    severity = str(alert.get("severity") or "info")
    return {
        "code": str(alert.get("code") or "?"),
        "severity": severity if severity in ("critical", "warning", "info") else "info",
        "message": str(alert.get("message") or ""),
        "recommendation": str(alert.get("recommendation") or ""),
        "first_step": _int_or_none(alert.get("first_step")),
        "last_step": _int_or_none(alert.get("last_step")),
        "count": _int_or_none(alert.get("count")) or 1,
        "resolved_step": _int_or_none(alert.get("resolved_step")),
    }


def fold_alert_events(events: Iterable[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Stored ``"alert"`` events (oldest first) -> (active, resolved) alert rows.

    An alert is one episode of a code: raised at ``first_step``, resolved
    later by an event with the same code and first step. Active ones come
    most severe first; resolved ones newest resolution first.
    """
    active: dict[tuple[str, int | None], dict[str, Any]] = {}
    resolved: list[dict[str, Any]] = []
    for event in events:
        payload = event.get("payload")
        if not isinstance(payload, Mapping):
            continue
        row = alert_row(payload)
        key = (row["code"], row["first_step"])
        if payload.get("event") == "resolved" or row["resolved_step"] is not None:
            active.pop(key, None)
            if row["resolved_step"] is None:
                row["resolved_step"] = _int_or_none(event.get("step"))
            resolved.append(row)
        else:
            active[key] = row
    order = {"critical": 0, "warning": 1, "info": 2}
    active_rows = sorted(active.values(), key=lambda r: (order[r["severity"]], r["first_step"] or 0))
    resolved.sort(key=lambda r: -(r["resolved_step"] or 0))
    return active_rows, resolved


def alert_counts(active: Sequence[Mapping[str, Any]], resolved: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """``{"critical", "warning", "info", "active", "resolved"}`` counted from the rows themselves."""
    counts = {"critical": 0, "warning": 0, "info": 0}
    for row in active:
        counts[str(row["severity"])] = counts.get(str(row["severity"]), 0) + 1
    return {**counts, "active": len(active), "resolved": len(resolved)}


def layer_rows(stats: Mapping[str, Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    """Per-layer rows in the model's order: name, status, grad, mean_grad, update, params, zero_streak, samples.

    Gradient values of a frozen layer, or of one not sampled yet, are None
    (the monitor reports 0.0 there, which would read as "dead").
    """
    rows: list[dict[str, Any]] = []
    for name, s in (stats or {}).items():
        status = str(s.get("status") or "unknown")
        measured = status not in ("frozen", "unknown")
        rows.append(
            {
                "name": str(name),
                "status": status,
                "rank": LAYER_RANK.get(status, 4),
                "grad": json_number(s.get("current_grad_norm")) if measured else None,
                "mean_grad": json_number(s.get("mean_grad_norm")) if measured else None,
                "update": json_number(s.get("current_update")) if measured and s.get("num_updates") else None,
                "params": _int_or_none(s.get("num_params")),
                "zero_streak": _int_or_none(s.get("zero_streak")) or 0,
                "samples": _int_or_none(s.get("num_samples")) or 0,
            }
        )
    return rows


def layer_summary_values(summary: Mapping[str, Any] | None, noun: str = "layers") -> dict[str, Any]:
    """The headline ("24/28 layers active, 4 dead") and the verdict counts; {} without a gradient monitor."""
    if not summary:
        return {}
    count = {k: len(summary.get(f"{k}_layers") or []) for k in ("dead", "vanishing", "exploding", "frozen", "unknown")}
    worst = "critical" if count["exploding"] or count["dead"] else ""
    if not worst and (count["vanishing"] or summary.get("imbalanced")):
        worst = "warning"
    if not worst and summary.get("active_layers"):
        worst = "healthy"
    return {
        "text": str(summary.get("text") or ""),
        "noun": noun,
        "active": _int_or_none(summary.get("active_layers")) or 0,
        "trainable": _int_or_none(summary.get("trainable_layers")) or 0,
        "total": _int_or_none(summary.get("total_layers")) or 0,
        **count,
        "imbalanced": bool(summary.get("imbalanced")),
        "imbalance_ratio": json_number(summary.get("imbalance_ratio")),
        "step": _int_or_none(summary.get("step")),
        "health": worst,
    }


def throughput_values(status: Mapping[str, Any], run_state: str) -> dict[str, Any]:
    """Throughput and ETA: the headline rate (tokens/s, else samples/s, else steps/s), average, trend, ETA.

    {} when no throughput monitor measured a rate yet. While the run is not
    running there is no time left to estimate: the ETA reads "0s" for a
    finished job and "—" for a stopped one.
    """
    keys = ("tokens_per_sec", "tokens_per_sec_avg", "samples_per_sec", "samples_per_sec_avg", "steps_per_sec")
    if all(status.get(k) is None for k in keys) and status.get("eta_seconds") is None:
        return {}  # nothing measured yet (a monitor that saw fewer than two steps reports elapsed 0.0 only)
    tokens, samples, steps = status.get("tokens_per_sec"), status.get("samples_per_sec"), status.get("steps_per_sec")
    elapsed = status.get("elapsed_seconds")
    if status.get("tokens_per_sec_avg") is not None or tokens is not None:
        unit, current, average = "tokens/s", tokens, status.get("tokens_per_sec_avg")
    elif status.get("samples_per_sec_avg") is not None or samples is not None:
        unit, current, average = "samples/s", samples, status.get("samples_per_sec_avg")
    else:
        step = _int_or_none(status.get("step"))
        per_step = step / elapsed if step and isinstance(elapsed, (int, float)) and elapsed > 0 else None
        unit, current, average = "steps/s", steps, per_step
    eta = status.get("eta_seconds")
    if run_state in ("finished", "stopped"):
        eta = 0.0 if run_state == "finished" else None
    return {
        "unit": unit,
        "current": json_number(current),
        "average": json_number(average),
        "steps_per_sec": json_number(steps),
        "samples_per_sec": json_number(samples),
        "samples_per_sec_avg": json_number(status.get("samples_per_sec_avg")),
        "tokens_per_sec": json_number(tokens),
        "tokens_per_sec_avg": json_number(status.get("tokens_per_sec_avg")),
        "trend": str(status.get("throughput_trend") or "insufficient_data"),
        "eta_seconds": json_number(eta),
        "eta_text": format_duration(eta),
        "elapsed_seconds": json_number(elapsed),
        "elapsed_text": format_duration(elapsed),
    }


_STREAMING_KEYS = (
    "streaming_ce",
    "loss_variance",
    "token_entropy",
    "accuracy_last_20",
    "accuracy_last_50",
    "calibration_error",
)


def streaming_values(status: Mapping[str, Any]) -> dict[str, Any]:
    """The streaming statistics that have a value, and the two trends; {} when none has one."""
    values = {k: json_number(status.get(k)) for k in _STREAMING_KEYS if status.get(k) is not None}
    if not values:
        return {}
    values["loss_trend"] = str(status.get("loss_trend") or "insufficient_data")
    values["accuracy_trend"] = str(status.get("accuracy_trend") or "insufficient_data")
    return values


def eval_values(status: Mapping[str, Any]) -> dict[str, Any]:
    """The latest fixed evaluation (loss, accuracy, ECE, trend, step, n); {} before the first one."""
    if status.get("fixed_eval_step") is None:
        return {}
    return {
        "loss": json_number(status.get("fixed_eval_ce")),
        "accuracy": json_number(status.get("fixed_eval_em")),
        "ece": json_number(status.get("fixed_eval_ece")),
        "trend": str(status.get("fixed_eval_trend") or "insufficient_data"),
        "step": _int_or_none(status.get("fixed_eval_step")),
        "n": _int_or_none(status.get("fixed_eval_n")),
    }


def pattern_values(heatmap: Mapping[str, Any] | None) -> dict[str, Any]:
    """The sliced accuracy grid (``sliced_accuracy``'s dict) for the panel; {} when none or too big to draw inline."""
    if not heatmap:
        return {}
    rows, cols = list(heatmap.get("rows") or []), list(heatmap.get("cols") or [])
    if not rows or not cols or len(rows) * len(cols) > MAX_PATTERN_CELLS:
        return {}
    values: dict[str, Any] = json_safe(
        {
            "row_name": str(heatmap.get("row_name") or "row"),
            "col_name": str(heatmap.get("col_name") or "col"),
            "rows": [str(r) for r in rows],
            "cols": [str(c) for c in cols],
            "accuracy": heatmap.get("accuracy") or [],
            "count": heatmap.get("count") or [],
        }
    )
    return values


def monitor_error_rows(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per disabled monitor (the first fault of each): monitor, error, step."""
    rows: dict[str, dict[str, Any]] = {}
    for e in errors:
        name = str(e.get("monitor") or "monitor")
        rows.setdefault(
            name, {"monitor": name, "error": str(e.get("error") or ""), "step": _int_or_none(e.get("step"))}
        )
    return list(rows.values())
