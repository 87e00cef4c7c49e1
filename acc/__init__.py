"""acc: a training cockpit that lives inside a Jupyter notebook.

The public names are listed in ``__all__``; see DESIGN.md for the map.
"""

import logging
from typing import TYPE_CHECKING, Any

from acc import monitors, tasks
from acc.capture import LogCapture, capture, follow
from acc.checkpoints import Checkpoint, CheckpointError, CheckpointNode, CheckpointStore
from acc.debug_controller import BreakpointError, DebugController
from acc.events import Event, RemovableHandle
from acc.logparse import LogParser, MetricRecord, parse_file, parse_lines
from acc.loss_health import (
    DEFAULT_THRESHOLDS,
    LossHealth,
    LossSummary,
    Thresholds,
    classify_loss,
    compute_loss_summary,
    infer_task_type,
    worst_health,
)
from acc.monitors import TrainingStatus
from acc.recorder import Recorder, step_info_to_records
from acc.state import StepInfo, TrainerState
from acc.store import JobRecord, JobStatus, RunStore, StoreError
from acc.tasks import Task, TaskError
from acc.trainer import Job, Trainer

if TYPE_CHECKING:  # the widgets are imported on first use (see __getattr__ below)
    from acc.widgets.dashboard import Dashboard
    from acc.widgets.debug_panel import DebugPanel
    from acc.widgets.heatmap import HeatmapWidget
    from acc.widgets.loss_chart import LossChart
    from acc.widgets.loss_health_panel import LossHealthPanel
    from acc.widgets.monitor_panel import MonitorPanel
    from acc.widgets.show import show
    from acc.widgets.trajectory import TrajectoryWidget

__version__ = "0.1.0"

# A library adds no handler but this one (Python's logging HOWTO): without it, Python's
# last-resort handler prints every warning (an alert, say) as stderr text into notebook
# cells. Alerts and errors are shown by the widgets and kept in the store; users who want
# the log lines configure logging themselves.
logging.getLogger("acc").addHandler(logging.NullHandler())

# Widgets pull in ipywidgets/anywidget/IPython (~0.2 s more than torch's ~1 s import):
# they load on first use, so scripts and the CLI that never show a widget do not pay for them.
_LAZY = {
    "Dashboard": "acc.widgets.dashboard",
    "DebugPanel": "acc.widgets.debug_panel",
    "HeatmapWidget": "acc.widgets.heatmap",
    "LossChart": "acc.widgets.loss_chart",
    "LossHealthPanel": "acc.widgets.loss_health_panel",
    "MonitorPanel": "acc.widgets.monitor_panel",
    "show": "acc.widgets.show",
    "TrajectoryWidget": "acc.widgets.trajectory",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'acc' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "DEFAULT_THRESHOLDS",
    "BreakpointError",
    "Checkpoint",
    "CheckpointError",
    "CheckpointNode",
    "CheckpointStore",
    "Dashboard",
    "DebugController",
    "DebugPanel",
    "Event",
    "HeatmapWidget",
    "Job",
    "JobRecord",
    "JobStatus",
    "LogCapture",
    "LogParser",
    "LossChart",
    "LossHealth",
    "LossHealthPanel",
    "LossSummary",
    "MetricRecord",
    "MonitorPanel",
    "Recorder",
    "RemovableHandle",
    "RunStore",
    "StepInfo",
    "StoreError",
    "Task",
    "TaskError",
    "Thresholds",
    "Trainer",
    "TrainerState",
    "TrainingStatus",
    "TrajectoryWidget",
    "__version__",
    "capture",
    "classify_loss",
    "compute_loss_summary",
    "follow",
    "infer_task_type",
    "monitors",
    "parse_file",
    "parse_lines",
    "show",
    "step_info_to_records",
    "tasks",
    "worst_health",
]
