"""LossHealthPanel: the Loss Diagnosis Dashboard of the seed, live in the notebook.

::

    panel = acc.LossHealthPanel(trainer); panel     # or a Recorder, Job, job id (+ store=), RunStore
    trainer.start(steps=5000)

Shows, for the bound job: a health banner (the worst task health, the run
state, step, total loss, speed), a per-task summary table (mean, final, min,
max, trend, health, a sparkline of the whole run), a folded, colour-coded
loss log (one entry per ``log_every`` steps, never one line per step), the
job history from the store with coloured final losses, and the checkpoint
tree with a health dot per node.

Everything it shows is rebuilt from the store + the live source, so a page
reload, a second view or a panel built after a kernel restart from the store
alone shows the same thing. Updates from the training thread go through the
shared update pump (<= 10 messages/s for this widget, one message per batch).

Clicking a job in the history shows that job's summary and log
(``select_job``); "Back to live" returns to the bound job.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any, ClassVar

import traitlets

from acc.events import Event
from acc.loss_health import LossSummary
from acc.state import TrainerState
from acc.store import JobRecord, RunStore, loss_series_name
from acc.widgets._base import AccWidget, CommandError, Field
from acc.widgets._binary import json_number
from acc.widgets._health_data import (
    LossLog,
    Sparkline,
    checkpoint_rows,
    classifier,
    history_rows,
    overall_health,
    spark_bytes,
    stored_steps,
    stored_tasks,
    summary_rows,
)
from acc.widgets._pump import UpdatePump
from acc.widgets._source import LiveSource, StoredSource, as_source
from acc.widgets._views import remember

__all__ = ["LossHealthPanel"]

logger = logging.getLogger(__name__)

STATE_POLL_SECONDS = 0.25  # how often the run state is re-read while nothing else happens (a debugger's pause)
RATE_WINDOW_SECONDS = 5.0


class LossHealthPanel(AccWidget):
    """Loss health of a job: banner, per-task summary, folded log, job history, checkpoint tree.

    ``LossHealthPanel(source, *, store=None, log_every=50, history_limit=12, pump=None)``:
    ``source`` is anything ``acc.widgets.as_source`` accepts; ``store`` only
    for a stored job id; ``log_every`` steps per loss-log entry;
    ``history_limit`` jobs in the history; ``pump`` an UpdatePump (default:
    the shared one).
    """

    _stem = "loss_health_panel"
    _commands: ClassVar[Mapping[str, Mapping[str, Field]]] = {
        "refresh": {},
        "select_job": {"job_id": Field((int, type(None)))},
    }

    # -- synced traits: all set by the kernel; the browser sends commands only --
    source_kind = traitlets.Unicode("").tag(sync=True)
    """What the panel is bound to: "trainer", "job", "recorder" or "stored"."""
    job = traitlets.Dict().tag(sync=True)
    """The bound job: ``{"id", "name", "status", "kind"}``; ``{}`` before a trainer's first job."""
    run_state = traitlets.Unicode("idle").tag(sync=True)
    """idle, running, pausing, paused, stopped or finished (the DOM's ``data-acc-field="state"``)."""
    step = traitlets.Int(0).tag(sync=True)
    """Steps taken by the bound job's trainer/loop (``data-acc-field="step"``)."""
    max_steps = traitlets.Int(None, allow_none=True).tag(sync=True)
    """The step at which the job ends, when known."""
    loss = traitlets.Any(None).tag(sync=True)
    """The newest fetched total loss (a JSON number; NaN/Inf as strings), or None."""
    health = traitlets.Unicode("").tag(sync=True)
    """The worst task health of the shown job: healthy, warning, critical; "" before any loss."""
    rate = traitlets.Any(None).tag(sync=True)
    """Steps per second (recent while running, the job's average once it ended), or None."""
    elapsed = traitlets.Any(None).tag(sync=True)
    """Seconds since the job started (its duration once it ended), or None."""
    summary: traitlets.List[dict[str, Any]] = traitlets.List().tag(sync=True)
    """Per-task rows: task, type, mean, final, min, max, trend, health, steps, nonfinite."""
    sparklines = traitlets.Dict().tag(sync=True)
    """Per-task float32 bytes: the whole run's loss in <= 96 bucket means (NaN where a bucket had NaN/Inf)."""
    log: traitlets.List[dict[str, Any]] = traitlets.List().tag(sync=True)
    """Loss-log entries, newest first: first, last, n, open, health, tasks [{task, value, health}]."""
    log_every = traitlets.Int(50).tag(sync=True)
    """Steps per loss-log entry."""
    history: traitlets.List[dict[str, Any]] = traitlets.List().tag(sync=True)
    """Jobs in the store, newest first: id, name, kind, status, steps, started, duration, final, health, reason."""
    checkpoints: traitlets.List[dict[str, Any]] = traitlets.List().tag(sync=True)
    """The checkpoint tree, depth-first: id, name, step, depth, parent, job_id, created, health, current."""
    viewing = traitlets.Int(None, allow_none=True).tag(sync=True)
    """The history job shown in the summary and log instead of the bound job (None: the bound job)."""

    def __init__(
        self,
        source: object,
        *,
        store: RunStore | None = None,
        log_every: int = 50,
        history_limit: int = 12,
        pump: UpdatePump | None = None,
        **traits: Any,
    ) -> None:
        src = as_source(source, store)
        if isinstance(history_limit, bool) or not isinstance(history_limit, int) or history_limit < 1:
            raise ValueError(f"history_limit must be a positive integer, got {history_limit!r}")
        self.source: LiveSource = src
        self.history_limit = history_limit
        self._lock = threading.RLock()  # live structures: pump thread vs commands in the kernel thread
        self._inbox: deque[tuple[str, int | None, list[dict[str, Any]]]] = deque()
        self._log = LossLog(log_every)  # validates log_every
        self._sparks: dict[str, Sparkline] = {}
        self._last_step: int | None = None
        self._rate: deque[tuple[float, int]] = deque()
        self._first: tuple[float, int] | None = None
        super().__init__(pump=pump, source_kind=src.kind, log_every=log_every, **traits)
        # Subscribe first, then rebuild from the store: steps fetched meanwhile are in the inbox
        # and the ones before are committed (rebuild flushes the store), so nothing falls between.
        if src.is_live:
            self._listen(src.on(Event.JOB_STARTED, self._on_job_started))
            self._listen(src.on(Event.METRICS_FETCHED, self._on_metrics))
            self._listen(src.on(Event.JOB_ENDED, self._on_job_ended))
            self._listen(src.on(Event.CHECKPOINT_SAVED, self._on_checkpoint))
            self._poll("state", STATE_POLL_SECONDS, self._refresh_state)
        with self._lock:
            self._rebuild()
        self._refresh_live()
        self._refresh_history()
        self._refresh_checkpoints()
        remember(self)

    # -- training-thread handlers: hand work to the pump, nothing else ---------------
    def _on_job_started(self, state: TrainerState) -> None:
        self._inbox.append(("start", state.job_id, []))
        self._schedule("live", self._refresh_live)
        self._schedule("history", self._refresh_history)

    def _on_metrics(self, state: TrainerState) -> None:
        self._inbox.append(("infos", state.job_id, state.fetched))
        self._schedule("live", self._refresh_live)

    def _on_job_ended(self, state: TrainerState) -> None:
        self._inbox.append(("end", state.job_id, []))
        self._schedule("live", self._refresh_live)
        self._schedule("history", self._refresh_history)
        self._pump.flush()  # the end is shown before job.wait() returns

    def _on_checkpoint(self, state: TrainerState) -> None:
        self._schedule("checkpoints", self._refresh_checkpoints)
        self._pump.flush()

    # -- building the live structures ------------------------------------------------
    def _reset(self) -> None:
        self._log = LossLog(self.log_every)
        self._sparks = {}
        self._last_step = None
        self._rate.clear()
        self._first = None

    def _add_step(self, step: int, losses: dict[str, float], health: dict[str, str], wall: float | None) -> None:
        if self._last_step is not None and step <= self._last_step:
            return  # already read from the store
        self._last_step = step
        self._log.add(step, losses, health)
        for task, value in losses.items():
            spark = self._sparks.get(task)
            if spark is None:
                spark = self._sparks[task] = Sparkline()
            spark.add(value)
        if wall is not None and math.isfinite(wall):
            if self._first is None:
                self._first = (wall, step)
            self._rate.append((wall, step))
            while self._rate and wall - self._rate[0][0] > RATE_WINDOW_SECONDS:
                self._rate.popleft()

    def _rebuild(self) -> None:
        """The bound job's log and sparklines from the store (lock held)."""
        self._reset()
        src = self.source
        job_id = src.job_id
        if job_id is None:
            return
        log_, sparks = _stored_log(src.store, job_id, src.task_specs(), self.log_every, live=src.is_live)
        self._log, self._sparks = log_, sparks
        self._last_step = log_.last_step

    def _drain(self) -> None:
        while self._inbox:
            kind, _job_id, infos = self._inbox.popleft()
            if kind == "start":
                self._reset()
            for info in infos:
                self._add_step(info["step"], info["losses"], info["health"], info.get("wall_time"))

    # -- refreshes (pump thread, or the kernel thread at construction/commands) -------
    def _refresh_live(self) -> None:
        with self._lock:
            self._drain()
            values = self._live_values()
            if self.viewing is None:
                values.update(
                    log=self._log.entries(),
                    sparklines=spark_bytes(self._sparks),
                )
            else:
                values.pop("summary")
            values["history"] = self._patched_history(values.pop("_summaries"))
            self._set(**values)  # under the lock: a select_job from the kernel thread cannot interleave

    def _refresh_state(self) -> None:
        self.run_state = self.source.run_state()

    def _live_values(self) -> dict[str, Any]:
        src = self.source
        summaries = src.loss_summary()
        state = src.state
        record = src.job_record() if state is None else None
        values: dict[str, Any] = {
            "run_state": src.run_state(),
            "summary": summary_rows(summaries),
            "health": overall_health(summaries),
            "_summaries": summaries,
        }
        if state is not None:
            info = state.last_info
            values.update(
                job={"id": state.job_id, "name": state.job_name, "status": state.status, "kind": src.kind}
                if state.job_id is not None
                else {},
                step=state.step,
                max_steps=state.max_steps,
                loss=json_number(info.get("loss")) if info else None,
                rate=json_number(self._rate_now(state)),
                elapsed=json_number(_elapsed(state.started_at, state.ended_at)),
            )
        elif record is not None:
            values.update(
                job={"id": record.id, "name": record.name, "status": record.status.value, "kind": record.kind},
                step=record.last_step or 0,
                max_steps=_max_steps(record),
                loss=json_number(_last_value(src.store, record)),
                rate=json_number(_average_rate(record)),
                elapsed=json_number(record.duration),
            )
        return values

    def _rate_now(self, state: TrainerState) -> float | None:
        samples = self._rate
        if state.status != "running" and self._first is not None and samples:
            (w0, s0), (w1, s1) = self._first, samples[-1]
            return (s1 - s0) / (w1 - w0) if w1 > w0 else None
        if len(samples) < 2:
            return None
        (w0, s0), (w1, s1) = samples[0], samples[-1]
        return (s1 - s0) / (w1 - w0) if w1 > w0 else None

    def _patched_history(self, summaries: dict[str, LossSummary]) -> list[dict[str, Any]]:
        """The history with the bound job's row updated from the live values (no store query)."""
        rows = self.history
        job_id = self.source.job_id
        state = self.source.state
        if job_id is None or state is None or state.status != "running":
            return rows
        out = []
        for row in rows:
            if row["id"] == job_id:
                row = {
                    **row,
                    "status": "running",
                    "steps": state.step,
                    "final": [
                        {"task": k, "value": json_number(s.final), "health": s.health.value}
                        for k, s in summaries.items()
                    ],
                    "health": overall_health(summaries) or None,
                    "duration": json_number(_elapsed(state.started_at, None)),
                }
            out.append(row)
        return out

    def _refresh_history(self) -> None:
        src = self.source
        jobs = src.store.jobs(limit=self.history_limit)
        state = src.state
        live = src.loss_summary() if state is not None and state.status == "running" else None
        self.history = history_rows(jobs, src.job_id, live)

    def _refresh_checkpoints(self) -> None:
        src = self.source
        store = src.checkpoints
        if store is None:
            self.checkpoints = []
            return
        state = src.state
        current = state.last_checkpoint.id if state is not None and state.last_checkpoint is not None else None
        self.checkpoints = checkpoint_rows(store.tree(), current=current)

    # -- commands from the browser -------------------------------------------------------
    def _on_refresh(self) -> None:
        """Re-read history and checkpoints from the store (and a stored job's curves)."""
        if isinstance(self.source, StoredSource):
            with self._lock:
                self._rebuild()
        self._refresh_history()
        self._refresh_checkpoints()
        self._refresh_live()

    def _on_select_job(self, job_id: int | None) -> None:
        """Show a history job's summary and log (None, or the bound job: back to live)."""
        src = self.source
        if job_id is None or job_id == src.job_id:
            with self._lock:
                self.viewing = None
            self._refresh_live()
            return
        try:
            record = src.store.job(job_id)
        except KeyError:
            raise CommandError(f"select_job: there is no job {job_id} in {src.store.db_path}") from None
        specs = _record_specs(record)
        log_, sparks = _stored_log(src.store, job_id, specs, self.log_every, live=False)
        summaries = src.store.loss_summary(job_id)
        with self._lock:
            self._set(
                viewing=job_id,
                summary=summary_rows(summaries),
                log=log_.entries(),
                sparklines=spark_bytes(sparks),
            )

    def __repr__(self) -> str:
        return f"LossHealthPanel({self.source!r}, state={self.run_state!r}, step={self.step})"


