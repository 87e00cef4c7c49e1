"""The pure parts behind the widgets: the folded loss log, sparklines, rows, JSON-safe numbers, float32 bytes."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import acc
from acc.widgets._binary import f32_bytes, from_f32_bytes, json_number, json_safe, png_bytes
from acc.widgets._health_data import (
    LossLog,
    Sparkline,
    checkpoint_rows,
    classifier,
    history_rows,
    overall_health,
    summary_rows,
    worse,
)

NAN, INF = math.nan, math.inf


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("healthy", "warning", "warning"),
        ("critical", "warning", "critical"),
        ("warning", "warning", "warning"),
        (None, "healthy", "healthy"),
        ("critical", None, "critical"),
        (None, None, None),
    ],
)
def test_worse_picks_the_more_severe_health(a: str | None, b: str | None, expected: str | None) -> None:
    assert worse(a, b) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.5, 0.5),
        (3, 3),
        (None, None),
        (True, True),
        (NAN, "NaN"),
        (INF, "Infinity"),
        (-INF, "-Infinity"),
        (np.float32(0.25), 0.25),
    ],
)
def test_json_number_keeps_nan_and_inf_as_strings(value: Any, expected: Any) -> None:
    assert json_number(value) == expected


def test_json_safe_makes_nested_values_serialisable_without_nan() -> None:
    data = {"a": [1.0, NAN, {"b": -INF}], "c": (INF, "x"), "d": np.float64(2.0)}
    safe = json_safe(data)
    assert safe == {"a": [1.0, "NaN", {"b": "-Infinity"}], "c": ["Infinity", "x"], "d": 2.0}
    json.dumps(safe, allow_nan=False)  # what Jupyter's message serialiser demands


@pytest.mark.parametrize(
    "values",
    [[0.0, 1.5, -2.25], [NAN, INF, -INF], np.arange(12, dtype=np.float64).reshape(3, 4), torch.tensor([1.0, 2.0])],
)
def test_f32_bytes_round_trip(values: Any) -> None:
    data = f32_bytes(values)
    expected = np.asarray(values.numpy() if isinstance(values, torch.Tensor) else values, dtype=np.float32)
    back = from_f32_bytes(data, expected.shape)
    np.testing.assert_array_equal(back, expected)  # NaN == NaN for assert_array_equal


def test_f32_bytes_rejects_bad_lengths_and_png_bytes_checks_the_signature() -> None:
    with pytest.raises(ValueError, match="multiple of 4"):
        from_f32_bytes(b"\x00\x00\x00")
    assert png_bytes(b"\x89PNG\r\n\x1a\nrest") == b"\x89PNG\r\n\x1a\nrest"
    with pytest.raises(ValueError, match="PNG"):
        png_bytes(b"GIF89a")


def _steps(log: LossLog, rows: list[tuple[int, dict[str, float], dict[str, str]]]) -> LossLog:
    for step, losses, health in rows:
        log.add(step, losses, health)
    return log


def test_loss_log_folds_steps_into_entries_of_every_steps_newest_first() -> None:
    log = LossLog(every=10)
    for step in range(1, 26):
        log.add(step, {"recon": 1.0 / step}, {"recon": "critical" if step < 3 else "healthy"})
    entries = log.entries()
    assert [(e["first"], e["last"], e["n"], e["open"]) for e in entries] == [
        (21, 25, 5, True),
        (11, 20, 10, False),
        (1, 10, 10, False),
    ]
    oldest = entries[-1]
    # the last value of the entry, its own health, and the worst seen within the entry
    assert oldest["tasks"] == [{"task": "recon", "value": 0.1, "health": "healthy", "worst": "critical"}]
    assert oldest["health"] == "critical"
    assert entries[0]["health"] == "healthy"


@pytest.mark.parametrize(
    ("rows", "expected_values", "expected_health"),
    [
        # a NaN inside the entry: the entry is critical, the shown value is the last one
        ([(1, {"a": 0.1}, {"a": "healthy"}), (2, {"a": NAN}, {"a": "critical"}), (3, {"a": 0.1}, {"a": "healthy"})],
         [0.1], "critical"),
        # a NaN last: shown as the string "NaN"
        ([(1, {"a": 0.1}, {"a": "healthy"}), (2, {"a": NAN}, {"a": "critical"})], ["NaN"], "critical"),
        ([(1, {"a": INF}, {"a": "critical"})], ["Infinity"], "critical"),
    ],
)  # fmt: skip
def test_loss_log_keeps_non_finite_values_visible(
    rows: list[tuple[int, dict[str, float], dict[str, str]]], expected_values: list[Any], expected_health: str
) -> None:
    entry = _steps(LossLog(every=50), rows).entries()[0]
    assert [t["value"] for t in entry["tasks"]] == expected_values
    assert entry["health"] == expected_health
    json.dumps(entry, allow_nan=False)


def test_loss_log_ignores_repeated_steps_and_keeps_the_newest_entries() -> None:
    log = LossLog(every=1, keep=3)
    for step in [1, 2, 2, 1, 3, 4, 5]:
        log.add(step, {"a": float(step)}, {"a": "healthy"})
    assert [e["last"] for e in log.entries()] == [5, 4, 3]
    assert log.last_step == 5


@pytest.mark.parametrize(("every", "keep"), [(0, 1), (1, 0), (-5, 3), (1.5, 3), (True, 3)])
def test_loss_log_rejects_bad_sizes(every: Any, keep: Any) -> None:
    with pytest.raises(ValueError, match="positive integer"):
        LossLog(every, keep)


def test_sparkline_halves_when_full_and_keeps_nan_buckets() -> None:
    spark = Sparkline(capacity=4)
    spark.extend([1.0, 3.0, 5.0, 7.0])  # full at 4 buckets of width 1 -> 2 buckets of width 2
    assert spark.width == 2
    assert spark.values() == [2.0, 6.0]
    spark.extend([NAN, 1.0, 9.0])  # one full bucket holding a NaN, one partial bucket
    values = spark.values()
    assert values[:2] == [2.0, 6.0]
    assert math.isnan(values[2])
    assert values[3] == 9.0


def test_sparkline_stays_within_capacity_for_a_long_run() -> None:
    spark = Sparkline(capacity=96)
    spark.extend(float(i) for i in range(100_000))
    assert len(spark.values()) <= 97  # the buckets plus the partial last one
    assert spark.values()[0] < spark.values()[-1]


@pytest.mark.parametrize("capacity", [0, 1, 3, 2.0])
def test_sparkline_rejects_bad_capacity(capacity: Any) -> None:
    with pytest.raises(ValueError, match="capacity"):
        Sparkline(capacity)


@pytest.mark.parametrize(
    ("task", "value", "expected"),
    [
        ("recon", 0.01, "healthy"),
        ("recon", 0.1, "warning"),
        ("recon", NAN, "critical"),
        ("mine", 0.7, "warning"),  # own thresholds (0.5, 1.0)
        ("mine", INF, "critical"),
        ("unknown_task", 1e9, "healthy"),  # custom, no thresholds: healthy while finite
    ],
)
def test_classifier_uses_the_jobs_task_types_and_thresholds(task: str, value: float, expected: str) -> None:
    health = classifier(
        {"recon": {"task_type": "reconstruction"}, "mine": {"task_type": "custom", "thresholds": [0.5, 1.0]}}
    )
    assert health(task, value) == expected


def test_summary_rows_and_overall_health_are_json_safe() -> None:
    summaries = acc.compute_loss_summary(
        [{"step": i, "task_name": "recon", "loss": v} for i, v in enumerate([0.3, 0.2, NAN, 0.01])]
    )
    rows = summary_rows(summaries)
    assert rows[0]["task"] == "recon" and rows[0]["health"] == "critical" and rows[0]["nonfinite"] == 1
    json.dumps(rows, allow_nan=False)
    assert overall_health(summaries) == "critical"
    assert overall_health({}) == ""


def test_history_rows_take_the_live_summary_for_the_live_job(store: acc.RunStore) -> None:
    done = store.create_job("old")
    store.finish_job(done, "completed", summary=acc.compute_loss_summary([{"task_name": "a", "loss": 0.01}]))
    live = store.create_job("new")
    live_summary = acc.compute_loss_summary([{"task_name": "a", "loss": 5.0, "task_type": "regression"}])
    rows = history_rows(store.jobs(), live, live_summary)
    assert [r["id"] for r in rows] == [live, done]
    assert rows[0]["status"] == "running" and rows[0]["health"] == "critical"
    assert rows[1]["final"] == [{"task": "a", "value": 0.01, "health": "healthy"}]


def test_checkpoint_rows_walk_the_tree_with_a_health_per_node(tmp_path: Path) -> None:
    cs = acc.CheckpointStore(tmp_path)
    model = torch.nn.Linear(2, 1)
    good = acc.compute_loss_summary([{"task_name": "recon", "loss": 0.01}])
    bad = acc.compute_loss_summary([{"task_name": "recon", "loss": NAN}])
    root = cs.save(model, step=1, name="root", loss_summary=good)
    child = cs.save(model, step=2, name="child", parent=root, loss_summary=bad)
    cs.save(model, step=3, name="bare", parent=child)
    rows = checkpoint_rows(cs.tree(), current=child.id)
    assert [(r["name"], r["depth"], r["health"], r["current"]) for r in rows] == [
        ("root", 0, "healthy", False),
        ("child", 1, "critical", True),
        ("bare", 2, None, False),
    ]
    json.dumps(rows, allow_nan=False)
    assert [r["name"] for r in checkpoint_rows(cs.tree(), limit=2)] == ["child", "bare"]


@pytest.mark.parametrize("n", [0, 1, 95, 96, 97, 191, 1000, 12_345])
def test_sparkline_from_values_matches_adding_one_by_one(n: int) -> None:
    rng = np.random.default_rng(n)
    values = rng.random(n) * 3
    if n > 10:
        values[[3, n // 2, n - 1]] = [NAN, INF, -INF]  # non-finite values at the start, middle and end
    one_by_one = Sparkline()
    one_by_one.extend(values.tolist())
    at_once = Sparkline.from_values(values)
    assert at_once.width == one_by_one.width
    np.testing.assert_allclose(at_once.values(), one_by_one.values(), rtol=1e-12)  # NaN where NaN
    more = rng.random(300).tolist()  # and it goes on growing the same way
    one_by_one.extend(more)
    at_once.extend(more)
    np.testing.assert_allclose(at_once.values(), one_by_one.values(), rtol=1e-12)
