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
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import torch

from acc.debug.batch import describe_batch
from acc.debug.breakpoints import BreakpointError, BreakpointHandle, Predicate, make_breakpoint
from acc.debug.cosine import as_rows, order_features
from acc.debug.cosine import cosine_matrix as _cosine_matrix
from acc.debug.engine import DEFAULT_TIMEOUT, GRAD_DELTA, Engine
from acc.debug.features import resolve_feature_param
from acc.debug.forces import force_detail as _force_detail
from acc.debug.forces import force_summary as _force_summary
from acc.debug.loops import ManualLoop
from acc.debug.step_data import describe_value, to_host
from acc.debug.tables import DEFAULT_RULES, StatusRule, feature_table
from acc.debug.watches import DEFAULT_TRAJECTORY_CAP
from acc.events import RemovableHandle

if TYPE_CHECKING:
    from acc.trainer import Trainer

__all__ = ["GRAD_DELTA", "BreakpointError", "DebugController"]


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
        self.feature_param = feature_param
        self.table_rules: list[StatusRule] = [
            StatusRule.coerce(r) for r in (DEFAULT_RULES if table_rules is None else table_rules)
        ]
        self._engine = Engine(feature_param, trajectory_cap, fetch_every)
        self.attention: threading.Event = self._engine.attention
        """Set whenever the loop must call the controller at its pause point (the Trainer clears it)."""

    # ======================================================================
    # control
    # ======================================================================

    def pause(self, *, wait: bool = True, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        """Pause at the loop's next pause point; returns ``get_state()``.

        With ``wait`` (and a job running in another thread) this blocks until
        the loop is paused, up to ``timeout`` seconds (then the state says
        ``pausing`` and the pause still happens). A pause that reaches a loop
        running free in the middle of a step lands on the next step, the
        first one the controller saw whole (so its batch and step data are
        complete). With no job running, the next job pauses before its first step.
        """
        seq = self._engine.command("pause")
        self._engine.wait(seq, wait, timeout, lambda c: c.paused)
        return self.get_state()

    def step(self, n: int = 1, *, wait: bool = True, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        """Advance exactly ``n`` optimizer steps from where the loop is, then pause; returns ``get_state()``.

        With ``wait`` this blocks until the loop has taken the n steps and
        paused again (or the job ended), up to ``timeout`` seconds. With no job
        running, the next job takes n steps and pauses.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"step(n) needs a positive integer number of steps, got {n!r}")
        seq = self._engine.command("step", n)
        self._engine.wait(seq, wait, timeout, lambda c: c.paused)
        return self.get_state()

    def resume(self, *, wait: bool = True, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        """Run free again; with ``wait``, until the loop has left its pause. Returns ``get_state()``."""
        seq = self._engine.command("resume")
        self._engine.wait(seq, wait, timeout, lambda c: not c.paused)
        return self.get_state()

    def stop(self, *, wait: bool = True, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        """End the running job at its next pause point (a paused loop stops within 100 ms); returns ``get_state()``.

        A Trainer's job ends "stopped"; a hand-written loop sees ``wait_if_paused()``
        return False. With ``wait``, blocks until a Trainer's job has ended.
        Does nothing when no loop is running.
        """
        self._engine.stop(wait, timeout)
        return self.get_state()

    @property
    def is_paused(self) -> bool:
        """True while the loop is holding at a pause point."""
        return self._engine.control.paused

    @property
    def wants_step_data(self) -> bool:
        """True while step data is kept; a loop may skip computing step data when False."""
        return self._engine.collecting

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
        return self._engine.manual_pause_point(step)

    def get_state(self) -> dict[str, Any]:
        """The controller's live state, JSON-friendly.

        ``{"state": running|pausing|paused|stopped|finished, "paused", "step",
        "max_steps", "has_batch", "batch_step", "reason" ("user", "step
        budget", "breakpoint: ...", or why the job ended), "pending" (a
        command the loop has not seen yet: pause/step/resume/stop, or None),
        "steps_left" (during step(n)), "loss", "losses", "health",
        "overall_health", "loss_step" (the step those values belong to),
        "job_id", "job_name", "job_status", "error", "loop" (trainer|manual|None),
        "foreground" (the loop runs in the main thread: a notebook's widgets
        cannot reach it until the cell ends), "watched", "breakpoints",
        "feature_param", "n_features"}``.
        """
        return self._engine.state()

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
        with self._engine.manual_loop(ManualLoop(model, optimizer, name)):
            yield self

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
        bp = make_breakpoint(next(self._engine.bp_ids), condition, step=step, every=every)
        return BreakpointHandle(bp, self._engine.add_breakpoint(bp))

    def list_breakpoints(self) -> list[dict[str, Any]]:
        """``[{"id", "kind", "description", "hits"}, ...]``."""
        return self._engine.list_breakpoints()

    def remove_breakpoint(self, bp_id: int) -> None:
        """Remove one breakpoint by its ``list_breakpoints()`` id (a widget's toggle); KeyError when there is none."""
        self._engine.remove_breakpoint(bp_id)

    def clear_breakpoints(self) -> None:
        engine = self._engine
        with engine.bp_lock:
            engine.breakpoints.clear()

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
        self._engine.capture_batch(batch, loss, step)

    def get_batch(self, *, nrow: int = 8) -> dict[str, Any] | None:
        """The batch of the step the loop paused at (or the last captured one); None when there is none.

        ``{"step", "loss", "losses", "labels" (list, when the batch has class
        labels), "kind": "image"|"tensor"|"object"|"none", "png" (bytes of a
        grid of up to 64 images, ``nrow`` per row, for [B, C, H, W] with C in
        1/3 or [B, H, W] inputs), "grid" (its layout), "summary" (shape,
        dtype, min/max/mean/std of the inputs)}``.
        """
        batch = self._engine.batch
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
        engine = self._engine
        if engine.collecting:
            engine.step_data.put(key, engine.tick, data)

    def list_step_data_keys(self) -> list[str]:
        """The keys of the current step's data (the paused step's, while paused), sorted."""
        return sorted(self._engine.entries())

    def step_data_info(self) -> dict[str, dict[str, Any]]:
        """``{key: {"step", "shape", "dtype", "kind"}}`` of the current step data, without fetching values."""
        return {
            key: {"step": self._engine.step_of(tag), **describe_value(value)}
            for key, (tag, value) in sorted(self._engine.entries().items())
        }

    def get_step_data(self, key: str, *, as_tensor: bool = False) -> dict[str, Any]:
        """``{"key", "step", "value", "shape", "dtype", "kind"}`` of one step-data entry.

        ``value`` is converted now: tensors to numpy arrays (0-d to numbers),
        containers converted inside; ``as_tensor=True`` returns it unconverted.
        An unknown key raises KeyError listing the keys there are.
        """
        tag, value = self._engine.entry(key)
        return {
            "key": key,
            "step": self._engine.step_of(tag),
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
            entries = self._engine.entries()
            metrics = {k: v for k, (_, v) in sorted(entries.items()) if isinstance(v, torch.Tensor) and v.dim() == 1}
            if not metrics:
                raise ValueError(f"no per-feature ([D]) metrics in the step data; keys: {sorted(entries) or 'none'}")
        else:
            metrics = {k: self._engine.entry(k)[1] for k in keys}
        table = feature_table(
            metrics,
            rules=self.table_rules if rules is None else rules,
            sort_by=sort_by,
            descending=descending,
            limit=limit,
        )
        table["step"] = self._engine.served_step
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
        engine = self._engine
        tag_a, fa = engine.entry(a)
        _, fb = engine.entry(b)
        weight = engine.weights_snapshot() if engine.param is not None else None
        if weight is not None and (weight.dim() != 2 or weight.shape[0] != _rows(fa)):
            weight = None
        out = _force_detail(feature, _as_2d(fa, a), _as_2d(fb, b), weight, a_name=a, b_name=b)
        out["step"] = engine.step_of(tag_a)
        return out

    def force_summary(self, *, a: str = GRAD_DELTA, b: str) -> dict[str, Any]:
        """How many features' two forces agree (cos > 0), fight (cos < 0) or have none (a zero force).

        ``{"a", "b", "step", "n", "agree", "fight", "neutral", "mean_cos", "cos": [D], "norm_a": [D], "norm_b": [D]}``.
        """
        tag_a, fa = self._engine.entry(a)
        _, fb = self._engine.entry(b)
        out = _force_summary(_as_2d(fa, a), _as_2d(fb, b), a_name=a, b_name=b)
        out["step"] = self._engine.step_of(tag_a)
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
        engine = self._engine
        if source == "weights":
            if engine.param is None:
                raise ValueError(self._no_feature_param("cosine_matrix('weights')"))
            x = engine.weights_snapshot()
            step = engine.current_step()
        else:
            tag, x = engine.entry(source)
            step = engine.step_of(tag)
        rows = as_rows(x, source)
        order = None
        if order_by is not None:
            _, metric = engine.entry(order_by)
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
        param = self._engine.param
        if feature < 0 or (param is not None and feature >= param.shape[0]):
            d = f"{param.shape[0]} rows (0..{param.shape[0] - 1})" if param is not None else "no negative rows"
            raise IndexError(f"feature {feature} is out of range: the feature parameter has {d}")
        watches = self._engine.watches
        watches.add(feature)
        self._engine.engage()
        self._engine.control.wake()  # a paused loop takes the reference row now

        def remove() -> None:
            watches.remove(feature)

        return RemovableHandle(remove)

    def remove_watch(self, feature: int) -> None:
        """Stop following ``feature``; its trajectory is kept. KeyError when it is not watched."""
        watches = self._engine.watches
        if not watches.remove(feature):
            raise KeyError(f"feature {feature!r} is not watched; watched: {watches.watched()}")

    def get_watched(self) -> list[int]:
        return self._engine.watches.watched()

    def get_trajectories(self) -> dict[int, list[dict[str, Any]]]:
        """``{feature: [{"step", "cosine", <metric>...}, ...]}`` for every feature watched in this job
        (removed watches included); non-finite values are None. At most ``trajectory_cap`` points each."""
        return self._engine.watches.trajectories()

    def trajectories_frame(self) -> Any:
        """The trajectories as a pandas DataFrame: columns feature, step, cosine and one per metric."""
        return self._engine.watches.frame()

    def clear_trajectories(self) -> None:
        self._engine.watches.clear_trajectories()

    # ======================================================================
    # the loop's side: DebugHook (Trainer) and hand-written loops
    # ======================================================================

    def _expect(self, trainer: Trainer) -> None:
        """DebugHook: ``start()``/``fit()`` created a job (caller's thread); commands wait for it to attach."""
        self._engine.expect(trainer)

    def _bind(self, trainer: Trainer) -> None:
        """DebugHook: a Trainer's job starts (training thread)."""
        self._engine.bind_trainer(trainer)

    def _unbind(self, trainer: Trainer, status: str) -> None:
        """DebugHook: the job ended (training thread)."""
        self._engine.unbind_trainer(trainer, status)

    def _pause_point(self, trainer: Trainer) -> bool:
        """DebugHook: the Trainer's pause point, when ``attention`` was set. True: call again next step."""
        return self._engine.trainer_pause_point(trainer)

    def _wake(self) -> None:
        """DebugHook: the trainer is stopping; leave any wait now."""
        self._engine.control.wake()

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
