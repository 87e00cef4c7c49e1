"""RunStore: job history and metric series in an embedded SQLite database.

One database file per run directory (``<root>/acc.sqlite``, WAL mode). The
training thread never waits on it: points go to a queue and a writer thread
commits them in batches (every ``flush_interval`` seconds or every few
thousand points), never one commit per point. After a ``kill -9`` at most the
last flush interval of points is lost and the database stays whole.

Where it lives: ``RunStore(path)``; with no path ``$ACC_HOME`` if set, else
``./acc_runs`` in the working directory (as TensorBoard's ``runs/``).

Points are stored in chunks: one row per series per commit holding packed
int64 steps and float64 values and wall times (``acc._chunks``), so ingest is
a few numpy conversions per series and reading a series is ``np.frombuffer``
rather than a Python object per point. NaN and Inf are stored bit for bit. A
step written twice keeps its later value. Small chunks are merged in the
background and when a job ends, so a finished job's 10,000-step window reads
one or two chunks.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import json
import logging
import math
import os
import socket
import sqlite3
import sys
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from acc import _chunks
from acc.loss_health import LossSummary, LossSummaryAccumulator, Thresholds

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "DB_FILENAME",
    "JobRecord",
    "JobStatus",
    "Point",
    "RunStore",
    "StoreError",
    "default_root",
    "loss_series_name",
]

log = logging.getLogger(__name__)

DB_FILENAME = "acc.sqlite"
SCHEMA_VERSION = 2
# Series names the trainer writes. Each task's loss is "loss/<task>".
LOSS_PREFIX = "loss/"

Point = tuple[str, int, float, float]  # (series name, step, value, wall time)


def loss_series_name(task_name: str) -> str:
    return LOSS_PREFIX + task_name


class StoreError(RuntimeError):
    """The store cannot be opened or used; the message names the path."""


class JobStatus(str, Enum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    STOPPED = "stopped"
    INTERRUPTED = "interrupted"  # the process died while the job was running

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class JobRecord:
    """A job as the store holds it."""

    id: int
    name: str
    status: JobStatus
    kind: str
    created: float
    started: float | None
    ended: float | None
    last_step: int | None
    config: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    reason: str | None = None
    summary: dict[str, Any] | None = None
    pid: int | None = None
    host: str | None = None

    @property
    def duration(self) -> float | None:
        if self.started is None:
            return None
        return (self.ended if self.ended is not None else time.time()) - self.started

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        return data


def default_root() -> Path:
    """``$ACC_HOME`` if set, else ``./acc_runs``."""
    env = os.environ.get("ACC_HOME")
    return Path(env).expanduser() if env else Path.cwd() / "acc_runs"


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'train',
    status TEXT NOT NULL,
    created REAL NOT NULL,
    started REAL,
    ended REAL,
    heartbeat REAL,
    last_step INTEGER,
    pid INTEGER,
    host TEXT,
    config TEXT,
    error TEXT,
    reason TEXT,
    summary TEXT
);
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    UNIQUE (job_id, name)
);
-- One row per series per commit (or per compaction); id orders the writes.
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY,
    series_id INTEGER NOT NULL,
    first_step INTEGER NOT NULL,
    last_step INTEGER NOT NULL,
    n INTEGER NOT NULL,
    steps BLOB NOT NULL,
    vals BLOB NOT NULL,
    walls BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_by_series ON chunks (series_id, first_step);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    step INTEGER,
    kind TEXT NOT NULL,
    payload TEXT,
    wall_time REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_job ON events (job_id, kind, id);
"""

