"""HeatmapWidget: any N x M matrix on a canvas, or a debugger's cosine matrices, live.

::

    acc.HeatmapWidget(matrix)                              # numpy array, tensor or nested lists, N x M
    acc.HeatmapWidget(matrix, metrics={"win_rate": w}, order_by="win_rate")
    acc.HeatmapWidget(trainer, source_name="weights", order_by="win_rate")   # bound to its DebugController

The matrix crosses the wire once, as float32 bytes, and is drawn on a canvas
(one pixel per cell, scaled to the view). The colour scale maps values to
colours piecewise linearly between ``color_stops`` (default blue at 0,
white at 0.5, red at 1; values outside are clamped, NaN/Inf drawn grey).
Hovering shows (row, col, value) with the feature ids of the sorted rows.
Below the matrix: mean, std, min and max off the diagonal (a square matrix)
or over every entry.

Bound to a DebugController (through a Trainer, Job or the controller) the
widget offers the cosine-matrix sources: ``weights`` (the feature
parameter's rows), ``grad_delta`` and every step-data key holding a
``[D, K]`` tensor; and, to sort rows and columns, every per-feature ``[D]``
metric. It refreshes when the loop pauses or steps (a poll every 0.25 s
through the shared update pump reads the controller's state) and on
"Refresh". The matrix is computed on the device in one matrix product
(``dbg.cosine_matrix``) in the pump thread, never in the training thread.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch
import traitlets

from acc.events import Event
from acc.state import TrainerState
from acc.store import RunStore
from acc.widgets._base import AccWidget, CommandError, Field
from acc.widgets._binary import f32_bytes, json_safe
from acc.widgets._debug_binding import DebugBinding
from acc.widgets._pump import UpdatePump
from acc.widgets._views import remember

__all__ = ["DEFAULT_COLOR_STOPS", "MAX_CELLS", "ROW_MEAN", "HeatmapWidget", "matrix_stats", "order_rows"]

log = logging.getLogger(__name__)

DEFAULT_COLOR_STOPS: list[list[Any]] = [[0.0, "#2166ac"], [0.5, "#f7f7f7"], [1.0, "#b2182b"]]
"""Blue at 0, white at 0.5, red at 1 (values between are interpolated, outside clamped)."""
MAX_CELLS = 2048 * 2048
"""The largest matrix shown (16 MB of float32): slice or sort bigger ones first."""
ROW_MEAN = "row mean"
"""The built-in ordering of a plain matrix: rows by their mean (off the diagonal when square)."""
POLL_SECONDS = 0.25


# -- pure helpers (tested by tables) ------------------------------------------------------------


def as_matrix(data: Any) -> np.ndarray:
    """``data`` (array, tensor, nested lists) as a C-ordered float32 ``[N, M]`` array; clear errors otherwise."""
    if isinstance(data, torch.Tensor):
        data = data.detach().float().cpu().numpy()
    try:
        m = np.asarray(data, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"a heatmap needs a numeric N x M matrix, got {type(data).__name__}: {exc}") from None
    if m.ndim != 2:
        raise ValueError(f"a heatmap needs a 2-D matrix, got shape {list(m.shape)}")
    if m.size == 0:
        raise ValueError(f"a heatmap needs at least one cell, got shape {list(m.shape)}")
    if m.size > MAX_CELLS:
        raise ValueError(
            f"a {m.shape[0]} x {m.shape[1]} matrix has more cells than the heatmap draws ({MAX_CELLS:,}); "
            "show a slice, e.g. matrix[:1024, :1024] after sorting"
        )
    return np.ascontiguousarray(m)


def matrix_stats(m: np.ndarray) -> dict[str, Any]:
    """Mean, std, min and max of the finite entries off the diagonal (square) or of all (N != M).

    ``{"mean", "std", "min", "max", "n", "n_nonfinite", "off_diagonal"}``; None where no entry counts.
    """
    values = m.astype(np.float64)
    square = m.shape[0] == m.shape[1]
    if square:
        values = values[~np.eye(m.shape[0], dtype=bool)]
    values = values.reshape(-1)
    finite = values[np.isfinite(values)]
    n = int(finite.size)
    return {
        "mean": float(finite.mean()) if n else None,
        "std": float(finite.std(ddof=1)) if n > 1 else (0.0 if n else None),
        "min": float(finite.min()) if n else None,
        "max": float(finite.max()) if n else None,
        "n": n,
        "n_nonfinite": int(values.size - n),
        "off_diagonal": square,
    }


def order_rows(metric: Any, n: int, name: str = "metric", *, descending: bool = True) -> np.ndarray:
    """Row indices sorted by a length-``n`` metric (non-finite values last, ties in index order)."""
    values = np.asarray(metric.detach().cpu().numpy() if isinstance(metric, torch.Tensor) else metric, dtype=np.float64)
    if values.shape != (n,):
        raise ValueError(f"ordering metric {name!r} must have one value per row ({n}), got shape {list(values.shape)}")
    fill = -np.inf if descending else np.inf
    keyed = np.where(np.isfinite(values), values, fill)
    order = np.argsort(-keyed if descending else keyed, kind="stable")
    return order.astype(np.int64)


def row_means(m: np.ndarray) -> np.ndarray:
    """Each row's mean over its finite entries, the diagonal left out when square (NaN for none)."""
    values = m.astype(np.float64)
    mask = np.isfinite(values)
    if m.shape[0] == m.shape[1]:
        mask &= ~np.eye(m.shape[0], dtype=bool)
    counts = mask.sum(axis=1)
    sums = np.where(mask, values, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def _check_stops(stops: Any) -> list[list[Any]]:
    if not isinstance(stops, (list, tuple)) or len(stops) < 2:
        raise traitlets.TraitError(f"color_stops needs at least two [value, colour] pairs, got {stops!r}")
    out: list[list[Any]] = []
    last = -math.inf
    for stop in stops:
        if not isinstance(stop, (list, tuple)) or len(stop) != 2:
            raise traitlets.TraitError(f"a colour stop is [value, colour], got {stop!r}")
        value, colour = stop
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise traitlets.TraitError(f"a colour stop's value must be a finite number, got {value!r}")
        if not value > last:
            raise traitlets.TraitError(f"colour stop values must increase, got {value!r} after {last!r}")
        if not isinstance(colour, str) or not colour.strip():
            raise traitlets.TraitError(f"a colour stop's colour is a CSS colour string, got {colour!r}")
        out.append([float(value), colour.strip()])
        last = value
    return out


def _non_empty(value: Any) -> str | None:
    return None if value else "must not be empty"


class HeatmapWidget(AccWidget):
    """An N x M matrix as a heatmap; bound to a DebugController, its cosine matrices (see the module docstring).

    ``HeatmapWidget(data=None, *, source_name=None, order_by="", metrics=None,
    title="", row_label="row", col_label="col", color_stops=DEFAULT_COLOR_STOPS,
    store=None, pump=None)``: ``data`` a matrix, or a Trainer/Job/LiveSource with
    a debug controller, or a DebugController; ``source_name`` the bound source
    (default ``"weights"`` when there is a feature parameter); ``metrics``
    per-row values of a plain matrix to sort by.
    """

    _stem = "heatmap"
    _commands: ClassVar[Mapping[str, Mapping[str, Field]]] = {
        "select_source": {"source": Field((str,), check=_non_empty)},
        "order_by": {"metric": Field((str,))},
        "refresh": {},
    }

    # -- synced traits: set by the kernel (colour stops, titles and labels also from Python) ---------
    title = traitlets.Unicode("").tag(sync=True)
    """The heading ("cosine · weights" when bound)."""
    matrix = traitlets.Bytes(b"").tag(sync=True)
    """The matrix as little-endian float32, row-major, rows and columns in display (sorted) order."""
    shape: traitlets.List[int] = traitlets.List([0, 0]).tag(sync=True)
    """``[rows, cols]`` of ``matrix``."""
    row_ids: traitlets.List[int] = traitlets.List().tag(sync=True)
    """The original index (feature id) of each displayed row."""
    col_ids: traitlets.List[int] = traitlets.List().tag(sync=True)
    """The original index (feature id) of each displayed column."""
    row_label = traitlets.Unicode("row").tag(sync=True)
    """What a row is called in the hover text ("feature" when bound)."""
    col_label = traitlets.Unicode("col").tag(sync=True)
    """What a column is called in the hover text."""
    color_stops: traitlets.List[list[Any]] = traitlets.List(DEFAULT_COLOR_STOPS).tag(sync=True)
    """``[[value, css colour], ...]`` with increasing values; interpolated between, clamped outside."""
    stats = traitlets.Dict().tag(sync=True)
    """``{"mean", "std", "min", "max", "n", "n_nonfinite", "off_diagonal"}`` of the shown matrix."""
    source_name = traitlets.Unicode("").tag(sync=True)
    """Bound: the cosine-matrix source shown ("weights", "grad_delta", a step-data key); "" for a plain matrix."""
    sources: traitlets.List[str] = traitlets.List().tag(sync=True)
    """Bound: the sources there are at the paused step."""
    order_by = traitlets.Unicode("").tag(sync=True)
    """The metric rows (and columns of a square matrix) are sorted by, descending; "" for none."""
    order_options: traitlets.List[str] = traitlets.List().tag(sync=True)
    """The metrics there are to sort by."""
    step = traitlets.Int(None, allow_none=True).tag(sync=True)
    """The step the matrix belongs to (bound), or None."""
    bound = traitlets.Bool(False).tag(sync=True)
    """True when the widget follows a DebugController."""
    note = traitlets.Unicode("").tag(sync=True)
    """A remark in place of a matrix (e.g. "no step data 'attraction' while the loop runs free")."""

    def __init__(
        self,
        data: Any = None,
        *,
        source_name: str | None = None,
        order_by: str = "",
        metrics: Mapping[str, Any] | None = None,
        store: RunStore | None = None,
        pump: UpdatePump | None = None,
        **traits: Any,
    ) -> None:
        self._lock = threading.RLock()
        self._raw: np.ndarray | None = None
        self._metrics: dict[str, np.ndarray] = {}
        self._binding: DebugBinding | None = None
        self._computed: tuple[Any, ...] | None = None
        self.source = None
        plain = data is None or isinstance(data, (np.ndarray, torch.Tensor, list, tuple))
        if not plain:
            self._binding = DebugBinding(data, store, what="HeatmapWidget")
            self.source = self._binding.source
            traits.setdefault("row_label", "feature")
            traits.setdefault("col_label", "feature")
        elif source_name is not None:
            raise TypeError("source_name= needs a trainer, job or DebugController to bind to, not a matrix")
        super().__init__(pump=pump, bound=not plain, **traits)
        if self._binding is None:
            if data is not None:
                self.set_matrix(data, metrics=metrics, order_by=order_by)
            elif metrics is not None or order_by:
                raise TypeError("metrics= and order_by= need a matrix: HeatmapWidget(matrix, metrics=...)")
            return
        if metrics is not None:
            raise TypeError("metrics= is for a plain matrix; bound, the step's [D] metrics are offered")
        st = self._binding.controller.get_state()
        default = "weights" if st.get("feature_param") is not None else ""
        with self._lock:
            self._set(source_name=source_name or default, order_by=order_by)
        for event in (Event.JOB_STARTED, Event.JOB_ENDED):
            self._listen(self._binding.on(event, self._on_job_event))
        self._poll("watch", POLL_SECONDS, self._check)
        self._compute(force=True)
        if self.source is not None:
            remember(self)

    @traitlets.validate("color_stops")
    def _valid_stops(self, proposal: Any) -> list[list[Any]]:
        return _check_stops(proposal["value"])

    # -- a plain matrix ----------------------------------------------------------------------------
    def set_matrix(
        self,
        data: Any,
        *,
        metrics: Mapping[str, Any] | None = None,
        order_by: str | None = None,
        title: str | None = None,
        step: int | None = None,
    ) -> None:
        """Show a new matrix (plain mode). ``metrics``: name -> one value per row, to sort by."""
        if self._binding is not None:
            raise RuntimeError("this heatmap follows a DebugController; make a plain HeatmapWidget(matrix) instead")
        m = as_matrix(data)
        checked: dict[str, np.ndarray] = {}
        for name, values in (metrics or {}).items():
            if not isinstance(name, str) or not name or name == ROW_MEAN:
                raise ValueError(f"a metric needs a name other than {ROW_MEAN!r}, got {name!r}")
            order_rows(values, m.shape[0], name)  # checks the length
            checked[name] = np.asarray(
                values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else values, dtype=np.float64
            )
        options = ["", ROW_MEAN, *checked]
        # the current ordering carries over to a new matrix when it still applies
        wanted = (self.order_by if self.order_by in options else "") if order_by is None else order_by
        if wanted not in options:
            raise ValueError(f"order_by={wanted!r} is not a metric of this matrix; choose one of {options}")
        with self._lock:
            self._raw, self._metrics = m, checked
            extra: dict[str, Any] = {"order_options": options[1:], "order_by": wanted, "step": step}
            if title is not None:
                extra["title"] = title
            self._show_plain(**extra)

    def _show_plain(self, **extra: Any) -> None:
        m = self._raw
        if m is None:
            return
        name = extra.get("order_by", self.order_by)
        rows = np.arange(m.shape[0])
        if name == ROW_MEAN:
            rows = order_rows(row_means(m), m.shape[0], ROW_MEAN)
        elif name:
            rows = order_rows(self._metrics[name], m.shape[0], name)
        square = m.shape[0] == m.shape[1]
        cols = rows if square else np.arange(m.shape[1])
        shown = m[np.ix_(rows, cols)] if name else m
        self._set(
            matrix=f32_bytes(shown),
            shape=[int(m.shape[0]), int(m.shape[1])],
            row_ids=rows.tolist(),
            col_ids=cols.tolist(),
            stats=json_safe(matrix_stats(m)),
            note="",
            **extra,
        )

    # -- bound to a controller (pump thread) ----------------------------------------------------------
    def _on_job_event(self, _state: TrainerState) -> None:
        self._schedule("watch", self._check)

    def _check(self) -> None:
        """A poll: recompute when the loop paused at a step not shown yet."""
        assert self._binding is not None
        st = self._binding.controller.get_state()
        if st.get("paused"):
            self._compute()

    def _compute(self, force: bool = False) -> None:
        """The chosen source's cosine matrix at the current step (once per (job, step, source, order)).

        Runs in the pump thread only when the loop is paused (a poll); a command or the constructor
        runs it in the kernel thread, where the weights of a running loop are copied between two
        steps (it waits for the step in progress), so the shared pump never waits on the loop.
        """
        assert self._binding is not None
        dbg = self._binding.controller
        st = dbg.get_state()
        info = dbg.step_data_info() if st.get("paused") else {}
        d = st.get("n_features")
        sources = ["weights"] if st.get("feature_param") is not None else []
        orders: list[str] = []
        for key, meta in info.items():
            shape = meta.get("shape")
            if not isinstance(shape, list):
                continue
            if len(shape) >= 2 and key not in sources:
                sources.append(key)
            elif len(shape) == 1 and (d is None or shape[0] == d):
                orders.append(key)
        with self._lock:
            source, order = self.source_name, self.order_by
            seen = (st.get("job_id"), st.get("step"), source, order)
            if not force and seen == self._computed:
                return
            self._computed = seen
        values: dict[str, Any] = {}
        if st.get("paused") or not self.sources:
            values.update(sources=sources, order_options=orders)
        if not source:
            values.update(note="no source: the controller has no feature_param and this step has no [D, K] data")
        elif source == "weights" and d is None:
            values.update(note="waiting for a job: the feature parameter's rows are known once one starts")
        elif d is not None and d * d > MAX_CELLS:
            values.update(
                note=f"{d} x {d} is more than the heatmap draws ({MAX_CELLS:,} cells): show a slice of "
                f"dbg.cosine_matrix({source!r})['matrix'] in a plain HeatmapWidget",
                title=f"cosine · {source}",
            )
        else:
            try:
                out = dbg.cosine_matrix(source, order_by=order or None)
            except KeyError as exc:
                why = exc.args[0] if exc.args else str(exc)
                values.update(
                    note=f"{why}; pause the loop to see step data" if not st.get("paused") else str(why),
                    title=f"cosine · {source}",
                )
            else:
                m = np.asarray(out["matrix"], dtype=np.float32)
                stats = {k: out.get(k) for k in ("mean", "std", "min", "max", "n_nonfinite")}
                stats.update(n=int(m.shape[0]) * max(int(m.shape[0]) - 1, 0), off_diagonal=True)
                ids = [int(i) for i in out["order"]]
                values.update(
                    matrix=f32_bytes(m),
                    shape=[int(m.shape[0]), int(m.shape[1])],
                    row_ids=ids,
                    col_ids=ids,
                    stats=json_safe(stats),
                    step=out.get("step"),
                    title=f"cosine · {source}" + (f" · sorted by {order}" if order else ""),
                    note="",
                )
        with self._lock:
            if (self.source_name, self.order_by) != (source, order):
                return  # the choice changed while this one was computed: the newer computation shows
            self._set(**values)

    # -- commands from the browser ------------------------------------------------------------------
    def _on_select_source(self, source: str) -> None:
        if self._binding is None:
            raise CommandError("select_source: this heatmap shows a plain matrix (no sources)")
        if source not in self.sources:
            raise CommandError(f"select_source: no source {source!r}; sources: {', '.join(self.sources) or 'none'}")
        with self._lock:
            self.source_name = source
        self._compute(force=True)

    def _on_order_by(self, metric: str) -> None:
        if metric and metric not in self.order_options:
            raise CommandError(
                f"order_by: no metric {metric!r}; metrics: {', '.join(self.order_options) or 'none'} (or '' for none)"
            )
        if self._binding is None:
            with self._lock:
                self._show_plain(order_by=metric)
            return
        with self._lock:
            self.order_by = metric
        self._compute(force=True)

    def _on_refresh(self) -> None:
        if self._binding is None:
            with self._lock:
                self._show_plain()
            return
        self._compute(force=True)

    def __repr__(self) -> str:
        rows, cols = self.shape
        what = f"source={self.source_name!r}" if self.bound else "plain"
        return f"HeatmapWidget({rows} x {cols}, {what}, order_by={self.order_by!r})"
