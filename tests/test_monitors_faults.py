"""Faults and hand-written loops: a failing monitor never stops training; a Recorder loop gets the same monitors;
no per-step host syncs; nothing leaks."""

from __future__ import annotations

import gc
import logging
import math
import os
import sys
import weakref
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from conftest import TwoHeadNet, two_task_trainer
from torch.utils.data import DataLoader

import acc
from acc.events import Event
from acc.monitors import (
    AlertsMonitor,
    GradientMonitor,
    MonitorBase,
    StatusMonitor,
    StreamingMonitor,
    ThroughputMonitor,
    read_status,
    status_path,
)


class Boom(MonitorBase):
    """A monitor that raises at step ``at``."""

    name = "boom"

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at = at
        self.calls = 0

    def _register(self, target: Any) -> None:
        self._on(target, Event.STEP_COMPLETED, self._step)

    def _step(self, state: acc.TrainerState) -> None:
        self.calls += 1
        if state.step >= self.at:
            raise RuntimeError(f"boom at step {state.step}")

    def status_fields(self) -> dict[str, Any]:
        return {"boom_calls": self.calls}


def test_a_monitor_that_raises_is_disabled_once_and_training_goes_on(
    two_task_loader: DataLoader, store: acc.RunStore, caplog: pytest.LogCaptureFixture
) -> None:
    boom = Boom(at=5)
    trainer = two_task_trainer(two_task_loader, store, monitors=acc.monitors.default_monitors(boom))
    with caplog.at_level(logging.ERROR, logger="acc.monitors"):
        job = trainer.fit(steps=30)
    assert job.status == "completed" and trainer.state.step == 30
    assert boom.calls == 5  # its handlers were removed at the failure
    assert not boom.enabled and boom.fault is not None
    assert boom.fault.step == 5 and boom.fault.error == "RuntimeError: boom at step 5"
    assert "boom at step 5" in boom.fault.traceback
    assert sum("'boom' failed" in r.getMessage() for r in caplog.records) == 1  # logged once
    store.flush()
    events = store.events(job.id, kind="monitor_error")
    assert [(e["step"], e["payload"]["monitor"]) for e in events] == [(5, "boom")]  # stored once
    status = trainer.status()
    assert [e["monitor"] for e in status.monitor_errors] == ["boom"]  # shown in the snapshot
    assert "boom_calls" not in status.extra  # a disabled monitor contributes nothing else
    assert read_status(status_path(store.root, job.id)).monitor_errors[0]["error"] == "RuntimeError: boom at step 5"
    assert status.streaming_ce is not None  # the other monitors kept working


def test_a_default_monitor_failing_in_a_user_extractor(two_task_loader: DataLoader, store: acc.RunStore) -> None:
    def extract(outputs: Any, batch: Any) -> Any:
        raise KeyError("no such output")

    monitors = acc.monitors.default_monitors()
    monitors[1] = StreamingMonitor(extract=extract, every=5)
    trainer = two_task_trainer(two_task_loader, store, monitors=monitors)
    trainer.fit(steps=20)
    status = trainer.status()
    assert [(e["monitor"], e["step"]) for e in status.monitor_errors] == [("streaming", 5)]
    assert status.layer_summary is not None and status.samples_per_sec is not None


def test_a_failing_status_writer_is_recorded_like_any_monitor(two_task_loader: DataLoader, store: acc.RunStore) -> None:
    def unwritable(job_id: int) -> str:
        raise PermissionError("read-only run directory")

    writer = StatusMonitor(interval=0.0, path=unwritable)
    trainer = two_task_trainer(two_task_loader, store, monitors=[writer])
    job = trainer.fit(steps=10)
    assert job.status == "completed"
    assert writer.fault is not None and "read-only" in writer.fault.error
    store.flush()
    assert len(store.events(job.id, kind="monitor_error")) == 1


