"""Min/max decimation per pixel column: exact points, spikes kept, NaN/Inf returned as markers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from acc.widgets._decimate import decimate_minmax

NAN, INF = math.nan, math.inf


def _same(a: np.ndarray, b: list[float]) -> bool:
    return bool(np.array_equal(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), equal_nan=True))


# (values at steps 0..n-1, columns, kwargs, line steps, nonfinite steps, nonfinite values, n_hidden)
SMALL_CASES = [
    pytest.param([], 10, {}, [], [], [], 0, id="empty"),
    pytest.param([0.5], 10, {}, [0], [], [], 0, id="one point"),
    pytest.param([3.0, 2.0, 1.0], 10, {}, [0, 1, 2], [], [], 0, id="few points returned whole"),
    pytest.param([1.0, NAN, 3.0], 10, {}, [0, 2], [1], [NAN], 0, id="NaN becomes a marker"),
    pytest.param([1.0, INF, -INF, 2.0], 10, {}, [0, 3], [1, 2], [INF, -INF], 0, id="+Inf and -Inf become markers"),
    pytest.param([NAN, NAN], 10, {}, [], [0, 1], [NAN, NAN], 0, id="all NaN: no line, every marker"),
    pytest.param([0.0, 1.0, -2.0, 4.0], 10, {"positive_only": True}, [1, 3], [], [], 2, id="log scale hides <= 0"),
    pytest.param([0.0, NAN, 4.0], 10, {"positive_only": True}, [2], [1], [NAN], 1, id="log scale still marks NaN"),
    pytest.param(
        [1.0, 2.0, 3.0, 4.0, 5.0], 10, {"start": 2, "end": 3}, [1, 2, 3, 4], [], [], 0, id="range + neighbours"
    ),
    pytest.param(
        [1.0, 2.0, 3.0, 4.0, 5.0],
        10,
        {"start": 2, "end": 3, "neighbours": False},
        [2, 3],
        [],
        [],
        0,
        id="no neighbours",
    ),
    pytest.param(
        [1.0, NAN, 3.0, 4.0, NAN, 6.0], 10, {"start": 2, "end": 3}, [0, 2, 3, 5], [], [], 0, id="neighbours skip NaN"
    ),
    pytest.param([1.0, 2.0, 3.0], 10, {"start": 10, "end": 20}, [2], [], [], 0, id="range after the data"),
    pytest.param([1.0, 2.0, 3.0], 10, {"start": 0.5, "end": 0.7}, [0, 1], [], [], 0, id="range between two points"),
]


@pytest.mark.parametrize(("values", "columns", "kwargs", "line", "nf_steps", "nf_values", "hidden"), SMALL_CASES)
def test_small_series(
    values: list[float],
    columns: int,
    kwargs: dict[str, object],
    line: list[int],
    nf_steps: list[int],
    nf_values: list[float],
    hidden: int,
) -> None:
    steps = np.arange(len(values), dtype=np.int64)
    out = decimate_minmax(steps, np.array(values, dtype=np.float64), columns=columns, **kwargs)  # type: ignore[arg-type]
    assert out.steps.tolist() == line
    assert out.values.tolist() == [values[s] for s in line]  # exact recorded values, no interpolation
    assert out.nonfinite_steps.tolist() == nf_steps
    assert _same(out.nonfinite_values, nf_values)
    assert out.n_hidden == hidden
    assert not out.decimated
    assert out.steps.dtype == np.int64 and out.values.dtype == np.float64


BAD_INPUT = [
    pytest.param(np.array([0, 2, 1]), np.zeros(3), {}, "ascending", id="unsorted steps"),
    pytest.param(np.arange(3), np.zeros(4), {}, "same length", id="length mismatch"),
    pytest.param(np.zeros((2, 2)), np.zeros((2, 2)), {}, "1-D", id="2-D input"),
    pytest.param(np.arange(3), np.zeros(3), {"columns": 0}, "columns", id="zero columns"),
    pytest.param(np.arange(3), np.zeros(3), {"columns": 2.5}, "columns", id="fractional columns"),
    pytest.param(np.arange(3), np.zeros(3), {"start": 5, "end": 1}, "start must not be after end", id="start > end"),
    pytest.param(np.arange(3), np.zeros(3), {"start": NAN}, "start", id="NaN start"),
    pytest.param(np.arange(3), np.zeros(3), {"end": NAN}, "end", id="NaN end"),
]


@pytest.mark.parametrize(("steps", "values", "kwargs", "message"), BAD_INPUT)
def test_bad_input_is_named(steps: np.ndarray, values: np.ndarray, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decimate_minmax(steps, values, **kwargs)  # type: ignore[arg-type]


def _noise(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return np.arange(n, dtype=np.int64), 1.0 + 0.1 * rng.random(n)


@pytest.mark.parametrize("spike_at", [0, 1, 499_999, 777_777, 999_999])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_a_single_step_spike_in_a_million_points_survives(spike_at: int, sign: float) -> None:
    steps, values = _noise(1_000_000)
    values[spike_at] = 1.0 + sign * 50.0
    out = decimate_minmax(steps, values, columns=1000)
    assert out.decimated
    assert out.steps.size <= 2 * 1000 + 2
    assert out.steps[0] == 0 and out.steps[-1] == 999_999  # the line spans the whole run
    assert spike_at in out.steps.tolist()
    extreme = out.values.max() if sign > 0 else out.values.min()
    assert extreme == values[spike_at]


def test_envelope_is_exact_per_column() -> None:
    """Each column's min and max in the output equal the true min and max of its points."""
    steps, values = _noise(100_000, seed=3)
    out = decimate_minmax(steps, values, columns=100)
    width = 99_999 / 100
    col_in = np.minimum((steps / width).astype(int), 99)
    col_out = np.minimum((out.steps / width).astype(int), 99)
    for c in range(100):
        assert out.values[col_out == c].min() == values[col_in == c].min()
        assert out.values[col_out == c].max() == values[col_in == c].max()
    assert np.all(np.diff(out.steps) > 0)  # step order, no duplicates
    np.testing.assert_array_equal(values[out.steps], out.values)  # real points only


