"""LossChart, kernel side: real training runs, a real store with 1e6 points, traits set as the browser sets them."""

from __future__ import annotations

import gc
import math
import re
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bqplot
import ipywidgets
import numpy as np
import pytest
from conftest import two_task_trainer
from ipywidgets.widgets.widget import _remove_buffers
from torch.utils.data import DataLoader

import acc
from acc.widgets._pump import UpdatePump
from acc.widgets.loss_chart import LossChart, LossChartInfo, _merge, _Series

# -- helpers -------------------------------------------------------------------------------------------


@pytest.fixture
def pump() -> Iterator[UpdatePump]:
    """A private pump, so tests never share pending updates."""
    p = UpdatePump(max_hz=10)
    yield p
    p.close()


def lines_of(chart: LossChart) -> list[Any]:
    """The line marks that draw something (a chart keeps an empty spare mark for the next job)."""
    return [m for m in chart.figure.marks if isinstance(m, bqplot.Lines) and m.labels]


def drawn(mark: Any) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """label -> (steps, values) as the mark would draw them (padding removed)."""
    if not mark.labels:
        return {}
    x, y = np.atleast_2d(mark.x), np.atleast_2d(mark.y)
    out = {}
    for label, xs, ys in zip(mark.labels, x, y, strict=True):
        keep = np.concatenate(([True], (xs[1:] != xs[:-1]) | (ys[1:] != ys[:-1])))  # drop the repeated tail
        keep &= ~np.isnan(xs)
        out[label] = (xs[keep], ys[keep])
    return out


def browser_zoom(chart: LossChart, lo: float, hi: float) -> None:
    """What bqplot's PanZoom does on a wheel event: the browser sets the step scale's min/max (one message)."""
    assert chart._panzoom.scales == {"x": [chart._x]}  # steps only: y fits the points in view
    chart._x.set_state({"min": lo, "max": hi})


def fill(store: acc.RunStore, name: str, series: dict[str, np.ndarray], *, status: str = "completed") -> int:
    job = store.create_job(name)
    for key, values in series.items():
        store.log_points(job, [(key, i, float(v), 0.0) for i, v in enumerate(values)])
    store.flush()
    store.finish_job(job, status)
    return job


# -- the in-memory series ------------------------------------------------------------------------------

APPEND_CASES = [
    pytest.param([([1, 2], [0.1, 0.2]), ([3], [0.3])], [1, 2, 3], [0.1, 0.2, 0.3], id="in order"),
    pytest.param([([1, 2], [0.1, 0.2]), ([2, 3], [9.0, 0.3])], [1, 2, 3], [0.1, 9.0, 0.3], id="repeat: new wins"),
    pytest.param([([5], [0.5]), ([1, 2], [0.1, 0.2])], [1, 2, 5], [0.1, 0.2, 0.5], id="out of order"),
    pytest.param([([1], [math.nan]), ([2], [math.inf])], [1, 2], [math.nan, math.inf], id="NaN and Inf kept"),
    pytest.param([([3, 1], [0.3, 0.1])], [1, 3], [0.1, 0.3], id="unsorted block"),
]


@pytest.mark.parametrize(("blocks", "steps", "values"), APPEND_CASES)
def test_series_append(blocks: list[tuple[list[int], list[float]]], steps: list[int], values: list[float]) -> None:
    s = _Series()
    for b_steps, b_values in blocks:
        s.append(np.array(b_steps, dtype=np.int64), np.array(b_values))
    assert s.steps.tolist() == steps
    np.testing.assert_array_equal(s.values, values)


def test_series_grows_in_place_and_merges_the_store() -> None:
    s = _Series()
    for start in range(0, 10_000, 50):  # the live tail: blocks of fetch_every steps
        s.append(np.arange(start, start + 50), np.full(50, 1.0))
    assert s.n == 10_000 and s.version == 200
    # The store had steps 0..9,979 (its writer lags): they are taken, the newer live points kept.
    s.merge_stored(np.arange(9_980), np.full(9_980, 2.0))
    assert s.loaded and s.n == 10_000
    assert s.values[9_979] == 2.0 and s.values[9_980] == 1.0
    merged_steps, merged_values = _merge(np.array([1, 2]), np.array([1.0, 2.0]), np.array([2]), np.array([5.0]))
    assert merged_steps.tolist() == [1, 2] and merged_values.tolist() == [1.0, 5.0]


