"""The controller's engine: shared state, the loop's side of the pause point, and waiting for the loop.

``DebugController`` is the public face; this module does the work. Threads:
commands and reads come from any thread; ``serve`` (the pause point's slow
path), ``bind_loop`` and ``unbind_loop`` run in the loop's thread.

Step data and batches are tagged with ``tick``, the number of pause points
served so far: what was captured since the previous served pause point
belongs to the step just taken (lazy clearing, no per-step handler). While the
loop runs free nothing is served and nothing is kept; when someone asks
(``engage``) the controller is called at every pause point, and a user's pause
lands on the first step it saw whole (``fresh`` marks the step that was
already under way).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import torch

from acc.debug.batch import CapturedBatch
from acc.debug.breakpoints import Breakpoint
from acc.debug.control import Command, Control
from acc.debug.features import GradDelta, resolve_feature_param
from acc.debug.loops import LoopView, ManualLoop, TrainerLoop, describe_error, loop_summary
from acc.debug.step_data import StepData
from acc.debug.watches import Watches
from acc.state import StepInfo

if TYPE_CHECKING:
    from acc.trainer import Trainer

__all__ = ["DEFAULT_TIMEOUT", "GRAD_DELTA", "Engine"]

log = logging.getLogger(__name__)

GRAD_DELTA = "grad_delta"
"""The step-data key of the feature parameter's change over the optimizer step."""

DEFAULT_TIMEOUT = 10.0

_NO_LOOP: dict[str, Any] = {"step": None, "job_id": None, "job_name": None, "max_steps": None, "loop": None}


