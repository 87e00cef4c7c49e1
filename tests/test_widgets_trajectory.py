"""TrajectoryWidget, kernel side: watched features on real runs, the metric toggle, zoom, pairwise cosine, bad input."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from conftest import wait_until

import acc
from acc.recipes import FEATURE_PARAM, competitive_trainer
from acc.widgets import DebugPanel, TrajectoryWidget
from acc.widgets._binary import from_f32_bytes
from acc.widgets._pump import UpdatePump
from acc.widgets.trajectory import COLUMNS, trajectory_arrays


@pytest.fixture
def pump() -> Iterator[UpdatePump]:
    p = UpdatePump(max_hz=20)
    yield p
    p.close()


def send(widget: Any, content: Any) -> None:
    widget._handle_message(widget, content, [])


def line(widget: TrajectoryWidget, feature: int) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of one feature's line as the browser decodes them."""
    state = widget.get_state()
    json.dumps({k: v for k, v in state.items() if k not in ("series", "pairwise")}, allow_nan=False)
    s = widget.series[str(feature)]
    return from_f32_bytes(s["steps"]), from_f32_bytes(s["values"])


@pytest.fixture
def paused(
    store: acc.RunStore, pump: UpdatePump
) -> Iterator[tuple[acc.DebugController, acc.Trainer, TrajectoryWidget]]:
    """The competitive recipe paused after 2 steps, with a TrajectoryWidget."""
    dbg = acc.DebugController(feature_param=FEATURE_PARAM)
    trainer = competitive_trainer(dbg, store=store, monitors=None)
    widget = TrajectoryWidget(trainer, pump=pump)
    dbg.step(2)
    job = trainer.start(steps=10_000)
    wait_until(lambda: dbg.is_paused and widget.n_features == 32 and widget.step == 2)
    yield dbg, trainer, widget
    dbg.stop()
    job.wait(15)
    widget.close()


def test_watched_features_get_one_line_each_of_every_metric(
    paused: tuple[acc.DebugController, acc.Trainer, TrajectoryWidget],
) -> None:
    dbg, _, widget = paused
    assert (widget.features, widget.watched, widget.feature_param) == ([], [], FEATURE_PARAM)
    send(widget, {"kind": "watch", "features": [4, 9, 4]})  # typed ids; a repeat is watched once
    wait_until(lambda: widget.watched == [4, 9])
    dbg.step(12)
    wait_until(lambda: widget.step == 14 and widget.features == [4, 9])
    truth = dbg.get_trajectories()
    assert widget.metrics == ["cosine", "attraction_norm", "grad_norm", "win_rate"]
    assert widget.metric == "cosine" and widget.extent == [3, 14]
    for f in (4, 9):
        steps, values = line(widget, f)
        assert steps.tolist() == list(range(3, 15)) and widget.series[str(f)]["n"] == 12
        np.testing.assert_allclose(values, [p["cosine"] for p in truth[f]], rtol=1e-6)
    # the metric toggle
    send(widget, {"kind": "set_metric", "metric": "win_rate"})
    assert widget.metric == "win_rate"
    np.testing.assert_allclose(line(widget, 9)[1], [p["win_rate"] for p in truth[9]], rtol=1e-6)
    # the pairwise cosine of the watched rows at this step
    pair = widget.pairwise
    weights = dbg.cosine_matrix("weights")["matrix"]
    assert pair["ids"] == [4, 9] and pair["step"] == 14
    np.testing.assert_allclose(from_f32_bytes(pair["matrix"], (2, 2)), weights[np.ix_([4, 9], [4, 9])], atol=1e-6)


def test_zoom_unwatch_and_clear(paused: tuple[acc.DebugController, acc.Trainer, TrajectoryWidget]) -> None:
    dbg, _, widget = paused
    send(widget, {"kind": "watch", "features": [1, 2]})
    dbg.step(10)
    wait_until(lambda: widget.step == 12 and widget.features == [1, 2])
    send(widget, {"kind": "zoom", "start": 5.4, "end": 8.2})  # a drag across the plot: fractional steps
    assert widget.step_range == [5, 9]
    steps, _ = line(widget, 1)
    assert steps.tolist() == [4, 5, 6, 7, 8, 9, 10]  # the range plus one neighbour each side (lines reach the edges)
    assert widget.series["1"]["n"] == 5
    send(widget, {"kind": "zoom", "start": None, "end": None})
    assert widget.step_range == [] and line(widget, 1)[0].tolist() == list(range(3, 13))
    # a removed watch keeps its line; new points only for the others
    send(widget, {"kind": "unwatch", "feature": 1})
    dbg.step(3)
    wait_until(lambda: widget.step == 15)
    assert widget.watched == [2] and widget.features == [1, 2]
    assert line(widget, 1)[0][-1] == 12 and line(widget, 2)[0][-1] == 15
    send(widget, {"kind": "clear"})
    wait_until(lambda: widget.features == [])
    assert dbg.get_trajectories() == {} and widget.watched == [2]


