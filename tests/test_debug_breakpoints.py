"""Breakpoints on a real Trainer, and faults: exceptions in a predicate, while pausing or while paused."""

from __future__ import annotations

import ctypes
import math
import threading
from typing import Any

import pytest
import torch
from conftest import TwoHeadNet, wait_until
from torch.utils.data import DataLoader

import acc
from acc import Event


def nan_trainer(
    loader: DataLoader, store: acc.RunStore, dbg: acc.DebugController, nan_at: set[int], **kwargs: Any
) -> acc.Trainer:
    """Two tasks, "reg" and "kl"; the "kl" loss is NaN at the steps in ``nan_at`` (a real NaN, on the device;
    its gradient stays finite, so the weights survive and later steps are finite again)."""
    torch.manual_seed(0)
    model = TwoHeadNet()
    step_in_progress = [0]

    def kl(outputs: Any, batch: Any) -> torch.Tensor:
        value = outputs["logits"].pow(2).mean()
        return value + torch.tensor(math.nan) if step_in_progress[0] in nan_at else value

    tasks = {"reg": acc.tasks.Regression(output="pred", target=1), "kl": acc.Task(kl, task_type="kl")}
    kwargs.setdefault("monitors", None)
    trainer = acc.Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=1e-3),
        loader,
        tasks=tasks,
        store=store,
        debug_controller=dbg,
        **kwargs,
    )
    trainer.on(Event.STEP_STARTED, lambda st: step_in_progress.__setitem__(0, st.step + 1))
    return trainer


def test_break_on_nan_pauses_at_that_step_and_names_the_task(two_task_loader: DataLoader, store: acc.RunStore) -> None:
    dbg = acc.DebugController()
    trainer = nan_trainer(two_task_loader, store, dbg, {23, 31}, fetch_every=50)
    handle = dbg.break_on("nan")
    job = trainer.start(steps=100)
    wait_until(lambda: dbg.is_paused)
    state = dbg.get_state()
    assert state["step"] == 23 and state["reason"] == "breakpoint: nan (task 'kl' at step 23)"
    assert math.isnan(state["losses"]["kl"]) and state["health"]["kl"] == "critical"
    assert state["breakpoints"] == [{"id": handle.id, "kind": "nan", "description": "nan", "hits": 1}]
    assert dbg.get_batch()["step"] == 23  # type: ignore[index]
    dbg.resume()
    wait_until(lambda: dbg.is_paused)
    assert dbg.get_state()["step"] == 31
    dbg.remove_breakpoint(handle.id)
    assert dbg.get_state()["breakpoints"] == []
    handle.remove()  # already gone: a no-op
    with pytest.raises(KeyError, match=f"no breakpoint {handle.id}"):
        dbg.remove_breakpoint(handle.id)
    dbg.resume()
    assert job.wait(10).status == "completed"  # no breakpoint: the remaining NaN steps go by


def test_break_on_critical(store: acc.RunStore, two_task_loader: DataLoader) -> None:
    dbg = acc.DebugController()
    torch.manual_seed(0)
    model = TwoHeadNet()
    tasks = {
        "reg": acc.tasks.Regression(output="pred", target=1, thresholds=(1e-9, 2e-9)),  # critical from the start
        "cls": acc.tasks.Classification(output="logits", target=2),
    }
    trainer = acc.Trainer(
        model,
        torch.optim.Adam(model.parameters()),
        two_task_loader,
        tasks=tasks,
        store=store,
        debug_controller=dbg,
        monitors=None,
    )
    with dbg.break_on("critical"):
        job = trainer.start(steps=50)
        wait_until(lambda: dbg.is_paused)
        assert dbg.get_state()["reason"] == "breakpoint: critical (task 'reg' at step 1)"
        assert dbg.get_state()["step"] == 1
    dbg.resume()
    assert job.wait(10).status == "completed"


def test_step_every_and_predicate_breakpoints(two_task_loader: DataLoader, store: acc.RunStore) -> None:
    dbg = acc.DebugController()
    trainer = nan_trainer(two_task_loader, store, dbg, set())
    dbg.break_on(step=7)
    every = dbg.break_on(every=10)
    dbg.break_on(lambda info: info["step"] == 13 and info["losses"]["reg"] > 0)
    job = trainer.start(steps=40)
    reasons = []
    for _ in range(5):
        wait_until(lambda: dbg.is_paused or job.done())
        if job.done():
            break
        state = dbg.get_state()
        reasons.append((state["step"], state["reason"]))
        if state["step"] == 20:
            every.remove()
        dbg.resume()
    job.wait(10)
    assert reasons == [
        (7, "breakpoint: step 7"),
        (10, "breakpoint: every 10 (step 10)"),
        (13, "breakpoint: predicate test_step_every_and_predicate_breakpoints.<locals>.<lambda> (step 13)"),
        (20, "breakpoint: every 10 (step 20)"),
    ]


