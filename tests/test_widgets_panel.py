"""LossHealthPanel, kernel side: traits after real training runs, commands as the browser sends them, errors."""

from __future__ import annotations

import gc
import json
import math
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from conftest import make_regression_data, two_task_trainer, wait_until
from torch.utils.data import DataLoader, TensorDataset

import acc
from acc.widgets import LossHealthPanel
from acc.widgets._binary import from_f32_bytes
from acc.widgets._pump import UpdatePump

SYNCED = (
    "job", "run_state", "step", "max_steps", "loss", "health", "summary", "sparklines", "log", "history",
    "checkpoints", "viewing", "error",
)  # fmt: skip


@pytest.fixture
def pump() -> Iterator[UpdatePump]:
    p = UpdatePump(max_hz=10)
    yield p
    p.close()


def shown(panel: LossHealthPanel) -> dict[str, Any]:
    """What the browser would get: the synced state, which must be strict JSON (no NaN)."""
    state = panel.get_state()
    json.dumps({k: v for k, v in state.items() if k != "sparklines"}, allow_nan=False)
    return {k: state[k] for k in SYNCED}


def test_after_a_real_run_the_panel_shows_the_whole_job(
    two_task_loader: DataLoader[Any], store: acc.RunStore, pump: UpdatePump
) -> None:
    trainer = two_task_trainer(two_task_loader, store, fetch_every=5)
    panel = LossHealthPanel(trainer, pump=pump, log_every=10)
    assert (panel.run_state, panel.step, panel.summary, panel.history, panel.job) == ("idle", 0, [], [], {})
    job = trainer.start(steps=60)
    job.wait()  # JOB_ENDED flushes the pump before wait() returns: no sleep needed
    state = shown(panel)
    assert state["run_state"] == "finished"
    assert state["step"] == 60 and state["max_steps"] == 60
    assert state["job"] == {"id": job.id, "name": trainer.name, "status": "completed", "kind": "trainer"}
    assert [r["task"] for r in state["summary"]] == ["reg", "cls"]
    summaries = trainer.loss_summary()
    for row in state["summary"]:
        s = summaries[row["task"]]
        assert (row["final"], row["min"], row["health"], row["steps"]) == (s.final, s.min, s.health.value, 60)
    assert state["health"] == acc.worst_health(s.health for s in summaries.values()).value
    assert math.isclose(state["loss"], trainer.state.last_info["loss"])  # type: ignore[index]
    # the log: one entry per 10 steps, newest first, every step counted once
    assert [(e["first"], e["last"]) for e in state["log"]] == [
        (51, 60),
        (41, 50),
        (31, 40),
        (21, 30),
        (11, 20),
        (1, 10),
    ]
    assert sum(e["n"] for e in state["log"]) == 60
    # the history: this job, completed, with coloured final losses
    top = state["history"][0]
    assert (top["id"], top["status"], top["steps"]) == (job.id, "completed", 60)
    assert {f["task"] for f in top["final"]} == {"reg", "cls"}
    spark = from_f32_bytes(state["sparklines"]["reg"])
    assert 1 < len(spark) <= 97 and math.isclose(spark[0], panel.summary[0]["max"], rel_tol=1.0)


def test_a_panel_built_from_the_store_alone_shows_the_same(
    two_task_loader: DataLoader[Any], store: acc.RunStore, pump: UpdatePump
) -> None:
    trainer = two_task_trainer(two_task_loader, store, fetch_every=7)
    live = LossHealthPanel(trainer, pump=pump, log_every=10)
    job = trainer.start(steps=45)
    job.wait()
    # A kernel restart: a new store object on the same folder, no trainer.
    reopened = acc.RunStore(store.root)
    restored = LossHealthPanel(job.id, store=reopened, pump=pump, log_every=10)
    a, b = shown(live), shown(restored)
    for key in ("run_state", "step", "max_steps", "loss", "health", "summary", "log", "history"):
        assert a[key] == b[key], key
    for task, curve in a["sparklines"].items():  # rebuilt with numpy: equal up to the last bits
        np.testing.assert_allclose(from_f32_bytes(b["sparklines"][task]), from_f32_bytes(curve), rtol=1e-6)
    assert b["job"]["id"] == job.id and restored.source_kind == "stored"
    reopened.close()


