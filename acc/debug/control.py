"""The control state machine: commands from any thread, obeyed by the loop at its pause point.

Modes: ``run`` (free), ``pause`` (pause at the next full step, then hold),
``step`` (run until the step number ``target``, then pause). A command is
*pending* until the loop sees it (``ack``); the latest command wins. Every
change is made under one lock and announced on one condition, so waiters
in other threads see consistent snapshots and never miss a change.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Literal

__all__ = ["Control", "Mode"]

Mode = Literal["run", "pause", "step"]
Command = Literal["pause", "step", "resume"]

HOLD_POLL_S = 0.05
"""While paused the loop wakes at least this often to serve the trainer's requests (checkpoints)."""


class Control:
    """Shared control state; ``lock`` guards every field, ``cond`` announces every change."""

    def __init__(self, attention: threading.Event) -> None:
        self.attention = attention
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.mode: Mode = "run"
        self.target: int | None = None
        """In ``step`` mode: the step number at which to pause."""
        self.cmd: tuple[Command, int] | None = None
        """The latest command the loop has not seen yet: (kind, n)."""
        self.seq = 0
        """Commands issued so far."""
        self.acked = 0
        """Commands the loop has seen (``seq`` at its last ``ack``)."""
        self.paused = False
        """The loop is holding at a pause point."""
        self.paused_step: int | None = None
        self.reason: str | None = None
        """Why the loop is (or is about to be) paused: "user", "step budget", "breakpoint: ...", or None."""
        self.bound = False
        """A loop (a Trainer's job, or a hand-written loop) is attached."""
        self.expecting = False
        """A Trainer created a job whose thread has not attached yet (commands wait for it)."""
        self.stop_requested = False
        self.stop_reason: str | None = None
        self.loop_thread: threading.Thread | None = None
        self.last_status: str | None = None
        """How the last job ended: completed, stopped, failed (None before the first)."""
        self.error: str | None = None

    # -- commands (any thread) ---------------------------------------------

    def command(self, kind: Command, n: int = 0) -> int:
        """Record a command; returns its sequence number (to wait for it)."""
        with self.lock:
            self.seq += 1
            self.cmd = (kind, n)
            if kind == "resume" and not self.bound:
                self._ack_locked(0)  # nothing to resume: the next job simply runs free
            self.cond.notify_all()
            seq = self.seq
        if kind != "resume":  # a resume is seen by a holding loop (notified) or a stepping one (called each step)
            self.attention.set()
        return seq

    def request_stop(self, reason: str) -> None:
        with self.lock:
            if not self.stop_requested:
                self.stop_reason = reason
            self.stop_requested = True
            self.cond.notify_all()
        self.attention.set()

    def expect(self) -> None:
        with self.lock:
            self.expecting = True
            if not self.bound:  # a stop of an earlier job is not a stop of this one
                self.stop_requested = False
                self.stop_reason = None
            self.cond.notify_all()

    def stop_expecting(self) -> None:
        with self.lock:
            self.expecting = False
            self.cond.notify_all()

    def wake(self) -> None:
        with self.lock:
            self.cond.notify_all()

    def wait_for(self, predicate: Callable[[], bool], timeout: float | None) -> bool:
        """Wait (in a thread other than the loop's) until ``predicate()`` holds under the lock; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.cond:
            while not predicate():
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self.cond.wait(0.1 if remaining is None else min(remaining, 0.1))
        return True

    def in_loop_thread(self) -> bool:
        return self.loop_thread is threading.current_thread()

    # -- the loop's side ---------------------------------------------------

    def _ack_locked(self, step: int) -> None:
        """Apply the latest command (lock held)."""
        if self.acked == self.seq or self.cmd is None:
            self.acked = self.seq
            return
        kind, n = self.cmd
        if kind == "pause":
            self.mode = "pause"
            self.reason = "user"
            self.target = None
        elif kind == "step":
            self.mode = "step"
            self.target = step + n
            self.reason = None
        else:
            self.mode = "run"
            self.target = None
            self.reason = None
        self.cmd = None
        self.acked = self.seq
        self.cond.notify_all()

    def decide(self, step: int, *, full: bool, breakpoint_reason: str | None, stopping: bool) -> bool:
        """At a pause point: apply commands, then say whether to pause here.

        ``full``: the controller saw this whole step (its step data and batch
        are complete); a user's pause waits for such a step. A breakpoint or a
        used-up step budget pauses at once.
        """
        with self.lock:
            self._ack_locked(step)
            if stopping or self.stop_requested:
                return False
            if breakpoint_reason is not None:
                self.mode, self.reason, self.target = "pause", breakpoint_reason, None
                return True
            if self.mode == "step" and self.target is not None and step >= self.target:
                self.mode, self.reason, self.target = "pause", "step budget", None
                return True
            return self.mode == "pause" and full

    def hold(self, step: int, stopping: Callable[[], bool], idle: Callable[[], None]) -> None:
        """Hold the loop while paused: serve ``idle()`` at least every 50 ms, leave on a step/resume or a stop."""
        with self.lock:
            self.paused = True
            self.paused_step = step
            self.cond.notify_all()
        try:
            while True:
                with self.lock:
                    self._ack_locked(step)
                    if self.stop_requested or stopping() or self.mode != "pause":
                        # leave in the same critical section as the ack: a waiter never sees
                        # its command acknowledged while the old pause still shows
                        self.paused = False
                        self.cond.notify_all()
                        return
                    self.cond.wait(HOLD_POLL_S)
                idle()
        finally:
            if self.paused:
                with self.lock:
                    self.paused = False
                    self.cond.notify_all()

    def steps_left(self, step: int) -> int | None:
        with self.lock:
            if self.mode == "step" and self.target is not None:
                return max(0, self.target - step)
            return None

    # -- job lifecycle (the loop's thread) ----------------------------------

    def bind(self) -> None:
        with self.lock:
            self.bound = True
            self.expecting = False
            self.loop_thread = threading.current_thread()
            self.stop_requested = False
            self.stop_reason = None
            self.paused = False
            self.error = None
            self.last_status = None
            self.reason = None
            pending = self.cmd is not None and self.acked != self.seq
            self.cond.notify_all()
        if pending:
            self.attention.set()  # a pause or step(n) given before the job: obey it before the first step

    def unbind(self, status: str, error: str | None, reason: str | None) -> None:
        with self.lock:
            self.bound = False
            self.expecting = False
            self.loop_thread = None
            self.paused = False
            self.mode = "run"
            self.target = None
            self.cmd = None
            self.acked = self.seq
            self.last_status = status
            self.error = error
            self.reason = reason
            self.stop_requested = False  # obeyed: the loop ended
            self.cond.notify_all()

    def state_name(self, stopping: bool) -> str:
        """running, pausing, paused, stopped or finished (lock held by the caller)."""
        if not self.bound and not self.expecting:
            return "finished" if self.last_status == "completed" else "stopped"
        if stopping or self.stop_requested:
            return "stopped"
        if self.paused:
            return "paused"
        if self.mode == "pause" or (self.cmd is not None and self.cmd[0] == "pause"):
            return "pausing"
        return "running"

    def pending_name(self) -> str | None:
        """The command the loop has not seen yet (lock held by the caller)."""
        if self.stop_requested and self.bound:
            return "stop"
        return self.cmd[0] if self.cmd is not None and self.acked != self.seq else None
