"""DebugController: pause, step exactly N batches, resume, breakpoints, and look inside a running loop.

::

    dbg = acc.DebugController(feature_param="encoder.weight")  # rows of this 2-D parameter are "features"
    trainer = acc.Trainer(model, opt, loader, tasks=..., debug_controller=dbg)
    trainer.start(steps=5000)
    dbg.pause(); dbg.get_state()      # {"state": "paused", "paused": True, "step": 812, "has_batch": True, ...}
    dbg.step(); dbg.get_batch()       # exactly one more batch: its PNG grid, loss, labels, step
    dbg.list_step_data_keys()         # ["grad_delta", "win_rate", ...]
    dbg.cosine_matrix("weights")      # D x D float32 matrix + mean/std/max off-diagonal
    dbg.add_watch(17); dbg.step(20); dbg.get_trajectories()[17]   # 20 points
    dbg.break_on("nan"); dbg.resume() # runs until a non-finite loss, then pauses at that step

The loop obeys at its *pause point*: after the optimizer step and the step's
callbacks (Trainer: after STEP_COMPLETED; a hand-written loop: where it calls
``wait_if_paused()``). Commands may come from any thread. Stop wins over pause.

Cost: a loop running free with nothing asked pays one ``Event.is_set()`` per
step and nothing else (no hooks, no copies, no host syncs). While the
controller is *engaged* (pausing, paused, stepping, watches or breakpoints
set) it is called at every pause point; it then keeps the step's data, copies
the feature parameter around the optimizer step (for ``grad_delta``) and
computes watch points on the device (fetched every ``fetch_every`` steps).
"nan", "critical" and predicate breakpoints cost one device->host fetch per
step; step/every breakpoints cost nothing. Pausing fetches once (the losses
of the paused step) and copies the batch.

Return values are plain, JSON-friendly data (dicts, lists, numbers, strings),
except where noted: the batch grid is PNG ``bytes``, cosine matrices are
``numpy.float32`` arrays, step-data tensors come back as numpy arrays.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import torch

from acc.debug.batch import CapturedBatch, describe_batch
from acc.debug.breakpoints import Breakpoint, BreakpointError, BreakpointHandle, Predicate, make_breakpoint
from acc.debug.control import Control
from acc.debug.cosine import as_rows, order_features
from acc.debug.cosine import cosine_matrix as _cosine_matrix
from acc.debug.features import GradDelta, resolve_feature_param
from acc.debug.forces import force_detail as _force_detail
from acc.debug.forces import force_summary as _force_summary
from acc.debug.loops import LoopView, ManualLoop, TrainerLoop, describe_error, loop_summary
from acc.debug.step_data import StepData, describe_value, to_host
from acc.debug.tables import DEFAULT_RULES, StatusRule, feature_table
from acc.debug.watches import DEFAULT_TRAJECTORY_CAP, Watches
from acc.events import RemovableHandle
from acc.state import StepInfo

if TYPE_CHECKING:
    from acc.trainer import Trainer

__all__ = ["GRAD_DELTA", "BreakpointError", "DebugController"]

log = logging.getLogger(__name__)

GRAD_DELTA = "grad_delta"
"""The step-data key of the feature parameter's change over the optimizer step."""

DEFAULT_TIMEOUT = 10.0


