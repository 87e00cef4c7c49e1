"""Dashboard and acc.show, kernel side: slots, plug-ins, failures shown, every kind of source."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import ipywidgets
import pytest
from conftest import two_task_trainer
from torch.utils.data import DataLoader

import acc
from acc.widgets import Dashboard, LossHealthPanel, register_panel
from acc.widgets._pump import UpdatePump
from acc.widgets.dashboard import panel_specs
from acc.widgets.show import show


@pytest.fixture
def pump() -> Iterator[UpdatePump]:
    p = UpdatePump()
    yield p
    p.close()


def test_a_dashboard_for_a_trainer_before_and_after_it_trains(
    two_task_loader: DataLoader[Any], store: acc.RunStore, pump: UpdatePump
) -> None:
    trainer = two_task_trainer(two_task_loader, store, fetch_every=5)
    dash = acc.Dashboard(trainer, pump=pump)
    assert isinstance(dash, ipywidgets.VBox)
    assert dash.children[0] is dash.panel is dash["health"]
    assert dash.errors == {}
    assert dash.panel is not None and dash.panel.run_state == "idle"
    job = trainer.start(steps=15)
    job.wait()
    assert dash.panel.run_state == "finished" and dash.panel.step == 15
    assert "debug" not in dash.panels  # no debug controller: the slot does not apply


@pytest.mark.parametrize("kind", ["recorder", "job", "stored", "store"])
def test_a_dashboard_for_every_kind_of_source(
    kind: str, two_task_loader: DataLoader[Any], store: acc.RunStore, pump: UpdatePump
) -> None:
    if kind == "recorder":
        rec = acc.Recorder(tasks={"loss": "regression"}, store=store, fetch_every=1)
        dash = Dashboard(rec, pump=pump)
        with rec:
            for step in range(1, 4):
                rec.record(step, {"loss": 0.01})
        expected_state = "finished"
    else:
        trainer = two_task_trainer(two_task_loader, store)
        job = trainer.start(steps=5)
        job.wait()
        source: Any = {"job": job, "stored": job.id, "store": store}[kind]
        dash = Dashboard(source, store=store if kind == "stored" else None, pump=pump)
        expected_state = "finished"
    assert dash.errors == {}
    assert dash.panel is not None and dash.panel.run_state == expected_state
    assert dash.panel.history and dash.panel.summary


def test_a_plugged_in_panel_appears_in_order_and_a_failing_one_is_shown(store: acc.RunStore, pump: UpdatePump) -> None:
    class Extra(ipywidgets.Label):  # type: ignore[misc]
        def __init__(self, source: Any) -> None:
            super().__init__(value=f"extra for job {source.job_id}")

    def broken(source: Any) -> Any:
        raise RuntimeError("this panel is broken")

    handles = [
        register_panel("extra", Extra, order=5),
        register_panel("broken", broken, order=6),
        register_panel("not-built-yet", "acc.widgets.no_such_widget:Nothing", order=7),
        register_panel("never", Extra, order=8, applies=lambda source: False),
    ]
    try:
        dash = Dashboard(store, pump=pump)
        assert list(dash.panels)[:2] == ["extra", "health"]
        assert "not-built-yet" not in dash.panels and "never" not in dash.panels
        assert dash.errors == {"broken": "RuntimeError: this panel is broken"}
        error = dash.children[-1]
        assert isinstance(error, ipywidgets.HTML) and "this panel is broken" in error.value
    finally:
        for handle in handles:
            handle.remove()
    assert {s.name for s in panel_specs()} >= {"health", "chart", "debug"}
    assert "extra" not in {s.name for s in panel_specs()}


def test_a_slot_whose_module_fails_to_import_is_an_error_not_a_silent_gap(
    store: acc.RunStore, pump: UpdatePump
) -> None:
    handle = register_panel("bad-import", "acc.widgets._pump:NoSuchName")
    try:
        dash = Dashboard(store, pump=pump)
        assert "AttributeError" in dash.errors["bad-import"]
    finally:
        handle.remove()


def test_bad_arguments_are_refused(store: acc.RunStore) -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        Dashboard(store, colour="red")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match=r"unknown dashboard panel\(s\) \['nope'\]"):
        Dashboard(store, panels=["health", "nope"])
    with pytest.raises(ValueError, match="module:attr"):
        register_panel("x", "no colon here")
    with pytest.raises(TypeError, match="callable"):
        register_panel("x", 42)  # type: ignore[arg-type]


def test_only_the_named_panels_are_built(store: acc.RunStore, pump: UpdatePump) -> None:
    dash = Dashboard(store, panels=["health"], pump=pump)
    assert list(dash.panels) == ["health"]


def test_show_displays_the_newest_dashboard_of_a_trainer_again(
    two_task_loader: DataLoader[Any], store: acc.RunStore, pump: UpdatePump, capsys: pytest.CaptureFixture[str]
) -> None:
    trainer = two_task_trainer(two_task_loader, store)
    other = two_task_trainer(two_task_loader, store)
    Dashboard(trainer, pump=pump)
    newest = Dashboard(trainer, pump=pump)
    Dashboard(other, pump=pump)
    assert show(trainer) is newest  # a second view of the same models: the same state
    panel = LossHealthPanel(trainer, pump=pump)
    assert show(panel) is panel
    fresh = show(store)  # nothing made for the store yet: a new Dashboard
    assert isinstance(fresh, Dashboard) and fresh.source.store is store
    newest.close()
    assert show(trainer) is not newest


def test_a_dashboard_for_a_log_capture_of_a_real_script(store: acc.RunStore, pump: UpdatePump) -> None:
    script = "import sys\nfor step in range(1, 41):\n    print(f'step {step} loss {2.0 / step:.4f}')\n"
    capture = acc.capture([sys.executable, "-c", script], store=store, echo=False, alerts=False)
    dash = Dashboard(capture, pump=pump)
    capture.wait()
    panel = dash.panel
    assert panel is not None and dash.errors == {}
    assert panel.source_kind == "recorder" and panel.source.owner is capture
    assert panel.run_state == "finished" and panel.step == 40
    assert [r["task"] for r in panel.summary] == ["loss"] and panel.summary[0]["steps"] == 40
    assert panel.history[0]["id"] == capture.id
