"""Recorder: per-step losses -> batched host fetch -> health, summaries, store, subscribers.

The Trainer records through it, and so can a hand-written loop::

    rec = acc.Recorder(tasks={"recon": "reconstruction", "kl": "kl"}, name="my-vae")
    with rec:                                   # the job ends "completed", or "failed" on an exception
        for step, batch in enumerate(loader, 1):
            ...
            rec.record(step, losses={"recon": recon, "kl": kl}, lr=opt.param_groups[0]["lr"])
    rec.loss_summary()

Loss values may be device tensors: they stay on the device and are fetched in
one transfer every ``fetch_every`` steps (or after ``max_fetch_interval``
seconds, so a slow loop still reaches the store within a second). Health and
summaries are computed on the fetched values.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from typing import Any

import torch

from acc.events import Event, Hooks, RemovableHandle
from acc.loss_health import LossHealth, LossSummary, LossSummaryAccumulator, worst_health
from acc.state import StepInfo, TrainerState
from acc.store import JobStatus, RunStore, loss_series_name
from acc.tasks import Task, as_task

__all__ = ["Recorder", "step_info_to_records"]

log = logging.getLogger(__name__)

Number = float | int | torch.Tensor

# The names of the standard series in the store.
TOTAL_LOSS = "loss"
LEARNING_RATE = "learning_rate"
GRAD_NORM = "grad_norm"


def step_info_to_records(info: StepInfo) -> list[dict[str, Any]]:
    """One step info -> the seed's per-task loss records ``{"step", "task_name", "task_type", "loss", "health"}``."""
    return [
        {
            "step": info["step"],
            "task_name": name,
            "task_type": info["task_type"][name],
            "loss": value,
            "health": info["health"][name],
        }
        for name, value in info["losses"].items()
    ]


class _Pending:
    """One recorded step waiting for the next fetch."""

    __slots__ = ("epoch", "extra", "grad_norm", "has_total", "losses", "lr", "step", "total", "wall_time")

    def __init__(
        self,
        step: int,
        epoch: int | None,
        wall_time: float,
        losses: dict[str, Number],
        total: Number | None,
        lr: Number | None,
        grad_norm: Number | None,
        extra: dict[str, Number],
        has_total: bool = True,
    ) -> None:
        self.step = step
        self.epoch = epoch
        self.wall_time = wall_time
        self.losses = losses
        self.total = total
        self.lr = lr
        self.grad_norm = grad_norm
        self.extra = extra
        self.has_total = has_total


def _fetch(values: list[Number]) -> list[float]:
    """Host floats for a list of numbers and 0-d tensors: one device->host copy per device."""
    out: list[float] = [0.0] * len(values)
    by_device: dict[torch.device, tuple[list[int], list[torch.Tensor]]] = {}
    for i, v in enumerate(values):
        if isinstance(v, torch.Tensor):
            idx, tensors = by_device.setdefault(v.device, ([], []))
            idx.append(i)
            t = v.detach().reshape(())
            tensors.append(t if t.dtype == torch.float64 else t.double())
        else:
            out[i] = float(v)
    for idx, tensors in by_device.values():
        host = torch.stack(tensors).tolist()  # the one device->host copy per device per fetch
        for i, x in zip(idx, host, strict=True):
            out[i] = x
    return out