# -- a real training run -------------------------------------------------------------------------------


def test_a_finished_run_shows_each_task_and_the_total_exactly(
    two_task_loader: DataLoader[Any], store: acc.RunStore, pump: UpdatePump
) -> None:
    trainer = two_task_trainer(two_task_loader, store, fetch_every=10, monitors=None)
    job = trainer.fit(60)
    chart = LossChart(trainer, pump=pump)
    (mark,) = lines_of(chart)
    lines = drawn(mark)
    assert list(lines) == ["total", "cls", "reg"]
    for label, series in (("total", "loss"), ("cls", "loss/cls"), ("reg", "loss/reg")):
        steps, values, _ = store.series(job.id, series)
        np.testing.assert_array_equal(lines[label][0], steps)
        np.testing.assert_array_equal(lines[label][1], values)  # exact, no rounding, nothing dropped
    assert len(set(mark.colors)) == 3
    assert chart.job_id == job.id
    assert "3 lines, 180 points in view" in chart.status and "auto-fit" in chart.status
    assert chart.error == ""


def test_live_training_fills_the_chart_through_the_pump_and_follows_the_next_job(
    two_task_loader: DataLoader[Any], store: acc.RunStore, pump: UpdatePump, monkeypatch: pytest.MonkeyPatch
) -> None:
    trainer = two_task_trainer(two_task_loader, store, fetch_every=5, monitors=None)
    chart = LossChart(trainer, pump=pump)
    assert chart.job_id is None and "No job yet" in chart.status
    marks_before = list(chart.figure.marks)
    reads: list[str] = []
    real_series = store.series
    monkeypatch.setattr(
        store, "series", lambda job_id, name, **kw: reads.append(name) or real_series(job_id, name, **kw)
    )

    job = trainer.start(steps=200)
    job.wait()  # JOB_ENDED flushed the pump: the chart shows the end of the job
    lines = drawn(lines_of(chart)[0])
    steps, values, _ = real_series(job.id, "loss/reg")
    np.testing.assert_array_equal(lines["reg"][0], steps)
    np.testing.assert_array_equal(lines["reg"][1], values)
    assert lines["total"][0][-1] == 200
    # Each series was read from the store at most once (when the job appeared); the rest came live.
    assert len(reads) == len(set(reads)) <= 3
    # A job starting changes the data of a mark the figure already had, never the figure's marks: bqplot's
    # front end builds mark views asynchronously and lost the lines when the list changed mid-build.
    assert all(a is b for a, b in zip(chart.figure.marks, marks_before, strict=True))

    job2 = trainer.start(steps=20)
    job2.wait()
    assert chart.job_id == job2.id
    assert drawn(lines_of(chart)[0])["total"][0].tolist() == list(range(201, 221))
    assert all(a is b for a, b in zip(chart.figure.marks, marks_before, strict=True))  # the next job too
    assert (f"#{job.id} TwoHeadNet (completed)", job.id) in chart._picker.options  # the old job can be compared


