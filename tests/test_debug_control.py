"""DebugController on a real Trainer: pause, step exactly N, resume, stop, the state a widget shows,
the cost of a free-running loop, and a stress test of random commands from another thread."""

from __future__ import annotations

import gc
import random
import threading
import time
import weakref
from typing import Any

import pytest
import torch
from conftest import two_task_trainer, wait_until
from torch.utils.data import DataLoader

import acc
from acc import Event


def trainer_with(
    loader: DataLoader, store: acc.RunStore, dbg: acc.DebugController | None, **kwargs: Any
) -> acc.Trainer:
    kwargs.setdefault("monitors", None)  # only the controller under test
    return two_task_trainer(loader, store, debug_controller=dbg, **kwargs)


def count_steps(trainer: acc.Trainer) -> list[int]:
    """Steps as the loop completes them, seen by an independent STEP_COMPLETED handler."""
    seen: list[int] = []
    trainer.on(Event.STEP_COMPLETED, lambda st: seen.append(st.step))
    return seen


def wait_paused(dbg: acc.DebugController) -> None:
    wait_until(lambda: dbg.is_paused)


def test_pause_then_step_exactly_one_batch(two_task_loader: DataLoader, store: acc.RunStore) -> None:
    dbg = acc.DebugController()
    trainer = trainer_with(two_task_loader, store, dbg)
    seen = count_steps(trainer)
    job = trainer.start(steps=100_000)
    wait_until(lambda: trainer.state.step >= 5)
    state = dbg.pause()
    assert state["paused"] is True and state["state"] == "paused" and state["reason"] == "user"
    assert state["has_batch"] is True and state["batch_step"] == state["step"] == trainer.state.step
    assert state["pending"] is None and state["job_id"] == job.id and state["loop"] == "trainer"
    assert state["foreground"] is False  # a background job
    assert state["loss"] is not None and state["loss_step"] == state["step"]  # the paused step's losses
    s = state["step"]
    time.sleep(0.2)
    assert trainer.state.step == s and seen[-1] == s  # paused means paused

    state = dbg.step()
    assert (state["step"], state["paused"], state["reason"]) == (s + 1, True, "step budget")
    batch = dbg.get_batch()
    assert batch is not None and batch["step"] == s + 1 and batch["kind"] == "tensor"
    assert batch["summary"]["shape"] == [32, 8] and batch["loss"] == pytest.approx(state["loss"])

    state = dbg.step(7)
    assert state["step"] == s + 8 and seen[-8:] == list(range(s + 1, s + 9))
    dbg.stop()
    job.wait(10)
    assert job.status == "stopped" and seen[-1] == s + 8
    final = dbg.get_state()
    assert final["state"] == "stopped" and final["job_status"] == "stopped" and final["paused"] is False
    assert final["reason"] == "stopped from the debugger"


def test_the_batch_shown_is_the_batch_of_the_step_just_taken(two_task_loader: DataLoader, store: acc.RunStore) -> None:
    dbg = acc.DebugController()
    trainer = trainer_with(two_task_loader, store, dbg)
    batches: dict[int, torch.Tensor] = {}
    trainer.on(Event.STEP_STARTED, lambda st: batches.__setitem__(st.step + 1, st.batch[0].clone()))
    dbg.pause()  # before the job: it pauses before its first step
    job = trainer.start(steps=50)
    wait_until(lambda: dbg.is_paused)
    assert dbg.get_state()["step"] == 0 and dbg.get_batch() is None
    for _ in range(4):
        dbg.step(3)
        shown = dbg.get_batch()
        assert shown is not None
        x = batches[shown["step"]]
        assert shown["step"] == trainer.state.step
        assert shown["summary"]["mean"] == pytest.approx(x.double().mean().item())
        assert shown["summary"]["min"] == pytest.approx(x.min().item())
    dbg.resume()
    job.wait(10)
    assert job.status == "completed" and dbg.get_state()["state"] == "finished"


def test_step_before_the_job_runs_n_steps_then_pauses(two_task_loader: DataLoader, store: acc.RunStore) -> None:
    dbg = acc.DebugController()
    trainer = trainer_with(two_task_loader, store, dbg)
    state = dbg.step(4)  # no job: returns at once, the command waits for the next job
    assert state["pending"] == "step" and state["state"] == "stopped" and state["job_id"] is None
    job = trainer.start(steps=30)
    wait_until(lambda: dbg.is_paused)
    assert trainer.state.step == 4 and dbg.get_state()["reason"] == "step budget"
    dbg.resume()
    job.wait(10)
    assert trainer.state.step == 30


def test_commands_right_after_start_wait_for_that_job(two_task_loader: DataLoader, store: acc.RunStore) -> None:
    """start() returns before the job's thread attaches: the next command must still find the job."""
    dbg = acc.DebugController()
    trainer = trainer_with(two_task_loader, store, dbg)
    for _ in range(10):
        job = trainer.start(steps=100_000)
        state = dbg.pause()
        assert state["paused"] and state["job_id"] == job.id
        job.stop()
    for _ in range(10):
        job = trainer.start(steps=100_000)
        state = dbg.stop()
        assert job.done() and job.status == "stopped" and state["state"] == "stopped"


