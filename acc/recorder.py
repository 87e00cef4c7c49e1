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
from typing import Any, cast

import numpy as np
import torch

from acc._stacked import StackedSteps
from acc.events import Event, Hooks, RemovableHandle
from acc.loss_health import (
    DEFAULT_THRESHOLDS,
    LossHealth,
    LossSummary,
    LossSummaryAccumulator,
    health_codes,
    worst_health,
)
from acc.state import StepInfo, TrainerState
from acc.store import LOSS_PREFIX, JobStatus, RunStore
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
    """One recorded step waiting for the next fetch.

    ``values`` holds the step's numbers in a fixed order (losses, total, lr,
    grad norm, metrics); a device value sits there as NaN until the fetch and
    ``slots`` says where it was staged: ``(index in values, buffer, row, column)``.
    """

    __slots__ = ("epoch", "extra_names", "has_grad_norm", "has_lr", "has_total", "loss_names", "slots",
                 "step", "total_given", "values", "wall_time")  # fmt: skip

    def __init__(
        self,
        step: int,
        epoch: int | None,
        wall_time: float,
        loss_names: list[str],
        values: list[float],
        slots: list[tuple[int, _StagingBuffer, int, int]],
        extra_names: list[str],
        *,
        total_given: bool,
        has_total: bool,
        has_lr: bool,
        has_grad_norm: bool,
    ) -> None:
        self.step = step
        self.epoch = epoch
        self.wall_time = wall_time
        self.loss_names = loss_names
        self.values = values
        self.slots = slots
        self.extra_names = extra_names
        self.total_given = total_given
        self.has_total = has_total
        self.has_lr = has_lr
        self.has_grad_norm = has_grad_norm


class _StagingBuffer:
    """Device values of pending steps, one row per step, in one preallocated tensor (``record``'s path).

    Each step's values are copied in with one ``torch.stack(..., out=row)``,
    whatever their devices, dtypes and number; one buffer per (device, dtype,
    values per step), with its row views made once. The Trainer, whose losses
    are one stacked tensor already, keeps that tensor instead (``acc._stacked``).
    """

    def __init__(self, device: torch.device, dtype: torch.dtype, rows: int, width: int) -> None:
        self.device, self.dtype, self.width = device, dtype, width
        self.used = 0
        self._allocate(max(rows, 1))

    def _allocate(self, rows: int) -> None:
        old = getattr(self, "data", None)
        self.data = torch.empty((rows, self.width), device=self.device, dtype=self.dtype)
        if old is not None and self.used:
            self.data[: self.used] = old[: self.used]
        self._rows = list(self.data.unbind(0))

    def put(self, tensors: list[torch.Tensor]) -> int:
        """Copy one step's values (0-d tensors, ``width`` of them) into the next row; returns the row."""
        if self.used == len(self._rows):  # a fetch is overdue (or fetch_every is huge): grow
            self._allocate(2 * len(self._rows))
        row = self.used
        with torch.no_grad():  # a copy of the values: no graph is recorded or kept
            torch.stack(tensors, out=self._rows[row])
        self.used = row + 1
        return row