class DebugController:
    """Steers a Trainer (``Trainer(..., debug_controller=dbg)``) or a hand-written loop.

    ``feature_param``: the name of a 2-D parameter of the trained model
    (``"encoder.weight"``) or the tensor itself; its rows are the "features"
    that watches, cosine matrices, ``grad_delta`` and forces talk about.
    Resolved when a job starts (a clear error lists the 2-D parameters).
    Without it, control, breakpoints, batches and step data work the same.

    ``trajectory_cap``: points kept per watched feature (default 10,000; when
    full, the older half is thinned to every other point).
    ``fetch_every``: steps between watch-point fetches (default: the
    Trainer's ``fetch_every``, 50 for a hand-written loop).
    ``table_rules``: status rules of ``feature_table`` (default: dead if win_rate < 0.01).
    """

    def __init__(
        self,
        feature_param: str | torch.Tensor | None = None,
        *,
        trajectory_cap: int = DEFAULT_TRAJECTORY_CAP,
        fetch_every: int | None = None,
        table_rules: Iterable[StatusRule | Sequence[Any]] | None = None,
    ) -> None:
        if feature_param is not None and not isinstance(feature_param, (str, torch.Tensor)):
            raise TypeError(
                f"feature_param must be a parameter name or a 2-D tensor, got {type(feature_param).__name__}"
            )
        if isinstance(feature_param, torch.Tensor):
            resolve_feature_param(None, feature_param)  # checks it is 2-D
        if fetch_every is not None and (
            isinstance(fetch_every, bool) or not isinstance(fetch_every, int) or fetch_every < 1
        ):
            raise ValueError(f"fetch_every must be a positive integer, got {fetch_every!r}")
        self.attention = threading.Event()
        """Set whenever the loop must call the controller at its pause point (the Trainer clears it)."""
        self.feature_param = feature_param
        self.fetch_every = fetch_every
        self.table_rules: list[StatusRule] = [
            StatusRule.coerce(r) for r in (DEFAULT_RULES if table_rules is None else table_rules)
        ]
        self._control = Control(self.attention)
        self._watches = Watches(trajectory_cap)
        self._step_data = StepData()
        self._breakpoints: dict[int, Breakpoint] = {}
        self._bp_lock = threading.Lock()
        self._bp_ids = itertools.count(1)
        self._loop: LoopView | None = None
        self._param: torch.Tensor | None = feature_param if isinstance(feature_param, torch.Tensor) else None
        self._grad_delta: GradDelta | None = None
        self._gd_seen = 0
        # step data and batch bookkeeping (see _serve)
        self._collecting = False
        self._fresh = True
        self._tick = 0
        self._view_tick = 0
        self._served_step: int | None = None
        self._served_count = 0
        self._latest: tuple[int, CapturedBatch] | None = None
        self._batch: CapturedBatch | None = None
        self._pause_info: StepInfo | None = None
        self._last_info: StepInfo | None = None
        self._expected: Trainer | None = None
        self._bp_checked = -1
        self._last: dict[str, Any] = {"step": None, "job_id": None, "job_name": None, "max_steps": None, "loop": None}

    # ======================================================================
    # control
    # ======================================================================

    def pause(self, *, wait: bool = True, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        """Pause at the loop's next pause point; returns ``get_state()``.

        With ``wait`` (and a job running in another thread) this blocks until
        the loop is paused, up to ``timeout`` seconds (then the state says
        ``pausing`` and the pause still happens). From a loop that has taken
        no step since the pause was asked, the pause lands on the first step
        the controller saw whole (so its batch and step data are complete).
        With no job running, the next job pauses before its first step.
        """
        seq = self._command("pause")
        self._wait(seq, wait, timeout, lambda c: c.paused)
        return self.get_state()

    def step(self, n: int = 1, *, wait: bool = True, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        """Advance exactly ``n`` optimizer steps from where the loop is, then pause; returns ``get_state()``.

        With ``wait`` this blocks until the loop has taken the n steps and
        paused again (or the job ended), up to ``timeout`` seconds. With no job
        running, the next job takes n steps and pauses.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"step(n) needs a positive integer number of steps, got {n!r}")
        seq = self._command("step", n)
        self._wait(seq, wait, timeout, lambda c: c.paused)
        return self.get_state()

    def resume(self, *, wait: bool = True, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        """Run free again; with ``wait``, until the loop has left its pause. Returns ``get_state()``."""
        seq = self._command("resume")
        self._wait(seq, wait, timeout, lambda c: not c.paused)
        return self.get_state()

    def stop(self, *, wait: bool = True, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        """End the running job at its next pause point (a paused loop stops within 100 ms); returns ``get_state()``.

        A Trainer's job ends "stopped"; a hand-written loop sees ``wait_if_paused()``
        return False. With ``wait``, blocks until a Trainer's job has ended.
        Does nothing when no loop is running.
        """
        control = self._control
        loop = self._loop
        reason = "stopped from the debugger"
        expected = self._expected
        if not control.bound and control.expecting and expected is not None:
            expected.stop(wait=wait and not control.in_loop_thread(), timeout=timeout, reason=reason)
            return self.get_state()  # a job that start() created and whose thread has not attached yet
        if not control.bound or loop is None:
            return self.get_state()
        loop.request_stop(reason)
        control.request_stop(reason)
        if wait and isinstance(loop, TrainerLoop) and not control.in_loop_thread():
            job = loop.trainer.job
            if job is not None:
                job._done.wait(timeout)
        return self.get_state()

    @property
    def is_paused(self) -> bool:
        """True while the loop is holding at a pause point."""
        return self._control.paused

    @property
    def wants_step_data(self) -> bool:
        """True while step data is kept; a loop may skip computing step data when False."""
        return self._collecting

    def wait_if_paused(self, step: int | None = None) -> bool:
        """A hand-written loop's pause point: call it once per step, after the optimizer step.

        Running free it costs one ``Event.is_set()``. When paused it blocks
        until ``step()``, ``resume()`` or ``stop()``. Returns False once a stop
        was asked (end your loop), True otherwise. ``step``: this step's
        number (default: the step of this step's ``capture_batch``, else one
        more than the last).
        """
        if not self.attention.is_set():
            return True
        return self._manual_pause_point(step)

    def get_state(self) -> dict[str, Any]:
        """The controller's live state, JSON-friendly.

        ``{"state": running|pausing|paused|stopped|finished, "paused", "step",
        "max_steps", "has_batch", "batch_step", "reason" ("user", "step
        budget", "breakpoint: ...", or why the job ended), "pending" (a
        command the loop has not seen yet: pause/step/resume/stop, or None),
        "steps_left" (during step(n)), "loss", "losses", "health",
        "overall_health", "loss_step" (the step those values belong to),
        "job_id", "job_name", "job_status", "error", "loop" (trainer|manual|None),
        "watched", "breakpoints", "feature_param", "n_features"}``.
        """
        control = self._control
        loop = self._loop
        with control.lock:
            bound = control.bound
            stopping = bool(bound and loop is not None and loop.stopping())
            name = control.state_name(stopping)
            paused = control.paused
            pending = control.pending_name()
            reason = control.reason
            job_status = "running" if bound else control.last_status
            error = control.error
            mode, target = control.mode, control.target
        step = loop.step() if (bound and loop is not None) else self._last["step"]
        info = self._pause_info if paused else (loop.last_info() if loop is not None else self._last_info)
        batch = self._batch
        meta = (
            loop_summary(loop)
            if loop is not None
            else {k: self._last[k] for k in ("loop", "job_id", "job_name", "max_steps")}
        )
        param = self._param
        return {
            "state": name,
            "paused": paused,
            "step": step,
            "max_steps": meta["max_steps"],
            "has_batch": batch is not None,
            "batch_step": batch.step if batch is not None else None,
            "reason": reason,
            "pending": pending,
            "steps_left": max(0, target - step)
            if (mode == "step" and target is not None and step is not None)
            else None,
            "loss": info.get("loss") if info else None,
            "losses": dict(info.get("losses") or {}) if info else {},
            "health": dict(info.get("health") or {}) if info else {},
            "overall_health": info.get("overall_health") if info else None,
            "loss_step": info.get("step") if info else None,
            "job_id": meta["job_id"],
            "job_name": meta["job_name"],
            "job_status": job_status,
            "error": error,
            "loop": meta["loop"],
            "watched": self._watches.watched(),
            "breakpoints": self.list_breakpoints(),
            "feature_param": self.feature_param
            if isinstance(self.feature_param, str) or self.feature_param is None
            else "<tensor>",
            "n_features": int(param.shape[0]) if param is not None else None,
        }

    @contextlib.contextmanager
    def loop(
        self,
        *,
        model: torch.nn.Module | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        name: str | None = None,
    ) -> Iterator[DebugController]:
        """Mark a hand-written loop's lifetime (its state, a stop, failures); call in the loop's thread.

        ::

            with dbg.loop(model=model, optimizer=opt):
                for step, batch in enumerate(loader, 1):
                    loss = ...; loss.backward(); opt.step()
                    dbg.capture_batch(batch, loss, step)
                    if not dbg.wait_if_paused():
                        break

        ``model`` resolves a ``feature_param`` name; ``optimizer`` enables ``grad_delta``.
        The block ends the loop "completed", "stopped" (after ``stop()`` or
        KeyboardInterrupt) or "failed" (an exception, re-raised).
        """
        loop = ManualLoop(model, optimizer, name)
        status, error = "completed", None
        try:
            self._bind_loop(loop)
            yield self
            if self._control.stop_requested:
                status = "stopped"
        except KeyboardInterrupt:
            status = "stopped"
            raise
        except BaseException as exc:
            status, error = "failed", describe_error(exc)
            raise
        finally:
            self._unbind_loop(loop, status, error, self._control.stop_reason)

    # ======================================================================
    # breakpoints
    # ======================================================================

    def break_on(
        self, condition: str | Predicate | None = None, *, step: int | None = None, every: int | None = None
    ) -> BreakpointHandle:
        """Pause the loop when a condition holds; returns a handle that removes the breakpoint.

        ``"nan"`` (a non-finite loss), ``"critical"`` (a task's health turns
        CRITICAL), ``step=N``, ``every=N`` or a predicate ``fn(info) -> bool``
        over the step info (``{"step", "loss", "losses", "health", ...}``).
        The pause's reason names it, e.g. ``"breakpoint: nan (task 'kl' at step 812)"``.
        An exception in a predicate fails the job (``BreakpointError``).
        nan/critical/predicate breakpoints cost one host fetch per step while set.
        """
        bp = make_breakpoint(next(self._bp_ids), condition, step=step, every=every)
        with self._bp_lock:
            self._breakpoints[bp.id] = bp
        self._engage()

        def remove() -> None:
            with self._bp_lock:
                self._breakpoints.pop(bp.id, None)

        return BreakpointHandle(bp, remove)

    def list_breakpoints(self) -> list[dict[str, Any]]:
        """``[{"id", "kind", "description", "hits"}, ...]``."""
        with self._bp_lock:
            return [bp.to_dict() for bp in self._breakpoints.values()]

    def clear_breakpoints(self) -> None:
        with self._bp_lock:
            self._breakpoints.clear()

    # ======================================================================
    # batches
    # ======================================================================

    def capture_batch(self, batch: Any, loss: Any = None, step: int | None = None) -> None:
        """Keep this step's batch (and loss: a tensor, a number or a dict of per-task losses) for ``get_batch``.

        The batch is copied before the loop can take another step: at once
        when no loop is running or the loop is paused, else at the pause
        point when the loop is about to pause. A loop running free keeps only
        references (no copy, no cost). A Trainer needs no call: its batch is
        taken at the pause.
        """
        cap = CapturedBatch.of(step, batch, loss)
        control = self._control
        if not control.bound or control.paused:
            cap = cap.cloned_copy()
            self._batch = cap
        self._latest = (self._tick, cap)

    def get_batch(self, *, nrow: int = 8) -> dict[str, Any] | None:
        """The batch of the step the loop paused at (or the last captured one); None when there is none.

        ``{"step", "loss", "losses", "labels" (list, when the batch has class
        labels), "kind": "image"|"tensor"|"object"|"none", "png" (bytes of a
        grid of up to 64 images, ``nrow`` per row, for [B, C, H, W] with C in
        1/3 or [B, H, W] inputs), "grid" (its layout), "summary" (shape,
        dtype, min/max/mean/std of the inputs)}``.
        """
        batch = self._batch
        return describe_batch(batch, nrow=nrow) if batch is not None else None

    # ======================================================================
    # per-step data
    # ======================================================================

    def capture_step_data(self, key: str, data: Any) -> None:
        """Keep ``data`` under ``key`` for the step in progress (nothing is copied or converted).

        Call it from hooks or callbacks during the step. Dropped while the
        loop runs free with nothing asked (``wants_step_data`` is False), so
        it costs nothing then. Data of earlier steps is not shown once a newer
        step has been served. Pass tensors that later code will not change in
        place (or a ``.clone()``): they are read when someone asks.
        """
        if not isinstance(key, str) or not key:
            raise TypeError(f"a step-data key must be a non-empty string, got {key!r}")
        if self._collecting:
            self._step_data.put(key, self._tick, data)

    def list_step_data_keys(self) -> list[str]:
        """The keys of the current step's data (the paused step's, while paused), sorted."""
        return sorted(self._step_data.entries(self._view_tick))

    def step_data_info(self) -> dict[str, dict[str, Any]]:
        """``{key: {"step", "shape", "dtype", "kind"}}`` of the current step data, without fetching values."""
        return {
            key: {"step": self._step_of(tag), **describe_value(value)}
            for key, (tag, value) in sorted(self._step_data.entries(self._view_tick).items())
        }

    def get_step_data(self, key: str, *, as_tensor: bool = False) -> dict[str, Any]:
        """``{"key", "step", "value", "shape", "dtype", "kind"}`` of one step-data entry.

        ``value`` is converted now: tensors to numpy arrays (0-d to numbers),
        containers converted inside; ``as_tensor=True`` returns it unconverted.
        An unknown key raises KeyError listing the keys there are.
        """
        tag, value = self._entry(key)
        return {
            "key": key,
            "step": self._step_of(tag),
            "value": value if as_tensor else to_host(value),
            **describe_value(value),
        }

    def feature_table(
        self,
        keys: Sequence[str] | None = None,
        *,
        sort_by: str | None = None,
        descending: bool = True,
        rules: Iterable[StatusRule | Sequence[Any]] | None = None,
        limit: int | None = None,
    ) -> dict[str, Any]:
        """A per-feature table of the step's ``[D]`` metrics (all of them, or ``keys``).

        Rows ``{"feature", <metric>..., "status"}`` sortable by any column,
        a mean/min/max summary per metric and a status per row from
        ``rules`` (default: the controller's ``table_rules``). See
        ``acc.debug.tables.feature_table`` for the exact shape.
        """
        if keys is None:
            entries = self._step_data.entries(self._view_tick)
            metrics = {k: v for k, (_, v) in sorted(entries.items()) if isinstance(v, torch.Tensor) and v.dim() == 1}
            if not metrics:
                raise ValueError(f"no per-feature ([D]) metrics in the step data; keys: {sorted(entries) or 'none'}")
        else:
            metrics = {k: self._entry(k)[1] for k in keys}
        table = feature_table(
            metrics,
            rules=self.table_rules if rules is None else rules,
            sort_by=sort_by,
            descending=descending,
            limit=limit,
        )
        table["step"] = self._served_step
        return table

    # ======================================================================
    # forces and cosine matrices
    # ======================================================================

    def force_detail(self, feature: int, *, a: str = GRAD_DELTA, b: str) -> dict[str, Any]:
        """Two per-feature updates ``[D, K]`` in step data at one feature: both vectors, their sum,
        the current weight row (when there is a feature parameter) and their cosine.

        Returns ``{"feature", "step", "a_name", "b_name", "a", "b", "sum", "weight",
        "cos", "norm_a", "norm_b", "norm_sum", "agree"}`` (vectors as lists of floats).
        """
        tag_a, fa = self._entry(a)
        _, fb = self._entry(b)
        weight = self._weights_snapshot() if self._param is not None else None
        if weight is not None and (weight.dim() != 2 or weight.shape[0] != _rows(fa)):
            weight = None
        out = _force_detail(feature, _as_2d(fa, a), _as_2d(fb, b), weight, a_name=a, b_name=b)
        out["step"] = self._step_of(tag_a)
        return out

    def force_summary(self, *, a: str = GRAD_DELTA, b: str) -> dict[str, Any]:
        """How many features' two forces agree (cos > 0), fight (cos < 0) or have none (a zero force).

        ``{"a", "b", "step", "n", "agree", "fight", "neutral", "mean_cos", "cos": [D], "norm_a": [D], "norm_b": [D]}``.
        """
        tag_a, fa = self._entry(a)
        _, fb = self._entry(b)
        out = _force_summary(_as_2d(fa, a), _as_2d(fb, b), a_name=a, b_name=b)
        out["step"] = self._step_of(tag_a)
        return out

    def cosine_matrix(
        self, source: str = "weights", order_by: str | None = None, *, descending: bool = True
    ) -> dict[str, Any]:
        """The cosine similarity of every pair of features, from one matrix product on the device.

        ``source``: ``"weights"`` (the feature parameter's rows),
        ``"grad_delta"`` (their change over the last optimizer step) or any
        step-data key holding a ``[D, K]`` tensor. ``order_by``: a per-feature
        ``[D]`` step-data metric; rows and columns are sorted by it
        (descending unless ``descending=False``).

        Returns ``{"source", "step", "matrix": numpy float32 [D, D], "order"
        (the feature id of each row), "mean", "std", "min", "max" (off the
        diagonal), "n", "n_nonfinite"}``. A 1-D source raises ValueError.
        """
        if not isinstance(source, str):
            raise TypeError(f"source must be 'weights', 'grad_delta' or a step-data key, got {type(source).__name__}")
        if source == "weights":
            if self._param is None:
                raise ValueError(self._no_feature_param("cosine_matrix('weights')"))
            x = self._weights_snapshot()
            step = self._current_step()
        else:
            tag, value = self._entry(source)
            x = value
            step = self._step_of(tag)
        rows = as_rows(x, source)
        order = None
        if order_by is not None:
            _, metric = self._entry(order_by)
            order = order_features(metric, rows.shape[0], order_by, descending=descending)
        out = _cosine_matrix(rows, order)
        return {"source": source, "step": step, "order_by": order_by, **out}

    # ======================================================================
    # watches
    # ======================================================================

    def add_watch(self, feature: int) -> RemovableHandle:
        """Follow one feature every step (paused or not); returns a handle that removes the watch.

        Each point: ``step``, ``cosine`` of the feature's weight row to its
        row when the watch began, and every per-feature ``[D]`` metric in the
        step data. Recording starts with the step after the watch is added.
        Needs a ``feature_param``; an index out of range raises IndexError.
        """
        if self.feature_param is None:
            raise ValueError(self._no_feature_param("add_watch"))
        if isinstance(feature, bool) or not isinstance(feature, int):
            raise TypeError(f"a watched feature is a row index (int), got {feature!r}")
        param = self._param
        if feature < 0 or (param is not None and feature >= param.shape[0]):
            d = f"{param.shape[0]} rows (0..{param.shape[0] - 1})" if param is not None else "no negative rows"
            raise IndexError(f"feature {feature} is out of range: the feature parameter has {d}")
        self._watches.add(feature)
        self._engage()
        self._control.wake()  # a paused loop takes the reference row now

        def remove() -> None:
            self._watches.remove(feature)

        return RemovableHandle(remove)

    def remove_watch(self, feature: int) -> None:
        """Stop following ``feature``; its trajectory is kept. KeyError when it is not watched."""
        if not self._watches.remove(feature):
            raise KeyError(f"feature {feature!r} is not watched; watched: {self._watches.watched()}")

    def get_watched(self) -> list[int]:
        return self._watches.watched()

    def get_trajectories(self) -> dict[int, list[dict[str, Any]]]:
        """``{feature: [{"step", "cosine", <metric>...}, ...]}`` for every feature watched in this job
        (removed watches included); non-finite values are None. At most ``trajectory_cap`` points each."""
        return self._watches.trajectories()

    def trajectories_frame(self) -> Any:
        """The trajectories as a pandas DataFrame: columns feature, step, cosine and one per metric."""
        return self._watches.frame()

    def clear_trajectories(self) -> None:
        self._watches.clear_trajectories()

    # ======================================================================
    # the loop's side: DebugHook (Trainer) and hand-written loops
    # ======================================================================

    def _expect(self, trainer: Trainer) -> None:
        """DebugHook: ``start()``/``fit()`` created a job (caller's thread); commands wait for it to attach."""
        self._expected = trainer
        self._control.expect()

    def _bind(self, trainer: Trainer) -> None:
        """DebugHook: a Trainer's job starts (training thread)."""
        self._expected = None
        self._bind_loop(TrainerLoop(trainer))

    def _unbind(self, trainer: Trainer, status: str) -> None:
        """DebugHook: the job ended (training thread)."""
        if self._expected is trainer:  # it failed before attaching
            self._expected = None
            self._control.stop_expecting()
        loop = self._loop
        if not isinstance(loop, TrainerLoop) or loop.trainer is not trainer:
            return
        error = describe_error(trainer.state.error) if status == "failed" else None
        reason = trainer.state.stop_reason or trainer._stop_reason
        self._unbind_loop(loop, status, error, reason)

    def _pause_point(self, trainer: Trainer) -> bool:
        """DebugHook: the Trainer's pause point, when ``attention`` was set. True: call again next step."""
        loop = self._loop
        if loop is None or not isinstance(loop, TrainerLoop) or loop.trainer is not trainer:
            return False
        return self._serve(loop)

    def _wake(self) -> None:
        """DebugHook: the trainer is stopping; leave any wait now."""
        self._control.wake()

    # -- internals ---------------------------------------------------------

    def _command(self, kind: Any, n: int = 0) -> int:
        seq = self._control.command(kind, n)
        if kind != "resume":  # a resume needs nothing from the loop but to leave its pause
            self._engage()
        return seq

    def _wait(self, seq: int, wait: bool, timeout: float, done: Callable[[Control], bool]) -> None:
        control = self._control
        if not wait or not (control.bound or control.expecting) or control.in_loop_thread():
            return

        def settled() -> bool:
            # lock held: the command was superseded, obeyed, or can no longer be
            if control.seq != seq or not (control.bound or control.expecting) or control.stop_requested:
                return True
            loop = self._loop
            if control.bound and loop is not None and loop.stopping():
                return True
            return control.acked >= seq and done(control)

        if not control.wait_for(settled, timeout):
            log.warning("the loop did not obey within %.1f s (a long step?); the command stays pending", timeout)

    def _engage(self) -> None:
        """Someone asks (a command, a watch, a breakpoint): keep step data and be called every step."""
        with self._control.lock:
            if not self._collecting:
                self._collecting = True
                self._fresh = True  # the step in progress started before: its data is incomplete
        self.attention.set()

    def _engaged_locked(self) -> bool:
        c = self._control
        return (
            c.mode != "run"
            or (c.cmd is not None and c.acked != c.seq)
            or c.paused
            or bool(self._watches)
            or bool(self._breakpoints)
        )

    def _bind_loop(self, loop: LoopView) -> None:
        """Attach a loop (in its thread). If this raises after attaching, the caller ends it "failed"."""
        old = self._loop
        if old is not None and self._control.bound:
            if isinstance(old, ManualLoop) and old.implicit:
                self._unbind_loop(old, "completed", None, None)  # a loop that never said it ended
            else:
                raise RuntimeError(
                    f"this DebugController already steers a running {old.kind} loop (job {old.job_id}); "
                    "use one controller per loop"
                )
        self._grad_delta = None
        self._gd_seen = 0
        self._watches.start_job()
        self._step_data.clear()
        self._batch = None
        self._latest = None
        self._pause_info = None
        self._served_count = 0
        self._bp_checked = loop.step() if not isinstance(loop, ManualLoop) else -1
        self._served_step = loop.step() if not isinstance(loop, ManualLoop) else None
        self._tick += 1
        self._view_tick = self._tick
        self._loop = loop
        self._control.bind()
        param = self._param
        if isinstance(self.feature_param, str):
            param = resolve_feature_param(loop.model, self.feature_param)
        elif self.feature_param is not None:
            param = self.feature_param
        if param is not None:
            top = self._watches.max_id()
            if top is not None and top >= param.shape[0]:
                raise IndexError(
                    f"watched feature {top} is out of range: {self.feature_param!r} has {param.shape[0]} rows"
                )
            self._watches.take_refs(param, loop.step())  # watches set before the job start from its first row
        self._param = param
        if param is not None and loop.optimizer is not None:
            self._grad_delta = GradDelta(param, loop.optimizer)
        with self._control.lock:
            engaged = self._engaged_locked()
            self._collecting = engaged
            self._fresh = not engaged  # engaged from the start: the first step is seen whole
        if engaged:
            if self._grad_delta is not None:
                self._grad_delta.attach()
            self.attention.set()

    def _unbind_loop(self, loop: LoopView, status: str, error: str | None, reason: str | None) -> None:
        if self._loop is not loop:
            return
        try:
            if self._grad_delta is not None:
                self._grad_delta.detach()
            self._watches.fetch()
        finally:
            self._last = {"step": loop.step(), **loop_summary(loop)}
            self._last_info = loop.last_info() or self._pause_info
            if status == "failed":
                reason = f"failed: {error}" if error else "failed"
            elif status == "completed":
                reason = None
            self._grad_delta = None
            self._loop = None
            with self._control.lock:
                self._collecting = False
                self._fresh = True
            self._control.unbind(status, error, reason)

    def _manual_pause_point(self, step: int | None) -> bool:
        control = self._control
        loop = self._loop
        if loop is not None and not isinstance(loop, ManualLoop):
            return not loop.stopping()  # a Trainer serves its own pause point
        if loop is None:
            loop = ManualLoop()
            loop.implicit = True  # a loop without dbg.loop(): it stays attached until another binds
            try:
                self._bind_loop(loop)
            except BaseException as exc:
                self._unbind_loop(loop, "failed", describe_error(exc), None)
                raise
        assert isinstance(loop, ManualLoop)
        self.attention.clear()
        if not control.stop_requested:
            latest = self._latest
            loop.begin(step, latest[1] if latest is not None and latest[0] == self._tick else None)
            if self._serve(loop):
                self.attention.set()
        if not control.stop_requested:
            return True
        if loop.implicit:
            # nothing else will say this loop ended: end it now, so the next loop starts afresh
            self._unbind_loop(loop, "stopped", None, control.stop_reason)
        else:
            self.attention.set()  # every later call inside dbg.loop() answers False too
        return False

    def _serve(self, loop: LoopView) -> bool:
        """The pause point's slow path (the loop's thread). Returns True to be called at the next step.

        Data captured since the previous served pause point carries tag
        ``tick`` and belongs to the step just taken.
        """
        control = self._control
        s = loop.step()
        took = loop.took_step()
        tick = self._tick
        with control.lock:
            full = not self._fresh or not took
            self._fresh = False
        breakpoint_reason = None
        if took:
            self._served_count += 1
            self._step_data.drop_older(tick)
            self._publish_grad_delta(tick)
            self._record_watches(loop, s, tick)
            breakpoint_reason = self._check_breakpoints(loop, s)
        self._view_tick = tick
        self._served_step = s
        if control.decide(s, full=full, breakpoint_reason=breakpoint_reason, stopping=loop.stopping()):
            self._prepare_pause(loop, s, tick)
            control.hold(s, loop.stopping, lambda: self._idle(loop, s))
            self._take_watch_refs(s)  # watches added just before a step()/resume()
        self._tick = tick + 1
        with control.lock:
            engaged = self._engaged_locked() and not control.stop_requested
            if not engaged:
                self._collecting = False
                self._fresh = True
            elif not self._collecting:
                # engaged by a command that reached us before _engage() ran: we are between two
                # steps, so the next one is seen whole
                self._collecting = True
                self._fresh = False
        gd = self._grad_delta
        if gd is not None:
            if engaged:
                gd.attach()
            else:
                gd.detach()
        return engaged

    def _publish_grad_delta(self, tick: int) -> None:
        gd = self._grad_delta
        if gd is None or gd.serial == self._gd_seen or gd.delta is None:
            return
        self._gd_seen = gd.serial
        self._step_data.put(GRAD_DELTA, tick, gd.delta)

    def _record_watches(self, loop: LoopView, step: int, tick: int) -> None:
        param = self._param
        if param is None or not self._watches:
            return
        d = param.shape[0]
        metrics = {
            k: v
            for k, (_, v) in sorted(self._step_data.entries(tick).items())
            if isinstance(v, torch.Tensor) and v.dim() == 1 and v.shape[0] == d
        }
        self._watches.record(step, param, metrics)
        self._watches.take_refs(param, step)
        every = self.fetch_every or loop.fetch_every
        if self._watches.n_pending() >= every:
            self._watches.fetch()

    def _take_watch_refs(self, step: int) -> None:
        if self._param is not None and self._watches.needs_refs():
            self._watches.take_refs(self._param, step)

    def _check_breakpoints(self, loop: LoopView, step: int) -> str | None:
        with self._bp_lock:
            bps = list(self._breakpoints.values())
        if not bps:
            return None
        reason: str | None = None
        for bp in bps:
            if not bp.needs_info:
                hit = bp.check_step(step)
                if hit is not None:
                    bp.hits += 1
                    reason = reason or hit
        value_bps = [bp for bp in bps if bp.needs_info]
        if value_bps:
            infos = loop.infos_after(self._bp_checked)
            self._bp_checked = step
            for info in infos:
                for bp in value_bps:
                    hit = bp.check_info(info)
                    if hit is not None:
                        bp.hits += 1
                        reason = reason or hit
        return reason

    def _prepare_pause(self, loop: LoopView, step: int, tick: int) -> None:
        """About to pause: the step's losses on the host, its batch copied, watch points fetched."""
        self._pause_info = loop.pause_info(step)
        latest = self._latest
        captured = latest[1] if latest is not None and latest[0] == tick else None
        if captured is None and loop.took_step():
            captured = loop.batch(step)
        if captured is not None:
            if captured.step is None:
                captured.step = step
            self._batch = captured.cloned_copy()
        self._watches.fetch()

    def _idle(self, loop: LoopView, step: int) -> None:
        """While paused: serve the trainer's requests and take the reference rows of new watches."""
        loop.run_pending()
        self._take_watch_refs(step)

    def _entry(self, key: str) -> tuple[int, Any]:
        if not isinstance(key, str):
            raise TypeError(f"a step-data key is a string, got {type(key).__name__}")
        try:
            return self._step_data.get(key, self._view_tick, self._served_step)
        except KeyError as exc:
            if key == GRAD_DELTA and self._grad_delta is None:
                why = (
                    "no feature_param"
                    if self.feature_param is None
                    else "no optimizer known (pass optimizer= to dbg.loop)"
                )
                raise KeyError(
                    f"{exc.args[0]}; grad_delta needs a feature parameter and its optimizer: {why}"
                ) from None
            raise

    def _step_of(self, tag: int) -> int | None:
        if self._served_step is None:
            return None
        return self._served_step if tag <= self._view_tick else self._served_step + 1

    def _current_step(self) -> int | None:
        loop = self._loop
        return loop.step() if loop is not None else self._last["step"]

    def _weights_snapshot(self) -> torch.Tensor:
        """A copy of the feature parameter taken between two steps (consistent while training runs)."""
        param = self._param
        assert param is not None
        loop = self._loop
        control = self._control
        if isinstance(loop, TrainerLoop) and control.bound and not control.paused and not control.in_loop_thread():
            return loop.trainer._call_in_loop(lambda: param.detach().clone(), DEFAULT_TIMEOUT)
        return param.detach().clone()

    def _no_feature_param(self, what: str) -> str:
        return (
            f"{what} needs a feature parameter: DebugController(feature_param='layer.weight') names a 2-D "
            "parameter whose rows are the features"
        )

    def __repr__(self) -> str:
        st = self.get_state()
        return f"DebugController(state={st['state']!r}, step={st['step']}, feature_param={st['feature_param']!r})"


def _rows(x: Any) -> int:
    return int(x.shape[0]) if isinstance(x, torch.Tensor) and x.dim() >= 1 else -1


def _as_2d(x: Any, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"step data {name!r} is a {type(x).__name__}, not a [D, K] tensor")
    return x
