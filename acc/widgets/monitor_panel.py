"""MonitorPanel: what the monitors know about a run: alerts, per-layer gradient health, throughput and ETA.

::

    panel = acc.MonitorPanel(trainer); panel     # also in acc.Dashboard(trainer), under the loss chart
    trainer.start(steps=5000)

Shows, for the bound job:

* **alerts**: the active ones (severity, message, recommendation, first and
  last step, how often seen) and the resolved ones (with the step they
  resolved at), from the ``AlertsMonitor``;
* **layer health**: the headline ("24/28 layers active, 4 dead") and one row
  per layer (verdict, current and mean gradient norm, relative update,
  parameters, zero streak), LoRA adapters in a table of their own;
* **throughput and ETA**: samples/s or tokens/s (now and on average), trend,
  time left, step of max steps;
* the streaming statistics (smoothed loss, variance, trends, entropy,
  accuracy over the last 20/50, ECE), the latest fixed evaluation with its
  accuracy per slice pair, and a note for every monitor that raised and was
  disabled.

Where the values come from: a live Trainer (or a Recorder with monitors
attached, or a log capture's alerts) through ``acc.monitors.training_status``;
a finished or stored job (e.g. after a kernel restart) from its
``status.json`` and the alerts stored with it. The panel follows a live run
through the shared update pump at most ``1 / POLL_SECONDS`` times a second
(the monitors sample every N steps; faster would only cost messages), and
always shows the end of a job before ``job.wait()`` returns.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import traitlets

from acc.events import Event
from acc.monitors._base import attached_monitors
from acc.monitors.status import TrainingStatus, read_status, status_path, training_status
from acc.state import TrainerState
from acc.store import RunStore
from acc.widgets._base import AccWidget, Field
from acc.widgets._monitor_data import (
    alert_counts,
    alert_row,
    eval_values,
    fold_alert_events,
    layer_rows,
    layer_summary_values,
    monitor_error_rows,
    pattern_values,
    streaming_values,
    throughput_values,
)
from acc.widgets._pump import UpdatePump
from acc.widgets._source import LiveSource, RecorderSource, TrainerSource, as_source
from acc.widgets._views import remember

__all__ = ["MonitorPanel", "has_monitor_data", "monitor_panel_for"]

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5
"""How often a live panel looks for news (a fetch since the last look): at most 2 messages/s."""


def _live_target(source: LiveSource) -> tuple[Any, list[Any]] | None:
    """The object whose monitors describe the source's job now, with its monitors; None when nothing is live."""
    trainer = source.trainer
    if isinstance(source, TrainerSource) and trainer is not None:
        # a Job source of an older job is history: the trainer's monitors moved on
        if source.job_id is not None and trainer.job is not None and trainer.job.id != source.job_id:
            return None
        monitors = list(getattr(trainer, "monitors", None) or [])
        return (trainer, monitors) if monitors else None
    if isinstance(source, RecorderSource):
        monitors = attached_monitors(source.recorder)
        return (source.recorder, monitors) if monitors else None
    return None


def has_monitor_data(source: LiveSource) -> bool:
    """True when the source has monitors (live) or its job left monitor traces (a status file, alerts)."""
    if _live_target(source) is not None:
        return True
    job_id = source.job_id
    if job_id is None:
        return False
    if status_path(source.store.root, job_id).is_file():
        return True
    return bool(source.store.events(job_id, "alert") or source.store.events(job_id, "monitor_error"))