def _fetch(buffers: list[_StagingBuffer]) -> dict[int, list[list[float]]]:
    """The staged rows of each buffer as Python floats: one device->host copy per device.

    A device's buffers (one per dtype and row width) are joined into one flat
    tensor first (as float64 when their dtypes differ: exact for every float
    type) so that the fetch makes a single transfer per device. ``tolist()``
    turns float32/bf16 into Python floats exactly.
    """
    by_device: dict[torch.device, list[_StagingBuffer]] = {}
    for b in buffers:
        if b.used:
            by_device.setdefault(b.device, []).append(b)
    rows: dict[int, list[list[float]]] = {}
    with torch.no_grad():
        for group in by_device.values():
            parts = [b.data[: b.used].reshape(-1) for b in group]
            if len(parts) > 1 and len({p.dtype for p in parts}) > 1:
                parts = [p.double() for p in parts]
            flat = (parts[0] if len(parts) == 1 else torch.cat(parts)).tolist()  # the one copy per device
            offset = 0
            for b in group:
                n = b.used * b.width
                values = flat[offset : offset + n]
                rows[id(b)] = [values[r * b.width : (r + 1) * b.width] for r in range(b.used)]
                offset += n
    return rows


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
        self._stacked: StackedSteps | None = None  # the Trainer's steps (see _record_stacked)
        self._buffers: dict[tuple[torch.device, torch.dtype, int], _StagingBuffer] = {}
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
        if self._stacked:  # steps the Trainer recorded stacked go first: steps stay in order
            self.flush()
        loss_names = list(losses)
        extra_names = list(metrics) if metrics else []
        flat: list[Number | None] = [*losses.values(), total, lr, grad_norm]
        if metrics:
            flat.extend(metrics.values())
        values: list[float] = [math.nan] * len(flat)
        slots: list[tuple[int, _StagingBuffer, int, int]] = []
        tensors: list[tuple[int, torch.Tensor]] = []
        for i, v in enumerate(flat):
            if isinstance(v, torch.Tensor):
                tensors.append((i, v))
            elif v is not None:
                values[i] = float(v)
        if tensors:
            self._stage(tensors, slots)
        self._pending.append(
            _Pending(
                int(step),
                epoch,
                time.time() if wall_time is None else wall_time,
                loss_names,
                values,
                slots,
                extra_names,
                total_given=total is not None,
                has_total=log_total and (total is not None or bool(losses)),
                has_lr=lr is not None,
                has_grad_norm=grad_norm is not None,
            )
        )
        self.state.step = int(step)
        if epoch is not None:
            self.state.epoch = epoch
        if len(self._pending) >= self.fetch_every or time.monotonic() - self._last_fetch >= self.max_fetch_interval:
            return self.flush()
        return None

    def _record_stacked(
        self,
        step: int,
        names: tuple[str, ...],
        losses: torch.Tensor,
        lr: float | torch.Tensor,
        grad_norm: torch.Tensor | None,
        epoch: int,
    ) -> list[StepInfo] | None:
        """The Trainer's ``record``: the step's task losses as one detached tensor, in the order of ``names``.

        ``losses`` has shape ``(len(names),)`` (0-d for one task) and a float32
        or float64 dtype; the total is their weighted sum, computed at the fetch.
        Keeping the tensor until the fetch is the whole per-step cost.
        """
        if self._closed:
            raise RuntimeError(f"job {self.job_id} of recorder {self.name!r} is closed; create a new Recorder")
        if self.job_id is None:
            self.start()
        stacked = self._stacked
        if stacked is None or stacked.names != names or self._pending:
            if self._pending or stacked:
                self.flush()
            stacked = self._stacked = StackedSteps(names)
        stacked.add(step, time.time(), epoch, losses, lr, grad_norm)
        state = self.state
        state.step = step
        state.epoch = epoch
        if len(stacked.steps) >= self.fetch_every or time.monotonic() - self._last_fetch >= self.max_fetch_interval:
            return self.flush()
        return None

    def _stage(
        self, tensors: list[tuple[int, torch.Tensor]], slots: list[tuple[int, _StagingBuffer, int, int]]
    ) -> None:
        """Copy a step's device values into the staging buffer for their device, dtype and count."""
        groups: dict[tuple[torch.device, torch.dtype], list[tuple[int, torch.Tensor]]] = {}
        for i, t in tensors:
            if t.dim() != 0:
                if t.numel() != 1:
                    raise ValueError(f"record() takes numbers or 1-element tensors, got shape {tuple(t.shape)}")
                t = t.reshape(())
            groups.setdefault((t.device, t.dtype), []).append((i, t))
        for (device, dtype), members in groups.items():
            key = (device, dtype, len(members))
            buffer = self._buffers.get(key)
            if buffer is None:
                # rows for one fetch interval, capped: a huge fetch_every grows the buffer as steps come
                rows = min(self.fetch_every, 1024)
                buffer = self._buffers[key] = _StagingBuffer(device, dtype, rows, len(members))
            row = buffer.put([t for _, t in members])
            slots.extend((i, buffer, row, col) for col, (i, _) in enumerate(members))

    def flush(self) -> list[StepInfo]:
        """Fetch every pending step now (one transfer), update health and summaries, store, notify."""
        self._last_fetch = time.monotonic()
        if self._stacked:
            return self._flush_stacked()
        pending, self._pending = self._pending, []
        if not pending:
            return []
        buffers = list(self._buffers.values())
        host = _fetch(buffers)  # one device->host copy per staging buffer, for every pending step
        for buffer in buffers:
            buffer.used = 0
        for p in pending:
            for i, buffer, row, col in p.slots:
                p.values[i] = host[id(buffer)][row][col]
        infos: list[StepInfo] = []
        points: list[tuple[str, int, float, float]] = []
        with self._lock:
            for p in pending:
                n_losses = len(p.loss_names)
                values = p.values
                losses = dict(zip(p.loss_names, values[:n_losses], strict=True))
                total = values[n_losses]
                if not p.total_given:
                    total = sum(self._task(n).weight * v for n, v in losses.items())
                lr, grad_norm = values[n_losses + 1], values[n_losses + 2]
                extra = dict(zip(p.extra_names, values[n_losses + 3 :], strict=True))
                health: dict[str, str] = {}
                types: dict[str, str] = {}
                worst = LossHealth.HEALTHY
                for name, value in losses.items():
                    task = self._task(name)
                    acc = self._summaries.get(name)
                    if acc is None:
                        acc = self._summaries[name] = LossSummaryAccumulator(name, task.task_type, task.thresholds)
                    acc.add(value, p.step)
                    verdict = task.classify(name, value)
                    if verdict.severity > worst.severity:
                        worst = verdict
                    health[name] = verdict.value
                    types[name] = task.task_type
                    points.append((LOSS_PREFIX + name, p.step, value, p.wall_time))
                if p.has_total:
                    points.append((TOTAL_LOSS, p.step, total, p.wall_time))
                if p.has_lr:
                    points.append((LEARNING_RATE, p.step, lr, p.wall_time))
                if p.has_grad_norm:
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
                        "overall_health": worst.value,
                        "lr": lr if p.has_lr else None,
                        "grad_norm": grad_norm if p.has_grad_norm else None,
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

    def _flush_stacked(self) -> list[StepInfo]:
        """``flush`` for the Trainer's stacked steps: one copy, then numpy per column instead of Python per value."""
        stacked = self._stacked
        assert stacked is not None
        self._stacked = StackedSteps(stacked.names)
        block = stacked.fetch()
        names = stacked.names
        tasks = [self._task(name) for name in names]
        values = block.losses
        steps, walls = block.steps, block.walls
        totals = values @ np.array([t.weight for t in tasks], dtype=np.float64)
        codes = np.empty(values.shape, dtype=np.int8)
        last_step = int(steps[-1])
        columns: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        with self._lock:
            for j, (name, task) in enumerate(zip(names, tasks, strict=True)):
                column = np.ascontiguousarray(values[:, j])
                bounds = task.thresholds if task.thresholds is not None else DEFAULT_THRESHOLDS.get(task.task_type)
                codes[:, j] = health_codes(column, bounds)
                summary = self._summaries.get(name)
                if summary is None:
                    summary = self._summaries[name] = LossSummaryAccumulator(name, task.task_type, task.thresholds)
                summary.add_many(column, last_step)
                columns[LOSS_PREFIX + name] = (steps, column, walls)
        columns[TOTAL_LOSS] = (steps, totals, walls)
        columns[LEARNING_RATE] = (steps, block.lr, walls)
        has_norm = block.has_grad_norm
        if has_norm.any():
            columns[GRAD_NORM] = (steps[has_norm], block.grad_norm[has_norm], walls[has_norm])
        assert self.job_id is not None
        self.store.log_columns(self.job_id, columns)

        verdicts = [h.value for h in _BY_CODE]
        types = {name: task.task_type for name, task in zip(names, tasks, strict=True)}
        rows: list[list[float]] = values.tolist()
        row_codes = cast(list[list[int]], codes.tolist())
        lrs, norms = block.lr.tolist(), block.grad_norm.tolist()
        infos: list[StepInfo] = [
            {
                "step": step,
                "epoch": block.epochs[i],
                "wall_time": wall,
                "loss": total,
                "losses": dict(zip(names, rows[i], strict=True)),
                "health": {name: verdicts[c] for name, c in zip(names, row_codes[i], strict=True)},
                "task_type": dict(types),
                "overall_health": verdicts[max(row_codes[i])],
                "lr": lrs[i],
                "grad_norm": norms[i] if has else None,
                "metrics": {},
            }
            for i, (step, wall, total, has) in enumerate(
                zip(steps.tolist(), walls.tolist(), totals.tolist(), has_norm.tolist(), strict=True)
            )
        ]
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


# health_codes() -> LossHealth
_BY_CODE = (LossHealth.HEALTHY, LossHealth.WARNING, LossHealth.CRITICAL)

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
