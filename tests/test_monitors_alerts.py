"""Alerts: each rule (table), no spam, resolution after K clean checks, the store, notify, custom rules, a Trainer."""

from __future__ import annotations

import logging
import math
from typing import Any

import pytest
import torch
from conftest import two_task_trainer
from torch.utils.data import DataLoader

import acc
from acc.monitors import SKIP, AlertContext, AlertsMonitor, AlertThresholds, Finding, create_alerts_manager

NAN, INF = math.nan, math.inf


def codes(alerts: list[Any]) -> set[str]:
    return {a.code for a in alerts}


@pytest.mark.parametrize(
    ("kwargs", "history", "expected"),
    [
        ({"loss": 1.0}, [], set()),
        ({"loss": NAN}, [], {"nan_loss"}),
        ({"loss": INF}, [], {"nan_loss"}),
        ({"loss": 1.0, "losses": {"kl": NAN, "recon": 0.1}}, [], {"nan_loss"}),  # one task is enough
        ({"loss": 2.5}, [1.0] * 12, {"loss_spike"}),  # >= 2x the median
        ({"loss": 1.9}, [1.0] * 12, set()),
        ({"loss": 2.5}, [1.0] * 5, set()),  # too little history to call it a spike
        ({"loss": 1.0, "grad_norm": 150.0}, [], {"exploding_gradients"}),
        ({"loss": 1.0, "grad_norm": NAN}, [], {"exploding_gradients"}),
        ({"loss": 1.0, "gradient_norms": {"a": 0.5, "b": 500.0}}, [], {"exploding_gradients"}),
        ({"loss": 1.0, "grad_norm": 1e-9}, [], {"vanishing_gradients"}),
        ({"loss": 1.0, "grad_norm": 1.0}, [], set()),
        ({"loss": 1.0, "calibration_error": 0.35}, [], {"poor_calibration"}),
        ({"loss": 1.0, "calibration_error": 0.2}, [], set()),
        ({"loss": 1.0, "calibration_error": NAN}, [], set()),
        ({"loss": 1.0, "eval_calibration_error": 0.5}, [], {"poor_eval_calibration"}),
        (
            {"loss": 1.0, "layer_summary": {"dead_layers": ["x"], "text": "1/2 layers active, 1 dead"}},
            [],
            {"dead_layers"},
        ),
        (
            {"loss": 1.0, "layer_summary": {"dead_layers": [], "imbalanced": True, "imbalance_ratio": 5e3}},
            [],
            {"gradient_imbalance"},
        ),
        ({"loss": 1.0}, [1.0] * 60, {"plateau"}),  # < 1 % improvement over 50 steps
        ({"loss": 0.5}, [2.0 - i * 0.02 for i in range(60)], set()),  # still improving
        ({"loss": 2.0}, [0.5 + i * 0.02 for i in range(60)], set()),  # rising is not a plateau
    ],
)
def test_rule_table(kwargs: dict[str, Any], history: list[float], expected: set[str]) -> None:
    alerts = AlertsMonitor()
    active = alerts.check_all(step=100, recent_losses=history, **kwargs)
    assert codes(active) == expected


@pytest.mark.parametrize(
    ("grad_norm", "headline"),
    [
        (150.0, "Exploding gradients: global gradient norm 150 (> 100)"),
        (NAN, "Non-finite gradients: global gradient norm is nan"),
    ],
)
def test_gradient_alert_headline_names_what_happened(grad_norm: float, headline: str) -> None:
    (alert,) = AlertsMonitor().check_all(step=3, loss=1.0, grad_norm=grad_norm)
    assert alert.message == headline


def test_plateau_message_says_how_much_the_loss_moved() -> None:
    (alert,) = AlertsMonitor().check_all(step=100, loss=1.0, recent_losses=[1.0] * 60)
    assert alert.message == "Training plateaued: the loss moved +0.00 % over the last 50 steps (less than 1 %)"


def test_nan_alert_is_critical_and_recommends_stopping() -> None:
    (alert,) = AlertsMonitor().check_all(step=7, loss=NAN)
    assert alert.severity.value == "critical"
    assert "Stop training" in alert.recommendation
    assert alert.first_step == alert.last_step == 7
    assert alert.to_dict()["details"]["loss"] == "nan"  # strict-JSON friendly