class Engine:
    """Everything a DebugController knows and does, behind its public methods."""

    def __init__(self, feature_param: str | torch.Tensor | None, trajectory_cap: int, fetch_every: int | None) -> None:
        self.attention = threading.Event()
        self.control = Control(self.attention)
        self.feature_param = feature_param
        self.fetch_every = fetch_every
        self.watches = Watches(trajectory_cap)
        self.step_data = StepData()
        self.breakpoints: dict[int, Breakpoint] = {}
        self.bp_lock = threading.Lock()
        self.bp_ids = itertools.count(1)
        self.loop: LoopView | None = None
        self.expected: Trainer | None = None
        self.param: torch.Tensor | None = feature_param if isinstance(feature_param, torch.Tensor) else None
        self.grad_delta: GradDelta | None = None
        self.gd_seen = 0
        self.collecting = False
        """Step data and batches are kept (someone asks); False while the loop runs free."""
        self.fresh = True
        """The next served step started before the controller engaged: its data is incomplete."""
        self.tick = 0
        self.view_tick = 0
        self.served_step: int | None = None
        self.latest: tuple[int, CapturedBatch] | None = None
        self.batch: CapturedBatch | None = None
        self.pause_info: StepInfo | None = None
        self.last_info: StepInfo | None = None
        self.bp_checked = -1
        self.last: dict[str, Any] = dict(_NO_LOOP)

    # -- commands (any thread) ---------------------------------------------

    def command(self, kind: Command, n: int = 0) -> int:
        seq = self.control.command(kind, n)
        if kind != "resume":  # a resume needs nothing from the loop but to leave its pause
            self.engage()
        return seq

    def wait(self, seq: int, wait: bool, timeout: float, done: Callable[[Control], bool]) -> None:
        """Block until the loop obeyed command ``seq`` (``done``), it was superseded, or the job ended."""
        control = self.control
        if not wait or not (control.bound or control.expecting) or control.in_loop_thread():
            return

        def settled() -> bool:  # the lock is held
            if control.seq != seq or not (control.bound or control.expecting) or control.stop_requested:
                return True
            loop = self.loop
            if control.bound and loop is not None and loop.stopping():
                return True
            return control.acked >= seq and done(control)

        if not control.wait_for(settled, timeout):
            log.warning("the loop did not obey within %.1f s (a long step?); the command stays pending", timeout)

    def stop(self, wait: bool, timeout: float) -> None:
        control = self.control
        reason = "stopped from the debugger"
        with control.lock:  # one consistent view: self.loop is set before bound, expected cleared after
            bound, expecting = control.bound, control.expecting
            loop, expected = self.loop, self.expected
        if not bound and expecting and expected is not None:
            # a job that start() created and whose thread has not attached yet
            expected.stop(wait=wait and not control.in_loop_thread(), timeout=timeout, reason=reason)
            return
        if not bound or loop is None:
            return
        loop.request_stop(reason)
        control.request_stop(reason)
        if wait and isinstance(loop, TrainerLoop) and not control.in_loop_thread():
            job = loop.trainer.job
            if job is not None:
                job._done.wait(timeout)

    def engage(self) -> None:
        """Someone asks (a command, a watch, a breakpoint): keep step data and be called every step."""
        with self.control.lock:
            if not self.collecting:
                self.collecting = True
                self.fresh = True  # the step in progress started before: its data is incomplete
        self.attention.set()

    def engaged_locked(self) -> bool:
        c = self.control
        return (
            c.mode != "run"
            or (c.cmd is not None and c.acked != c.seq)
            or c.paused
            or bool(self.watches)
            or bool(self.breakpoints)
        )

    # -- breakpoints and captures ------------------------------------------

    def add_breakpoint(self, bp: Breakpoint) -> Callable[[], None]:
        with self.bp_lock:
            self.breakpoints[bp.id] = bp
        self.engage()

        def remove() -> None:
            with self.bp_lock:
                self.breakpoints.pop(bp.id, None)

        return remove

    def list_breakpoints(self) -> list[dict[str, Any]]:
        with self.bp_lock:
            return [bp.to_dict() for bp in self.breakpoints.values()]

    def remove_breakpoint(self, bp_id: int) -> None:
        with self.bp_lock:
            if bp_id not in self.breakpoints:
                raise KeyError(f"no breakpoint {bp_id!r}; breakpoints: {sorted(self.breakpoints) or 'none'}")
            del self.breakpoints[bp_id]

    def capture_batch(self, batch: Any, loss: Any, step: int | None) -> None:
        cap = CapturedBatch.of(step, batch, loss)
        control = self.control
        if not control.bound or control.paused:
            cap = cap.cloned_copy()
            self.batch = cap
        self.latest = (self.tick, cap)

    # -- reading (any thread) ----------------------------------------------

    def entry(self, key: str) -> tuple[int, Any]:
        """``(tag, value)`` of a current step-data entry; KeyError listing the keys otherwise."""
        if not isinstance(key, str):
            raise TypeError(f"a step-data key is a string, got {type(key).__name__}")
        try:
            return self.step_data.get(key, self.view_tick, self.served_step)
        except KeyError as exc:
            if key == GRAD_DELTA and self.grad_delta is None:
                why = (
                    "no feature_param"
                    if self.feature_param is None
                    else "no optimizer known (pass optimizer= to dbg.loop)"
                )
                raise KeyError(
                    f"{exc.args[0]}; grad_delta needs a feature parameter and its optimizer: {why}"
                ) from None
            raise

    def entries(self) -> dict[str, tuple[int, Any]]:
        return self.step_data.entries(self.view_tick)

    def step_of(self, tag: int) -> int | None:
        if self.served_step is None:
            return None
        return self.served_step if tag <= self.view_tick else self.served_step + 1

    def current_step(self) -> int | None:
        loop = self.loop
        return loop.step() if loop is not None else self.last["step"]

    def weights_snapshot(self) -> torch.Tensor:
        """A copy of the feature parameter taken between two steps (consistent while training runs)."""
        param = self.param
        assert param is not None
        loop = self.loop
        control = self.control
        if isinstance(loop, TrainerLoop) and control.bound and not control.paused and not control.in_loop_thread():
            return loop.trainer._call_in_loop(lambda: param.detach().clone(), DEFAULT_TIMEOUT)
        return param.detach().clone()

    def state(self) -> dict[str, Any]:
        """The live state (see ``DebugController.get_state``)."""
        control = self.control
        loop = self.loop
        with control.lock:
            bound = control.bound
            stopping = bool(bound and loop is not None and loop.stopping())
            name = control.state_name(stopping)
            paused = control.paused
            pending = control.pending_name()
            reason = control.reason
            job_status = "running" if (bound or control.expecting) else control.last_status
            error = control.error
            mode, target = control.mode, control.target
            foreground = bound and control.loop_thread is threading.main_thread()
        step = loop.step() if (bound and loop is not None) else self.last["step"]
        info = self.pause_info if paused else (loop.last_info() if loop is not None else self.last_info)
        batch = self.batch
        meta = (
            loop_summary(loop)
            if loop is not None
            else {k: self.last[k] for k in ("loop", "job_id", "job_name", "max_steps")}
        )
        spec = self.feature_param
        steps_left = max(0, target - step) if (mode == "step" and target is not None and step is not None) else None
        return {
            "state": name,
            "paused": paused,
            "step": step,
            "max_steps": meta["max_steps"],
            "has_batch": batch is not None,
            "batch_step": batch.step if batch is not None else None,
            "reason": reason,
            "pending": pending,
            "steps_left": steps_left,
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
            "foreground": foreground,
            "watched": self.watches.watched(),
            "breakpoints": self.list_breakpoints(),
            "feature_param": spec if isinstance(spec, str) or spec is None else "<tensor>",
            "n_features": int(self.param.shape[0]) if self.param is not None else None,
        }

    # -- a Trainer's job (DebugHook) ----------------------------------------

    def expect(self, trainer: Trainer) -> None:
        self.expected = trainer  # before expecting is set: stop() relies on the order
        self.control.expect()

    def bind_trainer(self, trainer: Trainer) -> None:
        loop = TrainerLoop(trainer)
        try:
            self.bind_loop(loop)
        except BaseException:
            if self.loop is not loop:  # refused before attaching (another loop is attached)
                self.control.stop_expecting()
            raise
        finally:
            self.expected = None  # after bound is set: stop() relies on the order

    def unbind_trainer(self, trainer: Trainer, status: str) -> None:
        if self.expected is trainer:  # it failed before attaching
            self.expected = None
            self.control.stop_expecting()
        loop = self.loop
        if not isinstance(loop, TrainerLoop) or loop.trainer is not trainer:
            return
        error = describe_error(trainer.state.error) if status == "failed" else None
        reason = trainer.state.stop_reason or trainer._stop_reason
        self.unbind_loop(loop, status, error, reason)

    def trainer_pause_point(self, trainer: Trainer) -> bool:
        loop = self.loop
        if not isinstance(loop, TrainerLoop) or loop.trainer is not trainer:
            return False
        return self.serve(loop)

    # -- hand-written loops ---------------------------------------------------

    @contextlib.contextmanager
    def manual_loop(self, loop: ManualLoop) -> Iterator[None]:
        status, error = "completed", None
        try:
            self.bind_loop(loop)
            yield
            if self.control.stop_requested:
                status = "stopped"
        except KeyboardInterrupt:
            status = "stopped"
            raise
        except BaseException as exc:
            status, error = "failed", describe_error(exc)
            raise
        finally:
            self.unbind_loop(loop, status, error, self.control.stop_reason)

    def manual_pause_point(self, step: int | None) -> bool:
        """``wait_if_paused``'s slow path; False once a stop was asked."""
        control = self.control
        loop = self.loop
        if loop is not None and not isinstance(loop, ManualLoop):
            return not loop.stopping()  # a Trainer serves its own pause point
        if loop is None:
            loop = ManualLoop()
            loop.implicit = True  # a loop without dbg.loop(): it stays attached until another binds
            try:
                self.bind_loop(loop)
            except BaseException as exc:
                self.unbind_loop(loop, "failed", describe_error(exc), None)
                raise
        assert isinstance(loop, ManualLoop)
        self.attention.clear()
        if not control.stop_requested:
            latest = self.latest
            loop.begin(step, latest[1] if latest is not None and latest[0] == self.tick else None)
            if self.serve(loop):
                self.attention.set()
        if not control.stop_requested:
            return True
        if loop.implicit:
            # nothing else will say this loop ended: end it now, so the next loop starts afresh
            self.unbind_loop(loop, "stopped", None, control.stop_reason)
        else:
            self.attention.set()  # every later call inside dbg.loop() answers False too
        return False

    # -- attach and detach (the loop's thread) --------------------------------

    def bind_loop(self, loop: LoopView) -> None:
        """Attach a loop. If this raises after attaching, the caller ends it "failed"."""
        old = self.loop
        if old is not None and self.control.bound:
            if isinstance(old, ManualLoop) and old.implicit:
                self.unbind_loop(old, "completed", None, None)  # a loop that never said it ended
            else:
                raise RuntimeError(
                    f"this DebugController already steers a running {old.kind} loop (job {old.job_id}); "
                    "use one controller per loop"
                )
        self.grad_delta = None
        self.gd_seen = 0
        self.watches.start_job()
        self.step_data.clear()
        self.batch = None
        self.latest = None
        self.pause_info = None
        manual = isinstance(loop, ManualLoop)
        self.bp_checked = -1 if manual else loop.step()
        self.served_step = None if manual else loop.step()
        self.tick += 1
        self.view_tick = self.tick
        self.loop = loop
        self.control.bind()
        param = self.param
        if isinstance(self.feature_param, str):
            param = resolve_feature_param(loop.model, self.feature_param)
        elif self.feature_param is not None:
            param = self.feature_param
        if param is not None:
            top = self.watches.max_id()
            if top is not None and top >= param.shape[0]:
                raise IndexError(
                    f"watched feature {top} is out of range: {self.feature_param!r} has {param.shape[0]} rows"
                )
            self.watches.take_refs(param, loop.step())  # watches set before the job start from its first row
        self.param = param
        if param is not None and loop.optimizer is not None:
            self.grad_delta = GradDelta(param, loop.optimizer)
        with self.control.lock:
            engaged = self.engaged_locked()
            self.collecting = engaged
            self.fresh = not engaged  # engaged from the start: the first step is seen whole
        if engaged:
            if self.grad_delta is not None:
                self.grad_delta.attach()
            self.attention.set()

    def unbind_loop(self, loop: LoopView, status: str, error: str | None, reason: str | None) -> None:
        if self.loop is not loop:
            return
        try:
            if self.grad_delta is not None:
                self.grad_delta.detach()
            self.watches.fetch()
        finally:
            self.last = {"step": loop.step(), **loop_summary(loop)}
            self.last_info = loop.last_info() or self.pause_info
            if status == "failed":
                reason = f"failed: {error}" if error else "failed"
            elif status == "completed":
                reason = None
            self.grad_delta = None
            self.loop = None
            with self.control.lock:
                self.collecting = False
                self.fresh = True
            self.control.unbind(status, error, reason)

    # -- the pause point's slow path (the loop's thread) -----------------------

    def serve(self, loop: LoopView) -> bool:
        """Called at a pause point while engaged. Returns True to be called at the next step too."""
        control = self.control
        s = loop.step()
        took = loop.took_step()
        tick = self.tick
        with control.lock:
            full = not self.fresh or not took
            self.fresh = False
        breakpoint_reason = None
        if took:
            self.step_data.drop_older(tick)
            self._publish_grad_delta(tick)
            self._record_watches(loop, s, tick)
            breakpoint_reason = self._check_breakpoints(loop, s)
        self.view_tick = tick
        self.served_step = s
        if control.decide(s, full=full, breakpoint_reason=breakpoint_reason, stopping=loop.stopping()):
            self._prepare_pause(loop, s, tick)
            control.hold(s, loop.stopping, lambda: self._idle(loop, s))
            self._take_watch_refs(s)  # watches added just before a step()/resume()
        self.tick = tick + 1
        with control.lock:
            engaged = self.engaged_locked() and not control.stop_requested
            if not engaged:
                self.collecting = False
                self.fresh = True
            elif not self.collecting:
                # engaged by a command that reached us before engage() ran: we are between two
                # steps, so the next one is seen whole
                self.collecting = True
                self.fresh = False
        gd = self.grad_delta
        if gd is not None:
            if engaged:
                gd.attach()
            else:
                gd.detach()
        return engaged

    def _publish_grad_delta(self, tick: int) -> None:
        gd = self.grad_delta
        if gd is None or gd.serial == self.gd_seen or gd.delta is None:
            return
        self.gd_seen = gd.serial
        self.step_data.put(GRAD_DELTA, tick, gd.delta)

    def _record_watches(self, loop: LoopView, step: int, tick: int) -> None:
        param = self.param
        if param is None or not self.watches:
            return
        d = param.shape[0]
        metrics = {
            k: v
            for k, (_, v) in sorted(self.step_data.entries(tick).items())
            if isinstance(v, torch.Tensor) and v.dim() == 1 and v.shape[0] == d
        }
        self.watches.record(step, param, metrics)
        self.watches.take_refs(param, step)
        every = self.fetch_every or loop.fetch_every
        if self.watches.n_pending() >= every:
            self.watches.fetch()

    def _take_watch_refs(self, step: int) -> None:
        if self.param is not None and self.watches.needs_refs():
            self.watches.take_refs(self.param, step)

    def _check_breakpoints(self, loop: LoopView, step: int) -> str | None:
        with self.bp_lock:
            bps = list(self.breakpoints.values())
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
            infos = loop.infos_after(self.bp_checked)  # the one host fetch of this step
            self.bp_checked = step
            for info in infos:
                for bp in value_bps:
                    hit = bp.check_info(info)
                    if hit is not None:
                        bp.hits += 1
                        reason = reason or hit
        return reason

    def _prepare_pause(self, loop: LoopView, step: int, tick: int) -> None:
        """About to pause: the step's losses on the host, its batch copied, watch points fetched."""
        self.pause_info = loop.pause_info(step)
        latest = self.latest
        captured = latest[1] if latest is not None and latest[0] == tick else None
        if captured is None and loop.took_step():
            captured = loop.batch(step)
        if captured is not None:
            if captured.step is None:
                captured.step = step
            self.batch = captured.cloned_copy()
        self.watches.fetch()

    def _idle(self, loop: LoopView, step: int) -> None:
        """While paused: serve the trainer's requests and take the reference rows of new watches."""
        loop.run_pending()
        self._take_watch_refs(step)