def test_one_controller_steers_one_job_at_a_time(two_task_loader: DataLoader, store: acc.RunStore) -> None:
    dbg = acc.DebugController()
    first = trainer_with(two_task_loader, store, dbg)
    second = trainer_with(two_task_loader, store, dbg)
    job1 = first.start(steps=100_000)
    s = dbg.pause()["step"]
    job2 = second.start(steps=10)
    with pytest.raises(RuntimeError, match="already steers a running trainer loop"):
        job2.wait(10)
    state = dbg.get_state()
    assert state["paused"] and state["job_id"] == job1.id and state["step"] == s
    assert dbg.step(2)["step"] == s + 2  # the first job is still under control
    dbg.stop()
    assert job1.wait(10).status == "stopped"


def test_resume_before_the_job_cancels_a_pending_pause(two_task_loader: DataLoader, store: acc.RunStore) -> None:
    dbg = acc.DebugController()
    dbg.pause()
    dbg.resume()
    assert dbg.get_state()["pending"] is None
    job = trainer_with(two_task_loader, store, dbg).fit(steps=20)
    assert job.status == "completed"


def test_stop_wins_over_pause_and_a_paused_loop_stops_at_once(two_task_loader: DataLoader, store: acc.RunStore) -> None:
    dbg = acc.DebugController()
    trainer = trainer_with(two_task_loader, store, dbg)
    job = trainer.start(steps=100_000)
    dbg.pause()
    s = trainer.state.step
    started = time.perf_counter()
    trainer.stop(timeout=5)  # the Trainer's own stop wakes the controller too
    elapsed = time.perf_counter() - started
    assert job.done() and job.status == "stopped" and trainer.state.step == s
    state = dbg.get_state()
    assert state["state"] == "stopped" and not state["paused"]
    assert elapsed < 5  # bounded by the wait; the 100 ms figure is measured in benchmarks/bench_debug.py


def test_a_pause_and_a_stop_together_end_stopped(two_task_loader: DataLoader, store: acc.RunStore) -> None:
    dbg = acc.DebugController()
    trainer = trainer_with(two_task_loader, store, dbg)
    gate = threading.Event()
    trainer.on(Event.STEP_STARTED, lambda st: gate.wait(10) if st.step == 3 else None)
    job = trainer.start(steps=100)
    wait_until(lambda: trainer.state.step == 3)
    dbg.pause(wait=False)
    dbg.stop(wait=False)
    gate.set()
    job.wait(10)
    assert job.status == "stopped" and trainer.state.step == 4  # the step in progress ends, then stop
    assert dbg.get_state()["state"] == "stopped"


def test_checkpoints_can_be_saved_while_paused(two_task_loader: DataLoader, store: acc.RunStore) -> None:
    dbg = acc.DebugController()
    trainer = trainer_with(two_task_loader, store, dbg)
    job = trainer.start(steps=100_000)
    dbg.pause()
    ckpt = trainer.save_checkpoint("while-paused", timeout=10)
    assert ckpt.step == trainer.state.step and dbg.is_paused
    dbg.stop()
    assert job.wait(10).status == "stopped"


def test_commands_return_at_once_without_wait_and_show_pending(
    two_task_loader: DataLoader, store: acc.RunStore
) -> None:
    dbg = acc.DebugController()
    trainer = trainer_with(two_task_loader, store, dbg)
    gate = threading.Event()
    trainer.on(Event.STEP_STARTED, lambda st: gate.wait(10) if st.step == 2 else None)
    job = trainer.start(steps=100)
    wait_until(lambda: trainer.state.step == 2)
    state = dbg.pause(wait=False)  # the loop is stuck inside step 3: the pause is not acknowledged yet
    assert state["state"] == "pausing" and state["pending"] == "pause" and not state["paused"]
    gate.set()
    wait_until(lambda: dbg.is_paused)
    state = dbg.get_state()
    assert state["pending"] is None and state["state"] == "paused"
    stepping = dbg.step(1000, wait=False)
    assert stepping["pending"] == "step" or stepping["state"] == "running"
    wait_until(lambda: (dbg.get_state()["steps_left"] or 0) > 0)
    dbg.stop()
    job.wait(10)