def test_value_breakpoints_fetch_each_step_and_step_breakpoints_do_not(
    two_task_loader: DataLoader, store: acc.RunStore
) -> None:
    dbg = acc.DebugController()
    trainer = nan_trainer(two_task_loader, store, dbg, set(), fetch_every=50)
    with dbg.break_on(step=10_000):
        trainer.fit(steps=30)
    assert trainer.recorder is not None and trainer.recorder.n_fetches == 1  # only the final one
    with dbg.break_on(lambda info: False):
        trainer.fit(steps=30)
    assert trainer.recorder.n_fetches >= 30


def test_a_failing_predicate_fails_the_job_and_the_state_says_so(
    two_task_loader: DataLoader, store: acc.RunStore
) -> None:
    dbg = acc.DebugController()
    trainer = nan_trainer(two_task_loader, store, dbg, set())
    dbg.break_on(lambda info: info["losses"]["missing"] > 1)
    job = trainer.start(steps=50)
    with pytest.raises(acc.BreakpointError, match="raised KeyError: 'missing' at step 1"):
        job.wait(10)
    state = dbg.get_state()
    assert job.status == "failed" and state["job_status"] == "failed" and state["state"] == "stopped"
    assert state["error"].startswith("BreakpointError: breakpoint predicate") and state["reason"].startswith("failed: ")
    assert store.job(job.id).status.value == "failed"


def test_an_exception_while_pausing_fails_the_job_cleanly(two_task_loader: DataLoader, store: acc.RunStore) -> None:
    dbg = acc.DebugController()
    trainer = nan_trainer(two_task_loader, store, dbg, set(), fetch_every=1000)

    def handler(state: acc.TrainerState) -> None:
        if state.fetched and state.fetched[-1]["step"] == 5:  # the pause's own fetch
            raise RuntimeError("a METRICS_FETCHED handler broke")

    trainer.on(Event.METRICS_FETCHED, handler)
    dbg.break_on(step=5)
    job = trainer.start(steps=50)
    with pytest.raises(RuntimeError, match="handler broke"):
        job.wait(10)
    state = dbg.get_state()
    assert (state["state"], state["job_status"], state["paused"]) == ("stopped", "failed", False)
    assert state["error"] == "RuntimeError: a METRICS_FETCHED handler broke"


def _raise_in_thread(thread: threading.Thread, exc: type[BaseException]) -> None:
    """Deliver ``exc`` into a running thread, as an interrupt would (CPython's async exception)."""
    assert thread.ident is not None
    n = ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(exc))
    assert n == 1


@pytest.mark.parametrize(
    ("exc", "status", "error"),
    [(RuntimeError, "failed", "RuntimeError: "), (KeyboardInterrupt, "stopped", None)],
)
def test_an_exception_while_paused_ends_the_job_cleanly(
    two_task_loader: DataLoader, store: acc.RunStore, exc: type[BaseException], status: str, error: str | None
) -> None:
    dbg = acc.DebugController()
    trainer = nan_trainer(two_task_loader, store, dbg, set())
    dbg.pause()
    job = trainer.start(steps=50)
    wait_until(lambda: dbg.is_paused)
    dbg.step(3)
    assert job._thread is not None
    _raise_in_thread(job._thread, exc)
    with pytest.raises(exc):
        job.wait(10)
    state = dbg.get_state()
    assert job.status == status and state["job_status"] == status and state["state"] == "stopped"
    assert not state["paused"] and state["step"] == 3 and state["error"] == error
    if exc is KeyboardInterrupt:
        assert state["reason"] == "interrupted by the user (KeyboardInterrupt)"
    # the controller serves the next job as if nothing happened
    job2 = trainer.start(steps=5)
    assert job2.wait(10).status == "completed" and dbg.get_state()["state"] == "finished"


def test_a_failing_request_while_paused_goes_to_the_caller_and_the_loop_stays_paused(
    two_task_loader: DataLoader, store: acc.RunStore
) -> None:
    dbg = acc.DebugController()
    trainer = nan_trainer(two_task_loader, store, dbg, set())
    job = trainer.start(steps=500)
    dbg.pause()
    first = trainer.save_checkpoint("first", timeout=10)
    trainer.checkpoints.path_of(first.id).unlink()  # someone deletes it: the next save has no parent
    with pytest.raises(acc.CheckpointError, match="does not exist"):
        trainer.save_checkpoint("second", timeout=10)
    assert dbg.is_paused and not job.done() and dbg.get_state()["state"] == "paused"
    dbg.stop()
    assert job.wait(10).status == "stopped"


def test_an_exception_in_a_stepped_batch_fails_the_job(two_task_loader: DataLoader, store: acc.RunStore) -> None:
    dbg = acc.DebugController()
    trainer = nan_trainer(two_task_loader, store, dbg, set())

    def explode(state: acc.TrainerState) -> None:
        if state.step == 4:
            raise ValueError("step 4 went wrong")

    trainer.on(Event.STEP_COMPLETED, explode)
    dbg.pause()
    job = trainer.start(steps=50)
    wait_until(lambda: dbg.is_paused)
    state = dbg.step(10, timeout=10)  # returns when the job ends, not after a timeout
    assert state["job_status"] == "failed" and state["step"] == 4 and "step 4 went wrong" in state["error"]
    with pytest.raises(ValueError, match="step 4"):
        job.wait(1)
