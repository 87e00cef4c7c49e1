"""MonitorPanel, kernel side: alerts active then resolved, dead/frozen layers and adapters, throughput and ETA,
rebuilt from the store after the fact, disabled monitors, the Dashboard slot, the message budget."""

from __future__ import annotations

import gc
import json
import math
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from conftest import wait_until
from torch import nn

import acc
from acc.monitors import AlertsMonitor, GradientMonitor, MonitorBase
from acc.monitors._base import attached_monitors
from acc.widgets import Dashboard, MonitorPanel
from acc.widgets._monitor_data import (
    alert_counts,
    fold_alert_events,
    layer_rows,
    layer_summary_values,
    monitor_error_rows,
    pattern_values,
    streaming_values,
    throughput_values,
)
from acc.widgets._pump import UpdatePump
from acc.widgets.monitor_panel import POLL_SECONDS, has_monitor_data

NAN, INF = math.nan, math.inf
SPIKE_STEP = 41  # the batch with shifted targets is the 41st
STEPS = 120


@pytest.fixture
def pump() -> Iterator[UpdatePump]:
    p = UpdatePump(max_hz=10)
    yield p
    p.close()


def shown(panel: MonitorPanel) -> dict[str, Any]:
    """The synced state as the browser gets it: must be strict JSON (no NaN)."""
    state: dict[str, Any] = panel.get_state()
    json.dumps(state, allow_nan=False)
    return state


def codes(rows: list[dict[str, Any]]) -> list[str]:
    return [r["code"] for r in rows]


# -- pure functions: tables ----------------------------------------------------------------------------


def _event(kind: str, code: str, first: int, step: int, **extra: Any) -> dict[str, Any]:
    payload = {"code": code, "severity": "warning", "message": f"{code}!", "recommendation": "do x",
               "first_step": first, "last_step": extra.pop("last", first), "count": extra.pop("count", 1),
               "resolved_step": step if kind == "resolved" else None, "event": kind, **extra}  # fmt: skip
    return {"step": step, "kind": "alert", "payload": payload, "time": 0.0}


@pytest.mark.parametrize(
    ("events", "active", "resolved"),
    [
        ([], [], []),
        ([_event("raised", "loss_spike", 10, 10)], [("loss_spike", 10, None)], []),
        (
            [_event("raised", "loss_spike", 10, 10), _event("resolved", "loss_spike", 10, 30, last=12, count=3)],
            [],
            [("loss_spike", 10, 30)],
        ),
        (  # the same code raised again later: a second episode, active
            [
                _event("raised", "loss_spike", 10, 10),
                _event("resolved", "loss_spike", 10, 30),
                _event("raised", "loss_spike", 50, 50),
            ],
            [("loss_spike", 50, None)],
            [("loss_spike", 10, 30)],
        ),
        (  # resolved ones newest first; critical before warning
            [
                _event("raised", "plateau", 5, 5),
                _event("raised", "nan_loss", 7, 7, severity="critical"),
                _event("raised", "a", 1, 1),
                _event("resolved", "a", 1, 9),
                _event("raised", "b", 2, 2),
                _event("resolved", "b", 2, 20),
            ],
            [("nan_loss", 7, None), ("plateau", 5, None)],
            [("b", 2, 20), ("a", 1, 9)],
        ),
        ([{"step": 3, "kind": "alert", "payload": None, "time": 0.0}], [], []),  # an unreadable event is skipped
    ],
)
def test_fold_alert_events(
    events: list[dict[str, Any]], active: list[tuple[Any, ...]], resolved: list[tuple[Any, ...]]
) -> None:
    got_active, got_resolved = fold_alert_events(events)
    assert [(r["code"], r["first_step"], r["resolved_step"]) for r in got_active] == active
    assert [(r["code"], r["first_step"], r["resolved_step"]) for r in got_resolved] == resolved
    assert set(got_active[0]) >= {"severity", "message", "recommendation", "last_step", "count"} if active else True


