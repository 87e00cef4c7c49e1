"""Throughput: samples/s and tokens/s over a recent window and on average, their trend, and the ETA.

In a Trainer the monitor reads the clock once per step (host only) and counts
the batch's samples (its leading dimension) and tokens (``input_ids``-like
integer batches; an ``attention_mask`` is summed on the device and fetched
with the Recorder's batch). The clock is injectable (``clock=``) so tests use
a fake one. By hand (the seed's API)::

    thr = acc.monitors.create_throughput_monitor(window_size=50, total_steps=1000)
    for step ...:
        ...
        thr.update(num_tokens, num_samples=len(batch), step=step)
    thr.get_statistics()   # tokens_per_sec, tokens_per_sec_avg, trend, eta_seconds, ...
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import torch

from acc.events import Event
from acc.monitors._base import MonitorBase, Ticket, check_every
from acc.monitors.streaming import Trend
from acc.state import TrainerState

__all__ = ["ThroughputMonitor", "count_samples", "count_tokens", "create_throughput_monitor", "format_duration"]

Count = int | torch.Tensor | None
Counter = Callable[[Any], Count]

_TOKEN_KEYS = ("input_ids", "tokens", "token_ids")


def _first_tensor(batch: Any) -> torch.Tensor | None:
    if isinstance(batch, torch.Tensor):
        return batch
    if isinstance(batch, Mapping):
        values: Any = batch.values()
    elif isinstance(batch, (tuple, list)):
        values = batch
    else:
        return None
    for v in values:
        found = _first_tensor(v)
        if found is not None:
            return found
    return None


def count_samples(batch: Any) -> int | None:
    """The batch size: the leading dimension of the batch's first tensor (host metadata, no sync)."""
    t = _first_tensor(batch)
    if t is None or t.dim() == 0:
        return None
    return int(t.shape[0])


def count_tokens(batch: Any) -> Count:
    """Tokens in a language-model batch: ``attention_mask.sum()`` (a device tensor, fetched later) or the
    number of ``input_ids``; for a tuple batch, the size of a first integer tensor of >= 2 dimensions.
    None for batches that are not token ids."""
    if isinstance(batch, Mapping):
        mask = batch.get("attention_mask")
        if isinstance(mask, torch.Tensor):
            return mask.detach().sum()
        for key in _TOKEN_KEYS:
            ids = batch.get(key)
            if isinstance(ids, torch.Tensor):
                return int(ids.numel())
        return None
    first = batch[0] if isinstance(batch, (tuple, list)) and batch else batch
    if isinstance(first, torch.Tensor) and first.dim() >= 2 and not first.is_floating_point():
        return int(first.numel())
    return None


