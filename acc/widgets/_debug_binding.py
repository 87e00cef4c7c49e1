"""What the debugger widgets (DebugPanel, HeatmapWidget, TrajectoryWidget) bind to.

A debugger widget needs a ``DebugController``. It finds one through anything
``as_source`` accepts (a Trainer, a Job, a LiveSource: their
``debug_controller``), or is given the controller itself (a hand-written loop
steered with ``dbg.loop(...)``/``dbg.wait_if_paused()``)::

    binding = DebugBinding(trainer)        # or a Job, a LiveSource, a DebugController
    binding.controller.get_state()
    binding.run_state(state)               # idle/running/pausing/paused/stopped/finished

A Trainer's controller is looked up on every use: ``trainer.start(debug_controller=other)``
steers that job with ``other``, and the widgets follow it.
"""

from __future__ import annotations

from typing import Any

from acc.debug_controller import DebugController
from acc.events import Event, RemovableHandle
from acc.store import RunStore
from acc.widgets._source import RUN_STATES, LiveSource, as_source

__all__ = ["DebugBinding"]


def _noop() -> None:
    return None


class DebugBinding:
    """A DebugController and, when there is one, the live source (trainer, job) it steers."""

    def __init__(self, obj: object, store: RunStore | None = None, *, what: str = "a debugger widget") -> None:
        if isinstance(obj, DebugController):
            if store is not None:
                raise ValueError("store= applies to stored jobs only, not to a DebugController")
            self.source: LiveSource | None = None
            self._fixed: DebugController = obj
            return
        source = as_source(obj, store)
        controller = source.debug_controller
        if not isinstance(controller, DebugController):
            raise ValueError(
                f"{what} needs a DebugController: build the trainer with "
                "acc.Trainer(..., debug_controller=acc.DebugController(feature_param=...)), "
                f"or pass the controller itself; {type(obj).__name__} has none"
            )
        self.source = source
        self._fixed = controller

    @property
    def controller(self) -> DebugController:
        """The controller steering the source's current job (the one it was built with otherwise)."""
        if self.source is not None:
            live = self.source.debug_controller
            if isinstance(live, DebugController):
                return live
        return self._fixed

    @property
    def owner(self) -> object:
        """What the widget was made for (``acc.show`` finds widgets through it)."""
        return self.source.owner if self.source is not None else self._fixed

    def on(self, event: Event, fn: Any) -> RemovableHandle:
        """``fn(state)`` at ``event`` of the source's trainer/job; a no-op handle for a bare controller."""
        if self.source is None:
            return RemovableHandle(_noop)
        handler: Any = fn
        return self.source.on(event, handler)

    def run_state(self, state: dict[str, Any]) -> str:
        """The DOM's state word, from the controller's ``get_state()`` (and the trainer's status once it ended).

        ``idle`` before the first job. A Trainer's own status wins once the job
        ended (it is set before JOB_ENDED fires, while the controller still
        holds the loop), so ``job.wait()`` never returns with "running" on screen.
        """
        if self.source is not None and self.source.trainer is not None:
            word = self.source.run_state()
            if word in RUN_STATES:
                return word
        if state.get("loop") is None and state.get("job_status") is None:
            return "idle"
        word = str(state.get("state") or "idle")
        return word if word in RUN_STATES else "running"

    def ended(self, state: dict[str, Any]) -> dict[str, Any]:
        """Corrections for a trainer's job that ended while the controller still holds its loop.

        The Trainer sets its status and stop reason before JOB_ENDED fires; the
        controller lets go of the loop just after. In between (when the widgets
        flush their last update) the trainer knows better: its status, reason
        and error replace the controller's. ``{}`` otherwise.
        """
        trainer = self.source.trainer if self.source is not None else None
        if trainer is None or state.get("job_status") != "running":
            return {}
        ts = trainer.state
        if ts.status == "running" or ts.job_id != state.get("job_id"):
            return {}
        error = ts.error
        return {
            "job_status": ts.status,
            "reason": ts.stop_reason,
            "error": f"{type(error).__name__}: {error}" if error is not None else None,
            "paused": False,
            "pending": None,
            "steps_left": None,
        }