def test_alert_counts() -> None:
    active = [{"severity": "critical"}, {"severity": "warning"}, {"severity": "warning"}]
    assert alert_counts(active, [{}]) == {"critical": 1, "warning": 2, "info": 0, "active": 3, "resolved": 1}


def _stat(status: str, grad: float = 1.0, **kw: Any) -> dict[str, Any]:
    return {"status": status, "current_grad_norm": grad, "mean_grad_norm": grad, "current_update": 0.01,
            "num_updates": 1, "num_params": 10, "zero_streak": 0, "num_samples": 2, **kw}  # fmt: skip


@pytest.mark.parametrize(
    ("stat", "grad", "update"),
    [
        (_stat("active", 0.5), 0.5, 0.01),
        (_stat("frozen", 0.0), None, None),  # the monitor reports 0.0 for a frozen layer: not a measured zero
        (_stat("unknown", 0.0), None, None),
        (_stat("dead", 0.0, zero_streak=4), 0.0, 0.01),
        (_stat("exploding", NAN), "NaN", 0.01),
        (_stat("exploding", INF), "Infinity", 0.01),
        (_stat("active", 0.5, num_updates=0), 0.5, None),  # no update measured yet
    ],
)
def test_layer_rows(stat: dict[str, Any], grad: Any, update: Any) -> None:
    (row,) = layer_rows({"layer": stat})
    assert (row["name"], row["status"], row["grad"], row["update"]) == ("layer", stat["status"], grad, update)
    json.dumps(row, allow_nan=False)


def test_layer_rows_keep_the_models_order_and_rank_the_urgent_first() -> None:
    rows = layer_rows({"a": _stat("active"), "b": _stat("dead", 0.0), "c": _stat("frozen"), "d": _stat("exploding")})
    assert [r["name"] for r in rows] == ["a", "b", "c", "d"]
    assert [r["name"] for r in sorted(rows, key=lambda r: r["rank"])] == ["d", "b", "a", "c"]
    assert layer_rows(None) == []


@pytest.mark.parametrize(
    ("summary", "health"),
    [
        ({"text": "3/3 layers active", "active_layers": 3}, "healthy"),
        ({"text": "2/3 layers active, 1 dead", "active_layers": 2, "dead_layers": ["x"]}, "critical"),
        ({"text": "x", "active_layers": 2, "exploding_layers": ["x"]}, "critical"),
        ({"text": "x", "active_layers": 3, "vanishing_layers": ["x"]}, "warning"),
        ({"text": "x", "active_layers": 3, "imbalanced": True, "imbalance_ratio": INF}, "warning"),
        ({"text": "no gradient sample yet (3 trainable layers)", "active_layers": 0, "unknown_layers": ["a"]}, ""),
    ],
)
def test_layer_summary_values(summary: dict[str, Any], health: str) -> None:
    values = layer_summary_values(summary)
    assert values["health"] == health and values["text"] == summary["text"]
    json.dumps(values, allow_nan=False)
    assert layer_summary_values(None) == {} and layer_summary_values({}) == {}


