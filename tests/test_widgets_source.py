"""as_source: one interface over a Trainer, Job, Recorder, log capture, stored job id and RunStore."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from conftest import two_task_trainer
from torch.utils.data import DataLoader

import acc
from acc.widgets import as_source
from acc.widgets._source import (
    JobSource,
    LiveSource,
    RecorderSource,
    StoredSource,
    TrainerSource,
    run_state_of_status,
)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (None, "idle"),
        ("idle", "idle"),
        ("running", "running"),
        ("completed", "finished"),
        ("stopped", "stopped"),
        ("failed", "stopped"),
        ("interrupted", "stopped"),
    ],
)
def test_run_state_of_status(status: str | None, expected: str) -> None:
    assert run_state_of_status(status) == expected


def test_a_trainer_source_follows_the_trainer_from_idle_to_finished(
    two_task_loader: DataLoader[Any], store: acc.RunStore
) -> None:
    trainer = two_task_trainer(two_task_loader, store, fetch_every=5)
    source = as_source(trainer)
    assert isinstance(source, TrainerSource)
    assert (source.run_state(), source.job_id, source.state.step) == ("idle", None, 0)
    assert source.store is store and source.trainer is trainer and source.checkpoints is trainer.checkpoints
    assert set(source.task_specs()) == {"reg", "cls"}
    fetched = threading.Event()
    with source.on(acc.Event.METRICS_FETCHED, lambda state: fetched.set()):
        job = trainer.start(steps=20)
        job.wait()
    assert fetched.is_set()
    assert source.job_id == job.id
    assert source.run_state() == "finished"
    assert set(source.loss_summary()) == {"reg", "cls"}
    assert source.name == trainer.name


def test_a_stopped_and_a_failed_job_read_stopped(two_task_loader: DataLoader[Any], store: acc.RunStore) -> None:
    trainer = two_task_trainer(two_task_loader, store)
    gate = threading.Event()
    trainer.on(acc.Event.STEP_COMPLETED, lambda state: gate.wait(5) if state.step == 3 else None)
    job = trainer.start(steps=1000)
    source = as_source(job)
    assert source.run_state() == "running"
    trainer.stop(wait=False)
    gate.set()
    job.wait()
    assert source.run_state() == "stopped"

    def broken(outputs: Any, batch: Any) -> Any:
        raise RuntimeError("a task that fails")

    failing = acc.Trainer(trainer.model, trainer.optimizer, two_task_loader, tasks={"bad": broken}, store=store)
    failed = failing.start(steps=5)
    with pytest.raises(acc.TaskError, match="a task that fails"):
        failed.wait()
    assert as_source(failing).run_state() == "stopped"
    assert as_source(failed.id, store=store).run_state() == "stopped"


def test_a_job_source_ignores_the_trainers_later_jobs(two_task_loader: DataLoader[Any], store: acc.RunStore) -> None:
    trainer = two_task_trainer(two_task_loader, store, fetch_every=5)
    first = trainer.start(steps=10)
    first.wait()
    source = as_source(first)
    assert isinstance(source, JobSource) and source.job_id == first.id and not source.is_live
    seen: list[int | None] = []
    with source.on(acc.Event.METRICS_FETCHED, lambda state: seen.append(state.job_id)):
        trainer.start(steps=10).wait()
    assert seen == []
    assert source.run_state() == "finished"
    assert source.loss_summary()["reg"].n_steps == 10


def test_a_recorder_source_for_a_hand_written_loop(store: acc.RunStore) -> None:
    rec = acc.Recorder(tasks={"recon": "reconstruction"}, store=store, fetch_every=2)
    source = as_source(rec)
    assert isinstance(source, RecorderSource)
    assert (source.run_state(), source.job_id, source.trainer, source.checkpoints) == ("idle", None, None, None)
    seen: list[int] = []
    source.on(acc.Event.METRICS_FETCHED, lambda state: seen.append(state.step))
    with rec:
        for step in range(1, 7):
            rec.record(step, {"recon": 0.5 / step})
            assert source.run_state() == "running"
    assert seen == [2, 4, 6]
    assert source.run_state() == "finished" and not source.is_live
    assert source.loss_summary()["recon"].n_steps == 6


def test_anything_with_a_recorder_is_a_source(store: acc.RunStore) -> None:
    class Capture:  # what a log capture looks like to the widgets
        def __init__(self) -> None:
            self.recorder = acc.Recorder(tasks={"loss": "regression"}, store=store)

    capture = Capture()
    source = as_source(capture)
    assert isinstance(source, RecorderSource) and source.owner is capture


def test_stored_sources_read_the_store_and_are_not_live(store: acc.RunStore) -> None:
    assert as_source(store).job_id is None  # an empty store
    job_id = store.create_job("old", config={"tasks": {"recon": {"task_type": "reconstruction"}}})
    store.log_points(job_id, [("loss/recon", 1, 0.01, 0.0)])
    store.finish_job(job_id, "completed", last_step=1)
    store.flush()
    for source in (as_source(job_id, store=store), as_source(store.job(job_id), store=store), as_source(store)):
        assert isinstance(source, StoredSource)
        assert source.job_id == job_id and source.state is None and not source.is_live
        assert source.run_state() == "finished"
        assert source.loss_summary()["recon"].health is acc.LossHealth.HEALTHY
        assert source.task_specs() == {"recon": {"task_type": "reconstruction"}}
        handle = source.on(acc.Event.METRICS_FETCHED, lambda state: None)
        handle.remove()
    assert as_source(source) is source


def test_a_stored_source_finds_the_checkpoints_folder(two_task_loader: DataLoader[Any], store: acc.RunStore) -> None:
    trainer = two_task_trainer(two_task_loader, store)
    trainer.start(steps=3).wait()
    trainer.save_checkpoint("end")
    source = as_source(trainer.job.id if trainer.job else None, store=store)
    assert source.checkpoints is not None and [c.name for c in source.checkpoints.list()] == ["end"]


@pytest.mark.parametrize("bad", ["a string", 3.5, True, object(), None])
def test_things_that_are_not_sources_are_refused(bad: Any) -> None:
    with pytest.raises(TypeError, match="a widget needs"):
        as_source(bad)


def test_a_missing_job_and_a_conflicting_store_are_refused(
    two_task_loader: DataLoader[Any], store: acc.RunStore, tmp_path: Any
) -> None:
    with pytest.raises(KeyError, match="no job 42"):
        as_source(42, store=store)
    other = acc.RunStore(tmp_path / "other")
    with pytest.raises(ValueError, match="store= applies to stored jobs only"):
        as_source(two_task_trainer(two_task_loader, store), store=other)
    other.close()


def test_unknown_events_raise_even_when_nothing_is_live(store: acc.RunStore) -> None:
    source: LiveSource = as_source(store)
    with pytest.raises(ValueError, match="not_an_event"):
        source.on("not_an_event", lambda state: None)
