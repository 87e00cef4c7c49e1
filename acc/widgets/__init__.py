"""acc's notebook widgets and the plumbing they share.

Widgets: ``LossHealthPanel`` (loss health of a job: banner, per-task summary,
loss log, history, checkpoints), ``MonitorPanel`` (alerts, per-layer
gradient health, throughput and ETA), ``DebugPanel`` (pause/step/resume, the batch,
step data, per-feature table), ``HeatmapWidget`` (any matrix; a debugger's
cosine matrices), ``TrajectoryWidget`` (watched features over the steps),
``Dashboard`` (every widget for one source), ``show`` (display a trainer's
widgets again).

Plumbing other widgets build on:

* ``as_source(obj, store=None)`` (``_source``): what a widget binds to: a
  Trainer, Recorder, Job, log capture, stored job id or RunStore.
* ``UpdatePump`` / ``default_pump()`` (``_pump``): the one throttled,
  coalescing path from the training thread to the browser (<= 10 Hz).
* ``AccWidget`` (``_base``): unknown kwargs raise, an error trait shown under
  the widget, validated commands from the browser.
* ``register_panel`` (``dashboard``): plug a widget into the Dashboard.
* Assets (``_assets``): ``widgets/<stem>.js|css``, installed copy first.
"""

from __future__ import annotations

from acc.widgets._pump import UpdatePump, default_pump
from acc.widgets._source import LiveSource, as_source
from acc.widgets.dashboard import Dashboard, register_panel
from acc.widgets.debug_panel import DebugPanel
from acc.widgets.heatmap import HeatmapWidget
from acc.widgets.loss_chart import LossChart
from acc.widgets.loss_health_panel import LossHealthPanel
from acc.widgets.monitor_panel import MonitorPanel
from acc.widgets.show import show
from acc.widgets.trajectory import TrajectoryWidget

__all__ = [
    "Dashboard",
    "DebugPanel",
    "HeatmapWidget",
    "LiveSource",
    "LossChart",
    "LossHealthPanel",
    "MonitorPanel",
    "TrajectoryWidget",
    "UpdatePump",
    "as_source",
    "default_pump",
    "register_panel",
    "show",
]
