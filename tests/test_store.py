"""RunStore on real SQLite: shapes, exact NaN/Inf, ranges, restarts, kills and bad paths."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import wait_until

import acc
from acc import JobStatus, RunStore, StoreError


def test_jobs_and_metrics_in_the_seed_shape(store: RunStore) -> None:
    job = store.create_job("vae", config={"lr": 0.1})
    store.log_points(job, [("loss", s, 1.0 / s, 100.0 + s) for s in range(1, 6)])
    store.log_metrics(job, 6, {"loss": 0.1, "learning_rate": 0.01, "grad_norm": 2.5}, wall_time=106.0)
    store.flush()
    metrics = store.metrics(job)
    assert metrics["loss"][0] == {"step": 1, "value": 1.0, "timestamp": 101.0}
    assert [p["step"] for p in metrics["loss"]] == [1, 2, 3, 4, 5, 6]
    assert metrics["learning_rate"] == [{"step": 6, "value": 0.01, "timestamp": 106.0}]
    assert store.metrics(job, names=["grad_norm"]) == {"grad_norm": [{"step": 6, "value": 2.5, "timestamp": 106.0}]}
    assert [p["step"] for p in store.metrics(job, start=2, end=4)["loss"]] == [2, 3, 4]
    record = store.job(job)
    assert (record.name, record.status, record.config, record.last_step) == ("vae", JobStatus.RUNNING, {"lr": 0.1}, 6)


def test_nan_and_inf_are_stored_exactly(store: RunStore) -> None:
    job = store.create_job("nan")
    values = [0.5, math.nan, math.inf, -math.inf, 0.0, -1e-300]
    store.log_points(job, [("loss/kl", i, v, 0.0) for i, v in enumerate(values)])
    store.flush()
    stored = [p["value"] for p in store.metrics(job)["loss/kl"]]
    assert stored[0] == 0.5 and math.isnan(stored[1])
    assert stored[2:] == [math.inf, -math.inf, 0.0, -1e-300]
    steps, arr, _ = store.series(job, "loss/kl")
    assert math.isnan(arr[1]) and arr[2] == math.inf and list(steps) == list(range(6))


def test_a_repeated_step_overwrites_instead_of_duplicating(store: RunStore) -> None:
    job = store.create_job("dup")
    store.log_points(job, [("loss", 1, 1.0, 0.0)])
    store.flush()
    store.log_points(job, [("loss", 1, 2.0, 0.0)])
    store.flush()
    assert store.metrics(job)["loss"] == [{"step": 1, "value": 2.0, "timestamp": 0.0}]


def test_pandas_frame_holds_the_same_points(store: RunStore) -> None:
    job = store.create_job("frame")
    store.log_points(job, [("loss", s, float(s), 0.0) for s in range(3)] + [("lr", 0, 0.1, 0.0)])
    store.flush()
    frame = store.metrics_frame(job)
    assert list(frame.columns) == ["step", "name", "value", "timestamp"]
    assert len(frame) == 4
    assert frame[frame.name == "loss"].value.tolist() == [0.0, 1.0, 2.0]
    assert store.metrics_frame(job, names=["nope"]).empty


def test_finish_job_stores_status_error_and_summary(store: RunStore) -> None:
    job = store.create_job("x", config={"tasks": {"recon": {"task_type": "reconstruction"}}})
    store.log_points(job, [("loss/recon", s, v, 0.0) for s, v in enumerate([0.3, 0.2, 0.04, 0.03], 1)])
    store.flush()
    live = store.loss_summary(job)  # a running job's summary is computed from its points
    assert live["recon"].final == 0.03 and live["recon"].health is acc.LossHealth.HEALTHY
    store.finish_job(job, "failed", error="Traceback ...\nValueError: x", summary=live)
    record = store.job(job)
    assert record.status is JobStatus.FAILED and record.error is not None and record.error.endswith("ValueError: x")
    assert store.loss_summary(job) == live
    with pytest.raises(ValueError, match="final status"):
        store.finish_job(job, "running")
    with pytest.raises(KeyError, match="no job 999"):
        store.job(999)


def test_jobs_are_newest_first_and_filterable(store: RunStore) -> None:
    ids = [store.create_job(f"j{i}") for i in range(3)]
    store.finish_job(ids[1], "completed")
    assert [j.id for j in store.jobs()] == ids[::-1]
    assert [j.id for j in store.jobs(status="completed")] == [ids[1]]
    assert [j.id for j in store.jobs(limit=1)] == [ids[2]]
    store.delete_job(ids[0])
    assert ids[0] not in [j.id for j in store.jobs()]


def _run(code: str, env_home: Path, **kwargs: object) -> subprocess.Popen[str]:
    env = {**os.environ, "ACC_HOME": str(env_home), "PYTHONPATH": str(Path(__file__).parents[1])}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, stdout=subprocess.PIPE, text=True, **kwargs
    )  # type: ignore[call-overload]


def test_history_survives_a_restart_and_dead_jobs_show_as_interrupted(tmp_path: Path) -> None:
    # A "kernel" trains one job to the end and leaves a second one running when it dies.
    proc = _run(
        """
        import os, acc
        s = acc.RunStore()
        done = s.create_job("finished")
        s.log_points(done, [("loss", 1, 0.5, 0.0)])
        s.finish_job(done, "completed")
        s.create_job("left-running")
        s.flush()
        os._exit(0)  # no clean shutdown, like a killed kernel
        """,
        tmp_path,
    )
    assert proc.wait(60) == 0
    store = RunStore(tmp_path)
    (running, finished) = store.jobs()
    assert (finished.name, finished.status) == ("finished", JobStatus.COMPLETED)
    assert (running.name, running.status) == ("left-running", JobStatus.INTERRUPTED)
    assert running.reason is not None and "ended without finishing" in running.reason
    assert store.metrics(finished.id)["loss"][0]["value"] == 0.5


def test_a_job_running_in_this_process_is_not_marked_interrupted(tmp_path: Path) -> None:
    first = RunStore(tmp_path)
    job = first.create_job("live")
    second = RunStore(tmp_path)  # e.g. a widget opening the same run directory
    assert second.job(job).status is JobStatus.RUNNING


@pytest.mark.slow
def test_kill_9_loses_at_most_the_last_flush_interval(tmp_path: Path) -> None:
    proc = _run(
        """
        import time, acc
        s = acc.RunStore(flush_interval=0.25)
        job = s.create_job("killed")
        print(job, flush=True)
        step = 0
        while True:
            step += 1
            s.log_points(job, [("loss", step, 1.0 / step, time.time())])
            time.sleep(0.001)
        """,
        tmp_path,
    )
    assert proc.stdout is not None
    job = int(proc.stdout.readline())
    time.sleep(2.0)
    proc.send_signal(signal.SIGKILL)
    killed_at = time.time()
    proc.wait(30)
    store = RunStore(tmp_path)
    assert store.integrity_check() == "ok"
    record = store.job(job)
    assert record.status is JobStatus.INTERRUPTED
    steps, _, walls = store.series(job, "loss")
    assert len(steps) > 100
    assert list(steps) == list(range(1, len(steps) + 1))  # nothing in the middle is missing
    assert killed_at - walls[-1] <= 1.0  # at most the last flush interval (+ the kill) was lost


def test_a_corrupt_database_is_a_clear_error_naming_the_path(tmp_path: Path) -> None:
    bad = tmp_path / "acc.sqlite"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match=f"{bad}.*not a usable acc run store"):
        RunStore(tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_an_unwritable_directory_is_a_clear_error(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    with pytest.raises(StoreError, match=f"{locked}.*not writable"):
        RunStore(locked)


def test_a_path_that_cannot_be_a_directory_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match=f"cannot create the run directory {blocker / 'runs'}"):
        RunStore(blocker / "runs")


def test_closed_store_refuses_use(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    job = store.create_job("x")
    store.log_points(job, [("loss", 1, 1.0, 0.0)])
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.log_points(job, [("loss", 2, 1.0, 0.0)])
    assert RunStore(tmp_path).metrics(job)["loss"][0]["value"] == 1.0  # close() committed the queue


def test_default_location_is_acc_home_then_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACC_HOME", str(tmp_path / "home"))
    assert RunStore().root == tmp_path / "home"
    monkeypatch.delenv("ACC_HOME")
    monkeypatch.chdir(tmp_path)
    assert RunStore().root == tmp_path / "acc_runs"
    assert (tmp_path / "acc_runs" / "acc.sqlite").exists()


def _chunk_count(store: RunStore, job: int, name: str) -> int:
    sid = store._series_ids(job, [name])[name]
    return int(store._conn().execute("SELECT COUNT(*) FROM chunks WHERE series_id = ?", (sid,)).fetchone()[0])


def test_out_of_order_and_repeated_steps_across_commits(store: RunStore) -> None:
    job = store.create_job("messy")
    store.log_points(job, [("loss", s, float(s), 0.0) for s in (5, 3, 9, 3)])  # 3 twice in one block
    store.flush()
    store.log_points(job, [("loss", 9, 90.0, 1.0), ("loss", 1, 1.0, 1.0)])  # a later write of step 9
    store.flush()
    steps, values, walls = store.series(job, "loss")
    assert steps.tolist() == [1, 3, 5, 9]
    assert values.tolist() == [1.0, 3.0, 5.0, 90.0]  # the later write of a step wins
    assert walls.tolist() == [1.0, 0.0, 0.0, 1.0]
    assert store.series(job, "loss", start=2, end=8)[0].tolist() == [3, 5]
    store.finish_job(job, "completed")  # compaction keeps the same answers
    assert store.series(job, "loss")[1].tolist() == [1.0, 3.0, 5.0, 90.0]


def test_live_series_are_compacted_and_finished_ones_merged(tmp_path: Path) -> None:
    store = RunStore(tmp_path, flush_interval=0.01)
    job = store.create_job("many commits")
    for block in range(200):  # 200 commits of 10 steps: many small chunks
        store.log_points(job, [("loss", block * 10 + i, float(block * 10 + i), 0.0) for i in range(10)])
        store.flush()
    assert _chunk_count(store, job, "loss") < 64  # merged in the background while running
    assert store.series(job, "loss")[0].tolist() == list(range(2000))
    store.log_points(job, [("loss", s, float(s), 0.0) for s in range(2000, 40_000)])
    store.finish_job(job, "completed")
    assert _chunk_count(store, job, "loss") == 3  # 40,000 points in full chunks of 16,384
    steps, values, _ = store.series(job, "loss", start=16_000, end=16_999)
    assert steps.tolist() == list(range(16_000, 17_000)) and values.tolist() == [float(s) for s in steps]


def test_a_schema_1_store_is_migrated_with_nothing_lost(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "acc.sqlite"
    conn = sqlite3.connect(db)
    conn.executescript(
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema_version', '1');
        CREATE TABLE jobs (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, kind TEXT NOT NULL DEFAULT 'train',
            status TEXT NOT NULL, created REAL NOT NULL, started REAL, ended REAL, heartbeat REAL, last_step INTEGER,
            pid INTEGER, host TEXT, config TEXT, error TEXT, reason TEXT, summary TEXT);
        CREATE TABLE series (id INTEGER PRIMARY KEY, job_id INTEGER NOT NULL, name TEXT NOT NULL,
            UNIQUE (job_id, name));
        CREATE TABLE points (series_id INTEGER NOT NULL, step INTEGER NOT NULL, value REAL, wall_time REAL,
            PRIMARY KEY (series_id, step)) WITHOUT ROWID;
        INSERT INTO jobs (name, status, created) VALUES ('old', 'completed', 0);
        INSERT INTO series VALUES (1, 1, 'loss');
        INSERT INTO points VALUES (1, 1, 0.5, 10.0), (1, 2, NULL, 11.0), (1, 3, 9e999, 12.0);
        """
    )
    conn.commit()
    conn.close()
    store = RunStore(tmp_path)
    steps, values, walls = store.series(1, "loss")
    assert steps.tolist() == [1, 2, 3]
    assert values[0] == 0.5 and math.isnan(values[1]) and values[2] == math.inf  # NULL was schema 1's NaN
    assert walls.tolist() == [10.0, 11.0, 12.0]
    tables = {r[0] for r in store._conn().execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "points" not in tables
    assert store.integrity_check() == "ok"


def test_column_blocks_reach_the_store_unprompted_and_merge_with_points_in_write_order(tmp_path: Path) -> None:
    store = RunStore(tmp_path, flush_interval=0.2)
    job = store.create_job("columns")
    steps = np.arange(1, 6, dtype=np.int64)
    walls = np.full(5, 1000.0)
    store.log_columns(job, {"loss": (steps, np.array([1.0, 2.0, math.nan, math.inf, 5.0]), walls)})
    store.log_points(job, [("loss", 5, 50.0, 1001.0), ("loss", 6, 6.0, 1001.0)])  # step 5 written again
    store.log_columns(job, {"lr": (steps[:0], np.array([]), walls[:0])})  # an empty block is ignored
    # no flush(): the writer commits within its interval even though queuing did not wake it
    wait_until(lambda: len(store.metrics(job).get("loss", [])) == 6, timeout=5)
    values = [p["value"] for p in store.metrics(job)["loss"]]
    assert values[:2] == [1.0, 2.0] and math.isnan(values[2]) and values[3] == math.inf
    assert values[4:] == [50.0, 6.0]  # the later write of step 5 wins
    assert "lr" not in store.metrics(job)
    assert store.job(job).last_step == 6
    store.close()
