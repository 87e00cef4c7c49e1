"""DebugPanel, kernel side: traits after real runs, commands as the browser sends them, valid and invalid."""

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
import torch
from conftest import TwoHeadNet, two_task_trainer, wait_until
from torch.utils.data import DataLoader

import acc
from acc.recipes import FEATURE_PARAM, competitive_trainer
from acc.widgets import Dashboard, DebugPanel
from acc.widgets._binary import PNG_SIGNATURE, from_f32_bytes
from acc.widgets._pump import UpdatePump
from acc.widgets.debug_panel import sort_rows, table_view, value_view

BYTES = ("batch_png", "step_bars")


@pytest.fixture
def pump() -> Iterator[UpdatePump]:
    p = UpdatePump(max_hz=20)
    yield p
    p.close()


def shown(panel: DebugPanel) -> dict[str, Any]:
    """What the browser would get: the synced state, which must be strict JSON apart from the byte buffers."""
    state = panel.get_state()
    json.dumps({k: v for k, v in state.items() if k not in BYTES}, allow_nan=False)
    return {k: v for k, v in state.items() if not k.startswith("_")}


def send(panel: Any, content: Any) -> None:
    """Deliver a message the way the browser's model.send() does."""
    panel._handle_message(panel, content, [])


@pytest.fixture
def recipe(store: acc.RunStore, pump: UpdatePump) -> Iterator[tuple[acc.DebugController, acc.Trainer, DebugPanel]]:
    """The competitive recipe with a DebugPanel, its job paused after its 3rd step."""
    dbg = acc.DebugController(feature_param=FEATURE_PARAM)
    trainer = competitive_trainer(dbg, store=store, monitors=None, fetch_every=5)
    panel = DebugPanel(trainer, pump=pump)
    dbg.step(3)
    job = trainer.start(steps=10_000)
    wait_until(lambda: panel.run_state == "paused" and panel.data_step == 3)
    yield dbg, trainer, panel
    dbg.stop()
    job.wait(15)
    panel.close()


def test_pause_step_step_n_resume_and_stop_from_the_panel(
    recipe: tuple[acc.DebugController, acc.Trainer, DebugPanel],
) -> None:
    dbg, trainer, panel = recipe
    state = shown(panel)
    assert (state["run_state"], state["step"], state["reason"]) == ("paused", 3, "step budget")
    assert state["job"]["name"] == "competitive-features" and state["job"]["status"] == "running"
    # the batch of the paused step: a PNG grid of the digits, their labels and losses
    assert state["batch"]["step"] == 3 and state["batch"]["kind"] == "image"
    assert panel.batch_png.startswith(PNG_SIGNATURE) and len(state["batch"]["labels"]) == 64
    assert set(state["batch"]["losses"]) == {"recon", "cls"}
    assert math.isclose(state["loss"], dbg.get_state()["loss"]) and state["loss_step"] == 3
    assert state["health"] in ("healthy", "warning", "critical") and [t["task"] for t in state["losses"]] == [
        "recon",
        "cls",
    ]
    # Step: exactly one more step, a new batch image
    before = panel.batch_png
    send(panel, {"kind": "step", "n": 1})
    wait_until(lambda: panel.run_state == "paused" and panel.step == 4 and panel.batch.get("step") == 4)
    assert panel.batch_png != before and trainer.state.step == 4 and panel.data_step == 4
    # Step N
    send(panel, {"kind": "step", "n": 5})
    wait_until(lambda: panel.run_state == "paused" and panel.step == 9)
    time.sleep(0.3)
    assert panel.step == trainer.state.step == 9  # frozen while paused
    # Resume runs free; Pause brings it back; Stop ends the job
    send(panel, {"kind": "resume"})
    wait_until(lambda: panel.run_state == "running" and panel.step > 9)
    send(panel, {"kind": "pause"})
    wait_until(lambda: panel.run_state == "paused")
    assert panel.reason == "user" and dbg.is_paused and panel.step == trainer.state.step
    wait_until(lambda: panel.data_step == panel.step)
    assert panel.batch["step"] == panel.data_step == panel.table["step"]  # one pause, one step: never mixed
    send(panel, {"kind": "stop"})
    assert trainer.job is not None
    trainer.job.wait(15)
    wait_until(lambda: panel.run_state == "stopped")
    assert panel.job["status"] == "stopped" and panel.reason == "stopped from the debugger"
    assert panel.error == ""