class Recorder:
    """Records a job's steps: health, live summaries, the store and subscribers.

    ``Recorder(tasks=None, *, store=None, name=None, fetch_every=50,
    max_fetch_interval=0.5, config=None)``. ``tasks`` maps task names to a Task
    or a type name; a loss under a name that is not declared gets the type its
    name suggests (see ``acc.loss_health.infer_task_type``).
    """

    def __init__(
        self,
        tasks: Mapping[str, Task | str] | None = None,
        *,
        store: RunStore | None = None,
        name: str | None = None,
        fetch_every: int = 50,
        max_fetch_interval: float = 0.5,
        config: Mapping[str, Any] | None = None,
        kind: str = "train",
        hooks: Hooks[TrainerState] | None = None,
        state: TrainerState | None = None,
    ) -> None:
        if fetch_every < 1:
            raise ValueError(f"fetch_every must be >= 1, got {fetch_every}")
        self.tasks: dict[str, Task] = {k: as_task(v) for k, v in (tasks or {}).items()}
        self.store = store if store is not None else _default_store()
        self.name = name or "job"
        self.fetch_every = int(fetch_every)
        self.max_fetch_interval = float(max_fetch_interval)
        self.config = dict(config or {})
        self.kind = kind
        self.hooks: Hooks[TrainerState] = hooks if hooks is not None else Hooks()
        self.state = state if state is not None else TrainerState()
        self.job_id: int | None = None
        self._pending: list[_Pending] = []
        self._last_fetch = time.monotonic()
        self._summaries: dict[str, LossSummaryAccumulator] = {}
        self._lock = threading.Lock()
        self._closed = False
        self.n_fetches = 0

    # -- lifecycle ---------------------------------------------------------

    def start(self, *, notify: bool = True) -> int:
        """Create the job in the store (done by the first ``record`` if not called).

        ``notify=False`` leaves firing JOB_STARTED to the caller (the Trainer
        creates the job in the caller's thread and fires it in the training thread).
        """
        if self.job_id is not None:
            return self.job_id
        config = {**self.config, "tasks": {k: t.describe() for k, t in self.tasks.items()}}
        self.job_id = self.store.create_job(self.name, config=config, kind=self.kind)
        self.state.job_id = self.job_id
        self.state.job_name = self.name
        self.state.status = "running"
        self.state.started_at = time.time()
        self._last_fetch = time.monotonic()
        if notify:
            self.hooks.fire(Event.JOB_STARTED, self.state)
        return self.job_id

    def close(
        self, status: JobStatus | str = JobStatus.COMPLETED, *, error: str | None = None, reason: str | None = None
    ) -> None:
        """Fetch what is pending, store the final summary and end the job."""
        if self._closed:
            return
        if self.job_id is None:
            self.start()
        assert self.job_id is not None
        try:
            self.flush()
        finally:
            self._closed = True
            status = JobStatus(status)
            self.state.status = status.value
            self.state.ended_at = time.time()
            self.store.finish_job(
                self.job_id,
                status,
                error=error,
                reason=reason,
                summary=self.loss_summary(),
                last_step=self.state.step or None,
            )
            self.hooks.fire(Event.JOB_ENDED, self.state)

    def __enter__(self) -> Recorder:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if exc is None:
            self.close(JobStatus.COMPLETED)
        elif isinstance(exc, KeyboardInterrupt):
            self.close(JobStatus.STOPPED, reason="interrupted by the user (KeyboardInterrupt)")
        else:
            self.close(JobStatus.FAILED, error="".join(traceback.format_exception(exc_type, exc, tb)))

    # -- recording ---------------------------------------------------------

    def record(
        self,
        step: int,
        losses: Mapping[str, Number],
        *,
        total: Number | None = None,
        lr: Number | None = None,
        grad_norm: Number | None = None,
        epoch: int | None = None,
        wall_time: float | None = None,
        metrics: Mapping[str, Number] | None = None,
        log_total: bool = True,
    ) -> list[StepInfo] | None:
        """Record one step. Returns the fetched step infos when this call fetched, else None.

        ``losses`` are per-task values (tensors stay on the device until the
        fetch); ``total`` defaults to the weighted sum of ``losses``;
        ``metrics`` are any other per-step values to store by name.

        ``losses`` may be empty for a step that carries only other values (a
        log line with only a learning rate): no total loss is stored for it
        then, unless ``total`` is given. ``log_total=False`` stores no total for
        the step (a log line with only an evaluation loss); its step info's
        ``"loss"`` is None.
        """
        if self._closed:
            raise RuntimeError(f"job {self.job_id} of recorder {self.name!r} is closed; create a new Recorder")
        if self.job_id is None:
            self.start()
        if not losses and total is None and lr is None and grad_norm is None and not metrics:
            raise ValueError("record() needs at least one value: a loss, total, lr, grad_norm or a metric")
        self._pending.append(
            _Pending(
                int(step),
                epoch,
                time.time() if wall_time is None else wall_time,
                dict(losses),
                total,
                lr,
                grad_norm,
                dict(metrics) if metrics else {},
                log_total and (total is not None or bool(losses)),
            )
        )
        self.state.step = int(step)
        if epoch is not None:
            self.state.epoch = epoch
        if len(self._pending) >= self.fetch_every or time.monotonic() - self._last_fetch >= self.max_fetch_interval:
            return self.flush()
        return None

    def flush(self) -> list[StepInfo]:
        """Fetch every pending step now (one transfer), update health and summaries, store, notify."""
        self._last_fetch = time.monotonic()
        pending, self._pending = self._pending, []
        if not pending:
            return []
        flat: list[Number] = []
        for p in pending:
            flat.extend(p.losses.values())
            flat.append(p.total if p.total is not None else 0.0)
            flat.append(p.lr if p.lr is not None else math.nan)
            flat.append(p.grad_norm if p.grad_norm is not None else math.nan)
            flat.extend(p.extra.values())
        host = iter(_fetch(flat))
        infos: list[StepInfo] = []
        points: list[tuple[str, int, float, float]] = []
        with self._lock:
            for p in pending:
                losses = {name: next(host) for name in p.losses}
                total = next(host)
                if p.total is None:
                    total = sum(self._task(n).weight * v for n, v in losses.items())
                lr, grad_norm = next(host), next(host)
                extra = {name: next(host) for name in p.extra}
                health: dict[str, str] = {}
                types: dict[str, str] = {}
                for name, value in losses.items():
                    task = self._task(name)
                    acc = self._summaries.get(name)
                    if acc is None:
                        acc = self._summaries[name] = LossSummaryAccumulator(name, task.task_type, task.thresholds)
                    acc.add(value, p.step)
                    health[name] = task.classify(name, value).value
                    types[name] = task.task_type
                    points.append((loss_series_name(name), p.step, value, p.wall_time))
                if p.has_total:
                    points.append((TOTAL_LOSS, p.step, total, p.wall_time))
                if p.lr is not None:
                    points.append((LEARNING_RATE, p.step, lr, p.wall_time))
                if p.grad_norm is not None:
                    points.append((GRAD_NORM, p.step, grad_norm, p.wall_time))
                points.extend((name, p.step, v, p.wall_time) for name, v in extra.items())
                infos.append(
                    {
                        "step": p.step,
                        "epoch": p.epoch,
                        "wall_time": p.wall_time,
                        "loss": total if p.has_total else None,
                        "losses": losses,
                        "health": health,
                        "task_type": types,
                        "overall_health": worst_health(health.values()).value,
                        "lr": lr if p.lr is not None else None,
                        "grad_norm": grad_norm if p.grad_norm is not None else None,
                        "metrics": extra,
                    }
                )
        assert self.job_id is not None
        self.store.log_points(self.job_id, points)
        self.n_fetches += 1
        self.state.fetched = infos
        self.state.last_info = infos[-1]
        self.hooks.fire(Event.METRICS_FETCHED, self.state)
        return infos

    def _task(self, name: str) -> Task:
        task = self.tasks.get(name)
        if task is None:
            # An undeclared loss: its name decides its type (custom if it says nothing).
            from acc.loss_health import infer_task_type

            task = self.tasks[name] = Task(task_type=infer_task_type(name))
        return task

    # -- reading -----------------------------------------------------------

    def loss_summary(self) -> dict[str, LossSummary]:
        """Per-task summaries over the fetched steps (at most ``fetch_every`` steps behind)."""
        with self._lock:
            return {name: acc.summary() for name, acc in self._summaries.items()}

    def overall_health(self) -> LossHealth:
        return worst_health(s.health for s in self.loss_summary().values())

    def on(self, event: Event | str, handler: Callable[[TrainerState], Any]) -> RemovableHandle:
        """Subscribe to JOB_STARTED, METRICS_FETCHED or JOB_ENDED of this recorder's job."""
        return self.hooks.on(event, handler)


_DEFAULT_STORES: dict[str, RunStore] = {}
_DEFAULT_LOCK = threading.Lock()


def _default_store() -> RunStore:
    """One shared store per default path in a process ($ACC_HOME or ./acc_runs)."""
    from acc.store import default_root

    key = str(default_root().resolve())
    with _DEFAULT_LOCK:
        store = _DEFAULT_STORES.get(key)
        if store is None or store._closed:
            store = _DEFAULT_STORES[key] = RunStore(key)
        return store
