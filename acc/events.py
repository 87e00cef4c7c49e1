"""The closed set of training events, and removable handler registrations.

Handlers are called in the training thread with the ``TrainerState``; they
must be quick and must not force a device->host copy on STEP_* events (read
host values in METRICS_FETCHED handlers instead, from ``state.fetched``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from enum import Enum
from typing import Any, Generic, TypeVar

__all__ = ["Event", "Hooks", "RemovableHandle"]

log = logging.getLogger(__name__)


class Event(str, Enum):
    """Where in the loop a handler runs. In order, per step:

    STEP_STARTED -> forward, losses, backward -> AFTER_BACKWARD -> optimizer step
    -> STEP_COMPLETED -> (every ``fetch_every`` steps) METRICS_FETCHED -> pause point.
    """

    JOB_STARTED = "job_started"
    """A job began; ``state.job_id`` is set."""
    STEP_STARTED = "step_started"
    """A batch was drawn (``state.batch``); nothing computed yet."""
    AFTER_BACKWARD = "after_backward"
    """Gradients exist; the optimizer has not stepped (gradient monitors, step-data hooks)."""
    STEP_COMPLETED = "step_completed"
    """The optimizer stepped; ``state.losses`` are device tensors. No host syncs here."""
    METRICS_FETCHED = "metrics_fetched"
    """A block of steps reached the host: ``state.fetched`` is their step info dicts."""
    CHECKPOINT_SAVED = "checkpoint_saved"
    """``state.last_checkpoint`` was written."""
    JOB_ENDED = "job_ended"
    """The job finished, failed or was stopped (``state.status``)."""

    def __str__(self) -> str:
        return self.value


S = TypeVar("S")


class RemovableHandle:
    """Removes a registration; usable as a context manager (``with trainer.on(...):``)."""

    def __init__(self, remove: Callable[[], None]) -> None:
        self._remove: Callable[[], None] | None = remove

    def remove(self) -> None:
        if self._remove is not None:
            self._remove()
            self._remove = None

    @property
    def active(self) -> bool:
        return self._remove is not None

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


class Hooks(Generic[S]):
    """Handlers per Event. Registering an unknown event raises ValueError."""

    def __init__(self) -> None:
        self._handlers: dict[Event, list[Callable[[S], Any]]] = {e: [] for e in Event}
        self._lock = threading.Lock()

    def on(self, event: Event | str, handler: Callable[[S], Any]) -> RemovableHandle:
        try:
            key = Event(event)
        except ValueError:
            names = ", ".join(e.name for e in Event)
            raise ValueError(f"unknown event {event!r}; events are {names}") from None
        if not callable(handler):
            raise TypeError(f"a handler must be callable, got {type(handler).__name__}")
        with self._lock:
            # copy-on-write: the loop iterates a list that registration never mutates
            self._handlers[key] = [*self._handlers[key], handler]

        def remove() -> None:
            with self._lock:
                handlers = list(self._handlers[key])
                if handler in handlers:
                    handlers.remove(handler)
                self._handlers[key] = handlers

        return RemovableHandle(remove)

    def has(self, event: Event) -> bool:
        return bool(self._handlers[event])

    def fire(self, event: Event, state: S) -> None:
        for handler in self._handlers[event]:
            handler(state)

    def count(self, event: Event) -> int:
        return len(self._handlers[event])