def test_monitors_attach_to_a_recorder_in_a_hand_written_loop(store: acc.RunStore) -> None:
    torch.manual_seed(0)
    model = TwoHeadNet()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    grads, streaming = GradientMonitor(model, every=5), StreamingMonitor(every=2)
    throughput, alerts, writer = ThroughputMonitor(), AlertsMonitor(), StatusMonitor()
    rec = acc.Recorder(tasks={"cls": "classification"}, store=store, name="loop", fetch_every=5)
    g = torch.Generator().manual_seed(0)
    with acc.monitors.attach(rec, [grads, streaming, throughput, alerts, writer]), rec:
        for step in range(1, 31):
            x, y = torch.randn(32, 8, generator=g), torch.randint(0, 3, (32,), generator=g)
            logits = model(x)["logits"]
            loss = F.cross_entropy(logits, y) * (math.nan if step == 20 else 1.0)
            opt.zero_grad()
            loss.backward()
            grads.sample(step)  # on the device; fetched with the Recorder's METRICS_FETCHED
            opt.step()
            grads.after_step()
            streaming.observe(logits, y, step=step)  # reduced at sampled steps only (every=2)
            throughput.update(num_samples=len(x), step=step)
            rec.record(step, {"cls": loss.detach()})
    assert not grads.attached  # the handle detached them all
    status = writer.snapshot()
    assert status.job_id == rec.job_id and status.step == 30 and status.status == "completed"
    assert status.layer_summary is not None and status.layer_summary["step"] == 30
    assert status.accuracy_last_20 is not None and status.samples_per_sec is not None
    assert [s.step for s in streaming._samples][:3] == [2, 4, 6]
    assert "nan_loss" in {a["code"] for a in status.active_alerts + status.resolved_alerts}
    assert read_status(status_path(store.root, rec.job_id)).step == 30  # type: ignore[arg-type]
    assert status.monitor_errors == []


def test_attach_refuses_what_is_not_a_monitor_or_a_target(store: acc.RunStore) -> None:
    rec = acc.Recorder(tasks={"cls": "classification"}, store=store)
    with pytest.raises(TypeError, match="attach"):
        acc.monitors.attach(rec, [object()])
    with pytest.raises(TypeError, match="Trainer or a Recorder"):
        AlertsMonitor().attach(object())
    with pytest.raises(TypeError, match="no model"):
        GradientMonitor().attach(rec)
    monitor = AlertsMonitor()
    monitor.attach(rec)
    with pytest.raises(RuntimeError, match="already attached"):
        monitor.attach(rec)


def test_no_host_sync_per_step_only_one_shared_transfer_per_fetch(
    two_task_loader: DataLoader, store: acc.RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Count every way a tensor value can reach Python from the monitors' code, step by step."""
    trainer = two_task_trainer(two_task_loader, store, fetch_every=10, max_fetch_interval=60)
    calls: list[tuple[int, str]] = []
    monitors_dir = f"{os.sep}acc{os.sep}monitors{os.sep}"
    for method in ("item", "cpu", "tolist", "__float__", "numpy", "__bool__"):
        original = getattr(torch.Tensor, method)

        def counting(self: torch.Tensor, *args: Any, _original: Any = original, _m: str = method, **kw: Any) -> Any:
            if monitors_dir in sys._getframe(1).f_code.co_filename:
                calls.append((trainer.state.step, _m))
            return _original(self, *args, **kw)

        monkeypatch.setattr(torch.Tensor, method, counting)
    trainer.fit(steps=50)
    monkeypatch.undo()
    transfers = [step for step, m in calls if m != "numpy"]  # .numpy() of a host copy moves nothing
    assert transfers == [10, 20, 30, 40, 50]  # one .cpu() per fetch for all monitors together, at fetch steps


def test_trainer_model_and_monitors_are_collectable_after_del(two_task_loader: DataLoader, store: acc.RunStore) -> None:
    trainer = two_task_trainer(two_task_loader, store)
    trainer.fit(steps=30)
    refs = [weakref.ref(trainer), weakref.ref(trainer.model), *(weakref.ref(m) for m in trainer.monitors)]
    del trainer
    gc.collect()
    assert [r() for r in refs] == [None] * len(refs)
