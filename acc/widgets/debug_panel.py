"""DebugPanel: pause, step and look inside a running job from the notebook.

::

    dbg = acc.DebugController(feature_param="encoder.weight")
    trainer = acc.Trainer(model, opt, loader, tasks=..., debug_controller=dbg)
    panel = acc.DebugPanel(trainer); panel        # or a Job, or the DebugController of a hand-written loop
    trainer.start(steps=5000)

Shows the run state (``running``, ``pausing``, ``paused``, ``stopped``,
``finished``), the step, the loss and its health, why the loop paused, and
the controls: Pause/Resume, Step, Step N, Stop, and breakpoints on NaN and on
a CRITICAL task. While paused: the batch of the step just taken as an image
grid (PNG bytes), the step's data (a key picker with shape, statistics and a
bar plot), and a sortable, colour-coded per-feature table with a summary row;
clicking a row watches that feature (``dbg.add_watch``; a TrajectoryWidget
shows it).

The controller is the one source of truth: the panel reads
``dbg.get_state()`` through the shared update pump (a poll every 0.1 s, at
most 4 updates of the step and losses a second while the loop runs free; a poll that changes
nothing sends nothing) and never claims a state the loop is not in: after a
click on Pause the state reads ``pausing`` until the loop has paused.
Commands from the browser are validated, then passed on with the
controller's non-blocking calls (``wait=False``). While a foreground
``trainer.fit()`` holds the kernel, the panel says that clicks wait until the
cell finishes (Jupyter handles no widget message while a cell runs).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch
import traitlets

from acc.debug.batch import tensor_summary
from acc.debug_controller import DebugController
from acc.events import Event, RemovableHandle
from acc.state import TrainerState
from acc.store import RunStore
from acc.widgets._base import AccWidget, CommandError, Field
from acc.widgets._binary import f32_bytes, json_number, json_safe, png_bytes
from acc.widgets._debug_binding import DebugBinding
from acc.widgets._pump import UpdatePump
from acc.widgets._views import remember

__all__ = ["DebugPanel", "sort_rows", "table_view", "value_view"]

log = logging.getLogger(__name__)

POLL_SECONDS = 0.1
"""How often the controller's state is read (its changes have no event)."""
RUNNING_LIVE_SECONDS = 0.25
"""While the loop runs free, step and losses are sent at most this often (state changes go at once)."""
_LIVE_VALUES = ("step", "max_steps", "loss", "loss_step", "health", "losses", "steps_left")
MAX_STEP_N = 1_000_000
MAX_BARS = 4096
"""At most this many values of a step-data entry are plotted (the first ones)."""
BREAKPOINT_KINDS = ("nan", "critical")


def _step_count(value: Any) -> str | None:
    return None if 1 <= value <= MAX_STEP_N else f"must be between 1 and {MAX_STEP_N:,}, got {value}"


def _breakpoint_kind(value: Any) -> str | None:
    return None if value in BREAKPOINT_KINDS else f"must be one of {', '.join(BREAKPOINT_KINDS)}, got {value!r}"


def _feature_id(value: Any) -> str | None:
    return None if value >= 0 else f"must be a feature index >= 0, got {value}"


def _non_empty(value: Any) -> str | None:
    return None if value else "must not be empty"


# -- pure helpers (tested by tables) ------------------------------------------------------------


def sort_rows(rows: list[dict[str, Any]], by: str, descending: bool) -> list[dict[str, Any]]:
    """Rows sorted by column ``by``; missing (non-finite, None) values last in either direction."""
    present = [r for r in rows if r.get(by) is not None]
    missing = [r for r in rows if r.get(by) is None]
    present.sort(key=lambda r: r[by], reverse=descending)
    return present + missing


def table_view(table: Mapping[str, Any], by: str | None, descending: bool, limit: int) -> dict[str, Any]:
    """What the panel shows of a ``feature_table``: rows sorted and cut to ``limit``, the rest as it is.

    ``by`` None keeps the feature order. Adds ``shown`` (rows sent) and the
    per-metric ``range`` (min, max over every row, for the cell bars).
    """
    rows = list(table["rows"])
    if by is not None:
        rows = sort_rows(rows, by, descending)
    metrics = [c for c in table["columns"] if c not in ("feature", "status")]
    ranges = {}
    for name in metrics:
        s = table["summary"].get(name, {})
        ranges[name] = [s.get("min"), s.get("max")]
    view: dict[str, Any] = json_safe(
        {
            "columns": list(table["columns"]),
            "rows": rows[:limit],
            "summary": table["summary"],
            "status_counts": table["status_counts"],
            "n_features": table["n_features"],
            "shown": min(limit, len(rows)),
            "step": table.get("step"),
            "sort_by": by,
            "descending": descending,
            "range": ranges,
        }
    )
    return view