# Jobs running in this process, per database file: a "running" job that is not
# here and whose process is gone was interrupted.
_ACTIVE_JOBS: dict[str, set[int]] = {}
_ACTIVE_LOCK = threading.Lock()
_HOST = socket.gethostname()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Writer(threading.Thread):
    """Commits queued points in batches on its own connection.

    Training shares the CPU with this thread, so it wakes as little as it can:
    queuing points does not wake it while a commit is already due (it sleeps
    until the flush interval is up), only a flush, a close, the first points
    after an idle spell or a full batch do. On a small machine each wake-up
    preempts the training thread or one of torch's worker threads in the middle
    of a parallel op; waking per fetch measured ~20 extra preemptions a second
    of training and a 1-2 % slower step. On Linux the thread also runs at the
    lowest priority (nice 19), so it takes an idle core rather than the
    training thread's.
    """

    def __init__(self, store: RunStore, flush_interval: float, batch_size: int) -> None:
        super().__init__(name=f"acc-store-writer:{store.db_path.name}", daemon=True)
        self._store_ref = weakref.ref(store)
        self._db_path = store.db_path
        self._items: collections.deque[tuple[str, Any]] = collections.deque()
        self._wake = threading.Event()
        self._idle = False  # True while the writer sleeps with nothing pending: the next item must wake it
        self._unsignalled = 0  # points queued since the last wake-up (a full batch wakes the writer)
        self._flush_interval = flush_interval
        self._batch_size = batch_size
        self._series_ids: dict[tuple[int, str], int] = {}
        self._small_chunks: dict[int, int] = {}  # series id -> chunks written since its last compaction
        self.error: BaseException | None = None
        self.points_written = 0

    def _put(self, item: tuple[str, Any], *, urgent: bool = False, points: int = 0) -> None:
        self._items.append(item)  # deque.append is atomic: producers in any thread
        if points:
            self._unsignalled += points
            if self._unsignalled >= self._batch_size:
                urgent = True
        # After the append: either the writer, going idle, still finds the item, or it set _idle first.
        if urgent or self._idle:
            self._unsignalled = 0
            self._wake.set()

    def put_points(self, job_id: int, points: Sequence[Point]) -> None:
        self._put(("points", (job_id, points)), points=len(points))

    def put_columns(self, job_id: int, columns: Mapping[str, _chunks.Columns]) -> None:
        self._put(("columns", (job_id, columns)), points=sum(len(c[0]) for c in columns.values()))

    def put_event(self, job_id: int, step: int | None, kind: str, payload: str, wall_time: float) -> None:
        self._put(("event", (job_id, step, kind, payload, wall_time)))

    def flush(self, timeout: float | None) -> bool:
        done = threading.Event()
        self._put(("flush", done), urgent=True)
        return done.wait(timeout)

    def close(self, timeout: float | None = 10.0) -> None:
        done = threading.Event()
        self._put(("close", done), urgent=True)
        done.wait(timeout)

    def _sleep(self, timeout: float | None) -> None:
        """Wait for the timeout or an urgent item; with no timeout (nothing pending) any item wakes it."""
        if timeout is None:
            self._idle = True
            if not self._items:  # checked after setting _idle, so a racing producer sees one or the other
                self._wake.wait()
            self._idle = False
        elif timeout > 0:
            self._wake.wait(timeout)
        self._wake.clear()  # items set after this are drained next, so no wake-up is lost

    def run(self) -> None:
        _lower_thread_priority()
        conn = _connect(self._db_path)
        pending_points: list[tuple[int, Sequence[Point] | Mapping[str, _chunks.Columns]]] = []
        pending_events: list[tuple[Any, ...]] = []
        n_pending = 0
        last_commit = time.monotonic()
        last_checkpoint = last_commit
        waiters: list[threading.Event] = []
        closing = False
        items = self._items
        try:
            while True:
                while items:
                    kind, payload = items.popleft()
                    if kind == "points":
                        pending_points.append(payload)
                        n_pending += len(payload[1])
                    elif kind == "columns":
                        pending_points.append(payload)
                        n_pending += sum(len(c[0]) for c in payload[1].values())
                    elif kind == "event":
                        pending_events.append(payload)
                    elif kind in ("flush", "close"):
                        waiters.append(payload)
                        closing = closing or kind == "close"
                now = time.monotonic()
                due = now - last_commit >= self._flush_interval or n_pending >= self._batch_size
                if (n_pending or pending_events) and (due or waiters):
                    self._commit(conn, pending_points, pending_events)
                    self.points_written += n_pending
                    pending_points, pending_events, n_pending = [], [], 0
                    last_commit = time.monotonic()
                    if last_commit - last_checkpoint > 10.0:
                        # Readers can keep a WAL growing; fold it back now and then.
                        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                        last_checkpoint = last_commit
                for waiter in waiters:
                    waiter.set()
                waiters = []
                if closing:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                    return
                # Points pending, or a commit within the last interval (a stream of points goes on): sleep to
                # the next tick, whatever is queued meanwhile. A whole quiet interval: sleep until woken.
                since = time.monotonic() - last_commit
                if n_pending or pending_events or since < self._flush_interval:
                    self._sleep(self._flush_interval - since)
                else:
                    self._sleep(None)
        except BaseException as exc:  # the error is kept and re-raised to callers of flush()
            self.error = exc
            log.exception("acc store writer for %s stopped", self._db_path)
            for waiter in waiters:
                waiter.set()
            while items:  # callers blocked in flush()/close() must not wait for a dead writer
                kind, payload = items.popleft()
                if kind in ("flush", "close"):
                    payload.set()
        finally:
            conn.close()

    def _series_id(self, conn: sqlite3.Connection, job_id: int, name: str) -> int:
        key = (job_id, name)
        sid = self._series_ids.get(key)
        if sid is None:
            conn.execute("INSERT OR IGNORE INTO series (job_id, name) VALUES (?, ?)", key)
            sid = int(conn.execute("SELECT id FROM series WHERE job_id = ? AND name = ?", key).fetchone()[0])
            self._series_ids[key] = sid
        return sid

    def _commit(
        self,
        conn: sqlite3.Connection,
        batches: list[tuple[int, Sequence[Point] | Mapping[str, _chunks.Columns]]],
        events: list[tuple[Any, ...]],
    ) -> None:
        # Queued blocks -> per-series columns -> one chunk row per series. This is the
        # ingest hot path: one Python pass to group loose points, then numpy; the
        # Trainer's blocks come as columns already.
        by_job: dict[int, dict[str, list[_chunks.Columns]]] = {}
        for job_id, block in batches:
            series = by_job.setdefault(job_id, {})
            if isinstance(block, Mapping):
                for name, cols in block.items():
                    series.setdefault(name, []).append(cols)
            else:
                for name, (step_list, value_list, wall_list) in _chunks.columns_of(block).items():
                    cols = (np.array(step_list, np.int64), np.array(value_list, np.float64), np.array(wall_list))
                    series.setdefault(name, []).append(cols)
        compact: list[int] = []
        with conn:
            for job_id, series in by_job.items():
                last = None
                for name, parts in series.items():
                    if len(parts) == 1:
                        steps, values, walls = parts[0]
                    else:  # in queue order, so a step written twice keeps its later value
                        steps, values, walls = (np.concatenate([p[i] for p in parts]) for i in range(3))
                    if not len(steps):
                        continue
                    sid = self._series_id(conn, job_id, name)
                    row = _chunks.encode(steps, values, walls)
                    conn.execute(_INSERT_CHUNK, (sid, *row))
                    last = row[1] if last is None else max(last, row[1])
                    count = self._small_chunks.get(sid, 0) + 1
                    self._small_chunks[sid] = count
                    if count >= _COMPACT_AFTER:
                        compact.append(sid)
                if last is not None:
                    conn.execute(
                        "UPDATE jobs SET last_step = MAX(COALESCE(last_step, ?), ?), heartbeat = ? WHERE id = ?",
                        (last, last, time.time(), job_id),
                    )
            if events:
                conn.executemany(
                    "INSERT INTO events (job_id, step, kind, payload, wall_time) VALUES (?, ?, ?, ?, ?)", events
                )
        for sid in compact:
            with conn:
                _compact_tail(conn, sid)
            self._small_chunks[sid] = 0


