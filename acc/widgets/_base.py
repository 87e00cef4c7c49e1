"""AccWidget: what every acc anywidget shares.

* ``_stem``: the widget's file stem; its ESM and CSS come from
  :mod:`acc.widgets._assets` (installed copy first, repository second).
* Unknown constructor keyword arguments raise ``TypeError`` (traitlets alone
  would only warn and go on).
* ``error``: the message shown under the widget. Failures in the widget's
  own work (a refresh from the pump, a command from the browser) land there,
  with the traceback in the log; the browser clears it with the
  ``clear_error`` command.
* Commands: the browser sends ``{"kind": <name>, ...fields}``. Each widget
  declares its commands in ``_commands`` (name -> field specs) and handles
  ``kind`` in a method ``_on_<kind>(**fields)``. Everything is validated
  before a handler runs: an unknown kind, a missing, extra or mistyped field
  is rejected with an error under the widget and changes nothing.
* ``_schedule(name, fn)``: hand a refresh to the shared update pump (keyed by
  this widget and ``name``), guarded so that an exception shows under the
  widget; ``_poll(name, seconds, fn)`` the same, repeatedly. ``_set(**traits)``
  sets several traits as ONE message.
* ``close()`` removes every event handler the widget registered.
"""

from __future__ import annotations

import logging
import math
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import anywidget
import traitlets

from acc.events import RemovableHandle
from acc.widgets import _assets
from acc.widgets._pump import UpdatePump, default_pump

__all__ = ["AccWidget", "CommandError", "Field"]

log = logging.getLogger(__name__)


class CommandError(ValueError):
    """A message from the browser was rejected (shown under the widget)."""


@dataclass(frozen=True)
class Field:
    """One field of a command: allowed Python types (after JSON), required or not, an optional check.

    ``check(value)`` returns an error text for a bad value, or None.
    """

    types: tuple[type, ...]
    required: bool = True
    check: Callable[[Any], str | None] | None = None

    def validate(self, kind: str, name: str, value: Any) -> None:
        # JSON has no int/bool distinction problem, but Python does: True is an int.
        if isinstance(value, bool) and bool not in self.types:
            raise CommandError(f"{kind}: field {name!r} must be {self._names()}, got a boolean")
        if isinstance(value, float) and float in self.types and not math.isfinite(value):
            raise CommandError(f"{kind}: field {name!r} must be a finite number, got {value!r}")
        if not isinstance(value, self.types):
            raise CommandError(f"{kind}: field {name!r} must be {self._names()}, got {type(value).__name__}")
        if self.check is not None:
            problem = self.check(value)
            if problem:
                raise CommandError(f"{kind}: field {name!r} {problem}")

    def _names(self) -> str:
        names = ["null" if t is type(None) else t.__name__ for t in self.types]
        return " or ".join(names)