def value_view(key: str, step: int | None, value: Any) -> tuple[dict[str, Any], bytes]:
    """What the key picker shows of one step-data value: a description and float32 bars to plot.

    A tensor (or array): its shape, dtype and min/max/mean/std (one fetch),
    and as bars its values when 1-D, its row norms when 2-D or more (at most
    ``MAX_BARS``). A number: the number. Anything else: its repr.
    """
    view: dict[str, Any] = {"key": key, "step": step, "bars_of": None, "n_bars": 0}
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    if isinstance(value, torch.Tensor):
        t = value.detach()
        view.update(kind="tensor", summary=tensor_summary(t))
        bars: torch.Tensor | None = None
        if t.is_complex() or t.numel() == 0 or t.dim() == 0:
            bars = None
        elif t.dim() == 1:
            bars, view["bars_of"] = t[:MAX_BARS].float(), "values"
        else:
            rows = t[:MAX_BARS].reshape(min(t.shape[0], MAX_BARS), -1).float()
            bars, view["bars_of"] = torch.linalg.vector_norm(rows, dim=1), "row norms"
        if t.dim() == 0 and not t.is_complex():
            view["value"] = t.item()
        data = b""
        if bars is not None:
            host = bars.cpu().numpy()  # the one fetch of the bars
            data = f32_bytes(host)
            view["n_bars"] = int(host.shape[0])
        return json_safe(view), data
    if isinstance(value, (bool, int, float)):
        view.update(kind="number", value=value)
        return json_safe(view), b""
    view.update(kind=type(value).__name__, repr=repr(value)[:300])
    return json_safe(view), b""


def _losses(state: Mapping[str, Any]) -> list[dict[str, Any]]:
    health = state.get("health") or {}
    return [
        {"task": str(task), "value": json_number(value), "health": str(health.get(task, ""))}
        for task, value in (state.get("losses") or {}).items()
    ]