def test_a_panel_made_while_the_job_runs_misses_no_step(
    two_task_loader: DataLoader[Any], store: acc.RunStore, pump: UpdatePump
) -> None:
    trainer = two_task_trainer(two_task_loader, store, fetch_every=3)
    job = trainer.start(steps=80)
    wait_until(lambda: trainer.state.step >= 10)
    panel = LossHealthPanel(trainer, pump=pump, log_every=1000)
    job.wait()
    assert panel.log[0]["n"] == 80  # steps before the panel came from the store, the rest live
    assert panel.summary[0]["steps"] == 80


def test_a_second_job_starts_a_new_log_and_joins_the_history(
    two_task_loader: DataLoader[Any], store: acc.RunStore, pump: UpdatePump
) -> None:
    trainer = two_task_trainer(two_task_loader, store, fetch_every=5)
    panel = LossHealthPanel(trainer, pump=pump, log_every=100)
    first = trainer.start(steps=20)
    first.wait()
    second = trainer.start(steps=10)
    second.wait()
    assert panel.job["id"] == second.id
    assert [(e["first"], e["last"]) for e in panel.log] == [(21, 30)]
    assert [r["id"] for r in panel.history] == [second.id, first.id]


def test_a_saved_checkpoint_appears_in_the_tree_with_its_health(
    two_task_loader: DataLoader[Any], store: acc.RunStore, pump: UpdatePump
) -> None:
    trainer = two_task_trainer(two_task_loader, store)
    panel = LossHealthPanel(trainer, pump=pump)
    trainer.start(steps=10).wait()
    first = trainer.save_checkpoint("first")
    second = trainer.save_checkpoint("second")
    rows = panel.checkpoints
    assert [(r["name"], r["depth"], r["current"]) for r in rows] == [("first", 0, False), ("second", 1, True)]
    assert rows[0]["id"] == first.id and rows[1]["id"] == second.id
    health = acc.worst_health(s.health for s in trainer.loss_summary().values()).value
    assert rows[1]["health"] == health


def test_nan_losses_turn_the_panel_critical_and_stay_json_safe(store: acc.RunStore, pump: UpdatePump) -> None:
    rec = acc.Recorder(tasks={"recon": "reconstruction"}, store=store, fetch_every=1, name="blows-up")
    panel = LossHealthPanel(rec, pump=pump, log_every=2)
    with rec:
        for step, value in enumerate([0.02, 0.01, math.nan, math.inf], 1):
            rec.record(step, {"recon": value})
    state = shown(panel)
    assert state["health"] == "critical" and state["run_state"] == "finished"
    assert state["loss"] == "Infinity"
    assert state["summary"][0]["nonfinite"] == 2 and state["summary"][0]["final"] == 0.01
    assert state["log"][0]["tasks"][0]["value"] == "Infinity"
    assert math.isnan(from_f32_bytes(state["sparklines"]["recon"])[-1])


def test_the_panel_shows_a_debuggers_pause(two_task_loader: DataLoader[Any], store: acc.RunStore) -> None:
    pump = UpdatePump(max_hz=20)
    dbg = acc.DebugController()
    trainer = two_task_trainer(two_task_loader, store, debug_controller=dbg)
    panel = LossHealthPanel(trainer, pump=pump)
    job = trainer.start(steps=100_000)
    try:
        wait_until(lambda: panel.run_state == "running")
        dbg.pause()
        wait_until(lambda: panel.run_state == "paused")  # no event tells the panel: it polls the controller
        dbg.resume()
        wait_until(lambda: panel.run_state == "running")
    finally:
        dbg.stop()
        job.wait()
        pump.close()
    assert panel.run_state == "stopped"