def test_the_paused_steps_data_and_feature_table(recipe: tuple[acc.DebugController, acc.Trainer, DebugPanel]) -> None:
    dbg, _, panel = recipe
    keys = [k["key"] for k in panel.step_keys]
    assert keys == dbg.list_step_data_keys()
    assert {"win_rate", "grad_delta", "attraction"} <= set(keys)
    assert panel.step_key == "attraction_norm"  # the first [D] metric is picked by default
    # the table: one row per feature, a summary per metric, a status per row
    table = panel.table
    assert table["n_features"] == 32 and table["shown"] == 32 and table["step"] == 3
    assert table["columns"] == ["feature", "attraction_norm", "grad_norm", "win_rate", "status"]
    expected = dbg.feature_table()
    assert table["summary"]["win_rate"]["mean"] == pytest.approx(expected["summary"]["win_rate"]["mean"])
    assert table["status_counts"] == expected["status_counts"]
    # sort, as a click on a column header does
    send(panel, {"kind": "sort_table", "by": "win_rate", "descending": True})
    rates = [r["win_rate"] for r in panel.table["rows"]]
    assert rates == sorted(rates, reverse=True) and panel.table["sort_by"] == "win_rate"
    send(panel, {"kind": "sort_table", "by": "grad_norm", "descending": False})
    norms = [r["grad_norm"] for r in panel.table["rows"]]
    assert norms == sorted(norms) and panel.table_sort == {"by": "grad_norm", "descending": False}
    # pick a [D, K] key: its statistics, and its row norms as bars
    send(panel, {"kind": "pick_key", "key": "attraction"})
    view = panel.step_value
    assert view["key"] == "attraction" and view["bars_of"] == "row norms" and view["n_bars"] == 32
    assert view["summary"]["shape"] == [32, 64] and view["step"] == 3
    attraction = dbg.get_step_data("attraction")["value"]
    np.testing.assert_allclose(from_f32_bytes(panel.step_bars), np.linalg.norm(attraction, axis=1), rtol=1e-5)
    # the sort and the pick survive the next step
    send(panel, {"kind": "step", "n": 1})
    wait_until(lambda: panel.data_step == 4)
    assert panel.step_key == "attraction" and panel.table["sort_by"] == "grad_norm"
    assert panel.table["step"] == 4


def test_clicking_a_row_watches_that_feature(recipe: tuple[acc.DebugController, acc.Trainer, DebugPanel]) -> None:
    dbg, _, panel = recipe
    send(panel, {"kind": "watch", "feature": 7})
    wait_until(lambda: panel.watched == [7])
    assert dbg.get_watched() == [7]
    send(panel, {"kind": "step", "n": 2})
    wait_until(lambda: panel.step == 5 and panel.run_state == "paused")
    assert [p["step"] for p in dbg.get_trajectories()[7]] == [4, 5]
    send(panel, {"kind": "unwatch", "feature": 7})
    wait_until(lambda: panel.watched == [])
    assert dbg.get_watched() == [] and 7 in dbg.get_trajectories()  # a removed watch keeps its trajectory


