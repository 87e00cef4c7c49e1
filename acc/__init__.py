"""acc: a training cockpit that lives inside a Jupyter notebook.

The public names are listed in ``__all__``; see DESIGN.md for the map.
"""

from acc import tasks
from acc.capture import LogCapture, capture, follow
from acc.checkpoints import Checkpoint, CheckpointError, CheckpointNode, CheckpointStore
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
from acc.recorder import Recorder, step_info_to_records
from acc.state import StepInfo, TrainerState
from acc.store import JobRecord, JobStatus, RunStore, StoreError
from acc.tasks import Task, TaskError
from acc.trainer import Job, Trainer

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_THRESHOLDS",
    "Checkpoint",
    "CheckpointError",
    "CheckpointNode",
    "CheckpointStore",
    "Event",
    "Job",
    "JobRecord",
    "JobStatus",
    "LogCapture",
    "LogParser",
    "LossHealth",
    "LossSummary",
    "MetricRecord",
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
    "__version__",
    "capture",
    "classify_loss",
    "compute_loss_summary",
    "follow",
    "infer_task_type",
    "parse_file",
    "parse_lines",
    "step_info_to_records",
    "tasks",
    "worst_health",
]
