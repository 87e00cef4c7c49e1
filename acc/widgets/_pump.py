"""UpdatePump: the one throttled, coalescing path from the training thread to the widgets.

The training thread must never wait on the UI, and a loop at 10k steps/s must
not flood the browser (Jupyter drops IOPub messages over its rate limit
without telling anyone). So a widget never updates its traits from an event
handler; the handler only says "this widget needs a refresh"::

    pump = default_pump()
    trainer.on(Event.METRICS_FETCHED, lambda state: pump.schedule((id(panel), "refresh"), panel.refresh))

``schedule(key, fn)`` is O(1) and never blocks on widget work: it stores
``fn`` under ``key`` (a later call with the same key replaces it: the latest
wins) and wakes the pump thread. The pump thread runs everything pending in
one *batch*, at most ``max_hz`` batches per second: the first batch after a
quiet period runs at once (low latency), later ones wait for the interval.
Each ``fn`` sets its widget's traits inside ``widget.hold_sync()``, so one
batch costs one message per widget that changed.

``every(key, seconds, fn)`` schedules ``fn`` again and again (a poll for
state that has no event, such as a debugger's pause); it returns a handle
that stops it. A poll that changes nothing sends nothing: traitlets only
notifies on a change.

``flush()`` runs everything pending now, in the calling thread, ignoring the
rate limit: widgets call it when a job pauses, stops or ends, so the final
state is never left waiting (the Trainer fires JOB_ENDED before ``job.wait()``
returns, so after ``job.wait()`` every widget shows the end of the job).

Batches never overlap: the pump thread and ``flush()`` take the same lock, so
one key's ``fn`` never runs twice at once. An exception from ``fn`` is logged
with its traceback and counted; it never stops the pump (widgets wrap their
refresh so that the error is also shown under the widget).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable

from acc.events import RemovableHandle

__all__ = ["DEFAULT_MAX_HZ", "UpdatePump", "default_pump"]

log = logging.getLogger(__name__)

DEFAULT_MAX_HZ = 10.0


class UpdatePump:
    """Coalesces scheduled widget refreshes by key and runs them at most ``max_hz`` times a second."""

    def __init__(self, max_hz: float = DEFAULT_MAX_HZ, *, name: str = "acc-widget-pump") -> None:
        if isinstance(max_hz, bool) or not isinstance(max_hz, (int, float)) or not 0 < max_hz <= 1000:
            raise ValueError(f"max_hz must be a number in (0, 1000], got {max_hz!r}")
        self.max_hz = float(max_hz)
        self.name = name
        self._pending: dict[Hashable, Callable[[], object]] = {}
        self._polls: dict[Hashable, tuple[float, Callable[[], object]]] = {}
        self._next_poll: dict[Hashable, float] = {}
        self._cond = threading.Condition(threading.Lock())
        self._run_lock = threading.RLock()  # one batch at a time (pump thread or flush())
        self._thread: threading.Thread | None = None
        self._closed = False
        self._last_batch = -float("inf")  # monotonic time the last batch started
        self.batches = 0
        """Batches run so far (pump thread and flush() together)."""
        self.calls = 0
        """Scheduled functions run so far."""
        self.errors = 0
        """Scheduled functions that raised."""

    @property
    def interval(self) -> float:
        """Seconds between two batches of the pump thread."""
        return 1.0 / self.max_hz

    def schedule(self, key: Hashable, fn: Callable[[], object]) -> None:
        """Run ``fn`` in a coming batch; replaces what is pending under ``key``. Safe from any thread."""
        if not callable(fn):
            raise TypeError(f"schedule() needs a callable, got {type(fn).__name__}")
        with self._cond:
            if self._closed:
                raise RuntimeError(f"the update pump {self.name!r} is closed")
            self._pending[key] = fn
            self._ensure_thread()
            self._cond.notify()

    def every(self, key: Hashable, seconds: float, fn: Callable[[], object]) -> RemovableHandle:
        """Schedule ``fn`` under ``key`` every ``seconds`` (>= the pump's interval) until the handle is removed."""
        if not callable(fn):
            raise TypeError(f"every() needs a callable, got {type(fn).__name__}")
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
            raise ValueError(f"every() needs a positive number of seconds, got {seconds!r}")
        period = max(float(seconds), self.interval)
        with self._cond:
            if self._closed:
                raise RuntimeError(f"the update pump {self.name!r} is closed")
            self._polls[key] = (period, fn)
            self._next_poll[key] = time.monotonic() + period
            self._ensure_thread()
            self._cond.notify()

        def remove() -> None:
            with self._cond:
                if self._polls.get(key, (0.0, None))[1] is fn:
                    del self._polls[key]
                    self._next_poll.pop(key, None)

        return RemovableHandle(remove)

    def _ensure_thread(self) -> None:
        # called with self._cond held
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def cancel(self, key: Hashable) -> None:
        """Forget what is pending under ``key`` (a widget that is closed)."""
        with self._cond:
            self._pending.pop(key, None)

    def pending(self) -> int:
        """How many keys wait for the next batch."""
        with self._cond:
            return len(self._pending)

    def flush(self) -> None:
        """Run everything pending now, in this thread, whatever the rate limit."""
        with self._run_lock:
            with self._cond:
                batch, self._pending = self._pending, {}
            if batch:
                self._run_batch(batch)

    def close(self, timeout: float | None = 5.0) -> None:
        """Run what is pending, then stop the pump thread."""
        self.flush()
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run_batch(self, batch: dict[Hashable, Callable[[], object]]) -> None:
        self._last_batch = time.monotonic()
        self.batches += 1
        for key, fn in batch.items():
            self.calls += 1
            try:
                fn()
            except Exception:  # logged with its traceback; the pump keeps serving the other widgets
                self.errors += 1
                log.exception("widget update %r failed", key)

    def _due_polls(self, now: float) -> float | None:
        """Move due polls into the pending batch (cond held); returns when the next poll is due."""
        soonest: float | None = None
        for key, due in self._next_poll.items():
            period, fn = self._polls[key]
            if due <= now:
                self._pending.setdefault(key, fn)
                due = self._next_poll[key] = now + period
            soonest = due if soonest is None else min(soonest, due)
        return soonest

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._closed:
                    return
                now = time.monotonic()
                next_poll = self._due_polls(now)
                if not self._pending:
                    self._cond.wait(None if next_poll is None else next_poll - now)
                    continue
                wait = self._last_batch + self.interval - now
                if wait > 0:
                    # Throttle: let more updates coalesce until the interval has passed.
                    self._cond.wait(wait)
                    continue
            self.flush()


_DEFAULT: UpdatePump | None = None
_DEFAULT_LOCK = threading.Lock()


def default_pump() -> UpdatePump:
    """The process-wide pump every widget shares (so the total message rate stays bounded)."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None or _DEFAULT._closed:
            _DEFAULT = UpdatePump()
        return _DEFAULT
