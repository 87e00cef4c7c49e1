"""Dashboard: every acc widget for one source, in one ipywidgets layout.

::

    dash = acc.Dashboard(trainer); dash        # before, while or after it trains
    trainer.start(steps=5000)

The panels come from a small registry, in ``order``: the LossHealthPanel
(10), the loss chart (20, ``acc.widgets.loss_chart.LossChart``), the
debugger panel (30, ``acc.widgets.debug_panel.DebugPanel``, only when the
source has a debug controller), and when that controller names a feature
parameter the cosine heatmap (40, ``HeatmapWidget``) and the watched
features' trajectories (50, ``TrajectoryWidget``). A widget module that is not there yet is
skipped; any other failure while building a panel is shown in the
dashboard, under the panels that did build. Other widgets plug in without
touching this file::

    from acc.widgets.dashboard import register_panel
    register_panel("throughput", "acc.widgets.throughput_panel:ThroughputPanel", order=40,
                   applies=lambda source: source.trainer is not None)

A panel factory (a class or a function, or a ``"module:attr"`` path to one)
is called with the LiveSource and returns a widget (or None to skip).
"""

from __future__ import annotations

import html
import importlib
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import ipywidgets

from acc.events import RemovableHandle
from acc.store import RunStore
from acc.widgets._pump import UpdatePump
from acc.widgets._source import LiveSource, as_source
from acc.widgets._views import remember
from acc.widgets.loss_health_panel import LossHealthPanel

__all__ = ["Dashboard", "PanelSpec", "panel_specs", "register_panel"]

log = logging.getLogger(__name__)

Factory = Callable[[LiveSource], Any]


@dataclass(frozen=True)
class PanelSpec:
    """One slot of the dashboard: a name, a factory (or ``"module:attr"``), an order, when it applies."""

    name: str
    factory: Factory | str
    order: int = 50
    applies: Callable[[LiveSource], bool] | None = None

    def resolve(self) -> Factory | None:
        """The factory; None when its module does not exist (a widget not built yet)."""
        if not isinstance(self.factory, str):
            return self.factory
        module_name, _, attr = self.factory.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                log.debug("dashboard slot %r: %s is not available", self.name, module_name)
                return None
            raise  # the module exists but one of ITS imports is missing: a real error
        factory: Factory = getattr(module, attr)
        return factory


_REGISTRY: dict[str, PanelSpec] = {}
_REGISTRY_LOCK = threading.Lock()


def register_panel(
    name: str,
    factory: Factory | str,
    *,
    order: int = 50,
    applies: Callable[[LiveSource], bool] | None = None,
) -> RemovableHandle:
    """Add (or replace) a dashboard slot; returns a handle that removes it."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"a panel needs a non-empty name, got {name!r}")
    if isinstance(factory, str):
        if ":" not in factory:
            raise ValueError(f"a factory path is 'module:attr', got {factory!r}")
    elif not callable(factory):
        raise TypeError(f"a panel factory must be callable or 'module:attr', got {type(factory).__name__}")
    spec = PanelSpec(name, factory, order, applies)
    with _REGISTRY_LOCK:
        _REGISTRY[name] = spec

    def remove() -> None:
        with _REGISTRY_LOCK:
            if _REGISTRY.get(name) is spec:
                del _REGISTRY[name]

    return RemovableHandle(remove)


def panel_specs() -> list[PanelSpec]:
    """The registered slots, in display order."""
    with _REGISTRY_LOCK:
        return sorted(_REGISTRY.values(), key=lambda s: (s.order, s.name))


# The built-in slots. "chart" and "debug" are filled by widgets built beside this one:
# until their modules exist the slots stay empty.
register_panel("health", LossHealthPanel, order=10)
register_panel("chart", "acc.widgets.loss_chart:LossChart", order=20)
# alerts, layer gradient health, throughput/ETA: only for a source with monitors (or a job that left their traces)
register_panel("monitors", "acc.widgets.monitor_panel:monitor_panel_for", order=25)
register_panel(
    "debug", "acc.widgets.debug_panel:DebugPanel", order=30, applies=lambda s: s.debug_controller is not None
)


def _has_features(source: LiveSource) -> bool:
    """The source's controller names a feature parameter (cosine matrices and watches need one)."""
    return getattr(source.debug_controller, "feature_param", None) is not None


register_panel("heatmap", "acc.widgets.heatmap:HeatmapWidget", order=40, applies=_has_features)
register_panel("trajectory", "acc.widgets.trajectory:TrajectoryWidget", order=50, applies=_has_features)


class Dashboard(ipywidgets.VBox):  # type: ignore[misc]
    """Every acc widget for a Trainer, Recorder, Job, log capture or stored job (see the module docstring).

    ``Dashboard(source, *, store=None, panels=None, pump=None)``: ``store`` for
    a stored job id; ``panels`` the slot names to show (default: all that
    apply); ``pump`` the LossHealthPanel's UpdatePump (tests).
    ``dash.panels`` maps slot names to the widgets built; ``dash.errors``
    lists the slots that failed, with why.
    """

    def __init__(
        self,
        source: object,
        *,
        store: RunStore | None = None,
        panels: Iterable[str] | None = None,
        pump: UpdatePump | None = None,
    ) -> None:
        src = as_source(source, store)
        wanted = None if panels is None else list(panels)
        specs = panel_specs()
        if wanted is not None:
            known = {s.name for s in specs}
            unknown = [n for n in wanted if n not in known]
            if unknown:
                raise ValueError(f"unknown dashboard panel(s) {unknown}; registered: {sorted(known)}")
        self.source: LiveSource = src
        self.panels: dict[str, Any] = {}
        self.errors: dict[str, str] = {}
        children = []
        for spec in specs:
            if wanted is not None and spec.name not in wanted:
                continue
            try:
                if spec.applies is not None and not spec.applies(src):
                    continue
                factory = spec.resolve()
                if factory is None:
                    continue
                widget = LossHealthPanel(src, pump=pump) if factory is LossHealthPanel else factory(src)
            except Exception as exc:  # shown in the dashboard, logged with the traceback
                log.exception("dashboard panel %r failed", spec.name)
                self.errors[spec.name] = f"{type(exc).__name__}: {exc}"
                continue
            if widget is not None:
                self.panels[spec.name] = widget
                children.append(widget)
        if self.errors:
            lines = "\n".join(f"{name}: {why}" for name, why in self.errors.items())
            children.append(
                ipywidgets.HTML(
                    value=f'<pre class="acc-dashboard-error" role="alert">{html.escape(lines)}</pre>',
                )
            )
        super().__init__(children=children, layout=ipywidgets.Layout(width="100%"))
        self.add_class("acc-dashboard")
        remember(self)

    @property
    def panel(self) -> LossHealthPanel | None:
        """The LossHealthPanel."""
        widget = self.panels.get("health")
        return widget if isinstance(widget, LossHealthPanel) else None

    def __getitem__(self, name: str) -> Any:
        return self.panels[name]

    def close(self) -> None:
        # also called by Widget.__del__, possibly on an instance whose __init__ failed half-way
        for widget in getattr(self, "panels", {}).values():
            widget.close()
        super().close()

    def __repr__(self) -> str:
        return f"Dashboard({self.source!r}, panels={list(self.panels)})"