class AccWidget(anywidget.AnyWidget):
    """Base class of acc's anywidgets (see the module docstring)."""

    _stem: ClassVar[str] = ""
    _commands: ClassVar[Mapping[str, Mapping[str, Field]]] = {}

    error = traitlets.Unicode("").tag(sync=True)
    """The error shown under the widget ("" for none). Set by the kernel; cleared by ``clear_error``."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        stem = cls.__dict__.get("_stem")
        if stem:
            # before anywidget's own __init_subclass__, which registers _esm/_css
            cls._esm = _assets.esm(stem)
            cls._css = _assets.css(stem)
        super().__init_subclass__(**kwargs)

    def __init__(self, *, pump: UpdatePump | None = None, **traits: Any) -> None:
        allowed = {name for name in self.trait_names() if not name.startswith("_")}
        unknown = sorted(set(traits) - allowed)
        if unknown:
            own = sorted(n for n in self.class_own_traits() if not n.startswith("_"))
            raise TypeError(
                f"{type(self).__name__}() got unexpected keyword argument(s) {', '.join(map(repr, unknown))}; "
                f"its traits are {', '.join(own) or 'none'}"
            )
        super().__init__(**traits)
        self._pump = pump if pump is not None else default_pump()
        self._handles: list[RemovableHandle] = []
        self._scheduled: set[tuple[str, str]] = set()  # pump keys, kept so close() needs no live comm
        self.on_msg(self._handle_message)

    # -- errors ----------------------------------------------------------------
    def _show_error(self, where: str, exc: BaseException) -> None:
        """Show the error under the widget and log it (a failure with its traceback, a rejection without)."""
        if isinstance(exc, CommandError):
            log.warning("%s rejected a message: %s", type(self).__name__, exc)
            self.error = f"rejected: {exc}"
            return
        log.error("%s in %s: %s", where, type(self).__name__, "".join(traceback.format_exception(exc)).rstrip())
        self.error = f"{where}: {type(exc).__name__}: {exc}"

    @contextmanager
    def _reporting(self, where: str) -> Iterator[None]:
        """Run a block; an exception in it is shown under the widget (and logged), not raised."""
        try:
            yield
        except Exception as exc:  # shown under the widget and logged with its traceback
            self._show_error(where, exc)

    # -- the pump ----------------------------------------------------------------
    def _schedule(self, name: str, fn: Callable[[], object]) -> None:
        """Run ``fn`` in the pump's next batch (coalesced with earlier calls of the same name)."""

        def guarded() -> None:
            with self._reporting(f"updating ({name})"):
                fn()

        key = (self.model_id, name)
        self._scheduled.add(key)
        self._pump.schedule(key, guarded)

    def _poll(self, name: str, seconds: float, fn: Callable[[], object]) -> None:
        """Run ``fn`` through the pump every ``seconds`` until the widget is closed (state without events)."""

        def guarded() -> None:
            with self._reporting(f"updating ({name})"):
                fn()

        self._listen(self._pump.every((self.model_id, name), seconds, guarded))

    def _set(self, **values: Any) -> None:
        """Set several traits; the browser gets them in one message."""
        with self.hold_sync():
            for name, value in values.items():
                setattr(self, name, value)

    def _listen(self, handle: RemovableHandle) -> None:
        """Keep an event handle so that ``close()`` removes it."""
        self._handles.append(handle)

    # -- commands from the browser -----------------------------------------------
    def _handle_message(self, _widget: object, content: Any, buffers: list[Any]) -> None:
        with self._reporting("message"):
            kind, fields = self._validate(content)
            handler = getattr(self, f"_on_{kind}")
            self.error = ""
            with self._reporting(kind):
                handler(**fields)

    def _validate(self, content: Any) -> tuple[str, dict[str, Any]]:
        if not isinstance(content, dict):
            raise CommandError(f"a message must be an object with a 'kind', got {type(content).__name__}")
        kind = content.get("kind")
        commands = {"clear_error": {}, **self._commands}
        if not isinstance(kind, str) or kind not in commands:
            raise CommandError(f"unknown message kind {kind!r}; this widget accepts {', '.join(sorted(commands))}")
        spec = commands[kind]
        fields = {k: v for k, v in content.items() if k != "kind"}
        extra = sorted(set(fields) - set(spec))
        if extra:
            raise CommandError(f"{kind}: unexpected field(s) {', '.join(map(repr, extra))}")
        for name, field in spec.items():
            if name not in fields:
                if field.required:
                    raise CommandError(f"{kind}: missing field {name!r}")
                continue
            field.validate(kind, name, fields[name])
        return kind, fields

    def _on_clear_error(self) -> None:
        self.error = ""

    # -- lifetime ------------------------------------------------------------------
    def close(self) -> None:
        # also called by Widget.__del__, possibly on an instance whose __init__ failed half-way
        for handle in getattr(self, "_handles", ()):
            handle.remove()
        if getattr(self, "_handles", None):
            self._handles.clear()
        # Cancel by the keys kept at scheduling time: at interpreter exit (Widget.__del__)
        # the comm may be half torn down and model_id would raise.
        for key in getattr(self, "_scheduled", ()):
            self._pump.cancel(key)
        super().close()
