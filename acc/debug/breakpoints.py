"""Breakpoints: conditions under which a running loop pauses itself.

* ``"nan"``: a task's loss (or the total) is NaN or infinite.
* ``"critical"``: a task's health turns CRITICAL (see ``acc.loss_health``).
* ``step=N``: at step N. ``every=N``: at every step that is a multiple of N.
* a predicate ``fn(info) -> bool`` over the step info dict (``{"step",
  "loss", "losses", "health", ...}``, host values).

Step and every breakpoints cost nothing per step. The others need the step's
losses on the host: while one is set, the loop makes one device->host fetch
per step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from acc.events import RemovableHandle
from acc.state import StepInfo

__all__ = ["Breakpoint", "BreakpointError", "BreakpointHandle", "make_breakpoint"]

Predicate = Callable[[StepInfo], Any]
VALUE_KINDS = ("nan", "critical")


class BreakpointError(RuntimeError):
    """A breakpoint predicate raised: the job fails with this error (its cause is the original)."""


class Breakpoint:
    """One breakpoint; ``check`` returns the reason to pause, or None."""

    def __init__(self, bp_id: int, kind: str, *, value: int | None = None, predicate: Predicate | None = None) -> None:
        self.id = bp_id
        self.kind = kind
        self.value = value
        self.predicate = predicate
        self.hits = 0

    @property
    def needs_info(self) -> bool:
        """True when the check needs the step's host values (one fetch per step)."""
        return self.kind in ("nan", "critical", "predicate")

    def describe(self) -> str:
        if self.kind in ("step", "every"):
            return f"{self.kind} {self.value}"
        if self.kind == "predicate":
            return f"predicate {_name_of(self.predicate)}"
        return self.kind

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "description": self.describe(), "hits": self.hits}

    def check_step(self, step: int) -> str | None:
        """Step and every breakpoints (no host values needed)."""
        if self.kind == "step" and step == self.value:
            return f"breakpoint: step {step}"
        if self.kind == "every" and self.value and step % self.value == 0:
            return f"breakpoint: every {self.value} (step {step})"
        return None

    def check_info(self, info: StepInfo) -> str | None:
        """nan, critical and predicate breakpoints, over one step's host values."""
        step = info.get("step")
        losses: Mapping[str, float] = info.get("losses") or {}
        if self.kind == "nan":
            for name, value in losses.items():
                if not _finite(value):
                    return f"breakpoint: nan (task {name!r} at step {step})"
            total = info.get("loss")
            if total is not None and not _finite(total):
                return f"breakpoint: nan (loss at step {step})"
            return None
        if self.kind == "critical":
            for name, health in (info.get("health") or {}).items():
                if health == "critical":  # a plain string or LossHealth.CRITICAL (a str Enum)
                    return f"breakpoint: critical (task {name!r} at step {step})"
            return None
        if self.kind == "predicate":
            assert self.predicate is not None
            try:
                hit = self.predicate(info)
            except Exception as exc:
                raise BreakpointError(
                    f"breakpoint predicate {_name_of(self.predicate)} raised {type(exc).__name__}: {exc} at step {step}"
                ) from exc
            return f"breakpoint: predicate {_name_of(self.predicate)} (step {step})" if hit else None
        return None


class BreakpointHandle(RemovableHandle):
    """Removes its breakpoint (``handle.remove()`` or ``with dbg.break_on(...):``)."""

    def __init__(self, breakpoint: Breakpoint, remove: Callable[[], None]) -> None:
        super().__init__(remove)
        self.breakpoint = breakpoint

    @property
    def id(self) -> int:
        return self.breakpoint.id

    def __repr__(self) -> str:
        state = "active" if self.active else "removed"
        return f"BreakpointHandle(id={self.id}, {self.breakpoint.describe()!r}, {state})"


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return True  # not a number: nothing to say


def _name_of(fn: Any) -> str:
    return str(getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__)


def _positive_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"break_on({what}=...) needs a positive integer, got {value!r}")
    return value


def make_breakpoint(
    bp_id: int, condition: str | Predicate | None = None, *, step: int | None = None, every: int | None = None
) -> Breakpoint:
    """Validate ``break_on``'s arguments (exactly one condition) and build the breakpoint."""
    given = [name for name, v in (("condition", condition), ("step", step), ("every", every)) if v is not None]
    if len(given) != 1:
        raise TypeError(
            "break_on needs exactly one of: 'nan', 'critical', a predicate fn(info) -> bool, step=N or every=N"
            + (f" (got {', '.join(given)})" if given else "")
        )
    if step is not None:
        return Breakpoint(bp_id, "step", value=_positive_int(step, "step"))
    if every is not None:
        return Breakpoint(bp_id, "every", value=_positive_int(every, "every"))
    if isinstance(condition, str):
        kind = condition.strip().lower()
        if kind not in VALUE_KINDS:
            raise ValueError(f"unknown breakpoint {condition!r}; use 'nan', 'critical', step=N, every=N or a predicate")
        return Breakpoint(bp_id, kind)
    if callable(condition):
        return Breakpoint(bp_id, "predicate", predicate=condition)
    raise TypeError(f"a breakpoint condition must be 'nan', 'critical' or a callable, got {type(condition).__name__}")