BAD_MESSAGES = [
    ("not an object", "must be an object"),
    ({"kind": "explode"}, "unknown message kind 'explode'"),
    ({"n": 1}, "unknown message kind None"),
    ({"kind": "step"}, "missing field 'n'"),
    ({"kind": "step", "n": 0}, "between 1 and"),
    ({"kind": "step", "n": -3}, "between 1 and"),
    ({"kind": "step", "n": "3"}, "must be int, got str"),
    ({"kind": "step", "n": 2.5}, "must be int, got float"),
    ({"kind": "step", "n": True}, "got a boolean"),
    ({"kind": "step", "n": 1, "wait": True}, "unexpected field(s) 'wait'"),
    ({"kind": "pause", "now": 1}, "unexpected field(s) 'now'"),
    ({"kind": "set_breakpoint", "condition": "inf", "on": True}, "must be one of nan, critical"),
    ({"kind": "set_breakpoint", "condition": "nan", "on": "yes"}, "must be bool"),
    ({"kind": "watch", "feature": -1}, "feature index >= 0"),
    ({"kind": "watch", "feature": 32}, "feature 32 is out of range (0..31)"),
    ({"kind": "unwatch", "feature": 5}, "feature 5 is not watched"),
    ({"kind": "pick_key", "key": "nope"}, "no step data 'nope'"),
    ({"kind": "pick_key", "key": ""}, "must not be empty"),
    ({"kind": "sort_table", "by": "loss", "descending": True}, "no column 'loss'"),
    ({"kind": "sort_table", "by": "win_rate", "descending": None}, "must be bool"),
]


@pytest.mark.parametrize(("content", "why"), BAD_MESSAGES, ids=[str(i) for i in range(len(BAD_MESSAGES))])
def test_a_bad_message_is_rejected_under_the_widget_and_changes_nothing(
    content: Any, why: str, recipe: tuple[acc.DebugController, acc.Trainer, DebugPanel]
) -> None:
    dbg, trainer, panel = recipe
    before = {k: v for k, v in shown(panel).items() if k != "error"}
    controller_before = dbg.get_state()
    send(panel, content)
    assert panel.error.startswith("rejected: ") and why in panel.error, panel.error
    time.sleep(0.25)  # a few polls: still paused at the same step, nothing else moved
    after = {k: v for k, v in shown(panel).items() if k != "error"}
    assert after == before
    assert dbg.get_state() == controller_before and trainer.state.step == 3
    send(panel, {"kind": "clear_error"})
    assert panel.error == ""


def test_commands_without_a_running_job_are_rejected(store: acc.RunStore, pump: UpdatePump) -> None:
    dbg = acc.DebugController(feature_param=FEATURE_PARAM)
    trainer = competitive_trainer(dbg, store=store, monitors=None)
    panel = DebugPanel(trainer, pump=pump)
    assert (panel.run_state, panel.step, panel.job, panel.batch, panel.table) == ("idle", 0, {}, {}, {})
    for kind in ("pause", "resume", "stop"):
        send(panel, {"kind": kind})
        assert panel.error == f"rejected: {kind}: no job is running (start one with trainer.start(...))"
    send(panel, {"kind": "step", "n": 2})
    assert "no job is running" in panel.error
    assert dbg.get_state()["pending"] is None  # nothing was armed for the next job
    trainer.start(steps=4).wait()
    wait_until(lambda: panel.run_state == "finished")
    assert panel.step == 4 and panel.job["status"] == "completed"


def _gated_trainer(loader: DataLoader[Any], store: acc.RunStore, dbg: acc.DebugController) -> Any:
    """A trainer whose steps wait for a gate from the test (a long step, on demand)."""
    trainer = two_task_trainer(loader, store, debug_controller=dbg, monitors=None)
    gate = threading.Event()
    gate.set()
    trainer.on(acc.Event.AFTER_BACKWARD, lambda state: gate.wait(10))
    return trainer, gate


