"""Capture a training script's metrics from its log: run a command, follow a file, or read a pipe.

::

    job = acc.capture(["python", "train.py", "--lr", "3e-4"])  # runs it; its output still reaches you
    job = acc.follow("runs/old/train.log")                       # tails a file another process writes
    job = acc.capture(sys.stdin.buffer)                           # reads a pipe to its end

(``acc.capture`` is the function; import the other names from this module:
``from acc.capture import LogCapture``.)

Each is a job in the run store (kind ``"capture"``), recorded through an
``acc.Recorder`` exactly as a Trainer's job is: the same series (``loss``,
``loss/<task>``, ``learning_rate``, ``grad_norm``, any other metric by name),
per-task loss health and summaries, ``METRICS_FETCHED`` events and the
default alert rules (``acc.monitors.AlertsMonitor``).

How log names become a job's series:

* a name with the word ``loss`` in it (``loss``, ``eval_loss``, ``nll_loss``,
  ``loss/recon``) is a task: series ``loss/<name>`` with a health verdict
  (``loss/recon`` is the task ``recon``). The task's type comes from ``tasks=``
  or else from its name (``acc.loss_health.infer_task_type``: ``recon_loss`` is
  reconstruction; plain ``loss`` is custom, healthy while finite). The line's
  ``loss`` is also the job's total loss (series ``loss``);
* ``learning_rate`` and ``grad_norm`` are the job's learning-rate and
  gradient-norm series;
* everything else (``rewards/chosen``, ``logps/rejected``, ``epoch``,
  ``time_ms``, ...) is stored under its name. Rewards, log-probabilities and
  accuracies are not losses: higher is better, so they get no loss verdict.

Names are normalised by ``acc.logparse.normalize_name``; the names as printed
are kept in the job's config (``store.job(id).config["capture"]["raw_names"]``).
Lines that print the same step again add to it (the store keeps one value per
series and step: the latest). Any NaN or Inf value is stored exactly, flagged
(``LogCapture.nonfinite``, a ``"nonfinite"`` event with the job, a warning in
the log) and makes ``overall_health()`` CRITICAL: Hugging Face's Trainer masks
NaN losses by default, so a ``'grad_norm': nan`` may be the only sign.

The job's status: a command's exit code 0 is ``completed``, anything else
``failed`` (with the exit code and the last lines of output); ``stop()`` makes
it ``stopped``; a pipe or a hand-fed capture ends ``completed``; a followed
file ends ``completed`` after ``idle_timeout`` seconds without new lines.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import math
import os
import queue
import shlex
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from acc.events import Event, RemovableHandle
from acc.logparse import (
    DEFAULT_MAX_LINE_LENGTH,
    LineSplitter,
    LogParser,
    ParseStats,
    PatternLike,
    is_loss_name,
    normalize_name,
)
from acc.loss_health import LossHealth, LossSummary
from acc.recorder import Recorder
from acc.state import TrainerState
from acc.store import JobStatus, RunStore
from acc.tasks import Task

if TYPE_CHECKING:
    from acc.monitors.alerts import Alert

__all__ = ["LogCapture", "capture", "follow"]

log = logging.getLogger(__name__)

_READ_SIZE = 1 << 16
_QUEUE_BATCHES = 256  # chunks of at most _READ_SIZE bytes waiting to be parsed
_TAIL_LINES = 20  # lines of output kept for a failed job's error text
_EXIT_GRACE = 2.0  # seconds to wait for pipes a finished command's children still hold open

_Item = tuple[str, Any]


def _route_name(name: str, declared: Mapping[str, Task]) -> tuple[str, str]:
    """Where a normalised metric goes: ("task", task name), ("lr", ""), ("grad_norm", "") or ("metric", name)."""
    if name in declared:
        return "task", name
    if name == "learning_rate":
        return "lr", ""
    if name == "grad_norm":
        return "grad_norm", ""
    if is_loss_name(name):
        task = name[5:] if name.startswith("loss/") and len(name) > 5 else name
        return "task", task
    return "metric", name


class _Sink:
    """Parsed lines -> one Recorder.record() per step. Lives in the capture's worker thread."""

    def __init__(self, capture: LogCapture) -> None:
        self.capture = capture
        self.parser = capture.parser
        self.recorder = capture.recorder
        self.routes: dict[str, tuple[str, str]] = {}
        self.step: int | None = None
        self.values: dict[str, float] = {}
        self.wall = 0.0
        self.config_dirty = False

    def lines(self, lines: Iterable[str], wall: float) -> None:
        parse = self.parser.parse_values
        raw_names = self.capture.raw_names
        for line in lines:
            parsed = parse(line)
            if parsed is None:
                continue
            step, values = parsed
            if step != self.step:
                self.emit()
                self.step = step
                self.wall = wall
            current = self.values
            for name, value, raw in values:
                current[name] = value
                known = raw_names.get(name)
                if known is None:
                    raw_names[name] = [raw]
                    self.config_dirty = True
                elif raw not in known:
                    known.append(raw)
                    self.config_dirty = True

    def emit(self) -> None:
        """Record the step gathered so far."""
        values = self.values
        if self.step is None or not values:
            return
        self.values = {}
        step = self.step
        losses: dict[str, float] = {}
        metrics: dict[str, float] = {}
        lr = grad_norm = None
        routes = self.routes
        declared = self.recorder.tasks
        for name, value in values.items():
            route = routes.get(name)
            if route is None:
                route = routes[name] = _route_name(name, declared)
            kind = route[0]
            if kind == "task":
                losses[route[1]] = value
            elif kind == "metric":
                metrics[name] = value
            elif kind == "lr":
                lr = value
            else:
                grad_norm = value
            if value != value or value in (math.inf, -math.inf):
                self.capture._flag_nonfinite(name, value, step)
        total = values.get("loss")
        epoch = values.get("epoch")
        self.recorder.record(
            step,
            losses,
            total=total,
            lr=lr,
            grad_norm=grad_norm,
            epoch=int(epoch) if epoch is not None and math.isfinite(epoch) else None,
            wall_time=self.wall,
            metrics=metrics,
            log_total=total is not None,
        )

    def idle(self) -> None:
        """Nothing more to read right now: record the open step and fetch, so it reaches the store."""
        self.emit()
        self.recorder.flush()
        if self.config_dirty:
            self.config_dirty = False
            self.capture._save_config()
        if self.parser.max_steps is not None:
            self.recorder.state.max_steps = self.parser.max_steps


