"""HeatmapWidget, kernel side: plain matrices, a controller's cosine matrices on a real run, messages, bad input."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
import traitlets
from conftest import wait_until

import acc
from acc.recipes import FEATURE_PARAM, competitive_trainer
from acc.widgets import HeatmapWidget
from acc.widgets._binary import from_f32_bytes
from acc.widgets._pump import UpdatePump
from acc.widgets.heatmap import MAX_CELLS, ROW_MEAN, as_matrix, matrix_stats, order_rows, row_means

NAN, INF = math.nan, math.inf


@pytest.fixture
def pump() -> Iterator[UpdatePump]:
    p = UpdatePump(max_hz=20)
    yield p
    p.close()


def send(widget: Any, content: Any) -> None:
    widget._handle_message(widget, content, [])


def drawn(widget: HeatmapWidget) -> np.ndarray:
    """The matrix as the browser decodes it."""
    state = widget.get_state()
    json.dumps({k: v for k, v in state.items() if k != "matrix"}, allow_nan=False)
    return from_f32_bytes(widget.matrix, widget.shape)


# -- pure helpers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("matrix", "expected"),
    [
        ([[1, 0.5], [0.5, 1]], {"mean": 0.5, "std": 0.0, "min": 0.5, "max": 0.5, "n": 2, "n_nonfinite": 0}),
        ([[9, 1, 2], [3, 9, 4], [5, 6, 9]], {"mean": 3.5, "min": 1.0, "max": 6.0, "n": 6, "n_nonfinite": 0}),
        ([[1, 2, 3], [4, 5, 6]], {"mean": 3.5, "min": 1.0, "max": 6.0, "n": 6, "n_nonfinite": 0}),  # not square
        ([[NAN, 1], [3, INF]], {"mean": 2.0, "min": 1.0, "max": 3.0, "n": 2, "n_nonfinite": 0}),  # diagonal ignored
        ([[1, NAN], [INF, 1]], {"mean": None, "std": None, "min": None, "max": None, "n": 0, "n_nonfinite": 2}),
        ([[1, -INF, 2], [0, 1, 4], [NAN, 8, 1]], {"mean": 3.5, "min": 0.0, "max": 8.0, "n": 4, "n_nonfinite": 2}),
        ([[7.0]], {"mean": None, "std": None, "n": 0, "n_nonfinite": 0}),  # 1 x 1: nothing off the diagonal
        ([[7.0, 8.0]], {"mean": 7.5, "min": 7.0, "max": 8.0, "n": 2}),
    ],
)
def test_matrix_stats(matrix: list[list[float]], expected: dict[str, Any]) -> None:
    stats = matrix_stats(np.asarray(matrix, dtype=np.float32))
    json.dumps(stats, allow_nan=False)
    for key, value in expected.items():
        assert stats[key] == (pytest.approx(value) if isinstance(value, float) else value), key
    assert stats["off_diagonal"] == (len(matrix) == len(matrix[0]))


@pytest.mark.parametrize(
    ("metric", "descending", "order"),
    [
        ([0.1, 0.9, 0.5], True, [1, 2, 0]),
        ([0.1, 0.9, 0.5], False, [0, 2, 1]),
        ([NAN, 0.2, INF, -INF], True, [1, 0, 2, 3]),  # NaN and +/-Inf last, in index order
        ([NAN, 0.2, 0.2, 1.0], False, [1, 2, 3, 0]),  # ties keep their index order
        (torch.tensor([3.0, 1.0, 2.0]), True, [0, 2, 1]),
    ],
)
def test_order_rows(metric: Any, descending: bool, order: list[int]) -> None:
    assert order_rows(metric, len(metric), descending=descending).tolist() == order


def test_order_rows_names_a_metric_of_the_wrong_length() -> None:
    with pytest.raises(ValueError, match=r"ordering metric 'w' must have one value per row \(3\), got shape \[2\]"):
        order_rows([1.0, 2.0], 3, "w")


def test_row_means_leave_the_diagonal_and_non_finite_values_out() -> None:
    m = np.array([[1.0, 2.0, 4.0], [NAN, 1.0, NAN], [0.0, 6.0, 1.0]], dtype=np.float32)
    np.testing.assert_array_equal(row_means(m), [3.0, NAN, 3.0])
    np.testing.assert_array_equal(row_means(np.array([[1.0, 3.0]], dtype=np.float32)), [2.0])


@pytest.mark.parametrize(
    ("data", "error", "match"),
    [
        ([1.0, 2.0], ValueError, r"2-D matrix, got shape \[2\]"),
        (np.zeros((2, 2, 2)), ValueError, r"2-D matrix, got shape \[2, 2, 2\]"),
        (np.zeros((0, 3)), ValueError, "at least one cell"),
        ([["a", "b"]], TypeError, "numeric N x M matrix"),
        (np.zeros((MAX_CELLS + 1, 1), dtype=np.float32), ValueError, "more cells than the heatmap draws"),
    ],
)
def test_bad_matrices_are_refused_with_a_clear_error(data: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        as_matrix(data)


# -- a plain matrix ----------------------------------------------------------------------------------


def test_a_plain_matrix_crosses_as_float32_and_sorts_by_a_metric(pump: UpdatePump) -> None:
    rng = np.random.default_rng(0)
    m = rng.random((6, 6)).astype(np.float32)
    m[2, 3] = np.nan
    widget = HeatmapWidget(m, metrics={"score": [5, 3, 9, 1, 0, 7]}, title="random", pump=pump)
    assert (widget.shape, widget.bound, widget.title, widget.order_by) == ([6, 6], False, "random", "")
    np.testing.assert_array_equal(drawn(widget), m)  # NaN survives
    assert widget.order_options == [ROW_MEAN, "score"]
    assert widget.stats["n_nonfinite"] == 1 and widget.stats["off_diagonal"] is True
    send(widget, {"kind": "order_by", "metric": "score"})
    order = [2, 5, 0, 1, 3, 4]
    assert widget.row_ids == widget.col_ids == order and widget.order_by == "score"
    np.testing.assert_array_equal(drawn(widget), m[np.ix_(order, order)])  # rows and columns alike
    send(widget, {"kind": "order_by", "metric": ROW_MEAN})
    assert widget.row_ids == order_rows(row_means(m), 6).tolist()
    send(widget, {"kind": "order_by", "metric": ""})
    assert widget.row_ids == list(range(6))
    np.testing.assert_array_equal(drawn(widget), m)


def test_a_rectangular_matrix_sorts_its_rows_only(pump: UpdatePump) -> None:
    m = np.arange(12, dtype=np.float32).reshape(3, 4)
    widget = HeatmapWidget(m, metrics={"w": [0.0, 2.0, 1.0]}, order_by="w", row_label="sample", pump=pump)
    assert widget.row_ids == [1, 2, 0] and widget.col_ids == [0, 1, 2, 3]
    np.testing.assert_array_equal(drawn(widget), m[[1, 2, 0]])
    assert widget.stats["off_diagonal"] is False and widget.stats["max"] == 11.0
    widget.set_matrix(torch.ones(2, 5), title="ones", step=12)
    assert (widget.shape, widget.title, widget.step, widget.order_options) == ([2, 5], "ones", 12, [ROW_MEAN])


def test_colour_stops_are_configurable_and_checked(pump: UpdatePump) -> None:
    widget = HeatmapWidget(np.eye(3), color_stops=[[-1, "blue"], [0, "white"], [1, "red"]], pump=pump)
    assert widget.color_stops == [[-1.0, "blue"], [0.0, "white"], [1.0, "red"]]
    for bad in ([[0, "red"]], [[0, "red"], [0, "blue"]], [[NAN, "red"], [1, "blue"]], [[0, ""], [1, "red"]], "red"):
        with pytest.raises(traitlets.TraitError):
            widget.color_stops = bad
    assert widget.color_stops == [[-1.0, "blue"], [0.0, "white"], [1.0, "red"]]


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ({"kind": "order_by", "metric": "nope"}, "no metric 'nope'"),
        ({"kind": "order_by"}, "missing field 'metric'"),
        ({"kind": "order_by", "metric": 3}, "must be str"),
        ({"kind": "select_source", "source": "weights"}, "plain matrix"),
        ({"kind": "zoom"}, "unknown message kind 'zoom'"),
    ],
)
def test_a_bad_message_to_a_plain_heatmap_changes_nothing(content: Any, why: str, pump: UpdatePump) -> None:
    widget = HeatmapWidget(np.eye(4), metrics={"w": [1, 2, 3, 4]}, order_by="w", pump=pump)
    before = {k: v for k, v in widget.get_state().items() if k != "error"}
    send(widget, content)
    assert widget.error.startswith("rejected: ") and why in widget.error, widget.error
    assert {k: v for k, v in widget.get_state().items() if k != "error"} == before


def test_wrong_constructor_arguments_raise() -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        HeatmapWidget(np.eye(2), colour="red")
    with pytest.raises(TypeError, match="source_name= needs a trainer"):
        HeatmapWidget(np.eye(2), source_name="weights")
    with pytest.raises(ValueError, match="order_by='w' is not a metric"):
        HeatmapWidget(np.eye(2), order_by="w")
    with pytest.raises(TypeError, match="metrics= and order_by= need a matrix"):
        HeatmapWidget(metrics={"w": [1]})
    with pytest.raises(ValueError, match="HeatmapWidget needs a DebugController"):
        HeatmapWidget(_trainer_without_controller())


def _trainer_without_controller() -> acc.Trainer:
    model = torch.nn.Linear(2, 1)
    data = [(torch.ones(1, 2), torch.ones(1, 1))]
    return acc.Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), data, tasks={"reg": "regression"})


# -- bound to a controller, on a real run -------------------------------------------------------------


def test_bound_it_shows_the_controllers_cosine_matrices_and_follows_the_steps(
    store: acc.RunStore, pump: UpdatePump
) -> None:
    dbg = acc.DebugController(feature_param=FEATURE_PARAM)
    trainer = competitive_trainer(dbg, store=store, monitors=None)
    widget = HeatmapWidget(trainer, pump=pump)
    assert widget.bound and widget.source_name == "weights" and widget.shape == [0, 0]
    assert "waiting for a job" in widget.note
    dbg.step(3)
    job = trainer.start(steps=10_000)
    try:
        wait_until(lambda: widget.step == 3)
        assert widget.note == "" and widget.shape == [32, 32] and widget.row_label == "feature"
        assert widget.sources == ["weights", "attraction", "grad_delta", "gradient_force"]
        assert widget.order_options == ["attraction_norm", "grad_norm", "win_rate"]
        expected = dbg.cosine_matrix("weights")
        np.testing.assert_allclose(drawn(widget), expected["matrix"], atol=1e-6)
        assert widget.stats["mean"] == pytest.approx(expected["mean"]) and widget.stats["off_diagonal"]
        # sorted by a per-feature metric: the controller's order, for rows and columns
        send(widget, {"kind": "order_by", "metric": "win_rate"})
        wait_until(lambda: widget.title.endswith("sorted by win_rate"))
        ordered = dbg.cosine_matrix("weights", order_by="win_rate")
        assert widget.row_ids == widget.col_ids == ordered["order"]
        np.testing.assert_allclose(drawn(widget), ordered["matrix"], atol=1e-6)
        # another source: the attraction update's rows
        send(widget, {"kind": "select_source", "source": "attraction"})
        wait_until(lambda: widget.title.startswith("cosine · attraction"))
        np.testing.assert_allclose(
            drawn(widget), dbg.cosine_matrix("attraction", order_by="win_rate")["matrix"], atol=1e-6
        )
        # a step: the widget refreshes by itself
        dbg.step()
        wait_until(lambda: widget.step == 4)
        np.testing.assert_allclose(
            drawn(widget), dbg.cosine_matrix("attraction", order_by="win_rate")["matrix"], atol=1e-6
        )
        # a bad source is rejected and changes nothing
        before = widget.matrix
        send(widget, {"kind": "select_source", "source": "win_rate"})
        assert "no source 'win_rate'" in widget.error and widget.source_name == "attraction"
        assert widget.matrix == before
    finally:
        dbg.stop()
        job.wait(15)
        widget.close()


def test_bound_without_a_feature_parameter_it_says_what_is_missing(store: acc.RunStore, pump: UpdatePump) -> None:
    dbg = acc.DebugController()
    widget = HeatmapWidget(dbg, pump=pump)
    assert widget.source_name == "" and widget.sources == [] and "no source" in widget.note


def test_bound_to_a_loop_running_free_it_shows_the_weights_and_waits_for_a_pause_for_the_rest(
    store: acc.RunStore, pump: UpdatePump
) -> None:
    dbg = acc.DebugController(feature_param=FEATURE_PARAM)
    trainer = competitive_trainer(dbg, store=store, monitors=None)
    job = trainer.start(steps=100_000)
    try:
        wait_until(lambda: trainer.state.step > 2)
        widget = HeatmapWidget(trainer, pump=pump)  # copies the weights between two steps
        assert widget.shape == [32, 32] and widget.note == "" and widget.step is not None
        assert widget.sources == ["weights"]  # step data is kept only while someone looks (a pause)
        send(widget, {"kind": "select_source", "source": "attraction"})
        assert "no source 'attraction'" in widget.error
        send(widget, {"kind": "refresh"})  # a refresh while running: the weights now
        assert widget.error == "" and widget.step is not None
        dbg.pause()
        wait_until(lambda: "attraction" in widget.sources and widget.step == dbg.get_state()["step"])
        np.testing.assert_allclose(drawn(widget), dbg.cosine_matrix("weights")["matrix"], atol=1e-6)
    finally:
        dbg.stop()
        job.wait(15)


def test_bound_to_more_features_than_it_draws_it_says_so(pump: UpdatePump) -> None:
    weight = torch.nn.Parameter(torch.rand(2049, 2))
    dbg = acc.DebugController(feature_param=weight)
    with dbg.loop():
        dbg.capture_step_data("m", torch.ones(2049))
        widget = HeatmapWidget(dbg, pump=pump)
        assert widget.shape == [0, 0] and "2049 x 2049 is more than the heatmap draws" in widget.note
