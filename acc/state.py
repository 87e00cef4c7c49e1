"""TrainerState: the one object where handlers read the step, the epoch and the losses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from acc.checkpoints import Checkpoint

__all__ = ["StepInfo", "TrainerState"]

# One step's host values, as handed to METRICS_FETCHED handlers and widgets:
# {"step", "epoch", "wall_time", "loss" (weighted total), "losses": {task: value},
#  "health": {task: "healthy"|"warning"|"critical"}, "task_type": {task: type},
#  "overall_health", "lr", "grad_norm", "metrics": {other name: value}}
StepInfo = dict[str, Any]


@dataclass
class TrainerState:
    """Live state of a trainer (or of a hand-written loop's Recorder).

    Device fields (``batch``, ``outputs``, ``losses``, ``total_loss``,
    ``grad_norm``) describe the step in progress and hold tensors: never call
    ``.item()`` on them in a per-step handler. Host fields (``fetched``,
    ``last_info``) hold plain numbers from the last batched fetch.
    """

    job_id: int | None = None
    job_name: str | None = None
    status: str = "idle"
    """idle, running, completed, failed or stopped."""
    step: int = 0
    """Optimizer steps taken so far (the number of the step just completed)."""
    epoch: int = 0
    max_steps: int | None = None
    """The step at which the running job ends, when known."""
    batch: Any = None
    outputs: Any = None
    losses: dict[str, torch.Tensor] = field(default_factory=dict)
    total_loss: torch.Tensor | None = None
    grad_norm: torch.Tensor | None = None
    fetched: list[StepInfo] = field(default_factory=list)
    """The step infos of the latest METRICS_FETCHED."""
    last_info: StepInfo | None = None
    """The newest step info on the host."""
    last_checkpoint: Checkpoint | None = None
    started_at: float | None = None
    ended_at: float | None = None
    error: BaseException | None = None
    stop_reason: str | None = None
