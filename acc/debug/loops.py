"""What the controller needs from the loop it steers: a Trainer's job, or a hand-written loop."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import torch

from acc.debug.batch import CapturedBatch, loss_values
from acc.loss_health import classify_loss, worst_health
from acc.state import StepInfo

if TYPE_CHECKING:
    from acc.trainer import Trainer

__all__ = ["LoopView", "ManualLoop", "TrainerLoop", "describe_error", "loop_summary"]


class LoopView:
    """The loop as the controller sees it (the base class is a hand-written loop with nothing known)."""

    kind = "loop"
    model: torch.nn.Module | None = None
    optimizer: torch.optim.Optimizer | None = None
    fetch_every = 50

    def step(self) -> int:
        raise NotImplementedError

    def took_step(self) -> bool:
        """False at a pause point before the job's first step."""
        return True

    def stopping(self) -> bool:
        return False

    def run_pending(self) -> None:
        """Serve requests queued for the loop's thread (checkpoint saves)."""

    def request_stop(self, reason: str) -> None:
        """Ask the loop to end."""

    def batch(self, step: int) -> CapturedBatch | None:
        """References to the batch of the step just taken, if the loop knows it."""
        return None

    def infos_after(self, step: int) -> list[StepInfo]:
        """Host step infos of the steps after ``step`` up to now (may fetch from the device)."""
        return []

    def pause_info(self, step: int) -> StepInfo | None:
        """The host step info of ``step`` at a pause (fetches what is pending)."""
        return None

    def last_info(self) -> StepInfo | None:
        return None

    @property
    def job_id(self) -> int | None:
        return None

    @property
    def max_steps(self) -> int | None:
        return None

    @property
    def job_name(self) -> str | None:
        return None


class TrainerLoop(LoopView):
    """A Trainer's running job."""

    kind = "trainer"

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer
        self.model = trainer.model
        self.optimizer = trainer.optimizer
        self.fetch_every = trainer.fetch_every
        self.start_step = trainer.state.step

    def step(self) -> int:
        return self.trainer.state.step

    def took_step(self) -> bool:
        return self.trainer.state.step > self.start_step

    def stopping(self) -> bool:
        return self.trainer.stopping

    def run_pending(self) -> None:
        self.trainer._run_pending()

    def request_stop(self, reason: str) -> None:
        self.trainer._request_stop(reason)

    def batch(self, step: int) -> CapturedBatch | None:
        st = self.trainer.state
        if st.batch is None:
            return None
        return CapturedBatch(step, st.batch, st.total_loss, dict(st.losses))

    def infos_after(self, step: int) -> list[StepInfo]:
        recorder = self.trainer.recorder
        if recorder is None:
            return []
        infos = recorder.flush()  # the one host sync of this step (value breakpoints only)
        if not infos:  # record() fetched this step itself (a fetch_every boundary)
            infos = self.trainer.state.fetched
        return [i for i in infos if i.get("step", 0) > step]

    def pause_info(self, step: int) -> StepInfo | None:
        recorder = self.trainer.recorder
        if recorder is not None and not recorder._closed:
            recorder.flush()
        info = self.trainer.state.last_info
        return info if info is not None and info.get("step") == step else None

    def last_info(self) -> StepInfo | None:
        return self.trainer.state.last_info

    @property
    def job_id(self) -> int | None:
        return self.trainer.state.job_id

    @property
    def max_steps(self) -> int | None:
        return self.trainer.state.max_steps

    @property
    def job_name(self) -> str | None:
        return self.trainer.state.job_name


class ManualLoop(LoopView):
    """A hand-written loop that calls ``dbg.wait_if_paused()`` once per step, after the optimizer step.

    Its step number is the one given to ``wait_if_paused(step)``, else the
    step of this step's ``capture_batch``, else one more than the last.
    """

    kind = "manual"

    def __init__(
        self,
        model: torch.nn.Module | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        name: str | None = None,
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.name = name
        self.implicit = False
        """True when bound by a first ``wait_if_paused()`` outside ``dbg.loop()``."""
        self.thread = threading.current_thread()
        self.current = 0
        self.captured: CapturedBatch | None = None
        self._info: StepInfo | None = None

    def begin(self, explicit: int | None, captured: CapturedBatch | None) -> None:
        """Called at each served pause point with this step's capture (if any)."""
        if explicit is not None:
            self.current = int(explicit)
        elif captured is not None and captured.step is not None:
            self.current = int(captured.step)
        else:
            self.current += 1
        self.captured = captured
        self._info = None

    def step(self) -> int:
        return self.current

    def batch(self, step: int) -> CapturedBatch | None:
        return self.captured

    def _info_now(self) -> StepInfo | None:
        if self._info is not None:
            return self._info
        cap = self.captured
        if cap is None or (cap.loss is None and not cap.losses):
            return None
        total, losses = loss_values(cap.loss, cap.losses)  # one fetch
        health = {name: classify_loss(name, value).value for name, value in losses.items()}
        self._info = {
            "step": self.current,
            "loss": total,
            "losses": losses,
            "health": health,
            "overall_health": worst_health(health.values()).value if health else None,
        }
        return self._info

    def infos_after(self, step: int) -> list[StepInfo]:
        info = self._info_now()
        return [info] if info is not None and info["step"] > step else []

    def pause_info(self, step: int) -> StepInfo | None:
        return self._info_now()

    def last_info(self) -> StepInfo | None:
        return self._info

    @property
    def job_name(self) -> str | None:
        return self.name


def describe_error(exc: BaseException | None) -> str | None:
    if exc is None:
        return None
    return f"{type(exc).__name__}: {exc}"


def loop_summary(loop: LoopView | None) -> dict[str, Any]:
    if loop is None:
        return {"loop": None, "job_id": None, "job_name": None, "max_steps": None}
    return {"loop": loop.kind, "job_id": loop.job_id, "job_name": loop.job_name, "max_steps": loop.max_steps}