class MonitorPanel(AccWidget):
    """Alerts, per-layer gradient health, throughput and ETA of a job (see the module docstring).

    ``MonitorPanel(source, *, store=None, pump=None)``: ``source`` is anything
    ``acc.widgets.as_source`` accepts (a Trainer, Job, Recorder, log capture,
    job id with ``store=``, RunStore); ``pump`` an UpdatePump (default: the
    shared one).
    """

    _stem = "monitor_panel"
    _commands: ClassVar[Mapping[str, Mapping[str, Field]]] = {"refresh": {}}

    # -- synced traits: all set by the kernel; the browser only sends "refresh" / "clear_error" --
    source_kind = traitlets.Unicode("").tag(sync=True)
    """What the panel is bound to: "trainer", "job", "recorder" or "stored"."""
    origin = traitlets.Unicode("").tag(sync=True)
    """Where the values come from: "live", "status file", "stored alerts" or "" (nothing yet)."""
    job = traitlets.Dict().tag(sync=True)
    """The shown job: ``{"id", "name"}``; ``{}`` before a trainer's first job."""
    run_state = traitlets.Unicode("idle").tag(sync=True)
    """idle, running, pausing, paused, stopped or finished."""
    step = traitlets.Int(0).tag(sync=True)
    """The job's step as the monitors last saw it."""
    max_steps = traitlets.Int(None, allow_none=True).tag(sync=True)
    """The step the job ends at, when known."""
    alerts: traitlets.List[dict[str, Any]] = traitlets.List().tag(sync=True)
    """Active alerts, most severe first: code, severity, message, recommendation, first_step, last_step, count."""
    resolved_alerts: traitlets.List[dict[str, Any]] = traitlets.List().tag(sync=True)
    """Resolved alerts, newest first: the same fields plus ``resolved_step``."""
    alert_summary = traitlets.Dict().tag(sync=True)
    """Counts: critical, warning, info (active ones), active, resolved."""
    layer_summary = traitlets.Dict().tag(sync=True)
    """The headline ``text`` ("24/28 layers active, 4 dead"), counts per verdict, ``health``; {} without one."""
    layers: traitlets.List[dict[str, Any]] = traitlets.List().tag(sync=True)
    """Per layer, model order: name, status, rank, grad, mean_grad, update, params, zero_streak, samples."""
    lora_summary = traitlets.Dict().tag(sync=True)
    """Like ``layer_summary`` for LoRA adapters ("12/16 adapters active, 4 dead"); {} without adapters."""
    lora: traitlets.List[dict[str, Any]] = traitlets.List().tag(sync=True)
    """Per adapted module: the same fields as ``layers``."""
    throughput = traitlets.Dict().tag(sync=True)
    """unit, current, average, trend, eta_seconds, eta_text, elapsed_seconds, elapsed_text (+ raw rates); {} if none."""
    streaming = traitlets.Dict().tag(sync=True)
    """streaming_ce, loss_variance, token_entropy, accuracy_last_20/50, calibration_error, trends; {} if none."""
    fixed_eval = traitlets.Dict().tag(sync=True)
    """The latest fixed evaluation: loss, accuracy, ece, trend, step, n; {} before the first."""
    pattern = traitlets.Dict().tag(sync=True)
    """Accuracy per slice pair of the fixed evaluation: row_name, col_name, rows, cols, accuracy, count."""
    monitor_errors: traitlets.List[dict[str, Any]] = traitlets.List().tag(sync=True)
    """Monitors that raised and were disabled (training went on): monitor, error, step."""
    monitors: traitlets.List[str] = traitlets.List().tag(sync=True)
    """The names of the monitors that fed the snapshot."""

    def __init__(
        self, source: object, *, store: RunStore | None = None, pump: UpdatePump | None = None, **traits: Any
    ) -> None:
        src = as_source(source, store)
        self.source: LiveSource = src
        self._lock = threading.RLock()  # refreshes: the pump thread vs a "refresh" command / JOB_ENDED flush
        self._dirty = threading.Event()
        super().__init__(pump=pump, source_kind=src.kind, **traits)
        if src.is_live:
            # The training thread only raises a flag; the pump looks at it POLL_SECONDS apart.
            self._listen(src.on(Event.JOB_STARTED, self._on_news))
            self._listen(src.on(Event.METRICS_FETCHED, self._on_news))
            self._listen(src.on(Event.JOB_ENDED, self._on_job_ended))
            self._poll("watch", POLL_SECONDS, self._tick)
        with self._reporting("reading the monitors"):  # shown under the widget; the panel still appears
            self._refresh()
        remember(self)

    # -- training-thread handlers: a flag, or (at the end) one flush ----------------------
    def _on_news(self, state: TrainerState) -> None:
        self._dirty.set()

    def _on_job_ended(self, state: TrainerState) -> None:
        self._schedule("status", self._refresh)
        self._pump.flush()  # the end is shown before job.wait() returns

    # -- refreshes (pump thread; the kernel thread at construction and on "refresh") --------
    def _tick(self) -> None:
        if self._dirty.is_set():
            self._refresh()
        else:
            self.run_state = self.source.run_state()  # a pause has no event; unchanged sends nothing

    def _refresh(self) -> None:
        with self._lock:
            self._dirty.clear()
            self._set(**self._values())

    def _values(self) -> dict[str, Any]:
        src = self.source
        run_state = src.run_state()
        live = _live_target(src)
        active: list[dict[str, Any]]
        resolved: list[dict[str, Any]]
        errors: list[dict[str, Any]]
        if live is not None:
            target, monitors = live
            status = training_status(target, monitors).to_dict()  # host values only: any thread may read it
            origin = "live"
            active = [alert_row(a) for a in status.get("active_alerts") or []]
            resolved = [alert_row(a) for a in status.get("resolved_alerts") or []]
            errors = list(status.get("monitor_errors") or [])
        else:
            status, origin, active, resolved, errors = self._stored()
        record = src.job_record() if live is None else None
        job_id = status.get("job_id") if status.get("job_id") is not None else src.job_id
        name = status.get("job_name") or (record.name if record is not None else "")
        step = status.get("step") or (record.last_step if record is not None else 0) or 0
        return {
            "origin": origin,
            "job": {"id": job_id, "name": name} if job_id is not None else {},
            "run_state": run_state,
            "step": int(step),
            "max_steps": status.get("max_steps"),
            "alerts": active,
            "resolved_alerts": resolved,
            "alert_summary": alert_counts(active, resolved),
            "layer_summary": layer_summary_values(status.get("layer_summary")),
            "layers": layer_rows(status.get("layer_stats")),
            "lora_summary": layer_summary_values(status.get("lora_summary"), "adapters"),
            "lora": layer_rows(status.get("lora_stats")),
            "throughput": throughput_values(status, run_state),
            "streaming": streaming_values(status),
            "fixed_eval": eval_values(status),
            "pattern": pattern_values(status.get("pattern_heatmap")),
            "monitor_errors": monitor_error_rows(errors),
            "monitors": [str(m) for m in status.get("monitors") or []],
        }

    def _stored(
        self,
    ) -> tuple[dict[str, Any], str, list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        """A job after the fact: its status file (the monitors' last snapshot) and its stored alerts."""
        src = self.source
        job_id = src.job_id
        if job_id is None:
            return {}, "", [], [], []
        if src.is_live:
            src.store.flush()  # a recorder's queued alert events are committed before we read them
        snapshot = self._read_status_file(status_path(src.store.root, job_id))
        status = snapshot.to_dict() if snapshot is not None else {}
        events = src.store.events(job_id, "alert")
        active, resolved = fold_alert_events(events)
        if snapshot is not None:
            # the file has the active alerts' latest counts; the events every resolution (the file keeps 20)
            active = [alert_row(a) for a in status.get("active_alerts") or []]
            if not events:
                resolved = [alert_row(a) for a in status.get("resolved_alerts") or []]
        errors = list(status.get("monitor_errors") or [])
        errors += [e["payload"] for e in src.store.events(job_id, "monitor_error") if isinstance(e["payload"], dict)]
        origin = "status file" if snapshot is not None else ("stored alerts" if events else "")
        return status, origin, active, resolved, errors

    def _read_status_file(self, path: Path) -> TrainingStatus | None:
        """The job's status file, or None when there is none or it cannot be read (then the error says why)."""
        if not path.is_file():
            return None
        try:
            return read_status(path)
        except (OSError, ValueError, TypeError) as exc:  # shown under the widget; the stored alerts still are
            log.warning("cannot read the status file %s: %s", path, exc)
            self.error = f"cannot read the status file {path}: {type(exc).__name__}: {exc}"
            return None

    # -- commands from the browser ---------------------------------------------------------
    def _on_refresh(self) -> None:
        """Read everything again (a stored job's status file may have been written meanwhile)."""
        self._refresh()

    def __repr__(self) -> str:
        n = len(self.alerts)
        return f"MonitorPanel({self.source!r}, state={self.run_state!r}, step={self.step}, active_alerts={n})"


def monitor_panel_for(source: LiveSource) -> MonitorPanel | None:
    """The Dashboard's factory: a MonitorPanel when the source has monitors or monitor traces, else None."""
    return MonitorPanel(source) if has_monitor_data(source) else None