# A live series' small chunks are merged after this many commits (~16 s at 4 commits/s).
_COMPACT_AFTER = 64
_INSERT_CHUNK = (
    "INSERT INTO chunks (series_id, first_step, last_step, n, steps, vals, walls) VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def _read_chunks(conn: sqlite3.Connection, series_id: int, where: str = "", params: Sequence[Any] = ()) -> list[
    tuple[int, int, bytes, bytes, bytes]
]:  # fmt: skip
    rows = conn.execute(
        f"SELECT id, n, steps, vals, walls FROM chunks WHERE series_id = ?{where} ORDER BY id", [series_id, *params]
    ).fetchall()
    return rows


def _compact_tail(conn: sqlite3.Connection, series_id: int) -> None:
    """Merge the series' chunks written after its last full chunk (keeps the write order intact)."""
    full = conn.execute(
        "SELECT MAX(id) FROM chunks WHERE series_id = ? AND n >= ?", (series_id, _chunks.CHUNK_POINTS)
    ).fetchone()[0]
    rows = _read_chunks(conn, series_id, " AND id > ?", (full if full is not None else -1,))
    if len(rows) > 1:
        _rewrite(conn, series_id, rows)


def _compact_all(conn: sqlite3.Connection, series_id: int) -> None:
    """Merge all of a series into sorted, de-duplicated chunks of CHUNK_POINTS (a finished job's series)."""
    rows = _read_chunks(conn, series_id)
    if len(rows) > 1 or (rows and rows[0][1] > _chunks.CHUNK_POINTS):
        _rewrite(conn, series_id, rows)