def test_a_fast_loop_sends_a_bounded_number_of_chart_messages(
    store: acc.RunStore, pump: UpdatePump, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[str] = []
    real_send = ipywidgets.Widget._send

    def counting_send(self: Any, msg: Any, buffers: Any = None) -> None:
        sent.append(type(self).__name__)
        real_send(self, msg, buffers)

    rec = acc.Recorder({"recon": "reconstruction", "kl": "kl"}, store=store, fetch_every=50, max_fetch_interval=0.05)
    chart = LossChart(rec, pump=pump, refresh_hz=5)
    monkeypatch.setattr(ipywidgets.Widget, "_send", counting_send)
    start = time.monotonic()
    step = 0
    with rec:
        while time.monotonic() - start < 1.5:  # a loop far faster than any screen
            step += 1
            rec.record(step, {"recon": 1.0 / step, "kl": 2.0 / step})
    elapsed = time.monotonic() - start
    monkeypatch.undo()
    assert step > 3000
    # Two messages per redraw (lines + status), at most refresh_hz redraws a second, + the final flush.
    assert len(sent) <= 2 * (5 * elapsed + 2) + 2, sent
    assert drawn(lines_of(chart)[0])["recon"][0][-1] == step  # ...and the end of the job is shown


def test_binary_arrays_cross_as_buffers(store: acc.RunStore, pump: UpdatePump) -> None:
    job = fill(store, "j", {"loss/a": np.linspace(1, 0, 500), "loss/b": np.linspace(2, 0, 500)})
    chart = LossChart(job, store=store, pump=pump)
    _state, _paths, buffers = _remove_buffers(lines_of(chart)[0].get_state())
    assert len(buffers) >= 2  # x and y as raw bytes, not JSON lists of floats
    assert sum(memoryview(b).nbytes for b in buffers) >= 2 * 2 * 500 * 8


# -- 1e6 points ----------------------------------------------------------------------------------------

N = 1_000_000
SPIKE = 777_777


@pytest.fixture(scope="module")
def million(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[acc.RunStore, int]]:
    """A store with one job of 1e6 steps: two tasks, a one-step spike, a NaN, +Inf and -Inf."""
    store = acc.RunStore(tmp_path_factory.mktemp("million"))
    rng = np.random.default_rng(0)
    job = store.create_job("big")
    for name in ("loss/recon", "loss/kl"):
        values = 1.0 + 0.1 * rng.random(N)
        if name == "loss/recon":
            values[SPIKE] = 50.0
            values[1000], values[2000], values[3000] = math.nan, math.inf, -math.inf
        steps = np.arange(N).tolist()
        vals = values.tolist()
        for i in range(0, N, 50_000):
            store.log_points(
                job, [(name, s, v, 0.0) for s, v in zip(steps[i : i + 50_000], vals[i : i + 50_000], strict=True)]
            )
    store.flush(timeout=300)
    store.finish_job(job, "completed")
    yield store, job
    store.close()


@pytest.mark.slow
def test_a_million_points_are_drawn_within_budget_and_the_spike_survives(
    million: tuple[acc.RunStore, int], pump: UpdatePump
) -> None:
    store, job = million
    chart = LossChart(job, store=store, pump=pump)
    lines = drawn(lines_of(chart)[0])
    assert list(lines) == ["total", "kl", "recon"] or list(lines) == ["kl", "recon"]
    recon_steps, recon_values = lines["recon"]
    assert len(recon_steps) <= chart.max_points
    assert SPIKE in recon_steps.tolist()
    assert recon_values.max() == 50.0
    assert np.all(np.isfinite(recon_values))  # a line cannot draw NaN/Inf...
    marks = chart._nonfinite
    names = dict(zip(marks.x.tolist(), marks.names, strict=True))  # ...they are markers instead
    assert names == {1000.0: "NaN · recon", 2000.0: "+Inf · recon", 3000.0: "-Inf · recon"}
    edge = dict(zip(marks.x.tolist(), marks.y.tolist(), strict=True))
    assert edge[1000.0] == 1.0 and edge[2000.0] == 1.0 and edge[3000.0] == 0.0  # top edge; -Inf at the bottom
    assert "2,000,000 points in view" in chart.status and "min/max per pixel column" in chart.status
    assert chart._info.legend[-1] == {"label": "NaN / Inf", "color": marks.colors[0], "marker": True}


@pytest.mark.slow
def test_zooming_redecimates_the_view_and_reset_returns_to_auto_fit(
    million: tuple[acc.RunStore, int], pump: UpdatePump
) -> None:
    store, job = million
    chart = LossChart(job, store=store, pump=pump)
    revision = chart._info.revision
    browser_zoom(chart, SPIKE - 5_000.0, SPIKE + 5_000.0)
    pump.flush()  # the pump's next batch; in a notebook it comes within 0.1 s
    assert chart.zoomed and chart.view == (SPIKE - 5_000.0, SPIKE + 5_000.0)
    assert chart._info.revision == revision + 1 and chart._info.view == f"{SPIKE - 5_000.0}:{SPIKE + 5_000.0}"
    steps, values = drawn(lines_of(chart)[0])["recon"]
    assert steps[0] == SPIKE - 5_001 and steps[-1] == SPIKE + 5_001  # the view and one neighbour each side
    assert len(steps) <= chart.max_points
    assert values[steps.tolist().index(SPIKE)] == 50.0
    assert "zoomed" in chart.status and "20,002 points in view" in chart.status
    assert chart._nonfinite.x.size == 0  # the NaN/Inf markers lie outside this view

    # A burst of wheel events is one redraw per pump batch.
    for k in range(20):
        browser_zoom(chart, SPIKE - 4_000.0 + k, SPIKE + 4_000.0 - k)
    pump.flush()
    assert chart._info.revision == revision + 2

    chart.reset()
    assert not chart.zoomed and chart._x.min is None and chart._x.max is None and chart._y.min is None
    steps, _ = drawn(lines_of(chart)[0])["recon"]
    assert steps[0] == 0 and steps[-1] == N - 1
    assert chart._info.view == "auto" and "auto-fit" in chart.status


# -- zoom while training -------------------------------------------------------------------------------


def test_new_data_autofits_until_the_user_zooms(store: acc.RunStore, pump: UpdatePump) -> None:
    rec = acc.Recorder({"recon": "reconstruction"}, store=store, fetch_every=10)
    chart = LossChart(rec, pump=pump)
    with rec:
        for step in range(1, 101):
            rec.record(step, {"recon": 1.0 / step})
        rec.flush()
        pump.flush()
        assert drawn(lines_of(chart)[0])["recon"][0][-1] == 100
        assert chart._x.min is None  # auto-fit: bqplot fits the scales to the data

        browser_zoom(chart, 20.0, 40.0)
        pump.flush()
        for step in range(101, 201):
            rec.record(step, {"recon": 1.0 / step})
        rec.flush()
        pump.flush()
        assert (chart._x.min, chart._x.max) == (20.0, 40.0)  # the user's view stays put
        steps, _ = drawn(lines_of(chart)[0])["recon"]
        assert steps[0] == 19 and steps[-1] == 41

        chart.reset()
        assert drawn(lines_of(chart)[0])["recon"][0][-1] == 200  # back to following the run


# -- NaN / Inf, metrics, log scale, overlays -----------------------------------------------------------


def test_nan_and_inf_losses_from_a_recorder_become_markers(store: acc.RunStore, pump: UpdatePump) -> None:
    rec = acc.Recorder({"recon": "reconstruction", "kl": "kl"}, store=store, fetch_every=5)
    chart = LossChart(rec, pump=pump)
    with rec:
        for step in range(1, 31):
            kl = math.nan if step == 12 else (math.inf if step == 20 else 1.0)
            rec.record(step, {"recon": 0.1, "kl": kl})
    lines = drawn(lines_of(chart)[0])
    assert 12 not in lines["kl"][0] and 20 not in lines["kl"][0]
    names = dict(zip(chart._nonfinite.x.tolist(), chart._nonfinite.names, strict=True))
    # The total is non-finite where kl is: both are marked, each naming its line.
    assert names == {12.0: "NaN · total", 20.0: "+Inf · total"} | {12.0: "NaN · kl", 20.0: "+Inf · kl"} or (
        sorted(chart._nonfinite.names) == ["+Inf · kl", "+Inf · total", "NaN · kl", "NaN · total"]
    )
    assert "4 NaN/Inf markers" in chart.status


@pytest.mark.parametrize(("metric", "series"), [("learning_rate", "learning_rate"), ("grad_norm", "grad_norm")])
def test_metric_toggle_shows_that_series(
    metric: str, series: str, two_task_loader: DataLoader[Any], store: acc.RunStore, pump: UpdatePump
) -> None:
    trainer = two_task_trainer(two_task_loader, store, fetch_every=10, monitors=None)
    job = trainer.fit(30)
    chart = LossChart(trainer, pump=pump)
    chart._metric.value = metric  # the toggle button, as the browser sets it
    (mark,) = lines_of(chart)
    _steps, values, _ = store.series(job.id, series)
    label = {"learning_rate": "learning rate", "grad_norm": "gradient norm"}[metric]
    np.testing.assert_array_equal(drawn(mark)[label][1], values)
    assert chart._y_axis.label == label
    assert chart.metric == metric


def test_log_scale_hides_non_positive_values_and_says_so(store: acc.RunStore, pump: UpdatePump) -> None:
    lr = np.linspace(0.0, 1e-3, 100)  # warm-up from 0: a log axis cannot draw step 0
    job = fill(store, "warmup", {"learning_rate": lr, "loss": np.linspace(2, 1, 100)})
    chart = LossChart(job, store=store, pump=pump, metric="learning_rate")
    chart._log.value = True
    assert isinstance(chart._y, bqplot.LogScale)
    assert chart._y_axis.scale is chart._y and all(m.scales["y"] is chart._y for m in lines_of(chart))
    steps, values = drawn(lines_of(chart)[0])["learning rate"]
    assert steps[0] == 1 and np.all(values > 0)
    assert "1 values ≤ 0 not drawn on the log scale" in chart.status
    chart.log_y = False
    assert isinstance(chart._y, bqplot.LinearScale)
    assert drawn(lines_of(chart)[0])["learning rate"][0][0] == 0


def test_overlay_other_jobs_with_distinct_colours(store: acc.RunStore, pump: UpdatePump) -> None:
    old = fill(store, "old", {"loss/recon": np.linspace(3, 2, 50)})
    new = fill(store, "new", {"loss/recon": np.linspace(2, 1, 80)})
    chart = LossChart(new, store=store, pump=pump)
    assert (f"#{old} old (completed)", old) in chart._picker.options
    assert all(value != new for _label, value in chart._picker.options)  # its own job is not offered
    chart._picker.value = (old,)  # picked in the "Compare" list
    current, overlay = lines_of(chart)
    assert current.labels == [f"#{new} recon"] and overlay.labels == [f"#{old} recon"]
    assert current.colors != overlay.colors
    assert current.line_style == "solid" and overlay.line_style == "dashed"
    np.testing.assert_array_equal(drawn(overlay)[f"#{old} recon"][1], np.linspace(3, 2, 50))
    assert [e["label"] for e in chart._info.legend] == [f"#{new} recon", f"#{old} recon"]
    chart.overlay_jobs = ()
    assert len(lines_of(chart)) == 1 and lines_of(chart)[0].labels == ["recon"]

    with pytest.raises(KeyError, match="no job 999"):
        chart.overlay_jobs = (999,)
    with pytest.raises(ValueError, match="own job"):
        chart.overlay_jobs = (new,)


# -- API edges, errors, lifetime -----------------------------------------------------------------------

BAD_OPTIONS = [
    pytest.param({"colour": "red"}, TypeError, "colour", id="unknown kwarg"),
    pytest.param({"metric": "accuracy"}, ValueError, "metric", id="unknown metric"),
    pytest.param({"max_points": 9}, ValueError, "max_points", id="max_points too small"),
    pytest.param({"refresh_hz": 0}, ValueError, "refresh_hz", id="refresh_hz zero"),
    pytest.param({"refresh_hz": 50}, ValueError, "refresh_hz", id="refresh_hz over the pump"),
]


@pytest.mark.parametrize(("options", "error", "message"), BAD_OPTIONS)
def test_bad_options_raise_naming_them(
    store: acc.RunStore, options: dict[str, Any], error: type[Exception], message: str
) -> None:
    job = fill(store, "j", {"loss": np.ones(3)})
    with pytest.raises(error, match=message):
        LossChart(job, store=store, **options)


def test_zoom_from_python_validates_and_fits_y(store: acc.RunStore, pump: UpdatePump) -> None:
    job = fill(store, "j", {"loss": np.arange(100.0)})
    chart = LossChart(job, store=store, pump=pump)
    with pytest.raises(ValueError, match="start < end"):
        chart.zoom(10, 10)
    with pytest.raises(ValueError, match="finite"):
        chart.zoom(math.nan, 10)
    chart.zoom(10, 20)
    assert chart.view == (10.0, 20.0) and chart._y.min is None
    assert drawn(lines_of(chart)[0])["total"][0].tolist() == list(range(9, 22))


def test_a_failure_while_drawing_is_shown_under_the_chart(store: acc.RunStore, pump: UpdatePump) -> None:
    job = fill(store, "j", {"loss": np.ones(10), "grad_norm": np.ones(10)})
    chart = LossChart(job, store=store, pump=pump)
    store.close()
    chart._metric.value = "grad_norm"  # must read grad_norm from the (closed) store
    assert "StoreError" in chart.error and "closed" in chart.error
    assert isinstance(chart._info, LossChartInfo)


def test_a_bad_step_record_is_shown_and_never_raised_into_the_loop(store: acc.RunStore, pump: UpdatePump) -> None:
    rec = acc.Recorder({"recon": "reconstruction"}, store=store)
    chart = LossChart(rec, pump=pump)
    chart._on_fetched(acc.TrainerState(job_id=1, fetched=[{"step": "not a step"}]))  # as the loop would call it
    assert "receiving steps: ValueError" in chart.error


def test_browser_scale_writes_are_taken_as_a_range_whatever_their_order(store: acc.RunStore, pump: UpdatePump) -> None:
    job = fill(store, "j", {"loss": np.arange(100.0)})
    chart = LossChart(job, store=store, pump=pump)
    chart._x.set_state({"min": 40.0, "max": 20.0})  # a pan past the edge can hand them over reversed
    pump.flush()
    assert chart.view == (20.0, 40.0)
    assert drawn(lines_of(chart)[0])["total"][0].tolist() == list(range(19, 42))
    chart._x.set_state({"min": 90.0, "max": None})  # only one end set: the other is the data's
    pump.flush()
    assert chart.zoomed and drawn(lines_of(chart)[0])["total"][0].tolist() == list(range(89, 100))


def test_close_removes_handlers_and_the_chart_can_be_collected(
    two_task_loader: DataLoader[Any], store: acc.RunStore, pump: UpdatePump
) -> None:
    trainer = two_task_trainer(two_task_loader, store, monitors=None)
    before = trainer.hooks.count(acc.Event.METRICS_FETCHED)
    chart = LossChart(trainer, pump=pump)
    assert trainer.hooks.count(acc.Event.METRICS_FETCHED) == before + 1
    ref = weakref.ref(chart)
    children = [weakref.ref(w) for w in (chart.figure, chart._info, chart._x)]
    chart.close()
    assert trainer.hooks.count(acc.Event.METRICS_FETCHED) == before
    del chart
    gc.collect()
    assert ref() is None and all(r() is None for r in children)
    trainer.fit(10)  # training after the chart is gone touches nothing of it


def test_wheel_package_contains_the_front_end(tmp_path: Path) -> None:
    """The asset helper finds the chart's JS and CSS (the wheel force-includes widgets/)."""
    from acc.widgets import _assets

    assert "loss_chart" in _assets.list_stems()
    js = str(LossChartInfo._esm)
    assert "function nearestPoint" in js and "function errorBox" in js  # _shared.js is inlined...
    assert not re.search(r"^\s*import\s", js, re.M)  # ...so the blob-URL module imports nothing
    assert ".acc-chart-hover" in str(LossChartInfo._css)
