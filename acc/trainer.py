"""Trainer: the training loop, in the foreground or a background thread, recorded as a job.

::

    trainer = acc.Trainer(model, optimizer, loader,
                          tasks={"recon": acc.tasks.Reconstruction(), "kl": acc.tasks.KLDivergence(weight=0.1)})
    job = trainer.start(steps=2000)     # returns at once; trains in a background thread
    trainer.loss_summary()              # live per-task LossSummary with health
    job.wait()                          # re-raises an exception from the training thread
    trainer.save_checkpoint("after-2k") # checkpoint.metrics["loss_summary"] filled in

One step: draw a batch -> STEP_STARTED -> forward -> each task's loss ->
weighted total -> backward -> global gradient norm -> AFTER_BACKWARD ->
optimizer (and scheduler) step -> record -> STEP_COMPLETED -> pause point.
Losses stay on the device; the recorder fetches them in one transfer every
``fetch_every`` steps. The pause point costs one ``Event.is_set()`` per step
and is where stop requests, checkpoint requests from other threads and the
debug controller are served.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import traceback
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

import torch

from acc._torch_utils import global_norm, to_device
from acc.checkpoints import Checkpoint, CheckpointStore
from acc.events import Event, Hooks, RemovableHandle
from acc.loss_health import LossSummary
from acc.recorder import Recorder, _default_store
from acc.state import StepInfo, TrainerState
from acc.store import JobStatus, RunStore
from acc.tasks import Task, as_task

if TYPE_CHECKING:
    from acc.monitors import Monitor
    from acc.monitors.status import TrainingStatus

__all__ = ["DebugHook", "Job", "Trainer", "default_forward"]

log = logging.getLogger(__name__)

T = TypeVar("T")
# Loss dtypes whose weighted total the Trainer computes as stack + dot (see Trainer._total_loss).
_STACKABLE = (torch.float32, torch.float64)
Forward = Callable[[torch.nn.Module, Any], Any]


def default_forward(model: torch.nn.Module, batch: Any) -> Any:
    """``model(batch[0])`` for a tuple/list batch, ``model(batch)`` otherwise."""
    if isinstance(batch, (tuple, list)):
        return model(batch[0])
    return model(batch)


class DebugHook(Protocol):
    """What the Trainer asks of a debug controller (``acc.DebugController`` is one).

    * ``attention``: an Event the controller sets whenever the loop must call
      ``_pause_point``; the trainer sets it too (stop, checkpoint requests).
      Only the trainer clears it, right before serving it.
    * ``_expect(trainer)``: called in the caller's thread as ``start()``/``fit()``
      creates a job, before its thread runs, so a command given right after
      ``start()`` waits for that job instead of finding none.
    * ``_bind(trainer)`` / ``_unbind(trainer, status)``: called in the training
      thread when a job starts and ends.
    * ``_pause_point(trainer) -> bool``: called at the pause point when
      ``attention`` was set; may block while paused, calling
      ``trainer._run_pending()`` at least every 50 ms meanwhile (so checkpoint
      requests are served) and returning promptly once ``trainer.stopping``.
      Returns True to be called again at the next step.
    * ``_wake()``: the trainer is stopping; return from any wait now.
    """

    attention: threading.Event

    def _expect(self, trainer: Trainer) -> None: ...
    def _bind(self, trainer: Trainer) -> None: ...
    def _unbind(self, trainer: Trainer, status: str) -> None: ...
    def _pause_point(self, trainer: Trainer) -> bool: ...
    def _wake(self) -> None: ...


class Job:
    """A training run of a Trainer, recorded in the store as one job."""

    def __init__(self, trainer: Trainer, recorder: Recorder) -> None:
        self.trainer = trainer
        self.recorder = recorder
        assert recorder.job_id is not None
        self.id: int = recorder.job_id
        self.name = recorder.name
        self.status: str = JobStatus.RUNNING.value
        self.reason: str | None = None
        self._exception: BaseException | None = None
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def wait(self, timeout: float | None = None) -> Job:
        """Block until the job ends; re-raise the exception that failed it."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"job {self.id} ({self.name!r}) is still running after {timeout} s")
        if self._exception is not None:
            raise self._exception
        return self

    def done(self) -> bool:
        return self._done.is_set()

    @property
    def exception(self) -> BaseException | None:
        return self._exception

    def stop(self, *, wait: bool = True, timeout: float | None = 30.0) -> None:
        if not self.done():
            self.trainer.stop(wait=wait, timeout=timeout)

    def loss_summary(self) -> dict[str, LossSummary]:
        return self.recorder.loss_summary()

    @property
    def step(self) -> int:
        return self.recorder.state.step

    def __repr__(self) -> str:
        st = self.recorder.state
        total = f"/{st.max_steps}" if st.max_steps else ""
        return f"Job(id={self.id}, name={self.name!r}, status={self.status!r}, step={st.step}{total})"