def _rewrite(conn: sqlite3.Connection, series_id: int, rows: list[tuple[int, int, bytes, bytes, bytes]]) -> None:
    merged = _chunks.merge(_chunks.decode(st, v, w) for _, _, st, v, w in rows)
    conn.executemany("DELETE FROM chunks WHERE id = ?", [(r[0],) for r in rows])
    conn.executemany(_INSERT_CHUNK, [(series_id, *row) for row in _chunks.split(merged)])


def _migrate_points_table(conn: sqlite3.Connection) -> None:
    """Schema 1 kept one row per point; move its series into chunks (nothing is lost)."""
    sids = [r[0] for r in conn.execute("SELECT DISTINCT series_id FROM points")]
    for sid in sids:
        rows = conn.execute(
            "SELECT step, value, wall_time FROM points WHERE series_id = ? ORDER BY step", (sid,)
        ).fetchall()
        steps = np.array([r[0] for r in rows], np.int64)
        values = np.array([math.nan if r[1] is None else r[1] for r in rows], np.float64)
        walls = np.array([math.nan if r[2] is None else r[2] for r in rows], np.float64)
        conn.executemany(_INSERT_CHUNK, [(sid, *row) for row in _chunks.split((steps, values, walls))])
    conn.execute("DROP TABLE points")