def test_the_panel_says_pausing_until_the_loop_has_paused(
    two_task_loader: DataLoader[Any], store: acc.RunStore, pump: UpdatePump
) -> None:
    dbg = acc.DebugController()
    trainer, gate = _gated_trainer(two_task_loader, store, dbg)
    panel = DebugPanel(trainer, pump=pump)
    job = trainer.start(steps=10_000)
    try:
        wait_until(lambda: panel.run_state == "running")
        gate.clear()  # the loop is now stuck in the middle of a step
        time.sleep(0.1)
        send(panel, {"kind": "pause"})
        wait_until(lambda: panel.run_state == "pausing")
        time.sleep(0.3)
        assert panel.run_state == "pausing" and not dbg.is_paused  # never "paused" before the loop is
        gate.set()
        wait_until(lambda: panel.run_state == "paused")
        assert dbg.is_paused and panel.reason == "user" and panel.step == trainer.state.step
    finally:
        gate.set()
        dbg.stop()
        job.wait(15)


def test_breakpoint_toggles_set_and_clear_the_controllers_breakpoints(
    two_task_loader: DataLoader[Any], store: acc.RunStore, pump: UpdatePump
) -> None:
    dbg = acc.DebugController()
    calls = {"n": 0}

    def reg_loss(outputs: Any, batch: Any) -> torch.Tensor:
        calls["n"] += 1
        loss = (outputs["pred"] - batch[1]).pow(2).mean()
        return loss * math.nan if calls["n"] == 6 else loss  # the 6th step's loss is NaN

    model = TwoHeadNet()
    trainer = acc.Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=0.0),  # the weights stay finite after the NaN step
        two_task_loader,
        tasks={"reg": reg_loss},
        store=store,
        debug_controller=dbg,
        monitors=None,
    )
    panel = DebugPanel(trainer, pump=pump)
    send(panel, {"kind": "set_breakpoint", "condition": "nan", "on": True})
    send(panel, {"kind": "set_breakpoint", "condition": "nan", "on": True})  # already on: no second one
    code_handle = dbg.break_on("critical")  # one set in code shows too
    wait_until(lambda: len(panel.breakpoints) == 2)
    assert [b["kind"] for b in dbg.list_breakpoints()] == ["nan", "critical"]
    send(panel, {"kind": "set_breakpoint", "condition": "critical", "on": False})
    wait_until(lambda: [b["kind"] for b in panel.breakpoints] == ["nan"])
    assert [b["kind"] for b in dbg.list_breakpoints()] == ["nan"]
    code_handle.remove()  # already removed by the toggle: a no-op
    job = trainer.start(steps=50)
    wait_until(lambda: panel.run_state == "paused")
    assert panel.step == 6 and panel.reason == "breakpoint: nan (task 'reg' at step 6)"
    assert panel.loss == "NaN" and panel.health == "critical"  # JSON-safe NaN
    send(panel, {"kind": "set_breakpoint", "condition": "nan", "on": False})
    wait_until(lambda: panel.breakpoints == [])
    send(panel, {"kind": "resume"})
    job.wait(15)
    wait_until(lambda: panel.run_state == "finished")
    assert panel.step == 50


def test_a_foreground_fit_is_reported_while_it_holds_the_kernel(
    two_task_loader: DataLoader[Any], store: acc.RunStore, pump: UpdatePump
) -> None:
    dbg = acc.DebugController()
    trainer = two_task_trainer(two_task_loader, store, debug_controller=dbg, monitors=None)
    panel = DebugPanel(trainer, pump=pump)
    seen: list[bool] = []

    def look(state: acc.TrainerState) -> None:
        if state.step == 13:  # in fit(): the loop runs in this (the main) thread; the pump thread still polls
            wait_until(lambda: panel.foreground)
            seen.append(panel.foreground)

    trainer.on(acc.Event.STEP_COMPLETED, look)
    trainer.start(steps=8).wait()
    assert panel.foreground is False  # a background job does not hold the kernel
    assert threading.current_thread() is threading.main_thread()
    trainer.fit(steps=8)
    assert seen == [True]
    wait_until(lambda: not panel.foreground)
    assert panel.run_state == "finished" and panel.step == 16