class DebugPanel(AccWidget):
    """Pause/Resume, Step, Step N, Stop, breakpoints, the batch, step data and the per-feature table.

    ``DebugPanel(source, *, store=None, table_rows=200, nrow=8, pump=None)``:
    ``source`` is a Trainer, Job or LiveSource with a debug controller, or a
    ``DebugController``; ``table_rows`` caps the rows sent of the feature
    table (sorted first); ``nrow`` images per row of the batch grid; ``pump``
    an UpdatePump (default: the shared one).
    """

    _stem = "debug_panel"
    _commands: ClassVar[Mapping[str, Mapping[str, Field]]] = {
        "pause": {},
        "resume": {},
        "stop": {},
        "step": {"n": Field((int,), check=_step_count)},
        "set_breakpoint": {"condition": Field((str,), check=_breakpoint_kind), "on": Field((bool,))},
        "pick_key": {"key": Field((str,), check=_non_empty)},
        "sort_table": {"by": Field((str,), check=_non_empty), "descending": Field((bool,))},
        "watch": {"feature": Field((int,), check=_feature_id)},
        "unwatch": {"feature": Field((int,), check=_feature_id)},
        "refresh": {},
    }

    # -- synced traits: all set by the kernel; the browser sends commands only -----------------
    run_state = traitlets.Unicode("idle").tag(sync=True)
    """idle, running, pausing, paused, stopped or finished (``data-acc-field="state"``)."""
    step = traitlets.Int(0).tag(sync=True)
    """The loop's step (``data-acc-field="step"``)."""
    max_steps = traitlets.Int(None, allow_none=True).tag(sync=True)
    """The step at which the job ends, when known."""
    loss = traitlets.Any(None).tag(sync=True)
    """The total loss of the paused step (running: the newest fetched one); NaN/Inf as strings; None."""
    loss_step = traitlets.Int(None, allow_none=True).tag(sync=True)
    """The step ``loss`` belongs to."""
    health = traitlets.Unicode("").tag(sync=True)
    """The worst task health at ``loss_step``: healthy, warning, critical, or ""."""
    losses: traitlets.List[dict[str, Any]] = traitlets.List().tag(sync=True)
    """Per-task ``{"task", "value", "health"}`` at ``loss_step``."""
    reason = traitlets.Unicode(None, allow_none=True).tag(sync=True)
    """Why the loop paused ("user", "step budget", "breakpoint: ...") or why the job ended; None."""
    pending = traitlets.Unicode(None, allow_none=True).tag(sync=True)
    """A command the loop has not seen yet: pause, step, resume, stop; None."""
    steps_left = traitlets.Int(None, allow_none=True).tag(sync=True)
    """Steps left of a Step N in progress."""
    job = traitlets.Dict().tag(sync=True)
    """The controller's job: ``{"id", "name", "status", "error"}``; ``{}`` before the first."""
    foreground = traitlets.Bool(False).tag(sync=True)
    """True while the loop runs in the kernel's main thread (``trainer.fit()``): clicks wait for the cell."""
    breakpoints: traitlets.List[dict[str, Any]] = traitlets.List().tag(sync=True)
    """The controller's breakpoints: ``{"id", "kind", "description", "hits"}`` (the NaN/critical toggles)."""
    feature_param = traitlets.Unicode(None, allow_none=True).tag(sync=True)
    """The feature parameter's name (None: no features; the table and watches need one)."""
    n_features = traitlets.Int(None, allow_none=True).tag(sync=True)
    """Rows of the feature parameter, once a job resolved it."""
    watched: traitlets.List[int] = traitlets.List().tag(sync=True)
    """Watched feature ids (``dbg.get_watched()``)."""
    batch = traitlets.Dict().tag(sync=True)
    """The paused step's batch: ``{"step", "loss", "losses", "labels", "kind", "grid", "summary"}``; {} for none."""
    batch_png = traitlets.Bytes(b"").tag(sync=True)
    """The batch's images as one PNG grid (binary); b"" when the batch has no images."""
    step_keys: traitlets.List[dict[str, Any]] = traitlets.List().tag(sync=True)
    """The paused step's data: ``{"key", "shape", "dtype", "kind", "step"}`` per key."""
    step_key = traitlets.Unicode("").tag(sync=True)
    """The picked step-data key ("" for none)."""
    step_value = traitlets.Dict().tag(sync=True)
    """The picked key's view: ``{"key", "step", "kind", "summary", "value"|"repr", "bars_of", "n_bars"}``."""
    step_bars = traitlets.Bytes(b"").tag(sync=True)
    """float32 bars of the picked key (values of a [D] tensor, row norms of a [D, K] one)."""
    table = traitlets.Dict().tag(sync=True)
    """The per-feature table (see ``table_view``); {} when the step has no [D] metrics."""
    table_sort: traitlets.Dict[str, Any] = traitlets.Dict({"by": None, "descending": True}).tag(sync=True)
    """The table's sort: ``{"by": column or None, "descending"}``."""
    data_step = traitlets.Int(None, allow_none=True).tag(sync=True)
    """The step the batch, step data and table were read at (the last pause)."""

    def __init__(
        self,
        source: object,
        *,
        store: RunStore | None = None,
        table_rows: int = 200,
        nrow: int = 8,
        pump: UpdatePump | None = None,
        **traits: Any,
    ) -> None:
        for name, value in (("table_rows", table_rows), ("nrow", nrow)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self._binding = DebugBinding(source, store, what="DebugPanel")
        self.source = self._binding.source
        self.table_rows = table_rows
        self.nrow = nrow
        self._lock = threading.RLock()  # trait writes: the pump thread vs commands in the kernel thread
        self._batch_key: tuple[Any, ...] | None = None
        self._data_key: tuple[Any, ...] | None = None
        self._full_table: dict[str, Any] | None = None
        self._last_live = 0.0
        self._own_breakpoints: dict[str, list[RemovableHandle]] = {kind: [] for kind in BREAKPOINT_KINDS}
        super().__init__(pump=pump, **traits)
        for event in (Event.JOB_STARTED, Event.METRICS_FETCHED):
            self._listen(self._binding.on(event, self._on_event))
        self._listen(self._binding.on(Event.JOB_ENDED, self._on_job_ended))
        self._poll("state", POLL_SECONDS, self._refresh)
        self._refresh(force=True)
        if self.source is not None:
            remember(self)

    @property
    def controller(self) -> DebugController:
        """The DebugController this panel steers."""
        return self._binding.controller

    # -- training-thread handlers: hand work to the pump, nothing else --------------------------
    def _on_event(self, _state: TrainerState) -> None:
        self._schedule("state", self._refresh)

    def _on_job_ended(self, _state: TrainerState) -> None:
        self._schedule("state", lambda: self._refresh(force=True))
        self._pump.flush()  # the end is on screen before job.wait() returns

    # -- refresh (pump thread; the kernel thread at construction) -----------------------------------
    def _refresh(self, force: bool = False) -> None:
        """Read the controller's state; fetch the batch, step data and table when a new pause shows them."""
        dbg = self.controller
        st = dbg.get_state()
        run_state = self._binding.run_state(st)
        st.update(self._binding.ended(st))
        values: dict[str, Any] = {
            "run_state": run_state,
            "max_steps": st.get("max_steps"),
            "loss": json_number(st.get("loss")),
            "loss_step": st.get("loss_step"),
            "health": str(st.get("overall_health") or ""),
            "losses": _losses(st),
            "reason": st.get("reason"),
            "pending": st.get("pending"),
            "steps_left": st.get("steps_left"),
            "job": json_safe(
                {
                    "id": st.get("job_id"),
                    "name": st.get("job_name"),
                    "status": st.get("job_status"),
                    "error": st.get("error"),
                }
            )
            if st.get("job_id") is not None
            else {},
            # the loop holds the kernel's main thread (a foreground fit()): the kernel handles no
            # widget message until the cell ends, so clicks wait in the queue (ipywidgets #1349)
            "foreground": bool(st.get("foreground")),
            "breakpoints": json_safe(st.get("breakpoints") or []),
            "feature_param": st.get("feature_param"),
            "n_features": st.get("n_features"),
            "watched": list(st.get("watched") or []),
        }
        step = st.get("step")
        if step is not None:
            values["step"] = int(step)
        now = time.monotonic()
        # While the loop runs free, step and losses change on every poll: they go at most 4 times a
        # second (a state change, a command taken, a pause go at once).
        if not force and run_state == "running" == self.run_state and now - self._last_live < RUNNING_LIVE_SECONDS:
            for name in _LIVE_VALUES:
                values.pop(name, None)
        else:
            self._last_live = now
        # The batch, the step data and the table are read together at a pause, so they always belong
        # to one step (a pause shorter than a poll, e.g. dbg.step() then dbg.resume() in one cell, is
        # missed as a whole, never half-shown).
        batch_key = (st.get("job_id"), st.get("batch_step")) if st.get("has_batch") else None
        if st.get("paused"):
            data_key = (st.get("job_id"), step)
            if data_key != self._data_key or force:
                values.update(self._batch_values(dbg))
                values.update(self._data_values(dbg, step))
                self._data_key = data_key
        elif self._data_key is None and batch_key != self._batch_key:
            # no pause seen yet: the controller's last batch (a stopped job's, a hand-written loop's capture)
            values.update(self._batch_values(dbg))
        self._batch_key = batch_key
        with self._lock:
            self._set(**values)

    def _batch_values(self, dbg: DebugController) -> dict[str, Any]:
        batch = dbg.get_batch(nrow=self.nrow)
        if batch is None:
            return {"batch": {}, "batch_png": b""}
        png = batch.pop("png", None)
        return {"batch": json_safe(batch), "batch_png": png_bytes(png) if png else b""}

    def _data_values(self, dbg: DebugController, step: int | None) -> dict[str, Any]:
        """The paused step's data: key list, the picked key's view, the feature table."""
        info = dbg.step_data_info()
        keys = [{"key": k, **json_safe(v)} for k, v in info.items()]
        values: dict[str, Any] = {"step_keys": keys, "data_step": step}
        picked = self.step_key if self.step_key in info else _default_key(info)
        values["step_key"] = picked
        values.update(self._value_values(dbg, picked))
        try:
            table = dbg.feature_table()
        except ValueError:  # no [D] metrics in this step's data: no table
            table = None
        self._full_table = table
        values["table"] = self._table_values()
        return values

    def _value_values(self, dbg: DebugController, key: str) -> dict[str, Any]:
        if not key:
            return {"step_value": {}, "step_bars": b""}
        entry = dbg.get_step_data(key, as_tensor=True)
        view, bars = value_view(key, entry["step"], entry["value"])
        return {"step_value": view, "step_bars": bars}

    def _table_values(self) -> dict[str, Any]:
        table = self._full_table
        if table is None:
            return {}
        by = self.table_sort.get("by")
        if by not in table["columns"]:
            by = None
        return table_view(table, by, bool(self.table_sort.get("descending", True)), self.table_rows)

    # -- commands from the browser (validated by AccWidget first) -------------------------------------
    def _live_state(self, kind: str) -> dict[str, Any]:
        st = self.controller.get_state()
        if st.get("job_status") != "running":
            raise CommandError(f"{kind}: no job is running (start one with trainer.start(...))")
        return st

    def _after_command(self) -> None:
        self._schedule("state", self._refresh)

    def _on_pause(self) -> None:
        self._live_state("pause")
        self.controller.pause(wait=False)
        self._after_command()

    def _on_resume(self) -> None:
        self._live_state("resume")
        self.controller.resume(wait=False)
        self._after_command()

    def _on_step(self, n: int) -> None:
        self._live_state("step")
        self.controller.step(n, wait=False)
        self._after_command()

    def _on_stop(self) -> None:
        self._live_state("stop")
        self.controller.stop(wait=False)
        self._after_command()

    def _on_set_breakpoint(self, condition: str, on: bool) -> None:
        dbg = self.controller
        present = [bp for bp in dbg.list_breakpoints() if bp["kind"] == condition]
        if on and not present:
            self._own_breakpoints[condition].append(dbg.break_on(condition))
        elif not on:
            for handle in self._own_breakpoints[condition]:
                handle.remove()
            self._own_breakpoints[condition] = []
            for bp in present:  # also the ones set in code: the toggle shows and controls the controller's state
                dbg.remove_breakpoint(bp["id"])
        self._after_command()

    def _on_pick_key(self, key: str) -> None:
        dbg = self.controller
        keys = dbg.list_step_data_keys()
        if key not in keys:
            raise CommandError(f"pick_key: no step data {key!r} at this step; keys: {', '.join(keys) or 'none'}")
        values = self._value_values(dbg, key)
        with self._lock:
            self._set(step_key=key, **values)

    def _on_sort_table(self, by: str, descending: bool) -> None:
        table = self._full_table
        if table is None:
            raise CommandError("sort_table: there is no feature table (pause a loop whose step data has [D] metrics)")
        if by not in table["columns"]:
            raise CommandError(f"sort_table: no column {by!r}; columns: {', '.join(table['columns'])}")
        with self._lock:
            self.table_sort = {"by": by, "descending": descending}
            self.table = self._table_values()

    def _check_feature(self, kind: str, feature: int) -> DebugController:
        dbg = self.controller
        st = dbg.get_state()
        if st.get("feature_param") is None:
            raise CommandError(f"{kind}: the controller has no feature_param, so there are no features to watch")
        n = st.get("n_features")
        if n is not None and feature >= n:
            raise CommandError(f"{kind}: feature {feature} is out of range (0..{n - 1})")
        return dbg

    def _on_watch(self, feature: int) -> None:
        self._check_feature("watch", feature).add_watch(feature)
        self._after_command()

    def _on_unwatch(self, feature: int) -> None:
        dbg = self._check_feature("unwatch", feature)
        if feature not in dbg.get_watched():
            raise CommandError(f"unwatch: feature {feature} is not watched; watched: {dbg.get_watched()}")
        dbg.remove_watch(feature)
        self._after_command()

    def _on_refresh(self) -> None:
        self._schedule("state", lambda: self._refresh(force=True))

    def __repr__(self) -> str:
        return f"DebugPanel(state={self.run_state!r}, step={self.step}, controller={self.controller!r})"


def _default_key(info: Mapping[str, Mapping[str, Any]]) -> str:
    """The first 1-D tensor key (a per-feature metric reads best as bars), else the first key."""
    for key, meta in info.items():
        shape = meta.get("shape")
        if isinstance(shape, list) and len(shape) == 1:
            return key
    return next(iter(info), "")
