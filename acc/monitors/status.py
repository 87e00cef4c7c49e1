"""The status snapshot: one serialisable object with everything the monitors know, and its JSON file.

``TrainingStatus`` carries the seed's fields (streaming_ce, loss_variance,
token_entropy, loss_trend, active_alerts, alert_summary, tokens_per_sec,
tokens_per_sec_avg, throughput_trend, lora_stats, lora_summary,
accuracy_last_20/50, accuracy_trend, fixed_eval_*) plus the run (job, step,
loss, ETA), per-layer gradient health and monitor faults. Widgets render it
straight from ``to_dict()``; ``StatusMonitor`` writes it atomically to
``<store root>/jobs/<job_id>/status.json`` (throttled, and at the start and
end of a job) for readers outside the kernel::

    trainer.status()                      # TrainingStatus, now
    acc.monitors.read_status(path)        # what an external reader sees
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from acc.checkpoints import atomic_write_bytes
from acc.events import Event
from acc.monitors._base import MonitorBase
from acc.state import TrainerState

__all__ = ["StatusMonitor", "TrainingStatus", "read_status", "status_path", "training_status"]

STATUS_FILENAME = "status.json"


@dataclass
class TrainingStatus:
    """Everything a panel or an external reader needs about a run, as plain data.

    Numbers are floats (NaN/None when unknown), trends are "improving" /
    "stable" / "degrading" / "insufficient_data", alerts are ``Alert.to_dict()``
    dicts. ``to_json()`` writes strict JSON (non-finite numbers become null).
    """

    # the run
    job_id: int | None = None
    job_name: str | None = None
    status: str = "idle"
    step: int = 0
    max_steps: int | None = None
    epoch: int = 0
    loss: float | None = None
    losses: dict[str, float] = field(default_factory=dict)
    health: str | None = None
    lr: float | None = None
    grad_norm: float | None = None
    started_at: float | None = None
    updated_at: float = 0.0
    # streaming statistics
    streaming_ce: float | None = None
    loss_variance: float | None = None
    token_entropy: float | None = None
    loss_trend: str = "insufficient_data"
    accuracy_last_20: float | None = None
    accuracy_last_50: float | None = None
    accuracy_trend: str = "insufficient_data"
    calibration_error: float | None = None
    # alerts
    active_alerts: list[dict[str, Any]] = field(default_factory=list)
    resolved_alerts: list[dict[str, Any]] = field(default_factory=list)
    alert_summary: dict[str, int] = field(default_factory=dict)
    # throughput and ETA
    tokens_per_sec: float | None = None
    tokens_per_sec_avg: float | None = None
    samples_per_sec: float | None = None
    samples_per_sec_avg: float | None = None
    steps_per_sec: float | None = None
    throughput_trend: str = "insufficient_data"
    eta_seconds: float | None = None
    elapsed_seconds: float | None = None
    # gradient health
    layer_stats: dict[str, dict[str, Any]] | None = None
    layer_summary: dict[str, Any] | None = None
    lora_stats: dict[str, dict[str, Any]] | None = None
    lora_summary: dict[str, Any] | None = None
    # fixed evaluation
    fixed_eval_ce: float | None = None
    fixed_eval_em: float | None = None
    """Exact match: the accuracy on the fixed set."""
    fixed_eval_ece: float | None = None
    fixed_eval_trend: str = "insufficient_data"
    fixed_eval_step: int | None = None
    fixed_eval_n: int | None = None
    pattern_heatmap: dict[str, Any] | None = None
    # faults and anything else
    monitor_errors: list[dict[str, Any]] = field(default_factory=list)
    """One entry per disabled monitor: ``{"monitor", "error", "step", "job_id", "time"}``."""
    monitors: list[str] = field(default_factory=list)
    """The names of the monitors that fed this snapshot."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Fields of custom monitors."""

    def to_dict(self) -> dict[str, Any]:
        """Plain data (a deep copy of lists and dicts); floats may be NaN/Inf."""
        return {f.name: _copy(getattr(self, f.name)) for f in fields(self)}

    def to_json(self, *, indent: int | None = None) -> str:
        """Strict JSON (readable by any JSON parser): NaN and Inf become null."""
        return json.dumps(_strict(self.to_dict()), indent=indent, allow_nan=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainingStatus:
        """Rebuild from ``to_dict()``/JSON output; unknown keys go to ``extra``."""
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        extra = {k: v for k, v in data.items() if k not in known}
        status = cls(**kwargs)
        status.extra.update(extra)
        return status


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_copy(v) for v in value]
    return value


def _strict(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "item"):  # numpy / torch scalars
        return _strict(value.item())
    return str(value)


_FIELDS = frozenset(f.name for f in fields(TrainingStatus))