@pytest.mark.parametrize(
    ("status", "run_state", "unit", "current", "eta_text"),
    [
        ({}, "running", None, None, None),  # no throughput monitor: nothing to show
        ({"elapsed_seconds": 0.0, "throughput_trend": "insufficient_data"}, "running", None, None, None),  # no rate
        ({"samples_per_sec": 1200.0, "samples_per_sec_avg": 1000.0, "eta_seconds": 90.0}, "running", "samples/s",
         1200.0, "1.5m"),
        ({"tokens_per_sec": 5e4, "tokens_per_sec_avg": 4e4, "samples_per_sec": 9.0, "eta_seconds": 7200.0},
         "running", "tokens/s", 5e4, "2.0h"),
        ({"steps_per_sec": 20.0, "step": 100, "elapsed_seconds": 4.0, "eta_seconds": None}, "running", "steps/s",
         20.0, "—"),
        ({"samples_per_sec": NAN, "samples_per_sec_avg": 10.0, "eta_seconds": INF}, "running", "samples/s", "NaN",
         "—"),
        ({"samples_per_sec": 10.0, "eta_seconds": 30.0}, "finished", "samples/s", 10.0, "0s"),  # done: no time left
        ({"samples_per_sec": 10.0, "eta_seconds": 30.0}, "stopped", "samples/s", 10.0, "—"),
    ],
)  # fmt: skip
def test_throughput_values(status: dict[str, Any], run_state: str, unit: Any, current: Any, eta_text: Any) -> None:
    values = throughput_values(status, run_state)
    if unit is None:
        assert values == {}
        return
    assert (values["unit"], values["current"], values["eta_text"]) == (unit, current, eta_text)
    json.dumps(values, allow_nan=False)


def test_steps_per_second_average_comes_from_step_and_elapsed() -> None:
    values = throughput_values({"steps_per_sec": 20.0, "step": 100, "elapsed_seconds": 4.0}, "running")
    assert values["average"] == 25.0


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ({}, {}),
        ({"loss_trend": "improving"}, {}),  # a trend alone, no value: nothing to show
        ({"streaming_ce": 0.5, "loss_trend": "improving"},
         {"streaming_ce": 0.5, "loss_trend": "improving", "accuracy_trend": "insufficient_data"}),
        ({"streaming_ce": NAN, "calibration_error": INF},
         {"streaming_ce": "NaN", "calibration_error": "Infinity", "loss_trend": "insufficient_data",
          "accuracy_trend": "insufficient_data"}),
    ],
)  # fmt: skip
def test_streaming_values(status: dict[str, Any], expected: dict[str, Any]) -> None:
    assert streaming_values(status) == expected


def test_pattern_values_draw_small_grids_only() -> None:
    grid = {"row_name": "pattern", "col_name": "length", "rows": ["a", "b"], "cols": [1, 2],
            "accuracy": [[1.0, None], [0.5, NAN]], "count": [[2, 0], [2, 1]]}  # fmt: skip
    values = pattern_values(grid)
    assert values["cols"] == ["1", "2"] and values["accuracy"] == [[1.0, None], [0.5, "NaN"]]
    big = {**grid, "rows": list(range(40)), "cols": list(range(40))}
    assert pattern_values(big) == {} and pattern_values(None) == {}


def test_monitor_error_rows_keep_the_first_fault_per_monitor() -> None:
    errors = [{"monitor": "g", "error": "E: 1", "step": 3}, {"monitor": "g", "error": "E: 2", "step": 9}, {}]
    assert monitor_error_rows(errors) == [
        {"monitor": "g", "error": "E: 1", "step": 3},
        {"monitor": "monitor", "error": "", "step": None},
    ]


# -- real runs -----------------------------------------------------------------------------------------


class DeadLayerNet(nn.Module):
    """A small regression net with a frozen input layer and a dead ReLU layer (its bias keeps it off)."""

    def __init__(self) -> None:
        super().__init__()
        self.frozen = nn.Linear(8, 8)
        self.frozen.requires_grad_(False)
        self.inp = nn.Linear(8, 16)
        self.dead = nn.Linear(16, 16)
        with torch.no_grad():
            self.dead.bias.fill_(-100.0)  # relu(dead(h)) == 0 for every input: exactly zero gradient
        self.out = nn.Linear(16, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.inp(self.frozen(x)))
        out: torch.Tensor = self.out(h + torch.relu(self.dead(h)))
        return out