class LogCapture:
    """A job recorded from log lines: what ``capture()`` and ``follow()`` return.

    It behaves like a Trainer's job where that makes sense: ``id`` (the store's
    job id), ``status``, ``state`` (a ``TrainerState``), ``on(Event...., fn)``,
    ``loss_summary()``, ``wait()``, ``stop()``, and the store's data through
    ``metrics()``, ``to_csv()`` and ``to_json()``.

    Built directly, it is fed by hand (from any thread)::

        cap = acc.LogCapture(name="from-a-socket")
        cap.feed("step 1 loss 0.93\\n")
        cap.close()                         # "completed"

    ``LogCapture(name=None, *, tasks=None, store=None, patterns=None,
    parser=None, config=None, alerts=True, max_line_length=65536)``:
    ``tasks`` maps metric names (as normalised: ``loss``, ``eval_loss``) to a
    Task or a type name; ``patterns`` are extra line patterns (see
    ``acc.logparse.LogParser.add_pattern``); ``alerts`` attaches the default
    alert rules.
    """

    def __init__(
        self,
        name: str | None = None,
        *,
        tasks: Mapping[str, Task | str] | None = None,
        store: RunStore | None = None,
        patterns: Iterable[PatternLike] | None = None,
        parser: LogParser | None = None,
        config: Mapping[str, Any] | None = None,
        alerts: bool = True,
        max_line_length: int = DEFAULT_MAX_LINE_LENGTH,
        _source: Mapping[str, Any] | None = None,
    ) -> None:
        if parser is not None and patterns is not None:
            raise ValueError("give patterns= or parser=, not both (add patterns to the parser)")
        self.parser = parser if parser is not None else LogParser(patterns, max_line_length=max_line_length)
        self.raw_names: dict[str, list[str]] = {}
        """Normalised metric name -> the names the log printed for it."""
        self.nonfinite: dict[str, dict[str, Any]] = {}
        """Metric name -> ``{"count", "first_step", "value"}`` for every metric that had a NaN or Inf."""
        self.returncode: int | None = None
        """A command's exit code once it ended (negative: killed by that signal)."""
        source = dict(_source or {"source": "feed"})
        self._capture_config: dict[str, Any] = {**source, "raw_names": self.raw_names}
        declared = {normalize_name(k): v for k, v in (tasks or {}).items()}
        self.recorder = Recorder(
            tasks=declared,
            store=store,
            name=name or str(source.get("name") or "capture"),
            fetch_every=256,
            max_fetch_interval=0.1,
            config={**(config or {}), "capture": self._capture_config},
            kind="capture",
        )
        self.alerts_monitor: Any = None
        if alerts:
            from acc.monitors.alerts import AlertsMonitor

            self.alerts_monitor = AlertsMonitor()
            self.alerts_monitor.attach(self.recorder)
        self._sink = _Sink(self)
        # Bounded: a source faster than the recording (a huge file read from its start) waits instead of
        # filling memory; a command then blocks on its output pipe for a moment, as under a slow terminal.
        self._queue: queue.Queue[_Item] = queue.Queue(maxsize=_QUEUE_BATCHES)
        self._splitter = LineSplitter(max_line_bytes=4 * self.parser.max_line_length)
        self._feed_lock = threading.Lock()
        self._stop_event = threading.Event()
        self._done = threading.Event()
        self._finished = False  # the worker stopped taking lines (sources stop queueing)
        self._status: str = JobStatus.RUNNING.value
        self._reason: str | None = None
        self._exception: BaseException | None = None
        self._open_sources = 0
        self._threads: list[threading.Thread] = []
        self._process: subprocess.Popen[bytes] | None = None
        self._tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
        self.recorder.start()
        self._worker = threading.Thread(target=self._run, name=f"acc-capture:{self.id}", daemon=True)
        self._worker.start()

    # -- what a job has ----------------------------------------------------------

    @property
    def id(self) -> int:
        """The job's id in the store."""
        assert self.recorder.job_id is not None
        return self.recorder.job_id

    job_id = id

    @property
    def name(self) -> str:
        return self.recorder.name

    @property
    def store(self) -> RunStore:
        return self.recorder.store

    @property
    def state(self) -> TrainerState:
        """The live state: ``step``, ``last_info`` (the latest step's values), ``status``."""
        return self.recorder.state

    @property
    def status(self) -> str:
        """running, completed, failed or stopped."""
        return self._status

    @property
    def reason(self) -> str | None:
        return self._reason

    @property
    def step(self) -> int:
        return self.recorder.state.step

    @property
    def stats(self) -> ParseStats:
        """Lines read, metric lines, records, and skipped garbage (malformed, binary, too long)."""
        return self.parser.stats

    @property
    def alerts(self) -> list[Alert]:
        """Active and resolved alerts of the default rules (empty with ``alerts=False``)."""
        monitor = self.alerts_monitor
        if monitor is None:
            return []
        return [*monitor.active_alerts(), *monitor.resolved_alerts()]

    def on(self, event: Event | str, handler: Callable[[TrainerState], Any]) -> RemovableHandle:
        """Subscribe to METRICS_FETCHED (``state.fetched``: the new steps' values) or JOB_ENDED."""
        return self.recorder.on(event, handler)

    def loss_summary(self) -> dict[str, LossSummary]:
        """Per-task loss summaries so far."""
        return self.recorder.loss_summary()

    def overall_health(self) -> LossHealth:
        """The worst task verdict; CRITICAL as soon as any metric was NaN or Inf."""
        if self.nonfinite:
            return LossHealth.CRITICAL
        return self.recorder.overall_health()

    def metrics(
        self, names: Iterable[str] | None = None, *, start: int | None = None, end: int | None = None
    ) -> dict[str, list[dict[str, float]]]:
        """The stored series: ``{"loss": [{"step", "value", "timestamp"}, ...], ...}`` (names may be globs)."""
        from acc.export import job_metrics

        self._flush_store()
        return job_metrics(self.store, self.id, names, start=start, end=end)

    def to_csv(self, dest: Any, **kwargs: Any) -> int:
        """Write the job's points as CSV (see ``acc.export.to_csv``); returns the rows written."""
        from acc.export import to_csv

        self._flush_store()
        return to_csv(self.store, self.id, dest, **kwargs)

    def to_json(self, dest: Any, **kwargs: Any) -> int:
        """Write the job and its points as JSON (see ``acc.export.to_json``); returns the points written."""
        from acc.export import to_json

        self._flush_store()
        return to_json(self.store, self.id, dest, **kwargs)

    # -- feeding and ending --------------------------------------------------------

    def feed(self, data: str | bytes) -> None:
        """Queue log text; complete lines are parsed in the capture's thread (a partial line waits)."""
        if self._finished:
            raise RuntimeError(f"capture {self.id} ({self.name!r}) has ended; it takes no more lines")
        raw = data.encode("utf-8", "replace") if isinstance(data, str) else bytes(data)
        with self._feed_lock:
            lines = self._splitter.feed(raw)
            dropped = self._splitter.take_dropped()
        self._put_lines(lines, dropped, "feed")

    def close(self, status: JobStatus | str = JobStatus.COMPLETED, *, reason: str | None = None) -> LogCapture:
        """End a hand-fed capture once everything fed so far is recorded; returns when the job has ended."""
        status = JobStatus(status)
        if status is JobStatus.RUNNING:
            raise ValueError("close() needs a final status, not 'running'")
        if self._threads:
            raise RuntimeError("close() ends a hand-fed capture; this one has a source: use stop() or wait()")
        with self._feed_lock:
            last = self._splitter.finish()
            dropped = self._splitter.take_dropped()
        self._put_lines(last, dropped, "feed")
        self._put(("end", (status.value, reason)))
        return self.wait()

    def stop(self, *, wait: bool = True, timeout: float | None = 30.0, grace: float = 0.0) -> None:
        """Stop reading (and terminate a captured command); the job ends ``stopped``.

        ``grace``: seconds a command gets to end by itself first (it may
        already have had a Ctrl-C from the terminal).
        """
        if self._done.is_set():
            return
        self._stop_event.set()
        proc = self._process
        if proc is not None and proc.poll() is None:
            if grace > 0:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(grace)
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(5.0)
                except subprocess.TimeoutExpired:
                    log.warning("capture %s: %s did not end 5 s after SIGTERM; killing it", self.id, self.name)
                    proc.kill()
        self._put(("stop", None))
        if wait:
            self.wait(timeout)

    def wait(self, timeout: float | None = None) -> LogCapture:
        """Block until the job has ended. Re-raises an error of the capture itself (not of the command)."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"capture {self.id} ({self.name!r}) is still running after {timeout} s")
        if self._exception is not None:
            raise self._exception
        return self

    def done(self) -> bool:
        return self._done.is_set()

    def __enter__(self) -> LogCapture:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        """A hand-fed capture ends completed (failed, stopped on an exception); one with a source is stopped."""
        if self.done():
            return
        if self._threads:
            self.stop()
        elif exc is None:
            self.close()
        elif isinstance(exc, KeyboardInterrupt):
            self.close(JobStatus.STOPPED, reason="interrupted by the user (KeyboardInterrupt)")
        else:
            self.close(JobStatus.FAILED, reason=f"{type(exc).__name__}: {exc}")

    def __repr__(self) -> str:
        return f"LogCapture(id={self.id}, name={self.name!r}, status={self.status!r}, step={self.step})"

    # -- sources (each runs in its own thread and queues lines) ----------------------

    def _put(self, item: _Item) -> None:
        """Queue for the worker; gives up once the worker has ended (nothing would take it)."""
        while not self._finished:
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _put_lines(self, lines: list[str], dropped: int, tag: str) -> None:
        if (lines or dropped) and not self._finished:
            self._put(("lines", (time.time(), lines, dropped, tag)))

    def _add_source(self, target: Callable[..., None], *args: Any, name: str) -> None:
        self._open_sources += 1
        thread = threading.Thread(target=self._source_main, args=(target, *args), name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _source_main(self, target: Callable[..., None], *args: Any) -> None:
        try:
            target(*args)
        except BaseException as exc:  # handed to the worker, which fails the job with it
            self._put(("error", exc))
        finally:
            self._put(("source_done", None))

    def _read_fd(self, fd: int, tag: str, echo: IO[Any] | None) -> None:
        """Read a pipe as data arrives (os.read returns what is there), echo it, queue its lines."""
        splitter = LineSplitter(max_line_bytes=4 * self.parser.max_line_length)
        writer = _Echo(echo) if echo is not None else None
        while True:
            try:
                data = os.read(fd, _READ_SIZE)
            except OSError as exc:
                log.debug("capture %s: reading %s stopped: %s", self.id, tag, exc)
                break
            if not data:
                break
            if writer is not None:
                writer.write(data)
            self._put_lines(splitter.feed(data), splitter.take_dropped(), tag)
        self._put_lines(splitter.finish(), splitter.take_dropped(), tag)

    def _read_stream(self, stream: Any, tag: str, echo: IO[Any] | None) -> None:
        """Read a file object to its end (a pipe, a socket file, sys.stdin)."""
        fileno = None
        with contextlib.suppress(AttributeError, OSError, ValueError):  # in-memory streams have no descriptor
            fileno = stream.fileno()
        if fileno is not None:
            self._read_fd(fileno, tag, echo)
            return
        splitter = LineSplitter(max_line_bytes=4 * self.parser.max_line_length)
        writer = _Echo(echo) if echo is not None else None
        read = getattr(stream, "read1", None) or stream.read
        while not self._stop_event.is_set():
            data = read(_READ_SIZE)
            if not data:
                break
            raw = data.encode("utf-8", "replace") if isinstance(data, str) else data
            if writer is not None:
                writer.write(raw)
            self._put_lines(splitter.feed(raw), splitter.take_dropped(), tag)
        self._put_lines(splitter.finish(), splitter.take_dropped(), tag)

    def _follow(self, path: Path, from_start: bool, poll: float, idle_timeout: float | None) -> None:
        """Tail ``path``: read what is appended; start again after truncation; switch files after rotation."""
        splitter = LineSplitter(max_line_bytes=4 * self.parser.max_line_length)
        f: IO[bytes] | None = None
        identity: tuple[int, int] | None = None
        first_open = True
        idle_ended = False
        last_data = time.monotonic()

        def drain(handle: IO[bytes]) -> None:
            while True:
                data = handle.read(_READ_SIZE)
                if not data:
                    return
                self._put_lines(splitter.feed(data), splitter.take_dropped(), "file")

        try:
            while True:
                stopping = self._stop_event.is_set()
                if f is None:
                    try:
                        f = open(path, "rb")  # noqa: SIM115 -- kept open across loop turns, closed in finally
                    except FileNotFoundError:
                        if stopping:
                            return
                        self._stop_event.wait(poll)
                        continue
                    st = os.fstat(f.fileno())
                    identity = (st.st_dev, st.st_ino)
                    if first_open and not from_start:
                        f.seek(0, os.SEEK_END)
                    first_open = False
                data = f.read(_READ_SIZE)
                if data:
                    last_data = time.monotonic()
                    self._put_lines(splitter.feed(data), splitter.take_dropped(), "file")
                    continue
                if stopping:
                    return
                now_st: os.stat_result | None
                try:
                    now_st = os.stat(path)
                except FileNotFoundError:
                    now_st = None  # moved away, the new one not created yet: keep the old one
                if now_st is not None and (now_st.st_dev, now_st.st_ino) != identity:
                    drain(f)  # what was appended before the rotation
                    self._put_lines(splitter.finish(), splitter.take_dropped(), "file")
                    f.close()
                    f = None
                    log.info("capture %s: %s was replaced (rotated); reading the new file", self.id, path)
                    continue
                if now_st is not None and now_st.st_size < f.tell():
                    log.info("capture %s: %s was truncated; reading it again from the start", self.id, path)
                    splitter.reset()
                    f.seek(0)
                    continue
                if idle_timeout is not None and time.monotonic() - last_data >= idle_timeout:
                    idle_ended = True
                    return
                self._stop_event.wait(poll)
        finally:
            if f is not None:
                drain(f)
                f.close()
            self._put_lines(splitter.finish(), splitter.take_dropped(), "file")
            if idle_ended:  # after the last lines, so that the worker has them when it ends the job
                self._put(("idle_end", idle_timeout))

    # -- the worker: parse, record, end ------------------------------------------------

    def _run(self) -> None:
        status, reason, error = JobStatus.COMPLETED, None, None
        exit_seen: float | None = None
        stop_seen: float | None = None
        end: tuple[JobStatus, str | None, str | None] | None = None
        try:
            while end is None:
                try:
                    items = [self._queue.get(timeout=0.1)]
                except queue.Empty:
                    items = []
                while len(items) < 1024:
                    try:
                        items.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                for kind, payload in items:
                    if kind == "lines":
                        wall, lines, dropped, tag = payload
                        self.parser.stats.too_long += dropped
                        if tag != "file":
                            self._tail.extend(lines)
                        self._sink.lines(lines, wall)
                    elif kind == "source_done":
                        self._open_sources -= 1
                    elif kind == "error":
                        raise payload
                    elif kind == "stop":
                        stop_seen = stop_seen or time.monotonic()
                    elif kind == "idle_end":
                        end = (JobStatus.COMPLETED, f"no new lines for {payload:g} s", None)
                    elif kind == "end":
                        end = (JobStatus(payload[0]), payload[1], None)
                self._sink.idle()
                if end is not None:
                    break
                proc = self._process
                now = time.monotonic()
                if stop_seen is None and self._stop_event.is_set():
                    stop_seen = now  # set before a command is terminated: its exit is then not a failure
                if proc is not None and exit_seen is None and proc.poll() is not None:
                    exit_seen = now
                sources_left = self._open_sources > 0
                if stop_seen is not None and (not sources_left or now - stop_seen > _EXIT_GRACE):
                    end = (JobStatus.STOPPED, "stopped by the user", None)
                elif proc is not None and exit_seen is not None and (not sources_left or now - exit_seen > _EXIT_GRACE):
                    end = self._exit_status(proc)
                elif proc is None and self._threads and not sources_left:
                    end = (JobStatus.COMPLETED, "the input ended", None)
            status, reason, error = end
        except BaseException as exc:  # the capture itself broke (the store, a handler): the job fails with it
            self._exception = exc
            status, reason = JobStatus.FAILED, "the capture failed"
            error = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            log.exception("capture %s (%s) failed", self.id, self.name)
        finally:
            self._finished = True
            self._finish(status, reason, error)

    def _exit_status(self, proc: subprocess.Popen[bytes]) -> tuple[JobStatus, str | None, str | None]:
        rc = proc.wait()
        self.returncode = rc
        if rc == 0:
            return JobStatus.COMPLETED, "exit code 0", None
        if rc < 0:
            try:
                what = f"killed by {signal.Signals(-rc).name}"
            except ValueError:
                what = f"killed by signal {-rc}"
        else:
            what = f"exit code {rc}"
        tail = "\n".join(self._tail)
        return JobStatus.FAILED, what, f"{what}; the last lines of its output:\n{tail}" if tail else what

    def _finish(self, status: JobStatus, reason: str | None, error: str | None) -> None:
        try:
            with contextlib.suppress(Exception):
                self._sink.emit()  # a step still open when the source ended
            if self.parser.stats.skipped:
                log.info("capture %s (%s): skipped lines %s", self.id, self.name, self.parser.stats.to_dict())
            self._capture_config["stats"] = self.parser.stats.to_dict()
            with contextlib.suppress(Exception):
                self._save_config()
            self.recorder.close(status, error=error, reason=reason)
        except BaseException as exc:
            if self._exception is None:
                self._exception = exc
            log.exception("capture %s (%s): ending the job failed", self.id, self.name)
        finally:
            self._status = status.value
            self._reason = reason
            self._done.set()

    # -- helpers ---------------------------------------------------------------------

    def _flag_nonfinite(self, name: str, value: float, step: int) -> None:
        seen = self.nonfinite.get(name)
        if seen is not None:
            seen["count"] += 1
            return
        text = "NaN" if value != value else ("Inf" if value > 0 else "-Inf")
        self.nonfinite[name] = {"count": 1, "first_step": step, "value": text}
        message = f"{name} is {text} at step {step}"
        log.warning("capture %s (%s): %s", self.id, self.name, message)
        payload = {"metric": name, "value": text, "step": step, "health": LossHealth.CRITICAL.value, "message": message}
        self.store.log_event(self.id, "nonfinite", payload, step=step)

    def _save_config(self) -> None:
        rec = self.recorder
        config = {**rec.config, "tasks": {k: t.describe() for k, t in rec.tasks.items()}}
        self.store.update_job_config(self.id, config)

    def _flush_store(self) -> None:
        self.store.flush()


class _Echo:
    """Writes a source's bytes to the user's stream as they come (a tee); stops quietly on a closed stream."""

    def __init__(self, stream: IO[Any]) -> None:
        self.stream = stream
        self.failed = False
        self._decoder: Any = None

    def write(self, data: bytes) -> None:
        if self.failed:
            return
        try:
            buffer = getattr(self.stream, "buffer", None)
            if buffer is not None:
                buffer.write(data)
                buffer.flush()
            else:  # a text-only stream (Jupyter's): decode, keeping a split multi-byte character for later
                if self._decoder is None:
                    import codecs

                    self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
                self.stream.write(self._decoder.decode(data))
            self.stream.flush()
        except (OSError, ValueError) as exc:  # the reader of our output went away (| head): keep capturing
            self.failed = True
            log.warning("capture: echoing the output stopped (%s); the capture goes on", exc)


def _command_name(cmd: Sequence[str]) -> str:
    text = " ".join(cmd)
    return text if len(text) <= 80 else text[:77] + "..."


def capture(
    source: Sequence[str] | str | IO[Any],
    *,
    name: str | None = None,
    tasks: Mapping[str, Task | str] | None = None,
    store: RunStore | None = None,
    patterns: Iterable[PatternLike] | None = None,
    echo: bool = True,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    config: Mapping[str, Any] | None = None,
    alerts: bool = True,
) -> LogCapture:
    """Run a command (or read a stream) and record the metrics its output prints, live, as a job.

    ``source``: a command (``["python", "train.py"]``; a string is split like
    a shell would, without running one) or a readable stream (a pipe,
    ``sys.stdin.buffer``). Returns at once; ``.wait()`` blocks until it ends.

    For a command, stdout and stderr are both read as they are written and,
    with ``echo=True``, copied to this process's stdout and stderr.
    ``PYTHONUNBUFFERED=1`` is set for it (unless ``env`` sets it) so a Python
    script's prints arrive as they happen. Its exit code gives the job's status.
    """
    if hasattr(source, "read"):
        stream: Any = source
        label = str(getattr(stream, "name", "stream"))
        cap = LogCapture(
            name or label,
            tasks=tasks,
            store=store,
            patterns=patterns,
            config=config,
            alerts=alerts,
            _source={"source": "stream", "name": label},
        )
        cap._add_source(cap._read_stream, stream, "stream", sys.stdout if echo else None, name=f"acc-read:{cap.id}")
        return cap
    if isinstance(source, (str, bytes)):
        cmd = shlex.split(source if isinstance(source, str) else source.decode())
    else:
        cmd = [os.fspath(part) for part in source]
    if not cmd:
        raise ValueError("acc.capture needs a command to run, e.g. ['python', 'train.py']")
    child_env = dict(os.environ if env is None else env)
    child_env.setdefault("PYTHONUNBUFFERED", "1")
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env, cwd=cwd, bufsize=0)
    except OSError as exc:
        raise type(exc)(exc.errno, f"acc.capture cannot run {cmd[0]!r}: {exc.strerror or exc}") from exc
    try:
        cap = LogCapture(
            name or _command_name(cmd),
            tasks=tasks,
            store=store,
            patterns=patterns,
            config=config,
            alerts=alerts,
            _source={"source": "command", "command": cmd, "cwd": os.fspath(cwd) if cwd else os.getcwd()},
        )
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    cap._process = proc
    assert proc.stdout is not None
    assert proc.stderr is not None
    cap._add_source(
        cap._read_fd, proc.stdout.fileno(), "stdout", sys.stdout if echo else None, name=f"acc-stdout:{cap.id}"
    )
    cap._add_source(
        cap._read_fd, proc.stderr.fileno(), "stderr", sys.stderr if echo else None, name=f"acc-stderr:{cap.id}"
    )
    return cap


def follow(
    path: str | os.PathLike[str],
    *,
    name: str | None = None,
    tasks: Mapping[str, Task | str] | None = None,
    store: RunStore | None = None,
    patterns: Iterable[PatternLike] | None = None,
    from_start: bool = True,
    idle_timeout: float | None = None,
    wait_for_file: bool = False,
    poll_interval: float = 0.05,
    config: Mapping[str, Any] | None = None,
    alerts: bool = True,
) -> LogCapture:
    """Follow a log file that another process writes (``tail -F``), recording its metrics as a job.

    Reads the file from the start (``from_start=False``: only what is
    appended from now on), then every ``poll_interval`` seconds what was
    appended. A truncated file is read again from its start; a rotated one
    (renamed, and a new file created under the path) is read to its end and
    then the new file from its start. Runs until ``stop()`` (the job ends
    ``stopped``) or, with ``idle_timeout``, until no line came for that many
    seconds (``completed``). A missing file raises FileNotFoundError unless
    ``wait_for_file=True``.
    """
    target = Path(path).expanduser()
    if not wait_for_file and not target.exists():
        raise FileNotFoundError(f"acc.follow: no file {target} (wait_for_file=True waits for it to appear)")
    if target.is_dir():
        raise IsADirectoryError(f"acc.follow needs a log file, {target} is a directory")
    if poll_interval <= 0:
        raise ValueError(f"poll_interval must be > 0 seconds, got {poll_interval}")
    if idle_timeout is not None and idle_timeout <= 0:
        raise ValueError(f"idle_timeout must be > 0 seconds (or None), got {idle_timeout}")
    cap = LogCapture(
        name or target.name,
        tasks=tasks,
        store=store,
        patterns=patterns,
        config=config,
        alerts=alerts,
        _source={"source": "file", "path": str(target.resolve())},
    )
    cap._add_source(cap._follow, target, from_start, poll_interval, idle_timeout, name=f"acc-follow:{cap.id}")
    return cap


# -- command line (``acc capture``, ``acc parse``; wired in acc/__main__.py) -----------------


def _parse_tasks(specs: Sequence[str] | None) -> dict[str, str]:
    tasks: dict[str, str] = {}
    for spec in specs or ():
        name, sep, task_type = spec.partition("=")
        if not sep or not name or not task_type:
            raise SystemExit(f"acc: --task wants NAME=TYPE (e.g. eval_loss=classification), got {spec!r}")
        tasks[name] = task_type
    return tasks


def _open_store(path: str | None) -> RunStore | None:
    return RunStore(path) if path else None


def _report(cap: LogCapture, out: IO[str]) -> None:
    """The end-of-capture summary a terminal user reads."""
    from acc.demo import format_summary_table

    record = cap.store.job(cap.id)
    stats = cap.stats
    why = f" ({cap.reason})" if cap.reason else ""
    out.write(
        f"acc: job {cap.id} {cap.name!r} {cap.status}{why}: {record.last_step or 0} steps, "
        f"{stats.records} values from {stats.lines} lines ({stats.skipped} skipped) in {cap.store.root}\n"
    )
    summaries = cap.loss_summary()
    if summaries:
        out.write("\n".join(format_summary_table(summaries)) + "\n")
    for name, seen in cap.nonfinite.items():
        out.write(f"CRITICAL: {name} was {seen['value']} {seen['count']}x (first at step {seen['first_step']})\n")
    for alert in cap.alerts:
        if alert.active:
            out.write(f"alert [{alert.severity.value}] {alert.message}\n")


def _quiet_broken_pipe(run: Callable[[Any], int]) -> Callable[[Any], int]:
    """``acc parse log --csv - | head``: the reader leaving early is not an error worth a traceback."""

    def wrapped(args: Any) -> int:
        try:
            return run(args)
        except BrokenPipeError:
            # Python's documented recipe: point stdout at devnull so the flush at exit does not raise again
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return 1

    wrapped.__doc__ = run.__doc__
    return wrapped


@_quiet_broken_pipe
def run_capture_cli(args: Any) -> int:
    """``acc capture``: run a command (or follow a file, or read stdin) into a job; exit with its exit code."""
    cmd = list(args.cmd or [])
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if cmd and args.follow:
        raise SystemExit("acc capture: give a command after -- or --follow FILE, not both")
    store = _open_store(args.store)
    common: dict[str, Any] = {
        "name": args.name,
        "tasks": _parse_tasks(args.task),
        "store": store,
        "patterns": args.pattern or None,
    }
    if args.follow:
        cap = follow(args.follow, from_start=not args.from_end, idle_timeout=args.idle_timeout, **common)
    elif cmd:
        try:
            cap = capture(cmd, echo=not args.quiet, **common)
        except OSError as exc:
            sys.stderr.write(f"{exc}\n")
            return 127
    else:
        if sys.stdin.isatty():
            raise SystemExit("acc capture: give a command (acc capture -- python train.py) or pipe a log into it")
        cap = capture(sys.stdin.buffer, echo=not args.quiet, **common)
    interrupted = False
    try:
        cap.wait()
    except KeyboardInterrupt:
        interrupted = True
        # the terminal sent Ctrl-C to the command too: give it time to stop by itself
        try:
            cap.stop(grace=10.0)
        except KeyboardInterrupt:
            cap.stop(grace=0.0)
    if args.csv:
        cap.to_csv(args.csv)
    if args.json:
        cap.to_json(args.json, indent=1)
    _report(cap, sys.stderr)
    if interrupted:
        return 130
    rc = cap.returncode
    if rc is None:
        return 0 if cap.status != JobStatus.FAILED.value else 1
    return rc if rc >= 0 else 128 - rc


@_quiet_broken_pipe
def run_parse_cli(args: Any) -> int:
    """``acc parse FILE``: print what a log holds, export it, optionally save it as a job."""
    from acc.export import records_to_csv, records_to_json
    from acc.logparse import parse_file
    from acc.loss_health import compute_loss_summary

    path = Path(args.file)
    if not path.is_file():
        raise SystemExit(f"acc parse: no file {path}")
    if args.save:
        with open(path, "rb") as f:
            cap = capture(
                f,
                name=args.name or path.name,
                tasks=_parse_tasks(args.task),
                store=_open_store(args.store),
                patterns=args.pattern or None,
                echo=False,
            ).wait()
        if args.csv:
            cap.to_csv(args.csv, wide=args.wide)
        if args.json:
            cap.to_json(args.json, indent=1)
        _report(cap, sys.stderr)
        return 0
    parser = LogParser(args.pattern or None)
    records = list(parse_file(path, parser=parser))
    if args.csv:
        records_to_csv(records, args.csv, wide=args.wide)
    if args.json:
        records_to_json(records, args.json, indent=1)
    out = sys.stderr if "-" in (args.csv, args.json) else sys.stdout
    stats = parser.stats
    out.write(
        f"{path}: {stats.records} values at {len({r.step for r in records})} steps from {stats.lines} lines "
        f"({stats.metric_lines} with metrics; skipped {stats.malformed} malformed, {stats.binary} binary, "
        f"{stats.too_long} too long)\n"
    )
    by_name: dict[str, list[float]] = {}
    raw: dict[str, str] = {}
    for r in records:
        by_name.setdefault(r.name, []).append(r.value)
        raw.setdefault(r.name, r.raw_name)
    if by_name:
        width = max(len(n) for n in by_name)
        out.write(f"{'name':<{width}}  {'points':>6}  {'last':>12}  printed as\n")
        for name, values in by_name.items():
            bad = sum(1 for v in values if not math.isfinite(v))
            flag = f"  CRITICAL: {bad} non-finite" if bad else ""
            out.write(f"{name:<{width}}  {len(values):>6}  {values[-1]:>12.6g}  {raw[name]}{flag}\n")
    declared = {normalize_name(k): v for k, v in _parse_tasks(args.task).items()}
    loss_records = [
        {"step": r.step, "task_name": route[1], "task_type": declared.get(r.name), "loss": r.value}
        for r in records
        if (route := _route_name(r.name, {}))[0] == "task" or r.name in declared
    ]
    if loss_records:
        from acc.demo import format_summary_table

        out.write("\n".join(format_summary_table(compute_loss_summary(loss_records))) + "\n")
    return 0