def test_a_second_panel_made_while_paused_shows_the_same(
    recipe: tuple[acc.DebugController, acc.Trainer, DebugPanel], pump: UpdatePump
) -> None:
    dbg, trainer, panel = recipe
    send(panel, {"kind": "sort_table", "by": "win_rate", "descending": True})
    other = DebugPanel(trainer, pump=pump)  # e.g. acc.DebugPanel(trainer) in another cell
    a, b = shown(panel), shown(other)
    for key in ("run_state", "step", "loss", "health", "losses", "reason", "batch", "batch_png", "step_keys"):
        assert a[key] == b[key], key
    assert a["table"]["rows"] != b["table"]["rows"]  # sorting is per widget; the data are the same
    assert sorted(a["table"]["rows"], key=lambda r: r["feature"]) == b["table"]["rows"]
    assert DebugPanel(dbg, pump=pump).step == panel.step  # the controller alone (a hand-written loop)
    other.close()


def test_the_dashboard_shows_the_debugger_widgets_for_a_trainer_with_a_controller(
    two_task_loader: DataLoader[Any], store: acc.RunStore, pump: UpdatePump
) -> None:
    with_features = acc.DebugController(feature_param="body.0.weight")
    dash = Dashboard(two_task_trainer(two_task_loader, store, debug_controller=with_features), pump=pump)
    assert dash.errors == {}
    assert [name for name in dash.panels if name in ("debug", "heatmap", "trajectory")] == [
        "debug",
        "heatmap",
        "trajectory",
    ]
    assert isinstance(dash["debug"], DebugPanel) and isinstance(dash["heatmap"], acc.HeatmapWidget)
    plain = Dashboard(two_task_trainer(two_task_loader, store, debug_controller=acc.DebugController()), pump=pump)
    assert plain.errors == {} and "debug" in plain.panels and "heatmap" not in plain.panels
    for d in (dash, plain):
        d.close()


def test_panel_needs_a_controller_and_rejects_unknown_arguments(
    two_task_loader: DataLoader[Any], store: acc.RunStore
) -> None:
    trainer = two_task_trainer(two_task_loader, store)
    with pytest.raises(ValueError, match="DebugPanel needs a DebugController"):
        DebugPanel(trainer)
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        DebugPanel(acc.DebugController(), colour="red")
    with pytest.raises(ValueError, match="table_rows must be a positive integer"):
        DebugPanel(acc.DebugController(), table_rows=0)


def test_a_fast_loop_costs_the_panel_at_most_four_messages_a_second(
    two_task_loader: DataLoader[Any], store: acc.RunStore, pump: UpdatePump
) -> None:
    dbg = acc.DebugController()
    trainer = two_task_trainer(two_task_loader, store, debug_controller=dbg, monitors=None, fetch_every=1)
    panel = DebugPanel(trainer, pump=pump)
    sent: list[float] = []
    panel.comm.send = lambda *args, **kwargs: sent.append(time.monotonic())
    job = trainer.start(steps=1_000_000)
    try:
        wait_until(lambda: panel.run_state == "running")
        time.sleep(0.3)
        first_step, first_sent, started = trainer.state.step, len(sent), time.monotonic()
        time.sleep(1.5)  # step and losses change on every poll (fetch_every=1)
        n, elapsed, steps = len(sent) - first_sent, time.monotonic() - started, trainer.state.step - first_step
    finally:
        dbg.stop()
        job.wait(15)
    assert steps > 100
    assert n <= elapsed * 4 + 1, (n, elapsed, steps)
    assert panel.run_state == "stopped" and panel.step == trainer.state.step  # the end is shown whole


