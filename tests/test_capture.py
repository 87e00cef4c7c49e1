"""Capturing real processes, files and pipes into jobs: what a user finds in the store afterwards."""

from __future__ import annotations

import io
import math
import os
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import acc
from acc import Event, JobStatus, LossHealth
from acc.capture import LogCapture, capture, follow

HF_SCRIPT = """
import sys, time
for step in range(1, {steps} + 1):
    grad_norm = float("nan") if step == {nan_at} else 1.0 / step
    print({{"loss": round(1.0 / step, 4), "grad_norm": grad_norm, "learning_rate": 5e-05, "epoch": step / 100}})
    if step % 4 == 0:
        print({{"eval_loss": round(2.0 / step, 4), "eval_runtime": 0.1, "epoch": step / 100}})
    print(f"{{step / {steps}:4.0%}}|## | {{step}}/{steps} [00:01<00:01, 5.00it/s]", file=sys.stderr)
    if step == {fail_at}:
        raise RuntimeError("CUDA out of memory (simulated)")
"""


def _script(tmp_path: Path, body: str, name: str = "train.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


def _values(store: acc.RunStore, job_id: int, name: str) -> list[tuple[int, float]]:
    return [(int(p["step"]), p["value"]) for p in store.metrics(job_id, [name]).get(name, [])]


def _wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def test_a_script_that_fails_half_way_is_a_failed_job_with_its_points_kept(
    tmp_path: Path, store: acc.RunStore, capfd: pytest.CaptureFixture[str]
) -> None:
    script = _script(tmp_path, HF_SCRIPT.format(steps=20, nan_at=6, fail_at=10))
    job = capture([sys.executable, str(script)], store=store, name="hf-run").wait(60)

    assert job.status == "failed"
    assert job.returncode == 1
    record = store.job(job.id)
    assert record.status is JobStatus.FAILED
    assert record.kind == "capture"
    assert "exit code 1" in (record.error or "")
    assert "CUDA out of memory (simulated)" in (record.error or "")  # the last lines of stderr
    # every point printed before the failure is in the store: 10 train lines + 2 eval lines, one step each
    loss = _values(store, job.id, "loss")
    assert [v for _, v in loss] == [round(1.0 / s, 4) for s in range(1, 11)]
    assert [v for _, v in _values(store, job.id, "loss/eval_loss")] == [0.5, 0.25]
    assert [s for s, _ in loss] == [1, 2, 3, 4, 6, 7, 8, 9, 11, 12]  # the eval lines took steps 5 and 10
    # HF masks NaN losses: the NaN grad_norm is stored exactly and flagged
    grad = dict(_values(store, job.id, "grad_norm"))
    assert math.isnan(grad[7])
    assert job.nonfinite["grad_norm"] == {"count": 1, "first_step": 7, "value": "NaN"}
    assert job.overall_health() is LossHealth.CRITICAL
    assert [e["payload"]["metric"] for e in store.events(job.id, "nonfinite")] == ["grad_norm"]
    assert any(a.code == "exploding_gradients" for a in job.alerts)
    # health per task, names as printed kept in the job's config
    summary = store.loss_summary(job.id)
    assert set(summary) == {"loss", "eval_loss"}
    assert summary["loss"].final == 0.1
    assert record.config["capture"]["raw_names"]["learning_rate"] == ["learning_rate"]
    assert record.config["capture"]["command"] == [sys.executable, str(script)]
    # the output still reached the user, stdout and stderr both
    out, err = capfd.readouterr()
    assert "'loss': 1.0" in out
    assert "CUDA out of memory" in err


def test_stdout_and_stderr_are_both_read_and_exit_code_zero_completes(
    tmp_path: Path, store: acc.RunStore, capfd: pytest.CaptureFixture[str]
) -> None:
    script = _script(
        tmp_path,
        """
        import sys
        print("step 1 loss=0.5")
        print("step 2 loss=0.4", file=sys.stderr)
        print("step 3 loss=0.3")
        """,
    )
    job = capture([sys.executable, str(script)], store=store, echo=False).wait(60)
    assert job.status == "completed"
    assert job.returncode == 0
    assert _values(store, job.id, "loss") == [(1, 0.5), (2, 0.4), (3, 0.3)]
    assert capfd.readouterr() == ("", "")  # echo=False


def test_lines_reach_the_store_and_subscribers_while_the_command_runs(tmp_path: Path, store: acc.RunStore) -> None:
    start, gate = tmp_path / "start", tmp_path / "go"
    script = _script(
        tmp_path,
        f"""
        import os, time
        def wait(path):
            while not os.path.exists(path):
                time.sleep(0.01)
        wait({str(start)!r})
        print("step 1 loss=0.9 lr=0.1")
        wait({str(gate)!r})
        print("step 2 loss=0.8 lr=0.1")
        """,
    )
    fetched: list[int] = []
    job = capture([sys.executable, str(script)], store=store, echo=False)
    handle = job.on(Event.METRICS_FETCHED, lambda state: fetched.extend(i["step"] for i in state.fetched))
    start.touch()
    store_reader = acc.RunStore(store.root)
    try:
        _wait_for(lambda: _values(store_reader, job.id, "loss") == [(1, 0.9)])  # before the script ends
        assert not job.done()
        assert job.state.last_info is not None
        assert job.state.last_info["losses"] == {"loss": 0.9}
        assert job.state.last_info["lr"] == 0.1
        gate.touch()
        job.wait(60)
    finally:
        store_reader.close()
    handle.remove()
    assert fetched == [1, 2]
    assert job.status == "completed"


def test_stop_ends_a_running_command_as_stopped(tmp_path: Path, store: acc.RunStore) -> None:
    script = _script(
        tmp_path,
        """
        import time
        step = 0
        while True:
            step += 1
            print(f"step {step} loss={1 / step:.4f}", flush=True)
            time.sleep(0.01)
        """,
    )
    job = capture([sys.executable, str(script)], store=store, echo=False)
    _wait_for(lambda: job.step >= 5)
    with pytest.raises(RuntimeError, match="hand-fed"):
        job.close()
    job.stop(timeout=30)
    assert job.status == "stopped"
    assert store.job(job.id).status is JobStatus.STOPPED
    assert store.job(job.id).reason == "stopped by the user"
    assert len(_values(store, job.id, "loss")) >= 5


def test_a_command_that_does_not_exist_raises_and_records_nothing(store: acc.RunStore) -> None:
    with pytest.raises(FileNotFoundError, match="no-such-trainer"):
        capture(["no-such-trainer", "--lr", "1"], store=store)
    assert store.jobs() == []


def test_reading_a_pipe_survives_binary_and_a_megabyte_line(store: acc.RunStore) -> None:
    read_fd, write_fd = os.pipe()
    reader = os.fdopen(read_fd, "rb")
    job = capture(reader, store=store, echo=False, name="piped")

    def write() -> None:
        with os.fdopen(write_fd, "wb") as w:
            w.write(b"step 1 loss=0.5\n")
            w.write(bytes(range(256)) * 64 + b"\n")  # binary
            w.write(b"loss=1 " * 200_000 + b"\n")  # 1.4 MB on one line
            w.write(b"step 2 loss=0.25\n")

    writer = threading.Thread(target=write)
    writer.start()
    job.wait(60)
    writer.join()
    reader.close()
    assert job.status == "completed"
    assert _values(store, job.id, "loss") == [(1, 0.5), (2, 0.25)]
    assert job.stats.too_long == 1
    assert job.stats.binary >= 1
    assert store.job(job.id).config["capture"]["stats"]["too_long"] == 1


def test_an_in_memory_stream_is_read_to_its_end(store: acc.RunStore) -> None:
    job = capture(io.StringIO("{'loss': 0.3, 'epoch': 1.0}\n{'loss': 0.2, 'epoch': 2.0}"), store=store, echo=False)
    job.wait(30)
    assert _values(store, job.id, "loss") == [(1, 0.3), (2, 0.2)]
    assert _values(store, job.id, "epoch") == [(1, 1.0), (2, 2.0)]


def test_following_a_file_survives_rotation_and_truncation(tmp_path: Path, store: acc.RunStore) -> None:
    log = tmp_path / "train.log"
    log.write_text("step 1 loss=1.0\n")
    job = follow(log, store=store, poll_interval=0.01)
    try:
        _wait_for(lambda: job.step == 1)
        with log.open("a") as f:
            f.write("step 2 loss=0.9\nstep 3 loss=0.8\n")
        _wait_for(lambda: job.step == 3)
        # rotation: the old file is renamed (and written to a last time), a new one is created
        rotated = tmp_path / "train.log.1"
        log.rename(rotated)
        with rotated.open("a") as f:
            f.write("step 4 loss=0.7\n")
        log.write_text("step 5 loss=0.6\n")
        _wait_for(lambda: job.step == 5)
        # truncation (copytruncate): the file starts again from nothing
        time.sleep(0.05)
        log.write_text("")
        _wait_for(lambda: job.parser.stats.lines >= 5 and log.stat().st_size == 0)
        time.sleep(0.1)  # let the follower see the shorter file
        with log.open("a") as f:
            f.write("step 6 loss=0.5\n")
        _wait_for(lambda: job.step == 6)
    finally:
        job.stop(timeout=30)
    assert job.status == "stopped"
    assert _values(store, job.id, "loss") == [(1, 1.0), (2, 0.9), (3, 0.8), (4, 0.7), (5, 0.6), (6, 0.5)]


def test_following_ends_completed_after_idle_timeout_and_keeps_a_last_partial_line(
    tmp_path: Path, store: acc.RunStore
) -> None:
    log = tmp_path / "old.log"
    log.write_text("{'loss': 0.9, 'epoch': 0.5}\n{'loss': 0.8, 'epoch': 1.0}")  # no final newline
    job = follow(log, store=store, idle_timeout=0.3, poll_interval=0.01).wait(30)
    assert job.status == "completed"
    assert store.job(job.id).reason == "no new lines for 0.3 s"
    assert [v for _, v in _values(store, job.id, "loss")] == [0.9, 0.8]


def test_following_from_the_end_skips_what_is_there(tmp_path: Path, store: acc.RunStore) -> None:
    log = tmp_path / "train.log"
    log.write_text("step 1 loss=1.0\n")
    with follow(log, store=store, from_start=False, poll_interval=0.01) as job:
        time.sleep(0.1)
        with log.open("a") as f:
            f.write("step 2 loss=0.5\n")
        _wait_for(lambda: job.step == 2)
    assert job.status == "stopped"
    assert _values(store, job.id, "loss") == [(2, 0.5)]


def test_following_a_missing_file_raises_unless_asked_to_wait(tmp_path: Path, store: acc.RunStore) -> None:
    log = tmp_path / "later.log"
    with pytest.raises(FileNotFoundError, match=r"later\.log"):
        follow(log, store=store)
    job = follow(log, store=store, wait_for_file=True, poll_interval=0.01)
    try:
        time.sleep(0.05)
        log.write_text("loss=0.5\n")
        _wait_for(lambda: job.step == 1)
    finally:
        job.stop(timeout=30)


def test_a_hand_fed_capture_with_declared_task_types(store: acc.RunStore) -> None:
    cap = LogCapture("fed", store=store, tasks={"val_loss": "classification"})
    cap.feed("step 1 | train_loss 0.9 | val_loss 2.5\n")
    cap.feed(b"step 2 | train_loss 0.5 | val_")  # a partial line waits for its end
    cap.feed("loss 0.3\nstep 3 | lr 0.001\n")
    cap.close()
    assert cap.status == "completed"
    summary = cap.loss_summary()
    assert summary["eval_loss"].task_type == "classification"  # declared under its printed name
    assert summary["eval_loss"].health is LossHealth.HEALTHY  # 0.3 < 0.5
    assert summary["loss"].task_type == "custom"
    assert _values(store, cap.id, "loss/eval_loss") == [(1, 2.5), (2, 0.3)]
    # step 3 has only a learning rate: no total loss is invented for it
    assert _values(store, cap.id, "loss") == [(1, 0.9), (2, 0.5)]
    assert _values(store, cap.id, "learning_rate") == [(3, 0.001)]
    with pytest.raises(RuntimeError, match="ended"):
        cap.feed("step 4 loss=1\n")


def test_a_line_with_only_an_eval_loss_writes_no_total(store: acc.RunStore) -> None:
    cap = LogCapture("eval-only", store=store)
    infos: list[dict[str, Any]] = []
    cap.on(Event.METRICS_FETCHED, lambda state: infos.extend(state.fetched))
    cap.feed("{'eval_loss': 0.7, 'epoch': 1.0}\n")
    cap.close()
    assert "loss" not in store.metric_names(cap.id)
    assert infos[0]["loss"] is None
    assert infos[0]["losses"] == {"eval_loss": 0.7}


def test_recorder_takes_steps_without_losses_but_not_empty_ones(store: acc.RunStore) -> None:
    rec = acc.Recorder(store=store, name="r", fetch_every=1)
    with rec:
        infos = rec.record(1, {}, lr=0.1)
        assert infos is not None
        assert infos[0]["loss"] is None
        rec.record(2, {"recon": 0.5}, log_total=False)
        with pytest.raises(ValueError, match="at least one value"):
            rec.record(3, {})
    assert store.metric_names(rec.job_id or 0) == ["learning_rate", "loss/recon"]


def test_the_capture_job_is_in_history_like_any_job(store: acc.RunStore) -> None:
    cap = LogCapture("history", store=store)
    cap.feed("step 1 loss=0.5\n")
    cap.close()
    jobs = store.jobs()
    assert [(j.id, j.kind, j.status.value) for j in jobs] == [(cap.id, "capture", "completed")]
    assert jobs[0].summary is not None
    assert jobs[0].summary["loss"]["final"] == 0.5
    assert "LogCapture(id=" in repr(cap)


def test_a_hand_fed_capture_as_a_context_manager(store: acc.RunStore) -> None:
    with LogCapture("ctx", store=store) as cap:
        cap.feed("step 1 loss=0.5\n")
    assert cap.status == "completed"
    failing = LogCapture("ctx-fail", store=store)

    def fail_inside() -> None:
        with failing:
            failing.feed("step 1 loss=0.5\n")
            raise ValueError("bad batch")

    with pytest.raises(ValueError, match="bad batch"):
        fail_inside()
    assert failing.status == "failed"
    assert store.job(failing.id).reason == "ValueError: bad batch"
