"""Monitors: per-step diagnostics that subscribe to a Trainer's events.

A monitor is any object with ``attach(trainer) -> RemovableHandle``; it
registers its own handlers with ``trainer.on(...)``. ``Trainer(monitors=...)``
takes a list of them; the default is ``default_monitors()``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from acc.events import RemovableHandle

__all__ = ["Monitor", "default_monitors"]


class Monitor(Protocol):
    def attach(self, trainer: Any) -> RemovableHandle: ...


def default_monitors() -> list[Monitor]:
    """The monitors a Trainer runs when ``monitors=`` is not given."""
    return []