class Trainer:
    """Trains ``model`` on ``data`` with per-task losses, recording every step.

    Arguments: ``model``, ``optimizer``, ``data`` (any re-iterable of batches,
    e.g. a DataLoader; a one-shot iterator ends the job when it runs out),
    ``tasks`` (name -> Task, type name, or ``fn(outputs, batch)``).

    Keyword arguments: ``device`` (moves the model and each batch; default:
    where the model's parameters are), ``store`` (a RunStore; default: the
    shared default store), ``scheduler`` (stepped after each optimizer step),
    ``grad_clip`` (max global gradient norm), ``forward(model, batch)``
    (default ``default_forward``), ``fetch_every`` (steps between device->host
    fetches), ``max_fetch_interval`` (seconds after which pending steps are
    fetched anyway, so a slow loop still reaches the store promptly), ``name``, ``debug_controller``, ``checkpoints`` (a
    CheckpointStore or folder; default ``<store root>/checkpoints``),
    ``stop_on_nan`` (stop the job at the first fetch that sees a non-finite
    loss), ``config`` (anything JSON-able to keep with each job),
    ``grad_norm_every`` (compute the global gradient norm every N steps from
    step 1, default 25; 1 for every step, None for never; with ``grad_clip`` it is
    every step, since clipping computes it anyway),
    ``monitors`` (objects with ``attach(trainer)``; default
    ``acc.monitors.default_monitors()``, ``None`` or ``[]`` for none).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        data: Iterable[Any],
        tasks: Mapping[str, Task | str | Callable[[Any, Any], torch.Tensor]],
        *,
        device: str | torch.device | None = None,
        store: RunStore | None = None,
        scheduler: Any = None,
        grad_clip: float | None = None,
        forward: Forward | None = None,
        fetch_every: int = 50,
        max_fetch_interval: float = 0.5,
        name: str | None = None,
        debug_controller: DebugHook | None = None,
        checkpoints: CheckpointStore | str | Path | None = None,
        stop_on_nan: bool = False,
        config: Mapping[str, Any] | None = None,
        grad_norm_every: int | None = 25,
        monitors: Iterable[Monitor] | Literal["default"] | None = "default",
    ) -> None:
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
        if not isinstance(data, Iterable):
            raise TypeError(f"data must be iterable (e.g. a DataLoader), got {type(data).__name__}")
        if not isinstance(tasks, Mapping) or not tasks:
            raise TypeError("tasks must be a non-empty mapping of task name -> Task, e.g. {'recon': Reconstruction()}")
        if fetch_every < 1:
            raise ValueError(f"fetch_every must be >= 1, got {fetch_every}")
        if grad_clip is not None and not grad_clip > 0:
            raise ValueError(f"grad_clip must be a positive number, got {grad_clip}")
        self.model = model
        self.optimizer = optimizer
        self.data = data
        self.tasks: dict[str, Task] = {str(k): as_task(v) for k, v in tasks.items()}
        self.device = torch.device(device) if device is not None else None
        if self.device is not None:
            self.model.to(self.device)
        self.store = store if store is not None else _default_store()
        self.scheduler = scheduler
        self.grad_clip = grad_clip
        self.forward: Forward = forward or default_forward
        self.fetch_every = int(fetch_every)
        self.max_fetch_interval = float(max_fetch_interval)
        self.name = name or type(model).__name__
        self.debug_controller = debug_controller
        if isinstance(checkpoints, CheckpointStore):
            self.checkpoints = checkpoints
        else:
            folder = checkpoints if checkpoints is not None else self.store.root / "checkpoints"
            self.checkpoints = CheckpointStore(folder)
        self.stop_on_nan = stop_on_nan
        self.config = dict(config or {})
        if grad_norm_every is not None and (isinstance(grad_norm_every, bool) or grad_norm_every < 1):
            raise ValueError(f"grad_norm_every must be a positive number of steps or None, got {grad_norm_every!r}")
        # Reading every gradient once more costs ~4-6 % of a small model's step on a CPU, so the norm
        # is sampled (as loggers sample: Lightning every 50 steps, W&B every 1000), by default as often
        # as the GradientMonitor samples its per-layer norms (every 25 steps).
        self.grad_norm_every = grad_norm_every

        self.hooks: Hooks[TrainerState] = Hooks()
        self.state = TrainerState()
        self.job: Job | None = None
        self.recorder: Recorder | None = None
        self._attention = threading.Event()
        self._stopping = False
        self._stop_reason: str | None = None
        self._requests: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        self._requests_lock = threading.Lock()
        self._accepting_requests = False
        self._loop_thread: threading.Thread | None = None
        self._dbg: DebugHook | None = None
        self._parent_checkpoint: str | None = None
        self._resumed_from: str | None = None
        self._params: list[torch.nn.Parameter] = []
        self._task_names: tuple[str, ...] = ()
        self._task_weights: list[float] = []
        self._unit_weights = True
        self._weight_vector: torch.Tensor | None = None
        self._stack_losses = True
        self._fused_norm = False
        self._n_dense_grads = -1
        if monitors == "default":
            from acc.monitors import default_monitors

            monitors = default_monitors()
        self.monitors: list[Monitor] = list(monitors or [])
        self._monitor_handles = [m.attach(self) for m in self.monitors]

    # -- public API --------------------------------------------------------

    def on(self, event: Event | str, handler: Callable[[TrainerState], Any]) -> RemovableHandle:
        """Call ``handler(state)`` at ``event``; returns a handle that removes it."""
        return self.hooks.on(event, handler)

    @property
    def is_running(self) -> bool:
        return self.job is not None and not self.job.done()

    @property
    def stopping(self) -> bool:
        """True once a stop was requested for the running job."""
        return self._stopping

    def fit(
        self,
        steps: int | None = None,
        *,
        epochs: int | None = None,
        debug_controller: DebugHook | None = None,
        name: str | None = None,
    ) -> Job:
        """Train in this thread for ``steps`` optimizer steps or ``epochs`` passes; returns the finished Job.

        An exception in the loop ends the job "failed" and is raised here.
        """
        job = self._begin(steps, epochs, debug_controller, name)
        self._loop_thread = threading.current_thread()
        self._run_job(job, steps, epochs)
        return job.wait()

    def train(
        self,
        steps: int | None = None,
        *,
        epochs: int | None = None,
        debug_controller: DebugHook | None = None,
        name: str | None = None,
    ) -> Job:
        """The same as ``fit`` (DESIGN.md's name)."""
        return self.fit(steps, epochs=epochs, debug_controller=debug_controller, name=name)

    def start(
        self,
        steps: int | None = None,
        *,
        epochs: int | None = None,
        debug_controller: DebugHook | None = None,
        name: str | None = None,
    ) -> Job:
        """Train in a background thread; returns the running Job at once."""
        job = self._begin(steps, epochs, debug_controller, name)
        thread = threading.Thread(
            target=self._run_job, args=(job, steps, epochs), name=f"acc-train:{job.name}#{job.id}", daemon=True
        )
        job._thread = thread
        self._loop_thread = thread
        thread.start()
        return job

    def stop(self, *, wait: bool = True, timeout: float | None = 30.0, reason: str = "stopped by the user") -> None:
        """Ask the running job to stop at its next pause point (stop wins over pause)."""
        job = self.job
        if job is None or job.done():
            return
        self._request_stop(reason)
        dbg = self._dbg
        if dbg is not None:
            dbg._wake()
        if wait and job._thread is not None and threading.current_thread() is not job._thread:
            job._done.wait(timeout)

    def loss_summary(self) -> dict[str, LossSummary]:
        """Per-task summaries of the live (or last) job: the seed's ``/jobs/current/loss_summary``."""
        return self.recorder.loss_summary() if self.recorder is not None else {}

    def status(self) -> TrainingStatus:
        """One snapshot of the run and of every monitor (alerts, gradients, throughput, ...); host values only."""
        from acc.monitors.status import training_status

        return training_status(self)

    def history(self, limit: int | None = None) -> list[Any]:
        """Jobs in the store, newest first."""
        return self.store.jobs(limit=limit)

    def save_checkpoint(
        self, name: str | None = None, *, metrics: Mapping[str, Any] | None = None, timeout: float = 120.0
    ) -> Checkpoint:
        """Save model and optimizer with the live loss summary in ``metrics["loss_summary"]``.

        While a job runs in the background the save happens in the training
        thread between two steps (a consistent snapshot); this call waits for it.
        Each save is a child of the previous one (or of the checkpoint the
        trainer was resumed from), so checkpoints form a tree.
        """
        return self._call_in_loop(lambda: self._save_checkpoint_now(name, metrics), timeout)

    def load_checkpoint(self, checkpoint: str | Checkpoint, *, strict: bool = True) -> Checkpoint:
        """Restore weights and optimizer state; the next job continues from its step and saves its children."""
        if self.is_running:
            raise RuntimeError("cannot load a checkpoint while a job is running; stop() it first")
        ckpt = self.checkpoints.load(checkpoint, self.model, self.optimizer, strict=strict)
        self.state.step = ckpt.step
        self._parent_checkpoint = ckpt.id
        self._resumed_from = ckpt.id
        return ckpt

    resume_from = load_checkpoint

    # -- the loop ----------------------------------------------------------

    def _begin(self, steps: int | None, epochs: int | None, dbg: DebugHook | None, name: str | None) -> Job:
        if self.is_running:
            raise RuntimeError(f"{self.job!r} is still running; stop() it or wait() for it first")
        if (steps is None) == (epochs is None):
            raise ValueError("give exactly one of steps= or epochs=")
        count = steps if steps is not None else epochs
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ValueError(f"steps/epochs must be a positive integer, got {count!r}")
        self._stopping = False
        self._stop_reason = None
        self._task_names = tuple(self.tasks)
        self._task_weights = [task.weight for task in self.tasks.values()]
        self._unit_weights = all(w == 1.0 for w in self._task_weights)
        self._weight_vector = None
        self._stack_losses = True
        self._fused_norm = False
        self._n_dense_grads = -1
        self._attention = (
            dbg.attention
            if dbg is not None
            else (self.debug_controller.attention if self.debug_controller is not None else threading.Event())
        )
        self._attention.clear()
        self._dbg = dbg if dbg is not None else self.debug_controller
        recorder = Recorder(
            self.tasks,
            store=self.store,
            name=name or self.name,
            fetch_every=self.fetch_every,
            max_fetch_interval=self.max_fetch_interval,
            config=self._job_config(steps, epochs),
            hooks=self.hooks,
            state=self.state,
        )
        recorder.start(notify=False)
        self.recorder = recorder
        self.job = Job(self, recorder)
        state = self.state
        state.error = None
        state.stop_reason = None
        state.ended_at = None
        state.fetched = []
        state.last_info = None
        state.max_steps = state.step + steps if steps is not None else self._epoch_steps(epochs)
        with self._requests_lock:
            self._accepting_requests = True
        if self._dbg is not None:
            self._dbg._expect(self)
        return self.job

    def _epoch_steps(self, epochs: int | None) -> int | None:
        try:
            per_epoch = len(self.data)  # type: ignore[arg-type]
        except TypeError:
            return None
        return self.state.step + per_epoch * (epochs or 0)

    def _job_config(self, steps: int | None, epochs: int | None) -> dict[str, Any]:
        n_params = sum(p.numel() for p in self.model.parameters())
        first = next(self.model.parameters(), None)
        device = self.device or (first.device if first is not None else torch.device("cpu"))
        config: dict[str, Any] = {
            "model": type(self.model).__name__,
            "parameters": n_params,
            "optimizer": type(self.optimizer).__name__,
            "lr": self.optimizer.param_groups[0].get("lr"),
            "device": str(device),
            "steps": steps,
            "epochs": epochs,
            "start_step": self.state.step,
            "fetch_every": self.fetch_every,
            "grad_clip": self.grad_clip,
            "resumed_from": self._resumed_from,
        }
        config.update(self.config)
        return config

    def _run_job(self, job: Job, steps: int | None, epochs: int | None) -> None:
        state = self.state
        status = JobStatus.COMPLETED
        error_text: str | None = None
        dbg = self._dbg
        try:
            if dbg is not None:
                dbg._bind(self)
            self.hooks.fire(Event.JOB_STARTED, state)
            self._loop(steps, epochs)
            if self._stopping:
                status = JobStatus.STOPPED
        except KeyboardInterrupt as exc:
            status = JobStatus.STOPPED
            self._stop_reason = "interrupted by the user (KeyboardInterrupt)"
            job._exception = exc
        except BaseException as exc:
            status = JobStatus.FAILED
            error_text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            job._exception = exc
            state.error = exc
            log.debug("job %s failed", job.id, exc_info=True)
        finally:
            self._finish(job, status, error_text, dbg)

    def _finish(self, job: Job, status: JobStatus, error_text: str | None, dbg: DebugHook | None) -> None:
        state = self.state
        with self._requests_lock:
            self._accepting_requests = False
        try:
            self._run_pending()
        finally:
            state.stop_reason = self._stop_reason
            state.batch = state.outputs = state.total_loss = state.grad_norm = None
            state.losses = {}
            try:
                job.recorder.close(status, error=error_text, reason=self._stop_reason)
            except BaseException as exc:  # a store failure at the end must still end the job
                log.exception("could not record the end of job %s", job.id)
                if job._exception is None:
                    job._exception = exc
            job.status = status.value
            job.reason = self._stop_reason
            if dbg is not None:
                try:
                    dbg._unbind(self, status.value)
                except Exception:
                    log.exception("debug controller failed to unbind")
            self._dbg = None
            job._done.set()

    def _loop(self, steps: int | None, epochs: int | None) -> None:
        state = self.state
        self._params = [p for p in self.model.parameters() if p.requires_grad]
        if not self._params:
            raise ValueError("the model has no parameters that require gradients")
        self.model.train()
        end_step = state.step + steps if steps is not None else None
        data_iter = iter(self.data)
        one_shot = data_iter is self.data
        epochs_done = 0
        drawn_this_epoch = 0
        attention = self._attention
        if attention.is_set():  # a stop or pause that came before the first step
            self._service()
        while not self._stopping and (end_step is None or state.step < end_step):
            try:
                batch = next(data_iter)
            except StopIteration:
                if drawn_this_epoch == 0:
                    raise ValueError("the data yielded no batches") from None
                epochs_done += 1
                state.epoch += 1
                drawn_this_epoch = 0
                if epochs is not None and epochs_done >= epochs:
                    break
                if one_shot:
                    self._stop_reason = f"the data ran out after step {state.step}"
                    break
                data_iter = iter(self.data)
                continue
            drawn_this_epoch += 1
            self._step(batch)
            if attention.is_set():  # the pause point: one Event check per step
                self._service()

    def _step(self, batch: Any) -> None:
        state = self.state
        hooks = self.hooks
        if self.device is not None:
            batch = to_device(batch, self.device)
        state.batch = batch
        hooks.fire(Event.STEP_STARTED, state)
        outputs = self.forward(self.model, batch)
        losses = {name: task(outputs, batch, name=name) for name, task in self.tasks.items()}
        stacked, total = self._total_loss(losses)
        state.outputs = outputs
        state.losses = losses
        state.total_loss = total
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()  # type: ignore[no-untyped-call]
        step = state.step + 1
        state.grad_norm = self._grad_norm(step)
        hooks.fire(Event.AFTER_BACKWARD, state)
        lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        state.step = step
        hooks.fire(Event.STEP_COMPLETED, state)
        recorder = self.recorder
        assert recorder is not None
        if stacked is not None:  # kept as it is until the fetch: no copy, no graph
            fetched = recorder._record_stacked(
                step, self._task_names, stacked.detach(), lr, state.grad_norm, state.epoch
            )
        else:  # staged on the device at once (a copy, so no graph or tensor is held)
            fetched = recorder.record(step, losses, total=total, lr=lr, grad_norm=state.grad_norm, epoch=state.epoch)
        if fetched and self.stop_on_nan:
            self._check_finite(fetched)

    def _total_loss(self, losses: dict[str, torch.Tensor]) -> tuple[torch.Tensor | None, torch.Tensor]:
        """The weighted total loss, and the stacked task losses it was computed from (None if it was not).

        ``torch.stack`` + ``dot`` are as many ops as the muls and adds of a
        hand-written total, and the stack is then all the recorder keeps of the
        step. Losses that cannot be stacked (on different devices, of shape
        ``(1,)``, in half precision, where a float32 weight vector would change
        the arithmetic) are added one by one for the rest of the job.
        """
        if self._stack_losses:
            values = list(losses.values())
            stacked: torch.Tensor | None
            if len(values) == 1:
                stacked = values[0]
                if stacked.dim() == 0 and stacked.dtype in _STACKABLE:
                    weight = self._task_weights[0]
                    return stacked, stacked if weight == 1.0 else stacked * weight
            else:
                try:
                    stacked = torch.stack(values)
                except RuntimeError:
                    stacked = None
                if stacked is not None and stacked.dim() == 1 and stacked.dtype in _STACKABLE:
                    if self._unit_weights:
                        return stacked, stacked.sum()
                    weights = self._weight_vector
                    if weights is None or weights.dtype != stacked.dtype or weights.device != stacked.device:
                        weights = torch.tensor(self._task_weights, dtype=stacked.dtype, device=stacked.device)
                        self._weight_vector = weights
                    return stacked, torch.dot(stacked, weights)
            self._stack_losses = False
        total: torch.Tensor | None = None
        for loss, weight in zip(losses.values(), self._task_weights, strict=True):
            weighted = loss if weight == 1.0 else loss * weight
            total = weighted if total is None else total + weighted
        assert total is not None
        return None, total

    def _grad_norm(self, step: int) -> torch.Tensor | None:
        """The global gradient norm at sampled steps (every step with grad_clip); None otherwise."""
        if self.grad_clip is not None:
            # clip_grad_norm_ returns the norm before clipping, on the device, without a sync
            return torch.nn.utils.clip_grad_norm_(self._params, self.grad_clip, foreach=True)
        every = self.grad_norm_every
        if every is None or (step - 1) % every != 0:  # steps 1, 1 + N, 1 + 2N, ...: short runs get one too
            return None
        grads = [p.grad for p in self._params if p.grad is not None]
        if self._fused_norm and len(grads) == self._n_dense_grads:
            # all dense, on one device, of one dtype (checked at the first sample): one fused kernel + one norm
            norm: torch.Tensor = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
            return norm
        if self._n_dense_grads < 0:  # the first sample of the job decides
            first = grads[0] if grads else None
            self._fused_norm = (
                first is not None
                and hasattr(torch, "_foreach_norm")
                and all(not g.is_sparse and g.device == first.device and g.dtype == first.dtype for g in grads)
            )
            self._n_dense_grads = len(grads)
        return global_norm(grads)

    def _check_finite(self, fetched: list[StepInfo]) -> None:
        for info in fetched:
            bad = {k: v for k, v in info["losses"].items() if not math.isfinite(v)}
            if bad:
                name, value = next(iter(bad.items()))
                self._request_stop(f"stop_on_nan: loss {name!r} was {value} at step {info['step']}")
                return

    # -- requests from other threads ---------------------------------------

    def _request_stop(self, reason: str) -> None:
        if not self._stopping:
            self._stop_reason = reason
        self._stopping = True
        self._attention.set()

    def _service(self) -> None:
        """The pause point's slow path: requests, then the debug controller."""
        attention = self._attention
        attention.clear()
        self._run_pending()
        again = False
        dbg = self._dbg
        if dbg is not None and not self._stopping:
            again = dbg._pause_point(self)
        if again or self._stopping or not self._requests.empty():
            attention.set()

    def _run_pending(self) -> None:
        """Run callables queued by other threads (checkpoint saves); training-thread only."""
        while True:
            try:
                fn, future = self._requests.get_nowait()
            except queue.Empty:
                return
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except BaseException as exc:
                future.set_exception(exc)

    def _call_in_loop(self, fn: Callable[[], T], timeout: float) -> T:
        """Run ``fn`` between two steps of the running job, or right here when nothing runs."""
        with self._requests_lock:
            in_loop = self._accepting_requests and threading.current_thread() is not self._loop_thread
            if in_loop:
                future: Future[T] = Future()
                self._requests.put((fn, future))
                self._attention.set()
        if not in_loop:
            return fn()
        return future.result(timeout)

    def _save_checkpoint_now(self, name: str | None, metrics: Mapping[str, Any] | None) -> Checkpoint:
        if self.recorder is not None and not self.recorder._closed:
            self.recorder.flush()  # the summary covers every step taken so far
        job_id = self.job.id if self.job is not None else None
        info = self.state.last_info or {}
        all_metrics = {
            "loss": info.get("loss"),
            "losses": info.get("losses"),
            "health": info.get("health"),
            **dict(metrics or {}),
        }
        ckpt = self.checkpoints.save(
            self.model,
            self.optimizer,
            step=self.state.step,
            name=name,
            parent=self._parent_checkpoint,
            loss_summary=self.loss_summary(),
            metrics=all_metrics,
            job_id=job_id,
        )
        self._parent_checkpoint = ckpt.id
        self.state.last_checkpoint = ckpt
        if job_id is not None:
            self.store.log_event(job_id, "checkpoint", ckpt.to_dict(), step=ckpt.step)
        self.hooks.fire(Event.CHECKPOINT_SAVED, self.state)
        return ckpt

    def __repr__(self) -> str:
        tasks = ", ".join(f"{k}:{t.task_type}" for k, t in self.tasks.items())
        return f"Trainer({self.name!r}, tasks=[{tasks}], step={self.state.step}, job={self.job!r})"