def test_nan_and_inf_markers_are_kept_but_bounded_when_decimating() -> None:
    steps, values = _noise(1_000_000)
    values[10] = NAN
    values[20] = INF
    values[30] = -INF
    values[500_000:] = NAN  # the run diverged half way: 500k NaNs
    out = decimate_minmax(steps, values, columns=1000)
    assert out.steps.max() < 500_000  # the line ends where the run diverged
    nf = dict(zip(out.nonfinite_steps.tolist(), out.nonfinite_values.tolist(), strict=True))
    assert nf[20] == INF and nf[30] == -INF and math.isnan(nf[10])
    assert math.isnan(nf[500_000])  # the first NaN of the divergence is marked at its exact step
    assert out.nonfinite_steps.size <= 3 * 1000  # at most one NaN, +Inf, -Inf per column
    assert out.nonfinite_steps.size >= 500  # ...and every column after the divergence has its marker


def test_zoomed_range_decimates_only_the_view() -> None:
    steps, values = _noise(1_000_000)
    values[250_123] = 9.0
    out = decimate_minmax(steps, values, start=250_000, end=260_000, columns=1000)
    assert out.n_points == 10_001
    assert out.decimated
    assert out.steps[0] == 249_999 and out.steps[-1] == 260_001  # one neighbour on each side
    assert 250_123 in out.steps.tolist()
    assert out.steps.size <= 2 * 1000 + 4  # + first/last in range + 2 neighbours


def test_gaps_in_steps_do_not_break_columns() -> None:
    """Sparse, uneven steps (eval every 1000 steps, then every step) still give min/max per column."""
    steps = np.concatenate((np.arange(0, 500_000, 1000), np.arange(500_000, 600_000)))
    values = np.sin(steps / 1e4)
    values[steps == 123_000] = 5.0
    out = decimate_minmax(steps, values, columns=200)
    assert out.steps.size <= 402
    assert 123_000 in out.steps.tolist()
    assert set(out.steps.tolist()) <= set(steps.tolist())


def test_log_scale_column_minimum_ignores_non_positive_values() -> None:
    steps = np.arange(10_000, dtype=np.int64)
    values = np.full(10_000, 2.0)
    values[::2] = 0.0  # e.g. a learning rate that is 0 every other step
    values[5001] = 0.5
    out = decimate_minmax(steps, values, columns=100, positive_only=True)
    assert out.n_hidden == 5000
    assert out.values.min() == 0.5  # the smallest positive value, not 0
    assert np.all(out.values > 0)