def test_one_alert_per_condition_until_it_resolves_after_k_clean_checks() -> None:
    seen: list[tuple[str, bool, int | None]] = []
    alerts = create_alerts_manager(resolve_after=3, notify=lambda a: seen.append((a.code, a.active, a.resolved_step)))
    for step in range(1, 6):
        alerts.check_all(step=step, loss=NAN)
    (alert,) = alerts.active_alerts()
    assert (alert.first_step, alert.last_step, alert.count) == (1, 5, 5)
    assert seen == [("nan_loss", True, None)]  # notified once, not five times
    alerts.check_all(step=6, loss=1.0)
    alerts.check_all(step=7, loss=1.0)
    assert alerts.active_alerts()  # two clean checks are not enough
    alerts.check_all(step=8, loss=NAN)  # the condition comes back: the clean count restarts
    for step in (9, 10):
        alerts.check_all(step=step, loss=1.0)
    assert alerts.active_alerts()
    alerts.check_all(step=11, loss=1.0)
    assert alerts.active_alerts() == []
    (resolved,) = alerts.resolved_alerts()
    assert resolved.resolved_step == 11
    assert resolved.count == 6
    assert seen == [("nan_loss", True, None), ("nan_loss", False, 11)]
    assert alerts.get_summary()["resolved"] == 1
    alerts.check_all(step=12, loss=NAN)  # after resolving, a new alert
    assert alerts.get_summary()["raised"] == 2


def test_a_rule_without_its_inputs_neither_raises_nor_counts_as_clean() -> None:
    alerts = AlertsMonitor(resolve_after=2)
    alerts.check_all(step=1, loss=1.0, calibration_error=0.9)
    for step in range(2, 10):
        alerts.check_all(step=step, loss=1.0)  # no calibration value: not evaluated
    assert codes(alerts.active_alerts()) == {"poor_calibration"}
    alerts.check_all(step=10, loss=1.0, calibration_error=0.1)
    alerts.check_all(step=11, loss=1.0, calibration_error=0.1)
    assert alerts.active_alerts() == []


def test_learning_rate_zero_and_divergence_after_an_increase() -> None:
    alerts = AlertsMonitor()
    alerts.check_all(step=1, loss=1.0, learning_rate=0.0)  # a warm-up's first step is fine
    assert alerts.active_alerts() == []
    for step in (2, 3):
        alerts.check_all(step=step, loss=1.0, learning_rate=0.0)
    assert codes(alerts.active_alerts()) == {"lr_zero"}

    alerts = AlertsMonitor()
    for step in range(1, 21):
        alerts.check_all(step=step, loss=1.0, learning_rate=1e-3)
    alerts.check_all(step=21, loss=1.0, learning_rate=1e-1)  # raised 100x
    assert "lr_divergence" not in codes(alerts.active_alerts())
    active = alerts.check_all(step=25, loss=1.8, learning_rate=1e-1)
    (alert,) = [a for a in active if a.code == "lr_divergence"]
    assert "rose from 0.001 to 0.1 at step 21" in alert.message
    later = AlertsMonitor()
    for step in range(1, 21):
        later.check_all(step=step, loss=1.0, learning_rate=1e-3)
    later.check_all(step=21, loss=1.0, learning_rate=1e-1)
    assert "lr_divergence" not in codes(later.check_all(step=200, loss=1.8, learning_rate=1e-1))  # long after


def test_custom_rules_plug_in_and_a_failing_rule_is_reported_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    alerts = AlertsMonitor()

    def accuracy_drop(ctx: AlertContext) -> Finding | None:
        acc_value = ctx.get("val_accuracy")
        if acc_value < 0.5:
            return Finding("warning", f"validation accuracy {acc_value}", "look at the data")
        return None

    handle = alerts.add_rule("accuracy_drop", accuracy_drop, needs=("val_accuracy",))
    assert codes(alerts.check_all(step=1, loss=1.0, val_accuracy=0.3)) == {"accuracy_drop"}
    assert codes(alerts.check_all(step=2, loss=1.0)) == {"accuracy_drop"}  # not evaluated without its input
    handle.remove()
    with pytest.raises(ValueError, match="exists already"):
        alerts.add_rule("nan_loss", accuracy_drop)

    def broken(ctx: AlertContext) -> Finding | None:
        raise ZeroDivisionError("oops")

    alerts.add_rule("broken", broken)
    with caplog.at_level(logging.ERROR, logger="acc.monitors"):
        alerts.check_all(step=3, loss=1.0)
        active = alerts.check_all(step=4, loss=NAN)
    assert "rule_error:broken" in codes(active)  # shown to the user as an alert
    assert "nan_loss" in codes(active)  # the other rules keep working
    assert sum("broken" in r.message for r in caplog.records) == 1
    assert alerts.add_rule("skipper", lambda ctx: SKIP).active