def format_duration(seconds: float | None) -> str:
    """``"42s"``, ``"3.5m"``, ``"2.1h"``; ``"<1s"`` for a time left under a second; ``"—"`` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "—"
    if 0 < seconds < 0.5:
        return "<1s"  # "0s" would read as done while steps remain
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


class ThroughputMonitor(MonitorBase):
    """Samples/s, tokens/s and steps/s over the last ``window_size`` steps and since the start; trend; ETA.

    ``ThroughputMonitor(window_size=50, *, clock=time.monotonic,
    total_steps=None, samples=count_samples, tokens=count_tokens,
    trend_tolerance=0.1)``. ``samples``/``tokens`` count a batch (an int, a
    0-d device tensor fetched later, or None). ``total_steps`` gives the ETA
    by hand; in a Trainer the job's ``max_steps`` is used. The trend compares
    the window's two halves: beyond ``trend_tolerance`` (10 %) it is
    "improving" or "degrading".
    """

    name = "throughput"

    def __init__(
        self,
        window_size: int = 50,
        *,
        clock: Callable[[], float] = time.monotonic,
        total_steps: int | None = None,
        samples: Counter = count_samples,
        tokens: Counter = count_tokens,
        trend_tolerance: float = 0.1,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.window_size = check_every(window_size, "window_size")
        if self.window_size < 2:
            raise ValueError(f"window_size must be >= 2 (a rate needs two times), got {window_size}")
        if not callable(clock):
            raise TypeError(f"clock must be a function returning seconds, got {type(clock).__name__}")
        for what, fn in (("samples", samples), ("tokens", tokens)):
            if not callable(fn):
                raise TypeError(f"{what} must be a function batch -> count, got {type(fn).__name__}")
        if total_steps is not None:
            check_every(total_steps, "total_steps")
        self.clock = clock
        self.total_steps = total_steps
        self._count_samples = samples
        self._count_tokens = tokens
        self.trend_tolerance = float(trend_tolerance)
        self._reset()

    def _reset(self) -> None:
        with self._lock:
            # [step, time, samples, tokens]; tokens None until a device count is fetched
            self._window: deque[list[Any]] = deque(maxlen=self.window_size)
            self._pending: list[tuple[list[Any], int, Ticket]] = []
            self._start: float | None = None
            self._last_time: float | None = None
            self._last_step = 0
            self._total_samples = 0
            self._total_tokens = 0
            self._has_tokens = False
            self._n_updates = 0

    def _register(self, target: Any) -> None:
        self._on(target, Event.JOB_STARTED, lambda state: self.start())
        self._on(target, Event.STEP_COMPLETED, self._on_step)
        self._on(target, Event.METRICS_FETCHED, lambda state: self.report())
        self._target_state = target.state

    def _on_step(self, state: TrainerState) -> None:
        batch = state.batch
        self.update(self._count_tokens(batch), num_samples=self._count_samples(batch), step=state.step)

    # -- by hand -----------------------------------------------------------

    def start(self, timestamp: float | None = None) -> None:
        """The run starts now (a Trainer calls this at JOB_STARTED); rates count from here."""
        with self._lock:
            self._start = self.clock() if timestamp is None else float(timestamp)

    def update(
        self,
        num_tokens: Count = None,
        timestamp: float | None = None,
        *,
        num_samples: Count = None,
        step: int | None = None,
    ) -> None:
        """One step done: its token and sample counts (ints, or 0-d device tensors fetched at ``report``).

        Without ``start()``, the first update marks the start and its own counts are not in any rate.
        """
        t = self.clock() if timestamp is None else float(timestamp)
        entry: list[Any] = [0, t, 0, 0]
        device_counts: list[tuple[int, torch.Tensor]] = []
        for slot, value in ((2, num_samples), (3, num_tokens)):
            if isinstance(value, torch.Tensor):
                device_counts.append((slot, value))
                entry[slot] = None
            elif value is not None:
                entry[slot] = int(value)
        with self._lock:
            self._n_updates += 1
            self._last_step = self._last_step + 1 if step is None else int(step)
            entry[0] = self._last_step
            if self._start is None:
                self._start = t
                return
            if num_tokens is not None:
                self._has_tokens = True
            self._last_time = t
            self._window.append(entry)
            self._pending.extend((entry, slot, self._queue.put(value)) for slot, value in device_counts)
            self._add_totals(entry)

    def _add_totals(self, entry: list[Any]) -> None:
        if entry[2] is not None:
            self._total_samples += entry[2]
        if entry[3] is not None:
            self._total_tokens += entry[3]

    def report(self) -> None:
        """Fetch device-side counts (one transfer) into the window and the totals."""
        with self._lock:
            pending, self._pending = self._pending, []
        if not pending:
            return
        self._queue.fetch()
        with self._lock:
            for entry, slot, ticket in pending:
                entry[slot] = round(float(ticket.get()[0]))
                if slot == 2:
                    self._total_samples += entry[2]
                else:
                    self._total_tokens += entry[3]

    # -- statistics --------------------------------------------------------

    @staticmethod
    def _rate(entries: list[list[Any]], slot: int) -> float | None:
        """Count per second over ``entries``: the first entry's time opens the span, its count is before it."""
        if len(entries) < 2:
            return None
        span = float(entries[-1][1] - entries[0][1])
        counts = [e[slot] for e in entries[1:]]
        if span <= 0 or any(c is None for c in counts):
            return None
        return float(sum(counts)) / span

    def _entries(self) -> list[list[Any]]:
        """The window, opened by the start time until it is full (a rate from the very first step)."""
        with self._lock:
            entries = list(self._window)
            if len(entries) < self.window_size and self._start is not None:
                entries.insert(0, [0, self._start, 0, 0])
            return entries

    def _average(self, total: int) -> float | None:
        if self._start is None or self._last_time is None:
            return None
        span = self._last_time - self._start
        return total / span if span > 0 else None

    def get_current_throughput(self) -> float:
        """Tokens/s over the window (samples/s for batches without tokens); 0.0 before two steps."""
        stats = self.get_statistics()
        value = stats["tokens_per_sec"] if self._has_tokens else stats["samples_per_sec"]
        return float(value or 0.0)

    def get_average_throughput(self) -> float:
        stats = self.get_statistics()
        value = stats["tokens_per_sec_avg"] if self._has_tokens else stats["samples_per_sec_avg"]
        return float(value or 0.0)

    def get_trend(self) -> Trend:
        """The window's second half vs its first (tokens/s, else samples/s, else steps/s)."""
        entries = self._entries()
        slot = 3 if self._has_tokens else 2
        if len(entries) < 10:
            return "insufficient_data"
        mid = len(entries) // 2
        halves = (entries[: mid + 1], entries[mid:])
        rates = [self._rate(h, slot) for h in halves]
        if not all(rates):  # counts unknown or zero: fall back on steps/s
            rates = [self._rate([[e[0], e[1], 0, 1] for e in h], 3) for h in halves]
        first, second = rates
        if not first or second is None:
            return "insufficient_data"
        change = (second - first) / first
        if change > self.trend_tolerance:
            return "improving"
        if change < -self.trend_tolerance:
            return "degrading"
        return "stable"

    def estimate_time_remaining(self, remaining_steps: int | None = None) -> float | None:
        """Seconds left at the window's steps/s: ``remaining_steps`` or ``total_steps - step`` (None if unknown)."""
        entries = self._entries()
        last_step = self._last_step
        if remaining_steps is None:
            total = self.total_steps
            state = getattr(self, "_target_state", None)
            if state is not None and state.max_steps is not None:
                total = state.max_steps
            if total is None:
                return None
            remaining_steps = max(0, total - last_step)
        if remaining_steps == 0:
            return 0.0
        if len(entries) < 2:
            return None
        span = float(entries[-1][1] - entries[0][1])
        if span <= 0:
            return None
        return remaining_steps * span / (len(entries) - 1)

    def get_statistics(self) -> dict[str, Any]:
        """Host values: tokens/samples/steps per second (window and average), trend, ETA, elapsed and totals."""
        entries = self._entries()
        with self._lock:
            tokens_avg = self._average(self._total_tokens) if self._has_tokens else None
            stats: dict[str, Any] = {
                "tokens_per_sec": self._rate(entries, 3) if self._has_tokens else None,
                "tokens_per_sec_avg": tokens_avg,
                "samples_per_sec": self._rate(entries, 2),
                "samples_per_sec_avg": self._average(self._total_samples),
                "steps_per_sec": self._rate([[e[0], e[1], 0, 1] for e in entries], 3),
                "total_samples": self._total_samples,
                "total_tokens": self._total_tokens if self._has_tokens else None,
                "elapsed_seconds": (self._last_time - self._start)
                if self._start is not None and self._last_time is not None
                else 0.0,
                "step": self._last_step,
            }
        stats["trend"] = self.get_trend()
        stats["eta_seconds"] = self.estimate_time_remaining()
        cur, avg = stats["samples_per_sec"], stats["samples_per_sec_avg"]
        stats["efficiency_ratio"] = cur / avg if cur and avg else 1.0
        return stats

    def get_summary(self) -> str:
        """``"Throughput: 2.30K samples/s (avg: 2.50K, degrading, elapsed: 3.5m, ETA: 12s)"``."""
        s = self.get_statistics()
        unit, cur, avg = (
            ("tok/s", s["tokens_per_sec"], s["tokens_per_sec_avg"])
            if self._has_tokens
            else ("samples/s", s["samples_per_sec"], s["samples_per_sec_avg"])
        )
        return (
            f"Throughput: {_si(cur)} {unit} (avg: {_si(avg)}, {s['trend']}, "
            f"elapsed: {format_duration(s['elapsed_seconds'])}, ETA: {format_duration(s['eta_seconds'])})"
        )

    def status_fields(self) -> dict[str, Any]:
        s = self.get_statistics()
        return {
            "tokens_per_sec": s["tokens_per_sec"],
            "tokens_per_sec_avg": s["tokens_per_sec_avg"],
            "samples_per_sec": s["samples_per_sec"],
            "samples_per_sec_avg": s["samples_per_sec_avg"],
            "steps_per_sec": s["steps_per_sec"],
            "throughput_trend": s["trend"],
            "eta_seconds": s["eta_seconds"],
            "elapsed_seconds": s["elapsed_seconds"],
        }


def _si(value: float | None) -> str:
    if value is None:
        return "—"
    if value >= 1000:
        return f"{value / 1000:.2f}K"
    return f"{value:.1f}"


def create_throughput_monitor(window_size: int = 50, **kwargs: Any) -> ThroughputMonitor:
    """The seed's factory: a ``ThroughputMonitor`` (``update`` by hand, or attached to a Trainer/Recorder)."""
    return ThroughputMonitor(window_size=window_size, **kwargs)