def training_status(target: Any, monitors: Iterable[Any] | None = None) -> TrainingStatus:
    """Assemble the snapshot of a Trainer (or a Recorder) from its state and its monitors.

    ``monitors`` defaults to ``target.monitors``. Reads host values only: it
    never forces a device sync, so any thread may call it at any time.
    """
    state: TrainerState = target.state
    info = state.last_info or {}
    status = TrainingStatus(
        job_id=state.job_id,
        job_name=state.job_name,
        status=state.status,
        step=state.step,
        max_steps=state.max_steps,
        epoch=state.epoch,
        loss=info.get("loss"),
        losses=dict(info.get("losses") or {}),
        health=info.get("overall_health"),
        lr=info.get("lr"),
        grad_norm=info.get("grad_norm"),
        started_at=state.started_at,
        updated_at=time.time(),
    )
    mons = list(monitors) if monitors is not None else list(getattr(target, "monitors", None) or [])
    for monitor in mons:
        name = getattr(monitor, "name", type(monitor).__name__)
        status.monitors.append(name)
        fault = getattr(monitor, "fault", None)
        if fault is not None:
            status.monitor_errors.append({k: v for k, v in fault.to_dict().items() if k != "traceback"})
            continue
        get = getattr(monitor, "status_fields", None)
        if get is None:
            continue
        for key, value in get().items():
            if key in _FIELDS and key not in ("monitors", "monitor_errors", "extra"):
                setattr(status, key, value)
            else:
                status.extra[key] = value
    return status


def status_path(store_root: str | Path, job_id: int) -> Path:
    """Where a job's status file lives: ``<store root>/jobs/<job_id>/status.json``."""
    return Path(store_root) / "jobs" / str(int(job_id)) / STATUS_FILENAME


def read_status(path: str | Path) -> TrainingStatus:
    """Read a status file written by ``StatusMonitor`` (always whole: it is replaced atomically)."""
    with open(path, encoding="utf-8") as f:
        return TrainingStatus.from_dict(json.load(f))


class StatusMonitor(MonitorBase):
    """Writes the status snapshot to the job's run directory, atomically, at most every ``interval`` seconds.

    ``StatusMonitor(interval=2.0, *, path=None, clock=time.monotonic)``:
    written at the job's start, at fetches ``interval`` apart, and always at
    its end. The writes happen in a writer thread (an fsync takes milliseconds;
    the loop only signals it), except the last one, which the job's end waits
    for: when a job is done its file is final. ``path`` overrides
    ``<store root>/jobs/<job_id>/status.json`` (a function ``job_id -> path``,
    or a fixed path). ``snapshot()`` returns the object without writing;
    ``write()`` writes it now, in the calling thread.
    """

    name = "status"

    def __init__(
        self,
        interval: float = 2.0,
        *,
        path: str | Path | Callable[[int], str | Path] | None = None,
        clock: Callable[[], float] = time.monotonic,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not interval >= 0:
            raise ValueError(f"interval must be a number of seconds >= 0, got {interval!r}")
        if not callable(clock):
            raise TypeError(f"clock must be a function returning seconds, got {type(clock).__name__}")
        self.interval = float(interval)
        self.path = path
        self.clock = clock
        self.writes = 0
        """Files written (requests that came while a write was running are merged into the next one)."""
        self.requests = 0
        """Writes asked for by the loop (start, throttled fetches, end)."""
        self.last_path: Path | None = None
        self._last_request: float | None = None
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def _register(self, target: Any) -> None:
        self._on(target, Event.JOB_STARTED, self._on_start)
        self._on(target, Event.METRICS_FETCHED, self._on_fetched)
        self._on(target, Event.JOB_ENDED, self._on_end)

    def _reset(self) -> None:
        self._last_request = None

    # -- the loop's side: signal only ----------------------------------------

    def _on_start(self, state: TrainerState) -> None:
        self._stop_writer()  # a previous job's writer, if its end was never seen
        self._stopping = False
        self._wake.clear()
        self._thread = threading.Thread(target=self._run, args=(state,), name="acc-status-writer", daemon=True)
        self._thread.start()
        self._request()

    def _on_fetched(self, state: TrainerState) -> None:
        now = self.clock()
        if self._last_request is None or now - self._last_request >= self.interval:
            self._request()

    def _on_end(self, state: TrainerState) -> None:
        self.requests += 1
        self._stop_writer()
        if self.fault is None:
            self.write()  # the final state, on disk before the job is reported done

    def _request(self) -> None:
        self._last_request = self.clock()
        self.requests += 1
        self._wake.set()

    # -- the writer thread -------------------------------------------------

    def _run(self, state: TrainerState) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stopping:
                return
            try:
                self.write()
            except Exception as exc:  # the same fate as a failing handler: recorded once, disabled
                self._fail(exc, state)
                return

    def _stop_writer(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stopping = True
        self._wake.set()
        if thread is not threading.current_thread():  # the writer itself stops by returning
            thread.join(timeout=30.0)

    # -- by hand -------------------------------------------------------------

    def snapshot(self) -> TrainingStatus:
        """The status now (not written)."""
        if self._target is None:
            raise RuntimeError("StatusMonitor.snapshot() needs the monitor attached to a Trainer or a Recorder")
        return training_status(self._target, self.peers)

    def file_for(self, job_id: int) -> Path:
        if callable(self.path):
            return Path(self.path(job_id))
        if self.path is not None:
            return Path(self.path)
        store = getattr(self._target, "store", None)
        if store is None:
            raise RuntimeError("StatusMonitor has no store to put status.json in; pass path=")
        return status_path(store.root, job_id)

    def write(self) -> Path | None:
        """Write the snapshot now (temp file, fsync, rename); returns the path (None before a job exists)."""
        status = self.snapshot()
        if status.job_id is None:
            return None
        path = self.file_for(status.job_id)
        with self._lock:  # the writer thread and a final write never interleave
            atomic_write_bytes(path, status.to_json().encode("utf-8"))
            self.writes += 1
            self.last_path = path
        return path

    def detach(self) -> None:
        super().detach()
        self._stop_writer()