def test_a_failing_notify_hook_is_logged_once_and_alerts_go_on(caplog: pytest.LogCaptureFixture) -> None:
    def hook(alert: Any) -> None:
        raise ConnectionError("webhook down")

    alerts = AlertsMonitor(notify=hook, resolve_after=1)
    with caplog.at_level(logging.ERROR, logger="acc.monitors"):
        for step in range(1, 7):
            alerts.check_all(step=step, loss=NAN if step % 2 else 1.0)
    assert alerts.get_summary()["notify_errors"] == 6
    assert sum("notify hook raised" in r.message for r in caplog.records) == 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"resolve_after": 0}, "resolve_after"), ({"notify": "print"}, "notify"), ({"thresholds": {}}, "thresholds")],
)
def test_bad_arguments_are_named(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises((ValueError, TypeError), match=match):
        AlertsMonitor(**kwargs)


def test_check_all_refuses_tensors() -> None:
    with pytest.raises(TypeError, match="host number"):
        AlertsMonitor().check_all(step=1, loss=torch.tensor(1.0))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="spike_ratio"):
        AlertThresholds(spike_ratio=0.5)


class NaNAfter(torch.nn.Module):
    """A real model whose loss turns NaN from step ``start`` (forward count) on."""

    def __init__(self, start: int) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(8, 3)
        self.start = start
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        out: torch.Tensor = self.lin(x)
        return out * math.nan if self.calls >= self.start else out


def nan_trainer(store: acc.RunStore, **kwargs: Any) -> acc.Trainer:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    data = [(torch.randn(16, 8, generator=g), torch.randint(0, 3, (16,), generator=g)) for _ in range(4)]
    model = NaNAfter(start=12)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    return acc.Trainer(model, opt, data, tasks={"cls": "classification"}, store=store, fetch_every=5, **kwargs)


def test_nan_in_a_real_trainer_alerts_and_stores_without_stopping(store: acc.RunStore) -> None:
    seen: list[Any] = []
    monitors = acc.monitors.default_monitors()
    monitors[-2] = AlertsMonitor(notify=seen.append)
    trainer = nan_trainer(store, monitors=monitors)
    job = trainer.fit(steps=30)
    assert job.status == "completed" and trainer.state.step == 30  # an alert recommends; it does not stop
    status = trainer.status()
    nan = next(a for a in status.active_alerts if a["code"] == "nan_loss")
    assert nan["first_step"] == 12 and nan["last_step"] == 30 and nan["count"] == 19
    assert status.alert_summary["critical"] >= 1
    store.flush()
    events = [e for e in store.events(job.id, kind="alert") if e["payload"]["code"] == "nan_loss"]
    assert len(events) == 1  # stored once with the job, at its first step
    assert events[0]["step"] == 12 and events[0]["payload"]["event"] == "raised"
    assert [a.code for a in seen].count("nan_loss") == 1


def test_stop_on_nan_still_stops(store: acc.RunStore) -> None:
    trainer = nan_trainer(store, stop_on_nan=True)
    job = trainer.fit(steps=30)
    assert job.status == "stopped" and trainer.state.step == 15  # the fetch at 15 sees step 12's NaN
    assert "nan_loss" in {a["code"] for a in trainer.status().active_alerts}


def test_alerts_resolve_in_a_real_run_and_the_resolution_is_stored(
    two_task_loader: DataLoader, store: acc.RunStore
) -> None:
    monitors = acc.monitors.default_monitors()
    monitors[-2] = AlertsMonitor(resolve_after=2)
    trainer = two_task_trainer(two_task_loader, store, fetch_every=5, monitors=monitors)
    trainer.fit(steps=10)
    alerts = trainer.monitors[-2]
    assert isinstance(alerts, AlertsMonitor)
    # a custom rule that holds for steps 11-13 of the next job only
    alerts.add_rule("window", lambda ctx: Finding("info", "in the window", "wait") if 11 <= ctx.step <= 13 else None)
    job = trainer.fit(steps=10)
    store.flush()
    events = [e for e in store.events(job.id, kind="alert") if e["payload"]["code"] == "window"]
    assert [(e["payload"]["event"], e["step"]) for e in events] == [("raised", 11), ("resolved", 15)]
    (resolved,) = [a for a in trainer.status().resolved_alerts if a["code"] == "window"]
    assert resolved["first_step"] == 11 and resolved["last_step"] == 13 and resolved["resolved_step"] == 15


def test_a_periodic_spike_is_one_episode_not_an_alert_every_few_steps() -> None:
    """Cycling 14 batches, one of them hard: the spike comes back every 14 steps, inside the spike window."""
    events: list[tuple[str, bool]] = []
    alerts = AlertsMonitor(notify=lambda a: events.append((a.code, a.active)))
    step = 0
    for _ in range(12):
        for k in range(14):
            step += 1
            alerts.check_all(step=step, loss=3.0 if k == 13 else 1.0 + 0.001 * (step % 3))
    (spike,) = [a for a in alerts.active_alerts() if a.code == "loss_spike"]
    assert spike.count == 12  # every spike counted on the one alert
    assert events.count(("loss_spike", True)) == 1  # raised (and notified) once
    for _ in range(25):
        step += 1
        alerts.check_all(step=step, loss=1.0)
    assert ("loss_spike", False) in events  # a clean spike window later, resolved
    assert events.count(("loss_spike", True)) == 1