def spiky_batches(n: int = STEPS, spike: int = SPIKE_STEP) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Noisy linear targets (the loss levels off near the noise); batch ``spike`` has its targets shifted by 6."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(8, 1, generator=g)
    batches = []
    for i in range(1, n + 1):
        x = torch.randn(32, 8, generator=g)
        y = x @ w + 0.3 * torch.randn(32, 1, generator=g)
        batches.append((x, y + 6.0 if i == spike else y))
    return batches


class Gate:
    """Batches for the loop; before batch ``at`` (1-based) it waits until the test opens the gate."""

    def __init__(self, batches: list[Any], at: int) -> None:
        self.batches, self.at = batches, at
        self.reached, self.opened = threading.Event(), threading.Event()

    def __iter__(self) -> Iterator[Any]:
        for i, batch in enumerate(self.batches, 1):
            if i == self.at:
                self.reached.set()
                self.opened.wait(60)
            yield batch


def dead_layer_trainer(store: acc.RunStore, data: Any, **kwargs: Any) -> acc.Trainer:
    torch.manual_seed(0)
    model = DeadLayerNet()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    monitors = acc.monitors.default_monitors()
    monitors[0] = GradientMonitor(every=5)
    return acc.Trainer(model, opt, data, tasks={"y": "regression"}, store=store, monitors=monitors, **kwargs)


