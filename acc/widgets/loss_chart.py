"""LossChart: the live, zoomable loss chart (bqplot), honest at a million points per line.

::

    chart = acc.LossChart(trainer)            # or a Recorder, a Job, a job id (+ store=)
    chart                                     # one line per task, + the total when there are several
    chart.metric = "grad_norm"                # or "loss", "learning_rate" (the toggle above the chart)
    chart.log_y = True
    chart.overlay_jobs = (3, 5)               # compare with jobs from the store's history
    chart.zoom(2000, 4000); chart.reset()     # what the mouse does: wheel zoom, drag to pan, Reset

How it stays fast and truthful:

* Every series lives in memory as numpy arrays: read once from the store
  (``RunStore.series``), then grown from the live source's METRICS_FETCHED
  events (the new tail only; nothing is read twice).
* What goes to the browser is a *view*: per pixel column the point with the
  smallest and the one with the largest value (``_decimate.decimate_minmax``),
  at most ``max_points`` per line, recomputed when the visible step range
  changes. A one-step spike among 1e6 points stays visible, and the kept
  points are real ones, so the hover read-out shows their exact step and value.
  Arrays go as binary buffers (bqplot serialises numpy arrays that way).
* NaN and +/-Inf cannot be drawn by a line: they are drawn as markers on the
  top (NaN, +Inf) or bottom (-Inf) edge in the critical colour, with a
  tooltip naming the series.
* Zoom and pan are bqplot's PanZoom on the step axis (wheel, drag); the y
  axis fits the points in view. PanZoom sets the step scale's ``min``/``max``
  from the browser; the chart hears that and re-decimates the new range
  through the shared update pump (so a burst of wheel events costs one
  recomputation per pump interval, not one per event). A zoomed view stays
  where the user put it while new steps arrive; **Reset** clears the scales'
  limits, which returns the chart to auto-fit, following new data.
* Live updates come through the shared pump too, at most ``refresh_hz``
  times a second (less often when a redraw gets expensive on a very long
  run: the chart keeps to about a tenth of a core) and flushed when the job
  ends; one update is two messages (the job's line mark and the status line).

The chart is an ipywidgets ``VBox``: the controls row, the bqplot ``Figure``
and ``LossChartInfo``, a small acc anywidget (``widgets/loss_chart.js``) with
the legend, the status line, the hover read-out and errors. All state a
second view or a reload must show lives in synced widgets (the controls'
values, the scales' limits, the marks' data).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import bqplot
import ipywidgets
import numpy as np
import traitlets

from acc.events import Event, RemovableHandle
from acc.state import TrainerState
from acc.store import RunStore
from acc.widgets._base import AccWidget
from acc.widgets._decimate import Decimated, decimate_minmax
from acc.widgets._pump import UpdatePump, default_pump
from acc.widgets._source import LiveSource, as_source
from acc.widgets._views import remember

__all__ = ["METRICS", "LossChart", "LossChartInfo"]

log = logging.getLogger(__name__)

METRICS: dict[str, str] = {"loss": "loss", "learning_rate": "learning rate", "grad_norm": "gradient norm"}
"""The metric toggle: store series name (or family) -> what the user reads."""

LOSS = "loss"
LOSS_PREFIX = "loss/"

# Categorical colours for lines, readable on light and dark backgrounds. No greens, oranges or reds:
# those mean healthy / warning / critical everywhere else in acc (and red marks NaN/Inf here).
PALETTE = (
    "#1f77b4",  # blue
    "#9467bd",  # purple
    "#17becf",  # cyan
    "#e377c2",  # pink
    "#8c564b",  # brown
    "#7f7f7f",  # grey
    "#6b6ecf",  # periwinkle
    "#a55194",  # plum
)
CRITICAL = "var(--jp-error-color1, #d32f2f)"
# A live redraw that took t seconds is followed by at least this many t of rest (the chart's CPU share).
LIVE_CPU_SHARE_INVERSE = 10.0
# Where NaN/+Inf (top) and -Inf (bottom) markers sit on the [0, 1] edge scale.
EDGE_TOP, EDGE_BOTTOM = 1.0, 0.0


class _Series:
    """One series of one job in memory: steps ascending, values; grown in place (amortised O(1) append)."""

    __slots__ = ("_steps", "_values", "loaded", "n", "version")

    def __init__(self) -> None:
        self._steps = np.empty(0, dtype=np.int64)
        self._values = np.empty(0, dtype=np.float64)
        self.n = 0
        self.version = 0
        self.loaded = False
        """True once the stored points were read (the live tail may arrive before that)."""

    @property
    def steps(self) -> np.ndarray:
        return self._steps[: self.n]

    @property
    def values(self) -> np.ndarray:
        return self._values[: self.n]

    def append(self, steps: np.ndarray, values: np.ndarray) -> None:
        """Add points; a step already present takes the new value (as the store's INSERT OR REPLACE)."""
        if steps.size == 0:
            return
        out_of_order = bool(self.n and steps[0] <= self._steps[self.n - 1])
        if out_of_order or (steps.size > 1 and bool(np.any(np.diff(steps) <= 0))):
            self._replace(*_merge(self.steps, self.values, steps, values))
            return
        need = self.n + steps.size
        if need > self._steps.size:
            capacity = max(need, 2 * self._steps.size, 1024)
            self._steps = np.resize(self._steps, capacity)
            self._values = np.resize(self._values, capacity)
        self._steps[self.n : need] = steps
        self._values[self.n : need] = values
        self.n = need
        self.version += 1

    def merge_stored(self, steps: np.ndarray, values: np.ndarray) -> None:
        """Take the stored points; keep live points the store did not have yet (steps after its last)."""
        if self.n and steps.size:
            newer = self.steps > steps[-1]
            steps = np.concatenate((steps, self.steps[newer]))
            values = np.concatenate((values, self.values[newer]))
        elif not steps.size:
            steps, values = self.steps.copy(), self.values.copy()
        self._replace(steps.astype(np.int64, copy=False), values.astype(np.float64, copy=False))
        self.loaded = True

    def _replace(self, steps: np.ndarray, values: np.ndarray) -> None:
        self._steps, self._values, self.n = steps, values, steps.size
        self.version += 1


def _merge(s1: np.ndarray, v1: np.ndarray, s2: np.ndarray, v2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted union by step; where a step repeats, the later value wins."""
    steps = np.concatenate((s1, s2))
    values = np.concatenate((v1, v2))
    order = np.argsort(steps, kind="stable")
    steps, values = steps[order], values[order]
    last = np.concatenate((steps[1:] != steps[:-1], [True]))  # the last of each run of equal steps
    return steps[last], values[last]


@dataclass
class _Job:
    """A job's series in memory, and its marks in the figure."""

    job_id: int
    name: str
    series: dict[str, _Series] = field(default_factory=dict)
    known: set[str] = field(default_factory=set)
    """Series names the job has (in the store or seen live)."""
    lines: Any = None
    pushed: tuple[Any, ...] | None = None
    """What the marks show now (metric, view, versions): an equal key skips the update."""
    view: list[Decimated] = field(default_factory=list)

    def buffer(self, name: str) -> _Series:
        series = self.series.get(name)
        if series is None:
            series = self.series[name] = _Series()
        return series


def _line_names(known: Iterable[str], metric: str) -> list[str]:
    """The series drawn for ``metric``: each task's loss, plus the total when there is not exactly one task."""
    known = set(known)
    if metric != LOSS:
        return [metric] if metric in known else []
    tasks = sorted(n for n in known if n.startswith(LOSS_PREFIX))
    if LOSS in known and len(tasks) != 1:
        return [LOSS, *tasks]
    return tasks


def _series_label(name: str) -> str:
    if name == LOSS:
        return "total"
    if name.startswith(LOSS_PREFIX):
        return name[len(LOSS_PREFIX) :]
    return METRICS.get(name, name)


def _pad(rows: Sequence[Decimated]) -> tuple[np.ndarray, np.ndarray]:
    """Lines of different lengths as 2-D arrays (one row per line) for one bqplot Lines mark.

    A short row repeats its last point (a zero-length segment draws nothing);
    an empty row is NaN (a line skips undefined points).
    """
    if not rows:
        return np.empty(0, dtype=np.float64), np.empty(0, dtype=np.float64)
    width = max(1, max(r.steps.size for r in rows))
    x = np.full((len(rows), width), np.nan)
    y = np.full((len(rows), width), np.nan)
    for i, r in enumerate(rows):
        n = r.steps.size
        if n:
            x[i, :n] = r.steps
            y[i, :n] = r.values
            x[i, n:] = r.steps[-1]
            y[i, n:] = r.values[-1]
    return x, y


def _nonfinite_name(value: float, label: str) -> str:
    kind = "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
    return f"{kind} · {label}"


class LossChartInfo(AccWidget):
    """The chart's front-end companion: legend, status line, hover read-out and errors.

    bqplot's own tooltips cannot fire while its PanZoom interaction covers
    the plot, and its legend sits on top of the data; so ``widgets/loss_chart.js``
    draws the legend and the status line under the figure and shows, on hover,
    the drawn point nearest to the mouse (its exact step and value, read from
    the line's data in the page: no kernel round trip).
    """

    _stem = "loss_chart"

    text = traitlets.Unicode("").tag(sync=True)
    """What the chart shows, in words (set by the kernel)."""
    legend = traitlets.List(traitlets.Dict()).tag(sync=True)
    """One ``{"label", "color", "dashed"}`` per line, and ``{"label": "NaN / Inf", "marker": true}`` (kernel-set)."""
    view = traitlets.Unicode("auto").tag(sync=True)
    """The drawn step range "start:end", or "auto" (set by the kernel after each redraw; tests wait on it)."""
    revision = traitlets.Int(0).tag(sync=True)
    """Counts the redraws of the line data (set by the kernel; benchmarks wait on it)."""


class LossChart(ipywidgets.VBox):  # type: ignore[misc]
    """A live, zoomable chart of a job's losses, learning rate or gradient norm, with overlays of past jobs.

    ``LossChart(source, *, store=None, metric="loss", log_y=False, overlay=(),
    max_points=2000, refresh_hz=5.0, height="340px", pump=None)``:

    * ``source``: anything :func:`acc.widgets.as_source` takes (a Trainer,
      Recorder, Job, log capture, a job id with ``store=``, a RunStore).
    * ``metric``: ``"loss"`` (one line per task, plus the total when there
      are several tasks), ``"learning_rate"`` or ``"grad_norm"``.
    * ``overlay``: ids of other jobs in the same store to draw alongside.
    * ``max_points``: at most this many points per line are sent for a view
      (min and max of ``(max_points - 4) // 2`` pixel columns, the first and
      last point, one neighbour on each side of a zoomed view).
    * ``refresh_hz``: live redraws per second at most (the shared pump caps
      every widget at 10 Hz).
    """

    def __init__(
        self,
        source: Any,
        *,
        store: RunStore | None = None,
        metric: str = LOSS,
        log_y: bool = False,
        overlay: Iterable[int] = (),
        max_points: int = 2000,
        refresh_hz: float = 5.0,
        height: str = "340px",
        pump: UpdatePump | None = None,
    ) -> None:
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {', '.join(map(repr, METRICS))}, got {metric!r}")
        if isinstance(max_points, bool) or not isinstance(max_points, int) or max_points < 10:
            raise ValueError(f"max_points must be an integer >= 10, got {max_points!r}")
        if isinstance(refresh_hz, bool) or not isinstance(refresh_hz, (int, float)) or not 0 < refresh_hz <= 10:
            raise ValueError(f"refresh_hz must be a number in (0, 10], got {refresh_hz!r}")
        self._source: LiveSource = as_source(source, store)
        self._store = self._source.store
        self._pump = pump if pump is not None else default_pump()
        self.max_points = max_points
        self.refresh_hz = float(refresh_hz)
        # Two points (min, max) per column, + the first/last point and one neighbour each side.
        self._columns = max(1, (max_points - 4) // 2)
        self._lock = threading.RLock()  # data and marks: pump thread, kernel thread, training thread at job end
        self._tail_lock = threading.Lock()  # only the training thread's hand-off (never held while drawing)
        self._tail: list[tuple[int | None, dict[str, tuple[list[int], list[float]]]]] = []
        self._jobs: dict[int, _Job] = {}
        self._primary: int | None = None
        self._next_live = -math.inf  # monotonic time before which live redraws wait
        self._last_status = -math.inf
        self._nonfinite_pushed: tuple[Any, ...] | None = None
        self._handles: list[RemovableHandle] = []
        self._closed = False

        # -- controls (their synced values are the chart's state) --------------------
        self._metric = ipywidgets.ToggleButtons(
            options=[(label, key) for key, label in METRICS.items()],
            value=metric,
            style={"button_width": "auto"},
            layout=ipywidgets.Layout(width="auto"),
        )
        self._log = ipywidgets.Checkbox(
            value=bool(log_y), description="log y", indent=False, layout=ipywidgets.Layout(width="auto")
        )
        self._reset = ipywidgets.Button(
            description="Reset", tooltip="Return to auto-fit (follow new data)", layout=ipywidgets.Layout(width="auto")
        )
        self._picker = ipywidgets.SelectMultiple(
            options=[], rows=3, description="Compare", layout=ipywidgets.Layout(width="320px")
        )
        self._picker.style.description_width = "auto"

        # -- the figure ---------------------------------------------------------------
        self._x = bqplot.LinearScale()
        self._y = self._make_y_scale()
        # Line marks kept for the next job's lines: a job starting changes data, not the figure's marks.
        self._spare: list[Any] = [self._new_lines()]
        self._edge = bqplot.LinearScale(min=0.0, max=1.0)
        self._x_axis = bqplot.Axis(scale=self._x, label="step", tick_format="~s", grid_lines="dashed")
        self._y_axis = self._make_y_axis()
        self._nonfinite = bqplot.Scatter(
            x=np.empty(0),
            y=np.empty(0),
            scales={"x": self._x, "y": self._edge},
            colors=[CRITICAL],
            marker="diamond",
            default_size=40,
            names_unique=False,  # names label the markers for the hover read-out; they repeat
            display_names=False,
            apply_clip=False,
        )
        self._panzoom = self._make_panzoom()
        self.figure = bqplot.Figure(
            marks=[*self._spare, self._nonfinite],
            axes=[self._x_axis, self._y_axis],
            interaction=self._panzoom,
            fig_margin={"top": 16, "bottom": 42, "left": 64, "right": 16},
            animation_duration=0,
            display_toolbar=False,
            padding_y=0.04,
            layout=ipywidgets.Layout(width="100%", height=height, min_width="320px"),
        )
        self.figure.add_class("acc-loss-chart-figure")
        self._info = LossChartInfo(pump=self._pump)
        controls = ipywidgets.HBox(
            [self._metric, self._log, self._reset, self._picker],
            layout=ipywidgets.Layout(align_items="center", flex_flow="row wrap"),
        )
        controls.add_class("acc-loss-chart-controls")
        self._controls = controls
        super().__init__([controls, self.figure, self._info])
        self.add_class("acc-loss-chart")

        # -- wiring -----------------------------------------------------------------------
        self._metric.observe(self._on_structure, names="value")
        self._log.observe(self._on_structure, names="value")
        self._picker.observe(self._on_structure, names="value")
        self._reset.on_click(lambda _button: self._guarded("reset", self.reset))
        self._x.observe(self._on_view, names=["min", "max"])
        # Subscribe before reading the store: a block fetched in between is in one or the other.
        for event, handler in (
            (Event.METRICS_FETCHED, self._on_fetched),
            (Event.JOB_STARTED, self._on_job_started),
            (Event.JOB_ENDED, self._on_job_ended),
        ):
            self._handles.append(self._source.on(event, handler))
        with self._lock:
            self._switch_primary(self._source.job_id)
            overlay_ids = tuple(int(j) for j in overlay)
            if overlay_ids:
                self.overlay_jobs = overlay_ids
            self._rebuild()
        remember(self)  # acc.show(trainer) can display this chart again

    # -- public API -------------------------------------------------------------------------
    @property
    def metric(self) -> str:
        """``"loss"``, ``"learning_rate"`` or ``"grad_norm"`` (the toggle above the chart)."""
        return str(self._metric.value)

    @metric.setter
    def metric(self, value: str) -> None:
        if value not in METRICS:
            raise ValueError(f"metric must be one of {', '.join(map(repr, METRICS))}, got {value!r}")
        self._metric.value = value

    @property
    def log_y(self) -> bool:
        """A logarithmic y axis (values <= 0 cannot be drawn on it; the status line counts them)."""
        return bool(self._log.value)

    @log_y.setter
    def log_y(self, value: bool) -> None:
        self._log.value = bool(value)

    @property
    def overlay_jobs(self) -> tuple[int, ...]:
        """Ids of other jobs drawn alongside the current one (the "Compare" list)."""
        return tuple(self._picker.value)

    @overlay_jobs.setter
    def overlay_jobs(self, job_ids: Iterable[int]) -> None:
        ids = tuple(int(j) for j in job_ids)
        offered = {value for _label, value in self._picker.options}
        for job_id in ids:
            if job_id == self._primary:
                raise ValueError(f"job {job_id} is the chart's own job; overlay other jobs")
            if job_id not in offered:
                self._store.job(job_id)  # raises KeyError naming the job and the database
                self._refresh_job_options(extra=ids)
                offered = {value for _label, value in self._picker.options}
        self._picker.value = ids

    @property
    def source(self) -> LiveSource:
        """What the chart is bound to (see :func:`acc.widgets.as_source`)."""
        return self._source

    @property
    def job_id(self) -> int | None:
        """The job whose lines are drawn solid (the source's current job)."""
        return self._primary

    @property
    def zoomed(self) -> bool:
        """True after a zoom or pan: new data no longer moves the view until ``reset()``."""
        return self._x.min is not None or self._x.max is not None

    @property
    def view(self) -> tuple[float, float] | None:
        """The visible step range after a zoom, None when auto-fitting."""
        lo, hi = self._view_range()
        return None if lo is None or hi is None else (lo, hi)

    @property
    def error(self) -> str:
        """The error shown under the chart ("" when none)."""
        return str(self._info.error)

    @property
    def status(self) -> str:
        """The status line under the chart."""
        return str(self._info.text)

    def zoom(self, start: float, end: float) -> None:
        """Show steps ``start`` .. ``end`` (the y axis fits the data in that range)."""
        lo, hi = float(start), float(end)
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo >= hi:
            raise ValueError(f"zoom needs finite start < end, got {start!r} and {end!r}")
        with self._lock:
            with self._y.hold_sync():
                self._y.min = None
                self._y.max = None
            with self._x.hold_sync():
                self._x.min = lo
                self._x.max = hi
            self._refresh()

    def reset(self) -> None:
        """Back to auto-fit: the whole run, following new data."""
        with self._lock:
            for scale in (self._x, self._y):
                with scale.hold_sync():
                    scale.min = None
                    scale.max = None
            self._info.error = ""
            self._refresh(status=True)

    def refresh_jobs(self) -> None:
        """Re-read the job list of the "Compare" picker from the store."""
        with self._lock:
            self._refresh_job_options()

    def close(self) -> None:
        """Stop listening to the source and close every widget of the chart."""
        if getattr(self, "_closed", True):  # closed, or __init__ failed before building anything
            super().close()
            return
        self._closed = True
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        with self._lock:
            for job in self._jobs.values():
                self._close_marks(job)
            for w in (
                *self._spare,
                self._nonfinite,
                self._panzoom,
                self._x_axis,
                self._y_axis,
                self._x,
                self._y,
                self._edge,
                self.figure,
                self._metric,
                self._log,
                self._reset,
                self._picker,
                self._controls,
                self._info,
            ):
                w.close()
        super().close()

    # -- events from the source (training thread: hand off, never draw) ---------------------------
    def _on_fetched(self, state: TrainerState) -> None:
        try:
            self._take(state)
        except Exception as exc:  # never raise into the training loop: show it under the chart instead
            self._info._show_error("receiving steps", exc)

    def _take(self, state: TrainerState) -> None:
        """Queue a fetched block's values by series name (cheap: the training thread waits on this)."""
        block: dict[str, tuple[list[int], list[float]]] = {}

        def put(name: str, step: int, value: float) -> None:
            steps, values = block.get(name) or block.setdefault(name, ([], []))
            steps.append(step)
            values.append(value)

        for info in state.fetched:
            step = int(info["step"])
            total = info.get("loss")
            if total is not None:
                put(LOSS, step, total)
            for task, value in info.get("losses", {}).items():
                put(LOSS_PREFIX + task, step, value)
            if info.get("lr") is not None:
                put("learning_rate", step, info["lr"])
            if info.get("grad_norm") is not None:
                put("grad_norm", step, info["grad_norm"])
        with self._tail_lock:
            self._tail.append((state.job_id, block))
        self._schedule_live()

    def _on_job_started(self, _state: TrainerState) -> None:
        self._schedule_live()

    def _on_job_ended(self, _state: TrainerState) -> None:
        # The final points must not wait for the next pump interval (a finished job shows its end).
        self._info._schedule("live", lambda: self._live(force=True))
        self._pump.flush()

    def _schedule_live(self) -> None:
        if not self._closed:
            self._info._schedule("live", self._live)

    # -- browser writes ----------------------------------------------------------------------------
    def _on_view(self, _change: dict[str, Any]) -> None:
        # A wheel gesture is a burst of min/max writes: coalesced in the pump, one redraw per interval.
        if not self._closed:
            self._info._schedule("view", lambda: self._refresh(status=True))

    def _on_structure(self, change: dict[str, Any]) -> None:
        self._guarded("changing the chart", self._rebuild, y_changed=change["owner"] is not self._picker)

    def _guarded(self, where: str, fn: Callable[..., object], **kwargs: Any) -> None:
        try:
            fn(**kwargs)
        except Exception as exc:  # shown under the chart, with the traceback in the log
            self._info._show_error(where, exc)

    # -- data -------------------------------------------------------------------------------------
    def _job(self, job_id: int) -> _Job:
        job = self._jobs.get(job_id)
        if job is None:
            record = self._store.job(job_id)
            job = self._jobs[job_id] = _Job(job_id, record.name)
            self._refresh_known(job)
        return job

    def _load(self, job: _Job, names: Iterable[str]) -> None:
        """Read the stored points of ``names`` that are not in memory yet (once per series)."""
        missing = [n for n in names if not job.buffer(n).loaded]
        if not missing:
            return
        if job.job_id == self._primary and self._source.is_live:
            self._store.flush()  # points queued before we subscribed are committed, so read them
        for name in missing:
            steps, values, _walls = self._store.series(job.job_id, name)
            job.buffer(name).merge_stored(steps, values)

    def _refresh_known(self, job: _Job) -> None:
        job.known.update(self._store.metric_names(job.job_id))

    def _switch_primary(self, job_id: int | None) -> None:
        if job_id == self._primary:
            return
        old = self._primary
        self._primary = job_id
        if old is not None and old not in self.overlay_jobs:
            gone = self._jobs.pop(old, None)
            if gone is not None:
                self._close_marks(gone)
        if job_id is not None:
            self._refresh_known(self._job(job_id))  # a job seen before may have new series by now
        self._refresh_job_options()

    def _drain(self) -> int | None:
        """Move the live tail into memory; returns the first new step of the current job (None: nothing new)."""
        with self._tail_lock:
            blocks, self._tail = self._tail, []
        current = self._source.job_id
        if current is not None and current != self._primary:
            self._switch_primary(current)
            self._rebuild_marks()
        first: int | None = None
        for job_id, block in blocks:
            if job_id is None or job_id != self._primary:
                continue  # a block of a job the chart no longer follows
            job = self._job(job_id)
            for name, (steps, values) in block.items():
                job.known.add(name)
                job.buffer(name).append(np.asarray(steps, dtype=np.int64), np.asarray(values, dtype=np.float64))
                first = steps[0] if first is None else min(first, steps[0])
        return first

    def _live(self, *, force: bool = False) -> None:
        if self._closed:
            return
        now = time.monotonic()
        # The pump thread's batches are throttled further to refresh_hz; an explicit pump.flush() from
        # another thread (a job pausing or ending, a test) means "now".
        throttled = threading.current_thread().name == self._pump.name
        if throttled and not force and now < self._next_live:
            self._schedule_live()  # too soon: try again in a later pump batch; points keep queueing
            return
        with self._lock:
            self._next_live = now + 1.0 / self.refresh_hz
            first_new = self._drain()
            if first_new is None and not force:
                return
            _lo, hi = self._view_range()
            job = self._jobs.get(self._primary) if self._primary is not None else None
            # Zoomed, and every new point is right of the view: nothing visible changed, unless
            # a line used to end inside the view (then its new right neighbour must be drawn).
            beyond = not force and hi is not None and first_new is not None and first_new > hi
            if beyond and job is not None and job.view and all(d.steps.size and d.steps[-1] > hi for d in job.view):
                return
            self._refresh(status=force or now - self._last_status > 1.0)
            # A long run makes each redraw cost more (decimating millions of points): keep the chart's
            # share of a core at about a tenth, so it never slows the training it shows.
            spent = time.monotonic() - now
            self._next_live = max(self._next_live, now + LIVE_CPU_SHARE_INVERSE * spent)

    # -- drawing ----------------------------------------------------------------------------------
    def _make_y_scale(self) -> Any:
        return bqplot.LogScale() if self.log_y else bqplot.LinearScale()

    def _make_panzoom(self) -> Any:
        # Steps only: the y axis fits the points in view (a wheel zoom on both axes mostly shows nothing).
        return bqplot.PanZoom(scales={"x": [self._x]})

    def _make_y_axis(self) -> Any:
        return bqplot.Axis(
            scale=self._y,
            side="left",
            label=METRICS[self.metric],
            tick_format="~g" if not self.log_y else ".1~e",
            grid_lines="dashed",
            label_offset="50px",
        )

    def _view_range(self) -> tuple[float | None, float | None]:
        lo, hi = self._x.min, self._x.max
        values = [v if v is not None and math.isfinite(v) else None for v in (lo, hi)]
        lo, hi = values
        if lo is not None and hi is not None and lo > hi:
            lo, hi = hi, lo
        return lo, hi

    def _jobs_drawn(self) -> list[_Job]:
        ids = [self._primary] if self._primary is not None else []
        ids += [j for j in self.overlay_jobs if j != self._primary]
        return [self._job(j) for j in ids]

    def _rebuild(self, *, y_changed: bool = True) -> None:
        """Structure changed (metric, log scale or the overlaid jobs): new marks, then a redraw."""
        with self._lock:
            if y_changed:
                old_scale, old_axis = self._y, self._y_axis
                self._y = self._make_y_scale()
                self._y_axis = self._make_y_axis()
                self.figure.axes = [self._x_axis, self._y_axis]
                for job in self._jobs.values():
                    self._close_marks(job)  # their y scale is gone
                for lines in self._spare:
                    lines.close()
                self._spare = [self._new_lines()]
                for w in (old_axis, old_scale):
                    w.close()
            drawn = {j.job_id for j in self._jobs_drawn()}
            for job_id in [j for j in self._jobs if j not in drawn]:
                self._close_marks(self._jobs.pop(job_id))
            self._rebuild_marks()
            self._info.error = ""
            self._refresh(status=True)

    def _rebuild_marks(self) -> None:
        marks = []
        for index, job in enumerate(self._jobs_drawn()):
            overlay = index > 0
            if job.lines is None:
                job.lines = self._spare.pop() if self._spare else self._new_lines()
                job.pushed = None
            style = {"stroke_width": 1.25 if overlay else 1.5, "line_style": "dashed" if overlay else "solid"}
            if any(getattr(job.lines, k) != v for k, v in style.items()):
                with job.lines.hold_sync():
                    for k, v in style.items():
                        setattr(job.lines, k, v)
            marks.append(job.lines)
        marks += [*self._spare, self._nonfinite]
        # Same marks, same order: send nothing. bqplot's figure view builds mark views asynchronously, and a
        # marks list that changes while a view is being built (a job starting as its dashboard is displayed)
        # can leave the view without lines or with an axis that lost its scale (seen in 1 in 2 page loads).
        current = self.figure.marks
        if len(marks) != len(current) or any(a is not b for a, b in zip(marks, current, strict=False)):
            self.figure.marks = marks

    def _new_lines(self) -> Any:
        return bqplot.Lines(
            x=np.empty(0), y=np.empty(0), scales={"x": self._x, "y": self._y}, stroke_width=1.5, apply_clip=True
        )

    def _close_marks(self, job: _Job) -> None:
        """Take the job's line mark off it: kept empty for the next job while the y scale stands, else closed."""
        lines = job.lines
        if lines is not None:
            if lines.scales.get("y") is self._y and not self._closed:
                with lines.hold_sync():
                    lines.x, lines.y, lines.labels = np.empty(0), np.empty(0), []
                self._spare.append(lines)
            else:
                lines.close()
        job.lines = None
        job.pushed = None
        job.view = []

    def _refresh(self, *, status: bool = False) -> None:
        """Re-decimate what is visible and send what changed."""
        with self._lock:
            if self._closed:
                return
            lo, hi = self._view_range()
            metric, log_y = self.metric, self.log_y
            drawn = self._jobs_drawn()
            with_job = len(drawn) > 1
            legend: list[dict[str, Any]] = []
            nf_steps: list[np.ndarray] = []
            nf_edges: list[np.ndarray] = []
            nf_names: list[str] = []
            n_points = n_hidden = 0
            decimated = pushed = False
            for index, job in enumerate(drawn):
                names = _line_names(job.known, metric)
                self._load(job, names)
                labels = [f"#{job.job_id} {_series_label(n)}" if with_job else _series_label(n) for n in names]
                colors = [PALETTE[(len(legend) + i) % len(PALETTE)] for i in range(len(names))]
                legend += [{"label": lb, "color": c, "dashed": index > 0} for lb, c in zip(labels, colors, strict=True)]
                key = (
                    metric,
                    log_y,
                    lo,
                    hi,
                    self._columns,
                    tuple(labels),
                    tuple(colors),
                    tuple(job.buffer(n).version for n in names),
                )
                if key != job.pushed:
                    job.view = [
                        decimate_minmax(
                            job.buffer(n).steps,
                            job.buffer(n).values,
                            start=lo,
                            end=hi,
                            columns=self._columns,
                            positive_only=log_y,
                        )
                        for n in names
                    ]
                    self._push_job(job, labels, colors)
                    job.pushed = key
                    pushed = True
                for label, dec in zip(labels, job.view, strict=True):
                    nf_names += [_nonfinite_name(v, label) for v in dec.nonfinite_values.tolist()]
                    nf_steps.append(dec.nonfinite_steps)
                    nf_edges.append(np.where(dec.nonfinite_values == -np.inf, EDGE_BOTTOM, EDGE_TOP))
                    n_points += dec.n_points
                    n_hidden += dec.n_hidden
                    decimated = decimated or dec.decimated
            pushed = self._push_nonfinite(nf_steps, nf_edges, nf_names) or pushed
            if nf_names:
                legend.append({"label": "NaN / Inf", "color": CRITICAL, "marker": True})
            view = "auto" if lo is None and hi is None else f"{lo}:{hi}"
            with self._info.hold_sync():
                if status or view != self._info.view:
                    self._info.text = self._status_text(
                        len(legend) - bool(nf_names), n_points, n_hidden, len(nf_names), decimated
                    )
                    self._last_status = time.monotonic()
                if legend != self._info.legend:
                    self._info.legend = legend
                self._info.view = view
                if pushed:
                    self._info.revision += 1

    def _push_job(self, job: _Job, labels: list[str], colors: list[str]) -> None:
        x, y = _pad(job.view)
        with job.lines.hold_sync():
            job.lines.x = x
            job.lines.y = y
            job.lines.labels = labels
            job.lines.colors = colors

    def _push_nonfinite(self, steps: list[np.ndarray], edges: list[np.ndarray], names: list[str]) -> bool:
        x = np.concatenate(steps).astype(np.float64) if steps else np.empty(0)
        y = np.concatenate(edges) if edges else np.empty(0)
        key = (x.tobytes(), y.tobytes(), tuple(names))
        if key == self._nonfinite_pushed:
            return False
        self._nonfinite_pushed = key
        with self._nonfinite.hold_sync():
            self._nonfinite.x = x
            self._nonfinite.y = y
            self._nonfinite.names = names
        return True

    def _status_text(self, n_lines: int, n_points: int, n_hidden: int, n_nonfinite: int, decimated: bool) -> str:
        if self._primary is None:
            return "No job yet: the chart fills in when training starts."
        if n_lines == 0:
            return f"Job #{self._primary} has no {METRICS[self.metric]} values yet."
        parts = [f"{n_lines} line{'s' if n_lines != 1 else ''}, {n_points:,} points in view"]
        if decimated:
            parts.append(f"drawn as min/max per pixel column (≤ {self.max_points:,} per line)")
        if n_nonfinite:
            parts.append(f"{n_nonfinite:,} NaN/Inf marker{'s' if n_nonfinite != 1 else ''}")
        if n_hidden:
            parts.append(f"{n_hidden:,} values ≤ 0 not drawn on the log scale")
        parts.append("zoomed: Reset returns to auto-fit" if self.zoomed else "auto-fit")
        return " · ".join(parts)

    def _refresh_job_options(self, extra: Iterable[int] = ()) -> None:
        records = [r for r in self._store.jobs(limit=200) if r.id != self._primary]
        have = {r.id for r in records}
        records += [self._store.job(j) for j in extra if j not in have and j != self._primary]
        keep = tuple(j for j in self._picker.value if j in {r.id for r in records})
        with self._picker.hold_sync():
            self._picker.options = [(f"#{r.id} {r.name} ({r.status.value})", r.id) for r in records]
            self._picker.value = keep
        self._picker.layout.display = None if records else "none"  # nothing to compare with yet
