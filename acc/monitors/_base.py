"""What every monitor shares: attaching, fault isolation, sampling and one-transfer fetches.

A monitor registers its handlers through ``MonitorBase._on``: each handler is
wrapped so that an exception disables the monitor instead of stopping the
run. The fault is recorded once: logged, stored as a ``"monitor_error"`` event
of the job, and kept on the monitor (``monitor.fault``) for the status snapshot.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
import weakref
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from acc.events import Event, RemovableHandle
from acc.state import TrainerState

__all__ = ["FetchQueue", "MonitorBase", "MonitorFault", "Ticket", "attach", "attached_monitors", "fetch_vectors"]

log = logging.getLogger("acc.monitors")

Handler = Callable[[TrainerState], Any]


@dataclass(frozen=True)
class MonitorFault:
    """A monitor raised and was disabled; the run went on."""

    monitor: str
    error: str
    """``"TypeName: message"``."""
    step: int
    job_id: int | None
    time: float
    traceback: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_every(every: int, what: str = "every") -> int:
    """A sampling interval: a positive int (bool is not one)."""
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"{what} must be a positive integer (steps between samples), got {every!r}")
    return every


class MonitorBase:
    """Base class of acc's monitors (any object with ``attach(trainer)`` is a monitor).

    ``attach(target)`` takes a ``Trainer`` or a ``Recorder`` (anything with
    ``on(event, fn)`` and ``state``) and returns a handle that detaches it.
    Subclasses implement ``_register(target)`` with ``self._on(...)`` calls,
    ``_reset()`` (called at JOB_STARTED) and ``status_fields()``.
    """

    name: str = "monitor"

    def __init__(self, *, name: str | None = None) -> None:
        if name is not None:
            self.name = str(name)
        self.fault: MonitorFault | None = None
        self._handles: list[RemovableHandle] = []
        self._target: Any = None
        self._peers: list[Any] | None = None
        self._lock = threading.RLock()
        self._queue = FetchQueue()  # its own until attached; then the one it shares with its peers

    # -- attaching ---------------------------------------------------------

    @property
    def enabled(self) -> bool:
        """False once the monitor failed (see ``fault``)."""
        return self.fault is None

    @property
    def attached(self) -> bool:
        return bool(self._handles)

    def attach(self, target: Any) -> RemovableHandle:
        """Register this monitor's handlers with ``target`` (a Trainer or a Recorder)."""
        if not callable(getattr(target, "on", None)) or not hasattr(target, "state"):
            raise TypeError(
                f"{type(self).__name__}.attach() needs a Trainer or a Recorder (with on() and state), "
                f"got {type(target).__name__}"
            )
        if self._handles:
            raise RuntimeError(f"monitor {self.name!r} is already attached; remove its handle first")
        self._target = target
        self._queue = fetch_queue(target)
        self._on(target, Event.JOB_STARTED, lambda state: self._reset())
        self._register(target)
        _remember(target, self)
        return RemovableHandle(self.detach)

    def detach(self) -> None:
        """Remove every handler this monitor registered."""
        handles, self._handles = self._handles, []
        for handle in handles:
            handle.remove()
        if self.fault is None and self._target is not None:  # a disabled monitor stays listed: its fault is shown
            _forget(self._target, self)

    def _register(self, target: Any) -> None:
        """Subclasses register their handlers here with ``self._on``."""

    def _reset(self) -> None:
        """A new job starts: forget the previous job's values."""

    def _on(self, target: Any, event: Event, fn: Handler) -> None:
        self._handles.append(target.on(event, self._guard(fn)))

    def _guard(self, fn: Handler) -> Handler:
        def guarded(state: TrainerState) -> None:
            if self.fault is not None:
                return
            try:
                fn(state)
            except Exception as exc:  # a monitor must never stop training: record, disable, go on
                self._fail(exc, state)

        return guarded

    def _fail(self, exc: BaseException, state: TrainerState) -> None:
        fault = MonitorFault(
            monitor=self.name,
            error=f"{type(exc).__name__}: {exc}",
            step=int(state.step),
            job_id=state.job_id,
            time=time.time(),
            traceback="".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
        )
        self.fault = fault
        log.error("monitor %r failed at step %s and is disabled; training goes on", self.name, state.step, exc_info=exc)
        self.detach()
        store = getattr(self._target, "store", None)
        if store is not None and state.job_id is not None:
            try:
                payload = {k: v for k, v in fault.to_dict().items() if k != "traceback"}
                store.log_event(state.job_id, "monitor_error", payload, step=state.step)
            except Exception:
                log.exception("could not store the failure of monitor %r", self.name)

    # -- peers and status --------------------------------------------------

    @property
    def peers(self) -> list[Any]:
        """The monitors attached beside this one (the trainer's ``monitors``, or those given to ``attach``)."""
        if self._peers is not None:
            return self._peers
        found = getattr(self._target, "monitors", None)
        return list(found) if found else [self]

    def status_fields(self) -> dict[str, Any]:
        """This monitor's fields of the status snapshot (JSON-friendly values)."""
        return {}

    def __repr__(self) -> str:
        every = getattr(self, "every", None)
        parts = [f"name={self.name!r}"]
        if every is not None:
            parts.append(f"every={every}")
        parts.append("attached" if self.attached else "detached")
        if self.fault is not None:
            parts.append(f"disabled: {self.fault.error}")
        return f"{type(self).__name__}({', '.join(parts)})"


