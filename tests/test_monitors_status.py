"""The status snapshot: fields, strict JSON, the atomic throttled file (read while written), another thread."""

from __future__ import annotations

import json
import math
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import two_task_trainer
from torch.utils.data import DataLoader

import acc
from acc.monitors import StatusMonitor, TrainingStatus, read_status, status_path

SEED_FIELDS = [
    "streaming_ce",
    "loss_variance",
    "token_entropy",
    "loss_trend",
    "active_alerts",
    "alert_summary",
    "tokens_per_sec",
    "tokens_per_sec_avg",
    "throughput_trend",
    "lora_stats",
    "lora_summary",
    "accuracy_last_20",
    "accuracy_last_50",
    "accuracy_trend",
    "fixed_eval_ce",
    "fixed_eval_em",
    "fixed_eval_ece",
    "fixed_eval_trend",
    "eta_seconds",
    "layer_summary",
    "layer_stats",
]


class FakeClock:
    def __init__(self, step: float = 0.0) -> None:
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_the_snapshot_has_the_seed_fields_and_round_trips_as_strict_json() -> None:
    status = TrainingStatus(job_id=3, step=10, loss=math.nan, streaming_ce=math.inf, extra={"mine": 1})
    names = set(status.to_dict())
    assert set(SEED_FIELDS) <= names
    text = status.to_json()
    data = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    assert data["loss"] is None and data["streaming_ce"] is None  # NaN/Inf -> null
    back = TrainingStatus.from_dict(data)
    assert back.job_id == 3 and back.step == 10 and back.extra == {"mine": 1}
    assert TrainingStatus.from_dict({"unknown_key": 5}).extra == {"unknown_key": 5}


def test_trainer_status_and_the_file_after_a_run(two_task_loader: DataLoader, store: acc.RunStore) -> None:
    trainer = two_task_trainer(two_task_loader, store, fetch_every=10)
    job = trainer.fit(steps=40)
    status = trainer.status()
    assert status.job_id == job.id and status.status == "completed" and status.step == 40
    assert status.monitors == ["gradients", "streaming", "throughput", "alerts", "status"]
    assert status.layer_summary is not None and status.layer_summary["text"] == "3/3 layers active"
    assert status.samples_per_sec is not None and status.samples_per_sec > 0
    assert status.streaming_ce is not None and status.accuracy_last_20 is not None
    assert status.monitor_errors == []
    path = status_path(store.root, job.id)
    assert path == store.root / "jobs" / str(job.id) / "status.json"
    on_disk = read_status(path)  # the final write at the job's end
    assert on_disk.status == "completed" and on_disk.step == 40
    assert on_disk.layer_summary == json.loads(json.dumps(status.layer_summary))
    json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    assert not [p for p in path.parent.iterdir() if p.name != "status.json"]  # no temporary files left


@pytest.mark.parametrize(("clock_step", "expected_requests"), [(0.0, 2), (100.0, 2 + 4)])
def test_writes_are_throttled(
    two_task_loader: DataLoader, store: acc.RunStore, clock_step: float, expected_requests: int
) -> None:
    """At the start, at fetches `interval` apart, at the end: never per step."""
    writer = StatusMonitor(interval=10.0, clock=FakeClock(clock_step))
    trainer = two_task_trainer(two_task_loader, store, fetch_every=10, max_fetch_interval=60, monitors=[writer])
    trainer.fit(steps=40)  # 4 fetches
    assert writer.requests == expected_requests
    assert 1 <= writer.writes <= expected_requests  # requests during a write merge into one
    assert writer._thread is None  # the writer thread ended with the job


def test_a_reader_never_sees_a_partial_file(two_task_loader: DataLoader, store: acc.RunStore) -> None:
    """A real reader thread polls the file while training writes it at every fetch."""
    writer = StatusMonitor(interval=0.0)

    def slow_forward(model: torch.nn.Module, batch: Any) -> Any:
        time.sleep(0.002)  # lets the writer and the reader threads run on a busy machine
        return model(batch[0])

    trainer = two_task_trainer(two_task_loader, store, fetch_every=1, monitors=[writer], forward=slow_forward)
    job = trainer.start(steps=150)
    path = status_path(store.root, job.id)
    reads, errors = [0], []

    def read() -> None:
        while not job.done():
            if path.exists():
                try:
                    read_status(path)
                    reads[0] += 1
                except (json.JSONDecodeError, FileNotFoundError) as exc:  # would mean a torn write
                    errors.append(exc)
            time.sleep(0.0005)  # leave the GIL to the training thread now and then

    reader = threading.Thread(target=read)
    reader.start()
    job.wait(60)
    reader.join(10)
    assert errors == []
    assert reads[0] > 0 and writer.writes > 2
    assert read_status(path).step == 150


def test_status_from_another_thread_while_training(two_task_loader: DataLoader, store: acc.RunStore) -> None:
    trainer = two_task_trainer(two_task_loader, store, fetch_every=5)
    job = trainer.start(steps=200)
    seen: list[int] = []
    while not job.done():
        status = trainer.status()
        json.loads(status.to_json())  # serialisable at any moment
        seen.append(status.step)
        time.sleep(0.001)
    job.wait(60)
    assert seen == sorted(seen)
    assert trainer.status().step == 200


def test_custom_path_and_snapshot_errors(tmp_path: Path, store: acc.RunStore, two_task_loader: DataLoader) -> None:
    with pytest.raises(RuntimeError, match="attached"):
        StatusMonitor().snapshot()
    with pytest.raises(ValueError, match="interval"):
        StatusMonitor(interval=-1)
    writer = StatusMonitor(path=lambda job_id: tmp_path / f"run-{job_id}.json")
    trainer = two_task_trainer(two_task_loader, store, monitors=[writer])
    job = trainer.fit(steps=3)
    assert read_status(tmp_path / f"run-{job.id}.json").step == 3