def _lower_thread_priority() -> None:
    """Run the calling thread at nice 19 (Linux only, where nice is per thread; elsewhere it is per process)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


def _connect(db_path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(db_path, timeout=30.0, isolation_level="DEFERRED", check_same_thread=True)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


class RunStore:
    """Jobs and their metric series, on disk, surviving kernel restarts.

    ``RunStore(path=None, *, flush_interval=0.25)``: ``path`` is a run
    directory (the database is ``<path>/acc.sqlite``) or a ``.sqlite`` file.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        flush_interval: float = 0.25,
        batch_size: int = 20_000,
    ) -> None:
        target = Path(path).expanduser() if path is not None else default_root()
        if target.suffix in (".sqlite", ".db", ".sqlite3") or target.is_file():
            self.root = target.parent
            self.db_path = target
        else:
            self.root = target
            self.db_path = target / DB_FILENAME
        self._flush_interval = flush_interval
        self._batch_size = batch_size
        self._local = threading.local()
        self._writer: _Writer | None = None
        self._writer_lock = threading.Lock()
        self._closed = False
        self._open()
        _STORES.add(self)

    # -- opening -----------------------------------------------------------

    def _open(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the run directory {self.root}: {exc.strerror or exc}") from exc
        if not os.access(self.root, os.W_OK):
            raise StoreError(f"the run directory {self.root} is not writable")
        try:
            conn = self._conn()
            with conn:
                conn.executescript(_SCHEMA)
                conn.execute(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
                )
            version = int(conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])
            if version == 1:
                with conn:
                    _migrate_points_table(conn)
                    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
                version = SCHEMA_VERSION
        except sqlite3.DatabaseError as exc:
            self._drop_conn()
            raise StoreError(f"{self.db_path} is not a usable acc run store: {exc}") from exc
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.db_path} was written by a newer acc (schema {version}, this one reads {SCHEMA_VERSION})"
            )
        self._mark_interrupted()

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise StoreError(f"the store at {self.db_path} is closed")
            try:
                conn = _connect(self.db_path)
            except sqlite3.OperationalError as exc:  # missing directory, permissions, locks
                raise StoreError(f"cannot open {self.db_path}: {exc}") from exc
            except sqlite3.DatabaseError as exc:  # the file exists but is not an SQLite database
                raise StoreError(f"{self.db_path} is not a usable acc run store: {exc}") from exc
            self._local.conn = conn
        return conn

    def _drop_conn(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _mark_interrupted(self) -> None:
        """A job left "running" by a process that is gone was interrupted."""
        key = str(self.db_path.resolve())
        with _ACTIVE_LOCK:
            mine = set(_ACTIVE_JOBS.get(key, ()))
        rows = self._conn().execute("SELECT id, pid, host, heartbeat FROM jobs WHERE status = 'running'").fetchall()
        dead = []
        for job_id, pid, host, heartbeat in rows:
            if job_id in mine:
                continue
            if host == _HOST:
                gone = pid is None or pid == os.getpid() or not _pid_alive(pid)
            else:  # another machine: trust the heartbeat the writer refreshes
                gone = heartbeat is None or time.time() - heartbeat > 300
            if gone:
                dead.append(job_id)
        if dead:
            with self._conn() as conn:
                conn.executemany(
                    "UPDATE jobs SET status = 'interrupted', ended = COALESCE(heartbeat, started), "
                    "reason = 'the process running it ended without finishing the job' WHERE id = ?",
                    [(j,) for j in dead],
                )

    # -- jobs --------------------------------------------------------------

    def create_job(self, name: str, *, config: Mapping[str, Any] | None = None, kind: str = "train") -> int:
        """A new job in state "running"; returns its id."""
        now = time.time()
        with self._conn() as conn:
            cur = conn.execute(
                "INSERT INTO jobs (name, kind, status, created, started, heartbeat, pid, host, config) "
                "VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?)",
                (name, kind, now, now, now, os.getpid(), _HOST, _dumps(config or {})),
            )
        job_id = int(cur.lastrowid or 0)
        with _ACTIVE_LOCK:
            _ACTIVE_JOBS.setdefault(str(self.db_path.resolve()), set()).add(job_id)
        return job_id

    def update_job_config(self, job_id: int, config: Mapping[str, Any]) -> None:
        with self._conn() as conn:
            conn.execute("UPDATE jobs SET config = ? WHERE id = ?", (_dumps(config), job_id))

    def finish_job(
        self,
        job_id: int,
        status: JobStatus | str,
        *,
        error: str | None = None,
        reason: str | None = None,
        summary: Mapping[str, LossSummary] | None = None,
        last_step: int | None = None,
    ) -> None:
        """Record how a job ended. Queued points are committed first."""
        status = JobStatus(status)
        if status is JobStatus.RUNNING:
            raise ValueError("finish_job needs a final status, not 'running'")
        self.flush()
        summary_json = None if summary is None else _dumps({k: v.to_dict() for k, v in summary.items()})
        with self._conn() as conn:
            # a finished series is read far more than written: merge it into full, sorted chunks
            for (sid,) in conn.execute("SELECT id FROM series WHERE job_id = ?", (job_id,)).fetchall():
                _compact_all(conn, sid)
            conn.execute(
                "UPDATE jobs SET status = ?, ended = ?, error = ?, reason = ?, summary = COALESCE(?, summary), "
                "last_step = COALESCE(?, last_step) WHERE id = ?",
                (status.value, time.time(), error, reason, summary_json, last_step, job_id),
            )
        with _ACTIVE_LOCK:
            _ACTIVE_JOBS.get(str(self.db_path.resolve()), set()).discard(job_id)

    def job(self, job_id: int) -> JobRecord:
        row = self._conn().execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise KeyError(f"no job {job_id} in {self.db_path}")
        return _job_from_row(row)

    def jobs(self, *, status: JobStatus | str | None = None, limit: int | None = None) -> list[JobRecord]:
        """Job history, newest first."""
        sql = f"SELECT {_JOB_COLUMNS} FROM jobs"
        params: list[Any] = []
        if status is not None:
            sql += " WHERE status = ?"
            params.append(JobStatus(status).value)
        sql += " ORDER BY id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [_job_from_row(r) for r in self._conn().execute(sql, params)]

    def delete_job(self, job_id: int) -> None:
        with self._conn() as conn:
            conn.execute("DELETE FROM chunks WHERE series_id IN (SELECT id FROM series WHERE job_id = ?)", (job_id,))
            conn.execute("DELETE FROM series WHERE job_id = ?", (job_id,))
            conn.execute("DELETE FROM events WHERE job_id = ?", (job_id,))
            conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    # -- writing points ----------------------------------------------------

    def _get_writer(self) -> _Writer:
        if self._closed:
            raise StoreError(f"the store at {self.db_path} is closed")
        writer = self._writer
        if writer is None or not writer.is_alive():
            with self._writer_lock:
                writer = self._writer
                if writer is not None and writer.error is not None:
                    raise StoreError(f"writing to {self.db_path} failed: {writer.error}") from writer.error
                if writer is None or not writer.is_alive():
                    if self._closed:
                        raise StoreError(f"the store at {self.db_path} is closed")
                    writer = _Writer(self, self._flush_interval, self._batch_size)
                    writer.start()
                    self._writer = writer
        return writer

    def log_points(self, job_id: int, points: Sequence[Point]) -> None:
        """Queue ``(name, step, value, wall_time)`` points; they are committed within ``flush_interval``."""
        if points:
            self._get_writer().put_points(job_id, points)

    def log_columns(self, job_id: int, columns: Mapping[str, _chunks.Columns]) -> None:
        """Queue whole series blocks: name -> (int64 steps, float64 values, float64 wall times), equal lengths.

        The arrays are kept as they are until the commit: do not change them after this call.
        """
        if any(len(c[0]) for c in columns.values()):
            self._get_writer().put_columns(job_id, columns)

    def log_metrics(self, job_id: int, step: int, values: Mapping[str, float], wall_time: float | None = None) -> None:
        """Queue one step's values by name."""
        wall = time.time() if wall_time is None else wall_time
        self.log_points(job_id, [(name, int(step), float(v), wall) for name, v in values.items()])

    def log_event(self, job_id: int, kind: str, payload: Mapping[str, Any], *, step: int | None = None) -> None:
        """Queue an event (an alert, a checkpoint, a note) for the job."""
        self._get_writer().put_event(job_id, step, kind, _dumps(payload), time.time())

    def flush(self, timeout: float | None = 30.0) -> None:
        """Block until everything queued so far is committed."""
        writer = self._writer
        if writer is None:
            return
        if writer.is_alive() and not writer.flush(timeout):
            raise StoreError(f"writing to {self.db_path} did not finish within {timeout} s")
        if writer.error is not None:
            raise StoreError(f"writing to {self.db_path} failed: {writer.error}") from writer.error

    # -- reading -----------------------------------------------------------

    def metric_names(self, job_id: int) -> list[str]:
        rows = self._conn().execute("SELECT name FROM series WHERE job_id = ? ORDER BY name", (job_id,))
        return [r[0] for r in rows]

    def _series_ids(self, job_id: int, names: Iterable[str] | None) -> dict[str, int]:
        rows = self._conn().execute("SELECT name, id FROM series WHERE job_id = ?", (job_id,)).fetchall()
        ids = dict(rows)
        if names is None:
            return ids
        return {n: ids[n] for n in names if n in ids}

    def _columns(self, series_id: int, start: int | None, end: int | None) -> _chunks.Columns:
        """A series' points in [start, end] from the chunks that overlap it, merged and windowed."""
        where, params = "", []
        if start is not None:
            where += " AND last_step >= ?"
            params.append(int(start))
        if end is not None:
            where += " AND first_step <= ?"
            params.append(int(end))
        rows = _read_chunks(self._conn(), series_id, where, params)
        merged = _chunks.merge(_chunks.decode(st, v, w) for _, _, st, v, w in rows)
        return _chunks.window(merged, start, end)

    def series(
        self, job_id: int, name: str, *, start: int | None = None, end: int | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One series as arrays ``(steps int64, values float64, wall_times float64)``, steps ascending.

        ``start``/``end`` is an inclusive step range. A step written twice has its later value.
        """
        sid = self._series_ids(job_id, [name]).get(name)
        if sid is None:
            empty = np.empty(0)
            return empty.astype(np.int64), empty, empty
        return self._columns(sid, start, end)

    def metrics(
        self,
        job_id: int,
        names: Iterable[str] | None = None,
        *,
        start: int | None = None,
        end: int | None = None,
    ) -> dict[str, list[dict[str, float]]]:
        """The seed's shape: ``{"loss": [{"step", "value", "timestamp"}, ...], "learning_rate": [...], ...}``.

        ``names`` limits the series (all by default); ``start``/``end`` is an
        inclusive step range.
        """
        out: dict[str, list[dict[str, float]]] = {}
        for name, sid in sorted(self._series_ids(job_id, names).items()):
            steps, values, walls = self._columns(sid, start, end)
            out[name] = [
                {"step": s, "value": v, "timestamp": w}
                for s, v, w in zip(steps.tolist(), values.tolist(), walls.tolist(), strict=True)
            ]
        return out

    def metrics_frame(
        self,
        job_id: int,
        names: Iterable[str] | None = None,
        *,
        start: int | None = None,
        end: int | None = None,
    ) -> pd.DataFrame:
        """The same points as a long pandas DataFrame: columns step, name, value, timestamp."""
        import pandas as pd  # optional dependency, only for export

        frames = []
        for name, points in self.metrics(job_id, names, start=start, end=end).items():
            frame = pd.DataFrame(points, columns=["step", "value", "timestamp"])
            frame.insert(1, "name", name)
            frames.append(frame)
        if not frames:
            return pd.DataFrame(columns=["step", "name", "value", "timestamp"])
        return pd.concat(frames, ignore_index=True)

    def events(self, job_id: int, kind: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT step, kind, payload, wall_time FROM events WHERE job_id = ?"
        params: list[Any] = [job_id]
        if kind is not None:
            sql += " AND kind = ?"
            params.append(kind)
        rows = self._conn().execute(sql + " ORDER BY id", params)
        return [{"step": s, "kind": k, "payload": json.loads(p) if p else None, "time": w} for s, k, p, w in rows]

    def loss_summary(self, job_id: int) -> dict[str, LossSummary]:
        """Per-task loss summaries of any job (the seed's ``GET /jobs/{job_id}/loss_summary``).

        A finished job's summary was saved when it ended; a running or
        interrupted job's is computed from its stored points.
        """
        record = self.job(job_id)
        if record.summary and record.status is not JobStatus.RUNNING:
            return {k: LossSummary.from_dict(v) for k, v in record.summary.items()}
        tasks: Mapping[str, Mapping[str, Any]] = record.config.get("tasks", {})
        names = [n for n in self.metric_names(job_id) if n.startswith(LOSS_PREFIX)]
        summaries: dict[str, LossSummary] = {}
        for series_name in names:
            task = series_name[len(LOSS_PREFIX) :]
            spec = tasks.get(task, {})
            bounds = spec.get("thresholds")
            acc = LossSummaryAccumulator(task, spec.get("task_type"), Thresholds.coerce(bounds) if bounds else None)
            steps, values, _ = self.series(job_id, series_name)
            for step, value in zip(steps.tolist(), values.tolist(), strict=True):
                acc.add(value, step)
            summaries[task] = acc.summary()
        return summaries

    def integrity_check(self) -> str:
        """SQLite's ``PRAGMA integrity_check`` ("ok" when the file is whole)."""
        return str(self._conn().execute("PRAGMA integrity_check").fetchone()[0])

    # -- lifetime ----------------------------------------------------------

    def close(self) -> None:
        """Commit what is queued and stop the writer. Reading afterwards raises StoreError."""
        if self._closed:
            return
        writer = self._writer
        if writer is not None and writer.is_alive():
            writer.close()
        self._closed = True
        self._drop_conn()
        _STORES.discard(self)

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RunStore({str(self.root)!r})"


_JOB_COLUMNS = "id, name, status, kind, created, started, ended, last_step, config, error, reason, summary, pid, host"


def _job_from_row(row: tuple[Any, ...]) -> JobRecord:
    (job_id, name, status, kind, created, started, ended, last_step, config, error, reason, summary, pid, host) = row
    return JobRecord(
        id=job_id,
        name=name,
        status=JobStatus(status),
        kind=kind,
        created=created,
        started=started,
        ended=ended,
        last_step=last_step,
        config=json.loads(config) if config else {},
        error=error,
        reason=reason,
        summary=json.loads(summary) if summary else None,
        pid=pid,
        host=host,
    )


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return repr(obj)


def _dumps(obj: Any) -> str:
    # allow_nan: NaN/Inf in summaries are written as JSON's NaN/Infinity, which json.loads reads back.
    return json.dumps(obj, default=_json_default, allow_nan=True)


_STORES: weakref.WeakSet[RunStore] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    # Commit queued points of every open store when the interpreter exits.
    for store in list(_STORES):
        with contextlib.suppress(Exception):
            store.close()


def iter_points(store: RunStore, job_id: int) -> Iterator[tuple[str, int, float]]:
    """Every point of a job as ``(name, step, value)``; for export."""
    for name in store.metric_names(job_id):
        steps, values, _ = store.series(job_id, name)
        yield from ((name, int(s), float(v)) for s, v in zip(steps, values, strict=True))
