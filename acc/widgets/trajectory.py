"""TrajectoryWidget: how watched features move, step by step, while a job runs or is stepped.

::

    dbg.add_watch(17)                          # or click a row in the DebugPanel's feature table
    traj = acc.TrajectoryWidget(trainer); traj # or a Job, or the DebugController itself

One line per watched feature over the steps, for one metric at a time: the
cosine of the feature's weight row to its row when the watch began ("cos to
init"), or any per-feature metric in the step data (``win_rate``,
``grad_norm``, ...). Features are watched by typing their ids, or from the
DebugPanel's table; a removed watch keeps its line. Beside the lines: the
cosine similarity of the watched features' weight rows to each other at the
current step (a small matrix, refreshed when the loop pauses or steps).
Dragging across the plot zooms to a step range; "Reset zoom" shows all.

The controller keeps the trajectories (bounded per feature, see
``DebugController(trajectory_cap=...)``); the widget reads them through the
shared update pump: when the loop pauses or steps, when the watches change,
and at most once a second while it runs free. Each line crosses the wire as
float32 bytes, min/max-decimated per pixel column to at most ~1,600 points in
the visible range (spikes stay visible; a zoom recomputes at full
resolution), so a message stays small however long the run.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import traitlets

from acc.events import Event
from acc.state import TrainerState
from acc.store import RunStore
from acc.widgets._base import AccWidget, CommandError, Field
from acc.widgets._binary import f32_bytes
from acc.widgets._debug_binding import DebugBinding
from acc.widgets._decimate import decimate_minmax
from acc.widgets._pump import UpdatePump
from acc.widgets._views import remember

__all__ = ["COSINE", "TrajectoryWidget", "trajectory_arrays"]

log = logging.getLogger(__name__)

COSINE = "cosine"
"""The metric every trajectory has: cosine of the weight row to its row when the watch began."""
POLL_SECONDS = 0.25
RUNNING_REFRESH_SECONDS = 1.0
COLUMNS = 800
"""Pixel columns a line is decimated to (at most two points per column)."""
MAX_PAIRWISE = 16
"""At most this many watched features in the pairwise-similarity matrix (the first ones)."""
MAX_WATCH_AT_ONCE = 64


def _feature_list(value: Any) -> str | None:
    if not value:
        return "must name at least one feature"
    if len(value) > MAX_WATCH_AT_ONCE:
        return f"may name at most {MAX_WATCH_AT_ONCE} features at once, got {len(value)}"
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            return f"must be feature indices (integers >= 0), got {v!r}"
    return None


def _non_negative(value: Any) -> str | None:
    return None if value >= 0 else f"must be a feature index >= 0, got {value}"


def _non_empty(value: Any) -> str | None:
    return None if value else "must not be empty"


def trajectory_arrays(points: list[dict[str, Any]]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``get_trajectories()`` points of one feature as ``(steps int64, {metric: float64 values})``; None -> NaN."""
    steps = np.fromiter((p["step"] for p in points), dtype=np.int64, count=len(points))
    names: list[str] = []
    for p in points:
        for k in p:
            if k != "step" and k not in names:
                names.append(k)
    columns = {
        name: np.fromiter(
            (math.nan if p.get(name) is None else float(p[name]) for p in points), dtype=np.float64, count=len(points)
        )
        for name in names
    }
    return steps, columns


