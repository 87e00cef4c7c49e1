"""Which widgets exist for which source, so that ``acc.show(trainer)`` can display them again.

Weak references only: a widget closed or collected drops out by itself.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

__all__ = ["remember", "views_of"]

_VIEWS: list[weakref.ref[Any]] = []
_LOCK = threading.Lock()


def remember(widget: Any) -> None:
    """Record a widget that has a ``source`` attribute (a LiveSource)."""
    with _LOCK:
        _VIEWS[:] = [r for r in _VIEWS if r() is not None]
        _VIEWS.append(weakref.ref(widget))


def _matches(widget: Any, obj: object) -> bool:
    source = getattr(widget, "source", None)
    if source is None:
        return False
    if obj is None or source is obj or source.owner is obj:
        return True
    trainer = getattr(source, "trainer", None)
    return trainer is not None and trainer is obj


def views_of(obj: object = None, kind: type | None = None) -> list[Any]:
    """Open widgets bound to ``obj`` (a trainer, job, recorder, source; None: any), newest first."""
    with _LOCK:
        alive = [w for w in (r() for r in _VIEWS) if w is not None]
    found = []
    for widget in reversed(alive):
        if getattr(widget, "comm", None) is None and hasattr(widget, "comm"):
            continue  # closed
        if kind is not None and not isinstance(widget, kind):
            continue
        if _matches(widget, obj):
            found.append(widget)
    return found