@pytest.fixture(scope="module")
def gated_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One real run seen live: the panel while the loop waits just after the spike, and after the end."""
    store = acc.RunStore(tmp_path_factory.mktemp("monitor_runs"))
    pump = UpdatePump(max_hz=10)
    gate = Gate(spiky_batches(), at=SPIKE_STEP + 3)
    trainer = dead_layer_trainer(store, gate, fetch_every=1, name="spiky")
    panel = MonitorPanel(trainer, pump=pump)
    before = shown(panel)
    job = trainer.start(steps=STEPS)
    try:
        assert gate.reached.wait(60)
        # the loop waits for the next batch; the spike was fetched: the panel shows it within a poll or two
        wait_until(lambda: "loss_spike" in codes(panel.alerts))
        during = shown(panel)
    finally:
        gate.opened.set()
    job.wait()  # JOB_ENDED flushes the panel's refresh before wait() returns
    after = shown(panel)
    yield {"store": store, "trainer": trainer, "job": job, "panel": panel, "pump": pump,
           "before": before, "during": during, "after": after}  # fmt: skip
    panel.close()
    pump.close()
    store.close()


def test_before_the_first_job_layers_are_known_but_not_sampled(gated_run: dict[str, Any]) -> None:
    before = gated_run["before"]
    assert before["run_state"] == "idle" and before["alerts"] == [] and before["origin"] == "live"
    assert before["layer_summary"]["text"] == "no gradient sample yet (3 trainable layers), 1 frozen"
    assert {r["name"]: r["status"] for r in before["layers"]} == {
        "frozen": "frozen",
        "inp": "unknown",
        "dead": "unknown",
        "out": "unknown",
    }


def test_a_loss_spike_is_shown_active_with_its_recommendation_while_it_lasts(gated_run: dict[str, Any]) -> None:
    during = gated_run["during"]
    assert during["run_state"] == "running"
    (spike,) = [a for a in during["alerts"] if a["code"] == "loss_spike"]
    assert spike["severity"] == "warning" and spike["first_step"] == SPIKE_STEP
    assert spike["resolved_step"] is None and "learning rate" in spike["recommendation"]
    assert "loss_spike" not in codes(during["resolved_alerts"])
    assert during["alert_summary"]["active"] == len(during["alerts"]) >= 1
    # the throughput and the time left while it runs
    t = during["throughput"]
    assert t["unit"] == "samples/s" and t["current"] > 0 and t["average"] > 0
    assert during["max_steps"] == STEPS and SPIKE_STEP <= during["step"] < STEPS
    assert t["eta_seconds"] > 0 and t["eta_text"] == acc.monitors.format_duration(t["eta_seconds"])


def test_the_spike_is_marked_resolved_later_with_its_step(gated_run: dict[str, Any]) -> None:
    after = gated_run["after"]
    assert after["run_state"] == "finished" and after["step"] == STEPS
    assert "loss_spike" not in codes(after["alerts"])
    spike = next(a for a in after["resolved_alerts"] if a["code"] == "loss_spike" and a["first_step"] == SPIKE_STEP)
    assert spike["resolved_step"] > spike["last_step"] >= SPIKE_STEP
    assert after["alert_summary"]["resolved"] == len(after["resolved_alerts"])
    assert after["throughput"]["eta_text"] == "0s"  # finished: nothing left


def test_the_dead_layer_and_the_frozen_layer_are_in_the_table(gated_run: dict[str, Any]) -> None:
    after = gated_run["after"]
    assert after["layer_summary"]["text"] == "2/3 layers active, 1 dead, 1 frozen"
    assert after["layer_summary"]["health"] == "critical"
    rows = {r["name"]: r for r in after["layers"]}
    assert [r["name"] for r in after["layers"]] == ["frozen", "inp", "dead", "out"]  # the model's order
    assert rows["dead"]["status"] == "dead" and rows["dead"]["grad"] == 0.0 and rows["dead"]["zero_streak"] >= 3
    assert rows["frozen"]["status"] == "frozen" and rows["frozen"]["grad"] is None  # frozen, not dead
    assert rows["inp"]["status"] == rows["out"]["status"] == "active" and rows["inp"]["grad"] > 0
    assert rows["dead"]["params"] == 16 * 16 + 16
    assert "dead_layers" in codes(after["alerts"])  # the verdict comes with an alert and a recommendation
    assert after["streaming"]["streaming_ce"] > 0 and after["monitor_errors"] == []


def test_a_stored_job_shows_the_same_after_a_kernel_restart(gated_run: dict[str, Any]) -> None:
    """A new store object on the same folder (what a restarted kernel has): status file + stored alerts."""
    job, after = gated_run["job"], gated_run["after"]
    fresh = acc.RunStore(gated_run["store"].root)
    try:
        panel = MonitorPanel(job.id, store=fresh)
        again = shown(panel)
        assert again["origin"] == "status file" and again["source_kind"] == "stored"
        for key in ("run_state", "step", "max_steps", "alerts", "layer_summary", "layers", "job"):
            assert again[key] == after[key], key
        # every resolution is stored as an event; the live view keeps the newest 20: same ones here
        assert codes(again["resolved_alerts"]) == codes(after["resolved_alerts"])
        assert again["throughput"]["eta_text"] == "0s"
        panel.close()
    finally:
        fresh.close()


def test_a_panel_for_an_older_job_of_a_trainer_shows_that_job_not_the_newest(store: acc.RunStore) -> None:
    trainer = dead_layer_trainer(store, spiky_batches(90), fetch_every=5)
    first = trainer.fit(steps=90)
    trainer.fit(steps=10)  # the monitors have moved on to the second job
    panel = MonitorPanel(first)
    assert panel.source_kind == "job" and panel.origin == "status file"
    assert panel.job["id"] == first.id and panel.step == 90 and panel.run_state == "finished"
    assert "loss_spike" in codes(panel.resolved_alerts)  # the spike at step 41 was in the first job only
    panel.close()


def test_stored_alerts_alone_rebuild_active_and_resolved(store: acc.RunStore) -> None:
    """No status file (e.g. a job written by another tool): the alert events are enough."""
    job = store.create_job("elsewhere")
    for event in (_event("raised", "loss_spike", 10, 10), _event("resolved", "loss_spike", 10, 31, last=12),
                  _event("raised", "plateau", 40, 40)):  # fmt: skip
        store.log_event(job, "alert", event["payload"], step=event["step"])
    store.finish_job(job, "completed")
    store.flush()
    panel = MonitorPanel(job, store=store)
    assert panel.origin == "stored alerts"
    assert codes(panel.alerts) == ["plateau"] and codes(panel.resolved_alerts) == ["loss_spike"]
    assert panel.resolved_alerts[0]["resolved_step"] == 31
    assert panel.layer_summary == {} and panel.throughput == {}  # nothing measured: those sections stay hidden


def test_an_unreadable_status_file_is_shown_under_the_panel_and_the_alerts_still_are(store: acc.RunStore) -> None:
    job = store.create_job("half-written elsewhere")
    event = _event("raised", "nan_loss", 5, 5, severity="critical")
    store.log_event(job, "alert", event["payload"], step=5)
    store.finish_job(job, "failed")
    store.flush()
    path = acc.monitors.status_path(store.root, job)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{not json")
    panel = MonitorPanel(job, store=store)
    assert panel.error.startswith(f"cannot read the status file {path}: JSONDecodeError")
    assert codes(panel.alerts) == ["nan_loss"] and panel.origin == "stored alerts"
    panel._handle_message(panel, {"kind": "clear_error"}, [])
    assert panel.error == ""


def test_a_dead_lora_adapter_shows_in_the_adapter_table(store: acc.RunStore) -> None:
    class LoRALinear(nn.Module):
        def __init__(self, base: nn.Linear, *, freeze_b: bool) -> None:
            super().__init__()
            self.base = base.requires_grad_(False)
            b = nn.Linear(4, base.out_features, bias=False)
            nn.init.zeros_(b.weight)  # peft's init: the adapter starts as a no-op
            self.lora_A = nn.ModuleDict({"default": nn.Linear(base.in_features, 4, bias=False)})
            self.lora_B = nn.ModuleDict({"default": b})
            if freeze_b:  # B stuck at its zero init: A never gets a gradient either
                self.lora_B.requires_grad_(False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = self.base(x) + self.lora_B["default"](self.lora_A["default"](x))
            return out

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), LoRALinear(nn.Linear(16, 16), freeze_b=False),
                          LoRALinear(nn.Linear(16, 16), freeze_b=True), nn.Linear(16, 3))  # fmt: skip
    model[0].requires_grad_(False)
    g = torch.Generator().manual_seed(0)
    data = [(torch.randn(16, 8, generator=g), torch.randint(0, 3, (16,), generator=g)) for _ in range(8)]
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    monitors = acc.monitors.default_monitors()
    monitors[0] = GradientMonitor(every=5)
    trainer = acc.Trainer(model, opt, data, tasks={"cls": "classification"}, store=store, monitors=monitors)
    panel = MonitorPanel(trainer)
    trainer.fit(steps=30)
    state = shown(panel)
    assert state["lora_summary"]["text"] == "1/2 adapters active, 1 dead"
    assert {r["name"]: r["status"] for r in state["lora"]} == {"1": "active", "2": "dead"}
    assert "dead_adapters" in codes(state["alerts"])
    layers = {r["name"]: r["status"] for r in state["layers"]}
    assert layers["0"] == layers["1.base"] == layers["2.lora_B.default"] == "frozen"
    assert layers["2.lora_A.default"] == "dead"
    assert "accuracy_last_20" in state["streaming"]  # classification: accuracy from the logits
    panel.close()


def test_the_fixed_evaluation_and_its_accuracy_per_slice_pair(store: acc.RunStore) -> None:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    data = [(torch.randn(16, 8, generator=g), torch.randint(0, 3, (16,), generator=g)) for _ in range(8)]
    x_val, y_val = torch.randn(60, 8, generator=g), torch.randint(0, 3, (60,), generator=g)
    patterns, lengths = [i % 3 for i in range(60)], ["short", "long"] * 30
    ev = acc.monitors.FixedEvalMonitor(
        (x_val, y_val), every=10, slices=(patterns, lengths), slice_names=("pattern", "length")
    )
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    trainer = acc.Trainer(model, torch.optim.Adam(model.parameters(), lr=1e-2), data, tasks={"cls": "classification"},
                          store=store, monitors=acc.monitors.default_monitors(ev))  # fmt: skip
    panel = MonitorPanel(trainer)
    assert panel.fixed_eval == {} and panel.pattern == {}  # before the first evaluation: nothing to show
    trainer.fit(steps=30)
    state = shown(panel)
    last = ev.history[-1]
    assert state["fixed_eval"]["step"] == 30 and state["fixed_eval"]["n"] == 60
    assert state["fixed_eval"]["accuracy"] == last.accuracy and state["fixed_eval"]["loss"] == last.loss
    pattern = state["pattern"]
    assert (pattern["row_name"], pattern["col_name"]) == ("pattern", "length")
    assert pattern["rows"] == ["0", "1", "2"] and pattern["cols"] == ["long", "short"]
    assert pattern["count"] == [[10, 10], [10, 10], [10, 10]]
    assert pattern["accuracy"] == last.heatmap["accuracy"]  # type: ignore[index]
    panel.close()


class Broken(MonitorBase):
    """A custom monitor that raises at its third report."""

    name = "broken"

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def _register(self, target: Any) -> None:
        self._on(target, acc.Event.METRICS_FETCHED, self._on_fetched)

    def _on_fetched(self, state: Any) -> None:
        self.calls += 1
        if self.calls == 3:
            raise RuntimeError("this monitor is broken")


def test_a_monitor_that_raised_is_shown_as_disabled_and_training_goes_on(store: acc.RunStore) -> None:
    trainer = dead_layer_trainer(store, spiky_batches(40), fetch_every=5)
    trainer.monitors.insert(0, Broken())
    trainer._monitor_handles.append(trainer.monitors[0].attach(trainer))
    panel = MonitorPanel(trainer)
    job = trainer.fit(steps=40)
    assert job.status == "completed"
    assert panel.monitor_errors == [{"monitor": "broken", "error": "RuntimeError: this monitor is broken", "step": 15}]
    stored = MonitorPanel(job.id, store=store)  # the fault is in the status file and the store
    assert stored.monitor_errors == panel.monitor_errors
    panel.close()
    stored.close()


# -- recorders and log captures --------------------------------------------------------------------------


def test_a_hand_written_loop_with_monitors_attached_gets_a_panel(store: acc.RunStore, pump: UpdatePump) -> None:
    rec = acc.Recorder(tasks={"loss": "regression"}, store=store, fetch_every=5)
    assert not has_monitor_data(acc.widgets.as_source(rec))
    throughput, alerts = acc.monitors.ThroughputMonitor(), AlertsMonitor()
    handle = acc.monitors.attach(rec, [throughput, alerts])
    assert attached_monitors(rec) == [throughput, alerts]
    panel = MonitorPanel(rec, pump=pump)
    with rec:
        for step in range(1, 61):
            rec.record(step, {"loss": math.nan if step == 30 else 1.0 / step})
            throughput.update(num_samples=32, step=step)  # by hand: a Recorder has no batches to count
    state = shown(panel)
    assert state["run_state"] == "finished" and state["origin"] == "live"
    assert "nan_loss" in codes(state["alerts"]) or "nan_loss" in codes(state["resolved_alerts"])
    assert state["throughput"]["unit"] == "samples/s" and state["throughput"]["steps_per_sec"] > 0
    handle.remove()
    assert attached_monitors(rec) == []  # detached by its handle: no longer the recorder's monitors
    panel.close()


def test_the_monitor_registry_does_not_keep_a_recorder_alive(store: acc.RunStore) -> None:
    rec = acc.Recorder(tasks={"loss": "regression"}, store=store)
    monitors = [acc.monitors.StreamingMonitor(), AlertsMonitor()]
    acc.monitors.attach(rec, monitors)
    ref = weakref.ref(rec)
    del rec, monitors
    gc.collect()
    assert ref() is None


def test_a_dashboard_for_a_log_capture_shows_its_alerts(store: acc.RunStore) -> None:
    script = "for step in range(1, 31):\n    print(f'step {step} loss {\"nan\" if step == 12 else 2.0 / step}')\n"
    capture = acc.capture([sys.executable, "-c", script], store=store, echo=False)
    dash = Dashboard(capture, panels=["health", "monitors"])
    capture.wait()
    panel = dash["monitors"]
    assert isinstance(panel, MonitorPanel) and dash.errors == {}
    nan = [a for a in panel.alerts + panel.resolved_alerts if a["code"] == "nan_loss"]
    assert nan and nan[0]["first_step"] == 12 and nan[0]["severity"] == "critical"
    dash.close()


# -- the dashboard slot ------------------------------------------------------------------------------------


def test_the_dashboard_shows_the_panel_under_the_chart_for_a_trainer_with_monitors(store: acc.RunStore) -> None:
    trainer = dead_layer_trainer(store, spiky_batches(10))
    dash = Dashboard(trainer)
    names = list(dash.panels)
    assert "monitors" in names and names.index("monitors") == names.index("health") + (2 if "chart" in names else 1)
    assert isinstance(dash["monitors"], MonitorPanel) and dash.errors == {}
    dash.close()
    model = DeadLayerNet()
    bare = acc.Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), spiky_batches(4),
                       tasks={"y": "regression"}, store=store, monitors=None)  # fmt: skip
    assert "monitors" not in Dashboard(bare).panels  # no monitors: no empty panel
    job = bare.fit(steps=4)
    assert "monitors" not in Dashboard(job.id, store=store).panels  # nor for its stored job


# -- messages and traffic ------------------------------------------------------------------------------------


def test_refresh_and_bad_messages(store: acc.RunStore, pump: UpdatePump) -> None:
    trainer = dead_layer_trainer(store, spiky_batches(10))
    panel = MonitorPanel(trainer, pump=pump)
    before = shown(panel)
    panel._handle_message(panel, {"kind": "refresh", "now": True}, [])
    assert panel.error == "rejected: refresh: unexpected field(s) 'now'"
    panel._handle_message(panel, {"kind": "pause"}, [])
    assert "unknown message kind 'pause'" in panel.error
    assert {k: v for k, v in shown(panel).items() if k != "error"} == {k: v for k, v in before.items() if k != "error"}
    panel._handle_message(panel, {"kind": "refresh"}, [])
    assert panel.error == ""
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) 'colour'"):
        MonitorPanel(trainer, colour="red")
    panel.close()


def test_a_fast_loop_costs_at_most_one_message_per_poll(store: acc.RunStore) -> None:
    pump = UpdatePump(max_hz=10)
    rec = acc.Recorder(tasks={"loss": "regression"}, store=store, fetch_every=1)
    acc.monitors.attach(rec, [acc.monitors.ThroughputMonitor(), AlertsMonitor()])
    panel = MonitorPanel(rec, pump=pump)
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
    # one refresh per poll at most (each ONE message: hold_sync) + the final one at the job's end
    assert len(sent) <= elapsed / POLL_SECONDS + 3, (len(sent), steps, elapsed)
    assert panel.step == steps and panel.run_state == "finished"


def test_a_closed_panel_lets_go_of_the_trainer(store: acc.RunStore) -> None:
    pump = UpdatePump()
    trainer = dead_layer_trainer(store, spiky_batches(10))
    panel = MonitorPanel(trainer, pump=pump)
    trainer.fit(steps=10)
    panel.close()
    refs: list[weakref.ref[Any]] = [weakref.ref(trainer), weakref.ref(trainer.model), weakref.ref(panel)]
    del trainer, panel
    pump.close()
    for _ in range(3):
        gc.collect()
    assert [r() is None for r in refs] == [True, True, True]