# Which monitors are attached to which Trainer/Recorder, so that a widget shown for a hand-written
# loop or a log capture (a Recorder has no ``monitors`` list) finds them. Weak both ways: a monitor
# holds its target, so a strong value here would keep every Recorder alive.
_ATTACHED: weakref.WeakKeyDictionary[Any, list[weakref.ref[MonitorBase]]] = weakref.WeakKeyDictionary()
_ATTACHED_LOCK = threading.Lock()


def _remember(target: Any, monitor: MonitorBase) -> None:
    with _ATTACHED_LOCK:
        refs = [r for r in _ATTACHED.get(target, []) if r() is not None and r() is not monitor]
        _ATTACHED[target] = [*refs, weakref.ref(monitor)]


def _forget(target: Any, monitor: MonitorBase) -> None:
    with _ATTACHED_LOCK:
        refs = _ATTACHED.get(target)
        if refs is not None:
            _ATTACHED[target] = [r for r in refs if r() is not None and r() is not monitor]


def attached_monitors(target: Any) -> list[MonitorBase]:
    """The monitors attached to ``target`` (a Trainer or a Recorder), in attach order.

    Monitors disabled by a fault stay listed (their ``fault`` is what a panel
    shows); ones detached by their handle do not.
    """
    with _ATTACHED_LOCK:
        refs = list(_ATTACHED.get(target, []))
    return [m for m in (r() for r in refs) if m is not None]


def attach(target: Any, monitors: Sequence[Any]) -> RemovableHandle:
    """Attach several monitors to a Recorder (a hand-written loop) or a Trainer, as peers of each other.

    Returns one handle that detaches them all (usable as a context manager).
    """
    monitors = list(monitors)
    for m in monitors:
        if not callable(getattr(m, "attach", None)):
            raise TypeError(f"a monitor needs an attach(target) method, got {type(m).__name__}")
        if isinstance(m, MonitorBase):
            m._peers = monitors
    handles = [m.attach(target) for m in monitors]

    def remove() -> None:
        for h in handles:
            h.remove()

    return RemovableHandle(remove)


class Ticket:
    """A device vector waiting in a ``FetchQueue``; ``value`` is its host copy once fetched."""

    __slots__ = ("tensor", "value")

    def __init__(self, tensor: torch.Tensor) -> None:
        self.tensor: torch.Tensor | None = tensor
        self.value: np.ndarray | None = None

    def get(self) -> np.ndarray:
        if self.value is None:
            raise RuntimeError("this value has not been fetched yet (call the queue's fetch())")
        return self.value


class FetchQueue:
    """Device vectors of all the monitors of one trainer, fetched together: one transfer per device.

    Monitors ``put`` what they reduced on the device; the first of them to
    ``fetch`` at a METRICS_FETCHED brings every queued vector to the host, so
    however many monitors report, the copies cost one synchronisation.
    """

    def __init__(self) -> None:
        self._items: list[Ticket] = []
        self._lock = threading.Lock()
        self.n_fetches = 0

    def put(self, tensor: torch.Tensor) -> Ticket:
        ticket = Ticket(tensor.detach().reshape(-1))
        with self._lock:
            self._items.append(ticket)
        return ticket

    def fetch(self) -> None:
        """Fetch everything queued (a device->host sync; nothing to do when the queue is empty)."""
        with self._lock:
            items, self._items = self._items, []
        if not items:
            return
        host = fetch_vectors([t.tensor for t in items if t.tensor is not None])
        for ticket, value in zip(items, host, strict=True):
            ticket.value = value
            ticket.tensor = None
        self.n_fetches += 1


_QUEUES: weakref.WeakKeyDictionary[Any, FetchQueue] = weakref.WeakKeyDictionary()
_QUEUES_LOCK = threading.Lock()


def fetch_queue(target: Any) -> FetchQueue:
    """The queue shared by every monitor attached to ``target``."""
    with _QUEUES_LOCK:
        queue = _QUEUES.get(target)
        if queue is None:
            queue = _QUEUES[target] = FetchQueue()
        return queue


def fetch_vectors(vectors: Sequence[torch.Tensor]) -> list[np.ndarray]:
    """Host float64 copies of device vectors: one concatenation and one transfer per device.

    This is a fetch point (a device->host sync); call it only where the
    Recorder fetches (METRICS_FETCHED) or on an explicit request.
    """
    out: list[np.ndarray | None] = [None] * len(vectors)
    by_device: dict[torch.device, list[int]] = {}
    for i, v in enumerate(vectors):
        by_device.setdefault(v.device, []).append(i)
    for idx in by_device.values():
        # float32 on the device (every backend has it), float64 on the host for the sums that follow
        parts = [vectors[i].detach().reshape(-1).to(torch.float32) for i in idx]
        host = torch.cat(parts).cpu().numpy().astype(np.float64)
        offset = 0
        for i, part in zip(idx, parts, strict=True):
            n = part.numel()
            out[i] = host[offset : offset + n]
            offset += n
    return [v for v in out if v is not None]