# -- commands from the browser ---------------------------------------------------------------


def send(panel: LossHealthPanel, content: Any) -> None:
    """Deliver a message the way the browser's model.send() does."""
    panel._handle_message(panel, content, [])


def two_jobs(store: acc.RunStore, pump: UpdatePump) -> tuple[Any, ...]:
    """A trainer that ran two jobs, and a panel made between them."""
    data = make_regression_data()
    x, y = data.tensors
    labels = (y.squeeze(1) > 0).long() + (y.squeeze(1) > 1).long()
    loader = DataLoader(TensorDataset(x, y, labels), batch_size=32)
    trainer = two_task_trainer(loader, store, fetch_every=5)
    first = trainer.start(steps=20)
    first.wait()
    panel = LossHealthPanel(trainer, pump=pump, log_every=10)
    second = trainer.start(steps=10)
    second.wait()
    return trainer, panel, first, second


@pytest.fixture
def finished(store: acc.RunStore, pump: UpdatePump) -> tuple[Any, ...]:
    return two_jobs(store, pump)


@pytest.fixture(scope="module")
def shared_finished(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, ...]]:
    """The same, once for the tests that leave it as they found it."""
    store = acc.RunStore(tmp_path_factory.mktemp("shared_runs"))
    pump = UpdatePump()
    yield two_jobs(store, pump)
    pump.close()
    store.close()


def test_select_job_shows_a_history_job_and_back_to_live(shared_finished: tuple[Any, ...]) -> None:
    _, panel, first, _ = shared_finished
    live = shown(panel)
    send(panel, {"kind": "select_job", "job_id": first.id})
    assert panel.error == ""
    assert panel.viewing == first.id
    assert panel.summary[0]["steps"] == 20
    assert [(e["first"], e["last"]) for e in panel.log] == [(11, 20), (1, 10)]
    assert panel.step == live["step"] and panel.job == live["job"]  # the banner stays on the bound job
    send(panel, {"kind": "select_job", "job_id": None})
    assert shown(panel) == live


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ({"kind": "select_job", "job_id": "1"}, "must be int or null, got str"),
        ({"kind": "select_job", "job_id": True}, "got a boolean"),
        ({"kind": "select_job", "job_id": 1.0}, "must be int or null, got float"),
        ({"kind": "select_job"}, "missing field 'job_id'"),
        ({"kind": "select_job", "job_id": 1, "extra": 2}, "unexpected field(s) 'extra'"),
        ({"kind": "select_job", "job_id": 999}, "there is no job 999"),
        ({"kind": "pause"}, "unknown message kind 'pause'"),
        ({"job_id": 1}, "unknown message kind None"),
        (["select_job", 1], "must be an object"),
        ("refresh", "must be an object"),
    ],
)
def test_bad_messages_are_rejected_under_the_widget_and_change_nothing(
    shared_finished: tuple[Any, ...], content: Any, why: str
) -> None:
    _, panel, _, _ = shared_finished
    before = shown(panel)
    send(panel, content)
    after = shown(panel)
    assert why in panel.error and panel.error.startswith("rejected: ")
    assert {k: v for k, v in after.items() if k != "error"} == {k: v for k, v in before.items() if k != "error"}
    send(panel, {"kind": "clear_error"})
    assert panel.error == ""


def test_refresh_rereads_the_store(finished: tuple[Any, ...]) -> None:
    trainer, panel, _, _ = finished
    other = trainer.store.create_job("written elsewhere")
    trainer.store.finish_job(other, "completed")
    send(panel, {"kind": "refresh"})
    assert panel.history[0]["id"] == other and panel.error == ""


def test_a_failure_while_handling_a_command_is_shown_not_raised(finished: tuple[Any, ...]) -> None:
    trainer, panel, _, _ = finished
    trainer.store.close()  # the store is gone: refreshing must fail, visibly
    send(panel, {"kind": "refresh"})
    assert panel.error.startswith("refresh: StoreError:") and "closed" in panel.error


