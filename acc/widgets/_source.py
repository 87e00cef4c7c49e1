"""What a widget binds to: one "live source" interface over a Trainer, a Recorder, a Job or a stored job.

::

    source = as_source(trainer)           # or a Recorder, a Job, a LogCapture, a job id (+ store), a RunStore
    source.store, source.job_id, source.state, source.loss_summary()
    handle = source.on(Event.METRICS_FETCHED, fn)   # fn(state) in the training thread; handle.remove()

Every source has the same attributes, so a widget never asks what it was given:

* ``store`` (RunStore), ``job_id`` (the current or last job, or None),
  ``state`` (the live TrainerState, or None when nothing is live),
  ``trainer`` / ``debug_controller`` / ``checkpoints`` (or None);
* ``on(event, fn) -> RemovableHandle``: a no-op handle when nothing is live;
* ``loss_summary()``: the live job's per-task summaries, else the stored job's;
* ``run_state()``: ``idle``, ``running``, ``pausing``, ``paused``, ``stopped``
  or ``finished`` (the DOM's ``data-acc-field="state"`` vocabulary, plus
  ``idle`` before a trainer's first job);
* ``task_specs()``: ``{task: {"task_type", "thresholds", ...}}`` of the job,
  so stored values can be classified exactly as the live run did;
* ``owner``: the object the source was made from (``acc.show`` finds the
  widgets of a trainer through it).

Handlers registered with ``on`` run in the training thread: they must only
hand work to the update pump (``acc.widgets._pump``), never touch a widget.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from acc.checkpoints import CheckpointStore
from acc.events import Event, RemovableHandle
from acc.loss_health import LossSummary
from acc.recorder import Recorder, _default_store
from acc.state import TrainerState
from acc.store import JobRecord, JobStatus, RunStore
from acc.trainer import Job, Trainer

__all__ = [
    "JobSource",
    "LiveSource",
    "RecorderSource",
    "StoredSource",
    "TrainerSource",
    "as_source",
    "run_state_of_status",
]

log = logging.getLogger(__name__)

Handler = Callable[[TrainerState], Any]

RUN_STATES = ("idle", "running", "pausing", "paused", "stopped", "finished")


def run_state_of_status(status: str | None) -> str:
    """The DOM's state word for a job or trainer status (completed -> finished; failed/interrupted -> stopped)."""
    if status in (None, "idle"):
        return "idle"
    if status == JobStatus.RUNNING.value:
        return "running"
    if status == JobStatus.COMPLETED.value:
        return "finished"
    return "stopped"  # stopped, failed, interrupted


def _noop() -> None:
    return None