def test_a_closed_panel_is_collected_and_leaves_no_handler(
    two_task_loader: DataLoader[Any], store: acc.RunStore, pump: UpdatePump
) -> None:
    dbg = acc.DebugController()
    trainer = two_task_trainer(two_task_loader, store, debug_controller=dbg, monitors=None)
    before = {e: trainer.hooks.count(e) for e in acc.Event}
    panel = DebugPanel(trainer, pump=pump)
    assert sum(trainer.hooks.count(e) for e in acc.Event) == sum(before.values()) + 3
    trainer.start(steps=3).wait()
    panel.close()
    assert {e: trainer.hooks.count(e) for e in acc.Event} == before
    refs = [weakref.ref(panel), weakref.ref(trainer), weakref.ref(trainer.model), weakref.ref(dbg)]
    del panel, trainer, dbg
    for _ in range(3):
        gc.collect()
    assert [r() is None for r in refs] == [True, True, True, True]


# -- pure helpers ---------------------------------------------------------------------------------

ROWS = [
    {"feature": 0, "m": 0.5, "status": "ok"},
    {"feature": 1, "m": None, "status": "non-finite"},
    {"feature": 2, "m": -1.0, "status": "ok"},
    {"feature": 3, "m": 2.0, "status": "dead"},
]


@pytest.mark.parametrize(
    ("by", "descending", "order"),
    [
        ("m", True, [3, 0, 2, 1]),
        ("m", False, [2, 0, 3, 1]),  # None (a non-finite value) last either way
        ("feature", False, [0, 1, 2, 3]),
        ("feature", True, [3, 2, 1, 0]),
        ("status", False, [3, 1, 0, 2]),
    ],
)
def test_sort_rows(by: str, descending: bool, order: list[int]) -> None:
    assert [r["feature"] for r in sort_rows(ROWS, by, descending)] == order


def test_table_view_cuts_sorted_rows_and_keeps_the_whole_summary() -> None:
    table = {
        "columns": ["feature", "m", "status"],
        "rows": ROWS,
        "summary": {"m": {"mean": 0.5, "min": -1.0, "max": 2.0, "n_nonfinite": 1}},
        "status_counts": {"ok": 2, "non-finite": 1, "dead": 1},
        "n_features": 4,
        "step": 7,
    }
    view = table_view(table, "m", True, 2)
    assert [r["feature"] for r in view["rows"]] == [3, 0]
    assert (view["shown"], view["n_features"], view["step"], view["range"]) == (2, 4, 7, {"m": [-1.0, 2.0]})
    assert table_view(table, None, True, 10)["rows"] == ROWS


@pytest.mark.parametrize(
    ("value", "kind", "bars_of", "bars"),
    [
        (torch.tensor([1.0, -2.0, 3.0]), "tensor", "values", [1.0, -2.0, 3.0]),
        (torch.tensor([1.0, math.nan, math.inf]), "tensor", "values", [1.0, math.nan, math.inf]),
        (torch.tensor([[3.0, 4.0], [0.0, 0.0]]), "tensor", "row norms", [5.0, 0.0]),
        (np.ones((2, 2, 2), dtype=np.float32), "tensor", "row norms", [2.0, 2.0]),
        (torch.tensor(2.5), "tensor", None, []),
        (torch.empty(0), "tensor", None, []),
        (0.25, "number", None, []),
        (math.nan, "number", None, []),
        ({"a": 1}, "dict", None, []),
    ],
)
def test_value_view(value: Any, kind: str, bars_of: str | None, bars: list[float]) -> None:
    view, data = value_view("k", 3, value)
    json.dumps(view, allow_nan=False)
    assert (view["key"], view["step"], view["kind"], view["bars_of"]) == ("k", 3, kind, bars_of)
    np.testing.assert_array_equal(from_f32_bytes(data), np.asarray(bars, dtype=np.float32))
    assert view["n_bars"] == len(bars)
    if isinstance(value, torch.Tensor) and value.dim() == 0:
        assert view["value"] == 2.5
    if kind == "dict":
        assert view["repr"] == "{'a': 1}"