def test_a_row_clicked_in_the_debug_panel_appears_here(
    paused: tuple[acc.DebugController, acc.Trainer, TrajectoryWidget], pump: UpdatePump
) -> None:
    dbg, trainer, widget = paused
    panel = DebugPanel(trainer, pump=pump)
    send(panel, {"kind": "watch", "feature": 17})  # what a click on feature 17's row sends
    wait_until(lambda: widget.watched == [17])
    dbg.step(3)
    wait_until(lambda: widget.features == [17] and widget.series["17"]["n"] == 3)
    panel.close()


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ({"kind": "watch", "features": []}, "at least one feature"),
        ({"kind": "watch", "features": [1, -2]}, "integers >= 0"),
        ({"kind": "watch", "features": ["3"]}, "integers >= 0"),
        ({"kind": "watch", "features": [True]}, "integers >= 0"),
        ({"kind": "watch", "features": list(range(65))}, "at most 64"),
        ({"kind": "watch", "features": [3, 32]}, "feature(s) [32] out of range (0..31)"),
        ({"kind": "watch", "features": 3}, "must be list"),
        ({"kind": "unwatch", "feature": 3}, "feature 3 is not watched"),
        ({"kind": "set_metric", "metric": "loss"}, "no metric 'loss'"),
        ({"kind": "zoom", "start": 9, "end": 3}, "start must be below end"),
        ({"kind": "zoom", "start": 3, "end": 3}, "start must be below end"),
        ({"kind": "zoom", "start": "a", "end": 3}, "must be int or float or null"),
        ({"kind": "zoom", "start": math.nan, "end": 3}, "finite number"),
        ({"kind": "zoom", "start": 1}, "missing field 'end'"),
    ],
)
def test_a_bad_message_is_rejected_and_changes_nothing(
    content: Any, why: str, paused: tuple[acc.DebugController, acc.Trainer, TrajectoryWidget]
) -> None:
    dbg, _, widget = paused
    before = {k: v for k, v in widget.get_state().items() if k != "error"}
    send(widget, content)
    assert widget.error.startswith("rejected: ") and why in widget.error, widget.error
    time.sleep(0.3)
    assert {k: v for k, v in widget.get_state().items() if k != "error"} == before
    assert dbg.get_watched() == []


def test_long_runs_cross_decimated_and_spikes_stay(pump: UpdatePump) -> None:
    """A hand-written loop of 5,000 steps: each line stays within ~2 points per pixel column."""
    weight = torch.nn.Parameter(torch.ones(4, 3))
    dbg = acc.DebugController(feature_param=weight, fetch_every=500)
    widget = TrajectoryWidget(dbg, pump=pump)
    dbg.add_watch(0)
    with dbg.loop():
        for step in range(1, 5001):
            with torch.no_grad():
                weight[0, 0] = 1.0 + step / 5000
                weight[0, 1] = -30.0 if step == 3333 else 1.0  # one spike
            dbg.capture_step_data("size", weight.detach().norm(dim=1).clone())
            assert dbg.wait_if_paused(step)
    wait_until(lambda: widget.series.get("0", {}).get("n") == 5000)
    steps, values = line(widget, 0)
    assert len(steps) <= 2 * COLUMNS + 2
    assert 3333 in steps.tolist() and values.min() == pytest.approx(values[steps.tolist().index(3333)])
    assert widget.metrics == ["cosine", "size"] and widget.extent == [1, 5000]


@pytest.mark.parametrize(
    ("points", "steps", "columns"),
    [
        ([], [], {}),
        ([{"step": 3, "cosine": 1.0}], [3], {"cosine": [1.0]}),
        ([{"step": 1, "cosine": None, "w": 0.5}, {"step": 2, "cosine": 0.9}], [1, 2],
         {"cosine": [math.nan, 0.9], "w": [0.5, math.nan]}),
    ],
)  # fmt: skip
def test_trajectory_arrays(points: list[dict[str, Any]], steps: list[int], columns: dict[str, list[float]]) -> None:
    got_steps, got = trajectory_arrays(points)
    assert got_steps.tolist() == steps and got_steps.dtype == np.int64
    assert list(got) == list(columns)
    for name, values in columns.items():
        np.testing.assert_array_equal(got[name], values)


def test_without_a_feature_parameter_nothing_can_be_watched(pump: UpdatePump) -> None:
    widget = TrajectoryWidget(acc.DebugController(), pump=pump)
    assert widget.feature_param is None and widget.features == []
    send(widget, {"kind": "watch", "features": [0]})
    assert "no feature_param" in widget.error