def _record_specs(record: JobRecord) -> dict[str, dict[str, Any]]:
    tasks = record.config.get("tasks", {})
    return {str(k): dict(v) for k, v in tasks.items()} if isinstance(tasks, dict) else {}


def _stored_log(
    store: RunStore, job_id: int, specs: dict[str, dict[str, Any]], every: int, *, live: bool
) -> tuple[LossLog, dict[str, Sparkline]]:
    """A job's folded log and sparklines from its stored ``loss/<task>`` series.

    The sparklines read each whole series once (numpy); the log reads only the
    steps its newest entries cover.
    """
    if live:
        store.flush()  # what the recorder queued before we subscribed is committed now
    found = stored_tasks(store, job_id)
    tasks = [t for t in specs if t in found] + [t for t in found if t not in specs]  # the job's task order
    sparks: dict[str, Sparkline] = {}
    last = 0
    for task in tasks:
        steps, values, _ = store.series(job_id, loss_series_name(task))
        sparks[task] = Sparkline.from_values(values)
        if len(steps):
            last = max(last, int(steps[-1]))
    log_ = LossLog(every)
    if last:
        first_bucket = max(0, (last - 1) // every - log_.keep + 1)
        health = classifier(specs)
        for step, losses in stored_steps(store, job_id, tasks, start=first_bucket * every + 1):
            log_.add(step, losses, {t: health(t, v) for t, v in losses.items()})
    return log_, sparks


def _elapsed(started: float | None, ended: float | None) -> float | None:
    if started is None:
        return None
    return (ended if ended is not None else time.time()) - started


def _max_steps(record: JobRecord) -> int | None:
    steps = record.config.get("steps")
    if isinstance(steps, int):
        start = record.config.get("start_step")
        return steps + (start if isinstance(start, int) else 0)
    return None


def _last_value(store: RunStore, record: JobRecord) -> float | None:
    if record.last_step is None:
        return None
    _, values, _ = store.series(record.id, "loss", start=record.last_step)
    return float(values[-1]) if len(values) else None


def _average_rate(record: JobRecord) -> float | None:
    duration = record.duration
    if not record.last_step or not duration or duration <= 0:
        return None
    start = record.config.get("start_step")
    steps = record.last_step - (start if isinstance(start, int) else 0)
    return steps / duration