def test_a_free_running_loop_never_calls_the_controller(two_task_loader: DataLoader, store: acc.RunStore) -> None:
    dbg = acc.DebugController()
    calls: list[int] = []
    original = dbg._pause_point

    def spy(trainer: acc.Trainer) -> bool:
        calls.append(trainer.state.step)
        return original(trainer)

    dbg._pause_point = spy  # type: ignore[method-assign]
    trainer = trainer_with(two_task_loader, store, dbg)
    opt = trainer.optimizer
    dbg.capture_step_data("ignored", torch.ones(3))
    trainer.fit(steps=40)
    assert calls == [] and not dbg.attention.is_set() and not dbg.wants_step_data
    assert dbg.list_step_data_keys() == []
    assert not opt._optimizer_step_pre_hooks and not opt._optimizer_step_post_hooks

    # engaged while paused/stepping; after resume with nothing asked it lets go again
    job = trainer.start(steps=100_000)
    dbg.pause()
    dbg.step(3)
    n = len(calls)
    dbg.resume()
    wait_until(lambda: not dbg.wants_step_data)
    after = len(calls)
    time.sleep(0.1)
    assert len(calls) == after and after <= n + 2  # free again: no more calls
    dbg.stop()
    job.wait(10)


def test_the_controller_serves_the_next_job_and_is_collectable(
    two_task_loader: DataLoader, store: acc.RunStore
) -> None:
    dbg = acc.DebugController()
    trainer = trainer_with(two_task_loader, store, dbg)
    dbg.step(2)
    job1 = trainer.start(steps=10)
    wait_paused(dbg)
    dbg.resume()
    job1.wait(10)
    job2 = trainer.start(steps=5)  # a new job continues from step 10
    job2.wait(10)
    assert trainer.state.step == 15 and dbg.get_state()["job_id"] == job2.id
    refs = [weakref.ref(trainer), weakref.ref(trainer.model), weakref.ref(dbg)]
    del trainer, job1, job2, dbg
    gc.collect()
    assert [r() for r in refs] == [None, None, None]


@pytest.mark.timeout(120)
def test_stress_random_commands_from_another_thread(two_task_loader: DataLoader, store: acc.RunStore) -> None:
    """Thousands of random pause/step/resume/stop commands while a real model trains: no deadlock,
    and the steps taken are exactly what the commands allow."""
    dbg = acc.DebugController()
    trainer = trainer_with(two_task_loader, store, dbg, fetch_every=7)
    seen = count_steps(trainer)
    job = trainer.start(steps=1_000_000)
    rng = random.Random(0)
    n_commands = exact_checks = jobs = 0
    for _ in range(60):
        # a burst of fire-and-forget commands, as fast as a UI could send them
        stopped = False
        for _ in range(50):
            kind = rng.choices(["pause", "step", "resume", "state", "stop"], weights=[4, 4, 4, 2, 0.1])[0]
            if kind == "pause":
                dbg.pause(wait=False)
            elif kind == "step":
                dbg.step(rng.randint(1, 3), wait=False)
            elif kind == "resume":
                dbg.resume(wait=False)
            elif kind == "stop":
                dbg.stop(wait=False)
                stopped = True
            else:
                dbg.get_state()
            n_commands += 1
        if stopped:  # the job ends and takes no more steps; a new one continues the count
            job.wait(20)
            assert job.status == "stopped" and dbg.get_state()["state"] == "stopped"
            s = trainer.state.step
            time.sleep(0.02)
            assert trainer.state.step == s
            job = trainer.start(steps=1_000_000)
            jobs += 1
        # then a synchronous check of exact accounting
        state = dbg.pause(timeout=20)
        assert state["paused"], state
        s = state["step"]
        assert trainer.state.step == s == (seen[-1] if seen else 0)  # 0: paused before the first step
        time.sleep(0.01)
        assert trainer.state.step == s  # paused holds
        n = rng.randint(1, 4)
        state = dbg.step(n, timeout=20)
        assert state["paused"] and state["step"] == s + n and seen[-n:] == list(range(s + 1, s + n + 1))
        assert dbg.get_batch()["step"] == s + n  # type: ignore[index]
        exact_checks += 1
        n_commands += 2
        if rng.random() < 0.5:
            dbg.resume(wait=False)
            n_commands += 1
    assert n_commands >= 3000 and exact_checks == 60 and jobs >= 1
    assert seen == list(range(1, len(seen) + 1))  # every step counted once, in order, across the jobs
    dbg.stop(timeout=20)
    job.wait(20)
    final = trainer.state.step
    time.sleep(0.05)
    assert job.status == "stopped" and trainer.state.step == final == seen[-1]


def test_stop_from_a_thread_while_paused_in_a_foreground_fit(two_task_loader: DataLoader, store: acc.RunStore) -> None:
    dbg = acc.DebugController()
    trainer = trainer_with(two_task_loader, store, dbg)
    dbg.pause()  # the fit below pauses before its first step

    def stopper() -> None:
        wait_until(lambda: dbg.is_paused)
        assert dbg.get_state()["foreground"] is True  # the loop runs in the main thread
        dbg.step(2)
        dbg.stop(wait=False)

    t = threading.Thread(target=stopper)
    t.start()
    job = trainer.fit(steps=50)  # blocks in this thread until stopped
    t.join(10)
    assert job.status == "stopped" and trainer.state.step == 2