class LiveSource:
    """The interface every source implements (the base is a source with nothing live)."""

    kind = "none"

    def __init__(self, store: RunStore, owner: object) -> None:
        self.store = store
        self.owner = owner

    # -- what is bound --------------------------------------------------------
    @property
    def job_id(self) -> int | None:
        return None

    @property
    def state(self) -> TrainerState | None:
        return None

    @property
    def trainer(self) -> Trainer | None:
        return None

    @property
    def debug_controller(self) -> Any:
        return None

    @property
    def checkpoints(self) -> CheckpointStore | None:
        return None

    @property
    def is_live(self) -> bool:
        """True when events may still arrive (a trainer can start jobs; a recorder or job may be running)."""
        return False

    @property
    def name(self) -> str:
        """The job's (or trainer's) name for headings."""
        job_id = self.job_id
        if job_id is None:
            return ""
        try:
            return self.store.job(job_id).name
        except KeyError:
            return ""

    # -- reading ---------------------------------------------------------------
    def on(self, event: Event | str, fn: Handler) -> RemovableHandle:
        """Call ``fn(state)`` at ``event`` (training thread); a no-op handle when nothing is live."""
        Event(event)  # an unknown event name raises ValueError, live or not
        return RemovableHandle(_noop)

    def loss_summary(self) -> dict[str, LossSummary]:
        job_id = self.job_id
        if job_id is None:
            return {}
        try:
            return self.store.loss_summary(job_id)
        except KeyError:
            return {}

    def job_record(self) -> JobRecord | None:
        job_id = self.job_id
        if job_id is None:
            return None
        try:
            return self.store.job(job_id)
        except KeyError:
            return None

    def run_state(self) -> str:
        record = self.job_record()
        return run_state_of_status(record.status.value if record is not None else None)

    def task_specs(self) -> dict[str, dict[str, Any]]:
        record = self.job_record()
        tasks = record.config.get("tasks", {}) if record is not None else {}
        return {str(k): dict(v) for k, v in tasks.items()} if isinstance(tasks, Mapping) else {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(job_id={self.job_id}, store={self.store!r})"


class StoredSource(LiveSource):
    """A job in a store: history only, nothing live (also what a kernel restart leaves you)."""

    kind = "stored"

    def __init__(self, store: RunStore, job_id: int | None, owner: object = None) -> None:
        super().__init__(store, owner if owner is not None else job_id)
        if job_id is not None:
            store.job(job_id)  # raises KeyError naming the job and the database when it is not there
        self._job_id = job_id
        folder = store.root / "checkpoints"
        self._checkpoints = CheckpointStore(folder) if folder.is_dir() else None

    @property
    def job_id(self) -> int | None:
        return self._job_id

    @property
    def checkpoints(self) -> CheckpointStore | None:
        return self._checkpoints


class TrainerSource(LiveSource):
    """A Trainer: its current (or last) job, and every job it starts later."""

    kind = "trainer"

    def __init__(self, trainer: Trainer) -> None:
        super().__init__(trainer.store, trainer)
        self._trainer = trainer

    @property
    def job_id(self) -> int | None:
        job = self._trainer.job
        return job.id if job is not None else None

    @property
    def state(self) -> TrainerState:
        return self._trainer.state

    @property
    def trainer(self) -> Trainer:
        return self._trainer

    @property
    def debug_controller(self) -> Any:
        # the running job's controller (trainer.start(debug_controller=...)) first, else the trainer's own
        return self._trainer._dbg or self._trainer.debug_controller

    @property
    def checkpoints(self) -> CheckpointStore:
        return self._trainer.checkpoints

    @property
    def is_live(self) -> bool:
        return True

    @property
    def name(self) -> str:
        return self._trainer.state.job_name or self._trainer.name

    def on(self, event: Event | str, fn: Handler) -> RemovableHandle:
        return self._trainer.on(event, fn)

    def loss_summary(self) -> dict[str, LossSummary]:
        return self._trainer.loss_summary()

    def run_state(self) -> str:
        trainer = self._trainer
        job = trainer.job
        if job is None:
            return "idle"
        if trainer.state.status != "running":  # ended (the recorder sets it before JOB_ENDED fires)
            return run_state_of_status(trainer.state.status)
        if not job.done():
            dbg = self.debug_controller
            if dbg is not None and hasattr(dbg, "get_state"):
                state = str(dbg.get_state().get("state", "running"))
                if state in RUN_STATES:
                    return state
            return "stopped" if trainer.stopping else "running"
        return run_state_of_status(job.status)

    def task_specs(self) -> dict[str, dict[str, Any]]:
        return {name: task.describe() for name, task in self._trainer.tasks.items()}


class JobSource(TrainerSource):
    """One job of a Trainer: live while it runs; events of the trainer's later jobs are not passed on."""

    kind = "job"

    def __init__(self, job: Job) -> None:
        super().__init__(job.trainer)
        self.owner = job
        self._job = job

    @property
    def job_id(self) -> int:
        return self._job.id

    @property
    def is_live(self) -> bool:
        return not self._job.done()

    @property
    def name(self) -> str:
        return self._job.name

    def on(self, event: Event | str, fn: Handler) -> RemovableHandle:
        job_id = self._job.id

        def only_this_job(state: TrainerState) -> Any:
            if state.job_id == job_id:
                return fn(state)
            return None

        return self._trainer.on(event, only_this_job)

    def loss_summary(self) -> dict[str, LossSummary]:
        return self._job.loss_summary()

    def run_state(self) -> str:
        if self._trainer.job is self._job:
            return super().run_state()
        return run_state_of_status(self._job.status)


class RecorderSource(LiveSource):
    """A Recorder: a hand-written loop, or a job captured from logs (``acc.capture``)."""

    kind = "recorder"

    def __init__(self, recorder: Recorder, owner: object = None) -> None:
        super().__init__(recorder.store, owner if owner is not None else recorder)
        self.recorder = recorder

    @property
    def job_id(self) -> int | None:
        return self.recorder.job_id

    @property
    def state(self) -> TrainerState:
        return self.recorder.state

    @property
    def is_live(self) -> bool:
        return not self.recorder._closed

    @property
    def name(self) -> str:
        return self.recorder.name

    def on(self, event: Event | str, fn: Handler) -> RemovableHandle:
        return self.recorder.on(event, fn)

    def loss_summary(self) -> dict[str, LossSummary]:
        return self.recorder.loss_summary()

    def run_state(self) -> str:
        if self.recorder.job_id is None:
            return "idle"
        return run_state_of_status(self.recorder.state.status)

    def task_specs(self) -> dict[str, dict[str, Any]]:
        return {name: task.describe() for name, task in self.recorder.tasks.items()}


def as_source(obj: object, store: RunStore | None = None) -> LiveSource:
    """The live source for ``obj``.

    ``obj`` may be a Trainer, a Job, a Recorder, anything with a ``recorder``
    attribute holding a Recorder (a log capture), a job id or JobRecord (read
    from ``store``, default: the default store), a RunStore (its newest job),
    or a LiveSource (returned as it is). ``store`` only applies to stored jobs.
    """
    if isinstance(obj, LiveSource):
        return obj
    live: LiveSource | None = None
    if isinstance(obj, Trainer):
        live = TrainerSource(obj)
    elif isinstance(obj, Job):
        live = JobSource(obj)
    elif isinstance(obj, Recorder):
        live = RecorderSource(obj)
    elif isinstance(getattr(obj, "recorder", None), Recorder):
        live = RecorderSource(obj.recorder, owner=obj)  # type: ignore[attr-defined]
    if live is not None:
        if store is not None and store is not live.store:
            raise ValueError(
                f"store= applies to stored jobs only: this {type(obj).__name__} records to {live.store!r}, "
                f"not {store!r}"
            )
        return live
    if isinstance(obj, RunStore):
        if store is not None and store is not obj:
            raise ValueError("give the store once: as_source(store) or as_source(job_id, store=store)")
        newest = obj.jobs(limit=1)
        return StoredSource(obj, newest[0].id if newest else None, owner=obj)
    if obj is None and store is not None:
        return as_source(store)
    if isinstance(obj, JobRecord):
        return StoredSource(store if store is not None else _default_store(), obj.id)
    if isinstance(obj, int) and not isinstance(obj, bool):
        return StoredSource(store if store is not None else _default_store(), obj)
    raise TypeError(
        "a widget needs a Trainer, Job, Recorder, log capture, job id (with store=) or RunStore, "
        f"got {type(obj).__name__}"
    )