class TrajectoryWidget(AccWidget):
    """Watched features over the steps: one line each, a metric toggle, pairwise similarity, step-range zoom.

    ``TrajectoryWidget(source, *, store=None, metric="cosine", pump=None)``: ``source``
    a Trainer, Job or LiveSource with a debug controller, or a ``DebugController``.
    """

    _stem = "trajectory"
    _commands: ClassVar[Mapping[str, Mapping[str, Field]]] = {
        "watch": {"features": Field((list,), check=_feature_list)},
        "unwatch": {"feature": Field((int,), check=_non_negative)},
        "set_metric": {"metric": Field((str,), check=_non_empty)},
        "zoom": {"start": Field((int, float, type(None))), "end": Field((int, float, type(None)))},
        "clear": {},
        "refresh": {},
    }

    # -- synced traits: all set by the kernel; the browser sends commands only ----------------------
    watched: traitlets.List[int] = traitlets.List().tag(sync=True)
    """Features watched now (``dbg.get_watched()``)."""
    features: traitlets.List[int] = traitlets.List().tag(sync=True)
    """Features with a trajectory in this job (removed watches keep theirs), ascending."""
    metrics: traitlets.List[str] = traitlets.List([COSINE]).tag(sync=True)
    """The metrics the trajectories have: "cosine" and every per-feature step-data metric."""
    metric = traitlets.Unicode(COSINE).tag(sync=True)
    """The metric drawn."""
    series = traitlets.Dict().tag(sync=True)
    """Per feature (str id): ``{"steps", "values"}`` float32 bytes of the drawn points, ``"nonfinite"``
    (float32 steps where the metric was NaN/Inf), ``"n"`` (points in range before decimation)."""
    step_range: traitlets.List[Any] = traitlets.List().tag(sync=True)
    """The zoom: ``[start, end]`` steps (either may be None: open), or [] for every step."""
    extent: traitlets.List[int] = traitlets.List().tag(sync=True)
    """``[first, last]`` step over every trajectory, or [] before the first point."""
    pairwise = traitlets.Dict().tag(sync=True)
    """``{"ids", "matrix" (float32 bytes, k x k), "step"}``: cosine of the watched features' weight rows; {}."""
    step = traitlets.Int(None, allow_none=True).tag(sync=True)
    """The loop's step at the last refresh."""
    n_features = traitlets.Int(None, allow_none=True).tag(sync=True)
    """Rows of the feature parameter (watchable ids are 0..n_features-1), once known."""
    feature_param = traitlets.Unicode(None, allow_none=True).tag(sync=True)
    """The feature parameter's name; None: nothing can be watched."""

    def __init__(
        self,
        source: object,
        *,
        store: RunStore | None = None,
        metric: str = COSINE,
        pump: UpdatePump | None = None,
        **traits: Any,
    ) -> None:
        self._binding = DebugBinding(source, store, what="TrajectoryWidget")
        self.source = self._binding.source
        self._lock = threading.RLock()
        self._data: dict[int, tuple[np.ndarray, dict[str, np.ndarray]]] = {}
        self._seen: tuple[Any, ...] | None = None
        self._pair_seen: tuple[Any, ...] | None = None
        self._last_read = 0.0
        super().__init__(pump=pump, metric=metric, **traits)
        for event in (Event.JOB_STARTED, Event.JOB_ENDED):
            self._listen(self._binding.on(event, self._on_job_event))
        self._poll("data", POLL_SECONDS, self._check)
        self._check(force=True)
        if self.source is not None:
            remember(self)

    @property
    def controller(self) -> Any:
        return self._binding.controller

    # -- reading the controller (pump thread; the kernel thread at construction) ----------------------
    def _on_job_event(self, _state: TrainerState) -> None:
        self._schedule("data", lambda: self._check(force=True))

    def _check(self, force: bool = False) -> None:
        dbg = self._binding.controller
        st = dbg.get_state()
        watched = tuple(st.get("watched") or ())
        paused = bool(st.get("paused"))
        running = st.get("job_status") == "running" and not paused
        sig = (st.get("job_id"), st.get("step"), watched)
        now = time.monotonic()
        due = force or (
            sig != self._seen
            and (
                not running
                or watched != (self._seen[2] if self._seen else ())
                or now - self._last_read >= RUNNING_REFRESH_SECONDS
            )
        )
        values: dict[str, Any] = {
            "watched": list(watched),
            "n_features": st.get("n_features"),
            "feature_param": st.get("feature_param"),
        }
        if due:
            self._seen = sig
            self._last_read = now
            self._read(dbg)
            values["step"] = st.get("step")
            pair_sig = (st.get("job_id"), st.get("step"), watched)
            # the weights of a loop running free would be copied between two steps (a wait on the
            # loop in the shared pump thread): the pairwise matrix follows pauses and the end
            if (paused or not running) and (force or pair_sig != self._pair_seen):
                self._pair_seen = pair_sig
                values["pairwise"] = self._pairwise(dbg, list(watched), st)
        with self._lock:
            if due:
                values.update(self._series_values())
            self._set(**values)

    def _read(self, dbg: Any) -> None:
        data = {int(f): trajectory_arrays(points) for f, points in dbg.get_trajectories().items()}
        with self._lock:
            self._data = data

    def _pairwise(self, dbg: Any, watched: list[int], st: Mapping[str, Any]) -> dict[str, Any]:
        ids = watched[:MAX_PAIRWISE]
        if not ids or st.get("feature_param") is None or st.get("n_features") is None:
            return {}
        out = dbg.cosine_matrix("weights")
        m = np.asarray(out["matrix"], dtype=np.float32)[np.ix_(ids, ids)]
        return {"ids": ids, "matrix": f32_bytes(m), "step": out.get("step")}

    def _series_values(self) -> dict[str, Any]:
        """The drawn points of every trajectory for the chosen metric and zoom (lock held)."""
        metrics = [COSINE]
        first: int | None = None
        last: int | None = None
        for steps, columns in self._data.values():
            for name in columns:
                if name not in metrics:
                    metrics.append(name)
            if len(steps):
                first = int(steps[0]) if first is None else min(first, int(steps[0]))
                last = int(steps[-1]) if last is None else max(last, int(steps[-1]))
        metric = self.metric if self.metric in metrics else COSINE
        start, end = [*self.step_range, None, None][:2]
        series: dict[str, Any] = {}
        for feature, (steps, columns) in sorted(self._data.items()):
            values = columns.get(metric)
            if values is None:
                values = np.full(len(steps), np.nan)
            d = decimate_minmax(steps, values, start=start, end=end, columns=COLUMNS)
            series[str(feature)] = {
                "steps": f32_bytes(d.steps),
                "values": f32_bytes(d.values),
                "nonfinite": f32_bytes(d.nonfinite_steps),
                "n": int(d.n_points),
            }
        return {
            "series": series,
            "features": sorted(self._data),
            "metrics": metrics,
            "metric": metric,
            "extent": [first, last] if first is not None and last is not None else [],
        }

    # -- commands from the browser ------------------------------------------------------------------
    def _check_features(self, kind: str, features: list[int]) -> Any:
        dbg = self._binding.controller
        st = dbg.get_state()
        if st.get("feature_param") is None:
            raise CommandError(f"{kind}: the controller has no feature_param, so there are no features to watch")
        n = st.get("n_features")
        if n is not None:
            bad = [f for f in features if f >= n]
            if bad:
                raise CommandError(f"{kind}: feature(s) {bad} out of range (0..{n - 1})")
        return dbg

    def _on_watch(self, features: list[int]) -> None:
        dbg = self._check_features("watch", features)
        for f in features:
            if f not in dbg.get_watched():
                dbg.add_watch(f)
        self._schedule("data", lambda: self._check(force=True))

    def _on_unwatch(self, feature: int) -> None:
        dbg = self._check_features("unwatch", [feature])
        if feature not in dbg.get_watched():
            raise CommandError(f"unwatch: feature {feature} is not watched; watched: {dbg.get_watched()}")
        dbg.remove_watch(feature)
        self._schedule("data", lambda: self._check(force=True))

    def _on_set_metric(self, metric: str) -> None:
        if metric not in self.metrics:
            raise CommandError(f"set_metric: no metric {metric!r}; metrics: {', '.join(self.metrics)}")
        with self._lock:
            self.metric = metric
            self._set(**self._series_values())

    def _on_zoom(self, start: float | None, end: float | None) -> None:
        if start is not None and end is not None and not start < end:
            raise CommandError(f"zoom: start must be below end, got {start} .. {end}")
        lo = None if start is None else math.floor(start)
        hi = None if end is None else math.ceil(end)
        with self._lock:
            self.step_range = [] if lo is None and hi is None else [lo, hi]
            self._set(**self._series_values())

    def _on_clear(self) -> None:
        self._binding.controller.clear_trajectories()
        self._schedule("data", lambda: self._check(force=True))

    def _on_refresh(self) -> None:
        self._schedule("data", lambda: self._check(force=True))

    def __repr__(self) -> str:
        return f"TrajectoryWidget(watched={self.watched}, features={self.features}, metric={self.metric!r})"
