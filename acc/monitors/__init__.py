"""Monitors: per-step diagnostics that subscribe to a Trainer's events.

A monitor is any object with ``attach(trainer) -> RemovableHandle``; it
registers its own handlers with ``trainer.on(...)``. ``Trainer(monitors=...)``
takes a list of them; the default is ``default_monitors()``:

* ``GradientMonitor`` (every 25 steps): per-layer (and LoRA adapter) gradient
  norms, relative updates and verdicts (active/vanishing/exploding/dead/frozen);
* ``StreamingMonitor`` (every 10 steps for logits): smoothed loss, variance,
  trends, token entropy, accuracy over the last 20/50 samples, ECE;
* ``ThroughputMonitor``: samples/s, tokens/s, trend, ETA;
* ``AlertsMonitor``: rules over all of the above, raised once, resolved after
  3 clean checks, stored with the job;
* ``StatusMonitor``: ``<store root>/jobs/<id>/status.json``, every 2 s at most.

Monitors work from a hand-written loop too (see each module), and
``acc.monitors.attach(recorder, monitors)`` wires them to a ``Recorder``.
A monitor that raises is disabled and recorded (``monitor.fault``, a
``"monitor_error"`` event, ``status.monitor_errors``); training goes on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from acc.monitors._base import MonitorBase, MonitorFault, attach
from acc.monitors.alerts import (
    SKIP,
    Alert,
    AlertContext,
    AlertsMonitor,
    AlertThresholds,
    Finding,
    Rule,
    Severity,
    create_alerts_manager,
)
from acc.monitors.fixed_eval import EvalResult, FixedEvalMonitor, heatmap_matrix, sliced_accuracy
from acc.monitors.gradients import (
    GradientMonitor,
    GradientThresholds,
    create_lora_monitor,
    layer_status,
    summarize_layers,
)
from acc.monitors.status import StatusMonitor, TrainingStatus, read_status, status_path, training_status
from acc.monitors.streaming import (
    StreamingMonitor,
    calibration_bins,
    create_streaming_tracker,
    debiased_ema,
    default_extractor,
    ece_from_bins,
    expected_calibration_error,
    token_entropy,
    trend,
    window_slope,
)
from acc.monitors.throughput import ThroughputMonitor, create_throughput_monitor, format_duration

if TYPE_CHECKING:
    from acc.events import RemovableHandle

__all__ = [
    "SKIP",
    "Alert",
    "AlertContext",
    "AlertThresholds",
    "AlertsMonitor",
    "EvalResult",
    "Finding",
    "FixedEvalMonitor",
    "GradientMonitor",
    "GradientThresholds",
    "Monitor",
    "MonitorBase",
    "MonitorFault",
    "Rule",
    "Severity",
    "StatusMonitor",
    "StreamingMonitor",
    "ThroughputMonitor",
    "TrainingStatus",
    "attach",
    "calibration_bins",
    "create_alerts_manager",
    "create_lora_monitor",
    "create_streaming_tracker",
    "create_throughput_monitor",
    "debiased_ema",
    "default_extractor",
    "default_monitors",
    "ece_from_bins",
    "expected_calibration_error",
    "format_duration",
    "heatmap_matrix",
    "layer_status",
    "read_status",
    "sliced_accuracy",
    "status_path",
    "summarize_layers",
    "token_entropy",
    "training_status",
    "trend",
    "window_slope",
]


class Monitor(Protocol):
    def attach(self, trainer: Any) -> RemovableHandle: ...


def default_monitors(*extra: Monitor) -> list[Monitor]:
    """The monitors a Trainer runs when ``monitors=`` is not given (fresh instances each call).

    ``extra`` monitors (e.g. a ``FixedEvalMonitor``) go before the alerts and
    the status file, so that both see their values in the same fetch.
    """
    return [
        GradientMonitor(),
        StreamingMonitor(),
        ThroughputMonitor(),
        *extra,
        AlertsMonitor(),
        StatusMonitor(),
    ]