def test_a_failure_in_a_pump_refresh_lands_in_the_error_trait(
    two_task_loader: DataLoader[Any], store: acc.RunStore, pump: UpdatePump
) -> None:
    trainer = two_task_trainer(two_task_loader, store, fetch_every=5)
    panel = LossHealthPanel(trainer, pump=pump)

    def broken_summary() -> Any:
        raise RuntimeError("summary exploded")

    panel.source.loss_summary = broken_summary  # type: ignore[method-assign]
    trainer.start(steps=10).wait()
    assert "RuntimeError: summary exploded" in panel.error
    assert panel.error.startswith("updating (live)")


# -- construction ---------------------------------------------------------------------------------


def test_unknown_keyword_arguments_raise(store: acc.RunStore) -> None:
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) 'colour'"):
        LossHealthPanel(store, colour="red")
    with pytest.raises(TypeError, match="unexpected keyword"):
        LossHealthPanel(store, _esm="x")
    with pytest.raises(ValueError, match="every must be a positive integer"):
        LossHealthPanel(store, log_every=0)
    with pytest.raises(ValueError, match="history_limit"):
        LossHealthPanel(store, history_limit=0)
    with pytest.raises(TypeError, match="a widget needs"):
        LossHealthPanel("trainer")


def test_an_empty_store_gives_an_idle_panel(store: acc.RunStore) -> None:
    panel = LossHealthPanel(store)
    assert (panel.run_state, panel.job, panel.history, panel.summary, panel.error) == ("idle", {}, [], [], "")


def test_a_fast_loop_costs_at_most_one_message_per_pump_interval(store: acc.RunStore) -> None:
    pump = UpdatePump(max_hz=10)
    rec = acc.Recorder(tasks={"loss": "regression"}, store=store, fetch_every=1)
    panel = LossHealthPanel(rec, pump=pump)
    sent: list[float] = []
    panel.comm.send = lambda *args, **kwargs: sent.append(time.monotonic())
    started = time.monotonic()
    steps = 0
    with rec:
        while time.monotonic() - started < 1.5:
            steps += 1
            rec.record(steps, {"loss": 1.0 / steps})
    elapsed = time.monotonic() - started
    pump.close()
    assert steps > 200
    # one batch per 0.1 s, each ONE message (hold_sync), + the poll's state changes and the final flush
    assert len(sent) <= elapsed * 10 + 4, (len(sent), steps, elapsed)
    assert panel.step == steps


def test_a_closed_panel_lets_go_of_the_trainer(two_task_loader: DataLoader[Any], store: acc.RunStore) -> None:
    pump = UpdatePump()
    trainer = two_task_trainer(two_task_loader, store, fetch_every=5)
    panel = LossHealthPanel(trainer, pump=pump)
    trainer.start(steps=10).wait()
    assert trainer.hooks.count(acc.Event.METRICS_FETCHED) >= 1
    before = {e: trainer.hooks.count(e) for e in acc.Event}
    panel.close()
    assert trainer.hooks.count(acc.Event.METRICS_FETCHED) == before[acc.Event.METRICS_FETCHED] - 1
    refs = [weakref.ref(trainer), weakref.ref(trainer.model), weakref.ref(panel)]
    del trainer, panel
    pump.close()
    for _ in range(3):
        gc.collect()
    assert [r() is None for r in refs] == [True, True, True]


def test_the_browser_state_is_strict_json_at_any_moment(
    two_task_loader: DataLoader[Any], store: acc.RunStore, pump: UpdatePump
) -> None:
    trainer = two_task_trainer(two_task_loader, store, fetch_every=2)
    panel = LossHealthPanel(trainer, pump=pump)
    job = trainer.start(steps=40)
    errors: list[BaseException] = []

    def read() -> None:
        while not job.done():
            try:
                shown(panel)
            except BaseException as exc:  # collected and re-raised in the test thread
                errors.append(exc)
                return

    reader = threading.Thread(target=read)
    reader.start()
    job.wait()
    reader.join()
    assert errors == []
